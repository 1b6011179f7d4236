/*
 * keel_follow.c — libkeel's sync calls against a cluster of several endpoints: following
 * NOT_LEADER to the member its detail names, re-sending idempotent reads on another
 * endpoint after UNAVAILABLE or a lost connection, and reconnecting a lost client first.
 * keel.h states the contract; keel.c owns the connections (keel_move moves them all).
 *
 * Finding a member's endpoint, cheapest first: an endpoint whose HELLO named that member
 * id; the member list cache (client URLs of the last MEMBER_LIST); a fresh MEMBER_LIST when
 * the server granted the MEMBER feature; last, the HELLOs of the endpoints not tried yet.
 * Every loop here is bounded: by redirects_max and retries_max per call, by eps_len
 * endpoints per move, by members_max members per list.
 */
#include "client/keel_int.h"
#include "core/assert.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FOLLOW_REDIRECTS_DEF 3
#define FOLLOW_RETRIES_DEF   3
#define FOLLOW_BACKOFF_DEF   50   /* ms before the first re-send */
#define FOLLOW_BACKOFF_MAX   2000 /* ms: doubling stops here */

/* ---- addresses ----------------------------------------------------------------------------- */

int keel_addr_parse(const char *s, size_t len, u32 *host_be, u16 *port)
{
    ASSERT(host_be != NULL && port != NULL);
    if (s == NULL) return KEEL_STATUS_ARG;
    const char *end = s + len;
    const char *scheme = NULL;
    for (const char *p = s; p + 2 < end; p++)
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            scheme = p;
            break;
        }
    if (scheme != NULL) s = scheme + 3;
    const char *slash = memchr(s, '/', (size_t)(end - s));
    if (slash != NULL) end = slash;
    const char *colon = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == ':') colon = p;
    if (colon == NULL || colon == s || end - colon < 2 || end - colon > 6) return KEEL_STATUS_ARG;
    char host[INET_ADDRSTRLEN];
    if ((size_t)(colon - s) >= sizeof(host)) return KEEL_STATUS_ARG;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    unsigned long n = 0;
    for (const char *p = colon + 1; p < end; p++) {
        if (*p < '0' || *p > '9') return KEEL_STATUS_ARG;
        n = n * 10 + (unsigned long)(*p - '0');
    }
    struct in_addr a;
    if (n == 0 || n > 65535 || inet_pton(AF_INET, host, &a) != 1) return KEEL_STATUS_ARG;
    *host_be = a.s_addr;
    *port = (u16)n;
    return 0;
}

/* ---- the member list cache --------------------------------------------------------------- */

static void cache_update(keel_client *c, const struct keel_members_result *m)
{
    struct keel_member_addr *a = calloc(m->members_len ? m->members_len : 1, sizeof(*a));
    if (a == NULL) return; /* the cache is an optimisation: keep the old one */
    u16 n = 0;
    for (size_t i = 0; i < m->members_len && i < CODEC_MEMBERS_MAX; i++) {
        const struct keel_member *x = &m->members[i];
        for (size_t u = 0; u < x->client_urls_len; u++) {
            const struct keel_str *s = &x->client_urls[u];
            if (keel_addr_parse(s->ptr, s->len, &a[n].host_be, &a[n].port) != 0) continue;
            a[n++].id = x->id;
            break;
        }
    }
    free(c->members);
    c->members = a;
    c->members_len = n;
}

static const struct keel_member_addr *cache_find(const keel_client *c, u64 id)
{
    for (u16 i = 0; i < c->members_len; i++)
        if (c->members[i].id == id) return &c->members[i];
    return NULL;
}

/* MEMBER_LIST on the current member, without following; refreshes the cache. */
static void cache_refresh(keel_client *c)
{
    static const bool local = false;
    struct keel_result res;
    if (c->conns_len == 0 || c->conns[0].fd < 0) return;
    if (keel_sync_call(c, 0, CODEC_OP_MEMBER_LIST, &local, &res) == 0)
        cache_update(c, &res.u.members);
    keel_release(c);
}

/* ---- moving ---------------------------------------------------------------------------------- */

/* Moves to member id; 0 or KEEL_STATUS_MEMBER_NOT_FOUND / a connect status. The client may
 * have moved elsewhere (probing) when it fails. */
static int move_to_member(keel_client *c, u64 id)
{
    ASSERT(id != 0);
    ASSERT(c->pending == 0);
    for (u16 i = 0; i < c->eps_len; i++)
        if (c->eps[i].member_id == id) return keel_move(c, c->eps[i].host_be, c->eps[i].port);
    if (cache_find(c, id) == NULL && (c->info.features & CODEC_FEATURE_MEMBER)) cache_refresh(c);
    const struct keel_member_addr *a = cache_find(c, id);
    if (a != NULL) return keel_move(c, a->host_be, a->port);
    for (u16 i = 0; i < c->eps_len; i++) { /* probe: the HELLO names the member */
        if (c->eps[i].member_id != 0) continue;
        if (keel_move(c, c->eps[i].host_be, c->eps[i].port) == 0 && c->info.member_id == id)
            return 0;
    }
    return KEEL_STATUS_MEMBER_NOT_FOUND;
}

