/* tapegrad data: images (TIFF, PNG, GIF, JPEG, BMP), the DRIVE retinal-vessel
 * dataset and binary-segmentation folders, the reference augmentation pipeline,
 * MNIST-format IDX files, and a prefetching mini-batch loader.
 *
 * Ownership: everything returned by a *_new, *_load, *_open or image operation
 * is the caller's, freed by the matching *_free (tg_image_free, tg_idx_free,
 * tg_seg_dataset_free, tg_dataset_free, tg_loader_free, tg_batch_free);
 * tensors are caller-owned (tg_tensor_free). Errors: NULL or a tg_status, with
 * a message (tg_last_error) naming the file and the reason; never an abort.
 */
#ifndef TG_DATA_H
#define TG_DATA_H
#include "../core/core.h"

/* ---- images ------------------------------------------------------------ */

typedef struct tg_image {
    int width, height;
    int channels;  /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint8_t *data; /* height rows of width*channels bytes, channels interleaved */
} tg_image;

/* Larger images are refused as corrupt (a side above 32768 or more than 2^28 pixels). */
#define TG_IMAGE_MAX_SIDE 32768
#define TG_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* A zero-filled image (caller frees). */
tg_image *tg_image_new(int width, int height, int channels);
tg_image *tg_image_clone(const tg_image *img);
void tg_image_free(tg_image *img);
/* Pixel (x, y), channel c (asserted in range). */
static inline uint8_t *tg_image_at(const tg_image *img, int x, int y, int c)
{
    return img->data + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels + (size_t)c;
}

/* Decodes a file; the format comes from its first bytes, not its name:
 * TIFF (libtiff: any compression, strips or tiles; 8 bits per sample after
 * conversion), PNG (libpng: palette and <8-bit expanded, 16-bit reduced to 8),
 * GIF (first frame, palette expanded to RGB; RGBA if it has transparent pixels,
 * which stb_image leaves at 0 where PIL would keep the palette colour),
 * JPEG and BMP (stb_image). Caller frees. */
tg_image *tg_image_load(const char *path);
/* Writes an 8-bit PNG: gray, gray+alpha, RGB or RGBA after the channel count. */
tg_status tg_image_save_png(const tg_image *img, const char *path);

/* Conversions as PIL's Image.convert: 'L' is (R*19595 + G*38470 + B*7471 + 32768) >> 16
 * (Pillow >= 8; alpha ignored), 'RGB' replicates gray and drops alpha. New images. */
tg_image *tg_image_to_gray(const tg_image *img);
tg_image *tg_image_to_rgb(const tg_image *img);

typedef enum { TG_RESAMPLE_NEAREST, TG_RESAMPLE_BILINEAR } tg_resample;
/* Resizes as PIL's Image.resize (Pillow 9): BILINEAR is Pillow's separable
 * triangle filter, widened when shrinking (antialiased), with its 22-bit fixed-
 * point rounding, horizontal pass first: results are bit-identical to Pillow's.
 * NEAREST picks source pixel floor((i + 0.5) * in / out). New image. */
tg_image *tg_image_resize(const tg_image *img, int width, int height, tg_resample mode);
/* Mirror in place: left-right (horizontal) or top-bottom (vertical). */
void tg_image_flip(tg_image *img, bool horizontal);
/* A new image at least min_width x min_height: img at the top-left, the rest `fill`. */
tg_image *tg_image_pad(const tg_image *img, int min_width, int min_height, uint8_t fill);
/* The region [x, x+width) x [y, y+height), which must lie inside img. New image. */
tg_image *tg_image_crop(const tg_image *img, int x, int y, int width, int height);

/* ---- segmentation datasets: DRIVE and image/label folders --------------- */

/* Samples are an RGB image and a one-channel target of the same size:
 * 0 background, 1 foreground (vessel), TG_SEG_IGNORED (255) ignored (outside the field of view,
 * or padding): train with ignore_index = TG_SEG_IGNORED. */
#define TG_SEG_IGNORED 255
typedef struct tg_seg_dataset tg_seg_dataset;

typedef enum { TG_DRIVE_TRAINING, TG_DRIVE_TEST } tg_drive_split;

/* The DRIVE root used when none is given, resolved at run time: $TG_DRIVE_DIR if set
 * (as is), else the first of these holding training/ or test/: data/DRIVE and
 * ../shared/data/DRIVE from the working directory, then the same two from the running
 * program's directory (/proc/self/exe), its parent and its grandparent (so build/bin/
 * programs of the repository find <repo>/../shared/data/DRIVE); else "data/DRIVE".
 * A found directory comes as an absolute path. Thread-local storage, valid until the
 * thread's next call. */
const char *tg_drive_default_root(void);
/* Opens DRIVE in its official layout (root NULL: the default root):
 *   training/images/21_training.tif .. 40, test/images/01_test.tif .. 20,
 *   {split}/1st_manual/NN_manual1.gif, {split}/mask/NN_{split}_mask.gif.
 * Decodes and checks all 20 samples now (a missing file is reported with its
 * expected path). Target, as the reference code: clip(manual_L/255 + (255 - mask_L), 0, 255),
 * under the rule that tg_seg_folder_open states for labels and masks. */
