/* unet_drive --seeds: the seed list, and the report over seeds (OUT/seed_S/<head>/log.jsonl):
 * per metric each seed's final value, mean ± sample std per head, the paired difference
 * softmax - sigmoid with a 95% t interval and a one-line reading (stats.h); curves.png with the
 * mean curve and a ±1 std band per head. */
#ifndef UNET_SEEDS_H
#define UNET_SEEDS_H

#include "tapegrad.h"

#define UNET_MAX_SEEDS 64

/* "0,1,2" -> seeds (distinct whole numbers >= 0, at most UNET_MAX_SEEDS); false if malformed. */
bool unet_seeds_parse(const char *s, long long *seeds, int *n);
void unet_seeds_format(const long long *seeds, int n, char *buf, size_t size);

/* Whether out holds seed_S directories, and which (sorted; at most UNET_MAX_SEEDS). */
bool unet_seeds_present(const char *out);
tg_status unet_seeds_find(const char *out, long long *seeds, int *n);

/* Writes out/report.md (and the tables on stdout) and out/curves.png from out/seed_S/<head>/log.jsonl
 * for the n seeds. TG_ERR_IO if no seed has a log. A missing curves.png (no PLplot) is only reported. */
tg_status unet_seeds_report(const char *out, const long long *seeds, int n);

#endif
