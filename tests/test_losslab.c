/* examples/losslab (build/bin/losslab): its --jsonl answers against PyTorch's
 * (tests/gen_losslab_cases.py -> tests/fixtures/losslab_{cases,expected}.jsonl, 22 losses),
 * error lines for bad cases without stopping the batch, and the single-case CLI's exit status.
 * Tolerances: loss 1e-5 relative + 1e-5 absolute; gradients 1e-4 relative + 1e-5 absolute. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
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

Test(losslab, jsonl_agrees_with_pytorch_on_every_loss)
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
    cr_expect_eq(losses_seen, 22, "fixture covers %d losses", losses_seen);
    free(line);
    free(got);
    fclose(f);
}

Test(losslab, bad_cases_get_error_lines_and_the_batch_goes_on)
{
    const char *cases[][2] = {
        {"{\"id\": 1, \"loss\": \"no_such_loss\", \"input\": [1]}", "unknown loss 'no_such_loss'"},
        {"{\"id\": 2, \"loss\": \"mse_loss\", \"input\": [1, 2], \"target\": [1, 2], \"options\": {\"betta\": 1}}",
         "unknown option 'betta'"},
        {"{\"id\": 3, \"loss\": \"cross_entro", "malformed JSON"},
        {"{\"id\": 4, \"loss\": \"cross_entropy\", \"input\": [[1, 2, 3]], \"target\": [3]}", "Target 3 is out of bounds"},
        {"{\"id\": 5, \"loss\": \"binary_cross_entropy\", \"input\": [1.5], \"target\": [1]}", "between 0 and 1"},
        {"{\"id\": 6, \"loss\": \"cross_entropy\", \"input\": [[1, 2, 3]], \"target\": [0], \"options\": {\"weight\": [1, 2]}}",
         "weight must have shape (3)"},
        {"{\"id\": 7, \"loss\": \"mse_loss\", \"input\": [1, 2]}", "missing tensor argument 'target'"},
        {"{\"id\": 8, \"loss\": \"mse_loss\", \"input\": [1, 2], \"target\": [1, 2, 3]}", "must equal input shape"},
        {"{\"id\": 9, \"loss\": \"mse_loss\", \"input\": [[1, 2], [3]], \"target\": [1, 2]}", "nested arrays of equal length"},
        {"{\"id\": 10, \"loss\": \"mse_loss\", \"input\": [1], \"target\": [1], \"options\": {\"reduction\": \"avg\"}}",
         "reduction must be"},
        {"{\"id\": 11, \"loss\": \"cross_entropy\", \"input\": [[1, 2]], \"target\": [0], \"options\": {\"label_smoothing\": 2}}",
         "label_smoothing must be in [0, 1]"},
        {"{\"id\": 12, \"loss\": \"mse_loss\", \"input\": [1, 2], \"target\": [1, 3], \"options\": {\"reduction\": \"sum\"}}", NULL},
    };
    int nc = sizeof cases / sizeof *cases;
    char path[] = "/tmp/tg_losslab_badXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < nc; i++) fprintf(f, "%s\n\n", cases[i][0]); /* blank lines are skipped */
    fclose(f);
    int n = 0;
    char **got = run_jsonl(path, &n);
    remove(path);
    cr_assert_eq(n, nc, "%d result lines for %d cases", n, nc);
    for (int i = 0; i < nc; i++) {
        cJSON *g = parse_line(got[i]);
        cr_assert_not_null(g, "line %d: %s", i, got[i]);
        const cJSON *err = cJSON_GetObjectItem(g, "error");
        if (cases[i][1]) {
            cr_expect(err && strstr(err->valuestring, cases[i][1]), "case %d: %s lacks \"%s\"", i + 1, got[i], cases[i][1]);
            if (i != 2) cr_expect_eq(cJSON_GetObjectItem(g, "id")->valueint, i + 1);
        } else {
            cr_expect_null(err, "case %d: %s", i + 1, got[i]);
            cr_expect_float_eq(cJSON_GetObjectItem(g, "loss")->valuedouble, 1.0, 1e-6);
        }
        cJSON_Delete(g);
        free(got[i]);
    }
    free(got);
}

static int run_status(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", LOSSLAB, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(losslab, single_case_cli_exit_status_and_breakdown)
{
    cr_expect_eq(run_status("cross_entropy --input '[[1,2,3]]' --target '[2]' --label-smoothing 0.1"), 0);
    cr_expect_eq(run_status("cross_entropy --input '[[1,2,3]]' --target '[7]'"), 1);
    cr_expect_eq(run_status("binary_cross_entropy --input '[2]' --target '[1]'"), 1);
    cr_expect_eq(run_status("no_such_loss --input '[1]'"), 1);
    cr_expect_eq(run_status("mse_loss --input '[1]' --target '[1]' --bogus 3"), 1);
    cr_expect_eq(run_status("mse_loss stray"), 2);
    cr_expect_eq(run_status("--list"), 0);
    /* the breakdown names the intermediate probabilities and the gradient; --json gives one object */
    FILE *p = popen(LOSSLAB " cross_entropy --input '[[3,1,-3]]' --target '[0]'", "r");
    char buf[8192];
    size_t got = fread(buf, 1, sizeof buf - 1, p);
    buf[got] = 0;
    pclose(p);
    cr_expect(strstr(buf, "softmax(input)") && strstr(buf, "0.87") && strstr(buf, "d sum(loss) / d input"), "%s", buf);
    p = popen(LOSSLAB " nll_loss --input '[[2,3,1],[3,7,9]]' --target '[1,2]' --json", "r");
    got = fread(buf, 1, sizeof buf - 1, p);
    buf[got] = 0;
    pclose(p);
    cJSON *j = parse_line(buf);
    cr_assert_not_null(j, "%s", buf);
    cr_expect_float_eq(cJSON_GetObjectItem(j, "loss")->valuedouble, -6.0, 1e-6); /* the article's NLL, 'mean' */
    cJSON_Delete(j);
    p = popen(LOSSLAB " --list", "r");
    got = fread(buf, 1, sizeof buf - 1, p);
    buf[got] = 0;
    pclose(p);
    cr_expect(strstr(buf, "ignore_index=-100") && strstr(buf, "ctc_loss") && strstr(buf, "dice_loss"), "%s", buf);
}
