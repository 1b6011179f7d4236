/*
 * mvcc_write.c — batches, puts and deletes.
 *
 * Every write of a batch carries revision + 1 and pushes an undo entry (the
 * key's head record before and after), so abort can restore each key's head,
 * free the records the batch wrote and reset the counters. Undo space is
 * allocated once (batch_ops_max entries): a batch that would need more fails
 * with KEEL_ETOO_MANY_OPS before it changes anything more.
 */
#include "core/mvcc_int.h"

#include <string.h>

int mvcc_batch_begin(struct mvcc *m)
{
    ASSERT(m != NULL);
    if (m->batch_open) return KEEL_ENO_BATCH;
    m->batch_open = true;
    m->batch_implicit = false;
    m->batch_revision = m->revision + 1;
    m->batch_ops = 0;
    m->undo_len = 0;
    m->batch_counters = m->counters;
    return KEEL_OK;
}

int mvcc_batch_commit(struct mvcc *m, i64 *revision)
{
    ASSERT(m != NULL);
    if (!m->batch_open) return KEEL_ENO_BATCH;
    if (m->undo_len > 0) m->revision = m->batch_revision;
    ASSERT(m->revision == m->batch_revision || m->undo_len == 0);
    m->batch_open = false;
    m->undo_len = 0;
    if (revision != NULL) *revision = m->revision;
    return KEEL_OK;
}

/* Undoes the batch's writes back to undo entry `mark` (newest first). */
static void mvcc_undo_to(struct mvcc *m, u32 mark)
{
    ASSERT(mark <= m->undo_len);
    while (m->undo_len > mark) {
        struct mvcc_undo *u = &m->undo[--m->undo_len];
        struct span key = m->tree.key_of(m, u->rec_new);
        if (u->rec_old == 0) {
            arena_ref gone = btree_remove(&m->tree, key);
            ASSERT(gone == u->rec_new);
        } else {
            arena_ref *slot = btree_slot(&m->tree, key);
            ASSERT(slot != NULL && *slot == u->rec_new);
            *slot = u->rec_old;
        }
        mvcc_rec_free(m, u->rec_new);
    }
}

void mvcc_batch_abort(struct mvcc *m)
{
    ASSERT(m != NULL);
    if (!m->batch_open) return;
    mvcc_undo_to(m, 0);
    m->counters = m->batch_counters;
    m->batch_open = false;
    ASSERT(m->revision == m->batch_revision - 1);
}

/* Opens an implicit batch around a single write when none is open. */
static bool mvcc_auto_begin(struct mvcc *m)
{
    if (m->batch_open) return false;
    int rc = mvcc_batch_begin(m);
    ASSERT(rc == KEEL_OK);
    m->batch_implicit = true;
    return true;
}

static int mvcc_auto_end(struct mvcc *m, bool implicit, int rc)
{
    if (!implicit) return rc;
    if (rc == KEEL_OK) return mvcc_batch_commit(m, NULL);
    mvcc_batch_abort(m);
    return rc;
}

/* Fills the fields of the version that follows `old` (0: none) in a put. */
static void mvcc_next_version(const struct mvcc *m, arena_ref old, struct mvcc_rec *next,
                              struct mvcc_rec *prev, bool *prev_live)
{
    next->mod_revision = m->batch_revision;
    next->version = 1;
    next->create_revision = m->batch_revision;
    next->older = old;
    next->flags = old ? MVCC_F_OLDER : 0;
    *prev_live = false;
    if (old == 0) return;
    mvcc_rec_decode(m, old, prev);
    if (prev->flags & MVCC_F_TOMBSTONE) return;
    *prev_live = true;
    next->version = prev->version + 1;
    next->create_revision = prev->create_revision;
}

static void mvcc_count_write(struct mvcc *m, const struct mvcc_rec *old, bool old_live,
                             const struct mvcc_rec *new_rec, bool new_live)
{
    if (old_live) {
        m->counters.keys_live--;
        m->counters.key_bytes -= old->key.len;
        m->counters.value_bytes -= old->value.len;
    }
    if (new_live) {
        m->counters.keys_live++;
        m->counters.key_bytes += new_rec->key.len;
        m->counters.value_bytes += new_rec->value.len;
    }
    m->counters.records++;
}

