/* tapegrad core: tensors, the tape, errors, RNG, threads, gradient checking.
 *
 * THE MEMORY RULE (the only one):
 *   - Tensors you create with tg_tensor_* constructors are yours: free them with
 *     tg_tensor_free(). Parameters, their .grad and optimizer state live here.
 *   - Every tensor returned by an op (tg_add, tg_conv2d, tg_cross_entropy, ...)
 *     belongs to the current step's tape and is released, with its .grad, by
 *     one call: tg_tape_clear(). Keep a value past the step with tg_tensor_clone().
 *     An op given a tensor of a cleared tape returns NULL with TG_ERR_STATE and a
 *     message naming the op (the next step never reuses the cleared tensors' headers,
 *     so this holds even right after the clear). Debug aid: TG_POISON_ARENA=1 in the
 *     environment (or the CMake option) fills cleared arena memory with NaN bytes.
 *
 * Errors: public functions never abort on bad input. They return NULL (or a
 * tg_status) and set a message readable with tg_last_error(). An op given a
 * NULL input returns NULL and keeps the first message, so chains of ops can
 * be checked once at the end.
 */
#ifndef TG_CORE_H
#define TG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TG_MAX_DIMS 6
#define TG_NAME_LEN 64

typedef enum { TG_F32 = 0, TG_I64 = 1 } tg_dtype;

typedef enum {
    TG_OK = 0,
    TG_ERR_ARG,    /* a bad argument (NULL, unknown option, out-of-range value) */
    TG_ERR_SHAPE,  /* shapes that do not fit together */
    TG_ERR_VALUE,  /* a value outside its domain (e.g. class index, probability) */
    TG_ERR_NOMEM,  /* an allocation failed */
    TG_ERR_IO,     /* a file could not be opened, read or written */
    TG_ERR_FORMAT, /* a file's contents are corrupt or unsupported */
    TG_ERR_STATE   /* a call in the wrong state (e.g. backward over a cleared tape) */
} tg_status;

/* ---- errors ------------------------------------------------------------ */

/* The message of the most recent error on this thread ("" if none). Owned by tapegrad. */
const char *tg_last_error(void);
/* The status of the most recent error on this thread (TG_OK if none). */
tg_status tg_last_status(void);
/* Forget the last error. */
void tg_clear_error(void);
/* Set the error message (printf-style); returns status for `return tg_error(...)`. */
tg_status tg_error(tg_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- files ------------------------------------------------------------- */

/* Opens path for reading if it is a regular file, without ever blocking (a FIFO, directory or
 * device is refused at once): a descriptor (caller closes) or -1 with a message naming the path
 * and what it is, prefixed by "who: " when who is not NULL. Every tapegrad reader uses it. */
int tg_open_regular(const char *path, const char *who);
/* The same as a stdio stream (caller fcloses); NULL with the message on failure. */
FILE *tg_fopen_regular(const char *path, const char *who);
/* "a directory", "a FIFO (named pipe)", ... for a stat st_mode. */
const char *tg_file_kind(unsigned mode);

/* ---- tensors ----------------------------------------------------------- */

typedef struct tg_tensor {
    tg_dtype dtype;
    int ndim;                     /* 0 (scalar) .. TG_MAX_DIMS */
    int64_t shape[TG_MAX_DIMS];   /* row-major, contiguous */
    int64_t numel;
    float *data;                  /* TG_F32: numel floats, else NULL */
    int64_t *idata;               /* TG_I64: numel integers, else NULL */
    float *grad;                  /* dL/d(data): NULL until a gradient reaches it */
    bool requires_grad;
    bool tape_owned;              /* true: released by tg_tape_clear() */
    uint32_t tape_gen;            /* generation of the tape that owns it (tape tensors) */
    char name[TG_NAME_LEN];       /* optional, used in error messages */
} tg_tensor;

/* Shape literal helper: tg_tensor_zeros(TG_SHAPE(2, 3)) passes ndim=2 and {2, 3}. */
#define TG_SHAPE(...) \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* Constructors: the caller owns the result and frees it with tg_tensor_free. NULL on error. */
tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape); /* zero-filled */
tg_tensor *tg_tensor_zeros(int ndim, const int64_t *shape);
tg_tensor *tg_tensor_ones(int ndim, const int64_t *shape);
tg_tensor *tg_tensor_full(int ndim, const int64_t *shape, float value);
tg_tensor *tg_tensor_from_data(int ndim, const int64_t *shape, const float *data);  /* copies */
tg_tensor *tg_tensor_from_i64(int ndim, const int64_t *shape, const int64_t *data); /* copies */
tg_tensor *tg_tensor_scalar(float value);
tg_tensor *tg_tensor_arange(float start, float end, float step); /* 1-D, as torch.arange */
struct tg_rng;
/* rng NULL means the global generator (tg_manual_seed). */
tg_tensor *tg_tensor_rand(int ndim, const int64_t *shape, struct tg_rng *rng);  /* U[0,1) */
tg_tensor *tg_tensor_randn(int ndim, const int64_t *shape, struct tg_rng *rng); /* N(0,1) */
/* A caller-owned copy of t's data (no grad, no history); works on tape tensors too. */
tg_tensor *tg_tensor_clone(const tg_tensor *t);
/* Frees a caller-owned tensor and its grad. NULL is fine; tape-owned tensors are left to tg_tape_clear. */
void tg_tensor_free(tg_tensor *t);

