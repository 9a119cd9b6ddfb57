/* Connectionist temporal classification loss (PyTorch 1.13's CPU algorithm,
 * see loss_extra.h): alpha forward, beta backward, both in log space in double.
 *
 * Layout: log_probs (T, N, C) row-major, element (t, b, c) at (t*N + b)*C + c;
 * (T, C) is the N = 1 case. The extended target of sample b is
 * l'(s) = blank for even s, target[(s-1)/2] for odd s, s in [0, 2L].
 *
 * Backward writes PyTorch's gradient: exp(lp) - exp(log(sum_{s: l'(s)=c} alpha beta) + nll - lp),
 * which is the true gradient composed with log_softmax (the exp(lp) term
 * vanishes there) and matches torch.autograd on the log_probs leaf. */
#include "loss_extra.h"
#include "loss_util.h"

#include <string.h>

typedef struct {
    int64_t T, N, C, blank, max_l;
    const int64_t *in_len, *tg_len;
    int64_t *labels;      /* a copy of targets->idata */
    int64_t *tg_off;      /* where sample b's labels start in labels */
    int64_t *alpha_off;   /* sample b's alpha block: in_len[b] x (2L+1) doubles */
    double *alpha;
    double *nll;          /* per sample, before zero_infinity */
    tg_reduction reduction;
    bool zero_infinity;
} ctc_ctx;

static inline int64_t ctc_label(const int64_t *tg, int64_t s, int64_t blank)
{
    return (s & 1) ? tg[s >> 1] : blank;
}

/* log(e^a + e^b + e^c), shifted by the largest term (whose exp is exactly 1);
 * all -inf gives -inf, as PyTorch's max-0 convention does. */
static inline double lse3(double a, double b, double c)
{
    if (a < b) {
        double t = a;
        a = b;
        b = t;
    }
    if (a < c) {
        double t = a;
        a = c;
        c = t;
    }
    if (a == -INFINITY) return -INFINITY;
    double s = 1.0;
    if (b != -INFINITY) s += exp(b - a);
    if (c != -INFINITY) s += exp(c - a);
    return s == 1.0 ? a : log(s) + a;
}

/* alpha of one sample; returns its negative log-likelihood. */
static double ctc_alpha(const ctc_ctx *c, const float *lp, const int64_t *tg, int64_t b)
{
    const int64_t Ti = c->in_len[b], L = c->tg_len[b], S = 2 * L + 1, NC = c->N * c->C;
    if (Ti == 0) return L == 0 ? 0.0 : INFINITY; /* PyTorch reads out of bounds here */
    double *al = c->alpha + c->alpha_off[b];
    const float *lp0 = lp + b * c->C;
    for (int64_t s = 0; s < S; s++) al[s] = -INFINITY;
    al[0] = lp0[c->blank];
    if (L > 0) al[1] = lp0[ctc_label(tg, 1, c->blank)];
    for (int64_t t = 1; t < Ti; t++) {
        const double *prev = al + (t - 1) * S;
        double *cur = al + t * S;
        const float *lpt = lp0 + t * NC;
        for (int64_t s = 0; s < S; s++) {
            int64_t ls = ctc_label(tg, s, c->blank);
            double a2 = s > 0 ? prev[s - 1] : -INFINITY;
            double a3 = (s > 1 && ctc_label(tg, s - 2, c->blank) != ls) ? prev[s - 2] : -INFINITY;
            cur[s] = lse3(prev[s], a2, a3) + lpt[ls];
        }
    }
    const double *last = al + (Ti - 1) * S;
    if (L == 0) return -last[0];
    return -lse3(last[2 * L], last[2 * L - 1], -INFINITY);
}

/* grad row (t, b, :) += (exp(lp) - exp(lcab + nll - lp)) * gr. */
static void ctc_grad_row(float *g, const float *lp, const double *lcab, int64_t C, double nll, double gr)
{
    for (int64_t k = 0; k < C; k++) {
        double l = lp[k];
        g[k] += (float)((exp(l) - exp(lcab[k] + nll - l)) * gr);
    }
}

