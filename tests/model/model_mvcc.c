/*
 * model_mvcc.c — core/mvcc against the naive model of model_mvcc.h: puts,
 * delete ranges, batches (committed, aborted, refused for a duplicate key or
 * too many writes), compactions (whole, and stepwise with reads and writes
 * between the steps), error cases, mvcc_check() and the store's figures.
 *
 * The run has phases (grow, steady, shrink) so the store swings between a few
 * thousand and tens of thousands of keys while compaction keeps removing
 * deleted keys from the tree. It ends by comparing every key at several
 * revisions, compacting to the current revision, deleting everything and
 * checking that the store is empty.
 */
#include "tests/model/model_mvcc.h"

#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MV_CHECK_EVERY   50000u /* mvcc_check() is O(n) */
#define MV_STATS_EVERY   1000u
#define MV_COMPACT_PER   1500u /* one compaction per this many ops, on average */
#define MV_BIG_BATCH_PER 20000u

static_assert(MV_KEY_LEN_MAX <= MODEL_KEY_LEN_MAX, "universe keys must fit the key buffers");
static_assert(MV_VALUE_MAX + MV_VALUE_OVER < 1024, "values are generated into small buffers");

/* ---- the model --------------------------------------------------------------------------- */

void mv_value(u64 vseed, u32 vlen, u8 *dst)
{
    u64 state = vseed;
    for (u32 i = 0; i < vlen; i += 8) {
        u64 x = model_splitmix64(&state);
        u32 n = KEEL_MIN(8u, vlen - i);
        for (u32 j = 0; j < n; j++) dst[i + j] = (u8)(x >> (8 * j));
    }
}

const struct mv_version *mv_live(const struct mv_key *k)
{
    if (k->len == 0 || k->v[k->len - 1].tomb) return NULL;
    return &k->v[k->len - 1];
}

const struct mv_version *mv_at(const struct mv_key *k, i64 rev)
{
    /* Bound: the key's versions, few after each compaction. */
    for (u32 i = k->len; i > 0; i--) {
        const struct mv_version *v = &k->v[i - 1];
        if (v->mod_rev <= rev) return v->tomb ? NULL : v;
    }
    return NULL;
}

void mv_check_kv(struct mv_model *m, u32 idx, const struct mv_version *v, const struct mvcc_kv *kv,
                 bool keys_only, const char *what)
{
    MODEL_CHECK(model_key_eq(kv->key, model_key(&m->keys, idx)), "%s: key #%u: wrong key (len %zu)",
                what, idx, kv->key.len);
    MODEL_CHECK(kv->create_revision == v->create_rev,
                "%s: key #%u: create_revision %lld, want %lld", what, idx,
                (long long)kv->create_revision, (long long)v->create_rev);
    MODEL_CHECK(kv->mod_revision == v->mod_rev, "%s: key #%u: mod_revision %lld, want %lld", what,
                idx, (long long)kv->mod_revision, (long long)v->mod_rev);
    MODEL_CHECK(kv->version == v->version, "%s: key #%u: version %lld, want %lld", what, idx,
                (long long)kv->version, (long long)v->version);
    MODEL_CHECK(kv->lease == v->lease, "%s: key #%u: lease %lld, want %lld", what, idx,
                (long long)kv->lease, (long long)v->lease);
    u32 vlen = keys_only ? 0 : v->vlen;
    MODEL_CHECK(kv->value.len == vlen, "%s: key #%u: value length %zu, want %u", what, idx,
                kv->value.len, vlen);
    if (vlen == 0) return;
    mv_value(v->vseed, vlen, m->value_a);
    MODEL_CHECK(memcmp(kv->value.ptr, m->value_a, vlen) == 0,
                "%s: key #%u: value bytes differ (mod_revision %lld, length %u)", what, idx,
                (long long)v->mod_rev, vlen);
}

/* A read revision: 0 (current), the current one by number, or any in [compact, current]. */
i64 mv_pick_rev(struct mv_model *m)
{
    u32 roll = (u32)model_rng_below(&m->rng, 100);
    if (roll < 45) return 0;
    if (roll < 55) return m->rev;
    i64 low = KEEL_MAX(m->compact_rev, (i64)1);
    if (roll < 60) return low;
    return low + (i64)model_rng_below(&m->rng, (u64)(m->rev - low + 1));
}

static void mv_append(struct mv_model *m, u32 idx, const struct mv_version *nv)
{
    struct mv_key *k = &m->k[idx];
    if (k->len == k->cap) {
        k->cap = k->cap == 0 ? 2 : k->cap * 2;
        k->v = realloc(k->v, sizeof(struct mv_version) * k->cap);
        cr_assert(k->v != NULL);
    }
    if (k->len == 0) m->keys_tree++;
    k->v[k->len++] = *nv;
    m->records++;
}

