/* Reductions: sum, mean, max, min over a list of dims (keepdim), sum_all,
 * mean_all, argmax.
 *
 * A reduction plan drops size-1 dims and merges neighbours that are both
 * reduced or both kept, leaving alternating groups. The innermost group is
 * either reduced (each output sums contiguous rows: "row" kernels) or kept
 * (each output row accumulates contiguous column tiles: "column" kernels).
 * The reduced index range of every output is cut into chunks whose size
 * depends only on the shape; chunk partials (double for sums) are combined in
 * chunk order, so results are identical for any thread count.
 * Max/min report the first extreme element in row-major order of each reduced
 * slice (NaN counts as the extreme, as PyTorch); the gradient goes there.
 */
/* Hot loops here use selects (x > 0 ? g : 0) and the branch-free tg_expf_fast; GCC only
 * vectorizes those when FP compares may be speculated, i.e. without trapping math.
 * tapegrad never enables FP exception traps, so nothing observable changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "no-math-errno")
#endif
#include "math_internal.h"
#include "tensor_ops.h"

#include <math.h>
#include <string.h>

enum { R_SUM, R_MAX, R_MIN };

#define CHUNK 16384 /* reduced elements per work item (fixed: determinism) */
#define TILE 256    /* output columns per work item in the column kernels */

typedef struct {
    int kn, rn;                   /* outer kept / reduced dims (innermost group excluded) */
    int64_t kshape[TG_MAX_DIMS], kstride[TG_MAX_DIMS];
    int64_t rshape[TG_MAX_DIMS], rstride[TG_MAX_DIMS];
    int64_t inner;                /* size of the innermost group (stride 1) */
    bool inner_reduced;
    int64_t n_out, n_red, numel;  /* outputs, reduced elements per output, input elements */
} rplan;

static void rplan_make(rplan *p, int ndim, const int64_t *shape, const bool *mask)
{
    int64_t gs[TG_MAX_DIMS], gst[TG_MAX_DIMS];
    bool gr[TG_MAX_DIMS];
    int m = 0;
    int64_t stride = 1;
    memset(p, 0, sizeof *p);
    p->n_out = p->n_red = p->numel = 1;
    for (int d = ndim - 1; d >= 0; d--) { /* innermost first */
        p->numel *= shape[d];
        if (mask[d]) p->n_red *= shape[d];
        else p->n_out *= shape[d];
        if (shape[d] != 1) {
            if (m > 0 && gr[m - 1] == mask[d]) {
                gs[m - 1] *= shape[d];
            } else {
                gs[m] = shape[d];
                gst[m] = stride;
                gr[m] = mask[d];
                m++;
            }
        }
        stride *= shape[d];
    }
    if (m == 0) { /* one element */
        gs[0] = 1;
        gst[0] = 1;
        gr[0] = true;
        m = 1;
    }
    p->inner = gs[0];
    p->inner_reduced = gr[0];
    for (int k = m - 1; k >= 1; k--) { /* outer groups, outermost first */
        if (gr[k]) {
            p->rshape[p->rn] = gs[k];
            p->rstride[p->rn++] = gst[k];
        } else {
            p->kshape[p->kn] = gs[k];
            p->kstride[p->kn++] = gst[k];
        }
    }
}

/* Source offset of the i-th combination (row-major) of n dims. */
static inline int64_t unravel(int64_t i, int n, const int64_t *shape, const int64_t *stride)
{
    int64_t off = 0;
    for (int d = n - 1; d >= 0; d--) {
        off += (i % shape[d]) * stride[d];
        i /= shape[d];
    }
    return off;
}

/* Is v a better extreme than the best so far? (NaN beats numbers; ties keep the first.) */
static inline bool better(int mode, float v, float best)
{
    if (v != v) return best == best;
    return mode == R_MAX ? v > best : v < best;
}

