/*
 * test_raft_codec.c — raft/raft_codec.c: golden bytes of one message, seeded round trips of
 * random messages of every type, every truncation and every extension of valid encodings
 * failing cleanly, random byte mutations never crashing (and decoding, when they do, to a
 * message that re-encodes to the same bytes), and entries_cap too small.
 * Randomized tests print their seed and take KEEL_SEED.
 */
#include "raft/raft.h"

#include "../test_rng.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#define MSG_SIZE_MIN   101
#define ENTRIES_MAX    12
#define DATA_BYTES_MAX 40

/* A random message and the bytes its entries and chunk borrow. */
struct rmsg {
    struct raft_msg m;
    struct raft_entry entries[ENTRIES_MAX];
    u8 data[ENTRIES_MAX][DATA_BYTES_MAX];
    u8 snap[DATA_BYTES_MAX * 2];
};

static u64 rand_u64(void)
{
    /* Small values, edge values and anything, so zero and UINT64_MAX are both hit. */
    switch (rng_below(4)) {
    case 0:
        return rng_below(16);
    case 1:
        return UINT64_MAX - rng_below(3);
    default:
        return rng_next();
    }
}

static void rand_entries(struct rmsg *x)
{
    struct raft_msg *m = &x->m;
    m->entry_count = (u32)rng_below(ENTRIES_MAX + 1);
    m->index = rng_below(1000);
    m->log_term = rng_below(50);
    m->term = m->log_term + rng_below(50) + 1;
    u64 term = m->log_term;
    for (u32 i = 0; i < m->entry_count; i++) {
        struct raft_entry *e = &x->entries[i];
        term += rng_below(2) * rng_below(m->term - term + 1);
        e->term = term;
        e->index = m->index + 1 + i;
        e->type = rng_below(2) ? RAFT_ENTRY_NORMAL : RAFT_ENTRY_CONF;
        e->len = (u32)rng_below(DATA_BYTES_MAX + 1);
        for (u32 j = 0; j < e->len; j++) x->data[i][j] = (u8)rng_next();
        e->data = e->len ? x->data[i] : NULL;
    }
    m->entries = m->entry_count ? x->entries : NULL;
}

static void rand_snap(struct rmsg *x)
{
    struct raft_msg *m = &x->m;
    m->snap.index = rand_u64();
    m->snap.term = rand_u64();
    m->snap.conf.count = (u32)rng_below(RAFT_MEMBERS_MAX + 1);
    for (u32 i = 0; i < m->snap.conf.count; i++) {
        m->snap.conf.members[i].id = i + 1 + rng_below(4) * 1000;
        m->snap.conf.members[i].role = rng_below(2) ? RAFT_VOTER : RAFT_LEARNER;
    }
    m->snap_offset = rand_u64();
    m->snap_last = rng_below(2);
    if (m->type != RAFT_MSG_SNAP) return;
    m->snap_len = (u32)rng_below(sizeof(x->snap) + 1);
    for (u32 j = 0; j < m->snap_len; j++) x->snap[j] = (u8)rng_next();
    m->snap_data = x->snap;
}

static void rand_msg(struct rmsg *x, u8 type)
{
    memset(x, 0, sizeof(*x));
    struct raft_msg *m = &x->m;
    m->type = type;
    m->from = rng_below(9) + 1;
    m->to = rand_u64() | 1;
    m->term = rand_u64();
    m->log_term = rand_u64();
    m->index = rand_u64();
    m->commit = rand_u64();
    m->context = rand_u64();
    m->reject = rng_below(2);
    m->transfer = rng_below(2);
    m->reject_hint = rand_u64();
    if (type == RAFT_MSG_APP) rand_entries(x);
    if (type == RAFT_MSG_SNAP || type == RAFT_MSG_SNAP_RESP || rng_below(4) == 0) rand_snap(x);
}

