/* cross_entropy (fused log-softmax + NLL) and nll_loss.
 *
 * Layout: input (N,C,S) with S = d1*..*dK (S = 1 for (N,C); N = 1 for (C)); class c
 * of pixel p of image n is x[(n*C + c)*S + p], so every inner loop runs over a block
 * of pixels with the class stride S and vectorizes. OpenMP splits the (image, pixel
 * block) pairs; each block writes its own partial sums, added in block order, so
 * results do not depend on the thread count.
 *
 * Forward (one pass per pixel block): max, e = exp(x - max) (one exp per element), lse,
 * the loss, and, when a gradient is wanted, the unscaled per-element derivative
 * d = w_y*(softmax - onehot) (+ the smoothing term), written over e in place. Backward
 * is then grad += upstream/denominator * d, one streaming pass with no exp. */
/* Our kernels never read the floating-point exception flags: without this GCC will not
 * if-convert float selects (clamps in tg_expf_fast, sigmoid's branch) and the loops stay scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>

#include "loss.h"
#include "loss_util.h"

#define CE_BLK 512 /* pixels per block */

typedef struct {
    const float *x;      /* (N,C,S) logits (CE) or log-probabilities (NLL) */
    const int64_t *t;    /* (N,S) class indices, or NULL */
    const float *tp;     /* (N,C,S) class probabilities, or NULL */
    const float *w;      /* (C) class weights (ones if none given) */
    double W;            /* sum of w */
    int64_t N, C, S, ignore;
    float eps;           /* label smoothing */
    bool logits;         /* CE (softmax) or NLL */
    float *d;            /* (N,C,S) saved derivative dl_pixel/dx (CE only), or NULL */
    double scale;        /* reduced: dL/dl = upstream * scale */
    bool none;
} ce_args;

TG_INLINE int64_t ce_nblocks(const ce_args *a) { return a->N * ((a->S + CE_BLK - 1) / CE_BLK); }

/* Block b -> image n, first pixel p0, length L. */
TG_INLINE void ce_block_range(const ce_args *a, int64_t b, int64_t *n, int64_t *p0, int64_t *L)
{
    int64_t nbs = (a->S + CE_BLK - 1) / CE_BLK;
    *n = b / nbs;
    *p0 = (b % nbs) * CE_BLK;
    *L = a->S - *p0 < CE_BLK ? a->S - *p0 : CE_BLK;
}

/* log-sum-exp over classes of one pixel block (lse = 0 for NLL). With e != NULL (stride S),
 * also stores e_c = exp(x_c - max) and inv = 1/sum_c e_c for the derivative. */
TG_INLINE void ce_block_lse(const ce_args *a, const float *xb, int64_t L, float *lse, float *e, float *inv)
{
    int64_t C = a->C, S = a->S;
    if (!a->logits) {
        for (int64_t p = 0; p < L; p++) lse[p] = 0.0f;
        return;
    }
    float m[CE_BLK], s[CE_BLK];
    for (int64_t p = 0; p < L; p++) m[p] = xb[p];
    for (int64_t c = 1; c < C; c++)
        for (int64_t p = 0; p < L; p++) m[p] = tgl_maxf(m[p], xb[c * S + p]);
    for (int64_t p = 0; p < L; p++) s[p] = 0.0f;
    if (e) {
        for (int64_t c = 0; c < C; c++) {
            const float *restrict xc = xb + c * S;
            float *restrict ec = e + c * S;
            for (int64_t p = 0; p < L; p++) {
                float v = tg_expf_fast(xc[p] - m[p], TG_EXP_FLUSH);
                ec[p] = v;
                s[p] += v;
            }
        }
        for (int64_t p = 0; p < L; p++) inv[p] = 1.0f / s[p];
    } else {
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < L; p++) s[p] += tg_expf_fast(xb[c * S + p] - m[p], TG_EXP_FLUSH);
    }
    /* s is NaN when a logit is NaN or +inf (x - max NaN), and tg_logf_fast does not keep NaN: select it */
    for (int64_t p = 0; p < L; p++) lse[p] = m[p] + (s[p] == s[p] ? tg_logf_fast(s[p]) : s[p]);
}

/* Class labels of a block: y in [0,C), -1 for ignored. Returns false on an out-of-range target. */
TG_INLINE bool ce_block_labels(const ce_args *a, const int64_t *restrict tb, int64_t L, int32_t *restrict y)
{
    int bad = 0;
    uint64_t C = (uint64_t)a->C;
    int64_t ignore = a->ignore;
    for (int64_t p = 0; p < L; p++) {
        int64_t v = tb[p];
        int ign = v == ignore, oob = (uint64_t)v >= C; /* negative values wrap to huge */
        bad |= oob & !ign;
        y[p] = ign | oob ? -1 : (int32_t)v;
    }
    return !bad;
}

