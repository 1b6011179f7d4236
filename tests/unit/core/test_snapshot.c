/*
 * test_snapshot.c — full snapshots (core/snapshot.h): a loaded store equals
 * the written one at every revision it can read, a snapshot written in small
 * chunks while writes go on between them is the store at the captured
 * revision, and every flipped bit and every truncation is KEEL_ECORRUPT.
 *
 * Stores are compared through the public interface only: mvcc_range over all
 * keys at a revision (every field and the value bytes) and mvcc_stats.
 * Randomized tests take KEEL_SEED (and KEEL_OPS) from the environment and
 * print the seed they use.
 */
#include "core/snapshot.h"

#include "core/assert.h"
#include "core/buf.h"
#include "core/checksum.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/test_rng.h"

#define MiB ((u64)1 << 20)

static u64 ops_or(u64 dflt)
{
#ifdef KEEL_SANITIZE
    dflt = dflt / 4 + 1; /* the sanitizers run the same code about 10x slower */
#endif
    const char *env = getenv("KEEL_OPS");
    return env ? strtoull(env, NULL, 0) : dflt;
}

static struct span S(const char *s) {
    return span_make(s, strlen(s));
}

static const struct span ALL = {(const u8 *)"", 1};

static struct mvcc_config config_of(u32 key_max, u32 value_max)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    c.memory_bytes_max = 256 * MiB;
    if (key_max) c.key_size_max = key_max;
    if (value_max) c.value_size_max = value_max;
    return c;
}

static struct mvcc *store_new(u32 key_max, u32 value_max)
{
    struct mvcc_config c = config_of(key_max, value_max);
    struct mvcc *s = mvcc_create(&c);
    cr_assert_not_null(s);
    return s;
}

static void put_lease(struct mvcc *s, const char *key, struct span value, i64 lease)
{
    int rc = mvcc_put(s, S(key), value, lease, NULL, NULL);
    cr_assert_eq(rc, KEEL_OK, "put %s: %s", key, keel_err_str(rc));
}

static void put(struct mvcc *s, const char *key, const char *value)
{
    put_lease(s, key, S(value), 0);
}

static void del(struct mvcc *s, const char *key)
{
    u64 n;
    int rc = mvcc_delete_range(s, S(key), span_make(NULL, 0), &n, NULL, NULL);
    cr_assert_eq(rc, KEEL_OK);
}

/* ---- snapshots in memory ---------------------------------------------------- */

struct snap {
    u8 *bytes;
    size_t len;
    size_t ends[4096]; /* end offset of each chunk */
    size_t chunks;
    u64 applied; /* the applied_index it was written with */
};

static struct snap *snap_new(void)
{
    struct snap *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    return s;
}

static void snap_free(struct snap *s)
{
    free(s->bytes);
    free(s);
}

/* Appends the writer's next chunk; false once it is done. */
static bool snap_step(struct snapshot_writer *w, struct snap *s, size_t bytes_max)
{
    u8 *buf = malloc(bytes_max);
    cr_assert_not_null(buf);
    size_t n = 0;
    int rc = snapshot_writer_next(w, buf, bytes_max, &n);
    cr_assert_eq(rc, KEEL_OK, "writer_next: %s", keel_err_str(rc));
    cr_assert_leq(n, bytes_max);
    if (n > 0) {
        s->bytes = realloc(s->bytes, s->len + n);
        cr_assert_not_null(s->bytes);
        memcpy(s->bytes + s->len, buf, n);
        s->len += n;
        cr_assert_lt(s->chunks, KEEL_ARRAY_LEN(s->ends));
        s->ends[s->chunks++] = s->len;
    }
    free(buf);
    cr_assert_gt(n, 0, "a writer that is not done always writes a chunk");
    return !snapshot_writer_done(w);
}

/* The applied index every snapshot of these tests carries: the store's
 * revision times 10, so a mix-up between the two shows. */
static u64 applied_of(struct mvcc *m)
{
    return (u64)mvcc_revision(m) * 10 + 3;
}

static struct snap *snap_write(struct mvcc *m, u32 keys_per_chunk, size_t bytes_max)
{
    struct snapshot_writer w;
    cr_assert_eq(snapshot_writer_init(&w, m, 7, applied_of(m), keys_per_chunk), KEEL_OK);
    struct snap *s = snap_new();
    s->applied = applied_of(m);
    while (snap_step(&w, s, bytes_max)) {}
    snapshot_writer_deinit(&w);
    return s;
}

