/* The two MNIST models, as the PyTorch modules they mirror (state_dict names match):
 *   mlp: nn.Sequential(nn.Flatten(), nn.Linear(784,128), nn.ReLU(), nn.Linear(128,10))
 *        -> "1.weight", "1.bias", "3.weight", "3.bias"
 *   cnn: nn.Sequential(nn.Conv2d(1,8,3,padding=1), nn.ReLU(), nn.MaxPool2d(2),
 *                      nn.Conv2d(8,16,3,padding=1), nn.ReLU(), nn.MaxPool2d(2),
 *                      nn.Flatten(), nn.Linear(784,10))
 *        -> "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"
 * Ownership: the model owns its parameter list; free with mnist_model_free. */
#ifndef MNIST_MODEL_H
#define MNIST_MODEL_H

#include "tapegrad.h"

typedef enum { MNIST_MLP, MNIST_CNN } mnist_arch;

typedef struct {
    mnist_arch arch;
    tg_param_list *params;
    tg_linear_layer fc1, fc2;      /* mlp: 1, 3; cnn: fc1 is "7" */
    tg_conv2d_layer conv1, conv2;  /* cnn: 0, 3 */
} mnist_model;

/* Parses "mlp"/"cnn"; false if neither. */
bool mnist_arch_parse(const char *name, mnist_arch *arch);
const char *mnist_arch_name(mnist_arch arch);
/* Builds the model with PyTorch's default init drawn from rng. NULL + tg_last_error() on failure. */
mnist_model *mnist_model_new(mnist_arch arch, tg_rng *rng);
void mnist_model_free(mnist_model *m);
/* x (N,1,28,28) -> logits (N,10), tape-owned. */
tg_tensor *mnist_model_forward(const mnist_model *m, tg_tensor *x);

#endif