/* Per pixel of a block: the target's logit x_y and weight w_y (both 0 where y < 0), by a
 * select per class (vectorizes; no gather). */
TG_INLINE void ce_block_pick(const ce_args *a, const float *xb, const int32_t *restrict y, int64_t L,
                          float *restrict xy, float *restrict wy)
{
    for (int64_t p = 0; p < L; p++) xy[p] = 0.0f, wy[p] = 0.0f;
    for (int64_t c = 0; c < a->C; c++) {
        const float *restrict xc = xb + c * a->S;
        float wc = a->w[c];
        int32_t ci = (int32_t)c;
        for (int64_t p = 0; p < L; p++) {
            float xv = xc[p], xo = xy[p], wo = wy[p]; /* unconditional loads: a select, no branch */
            bool hit = y[p] == ci;
            xy[p] = hit ? xv : xo; /* (not hit*xv: 0 * -inf logits would give NaN) */
            wy[p] = hit ? wc : wo;
        }
    }
}

/* Index targets, label smoothing: lv += eps/C * sum_c w_c (lse - x_c) on the pixels not ignored. */
TG_INLINE void ce_block_smoothing(const ce_args *a, const float *xb, const int32_t *restrict y, int64_t L,
                                   const float *lse, float *restrict lv)
{
    const float epc = a->eps / (float)a->C;
    float sm[CE_BLK]; /* sum_c w_c (lse - x_c) */
    for (int64_t p = 0; p < L; p++) sm[p] = 0.0f;
    for (int64_t c = 0; c < a->C; c++) {
        float wc = a->w[c];
        for (int64_t p = 0; p < L; p++) sm[p] += wc * (lse[p] - xb[c * a->S + p]);
    }
    for (int64_t p = 0; p < L; p++) lv[p] += y[p] >= 0 ? epc * sm[p] : 0.0f;
}

/* Index targets: turns e = exp(x - max) in db (stride S) into the derivative d_c of each pixel's loss. */
TG_INLINE void ce_block_index_derivative(const ce_args *a, float *db, const int32_t *restrict y,
                                          const float *restrict wy, const float *restrict inv, int64_t L)
{
    const float eps = a->eps, keep = 1.0f - eps, epc = eps / (float)a->C, W = (float)a->W;
    if (eps > 0) { /* d_c = (keep*w_y + epc*W)*p_c - keep*w_y*[c == y] - epc*w_c (0 where ignored) */
        float A[CE_BLK], B[CE_BLK], E[CE_BLK];
        for (int64_t p = 0; p < L; p++) {
            B[p] = keep * wy[p];
            E[p] = y[p] >= 0 ? epc : 0.0f;
            A[p] = (B[p] + E[p] * W) * inv[p];
        }
        for (int64_t c = 0; c < a->C; c++) {
            float *restrict dc = db + c * a->S, wc = a->w[c];
            int32_t ci = (int32_t)c;
            for (int64_t p = 0; p < L; p++) dc[p] = A[p] * dc[p] - (y[p] == ci ? B[p] : 0.0f) - E[p] * wc;
        }
    } else { /* no smoothing: d_c = w_y*(p_c - [c == y]). Only the target's weight enters (the sum of the
              * weights W and the other w_c do not), so a NaN/Inf weight of a class no target uses leaves
              * the gradient finite, as PyTorch's. Same bits as the general formula with eps = 0 for finite
              * non-negative weights. */
        float A[CE_BLK], B[CE_BLK];
        for (int64_t p = 0; p < L; p++) {
            B[p] = keep * wy[p];
            A[p] = B[p] * inv[p];
        }
        for (int64_t c = 0; c < a->C; c++) {
            float *restrict dc = db + c * a->S;
            int32_t ci = (int32_t)c;
            for (int64_t p = 0; p < L; p++) dc[p] = A[p] * dc[p] - (y[p] == ci ? B[p] : 0.0f);
        }
    }
}

/* Index targets tb (L pixels): per-pixel losses into lv, the weight sum into *sw, the derivative
 * into db if set. Returns false if a target is out of range. */
