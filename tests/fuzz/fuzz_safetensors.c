/* libFuzzer target for tg_checkpoint_load (clang only; scripts/fuzz.sh builds and runs it).
 * Each input is written to a file and loaded into a small model with an Adam optimizer, a
 * schedule and an RNG, strict when the input's length is even; it must never crash, leak or
 * report success without loading. With TG_FUZZ_SEED_DIR set, initialisation first writes a valid
 * checkpoint of that model there (the seed corpus). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapegrad.h"

typedef struct {
    tg_param_list *l;
    tg_optimizer *o;
    tg_lr_sched s;
    tg_rng r;
} model;

static model model_new(void)
{
    model m;
    m.l = tg_param_list_new();
    tg_tensor *w = tg_param_list_add_param(m.l, "layer.weight", TG_SHAPE(3, 4));
    tg_param_list_add_param(m.l, "layer.bias", TG_SHAPE(4));
    tg_param_list_add_buffer(m.l, "layer.running_mean", TG_F32, TG_SHAPE(4));
    tg_param_list_add_buffer(m.l, "layer.num_batches_tracked", TG_I64, 0, NULL);
    tg_rng_seed(&m.r, 1);
    tg_init_uniform(w, 1.0f, &m.r);
    tg_adam_opts ao = tg_adamw_defaults();
    ao.amsgrad = true;
    m.o = tg_adamw_new(m.l, ao);
    tg_lr_sched_init_warmup_poly(&m.s, m.o, 3, 10, 1e-3, 0.9);
    for (int64_t i = 0; i < m.l->block_numel; i++) m.l->grad[i] = 0.01f * (float)i;
    tg_optimizer_step(m.o);
    tg_lr_sched_step(&m.s);
    return m;
}

static void model_free(model *m)
{
    tg_optimizer_free(m->o);
    tg_param_list_free(m->l);
}

static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "/tmp/tg_fuzz_%d.safetensors", (int)getpid());
    const char *dir = getenv("TG_FUZZ_SEED_DIR");
    if (dir) {
        char seed[512];
        snprintf(seed, sizeof seed, "%s/full.safetensors", dir);
        model m = model_new();
        tg_meta meta = {0};
        tg_meta_set(&meta, "epoch", "3");
        tg_ckpt_opts o = {.optim = m.o, .sched = &m.s, .rngs = {&m.r}, .rng_names = {"data"}, .n_rngs = 1, .meta = &meta};
        if (tg_checkpoint_save(seed, m.l, &o) != TG_OK) fprintf(stderr, "seed: %s\n", tg_last_error());
        tg_meta_clear(&meta);
        model_free(&m);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    model m = model_new();
    tg_meta got = {0};
    tg_ckpt_opts o = {.optim = m.o, .sched = &m.s, .rngs = {&m.r}, .rng_names = {"data"}, .n_rngs = 1,
                      .meta = &got, .non_strict = size % 2 != 0};
    tg_ckpt_report rep;
    tg_status s = tg_checkpoint_load(path, m.l, &o, &rep);
    if (s != TG_OK && strlen(tg_last_error()) == 0) abort(); /* an error must say what it is */
    if (s == TG_OK && size < 8) abort();                    /* nothing can load from fewer bytes */
    tg_meta_clear(&got);
    model_free(&m);
    return 0;
}
