/*
 * mvcc_read.c — ranges at a revision.
 *
 * A range walks the keys of [key, range_end) in the tree and, for each, the
 * key's chain down to the newest version at or below the read revision. Like
 * etcd, it counts every key present at that revision (so the walk covers the
 * whole range even when a limit cuts the results short), then applies the
 * revision filters, the sort and the limit. Sorting by key, ascending or
 * descending, streams; other sort targets collect every match, then sort.
 * A single key (the common get) skips all that: mvcc_get_one descends once
 * and walks the one chain.
 */
#include "core/mvcc_int.h"

#include <stdlib.h>
#include <string.h>

/* Records of a scan are scattered in the slab; fetching a few entries ahead
 * keeps several misses in flight. */
#define MVCC_PREFETCH_AHEAD 6

/* The version of the chain at `head` visible at rev, or false if none. */
static bool mvcc_visible(const struct mvcc *m, arena_ref head, i64 rev, struct mvcc_rec *r)
{
    for (arena_ref ref = head; ref != 0; ref = r->older) { /* bounded by the chain */
        mvcc_rec_decode(m, ref, r);
        if (r->mod_revision <= rev) return !(r->flags & MVCC_F_TOMBSTONE);
        if (!(r->flags & MVCC_F_OLDER)) break;
    }
    return false;
}

static bool mvcc_filter_pass(const struct mvcc_range_req *q, const struct mvcc_rec *r)
{
    if (q->min_mod_revision > 0 && r->mod_revision < q->min_mod_revision) return false;
    if (q->max_mod_revision > 0 && r->mod_revision > q->max_mod_revision) return false;
    if (q->min_create_revision > 0 && r->create_revision < q->min_create_revision) return false;
    if (q->max_create_revision > 0 && r->create_revision > q->max_create_revision) return false;
    return true;
}

static int mvcc_scratch_push(struct mvcc *m, size_t *len, const struct mvcc_rec *r, bool keys_only)
{
    if (*len == m->scratch_cap) {
        size_t cap = m->scratch_cap ? m->scratch_cap * 2 : 64;
        struct mvcc_kv *p = realloc(m->scratch, cap * sizeof(*p));
        if (p == NULL) return KEEL_ENOMEM;
        m->scratch = p;
        m->scratch_cap = cap;
    }
    mvcc_rec_to_kv(r, &m->scratch[(*len)++], keys_only);
    return KEEL_OK;
}

struct mvcc_sort {
    enum mvcc_sort_target target;
    int sign;
};

static int mvcc_cmp_i64(i64 a, i64 b)
{
    return a < b ? -1 : (a > b ? 1 : 0);
}

static int mvcc_kv_cmp(const void *pa, const void *pb, void *arg)
{
    const struct mvcc_kv *a = pa, *b = pb;
    const struct mvcc_sort *how = arg;
    int c = 0;
    switch (how->target) {
    case MVCC_SORT_VERSION:
        c = mvcc_cmp_i64(a->version, b->version);
        break;
    case MVCC_SORT_CREATE:
        c = mvcc_cmp_i64(a->create_revision, b->create_revision);
        break;
    case MVCC_SORT_MOD:
        c = mvcc_cmp_i64(a->mod_revision, b->mod_revision);
        break;
    case MVCC_SORT_VALUE:
        c = btree_key_cmp(a->value, b->value);
        break;
    default:
        break;
    }
    if (c != 0) return c * how->sign;
    return btree_key_cmp(a->key, b->key); /* ties: key order, ascending either way */
}

struct mvcc_scan {
    const struct mvcc_range_req *q;
    i64 rev;
    bool reverse;   /* walk from the end of the range */
    bool streaming; /* results come out in walk order: stop collecting at limit */
    bool counted;   /* out->count is known already: stop once the limit is passed */
    i64 matched;    /* keys passing the filters */
};

