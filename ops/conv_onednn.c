/* conv2d forward, input gradient and weight gradient through oneDNN (the library behind
 * PyTorch's CPU convolutions), an optional dependency: CMake defines TG_HAVE_DNNL when it finds
 * libdnnl (Debian libdnnl-dev); without it the functions below only say so.
 *
 * Tensors stay NCHW / OIHW in tapegrad; oneDNN picks its own blocked layouts (nChw8c on AVX2,
 * nChw16c on AVX-512) and each call reorders into them in per-thread scratch (slots 1-3), as
 * PyTorch does; the primitives' scratchpads are scratch too (slot 4). Primitives are created once per shape and kept (a small cache, most recently
 * added first out when full). */
#include "../core/core_internal.h"
#include "conv_onednn.h"

#ifndef TG_HAVE_DNNL

bool tg_conv_onednn_built(void) { return false; }
bool tg_conv_onednn_winograd_ok(void) { return false; }
void tg_conv_onednn_cap_isa(int isa) { (void)isa; }
void tg_conv_onednn_forget(void) {}
static bool not_built(void)
{
    tg_error(TG_ERR_ARG, "conv2d: this build has no oneDNN");
    return false;
}
bool tg_conv_onednn_forward(const tg_conv_desc *d, const float *x, const float *w, const float *bias, float *y)
{
    (void)d, (void)x, (void)w, (void)bias, (void)y;
    return not_built();
}
bool tg_conv_onednn_backward_data(const tg_conv_desc *d, const float *dy, const float *w, float *dx, bool accumulate)
{
    (void)d, (void)dy, (void)w, (void)dx, (void)accumulate;
    return not_built();
}
bool tg_conv_onednn_backward_weights(const tg_conv_desc *d, const float *x, const float *dy, float *dw, float *db)
{
    (void)d, (void)x, (void)dy, (void)dw, (void)db;
    return not_built();
}
bool tg_conv_onednn_backward_weights_winograd(const tg_conv_desc *d, const float *x, const float *dy, float *dw,
                                               float *db)
{
    (void)d, (void)x, (void)dy, (void)dw, (void)db;
    return not_built();
}

#else

#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool tg_conv_onednn_built(void) { return true; }

static bool g_capped; /* tg_conv_onednn_cap_isa was called */

void tg_conv_onednn_cap_isa(int isa)
{
    /* refused (harmlessly) once oneDNN has created a primitive */
    dnnl_set_max_cpu_isa(isa >= 1 ? dnnl_cpu_isa_avx2 : dnnl_cpu_isa_sse41);
    g_capped = true;
}

bool tg_conv_onednn_winograd_ok(void)
{
    /* oneDNN's f32 Winograd is avx512_core only; its ISA may be capped by us or by the environment
     * (asking oneDNN itself, dnnl_get_effective_cpu_isa, would freeze its cap) */
    if (g_capped || !tg_cpu().avx512_skx) return false;
    const char *e = getenv("ONEDNN_MAX_CPU_ISA");
    if (!e) e = getenv("DNNL_MAX_CPU_ISA");
    return !e || !strncmp(e, "AVX512", 6) || !strcmp(e, "ALL") || !strncmp(e, "AVX10", 5);
}

/* oneDNN's Winograd kernel (jit_wino_4x3) picks its schedule and the blocking of its reduction
 * over channels from the number of threads when the primitive is created (with few threads the
 * "W_SGD" schedule, tiles per thread, whose channel blocks depend on the count; else "W_S_G_D",
 * whose blocking depends only on the shape and the caches). Different schedules round
 * differently: measured, 128->64 @32 forward and 64->128 @32 backward-data gave other bits at 1
 * and 2 threads. Creating the primitive while OpenMP reports this many threads always gives
 * W_S_G_D (W_SGD needs 1.5 tile blocks per thread); it runs on the threads there are at
 * execution. conv2d takes Winograd only below 1.5 * this many 4x4 tiles. */
#define WINO_PLAN_THREADS (1 << 22)

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

