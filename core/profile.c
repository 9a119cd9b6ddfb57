/* Op profiler: wall time per op type, forward and backward, for this thread's tape.
 * Forward time of an op runs from its first tg_output_new to its tg_record (so an op that
 * calls other ops is charged their time too); backward time is its backward function.
 * One slot per op of the list (ops/op_list.h), found by the op's id; ops outside the list
 * (a test's own) share a few slots found by address. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_UNLISTED 32

typedef struct {
    const tg_op_def *op;
    double fwd, bwd;
    int64_t n_fwd, n_bwd;
} op_time;

typedef struct {
    bool on;
    bool pending;            /* an op's output exists, its tg_record has not come yet */
    double mark;             /* when that output was made */
    op_time listed[TG_OP_COUNT];    /* by id; op NULL: not seen since the last reset */
    op_time unlisted[MAX_UNLISTED];
    int n_unlisted;
} profile_state;

static _Thread_local profile_state P;

double tg_profile_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool tg_profile_enabled(void) { return P.on; }

void tg_profile_enable(bool on)
{
    P.on = on;
    P.pending = false;
}

void tg_profile_reset(void)
{
    memset(P.listed, 0, sizeof P.listed);
    P.n_unlisted = 0;
    P.pending = false;
}

static op_time *slot(const tg_op_def *op)
{
    op_time *s;
    if (op->id > TG_OP_NONE && op->id < TG_OP_COUNT) {
        s = &P.listed[op->id];
        if (s->op) return s;
    } else {
        for (int k = 0; k < P.n_unlisted; k++)
            if (P.unlisted[k].op == op) return &P.unlisted[k];
        if (P.n_unlisted == MAX_UNLISTED) return NULL;
        s = &P.unlisted[P.n_unlisted++];
    }
    memset(s, 0, sizeof *s);
    s->op = op;
    return s;
}

void tg_profile_output_made(void)
{
    if (P.on && !P.pending) {
        P.pending = true;
        P.mark = tg_profile_clock();
    }
}

void tg_profile_recorded(const tg_op_def *op)
{
    if (!P.on || !P.pending) return;
    P.pending = false;
    op_time *s = slot(op);
    if (s) {
        s->fwd += tg_profile_clock() - P.mark;
        s->n_fwd++;
    }
}

void tg_profile_backward_done(const tg_op_def *op, double seconds)
{
    op_time *s = slot(op);
    if (s) {
        s->bwd += seconds;
        s->n_bwd++;
    }
}

static int by_total(const void *a, const void *b)
{
    const op_time *x = a, *y = b;
    double tx = x->fwd + x->bwd, ty = y->fwd + y->bwd;
    return (tx < ty) - (tx > ty);
}

void tg_profile_print(FILE *out)
{
    op_time sorted[TG_OP_COUNT + MAX_UNLISTED];
    int n = 0;
    for (int id = 0; id < TG_OP_COUNT; id++)
        if (P.listed[id].op) sorted[n++] = P.listed[id];
    for (int k = 0; k < P.n_unlisted; k++) sorted[n++] = P.unlisted[k];
    qsort(sorted, (size_t)n, sizeof *sorted, by_total);
    double all = 0.0;
    for (int k = 0; k < n; k++) all += sorted[k].fwd + sorted[k].bwd;
    fprintf(out, "%-26s %8s %10s %8s %10s %7s\n", "op", "calls", "fwd ms", "bwd calls", "bwd ms", "share");
    for (int k = 0; k < n; k++) {
        const op_time *s = &sorted[k];
        fprintf(out, "%-26s %8lld %10.1f %8lld %10.1f %6.1f%%\n", s->op->name, (long long)s->n_fwd, 1e3 * s->fwd,
                (long long)s->n_bwd, 1e3 * s->bwd, all > 0 ? 100.0 * (s->fwd + s->bwd) / all : 0.0);
    }
    fprintf(out, "%-26s %8s %10s %8s %10s %7s\ntotal %.1f ms\n", "", "", "", "", "", "", 1e3 * all);
}
