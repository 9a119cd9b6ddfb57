/* The list of ops: every op the library records on the tape, once, with what its readers need.
 * Internal (not installed, not in tapegrad.h); read at compile time only.
 *
 * TG_OP_LIST(X) calls X(name, file, kind, in_min, in_max, gradcheck, fixture) once per op:
 *   name      the op's name as a C token: the tape and the profiler print #name, TG_OP_##name is its
 *             id, losslab's table and the tests index by it (for a loss: losslab's name for it).
 *   file      ops/<file>.c, the one file with its forward, backward and TG_OP_DEFINE.
 *   kind      UNARY, BINARY, ACTIVATION, REDUCE, SHAPE, LINALG, LAYER or LOSS (TG_OP_IF_LOSS selects losses).
 *   in_min, in_max  how many inputs its tg_record passes (in_max -1: any number).
 *   gradcheck GC(program, "suite/test glob"): the Criterion tests (tests/<program>.c) whose
 *             tgt_expect_gradcheck calls check this op; NOGC("why") only for an op that cannot have one.
 *   fixture   FX("file.json", "key", "value"): PyTorch golden cases in tests/fixtures/file.json are the
 *             cases whose "key" is "value" (key NULL: every case of the file); the file's generator is
 *             tests/gen_*.py. A .jsonl file has one case a line: a new loss may simply name its losslab
 *             cases, FX("losslab_cases.jsonl", "loss", "<name>") (tests/gen_losslab_cases.py, read by
 *             test_losslab_fixtures). NOFX("why") when PyTorch has no equal of the op (say what stands in).
 * tests/test_op_list.c runs every GC, reads every FX, checks each op's file and that losslab knows
 * every loss: an op without a passing gradient check or a PyTorch fixture fails it.
 *
 * An op file defines its descriptor with TG_OP_DEFINE(VAR, name, backward): a name missing here is a
 * compile error (no TG_OP_<name>). How to add an op: core/core_internal.h. */
#ifndef TG_OP_LIST_H
#define TG_OP_LIST_H

