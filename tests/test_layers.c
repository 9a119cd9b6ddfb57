/* Layers: PyTorch default init bounds, state_dict names, and the forward of a
 * Conv-BN-ReLU-Conv model loaded from a PyTorch-made safetensors file
 * (tests/fixtures/torch_seq.safetensors + nn_seq.json, from gen_nn_fixtures.py).
 * With TG_WRITE_FIXTURES=1 it also writes tests/fixtures/tapegrad_seq.{safetensors,json}
 * for tests/check_tapegrad_ckpt.py (PyTorch loads tapegrad's file). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_support.h"

/* nn.Sequential(Conv2d(3,4,3,padding=1,bias=False), BatchNorm2d(4), ReLU(), Conv2d(4,2,1)) */
typedef struct {
    tg_param_list *list;
    tg_conv2d_layer c0;
    tg_batchnorm2d_layer bn1;
    tg_conv2d_layer c3;
} seq_model;

static void seq_init(seq_model *m, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    m->list = tg_param_list_new();
    cr_assert_eq(tg_conv2d_layer_init(&m->c0, m->list, "0", 3, 4, 3, 3, (tg_conv2d_opts){.padding = {1, 1}}, false, &rng),
                 TG_OK);
    cr_assert_eq(tg_batchnorm2d_layer_init(&m->bn1, m->list, "1", 4, TG_BN_EPS, TG_BN_MOMENTUM), TG_OK);
    cr_assert_eq(tg_conv2d_layer_init(&m->c3, m->list, "3", 4, 2, 1, 1, (tg_conv2d_opts){0}, true, &rng), TG_OK);
}

/* Returns a caller-owned copy of the output (the tape is cleared). */
static tg_tensor *seq_forward(seq_model *m, tg_tensor *x)
{
    tg_tensor *h = tg_batchnorm2d_layer_forward(&m->bn1, tg_conv2d_layer_forward(&m->c0, x));
    cr_assert_not_null(h, "%s", tg_last_error());
    tg_tensor *r = tg_tensor_clone(h); /* ReLU by hand: this test needs only core and nn ops */
    for (int64_t i = 0; i < r->numel; i++) r->data[i] = r->data[i] > 0.0f ? r->data[i] : 0.0f;
    tg_tensor *y = tg_tensor_clone(tg_conv2d_layer_forward(&m->c3, r));
    cr_assert_not_null(y, "%s", tg_last_error());
    tg_tensor_free(r);
    tg_tape_clear();
    return y;
}

static void check_bound(const char *what, const tg_tensor *t, float bound)
{
    float mx = 0.0f;
    double mean = 0.0;
    for (int64_t i = 0; i < t->numel; i++) {
        cr_expect(fabsf(t->data[i]) <= bound, "%s[%lld] = %g outside +-%g", what, (long long)i, t->data[i], bound);
        mx = fmaxf(mx, fabsf(t->data[i]));
        mean += t->data[i];
    }
    mean /= (double)t->numel;
    if (t->numel >= 100) {
        cr_expect(mx > 0.9f * bound, "%s: max |w| %g is far below the bound %g", what, mx, bound);
        cr_expect(fabs(mean) < 0.1 * bound, "%s: mean %g is not near 0", what, mean);
        /* U(-b, b) has variance b^2/3 */
        double var = 0.0;
        for (int64_t i = 0; i < t->numel; i++) var += (t->data[i] - mean) * (t->data[i] - mean);
        var /= (double)t->numel;
        cr_expect(fabs(var / (bound * bound / 3.0) - 1.0) < 0.15, "%s: variance %g, expected %g", what, var,
                  bound * bound / 3.0);
    }
}

Test(layers, default_init_bounds)
{
    tg_param_list *l = tg_param_list_new();
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_conv2d_layer c, g;
    tg_linear_layer lin;
    cr_assert_eq(tg_conv2d_layer_init(&c, l, "conv", 16, 32, 3, 3, (tg_conv2d_opts){0}, true, &rng), TG_OK);
    check_bound("conv.weight", c.weight, 1.0f / 12.0f); /* fan_in 16*3*3 = 144 */
    check_bound("conv.bias", c.bias, 1.0f / 12.0f);
    cr_assert_eq(tg_conv2d_layer_init(&g, l, "gconv", 16, 32, 3, 3, (tg_conv2d_opts){.groups = 4}, false, &rng), TG_OK);
    cr_expect_eq(g.weight->shape[1], 4);
    check_bound("gconv.weight", g.weight, 1.0f / 6.0f); /* fan_in 16/4*9 = 36 */
    cr_expect_null(g.bias);
    cr_assert_eq(tg_linear_layer_init(&lin, l, "fc", 50, 40, true, &rng), TG_OK);
    check_bound("fc.weight", lin.weight, 1.0f / sqrtf(50.0f));
    check_bound("fc.bias", lin.bias, 1.0f / sqrtf(50.0f));
    cr_expect_eq(lin.weight->shape[0], 40);
    cr_expect_eq(lin.weight->shape[1], 50);
    tg_param_list_free(l);
}

