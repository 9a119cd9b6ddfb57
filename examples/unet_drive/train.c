/* unet_drive's training of one head: the model, SGD with the reference's warmup + poly schedule,
 * the epochs (training steps, evaluation, the log line, last.safetensors and, when the Dice
 * improves, best.safetensors), --resume, and a clean stop on SIGINT/SIGTERM (unet_drive.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "dist/dist.h"
#include "head_loss.h"
#include "run.h"
#include "unet_drive.h"

/* Data parallel: each rank's loss is a weighted mean over its own pixels. Scaled by
 * W * (its weight sum) / (the whole batch's), the ranks' average is the whole batch's weighted mean
 * (with --sync-bn the run then differs from one process only in float summation order). */
static tg_tensor *whole_batch_mean(tg_tensor *loss, const tg_tensor *y, const double cw[2])
{
    if (!loss || tg_dist_world_size() == 1) return loss;
    double mine = 0.0, all;
    for (int64_t i = 0; i < y->numel; i++) mine += y->idata[i] == 0 || y->idata[i] == 1 ? cw[y->idata[i]] : 0.0;
    all = mine;
    if (tg_dist_allreduce_sum(&all, 1) != TG_OK) return NULL;
    return tg_mul_scalar(loss, (float)(tg_dist_world_size() * mine / all));
}