/* Visits one tree entry of the range; returns an error or KEEL_OK. */
static int mvcc_scan_one(struct mvcc *m, struct mvcc_scan *s, arena_ref head,
                         struct mvcc_range_result *out)
{
    struct mvcc_rec r;
    if (!mvcc_visible(m, head, s->rev, &r)) return KEEL_OK;
    if (!s->counted) out->count++;
    if (!mvcc_filter_pass(s->q, &r)) return KEEL_OK;
    s->matched++;
    if (s->q->count_only) return KEEL_OK;
    if (s->streaming && s->q->limit > 0 && s->matched > s->q->limit) return KEEL_OK;
    bool value_sort = s->q->sort_target == MVCC_SORT_VALUE; /* blanked after the sort */
    return mvcc_scratch_push(m, &out->kvs_len, &r, s->q->keys_only && !value_sort);
}

static int mvcc_scan(struct mvcc *m, struct mvcc_scan *s, struct mvcc_range_result *out)
{
    const struct mvcc_range_req *q = s->q;
    struct btree_iter it;
    bool single = q->range_end.len == 0;
    bool to_end = q->range_end.len == 1 && q->range_end.ptr[0] == 0;
    if (!s->reverse)
        btree_iter_seek_ge(&it, &m->tree, q->key);
    else if (to_end)
        btree_iter_last(&it, &m->tree);
    else
        btree_iter_seek_lt(&it, &m->tree, q->range_end);
    while (btree_iter_valid(&it)) { /* bounded by the keys in the range */
        btree_iter_prefetch(&it, MVCC_PREFETCH_AHEAD, s->reverse);
        struct span k = btree_iter_key(&it);
        if (!mvcc_in_range(k, q->key, q->range_end)) {
            if (!s->reverse || btree_key_cmp(k, q->key) < 0) break;
        } else {
            int rc = mvcc_scan_one(m, s, btree_iter_ref(&it), out);
            if (rc != KEEL_OK) return rc;
        }
        if (single) break;
        if (s->counted && s->streaming && q->limit > 0 && s->matched > q->limit) break;
        if (s->reverse)
            btree_iter_prev(&it);
        else
            btree_iter_next(&it);
    }
    return KEEL_OK;
}

static int mvcc_range_check(const struct mvcc *m, const struct mvcc_range_req *q, i64 *rev)
{
    int rc = mvcc_key_valid(m, q->key);
    if (rc != KEEL_OK) return rc;
    if (q->revision < 0 || q->limit < 0) return KEEL_EINVALID;
    if ((unsigned)q->sort_order > MVCC_SORT_DESCEND) return KEEL_EINVALID;
    if ((unsigned)q->sort_target > MVCC_SORT_VALUE) return KEEL_EINVALID;
    /* Inside a batch, "current" includes the batch's own writes (etcd's txn
     * ops see the earlier ops of their branch). */
    i64 current = m->batch_open ? m->batch_revision : m->revision;
    *rev = q->revision == 0 ? current : q->revision;
    if (*rev > current) return KEEL_EFUTURE_REV;
    if (*rev < m->compact_revision) return KEEL_ECOMPACTED;
    return KEEL_OK;
}

/* etcd's count covers the whole range, so a limited read would still visit
 * every key and its record. When no key's newest version is a tombstone and
 * the read is at the current revision, every key in the tree is live, so the
 * count is the number of tree entries in the range: a walk over leaves. */
static bool mvcc_count_fast(const struct mvcc *m, const struct mvcc_scan *s,
                            struct mvcc_range_result *out)
{
    const struct mvcc_range_req *q = s->q;
    if (s->rev != m->revision || m->tree.count != m->counters.keys_live) return false;
    if (q->range_end.len == 0) return false; /* a single key: the walk is one step */
    bool to_end = q->range_end.len == 1 && q->range_end.ptr[0] == 0;
    if (!to_end && btree_key_cmp(q->range_end, q->key) <= 0) {
        out->count = 0;
        return true;
    }
    out->count =
        (i64)btree_count_range(&m->tree, q->key, to_end ? span_make(NULL, 0) : q->range_end);
    return true;
}

