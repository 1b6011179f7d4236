/*
 * btree_write.c — B+tree insert (with splits) and remove (with merges).
 *
 * Splits reserve every node and the separator they will need before they
 * change anything, so KEEL_ENOMEM leaves the tree as it was. Merges only free.
 *
 * Split points: half and half, except at the ends of the key space: an
 * insert past the last key of the rightmost leaf (or before the first key of
 * the leftmost) leaves the old node full and starts a new one, so ascending
 * and descending loads pack nodes full instead of half full.
 */
#include "core/btree_int.h"

#define BTREE_LEAF_MERGE_MAX  (BTREE_LEAF_CAP * 3 / 4)
#define BTREE_INNER_MERGE_MAX (BTREE_INNER_CAP * 3 / 4)

/* ---- descent with a path ------------------------------------------------ */

static void btree_descend_path(const struct btree *t, struct span key, struct btree_pos *path)
{
    ASSERT(t->root != 0 && t->height <= BTREE_HEIGHT_MAX);
    arena_ref ref = t->root;
    path->depth = 0;
    for (u32 level = t->height; level > 1; level--) {
        const struct binner *n = btree_inner(t, ref);
        bool eq;
        u32 i = btree_node_search(t, &n->h, n->heads, n->seps, false, key, &eq);
        if (eq) i++;
        path->node[path->depth] = ref;
        path->index[path->depth] = i;
        path->depth++;
        ref = n->kids[i];
    }
    const struct bleaf *l = btree_leaf(t, ref);
    path->node[path->depth] = ref;
    path->index[path->depth] =
        btree_node_search(t, &l->h, l->heads, l->refs, true, key, &path->found);
    path->depth++;
    ASSERT(path->depth == t->height);
}

arena_ref *btree_find(const struct btree *t, struct span key, struct btree_pos *pos)
{
    ASSERT(t != NULL && pos != NULL);
    ASSERT(key.len >= 1);
    pos->depth = 0;
    pos->found = false;
    if (t->root == 0) return NULL;
    btree_descend_path(t, key, pos);
    if (!pos->found) return NULL;
    struct bleaf *l = btree_leaf(t, pos->node[pos->depth - 1]);
    return &l->refs[pos->index[pos->depth - 1]];
}

/* ---- leaf insert without split ------------------------------------------ */

/* Shrinks a leaf's prefix so that key shares it, recomputing heads. */
static void btree_leaf_fit_prefix(const struct btree *t, struct bleaf *l, struct span key)
{
    u32 p = l->h.prefix_len;
    size_t shared = btree_lcp(span_make(l->h.prefix, p), key);
    if (shared >= p) return;
    l->h.prefix_len = (u8)shared;
    for (u32 i = 0; i < l->h.count; i++) l->heads[i] = btree_head(btree_leaf_key(t, l, i), shared);
    ASSERT(l->h.prefix_len < p);
}

static void btree_leaf_insert_at(const struct btree *t, struct bleaf *l, u32 i, struct span key,
                                 arena_ref ref)
{
    ASSERT(l->h.count < BTREE_LEAF_CAP);
    ASSERT(i <= l->h.count);
    btree_leaf_fit_prefix(t, l, key);
    u32 move = l->h.count - i;
    memmove(&l->heads[i + 1], &l->heads[i], move * sizeof(l->heads[0]));
    memmove(&l->refs[i + 1], &l->refs[i], move * sizeof(l->refs[0]));
    l->heads[i] = btree_head(key, l->h.prefix_len);
    l->refs[i] = ref;
    l->h.count++;
}

static void btree_inner_fit_prefix(const struct btree *t, struct binner *n, struct span key)
{
    u32 p = n->h.prefix_len;
    size_t shared = btree_lcp(span_make(n->h.prefix, p), key);
    if (shared >= p) return;
    n->h.prefix_len = (u8)shared;
    for (u32 i = 0; i < n->h.count; i++) {
        n->heads[i] = btree_head(btree_sep_key(t, n->seps[i]), shared);
    }
}

