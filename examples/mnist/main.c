/* mnist: a user's first training run from C. Trains an MLP or a small CNN on
 * MNIST-format data (Fashion-MNIST from Debian by default) with cross-entropy,
 * shows progress, evaluates after every epoch, logs JSON lines and saves a
 * safetensors checkpoint with PyTorch state_dict names (see model.h).
 *
 *   mnist [--model mlp|cnn] [--epochs N] [--batch N] [--optimizer adam|sgd] [--lr LR]
 *         [--momentum M] [--seed S] [--threads T] [--data DIR] [--out DIR] [--limit N]
 *   mnist --eval CKPT [--data DIR]
 *   mnist --predict CKPT --index K [--data DIR]
 *   mpirun -np N mnist ...   data parallel (tapegrad_dist): --batch is the global batch, each rank
 *                            takes batch/N of it; rank 0 evaluates and writes the log and checkpoint
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cli.h"
#include "dist/dist.h"
#include "model.h"

typedef struct {
    mnist_arch arch;
    int epochs, batch, threads;
    bool sgd;
    double lr, momentum;
    bool lr_set;
    uint64_t seed;
    const char *data, *out, *eval_ckpt, *predict_ckpt;
    int64_t limit, index;
    bool index_set;
} config;

static const char *USAGE =
    "usage: mnist [--model mlp|cnn] [--epochs N] [--batch N] [--optimizer adam|sgd] [--lr LR]\n"
    "             [--momentum M] [--seed S] [--threads T] [--data DIR] [--out DIR] [--limit N]\n"
    "       mnist --eval CKPT [--data DIR]\n"
    "       mnist --predict CKPT --index K [--data DIR]\n"
    "Defaults: --model cnn --epochs 3 --batch 64 --optimizer adam --lr 1e-3 (sgd: 0.01, --momentum 0)\n"
    "          --seed 0 --threads (all cores) --data " /* + the default dir */;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mnist: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s%s --out out/mnist\n", USAGE, tg_mnist_default_dir());
    return 2;
}

/* Returns 0 on success, else the exit code (usage error). */
static int parse_args(int argc, char **argv, config *c)
{
    *c = (config){.arch = MNIST_CNN, .epochs = 3, .batch = 64, .out = "out/mnist", .momentum = 0.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("%s%s --out out/mnist\n", USAGE, tg_mnist_default_dir());
            exit(0);
        }
        if (strncmp(a, "--", 2)) return usage_error("unexpected argument '%s'", a);
        if (i + 1 >= argc) return usage_error("option %s needs a value", a);
        const char *v = argv[++i];
        long long n;
        if (!strcmp(a, "--model")) {
            if (!mnist_arch_parse(v, &c->arch)) return usage_error("--model must be mlp or cnn, not '%s'", v);
        } else if (!strcmp(a, "--epochs")) {
            if (!cli_parse_long(v, 1, 1000, &n)) return usage_error("--epochs takes a whole number 1..1000, not '%s'", v);
            c->epochs = (int)n;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_long(v, 1, 65536, &n)) return usage_error("--batch takes a whole number 1..65536, not '%s'", v);
            c->batch = (int)n;
        } else if (!strcmp(a, "--optimizer")) {
            if (!strcmp(v, "sgd")) c->sgd = true;
            else if (!strcmp(v, "adam")) c->sgd = false;
            else return usage_error("--optimizer must be adam or sgd, not '%s'", v);
        } else if (!strcmp(a, "--lr")) {
            if (!cli_parse_double(v, &c->lr) || c->lr <= 0) return usage_error("--lr takes a positive number, not '%s'", v);
            c->lr_set = true;
        } else if (!strcmp(a, "--momentum")) {
            if (!cli_parse_double(v, &c->momentum) || c->momentum < 0 || c->momentum >= 1)
                return usage_error("--momentum takes a number in [0, 1), not '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_long(v, 0, INT64_MAX, &n)) return usage_error("--seed takes a whole number >= 0, not '%s'", v);
            c->seed = (uint64_t)n;
        } else if (!strcmp(a, "--threads")) {
            if (!cli_parse_long(v, 1, 1024, &n)) return usage_error("--threads takes a whole number 1..1024, not '%s'", v);
            c->threads = (int)n;
        } else if (!strcmp(a, "--limit")) {
            if (!cli_parse_long(v, 1, INT64_MAX, &n)) return usage_error("--limit takes a whole number >= 1, not '%s'", v);
            c->limit = n;
        } else if (!strcmp(a, "--index")) {
            if (!cli_parse_long(v, 0, INT64_MAX, &n)) return usage_error("--index takes a whole number >= 0, not '%s'", v);
            c->index = n;
            c->index_set = true;
        } else if (!strcmp(a, "--data")) c->data = v;
        else if (!strcmp(a, "--out")) c->out = v;
        else if (!strcmp(a, "--eval")) c->eval_ckpt = v;
        else if (!strcmp(a, "--predict")) c->predict_ckpt = v;
        else return usage_error("unknown option '%s'", a);
    }
    if (c->predict_ckpt && !c->index_set) return usage_error("%s", "--predict needs --index K");
    if (c->eval_ckpt && c->predict_ckpt) return usage_error("%s", "--eval and --predict are separate commands");
    if (!c->lr_set) c->lr = c->sgd ? 0.01 : 1e-3;
    return 0;
}

