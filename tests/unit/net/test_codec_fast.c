/*
 * test_codec_fast.c — the straight-line PUT/RANGE codec (net/codec_fast.c) against the
 * generic table walker (net/codec.c), on the same inputs.
 *
 *  - shape: the generated field tables still have the fields, types and limits the fast
 *    code was written for (a new field or a changed limit fails here first).
 *  - decode: every golden vector of proto-spec/vectors/, random valid PUT/RANGE requests
 *    and replies, and byte mutations, overwritten length fields and truncations of all of
 *    them, read as each of the four bodies and as whole request and reply frames: the fast
 *    decoders accept exactly what the generic ones accept, with the same fields, and the
 *    entry points (codec_request_decode, codec_reply_decode) return the same status.
 *  - kv lists: codec_list_add and codec_iter_next (fast kv writes and reads) against the
 *    walker's codec_encode and codec_decode of each kv.
 *  - encode: the entry points (codec_request_encode, codec_reply_encode) and the generic
 *    frame_begin + codec_encode + frame_end write the same bytes, length, overflow flag and
 *    status, for valid messages, messages with one field broken, small fixed buffers and
 *    small frame_size_max.
 * Random: KEEL_SEED (printed) reproduces a run; KEEL_OPS sets the number of random messages.
 */
#include "net/codec.h"
#include "net/codec_fast.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef KEEL_SPEC_DIR
#error "KEEL_SPEC_DIR must name proto-spec/ (set by tests/unit/net/CMakeLists.txt)"
#endif

/* ---- random ----------------------------------------------------------------------------- */

static u64 rng_state;

static u64 rng(void)
{
    u64 z = (rng_state += 0x9E3779B97F4A7C15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static u64 env_u64(const char *name, u64 fallback)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 0) : fallback;
}

static void seed_init(const char *test)
{
    u64 seed = env_u64("KEEL_SEED", (u64)time(NULL) ^ (u64)clock());
    rng_state = seed;
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
}

/* A length in [min, max], often at its edges. */
static size_t rand_len(size_t min, size_t max, size_t cap)
{
    size_t edges[] = {min, min + 1, max - 1, max};
    size_t v = rng() % 2 ? edges[rng() % KEEL_ARRAY_LEN(edges)] : min + rng() % 40;
    return v > cap ? cap : v;
}

static i64 rand_i64(void)
{
    static const i64 edges[] = {0, 1, -1, INT64_MAX, INT64_MIN, 1000};
    return rng() % 2 ? edges[rng() % KEEL_ARRAY_LEN(edges)] : (i64)(rng() >> (rng() % 64));
}

/* Backing bytes for random spans: large enough for a largest value plus one. */
static u8 *pool;
#define POOL_SIZE (CODEC_VALUE_SIZE_MAX + 64)

static struct span rand_span(size_t min, size_t max)
{
    size_t len = rand_len(min, max, POOL_SIZE);
    if (rng() % 4 != 0 && len > 300) len = min + rng() % 300; /* mostly short */
    return span_make(pool + rng() % (POOL_SIZE - len + 1), len);
}

/* ---- comparisons -------------------------------------------------------------------------- */

static void span_expect(struct span a, struct span b, const char *what)
{
    cr_assert(a.ptr == b.ptr && a.len == b.len, "%s: span differs (%zu vs %zu)", what, a.len,
              b.len);
}

static void kv_expect(const struct codec_kv *a, const struct codec_kv *b)
{
    cr_assert_eq(a->create_revision, b->create_revision);
    cr_assert_eq(a->mod_revision, b->mod_revision);
    cr_assert_eq(a->version, b->version);
    cr_assert_eq(a->lease, b->lease);
    span_expect(a->key, b->key, "kv.key");
    span_expect(a->value, b->value, "kv.value");
}

static void put_request_expect(const struct codec_put_request *a, const struct codec_put_request *b)
{
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->lease, b->lease);
    span_expect(a->key, b->key, "put.key");
    span_expect(a->value, b->value, "put.value");
}

static void range_request_expect(const struct codec_range_request *a,
                                 const struct codec_range_request *b)
{
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->sort_order, b->sort_order);
    cr_assert_eq(a->sort_target, b->sort_target);
    cr_assert_eq(a->revision, b->revision);
    cr_assert_eq(a->limit, b->limit);
    cr_assert_eq(a->min_mod_revision, b->min_mod_revision);
    cr_assert_eq(a->max_mod_revision, b->max_mod_revision);
    cr_assert_eq(a->min_create_revision, b->min_create_revision);
    cr_assert_eq(a->max_create_revision, b->max_create_revision);
    span_expect(a->key, b->key, "range.key");
    span_expect(a->range_end, b->range_end, "range.range_end");
}

static void put_reply_expect(const struct codec_put_reply *a, const struct codec_put_reply *b)
{
    cr_assert_eq(a->has_prev_kv, b->has_prev_kv);
    kv_expect(&a->prev_kv, &b->prev_kv);
}

static void range_reply_expect(const struct codec_range_reply *a, const struct codec_range_reply *b)
{
    cr_assert_eq(a->count, b->count);
    cr_assert_eq(a->more, b->more);
    cr_assert_eq(a->kvs.count, b->kvs.count);
    span_expect(a->kvs.raw, b->kvs.raw, "range_reply.kvs");
}