/* Inserts separator sep at slot i and kid right after it. */
static void btree_inner_insert_at(const struct btree *t, struct binner *n, u32 i, arena_ref sep,
                                  arena_ref kid)
{
    ASSERT(n->h.count < BTREE_INNER_CAP);
    ASSERT(i <= n->h.count);
    struct span key = btree_sep_key(t, sep);
    btree_inner_fit_prefix(t, n, key);
    u32 move = n->h.count - i;
    memmove(&n->heads[i + 1], &n->heads[i], move * sizeof(n->heads[0]));
    memmove(&n->seps[i + 1], &n->seps[i], move * sizeof(n->seps[0]));
    memmove(&n->kids[i + 2], &n->kids[i + 1], move * sizeof(n->kids[0]));
    n->heads[i] = btree_head(key, n->h.prefix_len);
    n->seps[i] = sep;
    n->kids[i + 1] = kid;
    n->h.count++;
}

/* ---- split reservation -------------------------------------------------- */

struct btree_reserve {
    arena_ref leaf;
    arena_ref inner[BTREE_HEIGHT_MAX + 1];
    u32 inner_count;
    u32 inner_used;
    arena_ref sep;
};

static void btree_reserve_release(struct btree *t, struct btree_reserve *r, size_t sep_size)
{
    if (r->leaf) slab_free(t->slab, r->leaf, sizeof(struct bleaf));
    for (u32 i = r->inner_used; i < r->inner_count; i++) {
        slab_free(t->slab, r->inner[i], sizeof(struct binner));
    }
    if (r->sep) slab_free(t->slab, r->sep, sep_size);
}

/* Reserves a leaf, `inners` inner nodes and a separator of sep_size bytes. */
static int btree_reserve_take(struct btree *t, struct btree_reserve *r, u32 inners, size_t sep_size)
{
    memset(r, 0, sizeof(*r));
    ASSERT(inners <= BTREE_HEIGHT_MAX + 1);
    int rc = slab_alloc(t->slab, sizeof(struct bleaf), &r->leaf);
    for (; rc == KEEL_OK && r->inner_count < inners; r->inner_count++) {
        rc = slab_alloc(t->slab, sizeof(struct binner), &r->inner[r->inner_count]);
        if (rc != KEEL_OK) break;
    }
    if (rc == KEEL_OK) rc = slab_alloc(t->slab, sep_size, &r->sep);
    if (rc != KEEL_OK) btree_reserve_release(t, r, sep_size);
    return rc;
}

static arena_ref btree_reserve_inner(struct btree_reserve *r)
{
    ASSERT(r->inner_used < r->inner_count);
    return r->inner[r->inner_used++];
}

/* ---- leaf split ---------------------------------------------------------- */

/* Where to cut n+1 leaf entries (the new one at i): left keeps [0, s). */
static u32 btree_leaf_split_point(u32 n, u32 i, bool leftmost, bool rightmost)
{
    if (rightmost && i == n) return n;
    if (leftmost && i == 0) return 1;
    return (n + 1) / 2;
}

static void btree_sep_write(struct btree *t, arena_ref sep, struct span left_last,
                            struct span right_first)
{
    size_t len = btree_lcp(left_last, right_first) + 1;
    ASSERT(len <= right_first.len);
    u8 *p = slab_ptr(t->slab, sep);
    p[0] = (u8)len;
    p[1] = (u8)(len >> 8);
    memcpy(p + 2, right_first.ptr, len);
    t->separator_bytes += slab_alloc_size(2 + len);
}

static size_t btree_sep_size(struct span left_last, struct span right_first)
{
    return 2 + btree_lcp(left_last, right_first) + 1;
}

/* Splits full leaf l (ref lref) while inserting (key, ref) at i. Fills the
 * reserved right leaf and separator. */
