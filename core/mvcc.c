/*
 * mvcc.c — the store's lifetime, its record format (mvcc_int.h), stats and
 * checker. Writes are in mvcc_write.c, reads in mvcc_read.c, compaction in
 * mvcc_compact.c.
 */
#include "core/mvcc_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mvcc_config_default(struct mvcc_config *c)
{
    ASSERT(c != NULL);
    c->memory_bytes_max = (u64)8 << 30;
    c->key_size_max = 4096;
    c->value_size_max = 1536 * 1024;
    c->batch_ops_max = 10000;
}

/* The B+tree reads keys straight out of records: flags, key_len, key. */
static struct span mvcc_key_of(void *ctx, arena_ref ref)
{
    const struct mvcc *m = ctx;
    const u8 *p = slab_ptr(&m->slab, ref);
    if (KEEL_LIKELY(p[1] < 0x80)) return span_make(p + 2, p[1]);
    u64 len = 0;
    size_t n = varint_decode(p + 1, BUF_VARINT_SIZE_MAX, &len);
    ASSERT(n > 0);
    return span_make(p + 1 + n, (size_t)len);
}

struct mvcc *mvcc_create(const struct mvcc_config *config)
{
    ASSERT(config != NULL);
    ASSERT(config->key_size_max >= 1 && config->key_size_max <= BTREE_KEY_SIZE_MAX);
    ASSERT(config->batch_ops_max >= 1);
    struct mvcc *m = calloc(1, sizeof(*m));
    if (m == NULL) return NULL;
    m->config = *config;
    m->undo = calloc(config->batch_ops_max, sizeof(*m->undo));
    m->compact_cursor = malloc(config->key_size_max);
    if (m->undo == NULL || m->compact_cursor == NULL ||
        arena_init(&m->arena, config->memory_bytes_max) != KEEL_OK) {
        free(m->undo);
        free(m->compact_cursor);
        free(m);
        return NULL;
    }
    slab_init(&m->slab, &m->arena);
    btree_init(&m->tree, &m->slab, mvcc_key_of, m);
    m->revision = 1; /* as etcd: an empty store is at revision 1 */
    m->compact_revision = 0;
    ASSERT(mvcc_check(m));
    return m;
}

void mvcc_destroy(struct mvcc *m)
{
    if (m == NULL) return;
    arena_deinit(&m->arena); /* frees every record and node at once */
    free(m->undo);
    free(m->scratch);
    free(m->compact_cursor);
    free(m);
}

i64 mvcc_revision(const struct mvcc *m)
{
    return m->revision;
}

i64 mvcc_compact_revision(const struct mvcc *m)
{
    return m->compact_revision;
}

bool mvcc_batch_open(const struct mvcc *m)
{
    return m->batch_open;
}

int mvcc_key_valid(const struct mvcc *m, struct span key)
{
    if (key.len == 0) return KEEL_EKEY_EMPTY;
    if (key.len > m->config.key_size_max) return KEEL_EKEY_TOO_LARGE;
    return KEEL_OK;
}

bool mvcc_in_range(struct span key, struct span start, struct span range_end)
{
    int c = btree_key_cmp(key, start);
    if (range_end.len == 0) return c == 0;
    if (c < 0) return false;
    if (range_end.len == 1 && range_end.ptr[0] == 0) return true;
    return btree_key_cmp(key, range_end) < 0;
}

struct span mvcc_prefix_end(struct span prefix, u8 *dst)
{
    ASSERT(dst != NULL);
    for (size_t i = prefix.len; i-- > 0;) {
        if (prefix.ptr[i] != 0xff) {
            memcpy(dst, prefix.ptr, i);
            dst[i] = (u8)(prefix.ptr[i] + 1);
            return span_make(dst, i + 1);
        }
    }
    dst[0] = 0; /* all 0xff (or empty): every key from prefix on */
    return span_make(dst, 1);
}

/* ---- records ------------------------------------------------------------ */

static u64 mvcc_rec_varint(const u8 *p, size_t *pos)
{
    u64 v;
    size_t n = varint_decode(p + *pos, BUF_VARINT_SIZE_MAX, &v);
    ASSERT(n > 0);
    *pos += n;
    return v;
}

