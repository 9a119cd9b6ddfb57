/* The loss table: one entry per loss of the op list (ops/op_list.h, kind LOSS), at the
 * loss's index among them (LL_<name>): name, tensor arguments, options with PyTorch's
 * defaults, probability display, call. --list, validation and dispatch all come from here;
 * tests/test_op_list.c fails while a loss of the list has no entry. */
#include <math.h>
#include <string.h>

#include "losslab.h"
#include "ops/op_list.h"

/* LL_<name>: a loss's index in ll_losses, in the list's order. */
enum {
#define LL_INDEX_(name, file, kind, ...) TG_OP_IF_LOSS(kind, LL_##name, )
    TG_OP_LIST(LL_INDEX_)
#undef LL_INDEX_
    LL_N_LOSSES
};
_Static_assert(LL_N_LOSSES == TG_OP_N_LOSSES, "one index per loss of the list");

const ll_opt_info ll_opt_infos[LL_OPT_COUNT] = {
    [LL_OPT_WEIGHT] =
    {"weight", LL_VAL_TENSOR},
    [LL_OPT_POS_WEIGHT] =
    {"pos_weight", LL_VAL_TENSOR},
    [LL_OPT_IGNORE_INDEX] =
    {"ignore_index", LL_VAL_INT},
    [LL_OPT_REDUCTION] =
    {"reduction", LL_VAL_REDUCTION},
    [LL_OPT_LABEL_SMOOTHING] =
    {"label_smoothing", LL_VAL_FLOAT},
    [LL_OPT_BETA] =
    {"beta", LL_VAL_FLOAT},
    [LL_OPT_DELTA] =
    {"delta", LL_VAL_FLOAT},
    [LL_OPT_MARGIN] =
    {"margin", LL_VAL_FLOAT},
    [LL_OPT_P] =
    {"p", LL_VAL_FLOAT},
    [LL_OPT_EPS] =
    {"eps", LL_VAL_FLOAT},
    [LL_OPT_SWAP] =
    {"swap", LL_VAL_BOOL},
    [LL_OPT_LOG_TARGET] =
    {"log_target", LL_VAL_BOOL},
    [LL_OPT_LOG_INPUT] =
    {"log_input", LL_VAL_BOOL},
    [LL_OPT_FULL] =
    {"full", LL_VAL_BOOL},
    [LL_OPT_ALPHA] =
    {"alpha", LL_VAL_FLOAT},
    [LL_OPT_GAMMA] =
    {"gamma", LL_VAL_FLOAT},
    [LL_OPT_BLANK] =
    {"blank", LL_VAL_INT},
    [LL_OPT_ZERO_INFINITY] =
    {"zero_infinity", LL_VAL_BOOL},
};
_Static_assert(sizeof ll_opt_infos / sizeof ll_opt_infos[0] == LL_OPT_COUNT, "one info per option");

#define T(o) ((o)->tensor)
#define NUM(o, id) ((o)->num[LL_OPT_##id])
#define F(o, id) ((float)NUM(o, id))

/* ---- calls (args in the table entry's order) ---------------------------- */

