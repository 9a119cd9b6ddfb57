/* Elementwise ops: add/sub/mul/div with NumPy/PyTorch broadcasting, scalar
 * add/mul, and the unary math ops (neg, exp, log, pow, sqrt, abs, clamp).
 *
 * Broadcasting: both operands are aligned to the output's dims (stride 0 where
 * an operand has size 1), size-1 output dims are dropped and neighbouring dims
 * that are contiguous in both operands are merged. What is left is an outer
 * odometer over rows and a contiguous inner loop of three kinds: vector-vector
 * (same shapes, trailing row vectors), vector-scalar ((C,1,1) bias against
 * (N,C,H,W), scalar operands) and scalar-vector. The backward of a broadcast
 * operand sums the gradient over its broadcast dims (tg_reduce_sum_to).
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
#include <omp.h>
#include <string.h>

/* ---- the broadcast plan and its kernels ---------------------------------- */

typedef struct {
    int nd;                       /* merged dims, >= 1 */
    int64_t shape[TG_MAX_DIMS];   /* merged output dims */
    int64_t sa[TG_MAX_DIMS];      /* element strides of operand a (0: broadcast) */
    int64_t sb[TG_MAX_DIMS];
    int64_t numel;
} bplan;

/* o = a (op) b elementwise. ACC ops add into o; ACC_B ignores a: o += s * b. */
enum { K_ADD, K_SUB, K_MUL, K_DIV, K_MUL_ACC, K_DIV_ACC, K_ACC_B };
enum { PAT_VV, PAT_VS, PAT_SV };

static void contiguous_strides(int nd, const int64_t *in_shape, int out_nd, const int64_t *out_shape,
                               int64_t *st)
{
    int64_t s = 1;
    for (int d = out_nd - 1; d >= 0; d--) {
        int di = d - (out_nd - nd);
        int64_t size = di >= 0 ? in_shape[di] : 1;
        st[d] = (size == 1 && out_shape[d] != 1) ? 0 : s;
        s *= size;
    }
}

static void bplan_make(bplan *p, int nd, const int64_t *out_shape, int na, const int64_t *a_shape, int nb,
                       const int64_t *b_shape)
{
    int64_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
    contiguous_strides(na, a_shape, nd, out_shape, sa);
    contiguous_strides(nb, b_shape, nd, out_shape, sb);
    /* Walk from the innermost dim out, dropping size-1 dims and merging. */
    int64_t shape[TG_MAX_DIMS], ma[TG_MAX_DIMS], mb[TG_MAX_DIMS];
    int m = 0;
    p->numel = 1;
    for (int d = nd - 1; d >= 0; d--) {
        p->numel *= out_shape[d];
        if (out_shape[d] == 1) continue;
        if (m > 0 && sa[d] == ma[m - 1] * shape[m - 1] && sb[d] == mb[m - 1] * shape[m - 1]) {
            shape[m - 1] *= out_shape[d];
            continue;
        }
        shape[m] = out_shape[d];
        ma[m] = sa[d];
        mb[m] = sb[d];
        m++;
    }
    if (m == 0) { /* a single element */
        shape[0] = 1;
        ma[0] = mb[0] = 1;
        m = 1;
    }
    p->nd = m;
    for (int k = 0; k < m; k++) { /* back to outer-to-inner order */
        p->shape[k] = shape[m - 1 - k];
        p->sa[k] = ma[m - 1 - k];
        p->sb[k] = mb[m - 1 - k];
    }
}

/* The inner loop: n contiguous outputs; EXPR sees x (from a) and y (from b). */
#define BCAST_LOOP(EXPR)                                                                                     \
    do {                                                                                                     \
        if (pat == PAT_VV) {                                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                                \
                const float x = a[i], y = b[i];                                                              \
                EXPR;                                                                                        \
            }                                                                                                \
        } else if (pat == PAT_VS) {                                                                          \
            const float y = b[0];                                                                            \
            for (int64_t i = 0; i < n; i++) {                                                                \
                const float x = a[i];                                                                        \
                EXPR;                                                                                        \
            }                                                                                                \
        } else {                                                                                             \
            const float x = a[0];                                                                            \
            for (int64_t i = 0; i < n; i++) {                                                                \
                const float y = b[i];                                                                        \
                EXPR;                                                                                        \
            }                                                                                                \
        }                                                                                                    \
    } while (0)