/* What a primitive needs beside itself: the layouts it wants and, where they differ from the
 * user's plain ones, the reorders in and out. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md[3];    /* the primitive's: [0] src / diff_src, [1] weights / diff_weights, [2] dst / diff_dst */
    dnnl_primitive_t to[3];      /* user -> primitive layout, NULL when equal */
    dnnl_primitive_t from[3];    /* primitive -> user layout (outputs), NULL when equal */
    dnnl_primitive_t from_add;   /* primitive -> user layout adding to the user's (dx accumulate) */
    dnnl_memory_desc_t scratch;  /* the primitive's scratchpad, passed by the caller (step memory, not oneDNN's) */
} prim_set;

enum { KIND_FWD, KIND_FWD_BIAS, KIND_BWD_DATA, KIND_BWD_WEIGHTS, KIND_BWD_WEIGHTS_BIAS, N_KINDS };
#define CACHE_SIZE 128 /* the UNet: ~40 (shape, kind) pairs with Winograd */

typedef struct {
    tg_conv_desc d;
    int kind;
    prim_set p;
} cache_entry;

static cache_entry g_cache[CACHE_SIZE];
static int g_cache_n, g_cache_next;

static bool ok(dnnl_status_t s, const char *what)
{
    if (s == dnnl_success) return true;
    tg_error(s == dnnl_out_of_memory ? TG_ERR_NOMEM : TG_ERR_ARG, "conv2d (oneDNN): %s failed (status %d)", what, (int)s);
    return false;
}

static bool init_engine(void)
{
    if (g_engine) return true;
    if (!ok(dnnl_engine_create(&g_engine, dnnl_cpu, 0), "engine")) return false;
    if (!ok(dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags), "stream")) {
        dnnl_engine_destroy(g_engine);
        g_engine = NULL;
        return false;
    }
    return true;
}