static tg_ce_opts ce_opts(const ll_opts *o, tg_reduction r)
{
    return (tg_ce_opts){.weight = T(o)[LL_OPT_WEIGHT],
                        .ignore_index = (int64_t)NUM(o, IGNORE_INDEX),
                        .has_ignore_index = true,
                        .label_smoothing = F(o, LABEL_SMOOTHING),
                        .reduction = r};
}
static tg_tensor *call_ce(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_cross_entropy(a[0], a[1], ce_opts(o, r));
}
static tg_tensor *call_nll(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_nll_loss(a[0], a[1], ce_opts(o, r));
}
static tg_tensor *call_bce(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_binary_cross_entropy(a[0], a[1], (tg_bce_opts){.weight = T(o)[LL_OPT_WEIGHT], .reduction = r});
}
static tg_tensor *call_bce_logits(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_binary_cross_entropy_with_logits(
        a[0], a[1],
        (tg_bce_opts){.weight = T(o)[LL_OPT_WEIGHT], .pos_weight = T(o)[LL_OPT_POS_WEIGHT], .reduction = r});
}
static tg_tensor *call_kl(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_kl_div(a[0], a[1], (tg_kl_div_opts){.reduction = r, .log_target = NUM(o, LOG_TARGET) != 0});
}
static tg_tensor *call_mse(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    (void)o;
    return tg_mse_loss(a[0], a[1], r);
}
static tg_tensor *call_l1(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    (void)o;
    return tg_l1_loss(a[0], a[1], r);
}
static tg_tensor *call_smooth_l1(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_smooth_l1_loss(a[0], a[1], r, F(o, BETA));
}
static tg_tensor *call_huber(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_huber_loss(a[0], a[1], r, F(o, DELTA));
}
static tg_tensor *call_soft_margin(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    (void)o;
    return tg_soft_margin_loss(a[0], a[1], r);
}
static tg_tensor *call_ml_soft_margin(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_multilabel_soft_margin_loss(a[0], a[1], T(o)[LL_OPT_WEIGHT], r);
}
static tg_tensor *call_focal(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_sigmoid_focal_loss(a[0], a[1], F(o, ALPHA), F(o, GAMMA), r);
}
static tg_tensor *call_dice(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    (void)r;
    if (!(NUM(o, EPS) > 0)) {
        tg_error(TG_ERR_ARG, "dice_loss: eps must be > 0, got %g", NUM(o, EPS));
        return NULL;
    }
    return tg_dice_loss(a[0], a[1],
                        (tg_dice_opts){.ignore_index = (int64_t)NUM(o, IGNORE_INDEX),
                                       .has_ignore_index = o->set[LL_OPT_IGNORE_INDEX],
                                       .eps = F(o, EPS)});
}
static tg_tensor *call_multi_margin(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    double p = NUM(o, P);
    if (p != 1 && p != 2) {
        tg_error(TG_ERR_ARG, "multi_margin_loss: p must be 1 or 2, got %g", p);
        return NULL;
    }
    return tg_multi_margin_loss(a[0], a[1], T(o)[LL_OPT_WEIGHT],
                                (tg_multi_margin_opts){.reduction = r, .p = (int)p, .margin = F(o, MARGIN),
                                                       .has_margin = true});
}
static tg_tensor *call_ml_margin(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    (void)o;
    return tg_multilabel_margin_loss(a[0], a[1], (tg_multilabel_margin_opts){.reduction = r});
}
static tg_tensor *call_hinge(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_hinge_embedding_loss(
        a[0], a[1], (tg_hinge_embedding_opts){.reduction = r, .margin = F(o, MARGIN), .has_margin = true});
}
static tg_tensor *call_cosine(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_cosine_embedding_loss(a[0], a[1], a[2],
                                    (tg_cosine_embedding_opts){.reduction = r, .margin = F(o, MARGIN)});
}
static tg_tensor *call_ranking(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_margin_ranking_loss(a[0], a[1], a[2], (tg_margin_ranking_opts){.reduction = r, .margin = F(o, MARGIN)});
}
static tg_tensor *call_triplet(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    if (!(NUM(o, P) > 0) || !isfinite(NUM(o, P))) { /* 0 would mean "default 2" to the library */
        tg_error(TG_ERR_ARG, "triplet_margin_loss: p must be a finite norm degree > 0, got %g", NUM(o, P));
        return NULL;
    }
    return tg_triplet_margin_loss(a[0], a[1], a[2],
                                  (tg_triplet_margin_opts){.reduction = r, .margin = F(o, MARGIN),
                                                           .has_margin = true, .p = F(o, P), .eps = F(o, EPS),
                                                           .has_eps = true, .swap = NUM(o, SWAP) != 0});
}
static tg_tensor *call_poisson(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_poisson_nll_loss(a[0], a[1],
                               (tg_poisson_nll_opts){.reduction = r, .no_log_input = NUM(o, LOG_INPUT) == 0,
                                                     .full = NUM(o, FULL) != 0, .eps = F(o, EPS), .has_eps = true});
}
static tg_tensor *call_gaussian(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_gaussian_nll_loss(a[0], a[1], a[2],
                                (tg_gaussian_nll_opts){.reduction = r, .full = NUM(o, FULL) != 0,
                                                       .eps = F(o, EPS), .has_eps = true});
}
static tg_tensor *call_ctc(tg_tensor *const *a, const ll_opts *o, tg_reduction r)
{
    return tg_ctc_loss(a[0], a[1], a[2], a[3],
                       (tg_ctc_opts){.reduction = r, .blank = (int64_t)NUM(o, BLANK),
                                     .zero_infinity = NUM(o, ZERO_INFINITY) != 0});
}

