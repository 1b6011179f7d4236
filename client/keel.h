/*
 * keel.h — libkeel, the C client library of keel (proto-spec/protocol.md, version 1).
 *
 * The one public header: it includes only libc headers, so a program builds against an
 * installed libkeel with `pkg-config --cflags --libs keel`.
 *
 * Contract:
 *  - A keel_client owns its sockets, buffers and the memory of the results it hands out.
 *    It is not thread-safe: one thread at a time per client (several clients may run in
 *    several threads).
 *  - Every call returns an int status: 0 (KEEL_STATUS_OK), a protocol status code (the
 *    server's reply, codes >= 1, same numbers as protocol.md's status table), or a
 *    negative client-side status (KEEL_STATUS_CLOSED ... ). keel_strerror names any of
 *    them, unknown ones included.
 *  - Sync calls (keel_put ... keel_shard_map) fill a caller-provided result struct whose
 *    spans and arrays point into memory the client owns until the next call on that
 *    client or keel_release(client). On a non-OK server status, result->header and
 *    result->error are filled (detail and message) and the rest is zeroed.
 *  - Async calls (keel_submit_*) queue the request and return its request id; keel_poll
 *    (one client) or keel_poll_many (several, one wait) sends what was queued, coalesced
 *    into one send() per connection, reads replies in any order, matches them by request id and
 * calls each request's callback exactly once: with the reply, or with KEEL_STATUS_CLOSED when the
 *    connection was lost, or KEEL_STATUS_GOAWAY when the server said GOAWAY before
 *    answering (the request was not executed). The result passed to a callback lives
 *    until the callback returns. Callbacks may submit new requests but must not call
 *    sync functions, keel_poll, keel_poll_many or keel_close.
 *  - Backpressure: each connection holds at most in_flight_max unanswered requests (the
 *    option, capped by the server's HELLO limit). A submit past it returns
 *    KEEL_STATUS_FULL and queues nothing: poll, then retry.
 *  - Routing: when the handshake says the cluster has several shards and the option
 *    shard_aware is set, the client fetches the shard map and opens one connection per
 *    shard (port from the map: client port + 1 + shard index on a keel server); a
 *    single-key request, or a range inside one shard, goes to the owning shard's port;
 *    other requests go to the router port (the first endpoint). A WRONG_SHARD reply
 *    marks the map stale and the next sync call refreshes it.
 *  - Limits: keys, values and Txn lists are checked against the server's HELLO limits
 *    before sending (KEY_TOO_LARGE, VALUE_TOO_LARGE, TOO_MANY_OPS locally).
 */
#ifndef KEEL_CLIENT_KEEL_H
#define KEEL_CLIENT_KEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statuses --------------------------------------------------------------------------- */

