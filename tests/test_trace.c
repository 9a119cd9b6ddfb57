/* Tensor tracing from a user's program (nn/trace.h): named tensors' values and gradients and every
 * parameter gradient land in one safetensors file; tracing off changes nothing and writes nothing;
 * misuse (double begin, end without begin, a name twice, a tensor released by tg_tape_clear) is an
 * error naming the problem and writes no file. The UNet's trace against PyTorch's forward hooks is
 * in test_unet_stepdump.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../nn/nn_internal.h"
#include "tapegrad.h"
#include "test_support.h"

static char tmpdir[256], path[512];

static void setup(void)
{
    tgt_make_tmpdir(tmpdir, sizeof tmpdir, "trace_test");
    snprintf(path, sizeof path, "%s/trace.safetensors", tmpdir);
}

static void teardown(void)
{
    tg_trace_abort();
    tg_tape_clear();
    tgt_remove_tree(tmpdir);
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* The entry's floats (caller frees), asserting its shape's element count. */
static float *read_f32(tg_st_file *f, const char *name, int64_t numel)
{
    tg_st_entry *e = tg_st_find(f, name);
    cr_assert_not_null(e, "no '%s' in the trace", name);
    cr_assert_eq(e->dtype, TG_ST_F32, "'%s' is not F32", name);
    cr_assert_eq((int64_t)(e->end - e->begin), numel * 4, "'%s' has %llu bytes, expected %lld", name,
                 (unsigned long long)(e->end - e->begin), (long long)numel * 4);
    float *v = malloc((size_t)numel * 4);
    cr_assert_eq(tg_st_read(f, e, v), TG_OK, "%s", tg_last_error());
    return v;
}

/* A two-layer MLP: x (4, 3) -> linear 3->5 -> relu ("hidden") -> linear 5->2 ("out"); loss mean(out^2). */
typedef struct {
    tg_param_list *params;
    tg_linear_layer l1, l2;
    tg_tensor *x;
} mlp;

static void mlp_new(mlp *m)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    m->params = tg_param_list_new();
    cr_assert_eq(tg_linear_layer_init(&m->l1, m->params, "fc1", 3, 5, true, &rng), TG_OK);
    cr_assert_eq(tg_linear_layer_init(&m->l2, m->params, "fc2", 5, 2, true, &rng), TG_OK);
    m->x = tg_tensor_randn(TG_SHAPE(4, 3), &rng);
}

static void mlp_free(mlp *m)
{
    tg_tensor_free(m->x);
    tg_param_list_free(m->params);
}

static tg_tensor *mlp_loss(mlp *m, tg_tensor **hidden, tg_tensor **out)
{
    *hidden = tg_trace_tensor("hidden", tg_relu(tg_linear_layer_forward(&m->l1, m->x)));
    *out = tg_trace_tensor("out", tg_linear_layer_forward(&m->l2, *hidden));
    tg_trace_value("x", m->x);
    return tg_mean_all(tg_mul(*out, *out));
}

Test(trace, values_gradients_and_parameter_gradients, .init = setup, .fini = teardown)
{
    mlp m;
    mlp_new(&m);
    cr_assert_eq(tg_trace_begin(path), TG_OK, "%s", tg_last_error());
    cr_assert(tg_trace_active());
    tg_tensor *h, *o, *loss = mlp_loss(&m, &h, &o);
    cr_assert_not_null(loss, "%s", tg_last_error());
    tg_trace_value("loss", loss);
    cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
    tg_meta meta = {0};
    tg_meta_set(&meta, "what", "mlp");
    cr_assert_eq(tg_trace_end(m.params, &meta), TG_OK, "%s", tg_last_error());
    tg_meta_clear(&meta);
    cr_assert_not(tg_trace_active());

    tg_st_file f;
    cr_assert_eq(tg_st_open(path, &f, "test_trace"), TG_OK, "%s", tg_last_error());
    cr_assert_eq(f.n_meta, 1);
    cr_expect_str_eq(f.meta[0].key, "what");
    cr_expect_str_eq(f.meta[0].value, "mlp");
    /* hidden, out, x, loss; grad.hidden, grad.out; grad.fc1.weight/bias, grad.fc2.weight/bias */
    cr_expect_eq(f.n, 10, "%d entries", f.n);
    cr_expect_null(tg_st_find(&f, "grad.x"), "x does not require grad: no grad.x");
    cr_expect_null(tg_st_find(&f, "grad.loss"), "values only for tg_trace_value");
    float *v = read_f32(&f, "hidden", 20), *g = read_f32(&f, "grad.hidden", 20);
    tgt_expect_close("hidden", v, h->data, 20, 0, 0);
    tgt_expect_close("grad.hidden", g, h->grad, 20, 0, 0);
    free(v);
    free(g);
    /* d mean(out^2) / d out = 2 out / 8, independent of the tape */
    v = read_f32(&f, "out", 8);
    g = read_f32(&f, "grad.out", 8);
    for (int i = 0; i < 8; i++) cr_expect_float_eq(g[i], 2.0f * v[i] / 8.0f, 1e-6f, "grad.out[%d]", i);
    free(v);
    free(g);
    v = read_f32(&f, "loss", 1);
    cr_expect_eq(v[0], loss->data[0]);
    free(v);
    v = read_f32(&f, "x", 12);
    tgt_expect_close("x", v, m.x->data, 12, 0, 0);
    free(v);
    g = read_f32(&f, "grad.fc1.weight", 15);
    tgt_expect_close("grad.fc1.weight", g, m.l1.weight->grad, 15, 0, 0);
    free(g);
    g = read_f32(&f, "grad.fc2.bias", 2);
    tgt_expect_close("grad.fc2.bias", g, m.l2.bias->grad, 2, 0, 0);
    free(g);
    tg_st_close(&f);
    mlp_free(&m);
}

