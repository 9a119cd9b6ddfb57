/* Segmentation datasets: DRIVE in its official layout and image/label folders,
 * and their training (augmented crops) and evaluation (whole images) views for
 * the loader. Every sample is decoded once at open to check it; DRIVE and
 * preloaded folders keep the decoded images, other folders decode on demand. */
#include "data_internal.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *image, *label, *mask; /* paths (mask may be NULL) */
    int width, height;
    tg_image *rgb, *target;     /* decoded, when preloaded */
} seg_item;

struct tg_seg_dataset {
    int64_t n;
    seg_item *items;
    bool preload;
};

static char *path_join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
    char *p = tg_malloc(n);
    if (p) snprintf(p, n, c ? "%s/%s/%s" : "%s/%s", a, b, c ? c : "");
    return p;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* DRIVE's usual places, relative to a base directory (see tg_drive_default_root). */
static const char *const DRIVE_PLACES[] = {"data/DRIVE", "../shared/data/DRIVE"};
#define N_DRIVE_PLACES (sizeof DRIVE_PLACES / sizeof DRIVE_PLACES[0])

/* base/place (base NULL: the working directory) into out as an absolute path, if it is a
 * directory holding training/ or test/. */
static bool drive_at(const char *base, const char *place, char *out)
{
    char probe[PATH_MAX + 64], split[PATH_MAX + 80];
    if (snprintf(probe, sizeof probe, "%s%s%s", base ? base : "", base ? "/" : "", place) >= (int)sizeof probe)
        return false;
    snprintf(split, sizeof split, "%s/training", probe);
    bool found = is_dir(split);
    if (!found) {
        snprintf(split, sizeof split, "%s/test", probe);
        found = is_dir(split);
    }
    return found && realpath(probe, out) != NULL;
}

const char *tg_drive_default_root(void)
{
    const char *env = getenv("TG_DRIVE_DIR");
    if (env && env[0]) return env;
    static _Thread_local char found[PATH_MAX];
    for (size_t i = 0; i < N_DRIVE_PLACES; i++)
        if (drive_at(NULL, DRIVE_PLACES[i], found)) return found;
    /* Relative to the program: its directory, that directory's parent and grandparent
     * (build/bin/PROGRAM of this repository: <repo>/../shared/data/DRIVE). */
    char dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n > 0) {
        dir[n] = '\0';
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(dir, '/');
            if (!slash || slash == dir) break;
            *slash = '\0'; /* the program's directory, then its parents */
            for (size_t i = 0; i < N_DRIVE_PLACES; i++)
                if (drive_at(dir, DRIVE_PLACES[i], found)) return found;
        }
    }
    return DRIVE_PLACES[0];
}

void tg_seg_dataset_free(tg_seg_dataset *ds)
{
    if (!ds) return;
    for (int64_t i = 0; i < ds->n; i++) {
        seg_item *it = &ds->items[i];
        tg_free(it->image);
        tg_free(it->label);
        tg_free(it->mask);
        tg_image_free(it->rgb);
        tg_image_free(it->target);
    }
    tg_free(ds->items);
    tg_free(ds);
}

int64_t tg_seg_dataset_length(const tg_seg_dataset *ds) { return ds ? ds->n : 0; }

const char *tg_seg_dataset_image_path(const tg_seg_dataset *ds, int64_t i)
{
    return ds && i >= 0 && i < ds->n ? ds->items[i].image : NULL;
}

/* Loads one-channel `path` of the size of the image, or NULL with an error. */
static tg_image *load_gray_matching(const char *path, const seg_item *it, const tg_image *rgb)
{
    tg_image *raw = tg_image_load(path);
    if (!raw) return NULL;
    tg_image *g = tg_image_to_gray(raw);
    tg_image_free(raw);
    if (g && (g->width != rgb->width || g->height != rgb->height)) {
        tg_error(TG_ERR_FORMAT, "%s is %d x %d but its image %s is %d x %d", path, g->width, g->height, it->image,
                 rgb->width, rgb->height);
        tg_image_free(g);
        return NULL;
    }
    return g;
}

