/* Mini-batches from a dataset: a seeded permutation per epoch, each sample with
 * its own RNG stream from (seed, epoch, index), prepared ahead by background
 * threads. Batches are numbered globally (g = epoch * batches_per_epoch + k);
 * worker threads claim numbers in order while fewer than `prefetch` batches are
 * waiting, and batch g lives in slot g % prefetch until the consumer takes it.
 * What a batch holds depends only on the seed and g, never on timing. */
#include "data_internal.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void tg_rng_seed3(tg_rng *rng, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix64(a + 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ (b + 0x632be59bd9b4e019ULL));
    h = mix64(h ^ (c + 0x8cb92ba72f3d8dd7ULL));
    tg_rng_seed(rng, h);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tg_dataset_free(tg_dataset *ds)
{
    if (!ds) return;
    if (ds->destroy) ds->destroy(ds);
    tg_free(ds);
}

/* ---- tensor dataset ---------------------------------------------------- */

typedef struct {
    const tg_tensor *x, *y;
} tensor_ds;

static tg_status tensor_shape(const tg_dataset *d, int64_t index, int *xn, int64_t *xs, int *yn, int64_t *ys)
{
    (void)index;
    const tensor_ds *t = d->ctx;
    *xn = t->x->ndim - 1;
    for (int i = 1; i < t->x->ndim; i++) xs[i - 1] = t->x->shape[i];
    *yn = t->y ? t->y->ndim - 1 : 0;
    for (int i = 1; t->y && i < t->y->ndim; i++) ys[i - 1] = t->y->shape[i];
    return TG_OK;
}

static tg_status tensor_get(const tg_dataset *d, int64_t index, tg_rng *rng, float *x, int64_t *y)
{
    (void)rng;
    const tensor_ds *t = d->ctx;
    int64_t xr = t->x->numel / t->x->shape[0];
    memcpy(x, t->x->data + index * xr, sizeof(float) * (size_t)xr);
    if (t->y) {
        int64_t yr = t->y->numel / t->y->shape[0];
        memcpy(y, t->y->idata + index * yr, sizeof(int64_t) * (size_t)yr);
    } else {
        y[0] = 0;
    }
    return TG_OK;
}

static void tensor_destroy(tg_dataset *d) { tg_free(d->ctx); }

tg_dataset *tg_tensor_dataset_new(const tg_tensor *x, const tg_tensor *y)
{
    const char *who = "tg_tensor_dataset_new";
    if (!x) {
        tg_error(TG_ERR_ARG, "%s: x is NULL", who);
        return NULL;
    }
    if (x->dtype != TG_F32 || x->ndim < 1 || x->shape[0] < 1) {
        tg_error(TG_ERR_ARG, "%s: x must be a float tensor (N, ...) with N >= 1", who);
        return NULL;
    }
    if (y && (y->dtype != TG_I64 || y->ndim < 1 || y->shape[0] != x->shape[0])) {
        tg_error(TG_ERR_SHAPE, "%s: y must be an int64 tensor with %lld rows like x", who, (long long)x->shape[0]);
        return NULL;
    }
    tensor_ds *t = tg_malloc(sizeof *t);
    tg_dataset *d = t ? tg_calloc(1, sizeof *d) : NULL;
    if (!d) {
        tg_free(t);
        return NULL;
    }
    t->x = x;
    t->y = y;
    d->length = x->shape[0];
    d->sample_shape = tensor_shape;
    d->get = tensor_get;
    d->destroy = tensor_destroy;
    d->ctx = t;
    return d;
}

/* ---- the loader -------------------------------------------------------- */

typedef struct {
    int64_t g;            /* batch number held, -1 if empty */
    tg_tensor *x, *y;
    tg_status status;
    char message[512];
} slot;

/* One thread's copy of an epoch's order, recomputed when the epoch changes. */
typedef struct {
    int64_t epoch;
    int64_t *order;
} order_cache;

struct tg_loader {
    const tg_dataset *ds;
    tg_loader_options opt;
    int64_t per_epoch;
    /* consumer */
    int64_t consumed;     /* batches taken, including the end-of-epoch marks' batches */
    int64_t next_in_epoch;
    int64_t epoch;
    tg_loader_stats stats;
    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *slots;
    int64_t next_claim;
    bool stop;
    double produce_seconds;
    pthread_t *threads;
    int n_threads;
    order_cache cache; /* workers == 0 */
};

