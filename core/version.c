/* tg_version(): the version this library was built as (core/version.h, generated). */
#include "core/version.h"

const char *tg_version(void) { return TG_VERSION_STRING; }
