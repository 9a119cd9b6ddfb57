#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

double tg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tg_progress_begin(tg_progress *p, FILE *out, const char *label, int64_t total, int64_t items_per_unit,
                       const char *unit)
{
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total > 0 ? total : 0;
    p->items_per_unit = items_per_unit > 0 ? items_per_unit : 1;
    p->unit = unit ? unit : "it";
    p->tty = isatty(fileno(p->out)) == 1;
    p->t_start = p->t_last_draw = tg_now();
    p->plain_every = 10.0;
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static void draw(tg_progress *p, double now, const char *status, bool final)
{
    double el = now - p->t_start;
    double rate = el > 0 ? (double)(p->done * p->items_per_unit) / el : 0;
    double eta = p->done > 0 ? el * (double)(p->total - p->done) / (double)p->done : -1;
    char e[16], r[16];
    fmt_time(e, sizeof e, el);
    fmt_time(r, sizeof r, final ? 0 : eta);
    if (p->tty) {
        const int width = 24;
        int fill = p->total ? (int)((double)width * (double)p->done / (double)p->total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(p->out, "\r%s [%s] %lld/%lld %.0f %s/s %s<%s %s\033[K%s", p->label, bar, (long long)p->done,
                (long long)p->total, rate, p->unit, e, r, status ? status : "", final ? "\n" : "");
    } else {
        fprintf(p->out, "%s %lld/%lld %.0f %s/s elapsed %s eta %s %s\n", p->label, (long long)p->done,
                (long long)p->total, rate, p->unit, e, r, status ? status : "");
    }
    fflush(p->out);
    p->t_last_draw = now;
}

void tg_progress_update(tg_progress *p, int64_t done, const char *status)
{
    p->done = done;
    double now = tg_now();
    double every = p->tty ? 0.1 : p->plain_every;
    if (now - p->t_last_draw >= every) draw(p, now, status, false);
}

double tg_progress_end(tg_progress *p, const char *status)
{
    double now = tg_now();
    if (p->tty || now - p->t_start >= p->plain_every) draw(p, now, status, true);
    return now - p->t_start;
}