/* Moves to the first endpoint that answers, from ep_cur + skip on (round robin, each once). */
static int move_next(keel_client *c, u16 skip)
{
    ASSERT(c->eps_len > 0);
    int rc = KEEL_STATUS_CONNECT;
    u16 start = c->ep_cur < c->eps_len ? c->ep_cur : 0;
    for (u16 k = 0; k < c->eps_len; k++) {
        const struct keel_endpoint *e = &c->eps[(start + skip + k) % c->eps_len];
        rc = keel_move(c, e->host_be, e->port);
        if (rc == 0) return 0;
    }
    return rc;
}

int keel_follow_leader(keel_client *c, uint64_t member_id)
{
    if (c == NULL || member_id == 0) return KEEL_STATUS_ARG;
    if (c->pending != 0) return KEEL_STATUS_FULL;
    if (c->info.member_id == member_id && c->conns_len > 0 && c->conns[0].fd >= 0) return 0;
    int rc = move_to_member(c, member_id);
    keel_release(c);
    return rc;
}

/* ---- the sync call ------------------------------------------------------------------------- */

static int opt_count(int v, int def)
{
    return v == 0 ? def : v < 0 ? 0 : v;
}

/* Reads of cluster data that may run twice; the others may not, or are about one member. */
static bool idempotent(u16 opcode)
{
    return opcode == CODEC_OP_RANGE || opcode == CODEC_OP_SHARD_MAP ||
           opcode == CODEC_OP_MEMBER_LIST;
}

static bool resend_status(int rc)
{
    return rc == KEEL_STATUS_UNAVAILABLE || rc == KEEL_STATUS_LEADER_CHANGED ||
           rc == KEEL_STATUS_GOAWAY || rc == KEEL_STATUS_CLOSED || rc == KEEL_STATUS_CONNECT;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Moves (to NOT_LEADER's detail, or to the next endpoint) keeping out's memory alive while
 * the move makes calls of its own: out stays the caller's answer if the move fails. */
static int move_keeping(keel_client *c, const struct keel_result *out, bool to_leader)
{
    void *keep = c->sync_mem;
    c->sync_mem = NULL;
    int rc = to_leader ? move_to_member(c, out->error.detail) : move_next(c, 1);
    keel_release(c);
    c->sync_mem = keep;
    return rc;
}

int keel_sync_follow(keel_client *c, u16 opcode, const void *args, struct keel_result *out)
{
    if (c == NULL || out == NULL) return KEEL_STATUS_ARG;
    if (c->eps_len < 2) return keel_sync_call(c, -1, opcode, args, out);
    int hops_max = opt_count(c->opt.redirects_max, FOLLOW_REDIRECTS_DEF);
    int tries_max = opt_count(c->opt.retries_max, FOLLOW_RETRIES_DEF);
    int backoff_ms = c->opt.backoff_ms > 0 ? c->opt.backoff_ms : FOLLOW_BACKOFF_DEF;
    int hops = 0, tries = 0;
    for (;;) { /* bounded: every pass spends a hop or a try, or returns */
        bool lost = c->conns_len == 0 || c->conns[0].fd < 0;
        if (lost && c->pending == 0) move_next(c, 0);
        u32 marks = c->route_marks;
        int rc = keel_sync_call(c, -1, opcode, args, out);
        if (rc == 0 && opcode == CODEC_OP_MEMBER_LIST) cache_update(c, &out->u.members);
        bool idle = c->pending == 0;
        if (rc == KEEL_STATUS_NOT_LEADER && out->error.detail != 0 && hops < hops_max &&
            c->route_marks != marks) {
            hops++; /* a shard told NOT_LEADER moves (keel_route.c): not executed, send again */
            continue;
        }
        if (rc == KEEL_STATUS_NOT_LEADER && out->error.detail != 0 && hops < hops_max && idle &&
            opcode != CODEC_OP_ENDPOINT_STATUS) {
            hops++;
            if (move_keeping(c, out, true) == 0) continue;
            return rc;
        }
        if (!resend_status(rc) || !idempotent(opcode) || tries >= tries_max || !idle) return rc;
        sleep_ms(KEEL_MIN(backoff_ms << KEEL_MIN(tries, 8), FOLLOW_BACKOFF_MAX));
        tries++;
        if (move_keeping(c, out, false) != 0) return rc;
    }
}
