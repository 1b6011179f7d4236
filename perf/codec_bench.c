/*
 * codec_bench.c — ns per decode and encode of the hottest frames, through the table walker
 * (generic) and through the codec entry points, which take net/codec_fast.c's straight-line
 * paths for PUT and RANGE (fast).
 *
 * Messages: a PUT request with a 16-byte key and a 256-byte value, a RANGE request for one
 * 16-byte key, a PUT reply without prev_kv, a RANGE reply with one such kv. "generic" is what
 * the entry points did before the fast paths: codec_request_desc + codec_decode, header +
 * body codec_decode for replies, codec_frame_begin + codec_encode + codec_frame_end for
 * encodes. Each figure is the best of --runs runs of --iters calls.
 *
 * Usage: codec_bench [--iters N] [--runs N]
 */
#include "net/codec.h"

#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_SIZE   16
#define VALUE_SIZE 256

static u8 key[KEY_SIZE];
static u8 value[VALUE_SIZE];
static u8 frames[4][1024]; /* PUT request, RANGE request, PUT reply, RANGE reply */
static size_t frame_len[4];
static u8 out_mem[1024];
static volatile u64 sink;

static u64 now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u64)ts.tv_sec * 1000000000u + (u64)ts.tv_nsec;
}

/* ---- the messages ------------------------------------------------------------------------- */

static struct codec_put_request put_req;
static struct codec_range_request range_req;
static struct codec_put_reply put_rep;
static struct codec_range_reply range_rep;
static struct codec_reply_header header = {CODEC_S_OK, 1, 12345, 3, 77};
static u8 kv_mem[512];

static const struct codec_frame heads[4] = {
    {CODEC_OP_PUT, 0, 42, {NULL, 0}},
    {CODEC_OP_RANGE, 0, 43, {NULL, 0}},
    {CODEC_OP_PUT, 0, 42, {NULL, 0}},
    {CODEC_OP_RANGE, 0, 43, {NULL, 0}},
};
static const void *bodies[4] = {&put_req, &range_req, &put_rep, &range_rep};

static void messages_init(void)
{
    for (size_t i = 0; i < KEY_SIZE; i++) key[i] = (u8)('a' + i);
    for (size_t i = 0; i < VALUE_SIZE; i++) value[i] = (u8)i;
    put_req =
        (struct codec_put_request){0, 0, span_make(key, KEY_SIZE), span_make(value, VALUE_SIZE)};
    memset(&range_req, 0, sizeof(range_req));
    range_req.key = span_make(key, KEY_SIZE);
    struct codec_kv kv = {10, 12, 2, 0, span_make(key, KEY_SIZE), span_make(value, VALUE_SIZE)};
    struct buf lb_buf;
    buf_init_fixed(&lb_buf, kv_mem, sizeof(kv_mem));
    struct codec_list_builder lb;
    codec_list_begin(&lb, codec_field_find(&codec_msg_range_reply, "kvs"), &range_rep.kvs, &lb_buf);
    int rc = codec_list_add(&lb, &kv);
    ASSERT(rc == 0);
    codec_list_end(&lb);
    range_rep.count = 1;
    for (int i = 0; i < 4; i++) {
        struct buf b;
        buf_init_fixed(&b, frames[i], sizeof(frames[i]));
        rc = i < 2 ? codec_request_encode(&b, &heads[i], bodies[i], CODEC_FRAME_SIZE_MAX)
                   : codec_reply_encode(&b, &heads[i], &header, bodies[i],
                                        CODEC_REPLY_FRAME_SIZE_MAX);
        ASSERT(rc == 0);
        frame_len[i] = b.len;
    }
}

/* ---- one operation each way: i selects the message ---------------------------------------- */

static int decode_generic(int i, const struct codec_frame *f)
{
    union codec_msg_any body;
    struct codec_reply reply;
    int rc;
    if (i < 2) {
        rc = codec_decode(codec_request_desc(f->opcode), f->body, &body);
        sink += body.put_request.key.len;
        return rc;
    }
    rc = codec_decode(&codec_msg_reply_header, f->body, &reply.header);
    struct span rest =
        span_make(f->body.ptr + CODEC_REPLY_HEADER_SIZE, f->body.len - CODEC_REPLY_HEADER_SIZE);
    rc |= codec_decode(codec_reply_desc(f->opcode), rest, &reply.body);
    sink += (u64)reply.header.revision;
    return rc;
}