static struct mvcc *snap_load_ok(struct mvcc *like, const struct snap *s)
{
    struct mvcc_config c = config_of(0, 0);
    ASSERT(like != NULL);
    const char *why = NULL;
    struct mvcc *out = NULL;
    u64 applied = 0;
    int rc = snapshot_load(&c, s->bytes, s->len, &out, &applied, &why);
    cr_assert_eq(rc, KEEL_OK, "load: %s (%s)", keel_err_str(rc), why ? why : "-");
    cr_assert_not_null(out);
    cr_assert_eq(applied, s->applied, "applied_index from the header");
    cr_assert(mvcc_check(out));
    return out;
}

/* ---- comparing stores --------------------------------------------------------- */

static bool span_eq(struct span a, struct span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void assert_kvs_eq(const struct mvcc_kv *a, const struct mvcc_kv *b, i64 rev)
{
    cr_assert(span_eq(a->key, b->key), "key differs at rev %lld", (long long)rev);
    cr_assert(span_eq(a->value, b->value), "value of %.*s differs at rev %lld", (int)a->key.len,
              (const char *)a->key.ptr, (long long)rev);
    cr_assert_eq(a->create_revision, b->create_revision);
    cr_assert_eq(a->mod_revision, b->mod_revision);
    cr_assert_eq(a->version, b->version);
    cr_assert_eq(a->lease, b->lease);
}

static struct mvcc_range_result range_all(struct mvcc *s, i64 rev, int *rc)
{
    struct mvcc_range_req q;
    memset(&q, 0, sizeof(q));
    q.key = span_make("\0", 1);
    q.range_end = ALL;
    q.revision = rev;
    struct mvcc_range_result r;
    memset(&r, 0, sizeof(r));
    *rc = mvcc_range(s, &q, &r);
    return r;
}

static void assert_same_at(struct mvcc *a, struct mvcc *b, i64 rev)
{
    int rca, rcb;
    struct mvcc_range_result ra = range_all(a, rev, &rca);
    struct mvcc_range_result rb = range_all(b, rev, &rcb);
    cr_assert_eq(rca, rcb, "rev %lld: %s vs %s", (long long)rev, keel_err_str(rca),
                 keel_err_str(rcb));
    if (rca != KEEL_OK) return;
    cr_assert_eq(ra.count, rb.count, "rev %lld: count", (long long)rev);
    cr_assert_eq(ra.kvs_len, rb.kvs_len);
    for (size_t i = 0; i < ra.kvs_len; i++) assert_kvs_eq(&ra.kvs[i], &rb.kvs[i], rev);
}

/* Every readable revision of `loaded` (and the one below) reads as in `orig`. */
static void assert_same_history(struct mvcc *orig, struct mvcc *loaded)
{
    i64 rev = mvcc_revision(loaded), c = mvcc_compact_revision(loaded);
    for (i64 r = c > 0 ? c - 1 : 0; r <= rev; r++) assert_same_at(orig, loaded, r);
}

static void assert_same_stats(struct mvcc *a, struct mvcc *b)
{
    struct mvcc_stats x, y;
    mvcc_stats(a, &x);
    mvcc_stats(b, &y);
    cr_assert_eq(x.revision, y.revision);
    cr_assert_eq(x.compact_revision, y.compact_revision);
    cr_assert_eq(x.keys_live, y.keys_live);
    cr_assert_eq(x.keys_tree, y.keys_tree);
    cr_assert_eq(x.records, y.records);
    cr_assert_eq(x.key_bytes, y.key_bytes);
    cr_assert_eq(x.value_bytes, y.value_bytes);
}

static void assert_round_trip(struct mvcc *m, u32 keys_per_chunk, size_t bytes_max)
{
    struct snap *s = snap_write(m, keys_per_chunk, bytes_max);
    struct mvcc *loaded = snap_load_ok(m, s);
    assert_same_stats(m, loaded);
    assert_same_history(m, loaded);
    mvcc_destroy(loaded);
    snap_free(s);
}

/* ---- round trips ---------------------------------------------------------------- */

Test(snapshot, empty_store_round_trips)
{
    struct mvcc *m = store_new(0, 0);
    struct mvcc_config c = config_of(0, 0);
    struct snap *s = snap_write(m, 16, snapshot_chunk_size_min(&c));
    cr_assert_eq(s->chunks, 2, "header and trailer only");
    struct mvcc *loaded = snap_load_ok(m, s);
    cr_assert_eq(mvcc_revision(loaded), 1);
    assert_same_stats(m, loaded);
    assert_same_history(m, loaded);
    mvcc_destroy(loaded);
    snap_free(s);
    mvcc_destroy(m);
}

/* History with overwrites, deletes, re-creations, leases and large values. */
static void build_history(struct mvcc *m)
{
    size_t big_len = 300 * 1024;
    u8 *big = malloc(big_len);
    cr_assert_not_null(big);
    for (size_t i = 0; i < big_len; i++) big[i] = (u8)(i * 31 + 7);
    put(m, "a", "1");
    put(m, "b", "1");
    put(m, "a", "2");
    put_lease(m, "lease", S("x"), 42);
    del(m, "b");
    put_lease(m, "big", span_make(big, big_len), 0);
    put(m, "b", "again");
    put(m, "c", "");
    big[0] ^= 0xff;
    put_lease(m, "big", span_make(big, big_len), 9);
    del(m, "c");
    put(m, "a", "3");
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    put(m, "d", "in a batch");
    put(m, "e", "in a batch");
    del(m, "lease");
    cr_assert_eq(mvcc_batch_commit(m, NULL), KEEL_OK);
    free(big);
}

Test(snapshot, history_tombstones_leases_large_values_round_trip)
{
    struct mvcc *m = store_new(0, 0);
    build_history(m);
    struct mvcc_config c = config_of(0, 0);
    size_t min = snapshot_chunk_size_min(&c);
    assert_round_trip(m, 1, min);
    assert_round_trip(m, 1000, 4 * min);
    mvcc_destroy(m);
}

Test(snapshot, round_trips_after_compaction)
{
    struct mvcc *m = store_new(0, 0);
    build_history(m);
    i64 mid = mvcc_revision(m) / 2;
    cr_assert_eq(mvcc_compact(m, mid), KEEL_OK);
    struct mvcc_config c = config_of(0, 0);
    assert_round_trip(m, 2, snapshot_chunk_size_min(&c));
    cr_assert_eq(mvcc_compact(m, mvcc_revision(m)), KEEL_OK);
    assert_round_trip(m, 2, snapshot_chunk_size_min(&c));
    mvcc_destroy(m);
}

/* A snapshot taken while a compaction job runs equals the finished job's. */
Test(snapshot, running_compaction_job_is_written_as_finished)
{
    struct mvcc *m = store_new(0, 0);
    build_history(m);
    cr_assert_eq(mvcc_compact_start(m, mvcc_revision(m) - 3), KEEL_OK);
    struct mvcc_config c = config_of(0, 0);
    struct snap *s = snap_write(m, 3, snapshot_chunk_size_min(&c));
    while (!mvcc_compact_step(m, 1)) {}
    struct mvcc *loaded = snap_load_ok(m, s);
    assert_same_stats(m, loaded);
    assert_same_history(m, loaded);
    mvcc_destroy(loaded);
    snap_free(s);
    mvcc_destroy(m);
}

Test(snapshot, compaction_started_during_a_writer_voids_it)
{
    struct mvcc *m = store_new(0, 0);
    build_history(m);
    struct mvcc_config c = config_of(0, 0);
    size_t max = snapshot_chunk_size_min(&c);
    u8 *buf = malloc(max);
    struct snapshot_writer w;
    size_t n;
    cr_assert_eq(snapshot_writer_init(&w, m, 1, 0, 1), KEEL_OK);
    cr_assert_eq(snapshot_writer_next(&w, buf, max - 1, &n), KEEL_EINVALID);
    cr_assert_eq(snapshot_writer_next(&w, buf, max, &n), KEEL_OK);
    cr_assert_eq(mvcc_compact(m, 2), KEEL_OK);
    cr_assert_eq(snapshot_writer_next(&w, buf, max, &n), KEEL_ECOMPACTED);
    snapshot_writer_deinit(&w);
    free(buf);
    mvcc_destroy(m);
}

/* ---- writes between chunks ------------------------------------------------------- */

#define KEYS_MAX 64

static void key_name(char *out, u64 i)
{
    snprintf(out, 16, "k%02llu", (unsigned long long)i);
}

static void random_write(struct mvcc *m)
{
    char key[16];
    key_name(key, rng_next() % KEYS_MAX);
    u64 op = rng_next() % 20;
    if (op < 4) {
        del(m, key);
        return;
    }
    if (op == 4) { /* a range: every key of a prefix ("k1" is k10..k19) */
        u64 n;
        key[2] = 0;
        u8 end[2];
        struct span e = mvcc_prefix_end(S(key), end);
        cr_assert_eq(mvcc_delete_range(m, S(key), e, &n, NULL, NULL), KEEL_OK);
        return;
    }
    char value[48];
    size_t len = (size_t)(rng_next() % sizeof(value));
    for (size_t i = 0; i < len; i++) value[i] = (char)('a' + rng_next() % 26);
    i64 lease = (rng_next() % 4 == 0) ? (i64)(rng_next() % 1000 + 1) : 0;
    put_lease(m, key, span_make(value, len), lease);
}

/* A copy of the state at a revision, as mvcc_range reports it. */
struct state {
    size_t len;
    struct mvcc_kv kvs[KEYS_MAX];
    u8 bytes[KEYS_MAX][64];
};

static void state_capture(struct mvcc *m, i64 rev, struct state *st)
{
    int rc;
    struct mvcc_range_result r = range_all(m, rev, &rc);
    cr_assert_eq(rc, KEEL_OK);
    cr_assert_leq(r.kvs_len, KEYS_MAX);
    st->len = r.kvs_len;
    for (size_t i = 0; i < r.kvs_len; i++) {
        st->kvs[i] = r.kvs[i];
        cr_assert_leq(r.kvs[i].key.len + r.kvs[i].value.len, 64);
        memcpy(st->bytes[i], r.kvs[i].key.ptr, r.kvs[i].key.len);
        memcpy(st->bytes[i] + r.kvs[i].key.len, r.kvs[i].value.ptr, r.kvs[i].value.len);
        st->kvs[i].key = span_make(st->bytes[i], r.kvs[i].key.len);
        st->kvs[i].value = span_make(st->bytes[i] + r.kvs[i].key.len, r.kvs[i].value.len);
    }
}

static void assert_state(struct mvcc *m, i64 rev, const struct state *st)
{
    int rc;
    struct mvcc_range_result r = range_all(m, rev, &rc);
    cr_assert_eq(rc, KEEL_OK);
    cr_assert_eq(r.kvs_len, st->len, "rev %lld: %zu keys, want %zu", (long long)rev, r.kvs_len,
                 st->len);
    for (size_t i = 0; i < st->len; i++) assert_kvs_eq(&r.kvs[i], &st->kvs[i], rev);
}

/* Between chunks: writes, sometimes a batch left open across a chunk and then
 * aborted, and steps of the compaction job that was running at capture. */
static void between_chunks(struct mvcc *m, bool *batch)
{
    if (*batch) {
        mvcc_batch_abort(m);
        *batch = false;
    }
    u64 n = rng_next() % 5;
    for (u64 i = 0; i < n; i++) random_write(m);
    mvcc_compact_step(m, 1 + rng_next() % 3);
    if (rng_next() % 4 == 0) {
        cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
        random_write(m);
        *batch = true;
    }
}

static void one_concurrent_snapshot(struct mvcc *m)
{
    if (rng_next() % 3 == 0 && mvcc_revision(m) > mvcc_compact_revision(m) + 2) {
        i64 span = mvcc_revision(m) - mvcc_compact_revision(m);
        i64 c = mvcc_compact_revision(m) + 1 + (i64)(rng_next() % (u64)(span - 1));
        cr_assert_eq(mvcc_compact_start(m, c), KEEL_OK); /* left running */
    }
    i64 rev = mvcc_revision(m), c = mvcc_compact_revision(m);
    static struct state at_rev;
    state_capture(m, rev, &at_rev);
    struct mvcc_config cfg = config_of(16, 48);
    size_t min = snapshot_chunk_size_min(&cfg);
    struct snapshot_writer w;
    u64 applied = applied_of(m);
    cr_assert_eq(snapshot_writer_init(&w, m, 3, applied, 1 + (u32)(rng_next() % 6)), KEEL_OK);
    struct snap *s = snap_new();
    s->applied = applied;
    bool batch = false;
    while (snap_step(&w, s, min + (size_t)(rng_next() % (2 * min)))) between_chunks(m, &batch);
    if (batch) mvcc_batch_abort(m); /* opened after the next-to-last chunk */
    snapshot_writer_deinit(&w);
    struct mvcc *loaded = snap_load_ok(m, s);
    cr_assert_eq(mvcc_revision(loaded), rev);
    cr_assert_eq(mvcc_compact_revision(loaded), c);
    assert_state(loaded, rev, &at_rev);
    /* Revision 0 reads "current": start at 1 (C = 0 reads like 1). */
    for (i64 r = KEEL_MAX(c, 1); r <= rev; r++) assert_same_at(m, loaded, r);
    mvcc_destroy(loaded);
    snap_free(s);
}

Test(snapshot, writes_between_chunks_leave_the_captured_state, .timeout = 300)
{
    rng_seed("writes_between_chunks_leave_the_captured_state");
    struct mvcc *m = store_new(16, 48);
    u64 rounds = ops_or(200);
    for (u64 i = 0; i < rounds; i++) {
        u64 n = rng_next() % 60;
        for (u64 j = 0; j < n; j++) random_write(m);
        one_concurrent_snapshot(m);
        while (!mvcc_compact_step(m, 64)) {}
        /* Keep the history compared per round (C .. R) to a few hundred
         * revisions: the check is one full range per revision. */
        i64 rev = mvcc_revision(m);
        if (rev - mvcc_compact_revision(m) > 300) {
            cr_assert_eq(mvcc_compact(m, rev - 100 - (i64)(rng_next() % 100)), KEEL_OK);
        }
        cr_assert(mvcc_check(m));
    }
    mvcc_destroy(m);
}

Test(snapshot, random_histories_round_trip, .timeout = 300)
{
    rng_seed("random_histories_round_trip");
    u64 rounds = ops_or(200) / 4 + 1;
    for (u64 i = 0; i < rounds; i++) {
        struct mvcc *m = store_new(16, 48);
        u64 n = rng_next() % 400;
        for (u64 j = 0; j < n; j++) random_write(m);
        if (rng_next() % 2 && mvcc_revision(m) > 1) {
            cr_assert_eq(mvcc_compact(m, 1 + (i64)(rng_next() % (u64)mvcc_revision(m))), KEEL_OK);
        }
        struct mvcc_config cfg = config_of(16, 48);
        size_t min = snapshot_chunk_size_min(&cfg);
        assert_round_trip(m, 1 + (u32)(rng_next() % 100), min + (size_t)(rng_next() % 4096));
        mvcc_destroy(m);
    }
}

/* ---- corruption ------------------------------------------------------------------ */

static struct mvcc *small_store(void)
{
    struct mvcc *m = store_new(16, 48);
    put(m, "a", "one");
    put(m, "b", "two");
    put_lease(m, "a", S("three"), 5);
    del(m, "b");
    put(m, "c", "four");
    put(m, "a", "five");
    return m;
}

static struct snap *small_snapshot(struct mvcc *m)
{
    struct mvcc_config cfg = config_of(16, 48);
    struct snap *s = snap_write(m, 1, snapshot_chunk_size_min(&cfg));
    cr_assert_geq(s->chunks, 4);
    return s;
}

static int load_rc(const u8 *bytes, size_t len, const char **why)
{
    struct mvcc_config c = config_of(16, 48);
    struct mvcc *out = NULL;
    int rc = snapshot_load(&c, bytes, len, &out, NULL, why);
    cr_assert_eq(rc == KEEL_OK, out != NULL);
    mvcc_destroy(out);
    return rc;
}

Test(snapshot, every_flipped_bit_is_detected)
{
    struct mvcc *m = small_store();
    struct snap *s = small_snapshot(m);
    const char *why = NULL;
    cr_assert_eq(load_rc(s->bytes, s->len, &why), KEEL_OK);
    for (size_t i = 0; i < s->len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            s->bytes[i] ^= (u8)(1u << bit);
            int rc = load_rc(s->bytes, s->len, &why);
            cr_assert_eq(rc, KEEL_ECORRUPT, "byte %zu bit %d: %s", i, bit, keel_err_str(rc));
            cr_assert_not_null(why);
            s->bytes[i] ^= (u8)(1u << bit);
        }
    }
    snap_free(s);
    mvcc_destroy(m);
}