/* Sum of n contiguous floats: 16 float lanes over blocks of 1024, blocks added in double. */
TG_CLONES static double sum_f32(const float *restrict x, int64_t n)
{
    double total = 0.0;
    int64_t i = 0;
    for (; i + 16 <= n;) {
        float lane[16] = {0};
        int64_t end = i + 1024 < n ? i + 1024 : n;
        for (; i + 16 <= end; i += 16)
            for (int l = 0; l < 16; l++) lane[l] += x[i + l];
        double s = 0.0;
        for (int l = 0; l < 16; l++) s += lane[l];
        total += s;
    }
    for (; i < n; i++) total += x[i];
    return total;
}

/* ---- row kernels: the innermost group is reduced ---- */

/* Output o, reduced elements [r0, r1): sum, or the best value and its source offset. */
static void row_item(const rplan *p, int mode, const float *src, int64_t o, int64_t r0, int64_t r1, double *sum,
                     float *val, int64_t *idx)
{
    const int64_t L = p->inner, base = unravel(o, p->kn, p->kshape, p->kstride);
    double acc = 0.0;
    float best = 0.0f;
    int64_t bi = -1;
    for (int64_t r = r0; r < r1;) {
        int64_t ro = r / L, ri = r % L, len = L - ri < r1 - r ? L - ri : r1 - r;
        int64_t off = base + unravel(ro, p->rn, p->rshape, p->rstride) + ri;
        const float *x = src + off;
        if (mode == R_SUM) {
            acc += sum_f32(x, len);
        } else {
            for (int64_t i = 0; i < len; i++)
                if (bi < 0 || better(mode, x[i], best)) {
                    best = x[i];
                    bi = off + i;
                }
        }
        r += len;
    }
    if (mode == R_SUM) *sum = acc;
    else {
        *val = best;
        *idx = bi;
    }
}

/* ---- column kernels: the innermost group is kept ---- */

/* Output row orow, columns [c0, c0+w), reduced rows [r0, r1). Results for column j go to
 * sum[j*step] / val[j*step], idx[j*step]. */
static void col_item(const rplan *p, int mode, const float *src, int64_t orow, int64_t c0, int64_t w, int64_t r0,
                     int64_t r1, double *sum, float *val, int64_t *idx, int64_t step)
{
    const int64_t base = unravel(orow, p->kn, p->kshape, p->kstride) + c0;
    if (mode == R_SUM) {
        double acc[TILE] = {0};
        for (int64_t r = r0; r < r1; r++) {
            const float *restrict x = src + base + unravel(r, p->rn, p->rshape, p->rstride);
            for (int64_t j = 0; j < w; j++) acc[j] += x[j];
        }
        for (int64_t j = 0; j < w; j++) sum[j * step] = acc[j];
        return;
    }
    float best[TILE];
    int64_t bi[TILE];
    int64_t off0 = base + unravel(r0, p->rn, p->rshape, p->rstride);
    for (int64_t j = 0; j < w; j++) {
        best[j] = src[off0 + j];
        bi[j] = off0 + j;
    }
    for (int64_t r = r0 + 1; r < r1; r++) {
        int64_t off = base + unravel(r, p->rn, p->rshape, p->rstride);
        const float *x = src + off;
        for (int64_t j = 0; j < w; j++)
            if (better(mode, x[j], best[j])) {
                best[j] = x[j];
                bi[j] = off + j;
            }
    }
    for (int64_t j = 0; j < w; j++) {
        val[j * step] = best[j];
        idx[j * step] = bi[j];
    }
}

/* Runs the plan. Sums: dst = scale * sum (or dst += when accumulate). Max/min: dst = value,
 * argidx = source offset of the chosen element. Needs p->n_red > 0 for max/min. */