void mvcc_rec_decode(const struct mvcc *m, arena_ref ref, struct mvcc_rec *r)
{
    const u8 *p = slab_ptr(&m->slab, ref);
    size_t pos = 1;
    r->flags = p[0];
    ASSERT((r->flags & ~MVCC_F_ALL) == 0);
    size_t key_len = (size_t)mvcc_rec_varint(p, &pos);
    r->key = span_make(p + pos, key_len);
    pos += key_len;
    r->mod_revision = (i64)mvcc_rec_varint(p, &pos);
    bool tomb = r->flags & MVCC_F_TOMBSTONE;
    if (tomb || (r->flags & MVCC_F_FIRST)) {
        r->version = tomb ? 0 : 1;
        r->create_revision = tomb ? 0 : r->mod_revision;
    } else {
        r->version = (i64)mvcc_rec_varint(p, &pos);
        r->create_revision = r->mod_revision - (i64)mvcc_rec_varint(p, &pos);
    }
    r->lease = (r->flags & MVCC_F_LEASE) ? (i64)mvcc_rec_varint(p, &pos) : 0;
    size_t value_len = tomb ? 0 : (size_t)mvcc_rec_varint(p, &pos);
    r->older = 0;
    r->older_offset = 0;
    if (r->flags & MVCC_F_OLDER) {
        r->older_offset = (u32)pos;
        r->older = load_u32_le(p + pos);
        pos += 4;
    }
    r->value = span_make(p + pos, value_len);
    r->size = (u32)(pos + value_len);
    ASSERT(r->mod_revision >= 1);
}

static u8 mvcc_rec_flags(const struct mvcc_rec *r)
{
    u8 f = r->flags & (MVCC_F_TOMBSTONE | MVCC_F_OLDER);
    if (r->lease != 0) f |= MVCC_F_LEASE;
    if (!(f & MVCC_F_TOMBSTONE) && r->version == 1 && r->create_revision == r->mod_revision) {
        f |= MVCC_F_FIRST;
    }
    return f;
}

size_t mvcc_rec_size(const struct mvcc_rec *r)
{
    u8 f = mvcc_rec_flags(r);
    size_t n = 1 + varint_size(r->key.len) + r->key.len + varint_size((u64)r->mod_revision);
    if (!(f & (MVCC_F_TOMBSTONE | MVCC_F_FIRST))) {
        n += varint_size((u64)r->version);
        n += varint_size((u64)(r->mod_revision - r->create_revision));
    }
    if (f & MVCC_F_LEASE) n += varint_size((u64)r->lease);
    if (!(f & MVCC_F_TOMBSTONE)) n += varint_size(r->value.len) + r->value.len;
    if (f & MVCC_F_OLDER) n += 4;
    return n;
}

int mvcc_rec_write(struct mvcc *m, const struct mvcc_rec *r, arena_ref *ref)
{
    ASSERT(r->mod_revision >= 1 && r->key.len >= 1);
    ASSERT_IMPLIES(!(r->flags & MVCC_F_TOMBSTONE), r->create_revision <= r->mod_revision);
    size_t size = mvcc_rec_size(r);
    int rc = slab_alloc(&m->slab, size, ref);
    if (rc != KEEL_OK) return rc;
    u8 *p = slab_ptr(&m->slab, *ref);
    u8 f = mvcc_rec_flags(r);
    size_t pos = 0;
    p[pos++] = f;
    pos += varint_encode(p + pos, r->key.len);
    memcpy(p + pos, r->key.ptr, r->key.len);
    pos += r->key.len;
    pos += varint_encode(p + pos, (u64)r->mod_revision);
    if (!(f & (MVCC_F_TOMBSTONE | MVCC_F_FIRST))) {
        pos += varint_encode(p + pos, (u64)r->version);
        pos += varint_encode(p + pos, (u64)(r->mod_revision - r->create_revision));
    }
    if (f & MVCC_F_LEASE) pos += varint_encode(p + pos, (u64)r->lease);
    if (!(f & MVCC_F_TOMBSTONE)) pos += varint_encode(p + pos, r->value.len);
    if (f & MVCC_F_OLDER) {
        store_u32_le(p + pos, r->older);
        pos += 4;
    }
    if (!(f & MVCC_F_TOMBSTONE) && r->value.len > 0) memcpy(p + pos, r->value.ptr, r->value.len);
    pos += (f & MVCC_F_TOMBSTONE) ? 0 : r->value.len;
    ASSERT(pos == size);
    return KEEL_OK;
}