Test(snapshot, every_truncation_is_detected)
{
    struct mvcc *m = small_store();
    struct snap *s = small_snapshot(m);
    const char *why = NULL;
    for (size_t c = 0; c + 1 < s->chunks; c++) {
        cr_assert_eq(load_rc(s->bytes, s->ends[c], &why), KEEL_ECORRUPT, "cut after chunk %zu", c);
        cr_assert_str_eq(why, "snapshot: truncated (no trailer)");
    }
    for (size_t len = 0; len < s->len; len++) {
        cr_assert_eq(load_rc(s->bytes, len, &why), KEEL_ECORRUPT, "cut at %zu", len);
    }
    u8 *longer = malloc(s->len + 1);
    memcpy(longer, s->bytes, s->len);
    longer[s->len] = 0;
    cr_assert_eq(load_rc(longer, s->len + 1, &why), KEEL_ECORRUPT, "a byte after the trailer");
    free(longer);
    snap_free(s);
    mvcc_destroy(m);
}

/* A chunk that fails its frame checks can be fed again, as a resumed transfer
 * would; a chunk of another snapshot never verifies. */
Test(snapshot, loader_resumes_after_a_bad_chunk)
{
    struct mvcc *m = small_store();
    struct snap *s = small_snapshot(m);
    put(m, "d", "later");
    struct snap *other = small_snapshot(m);
    struct mvcc_config c = config_of(16, 48);
    struct snapshot_loader l;
    cr_assert_eq(snapshot_loader_init(&l, &c), KEEL_OK);
    size_t start = 0;
    for (size_t i = 0; i < s->chunks; i++) {
        struct span chunk = span_make(s->bytes + start, s->ends[i] - start);
        u8 *bad = malloc(chunk.len);
        memcpy(bad, chunk.ptr, chunk.len);
        bad[chunk.len / 2] ^= 0x10;
        cr_assert_eq(snapshot_loader_feed(&l, span_make(bad, chunk.len)), KEEL_ECORRUPT);
        cr_assert_not_null(snapshot_loader_error(&l));
        if (i > 0) {
            size_t o = other->ends[i - 1];
            struct span foreign = span_make(other->bytes + o, other->ends[i] - o);
            cr_assert_eq(snapshot_loader_feed(&l, foreign), KEEL_ECORRUPT);
        }
        if (i > 1) { /* an old chunk again: out of sequence */
            size_t o = s->ends[i - 2];
            struct span again = span_make(s->bytes + o, s->ends[i - 1] - o);
            cr_assert_eq(snapshot_loader_feed(&l, again), KEEL_ECORRUPT);
        }
        cr_assert_eq(snapshot_loader_feed(&l, chunk), KEEL_OK, "%s", snapshot_loader_error(&l));
        free(bad);
        start = s->ends[i];
    }
    struct mvcc *loaded = NULL;
    cr_assert_eq(snapshot_loader_finish(&l, &loaded), KEEL_OK);
    snapshot_loader_deinit(&l);
    assert_same_history(loaded, loaded);
    cr_assert_eq(mvcc_revision(loaded), mvcc_revision(m) - 1);
    mvcc_destroy(loaded);
    snap_free(other);
    snap_free(s);
    mvcc_destroy(m);
}

