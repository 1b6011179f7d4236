/*
 * model_mvcc_range.c — mvcc_range against the model: key ranges (single keys,
 * short runs, prefixes, to the end, everything) at random revisions in
 * [compact_revision, revision], with random limit, keys_only, count_only,
 * sort and revision filters. Every returned field is compared, and count,
 * more and the header revision.
 *
 * Semantics checked, from mvcc.h and etcd's Range (the header promises
 * etcd v3's semantics): count is the number of keys in the range at the
 * revision, before filters and limit; filters (inclusive bounds, 0 = none)
 * drop entries; the limit cuts the sorted, filtered list and more says it
 * did; keys_only empties values after sorting; count_only returns no entries.
 *
 * Order NONE with a target other than KEY sorts ascending by the target, as
 * etcd's server does ("sort ASCEND by default only when target is not
 * 'KEY'"); mvcc.h states it. keys_only with a VALUE sort sorts on the values,
 * then empties them (as etcd). Both switches below stay as a way to narrow a
 * failure down; they are on.
 *
 * Keys of reads stay within key_size_max: whether a longer read key is an
 * error (core/mvcc says KEEL_EKEY_TOO_LARGE) or simply matches nothing is not
 * in the contract.
 *
 * Ties under a sort on version, create, mod or value have no defined order,
 * so for those targets the check is: the sequence of target values equals
 * the model's, and every returned entry is a distinct key that qualifies,
 * with all its fields right.
 */
#include "tests/model/model_mvcc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MV_SORT_NONE_ASCENDS
#define MV_SORT_NONE_ASCENDS 1
#endif
#ifndef MV_CHECK_KEYS_ONLY_VALUE_SORT
#define MV_CHECK_KEYS_ONLY_VALUE_SORT 1
#endif

/* ---- choosing key ranges ------------------------------------------------------------ */

static bool mv_end_is_all(struct span end)
{
    return end.len == 1 && end.ptr[0] == 0;
}

static void mv_range_bounds(struct mv_model *m, struct mv_range *r)
{
    r->lo = model_keys_lower_bound(&m->keys, r->key);
    if (r->end.len == 0) {
        bool hit = r->lo < m->keys.count && model_key_eq(model_key(&m->keys, r->lo), r->key);
        r->hi = r->lo + (hit ? 1 : 0);
    } else if (mv_end_is_all(r->end)) {
        r->hi = m->keys.count;
    } else {
        r->hi = model_keys_lower_bound(&m->keys, r->end);
    }
    cr_assert(r->lo <= r->hi);
}

static void mv_set_key(struct mv_range *r, struct span key)
{
    size_t n = KEEL_MIN(key.len, (size_t)MV_KEY_LEN_MAX);
    memmove(r->key_buf, key.ptr, n);
    r->key = span_make(r->key_buf, n);
}

/* Key alone: a universe key (a live one, mostly) or a near miss. */
static void mv_pick_single(struct mv_model *m, struct mv_range *r)
{
    if (model_rng_chance(&m->rng, 250)) {
        mv_set_key(r, model_keys_probe(&m->keys, &m->rng, r->key_buf));
        return;
    }
    u32 idx = (u32)model_rng_below(&m->rng, m->keys.count);
    /* Bound: look at most 8 keys on for a live one. */
    for (u32 i = 0; i < 8 && idx + 1 < m->keys.count && mv_live(&m->k[idx]) == NULL; i++) idx++;
    mv_set_key(r, model_key(&m->keys, idx));
}

/* [probe, a key up to span keys on), the end sometimes moved off the universe. */
static void mv_pick_small(struct mv_model *m, struct mv_range *r, u32 span)
{
    mv_set_key(r, model_keys_probe(&m->keys, &m->rng, r->key_buf));
    u32 j = model_keys_lower_bound(&m->keys, r->key) + 1 + (u32)model_rng_below(&m->rng, span);
    if (j >= m->keys.count) {
        r->end_buf[0] = 0;
        r->end = span_make(r->end_buf, 1);
        return;
    }
    struct span end = model_key(&m->keys, j);
    memcpy(r->end_buf, end.ptr, end.len);
    size_t n = end.len;
    if (model_rng_chance(&m->rng, 300) && n < MV_KEY_LEN_MAX) {
        r->end_buf[n++] = (u8)model_rng_below(&m->rng, 256); /* just after key j */
    } else if (model_rng_chance(&m->rng, 200) && n > 1) {
        n--; /* a prefix of key j: at or before it */
    }
    r->end = span_make(r->end_buf, n);
    if (model_key_cmp(r->end, r->key) <= 0) r->end = end; /* keep end > key */
}