static int decode_fast(int i, const struct codec_frame *f)
{
    union codec_msg_any body;
    struct codec_reply reply;
    int rc;
    if (i < 2) {
        rc = codec_request_decode(f, &body);
        sink += body.put_request.key.len;
        return rc;
    }
    rc = codec_reply_decode(f, &reply);
    sink += (u64)reply.header.revision;
    return rc;
}

static int encode_generic(int i, struct buf *b)
{
    const struct codec_frame *h = &heads[i];
    size_t start = codec_frame_begin(b, h->opcode, h->flags, h->request_id);
    int rc = 0;
    if (i >= 2) rc = codec_encode(b, &codec_msg_reply_header, &header);
    const struct codec_msg_desc *d =
        i < 2 ? codec_request_desc(h->opcode) : codec_reply_desc(h->opcode);
    rc |= codec_encode(b, d, bodies[i]);
    rc |= codec_frame_end(b, start, CODEC_REPLY_FRAME_SIZE_MAX, CODEC_S_REPLY_TOO_LARGE);
    return rc;
}

static int encode_fast(int i, struct buf *b)
{
    if (i < 2) return codec_request_encode(b, &heads[i], bodies[i], CODEC_FRAME_SIZE_MAX);
    return codec_reply_encode(b, &heads[i], &header, bodies[i], CODEC_REPLY_FRAME_SIZE_MAX);
}

/* ---- timing ------------------------------------------------------------------------------- */

enum { DECODE_GENERIC, DECODE_FAST, ENCODE_GENERIC, ENCODE_FAST };

static double run_ns(int way, int i, u64 iters, int runs)
{
    struct codec_frame f;
    size_t frame_size;
    int rc = codec_frame_decode(span_make(frames[i], frame_len[i]), CODEC_REPLY_FRAME_SIZE_MAX, &f,
                                &frame_size);
    ASSERT(rc == 0);
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        struct buf b;
        buf_init_fixed(&b, out_mem, sizeof(out_mem));
        u64 t0 = now_ns();
        for (u64 n = 0; n < iters; n++) {
            b.len = 0;
            if (way == DECODE_GENERIC) rc |= decode_generic(i, &f);
            if (way == DECODE_FAST) rc |= decode_fast(i, &f);
            if (way == ENCODE_GENERIC) rc |= encode_generic(i, &b);
            if (way == ENCODE_FAST) rc |= encode_fast(i, &b);
        }
        double ns = (double)(now_ns() - t0) / (double)iters;
        best = ns < best ? ns : best;
        if (way >= ENCODE_GENERIC) ASSERT(b.len == frame_len[i]);
    }
    ASSERT(rc == 0);
    return best;
}

int main(int argc, char **argv)
{
    u64 iters = 2000000;
    int runs = 5;
    for (int a = 1; a + 1 < argc; a += 2) {
        if (strcmp(argv[a], "--iters") == 0) {
            iters = strtoull(argv[a + 1], NULL, 10);
        } else if (strcmp(argv[a], "--runs") == 0) {
            runs = atoi(argv[a + 1]);
        } else {
            fprintf(stderr, "codec_bench: unknown option %s (--iters N, --runs N)\n", argv[a]);
            return 2;
        }
    }
    if (iters == 0 || runs <= 0) {
        fprintf(stderr, "codec_bench: --iters and --runs must be positive\n");
        return 2;
    }
    messages_init();
    static const char *names[4] = {"PUT request (16 B key, 256 B value)", "RANGE request (1 key)",
                                   "PUT reply", "RANGE reply (1 kv)"};
    printf("%-38s %-7s %9s %9s %7s\n", "message", "op", "generic", "fast", "ratio");
    for (int op = 0; op < 2; op++) {
        for (int i = 0; i < 4; i++) {
            double g = run_ns(op == 0 ? DECODE_GENERIC : ENCODE_GENERIC, i, iters, runs);
            double f = run_ns(op == 0 ? DECODE_FAST : ENCODE_FAST, i, iters, runs);
            printf("%-38s %-7s %7.1fns %7.1fns %6.2fx\n", names[i], op == 0 ? "decode" : "encode",
                   g, f, g / f);
        }
    }
    printf("(frame bytes: %zu %zu %zu %zu; best of %d runs of %llu)\n", frame_len[0], frame_len[1],
           frame_len[2], frame_len[3], runs, (unsigned long long)iters);
    return 0;
}
