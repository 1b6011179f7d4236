/*
 * btree.c — B+tree search, iteration and node refresh. Inserts and removes
 * are in btree_write.c, the checker in btree_check.c; the node layout is in
 * btree_int.h.
 */
#include "core/btree_int.h"

int btree_key_cmp(struct span a, struct span b)
{
    size_t n = KEEL_MIN(a.len, b.len);
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0) return c;
    return a.len < b.len ? -1 : (a.len > b.len ? 1 : 0);
}

void btree_init(struct btree *t, struct slab *s, btree_key_of_fn key_of, void *key_ctx)
{
    ASSERT(t != NULL && s != NULL);
    ASSERT(key_of != NULL);
    memset(t, 0, sizeof(*t));
    t->slab = s;
    t->key_of = key_of;
    t->key_ctx = key_ctx;
}

static void btree_free_subtree(struct btree *t, arena_ref ref, u32 level)
{
    ASSERT(level >= 1);
    if (level == 1) {
        slab_free(t->slab, ref, sizeof(struct bleaf));
        return;
    }
    struct binner *n = btree_inner(t, ref);
    for (u32 i = 0; i <= n->h.count; i++) btree_free_subtree(t, n->kids[i], level - 1);
    for (u32 i = 0; i < n->h.count; i++) {
        struct span k = btree_sep_key(t, n->seps[i]);
        slab_free(t->slab, n->seps[i], 2 + k.len);
    }
    slab_free(t->slab, ref, sizeof(struct binner));
}

void btree_destroy(struct btree *t)
{
    ASSERT(t != NULL);
    if (t->root != 0) btree_free_subtree(t, t->root, t->height);
    t->root = t->first = t->last = 0;
    t->height = 0;
    t->count = t->leaves = t->inners = t->separator_bytes = 0;
}

static struct span btree_entry_key(const struct btree *t, const arena_ref *refs, bool leaf, u32 i)
{
    return leaf ? t->key_of(t->key_ctx, refs[i]) : btree_sep_key(t, refs[i]);
}

/* Binary search over [lo, hi) where every head equals the key's head: only a
 * full comparison orders them. */
