/* losslab's table of losses and the running of one case. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "losslab.h"

#define RED "reduction='mean'"
const ll_loss LL_LOSSES[] = {
    {"binary_cross_entropy", {"input", "target"}, 0, "weight=None " RED, NULL},
    {"binary_cross_entropy_with_logits", {"input", "target"}, 0, "weight=None pos_weight=None " RED, "sigmoid"},
    {"cross_entropy", {"input", "target"}, 0, "weight=None ignore_index=-100 " RED " label_smoothing=0.0", "softmax"},
    {"nll_loss", {"input", "target"}, 2, "weight=None ignore_index=-100 " RED, NULL},
    {"kl_div", {"input", "target"}, 0, RED " log_target=False", NULL},
    {"mse_loss", {"input", "target"}, 0, RED, NULL},
    {"l1_loss", {"input", "target"}, 0, RED, NULL},
    {"smooth_l1_loss", {"input", "target"}, 0, RED " beta=1.0", NULL},
    {"huber_loss", {"input", "target"}, 0, RED " delta=1.0", NULL},
    {"soft_margin_loss", {"input", "target"}, 0, RED, NULL},
    {"multilabel_soft_margin_loss", {"input", "target"}, 0, "weight=None " RED, "sigmoid"},
    {"multi_margin_loss", {"input", "target"}, 2, "p=1 margin=1.0 weight=None " RED, NULL},
    {"multilabel_margin_loss", {"input", "target"}, 2, RED, NULL},
    {"hinge_embedding_loss", {"input", "target"}, 0, "margin=1.0 " RED, NULL},
    {"cosine_embedding_loss", {"input1", "input2", "target"}, 0, "margin=0.0 " RED, NULL},
    {"margin_ranking_loss", {"input1", "input2", "target"}, 0, "margin=0.0 " RED, NULL},
    {"triplet_margin_loss", {"anchor", "positive", "negative"}, 0, "margin=1.0 p=2.0 eps=1e-06 swap=False " RED, NULL},
    {"poisson_nll_loss", {"input", "target"}, 0, "log_input=True full=False eps=1e-08 " RED, NULL},
    {"gaussian_nll_loss", {"input", "target", "var"}, 0, "full=False eps=1e-06 " RED, NULL},
    {"ctc_loss", {"log_probs", "targets", "input_lengths", "target_lengths"}, 14, "blank=0 " RED " zero_infinity=False",
     NULL},
    {"sigmoid_focal_loss", {"input", "target"}, 0, "alpha=0.25 gamma=2.0 reduction='none'", "sigmoid"},
    {"dice_loss", {"input", "target"}, 2, "ignore_index=None eps=1e-06 (tapegrad: softmax over C, or sigmoid for C=1)",
     "softmax"},
};
const int LL_N_LOSSES = (int)(sizeof LL_LOSSES / sizeof LL_LOSSES[0]);

const ll_loss *ll_find(const char *name)
{
    for (int i = 0; i < LL_N_LOSSES; i++)
        if (!strcmp(LL_LOSSES[i].name, name)) return &LL_LOSSES[i];
    return NULL;
}

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- JSON -> tensor ---- */

static bool json_num(const cJSON *v, double *x)
{
    if (cJSON_IsNumber(v)) return *x = v->valuedouble, true;
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "NaN")) return *x = NAN, true;
        if (!strcmp(v->valuestring, "Infinity")) return *x = INFINITY, true;
        if (!strcmp(v->valuestring, "-Infinity")) return *x = -INFINITY, true;
    }
    return false;
}

static bool json_fill(const cJSON *v, int depth, int ndim, const int64_t *shape, tg_tensor *t, int64_t *pos)
{
    if (depth == ndim) {
        double x;
        if (cJSON_IsArray(v) || !json_num(v, &x)) return false;
        if (t->dtype == TG_I64) {
            if (x != floor(x) || !isfinite(x)) return false;
            t->idata[(*pos)++] = (int64_t)x;
        } else t->data[(*pos)++] = (float)x;
        return true;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != shape[depth]) return false;
    for (const cJSON *c = v->child; c; c = c->next)
        if (!json_fill(c, depth + 1, ndim, shape, t, pos)) return false;
    return true;
}