/* ---- the header, and the bound on each call ------------------------------------------ */

static size_t chunk_start(const struct snap *s, size_t i)
{
    return i == 0 ? 0 : s->ends[i - 1];
}

static const u8 *chunk_payload(const struct snap *s, size_t i)
{
    return s->bytes + chunk_start(s, i) + SNAPSHOT_FRAME_SIZE;
}

Test(snapshot, header_carries_applied_index_revision_and_bounds)
{
    struct mvcc *m = small_store();
    struct snap *s = small_snapshot(m);
    const u8 *h = chunk_payload(s, 0);
    cr_assert_eq(s->bytes[4], SNAPSHOT_CHUNK_HEADER);
    cr_assert_eq(load_u32_le(s->bytes), SNAPSHOT_HEADER_SIZE);
    cr_assert_eq(load_u64_le(h), SNAPSHOT_MAGIC);
    cr_assert_eq(load_u64_le(h + 16), 7, "shard id");
    cr_assert_eq(load_u64_le(h + 24), (u64)mvcc_revision(m));
    cr_assert_eq(load_u64_le(h + 32), (u64)mvcc_compact_revision(m));
    cr_assert_eq(load_u64_le(h + 56), applied_of(m), "applied_index at offset 56");
    size_t last = s->chunks - 1;
    cr_assert_eq(s->bytes[chunk_start(s, last) + 4], SNAPSHOT_CHUNK_TRAILER);
    cr_assert_eq(load_u64_le(chunk_payload(s, last)), last, "trailer: chunks before it");
    cr_assert_eq(load_u64_le(chunk_payload(s, last) + 8), 3, "trailer: keys");
    snap_free(s);
    mvcc_destroy(m);
}