tg_tensor *tg_tensor_set_requires_grad(tg_tensor *t, bool requires_grad); /* returns t */
tg_tensor *tg_tensor_set_name(tg_tensor *t, const char *name);           /* returns t */
/* Zeroes t->grad if it exists (keeps the buffer). */
void tg_tensor_zero_grad(tg_tensor *t);
/* Copies src's data into dst (same numel and dtype). */
tg_status tg_tensor_copy_data(tg_tensor *dst, const tg_tensor *src);
/* Same shape (ndim and every dim)? */
bool tg_tensor_same_shape(const tg_tensor *a, const tg_tensor *b);
/* Writes "(2, 3, 4)" into buf; returns buf. */
char *tg_shape_str(const tg_tensor *t, char *buf, size_t n);
char *tg_dims_str(int ndim, const int64_t *shape, char *buf, size_t n);
/* Row-major offset of an index (ndim entries); -1 and an error if an entry is out of range. */
int64_t tg_tensor_offset(const tg_tensor *t, const int64_t *index);
/* Element access (float tensors read as float, int tensors converted). An index out of range
 * gives NaN (get) or TG_ERR_ARG (set, t unchanged), and an error. */
float tg_tensor_get(const tg_tensor *t, const int64_t *index);
tg_status tg_tensor_set(tg_tensor *t, const int64_t *index, float value);
#define TG_INDEX(...) (const int64_t[]){__VA_ARGS__}
/* The single value of a one-element tensor (NaN and an error otherwise). */
float tg_item(const tg_tensor *t);
/* Prints shape and values (at most `max_items` values per tensor). */
void tg_tensor_print(const tg_tensor *t, FILE *out, int max_items);

/* ---- the tape ---------------------------------------------------------- */

/* Backward from a scalar: accumulates dL/dx into .grad of every tensor that
 * requires grad. The tape may be walked once; clear it and run forward again. */
tg_status tg_backward(tg_tensor *loss);
/* Backward with an explicit upstream gradient (same shape as out). */
tg_status tg_backward_with(tg_tensor *out, const tg_tensor *grad_out);
/* Releases every tensor the ops created since the last clear (end of step). */
void tg_tape_clear(void);
/* Gradient recording switch (no-grad scope for evaluation); returns the previous value. */
bool tg_set_grad_enabled(bool enabled);
bool tg_grad_enabled(void);
/* false: backward keeps .grad only on tensors the tape did not make (parameters, inputs) and
 * on the tensor it starts from; an op output's gradient is reused for later gradients once
 * that op's backward ran, and its .grad is NULL afterwards (PyTorch's default for non-leaf
 * tensors). A training step then holds about half the memory. true (the default): every tensor
 * keeps its .grad until tg_tape_clear. Per thread; returns the previous value. */
bool tg_set_retain_grad(bool retain);
/* false: once an op's backward has run, the memory of its output's value (which no backward
 * reads after that) serves later gradients; the values of the step's intermediate tensors can
 * no longer be read after tg_backward (the tensor backward started from keeps its value).
 * PyTorch frees saved tensors the same way; use it when nothing reads op outputs after
 * backward (a training loop that reads only the loss). true (the default): every value stays
 * readable until tg_tape_clear. Per thread; returns the previous value. */
bool tg_set_retain_values(bool retain);
/* Introspection: recorded operations, bytes held by the step arena, bytes in use now. */
int64_t tg_tape_size(void);
size_t tg_tape_bytes_reserved(void);
size_t tg_tape_bytes_used(void);
/* Prints the recorded operations with their shapes, in forward order. */
void tg_tape_print(FILE *out);
/* Op profiler (this thread): while enabled, wall time per op type is summed, forward (from the
 * op's first output to its recording; an op built from other ops includes their time) and
 * backward. tg_profile_print writes a table sorted by total time. Off by default; cheap when off. */
void tg_profile_enable(bool on);
void tg_profile_reset(void);
void tg_profile_print(FILE *out);

/* ---- RNG (xoshiro256**, seeded through splitmix64) --------------------- */

typedef struct tg_rng {
    uint64_t s[4];
    int has_spare;
    float spare;
} tg_rng;

