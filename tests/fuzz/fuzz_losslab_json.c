/* libFuzzer target for losslab's single-case JSON input (clang only; scripts/fuzz.sh builds and runs
 * it): the text is read as `losslab NAME --ARG JSON ...` reads each value (ll_json_parse, which
 * accepts bare NaN/Infinity) and, when it is an object, run as one case with every detail: the
 * readable breakdown and the --json result, which must parse back. With TG_FUZZ_SEED_DIR set,
 * initialisation first writes valid cases there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "losslab.h"

static const char *const SEEDS[] = {
    "{\"loss\": \"cross_entropy\", \"input\": [[[1, 2], [0.5, 0]], [[0, -1], [3, 1]]], \"target\": [[[0.2, 0.8], "
    "[1, 0]], [[0.5, 0.5], [0, 1]]], \"options\": {\"reduction\": \"mean\"}}",
    "{\"loss\": \"binary_cross_entropy\", \"input\": [0.1, 0.9, 1], \"target\": [0, 1, 0.5], "
    "\"options\": {\"weight\": [1, 2, Infinity]}}",
    "{\"loss\": \"smooth_l1_loss\", \"input\": [[1, -2.5e3]], \"target\": [[0.5, -Infinity]], "
    "\"options\": {\"beta\": 0.5, \"reduction\": \"none\"}}",
    "{\"loss\": \"poisson_nll_loss\", \"input\": [0.5, 2], \"target\": [1, 3], "
    "\"options\": {\"log_input\": false, \"full\": true, \"eps\": 1e-8}}",
    "{\"loss\": \"kl_div\", \"input\": [[-1, -2]], \"target\": [[-0.5, -1]], \"options\": {\"log_target\": true, "
    "\"reduction\": \"batchmean\"}}",
    "[[1, 2, NaN], [-Infinity, 0, 1e-45]]",
};

static FILE *sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sink = fopen("/dev/null", "w");
    const char *dir = getenv("TG_FUZZ_SEED_DIR");
    for (size_t i = 0; dir && i < sizeof SEEDS / sizeof *SEEDS; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/case_%zu.json", dir, i);
        FILE *f = fopen(path, "w");
        if (!f) continue;
        fputs(SEEDS[i], f);
        fclose(f);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    cJSON *obj = ll_json_parse(text);
    free(text);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return 0;
    }
    char err[LL_ERR_LEN] = "";
    ll_case c;
    ll_result r = {0};
    ll_buf b = {0};
    ll_buf_printf(&b, "{");
    if (ll_run_case(obj, true, &b, &c, &r, err, sizeof err)) {
        ll_buf_printf(&b, "}");
        cJSON *back = ll_json_parse(b.s);
        if (!cJSON_IsObject(back) || !cJSON_GetObjectItemCaseSensitive(back, "loss")) abort();
        cJSON_Delete(back);
        ll_print_breakdown(sink, &c, &r);
    } else if (!err[0]) {
        abort(); /* a failure must say what it is */
    }
    tg_tape_clear();
    ll_buf_free(&b);
    ll_result_free(&r);
    ll_case_free(&c);
    cJSON_Delete(obj);
    return 0;
}