tg_loader_options tg_loader_defaults(int64_t batch_size, uint64_t seed)
{
    tg_loader_options o = {.batch_size = batch_size, .shuffle = false, .seed = seed, .workers = 1, .prefetch = 2};
    return o;
}

/* Dataset index at position pos of epoch e. */
static void epoch_order(const tg_loader *l, int64_t epoch, int64_t *order)
{
    int64_t n = l->ds->length;
    if (l->opt.shuffle) {
        tg_rng r;
        tg_rng_seed3(&r, l->opt.seed, (uint64_t)epoch, UINT64_MAX);
        tg_rng_permutation(&r, order, n);
    } else {
        for (int64_t i = 0; i < n; i++) order[i] = i;
    }
}

/* Builds global batch g; returns the status (the message stays in this thread's error). */
static tg_status produce(const tg_loader *l, order_cache *cache, int64_t g, tg_tensor **xo, tg_tensor **yo)
{
    *xo = *yo = NULL;
    const tg_dataset *ds = l->ds;
    int64_t epoch = g / l->per_epoch, k = g % l->per_epoch, n = ds->length;
    int64_t start = k * l->opt.batch_size;
    int64_t count = start + l->opt.batch_size <= n ? l->opt.batch_size : n - start;
    if (l->opt.shard_count > 1) {
        int64_t s0, len;
        tg_batch_shard(count, l->opt.shard_rank, l->opt.shard_count, &s0, &len);
        start += s0;
        count = len;
    }
    if (!cache->order) {
        cache->order = tg_malloc(sizeof(int64_t) * (size_t)n);
        if (!cache->order) return TG_ERR_NOMEM;
        cache->epoch = -1;
    }
    if (cache->epoch != epoch) {
        epoch_order(l, epoch, cache->order);
        cache->epoch = epoch;
    }
    const int64_t *order = cache->order;
    tg_status st = TG_OK;
    int xn = 0, yn = 0;
    int64_t xs[TG_MAX_DIMS], ys[TG_MAX_DIMS];
    st = ds->sample_shape(ds, order[start], &xn, xs + 1, &yn, ys + 1);
    if (st == TG_OK && (xn + 1 > TG_MAX_DIMS || yn + 1 > TG_MAX_DIMS))
        st = tg_error(TG_ERR_SHAPE, "loader: samples with %d and %d dimensions do not fit a batch", xn, yn);
    if (st == TG_OK) {
        xs[0] = ys[0] = count;
        *xo = tg_tensor_new(TG_F32, xn + 1, xs);
        *yo = tg_tensor_new(TG_I64, yn + 1, ys);
        if (!*xo || !*yo) st = TG_ERR_NOMEM;
    }
    int64_t xr = st == TG_OK ? (*xo)->numel / count : 0, yr = st == TG_OK ? (*yo)->numel / count : 0;
    for (int64_t s = 0; s < count && st == TG_OK; s++) {
        int64_t index = order[start + s];
        int xn2, yn2;
        int64_t xs2[TG_MAX_DIMS], ys2[TG_MAX_DIMS];
        st = ds->sample_shape(ds, index, &xn2, xs2, &yn2, ys2);
        if (st != TG_OK) break;
        if (xn2 != xn || yn2 != yn || memcmp(xs2, xs + 1, sizeof(int64_t) * (size_t)xn) != 0 ||
            memcmp(ys2, ys + 1, sizeof(int64_t) * (size_t)yn) != 0) {
            char a[96], b[96];
            st = tg_error(TG_ERR_SHAPE,
                          "loader: sample %lld has shape %s but batch %lld of epoch %lld started with %s; samples "
                          "of different sizes need batch_size 1",
                          (long long)index, tg_dims_str(xn2, xs2, a, sizeof a), (long long)k, (long long)epoch,
                          tg_dims_str(xn, xs + 1, b, sizeof b));
            break;
        }
        tg_rng r;
        tg_rng_seed3(&r, l->opt.seed, (uint64_t)epoch, (uint64_t)index);
        st = ds->get(ds, index, &r, (*xo)->data + s * xr, (*yo)->idata + s * yr);
        if (st != TG_OK) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", tg_last_error());
            st = tg_error(st, "loader: sample %lld (batch %lld of epoch %lld): %s", (long long)index, (long long)k,
                          (long long)epoch, msg);
        }
    }
    if (st != TG_OK) {
        if (tg_last_status() == TG_OK) tg_error(st, "loader: batch %lld failed", (long long)g);
        tg_tensor_free(*xo);
        tg_tensor_free(*yo);
        *xo = *yo = NULL;
    }
    return st;
}

