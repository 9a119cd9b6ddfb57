/* Layers: Linear, Conv2d, BatchNorm2d as plain structs whose tensors live in a
 * tg_param_list under PyTorch's state_dict names, with PyTorch's default init. */
#include "nn.h"

#include <math.h>
#include <string.h>

void tg_init_uniform(tg_tensor *t, float bound, tg_rng *rng)
{
    if (!t || !t->data) return;
    if (!rng) rng = tg_rng_global();
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (2.0f * tg_rng_uniform(rng) - 1.0f) * bound;
}

/* Registers "<prefix>.<name>" as a parameter. */
static tg_tensor *add_param(tg_param_list *list, const char *prefix, const char *name, int ndim,
                            const int64_t *shape)
{
    char full[TG_PARAM_NAME_LEN];
    if (!tg_param_name(full, prefix, name)) return NULL;
    return tg_param_list_add_param(list, full, ndim, shape);
}

static tg_tensor *add_buffer(tg_param_list *list, const char *prefix, const char *name, tg_dtype dtype, int ndim,
                             const int64_t *shape)
{
    char full[TG_PARAM_NAME_LEN];
    if (!tg_param_name(full, prefix, name)) return NULL;
    return tg_param_list_add_buffer(list, full, dtype, ndim, shape);
}

tg_status tg_linear_layer_init(tg_linear_layer *l, tg_param_list *list, const char *prefix, int64_t in_features,
                               int64_t out_features, bool bias, tg_rng *rng)
{
    const char *who = "tg_linear_layer_init";
    if (!l || !list) return tg_error(TG_ERR_ARG, "%s: %s is NULL", who, l ? "list" : "layer");
    if (in_features <= 0 || out_features <= 0)
        return tg_error(TG_ERR_ARG, "%s: in_features (%lld) and out_features (%lld) must be positive", who,
                        (long long)in_features, (long long)out_features);
    memset(l, 0, sizeof *l);
    l->in_features = in_features;
    l->out_features = out_features;
    l->weight = add_param(list, prefix, "weight", TG_SHAPE(out_features, in_features));
    if (!l->weight) return tg_last_status();
    if (bias && !(l->bias = add_param(list, prefix, "bias", TG_SHAPE(out_features)))) return tg_last_status();
    float bound = 1.0f / sqrtf((float)in_features);
    tg_init_uniform(l->weight, bound, rng);
    tg_init_uniform(l->bias, bound, rng);
    return TG_OK;
}

tg_tensor *tg_linear_layer_forward(const tg_linear_layer *l, tg_tensor *x)
{
    if (!l) {
        tg_error(TG_ERR_ARG, "tg_linear_layer_forward: layer is NULL");
        return NULL;
    }
    return tg_linear(x, l->weight, l->bias);
}

tg_status tg_conv2d_layer_init(tg_conv2d_layer *l, tg_param_list *list, const char *prefix, int64_t in_channels,
                               int64_t out_channels, int kh, int kw, tg_conv2d_opts opts, bool bias, tg_rng *rng)
{
    const char *who = "tg_conv2d_layer_init";
    if (!l || !list) return tg_error(TG_ERR_ARG, "%s: %s is NULL", who, l ? "list" : "layer");
    int groups = opts.groups ? opts.groups : 1;
    if (in_channels <= 0 || out_channels <= 0 || kh <= 0 || kw <= 0 || groups <= 0)
        return tg_error(TG_ERR_ARG, "%s: channels (%lld, %lld), kernel (%d, %d) and groups (%d) must be positive",
                        who, (long long)in_channels, (long long)out_channels, kh, kw, groups);
    if (in_channels % groups || out_channels % groups)
        return tg_error(TG_ERR_ARG, "%s: in_channels %lld and out_channels %lld must be divisible by groups %d", who,
                        (long long)in_channels, (long long)out_channels, groups);
    memset(l, 0, sizeof *l);
    l->in_channels = in_channels;
    l->out_channels = out_channels;
    l->kernel[0] = kh;
    l->kernel[1] = kw;
    l->opts = opts;
    l->weight = add_param(list, prefix, "weight", TG_SHAPE(out_channels, in_channels / groups, kh, kw));
    if (!l->weight) return tg_last_status();
    if (bias && !(l->bias = add_param(list, prefix, "bias", TG_SHAPE(out_channels)))) return tg_last_status();
    float bound = 1.0f / sqrtf((float)(in_channels / groups * kh * kw));
    tg_init_uniform(l->weight, bound, rng);
    tg_init_uniform(l->bias, bound, rng);
    return TG_OK;
}

