/* common/version.h — build identity. CV_VERSION comes from the Makefile;
 * CV_GIT from build/gen/cv_git.h, which the Makefile rewrites only when the
 * git revision changes (so only includers of this header rebuild). */
#ifndef CV_COMMON_VERSION_H
#define CV_COMMON_VERSION_H
#include "cv_git.h"
#ifndef CV_VERSION
#define CV_VERSION "0.1.0"
#endif
#endif
