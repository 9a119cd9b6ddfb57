/* The rest of PyTorch's loss family (1.13 semantics): margin losses, embedding
 * losses, Poisson and Gaussian NLL, CTC. Forward and backward are fused ops.
 *
 * Ownership: every returned tensor belongs to the step's tape (tg_tape_clear
 * releases it). Inputs are never modified. A NULL input gives NULL and keeps the
 * earlier error; a bad argument gives NULL and an error naming the argument.
 *
 * Calling convention (regular, for table-driven callers): tensor arguments first
 * (float inputs, then targets, then optional tensors that may be NULL), then one
 * options struct passed by value.
 *
 * Defaults: the zero value of every options struct is PyTorch's default, e.g.
 *   tg_triplet_margin_loss(a, p, n, (tg_triplet_margin_opts){0}) == F.triplet_margin_loss(a, p, n).
 * Fields whose PyTorch default is NOT zero (margin of multi_margin, hinge_embedding and
 * triplet_margin = 1; triplet p = 2 and eps = 1e-6; poisson eps = 1e-8; gaussian eps = 1e-6)
 * read 0 as "PyTorch's default"; any nonzero value is used as given; to pass an exact 0
 * set the matching has_margin / has_eps flag. (cosine_embedding and margin_ranking default
 * to margin 0, so they need no flag.)
 *
 * Reduction: TG_REDUCTION_MEAN (default) / SUM give a scalar, NONE the per-sample losses
 * (shape noted per loss). Mean of zero elements is NaN, sum is 0, as PyTorch.
 * Gradients flow to every float input named below; targets, weights and lengths get none.
 *
 * Non-finite values: NaN and +-Inf in any float argument give PyTorch 1.13's values and
 * gradients (tests/fixtures/loss_extra_nonfinite.json). The max(0, .) of margin_ranking,
 * hinge_embedding, cosine_embedding and triplet_margin keeps NaN as PyTorch's clamp_min
 * (multi_margin and multilabel_margin test z > 0 as PyTorch's kernels do, so NaN terms drop out).
 *
 * Shapes are exact: where PyTorch 1.13 silently broadcasts size-1 dims between the
 * tensors of one loss (hinge, margin_ranking, cosine, triplet, poisson, gaussian's target),
 * tapegrad asks for the shapes stated below and reports the mismatch instead.
 */
#ifndef TG_LOSS_EXTRA_H
#define TG_LOSS_EXTRA_H

#include "../core/core.h"
#include "loss_common.h"

/* ---- multi_margin_loss --------------------------------------------------
 * l_n = (1/C) sum_{i != y_n} w[y_n] * max(0, margin - x[n,y_n] + x[n,i])^p
 * input (N,C), (C) or (); target int64 (N) (or () for a single sample) in [0,C);
 * weight (C) or NULL. NONE gives (N), or () when target is 0-D. Grad: input. */
typedef struct {
    tg_reduction reduction;
    int p;            /* 1 or 2; 0 means PyTorch's default 1 */
    float margin;     /* 0 means 1.0 unless has_margin */
    bool has_margin;
} tg_multi_margin_opts;
tg_tensor *tg_multi_margin_loss(tg_tensor *input, tg_tensor *target, tg_tensor *weight, tg_multi_margin_opts opts);

/* ---- multilabel_margin_loss ---------------------------------------------
 * l_n = (1/C) sum_{j in Y_n} sum_{i not in Y_n} max(0, 1 - (x[n,j] - x[n,i]))
 * Y_n = target[n, :] read up to the first -1. input (N,C), (C) or (); target int64 of the
 * same shape, every entry in [-1, C). NONE gives (N), or () for 1-D input. Grad: input. */
typedef struct {
    tg_reduction reduction;
} tg_multilabel_margin_opts;
tg_tensor *tg_multilabel_margin_loss(tg_tensor *input, tg_tensor *target, tg_multilabel_margin_opts opts);

/* ---- hinge_embedding_loss -----------------------------------------------
 * l = [y != 1] * max(0, margin - x) + [y != -1] * x   (y = 1: x; y = -1: the hinge; else both)
 * input any shape; target (float or int64) the same shape. NONE gives input's shape. Grad: input. */
typedef struct {
    tg_reduction reduction;
    float margin;     /* 0 means 1.0 unless has_margin */
    bool has_margin;
} tg_hinge_embedding_opts;
tg_tensor *tg_hinge_embedding_loss(tg_tensor *input, tg_tensor *target, tg_hinge_embedding_opts opts);

/* ---- cosine_embedding_loss ----------------------------------------------
 * l_n = y=1: 1 - cos; y=-1: max(0, cos - margin); other y: 0, with
 * cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)) (a zero vector gives cos 0).
 * input1, input2 (N,D) with target (N), or (D) with a 0-D target (float or int64).
 * NONE gives (N) or (). Grad: input1, input2. */