tg_seg_dataset *tg_drive_open(const char *root, tg_drive_split split);
/* A binary-segmentation folder: root/images/NAME.ext with root/labels/NAME.* and,
 * optionally, root/masks/NAME.*, any supported format. Label: 0 background, 1 or 255
 * foreground; mask: 0 outside (target 255), 1 or 255 inside. Any other value, and a mask
 * with no pixel inside, is refused when the dataset opens, naming the file (and the pixel).
 * preload: decode everything now (else each sample is decoded when requested). */
tg_seg_dataset *tg_seg_folder_open(const char *root, bool preload);
void tg_seg_dataset_free(tg_seg_dataset *ds);
int64_t tg_seg_dataset_length(const tg_seg_dataset *ds);
/* Path of sample i's input image (owned by ds). */
const char *tg_seg_dataset_image_path(const tg_seg_dataset *ds, int64_t i);
/* Sample i as a new RGB image and a new target image (caller frees both).
 * Safe to call from several threads at once. */
tg_status tg_seg_dataset_get(const tg_seg_dataset *ds, int64_t i, tg_image **image, tg_image **target);

/* ---- the reference augmentation (random resize, flips, pad, crop, normalise) ---- */

typedef struct {
    int min_size, max_size;         /* shorter side drawn uniformly from [min_size, max_size] */
    float hflip_prob, vflip_prob;   /* probability of each flip */
    int crop_size;                  /* square crop; smaller images padded first */
    float mean[3], std[3];          /* per channel, on values in [0, 1] */
} tg_seg_augment;

/* DRIVE's training setting: sizes [int(0.5*base), int(1.2*base)], flips 0.5,
 * DRIVE's mean (0.709, 0.381, 0.224) and std (0.127, 0.079, 0.043). */
tg_seg_augment tg_seg_augment_drive(int base_size, int crop_size);
extern const float TG_DRIVE_MEAN[3], TG_DRIVE_STD[3];

/* One sample's random choices. */
typedef struct {
    int resize_width, resize_height; /* size after the random resize */
    bool hflip, vflip;
    int crop_x, crop_y;              /* top-left of the crop in the padded image */
} tg_seg_augment_params;

/* Draws a sample's parameters for an image of width x height, in this order:
 * size, horizontal flip, vertical flip, crop row, crop column. The new size
 * follows torchvision's resize(int): shorter side s, longer int(s * long / short). */
tg_seg_augment_params tg_seg_augment_draw(const tg_seg_augment *a, int width, int height, tg_rng *rng);
/* Applies p to an RGB image and its target (same size): resize (image bilinear,
 * target nearest), flips, pad (image 0, target 255) to the crop size, crop;
 * writes normalised CHW floats to x (3*crop*crop) and the target to y (crop*crop).
 * Only the pixels inside the crop are computed; they equal resize-flip-pad-crop
 * done one after the other on whole images. */
tg_status tg_seg_augment_apply(const tg_seg_augment *a, const tg_seg_augment_params *p, const tg_image *image,
                               const tg_image *target, float *x, int64_t *y);
/* Evaluation: the whole image as normalised CHW floats (3*H*W) and its target (H*W); target may be NULL. */
tg_status tg_seg_to_tensor(const tg_image *image, const tg_image *target, const float mean[3], const float std[3],
                           float *x, int64_t *y);

/* ---- MNIST-format IDX files -------------------------------------------- */

#define TG_IDX_MAX_DIMS 4
typedef struct {
    int ndim;
    int64_t dims[TG_IDX_MAX_DIMS];
    int64_t count;   /* product of dims */
    uint8_t *data;   /* count bytes */
} tg_idx;

/* Reads an IDX file of unsigned bytes (type 0x08), gzip-compressed or raw; checks
 * the magic number, the dimensions and that the length matches exactly. */
tg_idx *tg_idx_load(const char *path);
void tg_idx_free(tg_idx *idx);

typedef enum { TG_MNIST_TRAIN, TG_MNIST_TEST } tg_mnist_split;
/* $TG_MNIST_DIR if set, else Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist). */
const char *tg_mnist_default_dir(void);
/* Loads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from dir (NULL: the
 * default): images (N, 1, H, W) floats in [0, 1] (byte / 255), labels (N,) int64. */
tg_status tg_mnist_load(const char *dir, tg_mnist_split split, tg_tensor **images, tg_tensor **labels);

/* ---- datasets and the loader ------------------------------------------- */

/* What the loader needs from a dataset. get() writes sample `index` into x and y
 * (sized by sample_shape) using rng, the sample's own stream; it must be safe to
 * call from several threads at once for different samples. */
