/*
 * mvcc_snapshot.c — full snapshots of the store (format and contract in
 * core/snapshot.h).
 *
 * The writer walks the tree in key order from a cursor (a copy of the next
 * key, and how far down that key's chain it got), so every call is bounded
 * and the store may change between calls. Which versions a key contributes
 * is decided per chain by snap_find/snap_after: those at or below the
 * captured revision R, down to the newest at or below the compact revision C
 * (dropped if a tombstone), as compaction at C leaves a chain.
 *
 * The loader rebuilds chains through the record layer of mvcc_int.h: it
 * writes each version as a record (newest first, every record but a chain's
 * last with an OLDER field), links it below the previous one, inserts each
 * chain's head into the tree, and keeps the store's counters as it goes.
 */
#include "core/checksum.h"
#include "core/mvcc_int.h"
#include "core/snapshot.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A key entry's fixed part besides the key: key length, flags, count. */
#define SNAP_ENTRY_OVERHEAD (BUF_VARINT_SIZE_MAX + 1 + 4)
/* A version's fields besides its value: flags and five varints. */
#define SNAP_VERSION_OVERHEAD (1 + 5 * BUF_VARINT_SIZE_MAX)
#define SNAP_KEYS_COUNT_SIZE  4u

static_assert(SNAPSHOT_FRAME_SIZE == 16, "frame table in snapshot.h");
static_assert(SNAPSHOT_HEADER_SIZE == 64, "header table in snapshot.h");
static_assert(SNAPSHOT_TRAILER_SIZE == 32, "trailer table in snapshot.h");
static_assert((SNAPSHOT_V_TOMBSTONE | SNAPSHOT_V_LEASE) == SNAPSHOT_V_ALL, "version flags");

size_t snapshot_chunk_size_min(const struct mvcc_config *config)
{
    ASSERT(config != NULL);
    ASSERT(config->key_size_max >= 1);
    size_t entry =
        SNAP_ENTRY_OVERHEAD + config->key_size_max + SNAP_VERSION_OVERHEAD + config->value_size_max;
    size_t payload = KEEL_MAX(SNAP_KEYS_COUNT_SIZE + entry, (size_t)SNAPSHOT_HEADER_SIZE);
    size_t n = SNAPSHOT_FRAME_SIZE + payload + SNAPSHOT_CHECKSUM_SIZE;
    ASSERT(n > SNAPSHOT_FRAME_SIZE + SNAPSHOT_TRAILER_SIZE + SNAPSHOT_CHECKSUM_SIZE);
    return n;
}

size_t snapshot_chunk_size(const u8 *prefix, size_t len)
{
    ASSERT(prefix != NULL || len == 0);
    if (len < SNAPSHOT_FRAME_SIZE) return 0;
    size_t n = SNAPSHOT_FRAME_SIZE + (size_t)load_u32_le(prefix) + SNAPSHOT_CHECKSUM_SIZE;
    ASSERT(n >= SNAPSHOT_FRAME_SIZE + SNAPSHOT_CHECKSUM_SIZE);
    return n;
}

/* The trailer's chain: s' = checksum64_seeded(sum as 8 LE bytes, s). */
static u64 snap_chain(u64 s, u64 sum)
{
    u8 b[8];
    store_u64_le(b, sum);
    return checksum64_seeded(b, sizeof(b), s);
}

/* ---- writer: chain walking ------------------------------------------------ */

/* The newest version of the chain from ref on with mod_revision < below that
 * the snapshot holds, into *r; false if there is none. Bounded by the chain. */
static bool snap_find(const struct snapshot_writer *w, arena_ref ref, i64 below, struct mvcc_rec *r)
{
    ASSERT(below >= 1);
    for (; ref != 0; ref = r->older) {
        mvcc_rec_decode(w->m, ref, r);
        if (r->mod_revision >= below || r->mod_revision > w->revision) continue;
        bool tomb = r->flags & MVCC_F_TOMBSTONE;
        return !(tomb && r->mod_revision <= w->compact_revision);
    }
    return false;
}

