/*
 * exec_int.h — what exec.c, exec_txn.c and exec_merge.c share: the failure a
 * request ends with, and the per-op runners a TXN reuses.
 *
 * Every runner returns a status: 0 (OK), a protocol status (enum codec_status,
 * the store's errors included, with *fail saying detail and message), or
 * EXEC_NO_ROOM when a scratch buffer could not grow (the request fails with -1).
 * Runners never open or close a batch; the caller does (exec.c).
 *
 * Scratch use: scratch[0] holds the kvs list of one op (a RANGE's kvs, a
 * DELETE_RANGE's prev_kvs), scratch[1] a TXN's op replies, scratch[2] replay's
 * discarded reply and the merge's kv arrays.
 */
#ifndef KEEL_SHARD_EXEC_INT_H
#define KEEL_SHARD_EXEC_INT_H

#include "shard/exec.h"

#define EXEC_NO_ROOM (-1)
/* Room every in-request error reply needs (header, detail, a short message). */
#define EXEC_REPLY_FRAME_SIZE_MIN 256u

struct exec_fail {
    u64 detail;
    const char *message;
};

/* Sets *f and returns status (> 0). */
int exec_fail_set(struct exec_fail *f, int status, u64 detail, const char *message);
/* A store error (enum keel_err) as a status with protocol.md's detail. */
int exec_store_fail(const struct exec *x, int rc, struct exec_fail *f);
/* INVALID unless range_end is empty, "\0", or greater than key (etcd's rule). */
int exec_range_end_check(struct span key, struct span range_end, struct exec_fail *f);

/* exec_error_reply with a message that is a span (a merged part's error). */
int exec_error_reply_span(struct buf *out, u16 opcode, u64 request_id, u16 shard, i64 revision,
                          u64 member_id, u16 status, u64 detail, struct span message);

struct codec_kv exec_kv_to_codec(const struct mvcc_kv *kv);

/* The op runners: each fills its reply message; *wrote says the store changed. */
int exec_range_run(struct exec *x, const struct codec_range_request *q, struct codec_range_reply *o,
                   struct exec_fail *f);
int exec_put_run(struct exec *x, const struct codec_put_request *q, struct codec_put_reply *o,
                 bool *wrote, struct exec_fail *f);
int exec_delete_run(struct exec *x, const struct codec_delete_range_request *q,
                    struct codec_delete_range_reply *o, bool *wrote, struct exec_fail *f);
/* TXN (exec_txn.c): compares, then the branch's ops; a batch is open. */
int exec_txn_run(struct exec *x, const struct codec_txn_request *q, struct codec_txn_reply *o,
                 bool *wrote, struct exec_fail *f);

#endif
