/* OpenBLAS under an address-space limit (ulimit -v). When Debian's OpenBLAS 0.3.21 (OpenMP
 * build) loads, before main, it reserves one 128 MB buffer per OpenMP thread (the thread count is
 * OMP_NUM_THREADS, else the number of CPUs; OPENBLAS_NUM_THREADS does not change it); if mmap
 * and malloc fail it retries forever (memory.c), at 100% CPU. This check runs earlier still,
 * from the program's .preinit_array (blas_select.c), and turns that spin into a message and exit
 * status 1. Measured (toyfit, 2 CPUs): smallest working `ulimit -v` 307 MB with 1 thread, 438 MB
 * with 2, 701 MB with 4, 1225 MB with 8: 131 MB per thread on top of what is mapped. */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core.h"

/* Address space OpenBLAS takes at load: a buffer (128 MB, a page, malloc headers) per thread and
 * one more, fitted to the measurements above; and a margin for the other start-up allocations. */
#define TG_BLAS_PER_THREAD_KB (131L * 1024)
#define TG_BLAS_STARTUP_KB (16L * 1024)

/* The value of NAME in envp (getenv is not usable yet when this runs); NULL if absent. */
static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

static long startup_threads(char **envp)
{
    const char *env = env_get(envp, "OMP_NUM_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (end != env && n > 0) return n;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* KB of address space mapped now (/proc/self/statm's first field); 0 if unknown. */
static long mapped_kb(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    return strtol(buf, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
}

static long startup_kb(long threads) { return mapped_kb() + TG_BLAS_STARTUP_KB + (threads + 1) * TG_BLAS_PER_THREAD_KB; }

/* Runs before any library's constructor: only system calls and plain libc, no tapegrad state. */
void tg_blas_check_address_space(char **envp)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return;
    const char *opt = env_get(envp, "TG_BLAS_AS_CHECK");
    if (opt && !strcmp(opt, "0")) return;
    long limit_kb = (long)(lim.rlim_cur / 1024), threads = startup_threads(envp);
    long need = startup_kb(threads), need1 = startup_kb(1);
    if (limit_kb >= need) return;
    char msg[768];
    int n = snprintf(msg, sizeof msg,
                     "tapegrad: the address-space limit (ulimit -v %ld KB) is too small to start: OpenBLAS reserves "
                     "128 MB per OpenMP thread when it loads (%ld thread%s: about %ld KB with the program), and "
                     "would retry forever instead of failing. Raise the limit (ulimit -v %ld)",
                     limit_kb, threads, threads == 1 ? "" : "s", need, need);
    if (threads > 1 && limit_kb >= need1) {
        long fit = (limit_kb - need1) / TG_BLAS_PER_THREAD_KB + 1;
        n += snprintf(msg + n, sizeof msg - (size_t)n, " or use fewer threads (OMP_NUM_THREADS=%ld fits)", fit);
    } else if (threads > 1) {
        n += snprintf(msg + n, sizeof msg - (size_t)n, " (one thread needs ulimit -v %ld)", need1);
    }
    n += snprintf(msg + n, sizeof msg - (size_t)n, ".\n");
    if (write(STDERR_FILENO, msg, (size_t)n) < 0) _exit(1);
    _exit(1);
}
