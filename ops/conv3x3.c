/* Direct 3x3 convolution, stride 1, padding 1 (the UNet's layers), without im2col.
 *
 * The input is copied once into zero-bordered planes of row stride Wp = W + 2. The output is
 * computed in the same padded-width layout: output pixel (h, w) sits at p = h*Wp + w, and its
 * tap (ki, kj) reads xp[p + ki*Wp + kj], so every output row, junk columns w = W, W+1 included,
 * is one contiguous vector loop with no border tests. Accumulators stay in registers over all
 * input channels and taps (a block of output channels x 2 vectors); junk columns are dropped
 * when copying out. The input gradient is the same kernel on dy with the weights transposed and
 * rotated by 180 degrees; the weight gradient is a reduction over p of dy (junk columns zeroed)
 * times the shifted input, split into chunks across threads.
 * Kernels are compiled for AVX-512, AVX2+FMA and the baseline, chosen at run time.
 */
#include "../core/core_internal.h"
#include "conv_internal.h"

#include <immintrin.h>
#include <string.h>

#define K_NAME(x) x##_generic
#define K_VL 4
#define K_OB 4
#define K_NV 2
#define K_BCAST(p) ((K_NAME(vf)){0} + *(p))
#include "conv3x3_kernels.inc"
#undef K_NAME
#undef K_VL
#undef K_OB
#undef K_NV
#undef K_BCAST

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define K_NAME(x) x##_avx2
#define K_VL 8
#define K_OB 4
#define K_NV 2
#define K_BCAST(p) ((K_NAME(vf))_mm256_broadcast_ss(p)) /* a load-port broadcast, not a shuffle */
#include "conv3x3_kernels.inc"
#undef K_NAME
#undef K_VL
#undef K_OB
#undef K_NV
#undef K_BCAST
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#define K_NAME(x) x##_avx512
#define K_VL 16
#define K_OB 8
#define K_NV 3 /* 24 accumulators + 3 inputs + 1 weight of 32 registers */
#define K_BCAST(p) ((K_NAME(vf))_mm512_set1_ps(*(p)))
#include "conv3x3_kernels.inc"
#undef K_NAME
#undef K_VL
#undef K_OB
#undef K_NV
#undef K_BCAST
#pragma GCC pop_options

typedef enum { ISA_GENERIC, ISA_AVX2, ISA_AVX512 } isa_kind;

int tg_conv3x3_isa_override = -1;

static isa_kind isa(void)
{
    static int cached = -1;
    if (tg_conv3x3_isa_override >= 0) return (isa_kind)tg_conv3x3_isa_override;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f")                                           ? ISA_AVX512
                 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? ISA_AVX2
                                                                                     : ISA_GENERIC;
    }
    return (isa_kind)cached;
}

int tg_conv3x3_isa_best(void)
{
    tg_conv3x3_isa_override = -1;
    return (int)isa();
}

static int isa_vl(isa_kind k) { return k == ISA_AVX512 ? 16 : k == ISA_AVX2 ? 8 : 4; }
static int isa_block(isa_kind k) { return isa_vl(k) * (k == ISA_AVX512 ? 3 : 2); } /* K_VL * K_NV */
static int isa_ob(isa_kind k) { return k == ISA_AVX512 ? 8 : 4; }

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* Sizes of the padded layouts for an (H, W) plane. */
typedef struct {
    int64_t Wp;    /* row stride */
    int64_t P_r;   /* output floats per channel: H*Wp rounded up to the vector block */
    int64_t S;     /* input floats per channel: the taps of the last block stay inside */
} layout;

static layout make_layout(int64_t H, int64_t W, int block)
{
    layout l;
    l.Wp = W + 2;
    l.P_r = round_up(H * l.Wp, block);
    l.S = round_up(l.P_r + 2 * l.Wp + 2, 16);
    return l;
}

/* xp[c] = x[c] with a zero border (row h of x at row h+1, column 1), zeros after. */
static void pad_planes(const float *x, int64_t C, int64_t H, int64_t W, const layout *l, float *xp)
{
#pragma omp parallel for schedule(static) if (C * H * W > TG_PARALLEL_MIN)
    for (int64_t c = 0; c < C; c++) {
        float *p = xp + c * l->S;
        const float *xc = x + c * H * W;
        memset(p, 0, (size_t)(l->Wp + 1) * sizeof(float));
        for (int64_t h = 0; h < H; h++) {
            float *row = p + (h + 1) * l->Wp + 1;
            memcpy(row, xc + h * W, (size_t)W * sizeof(float));
            row[W] = row[W + 1] = 0.0f; /* right border, next row's left border */
        }
        const int64_t used = (H + 1) * l->Wp + 1;
        memset(p + used, 0, (size_t)(l->S - used) * sizeof(float));
    }
}