/* beta (two rows) and the gradient of one sample; scratch holds 2(2L+1) + C doubles. */
static void ctc_backward_sample(const ctc_ctx *c, const float *lp, const int64_t *tg, int64_t b, double gr,
                                float *grad, double *scratch)
{
    const int64_t Ti = c->in_len[b], L = c->tg_len[b], S = 2 * L + 1, NC = c->N * c->C, C = c->C;
    const double nll = c->nll[b];
    if (Ti == 0) return;
    const double *al = c->alpha + c->alpha_off[b];
    double *next = scratch, *cur = scratch + S, *lcab = scratch + 2 * S;
    const float *lp0 = lp + b * C;
    float *g0 = grad + b * C;

    /* t = Ti - 1: beta starts at the two final states. */
    int64_t t = Ti - 1;
    for (int64_t s = 0; s < S; s++) next[s] = -INFINITY;
    for (int64_t k = 0; k < C; k++) lcab[k] = -INFINITY;
    next[2 * L] = lp0[t * NC + c->blank];
    lcab[c->blank] = al[t * S + 2 * L] + next[2 * L];
    if (L > 0) {
        int64_t ls = ctc_label(tg, 2 * L - 1, c->blank);
        next[2 * L - 1] = lp0[t * NC + ls];
        lcab[ls] = al[t * S + 2 * L - 1] + next[2 * L - 1]; /* assigned, as PyTorch */
    }
    ctc_grad_row(g0 + t * NC, lp0 + t * NC, lcab, C, nll, gr);

    for (t = Ti - 2; t >= 0; t--) {
        const float *lpt = lp0 + t * NC;
        for (int64_t k = 0; k < C; k++) lcab[k] = -INFINITY;
        for (int64_t s = 2 * L; s >= 0; s--) {
            int64_t ls = ctc_label(tg, s, c->blank);
            double b2 = s < 2 * L ? next[s + 1] : -INFINITY;
            double b3 = (s < 2 * L - 1 && ctc_label(tg, s + 2, c->blank) != ls) ? next[s + 2] : -INFINITY;
            cur[s] = lse3(next[s], b2, b3) + lpt[ls];
            double ab = al[t * S + s] + cur[s];
            double *acc = &lcab[ls];
            if (*acc == -INFINITY) {
                *acc = ab;
            } else {
                double m = *acc > ab ? *acc : ab;
                *acc = log(exp(*acc - m) + exp(ab - m)) + m;
            }
        }
        ctc_grad_row(g0 + t * NC, lpt, lcab, C, nll, gr);
        double *tmp = next;
        next = cur;
        cur = tmp;
    }
}

static void ctc_backward(tg_node *n)
{
    const tg_tensor *lp = n->in[0];
    if (!tg_needs_grad(lp)) return;
    float *grad = tg_grad(n->in[0]);
    const ctc_ctx *c = n->ctx;
    double *scratch = tg_arena_alloc((size_t)c->N * (size_t)(2 * (2 * c->max_l + 1) + c->C) * sizeof(double));
    if (!grad || !scratch) return;
    const int64_t per = 2 * (2 * c->max_l + 1) + c->C;
    const float go = n->out->grad[0];
#pragma omp parallel for schedule(dynamic) if (c->N > 1 && c->T * c->N * c->C > TG_PARALLEL_MIN)
    for (int64_t b = 0; b < c->N; b++) {
        double nll = c->nll[b];
        if (c->zero_infinity && nll == INFINITY) continue; /* zero gradient */
        double gr;
        if (c->reduction == TG_REDUCTION_NONE) gr = n->out->grad[b];
        else if (c->reduction == TG_REDUCTION_SUM) gr = go;
        else gr = (double)go / (double)c->N / (double)(c->tg_len[b] > 1 ? c->tg_len[b] : 1);
        ctc_backward_sample(c, lp->data, c->labels + c->tg_off[b], b, gr, grad, scratch + b * per);
    }
}

TG_OP_DEFINE(CTC_OP, ctc_loss, ctc_backward);