/* Decodes item i into a new RGB image and target. */
static tg_status decode_item(const seg_item *it, tg_image **rgb, tg_image **target)
{
    *rgb = *target = NULL;
    tg_image *raw = tg_image_load(it->image);
    tg_image *im = raw ? tg_image_to_rgb(raw) : NULL;
    tg_image_free(raw);
    tg_image *label = im ? load_gray_matching(it->label, it, im) : NULL;
    tg_image *mask = label && it->mask ? load_gray_matching(it->mask, it, im) : NULL;
    if (!label || (it->mask && !mask)) {
        tg_image_free(im);
        tg_image_free(label);
        return tg_last_status() != TG_OK ? tg_last_status() : TG_ERR_FORMAT;
    }
    /* One rule for DRIVE and folders, checked here so that both heads see the same targets: a label
     * pixel is 0 (background) or 1 or 255 (foreground), a mask pixel 0 (outside: target 255) or 1
     * or 255 (inside). On DRIVE's 0/255 files this is the reference's clip(manual/255 + 255 - mask). */
    enum { WHITE = 255 }; /* "on" in an 8-bit label or mask file, as 1 */
    size_t n = (size_t)im->width * im->height;
    uint8_t *t = label->data;
    for (int k = 0; k < (mask ? 2 : 1); k++) {
        const tg_image *g = k ? mask : label;
        for (size_t i = 0; i < n; i++)
            if (g->data[i] != 0 && g->data[i] != 1 && g->data[i] != WHITE) {
                tg_error(TG_ERR_FORMAT, "%s: pixel (%zu, %zu) has value %d; a %s pixel must be 0 (%s) or 1 or 255 (%s)",
                         k ? it->mask : it->label, i % (size_t)im->width, i / (size_t)im->width, g->data[i],
                         k ? "mask" : "label", k ? "outside: ignored" : "background", k ? "inside" : "foreground");
                tg_image_free(im);
                tg_image_free(label);
                tg_image_free(mask);
                return TG_ERR_FORMAT;
            }
    }
    size_t inside = 0;
    for (size_t i = 0; i < n; i++) {
        t[i] = mask && mask->data[i] == 0 ? TG_SEG_IGNORED : t[i] != 0;
        inside += t[i] != TG_SEG_IGNORED;
    }
    if (inside == 0) {
        tg_error(TG_ERR_FORMAT, "image %s: every pixel is ignored (mask %s is empty)", it->image, it->mask);
        tg_image_free(im);
        tg_image_free(label);
        tg_image_free(mask);
        return TG_ERR_FORMAT;
    }
    tg_image_free(mask);
    *rgb = im;
    *target = label;
    return TG_OK;
}

/* Checks every item (and keeps the decoded images if preload); frees ds on error. */
static tg_seg_dataset *finish_open(tg_seg_dataset *ds, const char *what)
{
    for (int64_t i = 0; i < ds->n; i++) {
        seg_item *it = &ds->items[i];
        tg_image *rgb, *target;
        if (decode_item(it, &rgb, &target) != TG_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", tg_last_error());
            tg_error(tg_last_status(), "%s, sample %lld: %s", what, (long long)i, msg);
            tg_seg_dataset_free(ds);
            return NULL;
        }
        it->width = rgb->width;
        it->height = rgb->height;
        if (ds->preload) {
            it->rgb = rgb;
            it->target = target;
        } else {
            tg_image_free(rgb);
            tg_image_free(target);
        }
    }
    return ds;
}

static tg_seg_dataset *dataset_alloc(int64_t n, bool preload)
{
    tg_seg_dataset *ds = tg_calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->items = tg_calloc((size_t)n, sizeof(seg_item));
    if (!ds->items) {
        tg_free(ds);
        return NULL;
    }
    ds->n = n;
    ds->preload = preload;
    return ds;
}