typedef struct tg_dataset tg_dataset;
struct tg_dataset {
    int64_t length;
    tg_status (*sample_shape)(const tg_dataset *ds, int64_t index, int *x_ndim, int64_t *x_shape, int *y_ndim,
                              int64_t *y_shape);
    tg_status (*get)(const tg_dataset *ds, int64_t index, tg_rng *rng, float *x, int64_t *y);
    void (*destroy)(tg_dataset *ds); /* frees ctx (the struct itself is freed by tg_dataset_free) */
    void *ctx;
};
void tg_dataset_free(tg_dataset *ds);

/* Training view of a segmentation dataset: x (3, crop, crop), y (crop, crop). Borrows seg. */
tg_dataset *tg_seg_dataset_train(const tg_seg_dataset *seg, const tg_seg_augment *aug);
/* Evaluation view: the whole image normalised, x (3, H, W), y (H, W). Borrows seg. */
tg_dataset *tg_seg_dataset_eval(const tg_seg_dataset *seg, const float mean[3], const float std[3]);
/* Rows of tensors: x (N, ...) float, y (N, ...) int64 or NULL (targets 0). Borrows x and y. */
tg_dataset *tg_tensor_dataset_new(const tg_tensor *x, const tg_tensor *y);

/* torch.utils.data.Subset: sample i of the result is sample indices[i] of ds (n >= 1 indices,
 * each in range, copied; repeats allowed). Borrows ds, which must outlive the subset. */
tg_dataset *tg_dataset_subset(const tg_dataset *ds, const int64_t *indices, int64_t n);
/* torch.utils.data.random_split: a permutation of ds's indices drawn from seed (tg_rng) is cut
 * into n_parts subsets of lengths[k] samples (each >= 1, adding up to ds's length) written to
 * parts[0..n_parts). The same seed gives the same split (not PyTorch's, whose generator
 * differs). On error no part is left allocated. Free each part with tg_dataset_free. */
tg_status tg_dataset_random_split(const tg_dataset *ds, const int64_t *lengths, int n_parts, uint64_t seed,
                                  tg_dataset **parts);

typedef struct {
    int64_t batch_size;
    bool shuffle;     /* a new seeded permutation every epoch. tg_loader_defaults leaves it false
                         (PyTorch's DataLoader default, right for evaluation): set it for training */
    bool drop_last;   /* skip the last incomplete batch */
    uint64_t seed;
    int workers;      /* background threads preparing batches (0: prepared inside tg_loader_next) */
    int prefetch;     /* batches prepared ahead (at least workers + 1) */
    int64_t start_epoch; /* first epoch to produce (resuming a run: the same batches as an uninterrupted one) */
    int shard_rank, shard_count; /* data parallel: this process takes slice shard_rank of shard_count of every
                                    batch (tg_batch_shard); 0, 0 (or 0, 1): the whole batch */
} tg_loader_options;

/* batch_size as given, no shuffle (as PyTorch's DataLoader), keep the last batch, 1 worker,
 * 2 batches ahead. Training wants .shuffle = true. */
tg_loader_options tg_loader_defaults(int64_t batch_size, uint64_t seed);

typedef struct {
    tg_tensor *x;    /* (n, ...) float, caller-owned */
    tg_tensor *y;    /* (n, ...) int64, caller-owned */
    int64_t epoch;   /* from 0 */
    int64_t index;   /* batch number within the epoch */
    int64_t global_size; /* samples in the whole batch, all shards together (x's rows when not sharded) */
} tg_batch;
void tg_batch_free(tg_batch *b); /* frees x and y, sets them NULL */

typedef struct {
    int64_t batches;        /* handed to the consumer */
    double wait_seconds;    /* consumer time blocked in tg_loader_next */
    double produce_seconds; /* worker time spent preparing batches (all workers) */
} tg_loader_stats;

/* Shard `rank` of `count` of a batch of n samples: [*start, *start + *len), the balanced split
 * rank*n/count .. (rank+1)*n/count (equal slices when count divides n). */
void tg_batch_shard(int64_t n, int rank, int count, int64_t *start, int64_t *len);

/* Batch k of epoch e holds samples perm_e[k*B .. k*B+B) and each sample i is
 * augmented with an RNG seeded from (seed, e, i): the content depends only on
 * the seed, the epoch and k, never on timing or the number of workers. The
 * dataset is borrowed and must outlive the loader. Sharded (data parallel: every process
 * builds a loader with the same seed and its own shard_rank), a process gets its slice of
 * each such batch: batch_size must divide by shard_count, and the last incomplete batch (kept
 * unless drop_last) is split too, so it needs at least shard_count samples. */
typedef struct tg_loader tg_loader;
tg_loader *tg_loader_new(const tg_dataset *ds, const tg_loader_options *opt);
int64_t tg_loader_batches_per_epoch(const tg_loader *l);
/* The next batch into *b. At the end of an epoch: TG_OK with b->x == NULL, and
 * the next call starts the next epoch. A failed sample: its status and message. */
tg_status tg_loader_next(tg_loader *l, tg_batch *b);
tg_loader_stats tg_loader_get_stats(const tg_loader *l);
/* Stops and joins the workers, frees prepared batches. NULL is fine. */
void tg_loader_free(tg_loader *l);

#endif
