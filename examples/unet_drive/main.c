/* unet_drive: the experiment of the cross-entropy article, section 4. A binary segmentation
 * head can be 1 channel + sigmoid + BCE or 2 channels + softmax + CE; which is better? Trains
 * the reference UNet (nn/unet.h) on the DRIVE retinal-vessel images both ways, with the same
 * seed, batches and initial weights, evaluates each epoch on the 20 test images with the
 * reference metrics (Dice, IoU, accuracy; outside the field of view ignored) and writes a
 * side-by-side report with curves and overlays.
 *
 *   unet_drive [--head both|sigmoid|softmax] [--epochs N] [--out DIR] [--data DIR] ...  (--help)
 *   unet_drive --eval CKPT [--data DIR]
 *   unet_drive --report-only [--out DIR]
 *   mpirun -np N unet_drive ...   data parallel (tapegrad_dist): --batch-size is the global batch;
 *                                 rank 0 evaluates and writes logs, checkpoints and the report
 *   unet_drive step-dump ... / unet_drive init ...   (stepdump.c)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "dist/dist.h"
#include "head_loss.h"
#include "run.h"
#include "stepdump.h"
#include "unet_drive.h"

/* Refuses a configuration whose training step would need more memory than there is (the
 * kernel's OOM killer would end it with no message), warns when it is close. */
static int check_memory(const config *c, const drive_data *d)
{
    const int64_t n_train = d->train ? d->train->length : 0;
    const int batch = n_train && n_train < c->batch ? (int)n_train : c->batch;
    const double need = run_memory_estimate_mb(c->base_c, c->crop, batch, UNET_DRIVE_WIDTH, UNET_DRIVE_HEIGHT);
    const double avail = run_memory_available_mb();
    if (need > avail) {
        fprintf(stderr, "unet_drive: base width %d, crop %d, batch %d needs about %.1f GB (estimate), more than the "
                "%.1f GB available: use a smaller --crop, --batch-size or --base-c\n", c->base_c, c->crop, batch,
                need / 1024.0, avail / 1024.0);
        return 1;
    }
    if (need > 0.8 * avail)
        printf("unet_drive: warning: this configuration needs about %.1f GB (estimate) of the %.1f GB available\n",
               need / 1024.0, avail / 1024.0);
    return 0;
}

/* The output directory, made and locked (rank 0 writes; other ranks do not lock it). */
static int prepare_output(const config *c)
{
    if (!cli_make_dirs(c->out)) {
        fprintf(stderr, "unet_drive: cannot create the output directory %s: %s\n", c->out, strerror(errno));
        return 1;
    }
    if (tg_dist_is_main() && run_lock_dir(c->out) != TG_OK) return fail("cannot start");
    return 0;
}

/* --resume: some head of the run (--seeds: of the first seed) has a checkpoint; a selected head
 * that never started may then start (c->resume_fresh_ok). */
static int check_resume(config *c)
{
    int have = 0, selected_have = 0;
    char first_seed[32] = "";
    if (c->n_seeds) snprintf(first_seed, sizeof first_seed, "/seed_%lld", c->seeds[0]);
    for (int h = 0; h < 2; h++) {
        char *p = run_path("%s%s/%s/last.safetensors", c->out, first_seed, HEAD_NAME[h]);
        const bool e = p && file_exists(p);
        have += e;
        selected_have += e && c->head[h];
        free(p);
    }
    c->resume_fresh_ok = have > 0 && selected_have > 0;
    if (!have) {
        fprintf(stderr, "unet_drive: --resume: nothing to resume in %s (no sigmoid/ or softmax/ "
                "last.safetensors); start a new run without --resume\n", c->out);
        return 1;
    }
    return 0;
}