Test(snapshot, every_call_is_bounded_by_keys_and_bytes)
{
    struct mvcc *m = store_new(16, 48);
    char key[16];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "key%04d", i);
        put(m, key, "value");
        if (i % 3 == 0) put(m, key, "again");
    }
    struct mvcc_config cfg = config_of(16, 48);
    size_t bytes_max = 3 * snapshot_chunk_size_min(&cfg);
    struct snap *s = snap_write(m, 7, bytes_max);
    cr_assert_geq(s->chunks, 2 + 500 / 7);
    for (size_t i = 0; i < s->chunks; i++) {
        cr_assert_leq(s->ends[i] - chunk_start(s, i), bytes_max, "chunk %zu", i);
        if (s->bytes[chunk_start(s, i) + 4] != SNAPSHOT_CHUNK_KEYS) continue;
        cr_assert_leq(load_u32_le(chunk_payload(s, i)), 7, "chunk %zu: entries", i);
    }
    assert_round_trip(m, 7, bytes_max);
    snap_free(s);
    mvcc_destroy(m);
}

/* One key with a chain longer than a chunk holds, written to between
 * chunks: its chain is split over many chunks (MORE), the new versions are
 * not in the snapshot, and the split resumes where it stopped. */
Test(snapshot, a_long_chain_splits_across_chunks_while_written)
{
    struct mvcc *m = store_new(16, 48);
    char value[64]; /* at most 44 used: value_size_max is 48 */
    put(m, "a", "before");
    for (int i = 0; i < 300; i++) {
        snprintf(value, sizeof(value), "hot-%d-%036d", i, i);
        if (i % 50 == 49) {
            del(m, "hot");
        } else {
            put_lease(m, "hot", S(value), i % 7 == 0 ? i + 1 : 0);
        }
    }
    put(m, "z", "after");
    cr_assert_eq(mvcc_compact_start(m, 20), KEEL_OK); /* left running */
    i64 rev = mvcc_revision(m);
    struct mvcc_config cfg = config_of(16, 48);
    size_t min = snapshot_chunk_size_min(&cfg);
    struct snapshot_writer w;
    cr_assert_eq(snapshot_writer_init(&w, m, 1, 99, 1000), KEEL_OK);
    struct snap *s = snap_new();
    s->applied = 99;
    for (int turn = 0; snap_step(&w, s, min); turn++) {
        put(m, "hot", turn % 2 ? "newer" : "newest");
        if (turn % 5 == 4) del(m, "hot");
        put(m, "b", "a new key");
        mvcc_compact_step(m, 1);
    }
    snapshot_writer_deinit(&w);
    cr_assert_geq(s->chunks, 20, "the chain is split (%zu chunks)", s->chunks);
    struct mvcc *loaded = snap_load_ok(m, s);
    cr_assert_eq(mvcc_revision(loaded), rev);
    for (i64 r = 20; r <= rev; r++) assert_same_at(m, loaded, r);
    mvcc_destroy(loaded);
    snap_free(s);
    mvcc_destroy(m);
}

