/* tg_sync_batch_norm without MPI: with a reducer that leaves its input alone (one process) it
 * gives tg_batch_norm's (and tg_batch_norm_relu's) output, gradients and running statistics;
 * two processes with half a batch each and a reducer that sums their buffers through pipes
 * match one process with the whole batch; gradient check; errors. The MPI version of the
 * two-halves comparison is tests/dist/dist_syncbn.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tapegrad.h"
#include "test_support.h"

static tg_status sum_alone(double *buf, int64_t n, void *ctx)
{
    (void)buf;
    (void)n;
    (void)ctx;
    return TG_OK;
}
static const tg_bn_reducer ALONE = {sum_alone, NULL};

static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* Two steps of BN (relu or not) on x with weights from seed 9; keeps y and every gradient. */
typedef struct {
    tg_tensor *y, *gx, *w, *b, *rm, *rv;
    int64_t nbt;
} bn_run;

static void bn_free(bn_run *o)
{
    tg_tensor *t[] = {o->y, o->gx, o->w, o->b, o->rm, o->rv};
    for (int i = 0; i < 6; i++) tg_tensor_free(t[i]);
}

/* rows [r0, r0+n) of X and R; red NULL: tg_batch_norm(_relu). The loss is sum(y * R) * scale. */
static bool bn_two_steps(bn_run *o, const tg_tensor *X, const tg_tensor *R, int64_t r0, int64_t n, bool relu,
                         float momentum, const tg_bn_reducer *red, float scale)
{
    tg_rng r;
    tg_rng_seed(&r, 9);
    int64_t row = X->numel / X->shape[0];
    int64_t shape[4] = {n, X->shape[1], X->shape[2], X->shape[3]};
    int64_t C = X->shape[1];
    memset(o, 0, sizeof *o);
    o->w = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(C), &r), true);
    o->b = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(C), &r), true);
    o->rm = tg_tensor_zeros(TG_SHAPE(C));
    o->rv = tg_tensor_ones(TG_SHAPE(C));
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_from_data(4, shape, X->data + r0 * row), true);
    tg_tensor *rr = tg_tensor_from_data(4, shape, R->data + r0 * row);
    bool ok = true;
    for (int step = 0; step < 2 && ok; step++) {
        tg_tensor_zero_grad(x);
        tg_tensor_zero_grad(o->w);
        tg_tensor_zero_grad(o->b);
        tg_tensor *y = red ? tg_sync_batch_norm(x, o->w, o->b, o->rm, o->rv, &o->nbt, momentum, 1e-5f, relu, red)
                           : (relu ? tg_batch_norm_relu : tg_batch_norm)(x, o->w, o->b, o->rm, o->rv, &o->nbt, true,
                                                                         momentum, 1e-5f);
        ok = y && tg_backward(tg_mul_scalar(tg_sum(tg_mul(y, rr), NULL, 0, false), scale)) == TG_OK;
        if (ok && step == 1) {
            o->y = tg_tensor_clone(y);
            o->gx = tg_tensor_zeros(4, shape);
            memcpy(o->gx->data, x->grad, sizeof(float) * (size_t)x->numel);
        }
        tg_tape_clear();
    }
    tg_tensor_free(x);
    tg_tensor_free(rr);
    return ok;
}

static void expect_runs_close(const char *what, const bn_run *a, const bn_run *b, int64_t off, double tol)
{
    cr_expect(max_diff(a->y->data, b->y->data + off, a->y->numel) < tol, "%s: output", what);
    cr_expect(max_diff(a->gx->data, b->gx->data + off, a->gx->numel) < tol, "%s: dx", what);
    cr_expect(max_diff(a->rm->data, b->rm->data, a->rm->numel) < tol, "%s: running_mean", what);
    cr_expect(max_diff(a->rv->data, b->rv->data, a->rv->numel) < tol, "%s: running_var", what);
    cr_expect_eq(a->nbt, b->nbt, "%s: num_batches_tracked", what);
}

