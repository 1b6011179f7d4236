/*
 * mvcc_int.h — the MVCC store's internals, shared by core/mvcc*.c only.
 *
 * Record: one version of one key, one slab object, no padding:
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    1 flags: bit 0 TOMBSTONE, bit 1 LEASE, bit 2 OLDER, bit 3 FIRST
 *        1  var key_len (varint)
 *        .  key key bytes
 *        .  var mod_revision (varint)
 *        .  var version (varint)                  absent if TOMBSTONE or FIRST
 *        .  var mod_revision - create_revision    absent if TOMBSTONE or FIRST
 *        .  var lease (varint)                    present if LEASE
 *        .  var value_len (varint)                absent if TOMBSTONE
 *        .    4 older: ref of the next-older version, little-endian
 *                                                 present if OLDER (may be 0)
 *        .  val value bytes                       absent if TOMBSTONE
 *
 * FIRST marks the version that created its key (version 1, create_revision
 * = mod_revision): the common case of coordination data costs no bytes for
 * either field. With 16-byte keys, 256-byte values and revisions below 2^21
 * a first version is 1+1+16+3+2+256 = 279 bytes, which the slab rounds to 280.
 * The key leads the record so that the B+tree's key_of reads two bytes of
 * header before it reaches the key. OLDER is a fixed 4 bytes so compaction
 * can cut a chain in place without changing the record's size.
 *
 * Chains: the tree maps a key to its newest record; each record's older ref
 * leads to the previous version, mod_revision strictly decreasing. A key
 * stays in the tree while any version of it is held, tombstones included.
 */
#ifndef KEEL_CORE_MVCC_INT_H
#define KEEL_CORE_MVCC_INT_H

#include "core/assert.h"
#include "core/buf.h"
#include "core/mvcc.h"

#define MVCC_F_TOMBSTONE 0x01u
#define MVCC_F_LEASE     0x02u
#define MVCC_F_OLDER     0x04u
#define MVCC_F_FIRST     0x08u
#define MVCC_F_ALL       0x0fu

/* A record decoded: spans borrow the record's bytes. */
struct mvcc_rec {
    u8 flags;
    struct span key;
    struct span value;
    i64 mod_revision;
    i64 create_revision;
    i64 version;
    i64 lease;
    arena_ref older;
    u32 older_offset; /* where the older field sits (valid if OLDER) */
    u32 size;         /* encoded size in bytes */
};

/* Undo entry of an open batch: the key's head before and after the write. */
struct mvcc_undo {
    arena_ref rec_new;
    arena_ref rec_old; /* 0 if the key was not in the tree */
};

struct mvcc_counters {
    u64 keys_live;
    u64 records;
    u64 key_bytes;
    u64 value_bytes;
};

struct mvcc {
    struct mvcc_config config;
    struct arena arena;
    struct slab slab;
    struct btree tree;
    i64 revision;
    i64 compact_revision;
    struct mvcc_counters counters;
    /* The open batch. */
    bool batch_open;
    bool batch_implicit;
    i64 batch_revision;
    u32 batch_ops;
    struct mvcc_counters batch_counters; /* counters at batch begin */
    struct mvcc_undo *undo;              /* heap; capacity batch_ops_max */
    u32 undo_len;
    /* Range results. */
    struct mvcc_kv *scratch; /* heap, grown as needed and kept */
    size_t scratch_cap;
    /* The compaction job. */
    bool compact_running;
    bool compact_has_cursor;
    u8 *compact_cursor; /* heap, key_size_max bytes */
    size_t compact_cursor_len;
};

void mvcc_rec_decode(const struct mvcc *m, arena_ref ref, struct mvcc_rec *r);
size_t mvcc_rec_size(const struct mvcc_rec *r);
/* Allocates and writes a record from r's fields (size is computed). */
int mvcc_rec_write(struct mvcc *m, const struct mvcc_rec *r, arena_ref *ref);
void mvcc_rec_free(struct mvcc *m, arena_ref ref);
/* Sets the older ref of a record in place (the record must have OLDER). */
void mvcc_rec_set_older(struct mvcc *m, arena_ref ref, arena_ref older);
void mvcc_rec_to_kv(const struct mvcc_rec *r, struct mvcc_kv *kv, bool keys_only);

/* Checks a key (non-empty, within key_size_max). */
int mvcc_key_valid(const struct mvcc *m, struct span key);
/* True when key lies in the request's [key, range_end) (range_end conventions
 * as in mvcc_range_req). */
bool mvcc_in_range(struct span key, struct span start, struct span range_end);

#endif