TG_INLINE bool ce_block_index(const ce_args *a, const float *xb, const int64_t *tb, float *db, int64_t L,
                               const float *lse, const float *inv, float *restrict lv, double *sw)
{
    const float keep = 1.0f - a->eps;
    int32_t y[CE_BLK];
    bool ok = ce_block_labels(a, tb, L, y);
    float xy[CE_BLK], wy[CE_BLK];
    ce_block_pick(a, xb, y, L, xy, wy);
    /* 0 where ignored, by a select, so that an ignored pixel's NaN/Inf logits (lse NaN) do not count, as
     * PyTorch. (The zero keeps the sign that keep*0*lse gave before, for the same bits in 'none' outputs.) */
    for (int64_t p = 0; p < L; p++) lv[p] = y[p] >= 0 ? keep * wy[p] * (lse[p] - xy[p]) : copysignf(0.0f, lse[p]);
    *sw = tgl_sum_block(wy, L);
    if (a->eps > 0) ce_block_smoothing(a, xb, y, L, lse, lv);
    if (db) ce_block_index_derivative(a, db, y, wy, inv, L);
    return ok;
}

/* Probability targets tb ((C, L) with stride S): l = sum_c w_c y'_c (lse - x_c), y' = keep*y + eps/C,
 * per pixel into lv; the derivative d_c = p_c * sum_k w_k y'_k - w_c y'_c into db if set. */
TG_INLINE void ce_block_prob(const ce_args *a, const float *xb, const float *tb, float *db, int64_t L,
                              const float *lse, const float *inv, float *restrict lv)
{
    const int64_t C = a->C, S = a->S;
    const float keep = 1.0f - a->eps, epc = a->eps / (float)C;
    for (int64_t p = 0; p < L; p++) lv[p] = 0.0f;
    for (int64_t c = 0; c < C; c++) {
        float wc = a->w[c];
        for (int64_t p = 0; p < L; p++) lv[p] += wc * (keep * tb[c * S + p] + epc) * (lse[p] - xb[c * S + p]);
    }
    if (!db) return;
    float sy[CE_BLK];
    for (int64_t p = 0; p < L; p++) sy[p] = 0.0f;
    for (int64_t c = 0; c < C; c++) {
        float wc = a->w[c];
        for (int64_t p = 0; p < L; p++) sy[p] += wc * (keep * tb[c * S + p] + epc);
    }
    for (int64_t p = 0; p < L; p++) sy[p] *= inv[p];
    for (int64_t c = 0; c < C; c++) {
        float *restrict dc = db + c * S, wc = a->w[c];
        const float *restrict tc = tb + c * S;
        for (int64_t p = 0; p < L; p++) dc[p] = sy[p] * dc[p] - wc * (keep * tc[p] + epc);
    }
}

/* Forward of pixel block b: loss sum (and weight sum for index targets) into part_l/part_w[b],
 * per-pixel losses into `none_out` if given, the derivative into a->d if set.
 * Returns false if a target is out of range. */
TG_CLONES static bool ce_forward_block(const ce_args *a, int64_t b, float *none_out, double *part_l, double *part_w)
{
    const int64_t C = a->C, S = a->S;
    int64_t n, p0, L;
    ce_block_range(a, b, &n, &p0, &L);
    const float *xb = a->x + n * C * S + p0;
    float *db = a->d ? a->d + n * C * S + p0 : NULL; /* (C, L) with stride S */
    float lse[CE_BLK], lv[CE_BLK], inv[CE_BLK];
    ce_block_lse(a, xb, L, lse, db, inv);
    double sw = 0;
    bool ok = true;
    if (a->t) ok = ce_block_index(a, xb, a->t + n * S + p0, db, L, lse, inv, lv, &sw);
    else ce_block_prob(a, xb, a->tp + n * C * S + p0, db, L, lse, inv, lv);
    part_l[b] = tgl_sum_block(lv, L);
    part_w[b] = sw;
    if (none_out) memcpy(none_out + n * S + p0, lv, (size_t)L * sizeof(float));
    return ok;
}

/* Forward over all blocks; returns the first bad block or -1. */
static int64_t ce_forward(const ce_args *a, float *none_out, double *part_l, double *part_w)
{
    int64_t nb = ce_nblocks(a), first_bad = -1;
#pragma omp parallel for if (a->N * a->C * a->S > TG_PARALLEL_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        if (!ce_forward_block(a, b, none_out, part_l, part_w)) {
#pragma omp critical(tg_ce_bad)
            if (first_bad < 0 || b < first_bad) first_bad = b;
        }
    }
    return first_bad;
}

