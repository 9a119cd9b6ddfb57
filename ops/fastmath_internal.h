/* What the vectorized kernels of ops/ share (private, not public API): one way of building a
 * kernel for several instruction sets, and branch-free exp and log that loops can vectorize.
 * Used by the elementwise, activation and reduction ops (math_internal.h) and by the loss family
 * (loss_util.h). */
#ifndef TG_FASTMATH_INTERNAL_H
#define TG_FASTMATH_INTERNAL_H

#include <stdint.h>
#include <string.h>

/* A kernel marked TG_CLONES is compiled for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and
 * baseline x86-64; the loader picks the best for the CPU (GCC/clang target_clones). The clones
 * run the same IEEE operations in the same order (C11 mode: no FMA contraction, no
 * reassociation), so results do not depend on the clone. Helpers a clone calls must be
 * TG_INLINE so they are compiled into each clone. TG_NO_CLONES builds one baseline version. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(TG_NO_CLONES)
#define TG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TG_CLONES
#endif
#define TG_INLINE static inline __attribute__((always_inline))

/* What tg_expf_fast gives outside the range where exp is a normal float. The two also use
 * different polynomials (Taylor to r^7 and Cephes' minimax one), which round differently on
 * about 0.2% of the inputs in [-87.3, 88] (by one ulp): the ops built on each mode were checked
 * bit for bit with it, so switching an op to the other mode would change its results.
 *   TG_EXP_IEEE   as expf: denormal results down to x = -103.97, 0 below; +inf above 88.72;
 *                 about 1 ulp. For the activations, softmax and tg_exp (any x).
 *   TG_EXP_FLUSH  0 below -87.3 (no denormals), exp(88) for x > 88 (+inf included); ~1 ulp.
 *                 Cheaper (one scale, no int conversion). For the losses (arguments -|x|,
 *                 x - max: never above 0).
 * Both: NaN gives NaN; no undefined behaviour for any x. */
typedef enum { TG_EXP_IEEE, TG_EXP_FLUSH } tg_exp_mode;

/* exp(x) without libm calls (pass the mode as a constant: the other branch folds away). */
TG_INLINE float tg_expf_fast(float x, tg_exp_mode mode)
{
    float xc;
    if (mode == TG_EXP_IEEE) {
        xc = x >= -104.0f ? x : -104.0f; /* exp(-104) underflows to 0; NaN -> -104, restored at the end */
        xc = xc <= 89.0f ? xc : 89.0f;   /* exp(89) overflows to inf */
    } else {
        xc = x > 88.0f ? 88.0f : x; /* (NaN passes both clamps) */
        xc = xc < -87.3f ? -87.3f : xc;
    }
    /* x = k ln2 + r, |r| <= ln2/2 (Cody-Waite, ln2 in two parts). Adding 1.5*2^23 rounds to an
     * integer: t = 1.5*2^23 + k holds k in its low mantissa bits. */
    const float t = xc * 1.44269504088896341f + 12582912.0f;
    const float k = t - 12582912.0f;
    const float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
    if (mode == TG_EXP_IEEE) {
        /* Taylor series of exp(r) to r^7: truncation error < 4e-9 relative. */
        float p = 1.0f / 5040.0f;
        p = p * r + 1.0f / 720.0f;
        p = p * r + 1.0f / 120.0f;
        p = p * r + 1.0f / 24.0f;
        p = p * r + 1.0f / 6.0f;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        /* 2^k in two factors so that k down to -150 (denormal results) stays representable. */
        int32_t ki = (int32_t)k;
        int32_t k1 = ki >> 1, k2 = ki - k1;
        union { int32_t i; float f; } s1 = {.i = (k1 + 127) << 23}, s2 = {.i = (k2 + 127) << 23};
        float e = p * s1.f * s2.f;
        return x == x ? e : x;
    }
    /* Cephes' polynomial. 2^k is built from the bits of t in unsigned arithmetic (no float ->
     * int conversion of NaN, no shift of a negative int); a NaN x stays NaN throughout. */
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t bits = (tb - 0x4B400000u + 127u) << 23; /* (k + 127) << 23 for k in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    /* a multiply by the mask, not a branch: keeps the loop free of control flow (NaN * 0 stays NaN) */
    return y * scale * (float)(x >= -87.3f);
}

/* Natural log for positive normal finite x (Cephes polynomial, ~1 ulp); vectorizable.
 * Other x (NaN, inf, 0, negatives, denormals) give a finite meaningless value, without undefined
 * behaviour: a caller that can meet NaN selects it itself (a select here costs BCE 4%). */
TG_INLINE float tg_logf_fast(float x)
{
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = ((bits >> 23) & 0xff) - 126;
    int32_t mbits = (bits & 0x807fffff) | 0x3f000000; /* mantissa in [0.5, 1) */
    float m;
    memcpy(&m, &mbits, sizeof m);
    float fe = (float)e;
    float small = (float)(m < 0.707106781186547524f); /* 1 or 0, no branch */
    fe -= small;
    m = m + m * small - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    return m + y + 0.693359375f * fe;
}

#endif
