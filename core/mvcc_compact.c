/*
 * mvcc_compact.c — compaction in bounded steps.
 *
 * mvcc_compact_start moves the compact revision C at once; the job then walks
 * the tree in key order, at most keys_max keys per step, remembering where it
 * stopped as a copy of the next key (a cursor that survives the tree
 * changing between steps). For each key it keeps the newest version at or
 * below C (unless that is a tombstone) and everything newer, and frees the
 * rest; a key left with nothing is removed from the tree.
 */
#include "core/mvcc_int.h"

#include <string.h>

int mvcc_compact_start(struct mvcc *m, i64 rev)
{
    ASSERT(m != NULL);
    if (m->batch_open) return KEEL_ENO_BATCH;
    if (rev <= m->compact_revision) return KEEL_ECOMPACTED;
    if (rev > m->revision) return KEEL_EFUTURE_REV;
    m->compact_revision = rev;
    m->compact_running = true;
    m->compact_has_cursor = false; /* a newer job covers what an older one left */
    ASSERT(m->compact_revision <= m->revision);
    return KEEL_OK;
}

/* Frees the chain from ref on (older records), returning how many. */
static u64 mvcc_free_chain(struct mvcc *m, arena_ref ref)
{
    u64 n = 0;
    while (ref != 0) { /* bounded by the chain's length */
        struct mvcc_rec r;
        mvcc_rec_decode(m, ref, &r);
        slab_free(&m->slab, ref, r.size);
        ref = r.older;
        n++;
    }
    return n;
}

/* Compacts one key's chain; returns true if the key must leave the tree
 * (its head is then the only record left, for the caller to free). */
static bool mvcc_compact_chain(struct mvcc *m, arena_ref head)
{
    i64 c = m->compact_revision;
    arena_ref prev = 0, ref = head;
    struct mvcc_rec r;
    for (; ref != 0; prev = ref, ref = r.older) {
        mvcc_rec_decode(m, ref, &r);
        if (r.mod_revision <= c) break;
    }
    if (ref == 0) return false; /* every version is newer than C */
    u64 freed = mvcc_free_chain(m, r.older);
    if (r.older != 0) mvcc_rec_set_older(m, ref, 0);
    bool tomb = r.flags & MVCC_F_TOMBSTONE;
    if (tomb && prev != 0) {
        mvcc_rec_set_older(m, prev, 0);
        slab_free(&m->slab, ref, r.size);
        freed++;
    }
    ASSERT(m->counters.records >= freed);
    m->counters.records -= freed;
    return tomb && prev == 0;
}

/* Removes a key whose only record is a compacted tombstone; leaves the job's
 * cursor at that key, which the next seek steps past. */
static void mvcc_compact_drop_key(struct mvcc *m, arena_ref head)
{
    struct span key = m->tree.key_of(m, head);
    ASSERT(key.len <= m->config.key_size_max);
    memcpy(m->compact_cursor, key.ptr, key.len);
    m->compact_cursor_len = key.len;
    arena_ref gone = btree_remove(&m->tree, span_make(m->compact_cursor, key.len));
    ASSERT(gone == head);
    mvcc_rec_free(m, head);
    m->counters.records--;
}

bool mvcc_compact_step(struct mvcc *m, u64 keys_max)
{
    ASSERT(m != NULL && keys_max > 0);
    if (!m->compact_running) return true;
    if (m->batch_open) return false; /* undo entries may point into chains */
    struct btree_iter it;
    if (m->compact_has_cursor) {
        btree_iter_seek_ge(&it, &m->tree, span_make(m->compact_cursor, m->compact_cursor_len));
    } else {
        btree_iter_first(&it, &m->tree);
    }
    for (u64 n = 0; n < keys_max && btree_iter_valid(&it); n++) {
        arena_ref head = btree_iter_ref(&it);
        if (!mvcc_compact_chain(m, head)) {
            btree_iter_next(&it);
            continue;
        }
        mvcc_compact_drop_key(m, head); /* the tree changed: seek past the key */
        btree_iter_seek_ge(&it, &m->tree, span_make(m->compact_cursor, m->compact_cursor_len));
    }
    if (!btree_iter_valid(&it)) {
        m->compact_running = false;
        m->compact_has_cursor = false;
        return true;
    }
    struct span next = btree_iter_key(&it);
    memcpy(m->compact_cursor, next.ptr, next.len);
    m->compact_cursor_len = next.len;
    m->compact_has_cursor = true;
    return false;
}

int mvcc_compact(struct mvcc *m, i64 rev)
{
    int rc = mvcc_compact_start(m, rev);
    if (rc != KEEL_OK) return rc;
    while (!mvcc_compact_step(m, 4096)) {}
    ASSERT(!m->compact_running);
    return KEEL_OK;
}