static void mv_apply(struct mv_model *m, const struct mv_pend *p)
{
    const struct mv_version *live = mv_live(&m->k[p->idx]);
    size_t klen = m->keys.len[p->idx];
    struct mv_version nv = {.mod_rev = m->rev, .tomb = p->tomb};
    if (p->tomb) {
        cr_assert(live != NULL);
        m->keys_live--;
        m->key_bytes -= klen;
        m->value_bytes -= live->vlen;
    } else {
        nv.create_rev = live != NULL ? live->create_rev : m->rev;
        nv.version = live != NULL ? live->version + 1 : 1;
        nv.lease = p->lease;
        nv.vseed = p->vseed;
        nv.vlen = p->vlen;
        if (live != NULL) {
            m->value_bytes -= live->vlen;
        } else {
            m->keys_live++;
            m->key_bytes += klen;
        }
        m->value_bytes += p->vlen;
    }
    mv_append(m, p->idx, &nv); /* last: it may move the array live points into */
}

/* Applies the open batch's writes at revision + 1 (none: no revision is used). */
static void mv_model_commit(struct mv_model *m)
{
    if (m->pend_len > 0) m->rev++;
    for (u32 i = 0; i < m->pend_len; i++) mv_apply(m, &m->pend[i]);
    m->pend_len = 0;
    m->batch_serial++;
    if (m->keys_live > m->live_max) m->live_max = m->keys_live;
}

static void mv_model_abort(struct mv_model *m)
{
    m->pend_len = 0;
    m->batch_serial++;
}

static void mv_pend_push(struct mv_model *m, const struct mv_pend *p)
{
    cr_assert(m->pend_len <= MV_BATCH_OPS_MAX && m->k[p->idx].mark != m->batch_serial);
    m->pend[m->pend_len++] = *p;
    m->k[p->idx].mark = m->batch_serial;
}

/* Compaction at c: per key, drop what is older than the newest version at or below c, and
 * that one too if it is a tombstone. */
static void mv_model_compact(struct mv_model *m, i64 c)
{
    for (u32 idx = 0; idx < m->keys.count; idx++) {
        struct mv_key *k = &m->k[idx];
        u32 j = k->len;
        while (j > 0 && k->v[j - 1].mod_rev > c) j--;
        if (j == 0) continue; /* every version is newer than c */
        u32 drop = j - 1 + (k->v[j - 1].tomb ? 1 : 0);
        if (drop == 0) continue;
        memmove(k->v, k->v + drop, sizeof(struct mv_version) * (k->len - drop));
        k->len -= drop;
        m->records -= drop;
        if (k->len == 0) m->keys_tree--;
    }
    m->compact_rev = c;
}

/* ---- figures ----------------------------------------------------------------------------- */

static void mv_check_stats(struct mv_model *m)
{
    struct mvcc_stats st;
    mvcc_stats(m->store, &st);
    MODEL_CHECK(st.revision == m->rev && mvcc_revision(m->store) == m->rev,
                "revision %lld, want %lld", (long long)st.revision, (long long)m->rev);
    MODEL_CHECK(st.compact_revision == m->compact_rev, "compact_revision %lld, want %lld",
                (long long)st.compact_revision, (long long)m->compact_rev);
    MODEL_CHECK(st.keys_live == m->keys_live, "keys_live %llu, want %llu",
                (unsigned long long)st.keys_live, (unsigned long long)m->keys_live);
    MODEL_CHECK(st.key_bytes == m->key_bytes, "key_bytes %llu, want %llu",
                (unsigned long long)st.key_bytes, (unsigned long long)m->key_bytes);
    MODEL_CHECK(st.value_bytes == m->value_bytes, "value_bytes %llu, want %llu",
                (unsigned long long)st.value_bytes, (unsigned long long)m->value_bytes);
    if (m->job) return; /* a running job has not yet freed what the model dropped */
    MODEL_CHECK(st.keys_tree == m->keys_tree, "keys_tree %llu, want %llu",
                (unsigned long long)st.keys_tree, (unsigned long long)m->keys_tree);
    MODEL_CHECK(st.records == m->records, "records %llu, want %llu", (unsigned long long)st.records,
                (unsigned long long)m->records);
}

static void mv_check_quick(struct mv_model *m)
{
    MODEL_CHECK(mvcc_revision(m->store) == m->rev, "revision %lld, want %lld",
                (long long)mvcc_revision(m->store), (long long)m->rev);
    MODEL_CHECK(mvcc_compact_revision(m->store) == m->compact_rev,
                "compact_revision %lld, want %lld", (long long)mvcc_compact_revision(m->store),
                (long long)m->compact_rev);
    MODEL_CHECK(!mvcc_batch_open(m->store), "a batch is open between ops");
}