/* Loads one split, with a message that says what to install or pass. */
static tg_status load_split(const config *c, tg_mnist_split split, tg_tensor **x, tg_tensor **y)
{
    const char *dir = c->data ? c->data : tg_mnist_default_dir();
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return tg_error(TG_ERR_IO,
                        "no MNIST-format data directory at %s: %s (or pass --data DIR holding "
                        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
                        "t10k-labels-idx1-ubyte[.gz])",
                        dir,
                        c->data ? "check the path"
                                : "install Debian's dataset-fashion-mnist package (scripts/setup.sh does: "
                                  "apt-get install dataset-fashion-mnist)");
    tg_status s = tg_mnist_load(dir, split, x, y);
    if (s != TG_OK) return s;
    /* The models take 28x28 images and 10 classes: anything else is refused here, naming the file,
     * instead of overflowing a batch buffer or indexing past the class names. */
    const char *prefix = split == TG_MNIST_TRAIN ? "train" : "t10k";
    if ((*x)->shape[2] != 28 || (*x)->shape[3] != 28)
        s = tg_error(TG_ERR_FORMAT, "%s/%s-images-idx3-ubyte[.gz]: the images are %lld x %lld; the mlp and cnn "
                     "models take 28 x 28 (MNIST, Fashion-MNIST)", dir, prefix, (long long)(*x)->shape[2],
                      (long long)(*x)->shape[3]);
    for (int64_t i = 0; s == TG_OK && i < (*y)->numel; i++)
        if ((*y)->idata[i] < 0 || (*y)->idata[i] >= 10)
            s = tg_error(TG_ERR_FORMAT, "%s/%s-labels-idx1-ubyte[.gz]: label %lld of item %lld is not one of the "
                         "10 classes (0..9)", dir, prefix, (long long)(*y)->idata[i], (long long)i);
    if (s != TG_OK) {
        tg_tensor_free(*x);
        tg_tensor_free(*y);
        *x = *y = NULL;
    }
    return s;
}

