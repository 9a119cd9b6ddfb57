/* nn.Sequential: layers appended in order, registered under "<prefix>.<index>" names,
 * run in order by one forward. */
#include "nn.h"

#include <string.h>

#include "../core/core_internal.h"
#include "../ops/tensor_ops.h"

typedef enum { SEQ_LINEAR, SEQ_CONV2D, SEQ_BATCHNORM2D, SEQ_DROPOUT, SEQ_FN, SEQ_MAX_POOL, SEQ_AVG_POOL } seq_kind;

typedef struct {
    seq_kind kind;
    const char *what;             /* for error messages: "Linear", "ReLU", ... */
    void *layer;                  /* SEQ_LINEAR..SEQ_DROPOUT: owned by the container */
    tg_module_fn fn;
    void *ctx;
    tg_pool2d_opts pool;
} seq_item;

struct tg_sequential {
    tg_param_list *list;
    char prefix[TG_PARAM_NAME_LEN];
    seq_item *items;
    int count, cap;
};

tg_sequential *tg_sequential_new(tg_param_list *list, const char *prefix)
{
    if (!list) {
        tg_error(TG_ERR_ARG, "tg_sequential_new: parameter list is NULL");
        return NULL;
    }
    if (prefix && strlen(prefix) >= TG_PARAM_NAME_LEN - 8) {
        tg_error(TG_ERR_ARG, "tg_sequential_new: prefix '%s' is too long", prefix);
        return NULL;
    }
    tg_sequential *s = tg_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->list = list;
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix ? prefix : "");
    return s;
}

void tg_sequential_free(tg_sequential *s)
{
    if (!s) return;
    for (int i = 0; i < s->count; i++) tg_free(s->items[i].layer);
    tg_free(s->items);
    tg_free(s);
}

int tg_sequential_length(const tg_sequential *s) { return s ? s->count : 0; }

/* Room for one more item; its name prefix ("<prefix>.<index>") in name. */
static seq_item *next_item(tg_sequential *s, const char *who, char *name)
{
    if (!s) {
        tg_error(TG_ERR_ARG, "%s: container is NULL", who);
        return NULL;
    }
    char index[16];
    snprintf(index, sizeof index, "%d", s->count);
    if (!tg_param_name(name, s->prefix, index)) return NULL;
    if (s->count == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        seq_item *it = tg_malloc((size_t)cap * sizeof *it);
        if (!it) return NULL;
        if (s->count) memcpy(it, s->items, (size_t)s->count * sizeof *it);
        tg_free(s->items);
        s->items = it;
        s->cap = cap;
    }
    seq_item *it = &s->items[s->count];
    memset(it, 0, sizeof *it);
    return it;
}

/* Appends a layer struct of `size` bytes made by init (which registers its tensors under name). */
#define SEQ_ADD_LAYER(T, KIND, WHAT, WHO, INIT_CALL)                                                               \
    char name[TG_PARAM_NAME_LEN];                                                                                  \
    seq_item *it = next_item(s, WHO, name);                                                                        \
    if (!it) return NULL;                                                                                          \
    T *l = tg_calloc(1, sizeof *l);                                                                                \
    if (!l) return NULL;                                                                                           \
    if ((INIT_CALL) != TG_OK) {                                                                                    \
        tg_free(l);                                                                                                \
        return NULL;                                                                                               \
    }                                                                                                              \
    it->kind = KIND;                                                                                               \
    it->what = WHAT;                                                                                               \
    it->layer = l;                                                                                                 \
    s->count++;                                                                                                    \
    return l

tg_linear_layer *tg_sequential_add_linear(tg_sequential *s, int64_t in_features, int64_t out_features, bool bias,
                                          tg_rng *rng)
{
    SEQ_ADD_LAYER(tg_linear_layer, SEQ_LINEAR, "Linear", "tg_sequential_add_linear",
                  tg_linear_layer_init(l, s->list, name, in_features, out_features, bias, rng));
}

tg_conv2d_layer *tg_sequential_add_conv2d(tg_sequential *s, int64_t in_channels, int64_t out_channels, int kh, int kw,
                                          tg_conv2d_opts opts, bool bias, tg_rng *rng)
{
    SEQ_ADD_LAYER(tg_conv2d_layer, SEQ_CONV2D, "Conv2d", "tg_sequential_add_conv2d",
                  tg_conv2d_layer_init(l, s->list, name, in_channels, out_channels, kh, kw, opts, bias, rng));
}

tg_batchnorm2d_layer *tg_sequential_add_batchnorm2d(tg_sequential *s, int64_t num_features)
{
    SEQ_ADD_LAYER(tg_batchnorm2d_layer, SEQ_BATCHNORM2D, "BatchNorm2d", "tg_sequential_add_batchnorm2d",
                  tg_batchnorm2d_layer_init(l, s->list, name, num_features, TG_BN_EPS, TG_BN_MOMENTUM));
}

