/* tapegrad: one include for the whole public API. */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include "core/version.h"
#include "core/core.h"
#include "core/progress.h"
#include "ops/tensor_ops.h"
#include "ops/nn_ops.h"
#include "ops/loss_common.h"
#include "ops/loss.h"
#include "ops/loss_extra.h"
#include "nn/nn.h"
#include "nn/unet.h"
#include "nn/trace.h"
#include "nn/seg_metrics.h"
#include "data/data.h"

#endif