static bool reduce_run(const rplan *p, int mode, const float *src, float *dst, int64_t *argidx, double scale,
                       bool accumulate)
{
    const int64_t n_out = p->n_out, R = p->n_red;
    if (n_out == 0) return true;
    if (R == 0) {
        assert(mode == R_SUM);
        if (!accumulate) memset(dst, 0, (size_t)n_out * sizeof(float));
        return true;
    }
    const bool par = p->numel > TG_PARALLEL_MIN;
    /* Chunks of the reduced range: elements (row kernels) or reduced rows (column kernels). */
    const int64_t per_chunk = p->inner_reduced ? CHUNK : (CHUNK / p->inner > 0 ? CHUNK / p->inner : 1);
    const int64_t nchunk = (R + per_chunk - 1) / per_chunk; /* column kernels: R counts reduced rows */
    double *psum = NULL;
    float *pval = NULL;
    int64_t *pidx = NULL;
    if (nchunk > 1) { /* partials, combined in chunk order below */
        if (mode == R_SUM) psum = tg_arena_alloc((size_t)(n_out * nchunk) * sizeof(double));
        else {
            pval = tg_arena_alloc((size_t)(n_out * nchunk) * sizeof(float));
            pidx = tg_arena_alloc((size_t)(n_out * nchunk) * sizeof(int64_t));
        }
        if (!psum && !(pval && pidx)) return false;
    } else if (mode != R_SUM) {
        pval = dst;
        pidx = argidx;
    } else {
        psum = tg_arena_alloc((size_t)n_out * sizeof(double));
        if (!psum) return false;
    }

    if (p->inner_reduced) {
        const int64_t items = n_out * nchunk;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t it = 0; it < items; it++) {
            int64_t o = it / nchunk, c = it % nchunk, r0 = c * per_chunk;
            int64_t r1 = r0 + per_chunk < R ? r0 + per_chunk : R;
            int64_t k = c * n_out + o;
            row_item(p, mode, src, o, r0, r1, psum ? psum + k : NULL, pval ? pval + k : NULL, pidx ? pidx + k : NULL);
        }
    } else {
        const int64_t L = p->inner, rows = n_out / L, tiles = (L + TILE - 1) / TILE;
        const int64_t items = rows * tiles * nchunk;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t it = 0; it < items; it++) {
            int64_t c = it % nchunk, t = it / nchunk % tiles, orow = it / nchunk / tiles;
            int64_t r0 = c * per_chunk, r1 = r0 + per_chunk < R ? r0 + per_chunk : R;
            int64_t c0 = t * TILE, w = L - c0 < TILE ? L - c0 : TILE;
            int64_t k = c * n_out + orow * L + c0;
            col_item(p, mode, src, orow, c0, w, r0, r1, psum ? psum + k : NULL, pval ? pval + k : NULL,
                     pidx ? pidx + k : NULL, 1);
        }
    }

    /* Combine chunk partials in order. */
#pragma omp parallel for schedule(static) if (par)
    for (int64_t o = 0; o < n_out; o++) {
        if (mode == R_SUM) {
            double s = 0.0;
            for (int64_t c = 0; c < nchunk; c++) s += psum[c * n_out + o];
            float v = (float)(s * scale);
            dst[o] = accumulate ? dst[o] + v : v;
        } else if (nchunk > 1) {
            float best = pval[o];
            int64_t bi = pidx[o];
            for (int64_t c = 1; c < nchunk; c++)
                if (better(mode, pval[c * n_out + o], best)) {
                    best = pval[c * n_out + o];
                    bi = pidx[c * n_out + o];
                }
            dst[o] = best;
            argidx[o] = bi;
        }
    }
    return true;
}

void tg_reduce_sum_to(const float *src, int ndim, const int64_t *shape, const int64_t *dst_shape, float *dst,
                      double scale, bool accumulate)
{
    bool mask[TG_MAX_DIMS];
    for (int d = 0; d < ndim; d++) mask[d] = dst_shape[d] == 1 && shape[d] != 1;
    rplan p;
    rplan_make(&p, ndim, shape, mask);
    reduce_run(&p, R_SUM, src, dst, NULL, scale, accumulate);
}

/* ---- the ops ---- */

