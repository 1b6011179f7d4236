/*
 * shard_peer.c — a shard's Raft messages on the wire: encoded with raft_msg_encode, carried by
 * net/peer.c (shard i of one node talks only to shard i of the others, on peer port + i), and
 * decoded into raft_step on arrival. Messages raft says must wait for persistence are held here
 * until the WAL is durable up to the index they need (ready step d).
 */
#include "shard/shard_int.h"

#include "core/assert.h"
#include "core/checksum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_MESSAGE_BYTES_MAX (8u << 20)  /* an APP of append_bytes_max + one large entry */
#define PEER_QUEUE_BYTES_MAX   (32u << 20) /* per member */

static void shard_peer_on_raft(struct shard *s, u64 from, const u8 *bytes, u32 len)
{
    u32 n = raft_msg_entry_count(bytes, len);
    if (n > s->rx_entries_cap) {
        struct raft_entry *e = realloc(s->rx_entries, n * sizeof(*e));
        if (!e) return; /* dropped: raft retries */
        s->rx_entries = e;
        s->rx_entries_cap = n;
    }
    struct raft_msg m;
    if (raft_msg_decode(bytes, len, &m, s->rx_entries, s->rx_entries_cap) != RAFT_OK ||
        m.from != from || m.to != s->node->config.member_id) {
        s->peer_bad_msgs++;
        return;
    }
    raft_step(s->raft, &m);
}

/* Every peer message starts with its kind: a Raft message, or a client request a follower
 * forwards to the leader (and its reply). */
static void shard_peer_on_message(void *ctx, u64 from, const u8 *bytes, u32 len)
{
    struct shard *s = ctx;
    if (len < 1) return;
    if (bytes[0] == PEER_KIND_RAFT) return shard_peer_on_raft(s, from, bytes + 1, len - 1);
    if (bytes[0] == PEER_KIND_FWD_REQ) return shard_fwd_on_request(s, from, bytes + 1, len - 1);
    if (bytes[0] == PEER_KIND_FWD_REP) return shard_fwd_on_reply(s, from, bytes + 1, len - 1);
    s->peer_bad_msgs++;
}

static void shard_peer_on_unreachable(void *ctx, u64 member_id)
{
    struct shard *s = ctx;
    raft_peer_unreachable(s->raft, member_id);
    shard_fwd_fail_to(s, member_id, true);
}

u64 shard_cluster_id(const struct node_config *c)
{
    const char *token = c->cluster_token ? c->cluster_token : "keel-cluster";
    return checksum64(token, strlen(token)) | 1;
}

int shard_peer_start(struct shard *s)
{
    const struct node_config *nc = &s->node->config;
    if (nc->member_count == 0) return 0; /* a single member without peers */
    struct peer_config pc;
    peer_config_default(&pc);
    pc.member_id = nc->member_id;
    pc.cluster_id = shard_cluster_id(nc);
    pc.group_id = s->id;
    pc.listen_ipv4 = nc->ipv4;
    pc.listen_port = (u16)(nc->peer_port + s->id);
    pc.peers_max = NODE_MEMBERS_MAX;
    pc.queue_bytes_max = PEER_QUEUE_BYTES_MAX;
    pc.message_size_max = PEER_MESSAGE_BYTES_MAX;
    pc.seed = nc->member_id ^ ((u64)s->id << 32);
    pc.on_message = shard_peer_on_message;
    pc.on_unreachable = shard_peer_on_unreachable;
    pc.ctx = s;
    for (u32 i = 0; i < nc->member_count; i++)
        if (nc->members[i].id == nc->member_id) pc.listen_ipv4 = nc->members[i].ipv4;
    int rc = peer_create(s->loop, &pc, &s->peer);
    if (rc != 0)
        return shard_fail(s, "cannot listen on peer port %u: %s", pc.listen_port, strerror(-rc)),
               -1;
    for (u32 i = 0; i < nc->member_count; i++) {
        const struct node_member *m = &nc->members[i];
        if (m->id == nc->member_id) continue;
        peer_add(s->peer, m->id, m->ipv4, (u16)(m->peer_port + s->id));
    }
    return 0;
}

