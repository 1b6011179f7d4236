/*
 * raw_conn.c — bare TCP client for integration tests (raw_conn.h).
 */
#include "raw_conn.h"

#include "keeld_proc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAW_IN_CAP_FIRST 65536

bool raw_connect(struct raw_conn *c, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    c->fd = keeld_tcp_connect(port);
    return c->fd >= 0;
}

void raw_close(struct raw_conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->in);
    free(c->frame);
    c->in = NULL;
    c->frame = NULL;
    c->in_len = c->in_cap = 0;
}

bool raw_send(struct raw_conn *c, const void *bytes, size_t len)
{
    const u8 *p = bytes;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads what is there into c->in, waiting up to timeout_ms: 1 bytes, 0 timeout, -1 closed. */
static int raw_fill(struct raw_conn *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r == 0) return 0;
    if (r < 0) return errno == EINTR ? 0 : -1;
    if (c->in_cap - c->in_len < 4096) {
        size_t cap = c->in_cap ? c->in_cap * 2 : RAW_IN_CAP_FIRST;
        u8 *in = realloc(c->in, cap);
        if (!in) return -1;
        c->in = in;
        c->in_cap = cap;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (n <= 0) return -1;
    c->in_len += (size_t)n;
    return 1;
}

/* Cuts one frame off c->in into c->frame: 1 done, 0 need more, -1 bad frame. */
static int raw_cut(struct raw_conn *c, struct raw_reply *out, bool decode)
{
    struct codec_frame f;
    size_t size = 0;
    int rc = codec_frame_decode(span_make(c->in, c->in_len), CODEC_REPLY_FRAME_SIZE_MAX, &f, &size);
    if (rc == CODEC_NEED_MORE) return 0;
    if (rc != 0) return -1;
    free(c->frame);
    c->frame = malloc(size);
    if (!c->frame) return -1;
    memcpy(c->frame, c->in, size);
    memmove(c->in, c->in + size, c->in_len - size);
    c->in_len -= size;
    rc = codec_frame_decode(span_make(c->frame, size), CODEC_REPLY_FRAME_SIZE_MAX, &out->frame,
                            &size);
    if (rc != 0) return -1;
    if (!decode) return 1;
    return codec_reply_decode(&out->frame, &out->reply) == 0 ? 1 : -1;
}

static int raw_read(struct raw_conn *c, int timeout_ms, struct raw_reply *out, bool decode)
{
    int64_t deadline = keeld_now_ms() + timeout_ms;
    for (;;) {
        int cut = raw_cut(c, out, decode);
        if (cut == 1) return RAW_OK;
        if (cut < 0) return RAW_BAD;
        int64_t left = deadline - keeld_now_ms();
        if (left <= 0) return RAW_TIMEOUT;
        int r = raw_fill(c, (int)left);
        if (r < 0) return RAW_CLOSED;
    }
}

int raw_read_reply(struct raw_conn *c, int timeout_ms, struct raw_reply *out)
{
    return raw_read(c, timeout_ms, out, true);
}

int raw_read_frame(struct raw_conn *c, int timeout_ms, struct codec_frame *out)
{
    struct raw_reply r;
    int rc = raw_read(c, timeout_ms, &r, false);
    if (rc == RAW_OK) *out = r.frame;
    return rc;
}

bool raw_wait_closed(struct raw_conn *c, int timeout_ms)
{
    int64_t deadline = keeld_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - keeld_now_ms();
        if (left <= 0) return false;
        int r = raw_fill(c, (int)left);
        if (r < 0) return true;
        c->in_len = 0; /* drop what came: only the close matters */
    }
}

size_t raw_frame_begin(struct buf *b, u16 opcode, u64 request_id)
{
    size_t start = b->len;
    buf_put_u32(b, 0);
    buf_put_u16(b, opcode);
    buf_put_u16(b, 0);
    buf_put_u64(b, request_id);
    return start;
}

void raw_frame_end(struct buf *b, size_t start)
{
    if (!buf_ok(b)) return;
    store_u32_le(b->ptr + start, (u32)(b->len - start - 4));
}

void raw_hello(struct buf *b, u64 request_id, u32 magic, u16 version)
{
    size_t s = raw_frame_begin(b, CODEC_OP_HELLO, request_id);
    buf_put_u32(b, magic);
    buf_put_u16(b, version);
    buf_put_u64(b, 0);
    raw_frame_end(b, s);
}

void raw_put(struct buf *b, u64 request_id, const char *key, const char *value)
{
    size_t s = raw_frame_begin(b, CODEC_OP_PUT, request_id);
    buf_put_u8(b, 0);  /* flags */
    buf_put_u64(b, 0); /* lease */
    buf_put_u16(b, (u16)strlen(key));
    buf_put_bytes(b, key, strlen(key));
    buf_put_u32(b, (u32)strlen(value));
    buf_put_bytes(b, value, strlen(value));
    raw_frame_end(b, s);
}

void raw_get(struct buf *b, u64 request_id, const char *key)
{
    size_t s = raw_frame_begin(b, CODEC_OP_RANGE, request_id);
    buf_put_u8(b, 0); /* flags */
    buf_put_u8(b, 0); /* sort order */
    buf_put_u8(b, 0); /* sort target */
    for (int i = 0; i < 6; i++)
        buf_put_u64(b, 0); /* revision, limit, min/max mod, min/max create */
    buf_put_u16(b, (u16)strlen(key));
    buf_put_bytes(b, key, strlen(key));
    buf_put_u16(b, 0); /* range_end: the key alone */
    raw_frame_end(b, s);
}

bool raw_handshake(struct raw_conn *c)
{
    u8 mem[64];
    struct buf b;
    buf_init_fixed(&b, mem, sizeof(mem));
    raw_hello(&b, 1, CODEC_MAGIC, CODEC_PROTOCOL_VERSION);
    if (!buf_ok(&b) || !raw_send(c, b.ptr, b.len)) return false;
    struct raw_reply r;
    if (raw_read_reply(c, RAW_READ_MS, &r) != RAW_OK) return false;
    return r.frame.opcode == CODEC_OP_HELLO && r.frame.request_id == 1 &&
           r.reply.header.status == CODEC_S_OK;
}
