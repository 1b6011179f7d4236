/*
 * sim_store.c — a member's simulated disk: a sequence of records (hard state, truncate,
 * snapshot install, entry, snapshot chunk, local snapshot), written at once into the
 * `written` image and into the `durable` image when a simulated fdatasync covering them
 * completes. The records of one ready are one batch, one WAL write with one checksum (the
 * shard's group commit): a crash keeps the durable image plus a prefix of the unsynced
 * batches (none, a random prefix, or a prefix whose next batch was torn and cut by the
 * recovery) and drops the rest. A batch is all or nothing, so a hard state never survives
 * without the entries its commit and term speak of, nor entries without their hard state.
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

/* ---- images ----------------------------------------------------------------------------- */

void image_free(struct sim_image *img)
{
    for (u32 i = 0; i < img->count; i++) free((void *)img->entries[i].data);
    free(img->entries);
    free(img->snap_data);
    free(img->in_data);
    memset(img, 0, sizeof *img);
    img->first = 1;
}

static void image_clone(struct sim_image *dst, const struct sim_image *src)
{
    *dst = *src;
    dst->entries = sim_xmalloc(sizeof(struct raft_entry) * (src->count ? src->count : 1));
    dst->cap = src->count ? src->count : 1;
    for (u32 i = 0; i < src->count; i++) {
        dst->entries[i] = src->entries[i];
        dst->entries[i].data = sim_xmemdup(src->entries[i].data, src->entries[i].len);
    }
    dst->snap_data = sim_xmemdup(src->snap_data, src->snap_len);
    dst->in_data = src->in_cap ? sim_xmalloc(src->in_cap) : NULL;
    if (src->in_len) memcpy(dst->in_data, src->in_data, src->in_len);
}

u64 image_last_index(const struct sim_image *img)
{
    if (img->count) return img->first + img->count - 1;
    return img->has_snap ? img->snap.index : 0;
}

const struct raft_entry *image_entry_at(const struct sim_image *img, u64 index)
{
    if (index < img->first || index >= img->first + img->count) return NULL;
    return &img->entries[index - img->first];
}

u64 image_term_at(const struct sim_image *img, u64 index)
{
    if (img->has_snap && index == img->snap.index) return img->snap.term;
    const struct raft_entry *e = image_entry_at(img, index);
    return e ? e->term : 0;
}

static void image_drop_from(struct sim_image *img, u64 from)
{
    while (img->count && img->first + img->count - 1 >= from) {
        img->count--;
        free((void *)img->entries[img->count].data);
    }
}

static void image_drop_through(struct sim_image *img, u64 through)
{
    u32 n = 0;
    while (n < img->count && img->entries[n].index <= through) {
        free((void *)img->entries[n].data);
        n++;
    }
    if (n) memmove(img->entries, img->entries + n, sizeof(struct raft_entry) * (img->count - n));
    img->count -= n;
    img->first = through + 1;
}

static bool image_append(struct sim_image *img, const struct raft_entry *e)
{
    if (e->index != image_last_index(img) + 1) return false;
    if (img->count == img->cap) {
        img->cap = img->cap ? img->cap * 2 : 64;
        img->entries = sim_xrealloc(img->entries, sizeof(struct raft_entry) * img->cap);
    }
    if (img->count == 0) img->first = e->index;
    img->entries[img->count] = *e;
    img->entries[img->count].data = sim_xmemdup(e->data, e->len);
    img->count++;
    return true;
}

static bool image_chunk(struct sim_image *img, const struct sim_rec *r)
{
    if (r->offset == 0) {
        img->in_has = true;
        img->in_complete = false;
        img->in_meta = r->meta;
        img->in_len = 0;
    } else if (!img->in_has || img->in_meta.index != r->meta.index || r->offset > img->in_len) {
        return false;
    }
    u64 end = r->offset + r->len;
    if (end > img->in_cap) {
        img->in_cap = (u32)(end * 2);
        img->in_data = sim_xrealloc(img->in_data, img->in_cap);
    }
    if (r->len) memcpy(img->in_data + r->offset, r->data, r->len);
    img->in_len = (u32)end;
    img->in_complete = r->last;
    return true;
}

static bool image_install(struct sim_image *img, const struct raft_snapshot_meta *meta)
{
    if (!img->in_has || !img->in_complete || img->in_meta.index != meta->index) return false;
    image_drop_from(img, 0);
    free(img->snap_data);
    img->has_snap = true;
    img->snap = *meta;
    img->snap_data = img->in_data;
    img->snap_len = img->in_len;
    img->in_data = NULL;
    img->in_len = img->in_cap = 0;
    img->in_has = img->in_complete = false;
    img->first = meta->index + 1;
    return true;
}

