/*
 * keel_route.c — leader routing of a shard-aware client with several endpoints (keel.h,
 * "Routing"): each shard's connection goes to the shard port of the node that leads it.
 *
 * Where a shard goes: the map's leader_id; the endpoint whose HELLO named that member id
 * (the endpoints not yet known are probed with one HELLO each, once); that endpoint's
 * client port + 1 + shard. The router node's own leaderships use the map's port. When the
 * leader is unknown, unmapped or unreachable: the router node's shard port (the map's port).
 *
 * When a shard moves: a NOT_LEADER or LEADER_CHANGED reply on its connection names another
 * leader (detail); a reply on it comes from another member than the one its HELLO named (a
 * follower forwarded the request and relays the leader's reply, header.member_id = the
 * leader); or a new shard map names another leader. The route is marked moving; it changes only
 * once its connection has no request in flight, so requests pending there complete (or fail with
 * their own status) first, and requests of one shard never run on two connections at once. Nothing
 * is re-sent here: keel_follow.c re-sends a sync request told NOT_LEADER. A NOT_LEADER reply also
 * refreshes the map (at most every KEEL_MAP_REFRESH_MS), in keel_poll without blocking
 * (keel_map_poll) or in the next sync call.
 */
#include "client/keel_int.h"
#include "core/assert.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEEL_MAP_REFRESH_MS 500 /* async SHARD_MAP refreshes at most this often */

