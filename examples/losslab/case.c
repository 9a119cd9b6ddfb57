/* A case: JSON object -> validated tensors and options (from the loss table),
 * then the run: forward with the case's reduction, backward of the sum, and the
 * display values (per-element loss, probabilities). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "losslab.h"

static bool fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- nested arrays -------------------------------------------------------- */

typedef struct {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t n;
    double *v;
} ll_array;

static bool fill(const cJSON *v, int dim, ll_array *a, int64_t *k, const char *what, char *err, size_t n)
{
    if (dim == a->ndim) {
        if (!ll_json_number(v, &a->v[*k]))
            return fail(err, n, "%s: expected a number (or NaN, Infinity, -Infinity) at depth %d", what, dim);
        (*k)++;
        return true;
    }
    if (!cJSON_IsArray(v)) return fail(err, n, "%s: ragged nested array (a number where a list was expected at depth %d)", what, dim);
    int size = cJSON_GetArraySize(v);
    if (size != a->shape[dim])
        return fail(err, n, "%s: ragged nested array (lists of length %lld and %d at depth %d)", what,
                    (long long)a->shape[dim], size, dim);
    for (const cJSON *c = v->child; c; c = c->next)
        if (!fill(c, dim + 1, a, k, what, err, n)) return false;
    return true;
}

static bool array_from_json(const cJSON *v, const char *what, ll_array *a, char *err, size_t n)
{
    *a = (ll_array){0};
    a->n = 1;
    for (const cJSON *c = v; cJSON_IsArray(c); c = c->child) {
        if (a->ndim == TG_MAX_DIMS) return fail(err, n, "%s: more than %d dims", what, TG_MAX_DIMS);
        a->shape[a->ndim++] = cJSON_GetArraySize(c);
        a->n *= cJSON_GetArraySize(c);
        if (!c->child) break;
    }
    double x;
    if (a->ndim == 0 && !ll_json_number(v, &x)) {
        if (cJSON_IsString(v))
            return fail(err, n, "%s: not a number or a nested JSON array of numbers: '%.60s'", what, v->valuestring);
        return fail(err, n, "%s: expected a number or a nested array of numbers", what);
    }
    a->v = malloc((size_t)(a->n ? a->n : 1) * sizeof(double));
    if (!a->v) return fail(err, n, "%s: out of memory", what);
    int64_t k = 0;
    if (!fill(v, 0, a, &k, what, err, n)) {
        free(a->v);
        a->v = NULL;
        return false;
    }
    return true;
}

static tg_tensor *array_to_float(const ll_array *a)
{
    tg_tensor *t = tg_tensor_zeros(a->ndim, a->shape);
    if (t)
        for (int64_t i = 0; i < a->n; i++) t->data[i] = (float)a->v[i];
    return t;
}

static tg_tensor *array_to_index(const ll_array *a, const char *what, char *err, size_t n)
{
    for (int64_t i = 0; i < a->n; i++)
        if (!(a->v[i] == floor(a->v[i])) || fabs(a->v[i]) > 9e15) {
            fail(err, n, "%s: expected integer class indices/lengths, got %g at flat index %lld", what, a->v[i],
                 (long long)i);
            return NULL;
        }
    tg_tensor *t = tg_tensor_new(TG_I64, a->ndim, a->shape);
    if (t)
        for (int64_t i = 0; i < a->n; i++) t->idata[i] = (int64_t)a->v[i];
    return t;
}

/* ---- options -------------------------------------------------------------- */

/* Sets option id from JSON value v (NULL value = None). */
static bool set_opt(const ll_loss *l, ll_opts *o, ll_opt_id id, const cJSON *v, char *err, size_t n)
{
    const char *name = ll_opt_infos[id].name;
    tg_tensor_free(o->tensor[id]);
    o->tensor[id] = NULL;
    o->set[id] = false;
    if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && strcmp(v->valuestring, "None") == 0)) {
        if (ll_opt_infos[id].kind == LL_VAL_TENSOR || id == LL_OPT_IGNORE_INDEX) return true;
        return fail(err, n, "options.%s: None is not allowed for %s", name, l->name);
    }
    double x = 0;
    switch (ll_opt_infos[id].kind) {
    case LL_VAL_TENSOR: {
        ll_array a;
        char what[64];
        snprintf(what, sizeof what, "options.%s", name);
        if (!array_from_json(v, what, &a, err, n)) return false;
        o->tensor[id] = array_to_float(&a);
        free(a.v);
        if (!o->tensor[id]) return fail(err, n, "%s: %s", what, tg_last_error());
        break;
    }
    case LL_VAL_INT:
        if (!ll_json_number(v, &x) || x != floor(x) || fabs(x) > 9e15)
            return fail(err, n, "options.%s: expected an integer", name);
        break;
    case LL_VAL_FLOAT:
        if (!ll_json_number(v, &x)) return fail(err, n, "options.%s: expected a number", name);
        break;
    case LL_VAL_BOOL:
        if (cJSON_IsBool(v)) x = cJSON_IsTrue(v);
        else if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) x = v->valuedouble;
        else return fail(err, n, "options.%s: expected true or false", name);
        break;
    case LL_VAL_REDUCTION: {
        const char *s = cJSON_IsString(v) ? v->valuestring : "";
        if (strcmp(s, "mean") == 0) o->reduction = TG_REDUCTION_MEAN;
        else if (strcmp(s, "sum") == 0) o->reduction = TG_REDUCTION_SUM;
        else if (strcmp(s, "none") == 0) o->reduction = TG_REDUCTION_NONE;
        else if (strcmp(s, "batchmean") == 0 && strcmp(l->name, "kl_div") == 0) o->reduction = TG_REDUCTION_BATCHMEAN;
        else
            return fail(err, n, "options.reduction: expected 'none', 'mean' or 'sum'%s for %s", 
                        strcmp(l->name, "kl_div") == 0 ? " or 'batchmean'" : "", l->name);
        break;
    }
    }
    o->num[id] = x;
    o->set[id] = true;
    return true;
}

