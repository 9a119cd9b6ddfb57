/* PyTorch habits a C user relies on (issue 12): strict checkpoint loading by default with a
 * name diff, gradcheck defaults that suit float32, one train/eval switch for dropout too,
 * nn.Sequential names and a state_dict printer, loaders that do not shuffle unless told,
 * Subset and random_split. (Optimizer habits: test_habits_optim.c; stale tensors:
 * test_stale_tape.c.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core_internal.h"
#include "test_support.h"

/* ---- 1. strict loading by default ------------------------------------------------------------ */

/* The case: two parameters, neither in the file; NULL options returned TG_OK. */
Test(habits, checkpoint_load_is_strict_by_default)
{
    char dir[256], path[300];
    tgt_make_tmpdir(dir, sizeof dir, "habits_strict");
    snprintf(path, sizeof path, "%s/other.safetensors", dir);
    tg_param_list *src = tg_param_list_new();
    tg_param_list_add_param(src, "fc.weight", TG_SHAPE(3, 4));
    tg_param_list_add_param(src, "extra", TG_SHAPE(2));
    cr_assert_eq(tg_checkpoint_save(path, src, NULL), TG_OK, "%s", tg_last_error());

    tg_param_list *l = tg_param_list_new();
    tg_tensor *w = tg_param_list_add_param(l, "fc.weight", TG_SHAPE(4, 4)); /* shape differs */
    tg_tensor *b = tg_param_list_add_param(l, "fc.bias", TG_SHAPE(4));     /* missing */
    w->data[0] = 7.0f;
    b->data[0] = 8.0f;
    tg_ckpt_report rep;
    cr_expect_neq(tg_checkpoint_load(path, l, NULL, &rep), TG_OK, "NULL options loaded a mismatching file");
    const char *msg = tg_last_error();
    cr_expect(strstr(msg, "missing [fc.bias]"), "%s", msg);
    cr_expect(strstr(msg, "unexpected [extra]"), "%s", msg);
    cr_expect(strstr(msg, "'fc.weight' has shape (3, 4) in the file but (4, 4) in the model"), "%s", msg);
    cr_expect_eq(w->data[0], 7.0f);
    cr_expect_eq(rep.n_missing, 1);
    cr_expect_eq(rep.n_unexpected, 1);
    /* a zero-initialised tg_ckpt_opts is strict too */
    cr_expect_neq(tg_checkpoint_load(path, l, &(tg_ckpt_opts){0}, NULL), TG_OK);
    /* names only (shapes right): strict fails with the diff, non-strict loads and reports */
    tg_param_list *l2 = tg_param_list_new();
    tg_tensor *w2 = tg_param_list_add_param(l2, "fc.weight", TG_SHAPE(3, 4));
    tg_param_list_add_param(l2, "fc.bias", TG_SHAPE(4));
    cr_expect_eq(tg_checkpoint_load(path, l2, NULL, NULL), TG_ERR_FORMAT);
    cr_expect(strstr(tg_last_error(), "missing [fc.bias], unexpected [extra]") &&
                  strstr(tg_last_error(), "non_strict"),
              "%s", tg_last_error());
    cr_expect_eq(w2->data[0], 0.0f, "a failed strict load copied data");
    src->entries[0].tensor->data[0] = 0.0f;
    cr_expect_eq(tg_checkpoint_load(path, l2, &(tg_ckpt_opts){.non_strict = true}, &rep), TG_OK, "%s", tg_last_error());
    cr_expect_eq(rep.n_loaded, 1);
    cr_expect_str_eq(rep.missing, "fc.bias");
    cr_expect_str_eq(rep.unexpected, "extra");
    /* a shape mismatch stays an error when non-strict, as load_state_dict(strict=False) */
    cr_expect_eq(tg_checkpoint_load(path, l, &(tg_ckpt_opts){.non_strict = true}, NULL), TG_ERR_SHAPE);
    /* and an exact match loads with NULL options */
    tg_param_list *l3 = tg_param_list_new();
    tg_param_list_add_param(l3, "fc.weight", TG_SHAPE(3, 4));
    tg_param_list_add_param(l3, "extra", TG_SHAPE(2));
    cr_expect_eq(tg_checkpoint_load(path, l3, NULL, NULL), TG_OK, "%s", tg_last_error());
    tg_param_list_free(l3);
    tg_param_list_free(l2);
    tg_param_list_free(l);
    tg_param_list_free(src);
    tgt_remove_tree(dir);
}

/* ---- 4. gradcheck defaults for float32 --------------------------------------------------------- */