/* ---- every kind of corruption ------------------------------------------------------- */

/* A snapshot of several chunks (keys split over them), and a second one of
 * the same store a write later: the same shape, another header checksum. */
static struct mvcc *many_chunk_store(void)
{
    struct mvcc *m = store_new(16, 48);
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "key%02d", i);
        put(m, key, "a value of some length");
        if (i % 4 == 0) del(m, key);
    }
    return m;
}

/* Assembles the chunks listed (index into a or, with bit 16, into b). */
static struct snap *snap_assemble(const struct snap *a, const struct snap *b, const size_t *idx,
                                  size_t n)
{
    struct snap *out = snap_new();
    for (size_t k = 0; k < n; k++) {
        const struct snap *from = (idx[k] & 0x10000) ? b : a;
        size_t i = idx[k] & 0xffff;
        size_t start = chunk_start(from, i), len = from->ends[i] - start;
        out->bytes = realloc(out->bytes, out->len + len);
        cr_assert_not_null(out->bytes);
        memcpy(out->bytes + out->len, from->bytes + start, len);
        out->len += len;
        out->ends[out->chunks++] = out->len;
    }
    return out;
}

static void assert_corrupt(const struct snap *s, const char *what, size_t i)
{
    const char *why = NULL;
    int rc = load_rc(s->bytes, s->len, &why);
    cr_assert_eq(rc, KEEL_ECORRUPT, "%s %zu: %s", what, i, keel_err_str(rc));
    cr_assert_not_null(why, "%s %zu: no reason", what, i);
    cr_assert(strncmp(why, "snapshot: ", 10) == 0, "%s %zu: reason %s", what, i, why);
}