/* A prefix of a universe key: mostly one that covers at most 256 keys of the universe (it is
 * lengthened until it does), rarely a 1-2 byte one that covers thousands. */
static void mv_pick_prefix(struct mv_model *m, struct mv_range *r)
{
    struct span base = model_key(&m->keys, (u32)model_rng_below(&m->rng, m->keys.count));
    bool broad = model_rng_chance(&m->rng, 30);
    size_t n;
    if (!broad) {
        size_t cut = (size_t)model_rng_below(&m->rng, 4);
        n = base.len > cut ? base.len - cut : 1;
    } else {
        n = 1 + (size_t)model_rng_below(&m->rng, KEEL_MIN(base.len, (size_t)2));
    }
    /* Bound: n grows to base.len at most. */
    for (;; n++) {
        mv_set_key(r, span_make(base.ptr, n));
        r->end = mvcc_prefix_end(r->key, r->end_buf);
        mv_range_bounds(m, r);
        if (broad || n == base.len || r->hi - r->lo <= 256) break;
    }
    u8 want_buf[MODEL_PROBE_LEN_MAX];
    struct span want = model_prefix_end(r->key, want_buf);
    MODEL_CHECK(model_key_eq(r->end, want),
                "mvcc_prefix_end (prefix len %zu): got len %zu, want %zu", r->key.len, r->end.len,
                want.len);
}

void mv_pick_range(struct mv_model *m, enum mv_range_kind kind, struct mv_range *r)
{
    r->end = span_make(r->end_buf, 0);
    switch (kind) {
    case MV_RANGE_SINGLE:
        mv_pick_single(m, r);
        break;
    case MV_RANGE_SMALL:
        mv_pick_small(m, r, 40);
        break;
    case MV_RANGE_FEW:
        mv_pick_small(m, r, 8);
        break;
    case MV_RANGE_PREFIX:
        mv_pick_prefix(m, r);
        break;
    case MV_RANGE_TO_END: {
        u32 from = (u32)model_rng_below(&m->rng, KEEL_MIN(m->keys.count, 300u));
        mv_set_key(r, model_key(&m->keys, m->keys.count - 1 - from));
        r->end_buf[0] = 0;
        r->end = span_make(r->end_buf, 1);
        break;
    }
    case MV_RANGE_ALL:
        r->key_buf[0] = 0;
        r->key = span_make(r->key_buf, 1);
        r->end_buf[0] = 0;
        r->end = span_make(r->end_buf, 1);
        break;
    }
    mv_range_bounds(m, r);
}

enum mv_range_kind mv_pick_range_kind(struct mv_model *m)
{
    u32 roll = (u32)model_rng_below(&m->rng, 10000);
    if (roll < 3500) return MV_RANGE_SINGLE;
    if (roll < 7200) return MV_RANGE_SMALL;
    if (roll < 9400) return MV_RANGE_PREFIX;
    if (roll < 9998) return MV_RANGE_TO_END;
    return MV_RANGE_ALL;
}

/* ---- the expected answer --------------------------------------------------------------- */

static bool mv_passes(const struct mvcc_range_req *q, const struct mv_version *v)
{
    if (q->min_mod_revision != 0 && v->mod_rev < q->min_mod_revision) return false;
    if (q->max_mod_revision != 0 && v->mod_rev > q->max_mod_revision) return false;
    if (q->min_create_revision != 0 && v->create_rev < q->min_create_revision) return false;
    if (q->max_create_revision != 0 && v->create_rev > q->max_create_revision) return false;
    return true;
}

/* Compares two generated values without generating them whole: 8 bytes at a time (the
 * streams of mv_value), stopping at the first difference. */