/* The version the snapshot holds after r in r's chain: none below the newest
 * version at or below C, which ends every chain. */
static bool snap_after(const struct snapshot_writer *w, const struct mvcc_rec *r,
                       struct mvcc_rec *next)
{
    ASSERT(r->mod_revision <= w->revision);
    if (r->mod_revision <= w->compact_revision) return false;
    bool found = snap_find(w, r->older, r->mod_revision, next);
    ASSERT_IMPLIES(found, next->mod_revision < r->mod_revision);
    return found;
}

static size_t snap_version_size(const struct mvcc_rec *r)
{
    size_t n = 1 + varint_size((u64)r->mod_revision);
    if (r->flags & MVCC_F_TOMBSTONE) return n;
    n += varint_size((u64)r->version) + varint_size((u64)(r->mod_revision - r->create_revision));
    if (r->lease != 0) n += varint_size((u64)r->lease);
    return n + varint_size(r->value.len) + r->value.len;
}

static void snap_version_put(struct buf *b, const struct mvcc_rec *r)
{
    size_t start = b->len;
    bool tomb = r->flags & MVCC_F_TOMBSTONE;
    ASSERT_IMPLIES(tomb, r->lease == 0);
    u8 f = tomb ? SNAPSHOT_V_TOMBSTONE : (r->lease != 0 ? SNAPSHOT_V_LEASE : 0);
    buf_put_u8(b, f);
    buf_put_varint(b, (u64)r->mod_revision);
    if (!tomb) {
        buf_put_varint(b, (u64)r->version);
        buf_put_varint(b, (u64)(r->mod_revision - r->create_revision));
        if (r->lease != 0) buf_put_varint(b, (u64)r->lease);
        buf_put_varint(b, r->value.len);
        buf_put_bytes(b, r->value.ptr, r->value.len);
    }
    ASSERT(buf_ok(b));
    ASSERT(b->len - start == snap_version_size(r));
}

static void snap_cursor_set(struct snapshot_writer *w, struct span key, i64 below)
{
    ASSERT(key.len >= 1 && key.len <= w->m->config.key_size_max);
    memcpy(w->cursor, key.ptr, key.len);
    w->cursor_len = key.len;
    w->cursor_below = below;
    w->has_cursor = true;
}

/* ---- writer: chunks -------------------------------------------------------- */

/* Fills the frame around the n payload bytes at buf + SNAPSHOT_FRAME_SIZE,
 * checksums the chunk and returns its size. */
static size_t snap_frame_close(struct snapshot_writer *w, u8 *buf, u8 type, size_t n)
{
    ASSERT(n <= UINT32_MAX);
    ASSERT((type == SNAPSHOT_CHUNK_HEADER) == (w->seq == 0));
    store_u32_le(buf, (u32)n);
    buf[4] = type;
    buf[5] = buf[6] = buf[7] = 0;
    store_u64_le(buf + 8, w->seq);
    size_t body = SNAPSHOT_FRAME_SIZE + n;
    u64 sum = checksum64_seeded(buf, body, w->seq == 0 ? 0 : w->seed);
    store_u64_le(buf + body, sum);
    if (w->seq == 0) w->seed = sum;
    if (type != SNAPSHOT_CHUNK_TRAILER) w->sum_chain = snap_chain(w->sum_chain, sum);
    w->seq++;
    return body + SNAPSHOT_CHECKSUM_SIZE;
}

static size_t snap_header_chunk(struct snapshot_writer *w, u8 *buf)
{
    ASSERT(w->phase == SNAPSHOT_PHASE_HEADER && w->seq == 0);
    u8 *p = buf + SNAPSHOT_FRAME_SIZE;
    store_u64_le(p, SNAPSHOT_MAGIC);
    store_u32_le(p + 8, SNAPSHOT_FORMAT_VERSION);
    store_u32_le(p + 12, 0);
    store_u64_le(p + 16, w->shard_id);
    store_u64_le(p + 24, (u64)w->revision);
    store_u64_le(p + 32, (u64)w->compact_revision);
    store_u64_le(p + 40, w->key_count_max);
    store_u64_le(p + 48, w->record_count_max);
    store_u64_le(p + 56, w->applied_index);
    w->phase = SNAPSHOT_PHASE_KEYS;
    return snap_frame_close(w, buf, SNAPSHOT_CHUNK_HEADER, SNAPSHOT_HEADER_SIZE);
}

