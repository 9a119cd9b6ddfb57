/* The UNet of the reference DRIVE training code (WZMIAOMIAO deep-learning-for-image-processing,
 * pytorch_segmentation/unet/src/unet.py, bilinear=True), with the same state_dict names:
 *
 *   in_conv  = DoubleConv(in, c)             "in_conv.{0,1,3,4}.*"   (conv, BN, ReLU, conv, BN, ReLU)
 *   down1..4 = MaxPool2d(2) + DoubleConv     "down1.1.{0,1,3,4}.*"   c->2c->4c->8c->8c (16c/2)
 *   up1..4   = Upsample(x2, bilinear, align_corners=True), pad to the skip's size,
 *              cat([skip, up], 1), DoubleConv(in, out, mid=in/2)    "up1.conv.{0,1,3,4}.*"
 *              up1: 16c->4c, up2: 8c->2c, up3: 4c->c, up4: 2c->c
 *   out_conv = Conv2d(c, classes, 1)         "out_conv.0.weight", "out_conv.0.bias"
 *
 * Convs inside DoubleConv have no bias (BN follows); BatchNorm2d(eps 1e-5, momentum 0.1).
 * Any input size H, W >= 16 works (odd sizes: the upsampled map is zero-padded by diff/2 on the
 * left/top and the rest on the right/bottom, as F.pad in the reference).
 *
 * Tracing (nn/trace.h): the forward names its block outputs in_conv, down1..down4, up1..up4 and
 * out_conv (the logits), as forward hooks on those PyTorch modules would see them.
 *
 * Ownership: the model owns its parameter list (tg_unet_free releases both); forward results
 * belong to the step's tape.
 */
#ifndef TG_UNET_H
#define TG_UNET_H

#include "nn.h"

typedef struct {
    tg_conv2d_layer conv1, conv2;
    tg_batchnorm2d_layer bn1, bn2;
} tg_double_conv;

typedef struct {
    int in_channels, num_classes, base_c;
    tg_param_list *params;        /* parameters and buffers, state_dict order; training flag */
    tg_double_conv in_conv, down[4], up[4];
    tg_conv2d_layer out_conv;
} tg_unet;

/* PyTorch's default initialisation drawn from rng (NULL: the global generator), in registration
 * (state_dict) order. NULL + tg_last_error() on bad sizes (all >= 1) or out of memory. */
tg_unet *tg_unet_new(int in_channels, int num_classes, int base_c, tg_rng *rng);
void tg_unet_free(tg_unet *m);
/* x (N, in_channels, H, W) -> logits (N, num_classes, H, W). Train/eval mode is the parameter
 * list's flag (tg_param_list_train(m->params, ...)). NULL + error on a bad input shape. */
tg_tensor *tg_unet_forward(const tg_unet *m, tg_tensor *x);

#endif