static int mvcc_put_in_batch(struct mvcc *m, struct span key, struct span value, i64 lease,
                             struct mvcc_kv *prev_kv, bool *had_prev)
{
    if (m->batch_ops >= m->config.batch_ops_max) return KEEL_ETOO_MANY_OPS;
    struct btree_pos pos;
    arena_ref *slot = btree_find(&m->tree, key, &pos);
    arena_ref old = slot ? *slot : 0;
    struct mvcc_rec rec = {.key = key, .value = value, .lease = lease}, prev;
    bool prev_live;
    mvcc_next_version(m, old, &rec, &prev, &prev_live);
    if (old && prev.mod_revision == m->batch_revision) return KEEL_EDUPLICATE_KEY;
    arena_ref ref;
    int rc = mvcc_rec_write(m, &rec, &ref);
    if (rc != KEEL_OK) return rc;
    if (slot != NULL) {
        *slot = ref; /* the slab allocation above did not move the tree */
    } else {
        rc = btree_insert_at(&m->tree, &pos, key, ref);
        if (rc != KEEL_OK) {
            slab_free(&m->slab, ref, mvcc_rec_size(&rec));
            return rc;
        }
    }
    m->undo[m->undo_len++] = (struct mvcc_undo){.rec_new = ref, .rec_old = old};
    m->batch_ops++;
    mvcc_count_write(m, &prev, prev_live, &rec, true);
    if (had_prev != NULL) *had_prev = prev_live;
    if (prev_kv != NULL && prev_live) mvcc_rec_to_kv(&prev, prev_kv, false);
    return KEEL_OK;
}

int mvcc_put(struct mvcc *m, struct span key, struct span value, i64 lease, struct mvcc_kv *prev,
             bool *had_prev)
{
    ASSERT(m != NULL);
    ASSERT(value.ptr != NULL || value.len == 0);
    if (had_prev != NULL) *had_prev = false;
    int rc = mvcc_key_valid(m, key);
    if (rc != KEEL_OK) return rc;
    if (value.len > m->config.value_size_max) return KEEL_EVALUE_TOO_LARGE;
    if (lease < 0) return KEEL_EINVALID;
    bool implicit = mvcc_auto_begin(m);
    rc = mvcc_put_in_batch(m, key, value, lease, prev, had_prev);
    return mvcc_auto_end(m, implicit, rc);
}

/* ---- delete --------------------------------------------------------------- */

/* Writes a tombstone over the live head at the iterator. */
static int mvcc_tombstone(struct mvcc *m, struct btree_iter *it, const struct mvcc_rec *head)
{
    if (m->batch_ops >= m->config.batch_ops_max) return KEEL_ETOO_MANY_OPS;
    arena_ref old = btree_iter_ref(it);
    struct mvcc_rec tomb = {.flags = MVCC_F_TOMBSTONE | MVCC_F_OLDER,
                            .key = head->key,
                            .mod_revision = m->batch_revision,
                            .older = old};
    arena_ref ref;
    int rc = mvcc_rec_write(m, &tomb, &ref);
    if (rc != KEEL_OK) return rc;
    btree_iter_set_ref(it, ref);
    m->undo[m->undo_len++] = (struct mvcc_undo){.rec_new = ref, .rec_old = old};
    m->batch_ops++;
    mvcc_count_write(m, head, true, &tomb, false);
    return KEEL_OK;
}

static int mvcc_delete_in_batch(struct mvcc *m, struct span key, struct span range_end,
                                u64 *deleted, mvcc_kv_fn prev_fn, void *prev_ctx)
{
    struct btree_iter it;
    bool report = prev_fn != NULL;
    /* Bounded by the keys in the range; each step writes one tombstone. */
    for (btree_iter_seek_ge(&it, &m->tree, key); btree_iter_valid(&it); btree_iter_next(&it)) {
        struct mvcc_rec head;
        mvcc_rec_decode(m, btree_iter_ref(&it), &head);
        if (!mvcc_in_range(head.key, key, range_end)) break;
        if (head.mod_revision == m->batch_revision) return KEEL_EDUPLICATE_KEY;
        if (head.flags & MVCC_F_TOMBSTONE) continue;
        if (report) {
            struct mvcc_kv kv;
            mvcc_rec_to_kv(&head, &kv, false);
            report = prev_fn(prev_ctx, &kv) == 0;
        }
        int rc = mvcc_tombstone(m, &it, &head);
        if (rc != KEEL_OK) return rc;
        (*deleted)++;
        if (range_end.len == 0) break;
    }
    return KEEL_OK;
}

int mvcc_delete_range(struct mvcc *m, struct span key, struct span range_end, u64 *deleted,
                      mvcc_kv_fn prev_fn, void *prev_ctx)
{
    ASSERT(m != NULL && deleted != NULL);
    *deleted = 0;
    int rc = mvcc_key_valid(m, key);
    if (rc != KEEL_OK) return rc;
    bool implicit = mvcc_auto_begin(m);
    u32 mark = m->undo_len;
    struct mvcc_counters before = m->counters;
    u32 ops_before = m->batch_ops;
    rc = mvcc_delete_in_batch(m, key, range_end, deleted, prev_fn, prev_ctx);
    if (rc != KEEL_OK && !implicit) { /* leave the batch as it was before this call */
        mvcc_undo_to(m, mark);
        m->counters = before;
        m->batch_ops = ops_before;
    }
    if (rc != KEEL_OK) *deleted = 0;
    return mvcc_auto_end(m, implicit, rc);
}
