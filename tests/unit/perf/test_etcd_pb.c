/*
 * test_etcd_pb.c — perf/etcd_pb.h: golden bytes of every message it encodes (worked out by
 * hand from the protobuf wire format and the field numbers of etcd's rpc.proto), round
 * trips, gRPC framing, and decoders that refuse truncated and malformed input.
 */
#include "perf/etcd_pb.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(str) span_make(str, sizeof(str) - 1)

static void assert_bytes(const u8 *got, size_t got_len, const u8 *want, size_t want_len)
{
    cr_assert_eq(got_len, want_len, "length %zu, want %zu", got_len, want_len);
    for (size_t i = 0; i < want_len; i++)
        cr_assert_eq(got[i], want[i], "byte %zu: 0x%02x, want 0x%02x", i, got[i], want[i]);
}

static bool span_eq(struct span a, struct span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ---- golden bytes ------------------------------------------------------------------------ */

Test(etcd_pb, put_request_golden)
{
    u8 buf[64];
    struct etcd_put_request r = {.key = S("foo"), .value = S("bar")};
    static const u8 want[] = {0x0a, 3, 'f', 'o', 'o', 0x12, 3, 'b', 'a', 'r'};
    cr_assert_eq(etcd_pb_put_request_size(&r), sizeof(want));
    assert_bytes(buf, etcd_pb_put_request_encode(&r, buf, sizeof(buf)), want, sizeof(want));
    /* lease 3 (int64, -1 takes ten bytes), prev_kv 4 (bool). */
    r.lease = -1;
    r.prev_kv = true;
    static const u8 want2[] = {0x0a, 3,    'f',  'o',  'o',  0x12, 3,    'b',
                               'a',  'r',  0x18, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0x01, 0x20, 0x01};
    assert_bytes(buf, etcd_pb_put_request_encode(&r, buf, sizeof(buf)), want2, sizeof(want2));
    /* Empty key and value are proto3 defaults: nothing is written. */
    struct etcd_put_request empty = {0};
    cr_assert_eq(etcd_pb_put_request_size(&empty), 0);
}

Test(etcd_pb, range_request_golden)
{
    u8 buf[64];
    struct etcd_range_request r = {.key = S("k"), .serializable = true};
    static const u8 want[] = {0x0a, 1, 'k', 0x38, 0x01}; /* serializable = 7: tag 7<<3 */
    assert_bytes(buf, etcd_pb_range_request_encode(&r, buf, sizeof(buf)), want, sizeof(want));
    struct etcd_range_request r2 = {.key = S("a"),
                                    .range_end = S("b"),
                                    .limit = 10,
                                    .revision = 300,
                                    .keys_only = true,
                                    .count_only = true};
    static const u8 want2[] = {0x0a, 1,    'a',  0x12, 1,    'b',  0x18, 10,
                               0x20, 0xac, 0x02, 0x40, 0x01, 0x48, 0x01};
    cr_assert_eq(etcd_pb_range_request_size(&r2), sizeof(want2));
    assert_bytes(buf, etcd_pb_range_request_encode(&r2, buf, sizeof(buf)), want2, sizeof(want2));
}

Test(etcd_pb, compare_golden)
{
    u8 buf[64];
    /* version == 0 (the key does not exist): a oneof member is written even when zero;
     * result EQUAL and target VERSION are 0 and left out. */
    struct etcd_compare c = {.key = S("k"), .which = ETCD_UNION_VERSION, .number = 0};
    static const u8 want[] = {0x1a, 1, 'k', 0x20, 0x00};
    assert_bytes(buf, etcd_pb_compare_encode(&c, buf, sizeof(buf)), want, sizeof(want));
    struct etcd_compare c2 = {.result = ETCD_CMP_GREATER,
                              .target = ETCD_TARGET_MOD,
                              .key = S("k"),
                              .which = ETCD_UNION_MOD,
                              .number = 5};
    static const u8 want2[] = {0x08, 1, 0x10, 2, 0x1a, 1, 'k', 0x30, 5};
    assert_bytes(buf, etcd_pb_compare_encode(&c2, buf, sizeof(buf)), want2, sizeof(want2));
    /* value 7 (bytes) and range_end 64: tag 64<<3|2 = 514 = varint 0x82 0x04. */
    struct etcd_compare c3 = {.result = ETCD_CMP_NOT_EQUAL,
                              .target = ETCD_TARGET_VALUE,
                              .key = S("k"),
                              .which = ETCD_UNION_VALUE,
                              .value = S("v"),
                              .range_end = S("z")};
    static const u8 want3[] = {0x08, 3, 0x10, 3, 0x1a, 1, 'k', 0x3a, 1, 'v', 0x82, 0x04, 1, 'z'};
    assert_bytes(buf, etcd_pb_compare_encode(&c3, buf, sizeof(buf)), want3, sizeof(want3));
}

Test(etcd_pb, txn_request_golden)
{
    u8 buf[64];
    struct etcd_compare cmp = {.key = S("k"), .which = ETCD_UNION_VERSION};
    struct etcd_request_op put = {.kind = ETCD_OP_PUT, .put = {.key = S("k"), .value = S("v")}};
    struct etcd_request_op get = {.kind = ETCD_OP_RANGE, .range = {.key = S("k")}};
    struct etcd_txn_request t = {&cmp, 1, &put, 1, &get, 1};
    static const u8 want[] = {0x0a, 5, 0x1a, 1, 'k',  0x20, 0x00, /* compare 1 */
                              0x12, 8, 0x12, 6, 0x0a, 1,    'k',
                              0x12, 1, 'v',                       /* success 2: request_put 2 */
                              0x1a, 5, 0x0a, 3, 0x0a, 1,    'k'}; /* failure 3: request_range 1 */
    cr_assert_eq(etcd_pb_txn_request_size(&t), sizeof(want));
    assert_bytes(buf, etcd_pb_txn_request_encode(&t, buf, sizeof(buf)), want, sizeof(want));
}

/* header{cluster_id 1, member_id 2, revision 3, raft_term 4} */
#define HEADER_BYTES 0x0a, 8, 0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4

static const u8 range_golden[] = {HEADER_BYTES,
                                  /* kvs 2: key 1, create 2, mod 3, version 4, value 5 */
                                  0x12, 12, 0x0a, 1, 'k', 0x10, 2, 0x18, 3, 0x20, 1, 0x2a, 1, 'v',
                                  /* count 4 */
                                  0x20, 1};

static void assert_header(const struct etcd_response_header *h)
{
    cr_assert_eq(h->cluster_id, 1);
    cr_assert_eq(h->member_id, 2);
    cr_assert_eq(h->revision, 3);
    cr_assert_eq(h->raft_term, 4);
}

Test(etcd_pb, responses_golden)
{
    static const u8 put[] = {HEADER_BYTES};
    struct etcd_put_response pr;
    cr_assert_eq(etcd_pb_put_response_decode(span_make(put, sizeof(put)), &pr), 0);
    assert_header(&pr.header);
    cr_assert(!pr.has_prev_kv);
    u8 buf[64];
    assert_bytes(buf, etcd_pb_put_response_encode(&pr, buf, sizeof(buf)), put, sizeof(put));

    struct etcd_kv kv;
    struct etcd_range_response rr = {.kvs = &kv, .kvs_cap = 1};
    cr_assert_eq(etcd_pb_range_response_decode(span_make(range_golden, sizeof(range_golden)), &rr),
                 0);
    assert_header(&rr.header);
    cr_assert_eq(rr.kv_count, 1);
    cr_assert_eq(rr.count, 1);
    cr_assert(!rr.more);
    cr_assert(span_eq(kv.key, S("k")) && span_eq(kv.value, S("v")));
    cr_assert_eq(kv.create_revision, 2);
    cr_assert_eq(kv.mod_revision, 3);
    cr_assert_eq(kv.version, 1);
    assert_bytes(buf, etcd_pb_range_response_encode(&rr, buf, sizeof(buf)), range_golden,
                 sizeof(range_golden));
}

Test(etcd_pb, txn_response_golden)
{
    /* succeeded 2, responses 3 = [ResponseOp{response_put 2: PutResponse{header{rev 3}}}] */
    static const u8 txn[] = {HEADER_BYTES, 0x10, 1, 0x1a, 6, 0x12, 4, 0x0a, 2, 0x18, 3};
    struct etcd_response_op ops[2];
    struct etcd_txn_response tr = {.responses = ops, .responses_cap = 2};
    cr_assert_eq(etcd_pb_txn_response_decode(span_make(txn, sizeof(txn)), &tr), 0);
    assert_header(&tr.header);
    cr_assert(tr.succeeded);
    cr_assert_eq(tr.response_count, 1);
    cr_assert_eq(ops[0].kind, ETCD_OP_PUT);
    struct etcd_put_response pr;
    cr_assert_eq(etcd_pb_put_response_decode(ops[0].body, &pr), 0);
    cr_assert_eq(pr.header.revision, 3);
    u8 buf[64];
    assert_bytes(buf, etcd_pb_txn_response_encode(&tr, buf, sizeof(buf)), txn, sizeof(txn));
}

/* ---- round trips ------------------------------------------------------------------------- */

Test(etcd_pb, request_round_trips)
{
    u8 buf[256];
    struct etcd_put_request p = {
        .key = S("key"), .value = S("value"), .lease = INT64_MIN, .prev_kv = true};
    struct etcd_put_request p2;
    size_t n = etcd_pb_put_request_encode(&p, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(etcd_pb_put_request_decode(span_make(buf, n), &p2), 0);
    cr_assert(span_eq(p2.key, p.key) && span_eq(p2.value, p.value));
    cr_assert_eq(p2.lease, INT64_MIN);
    cr_assert(p2.prev_kv);

    struct etcd_range_request r = {.key = S("a"),
                                   .range_end = S("\0"),
                                   .limit = INT64_MAX,
                                   .revision = -5,
                                   .serializable = true,
                                   .count_only = true};
    struct etcd_range_request r2;
    n = etcd_pb_range_request_encode(&r, buf, sizeof(buf));
    cr_assert_eq(etcd_pb_range_request_decode(span_make(buf, n), &r2), 0);
    cr_assert(span_eq(r2.key, r.key) && span_eq(r2.range_end, r.range_end));
    cr_assert_eq(r2.limit, INT64_MAX);
    cr_assert_eq(r2.revision, -5);
    cr_assert(r2.serializable && r2.count_only && !r2.keys_only);
}

Test(etcd_pb, txn_request_round_trip)
{
    struct etcd_compare cmp[2] = {{.result = ETCD_CMP_LESS,
                                   .target = ETCD_TARGET_CREATE,
                                   .key = S("x"),
                                   .which = ETCD_UNION_CREATE,
                                   .number = 77},
                                  {.result = ETCD_CMP_EQUAL,
                                   .target = ETCD_TARGET_VALUE,
                                   .key = S("y"),
                                   .which = ETCD_UNION_VALUE,
                                   .value = S("")}};
    struct etcd_request_op ops[2] = {
        {.kind = ETCD_OP_PUT, .put = {.key = S("x"), .value = S("1")}},
        {.kind = ETCD_OP_RANGE, .range = {.key = S("y"), .serializable = true}}};
    struct etcd_txn_request t = {cmp, 2, ops, 2, ops + 1, 1};
    u8 buf[256];
    size_t n = etcd_pb_txn_request_encode(&t, buf, sizeof(buf));
    cr_assert_eq(n, etcd_pb_txn_request_size(&t));
    struct etcd_compare dc[2];
    struct etcd_request_op ds[1], df[2];
    struct etcd_txn_request_dec d = {dc, 2, 0, ds, 1, 0, df, 2, 0};
    cr_assert_eq(etcd_pb_txn_request_decode(span_make(buf, n), &d), 0);
    cr_assert_eq(d.compare_count, 2);
    cr_assert_eq(d.success_count, 2, "counted beyond the array's cap");
    cr_assert_eq(d.failure_count, 1);
    cr_assert_eq(dc[0].which, ETCD_UNION_CREATE);
    cr_assert_eq(dc[0].number, 77);
    cr_assert_eq(dc[0].result, ETCD_CMP_LESS);
    cr_assert_eq(dc[1].which, ETCD_UNION_VALUE, "an empty value in the oneof is kept");
    cr_assert_eq(dc[1].value.len, 0);
    cr_assert_eq(ds[0].kind, ETCD_OP_PUT);
    cr_assert(span_eq(ds[0].put.value, S("1")));
    cr_assert_eq(df[0].kind, ETCD_OP_RANGE);
    cr_assert(df[0].range.serializable);
}

Test(etcd_pb, encoders_refuse_a_short_buffer)
{
    struct etcd_put_request p = {.key = S("key"), .value = S("value")};
    size_t need = etcd_pb_put_request_size(&p);
    u8 buf[64];
    for (size_t cap = 0; cap < need; cap++)
        cr_assert_eq(etcd_pb_put_request_encode(&p, buf, cap), 0, "cap %zu", cap);
    cr_assert_eq(etcd_pb_put_request_encode(&p, buf, need), need);
}

/* ---- malformed input --------------------------------------------------------------------- */

Test(etcd_pb, truncated_range_response_is_refused)
{
    /* Every cut inside a field fails; a cut at a field boundary is a shorter valid message
     * (protobuf has no end marker), which is why a gRPC frame carries the length. */
    for (size_t len = 1; len < sizeof(range_golden); len++) {
        struct etcd_range_response rr = {0};
        int rc = etcd_pb_range_response_decode(span_make(range_golden, len), &rr);
        bool boundary = len == 10 || len == 24;
        cr_assert_eq(rc, boundary ? 0 : -1, "cut at %zu: rc %d", len, rc);
    }
}

Test(etcd_pb, malformed_fields_are_refused)
{
    struct etcd_put_response pr;
    struct etcd_range_response rr = {0};
    static const u8 long_len[] = {0x0a, 0x7f, 0x08, 0x01}; /* length past the end */
    static const u8 wrong_wire[] = {0x0a, 2, 0x0a, 0x00};  /* header.cluster_id as bytes */
    static const u8 group[] = {0x0b};                      /* wire type 3 */
    static const u8 field0[] = {0x00, 0x00};               /* field number 0 */
    static const u8 varint11[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0x01}; /* 11-byte varint */
    static const u8 varint65[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0x02}; /* beyond 64 bits */
    static const u8 fixed_short[] = {0x21, 1, 2, 3};             /* fixed64 of 3 bytes */
    static const u8 huge_len[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f};
    cr_assert_eq(etcd_pb_put_response_decode(span_make(long_len, 4), &pr), -1);
    cr_assert_eq(etcd_pb_put_response_decode(span_make(wrong_wire, 4), &pr), -1);
    cr_assert_eq(etcd_pb_put_response_decode(span_make(group, 1), &pr), -1);
    cr_assert_eq(etcd_pb_put_response_decode(span_make(field0, 2), &pr), -1);
    cr_assert_eq(etcd_pb_range_response_decode(span_make(varint11, sizeof(varint11)), &rr), -1);
    cr_assert_eq(etcd_pb_range_response_decode(span_make(varint65, sizeof(varint65)), &rr), -1);
    cr_assert_eq(etcd_pb_range_response_decode(span_make(fixed_short, 4), &rr), -1);
    cr_assert_eq(etcd_pb_range_response_decode(span_make(huge_len, 6), &rr), -1);
    /* count (4) sent as bytes: a known field with the wrong wire type. */
    static const u8 count_bytes[] = {0x22, 0x00};
    cr_assert_eq(etcd_pb_range_response_decode(span_make(count_bytes, 2), &rr), -1);
}

Test(etcd_pb, unknown_fields_are_skipped_and_extra_kvs_counted)
{
    /* field 99 varint, field 100 fixed32, field 101 bytes, then two kvs into one slot. */
    static const u8 in[] = {0x98, 0x06, 0x05, 0xa5, 0x06, 1,   2,    3, 4,    0xaa, 0x06, 1,
                            'x',  0x12, 3,    0x0a, 1,    'a', 0x12, 3, 0x0a, 1,    'b'};
    struct etcd_kv kv;
    struct etcd_range_response rr = {.kvs = &kv, .kvs_cap = 1};
    cr_assert_eq(etcd_pb_range_response_decode(span_make(in, sizeof(in)), &rr), 0);
    cr_assert_eq(rr.kv_count, 2);
    cr_assert(span_eq(kv.key, S("a")));
}

Test(etcd_pb, random_bytes_never_crash)
{
    const char *env = getenv("KEEL_SEED");
    unsigned seed = env != NULL ? (unsigned)strtoul(env, NULL, 0) : 20261202u;
    printf("test_etcd_pb: KEEL_SEED=%u\n", seed);
    srand(seed);
    u8 buf[64];
    int ok = 0;
    for (int i = 0; i < 100000; i++) {
        size_t len = (size_t)rand() % sizeof(buf);
        for (size_t j = 0; j < len; j++) buf[j] = (u8)rand();
        struct etcd_kv kv[2];
        struct etcd_range_response rr = {.kvs = kv, .kvs_cap = 2};
        struct etcd_response_op ops[2];
        struct etcd_txn_response tr = {.responses = ops, .responses_cap = 2};
        struct etcd_put_response pr;
        ok += etcd_pb_range_response_decode(span_make(buf, len), &rr) == 0;
        ok += etcd_pb_txn_response_decode(span_make(buf, len), &tr) == 0;
        ok += etcd_pb_put_response_decode(span_make(buf, len), &pr) == 0;
        for (u32 k = 0; k < rr.kv_count && k < 2; k++)
            cr_assert(kv[k].key.ptr == NULL ||
                      (kv[k].key.ptr >= buf && kv[k].key.ptr + kv[k].key.len <= buf + len));
    }
    cr_assert_gt(ok, 0, "some random inputs are valid messages (e.g. the empty one)");
}

/* ---- gRPC framing ------------------------------------------------------------------------ */

Test(etcd_pb, grpc_framing)
{
    u8 frame[5 + 3];
    etcd_grpc_prefix_write(frame, 3);
    static const u8 want[] = {0, 0, 0, 0, 3};
    assert_bytes(frame, 5, want, 5);
    memcpy(frame + 5, "abc", 3);
    struct span msg;
    size_t used = 0;
    for (size_t len = 0; len < sizeof(frame); len++)
        cr_assert_eq(etcd_grpc_message_parse(frame, len, 100, &msg, &used), 0, "len %zu", len);
    cr_assert_eq(etcd_grpc_message_parse(frame, sizeof(frame), 100, &msg, &used), 1);
    cr_assert_eq(used, 8);
    cr_assert(span_eq(msg, S("abc")));
    cr_assert_eq(etcd_grpc_message_parse(frame, sizeof(frame), 2, &msg, &used), -1,
                 "a length above len_max is refused before waiting for the bytes");
    frame[0] = 1;
    cr_assert_eq(etcd_grpc_message_parse(frame, sizeof(frame), 100, &msg, &used), -1, "compressed");
    u8 big[5];
    etcd_grpc_prefix_write(big, 0x01020304u);
    static const u8 want_big[] = {0, 1, 2, 3, 4};
    assert_bytes(big, 5, want_big, 5);
}
