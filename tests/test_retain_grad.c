/* tg_set_retain_grad(false): backward hands an op output's gradient to later gradients once that
 * op's backward ran. The parameters' and the input's gradients keep their bits, intermediate
 * tensors end with .grad NULL, the step uses less arena memory; the default keeps every .grad. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/core_internal.h"
#include "test_support.h"

typedef struct {
    tg_tensor *x, *w1, *w2;
} net;

/* a small chain whose gradients come in equal sizes (so buffers are reused) */
static tg_tensor *forward(net *n, tg_tensor **mid)
{
    tg_tensor *h = tg_relu(tg_conv2d(n->x, n->w1, NULL, (tg_conv2d_opts){.padding = {1, 1}}));
    tg_tensor *g = tg_tanh(tg_conv2d(h, n->w2, NULL, (tg_conv2d_opts){.padding = {1, 1}}));
    *mid = h;
    return tg_sum_all(tg_mul(g, g));
}

static size_t run(bool retain, float *gx, float *gw1, float *gw2, bool *mid_has_grad)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    net n = {tg_tensor_randn(TG_SHAPE(2, 4, 9, 11), &rng), tg_tensor_randn(TG_SHAPE(4, 4, 3, 3), &rng),
             tg_tensor_randn(TG_SHAPE(4, 4, 3, 3), &rng)};
    n.x->requires_grad = n.w1->requires_grad = n.w2->requires_grad = true;
    bool prev = tg_set_retain_grad(retain);
    cr_expect(prev, "the default retains every gradient");
    tg_tensor *mid;
    tg_tensor *loss = forward(&n, &mid);
    cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
    size_t used = tg_tape_bytes_used();
    *mid_has_grad = mid->grad != NULL;
    cr_expect_not_null(loss->grad, "the tensor backward started from keeps its gradient");
    memcpy(gx, n.x->grad, sizeof(float) * (size_t)n.x->numel);
    memcpy(gw1, n.w1->grad, sizeof(float) * (size_t)n.w1->numel);
    memcpy(gw2, n.w2->grad, sizeof(float) * (size_t)n.w2->numel);
    tg_set_retain_grad(true);
    tg_tape_clear();
    tg_tensor_free(n.x), tg_tensor_free(n.w1), tg_tensor_free(n.w2);
    return used;
}

Test(retain_grad, released_gradients_are_reused_with_the_same_results)
{
    float ax[2 * 4 * 9 * 11], a1[144], a2[144], bx[2 * 4 * 9 * 11], b1[144], b2[144];
    bool amid, bmid;
    size_t kept = run(true, ax, a1, a2, &amid), released = run(false, bx, b1, b2, &bmid);
    cr_expect(amid, "retained: the intermediate tensor has its gradient");
    cr_expect(!bmid, "released: the intermediate tensor's .grad is NULL");
    cr_expect(!memcmp(ax, bx, sizeof ax) && !memcmp(a1, b1, sizeof a1) && !memcmp(a2, b2, sizeof a2),
              "the leaves' gradients differ");
    cr_expect_lt(released, kept, "reusing gradients did not shrink the step (%zu vs %zu bytes)", released, kept);
}
