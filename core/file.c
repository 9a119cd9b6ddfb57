/* Opening files for reading: only regular files, and never a blocking open. A FIFO opened
 * with plain fopen() waits for a writer forever; a directory "opens" and fails later with a
 * confusing message; a device may never end. Every tapegrad reader goes through here. */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tg_file_kind(unsigned mode)
{
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

int tg_open_regular(const char *path, const char *who)
{
    const char *sep = who ? ": " : "";
    if (!who) who = "";
    if (!path) {
        tg_error(TG_ERR_ARG, "%s%sthe path is NULL", who, sep);
        return -1;
    }
    /* O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        tg_error(TG_ERR_IO, "%s%scannot open '%s': %s", who, sep, path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        tg_error(TG_ERR_IO, "%s%scannot stat '%s': %s", who, sep, path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        tg_error(TG_ERR_IO, "%s%scannot read '%s': it is %s, not a regular file", who, sep, path,
                 tg_file_kind((unsigned)sb.st_mode));
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        tg_error(TG_ERR_IO, "%s%scannot read '%s': %s", who, sep, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

FILE *tg_fopen_regular(const char *path, const char *who)
{
    int fd = tg_open_regular(path, who);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        tg_error(TG_ERR_IO, "%s%scannot read '%s': %s", who ? who : "", who ? ": " : "", path, strerror(errno));
        close(fd);
    }
    return f;
}
