/*
 * mvcc.h — one shard's multi-version key-value store, with etcd v3's semantics.
 *
 * The store keeps, per key, a chain of versions (newest first). Each version
 * is one record in the shard's slab holding the key, its metadata and its
 * value (layout: the byte table in mvcc_int.h); the B+tree maps each key to
 * its newest record. The store has one revision counter: every batch of
 * writes that changes something gets the next revision, and all writes of a
 * batch share it.
 *
 * Semantics (as etcd v3, per shard):
 *  - A live key has create_revision (revision of the put that created it),
 *    mod_revision (revision of its latest put), version (1 at creation, +1
 *    per put) and lease (0 = none).
 *  - A delete writes a tombstone; the key reads as absent from that revision
 *    on. A put after a delete creates the key anew (version 1).
 *  - mvcc_range reads at any revision in [compact_revision, revision]; older
 *    is KEEL_ECOMPACTED, newer KEEL_EFUTURE_REV.
 *  - Compaction at rev keeps, per key, the newest version with mod_revision
 *    <= rev (dropped too if it is a tombstone) and everything newer, and frees
 *    the rest. Reads at rev itself still work.
 *  - A batch (mvcc_batch_begin .. commit) applies atomically: all its writes
 *    share one revision, or mvcc_batch_abort undoes all of them. A batch that
 *    writes nothing does not consume a revision. Writing one key twice in a
 *    batch is KEEL_EDUPLICATE_KEY (etcd refuses such transactions too).
 *    mvcc_put and mvcc_delete_range outside a batch run as a batch of one.
 *    Inside a batch, a range at revision 0 (current) sees the batch's own
 *    writes, as the later ops of an etcd transaction see the earlier ones;
 *    the result's revision is still the committed one.
 *
 * Contract:
 *  - Single-threaded: the owning shard thread only.
 *  - Spans returned in results borrow store memory: valid until the next write,
 *    compaction step or mvcc_destroy.
 *  - Errors leave the store as it was before the call (a failed write inside
 *    a batch leaves the batch's earlier writes in place; abort to drop them).
 */
#ifndef KEEL_CORE_MVCC_H
#define KEEL_CORE_MVCC_H

#include "core/arena.h"
#include "core/btree.h"
#include "core/slab.h"
#include "core/types.h"

struct mvcc_config {
    u64 memory_bytes_max; /* arena budget; default 8 GiB */
    u32 key_size_max;     /* default 4096 */
    u32 value_size_max;   /* default 1.5 MiB (etcd's request limit) */
    u32 batch_ops_max;    /* writes (puts + deletes, counting each key) per batch; default 10000 */
};

void mvcc_config_default(struct mvcc_config *c);

struct mvcc_kv {
    struct span key;
    struct span value; /* empty when keys_only */
    i64 create_revision;
    i64 mod_revision;
    i64 version;
    i64 lease;
};

enum mvcc_sort_order { MVCC_SORT_NONE = 0, MVCC_SORT_ASCEND = 1, MVCC_SORT_DESCEND = 2 };
enum mvcc_sort_target {
    MVCC_SORT_KEY = 0,
    MVCC_SORT_VERSION = 1,
    MVCC_SORT_CREATE = 2,
    MVCC_SORT_MOD = 3,
    MVCC_SORT_VALUE = 4,
};

struct mvcc_range_req {
    struct span key;       /* start */
    struct span range_end; /* empty: key alone; "\0": every key >= key; else [key, range_end) */
    i64 revision;          /* 0: current */
    i64 limit;             /* 0: no limit */
    bool keys_only;
    bool count_only;
    enum mvcc_sort_order sort_order;   /* NONE: key order for target KEY, else ASCEND (etcd) */
    enum mvcc_sort_target sort_target; /* ties in any target are broken by key, ascending */
    i64 min_mod_revision;              /* 0: no filter; filters apply after the count */
    i64 max_mod_revision;
    i64 min_create_revision;
    i64 max_create_revision;
};

/* Result of a range: kvs owned by the store's scratch space, reused by the next
 * mvcc_range; count = keys in the range at that revision before filters and
 * limit (etcd's count); more = the limit cut matching keys off (always false
 * for count_only, which returns no kvs, as in etcd). */