/* 0..191: the protocol's status codes (protocol.md); negative: raised by the client. */
enum keel_status {
    KEEL_STATUS_OK = 0,
    KEEL_STATUS_NOMEM = 1,
    KEEL_STATUS_KEY_EMPTY = 2,
    KEEL_STATUS_KEY_TOO_LARGE = 3,
    KEEL_STATUS_VALUE_TOO_LARGE = 4,
    KEEL_STATUS_COMPACTED = 5,
    KEEL_STATUS_FUTURE_REV = 6,
    KEEL_STATUS_TOO_MANY_OPS = 7,
    KEEL_STATUS_DUPLICATE_KEY = 8,
    KEEL_STATUS_NO_BATCH = 9,
    KEEL_STATUS_INVALID = 10,
    KEEL_STATUS_CORRUPT = 11,
    KEEL_STATUS_FRAME_TOO_LARGE = 64,
    KEEL_STATUS_FRAME_MALFORMED = 65,
    KEEL_STATUS_UNKNOWN_OPCODE = 66,
    KEEL_STATUS_MALFORMED = 67,
    KEEL_STATUS_BAD_MAGIC = 68,
    KEEL_STATUS_UNSUPPORTED_VERSION = 69,
    KEEL_STATUS_NOT_HANDSHAKEN = 70,
    KEEL_STATUS_ALREADY_HANDSHAKEN = 71,
    KEEL_STATUS_TOO_MANY_IN_FLIGHT = 72,
    KEEL_STATUS_REPLY_TOO_LARGE = 73,
    KEEL_STATUS_UNSUPPORTED = 74,
    KEEL_STATUS_TOO_MANY_WATCHES = 75,
    KEEL_STATUS_TOO_MANY_CONNECTIONS = 76,
    KEEL_STATUS_WRONG_SHARD = 128,
    KEEL_STATUS_CROSS_SHARD = 129,
    KEEL_STATUS_NOT_LEADER = 130,
    KEEL_STATUS_UNAVAILABLE = 131,
    KEEL_STATUS_SHUTTING_DOWN = 132,
    KEEL_STATUS_INTERNAL = 133,
    /* client-side */
    KEEL_STATUS_CLOSED = -1,      /* connection lost: outcome of a write unknown */
    KEEL_STATUS_TIMEOUT = -2,     /* no reply within timeout_ms (the request may still run) */
    KEEL_STATUS_FULL = -3,        /* in_flight_max requests already outstanding */
    KEEL_STATUS_BAD_REPLY = -4,   /* a reply did not decode; the connection was closed */
    KEEL_STATUS_ARG = -5,         /* invalid argument (NULL, bad endpoint string) */
    KEEL_STATUS_NO_MEMORY = -6,   /* client-side allocation failed */
    KEEL_STATUS_CONNECT = -7,     /* TCP connect or handshake transport failed */
    KEEL_STATUS_GOAWAY = -8,      /* server sent GOAWAY before replying: not executed */
    KEEL_STATUS_BAD_VERSION = -9, /* HELLO reply names a version this client cannot speak */
};

/* A short text for any status, unknown ones included ("unknown status 200"); the string
 * is static or, for unknown codes, in a thread-local buffer reused by the next call. */
const char *keel_strerror(int status);

/* ---- connection ------------------------------------------------------------------------- */

typedef struct keel_client keel_client;

struct keel_options {
    int timeout_ms;         /* sync calls and connect; 0 = 5000 */
    uint32_t in_flight_max; /* per connection; 0 = the server's limit */
    bool shard_aware;       /* connect to shard ports and route by key */
};

void keel_options_default(struct keel_options *o);

/* Connects to the first reachable endpoint of "host:port[,host:port...]" (numeric IPv4),
 * sends HELLO and waits for its reply; with shard_aware, fetches the shard map and opens
 * the shard connections. options may be NULL (defaults). */
int keel_connect(const char *endpoints, const struct keel_options *options, keel_client **out);
/* Closes every connection; pending async requests get KEEL_STATUS_CLOSED callbacks. */
void keel_close(keel_client *c);
/* Frees the memory of the last sync result (also freed by the next sync call). */
void keel_release(keel_client *c);

struct keel_server_info {
    uint16_t version;
    uint64_t features;
    uint64_t cluster_id;
    uint16_t shard_count;
    uint64_t shard_map_version;
    uint32_t frame_size_max, reply_frame_size_max, key_size_max, value_size_max;
    uint32_t txn_ops_max, in_flight_max, watches_max;
    uint64_t member_id;
};
const struct keel_server_info *keel_server_info(const keel_client *c);
/* Connections open: 1 (router) + shard connections. */
int keel_connection_count(const keel_client *c);

/* ---- results ---------------------------------------------------------------------------- */

struct keel_header {
    uint16_t shard; /* 65535: none (router) */
    int64_t revision;
    uint64_t raft_term;
    uint64_t member_id;
};

struct keel_error {
    uint64_t detail;     /* status-specific (protocol.md's status table) */
    const char *message; /* message_len bytes, not NUL-terminated */
    size_t message_len;
};

struct keel_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create_revision, mod_revision, version, lease;
};

