/* data/loader: permutations, drop_last, epochs, determinism whatever the
 * number of workers and the timing, error propagation, clean shutdown. */
#include <unistd.h>

#include "data_test_util.h"
#include "dataset_skip.h"

static tg_tensor *rows_tensor(int n, int width)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(n, width));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < width; k++) x->data[i * width + k] = (float)(i * 100 + k);
    return x;
}

Test(loader, every_sample_once_per_epoch_and_end_marks)
{
    tg_tensor *x = rows_tensor(10, 2), *y = tg_tensor_new(TG_I64, TG_SHAPE(10));
    for (int i = 0; i < 10; i++) y->idata[i] = 1000 + i;
    tg_dataset *ds = tg_tensor_dataset_new(x, y);
    cr_assert_not_null(ds);
    tg_loader_options o = tg_loader_defaults(3, 42);
    o.shuffle = true; /* training order (the defaults do not shuffle, as PyTorch) */
    tg_loader *l = tg_loader_new(ds, &o);
    cr_assert_eq(tg_loader_batches_per_epoch(l), 4);
    int64_t first_order[10];
    for (int epoch = 0; epoch < 3; epoch++) {
        int seen[10] = {0}, pos = 0;
        tg_batch b;
        for (int k = 0; k < 4; k++) {
            cr_assert_eq(tg_loader_next(l, &b), TG_OK, "%s", tg_last_error());
            cr_assert_not_null(b.x);
            cr_expect_eq(b.epoch, epoch);
            cr_expect_eq(b.index, k);
            int64_t n = b.x->shape[0];
            cr_expect_eq(n, k < 3 ? 3 : 1);
            cr_expect(b.x->ndim == 2 && b.x->shape[1] == 2 && b.y->ndim == 1 && b.y->shape[0] == n);
            for (int64_t s = 0; s < n; s++) {
                int i = (int)(b.x->data[s * 2] / 100);
                cr_assert_eq(b.x->data[s * 2 + 1], i * 100 + 1);
                cr_assert_eq(b.y->idata[s], 1000 + i);
                seen[i]++;
                if (epoch == 0) first_order[pos] = i;
                if (epoch == 1 && first_order[pos] != i) first_order[pos] = -1; /* differs from epoch 0 */
                pos++;
            }
            tg_batch_free(&b);
        }
        cr_assert_eq(tg_loader_next(l, &b), TG_OK);
        cr_expect_null(b.x, "no end mark after epoch %d", epoch);
        for (int i = 0; i < 10; i++) cr_expect_eq(seen[i], 1, "epoch %d: sample %d seen %d times", epoch, i, seen[i]);
    }
    int changed = 0;
    for (int i = 0; i < 10; i++) changed += first_order[i] == -1;
    cr_expect(changed > 0, "epochs 0 and 1 have the same order");
    tg_loader_stats st = tg_loader_get_stats(l);
    cr_expect_eq(st.batches, 12);
    cr_expect(st.wait_seconds >= 0 && st.produce_seconds > 0);
    tg_loader_free(l);
    tg_dataset_free(ds);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(loader, drop_last_and_no_shuffle)
{
    tg_tensor *x = rows_tensor(10, 1);
    tg_dataset *ds = tg_tensor_dataset_new(x, NULL);
    tg_loader_options o = tg_loader_defaults(4, 1);
    o.shuffle = false;
    o.drop_last = true;
    o.workers = 0;
    tg_loader *l = tg_loader_new(ds, &o);
    cr_assert_eq(tg_loader_batches_per_epoch(l), 2);
    tg_batch b;
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(tg_loader_next(l, &b), TG_OK);
        for (int s = 0; s < 4; s++) cr_expect_eq(b.x->data[s], (k * 4 + s) * 100);
        cr_expect_eq(b.y->idata[0], 0);
        tg_batch_free(&b);
    }
    cr_assert_eq(tg_loader_next(l, &b), TG_OK);
    cr_expect_null(b.x);
    tg_loader_free(l);
    o.batch_size = 11;
    cr_expect_null(tg_loader_new(ds, &o));
    cr_expect(strstr(tg_last_error(), "drop_last") != NULL);
    o.batch_size = 0;
    cr_expect_null(tg_loader_new(ds, &o));
    cr_expect_null(tg_loader_new(NULL, &o));
    tg_dataset_free(ds);
    tg_tensor_free(x);
    cr_expect_null(tg_tensor_dataset_new(NULL, NULL));
}

/* A dataset whose samples are draws from their RNG, with irregular delays
 * so that workers finish out of order. Fails on index `bad` if >= 0. */
typedef struct {
    int64_t bad;
} noisy_ctx;

static tg_status noisy_shape(const tg_dataset *d, int64_t i, int *xn, int64_t *xs, int *yn, int64_t *ys)
{
    (void)d, (void)i, (void)ys;
    *xn = 1;
    xs[0] = 5;
    *yn = 0;
    return TG_OK;
}