static void header_expect(const struct codec_reply_header *a, const struct codec_reply_header *b)
{
    cr_assert_eq(a->status, b->status);
    cr_assert_eq(a->shard, b->shard);
    cr_assert_eq(a->revision, b->revision);
    cr_assert_eq(a->raft_term, b->raft_term);
    cr_assert_eq(a->member_id, b->member_id);
}

/* ---- generic references: the entry points as they were before the fast paths ------------ */

static int request_decode_generic(const struct codec_frame *f, union codec_msg_any *body)
{
    if (f->request_id == 0) return CODEC_S_FRAME_MALFORMED;
    const struct codec_msg_desc *d = codec_request_desc(f->opcode);
    if (d == NULL) return CODEC_S_UNKNOWN_OPCODE;
    return codec_decode(d, f->body, body);
}

static int reply_decode_generic(const struct codec_frame *f, struct codec_reply *out)
{
    int rc = codec_decode(&codec_msg_reply_header, f->body, &out->header);
    if (rc != 0) return rc;
    bool goaway = f->opcode == CODEC_OP_GOAWAY;
    if (goaway && out->header.status == CODEC_S_OK) return CODEC_S_MALFORMED;
    if (goaway != (f->request_id == 0)) return CODEC_S_MALFORMED;
    const struct codec_msg_desc *d = &codec_msg_error_body;
    if (out->header.status == CODEC_S_OK) d = codec_reply_desc(f->opcode);
    if (d == NULL) return CODEC_S_UNKNOWN_OPCODE;
    struct span rest =
        span_make(f->body.ptr + CODEC_REPLY_HEADER_SIZE, f->body.len - CODEC_REPLY_HEADER_SIZE);
    return codec_decode(d, rest, &out->body);
}

static int request_encode_generic(struct buf *b, const struct codec_frame *head, const void *body,
                                  u32 frame_size_max)
{
    size_t start = codec_frame_begin(b, head->opcode, head->flags, head->request_id);
    int rc = codec_encode(b, codec_request_desc(head->opcode), body);
    if (rc != 0) {
        b->len = KEEL_MIN(b->len, start);
        return rc;
    }
    return codec_frame_end(b, start, frame_size_max, CODEC_S_FRAME_TOO_LARGE);
}

static int reply_encode_generic(struct buf *b, const struct codec_frame *head,
                                const struct codec_reply_header *header, const void *body,
                                u32 frame_size_max)
{
    const struct codec_msg_desc *d = &codec_msg_error_body;
    if (header->status == CODEC_S_OK) d = codec_reply_desc(head->opcode);
    size_t start = codec_frame_begin(b, head->opcode, head->flags, head->request_id);
    int rc = codec_encode(b, &codec_msg_reply_header, header);
    if (rc == 0) rc = codec_encode(b, d, body);
    if (rc != 0) {
        b->len = KEEL_MIN(b->len, start);
        return rc;
    }
    return codec_frame_end(b, start, frame_size_max, CODEC_S_REPLY_TOO_LARGE);
}

/* ---- tallies: the test must have exercised both outcomes of every path ------------------ */

static struct {
    u64 body_ok[4], body_bad[4];
    u64 enc_ok, enc_bad, enc_no_room;
} tally;

/* ---- decode checks ------------------------------------------------------------------------ */

/* Walks a validated kvs list with codec_iter_next (fast element reads) and with the walker
 * (codec_decode of each kv, advancing by its size): the same elements. */
static void kvs_walk_check(const struct codec_list *list)
{
    struct codec_iter it;
    codec_iter_init(&it, codec_field_find(&codec_msg_range_reply, "kvs"), list);
    size_t at = 0;
    struct codec_kv a, g;
    u32 n = 0;
    while (codec_iter_next(&it, &a)) {
        cr_assert(at < list->raw.len);
        int rc = codec_decode(&codec_msg_kv, span_make(list->raw.ptr + at, list->raw.len - at), &g);
        cr_assert_eq(rc, 0);
        kv_expect(&a, &g);
        at += 32 + 2 + g.key.len + 4 + g.value.len;
        n++;
    }
    cr_assert_eq(n, list->count);
    cr_assert_eq(at, list->raw.len);
}

