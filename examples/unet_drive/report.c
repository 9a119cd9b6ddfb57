/* unet_drive's logs, side-by-side report, curves (PLplot) and overlays. */
#include "report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

#ifdef TG_HAVE_PLPLOT
#include <plplot.h>
#endif

/* ---- runs and their log lines ------------------------------------------------------------- */

/* JSON has no NaN: non-finite values are written as null. */
static int put_num(char *buf, size_t size, const char *key, double v, const char *fmt)
{
    if (!isfinite(v)) return snprintf(buf, size, ", \"%s\": null", key);
    char num[64];
    snprintf(num, sizeof num, fmt, v);
    return snprintf(buf, size, ", \"%s\": %s", key, num);
}

void unet_epoch_json(const unet_run *run, const unet_epoch *e, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size,
                                "{\"head\": \"%s\", \"num_classes\": %d, \"params\": %lld, \"base_c\": %d, \"crop\": %d, "
                                "\"batch\": %d, \"epochs\": %d, \"epoch\": %d",
                                run->head, run->num_classes, (long long)run->params, run->base_c, run->crop, run->batch,
                                run->epochs_planned, e->epoch);
    if (run->norm_mean[0] && n < size)
        n += (size_t)snprintf(buf + n, size - n, ", \"norm_mean\": \"%s\", \"norm_std\": \"%s\"", run->norm_mean,
                              run->norm_std);
#define PUT(key, v, fmt)                                                                                                \
    do {                                                                                                                \
        if (n < size) n += (size_t)put_num(buf + n, size - n, key, v, fmt);                                            \
    } while (0)
    PUT("lr", e->lr, "%.6g");
    PUT("train_loss", e->train_loss, "%.6f");
    PUT("train_seconds", e->train_seconds, "%.3f");
    PUT("images_per_second", e->images_per_second, "%.3f");
    PUT("data_wait_share", e->wait_share, "%.5f");
    PUT("peak_rss_mb", run->peak_rss_mb, "%.1f");
    if (e->evaluated) {
        PUT("test_loss", e->test_loss, "%.6f");
        PUT("dice", e->dice, "%.17g"); /* exact: a resumed run restores its best Dice from the log */
        PUT("miou", e->miou, "%.6f");
        PUT("global_acc", e->global_acc, "%.6f");
        PUT("acc_background", e->acc[0], "%.6f");
        PUT("acc_vessel", e->acc[1], "%.6f");
        PUT("iou_background", e->iou[0], "%.6f");
        PUT("iou_vessel", e->iou[1], "%.6f");
        PUT("eval_seconds", e->eval_seconds, "%.3f");
        PUT("infer_ms_per_image", e->infer_ms, "%.2f");
    }
#undef PUT
    if (run->config[0] && n < size) n += (size_t)snprintf(buf + n, size - n, ", \"config\": %s", run->config);
    if (n + 2 <= size) memcpy(buf + n, "}", 2);
}

bool unet_run_push(unet_run *run, const unet_epoch *e)
{
    if (run->n_epochs == run->cap_epochs) {
        int cap = run->cap_epochs ? 2 * run->cap_epochs : 64;
        unet_epoch *p = realloc(run->epochs, (size_t)cap * sizeof *p);
        if (!p) return false;
        run->epochs = p;
        run->cap_epochs = cap;
    }
    run->epochs[run->n_epochs++] = *e;
    return true;
}

void unet_run_free(unet_run *run)
{
    free(run->epochs);
    run->epochs = NULL;
    run->n_epochs = run->cap_epochs = 0;
}

static double get_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* An integer field: 0 if absent, not a number or out of [lo, hi] (converting those would be undefined). */
static int64_t get_int(const cJSON *o, const char *key, double lo, double hi)
{
    const double v = get_num(o, key);
    return v >= lo && v <= hi ? (int64_t)v : 0;
}