Test(snapshot, reordered_dropped_repeated_and_foreign_chunks_are_corrupt)
{
    struct mvcc *m = many_chunk_store();
    struct snap *a = small_snapshot(m);
    put(m, "key00", "one more write");
    struct snap *b = small_snapshot(m);
    size_t n = a->chunks, idx[4096 + 1];
    cr_assert_geq(n, 10);
    for (size_t i = 0; i + 1 < n; i++) { /* swap i and i + 1 */
        for (size_t k = 0; k < n; k++) idx[k] = k;
        idx[i] = i + 1;
        idx[i + 1] = i;
        struct snap *t = snap_assemble(a, b, idx, n);
        assert_corrupt(t, "swapped", i);
        snap_free(t);
    }
    for (size_t i = 0; i < n; i++) { /* drop i */
        for (size_t k = 0, j = 0; k < n; k++)
            if (k != i) idx[j++] = k;
        struct snap *t = snap_assemble(a, b, idx, n - 1);
        assert_corrupt(t, "dropped", i);
        snap_free(t);
    }
    for (size_t i = 0; i < n; i++) { /* repeat i */
        for (size_t k = 0, j = 0; k < n; k++) {
            idx[j++] = k;
            if (k == i) idx[j++] = k;
        }
        struct snap *t = snap_assemble(a, b, idx, n + 1);
        assert_corrupt(t, "repeated", i);
        snap_free(t);
    }
    for (size_t i = 0; i < n && i < b->chunks; i++) { /* chunk i from the other snapshot */
        for (size_t k = 0; k < n; k++) idx[k] = k == i ? (k | 0x10000) : k;
        struct snap *t = snap_assemble(a, b, idx, n);
        assert_corrupt(t, "foreign", i);
        snap_free(t);
    }
    snap_free(a);
    snap_free(b);
    mvcc_destroy(m);
}

