/* Embedding losses over vectors: cosine_embedding and triplet_margin
 * (PyTorch 1.13 semantics, see loss_extra.h). Per-row reductions are
 * accumulated in double; the per-row values backward needs are saved in forward. */
#include "loss_extra.h"
#include "loss_util.h"

#define COSINE_EPS 1e-12 /* PyTorch's EPSILON in cosine_embedding_loss */

/* ---- cosine_embedding_loss ----------------------------------------------
 * Shapes: input1, input2 (N,D) with target (N), or (D) with target ().
 * cos = P / sqrt(M1 M2), P = x1.x2, Mk = |xk|^2 + 1e-12.
 * dcos/dx1 = x2 / sqrt(M1 M2) - cos x1 / M1 (and symmetrically for x2). */

typedef struct {
    double cos, denom, m1, m2;
} cosine_row;

typedef struct {
    cosine_row *rows; /* N */
    int64_t N, D;
    tg_reduction reduction;
    float margin;
} cosine_ctx;

static void cosine_embedding_backward(tg_node *n)
{
    const tg_tensor *x1 = n->in[0], *x2 = n->in[1], *t = n->in[2];
    const cosine_ctx *c = n->ctx;
    const cosine_row *rows = c->rows;
    float *g1 = tg_input_grad(n, 0), *g2 = tg_input_grad(n, 1);
    if ((tg_needs_grad(x1) && !g1) || (tg_needs_grad(x2) && !g2)) return; /* out of memory */
    const int64_t N = c->N, D = c->D;
    const float margin = c->margin;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, N);
    for (int64_t s = 0; s < N; s++) {
        float y = tgl_target_at(t, s);
        const cosine_row *r = &rows[s];
        double dcos; /* dl/dcos */
        if (y == 1.0f) dcos = -1.0;
        else if (y == -1.0f && (float)r->cos - margin >= 0) dcos = 1.0;
        else if (isnan(r->cos)) dcos = 0.0; /* a NaN/Inf row: PyTorch's zero through cos = P/sqrt(..) gives NaN */
        else continue;
        dcos *= tgl_up(&up, s);
        const float *a = x1->data + s * D, *b = x2->data + s * D;
        double k1 = r->cos / r->m1, k2 = r->cos / r->m2, inv = 1.0 / r->denom;
        if (g1)
            for (int64_t d = 0; d < D; d++) g1[s * D + d] += (float)(dcos * (b[d] * inv - k1 * a[d]));
        if (g2)
            for (int64_t d = 0; d < D; d++) g2[s * D + d] += (float)(dcos * (a[d] * inv - k2 * b[d]));
    }
}

TG_OP_DEFINE(COSINE_EMBEDDING_OP, cosine_embedding_loss, cosine_embedding_backward);

tg_tensor *tg_cosine_embedding_loss(tg_tensor *input1, tg_tensor *input2, tg_tensor *target,
                                    tg_cosine_embedding_opts o)
{
    const char *op = "tg_cosine_embedding_loss";
    if (!tg_check_f32(op, "input1", input1) || !tg_check_f32(op, "input2", input2) ||
        !tgl_check_target(op, "target", target))
        return NULL;
    if (!tgl_check_reduction(op, o.reduction, false)) return NULL;
    char a[96], b[96];
    if (target->ndim > 1) {
        tg_error(TG_ERR_SHAPE, "%s: target must be 0-D or 1-D (multi-target is not supported), got %s", op,
                 tg_shape_str(target, a, sizeof a));
        return NULL;
    }
    int want = target->ndim + 1;
    if (input1->ndim != want) {
        tg_error(TG_ERR_SHAPE, "%s: a %d-D target expects %d-D input1 and input2, got input1 %s", op, target->ndim,
                 want, tg_shape_str(input1, a, sizeof a));
        return NULL;
    }
    if (!tgl_check_same_shape(op, "input1", input1, "input2", input2)) return NULL;
    int64_t N = want == 2 ? input1->shape[0] : 1, D = input1->shape[want - 1];
    if (target->numel != N) {
        tg_error(TG_ERR_SHAPE, "%s: target must have shape (%lld) for inputs %s, got %s", op, (long long)N,
                 tg_shape_str(input1, a, sizeof a), tg_shape_str(target, b, sizeof b));
        return NULL;
    }
    cosine_row *rows = tg_arena_alloc((size_t)(N > 0 ? N : 1) * sizeof *rows);
    int64_t out_shape[1] = {N};
    tg_tensor *out = tgl_output(o.reduction, target->ndim, out_shape);
    cosine_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!out || !rows || !cx) return NULL;
    *cx = (cosine_ctx){.rows = rows, .N = N, .D = D, .reduction = o.reduction, .margin = o.margin};
    double total = 0.0;
    for (int64_t s = 0; s < N; s++) {
        const float *u = input1->data + s * D, *v = input2->data + s * D;
        double p = 0, m1 = 0, m2 = 0;
        for (int64_t d = 0; d < D; d++) {
            p += (double)u[d] * v[d];
            m1 += (double)u[d] * u[d];
            m2 += (double)v[d] * v[d];
        }
        m1 += COSINE_EPS;
        m2 += COSINE_EPS;
        double denom = sqrt(m1 * m2);
        double c = p / denom;
        rows[s] = (cosine_row){c, denom, m1, m2};
        float y = tgl_target_at(target, s), cf = (float)c, l = 0.0f;
        if (y == 1.0f) l = 1.0f - cf;
        else if (y == -1.0f) l = tgl_clamp_min0(cf - o.margin);
        if (o.reduction == TG_REDUCTION_NONE) out->data[s] = l;
        total += l;
    }
    tgl_write_reduced(out, o.reduction, total, N);
    tg_tensor *in[3] = {input1, input2, target};
    tg_node *n = tg_record(&COSINE_EMBEDDING_OP, out, 3, in);
    if (n) n->ctx = cx;
    return out;
}