/* What runs, where, on which machine settings. */
static void print_plan(const config *c)
{
    const int threads = tg_get_num_threads();
    char seeds[UNET_MAX_SEEDS * 21 + 8];
    unet_seeds_format(c->n_seeds ? c->seeds : (const long long[]){(long long)c->seed}, c->n_seeds ? c->n_seeds : 1,
                      seeds, sizeof seeds);
    printf("unet_drive: data at %s, output in %s; %s%s%sbase width %d, crop %d, batch %d, %d epoch%s, lr %g, seed%s %s, "
           "%d thread%s\n",
           c->data ? c->data : tg_drive_default_root(), c->out, c->preset ? "preset " : "", c->preset ? c->preset : "",
           c->preset ? " (with the flags given): " : "", c->base_c, c->crop, c->batch, c->epochs,
           c->epochs == 1 ? "" : "s", c->lr, c->n_seeds > 1 ? "s" : "", seeds, threads, threads == 1 ? "" : "s");
    printf("flush-to-zero: %s (denormal floats become 0, as torch.set_flush_denormal(True)); OpenBLAS kernels: "
           "%s\n",
           tg_set_flush_denormal(true) ? "on" : "unavailable on this CPU", tg_blas_core());
}

/* Both heads (or the one selected) with the same seed, batches and initial weights; --seeds: that
 * for every seed, into OUT/seed_S. */
static int train_heads(const config *c, const drive_data *d)
{
    int rc = 0;
    for (int i = 0; i < (c->n_seeds ? c->n_seeds : 1) && rc == 0; i++) {
        config cs = *c;
        char *out = NULL;
        if (c->n_seeds) {
            if (!(out = run_path("%s/seed_%lld", c->out, c->seeds[i]))) return fail("cannot start");
            cs.out = out;
            cs.resume_fresh_ok = c->resume_fresh_ok || i > 0; /* a later seed may not have started */
            cs.seed = (uint64_t)c->seeds[i];
            printf("seed %lld (%d of %d): %s\n", c->seeds[i], i + 1, c->n_seeds, out);
        }
        for (int h = 0; h < 2 && rc == 0; h++)
            if (c->head[h]) rc = train_head(&cs, h, d);
        free(out);
    }
    return rc;
}

int main(int argc, char **argv)
{
    cli_ignore_file_size_signal(); /* past ulimit -f: EFBIG and a message, not a silent kill */
    tg_blas_select_kernel(argc, argv);
    if (tg_dist_init(&argc, &argv) != TG_OK) return fail("cannot join the MPI job");
    tg_dist_quiet_others(); /* only rank 0 prints */
    setvbuf(stdout, NULL, _IOLBF, 0); /* epoch lines appear at once in a log file too */
    if (argc > 1 && (!strcmp(argv[1], "step-dump") || !strcmp(argv[1], "init")))
        return unet_stepdump_main(argc - 1, argv + 1);
    config c;
    int rc = parse_args(argc, argv, &c);
    if (rc) return rc;
    tg_set_num_threads(c.threads);
    tg_set_retain_grad(false); /* as PyTorch: no .grad kept on intermediate tensors (same results, less memory) */
    tg_set_retain_values(false); /* as PyTorch: values backward is done with serve later gradients (only the loss is read) */
    if (c.eval_ckpt) return run_eval(&c);
    if (c.predict_ckpt) return run_predict(&c);

    drive_data d;
    if (drive_data_open(&c, !c.report_only, NULL, NULL, !c.report_only, &d) != TG_OK) {
        drive_data_free(&d);
        return fail("cannot open the dataset");
    }
    if (!c.report_only) {
        rc = check_memory(&c, &d);
        if (rc == 0) rc = prepare_output(&c);
        if (rc == 0 && c.resume) rc = check_resume(&c);
        if (rc) {
            drive_data_free(&d);
            return rc;
        }
        run_catch_interrupts();
        print_plan(&c);
        rc = train_heads(&c, &d);
    }
    /* the report: over the seeds (--seeds, or OUT holds seed_S directories), else of the two heads */
    if (rc == 0 && tg_dist_is_main())
        rc = c.n_seeds || (c.report_only && unet_seeds_present(c.out)) ? report_seeds(&c, &d) : report(&c, &d);
    drive_data_free(&d);
    return tg_dist_finish(rc);
}
