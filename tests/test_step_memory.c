/* The training step's peak memory (core/tape.c, ops/batchnorm.c, ops/conv2d.c, ops/conv_onednn.c):
 *   - backward starts with one layer's gradient beside the forward's values: BatchNorm writes its
 *     input's gradient over its output's (tg_grad_take_over, with tg_set_retain_grad(false)), the
 *     large values lie side by side in the arena (small requests in blocks of their own) so
 *     released neighbours merge, and a conv's weight gradient hands its work memory back before
 *     the input gradient is allocated;
 *   - the gradients are the same bit for bit whether or not buffers were taken over;
 *   - oneDNN Winograd's weight gradient runs its worker threads in step memory lent by the calling
 *     thread, not in scratch buffers of their own that stay beside every later step. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "nn/unet.h"
#include "ops/conv_testing.h"
#include "test_support.h"

#define N_IMG 2
#define SIDE 64
#define BASE 8

typedef struct {
    size_t forward_bytes; /* arena bytes in use when backward started */
    size_t peak_bytes;    /* the most in use at once during the step */
    float loss;
} step_stats;

/* One UNet training step (cross-entropy); the parameters' gradients into g. */
static step_stats train_step(tg_unet *m, bool retain_grad, float *g, int64_t n_g)
{
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(N_IMG, 3, SIDE, SIDE), &rng);
    tg_tensor *y = tg_tensor_new(TG_I64, TG_SHAPE(N_IMG, SIDE, SIDE));
    for (int64_t i = 0; i < y->numel; i++) y->idata[i] = i % 3 == 0;
    tg_param_list_train(m->params, true);
    tg_param_list_zero_grad(m->params);
    tg_tape_release();
    const bool prev_rg = tg_set_retain_grad(retain_grad), prev_rv = tg_set_retain_values(false);
    tg_tensor *loss = tg_cross_entropy(tg_unet_forward(m, x), y, (tg_ce_opts){0});
    cr_assert_not_null(loss, "%s", tg_last_error());
    step_stats st = {.forward_bytes = tg_tape_bytes_used()};
    cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
    st.peak_bytes = tg_tape_bytes_peak();
    st.loss = loss->data[0];
    tgt_copy_param_grads(m->params, g, n_g);
    tg_set_retain_grad(prev_rg);
    tg_set_retain_values(prev_rv);
    tg_tape_clear();
    tg_tensor_free(x), tg_tensor_free(y);
    return st;
}

static void same_gradients_and_bounded_peak(tg_conv_path path)
{
    cr_assert(tg_testing_conv_path(path, TG_CONV_ISA_BEST), "%s", tg_last_error());
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_unet *m = tg_unet_new(3, 2, BASE, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    int64_t n = 0;
    for (int k = 0; k < m->params->count; k++) n += m->params->entries[k].tensor->numel;
    float *ga = calloc((size_t)n, sizeof(float)), *gb = calloc((size_t)n, sizeof(float));
    /* the same step twice from the same weights: every gradient kept, then handed on */
    const step_stats kept = train_step(m, true, ga, n), handed = train_step(m, false, gb, n);
    cr_expect(!memcmp(ga, gb, sizeof(float) * (size_t)n), "%s: the parameters' gradients differ",
              tg_testing_conv_path_name(path));
    cr_expect(!memcmp(&kept.loss, &handed.loss, sizeof(float)), "the loss differs");
    cr_expect_eq(kept.forward_bytes, handed.forward_bytes);
#if !defined(__SANITIZE_ADDRESS__)
    /* Backward starts with the logits' gradient (2 channels) and the last BN+ReLU output's (BASE
     * channels: one layer); every later gradient fits in memory handed back. Before: that
     * layer's gradient, the conv under it's, and the concat's twice that (between values a
     * node and its context apart): 3-4 layers. (Under AddressSanitizer tensor data is malloc'd
     * one by one and pieces never merge: the arena's byte count does not show the reuse.) */
    const size_t layer = sizeof(float) * N_IMG * BASE * SIDE * SIDE;
    const size_t added = handed.peak_bytes - handed.forward_bytes;
    if (getenv("TG_TEST_VERBOSE")) cr_log_info("backward added %zu bytes (one layer: %zu)", added, layer);
    cr_expect_lt(added, layer * 3 / 2, "%s: backward added %zu bytes to the forward's %zu (one layer: %zu)",
                 tg_testing_conv_path_name(path), added, handed.forward_bytes, layer);
#endif
    free(ga), free(gb);
    tg_unet_free(m);
    tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST);
}

Test(step_memory, backward_adds_one_layer_direct_kernels) { same_gradients_and_bounded_peak(TG_CONV_PATH_DIRECT); }

Test(step_memory, winograd_weight_gradient_workers_borrow_step_memory)
{
    if (!tg_testing_conv_winograd_ok()) {
        cr_skip_test("oneDNN Winograd needs oneDNN and an AVX-512 CPU");
        return;
    }
    cr_assert(tg_testing_conv_path(TG_CONV_PATH_WINOGRAD, TG_CONV_ISA_BEST), "%s", tg_last_error());
    /* 16 -> 16 channels at 160x160, 2 images: each thread's work (the image and its output
     * gradient in oneDNN's layout, the kernel's scratchpad) is several MB */
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(2, 16, 160, 160), &rng);
    tg_tensor *w = tg_tensor_randn(TG_SHAPE(16, 16, 3, 3), &rng);
    w->requires_grad = true;
    tg_tape_release();
    const size_t held0 = tg_scratch_bytes_held();
    for (int step = 0; step < 2; step++) {
        tg_tensor *y = tg_conv2d(x, w, NULL, (tg_conv2d_opts){.padding = {1, 1}});
        tg_tensor *loss = tg_sum(tg_mul(y, y), NULL, 0, false);
        cr_assert_not_null(loss, "%s", tg_last_error());
        cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
        tg_tape_clear();
    }
    const size_t held = tg_scratch_bytes_held() - held0;
    cr_expect_lt(held, (size_t)1 << 20, "the step's threads grew scratch buffers of their own by %zu bytes", held);
    tg_tensor_free(x), tg_tensor_free(w);
    tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST);
}
