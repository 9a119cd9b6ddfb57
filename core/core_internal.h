/* What an op implementation needs from core: tape nodes, step-arena outputs,
 * gradient buffers, input checks. Not part of the public API.
 *
 * How to add an op: three places (see ops/elementwise.c for many small examples).
 *   1. The op's file, ops/<file>.c (a new file or the file of its family), and its one-line
 *      declaration in that family's public header (ops/tensor_ops.h, nn_ops.h, loss.h, loss_extra.h):
 *      a. its backward: `static void foo_backward(tg_node *n)` reads n->out->grad and ADDS into
 *         tg_grad(n->in[i]) for each input with requires_grad (NULL: out of memory, the error is
 *         set: return; tg_backward reports it);
 *      b. its descriptor: `TG_OP_DEFINE(FOO_OP, foo, foo_backward);` (ops/op_list.h);
 *      c. its forward: check every tensor input (tg_check_f32/i64/live: they also reject a tensor
 *         whose tape was cleared, so a stale pointer cannot be read), make the output with
 *         tg_output_new(), compute it, then `tg_node *n = tg_record(&FOO_OP, out, k, in);` and, if
 *         n != NULL, save what backward needs in n->ctx / n->f / n->i.
 *   2. The list: one X(foo, file, kind, in_min, in_max, GC(...), FX(...)) line in ops/op_list.h.
 *      That gives it its id and name (tape, profiler, tests). A LOSS is also one of losslab's
 *      losses: its row in examples/losslab/table.c (summary, arguments, options, call), placed by
 *      the list (tests/test_op_list.c fails until it is there).
 *   3. Its test: a gradient check (tgt_expect_gradcheck) in the tests/<program>.c that GC names,
 *      and PyTorch golden cases: a case in the tests/gen_*.py generator that writes FX's file
 *      (rerun it with /usr/bin/python3) and the test that reads that file. For a LOSS the golden
 *      cases can be its case maker in tests/gen_losslab_cases.py (FX("losslab_cases.jsonl", "loss",
 *      "foo"); tests/losslab_vs_torch.py uses it too). tests/test_op_list.c fails while a gradient
 *      check, golden cases or (loss) losslab's row or cases are missing.
 */
#ifndef TG_CORE_INTERNAL_H
#define TG_CORE_INTERNAL_H

#include "core.h"
#include "ops/op_list.h" /* macros and the op ids only: core reads the list, calls nothing in ops/ */
#include <assert.h>
#include <string.h>

typedef struct tg_node tg_node;
typedef void (*tg_backward_fn)(tg_node *n);

/* One per op, defined in the op's file with TG_OP_DEFINE from the list (ops/op_list.h). */
typedef struct {
    const char *name;
    tg_backward_fn backward;
    int id; /* TG_OP_<name>; 0 for an op outside the list (a test's own) */
} tg_op_def;

#define TG_NODE_PARAMS 8

struct tg_node {
    const tg_op_def *op;
    int n_in;
    tg_tensor **in;                /* inputs, as passed to tg_record */
    tg_tensor *out;
    void *ctx;                     /* saved context (allocate with tg_arena_alloc) */
    double f[TG_NODE_PARAMS];      /* scalar float parameters */
    int64_t i[TG_NODE_PARAMS];     /* scalar integer parameters */
};

/* Step-arena memory, 64-byte aligned, released by tg_tape_clear. NULL (and an error) if out of memory. */
void *tg_arena_alloc(size_t bytes);
void *tg_arena_calloc(size_t bytes);
/* Per-thread scratch memory for an op's temporary work that does not outlive the call (im2col
 * columns...): slot k's buffer, 64-byte aligned, at least bytes long, valid until the next
 * tg_scratch_alloc(k) on this thread. It grows and is reused by every op of every step (the
 * arena would keep each call's copy until tg_tape_clear). Do not hold a slot across calls into
 * other ops. NULL (and an error) if out of memory. Owned by core; tg_scratch_release frees all. */