static void list_opts(const ll_loss *l, char *out, size_t n)
{
    size_t k = 0;
    out[0] = '\0';
    for (const ll_opt_spec *s = l->opts; s->dflt && k < n; s++)
        k += (size_t)snprintf(out + k, n - k, "%s%s", s == l->opts ? "" : ", ", ll_opt_infos[s->id].name);
    if (!l->opts[0].dflt) snprintf(out, n, "no options");
}

static void list_args(const ll_loss *l, char *out, size_t n)
{
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < ll_n_args(l) && k < n; i++)
        k += (size_t)snprintf(out + k, n - k, "%s%s", i ? ", " : "", l->args[i].name);
}

/* ---- a case from JSON ----------------------------------------------------- */

bool ll_case_from_json(const cJSON *obj, ll_case *c, char *err, size_t n)
{
    *c = (ll_case){0};
    char names[256];
    if (!cJSON_IsObject(obj)) return fail(err, n, "a case must be a JSON object");
    const cJSON *jloss = cJSON_GetObjectItemCaseSensitive(obj, "loss");
    if (!cJSON_IsString(jloss)) return fail(err, n, "loss: missing (expected the loss name as a string; see --list)");
    c->loss = ll_find_loss(jloss->valuestring);
    if (!c->loss) return fail(err, n, "loss: unknown loss '%s' (see --list)", jloss->valuestring);
    const ll_loss *l = c->loss;
    int nargs = ll_n_args(l);

    /* Top-level keys: id, loss, options and the loss's tensor arguments only. */
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *k = it->string;
        bool known = strcmp(k, "id") == 0 || strcmp(k, "loss") == 0 || strcmp(k, "options") == 0;
        for (int i = 0; i < nargs && !known; i++) known = strcmp(k, l->args[i].name) == 0;
        if (!known) {
            list_args(l, names, sizeof names);
            return fail(err, n, "%s: unknown argument for %s (its tensor arguments: %s)", k, l->name, names);
        }
    }

    /* Options: defaults from the table, then the case's values. */
    for (const ll_opt_spec *s = l->opts; s->dflt; s++) {
        cJSON *d = ll_json_parse(s->dflt);
        if (!d) d = cJSON_CreateString(s->dflt); /* "mean", "None" */
        bool ok = set_opt(l, &c->opts, s->id, d, err, n);
        cJSON_Delete(d);
        if (!ok) return false;
    }
    const cJSON *jopts = cJSON_GetObjectItemCaseSensitive(obj, "options");
    if (jopts && !cJSON_IsObject(jopts) && !cJSON_IsNull(jopts))
        return fail(err, n, "options: expected an object of keyword options");
    for (const cJSON *it = jopts ? jopts->child : NULL; it; it = it->next) {
        int id = ll_find_opt(it->string);
        list_opts(l, names, sizeof names);
        if (id < 0) return fail(err, n, "options.%s: unknown option (%s takes: %s)", it->string, l->name, names);
        if (!ll_takes_opt(l, (ll_opt_id)id))
            return fail(err, n, "options.%s: %s does not take this option (it takes: %s)", it->string, l->name, names);
        if (!set_opt(l, &c->opts, (ll_opt_id)id, it, err, n)) return false;
    }

    /* Tensor arguments. */
    ll_array arr[LL_MAX_ARGS] = {{0}};
    bool ok = true;
    for (int i = 0; i < nargs && ok; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, l->args[i].name);
        if (!v) ok = fail(err, n, "%s: missing tensor argument of %s", l->args[i].name, l->name);
        else ok = array_from_json(v, l->args[i].name, &arr[i], err, n);
    }
    for (int i = 0; i < nargs && ok; i++) {
        const char *what = l->args[i].name;
        ll_arg_kind kind = l->args[i].kind;
        if (kind == LL_ARG_CLASS_OR_PROB) { /* probabilities have the input's ndim, indices one less */
            c->prob_target = arr[i].ndim == arr[0].ndim && arr[0].ndim > 0;
            kind = c->prob_target ? LL_ARG_FLOAT : LL_ARG_INDEX;
        }
        err[0] = '\0';
        if (kind == LL_ARG_INDEX) c->args[i] = array_to_index(&arr[i], what, err, n);
        else c->args[i] = array_to_float(&arr[i]);
        if (!c->args[i]) {
            if (!err[0]) fail(err, n, "%s: %s", what, tg_last_error());
            ok = false;
        } else {
            tg_tensor_set_name(c->args[i], what);
            if (l->args[i].kind == LL_ARG_GRAD) tg_tensor_set_requires_grad(c->args[i], true);
        }
    }
    for (int i = 0; i < nargs; i++) free(arr[i].v);
    return ok;
}

