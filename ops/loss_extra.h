/* (being written) */
#ifndef TG_LOSS_EXTRA_H
#define TG_LOSS_EXTRA_H
#include "../core/core.h"
#endif
