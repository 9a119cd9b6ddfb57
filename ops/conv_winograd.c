/* 3x3 convolution, stride 1, padding 1, by Winograd's minimal filtering F(4x4, 3x3) (Lavin and
 * Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), channels in the vector lanes:
 * 8 with AVX2, 16 with AVX-512 (ops/conv_winograd_kernels.inc, compiled for both; the same bits).
 *
 * Each 4x4 output tile is Y = Aᵀ [ Σ_c (G g Gᵀ) ⊙ (Bᵀ d B) ] A from its 6x6 input tile d and the
 * 3x3 kernels g: the sum over input channels becomes 36 independent matrix products, with 36
 * multiplies per tile and channel pair instead of the direct kernel's 144.
 *
 * The tiles of a call are cut into units: a rectangle of tiles of one image, sized so that the
 * unit's transformed tiles stay in L2. The cut depends on the shape only, never on the thread
 * count or the vector length; units run on the OpenMP threads, each in its thread's scratch. Per unit:
 *   1. the unit's input rows, channels last: xs[row][col][C_r] (zeros outside the image; 8x8
 *      blocks transposed in AVX2 registers);
 *   2. input transform, a vector of channels at a time: V[ξ][t][C_r] = (Bᵀ d_t B)[ξ], ξ = 6*i + j;
 *   3. 36 products M[ξ] (T6 x O_r) = V[ξ] (T6 x C_r) . U[ξ] (C_r x O_r), a register block of
 *      6 tiles x 2 vectors of output channels summed with FMA over the input channels (U = G g Gᵀ
 *      is transformed once per call, in double);
 *   4. output transform Aᵀ m A per tile into ys[row][col][O_r], then back into planes (with the
 *      bias, or added to y).
 * The input gradient is the same convolution of dy with the kernels transposed and rotated.
 * Weight gradient: dM = A dY Aᵀ per tile, dU[ξ] (C_r x O_r) += V[ξ]ᵀ . dM[ξ] over the batch's
 * tiles, in a fixed number of groups of units whose partial sums are added in group order (so
 * independent of the thread count), then dW += Gᵀ dU G in double.
 *
 * Accuracy: the transforms' constants (up to 8 and 1/24) cost about 2-4 bits against the direct
 * kernels; tests/test_conv3x3.c holds every path to the float64 definition.
 */
#include "../core/core_internal.h"
#include "conv_internal.h"
#include "isa_target.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

enum { VL = 8 /* the staging transposes' width */, TB = 6 /* tiles per register block */ };

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* ---- the cut into units ---------------------------------------------------------------------- */

typedef struct {
    int64_t N, C, O, H, W;  /* the convolution: C channels summed into O */
    int64_t C_r, O_r;       /* channels rounded up to the vector length */
    int64_t th, tw;         /* tiles per image: rows, columns */
    int64_t ur, uc;         /* tiles per unit: rows, columns */
    int64_t nur, nuc, n_units;
    int64_t T6;             /* tiles of the largest unit, rounded up to the register block */
} wino_geom;

/* lanes: the vector length of the kernels (8 or 16). The cut into units counts channels in 8s
 * whatever the lanes, so both kernel sets sum the same terms in the same order. */
static wino_geom make_geom(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int lanes)
{
    wino_geom g = {.N = N, .C = C, .O = O, .H = H, .W = W, .C_r = round_up(C, lanes), .O_r = round_up(O, lanes)};
    g.th = (H + 3) / 4;
    g.tw = (W + 3) / 4;
    /* V and M of a unit: 36 * T * (C_r + O_r) floats; ~512 KB, at least 24 tiles */
    int64_t T = ((int64_t)1 << 17) / (36 * (round_up(C, 8) + round_up(O, 8)));
    if (T < 24) T = 24;
    g.uc = g.tw < T ? g.tw : T;
    g.ur = T / g.uc;
    if (g.ur > g.th) g.ur = g.th;
    g.nur = (g.th + g.ur - 1) / g.ur;
    g.nuc = (g.tw + g.uc - 1) / g.uc;
    g.n_units = N * g.nur * g.nuc;
    g.T6 = round_up(g.ur * g.uc, TB);
    return g;
}

/* Unit u: image i, tile rows [r0, r0 + R), tile columns [c0, c0 + Cn). */
typedef struct {
    int64_t i, r0, R, c0, Cn;
} wino_unit;

