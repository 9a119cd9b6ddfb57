/* unet_drive's program: its configuration and the steps main.c tells the experiment with, one
 * file each. config.c: the command line; drive_data.c: the datasets as the run uses them;
 * train.c: one head's training; evaluate.c: test metrics and --eval; predict.c: --predict;
 * model_io.c: checkpoint metadata and loading a trained model; summary.c: the report after
 * training. (dataset.c, report.c, seeds.c, run.c, stats.c, head_loss.c and stepdump.c are the
 * parts below them.)
 * Ownership: drive_data_open fills a drive_data that drive_data_free frees; strings returned
 * by config_differences are malloc'd (caller frees); models from load_model are the caller's. */
#ifndef UNET_DRIVE_H
#define UNET_DRIVE_H

#include "dataset.h"
#include "report.h"
#include "seeds.h"

/* ---- config.c: the command line -------------------------------------------------------------- */

typedef struct {
    const char *data, *out, *eval_ckpt;
    const char *preset;                       /* "cpu", "paper" or NULL (the defaults) */
    const char *predict_ckpt, *image, *mask, *prob; /* --predict CKPT --image IMG [--mask M] --out PRED [--prob P] */
    bool head[2];
    int epochs, batch, crop, base_c, warmup_epochs, threads, workers, eval_every, overlays, stop_after;
    double lr, momentum, weight_decay, class_weight[2];
    uint64_t seed;
    int64_t limit_train, limit_test;
    bool resume, report_only, sync_bn, allow_config_change;
    bool seed_given, out_given;      /* --seed, --out were on the command line */
    bool resume_fresh_ok;            /* --resume: another head has a checkpoint, so a head never started may start */
    int argc;                        /* the command line, to print the command that resumes */
    char **argv;
    /* --seeds: every seed trains both heads into OUT/seed_S/HEAD (n_seeds 0: --seed alone, OUT/HEAD) */
    long long seeds[UNET_MAX_SEEDS];
    int n_seeds;
    /* --mean/--std (given), then the normalisation in use once the data is open; --base-size (0: from the images) */
    float mean[3], std[3];
    bool mean_given, std_given;
    int base_size;
} config;

/* Fills c from the command line (a --preset first, then the flags); --help prints the usage and
 * exits. 0 on success, else the exit code (2) after a message naming the bad argument. */
int parse_args(int argc, char **argv, config *c);
/* The effective configuration (preset, then flags) as a JSON object, for log.jsonl and the report. */
void config_json(const config *c, char *buf, size_t size);
/* "unet_drive: WHAT: <tg_last_error()>" on stderr; returns 1 (the exit code). */
int fail(const char *what);

/* ---- drive_data.c: the datasets -------------------------------------------------------------- */

typedef struct {
    unet_data data;           /* the segmentation datasets, layout and normalisation (dataset.h) */
    tg_seg_dataset *train_seg, *test_seg; /* borrowed from data */
    tg_dataset *train, *test;
    tg_seg_augment aug;
} drive_data;

/* Opens the dataset at --data (DRIVE's layout or folders, printed if verbose). Normalisation:
 * norm_mean/norm_std if given (a checkpoint's), else --mean/--std, else the dataset's (dataset.h);
 * the one in use is copied to c->mean/std. Resolves --base-size and --crop from the images. */
tg_status drive_data_open(config *c, bool need_train, const float *norm_mean, const float *norm_std, bool verbose,
                          drive_data *d);
void drive_data_free(drive_data *d);

/* ---- train.c: one head ------------------------------------------------------------------------- */

/* Trains one head into c->out/<head> (or resumes it), logging and saving every epoch; the exit code. */
int train_head(const config *c, int head, const drive_data *d);

/* ---- evaluate.c, predict.c ----------------------------------------------------------------------- */

/* Test metrics and loss of m over the test images (one at a time, full size, no gradients). */
tg_status evaluate(const tg_unet *m, int head, const config *c, const tg_dataset *test, unet_epoch *e);
/* --eval CKPT: the checkpoint's test metrics; the exit code. */
int run_eval(config *c);
/* --predict CKPT --image IMG: one segmented image; the exit code. */
int run_predict(const config *c);

/* ---- model_io.c: checkpoints --------------------------------------------------------------------- */

/* The metadata a checkpoint of head at epoch gets (the settings, the normalisation, the best epoch). */
void fill_meta(tg_meta *meta, const config *c, int head, int epoch, const unet_epoch *best);
/* A whole number in [lo, hi] under key; false if missing or malformed. */
bool meta_get_int(const tg_meta *m, const char *key, long long lo, long long hi, long long *out);
/* The settings a resumed run would write that differ from the checkpoint's (keys the checkpoint
 * does not have are not compared), as "key: checkpoint A, now B" lines into a new string; NULL
 * if none differ. */
char *config_differences(const tg_meta *saved, const config *c, int head);
/* The name of the first parameter or buffer with a NaN or infinite value, or NULL. */
const char *first_non_finite(const tg_param_list *list);
/* A model for the checkpoint's metadata (head, base_c), with its weights; the normalisation its
 * training used into mean/std (DRIVE's if the checkpoint does not say). A checkpoint with
 * non-finite weights is refused (a diverged run). NULL + tg_error. */
tg_unet *load_model(const char *path, int *head, float mean[3], float std[3]);
/* The best Dice a checkpoint's metadata records (-1 if none), from the metadata or the file. */
double saved_best_dice(const tg_meta *meta);
double best_dice_of(const char *path);
/* Does a file exist at path? (errors other than "no such file" count as yes: loading says why) */
bool file_exists(const char *path);

/* ---- summary.c: after training ------------------------------------------------------------------ */

/* report.md, curves.png and overlays of c->out's heads (report) or of its seeds (report_seeds);
 * d may be NULL (no overlays). The exit code. */
int report(const config *c, const drive_data *d);
int report_seeds(const config *c, const drive_data *d);

#endif
