/*
 * etcd_pb.h — the few protobuf messages of etcd v3's KV service that keelbench's etcd driver
 * (drv_etcd.c) sends and reads, encoded and decoded by hand, and gRPC's message framing.
 * No protobuf library: the messages are small and fixed, and the wire format is simple.
 *
 * Field numbers (etcd api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto, v3.4 to v3.6):
 *
 *   message            field              number  type (wire type)
 *   ResponseHeader     cluster_id         1       uint64 (0 varint)
 *                      member_id          2       uint64 (0)
 *                      revision           3       int64  (0)
 *                      raft_term          4       uint64 (0)
 *   KeyValue           key                1       bytes  (2 length-delimited)
 *                      create_revision    2       int64  (0)
 *                      mod_revision       3       int64  (0)
 *                      version            4       int64  (0)
 *                      value              5       bytes  (2)
 *                      lease              6       int64  (0)
 *   PutRequest         key 1, value 2 (bytes); lease 3 (int64); prev_kv 4 (bool)
 *   PutResponse        header 1 (ResponseHeader); prev_kv 2 (KeyValue)
 *   RangeRequest       key 1, range_end 2 (bytes); limit 3, revision 4 (int64);
 *                      serializable 7, keys_only 8, count_only 9 (bool)
 *   RangeResponse      header 1; kvs 2 (repeated KeyValue); more 3 (bool); count 4 (int64)
 *   Compare            result 1, target 2 (enum); key 3 (bytes); oneof target_union:
 *                      version 4, create_revision 5, mod_revision 6 (int64), value 7 (bytes),
 *                      lease 8 (int64); range_end 64 (bytes)
 *   RequestOp          oneof: request_range 1, request_put 2, (delete_range 3, txn 4)
 *   ResponseOp         oneof: response_range 1, response_put 2, (delete_range 3, txn 4)
 *   TxnRequest         compare 1, success 2, failure 3 (repeated)
 *   TxnResponse        header 1; succeeded 2 (bool); responses 3 (repeated ResponseOp)
 *
 * Wire format: every field is a tag varint (number << 3 | wire type) and then a varint
 * (wire type 0), 8 bytes (1), a varint length and that many bytes (2), or 4 bytes (5).
 * int64 is a plain varint: a negative value takes 10 bytes. proto3 leaves out fields that
 * hold their default (0, false, empty), except a member of a oneof, which is written when
 * set even if zero (a Compare on version 0 carries "version: 0").
 *
 * gRPC frames every message with a 5-byte prefix:
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      1    compressed flag (0: we never negotiate compression, so 1 is an error)
 *   1      4    message length in bytes, big-endian
 *   5      len  the protobuf message
 *
 * Contract:
 *  - Encoders write into the caller's buffer and return the bytes written, or 0 when cap
 *    is too small (nothing useful was written then). *_size gives the exact size first.
 *  - Decoders never trust a length: every varint is at most 10 bytes, every length must
 *    fit in what remains, a known field must have its wire type, groups (wire types 3 and
 *    4) and field number 0 are errors; unknown fields are skipped. They return 0, or -1
 *    on malformed input. Decoded spans point into the input (borrowed, not copied).
 *  - Repeated fields decode into the caller's array of cap entries; *_count is the number
 *    seen (which may exceed cap: the rest were checked but not stored).
 *  - No allocation, no globals: every function is safe on any thread.
 */
#ifndef KEEL_PERF_ETCD_PB_H
#define KEEL_PERF_ETCD_PB_H

#include "core/types.h"

#include <stdbool.h>
#include <stddef.h>

#define ETCD_GRPC_PREFIX_BYTES   5u
#define ETCD_PB_VARINT_BYTES_MAX 10u

/* ---- requests ---------------------------------------------------------------------------- */

struct etcd_put_request {
    struct span key, value;
    i64 lease;
    bool prev_kv;
};

struct etcd_range_request {
    struct span key, range_end;
    i64 limit, revision;
    bool serializable, keys_only, count_only;
};

enum etcd_cmp_result {
    ETCD_CMP_EQUAL = 0,
    ETCD_CMP_GREATER = 1,
    ETCD_CMP_LESS = 2,
    ETCD_CMP_NOT_EQUAL = 3
};
enum etcd_cmp_target {
    ETCD_TARGET_VERSION = 0,
    ETCD_TARGET_CREATE = 1,
    ETCD_TARGET_MOD = 2,
    ETCD_TARGET_VALUE = 3,
    ETCD_TARGET_LEASE = 4
};
/* Which member of Compare's target_union is set: its field number, or 0 for none. */
enum etcd_cmp_union {
    ETCD_UNION_NONE = 0,
    ETCD_UNION_VERSION = 4,
    ETCD_UNION_CREATE = 5,
    ETCD_UNION_MOD = 6,
    ETCD_UNION_VALUE = 7,
    ETCD_UNION_LEASE = 8
};