/* sum(tanh(x @ w) * sigmoid(x @ w)) + mean(log_softmax(x @ w)^2): a correct composite function. */
static tg_tensor *composite(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    tg_tensor *h = tg_matmul(in[0], in[1]);
    tg_tensor *a = tg_sum_all(tg_mul(tg_tanh(h), tg_sigmoid(h)));
    tg_tensor *ls = tg_log_softmax(h, 1);
    return tg_add(a, tg_mean_all(tg_mul(ls, ls)));
}

/* y = x^3 elementwise, whose backward forgets the factor 3 on purpose (3x^2 -> x^2 + x^2). */
static void wrong_cube_backward(tg_node *nd)
{
    tg_tensor *x = nd->in[0];
    float *dx = tg_grad(x);
    for (int64_t i = 0; i < x->numel; i++) dx[i] += nd->out->grad[i] * 2.0f * x->data[i] * x->data[i];
}
static const tg_op_def WRONG_CUBE = {"wrong_cube", wrong_cube_backward, TG_OP_NONE};

static tg_tensor *wrong_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    tg_tensor *x = in[0];
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] * x->data[i] * x->data[i];
    tg_record(&WRONG_CUBE, y, 1, &x);
    return tg_sum_all(y);
}

/* A subtle one: the right formula but 5% off. */
static void off5_backward(tg_node *nd)
{
    tg_tensor *x = nd->in[0];
    float *dx = tg_grad(x);
    for (int64_t i = 0; i < x->numel; i++) dx[i] += nd->out->grad[i] * 1.05f * 3.0f * x->data[i] * x->data[i];
}
static const tg_op_def OFF5_CUBE = {"off5_cube", off5_backward, TG_OP_NONE};

static tg_tensor *off5_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    tg_tensor *x = in[0];
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] * x->data[i] * x->data[i];
    tg_record(&OFF5_CUBE, y, 1, &x);
    return tg_sum_all(y);
}

Test(habits, gradcheck_defaults_pass_correct_float32_and_catch_wrong)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(4, 5), &r), true);
    tg_tensor *w = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(5, 3), &r), true);
    tg_tensor *in[2] = {x, w};
    tg_gradcheck_report rep;
    char buf[512];
    for (int sign = 0; sign < 2; sign++) { /* 0 and negative both mean "the defaults" */
        double v = sign ? -1.0 : 0.0;
        cr_assert_eq(tg_gradcheck(composite, NULL, in, 2, v, v, v, &rep), TG_OK, "%s", tg_last_error());
        cr_expect(rep.passed, "correct composite function with the defaults: %s",
                  tg_gradcheck_describe(&rep, buf, sizeof buf));
        cr_expect_eq(rep.checked, 35);
    }
    tg_tensor *c = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(6), &r), true);
    cr_assert_eq(tg_gradcheck(wrong_fn, NULL, &c, 1, 0, 0, 0, &rep), TG_OK);
    cr_expect(!rep.passed, "a backward missing a factor passed: %s", tg_gradcheck_describe(&rep, buf, sizeof buf));
    cr_assert_eq(tg_gradcheck(off5_fn, NULL, &c, 1, 0, 0, 0, &rep), TG_OK);
    cr_expect(!rep.passed, "a backward 5%% off passed: %s", tg_gradcheck_describe(&rep, buf, sizeof buf));
    cr_expect_eq(TG_GRADCHECK_EPS, 1e-3);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(c);
}

/* ---- 5. one train/eval switch ------------------------------------------------------------------ */

Test(habits, dropout_layer_follows_the_lists_training_flag)
{
    tg_param_list *l = tg_param_list_new();
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_dropout_layer d;
    cr_assert_eq(tg_dropout_layer_init(&d, l, 0.5f, &r), TG_OK);
    cr_expect_eq(l->count, 0, "dropout registers no tensors");
    tg_tensor *x = tg_tensor_ones(TG_SHAPE(1000));
    tg_tensor *y = tg_dropout_layer_forward(&d, x);
    int zeros = 0;
    for (int i = 0; i < 1000; i++) zeros += y->data[i] == 0.0f;
    cr_expect(zeros > 400 && zeros < 600, "train mode: %d of 1000 dropped", zeros);
    tg_param_list_train(l, false); /* model.eval() */
    y = tg_dropout_layer_forward(&d, x);
    for (int i = 0; i < 1000; i++) cr_expect_eq(y->data[i], 1.0f, "eval mode changed element %d", i);
    tg_param_list_train(l, true);
    y = tg_dropout_layer_forward(&d, x);
    zeros = 0;
    for (int i = 0; i < 1000; i++) zeros += y->data[i] == 0.0f;
    cr_expect_gt(zeros, 400, "back in train mode");
    cr_expect_eq(tg_dropout_layer_init(&d, l, 1.5f, NULL), TG_ERR_ARG);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_param_list_free(l);
}

