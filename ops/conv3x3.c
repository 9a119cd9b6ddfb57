/* Direct 3x3 convolution, stride 1, padding 1 (the UNet's layers), without im2col.
 *
 * Input planes are copied into zero-bordered rows of stride Wp = W + 2, and outputs are computed
 * in the same padded-width layout: output pixel (h, w) sits at p = h*Wp + w and its tap (ki, kj)
 * reads xp[p + ki*Wp + kj], so a run of pixels is one loop with no border tests (the junk columns
 * w = W, W+1 are dropped when copying out).
 *
 * Channels in the vector lanes (the main kernels, from 8 input channels and one vector of outputs):
 *   forward   a tile is 24 pixels x 16 output channels (AVX-512) in registers, summed over input
 *             channels and taps with one aligned weight vector and 24 broadcast inputs per tap;
 *             the rows of an image are processed in bands of ~1024 pixels by one thread each
 *             (input rows padded into its scratch, output transposed back into planes with the
 *             bias, all in cache).
 *   dx        the same kernel on dy, weights transposed and rotated by 180 degrees.
 *   dW        a tile is 8 input channels x 3 taps x 16 output channels: dW[c][tap][o] += x[c][p+tap]
 *             (broadcast) * dy[p][o] (dy rows transposed per chunk). Fixed bands of rows (not
 *             threads) own partial sums, added in band order: results do not depend on the number
 *             of threads.
 *   On 2 Zen 4 cores: forward and dx 210-230 GFLOP/s in the kernel; the pixels-in-lanes kernels
 *   below reach 140-160 (their shifted vector loads are unaligned).
 * Pixels in the vector lanes (few channels, e.g. the 3-channel input layer): a block of output
 *   channels x 2-3 vectors of pixels, and dW as a reduction over pixels per fixed chunk.
 * Kernels are compiled for AVX-512, AVX2+FMA and the baseline, chosen at run time.
 */
#include "../core/core_internal.h"
#include "conv_internal.h"
#include "isa_target.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define K_NAME(x) x##_generic
#define K_OBV 1
#define K_LANES 0
#define K_VL 4
#define K_OB 4
#define K_NV 2
#define K_BCAST(p) ((K_NAME(vf)){0} + *(p))
#define K_ACC 12
#include "conv3x3_kernels.inc"

TG_TARGET_BEGIN("avx2,fma")
#define K_NAME(x) x##_avx2
#define K_OBV 2
#define K_LANES 1
#define K_VL 8
#define K_OB 4
#define K_NV 2
#define K_BCAST(p) ((K_NAME(vf))_mm256_broadcast_ss(p)) /* a load-port broadcast, not a shuffle */
#define K_ACC 12
#include "conv3x3_kernels.inc"
TG_TARGET_END

TG_TARGET_BEGIN("avx512f,fma")
#define K_NAME(x) x##_avx512
#define K_OBV 1
#define K_LANES 1
#define K_VL 16
#define K_OB 8
#define K_NV 3 /* 24 accumulators + 3 inputs + 1 weight of 32 registers */
#define K_BCAST(p) ((K_NAME(vf))_mm512_set1_ps(*(p)))
#define K_ACC 24
#include "conv3x3_kernels.inc"
TG_TARGET_END

typedef enum { ISA_GENERIC, ISA_AVX2, ISA_AVX512 } isa_kind;

static isa_kind isa(void) { return (isa_kind)tg_conv_isa_active(); }

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

/* wr[b][ci][k][j] = weight of output channel b*ob+j from input channel ci, tap k (0 past Co); ob
 * is the pixel kernels' register block, or all Co_r for the lane kernels (wr[ci][k][co]).
 * Forward: w is (Co, Ci, 3, 3). Transposed: w is (Ci, Co, 3, 3) and taps are rotated (k -> 8-k). */