static tg_status epoch_line(const unet_run *run, const unet_epoch *e, FILE *log, const char *path)
{
    char line[2048];
    unet_epoch_json(run, e, line, sizeof line);
    size_t len = strlen(line); /* + the number of data-parallel processes */
    if (len && line[len - 1] == '}') snprintf(line + len - 1, sizeof line - len + 1, ", \"world_size\": %d}", tg_dist_world_size());
    if (fprintf(log, "%s\n", line) < 0 || fflush(log) != 0)
        return tg_error(TG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return TG_OK;
}

/* Prints how to continue after an interrupt, naming what was kept. */
static void print_resume_hint(const config *c, const char *last_path, int saved_epoch)
{
    char *cmd = run_shell_command(c->argc, c->argv, saved_epoch > 0 ? "--resume" : NULL);
    if (saved_epoch > 0)
        fprintf(stderr, "unet_drive: interrupted (%s); %s (epoch %d) is kept. Resume with:\n  %s\n",
                strsignal(run_interrupted), last_path, saved_epoch, cmd ? cmd : "(out of memory)");
    else
        fprintf(stderr, "unet_drive: interrupted (%s) before the first epoch was saved. Start again with:\n  %s\n",
                strsignal(run_interrupted), cmd ? cmd : "(out of memory)");
    free(cmd);
}

/* Exit code of a run stopped by signal sig (as a shell reports it). */
static int interrupted_code(void) { return 128 + (int)run_interrupted; }

typedef struct {
    char *dir, *log, *last, *best;
} head_paths;

static void head_paths_free(head_paths *p)
{
    free(p->dir), free(p->log), free(p->last), free(p->best);
    memset(p, 0, sizeof *p);
}

static tg_status head_paths_make(const config *c, int head, head_paths *p)
{
    p->dir = run_path("%s/%s", c->out, HEAD_NAME[head]);
    p->log = run_path("%s/log.jsonl", p->dir ? p->dir : "");
    p->last = run_path("%s/last.safetensors", p->dir ? p->dir : "");
    p->best = run_path("%s/best.safetensors", p->dir ? p->dir : "");
    if (!p->dir || !p->log || !p->last || !p->best) {
        head_paths_free(p);
        return tg_error(TG_ERR_NOMEM, "out of memory");
    }
    return TG_OK;
}

/* ---- one head's training: what it holds, and its steps in order --------------------------------- */

/* Everything one head's training holds; trainer_close frees it. */
typedef struct {
    const config *c;
    const drive_data *d;
    int head, classes;
    head_paths p;
    tg_unet *m;
    tg_optimizer *opt;
    tg_lr_sched sched;
    tg_loader_options lo;
    tg_loader *loader;
    FILE *log;
    loss_buffers lb;
    unet_run run;                  /* the epochs so far, as log.jsonl holds them */
    int64_t steps_per_epoch;
    bool have_last;                /* p.last exists */
    int start_epoch, saved_epoch;  /* the epoch resumed after; the last one saved */
    double best_dice;              /* of the model in best.safetensors (-1: none) */
} trainer;

/* The head's directory (made; temp files of interrupted saves removed) and, with --resume, its
 * checkpoint: a head never started starts only if another head of the run has one. */
static int prepare_dir(trainer *t)
{
    if (!cli_make_dirs(t->p.dir)) {
        fprintf(stderr, "unet_drive: cannot create %s: %s\n", t->p.dir, strerror(errno));
        return 1;
    }
    static const char *const SAVED[] = {"last.safetensors", "best.safetensors"};
    if (tg_dist_is_main() && run_remove_stale_temps(t->p.dir, SAVED, 2) < 0) {
        fprintf(stderr, "unet_drive: cannot list %s: %s\n", t->p.dir, strerror(errno));
        return 1;
    }
    t->have_last = file_exists(t->p.last);
    if (!t->c->resume || t->have_last) return 0;
    unet_run old;
    bool logged = unet_run_load(t->p.log, &old) == TG_OK && old.n_epochs > 0;
    if (logged) unet_run_free(&old);
    if (logged || !t->c->resume_fresh_ok) {
        fprintf(stderr, "unet_drive: --resume: there is no %s to continue%s; start a new run without --resume "
                "(it rewrites %s)\n", t->p.last, logged ? " (its log has epochs: the checkpoint was removed)" : "",
                t->p.dir);
        return 1;
    }
    printf("%s head: not started before, starting it\n", HEAD_NAME[t->head]);
    return 0;
}

/* The run record's settings (a fresh run's, or a resumed log's brought up to date). */
static void set_run_settings(trainer *t)
{
    const config *c = t->c;
    t->run.num_classes = t->classes;
    t->run.params = tg_param_list_numel(t->m->params, TG_KIND_PARAM);
    t->run.base_c = c->base_c, t->run.crop = c->crop, t->run.batch = c->batch, t->run.epochs_planned = c->epochs;
    snprintf(t->run.head, sizeof t->run.head, "%s", HEAD_NAME[t->head]);
    config_json(c, t->run.config, sizeof t->run.config);
}

/* The model (the same initial weights in both heads but out_conv), SGD, the batches per epoch
 * and the learning-rate schedule: warmup, then the reference's poly decay. */
static int build_model(trainer *t)
{
    const config *c = t->c;
    tg_rng init_rng;
    tg_rng_seed(&init_rng, c->seed); /* same draws for every layer but out_conv in both heads */
    t->m = tg_unet_new(3, t->classes, c->base_c, &init_rng);
    if (!t->m) return fail("cannot build the model");
    t->opt = tg_sgd_new(t->m->params,
                        (tg_sgd_opts){.lr = c->lr, .momentum = c->momentum, .weight_decay = c->weight_decay});
    t->lo = tg_loader_defaults(c->batch, c->seed);
    t->lo.shuffle = true;
    t->lo.workers = c->workers;
    t->lo.shard_rank = tg_dist_rank(); /* data parallel: this rank's slice of every batch */
    t->lo.shard_count = tg_dist_world_size();
    tg_loader *probe = t->opt ? tg_loader_new(t->d->train, &t->lo) : NULL;
    if (!probe) return fail("cannot set up training");
    t->steps_per_epoch = tg_loader_batches_per_epoch(probe);
    tg_loader_free(probe);
    /* Warmup needs at least one epoch after it (the reference's poly term divides by the rest). */
    const int warmup = c->warmup_epochs < c->epochs ? c->warmup_epochs : c->epochs - 1;
    if (warmup != c->warmup_epochs)
        printf("%s head: warmup shortened to %d epoch%s (--epochs %d leaves no epoch after it)\n", HEAD_NAME[t->head],
               warmup, warmup == 1 ? "" : "s", c->epochs);
    if (tg_lr_sched_init_warmup_poly(&t->sched, t->opt, warmup * t->steps_per_epoch, c->epochs * t->steps_per_epoch,
                                     1e-3, 0.9) != TG_OK)
        return fail("cannot set up the learning-rate schedule");
    set_run_settings(t);
    unet_norm_format(c->mean, t->run.norm_mean, sizeof t->run.norm_mean);
    unet_norm_format(c->std, t->run.norm_std, sizeof t->run.norm_std);
    return 0;
}

/* --resume: model, optimizer and schedule from last.safetensors, whose settings must be these
 * (or differ as --allow-config-change allows) and whose weights must be finite. */
static int resume_checkpoint(trainer *t)
{
    tg_meta meta = {0};
    tg_ckpt_opts ro = {.optim = t->opt, .sched = &t->sched, .meta = &meta};
    long long e = 0;
    if (tg_checkpoint_load(t->p.last, t->m->params, &ro, NULL) != TG_OK) {
        tg_meta_clear(&meta);
        return fail("cannot resume");
    }
    if (!meta_get_int(&meta, "epoch", 0, 100000, &e)) {
        tg_meta_clear(&meta);
        fprintf(stderr, "unet_drive: %s has no \"epoch\" in its metadata: not a unet_drive checkpoint\n", t->p.last);
        return 1;
    }
    char *diff = config_differences(&meta, t->c, t->head);
    t->best_dice = saved_best_dice(&meta);
    tg_meta_clear(&meta);
    if (diff && (!t->c->allow_config_change || strstr(diff, "  base_c:") || strstr(diff, "  num_classes:"))) {
        fprintf(stderr, "unet_drive: %s was written with other settings:\n%sresume with the checkpoint's settings, "
                "pass --allow-config-change if the change is intended%s, or start afresh without --resume\n",
                t->p.last, diff, strstr(diff, "  base_c:") ? " (base_c cannot change)" : "");
        free(diff);
        return 2;
    }
    if (diff) printf("%s head: resuming with changed settings (--allow-config-change):\n%s", HEAD_NAME[t->head], diff);
    free(diff);
    if (first_non_finite(t->m->params)) {
        fprintf(stderr, "unet_drive: %s holds NaN or infinite weights: nothing valid to resume\n", t->p.last);
        return 1;
    }
    t->start_epoch = (int)e;
    return 0;
}

/* --resume: the log's epochs 1..start_epoch, checked and written back (a corrupt or shortened log
 * would lose the history and the best Dice, and a worse model could then replace best.safetensors). */
static int resume_log(trainer *t)
{
    const char *head = HEAD_NAME[t->head];
    if (unet_run_load(t->p.log, &t->run) != TG_OK || run_log_check(&t->run, t->p.log, head, t->start_epoch) != TG_OK) {
        unet_run_free(&t->run);
        fprintf(stderr, "unet_drive: cannot resume: %s\n(fix or remove that line, or start afresh without --resume; "
                "%s and %s are untouched)\n", tg_last_error(), t->p.last, t->p.best);
        return 1;
    }
    set_run_settings(t);
    t->log = fopen(tg_dist_is_main() ? t->p.log : "/dev/null", "w");
    for (int i = 0; t->log && i < t->run.n_epochs; i++)
        if (epoch_line(&t->run, &t->run.epochs[i], t->log, t->p.log) != TG_OK) return fail("cannot resume");
    printf("%s head: resuming after epoch %d of %d from %s\n", head, t->start_epoch, t->c->epochs, t->p.last);
    return 0;
}

/* The log open; the best Dice saved so far (best.safetensors is replaced only by a better model
 * than every one saved before); the data loader from the first epoch to train, every rank with
 * rank 0's weights. */
static int start_training(trainer *t)
{
    if (!t->log) {
        fprintf(stderr, "unet_drive: cannot write %s: %s\n", t->p.log, strerror(errno));
        return 1;
    }
    const unet_epoch *prev_best = unet_run_best(&t->run);
    if (prev_best && prev_best->dice > t->best_dice) t->best_dice = prev_best->dice;
    if (file_exists(t->p.best)) {
        const double b = best_dice_of(t->p.best);
        if (b > t->best_dice) t->best_dice = b;
    }
    t->lo.start_epoch = t->start_epoch;
    t->loader = tg_loader_new(t->d->train, &t->lo);
    if (t->loader &&
        (tg_dist_broadcast_state(t->m->params) != TG_OK || tg_dist_sync_batchnorm(t->m->params, t->c->sync_bn) != TG_OK)) {
        tg_loader_free(t->loader);
        t->loader = NULL;
    }
    if (!t->loader) return fail("cannot start the data loader");
    printf("%s head (%d output channel%s): %lld parameters, %lld training images, %lld test images, %lld steps per "
           "epoch\n",
           HEAD_NAME[t->head], t->classes, t->classes == 1 ? "" : "s", (long long)t->run.params,
           (long long)t->d->train->length, (long long)t->d->test->length, (long long)t->steps_per_epoch);
    return 0;
}

/* ---- one epoch ---------------------------------------------------------------------------------- */

typedef struct {
    double loss_sum;
    int64_t steps, images;
} epoch_sums;

/* TG_ERR_STATE naming the epoch and step if the loss or a weight is not finite. */
static tg_status check_finite(const trainer *t, const tg_tensor *loss, int epoch, int64_t steps)
{
    const char *bad = isfinite(loss->data[0]) ? first_non_finite(t->m->params) : "the loss";
    if (!bad) return TG_OK;
    return isfinite(loss->data[0])
               ? tg_error(TG_ERR_STATE, "the weights diverged at epoch %d step %lld (%s holds NaN or infinite "
                          "values; loss %g): try a lower --lr", epoch, (long long)steps + 1, bad, (double)loss->data[0])
               : tg_error(TG_ERR_STATE, "the training loss became %g at epoch %d step %lld (try a lower --lr)",
                          (double)loss->data[0], epoch, (long long)steps + 1);
}

/* The epoch's training steps, until the loader ends, a step fails or a signal comes. */
static tg_status train_steps(trainer *t, int epoch, tg_progress *bar, char *status, size_t status_size, epoch_sums *s)
{
    const config *c = t->c;
    tg_status st = TG_OK;
    tg_batch b;
    while (!run_interrupted && (st = tg_loader_next(t->loader, &b)) == TG_OK && b.x) {
        tg_tensor *logits = tg_unet_forward(t->m, b.x);
        tg_tensor *loss = whole_batch_mean(head_loss(t->head, logits, b.y, c->class_weight, &t->lb), b.y, c->class_weight);
        if (!loss || tg_backward(loss) != TG_OK ||
            tg_dist_allreduce_grads(t->m->params, b.x->shape[0], b.global_size) != TG_OK ||
            tg_optimizer_step(t->opt) != TG_OK) {
            st = tg_last_status();
            tg_batch_free(&b);
            break;
        }
        tg_lr_sched_step(&t->sched);
        if ((st = check_finite(t, loss, epoch, s->steps)) != TG_OK) {
            tg_batch_free(&b);
            break;
        }
        s->loss_sum += loss->data[0];
        s->images += b.global_size;
        s->steps++;
        tg_optimizer_zero_grad(t->opt);
        tg_tape_clear();
        tg_batch_free(&b);
        snprintf(status, status_size, "loss %.4f lr %.2e", s->loss_sum / (double)s->steps, t->opt->groups[0].lr);
        tg_progress_update(bar, s->steps, status);
    }
    return st;
}

/* last.safetensors every epoch (rank 0), best.safetensors when the Dice beats every saved one. */
static int save_checkpoints(trainer *t, int epoch, const unet_epoch *e)
{
    int rc = 0;
    tg_meta meta = {0};
    fill_meta(&meta, t->c, t->head, epoch, unet_run_best(&t->run));
    tg_ckpt_opts so = {.optim = t->opt, .sched = &t->sched, .meta = &meta};
    if (tg_dist_is_main() && tg_checkpoint_save(t->p.last, t->m->params, &so) != TG_OK)
        rc = fail("cannot save the checkpoint");
    else t->saved_epoch = epoch;
    if (rc == 0 && e->evaluated && e->dice > t->best_dice) { /* rank 0 only evaluates */
        t->best_dice = e->dice;
        tg_ckpt_opts bo = {.meta = &meta};
        if (tg_checkpoint_save(t->p.best, t->m->params, &bo) != TG_OK) rc = fail("cannot save the best checkpoint");
    }
    tg_meta_clear(&meta);
    return rc;
}

/* After the steps: the evaluation (every --eval-every epochs and after the last; rank 0), the
 * epoch's line, the log and the checkpoints. */
static int end_epoch(trainer *t, int epoch, unet_epoch *e)
{
    const config *c = t->c;
    const char *head = HEAD_NAME[t->head];
    if ((epoch % c->eval_every == 0 || epoch == c->epochs) && tg_dist_is_main()) {
        if (evaluate(t->m, t->head, c, t->d->test, e) != TG_OK) return fail("evaluation failed");
        printf("%s epoch %d/%d: train loss %.4f, test loss %.4f, Dice %.4f, mIoU %.4f, acc %.4f, %.1f s "
               "(%.2f img/s, data wait %.1f%%), eval %.1f s\n",
               head, epoch, c->epochs, e->train_loss, e->test_loss, e->dice, e->miou, e->global_acc,
               e->train_seconds, e->images_per_second, 100 * e->wait_share, e->eval_seconds);
    } else {
        printf("%s epoch %d/%d: train loss %.4f, %.1f s (%.2f img/s, data wait %.1f%%)\n", head, epoch,
               c->epochs, e->train_loss, e->train_seconds, e->images_per_second, 100 * e->wait_share);
    }
    t->run.peak_rss_mb = cli_peak_rss_mb();
    if (!unet_run_push(&t->run, e)) return fail("out of memory");
    if (epoch_line(&t->run, e, t->log, t->p.log) != TG_OK) return fail("cannot log the epoch");
    return save_checkpoints(t, epoch, e);
}

/* One epoch; 0 or the exit code. An interrupted epoch's steps are abandoned: resuming redoes the
 * epoch from its start. */
static int train_epoch(trainer *t, int epoch)
{
    const config *c = t->c;
    char label[48], status[96] = "";
    snprintf(label, sizeof label, "%s %d/%d", HEAD_NAME[t->head], epoch, c->epochs);
    tg_progress bar;
    tg_progress_begin(&bar, tg_dist_progress_stream(), label, t->steps_per_epoch, c->batch, "img");
    const double wait0 = tg_loader_get_stats(t->loader).wait_seconds;
    epoch_sums s = {0};
    tg_status st = train_steps(t, epoch, &bar, status, sizeof status, &s);
    tg_tape_clear();
    if (run_interrupted) {
        fprintf(stderr, "\n");
        return 0;
    }
    if (st != TG_OK) {
        fprintf(stderr, "\n");
        int rc = fail("training failed");
        fprintf(stderr, "unet_drive: nothing of epoch %d was saved; %s %s\n", epoch,
                t->saved_epoch ? t->p.last : "no checkpoint",
                t->saved_epoch ? "keeps the last finite model" : "was written");
        return rc;
    }
    tg_dist_allreduce_sum(&s.loss_sum, 1); /* the ranks' mean losses, averaged */
    unet_epoch e = {.epoch = epoch, .lr = t->opt->groups[0].lr,
                    .train_loss = s.loss_sum / (double)s.steps / tg_dist_world_size()};
    e.train_seconds = tg_progress_end(&bar, status);
    e.images_per_second = (double)s.images / e.train_seconds;
    e.wait_share = (tg_loader_get_stats(t->loader).wait_seconds - wait0) / e.train_seconds;
    return end_epoch(t, epoch, &e);
}

/* The epochs from start_epoch + 1 to --epochs (or --stop-after), then how to resume after a signal. */
static int train_epochs(trainer *t)
{
    const config *c = t->c;
    int rc = 0;
    t->saved_epoch = t->start_epoch;
    tg_param_list_train(t->m->params, true);
    const int last_epoch = c->stop_after && c->stop_after < c->epochs ? c->stop_after : c->epochs;
    for (int epoch = t->start_epoch + 1; epoch <= last_epoch && rc == 0 && !run_interrupted; epoch++)
        rc = train_epoch(t, epoch);
    if (rc == 0 && run_interrupted) {
        print_resume_hint(c, t->p.last, t->saved_epoch);
        rc = interrupted_code();
    }
    if (rc == 0)
        printf("%s head done: log %s, checkpoints %s and %s, peak memory %.0f MB\n", HEAD_NAME[t->head], t->p.log,
               t->p.last, t->p.best, cli_peak_rss_mb());
    return rc;
}

/* Closes the log (a failed close is a failed write) and frees everything; the exit code. */
static int trainer_close(trainer *t, int rc)
{
    if (t->log && fclose(t->log) != 0 && rc == 0) {
        fprintf(stderr, "unet_drive: cannot write %s: %s\n", t->p.log, strerror(errno));
        rc = 1;
    }
    loss_buffers_free(&t->lb);
    tg_loader_free(t->loader);
    tg_optimizer_free(t->opt);
    tg_unet_free(t->m);
    unet_run_free(&t->run);
    head_paths_free(&t->p);
    return rc;
}

int train_head(const config *c, int head, const drive_data *d)
{
    trainer t = {.c = c, .d = d, .head = head, .classes = head == HEAD_SIGMOID ? 1 : 2, .best_dice = -1};
    if (head_paths_make(c, head, &t.p) != TG_OK) return fail("cannot start");
    int rc = prepare_dir(&t);
    if (rc == 0) rc = build_model(&t);
    const bool resuming = c->resume && t.have_last;
    if (rc == 0 && resuming) rc = resume_checkpoint(&t);
    if (rc == 0 && resuming) rc = resume_log(&t);
    if (rc == 0 && !resuming) t.log = fopen(tg_dist_is_main() ? t.p.log : "/dev/null", "w");
    if (rc == 0) rc = start_training(&t);
    if (rc == 0) rc = train_epochs(&t);
    return trainer_close(&t, rc);
}