static void *worker_main(void *arg)
{
    tg_loader *l = arg;
    order_cache cache = {-1, NULL};
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_claim >= l->consumed + l->opt.prefetch) pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop) break;
        int64_t g = l->next_claim++;
        pthread_mutex_unlock(&l->mu);
        double t0 = now_seconds();
        tg_tensor *x, *y;
        tg_clear_error();
        tg_status st = produce(l, &cache, g, &x, &y);
        double dt = now_seconds() - t0;
        pthread_mutex_lock(&l->mu);
        slot *s = &l->slots[g % l->opt.prefetch];
        s->g = g;
        s->x = x;
        s->y = y;
        s->status = st;
        snprintf(s->message, sizeof s->message, "%s", st == TG_OK ? "" : tg_last_error());
        l->produce_seconds += dt;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    tg_free(cache.order);
    return NULL;
}

static void stop_workers(tg_loader *l)
{
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
    l->n_threads = 0;
}

void tg_loader_free(tg_loader *l)
{
    if (!l) return;
    stop_workers(l);
    for (int i = 0; l->slots && i < l->opt.prefetch; i++) {
        tg_tensor_free(l->slots[i].x);
        tg_tensor_free(l->slots[i].y);
    }
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    tg_free(l->slots);
    tg_free(l->threads);
    tg_free(l->cache.order);
    tg_free(l);
}

tg_loader *tg_loader_new(const tg_dataset *ds, const tg_loader_options *opt)
{
    const char *who = "tg_loader_new";
    if (!ds || !opt || !ds->get || !ds->sample_shape) {
        tg_error(TG_ERR_ARG, "%s: NULL dataset or options", who);
        return NULL;
    }
    if (ds->length < 1 || opt->batch_size < 1 || opt->workers < 0 || opt->workers > 64 || opt->start_epoch < 0) {
        tg_error(TG_ERR_ARG,
                 "%s: dataset length %lld, batch_size %lld, workers %d, start_epoch %lld (need >= 1, >= 1, 0..64, >= 0)",
                 who, (long long)ds->length, (long long)opt->batch_size, opt->workers, (long long)opt->start_epoch);
        return NULL;
    }
    int64_t per_epoch = opt->drop_last ? ds->length / opt->batch_size
                                       : (ds->length + opt->batch_size - 1) / opt->batch_size;
    if (per_epoch == 0) {
        tg_error(TG_ERR_ARG, "%s: drop_last with batch_size %lld leaves no batch from %lld samples", who,
                 (long long)opt->batch_size, (long long)ds->length);
        return NULL;
    }
    if (opt->shard_count < 0 || opt->shard_rank < 0 || (opt->shard_count > 0 && opt->shard_rank >= opt->shard_count) ||
        (opt->shard_count == 0 && opt->shard_rank != 0)) {
        tg_error(TG_ERR_ARG, "%s: shard_rank %d of shard_count %d (need 0 <= rank < count)", who, opt->shard_rank,
                 opt->shard_count);
        return NULL;
    }
    if (opt->shard_count > 1) {
        if (opt->batch_size % opt->shard_count != 0) {
            tg_error(TG_ERR_ARG,
                     "%s: the batch of %lld samples cannot be split evenly over %d processes: use a batch size "
                     "that is a multiple of %d",
                     who, (long long)opt->batch_size, opt->shard_count, opt->shard_count);
            return NULL;
        }
        int64_t last = ds->length % opt->batch_size;
        if (!opt->drop_last && last > 0 && last < opt->shard_count) {
            tg_error(TG_ERR_ARG,
                     "%s: the last batch of an epoch has %lld samples, fewer than the %d processes sharing it: "
                     "drop it (drop_last) or choose a batch size that leaves at least %d",
                     who, (long long)last, opt->shard_count, opt->shard_count);
            return NULL;
        }
    }
    tg_loader *l = tg_calloc(1, sizeof *l);
    if (!l) return NULL;
    l->ds = ds;
    l->opt = *opt;
    if (l->opt.prefetch < l->opt.workers + 1) l->opt.prefetch = l->opt.workers + 1;
    l->per_epoch = per_epoch;
    l->epoch = opt->start_epoch;
    l->consumed = l->next_claim = opt->start_epoch * per_epoch;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->slots = tg_calloc((size_t)l->opt.prefetch, sizeof(slot));
    l->threads = tg_calloc((size_t)(l->opt.workers ? l->opt.workers : 1), sizeof(pthread_t));
    if (!l->slots || !l->threads) {
        tg_loader_free(l);
        return NULL;
    }
    for (int i = 0; i < l->opt.prefetch; i++) l->slots[i].g = -1;
    for (int i = 0; i < l->opt.workers; i++) {
        if (pthread_create(&l->threads[i], NULL, worker_main, l) != 0) {
            tg_loader_free(l);
            tg_error(TG_ERR_STATE, "%s: cannot start worker thread %d", who, i);
            return NULL;
        }
        l->n_threads++;
    }
    return l;
}

