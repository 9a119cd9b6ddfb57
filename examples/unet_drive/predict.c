/* unet_drive --predict CKPT --image IMG [--mask M] --out PRED.png [--prob PROB.png]: one image
 * through a checkpoint's model, written as a 0/255 vessel mask (and the vessel probability as
 * 8-bit grey); pixels outside --mask are 0 in both (unet_drive.h). */
#include <math.h>
#include <stdlib.h>

#include "head_loss.h"
#include "unet_drive.h"

/* What one prediction holds; predict_free frees whatever was made. */
typedef struct {
    tg_image *loaded, *img;          /* img: loaded as RGB (img == loaded if it was) */
    tg_image *mask_loaded, *mask;    /* mask: as one channel; both NULL without --mask */
    tg_image *pred, *prob;           /* the outputs (prob NULL without --prob) */
    tg_tensor *x;                    /* the normalised input (1, 3, H, W) */
    uint8_t *labels;                 /* the predicted class per pixel */
} prediction;

static void predict_free(prediction *p)
{
    tg_tensor_free(p->x);
    free(p->labels);
    tg_image_free(p->pred);
    tg_image_free(p->prob);
    if (p->mask != p->mask_loaded) tg_image_free(p->mask);
    tg_image_free(p->mask_loaded);
    if (p->img != p->loaded) tg_image_free(p->img);
    tg_image_free(p->loaded);
}

/* path names a regular file (a FIFO or a device would block or never end); else an error naming it
 * (the core helper's message names the path and what it is: FIFO, directory, ...). */
static tg_status need_regular_file(const char *path)
{
    FILE *f = tg_fopen_regular(path, NULL);
    if (!f) return tg_last_status();
    fclose(f);
    return TG_OK;
}

/* The image as RGB and the mask as one channel of the same size; 0 or the exit code. */
static int read_inputs(const config *c, prediction *p)
{
    p->loaded = tg_image_load(c->image);
    if (!p->loaded || !(p->img = p->loaded->channels == 3 ? p->loaded : tg_image_to_rgb(p->loaded)))
        return fail("cannot read the image");
    if (!c->mask) return 0;
    if (!(p->mask_loaded = tg_image_load(c->mask)) ||
        !(p->mask = p->mask_loaded->channels == 1 ? p->mask_loaded : tg_image_to_gray(p->mask_loaded)))
        return fail("cannot read the mask");
    if (p->mask->width != p->img->width || p->mask->height != p->img->height) {
        fprintf(stderr, "unet_drive: the mask %s is %dx%d, the image %s %dx%d: they must be the same size\n", c->mask,
                p->mask->width, p->mask->height, c->image, p->img->width, p->img->height);
        return 1;
    }
    return 0;
}

/* The output images from the logits (N=1, K, H, W): the mask 0/UNET_PIXEL_MAX and the vessel
 * probability scaled to 0..UNET_PIXEL_MAX, 0 outside the mask; counts vessel and inside pixels. */
static void draw_outputs(prediction *p, const tg_tensor *logits, int64_t *vessel, int64_t *inside)
{
    const int64_t K = logits->shape[1], P = (int64_t)p->img->width * p->img->height;
    tg_seg_predict(logits->data, K, P, p->labels);
    *vessel = *inside = 0;
    for (int64_t i = 0; i < P; i++) {
        const bool in = !p->mask || p->mask->data[i] != 0;
        const bool v = in && p->labels[i] == 1;
        p->pred->data[i] = v ? UNET_PIXEL_MAX : 0;
        *vessel += v;
        *inside += in;
        if (p->prob) {
            /* vessel probability: sigmoid(z) for one channel, softmax's p1 = sigmoid(z1 - z0) for two */
            const double z = K == 1 ? logits->data[i] : (double)logits->data[P + i] - logits->data[i];
            const double prob = 1.0 / (1.0 + exp(-z));
            p->prob->data[i] = in ? (uint8_t)lround((double)UNET_PIXEL_MAX * prob) : 0;
        }
    }
}

/* Runs m on the image and fills the outputs; 0 or the exit code. */
static int segment(const config *c, const tg_unet *m, const float mean[3], const float std[3], prediction *p,
                   int64_t *vessel, int64_t *inside, double *ms)
{
    const int W = p->img->width, H = p->img->height;
    p->x = tg_tensor_zeros(TG_SHAPE(1, 3, H, W));
    p->labels = malloc((size_t)W * (size_t)H);
    p->pred = tg_image_new(W, H, 1);
    p->prob = c->prob ? tg_image_new(W, H, 1) : NULL;
    if (!p->x || !p->labels || !p->pred || (c->prob && !p->prob)) return fail("out of memory");
    if (tg_seg_to_tensor(p->img, NULL, mean, std, p->x->data, NULL) != TG_OK) return fail("cannot prepare the image");
    bool prev_grad = tg_set_grad_enabled(false);
    tg_param_list_train(m->params, false);
    const double t0 = tg_now();
    tg_tensor *logits = tg_unet_forward(m, p->x);
    *ms = 1e3 * (tg_now() - t0);
    tg_set_grad_enabled(prev_grad);
    if (!logits) {
        tg_tape_clear();
        return fail("the forward pass failed");
    }
    draw_outputs(p, logits, vessel, inside);
    tg_tape_clear();
    return 0;
}

int run_predict(const config *c)
{
    if (need_regular_file(c->predict_ckpt) != TG_OK || need_regular_file(c->image) != TG_OK ||
        (c->mask && need_regular_file(c->mask) != TG_OK))
        return fail("cannot predict");
    int head;
    float mean[3], std[3];
    tg_unet *m = load_model(c->predict_ckpt, &head, mean, std);
    if (!m) return fail("cannot load the checkpoint");
    prediction p = {0};
    int64_t vessel = 0, inside = 0;
    double ms = 0;
    int rc = read_inputs(c, &p);
    if (rc == 0) rc = segment(c, m, mean, std, &p, &vessel, &inside, &ms);
    if (rc == 0 && tg_image_save_png(p.pred, c->out) != TG_OK) rc = fail("cannot write the prediction");
    if (rc == 0 && p.prob && tg_image_save_png(p.prob, c->prob) != TG_OK) rc = fail("cannot write the probability image");
    if (rc == 0) {
        printf("%s: %s head, base width %lld; %s (%dx%d): %lld vessel pixels of %lld inside the mask (%.1f%%), %.0f ms\n",
               c->predict_ckpt, HEAD_NAME[head], (long long)m->base_c, c->image, p.img->width, p.img->height,
               (long long)vessel, (long long)inside, inside ? 100.0 * (double)vessel / (double)inside : 0.0, ms);
        printf("prediction (0/255): %s%s%s\n", c->out, p.prob ? "; probability (8-bit grey): " : "",
               p.prob ? c->prob : "");
    }
    predict_free(&p);
    tg_unet_free(m);
    return rc;
}