static void image_snapshot(struct sim_image *img, const struct sim_rec *r)
{
    if (img->has_snap && r->meta.index <= img->snap.index) return; /* an install overtook it */
    free(img->snap_data);
    img->has_snap = true;
    img->snap = r->meta;
    img->snap_data = sim_xmemdup(r->data, r->len);
    img->snap_len = r->len;
    image_drop_through(img, r->meta.index);
}

/* Applies one record; false when the record breaks the storage contract (raft handed out
 * something a WAL cannot store: a gap, a rewrite without truncate, ...). */
static bool image_apply(struct sim_image *img, const struct sim_rec *r)
{
    switch (r->kind) {
    case SIM_REC_HARD_STATE:
        img->hs = r->hs;
        return true;
    case SIM_REC_TRUNCATE:
        if (img->has_snap && r->index <= img->snap.index) return false;
        image_drop_from(img, r->index);
        return true;
    case SIM_REC_INSTALL:
        return image_install(img, &r->meta);
    case SIM_REC_ENTRY:
        return image_append(img, &r->entry);
    case SIM_REC_CHUNK:
        return image_chunk(img, r);
    case SIM_REC_SNAPSHOT:
        image_snapshot(img, r);
        return true;
    }
    UNREACHABLE();
}

/* ---- records ---------------------------------------------------------------------------- */

void store_init(struct sim_store *st)
{
    memset(st, 0, sizeof *st);
    st->written.first = 1;
    st->durable.first = 1;
}

static void rec_free(struct sim_rec *r)
{
    if (r->kind == SIM_REC_ENTRY) free((void *)r->entry.data);
    free(r->data);
}

void store_free(struct sim_store *st)
{
    for (u32 i = 0; i < st->rec_count; i++) rec_free(&st->recs[i]);
    free(st->recs);
    image_free(&st->written);
    image_free(&st->durable);
    store_init(st);
}

void store_retire(struct sim_store *st)
{
    for (u32 i = 0; i < st->rec_count; i++) rec_free(&st->recs[i]);
    free(st->recs);
    st->recs = NULL;
    st->rec_count = st->rec_cap = 0;
    st->syncing = false;
    image_free(&st->written);
}

/* Writes r (whose buffers the store takes over) into the written image and the queue. */
static bool store_write(struct sim_store *st, struct sim_rec *r)
{
    if (!image_apply(&st->written, r)) {
        rec_free(r);
        return false;
    }
    if (st->rec_count == st->rec_cap) {
        st->rec_cap = st->rec_cap ? st->rec_cap * 2 : 64;
        st->recs = sim_xrealloc(st->recs, sizeof(struct sim_rec) * st->rec_cap);
    }
    r->seq = ++st->seq_written;
    r->batch = st->batch;
    st->recs[st->rec_count++] = *r;
    return true;
}

void store_batch_begin(struct sim_store *st)
{
    st->batch++;
}

void store_hard_state(struct sim_store *st, const struct raft_hard_state *hs)
{
    struct sim_rec r = {.kind = SIM_REC_HARD_STATE, .hs = *hs};
    bool ok = store_write(st, &r);
    ASSERT(ok);
}

void store_truncate(struct sim *s, struct sim_store *st, u64 from)
{
    struct sim_rec r = {.kind = SIM_REC_TRUNCATE, .index = from};
    if (!store_write(st, &r)) {
        sim_fail(s, "storage-contract", "truncate_from %llu inside the snapshot (index %llu)",
                 (unsigned long long)from, (unsigned long long)st->written.snap.index);
    }
}

bool store_entry(struct sim *s, struct sim_store *st, const struct raft_entry *e)
{
    struct sim_rec r = {.kind = SIM_REC_ENTRY, .entry = *e};
    r.entry.data = sim_xmemdup(e->data, e->len);
    if (store_write(st, &r)) return true;
    sim_fail(s, "storage-contract",
             "entry %llu (term %llu) does not follow the stored log (last index %llu) and no "
             "truncate_from came before it",
             (unsigned long long)e->index, (unsigned long long)e->term,
             (unsigned long long)image_last_index(&st->written));
    return false;
}

bool store_chunk(struct sim *s, struct sim_store *st, const struct raft_snap_chunk *c)
{
    struct sim_rec r = {.kind = SIM_REC_CHUNK,
                        .meta = c->meta,
                        .offset = c->offset,
                        .last = c->last,
                        .len = c->len};
    r.data = sim_xmemdup(c->data, c->len);
    if (store_write(st, &r)) return true;
    sim_fail(s, "storage-contract",
             "snapshot chunk of index %llu at offset %llu: no chunk "
             "before it (stored %u bytes of index %llu)",
             (unsigned long long)c->meta.index, (unsigned long long)c->offset, st->written.in_len,
             (unsigned long long)st->written.in_meta.index);
    return false;
}