static void bcast_inner(int op, int pat, float *restrict o, const float *restrict a, const float *restrict b,
                        float s, int64_t n)
{
    switch (op) {
    case K_ADD: BCAST_LOOP(o[i] = x + y); break;
    case K_SUB: BCAST_LOOP(o[i] = x - y); break;
    case K_MUL: BCAST_LOOP(o[i] = x * y); break;
    case K_DIV: BCAST_LOOP(o[i] = x / y); break;
    case K_MUL_ACC: BCAST_LOOP(o[i] += x * y); break;
    case K_DIV_ACC: BCAST_LOOP(o[i] += x / y); break;
    case K_ACC_B:
        if (pat == PAT_VV) {
            for (int64_t i = 0; i < n; i++) o[i] += s * b[i];
        } else {
            const float y = s * b[0];
            for (int64_t i = 0; i < n; i++) o[i] += y;
        }
        break;
    default: assert(0);
    }
}

/* Output elements [e0, e1) of the plan. */
static void bcast_range(int op, const bplan *p, float *o, const float *a, const float *b, float s, int64_t e0,
                        int64_t e1)
{
    const int nd = p->nd;
    const int64_t n = p->shape[nd - 1], ia = p->sa[nd - 1], ib = p->sb[nd - 1];
    const int pat = ia && ib ? PAT_VV : (ia ? PAT_VS : PAT_SV);
    int64_t idx[TG_MAX_DIMS] = {0}, offa = 0, offb = 0, row = e0 / n, col = e0 % n;
    for (int d = nd - 2; d >= 0; d--) {
        idx[d] = row % p->shape[d];
        row /= p->shape[d];
        offa += idx[d] * p->sa[d];
        offb += idx[d] * p->sb[d];
    }
    for (int64_t e = e0; e < e1;) {
        int64_t len = n - col < e1 - e ? n - col : e1 - e;
        bcast_inner(op, pat, o + e, a ? a + offa + col * ia : NULL, b + offb + col * ib, s, len);
        e += len;
        col = 0;
        for (int d = nd - 2; d >= 0; d--) { /* odometer over the outer dims */
            offa += p->sa[d];
            offb += p->sb[d];
            if (++idx[d] < p->shape[d]) break;
            offa -= p->sa[d] * p->shape[d];
            offb -= p->sb[d] * p->shape[d];
            idx[d] = 0;
        }
    }
}

static void bcast_run(int op, const bplan *p, float *o, const float *a, const float *b, float s)
{
    const int64_t total = p->numel;
    if (total == 0) return;
    if (total <= TG_PARALLEL_MIN) {
        bcast_range(op, p, o, a, b, s, 0, total);
        return;
    }
#pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = ((total + nt - 1) / nt + 15) & ~(int64_t)15; /* whole cache lines per thread */
        int64_t e0 = t * per, e1 = e0 + per < total ? e0 + per : total;
        if (e0 < e1) bcast_range(op, p, o, a, b, s, e0, e1);
    }
}

void tg_broadcast_accumulate(float *dst, int ndim, const int64_t *dst_shape, const float *src,
                             const int64_t *src_shape, float scale)
{
    bplan p;
    bplan_make(&p, ndim, dst_shape, ndim, dst_shape, ndim, src_shape);
    bcast_run(K_ACC_B, &p, dst, NULL, src, scale);
}

void tg_unbroadcast_accumulate(float *gin, int in_ndim, const int64_t *in_shape, const float *g, int out_ndim,
                               const int64_t *out_shape, float scale)
{
    int64_t aligned[TG_MAX_DIMS];
    for (int d = 0; d < out_ndim; d++) {
        int di = d - (out_ndim - in_ndim);
        aligned[d] = di >= 0 ? in_shape[di] : 1;
    }
    tg_reduce_sum_to(g, out_ndim, out_shape, aligned, gin, scale, true);
}