static void repack(const float *w, int64_t Ci, int64_t Co, int64_t Co_r, int ob, bool transposed, float *wr)
{
#pragma omp parallel for collapse(2) schedule(static) if (Ci * Co * 9 > TG_PARALLEL_MIN)
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

/* xl[c] = rows [h0 - 1, h1 + 1) of x[c] with zero borders, row stride Wp, S floats per plane. */
static void pad_rows(const float *x, int64_t C, int64_t H, int64_t W, int64_t h0, int64_t h1, int64_t Wp, int64_t S,
                     float *xl)
{
    for (int64_t c = 0; c < C; c++) {
        float *p = xl + c * S;
        for (int64_t h = h0 - 1; h <= h1; h++, p += Wp) {
            p[0] = p[W + 1] = 0.0f;
            if (h < 0 || h >= H) memset(p + 1, 0, (size_t)W * sizeof(float));
            else memcpy(p + 1, x + (c * H + h) * W, (size_t)W * sizeof(float));
        }
        memset(p, 0, (size_t)(xl + (c + 1) * S - p) * sizeof(float));
    }
}

/* Output channels in the vector lanes, by bands of rows (one thread each, all in cache): the
 * band's input rows padded, every (pixel, channel) tile, the result transposed back into planes
 * (with the bias, or added to y). */
static bool direct_lanes(isa_kind k, const float *x, int64_t N, int64_t Ci, int64_t H, int64_t W, const float *w,
                         int64_t Co, bool transposed, float *y, bool accumulate, const float *bias)
{
    const int px = k == ISA_AVX512 ? FWDT_PX_avx512 : FWDT_PX_avx2;
    /* row stride W + 1: one zero column is the right border of a row and the left border of the
     * next, so only 1 junk output per row is computed (W = 32: 3% of the work, not 6%) */
    const int64_t Co_r = round_up(Co, k == ISA_AVX512 ? FWDT_CH_avx512 : FWDT_CH_avx2), Wp = W + 1, HW = H * W;
    /* bands of ~1024 pixels (measured best of 256-2048): input rows and output in L2. Their
     * number is rounded up so the N*n_b bands split evenly over the threads, and band b is rows
     * [b*H/n_b, (b+1)*H/n_b) (sizes differ by one row at most): a 36-row map at 2 threads was
     * 29 + 7 rows. Each output's sum does not depend on its band: the same bits. */
    int64_t R = 1024 / W < 1 ? 1 : 1024 / W;
    if (R > H) R = H;
    int64_t n_b = (H + R - 1) / R;
    const int64_t nt = omp_get_max_threads();
    if (N * n_b < 8 * nt && (N * n_b) % nt) {
        int64_t more = n_b;
        while ((N * more) % nt && more < H) more++;
        if ((N * more) % nt == 0) n_b = more;
    }
    R = (H + n_b - 1) / n_b; /* the largest band */
    const int64_t S = round_up((R + 2) * Wp + px + 2, 16), P_max = round_up(R * Wp, px);
    float *wt = tg_scratch_alloc(2, (size_t)(Ci * 9 * Co_r) * sizeof(float));
    if (!wt) return false;
    repack(w, Ci, Co, Co_r, (int)Co_r, transposed, wt); /* one block of all Co_r: wt[ci][tap][co] */
    bool ok = true;
#pragma omp parallel for schedule(static) if (N * Ci * Co * HW > TG_PARALLEL_MIN)
    for (int64_t t = 0; t < N * n_b; t++) {
        const int64_t i = t / n_b, h0 = t % n_b * H / n_b, h1 = (t % n_b + 1) * H / n_b;
        float *xl = tg_scratch_alloc(0, (size_t)(Ci * S + P_max * Co_r) * sizeof(float));
        if (!xl) {
#pragma omp atomic write
            ok = false;
            continue;
        }
        float *yt = xl + Ci * S;
        pad_rows(x + i * Ci * HW, Ci, H, W, h0, h1, Wp, S, xl);
        const int64_t P = round_up((h1 - h0) * Wp, px);
        if (k == ISA_AVX512) fwdt_avx512(xl, S, Ci, Wp, wt, Co_r, yt, P);
        else fwdt_avx2(xl, S, Ci, Wp, wt, Co_r, yt, P);
        for (int64_t h = h0; h < h1; h++) {
            const float *src = yt + (h - h0) * Wp * Co_r;
            float *dst = y + i * Co * HW + h * W;
            if (k == ISA_AVX512) transpose_avx512(src, Co_r, W, Co, dst, HW, accumulate, bias);
            else transpose_avx2(src, Co_r, W, Co, dst, HW, accumulate, bias);
        }
    }
    /* a worker's error message is its own thread's: say it again on this one */
    if (!ok) tg_error(TG_ERR_NOMEM, "conv2d: out of memory for the 3x3 kernel's band buffers");
    return ok;
}

/* The p-lanes kernel for one image (outputs with fewer channels than a vector). */
static bool direct_pixels(const float *x, int64_t Ci, int64_t H, int64_t W, const float *w, int64_t Co,
                          bool transposed, float *y, bool accumulate, const float *bias)
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
            const float b = bias ? bias[o] : 0.0f;
            if (accumulate)
                for (int64_t i = 0; i < W; i++) dst[i] += src[i] + b;
            else
                for (int64_t i = 0; i < W; i++) dst[i] = src[i] + b;
        }
    return true;
}

