/* The reference UNet (bilinear=True): construction in state_dict order, and its forward pass. */
#include "unet.h"

#include "trace.h"

#include "../core/core_internal.h"
#include "../ops/eval_internal.h"
#include "../ops/tensor_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DoubleConv(in, out, mid): conv3x3(in->mid, no bias) "0", BN "1", ReLU, conv3x3(mid->out) "3", BN "4", ReLU. */
static tg_status double_conv_init(tg_double_conv *d, tg_param_list *list, const char *prefix, int in, int out, int mid,
                                  tg_rng *rng)
{
    const tg_conv2d_opts pad1 = {.padding = {1, 1}};
    char name[TG_PARAM_NAME_LEN];
    tg_status st = TG_OK;
    if (st == TG_OK && !tg_param_name(name, prefix, "0")) st = tg_last_status();
    if (st == TG_OK) st = tg_conv2d_layer_init(&d->conv1, list, name, in, mid, 3, 3, pad1, false, rng);
    if (st == TG_OK && !tg_param_name(name, prefix, "1")) st = tg_last_status();
    if (st == TG_OK) st = tg_batchnorm2d_layer_init(&d->bn1, list, name, mid, TG_BN_EPS, TG_BN_MOMENTUM);
    if (st == TG_OK && !tg_param_name(name, prefix, "3")) st = tg_last_status();
    if (st == TG_OK) st = tg_conv2d_layer_init(&d->conv2, list, name, mid, out, 3, 3, pad1, false, rng);
    if (st == TG_OK && !tg_param_name(name, prefix, "4")) st = tg_last_status();
    if (st == TG_OK) st = tg_batchnorm2d_layer_init(&d->bn2, list, name, out, TG_BN_EPS, TG_BN_MOMENTUM);
    return st;
}

static tg_tensor *double_conv_forward(const tg_double_conv *d, tg_tensor *x)
{
    /* BatchNorm2d then ReLU, fused (the same bits as the two ops, one pass less each way) */
    tg_tensor *h = tg_batchnorm2d_layer_forward_relu(&d->bn1, tg_conv2d_layer_forward(&d->conv1, x));
    return tg_batchnorm2d_layer_forward_relu(&d->bn2, tg_conv2d_layer_forward(&d->conv2, h));
}

tg_unet *tg_unet_new(int in_channels, int num_classes, int base_c, tg_rng *rng)
{
    if (in_channels < 1 || num_classes < 1 || base_c < 1) {
        tg_error(TG_ERR_ARG, "tg_unet_new: in_channels, num_classes and base_c must be >= 1, got %d, %d, %d",
                 in_channels, num_classes, base_c);
        return NULL;
    }
    if (base_c > (1 << 20) / 16) {
        tg_error(TG_ERR_ARG, "tg_unet_new: base_c %d is too large", base_c);
        return NULL;
    }
    tg_unet *m = tg_calloc(1, sizeof *m);
    if (!m || !(m->params = tg_param_list_new())) {
        tg_free(m);
        tg_error(TG_ERR_NOMEM, "tg_unet_new: out of memory");
        return NULL;
    }
    m->in_channels = in_channels;
    m->num_classes = num_classes;
    m->base_c = base_c;
    const int c = base_c;
    /* Channel plan of the reference with bilinear=True (factor 2). */
    const int down_in[4] = {c, 2 * c, 4 * c, 8 * c}, down_out[4] = {2 * c, 4 * c, 8 * c, 8 * c};
    const int up_in[4] = {16 * c, 8 * c, 4 * c, 2 * c}, up_out[4] = {4 * c, 2 * c, c, c};
    tg_status st = double_conv_init(&m->in_conv, m->params, "in_conv", in_channels, c, c, rng);
    for (int i = 0; i < 4 && st == TG_OK; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "down%d.1", i + 1);
        st = double_conv_init(&m->down[i], m->params, prefix, down_in[i], down_out[i], down_out[i], rng);
    }
    for (int i = 0; i < 4 && st == TG_OK; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "up%d.conv", i + 1);
        st = double_conv_init(&m->up[i], m->params, prefix, up_in[i], up_out[i], up_in[i] / 2, rng);
    }
    if (st == TG_OK)
        st = tg_conv2d_layer_init(&m->out_conv, m->params, "out_conv.0", c, num_classes, 1, 1, (tg_conv2d_opts){0},
                                  true, rng);
    if (st != TG_OK) {
        tg_unet_free(m);
        return NULL;
    }
    return m;
}