static size_t snap_trailer_chunk(struct snapshot_writer *w, u8 *buf)
{
    ASSERT(w->phase == SNAPSHOT_PHASE_TRAILER);
    ASSERT(w->keys <= w->key_count_max && w->records <= w->record_count_max);
    u8 *p = buf + SNAPSHOT_FRAME_SIZE;
    store_u64_le(p, w->seq);
    store_u64_le(p + 8, w->keys);
    store_u64_le(p + 16, w->records);
    store_u64_le(p + 24, w->sum_chain);
    w->phase = SNAPSHOT_PHASE_DONE;
    return snap_frame_close(w, buf, SNAPSHOT_CHUNK_TRAILER, SNAPSHOT_TRAILER_SIZE);
}

/* Writes one key's versions below `below` as an entry; returns false if the
 * chunk filled first (the cursor then says where the key resumes). */
static bool snap_key_put(struct snapshot_writer *w, struct buf *b, u32 *entries, arena_ref head,
                         i64 below)
{
    struct mvcc_rec r, next;
    bool found = snap_find(w, head, below, &r);
    ASSERT_IMPLIES(below <= w->revision, found); /* a split chain's rest cannot vanish */
    if (!found) return true;                     /* nothing at R: not in the snapshot */
    size_t entry = varint_size(r.key.len) + r.key.len + 1 + 4;
    if (b->cap - b->len < entry + snap_version_size(&r)) {
        ASSERT(*entries > 0); /* an empty chunk holds any one version (chunk_size_min) */
        snap_cursor_set(w, r.key, below);
        return false;
    }
    buf_put_varint(b, r.key.len);
    buf_put_bytes(b, r.key.ptr, r.key.len);
    size_t flags_at = b->len;
    buf_put_u8(b, 0);
    buf_put_u32(b, 0);
    u32 versions = 0;
    bool full = false;
    for (;;) { /* bounded by the chain and by the chunk's room */
        snap_version_put(b, &r);
        versions++;
        if (!snap_after(w, &r, &next)) break;
        if (b->cap - b->len < snap_version_size(&next)) {
            b->ptr[flags_at] = SNAPSHOT_ENTRY_MORE;
            snap_cursor_set(w, r.key, r.mod_revision);
            full = true;
            break;
        }
        r = next;
    }
    store_u32_le(b->ptr + flags_at + 1, versions);
    w->records += versions;
    if (below > w->revision) w->keys++; /* the key's first entry */
    (*entries)++;
    ASSERT(buf_ok(b));
    return !full;
}

/* A KEYS chunk; 0 if the walk is over and found nothing more to write. */
static size_t snap_keys_chunk(struct snapshot_writer *w, u8 *buf, size_t bytes_max)
{
    ASSERT(w->phase == SNAPSHOT_PHASE_KEYS);
    struct buf b;
    buf_init_fixed(&b, buf + SNAPSHOT_FRAME_SIZE,
                   bytes_max - SNAPSHOT_FRAME_SIZE - SNAPSHOT_CHECKSUM_SIZE);
    buf_put_u32(&b, 0);
    u32 entries = 0;
    struct span cursor = span_make(w->cursor, w->cursor_len);
    struct btree_iter it;
    if (w->has_cursor)
        btree_iter_seek_ge(&it, &w->m->tree, cursor);
    else
        btree_iter_first(&it, &w->m->tree);
    bool full = false;
    for (u32 n = 0; n < w->keys_per_chunk_max && btree_iter_valid(&it) && !full; n++) {
        i64 below = w->revision + 1;
        bool resumed = w->has_cursor && btree_key_cmp(btree_iter_key(&it), cursor) == 0;
        if (resumed) below = w->cursor_below;
        full = !snap_key_put(w, &b, &entries, btree_iter_ref(&it), below);
        if (!full) btree_iter_next(&it);
    }
    if (!full && btree_iter_valid(&it)) snap_cursor_set(w, btree_iter_key(&it), w->revision + 1);
    if (!full && !btree_iter_valid(&it)) w->phase = SNAPSHOT_PHASE_TRAILER;
    if (entries == 0 && w->phase == SNAPSHOT_PHASE_TRAILER) return 0;
    store_u32_le(b.ptr, entries);
    ASSERT(buf_ok(&b));
    return snap_frame_close(w, buf, SNAPSHOT_CHUNK_KEYS, b.len);
}

