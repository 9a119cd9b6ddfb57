/* (being written) */
#ifndef TG_LOSS_H
#define TG_LOSS_H
#include "../core/core.h"
#endif