void tg_batch_shard(int64_t n, int rank, int count, int64_t *start, int64_t *len)
{
    if (count < 1) count = 1;
    if (rank < 0 || rank >= count) rank = 0;
    int64_t a = n * rank / count, b = n * (rank + 1) / count;
    *start = a;
    *len = b - a;
}

int64_t tg_loader_batches_per_epoch(const tg_loader *l) { return l ? l->per_epoch : 0; }

tg_loader_stats tg_loader_get_stats(const tg_loader *l)
{
    tg_loader_stats s = {0, 0, 0};
    if (!l) return s;
    s = l->stats;
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    s.produce_seconds += l->produce_seconds;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return s;
}

void tg_batch_free(tg_batch *b)
{
    if (!b) return;
    tg_tensor_free(b->x);
    tg_tensor_free(b->y);
    b->x = b->y = NULL;
}

tg_status tg_loader_next(tg_loader *l, tg_batch *b)
{
    if (!b) return tg_error(TG_ERR_ARG, "tg_loader_next: batch is NULL");
    memset(b, 0, sizeof *b);
    if (!l) return tg_error(TG_ERR_ARG, "tg_loader_next: loader is NULL");
    if (l->next_in_epoch == l->per_epoch) { /* end of the epoch: report it once */
        l->next_in_epoch = 0;
        l->epoch++;
        return TG_OK;
    }
    int64_t g = l->consumed;
    b->epoch = l->epoch;
    b->index = l->next_in_epoch;
    {
        int64_t first = b->index * l->opt.batch_size, left = l->ds->length - first;
        b->global_size = left < l->opt.batch_size ? left : l->opt.batch_size;
    }
    tg_status st;
    if (l->opt.workers == 0) {
        double t0 = now_seconds();
        st = produce(l, &l->cache, g, &b->x, &b->y);
        l->stats.produce_seconds += now_seconds() - t0;
    } else {
        double t0 = now_seconds();
        pthread_mutex_lock(&l->mu);
        slot *s = &l->slots[g % l->opt.prefetch];
        while (s->g != g) pthread_cond_wait(&l->cv, &l->mu);
        b->x = s->x;
        b->y = s->y;
        st = s->status;
        char msg[sizeof s->message];
        memcpy(msg, s->message, sizeof msg);
        s->x = s->y = NULL;
        s->g = -1;
        l->consumed++;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        l->stats.wait_seconds += now_seconds() - t0;
        if (st != TG_OK) tg_error(st, "%s", msg);
    }
    if (l->opt.workers == 0) l->consumed++;
    l->next_in_epoch++;
    if (st == TG_OK) l->stats.batches++;
    return st;
}