/* ---- writer: interface ----------------------------------------------------- */

int snapshot_writer_init(struct snapshot_writer *w, struct mvcc *m, u64 shard_id, u64 applied_index,
                         u32 keys_per_chunk_max)
{
    ASSERT(w != NULL && m != NULL);
    ASSERT(keys_per_chunk_max >= 1);
    memset(w, 0, sizeof(*w));
    w->cursor = malloc(m->config.key_size_max);
    if (w->cursor == NULL) return KEEL_ENOMEM;
    w->m = m;
    w->shard_id = shard_id;
    w->applied_index = applied_index;
    w->revision = m->revision;
    w->compact_revision = m->compact_revision;
    w->key_count_max = m->tree.count;
    w->record_count_max = m->counters.records;
    w->keys_per_chunk_max = keys_per_chunk_max;
    w->phase = SNAPSHOT_PHASE_HEADER;
    ASSERT(w->revision >= 1 && w->compact_revision <= w->revision);
    return KEEL_OK;
}

int snapshot_writer_next(struct snapshot_writer *w, u8 *buf, size_t bytes_max, size_t *len)
{
    ASSERT(w != NULL && w->m != NULL);
    ASSERT(buf != NULL && len != NULL);
    *len = 0;
    if (bytes_max < snapshot_chunk_size_min(&w->m->config)) return KEEL_EINVALID;
    if (w->phase == SNAPSHOT_PHASE_DONE) return KEEL_OK;
    if (w->m->compact_revision != w->compact_revision) return KEEL_ECOMPACTED;
    ASSERT(w->m->revision >= w->revision);
    size_t n = 0;
    if (w->phase == SNAPSHOT_PHASE_HEADER)
        n = snap_header_chunk(w, buf);
    else if (w->phase == SNAPSHOT_PHASE_KEYS)
        n = snap_keys_chunk(w, buf, bytes_max);
    if (n == 0 && w->phase == SNAPSHOT_PHASE_TRAILER) n = snap_trailer_chunk(w, buf);
    ASSERT(n > 0 && n <= bytes_max);
    ASSERT(snapshot_chunk_size(buf, n) == n);
    *len = n;
    return KEEL_OK;
}

bool snapshot_writer_done(const struct snapshot_writer *w)
{
    ASSERT(w != NULL);
    return w->phase == SNAPSHOT_PHASE_DONE;
}

void snapshot_writer_deinit(struct snapshot_writer *w)
{
    if (w == NULL) return;
    free(w->cursor);
    w->cursor = NULL;
    w->m = NULL;
}

/* ---- loader: errors -------------------------------------------------------- */

static int snap_corrupt(struct snapshot_loader *l, const char *why)
{
    ASSERT(why != NULL);
    l->error = why;
    return KEEL_ECORRUPT;
}

/* A final error: the half-built store goes. */
static int snap_fail(struct snapshot_loader *l, int rc)
{
    ASSERT(rc != KEEL_OK && l->error != NULL);
    mvcc_destroy(l->m);
    l->m = NULL;
    l->failed = true;
    return rc;
}

/* ---- loader: chains ----------------------------------------------------------- */

