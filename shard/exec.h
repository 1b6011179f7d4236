/*
 * exec.h — runs one decoded client request against one shard's store and
 * encodes its reply frame; replays logged writes; merges per-shard range
 * replies for the router port; encodes the replies the runtime builds itself
 * (errors, STATUS, SHARD_MAP, HELLO).
 *
 * This is the request semantics of proto-spec/protocol.md (PUT, RANGE,
 * DELETE_RANGE, TXN, COMPACT) in one place, with no I/O. Since replication the
 * shard runtime proposes every write's body to its Raft group and calls
 * exec_request when the entry is applied, on every member (shard/shard_raft.c):
 * execution is a pure function of the store's state and the request, so every
 * member reaches the same state, and a request that fails fails everywhere.
 * Reads call exec_request at once or after a read-index round.
 *
 * exec_replay re-executes a write that is known to have written (the
 * single-node WAL of before replication logged only those); the server no
 * longer calls it, the tests of exec still do.
 *
 * Contract:
 *  - Single-threaded: the shard thread that owns the store.
 *  - Replies: every exec_* that encodes appends exactly one whole reply frame
 *    (codec_reply_encode) to out, OK or error, echoing the request's opcode and
 *    id, header.shard = x->shard_id, header.member_id = x->member_id,
 *    header.revision = the store's revision after the request (for a write, the
 *    revision it wrote at). A reply that would pass x->reply_frame_size_max is
 *    replaced by a REPLY_TOO_LARGE error reply (detail = the limit); a TXN whose
 *    reply is too large is aborted (nothing written), as protocol.md says.
 *  - Errors a client causes become error replies with protocol.md's detail
 *    (COMPACTED: compact revision; FUTURE_REV: current revision; WRONG_SHARD:
 *    x->shard_map_version; REPLY_TOO_LARGE: the limit; 0 otherwise) and a
 *    short message; the store is left as before the request. exec_request
 *    itself returns 0, or -1 only when out could not grow (ENOMEM of the
 *    scratch/out buffers: the caller closes the connection). A write is
 *    committed only after its reply is encoded, so -1 means nothing was
 *    written, except for COMPACT, whose job has started when o->wrote says so.
 *  - Version 1 refuses what protocol.md reserves: PUT with ignore_value,
 *    ignore_lease or a nonzero lease, and an op of kind TXN, are UNSUPPORTED.
 *    A range_end that is not empty, not "\0" and not > key is INVALID.
 *  - Spans in the decoded request borrow the caller's input; nothing is kept
 *    after the call.
 *  - Memory: the scratch buffers in struct exec are dynamic bufs grown on
 *    demand and reused across calls (never shrunk below their high-water mark
 *    unless exec_trim is called).
 */
#ifndef KEEL_SHARD_EXEC_H
#define KEEL_SHARD_EXEC_H

#include "core/buf.h"
#include "core/mvcc.h"
#include "core/types.h"
#include "net/codec.h"

struct exec {
    struct mvcc *m;
    u16 shard_id;
    u64 member_id;
    u32 reply_frame_size_max; /* in [256, CODEC_REPLY_FRAME_SIZE_MAX] */
    u64 shard_map_version;    /* WRONG_SHARD's detail; exec_init sets 1, the runtime updates */
    u64 raft_term;            /* header.raft_term of every reply; the runtime updates it */
    struct buf scratch[3];    /* lists and nested replies while encoding */
};

/* Sets up x over store m (not owned). */
void exec_init(struct exec *x, struct mvcc *m, u16 shard_id, u64 member_id,
               u32 reply_frame_size_max);
void exec_deinit(struct exec *x);
/* Frees scratch memory above bytes_keep (called when the shard is idle). */
void exec_trim(struct exec *x, size_t bytes_keep);

struct exec_outcome {
    bool wrote;   /* the store changed: log the request body (type = opcode) */
    i64 revision; /* the store's revision after the request */
    u16 status;   /* the reply's status (CODEC_S_OK or an error) */
};

/* Executes req, decoded from f (opcode PUT, RANGE, DELETE_RANGE, TXN or COMPACT),
 * and appends its reply frame to out. COMPACT: mvcc_compact_start (the caller
 * steps the job) unless the PHYSICAL flag asks for it to finish before the
 * reply; its shard field must equal x->shard_id, else WRONG_SHARD. Any other
 * opcode is an ASSERT failure (the runtime handles them). 0, or -1 (see the
 * contract). */
int exec_request(struct exec *x, const struct codec_frame *f, const union codec_msg_any *req,
                 struct buf *out, struct exec_outcome *o);

/* Re-executes a logged write (WAL record type opcode, payload body) during
 * recovery; COMPACT runs to completion; the reply goes to scratch and is
 * dropped. 0; KEEL_ECORRUPT when the opcode is not a write, the body does not
 * decode, or the request fails or writes nothing (a logged write succeeded
 * and wrote once: the log does not match the state it is replayed onto);
 * KEEL_ENOMEM when the store or a scratch buffer is out of memory. */
int exec_replay(struct exec *x, u16 opcode, struct span body);

/* Appends an error reply frame for request (opcode, request_id): status,
 * detail, message; header.shard = shard (CODEC_SHARD_NONE for connection-level
 * errors), revision = revision. GOAWAY when opcode is CODEC_OP_GOAWAY (request
 * id 0). Returns 0 or -1 (out could not grow). */
int exec_error_reply(struct buf *out, u16 opcode, u64 request_id, u16 shard, i64 revision,
                     u64 member_id, u16 status, u64 detail, const char *message);

/* ---- the router port: one RANGE over several shards ---------------------------------- */

/* Merges the OK RANGE reply frames of every shard the range touched (each a
 * whole reply frame as exec_request wrote it, in key order of the shards) into
 * one reply for request (opcode RANGE, request_id): kvs merged in key order
 * (descending for sort_order DESCEND with target KEY), at most limit (0: all),
 * count = the sum, more = a shard's more or the limit cut some off;
 * header.shard = CODEC_SHARD_NONE and header.revision = 0 (protocol.md). If a
 * part is an error reply, that error is the answer (its status, detail and
 * message, shard set to the failing shard), and a part that does not decode is
 * INTERNAL. A merged reply over x->reply_frame_size_max is REPLY_TOO_LARGE.
 * Parts sorted by other than the key come from one shard only (the router
 * refuses the rest as CROSS_SHARD): part_count <= 1 then. Returns 0 or -1 (out
 * could not grow). */
int exec_merge_ranges(struct exec *x, u64 request_id, const struct codec_range_request *req,
                      const struct span *parts, u32 part_count, struct buf *out);

#endif