static void mv_check_store(struct mv_model *m)
{
    MODEL_CHECK(mvcc_check(m->store), "mvcc_check failed (%llu live keys, job %d)",
                (unsigned long long)m->keys_live, m->job);
    mv_check_stats(m);
}

/* ---- puts -------------------------------------------------------------------------------- */

static u32 mv_pick_vlen(struct mv_model *m)
{
    if (model_rng_chance(&m->rng, 10)) {
        return MV_VALUE_MAX + 1 + (u32)model_rng_below(&m->rng, MV_VALUE_OVER);
    }
    if (model_rng_chance(&m->rng, 60)) return 0;
    if (model_rng_chance(&m->rng, 10)) return MV_VALUE_MAX;
    return (u32)model_rng_below(&m->rng, MV_VALUE_MAX + 1);
}

static i64 mv_pick_lease(struct mv_model *m)
{
    u32 roll = (u32)model_rng_below(&m->rng, 100);
    if (roll < 70) return 0;
    if (roll < 97) return 1 + (i64)model_rng_below(&m->rng, 1000);
    return (i64)(model_rng_next(&m->rng) >> 1); /* large: every varint length */
}

/* Puts key idx (not written by the open batch) and checks the previous version. */
static void mv_put(struct mv_model *m, u32 idx, u32 vlen, bool in_batch)
{
    /* One error at a time: which of two a store reports first is not in the contract. */
    if (in_batch && m->pend_len + 1 > MV_BATCH_OPS_MAX) vlen = KEEL_MIN(vlen, MV_VALUE_MAX);
    struct mv_pend p = {.idx = idx, .vlen = vlen, .lease = mv_pick_lease(m)};
    /* A few shared seeds make equal values (and values that prefix each other) common. */
    p.vseed =
        model_rng_chance(&m->rng, 250) ? model_rng_below(&m->rng, 8) : model_rng_next(&m->rng);
    mv_value(p.vseed, vlen, m->value_b);
    bool want_prev = model_rng_chance(&m->rng, 700);
    struct mvcc_kv prev;
    bool had_prev = false;
    int want = KEEL_OK;
    if (vlen > MV_VALUE_MAX) want = KEEL_EVALUE_TOO_LARGE;
    if (in_batch && m->pend_len + 1 > MV_BATCH_OPS_MAX) want = KEEL_ETOO_MANY_OPS;
    int rc = mvcc_put(m->store, model_key(&m->keys, idx), span_make(m->value_b, vlen), p.lease,
                      want_prev ? &prev : NULL, &had_prev);
    MODEL_CHECK(rc == want,
                "put key #%u (value %u bytes, batch %d, %u writes): rc=%d (%s), want %d", idx, vlen,
                in_batch, m->pend_len, rc, keel_err_str(rc), want);
    if (rc != KEEL_OK) {
        m->n_fail_expected++;
        return;
    }
    const struct mv_version *live = mv_live(&m->k[idx]);
    MODEL_CHECK(had_prev == (live != NULL), "put key #%u: had_prev %d, want %d", idx, had_prev,
                live != NULL);
    if (want_prev && live != NULL) mv_check_kv(m, idx, live, &prev, false, "put prev");
    mv_pend_push(m, &p);
    if (!in_batch) mv_model_commit(m);
    m->n_put++;
}

/* A key the open batch has not written (the batch is small: a few tries find one). */
static u32 mv_pick_unwritten(struct mv_model *m)
{
    u32 idx = (u32)model_rng_below(&m->rng, m->keys.count);
    /* Bound: the batch has written at most MV_BATCH_OPS_MAX keys; the cap is the universe. */
    for (u32 i = 0; i < m->keys.count && m->k[idx].mark == m->batch_serial; i++) {
        idx = (idx + 1) % m->keys.count;
    }
    return idx;
}

/* ---- deletes ------------------------------------------------------------------------------ */

struct mv_del_ctx {
    struct mv_model *m;
    const struct mv_range *r;
    u64 reported;
    u64 stop_after; /* 0: never stop reporting */
};