/* Validates the lengths tensor `arg`: int64, ndim <= 1, N entries, each >= 0 (and <= max if max >= 0). */
static bool ctc_check_lengths(const char *op, const char *arg, const tg_tensor *t, int64_t N, int64_t max)
{
    if (!tg_check_i64(op, arg, t)) return false;
    if (t->ndim > 1 || t->numel != N) {
        char a[96];
        tg_error(TG_ERR_SHAPE, "%s: %s must have shape (%lld) (one length per sample), got %s", op, arg,
                 (long long)N, tg_shape_str(t, a, sizeof a));
        return false;
    }
    for (int64_t b = 0; b < N; b++) {
        if (t->idata[b] < 0 || (max >= 0 && t->idata[b] > max)) {
            tg_error(TG_ERR_VALUE, "%s: %s[%lld] = %lld is out of range [0, %lld]", op, arg, (long long)b,
                     (long long)t->idata[b], (long long)(max >= 0 ? max : INT64_MAX));
            return false;
        }
    }
    return true;
}

/* Where each sample's labels start in targets, padded (N, S) or concatenated 1-D; false + error
 * if targets does not fit the target lengths tl (longest max_l, sum sum_l). */
static bool ctc_target_offsets(const char *op, const tg_tensor *targets, const int64_t *tl, int64_t N, int64_t max_l,
                               int64_t sum_l, int64_t *tg_off)
{
    char a[96];
    if (targets->ndim == 1) { /* concatenated */
        if (targets->numel != sum_l) {
            tg_error(TG_ERR_SHAPE, "%s: concatenated targets must have sum(target_lengths) = %lld entries, got %s",
                     op, (long long)sum_l, tg_shape_str(targets, a, sizeof a));
            return false;
        }
        for (int64_t b = 0, pos = 0; b < N; pos += tl[b], b++) tg_off[b] = pos;
    } else if (targets->ndim == 2) { /* padded */
        if (targets->shape[0] != N || targets->shape[1] < max_l) {
            tg_error(TG_ERR_SHAPE, "%s: padded targets must have shape (%lld, S) with S >= max target length %lld, got %s",
                     op, (long long)N, (long long)max_l, tg_shape_str(targets, a, sizeof a));
            return false;
        }
        for (int64_t b = 0; b < N; b++) tg_off[b] = b * targets->shape[1];
    } else {
        tg_error(TG_ERR_SHAPE, "%s: targets must be padded (N, S) or concatenated 1-D, got %s", op,
                 tg_shape_str(targets, a, sizeof a));
        return false;
    }
    return true;
}

/* Checks every used label is in [0, C) and lays out the alpha tables (input_length x (2 * target_length + 1)
 * per sample) one after the other: alpha_off[b]. Returns their total size, or -1 and an error. */
static int64_t ctc_alpha_layout(const char *op, const tg_tensor *targets, const int64_t *in_len, const int64_t *tl,
                                const int64_t *tg_off, int64_t N, int64_t C, int64_t *alpha_off)
{
    int64_t total_alpha = 0;
    for (int64_t b = 0; b < N; b++) {
        for (int64_t k = 0; k < tl[b]; k++) {
            int64_t lab = targets->idata[tg_off[b] + k];
            if (lab < 0 || lab >= C) {
                tg_error(TG_ERR_VALUE, "%s: targets: label %lld of sample %lld is %lld, out of range [0, %lld)", op,
                         (long long)k, (long long)b, (long long)lab, (long long)C);
                return -1;
            }
        }
        alpha_off[b] = total_alpha;
        total_alpha += in_len[b] * (2 * tl[b] + 1);
    }
    return total_alpha;
}

/* Each sample's loss (alpha recursion, samples in parallel), reduced into out. */
static void ctc_forward(const ctc_ctx *c, const float *log_probs, tg_tensor *out)
{
    const int64_t N = c->N;
#pragma omp parallel for schedule(dynamic) if (N > 1 && c->T * N * c->C > TG_PARALLEL_MIN)
    for (int64_t b = 0; b < N; b++) c->nll[b] = ctc_alpha(c, log_probs, c->labels + c->tg_off[b], b);
    double total = 0.0;
    for (int64_t b = 0; b < N; b++) {
        double l = (c->zero_infinity && c->nll[b] == INFINITY) ? 0.0 : c->nll[b];
        if (c->reduction == TG_REDUCTION_NONE) out->data[b] = (float)l;
        else if (c->reduction == TG_REDUCTION_SUM) total += (float)l;
        else total += (double)(float)l / (double)(c->tg_len[b] > 1 ? c->tg_len[b] : 1);
    }
    tgl_write_reduced(out, c->reduction, total, N);
}

