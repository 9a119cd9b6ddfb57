/* What every loss shares: the reduction argument. */
#ifndef TG_LOSS_COMMON_H
#define TG_LOSS_COMMON_H

typedef enum {
    TG_REDUCTION_MEAN = 0, /* PyTorch's default */
    TG_REDUCTION_SUM,
    TG_REDUCTION_NONE,
    TG_REDUCTION_BATCHMEAN /* kl_div only */
} tg_reduction;

#endif