/* prev_fn: each reported key must be live in the range, once, with its last version. */
static int mv_on_deleted(void *ctx, const struct mvcc_kv *kv)
{
    struct mv_del_ctx *c = ctx;
    struct mv_model *m = c->m;
    c->reported++;
    MODEL_CHECK(c->stop_after == 0 || c->reported <= c->stop_after,
                "prev_fn called again after it returned nonzero (call %llu)",
                (unsigned long long)c->reported);
    u32 idx = model_keys_lower_bound(&m->keys, kv->key);
    MODEL_CHECK(idx < m->keys.count && model_key_eq(model_key(&m->keys, idx), kv->key),
                "prev_fn reported a key never written (len %zu)", kv->key.len);
    MODEL_CHECK(idx >= c->r->lo && idx < c->r->hi, "prev_fn reported key #%u outside [#%u, #%u)",
                idx, c->r->lo, c->r->hi);
    MODEL_CHECK(m->k[idx].seen != m->seen_serial, "prev_fn reported key #%u twice", idx);
    m->k[idx].seen = m->seen_serial;
    const struct mv_version *live = mv_live(&m->k[idx]);
    MODEL_CHECK(live != NULL, "prev_fn reported key #%u, which is not live", idx);
    mv_check_kv(m, idx, live, kv, false, "delete prev_fn");
    return c->stop_after != 0 && c->reported >= c->stop_after;
}

/* Live keys in [r->lo, r->hi) (the open batch has written none of them). */
static u64 mv_count_live(struct mv_model *m, const struct mv_range *r)
{
    u64 n = 0;
    for (u32 idx = r->lo; idx < r->hi; idx++) n += mv_live(&m->k[idx]) != NULL;
    return n;
}

static bool mv_range_has_pending(const struct mv_model *m, const struct mv_range *r)
{
    for (u32 i = 0; i < m->pend_len; i++) {
        if (m->pend[i].idx >= r->lo && m->pend[i].idx < r->hi) return true;
    }
    return false;
}

/* Deletes range r; in a batch, r must hold no key the batch wrote. */
static void mv_delete(struct mv_model *m, const struct mv_range *r, bool in_batch)
{
    u64 live = mv_count_live(m, r);
    int want = m->pend_len + live > MV_BATCH_OPS_MAX ? KEEL_ETOO_MANY_OPS : KEEL_OK;
    struct mv_del_ctx c = {.m = m, .r = r};
    if (model_rng_chance(&m->rng, 100)) c.stop_after = 1 + model_rng_below(&m->rng, 3);
    m->seen_serial++;
    u64 deleted = UINT64_MAX;
    int rc = mvcc_delete_range(m->store, r->key, r->end, &deleted, mv_on_deleted, &c);
    MODEL_CHECK(rc == want,
                "delete [#%u, #%u) (%llu live, batch %d, %u writes): rc=%d (%s), want %d", r->lo,
                r->hi, (unsigned long long)live, in_batch, m->pend_len, rc, keel_err_str(rc), want);
    if (rc != KEEL_OK) {
        m->n_fail_expected++;
        return;
    }
    MODEL_CHECK(deleted == live, "delete [#%u, #%u): deleted %llu, want %llu", r->lo, r->hi,
                (unsigned long long)deleted, (unsigned long long)live);
    u64 reports = c.stop_after != 0 ? KEEL_MIN(c.stop_after, live) : live;
    MODEL_CHECK(c.reported == reports, "delete [#%u, #%u): prev_fn called %llu times, want %llu",
                r->lo, r->hi, (unsigned long long)c.reported, (unsigned long long)reports);
    for (u32 idx = r->lo; idx < r->hi; idx++) {
        if (mv_live(&m->k[idx]) == NULL) continue;
        struct mv_pend p = {.idx = idx, .tomb = true};
        mv_pend_push(m, &p);
    }
    if (!in_batch) mv_model_commit(m);
    m->n_del++;
}

/* Picks a range of the kind and deletes it; false if it overlaps the open batch's writes. */
static bool mv_op_delete(struct mv_model *m, enum mv_range_kind kind, bool in_batch)
{
    struct mv_range r;
    mv_pick_range(m, kind, &r);
    if (in_batch && mv_range_has_pending(m, &r)) return false;
    mv_delete(m, &r, in_batch);
    return true;
}

/* ---- batches -------------------------------------------------------------------------------- */

static int mv_on_deleted_quiet(void *ctx, const struct mvcc_kv *kv)
{
    (void)kv;
    ++*(u64 *)ctx;
    return 0;
}