static wino_unit unit_of(const wino_geom *g, int64_t u)
{
    wino_unit w;
    w.i = u / (g->nur * g->nuc);
    const int64_t rc = u % (g->nur * g->nuc), ru = rc / g->nuc, cu = rc % g->nuc;
    w.r0 = ru * g->ur;
    w.R = w.r0 + g->ur <= g->th ? g->ur : g->th - w.r0;
    w.c0 = cu * g->uc;
    w.Cn = w.c0 + g->uc <= g->tw ? g->uc : g->tw - w.c0;
    return w;
}

/* ---- transforms of the kernels (double) ------------------------------------------------------ */

/* u = G g: 3 values to 6 (multiplications by the reciprocals: divisions cost 10x more). */
static void g_apply(const double g[3], double u[6])
{
    const double s = g[0] + g[2];
    u[0] = g[0] * 0.25;
    u[1] = -(s + g[1]) * (1.0 / 6);
    u[2] = -(s - g[1]) * (1.0 / 6);
    u[3] = g[0] * (1.0 / 24) + g[1] * (1.0 / 12) + g[2] * (1.0 / 6);
    u[4] = g[0] * (1.0 / 24) - g[1] * (1.0 / 12) + g[2] * (1.0 / 6);
    u[5] = g[2];
}

/* g = Gᵀ u: 6 values to 3 (the adjoint of g_apply). */
static void gt_apply(const double u[6], double g[3])
{
    g[0] = u[0] * 0.25 - (u[1] + u[2]) * (1.0 / 6) + (u[3] + u[4]) * (1.0 / 24);
    g[1] = (u[2] - u[1]) * (1.0 / 6) + (u[3] - u[4]) * (1.0 / 12);
    g[2] = (u[3] + u[4] - u[1] - u[2]) * (1.0 / 6) + u[5];
}

/* U[ξ][c][O_r] = (G g Gᵀ)[ξ] for the kernel g from input channel c to output o (zero past Ci, Co).
 * Forward: w is (Co, Ci, 3, 3); transposed: (Ci, Co, 3, 3) rotated by 180 degrees. Blocks of 16
 * outputs go through tmp, so each ξ gets one run of 16 stores (not 36 streams 4 bytes wide). */
static void transform_kernels(const float *w, int64_t Ci, int64_t Co, int64_t C_r, int64_t O_r, bool transposed,
                              float *U)
{
    enum { OB = 16 };
#pragma omp parallel for collapse(2) schedule(static) if (Ci * Co * 36 > TG_PARALLEL_MIN)
    for (int64_t c = 0; c < C_r; c++)
        for (int64_t o0 = 0; o0 < O_r; o0 += OB) {
            float tmp[36][OB];
            const int64_t n = O_r - o0 < OB ? O_r - o0 : OB;
            for (int64_t j = 0; j < n; j++) {
                const int64_t o = o0 + j;
                double g[3][3] = {{0}};
                if (c < Ci && o < Co)
                    for (int k = 0; k < 9; k++)
                        g[k / 3][k % 3] = transposed ? w[(c * Co + o) * 9 + (8 - k)] : w[(o * Ci + c) * 9 + k];
                double col[3][6], row[3], u[6]; /* col[b] = G g[.][b] */
                for (int b = 0; b < 3; b++) {
                    const double gb[3] = {g[0][b], g[1][b], g[2][b]};
                    g_apply(gb, col[b]);
                }
                for (int i = 0; i < 6; i++) {
                    for (int b = 0; b < 3; b++) row[b] = col[b][i];
                    g_apply(row, u);
                    for (int l = 0; l < 6; l++) tmp[6 * i + l][j] = (float)u[l];
                }
            }
            for (int x = 0; x < 36; x++) memcpy(U + ((int64_t)x * C_r + c) * O_r + o0, tmp[x], (size_t)n * sizeof(float));
        }
}

/* dw[o][c] += (Gᵀ dU G) for the 6x6 dU[ξ][c][O_r] (c < C, o < O). Blocks of 16 outputs are read
 * through tmp: 36 runs of 16 loads, not 36 strided loads per kernel. */