/* ---- the table ----------------------------------------------------------- */

#define IN_TGT(kind) {{"input", LL_ARG_GRAD}, {"target", kind}, {NULL, 0}}
#define RED(d) {LL_OPT_REDUCTION, d}
#define END {0, NULL}

const ll_loss ll_losses[LL_N_LOSSES] = {
    [LL_binary_cross_entropy] =
    {"binary_cross_entropy", "BCE on probabilities in [0,1]", IN_TGT(LL_ARG_FLOAT),
     {{LL_OPT_WEIGHT, "None"}, RED("mean"), END}, LL_PROBS_NONE, call_bce},
    [LL_binary_cross_entropy_with_logits] =
    {"binary_cross_entropy_with_logits", "sigmoid + BCE, fused and stable", IN_TGT(LL_ARG_FLOAT),
     {{LL_OPT_WEIGHT, "None"}, {LL_OPT_POS_WEIGHT, "None"}, RED("mean"), END}, LL_PROBS_SIGMOID, call_bce_logits},
    [LL_cross_entropy] =
    {"cross_entropy", "log_softmax over dim 1 + NLL; class indices or probabilities", IN_TGT(LL_ARG_CLASS_OR_PROB),
     {{LL_OPT_WEIGHT, "None"}, {LL_OPT_IGNORE_INDEX, "-100"}, RED("mean"), {LL_OPT_LABEL_SMOOTHING, "0"}, END},
     LL_PROBS_SOFTMAX, call_ce},
    [LL_nll_loss] =
    {"nll_loss", "-w[y] * input[y] on log-probabilities", IN_TGT(LL_ARG_INDEX),
     {{LL_OPT_WEIGHT, "None"}, {LL_OPT_IGNORE_INDEX, "-100"}, RED("mean"), END}, LL_PROBS_NONE, call_nll},
    [LL_kl_div] =
    {"kl_div", "target * (log target - input), input = log-probabilities", IN_TGT(LL_ARG_FLOAT),
     {RED("mean"), {LL_OPT_LOG_TARGET, "false"}, END}, LL_PROBS_NONE, call_kl},
    [LL_mse_loss] =
    {"mse_loss", "(x - y)^2", IN_TGT(LL_ARG_FLOAT), {RED("mean"), END}, LL_PROBS_NONE, call_mse},
    [LL_l1_loss] =
    {"l1_loss", "|x - y|", IN_TGT(LL_ARG_FLOAT), {RED("mean"), END}, LL_PROBS_NONE, call_l1},
    [LL_smooth_l1_loss] =
    {"smooth_l1_loss", "0.5 d^2 / beta inside beta, |d| - beta/2 outside", IN_TGT(LL_ARG_FLOAT),
     {RED("mean"), {LL_OPT_BETA, "1"}, END}, LL_PROBS_NONE, call_smooth_l1},
    [LL_huber_loss] =
    {"huber_loss", "0.5 d^2 inside delta, delta (|d| - delta/2) outside", IN_TGT(LL_ARG_FLOAT),
     {RED("mean"), {LL_OPT_DELTA, "1"}, END}, LL_PROBS_NONE, call_huber},
    [LL_soft_margin_loss] =
    {"soft_margin_loss", "log(1 + exp(-y x)), y = +-1", IN_TGT(LL_ARG_FLOAT), {RED("mean"), END}, LL_PROBS_SIGMOID,
     call_soft_margin},
    [LL_multilabel_soft_margin_loss] =
    {"multilabel_soft_margin_loss", "per-sample mean over classes of BCE-with-logits", IN_TGT(LL_ARG_FLOAT),
     {{LL_OPT_WEIGHT, "None"}, RED("mean"), END}, LL_PROBS_SIGMOID, call_ml_soft_margin},
    [LL_multi_margin_loss] =
    {"multi_margin_loss", "multi-class hinge: max(0, margin - x[y] + x[i])^p", IN_TGT(LL_ARG_INDEX),
     {{LL_OPT_P, "1"}, {LL_OPT_MARGIN, "1"}, {LL_OPT_WEIGHT, "None"}, RED("mean"), END}, LL_PROBS_NONE,
     call_multi_margin},
    [LL_multilabel_margin_loss] =
    {"multilabel_margin_loss", "multi-label hinge; target lists classes, ends at -1", IN_TGT(LL_ARG_INDEX),
     {RED("mean"), END}, LL_PROBS_NONE, call_ml_margin},
    [LL_hinge_embedding_loss] =
    {"hinge_embedding_loss", "y = 1: x; y = -1: max(0, margin - x)", IN_TGT(LL_ARG_FLOAT),
     {{LL_OPT_MARGIN, "1"}, RED("mean"), END}, LL_PROBS_NONE, call_hinge},
    [LL_cosine_embedding_loss] =
    {"cosine_embedding_loss", "y = 1: 1 - cos; y = -1: max(0, cos - margin)",
     {{"input1", LL_ARG_GRAD}, {"input2", LL_ARG_GRAD}, {"target", LL_ARG_FLOAT}, {NULL, 0}},
     {{LL_OPT_MARGIN, "0"}, RED("mean"), END}, LL_PROBS_NONE, call_cosine},
    [LL_margin_ranking_loss] =
    {"margin_ranking_loss", "max(0, -y (x1 - x2) + margin)",
     {{"input1", LL_ARG_GRAD}, {"input2", LL_ARG_GRAD}, {"target", LL_ARG_FLOAT}, {NULL, 0}},
     {{LL_OPT_MARGIN, "0"}, RED("mean"), END}, LL_PROBS_NONE, call_ranking},
    [LL_triplet_margin_loss] =
    {"triplet_margin_loss", "max(0, d(a,p) - d(a,n) + margin)",
     {{"anchor", LL_ARG_GRAD}, {"positive", LL_ARG_GRAD}, {"negative", LL_ARG_GRAD}, {NULL, 0}},
     {{LL_OPT_MARGIN, "1"}, {LL_OPT_P, "2"}, {LL_OPT_EPS, "1e-6"}, {LL_OPT_SWAP, "false"}, RED("mean"), END},
     LL_PROBS_NONE, call_triplet},
    [LL_poisson_nll_loss] =
    {"poisson_nll_loss", "exp(x) - y x (log_input) or x - y log(x + eps)", IN_TGT(LL_ARG_FLOAT),
     {{LL_OPT_LOG_INPUT, "true"}, {LL_OPT_FULL, "false"}, {LL_OPT_EPS, "1e-8"}, RED("mean"), END}, LL_PROBS_NONE,
     call_poisson},
    [LL_gaussian_nll_loss] =
    {"gaussian_nll_loss", "0.5 (log v + (x - y)^2 / v), v = max(var, eps)",
     {{"input", LL_ARG_GRAD}, {"target", LL_ARG_FLOAT}, {"var", LL_ARG_GRAD}, {NULL, 0}},
     {{LL_OPT_FULL, "false"}, {LL_OPT_EPS, "1e-6"}, RED("mean"), END}, LL_PROBS_NONE, call_gaussian},
    [LL_ctc_loss] =
    {"ctc_loss", "connectionist temporal classification on (T,N,C) log-probabilities",
     {{"log_probs", LL_ARG_GRAD}, {"targets", LL_ARG_INDEX}, {"input_lengths", LL_ARG_INDEX},
      {"target_lengths", LL_ARG_INDEX}},
     {{LL_OPT_BLANK, "0"}, RED("mean"), {LL_OPT_ZERO_INFINITY, "false"}, END}, LL_PROBS_NONE, call_ctc},
    [LL_sigmoid_focal_loss] =
    {"sigmoid_focal_loss", "torchvision: BCE-with-logits * (1 - p_t)^gamma * alpha_t", IN_TGT(LL_ARG_FLOAT),
     {{LL_OPT_ALPHA, "0.25"}, {LL_OPT_GAMMA, "2"}, RED("none"), END}, LL_PROBS_SIGMOID, call_focal},
    [LL_dice_loss] =
    {"dice_loss", "1 - mean soft Dice per (image, class); softmax (C >= 2) or sigmoid (C = 1)",
     IN_TGT(LL_ARG_INDEX), {{LL_OPT_IGNORE_INDEX, "None"}, {LL_OPT_EPS, "1e-6"}, END}, LL_PROBS_DICE, call_dice},
};
const int ll_n_losses = LL_N_LOSSES; /* an entry the table lacks has a NULL name: skipped */

