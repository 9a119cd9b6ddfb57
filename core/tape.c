/* The tape: operations recorded in forward order, walked in reverse by
 * tg_backward. Everything an op creates lives in a per-thread step arena
 * (a chain of blocks kept across steps: a step that makes the same requests as
 * the last one fills the same blocks in the same order, so after the first step
 * a training loop asks the system for nothing and touches no new pages). */
#include "core_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <omp.h>
#include <stdatomic.h>

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer tensor data is malloc'd one by one and freed at each
 * clear, so a use after tg_tape_clear is reported. Headers and nodes stay in
 * the block arena so that "backward over a cleared tape" is still an error. */
#define TG_ARENA_SEPARATE_DATA 1
#else
#define TG_ARENA_SEPARATE_DATA 0
#endif

typedef struct block {
    struct block *next;
    size_t size, used;
    size_t populated; /* bytes from mem whose pages the system has provided (see populate) */
    char *mem;
} block;

/* Tensor headers come from two pools used in alternate steps, so the headers of a cleared
 * tape are not handed out again by the very next step: a tensor kept across tg_tape_clear
 * still shows its stale generation to the next step's ops (which reject it) instead of
 * having become one of that step's outputs. Chunks are kept and reused. */
#define HEADER_CHUNK 256
typedef struct hchunk {
    struct hchunk *next;
    int used;
    tg_tensor h[HEADER_CHUNK];
} hchunk;

typedef struct {
    hchunk *first, *cur;
} header_pool;

/* Pieces of step memory lent to scratch slots at once at most (tg_scratch_alloc_each: one a thread). */
#define LENT_CAP 64

/* Pieces on a step's free list at most (a fixed array: handing memory back never allocates). */
#define FREE_CAP 1024

typedef struct {
    block *blocks;         /* oldest first */
    block *cur;            /* the block being filled this step */
    block *small_blocks, *small_cur; /* the same for requests below SMALL_ALLOC */
    size_t reserved;       /* bytes in all blocks */
    size_t used;           /* bytes handed out this step */
    size_t peak;           /* the most used at once this step */
    tg_node **nodes;       /* recorded ops, forward order */
    int64_t n_nodes, cap_nodes;
    tg_tensor **tensors;   /* every tape tensor of this step (to retire at clear) */
    int64_t n_tensors, cap_tensors;
    void **separate;       /* TG_ARENA_SEPARATE_DATA allocations */
    int64_t n_separate, cap_separate;
    void *scratch[TG_SCRATCH_SLOTS]; /* per-op temporary work, reused by every op */
    size_t scratch_size[TG_SCRATCH_SLOTS];
    struct {
        char *p;
        size_t bytes;
        int slot;
    } lent[LENT_CAP]; /* step memory lent to scratch slots (see tg_scratch_alloc), in lending order */
    int n_lent;
    header_pool headers[2]; /* headers[gen & 1] serves this step */
    uint32_t gen;
    void *free_grads[FREE_CAP]; /* memory handed back this step (see free_push), reused by outputs and gradients */
    size_t free_bytes[FREE_CAP];
    int64_t n_free;
    bool release_grads, release_values;
    const tg_tensor *root; /* the tensor the running backward started from (NULL outside one) */
    const char *record_failed; /* an op this step that could not be recorded (out of memory) */
    bool walked;
    bool grad_disabled;
} tape_state;

static _Thread_local tape_state T = {.gen = 1};

/* Bytes of the scratch slots' own buffers, all threads together (tg_scratch_bytes_held). */
static atomic_size_t g_scratch_held;

size_t tg_scratch_bytes_held(void) { return atomic_load_explicit(&g_scratch_held, memory_order_relaxed); }

#define ALIGN 64
#define MIN_BLOCK (1u << 20)
#define MAX_BLOCK ((size_t)256 << 20) /* growth stops doubling here: bounds the last block's unused tail */

static block *block_new(size_t size)
{
    block *b = tg_malloc(sizeof *b);
    if (!b) return NULL;
    b->mem = tg_aligned_alloc(size);
    if (!b->mem) {
        tg_free(b);
        return NULL;
    }
    b->size = size;
    b->used = 0;
    b->populated = 0;
    b->next = NULL;
    return b;
}

