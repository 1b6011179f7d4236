/*
 * btree.h — an ordered map from byte-string keys to 32-bit refs, as a B+tree
 * whose nodes live in a shard's slab.
 *
 * The tree does not own the keys of its entries: each entry is a ref to an
 * object of the caller's (the MVCC store's record), and the caller tells the
 * tree how to read a key back from such a ref (key_of). The tree stores, per
 * entry, the ref and an 8-byte "head" of the key (the 8 bytes after the
 * node's common prefix), so a search compares integers inside the node and
 * dereferences a record only when two heads tie. Separator keys in inner
 * nodes are the tree's own copies (shortest separators, not whole keys).
 * The node layout is the byte table in btree_int.h.
 *
 * Order: keys compare as unsigned bytes, then by length (memcmp order, "a" <
 * "a\0" < "b"), as etcd orders keys.
 *
 * Contract:
 *  - Single-threaded: the owning shard thread only.
 *  - Entry refs are refs into the tree's slab (btree_iter_prefetch reads
 *    through them); the tree never writes through them.
 *  - Keys are 1 .. BTREE_KEY_SIZE_MAX bytes. The tree never stores an entry
 *    whose key_of() differs from the key it was inserted under; the caller
 *    may swap the ref of an entry (btree_iter_set_ref) for another ref whose
 *    key is equal.
 *  - Any insert or remove invalidates every iterator; btree_iter_set_ref
 *    does not.
 *  - Errors: KEEL_ENOMEM when the slab is spent (the tree is unchanged).
 *  - btree_check() walks the whole tree (order, fill, heads, prefixes, leaf
 *    chain, count) and is meant for tests and asserts, not the hot path.
 */
#ifndef KEEL_CORE_BTREE_H
#define KEEL_CORE_BTREE_H

#include "core/slab.h"
#include "core/types.h"

#define BTREE_KEY_SIZE_MAX 65535u
#define BTREE_LEAF_CAP     80 /* entries per leaf (btree_int.h lays the leaf out) */
#define BTREE_HEIGHT_MAX   24 /* a fanout >= 2 tree this tall holds 2^23 leaves */

/* Reads back the key of an entry's ref. Must be pure and cheap. */
typedef struct span (*btree_key_of_fn)(void *ctx, arena_ref ref);

struct btree {
    struct slab *slab;
    btree_key_of_fn key_of;
    void *key_ctx;
    arena_ref root;  /* 0 when empty */
    arena_ref first; /* leftmost leaf, 0 when empty */
    arena_ref last;  /* rightmost leaf */
    u32 height;      /* 0 when empty, 1 when the root is a leaf */
    u64 count;       /* entries */
    u64 leaves;
    u64 inners;
    u64 separator_bytes; /* slab bytes held by separator copies */
};

/* Where a key is, or would go: the root-to-leaf path of a search and the slot
 * in the leaf. Filled by btree_find; valid until the tree next changes
 * (slab allocations of the caller's own objects do not change it). */
struct btree_pos {
    arena_ref node[BTREE_HEIGHT_MAX];
    u32 index[BTREE_HEIGHT_MAX]; /* index[d] = child slot taken in node[d]; in the leaf, the
                                    entry's slot (or where it would be inserted) */
    u32 depth;                   /* node[depth-1] is the leaf; 0 for an empty tree */
    bool found;
};

/* A position in the tree: a leaf and a slot in it. */
struct btree_iter {
    const struct btree *tree;
    arena_ref leaf; /* 0 when past either end */
    u32 index;
};

void btree_init(struct btree *t, struct slab *s, btree_key_of_fn key_of, void *key_ctx);
/* Frees every node (not the entries' objects: those are the caller's). */
void btree_destroy(struct btree *t);

/* The ref stored under key, or 0. */
arena_ref btree_get(const struct btree *t, struct span key);

/* The slot holding key's ref inside its leaf, or NULL if key is absent: one
 * descent for read-modify-write. Valid until the next insert or remove; write
 * into it only a ref whose key equals key. */
arena_ref *btree_slot(const struct btree *t, struct span key);

/* One descent for read-modify-write: returns the slot of key's ref (as
 * btree_slot) or NULL, and fills *pos for a following btree_insert_at. */
arena_ref *btree_find(const struct btree *t, struct span key, struct btree_pos *pos);

/* Inserts (key, ref) at a position btree_find returned for key (absent), with
 * no change to the tree in between. KEEL_OK or KEEL_ENOMEM (tree unchanged). */
int btree_insert_at(struct btree *t, struct btree_pos *pos, struct span key, arena_ref ref);

/* Inserts (key, ref) if key is absent: returns KEEL_OK with *existing = 0.
 * If key is present, changes nothing and returns KEEL_OK with *existing set to
 * the stored ref. KEEL_ENOMEM if a split could not get a node. */
int btree_insert(struct btree *t, struct span key, arena_ref ref, arena_ref *existing);

/* Removes key; returns its ref, or 0 if absent. Never fails: merging nodes
 * frees memory and needs none. */
arena_ref btree_remove(struct btree *t, struct span key);

/* Iteration. Seek functions leave it->leaf = 0 when no entry qualifies. */
void btree_iter_first(struct btree_iter *it, const struct btree *t);
void btree_iter_last(struct btree_iter *it, const struct btree *t);
/* First entry with key >= key. */
void btree_iter_seek_ge(struct btree_iter *it, const struct btree *t, struct span key);
/* Last entry with key < key. */
void btree_iter_seek_lt(struct btree_iter *it, const struct btree *t, struct span key);
void btree_iter_next(struct btree_iter *it);
void btree_iter_prev(struct btree_iter *it);

static inline bool btree_iter_valid(const struct btree_iter *it)
{
    return it->leaf != 0;
}

arena_ref btree_iter_ref(const struct btree_iter *it);
struct span btree_iter_key(const struct btree_iter *it);
/* Replaces the ref at the iterator; the new ref's key must equal the old. */
void btree_iter_set_ref(struct btree_iter *it, arena_ref ref);

/* Hints the CPU to fetch the object of the entry `ahead` steps forward (or
 * backward) in the iterator's leaf, so a scan overlaps its cache misses
 * instead of taking them one after another. No effect past the leaf's end. */
void btree_iter_prefetch(const struct btree_iter *it, u32 ahead, bool backward);

/* Number of entries with start <= key < end; end.len == 0 means "to the end". */
u64 btree_count_range(const struct btree *t, struct span start, struct span end);

/* Slab bytes the tree holds: its nodes and separator copies. */
u64 btree_memory_bytes(const struct btree *t);

/* Compares two keys in the tree's order (memcmp, then length). */
int btree_key_cmp(struct span a, struct span b);

/* Full structural check; true if sound. O(n), touches every entry. */
bool btree_check(const struct btree *t);

#endif