static void btree_leaf_split(struct btree *t, arena_ref lref, u32 i, arena_ref ref, u32 s,
                             struct btree_reserve *r)
{
    struct bleaf *l = btree_leaf(t, lref);
    u32 n = l->h.count;
    ASSERT(n == BTREE_LEAF_CAP && s >= 1 && s <= n);
    arena_ref all[BTREE_LEAF_CAP + 1];
    memcpy(all, l->refs, i * sizeof(all[0]));
    all[i] = ref;
    memcpy(all + i + 1, l->refs + i, (n - i) * sizeof(all[0]));
    struct bleaf *rl = slab_ptr(t->slab, r->leaf); /* fresh */
    memset(&rl->h, 0, sizeof(rl->h));
    rl->h.kind = BTREE_KIND_LEAF;
    rl->h.count = (u16)(n + 1 - s);
    memcpy(rl->refs, all + s, rl->h.count * sizeof(all[0]));
    l->h.count = (u16)s;
    memcpy(l->refs, all, s * sizeof(all[0]));
    btree_sep_write(t, r->sep, t->key_of(t->key_ctx, all[s - 1]), t->key_of(t->key_ctx, all[s]));
    btree_leaf_refresh(t, l);
    btree_leaf_refresh(t, rl);
    rl->h.next = l->h.next;
    rl->h.prev = lref;
    if (l->h.next)
        btree_leaf(t, l->h.next)->h.prev = r->leaf;
    else
        t->last = r->leaf;
    l->h.next = r->leaf;
    t->leaves++;
    ASSERT(l->h.count >= 1 && rl->h.count >= 1);
}

/* ---- inner split --------------------------------------------------------- */

/* Splits full inner node nref while inserting (sep, kid) at slot i; the middle
 * separator goes up through *up_sep, the new right node through *up_kid. */
static void btree_inner_split(struct btree *t, arena_ref nref, u32 i, arena_ref sep, arena_ref kid,
                              u32 m, arena_ref rref, arena_ref *up_sep)
{
    struct binner *nd = btree_inner(t, nref);
    u32 n = nd->h.count;
    ASSERT(n == BTREE_INNER_CAP && m <= n);
    arena_ref seps[BTREE_INNER_CAP + 1], kids[BTREE_INNER_CAP + 2];
    memcpy(seps, nd->seps, i * sizeof(seps[0]));
    seps[i] = sep;
    memcpy(seps + i + 1, nd->seps + i, (n - i) * sizeof(seps[0]));
    memcpy(kids, nd->kids, (i + 1) * sizeof(kids[0]));
    kids[i + 1] = kid;
    memcpy(kids + i + 2, nd->kids + i + 1, (n - i) * sizeof(kids[0]));
    struct binner *rn = slab_ptr(t->slab, rref); /* fresh */
    memset(&rn->h, 0, sizeof(rn->h));
    rn->h.kind = BTREE_KIND_INNER;
    rn->h.count = (u16)(n - m);
    memcpy(rn->seps, seps + m + 1, rn->h.count * sizeof(seps[0]));
    memcpy(rn->kids, kids + m + 1, (rn->h.count + 1u) * sizeof(kids[0]));
    nd->h.count = (u16)m;
    memcpy(nd->seps, seps, m * sizeof(seps[0]));
    memcpy(nd->kids, kids, (m + 1) * sizeof(kids[0]));
    *up_sep = seps[m];
    btree_inner_refresh(t, nd);
    btree_inner_refresh(t, rn);
    t->inners++;
}

/* ---- insert --------------------------------------------------------------- */

static int btree_insert_first(struct btree *t, struct span key, arena_ref ref)
{
    arena_ref lref;
    int rc = slab_alloc(t->slab, sizeof(struct bleaf), &lref);
    if (rc != KEEL_OK) return rc;
    struct bleaf *l = slab_ptr(t->slab, lref); /* fresh: no kind yet */
    memset(&l->h, 0, sizeof(l->h));
    l->h.kind = BTREE_KIND_LEAF;
    l->h.count = 0;
    btree_leaf_insert_at(t, l, 0, key, ref);
    btree_leaf_refresh(t, l);
    t->root = t->first = t->last = lref;
    t->height = 1;
    t->leaves = 1;
    t->count = 1;
    return KEEL_OK;
}