bool tg_conv3x3_direct(const float *x, int64_t N, int64_t Ci, int64_t H, int64_t W, const float *w, int64_t Co,
                       bool transposed, float *y, bool accumulate, const float *bias)
{
    const isa_kind k = isa();
    if (k != ISA_GENERIC && Co >= isa_vl(k) && Ci >= 8)
        return direct_lanes(k, x, N, Ci, H, W, w, Co, transposed, y, accumulate, bias);
    for (int64_t i = 0; i < N; i++)
        if (!direct_pixels(x + i * Ci * H * W, Ci, H, W, w, Co, transposed, y + i * Co * H * W, accumulate, bias))
            return false;
    return true;
}

/* The p-lanes weight gradient of one image (fewer than 8 input channels, or no AVX2). */
static bool dw_pixels(const float *x, int64_t C, int64_t H, int64_t W, const float *dy, int64_t O, float *dw)
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

/* dyt[p][o] = dy[o*ld + p] for p < P, columns o in [O, O_r) zero. */
static void transpose_rows(isa_kind k, const float *dy, int64_t ld, int64_t O, int64_t O_r, int64_t P, float *dyt)
{
    if (k == ISA_AVX512) transpose_avx512(dy, ld, O, P, dyt, O_r, false, NULL);
    else transpose_avx2(dy, ld, O, P, dyt, O_r, false, NULL);
    if (O_r > O)
        for (int64_t p = 0; p < P; p++) memset(dyt + p * O_r + O, 0, (size_t)(O_r - O) * sizeof(float));
}

/* The weight gradient of N images with output channels in the vector lanes. The rows of each
 * image are cut into a fixed number of bands (independent of the thread count); a band's pixels
 * are taken in chunks: its input rows padded and its gradient rows transposed into this thread's
 * scratch, then every tile of dwt_chunk. Bands sum into their own partial dW, added in band order
 * at the end: the result does not depend on the number of threads. */