static tg_status noisy_get(const tg_dataset *d, int64_t i, tg_rng *rng, float *x, int64_t *y)
{
    const noisy_ctx *c = d->ctx;
    if (i == c->bad) return tg_error(TG_ERR_FORMAT, "noisy: sample file %lld is corrupt", (long long)i);
    usleep((useconds_t)((i * 7919) % 5) * 300);
    for (int k = 0; k < 5; k++) x[k] = tg_rng_uniform(rng);
    *y = i;
    return TG_OK;
}

static tg_dataset *noisy_new(noisy_ctx *c, int64_t n)
{
    tg_dataset *d = calloc(1, sizeof *d);
    d->length = n;
    d->sample_shape = noisy_shape;
    d->get = noisy_get;
    d->ctx = c;
    return d;
}

/* All batches of `epochs` epochs, concatenated (x values then y values). */
static void run_all(tg_dataset *ds, int workers, int prefetch, int epochs, float *xs, int64_t *ys, int64_t *count)
{
    tg_loader_options o = tg_loader_defaults(4, 2024);
    o.shuffle = true; /* training order (the defaults do not shuffle, as PyTorch) */
    o.workers = workers;
    o.prefetch = prefetch;
    tg_loader *l = tg_loader_new(ds, &o);
    cr_assert_not_null(l);
    int64_t n = 0;
    for (int e = 0; e < epochs; e++) {
        tg_batch b;
        while (tg_loader_next(l, &b) == TG_OK && b.x) {
            cr_expect(b.y->ndim == 1);
            memcpy(xs + n * 5, b.x->data, sizeof(float) * (size_t)b.x->numel);
            memcpy(ys + n, b.y->idata, sizeof(int64_t) * (size_t)b.y->numel);
            n += b.y->numel;
            tg_batch_free(&b);
        }
    }
    *count = n;
    tg_loader_free(l);
}

Test(loader, same_batches_whatever_the_workers)
{
    noisy_ctx c = {-1};
    tg_dataset *ds = noisy_new(&c, 23);
    enum { MAX = 23 * 3 };
    float x0[MAX * 5], x1[MAX * 5];
    int64_t y0[MAX], y1[MAX], n0, n1;
    run_all(ds, 0, 1, 3, x0, y0, &n0);
    cr_assert_eq(n0, MAX);
    int configs[3][2] = {{1, 2}, {3, 4}, {2, 8}};
    for (int k = 0; k < 3; k++) {
        run_all(ds, configs[k][0], configs[k][1], 3, x1, y1, &n1);
        cr_assert_eq(n1, n0);
        cr_assert_eq(memcmp(y0, y1, sizeof y0), 0, "%d workers: a different order", configs[k][0]);
        cr_assert_eq(memcmp(x0, x1, sizeof x0), 0, "%d workers: different augmentation", configs[k][0]);
    }
    /* a sample's draws depend on (seed, epoch, index): the same index differs between epochs */
    int same = 0;
    for (int i = 0; i < 23; i++)
        for (int j = 23; j < 46; j++)
            if (y0[i] == y0[j]) same += memcmp(x0 + i * 5, x0 + j * 5, sizeof(float) * 5) == 0;
    cr_expect_eq(same, 0);
    tg_dataset_free(ds);
}

Test(loader, start_epoch_resumes_with_the_same_batches)
{
    noisy_ctx c = {-1};
    tg_dataset *ds = noisy_new(&c, 23);
    enum { MAX = 23 * 3 };
    float x0[MAX * 5];
    int64_t y0[MAX], n0;
    run_all(ds, 1, 2, 3, x0, y0, &n0);
    for (int workers = 0; workers <= 2; workers++) {
        tg_loader_options o = tg_loader_defaults(4, 2024);
        o.shuffle = true; /* training order (the defaults do not shuffle, as PyTorch) */
        o.workers = workers;
        o.start_epoch = 2;
        tg_loader *l = tg_loader_new(ds, &o);
        cr_assert_not_null(l, "%s", tg_last_error());
        int64_t n = 0;
        tg_batch b;
        while (tg_loader_next(l, &b) == TG_OK && b.x) {
            cr_expect_eq(b.epoch, 2);
            for (int64_t i = 0; i < b.y->numel; i++, n++) {
                cr_expect_eq(b.y->idata[i], y0[46 + n], "%d workers: sample %lld", workers, (long long)n);
                cr_expect_eq(memcmp(b.x->data + i * 5, x0 + (46 + n) * 5, 5 * sizeof(float)), 0);
            }
            tg_batch_free(&b);
        }
        cr_expect_eq(n, 23);
        tg_loader_free(l);
    }
    tg_loader_options bad = tg_loader_defaults(4, 1);
    bad.start_epoch = -1;
    cr_expect_null(tg_loader_new(ds, &bad));
    cr_expect_not_null(strstr(tg_last_error(), "start_epoch"), "%s", tg_last_error());
    tg_dataset_free(ds);
}