/* The four bodies, fast against generic, on the same bytes. */
static void bodies_check(struct span body)
{
    union codec_msg_any a, g;
    memset(&a, 0xA5, sizeof(a));
    int rf = codec_fast_put_request_decode(body, &a.put_request);
    int rg = codec_decode(&codec_msg_put_request, body, &g);
    cr_assert_eq(rf == 0, rg == 0, "put_request: fast %d, generic %d", rf, rg);
    if (rf == 0) put_request_expect(&a.put_request, &g.put_request);
    tally.body_ok[0] += rg == 0, tally.body_bad[0] += rg != 0;

    memset(&a, 0xA5, sizeof(a));
    rf = codec_fast_range_request_decode(body, &a.range_request);
    rg = codec_decode(&codec_msg_range_request, body, &g);
    cr_assert_eq(rf == 0, rg == 0, "range_request: fast %d, generic %d", rf, rg);
    if (rf == 0) range_request_expect(&a.range_request, &g.range_request);
    tally.body_ok[1] += rg == 0, tally.body_bad[1] += rg != 0;

    memset(&a, 0xA5, sizeof(a));
    rf = codec_fast_put_reply_decode(body, &a.put_reply);
    rg = codec_decode(&codec_msg_put_reply, body, &g);
    cr_assert_eq(rf == 0, rg == 0, "put_reply: fast %d, generic %d", rf, rg);
    if (rf == 0) put_reply_expect(&a.put_reply, &g.put_reply);
    tally.body_ok[2] += rg == 0, tally.body_bad[2] += rg != 0;

    memset(&a, 0xA5, sizeof(a));
    rf = codec_fast_range_reply_decode(body, &a.range_reply);
    rg = codec_decode(&codec_msg_range_reply, body, &g);
    cr_assert_eq(rf == 0, rg == 0, "range_reply: fast %d, generic %d", rf, rg);
    if (rf == 0) range_reply_expect(&a.range_reply, &g.range_reply);
    if (rf == 0) kvs_walk_check(&g.range_reply.kvs);
    tally.body_ok[3] += rg == 0, tally.body_bad[3] += rg != 0;
}

static void request_encode_check(const struct codec_frame *head, const void *body);
static void reply_encode_check(const struct codec_frame *head,
                               const struct codec_reply_header *header, const void *body);

static void request_frame_check(const struct codec_frame *f)
{
    union codec_msg_any a, g;
    memset(&a, 0xA5, sizeof(a));
    int ra = codec_request_decode(f, &a);
    int rg = request_decode_generic(f, &g);
    cr_assert_eq(ra, rg, "request opcode %u: entry %d, generic %d", f->opcode, ra, rg);
    if (ra != 0) return;
    if (f->opcode == CODEC_OP_PUT) put_request_expect(&a.put_request, &g.put_request);
    if (f->opcode == CODEC_OP_RANGE) range_request_expect(&a.range_request, &g.range_request);
    request_encode_check(f, &g);
}

static void reply_frame_check(const struct codec_frame *f)
{
    struct codec_reply a, g;
    memset(&a, 0xA5, sizeof(a));
    int ra = codec_reply_decode(f, &a);
    int rg = reply_decode_generic(f, &g);
    cr_assert_eq(ra, rg, "reply opcode %u: entry %d, generic %d", f->opcode, ra, rg);
    if (ra != 0) return;
    header_expect(&a.header, &g.header);
    if (g.header.status != CODEC_S_OK) {
        cr_assert_eq(a.body.error_body.detail, g.body.error_body.detail);
        span_expect(a.body.error_body.message, g.body.error_body.message, "error.message");
    } else if (f->opcode == CODEC_OP_PUT) {
        put_reply_expect(&a.body.put_reply, &g.body.put_reply);
    } else if (f->opcode == CODEC_OP_RANGE) {
        range_reply_expect(&a.body.range_reply, &g.body.range_reply);
    }
    if (f->request_id != 0) reply_encode_check(f, &g.header, &g.body);
}

/* bytes as a frame's body (after its 16-byte header, when it has one) and as whole frames of
 * PUT and RANGE, with the request id of the bytes and with 0. Copied to an exact-size block
 * so that a read past the end is an ASan error. */
static void bytes_check(const u8 *bytes, size_t len)
{
    u8 *copy = malloc(len ? len : 1);
    cr_assert(copy != NULL);
    if (len > 0) memcpy(copy, bytes, len);
    size_t skip = len >= CODEC_FRAME_HEADER_SIZE ? CODEC_FRAME_HEADER_SIZE : 0;
    struct span body = span_make(copy + skip, len - skip);
    bodies_check(body);
    u64 id = skip ? load_u64_le(copy + 8) : 1;
    static const u16 ops[] = {CODEC_OP_PUT, CODEC_OP_RANGE, CODEC_OP_HELLO};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(ops); i++) {
        struct codec_frame f = {ops[i], 0, id, body};
        request_frame_check(&f);
        reply_frame_check(&f);
        f.request_id = 0;
        request_frame_check(&f);
        reply_frame_check(&f);
    }
    free(copy);
}

/* ---- encode checks ------------------------------------------------------------------------ */

#define ENC_MEM_SIZE (CODEC_VALUE_SIZE_MAX + 16384) /* a largest PUT frame fits */
static u8 *enc_mem[2];

/* A buffer capacity: mostly enough, sometimes cut short anywhere. */
static size_t rand_cap(size_t need)
{
    switch (rng() % 4) {
    case 0:
        return rng() % (need + 2);
    case 1:
        return need > 0 ? need - 1 + rng() % 3 : 0;
    default:
        return ENC_MEM_SIZE;
    }
}

static u32 rand_frame_max(size_t need)
{
    if (rng() % 4 != 0) return rng() % 2 ? CODEC_FRAME_SIZE_MAX : CODEC_REPLY_FRAME_SIZE_MAX;
    size_t max = need - 1 + rng() % 3;
    return (u32)KEEL_MAX(max, CODEC_FRAME_HEADER_SIZE);
}