tg_status unet_run_read(FILE *f, const char *name, unet_run *run)
{
    memset(run, 0, sizeof *run);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    tg_status st = TG_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[0] == '\n') continue;
        cJSON *o = (size_t)len == strlen(line) ? cJSON_Parse(line) : NULL; /* a NUL byte: not a log line */
        const cJSON *head = o ? cJSON_GetObjectItemCaseSensitive(o, "head") : NULL;
        double epoch = o ? get_num(o, "epoch") : NAN;
        if (!o || !cJSON_IsString(head) || !(epoch >= 1 && epoch <= 1e6)) {
            cJSON_Delete(o);
            st = tg_error(TG_ERR_FORMAT, "%s:%d: not a unet_drive log line (JSON with \"head\" and \"epoch\")", name,
                          lineno);
            break;
        }
        if (run->n_epochs && strncmp(run->head, head->valuestring, sizeof run->head - 1)) {
            st = tg_error(TG_ERR_FORMAT, "%s:%d: a line of the %.15s head among lines of the %s head", name, lineno,
                          head->valuestring, run->head);
            cJSON_Delete(o);
            break;
        }
        snprintf(run->head, sizeof run->head, "%s", head->valuestring);
        run->num_classes = (int)get_int(o, "num_classes", 0, 1e6);
        run->params = get_int(o, "params", 0, 1e15);
        run->base_c = (int)get_int(o, "base_c", 0, 1e6);
        run->crop = (int)get_int(o, "crop", 0, 1e6);
        run->batch = (int)get_int(o, "batch", 0, 1e6);
        run->epochs_planned = (int)get_int(o, "epochs", 0, 1e6);
        run->peak_rss_mb = get_num(o, "peak_rss_mb");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "norm_mean"), *ns = cJSON_GetObjectItemCaseSensitive(o, "norm_std");
        const cJSON *fw = cJSON_GetObjectItemCaseSensitive(o, "framework");
        if (cJSON_IsString(fw)) snprintf(run->framework, sizeof run->framework, "%s", fw->valuestring);
        if (cJSON_IsString(nm) && cJSON_IsString(ns)) {
            snprintf(run->norm_mean, sizeof run->norm_mean, "%s", nm->valuestring);
            snprintf(run->norm_std, sizeof run->norm_std, "%s", ns->valuestring);
        }
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
        char *cfg_text = cJSON_IsObject(cfg) ? cJSON_PrintUnformatted(cfg) : NULL;
        run->config[0] = '\0';
        if (cfg_text && strlen(cfg_text) < sizeof run->config) memcpy(run->config, cfg_text, strlen(cfg_text) + 1);
        free(cfg_text);
        unet_epoch e = {.epoch = (int)epoch,
                        .lr = get_num(o, "lr"),
                        .train_loss = get_num(o, "train_loss"),
                        .train_seconds = get_num(o, "train_seconds"),
                        .images_per_second = get_num(o, "images_per_second"),
                        .wait_share = get_num(o, "data_wait_share")};
        if (cJSON_GetObjectItemCaseSensitive(o, "dice")) {
            e.evaluated = true;
            e.test_loss = get_num(o, "test_loss");
            e.dice = get_num(o, "dice");
            e.miou = get_num(o, "miou");
            e.global_acc = get_num(o, "global_acc");
            e.acc[0] = get_num(o, "acc_background");
            e.acc[1] = get_num(o, "acc_vessel");
            e.iou[0] = get_num(o, "iou_background");
            e.iou[1] = get_num(o, "iou_vessel");
            e.eval_seconds = get_num(o, "eval_seconds");
            e.infer_ms = get_num(o, "infer_ms_per_image");
        }
        cJSON_Delete(o);
        if (!unet_run_push(run, &e)) {
            st = tg_error(TG_ERR_NOMEM, "out of memory reading %s", name);
            break;
        }
    }
    if (st == TG_OK && ferror(f)) st = tg_error(TG_ERR_IO, "cannot read %s: %s", name, strerror(errno));
    free(line);
    if (st != TG_OK) unet_run_free(run);
    return st;
}

