/* unet_drive's training loss for both heads (see head_loss.h). */
#include "head_loss.h"

#include <string.h>

#include "dataset.h"

void loss_buffers_free(loss_buffers *b)
{
    tg_tensor_free(b->class_weight);
    tg_tensor_free(b->t);
    tg_tensor_free(b->w);
    memset(b, 0, sizeof *b);
}

tg_tensor *head_loss(int head, tg_tensor *logits, const tg_tensor *y, const double cw[2], loss_buffers *b)
{
    if (!b->class_weight) {
        b->class_weight = tg_tensor_from_data(TG_SHAPE(2), (const float[]){(float)cw[0], (float)cw[1]});
        if (!b->class_weight) return NULL;
    }
    if (head == HEAD_SOFTMAX)
        return tg_cross_entropy(logits, (tg_tensor *)y, (tg_ce_opts){.weight = b->class_weight,
                                .ignore_index = UNET_IGNORE_LABEL, .has_ignore_index = true});
    const int64_t N = y->shape[0], H = y->shape[1], W = y->shape[2];
    if (!b->t || b->t->shape[0] != N || b->t->shape[2] != H || b->t->shape[3] != W) {
        tg_tensor_free(b->t);
        tg_tensor_free(b->w);
        b->t = tg_tensor_zeros(TG_SHAPE(N, 1, H, W));
        b->w = tg_tensor_zeros(TG_SHAPE(N, 1, H, W));
        if (!b->t || !b->w) return NULL;
    }
    double wsum = 0.0;
    for (int64_t i = 0; i < y->numel; i++) {
        const int64_t v = y->idata[i];
        const bool counted = v == 0 || v == 1;
        b->t->data[i] = v == 1 ? 1.0f : 0.0f;
        b->w->data[i] = counted ? (float)cw[v] : 0.0f;
        wsum += counted ? cw[v] : 0.0;
    }
    tg_tensor *sum = tg_binary_cross_entropy_with_logits(logits, b->t,
                                                         (tg_bce_opts){.weight = b->w, .reduction = TG_REDUCTION_SUM});
    return tg_mul_scalar(sum, (float)(1.0 / wsum)); /* no counted pixel: NaN, as cross-entropy */
}