/* ---- triplet_margin_loss ------------------------------------------------
 * Shapes: anchor, positive, negative (..., D); rows = numel / D.
 * d(u,v) = ||u - v + eps||_p; l = max(0, m + d(a,p) - d(a,n')), n' = min(d(a,n), d(p,n)) with swap.
 * Norm gradient as PyTorch's norm_backward: p=1 sign(v); p=2 v/d; else v|v|^(p-2)/d^(p-1); 0 where d=0. */

typedef struct {
    double dpos, dneg, dswap;
    float z; /* m + dpos - dneg' (float, as PyTorch) */
} triplet_row;

typedef struct {
    triplet_row *rows; /* R */
    int64_t R, D;
    tg_reduction reduction;
    bool swap;
    float eps;
    double p; /* norm degree */
} triplet_ctx;

static double pnorm_row(const float *u, const float *v, int64_t D, float eps, double p)
{
    double s = 0.0;
    if (p == 1.0) {
        for (int64_t d = 0; d < D; d++) s += fabs((double)(u[d] - v[d] + eps));
        return s;
    }
    if (p == 2.0) {
        for (int64_t d = 0; d < D; d++) {
            double x = (double)(u[d] - v[d] + eps);
            s += x * x;
        }
        return sqrt(s);
    }
    for (int64_t d = 0; d < D; d++) s += pow(fabs((double)(u[d] - v[d] + eps)), p);
    return pow(s, 1.0 / p);
}

/* gu += g * dd/du, gv -= g * dd/du for d = ||u - v + eps||_p with value dist. */
static void pnorm_row_backward(const float *u, const float *v, float *gu, float *gv, int64_t D, float eps,
                               double p, double dist, double g)
{
    if (g == 0.0 && isfinite(dist)) return; /* (a zero g still makes NaN from a NaN/Inf row, as PyTorch) */
    if (p != 1.0 && dist == 0.0) return; /* PyTorch masks norm == 0 to a zero gradient */
    double scale = p == 1.0 ? g : p == 2.0 ? g / dist : g / pow(dist, p - 1.0);
    for (int64_t d = 0; d < D; d++) {
        double x = (double)(u[d] - v[d] + eps), dx;
        if (p == 1.0) dx = (x > 0) - (x < 0);
        else if (p == 2.0) dx = x;
        else dx = x * pow(fabs(x), p - 2.0);
        dx *= scale;
        if (gu) gu[d] += (float)dx;
        if (gv) gv[d] -= (float)dx;
    }
}

