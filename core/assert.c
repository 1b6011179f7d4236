/* assert.c — the failure path of ASSERT and the error-code names. */
#include "core/assert.h"
#include "core/types.h"

#include <stdio.h>
#include <stdlib.h>

void keel_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "keel: assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
    fflush(stderr);
    abort();
}

const char *keel_err_str(int err)
{
    static const char *const names[KEEL_ERR_COUNT_] = {
        [KEEL_OK] = "ok",
        [KEEL_ENOMEM] = "out of memory",
        [KEEL_EKEY_EMPTY] = "key is empty",
        [KEEL_EKEY_TOO_LARGE] = "key too large",
        [KEEL_EVALUE_TOO_LARGE] = "value too large",
        [KEEL_ECOMPACTED] = "revision has been compacted",
        [KEEL_EFUTURE_REV] = "revision is in the future",
        [KEEL_ETOO_MANY_OPS] = "too many operations in one batch",
        [KEEL_EDUPLICATE_KEY] = "duplicate key in one batch",
        [KEEL_ENO_BATCH] = "no batch open, or one already open",
        [KEEL_EINVALID] = "invalid argument",
        [KEEL_ECORRUPT] = "corrupt data",
    };
    if (err < 0 || err >= KEEL_ERR_COUNT_ || names[err] == NULL) return "unknown error";
    return names[err];
}