/* ---- 6. nn.Sequential names, forward, and the state_dict printer ---------------------------- */

/* nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)):
 * PyTorch's own state_dict (torch_seq.safetensors) loads strictly and the forward matches. */
Test(habits, sequential_gets_pytorch_names_and_matches_its_forward)
{
    tg_param_list *l = tg_param_list_new();
    tg_sequential *s = tg_sequential_new(l, NULL);
    cr_assert_not_null(tg_sequential_add_conv2d(s, 3, 4, 3, 3, (tg_conv2d_opts){.padding = {1, 1}}, false, NULL));
    tg_batchnorm2d_layer *bn = tg_sequential_add_batchnorm2d(s, 4);
    cr_assert_not_null(bn);
    cr_assert_eq(tg_sequential_add_relu(s), TG_OK);
    cr_assert_not_null(tg_sequential_add_conv2d(s, 4, 2, 1, 1, (tg_conv2d_opts){0}, true, NULL));
    cr_expect_eq(tg_sequential_length(s), 4);
    static const char *names[] = {"0.weight", "1.weight", "1.bias", "1.running_mean",
                                  "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"};
    cr_assert_eq(l->count, 8);
    for (int i = 0; i < 8; i++) cr_expect_str_eq(l->entries[i].name, names[i]);
    cr_assert_eq(tg_checkpoint_load(TG_FIXTURE_DIR "/torch_seq.safetensors", l, NULL, NULL), TG_OK, "%s",
                 tg_last_error());
    cJSON *j = tgt_json_load("nn_seq.json");
    tg_tensor *x = tgt_json_tensor(cJSON_GetObjectItem(j, "x"), false);
    tg_tensor *ye = tgt_json_tensor(cJSON_GetObjectItem(j, "y_eval"), false);
    tg_tensor *yt = tgt_json_tensor(cJSON_GetObjectItem(j, "y_train"), false);
    tg_param_list_train(l, false);
    tgt_expect_tensor_close("sequential eval forward", tg_sequential_forward(s, x), ye, 1e-4, 1e-5);
    tg_param_list_train(l, true);
    tgt_expect_tensor_close("sequential train forward", tg_sequential_forward(s, x), yt, 1e-4, 1e-5);
    cr_expect_eq(*bn->num_batches_tracked->idata, 3);
    /* a wrong input names the layer */
    tg_tensor *bad = tg_tensor_zeros(TG_SHAPE(1, 5, 4, 4));
    cr_expect_null(tg_sequential_forward(s, bad));
    cr_expect(strstr(tg_last_error(), "layer 0 (Conv2d)"), "%s", tg_last_error());
    tg_tape_clear();
    tg_tensor_free(bad);
    tg_tensor_free(x);
    tg_tensor_free(ye);
    tg_tensor_free(yt);
    cJSON_Delete(j);
    tg_sequential_free(s);
    tg_param_list_free(l);
}

Test(habits, nested_sequential_prefix_and_printer)
{
    tg_param_list *l = tg_param_list_new();
    tg_sequential *f = tg_sequential_new(l, "features");
    cr_assert_not_null(tg_sequential_add_linear(f, 6, 5, true, NULL));
    cr_assert_eq(tg_sequential_add_tanh(f), TG_OK);
    cr_assert_not_null(tg_sequential_add_dropout(f, 0.1f, NULL));
    tg_linear_layer *head = tg_sequential_add_linear(f, 5, 2, false, NULL);
    cr_assert_not_null(head);
    tg_tensor_set_requires_grad(head->weight, false);
    tg_param_list_add_buffer(l, "steps", TG_I64, 0, NULL);
    char path[256];
    snprintf(path, sizeof path, "/tmp/tg_habits_print_%d.txt", (int)getpid());
    FILE *out = fopen(path, "w+");
    cr_assert_not_null(out);
    tg_param_list_print(l, out);
    rewind(out);
    char text[1024] = "";
    size_t got = fread(text, 1, sizeof text - 1, out);
    text[got] = 0;
    fclose(out);
    remove(path);
    cr_expect_str_eq(text,
                     "features.0.weight (5, 6)\n"
                     "features.0.bias (5,)\n"
                     "features.3.weight (2, 5) frozen\n"
                     "steps () int64 buffer\n"
                     "4 tensors: 45 parameter values, 1 buffer values\n");
    tg_tensor *x = tg_tensor_ones(TG_SHAPE(3, 6));
    tg_param_list_train(l, false);
    tg_tensor *y = tg_sequential_forward(f, x);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_expect_eq(y->shape[0], 3);
    cr_expect_eq(y->shape[1], 2);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_sequential_free(f);
    tg_param_list_free(l);
}