/* Plain user layouts: x nchw, weights oihw (goihw with groups), y nchw. */
static void user_mds(const tg_conv_desc *d, dnnl_memory_desc_t md[3], dnnl_memory_desc_t *bias_md)
{
    const dnnl_dims_t xd = {d->N, d->C, d->H, d->W}, yd = {d->N, d->O, d->Ho, d->Wo}, bd = {d->O};
    dnnl_memory_desc_init_by_tag(&md[0], 4, xd, dnnl_f32, dnnl_nchw);
    if (d->groups > 1) {
        const dnnl_dims_t wd = {d->groups, d->O / d->groups, d->C / d->groups, d->kh, d->kw};
        dnnl_memory_desc_init_by_tag(&md[1], 5, wd, dnnl_f32, dnnl_goihw);
    } else {
        const dnnl_dims_t wd = {d->O, d->C, d->kh, d->kw};
        dnnl_memory_desc_init_by_tag(&md[1], 4, wd, dnnl_f32, dnnl_oihw);
    }
    dnnl_memory_desc_init_by_tag(&md[2], 4, yd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(bias_md, 1, bd, dnnl_f32, dnnl_x);
}

static void any_mds(const dnnl_memory_desc_t user[3], dnnl_memory_desc_t any[3])
{
    for (int i = 0; i < 3; i++)
        dnnl_memory_desc_init_by_tag(&any[i], user[i].ndims, user[i].dims, dnnl_f32, dnnl_format_tag_any);
}

/* Which of a call's three tensors is its output: fwd dst [2], bwd-data diff_src [0], bwd-weights
 * diff_weights [1]. */
static int output_slot(int kind) { return kind == KIND_BWD_DATA ? 0 : kind >= KIND_BWD_WEIGHTS ? 1 : 2; }

static bool make_reorder(const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst, bool add, dnnl_primitive_t *out)
{
    *out = NULL;
    if (!add && dnnl_memory_desc_equal(src, dst)) return true;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    bool good = true;
    if (add) {
        good = ok(dnnl_primitive_attr_create(&attr), "attr") && ok(dnnl_post_ops_create(&po), "post-ops") &&
               ok(dnnl_post_ops_append_sum(po, 1.0f), "sum post-op") &&
               ok(dnnl_primitive_attr_set_post_ops(attr, po), "set post-ops");
    }
    dnnl_primitive_desc_t pd = NULL;
    good = good && ok(dnnl_reorder_primitive_desc_create(&pd, src, g_engine, dst, g_engine, attr), "reorder") &&
           ok(dnnl_primitive_create(out, pd), "reorder primitive");
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return good;
}

static void free_set(prim_set *p)
{
    if (p->prim) dnnl_primitive_destroy(p->prim);
    for (int i = 0; i < 3; i++) {
        if (p->to[i]) dnnl_primitive_destroy(p->to[i]);
        if (p->from[i]) dnnl_primitive_destroy(p->from[i]);
    }
    if (p->from_add) dnnl_primitive_destroy(p->from_add);
    memset(p, 0, sizeof *p);
}

static bool create_set(const tg_conv_desc *d, int kind, prim_set *p)
{
    memset(p, 0, sizeof *p);
    dnnl_memory_desc_t user[3], any[3], bias_md;
    user_mds(d, user, &bias_md);
    any_mds(user, any);
    const dnnl_dims_t strides = {d->sh, d->sw}, dil = {d->dh - 1, d->dw - 1}, pl = {d->ph, d->pw};
    /* right padding: what makes the output size come out (it may be less than pl with a stride) */
    const dnnl_dims_t pr = {(d->Ho - 1) * d->sh + (int64_t)(d->kh - 1) * d->dh + 1 - d->H - d->ph,
                            (d->Wo - 1) * d->sw + (int64_t)(d->kw - 1) * d->dw + 1 - d->W - d->pw};
    dnnl_convolution_desc_t fwd, cd;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    const dnnl_alg_kind_t alg = d->winograd ? dnnl_convolution_winograd : dnnl_convolution_direct;
    const int threads = omp_get_max_threads();
    const bool wino_dw = d->winograd && (kind == KIND_BWD_WEIGHTS || kind == KIND_BWD_WEIGHTS_BIAS);
    /* the Winograd weight gradient runs one image per thread on a plan for one thread (see
     * tg_conv_onednn_backward_weights_winograd), with the caller's scratchpad */
    if (d->winograd) omp_set_num_threads(wino_dw ? 1 : WINO_PLAN_THREADS);
    /* every primitive's scratchpad is the caller's: lent from the step's memory (tg_scratch_alloc),
     * instead of a buffer oneDNN keeps at its largest size beside the step (Winograd: 58 MB at crop 480) */
    dnnl_primitive_attr_t sattr = NULL;
    if (!ok(dnnl_primitive_attr_create(&sattr), "attr") ||
        !ok(dnnl_primitive_attr_set_scratchpad_mode(sattr, dnnl_scratchpad_mode_user), "scratchpad mode")) {
        if (sattr) dnnl_primitive_attr_destroy(sattr);
        omp_set_num_threads(threads);
        return false;
    }
    bool good = ok(dnnl_dilated_convolution_forward_desc_init(&fwd, dnnl_forward_training, alg,
                                                              &any[0], &any[1], kind == KIND_FWD_BIAS ? &bias_md : NULL,
                                                              &any[2], strides, dil, pl, pr),
                   "forward descriptor") &&
                ok(dnnl_primitive_desc_create(&fpd, &fwd, kind <= KIND_FWD_BIAS ? sattr : NULL, g_engine, NULL),
                   "forward primitive descriptor");
    if (good && kind == KIND_BWD_DATA)
        good = ok(dnnl_dilated_convolution_backward_data_desc_init(&cd, alg, &any[0], &any[1],
                                                                   &any[2], strides, dil, pl, pr),
                  "backward-data descriptor") &&
               ok(dnnl_primitive_desc_create(&pd, &cd, sattr, g_engine, fpd), "backward-data primitive descriptor");
    else if (good && (kind == KIND_BWD_WEIGHTS || kind == KIND_BWD_WEIGHTS_BIAS))
        good = ok(dnnl_dilated_convolution_backward_weights_desc_init(&cd, alg, &any[0], &any[1],
                                                                      kind == KIND_BWD_WEIGHTS_BIAS ? &bias_md : NULL,
                                                                      &any[2], strides, dil, pl, pr),
                  "backward-weights descriptor") &&
               ok(dnnl_primitive_desc_create(&pd, &cd, sattr, g_engine, fpd), "backward-weights primitive descriptor");
    else if (good) {
        pd = fpd;
        fpd = NULL;
    }
    dnnl_primitive_t prim = NULL;
    good = good && ok(dnnl_primitive_create(&prim, pd), "convolution primitive");
    if (d->winograd) omp_set_num_threads(threads);
    if (sattr) dnnl_primitive_attr_destroy(sattr);
    p->prim = prim;
    if (good) p->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (good) {
        static const dnnl_query_t q[N_KINDS][3] = {
            [KIND_FWD] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
            [KIND_FWD_BIAS] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
            [KIND_BWD_DATA] = {dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md},
            [KIND_BWD_WEIGHTS] = {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md},
            [KIND_BWD_WEIGHTS_BIAS] = {dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md}};
        const int out = output_slot(kind);
        for (int i = 0; i < 3 && good; i++) {
            p->md[i] = *dnnl_primitive_desc_query_md(pd, q[kind][i], 0);
            good = i == out ? make_reorder(&p->md[i], &user[i], false, &p->from[i])
                            : make_reorder(&user[i], &p->md[i], false, &p->to[i]);
        }
        if (good && kind == KIND_BWD_DATA) good = make_reorder(&p->md[0], &user[0], true, &p->from_add);
    }
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!good) free_set(p);
    return good;
}