static void ce_backward(tg_node *node)
{
    const ce_args *a = node->ctx;
    tg_tensor *xin = node->in[0];
    if (!a || !tg_needs_grad(xin)) return;
    float *gx = tg_grad(xin);
    if (!gx) return;
    const float *go = node->out->grad;
    int64_t nb = ce_nblocks(a), C = a->C, S = a->S, m = xin->numel;
    float gs = a->none ? 0.0f : (float)(go[0] * a->scale);
    if (a->d && !a->none) { /* one streaming pass */
        const float *restrict d = a->d;
#pragma omp parallel for if (m > TG_PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < m; i++) gx[i] += gs * d[i];
        return;
    }
#pragma omp parallel for if (m > TG_PARALLEL_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t n, p0, L;
        ce_block_range(a, b, &n, &p0, &L);
        float *gb = gx + n * C * S + p0;
        float g[CE_BLK];
        for (int64_t p = 0; p < L; p++) g[p] = a->none ? go[n * S + p0 + p] : gs;
        if (a->d) { /* 'none': per-pixel upstream */
            const float *db = a->d + n * C * S + p0;
            for (int64_t c = 0; c < C; c++) {
                float *restrict gc = gb + c * S;
                const float *restrict dc = db + c * S;
                for (int64_t p = 0; p < L; p++) gc[p] += g[p] * dc[p];
            }
            continue;
        }
        /* nll_loss: -w_y at the target class */
        int32_t y[CE_BLK];
        float xy[CE_BLK], wy[CE_BLK];
        ce_block_labels(a, a->t + n * S + p0, L, y);
        ce_block_pick(a, a->x + n * C * S + p0, y, L, xy, wy);
        for (int64_t p = 0; p < L; p++)
            if (y[p] >= 0) gb[y[p] * S + p] -= g[p] * wy[p];
    }
}

TG_OP_DEFINE(CE_OP, cross_entropy, ce_backward);
TG_OP_DEFINE(NLL_OP, nll_loss, ce_backward);

/* Shapes, dtypes and options; fills a (without buffers). */
static bool ce_prepare(const char *op, bool logits, tg_tensor *input, tg_tensor *target, const tg_ce_opts *o,
                       ce_args *a)
{
    if (!tg_check_f32(op, "input", input) || !target || !tg_check_live(op, "target", target)) return false;
    if (!tgl_check_reduction(op, o->reduction, false)) return false;
    char s1[96], s2[96];
    if (input->ndim < 1) {
        tg_error(TG_ERR_SHAPE, "%s: input must be (C), (N,C) or (N,C,d1..dK), got a scalar", op);
        return false;
    }
    memset(a, 0, sizeof *a);
    a->logits = logits;
    a->x = input->data;
    if (input->ndim == 1) {
        a->N = 1, a->C = input->shape[0], a->S = 1;
    } else {
        a->N = input->shape[0], a->C = input->shape[1], a->S = 1;
        for (int d = 2; d < input->ndim; d++) a->S *= input->shape[d];
    }
    if (a->C < 1) {
        tg_error(TG_ERR_SHAPE, "%s: input %s has no classes", op, tg_shape_str(input, s1, sizeof s1));
        return false;
    }
    if (target->dtype == TG_F32) {
        if (!logits) {
            tg_error(TG_ERR_ARG, "%s: target must be int64 class indices (got float)", op);
            return false;
        }
        if (!tg_tensor_same_shape(input, target)) {
            tg_error(TG_ERR_SHAPE, "%s: float (probability) target %s must have the input's shape %s", op,
                     tg_shape_str(target, s2, sizeof s2), tg_shape_str(input, s1, sizeof s1));
            return false;
        }
        if (o->has_ignore_index && o->ignore_index >= 0) {
            tg_error(TG_ERR_ARG, "%s: ignore_index (%lld) is not supported with probability targets", op,
                     (long long)o->ignore_index);
            return false;
        }
        a->tp = target->data;
    } else {
        bool ok = target->ndim == (input->ndim == 1 ? 0 : input->ndim - 1);
        if (ok && input->ndim > 1) {
            ok = target->shape[0] == input->shape[0];
            for (int d = 2; d < input->ndim && ok; d++) ok = target->shape[d - 1] == input->shape[d];
        }
        if (!ok) {
            tg_error(TG_ERR_SHAPE, "%s: target %s does not fit input %s (expected the input's shape without dim 1)",
                     op, tg_shape_str(target, s2, sizeof s2), tg_shape_str(input, s1, sizeof s1));
            return false;
        }
        a->t = target->idata;
    }
    a->ignore = o->has_ignore_index ? o->ignore_index : TG_DEFAULT_IGNORE_INDEX;
    if (!(o->label_smoothing >= 0.0f && o->label_smoothing <= 1.0f)) {
        tg_error(TG_ERR_ARG, "%s: label_smoothing must be in [0, 1], got %g", op, o->label_smoothing);
        return false;
    }
    if (!logits && o->label_smoothing != 0.0f) {
        tg_error(TG_ERR_ARG, "tg_nll_loss: label_smoothing is only for tg_cross_entropy");
        return false;
    }
    a->eps = o->label_smoothing;
    float *w = tg_arena_alloc((size_t)a->C * sizeof(float));
    if (!w) return false;
    if (o->weight) {
        if (!tg_check_f32(op, "weight", o->weight)) return false;
        if (o->weight->ndim != 1 || o->weight->numel != a->C) {
            tg_error(TG_ERR_SHAPE, "%s: weight must have shape (%lld) (one per class), got %s", op, (long long)a->C,
                     tg_shape_str(o->weight, s1, sizeof s1));
            return false;
        }
        memcpy(w, o->weight->data, (size_t)a->C * sizeof(float));
    } else {
        for (int64_t c = 0; c < a->C; c++) w[c] = 1.0f;
    }
    a->w = w;
    for (int64_t c = 0; c < a->C; c++) a->W += w[c];
    return true;
}

