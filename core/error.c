/* Thread-local error state: one message, one status. */
#include "core.h"

#include <stdarg.h>

static _Thread_local char g_message[1024];
static _Thread_local tg_status g_status = TG_OK;

const char *tg_last_error(void) { return g_message; }

tg_status tg_last_status(void) { return g_status; }

void tg_clear_error(void)
{
    g_message[0] = '\0';
    g_status = TG_OK;
}

tg_status tg_error(tg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, ap);
    va_end(ap);
    g_status = status;
    return status;
}