/* clang-format off */
#define TG_OP_LIST(X) \
    /* ---- elementwise: broadcasting binary ops and unary math (ops/tensor_ops.h) ---- */ \
    X(add,        elementwise, BINARY, 2, 2, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "add")) \
    X(sub,        elementwise, BINARY, 2, 2, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "sub")) \
    X(mul,        elementwise, BINARY, 2, 2, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "mul")) \
    X(div,        elementwise, BINARY, 2, 2, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "div")) \
    X(add_scalar, elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "add_scalar")) \
    X(mul_scalar, elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "mul_scalar")) \
    X(neg,        elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "neg")) \
    X(exp,        elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "exp")) \
    X(log,        elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "log")) \
    X(pow,        elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "pow")) \
    X(sqrt,       elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "sqrt")) \
    X(abs,        elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "abs")) \
    X(clamp,      elementwise, UNARY,  1, 1, GC(test_elementwise, "elementwise/gradcheck_*"), FX("math_ops.json", "op", "clamp")) \
    /* ---- activations and softmax ---- */ \
    X(relu,        activation, ACTIVATION, 1, 1, GC(test_activation, "activation/gradcheck_*"), FX("math_ops.json", "op", "relu")) \
    X(leaky_relu,  activation, ACTIVATION, 1, 1, GC(test_activation, "activation/gradcheck_*"), FX("math_ops.json", "op", "leaky_relu")) \
    X(sigmoid,     activation, ACTIVATION, 1, 1, GC(test_activation, "activation/gradcheck_*"), FX("math_ops.json", "op", "sigmoid")) \
    X(tanh,        activation, ACTIVATION, 1, 1, GC(test_activation, "activation/gradcheck_*"), FX("math_ops.json", "op", "tanh")) \
    X(softplus,    activation, ACTIVATION, 1, 1, GC(test_activation, "activation/gradcheck_*"), FX("math_ops.json", "op", "softplus")) \
    X(softmax,     activation, ACTIVATION, 1, 1, GC(test_activation, "activation/gradcheck_*"), FX("math_ops.json", "op", "softmax")) \
    X(log_softmax, activation, ACTIVATION, 1, 1, GC(test_activation, "activation/gradcheck_*"), FX("math_ops.json", "op", "log_softmax")) \
    /* ---- reductions ---- */ \
    X(sum,  reduce, REDUCE, 1, 1, GC(test_reduce, "reduce/gradcheck_*"), FX("math_ops.json", "op", "sum")) \
    X(mean, reduce, REDUCE, 1, 1, GC(test_reduce, "reduce/gradcheck_*"), FX("math_ops.json", "op", "mean")) \
    X(max,  reduce, REDUCE, 1, 1, GC(test_reduce, "reduce/gradcheck_*"), FX("math_ops.json", "op", "max")) \
    X(min,  reduce, REDUCE, 1, 1, GC(test_reduce, "reduce/gradcheck_*"), FX("math_ops.json", "op", "min")) \
    /* ---- shape ops ---- */ \
    X(reshape, shape_permute, SHAPE, 1,  1, GC(test_shape, "shape_grad/*"), FX("shape_ops.json", "op", "reshape")) \
    X(permute, shape_permute, SHAPE, 1,  1, GC(test_shape, "shape_grad/*"), FX("shape_ops.json", "op", "permute")) \
    X(slice,   shape_slice, SHAPE, 1,  1, GC(test_shape, "shape_grad/*"), FX("shape_ops.json", "op", "slice")) \
    X(concat,  shape_slice, SHAPE, 1, -1, GC(test_shape, "shape_grad/*"), FX("shape_ops.json", "op", "concat")) \
    X(pad,     shape_slice, SHAPE, 1,  1, GC(test_shape, "shape_grad/*"), FX("shape_ops.json", "op", "pad")) \
    X(gather,  shape_select, SHAPE, 2,  2, GC(test_shape, "shape_grad/*"), FX("shape_ops.json", "op", "gather")) \
    X(where,   shape_select, SHAPE, 3,  3, GC(test_shape, "shape_grad/*"), FX("shape_ops.json", "op", "where")) \
    /* ---- linear algebra and layers (ops/nn_ops.h) ---- */ \
    X(matmul,  matmul, LINALG, 2, 2, GC(test_matmul, "matmul/gradcheck_*"), FX("shape_ops.json", "op", "matmul")) \
    X(linear,  linear, LINALG, 2, 3, GC(test_linear_dropout, "linear_gradcheck/*"), FX("nn_ops_linear.json", NULL, NULL)) \
    X(flatten, linear, SHAPE,  1, 1, GC(test_linear_dropout, "linear_gradcheck/*"), \
      NOFX("a reshape of the same data: its shapes are torch.flatten's (test_linear_dropout flatten/shapes_like_torch)")) \
    X(dropout, dropout, LAYER, 1, 1, GC(test_linear_dropout, "dropout/gradcheck*"), \
      NOFX("its random mask comes from tapegrad's generator, not PyTorch's: test_linear_dropout checks the scaling and mask")) \
    X(conv2d,           conv2d, LAYER, 2, 3, GC(test_conv, "conv_gradcheck/*"), FX("nn_ops_conv.json", "transposed", "false")) \
    X(conv_transpose2d, conv2d, LAYER, 2, 3, GC(test_conv, "conv_gradcheck/*"), FX("nn_ops_conv.json", "transposed", "true")) \
    X(max_pool2d,          pool, LAYER, 1, 1, GC(test_pool, "pool_gradcheck/*"), FX("nn_ops_pool.json", "kind", "max")) \
    X(avg_pool2d,          pool, LAYER, 1, 1, GC(test_pool, "pool_gradcheck/*"), FX("nn_ops_pool.json", "kind", "avg")) \
    X(adaptive_avg_pool2d, pool, LAYER, 1, 1, GC(test_pool, "pool_gradcheck/*"), FX("nn_ops_pool.json", "kind", "adaptive")) \
    X(upsample_bilinear2d, upsample, LAYER, 1, 1, GC(test_upsample, "upsample_gradcheck/*"), FX("nn_ops_upsample.json", "mode", "bilinear")) \
    X(upsample_nearest2d,  upsample, LAYER, 1, 1, GC(test_upsample, "upsample_gradcheck/*"), FX("nn_ops_upsample.json", "mode", "nearest")) \
    X(batch_norm,      batchnorm, LAYER, 3, 3, GC(test_batchnorm, "batchnorm_gradcheck/*"), FX("nn_ops_batchnorm.json", NULL, NULL)) \
    X(batch_norm_relu, batchnorm, LAYER, 3, 3, GC(test_batchnorm, "batchnorm_gradcheck/*"), \
      NOFX("PyTorch has no fused op: equal bit for bit to batch_norm then relu (test_batchnorm batchnorm_relu/*)")) \
    X(sync_batch_norm, batchnorm_sync, LAYER, 3, 3, GC(test_sync_batchnorm, "sync_batch_norm/gradcheck"), \
      NOFX("SyncBatchNorm needs torch.distributed: equal to batch_norm in one process and over two (test_sync_batchnorm)")) \
    /* ---- losses (ops/loss.h, ops/loss_extra.h), in losslab's order (--list, tests/gen_losslab_cases.py) ---- */ \
    X(binary_cross_entropy,             loss_binary, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_binary.json", "fn", "bce")) \
    X(binary_cross_entropy_with_logits, loss_binary, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_binary.json", "fn", "bce_logits")) \
    X(cross_entropy,                    loss_cross_entropy, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_cross_entropy.json", "fn", "cross_entropy")) \
    X(nll_loss,                         loss_cross_entropy, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_cross_entropy.json", "fn", "nll_loss")) \
    X(kl_div,                           loss_regression, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_regression.json", "fn", "kl_div")) \
    X(mse_loss,                         loss_regression, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_regression.json", "fn", "mse")) \
    X(l1_loss,                          loss_regression, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_regression.json", "fn", "l1")) \
    X(smooth_l1_loss,                   loss_regression, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_regression.json", "fn", "smooth_l1")) \
    X(huber_loss,                       loss_regression, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_regression.json", "fn", "huber")) \
    X(soft_margin_loss,                 loss_binary, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_binary.json", "fn", "soft_margin")) \
    X(multilabel_soft_margin_loss,      loss_binary, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_binary.json", "fn", "multilabel_soft_margin")) \
    X(multi_margin_loss,      loss_extra_margin, LOSS, 3, 3, GC(test_loss_extra_margin, "multi_margin/gradcheck"), FX("loss_extra_margin.json", "loss", "multi_margin")) \
    X(multilabel_margin_loss, loss_extra_margin, LOSS, 2, 2, GC(test_loss_extra_margin, "multilabel_margin/gradcheck"), FX("loss_extra_margin.json", "loss", "multilabel_margin")) \
    X(hinge_embedding_loss,   loss_extra_margin, LOSS, 2, 2, GC(test_loss_extra_margin, "hinge_embedding/gradcheck"), FX("loss_extra_margin.json", "loss", "hinge_embedding")) \
    X(cosine_embedding_loss,  loss_extra_embedding, LOSS, 3, 3, GC(test_loss_extra_embedding, "cosine_embedding/gradcheck"), FX("loss_extra_embedding.json", "loss", "cosine_embedding")) \
    X(margin_ranking_loss,    loss_extra_margin, LOSS, 3, 3, GC(test_loss_extra_margin, "margin_ranking/gradcheck"), FX("loss_extra_margin.json", "loss", "margin_ranking")) \
    X(triplet_margin_loss,    loss_extra_embedding, LOSS, 3, 3, GC(test_loss_extra_embedding, "triplet_margin/gradcheck"), FX("loss_extra_embedding.json", "loss", "triplet_margin")) \
    X(poisson_nll_loss,       loss_extra_nll, LOSS, 2, 2, GC(test_loss_extra_nll, "poisson_nll/gradcheck"), FX("loss_extra_nll.json", "loss", "poisson_nll")) \
    X(gaussian_nll_loss,      loss_extra_nll, LOSS, 3, 3, GC(test_loss_extra_nll, "gaussian_nll/gradcheck"), FX("loss_extra_nll.json", "loss", "gaussian_nll")) \
    X(ctc_loss,               loss_extra_ctc, LOSS, 4, 4, GC(test_loss_extra_ctc, "ctc/gradcheck_*"), FX("loss_extra_ctc.json", "loss", "ctc")) \
    X(sigmoid_focal_loss,               loss_binary, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_binary.json", "fn", "focal")) \
    X(dice_loss,                        loss_dice, LOSS, 2, 2, GC(test_loss_gradcheck, "loss_gradcheck/*"), FX("loss_regression.json", "fn", "dice"))
