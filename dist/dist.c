/* tapegrad_dist: data parallelism over MPI (see dist.h). Built with TG_HAVE_MPI when CMake finds
 * MPI; without it every function is the single-process version (rank 0 of 1).
 *
 * Collectives are non-blocking calls completed by a polling loop (MPI_Test, then short sleeps):
 * a rank waiting for a slower one does not spin a core the others need, and a wait longer than
 * the timeout stops the job with a message instead of hanging. */
#include "dist.h"

#include "../data/data.h"

#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef TG_HAVE_MPI
#include <mpi.h>
#endif

static struct {
    bool initialized, finalized, mpi; /* mpi: MPI_Init was called by us */
    int rank, world;
    double timeout;
    size_t bucket_bytes;
    tg_dist_stats stats;
} D = {.world = 1, .timeout = 600.0, .bucket_bytes = (size_t)4 << 20};

#ifdef TG_HAVE_MPI
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif

int tg_dist_rank(void) { return D.rank; }
int tg_dist_world_size(void) { return D.world; }
bool tg_dist_is_main(void) { return D.rank == 0; }
void tg_dist_set_timeout(double seconds)
{
    if (seconds > 0) D.timeout = seconds;
}
void tg_dist_set_bucket_bytes(size_t bytes)
{
    if (bytes >= 1024) D.bucket_bytes = bytes;
}
tg_dist_stats tg_dist_get_stats(void) { return D.stats; }
void tg_dist_reset_stats(void) { memset(&D.stats, 0, sizeof D.stats); }

void tg_dist_shard(int64_t n, int64_t *start, int64_t *len) { tg_batch_shard(n, D.rank, D.world, start, len); }

tg_status tg_dist_check_batch(int64_t global_batch)
{
    if (global_batch < 1 || global_batch % D.world != 0)
        return tg_error(TG_ERR_ARG,
                        "the global batch of %lld samples cannot be split evenly over %d processes: use a multiple "
                        "of %d (--batch is the global batch; each process takes batch/%d)",
                        (long long)global_batch, D.world, D.world, D.world);
    return TG_OK;
}