static int mv_value_cmp(const struct mv_version *a, const struct mv_version *b)
{
    u64 sa = a->vseed;
    u64 sb = b->vseed;
    u32 n = KEEL_MIN(a->vlen, b->vlen);
    for (u32 i = 0; i < n; i += 8) {
        u64 xa = model_splitmix64(&sa);
        u64 xb = model_splitmix64(&sb);
        u32 bytes = KEEL_MIN(8u, n - i);
        if (bytes < 8) {
            u64 mask = ((u64)1 << (8 * bytes)) - 1;
            xa &= mask;
            xb &= mask;
        }
        /* Byte j of a chunk is bits 8j..8j+7: byte-swapped, integer order is memcmp order. */
        if (xa != xb) return __builtin_bswap64(xa) < __builtin_bswap64(xb) ? -1 : 1;
    }
    return (a->vlen > b->vlen) - (a->vlen < b->vlen);
}

static int mv_target_cmp(enum mvcc_sort_target t, const struct mv_version *a,
                         const struct mv_version *b)
{
    i64 x = 0;
    i64 y = 0;
    switch (t) {
    case MVCC_SORT_VERSION:
        x = a->version, y = b->version;
        break;
    case MVCC_SORT_CREATE:
        x = a->create_rev, y = b->create_rev;
        break;
    case MVCC_SORT_MOD:
        x = a->mod_rev, y = b->mod_rev;
        break;
    case MVCC_SORT_VALUE:
        return mv_value_cmp(a, b);
    case MVCC_SORT_KEY:
        break;
    }
    return (x > y) - (x < y);
}

static enum mvcc_sort_target mv_sorting_target; /* qsort has no context argument */

static int mv_exp_cmp(const void *pa, const void *pb)
{
    const struct mv_exp *a = pa;
    const struct mv_exp *b = pb;
    int c = mv_target_cmp(mv_sorting_target, a->v, b->v);
    if (c != 0) return c;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static void mv_exp_reverse(struct mv_exp *e, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        struct mv_exp t = e[i];
        e[i] = e[n - 1 - i];
        e[n - 1 - i] = t;
    }
}

/* Orders m->exp[0..n) as the range must (see MV_SORT_NONE_ASCENDS); returns false when the order is
 * by key. */
static bool mv_exp_sort(struct mv_model *m, const struct mvcc_range_req *q, size_t n)
{
    bool by_key = q->sort_target == MVCC_SORT_KEY;
    if (!MV_SORT_NONE_ASCENDS && q->sort_order == MVCC_SORT_NONE) by_key = true;
    if (by_key) {
        if (q->sort_order == MVCC_SORT_DESCEND) mv_exp_reverse(m->exp, n);
        return false;
    }
    mv_sorting_target = q->sort_target;
    qsort(m->exp, n, sizeof(struct mv_exp), mv_exp_cmp);
    if (q->sort_order == MVCC_SORT_DESCEND) mv_exp_reverse(m->exp, n);
    return true;
}

/* Fills m->exp with the qualifying keys of r at rev; returns the count before filters. */
static i64 mv_expect(struct mv_model *m, const struct mv_range *r, const struct mvcc_range_req *q,
                     i64 rev, size_t *n_out)
{
    i64 count = 0;
    size_t n = 0;
    for (u32 idx = r->lo; idx < r->hi; idx++) {
        const struct mv_version *v = mv_at(&m->k[idx], rev);
        if (v == NULL) continue;
        count++;
        if (!mv_passes(q, v)) continue;
        m->exp[n].idx = idx;
        m->exp[n].v = v;
        n++;
    }
    *n_out = n;
    return count;
}

/* ---- comparing an answer ---------------------------------------------------------------- */

static const char *mv_describe(const struct mv_range *r, const struct mvcc_range_req *q, i64 rev)
{
    static char text[256];
    snprintf(text, sizeof(text),
             "range keys [#%u, #%u) (key len %zu, end len %zu) at rev %lld: limit %lld "
             "keys_only %d count_only %d sort %d/%d mod [%lld, %lld] create [%lld, %lld]",
             r->lo, r->hi, r->key.len, r->end.len, (long long)rev, (long long)q->limit,
             q->keys_only, q->count_only, q->sort_order, q->sort_target,
             (long long)q->min_mod_revision, (long long)q->max_mod_revision,
             (long long)q->min_create_revision, (long long)q->max_create_revision);
    return text;
}

/* Entry i of a result sorted on a target that may tie: any qualifying key with the right
 * target value may stand there, once. */