static void kernel_gradients(const float *dU, int64_t C, int64_t O, int64_t C_r, int64_t O_r, float *dw)
{
    enum { OB = 16 };
#pragma omp parallel for collapse(2) schedule(static) if (C * O * 36 > TG_PARALLEL_MIN)
    for (int64_t c = 0; c < C; c++)
        for (int64_t o0 = 0; o0 < O; o0 += OB) {
            float tmp[36][OB];
            const int64_t n = O - o0 < OB ? O - o0 : OB;
            for (int x = 0; x < 36; x++) memcpy(tmp[x], dU + ((int64_t)x * C_r + c) * O_r + o0, (size_t)n * sizeof(float));
            for (int64_t j = 0; j < n; j++) {
                double half[6][3], u[6], g[3]; /* half[i] = Gᵀ dU[i][.] */
                for (int i = 0; i < 6; i++) {
                    for (int l = 0; l < 6; l++) u[l] = tmp[6 * i + l][j];
                    gt_apply(u, half[i]);
                }
                float *d = dw + ((o0 + j) * C + c) * 9;
                for (int b = 0; b < 3; b++) {
                    for (int i = 0; i < 6; i++) u[i] = half[i][b];
                    gt_apply(u, g);
                    for (int a = 0; a < 3; a++) d[a * 3 + b] += (float)g[a];
                }
            }
        }
}

/* ---- AVX2 kernels ---------------------------------------------------------------------------- */

TG_TARGET_BEGIN("avx2,fma")


/* r[k] = column k of the 8x8 matrix whose rows were r[0..8). */
static inline __attribute__((always_inline)) void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}

/* xs[r][c][C_r] = x[ch][h0 + r][w0 + c] for r < rows, c < cols (channels last), zero outside the
 * image and for channels ch >= C: 8 channels x 8 columns transposed in registers. */
static void stage_channels_last(const float *x, int64_t C, int64_t C_r, int64_t H, int64_t W, int64_t h0,
                                int64_t rows, int64_t w0, int64_t cols, float *xs)
{
    const int64_t c_lo = w0 < 0 ? -w0 : 0, c_hi = w0 + cols > W ? W - w0 : cols;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t h = h0 + r;
        float *dst = xs + r * cols * C_r;
        if (h < 0 || h >= H || c_hi <= c_lo) {
            memset(dst, 0, (size_t)(cols * C_r) * sizeof(float));
            continue;
        }
        memset(dst, 0, (size_t)(c_lo * C_r) * sizeof(float));
        memset(dst + c_hi * C_r, 0, (size_t)((cols - c_hi) * C_r) * sizeof(float));
        for (int64_t ch0 = 0; ch0 < C_r; ch0 += VL) {
            const float *src[VL]; /* column c of channel ch0 + k is src[k][c - c_lo]; NULL: a zero channel */
            for (int k = 0; k < VL; k++) src[k] = ch0 + k < C ? x + ((ch0 + k) * H + h) * W + (w0 + c_lo) : NULL;
            int64_t c = c_lo;
            for (; c + VL <= c_hi; c += VL) {
                __m256 v[VL];
                for (int k = 0; k < VL; k++) v[k] = src[k] ? _mm256_loadu_ps(src[k] + (c - c_lo)) : _mm256_setzero_ps();
                transpose8(v);
                for (int j = 0; j < VL; j++) _mm256_storeu_ps(dst + (c + j) * C_r + ch0, v[j]);
            }
            for (; c < c_hi; c++)
                for (int k = 0; k < VL; k++) dst[c * C_r + ch0 + k] = src[k] ? src[k][c - c_lo] : 0.0f;
        }
    }
}

/* y[o][h0 + r][w0 + c] (+)= ys[r][c][o] (+ bias[o]) inside the image (w0 >= 0): 8 columns x 8
 * channels transposed in registers. */