Test(layers, state_dict_names_kinds_and_bn_init)
{
    seq_model m;
    seq_init(&m, 1);
    static const char *names[] = {"0.weight", "1.weight", "1.bias", "1.running_mean",
                                  "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"};
    static const tg_param_kind kinds[] = {TG_KIND_PARAM, TG_KIND_PARAM, TG_KIND_PARAM, TG_KIND_BUFFER,
                                          TG_KIND_BUFFER, TG_KIND_BUFFER, TG_KIND_PARAM, TG_KIND_PARAM};
    cr_assert_eq(m.list->count, 8);
    for (int i = 0; i < 8; i++) {
        cr_expect_str_eq(m.list->entries[i].name, names[i]);
        cr_expect_eq(m.list->entries[i].kind, kinds[i], "%s", names[i]);
    }
    cr_expect_eq(m.bn1.num_batches_tracked->dtype, TG_I64);
    cr_expect_eq(m.bn1.num_batches_tracked->ndim, 0);
    for (int c = 0; c < 4; c++) {
        cr_expect_eq(m.bn1.weight->data[c], 1.0f);
        cr_expect_eq(m.bn1.bias->data[c], 0.0f);
        cr_expect_eq(m.bn1.running_mean->data[c], 0.0f);
        cr_expect_eq(m.bn1.running_var->data[c], 1.0f);
    }
    cr_expect(m.bn1.weight->requires_grad && !m.bn1.running_mean->requires_grad);
    cr_expect_eq(tg_param_list_numel(m.list, TG_KIND_PARAM), 108 + 8 + 10);
    cr_expect_eq(tg_param_list_no_decay_1d(m.list), 3); /* 1.weight, 1.bias, 3.bias */
    tg_param_list_free(m.list);
}

Test(layers, forward_matches_pytorch_after_loading_its_state_dict)
{
    seq_model m;
    seq_init(&m, 2);
    tg_ckpt_report rep;
    tg_meta meta = {0};
    tg_ckpt_opts o = {.meta = &meta};
    cr_assert_eq(tg_checkpoint_load(TG_FIXTURE_DIR "/torch_seq.safetensors", m.list, &o, &rep), TG_OK, "%s",
                 tg_last_error());
    cr_expect_eq(rep.n_loaded, 8);
    cr_expect_str_eq(tg_meta_get(&meta, "made_by"), "torch");
    cr_expect_eq(*m.bn1.num_batches_tracked->idata, 2);
    cJSON *j = tgt_json_load("nn_seq.json");
    tg_tensor *x = tgt_json_tensor(cJSON_GetObjectItem(j, "x"), false);
    tg_tensor *ye = tgt_json_tensor(cJSON_GetObjectItem(j, "y_eval"), false);
    tg_tensor *yt = tgt_json_tensor(cJSON_GetObjectItem(j, "y_train"), false);
    tg_tensor *rm = tgt_json_tensor(cJSON_GetObjectItem(j, "running_mean_after"), false);
    tg_tensor *rv = tgt_json_tensor(cJSON_GetObjectItem(j, "running_var_after"), false);
    tg_param_list_train(m.list, false);
    tg_tensor *y = seq_forward(&m, x);
    tgt_expect_tensor_close("eval forward", y, ye, 1e-4, 1e-5);
    tg_tensor_free(y);
    tg_param_list_train(m.list, true);
    y = seq_forward(&m, x);
    tgt_expect_tensor_close("train forward", y, yt, 1e-4, 1e-5);
    tgt_expect_tensor_close("running_mean", m.bn1.running_mean, rm, 1e-5, 1e-6);
    tgt_expect_tensor_close("running_var", m.bn1.running_var, rv, 1e-5, 1e-6);
    cr_expect_eq(*m.bn1.num_batches_tracked->idata,
                 (int64_t)cJSON_GetObjectItem(j, "num_batches_tracked_after")->valuedouble);
    tg_tensor_free(y);
    tg_tensor_free(x);
    tg_tensor_free(ye);
    tg_tensor_free(yt);
    tg_tensor_free(rm);
    tg_tensor_free(rv);
    cJSON_Delete(j);
    tg_meta_clear(&meta);
    tg_param_list_free(m.list);
}