/* The primitives for (d, kind), created on first use. Caller holds g_lock. */
static prim_set *lookup(const tg_conv_desc *d, int kind)
{
    if (!init_engine()) return NULL;
    for (int i = 0; i < g_cache_n; i++)
        if (g_cache[i].kind == kind && !memcmp(&g_cache[i].d, d, sizeof *d)) return &g_cache[i].p;
    cache_entry *e = &g_cache[g_cache_n < CACHE_SIZE ? g_cache_n++ : g_cache_next];
    if (g_cache_n == CACHE_SIZE) g_cache_next = (g_cache_next + 1) % CACHE_SIZE;
    free_set(&e->p);
    memset(&e->d, 0, sizeof e->d);
    if (!create_set(d, kind, &e->p)) {
        e->kind = -1;
        return NULL;
    }
    e->d = *d;
    e->kind = kind;
    return &e->p;
}

void tg_conv_onednn_forget(void)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_cache_n; i++) free_set(&g_cache[i].p);
    g_cache_n = g_cache_next = 0;
    pthread_mutex_unlock(&g_lock);
}

/* Scratch slot `slot` of this thread, 64-byte aligned whatever the allocator gives (an allocation
 * hook may return malloc's 16): oneDNN's Winograd kernels use aligned moves on its buffers. */
static void *scratch64(int slot, size_t bytes)
{
    char *p = tg_scratch_alloc(slot, bytes + 64);
    return p ? p + (64 - (uintptr_t)p % 64) % 64 : NULL;
}

static bool wrap(const dnnl_memory_desc_t *md, void *data, dnnl_memory_t *m)
{
    return ok(dnnl_memory_create(m, md, g_engine, data), "memory");
}

static bool run(dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args)
{
    return ok(dnnl_primitive_execute(prim, g_stream, nargs, args), "execute");
}

static bool reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return run(r, 2, a);
}

/* One call: the three tensors t[i] in user layout (outputs written there), inputs reordered into
 * the primitive's layouts in scratch slots 1-3, the primitive run, the output reordered back (or
 * added back, for add). */