void tg_unet_free(tg_unet *m)
{
    if (!m) return;
    tg_param_list_free(m->params);
    tg_free(m);
}

/* Up block: upsample x2 (bilinear, align_corners), pad to skip's size, cat([skip, up]), DoubleConv. */
static tg_tensor *up_forward(const tg_double_conv *d, tg_tensor *x, tg_tensor *skip)
{
    tg_tensor *up = tg_upsample_bilinear2d(x, (tg_upsample_opts){.scale = {2, 2}, .align_corners = true}), *u = up;
    if (!u) return NULL;
    const int64_t dy = skip->shape[2] - u->shape[2], dx = skip->shape[3] - u->shape[3];
    if (dy || dx) {
        const int64_t pads[4] = {dx / 2, dx - dx / 2, dy / 2, dy - dy / 2};
        u = tg_pad(u, pads, 4, 0.0f);
    }
    tg_tensor *both[2] = {skip, u};
    tg_tensor *cat = tg_concat(both, 2, 1);
    /* the upsampled (and padded) map is private to this block and its backwards read only
     * gradients (upsample, pad, concat): its memory serves the next outputs (crop 480: 110 MB) */
    if (cat) {
        tg_release_value(up);
        if (u != up) tg_release_value(u);
    }
    return double_conv_forward(d, cat);
}

/* ---- the evaluation forward: no tape, results written where the next step reads them ---------
 * Taken in eval mode when nothing would be recorded (gradients off, or neither x nor a parameter
 * requires grad) and no trace is active. Every value has the same bits as the ops' forward:
 *   - BatchNorm+ReLU (running statistics) runs in place on the conv output, no new tensor;
 *   - the skip connections' last BatchNorm+ReLU writes straight into the channels [0, Cs) of the
 *     buffer the up block's concatenation would make (batch 1: the skip is a view of it; larger
 *     batches: a copy per image), and the upsampled map is written into channels [Cs, Ct) with
 *     its zero padding: no upsample, pad or concat tensor;
 *   - max pooling keeps no argmax (ops/pool.c, when nothing is recorded). */

/* BN+ReLU (eval) of h into dst (img floats per image), or in place if dst is NULL; h or NULL. */
static tg_tensor *bn_relu_eval(const tg_batchnorm2d_layer *l, tg_tensor *h, float *dst, int64_t img)
{
    if (!h) return NULL;
    const int64_t per_image = h->shape[0] ? h->numel / h->shape[0] : 0;
    if (!tg_batch_norm_eval_into("tg_unet_forward", h, l->weight, l->bias, l->running_mean, l->running_var, l->eps,
                                 true, dst ? dst : h->data, dst ? img : per_image))
        return NULL;
    return h;
}

/* DoubleConv; the last BN+ReLU goes to out (img floats per image) if given: the returned tensor's
 * data is then the conv output, not the result. */
static tg_tensor *double_conv_eval(const tg_double_conv *d, tg_tensor *x, float *out, int64_t img)
{
    tg_tensor *h = bn_relu_eval(&d->bn1, tg_conv2d_layer_forward(&d->conv1, x), NULL, 0);
    return bn_relu_eval(&d->bn2, tg_conv2d_layer_forward(&d->conv2, h), out, img);
}

static bool eval_path_applies(const tg_unet *m, const tg_tensor *x)
{
    if (m->params->training || tg_trace_active()) return false;
    if (!tg_grad_enabled()) return true;
    if (x->requires_grad) return false;
    for (int k = 0; k < m->params->count; k++)
        if (m->params->entries[k].tensor->requires_grad) return false;
    return true;
}