static const char *const FASHION[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* Copies rows idx[0..n) of src into dst (preallocated with n rows). */
static void gather_rows(tg_tensor *dst_x, tg_tensor *dst_y, const tg_tensor *x, const tg_tensor *y,
                        const int64_t *idx, int64_t n)
{
    int64_t row = x->numel / x->shape[0];
    for (int64_t i = 0; i < n; i++) {
        memcpy(dst_x->data + i * row, x->data + idx[i] * row, (size_t)row * sizeof(float));
        dst_y->idata[i] = y->idata[idx[i]];
    }
}

/* Test accuracy and mean loss without recording anything (clears the tape). */
static tg_status evaluate(const mnist_model *m, tg_tensor *x, tg_tensor *y, double *acc, double *loss)
{
    const int64_t B = 1000, n = x->shape[0];
    int64_t correct = 0;
    double loss_sum = 0;
    bool prev = tg_set_grad_enabled(false);
    tg_status st = TG_OK;
    for (int64_t s = 0; s < n; s += B) {
        int64_t e = s + B < n ? s + B : n;
        tg_tensor *yb = tg_tensor_from_i64(TG_SHAPE(e - s), y->idata + s); /* caller-owned */
        tg_tensor *logits = mnist_model_forward(m, tg_slice(x, 0, s, e, 1));
        tg_tensor *l = tg_cross_entropy(logits, yb, (tg_ce_opts){.reduction = TG_REDUCTION_SUM});
        tg_tensor *pred = tg_argmax(logits, 1, false);
        if (!l || !pred) {
            st = tg_last_status();
            tg_tensor_free(yb);
            break;
        }
        loss_sum += l->data[0];
        for (int64_t i = 0; i < e - s; i++) correct += pred->idata[i] == yb->idata[i];
        tg_tensor_free(yb);
        tg_tape_clear();
    }
    tg_tape_clear();
    tg_set_grad_enabled(prev);
    *acc = (double)correct / (double)n;
    *loss = loss_sum / (double)n;
    return st;
}

/* Loads a checkpoint written by this program: the architecture comes from its metadata. */
static mnist_model *load_model(const char *path)
{
    tg_meta meta = {0};
    tg_param_list *probe = tg_param_list_new();
    tg_ckpt_opts opts = {.meta = &meta, .non_strict = true};
    tg_status st = tg_checkpoint_load(path, probe, &opts, NULL);
    tg_param_list_free(probe);
    if (st != TG_OK) {
        tg_meta_clear(&meta);
        return NULL;
    }
    mnist_arch arch;
    const char *name = tg_meta_get(&meta, "model");
    if (!name || !mnist_arch_parse(name, &arch)) {
        tg_error(TG_ERR_FORMAT, "%s: no \"model\" entry (mlp or cnn) in the checkpoint's metadata", path);
        tg_meta_clear(&meta);
        return NULL;
    }
    tg_meta_clear(&meta);
    mnist_model *m = mnist_model_new(arch, NULL);
    if (!m) return NULL;
    if (tg_checkpoint_load(path, m->params, NULL, NULL) != TG_OK) {
        mnist_model_free(m);
        return NULL;
    }
    return m;
}

static int fail(const char *what)
{
    fprintf(stderr, "mnist: %s: %s\n", what, tg_last_error());
    return 1;
}

static int run_eval(const config *c)
{
    mnist_model *m = load_model(c->eval_ckpt);
    if (!m) return fail("cannot load the checkpoint");
    tg_tensor *x = NULL, *y = NULL;
    if (load_split(c, TG_MNIST_TEST, &x, &y) != TG_OK) {
        mnist_model_free(m);
        return fail("cannot load the test set");
    }
    tg_param_list_train(m->params, false);
    double acc, loss;
    tg_status st = evaluate(m, x, y, &acc, &loss);
    if (st == TG_OK)
        printf("%s (%s): test accuracy %.4f, test loss %.4f on %lld images\n", c->eval_ckpt,
               mnist_arch_name(m->arch), acc, loss, (long long)x->shape[0]);
    tg_tensor_free(x);
    tg_tensor_free(y);
    mnist_model_free(m);
    return st == TG_OK ? 0 : fail("evaluation failed");
}

/* Prints test image K as text, the prediction and the softmax probabilities. */
static int run_predict(const config *c)
{
    mnist_model *m = load_model(c->predict_ckpt);
    if (!m) return fail("cannot load the checkpoint");
    tg_tensor *x = NULL, *y = NULL;
    if (load_split(c, TG_MNIST_TEST, &x, &y) != TG_OK) {
        mnist_model_free(m);
        return fail("cannot load the test set");
    }
    int rc = 0;
    if (c->index >= x->shape[0]) {
        fprintf(stderr, "mnist: --index %lld is out of range: the test set has %lld images (0..%lld)\n",
                (long long)c->index, (long long)x->shape[0], (long long)x->shape[0] - 1);
        rc = 2;
    } else {
        bool fashion = !c->data || strstr(c->data, "fashion");
        tg_param_list_train(m->params, false);
        bool prev = tg_set_grad_enabled(false);
        tg_tensor *img = tg_slice(x, 0, c->index, c->index + 1, 1);
        tg_tensor *p = tg_softmax(mnist_model_forward(m, img), 1);
        tg_set_grad_enabled(prev);
        if (!p) {
            rc = fail("prediction failed");
        } else {
            static const char ramp[] = " .:-=+*#%@";
            for (int r = 0; r < 28; r++) {
                for (int col = 0; col < 28; col++) putchar(ramp[(int)(img->data[r * 28 + col] * 9.999f)]);
                putchar('\n');
            }
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (p->data[k] > p->data[best]) best = k;
            int64_t truth = y->idata[c->index];
            printf("test image %lld: true class %lld%s%s, predicted %d%s%s\n", (long long)c->index,
                   (long long)truth, fashion ? " " : "", fashion ? FASHION[truth] : "", best, fashion ? " " : "",
                   fashion ? FASHION[best] : "");
            for (int k = 0; k < 10; k++)
                printf("  %d %-12s %.4f %s\n", k, fashion ? FASHION[k] : "", p->data[k], k == best ? "<-" : "");
        }
        tg_tape_clear();
    }
    tg_tensor_free(x);
    tg_tensor_free(y);
    mnist_model_free(m);
    return rc;
}

/* What a training run holds; train_free frees it. */
typedef struct {
    tg_tensor *xtr, *ytr, *xte, *yte; /* the training and test splits */
    int64_t n;                        /* training images used (--limit) */
    int64_t B, full, rest;            /* the global batch; full batches per epoch and the last one's size */
    int64_t s0, r0;                   /* this rank's first row in a full batch and in the last one */
    tg_tensor *xb, *yb, *xr, *yr;     /* this rank's share of a full batch and of the last one */
    int64_t *perm;                    /* the epoch's order of the training images */
    char *log_path, *ckpt_path;
    FILE *log;
    tg_rng rng;                       /* the model's initial weights, then every epoch's order */
    mnist_model *m;
    tg_optimizer *opt;
} trainer;

/* Closes the log (a failed close is a failed write) and frees everything; the exit code. */
static int train_free(trainer *t, int rc)
{
    if (t->log && fclose(t->log) != 0 && rc == 0) {
        fprintf(stderr, "mnist: cannot write %s: %s\n", t->log_path, strerror(errno));
        rc = 1;
    }
    free(t->log_path);
    free(t->ckpt_path);
    free(t->perm);
    tg_tensor_free(t->xb);
    tg_tensor_free(t->yb);
    tg_tensor_free(t->xr);
    tg_tensor_free(t->yr);
    tg_optimizer_free(t->opt);
    mnist_model_free(t->m);
    tg_tensor_free(t->xtr);
    tg_tensor_free(t->ytr);
    tg_tensor_free(t->xte);
    tg_tensor_free(t->yte);
    return rc;
}

/* dir/name as a new string (any length); NULL if out of memory. */
static char *join_path(const char *dir, const char *name)
{
    size_t size = strlen(dir) + strlen(name) + 2;
    char *p = malloc(size);
    if (p) snprintf(p, size, "%s/%s", dir, name);
    return p;
}

/* The data, the output directory and the log (rank 0 writes; other ranks log to /dev/null). */
static int open_run(const config *c, trainer *t)
{
    if (load_split(c, TG_MNIST_TRAIN, &t->xtr, &t->ytr) != TG_OK) return fail("cannot load the training set");
    if (load_split(c, TG_MNIST_TEST, &t->xte, &t->yte) != TG_OK) return fail("cannot load the test set");
    t->n = t->xtr->shape[0];
    if (c->limit && c->limit < t->n) t->n = c->limit;
    if (tg_dist_check_batch(c->batch) != TG_OK) return fail("--batch");
    if (tg_dist_is_main() && !cli_make_dirs(c->out)) {
        fprintf(stderr, "mnist: cannot create the output directory %s: %s\n", c->out, strerror(errno));
        return 1;
    }
    t->log_path = join_path(c->out, "log.jsonl");
    t->ckpt_path = join_path(c->out, "model.safetensors");
    if (!t->log_path || !t->ckpt_path) return fail("out of memory");
    t->log = fopen(tg_dist_is_main() ? t->log_path : "/dev/null", "w");
    if (!t->log) {
        fprintf(stderr, "mnist: cannot write %s: %s\n", t->log_path, strerror(errno));
        return 1;
    }
    return 0;
}

/* The model (seeded; every rank gets rank 0's weights) and the optimizer. */
static int build_model(const config *c, trainer *t)
{
    tg_rng_seed(&t->rng, c->seed);
    t->m = mnist_model_new(c->arch, &t->rng);
    if (!t->m) return fail("cannot build the model");
    if (tg_dist_broadcast_state(t->m->params) != TG_OK) return fail("cannot share the initial weights");
    if (c->sgd) t->opt = tg_sgd_new(t->m->params, (tg_sgd_opts){.lr = c->lr, .momentum = c->momentum});
    else {
        tg_adam_opts ao = tg_adam_defaults();
        ao.lr = c->lr;
        t->opt = tg_adam_new(t->m->params, ao);
    }
    if (!t->opt) return fail("cannot build the optimizer");
    return 0;
}

static void print_plan(const config *c, const trainer *t)
{
    const int threads = tg_get_num_threads();
    printf("mnist: %s, %lld training images, %lld test images, batch %d, %s lr %g%s, seed %llu, %d thread%s\n",
           mnist_arch_name(c->arch), (long long)t->n, (long long)t->xte->shape[0], c->batch, c->sgd ? "sgd" : "adam",
           c->lr, c->sgd && c->momentum > 0 ? " (momentum)" : "", (unsigned long long)c->seed, threads,
           threads == 1 ? "" : "s");
    printf("flush-to-zero: %s (denormal floats become 0, as torch.set_flush_denormal(True): decayed momentum on\n"
           "always-zero border pixels would otherwise slow x86 arithmetic badly); OpenBLAS kernels: %s\n",
           tg_set_flush_denormal(true) ? "on" : "unavailable on this CPU", tg_blas_core());
}

/* This rank's batch buffers: its slice of a full batch and of the last, shorter one. */
static int make_batches(const config *c, trainer *t)
{
    t->B = c->batch, t->full = t->n / t->B, t->rest = t->n % t->B;
    int64_t sB, sR = 0;
    tg_dist_shard(t->B, &t->s0, &sB);
    tg_dist_shard(t->rest, &t->r0, &sR);
    if (t->rest && sR == 0) {
        fprintf(stderr, "mnist: the last batch has %lld images, fewer than the %d processes: change --batch or --limit\n",
                (long long)t->rest, tg_dist_world_size());
        return 2;
    }
    t->xb = tg_tensor_zeros(TG_SHAPE(sB, 1, 28, 28)), t->yb = tg_tensor_new(TG_I64, TG_SHAPE(sB));
    t->xr = t->rest ? tg_tensor_zeros(TG_SHAPE(sR, 1, 28, 28)) : NULL;
    t->yr = t->rest ? tg_tensor_new(TG_I64, TG_SHAPE(sR)) : NULL;
    t->perm = malloc((size_t)t->xtr->shape[0] * sizeof *t->perm);
    if (!t->xb || !t->yb || (t->rest && (!t->xr || !t->yr)) || !t->perm) return fail("out of memory for the batches");
    return 0;
}

/* One epoch's training steps over a fresh order; the summed loss (this rank's share) and the time. */
static int train_epoch(const config *c, trainer *t, int epoch, double *loss_sum, double *seconds)
{
    tg_param_list_train(t->m->params, true);
    tg_rng_permutation(&t->rng, t->perm, t->n);
    char label[32], status[64];
    snprintf(label, sizeof label, "epoch %d/%d", epoch, c->epochs);
    tg_progress bar;
    const int64_t B = t->B, full = t->full, rest = t->rest;
    tg_progress_begin(&bar, tg_dist_progress_stream(), label, full + (rest > 0), B, "img");
    *loss_sum = 0;
    for (int64_t k = 0; k < full + (rest > 0); k++) {
        int64_t b = k < full ? B : rest;
        tg_tensor *bx = k < full ? t->xb : t->xr, *by = k < full ? t->yb : t->yr;
        gather_rows(bx, by, t->xtr, t->ytr, t->perm + k * B + (k < full ? t->s0 : t->r0), bx->shape[0]);
        tg_tensor *loss = tg_cross_entropy(mnist_model_forward(t->m, bx), by, (tg_ce_opts){0});
        if (tg_backward(loss) != TG_OK || tg_dist_allreduce_grads(t->m->params, bx->shape[0], b) != TG_OK ||
            tg_optimizer_step(t->opt) != TG_OK)
            return fail("training step failed");
        *loss_sum += (double)loss->data[0] * (double)bx->shape[0];
        tg_optimizer_zero_grad(t->opt);
        tg_tape_clear();
        snprintf(status, sizeof status, "loss %.4f", *loss_sum / (double)(k * B + b));
        tg_progress_update(&bar, k + 1, status);
    }
    *seconds = tg_progress_end(&bar, status);
    return 0;
}

/* The checkpoint (rank 0), with the model's name, the epoch, its accuracy and the seed. */
static int save_checkpoint(const config *c, const trainer *t, int epoch, double acc)
{
    tg_meta meta = {0};
    char buf[64];
    tg_meta_set(&meta, "model", mnist_arch_name(c->arch));
    snprintf(buf, sizeof buf, "%d", epoch);
    tg_meta_set(&meta, "epoch", buf);
    snprintf(buf, sizeof buf, "%.6f", acc);
    tg_meta_set(&meta, "test_accuracy", buf);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)c->seed);
    tg_meta_set(&meta, "seed", buf);
    tg_ckpt_opts co = {.meta = &meta};
    int rc = 0;
    if (tg_dist_is_main() && tg_checkpoint_save(t->ckpt_path, t->m->params, &co) != TG_OK)
        rc = fail("cannot save the checkpoint");
    tg_meta_clear(&meta);
    return rc;
}

