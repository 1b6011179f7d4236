/*
 * test_peer.c — the Raft peer transport (net/peer.h) and the loop ops it added (loop_connect,
 * loop_recv), on 127.0.0.1 only.
 *
 * Three (or four) transports, each on its own loop, all driven from the test thread: every
 * round turns each loop once without waiting, then peer_flush, then peer_tick with the
 * monotonic clock. Messages carry [u64 seq][bytes derived from seq and length], and every
 * receiver checks the bytes and that seqs from each sender arrive in order (exactly +1 where
 * nothing may be lost, strictly increasing where a test drops connections).
 *
 *  - loop_connect_recv: connect to a listener, recv what the server sends; refused connect.
 *  - in_order: a random mesh workload (KEEL_SEED), every message arrives once, in order; again
 *    on loops in the PLAIN fallback mode.
 *  - batching: 100 sends in one turn leave in one write.
 *  - big_message: 4 MiB messages both ways, with small ones before and after.
 *  - restart: one side destroyed mid-traffic and recreated on the same port: the others get
 *    on_unreachable, reconnect after backoff, messages flow again.
 *  - destroy_with_send_in_flight: a 4 MiB send the receiver does not read is in flight when
 *    the sender is destroyed: the destroy drains it, the receiver sees the member go away.
 *  - wrong_cluster: hellos of another cluster are refused both ways; never connected.
 *  - cap_drops: queue_bytes_max reached: drops returned and counted; too-large refused.
 *  - remove_mid_traffic: peer_remove while sending; no on_unreachable; re-add works.
 *  - backoff_fake_time: dials to a refusing port, ticked with a fake clock 1 ms at a time:
 *    the gaps between dials are in [b/2, b] with b doubling from min to max.
 *  - silent_connection_times_out: an inbound connection without a hello is closed once
 *    connect_timeout_ms has passed (not before).
 *  - churn: a seeded random mix (KEEL_SEED) of sends of every size, removals and re-adds,
 *    restarts and garbage connections; seqs stay ordered throughout, and at the end the mesh
 *    reconnects and delivers.
 *  - garbage: a bad hello, a bad frame length after a good hello, and a silent connection
 *    are closed (counted), and only they: the mesh keeps working.
 */
#include "core/buf.h"
#include "net/loop.h"
#include "net/peer.h"

#include "../test_rng.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOCALHOST   0x7f000001u
#define CLUSTER_ID  0xC1C1C1C1ull
#define GROUP_ID    3u
#define NODES_MAX   4
#define DEADLINE_MS 20000.0

/* ---- the harness ----------------------------------------------------------------------------- */

struct node {
    struct loop *loop;
    struct peer_transport *t;
    u64 id;
    u16 port;
    bool strict;                    /* seqs must be exactly +1 (no loss expected) */
    u64 seq_next[NODES_MAX + 1];    /* the next seq this node sends to member j */
    u64 seq_seen[NODES_MAX + 1];    /* the last seq received from member j (0: none) */
    u64 received[NODES_MAX + 1];    /* messages from member j */
    u64 unreachable[NODES_MAX + 1]; /* on_unreachable(j) calls */
    u64 big_received;               /* messages of 1 MiB or more */
    int errors;
};

static struct node nodes[NODES_MAX];
static u32 queue_bytes_max; /* 0: the default */
static u32 loop_flags;      /* LOOP_CONFIG_* of the loops */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static u8 payload_byte(u64 seq, u32 i)
{
    return (u8)(seq * 131 + i * 7 + (i >> 8));
}

static void on_message(void *ctx, u64 from, const u8 *bytes, u32 len)
{
    struct node *n = ctx;
    if (from < 1 || from > NODES_MAX || len < 8) {
        n->errors++;
        return;
    }
    u64 seq = load_u64_le(bytes);
    bool ordered = n->strict ? seq == n->seq_seen[from] + 1 : seq > n->seq_seen[from];
    if (!ordered) {
        fprintf(stderr, "node %llu: from %llu seq %llu after %llu\n", (unsigned long long)n->id,
                (unsigned long long)from, (unsigned long long)seq,
                (unsigned long long)n->seq_seen[from]);
        n->errors++;
    }
    for (u32 i = 8; i < len; i++) {
        if (bytes[i] != payload_byte(seq, i)) {
            n->errors++;
            break;
        }
    }
    n->seq_seen[from] = seq;
    n->received[from]++;
    if (len >= (1u << 20)) n->big_received++;
}

