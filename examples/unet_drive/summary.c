/* unet_drive after training: report.md and the table on stdout, curves.png and the overlays of
 * the best checkpoints, for one seed's heads or over the seeds (unet_drive.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "head_loss.h"
#include "run.h"
#include "unet_drive.h"

/* Overlays of the first K test images with each head's best checkpoint in models_dir, into c->out. */
static tg_status write_overlays(const config *c, const char *models_dir, const drive_data *d, int k_images)
{
    tg_unet *models[2] = {NULL, NULL};
    float mean[2][3], std[2][3];
    int heads[2], n = 0;
    for (int h = 0; h < 2; h++) {
        char *path = run_path("%s/%s/best.safetensors", models_dir, HEAD_NAME[h]);
        if (!path || !file_exists(path)) {
            free(path);
            continue;
        }
        models[n] = load_model(path, &heads[n], mean[n], std[n]);
        free(path);
        if (!models[n]) {
            for (int i = 0; i < n; i++) tg_unet_free(models[i]);
            return tg_last_status();
        }
        n++;
    }
    if (!n) return TG_OK;
    tg_status st = TG_OK;
    const int64_t count = k_images < d->test->length ? k_images : d->test->length;
    bool prev_grad = tg_set_grad_enabled(false);
    for (int64_t i = 0; i < count && st == TG_OK; i++) {
        tg_image *img = NULL, *tgt = NULL;
        if ((st = tg_seg_dataset_get(d->test_seg, i, &img, &tgt)) != TG_OK) break;
        const int64_t P = (int64_t)img->width * img->height;
        tg_tensor *x = tg_tensor_zeros(TG_SHAPE(1, 3, img->height, img->width));
        uint8_t *preds[2] = {malloc((size_t)P), malloc((size_t)P)};
        if (!x || !preds[0] || !preds[1]) st = tg_error(TG_ERR_NOMEM, "out of memory");
        for (int k = 0; k < n && st == TG_OK; k++) {
            if ((st = tg_seg_to_tensor(img, NULL, mean[k], std[k], x->data, NULL)) != TG_OK) break;
            tg_param_list_train(models[k]->params, false);
            tg_tensor *logits = tg_unet_forward(models[k], x);
            if (!logits) st = tg_last_status();
            else tg_seg_predict(logits->data, logits->shape[1], P, preds[k]);
            tg_tape_clear();
        }
        char *path = st == TG_OK ? run_path("%s/overlay_%02lld.png", c->out, (long long)i + 1) : NULL;
        if (st == TG_OK && !path) st = tg_last_status();
        if (st == TG_OK) {
            st = unet_overlay_save(path, img, tgt->data, (const uint8_t *const *)preds, n);
            if (st == TG_OK) {
                printf("overlay %s: test image %lld; panels: image", path, (long long)i + 1);
                for (int k = 0; k < n; k++) printf(", %s", HEAD_NAME[heads[k]]);
                printf("\n");
            }
        }
        free(path);
        free(preds[0]);
        free(preds[1]);
        tg_tensor_free(x);
        tg_image_free(img);
        tg_image_free(tgt);
    }
    tg_set_grad_enabled(prev_grad);
    for (int k = 0; k < n; k++) tg_unet_free(models[k]);
    return st;
}

int report(const config *c, const drive_data *d)
{
    unet_run runs[2];
    int n = 0;
    for (int h = 0; h < 2; h++) {
        char *path = run_path("%s/%s/log.jsonl", c->out, HEAD_NAME[h]);
        if (!path) return fail("cannot read the logs");
        struct stat st;
        if (stat(path, &st) != 0 && errno == ENOENT) {
            free(path);
            continue;
        }
        tg_status ls = unet_run_load(path, &runs[n]);
        free(path);
        if (ls != TG_OK) {
            for (int i = 0; i < n; i++) unet_run_free(&runs[i]);
            return fail("cannot read the logs");
        }
        n++;
    }
    if (!n) {
        fprintf(stderr, "unet_drive: no logs in %s/sigmoid or %s/softmax: train first (or pass --out DIR)\n", c->out,
                c->out);
        return 1;
    }
    int rc = 0;
    printf("\n");
    if (unet_report_write(c->out, runs, n) != TG_OK) rc = fail("cannot write the report");
    char *path = run_path("%s/curves.png", c->out);
    if (rc == 0 && !path) rc = fail("cannot draw the curves");
    if (rc == 0) {
        tg_status ps = unet_plot_curves(path, runs, n);
        if (ps == TG_OK) printf("\ncurves: %s\n", path);
        else if (ps == TG_ERR_IO) rc = fail("cannot draw the curves"); /* a failed write, not a missing PLplot */
        else fprintf(stderr, "unet_drive: no curves.png: %s\n", tg_last_error());
    }
    free(path);
    if (rc == 0 && d && c->overlays && write_overlays(c, c->out, d, c->overlays) != TG_OK)
        rc = fail("cannot draw the overlays");
    if (rc == 0) printf("report: %s/report.md\n", c->out);
    for (int i = 0; i < n; i++) unet_run_free(&runs[i]);
    return rc;
}

/* --seeds: OUT/report.md over the seeds (seeds.c), curves with bands, overlays of the first seed's models. */
int report_seeds(const config *c, const drive_data *d)
{
    long long found[UNET_MAX_SEEDS];
    int n = c->n_seeds;
    const long long *seeds = c->seeds;
    if (!n) {
        if (unet_seeds_find(c->out, found, &n) != TG_OK) return fail("cannot list the seeds");
        seeds = found;
    }
    printf("\n");
    if (unet_seeds_report(c->out, seeds, n) != TG_OK) return fail("cannot write the report");
    int rc = 0;
    char *dir = run_path("%s/seed_%lld", c->out, seeds[0]);
    if (!dir) return fail("cannot draw the overlays");
    if (d && c->overlays && write_overlays(c, dir, d, c->overlays) != TG_OK) rc = fail("cannot draw the overlays");
    free(dir);
    if (rc == 0) printf("report: %s/report.md\n", c->out);
    return rc;
}