/* True if every ancestor of the node at depth d took its first (or last) kid. */
static bool btree_path_edge(const struct btree *t, const struct btree_pos *path, u32 d, bool right)
{
    for (u32 a = 0; a < d; a++) {
        const struct binner *an = btree_inner(t, path->node[a]);
        if (path->index[a] != (right ? an->h.count : 0u)) return false;
    }
    return true;
}

/* Which of n+1 separators (the new one at i) moves up when an inner splits. */
static u32 btree_inner_split_point(u32 n, u32 i, bool leftmost, bool rightmost)
{
    if (rightmost && i == n) return n; /* ascending load: keep the left node full */
    if (leftmost && i == 0) return 0;  /* descending load */
    return n / 2;
}

/* Pushes (sep, kid) into the inner nodes of the path from depth d upward. */
static void btree_insert_up(struct btree *t, struct btree_pos *path, u32 d, arena_ref sep,
                            arena_ref kid, struct btree_reserve *r)
{
    for (; d-- > 0;) {
        struct binner *nd = btree_inner(t, path->node[d]);
        u32 i = path->index[d], n = nd->h.count;
        if (n < BTREE_INNER_CAP) {
            btree_inner_insert_at(t, nd, i, sep, kid);
            return;
        }
        bool leftmost = i == 0 && btree_path_edge(t, path, d, false);
        bool rightmost = i == n && btree_path_edge(t, path, d, true);
        u32 m = btree_inner_split_point(n, i, leftmost, rightmost);
        arena_ref rref = btree_reserve_inner(r), up;
        btree_inner_split(t, path->node[d], i, sep, kid, m, rref, &up);
        sep = up;
        kid = rref;
    }
    arena_ref root = btree_reserve_inner(r);     /* the old root split: grow a level */
    struct binner *rt = slab_ptr(t->slab, root); /* fresh */
    memset(&rt->h, 0, sizeof(rt->h));
    rt->h.kind = BTREE_KIND_INNER;
    rt->kids[0] = t->root;
    btree_inner_insert_at(t, rt, 0, sep, kid);
    btree_inner_refresh(t, rt);
    t->root = root;
    t->height++;
    t->inners++;
    ASSERT(t->height <= BTREE_HEIGHT_MAX);
}

static int btree_insert_split(struct btree *t, struct btree_pos *path, u32 i, arena_ref ref)
{
    struct bleaf *l = btree_leaf(t, path->node[path->depth - 1]);
    u32 n = l->h.count;
    u32 s = btree_leaf_split_point(n, i, l->h.prev == 0, l->h.next == 0);
    struct span left_last =
        s - 1 == i ? t->key_of(t->key_ctx, ref) : btree_leaf_key(t, l, s - 1 > i ? s - 2 : s - 1);
    struct span right_first =
        s == i ? t->key_of(t->key_ctx, ref) : btree_leaf_key(t, l, s > i ? s - 1 : s);
    u32 full = 0; /* inner nodes on the path that will split too */
    while (full < path->depth - 1) {
        const struct binner *an = btree_inner(t, path->node[path->depth - 2 - full]);
        if (an->h.count < BTREE_INNER_CAP) break;
        full++;
    }
    u32 inners = full + (full == path->depth - 1 ? 1 : 0);
    struct btree_reserve r;
    size_t sep_size = btree_sep_size(left_last, right_first);
    int rc = btree_reserve_take(t, &r, inners, sep_size);
    if (rc != KEEL_OK) return rc;
    btree_leaf_split(t, path->node[path->depth - 1], i, ref, s, &r);
    btree_insert_up(t, path, path->depth - 1, r.sep, r.leaf, &r);
    ASSERT(r.inner_used == r.inner_count);
    t->count++;
    return KEEL_OK;
}

int btree_insert_at(struct btree *t, struct btree_pos *pos, struct span key, arena_ref ref)
{
    ASSERT(t != NULL && pos != NULL && !pos->found);
    ASSERT(key.len >= 1 && key.len <= BTREE_KEY_SIZE_MAX);
    ASSERT(ref != 0);
    ASSERT(pos->depth == t->height);
    if (t->root == 0) return btree_insert_first(t, key, ref);
    struct bleaf *l = btree_leaf(t, pos->node[pos->depth - 1]);
    u32 i = pos->index[pos->depth - 1];
    if (l->h.count < BTREE_LEAF_CAP) {
        btree_leaf_insert_at(t, l, i, key, ref);
        t->count++;
        return KEEL_OK;
    }
    return btree_insert_split(t, pos, i, ref);
}

