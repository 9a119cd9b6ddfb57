/* examples/losslab (build/bin/losslab): its --jsonl answers against PyTorch's on
 * committed cases (tests/gen_losslab_cases.py -> tests/fixtures/losslab_{cases,expected}.jsonl,
 * every loss of ops/op_list.h). The CLI's other behaviour is tested in test_losslab.c.
 * Tolerances: loss 1e-5 relative + 1e-5 absolute; gradients 1e-4 relative + 1e-5 absolute. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
#include "ops/op_list.h"
#include "test_support.h"

#define LOSSLAB TG_BIN_DIR "/losslab"

/* Quotes bare NaN / Infinity / -Infinity (outside strings) so cJSON can read the line. */
static char *quote_nonfinite(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *w = o;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' && (i == 0 || s[i - 1] != '\\')) in_str = !in_str;
        const char *tok = NULL;
        if (!in_str) {
            if (!strncmp(s + i, "-Infinity", 9)) tok = "-Infinity";
            else if (!strncmp(s + i, "Infinity", 8)) tok = "Infinity";
            else if (!strncmp(s + i, "NaN", 3)) tok = "NaN";
        }
        if (tok) {
            w += sprintf(w, "\"%s\"", tok);
            i += strlen(tok) - 1;
        } else *w++ = s[i];
    }
    *w = 0;
    return o;
}

static cJSON *parse_line(const char *line)
{
    char *q = quote_nonfinite(line);
    cJSON *j = cJSON_Parse(q);
    free(q);
    return j;
}

static void compare(const char *id, const char *what, const cJSON *got, const cJSON *want, double rtol, double atol)
{
    cr_assert_not_null(got, "%s: %s missing", id, what);
    tg_tensor *g = tgt_json_tensor(got, false), *w = tgt_json_tensor(want, false);
    char name[160];
    snprintf(name, sizeof name, "%s %s", id, what);
    cr_expect_eq(g->numel, w->numel, "%s: %lld values, expected %lld", name, (long long)g->numel, (long long)w->numel);
    if (g->numel == w->numel) tgt_expect_close(name, g->data, w->data, w->numel, rtol, atol);
    tg_tensor_free(g);
    tg_tensor_free(w);
}

/* Runs losslab --jsonl on a file; returns its output lines (caller frees each and the array). */
static char **run_jsonl(const char *path, int *n_lines)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --jsonl < %s", LOSSLAB, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s (build the losslab target)", LOSSLAB);
    char **lines = NULL, *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, p) > 0) {
        lines = realloc(lines, sizeof *lines * (size_t)(n + 1));
        lines[n++] = strdup(line);
    }
    free(line);
    cr_assert_eq(pclose(p), 0, "%s exited with an error (is it built?)", LOSSLAB);
    *n_lines = n;
    return lines;
}

Test(losslab_fixtures, jsonl_agrees_with_pytorch_on_every_loss)
{
    int n = 0;
    char **got = run_jsonl(TG_FIXTURE_DIR "/losslab_cases.jsonl", &n);
    FILE *f = fopen(TG_FIXTURE_DIR "/losslab_expected.jsonl", "r");
    cr_assert_not_null(f);
    char *line = NULL;
    size_t cap = 0;
    int k = 0, losses_seen = 0;
    char last_loss[64] = "";
    while (getline(&line, &cap, f) > 0) {
        cr_assert_lt(k, n, "losslab gave %d lines, fewer than the cases", n);
        cJSON *w = parse_line(line), *g = parse_line(got[k]);
        cr_assert(w && g, "line %d does not parse: %s", k, got[k]);
        const char *id = cJSON_GetObjectItem(w, "id")->valuestring;
        cr_expect_str_eq(cJSON_GetObjectItem(g, "id")->valuestring, id);
        const cJSON *err = cJSON_GetObjectItem(g, "error");
        cr_expect_null(err, "%s: %s", id, err ? err->valuestring : "");
        if (!err) {
            compare(id, "loss", cJSON_GetObjectItem(g, "loss"), cJSON_GetObjectItem(w, "loss"), 1e-5, 1e-5);
            const cJSON *gg = cJSON_GetObjectItem(g, "grad");
            for (const cJSON *e = cJSON_GetObjectItem(w, "grad")->child; e; e = e->next)
                compare(id, e->string, cJSON_GetObjectItem(gg, e->string), e, 1e-4, 1e-5);
            cr_expect_eq(cJSON_GetArraySize(gg), cJSON_GetArraySize(cJSON_GetObjectItem(w, "grad")), "%s: gradient keys", id);
        }
        if (strncmp(id, last_loss, strcspn(id, "-")) || strlen(last_loss) != strcspn(id, "-")) {
            snprintf(last_loss, sizeof last_loss, "%.*s", (int)strcspn(id, "-"), id);
            losses_seen++;
        }
        cJSON_Delete(w);
        cJSON_Delete(g);
        free(got[k++]);
    }
    cr_expect_eq(k, n, "losslab gave %d lines for %d cases", n, k);
    cr_expect_eq(losses_seen, TG_OP_N_LOSSES, "fixture covers %d losses, the op list has %d", losses_seen,
                 TG_OP_N_LOSSES);
    free(line);
    free(got);
    fclose(f);
}