static bool execute(const tg_conv_desc *d, int kind, float *t[3], const float *bias, bool add)
{
    static const int arg[N_KINDS][3] = {
        [KIND_FWD] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
        [KIND_FWD_BIAS] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
        [KIND_BWD_DATA] = {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
        [KIND_BWD_WEIGHTS] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST},
        [KIND_BWD_WEIGHTS_BIAS] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST}};
    const int out = output_slot(kind);
    pthread_mutex_lock(&g_lock);
    prim_set *p = lookup(d, kind);
    bool good = p != NULL;
    dnnl_memory_desc_t user[3], bias_md;
    user_mds(d, user, &bias_md);
    dnnl_memory_t um[3] = {0}, pm[3] = {0}, bm = NULL;
    for (int i = 0; i < 3 && good; i++) {
        good = wrap(&user[i], t[i], &um[i]);
        const bool reordered = i == out ? (p->from[i] || add) : p->to[i] != NULL;
        if (good && reordered) {
            float *buf = scratch64(1 + i, dnnl_memory_desc_get_size(&p->md[i]));
            good = buf && wrap(&p->md[i], buf, &pm[i]);
            if (good && i != out) good = reorder(p->to[i], um[i], pm[i]);
        } else if (good)
            good = wrap(&p->md[i], t[i], &pm[i]);
    }
    if (good && bias) good = wrap(&bias_md, (void *)bias, &bm);
    const size_t ss = dnnl_memory_desc_get_size(&p->scratch);
    dnnl_memory_t sm = NULL;
    if (good && ss) {
        void *sp = scratch64(4, ss);
        good = sp && wrap(&p->scratch, sp, &sm);
    }
    if (good) {
        dnnl_exec_arg_t a[5] = {{arg[kind][0], pm[0]}, {arg[kind][1], pm[1]}, {arg[kind][2], pm[2]}};
        int na = 3;
        if (bias) a[na++] = (dnnl_exec_arg_t){kind == KIND_BWD_WEIGHTS_BIAS ? DNNL_ARG_DIFF_BIAS : DNNL_ARG_BIAS, bm};
        if (sm) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sm};
        good = run(p->prim, na, a);
    }
    if (good && add) good = reorder(p->from_add, pm[out], um[out]);
    else if (good && p->from[out]) good = reorder(p->from[out], pm[out], um[out]);
    if (good) good = ok(dnnl_stream_wait(g_stream), "stream wait");
    for (int i = 0; i < 3; i++) {
        if (um[i]) dnnl_memory_destroy(um[i]);
        if (pm[i]) dnnl_memory_destroy(pm[i]);
    }
    if (bm) dnnl_memory_destroy(bm);
    if (sm) dnnl_memory_destroy(sm);
    pthread_mutex_unlock(&g_lock);
    return good;
}

/* Winograd: one image per call. The kernel's blocking of its channel sum depends on the number of
 * 4x4 tiles of the call, so on the batch size: an image would come out differently in a batch of
 * 2 than alone (data-parallel ranks of 1 image would not match one process of 2). */
bool tg_conv_onednn_forward(const tg_conv_desc *d, const float *x, const float *w, const float *bias, float *y)
{
    tg_conv_desc one = *d;
    if (d->winograd) one.N = 1;
    for (int64_t i = 0; i < d->N; i += one.N) {
        float *t[3] = {(float *)x + i * d->C * d->H * d->W, (float *)w, y + i * d->O * d->Ho * d->Wo};
        if (!execute(&one, bias ? KIND_FWD_BIAS : KIND_FWD, t, bias, false)) return false;
    }
    return true;
}

bool tg_conv_onednn_backward_data(const tg_conv_desc *d, const float *dy, const float *w, float *dx, bool accumulate)
{
    tg_conv_desc one = *d;
    if (d->winograd) one.N = 1;
    for (int64_t i = 0; i < d->N; i += one.N) {
        float *t[3] = {dx + i * d->C * d->H * d->W, (float *)w, (float *)dy + i * d->O * d->Ho * d->Wo};
        if (!execute(&one, KIND_BWD_DATA, t, NULL, accumulate)) return false;
    }
    return true;
}