int btree_insert(struct btree *t, struct span key, arena_ref ref, arena_ref *existing)
{
    ASSERT(t != NULL && existing != NULL);
    struct btree_pos pos;
    arena_ref *slot = btree_find(t, key, &pos);
    *existing = slot ? *slot : 0;
    if (slot != NULL) return KEEL_OK;
    return btree_insert_at(t, &pos, key, ref);
}

/* ---- remove --------------------------------------------------------------- */

static void btree_sep_free(struct btree *t, arena_ref sep)
{
    size_t size = 2 + btree_sep_key(t, sep).len;
    t->separator_bytes -= slab_alloc_size(size);
    slab_free(t->slab, sep, size);
}

/* Removes kid slot k from an inner node with >= 2 kids, and the separator
 * beside it (the one to its left, or seps[0] for the first kid); that
 * separator is freed unless keep_sep, in which case it is returned. */
static arena_ref btree_inner_drop_kid(struct btree *t, struct binner *nd, u32 k, bool keep_sep)
{
    ASSERT(nd->h.count >= 1 && k <= nd->h.count);
    u32 si = k > 0 ? k - 1 : 0;
    arena_ref sep = nd->seps[si];
    u32 n = nd->h.count;
    memmove(&nd->heads[si], &nd->heads[si + 1], (n - si - 1) * sizeof(nd->heads[0]));
    memmove(&nd->seps[si], &nd->seps[si + 1], (n - si - 1) * sizeof(nd->seps[0]));
    memmove(&nd->kids[k], &nd->kids[k + 1], (n - k) * sizeof(nd->kids[0]));
    nd->h.count--;
    if (!keep_sep) {
        btree_sep_free(t, sep);
        return 0;
    }
    return sep;
}

static void btree_leaf_unlink(struct btree *t, struct bleaf *l)
{
    if (l->h.prev)
        btree_leaf(t, l->h.prev)->h.next = l->h.next;
    else
        t->first = l->h.next;
    if (l->h.next)
        btree_leaf(t, l->h.next)->h.prev = l->h.prev;
    else
        t->last = l->h.prev;
}

/* Merges leaf kids[k+1] into kids[k] of parent pd; frees the right one. */
static void btree_leaf_merge(struct btree *t, struct binner *pd, u32 k)
{
    struct bleaf *a = btree_leaf(t, pd->kids[k]);
    struct bleaf *b = btree_leaf(t, pd->kids[k + 1]);
    ASSERT(a->h.count + b->h.count <= BTREE_LEAF_CAP);
    memcpy(&a->refs[a->h.count], b->refs, b->h.count * sizeof(b->refs[0]));
    a->h.count = (u16)(a->h.count + b->h.count);
    btree_leaf_refresh(t, a);
    btree_leaf_unlink(t, b);
    slab_free(t->slab, pd->kids[k + 1], sizeof(struct bleaf));
    btree_inner_drop_kid(t, pd, k + 1, false);
    t->leaves--;
}

/* Merges inner kids[k+1] into kids[k] of parent pd, pulling the parent's
 * separator down between them. */
static void btree_inner_merge(struct btree *t, struct binner *pd, u32 k)
{
    struct binner *a = btree_inner(t, pd->kids[k]);
    struct binner *b = btree_inner(t, pd->kids[k + 1]);
    ASSERT(a->h.count + 1u + b->h.count <= BTREE_INNER_CAP);
    arena_ref sep = pd->seps[k];
    arena_ref right = pd->kids[k + 1];
    a->seps[a->h.count] = sep;
    memcpy(&a->seps[a->h.count + 1], b->seps, b->h.count * sizeof(b->seps[0]));
    memcpy(&a->kids[a->h.count + 1], b->kids, (b->h.count + 1u) * sizeof(b->kids[0]));
    a->h.count = (u16)(a->h.count + 1u + b->h.count);
    btree_inner_refresh(t, a);
    btree_inner_drop_kid(t, pd, k + 1, true);
    slab_free(t->slab, right, sizeof(struct binner));
    t->inners--;
}

