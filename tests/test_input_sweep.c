/* Findings of the bad-input sweep (issue 13, items 18, 20, 21 and the IDX fuzzer's finding), each
 * on small inputs made here: the error message formatted from the previous one, the IDX message
 * for an absurd count, an IDX header that announces more than the file holds, losslab's ids. */
#include <zlib.h>

#include "core/core_internal.h"
#include "data_test_util.h"
#include "test_support.h"

TestSuite(sweep, .init = tdu_setup, .fini = tdu_teardown);

/* core/tape.c formats "...; earlier error: %s" with tg_last_error() as the argument: the message
 * buffer was formatted into itself (undefined behaviour; garbled as "tg_backward: the output is
 * NULL; earlier error: tg_backward: the output is NULL; ..."). */
Test(sweep, error_formatted_from_the_previous_error)
{
    tg_error(TG_ERR_VALUE, "tg_cross_entropy: target 12 is out of range for 10 classes");
    cr_expect_eq(tg_backward(NULL), TG_ERR_ARG);
    cr_expect_str_eq(tg_last_error(), "tg_backward: the output is NULL; earlier error: tg_cross_entropy: target 12 "
                                      "is out of range for 10 classes");
    tg_error(TG_ERR_VALUE, "first");
    tg_error(TG_ERR_VALUE, "%s, then %s", tg_last_error(), "second");
    cr_expect_str_eq(tg_last_error(), "first, then second");
}

static void write_idx_header(const char *path, int ndim, const uint32_t *dims, size_t data_bytes)
{
    uint8_t buf[64];
    size_t n = 0;
    buf[n++] = 0, buf[n++] = 0, buf[n++] = 0x08, buf[n++] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++)
        buf[n++] = dims[d] >> 24, buf[n++] = dims[d] >> 16, buf[n++] = dims[d] >> 8, buf[n++] = (uint8_t)dims[d];
    memset(buf + n, 7, data_bytes);
    tdu_write(path, buf, n + data_bytes);
}

/* 2^31-1 images of 28x28 were reported as "IDX dimension 1 is 28 (empty or absurd)". */
Test(sweep, idx_message_names_the_absurd_dimension)
{
    write_idx_header(tdu_path("images"), 3, (uint32_t[]){2147483647u, 28, 28}, 4);
    cr_expect_null(tg_idx_load(tdu_path("images")));
    cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
    TDU_EXPECT_ERROR("dimension 0 (2147483647, the number of items)");
    TDU_EXPECT_ERROR("2147483647 x 28 x 28");
    cr_expect(strstr(tg_last_error(), "dimension 1 is 28") == NULL, "%s", tg_last_error());
    write_idx_header(tdu_path("wide"), 2, (uint32_t[]){3, 4000000000u}, 4);
    cr_expect_null(tg_idx_load(tdu_path("wide")));
    TDU_EXPECT_ERROR("dimension 1 (4000000000)");
    write_idx_header(tdu_path("empty"), 2, (uint32_t[]){3, 0}, 0);
    cr_expect_null(tg_idx_load(tdu_path("empty")));
    TDU_EXPECT_ERROR("IDX dimension 1 is 0");
}

static size_t largest_alloc;
static void *counting_alloc(size_t bytes)
{
    if (bytes > largest_alloc) largest_alloc = bytes;
    return malloc(bytes ? bytes : 1);
}

/* Found by fuzz_idx: a 20-byte file announcing 2^31 bytes made tg_idx_load allocate 2 GB before
 * reading anything (slow, and fatal under a memory limit). The buffer now grows with the data. */