/* Runs encode (entry point) and ref (generic) on equal fixed buffers; same result. */
static void encode_compare(int (*encode)(struct buf *, const void *, u32),
                           int (*ref)(struct buf *, const void *, u32), const void *arg)
{
    struct buf probe;
    buf_init_dynamic(&probe, 256);
    int rc = ref(&probe, arg, CODEC_REPLY_FRAME_SIZE_MAX);
    size_t need = rc == 0 ? probe.len : 64;
    buf_free(&probe);
    size_t cap = rand_cap(need + 3);
    cap = KEEL_MIN(cap, ENC_MEM_SIZE);
    u32 max = rand_frame_max(need);
    size_t prefix = rng() % 4;
    prefix = KEEL_MIN(prefix, cap);
    struct buf a, g;
    memset(enc_mem[0], 0xEE, KEEL_MIN(cap, need + 64));
    memset(enc_mem[1], 0xEE, KEEL_MIN(cap, need + 64));
    buf_init_fixed(&a, enc_mem[0], cap);
    buf_init_fixed(&g, enc_mem[1], cap);
    for (size_t i = 0; i < prefix; i++) buf_put_u8(&a, (u8)i), buf_put_u8(&g, (u8)i);
    int ra = encode(&a, arg, max);
    int rg = ref(&g, arg, max);
    cr_assert_eq(ra, rg, "encode: entry %d, generic %d (cap %zu, max %u)", ra, rg, cap, max);
    cr_assert_eq(a.len, g.len);
    cr_assert_eq(a.overflow, g.overflow);
    cr_assert(memcmp(a.ptr, g.ptr, a.len) == 0, "encoded bytes differ");
    tally.enc_ok += ra == 0, tally.enc_bad += ra > 0, tally.enc_no_room += ra == CODEC_NO_ROOM;
}

struct enc_args {
    const struct codec_frame *head;
    const struct codec_reply_header *header;
    const void *body;
};

static int req_entry(struct buf *b, const void *p, u32 max)
{
    const struct enc_args *e = p;
    return codec_request_encode(b, e->head, e->body, max);
}

static int req_generic(struct buf *b, const void *p, u32 max)
{
    const struct enc_args *e = p;
    return request_encode_generic(b, e->head, e->body, max);
}

static int rep_entry(struct buf *b, const void *p, u32 max)
{
    const struct enc_args *e = p;
    return codec_reply_encode(b, e->head, e->header, e->body, max);
}

static int rep_generic(struct buf *b, const void *p, u32 max)
{
    const struct enc_args *e = p;
    return reply_encode_generic(b, e->head, e->header, e->body, max);
}

static void request_encode_check(const struct codec_frame *head, const void *body)
{
    struct enc_args e = {head, NULL, body};
    encode_compare(req_entry, req_generic, &e);
}

static void reply_encode_check(const struct codec_frame *head,
                               const struct codec_reply_header *header, const void *body)
{
    struct enc_args e = {head, header, body};
    encode_compare(rep_entry, rep_generic, &e);
}

/* ---- random messages ------------------------------------------------------------------------ */

static u8 list_mem[1u << 16];

static void rand_kv(struct codec_kv *kv, bool valid)
{
    kv->create_revision = rand_i64();
    kv->mod_revision = rand_i64();
    kv->version = rand_i64();
    kv->lease = rand_i64();
    kv->key = rand_span(valid ? 1 : 0, CODEC_KEY_SIZE_MAX + !valid);
    kv->value = rand_span(0, CODEC_VALUE_SIZE_MAX + !valid);
    if (valid && kv->value.len > 512) kv->value.len = 512; /* lists live in list_mem */
}

static void rand_put_request(struct codec_put_request *m)
{
    m->flags = (u8)(rng() % 8);
    m->lease = rand_i64();
    if (m->lease < 0) m->lease = 0;
    m->key = rand_span(1, CODEC_KEY_SIZE_MAX);
    m->value = rand_span(0, CODEC_VALUE_SIZE_MAX);
}

static void rand_range_request(struct codec_range_request *m)
{
    m->flags = (u8)(rng() % 8);
    m->sort_order = (u8)(rng() % CODEC_SORT_ORDER_COUNT_);
    m->sort_target = (u8)(rng() % CODEC_SORT_TARGET_COUNT_);
    i64 *v[] = {&m->revision,
                &m->limit,
                &m->min_mod_revision,
                &m->max_mod_revision,
                &m->min_create_revision,
                &m->max_create_revision};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(v); i++) *v[i] = rng() % 3 ? 0 : (rand_i64() & INT64_MAX);
    m->key = rand_span(1, CODEC_KEY_SIZE_MAX);
    m->range_end = rng() % 2 ? span_make(NULL, 0) : rand_span(0, CODEC_KEY_SIZE_MAX);
}

static void rand_range_reply(struct codec_range_reply *m, struct buf *lb_mem)
{
    m->count = rand_i64();
    m->more = rng() % 2;
    struct codec_list_builder lb;
    buf_init_fixed(lb_mem, list_mem, sizeof(list_mem));
    codec_list_begin(&lb, codec_field_find(&codec_msg_range_reply, "kvs"), &m->kvs, lb_mem);
    u64 n = rng() % 4;
    for (u64 i = 0; i < n; i++) {
        struct codec_kv kv;
        rand_kv(&kv, true);
        cr_assert_eq(codec_list_add(&lb, &kv), 0);
    }
    codec_list_end(&lb);
}

