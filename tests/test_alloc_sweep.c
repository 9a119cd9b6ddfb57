/* Allocation failures: fail the k-th allocation of a small training run (model, loss, backward,
 * optimizer step, checkpoint save and load) for every k. Each failure must come back as an error
 * (a status or NULL, with a message), without a crash or a leak (the sanitizer build's
 * LeakSanitizer checks that), and leave a state in which the same call, retried with working
 * allocations, succeeds and the run ends exactly as a run without failures. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/core_internal.h"
#include "../nn/nn_internal.h"
#include "../nn/unet.h"
#include "../ops/loss.h"
#include "test_support.h"


/* ---- the failing allocator ---------------------------------------------- */

static long g_count;   /* allocations seen since arm() */
static long g_fail_at; /* fail this one (1-based); 0: none */
static bool g_failed;  /* it happened */

static void *sweep_alloc(size_t n)
{
    if (++g_count == g_fail_at) {
        g_failed = true;
        return NULL;
    }
    return malloc(n ? n : 1);
}

static void arm(long fail_at)
{
    g_count = 0;
    g_fail_at = fail_at;
    g_failed = false;
    tg_set_alloc_hook(sweep_alloc);
}

static void disarm(void) { g_fail_at = 0; }

/* The call failed: it must be the injected failure, reported as an error with a message. */
static void expect_reported(const char *what, long k, bool failed_call)
{
    cr_expect(g_failed, "%s failed at k=%ld without an allocation failure: %s", what, k, tg_last_error());
    cr_expect(failed_call, "%s: allocation %ld failed but the call succeeded", what, k);
    cr_expect_neq(tg_last_status(), TG_OK, "%s failed at k=%ld with no status", what, k);
    cr_expect_neq(tg_last_error()[0], '\0', "%s failed at k=%ld with no message", what, k);
}

/* Runs call; if it fails, checks the failure was the injected one, disarms and runs it again,
 * which must succeed. Also checks that a failure injected inside the call was not swallowed. */
#define STEP(what, ok_expr)                                                                                  \
    do {                                                                                                     \
        bool was_failed = g_failed;                                                                          \
        tg_clear_error();                                                                                    \
        if (!(ok_expr)) {                                                                                    \
            expect_reported(what, k, true);                                                                  \
            disarm();                                                                                        \
            cr_assert((ok_expr), "%s: retry after the failure at k=%ld failed: %s", what, k, tg_last_error()); \
        } else if (g_failed && !was_failed) {                                                                \
            expect_reported(what, k, false);                                                                 \
        }                                                                                                    \
    } while (0)

/* ---- the run: conv + batch norm + linear, cross-entropy, Adam, checkpoint ---- */

typedef struct {
    tg_param_list *l;
    tg_conv2d_layer conv;
    tg_batchnorm2d_layer bn;
    tg_linear_layer fc;
    tg_optimizer *opt;
} model;

static bool model_init(model *m)
{
    memset(m, 0, sizeof *m);
    tg_rng r;
    tg_rng_seed(&r, 7);
    m->l = tg_param_list_new();
    bool ok = m->l &&
              tg_conv2d_layer_init(&m->conv, m->l, "conv", 3, 4, 3, 3, (tg_conv2d_opts){.padding = {1, 1}}, true, &r) ==
                  TG_OK &&
              tg_batchnorm2d_layer_init(&m->bn, m->l, "bn", 4, TG_BN_EPS, TG_BN_MOMENTUM) == TG_OK &&
              tg_linear_layer_init(&m->fc, m->l, "fc", 4 * 4 * 4, 3, true, &r) == TG_OK &&
              (m->opt = tg_adam_new(m->l, tg_adam_defaults())) != NULL;
    if (!ok) {
        tg_param_list_free(m->l);
        m->l = NULL;
    }
    return ok;
}

static void model_free(model *m)
{
    tg_optimizer_free(m->opt);
    tg_param_list_free(m->l);
}