_Noreturn void tg_dist_abort(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tapegrad dist: rank %d of %d: %s\n", D.rank, D.world, msg);
    fflush(stderr);
    fflush(stdout);
    if (code == 0) code = 1;
#ifdef TG_HAVE_MPI
    if (D.mpi && !D.finalized) {
        D.finalized = true; /* the atexit handler has nothing left to do */
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    _exit(code);
}

#ifdef TG_HAVE_MPI

const char *tg_dist_backend(void)
{
    static char name[MPI_MAX_LIBRARY_VERSION_STRING];
    if (!name[0]) {
        int len = 0;
        char full[MPI_MAX_LIBRARY_VERSION_STRING];
        MPI_Get_library_version(full, &len);
        char *comma = strchr(full, ',');
        if (comma) *comma = '\0';
        snprintf(name, sizeof name, "%s", full);
    }
    return name;
}

/* Runs at exit (on_exit: sees the status). A rank leaving with a failure status without
 * tg_dist_finalize stops the whole job, naming itself; a clean exit(0) (--help) finalizes. */
static void at_exit(int status, void *arg)
{
    (void)arg;
    if (!D.mpi || D.finalized) return;
    if (status != 0 && D.world > 1) {
        fprintf(stderr, "tapegrad dist: rank %d of %d is exiting with status %d (a failure: see its message above); "
                "stopping every rank\n", D.rank, D.world, status);
        fflush(stderr);
        D.finalized = true;
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    D.finalized = true;
    MPI_Finalize();
}

/* Started by mpirun (or another MPI launcher)? Then MPI_Init; otherwise stay rank 0 of 1 and
 * never touch MPI (a plain run needs no launcher and no network). */
static bool under_launcher(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                       "MPI_LOCALNRANKS", "SLURM_STEP_ID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

tg_status tg_dist_init(int *argc, char ***argv)
{
    if (D.initialized) return TG_OK;
    D.initialized = true;
    const char *t = getenv("TG_DIST_TIMEOUT");
    if (t && atof(t) > 0) D.timeout = atof(t);
    if (!under_launcher()) return TG_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return tg_error(TG_ERR_STATE, "tg_dist_init: MPI_Init_thread failed");
    D.mpi = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &D.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &D.world);
    on_exit(at_exit, NULL);
    return TG_OK;
}

tg_status tg_dist_finalize(void)
{
    if (D.mpi && !D.finalized) {
        D.finalized = true;
        MPI_Finalize();
    }
    return TG_OK;
}

int tg_dist_finish(int rc)
{
    if (rc == 0) {
        tg_dist_finalize();
        return 0;
    }
    if (D.mpi && !D.finalized && D.world > 1) tg_dist_abort(rc, "failed (exit code %d): stopping every rank", rc);
    return rc;
}

static void check_mpi(int err, const char *what)
{
    if (err == MPI_SUCCESS) return;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, s, &len);
    tg_dist_abort(1, "%s failed: %s", what, s);
}

/* Completes n requests, polling; stops the job after the timeout. */
static void wait_all(MPI_Request *req, int n, const char *what)
{
    const double t0 = now_s();
    for (;;) {
        int done = 0;
        check_mpi(MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE), what);
        if (done) break;
        double waited = now_s() - t0;
        if (waited > D.timeout) {
            char other[64] = "another rank";
            if (D.world == 2) snprintf(other, sizeof other, "rank %d", 1 - D.rank);
            tg_dist_abort(1,
                          "%s waited %.0f s for the other ranks (the timeout, TG_DIST_TIMEOUT): %s is stuck or "
                          "gone; stopping every rank",
                          what, waited, other);
        }
        /* Short waits (the other rank is about to arrive; each round of the collective needs this
         * rank's progress): poll, giving the core to any other runnable process between polls.
         * Long waits (rank 0 evaluating): sleep, so the waiting rank costs no CPU. */
        if (waited > 0.05) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        } else if (waited > 0.0005) {
            sched_yield();
        }
    }
    D.stats.collective_seconds += now_s() - t0;
}

static void iallreduce(void *buf, int64_t n, MPI_Datatype type, MPI_Op op, const char *what)
{
    const int64_t chunk = (int64_t)1 << 28;
    int nreq = (int)((n + chunk - 1) / chunk);
    MPI_Request reqs[64];
    if (nreq > 64) tg_dist_abort(1, "%s: %lld elements are too many for one call", what, (long long)n);
    size_t esz = type == MPI_DOUBLE ? 8 : type == MPI_FLOAT ? 4 : type == MPI_INT64_T ? 8 : 8;
    for (int i = 0; i < nreq; i++) {
        int64_t off = (int64_t)i * chunk, len = n - off < chunk ? n - off : chunk;
        check_mpi(MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * esz, (int)len, type, op,
                                 MPI_COMM_WORLD, &reqs[i]),
                  what);
    }
    wait_all(reqs, nreq, what);
}

static void ibcast(void *buf, int64_t bytes, const char *what)
{
    const int64_t chunk = (int64_t)1 << 30;
    for (int64_t off = 0; off < bytes; off += chunk) {
        MPI_Request r;
        int64_t len = bytes - off < chunk ? bytes - off : chunk;
        check_mpi(MPI_Ibcast((char *)buf + off, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD, &r), what);
        wait_all(&r, 1, what);
    }
}

tg_status tg_dist_allreduce_sum(double *buf, int64_t n)
{
    if (!buf && n > 0) return tg_error(TG_ERR_ARG, "tg_dist_allreduce_sum: buf is NULL");
    if (D.world > 1 && n > 0) iallreduce(buf, n, MPI_DOUBLE, MPI_SUM, "allreduce (sum)");
    return TG_OK;
}

tg_status tg_dist_barrier(void)
{
    if (D.world > 1) {
        MPI_Request r;
        check_mpi(MPI_Ibarrier(MPI_COMM_WORLD, &r), "barrier");
        wait_all(&r, 1, "barrier");
    }
    return TG_OK;
}

