/* losslab: the forward value and the gradient of any loss, for people studying
 * backprop through losses.
 *
 *   losslab NAME --input '[[...]]' --target '[...]' [--OPTION VALUE ...] [--json]
 *   losslab --jsonl < cases.jsonl      one JSON case per line -> one result line per case
 *   losslab --list | --help
 *   losslab plot --losses A,B --range -8:8 --target 1 --out curves.png   (plot.c)
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cli.h"
#include "losslab.h"
#include "plot.h"

static const char *usage_text =
    "usage:\n"
    "  losslab NAME --input JSON --target JSON [--OPTION VALUE ...] [--json]\n"
    "  losslab --jsonl          read cases from stdin, one JSON object per line\n"
    "  losslab --list           the losses, their tensor arguments and options with defaults\n"
    "  losslab plot --losses A,B,... --out curves.png   loss and gradient curves (plot --help)\n"
    "  losslab --help\n"
    "\n"
    "NAME and argument names are torch.nn.functional's (cross_entropy, nll_loss, ...; input, target,\n"
    "input1, input2, anchor, positive, negative, var, log_probs, targets, input_lengths,\n"
    "target_lengths); options are PyTorch's keywords, with '-' or '_' (--ignore-index 255,\n"
    "--label-smoothing 0.1, --reduction sum, --weight '[1,9]', --swap, --log-input false).\n"
    "Tensors are nested JSON arrays; NaN, Infinity and -Infinity are accepted.\n"
    "Output: the inputs, probabilities (sigmoid/softmax/log_softmax where the loss has them),\n"
    "the per-element loss, the reduced loss and the gradient of the loss (of its sum if it is\n"
    "not a scalar) with respect to every float input.\n"
    "\n"
    "A --jsonl case: {\"id\": 1, \"loss\": \"cross_entropy\", \"input\": [[1,2]], \"target\": [1],\n"
    "                 \"options\": {\"reduction\": \"sum\"}}\n"
    "result:        {\"id\": 1, \"loss\": 0.313261688, \"grad\": {\"input\": [[0.268941432, -0.268941432]]}}\n"
    "or             {\"id\": 1, \"error\": \"...\"}\n";

static bool is_bool_word(const char *s)
{
    return !strcmp(s, "true") || !strcmp(s, "false") || !strcmp(s, "True") || !strcmp(s, "False") ||
           !strcmp(s, "1") || !strcmp(s, "0");
}

/* The CLI arguments as a JSON case; NULL and a message on a usage error. */
static cJSON *case_from_argv(int argc, char **argv, bool *json_out, char *err, size_t n)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *opts = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "loss", argv[1]);
    cJSON_AddItemToObject(obj, "options", opts);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            snprintf(err, n, "%s: expected --ARGUMENT or --OPTION%s%s", a, i > 2 ? " after " : "", i > 2 ? argv[i - 1] : "");
            goto bad;
        }
        char key[64];
        snprintf(key, sizeof key, "%s", a + 2);
        for (char *p = key; *p; p++)
            if (*p == '-') *p = '_';
        if (!strcmp(key, "json")) {
            *json_out = true;
            continue;
        }
        int id = ll_find_opt(key);
        cJSON *value;
        if (id >= 0 && ll_opt_infos[id].kind == LL_VAL_BOOL && !(i + 1 < argc && is_bool_word(argv[i + 1]))) {
            value = cJSON_CreateTrue(); /* a bare flag */
        } else {
            if (i + 1 >= argc) {
                snprintf(err, n, "--%s: missing value", a + 2);
                goto bad;
            }
            const char *v = argv[++i];
            if (!strcmp(v, "True")) v = "true";
            if (!strcmp(v, "False")) v = "false";
            value = ll_json_parse(v);
            if (!value) value = cJSON_CreateString(v); /* 'sum', 'None', or malformed (reported later) */
        }
        cJSON *dest = ll_is_any_arg_name(key) ? obj : opts;
        if (cJSON_GetObjectItemCaseSensitive(dest, key)) {
            cJSON_Delete(value);
            snprintf(err, n, "--%s: given twice", a + 2);
            goto bad;
        }
        cJSON_AddItemToObject(dest, key, value);
    }
    return obj;
bad:
    cJSON_Delete(obj);
    return NULL;
}

/* Cases from stdin, one per line (jsonl.c); stdin must be a file or a pipe, never a directory. */
static int run_jsonl(void)
{
    struct stat sb;
    if (fstat(STDIN_FILENO, &sb) == 0 && (S_ISDIR(sb.st_mode) || S_ISBLK(sb.st_mode))) {
        fprintf(stderr, "losslab: --jsonl reads cases from stdin, which is %s\n", tg_file_kind((unsigned)sb.st_mode));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        const char *p = line;
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) continue; /* blank lines are not cases */
        ll_buf b = {0};
        ll_jsonl_line(line, &b);
        fputs(b.s, stdout);
        fflush(stdout);
        ll_buf_free(&b);
    }
    int failed = ferror(stdin);
    if (failed) fprintf(stderr, "losslab: cannot read stdin: %s\n", strerror(errno));
    free(line);
    return failed ? 1 : 0;
}

static int run_single(int argc, char **argv)
{
    char err[LL_ERR_LEN] = "";
    bool json = false;
    cJSON *obj = case_from_argv(argc, argv, &json, err, sizeof err);
    if (!obj) {
        fprintf(stderr, "losslab: %s\n%s", err, usage_text);
        return 2;
    }
    ll_case c;
    ll_result r = {0};
    ll_buf b = {0};
    int status = 0;
    ll_buf_printf(&b, "{");
    if (!ll_run_case(obj, true, &b, &c, &r, err, sizeof err)) {
        fprintf(stderr, "losslab: %s\n", err);
        if (json) {
            b.len = 1;
            ll_buf_printf(&b, "\"error\": ");
            ll_buf_str(&b, err);
            printf("%s}\n", b.s);
        }
        status = 1;
    } else if (json) {
        printf("%s}\n", b.s);
    } else {
        ll_print_breakdown(stdout, &c, &r);
    }
    ll_buf_free(&b);
    ll_result_free(&r);
    ll_case_free(&c);
    cJSON_Delete(obj);
    return status;
}

int main(int argc, char **argv)
{
    cli_ignore_file_size_signal(); /* past ulimit -f: EFBIG and a message, not a silent kill */
    if (argc < 2) {
        fprintf(stderr, "losslab: give a loss name, --jsonl, --list or --help\n%s", usage_text);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "plot")) return ll_plot_main(argc - 1, argv + 1); /* plot.c */
    if (!strcmp(argv[1], "--list")) {
        ll_print_list(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--jsonl")) {
        if (argc > 2) {
            fprintf(stderr, "losslab: --jsonl takes no other arguments (cases come from stdin)\n");
            return 2;
        }
        return run_jsonl();
    }
    if (argv[1][0] == '-') {
        fprintf(stderr, "losslab: unknown flag %s\n%s", argv[1], usage_text);
        return 2;
    }
    return run_single(argc, argv);
}