/* Writes a key the open batch already wrote: KEEL_EDUPLICATE_KEY, and the batch as it was. */
static void mv_dup_attempt(struct mv_model *m)
{
    const struct mv_pend *p = &m->pend[model_rng_below(&m->rng, m->pend_len)];
    struct span key = model_key(&m->keys, p->idx);
    int rc;
    const char *how;
    if (!p->tomb && model_rng_chance(&m->rng, 400)) {
        u64 deleted = 0;
        u64 calls = 0;
        how = "delete of a key the batch put";
        rc = mvcc_delete_range(m->store, key, span_make(key.ptr, 0), &deleted, mv_on_deleted_quiet,
                               &calls);
    } else {
        bool had_prev = false;
        how = p->tomb ? "put of a key the batch deleted" : "put of a key the batch put";
        rc = mvcc_put(m->store, key, span_make(m->value_b, 3), 0, NULL, &had_prev);
    }
    MODEL_CHECK(rc == KEEL_EDUPLICATE_KEY, "%s (key #%u): rc=%d (%s), want KEEL_EDUPLICATE_KEY",
                how, p->idx, rc, keel_err_str(rc));
    MODEL_CHECK(mvcc_batch_open(m->store), "the batch closed after a refused write");
    m->n_dup++;
}

static void mv_batch_one(struct mv_model *m)
{
    u32 roll = (u32)model_rng_below(&m->rng, 100);
    if (roll < 60) {
        mv_put(m, mv_pick_unwritten(m), mv_pick_vlen(m), true);
    } else if (roll < 80) {
        mv_op_delete(m, MV_RANGE_SINGLE, true);
    } else if (roll < 92) {
        mv_op_delete(m, MV_RANGE_FEW, true);
    } else if (roll < 96) {
        int rc = mvcc_batch_begin(m->store);
        MODEL_CHECK(rc == KEEL_ENO_BATCH, "begin inside a batch: rc=%d, want KEEL_ENO_BATCH", rc);
        MODEL_CHECK(mvcc_batch_open(m->store), "a refused begin closed the open batch");
    } else {
        mv_op_delete(m, MV_RANGE_PREFIX, true);
    }
}

static void mv_batch_end(struct mv_model *m, u32 abort_pm)
{
    if (model_rng_chance(&m->rng, abort_pm)) {
        mvcc_batch_abort(m->store);
        mv_model_abort(m);
        m->n_abort++;
    } else {
        i64 rev = -1;
        i64 want = m->pend_len > 0 ? m->rev + 1 : m->rev;
        int rc = mvcc_batch_commit(m->store, &rev);
        MODEL_CHECK(rc == KEEL_OK, "commit: rc=%d (%s)", rc, keel_err_str(rc));
        MODEL_CHECK(rev == want, "commit of %u writes: revision %lld, want %lld", m->pend_len,
                    (long long)rev, (long long)want);
        mv_model_commit(m);
    }
    MODEL_CHECK(!mvcc_batch_open(m->store), "batch still open after it ended");
    MODEL_CHECK(mvcc_revision(m->store) == m->rev, "revision %lld after the batch, want %lld",
                (long long)mvcc_revision(m->store), (long long)m->rev);
}

/* A batch of a few writes; sometimes a refused duplicate, then (mostly) abort. */
static void mv_op_batch(struct mv_model *m)
{
    int rc = mvcc_batch_begin(m->store);
    MODEL_CHECK(rc == KEEL_OK, "begin: rc=%d (%s)", rc, keel_err_str(rc));
    MODEL_CHECK(mvcc_batch_open(m->store), "no batch open after begin");
    u32 n = 1 + (u32)model_rng_below(&m->rng, 8);
    for (u32 i = 0; i < n; i++) mv_batch_one(m);
    /* (With the batch full, which of two errors comes first is not in the contract.) */
    bool dup = m->pend_len > 0 && m->pend_len < MV_BATCH_OPS_MAX && model_rng_chance(&m->rng, 150);
    if (dup) mv_dup_attempt(m);
    /* After a refused write the batch keeps its earlier writes: committing them is legal. */
    mv_batch_end(m, dup ? 700 : 150);
    m->n_batch++;
}

/* A batch filled to a few writes short of batch_ops_max, then puts and short deletes past the
 * limit: each write that would exceed it is KEEL_ETOO_MANY_OPS, and the batch keeps the rest. */
static void mv_op_big_batch(struct mv_model *m)
{
    int rc = mvcc_batch_begin(m->store);
    MODEL_CHECK(rc == KEEL_OK, "begin: rc=%d (%s)", rc, keel_err_str(rc));
    u32 start = (u32)model_rng_below(&m->rng, m->keys.count);
    u32 fill = MV_BATCH_OPS_MAX - (u32)model_rng_below(&m->rng, 4);
    for (u32 i = 0; i < fill; i++) {
        mv_put(m, (start + i) % m->keys.count, (u32)model_rng_below(&m->rng, 16), true);
    }
    MODEL_CHECK(m->pend_len == fill, "big batch holds %u writes, want %u", m->pend_len, fill);
    for (u32 i = 0; i < 6; i++) {
        if (model_rng_chance(&m->rng, 500)) {
            mv_put(m, mv_pick_unwritten(m), 1, true);
        } else {
            mv_op_delete(m, MV_RANGE_FEW, true);
        }
    }
    mv_batch_end(m, 500);
    m->n_batch++;
}

