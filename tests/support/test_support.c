#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/core_internal.h"

/* ---- weighted sum: a tiny tape op of its own, so tests need no other op ---- */

static void weighted_sum_backward(tg_node *n)
{
    const float *w = n->ctx;
    float g = n->out->grad[0];
    float *gx = tg_grad(n->in[0]);
    if (!gx) return;
    for (int64_t i = 0; i < n->in[0]->numel; i++) gx[i] += g * w[i];
}

static const tg_op_def WEIGHTED_SUM_OP = {"test_weighted_sum", weighted_sum_backward, TG_OP_NONE};

tg_tensor *tgt_weighted_sum(tg_tensor *x, uint64_t seed)
{
    if (!tg_check_f32("tgt_weighted_sum", "x", x)) return NULL;
    float *w = tg_arena_alloc((size_t)x->numel * sizeof(float));
    tg_tensor *out = tg_output_new(TG_F32, 0, NULL);
    if (!w || !out) return NULL;
    tg_rng r;
    tg_rng_seed(&r, seed);
    double s = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        w[i] = 0.5f + tg_rng_uniform(&r);
        s += (double)w[i] * x->data[i];
    }
    out->data[0] = (float)s;
    tg_node *n = tg_record(&WEIGHTED_SUM_OP, out, 1, &x);
    if (n) n->ctx = w;
    return out;
}

/* With TG_GRADCHECK_LOG=FILE in the environment (tests/test_op_list.c sets it), every passing
 * gradient check appends one line per op its function recorded: "name id n_in". The function is
 * wrapped only then, so ordinary runs are untouched. */
typedef struct {
    tg_scalar_fn fn;
    void *ctx;
    char ops[256][64]; /* the ops of the first call (the analytic pass), as log lines */
    int n_ops;
    bool first;
} gc_logger;

static tg_tensor *gc_logged_fn(tg_tensor *const *in, int n, void *vctx)
{
    gc_logger *l = vctx;
    int64_t before = tg_tape_size();
    tg_tensor *y = l->fn(in, n, l->ctx);
    if (l->first) {
        l->first = false;
        int n_in = 0;
        const tg_op_def *op;
        for (int64_t k = before; (op = tg_tape_node_op(k, &n_in)) != NULL && l->n_ops < 256; k++)
            snprintf(l->ops[l->n_ops++], sizeof l->ops[0], "%s %d %d\n", op->name, op->id, n_in);
    }
    return y;
}

void tgt_expect_gradcheck(const char *what, tg_scalar_fn fn, void *ctx, tg_tensor *const *inputs, int n,
                          double eps, double atol, double rtol)
{
    tg_gradcheck_report r;
    const char *log = getenv("TG_GRADCHECK_LOG");
    gc_logger *l = log && *log ? calloc(1, sizeof *l) : NULL;
    if (l) *l = (gc_logger){.fn = fn, .ctx = ctx, .first = true};
    tg_status st = l ? tg_gradcheck(gc_logged_fn, l, inputs, n, eps, atol, rtol, &r)
                     : tg_gradcheck(fn, ctx, inputs, n, eps, atol, rtol, &r);
    if (l && st == TG_OK && r.passed && r.checked > 0) {
        FILE *f = fopen(log, "a");
        cr_assert_not_null(f, "cannot append to TG_GRADCHECK_LOG=%s", log);
        for (int k = 0; k < l->n_ops; k++) fputs(l->ops[k], f);
        fclose(f);
    }
    free(l);
    cr_assert_eq(st, TG_OK, "%s: gradcheck could not run: %s", what, tg_last_error());
    char buf[512];
    cr_expect(r.passed, "%s: %s", what, tg_gradcheck_describe(&r, buf, sizeof buf));
    cr_expect_gt(r.checked, 0, "%s: no element was checked (no input requires grad?)", what);
}

/* ---- JSON fixtures ---- */

cJSON *tgt_json_load(const char *path)
{
    char full[1024];
    if (path[0] == '/') snprintf(full, sizeof full, "%s", path);
    else snprintf(full, sizeof full, "%s/%s", TG_FIXTURE_DIR, path);
    FILE *f = fopen(full, "rb");
    cr_assert_not_null(f, "fixture %s is missing (regenerate with the tests/gen_*.py scripts)", full);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    cr_assert_not_null(text);
    size_t got = fread(text, 1, (size_t)len, f);
    fclose(f);
    text[got] = '\0';
    cJSON *root = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(root, "fixture %s is not valid JSON", full);
    return root;
}

double tgt_json_number(const cJSON *v)
{
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "NaN")) return NAN;
        if (!strcmp(v->valuestring, "Infinity")) return INFINITY;
        if (!strcmp(v->valuestring, "-Infinity")) return -INFINITY;
    }
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? 1.0 : 0.0;
    cr_assert_fail("fixture value is not a number");
    return NAN;
}

static void json_shape(const cJSON *v, int *ndim, int64_t *shape)
{
    *ndim = 0;
    while (cJSON_IsArray(v)) {
        cr_assert_lt(*ndim, TG_MAX_DIMS, "fixture array nests too deep");
        shape[(*ndim)++] = cJSON_GetArraySize(v);
        v = v->child;
        if (!v) break;
    }
}

static void json_fill(const cJSON *v, tg_tensor *t, int64_t *pos)
{
    if (cJSON_IsArray(v)) {
        for (const cJSON *c = v->child; c; c = c->next) json_fill(c, t, pos);
        return;
    }
    cr_assert_lt(*pos, t->numel, "ragged fixture array");
    double x = tgt_json_number(v);
    if (t->dtype == TG_F32) t->data[*pos] = (float)x;
    else t->idata[*pos] = (int64_t)x;
    (*pos)++;
}

