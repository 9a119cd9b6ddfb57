/* The core loss family, exact to PyTorch 1.13 (forward values and gradients).
 *
 * Ownership: every returned tensor belongs to the step's tape (released by
 * tg_tape_clear). Inputs, targets and weights are caller's; they are read, never
 * modified, and must stay alive until backward. Gradients flow to `input` only:
 * targets and weights never receive a gradient.
 *
 * Errors: NULL plus a message naming the function and the argument (shapes,
 * values) for bad shapes, dtypes, option values or target values. A NULL input
 * keeps the earlier error.
 *
 * Reductions (ops/loss_common.h): TG_REDUCTION_MEAN (the zero value, PyTorch's
 * default), SUM, NONE (output has the unreduced shape), BATCHMEAN (kl_div only).
 * 'mean' is sum/numel unless a function says otherwise; the mean of nothing is
 * NaN and the sum of nothing is 0. Reductions are deterministic (fixed blocks
 * summed in double in a fixed order, whatever the thread count).
 *
 * Option structs: their zero value is PyTorch's default wherever PyTorch's
 * default is zero-like (no weight, 'mean', no smoothing). ignore_index defaults
 * to -100 as PyTorch: it is used only when has_ignore_index is true.
 *
 * Non-finite values: NaN and +-Inf in the input, a float target or a weight give PyTorch
 * 1.13's values and gradients (tests/fixtures/loss_nonfinite.json covers every loss here):
 * e.g. a NaN or +Inf logit makes its pixel's cross-entropy NaN (0 if the pixel is ignored,
 * though its gradient is NaN as PyTorch's); without label smoothing a NaN weight of a class
 * that no target uses changes nothing. Finite inputs give the same bits as before.
 *
 * Logarithms are natural. (The Chinese cross-entropy article used as a worked
 * example writes -log(0.1) = 1 in base 10; in natural log it is 2.303.)
 */
#ifndef TG_LOSS_H
#define TG_LOSS_H

#include "../core/core.h"
#include "loss_common.h"

#define TG_DEFAULT_IGNORE_INDEX (-100)

/* ---- class-index and class-probability losses -------------------------- */

typedef struct {
    tg_tensor *weight;       /* (C) per-class weights, or NULL (all 1) */
    int64_t ignore_index;    /* honoured only if has_ignore_index; else -100 */
    bool has_ignore_index;
    float label_smoothing;   /* epsilon in [0, 1]; 0 = none (cross_entropy only) */
    tg_reduction reduction;  /* MEAN, SUM or NONE */
} tg_ce_opts;

/* Cross-entropy on logits, fused log-softmax + NLL: one forward pass (one exp per element)
 * computes the loss and, when a gradient is wanted, w*(softmax - onehot) per element; backward
 * is one pass grad += upstream * that / denominator.
 * input: (C), (N,C) or (N,C,d1..dK) float logits, softmax over dim 1 (dim 0 for (C)).
 * target, class indices: int64 of shape (), (N) or (N,d1..dK), in [0,C) or == ignore_index:
 *   l = (1-eps)*w_y*(lse - x_y) + (eps/C)*sum_c w_c*(lse - x_c); ignored pixels give 0;
 *   'mean' = sum(l) / sum of w_y over non-ignored targets (so it is weighted);
 *   all ignored: 'mean' is NaN with a zero gradient, 'sum' is 0.
 *   A target outside [0,C) that is not ignore_index: error "Target k is out of bounds".
 * target, class probabilities: float of input's shape: l = -sum_c w_c*y'_c*logp_c with
 *   y' = (1-eps)*y + eps/C; 'mean' divides by N*d1*..*dK (not by the weights);
 *   ignore_index must then be negative (or unset).
 * 'none' returns shape (N,d1..dK) (or () for (C) input). */
tg_tensor *tg_cross_entropy(tg_tensor *input, tg_tensor *target, tg_ce_opts opts);

/* Negative log-likelihood on log-probabilities: l = -w_y * x[y]; same shapes, targets,
 * ignore_index, weights and 'mean' rule as cross_entropy; label_smoothing must be 0. */
tg_tensor *tg_nll_loss(tg_tensor *input, tg_tensor *target, tg_ce_opts opts);

/* ---- binary losses ----------------------------------------------------- */

typedef struct {
    tg_tensor *weight;      /* broadcast to the target's shape, or NULL */
    tg_tensor *pos_weight;  /* with_logits only: broadcast against the target from the LAST dim
                               (NCHW per-class needs shape (C,1,1)), or NULL */
    tg_reduction reduction;
} tg_bce_opts;

