/* losslab: study backprop through the losses.
 *
 *   losslab NAME --input '[[...]]' --target '[...]' [--weight '[...]' --reduction sum --ignore-index 255 ...]
 *       a readable breakdown: inputs, intermediate probabilities, per-element loss, the loss,
 *       and the gradient of sum(loss) with respect to each float input.
 *   losslab NAME ... --json      the same case as one JSON object
 *   losslab --list               the losses, their tensor arguments and options with defaults
 *   losslab --jsonl              cases on stdin, one JSON object per line:
 *       {"id": ..., "loss": NAME, <tensor args>, "options": {...}}  ->  one line per case:
 *       {"id": ..., "loss": ..., "grad": {"input": ..., ...}}  or  {"id": ..., "error": "..."}
 * Names and keys are torch.nn.functional's (options in PyTorch's spelling; on the command line
 * --ignore-index and --ignore_index both work). Integer targets of a different shape than the
 * input are class indices for cross_entropy; a float target of the input's shape, probabilities.
 * NaN and infinities are written as bare NaN, Infinity, -Infinity. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "losslab.h"

/* ---- printing ---- */

static void write_num(FILE *out, double x, bool json)
{
    if (isnan(x)) fputs("NaN", out);
    else if (isinf(x)) fputs(x > 0 ? "Infinity" : "-Infinity", out);
    else fprintf(out, json ? "%.9g" : "%.6g", x);
}

static void write_nested(FILE *out, const tg_tensor *t, int d, int64_t *pos, bool json, int indent)
{
    if (d == t->ndim) {
        write_num(out, t->dtype == TG_F32 ? t->data[*pos] : (double)t->idata[*pos], json);
        (*pos)++;
        return;
    }
    fputc('[', out);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        if (i && (json || d == t->ndim - 1)) fputs(json ? "," : ", ", out);
        else if (i) fprintf(out, ",\n%*s", indent + d + 1, "");
        write_nested(out, t, d + 1, pos, json, indent);
    }
    fputc(']', out);
}

void ll_write_json_tensor(FILE *out, const tg_tensor *t)
{
    int64_t pos = 0;
    write_nested(out, t, 0, &pos, true, 0);
}

static void print_tensor(const char *title, const tg_tensor *t)
{
    char s[96];
    printf("%s %s:\n  ", title, tg_shape_str(t, s, sizeof s));
    int64_t pos = 0;
    write_nested(stdout, t, 0, &pos, false, 2);
    printf("\n");
}

/* softmax / log_softmax over dim 1 (dim 0 for 1-D), or sigmoid: display only, in double. */
static void print_probs(const ll_result *r)
{
    const tg_tensor *x = r->args[0];
    const char *kind = r->loss->probs;
    if (!kind || x->ndim == 0) return;
    bool soft = !strcmp(kind, "softmax") && !(x->ndim >= 2 && x->shape[1] == 1);
    tg_tensor *p = tg_tensor_zeros(x->ndim, x->shape), *lp = tg_tensor_zeros(x->ndim, x->shape);
    if (!soft) {
        for (int64_t i = 0; i < x->numel; i++) {
            double v = x->data[i];
            p->data[i] = (float)(1 / (1 + exp(-v)));
        }
        print_tensor("sigmoid(input)", p);
    } else {
        int64_t N = x->ndim == 1 ? 1 : x->shape[0], C = x->ndim == 1 ? x->shape[0] : x->shape[1];
        int64_t S = N > 0 && C > 0 ? x->numel / (N * C) : 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t q = 0; q < S; q++) {
                double m = -INFINITY, s = 0;
                for (int64_t c = 0; c < C; c++) m = fmax(m, x->data[(n * C + c) * S + q]);
                for (int64_t c = 0; c < C; c++) s += exp(x->data[(n * C + c) * S + q] - m);
                for (int64_t c = 0; c < C; c++) {
                    double l = x->data[(n * C + c) * S + q] - m - log(s);
                    lp->data[(n * C + c) * S + q] = (float)l;
                    p->data[(n * C + c) * S + q] = (float)exp(l);
                }
            }
        print_tensor(x->ndim == 1 ? "softmax(input) over dim 0" : "softmax(input) over dim 1 (classes)", p);
        print_tensor("log_softmax(input)", lp);
    }
    tg_tensor_free(p);
    tg_tensor_free(lp);
}

static void print_breakdown(const ll_result *r, const cJSON *opts)
{
    printf("%s\n", r->loss->name);
    char *o = opts ? cJSON_PrintUnformatted(opts) : NULL;
    printf("options given: %s   (defaults: %s)\n\n", o ? o : "{}", r->loss->options);
    free(o);
    for (int i = 0; i < r->n_args; i++) print_tensor(r->loss->args[i], r->args[i]);
    print_probs(r);
    if (r->per_element) print_tensor("per-element loss (reduction='none')", r->per_element);
    print_tensor("loss", r->value);
    for (int i = 0; i < r->n_args; i++)
        if (r->grads[i]) {
            char title[96];
            snprintf(title, sizeof title, "d sum(loss) / d %s", r->loss->args[i]);
            print_tensor(title, r->grads[i]);
        }
}

