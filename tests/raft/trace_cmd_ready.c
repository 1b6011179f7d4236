/*
 * trace_cmd_ready.c — the ready loop and the network: process-ready, persist, deliver-msgs,
 * drop-msgs, stabilize, partition, heal.
 *
 *   deliver-msgs [ID...] [type=T] [drop=ID,...]: delivers the queued messages to the IDs (all
 *       when none are given and no drop=), of type T only when type= is given; messages to the
 *       drop= IDs are dropped instead. Messages across a partition or to a down member are
 *       dropped at delivery.
 *   drop-msgs [ID...] [from=ID,...] [type=T]: drops the matching queued messages.
 *   stabilize [ID...]: rounds of process-ready + persist for each member, then delivery of
 *       every queued message to them, until a round does nothing (at most 200 rounds).
 */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull;

#define STABILIZE_ROUNDS_MAX 200

struct msg_filter {
    u64 to[TRACE_NODES_MAX];
    int to_count; /* 0: any */
    u64 from[TRACE_NODES_MAX];
    int from_count; /* 0: any */
    int type;       /* 0: any */
};

static bool ids_has(const u64 *ids, int count, u64 id)
{
    for (int i = 0; i < count; i++)
        if (ids[i] == id) return true;
    return false;
}

static bool parse_type(struct trace_env *env, const char *name, int *type)
{
    *type = 0;
    if (!name) return true;
    for (int t = 1; t < RAFT_MSG_TYPE_COUNT_; t++)
        if (strcmp(raft_msg_type_str(t), name) == 0) *type = t;
    if (*type == 0) out_printf(env->out, "error: unknown message type %s\n", name);
    return *type != 0;
}

/* The positional ids of c (every id when there are none and all is set). */
static int pos_ids(struct trace_env *env, const struct trace_cmd *c, u64 *ids)
{
    int n = 0;
    for (u32 i = 0; cmd_pos(c, i); i++) {
        int k = parse_ids(env, cmd_pos(c, i), ids + n, TRACE_NODES_MAX - n);
        if (k < 0) return -1;
        n += k;
    }
    return n;
}

static bool wire_matches(const struct trace_wire *w, const struct msg_filter *f)
{
    if (f->to_count && !ids_has(f->to, f->to_count, w->to)) return false;
    if (f->from_count && !ids_has(f->from, f->from_count, w->from)) return false;
    return f->type == 0 || (w->len > 1 && w->bytes[1] == f->type); /* type: byte 1 */
}

static void drop_at(struct trace_env *env, u32 at, const char *indent)
{
    struct trace_wire *w = &env->net.items[at];
    u32 count = raft_msg_entry_count(w->bytes, w->len);
    struct raft_entry *entries = malloc((count + 1) * sizeof(*entries));
    struct raft_msg m;
    out_printf(env->out, "%s", indent);
    if (raft_msg_decode(w->bytes, w->len, &m, entries, count) == RAFT_OK)
        print_msg(env->out, &m);
    else
        out_printf(env->out, "(does not decode)");
    out_printf(env->out, " (dropped)\n");
    free(entries);
    wires_remove(&env->net, at);
}

void cmd_process_ready(struct trace_env *env, const struct trace_cmd *c)
{
    for (u32 i = 0; cmd_pos(c, i); i++) {
        struct trace_node *n = env_node(env, cmd_pos(c, i));
        if (!n) return;
        if (!env_process_ready(env, n, ""))
            out_printf(env->out, "> %llu has no Ready\n", (ull)n->id);
    }
}

void cmd_persist(struct trace_env *env, const struct trace_cmd *c)
{
    for (u32 i = 0; cmd_pos(c, i); i++) {
        struct trace_node *n = env_node(env, cmd_pos(c, i));
        if (!n) return;
        if (!env_persist(env, n, ""))
            out_printf(env->out, "> %llu has nothing to persist\n", (ull)n->id);
    }
}