void ll_case_free(ll_case *c)
{
    for (int i = 0; i < LL_MAX_ARGS; i++) tg_tensor_free(c->args[i]);
    for (int i = 0; i < LL_OPT_COUNT; i++) tg_tensor_free(c->opts.tensor[i]);
    *c = (ll_case){0};
}

/* ---- running -------------------------------------------------------------- */

static bool has_reduction(const ll_loss *l) { return ll_takes_opt(l, LL_OPT_REDUCTION); }

static bool probabilities(const ll_case *c, ll_result *r)
{
    tg_tensor *x = c->args[0];
    int cdim = x->ndim >= 2 ? 1 : 0;
    ll_probs kind = c->loss->probs;
    if (kind == LL_PROBS_DICE) kind = x->ndim >= 2 && x->shape[1] == 1 ? LL_PROBS_SIGMOID : LL_PROBS_SOFTMAX;
    if (kind == LL_PROBS_NONE || (x->ndim == 0 && kind == LL_PROBS_SOFTMAX)) return true;
    tg_tensor *p[2] = {NULL, NULL};
    if (kind == LL_PROBS_SIGMOID) {
        p[0] = tg_sigmoid(x);
        r->probs_name[0] = "sigmoid(input)";
    } else {
        p[0] = tg_softmax(x, cdim);
        p[1] = tg_log_softmax(x, cdim);
        r->probs_name[0] = cdim ? "softmax(input, dim=1)" : "softmax(input, dim=0)";
        r->probs_name[1] = cdim ? "log_softmax(input, dim=1)" : "log_softmax(input, dim=0)";
    }
    for (int k = 0; k < 2; k++)
        if (r->probs_name[k] && !(r->probs[k] = tg_tensor_clone(p[k]))) return false;
    return true;
}

bool ll_run(const ll_case *c, bool want_details, ll_result *r, char *err, size_t n)
{
    *r = (ll_result){0};
    const ll_loss *l = c->loss;
    bool ok = true;
    tg_clear_error();
    if (want_details) {
        bool prev = tg_set_grad_enabled(false);
        if (has_reduction(l)) {
            tg_tensor *pe = l->call(c->args, &c->opts, TG_REDUCTION_NONE);
            ok = pe && (r->per_elem = tg_tensor_clone(pe));
        }
        ok = ok && probabilities(c, r);
        tg_set_grad_enabled(prev);
        tg_tape_clear();
    }
    for (int i = 0; i < ll_n_args(l); i++) tg_tensor_zero_grad(c->args[i]);
    tg_tensor *loss = ok ? l->call(c->args, &c->opts, c->opts.reduction) : NULL;
    ok = loss != NULL;
    if (ok) {
        r->loss = tg_tensor_clone(loss);
        tg_tensor *s = loss->ndim == 0 ? loss : tg_sum_all(loss);
        ok = r->loss && s && tg_backward(s) == TG_OK;
    }
    for (int i = 0; ok && i < ll_n_args(l); i++) {
        tg_tensor *a = c->args[i];
        if (l->args[i].kind != LL_ARG_GRAD) continue;
        r->grads[i] = a->grad ? tg_tensor_from_data(a->ndim, a->shape, a->grad) : tg_tensor_zeros(a->ndim, a->shape);
        ok = r->grads[i] != NULL;
    }
    tg_tape_clear();
    if (!ok) {
        const char *msg = tg_last_error();
        fail(err, n, "%s", msg[0] ? msg : "the loss failed without a message");
        ll_result_free(r);
    }
    return ok;
}

void ll_result_free(ll_result *r)
{
    tg_tensor_free(r->loss);
    tg_tensor_free(r->per_elem);
    for (int i = 0; i < LL_MAX_ARGS; i++) tg_tensor_free(r->grads[i]);
    for (int i = 0; i < 2; i++) tg_tensor_free(r->probs[i]);
    *r = (ll_result){0};
}