static tg_tensor *g_x, *g_y; /* a batch of 2 RGB 8x8 images and their classes */

static void batch_init(void)
{
    tg_rng r;
    tg_rng_seed(&r, 11);
    g_x = tg_tensor_randn(TG_SHAPE(2, 3, 8, 8), &r);
    g_y = tg_tensor_from_i64(TG_SHAPE(2), (const int64_t[]){2, 0});
    cr_assert(g_x && g_y);
}

static tg_status train_step(model *m)
{
    tg_tape_clear();
    tg_optimizer_zero_grad(m->opt);
    tg_tensor *h = tg_conv2d_layer_forward(&m->conv, g_x);
    h = tg_batchnorm2d_layer_forward_relu(&m->bn, h);
    h = tg_max_pool2d(h, (tg_pool2d_opts){.kernel = {2, 2}});
    h = tg_reshape(h, TG_SHAPE(2, 64));
    h = tg_linear_layer_forward(&m->fc, h);
    tg_tensor *loss = tg_cross_entropy(h, g_y, (tg_ce_opts){.reduction = TG_REDUCTION_MEAN});
    if (!loss) return tg_last_status() != TG_OK ? tg_last_status() : TG_ERR_STATE;
    tg_status s = tg_backward(loss);
    if (s == TG_OK) s = tg_optimizer_step(m->opt);
    tg_tape_clear();
    return s;
}

/* Every parameter and the optimizer's state, bit for bit. */
static bool same_training_state(const model *a, const model *b)
{
    const size_t n = (size_t)a->opt->numel * sizeof(float);
    return a->opt->numel == b->opt->numel && memcmp(a->l->data, b->l->data, n) == 0 &&
           memcmp(a->opt->buf, b->opt->buf, n) == 0 && memcmp(a->opt->sq, b->opt->sq, n) == 0 &&
           a->opt->step_count == b->opt->step_count;
}

/* Saves fsync the file and its directory: in memory (/dev/shm) where there is one, the sweep
 * saves a few hundred times. */
static const char *ckpt_path(void)
{
    static char path[512];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : TG_BIN_DIR;
        snprintf(path, sizeof path, "%s/tg_alloc_sweep_%ld.safetensors", dir, (long)getpid());
    }
    return path;
}

/* Two steps, save (model + optimizer), load into a second model; with the k-th allocation failing. */
static void run(long k, model *out)
{
    model a, b;
    const char *p = ckpt_path();
    tg_tape_release(); /* every arena block is allocated inside the sweep */
    arm(k);
    STEP("model a", model_init(&a));
    STEP("model b", model_init(&b));
    STEP("step 1", train_step(&a) == TG_OK);
    STEP("step 2", train_step(&a) == TG_OK);
    STEP("save", tg_checkpoint_save(p, a.l, &(tg_ckpt_opts){.optim = a.opt}) == TG_OK);
    STEP("load", tg_checkpoint_load(p, b.l, &(tg_ckpt_opts){.optim = b.opt}, NULL) == TG_OK);
    tg_set_alloc_hook(NULL);
    cr_expect(same_training_state(&a, &b), "k=%ld: the loaded model differs from the saved one", k);
    /* running statistics too */
    cr_expect_eq(memcmp(a.bn.running_mean->data, b.bn.running_mean->data, 4 * sizeof(float)), 0, "k=%ld", k);
    model_free(&b);
    *out = a;
}

Test(alloc_sweep, every_allocation_of_a_training_run_can_fail)
{
    batch_init();
    model ref;
    run(0, &ref); /* no failure: counts the allocations */
    const long total = g_count;
    cr_assert_gt(total, 20, "only %ld allocations counted: is the hook bypassed?", total);
    cr_log_info("%ld allocations", total);
    for (long k = 1; k <= total; k++) {
        model m;
        run(k, &m);
        cr_expect(g_failed, "allocation %ld of %ld was never reached", k, total);
        /* the batch-norm running statistics saw a retried forward twice; everything else is exact */
        cr_expect(same_training_state(&m, &ref), "k=%ld: the run ended differently from the run without failures", k);
        model_free(&m);
    }
    model_free(&ref);
    remove(ckpt_path());
    tg_tensor_free(g_x);
    tg_tensor_free(g_y);
    tg_tape_release();
}