static void mv_check_tied(struct mv_model *m, const struct mv_range *r,
                          const struct mvcc_range_req *q, i64 rev, size_t i,
                          const struct mvcc_kv *kv)
{
    u32 idx = model_keys_lower_bound(&m->keys, kv->key);
    MODEL_CHECK(idx < m->keys.count && model_key_eq(model_key(&m->keys, idx), kv->key),
                "%s: entry %zu has a key never written", mv_describe(r, q, rev), i);
    MODEL_CHECK(idx >= r->lo && idx < r->hi, "%s: entry %zu is key #%u, outside the range",
                mv_describe(r, q, rev), i, idx);
    MODEL_CHECK(m->k[idx].seen != m->seen_serial, "%s: entry %zu repeats key #%u",
                mv_describe(r, q, rev), i, idx);
    m->k[idx].seen = m->seen_serial;
    const struct mv_version *v = mv_at(&m->k[idx], rev);
    MODEL_CHECK(v != NULL, "%s: entry %zu is key #%u, absent at that revision",
                mv_describe(r, q, rev), i, idx);
    MODEL_CHECK(mv_passes(q, v), "%s: entry %zu (key #%u, mod %lld, create %lld) fails a filter",
                mv_describe(r, q, rev), i, idx, (long long)v->mod_rev, (long long)v->create_rev);
    mv_check_kv(m, idx, v, kv, q->keys_only, "sorted range entry");
    MODEL_CHECK(mv_target_cmp(q->sort_target, v, m->exp[i].v) == 0,
                "%s: entry %zu (key #%u) is out of sort order (model has key #%u there)",
                mv_describe(r, q, rev), i, idx, m->exp[i].idx);
}

static void mv_check_result(struct mv_model *m, const struct mv_range *r,
                            const struct mvcc_range_req *q, i64 rev,
                            const struct mvcc_range_result *out)
{
    size_t n = 0;
    i64 count = mv_expect(m, r, q, rev, &n);
    bool tied = mv_exp_sort(m, q, n);
    bool more = q->limit > 0 && n > (size_t)q->limit;
    if (more) n = (size_t)q->limit;
    MODEL_CHECK(out->count == count, "%s: count %lld, want %lld", mv_describe(r, q, rev),
                (long long)out->count, (long long)count);
    MODEL_CHECK(out->revision == m->rev, "%s: header revision %lld, want %lld",
                mv_describe(r, q, rev), (long long)out->revision, (long long)m->rev);
    if (q->count_only) {
        MODEL_CHECK(out->kvs_len == 0, "%s: count_only returned %zu entries",
                    mv_describe(r, q, rev), out->kvs_len);
        return;
    }
    MODEL_CHECK(out->kvs_len == n, "%s: %zu entries, want %zu", mv_describe(r, q, rev),
                out->kvs_len, n);
    MODEL_CHECK(out->more == more, "%s: more %d, want %d", mv_describe(r, q, rev), out->more, more);
    m->seen_serial++;
    for (size_t i = 0; i < n; i++) {
        const struct mvcc_kv *kv = &out->kvs[i];
        if (tied) {
            mv_check_tied(m, r, q, rev, i, kv);
            continue;
        }
        MODEL_CHECK(model_key_eq(kv->key, model_key(&m->keys, m->exp[i].idx)),
                    "%s: entry %zu: key (len %zu) is not key #%u", mv_describe(r, q, rev), i,
                    kv->key.len, m->exp[i].idx);
        mv_check_kv(m, m->exp[i].idx, m->exp[i].v, kv, q->keys_only, "range entry");
    }
}

/* ---- range ops ----------------------------------------------------------------------------- */

/* A filter bound: mostly a real mod or create revision of a version of a key in the range,
 * so that bounds land exactly on entries (the inclusive edge), else any revision. */
static i64 mv_pick_filter_rev(struct mv_model *m, const struct mv_range *r)
{
    u32 idx = r->hi > r->lo ? r->lo + (u32)model_rng_below(&m->rng, r->hi - r->lo) : 0;
    const struct mv_key *k = &m->k[idx];
    if (k->len > 0 && model_rng_chance(&m->rng, 700)) {
        const struct mv_version *v = &k->v[model_rng_below(&m->rng, k->len)];
        if (!v->tomb && model_rng_chance(&m->rng, 500)) return v->create_rev;
        return v->mod_rev;
    }
    return 1 + (i64)model_rng_below(&m->rng, (u64)m->rev);
}