tg_status tg_dist_allreduce_grads(tg_param_list *list, int64_t local_n, int64_t global_n)
{
    const char *who = "tg_dist_allreduce_grads";
    if (!list) return tg_error(TG_ERR_ARG, "%s: list is NULL", who);
    if (local_n < 0 || global_n < 1 || local_n > global_n)
        return tg_error(TG_ERR_ARG, "%s: %lld local of %lld samples", who, (long long)local_n, (long long)global_n);
    if (D.world == 1 || list->block_numel == 0) return TG_OK;
    const double t0 = now_s();
    float *g = list->grad;
    const int64_t n = list->block_numel;
    if (local_n * D.world != global_n) { /* unequal slices: weight each rank's mean gradient by its share */
        const float w = (float)((double)local_n * D.world / (double)global_n);
        for (int64_t i = 0; i < n; i++) g[i] *= w;
    }
    int64_t bucket = (int64_t)(D.bucket_bytes / sizeof(float));
    int nb = (int)((n + bucket - 1) / bucket);
    MPI_Request stack[64], *reqs = nb <= 64 ? stack : malloc((size_t)nb * sizeof *reqs);
    if (!reqs) return tg_error(TG_ERR_NOMEM, "%s: out of memory", who);
    for (int b = 0; b < nb; b++) { /* every rank posts the same buckets in the same order */
        int64_t off = (int64_t)b * bucket, len = n - off < bucket ? n - off : bucket;
        check_mpi(MPI_Iallreduce(MPI_IN_PLACE, g + off, (int)len, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &reqs[b]),
                  "gradient allreduce");
    }
    wait_all(reqs, nb, "gradient allreduce");
    if (reqs != stack) free(reqs);
    const float inv = 1.0f / (float)D.world;
    for (int64_t i = 0; i < n; i++) g[i] *= inv;
    D.stats.allreduce_calls++;
    D.stats.allreduce_bytes += (double)n * sizeof(float);
    D.stats.allreduce_seconds += now_s() - t0;
    return TG_OK;
}

/* FNV-1a over names, kinds, dtypes and shapes (what must match), or also over the values. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t list_hash(const tg_param_list *list, bool values, int upto)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < upto && i < list->count; i++) {
        const tg_param_entry *e = &list->entries[i];
        const tg_tensor *t = e->tensor;
        h = fnv(h, e->name, strlen(e->name));
        h = fnv(h, &e->kind, sizeof e->kind);
        h = fnv(h, &t->dtype, sizeof t->dtype);
        h = fnv(h, &t->ndim, sizeof t->ndim);
        h = fnv(h, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        if (values)
            h = fnv(h, t->dtype == TG_F32 ? (const void *)t->data : (const void *)t->idata,
                    (size_t)t->numel * (t->dtype == TG_F32 ? 4 : 8));
    }
    return h;
}

/* Do all ranks agree on h? (MIN and MAX of its two halves.) */
static bool all_same(uint64_t h, const char *what)
{
    int64_t v[4] = {(int64_t)(h >> 1), -(int64_t)(h >> 1), (int64_t)(h & 1), -(int64_t)(h & 1)};
    iallreduce(v, 4, MPI_INT64_T, MPI_MAX, what);
    return v[0] == -v[1] && v[2] == -v[3];
}

tg_status tg_dist_broadcast_state(tg_param_list *list)
{
    const char *who = "tg_dist_broadcast_state";
    if (!list) return tg_error(TG_ERR_ARG, "%s: list is NULL", who);
    if (D.world == 1) return TG_OK;
    int64_t count[2] = {list->count, -(int64_t)list->count};
    iallreduce(count, 2, MPI_INT64_T, MPI_MAX, who);
    if (count[0] != -count[1])
        return tg_error(TG_ERR_STATE, "%s: the ranks registered different numbers of tensors (%lld here, %lld to %lld)",
                        who, (long long)list->count, (long long)-count[1], (long long)count[0]);
    if (!all_same(list_hash(list, false, list->count), who)) {
        /* find the first entry that differs, for the message */
        int lo = 0, hi = list->count; /* agree on [0, lo), differ somewhere in [0, hi) */
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            if (all_same(list_hash(list, false, mid), who)) lo = mid;
            else hi = mid;
        }
        return tg_error(TG_ERR_STATE,
                        "%s: the ranks built different models: tensor %d ('%s' here) differs in name or shape", who,
                        lo, list->entries[lo].name);
    }
    if (list->block_numel) ibcast(list->data, list->block_numel * (int64_t)sizeof(float), who);
    for (int i = 0; i < list->count; i++) {
        tg_param_entry *e = &list->entries[i];
        if (e->kind != TG_KIND_BUFFER || e->tensor->numel == 0) continue;
        tg_tensor *t = e->tensor;
        ibcast(t->dtype == TG_F32 ? (void *)t->data : (void *)t->idata,
               t->numel * (t->dtype == TG_F32 ? 4 : 8), who);
    }
    return TG_OK;
}

