/*
 * types.h — the few types every keel module shares.
 *
 * Contract: fixed-width integer aliases, a borrowed byte span, and the error
 * codes that core/ (and later the wire protocol) report. Nothing else lives
 * here, so every folder, raft/ included, may include it.
 *
 * Error codes are stable numbers: the wire protocol (proto-spec/) maps them to
 * status codes one to one, so never renumber an existing code; append.
 */
#ifndef KEEL_CORE_TYPES_H
#define KEEL_CORE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t i8;
typedef int16_t i16;
typedef int32_t i32;
typedef int64_t i64;

/* A borrowed run of bytes: the owner keeps it alive, the borrower never frees it. */
struct span {
    const u8 *ptr;
    size_t len;
};

static inline struct span span_make(const void *ptr, size_t len)
{
    struct span s = {(const u8 *)ptr, len};
    return s;
}

/* Errors a caller (and, through the server, a user) can cause. 0 is success. */
enum keel_err {
    KEEL_OK = 0,
    KEEL_ENOMEM = 1,           /* the shard's memory budget is spent */
    KEEL_EKEY_EMPTY = 2,       /* a key must have at least one byte */
    KEEL_EKEY_TOO_LARGE = 3,   /* key longer than the configured key_size_max */
    KEEL_EVALUE_TOO_LARGE = 4, /* value longer than the configured value_size_max */
    KEEL_ECOMPACTED = 5,       /* the requested revision has been compacted away */
    KEEL_EFUTURE_REV = 6,      /* the requested revision is newer than the store's */
    KEEL_ETOO_MANY_OPS = 7,    /* a batch holds more writes than batch_ops_max */
    KEEL_EDUPLICATE_KEY = 8,   /* a batch writes the same key twice */
    KEEL_ENO_BATCH = 9,        /* batch call without an open batch, or one already open */
    KEEL_EINVALID = 10,        /* an argument is malformed (range end before start, ...) */
    KEEL_ECORRUPT = 11,        /* bytes failed their checksum or do not decode */
    KEEL_ERR_COUNT_ = 12,
};

/* A short, stable, human-readable name for an error code ("key too large"). */
const char *keel_err_str(int err);

#define KEEL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KEEL_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define KEEL_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define KEEL_LIKELY(x)    __builtin_expect(!!(x), 1)
#define KEEL_UNLIKELY(x)  __builtin_expect(!!(x), 0)

#endif