Test(trace, off_changes_nothing_and_writes_nothing, .init = setup, .fini = teardown)
{
    mlp m;
    mlp_new(&m);
    cr_assert_not(tg_trace_active());
    tg_tensor *h, *o, *loss = mlp_loss(&m, &h, &o);
    cr_assert_not_null(loss);
    cr_expect_eq(tg_trace_tensor("same", h), h);
    cr_expect_null(tg_trace_tensor("null", NULL));
    const float off = loss->data[0];
    cr_assert_eq(tg_backward(loss), TG_OK);
    cr_expect_eq(tg_trace_end(m.params, NULL), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "no trace is active"), "%s", tg_last_error());
    tg_tape_clear();
    /* the same step traced gives the same loss bits */
    cr_assert_eq(tg_trace_begin(path), TG_OK);
    loss = mlp_loss(&m, &h, &o);
    cr_expect_eq(loss->data[0], off);
    tg_trace_abort();
    cr_expect_not(tg_trace_active());
    cr_expect_not(file_exists(path), "tg_trace_abort wrote %s", path);
    mlp_free(&m);
}

Test(trace, misuse_is_reported_and_writes_no_file, .init = setup, .fini = teardown)
{
    mlp m;
    mlp_new(&m);
    tg_tensor *h, *o;
    /* begin twice */
    cr_assert_eq(tg_trace_begin(path), TG_OK);
    cr_expect_eq(tg_trace_begin(path), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "already active"), "%s", tg_last_error());
    /* a name traced twice */
    tg_tensor *loss = mlp_loss(&m, &h, &o);
    tg_trace_tensor("hidden", o);
    cr_assert_eq(tg_backward(loss), TG_OK);
    cr_expect_eq(tg_trace_end(m.params, NULL), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "hidden' appears twice"), "%s", tg_last_error());
    cr_expect_not(file_exists(path));
    cr_expect_not(tg_trace_active(), "a failed end ends the trace");
    tg_tape_clear();
    /* a name clashing with a parameter gradient: grad.<name> vs grad.fc1.weight */
    cr_assert_eq(tg_trace_begin(path), TG_OK);
    loss = mlp_loss(&m, &h, &o);
    tg_trace_tensor("fc1.weight", h);
    cr_assert_eq(tg_backward(loss), TG_OK);
    cr_expect_eq(tg_trace_end(m.params, NULL), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "'grad.fc1.weight' appears twice"), "%s", tg_last_error());
    tg_tape_clear();
    /* a tape tensor released before the end */
    cr_assert_eq(tg_trace_begin(path), TG_OK);
    loss = mlp_loss(&m, &h, &o);
    cr_assert_eq(tg_backward(loss), TG_OK);
    tg_tape_clear();
    cr_expect_eq(tg_trace_end(m.params, NULL), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "'hidden' was released by tg_tape_clear()"), "%s", tg_last_error());
    cr_expect_not(file_exists(path));
    /* empty names and paths */
    cr_expect_eq(tg_trace_begin(""), TG_ERR_ARG);
    cr_assert_eq(tg_trace_begin(path), TG_OK);
    tg_trace_tensor("", m.x);
    cr_expect_eq(tg_trace_end(NULL, NULL), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "empty or too long"), "%s", tg_last_error());
    /* an unwritable path: the write error names the file */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/t.safetensors", tmpdir);
    cr_assert_eq(tg_trace_begin(bad), TG_OK);
    tg_trace_value("x", m.x);
    cr_expect_eq(tg_trace_end(NULL, NULL), TG_ERR_IO);
    cr_expect(strstr(tg_last_error(), "tg_trace_end: cannot create") && !strstr(tg_last_error(), "tg_checkpoint") &&
              strstr(tg_last_error(), "no/such/dir"), "%s", tg_last_error());
    mlp_free(&m);
}

Test(trace, unet_names_its_blocks, .init = setup, .fini = teardown)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_unet *m = tg_unet_new(3, 2, 2, &rng);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(2, 3, 20, 18), &rng);
    cr_assert(m && x);
    cr_assert_eq(tg_trace_begin(path), TG_OK);
    tg_tensor *logits = tg_unet_forward(m, x);
    cr_assert_not_null(logits, "%s", tg_last_error());
    cr_assert_eq(tg_backward(tg_sum_all(logits)), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_trace_end(NULL, NULL), TG_OK, "%s", tg_last_error());
    tg_st_file f;
    cr_assert_eq(tg_st_open(path, &f, "test_trace"), TG_OK, "%s", tg_last_error());
    static const char *const blocks[] = {"in_conv", "down1", "down2", "down3", "down4",
                                         "up1", "up2", "up3", "up4", "out_conv"};
    char name[64];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "grad.%s", blocks[i]);
        cr_expect_not_null(tg_st_find(&f, blocks[i]), "no %s", blocks[i]);
        cr_expect_not_null(tg_st_find(&f, name), "no %s", name);
    }
    cr_expect_eq(f.n, 20);
    /* out_conv is the logits; the gradient of their sum is 1 everywhere */
    float *g = read_f32(&f, "grad.out_conv", logits->numel);
    for (int64_t i = 0; i < logits->numel; i++) cr_assert_eq(g[i], 1.0f);
    free(g);
    tg_st_close(&f);
    tg_tensor_free(x);
    tg_unet_free(m);
}