/* The other direction: tapegrad writes a checkpoint PyTorch must load with load_state_dict(strict=True).
 * Always written to the build dir and re-read here; committed under tests/fixtures when
 * TG_WRITE_FIXTURES=1 (then run tests/check_tapegrad_ckpt.py). */
Test(layers, tapegrad_checkpoint_for_pytorch)
{
    seq_model m;
    seq_init(&m, 3);
    tg_rng rng;
    tg_rng_seed(&rng, 99);
    for (int c = 0; c < 4; c++) {
        m.bn1.weight->data[c] = 0.5f + tg_rng_uniform(&rng);
        m.bn1.bias->data[c] = tg_rng_uniform(&rng) - 0.5f;
        m.bn1.running_mean->data[c] = tg_rng_uniform(&rng) - 0.5f;
        m.bn1.running_var->data[c] = 0.5f + tg_rng_uniform(&rng);
    }
    *m.bn1.num_batches_tracked->idata = 7;
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(2, 3, 5, 5), &rng);
    tg_param_list_train(m.list, false);
    tg_tensor *y = seq_forward(&m, x);
    bool commit = getenv("TG_WRITE_FIXTURES") != NULL;
    const char *path = commit ? TG_FIXTURE_DIR "/tapegrad_seq.safetensors" : TG_BIN_DIR "/tapegrad_seq.safetensors";
    tg_meta meta = {0};
    tg_meta_set(&meta, "made_by", "tapegrad");
    tg_ckpt_opts o = {.meta = &meta};
    cr_assert_eq(tg_checkpoint_save(path, m.list, &o), TG_OK, "%s", tg_last_error());
    if (commit) {
        FILE *f = fopen(TG_FIXTURE_DIR "/tapegrad_seq.json", "w");
        cr_assert_not_null(f);
        const tg_tensor *ts[2] = {x, y};
        const char *keys[2] = {"x", "y_eval"};
        fprintf(f, "{");
        for (int k = 0; k < 2; k++) {
            fprintf(f, "%s\"%s\": {\"shape\": [%lld, %lld, %lld, %lld], \"data\": [", k ? ", " : "", keys[k],
                    (long long)ts[k]->shape[0], (long long)ts[k]->shape[1], (long long)ts[k]->shape[2],
                    (long long)ts[k]->shape[3]);
            for (int64_t i = 0; i < ts[k]->numel; i++) fprintf(f, "%s%.9g", i ? ", " : "", ts[k]->data[i]);
            fprintf(f, "]}");
        }
        fprintf(f, "}\n");
        cr_assert_eq(fclose(f), 0);
    }
    /* read back into a differently initialised model: same forward */
    seq_model m2;
    seq_init(&m2, 4);
    tg_ckpt_opts o2 = {0};
    cr_assert_eq(tg_checkpoint_load(path, m2.list, &o2, NULL), TG_OK, "%s", tg_last_error());
    tg_param_list_train(m2.list, false);
    tg_tensor *y2 = seq_forward(&m2, x);
    cr_expect_eq(memcmp(y->data, y2->data, sizeof(float) * (size_t)y->numel), 0);
    tg_tensor_free(y2);
    tg_tensor_free(y);
    tg_tensor_free(x);
    tg_meta_clear(&meta);
    tg_param_list_free(m.list);
    tg_param_list_free(m2.list);
}

Test(layers, bad_arguments_are_errors)
{
    tg_param_list *l = tg_param_list_new();
    tg_conv2d_layer c;
    tg_batchnorm2d_layer bn;
    tg_linear_layer lin;
    cr_expect_eq(tg_conv2d_layer_init(&c, l, "c", 6, 4, 3, 3, (tg_conv2d_opts){.groups = 4}, true, NULL), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "divisible") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_conv2d_layer_init(&c, l, "c", 0, 4, 3, 3, (tg_conv2d_opts){0}, true, NULL), TG_ERR_ARG);
    cr_expect_eq(tg_linear_layer_init(&lin, l, "fc", 3, -1, true, NULL), TG_ERR_ARG);
    cr_expect_eq(tg_batchnorm2d_layer_init(&bn, l, "bn", 4, 0.0f, 0.1f), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "eps") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_linear_layer_init(&lin, l, "fc", 3, 2, true, NULL), TG_OK);
    cr_expect_eq(tg_linear_layer_init(&lin, l, "fc", 3, 2, true, NULL), TG_ERR_ARG); /* same names again */
    cr_expect(strstr(tg_last_error(), "fc.weight") != NULL, "%s", tg_last_error());
    cr_expect_eq(tg_batchnorm2d_layer_init(&bn, l, "bn", 4, TG_BN_EPS, TG_BN_MOMENTUM), TG_OK);
    tg_tensor *x3 = tg_tensor_zeros(TG_SHAPE(2, 4, 5));
    cr_expect_null(tg_batchnorm2d_layer_forward(&bn, x3));
    cr_expect(strstr(tg_last_error(), "4-D") != NULL, "%s", tg_last_error());
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 5));
    cr_expect_null(tg_linear_layer_forward(&lin, x)); /* 5 features, layer wants 3 */
    tg_tensor_free(x3);
    tg_tensor_free(x);
    tg_param_list_free(l);
}