/* The first step's new memory: instead of one page fault per 4 KB page as ops first write
 * their outputs (often from one thread: zeroed gradients), the pages a request reaches (rounded
 * up to POPULATE_CHUNK) are asked for ahead of use, in one madvise(MADV_POPULATE_WRITE) per
 * OpenMP thread. Measured on this 2-core VM (700 MB, SCHED_FIFO): 360-410 ms of page faults from
 * one thread, 150-190 ms from two, 115 ms populated by two. Later steps reuse the populated
 * blocks: no calls. The chunk is small: pages populated past a block's last use stay resident
 * unused (16 MB chunks left 61 MB of block tails resident at crop 480).
 * Without MADV_POPULATE_WRITE (Linux < 5.14) the pages fault in as before. */
#define POPULATE_CHUNK ((size_t)256 << 10)
static void populate(block *b, size_t end)
{
#if defined(MADV_POPULATE_WRITE) && !TG_ARENA_SEPARATE_DATA
    if (end <= b->populated) return;
    end = end + POPULATE_CHUNK - 1 < b->size ? (end + POPULATE_CHUNK - 1) / POPULATE_CHUNK * POPULATE_CHUNK : b->size;
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)b->mem + b->populated) & ~(uintptr_t)(page - 1), hi = (uintptr_t)b->mem + end;
    const size_t n = hi - lo;
    b->populated = end;
    if (n < 4 * page) return; /* small: let the faults happen */
#pragma omp parallel if (n >= ((size_t)1 << 20))
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const uintptr_t a = lo + (n / page * (size_t)t / (size_t)nt) * page,
                        e = t == nt - 1 ? hi : lo + (n / page * (size_t)(t + 1) / (size_t)nt) * page;
        if (e > a) (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE); /* a hint: errors are harmless */
    }
#else
    (void)b, (void)end;
#endif
}

static void *chain_alloc(block **first, block **cur, size_t bytes)
{
    bytes = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (bytes == 0) bytes = ALIGN;
    block *b = *cur;
    /* the next kept block with room (a block too small for this request stays unused this step) */
    while (b && b->size - b->used < bytes) b = b->next;
    if (!b) {
        block *last = *cur;
        while (last && last->next) last = last->next;
        size_t size = !last ? MIN_BLOCK : 2 * last->size < MAX_BLOCK ? 2 * last->size : MAX_BLOCK;
        if (size < bytes) size = bytes;
        b = block_new(size);
        if (!b) return NULL;
        if (last) last->next = b;
        else *first = b;
        T.reserved += size;
    }
    *cur = b;
    void *p = b->mem + b->used;
    b->used += bytes;
    if (b->used > b->populated) populate(b, b->used);
    T.used += bytes;
    if (T.used > T.peak) T.peak = T.used;
    return p;
}

/* Small requests (nodes, op contexts, per-channel statistics) fill blocks of their own: the
 * large values then lie side by side in the order they were made, so values and gradients
 * handed back during backward merge into pieces as large as the layer before's (crop 480: a
 * node and its context between two 59 MB outputs made the step's arena grow by 118 MB). */
#define SMALL_ALLOC ((size_t)64 << 10)

static void *block_arena_alloc(size_t bytes)
{
    return bytes < SMALL_ALLOC ? chain_alloc(&T.small_blocks, &T.small_cur, bytes) : chain_alloc(&T.blocks, &T.cur, bytes);
}

/* Grows a pointer vector kept across steps (no allocation once warm). */
static bool push_ptr(void ***vec, int64_t *n, int64_t *cap, void *p)
{
    if (*n == *cap) {
        int64_t nc = *cap ? 2 * *cap : 1024;
        void **nv = tg_realloc(*vec, (size_t)nc * sizeof(void *));
        if (!nv) {
            tg_error(TG_ERR_NOMEM, "out of memory growing the tape");
            return false;
        }
        *vec = nv;
        *cap = nc;
    }
    (*vec)[(*n)++] = p;
    return true;
}

void *tg_arena_alloc(size_t bytes)
{
#if TG_ARENA_SEPARATE_DATA
    void *p = tg_aligned_alloc(bytes);
    if (p && !push_ptr(&T.separate, &T.n_separate, &T.cap_separate, p)) {
        tg_free(p);
        return NULL;
    }
    if (p) T.used += bytes;
    if (T.used > T.peak) T.peak = T.used;
    return p;
#else
    return block_arena_alloc(bytes);
#endif
}