static void assert_msg_eq(const struct raft_msg *a, const struct raft_msg *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->from, b->from);
    cr_assert_eq(a->to, b->to);
    cr_assert_eq(a->term, b->term);
    cr_assert_eq(a->log_term, b->log_term);
    cr_assert_eq(a->index, b->index);
    cr_assert_eq(a->commit, b->commit);
    cr_assert_eq(a->context, b->context);
    cr_assert_eq(a->reject, b->reject);
    cr_assert_eq(a->transfer, b->transfer);
    cr_assert_eq(a->reject_hint, b->reject_hint);
    cr_assert_eq(a->entry_count, b->entry_count);
    for (u32 i = 0; i < a->entry_count; i++) {
        const struct raft_entry *x = &a->entries[i], *y = &b->entries[i];
        cr_assert_eq(x->term, y->term, "entry %u", i);
        cr_assert_eq(x->index, y->index, "entry %u", i);
        cr_assert_eq(x->type, y->type, "entry %u", i);
        cr_assert_eq(x->len, y->len, "entry %u", i);
        cr_assert_eq((x->data == NULL), (y->data == NULL), "entry %u", i);
        if (x->len) cr_assert_arr_eq(x->data, y->data, x->len, "entry %u", i);
    }
    cr_assert_eq(a->snap.index, b->snap.index);
    cr_assert_eq(a->snap.term, b->snap.term);
    cr_assert_eq(a->snap.conf.count, b->snap.conf.count);
    for (u32 i = 0; i < a->snap.conf.count; i++) {
        cr_assert_eq(a->snap.conf.members[i].id, b->snap.conf.members[i].id);
        cr_assert_eq(a->snap.conf.members[i].role, b->snap.conf.members[i].role);
    }
    cr_assert_eq(a->snap_offset, b->snap_offset);
    cr_assert_eq(a->snap_len, b->snap_len);
    cr_assert_eq(a->snap_last, b->snap_last);
    if (a->snap_len) cr_assert_arr_eq(a->snap_data, b->snap_data, a->snap_len);
}

/* Encodes x into a fresh heap block of exactly its size (so ASan sees any overread). */
static u8 *encode_exact(const struct raft_msg *m, size_t *len)
{
    size_t size = raft_msg_encoded_size(m);
    cr_assert_geq(size, MSG_SIZE_MIN);
    u8 *buf = malloc(size);
    cr_assert_not_null(buf);
    cr_assert_eq(raft_msg_encode(m, buf, size - 1), 0, "one byte short must not encode");
    cr_assert_eq(raft_msg_encode(m, buf, size), size);
    *len = size;
    return buf;
}

/* ---- golden bytes ----------------------------------------------------------------------- */

Test(raft_codec, heartbeat_golden_bytes)
{
    struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT,
                         .from = 1,
                         .to = 2,
                         .term = 3,
                         .commit = 4,
                         .context = 0x0102030405060708ull,
                         .reject = true};
    u8 buf[MSG_SIZE_MIN];
    cr_assert_eq(raft_msg_encoded_size(&m), MSG_SIZE_MIN);
    cr_assert_eq(raft_msg_encode(&m, buf, sizeof(buf)), MSG_SIZE_MIN);
    const u8 head[] = {1, RAFT_MSG_HEARTBEAT,
                       1, 0,
                       1, 0,
                       0, 0,
                       0, 0,
                       0, 0,
                       2, 0,
                       0, 0,
                       0, 0,
                       0, 0,
                       3, 0,
                       0, 0,
                       0, 0,
                       0, 0};
    cr_assert_arr_eq(buf, head, sizeof(head));
    cr_assert_eq(buf[44], 4, "commit at offset 44");
    cr_assert_eq(buf[52], 8, "context at offset 52, little-endian");
    cr_assert_eq(buf[59], 1);
    for (size_t i = 60; i < MSG_SIZE_MIN; i++) cr_assert_eq(buf[i], 0, "byte %zu", i);
    struct raft_msg d;
    cr_assert_eq(raft_msg_decode(buf, sizeof(buf), &d, NULL, 0), RAFT_OK);
    assert_msg_eq(&m, &d);
    cr_assert_null(d.entries);
    cr_assert_null(d.snap_data);
}

/* ---- round trips ------------------------------------------------------------------------ */

Test(raft_codec, random_round_trip_every_type)
{
    rng_seed("raft_codec.random_round_trip_every_type");
    for (int round = 0; round < 3000; round++) {
        u8 type = (u8)(RAFT_MSG_APP + round % (RAFT_MSG_TYPE_COUNT_ - 1));
        struct rmsg x;
        rand_msg(&x, type);
        size_t len;
        u8 *buf = encode_exact(&x.m, &len);
        cr_assert_eq(raft_msg_entry_count(buf, len), x.m.entry_count);
        struct raft_entry entries[ENTRIES_MAX];
        struct raft_msg d;
        cr_assert_eq(raft_msg_decode(buf, len, &d, entries, ENTRIES_MAX), RAFT_OK, "round %d",
                     round);
        assert_msg_eq(&x.m, &d);
        for (u32 i = 0; i < d.entry_count; i++) {
            cr_assert_eq(d.entries, entries, "entries go to the caller's array");
            if (d.entries[i].len) {
                cr_assert_geq(d.entries[i].data, buf, "data borrowed from buf");
                cr_assert_leq(d.entries[i].data + d.entries[i].len, buf + len);
            }
        }
        if (type == RAFT_MSG_SNAP) cr_assert_not_null(d.snap_data, "a SNAP chunk is filled");
        free(buf);
    }
}

