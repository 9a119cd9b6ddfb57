/* xoshiro256** seeded through splitmix64 (Blackman & Vigna). Sequential and
 * deterministic: the same seed gives the same stream whatever the thread count. */
#include "core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
    rng->has_spare = 0;
    rng->spare = 0.0f;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tg_rng_u64(tg_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float tg_rng_uniform(tg_rng *rng) { return (float)(tg_rng_u64(rng) >> 40) * 0x1.0p-24f; }

double tg_rng_uniform_double(tg_rng *rng) { return (double)(tg_rng_u64(rng) >> 11) * 0x1.0p-53; }

float tg_rng_normal(tg_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u1 = 1.0 - tg_rng_uniform_double(rng); /* (0, 1]: log is finite */
    double u2 = tg_rng_uniform_double(rng);
    double r = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586 * u2;
    rng->spare = (float)(r * sin(th));
    rng->has_spare = 1;
    return (float)(r * cos(th));
}

int64_t tg_rng_below(tg_rng *rng, int64_t n)
{
    if (n <= 1) return 0;
    uint64_t un = (uint64_t)n;
    uint64_t limit = UINT64_MAX - UINT64_MAX % un; /* reject the biased tail */
    uint64_t x;
    do x = tg_rng_u64(rng);
    while (x >= limit);
    return (int64_t)(x % un);
}

void tg_rng_permutation(tg_rng *rng, int64_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = tg_rng_below(rng, i + 1);
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

static tg_rng g_rng = {{0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL, 0x94d049bb133111ebULL, 1}, 0, 0};

tg_rng *tg_rng_global(void) { return &g_rng; }

void tg_manual_seed(uint64_t seed) { tg_rng_seed(&g_rng, seed); }