static void free_push(void *p, size_t bytes);
static void *free_take(size_t bytes);
static size_t round_align(size_t bytes);

/* During a step, requests at least this large that the slot's own buffer cannot hold are served
 * from the step's memory (its free list, else the arena) and handed back to the free list at the
 * slot's next call: an op's large temporaries (oneDNN's reordered copies of a layer's input and
 * output: 59 MB each at crop 480) then share memory with the step's tensors instead of growing
 * a buffer that stays beside them for every later step. */
#define SCRATCH_LEND_MIN ((size_t)1 << 20)

/* The pieces lent to scratch slot `slot` (all slots: -1) go back, latest first: a piece at the
 * arena's top is popped, any other goes to the free list. An op's temporaries are dead once it
 * records its output (forward) or its backward returns ("do not hold a slot across calls into
 * other ops", core_internal.h), and a slot's at its next call. */
static void lent_give_back(int slot)
{
    int kept = 0;
    for (int k = T.n_lent - 1; k >= 0; k--) {
        if (slot >= 0 && T.lent[k].slot != slot) {
            kept++;
            continue;
        }
        char *p = T.lent[k].p;
#if TG_ARENA_SEPARATE_DATA
        tg_free(p);
#else
        const size_t bytes = round_align(T.lent[k].bytes);
        block *b = T.cur;
        if (b && p + bytes == b->mem + b->used) { /* the arena's top: pop it */
            b->used -= bytes;
            T.used -= bytes;
        } else {
            free_push(p, T.lent[k].bytes);
        }
#endif
        T.lent[k].p = NULL;
    }
    if (kept) { /* close the gaps, keeping the order */
        int n = 0;
        for (int k = 0; k < T.n_lent; k++)
            if (T.lent[k].p) T.lent[n++] = T.lent[k];
    }
    T.n_lent = kept;
}

void tg_scratch_give_back(void) { lent_give_back(-1); }

/* A piece of step memory lent to slot (NULL: none free, or no step running on this thread). */
static void *lend(int slot, size_t bytes)
{
    if (bytes < SCRATCH_LEND_MIN || !(T.used || T.n_nodes) || T.n_lent == LENT_CAP) return NULL;
#if TG_ARENA_SEPARATE_DATA
    /* under ASan a buffer of exactly the size, freed when given back: overruns and uses after the
     * op are reported (and the step's byte count stays that of its tensors) */
    void *p = tg_aligned_alloc(bytes);
#else
    void *p = T.n_free ? free_take(bytes) : NULL;
    if (!p) p = tg_arena_alloc(bytes);
#endif
    if (!p) return NULL;
    T.lent[T.n_lent].p = p;
    T.lent[T.n_lent].bytes = bytes;
    T.lent[T.n_lent++].slot = slot;
    return p;
}

void *tg_scratch_alloc(int slot, size_t bytes)
{
    assert(slot >= 0 && slot < TG_SCRATCH_SLOTS);
    lent_give_back(slot); /* the pieces lent at the slot's last call */
    if (bytes > T.scratch_size[slot]) {
        void *p = lend(slot, bytes);
        if (p) return p;
    }
    /* Under ASan every request gets a buffer of exactly its size, so overruns are reported. */
    if (bytes > T.scratch_size[slot] || (TG_ARENA_SEPARATE_DATA && bytes != T.scratch_size[slot])) {
        tg_free(T.scratch[slot]);
        atomic_fetch_sub_explicit(&g_scratch_held, T.scratch_size[slot], memory_order_relaxed);
        T.scratch_size[slot] = 0;
        T.scratch[slot] = tg_aligned_alloc(bytes);
        if (!T.scratch[slot]) return NULL;
        T.scratch_size[slot] = bytes;
        atomic_fetch_add_explicit(&g_scratch_held, bytes, memory_order_relaxed);
    }
    return T.scratch[slot];
}