static void triplet_margin_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *p = n->in[1], *ng = n->in[2];
    const triplet_ctx *c = n->ctx;
    const triplet_row *rows = c->rows;
    float *ga = tg_input_grad(n, 0), *gp = tg_input_grad(n, 1), *gn = tg_input_grad(n, 2);
    if ((tg_needs_grad(a) && !ga) || (tg_needs_grad(p) && !gp) || (tg_needs_grad(ng) && !gn)) return; /* out of memory */
    const int64_t R = c->R, D = c->D;
    const bool swap = c->swap;
    const float eps = c->eps;
    const double pn = c->p;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, R);
    for (int64_t s = 0; s < R; s++) {
        const triplet_row *r = &rows[s];
        bool finite = isfinite(r->dpos) && isfinite(r->dneg) && (!swap || isfinite(r->dswap));
        if (!(r->z >= 0) && finite) continue; /* clamp_min backward passes at 0 */
        double g = r->z >= 0 ? tgl_up(&up, s) : 0.0; /* 0 times a NaN/Inf row's norm gradient is NaN */
        int64_t o = s * D;
        double g_neg = -g, g_swap = 0.0;
        if (swap) {
            if (r->dswap < r->dneg) g_neg = 0.0, g_swap = -g;
            else if (r->dswap == r->dneg) g_neg = g_swap = -0.5 * g; /* minimum's backward splits ties */
        }
        pnorm_row_backward(a->data + o, p->data + o, ga ? ga + o : NULL, gp ? gp + o : NULL, D, eps, pn, r->dpos, g);
        pnorm_row_backward(a->data + o, ng->data + o, ga ? ga + o : NULL, gn ? gn + o : NULL, D, eps, pn, r->dneg,
                           g_neg);
        if (swap)
            pnorm_row_backward(p->data + o, ng->data + o, gp ? gp + o : NULL, gn ? gn + o : NULL, D, eps, pn,
                               r->dswap, g_swap);
    }
}

TG_OP_DEFINE(TRIPLET_MARGIN_OP, triplet_margin_loss, triplet_margin_backward);

tg_tensor *tg_triplet_margin_loss(tg_tensor *anchor, tg_tensor *positive, tg_tensor *negative,
                                  tg_triplet_margin_opts o)
{
    const char *op = "tg_triplet_margin_loss";
    if (!tg_check_f32(op, "anchor", anchor) || !tg_check_f32(op, "positive", positive) ||
        !tg_check_f32(op, "negative", negative))
        return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tg_check_ndim(op, "anchor", anchor, 1, TG_MAX_DIMS)) return NULL;
    if (!tgl_check_same_shape(op, "anchor", anchor, "positive", positive) ||
        !tgl_check_same_shape(op, "anchor", anchor, "negative", negative))
        return NULL;
    double pn = o.p == 0.0f ? 2.0 : (double)o.p;
    if (!(pn > 0.0) || isinf(pn)) {
        tg_error(TG_ERR_ARG, "%s: p must be a finite norm degree > 0, got %g", op, (double)o.p);
        return NULL;
    }
    float margin = tgl_default(o.margin, o.has_margin, 1.0f);
    float eps = tgl_default(o.eps, o.has_eps, 1e-6f);
    int64_t D = anchor->shape[anchor->ndim - 1];
    int64_t R = 1; /* rows: the product of the leading dims */
    for (int d = 0; d < anchor->ndim - 1; d++) R *= anchor->shape[d];
    triplet_row *rows = tg_arena_alloc((size_t)(R > 0 ? R : 1) * sizeof *rows);
    tg_tensor *out = tgl_output(o.reduction, anchor->ndim - 1, anchor->shape);
    triplet_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!out || !rows || !cx) return NULL;
    *cx = (triplet_ctx){.rows = rows, .R = R, .D = D, .reduction = o.reduction, .swap = o.swap, .eps = eps, .p = pn};
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) if (R * D > TG_PARALLEL_MIN)
    for (int64_t s = 0; s < R; s++) {
        int64_t off = s * D;
        triplet_row r = {0};
        r.dpos = pnorm_row(anchor->data + off, positive->data + off, D, eps, pn);
        r.dneg = pnorm_row(anchor->data + off, negative->data + off, D, eps, pn);
        double dneg = r.dneg;
        if (o.swap) {
            r.dswap = pnorm_row(positive->data + off, negative->data + off, D, eps, pn);
            if (r.dswap < dneg || isnan(r.dswap)) dneg = r.dswap; /* at::min keeps NaN */
        }
        r.z = margin + (float)r.dpos - (float)dneg;
        rows[s] = r;
        float l = tgl_clamp_min0(r.z);
        if (o.reduction == TG_REDUCTION_NONE) out->data[s] = l;
        total += l;
    }
    tgl_write_reduced(out, o.reduction, total, R);
    tg_tensor *in[3] = {anchor, positive, negative};
    tg_node *n = tg_record(&TRIPLET_MARGIN_OP, out, 3, in);
    if (n) n->ctx = cx;
    return out;
}
