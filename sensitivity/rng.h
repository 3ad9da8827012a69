/* rng.h - the seeded pseudo-random numbers of the sensitivity stage.
 *
 * xoshiro256** (Blackman and Vigna) seeded through splitmix64: fast, good
 * statistical quality, and the same sequence on every platform, so that
 * `--seed` makes every estimate reproducible bit for bit.  Streams: a
 * generator is seeded from (seed, stream), so that each layer and each
 * estimator draws from its own sequence and results do not depend on the
 * order in which layers are processed.  Never rand(). */
#ifndef BP_RNG_H
#define BP_RNG_H

#include <stdint.h>

typedef struct bp_rng {
    uint64_t s[4];
} bp_rng;

/* Seeds r from (seed, stream). */
void bp_rng_seed(bp_rng *r, uint64_t seed, uint64_t stream);
uint64_t bp_rng_u64(bp_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double bp_rng_unit(bp_rng *r);
/* Standard normal (Marsaglia's polar method). */
double bp_rng_normal(bp_rng *r);
/* v (n) = independent +1 / -1 with equal probability. */
void bp_rng_rademacher(bp_rng *r, double *v, int64_t n);

#endif
