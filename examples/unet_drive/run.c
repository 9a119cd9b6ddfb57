/* unet_drive's run management (see run.h). */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

char *run_path(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        tg_error(TG_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return s;
}

tg_status run_lock_dir(const char *dir)
{
    char *path = run_path("%s/.lock", dir);
    if (!path) return tg_last_status();
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        tg_status st = tg_error(TG_ERR_IO, "cannot open the lock file %s: %s", path, strerror(errno));
        free(path);
        return st;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        char buf[32] = "";
        ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
        buf[k > 0 ? k : 0] = '\0';
        close(fd);
        free(path);
        if (err == EWOULDBLOCK)
            return tg_error(TG_ERR_STATE, "%s is in use by pid %ld (another run writes there; wait for it or use another --out)",
                            dir, strtol(buf, NULL, 10));
        return tg_error(TG_ERR_IO, "cannot lock %s/.lock: %s", dir, strerror(err));
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        tg_status st = tg_error(TG_ERR_IO, "cannot write the lock file %s: %s", path, strerror(errno));
        close(fd);
        free(path);
        return st;
    }
    free(path);
    return TG_OK; /* fd stays open: the lock lasts as long as the process */
}

int run_remove_stale_temps(const char *dir, const char *const *prefixes, int n_prefixes)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    int removed = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        bool stale = false;
        for (int k = 0; k < n_prefixes && !stale; k++) {
            size_t n = strlen(prefixes[k]);
            stale = !strncmp(ent->d_name, prefixes[k], n) && !strncmp(ent->d_name + n, ".tmp.", 5);
        }
        if (!stale) continue;
        char *path = run_path("%s/%s", dir, ent->d_name);
        if (path && unlink(path) == 0) {
            printf("removed %s (a temporary file left by an interrupted save)\n", path);
            removed++;
        }
        free(path);
    }
    closedir(d);
    return removed;
}

double run_memory_estimate_mb(int base_c, int crop, int batch, int eval_w, int eval_h)
{
    /* Measured peaks (MB, 1 thread, training then evaluating one 565x584 image), base/crop/batch:
     * 4/64/2: 68; 8/128/2: 112; 16/256/2: 433; 16/256/4: 772; 8/384/4: 869; 32/256/2: 842. About
     * 161 bytes per pixel, image and base channel while training, 16 bytes per parameter (weights,
     * gradients, momentum, a checkpoint's copy; the UNet has about 7600 * base_c^2), 60 MB for
     * the rest. Evaluation (no gradients) is bounded roughly by 30 bytes per pixel and base
     * channel. Estimates: 102, 147, 429, 767, 828, 860: within 5% for the four larger, over by
     * up to 50% for the two smallest (the evaluation bound). */
    const double params = 7600.0 * base_c * base_c;
    const double train = 161e-6 * (double)batch * crop * crop * base_c;
    const double eval = 30e-6 * (double)eval_w * eval_h * base_c;
    return 60.0 + 16e-6 * params + (train > eval ? train : eval);
}

static double cgroup_limit_mb(void)
{
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (!f) return INFINITY;
    char buf[64] = "";
    double lim = INFINITY;
    if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3)) lim = strtod(buf, NULL) / 1048576.0;
    fclose(f);
    if (!isfinite(lim)) return lim;
    f = fopen("/sys/fs/cgroup/memory.current", "r");
    if (f) {
        if (fgets(buf, sizeof buf, f)) lim -= strtod(buf, NULL) / 1048576.0;
        fclose(f);
    }
    return lim;
}

double run_memory_available_mb(void)
{
    double avail = INFINITY;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "MemAvailable:", 13)) avail = strtod(line + 13, NULL) / 1024.0;
        fclose(f);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        const double as = (double)rl.rlim_cur / 1048576.0;
        if (as < avail) avail = as;
    }
    const double cg = cgroup_limit_mb();
    return cg < avail ? cg : avail;
}

volatile sig_atomic_t run_interrupted;

static void on_interrupt(int sig)
{
    run_interrupted = sig;
    signal(sig, SIG_DFL); /* a second Ctrl-C stops at once (saves are atomic: nothing is lost) */
}

void run_catch_interrupts(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Appends s to buf (size cap, length *n) quoted for a POSIX shell when needed. */
static bool put_quoted(char **buf, size_t *n, size_t *cap, const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("-_./,=:+@%", *p);
    size_t need = *n + 4 * strlen(s) + 4;
    if (need > *cap) {
        size_t c = 2 * need;
        char *p = realloc(*buf, c);
        if (!p) return false;
        *buf = p, *cap = c;
    }
    char *o = *buf + *n;
    if (*n) *o++ = ' ';
    if (plain) o += sprintf(o, "%s", s);
    else {
        *o++ = '\'';
        for (const char *p = s; *p; p++) {
            if (*p == '\'') o += sprintf(o, "'\\''");
            else *o++ = *p;
        }
        *o++ = '\'';
        *o = '\0';
    }
    *n = (size_t)(o - *buf);
    return true;
}

char *run_shell_command(int argc, char **argv, const char *extra)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    bool have_extra = !extra;
    for (int i = 0; i < argc; i++) {
        if (!put_quoted(&buf, &n, &cap, argv[i])) goto oom;
        if (extra && !strcmp(argv[i], extra)) have_extra = true;
    }
    if (!have_extra && !put_quoted(&buf, &n, &cap, extra)) goto oom;
    return buf;
oom:
    free(buf);
    tg_error(TG_ERR_NOMEM, "out of memory");
    return NULL;
}

tg_status run_log_check(unet_run *run, const char *name, const char *head, int last_epoch)
{
    if (run->n_epochs && strcmp(run->head, head))
        return tg_error(TG_ERR_FORMAT, "%s is the log of the %s head, not %s", name, run->head, head);
    int kept = 0;
    for (int i = 0; i < run->n_epochs; i++) {
        const int e = run->epochs[i].epoch;
        if (e > last_epoch) break; /* logged, then stopped before its checkpoint was saved */
        if (e != i + 1)
            return tg_error(TG_ERR_FORMAT, "%s: line %d is epoch %d where epoch %d belongs (a line lost or repeated); "
                            "the checkpoint is at epoch %d", name, i + 1, e, i + 1, last_epoch);
        kept++;
    }
    if (kept < last_epoch)
        return tg_error(TG_ERR_FORMAT, "%s has %d epoch line%s but the checkpoint is at epoch %d (lines lost)", name,
                        kept, kept == 1 ? "" : "s", last_epoch);
    run->n_epochs = kept;
    return TG_OK;
}
