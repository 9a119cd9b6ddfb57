/* Helpers shared by the Criterion tests: gradient checks of op outputs,
 * JSON fixtures (written by the tests/gen_*.py generators) and closeness checks.
 *
 * Fixture convention: tensors are nested JSON arrays; non-finite numbers are the
 * strings "NaN", "Infinity", "-Infinity" (cJSON cannot read bare NaN).
 * Ownership: tensors returned here are caller-owned (tg_tensor_free); cJSON trees
 * from tgt_json_load are freed with cJSON_Delete.
 */
#ifndef TG_TEST_SUPPORT_H
#define TG_TEST_SUPPORT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "tapegrad.h"

/* sum(out * R) with R fixed pseudo-random weights in [0.5, 1.5) from seed: a scalar
 * whose gradient exercises every output element differently (tape op, tape-owned). */
tg_tensor *tgt_weighted_sum(tg_tensor *out, uint64_t seed);

/* Runs tg_gradcheck and fails the current Criterion test with a readable message
 * (worst element, analytic vs numeric) if it does not pass. With TG_GRADCHECK_LOG=FILE set, a
 * passing check appends the ops its function recorded to FILE (tests/test_op_list.c reads it). */
void tgt_expect_gradcheck(const char *what, tg_scalar_fn fn, void *ctx, tg_tensor *const *inputs, int n,
                          double eps, double atol, double rtol);

/* Reads and parses a JSON file under TG_FIXTURE_DIR (or an absolute path); NULL + Criterion failure if absent. */
cJSON *tgt_json_load(const char *path);
/* A nested-array JSON value as a caller-owned tensor (float, or int64 if as_int). */
tg_tensor *tgt_json_tensor(const cJSON *value, bool as_int);
/* A JSON number or one of the non-finite strings. */
double tgt_json_number(const cJSON *value);

/* Element-wise |a-e| <= atol + rtol*|e| (NaN matches NaN, inf matches the same inf);
 * fails the test naming `what`, the first bad index and both values. */
void tgt_expect_close(const char *what, const float *actual, const float *expected, int64_t n, double rtol,
                      double atol);
void tgt_expect_tensor_close(const char *what, const tg_tensor *actual, const tg_tensor *expected, double rtol,
                             double atol);

/* One PyTorch fixture case for an op whose output y was just computed from `inputs`:
 * checks y's shape and values (y_rtol) against case["y"], runs backward with case["gy"], checks each
 * non-NULL input's gradient against case[grad_keys[k]] (grad_rtol), then clears the tape. Inputs stay the caller's. */
void tgt_expect_fixture_case(const char *name, const cJSON *c, tg_tensor *y, tg_tensor *const *inputs,
                             const char *const *grad_keys, int n, double y_rtol, double grad_rtol,
                             double atol);

/* ---- example programs ---- */
/* Runs a shell command with stdout and stderr captured into out (n bytes, NUL-terminated);
 * returns its exit code (128 if it did not exit normally). */
int tgt_run_capture(const char *cmd, char *out, size_t n);
/* The same for a printf-style command line. */
int tgt_run_capturef(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Skips the calling Criterion test (a visible skip) when DRIVE's test images are not found. */
void tgt_need_drive(void);
/* Whole file into a new malloc'd, NUL-terminated buffer (*n bytes); NULL if unreadable. */
char *tgt_read_whole(const char *path, long *n);
/* Two files with the same bytes (false if either is unreadable). */
bool tgt_same_file(const char *a, const char *b);
/* Makes a fresh directory /tmp/tg_<tag>_XXXXXX into dir (size bytes); tgt_remove_tree deletes it. */
void tgt_make_tmpdir(char *dir, size_t size, const char *tag);
/* The value after "key": in a one-line JSON object, as text up to the next comma or brace, into
 * out (n bytes); fails the test when the key is absent. */
void tgt_json_field(const char *line, const char *key, char *out, size_t n);
void tgt_remove_tree(const char *dir);
/* Copies the gradients of list's parameters (those that have one, in list order) into g (room for
 * n_g floats; fails the test when they do not fit); returns the number of floats copied. */
int64_t tgt_copy_param_grads(const tg_param_list *list, float *g, int64_t n_g);

#endif
