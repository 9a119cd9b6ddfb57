/* unet_drive's datasets: DRIVE in its official layout or any binary-segmentation folder
 * (DIR/training and DIR/test, each with images/, labels/ and optional masks/), detected from
 * the files; the input normalisation (DRIVE's published values, computed over the training
 * images inside their masks, or given); and the base size and crop that follow from the images.
 * Ownership: unet_data_open fills a unet_data that unet_data_close frees. */
#ifndef UNET_DATASET_H
#define UNET_DATASET_H

#include "tapegrad.h"

/* Target value of a pixel outside the field of view (or the mask): the loss and the metrics skip it
 * (PyTorch's ignore_index). Labels are 0 background, 1 vessel. */
#define UNET_IGNORE_LABEL 255
/* Full intensity of an 8-bit image channel: pixel values are divided by it, and a 0/1 mask is
 * written as 0/UNET_PIXEL_MAX. */
#define UNET_PIXEL_MAX 255
/* DRIVE's images are 565 x 584 pixels; the reference's train.py crops 480 x 480 of them. */
#define UNET_DRIVE_WIDTH 565
#define UNET_DRIVE_HEIGHT 584
#define UNET_DRIVE_CROP 480

typedef enum { UNET_LAYOUT_DRIVE, UNET_LAYOUT_FOLDERS } unet_layout;

typedef struct {
    unet_layout layout;
    bool masks;                          /* folders: masks/ present (DRIVE: always) */
    tg_seg_dataset *train, *test;        /* train NULL unless asked for */
    float mean[3], std[3];               /* normalisation in use */
    char norm_source[160];               /* where mean/std come from, for the report */
    int min_side;                        /* shorter side of the smallest training (else test) image */
} unet_data;

/* Which layout root holds: DRIVE if root/training/images/21_training.tif or root/test/images/01_test.tif
 * exists, folders if root/{training,test}/images and .../labels are directories. TG_ERR_IO naming
 * what was looked for otherwise. */
tg_status unet_layout_detect(const char *root, unet_layout *layout);
const char *unet_layout_describe(unet_layout layout, bool masks);

/* Opens root's test split (and training split if need_train). Normalisation: mean/std if both
 * given (--mean/--std, or a checkpoint's); else DRIVE's values for DRIVE; else computed over the
 * training images inside their masks (opens the training split for that), rounded to 6
 * significant digits so the recorded values are the ones used. */
tg_status unet_data_open(const char *root, bool need_train, const float *mean, const float *std, unet_data *d);
void unet_data_close(unet_data *d);

/* Per-channel mean and (population) standard deviation of the pixel values / 255 over every
 * image of ds, counting only pixels whose target is not 255 (inside the mask). */
tg_status unet_norm_compute(const tg_seg_dataset *ds, float mean[3], float std[3]);

/* "a,b,c" for 3 floats (%.6g each), and its inverse (false unless exactly 3 finite numbers, and,
 * if positive, all > 0). */
void unet_norm_format(const float v[3], char *buf, size_t size);
bool unet_norm_parse(const char *s, bool positive, float v[3]);

/* The random-resize base and the crop for images whose shorter side is min_side:
 * DRIVE's 565 gives the reference's crop 480; in general crop = base * 480 / 565 rounded down to a
 * multiple of 16 (at least 16). */
int unet_default_crop(int base);

#endif
