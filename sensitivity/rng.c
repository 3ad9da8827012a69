/* rng.c - xoshiro256** with splitmix64 seeding (see rng.h). */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void bp_rng_seed(bp_rng *r, uint64_t seed, uint64_t stream)
{
    /* mix the stream in before expanding, so nearby (seed, stream) pairs
     * start far apart */
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    (void)splitmix64(&x);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t bp_rng_u64(bp_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double bp_rng_unit(bp_rng *r)
{
    return (double)(bp_rng_u64(r) >> 11) * 0x1.0p-53;
}

double bp_rng_normal(bp_rng *r)
{
    double u, v, s;
    do {
        u = 2 * bp_rng_unit(r) - 1;
        v = 2 * bp_rng_unit(r) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    return u * sqrt(-2 * log(s) / s);
}

void bp_rng_rademacher(bp_rng *r, double *v, int64_t n)
{
    for (int64_t i = 0; i < n; i += 64) {
        uint64_t bits = bp_rng_u64(r);
        for (int64_t j = i; j < n && j < i + 64; j++, bits >>= 1)
            v[j] = (bits & 1) ? 1.0 : -1.0;
    }
}
