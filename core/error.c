/* Thread-local error state: one message, one status. */
#include "core_internal.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char g_message[1024];
static _Thread_local tg_status g_status = TG_OK;
static _Thread_local uint64_t g_count = 0;

uint64_t tg_error_count(void) { return g_count; }

const char *tg_last_error(void) { return g_message; }

tg_status tg_last_status(void) { return g_status; }

void tg_clear_error(void)
{
    g_message[0] = '\0';
    g_status = TG_OK;
}

tg_status tg_error(tg_status status, const char *fmt, ...)
{
    /* Formatted apart first: an argument may be tg_last_error() itself ("...; earlier error: %s"),
     * and formatting a buffer into itself is undefined behaviour (it garbled those messages). */
    char msg[sizeof g_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(g_message, msg, sizeof msg);
    g_status = status;
    g_count++;
    return status;
}
