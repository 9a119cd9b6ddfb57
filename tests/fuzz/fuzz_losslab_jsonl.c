/* libFuzzer target for losslab's --jsonl reader (clang only; scripts/fuzz.sh builds and runs it).
 * The input is split into lines and each goes through ll_jsonl_line, as `losslab --jsonl` does
 * with stdin. Every line must give exactly one result line that parses back as a JSON object with
 * an "id" and either an "error" (non-empty) or a "loss"; an id given as a JSON number comes back
 * as the same text. With TG_FUZZ_SEED_DIR set, initialisation first writes valid cases there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "losslab.h"

static const char *const SEEDS[] = {
    "{\"id\": 1, \"loss\": \"cross_entropy\", \"input\": [[1, 2, 0.5], [0, -1, 3]], \"target\": [1, 2], "
    "\"options\": {\"reduction\": \"sum\", \"label_smoothing\": 0.1, \"weight\": [1, 2, 3]}}\n",
    "{\"id\": \"b\", \"loss\": \"binary_cross_entropy_with_logits\", \"input\": [NaN, 2, -Infinity], "
    "\"target\": [0, 1, 1], \"options\": {\"pos_weight\": [2, 2, 2]}}\n",
    "{\"id\": 12345678901234567890, \"loss\": \"nll_loss\", \"input\": [[-1, -2], [-0.5, -3]], "
    "\"target\": [0, 255], \"options\": {\"ignore_index\": 255}}\n",
    "{\"id\": [1, {\"x\": 2}], \"loss\": \"margin_ranking_loss\", \"input1\": [1, 2], \"input2\": [2, 1], "
    "\"target\": [1, -1], \"options\": {\"margin\": 0.5}}\n",
    "{\"id\": 5, \"loss\": \"ctc_loss\", \"log_probs\": [[[-1, -2, -1.5]], [[-0.5, -2, -1]]], \"targets\": [[1]], "
    "\"input_lengths\": [2], \"target_lengths\": [1], \"options\": {\"zero_infinity\": true}}\n"
    "{\"id\": 6, \"loss\": \"triplet_margin_loss\", \"anchor\": [[1, 2]], \"positive\": [[1, 3]], "
    "\"negative\": [[0, 0]], \"options\": {\"swap\": true, \"p\": 1}}\n",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("TG_FUZZ_SEED_DIR");
    for (size_t i = 0; dir && i < sizeof SEEDS / sizeof *SEEDS; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/case_%zu.jsonl", dir, i);
        FILE *f = fopen(path, "w");
        if (!f) continue;
        fputs(SEEDS[i], f);
        fclose(f);
    }
    return 0;
}

/* Stops the fuzzer with the reason, the line and the result. */
#define CHECK(cond, why)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz_losslab_jsonl: %s\nline:   %s\nresult: %s\n", why, line, out); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static void check_result(const char *line, const char *out, size_t len)
{
    CHECK(len > 0 && out[len - 1] == '\n' && memchr(out, '\n', len) == out + len - 1, "not one line");
    cJSON *o = ll_json_parse(out);
    CHECK(cJSON_IsObject(o), "the result is not a JSON object");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    CHECK(id, "no id");
    CHECK(err ? cJSON_IsString(err) && err->valuestring[0] : loss != NULL, "neither a loss nor an error message");
    cJSON *in = ll_json_parse(line);
    const cJSON *in_id = cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "id") : NULL;
    const char *raw;
    size_t n;
    if (cJSON_IsNumber(in_id)) { /* the same number; an integer as JSON writes it comes back digit for digit */
        CHECK(cJSON_IsNumber(id) && (id->valuedouble == in_id->valuedouble || in_id->valuedouble != in_id->valuedouble),
              "a numeric id comes back as another number");
        if (ll_json_raw_member(line, "id", &raw, &n)) {
            size_t i = raw[0] == '-';
            bool integer = i < n && (raw[i] != '0' || n == i + 1);
            for (; i < n; i++) integer &= raw[i] >= '0' && raw[i] <= '9';
            CHECK(!integer || (strncmp(out, "{\"id\": ", 7) == 0 && strncmp(out + 7, raw, n) == 0),
                  "an integer id does not come back as written");
        }
    }
    cJSON_Delete(in);
    cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (*p) {
            ll_buf b = {0};
            ll_jsonl_line(line, &b);
            check_result(line, b.s, b.len);
            ll_buf_free(&b);
            tg_tape_clear();
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return 0;
}