bool tg_conv_onednn_backward_weights(const tg_conv_desc *d, const float *x, const float *dy, float *dw, float *db)
{
    /* One image per call, summed into dw (and db) in image order: oneDNN splits a batch's
     * reduction over its threads (the result would depend on their number), a single image's only
     * over output and input channel blocks. oneDNN writes the gradients: into scratch slot 0, then
     * added. */
    const int64_t n = d->O * (d->C / d->groups) * d->kh * d->kw;
    float *tmp = tg_scratch_alloc(0, (size_t)(n + d->O) * sizeof(float)), *tb = tmp + n;
    if (!tmp) return false;
    tg_conv_desc one = *d;
    one.N = 1;
    for (int64_t i = 0; i < d->N; i++) {
        float *t[3] = {(float *)x + i * d->C * d->H * d->W, tmp, (float *)dy + i * d->O * d->Ho * d->Wo};
        if (!execute(&one, db ? KIND_BWD_WEIGHTS_BIAS : KIND_BWD_WEIGHTS, t, db ? tb : NULL, false)) return false;
        for (int64_t k = 0; k < n; k++) dw[k] += tmp[k];
        for (int64_t k = 0; k < d->O && db; k++) db[k] += tb[k];
    }
    return true;
}

/* The work memory of one thread's wino_dw_image, in 64-byte units: x and dy in the primitive's
 * layouts, its weight gradient, its scratchpad. */
static size_t wino_dw_work(const prim_set *p, size_t *sx, size_t *sy, size_t *sw, size_t *ss)
{
    *sx = (dnnl_memory_desc_get_size(&p->md[0]) + 63) / 64 * 64;
    *sy = (dnnl_memory_desc_get_size(&p->md[2]) + 63) / 64 * 64;
    *sw = (dnnl_memory_desc_get_size(&p->md[1]) + 63) / 64 * 64;
    *ss = (dnnl_memory_desc_get_size(&p->scratch) + 63) / 64 * 64;
    return *sx + *sy + *sw + *ss;
}

/* One image's weight (and bias) gradient through the Winograd primitive p on this thread alone,
 * in work (64-byte aligned, wino_dw_work bytes): x and dy reordered into the primitive's layouts,
 * its gradient (then reordered into out, oihw), its scratchpad; the bias gradient into out + n. */
static bool wino_dw_image(const prim_set *p, const tg_conv_desc *one, const float *x, const float *dy, float *out,
                          int64_t n, bool bias, char *work)
{
    dnnl_memory_desc_t user[3], bias_md;
    user_mds(one, user, &bias_md);
    size_t sx, sy, sw, ss;
    wino_dw_work(p, &sx, &sy, &sw, &ss);
    char *io = work, *wb = work + sx + sy, *sp = ss ? wb + sw : NULL;
    dnnl_stream_t st = NULL;
    dnnl_memory_t ux = NULL, uy = NULL, uw = NULL, px = NULL, py = NULL, pw = NULL, ms = NULL, mb = NULL;
    bool good = ok(dnnl_stream_create(&st, g_engine, dnnl_stream_default_flags), "stream") &&
                wrap(&user[0], (void *)x, &ux) && wrap(&user[2], (void *)dy, &uy) && wrap(&user[1], out, &uw) &&
                wrap(&p->md[0], p->to[0] ? io : (void *)x, &px) &&
                wrap(&p->md[2], p->to[2] ? io + sx : (void *)dy, &py) &&
                wrap(&p->md[1], p->from[1] ? (void *)wb : out, &pw) && (!ss || wrap(&p->scratch, sp, &ms)) &&
                (!bias || wrap(&bias_md, out + n, &mb));
    const dnnl_exec_arg_t rx[2] = {{DNNL_ARG_FROM, ux}, {DNNL_ARG_TO, px}}, ry[2] = {{DNNL_ARG_FROM, uy}, {DNNL_ARG_TO, py}};
    const dnnl_exec_arg_t rw[2] = {{DNNL_ARG_FROM, pw}, {DNNL_ARG_TO, uw}};
    const dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, px}, {DNNL_ARG_DIFF_DST, py}, {DNNL_ARG_DIFF_WEIGHTS, pw},
                                  {DNNL_ARG_SCRATCHPAD, ms}, {DNNL_ARG_DIFF_BIAS, mb}};
    good = good && (!p->to[0] || ok(dnnl_primitive_execute(p->to[0], st, 2, rx), "execute")) &&
           (!p->to[2] || ok(dnnl_primitive_execute(p->to[2], st, 2, ry), "execute")) &&
           ok(dnnl_primitive_execute(p->prim, st, bias ? 5 : 4, a), "execute") &&
           (!p->from[1] || ok(dnnl_primitive_execute(p->from[1], st, 2, rw), "execute")) &&
           ok(dnnl_stream_wait(st), "stream wait");
    dnnl_memory_t all[8] = {ux, uy, uw, px, py, pw, ms, mb};
    for (int i = 0; i < 8; i++)
        if (all[i]) dnnl_memory_destroy(all[i]);
    if (st) dnnl_stream_destroy(st);
    return good;
}

