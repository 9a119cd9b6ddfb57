/* (being written) */
#ifndef TG_NN_H
#define TG_NN_H
#include "../core/core.h"
#endif