struct keel_put_result {
    bool has_prev_kv;
    struct keel_kv prev_kv;
};
struct keel_range_result {
    int64_t count;
    bool more;
    struct keel_kv *kvs;
    size_t kvs_len;
};
struct keel_delete_result {
    int64_t deleted;
    struct keel_kv *prev_kvs;
    size_t prev_kvs_len;
};

enum keel_op_kind { KEEL_OP_RANGE = 0, KEEL_OP_PUT = 1, KEEL_OP_DELETE = 2 };

struct keel_op_result {
    enum keel_op_kind kind;
    union {
        struct keel_range_result range;
        struct keel_put_result put;
        struct keel_delete_result del;
    } u;
};
struct keel_txn_result {
    bool succeeded;
    struct keel_op_result *replies;
    size_t replies_len;
};

struct keel_shard_status {
    uint16_t shard_id;
    int64_t revision, compact_revision;
    uint64_t keys, memory_bytes, wal_bytes;
    uint32_t connections;
    uint64_t raft_term, raft_leader_id, raft_commit_index, raft_applied_index;
};
struct keel_status_result {
    struct keel_shard_status *shards;
    size_t shards_len;
};

struct keel_shard_range {
    uint16_t shard_id;
    uint16_t port;
    uint64_t leader_id;
    const uint8_t *start_key; /* empty: start of the key space */
    size_t start_key_len;
    const uint8_t *end_key; /* empty: end of the key space */
    size_t end_key_len;
};
struct keel_shard_map_result {
    uint64_t version;
    struct keel_shard_range *shards;
    size_t shards_len;
};

/* Every reply: header and error always; the opcode's member when status is OK. */
struct keel_result {
    uint16_t opcode; /* the request's opcode (protocol.md) */
    struct keel_header header;
    struct keel_error error;
    union {
        struct keel_put_result put;
        struct keel_range_result range;
        struct keel_delete_result del;
        struct keel_txn_result txn;
        struct keel_status_result status;
        struct keel_shard_map_result shard_map;
    } u;
};

/* ---- requests --------------------------------------------------------------------------- */

struct keel_bytes {
    const void *ptr;
    size_t len;
};

struct keel_put_args {
    struct keel_bytes key, value;
    bool prev_kv;
    int64_t lease; /* 0 in version 1 */
};

enum keel_sort_order { KEEL_SORT_NONE = 0, KEEL_SORT_ASCEND = 1, KEEL_SORT_DESCEND = 2 };
enum keel_sort_target {
    KEEL_SORT_KEY = 0,
    KEEL_SORT_VERSION = 1,
    KEEL_SORT_CREATE = 2,
    KEEL_SORT_MOD = 3,
    KEEL_SORT_VALUE = 4,
};

/* range_end: empty = key alone; "\0" = every key >= key; else [key, range_end). */
struct keel_range_args {
    struct keel_bytes key, range_end;
    int64_t revision, limit; /* 0: current, no limit */
    bool keys_only, count_only, serializable;
    enum keel_sort_order sort_order;
    enum keel_sort_target sort_target;
    int64_t min_mod_revision, max_mod_revision, min_create_revision, max_create_revision;
};

struct keel_delete_args {
    struct keel_bytes key, range_end;
    bool prev_kv;
};

enum keel_compare_target {
    KEEL_CMP_VERSION = 0,
    KEEL_CMP_CREATE = 1,
    KEEL_CMP_MOD = 2,
    KEEL_CMP_VALUE = 3,
    KEEL_CMP_LEASE = 4,
};
enum keel_compare_result {
    KEEL_CMP_EQUAL = 0,
    KEEL_CMP_GREATER = 1,
    KEEL_CMP_LESS = 2,
    KEEL_CMP_NOT_EQUAL = 3,
};
struct keel_compare {
    enum keel_compare_target target;
    enum keel_compare_result result;
    struct keel_bytes key, range_end;
    struct keel_bytes value; /* target VALUE */
    int64_t operand;         /* other targets */
};
struct keel_op {
    enum keel_op_kind kind;
    union {
        struct keel_range_args range;
        struct keel_put_args put;
        struct keel_delete_args del;
    } u;
};
struct keel_txn_args {
    const struct keel_compare *compares;
    size_t compares_len;
    const struct keel_op *success;
    size_t success_len;
    const struct keel_op *failure;
    size_t failure_len;
};

