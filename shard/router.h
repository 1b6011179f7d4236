/*
 * router.h — the versioned shard map and what the thin router does with it:
 * key -> shard, range -> shards, a k-way merge of per-shard range results, and
 * the cross-shard refusal of multi-key requests.
 *
 * The map (what the SHARD_MAP reply carries, see net/codec.h and
 * proto-spec/protocol.md): the key space is cut by split keys into
 * shard_count contiguous ranges. Range i (in key order) is
 * [split[i-1], split[i]), where split[-1] is the start of the key space and
 * split[shard_count-1] its end; range i is owned by shard shard_of[i]. In the
 * default map shard_of[i] = i, so shard i owns [split[i-1], split[i]) as
 * design.md says; the indirection is there so a later online move of a range
 * changes an entry and the version, not the shard numbering. Keys compare as
 * btree_key_cmp does (memcmp, then length), the store's own order.
 *
 * Invariants (router_map_check): 1 <= shard_count <= ROUTER_SHARDS_MAX; split
 * keys non-empty, at most ROUTER_SPLIT_SIZE_MAX bytes, strictly increasing;
 * shard_of a permutation of 0 .. shard_count-1. version grows on every change.
 *
 * Range conventions are etcd's (as mvcc_range_req and the RANGE request):
 * range_end empty = the key alone; range_end "\0" = every key >= key; else
 * [key, range_end), which must be > key.
 *
 * Contract:
 *  - A map is a plain value (no pointers inside): copying it is how a shard
 *    takes its own copy; it is read by its owner thread only. Fixed size, no
 *    allocation anywhere in this module.
 *  - Errors: KEEL_EINVALID (malformed map or range), KEEL_EKEY_EMPTY,
 *    CODEC_S_CROSS_SHARD (a request that must run on one shard touches more).
 */
#ifndef KEEL_SHARD_ROUTER_H
#define KEEL_SHARD_ROUTER_H

#include "core/mvcc.h"
#include "core/types.h"
#include "net/codec_gen.h"

#define ROUTER_SHARDS_MAX       CODEC_SHARDS_MAX          /* as many as a ShardMap reply may list */
#define ROUTER_SPLIT_SIZE_MAX   64u                       /* bytes of one split key */
#define ROUTER_SPLIT_BYTES_MAX  (ROUTER_SHARDS_MAX * 16u) /* all split keys together */
#define ROUTER_MERGE_INPUTS_MAX ROUTER_SHARDS_MAX

struct router_map {
    u64 version;
    u32 shard_count;
    u32 split_bytes_used;
    u32 split_off[ROUTER_SHARDS_MAX]; /* split i is split_pool[off[i] .. off[i]+len[i]) */
    u16 split_len[ROUTER_SHARDS_MAX];
    u16 shard_of[ROUTER_SHARDS_MAX]; /* owner of range i (key order) */
    u8 split_pool[ROUTER_SPLIT_BYTES_MAX];
};

/* Builds a map from shard_count - 1 split keys (strictly increasing) and the
 * owner of each range (NULL: range i -> shard i). KEEL_OK or KEEL_EINVALID
 * (map untouched). */
int router_map_init(struct router_map *m, u64 version, u32 shard_count, const struct span *splits,
                    const u16 *shard_of);

/* The default map for shard_count shards (version 1): see router.c for the
 * key shapes it spreads and why. KEEL_OK, or KEEL_EINVALID for a bad count. */
int router_map_default(struct router_map *m, u32 shard_count);

/* Split key i (0 .. shard_count - 2). */
struct span router_split(const struct router_map *m, u32 i);

/* Range i's bounds as SHARD_MAP states them: start empty for the first range,
 * end empty for the last. */
void router_range_bounds(const struct router_map *m, u32 range, struct span *start,
                         struct span *end);

/* The range (key-order index) holding key, and its owner shard. key non-empty. */
u32 router_range_of_key(const struct router_map *m, struct span key);
u32 router_shard_of_key(const struct router_map *m, struct span key);

/* The shards a range touches, in key order. */
struct router_shards {
    u32 count;
    u32 range_first; /* key-order index of the first range touched */
    u16 shard[ROUTER_SHARDS_MAX];
};

/* KEEL_OK, KEEL_EKEY_EMPTY, or KEEL_EINVALID (range_end <= key and not "\0"). */
int router_range_shards(const struct router_map *m, struct span key, struct span range_end,
                        struct router_shards *out);

/* A RANGE on the router port: the shards to ask, or CODEC_S_CROSS_SHARD when
 * it touches several shards and reads at a past revision (revision != 0) or
 * sorts by other than the key (protocol.md, RANGE). */
int router_range_plan(const struct router_map *m, const struct mvcc_range_req *req,
                      struct router_shards *out);

/* One key range a multi-key request names (a compare, an op, a delete). */
struct router_key_range {
    struct span key;
    struct span range_end; /* etcd's conventions */
};

/* A request that must run on one shard (TXN: every compare and op; DELETE_RANGE:
 * its range): *shard gets that shard. CODEC_S_CROSS_SHARD if the ranges touch
 * more than one shard; KEEL_EINVALID/KEEL_EKEY_EMPTY for a malformed range or
 * count == 0. */
int router_single_shard(const struct router_map *m, const struct router_key_range *ranges,
                        u32 count, u32 *shard);

/* One shard's range result, kvs sorted by key in the merge's order. */
struct router_merge_input {
    const struct mvcc_kv *kvs;
    size_t kvs_len;
    i64 count; /* the shard's count (before filters and limit) */
    bool more; /* the shard's own limit cut keys off */
};

struct router_merge_result {
    size_t kvs_len; /* kvs written to out */
    i64 count;      /* sum of the inputs' counts */
    bool more;      /* matching keys were left out (by limit, or by a shard's limit) */
};

/* Merges inputs (each sorted ascending by key, or descending for
 * MVCC_SORT_DESCEND) into out, in that order, at most limit kvs (0: no limit)
 * and at most out_cap. Spans in out borrow the inputs. Cost O(inputs) per kv
 * written. KEEL_OK, or KEEL_EINVALID (limit < 0, too many inputs, or out_cap
 * below what must be written). */
int router_merge(const struct router_merge_input *inputs, u32 input_count, i64 limit,
                 enum mvcc_sort_order order, struct mvcc_kv *out, size_t out_cap,
                 struct router_merge_result *result);

/* The map's invariants; true if sound. For asserts and tests. */
bool router_map_check(const struct router_map *m);

#endif