/* Checks a version against the one above it in its chain (the tail). */
static int snap_check_version(struct snapshot_loader *l, const struct mvcc_rec *rec)
{
    bool tomb = rec->flags & MVCC_F_TOMBSTONE;
    if (tomb && rec->mod_revision <= l->compact_revision) {
        return snap_corrupt(l, "snapshot: a tombstone at or below the compact revision");
    }
    if (!tomb && (rec->version == 1) != (rec->create_revision == rec->mod_revision)) {
        return snap_corrupt(l, "snapshot: a version's create revision disagrees with it");
    }
    if (l->tail == 0) return KEEL_OK;
    struct mvcc_rec prev;
    mvcc_rec_decode(l->m, l->tail, &prev);
    if (rec->mod_revision >= prev.mod_revision) {
        return snap_corrupt(l, "snapshot: versions of a key not newest first");
    }
    if (prev.mod_revision <= l->compact_revision) {
        return snap_corrupt(l, "snapshot: a version below the newest at the compact revision");
    }
    bool same_life = !(prev.flags & MVCC_F_TOMBSTONE) && prev.version > 1;
    if (same_life && (tomb || rec->version != prev.version - 1 ||
                      rec->create_revision != prev.create_revision)) {
        return snap_corrupt(l, "snapshot: versions of one life of a key disagree");
    }
    /* A key's lives alternate: a put that starts one (version 1) follows a
     * tombstone, and a tombstone follows a live version. */
    bool prev_tomb = prev.flags & MVCC_F_TOMBSTONE;
    if (prev_tomb ? tomb : (prev.version == 1 && !tomb)) {
        return snap_corrupt(l, "snapshot: a key's lives do not alternate");
    }
    return KEEL_OK;
}

/* Links a written record below the chain's tail, or makes it a new head. */
static int snap_link(struct snapshot_loader *l, const struct mvcc_rec *rec, arena_ref ref)
{
    struct mvcc *m = l->m;
    if (l->tail != 0) {
        mvcc_rec_set_older(m, l->tail, ref);
    } else {
        arena_ref existing = 0;
        struct span key = m->tree.key_of(m->tree.key_ctx, ref);
        int rc = btree_insert(&m->tree, key, ref, &existing);
        if (rc != KEEL_OK) {
            mvcc_rec_free(m, ref);
            return rc;
        }
        ASSERT(existing == 0); /* keys arrive in increasing order */
        l->head = ref;
        if (!(rec->flags & MVCC_F_TOMBSTONE)) {
            m->counters.keys_live++;
            m->counters.key_bytes += rec->key.len;
            m->counters.value_bytes += rec->value.len;
        }
    }
    l->tail = ref;
    m->counters.records++;
    l->records++;
    return KEEL_OK;
}

/* Reads a version's fields after its flags and mod_revision. */
static int snap_read_live(struct snapshot_loader *l, struct buf_reader *r, u8 f,
                          struct mvcc_rec *rec)
{
    u64 version = buf_get_varint(r), delta = buf_get_varint(r);
    u64 lease = (f & SNAPSHOT_V_LEASE) ? buf_get_varint(r) : 0;
    u64 value_len = buf_get_varint(r);
    if (!buf_reader_ok(r) || value_len > l->m->config.value_size_max) {
        return snap_corrupt(l, "snapshot: bad value length (malformed, or over value_size_max)");
    }
    rec->value = buf_get_bytes(r, (size_t)value_len);
    bool lease_bad = (f & SNAPSHOT_V_LEASE) && (lease == 0 || lease > INT64_MAX);
    u64 mod = (u64)rec->mod_revision;
    if (version == 0 || version > INT64_MAX || delta >= mod || lease_bad) {
        return snap_corrupt(l, "snapshot: bad version, create revision or lease");
    }
    rec->version = (i64)version;
    rec->create_revision = (i64)(mod - delta);
    rec->lease = (i64)lease;
    return KEEL_OK;
}