/* ---- a tiny UNet (upsample, pad, concat, batch norm + ReLU, 1x1 conv) with dice + CE ---- */

static tg_status unet_step(tg_unet *u, tg_optimizer *opt, tg_tensor *x, tg_tensor *y)
{
    tg_tape_clear();
    tg_optimizer_zero_grad(opt);
    tg_tensor *logits = tg_unet_forward(u, x);
    tg_tensor *loss = tg_add(tg_cross_entropy(logits, y, (tg_ce_opts){.reduction = TG_REDUCTION_MEAN}),
                             tg_dice_loss(logits, y, (tg_dice_opts){0}));
    if (!loss) return tg_last_status() != TG_OK ? tg_last_status() : TG_ERR_STATE;
    tg_status s = tg_backward(loss);
    if (s == TG_OK) s = tg_optimizer_step(opt);
    tg_tape_clear();
    return s;
}

Test(alloc_sweep, every_allocation_of_a_unet_step_can_fail)
{
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(2, 1, 16, 16), &r);
    tg_tensor *y = tg_tensor_new(TG_I64, TG_SHAPE(2, 16, 16));
    cr_assert(x && y);
    for (int64_t i = 0; i < y->numel; i++) y->idata[i] = (i / 16 + i % 16) % 3 == 0;
    float ref[64];
    long total = 0;
    for (long k = 0; k == 0 || k <= total; k++) {
        tg_unet *u = NULL;
        tg_optimizer *opt = NULL;
        tg_rng_seed(&r, 9);
        tg_tape_release();
        arm(k);
        STEP("unet", (tg_rng_seed(&r, 9), u = tg_unet_new(1, 2, 2, &r)) != NULL);
        STEP("optimizer", (opt = tg_sgd_new(u->params, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9})) != NULL);
        STEP("unet step", unet_step(u, opt, x, y) == TG_OK);
        tg_set_alloc_hook(NULL);
        if (k == 0) {
            total = g_count;
            cr_assert_gt(total, 20);
            memcpy(ref, u->params->data, sizeof ref);
        } else {
            cr_expect(g_failed, "allocation %ld of %ld was never reached", k, total);
            cr_expect_eq(memcmp(ref, u->params->data, sizeof ref), 0, "k=%ld: the step ended differently", k);
        }
        tg_optimizer_free(opt);
        tg_unet_free(u);
    }
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tape_release();
}

/* An out-of-memory error left over from an earlier call is not this backward's. */
Test(alloc_sweep, backward_reports_only_its_own_out_of_memory)
{
    tg_tensor *w = tg_tensor_set_requires_grad(tg_tensor_ones(TG_SHAPE(3)), true);
    cr_assert_not_null(w);
    tg_error(TG_ERR_NOMEM, "an earlier failure");
    cr_expect_eq(tg_backward(tg_sum_all(tg_mul(w, w))), TG_OK, "%s", tg_last_error());
    cr_expect_eq(w->grad[0], 2.0f);
    tg_tape_clear();
    /* and one of its own is reported (v has no gradient buffer yet: backward allocates it) */
    tg_tensor *v = tg_tensor_set_requires_grad(tg_tensor_ones(TG_SHAPE(3)), true);
    tg_tensor *loss = tg_sum_all(tg_mul(v, v));
    cr_assert_not_null(loss);
    arm(1);
    tg_status s = tg_backward(loss);
    tg_set_alloc_hook(NULL);
    cr_expect(g_failed);
    cr_expect_eq(s, TG_ERR_NOMEM, "%s", tg_last_error());
    tg_tape_clear();
    tg_tensor_free(w);
    tg_tensor_free(v);
}