tg_tensor *ll_json_tensor(const cJSON *v, bool as_int, const char *what, char *err, size_t n_err)
{
    int ndim = 0;
    int64_t shape[TG_MAX_DIMS];
    for (const cJSON *c = v; cJSON_IsArray(c); c = c->child) {
        if (ndim == TG_MAX_DIMS) return fail(err, n_err, "%s: more than %d dimensions", what, TG_MAX_DIMS), NULL;
        shape[ndim++] = cJSON_GetArraySize(c);
        if (!c->child) break;
    }
    tg_tensor *t = tg_tensor_new(as_int ? TG_I64 : TG_F32, ndim, shape);
    if (!t) return fail(err, n_err, "%s: %s", what, tg_last_error()), NULL;
    int64_t pos = 0;
    if (!json_fill(v, 0, ndim, shape, t, &pos) || pos != t->numel) {
        tg_tensor_free(t);
        fail(err, n_err, "%s: not a %s (nested arrays of equal length%s)", what, as_int ? "integer tensor" : "tensor",
             as_int ? ", whole numbers" : "");
        return NULL;
    }
    return t;
}

static bool all_integral(const cJSON *v)
{
    if (cJSON_IsArray(v)) {
        for (const cJSON *c = v->child; c; c = c->next)
            if (!all_integral(c)) return false;
        return true;
    }
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
}

static int json_ndim(const cJSON *v)
{
    int d = 0;
    for (; cJSON_IsArray(v) && v->child; v = v->child) d++;
    return cJSON_IsArray(v) ? d + 1 : d;
}

/* ---- options ---- */

typedef struct {
    const cJSON *obj;
    const ll_loss *loss;
    char *err;
    size_t n;
    bool bad;
} opts_t;

static const cJSON *opt(opts_t *o, const char *key) { return o->obj ? cJSON_GetObjectItem(o->obj, key) : NULL; }

static double opt_num(opts_t *o, const char *key, double dflt)
{
    const cJSON *v = opt(o, key);
    double x;
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!json_num(v, &x)) {
        if (!o->bad) fail(o->err, o->n, "%s: option %s must be a number", o->loss->name, key);
        o->bad = true;
        return dflt;
    }
    return x;
}

static bool opt_bool(opts_t *o, const char *key, bool dflt)
{
    const cJSON *v = opt(o, key);
    if (!v) return dflt;
    if (!cJSON_IsBool(v)) {
        if (!o->bad) fail(o->err, o->n, "%s: option %s must be true or false", o->loss->name, key);
        o->bad = true;
        return dflt;
    }
    return cJSON_IsTrue(v);
}

static tg_reduction opt_reduction(opts_t *o, tg_reduction dflt)
{
    const cJSON *v = opt(o, "reduction");
    if (!v) return dflt;
    const char *s = cJSON_IsString(v) ? v->valuestring : "";
    if (!strcmp(s, "mean")) return TG_REDUCTION_MEAN;
    if (!strcmp(s, "sum")) return TG_REDUCTION_SUM;
    if (!strcmp(s, "none")) return TG_REDUCTION_NONE;
    if (!strcmp(s, "batchmean")) return TG_REDUCTION_BATCHMEAN;
    if (!o->bad) fail(o->err, o->n, "%s: reduction must be 'none', 'mean' or 'sum' (kl_div: also 'batchmean')", o->loss->name);
    o->bad = true;
    return dflt;
}