void shard_peer_stop(struct shard *s)
{
    if (s->peer) peer_destroy(s->peer);
    s->peer = NULL;
    free(s->rx_entries);
    s->rx_entries = NULL;
    s->rx_entries_cap = 0;
}

static void shard_peer_hold(struct shard *s, u64 to, const u8 *bytes, u32 len, u64 need)
{
    if (s->held_len == s->held_cap) {
        u32 cap = s->held_cap ? s->held_cap * 2 : 64;
        struct held_msg *h = realloc(s->held, cap * sizeof(*h));
        if (!h) return; /* dropped: raft retries */
        s->held = h;
        s->held_cap = cap;
    }
    u8 *copy = malloc(len);
    if (!copy) return;
    memcpy(copy, bytes, len);
    s->held[s->held_len++] =
        (struct held_msg){.need_index = need, .to = to, .bytes = copy, .len = len};
}

/* Sends m now (need_index 0) or once the WAL is durable up to need_index. */
void shard_peer_send(struct shard *s, const struct raft_msg *m, u64 need_index)
{
    if (!s->peer) return; /* alone: raft sends nothing anyone could receive */
    if (m->type == RAFT_MSG_SNAP && m->snap_data == NULL) return; /* the chunk was unreadable */
    size_t size = raft_msg_encoded_size(m);
    struct buf *b = &s->msg_scratch;
    buf_reset(b);
    u8 *p = buf_reserve(b, size + 1);
    if (!p) return;
    p[0] = PEER_KIND_RAFT;
    size_t n = raft_msg_encode(m, p + 1, size) + 1;
    ASSERT(n == size + 1);
    if (need_index > wal_durable_index(&s->wal))
        return shard_peer_hold(s, m->to, p, (u32)n, need_index);
    if (s->held_len > 0) /* keep the order of what this member sends */
        return shard_peer_hold(s, m->to, p, (u32)n, 0);
    peer_send(s->peer, m->to, p, (u32)n);
}

/* Sends the held messages the WAL now covers (in order), then flushes: one write per peer. */
void shard_peer_release(struct shard *s)
{
    if (!s->peer) return;
    u64 durable = wal_durable_index(&s->wal);
    u32 i = 0;
    for (; i < s->held_len && s->held[i].need_index <= durable; i++) {
        peer_send(s->peer, s->held[i].to, s->held[i].bytes, s->held[i].len);
        free(s->held[i].bytes);
    }
    if (i > 0) {
        memmove(s->held, s->held + i, (s->held_len - i) * sizeof(*s->held));
        s->held_len -= i;
    }
    peer_flush(s->peer);
}

void shard_peer_tick(struct shard *s)
{
    if (s->peer) peer_tick(s->peer, shard_now_ns() / 1000000ull);
}

/* "name=host:port" of a conf change's context: the member's peer URL (port of shard 0). */
static bool parse_context(const struct raft_conf_change *cc, u32 *ipv4, u16 *port)
{
    char ctx[RAFT_CONF_CONTEXT_MAX + 1];
    memcpy(ctx, cc->context, cc->context_len);
    ctx[cc->context_len] = '\0';
    const char *eq = strchr(ctx, '=');
    return node_parse_peer_url(eq ? eq + 1 : ctx, ipv4, port) == 0;
}

void shard_peer_conf_change(struct shard *s, const struct raft_conf_change *cc)
{
    if (!s->peer || cc->id == s->node->config.member_id) return;
    if (cc->type == RAFT_CC_REMOVE) {
        peer_remove(s->peer, cc->id);
        return;
    }
    u32 ipv4 = 0;
    u16 port = 0;
    if (cc->type == RAFT_CC_PROMOTE) return; /* already connected as a learner */
    if (cc->context_len == 0) return; /* a bootstrap member: dialled from --initial-cluster */
    if (!parse_context(cc, &ipv4, &port)) {
        node_log("raft", "shard %u: member %016llx has no peer URL in its change; not dialled",
                 s->id, (unsigned long long)cc->id);
        return;
    }
    peer_add(s->peer, cc->id, ipv4, (u16)(port + s->id));
}
