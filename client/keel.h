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
 *  - Leader routing (shard_aware and several endpoints, the members of one cluster): each
 *    shard's connection goes to the shard port of the node that leads the shard (the map's
 *    leader_id; the endpoint whose HELLO named that member, the endpoints not yet known
 *    probed once; its client port + 1 + shard), else to the connected node's shard port.
 *    A shard moves when a reply on its connection is NOT_LEADER or LEADER_CHANGED naming
 *    another leader, or comes from another member than the connection's HELLO named (a
 *    follower forwarded the request and relays the leader's reply), or when a refreshed map
 *    names another leader (NOT_LEADER also refreshes the map, at most every 500 ms:
 *    keel_poll sends it without waiting). It moves once its connection
 *    has no request in flight: until then, an async submit for that shard returns
 *    KEEL_STATUS_FULL (poll, then retry) and a sync call goes to the router port. The move
 *    itself (connect, HELLO) happens in keel_poll, a sync call, or the submit that finds
 *    the connection drained (outside callbacks; no other callback runs during it). Nothing
 *    is re-sent by the move: a sync request told NOT_LEADER (not executed) is sent again on
 *    the new connection (a redirect, counted in redirects_max); LEADER_CHANGED and a lost
 *    connection go to the caller as below.
 *  - Limits: keys, values and Txn lists are checked against the server's HELLO limits
 *    before sending (KEY_TOO_LARGE, VALUE_TOO_LARGE, TOO_MANY_OPS locally).
 *  - Several endpoints ("127.0.0.1:2379,127.0.0.1:2479", the members of one cluster): the
 *    client talks to one member at a time (the current endpoint) and, in sync calls only:
 *      * NOT_LEADER with a nonzero detail (the leader's member id; the request was not
 *        executed): the client finds that member's client URL (the endpoint whose HELLO
 *        named that id, else MEMBER_LIST when the server grants the MEMBER feature, else
 *        by trying the other endpoints' HELLOs), moves its connections there and sends the
 *        request again, at most redirects_max times per call;
 *      * UNAVAILABLE, LEADER_CHANGED, GOAWAY or a lost connection: an idempotent read of
 *        cluster data (RANGE, SHARD_MAP, MEMBER_LIST) is sent again on the next endpoint
 *        after a backoff (backoff_ms, doubled each time), at most retries_max times. A write is
 * never re-sent on these: its outcome may be unknown, so the status goes to the caller
 * (KEEL_STATUS_CLOSED: read back before retrying);
 *      * a sync call that finds the current connection lost reconnects first (the current
 *        endpoint, then the others in order).
 *    Moving needs a client with no async request pending (else the status is returned as
 *    is). Async calls never redirect: their callbacks see NOT_LEADER (keel_follow_leader
 *    moves the client once its requests are drained). With one endpoint, none of this
 *    happens: every status goes to the caller.
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
    KEEL_STATUS_MEMBER_NOT_FOUND = 134,
    KEEL_STATUS_MEMBER_EXISTS = 135,
    KEEL_STATUS_CONF_CHANGE_PENDING = 136,
    KEEL_STATUS_TOO_MANY_MEMBERS = 137,
    KEEL_STATUS_MEMBER_IS_LEARNER = 138,
    KEEL_STATUS_MEMBER_NOT_LEARNER = 139,
    KEEL_STATUS_LEARNER_NOT_READY = 140,
    KEEL_STATUS_LEADER_TRANSFER_FAILED = 141,
    KEEL_STATUS_LEADER_CHANGED = 142,
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
    int redirects_max;      /* NOT_LEADER hops one sync call follows; 0 = 3, < 0 = none */
    int retries_max;        /* re-sends of an idempotent sync read; 0 = 3, < 0 = none */
    int backoff_ms;         /* wait before the first re-send, doubled after; 0 = 50 */
};

void keel_options_default(struct keel_options *o);

/* Connects to the first reachable endpoint of "host:port[,host:port...]" (numeric IPv4, at
 * most KEEL_ENDPOINTS_MAX), sends HELLO and waits for its reply; with shard_aware, fetches
 * the shard map and opens the shard connections. options may be NULL (defaults). The other
 * endpoints are kept for leader following and retries (contract above). */
#define KEEL_ENDPOINTS_MAX 16
int keel_connect(const char *endpoints, const struct keel_options *options, keel_client **out);
/* The endpoint the client talks to now ("127.0.0.1:2379") into buf; its length, or < 0. */
int keel_endpoint_current(const keel_client *c, char *buf, size_t cap);
/* Moves the client's connections to the member member_id (found as for NOT_LEADER). 0, or
 * KEEL_STATUS_FULL when async requests are pending, KEEL_STATUS_MEMBER_NOT_FOUND when no
 * endpoint or member list names it, a connect status. For async callers (keelbench). */
int keel_follow_leader(keel_client *c, uint64_t member_id);
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
/* Shards routed to a connection of their own (0 without shard_aware); *to_leader (may be
 * NULL): how many of those go to the shard's leader (leader routing, contract above). */
int keel_shard_routes(const keel_client *c, int *to_leader);
/* Shard connections moved to another node's port so far (leader routing). */
uint64_t keel_shard_moves(const keel_client *c);

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