static bool dw_lanes(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *dy, int64_t O,
                     float *dw, float *db)
{
    const isa_kind k = isa();
    const int vl = isa_vl(k);
    const int64_t O_r = round_up(O, vl), C_r = round_up(C, 8), HW = H * W, Wp = W + 2, part = C_r * 9 * O_r;
    /* chunks of ~1024 pixels; 2-16 bands, fewer when the partial sums get large (measured: 2 bands
     * for 128x128 channels, 16 bands there take twice the time) */
    const int64_t rows = W >= 1024 ? 1 : 1024 / W;
    int64_t nb = 16;
    while (nb > 2 && nb * part > (1 << 18)) nb /= 2;
    if (nb > H) nb = H;
    /* partial dW per band, then the bias gradient's per-band sums (double) */
    float *parts = tg_scratch_alloc(1, (size_t)(nb * part) * sizeof(float) + (size_t)(nb * O_r) * sizeof(double));
    if (!parts) return false;
    double *bsums = (double *)(parts + nb * part);
    const int64_t S = round_up((rows + 2) * Wp + 2, 16);
    bool ok = true;
#pragma omp parallel for schedule(static) if (N * O * C * HW > 4 * TG_PARALLEL_MIN)
    for (int64_t b = 0; b < nb; b++) {
        float *mine = parts + b * part;
        memset(mine, 0, (size_t)part * sizeof(float));
        float *xl = tg_scratch_alloc(0, (size_t)((C + 1) * S + rows * W * O_r + O_r) * sizeof(float));
        if (!xl) {
#pragma omp atomic write
            ok = false;
            continue;
        }
        float *zero_plane = xl + C * S, *dyt = zero_plane + S, *chunk_sum = dyt + rows * W * O_r;
        double *bsum = bsums + b * O_r;
        memset(zero_plane, 0, (size_t)S * sizeof(float));
        for (int64_t o = 0; o < O_r; o++) bsum[o] = 0.0;
        const int64_t hb0 = b * H / nb, hb1 = (b + 1) * H / nb;
        for (int64_t i = 0; i < N; i++)
            for (int64_t h0 = hb0; h0 < hb1; h0 += rows) {
                const int64_t R = h0 + rows < hb1 ? rows : hb1 - h0;
                pad_rows(x + i * C * HW, C, H, W, h0, h0 + R, Wp, S, xl);
                transpose_rows(k, dy + i * O * HW + h0 * W, HW, O, O_r, R * W, dyt);
                if (db) { /* the chunk's rows are in cache: sum them (float per chunk, double across) */
                    memset(chunk_sum, 0, (size_t)O_r * sizeof(float));
                    for (int64_t p = 0; p < R * W; p++)
                        for (int64_t o = 0; o < O_r; o++) chunk_sum[o] += dyt[p * O_r + o];
                    for (int64_t o = 0; o < O_r; o++) bsum[o] += chunk_sum[o];
                }
                if (k == ISA_AVX512) dwt_chunk_avx512(xl, S, C, zero_plane, Wp, W, dyt, O_r, R, mine);
                else dwt_chunk_avx2(xl, S, C, zero_plane, Wp, W, dyt, O_r, R, mine);
            }
    }
    if (!ok) {
        tg_error(TG_ERR_NOMEM, "conv2d: out of memory for the 3x3 weight gradient's band buffers");
        return false;
    }
    /* parts[0] += parts[1..nb) in band order, then dw (O, C*9) += parts[0] (C*9, O_r) transposed */
    tg_conv_sum_partials(parts, part, nb);
    if (k == ISA_AVX512) transpose_avx512(parts, O_r, C * 9, O, dw, C * 9, true, NULL);
    else transpose_avx2(parts, O_r, C * 9, O, dw, C * 9, true, NULL);
    for (int64_t o = 0; o < O && db; o++) {
        double t = 0.0;
        for (int64_t b = 0; b < nb; b++) t += bsums[b * O_r + o];
        db[o] += (float)t;
    }
    return true;
}

bool tg_conv3x3_direct_dw(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *dy,
                          int64_t O, float *dw, float *db)
{
    if (isa() != ISA_GENERIC && C >= 8) return dw_lanes(x, N, C, H, W, dy, O, dw, db);
    if (db) tg_conv_bias_grad(db, dy, N, O, H * W);
    for (int64_t i = 0; i < N; i++)
        if (!dw_pixels(x + i * C * H * W, C, H, W, dy + i * O * H * W, O, dw)) return false;
    return true;
}

void tg_conv_sum_partials(float *parts, int64_t part, int64_t n)
{
#pragma omp parallel for schedule(static) if (part * n > TG_PARALLEL_MIN)
    for (int64_t q0 = 0; q0 < part; q0 += 4096) {
        const int64_t q1 = q0 + 4096 < part ? q0 + 4096 : part;
        for (int64_t b = 1; b < n; b++)
            for (int64_t q = q0; q < q1; q++) parts[q] += parts[b * part + q];
    }
}

bool tg_conv3x3_dw_by_gemm(int64_t C, int64_t O)
{
    /* without AVX2 the pixel kernel's reduction wins up to ~64x32 channels (bench_conv: 64->32
     * yes, 32->64 no); above, one sgemm with K = H*W does better */
    return isa() == ISA_GENERIC && !(C * O <= 1024 || (C * O <= 2048 && O <= C));
}