/* After an epoch's steps: the evaluation, its line on stdout and in the log, the checkpoint. */
static int end_epoch(const config *c, trainer *t, int epoch, double loss_sum, double train_seconds)
{
    tg_dist_allreduce_sum(&loss_sum, 1); /* the ranks' shares of the epoch's loss */
    tg_param_list_train(t->m->params, false);
    double acc, test_loss, t0 = tg_now();
    if (evaluate(t->m, t->xte, t->yte, &acc, &test_loss) != TG_OK) return fail("evaluation failed");
    const double eval_seconds = tg_now() - t0, ips = (double)t->n / train_seconds, n = (double)t->n;
    printf("epoch %d: train loss %.4f, test accuracy %.4f, test loss %.4f, %.1f s, %.0f images/s\n", epoch,
           loss_sum / n, acc, test_loss, train_seconds, ips);
    if (fprintf(t->log,
                "{\"epoch\": %d, \"model\": \"%s\", \"optimizer\": \"%s\", \"lr\": %g, \"batch\": %d, \"seed\": %llu, "
                "\"threads\": %d, \"train_images\": %lld, \"train_loss\": %.6f, \"test_accuracy\": %.6f, "
                "\"test_loss\": %.6f, \"epoch_seconds\": %.3f, \"eval_seconds\": %.3f, \"images_per_second\": %.1f, "
                "\"peak_rss_mb\": %.1f, \"world_size\": %d}\n",
                epoch, mnist_arch_name(c->arch), c->sgd ? "sgd" : "adam", c->lr, c->batch,
                (unsigned long long)c->seed, tg_get_num_threads(), (long long)t->n, loss_sum / n, acc, test_loss,
                train_seconds, eval_seconds, ips, cli_peak_rss_mb(), tg_dist_world_size()) < 0 ||
        fflush(t->log) != 0) {
        fprintf(stderr, "mnist: cannot write %s: %s\n", t->log_path, strerror(errno));
        return 1;
    }
    return save_checkpoint(c, t, epoch, acc);
}