void cmd_deliver_msgs(struct trace_env *env, const struct trace_cmd *c)
{
    struct msg_filter f = {0}, drop = {0};
    f.to_count = pos_ids(env, c, f.to);
    if (f.to_count < 0 || !parse_type(env, cmd_kv(c, "type"), &f.type)) return;
    drop.type = f.type;
    if (cmd_kv(c, "drop")) {
        drop.to_count = parse_ids(env, cmd_kv(c, "drop"), drop.to, TRACE_NODES_MAX);
        if (drop.to_count <= 0) return;
    }
    bool deliver_any = f.to_count > 0 || drop.to_count == 0;
    u32 done = 0;
    for (u32 i = 0; i < env->net.count;) {
        if (drop.to_count && wire_matches(&env->net.items[i], &drop)) {
            drop_at(env, i, "");
            done++;
        } else if (deliver_any && wire_matches(&env->net.items[i], &f)) {
            env_deliver(env, i, "");
            done++;
        } else {
            i++;
        }
    }
    if (done == 0) out_printf(env->out, "no messages\n");
}

void cmd_drop_msgs(struct trace_env *env, const struct trace_cmd *c)
{
    struct msg_filter f = {0};
    f.to_count = pos_ids(env, c, f.to);
    if (f.to_count < 0 || !parse_type(env, cmd_kv(c, "type"), &f.type)) return;
    if (cmd_kv(c, "from")) {
        f.from_count = parse_ids(env, cmd_kv(c, "from"), f.from, TRACE_NODES_MAX);
        if (f.from_count <= 0) return;
    }
    u32 done = 0;
    for (u32 i = 0; i < env->net.count;) {
        if (!wire_matches(&env->net.items[i], &f)) {
            i++;
            continue;
        }
        drop_at(env, i, "");
        done++;
    }
    if (done == 0) out_printf(env->out, "no messages\n");
}

/* One stabilize round of deliveries: the queued messages to each member of ids, grouped by
 * recipient in id order. */
static bool stabilize_deliver(struct trace_env *env, const u64 *ids, int count)
{
    bool any = false;
    for (int k = 0; k < count; k++) {
        bool header = false;
        for (u32 i = 0; i < env->net.count;) {
            if (env->net.items[i].to != ids[k]) {
                i++;
                continue;
            }
            if (!header) out_printf(env->out, "> %llu receiving messages\n", (ull)ids[k]);
            header = any = true;
            env_deliver(env, i, "  ");
        }
    }
    return any;
}

void cmd_stabilize(struct trace_env *env, const struct trace_cmd *c)
{
    u64 ids[TRACE_NODES_MAX];
    int count = pos_ids(env, c, ids);
    if (count < 0) return;
    if (count == 0)
        for (u64 id = 1; id < TRACE_NODES_MAX; id++)
            if (env->nodes[id].exists) ids[count++] = id;
    for (int round = 0; round < STABILIZE_ROUNDS_MAX; round++) {
        bool progress = false;
        for (int k = 0; k < count; k++) {
            struct trace_node *n = &env->nodes[ids[k]];
            if (!n->exists || n->down) continue;
            progress |= env_process_ready(env, n, "");
            progress |= env_persist(env, n, "");
        }
        env_check_safety(env);
        progress |= stabilize_deliver(env, ids, count);
        if (!progress) return;
    }
    out_printf(env->out, "error: not stable after %d rounds\n", STABILIZE_ROUNDS_MAX);
}

void cmd_partition(struct trace_env *env, const struct trace_cmd *c)
{
    memset(env->group, 0, sizeof(env->group));
    for (u32 i = 0; cmd_pos(c, i); i++) {
        u64 ids[TRACE_NODES_MAX];
        int n = parse_ids(env, cmd_pos(c, i), ids, TRACE_NODES_MAX);
        if (n < 0) return;
        for (int k = 0; k < n; k++) env->group[ids[k]] = i + 1;
    }
}

void cmd_heal(struct trace_env *env, const struct trace_cmd *c)
{
    (void)c;
    memset(env->group, 0, sizeof(env->group));
}