/* Gradient rows in padded-width layout, junk columns and rows past O zero. */
static void spread_rows(const float *dy, int64_t O, int64_t O_r, int64_t H, int64_t W, const layout *l, float *d)
{
#pragma omp parallel for schedule(static) if (O * H * W > TG_PARALLEL_MIN)
    for (int64_t o = 0; o < O_r; o++) {
        float *r = d + o * l->P_r;
        if (o >= O) {
            memset(r, 0, (size_t)l->P_r * sizeof(float));
            continue;
        }
        for (int64_t h = 0; h < H; h++) {
            memcpy(r + h * l->Wp, dy + (o * H + h) * W, (size_t)W * sizeof(float));
            r[h * l->Wp + W] = r[h * l->Wp + W + 1] = 0.0f;
        }
        memset(r + H * l->Wp, 0, (size_t)(l->P_r - H * l->Wp) * sizeof(float));
    }
}

/* wr[b][ci][k][j] = weight of output channel b*OB+j from input channel ci, tap k (0 past the end).
 * Forward: w is (Co, Ci, 3, 3). Transposed: w is (Ci, Co, 3, 3) and taps are rotated (k -> 8-k). */
static void repack(const float *w, int64_t Ci, int64_t Co, int64_t Co_r, int ob, bool transposed, float *wr)
{
    for (int64_t b = 0; b < Co_r / ob; b++)
        for (int64_t ci = 0; ci < Ci; ci++)
            for (int k = 0; k < 9; k++)
                for (int j = 0; j < ob; j++) {
                    const int64_t co = b * ob + j;
                    float v = 0.0f;
                    if (co < Co) v = transposed ? w[(ci * Co + co) * 9 + (8 - k)] : w[(co * Ci + ci) * 9 + k];
                    wr[((b * Ci + ci) * 9 + k) * ob + j] = v;
                }
}

bool tg_conv3x3_direct(const float *x, int64_t Ci, int64_t H, int64_t W, const float *w, int64_t Co,
                       bool transposed, float *y, bool accumulate)
{
    const isa_kind k = isa();
    const int ob = isa_ob(k);
    const layout l = make_layout(H, W, isa_block(k));
    const int64_t Co_r = round_up(Co, ob);
    float *xp = tg_scratch_alloc(1, (size_t)(Ci * l.S) * sizeof(float));
    float *wr = tg_scratch_alloc(2, (size_t)(Co_r * Ci * 9) * sizeof(float));
    float *yp = tg_scratch_alloc(3, (size_t)(Co_r * l.P_r) * sizeof(float));
    if (!xp || !wr || !yp) return false;
    pad_planes(x, Ci, H, W, &l, xp);
    repack(w, Ci, Co, Co_r, ob, transposed, wr);
    if (k == ISA_AVX512) fwd_avx512(xp, l.S, Ci, l.Wp, wr, Co_r, yp, l.P_r);
    else if (k == ISA_AVX2) fwd_avx2(xp, l.S, Ci, l.Wp, wr, Co_r, yp, l.P_r);
    else fwd_generic(xp, l.S, Ci, l.Wp, wr, Co_r, yp, l.P_r);
#pragma omp parallel for schedule(static) if (Co * H * W > TG_PARALLEL_MIN)
    for (int64_t o = 0; o < Co; o++)
        for (int64_t h = 0; h < H; h++) {
            const float *src = yp + o * l.P_r + h * l.Wp;
            float *dst = y + (o * H + h) * W;
            if (accumulate)
                for (int64_t i = 0; i < W; i++) dst[i] += src[i];
            else memcpy(dst, src, (size_t)W * sizeof(float));
        }
    return true;
}

bool tg_conv3x3_direct_dw(const float *x, int64_t C, int64_t H, int64_t W, const float *dy, int64_t O, float *dw)
{
    const isa_kind k = isa();
    const layout l = make_layout(H, W, isa_block(k));
    const int64_t O_r = round_up(O, 2), part = O_r * C * 9;
    /* One partial sum per fixed chunk of pixels, added in chunk order: the result does not
     * depend on the number of threads. */
    const int64_t chunk = 2048, n_chunks = (l.P_r + chunk - 1) / chunk;
    float *xp = tg_scratch_alloc(1, (size_t)(C * l.S) * sizeof(float));
    float *dp = tg_scratch_alloc(3, (size_t)(O_r * l.P_r) * sizeof(float));
    float *parts = tg_scratch_alloc(2, (size_t)(n_chunks * part) * sizeof(float));
    if (!xp || !dp || !parts) return false;
    pad_planes(x, C, H, W, &l, xp);
    spread_rows(dy, O, O_r, H, W, &l, dp);
    const bool parallel = O * C * H * W > 4 * TG_PARALLEL_MIN;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        float *mine = parts + ch * part;
        memset(mine, 0, (size_t)part * sizeof(float));
        const int64_t p0 = ch * chunk, p1 = p0 + chunk < l.P_r ? p0 + chunk : l.P_r;
        if (k == ISA_AVX512) dw_chunk_avx512(xp, l.S, C, l.Wp, dp, l.P_r, O_r, mine, p0, p1);
        else if (k == ISA_AVX2) dw_chunk_avx2(xp, l.S, C, l.Wp, dp, l.P_r, O_r, mine, p0, p1);
        else dw_chunk_generic(xp, l.S, C, l.Wp, dp, l.P_r, O_r, mine, p0, p1);
    }
    for (int64_t ch = 0; ch < n_chunks; ch++)
        for (int64_t i = 0; i < O * C * 9; i++) dw[i] += parts[ch * part + i];
    return true;
}