bool tg_conv_onednn_backward_weights_winograd(const tg_conv_desc *d, const float *x, const float *dy, float *dw,
                                               float *db)
{
    /* oneDNN's Winograd weight gradient splits its reduction over tiles among its threads, so its
     * result depends on their number. Instead: a plan for one thread, one image per call, images
     * spread over tapegrad's threads (each call runs on its thread alone), every image's gradient
     * into its own slot of scratch slot 0, summed in image order. The threads' work memory is
     * this thread's scratch slot 1, a piece each (lent from the step's memory: workers have none). */
    tg_conv_desc one = *d;
    one.N = 1;
    one.winograd = 1;
    const int kind = db ? KIND_BWD_WEIGHTS_BIAS : KIND_BWD_WEIGHTS;
    pthread_mutex_lock(&g_lock);
    prim_set *found = lookup(&one, kind);
    prim_set p;
    if (found) p = *found; /* the handles stay valid: the cache is not touched while this runs */
    pthread_mutex_unlock(&g_lock);
    if (!found) return false;
    const int64_t n = d->O * (d->C / d->groups) * d->kh * d->kw, per = n + d->O;
    float *parts = tg_scratch_alloc(0, (size_t)(d->N * per) * sizeof(float));
    if (!parts) return false;
    /* (as the direct kernels: small layers on the calling thread alone) */
    const bool par = d->N * n * d->Ho * d->Wo > 4 * TG_PARALLEL_MIN;
    int64_t nt = par ? (omp_get_max_threads() < d->N ? omp_get_max_threads() : d->N) : 1;
    if (nt > 64) nt = 64;
    size_t sx, sy, sw, ss;
    const size_t per_thread = wino_dw_work(&p, &sx, &sy, &sw, &ss);
    void *work[64];
    if (!tg_scratch_alloc_each(1, (int)nt, per_thread + 64, work)) return false;
    for (int64_t t = 0; t < nt; t++) work[t] = (char *)work[t] + (64 - (uintptr_t)work[t] % 64) % 64;
    bool good = true;
#pragma omp parallel for schedule(static) num_threads(nt) reduction(&& : good) if (par)
    for (int64_t i = 0; i < d->N; i++) {
        omp_set_num_threads(1); /* oneDNN inside: this thread only (this task's setting) */
        good = wino_dw_image(&p, &one, x + i * d->C * d->H * d->W, dy + i * d->O * d->Ho * d->Wo, parts + i * per, n,
                             db != NULL, work[omp_get_thread_num()]) && good;
    }
    if (!good) {
        tg_error(TG_ERR_NOMEM, "conv2d (oneDNN Winograd weight gradient): out of memory or failed on a thread");
        return false;
    }
    for (int64_t i = 0; i < d->N; i++) {
        const float *pi = parts + i * per;
        for (int64_t k = 0; k < n; k++) dw[k] += pi[k];
        for (int64_t k = 0; k < d->O && db; k++) db[k] += pi[n + k];
    }
    return true;
}

#endif