#define TG_SCRATCH_SLOTS 5
/* n buffers of bytes each in slot k (out[0..n-1], 64-byte aligned), as tg_scratch_alloc's: one for
 * each thread of a parallel region, lent from the step's memory one by one when a step runs
 * (pieces fit where one block of n times the size would not). False (and an error) if out of memory. */
bool tg_scratch_alloc_each(int slot, int n, size_t bytes, void **out);
/* Hands the step memory lent to this thread's scratch slots back now (it goes back anyway when the
 * op records its output or its backward returns): for an op whose later phase needs room. */
void tg_scratch_give_back(void);
/* Profiler hooks (core/profile.c), called by the tape. */
bool tg_profile_enabled(void);
double tg_profile_clock(void);
void tg_profile_output_made(void);
void tg_profile_recorded(const tg_op_def *op);
void tg_profile_backward_done(const tg_op_def *op, double seconds);
void *tg_scratch_alloc(int slot, size_t bytes);
void tg_scratch_release(void);
/* Clears the tape and returns all of this thread's arena, tape and scratch memory to the system,
 * so the next step allocates from scratch (tests that count allocations). No tape tensor may be
 * used afterwards, not even to be told it is stale. */
void tg_tape_release(void);
/* A tape-owned output tensor (data uninitialised). */
tg_tensor *tg_output_new(tg_dtype dtype, int ndim, const int64_t *shape);
/* Same, zero-filled. */
tg_tensor *tg_output_zeros(tg_dtype dtype, int ndim, const int64_t *shape);
/* The caller guarantees that nothing reads t's value again this step (no later op, no backward:
 * e.g. an intermediate inside a composite forward, whose consumers' backwards need only shapes):
 * its memory serves later outputs and gradients of the step, and t->data becomes NULL. A no-op
 * for other tensors (not the step's, or already released). */
void tg_release_value(tg_tensor *t);
/* A tape tensor header (float32) over data owned by another tape tensor of this step: an eval
 * forward's view of part of a buffer (nn/unet.c). Nothing may record an op on it. */
tg_tensor *tg_output_alias(int ndim, const int64_t *shape, float *data);
/* Records an op when grad mode is on and some input requires grad: marks out as
 * requiring grad and returns the node; otherwise returns NULL (nothing recorded). */
tg_node *tg_record(const tg_op_def *op, tg_tensor *out, int n_in, tg_tensor *const *in);
/* Saves what a backward needs as a typed struct: n->ctx = an arena copy of the `size` bytes at ctx.
 * false if out of memory (the error is set). TG_SAVE_CTX(n, type, fields...) for a struct literal. */
static inline bool tg_save_ctx(tg_node *n, const void *ctx, size_t size)
{
    void *c = tg_arena_alloc(size);
    if (c) memcpy(c, ctx, size);
    n->ctx = c;
    return c != NULL;
}
#define TG_SAVE_CTX(n, type, ...) tg_save_ctx((n), &(type){__VA_ARGS__}, sizeof(type))
/* The gradient buffer of t, allocated zero-filled on first use (NULL if out of memory). */
float *tg_grad(tg_tensor *t);
/* Same, but a first-use buffer is left uninitialised and *fresh is set: the caller must then
 * write every element (store instead of add, and skip a zero-fill pass). */
float *tg_grad_fresh(tg_tensor *t, bool *fresh);
/* In a backward of node n (n->out == from) that writes every element of to's gradient from the
 * same element of from's gradient (reading it first): from's gradient buffer, handed over to become
 * to's (then from->grad is NULL), when nothing reads it after this backward (tg_set_retain_grad
 * false, from not the root) and to is a tape tensor of from's size without a gradient yet. NULL
 * otherwise (use tg_grad_fresh). Saves one buffer at the start of backward. */
float *tg_grad_take_over(tg_tensor *to, tg_tensor *from);
/* The current tape generation (a tape tensor t is alive while t->tape_gen equals it). */
uint32_t tg_tape_generation(void);
/* Node k (0 = first recorded) of this thread's tape: its op, and its input count in *n_in;
 * NULL past the end. For tests that ask which ops a tape ran (tests/support). */