bool tg_scratch_alloc_each(int slot, int n, size_t bytes, void **out)
{
    assert(slot >= 0 && slot < TG_SCRATCH_SLOTS && n >= 1);
    lent_give_back(slot);
    const size_t each = round_align(bytes);
    if (T.n_lent + n <= LENT_CAP && (size_t)n * each > T.scratch_size[slot]) {
        int k = 0;
        while (k < n && (out[k] = lend(slot, bytes))) k++;
        if (k == n) return true;
        lent_give_back(slot);
    }
    char *buf = tg_scratch_alloc(slot, (size_t)n * each);
    if (!buf) return false;
    for (int k = 0; k < n; k++) out[k] = buf + (size_t)k * each;
    return true;
}

void tg_scratch_release(void)
{
    for (int s = 0; s < TG_SCRATCH_SLOTS; s++) {
        atomic_fetch_sub_explicit(&g_scratch_held, T.scratch_size[s], memory_order_relaxed);
        tg_free(T.scratch[s]);
        T.scratch[s] = NULL;
        T.scratch_size[s] = 0;
    }
}

void tg_tape_release(void)
{
    tg_tape_clear();
    for (int c = 0; c < 2; c++)
        for (block *b = c ? T.small_blocks : T.blocks, *next; b; b = next) {
            next = b->next;
            tg_free(b->mem);
            tg_free(b);
        }
    T.blocks = T.cur = T.small_blocks = T.small_cur = NULL;
    T.reserved = 0;
    tg_free(T.nodes), tg_free(T.tensors), tg_free(T.separate);
    T.nodes = NULL, T.tensors = NULL, T.separate = NULL;
    T.cap_nodes = T.cap_tensors = T.cap_separate = 0;
    for (int k = 0; k < 2; k++) { /* tensor headers too: no tensor of an earlier step may be used after this */
        for (hchunk *c = T.headers[k].first, *next; c; c = next) {
            next = c->next;
            tg_free(c);
        }
        T.headers[k].first = T.headers[k].cur = NULL;
    }
    tg_scratch_release();
}

void *tg_arena_calloc(size_t bytes)
{
    void *p = tg_arena_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static tg_tensor *header_alloc(void)
{
    header_pool *p = &T.headers[T.gen & 1];
    hchunk *c = p->cur;
    while (c && c->used == HEADER_CHUNK) c = c->next;
    if (!c) {
        c = tg_malloc(sizeof *c);
        if (!c) return NULL;
        c->next = NULL;
        c->used = 0;
        hchunk *last = p->cur;
        while (last && last->next) last = last->next;
        if (last) last->next = c;
        else p->first = c;
    }
    p->cur = c;
    return &c->h[c->used++];
}

/* Debug aid: TG_POISON_ARENA (CMake option, or the environment variable TG_POISON_ARENA=1)
 * fills the step arena with 0xFF bytes (float NaN, int64 -1) at each tg_tape_clear, so a
 * value read after its tape was released shows at once. */
static bool poison_arena(void)
{
#ifdef TG_POISON_ARENA
    return true;
#else
    static int on = -1; /* the environment is read once */
    if (on < 0) {
        const char *v = getenv("TG_POISON_ARENA");
        on = v && v[0] && strcmp(v, "0") != 0;
    }
    return on;
#endif
}

static void *step_data(size_t bytes);

tg_tensor *tg_output_new(tg_dtype dtype, int ndim, const int64_t *shape)
{
    assert(ndim >= 0 && ndim <= TG_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        assert(shape[d] >= 0);
        numel *= shape[d];
    }
    if (tg_profile_enabled()) tg_profile_output_made();
    tg_tensor *t = header_alloc();
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->numel = numel;
    t->tape_owned = true;
    t->tape_gen = T.gen;
    const size_t bytes = (size_t)numel * (dtype == TG_F32 ? sizeof(float) : sizeof(int64_t));
    void *mem = step_data(bytes);
    if (!mem) mem = tg_arena_alloc(bytes);
    if (!mem) return NULL;
    if (dtype == TG_F32) t->data = mem;
    else t->idata = mem;
    if (!push_ptr((void ***)&T.tensors, &T.n_tensors, &T.cap_tensors, t)) return NULL;
    return t;
}

tg_tensor *tg_output_alias(int ndim, const int64_t *shape, float *data)
{
    assert(ndim >= 0 && ndim <= TG_MAX_DIMS);
    tg_tensor *t = header_alloc();
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->dtype = TG_F32;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) t->numel *= t->shape[d] = shape[d];
    t->tape_owned = true;
    t->tape_gen = T.gen;
    t->data = data;
    if (!push_ptr((void ***)&T.tensors, &T.n_tensors, &T.cap_tensors, t)) return NULL;
    return t;
}

