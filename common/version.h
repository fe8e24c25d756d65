/* common/version.h — build identity. CV_VERSION and CV_GIT come from the Makefile. */
#ifndef CV_COMMON_VERSION_H
#define CV_COMMON_VERSION_H
#ifndef CV_VERSION
#define CV_VERSION "0.1.0"
#endif
#ifndef CV_GIT
#define CV_GIT "unknown"
#endif
#endif