Test(sweep, idx_header_announcing_more_than_the_file_holds_allocates_what_it_holds)
{
    write_idx_header(tdu_path("big"), 1, (uint32_t[]){2147483647u}, 10);
    largest_alloc = 0;
    tg_set_alloc_hook(counting_alloc);
    tg_idx *idx = tg_idx_load(tdu_path("big"));
    tg_set_alloc_hook(NULL);
    cr_expect_null(idx);
    TDU_EXPECT_ERROR("truncated: the data needs 2147483647 bytes, the file ends after 10");
    cr_expect_leq(largest_alloc, (size_t)2 << 20, "largest allocation %zu bytes for a %d-byte file", largest_alloc, 18);
    /* several growth steps, raw and gzip: the data comes back whole */
    enum { N = 3 << 20 };
    uint8_t *buf = malloc(N + 8);
    for (int gz = 0; gz <= 1; gz++) {
        uint8_t head[8] = {0, 0, 8, 1, N >> 24, (N >> 16) & 255, (N >> 8) & 255, N & 255};
        memcpy(buf, head, 8);
        for (int i = 0; i < N; i++) buf[8 + i] = (uint8_t)(i * 31 + i / 1000);
        const char *path = tdu_path(gz ? "grow.gz" : "grow");
        if (gz) {
            gzFile f = gzopen(path, "wb");
            cr_assert_eq(gzwrite(f, buf, N + 8), N + 8);
            gzclose(f);
        } else {
            tdu_write(path, buf, N + 8);
        }
        idx = tg_idx_load(path);
        cr_assert_not_null(idx, "%s", tg_last_error());
        cr_expect_eq(idx->count, N);
        cr_expect(memcmp(idx->data, buf + 8, N) == 0);
        tg_idx_free(idx);
    }
    free(buf);
}

/* losslab --jsonl echoed a large integer id as 1.2345678901234567e+19. */
Test(sweep, losslab_echoes_ids_as_written)
{
    const char *in = tdu_path("cases.jsonl");
    const char *text = "{\"id\": 12345678901234567890, \"loss\": \"mse_loss\", \"input\": [1], \"target\": [2]}\n"
                       "{\"loss\": \"mse_loss\", \"id\": -1.50e3, \"input\": [1], \"target\": [2]}\n"
                       "{\"id\": \"a\\\"b\", \"loss\": \"nope\"}\n"
                       "{\"x\": {\"id\": 3}, \"id\": 9007199254740993, \"loss\": \"nope\"}\n";
    tdu_write(in, text, strlen(text));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/losslab --jsonl < %s", TG_BIN_DIR, in);
    static char out[1 << 14];
    cr_assert_eq(tgt_run_capture(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "{\"id\": 12345678901234567890, \"loss\": 1,") != NULL, "%s", out);
    cr_expect(strstr(out, "{\"id\": -1.50e3, \"loss\": 1,") != NULL, "%s", out);
    cr_expect(strstr(out, "{\"id\": \"a\\\"b\", \"error\": ") != NULL, "%s", out);
    cr_expect(strstr(out, "{\"id\": 9007199254740993, \"error\": ") != NULL, "%s", out);
}

/* Found by fuzz_losslab_jsonl in the first version of the exact echo: cJSON takes any byte up to
 * 32 for whitespace, and reads numbers JSON does not write ("05", "1."); echoing their text gave a
 * result line that is not JSON. Such ids come back as cJSON prints them. */
Test(sweep, losslab_result_lines_stay_json_whatever_the_id)
{
    const char *in = tdu_path("odd.jsonl");
    const char *text = "{\"id\":\x1f[1, 2], \"loss\": \"nope\"}\n"
                       "{\"id\":\x01 7, \"loss\": \"nope\"}\n"
                       "{\"id\": 05, \"loss\": \"nope\"}\n"
                       "{\"id\": 1., \"loss\": \"nope\"}\n";
    tdu_write(in, text, strlen(text));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/losslab --jsonl < %s", TG_BIN_DIR, in);
    static char out[1 << 14];
    cr_assert_eq(tgt_run_capture(cmd, out, sizeof out), 0, "%s", out);
    const char *want[] = {"{\"id\": [1,2], \"error\": ", "{\"id\": 7, \"error\": ", "{\"id\": 5, \"error\": ",
                          "{\"id\": 1, \"error\": "};
    char *line = out;
    for (int i = 0; i < 4; i++) {
        cr_assert_not_null(line, "%s", out);
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "%s", out);
        *nl = 0;
        cr_expect(strncmp(line, want[i], strlen(want[i])) == 0, "line %d: %s (want %s...)", i + 1, line, want[i]);
        cJSON *o = cJSON_Parse(line);
        cr_expect(cJSON_IsObject(o), "line %d is not JSON: %s", i + 1, line);
        cJSON_Delete(o);
        line = nl + 1;
    }
}