void tg_rng_seed(tg_rng *rng, uint64_t seed);
uint64_t tg_rng_u64(tg_rng *rng);
float tg_rng_uniform(tg_rng *rng);                    /* [0, 1) with 24 random bits */
double tg_rng_uniform_double(tg_rng *rng);            /* [0, 1) with 53 random bits */
float tg_rng_normal(tg_rng *rng);                     /* N(0, 1), Box-Muller */
int64_t tg_rng_below(tg_rng *rng, int64_t n);         /* uniform in [0, n), unbiased */
void tg_rng_permutation(tg_rng *rng, int64_t *out, int64_t n); /* Fisher-Yates */
/* The process-wide generator used when an API takes a NULL rng. */
tg_rng *tg_rng_global(void);
void tg_manual_seed(uint64_t seed);

/* ---- threads and CPU --------------------------------------------------- */

/* Sets the thread count of both OpenMP and OpenBLAS (n <= 0: number of cores). */
void tg_set_num_threads(int n);
int tg_get_num_threads(void);
/* Flush-to-zero and denormals-are-zero on this thread and the OpenMP workers
 * (as torch.set_flush_denormal). Returns false where the CPU has no such mode. */
bool tg_set_flush_denormal(bool enabled);
/* OpenBLAS's configuration string, e.g. "OpenBLAS 0.3.21 ... Prescott MAX_THREADS=64". */
const char *tg_blas_config(void);
/* The kernel family OpenBLAS chose, e.g. "SkylakeX" or "Prescott". */
const char *tg_blas_core(void);
/* Call first thing in main(): if OpenBLAS fell back to generic kernels on a CPU
 * with AVX-512 or AVX2 (a known misdetection of Debian's OpenBLAS 0.3.21), the
 * program re-executes itself once with OPENBLAS_CORETYPE set (SkylakeX or
 * Haswell), saying so on stderr (not if OPENBLAS_CORETYPE is set or TG_BLAS_AUTO=0).
 * The same restart (silent) sets GOMP_SPINCOUNT=1000 unless OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT is set (TG_OMP_SPINCOUNT=N picks N, =default keeps libgomp's): idle
 * OpenMP threads then sleep soon instead of spinning for milliseconds, which starved
 * the working threads on a loaded machine. Returns only if no restart happened (false). */
bool tg_blas_select_kernel(int argc, char **argv);
/* The decision behind it: the core to ask for, or NULL to keep `current`. */
const char *tg_blas_recommended_core(const char *current, bool has_avx512, bool has_avx2_fma);

/* ---- gradient checking ------------------------------------------------- */

/* A scalar function of tensors, built with ops (its result is tape-owned). */
typedef tg_tensor *(*tg_scalar_fn)(tg_tensor *const *inputs, int n_inputs, void *ctx);

typedef struct {
    bool passed;
    double max_abs_err;   /* worst |analytic - numeric| */
    double max_rel_err;   /* worst |a - n| / max(|n|, 1e-8) among failing or worst */
    int worst_input;      /* which input holds the worst element */
    int64_t worst_index;  /* flat index of the worst element */
    double analytic;      /* tape gradient at the worst element */
    double numeric;       /* central difference at the worst element */
    int64_t checked;      /* number of elements compared */
} tg_gradcheck_report;

/* Compares the tape gradient of fn w.r.t. every input that requires grad with
 * central differences f(x+h) - f(x-h) taken in double precision (h is the
 * representable step nearest eps*max(1,|x|)). An element passes if
 * |a - n| <= atol + rtol * |n|. Clears the tape; inputs' .grad is overwritten.
 * Returns TG_OK if fn ran (check report->passed), an error otherwise.
 *
 * eps, atol or rtol <= 0 (or NaN) selects the float32 default below. Why not PyTorch's
 * (eps 1e-6, atol 1e-5, rtol 1e-3)? Those assume float64. fn computes in float32, whose
 * values carry a relative rounding error near 6e-8: the difference quotient divides that
 * by 2h, so with h = 1e-6 the "numeric" gradient is rounding noise (often exactly 0),
 * while h = 1e-3 leaves ~1e-4 * |f| of noise and ~1e-6 of truncation error. atol 1e-3 and
 * rtol 1e-2 sit ten times above that noise and still catch a wrong backward, which is off
 * by a factor, a sign or a term, i.e. by far more than 1%. Smooth functions with |f| up
 * to ~10 pass; for larger values or kinks, pass wider tolerances explicitly. */
#define TG_GRADCHECK_EPS 1e-3
#define TG_GRADCHECK_ATOL 1e-3
#define TG_GRADCHECK_RTOL 1e-2
tg_status tg_gradcheck(tg_scalar_fn fn, void *ctx, tg_tensor *const *inputs, int n_inputs,
                       double eps, double atol, double rtol, tg_gradcheck_report *report);
/* One line describing the report, e.g. for test failure messages; returns buf. */
char *tg_gradcheck_describe(const tg_gradcheck_report *r, char *buf, size_t n);

#endif