/* One random PUT or RANGE request or reply, encoded by the generic path into out; whether it
 * is a reply. */
static bool rand_frame(struct buf *out, union codec_msg_any *m, struct codec_frame *head,
                       struct codec_reply_header *h, struct buf *lb_mem)
{
    bool reply = rng() % 2;
    head->opcode = rng() % 2 ? CODEC_OP_PUT : CODEC_OP_RANGE;
    head->flags = (u16)(rng() % 3);
    head->request_id = 1 + rng() % 1000;
    memset(m, 0, sizeof(*m));
    *h = (struct codec_reply_header){CODEC_S_OK, (u16)rng(), rand_i64(), rng(), rng()};
    if (!reply && head->opcode == CODEC_OP_PUT) rand_put_request(&m->put_request);
    if (!reply && head->opcode == CODEC_OP_RANGE) rand_range_request(&m->range_request);
    if (reply && head->opcode == CODEC_OP_PUT) {
        m->put_reply.has_prev_kv = rng() % 2;
        if (m->put_reply.has_prev_kv) rand_kv(&m->put_reply.prev_kv, true);
    }
    if (reply && head->opcode == CODEC_OP_RANGE) rand_range_reply(&m->range_reply, lb_mem);
    buf_reset(out);
    int rc = reply ? reply_encode_generic(out, head, h, m, CODEC_REPLY_FRAME_SIZE_MAX)
                   : request_encode_generic(out, head, m, CODEC_REPLY_FRAME_SIZE_MAX);
    cr_assert_eq(rc, 0, "random valid message refused: %d", rc);
    cr_assert(buf_ok(out));
    encode_compare(reply ? rep_entry : req_entry, reply ? rep_generic : req_generic,
                   &(struct enc_args){head, h, m});
    return reply;
}

/* Breaks one field of m (as rand_frame made it) or leaves it; then both encoders must agree. */
static void break_field(union codec_msg_any *m, const struct codec_frame *head, bool reply)
{
    u64 which = rng() % 6;
    if (!reply && head->opcode == CODEC_OP_PUT) {
        struct codec_put_request *p = &m->put_request;
        if (which == 0) p->flags = (u8)rng();
        if (which == 1) p->lease = rand_i64();
        if (which == 2) p->key = rand_span(0, CODEC_KEY_SIZE_MAX + 1);
        if (which == 3) p->value = rand_span(0, CODEC_VALUE_SIZE_MAX + 1);
    } else if (!reply) {
        struct codec_range_request *r = &m->range_request;
        if (which == 0) r->flags = (u8)rng();
        if (which == 1) r->sort_order = (u8)(rng() % 8);
        if (which == 2) r->sort_target = (u8)(rng() % 8);
        if (which == 3) r->key = rand_span(0, CODEC_KEY_SIZE_MAX + 1);
        if (which == 4) r->range_end = rand_span(0, CODEC_KEY_SIZE_MAX + 1);
        if (which == 5) (&r->revision)[rng() % 6] = rand_i64();
    } else if (head->opcode == CODEC_OP_PUT) {
        m->put_reply.has_prev_kv = which != 0;
        if (which > 1) rand_kv(&m->put_reply.prev_kv, false);
    }
}

/* ---- mutations ------------------------------------------------------------------------------ */

/* One kind of damage to a copy of in: a byte, a length field, a cut, or bytes appended. */
static size_t mutate(const u8 *in, size_t len, u8 *out, size_t cap)
{
    cr_assert(len + 8 <= cap);
    memcpy(out, in, len);
    static const u32 edges[] = {
        0,         1, 2, 4095, 4096, 4097, 65535, CODEC_VALUE_SIZE_MAX, CODEC_VALUE_SIZE_MAX + 1,
        UINT32_MAX};
    size_t at = len > 0 ? rng() % len : 0;
    switch (rng() % 5) {
    case 0:
        if (len > 0) out[at] = (u8)rng();
        return len;
    case 1:
        if (len > 0) out[at] ^= (u8)(1u << (rng() % 8));
        return len;
    case 2: {
        u32 v = rng() % 2 ? edges[rng() % KEEL_ARRAY_LEN(edges)] : (u32)(len - at + rng() % 4);
        size_t n = rng() % 2 ? 2 : 4;
        n = KEEL_MIN(n, len - at);
        for (size_t i = 0; i < n; i++) out[at + i] = (u8)(v >> (8 * i));
        return len;
    }
    case 3:
        return at;
    default:
        for (size_t i = 0; i < 8; i++) out[len + i] = (u8)rng();
        return len + 1 + rng() % 8;
    }
}

static void mutations_check(const u8 *bytes, size_t len, int rounds)
{
    static u8 mut[ENC_MEM_SIZE + 16];
    bytes_check(bytes, len);
    for (int i = 0; i < rounds && len + 8 <= sizeof(mut); i++) {
        size_t n = mutate(bytes, len, mut, sizeof(mut));
        if (rng() % 3 == 0) n = mutate(mut, n, mut, sizeof(mut)); /* twice, now and then */
        bytes_check(mut, n);
    }
}