Test(loader, errors_reach_the_consumer_and_shutdown_is_clean)
{
    noisy_ctx c = {7};
    tg_dataset *ds = noisy_new(&c, 16);
    for (int workers = 0; workers <= 2; workers++) {
        tg_loader_options o = tg_loader_defaults(4, 3);
        o.shuffle = false;
        o.workers = workers;
        tg_loader *l = tg_loader_new(ds, &o);
        tg_batch b;
        cr_assert_eq(tg_loader_next(l, &b), TG_OK);
        tg_batch_free(&b);
        cr_expect_eq(tg_loader_next(l, &b), TG_ERR_FORMAT, "batch 1 holds sample 7");
        cr_expect_null(b.x);
        cr_expect(strstr(tg_last_error(), "sample 7") != NULL, "%s", tg_last_error());
        cr_expect(strstr(tg_last_error(), "sample file 7 is corrupt") != NULL, "%s", tg_last_error());
        cr_assert_eq(tg_loader_next(l, &b), TG_OK, "the loader goes on after a bad batch");
        cr_expect_eq(b.y->idata[0], 8);
        tg_batch_free(&b);
        tg_loader_free(l); /* batches still being prepared are freed */
    }
    tg_loader_free(NULL);
    tg_dataset_free(ds);
}

/* Variable-size samples: batch 1 works, bigger batches say why they cannot. */
static tg_status vary_shape(const tg_dataset *d, int64_t i, int *xn, int64_t *xs, int *yn, int64_t *ys)
{
    (void)d;
    *xn = 1, xs[0] = 1 + i;
    *yn = 1, ys[0] = 1 + i;
    return TG_OK;
}
static tg_status vary_get(const tg_dataset *d, int64_t i, tg_rng *r, float *x, int64_t *y)
{
    (void)d, (void)r;
    for (int k = 0; k <= i; k++) x[k] = (float)i, y[k] = i;
    return TG_OK;
}

Test(loader, samples_of_different_sizes)
{
    tg_dataset *ds = calloc(1, sizeof *ds);
    ds->length = 3, ds->sample_shape = vary_shape, ds->get = vary_get;
    tg_loader_options o = tg_loader_defaults(1, 0);
    o.shuffle = false;
    tg_loader *l = tg_loader_new(ds, &o);
    tg_batch b;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tg_loader_next(l, &b), TG_OK);
        cr_expect(b.x->shape[0] == 1 && b.x->shape[1] == i + 1 && b.x->data[i] == i);
        tg_batch_free(&b);
    }
    tg_loader_free(l);
    o.batch_size = 2;
    l = tg_loader_new(ds, &o);
    cr_expect_eq(tg_loader_next(l, &b), TG_ERR_SHAPE);
    cr_expect(strstr(tg_last_error(), "batch_size 1") != NULL, "%s", tg_last_error());
    tg_loader_free(l);
    tg_dataset_free(ds);
}

Test(loader, drive_batches_are_deterministic)
{
    const char *root = tg_drive_default_root();
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/training/images", root);
    struct stat st;
    if (stat(probe, &st) != 0) cr_skip_test("DRIVE not found at %s", root);
    tg_seg_dataset *seg = tg_drive_open(root, TG_DRIVE_TRAINING);
    cr_assert_not_null(seg, "%s", tg_last_error());
    tg_seg_augment a = tg_seg_augment_drive(565, 480);
    tg_dataset *ds = tg_seg_dataset_train(seg, &a);
    tg_tensor *first[2][2] = {{NULL}};
    for (int run = 0; run < 2; run++) {
        tg_loader_options o = tg_loader_defaults(4, 9);
        o.shuffle = true; /* training order (the defaults do not shuffle, as PyTorch) */
        o.workers = run ? 2 : 0;
        tg_loader *l = tg_loader_new(ds, &o);
        tg_batch b;
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(tg_loader_next(l, &b), TG_OK, "%s", tg_last_error());
            cr_expect(b.x->ndim == 4 && b.x->shape[0] == 4 && b.x->shape[1] == 3 && b.x->shape[2] == 480 &&
                      b.x->shape[3] == 480);
            cr_expect(b.y->ndim == 3 && b.y->shape[1] == 480);
            for (int64_t i = 0; i < b.y->numel; i++)
                cr_assert(b.y->idata[i] == 0 || b.y->idata[i] == 1 || b.y->idata[i] == 255);
            if (k == 1) {
                first[run][0] = b.x, first[run][1] = b.y;
            } else {
                tg_batch_free(&b);
            }
        }
        tg_loader_free(l);
    }
    cr_expect_eq(memcmp(first[0][0]->data, first[1][0]->data, sizeof(float) * (size_t)first[0][0]->numel), 0);
    cr_expect_eq(memcmp(first[0][1]->idata, first[1][1]->idata, sizeof(int64_t) * (size_t)first[0][1]->numel), 0);
    for (int r = 0; r < 2; r++) tg_tensor_free(first[r][0]), tg_tensor_free(first[r][1]);
    tg_dataset_free(ds);
    tg_seg_dataset_free(seg);
}