Test(raft_codec, entries_cap_too_small_is_enomem)
{
    rng_seed("raft_codec.entries_cap_too_small_is_enomem");
    struct rmsg x;
    do rand_msg(&x, RAFT_MSG_APP);
    while (x.m.entry_count < 2);
    size_t len;
    u8 *buf = encode_exact(&x.m, &len);
    u32 count = raft_msg_entry_count(buf, len);
    cr_assert_eq(count, x.m.entry_count);
    struct raft_entry entries[ENTRIES_MAX];
    struct raft_msg d;
    cr_assert_eq(raft_msg_decode(buf, len, &d, entries, count - 1), RAFT_ENOMEM);
    cr_assert_eq(raft_msg_decode(buf, len, &d, NULL, 0), RAFT_ENOMEM);
    cr_assert_eq(raft_msg_decode(buf, len, &d, entries, count), RAFT_OK);
    assert_msg_eq(&x.m, &d);
    free(buf);
}

/* ---- bad input -------------------------------------------------------------------------- */

Test(raft_codec, every_truncation_and_extension_fails_cleanly)
{
    rng_seed("raft_codec.every_truncation_and_extension_fails_cleanly");
    for (int round = 0; round < 200; round++) {
        struct rmsg x;
        rand_msg(&x, (u8)(RAFT_MSG_APP + round % (RAFT_MSG_TYPE_COUNT_ - 1)));
        size_t len;
        u8 *buf = encode_exact(&x.m, &len);
        struct raft_entry entries[ENTRIES_MAX];
        struct raft_msg d;
        for (size_t cut = 0; cut < len; cut++) {
            u8 *part = malloc(cut ? cut : 1);
            memcpy(part, buf, cut);
            cr_assert_eq(raft_msg_decode(part, cut, &d, entries, ENTRIES_MAX), RAFT_ECORRUPT,
                         "round %d: %zu of %zu bytes", round, cut, len);
            cr_assert_eq(d.entry_count, 0, "nothing borrowed after a failure");
            cr_assert_null(d.entries);
            free(part);
        }
        u8 *more = malloc(len + 1);
        memcpy(more, buf, len);
        more[len] = 0;
        cr_assert_eq(raft_msg_decode(more, len + 1, &d, entries, ENTRIES_MAX), RAFT_ECORRUPT,
                     "round %d: a byte left over", round);
        free(more);
        free(buf);
    }
}

/* Mutates a valid encoding at random; whatever decodes must re-encode to the same bytes. */
static void mutate_once(u8 *buf, size_t len)
{
    u32 flips = (u32)rng_below(4) + 1;
    for (u32 i = 0; i < flips; i++) {
        size_t at = rng_below(len);
        if (rng_below(2))
            buf[at] ^= (u8)(1u << rng_below(8));
        else
            buf[at] = (u8)rng_next();
    }
}

Test(raft_codec, random_mutations_never_crash)
{
    rng_seed("raft_codec.random_mutations_never_crash");
    u32 ok = 0, corrupt = 0, nomem = 0;
    for (int round = 0; round < 20000; round++) {
        struct rmsg x;
        rand_msg(&x, (u8)(RAFT_MSG_APP + round % (RAFT_MSG_TYPE_COUNT_ - 1)));
        size_t len;
        u8 *buf = encode_exact(&x.m, &len);
        mutate_once(buf, len);
        struct raft_entry entries[ENTRIES_MAX];
        struct raft_msg d;
        int rc = raft_msg_decode(buf, len, &d, entries, ENTRIES_MAX);
        cr_assert(rc == RAFT_OK || rc == RAFT_ECORRUPT || rc == RAFT_ENOMEM, "rc %d", rc);
        if (rc == RAFT_OK) {
            ok++;
            u8 *again = malloc(len);
            cr_assert_eq(raft_msg_encode(&d, again, len), len);
            cr_assert_arr_eq(again, buf, len, "round %d: decode then encode is identity", round);
            free(again);
        } else {
            rc == RAFT_ECORRUPT ? corrupt++ : nomem++;
        }
        free(buf);
    }
    cr_log_info("mutations: %u decoded, %u corrupt, %u enomem", ok, corrupt, nomem);
    cr_assert_gt(corrupt, 0);
    cr_assert_gt(ok, 0, "flips in free fields (context, data) still decode");
}

