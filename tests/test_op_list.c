/* The list of ops (ops/op_list.h) against the code and the tests:
 *   - each op is defined (TG_OP_DEFINE) in the file the list names, ids and names are unique;
 *   - each op has a passing gradient check: the Criterion tests its GC names are run again with
 *     TG_GRADCHECK_LOG set (tests/support: every passing tgt_expect_gradcheck appends the ops its
 *     function recorded, with their input counts), and the op must be in that log; every logged
 *     op's input count must be inside the list's [in_min, in_max];
 *   - each op has PyTorch golden cases: its FX file holds cases whose key is its value, and a test
 *     program reads that file;
 *   - losslab lists exactly the list's losses (its table is indexed by the list), and its PyTorch
 *     cases (tests/fixtures/losslab_cases.jsonl) hold every loss.
 * An op the list exempts (NOGC / NOFX) must say why; the reasons are printed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op_list.h"
#include "test_support.h"

#define SRC_DIR TG_FIXTURE_DIR "/../.."

typedef struct {
    const char *program, *filter, *why;
} gc_ref;
typedef struct {
    const char *file, *key, *value, *why;
} fx_ref;
typedef struct {
    const char *name, *file, *kind;
    int id, in_min, in_max;
    gc_ref gc;
    fx_ref fx;
} op_row;

#define GC(program, filter) {#program, filter, NULL}
#define NOGC(why) {NULL, NULL, why}
#define FX(file, key, value) {file, key, value, NULL}
#define NOFX(why) {NULL, NULL, NULL, why}
#define ROW(name, file, kind, lo, hi, gc, fx) {#name, #file, #kind, TG_OP_##name, lo, hi, gc, fx},
static const op_row OPS[] = {TG_OP_LIST(ROW)};
#define N_OPS ((int)(sizeof OPS / sizeof *OPS))

Test(op_list, ids_names_and_files)
{
    cr_expect_eq(N_OPS, TG_OP_COUNT - 1, "ids 1..%d", TG_OP_COUNT - 1);
    int losses = 0;
    for (int k = 0; k < N_OPS; k++) {
        const op_row *o = &OPS[k];
        cr_expect_eq(o->id, k + 1, "%s: id %d", o->name, o->id);
        for (int j = 0; j < k; j++) cr_expect_str_neq(OPS[j].name, o->name, "%s listed twice", o->name);
        cr_expect(o->in_min >= 1 && (o->in_max == -1 || o->in_max >= o->in_min), "%s: inputs %d..%d", o->name,
                  o->in_min, o->in_max);
        losses += !strcmp(o->kind, "LOSS");
        /* the one file with its descriptor */
        char path[512], def[160];
        snprintf(path, sizeof path, "%s/ops/%s.c", SRC_DIR, o->file);
        long n = 0;
        char *src = tgt_read_whole(path, &n);
        cr_assert_not_null(src, "%s: the list names ops/%s.c, which does not exist", o->name, o->file);
        snprintf(def, sizeof def, ", %s, ", o->name);
        bool found = false;
        for (const char *p = strstr(src, "TG_OP_DEFINE("); p && !found; p = strstr(p + 1, "TG_OP_DEFINE(")) {
            const char *end = strchr(p, ')'), *hit = strstr(p, def);
            found = hit && end && hit < end;
        }
        cr_expect(found, "%s: no TG_OP_DEFINE(..., %s, ...) in ops/%s.c", o->name, o->name, o->file);
        free(src);
    }
    cr_expect_eq(losses, TG_OP_N_LOSSES);
}

/* Runs one GC entry's tests with the gradcheck log on; returns the log (caller frees), or NULL.
 * BXFI_MAP is Criterion's own worker variable: the child program must not think it is a worker. */
static char *run_logged(const char *program, const char *filter)
{
    char dir[256], out[8192];
    tgt_make_tmpdir(dir, sizeof dir, "oplist");
    int rc = tgt_run_capturef(out, sizeof out,
                              "cd '%s' && unset BXFI_MAP && TG_GRADCHECK_LOG='%s/log' '%s/%s' --jobs 1 "
                              "--short-filename --filter '%s' > '%s/out' 2>&1; rc=$?; tail -n 40 '%s/out'; exit $rc",
                              dir, dir, TG_BIN_DIR, program, filter, dir, dir);
    cr_expect_eq(rc, 0, "%s --filter '%s' failed (status %d):\n%s", program, filter, rc, out);
    cr_expect(strstr(out, "Tested: 0 ") == NULL, "%s --filter '%s' ran no test:\n%s", program, filter, out);
    char path[300];
    snprintf(path, sizeof path, "%s/log", dir);
    long n = 0;
    char *log = tgt_read_whole(path, &n);
    tgt_remove_tree(dir);
    return rc == 0 ? log : (free(log), NULL);
}