static void on_unreachable(void *ctx, u64 member_id)
{
    struct node *n = ctx;
    if (member_id >= 1 && member_id <= NODES_MAX) n->unreachable[member_id]++;
}

static void config_for(struct peer_config *c, struct node *n, u64 cluster_id)
{
    peer_config_default(c);
    c->member_id = n->id;
    c->cluster_id = cluster_id;
    c->group_id = GROUP_ID;
    c->listen_ipv4 = LOCALHOST;
    c->listen_port = n->port;
    if (queue_bytes_max) c->queue_bytes_max = queue_bytes_max;
    c->backoff_ms_min = 20;
    c->backoff_ms_max = 200;
    c->seed = rng_next();
    c->on_message = on_message;
    c->on_unreachable = on_unreachable;
    c->ctx = n;
}

static void node_start_with(struct node *n, const struct peer_config *c)
{
    if (n->loop == NULL) {
        struct loop_config lc = {.sq_entries = 64, .flags = loop_flags};
        cr_assert_eq(loop_create(&lc, &n->loop), 0);
    }
    int rc = peer_create(n->loop, c, &n->t);
    cr_assert_eq(rc, 0, "peer_create: %s", strerror(-rc));
    n->port = peer_port(n->t);
}

static void node_start(struct node *n, u64 id, u64 cluster_id)
{
    n->id = id;
    struct peer_config c;
    config_for(&c, n, cluster_id);
    node_start_with(n, &c);
}

static void node_stop(struct node *n)
{
    peer_destroy(n->t);
    n->t = NULL;
}

static void nodes_fini(void)
{
    queue_bytes_max = 0;
    loop_flags = 0;
    for (int i = 0; i < NODES_MAX; i++) {
        if (nodes[i].t) node_stop(&nodes[i]);
        if (nodes[i].loop) loop_destroy(nodes[i].loop);
    }
    memset(nodes, 0, sizeof(nodes));
}

static void nodes_turn(int count)
{
    double now = now_ms();
    for (int i = 0; i < count; i++) {
        struct node *n = &nodes[i];
        if (n->t == NULL) continue;
        int rc = loop_run_turn(n->loop, 0);
        cr_assert(rc >= 0, "loop_run_turn: %s", strerror(-rc));
        peer_flush(n->t);
        peer_tick(n->t, (u64)now);
    }
}

/* Turns every node until cond(arg) holds; fails after DEADLINE_MS (a hang, not a speed test). */
static void run_until(int count, bool (*cond)(void *), void *arg, const char *what)
{
    double end = now_ms() + DEADLINE_MS;
    while (!cond(arg)) {
        cr_assert(now_ms() < end, "timed out waiting for %s", what);
        nodes_turn(count);
    }
}

static void run_for(int count, double ms)
{
    double end = now_ms() + ms;
    while (now_ms() < end) nodes_turn(count);
}

static void mesh_add(int count)
{
    for (int i = 0; i < count; i++)
        for (int j = 0; j < count; j++)
            if (i != j)
                cr_assert_eq(peer_add(nodes[i].t, nodes[j].id, LOCALHOST, nodes[j].port), PEER_OK);
}

static int mesh_count;

static bool mesh_connected(void *arg)
{
    (void)arg;
    for (int i = 0; i < mesh_count; i++)
        for (int j = 0; j < mesh_count; j++)
            if (i != j && nodes[i].t && !peer_connected(nodes[i].t, nodes[j].id)) return false;
    return true;
}

static void mesh_start(int count)
{
    for (int i = 0; i < count; i++) {
        node_start(&nodes[i], (u64)i + 1, CLUSTER_ID);
        nodes[i].strict = true;
    }
    mesh_add(count);
    mesh_count = count;
    run_until(count, mesh_connected, NULL, "the mesh to connect");
}

/* Sends one message of len bytes (>= 8) from node i to member to; returns peer_send's result. */
static int send_msg(int i, u64 to, u32 len)
{
    static u8 scratch[(4u << 20) + 64];
    cr_assert(len >= 8 && len <= sizeof(scratch));
    struct node *n = &nodes[i];
    u64 seq = n->seq_next[to] + 1;
    store_u64_le(scratch, seq);
    for (u32 k = 8; k < len; k++) scratch[k] = payload_byte(seq, k);
    int rc = peer_send(n->t, to, scratch, len);
    if (rc == PEER_OK) n->seq_next[to] = seq;
    return rc;
}