Test(sync_batch_norm, one_process_equals_batch_norm)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *X = tg_tensor_randn(TG_SHAPE(4, 3, 5, 6), &r), *R = tg_tensor_randn(TG_SHAPE(4, 3, 5, 6), &r);
    for (int relu = 0; relu <= 1; relu++)
        for (int cumulative = 0; cumulative <= 1; cumulative++) {
            bn_run a, b;
            float m = cumulative ? NAN : 0.1f;
            cr_assert(bn_two_steps(&a, X, R, 0, 4, relu, m, &ALONE, 1.0f), "%s", tg_last_error());
            cr_assert(bn_two_steps(&b, X, R, 0, 4, relu, m, NULL, 1.0f), "%s", tg_last_error());
            char what[64];
            snprintf(what, sizeof what, "relu %d, momentum %s", relu, cumulative ? "NAN" : "0.1");
            expect_runs_close(what, &a, &b, 0, 1e-5);
            cr_expect(max_diff(a.w->grad, b.w->grad, 3) < 1e-4, "%s: dgamma", what);
            cr_expect(max_diff(a.b->grad, b.b->grad, 3) < 1e-4, "%s: dbeta", what);
            bn_free(&a);
            bn_free(&b);
        }
    tg_tensor_free(X);
    tg_tensor_free(R);
}

/* Two processes (fork) meet in the reducer through pipes: each writes its buffer, reads the
 * other's, and both add them in the same order (half 0's + half 1's). Processes, not threads:
 * each thread's tape arena would outlive it. */
typedef struct {
    int id, rd, wr;
} peer;

