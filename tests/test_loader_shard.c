/* Loader sharding without MPI: the loaders of ranks 0..W-1 (same seed) together give every
 * sample of an epoch exactly once, each its balanced slice of the one-process batch, with
 * global_size the whole batch's size; bad shard options and batches that do not split are
 * refused with a message. (tests/dist/dist_sharding.c does the same across mpirun ranks.) */
#include <criterion/criterion.h>
#include <string.h>

#include "tapegrad.h"

Test(loader_shard, ranks_together_see_each_sample_once_as_slices_of_the_whole_batch)
{
    const int64_t N = 103, B = 12;
    for (int W = 2; W <= 4; W++) {
        tg_tensor *x = tg_tensor_zeros(TG_SHAPE(N, 1));
        for (int64_t i = 0; i < N; i++) x->data[i] = (float)i;
        tg_dataset *ds = tg_tensor_dataset_new(x, NULL);
        tg_loader_options one = tg_loader_defaults(B, 5);
        one.workers = 0;
        tg_loader *ref = tg_loader_new(ds, &one);
        tg_loader *ld[4];
        for (int r = 0; r < W; r++) {
            tg_loader_options o = tg_loader_defaults(B, 5);
            o.workers = r % 2; /* with and without a worker thread */
            o.shard_rank = r;
            o.shard_count = W;
            ld[r] = tg_loader_new(ds, &o);
            cr_assert(ld[r], "W %d rank %d: %s", W, r, tg_last_error());
        }
        for (int epoch = 0; epoch < 2; epoch++) {
            int seen[103] = {0};
            for (;;) {
                tg_batch whole;
                cr_assert_eq(tg_loader_next(ref, &whole), TG_OK);
                int64_t pos = 0;
                for (int r = 0; r < W; r++) {
                    tg_batch b;
                    cr_assert_eq(tg_loader_next(ld[r], &b), TG_OK);
                    cr_assert_eq(!b.x, !whole.x);
                    if (!b.x) continue;
                    cr_expect_eq(b.global_size, whole.x->shape[0]);
                    int64_t s0, len;
                    tg_batch_shard(whole.x->shape[0], r, W, &s0, &len);
                    cr_expect_eq(s0, pos);
                    cr_assert_eq(b.x->shape[0], len, "W %d rank %d: %lld rows, expected %lld", W, r,
                                 (long long)b.x->shape[0], (long long)len);
                    for (int64_t i = 0; i < len; i++) {
                        cr_expect_eq(b.x->data[i], whole.x->data[s0 + i]);
                        seen[(int)b.x->data[i]]++;
                    }
                    pos += len;
                    tg_batch_free(&b);
                }
                if (!whole.x) break;
                cr_expect_eq(pos, whole.x->shape[0]);
                tg_batch_free(&whole);
            }
            for (int64_t i = 0; i < N; i++) cr_expect_eq(seen[i], 1, "W %d epoch %d: sample %lld seen %d times", W, epoch, (long long)i, seen[i]);
        }
        for (int r = 0; r < W; r++) tg_loader_free(ld[r]);
        tg_loader_free(ref);
        tg_dataset_free(ds);
        tg_tensor_free(x);
    }
}

Test(loader_shard, refusals)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(17, 1));
    tg_dataset *ds = tg_tensor_dataset_new(x, NULL);
    struct {
        int64_t batch;
        int rank, count;
        bool drop_last;
        const char *msg;
    } cases[] = {{7, 0, 2, false, "multiple of 2"},
                 {16, 1, 2, false, "the last batch of an epoch has 1 samples, fewer than the 2 processes"},
                 {4, 2, 2, false, "shard_rank 2 of shard_count 2"},
                 {4, -1, 2, false, "shard_rank -1"},
                 {4, 1, 0, false, "shard_rank 1 of shard_count 0"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_loader_options o = tg_loader_defaults(cases[k].batch, 1);
        o.shard_rank = cases[k].rank;
        o.shard_count = cases[k].count;
        o.drop_last = cases[k].drop_last;
        tg_loader *l = tg_loader_new(ds, &o);
        cr_expect_null(l, "case %zu accepted", k);
        cr_expect(strstr(tg_last_error(), cases[k].msg), "case %zu: %s", k, tg_last_error());
        tg_loader_free(l);
    }
    /* the same last batch of 1 is fine when dropped */
    tg_loader_options o = tg_loader_defaults(16, 1);
    o.shard_rank = 1;
    o.shard_count = 2;
    o.drop_last = true;
    tg_loader *l = tg_loader_new(ds, &o);
    cr_expect(l, "%s", tg_last_error());
    tg_loader_free(l);
    tg_dataset_free(ds);
    tg_tensor_free(x);
}