struct want {
    int node;
    u64 from;
    u64 count;
};

static bool got_count(void *arg)
{
    const struct want *w = arg;
    return nodes[w->node].received[w->from] >= w->count;
}

static void wait_received(int count, int node, u64 from, u64 want_count)
{
    struct want w = {node, from, want_count};
    run_until(count, got_count, &w, "messages to arrive");
    cr_assert_eq(nodes[node].received[from], want_count);
}

TestSuite(peer, .init = NULL, .fini = nodes_fini);

/* ---- loop_connect and loop_recv -------------------------------------------------------------- */

struct rec {
    struct loop_completion c;
    int res;
    int calls;
};

static void rec_done(struct loop_completion *c, int res, u32 flags)
{
    (void)flags;
    struct rec *r = (struct rec *)(void *)c;
    r->res = res;
    r->calls++;
}

static void rec_wait(struct loop *l, struct rec *r)
{
    double end = now_ms() + DEADLINE_MS;
    while (r->calls == 0 && now_ms() < end) cr_assert(loop_run_turn(l, 50) >= 0);
    cr_assert_eq(r->calls, 1);
}

Test(peer, loop_connect_recv)
{
    struct loop_config lc = {.sq_entries = 16, .flags = 0};
    struct loop *l = NULL;
    cr_assert_eq(loop_create(&lc, &l), 0);
    u16 port = 0;
    int lfd = loop_listen_tcp(LOCALHOST, 0, 4, &port);
    cr_assert(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(LOCALHOST);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct rec r = {.c.done = rec_done};
    cr_assert_eq(loop_connect(l, &r.c, fd, &a, sizeof(a)), 0);
    rec_wait(l, &r);
    cr_assert_eq(r.res, 0, "connect: %s", strerror(-r.res));
    int sfd = accept(lfd, NULL, NULL);
    cr_assert(sfd >= 0);
    cr_assert_eq(send(sfd, "hello", 5, 0), 5);
    char got[16] = {0};
    r.calls = 0;
    cr_assert_eq(loop_recv(l, &r.c, fd, got, sizeof(got)), 0);
    rec_wait(l, &r);
    cr_assert_eq(r.res, 5);
    cr_assert_str_eq(got, "hello");
    close(sfd); /* end of stream: the next recv gets 0 */
    r.calls = 0;
    cr_assert_eq(loop_recv(l, &r.c, fd, got, sizeof(got)), 0);
    rec_wait(l, &r);
    cr_assert_eq(r.res, 0);
    close(fd);
    close(lfd); /* nobody listens on port any more: refused */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    r.calls = 0;
    cr_assert_eq(loop_connect(l, &r.c, fd, &a, sizeof(a)), 0);
    rec_wait(l, &r);
    cr_assert_eq(r.res, -ECONNREFUSED, "got %d", r.res);
    close(fd);
    loop_destroy(l);
}

/* ---- delivery -------------------------------------------------------------------------------- */

static void in_order(void)
{
    mesh_start(3);
    u64 sent[NODES_MAX][NODES_MAX + 1] = {{0}};
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) {
                if (i == j) continue;
                if (peer_queued_bytes(nodes[i].t, (u64)j + 1) > (2u << 20)) continue;
                u32 k = (u32)rng_below(8);
                for (u32 m = 0; m < k; m++) {
                    u32 len = 8 + (u32)rng_below(rng_below(20) == 0 ? 100000 : 3000);
                    cr_assert_eq(send_msg(i, (u64)j + 1, len), PEER_OK);
                    sent[i][j + 1]++;
                }
            }
        }
        nodes_turn(3);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j) wait_received(3, j, (u64)i + 1, sent[i][j + 1]);
    for (int i = 0; i < 3; i++) {
        struct peer_stats s = peer_stats(nodes[i].t);
        cr_assert_eq(nodes[i].errors, 0);
        cr_assert_eq(s.messages_dropped, 0);
        cr_assert_eq(s.refused_handshakes, 0);
        cr_assert_eq(s.protocol_errors, 0);
        cr_assert_eq(s.connects, 2);
        cr_assert_eq(s.messages_sent, sent[i][1] + sent[i][2] + sent[i][3]);
    }
}