static void unstage_planes(const float *ys, int64_t O, int64_t O_r, int64_t H, int64_t W, int64_t h0, int64_t rows,
                           int64_t w0, int64_t cols, float *y, bool accumulate, const float *bias)
{
    const int64_t r_hi = h0 + rows > H ? H - h0 : rows, c_hi = w0 + cols > W ? W - w0 : cols;
    for (int64_t r = 0; r < r_hi; r++) {
        const float *src = ys + r * cols * O_r;
        for (int64_t o0 = 0; o0 < O; o0 += VL) {
            const int n = O - o0 < VL ? (int)(O - o0) : VL;
            float *dst[VL];
            float b[VL] = {0};
            for (int k = 0; k < n; k++) {
                dst[k] = y + ((o0 + k) * H + h0 + r) * W + w0;
                if (bias) b[k] = bias[o0 + k];
            }
            int64_t c = 0;
            for (; c + VL <= c_hi; c += VL) {
                __m256 v[VL];
                for (int j = 0; j < VL; j++) v[j] = _mm256_loadu_ps(src + (c + j) * O_r + o0);
                transpose8(v);
                for (int k = 0; k < n; k++) {
                    __m256 t = _mm256_add_ps(v[k], _mm256_set1_ps(b[k]));
                    if (accumulate) t = _mm256_add_ps(_mm256_loadu_ps(dst[k] + c), t);
                    _mm256_storeu_ps(dst[k] + c, t);
                }
            }
            for (; c < c_hi; c++)
                for (int k = 0; k < n; k++) {
                    const float t = src[c * O_r + o0 + k] + b[k];
                    dst[k][c] = accumulate ? dst[k][c] + t : t;
                }
        }
    }
}

TG_TARGET_END

/* ---- the vector kernels, per instruction set ------------------------------------------------- */

TG_TARGET_BEGIN("avx2,fma")
#define W_NAME(x) x##_avx2
#define W_VL 8
#define W_V __m256
#define W_LOADU _mm256_loadu_ps
#define W_STOREU _mm256_storeu_ps
#define W_BCAST _mm256_broadcast_ss
#define W_FMADD _mm256_fmadd_ps
#define W_ADD _mm256_add_ps
#define W_ZERO _mm256_setzero_ps
#include "conv_winograd_kernels.inc"
TG_TARGET_END

TG_TARGET_BEGIN("avx512f,fma")
#define W_NAME(x) x##_avx512
#define W_VL 16
#define W_V __m512
#define W_LOADU _mm512_loadu_ps
#define W_STOREU _mm512_storeu_ps
#define W_BCAST(p) _mm512_set1_ps(*(p))
#define W_FMADD _mm512_fmadd_ps
#define W_ADD _mm512_add_ps
#define W_ZERO _mm512_setzero_ps
#include "conv_winograd_kernels.inc"
TG_TARGET_END

/* ---- the calls ------------------------------------------------------------------------------- */

bool tg_conv3x3_winograd_ok(void) { return tg_cpu().avx2_fma; }

/* The vector kernels of one instruction set. */
typedef struct {
    int lanes;
    void (*input_transform)(const float *xs, const wino_unit *u, int64_t C_r, int64_t T6, float *V);
    void (*gradient_transform)(const float *gs, const wino_unit *u, int64_t O_r, int64_t T6, float *dM);
    void (*output_transform)(const float *M, const wino_unit *u, int64_t O_r, int64_t T6, float *ys);
    void (*products)(const float *V, const float *U, int64_t C_r, int64_t O_r, int64_t T6, float *M);
    void (*products_t)(const float *V, const float *dM, int64_t C_r, int64_t O_r, int64_t T6, float *dU);
} wino_kernels;

static const wino_kernels K_AVX2 = {8, input_transform_avx2, gradient_transform_avx2, output_transform_avx2,
                                    products_avx2, products_t_avx2};
static const wino_kernels K_AVX512 = {16, input_transform_avx512, gradient_transform_avx512, output_transform_avx512,
                                      products_avx512, products_t_avx512};

/* AVX-512 kernels where the conv kernels' instruction set (the CPU's, or the testing cap) is. */
static const wino_kernels *kernels(void) { return tg_conv_isa_active() >= 2 ? &K_AVX512 : &K_AVX2; }

/* Scratch of one unit in this thread's slot 0: staged input, V, M (or dM), staged output (or
 * gradient). */
static float *unit_scratch(const wino_geom *g, float **V, float **M, float **ys)
{
    const int64_t xs_n = round_up((4 * g->ur + 2) * (4 * g->uc + 2) * g->C_r, 16);
    const int64_t V_n = 36 * g->T6 * g->C_r, M_n = 36 * g->T6 * g->O_r, ys_n = 16 * g->ur * g->uc * g->O_r;
    float *xs = tg_scratch_alloc(0, (size_t)(xs_n + V_n + M_n + ys_n) * sizeof(float));
    if (!xs) return NULL;
    *V = xs + xs_n;
    *M = *V + V_n;
    *ys = *M + M_n;
    return xs;
}

