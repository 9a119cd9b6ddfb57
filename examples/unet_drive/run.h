/* unet_drive's run management: paths of any length, the output directory's lock, stale temp
 * files of interrupted saves, the memory a configuration needs, SIGINT/SIGTERM, and the checks a
 * log.jsonl must pass before --resume continues it.
 * Ownership: run_path and run_shell_command return malloc'd strings (caller frees). */
#ifndef UNET_RUN_H
#define UNET_RUN_H

#include <signal.h>

#include "report.h"

/* printf-style path (any length); NULL with tg_error on out of memory. */
char *run_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Takes OUT/.lock (flock, held until the process exits) and writes our pid into it.
 * TG_ERR_STATE "OUT is in use by pid N" if another process holds it. */
tg_status run_lock_dir(const char *dir);

/* Removes files named PREFIX.tmp.* (left by a save killed half-way; atomic saves write there and
 * rename) for each prefix in dir, printing each removed name. Returns how many were removed, -1 on error. */
int run_remove_stale_temps(const char *dir, const char *const *prefixes, int n_prefixes);

/* Peak memory of training (batch x crop x crop images, gradients, SGD momentum) and of
 * evaluating one eval_h x eval_w image, in MB, for a UNet of base width base_c. Fitted to measured
 * peaks of this program (within 5% from 400 MB to 870 MB; small runs overestimated). */
double run_memory_estimate_mb(int base_c, int crop, int batch, int eval_w, int eval_h);
/* Memory this process may still use, in MB: the least of MemAvailable (/proc/meminfo), the
 * address-space limit (ulimit -v) and the cgroup's memory.max less its current use. */
double run_memory_available_mb(void);

/* SIGINT/SIGTERM set run_interrupted (the signal number) instead of killing; a second one kills. */
extern volatile sig_atomic_t run_interrupted;
void run_catch_interrupts(void);

/* argv as one shell command line (arguments quoted where needed), with extra appended if not
 * already present (e.g. "--resume"). */
char *run_shell_command(int argc, char **argv, const char *extra);

/* A log read back for --resume: lines for epochs 1..last_epoch, each once, in order, for this
 * head. TG_ERR_FORMAT naming the file and what is wrong otherwise. Lines after last_epoch (an
 * epoch logged but not yet saved when the run stopped) are dropped from run. */
tg_status run_log_check(unet_run *run, const char *name, const char *head, int last_epoch);

#endif