struct mvcc_range_result {
    struct mvcc_kv *kvs;
    size_t kvs_len;
    i64 count;
    bool more;
    i64 revision; /* the store's revision when read */
};

struct mvcc_stats {
    i64 revision;
    i64 compact_revision;
    u64 keys_live;   /* keys whose newest version is not a tombstone */
    u64 keys_tree;   /* keys in the tree (live + deleted, not yet compacted) */
    u64 records;     /* versions held (including tombstones) */
    u64 key_bytes;   /* bytes of keys of live keys' newest versions */
    u64 value_bytes; /* bytes of values of live keys' newest versions */
    u64 tree_leaves; /* B+tree nodes */
    u64 tree_inners;
    u64 tree_bytes; /* slab bytes of nodes and separators (the rest is records) */
    struct slab_stats memory;
};

struct mvcc; /* opaque; see mvcc_int.h */

/* Creates an empty store at revision 1 (as etcd starts). NULL on ENOMEM. */
struct mvcc *mvcc_create(const struct mvcc_config *config);
void mvcc_destroy(struct mvcc *m);

i64 mvcc_revision(const struct mvcc *m);
i64 mvcc_compact_revision(const struct mvcc *m);

int mvcc_batch_begin(struct mvcc *m);
/* Ends the batch; *revision gets the revision its writes carry (the unchanged
 * current revision if it wrote nothing). */
int mvcc_batch_commit(struct mvcc *m, i64 *revision);
void mvcc_batch_abort(struct mvcc *m);
bool mvcc_batch_open(const struct mvcc *m);

/* Puts key = value. prev (nullable) receives the previous live version if
 * there was one (*had_prev says so); its spans stay valid until the batch
 * ends. */
int mvcc_put(struct mvcc *m, struct span key, struct span value, i64 lease, struct mvcc_kv *prev,
             bool *had_prev);

/* Called with each key deleted, before it is deleted; return nonzero to stop
 * reporting (deletion goes on). */
typedef int (*mvcc_kv_fn)(void *ctx, const struct mvcc_kv *kv);

/* Deletes every live key in [key, range_end) (range_end as in mvcc_range_req).
 * *deleted gets how many (0 after an error); each deleted key's last version
 * is passed to prev_fn. */
int mvcc_delete_range(struct mvcc *m, struct span key, struct span range_end, u64 *deleted,
                      mvcc_kv_fn prev_fn, void *prev_ctx);

/* Errors: KEEL_EKEY_EMPTY, KEEL_EKEY_TOO_LARGE (key over key_size_max),
 * KEEL_EINVALID (negative revision or limit, unknown sort), KEEL_EFUTURE_REV,
 * KEEL_ECOMPACTED, checked in that order; KEEL_ENOMEM if the result array
 * cannot grow. */
int mvcc_range(struct mvcc *m, const struct mvcc_range_req *req, struct mvcc_range_result *out);

/* For tests: mvcc_range without the single-key fast path (a single key goes
 * through the general range walk). Same contract and results as mvcc_range. */
int mvcc_range_general(struct mvcc *m, const struct mvcc_range_req *req,
                       struct mvcc_range_result *out);

/* Compaction: sets the compact revision at once (reads below it fail from now
 * on), then frees superseded versions in bounded steps. Starting a job while
 * one runs replaces it (the new job covers whatever the old one left). mvcc_compact_step
 * processes at most keys_max keys and returns true when the job is done.
 * mvcc_compact runs a job to completion. rev must be in (compact_revision,
 * revision]; else KEEL_ECOMPACTED or KEEL_EFUTURE_REV. No batch may be open. */
int mvcc_compact_start(struct mvcc *m, i64 rev);
bool mvcc_compact_step(struct mvcc *m, u64 keys_max);
int mvcc_compact(struct mvcc *m, i64 rev);

void mvcc_stats(const struct mvcc *m, struct mvcc_stats *out);

/* The end of the range of keys starting with prefix (etcd's GetPrefixRangeEnd):
 * prefix with its last non-0xff byte incremented and what follows dropped;
 * "\0" (every key) when prefix is all 0xff. Writes into dst (room for
 * prefix.len bytes, at least 1). */
struct span mvcc_prefix_end(struct span prefix, u8 *dst);

/* Walks every key, chain and the tree; true if sound. For tests. */
bool mvcc_check(const struct mvcc *m);

#endif