/* ---- compaction ------------------------------------------------------------------------------ */

static void mv_job_done(struct mv_model *m)
{
    m->job = false;
    mv_check_stats(m); /* now records and keys_tree must match the model's */
}

/* Compacts to a recent revision (mostly) or anywhere above the compact revision, all at once
 * or as a job that later ops step through. */
static void mv_op_compact(struct mv_model *m)
{
    if (m->job || m->rev <= m->compact_rev) return;
    u64 span = (u64)(m->rev - m->compact_rev);
    u64 back = model_rng_chance(&m->rng, 700) ? KEEL_MIN(span, (u64)2000) : span;
    i64 c = m->rev - (i64)model_rng_below(&m->rng, back);
    cr_assert(c > m->compact_rev && c <= m->rev);
    if (model_rng_chance(&m->rng, 500)) {
        int rc = mvcc_compact(m->store, c);
        MODEL_CHECK(rc == KEEL_OK, "compact at %lld: rc=%d (%s)", (long long)c, rc,
                    keel_err_str(rc));
        mv_model_compact(m, c);
        mv_check_stats(m);
    } else {
        int rc = mvcc_compact_start(m->store, c);
        MODEL_CHECK(rc == KEEL_OK, "compact_start at %lld: rc=%d (%s)", (long long)c, rc,
                    keel_err_str(rc));
        mv_model_compact(m, c);
        m->job = true;
        m->job_writes = model_rng_chance(&m->rng, 700);
        m->job_steps = 0;
        m->n_job++;
    }
    MODEL_CHECK(mvcc_compact_revision(m->store) == c,
                "compact_revision %lld after compacting at %lld",
                (long long)mvcc_compact_revision(m->store), (long long)c);
    m->n_compact++;
}