/* ---- golden vectors ------------------------------------------------------------------------- */

static void hex_append(struct buf *b, const char *text)
{
    int hi = -1;
    for (const char *p = text; *p && *p != '#' && *p != '\n'; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r') continue;
        int v = (*p >= '0' && *p <= '9')   ? *p - '0'
                : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
                : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10
                                           : -1;
        cr_assert(v >= 0, "bad hex digit '%c'", *p);
        if (hi < 0) {
            hi = v;
        } else {
            buf_put_u8(b, (u8)(hi << 4 | v));
            hi = -1;
        }
    }
}

/* Checks every vector's hex (and canonical hex) of one file, with mutations; returns how many
 * vectors it held. */
static int vector_file_check(const char *path, int rounds)
{
    FILE *fp = fopen(path, "r");
    cr_assert(fp != NULL, "cannot open %s", path);
    struct buf hex, canonical;
    buf_init_dynamic(&hex, 256);
    buf_init_dynamic(&canonical, 256);
    char line[4096];
    int vectors = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, "vector ", 7) == 0) {
            buf_reset(&hex);
            buf_reset(&canonical);
        } else if (strncmp(line, "hex ", 4) == 0) {
            hex_append(&hex, line + 4);
        } else if (strncmp(line, "canonical ", 10) == 0) {
            hex_append(&canonical, line + 10);
        } else if (strncmp(line, "end", 3) == 0) {
            cr_assert(buf_ok(&hex) && buf_ok(&canonical));
            mutations_check(hex.ptr, hex.len, rounds);
            if (canonical.len > 0) mutations_check(canonical.ptr, canonical.len, rounds);
            vectors++;
        }
    }
    fclose(fp);
    buf_free(&hex);
    buf_free(&canonical);
    return vectors;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void suite_init(void)
{
    pool = malloc(POOL_SIZE);
    enc_mem[0] = malloc(ENC_MEM_SIZE);
    enc_mem[1] = malloc(ENC_MEM_SIZE);
    cr_assert(pool != NULL && enc_mem[0] != NULL && enc_mem[1] != NULL);
    for (size_t i = 0; i < POOL_SIZE; i++) pool[i] = (u8)(i * 131 + 7);
    memset(&tally, 0, sizeof(tally));
}

static void suite_fini(void)
{
    free(pool);
    free(enc_mem[0]);
    free(enc_mem[1]);
}

TestSuite(codec_fast, .init = suite_init, .fini = suite_fini);

Test(codec_fast, golden_vectors_and_their_mutations)
{
    seed_init("golden_vectors_and_their_mutations");
    DIR *dir = opendir(KEEL_SPEC_DIR "/vectors");
    cr_assert(dir != NULL);
    int vectors = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".txt") != 0) continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/vectors/%s", KEEL_SPEC_DIR, e->d_name);
        vectors += vector_file_check(path, 200);
    }
    closedir(dir);
    cr_assert_gt(vectors, 50, "only %d golden vectors found", vectors);
    for (int i = 0; i < 4; i++) {
        cr_assert_gt(tally.body_ok[i], 0, "body %d never decoded", i);
        cr_assert_gt(tally.body_bad[i], 0, "body %d never refused", i);
    }
    cr_assert_gt(tally.enc_ok, 0);
    cr_assert_gt(tally.enc_no_room, 0);
}

Test(codec_fast, random_messages_and_their_mutations)
{
    seed_init("random_messages_and_their_mutations");
    u64 ops = env_u64("KEEL_OPS", 3000);
    struct buf wire, lb_mem;
    buf_init_dynamic(&wire, 1024);
    union codec_msg_any m;
    struct codec_frame head;
    struct codec_reply_header h;
    for (u64 i = 0; i < ops; i++) {
        rand_frame(&wire, &m, &head, &h, &lb_mem);
        mutations_check(wire.ptr, wire.len, 40);
    }
    buf_free(&wire);
    cr_assert_gt(tally.enc_ok, ops / 2);
    for (int i = 0; i < 4; i++) cr_assert_gt(tally.body_ok[i], 0, "body %d never decoded", i);
}

Test(codec_fast, broken_fields_encode_alike)
{
    seed_init("broken_fields_encode_alike");
    u64 ops = env_u64("KEEL_OPS", 3000);
    struct buf wire, lb_mem;
    buf_init_dynamic(&wire, 1024);
    union codec_msg_any m;
    struct codec_frame head;
    struct codec_reply_header h;
    for (u64 i = 0; i < 2 * ops; i++) {
        bool reply = rand_frame(&wire, &m, &head, &h, &lb_mem);
        break_field(&m, &head, reply);
        struct enc_args e = {&head, &h, &m};
        encode_compare(reply ? rep_entry : req_entry, reply ? rep_generic : req_generic, &e);
    }
    buf_free(&wire);
    cr_assert_gt(tally.enc_bad, 0, "no broken field was refused");
    cr_assert_gt(tally.enc_ok, 0);
}

