/*
 * raw_conn.h — a bare TCP client for integration tests that must send bytes libkeel never
 * would (bad frames, bad bodies, requests before HELLO) and read the replies frame by frame.
 *
 * Contract:
 *  - Requests are built by hand with core/buf.h (raw_frame_* below); replies are cut and
 *    decoded with net/codec.h (codec_frame_decode, codec_reply_decode).
 *  - Every read waits at most the given timeout; a test never blocks forever on a silent
 *    server. Single-threaded; a struct raw_conn belongs to one test.
 */
#ifndef KEEL_TESTS_INTEGRATION_RAW_CONN_H
#define KEEL_TESTS_INTEGRATION_RAW_CONN_H

#include "core/buf.h"
#include "net/codec.h"

#include <stdbool.h>
#include <stdint.h>

#define RAW_READ_MS 10000 /* default wait for a reply */

struct raw_conn {
    int fd;
    u8 *in; /* received bytes not yet cut into frames */
    size_t in_len;
    size_t in_cap;
    u8 *frame; /* the last frame returned by raw_read_reply (owned copy) */
};

/* A decoded reply: frame head, reply header, and for an error status the error body. */
struct raw_reply {
    struct codec_frame frame;
    struct codec_reply reply; /* borrows raw_conn.frame until the next read */
};

enum raw_read_result { RAW_OK = 0, RAW_CLOSED = -1, RAW_TIMEOUT = -2, RAW_BAD = -3 };

/* Connects to 127.0.0.1:port; false on failure. */
bool raw_connect(struct raw_conn *c, uint16_t port);
void raw_close(struct raw_conn *c);
/* Writes all of bytes; false if the connection broke. */
bool raw_send(struct raw_conn *c, const void *bytes, size_t len);
/* Reads the next reply frame (waiting up to timeout_ms): RAW_OK, RAW_CLOSED (EOF or reset),
 * RAW_TIMEOUT, or RAW_BAD (a frame that does not decode as a reply). */
int raw_read_reply(struct raw_conn *c, int timeout_ms, struct raw_reply *out);
/* Reads the next frame without decoding its body (out->body borrows it until the next read). */
int raw_read_frame(struct raw_conn *c, int timeout_ms, struct codec_frame *out);
/* Reads until the server closes: true if it closed within timeout_ms (frames are dropped). */
bool raw_wait_closed(struct raw_conn *c, int timeout_ms);

/* ---- request builders: each appends one whole frame to b ------------------------------ */

/* Frame header with the length patched by raw_frame_end. Returns the frame start. */
size_t raw_frame_begin(struct buf *b, u16 opcode, u64 request_id);
void raw_frame_end(struct buf *b, size_t start);
void raw_hello(struct buf *b, u64 request_id, u32 magic, u16 version);
void raw_put(struct buf *b, u64 request_id, const char *key, const char *value);
void raw_get(struct buf *b, u64 request_id, const char *key);
/* HELLO then the reply read and checked OK: true when the handshake worked. */
bool raw_handshake(struct raw_conn *c);

#endif