tg_seg_dataset *tg_drive_open(const char *root, tg_drive_split split)
{
    if (split != TG_DRIVE_TRAINING && split != TG_DRIVE_TEST) {
        tg_error(TG_ERR_ARG, "tg_drive_open: unknown split %d", (int)split);
        return NULL;
    }
    if (!root) root = tg_drive_default_root();
    const char *name = split == TG_DRIVE_TRAINING ? "training" : "test";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    if (!is_dir(dir)) {
        tg_error(TG_ERR_IO, "DRIVE: %s is not a directory (expected the official layout under %s: training/ and "
                 "test/; set TG_DRIVE_DIR or pass the root)", dir, root);
        return NULL;
    }
    tg_seg_dataset *ds = dataset_alloc(20, true);
    if (!ds) return NULL;
    int first = split == TG_DRIVE_TRAINING ? 21 : 1;
    for (int k = 0; k < 20; k++) {
        char file[64];
        seg_item *it = &ds->items[k];
        snprintf(file, sizeof file, "%02d_%s.tif", first + k, name);
        it->image = path_join(dir, "images", file);
        snprintf(file, sizeof file, "%02d_manual1.gif", first + k);
        it->label = path_join(dir, "1st_manual", file);
        snprintf(file, sizeof file, "%02d_%s_mask.gif", first + k, name);
        it->mask = path_join(dir, "mask", file);
        if (!it->image || !it->label || !it->mask) {
            tg_seg_dataset_free(ds);
            return NULL;
        }
    }
    return finish_open(ds, split == TG_DRIVE_TRAINING ? "DRIVE training" : "DRIVE test");
}

/* ---- folders ----------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the visible regular files of dir (caller frees each and the array). */
static tg_status list_files(const char *dir, char ***names, int64_t *count)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return tg_error(TG_ERR_IO, "%s: cannot open the directory", dir);
    int64_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *full = path_join(dir, e->d_name, NULL);
        struct stat st;
        bool regular = full && stat(full, &st) == 0 && S_ISREG(st.st_mode);
        tg_free(full);
        if (!regular) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **bigger = tg_realloc(v, sizeof(char *) * (size_t)cap);
            if (!bigger) break;
            v = bigger;
        }
        v[n] = tg_strdup(e->d_name);
        if (!v[n]) break;
        n++;
    }
    closedir(d);
    if (e) { /* stopped early: out of memory */
        for (int64_t i = 0; i < n; i++) tg_free(v[i]);
        tg_free(v);
        return tg_error(TG_ERR_NOMEM, "%s: out of memory listing the directory", dir);
    }
    if (n > 1) qsort(v, (size_t)n, sizeof(char *), cmp_str);
    *names = v;
    *count = n;
    return TG_OK;
}

static void free_names(char **v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) tg_free(v[i]);
    tg_free(v);
}

static size_t base_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name ? (size_t)(dot - name) : strlen(name);
}

/* The one file of `names` whose base name is base[0..len); NULL + error if none or several. */
static const char *find_match(const char *dir, char **names, int64_t n, const char *image, size_t len)
{
    const char *found = NULL;
    for (int64_t i = 0; i < n; i++) {
        if (base_len(names[i]) != len || strncmp(names[i], image, len) != 0) continue;
        if (found) {
            tg_error(TG_ERR_FORMAT, "%s: both %s and %s match image %s", dir, found, names[i], image);
            return NULL;
        }
        found = names[i];
    }
    if (!found) tg_error(TG_ERR_IO, "%s: no file named %.*s.* for image %s", dir, (int)len, image, image);
    return found;
}