/* What codec_fast.c was written for: every field of the four bodies, in order. */
struct shape {
    const char *name;
    u8 type;
    i64 min;
    u64 max;
};

static void shape_expect(const struct codec_msg_desc *d, const struct shape *s, size_t n)
{
    cr_assert_eq(d->fields_len, n, "%s: %u fields, the fast path knows %zu", d->name, d->fields_len,
                 n);
    for (size_t i = 0; i < n; i++) {
        const struct codec_field_desc *f = &d->fields[i];
        cr_assert_str_eq(f->name, s[i].name, "%s field %zu", d->name, i);
        cr_assert_eq(f->type, s[i].type, "%s.%s type", d->name, f->name);
        cr_assert_eq(f->sized, 0, "%s.%s sized", d->name, f->name);
        bool numeric = f->type >= CODEC_T_U16 && f->type <= CODEC_T_LIST32;
        if (numeric) cr_assert_eq(f->min, s[i].min, "%s.%s min", d->name, f->name);
        if (numeric) cr_assert_eq(f->max, s[i].max, "%s.%s max", d->name, f->name);
        bool cond = f->cond_field != CODEC_COND_NONE;
        cr_assert_eq(cond, strcmp(f->name, "prev_kv") == 0, "%s.%s condition", d->name, f->name);
        if (f->type == CODEC_T_FLAGS) cr_assert_leq(f->enm->count, 3, "%s.%s", d->name, f->name);
    }
}

Test(codec_fast, tables_have_the_shape_the_fast_path_knows)
{
    const u64 key = CODEC_KEY_SIZE_MAX, val = CODEC_VALUE_SIZE_MAX;
    const struct shape kv[] = {{"create_revision", CODEC_T_I64, INT64_MIN, INT64_MAX},
                               {"mod_revision", CODEC_T_I64, INT64_MIN, INT64_MAX},
                               {"version", CODEC_T_I64, INT64_MIN, INT64_MAX},
                               {"lease", CODEC_T_I64, INT64_MIN, INT64_MAX},
                               {"key", CODEC_T_BYTES16, 1, key},
                               {"value", CODEC_T_BYTES32, 0, val}};
    shape_expect(&codec_msg_kv, kv, KEEL_ARRAY_LEN(kv));
    const struct shape put[] = {{"flags", CODEC_T_FLAGS, 0, 0},
                                {"lease", CODEC_T_I64, 0, INT64_MAX},
                                {"key", CODEC_T_BYTES16, 1, key},
                                {"value", CODEC_T_BYTES32, 0, val}};
    shape_expect(&codec_msg_put_request, put, KEEL_ARRAY_LEN(put));
    const struct shape range[] = {{"flags", CODEC_T_FLAGS, 0, 0},
                                  {"sort_order", CODEC_T_ENUM, 0, 0},
                                  {"sort_target", CODEC_T_ENUM, 0, 0},
                                  {"revision", CODEC_T_I64, 0, INT64_MAX},
                                  {"limit", CODEC_T_I64, 0, INT64_MAX},
                                  {"min_mod_revision", CODEC_T_I64, 0, INT64_MAX},
                                  {"max_mod_revision", CODEC_T_I64, 0, INT64_MAX},
                                  {"min_create_revision", CODEC_T_I64, 0, INT64_MAX},
                                  {"max_create_revision", CODEC_T_I64, 0, INT64_MAX},
                                  {"key", CODEC_T_BYTES16, 1, key},
                                  {"range_end", CODEC_T_BYTES16, 0, key}};
    shape_expect(&codec_msg_range_request, range, KEEL_ARRAY_LEN(range));
    const struct shape put_reply[] = {{"has_prev_kv", CODEC_T_BOOL, 0, 0},
                                      {"prev_kv", CODEC_T_MSG, 0, 0}};
    shape_expect(&codec_msg_put_reply, put_reply, KEEL_ARRAY_LEN(put_reply));
    cr_assert_eq(codec_msg_put_reply.fields[1].msg, &codec_msg_kv);
    const struct shape range_reply[] = {{"count", CODEC_T_I64, INT64_MIN, INT64_MAX},
                                        {"more", CODEC_T_BOOL, 0, 0},
                                        {"kvs", CODEC_T_LIST32, 0, UINT32_MAX}};
    shape_expect(&codec_msg_range_reply, range_reply, KEEL_ARRAY_LEN(range_reply));
    cr_assert_eq(codec_msg_range_reply.fields[2].msg, &codec_msg_kv);
    const struct shape header[] = {{"status", CODEC_T_STATUS16, 0, UINT16_MAX},
                                   {"shard", CODEC_T_U16, 0, UINT16_MAX},
                                   {"revision", CODEC_T_I64, INT64_MIN, INT64_MAX},
                                   {"raft_term", CODEC_T_U64, 0, UINT64_MAX},
                                   {"member_id", CODEC_T_U64, 0, UINT64_MAX}};
    shape_expect(&codec_msg_reply_header, header, KEEL_ARRAY_LEN(header));
}

/* ---- limits at their edges: lengths one below, at and past every limit, with the bytes
 * there (random mutation seldom makes a 1.5 MiB value one byte longer) ------------------- */

