/* unet_drive's checkpoints: the metadata each one carries (the settings, the normalisation, the
 * best epoch), its comparison on --resume, and loading a trained model for --eval, --predict and
 * the overlays (unet_drive.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cli.h"
#include "head_loss.h"
#include "run.h"
#include "unet_drive.h"

static void meta_int(tg_meta *m, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    tg_meta_set(m, key, buf);
}

static void meta_double(tg_meta *m, const char *key, double v)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%.17g", v);
    tg_meta_set(m, key, buf);
}

void fill_meta(tg_meta *meta, const config *c, int head, int epoch, const unet_epoch *best)
{
    tg_meta_set(meta, "head", HEAD_NAME[head]);
    tg_meta_set(meta, "preset", c->preset ? c->preset : "none");
    meta_int(meta, "num_classes", head == HEAD_SIGMOID ? 1 : 2);
    meta_int(meta, "in_channels", 3);
    meta_int(meta, "base_c", c->base_c);
    meta_int(meta, "epoch", epoch);
    meta_int(meta, "epochs", c->epochs);
    meta_int(meta, "crop", c->crop);
    meta_int(meta, "batch", c->batch);
    meta_int(meta, "seed", (long long)c->seed);
    meta_double(meta, "lr", c->lr);
    meta_double(meta, "momentum", c->momentum);
    meta_double(meta, "weight_decay", c->weight_decay);
    meta_int(meta, "warmup_epochs", c->warmup_epochs);
    meta_double(meta, "class_weight_0", c->class_weight[0]);
    meta_double(meta, "class_weight_1", c->class_weight[1]);
    char norm[64];
    unet_norm_format(c->mean, norm, sizeof norm); /* the input normalisation, for --eval and --predict */
    tg_meta_set(meta, "norm_mean", norm);
    unet_norm_format(c->std, norm, sizeof norm);
    tg_meta_set(meta, "norm_std", norm);
    meta_int(meta, "limit_train", (long long)c->limit_train);
    if (best) {
        meta_double(meta, "best_dice", best->dice);
        meta_int(meta, "best_epoch", best->epoch);
    }
}

bool meta_get_int(const tg_meta *m, const char *key, long long lo, long long hi, long long *out)
{
    const char *v = tg_meta_get(m, key);
    return v && cli_parse_long(v, lo, hi, out);
}

char *config_differences(const tg_meta *saved, const config *c, int head)
{
    /* progress, and the preset's name (its values are compared one by one) */
    static const char *const NOT_COMPARED[] = {"epoch", "best_dice", "best_epoch", "preset"};
    tg_meta now = {0};
    fill_meta(&now, c, head, 0, NULL);
    char *out = NULL;
    size_t len = 0;
    for (int i = 0; i < now.count; i++) {
        bool skip = false;
        for (size_t k = 0; k < sizeof NOT_COMPARED / sizeof *NOT_COMPARED; k++) skip |= !strcmp(now.keys[i], NOT_COMPARED[k]);
        const char *was = tg_meta_get(saved, now.keys[i]);
        if (skip || !was || !strcmp(was, now.values[i])) continue;
        char *line = run_path("  %s: checkpoint %s, now %s\n", now.keys[i], was, now.values[i]);
        char *grown = line ? realloc(out, len + strlen(line) + 1) : NULL;
        if (!grown) {
            free(line);
            break;
        }
        out = grown;
        memcpy(out + len, line, strlen(line) + 1);
        len += strlen(line);
        free(line);
    }
    tg_meta_clear(&now);
    return out;
}

const char *first_non_finite(const tg_param_list *list)
{
    for (int i = 0; i < list->count; i++) {
        const tg_tensor *t = list->entries[i].tensor;
        if (t->dtype != TG_F32) continue;
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k])) return list->entries[i].name;
    }
    return NULL;
}

tg_unet *load_model(const char *path, int *head, float mean[3], float std[3])
{
    tg_meta meta = {0};
    tg_param_list *probe = tg_param_list_new();
    tg_ckpt_opts opts = {.meta = &meta, .non_strict = true};
    tg_status st = probe ? tg_checkpoint_load(path, probe, &opts, NULL) : TG_ERR_NOMEM;
    tg_param_list_free(probe);
    if (st != TG_OK) {
        tg_meta_clear(&meta);
        return NULL;
    }
    long long classes, base_c;
    const char *h = tg_meta_get(&meta, "head");
    if (!h || (strcmp(h, "sigmoid") && strcmp(h, "softmax")) || !meta_get_int(&meta, "num_classes", 1, 2, &classes) ||
        !meta_get_int(&meta, "base_c", 1, 512, &base_c)) {
        tg_error(TG_ERR_FORMAT, "%s: not a unet_drive checkpoint (needs \"head\", \"num_classes\" and \"base_c\" "
                 "in its metadata)", path);
        tg_meta_clear(&meta);
        return NULL;
    }
    *head = strcmp(h, "sigmoid") ? HEAD_SOFTMAX : HEAD_SIGMOID;
    const char *nm = tg_meta_get(&meta, "norm_mean"), *ns = tg_meta_get(&meta, "norm_std");
    if (!nm && !ns) {
        memcpy(mean, TG_DRIVE_MEAN, 3 * sizeof *mean);
        memcpy(std, TG_DRIVE_STD, 3 * sizeof *std);
    } else if (!unet_norm_parse(nm, false, mean) || !unet_norm_parse(ns, true, std)) {
        tg_error(TG_ERR_FORMAT, "%s: bad \"norm_mean\"/\"norm_std\" in the metadata ('%s', '%s'; expected three "
                 "numbers each)", path, nm ? nm : "", ns ? ns : "");
        tg_meta_clear(&meta);
        return NULL;
    }
    tg_meta_clear(&meta);
    tg_unet *m = tg_unet_new(3, (int)classes, (int)base_c, NULL);
    if (!m) return NULL;
    if (tg_checkpoint_load(path, m->params, NULL, NULL) != TG_OK) {
        tg_unet_free(m);
        return NULL;
    }
    const char *bad = first_non_finite(m->params);
    if (bad) {
        tg_error(TG_ERR_FORMAT, "%s: %s holds NaN or infinite values (the run diverged): no valid model", path, bad);
        tg_unet_free(m);
        return NULL;
    }
    return m;
}

double saved_best_dice(const tg_meta *meta)
{
    const char *v = tg_meta_get(meta, "best_dice");
    double d;
    return v && cli_parse_double(v, &d) ? d : -1.0;
}

double best_dice_of(const char *path)
{
    tg_meta meta = {0};
    tg_param_list *probe = tg_param_list_new();
    tg_ckpt_opts opts = {.meta = &meta, .non_strict = true};
    double d = probe && tg_checkpoint_load(path, probe, &opts, NULL) == TG_OK ? saved_best_dice(&meta) : -1.0;
    tg_param_list_free(probe);
    tg_meta_clear(&meta);
    return d;
}

bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 || errno != ENOENT;
}
