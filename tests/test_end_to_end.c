/* End to end: small models trained with tapegrad ops and plain gradient descent.
 *   1. logistic regression on a linearly separable 2-class set: training accuracy >= 0.98
 *   2. a two-layer MLP (matmul+bias+relu+matmul, log-softmax + gather NLL) on XOR
 *      quadrants: training accuracy >= 0.95 and held-out accuracy >= 0.93
 *   3. 1,000 training steps with flat memory: tg_tape_bytes_reserved() and the
 *      process RSS do not grow after warm-up (under ASan only the tape figure is
 *      checked, since ASan's quarantine keeps freed blocks resident by design; there
 *      LeakSanitizer is asked directly for leaks at the end of the test).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tapegrad.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
#if UNDER_ASAN
/* Criterion reports a test as passed even when LeakSanitizer finds leaks at the
 * worker's exit, so the flat-memory test asks LSan itself. */
#include <sanitizer/lsan_interface.h>
#endif

/* p -= lr * p.grad, then zero the grad (plain gradient descent). */
static void sgd_update(tg_tensor *p, float lr)
{
    cr_assert_not_null(p->grad, "parameter %s got no gradient", p->name);
    for (int64_t i = 0; i < p->numel; i++) p->data[i] -= lr * p->grad[i];
    tg_tensor_zero_grad(p);
}

static tg_tensor *param_randn(int ndim, const int64_t *shape, float scale, tg_rng *rng, const char *name)
{
    tg_tensor *t = tg_tensor_randn(ndim, shape, rng);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] *= scale;
    tg_tensor_set_name(t, name);
    return tg_tensor_set_requires_grad(t, true);
}

/* ---- 1. logistic regression ---- */

/* n points in 2-D with label (w.x + b > 0), keeping only points at distance >= margin from the boundary. */
static void make_separable(tg_rng *rng, int n, tg_tensor **x, tg_tensor **y)
{
    const float w0 = 1.5f, w1 = -2.0f, b = 0.3f, norm = sqrtf(w0 * w0 + w1 * w1);
    *x = tg_tensor_zeros(TG_SHAPE(n, 2));
    *y = tg_tensor_zeros(TG_SHAPE(n, 1));
    for (int i = 0; i < n;) {
        float a = 2 * tg_rng_normal(rng), c = 2 * tg_rng_normal(rng);
        float s = (w0 * a + w1 * c + b) / norm;
        if (fabsf(s) < 0.2f) continue;
        (*x)->data[2 * i] = a;
        (*x)->data[2 * i + 1] = c;
        (*y)->data[i] = s > 0 ? 1.0f : 0.0f;
        i++;
    }
}

Test(end_to_end, logistic_regression_separable)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2024);
    tg_tensor *x, *y;
    make_separable(&rng, 300, &x, &y);
    tg_tensor *one_minus_y = tg_tensor_zeros(TG_SHAPE(300, 1));
    for (int i = 0; i < 300; i++) one_minus_y->data[i] = 1.0f - y->data[i];
    tg_tensor *w = param_randn(TG_SHAPE(2, 1), 0.01f, &rng, "w");
    tg_tensor *b = tg_tensor_set_requires_grad(tg_tensor_zeros(TG_SHAPE(1)), true);
    float first_loss = NAN, loss_v = NAN;
    for (int step = 0; step < 300; step++) {
        /* p = sigmoid(x w + b); loss = -mean(y log p + (1-y) log(1-p)) */
        tg_tensor *p = tg_clamp(tg_sigmoid(tg_add(tg_matmul(x, w), b)), 1e-6f, 1 - 1e-6f);
        tg_tensor *ll = tg_add(tg_mul(y, tg_log(p)), tg_mul(one_minus_y, tg_log(tg_add_scalar(tg_neg(p), 1.0f))));
        tg_tensor *loss = tg_neg(tg_mean_all(ll));
        cr_assert_not_null(loss, "%s", tg_last_error());
        loss_v = tg_item(loss);
        if (step == 0) first_loss = loss_v;
        cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
        sgd_update(w, 0.5f);
        sgd_update(b, 0.5f);
        tg_tape_clear();
    }
    int correct = 0;
    for (int i = 0; i < 300; i++) {
        float z = x->data[2 * i] * w->data[0] + x->data[2 * i + 1] * w->data[1] + b->data[0];
        correct += (z > 0) == (y->data[i] > 0.5f);
    }
    double acc = correct / 300.0;
    cr_expect_lt(loss_v, 0.5f * first_loss, "loss %g -> %g", first_loss, loss_v);
    cr_expect_geq(acc, 0.98, "training accuracy %.3f < 0.98", acc);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(one_minus_y);
    tg_tensor_free(w);
    tg_tensor_free(b);
}

/* ---- 2. two-layer MLP on XOR quadrants ---- */

/* Points uniform in [-1,1]^2 away from the axes; class 1 where x0*x1 > 0. */
static void make_xor(tg_rng *rng, int n, tg_tensor **x, tg_tensor **labels)
{
    *x = tg_tensor_zeros(TG_SHAPE(n, 2));
    *labels = tg_tensor_new(TG_I64, TG_SHAPE(n, 1));
    for (int i = 0; i < n;) {
        float a = 2 * tg_rng_uniform(rng) - 1, c = 2 * tg_rng_uniform(rng) - 1;
        if (fabsf(a) < 0.1f || fabsf(c) < 0.1f) continue;
        (*x)->data[2 * i] = a;
        (*x)->data[2 * i + 1] = c;
        (*labels)->idata[i] = a * c > 0;
        i++;
    }
}

