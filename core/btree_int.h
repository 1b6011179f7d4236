/*
 * btree_int.h — node layout and helpers shared by core/btree*.c only.
 *
 * Nodes are slab objects addressed by arena refs. Every node starts with the
 * same 64-byte header, then arrays (structure of arrays, so a search scans a
 * dense run of 8-byte heads).
 *
 * Node header (both kinds), 64 bytes:
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    1 kind: 1 = leaf, 2 = inner
 *        1    1 prefix_len: bytes every key of this node shares (0..48)
 *        2    2 count: entries (leaf) or separators (inner; children = count+1)
 *        4    4 next: ref of the next leaf in key order (leaves only; 0 = none)
 *        8    4 prev: ref of the previous leaf (leaves only; 0 = none)
 *       12    4 reserved, zero
 *       16   48 prefix: the prefix_len shared bytes
 *
 * Leaf, 1024 bytes (BTREE_LEAF_CAP = 80 entries):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0   64 header
 *       64  640 heads[80]: u64, bytes [prefix_len, prefix_len+8) of each key,
 *               big-endian, zero-padded, so integer order = key order up to ties
 *      704  320 refs[80]: arena ref of each entry (the caller's record)
 *
 * Inner, 1016 bytes (BTREE_INNER_CAP = 59 separators):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0   64 header
 *       64  472 heads[59]: u64 heads of the separators, as in leaves
 *      536  236 seps[59]: refs of separator objects (see below)
 *      772  240 kids[60]: child refs; kids[i] holds keys < seps[i],
 *               kids[i+1] keys >= seps[i]
 *
 * Separator object (tree-owned, slab-allocated, 2 + len bytes):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    2 len (u16, little-endian), 1..65535
 *        2  len key bytes
 *
 * A leaf split stores the shortest separator that parts the two halves (the
 * right half's first key cut one byte after the common prefix with the left
 * half's last key), not a whole key. An inner split moves its middle
 * separator up unchanged.
 *
 * Invariants (btree_check verifies all):
 *  - every key of a node starts with its prefix; heads[i] = head_of(key i);
 *  - keys strictly increase within a node and along the leaf chain;
 *  - kids[i]'s keys are >= seps[i-1] and < seps[i];
 *  - all leaves are at depth height; leaves other than the root hold >= 1
 *    entry; inner nodes hold >= 1 child; the root, if inner, >= 2 children.
 */
#ifndef KEEL_CORE_BTREE_INT_H
#define KEEL_CORE_BTREE_INT_H

#include "core/assert.h"
#include "core/btree.h"

#include <string.h>

#define BTREE_PREFIX_MAX 48
#define BTREE_INNER_CAP  59
#define BTREE_KIND_LEAF  1
#define BTREE_KIND_INNER 2

struct bnode_hdr {
    u8 kind;
    u8 prefix_len;
    u16 count;
    arena_ref next;
    arena_ref prev;
    u32 reserved;
    u8 prefix[BTREE_PREFIX_MAX];
};

struct bleaf {
    struct bnode_hdr h;
    u64 heads[BTREE_LEAF_CAP];
    arena_ref refs[BTREE_LEAF_CAP];
};

struct binner {
    struct bnode_hdr h;
    u64 heads[BTREE_INNER_CAP];
    arena_ref seps[BTREE_INNER_CAP];
    arena_ref kids[BTREE_INNER_CAP + 1];
};

static_assert(sizeof(struct bnode_hdr) == 64, "header is 64 bytes");
static_assert(sizeof(struct bleaf) == 1024, "leaf is 1024 bytes");
static_assert(sizeof(struct binner) == 1016, "inner is 1016 bytes");
static_assert(offsetof(struct bleaf, refs) == 704, "leaf refs at 704");
static_assert(offsetof(struct binner, seps) == 536, "inner seps at 536");
static_assert(offsetof(struct binner, kids) == 772, "inner kids at 772");

static inline struct bnode_hdr *btree_node(const struct btree *t, arena_ref ref)
{
    ASSERT(ref != 0);
    return (struct bnode_hdr *)slab_ptr(t->slab, ref);
}

static inline struct bleaf *btree_leaf(const struct btree *t, arena_ref ref)
{
    struct bleaf *l = (struct bleaf *)slab_ptr(t->slab, ref);
    DEBUG_ASSERT(l->h.kind == BTREE_KIND_LEAF);
    return l;
}

static inline struct binner *btree_inner(const struct btree *t, arena_ref ref)
{
    struct binner *n = (struct binner *)slab_ptr(t->slab, ref);
    DEBUG_ASSERT(n->h.kind == BTREE_KIND_INNER);
    return n;
}

static inline struct span btree_sep_key(const struct btree *t, arena_ref sep)
{
    const u8 *p = slab_ptr(t->slab, sep);
    return span_make(p + 2, (size_t)p[0] | ((size_t)p[1] << 8));
}

/* The 8 key bytes after the first p, big-endian, zero-padded. */
static inline u64 btree_head(struct span key, u32 p)
{
    if (key.len >= p + 8) {
        u64 v;
        memcpy(&v, key.ptr + p, 8);
        return __builtin_bswap64(v);
    }
    u64 h = 0;
    for (size_t i = p; i < key.len; i++) h |= (u64)key.ptr[i] << (56 - 8 * (i - p));
    return h;
}

static inline struct span btree_leaf_key(const struct btree *t, const struct bleaf *l, u32 i)
{
    ASSERT(i < l->h.count);
    return t->key_of(t->key_ctx, l->refs[i]);
}

/* First index in [0, count) whose key is >= key (count if none); *eq when
 * that key equals key. heads/key_at describe the node's entries. */
u32 btree_node_search(const struct btree *t, const struct bnode_hdr *h, const u64 *heads,
                      const arena_ref *refs, bool leaf, struct span key, bool *eq);

/* Recomputes prefix and heads of a node from its keys. */
void btree_leaf_refresh(const struct btree *t, struct bleaf *l);
void btree_inner_refresh(const struct btree *t, struct binner *n);

/* Length of the longest common prefix of a and b. */
static inline size_t btree_lcp(struct span a, struct span b)
{
    size_t n = KEEL_MIN(a.len, b.len), i = 0;
    while (i < n && a.ptr[i] == b.ptr[i]) i++;
    return i;
}

#endif
