/*
 * shard_fwd.c — client requests a follower forwards to its group's leader over the peer
 * transport (shard i to shard i), and their replies coming back.
 *
 * Peer message kinds (the first byte of every peer message; shard_peer.c):
 *   | kind | bytes after the kind                                   |
 *   | 1    | a Raft message (raft_msg_encode)                       |
 *   | 2    | u64 token, then a whole client request frame           |
 *   | 3    | u64 token, then the whole reply frame for that request |
 * The token names the follower's slot; the leader echoes it. The leader runs the request as if
 * a client had sent it (a write is proposed and answered at apply), so the reply the follower
 * relays is exactly what the leader would have sent. A follower that hears nothing back within
 * SHARD_FWD_TIMEOUT_TICKS answers LEADER_CHANGED: the write may or may not have been applied.
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

#define SHARD_FWD_MAX           8192u
#define SHARD_FWD_TIMEOUT_TICKS (4u * SHARD_RAFT_ELECTION_TICKS) /* 4 s */
#define FWD_TOKEN_BYTES         8u

struct fwd_slot {
    bool used;
    u32 generation;
    u32 age_ticks;
    u64 leader; /* the member it was sent to */
    struct sink sink;
};

static struct fwd_slot *fwd_slots(struct shard *s)
{
    if (!s->fwd_slots) s->fwd_slots = calloc(SHARD_FWD_MAX, sizeof(struct fwd_slot));
    return s->fwd_slots;
}

static u64 fwd_token(u32 slot, u32 generation)
{
    return ((u64)generation << 32) | slot;
}

/* Sends the request frame raw to the leader; its reply goes to k. CONN_FRAME_DONE always (an
 * error reply when it cannot be forwarded), or CONN_FRAME_AGAIN when every slot is in use. */
int shard_forward_to_leader(struct shard *s, struct sink *k, struct span raw)
{
    u64 leader = raft_leader(s->raft);
    if (leader == 0 || !s->peer || !peer_connected(s->peer, leader)) {
        shard_sink_error(s, k, leader ? CODEC_S_NOT_LEADER : CODEC_S_UNAVAILABLE, leader,
                         leader ? "not the leader of this shard, and the leader is unreachable"
                                : "this shard has no leader now");
        return CONN_FRAME_DONE;
    }
    struct fwd_slot *slots = fwd_slots(s);
    if (!slots || s->fwd_count == SHARD_FWD_MAX) return CONN_FRAME_AGAIN;
    u32 i = s->fwd_next;
    while (slots[i].used) i = (i + 1) % SHARD_FWD_MAX;
    s->fwd_next = (i + 1) % SHARD_FWD_MAX;
    struct buf *b = &s->msg_scratch;
    buf_reset(b);
    buf_put_u8(b, PEER_KIND_FWD_REQ);
    buf_put_u64(b, fwd_token(i, slots[i].generation));
    buf_put_bytes(b, raw.ptr, raw.len);
    if (!buf_ok(b) || peer_send(s->peer, leader, b->ptr, (u32)b->len) != PEER_OK) {
        shard_sink_error(s, k, CODEC_S_NOT_LEADER, leader,
                         "not the leader of this shard; forwarding to the leader failed");
        return CONN_FRAME_DONE;
    }
    slots[i] = (struct fwd_slot){
        .used = true, .generation = slots[i].generation, .leader = leader, .sink = *k};
    shard_sink_hold(&slots[i].sink);
    s->fwd_count++;
    return CONN_FRAME_DONE;
}

/* Frees a slot (its generation moves on, so a late answer is dropped) and returns its sink. */
static struct sink fwd_release(struct shard *s, struct fwd_slot *slot)
{
    ASSERT(slot->used && s->fwd_count > 0);
    struct sink k = slot->sink;
    slot->used = false;
    slot->generation++;
    s->fwd_count--;
    return k;
}