tg_tensor *tg_output_zeros(tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_output_new(dtype, ndim, shape);
    if (t) memset(t->data ? (void *)t->data : (void *)t->idata, 0,
                  (size_t)t->numel * (dtype == TG_F32 ? sizeof(float) : sizeof(int64_t)));
    return t;
}

tg_node *tg_record(const tg_op_def *op, tg_tensor *out, int n_in, tg_tensor *const *in)
{
    tg_scratch_give_back();
    if (tg_profile_enabled()) tg_profile_recorded(op);
    if (T.grad_disabled || !out) return NULL;
    bool any = false;
    for (int k = 0; k < n_in; k++) any |= in[k] && in[k]->requires_grad;
    if (!any) return NULL;
    tg_node *n = block_arena_alloc(sizeof *n + (size_t)n_in * sizeof(tg_tensor *));
    if (!n) {
        T.record_failed = op->name; /* the op still returns its output: backward must refuse this tape */
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    n->in = (tg_tensor **)(n + 1);
    for (int k = 0; k < n_in; k++) n->in[k] = in[k];
    n->out = out;
    if (!push_ptr((void ***)&T.nodes, &T.n_nodes, &T.cap_nodes, n)) {
        T.record_failed = op->name;
        return NULL;
    }
    out->requires_grad = out->dtype == TG_F32;
    return n;
}

/* ---- memory handed back during a step -----------------------------------------------------
 * Gradients whose backward has run (tg_set_retain_grad(false)), values nothing reads any more
 * (tg_release_value, tg_set_retain_values(false)): their bytes go on a free list that later
 * gradients and op outputs of the step draw from before the arena grows. Neighbouring pieces
 * are merged; a request takes a piece of exactly its size (most recent first), else the
 * smallest larger piece, split (the rest stays listed). Exact sizes first: a best fit alone let
 * small gradients take large buffers and grew the step (crop 480: 1624 -> 1736 MB). */
#define FREE_MIN_PIECE ((size_t)4096) /* a smaller rest is dropped until the clear */

static size_t round_align(size_t bytes) { return (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

static void free_remove(int64_t k)
{
    T.n_free--;
    T.free_grads[k] = T.free_grads[T.n_free];
    T.free_bytes[k] = T.free_bytes[T.n_free];
}

static void free_push(void *p, size_t bytes)
{
    char *lo = p, *hi = lo + bytes;
    if (!TG_ARENA_SEPARATE_DATA) /* merge with listed neighbours (separate allocations never touch) */
        for (int64_t k = T.n_free - 1; k >= 0; k--) {
            char *q = T.free_grads[k];
            if (q + T.free_bytes[k] == lo) lo = q;
            else if (q == hi) hi = q + T.free_bytes[k];
            else continue;
            free_remove(k);
            k = T.n_free; /* the merged piece may touch more: scan again */
        }
    if (T.n_free == FREE_CAP) return; /* the bytes stay unused until the clear */
    T.free_grads[T.n_free] = lo;
    T.free_bytes[T.n_free++] = (size_t)(hi - lo);
}

static void *free_take(size_t bytes)
{
    int64_t best = -1;
    for (int64_t k = T.n_free - 1; k >= 0; k--) {
        if (T.free_bytes[k] == bytes) {
            void *p = T.free_grads[k];
            free_remove(k);
            return p;
        }
        if (T.free_bytes[k] > bytes && (best < 0 || T.free_bytes[k] < T.free_bytes[best])) best = k;
    }
    if (best < 0) return NULL;
    char *p = T.free_grads[best];
    const size_t used = round_align(bytes), size = T.free_bytes[best];
    free_remove(best);
    if (size > used && size - used >= FREE_MIN_PIECE) free_push(p + used, size - used);
    return p;
}

/* The data of a tape tensor (or NULL): from the free list, else the arena. */
static void *step_data(size_t bytes) { return T.n_free ? free_take(bytes) : NULL; }

float *tg_grad(tg_tensor *t)
{
    if (!t->grad) {
        size_t bytes = (size_t)t->numel * sizeof(float);
        float *p = t->tape_owned ? step_data(bytes) : NULL;
        if (p) memset(p, 0, bytes);
        t->grad = p ? p : t->tape_owned ? tg_arena_calloc(bytes) : tg_calloc((size_t)t->numel, sizeof(float));
    }
    return t->grad;
}

float *tg_grad_fresh(tg_tensor *t, bool *fresh)
{
    *fresh = !t->grad;
    if (!t->grad) {
        size_t bytes = (size_t)t->numel * sizeof(float);
        float *p = t->tape_owned ? step_data(bytes) : NULL;
        t->grad = p ? p : t->tape_owned ? tg_arena_alloc(bytes) : tg_malloc(bytes);
    }
    return t->grad;
}

float *tg_grad_take_over(tg_tensor *to, tg_tensor *from)
{
    if (!T.release_grads || !T.root || from == T.root || !from->tape_owned || !from->grad || !to->tape_owned ||
        to->grad || to->dtype != TG_F32 || to->numel != from->numel || to->tape_gen != T.gen ||
        (to->data && to->data == from->data))
        return NULL;
    to->grad = from->grad;
    from->grad = NULL;
    return to->grad;
}

bool tg_set_retain_grad(bool retain)
{
    bool prev = !T.release_grads;
    T.release_grads = !retain;
    return prev;
}

bool tg_set_retain_values(bool retain)
{
    bool prev = !T.release_values;
    T.release_values = !retain;
    return prev;
}

/* An op output whose memory must stay: the tensor backward started from, or an output that is
 * (or shares data with) one of the node's inputs. */
static bool keep_output(const tg_node *n, const tg_tensor *root)
{
    const tg_tensor *o = n->out;
    if (o == root || !o->tape_owned) return true;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] == o || (n->in[k] && o->data && n->in[k]->data == o->data)) return true;
    return false;
}

/* After node n's backward nothing reads the gradient of its output again (its consumers came
 * later in forward order): give the buffer to the next tg_grad of the same size. */
static void release_grad(tg_node *n, const tg_tensor *root)
{
    tg_tensor *o = n->out;
    if (!o->grad || keep_output(n, root)) return;
    free_push(o->grad, (size_t)o->numel * sizeof(float));
    o->grad = NULL;
}

void tg_release_value(tg_tensor *t)
{
    if (!t || !t->tape_owned || t->tape_gen != T.gen || !t->data || t->numel == 0) return;
    if (poison_arena()) memset(t->data, 0xFF, (size_t)t->numel * sizeof(float));
    free_push(t->data, (size_t)t->numel * sizeof(float));
    t->data = NULL; /* released once; a read now fails loudly instead of seeing later data */
}

bool tg_set_grad_enabled(bool enabled)
{
    bool prev = !T.grad_disabled;
    T.grad_disabled = !enabled;
    return prev;
}

bool tg_grad_enabled(void) { return !T.grad_disabled; }

int64_t tg_tape_size(void) { return T.n_nodes; }

uint32_t tg_tape_generation(void) { return T.gen; }

const tg_op_def *tg_tape_node_op(int64_t k, int *n_in)
{
    if (k < 0 || k >= T.n_nodes) return NULL;
    if (n_in) *n_in = T.nodes[k]->n_in;
    return T.nodes[k]->op;
}

tg_tensor *tg_tape_node_out(int64_t k) { return k >= 0 && k < T.n_nodes ? T.nodes[k]->out : NULL; }

size_t tg_tape_bytes_reserved(void) { return T.reserved; }

size_t tg_tape_bytes_used(void) { return T.used; }

size_t tg_tape_bytes_peak(void) { return T.peak; }

void tg_tape_clear(void)
{
    for (int64_t k = 0; k < T.n_tensors; k++) T.tensors[k]->tape_gen = 0; /* retired */
    T.n_tensors = 0;
    T.n_nodes = 0;
    const bool poison = poison_arena();
    for (int64_t k = 0; k < T.n_separate; k++) tg_free(T.separate[k]);
    T.n_separate = 0;
    T.n_free = 0;
    if (TG_ARENA_SEPARATE_DATA) lent_give_back(-1); /* (ASan: their own allocations) */
    T.n_lent = 0; /* lent pieces die with the step */
    T.used = 0;
    T.peak = 0;
    T.walked = false;
    T.record_failed = NULL;
    if (++T.gen == 0) T.gen = 2; /* 0 marks retired tensors; 2 keeps the pools alternating */
    for (int c = 0; c < 2; c++)
        for (block *b = c ? T.small_blocks : T.blocks; b; b = b->next) {
            if (poison) memset(b->mem, 0xFF, b->used);
            b->used = 0;
        }
    T.cur = T.blocks;
    T.small_cur = T.small_blocks;
    /* the pool this step uses last served the step before the one just cleared: all retired */
    header_pool *p = &T.headers[T.gen & 1];
    for (hchunk *c = p->first; c; c = c->next) c->used = 0;
    p->cur = p->first;
}

static tg_status seed_and_walk(tg_tensor *out, const tg_tensor *grad_out)
{
    const char *who = grad_out ? "tg_backward_with" : "tg_backward";
    if (!out) {
        const char *prev = tg_last_error();
        return tg_error(TG_ERR_ARG, "%s: the output is NULL%s%s", who, prev[0] ? "; earlier error: " : "", prev);
    }
    if (out->dtype != TG_F32) return tg_error(TG_ERR_ARG, "%s: the output is an int64 tensor", who);
    if (out->tape_owned && out->tape_gen != T.gen)
        return tg_error(TG_ERR_STATE,
                        "%s: this tensor belongs to a tape that tg_tape_clear() already released; "
                        "run the forward pass again",
                        who);
    if (out->tape_owned && T.record_failed)
        return tg_error(TG_ERR_NOMEM,
                        "%s: the tape is incomplete (out of memory recording a %s op); call tg_tape_clear() and "
                        "run the forward pass again",
                        who, T.record_failed);
    if (!out->requires_grad)
        return tg_error(TG_ERR_STATE,
                        "%s: the output does not require grad (no input of its computation requires grad, "
                        "or it was computed with gradients disabled)",
                        who);
    if (T.walked && out->tape_owned)
        return tg_error(TG_ERR_STATE,
                        "%s: the tape was already walked by an earlier backward; call tg_tape_clear() and "
                        "run the forward pass again",
                        who);
    char a[96], b[96];
    if (grad_out) {
        if (grad_out->dtype != TG_F32 || grad_out->numel != out->numel)
            return tg_error(TG_ERR_SHAPE, "%s: upstream gradient %s does not match output %s", who,
                            tg_shape_str(grad_out, a, sizeof a), tg_shape_str(out, b, sizeof b));
    } else if (out->numel != 1) {
        return tg_error(TG_ERR_SHAPE,
                        "tg_backward: the output has shape %s; backward needs a scalar (or use "
                        "tg_backward_with and an upstream gradient)",
                        tg_shape_str(out, a, sizeof a));
    }
    const uint64_t errors = tg_error_count(); /* an earlier call's error is not this walk's */
    float *g = tg_grad(out);
    if (!g) return TG_ERR_NOMEM;
    for (int64_t i = 0; i < out->numel; i++) g[i] += grad_out ? grad_out->data[i] : 1.0f;
    if (!out->tape_owned) return TG_OK; /* a leaf: nothing to walk */
    T.root = out;
    for (int64_t k = T.n_nodes - 1; k >= 0; k--) {
        tg_node *n = T.nodes[k];
        if (!n->out->grad) continue;
        if (tg_profile_enabled()) {
            double t0 = tg_profile_clock();
            n->op->backward(n);
            tg_profile_backward_done(n->op, tg_profile_clock() - t0);
        } else {
            n->op->backward(n);
        }
        tg_scratch_give_back();
        if (T.release_grads) release_grad(n, out);
        /* its output's value was read by its consumers' backwards (run before) and its own */
        if (T.release_values && !keep_output(n, out)) tg_release_value(n->out);
        if (tg_error_count() != errors) break; /* an op ran out of memory: its inputs' gradients are incomplete */
    }
    T.walked = true;
    T.root = NULL;
    return tg_error_count() != errors ? tg_last_status() : TG_OK;
}

tg_status tg_backward(tg_tensor *loss) { return seed_and_walk(loss, NULL); }

tg_status tg_backward_with(tg_tensor *out, const tg_tensor *grad_out)
{
    if (!grad_out) return tg_error(TG_ERR_ARG, "tg_backward_with: upstream gradient is NULL");
    return seed_and_walk(out, grad_out);
}

void tg_tape_print(FILE *out)
{
    char a[96];
    fprintf(out, "tape: %lld ops, %zu bytes used, %zu reserved\n", (long long)T.n_nodes, T.used, T.reserved);
    for (int64_t k = 0; k < T.n_nodes; k++) {
        tg_node *n = T.nodes[k];
        fprintf(out, "  %4lld %-24s", (long long)k, n->op->name);
        for (int i = 0; i < n->n_in; i++) fprintf(out, "%s%s", i ? ", " : "", tg_shape_str(n->in[i], a, sizeof a));
        fprintf(out, " -> %s\n", tg_shape_str(n->out, a, sizeof a));
    }
}

/* ---- checks shared by ops ---- */

/* A tape tensor whose tape was cleared: its memory now belongs to later ops. */
static inline bool stale(const tg_tensor *t) { return t->tape_owned && t->tape_gen != T.gen; }

static bool stale_error(const char *op, const char *arg)
{
    tg_error(TG_ERR_STATE,
             "%s: %s belongs to a tape that tg_tape_clear() already released (its memory is reused by later ops); "
             "keep values across steps with tg_tensor_clone()",
             op, arg);
    return false;
}

bool tg_check_live(const char *op, const char *arg, const tg_tensor *t)
{
    return !t || !stale(t) || stale_error(op, arg);
}

bool tg_check_f32(const char *op, const char *arg, const tg_tensor *t)
{
    if (!t) {
        if (tg_last_status() == TG_OK) tg_error(TG_ERR_ARG, "%s: %s is NULL", op, arg);
        return false;
    }
    if (stale(t)) return stale_error(op, arg);
    if (t->dtype != TG_F32) {
        tg_error(TG_ERR_ARG, "%s: %s must be a float32 tensor, got int64", op, arg);
        return false;
    }
    return true;
}

bool tg_check_i64(const char *op, const char *arg, const tg_tensor *t)
{
    if (!t) {
        if (tg_last_status() == TG_OK) tg_error(TG_ERR_ARG, "%s: %s is NULL", op, arg);
        return false;
    }
    if (stale(t)) return stale_error(op, arg);
    if (t->dtype != TG_I64) {
        tg_error(TG_ERR_ARG, "%s: %s must be an int64 tensor of class indices, got float32", op, arg);
        return false;
    }
    return true;
}

bool tg_check_ndim(const char *op, const char *arg, const tg_tensor *t, int min_ndim, int max_ndim)
{
    if (t->ndim < min_ndim || t->ndim > max_ndim) {
        char a[96];
        if (min_ndim == max_ndim)
            tg_error(TG_ERR_SHAPE, "%s: %s must have %d dimensions, got shape %s", op, arg, min_ndim,
                     tg_shape_str(t, a, sizeof a));
        else
            tg_error(TG_ERR_SHAPE, "%s: %s must have %d to %d dimensions, got shape %s", op, arg, min_ndim,
                     max_ndim, tg_shape_str(t, a, sizeof a));
        return false;
    }
    return true;
}

bool tg_broadcast_shape(const char *op, const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int da = d - (n - a->ndim), db = d - (n - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char x[96], y[96];
            tg_error(TG_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast (dim %d: %lld vs %lld)", op,
                     tg_shape_str(a, x, sizeof x), tg_shape_str(b, y, sizeof y), d, (long long)sa,
                     (long long)sb);
            return false;
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return true;
}

bool tg_normalize_dim(const char *op, int ndim, int *dim)
{
    int n = ndim == 0 ? 1 : ndim;
    if (*dim < -n || *dim >= n) {
        tg_error(TG_ERR_ARG, "%s: dim %d is out of range for a %d-dimensional tensor", op, *dim, ndim);
        return false;
    }
    if (*dim < 0) *dim += n;
    return true;
}