/* ---- add, sub, mul, div ---------------------------------------------------- */

static tg_tensor *binary_forward(const char *name, const tg_op_def *def, int op, tg_tensor *a, tg_tensor *b)
{
    if (!tg_check_f32(name, "a", a) || !tg_check_f32(name, "b", b)) return NULL;
    int nd;
    int64_t shape[TG_MAX_DIMS];
    if (!tg_broadcast_shape(name, a, b, &nd, shape)) return NULL;
    tg_tensor *out = tg_output_new(TG_F32, nd, shape);
    if (!out) return NULL;
    bplan p;
    bplan_make(&p, nd, shape, a->ndim, a->shape, b->ndim, b->shape);
    bcast_run(op, &p, out->data, a->data, b->data, 0.0f);
    tg_record(def, out, 2, (tg_tensor *[]){a, b});
    return out;
}

/* gx += scale * g, summed over x's broadcast dims. */
static void grad_sum_into(tg_tensor *x, const tg_tensor *out, const float *g, float scale)
{
    float *gx = tg_grad(x);
    if (!gx) return;
    if (x->numel == out->numel) {
        const int64_t n = x->numel;
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) gx[i] += scale * g[i];
    } else {
        tg_unbroadcast_accumulate(gx, x->ndim, x->shape, g, out->ndim, out->shape, scale);
    }
}

/* gx += g (op) y, with y broadcast to out and the result summed over x's broadcast dims. */
static void grad_binary_into(tg_tensor *x, const tg_tensor *y, const tg_tensor *out, const float *g, int op)
{
    float *gx = tg_grad(x);
    if (!gx) return;
    bplan p;
    bplan_make(&p, out->ndim, out->shape, out->ndim, out->shape, y->ndim, y->shape);
    if (x->numel == out->numel) {
        bcast_run(op == K_MUL ? K_MUL_ACC : K_DIV_ACC, &p, gx, g, y->data, 0.0f);
        return;
    }
    float *tmp = tg_arena_alloc((size_t)out->numel * sizeof(float));
    if (!tmp) return;
    bcast_run(op, &p, tmp, g, y->data, 0.0f);
    tg_unbroadcast_accumulate(gx, x->ndim, x->shape, tmp, out->ndim, out->shape, 1.0f);
}

static void add_backward(tg_node *n)
{
    if (tg_needs_grad(n->in[0])) grad_sum_into(n->in[0], n->out, n->out->grad, 1.0f);
    if (tg_needs_grad(n->in[1])) grad_sum_into(n->in[1], n->out, n->out->grad, 1.0f);
}

static void sub_backward(tg_node *n)
{
    if (tg_needs_grad(n->in[0])) grad_sum_into(n->in[0], n->out, n->out->grad, 1.0f);
    if (tg_needs_grad(n->in[1])) grad_sum_into(n->in[1], n->out, n->out->grad, -1.0f);
}

/* d(a*b) = g*b da + g*a db */
static void mul_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *b = n->in[1];
    if (tg_needs_grad(a)) grad_binary_into(a, b, n->out, n->out->grad, K_MUL);
    if (tg_needs_grad(b)) grad_binary_into(b, a, n->out, n->out->grad, K_MUL);
}

/* d(a/b) = g/b da - g*(a/b)/b db (PyTorch's form: -g * out / b) */
static void div_backward(tg_node *n)
{
    tg_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    const float *g = out->grad, *y = out->data;
    if (tg_needs_grad(a)) grad_binary_into(a, b, out, g, K_DIV);
    if (!tg_needs_grad(b)) return;
    float *gb = tg_grad(b);
    if (!gb) return;
    const int64_t cnt = out->numel;
    if (b->numel == cnt) {
        const float *bd = b->data;
#pragma omp parallel for simd schedule(static) if (cnt > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < cnt; i++) gb[i] -= g[i] * y[i] / bd[i];
        return;
    }
    float *tmp = tg_arena_alloc((size_t)cnt * sizeof(float));
    if (!tmp) return;
    bplan p;
    bplan_make(&p, out->ndim, out->shape, out->ndim, out->shape, b->ndim, b->shape);
    bcast_run(K_DIV, &p, tmp, g, b->data, 0.0f);
#pragma omp parallel for simd schedule(static) if (cnt > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < cnt; i++) tmp[i] *= y[i];
    tg_unbroadcast_accumulate(gb, b->ndim, b->shape, tmp, out->ndim, out->shape, -1.0f);
}