tg_dropout_layer *tg_sequential_add_dropout(tg_sequential *s, float p, tg_rng *rng)
{
    SEQ_ADD_LAYER(tg_dropout_layer, SEQ_DROPOUT, "Dropout", "tg_sequential_add_dropout",
                  tg_dropout_layer_init(l, s->list, p, rng));
}

static tg_status add_fn(tg_sequential *s, const char *who, const char *what, seq_kind kind, tg_module_fn fn, void *ctx,
                        tg_pool2d_opts pool)
{
    char name[TG_PARAM_NAME_LEN];
    seq_item *it = next_item(s, who, name);
    if (!it) return tg_last_status();
    if (kind == SEQ_FN && !fn) return tg_error(TG_ERR_ARG, "%s: function is NULL", who);
    it->kind = kind;
    it->what = what;
    it->fn = fn;
    it->ctx = ctx;
    it->pool = pool;
    s->count++;
    return TG_OK;
}

static tg_tensor *relu_fn(tg_tensor *x, void *ctx) { (void)ctx; return tg_relu(x); }
static tg_tensor *sigmoid_fn(tg_tensor *x, void *ctx) { (void)ctx; return tg_sigmoid(x); }
static tg_tensor *tanh_fn(tg_tensor *x, void *ctx) { (void)ctx; return tg_tanh(x); }
static tg_tensor *flatten_fn(tg_tensor *x, void *ctx) { (void)ctx; return tg_flatten(x, 1, -1); }

static const tg_pool2d_opts NO_POOL;

tg_status tg_sequential_add_relu(tg_sequential *s)
{
    return add_fn(s, "tg_sequential_add_relu", "ReLU", SEQ_FN, relu_fn, NULL, NO_POOL);
}

tg_status tg_sequential_add_sigmoid(tg_sequential *s)
{
    return add_fn(s, "tg_sequential_add_sigmoid", "Sigmoid", SEQ_FN, sigmoid_fn, NULL, NO_POOL);
}

tg_status tg_sequential_add_tanh(tg_sequential *s)
{
    return add_fn(s, "tg_sequential_add_tanh", "Tanh", SEQ_FN, tanh_fn, NULL, NO_POOL);
}

tg_status tg_sequential_add_flatten(tg_sequential *s)
{
    return add_fn(s, "tg_sequential_add_flatten", "Flatten", SEQ_FN, flatten_fn, NULL, NO_POOL);
}

tg_status tg_sequential_add_max_pool2d(tg_sequential *s, tg_pool2d_opts opts)
{
    return add_fn(s, "tg_sequential_add_max_pool2d", "MaxPool2d", SEQ_MAX_POOL, NULL, NULL, opts);
}

tg_status tg_sequential_add_avg_pool2d(tg_sequential *s, tg_pool2d_opts opts)
{
    return add_fn(s, "tg_sequential_add_avg_pool2d", "AvgPool2d", SEQ_AVG_POOL, NULL, NULL, opts);
}

tg_status tg_sequential_add_fn(tg_sequential *s, tg_module_fn fn, void *ctx)
{
    return add_fn(s, "tg_sequential_add_fn", "function", SEQ_FN, fn, ctx, NO_POOL);
}

tg_tensor *tg_sequential_forward(const tg_sequential *s, tg_tensor *x)
{
    if (!s) {
        tg_error(TG_ERR_ARG, "tg_sequential_forward: container is NULL");
        return NULL;
    }
    if (!x) {
        if (tg_last_status() == TG_OK) tg_error(TG_ERR_ARG, "tg_sequential_forward: input is NULL");
        return NULL;
    }
    for (int i = 0; i < s->count && x; i++) {
        const seq_item *it = &s->items[i];
        tg_tensor *y = NULL;
        switch (it->kind) {
        case SEQ_LINEAR: y = tg_linear_layer_forward(it->layer, x); break;
        case SEQ_CONV2D: y = tg_conv2d_layer_forward(it->layer, x); break;
        case SEQ_BATCHNORM2D: y = tg_batchnorm2d_layer_forward(it->layer, x); break;
        case SEQ_DROPOUT: y = tg_dropout_layer_forward(it->layer, x); break;
        case SEQ_FN: y = it->fn(x, it->ctx); break;
        case SEQ_MAX_POOL: y = tg_max_pool2d(x, it->pool); break;
        case SEQ_AVG_POOL: y = tg_avg_pool2d(x, it->pool); break;
        }
        if (!y) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", tg_last_error());
            tg_error(tg_last_status() ? tg_last_status() : TG_ERR_ARG, "tg_sequential_forward: layer %s%s%d (%s): %s",
                     s->prefix, s->prefix[0] ? "." : "", i, it->what, msg[0] ? msg : "returned NULL");
            return NULL;
        }
        x = y;
    }
    return x;
}