const tg_op_def *tg_tape_node_op(int64_t k, int *n_in);
/* Node k's output tensor (NULL past the end): tests that check what the tape keeps. */
tg_tensor *tg_tape_node_out(int64_t k);
/* The most arena bytes this thread's step used at once since its last clear (tests of a step's
 * memory), and the bytes the scratch slots of all threads hold in buffers of their own. */
size_t tg_tape_bytes_peak(void);
size_t tg_scratch_bytes_held(void);
/* Does this input want a gradient in this backward? */
static inline bool tg_needs_grad(const tg_tensor *t) { return t && t->requires_grad && t->dtype == TG_F32; }
/* The gradient buffer of input i for a backward to add into: NULL if that input wants no gradient,
 * or if out of memory (the error is set); either way the backward has nothing to do for it. */
static inline float *tg_input_grad(tg_node *n, int i) { return tg_needs_grad(n->in[i]) ? tg_grad(n->in[i]) : NULL; }

/* Input checks for ops: return false with an error naming `op` (NULL inputs keep the earlier error).
 * Both also reject a tape tensor whose tape was cleared (one integer compare): every tensor an
 * op reads must pass one of them, or tg_check_live for optional/any-dtype inputs. */
bool tg_check_f32(const char *op, const char *arg, const tg_tensor *t);
bool tg_check_i64(const char *op, const char *arg, const tg_tensor *t);
/* t NULL or not stale; false with an error naming op and arg if t's tape was cleared. */
bool tg_check_live(const char *op, const char *arg, const tg_tensor *t);
bool tg_check_ndim(const char *op, const char *arg, const tg_tensor *t, int min_ndim, int max_ndim);

/* Broadcast shapes as NumPy/PyTorch; false + error naming op if they do not fit. */
bool tg_broadcast_shape(const char *op, const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape);
/* Normalises a possibly negative dim; false + error if out of range. */
bool tg_normalize_dim(const char *op, int ndim, int *dim);

/* How many errors this thread has set so far (to tell a new error from an earlier one). */
uint64_t tg_error_count(void);

/* Allocation goes through one place so tests can count or fail it. */
void *tg_malloc(size_t bytes);
void *tg_calloc(size_t n, size_t size);
void tg_free(void *p);
/* As realloc: on failure NULL, an error, and p is left as it was. */
void *tg_realloc(void *p, size_t bytes);
char *tg_strdup(const char *s); /* caller frees with tg_free; NULL if out of memory */
void *tg_aligned_alloc(size_t bytes); /* 64-byte aligned; free with tg_free */
typedef void *(*tg_alloc_hook)(size_t bytes);
/* Test hook: replaces the allocator's malloc (NULL restores it); tg_realloc asks it for the new size
 * (a NULL fails the call) and then lets realloc move the block. */
void tg_set_alloc_hook(tg_alloc_hook hook);

/* Once per process, at the first BLAS-backed op (matmul, linear, conv): one line on stderr
 * if OpenBLAS runs generic kernels on an AVX2/AVX-512 CPU (core/blas_select.c). */
void tg_blas_check_kernel(void);
/* GOMP_SPINCOUNT for tg_blas_select_kernel's restart, or NULL to leave libgomp alone (omp_policy.c). */
const char *tg_omp_spincount_wanted(void);
/* That line for these inputs (auto_opt: $TG_BLAS_AUTO, "0" silences), in buf; NULL if none is due. */
const char *tg_blas_warning_text(const char *current, bool has_avx512, bool has_avx2_fma, const char *auto_opt,
                                 char *buf, size_t size);

/* Work size above which elementwise loops go parallel with OpenMP. */
#define TG_PARALLEL_MIN 32768

/* The CPU's instruction sets (core/cpu.c), detected once. avx512f: what the AVX-512 conv kernels
 * need; avx512_skx: F+BW+VL+DQ, what OpenBLAS's SkylakeX kernels need. */
typedef struct {
    bool avx2_fma, avx512f, avx512_skx;
} tg_cpu_isa;
tg_cpu_isa tg_cpu(void);

#endif