static int snap_load_version(struct snapshot_loader *l, struct buf_reader *r, struct span key,
                             bool last)
{
    struct mvcc_rec rec;
    memset(&rec, 0, sizeof(rec));
    u8 f = buf_get_u8(r);
    u64 mod = buf_get_varint(r);
    if (!buf_reader_ok(r)) return snap_corrupt(l, "snapshot: a version runs past its chunk");
    if ((f & ~SNAPSHOT_V_ALL) != 0 || f == SNAPSHOT_V_ALL) {
        return snap_corrupt(l, "snapshot: unknown version flags");
    }
    if (mod == 0 || mod > (u64)l->revision) {
        return snap_corrupt(l, "snapshot: a mod_revision outside 1..revision");
    }
    bool tomb = f & SNAPSHOT_V_TOMBSTONE;
    rec.key = key;
    rec.mod_revision = (i64)mod;
    rec.flags = (u8)((tomb ? MVCC_F_TOMBSTONE : 0) | (last ? 0 : MVCC_F_OLDER));
    int rc = tomb ? KEEL_OK : snap_read_live(l, r, f, &rec);
    if (rc == KEEL_OK && !buf_reader_ok(r)) {
        rc = snap_corrupt(l, "snapshot: a version runs past its chunk");
    }
    if (rc == KEEL_OK) rc = snap_check_version(l, &rec);
    if (rc != KEEL_OK) return rc;
    arena_ref ref;
    rc = mvcc_rec_write(l->m, &rec, &ref);
    if (rc == KEEL_OK) rc = snap_link(l, &rec, ref);
    if (rc != KEEL_OK) l->error = "snapshot: the store's memory budget is spent";
    return rc;
}

/* Checks an entry's key against the previous one; starts a chain if new. */
static int snap_entry_key(struct snapshot_loader *l, struct span key)
{
    if (l->head == 0) {
        ASSERT(!l->more);
    } else {
        struct span prev = l->m->tree.key_of(l->m->tree.key_ctx, l->head);
        int c = btree_key_cmp(key, prev);
        if (l->more && c != 0) return snap_corrupt(l, "snapshot: a split chain does not go on");
        if (!l->more && c <= 0) return snap_corrupt(l, "snapshot: keys out of order");
    }
    if (!l->more) {
        l->tail = 0;
        l->keys++;
    }
    return KEEL_OK;
}

static int snap_load_entry(struct snapshot_loader *l, struct buf_reader *r)
{
    u64 key_len = buf_get_varint(r);
    if (!buf_reader_ok(r) || key_len == 0 || key_len > l->m->config.key_size_max) {
        return snap_corrupt(l, "snapshot: bad key length (malformed, 0, or over key_size_max)");
    }
    struct span key = buf_get_bytes(r, (size_t)key_len);
    u8 flags = buf_get_u8(r);
    u32 versions = buf_get_u32(r);
    if (!buf_reader_ok(r)) return snap_corrupt(l, "snapshot: a key entry runs past its chunk");
    if ((flags & ~SNAPSHOT_ENTRY_MORE) != 0 || versions == 0) {
        return snap_corrupt(l, "snapshot: bad key entry flags or version count");
    }
    int rc = snap_entry_key(l, key);
    /* Bounded by the payload: every version takes at least 2 bytes. */
    for (u32 i = 0; i < versions && rc == KEEL_OK; i++) {
        bool last = i + 1 == versions && !(flags & SNAPSHOT_ENTRY_MORE);
        rc = snap_load_version(l, r, key, last);
    }
    l->more = flags & SNAPSHOT_ENTRY_MORE;
    return rc;
}

/* ---- loader: chunks ------------------------------------------------------------ */

static int snap_load_header(struct snapshot_loader *l, struct span p)
{
    if (p.len != SNAPSHOT_HEADER_SIZE) return snap_corrupt(l, "snapshot: bad header size");
    if (load_u64_le(p.ptr) != SNAPSHOT_MAGIC) return snap_corrupt(l, "snapshot: bad magic");
    if (load_u32_le(p.ptr + 8) != SNAPSHOT_FORMAT_VERSION) {
        return snap_corrupt(l, "snapshot: unknown format version");
    }
    if (load_u32_le(p.ptr + 12) != 0) {
        return snap_corrupt(l, "snapshot: unknown header flags");
    }
    u64 rev = load_u64_le(p.ptr + 24), compact = load_u64_le(p.ptr + 32);
    if (rev == 0 || rev > INT64_MAX || compact > rev) {
        return snap_corrupt(l, "snapshot: bad revision or compact revision");
    }
    l->shard_id = load_u64_le(p.ptr + 16);
    l->applied_index = load_u64_le(p.ptr + 56);
    l->revision = (i64)rev;
    l->compact_revision = (i64)compact;
    l->key_count_max = load_u64_le(p.ptr + 40);
    l->record_count_max = load_u64_le(p.ptr + 48);
    l->m->revision = l->revision;
    l->m->compact_revision = l->compact_revision;
    return KEEL_OK;
}