static tg_tensor *unet_forward_eval(const tg_unet *m, tg_tensor *x)
{
    const int64_t N = x->shape[0];
    const tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_tensor *skip[5], *cat[4] = {NULL, NULL, NULL, NULL}; /* cat[k]: the up block's input that skip k is part of */
    for (int k = 0; k < 5; k++) {
        const tg_double_conv *d = k == 0 ? &m->in_conv : &m->down[k - 1];
        tg_tensor *in = k == 0 ? x : tg_max_pool2d(skip[k - 1], pool);
        if (!in) return NULL;
        const int64_t H = in->shape[2], W = in->shape[3];
        if (k < 4 && N == 1) {
            const int64_t Cs = d->conv2.out_channels, Ct = m->up[3 - k].conv1.in_channels;
            if (!(cat[k] = tg_output_new(TG_F32, 4, (const int64_t[]){1, Ct, H, W}))) return NULL;
            skip[k] = double_conv_eval(d, in, cat[k]->data, Ct * H * W)
                          ? tg_output_alias(4, (const int64_t[]){1, Cs, H, W}, cat[k]->data)
                          : NULL;
        } else {
            skip[k] = double_conv_eval(d, in, NULL, 0);
        }
        if (!skip[k]) return NULL;
    }
    tg_tensor *h = skip[4];
    for (int i = 0; i < 4; i++) {
        const int k = 3 - i;
        const tg_tensor *s = skip[k];
        const int64_t Cs = s->shape[1], H = s->shape[2], W = s->shape[3], Ct = Cs + h->shape[1], plane = H * W;
        tg_tensor *c = cat[k];
        if (!c) { /* batch > 1: the images' skip channels copied in */
            if (!(c = tg_output_new(TG_F32, 4, (const int64_t[]){N, Ct, H, W}))) return NULL;
#pragma omp parallel for if (N * Cs * plane > TG_PARALLEL_MIN) schedule(static)
            for (int64_t r = 0; r < N * Cs; r++)
                memcpy(c->data + (r / Cs * Ct + r % Cs) * plane, s->data + r * plane, (size_t)plane * sizeof(float));
        }
        /* as up_forward: the upsampled map padded by diff/2 on the left/top, the rest on the right/bottom */
        const int64_t dy = H - 2 * h->shape[2], dx = W - 2 * h->shape[3];
        if (!tg_upsample_bilinear2d_pad_into(h, (tg_upsample_opts){.scale = {2, 2}, .align_corners = true},
                                             c->data + Cs * plane, Ct * plane, H, W, dy / 2, dx / 2))
            return NULL;
        if (!(h = double_conv_eval(&m->up[i], c, NULL, 0))) return NULL;
    }
    return tg_conv2d_layer_forward(&m->out_conv, h);
}

tg_tensor *tg_unet_forward(const tg_unet *m, tg_tensor *x)
{
    if (!m) {
        tg_error(TG_ERR_ARG, "tg_unet_forward: model is NULL");
        return NULL;
    }
    if (!tg_check_f32("tg_unet_forward", "x", x)) return NULL;
    if (x->ndim != 4 || x->shape[1] != m->in_channels || x->shape[2] < 16 || x->shape[3] < 16) {
        char s[96];
        tg_error(TG_ERR_SHAPE,
                 "tg_unet_forward: expected x of shape (N, %d, H, W) with H, W >= 16 (four 2x2 poolings), got %s",
                 m->in_channels, tg_shape_str(x, s, sizeof s));
        return NULL;
    }
    if (eval_path_applies(m, x)) return unet_forward_eval(m, x);
    const tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_tensor *skip[5];
    /* block outputs named for an active trace (nn/trace.h), as PyTorch forward hooks see them */
    static const char *const DOWN[4] = {"down1", "down2", "down3", "down4"}, *const UP[4] = {"up1", "up2", "up3", "up4"};
    skip[0] = tg_trace_tensor("in_conv", double_conv_forward(&m->in_conv, x));
    for (int i = 0; i < 4; i++)
        skip[i + 1] = tg_trace_tensor(DOWN[i], double_conv_forward(&m->down[i], tg_max_pool2d(skip[i], pool)));
    tg_tensor *h = skip[4];
    for (int i = 0; i < 4 && h; i++) h = tg_trace_tensor(UP[i], up_forward(&m->up[i], h, skip[3 - i]));
    return tg_trace_tensor("out_conv", tg_conv2d_layer_forward(&m->out_conv, h));
}
