/*
 * sim_client.c — the workload: clients issue put(k, v) and get(k) over a few keys per group, one
 * operation at a time each, to a random node's member (the leader it names, most of the time).
 * A put is a proposal (client, value, key; values are unique); a get is a linearizable read
 * through raft_read_index, served once the member applied the read index. Outcomes:
 *  - ok: the put's entry was applied with the term it was proposed in; the get was served.
 *  - failed: definitely not executed (raft refused the call, another entry was applied at the
 *    put's index, the read failed); failed gets and puts leave the history.
 *  - unknown: the put's member crashed or the put timed out; it may take effect any time after
 *    its invocation (check_linear.c). A get that times out leaves the history.
 * Keys take SIM_KEY_OPS_MAX operations each, then the next key takes over, so that every
 * per-key history stays small for the linearizability check.
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <string.h>

#define PUT_HEAD_BYTES 20u

u32 client_encode_put(u8 *buf, u32 magic, u32 client, u64 value, u32 key, u32 pad)
{
    memcpy(buf, &magic, 4);
    memcpy(buf + 4, &client, 4);
    memcpy(buf + 8, &value, 8);
    memcpy(buf + 16, &key, 4);
    for (u32 i = 0; i < pad; i++) buf[PUT_HEAD_BYTES + i] = (u8)(value + i);
    return PUT_HEAD_BYTES + pad;
}

bool client_decode_put(const u8 *data, u32 len, u32 *magic, u64 *value, u32 *key)
{
    if (len < PUT_HEAD_BYTES) return false;
    memcpy(magic, data, 4);
    memcpy(value, data + 8, 8);
    memcpy(key, data + 16, 4);
    return *magic == SIM_OP_MAGIC_PUT || *magic == SIM_OP_MAGIC_FINAL;
}

void client_init(struct sim *s)
{
    s->client_count = (u32)sim_range(s, 2, SIM_CLIENTS_MAX);
    memset(s->clients, 0, sizeof s->clients);
}

/* ---- history ---------------------------------------------------------------------------- */

static u32 op_new(struct sim *s, u8 kind, u32 group, u32 key, u32 client)
{
    if (s->op_count == s->op_cap) {
        s->op_cap = s->op_cap ? s->op_cap * 2 : 256;
        s->ops = sim_xrealloc(s->ops, sizeof(struct sim_op) * s->op_cap);
    }
    s->ops[s->op_count] = (struct sim_op){.kind = kind,
                                          .outcome = SIM_PENDING,
                                          .group = group,
                                          .key = key,
                                          .client = client,
                                          .invoke = ++s->clock,
                                          .respond = UINT64_MAX};
    return s->op_count++;
}

static void op_finish(struct sim *s, struct sim_client *c, u8 outcome, u64 value)
{
    struct sim_op *op = &s->ops[c->op];
    ASSERT(op->outcome == SIM_PENDING);
    op->outcome = outcome;
    if (outcome != SIM_UNKNOWN) op->respond = ++s->clock;
    if (op->kind == SIM_OP_GET) op->value = value;
    static const char *const names[] = {"pending", "ok", "failed", "unknown"};
    sim_trace(s, "client %u: %s g%u key %u value %llu: %s", op->client,
              op->kind == SIM_OP_PUT ? "put" : "get", op->group, op->key,
              (unsigned long long)op->value, names[outcome]);
    c->busy = false;
}

/* ---- issuing ---------------------------------------------------------------------------- */

static struct sim_member *client_pick_member(struct sim *s, u32 group)
{
    struct sim_group *grp = &s->group[group];
    struct sim_member *pick = NULL;
    u32 seen = 0;
    for (u32 i = 0; i < grp->member_count; i++) { /* reservoir: a random live member */
        struct sim_member *m = &grp->members[i];
        if (m->exists && m->r && sim_below(s, ++seen) == 0) pick = m;
    }
    if (pick && sim_permille(s, 700)) {
        struct sim_member *leader = sim_member_by_id(s, group, raft_leader(pick->r));
        if (leader && leader->r) pick = leader;
    }
    return pick;
}

static bool client_pick_key(struct sim *s, u32 group, u32 *key)
{
    struct sim_group *grp = &s->group[group];
    while (grp->key_base < SIM_KEYS_MAX && grp->key_ops[grp->key_base] >= SIM_KEY_OPS_MAX) {
        grp->key_base++;
    }
    u32 k = grp->key_base + (u32)sim_below(s, SIM_KEY_WINDOW);
    if (k >= SIM_KEYS_MAX || grp->key_ops[k] >= SIM_KEY_OPS_MAX) return false;
    *key = k;
    return true;
}

static void client_put(struct sim *s, u32 ci, struct sim_member *m, u32 key)
{
    struct sim_client *c = &s->clients[ci];
    c->op = op_new(s, SIM_OP_PUT, m->group, key, ci);
    u64 value = ++s->op_value_next;
    s->ops[c->op].value = value;
    u8 buf[64];
    u32 len = client_encode_put(buf, SIM_OP_MAGIC_PUT, ci, value, key, (u32)sim_below(s, 40));
    u64 index = 0, term = 0;
    int err = raft_propose(m->r, buf, len, &index, &term);
    c->busy = true;
    sim_trace(s, "client %u: put g%u key %u value %llu to member %llu: %s, index %llu term %llu",
              ci, m->group, key, (unsigned long long)value, (unsigned long long)m->id,
              raft_err_str(err), (unsigned long long)index, (unsigned long long)term);
    if (err) {
        op_finish(s, c, SIM_FAILED, 0);
        s->group[m->group].key_ops[key]--; /* refused: no room taken in the key's history */
        return;
    }
    struct raft_entry e = {
        .term = term, .index = index, .type = RAFT_ENTRY_NORMAL, .len = len, .data = buf};
    c->index = index;
    c->term = term;
    c->entry_hash = check_entry_hash(&e);
    c->deadline_ms = s->now_ms + SIM_PUT_TIMEOUT_MS;
    member_observe(s, m);
    member_ready_loop(s, m);
}