Test(snapshot, a_flipped_byte_in_any_chunk_is_corrupt)
{
    struct mvcc *m = many_chunk_store();
    struct snap *s = small_snapshot(m);
    for (size_t i = 0; i < s->chunks; i++) {
        size_t start = chunk_start(s, i), len = s->ends[i] - start;
        size_t at[] = {start,           start + 4,      start + 8, start + SNAPSHOT_FRAME_SIZE,
                       start + len / 2, start + len - 1};
        for (size_t k = 0; k < KEEL_ARRAY_LEN(at); k++) {
            s->bytes[at[k]] ^= 0x5a;
            assert_corrupt(s, "chunk", i);
            s->bytes[at[k]] ^= 0x5a;
        }
    }
    snap_free(s);
    mvcc_destroy(m);
}

/* Rewrites a chunk's checksum after an edit, as a buggy writer would: the
 * frame verifies and the loader's own checks must catch the edit. */
static void reseal(struct snap *s, size_t i)
{
    u64 seed = i == 0 ? 0 : load_u64_le(s->bytes + s->ends[0] - SNAPSHOT_CHECKSUM_SIZE);
    size_t start = chunk_start(s, i), body = s->ends[i] - start - SNAPSHOT_CHECKSUM_SIZE;
    store_u64_le(s->bytes + start + body, checksum64_seeded(s->bytes + start, body, seed));
}

static void assert_resealed_corrupt(struct mvcc *m, size_t chunk, size_t offset, u8 x,
                                    const char *reason)
{
    struct snap *s = small_snapshot(m);
    s->bytes[chunk_start(s, chunk) + SNAPSHOT_FRAME_SIZE + offset] ^= x;
    reseal(s, chunk);
    const char *why = NULL;
    cr_assert_eq(load_rc(s->bytes, s->len, &why), KEEL_ECORRUPT, "%s", reason);
    cr_assert_str_eq(why, reason);
    snap_free(s);
}

#define KEY_LEN_BAD "snapshot: bad key length (malformed, 0, or over key_size_max)"

Test(snapshot, sealed_but_wrong_contents_are_corrupt)
{
    struct mvcc *m = small_store();
    assert_resealed_corrupt(m, 0, 0, 1, "snapshot: bad magic");
    assert_resealed_corrupt(m, 0, 8, 4, "snapshot: unknown format version");
    assert_resealed_corrupt(m, 0, 12, 1, "snapshot: unknown header flags");
    assert_resealed_corrupt(m, 0, 32, 0x40, "snapshot: bad revision or compact revision");
    assert_resealed_corrupt(m, 1, 0, 2, KEY_LEN_BAD); /* one entry too many */
    /* The first entry's key "a" becomes "b", which the next entry repeats. */
    assert_resealed_corrupt(m, 1, 5, 3, "snapshot: keys out of order");
    mvcc_destroy(m);
}

/* A store configured with smaller limits than the snapshot's cannot hold
 * it: KEEL_ECORRUPT, saying which limit. */
Test(snapshot, a_config_with_smaller_limits_is_refused)
{
    struct mvcc *m = small_store();
    struct snap *s = small_snapshot(m);
    struct mvcc_config c = config_of(16, 4); /* "three" and "five" do not fit */
    struct mvcc *out = NULL;
    const char *why = NULL;
    cr_assert_eq(snapshot_load(&c, s->bytes, s->len, &out, NULL, &why), KEEL_ECORRUPT);
    cr_assert_null(out);
    cr_assert_str_eq(why, "snapshot: bad value length (malformed, or over value_size_max)");
    c = config_of(1, 48);
    put(m, "long", "x");
    snap_free(s);
    s = small_snapshot(m);
    cr_assert_eq(snapshot_load(&c, s->bytes, s->len, &out, NULL, &why), KEEL_ECORRUPT);
    cr_assert_str_eq(why, KEY_LEN_BAD);
    snap_free(s);
    mvcc_destroy(m);
}