static int snap_load_keys(struct snapshot_loader *l, struct span p)
{
    struct buf_reader r;
    buf_reader_init(&r, p.ptr, p.len);
    u32 entries = buf_get_u32(&r);
    if (!buf_reader_ok(&r)) return snap_corrupt(l, "snapshot: keys chunk too short");
    int rc = KEEL_OK;
    /* Bounded by the payload: every entry takes at least 8 bytes. */
    for (u32 i = 0; i < entries && rc == KEEL_OK; i++) rc = snap_load_entry(l, &r);
    if (rc != KEEL_OK) return rc;
    if (buf_reader_left(&r) != 0) return snap_corrupt(l, "snapshot: bytes after the last entry");
    if (l->keys > l->key_count_max || l->records > l->record_count_max) {
        return snap_corrupt(l, "snapshot: more keys or versions than the header's bounds");
    }
    return KEEL_OK;
}

static int snap_load_trailer(struct snapshot_loader *l, struct span p, u64 seq)
{
    if (p.len != SNAPSHOT_TRAILER_SIZE) return snap_corrupt(l, "snapshot: bad trailer size");
    if (l->more) return snap_corrupt(l, "snapshot: the last key's chain stops half-way");
    if (load_u64_le(p.ptr) != seq) return snap_corrupt(l, "snapshot: trailer chunk count");
    if (load_u64_le(p.ptr + 8) != l->keys || load_u64_le(p.ptr + 16) != l->records) {
        return snap_corrupt(l, "snapshot: trailer totals disagree with the keys loaded");
    }
    if (load_u64_le(p.ptr + 24) != l->sum_chain) {
        return snap_corrupt(l, "snapshot: trailer chain of chunk checksums");
    }
    l->done = true;
    return KEEL_OK;
}

/* Frame checks: nothing changes when they fail, so the chunk may be retried. */
static int snap_frame_check(struct snapshot_loader *l, struct span chunk, u64 *sum)
{
    if (chunk.len < SNAPSHOT_FRAME_SIZE + SNAPSHOT_CHECKSUM_SIZE) {
        return snap_corrupt(l, "snapshot: chunk shorter than its frame");
    }
    if (snapshot_chunk_size(chunk.ptr, chunk.len) != chunk.len) {
        return snap_corrupt(l, "snapshot: chunk length disagrees with its frame");
    }
    size_t body = chunk.len - SNAPSHOT_CHECKSUM_SIZE;
    *sum = checksum64_seeded(chunk.ptr, body, l->seq_next == 0 ? 0 : l->seed);
    if (*sum != load_u64_le(chunk.ptr + body)) {
        return snap_corrupt(l, "snapshot: chunk checksum mismatch");
    }
    if (load_u64_le(chunk.ptr + 8) != l->seq_next) {
        return snap_corrupt(l, "snapshot: chunk out of sequence");
    }
    return KEEL_OK;
}

/* Applies a verified chunk's payload by type. */
static int snap_apply(struct snapshot_loader *l, struct span chunk)
{
    u8 type = chunk.ptr[4];
    struct span p = span_make(chunk.ptr + SNAPSHOT_FRAME_SIZE,
                              chunk.len - SNAPSHOT_FRAME_SIZE - SNAPSHOT_CHECKSUM_SIZE);
    if (chunk.ptr[5] != 0 || chunk.ptr[6] != 0 || chunk.ptr[7] != 0) {
        return snap_corrupt(l, "snapshot: reserved frame bytes set");
    }
    if ((type == SNAPSHOT_CHUNK_HEADER) != (l->seq_next == 0)) {
        return snap_corrupt(l, "snapshot: the header is not the first chunk");
    }
    if (type == SNAPSHOT_CHUNK_HEADER) return snap_load_header(l, p);
    if (type == SNAPSHOT_CHUNK_KEYS) return snap_load_keys(l, p);
    if (type == SNAPSHOT_CHUNK_TRAILER) return snap_load_trailer(l, p, l->seq_next);
    return snap_corrupt(l, "snapshot: unknown chunk type");
}

