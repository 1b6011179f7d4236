/*
 * sim_net.c — the simulated network: every message is encoded with raft_msg_encode when sent
 * and decoded with raft_msg_decode when delivered. Per message: a delay in
 * [delay_ms_min, delay_ms_max] (a few take up to 10x longer: reordering), loss and duplication
 * by the seed's rates. Partitions block node links, symmetric (a split, an isolated node) or
 * one-way, from their start until they heal; a blocked link drops messages sent over it and
 * messages in flight on it. Messages to a node that is down or a member that no longer exists
 * are dropped on arrival.
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

/* ---- the in-flight heap ----------------------------------------------------------------- */

static bool packet_before(const struct sim_packet *a, const struct sim_packet *b)
{
    if (a->deliver_ms != b->deliver_ms) return a->deliver_ms < b->deliver_ms;
    return a->seq < b->seq;
}

static void heap_push(struct sim_net *n, const struct sim_packet *p)
{
    if (n->count == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 256;
        n->heap = sim_xrealloc(n->heap, sizeof(struct sim_packet) * n->cap);
    }
    u32 i = n->count++;
    n->heap[i] = *p;
    while (i > 0) {
        u32 parent = (i - 1) / 2;
        if (!packet_before(&n->heap[i], &n->heap[parent])) break;
        struct sim_packet t = n->heap[i];
        n->heap[i] = n->heap[parent];
        n->heap[parent] = t;
        i = parent;
    }
}

static struct sim_packet heap_pop(struct sim_net *n)
{
    ASSERT(n->count > 0);
    struct sim_packet top = n->heap[0];
    n->heap[0] = n->heap[--n->count];
    u32 i = 0;
    for (;;) {
        u32 l = 2 * i + 1, r = l + 1, m = i;
        if (l < n->count && packet_before(&n->heap[l], &n->heap[m])) m = l;
        if (r < n->count && packet_before(&n->heap[r], &n->heap[m])) m = r;
        if (m == i) break;
        struct sim_packet t = n->heap[i];
        n->heap[i] = n->heap[m];
        n->heap[m] = t;
        i = m;
    }
    return top;
}

void net_free(struct sim *s)
{
    for (u32 i = 0; i < s->net.count; i++) free(s->net.heap[i].bytes);
    free(s->net.heap);
    memset(&s->net, 0, sizeof s->net);
}

/* ---- send ------------------------------------------------------------------------------- */

/* Encodes m; also checks that decoding and encoding again gives the same bytes. */
bool net_encode(struct sim *s, const struct raft_msg *m, u8 **bytes, u32 *len)
{
    size_t size = raft_msg_encoded_size(m);
    u8 *buf = sim_xmalloc(size);
    size_t n = raft_msg_encode(m, buf, size);
    if (n != size || n == 0) {
        sim_fail(s, "codec", "raft_msg_encode of a %s wrote %zu bytes, encoded_size said %zu",
                 raft_msg_type_str(m->type), n, size);
        free(buf);
        return false;
    }
    struct raft_msg back;
    int err = raft_msg_decode(buf, n, &back, s->decode_entries, SIM_DECODE_ENTRIES);
    size_t n2 = err ? 0 : raft_msg_encoded_size(&back);
    u8 *again = err ? NULL : sim_xmalloc(n2);
    if (err || n2 != n || raft_msg_encode(&back, again, n2) != n || memcmp(buf, again, n)) {
        sim_fail(s, "codec", "a %s does not survive encode-decode-encode (decode: %s)",
                 raft_msg_type_str(m->type), raft_err_str(err));
        free(again);
        free(buf);
        return false;
    }
    free(again);
    *bytes = buf;
    *len = (u32)n;
    return true;
}

static u64 net_delay_ms(struct sim *s)
{
    u64 d = sim_range(s, s->rates.delay_ms_min, s->rates.delay_ms_max);
    if (sim_permille(s, s->rates.slow_permille)) d += sim_below(s, 10 * s->rates.delay_ms_max);
    return d ? d : 1;
}

/* Sends bytes (copied) from a member of group on from_node to member `to`. */
void net_send_bytes(struct sim *s, u32 group, u32 from_node, u64 to, const u8 *b, u32 len)
{
    sim_trace_bytes(s, b, len);
    struct sim_member *dst = sim_member_by_id(s, group, to);
    struct sim_net *n = &s->net;
    n->sent++;
    if (!dst || n->blocked[from_node][dst->node] || sim_permille(s, s->rates.loss_permille)) {
        n->dropped++;
        return;
    }
    u32 copies = sim_permille(s, s->rates.dup_permille) ? 2 : 1;
    for (u32 i = 0; i < copies; i++) {
        struct sim_packet p = {.deliver_ms = s->now_ms + net_delay_ms(s),
                               .seq = ++n->seq,
                               .group = group,
                               .to = to,
                               .from_node = from_node,
                               .to_node = dst->node,
                               .len = len};
        p.bytes = sim_xmemdup(b, len);
        heap_push(n, &p);
    }
}