const ll_loss *ll_find_loss(const char *name)
{
    for (int i = 0; i < ll_n_losses; i++)
        if (ll_losses[i].name && strcmp(ll_losses[i].name, name) == 0) return &ll_losses[i];
    return NULL;
}

int ll_n_args(const ll_loss *l)
{
    int n = 0;
    while (n < LL_MAX_ARGS && l->args[n].name) n++;
    return n;
}

bool ll_takes_opt(const ll_loss *l, ll_opt_id id)
{
    for (const ll_opt_spec *s = l->opts; s->dflt; s++)
        if (s->id == id) return true;
    return false;
}

bool ll_is_any_arg_name(const char *name)
{
    for (int i = 0; i < ll_n_losses; i++)
        for (int k = 0; ll_losses[i].name && k < ll_n_args(&ll_losses[i]); k++)
            if (strcmp(ll_losses[i].args[k].name, name) == 0) return true;
    return false;
}

int ll_find_opt(const char *name)
{
    for (int i = 0; i < LL_OPT_COUNT; i++)
        if (strcmp(ll_opt_infos[i].name, name) == 0) return i;
    return -1;
}

const char *ll_reduction_name(tg_reduction r)
{
    switch (r) {
    case TG_REDUCTION_MEAN: return "mean";
    case TG_REDUCTION_SUM: return "sum";
    case TG_REDUCTION_NONE: return "none";
    case TG_REDUCTION_BATCHMEAN: return "batchmean";
    }
    return "?";
}

void ll_print_list(FILE *out)
{
    for (int i = 0; i < ll_n_losses; i++) {
        const ll_loss *l = &ll_losses[i];
        if (!l->name) continue;
        fprintf(out, "%s(", l->name);
        for (int k = 0; k < ll_n_args(l); k++) {
            const char *kind = l->args[k].kind == LL_ARG_GRAD    ? ""
                               : l->args[k].kind == LL_ARG_INDEX ? ": int"
                               : l->args[k].kind == LL_ARG_FLOAT ? ": float"
                                                                 : ": int or prob";
            fprintf(out, "%s%s%s", k ? ", " : "", l->args[k].name, kind);
        }
        fprintf(out, ")\n    %s\n    options:", l->summary);
        for (const ll_opt_spec *s = l->opts; s->dflt; s++)
            fprintf(out, " %s=%s", ll_opt_infos[s->id].name, s->dflt);
        fprintf(out, "%s\n", l->opts[0].dflt ? "" : " (none)");
    }
}