bool store_install(struct sim *s, struct sim_store *st, const struct raft_snapshot_meta *meta)
{
    struct sim_rec r = {.kind = SIM_REC_INSTALL, .meta = *meta};
    if (store_write(st, &r)) return true;
    sim_fail(s, "storage-contract",
             "snapshot_install of index %llu before all its chunks were "
             "handed out (stored: index %llu, %u bytes, complete %d)",
             (unsigned long long)meta->index, (unsigned long long)st->written.in_meta.index,
             st->written.in_len, st->written.in_complete);
    return false;
}

void store_snapshot(struct sim_store *st, const struct raft_snapshot_meta *meta, const u8 *data,
                    u32 len)
{
    struct sim_rec r = {.kind = SIM_REC_SNAPSHOT, .meta = *meta, .len = len};
    r.data = sim_xmemdup(data, len);
    bool ok = store_write(st, &r);
    ASSERT(ok);
}

/* ---- fdatasync and crash ---------------------------------------------------------------- */

void store_sync_start(struct sim *s, struct sim_store *st)
{
    if (st->syncing || st->rec_count == 0) return;
    st->syncing = true;
    st->sync_seq = st->seq_written;
    st->sync_done_ms = s->now_ms + sim_range(s, 1, s->rates.sync_ms_max);
}

bool store_sync_due(const struct sim *s, const struct sim_store *st)
{
    return st->syncing && s->now_ms >= st->sync_done_ms;
}

static void store_make_durable(struct sim_store *st, u32 n)
{
    ASSERT(n <= st->rec_count);
    for (u32 i = 0; i < n; i++) {
        bool ok = image_apply(&st->durable, &st->recs[i]);
        ASSERT(ok); /* the written image took the same sequence */
        st->seq_durable = st->recs[i].seq;
        rec_free(&st->recs[i]);
    }
    if (n) memmove(st->recs, st->recs + n, sizeof(struct sim_rec) * (st->rec_count - n));
    st->rec_count -= n;
}

void store_sync_complete(struct sim_store *st)
{
    ASSERT(st->syncing);
    u32 n = 0;
    while (n < st->rec_count && st->recs[n].seq <= st->sync_seq) n++;
    store_make_durable(st, n);
    st->seq_durable = st->sync_seq;
    st->syncing = false;
}

/* The number of records in the first `batches` batches of the queue. */
static u32 store_batches_len(const struct sim_store *st, u32 batches)
{
    u32 n = 0;
    while (n < st->rec_count && batches > 0) {
        u64 b = st->recs[n].batch;
        while (n < st->rec_count && st->recs[n].batch == b) n++;
        batches--;
    }
    return n;
}

void store_crash(struct sim *s, struct sim_store *st, u64 member)
{
    u32 batches = 0;
    for (u32 i = 0; i < st->rec_count; i++) {
        batches += i == 0 || st->recs[i].batch != st->recs[i - 1].batch;
    }
    u32 keep_batches = 0;
    const char *how = "lost";
    if (batches && !sim_permille(s, s->rates.lose_all_permille)) {
        keep_batches = (u32)sim_below(s, batches + 1);
        how = "prefix kept";
        if (keep_batches < batches && sim_permille(s, s->rates.torn_permille)) {
            how = "next one torn, cut";
        }
    }
    u32 keep = store_batches_len(st, keep_batches);
    if (st->rec_count) {
        sim_trace(s,
                  "disk of member %llu: %u of %u unsynced writes survive (%u of %u records; "
                  "%s)",
                  (unsigned long long)member, keep_batches, batches, keep, st->rec_count, how);
    }
    store_make_durable(st, keep);
    for (u32 i = 0; i < st->rec_count; i++) rec_free(&st->recs[i]);
    st->rec_count = 0;
    st->syncing = false;
}

void store_reload(struct sim_store *st)
{
    ASSERT(st->rec_count == 0);
    image_free(&st->written);
    image_clone(&st->written, &st->durable);
    st->seq_written = st->seq_durable;
    /* The incoming snapshot is not part of what raft restores: raft starts it over. */
    st->written.in_has = st->written.in_complete = false;
    st->written.in_len = 0;
    st->durable.in_has = st->durable.in_complete = false;
    st->durable.in_len = 0;
}