typedef struct {
    tg_reduction reduction;
    float margin;     /* PyTorch's default is 0 */
} tg_cosine_embedding_opts;
tg_tensor *tg_cosine_embedding_loss(tg_tensor *input1, tg_tensor *input2, tg_tensor *target,
                                    tg_cosine_embedding_opts opts);

/* ---- margin_ranking_loss ------------------------------------------------
 * l = max(0, -y * (x1 - x2) + margin). input1, input2, target (float or int64): one shape,
 * no broadcasting. NONE gives that shape. Grad: input1, input2. */
typedef struct {
    tg_reduction reduction;
    float margin;     /* PyTorch's default is 0 */
} tg_margin_ranking_opts;
tg_tensor *tg_margin_ranking_loss(tg_tensor *input1, tg_tensor *input2, tg_tensor *target,
                                  tg_margin_ranking_opts opts);

/* ---- triplet_margin_loss ------------------------------------------------
 * l = max(0, d(a,p) - d(a,n) + margin), d(u,v) = || u - v + eps ||_p over the last dim
 * (eps is added to the difference, as PyTorch's pairwise_distance); swap: d(a,n) <- min(d(a,n), d(p,n)).
 * anchor, positive, negative: one shape (..., D), ndim >= 1. NONE gives the leading dims.
 * Grad: anchor, positive, negative. */
typedef struct {
    tg_reduction reduction;
    float margin;     /* 0 means 1.0 unless has_margin */
    bool has_margin;
    float p;          /* norm degree > 0, finite; 0 means 2 */
    float eps;        /* 0 means 1e-6 unless has_eps */
    bool has_eps;
    bool swap;
} tg_triplet_margin_opts;
tg_tensor *tg_triplet_margin_loss(tg_tensor *anchor, tg_tensor *positive, tg_tensor *negative,
                                  tg_triplet_margin_opts opts);

/* ---- poisson_nll_loss ---------------------------------------------------
 * l = exp(x) - y*x (log_input, the default) or x - y*log(x + eps) (no_log_input);
 * full adds y*log(y) - y + 0.5*log(2*pi*y) where y > 1 only. input and target (float) one shape.
 * NONE gives that shape. Grad: input. */
typedef struct {
    tg_reduction reduction;
    bool no_log_input; /* true = PyTorch log_input=False (input is the rate itself) */
    bool full;
    float eps;         /* 0 means 1e-8 unless has_eps */
    bool has_eps;
} tg_poisson_nll_opts;
tg_tensor *tg_poisson_nll_loss(tg_tensor *input, tg_tensor *target, tg_poisson_nll_opts opts);

/* ---- gaussian_nll_loss --------------------------------------------------
 * l = 0.5 * (log v + (x - y)^2 / v) [+ 0.5*log(2*pi) if full], v = max(var, eps).
 * The clamp is outside the gradient (as PyTorch's no_grad clamp): clamped entries still get
 * d/dvar = 0.5*(1/v - (x-y)^2/v^2). input and target one shape; var the same shape, or the
 * input's shape with the last dim 1, or with the last dim dropped; var < 0 is an error.
 * NONE gives input's shape. Grad: input, var. */
typedef struct {
    tg_reduction reduction;
    bool full;
    float eps;         /* 0 means 1e-6 unless has_eps */
    bool has_eps;
} tg_gaussian_nll_opts;
tg_tensor *tg_gaussian_nll_loss(tg_tensor *input, tg_tensor *target, tg_tensor *var, tg_gaussian_nll_opts opts);

/* ---- ctc_loss -----------------------------------------------------------
 * l_n = -log sum over alignments of target_n of prod_t p(t, pi_t)   (alpha recursion in log space)
 * log_probs (T,N,C) or (T,C) (log-softmaxed over C; (T,C) is N = 1); targets int64 padded
 * (N,S) with S >= max target length, or 1-D concatenated with exactly sum(target_lengths)
 * entries (so (T,C) takes (target_length) or (1,S)); input_lengths and target_lengths int64,
 * N entries (0-D allowed for N = 1), 0 <= input_length <= T. Used labels must be in [0,C)
 * (PyTorch does not check). input_length 0 gives 0 for an empty target, else inf
 * (PyTorch reads out of bounds there). Alpha/beta run in double.
 * MEAN = mean_n(l_n / max(target_length_n, 1)); NONE gives (N) or (). An impossible alignment
 * gives inf (NaN gradient, as PyTorch), or 0 with a zero gradient under zero_infinity.
 * Grad (as PyTorch's, exact for log-softmaxed input): d/dlog_probs[t,n,c] = exp(lp) - posterior. */
typedef struct {
    tg_reduction reduction;
    int64_t blank;     /* PyTorch's default 0 */
    bool zero_infinity;
} tg_ctc_opts;
tg_tensor *tg_ctc_loss(tg_tensor *log_probs, tg_tensor *targets, tg_tensor *input_lengths,
                       tg_tensor *target_lengths, tg_ctc_opts opts);

#endif