static u32 btree_search_ties(const struct btree *t, const arena_ref *refs, bool leaf, u32 lo,
                             u32 hi, struct span key, bool *eq)
{
    while (lo < hi) {
        u32 mid = lo + (hi - lo) / 2;
        int c = btree_key_cmp(btree_entry_key(t, refs, leaf, mid), key);
        if (c == 0) {
            *eq = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index whose head is >= hk (n if none). Branch-free: the halving
 * step compiles to a conditional move, because which half a random key falls
 * into is a coin toss the branch predictor loses half the time. */
static inline u32 btree_heads_lower_bound(const u64 *heads, u32 n, u64 hk)
{
    if (n == 0) return 0;
    u32 lo = 0, len = n;
    while (len > 1) { /* log2(n) steps */
        u32 half = len / 2;
        lo = heads[lo + half - 1] < hk ? lo + half : lo;
        len -= half;
    }
    lo += heads[lo] < hk;
    ASSERT(lo <= n);
    return lo;
}

u32 btree_node_search(const struct btree *t, const struct bnode_hdr *h, const u64 *heads,
                      const arena_ref *refs, bool leaf, struct span key, bool *eq)
{
    u32 n = h->count, p = h->prefix_len;
    *eq = false;
    if (p > 0) {
        int c = memcmp(key.ptr, h->prefix, KEEL_MIN(key.len, (size_t)p));
        if (c < 0 || (c == 0 && key.len < p)) return 0; /* below every key */
        if (c > 0) return n;                            /* above every key */
    }
    /* A binary search over n heads misses the cache about log2(n) times in a
     * row; asking for every line of the array first overlaps those misses. */
    for (u32 i = 0; i < n; i += 8) __builtin_prefetch(&heads[i]);
    u64 hk = btree_head(key, p);
    u32 lo = btree_heads_lower_bound(heads, n, hk);
    u32 tie_end = lo;
    while (tie_end < n && heads[tie_end] == hk) tie_end++;
    if (tie_end == lo) return lo;
    u32 i = btree_search_ties(t, refs, leaf, lo, tie_end, key, eq);
    ASSERT(i <= n);
    return i;
}

/* Descends to the leaf that would hold key. */
static arena_ref btree_descend(const struct btree *t, struct span key)
{
    ASSERT(t->root != 0);
    arena_ref ref = t->root;
    for (u32 level = t->height; level > 1; level--) {
        const struct binner *n = btree_inner(t, ref);
        bool eq;
        u32 i = btree_node_search(t, &n->h, n->heads, n->seps, false, key, &eq);
        ref = n->kids[eq ? i + 1 : i];
    }
    return ref;
}

arena_ref btree_get(const struct btree *t, struct span key)
{
    ASSERT(t != NULL);
    if (t->root == 0 || key.len == 0) return 0;
    const struct bleaf *l = btree_leaf(t, btree_descend(t, key));
    bool eq;
    u32 i = btree_node_search(t, &l->h, l->heads, l->refs, true, key, &eq);
    return eq ? l->refs[i] : 0;
}

arena_ref *btree_slot(const struct btree *t, struct span key)
{
    ASSERT(t != NULL);
    if (t->root == 0 || key.len == 0) return NULL;
    struct bleaf *l = btree_leaf(t, btree_descend(t, key));
    bool eq;
    u32 i = btree_node_search(t, &l->h, l->heads, l->refs, true, key, &eq);
    return eq ? &l->refs[i] : NULL;
}

/* ---- iteration ---------------------------------------------------------- */

void btree_iter_first(struct btree_iter *it, const struct btree *t)
{
    it->tree = t;
    it->leaf = t->first;
    it->index = 0;
    ASSERT_IMPLIES(it->leaf != 0, btree_leaf(t, it->leaf)->h.count > 0);
}

void btree_iter_last(struct btree_iter *it, const struct btree *t)
{
    it->tree = t;
    it->leaf = t->last;
    it->index = it->leaf ? btree_leaf(t, it->leaf)->h.count - 1u : 0;
}

void btree_iter_next(struct btree_iter *it)
{
    ASSERT(it->leaf != 0);
    const struct bleaf *l = btree_leaf(it->tree, it->leaf);
    if (++it->index < l->h.count) return;
    it->leaf = l->h.next;
    it->index = 0;
}

void btree_iter_prev(struct btree_iter *it)
{
    ASSERT(it->leaf != 0);
    if (it->index > 0) {
        it->index--;
        return;
    }
    const struct bleaf *l = btree_leaf(it->tree, it->leaf);
    it->leaf = l->h.prev;
    it->index = it->leaf ? btree_leaf(it->tree, it->leaf)->h.count - 1u : 0;
}

void btree_iter_seek_ge(struct btree_iter *it, const struct btree *t, struct span key)
{
    it->tree = t;
    it->leaf = 0;
    it->index = 0;
    if (t->root == 0) return;
    arena_ref ref = btree_descend(t, key);
    const struct bleaf *l = btree_leaf(t, ref);
    bool eq;
    u32 i = btree_node_search(t, &l->h, l->heads, l->refs, true, key, &eq);
    if (i < l->h.count) {
        it->leaf = ref;
        it->index = i;
    } else {
        it->leaf = l->h.next; /* every key of the next leaf is >= key */
    }
}

void btree_iter_seek_lt(struct btree_iter *it, const struct btree *t, struct span key)
{
    btree_iter_seek_ge(it, t, key);
    if (it->leaf != 0)
        btree_iter_prev(it);
    else
        btree_iter_last(it, t);
}

arena_ref btree_iter_ref(const struct btree_iter *it)
{
    ASSERT(it->leaf != 0);
    const struct bleaf *l = btree_leaf(it->tree, it->leaf);
    ASSERT(it->index < l->h.count);
    return l->refs[it->index];
}

struct span btree_iter_key(const struct btree_iter *it)
{
    return it->tree->key_of(it->tree->key_ctx, btree_iter_ref(it));
}

void btree_iter_set_ref(struct btree_iter *it, arena_ref ref)
{
    ASSERT(it->leaf != 0 && ref != 0);
    struct bleaf *l = btree_leaf(it->tree, it->leaf);
    ASSERT(it->index < l->h.count);
    DEBUG_ASSERT(btree_key_cmp(it->tree->key_of(it->tree->key_ctx, ref),
                               btree_leaf_key(it->tree, l, it->index)) == 0);
    l->refs[it->index] = ref;
}

void btree_iter_prefetch(const struct btree_iter *it, u32 ahead, bool backward)
{
    if (it->leaf == 0) return;
    const struct bleaf *l = btree_leaf(it->tree, it->leaf);
    if (backward) {
        if (it->index >= ahead)
            __builtin_prefetch(slab_ptr(it->tree->slab, l->refs[it->index - ahead]));
    } else if (it->index + ahead < l->h.count) {
        __builtin_prefetch(slab_ptr(it->tree->slab, l->refs[it->index + ahead]));
    }
}

u64 btree_count_range(const struct btree *t, struct span start, struct span end)
{
    struct btree_iter it;
    btree_iter_seek_ge(&it, t, start);
    u64 n = 0;
    while (it.leaf != 0) { /* bounded by the number of leaves in the range */
        const struct bleaf *l = btree_leaf(t, it.leaf);
        struct span last = btree_leaf_key(t, l, l->h.count - 1u);
        if (end.len == 0 || btree_key_cmp(last, end) < 0) {
            n += l->h.count - it.index;
            it.leaf = l->h.next;
            it.index = 0;
            continue;
        }
        for (u32 i = it.index; i < l->h.count; i++) {
            if (btree_key_cmp(btree_leaf_key(t, l, i), end) >= 0) break;
            n++;
        }
        break;
    }
    ASSERT(n <= t->count);
    return n;
}

u64 btree_memory_bytes(const struct btree *t)
{
    return t->leaves * slab_alloc_size(sizeof(struct bleaf)) +
           t->inners * slab_alloc_size(sizeof(struct binner)) + t->separator_bytes;
}

/* ---- prefix and heads --------------------------------------------------- */

static u32 btree_prefix_len(struct span first, struct span last)
{
    size_t p = btree_lcp(first, last);
    return (u32)KEEL_MIN(p, (size_t)BTREE_PREFIX_MAX);
}

void btree_leaf_refresh(const struct btree *t, struct bleaf *l)
{
    u32 n = l->h.count;
    ASSERT(n <= BTREE_LEAF_CAP);
    u32 p = 0;
    if (n > 0) {
        struct span first = btree_leaf_key(t, l, 0);
        p = btree_prefix_len(first, btree_leaf_key(t, l, n - 1));
        memcpy(l->h.prefix, first.ptr, p);
    }
    l->h.prefix_len = (u8)p;
    for (u32 i = 0; i < n; i++) l->heads[i] = btree_head(btree_leaf_key(t, l, i), p);
    ASSERT(l->h.prefix_len <= BTREE_PREFIX_MAX);
}

void btree_inner_refresh(const struct btree *t, struct binner *nd)
{
    u32 n = nd->h.count;
    ASSERT(n <= BTREE_INNER_CAP);
    u32 p = 0;
    if (n > 0) {
        struct span first = btree_sep_key(t, nd->seps[0]);
        p = btree_prefix_len(first, btree_sep_key(t, nd->seps[n - 1]));
        memcpy(nd->h.prefix, first.ptr, p);
    }
    nd->h.prefix_len = (u8)p;
    for (u32 i = 0; i < n; i++) nd->heads[i] = btree_head(btree_sep_key(t, nd->seps[i]), p);
    ASSERT(nd->h.prefix_len <= BTREE_PREFIX_MAX);
}