tg_seg_dataset *tg_seg_folder_open(const char *root, bool preload)
{
    if (!root) {
        tg_error(TG_ERR_ARG, "tg_seg_folder_open: root is NULL");
        return NULL;
    }
    char *dirs[3] = {path_join(root, "images", NULL), path_join(root, "labels", NULL), path_join(root, "masks", NULL)};
    char **names[3] = {NULL, NULL, NULL};
    int64_t counts[3] = {0, 0, 0};
    tg_seg_dataset *ds = NULL;
    if (!dirs[0] || !dirs[1] || !dirs[2]) goto done;
    bool masks = is_dir(dirs[2]);
    for (int k = 0; k < (masks ? 3 : 2); k++) {
        if (!is_dir(dirs[k])) {
            tg_error(TG_ERR_IO, "segmentation folder: %s is not a directory (expected images/ and labels/, "
                     "optionally masks/, under %s)", dirs[k], root);
            goto done;
        }
        if (list_files(dirs[k], &names[k], &counts[k]) != TG_OK) goto done;
    }
    if (counts[0] == 0) {
        tg_error(TG_ERR_IO, "segmentation folder: %s holds no images", dirs[0]);
        goto done;
    }
    ds = dataset_alloc(counts[0], preload);
    if (!ds) goto done;
    for (int64_t i = 0; i < counts[0]; i++) {
        seg_item *it = &ds->items[i];
        const char *img = names[0][i];
        size_t len = base_len(img);
        const char *label = find_match(dirs[1], names[1], counts[1], img, len);
        const char *mask = masks ? find_match(dirs[2], names[2], counts[2], img, len) : NULL;
        if (!label || (masks && !mask)) {
            tg_seg_dataset_free(ds);
            ds = NULL;
            goto done;
        }
        it->image = path_join(dirs[0], img, NULL);
        it->label = path_join(dirs[1], label, NULL);
        it->mask = masks ? path_join(dirs[2], mask, NULL) : NULL;
        if (!it->image || !it->label || (masks && !it->mask)) {
            tg_seg_dataset_free(ds);
            ds = NULL;
            goto done;
        }
    }
    ds = finish_open(ds, "segmentation folder");
done:
    for (int k = 0; k < 3; k++) {
        free_names(names[k], counts[k]);
        tg_free(dirs[k]);
    }
    return ds;
}

/* Sample i: borrowed decoded images if preloaded (*owned = false), else newly decoded. */
static tg_status sample_images(const tg_seg_dataset *ds, int64_t i, tg_image **rgb, tg_image **target, bool *owned)
{
    if (!ds) return tg_error(TG_ERR_ARG, "segmentation dataset is NULL");
    if (i < 0 || i >= ds->n)
        return tg_error(TG_ERR_ARG, "segmentation dataset: index %lld out of range [0, %lld)", (long long)i,
                        (long long)ds->n);
    const seg_item *it = &ds->items[i];
    if (it->rgb) {
        *rgb = it->rgb;
        *target = it->target;
        *owned = false;
        return TG_OK;
    }
    *owned = true;
    return decode_item(it, rgb, target);
}

tg_status tg_seg_dataset_get(const tg_seg_dataset *ds, int64_t i, tg_image **image, tg_image **target)
{
    if (!image || !target) return tg_error(TG_ERR_ARG, "tg_seg_dataset_get: NULL output");
    *image = *target = NULL;
    tg_image *a = NULL, *b = NULL;
    bool owned;
    tg_status st = sample_images(ds, i, &a, &b, &owned);
    if (st != TG_OK || owned) {
        *image = st == TG_OK ? a : NULL;
        *target = st == TG_OK ? b : NULL;
        return st;
    }
    *image = tg_image_clone(a);
    *target = tg_image_clone(b);
    if (*image && *target) return TG_OK;
    tg_image_free(*image);
    tg_image_free(*target);
    *image = *target = NULL;
    return TG_ERR_NOMEM;
}

/* ---- loader views ------------------------------------------------------ */

typedef struct {
    const tg_seg_dataset *seg;
    tg_seg_augment aug; /* train view */
    bool train;
} seg_view;