static void put_len(struct buf *b, size_t len, bool wide, u8 fill)
{
    if (wide)
        buf_put_u32(b, (u32)len);
    else
        buf_put_u16(b, (u16)len);
    u8 *p = buf_reserve(b, len);
    if (p != NULL) memset(p, fill, len);
}

static void put_kv(struct buf *b, size_t key_len, size_t value_len)
{
    for (int i = 0; i < 4; i++) buf_put_u64(b, (u64)rand_i64());
    put_len(b, key_len, false, 'k');
    put_len(b, value_len, true, 'v');
}

/* body (at offset 44 of the block) alone, then as request and reply frames. */
static void edge_check(struct buf *b)
{
    cr_assert(buf_ok(b));
    for (int i = 0; i < 8; i++) buf_put_u8(b, (u8)rng()); /* bytes after the fields */
    bodies_check(span_make(b->ptr + 44, b->len - 44));
    bytes_check(b->ptr + 28, b->len - 28); /* a request frame: header 16 bytes, body */
    store_u16_le(b->ptr + 16, CODEC_S_OK);
    bytes_check(b->ptr, b->len); /* a reply frame: header 16, reply_header 28, body */
}

Test(codec_fast, limits_at_their_edges)
{
    seed_init("limits_at_their_edges");
    static const size_t keys[] = {0, 1, CODEC_KEY_SIZE_MAX, CODEC_KEY_SIZE_MAX + 1};
    static const size_t values[] = {0, CODEC_VALUE_SIZE_MAX, CODEC_VALUE_SIZE_MAX + 1};
    struct buf b;
    buf_init_dynamic(&b, 4096);
    for (size_t k = 0; k < KEEL_ARRAY_LEN(keys); k++) {
        for (size_t v = 0; v < KEEL_ARRAY_LEN(values); v++) {
            buf_reset(&b);
            buf_reserve(&b, 44);
            memset(b.ptr, 0, 44);
            buf_put_u8(&b, 0);
            buf_put_u64(&b, 0);
            put_len(&b, keys[k], false, 'k');
            put_len(&b, values[v], true, 'v');
            edge_check(&b); /* a put request */
            b.len = 44;
            buf_put_u8(&b, 1);
            put_kv(&b, keys[k], values[v]);
            edge_check(&b); /* a put reply */
            b.len = 44;
            buf_put_u64(&b, 3);
            buf_put_u8(&b, 0);
            buf_put_u32(&b, 2);
            put_kv(&b, 1, 0);
            put_kv(&b, keys[k], values[v]);
            edge_check(&b); /* a range reply */
            b.len = 44;
            buf_put_bytes(&b, (u8[51]){0}, 51);
            put_len(&b, keys[k], false, 'k');
            put_len(&b, keys[(k + v) % KEEL_ARRAY_LEN(keys)], false, 'e');
            edge_check(&b); /* a range request */
        }
    }
    buf_free(&b);
    for (int i = 0; i < 4; i++) cr_assert_gt(tally.body_bad[i], 0, "body %d never refused", i);
}

/* ---- kv lists: codec_list_add (fast kv writes) against codec_encode of each kv ------------ */

/* Adds up to four random kvs, some broken, to a list in a small fixed buffer, and encodes the
 * same kvs one by one with the walker into another: same statuses, bytes and overflow. */
static void kv_list_check(u8 *mem_a, u8 *mem_g, size_t cap)
{
    struct buf a, g;
    buf_init_fixed(&a, mem_a, cap);
    buf_init_fixed(&g, mem_g, cap);
    struct codec_list list;
    struct codec_list_builder lb;
    codec_list_begin(&lb, codec_field_find(&codec_msg_range_reply, "kvs"), &list, &a);
    u32 count = 0;
    for (u64 i = rng() % 5; i > 0; i--) {
        struct codec_kv kv;
        rand_kv(&kv, rng() % 4 != 0);
        int ra = codec_list_add(&lb, &kv);
        size_t at = g.len;
        int rg = codec_encode(&g, &codec_msg_kv, &kv);
        cr_assert(rg == 0 || g.len == at);
        cr_assert_eq(ra, rg, "kv add: list %d, walker %d", ra, rg);
        cr_assert_eq(a.len, g.len);
        cr_assert_eq(a.overflow, g.overflow);
        count += ra == 0;
        tally.enc_ok += ra == 0, tally.enc_bad += ra > 0, tally.enc_no_room += ra == CODEC_NO_ROOM;
    }
    codec_list_end(&lb);
    cr_assert_eq(list.count, count);
    cr_assert(memcmp(a.ptr, g.ptr, a.len) == 0, "kv list bytes differ");
    kvs_walk_check(&list);
}

Test(codec_fast, kv_lists_alike)
{
    seed_init("kv_lists_alike");
    u64 ops = env_u64("KEEL_OPS", 3000);
    for (u64 i = 0; i < ops; i++) {
        size_t cap = rng() % 2 ? ENC_MEM_SIZE : rng() % 2000;
        kv_list_check(enc_mem[0], enc_mem[1], cap);
    }
    cr_assert_gt(tally.enc_ok, 0);
    cr_assert_gt(tally.enc_bad, 0);
    cr_assert_gt(tally.enc_no_room, 0);
}