/* Leader side: a follower's client request. */
void shard_fwd_on_request(struct shard *s, u64 from, const u8 *bytes, u32 len)
{
    if (len < FWD_TOKEN_BYTES) return;
    struct codec_frame f;
    size_t size = 0;
    union codec_msg_any m;
    struct span raw = span_make(bytes + FWD_TOKEN_BYTES, len - FWD_TOKEN_BYTES);
    if (codec_frame_decode(raw, CODEC_FRAME_SIZE_MAX, &f, &size) != 0 || size != raw.len ||
        codec_request_decode(&f, &m) != 0) {
        s->peer_bad_msgs++;
        return;
    }
    struct sink k = {.kind = SINK_PEER,
                     .opcode = f.opcode,
                     .request_id = f.request_id,
                     .member = from,
                     .cookie = load_u64_le(bytes)};
    if (shard_submit_forwarded(s, &k, &f, &m, raw) != CONN_FRAME_DONE)
        shard_sink_error(s, &k, CODEC_S_UNAVAILABLE, 0, "the leader is busy; retry");
}

/* Leader side: the reply to a forwarded request. */
void shard_fwd_reply(struct shard *s, const struct sink *k, const u8 *frame, u32 len)
{
    ASSERT(k->kind == SINK_PEER);
    if (!s->peer || len == 0) return;
    struct buf *b = &s->fwd_reply_scratch;
    buf_reset(b);
    buf_put_u8(b, PEER_KIND_FWD_REP);
    buf_put_u64(b, k->cookie);
    buf_put_bytes(b, frame, len);
    if (buf_ok(b)) peer_send(s->peer, k->member, b->ptr, (u32)b->len);
}

/* Follower side: the leader's reply. */
void shard_fwd_on_reply(struct shard *s, u64 from, const u8 *bytes, u32 len)
{
    (void)from;
    if (len < FWD_TOKEN_BYTES || !s->fwd_slots) return;
    u64 token = load_u64_le(bytes);
    u32 i = (u32)token;
    if (i >= SHARD_FWD_MAX) return;
    struct fwd_slot *slot = &s->fwd_slots[i];
    if (!slot->used || slot->generation != (u32)(token >> 32)) return; /* timed out before */
    struct sink k = fwd_release(s, slot);
    shard_sink_bytes(s, &k, bytes + FWD_TOKEN_BYTES, len - FWD_TOKEN_BYTES);
}

/* On every tick: forwarded requests the leader never answered. */
void shard_fwd_tick(struct shard *s)
{
    if (!s->fwd_slots || s->fwd_count == 0) return;
    for (u32 i = 0; i < SHARD_FWD_MAX; i++) {
        struct fwd_slot *slot = &s->fwd_slots[i];
        if (!slot->used || ++slot->age_ticks < SHARD_FWD_TIMEOUT_TICKS) continue;
        struct sink k = fwd_release(s, slot);
        shard_sink_error(s, &k, CODEC_S_LEADER_CHANGED, raft_leader(s->raft),
                         "the leader did not answer a forwarded request; a write may or may not "
                         "have been applied");
    }
}

/* The member forwarded requests went to is gone (its connection failed) or no longer leads:
 * their answers may never come, so they are answered now, outcome unknown. A late answer
 * finds its slot reused (another generation) and is dropped. */
void shard_fwd_fail_to(struct shard *s, u64 member, bool unreachable)
{
    if (!s->fwd_slots || s->fwd_count == 0) return;
    for (u32 i = 0; i < SHARD_FWD_MAX; i++) {
        struct fwd_slot *slot = &s->fwd_slots[i];
        if (!slot->used || slot->leader != member) continue;
        /* A MOVE_LEADER changes the leader on purpose; its old leader answers it. */
        if (!unreachable && slot->sink.opcode == CODEC_OP_MOVE_LEADER) continue;
        struct sink k = fwd_release(s, slot);
        shard_sink_error(s, &k, CODEC_S_LEADER_CHANGED, raft_leader(s->raft),
                         "the leader was lost before it answered a forwarded request; a write "
                         "may or may not have been applied");
    }
}

/* Draining too long, or stopping: answer every forwarded request still waiting. */
void shard_fwd_fail_all(struct shard *s)
{
    if (!s->fwd_slots) return;
    for (u32 i = 0; i < SHARD_FWD_MAX; i++) {
        struct fwd_slot *slot = &s->fwd_slots[i];
        if (!slot->used) continue;
        struct sink k = fwd_release(s, slot);
        shard_sink_error(s, &k, CODEC_S_LEADER_CHANGED, 0,
                         "the server stopped before the leader answered; a write may or may "
                         "not have been applied");
    }
}