static int run_train(const config *c)
{
    trainer t = {0};
    int rc = open_run(c, &t);
    if (rc == 0) rc = build_model(c, &t);
    if (rc == 0) print_plan(c, &t);
    if (rc == 0) rc = make_batches(c, &t);
    for (int epoch = 1; epoch <= c->epochs && rc == 0; epoch++) {
        double loss_sum, train_seconds;
        rc = train_epoch(c, &t, epoch, &loss_sum, &train_seconds);
        if (rc == 0) rc = end_epoch(c, &t, epoch, loss_sum, train_seconds);
    }
    if (rc == 0)
        printf("saved %s (PyTorch state_dict names, see examples/mnist/model.h); log %s; peak memory %.0f MB\n",
               t.ckpt_path, t.log_path, cli_peak_rss_mb());
    return train_free(&t, rc);
}

int main(int argc, char **argv)
{
    cli_ignore_file_size_signal(); /* past ulimit -f: EFBIG and a message, not a silent kill */
    tg_blas_select_kernel(argc, argv);
    if (tg_dist_init(&argc, &argv) != TG_OK) return fail("cannot join the MPI job");
    tg_dist_quiet_others();
    config c;
    int rc = parse_args(argc, argv, &c);
    if (rc) return tg_dist_finish(rc);
    tg_set_num_threads(c.threads);
    if (c.eval_ckpt) return tg_dist_finish(run_eval(&c));
    if (c.predict_ckpt) return tg_dist_finish(run_predict(&c));
    return tg_dist_finish(run_train(&c));
}
