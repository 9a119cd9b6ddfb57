/* Confusion matrix and Dice coefficient of the reference DRIVE evaluation. */
#include "seg_metrics.h"

#include "../core/core_internal.h"

#include <math.h>
#include <string.h>

tg_status tg_seg_metrics_init(tg_seg_metrics *m, int num_classes, int64_t ignore_index)
{
    if (!m) return tg_error(TG_ERR_ARG, "tg_seg_metrics_init: metrics is NULL");
    memset(m, 0, sizeof *m);
    if (num_classes < 2 || num_classes > TG_SEG_MAX_CLASSES)
        return tg_error(TG_ERR_ARG, "tg_seg_metrics_init: num_classes must be in [2, %d], got %d", TG_SEG_MAX_CLASSES,
                        num_classes);
    m->confusion = tg_calloc((size_t)num_classes * (size_t)num_classes, sizeof *m->confusion);
    if (!m->confusion) return TG_ERR_NOMEM;
    m->num_classes = num_classes;
    m->ignore_index = ignore_index;
    return TG_OK;
}

void tg_seg_metrics_reset(tg_seg_metrics *m)
{
    memset(m->confusion, 0, (size_t)m->num_classes * (size_t)m->num_classes * sizeof *m->confusion);
    m->dice_sum = 0.0;
    m->images = 0;
}

void tg_seg_metrics_free(tg_seg_metrics *m)
{
    if (!m) return;
    tg_free(m->confusion);
    m->confusion = NULL;
}

void tg_seg_predict(const float *logits, int64_t channels, int64_t pixels, uint8_t *pred)
{
    if (channels == 1) {
        for (int64_t p = 0; p < pixels; p++) pred[p] = logits[p] > 0.0f;
        return;
    }
    for (int64_t p = 0; p < pixels; p++) {
        float best = logits[p];
        uint8_t arg = 0;
        for (int64_t c = 1; c < channels; c++) {
            float v = logits[c * pixels + p];
            if (v > best || (isnan(v) && !isnan(best))) { /* torch.argmax treats NaN as the maximum */
                best = v;
                arg = (uint8_t)c;
            }
        }
        pred[p] = arg;
    }
}

tg_status tg_seg_metrics_update(tg_seg_metrics *m, const tg_tensor *logits, const tg_tensor *target)
{
    const char *op = "tg_seg_metrics_update";
    if (!m || !m->confusion) return tg_error(TG_ERR_ARG, "%s: metrics not initialised", op);
    if (!tg_check_f32(op, "logits", logits) || !tg_check_i64(op, "target", target)) return tg_last_status();
    char a[96], b[96];
    const int K = m->num_classes;
    if (logits->ndim != 4 || target->ndim != 3 || logits->shape[0] != target->shape[0] ||
        logits->shape[2] != target->shape[1] || logits->shape[3] != target->shape[2] ||
        !(logits->shape[1] == K || (logits->shape[1] == 1 && K == 2)))
        return tg_error(TG_ERR_SHAPE,
                        "%s: expected logits (N, %d, H, W)%s and target (N, H, W), got logits %s and target %s", op, K,
                        K == 2 ? " or (N, 1, H, W)" : "", tg_shape_str(logits, a, sizeof a),
                        tg_shape_str(target, b, sizeof b));
    const int64_t N = logits->shape[0], C = logits->shape[1], P = logits->shape[2] * logits->shape[3];
    for (int64_t i = 0; i < target->numel; i++) {
        int64_t t = target->idata[i];
        if (t != m->ignore_index && (t < 0 || t >= K))
            return tg_error(TG_ERR_ARG, "%s: target value %lld at flat index %lld is outside [0, %d) and is not the "
                            "ignore value %lld", op, (long long)t, (long long)i, K, (long long)m->ignore_index);
    }
    uint8_t *pred = tg_malloc((size_t)P);
    if (!pred) return TG_ERR_NOMEM;
    int64_t inter[TG_SEG_MAX_CLASSES], npred[TG_SEG_MAX_CLASSES], ntarget[TG_SEG_MAX_CLASSES];
    for (int64_t n = 0; n < N; n++) {
        tg_seg_predict(logits->data + n * C * P, C, P, pred);
        const int64_t *t = target->idata + n * P;
        memset(inter, 0, sizeof inter);
        memset(npred, 0, sizeof npred);
        memset(ntarget, 0, sizeof ntarget);
        for (int64_t p = 0; p < P; p++) {
            if (t[p] == m->ignore_index) continue;
            m->confusion[t[p] * K + pred[p]]++;
            npred[pred[p]]++;
            ntarget[t[p]]++;
            inter[t[p]] += t[p] == pred[p];
        }
        double dice = 0.0;
        for (int c = 1; c < K; c++) {
            double sets = (double)(npred[c] + ntarget[c]);
            if (sets == 0.0) sets = 2.0 * (double)inter[c];
            dice += (2.0 * (double)inter[c] + 1e-6) / (sets + 1e-6);
        }
        m->dice_sum += dice / (K - 1);
        m->images++;
    }
    tg_free(pred);
    return TG_OK;
}

tg_seg_scores tg_seg_metrics_compute(const tg_seg_metrics *m)
{
    tg_seg_scores s = {.num_classes = m->num_classes};
    const int K = m->num_classes;
    int64_t diag = 0;
    for (int c = 0; c < K; c++) {
        int64_t row = 0, col = 0;
        for (int j = 0; j < K; j++) {
            row += m->confusion[c * K + j];
            col += m->confusion[j * K + c];
        }
        const int64_t d = m->confusion[c * K + c];
        diag += d;
        s.pixels += row;
        s.acc[c] = row ? (double)d / (double)row : NAN;
        s.iou[c] = row + col - d ? (double)d / (double)(row + col - d) : NAN;
        s.mean_iou += s.iou[c];
    }
    s.mean_iou /= K;
    s.global_acc = s.pixels ? (double)diag / (double)s.pixels : NAN;
    s.dice = m->images ? m->dice_sum / (double)m->images : NAN;
    return s;
}