struct etcd_compare {
    u32 result; /* enum etcd_cmp_result */
    u32 target; /* enum etcd_cmp_target */
    struct span key;
    u32 which;             /* enum etcd_cmp_union */
    i64 number;            /* version, create_revision, mod_revision or lease */
    struct span value;     /* which == ETCD_UNION_VALUE */
    struct span range_end; /* empty: the key alone */
};

/* RequestOp / ResponseOp: the oneof's field number. */
enum etcd_op_kind {
    ETCD_OP_NONE = 0,
    ETCD_OP_RANGE = 1,
    ETCD_OP_PUT = 2,
    ETCD_OP_DELETE_RANGE = 3,
    ETCD_OP_TXN = 4
};

struct etcd_request_op {
    u32 kind; /* ETCD_OP_RANGE or ETCD_OP_PUT (the encoder does only these) */
    struct etcd_range_request range;
    struct etcd_put_request put;
};

struct etcd_txn_request {
    const struct etcd_compare *compare;
    u32 compare_count;
    const struct etcd_request_op *success;
    u32 success_count;
    const struct etcd_request_op *failure;
    u32 failure_count;
};

size_t etcd_pb_put_request_size(const struct etcd_put_request *r);
size_t etcd_pb_put_request_encode(const struct etcd_put_request *r, u8 *dst, size_t cap);
size_t etcd_pb_range_request_size(const struct etcd_range_request *r);
size_t etcd_pb_range_request_encode(const struct etcd_range_request *r, u8 *dst, size_t cap);
size_t etcd_pb_compare_encode(const struct etcd_compare *c, u8 *dst, size_t cap);
size_t etcd_pb_txn_request_size(const struct etcd_txn_request *t);
size_t etcd_pb_txn_request_encode(const struct etcd_txn_request *t, u8 *dst, size_t cap);

/* Request decoders (for tests and fake servers). A decoded txn fills the caller's arrays;
 * their pointers and caps are set by the caller in the *_cap fields. */
int etcd_pb_put_request_decode(struct span in, struct etcd_put_request *r);
int etcd_pb_range_request_decode(struct span in, struct etcd_range_request *r);
int etcd_pb_compare_decode(struct span in, struct etcd_compare *c);
int etcd_pb_request_op_decode(struct span in, struct etcd_request_op *op);
struct etcd_txn_request_dec {
    struct etcd_compare *compare;
    u32 compare_cap, compare_count;
    struct etcd_request_op *success;
    u32 success_cap, success_count;
    struct etcd_request_op *failure;
    u32 failure_cap, failure_count;
};
int etcd_pb_txn_request_decode(struct span in, struct etcd_txn_request_dec *t);

/* ---- responses --------------------------------------------------------------------------- */

struct etcd_response_header {
    u64 cluster_id, member_id;
    i64 revision;
    u64 raft_term;
};

struct etcd_kv {
    struct span key, value;
    i64 create_revision, mod_revision, version, lease;
};

struct etcd_put_response {
    struct etcd_response_header header;
    bool has_prev_kv;
    struct etcd_kv prev_kv;
};

struct etcd_range_response {
    struct etcd_response_header header;
    struct etcd_kv *kvs; /* the caller's array (may be NULL with kvs_cap 0) */
    u32 kvs_cap;
    u32 kv_count; /* kvs seen; the first min(kv_count, kvs_cap) are in kvs */
    bool more;
    i64 count;
};

/* A ResponseOp: which response it holds and its undecoded bytes (decode them with the
 * put or range decoder). */
struct etcd_response_op {
    u32 kind; /* enum etcd_op_kind */
    struct span body;
};

struct etcd_txn_response {
    struct etcd_response_header header;
    bool succeeded;
    struct etcd_response_op *responses; /* the caller's array */
    u32 responses_cap;
    u32 response_count;
};

int etcd_pb_put_response_decode(struct span in, struct etcd_put_response *r);
int etcd_pb_range_response_decode(struct span in, struct etcd_range_response *r);
int etcd_pb_txn_response_decode(struct span in, struct etcd_txn_response *r);

/* Response encoders (for tests and fake servers). The range encoder writes kv_count kvs
 * (kv_count <= kvs_cap); the txn encoder writes response_count ResponseOps. */
size_t etcd_pb_put_response_encode(const struct etcd_put_response *r, u8 *dst, size_t cap);
size_t etcd_pb_range_response_encode(const struct etcd_range_response *r, u8 *dst, size_t cap);
size_t etcd_pb_txn_response_encode(const struct etcd_txn_response *r, u8 *dst, size_t cap);

/* ---- gRPC framing ------------------------------------------------------------------------ */

/* Writes the 5-byte prefix of an uncompressed message of message_len bytes. */
void etcd_grpc_prefix_write(u8 *dst, u32 message_len);
/* Looks for one whole message at the start of buf: 1 with *msg and *used (prefix +
 * message) when it is there, 0 when more bytes are needed, -1 when the prefix is invalid
 * (compressed flag set, or length above len_max). */
int etcd_grpc_message_parse(const u8 *buf, size_t len, size_t len_max, struct span *msg,
                            size_t *used);

#endif