Test(peer, in_order)
{
    rng_seed("peer.in_order");
    in_order();
}

/* The same on loops without task-running flags (completions posted from the kernel's side). */
Test(peer, in_order_plain_loop)
{
    rng_seed("peer.in_order_plain_loop");
    loop_flags = LOOP_CONFIG_NO_DEFER_TASKRUN | LOOP_CONFIG_NO_COOP_TASKRUN;
    in_order();
    cr_assert_eq(loop_mode(nodes[0].loop), LOOP_MODE_PLAIN);
}

Test(peer, batching)
{
    rng_seed("peer.batching");
    mesh_start(3);
    struct peer_stats before = peer_stats(nodes[0].t);
    for (int m = 0; m < 100; m++) cr_assert_eq(send_msg(0, 2, 100), PEER_OK);
    cr_assert_eq(peer_queued_bytes(nodes[0].t, 2), 100u * (100 + PEER_FRAME_HEADER_SIZE));
    peer_flush(nodes[0].t);
    struct peer_stats mid = peer_stats(nodes[0].t);
    cr_assert_eq(mid.writes - before.writes, 1, "one write for the turn's 100 messages");
    /* queued while the send is in flight: the next flush sends them in one more write */
    for (int m = 0; m < 10; m++) cr_assert_eq(send_msg(0, 2, 100), PEER_OK);
    wait_received(3, 1, 1, 110);
    struct peer_stats after = peer_stats(nodes[0].t);
    cr_assert_eq(after.writes - before.writes, 2);
    cr_assert_eq(after.short_writes, before.short_writes);
    cr_assert_eq(after.messages_written - before.messages_written, 110);
    cr_assert_eq(nodes[1].errors, 0);
}

Test(peer, big_message)
{
    rng_seed("peer.big_message");
    queue_bytes_max = 16u << 20; /* two 4 MiB messages and the small ones */
    mesh_start(3);
    const u32 big = 4u << 20;
    cr_assert_eq(send_msg(0, 2, 50), PEER_OK);
    cr_assert_eq(send_msg(0, 2, big), PEER_OK);
    cr_assert_eq(send_msg(0, 2, 70000), PEER_OK); /* larger than the stage too */
    cr_assert_eq(send_msg(0, 2, 9), PEER_OK);
    cr_assert_eq(send_msg(1, 1, big), PEER_OK);
    nodes_turn(3);
    cr_assert_eq(send_msg(0, 2, big), PEER_OK); /* queued behind the one in flight */
    cr_assert_eq(send_msg(0, 2, 30), PEER_OK);
    wait_received(3, 1, 1, 6);
    wait_received(3, 0, 2, 1);
    cr_assert_eq(nodes[1].big_received, 2);
    cr_assert_eq(nodes[0].big_received, 1);
    cr_assert_eq(nodes[0].errors + nodes[1].errors, 0);
    struct peer_stats s = peer_stats(nodes[1].t);
    cr_assert_eq(s.protocol_errors, 0);
    cr_assert(s.bytes_received >= 2ull * big + 70000);
}

/* ---- failures -------------------------------------------------------------------------------- */

static bool unreachable_seen(void *arg)
{
    (void)arg;
    return nodes[0].unreachable[2] > 0 && nodes[2].unreachable[2] > 0;
}

