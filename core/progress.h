/* Progress reporting for long work: a one-line bar redrawn in place on a
 * terminal (done/total, rate, ETA and a caller-supplied status such as the
 * running loss), plain periodic lines when output is not a terminal.
 * Ownership: a tg_progress is a plain struct owned by the caller; nothing to free. */
#ifndef TG_PROGRESS_H
#define TG_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *out;
    char label[48];
    int64_t total;        /* units of work (batches) */
    int64_t items_per_unit; /* e.g. images per batch, for the rate */
    const char *unit;     /* e.g. "img" */
    bool tty;
    double t_start, t_last_draw;
    double plain_every;   /* seconds between plain lines (not a terminal) */
    int64_t done;
} tg_progress;

/* Starts a bar on `out` (stderr if NULL). items_per_unit: rate shown in items/s. */
void tg_progress_begin(tg_progress *p, FILE *out, const char *label, int64_t total, int64_t items_per_unit,
                       const char *unit);
/* Marks `done` units complete; status (may be NULL) is shown after the bar. Draws at most ~10 times a second. */
void tg_progress_update(tg_progress *p, int64_t done, const char *status);
/* Final draw and newline; returns the elapsed seconds. */
double tg_progress_end(tg_progress *p, const char *status);
/* Monotonic seconds. */
double tg_now(void);

#endif