static void client_get(struct sim *s, u32 ci, struct sim_member *m, u32 key)
{
    struct sim_client *c = &s->clients[ci];
    c->op = op_new(s, SIM_OP_GET, m->group, key, ci);
    c->ctx = ((u64)ci << 40) | c->op;
    c->read_ready = false;
    c->busy = true;
    int err = raft_read_index(m->r, c->ctx);
    sim_trace(s, "client %u: get g%u key %u at member %llu: %s", ci, m->group, key,
              (unsigned long long)m->id, raft_err_str(err));
    if (err) {
        op_finish(s, c, SIM_FAILED, 0);
        s->group[m->group].key_ops[key]--;
        return;
    }
    c->deadline_ms = s->now_ms + SIM_GET_TIMEOUT_MS;
    member_observe(s, m);
    member_ready_loop(s, m);
}

static void client_issue(struct sim *s, u32 ci)
{
    struct sim_client *c = &s->clients[ci];
    u32 group = (u32)sim_below(s, s->groups), key;
    if (!client_pick_key(s, group, &key)) return;
    struct sim_member *m = client_pick_member(s, group);
    if (!m) return;
    s->group[group].key_ops[key]++;
    c->group = group;
    c->member = m->id;
    c->incarnation = m->incarnation;
    if (sim_permille(s, 500)) {
        client_put(s, ci, m, key);
    } else {
        client_get(s, ci, m, key);
    }
}

void client_step(struct sim *s)
{
    for (u32 i = 0; i < s->client_count && !s->failed; i++) {
        struct sim_client *c = &s->clients[i];
        if (c->busy && s->now_ms >= c->deadline_ms) {
            bool put = s->ops[c->op].kind == SIM_OP_PUT;
            op_finish(s, c, put ? SIM_UNKNOWN : SIM_FAILED, 0);
        }
        if (!c->busy && !s->healing && sim_permille(s, s->rates.op_permille)) client_issue(s, i);
    }
}

/* ---- completions ------------------------------------------------------------------------ */

static bool client_on(const struct sim_client *c, const struct sim_member *m)
{
    return c->busy && c->member == m->id && c->group == m->group;
}

static bool client_is_put(const struct sim *s, const struct sim_client *c)
{
    return s->ops[c->op].kind == SIM_OP_PUT;
}

void client_applied(struct sim *s, struct sim_member *m, const struct raft_entry *e)
{
    for (u32 i = 0; i < s->client_count; i++) {
        struct sim_client *c = &s->clients[i];
        if (!client_on(c, m) || !client_is_put(s, c) || c->index != e->index) continue;
        bool mine = e->term == c->term && check_entry_hash(e) == c->entry_hash;
        op_finish(s, c, mine ? SIM_OK : SIM_FAILED, 0);
    }
}

void client_snapshot_installed(struct sim *s, struct sim_member *m)
{
    const struct sim_group_check *chk = &s->group[m->group].check;
    for (u32 i = 0; i < s->client_count; i++) {
        struct sim_client *c = &s->clients[i];
        if (!client_on(c, m) || !client_is_put(s, c) || c->index > m->applied) continue;
        if (c->index > chk->applied_max) {
            op_finish(s, c, SIM_UNKNOWN, 0);
            continue;
        }
        const struct sim_apply_rec *rec = &chk->applied[c->index];
        bool mine = rec->term == c->term && rec->entry_hash == c->entry_hash;
        op_finish(s, c, mine ? SIM_OK : SIM_FAILED, 0);
    }
}

void client_read_state(struct sim *s, struct sim_member *m, const struct raft_read_state *rs)
{
    for (u32 i = 0; i < s->client_count; i++) {
        struct sim_client *c = &s->clients[i];
        if (!client_on(c, m) || client_is_put(s, c) || c->ctx != rs->context) continue;
        if (c->read_ready) continue; /* a duplicate answer */
        c->read_ready = true;
        c->read_index = rs->index;
    }
}

void client_read_failed(struct sim *s, struct sim_member *m, u64 ctx)
{
    for (u32 i = 0; i < s->client_count; i++) {
        struct sim_client *c = &s->clients[i];
        if (!client_on(c, m) || client_is_put(s, c) || c->ctx != ctx || c->read_ready) continue;
        op_finish(s, c, SIM_FAILED, 0);
    }
}

void client_serve_reads(struct sim *s, struct sim_member *m)
{
    for (u32 i = 0; i < s->client_count; i++) {
        struct sim_client *c = &s->clients[i];
        if (!client_on(c, m) || client_is_put(s, c) || !c->read_ready) continue;
        if (m->applied < c->read_index && s->opt.inject != SIM_INJECT_STALE_READ) continue;
        op_finish(s, c, SIM_OK, m->kv[s->ops[c->op].key]);
    }
}

void client_member_lost(struct sim *s, struct sim_member *m)
{
    for (u32 i = 0; i < s->client_count; i++) {
        struct sim_client *c = &s->clients[i];
        if (!client_on(c, m)) continue;
        op_finish(s, c, client_is_put(s, c) ? SIM_UNKNOWN : SIM_FAILED, 0);
    }
}
