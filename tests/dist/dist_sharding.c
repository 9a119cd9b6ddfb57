/* Loader sharding: with a global batch B split over W ranks (every rank builds the loader with the
 * same seed and its own shard_rank), every sample of an epoch is seen exactly once over all ranks,
 * batch k of the ranks together is batch k of one process (the same samples, in rank order),
 * the last, incomplete batch is split too, and a batch that does not divide by W, or a last batch
 * smaller than W, is refused with a message. Checked for 2 epochs, 0 and 2 worker threads,
 * shuffled and in order. Exit 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "tapegrad.h"

static int failures;

static void expect(bool ok, const char *fmt, const char *what, double v)
{
    if (!ok) failures++;
    if (!ok || tg_dist_is_main()) {
        printf("%s rank %d: ", ok ? "ok  " : "FAIL", tg_dist_rank());
        printf(fmt, what, v);
        printf("\n");
    }
}

/* One configuration: N samples (x = sample index), batch B. */
static void run(int64_t N, int64_t B, int workers, bool shuffle)
{
    const int W = tg_dist_world_size(), rank = tg_dist_rank();
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(N, 1));
    for (int64_t i = 0; i < N; i++) x->data[i] = (float)i;
    tg_dataset *ds = tg_tensor_dataset_new(x, NULL);
    tg_loader_options o = tg_loader_defaults(B, 3), one = o;
    o.workers = workers;
    o.shuffle = one.shuffle = shuffle;
    o.shard_rank = rank;
    o.shard_count = W;
    one.workers = 0;
    tg_loader *ld = tg_loader_new(ds, &o), *ref = tg_loader_new(ds, &one);
    char what[128];
    snprintf(what, sizeof what, "%lld samples, batch %lld, %d workers, %s", (long long)N, (long long)B, workers,
             shuffle ? "shuffled" : "in order");
    if (!ld || !ref) {
        expect(false, "%s: loader: %g", what, 0);
        fprintf(stderr, "%s\n", tg_last_error());
        return;
    }
    int64_t per_epoch = tg_loader_batches_per_epoch(ld);
    double *seen = calloc((size_t)N, sizeof *seen);
    bool same_batches = true, sizes_ok = true;
    for (int epoch = 0; epoch < 2; epoch++) {
        memset(seen, 0, sizeof(double) * (size_t)N);
        for (int64_t k = 0; k <= per_epoch; k++) {
            tg_batch b, r;
            tg_loader_next(ld, &b);
            tg_loader_next(ref, &r);
            if (!b.x) break;
            int64_t n = b.x->shape[0], s0, len;
            tg_batch_shard(r.x->shape[0], rank, W, &s0, &len);
            sizes_ok = sizes_ok && n == len && b.global_size == r.x->shape[0];
            for (int64_t i = 0; i < n; i++) {
                seen[(int64_t)b.x->data[i]] += 1;
                same_batches = same_batches && b.x->data[i] == r.x->data[s0 + i];
            }
            tg_batch_free(&b);
            tg_batch_free(&r);
        }
        tg_dist_allreduce_sum(seen, N);
        int64_t once = 0;
        for (int64_t i = 0; i < N; i++) once += seen[i] == 1.0;
        char w2[200];
        snprintf(w2, sizeof w2, "%s, epoch %d", what, epoch);
        expect(once == N, "%s: samples seen exactly once over all ranks: %g", w2, (double)once);
    }
    expect(same_batches && sizes_ok, "%s: every rank's batch is its slice of the one-process batch: %g", what,
           same_batches && sizes_ok);
    free(seen);
    tg_loader_free(ld);
    tg_loader_free(ref);
    tg_dataset_free(ds);
    tg_tensor_free(x);
}

/* Fails with a message containing `needle`. */
static void refused(int64_t N, int64_t B, const char *needle)
{
    const int W = tg_dist_world_size();
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(N, 1));
    tg_dataset *ds = tg_tensor_dataset_new(x, NULL);
    tg_loader_options o = tg_loader_defaults(B, 3);
    o.shard_rank = tg_dist_rank();
    o.shard_count = W;
    tg_loader *ld = tg_loader_new(ds, &o);
    bool ok = !ld && strstr(tg_last_error(), needle);
    char what[300];
    snprintf(what, sizeof what, "%lld samples, batch %lld refused (\"%s\")", (long long)N, (long long)B,
             ld ? "accepted" : tg_last_error());
    expect(ok, "%s: %g", what, ok);
    tg_loader_free(ld);
    tg_dataset_free(ds);
    tg_tensor_free(x);
}

int main(int argc, char **argv)
{
    if (tg_dist_init(&argc, &argv) != TG_OK) return 1;
    const int W = tg_dist_world_size();
    run(103, 4 * W, 0, true); /* 2 ranks: batches of 8, the last of 7 in slices of 3 and 4 */
    run(103, 4 * W, 2, true);
    run(96, 8 * W, 1, false);
    if (W > 1) {
        refused(100, 8 * W + 1, "multiple of");
        refused(8 * W + W - 1, 8 * W, "fewer than");
        tg_status st = tg_dist_check_batch(8 * W + 1);
        expect(st != TG_OK && strstr(tg_last_error(), "multiple of"), "%s: %g", "tg_dist_check_batch(8W+1) refused",
               st != TG_OK);
    }
    double bad = failures;
    tg_dist_allreduce_sum(&bad, 1);
    if (tg_dist_is_main()) printf("dist_sharding (%d ranks): %s\n", W, bad == 0 ? "all checks pass" : "FAILED");
    return tg_dist_finish(bad == 0 ? 0 : 1);
}