/* Reads the dims argument into mask; false + error naming op on bad dims. */
static bool parse_dims(const char *op, const tg_tensor *a, const int *dims, int n_dims, bool *mask)
{
    for (int d = 0; d < TG_MAX_DIMS; d++) mask[d] = false;
    if (n_dims < 0) {
        tg_error(TG_ERR_ARG, "%s: n_dims is %d, must be >= 0 (0 reduces over all dims)", op, n_dims);
        return false;
    }
    if (n_dims == 0) {
        for (int d = 0; d < a->ndim; d++) mask[d] = true;
        return true;
    }
    if (!dims) {
        tg_error(TG_ERR_ARG, "%s: dims is NULL but n_dims is %d", op, n_dims);
        return false;
    }
    bool seen[TG_MAX_DIMS + 1] = {false};
    for (int k = 0; k < n_dims; k++) {
        int d = dims[k];
        if (!tg_normalize_dim(op, a->ndim, &d)) return false;
        if (seen[d]) {
            tg_error(TG_ERR_ARG, "%s: dim %d appears more than once in dims", op, dims[k]);
            return false;
        }
        seen[d] = true;
        if (d < a->ndim) mask[d] = true;
    }
    return true;
}

/* Output shape: reduced dims become 1 (keepdim) or disappear. */
static void reduced_shape(const tg_tensor *a, const bool *mask, bool keepdim, int *nd, int64_t *shape,
                          int64_t *keep_shape)
{
    *nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        keep_shape[d] = mask[d] ? 1 : a->shape[d];
        if (keepdim || !mask[d]) shape[(*nd)++] = keep_shape[d];
    }
}

typedef struct {
    bool reduced[TG_MAX_DIMS]; /* the summed dims of a */
    double scale;              /* 1/count for mean, else 1 */
} sum_ctx;

/* d(sum)/da: the output gradient broadcast back over the reduced dims, times scale (1/count for mean). */
static void sum_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    const sum_ctx *c = n->ctx;
    float *ga = tg_input_grad(n, 0);
    if (!ga) return;
    int64_t keep_shape[TG_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) keep_shape[d] = c->reduced[d] ? 1 : a->shape[d];
    tg_broadcast_accumulate(ga, a->ndim, a->shape, n->out->grad, keep_shape, (float)c->scale);
}
TG_OP_DEFINE(SUM_OP, sum, sum_backward);
TG_OP_DEFINE(MEAN_OP, mean, sum_backward);

static tg_tensor *sum_mean(const char *name, const tg_op_def *def, tg_tensor *a, const int *dims, int n_dims,
                           bool keepdim, bool mean)
{
    bool mask[TG_MAX_DIMS];
    if (!tg_check_f32(name, "a", a) || !parse_dims(name, a, dims, n_dims, mask)) return NULL;
    int nd;
    int64_t shape[TG_MAX_DIMS], keep_shape[TG_MAX_DIMS];
    reduced_shape(a, mask, keepdim, &nd, shape, keep_shape);
    tg_tensor *out = tg_output_new(TG_F32, nd, shape);
    if (!out) return NULL;
    rplan p;
    rplan_make(&p, a->ndim, a->shape, mask);
    double scale = mean ? 1.0 / (double)p.n_red : 1.0;
    if (!reduce_run(&p, R_SUM, a->data, out->data, NULL, scale, false)) return NULL;
    if (mean && p.n_red == 0) /* the mean of nothing is NaN, as PyTorch */
        for (int64_t i = 0; i < out->numel; i++) out->data[i] = NAN;
    tg_node *n = tg_record(def, out, 1, &a);
    sum_ctx c = {.scale = scale};
    memcpy(c.reduced, mask, sizeof c.reduced);
    if (n && !tg_save_ctx(n, &c, sizeof c)) return NULL;
    return out;
}

tg_tensor *tg_sum(tg_tensor *a, const int *dims, int n_dims, bool keepdim)
{
    return sum_mean("tg_sum", &SUM_OP, a, dims, n_dims, keepdim, false);
}

tg_tensor *tg_mean(tg_tensor *a, const int *dims, int n_dims, bool keepdim)
{
    return sum_mean("tg_mean", &MEAN_OP, a, dims, n_dims, keepdim, true);
}

tg_tensor *tg_sum_all(tg_tensor *a) { return sum_mean("tg_sum_all", &SUM_OP, a, NULL, 0, false, false); }