TG_OP_DEFINE(ADD_OP, add, add_backward);
TG_OP_DEFINE(SUB_OP, sub, sub_backward);
TG_OP_DEFINE(MUL_OP, mul, mul_backward);
TG_OP_DEFINE(DIV_OP, div, div_backward);

tg_tensor *tg_add(tg_tensor *a, tg_tensor *b) { return binary_forward("tg_add", &ADD_OP, K_ADD, a, b); }
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b) { return binary_forward("tg_sub", &SUB_OP, K_SUB, a, b); }
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b) { return binary_forward("tg_mul", &MUL_OP, K_MUL, a, b); }
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b) { return binary_forward("tg_div", &DIV_OP, K_DIV, a, b); }

/* ---- unary ops: y = f(x), same shape ----------------------------------------- */

/* y = x + s: dx = g */
static void add_scalar_backward(tg_node *n)
{
    if (tg_needs_grad(n->in[0])) grad_sum_into(n->in[0], n->out, n->out->grad, 1.0f);
}
TG_OP_DEFINE(ADD_SCALAR_OP, add_scalar, add_scalar_backward);

tg_tensor *tg_add_scalar(tg_tensor *a, float s)
{
    tg_tensor *out = tg_unary_output("tg_add_scalar", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] + s;
    tg_record(&ADD_SCALAR_OP, out, 1, &a);
    return out;
}

/* The scalar parameters of mul_scalar (s), pow (p) and clamp (lo, hi). */
typedef struct {
    float a, b;
} scalars_ctx;

/* y = x * s: dx = s g */
static void mul_scalar_backward(tg_node *n)
{
    if (tg_needs_grad(n->in[0])) grad_sum_into(n->in[0], n->out, n->out->grad, ((const scalars_ctx *)n->ctx)->a);
}
TG_OP_DEFINE(MUL_SCALAR_OP, mul_scalar, mul_scalar_backward);

tg_tensor *tg_mul_scalar(tg_tensor *a, float s)
{
    tg_tensor *out = tg_unary_output("tg_mul_scalar", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s;
    tg_node *node = tg_record(&MUL_SCALAR_OP, out, 1, &a);
    if (node && !TG_SAVE_CTX(node, scalars_ctx, .a = s)) return NULL;
    return out;
}

/* y = -x: dx = -g */
static void neg_backward(tg_node *n)
{
    if (tg_needs_grad(n->in[0])) grad_sum_into(n->in[0], n->out, n->out->grad, -1.0f);
}
TG_OP_DEFINE(NEG_OP, neg, neg_backward);

tg_tensor *tg_neg(tg_tensor *a)
{
    tg_tensor *out = tg_unary_output("tg_neg", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = -x[i];
    tg_record(&NEG_OP, out, 1, &a);
    return out;
}

/* y = exp(x): dx = g y */
static void exp_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) gx[i] += g[i] * y[i];
}
TG_OP_DEFINE(EXP_OP, exp, exp_backward);

TG_CLONES static void exp_kernel(float *restrict y, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = tg_expf_fast(x[i], TG_EXP_IEEE);
}

tg_tensor *tg_exp(tg_tensor *a) { return tg_unary_map("tg_exp", &EXP_OP, a, exp_kernel); }

/* y = log(x): dx = g / x */
static void log_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) gx[i] += g[i] / x[i];
}
TG_OP_DEFINE(LOG_OP, log, log_backward);