bool tg_conv3x3_winograd(const float *x, int64_t N, int64_t Ci, int64_t H, int64_t W, const float *w, int64_t Co,
                         bool transposed, float *y, bool accumulate, const float *bias)
{
    const wino_kernels *kn = kernels();
    const wino_geom g = make_geom(N, Ci, Co, H, W, kn->lanes);
    float *U = tg_scratch_alloc(2, (size_t)(36 * g.C_r * g.O_r) * sizeof(float));
    if (!U) return false;
    transform_kernels(w, Ci, Co, g.C_r, g.O_r, transposed, U);
    bool ok = true;
#pragma omp parallel for schedule(static) if (N * Ci * Co * H * W > TG_PARALLEL_MIN)
    for (int64_t k = 0; k < g.n_units; k++) {
        float *V, *M, *ys, *xs = unit_scratch(&g, &V, &M, &ys);
        if (!xs) {
#pragma omp atomic write
            ok = false;
            continue;
        }
        const wino_unit u = unit_of(&g, k);
        stage_channels_last(x + u.i * Ci * H * W, Ci, g.C_r, H, W, 4 * u.r0 - 1, 4 * u.R + 2, 4 * u.c0 - 1,
                            4 * u.Cn + 2, xs);
        kn->input_transform(xs, &u, g.C_r, g.T6, V);
        kn->products(V, U, g.C_r, g.O_r, g.T6, M);
        kn->output_transform(M, &u, g.O_r, g.T6, ys);
        unstage_planes(ys, Co, g.O_r, H, W, 4 * u.r0, 4 * u.R, 4 * u.c0, 4 * u.Cn, y + u.i * Co * H * W, accumulate,
                       bias);
    }
    if (!ok) tg_error(TG_ERR_NOMEM, "conv2d: out of memory for the Winograd kernel's tile buffers");
    return ok;
}

bool tg_conv3x3_winograd_dw(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *dy, int64_t O,
                            float *dw)
{
    const wino_kernels *kn = kernels();
    const wino_geom g = make_geom(N, C, O, H, W, kn->lanes);
    const int64_t part = 36 * g.C_r * g.O_r;
    /* the batch's units in ng fixed groups of consecutive units, each summing into its own partial
     * dU: 8 groups, fewer when the partial sums get large (at least 2) */
    int64_t ng = 8;
    while (ng > 2 && ng * part > ((int64_t)1 << 21)) ng /= 2;
    if (ng > g.n_units) ng = g.n_units;
    float *parts = tg_scratch_alloc(1, (size_t)(ng * part) * sizeof(float));
    if (!parts) return false;
    bool ok = true;
#pragma omp parallel for schedule(static) if (N * C * O * H * W > TG_PARALLEL_MIN)
    for (int64_t gi = 0; gi < ng; gi++) {
        float *mine = parts + gi * part;
        memset(mine, 0, (size_t)part * sizeof(float));
        float *V, *dM, *gs, *xs = unit_scratch(&g, &V, &dM, &gs);
        if (!xs) {
#pragma omp atomic write
            ok = false;
            continue;
        }
        for (int64_t k = gi * g.n_units / ng; k < (gi + 1) * g.n_units / ng; k++) {
            const wino_unit u = unit_of(&g, k);
            stage_channels_last(x + u.i * C * H * W, C, g.C_r, H, W, 4 * u.r0 - 1, 4 * u.R + 2, 4 * u.c0 - 1,
                                4 * u.Cn + 2, xs);
            kn->input_transform(xs, &u, g.C_r, g.T6, V);
            stage_channels_last(dy + u.i * O * H * W, O, g.O_r, H, W, 4 * u.r0, 4 * u.R, 4 * u.c0, 4 * u.Cn, gs);
            kn->gradient_transform(gs, &u, g.O_r, g.T6, dM);
            kn->products_t(V, dM, g.C_r, g.O_r, g.T6, mine);
        }
    }
    if (!ok) {
        tg_error(TG_ERR_NOMEM, "conv2d: out of memory for the Winograd weight gradient's tile buffers");
        return false;
    }
    tg_conv_sum_partials(parts, part, ng);
    kernel_gradients(parts, C, O, g.C_r, g.O_r, dw);
    return true;
}
