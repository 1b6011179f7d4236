/*
 * codec_fast.h — straight-line codecs for the hottest messages (PUT and RANGE requests and
 * replies), used by codec.c's entry points in front of the table walker.
 *
 * Contract:
 *  - A fast function either does exactly what the generic path (codec.c's walker over the
 *    codec_gen.h tables) would do on success, or declines (CODEC_FAST_DECLINE) and changes
 *    nothing the caller can see: the caller then runs the generic path. A fast function
 *    never reports a failure itself, so every failure status, the order fields are checked
 *    in and what a failed decode leaves in its output are the generic path's by
 *    construction.
 *  - It is conservative: anything it does not recognise (a flag bit, enum value or limit it
 *    was not written for) makes it decline, so a newer messages.json can only make it
 *    slower, never different. tests/unit/net/test_codec_fast.c checks the tables still have
 *    the shape written here and compares both paths on random and damaged input.
 *  - Pure and single-threaded, as codec.h.
 */
#ifndef KEEL_NET_CODEC_FAST_H
#define KEEL_NET_CODEC_FAST_H

#include "net/codec.h"

#define CODEC_FAST_DECLINE (-100) /* not handled here: run the generic path */

/* Decoders of one body (a reply's body after its reply_header): 0 with *out filled exactly
 * as codec_decode(&codec_msg_<name>, body, out) fills it, or CODEC_FAST_DECLINE. */
int codec_fast_put_request_decode(struct span body, struct codec_put_request *out);
int codec_fast_range_request_decode(struct span body, struct codec_range_request *out);
int codec_fast_put_reply_decode(struct span body, struct codec_put_reply *out);
int codec_fast_range_reply_decode(struct span body, struct codec_range_reply *out);

/* The reply_header at the front of a reply body (it has no rules but its length). */
int codec_fast_reply_header_decode(struct span body, struct codec_reply_header *out);

/* One kv element of an unsized list (a RANGE reply's kvs, a DELETE_RANGE reply's prev_kvs):
 * codec_fast_kv_read reads it at r as codec_iter_next would (0, or DECLINE with r
 * untouched); codec_fast_kv_write appends it as codec_encode(b, &codec_msg_kv, kv) would
 * (0 or CODEC_NO_ROOM, or DECLINE with b untouched when it breaks a rule). */
int codec_fast_kv_read(struct buf_reader *r, struct codec_kv *kv);
int codec_fast_kv_write(struct buf *b, const struct codec_kv *kv);

/* Whole frames, as codec_request_encode and codec_reply_encode (status OK) for PUT and
 * RANGE: 0 or CODEC_NO_ROOM as they return it, or CODEC_FAST_DECLINE with b untouched
 * (a field breaks a rule, or the frame passes frame_size_max). */
int codec_fast_request_encode(struct buf *b, const struct codec_frame *head, const void *body,
                              u32 frame_size_max);
int codec_fast_reply_encode(struct buf *b, const struct codec_frame *head,
                            const struct codec_reply_header *header, const void *body,
                            u32 frame_size_max);

#endif
