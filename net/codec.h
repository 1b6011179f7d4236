/*
 * codec.h — keel's client wire protocol: frames and messages <-> bytes.
 *
 * The protocol is specified in proto-spec/protocol.md; proto-spec/messages.json
 * describes every message as data, and tools/gen_codec.py turns it into
 * net/codec_gen.h: the constants, the message structs and the field tables
 * this codec walks. Adding a field or a message is an edit of messages.json,
 * not of this file.
 *
 * Frame (all integers little-endian; the byte tables are in protocol.md):
 *
 *   OFFSET SIZE DESCRIPTION
 *      0     4  length: bytes after this field, 12 + body length (>= 12)
 *      4     2  opcode (enum codec_opcode); a reply echoes its request's
 *      6     2  flags (CODEC_FRAME_*); undefined bits ignored
 *      8     8  request_id: nonzero in requests; a reply carries its request's
 *     16     n  body: the opcode's request message, or for a reply a
 *               reply_header (28 bytes) then the reply message (status OK)
 *               or an error_body (any other status)
 *
 * Contract:
 *  - Pure: no I/O, no clock, no allocation. Decoded messages borrow the input
 *    bytes (spans and lists point into it): keep the input alive while the
 *    message is in use.
 *  - Every count is bounded before it is used: a list's count is checked
 *    against its limit and against the bytes left, and nesting depth is fixed
 *    by the (acyclic) field tables, at most CODEC_DEPTH_MAX.
 *  - Decoders validate the whole message, lists included, before returning 0;
 *    walking a decoded list with codec_iter_next then cannot fail. Fields are
 *    checked in wire order and the first failure decides the status.
 *  - Bytes after the last known field of a body, of a sized nested message or
 *    of a sized list entry are ignored: that is how new fields are appended.
 *  - Encoders apply the same rules as decoders (a message that encodes also
 *    decodes, to the same meaning) and leave the buffer as it was on failure.
 *  - Single-threaded: the functions keep no state; callers own the buffers.
 *
 * Errors: decoders return 0 or a status (enum codec_status): FRAME_TOO_LARGE
 * and FRAME_MALFORMED mean the stream cannot be trusted any more (the server
 * sends GOAWAY and closes); the others concern one message (the server replies
 * with the status and keeps the connection). codec_frame_decode also returns
 * CODEC_NEED_MORE. Encoders return 0, a status, or CODEC_NO_ROOM when a fixed
 * buffer is too small.
 */
#ifndef KEEL_NET_CODEC_H
#define KEEL_NET_CODEC_H

#include "core/buf.h"
#include "core/types.h"
#include "net/codec_gen.h"

#define CODEC_NEED_MORE (-1) /* codec_frame_decode: the input holds no whole frame yet */
#define CODEC_NO_ROOM   (-2) /* an encoder ran out of room in a fixed buffer */
#define CODEC_DEPTH_MAX 8    /* nesting of messages in the field tables (txn: 4) */

/* ---- frames ----------------------------------------------------------------------------- */

struct codec_frame {
    u16 opcode;
    u16 flags;
    u64 request_id;
    struct span body; /* borrows the input */
};

/* Finds the frame at the front of in. Returns 0 and sets *out and *frame_size
 * (bytes to consume), CODEC_NEED_MORE, or FRAME_MALFORMED (length < 12) or
 * FRAME_TOO_LARGE (4 + length > frame_size_max). Needs only the 4 length bytes
 * to refuse a frame, so a reader never buffers a frame it will refuse.
 * frame_size_max >= CODEC_FRAME_HEADER_SIZE. */
int codec_frame_decode(struct span in, u32 frame_size_max, struct codec_frame *out,
                       size_t *frame_size);

/* Writes a frame header with a length to be patched; returns the frame's start. */
size_t codec_frame_begin(struct buf *b, u16 opcode, u16 flags, u64 request_id);
/* Patches the length of the frame begun at start; 0, CODEC_NO_ROOM, or too_large_status
 * (and the frame removed) when it is longer than frame_size_max. */
int codec_frame_end(struct buf *b, size_t start, u32 frame_size_max, int too_large_status);

/* ---- messages --------------------------------------------------------------------------- */

/* Decodes body as message d into out (a struct codec_<d->name>). */
int codec_decode(const struct codec_msg_desc *d, struct span body, void *out);
/* Appends message msg (a struct codec_<d->name>) to b. */
int codec_encode(struct buf *b, const struct codec_msg_desc *d, const void *msg);