/* ---- 7. loader defaults: no shuffle, as PyTorch's DataLoader ---------------------------------- */

static tg_tensor *rows(int64_t n)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(n, 1));
    for (int64_t i = 0; i < n; i++) x->data[i] = (float)i;
    return x;
}

Test(habits, loader_defaults_keep_dataset_order)
{
    tg_tensor *x = rows(10);
    tg_dataset *ds = tg_tensor_dataset_new(x, NULL);
    tg_loader_options o = tg_loader_defaults(4, 123);
    cr_expect(!o.shuffle, "tg_loader_defaults shuffles (PyTorch's DataLoader does not)");
    tg_loader *l = tg_loader_new(ds, &o);
    tg_batch b;
    int64_t k = 0;
    while (tg_loader_next(l, &b) == TG_OK && b.x) {
        for (int64_t i = 0; i < b.x->numel; i++, k++) cr_expect_eq(b.x->data[i], (float)k, "evaluation order changed");
        tg_batch_free(&b);
    }
    cr_expect_eq(k, 10);
    tg_loader_free(l);
    tg_dataset_free(ds);
    tg_tensor_free(x);
}

/* ---- 8. Subset and random_split ------------------------------------------------------------- */

static float sample_value(const tg_dataset *ds, int64_t i)
{
    float v = -1;
    int64_t y = 0;
    tg_rng r;
    tg_rng_seed(&r, 0);
    cr_assert_eq(ds->get(ds, i, &r, &v, &y), TG_OK);
    return v;
}

Test(habits, subset_and_random_split)
{
    tg_tensor *x = rows(10);
    tg_dataset *ds = tg_tensor_dataset_new(x, NULL);
    const int64_t idx[3] = {7, 2, 7};
    tg_dataset *s = tg_dataset_subset(ds, idx, 3);
    cr_assert_not_null(s, "%s", tg_last_error());
    cr_expect_eq(s->length, 3);
    cr_expect_eq(sample_value(s, 0), 7.0f);
    cr_expect_eq(sample_value(s, 1), 2.0f);
    cr_expect_null(tg_dataset_subset(ds, (const int64_t[]){10}, 1));
    cr_expect(strstr(tg_last_error(), "index 10"), "%s", tg_last_error());
    cr_expect_null(tg_dataset_subset(ds, idx, 0));
    /* a loader over a subset */
    tg_loader_options o = tg_loader_defaults(2, 0);
    o.workers = 0;
    tg_loader *l = tg_loader_new(s, &o);
    tg_batch b;
    cr_assert_eq(tg_loader_next(l, &b), TG_OK);
    cr_expect_eq(b.x->data[0], 7.0f);
    cr_expect_eq(b.x->data[1], 2.0f);
    tg_batch_free(&b);
    tg_loader_free(l);
    tg_dataset_free(s);

    tg_dataset *parts[2], *again[2];
    cr_assert_eq(tg_dataset_random_split(ds, (const int64_t[]){7, 3}, 2, 42, parts), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_dataset_random_split(ds, (const int64_t[]){7, 3}, 2, 42, again), TG_OK);
    cr_expect_eq(parts[0]->length, 7);
    cr_expect_eq(parts[1]->length, 3);
    bool seen[10] = {false}, moved = false;
    for (int p = 0; p < 2; p++)
        for (int64_t i = 0; i < parts[p]->length; i++) {
            float v = sample_value(parts[p], i);
            cr_expect(!seen[(int)v], "sample %g in two parts", (double)v);
            seen[(int)v] = true;
            cr_expect_eq(v, sample_value(again[p], i), "same seed, different split");
            moved |= v != (float)(p * 7 + i);
        }
    cr_expect(moved, "random_split did not shuffle");
    for (int p = 0; p < 2; p++) {
        tg_dataset_free(parts[p]);
        tg_dataset_free(again[p]);
    }
    cr_expect_eq(tg_dataset_random_split(ds, (const int64_t[]){7, 4}, 2, 1, parts), TG_ERR_ARG);
    cr_expect_null(parts[0]);
    cr_expect_eq(tg_dataset_random_split(ds, (const int64_t[]){10, 0}, 2, 1, parts), TG_ERR_ARG);
    tg_dataset_free(ds);
    tg_tensor_free(x);
}