/* Backward through the layers accumulates into the list's grad block; an SGD step then moves
 * exactly the parameters, and the layer stack passes a finite-difference check. */
static tg_tensor *seq_loss(tg_tensor *const *in, int n, void *ctx)
{
    (void)in;
    (void)n;
    seq_model *m = ctx;
    tg_tensor *h = tg_batchnorm2d_layer_forward(&m->bn1, tg_conv2d_layer_forward(&m->c0, in[0]));
    return tgt_weighted_sum(tg_conv2d_layer_forward(&m->c3, h), 11);
}

Test(layers, gradients_land_in_the_block)
{
    seq_model m;
    seq_init(&m, 5);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(2, 3, 4, 4), &rng);
    tg_tensor *loss = seq_loss(&x, 1, &m);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_backward(loss), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < m.list->count; i++) {
        const tg_param_entry *e = &m.list->entries[i];
        if (e->kind != TG_KIND_PARAM) {
            cr_expect_null(e->tensor->grad, "%s", e->name);
            continue;
        }
        cr_expect_eq(e->tensor->grad, m.list->grad + e->offset, "%s: grad outside the block", e->name);
        double s = 0;
        for (int64_t k = 0; k < e->tensor->numel; k++) s += fabs(e->tensor->grad[k]);
        cr_expect_gt(s, 0.0, "%s got no gradient", e->name);
    }
    tg_tape_clear();
    tg_tensor *params[4] = {m.c0.weight, m.bn1.weight, m.bn1.bias, m.c3.weight};
    tg_tensor *inputs[5] = {x, params[0], params[1], params[2], params[3]};
    tgt_expect_gradcheck("conv-bn-conv layers", seq_loss, &m, inputs, 5, 1e-3, 2e-3, 2e-2);
    float before = m.c3.bias->data[0];
    tg_param_list_zero_grad(m.list);
    loss = seq_loss(&x, 1, &m);
    tg_backward(loss);
    float g = m.c3.bias->grad[0];
    tg_optimizer *o = tg_sgd_new(m.list, (tg_sgd_opts){.lr = 0.5});
    cr_assert_eq(tg_optimizer_step(o), TG_OK);
    cr_expect_float_eq(m.c3.bias->data[0], before - 0.5f * g, 1e-6);
    tg_optimizer_zero_grad(o);
    cr_expect_eq(m.c3.bias->grad[0], 0.0f);
    tg_tape_clear();
    tg_optimizer_free(o);
    tg_tensor_free(x);
    tg_param_list_free(m.list);
}

Test(layers, linear_forward_matches_pytorch)
{
    cJSON *j = tgt_json_load("nn_seq.json");
    const cJSON *lj = cJSON_GetObjectItem(j, "linear");
    tg_param_list *l = tg_param_list_new();
    tg_linear_layer lin;
    cr_assert_eq(tg_linear_layer_init(&lin, l, "fc", 5, 3, true, NULL), TG_OK);
    tg_tensor *w = tgt_json_tensor(cJSON_GetObjectItem(lj, "weight"), false);
    tg_tensor *b = tgt_json_tensor(cJSON_GetObjectItem(lj, "bias"), false);
    tg_tensor *x = tgt_json_tensor(cJSON_GetObjectItem(lj, "x"), false);
    tg_tensor *ye = tgt_json_tensor(cJSON_GetObjectItem(lj, "y"), false);
    cr_assert_eq(tg_tensor_copy_data(lin.weight, w), TG_OK);
    cr_assert_eq(tg_tensor_copy_data(lin.bias, b), TG_OK);
    tg_tensor *y = tg_linear_layer_forward(&lin, x);
    cr_assert_not_null(y, "%s", tg_last_error());
    tgt_expect_tensor_close("linear forward", y, ye, 1e-5, 1e-6);
    tg_tape_clear();
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(x);
    tg_tensor_free(ye);
    tg_param_list_free(l);
    cJSON_Delete(j);
}