/* A request frame's body, decoded by opcode. Request id 0 is FRAME_MALFORMED; an opcode with
 * no request message (unknown, reserved, GOAWAY) is UNKNOWN_OPCODE. */
int codec_request_decode(const struct codec_frame *f, union codec_msg_any *body);
/* Appends a whole request frame (head's opcode, flags and nonzero request id; head->body is
 * not read). FRAME_TOO_LARGE if it would pass frame_size_max. */
int codec_request_encode(struct buf *b, const struct codec_frame *head, const void *body,
                         u32 frame_size_max);

struct codec_reply {
    struct codec_reply_header header;
    union codec_msg_any body; /* the opcode's reply, or .error_body when status is not OK */
};

/* A reply frame's body. An error reply (status not OK) decodes whatever its opcode; an OK reply
 * to an opcode the codec does not know is UNKNOWN_OPCODE. MALFORMED for GOAWAY with status OK
 * or a nonzero request id, or another reply with request id 0. */
int codec_reply_decode(const struct codec_frame *f, struct codec_reply *out);
/* Appends a whole reply frame; body is the opcode's reply message when header->status is OK,
 * else a struct codec_error_body (then any opcode may be echoed, known or not).
 * REPLY_TOO_LARGE if it would pass frame_size_max. */
int codec_reply_encode(struct buf *b, const struct codec_frame *head,
                       const struct codec_reply_header *header, const void *body,
                       u32 frame_size_max);

/* The message descriptor of opcode's request or reply; NULL if there is none. */
const struct codec_msg_desc *codec_request_desc(u16 opcode);
const struct codec_msg_desc *codec_reply_desc(u16 opcode);

/* ---- lists -------------------------------------------------------------------------------- */

struct codec_iter {
    const struct codec_field_desc *field; /* the list field: element desc and sizing */
    struct buf_reader r;
    u32 left;
};

/* Walks a list that a decoder validated or a builder made; field is the list's field
 * descriptor (codec_field_find). codec_iter_next decodes the next element into elem (a
 * struct codec_<field->msg->name>) and returns false at the end. */
void codec_iter_init(struct codec_iter *it, const struct codec_field_desc *field,
                     const struct codec_list *list);
bool codec_iter_next(struct codec_iter *it, void *elem);

/* Builds a list in b, element by element, for an encoder; b must not move while the list is
 * in use (a fixed buffer, or a dynamic one not written to until the list is encoded). */
struct codec_list_builder {
    const struct codec_field_desc *field;
    struct codec_list *list;
    struct buf *b;
    size_t start;
};

void codec_list_begin(struct codec_list_builder *lb, const struct codec_field_desc *field,
                      struct codec_list *list, struct buf *b);
/* Appends one element; 0, a status (the element breaks a rule, or the list is full), or
 * CODEC_NO_ROOM. */
int codec_list_add(struct codec_list_builder *lb, const void *elem);
void codec_list_end(struct codec_list_builder *lb);

/* The field of d named name; NULL if there is none. */
const struct codec_field_desc *codec_field_find(const struct codec_msg_desc *d, const char *name);

/* ---- names and text ----------------------------------------------------------------------- */

const char *codec_status_name(int status);    /* "KEY_TOO_LARGE"; NULL if unknown */
const char *codec_status_message(int status); /* "key too large"; "unknown status" */
bool codec_status_closes(int status);         /* the server closes after replying with it */
const char *codec_opcode_name(u16 opcode);    /* "PUT"; NULL if unknown */

/* Appends "path=value" lines describing msg (the golden-vector text of protocol.md):
 * integers in decimal, enums by name, flag bits one line each, byte strings quoted with
 * \xHH escapes, lists as name.count then name[i].field. prefix is prepended to every path
 * ("" for none). For tests and tools: it formats with snprintf; not for the request path. */
void codec_describe(struct buf *out, const char *prefix, const struct codec_msg_desc *d,
                    const void *msg);
/* A decoded request or reply frame: frame.* lines, header.* lines (replies), then the body. */
void codec_describe_request(struct buf *out, const struct codec_frame *f,
                            const union codec_msg_any *body);
void codec_describe_reply(struct buf *out, const struct codec_frame *f,
                          const struct codec_reply *reply);

#endif