/* clang-format on */

/* The ids: TG_OP_<name>, 1..TG_OP_COUNT-1 (0: an op outside the list, e.g. a test's own). */
typedef enum {
    TG_OP_NONE = 0,
#define TG_OP_ENUM_(name, ...) TG_OP_##name,
    TG_OP_LIST(TG_OP_ENUM_)
#undef TG_OP_ENUM_
    TG_OP_COUNT
} tg_op_id;

/* TG_OP_IF_LOSS(kind, text...) is text for a LOSS, nothing for another kind (X-macro filters). */
#define TG_OP_IF_LOSS(kind, ...) TG_OP_IF_LOSS_##kind(__VA_ARGS__)
#define TG_OP_IF_LOSS_LOSS(...) __VA_ARGS__
#define TG_OP_IF_LOSS_UNARY(...)
#define TG_OP_IF_LOSS_BINARY(...)
#define TG_OP_IF_LOSS_ACTIVATION(...)
#define TG_OP_IF_LOSS_REDUCE(...)
#define TG_OP_IF_LOSS_SHAPE(...)
#define TG_OP_IF_LOSS_LINALG(...)
#define TG_OP_IF_LOSS_LAYER(...)

/* How many losses the list has (a constant expression). */
#define TG_OP_LOSS_ONE_(name, file, kind, ...) TG_OP_IF_LOSS(kind, +1)
#define TG_OP_N_LOSSES (0 TG_OP_LIST(TG_OP_LOSS_ONE_))

/* An op file's descriptor (core/core_internal.h's tg_op_def): name and id from the list. */
#define TG_OP_DEFINE(var, name, backward) static const tg_op_def var = {#name, backward, TG_OP_##name}

#endif
