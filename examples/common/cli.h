/* Helpers the example programs share (examples/common, the static library tg_examples_common;
 * not part of libtapegrad): strict number parsing for flags, mkdir -p, peak memory and SIGXFSZ.
 * Ownership: nothing is allocated. */
#ifndef EXAMPLES_COMMON_CLI_H
#define EXAMPLES_COMMON_CLI_H

#include <stdbool.h>

/* The whole string s as a base-10 integer in [lo, hi] (no trailing characters); false otherwise. */
bool cli_parse_long(const char *s, long long lo, long long hi, long long *out);
/* The whole string s as a finite number; false otherwise. */
bool cli_parse_double(const char *s, double *out);
/* Creates path and its missing parents (as mkdir -p); false with errno set on failure. */
bool cli_make_dirs(const char *path);
/* This process's peak resident memory so far, in MB. */
double cli_peak_rss_mb(void);
/* Ignores SIGXFSZ, so a write past the file-size limit (ulimit -f) fails with EFBIG and the
 * program's usual error path runs, instead of the process being killed with no message. */
void cli_ignore_file_size_signal(void);

#endif
