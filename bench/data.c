/* Data pipeline figures on DRIVE: decoding, augmentation time per batch
 * (crop 480, batch 4, the reference training setting) and the time the
 * consumer waits for the loader while a simulated training step runs.
 * Usage: bench_data [DRIVE root] [batches]   (default root: tg_drive_default_root()) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tapegrad.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Busy work for about `seconds` on this thread (a stand-in for a training step). */
static void busy(double seconds)
{
    volatile double acc = 0;
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 1000; i++) acc += i * 1e-9;
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : tg_drive_default_root();
    int batches = argc > 2 ? atoi(argv[2]) : 25;
    double t0 = now();
    tg_seg_dataset *seg = tg_drive_open(root, TG_DRIVE_TRAINING);
    if (!seg) {
        fprintf(stderr, "bench_data: %s\n", tg_last_error());
        return 1;
    }
    printf("DRIVE training open (decode + check 20 TIFF + 40 GIF): %.1f ms (%.1f ms per sample)\n",
           1e3 * (now() - t0), 1e3 * (now() - t0) / 20);

    tg_seg_augment aug = tg_seg_augment_drive(565, 480);
    tg_dataset *ds = tg_seg_dataset_train(seg, &aug);
    const int B = 4, S = 480;
    float *x = malloc(sizeof(float) * 3 * S * S);
    int64_t *y = malloc(sizeof(int64_t) * S * S);
    tg_rng rng;
    double best = 1e9, total = 0;
    for (int b = 0; b < batches; b++) {
        double s = now();
        for (int i = 0; i < B; i++) {
            tg_rng_seed(&rng, (uint64_t)(b * B + i));
            if (ds->get(ds, (b * B + i) % 20, &rng, x, y) != TG_OK) {
                fprintf(stderr, "bench_data: %s\n", tg_last_error());
                return 1;
            }
        }
        double dt = now() - s;
        total += dt;
        best = dt < best ? dt : best;
    }
    printf("augmentation (resize 282..678, flips, pad, crop 480, normalise), one thread:\n");
    printf("  %.1f ms per batch of %d (mean of %d), best %.1f ms, %.1f ms per sample\n", 1e3 * total / batches, B,
           batches, 1e3 * best, 1e3 * total / batches / B);

    /* The loader with one background worker while the consumer "trains". */
    const double steps[] = {0.0, 0.05, 0.2};
    for (int k = 0; k < 3; k++) {
        tg_loader_options o = tg_loader_defaults(B, 1);
        o.shuffle = true;
        o.workers = 1;
        o.prefetch = 2;
        tg_loader *l = tg_loader_new(ds, &o);
        tg_batch b;
        double s = now();
        int got = 0;
        double first_wait = 0;
        while (got < batches && tg_loader_next(l, &b) == TG_OK) {
            if (!b.x) continue; /* end of an epoch */
            if (got == 0) first_wait = tg_loader_get_stats(l).wait_seconds;
            busy(steps[k]);
            tg_batch_free(&b);
            got++;
        }
        double wall = now() - s;
        tg_loader_stats st = tg_loader_get_stats(l);
        printf("loader, 1 worker, simulated step %3.0f ms: consumer waited %.2f ms per batch (%.1f%% of %.1f ms "
               "per step); after the first batch %.3f ms; worker %.1f ms per batch\n",
               1e3 * steps[k], 1e3 * st.wait_seconds / got, 100 * st.wait_seconds / wall, 1e3 * wall / got,
               got > 1 ? 1e3 * (st.wait_seconds - first_wait) / (got - 1) : 0.0, 1e3 * st.produce_seconds / got);
        tg_loader_free(l);
    }
    free(x);
    free(y);
    tg_dataset_free(ds);
    tg_seg_dataset_free(seg);
    return 0;
}