tg_status tg_dist_state_identical(const tg_param_list *list, bool *identical)
{
    if (!list || !identical) return tg_error(TG_ERR_ARG, "tg_dist_state_identical: NULL argument");
    *identical = D.world == 1 || all_same(list_hash(list, true, list->count), "tg_dist_state_identical");
    return TG_OK;
}

static tg_status bn_sum(double *buf, int64_t n, void *ctx)
{
    (void)ctx;
    if (D.world > 1) iallreduce(buf, n, MPI_DOUBLE, MPI_SUM, "SyncBatchNorm allreduce");
    return TG_OK;
}

#else /* no MPI: rank 0 of 1 */

const char *tg_dist_backend(void) { return "none (built without MPI)"; }

tg_status tg_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    D.initialized = true;
    return TG_OK;
}
tg_status tg_dist_finalize(void) { return TG_OK; }
int tg_dist_finish(int rc) { return rc; }
tg_status tg_dist_allreduce_sum(double *buf, int64_t n)
{
    if (!buf && n > 0) return tg_error(TG_ERR_ARG, "tg_dist_allreduce_sum: buf is NULL");
    return TG_OK;
}
tg_status tg_dist_barrier(void) { return TG_OK; }
tg_status tg_dist_allreduce_grads(tg_param_list *list, int64_t local_n, int64_t global_n)
{
    if (!list) return tg_error(TG_ERR_ARG, "tg_dist_allreduce_grads: list is NULL");
    if (local_n < 0 || global_n < 1 || local_n > global_n)
        return tg_error(TG_ERR_ARG, "tg_dist_allreduce_grads: %lld local of %lld samples", (long long)local_n,
                        (long long)global_n);
    return TG_OK;
}
tg_status tg_dist_broadcast_state(tg_param_list *list)
{
    return list ? TG_OK : tg_error(TG_ERR_ARG, "tg_dist_broadcast_state: list is NULL");
}
tg_status tg_dist_state_identical(const tg_param_list *list, bool *identical)
{
    if (!list || !identical) return tg_error(TG_ERR_ARG, "tg_dist_state_identical: NULL argument");
    *identical = true;
    return TG_OK;
}
static tg_status bn_sum(double *buf, int64_t n, void *ctx)
{
    (void)buf;
    (void)n;
    (void)ctx;
    return TG_OK;
}

#endif

static FILE *null_stream(void)
{
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    return f ? f : stderr;
}

void tg_dist_quiet_others(void)
{
    if (D.rank != 0) {
        fflush(stdout);
        if (!freopen("/dev/null", "w", stdout)) fprintf(stderr, "tapegrad dist: rank %d: cannot quiet stdout\n", D.rank);
    }
}

FILE *tg_dist_progress_stream(void) { return D.rank == 0 ? stderr : null_stream(); }

static const tg_bn_reducer BN_REDUCER = {bn_sum, NULL};

const tg_bn_reducer *tg_dist_bn_reducer(void) { return &BN_REDUCER; }

tg_status tg_dist_sync_batchnorm(tg_param_list *list, bool on)
{
    if (!list) return tg_error(TG_ERR_ARG, "tg_dist_sync_batchnorm: list is NULL");
    list->bn_sync = on && D.world > 1 ? &BN_REDUCER : NULL;
    return TG_OK;
}