static void set_and_expect_corrupt(const struct raft_msg *m, size_t at, u8 value, const char *what)
{
    u8 buf[512];
    size_t len = raft_msg_encode(m, buf, sizeof(buf));
    cr_assert_gt(len, at);
    buf[at] = value;
    struct raft_entry entries[ENTRIES_MAX];
    struct raft_msg d;
    cr_assert_eq(raft_msg_decode(buf, len, &d, entries, ENTRIES_MAX), RAFT_ECORRUPT, "%s", what);
}

Test(raft_codec, bad_fields_are_corrupt)
{
    const u8 data[3] = {7, 8, 9};
    struct raft_entry e[2] = {
        {.term = 2, .index = 6, .type = RAFT_ENTRY_NORMAL, .len = 3, .data = data},
        {.term = 3, .index = 7, .type = RAFT_ENTRY_CONF}};
    struct raft_msg app = {.type = RAFT_MSG_APP,
                           .from = 1,
                           .to = 2,
                           .term = 3,
                           .log_term = 2,
                           .index = 5,
                           .entry_count = 2,
                           .entries = e};
    set_and_expect_corrupt(&app, 0, 2, "version");
    set_and_expect_corrupt(&app, 1, 0, "type 0");
    set_and_expect_corrupt(&app, 1, RAFT_MSG_TYPE_COUNT_, "type past the last");
    set_and_expect_corrupt(&app, 1, RAFT_MSG_HEARTBEAT, "entries on a heartbeat");
    set_and_expect_corrupt(&app, 2, 0x08, "unknown flag");
    set_and_expect_corrupt(&app, 3, 1, "reserved byte");
    set_and_expect_corrupt(&app, 4, 0, "from 0");
    set_and_expect_corrupt(&app, 68, 3, "entry count 3 of 2");
    set_and_expect_corrupt(&app, 71, 0x80, "huge entry count");
    set_and_expect_corrupt(&app, 72, 1, "first entry term below log_term");
    set_and_expect_corrupt(&app, 72, 4, "entry term above the message's term");
    set_and_expect_corrupt(&app, 80, 7, "entry index not after index");
    set_and_expect_corrupt(&app, 88, 3, "entry type");
    set_and_expect_corrupt(&app, 89, 4, "entry len past the entry");
    set_and_expect_corrupt(&app, 72 + 24 + 8, 5, "second entry not contiguous");
    set_and_expect_corrupt(&app, 72 + 24, 1, "second entry term decreasing");
    struct raft_msg snap = {.type = RAFT_MSG_SNAP,
                            .from = 1,
                            .to = 2,
                            .snap.conf.count = 2,
                            .snap.conf.members = {{1, RAFT_VOTER}, {2, RAFT_LEARNER}}};
    set_and_expect_corrupt(&snap, 72 + 16, RAFT_MEMBERS_MAX + 1, "member count");
    set_and_expect_corrupt(&snap, 72 + 16, 3, "member count past the bytes");
    set_and_expect_corrupt(&snap, 72 + 17 + 9, 1, "duplicate member id");
    set_and_expect_corrupt(&snap, 72 + 17, 0, "member id 0");
    set_and_expect_corrupt(&snap, 72 + 17 + 8, 3, "member role");
    set_and_expect_corrupt(&snap, 72 + 17 + 18 + 8, 1, "snap_len past the end");
    struct raft_msg vote = {.type = RAFT_MSG_VOTE, .from = 1, .to = 2};
    set_and_expect_corrupt(&vote, 72 + 17 + 8, 1, "a chunk on a vote");
    cr_assert_eq(raft_msg_entry_count(NULL, 0), 0);
}

Test(raft_codec, index_wrap_is_corrupt)
{
    struct raft_entry e = {.term = 1, .index = 0, .type = RAFT_ENTRY_NORMAL};
    struct raft_msg app = {.type = RAFT_MSG_APP,
                           .from = 1,
                           .to = 2,
                           .term = 1,
                           .index = UINT64_MAX,
                           .entry_count = 1,
                           .entries = &e};
    u8 buf[256];
    size_t len = raft_msg_encode(&app, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    struct raft_entry out[1];
    struct raft_msg d;
    cr_assert_eq(raft_msg_decode(buf, len, &d, out, 1), RAFT_ECORRUPT);
}