Test(peer, restart)
{
    rng_seed("peer.restart");
    mesh_start(3);
    for (int i = 0; i < 3; i++) nodes[i].strict = false; /* the restart loses messages */
    for (int m = 0; m < 20; m++) {
        send_msg(0, 2, 1000);
        send_msg(2, 2, 200000);
        nodes_turn(3);
    }
    u16 port = nodes[1].port;
    node_stop(&nodes[1]); /* ops in flight: destroy cancels and drains them */
    run_until(3, unreachable_seen, NULL, "on_unreachable at both peers");
    cr_assert(!peer_connected(nodes[0].t, 2));
    cr_assert_eq(send_msg(0, 2, 100), PEER_ENOTCONN);
    run_for(3, 100); /* failed dials while it is away: backoff */
    memset(nodes[1].seq_seen, 0, sizeof(nodes[1].seq_seen));
    memset(nodes[1].received, 0, sizeof(nodes[1].received));
    nodes[1].port = port;
    node_start(&nodes[1], 2, CLUSTER_ID);
    cr_assert_eq(nodes[1].port, port);
    cr_assert_eq(peer_add(nodes[1].t, 1, LOCALHOST, nodes[0].port), PEER_OK);
    cr_assert_eq(peer_add(nodes[1].t, 3, LOCALHOST, nodes[2].port), PEER_OK);
    run_until(3, mesh_connected, NULL, "reconnect after the restart");
    u64 base = nodes[0].received[2];
    for (int m = 0; m < 10; m++) {
        cr_assert_eq(send_msg(0, 2, 500), PEER_OK);
        cr_assert_eq(send_msg(1, 1, 500), PEER_OK);
        nodes_turn(3);
    }
    wait_received(3, 1, 1, 10);
    struct want w = {0, 2, base + 10};
    run_until(3, got_count, &w, "messages from the restarted member");
    struct peer_stats s = peer_stats(nodes[0].t);
    cr_assert(s.reconnects >= 1);
    cr_assert(s.dials > s.connects, "dials while the member was away");
    cr_assert(s.unreachable >= 1);
    cr_assert_eq(nodes[0].errors + nodes[1].errors + nodes[2].errors, 0);
}

static bool lost_member_1(void *arg)
{
    (void)arg;
    return nodes[1].unreachable[1] > 0;
}

Test(peer, destroy_with_send_in_flight)
{
    rng_seed("peer.destroy_with_send_in_flight");
    mesh_start(2);
    cr_assert_eq(send_msg(0, 2, 4u << 20), PEER_OK);
    peer_flush(nodes[0].t);
    for (int i = 0; i < 10; i++) cr_assert(loop_run_turn(nodes[0].loop, 1) >= 0); /* A only */
    cr_assert(peer_queued_bytes(nodes[0].t, 2) > 0, "the send waits for the reader");
    node_stop(&nodes[0]);
    run_until(2, lost_member_1, NULL, "the other side to see the member go");
    cr_assert(!peer_connected(nodes[1].t, 1));
    cr_assert_eq(nodes[1].received[1], 0);
}

static bool refused_both(void *arg)
{
    (void)arg;
    return peer_stats(nodes[0].t).refused_handshakes >= 2 &&
           peer_stats(nodes[3].t).refused_handshakes >= 2;
}

Test(peer, wrong_cluster)
{
    rng_seed("peer.wrong_cluster");
    mesh_start(3);
    node_start(&nodes[3], 4, CLUSTER_ID + 1);
    cr_assert_eq(peer_add(nodes[0].t, 4, LOCALHOST, nodes[3].port), PEER_OK);
    cr_assert_eq(peer_add(nodes[3].t, 1, LOCALHOST, nodes[0].port), PEER_OK);
    run_until(4, refused_both, NULL, "refused hellos on both sides");
    run_for(4, 100);
    cr_assert(!peer_connected(nodes[0].t, 4));
    cr_assert(!peer_connected(nodes[3].t, 1));
    cr_assert(nodes[0].unreachable[4] >= 1);
    cr_assert(nodes[3].unreachable[1] >= 1);
    cr_assert_eq(send_msg(3, 1, 100), PEER_ENOTCONN);
    cr_assert_eq(nodes[0].received[4], 0);
    cr_assert_eq(peer_stats(nodes[3].t).connects, 0);
    cr_assert(mesh_connected(NULL)); /* the others are unaffected */
}

Test(peer, cap_drops)
{
    rng_seed("peer.cap_drops");
    for (int i = 0; i < 2; i++) {
        struct peer_config c;
        nodes[i].id = (u64)i + 1;
        nodes[i].strict = true;
        config_for(&c, &nodes[i], CLUSTER_ID);
        c.queue_bytes_max = 64u << 10;
        c.message_size_max = 16u << 10;
        node_start_with(&nodes[i], &c);
    }
    mesh_add(2);
    mesh_count = 2;
    run_until(2, mesh_connected, NULL, "connect");
    int ok = 0;
    int full = 0;
    for (int m = 0; m < 100; m++) {
        int rc = send_msg(0, 2, 1024);
        if (rc == PEER_OK) ok++;
        if (rc == PEER_EFULL) full++;
    }
    cr_assert_eq(ok, (64 << 10) / (1024 + PEER_FRAME_HEADER_SIZE));
    cr_assert_eq(ok + full, 100);
    struct peer_stats s = peer_stats(nodes[0].t);
    cr_assert_eq(s.drops_full, (u64)full);
    cr_assert_eq(s.messages_dropped, (u64)full);
    cr_assert_eq(send_msg(0, 2, (16u << 10) + 1), PEER_ETOO_LARGE);
    cr_assert_eq(peer_send(nodes[0].t, 7, (const u8 *)"12345678", 8), PEER_EUNKNOWN);
    s = peer_stats(nodes[0].t);
    cr_assert_eq(s.messages_dropped, (u64)full + 2);
    cr_assert_eq(s.drops_unconnected, 1);
    wait_received(2, 1, 1, (u64)ok);
    cr_assert_eq(nodes[1].errors, 0);
    run_for(2, 20); /* the sender reaps its send's completion */
    cr_assert_eq(send_msg(0, 2, 1024), PEER_OK, "room again once sent");
}

