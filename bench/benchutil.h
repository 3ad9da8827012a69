/* benchutil.h - the clock and the sort order every bench uses: seconds
 * on the monotonic clock, and doubles in ascending order for qsort. */
#ifndef BP_BENCHUTIL_H
#define BP_BENCHUTIL_H

#include <time.h>

static inline double bp_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bp_bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