/* Binary cross-entropy on probabilities x in [0,1] (else an error), same shape as target:
 * l = -w*(y*max(ln x,-100) + (1-y)*max(ln(1-x),-100)); y is not checked.
 * Gradient as PyTorch, NOT clamped: w*(x-y)/max(x*(1-x), 1e-12) (x=0, y=1 gives -1e12). */
tg_tensor *tg_binary_cross_entropy(tg_tensor *input, tg_tensor *target, tg_bce_opts opts);

/* BCE on logits, fused (one exp and one log per element, derivative saved in forward) and stable (|x| in the hundreds is fine; +-inf gives NaN as PyTorch):
 * l = w*((1-y)*x + (1+(p-1)*y)*softplus(-x)), softplus(-x) = max(-x,0) + ln(1+e^-|x|);
 * gradient w*((p*y+1-y)*sigmoid(x) - p*y). p = pos_weight (1 if NULL). */
tg_tensor *tg_binary_cross_entropy_with_logits(tg_tensor *input, tg_tensor *target, tg_bce_opts opts);

/* Soft margin, computed naively as PyTorch: l = ln(1 + e^(-y*x)) (inf when -y*x > 88). */
tg_tensor *tg_soft_margin_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction);

/* Multi-label soft margin: input, target (N,C) (or (C)); weight broadcast to (N,C) or NULL:
 * l_n = -(1/C) * sum_c w_c*(y*logsigmoid(x) + (1-y)*logsigmoid(-x)) (stable);
 * 'none' returns (N), 'mean' divides by N. */
tg_tensor *tg_multilabel_soft_margin_loss(tg_tensor *input, tg_tensor *target, tg_tensor *weight,
                                          tg_reduction reduction);

/* torchvision's sigmoid_focal_loss (its defaults: alpha 0.25, gamma 2, reduction NONE —
 * pass them explicitly): l = ce*(1-p_t)^gamma * (alpha*y + (1-alpha)*(1-y)),
 * p = sigmoid(x), p_t = p*y + (1-p)*(1-y), ce = BCE-with-logits(x, y);
 * alpha < 0 drops the alpha factor; gamma must be >= 0. */
tg_tensor *tg_sigmoid_focal_loss(tg_tensor *input, tg_tensor *target, float alpha, float gamma,
                                 tg_reduction reduction);

/* ---- regression and distribution losses (input and target of one shape) ---- */

/* l = (x-y)^2, gradient 2(x-y). */
tg_tensor *tg_mse_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction);
/* l = |x-y|, gradient sign(x-y), 0 at x == y. */
tg_tensor *tg_l1_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction);
/* d = x-y: |d| < beta ? 0.5*d^2/beta : |d| - 0.5*beta (PyTorch default beta 1; beta 0 is
 * L1's value; beta < 0 is an error). Gradient as PyTorch 1.13: d <= -beta ? -1 : d >= beta ? 1 :
 * d/beta, so with beta 0 the gradient at d = 0 is -1, unlike L1's 0. */
tg_tensor *tg_smooth_l1_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction, float beta);
/* d = x-y: |d| < delta ? 0.5*d^2 : delta*(|d| - 0.5*delta) (PyTorch default delta 1; delta > 0). */
tg_tensor *tg_huber_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction, float delta);

typedef struct {
    tg_reduction reduction; /* MEAN (sum/numel, as PyTorch, which warns), SUM, NONE, BATCHMEAN (sum/input.size(0)) */
    bool log_target;        /* target given as log-probabilities */
} tg_kl_div_opts;

/* KL divergence, input x = log-probabilities: l = y*(ln y - x) where y > 0, 0 where y == 0;
 * log_target: l = e^y*(y - x). Gradient -y (or -e^y). */
tg_tensor *tg_kl_div(tg_tensor *input, tg_tensor *target, tg_kl_div_opts opts);

/* ---- segmentation ------------------------------------------------------ */

typedef struct {
    int64_t ignore_index;   /* honoured only if has_ignore_index (no default ignore) */
    bool has_ignore_index;
    float eps;              /* smoothing; 0 means 1e-6 (milesial's) */
} tg_dice_opts;

/* Soft Dice loss (milesial Pytorch-UNet style, per image), a scalar:
 * input logits (N,C,H,W) with C >= 2: p = softmax over C, g = onehot(target);
 *              (N,1,H,W): p = sigmoid(x), g = (target == 1); target values must be 0 or 1.
 * target int64 (N,H,W) in [0,C) (or ignore_index: those pixels are left out of every sum).
 * For each image n and class c (background included), over the non-ignored pixels:
 *   I = sum p*g, S = sum p + sum g; if S == 0 then S = 2I;  dice = (2I + eps)/(S + eps);
 * loss = 1 - mean of dice over the N*C (image, class) pairs. */
tg_tensor *tg_dice_loss(tg_tensor *input, tg_tensor *target, tg_dice_opts opts);

#endif
