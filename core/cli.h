/* Small helpers for command-line training programs (the examples use them): strict number
 * parsing for flags, mkdir -p, and peak memory. Ownership: nothing is allocated. */
#ifndef TG_CLI_H
#define TG_CLI_H

#include <stdbool.h>

/* The whole string s as a base-10 integer in [lo, hi] (no trailing characters); false otherwise. */
bool tg_cli_parse_long(const char *s, long long lo, long long hi, long long *out);
/* The whole string s as a finite number; false otherwise. */
bool tg_cli_parse_double(const char *s, double *out);
/* Creates path and its missing parents (as mkdir -p); false with errno set on failure. */
bool tg_cli_make_dirs(const char *path);
/* This process's peak resident memory so far, in MB. */
double tg_cli_peak_rss_mb(void);

#endif