static void mv_pick_options(struct mv_model *m, const struct mv_range *r, struct mvcc_range_req *q)
{
    u32 roll = (u32)model_rng_below(&m->rng, 100);
    if (roll < 30) {
        q->limit = 1 + (i64)model_rng_below(&m->rng, 5);
    } else if (roll < 50) {
        q->limit = 1 + (i64)model_rng_below(&m->rng, 50);
    }
    q->keys_only = model_rng_chance(&m->rng, 150);
    q->count_only = model_rng_chance(&m->rng, 80);
    if (model_rng_chance(&m->rng, 400)) {
        q->sort_order = (enum mvcc_sort_order)model_rng_below(&m->rng, 3);
        q->sort_target = (enum mvcc_sort_target)model_rng_below(&m->rng, 5);
    }
    if (model_rng_chance(&m->rng, 80)) q->min_mod_revision = mv_pick_filter_rev(m, r);
    if (model_rng_chance(&m->rng, 80)) q->max_mod_revision = mv_pick_filter_rev(m, r);
    if (model_rng_chance(&m->rng, 80)) q->min_create_revision = mv_pick_filter_rev(m, r);
    if (model_rng_chance(&m->rng, 80)) q->max_create_revision = mv_pick_filter_rev(m, r);
    bool value_sort = q->sort_target == MVCC_SORT_VALUE &&
                      (MV_SORT_NONE_ASCENDS || q->sort_order != MVCC_SORT_NONE);
    if (!MV_CHECK_KEYS_ONLY_VALUE_SORT && value_sort) q->keys_only = false;
}

void mv_op_range(struct mv_model *m)
{
    struct mv_range r;
    mv_pick_range(m, mv_pick_range_kind(m), &r);
    struct mvcc_range_req q;
    memset(&q, 0, sizeof(q));
    q.key = r.key;
    q.range_end = r.end;
    q.revision = mv_pick_rev(m);
    mv_pick_options(m, &r, &q);
    struct mvcc_range_result out;
    memset(&out, 0, sizeof(out));
    i64 rev = q.revision == 0 ? m->rev : q.revision;
    int rc = mvcc_range(m->store, &q, &out);
    MODEL_CHECK(rc == KEEL_OK, "%s: rc=%d (%s)", mv_describe(&r, &q, rev), rc, keel_err_str(rc));
    mv_check_result(m, &r, &q, rev, &out);
    m->n_range++;
}

/* Reads outside [compact_revision, revision] fail with the error for their side. */
void mv_op_range_errors(struct mv_model *m)
{
    struct mv_range r;
    mv_pick_range(m, MV_RANGE_SMALL, &r);
    struct mvcc_range_req q;
    memset(&q, 0, sizeof(q));
    q.key = r.key;
    q.range_end = r.end;
    int want = KEEL_EFUTURE_REV;
    q.revision = m->rev + 1 + (i64)model_rng_below(&m->rng, 1000);
    if (m->compact_rev > 1 && model_rng_chance(&m->rng, 600)) {
        want = KEEL_ECOMPACTED;
        q.revision = 1 + (i64)model_rng_below(&m->rng, (u64)(m->compact_rev - 1));
    }
    struct mvcc_range_result out;
    int rc = mvcc_range(m->store, &q, &out);
    MODEL_CHECK(rc == want, "%s: rc=%d (%s), want %d (%s); compact_rev %lld, rev %lld",
                mv_describe(&r, &q, q.revision), rc, keel_err_str(rc), want, keel_err_str(want),
                (long long)m->compact_rev, (long long)m->rev);
    m->n_fail_expected++;
}

void mv_compare_range(struct mv_model *m, const struct mv_range *r, i64 rev)
{
    struct mvcc_range_req q;
    memset(&q, 0, sizeof(q));
    q.key = r->key;
    q.range_end = r->end;
    q.revision = rev;
    struct mvcc_range_result out;
    int rc = mvcc_range(m->store, &q, &out);
    MODEL_CHECK(rc == KEEL_OK, "%s: rc=%d (%s)", mv_describe(r, &q, rev), rc, keel_err_str(rc));
    mv_check_result(m, r, &q, rev, &out);
}

void mv_compare_all(struct mv_model *m, i64 rev)
{
    struct mv_range r;
    mv_pick_range(m, MV_RANGE_ALL, &r);
    mv_compare_range(m, &r, rev);
}