/* Optional tensor option (weight, pos_weight); owned by the caller through *keep. */
static tg_tensor *opt_tensor(opts_t *o, const char *key, tg_tensor **keep)
{
    const cJSON *v = opt(o, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    char what[64];
    snprintf(what, sizeof what, "%s: option %s", o->loss->name, key);
    tg_tensor *t = ll_json_tensor(v, false, what, o->err, o->n);
    if (!t) o->bad = true;
    return *keep = t;
}

/* Every given option must be one of the loss's. */
static int check_option_names(const ll_loss *L, const cJSON *obj, char *err, size_t n)
{
    if (!obj) return 0;
    if (!cJSON_IsObject(obj)) return fail(err, n, "%s: options must be a JSON object", L->name);
    for (const cJSON *c = obj->child; c; c = c->next) {
        char pat[80];
        snprintf(pat, sizeof pat, "%s=", c->string);
        const char *hit = strstr(L->options, pat);
        if (!hit || (hit != L->options && hit[-1] != ' '))
            return fail(err, n, "%s: unknown option '%s' (options: %s)", L->name, c->string, L->options);
    }
    return 0;
}

static tg_tensor *call(const ll_loss *L, tg_tensor **a, opts_t *o, tg_reduction red, tg_tensor **keep)
{
    const char *nm = L->name;
    if (!strcmp(nm, "binary_cross_entropy"))
        return tg_binary_cross_entropy(a[0], a[1], (tg_bce_opts){.weight = opt_tensor(o, "weight", &keep[0]), .reduction = red});
    if (!strcmp(nm, "binary_cross_entropy_with_logits"))
        return tg_binary_cross_entropy_with_logits(a[0], a[1],
                                                   (tg_bce_opts){.weight = opt_tensor(o, "weight", &keep[0]),
                                                                 .pos_weight = opt_tensor(o, "pos_weight", &keep[1]),
                                                                 .reduction = red});
    if (!strcmp(nm, "cross_entropy") || !strcmp(nm, "nll_loss")) {
        const cJSON *ii = opt(o, "ignore_index");
        tg_ce_opts c = {.weight = opt_tensor(o, "weight", &keep[0]), .reduction = red,
                        .label_smoothing = (float)opt_num(o, "label_smoothing", 0),
                        .ignore_index = (int64_t)opt_num(o, "ignore_index", -100), .has_ignore_index = ii != NULL};
        return nm[0] == 'c' ? tg_cross_entropy(a[0], a[1], c) : tg_nll_loss(a[0], a[1], c);
    }
    if (!strcmp(nm, "kl_div"))
        return tg_kl_div(a[0], a[1], (tg_kl_div_opts){.reduction = red, .log_target = opt_bool(o, "log_target", false)});
    if (!strcmp(nm, "mse_loss")) return tg_mse_loss(a[0], a[1], red);
    if (!strcmp(nm, "l1_loss")) return tg_l1_loss(a[0], a[1], red);
    if (!strcmp(nm, "smooth_l1_loss")) return tg_smooth_l1_loss(a[0], a[1], red, (float)opt_num(o, "beta", 1));
    if (!strcmp(nm, "huber_loss")) return tg_huber_loss(a[0], a[1], red, (float)opt_num(o, "delta", 1));
    if (!strcmp(nm, "soft_margin_loss")) return tg_soft_margin_loss(a[0], a[1], red);
    if (!strcmp(nm, "multilabel_soft_margin_loss"))
        return tg_multilabel_soft_margin_loss(a[0], a[1], opt_tensor(o, "weight", &keep[0]), red);
    if (!strcmp(nm, "multi_margin_loss"))
        return tg_multi_margin_loss(a[0], a[1], opt_tensor(o, "weight", &keep[0]),
                                    (tg_multi_margin_opts){.reduction = red, .p = (int)opt_num(o, "p", 1),
                                                           .margin = (float)opt_num(o, "margin", 1), .has_margin = true});
    if (!strcmp(nm, "multilabel_margin_loss"))
        return tg_multilabel_margin_loss(a[0], a[1], (tg_multilabel_margin_opts){.reduction = red});
    if (!strcmp(nm, "hinge_embedding_loss"))
        return tg_hinge_embedding_loss(a[0], a[1], (tg_hinge_embedding_opts){.reduction = red,
                                                                              .margin = (float)opt_num(o, "margin", 1),
                                                                              .has_margin = true});
    if (!strcmp(nm, "cosine_embedding_loss"))
        return tg_cosine_embedding_loss(a[0], a[1], a[2],
                                        (tg_cosine_embedding_opts){.reduction = red, .margin = (float)opt_num(o, "margin", 0)});
    if (!strcmp(nm, "margin_ranking_loss"))
        return tg_margin_ranking_loss(a[0], a[1], a[2],
                                      (tg_margin_ranking_opts){.reduction = red, .margin = (float)opt_num(o, "margin", 0)});
    if (!strcmp(nm, "triplet_margin_loss"))
        return tg_triplet_margin_loss(a[0], a[1], a[2],
                                      (tg_triplet_margin_opts){.reduction = red, .margin = (float)opt_num(o, "margin", 1),
                                                               .has_margin = true, .p = (float)opt_num(o, "p", 2),
                                                               .eps = (float)opt_num(o, "eps", 1e-6), .has_eps = true,
                                                               .swap = opt_bool(o, "swap", false)});
    if (!strcmp(nm, "poisson_nll_loss"))
        return tg_poisson_nll_loss(a[0], a[1], (tg_poisson_nll_opts){.reduction = red,
                                                                      .no_log_input = !opt_bool(o, "log_input", true),
                                                                      .full = opt_bool(o, "full", false),
                                                                      .eps = (float)opt_num(o, "eps", 1e-8), .has_eps = true});
    if (!strcmp(nm, "gaussian_nll_loss"))
        return tg_gaussian_nll_loss(a[0], a[1], a[2], (tg_gaussian_nll_opts){.reduction = red,
                                                                              .full = opt_bool(o, "full", false),
                                                                              .eps = (float)opt_num(o, "eps", 1e-6),
                                                                              .has_eps = true});
    if (!strcmp(nm, "ctc_loss"))
        return tg_ctc_loss(a[0], a[1], a[2], a[3], (tg_ctc_opts){.reduction = red,
                                                                  .blank = (int64_t)opt_num(o, "blank", 0),
                                                                  .zero_infinity = opt_bool(o, "zero_infinity", false)});
    if (!strcmp(nm, "sigmoid_focal_loss"))
        return tg_sigmoid_focal_loss(a[0], a[1], (float)opt_num(o, "alpha", 0.25), (float)opt_num(o, "gamma", 2), red);
    if (!strcmp(nm, "dice_loss")) {
        const cJSON *ii = opt(o, "ignore_index");
        return tg_dice_loss(a[0], a[1], (tg_dice_opts){.ignore_index = (int64_t)opt_num(o, "ignore_index", 0),
                                                        .has_ignore_index = ii && !cJSON_IsNull(ii),
                                                        .eps = (float)opt_num(o, "eps", 1e-6)});
    }
    return NULL;
}

void ll_result_free(ll_result *r)
{
    for (int i = 0; i < LL_MAX_ARGS; i++) {
        tg_tensor_free(r->args[i]);
        tg_tensor_free(r->grads[i]);
    }
    tg_tensor_free(r->value);
    tg_tensor_free(r->per_element);
    memset(r, 0, sizeof *r);
}

int ll_run_case(const cJSON *case_obj, const char *name, ll_result *r, char *err, size_t n_err)
{
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(case_obj)) return fail(err, n_err, "a case must be a JSON object");
    if (!name) {
        const cJSON *ln = cJSON_GetObjectItem(case_obj, "loss");
        if (!cJSON_IsString(ln)) return fail(err, n_err, "missing \"loss\" (a loss name; see losslab --list)");
        name = ln->valuestring;
    }
    const ll_loss *L = ll_find(name);
    if (!L) return fail(err, n_err, "unknown loss '%s' (see losslab --list)", name);
    r->loss = L;
    const cJSON *opts = cJSON_GetObjectItem(case_obj, "options");
    if (check_option_names(L, opts, err, n_err)) return -1;
    for (const cJSON *c = case_obj->child; c; c = c->next) { /* stray top-level keys */
        bool known = !strcmp(c->string, "loss") || !strcmp(c->string, "options") || !strcmp(c->string, "id");
        for (int i = 0; i < LL_MAX_ARGS && L->args[i]; i++) known |= !strcmp(c->string, L->args[i]);
        if (!known) return fail(err, n_err, "%s: unknown argument '%s'", L->name, c->string);
    }
    for (int i = 0; i < LL_MAX_ARGS && L->args[i]; i++, r->n_args++) {
        const cJSON *v = cJSON_GetObjectItem(case_obj, L->args[i]);
        if (!v) return fail(err, n_err, "%s: missing tensor argument '%s'", L->name, L->args[i]);
        bool as_int = (L->int_args >> i) & 1;
        /* cross_entropy: integers of a different shape are class indices; the input's shape means probabilities */
        if (!strcmp(L->name, "cross_entropy") && i == 1)
            as_int = all_integral(v) && json_ndim(v) != json_ndim(cJSON_GetObjectItem(case_obj, "input"));
        char what[64];
        snprintf(what, sizeof what, "%s: %s", L->name, L->args[i]);
        if (!(r->args[i] = ll_json_tensor(v, as_int, what, err, n_err))) return -1;
        if (!as_int && i < 3 && strcmp(L->args[i], "target") && strcmp(L->args[i], "targets"))
            tg_tensor_set_requires_grad(r->args[i], true);
    }
    tg_tensor *keep[2] = {NULL, NULL};
    opts_t o = {opts, L, err, n_err, false};
    tg_reduction red = opt_reduction(&o, strcmp(L->name, "sigmoid_focal_loss") ? TG_REDUCTION_MEAN : TG_REDUCTION_NONE);
    if (red == TG_REDUCTION_BATCHMEAN && strcmp(L->name, "kl_div") && !o.bad) {
        fail(err, n_err, "%s: reduction 'batchmean' is only for kl_div", L->name);
        o.bad = true;
    }
    int rc = 0;
    tg_clear_error();
    tg_tensor *out = o.bad ? NULL : call(L, r->args, &o, red, keep);
    if (o.bad) rc = -1;
    else if (!out) rc = fail(err, n_err, "%s", tg_last_error());
    else {
        r->value = tg_tensor_clone(out);
        tg_tensor *up = tg_tensor_ones(out->ndim, out->shape);
        if (tg_backward_with(out, up) != TG_OK) rc = fail(err, n_err, "%s: backward: %s", L->name, tg_last_error());
        tg_tensor_free(up);
        for (int i = 0; i < r->n_args && rc == 0; i++)
            if (r->args[i]->requires_grad) {
                r->grads[i] = tg_tensor_zeros(r->args[i]->ndim, r->args[i]->shape);
                if (r->args[i]->grad) memcpy(r->grads[i]->data, r->args[i]->grad, (size_t)r->args[i]->numel * sizeof(float));
            }
        tg_tape_clear();
        if (rc == 0 && strcmp(L->name, "dice_loss")) { /* the unreduced losses, for the breakdown */
            bool prev = tg_set_grad_enabled(false);
            tg_tensor *keep2[2] = {NULL, NULL};
            tg_tensor *pe = call(L, r->args, &o, TG_REDUCTION_NONE, keep2);
            if (pe) r->per_element = tg_tensor_clone(pe);
            tg_set_grad_enabled(prev);
            tg_tape_clear();
            tg_tensor_free(keep2[0]);
            tg_tensor_free(keep2[1]);
        }
    }
    tg_tape_clear();
    tg_tensor_free(keep[0]);
    tg_tensor_free(keep[1]);
    return rc;
}