/* Does the log have a line "name id n_in" for this op? Checks every logged listed op's input count. */
static bool log_has(const char *log, const char *name)
{
    bool found = false;
    const char *p = log;
    while (p && *p) {
        char op[64];
        int id, n_in;
        if (sscanf(p, "%63s %d %d", op, &id, &n_in) == 3) {
            if (!strcmp(op, name)) found = true;
            if (id > 0 && id < TG_OP_COUNT) {
                const op_row *o = &OPS[id - 1];
                cr_expect_str_eq(o->name, op, "logged id %d is %s in the list", id, o->name);
                cr_expect(n_in >= o->in_min && (o->in_max < 0 || n_in <= o->in_max),
                          "%s recorded %d inputs; the list says %d..%d", op, n_in, o->in_min, o->in_max);
            }
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return found;
}

Test(op_list, every_op_has_a_passing_gradient_check, .timeout = 900)
{
    bool done[TG_OP_COUNT] = {false};
    for (int k = 0; k < N_OPS; k++) {
        const op_row *o = &OPS[k];
        if (!o->gc.program) {
            cr_expect(o->gc.why && *o->gc.why, "%s: no gradient check and no reason", o->name);
            cr_log_info("%s: no gradient check: %s", o->name, o->gc.why ? o->gc.why : "");
            continue;
        }
        if (done[k]) continue;
        char *log = run_logged(o->gc.program, o->gc.filter);
        /* every op checked by the same tests is judged on this one run */
        for (int j = k; j < N_OPS; j++) {
            const op_row *q = &OPS[j];
            if (!q->gc.program || strcmp(q->gc.program, o->gc.program) || strcmp(q->gc.filter, o->gc.filter)) continue;
            done[j] = true;
            cr_expect(log && log_has(log, q->name),
                      "%s has no passing gradient check: %s --filter '%s' gradchecked no function that records it",
                      q->name, q->gc.program, q->gc.filter);
        }
        free(log);
    }
}

static bool case_matches(const cJSON *c, const char *key, const char *value)
{
    if (!key) return true;
    const cJSON *v = cJSON_GetObjectItem(c, key);
    if (!v) return false;
    if (cJSON_IsString(v)) return !strcmp(v->valuestring, value);
    if (cJSON_IsBool(v)) return !strcmp(cJSON_IsTrue(v) ? "true" : "false", value);
    if (cJSON_IsNumber(v)) return v->valuedouble == atof(value);
    return false;
}

/* Is the fixture file read by a test program (its name ends a string in tests/test_*.c or a tests/ header)? */
static bool read_by_a_test(const char *file)
{
    char out[4096];
    int rc = tgt_run_capturef(out, sizeof out, "grep -l -F '%s\"' '%s'/tests/test_*.c '%s'/tests/*.h", file, SRC_DIR,
                              SRC_DIR);
    return rc == 0 && out[0];
}

/* Lines of a JSONL fixture with "key": "value" (as Python's json.dumps writes it). */
static int jsonl_count(const char *file, const char *key, const char *value)
{
    char path[512], pat[160];
    snprintf(path, sizeof path, "%s/%s", TG_FIXTURE_DIR, file);
    snprintf(pat, sizeof pat, "\"%s\": \"%s\"", key, value);
    long n = 0;
    char *text = tgt_read_whole(path, &n);
    cr_assert_not_null(text, "cannot read %s", path);
    int count = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) count += strstr(line, pat) != NULL;
    free(text);
    return count;
}

Test(op_list, every_op_has_a_pytorch_fixture)
{
    for (int k = 0; k < N_OPS; k++) {
        const op_row *o = &OPS[k];
        if (!o->fx.file) {
            cr_expect(o->fx.why && strlen(o->fx.why) > 20, "%s: no PyTorch fixture and no reason", o->name);
            cr_log_info("%s: no PyTorch fixture: %s", o->name, o->fx.why ? o->fx.why : "");
            continue;
        }
        int n = 0;
        size_t len = strlen(o->fx.file);
        if (len > 6 && !strcmp(o->fx.file + len - 6, ".jsonl")) { /* one case a line (losslab's cases) */
            n = jsonl_count(o->fx.file, o->fx.key, o->fx.value);
        } else {
            cJSON *root = tgt_json_load(o->fx.file);
            const cJSON *cases = cJSON_GetObjectItem(root, "cases");
            cr_assert(cJSON_IsArray(cases), "%s: %s has no \"cases\" array", o->name, o->fx.file);
            for (const cJSON *c = cases->child; c; c = c->next) n += case_matches(c, o->fx.key, o->fx.value);
            cJSON_Delete(root);
        }
        cr_expect_gt(n, 0, "%s has no PyTorch fixture: no case of %s has %s = %s", o->name, o->fx.file,
                     o->fx.key ? o->fx.key : "(any)", o->fx.value ? o->fx.value : "");
        cr_expect(read_by_a_test(o->fx.file), "%s: no tests/test_*.c reads %s", o->name, o->fx.file);
    }
}

/* losslab's PyTorch cases (tests/gen_losslab_cases.py, read by test_losslab_fixtures) hold every loss too. */
Test(op_list, losslab_cases_hold_every_loss)
{
    for (int k = 0; k < N_OPS; k++)
        if (!strcmp(OPS[k].kind, "LOSS"))
            cr_expect_gt(jsonl_count("losslab_cases.jsonl", "loss", OPS[k].name), 0,
                         "%s: no case in losslab_cases.jsonl (add one to tests/gen_losslab_cases.py's make)",
                         OPS[k].name);
}

Test(op_list, losslab_lists_every_loss)
{
    static char out[65536];
    int rc = tgt_run_capturef(out, sizeof out, "'%s/losslab' --list", TG_BIN_DIR);
    cr_assert_eq(rc, 0, "losslab --list: %s", out);
    int listed = 0;
    for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (*p != ' ' && strchr(p, '(') && strchr(p, '(') < strchr(p, '\n')) listed++;
    cr_expect_eq(listed, TG_OP_N_LOSSES, "losslab lists %d losses, the list has %d:\n%s", listed, TG_OP_N_LOSSES, out);
    for (int k = 0; k < N_OPS; k++) {
        if (strcmp(OPS[k].kind, "LOSS")) continue;
        char head[96];
        snprintf(head, sizeof head, "\n%s(", OPS[k].name);
        bool listed_here = strstr(out, head) || !strncmp(out, head + 1, strlen(head + 1));
        cr_expect(listed_here, "losslab --list lacks %s", OPS[k].name);
    }
}