tg_tensor *tg_log(tg_tensor *a)
{
    tg_tensor *out = tg_unary_output("tg_log", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for schedule(static) if (n > TG_PARALLEL_MIN / 4)
    for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]);
    tg_record(&LOG_OP, out, 1, &a);
    return out;
}

/* y = x^p: dx = g p x^(p-1) (0 when p == 0, as PyTorch) */
static void pow_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
    const float p = ((const scalars_ctx *)node->ctx)->a;
    if (p == 0.0f) return;
    if (p == 1.0f) {
        grad_sum_into(node->in[0], node->out, g, 1.0f);
    } else if (p == 2.0f) {
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * 2.0f * x[i];
    } else {
#pragma omp parallel for schedule(static) if (n > TG_PARALLEL_MIN / 4)
        for (int64_t i = 0; i < n; i++) gx[i] += g[i] * p * powf(x[i], p - 1.0f);
    }
}
TG_OP_DEFINE(POW_OP, pow, pow_backward);

tg_tensor *tg_pow(tg_tensor *a, float exponent)
{
    tg_tensor *out = tg_unary_output("tg_pow", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
    const float p = exponent;
    if (p == 2.0f) {
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
    } else if (p == 1.0f) {
        memcpy(y, x, (size_t)n * sizeof(float));
    } else if (p == 0.5f) {
#pragma omp parallel for schedule(static) if (n > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
    } else if (p == -1.0f) {
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = 1.0f / x[i];
    } else {
#pragma omp parallel for schedule(static) if (n > TG_PARALLEL_MIN / 4)
        for (int64_t i = 0; i < n; i++) y[i] = powf(x[i], p);
    }
    tg_node *node = tg_record(&POW_OP, out, 1, &a);
    if (node && !TG_SAVE_CTX(node, scalars_ctx, .a = exponent)) return NULL;
    return out;
}

/* y = sqrt(x): dx = g / (2 y) */
static void sqrt_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) gx[i] += g[i] / (2.0f * y[i]);
}
TG_OP_DEFINE(SQRT_OP, sqrt, sqrt_backward);

tg_tensor *tg_sqrt(tg_tensor *a)
{
    tg_tensor *out = tg_unary_output("tg_sqrt", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
    tg_record(&SQRT_OP, out, 1, &a);
    return out;
}

/* y = |x|: dx = g sign(x), 0 at 0 */
static void abs_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i]; /* loaded unconditionally so the selects vectorize */
        gx[i] += x[i] > 0.0f ? gi : (x[i] < 0.0f ? -gi : 0.0f);
    }
}
TG_OP_DEFINE(ABS_OP, abs, abs_backward);

tg_tensor *tg_abs(tg_tensor *a)
{
    tg_tensor *out = tg_unary_output("tg_abs", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
    tg_record(&ABS_OP, out, 1, &a);
    return out;
}

/* y = min(max(x, lo), hi): dx = g where lo <= x <= hi (as PyTorch), else 0 */
static void clamp_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
    const scalars_ctx *c = node->ctx;
    const float lo = c->a, hi = c->b;
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i], xi = x[i];
        gx[i] += (xi >= lo) & (xi <= hi) ? gi : 0.0f;
    }
}
TG_OP_DEFINE(CLAMP_OP, clamp, clamp_backward);

tg_tensor *tg_clamp(tg_tensor *a, float lo, float hi)
{
    if (isnan(lo) || isnan(hi)) {
        if (!a) return NULL;
        tg_error(TG_ERR_ARG, "tg_clamp: lo and hi must not be NaN (got lo=%g, hi=%g)", lo, hi);
        return NULL;
    }
    tg_tensor *out = tg_unary_output("tg_clamp", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
    /* NaN inputs stay NaN; lo > hi gives hi everywhere, as torch.clamp. */
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
    tg_node *node = tg_record(&CLAMP_OP, out, 1, &a);
    if (node && !TG_SAVE_CTX(node, scalars_ctx, .a = lo, .b = hi)) return NULL;
    return out;
}