static void write_result_json(FILE *out, const cJSON *id, const ll_result *r, const char *error)
{
    char *ids = id ? cJSON_PrintUnformatted(id) : NULL;
    fprintf(out, "{\"id\":%s,", ids ? ids : "null");
    free(ids);
    if (error) {
        cJSON *s = cJSON_CreateString(error);
        char *es = cJSON_PrintUnformatted(s);
        fprintf(out, "\"error\":%s}\n", es);
        free(es);
        cJSON_Delete(s);
        return;
    }
    fputs("\"loss\":", out);
    ll_write_json_tensor(out, r->value);
    fputs(",\"grad\":{", out);
    for (int i = 0, k = 0; i < r->n_args; i++)
        if (r->grads[i]) {
            fprintf(out, "%s\"%s\":", k++ ? "," : "", r->loss->args[i]);
            ll_write_json_tensor(out, r->grads[i]);
        }
    fputs("}}\n", out);
}

/* ---- modes ---- */

static int run_jsonl(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        bool blank = true;
        for (ssize_t i = 0; i < len; i++) blank &= line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r';
        if (blank) continue;
        cJSON *c = cJSON_Parse(line);
        if (!c) {
            write_result_json(stdout, NULL, NULL, "malformed JSON (one case object per line)");
        } else {
            ll_result r;
            char err[512];
            int rc = ll_run_case(c, NULL, &r, err, sizeof err);
            write_result_json(stdout, cJSON_IsObject(c) ? cJSON_GetObjectItem(c, "id") : NULL, &r, rc ? err : NULL);
            ll_result_free(&r);
            cJSON_Delete(c);
        }
        fflush(stdout);
    }
    free(line);
    return 0;
}

static void list_losses(void)
{
    printf("losses (tensor arguments; options with defaults):\n");
    for (int i = 0; i < LL_N_LOSSES; i++) {
        const ll_loss *L = &LL_LOSSES[i];
        printf("  %s(", L->name);
        for (int k = 0; k < LL_MAX_ARGS && L->args[k]; k++)
            printf("%s%s%s", k ? ", " : "", L->args[k], (L->int_args >> k) & 1 ? ":int" : "");
        printf(")\n      %s\n", L->options);
    }
}

static int usage(FILE *out, int rc)
{
    fprintf(out, "usage: losslab NAME --input JSON --target JSON [--OPTION VALUE ...] [--json]\n"
                 "       losslab --list | --jsonl | --help\n"
                 "example: losslab cross_entropy --input '[[1,2,3]]' --target '[2]' --label-smoothing 0.1\n");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr, 2);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage(stdout, 0);
    if (!strcmp(argv[1], "--list")) return list_losses(), 0;
    if (!strcmp(argv[1], "--jsonl")) return run_jsonl();
    const ll_loss *L = ll_find(argv[1]);
    if (!L) {
        fprintf(stderr, "losslab: unknown loss '%s' (see losslab --list)\n", argv[1]);
        return 1;
    }
    cJSON *c = cJSON_CreateObject(), *opts = cJSON_CreateObject();
    bool json = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0 || !argv[i][2]) {
            fprintf(stderr, "losslab: unexpected argument '%s'\n", argv[i]);
            cJSON_Delete(c);
            cJSON_Delete(opts);
            return usage(stderr, 2);
        }
        char key[64];
        snprintf(key, sizeof key, "%s", argv[i] + 2);
        for (char *k = key; *k; k++)
            if (*k == '-') *k = '_';
        const char *val = i + 1 < argc && strncmp(argv[i + 1], "--", 2) ? argv[++i] : "true";
        cJSON *v = cJSON_Parse(val);
        if (!v) v = cJSON_CreateString(val); /* e.g. --reduction sum */
        bool is_arg = false;
        for (int k = 0; k < LL_MAX_ARGS && L->args[k]; k++) is_arg |= !strcmp(key, L->args[k]);
        cJSON_AddItemToObject(is_arg ? c : opts, key, v);
    }
    cJSON_AddItemToObject(c, "options", opts);
    ll_result r;
    char err[512];
    int rc = ll_run_case(c, L->name, &r, err, sizeof err);
    if (rc) fprintf(stderr, "losslab: %s\n", err);
    else if (json) write_result_json(stdout, NULL, &r, NULL);
    else print_breakdown(&r, opts);
    ll_result_free(&r);
    cJSON_Delete(c);
    return rc ? 1 : 0;
}