static i64 route_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (i64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool keel_leader_routing(const keel_client *c)
{
    return c->opt.shard_aware && c->eps_len >= 2;
}

int keel_shard_routes(const keel_client *c, int *to_leader)
{
    int n = 0, leaders = 0;
    for (u16 i = 0; c != NULL && i < c->routes_len; i++) {
        const struct keel_route *r = &c->routes[i];
        if (r->conn == 0 || c->conns[r->conn].fd < 0) continue;
        n++;
        leaders += r->on_leader && !r->moving;
    }
    if (to_leader != NULL) *to_leader = leaders;
    return n;
}

uint64_t keel_shard_moves(const keel_client *c)
{
    return c == NULL ? 0 : c->shard_moves;
}

/* The endpoint whose HELLO named member id, probing the endpoints not yet known (each
 * once); -1 when none. */
static int endpoint_of_member(keel_client *c, u64 id)
{
    ASSERT(id != 0);
    for (u16 e = 0; e < c->eps_len; e++)
        if (c->eps[e].member_id == id) return e;
    for (u16 e = 0; e < c->eps_len; e++) { /* bounded: eps_len probes, one HELLO each */
        if (c->eps[e].member_id != 0 || c->eps[e].probed) continue;
        c->eps[e].probed = true;
        u16 k = keel_conn_for(c, c->eps[e].host_be, c->eps[e].port);
        if (k == 0) continue;
        u64 named = c->conns[k].member_id;
        keel_conn_close_idle(c, k);
        if (named == id) return e;
    }
    return -1;
}

/* Where route r should connect: *host:*port, and the member expected there (0: none). */
static u64 route_target(keel_client *c, const struct keel_route *r, u32 *host, u16 *port)
{
    *host = c->host_be;
    *port = r->port;
    if (!keel_leader_routing(c) || r->leader_id == 0) return 0;
    if (r->leader_id == c->info.member_id) return r->leader_id;
    int e = endpoint_of_member(c, r->leader_id);
    if (e < 0) return 0;
    u32 p = (u32)c->eps[e].port + 1 + r->shard_id;
    if (p > 65535) return 0;
    *host = c->eps[e].host_be;
    *port = (u16)p;
    return r->leader_id;
}

static bool conn_used(const keel_client *c, u16 k)
{
    for (u16 i = 0; i < c->routes_len; i++)
        if (c->routes[i].conn == k) return true;
    return false;
}

/* Gives route ri its connection now (its old one has nothing in flight). */
static void route_place(keel_client *c, u16 ri)
{
    struct keel_route *r = &c->routes[ri];
    u16 old = r->conn;
    ASSERT(old == 0 || c->conns[old].in_flight == 0);
    u32 host;
    u16 port;
    u64 want = route_target(c, r, &host, &port);
    u16 k = keel_conn_for(c, host, port);
    if (k == 0 && want != 0) k = keel_conn_for(c, c->host_be, r->port); /* leader down */
    r->conn = k;
    r->moving = false;
    r->on_leader = want != 0 && k != 0 && c->conns[k].member_id == want;
    if (old != 0 && k != 0 && c->conns[old].port != c->conns[k].port) c->shard_moves++;
    if (old != 0 && old != k && !conn_used(c, old)) keel_conn_close_idle(c, old);
}

void keel_routes_settle(keel_client *c)
{
    if (!c->routes_moving || c->settling || c->dispatching > 0) return;
    c->settling = true;
    bool left = false;
    for (u16 i = 0; i < c->routes_len; i++) {
        struct keel_route *r = &c->routes[i];
        if (!r->moving) continue;
        if (r->conn != 0 && c->conns[r->conn].fd >= 0 && c->conns[r->conn].in_flight > 0) {
            left = true; /* drains first */
            continue;
        }
        route_place(c, i);
    }
    for (u16 k = 1; k < c->conns_len; k++) /* connections left by a new map, now drained */
        if (c->conns[k].fd >= 0 && c->conns[k].in_flight == 0 && !conn_used(c, k))
            keel_conn_close_idle(c, k);
    c->routes_moving = left;
    c->settling = false;
}

void keel_route_hint(keel_client *c, u16 conn, int status, u64 detail, u64 replier)
{
    if (!keel_leader_routing(c)) return;
    u64 leader = 0;
    if (status == KEEL_STATUS_NOT_LEADER || status == KEEL_STATUS_LEADER_CHANGED) {
        leader = detail;
        if (status == KEEL_STATUS_NOT_LEADER &&
            route_now_ms() - c->map_async_ms >= KEEL_MAP_REFRESH_MS)
            c->map_stale = true; /* the periodic map refresh */
    } else if (conn != 0 && replier != 0 && c->conns[conn].member_id != 0 &&
               replier != c->conns[conn].member_id) {
        leader = replier; /* forwarded: a follower relays its leader's reply as it is */
    }
    if (conn == 0 || leader == 0) return;
    for (u16 i = 0; i < c->routes_len; i++) {
        struct keel_route *r = &c->routes[i];
        if (r->conn != conn || r->leader_id == leader) continue;
        r->leader_id = leader;
        r->moving = true;
        c->routes_moving = true;
        c->route_marks++;
    }
}

static bool key_eq(const u8 *a, size_t al, const u8 *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* The map's leaders into the routes when its shards are the ones routed; false when not. */
static bool map_apply_leaders(keel_client *c, const struct keel_shard_map_result *m)
{
    if (m->shards_len != c->routes_len) return false;
    for (u16 i = 0; i < c->routes_len; i++) {
        const struct keel_route *r = &c->routes[i];
        const struct keel_shard_range *s = &m->shards[i];
        if (s->shard_id != r->shard_id || s->port != r->port ||
            !key_eq(s->start_key, s->start_key_len, r->start_key, r->start_len) ||
            !key_eq(s->end_key, s->end_key_len, r->end_key, r->end_len))
            return false;
    }
    for (u16 i = 0; i < c->routes_len; i++) {
        struct keel_route *r = &c->routes[i];
        u64 leader = m->shards[i].leader_id;
        if (leader == r->leader_id || leader == 0) continue;
        r->leader_id = leader;
        r->moving = true;
        c->routes_moving = true;
    }
    c->info.shard_map_version = m->version;
    return true;
}

static void map_async_done(void *ctx, uint64_t id, int status, const struct keel_result *res)
{
    (void)id;
    keel_client *c = ctx;
    ASSERT(c->map_inflight);
    c->map_inflight = false;
    /* A map of other shards waits for the next sync call's full refresh (map_stale kept). */
    if (status == KEEL_STATUS_OK && map_apply_leaders(c, &res->u.shard_map)) c->map_stale = false;
}

void keel_map_poll(keel_client *c)
{
    if (!keel_leader_routing(c) || !c->map_stale || c->map_inflight || c->routes_len == 0) return;
    i64 now = route_now_ms();
    if (now - c->map_async_ms < KEEL_MAP_REFRESH_MS) return;
    if (keel_submit_on(c, 0, CODEC_OP_SHARD_MAP, NULL, map_async_done, c) != 0) return;
    c->map_inflight = true;
    c->map_async_ms = now;
}

/* The routes of map m (copied). A shard already routed keeps its connection unless its port
 * or leader changed; the others are left moving, for keel_routes_settle. */
int keel_routes_install(keel_client *c, const struct keel_shard_map_result *m)
{
    struct keel_route *nr = calloc(m->shards_len ? m->shards_len : 1, sizeof(*nr));
    if (nr == NULL) return KEEL_STATUS_NO_MEMORY;
    for (size_t i = 0; i < m->shards_len; i++) {
        struct keel_route *r = &nr[i];
        const struct keel_shard_range *s = &m->shards[i];
        *r = (struct keel_route){.shard_id = s->shard_id, .port = s->port, .moving = true};
        r->leader_id = s->leader_id;
        r->start_key = keel_mem_dup(s->start_key, s->start_key_len);
        r->start_len = s->start_key_len;
        r->end_key = keel_mem_dup(s->end_key, s->end_key_len);
        r->end_len = s->end_key_len;
        for (u16 k = 0; k < c->routes_len; k++) { /* a shard routed already stays put */
            const struct keel_route *o = &c->routes[k];
            if (o->shard_id != s->shard_id) continue;
            r->conn = o->conn;
            r->on_leader = o->on_leader;
            r->moving = o->moving || o->port != r->port || o->leader_id != r->leader_id;
        }
    }
    u16 old_len = c->routes_len;
    struct keel_route *old = c->routes;
    c->routes = nr;
    c->routes_len = (u16)m->shards_len;
    for (u16 k = 0; k < old_len; k++) {
        free(old[k].start_key);
        free(old[k].end_key);
        if (old[k].conn != 0 && !conn_used(c, old[k].conn) && c->conns[old[k].conn].in_flight == 0)
            keel_conn_close_idle(c, old[k].conn);
    }
    free(old);
    c->info.shard_map_version = m->version;
    for (u16 i = 0; i < c->routes_len; i++) c->routes_moving |= c->routes[i].moving;
    return 0;
}