/* Tries to merge the underfull child at path depth d+1 with a sibling. */
static void btree_try_merge(struct btree *t, struct btree_pos *path, u32 d, bool leaf)
{
    struct binner *pd = btree_inner(t, path->node[d]);
    u32 k = path->index[d];
    if (pd->h.count == 0) return; /* no sibling under this parent */
    u32 left = k < pd->h.count ? k : k - 1;
    const struct bnode_hdr *a = btree_node(t, pd->kids[left]);
    const struct bnode_hdr *b = btree_node(t, pd->kids[left + 1]);
    if (leaf) {
        if (a->count + b->count <= BTREE_LEAF_MERGE_MAX) btree_leaf_merge(t, pd, left);
    } else if (a->count + 1u + b->count <= BTREE_INNER_MERGE_MAX) {
        btree_inner_merge(t, pd, left);
    }
}

/* Removes the empty node at depth d + 1 from its parent at depth d; returns
 * true if the parent became empty too. */
static bool btree_drop_empty(struct btree *t, struct btree_pos *path, u32 d, bool leaf)
{
    struct binner *pd = btree_inner(t, path->node[d]);
    arena_ref child = path->node[d + 1];
    if (leaf) {
        btree_leaf_unlink(t, btree_leaf(t, child));
        slab_free(t->slab, child, sizeof(struct bleaf));
        t->leaves--;
    } else {
        slab_free(t->slab, child, sizeof(struct binner));
        t->inners--;
    }
    if (pd->h.count == 0) return true; /* its only kid is gone */
    btree_inner_drop_kid(t, pd, path->index[d], false);
    return false;
}

static void btree_rebalance(struct btree *t, struct btree_pos *path)
{
    bool empty = btree_leaf(t, path->node[path->depth - 1])->h.count == 0;
    for (u32 d = path->depth - 1; d > 0; d--) {
        bool leaf = d == path->depth - 1;
        const struct bnode_hdr *h = btree_node(t, path->node[d]);
        u32 low = leaf ? BTREE_LEAF_CAP / 4 : BTREE_INNER_CAP / 4;
        if (empty)
            empty = btree_drop_empty(t, path, d - 1, leaf);
        else if (h->count < low)
            btree_try_merge(t, path, d - 1, leaf);
        else
            return;
    }
    struct bnode_hdr *root = btree_node(t, t->root);
    if (empty || (t->height == 1 && root->count == 0)) {
        slab_free(t->slab, t->root, t->height == 1 ? sizeof(struct bleaf) : sizeof(struct binner));
        t->root = t->first = t->last = 0;
        t->height = 0;
        t->leaves = t->inners = 0;
        return;
    }
    while (t->height > 1 && root->count == 0) { /* an inner root with one kid */
        arena_ref only = ((struct binner *)root)->kids[0];
        slab_free(t->slab, t->root, sizeof(struct binner));
        t->inners--;
        t->root = only;
        t->height--;
        root = btree_node(t, only);
    }
}

arena_ref btree_remove(struct btree *t, struct span key)
{
    ASSERT(t != NULL);
    if (t->root == 0 || key.len == 0) return 0;
    struct btree_pos path;
    btree_descend_path(t, key, &path);
    if (!path.found) return 0;
    struct bleaf *l = btree_leaf(t, path.node[path.depth - 1]);
    u32 i = path.index[path.depth - 1];
    arena_ref old = l->refs[i];
    u32 move = l->h.count - i - 1;
    memmove(&l->heads[i], &l->heads[i + 1], move * sizeof(l->heads[0]));
    memmove(&l->refs[i], &l->refs[i + 1], move * sizeof(l->refs[0]));
    l->h.count--;
    t->count--;
    btree_rebalance(t, &path);
    ASSERT_IMPLIES(t->count == 0, t->root == 0);
    return old;
}