tg_tensor *tgt_json_tensor(const cJSON *value, bool as_int)
{
    cr_assert_not_null(value, "fixture key missing");
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    json_shape(value, &ndim, shape);
    tg_tensor *t = tg_tensor_new(as_int ? TG_I64 : TG_F32, ndim, shape);
    cr_assert_not_null(t, "%s", tg_last_error());
    int64_t pos = 0;
    json_fill(value, t, &pos);
    cr_assert_eq(pos, t->numel, "ragged fixture array");
    return t;
}

/* ---- closeness ---- */

void tgt_expect_close(const char *what, const float *a, const float *e, int64_t n, double rtol, double atol)
{
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = e[i];
        bool ok;
        if (isnan(y)) ok = isnan(x);
        else if (isinf(y)) ok = x == y;
        else ok = fabs(x - y) <= atol + rtol * fabs(y);
        if (!ok) {
            cr_expect_fail("%s: element %lld is %.9g, expected %.9g (rtol %g, atol %g)", what, (long long)i, x, y,
                           rtol, atol);
            return;
        }
    }
}

void tgt_expect_tensor_close(const char *what, const tg_tensor *a, const tg_tensor *e, double rtol, double atol)
{
    cr_assert_not_null(a, "%s: result is NULL: %s", what, tg_last_error());
    char sa[96], se[96];
    cr_assert_eq(a->numel, e->numel, "%s: shape %s, expected %s", what, tg_shape_str(a, sa, sizeof sa),
                 tg_shape_str(e, se, sizeof se));
    tgt_expect_close(what, a->data, e->data, a->numel, rtol, atol);
}

void tgt_expect_fixture_case(const char *name, const cJSON *c, tg_tensor *y, tg_tensor *const *inputs,
                             const char *const *grad_keys, int n, double y_rtol, double grad_rtol,
                             double atol)
{
    cr_assert_not_null(y, "%s: %s", name, tg_last_error());
    tg_tensor *ey = tgt_json_tensor(cJSON_GetObjectItem(c, "y"), false);
    char a[96], b[96], what[160];
    cr_expect(tg_tensor_same_shape(y, ey), "%s: shape %s, expected %s", name, tg_shape_str(y, a, sizeof a),
              tg_shape_str(ey, b, sizeof b));
    snprintf(what, sizeof what, "%s y", name);
    tgt_expect_tensor_close(what, y, ey, y_rtol, atol);
    tg_tensor *gy = tgt_json_tensor(cJSON_GetObjectItem(c, "gy"), false);
    cr_assert_eq(tg_backward_with(y, gy), TG_OK, "%s: %s", name, tg_last_error());
    for (int k = 0; k < n; k++) {
        if (!inputs[k]) continue;
        tg_tensor *e = tgt_json_tensor(cJSON_GetObjectItem(c, grad_keys[k]), false);
        snprintf(what, sizeof what, "%s %s", name, grad_keys[k]);
        cr_assert_not_null(inputs[k]->grad, "%s: no gradient", what);
        tgt_expect_close(what, inputs[k]->grad, e->data, e->numel, grad_rtol, atol);
        tg_tensor_free(e);
    }
    tg_tape_clear();
    tg_tensor_free(ey);
    tg_tensor_free(gy);
}

/* ---- example programs ---- */

int tgt_run_capture(const char *cmd, char *out, size_t n)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t k = fread(out, 1, n - 1, p);
    out[k] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void tgt_make_tmpdir(char *dir, size_t size, const char *tag)
{
    snprintf(dir, size, "/tmp/tg_%s_XXXXXX", tag);
    cr_assert_not_null(mkdtemp(dir), "cannot make a temporary directory %s", dir);
}

void tgt_remove_tree(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0, "cannot remove %s", dir);
}

int tgt_run_capturef(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *cmd = malloc((size_t)len + 1);
    cr_assert(cmd, "out of memory for a command line");
    va_start(ap, fmt);
    vsnprintf(cmd, (size_t)len + 1, fmt, ap);
    va_end(ap);
    int rc = tgt_run_capture(cmd, out, n);
    free(cmd);
    return rc;
}

void tgt_need_drive(void)
{
    char probe[4096];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/test/images/01_test.tif", tg_drive_default_root());
    if (stat(probe, &st) != 0) cr_skip_test("DRIVE not found at %s (see README: TG_DRIVE_DIR)", tg_drive_default_root());
}

char *tgt_read_whole(const char *path, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)*n + 1);
    cr_assert(b && fread(b, 1, (size_t)*n, f) == (size_t)*n);
    b[*n] = '\0';
    fclose(f);
    return b;
}

bool tgt_same_file(const char *a, const char *b)
{
    long na = 0, nb = 0;
    char *x = tgt_read_whole(a, &na), *y = tgt_read_whole(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, (size_t)na);
    free(x);
    free(y);
    return same;
}

void tgt_json_field(const char *line, const char *key, char *out, size_t n)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(line, k);
    cr_assert_not_null(p, "no %s in %s", key, line);
    p += strlen(k);
    size_t i = 0;
    while (p[i] && p[i] != ',' && p[i] != '}' && i + 1 < n) out[i] = p[i], i++;
    out[i] = '\0';
}

int64_t tgt_copy_param_grads(const tg_param_list *list, float *g, int64_t n_g)
{
    int64_t at = 0;
    for (int k = 0; k < list->count; k++) {
        const tg_tensor *p = list->entries[k].tensor;
        if (!p->grad) continue;
        cr_assert_leq(at + p->numel, n_g);
        memcpy(g + at, p->grad, sizeof(float) * (size_t)p->numel);
        at += p->numel;
    }
    return at;
}