void net_send(struct sim *s, u32 group, u32 from_node, const struct raft_msg *m)
{
    u8 *bytes;
    u32 len;
    if (!net_encode(s, m, &bytes, &len)) return;
    net_send_bytes(s, group, from_node, m->to, bytes, len);
    free(bytes);
}

/* ---- deliver ---------------------------------------------------------------------------- */

static void net_deliver(struct sim *s, struct sim_packet *p)
{
    struct sim_member *m = sim_member_by_id(s, p->group, p->to);
    if (!m || !m->r || m->node != p->to_node || !s->node_up[p->to_node] ||
        s->net.blocked[p->from_node][p->to_node]) {
        s->net.dropped++;
        return;
    }
    struct raft_msg msg;
    int err = raft_msg_decode(p->bytes, p->len, &msg, s->decode_entries, SIM_DECODE_ENTRIES);
    if (err) {
        sim_fail(s, "codec", "raft_msg_decode of %u bytes to member %llu: %s", p->len,
                 (unsigned long long)p->to, raft_err_str(err));
        return;
    }
    if (msg.to != p->to) {
        sim_fail(s, "codec", "decoded `to` %llu, sent to %llu", (unsigned long long)msg.to,
                 (unsigned long long)p->to);
        return;
    }
    s->net.delivered++;
    bool vote_resp = msg.type == RAFT_MSG_VOTE_RESP || msg.type == RAFT_MSG_PREVOTE_RESP;
    if (vote_resp && s->opt.inject == SIM_INJECT_VOTE_GRANT) msg.reject = false;
    if (s->opt.verbose) {
        sim_log(s, "g%u %llu -> %llu %s term %llu index %llu log_term %llu commit %llu n %u%s",
                p->group, (unsigned long long)msg.from, (unsigned long long)msg.to,
                raft_msg_type_str(msg.type), (unsigned long long)msg.term,
                (unsigned long long)msg.index, (unsigned long long)msg.log_term,
                (unsigned long long)msg.commit, msg.entry_count, msg.reject ? " reject" : "");
    }
    raft_step(m->r, &msg);
    member_observe(s, m);
    member_ready_loop(s, m);
}

void net_deliver_due(struct sim *s)
{
    struct sim_net *n = &s->net;
    while (!s->failed && n->count && n->heap[0].deliver_ms <= s->now_ms) {
        struct sim_packet p = heap_pop(n);
        net_deliver(s, &p);
        free(p.bytes);
    }
}

/* ---- partitions ------------------------------------------------------------------------- */

void net_heal(struct sim *s)
{
    if (s->net.partitioned) sim_trace(s, "partition heals");
    memset(s->net.blocked, 0, sizeof s->net.blocked);
    s->net.partitioned = false;
}

static void net_partition_start(struct sim *s)
{
    struct sim_net *n = &s->net;
    u32 kind = (u32)sim_below(s, 3);
    if (kind < 2) { /* symmetric: a split into two sides (kind 1: one node alone) */
        u32 side = 0;
        while (side == 0 || side == (1u << s->nodes) - 1) {
            side = kind == 1 ? 1u << sim_below(s, s->nodes) : (u32)sim_below(s, 1u << s->nodes);
        }
        for (u32 a = 0; a < s->nodes; a++) {
            for (u32 b = 0; b < s->nodes; b++) {
                n->blocked[a][b] = ((side >> a) & 1) != ((side >> b) & 1);
            }
        }
        sim_trace(s, "partition: symmetric, side mask 0x%x", side);
    } else { /* one-way links */
        u32 links = (u32)sim_range(s, 1, s->nodes);
        for (u32 i = 0; i < links; i++) {
            u32 a = (u32)sim_below(s, s->nodes), b = (u32)sim_below(s, s->nodes);
            if (a == b) continue;
            n->blocked[a][b] = true;
            sim_trace(s, "partition: one-way, node %u -> node %u blocked", a, b);
        }
    }
    n->partitioned = true;
    n->heal_ms = s->now_ms + sim_range(s, 50, s->rates.partition_ms_max);
    s->stat_partitions++;
}

void net_partition_step(struct sim *s)
{
    if (s->net.partitioned) {
        if (s->now_ms >= s->net.heal_ms) net_heal(s);
        return;
    }
    if (s->nodes >= 2 && sim_permille(s, s->rates.partition_permille)) net_partition_start(s);
}
