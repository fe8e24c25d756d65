/* common/version.h — build identity. CV_VERSION comes from the Makefile;
 * CV_GIT from the generated cv_git.h (only daemon/main.c includes that). */
#ifndef CV_COMMON_VERSION_H
#define CV_COMMON_VERSION_H
#ifndef CV_VERSION
#define CV_VERSION "0.1.0"
#endif
#endif
