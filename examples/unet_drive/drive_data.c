/* unet_drive's datasets as a run uses them: the training set with its augmentation, the test
 * set, --limit-train/--limit-test, and the base size and crop that follow from the images
 * (unet_drive.h). */
#include <string.h>

#include "unet_drive.h"

void drive_data_free(drive_data *d)
{
    tg_dataset_free(d->train);
    tg_dataset_free(d->test);
    unet_data_close(&d->data);
    memset(d, 0, sizeof *d);
}

static void print_data(const config *c, const drive_data *d, const char *root)
{
    char m[64], s[64];
    unet_norm_format(c->mean, m, sizeof m);
    unet_norm_format(c->std, s, sizeof s);
    printf("data: %s at %s: %lld training, %lld test images; normalisation mean %s, std %s (%s); base size %d, "
           "crop %d\n",
           unet_layout_describe(d->data.layout, d->data.masks), root,
           (long long)tg_seg_dataset_length(d->train_seg), (long long)tg_seg_dataset_length(d->test_seg), m, s,
           d->data.norm_source, c->base_size, c->crop);
}

tg_status drive_data_open(config *c, bool need_train, const float *norm_mean, const float *norm_std, bool verbose,
                          drive_data *d)
{
    memset(d, 0, sizeof *d);
    const char *root = c->data ? c->data : tg_drive_default_root();
    if (!norm_mean && c->mean_given) norm_mean = c->mean, norm_std = c->std;
    tg_status st = unet_data_open(root, need_train, norm_mean, norm_std, &d->data);
    if (st != TG_OK) return st;
    d->train_seg = d->data.train;
    d->test_seg = d->data.test;
    memcpy(c->mean, d->data.mean, sizeof c->mean);
    memcpy(c->std, d->data.std, sizeof c->std);
    const bool drive = d->data.layout == UNET_LAYOUT_DRIVE;
    if (!c->base_size) c->base_size = drive ? UNET_DRIVE_WIDTH : d->data.min_side;
    if (!c->crop) c->crop = unet_default_crop(c->base_size);
    if (verbose) print_data(c, d, root);
    d->aug = tg_seg_augment_drive(c->base_size, c->crop);
    memcpy(d->aug.mean, c->mean, sizeof d->aug.mean);
    memcpy(d->aug.std, c->std, sizeof d->aug.std);
    if (need_train && !(d->train = tg_seg_dataset_train(d->train_seg, &d->aug))) return tg_last_status();
    if (!(d->test = tg_seg_dataset_eval(d->test_seg, c->mean, c->std))) return tg_last_status();
    /* --limit-*: the first N samples (datasets read only indices below length) */
    if (d->train && c->limit_train && c->limit_train < d->train->length) d->train->length = c->limit_train;
    if (c->limit_test && c->limit_test < d->test->length) d->test->length = c->limit_test;
    return TG_OK;
}
