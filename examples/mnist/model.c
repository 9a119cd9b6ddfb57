#include "model.h"

#include <stdlib.h>

#include <stdlib.h>
#include <string.h>

bool mnist_arch_parse(const char *name, mnist_arch *arch)
{
    if (!strcmp(name, "mlp")) *arch = MNIST_MLP;
    else if (!strcmp(name, "cnn")) *arch = MNIST_CNN;
    else return false;
    return true;
}

const char *mnist_arch_name(mnist_arch arch) { return arch == MNIST_MLP ? "mlp" : "cnn"; }

mnist_model *mnist_model_new(mnist_arch arch, tg_rng *rng)
{
    mnist_model *m = calloc(1, sizeof *m);
    if (!m) {
        tg_error(TG_ERR_NOMEM, "mnist: out of memory");
        return NULL;
    }
    m->arch = arch;
    m->params = tg_param_list_new();
    tg_status st = m->params ? TG_OK : TG_ERR_NOMEM;
    tg_conv2d_opts pad1 = {.padding = {1, 1}};
    if (arch == MNIST_MLP) {
        if (st == TG_OK) st = tg_linear_layer_init(&m->fc1, m->params, "1", 784, 128, true, rng);
        if (st == TG_OK) st = tg_linear_layer_init(&m->fc2, m->params, "3", 128, 10, true, rng);
    } else {
        if (st == TG_OK) st = tg_conv2d_layer_init(&m->conv1, m->params, "0", 1, 8, 3, 3, pad1, true, rng);
        if (st == TG_OK) st = tg_conv2d_layer_init(&m->conv2, m->params, "3", 8, 16, 3, 3, pad1, true, rng);
        if (st == TG_OK) st = tg_linear_layer_init(&m->fc1, m->params, "7", 784, 10, true, rng);
    }
    if (st != TG_OK) {
        mnist_model_free(m);
        return NULL;
    }
    return m;
}

void mnist_model_free(mnist_model *m)
{
    if (!m) return;
    tg_param_list_free(m->params);
    free(m);
}

tg_tensor *mnist_model_forward(const mnist_model *m, tg_tensor *x)
{
    if (m->arch == MNIST_MLP) {
        tg_tensor *h = tg_relu(tg_linear_layer_forward(&m->fc1, tg_flatten(x, 1, -1)));
        return tg_linear_layer_forward(&m->fc2, h);
    }
    tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_tensor *h = tg_max_pool2d(tg_relu(tg_conv2d_layer_forward(&m->conv1, x)), pool);
    h = tg_max_pool2d(tg_relu(tg_conv2d_layer_forward(&m->conv2, h)), pool);
    return tg_linear_layer_forward(&m->fc1, tg_flatten(h, 1, -1));
}