typedef struct {
    tg_tensor *w1, *b1, *w2, *b2;
} mlp;

static mlp mlp_new(int hidden, tg_rng *rng)
{
    mlp m;
    m.w1 = param_randn(TG_SHAPE(2, hidden), 1.0f, rng, "w1");
    m.b1 = param_randn(TG_SHAPE(hidden), 0.1f, rng, "b1");
    m.w2 = param_randn(TG_SHAPE(hidden, 2), 1.0f / sqrtf((float)hidden), rng, "w2");
    m.b2 = tg_tensor_set_requires_grad(tg_tensor_zeros(TG_SHAPE(2)), true);
    return m;
}

static void mlp_free(mlp *m)
{
    tg_tensor_free(m->w1);
    tg_tensor_free(m->b1);
    tg_tensor_free(m->w2);
    tg_tensor_free(m->b2);
}

static tg_tensor *mlp_logits(const mlp *m, tg_tensor *x)
{
    tg_tensor *h = tg_relu(tg_add(tg_matmul(x, m->w1), m->b1));
    return tg_add(tg_matmul(h, m->w2), m->b2);
}

/* mean over the batch of -log_softmax(logits)[label] */
static tg_tensor *nll_loss(tg_tensor *logits, tg_tensor *labels)
{
    return tg_neg(tg_mean_all(tg_gather(tg_log_softmax(logits, 1), 1, labels)));
}

static double mlp_accuracy(const mlp *m, tg_tensor *x, tg_tensor *labels)
{
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *pred = tg_argmax(mlp_logits(m, x), 1, false);
    cr_assert_not_null(pred, "%s", tg_last_error());
    int64_t correct = 0;
    for (int64_t i = 0; i < pred->numel; i++) correct += pred->idata[i] == labels->idata[i];
    tg_set_grad_enabled(prev);
    tg_tape_clear();
    return (double)correct / (double)pred->numel;
}

static void mlp_step(mlp *m, tg_tensor *x, tg_tensor *labels, float lr, float *loss_out)
{
    tg_tensor *loss = nll_loss(mlp_logits(m, x), labels);
    cr_assert_not_null(loss, "%s", tg_last_error());
    if (loss_out) *loss_out = tg_item(loss);
    cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
    sgd_update(m->w1, lr);
    sgd_update(m->b1, lr);
    sgd_update(m->w2, lr);
    sgd_update(m->b2, lr);
    tg_tape_clear();
}

Test(end_to_end, mlp_xor)
{
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *x, *labels, *xt, *lt;
    make_xor(&rng, 400, &x, &labels);
    make_xor(&rng, 400, &xt, &lt);
    mlp m = mlp_new(32, &rng);
    float first = NAN, last = NAN;
    for (int step = 0; step < 1500; step++) mlp_step(&m, x, labels, 0.5f, step == 0 ? &first : &last);
    double train_acc = mlp_accuracy(&m, x, labels), test_acc = mlp_accuracy(&m, xt, lt);
    cr_expect_lt(last, 0.25f * first, "loss %g -> %g", first, last);
    cr_expect_geq(train_acc, 0.95, "training accuracy %.3f < 0.95", train_acc);
    cr_expect_geq(test_acc, 0.93, "held-out accuracy %.3f < 0.93", test_acc);
    mlp_free(&m);
    tg_tensor_free(x);
    tg_tensor_free(labels);
    tg_tensor_free(xt);
    tg_tensor_free(lt);
}

/* ---- 3. flat memory over 1,000 steps ---- */

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    long size = 0, resident = 0;
    cr_assert_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

Test(end_to_end, thousand_steps_flat_memory)
{
    tg_rng rng;
    tg_rng_seed(&rng, 99);
    const int n = 512, batch = 64;
    tg_tensor *x, *labels;
    make_xor(&rng, n, &x, &labels);
    mlp m = mlp_new(32, &rng);
    /* minibatches cut with tg_slice (features) and tg_slice-like copies of labels */
    tg_tensor *lb = tg_tensor_new(TG_I64, TG_SHAPE(batch, 1));
    size_t reserved_warm = 0, rss_warm = 0;
    const int warmup = 50, steps = 1000;
    for (int step = 0; step < steps; step++) {
        int64_t start = (int64_t)(step % (n / batch)) * batch;
        memcpy(lb->idata, labels->idata + start, sizeof(int64_t) * batch);
        tg_tensor *xb = tg_slice(x, 0, start, start + batch, 1);
        mlp_step(&m, xb, lb, 0.2f, NULL);
        if (step == warmup - 1) {
            reserved_warm = tg_tape_bytes_reserved();
            rss_warm = rss_bytes();
        }
    }
    size_t reserved_end = tg_tape_bytes_reserved(), rss_end = rss_bytes();
    cr_expect_gt(reserved_warm, 0);
    cr_expect_eq(reserved_end, reserved_warm, "tape arena grew from %zu to %zu bytes after warm-up", reserved_warm,
                 reserved_end);
    if (!UNDER_ASAN)
        cr_expect_leq(rss_end, rss_warm + 64 * 1024, "RSS grew from %zu to %zu bytes over %d steps", rss_warm, rss_end,
                      steps - warmup);
    mlp_free(&m);
    tg_tensor_free(x);
    tg_tensor_free(labels);
    tg_tensor_free(lb);
    tg_tape_clear();
#if UNDER_ASAN
    cr_expect_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (see its report above)");
#endif
}