/* One bounded step of the running job. */
static void mv_job_step(struct mv_model *m)
{
    u64 keys_max = 1 + model_rng_below(&m->rng, 300);
    bool done = mvcc_compact_step(m->store, keys_max);
    m->job_steps++;
    /* Bound: every step handles at least one key, so a job ends within one step per key. */
    MODEL_CHECK(done || m->job_steps <= m->keys.count + 1,
                "compaction job not done after %llu steps", (unsigned long long)m->job_steps);
    if (done) mv_job_done(m);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void mv_op_errors(struct mv_model *m)
{
    u8 key[MV_KEY_LEN_MAX + 8];
    memset(key, 'k', sizeof(key));
    bool had_prev = false;
    i64 rev = 0;
    int rc;
    switch (model_rng_below(&m->rng, 6)) {
    case 0:
        rc = mvcc_put(m->store, span_make(key, 0), span_make(m->value_b, 1), 0, NULL, &had_prev);
        MODEL_CHECK(rc == KEEL_EKEY_EMPTY, "put of an empty key: rc=%d (%s)", rc, keel_err_str(rc));
        break;
    case 1: {
        size_t len = MV_KEY_LEN_MAX + 1 + (size_t)model_rng_below(&m->rng, 8);
        rc = mvcc_put(m->store, span_make(key, len), span_make(m->value_b, 1), 0, NULL, &had_prev);
        MODEL_CHECK(rc == KEEL_EKEY_TOO_LARGE, "put of a %zu-byte key: rc=%d (%s)", len, rc,
                    keel_err_str(rc));
        break;
    }
    case 2:
        rc = mvcc_batch_commit(m->store, &rev);
        MODEL_CHECK(rc == KEEL_ENO_BATCH, "commit with no batch: rc=%d (%s)", rc, keel_err_str(rc));
        break;
    case 3:
        if (m->job || m->compact_rev < 1) return;
        rev = m->compact_rev - (i64)model_rng_below(&m->rng, (u64)m->compact_rev);
        rc = mvcc_compact(m->store, rev);
        MODEL_CHECK(rc == KEEL_ECOMPACTED, "compact at %lld <= compact revision %lld: rc=%d (%s)",
                    (long long)rev, (long long)m->compact_rev, rc, keel_err_str(rc));
        break;
    case 4:
        if (m->job) return;
        rev = m->rev + 1 + (i64)model_rng_below(&m->rng, 10);
        rc = mvcc_compact(m->store, rev);
        MODEL_CHECK(rc == KEEL_EFUTURE_REV, "compact at %lld > revision %lld: rc=%d (%s)",
                    (long long)rev, (long long)m->rev, rc, keel_err_str(rc));
        break;
    default:
        mv_op_range_errors(m);
        return;
    }
    m->n_fail_expected++;
}

/* ---- the run ------------------------------------------------------------------------------------
 */

static void mv_new_phase(struct mv_model *m)
{
    static const u32 put_pm[] = {450, 450, 330, 200};
    static const u32 del_pm[] = {30, 30, 100, 220};
    static const u32 del_few_pm[] = {3, 3, 10, 30};
    u32 i = (u32)model_rng_below(&m->rng, KEEL_ARRAY_LEN(put_pm));
    m->put_pm = put_pm[i];
    m->del_pm = del_pm[i];
    m->del_few_pm = del_few_pm[i];
    m->phase_left = 20000 + model_rng_below(&m->rng, 150000);
}

static void mv_step(struct mv_model *m)
{
    u32 roll = (u32)model_rng_below(&m->rng, 1000);
    if (m->job && !m->job_writes) roll = 999; /* reads only between this job's steps */
    u32 edge = m->put_pm;
    if (roll < edge) {
        mv_put(m, (u32)model_rng_below(&m->rng, m->keys.count), mv_pick_vlen(m), false);
    } else if (roll < (edge += m->del_pm)) {
        mv_op_delete(m, MV_RANGE_SINGLE, false);
    } else if (roll < (edge += m->del_few_pm)) {
        mv_op_delete(m, MV_RANGE_FEW, false);
    } else if (roll < (edge += 2)) {
        mv_op_delete(m, MV_RANGE_SMALL, false);
    } else if (roll < (edge += 2)) {
        mv_op_delete(m, MV_RANGE_PREFIX, false);
    } else if (roll < (edge += 1)) {
        mv_op_delete(m, MV_RANGE_TO_END, false);
    } else if (roll < (edge += 50)) {
        mv_op_batch(m);
    } else if (roll < (edge += 3)) {
        mv_op_errors(m);
    } else {
        mv_op_range(m);
    }
}

static void mv_setup(struct mv_model *m, u64 seed)
{
    memset(m, 0, sizeof(*m));
    model_rng_seed(&m->rng, seed);
    model_keys_generate(&m->keys, &m->rng, MV_KEYS, MV_KEY_LEN_MAX);
    m->k = calloc(m->keys.count, sizeof(struct mv_key));
    m->exp = calloc(m->keys.count, sizeof(struct mv_exp));
    m->pend = calloc(MV_BATCH_OPS_MAX + 1, sizeof(struct mv_pend));
    m->value_a = malloc(MV_VALUE_MAX + MV_VALUE_OVER);
    m->value_b = malloc(MV_VALUE_MAX + MV_VALUE_OVER);
    cr_assert(m->k && m->exp && m->pend && m->value_a && m->value_b);
    m->batch_serial = 1;
    m->seen_serial = 1;
    mvcc_config_default(&m->cfg);
    m->cfg.key_size_max = MV_KEY_LEN_MAX;
    m->cfg.value_size_max = MV_VALUE_MAX;
    m->cfg.batch_ops_max = MV_BATCH_OPS_MAX;
    m->store = mvcc_create(&m->cfg);
    cr_assert(m->store != NULL, "mvcc_create failed");
    m->rev = mvcc_revision(m->store);
    m->compact_rev = mvcc_compact_revision(m->store);
    MODEL_CHECK(m->rev == 1, "a new store is at revision %lld, want 1", (long long)m->rev);
    MODEL_CHECK(m->compact_rev >= 0 && m->compact_rev <= 1,
                "a new store's compact revision is %lld", (long long)m->compact_rev);
    mv_check_store(m);
}

static void mv_random_ops(struct mv_model *m, u64 ops)
{
    model_run.phase = "random ops";
    model_run.in_loop = true;
    for (u64 op = 0; op < ops; op++) {
        model_run.op = op;
        if (m->phase_left-- == 0) mv_new_phase(m);
        if (m->job && model_rng_chance(&m->rng, 300)) mv_job_step(m);
        mv_step(m);
        mv_check_quick(m);
        if (op % MV_STATS_EVERY == MV_STATS_EVERY - 1) mv_check_stats(m);
        if (op % MV_CHECK_EVERY == MV_CHECK_EVERY - 1) mv_check_store(m);
        if (model_rng_below(&m->rng, MV_COMPACT_PER) == 0) mv_op_compact(m);
        if (model_rng_below(&m->rng, MV_BIG_BATCH_PER) == 0 && (!m->job || m->job_writes)) {
            mv_op_big_batch(m);
        }
    }
    model_run.in_loop = false;
}

/* Every key, alone and in one full range, at the compact revision, a few revisions between
 * and the current one. */
static void mv_final_compare(struct mv_model *m)
{
    model_run.phase = "final: finish the compaction job";
    /* Bound: mv_job_step fails the test if a job outlives one step per key. */
    while (m->job) mv_job_step(m);
    model_run.phase = "final: compare every key";
    mv_check_store(m);
    i64 low = KEEL_MAX(m->compact_rev, (i64)1);
    i64 revs[5] = {low, m->rev, 0, 0, 0};
    for (u32 i = 2; i < 5; i++)
        revs[i] = low + (i64)model_rng_below(&m->rng, (u64)(m->rev - low + 1));
    for (u32 i = 0; i < 5; i++) mv_compare_all(m, revs[i]);
    for (u32 idx = 0; idx < m->keys.count; idx++) {
        struct mv_range r;
        memset(&r, 0, sizeof(r));
        r.key = model_key(&m->keys, idx);
        r.end = span_make(r.end_buf, 0);
        r.lo = idx;
        r.hi = idx + 1;
        mv_compare_range(m, &r, m->rev);
        mv_compare_range(m, &r, low);
    }
}

/* Compacts to the current revision: one version per live key must remain. */
static void mv_final_compact(struct mv_model *m)
{
    if (m->rev <= m->compact_rev) return;
    int rc = mvcc_compact(m->store, m->rev);
    MODEL_CHECK(rc == KEEL_OK, "compact at the current revision: rc=%d (%s)", rc, keel_err_str(rc));
    mv_model_compact(m, m->rev);
    cr_assert(m->records == m->keys_live && m->keys_tree == m->keys_live);
    mv_check_store(m);
    mv_compare_all(m, m->rev);
}

/* Deletes every key in ranges of at most 400 live keys, then compacts: the store is empty. */
static void mv_final_delete_all(struct mv_model *m)
{
    model_run.phase = "final: delete everything";
    u32 lo = 0;
    /* Bound: every pass advances lo by at least one key. */
    while (lo < m->keys.count) {
        struct mv_range r;
        u32 hi = lo;
        u64 live = 0;
        while (hi < m->keys.count && live < 400) live += mv_live(&m->k[hi++]) != NULL;
        r.key = model_key(&m->keys, lo);
        r.end_buf[0] = 0;
        r.end = hi < m->keys.count ? model_key(&m->keys, hi) : span_make(r.end_buf, 1);
        r.lo = lo;
        r.hi = hi;
        mv_delete(m, &r, false);
        lo = hi;
    }
    MODEL_CHECK(m->keys_live == 0, "%llu keys live after deleting everything",
                (unsigned long long)m->keys_live);
    mv_final_compact(m);
    struct mvcc_stats st;
    mvcc_stats(m->store, &st);
    MODEL_CHECK(st.keys_tree == 0 && st.records == 0 && st.key_bytes == 0 && st.value_bytes == 0,
                "empty store holds %llu keys, %llu records, %llu key and %llu value bytes",
                (unsigned long long)st.keys_tree, (unsigned long long)st.records,
                (unsigned long long)st.key_bytes, (unsigned long long)st.value_bytes);
}

static void mv_teardown(struct mv_model *m)
{
    mvcc_destroy(m->store);
    for (u32 idx = 0; idx < m->keys.count; idx++) free(m->k[idx].v);
    free(m->k);
    free(m->exp);
    free(m->pend);
    free(m->value_a);
    free(m->value_b);
    model_keys_free(&m->keys);
}

static void mv_report(const struct mv_model *m)
{
    printf("model: mvcc seed=%llu: rev %lld, compact %lld, live keys max %llu / end %llu; "
           "%llu puts, %llu deletes, %llu ranges, %llu batches (%llu aborted, %llu duplicate "
           "refusals), %llu compactions (%llu stepwise), %llu expected errors\n",
           (unsigned long long)model_run.seed, (long long)m->rev, (long long)m->compact_rev,
           (unsigned long long)m->live_max, (unsigned long long)m->keys_live,
           (unsigned long long)m->n_put, (unsigned long long)m->n_del,
           (unsigned long long)m->n_range, (unsigned long long)m->n_batch,
           (unsigned long long)m->n_abort, (unsigned long long)m->n_dup,
           (unsigned long long)m->n_compact, (unsigned long long)m->n_job,
           (unsigned long long)m->n_fail_expected);
}

void model_mvcc_run(u64 seed, u64 ops)
{
    static struct mv_model model; /* large enough to keep off the stack */
    struct mv_model *m = &model;
    model_run_begin("mvcc", "model_mvcc", seed, ops);
    mv_setup(m, seed);
    mv_random_ops(m, ops);
    mv_report(m);
    mv_final_compare(m);
    model_run.phase = "final: compact to the current revision";
    mv_final_compact(m);
    mv_final_delete_all(m);
    mv_teardown(m);
    model_run_end();
}