tg_tensor *tg_ctc_loss(tg_tensor *log_probs, tg_tensor *targets, tg_tensor *input_lengths, tg_tensor *target_lengths,
                       tg_ctc_opts o)
{
    const char *op = "tg_ctc_loss";
    if (!tg_check_f32(op, "log_probs", log_probs) || !tg_check_i64(op, "targets", targets)) return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tg_check_ndim(op, "log_probs", log_probs, 2, 3)) return NULL;
    const bool batched = log_probs->ndim == 3;
    const int64_t T = log_probs->shape[0], N = batched ? log_probs->shape[1] : 1, C = log_probs->shape[log_probs->ndim - 1];
    if (o.blank < 0 || o.blank >= C) {
        tg_error(TG_ERR_ARG, "%s: blank = %lld is out of the label range [0, %lld)", op, (long long)o.blank,
                 (long long)C);
        return NULL;
    }
    if (!ctc_check_lengths(op, "input_lengths", input_lengths, N, T) ||
        !ctc_check_lengths(op, "target_lengths", target_lengths, N, -1))
        return NULL;
    int64_t max_l = 0, sum_l = 0;
    for (int64_t b = 0; b < N; b++) {
        if (target_lengths->idata[b] > max_l) max_l = target_lengths->idata[b];
        sum_l += target_lengths->idata[b];
    }
    /* lengths are copied: backward must not depend on the caller keeping them */
    int64_t *lens = tg_arena_alloc((size_t)(2 * N + 1) * sizeof(int64_t));
    if (!lens) return NULL;
    memcpy(lens, input_lengths->idata, (size_t)N * sizeof(int64_t));
    memcpy(lens + N, target_lengths->idata, (size_t)N * sizeof(int64_t));
    const int64_t *tl = lens + N;
    int64_t *tg_off = tg_arena_alloc((size_t)(N + 1) * sizeof(int64_t));
    int64_t *alpha_off = tg_arena_alloc((size_t)(N + 1) * sizeof(int64_t));
    double *nll = tg_arena_alloc((size_t)(N + 1) * sizeof(double));
    ctc_ctx *c = tg_arena_alloc(sizeof *c);
    if (!tg_off || !alpha_off || !nll || !c || !ctc_target_offsets(op, targets, tl, N, max_l, sum_l, tg_off)) return NULL;
    const int64_t total_alpha = ctc_alpha_layout(op, targets, lens, tl, tg_off, N, C, alpha_off);
    if (total_alpha < 0) return NULL;
    double *alpha = tg_arena_alloc((size_t)(total_alpha > 0 ? total_alpha : 1) * sizeof(double));
    int64_t *labels = tg_arena_alloc((size_t)(targets->numel > 0 ? targets->numel : 1) * sizeof(int64_t));
    if (!labels) return NULL;
    memcpy(labels, targets->idata, (size_t)targets->numel * sizeof(int64_t));
    int64_t out_shape[1] = {N};
    tg_tensor *out = tgl_output(o.reduction, batched ? 1 : 0, out_shape);
    if (!alpha || !out) return NULL;
    *c = (ctc_ctx){.T = T, .N = N, .C = C, .blank = o.blank, .max_l = max_l, .in_len = lens,
                   .tg_len = tl, .labels = labels, .tg_off = tg_off, .alpha_off = alpha_off, .alpha = alpha,
                   .nll = nll, .reduction = o.reduction, .zero_infinity = o.zero_infinity};
    ctc_forward(c, log_probs->data, out);
    tg_tensor *in[4] = {log_probs, targets, input_lengths, target_lengths};
    tg_node *n = tg_record(&CTC_OP, out, 4, in);
    if (n) n->ctx = c;
    return out;
}