tg_status unet_run_load(const char *path, unet_run *run)
{
    memset(run, 0, sizeof *run);
    FILE *f = tg_fopen_regular(path, NULL); /* never blocks on a FIFO; refuses directories and devices */
    if (!f) return tg_last_status();
    tg_status st = unet_run_read(f, path, run);
    fclose(f);
    return st;
}

const unet_epoch *unet_run_best(const unet_run *run)
{
    const unet_epoch *best = NULL;
    for (int i = 0; i < run->n_epochs; i++) {
        const unet_epoch *e = &run->epochs[i];
        if (e->evaluated && isfinite(e->dice) && (!best || e->dice > best->dice)) best = e;
    }
    return best;
}

const unet_epoch *unet_run_last_eval(const unet_run *run)
{
    for (int i = run->n_epochs - 1; i >= 0; i--)
        if (run->epochs[i].evaluated) return &run->epochs[i];
    return NULL;
}

/* ---- report.md and the stdout table ------------------------------------------------------ */

static double total_train_seconds(const unet_run *r)
{
    double s = 0;
    for (int i = 0; i < r->n_epochs; i++) s += isfinite(r->epochs[i].train_seconds) ? r->epochs[i].train_seconds : 0;
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of a per-epoch field over the epochs that have it (robust to a few epochs slowed
 * by other work on a shared machine). */
static double median_field(const unet_run *r, size_t offset, bool evaluated_only)
{
    double *v = malloc(sizeof(double) * (size_t)(r->n_epochs ? r->n_epochs : 1));
    int n = 0;
    for (int i = 0; v && i < r->n_epochs; i++) {
        const unet_epoch *e = &r->epochs[i];
        double x = *(const double *)((const char *)e + offset);
        if ((!evaluated_only || e->evaluated) && isfinite(x)) v[n++] = x;
    }
    double m = NAN;
    if (n) {
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        m = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
    free(v);
    return m;
}

/* One table row per metric, one column per run: written to both outputs. */
static void table(FILE *md, const unet_run *runs, int n)
{
    FILE *outs[2] = {md, stdout};
    for (int o = 0; o < 2; o++) {
        FILE *f = outs[o];
        if (!f) continue;
        bool isMd = o == 0;
        fprintf(f, isMd ? "| | " : "%-32s", "");
        for (int k = 0; k < n; k++) {
            char head[48];
            snprintf(head, sizeof head, "%s (%d ch)", runs[k].head, runs[k].num_classes);
            fprintf(f, isMd ? "%s | " : "%22s", head);
        }
        fprintf(f, "\n");
        if (isMd) {
            fprintf(f, "|---|");
            for (int k = 0; k < n; k++) fprintf(f, "---|");
            fprintf(f, "\n");
        }
#define ROW(label, fmt, expr)                                                                                           \
    do {                                                                                                                \
        fprintf(f, isMd ? "| %s | " : "%-32s", label);                                                                   \
        for (int k = 0; k < n; k++) {                                                                                   \
            const unet_run *r = &runs[k];                                                                               \
            const unet_epoch *best = unet_run_best(r), *last = unet_run_last_eval(r);                                   \
            (void)best, (void)last, (void)r;                                                                            \
            char cell[64], aux[64];                                                                                     \
            (void)aux;                                                                                                  \
            snprintf(cell, sizeof cell, fmt, expr);                                                                     \
            fprintf(f, isMd ? "%s | " : "%22s", cell);                                                                  \
        }                                                                                                               \
        fprintf(f, "\n");                                                                                               \
    } while (0)
#define V(e, field) ((e) ? (e)->field : NAN)
        ROW("parameters", "%lld", (long long)r->params);
        ROW("epochs trained", "%d", r->n_epochs);
        ROW("final test Dice", "%.4f", V(last, dice));
        ROW("best test Dice (epoch)", "%s", best ? (snprintf(aux, sizeof aux, "%.4f (%d)", best->dice, best->epoch), aux) : "-");
        ROW("final mean IoU", "%.4f", V(last, miou));
        ROW("final global accuracy", "%.4f", V(last, global_acc));
        ROW("final vessel accuracy", "%.4f", V(last, acc[1]));
        ROW("final vessel IoU", "%.4f", V(last, iou[1]));
        ROW("final test loss", "%.4f", V(last, test_loss));
        ROW("final train loss", "%.4f", r->n_epochs ? r->epochs[r->n_epochs - 1].train_loss : NAN);
        ROW("train time (min)", "%.1f", total_train_seconds(r) / 60.0);
        ROW("train images/s (median epoch)", "%.2f", median_field(r, offsetof(unet_epoch, images_per_second), false));
        ROW("inference ms/test image", "%.0f", median_field(r, offsetof(unet_epoch, infer_ms), true));
        ROW("data-wait share of step time", "%.2f%%", 100.0 * median_field(r, offsetof(unet_epoch, wait_share), false));
        ROW("peak memory (MB)", "%.0f", r->peak_rss_mb);
#undef V
#undef ROW
    }
}

tg_status unet_report_write(const char *out_dir, const unet_run *runs, int n_runs)
{
    char *path = NULL, *tmp = NULL;
    if (asprintf(&path, "%s/report.md", out_dir) < 0 || asprintf(&tmp, "%s/report.md.tmp", out_dir) < 0) {
        if (path) free(path);
        return tg_error(TG_ERR_NOMEM, "out of memory");
    }
    FILE *md = fopen(tmp, "w");
    if (!md) {
        tg_status st = tg_error(TG_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        free(path), free(tmp);
        return st;
    }
    const unet_run *r0 = n_runs ? &runs[0] : NULL;
    fprintf(md, "# UNet on DRIVE: 1 channel + sigmoid + BCE vs 2 channels + softmax + CE\n\n");
    if (r0)
        fprintf(md,
                "Reference UNet (bilinear), base width %d, crop %d, batch %d; SGD (momentum 0.9, weight decay on "
                "every parameter), warmup + poly schedule; test metrics on the 20 full DRIVE test images, pixels "
                "outside the field of view ignored. Same seed, same batches and the same initial weights for every "
                "layer but the last in both runs.\n\n",
                r0->base_c, r0->crop, r0->batch);
    if (r0 && r0->norm_mean[0])
        fprintf(md, "Input normalisation (on values in [0, 1]): mean %s, std %s.\n\n", r0->norm_mean, r0->norm_std);
    if (r0 && r0->config[0]) fprintf(md, "Effective configuration (preset, then flags): `%s`\n\n", r0->config);
    table(md, runs, n_runs);
    fprintf(md,
            "\n## Reading it\n\n"
            "The two losses are the same function of the logit difference: with z = z1 - z0, the 2-channel "
            "cross-entropy with class weights (w0, w1) and the 1-channel BCE-with-logits with per-pixel weights "
            "w_y, both divided by the sum of the weights of the counted pixels, give the same loss value and "
            "the same gradient with respect to z (tests/test_loss_theory.c checks both, with weights and ignored pixels). So any "
            "difference between the columns comes from the parametrisation: the softmax head has one more "
            "1x1 output channel (its own weights, bias, initialisation and weight decay), and its gradient "
            "reaches the shared layers through z1 - z0, while the sigmoid head's single channel is z itself. "
            "Differences of a few thousandths in Dice are within run-to-run noise (change --seed to see it).\n\n"
            "Figures: curves.png (training loss and test Dice per epoch); overlay_NN.png (test image, then each "
            "head's prediction: white = vessel found, red = false positive, green = vessel missed, dark = "
            "outside the field of view).\n\n"
            "Per-epoch values: sigmoid/log.jsonl and softmax/log.jsonl. Checkpoints (safetensors, PyTorch "
            "state_dict names): <head>/last.safetensors and <head>/best.safetensors.\n");
    bool ok = !ferror(md);
    ok &= fclose(md) == 0;
    tg_status st = TG_OK;
    if (!ok || rename(tmp, path) != 0) {
        st = tg_error(TG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
    }
    free(path), free(tmp);
    return st;
}

/* ---- curves.png ---------------------------------------------------------------------------- */

#ifdef TG_HAVE_PLPLOT
static bool plot_failed;
static int plot_exit_handler(PLCHAR_VECTOR msg)
{
    tg_error(TG_ERR_STATE, "PLplot: %s", msg);
    plot_failed = true;
    return 0; /* do not exit the program */
}

static bool have_device(const char *name)
{
    const char *menu_store[128], *devs_store[128];
    const char **menu = menu_store, **devs = devs_store;
    int n = 128;
    plgDevs(&menu, &devs, &n);
    for (int i = 0; i < n; i++)
        if (devs[i] && !strcmp(devs[i], name)) return true;
    return false;
}

static void panel(const unet_run *runs, int n_runs, bool dice, const int *colors)
{
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < n_runs; k++)
        for (int i = 0; i < runs[k].n_epochs; i++) {
            const unet_epoch *e = &runs[k].epochs[i];
            double v = dice ? (e->evaluated ? e->dice : NAN) : e->train_loss;
            if (!isfinite(v)) continue;
            if (e->epoch > xmax) xmax = e->epoch;
            if (v < ymin) ymin = v;
            if (v > ymax) ymax = v;
        }
    if (!(ymin <= ymax)) ymin = 0, ymax = 1;
    double pad = (ymax - ymin) * 0.08 + 1e-3;
    plcol0(15);
    plenv(0.5, xmax + 0.5, ymin - pad, ymax + pad, 0, 0);
    plcol0(3); /* light grid under the curves */
    plbox("g", 0, 0, "g", 0, 0);
    plcol0(15);
    plbox("bcnst", 0, 0, "bcnstv", 0, 0);
    pllab("epoch", dice ? "test Dice (vessel)" : "training loss", dice ? "Test Dice" : "Training loss");
    for (int k = 0; k < n_runs; k++) {
        PLFLT x[4096], y[4096];
        int m = 0;
        for (int i = 0; i < runs[k].n_epochs && m < 4096; i++) {
            const unet_epoch *e = &runs[k].epochs[i];
            double v = dice ? (e->evaluated ? e->dice : NAN) : e->train_loss;
            if (isfinite(v)) x[m] = e->epoch, y[m] = v, m++;
        }
        plcol0(colors[k % 2]);
        plwidth(2.0);
        if (m > 1) plline(m, x, y);
        plpoin(m, x, y, 17);
        char label[48];
        snprintf(label, sizeof label, "%s (%d ch)", runs[k].head, runs[k].num_classes);
        /* legend in the corner the curves leave free: top right for the loss, bottom right for Dice */
        if (dice) plmtex("b", -1.2 - 1.3 * (n_runs - 1 - k), 0.97, 1.0, label);
        else plmtex("t", -1.5 - 1.3 * k, 0.97, 1.0, label);
    }
    plwidth(1.0);
}
#endif

#ifdef TG_HAVE_PLPLOT
/* path holds a PNG from its signature to its IEND chunk (errno set if it cannot be read). */
static bool png_complete(const char *path)
{
    static const unsigned char SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char IEND[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    errno = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char head[8], tail[12];
    bool ok = fread(head, 1, 8, f) == 8 && !memcmp(head, SIG, 8) && fseek(f, -12, SEEK_END) == 0 &&
              fread(tail, 1, 12, f) == 12 && !memcmp(tail, IEND, 12);
    fclose(f);
    errno = 0;
    return ok;
}
#endif

tg_status unet_plot_panels(const char *path, void (*draw)(const void *ctx, bool dice), const void *ctx)
{
#ifdef TG_HAVE_PLPLOT
    if (!have_device("pngcairo"))
        return tg_error(TG_ERR_STATE, "PLplot's pngcairo driver is missing (install plplot-driver-cairo; "
                                      "scripts/setup.sh does)");
    plot_failed = false;
    plsexit(plot_exit_handler);
    plsdev("pngcairo");
    plsfnam(path);
    plspage(0, 0, 1200, 480, 0, 0);
    plscolbg(255, 255, 255);
    plscol0(15, 0, 0, 0);            /* axes and text: black */
    plscol0(1, 31, 119, 180);        /* sigmoid: blue */
    plscol0(2, 214, 39, 40);         /* softmax: red */
    plscol0(3, 215, 215, 215);       /* grid */
    plscol0a(4, 31, 119, 180, 0.25); /* bands */
    plscol0a(5, 214, 39, 40, 0.25);
    plssub(2, 1);
    plinit();
    if (!plot_failed) {
        draw(ctx, false);
        draw(ctx, true);
    }
    plend();
    if (plot_failed) return TG_ERR_STATE;
    /* PLplot's cairo driver does not report write errors (a full disk leaves an empty or cut
     * file): the file must be a whole PNG, ending with its IEND chunk. */
    if (!png_complete(path)) {
        const int err = errno;
        remove(path);
        return tg_error(TG_ERR_IO, "cannot write %s: %s", path,
                        err ? strerror(err) : "the file was cut short (disk full or file-size limit?)");
    }
    return TG_OK;
#else
    (void)path, (void)draw, (void)ctx;
    return tg_error(TG_ERR_STATE, "built without PLplot (install libplplot-dev and plplot-driver-cairo, then "
                                  "rebuild; scripts/setup.sh does)");
#endif
}

typedef struct {
    const unet_run *runs;
    int n_runs;
} curves_ctx;

#ifdef TG_HAVE_PLPLOT
static void curves_panel(const void *ctx, bool dice)
{
    const curves_ctx *c = ctx;
    static const int colors[2] = {1, 2};
    panel(c->runs, c->n_runs, dice, colors);
}
#else
static void curves_panel(const void *ctx, bool dice) { (void)ctx, (void)dice; }
#endif

tg_status unet_plot_curves(const char *path, const unet_run *runs, int n_runs)
{
    const curves_ctx c = {runs, n_runs};
    return unet_plot_panels(path, curves_panel, &c);
}

/* ---- overlays -------------------------------------------------------------------------------- */

tg_status unet_overlay_save(const char *path, const tg_image *image, const uint8_t *target,
                            const uint8_t *const *preds, int n_preds)
{
    if (!image || image->channels != 3 || !target || n_preds < 0)
        return tg_error(TG_ERR_ARG, "unet_overlay_save: needs an RGB image, a target and predictions");
    const int W = image->width, H = image->height, gap = 8, panels = 1 + n_preds;
    tg_image *out = tg_image_new(panels * W + (panels - 1) * gap, H, 3);
    if (!out) return tg_last_status();
    memset(out->data, 255, (size_t)out->width * (size_t)H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *src = tg_image_at(image, x, y, 0);
            memcpy(tg_image_at(out, x, y, 0), src, 3);
            const uint8_t t = target[(size_t)y * W + x];
            for (int k = 0; k < n_preds; k++) {
                uint8_t *dst = tg_image_at(out, (k + 1) * (W + gap) + x, y, 0);
                const uint8_t p = preds[k][(size_t)y * W + x];
                uint8_t rgb[3];
                if (t == UNET_IGNORE_LABEL) { /* outside the field of view */
                    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)(src[c] / 6);
                } else if (t == 1 && p == 1) {
                    rgb[0] = rgb[1] = rgb[2] = 255;
                } else if (t == 0 && p == 1) {
                    rgb[0] = 230, rgb[1] = 40, rgb[2] = 40;
                } else if (t == 1 && p == 0) {
                    rgb[0] = 40, rgb[1] = 210, rgb[2] = 60;
                } else { /* true negative: the image, dimmed */
                    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)(src[c] / 3);
                }
                memcpy(dst, rgb, 3);
            }
        }
    tg_status st = tg_image_save_png(out, path);
    tg_image_free(out);
    return st;
}
