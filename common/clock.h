/* common/clock.h — monotonic and wall clocks in one place. */
#ifndef CV_COMMON_CLOCK_H
#define CV_COMMON_CLOCK_H
#include <stdint.h>

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). */
int64_t clock_now_ns(void);
/* Wall-clock time in seconds since the epoch, with fraction. */
double clock_wall_s(void);
/* Milliseconds between two clock_now_ns() readings. */
static inline double clock_ms_between(int64_t from_ns, int64_t to_ns)
{
	return (double)(to_ns - from_ns) / 1e6;
}

#endif
