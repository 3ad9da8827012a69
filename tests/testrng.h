/* testrng.h - the fixed-seed PRNG of the unit tests (splitmix64): one
 * definition, so that every test's random instances come from the same
 * well-mixed stream and a seed means the same thing everywhere.  Header
 * only, test code; the library's own streams are sensitivity/rng.h. */
#ifndef BP_TESTRNG_H
#define BP_TESTRNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static inline double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* uniform integer in [lo, hi] */
static inline int64_t rng_int(rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

#endif
