/* Output: the readable breakdown and the JSON result objects. */
#include <math.h>
#include <string.h>

#include "losslab.h"

#define LL_PRINT_MAX 4096 /* larger tensors are shown by their shape and first values */

static void print_value(FILE *out, const tg_tensor *t, int64_t i)
{
    if (t->dtype == TG_I64) fprintf(out, "%5lld", (long long)t->idata[i]);
    else fprintf(out, "%11.6g", t->data[i]);
}

static void print_rec(FILE *out, const tg_tensor *t, int dim, int64_t *off, int indent)
{
    if (dim == t->ndim) {
        print_value(out, t, (*off)++);
        return;
    }
    fputc('[', out);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        if (i) {
            fputc(',', out);
            if (dim < t->ndim - 1) {
                for (int k = dim; k < t->ndim - 2; k++) fputc('\n', out); /* blank lines between blocks */
                fprintf(out, "\n%*s", indent + dim + 1, "");
            }
        }
        print_rec(out, t, dim + 1, off, indent);
    }
    fputc(']', out);
}

static void print_tensor(FILE *out, const char *title, const tg_tensor *t, const char *note)
{
    char shape[96];
    fprintf(out, "%s %s%s%s:\n  ", title, tg_shape_str(t, shape, sizeof shape), note ? ", " : "", note ? note : "");
    if (t->numel > LL_PRINT_MAX) {
        fprintf(out, "(%lld values; first:", (long long)t->numel);
        for (int64_t i = 0; i < 8; i++) print_value(out, t, i);
        fprintf(out, " ...)\n\n");
        return;
    }
    int64_t off = 0;
    print_rec(out, t, 0, &off, 2);
    fprintf(out, "\n\n");
}

static void print_opt_value(FILE *out, const ll_opts *o, ll_opt_id id)
{
    ll_buf b = {0};
    switch (ll_opt_infos[id].kind) {
    case LL_VAL_TENSOR:
        if (o->tensor[id]) ll_buf_tensor_json(&b, o->tensor[id]);
        else ll_buf_printf(&b, "None");
        break;
    case LL_VAL_REDUCTION: ll_buf_printf(&b, "'%s'", ll_reduction_name(o->reduction)); break;
    case LL_VAL_BOOL: ll_buf_printf(&b, "%s", o->num[id] != 0 ? "True" : "False"); break;
    case LL_VAL_INT:
        if (o->set[id]) ll_buf_printf(&b, "%lld", (long long)o->num[id]);
        else ll_buf_printf(&b, "None");
        break;
    case LL_VAL_FLOAT: ll_buf_num(&b, o->num[id]); break;
    }
    fputs(b.s ? b.s : "", out);
    ll_buf_free(&b);
}

static const char *arg_note(const ll_case *c, int i)
{
    switch (c->loss->args[i].kind) {
    case LL_ARG_GRAD: return "requires grad";
    case LL_ARG_FLOAT: return "no grad";
    case LL_ARG_INDEX: return "int64";
    case LL_ARG_CLASS_OR_PROB: return c->prob_target ? "class probabilities" : "class indices";
    }
    return NULL;
}

void ll_print_breakdown(FILE *out, const ll_case *c, const ll_result *r)
{
    const ll_loss *l = c->loss;
    fprintf(out, "%s: %s\n  options:", l->name, l->summary);
    for (const ll_opt_spec *s = l->opts; s->dflt; s++) {
        fprintf(out, " %s=", ll_opt_infos[s->id].name);
        print_opt_value(out, &c->opts, s->id);
    }
    fprintf(out, "\n\n");
    for (int i = 0; i < ll_n_args(l); i++) print_tensor(out, l->args[i].name, c->args[i], arg_note(c, i));
    for (int k = 0; k < 2; k++)
        if (r->probs[k]) print_tensor(out, r->probs_name[k], r->probs[k], NULL);
    if (r->per_elem) print_tensor(out, "per-element loss (reduction='none')", r->per_elem, NULL);
    if (r->loss->ndim == 0 || r->loss->numel == 1) {
        fprintf(out, "loss");
        if (ll_takes_opt(l, LL_OPT_REDUCTION)) fprintf(out, " (reduction='%s')", ll_reduction_name(c->opts.reduction));
        fprintf(out, " = %.9g\n\n", r->loss->data[0]);
    } else {
        print_tensor(out, "loss (reduction='none')", r->loss, NULL);
    }
    const char *of = r->loss->ndim == 0 ? "loss" : "sum(loss)";
    for (int i = 0; i < ll_n_args(l); i++) {
        if (!r->grads[i]) continue;
        char title[128];
        snprintf(title, sizeof title, "d %s / d %s", of, l->args[i].name);
        print_tensor(out, title, r->grads[i], NULL);
    }
}

void ll_json_result(ll_buf *b, const ll_case *c, const ll_result *r, bool details)
{
    const ll_loss *l = c->loss;
    if (details) {
        ll_buf_printf(b, "\"name\": ");
        ll_buf_str(b, l->name);
        ll_buf_printf(b, ", \"inputs\": {");
        for (int i = 0; i < ll_n_args(l); i++) {
            ll_buf_printf(b, "%s\"%s\": ", i ? ", " : "", l->args[i].name);
            ll_buf_tensor_json(b, c->args[i]);
        }
        ll_buf_printf(b, "}, \"options\": {");
        for (const ll_opt_spec *s = l->opts; s->dflt; s++) {
            ll_opt_id id = s->id;
            ll_buf_printf(b, "%s\"%s\": ", s == l->opts ? "" : ", ", ll_opt_infos[id].name);
            switch (ll_opt_infos[id].kind) {
            case LL_VAL_TENSOR: ll_buf_tensor_json(b, c->opts.tensor[id]); break;
            case LL_VAL_REDUCTION: ll_buf_str(b, ll_reduction_name(c->opts.reduction)); break;
            case LL_VAL_BOOL: ll_buf_printf(b, "%s", c->opts.num[id] != 0 ? "true" : "false"); break;
            case LL_VAL_INT:
                if (c->opts.set[id]) ll_buf_printf(b, "%lld", (long long)c->opts.num[id]);
                else ll_buf_printf(b, "null");
                break;
            case LL_VAL_FLOAT: ll_buf_num(b, c->opts.num[id]); break;
            }
        }
        ll_buf_printf(b, "}, \"probabilities\": {");
        for (int k = 0; k < 2; k++)
            if (r->probs[k]) {
                ll_buf_printf(b, "%s", k ? ", " : "");
                ll_buf_str(b, r->probs_name[k]);
                ll_buf_printf(b, ": ");
                ll_buf_tensor_json(b, r->probs[k]);
            }
        ll_buf_printf(b, "}, \"per_element_loss\": ");
        ll_buf_tensor_json(b, r->per_elem);
        ll_buf_printf(b, ", ");
    }
    ll_buf_printf(b, "\"loss\": ");
    ll_buf_tensor_json(b, r->loss);
    ll_buf_printf(b, ", \"grad\": {");
    bool first = true;
    for (int i = 0; i < ll_n_args(l); i++) {
        if (!r->grads[i]) continue;
        ll_buf_printf(b, "%s\"%s\": ", first ? "" : ", ", l->args[i].name);
        ll_buf_tensor_json(b, r->grads[i]);
        first = false;
    }
    ll_buf_printf(b, "}");
}
