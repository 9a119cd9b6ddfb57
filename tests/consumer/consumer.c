/* A program that uses tapegrad as a library, as a user's would: `#include <tapegrad.h>`
 * and nothing else. tests/consumer/run.sh builds it against an installed tapegrad
 * (find_package and pkg-config), from the source tree (add_subdirectory, FetchContent)
 * and against the shared library. It trains a tiny classifier, saves a checkpoint, loads
 * it into a fresh model, round-trips a PNG image and checks every result itself:
 * exit 0 when all is as expected, 1 with a message on stderr otherwise.
 *   consumer [DIR]   (DIR: where its two files go, default the working directory) */
#include <tapegrad.h>

#include <stdio.h>
#include <string.h>

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "consumer: " __VA_ARGS__);                \
            fprintf(stderr, " (tapegrad says: %s)\n", tg_last_error()); \
            return 1;                                                 \
        }                                                             \
    } while (0)

typedef struct {
    tg_param_list *params; /* owns the layers' tensors */
    tg_linear_layer hidden, out;
} model;

static tg_status model_init(model *m, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    m->params = tg_param_list_new();
    if (!m->params) return tg_last_status();
    tg_status st = tg_linear_layer_init(&m->hidden, m->params, "hidden", 2, 16, true, &rng);
    return st != TG_OK ? st : tg_linear_layer_init(&m->out, m->params, "out", 16, 2, true, &rng);
}

static tg_tensor *model_forward(const model *m, tg_tensor *x) /* tape-owned result */
{
    return tg_linear_layer_forward(&m->out, tg_relu(tg_linear_layer_forward(&m->hidden, x)));
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    char ckpt[4096], png[4096];
    snprintf(ckpt, sizeof ckpt, "%s/consumer.safetensors", dir);
    snprintf(png, sizeof png, "%s/consumer.png", dir);
    CHECK(!strcmp(tg_version(), TG_VERSION_STRING), "library %s, headers %s", tg_version(), TG_VERSION_STRING);

    /* Two well-separated blobs: class c around (2c - 1) * (1.5, 1.5). */
    const int n = 128;
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(n, 2), &rng); /* ours: tg_tensor_free */
    tg_tensor *y = tg_tensor_new(TG_I64, TG_SHAPE(n));
    CHECK(x && y, "cannot make the data");
    for (int i = 0; i < n; i++) {
        y->idata[i] = i % 2;
        for (int j = 0; j < 2; j++) x->data[2 * i + j] = 0.5f * x->data[2 * i + j] + (i % 2 ? 1.5f : -1.5f);
    }

    model m;
    CHECK(model_init(&m, 1) == TG_OK, "model_init");
    tg_adam_opts ao = tg_adam_defaults();
    ao.lr = 0.05;
    tg_optimizer *opt = tg_adam_new(m.params, ao);
    CHECK(opt, "tg_adam_new");
    float first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        tg_tensor *loss = tg_cross_entropy(model_forward(&m, x), y, (tg_ce_opts){0});
        CHECK(tg_backward(loss) == TG_OK, "step %d: backward", step);
        last = tg_item(loss);
        if (step == 0) first = last;
        CHECK(tg_optimizer_step(opt) == TG_OK, "step %d: optimizer", step);
        tg_optimizer_zero_grad(opt);
        tg_tape_clear(); /* releases every tensor the step made */
    }
    CHECK(first > 0.3f && last < 0.05f, "training did not converge: loss %.4f -> %.4f", first, last);

    /* The trained outputs, then the same from a fresh model loaded from the checkpoint. */
    tg_set_grad_enabled(false);
    tg_tensor *want = tg_tensor_clone(model_forward(&m, x));
    CHECK(want, "forward");
    int correct = 0;
    for (int i = 0; i < n; i++) correct += (want->data[2 * i + 1] > want->data[2 * i]) == (y->idata[i] == 1);
    CHECK(correct == n, "train accuracy %d/%d", correct, n);
    CHECK(tg_checkpoint_save(ckpt, m.params, NULL) == TG_OK, "save %s", ckpt);
    model back;
    CHECK(model_init(&back, 2) == TG_OK, "model_init");
    CHECK(tg_checkpoint_load(ckpt, back.params, NULL, NULL) == TG_OK, "load %s", ckpt);
    tg_tensor *got = model_forward(&back, x);
    CHECK(got && !memcmp(got->data, want->data, sizeof(float) * (size_t)want->numel),
          "the reloaded model computes other outputs");
    tg_tape_clear();

    /* The data layer links too (libpng here; stb, libtiff and zlib are in the same objects). */
    tg_image *img = tg_image_new(5, 3, 3);
    CHECK(img, "tg_image_new");
    for (int i = 0; i < 5 * 3 * 3; i++) img->data[i] = (uint8_t)(17 * i);
    CHECK(tg_image_save_png(img, png) == TG_OK, "save %s", png);
    tg_image *img2 = tg_image_load(png);
    CHECK(img2 && img2->width == 5 && img2->height == 3 && img2->channels == 3 &&
              !memcmp(img2->data, img->data, 5 * 3 * 3),
          "PNG round trip");

    printf("consumer: tapegrad %s, loss %.4f -> %.4f, %d/%d right, checkpoint and PNG round trips exact\n",
           tg_version(), first, last, correct, n);
    tg_image_free(img);
    tg_image_free(img2);
    tg_tensor_free(want);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_optimizer_free(opt);
    tg_param_list_free(m.params);
    tg_param_list_free(back.params);
    return 0;
}