static bool removed_drained(void *arg)
{
    (void)arg;
    return peer_add(nodes[0].t, 2, LOCALHOST, nodes[1].port) == PEER_OK;
}

Test(peer, remove_mid_traffic)
{
    rng_seed("peer.remove_mid_traffic");
    mesh_start(3);
    nodes[1].strict = false; /* messages queued at the removal are dropped */
    for (int m = 0; m < 30; m++) {
        cr_assert_eq(send_msg(0, 2, 30000), PEER_OK);
        cr_assert_eq(send_msg(0, 3, 100), PEER_OK);
        nodes_turn(3);
    }
    cr_assert_eq(send_msg(0, 2, 30000), PEER_OK);
    peer_flush(nodes[0].t); /* a send in flight at the removal */
    cr_assert_eq(peer_remove(nodes[0].t, 2), PEER_OK);
    cr_assert_eq(peer_remove(nodes[0].t, 2), PEER_EUNKNOWN);
    cr_assert(!peer_connected(nodes[0].t, 2));
    cr_assert_eq(send_msg(0, 2, 100), PEER_EUNKNOWN);
    cr_assert_eq(send_msg(0, 3, 100), PEER_OK);
    wait_received(3, 2, 1, 31);
    run_until(3, removed_drained, NULL, "the removed slot to drain and the member re-added");
    cr_assert_eq(nodes[0].unreachable[2], 0, "a removal is not a failure");
    run_until(3, mesh_connected, NULL, "the re-added member to connect");
    u64 before = nodes[1].received[1];
    cr_assert_eq(send_msg(0, 2, 100), PEER_OK);
    wait_received(3, 1, 1, before + 1);
    cr_assert_eq(nodes[0].errors + nodes[1].errors + nodes[2].errors, 0);
}

/* ---- garbage on the peer port ---------------------------------------------------------------- */

static int raw_connect(u16 port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(LOCALHOST);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

struct raw_wait {
    int fd;
    u8 got[64];
    u32 len;
    u32 len_want; /* raw_got: until this many bytes */
    bool eof;
};

static void raw_read(struct raw_wait *r)
{
    ssize_t k = recv(r->fd, r->got + r->len, sizeof(r->got) - r->len, MSG_DONTWAIT);
    if (k > 0) r->len += (u32)k;
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) r->eof = true;
}

static bool raw_got(void *arg)
{
    struct raw_wait *r = arg;
    raw_read(r);
    return r->len >= r->len_want || r->eof;
}

static bool raw_eof(void *arg)
{
    struct raw_wait *r = arg;
    raw_read(r);
    return r->eof;
}

static void hello_make(u8 *h, u64 sender, u64 target)
{
    memcpy(h, "KEELPEER", 8);
    h[8] = PEER_VERSION;
    h[9] = 0;
    h[10] = h[11] = 0;
    store_u32_le(h + 12, GROUP_ID);
    store_u64_le(h + 16, CLUSTER_ID);
    store_u64_le(h + 24, sender);
    store_u64_le(h + 32, target);
}

