/*
 * btree_check.c — the B+tree walker used by tests and asserts: verifies every
 * invariant listed in btree_int.h, plus the tree's counters. O(n).
 */
#include "core/btree_int.h"

#include <stdio.h>

struct btree_walk {
    const struct btree *t;
    arena_ref prev_leaf;
    u64 count;
    u64 leaves;
    u64 inners;
    u64 separator_bytes;
    const char *why; /* first failure, for the message */
};

static bool walk_fail(struct btree_walk *w, const char *why)
{
    if (w->why == NULL) w->why = why;
    return false;
}

/* Checks one key of a node: prefix, head, order, and the node's bounds. */
static bool walk_key(struct btree_walk *w, const struct bnode_hdr *h, u64 head, struct span key,
                     struct span prev, bool has_prev, const struct span *lo, const struct span *hi)
{
    if (key.len == 0) return walk_fail(w, "empty key");
    if (key.len < h->prefix_len || memcmp(key.ptr, h->prefix, h->prefix_len) != 0) {
        return walk_fail(w, "key does not share the node prefix");
    }
    if (head != btree_head(key, h->prefix_len)) return walk_fail(w, "stale head");
    if (has_prev && btree_key_cmp(prev, key) >= 0) return walk_fail(w, "keys out of order");
    if (lo != NULL && btree_key_cmp(key, *lo) < 0) return walk_fail(w, "key below its bound");
    if (hi != NULL && btree_key_cmp(key, *hi) >= 0) return walk_fail(w, "key above its bound");
    return true;
}

static bool walk_leaf(struct btree_walk *w, arena_ref ref, const struct span *lo,
                      const struct span *hi, bool is_root)
{
    const struct bleaf *l = (const struct bleaf *)slab_ptr(w->t->slab, ref);
    if (l->h.kind != BTREE_KIND_LEAF) return walk_fail(w, "leaf kind");
    if (l->h.count > BTREE_LEAF_CAP) return walk_fail(w, "leaf over capacity");
    if (l->h.count == 0 && !is_root) return walk_fail(w, "empty non-root leaf");
    if (l->h.prefix_len > BTREE_PREFIX_MAX) return walk_fail(w, "prefix too long");
    if (l->h.prev != w->prev_leaf) return walk_fail(w, "leaf prev link");
    if (w->prev_leaf != 0 && btree_leaf(w->t, w->prev_leaf)->h.next != ref) {
        return walk_fail(w, "leaf next link");
    }
    struct span prev = {0};
    for (u32 i = 0; i < l->h.count; i++) {
        if (l->refs[i] == 0) return walk_fail(w, "null entry ref");
        struct span key = btree_leaf_key(w->t, l, i);
        if (!walk_key(w, &l->h, l->heads[i], key, prev, i > 0, lo, hi)) return false;
        prev = key;
    }
    w->prev_leaf = ref;
    w->count += l->h.count;
    w->leaves++;
    return true;
}

static bool walk_node(struct btree_walk *w, arena_ref ref, u32 level, const struct span *lo,
                      const struct span *hi, bool is_root);

static bool walk_inner(struct btree_walk *w, arena_ref ref, u32 level, const struct span *lo,
                       const struct span *hi, bool is_root)
{
    const struct binner *n = (const struct binner *)slab_ptr(w->t->slab, ref);
    if (n->h.kind != BTREE_KIND_INNER) return walk_fail(w, "inner kind");
    if (n->h.count > BTREE_INNER_CAP) return walk_fail(w, "inner over capacity");
    if (is_root && n->h.count == 0) return walk_fail(w, "inner root with one kid");
    if (n->h.prefix_len > BTREE_PREFIX_MAX) return walk_fail(w, "prefix too long");
    struct span prev = {0};
    for (u32 i = 0; i < n->h.count; i++) {
        struct span key = btree_sep_key(w->t, n->seps[i]);
        if (!walk_key(w, &n->h, n->heads[i], key, prev, i > 0, lo, hi)) return false;
        w->separator_bytes += slab_alloc_size(2 + key.len);
        prev = key;
    }
    for (u32 i = 0; i <= n->h.count; i++) {
        struct span klo, khi;
        if (i > 0) klo = btree_sep_key(w->t, n->seps[i - 1]);
        if (i < n->h.count) khi = btree_sep_key(w->t, n->seps[i]);
        if (n->kids[i] == 0) return walk_fail(w, "null kid");
        if (!walk_node(w, n->kids[i], level - 1, i > 0 ? &klo : lo, i < n->h.count ? &khi : hi,
                       false)) {
            return false;
        }
    }
    w->inners++;
    return true;
}

static bool walk_node(struct btree_walk *w, arena_ref ref, u32 level, const struct span *lo,
                      const struct span *hi, bool is_root)
{
    if (level == 1) return walk_leaf(w, ref, lo, hi, is_root);
    return walk_inner(w, ref, level, lo, hi, is_root);
}

static bool walk_totals(struct btree_walk *w)
{
    const struct btree *t = w->t;
    if (w->prev_leaf != t->last) return walk_fail(w, "last leaf");
    if (w->count != t->count) return walk_fail(w, "entry count");
    if (w->leaves != t->leaves || w->inners != t->inners) return walk_fail(w, "node count");
    if (w->separator_bytes != t->separator_bytes) return walk_fail(w, "separator bytes");
    return true;
}

bool btree_check(const struct btree *t)
{
    struct btree_walk w = {.t = t};
    bool ok;
    if (t->root == 0) {
        ok = t->height == 0 && t->count == 0 && t->first == 0 && t->last == 0 && t->leaves == 0 &&
             t->inners == 0 && t->separator_bytes == 0;
        if (!ok) w.why = "empty tree counters";
    } else {
        ok = t->height >= 1 && t->height <= BTREE_HEIGHT_MAX;
        if (!ok) w.why = "height";
        if (ok && t->first == 0) ok = walk_fail(&w, "first leaf");
        if (ok) ok = walk_node(&w, t->root, t->height, NULL, NULL, true);
        if (ok) ok = walk_totals(&w);
        if (ok && btree_leaf(t, t->first)->h.prev != 0) ok = walk_fail(&w, "first leaf prev");
    }
    if (!ok) fprintf(stderr, "btree_check: %s\n", w.why);
    return ok;
}