static tg_tensor *ce_run(const char *op, const tg_op_def *def, bool logits, tg_tensor *input, tg_tensor *target,
                         tg_ce_opts o)
{
    ce_args *a = tg_arena_alloc(sizeof *a);
    if (!a || !ce_prepare(op, logits, input, target, &o, a)) return NULL;
    bool none = o.reduction == TG_REDUCTION_NONE;
    a->none = none;
    tg_tensor *out;
    if (none && input->ndim == 1) out = tg_output_new(TG_F32, 0, NULL);
    else if (none) {
        int64_t shp[TG_MAX_DIMS];
        shp[0] = input->shape[0];
        for (int d = 2; d < input->ndim; d++) shp[d - 1] = input->shape[d];
        out = tg_output_new(TG_F32, input->ndim - 1, shp);
    } else out = tg_output_new(TG_F32, 0, NULL);
    if (!out) return NULL;
    bool want = tg_grad_enabled() && input->requires_grad;
    if (want && logits && !(a->d = tg_arena_alloc((size_t)(input->numel > 0 ? input->numel : 1) * sizeof(float))))
        return NULL;
    int64_t nb = ce_nblocks(a);
    double *part = tg_arena_alloc((size_t)(2 * nb + 1) * sizeof(double));
    if (!part) return NULL;
    int64_t bad = ce_forward(a, none ? out->data : NULL, part, part + nb);
    if (bad >= 0) { /* report the first bad target, in index order */
        int64_t n, p0, L;
        ce_block_range(a, bad, &n, &p0, &L);
        for (int64_t p = 0; p < L; p++) {
            int64_t v = a->t[n * a->S + p0 + p];
            if (v != a->ignore && (v < 0 || v >= a->C)) {
                tg_error(TG_ERR_VALUE, "%s: Target %lld is out of bounds (%lld classes, ignore_index %lld)", op,
                         (long long)v, (long long)a->C, (long long)a->ignore);
                return NULL;
            }
        }
    }
    double sl = 0, sw = 0;
    for (int64_t b = 0; b < nb; b++) sl += part[b], sw += part[nb + b];
    double denom = a->t ? sw : (double)(a->N * a->S);
    a->scale = 1.0;
    if (o.reduction == TG_REDUCTION_SUM) out->data[0] = (float)sl;
    else if (o.reduction == TG_REDUCTION_MEAN) {
        out->data[0] = (float)(sl / denom); /* 0/0: NaN when every target is ignored */
        a->scale = denom != 0 ? 1.0 / denom : 0.0;
    }
    tg_tensor *ins[2] = {input, target};
    tg_node *node = tg_record(def, out, 2, ins);
    if (node) node->ctx = a;
    return out;
}

tg_tensor *tg_cross_entropy(tg_tensor *input, tg_tensor *target, tg_ce_opts opts)
{
    return ce_run("tg_cross_entropy", &CE_OP, true, input, target, opts);
}

tg_tensor *tg_nll_loss(tg_tensor *input, tg_tensor *target, tg_ce_opts opts)
{
    return ce_run("tg_nll_loss", &NLL_OP, false, input, target, opts);
}