void mvcc_rec_free(struct mvcc *m, arena_ref ref)
{
    struct mvcc_rec r;
    mvcc_rec_decode(m, ref, &r);
    slab_free(&m->slab, ref, r.size);
}

void mvcc_rec_set_older(struct mvcc *m, arena_ref ref, arena_ref older)
{
    struct mvcc_rec r;
    mvcc_rec_decode(m, ref, &r);
    ASSERT(r.flags & MVCC_F_OLDER);
    store_u32_le((u8 *)slab_ptr(&m->slab, ref) + r.older_offset, older);
}

void mvcc_rec_to_kv(const struct mvcc_rec *r, struct mvcc_kv *kv, bool keys_only)
{
    ASSERT(!(r->flags & MVCC_F_TOMBSTONE));
    kv->key = r->key;
    kv->value = keys_only ? span_make(NULL, 0) : r->value;
    kv->create_revision = r->create_revision;
    kv->mod_revision = r->mod_revision;
    kv->version = r->version;
    kv->lease = r->lease;
}

/* ---- stats and checker ---------------------------------------------------- */

void mvcc_stats(const struct mvcc *m, struct mvcc_stats *out)
{
    ASSERT(m != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    out->revision = m->revision;
    out->compact_revision = m->compact_revision;
    out->keys_live = m->counters.keys_live;
    out->keys_tree = m->tree.count;
    out->records = m->counters.records;
    out->key_bytes = m->counters.key_bytes;
    out->value_bytes = m->counters.value_bytes;
    out->tree_leaves = m->tree.leaves;
    out->tree_inners = m->tree.inners;
    out->tree_bytes = btree_memory_bytes(&m->tree);
    slab_stats(&m->slab, &out->memory);
}

/* Checks one key's chain; adds what it holds to *c. Once compaction has
 * finished, a chain holds at most one version at or below the compact
 * revision, and not a tombstone. */
static bool mvcc_check_chain(const struct mvcc *m, arena_ref head, struct mvcc_counters *c)
{
    struct mvcc_rec r, prev = {0};
    i64 last_rev = m->revision + 1;
    bool first = true;
    u32 compacted = 0;
    for (arena_ref ref = head; ref != 0; ref = r.older) {
        mvcc_rec_decode(m, ref, &r);
        if (r.mod_revision <= m->compact_revision && !m->compact_running) {
            if (++compacted > 1 || (r.flags & MVCC_F_TOMBSTONE)) return false;
        }
        if (r.mod_revision >= last_rev || r.mod_revision < 1) return false;
        if (!first && btree_key_cmp(r.key, prev.key) != 0) return false;
        bool tomb = r.flags & MVCC_F_TOMBSTONE;
        if (!tomb && (r.version < 1 || r.create_revision > r.mod_revision)) return false;
        if (!first && !(prev.flags & MVCC_F_TOMBSTONE) && prev.version > 1) {
            /* a non-first live version follows a live one of the same life */
            if (tomb || r.version != prev.version - 1) return false;
            if (r.create_revision != prev.create_revision) return false;
        }
        if (first && !tomb) {
            c->keys_live++;
            c->key_bytes += r.key.len;
            c->value_bytes += r.value.len;
        }
        c->records++;
        last_rev = r.mod_revision;
        prev = r;
        first = false;
    }
    return true;
}

bool mvcc_check(const struct mvcc *m)
{
    if (m == NULL || !btree_check(&m->tree) || !slab_check(&m->slab)) return false;
    if (!arena_check(&m->arena)) return false;
    if (m->revision < 1 || m->compact_revision < 0 || m->compact_revision > m->revision) {
        return false;
    }
    struct mvcc_counters c = {0};
    struct btree_iter it;
    for (btree_iter_first(&it, &m->tree); btree_iter_valid(&it); btree_iter_next(&it)) {
        if (!mvcc_check_chain(m, btree_iter_ref(&it), &c)) {
            fprintf(stderr, "mvcc_check: bad chain\n");
            return false;
        }
    }
    if (memcmp(&c, &m->counters, sizeof(c)) != 0) {
        fprintf(stderr, "mvcc_check: counters disagree\n");
        return false;
    }
    return true;
}