struct keel_compact_args {
    uint16_t shard;
    int64_t revision;
    bool physical;
};

/* ---- sync API: result memory owned by the client until its next call -------------------- */

int keel_put(keel_client *c, const struct keel_put_args *a, struct keel_result *out);
int keel_get(keel_client *c, const struct keel_range_args *a, struct keel_result *out);
int keel_delete(keel_client *c, const struct keel_delete_args *a, struct keel_result *out);
int keel_txn(keel_client *c, const struct keel_txn_args *a, struct keel_result *out);
int keel_compact(keel_client *c, const struct keel_compact_args *a, struct keel_result *out);
int keel_status(keel_client *c, struct keel_result *out);
int keel_shard_map(keel_client *c, struct keel_result *out);

/* ---- async API -------------------------------------------------------------------------- */

/* Called once per request; result (never NULL) lives until the callback returns. */
typedef void (*keel_callback)(void *ctx, uint64_t request_id, int status,
                              const struct keel_result *result);

int keel_submit_put(keel_client *c, const struct keel_put_args *a, keel_callback cb, void *ctx,
                    uint64_t *request_id);
int keel_submit_get(keel_client *c, const struct keel_range_args *a, keel_callback cb, void *ctx,
                    uint64_t *request_id);
int keel_submit_delete(keel_client *c, const struct keel_delete_args *a, keel_callback cb,
                       void *ctx, uint64_t *request_id);
int keel_submit_txn(keel_client *c, const struct keel_txn_args *a, keel_callback cb, void *ctx,
                    uint64_t *request_id);
int keel_submit_compact(keel_client *c, const struct keel_compact_args *a, keel_callback cb,
                        void *ctx, uint64_t *request_id);
int keel_submit_status(keel_client *c, keel_callback cb, void *ctx, uint64_t *request_id);
int keel_submit_shard_map(keel_client *c, keel_callback cb, void *ctx, uint64_t *request_id);

/* Sends what is queued, waits up to timeout_ms (0: do not wait, -1: forever) for replies
 * and runs their callbacks. Returns the number of callbacks run (>= 0) or a negative
 * status when every connection is closed. keel_poll_many over one client. */
int keel_poll(keel_client *c, int timeout_ms);
/* keel_poll over several clients at once, for a thread that owns them all:
 *  1. sends every client's queued frames: the frames submitted on a connection since the
 *     last poll leave in one send() (more only when the socket buffer is full; the rest
 *     goes when poll() says the socket has room);
 *  2. waits once, in one poll() over every open connection of every client, until one is
 *     readable (or writable with output left), up to timeout_ms (0: do not wait, -1:
 *     forever); an idle caller sleeps in the kernel;
 *  3. reads what the ready connections have and runs the callbacks of every whole reply
 *     (a lost connection's pending requests get KEEL_STATUS_CLOSED or GOAWAY callbacks).
 * Frames submitted from callbacks leave at the next call. Returns the number of callbacks
 * run (>= 0, 0 on a timeout), KEEL_STATUS_CLOSED when no connection of any client is open
 * (at once, without waiting: a caller loop cannot spin on closed clients unnoticed; close
 * or stop polling such clients, keel_connection_count tells which), KEEL_STATUS_ARG
 * (count < 0, or clients NULL with count > 0), KEEL_STATUS_NO_MEMORY. NULL entries are
 * skipped; a client must appear at most once; every client must belong to the calling
 * thread for the call. */
int keel_poll_many(keel_client *const *clients, int count, int timeout_ms);
/* Requests submitted and not yet called back. */
uint32_t keel_pending(const keel_client *c);

#ifdef __cplusplus
}
#endif

#endif