static bool xfer(int fd, void *p, size_t n, bool out)
{
    char *c = p;
    while (n) {
        ssize_t k = out ? write(fd, c, n) : read(fd, c, n);
        if (k <= 0) return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

static tg_status sum_two_processes(double *buf, int64_t n, void *ctx)
{
    const peer *p = ctx;
    double other[64];
    if (n > 64 || !xfer(p->wr, buf, sizeof(double) * (size_t)n, true) ||
        !xfer(p->rd, other, sizeof(double) * (size_t)n, false))
        return tg_error(TG_ERR_STATE, "sum_two_processes: pipe failed");
    for (int64_t i = 0; i < n; i++) buf[i] = p->id == 0 ? buf[i] + other[i] : other[i] + buf[i];
    return TG_OK;
}

Test(sync_batch_norm, two_halves_in_two_processes_equal_one_whole_batch)
{
    tg_rng r;
    tg_rng_seed(&r, 4);
    tg_tensor *X = tg_tensor_randn(TG_SHAPE(8, 3, 4, 5), &r), *R = tg_tensor_randn(TG_SHAPE(8, 3, 4, 5), &r);
    for (int64_t i = 0; i < X->numel; i++) X->data[i] = 3.0f * X->data[i] - 1.0f;
    for (int relu = 0; relu <= 1; relu++) {
        int p01[2], p10[2];
        cr_assert(pipe(p01) == 0 && pipe(p10) == 0);
        fflush(NULL);
        pid_t child = fork();
        cr_assert(child >= 0);
        const int id = child == 0 ? 1 : 0;
        peer me = id == 0 ? (peer){0, p10[0], p01[1]} : (peer){1, p01[0], p10[1]};
        tg_bn_reducer red = {sum_two_processes, &me};
        bn_run half, whole;
        /* each half's loss is sum(y * R) over its rows: the two add up to the whole batch's */
        bool ok = bn_two_steps(&half, X, R, id * 4, 4, relu, 0.1f, &red, 1.0f);
        float wb[6] = {0};
        if (ok) {
            memcpy(wb, half.w->grad, 3 * sizeof(float));
            memcpy(wb + 3, half.b->grad, 3 * sizeof(float));
        }
        if (id == 1) { /* the child: hand over its parameter gradients and its verdict on its rows */
            ok = ok && bn_two_steps(&whole, X, R, 0, 8, relu, 0.1f, NULL, 1.0f);
            bool close = ok && max_diff(half.y->data, whole.y->data + 4 * 60, half.y->numel) < 1e-5 &&
                         max_diff(half.gx->data, whole.gx->data + 4 * 60, half.gx->numel) < 1e-5 &&
                         max_diff(half.rm->data, whole.rm->data, 3) < 1e-5 &&
                         max_diff(half.rv->data, whole.rv->data, 3) < 1e-5 && half.nbt == whole.nbt;
            float msg[7] = {wb[0], wb[1], wb[2], wb[3], wb[4], wb[5], close ? 1.0f : 0.0f};
            _exit(xfer(me.wr, msg, sizeof msg, true) ? 0 : 3);
        }
        cr_assert(ok, "half 0: %s", tg_last_error());
        float msg[7];
        cr_assert(xfer(me.rd, msg, sizeof msg, false), "no answer from half 1");
        int status;
        waitpid(child, &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        cr_assert(bn_two_steps(&whole, X, R, 0, 8, relu, 0.1f, NULL, 1.0f), "%s", tg_last_error());
        char what[64];
        snprintf(what, sizeof what, "relu %d, half 0", relu);
        expect_runs_close(what, &half, &whole, 0, 1e-5);
        cr_expect(msg[6] == 1.0f, "relu %d, half 1: output, dx or running statistics differ from the whole batch's", relu);
        /* dgamma, dbeta: each half holds its part; together the whole batch's */
        for (int c = 0; c < 3; c++) {
            cr_expect(fabs(wb[c] + msg[c] - whole.w->grad[c]) < 1e-4, "dgamma[%d]", c);
            cr_expect(fabs(wb[3 + c] + msg[3 + c] - whole.b->grad[c]) < 1e-4, "dbeta[%d]", c);
        }
        /* and local statistics differ: the comparison can fail */
        bn_run local;
        cr_assert(bn_two_steps(&local, X, R, 0, 4, relu, 0.1f, NULL, 1.0f));
        cr_expect(max_diff(local.y->data, whole.y->data, local.y->numel) > 1e-3, "local statistics should differ");
        bn_free(&local);
        bn_free(&whole);
        bn_free(&half);
        for (int k = 0; k < 2; k++) close(p01[k]), close(p10[k]);
    }
    tg_tensor_free(X);
    tg_tensor_free(R);
}

typedef struct {
    bool relu;
} probe_ctx;

static tg_tensor *sbn_probe(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    const probe_ctx *p = ctx;
    tg_tensor *y = tg_sync_batch_norm(in[0], in[1], in[2], NULL, NULL, NULL, 0.1f, 1e-5f, p->relu, &ALONE);
    return tgt_weighted_sum(y, 8);
}

Test(sync_batch_norm, gradcheck)
{
    for (int relu = 0; relu <= 1; relu++) {
        tg_rng r;
        tg_rng_seed(&r, 13);
        tg_tensor *in[3] = {tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(2, 3, 3, 2), &r), true),
                            tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(3), &r), true),
                            tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(3), &r), true)};
        probe_ctx p = {relu};
        tgt_expect_gradcheck(relu ? "sync_batch_norm relu" : "sync_batch_norm", sbn_probe, &p, in, 3, 1e-2, 2e-3,
                             2e-2);
        for (int k = 0; k < 3; k++) tg_tensor_free(in[k]);
    }
}

Test(sync_batch_norm, errors)
{
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(2, 3, 2, 2), NULL), *w = tg_tensor_ones(TG_SHAPE(4));
    cr_expect_null(tg_sync_batch_norm(x, NULL, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, false, NULL));
    cr_expect(strstr(tg_last_error(), "reducer"), "%s", tg_last_error());
    cr_expect_null(tg_sync_batch_norm(x, w, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, false, &ALONE));
    cr_expect(strstr(tg_last_error(), "weight must have shape (3)"), "%s", tg_last_error());
    tg_tensor *one = tg_tensor_randn(TG_SHAPE(1, 3), NULL);
    cr_expect_null(tg_sync_batch_norm(one, NULL, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, false, &ALONE));
    cr_expect(strstr(tg_last_error(), "more than 1 value per channel"), "%s", tg_last_error());
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(one);
}