tg_tensor *tg_conv2d_layer_forward(const tg_conv2d_layer *l, tg_tensor *x)
{
    if (!l) {
        tg_error(TG_ERR_ARG, "tg_conv2d_layer_forward: layer is NULL");
        return NULL;
    }
    return tg_conv2d(x, l->weight, l->bias, l->opts);
}

tg_status tg_batchnorm2d_layer_init(tg_batchnorm2d_layer *l, tg_param_list *list, const char *prefix,
                                    int64_t num_features, float eps, float momentum)
{
    const char *who = "tg_batchnorm2d_layer_init";
    if (!l || !list) return tg_error(TG_ERR_ARG, "%s: %s is NULL", who, l ? "list" : "layer");
    if (num_features <= 0)
        return tg_error(TG_ERR_ARG, "%s: num_features must be positive, got %lld", who, (long long)num_features);
    if (!(eps > 0.0f)) return tg_error(TG_ERR_ARG, "%s: eps must be positive, got %g", who, (double)eps);
    if (!isnan(momentum) && !(momentum >= 0.0f && momentum <= 1.0f))
        return tg_error(TG_ERR_ARG, "%s: momentum must be in [0, 1] or NAN, got %g", who, (double)momentum);
    memset(l, 0, sizeof *l);
    l->num_features = num_features;
    l->eps = eps;
    l->momentum = momentum;
    l->training = &list->training;
    l->sync = &list->bn_sync;
    if (!(l->weight = add_param(list, prefix, "weight", TG_SHAPE(num_features))) ||
        !(l->bias = add_param(list, prefix, "bias", TG_SHAPE(num_features))) ||
        !(l->running_mean = add_buffer(list, prefix, "running_mean", TG_F32, TG_SHAPE(num_features))) ||
        !(l->running_var = add_buffer(list, prefix, "running_var", TG_F32, TG_SHAPE(num_features))) ||
        !(l->num_batches_tracked = add_buffer(list, prefix, "num_batches_tracked", TG_I64, 0, NULL)))
        return tg_last_status();
    for (int64_t c = 0; c < num_features; c++) {
        l->weight->data[c] = 1.0f;
        l->running_var->data[c] = 1.0f;
    }
    return TG_OK;
}

static tg_tensor *batchnorm2d_forward(const char *op, const tg_batchnorm2d_layer *l, tg_tensor *x, bool relu)
{
    if (!l || !l->training) {
        tg_error(TG_ERR_ARG, "%s: layer is NULL or not initialised", op);
        return NULL;
    }
    if (x && x->ndim != 4) {
        char b[96];
        tg_error(TG_ERR_SHAPE, "%s: expected a 4-D (N, C, H, W) input, got %s", op, tg_shape_str(x, b, sizeof b));
        return NULL;
    }
    if (*l->training && l->sync && *l->sync)
        return tg_sync_batch_norm(x, l->weight, l->bias, l->running_mean, l->running_var,
                                  l->num_batches_tracked->idata, l->momentum, l->eps, relu, *l->sync);
    return (relu ? tg_batch_norm_relu : tg_batch_norm)(x, l->weight, l->bias, l->running_mean, l->running_var,
                                                       l->num_batches_tracked->idata, *l->training, l->momentum,
                                                       l->eps);
}

tg_tensor *tg_batchnorm2d_layer_forward(const tg_batchnorm2d_layer *l, tg_tensor *x)
{
    return batchnorm2d_forward("tg_batchnorm2d_layer_forward", l, x, false);
}

tg_tensor *tg_batchnorm2d_layer_forward_relu(const tg_batchnorm2d_layer *l, tg_tensor *x)
{
    return batchnorm2d_forward("tg_batchnorm2d_layer_forward_relu", l, x, true);
}

tg_status tg_dropout_layer_init(tg_dropout_layer *l, tg_param_list *list, float p, tg_rng *rng)
{
    const char *who = "tg_dropout_layer_init";
    if (!l || !list) return tg_error(TG_ERR_ARG, "%s: %s is NULL", who, l ? "list" : "layer");
    if (!(p >= 0.0f && p <= 1.0f)) return tg_error(TG_ERR_ARG, "%s: p must be in [0, 1], got %g", who, (double)p);
    l->p = p;
    l->rng = rng;
    l->training = &list->training;
    return TG_OK;
}

tg_tensor *tg_dropout_layer_forward(const tg_dropout_layer *l, tg_tensor *x)
{
    if (!l || !l->training) {
        tg_error(TG_ERR_ARG, "tg_dropout_layer_forward: layer is NULL or not initialised");
        return NULL;
    }
    return tg_dropout(x, l->p, *l->training, l->rng);
}
