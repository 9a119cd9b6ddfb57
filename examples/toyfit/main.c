/* toyfit: the smallest complete tapegrad program. A two-layer MLP learns the
 * two-spirals problem with plain gradient descent; every tensor an op creates
 * is released by tg_tape_clear() at the end of each step.
 *
 *   toyfit [--steps N] [--hidden H] [--lr LR] [--seed S]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "tapegrad.h"

static int usage(const char *msg)
{
    fprintf(stderr, "toyfit: %s\nusage: toyfit [--steps N] [--hidden H] [--lr LR] [--seed S]\n", msg);
    return 2;
}

/* Two interleaved spirals, n points each, labels 0/1. */
static void make_spirals(tg_rng *rng, int n, tg_tensor *x, tg_tensor *y)
{
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < n; i++) {
            double r = (double)i / n * 5.0 + 0.3;
            double t = 1.75 * (double)i / n * 2 * M_PI + c * M_PI;
            int k = c * n + i;
            x->data[2 * k] = (float)(r * cos(t) / 5.0 + 0.02 * tg_rng_normal(rng));
            x->data[2 * k + 1] = (float)(r * sin(t) / 5.0 + 0.02 * tg_rng_normal(rng));
            y->idata[k] = c;
        }
}

static tg_tensor *uniform_param(int64_t rows, int64_t cols, int64_t fan_in, tg_rng *rng)
{
    tg_tensor *t = cols ? tg_tensor_rand(TG_SHAPE(rows, cols), rng) : tg_tensor_rand(TG_SHAPE(rows), rng);
    float bound = 1.0f / sqrtf((float)fan_in);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (2 * t->data[i] - 1) * bound;
    return tg_tensor_set_requires_grad(t, true);
}

int main(int argc, char **argv)
{
    cli_ignore_file_size_signal(); /* past ulimit -f: EFBIG and a message, not a silent kill */
    tg_blas_select_kernel(argc, argv);
    int steps = 2000, hidden = 64;
    float lr = 0.5f;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage("every option takes a value");
        char *end;
        if (!strcmp(argv[i], "--steps")) steps = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(argv[i], "--hidden")) hidden = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(argv[i], "--lr")) lr = strtof(argv[++i], &end);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[++i], &end, 10);
        else return usage("unknown option");
        if (*end) return usage("option value is not a number");
    }
    if (steps <= 0 || hidden <= 0 || !(lr > 0)) return usage("steps, hidden and lr must be positive");

    tg_rng rng;
    tg_rng_seed(&rng, seed);
    const int n = 200;
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2 * n, 2));
    tg_tensor *y = tg_tensor_new(TG_I64, TG_SHAPE(2 * n, 1));
    make_spirals(&rng, n, x, y);
    tg_tensor *params[6] = {
        uniform_param(2, hidden, 2, &rng),      uniform_param(hidden, 0, 2, &rng),
        uniform_param(hidden, hidden, hidden, &rng), uniform_param(hidden, 0, hidden, &rng),
        uniform_param(hidden, 2, hidden, &rng), uniform_param(2, 0, hidden, &rng),
    };

    printf("toyfit: two spirals, %d points, MLP 2-%d-%d-2, full-batch gradient descent, lr %g\n", 2 * n, hidden,
           hidden, lr);
    float loss_value = NAN, acc = 0;
    for (int step = 1; step <= steps; step++) {
        tg_tensor *h = tg_relu(tg_add(tg_matmul(x, params[0]), params[1]));
        h = tg_relu(tg_add(tg_matmul(h, params[2]), params[3]));
        tg_tensor *logits = tg_add(tg_matmul(h, params[4]), params[5]);
        tg_tensor *logp = tg_log_softmax(logits, 1);
        tg_tensor *loss = tg_neg(tg_mean_all(tg_gather(logp, 1, y)));
        if (tg_backward(loss) != TG_OK) {
            fprintf(stderr, "toyfit: %s\n", tg_last_error());
            return 1;
        }
        loss_value = tg_item(loss);
        tg_tensor *pred = tg_argmax(logits, 1, true);
        int correct = 0;
        for (int k = 0; k < 2 * n; k++) correct += pred->idata[k] == y->idata[k];
        acc = (float)correct / (2 * n);
        for (int p = 0; p < 6; p++) {
            for (int64_t i = 0; i < params[p]->numel; i++) params[p]->data[i] -= lr * params[p]->grad[i];
            tg_tensor_zero_grad(params[p]);
        }
        tg_tape_clear();
        if (step == 1 || step % (steps / 10 > 0 ? steps / 10 : 1) == 0)
            printf("step %5d  loss %.4f  train accuracy %.3f\n", step, loss_value, acc);
    }
    printf("final: loss %.4f, train accuracy %.3f\n", loss_value, acc);
    for (int p = 0; p < 6; p++) tg_tensor_free(params[p]);
    tg_tensor_free(x);
    tg_tensor_free(y);
    return acc >= 0.9f ? 0 : 1;
}