static tg_status view_shape(const tg_dataset *d, int64_t index, int *xn, int64_t *xs, int *yn, int64_t *ys)
{
    const seg_view *v = d->ctx;
    if (index < 0 || index >= v->seg->n)
        return tg_error(TG_ERR_ARG, "segmentation dataset: index %lld out of range [0, %lld)", (long long)index,
                        (long long)v->seg->n);
    int64_t h = v->train ? v->aug.crop_size : v->seg->items[index].height;
    int64_t w = v->train ? v->aug.crop_size : v->seg->items[index].width;
    *xn = 3;
    xs[0] = 3, xs[1] = h, xs[2] = w;
    *yn = 2;
    ys[0] = h, ys[1] = w;
    return TG_OK;
}

static tg_status view_get(const tg_dataset *d, int64_t index, tg_rng *rng, float *x, int64_t *y)
{
    const seg_view *v = d->ctx;
    tg_image *rgb, *target;
    bool owned;
    tg_status st = sample_images(v->seg, index, &rgb, &target, &owned);
    if (st != TG_OK) return st;
    if (v->train) {
        tg_seg_augment_params p = tg_seg_augment_draw(&v->aug, rgb->width, rgb->height, rng);
        st = tg_seg_augment_apply(&v->aug, &p, rgb, target, x, y);
    } else {
        st = tg_seg_to_tensor(rgb, target, v->aug.mean, v->aug.std, x, y);
    }
    if (owned) {
        tg_image_free(rgb);
        tg_image_free(target);
    }
    return st;
}

static void view_destroy(tg_dataset *d) { tg_free(d->ctx); }

static tg_dataset *view_new(const tg_seg_dataset *seg, const tg_seg_augment *aug, bool train)
{
    seg_view *v = tg_calloc(1, sizeof *v);
    tg_dataset *d = v ? tg_calloc(1, sizeof *d) : NULL;
    if (!d) {
        tg_free(v);
        return NULL;
    }
    v->seg = seg;
    v->aug = *aug;
    v->train = train;
    d->length = seg->n;
    d->sample_shape = view_shape;
    d->get = view_get;
    d->destroy = view_destroy;
    d->ctx = v;
    return d;
}

static bool check_stats(const char *who, const float mean[3], const float std[3])
{
    for (int c = 0; c < 3; c++)
        if (!(std[c] > 0.0f)) {
            tg_error(TG_ERR_ARG, "%s: std[%d] = %g must be > 0", who, c, (double)std[c]);
            return false;
        }
    (void)mean;
    return true;
}

tg_dataset *tg_seg_dataset_train(const tg_seg_dataset *seg, const tg_seg_augment *aug)
{
    const char *who = "tg_seg_dataset_train";
    if (!seg || !aug) {
        tg_error(TG_ERR_ARG, "%s: NULL argument", who);
        return NULL;
    }
    if (aug->min_size < 1 || aug->max_size < aug->min_size || aug->crop_size < 1 ||
        aug->max_size > TG_IMAGE_MAX_SIDE || aug->crop_size > TG_IMAGE_MAX_SIDE) {
        tg_error(TG_ERR_ARG, "%s: sizes [%d, %d] and crop %d: need 1 <= min <= max and crop >= 1", who,
                 aug->min_size, aug->max_size, aug->crop_size);
        return NULL;
    }
    if (!check_stats(who, aug->mean, aug->std)) return NULL;
    return view_new(seg, aug, true);
}

tg_dataset *tg_seg_dataset_eval(const tg_seg_dataset *seg, const float mean[3], const float std[3])
{
    const char *who = "tg_seg_dataset_eval";
    if (!seg || !mean || !std) {
        tg_error(TG_ERR_ARG, "%s: NULL argument", who);
        return NULL;
    }
    if (!check_stats(who, mean, std)) return NULL;
    tg_seg_augment a = {0};
    memcpy(a.mean, mean, sizeof a.mean);
    memcpy(a.std, std, sizeof a.std);
    return view_new(seg, &a, false);
}