/* Member operations (feature MEMBER, protocol.md "Members and cluster"). */
struct keel_str {
    const char *ptr; /* len bytes, not NUL-terminated */
    size_t len;
};
struct keel_member {
    uint64_t id;
    bool is_learner;
    struct keel_str name; /* empty until an added member first starts */
    struct keel_str *peer_urls;
    size_t peer_urls_len;
    struct keel_str *client_urls; /* "http://127.0.0.1:2379": its router port */
    size_t client_urls_len;
};
struct keel_shard_leader {
    uint16_t shard_id;
    uint64_t leader_id; /* 0: none known */
    uint64_t raft_term;
};
/* MEMBER_LIST, MEMBER_ADD, MEMBER_REMOVE, MEMBER_PROMOTE. */
struct keel_members_result {
    uint64_t member_id;  /* MEMBER_ADD: the new member's id */
    uint64_t cluster_id; /* MEMBER_LIST */
    struct keel_member *members;
    size_t members_len;
    struct keel_shard_leader *shards; /* MEMBER_LIST: every shard's leader */
    size_t shards_len;
};
struct keel_shard_move {
    uint16_t shard_id;
    int status; /* 0: target_id leads it now */
    uint64_t leader_id, raft_term;
};
struct keel_move_leader_result {
    struct keel_shard_move *shards;
    size_t shards_len;
};
enum keel_raft_role {
    KEEL_ROLE_FOLLOWER = 0,
    KEEL_ROLE_CANDIDATE = 1,
    KEEL_ROLE_LEADER = 2,
    KEEL_ROLE_LEARNER = 3,
};
enum keel_progress_state {
    KEEL_PROGRESS_PROBE = 0,
    KEEL_PROGRESS_REPLICATE,
    KEEL_PROGRESS_SNAPSHOT
};
struct keel_peer_progress {
    uint64_t member_id;
    bool is_learner, recent_active;
    enum keel_progress_state state;
    uint64_t match_index, next_index; /* lag = the shard's raft_last_index - match_index */
};
struct keel_shard_raft {
    uint16_t shard_id;
    enum keel_raft_role role;
    uint64_t leader_id, raft_term, raft_commit_index, raft_applied_index, raft_last_index;
    int64_t revision;
    struct keel_peer_progress *progress; /* the leader's view of the others; else none */
    size_t progress_len;
};
struct keel_endpoint_status_result {
    struct keel_str name;
    bool is_learner;
    struct keel_shard_raft *shards;
    size_t shards_len;
};

/* Opcodes of keel_result.opcode (protocol.md's opcode table). */
enum keel_opcode {
    KEEL_OPCODE_PUT = 0x0010,
    KEEL_OPCODE_RANGE = 0x0011,
    KEEL_OPCODE_DELETE_RANGE = 0x0012,
    KEEL_OPCODE_TXN = 0x0013,
    KEEL_OPCODE_COMPACT = 0x0014,
    KEEL_OPCODE_STATUS = 0x0020,
    KEEL_OPCODE_SHARD_MAP = 0x0021,
    KEEL_OPCODE_MEMBER_LIST = 0x0300,
    KEEL_OPCODE_MEMBER_ADD = 0x0301,
    KEEL_OPCODE_MEMBER_REMOVE = 0x0302,
    KEEL_OPCODE_MEMBER_PROMOTE = 0x0303,
    KEEL_OPCODE_MOVE_LEADER = 0x0304,
    KEEL_OPCODE_ENDPOINT_STATUS = 0x0305,
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
        struct keel_members_result members; /* the four MEMBER_* opcodes */
        struct keel_move_leader_result move_leader;
        struct keel_endpoint_status_result endpoint_status;
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

struct keel_member_add_args {
    struct keel_str name; /* may be empty */
    const struct keel_str *peer_urls;
    size_t peer_urls_len; /* >= 1 */
    const struct keel_str *client_urls;
    size_t client_urls_len;
    bool as_learner;
};

/* ---- sync API: result memory owned by the client until its next call -------------------- */

int keel_put(keel_client *c, const struct keel_put_args *a, struct keel_result *out);
int keel_get(keel_client *c, const struct keel_range_args *a, struct keel_result *out);
int keel_delete(keel_client *c, const struct keel_delete_args *a, struct keel_result *out);
int keel_txn(keel_client *c, const struct keel_txn_args *a, struct keel_result *out);
int keel_compact(keel_client *c, const struct keel_compact_args *a, struct keel_result *out);
int keel_status(keel_client *c, struct keel_result *out);
int keel_shard_map(keel_client *c, struct keel_result *out);
/* Member operations: need the MEMBER feature (keel_server_info()->features bit 2), else
 * UNKNOWN_OPCODE from the server. Membership changes are not re-sent after a lost connection
 * (list the members, then decide); NOT_LEADER is followed as for any request. */
#define KEEL_FEATURE_MEMBER (UINT64_C(1) << 2)
int keel_member_list(keel_client *c, bool linearizable, struct keel_result *out);
int keel_member_add(keel_client *c, const struct keel_member_add_args *a, struct keel_result *out);
int keel_member_remove(keel_client *c, uint64_t member_id, struct keel_result *out);
int keel_member_promote(keel_client *c, uint64_t member_id, struct keel_result *out);
/* shard 65535: every shard the current member leads. */
int keel_move_leader(keel_client *c, uint16_t shard, uint64_t target_id, struct keel_result *out);
/* The current member's own Raft state (not followed to a leader: it is about this member). */
int keel_endpoint_status(keel_client *c, struct keel_result *out);

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
/* keel_poll_many with the wait in microseconds (-1: no limit), for load generators that
 * keep a schedule finer than a millisecond. */
int keel_poll_many_us(keel_client *const *clients, int count, int64_t timeout_us);
/* Requests submitted and not yet called back. */
uint32_t keel_pending(const keel_client *c);

#ifdef __cplusplus
}
#endif

#endif
