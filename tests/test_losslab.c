/* losslab end to end: runs the built binary (TG_BIN_DIR "/losslab") on the
 * article's worked examples, --json, --jsonl (with bad cases in the middle),
 * every error path and --list (every loss of ops/op_list.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ops/op_list.h"
#include "test_support.h"

#define LOSSLAB TG_BIN_DIR "/losslab"

typedef struct {
    char *out; /* stdout and stderr together */
    int status;
} run_result;

/* Runs `losslab args` (a shell-quoted string) with stdin from `input` (or none). */
static run_result run(const char *args, const char *input)
{
    char tmp[] = "/tmp/losslab_test_XXXXXX";
    int fd = mkstemp(tmp);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    if (input) fputs(input, f);
    fclose(f);
    size_t need = strlen(args) + strlen(tmp) + strlen(LOSSLAB) + 32;
    char *cmd = malloc(need);
    snprintf(cmd, need, "%s %s < %s 2>&1", LOSSLAB, args, tmp);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen failed: %s", cmd);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += k;
        if (cap - len < 2) out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    int st = pclose(p);
    remove(tmp);
    free(cmd);
    /* A sanitizer report in the child is a failure here too. */
    cr_expect(!strstr(out, "Sanitizer") && !strstr(out, "runtime error"), "sanitizer report:\n%s", out);
    return (run_result){out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

/* The number printed after `key` (e.g. "loss (reduction='mean') = "). */
static double number_after(const char *out, const char *key)
{
    const char *p = strstr(out, key);
    cr_assert(p, "'%s' not in output:\n%s", key, out);
    return strtod(p + strlen(key), NULL);
}

static double json_loss(const char *args)
{
    run_result r = run(args, NULL);
    cr_assert_eq(r.status, 0, "%s:\n%s", args, r.out);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "not JSON: %s", r.out);
    double v = cJSON_GetObjectItem(j, "loss")->valuedouble;
    cJSON_Delete(j);
    free(r.out);
    return v;
}

#define CE_IN "--input '[[[1,2],[3,5]],[[4,7],[4,6]]]' --target '[[0,0],[1,1]]'"

Test(losslab, article_cross_entropy)
{
    run_result r = run("cross_entropy " CE_IN, NULL);
    cr_assert_eq(r.status, 0, "%s", r.out);
    cr_expect_float_eq(number_after(r.out, "loss (reduction='mean') = "), 1.7955, 1e-4);
    cr_expect(strstr(r.out, "softmax(input, dim=1)") && strstr(r.out, "log_softmax(input, dim=1)"), "%s", r.out);
    cr_expect(strstr(r.out, "per-element loss") && strstr(r.out, "d loss / d input"), "%s", r.out);
    free(r.out);
    cr_expect_float_eq(json_loss("cross_entropy " CE_IN " --weight '[1,9]' --json"), 1.1617, 1e-4);
}

Test(losslab, article_nll_and_bce)
{
    /* -6 is the mean of -3 and -9; the sum is -12. */
    cr_expect_float_eq(json_loss("nll_loss --input '[[2,3,1],[3,7,9]]' --target '[1,2]' --json"), -6.0, 1e-6);
    cr_expect_float_eq(json_loss("nll_loss --input '[[2,3,1],[3,7,9]]' --target '[1,2]' --reduction sum --json"),
                       -12.0, 1e-6);
    cr_expect_float_eq(json_loss("binary_cross_entropy --input '[[0.6,0.1],[0.3,0.8]]' --target '[[0,1],[1,0]]' "
                                 "--json"), 1.5081, 1e-4);
    cr_expect_float_eq(json_loss("binary_cross_entropy --input '[0.95,0.73,0.05]' --target '[1,1,0]' "
                                 "--reduction sum --json"), 0.4178, 1e-3);
}

Test(losslab, json_has_gradient_and_probabilities)
{
    run_result r = run("binary_cross_entropy_with_logits --input '[[2,-1]]' --target '[[1,0]]' --reduction sum --json",
                       NULL);
    cr_assert_eq(r.status, 0, "%s", r.out);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "%s", r.out);
    const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "grad"), "input");
    cr_assert(cJSON_IsArray(g));
    double g0 = cJSON_GetArrayItem(cJSON_GetArrayItem(g, 0), 0)->valuedouble;
    double g1 = cJSON_GetArrayItem(cJSON_GetArrayItem(g, 0), 1)->valuedouble;
    cr_expect_float_eq(g0, 1 / (1 + exp(-2.0)) - 1, 1e-6); /* sigmoid(x) - y */
    cr_expect_float_eq(g1, 1 / (1 + exp(1.0)), 1e-6);
    cr_expect(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "probabilities"), "sigmoid(input)"));
    cJSON_Delete(j);
    free(r.out);
}

