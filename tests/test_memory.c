/* Memory: the step arena keeps what backward needs (outputs, saved values), not the ops'
 * temporary workspaces (im2col columns live in the per-thread scratch). */
#include <criterion/criterion.h>

#include "tapegrad.h"

Test(memory, conv_columns_are_not_kept_on_the_tape)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(2, 8, 64, 64), &r), true);
    tg_tensor *w = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(8, 8, 3, 3), &r), true);
    const size_t out_bytes = (size_t)2 * 8 * 64 * 64 * sizeof(float);
    tg_tape_clear();
    size_t before = tg_tape_bytes_used();
    tg_tensor *h = x;
    for (int layer = 0; layer < 4; layer++) h = tg_conv2d(h, w, NULL, (tg_conv2d_opts){.padding = {1, 1}});
    cr_assert_not_null(h, "%s", tg_last_error());
    size_t forward = tg_tape_bytes_used() - before;
    /* 4 outputs plus small contexts; im2col columns would add 9x the input per layer. */
    cr_expect_lt(forward, 4 * out_bytes + 64 * 1024, "forward kept %zu bytes for 4 outputs of %zu", forward, out_bytes);
    cr_assert_eq(tg_backward(tg_sum_all(h)), TG_OK, "%s", tg_last_error());
    size_t total = tg_tape_bytes_used() - before;
    /* plus one gradient per output */
    cr_expect_lt(total, 8 * out_bytes + 128 * 1024, "forward+backward kept %zu bytes", total);
    tg_tape_clear();
    tg_tensor_free(x), tg_tensor_free(w);
}