tg_tensor *tg_mean_all(tg_tensor *a) { return sum_mean("tg_mean_all", &MEAN_OP, a, NULL, 0, false, true); }

/* d(max)/da: the output gradient goes to the element that was chosen. */
static void extreme_backward(tg_node *n)
{
    tg_tensor *a = n->in[0];
    if (!tg_needs_grad(a)) return;
    float *ga = tg_grad(a);
    if (!ga) return;
    const int64_t *idx = n->ctx, cnt = n->out->numel;
    const float *g = n->out->grad;
    for (int64_t o = 0; o < cnt; o++) ga[idx[o]] += g[o];
}
TG_OP_DEFINE(MAX_OP, max, extreme_backward);
TG_OP_DEFINE(MIN_OP, min, extreme_backward);

/* The extreme values (a tape tensor) and their source offsets (*offsets, arena). */
static tg_tensor *extreme(const char *name, int mode, tg_tensor *a, const bool *mask, bool keepdim,
                          int64_t **offsets, rplan *p)
{
    int nd;
    int64_t shape[TG_MAX_DIMS], keep_shape[TG_MAX_DIMS];
    reduced_shape(a, mask, keepdim, &nd, shape, keep_shape);
    rplan_make(p, a->ndim, a->shape, mask);
    if (p->n_red == 0 && p->n_out > 0) {
        char s[96];
        tg_error(TG_ERR_SHAPE, "%s: cannot reduce over a dimension of size 0 (input shape %s)", name,
                 tg_shape_str(a, s, sizeof s));
        return NULL;
    }
    tg_tensor *out = tg_output_new(TG_F32, nd, shape);
    *offsets = tg_arena_alloc((size_t)(out ? out->numel : 0) * sizeof(int64_t));
    if (!out || !*offsets) return NULL;
    if (!reduce_run(p, mode, a->data, out->data, *offsets, 1.0, false)) return NULL;
    return out;
}

static tg_tensor *max_min(const char *name, const tg_op_def *def, int mode, tg_tensor *a, const int *dims,
                          int n_dims, bool keepdim)
{
    bool mask[TG_MAX_DIMS];
    if (!tg_check_f32(name, "a", a) || !parse_dims(name, a, dims, n_dims, mask)) return NULL;
    int64_t *offsets;
    rplan p;
    tg_tensor *out = extreme(name, mode, a, mask, keepdim, &offsets, &p);
    if (!out) return NULL;
    tg_node *n = tg_record(def, out, 1, &a);
    if (n) n->ctx = offsets;
    return out;
}

tg_tensor *tg_max(tg_tensor *a, const int *dims, int n_dims, bool keepdim)
{
    return max_min("tg_max", &MAX_OP, R_MAX, a, dims, n_dims, keepdim);
}

tg_tensor *tg_min(tg_tensor *a, const int *dims, int n_dims, bool keepdim)
{
    return max_min("tg_min", &MIN_OP, R_MIN, a, dims, n_dims, keepdim);
}

tg_tensor *tg_argmax(tg_tensor *a, int dim, bool keepdim)
{
    bool mask[TG_MAX_DIMS];
    if (!tg_check_f32("tg_argmax", "a", a) || !parse_dims("tg_argmax", a, &dim, 1, mask)) return NULL;
    int64_t *offsets;
    rplan p;
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *vals = extreme("tg_argmax", R_MAX, a, mask, keepdim, &offsets, &p);
    tg_set_grad_enabled(prev);
    if (!vals) return NULL;
    tg_tensor *out = tg_output_new(TG_I64, vals->ndim, vals->shape);
    if (!out) return NULL;
    int d = dim;
    tg_normalize_dim("tg_argmax", a->ndim, &d);
    int64_t stride = 1, size = a->ndim ? a->shape[d] : 1;
    for (int k = a->ndim - 1; k > d; k--) stride *= a->shape[k];
    for (int64_t o = 0; o < out->numel; o++) out->idata[o] = offsets[o] / stride % size;
    return out;
}