/* ---- loader: interface ---------------------------------------------------------- */

int snapshot_loader_init(struct snapshot_loader *l, const struct mvcc_config *config)
{
    ASSERT(l != NULL && config != NULL);
    memset(l, 0, sizeof(*l));
    l->m = mvcc_create(config);
    if (l->m == NULL) {
        l->failed = true;
        l->error = "snapshot: cannot create the store";
        return KEEL_ENOMEM;
    }
    ASSERT(l->m->revision == 1 && l->m->tree.count == 0);
    return KEEL_OK;
}

int snapshot_loader_feed(struct snapshot_loader *l, struct span chunk)
{
    ASSERT(l != NULL);
    ASSERT(chunk.ptr != NULL || chunk.len == 0);
    if (l->failed) return KEEL_ECORRUPT; /* l->error still says why */
    if (l->done) {
        l->error = "snapshot: bytes after the trailer";
        return snap_fail(l, KEEL_ECORRUPT);
    }
    u64 sum = 0;
    int rc = snap_frame_check(l, chunk, &sum);
    if (rc != KEEL_OK) return rc;
    rc = snap_apply(l, chunk);
    if (rc != KEEL_OK) return snap_fail(l, rc);
    if (l->seq_next == 0) l->seed = sum;
    if (!l->done) l->sum_chain = snap_chain(l->sum_chain, sum);
    l->seq_next++;
    l->error = NULL;
    ASSERT(l->m != NULL);
    return KEEL_OK;
}

int snapshot_loader_finish(struct snapshot_loader *l, struct mvcc **out)
{
    ASSERT(l != NULL && out != NULL);
    *out = NULL;
    if (l->failed) return KEEL_ECORRUPT;
    if (!l->done) {
        l->error = "snapshot: truncated (no trailer)";
        return snap_fail(l, KEEL_ECORRUPT);
    }
    struct mvcc *m = l->m;
    ASSERT(m->tree.count == l->keys && m->counters.records == l->records);
    ASSERT(m->revision == l->revision && m->compact_revision == l->compact_revision);
    ASSERT(mvcc_check(m));
    *out = m;
    l->m = NULL;
    return KEEL_OK;
}

void snapshot_loader_deinit(struct snapshot_loader *l)
{
    if (l == NULL) return;
    mvcc_destroy(l->m);
    l->m = NULL;
}

const char *snapshot_loader_error(const struct snapshot_loader *l)
{
    ASSERT(l != NULL);
    return l->error;
}

int snapshot_load(const struct mvcc_config *config, const u8 *bytes, size_t len, struct mvcc **out,
                  u64 *applied_index, const char **error)
{
    ASSERT(config != NULL && out != NULL);
    ASSERT(bytes != NULL || len == 0);
    *out = NULL;
    struct snapshot_loader l;
    int rc = snapshot_loader_init(&l, config);
    size_t pos = 0;
    while (rc == KEEL_OK && pos < len) { /* bounded: every chunk takes >= 24 bytes */
        size_t n = snapshot_chunk_size(bytes + pos, len - pos);
        if (n == 0 || n > len - pos) {
            rc = snap_corrupt(&l, "snapshot: truncated inside a chunk");
            break;
        }
        rc = snapshot_loader_feed(&l, span_make(bytes + pos, n));
        pos += n;
    }
    if (rc == KEEL_OK) rc = snapshot_loader_finish(&l, out);
    if (error != NULL) *error = rc == KEEL_OK ? NULL : l.error;
    if (applied_index != NULL) *applied_index = rc == KEEL_OK ? l.applied_index : 0;
    snapshot_loader_deinit(&l);
    ASSERT((rc == KEEL_OK) == (*out != NULL));
    return rc;
}
