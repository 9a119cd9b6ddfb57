/* (being written) */
#ifndef TG_DATA_H
#define TG_DATA_H
#include "../core/core.h"
#endif