Test(losslab, jsonl_one_line_per_case_in_order)
{
    const char *in =
        "{\"id\": 1, \"loss\": \"nll_loss\", \"input\": [[2,3,1],[3,7,9]], \"target\": [1,2]}\n"
        "{\"id\": 2, \"loss\": \"cross_entropy\", \"input\": [[1,2]], \"target\": [7]}\n"
        "this is not json\n"
        "\n"
        "{\"id\": \"four\", \"loss\": \"mse_loss\", \"input\": [NaN, 1], \"target\": [0, -Infinity],"
        " \"options\": {\"reduction\": \"none\"}}\n"
        "{\"id\": 5, \"loss\": \"cross_entropy\", \"input\": [[[1,2],[3,5]],[[4,7],[4,6]]],"
        " \"target\": [[0,0],[1,1]], \"options\": {\"weight\": [1,9]}}\n";
    run_result r = run("--jsonl", in);
    cr_assert_eq(r.status, 0, "%s", r.out);
    char *save = NULL, *line = strtok_r(r.out, "\n", &save);
    const char *ids[] = {"1", "2", "null", "\"four\"", "5"};
    int n = 0;
    for (; line; line = strtok_r(NULL, "\n", &save), n++) {
        cr_assert_lt(n, 5, "extra line: %s", line);
        char want[32];
        snprintf(want, sizeof want, "{\"id\": %s,", ids[n]);
        cr_expect(strncmp(line, want, strlen(want)) == 0, "line %d: %s", n, line);
        if (n == 0) cr_expect(strstr(line, "\"loss\": -6,"), "%s", line);
        if (n == 1) cr_expect(strstr(line, "\"error\"") && strstr(line, "Target 7"), "%s", line);
        if (n == 2) cr_expect(strstr(line, "\"error\"") && strstr(line, "malformed JSON"), "%s", line);
        if (n == 3) cr_expect(strstr(line, "\"loss\": [NaN, Infinity]"), "%s", line);
        if (n == 4) cr_expect(strstr(line, "\"loss\": 1.1616"), "%s", line);
    }
    cr_expect_eq(n, 5);
    free(r.out);
}

/* Each bad input: non-zero exit and a message naming the argument. */
Test(losslab, errors_name_the_argument)
{
    struct { const char *args, *needle; } cases[] = {
        {"cross_entropy --input '[[1,2]]' --target '[2]'", "Target 2"},
        {"cross_entropy --input '[[1,2]]' --target '[1]' --weight '[1,2,3]'", "weight"},
        {"cross_entropy --input '[[1,2],[3]]' --target '[1,0]'", "input: ragged"},
        {"nll_loss --input '[[1,2]]' --target '[0.5]'", "target: expected integer"},
        {"mse_loss --input '[1,2]' --target '[1]'", "target shape"},
        {"mse_loss --input '[1,2]' --target '[1,2]' --margin 1", "options.margin"},
        {"mse_loss --input '[1,2]' --target '[1,2]' --bogus 1", "options.bogus: unknown option"},
        {"mse_loss --input '[1,2' --target '[1,2]'", "input: not a number"},
        {"mse_loss --input '[1,2]'", "target: missing"},
        {"mse_loss --input '[1,2]' --target '[1,2]' --reduction avg", "options.reduction"},
        {"mse_loss --input '[1,2]' --target '[1,2]' --input2 '[1]'", "input2: unknown argument"},
        {"binary_cross_entropy --input '[1.5]' --target '[1]'", "input"},
        {"no_such_loss --input 1", "unknown loss 'no_such_loss'"},
        {"triplet_margin_loss --anchor '[[1]]' --positive '[[1]]' --negative '[[1]]' --p 0", "p must be"},
        {"multi_margin_loss --input '[[1,2]]' --target '[1]' --p 3", "p must be 1 or 2"},
        {"ctc_loss --log_probs '[[[0,0]]]' --targets '[[1]]' --input_lengths '[1]' --target_lengths '[1]' --blank 5",
         "blank"},
        {"huber_loss --input '[1]' --target '[1]' --delta x", "options.delta"},
        {"kl_div --input '[1]' --target '[1]' --log-target maybe", "maybe: expected --ARGUMENT or --OPTION after --log-target"},
        {"mse_loss --input '[1]' --target '[1]' --reduction", "--reduction: missing value"},
        {"--frobnicate", "unknown flag"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_result r = run(cases[i].args, NULL);
        cr_expect_neq(r.status, 0, "%s: exit 0:\n%s", cases[i].args, r.out);
        cr_expect(strstr(r.out, cases[i].needle), "%s: no '%s' in:\n%s", cases[i].args, cases[i].needle, r.out);
        cr_expect(r.status == 1 || r.status == 2, "%s: exit %d (crash?)", cases[i].args, r.status);
        free(r.out);
    }
}

Test(losslab, list_mentions_every_loss)
{
    run_result r = run("--list", NULL);
    cr_assert_eq(r.status, 0);
#define LOSS_NAME_(name, file, kind, ...) TG_OP_IF_LOSS(kind, #name "(", )
    const char *names[] = {TG_OP_LIST(LOSS_NAME_) "ignore_index=-100", "label_smoothing=0", "reduction=none"};
#undef LOSS_NAME_
    cr_expect_eq(sizeof names / sizeof names[0], TG_OP_N_LOSSES + 3);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_expect(strstr(r.out, names[i]), "--list lacks %s", names[i]);
    free(r.out);
    run_result h = run("--help", NULL);
    cr_expect_eq(h.status, 0);
    cr_expect(strstr(h.out, "--jsonl"));
    free(h.out);
}
