/* unet_drive's datasets: layout detection, normalisation, default sizes (see dataset.h). */
#include "dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool folder_split(const char *root, const char *split)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s/images", root, split);
    if (!is_dir(p)) return false;
    snprintf(p, sizeof p, "%s/%s/labels", root, split);
    return is_dir(p);
}

tg_status unet_layout_detect(const char *root, unet_layout *layout)
{
    if (!root || !is_dir(root))
        return tg_error(TG_ERR_IO,
                        "no DRIVE dataset at %s (expected DRIVE's layout, %s/training/images/21_training.tif ... and "
                        "%s/test/images/01_test.tif ..., or folders %s/training and %s/test with images/, labels/ "
                        "and optional masks/): download DRIVE, then pass --data DIR or set TG_DRIVE_DIR",
                        root ? root : "(null)", root, root, root, root);
    char p[4200];
    snprintf(p, sizeof p, "%s/training/images/21_training.tif", root);
    bool drive = is_file(p);
    snprintf(p, sizeof p, "%s/test/images/01_test.tif", root);
    drive = drive || is_file(p);
    if (drive) {
        *layout = UNET_LAYOUT_DRIVE;
        return TG_OK;
    }
    if (folder_split(root, "training") || folder_split(root, "test")) {
        *layout = UNET_LAYOUT_FOLDERS;
        return TG_OK;
    }
    return tg_error(TG_ERR_IO,
                    "%s holds neither DRIVE's layout (training/images/21_training.tif, test/images/01_test.tif) "
                    "nor the folder layout (training/ and test/, each with images/, labels/ and optional masks/)",
                    root);
}

const char *unet_layout_describe(unet_layout layout, bool masks)
{
    if (layout == UNET_LAYOUT_DRIVE) return "DRIVE layout (images/, 1st_manual/, mask/)";
    return masks ? "folder layout (images/, labels/, masks/)" : "folder layout (images/, labels/; no masks/: every pixel counts)";
}

void unet_norm_format(const float v[3], char *buf, size_t size)
{
    snprintf(buf, size, "%.6g,%.6g,%.6g", (double)v[0], (double)v[1], (double)v[2]);
}

bool unet_norm_parse(const char *s, bool positive, float v[3])
{
    if (!s) return false;
    const char *p = s;
    for (int c = 0; c < 3; c++) {
        char *end;
        const double x = strtod(p, &end);
        if (end == p || !isfinite(x) || (positive && !(x > 0))) return false;
        v[c] = (float)x;
        if (c < 2) {
            if (*end != ',') return false;
            p = end + 1;
        } else if (*end) {
            return false;
        }
    }
    return true;
}

static float round6(double x)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", x);
    return strtof(buf, NULL);
}

tg_status unet_norm_compute(const tg_seg_dataset *ds, float mean[3], float std[3])
{
    double s[3] = {0, 0, 0}, ss[3] = {0, 0, 0};
    double count = 0;
    const int64_t n = tg_seg_dataset_length(ds);
    for (int64_t i = 0; i < n; i++) {
        tg_image *img, *tgt;
        tg_status st = tg_seg_dataset_get(ds, i, &img, &tgt);
        if (st != TG_OK) return st;
        const size_t P = (size_t)img->width * (size_t)img->height;
        for (size_t k = 0; k < P; k++) {
            if (tgt->data[k] == UNET_IGNORE_LABEL) continue;
            for (int c = 0; c < 3; c++) {
                const double v = img->data[3 * k + (size_t)c] / (double)UNET_PIXEL_MAX;
                s[c] += v;
                ss[c] += v * v;
            }
            count++;
        }
        tg_image_free(img);
        tg_image_free(tgt);
    }
    if (count < 1) return tg_error(TG_ERR_FORMAT, "no pixel inside the masks of the training images: cannot "
                                                  "compute the normalisation (give --mean and --std)");
    for (int c = 0; c < 3; c++) {
        const double m = s[c] / count, var = ss[c] / count - m * m;
        mean[c] = round6(m);
        std[c] = round6(var > 0 ? sqrt(var) : 0);
        if (!(std[c] > 0))
            return tg_error(TG_ERR_FORMAT, "channel %d of the training images is constant (%g) inside the masks: "
                                           "give --mean and --std", c, m);
    }
    return TG_OK;
}

static int min_side(const tg_seg_dataset *ds)
{
    int best = 0;
    for (int64_t i = 0; i < tg_seg_dataset_length(ds); i++) {
        tg_image *img, *tgt;
        if (tg_seg_dataset_get(ds, i, &img, &tgt) != TG_OK) return 0;
        const int side = img->width < img->height ? img->width : img->height;
        if (!best || side < best) best = side;
        tg_image_free(img);
        tg_image_free(tgt);
    }
    return best;
}

int unet_default_crop(int base)
{
    if (base == UNET_DRIVE_WIDTH) return UNET_DRIVE_CROP;
    int crop = (int)((long long)base * UNET_DRIVE_CROP / UNET_DRIVE_WIDTH) / 16 * 16;
    return crop < 16 ? 16 : crop;
}

void unet_data_close(unet_data *d)
{
    tg_seg_dataset_free(d->train);
    tg_seg_dataset_free(d->test);
    d->train = d->test = NULL;
}

static tg_seg_dataset *open_split(const char *root, unet_layout layout, bool training)
{
    if (layout == UNET_LAYOUT_DRIVE) return tg_drive_open(root, training ? TG_DRIVE_TRAINING : TG_DRIVE_TEST);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", root, training ? "training" : "test");
    return tg_seg_folder_open(dir, true);
}

tg_status unet_data_open(const char *root, bool need_train, const float *mean, const float *std, unet_data *d)
{
    memset(d, 0, sizeof *d);
    tg_status st = unet_layout_detect(root, &d->layout);
    if (st != TG_OK) return st;
    char p[4200];
    snprintf(p, sizeof p, "%s/training/masks", root);
    d->masks = d->layout == UNET_LAYOUT_DRIVE || is_dir(p);
    const bool given = mean && std;
    const bool compute = !given && d->layout == UNET_LAYOUT_FOLDERS;
    if ((need_train || compute) && !(d->train = open_split(root, d->layout, true))) return tg_last_status();
    if (!(d->test = open_split(root, d->layout, false))) {
        unet_data_close(d);
        return tg_last_status();
    }
    if (given) {
        memcpy(d->mean, mean, sizeof d->mean);
        memcpy(d->std, std, sizeof d->std);
        snprintf(d->norm_source, sizeof d->norm_source, "given");
    } else if (d->layout == UNET_LAYOUT_DRIVE) {
        memcpy(d->mean, TG_DRIVE_MEAN, sizeof d->mean);
        memcpy(d->std, TG_DRIVE_STD, sizeof d->std);
        snprintf(d->norm_source, sizeof d->norm_source, "DRIVE's published values");
    } else {
        if ((st = unet_norm_compute(d->train, d->mean, d->std)) != TG_OK) {
            unet_data_close(d);
            return st;
        }
        snprintf(d->norm_source, sizeof d->norm_source, "computed over the %lld training images%s",
                 (long long)tg_seg_dataset_length(d->train), d->masks ? " inside their masks" : "");
    }
    d->min_side = min_side(d->train ? d->train : d->test);
    if (!need_train && d->train) { /* opened only for the statistics */
        tg_seg_dataset_free(d->train);
        d->train = NULL;
    }
    return TG_OK;
}