Test(peer, garbage)
{
    rng_seed("peer.garbage");
    mesh_start(3);
    /* a bad hello */
    struct raw_wait r = {.fd = raw_connect(nodes[0].port)};
    u8 junk[PEER_HELLO_SIZE];
    for (u32 i = 0; i < sizeof(junk); i++) junk[i] = (u8)rng_next();
    cr_assert_eq(send(r.fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    run_until(3, raw_eof, &r, "the bad hello's connection to close");
    cr_assert_eq(r.len, 0, "a refused hello gets no answer");
    cr_assert_eq(peer_stats(nodes[0].t).refused_handshakes, 1);
    close(r.fd);
    /* a good hello, then a frame length past message_size_max */
    r = (struct raw_wait){.fd = raw_connect(nodes[0].port)};
    u8 hello[PEER_HELLO_SIZE];
    hello_make(hello, 4, 1);
    cr_assert_eq(send(r.fd, hello, sizeof(hello), 0), (ssize_t)sizeof(hello));
    r.len_want = PEER_HELLO_SIZE;
    run_until(3, raw_got, &r, "the hello's answer");
    cr_assert_eq(r.len, PEER_HELLO_SIZE, "the hello was answered");
    u8 want[PEER_HELLO_SIZE];
    hello_make(want, 1, 4);
    cr_assert_eq(memcmp(r.got, want, PEER_HELLO_SIZE), 0);
    u8 bad_len[4];
    store_u32_le(bad_len, 0xFFFFFFF0u);
    cr_assert_eq(send(r.fd, bad_len, sizeof(bad_len), 0), (ssize_t)sizeof(bad_len));
    run_until(3, raw_eof, &r, "the bad frame's connection to close");
    cr_assert_eq(r.len, PEER_HELLO_SIZE);
    cr_assert_eq(peer_stats(nodes[0].t).protocol_errors, 1);
    close(r.fd);
    /* the mesh still works */
    cr_assert(mesh_connected(NULL));
    cr_assert_eq(send_msg(1, 1, 100), PEER_OK);
    cr_assert_eq(send_msg(0, 3, 100), PEER_OK);
    wait_received(3, 0, 2, 1);
    wait_received(3, 2, 1, 1);
    cr_assert_eq(nodes[0].errors, 0);
    cr_assert_eq(nodes[0].received[4], 0);
}

Test(peer, silent_connection_times_out)
{
    rng_seed("peer.silent");
    nodes[0].id = 1;
    struct peer_config c;
    config_for(&c, &nodes[0], CLUSTER_ID);
    c.connect_timeout_ms = 50;
    node_start_with(&nodes[0], &c);
    double start_ms = now_ms();
    struct raw_wait r = {.fd = raw_connect(nodes[0].port)};
    run_until(1, raw_eof, &r, "the silent connection to time out");
    cr_assert(now_ms() - start_ms >= 49.0, "closed before connect_timeout_ms (1 ms ticks)");
    cr_assert_eq(peer_stats(nodes[0].t).refused_handshakes, 1);
    cr_assert_eq(peer_stats(nodes[0].t).accepts, 1);
    close(r.fd);
}

Test(peer, backoff_fake_time)
{
    rng_seed("peer.backoff_fake_time");
    nodes[0].id = 1;
    struct peer_config c;
    config_for(&c, &nodes[0], CLUSTER_ID);
    c.backoff_ms_min = 20;
    c.backoff_ms_max = 80;
    node_start_with(&nodes[0], &c);
    struct peer_transport *t = nodes[0].t;
    u16 closed_port = 0;
    int lfd = loop_listen_tcp(LOCALHOST, 0, 1, &closed_port);
    cr_assert(lfd >= 0);
    close(lfd); /* nobody listens there now: every dial is refused */
    cr_assert_eq(peer_add(t, 2, LOCALHOST, closed_port), PEER_OK);
    const u64 bounds[6] = {0, 20, 40, 80, 80, 80}; /* b before each gap; the first dial: now */
    u64 fake_ms = 1000;
    u64 last_dial_ms = fake_ms;
    for (int attempt = 0; attempt < 6; attempt++) {
        u64 dials = peer_stats(t).dials;
        while (peer_stats(t).dials == dials) {
            fake_ms++;
            peer_tick(t, fake_ms);
            cr_assert(fake_ms - last_dial_ms <= 1000, "no dial");
        }
        u64 gap = fake_ms - last_dial_ms;
        if (attempt == 0) cr_assert_eq(gap, 1, "the first tick after peer_add dials");
        if (attempt > 0) {
            u64 b = bounds[attempt];
            cr_assert(gap >= (b + 1) / 2 && gap <= b, "gap %llu outside [%llu, %llu]",
                      (unsigned long long)gap, (unsigned long long)(b + 1) / 2,
                      (unsigned long long)b);
        }
        last_dial_ms = fake_ms;
        u64 unreachable = nodes[0].unreachable[2];
        double end = now_ms() + DEADLINE_MS;
        while (nodes[0].unreachable[2] == unreachable) { /* the refusal, without ticking */
            cr_assert(now_ms() < end, "the dial did not fail");
            cr_assert(loop_run_turn(nodes[0].loop, 10) >= 0);
        }
    }
    cr_assert_eq(peer_stats(t).connects, 0);
    cr_assert_eq(peer_stats(t).unreachable, 6);
}

/* ---- churn ----------------------------------------------------------------------------------- */

static bool in_table[NODES_MAX][NODES_MAX];

static void churn_restart(int i)
{
    u16 port = nodes[i].port;
    node_stop(&nodes[i]);
    node_start(&nodes[i], (u64)i + 1, CLUSTER_ID);
    cr_assert_eq(nodes[i].port, port);
    for (int j = 0; j < 3; j++) {
        in_table[i][j] = i != j;
        if (i != j) cr_assert_eq(peer_add(nodes[i].t, (u64)j + 1, LOCALHOST, nodes[j].port), 0);
    }
}

static void churn_garbage(int i)
{
    int fd = raw_connect(nodes[i].port);
    u8 junk[100];
    for (u32 k = 0; k < sizeof(junk); k++) junk[k] = (u8)rng_next();
    size_t len = 1 + rng_below(sizeof(junk));
    if (rng_below(2) == 0) hello_make(junk, 4, (u64)i + 1); /* a good hello, then junk */
    (void)send(fd, junk, len, MSG_NOSIGNAL);
    close(fd);
}

static void churn_step(void)
{
    int i = (int)rng_below(3);
    int j = (int)((i + 1 + (int)rng_below(2)) % 3);
    u64 action = rng_below(100);
    if (action < 70) {
        for (u64 m = rng_below(20); m > 0; m--) {
            u32 len = 8 + (u32)rng_below(rng_below(50) == 0 ? (3u << 20) : 20000);
            int rc = send_msg(i, (u64)j + 1, len);
            cr_assert(rc == PEER_OK || rc == PEER_ENOTCONN || rc == PEER_EFULL ||
                          (rc == PEER_EUNKNOWN && !in_table[i][j]),
                      "send: %s", peer_err_str(rc));
        }
    } else if (action < 78) {
        int rc = in_table[i][j] ? peer_remove(nodes[i].t, (u64)j + 1)
                                : peer_add(nodes[i].t, (u64)j + 1, LOCALHOST, nodes[j].port);
        cr_assert_eq(rc, PEER_OK, "%s", peer_err_str(rc));
        in_table[i][j] = !in_table[i][j];
    } else if (action < 81) {
        churn_restart(i);
    } else if (action < 86) {
        churn_garbage(i);
    }
    for (u64 turns = 1 + rng_below(5); turns > 0; turns--) nodes_turn(3);
}

Test(peer, churn)
{
    rng_seed("peer.churn");
    mesh_start(3);
    for (int i = 0; i < 3; i++) {
        nodes[i].strict = false; /* failures drop what was queued */
        for (int j = 0; j < 3; j++) in_table[i][j] = i != j;
    }
    for (int step = 0; step < 400; step++) churn_step();
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j && !in_table[i][j])
                cr_assert_eq(peer_add(nodes[i].t, (u64)j + 1, LOCALHOST, nodes[j].port), 0);
    run_until(3, mesh_connected, NULL, "the mesh to reconnect after the churn");
    u64 before[NODES_MAX][NODES_MAX + 1] = {{0}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) before[j][i + 1] = nodes[j].received[i + 1];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j) cr_assert_eq(send_msg(i, (u64)j + 1, 64), PEER_OK);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            if (i == j) continue;
            struct want w = {j, (u64)i + 1, before[j][i + 1] + 1};
            run_until(3, got_count, &w, "a message on every pair after the churn");
        }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(nodes[i].errors, 0);
        struct peer_stats st = peer_stats(nodes[i].t);
        fprintf(stderr, "churn node %d: dials %llu connects %llu refused %llu dropped %llu\n", i,
                (unsigned long long)st.dials, (unsigned long long)st.connects,
                (unsigned long long)st.refused_handshakes, (unsigned long long)st.messages_dropped);
    }
}