/* A single key (empty range_end): one descent and the key's chain, no
 * iterator, prefetch or sort. The result equals the general walk's for every
 * request (test_mvcc point_get_equals_general): count 0 or 1, filters after
 * the count, at most one kv so never `more`, keys_only blanks the value
 * whatever the sort (one kv needs no sort). */
static int mvcc_get_one(struct mvcc *m, const struct mvcc_range_req *q, i64 rev,
                        struct mvcc_range_result *out)
{
    ASSERT(q->range_end.len == 0);
    arena_ref head = btree_get(&m->tree, q->key);
    struct mvcc_rec r;
    if (head != 0 && mvcc_visible(m, head, rev, &r)) {
        DEBUG_ASSERT(btree_key_cmp(r.key, q->key) == 0);
        out->count = 1;
        if (!q->count_only && mvcc_filter_pass(q, &r)) {
            int rc = mvcc_scratch_push(m, &out->kvs_len, &r, q->keys_only);
            if (rc != KEEL_OK) return rc;
        }
    }
    out->kvs = m->scratch;
    ASSERT(out->kvs_len <= 1 && !out->more);
    return KEEL_OK;
}

/* The general walk for any range; see the file comment. */
static int mvcc_range_walk(struct mvcc *m, const struct mvcc_range_req *q, i64 rev,
                           struct mvcc_range_result *out)
{
    struct mvcc_scan s = {.q = q, .rev = rev};
    /* As etcd: order NONE means key order for the KEY target, and ascending
     * by the target for any other target. */
    bool by_key = q->sort_target == MVCC_SORT_KEY;
    s.reverse = by_key && q->sort_order == MVCC_SORT_DESCEND && q->range_end.len > 0;
    s.streaming = by_key;
    s.counted = mvcc_count_fast(m, &s, out);
    if (s.counted && q->count_only) return KEEL_OK;
    int rc = mvcc_scan(m, &s, out);
    if (rc != KEEL_OK) {
        out->kvs_len = 0;
        return rc;
    }
    out->kvs = m->scratch;
    if (!by_key && out->kvs_len > 1) {
        struct mvcc_sort how = {q->sort_target, q->sort_order == MVCC_SORT_DESCEND ? -1 : 1};
        ASSERT(q->sort_target != MVCC_SORT_KEY);
        qsort_r(out->kvs, out->kvs_len, sizeof(out->kvs[0]), mvcc_kv_cmp, &how);
    }
    if (q->keys_only && q->sort_target == MVCC_SORT_VALUE) {
        for (size_t i = 0; i < out->kvs_len; i++) out->kvs[i].value = span_make(NULL, 0);
    }
    out->more = !q->count_only && q->limit > 0 && s.matched > q->limit;
    if (q->limit > 0 && out->kvs_len > (size_t)q->limit) out->kvs_len = (size_t)q->limit;
    ASSERT(out->kvs_len <= (size_t)s.matched);
    return KEEL_OK;
}

static int mvcc_range_run(struct mvcc *m, const struct mvcc_range_req *q,
                          struct mvcc_range_result *out, bool point_fast)
{
    ASSERT(m != NULL && q != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    out->revision = m->revision;
    i64 rev = 0;
    int rc = mvcc_range_check(m, q, &rev);
    if (rc != KEEL_OK) return rc;
    ASSERT(rev >= m->compact_revision && rev >= 1);
    if (point_fast && q->range_end.len == 0) return mvcc_get_one(m, q, rev, out);
    return mvcc_range_walk(m, q, rev, out);
}

int mvcc_range(struct mvcc *m, const struct mvcc_range_req *q, struct mvcc_range_result *out)
{
    return mvcc_range_run(m, q, out, true);
}

int mvcc_range_general(struct mvcc *m, const struct mvcc_range_req *q,
                       struct mvcc_range_result *out)
{
    return mvcc_range_run(m, q, out, false);
}
