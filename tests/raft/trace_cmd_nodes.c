/*
 * trace_cmd_nodes.c — members: add-nodes, crash, restart, status, raft-log, compact,
 * snapshot-failed, unreachable.
 */
#include "trace.h"

#include <stdio.h>
#include <string.h>

typedef unsigned long long ull;

static bool opt_u32(struct trace_env *env, const struct trace_cmd *c, const char *key, u32 *v)
{
    const char *s = cmd_kv(c, key);
    u64 x;
    if (!s) return true;
    if (!parse_u64(env, s, &x)) return false;
    *v = (u32)x;
    return true;
}

/* The configuration of a new member: raft's defaults, then the command's options. */
static bool node_config(struct trace_env *env, const struct trace_cmd *c, u64 id,
                        struct raft_config *cfg)
{
    raft_config_default(cfg);
    cfg->id = id;
    cfg->seed = id;
    cfg->apply_unpersisted = cmd_flag(c, "apply-unpersisted");
    return opt_u32(env, c, "election", &cfg->election_ticks) &&
           opt_u32(env, c, "heartbeat", &cfg->heartbeat_ticks) &&
           opt_u32(env, c, "snap-chunk", &cfg->snap_chunk_bytes) &&
           opt_u32(env, c, "inflight", &cfg->inflight_msgs_max) &&
           opt_u32(env, c, "append-bytes", &cfg->append_bytes_max);
}

/* The bootstrap configuration: voters= and learners=, or every new member a voter. */
static bool node_conf(struct trace_env *env, const struct trace_cmd *c, u64 first, u64 count,
                      struct raft_conf *conf)
{
    memset(conf, 0, sizeof(*conf));
    u64 ids[RAFT_MEMBERS_MAX];
    const char *voters = cmd_kv(c, "voters"), *learners = cmd_kv(c, "learners");
    if (!voters) {
        for (u64 i = 0; i < count; i++)
            conf->members[conf->count++] = (struct raft_member){first + i, RAFT_VOTER};
        return true;
    }
    int n = parse_ids(env, voters, ids, RAFT_MEMBERS_MAX);
    if (n < 0) return false;
    for (int i = 0; i < n; i++) conf->members[conf->count++] = (struct raft_member){ids[i], 1};
    n = learners ? parse_ids(env, learners, ids, RAFT_MEMBERS_MAX - (int)conf->count) : 0;
    if (n < 0) return false;
    for (int i = 0; i < n; i++) conf->members[conf->count++] = (struct raft_member){ids[i], 2};
    return true;
}

void cmd_add_nodes(struct trace_env *env, const struct trace_cmd *c)
{
    u64 count, first = 1, snap_index = 0;
    if (!parse_u64(env, cmd_pos(c, 0), &count)) return;
    while (first < TRACE_NODES_MAX && env->nodes[first].exists) first++;
    if (count == 0 || first + count > TRACE_NODES_MAX) {
        out_printf(env->out, "error: %llu members do not fit (ids 1..%d)\n", (ull)count,
                   TRACE_NODES_MAX - 1);
        return;
    }
    struct raft_conf conf;
    if (!node_conf(env, c, first, count, &conf)) return;
    if (cmd_kv(c, "snapshot") && !parse_u64(env, cmd_kv(c, "snapshot"), &snap_index)) return;
    for (u64 id = first; id < first + count; id++) {
        struct trace_node *n = &env->nodes[id];
        memset(n, 0, sizeof(*n));
        n->id = id;
        if (!node_config(env, c, id, &n->cfg)) return;
        n->exists = true;
        if (snap_index) {
            /* Starts from a snapshot of an empty state machine at snap_index, term 1. */
            n->durable.has_snap = true;
            n->durable.snap = (struct raft_snapshot_meta){snap_index, 1, conf};
            n->durable.hs.term = 1;
            n->durable.hs.commit = snap_index;
        } else if (!cmd_flag(c, "join")) {
            n->has_bootstrap = true;
            n->bootstrap = conf;
        }
        env_create_raft(env, n);
        if (n->down) return;
        n->seen_role = (u8)raft_role(n->r);
        n->seen_term = raft_term(n->r);
        n->seen_leader = raft_leader(n->r);
        out_printf(env->out, "%llu: ", (ull)id);
        print_summary(env->out, n->r);
        out_printf(env->out, " ");
        if (n->has_bootstrap || snap_index)
            print_conf(env->out, &conf);
        else
            out_printf(env->out, "(joining: no configuration)");
        out_printf(env->out, "\n");
    }
}

void cmd_crash(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    if (!n) return;
    raft_destroy(n->r);
    n->r = NULL;
    n->down = true;
    u64 lost = log_last_index(&n->vol) > log_last_index(&n->durable) ? 1 : 0;
    out_printf(env->out, "%llu: crashed; durable log %llu/%llu, hard state term=%llu vote=%llu%s",
               (ull)n->id, (ull)log_last_term(&n->durable), (ull)log_last_index(&n->durable),
               (ull)n->durable.hs.term, (ull)n->durable.hs.vote,
               lost ? " (unpersisted entries lost)" : "");
    if (n->held.count) out_printf(env->out, ", %u held message(s) lost", n->held.count);
    out_printf(env->out, "\n");
    wires_clear(&n->held);
    log_copy(&n->vol, &n->durable);
    n->dirty = n->log_dirty = false;
}

void cmd_restart(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node_any(env, cmd_pos(c, 0));
    if (!n) return;
    if (!n->down) {
        out_printf(env->out, "error: member %llu is not down\n", (ull)n->id);
        return;
    }
    env_create_raft(env, n);
    if (n->down) return;
    n->seen_role = 0xff; /* report the restarted member's state */
}

void cmd_status(struct trace_env *env, const struct trace_cmd *c)
{
    for (u32 i = 0; cmd_pos(c, i); i++) {
        struct trace_node *n = env_node(env, cmd_pos(c, i));
        if (!n) return;
        print_status(env->out, n->r);
        out_printf(env->out, "  state machine applied=%llu ", (ull)n->applied);
        print_data(env->out, n->sm.ptr, n->sm.len);
        out_printf(env->out, "\n");
    }
}

static void print_stored(struct trace_out *o, const char *title, const struct trace_log *l)
{
    out_printf(o, "  %s:", title);
    if (l->has_snap) out_printf(o, " snapshot=%llu/%llu", (ull)l->snap.term, (ull)l->snap.index);
    out_printf(o, " hard state term=%llu vote=%llu commit=%llu", (ull)l->hs.term, (ull)l->hs.vote,
               (ull)l->hs.commit);
    if (l->count)
        out_printf(o, " entries [%llu,%llu]", (ull)l->entries[0].index,
                   (ull)l->entries[l->count - 1].index);
    out_printf(o, "\n");
}

void cmd_raft_log(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node_any(env, cmd_pos(c, 0));
    if (!n) return;
    if (n->down) out_printf(env->out, "%llu: down\n", (ull)n->id);
    if (!n->down) {
        struct raft_status st;
        raft_status(n->r, &st);
        out_printf(env->out, "%llu: in memory [%llu,%llu]\n", (ull)n->id, (ull)st.first_index,
                   (ull)st.last_index);
        for (u64 i = st.first_index; i && i <= st.last_index; i++) {
            const struct raft_entry *e = raft_entry_at(n->r, i);
            out_printf(env->out, "  ");
            if (e)
                print_entry(env->out, e);
            else
                out_printf(env->out, "%llu missing", (ull)i);
            out_printf(env->out, "\n");
        }
    }
    print_stored(env->out, "durable", &n->durable);
    if (n->dirty) print_stored(env->out, "volatile", &n->vol);
}

/* Snapshots n's state machine at its applied index (durable at once) and compacts. */
void cmd_compact(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    u64 keep = 0;
    if (!n || (cmd_kv(c, "keep") && !parse_u64(env, cmd_kv(c, "keep"), &keep))) return;
    struct raft_snapshot_meta meta;
    raft_snapshot_meta_applied(n->r, &meta);
    if (meta.index != n->applied) {
        out_printf(env->out, "SAFETY: raft says applied %llu, the state machine is at %llu\n",
                   (ull)meta.index, (ull)n->applied);
        return;
    }
    /* With apply_unpersisted the state machine may be ahead of the durable log: a snapshot
     * waits until the log covers it (raft.h Choices). */
    if (meta.index > log_last_index(&n->durable)) {
        out_printf(env->out, "%llu: not yet: applied %llu is past the durable log (%llu)\n",
                   (ull)n->id, (ull)meta.index, (ull)log_last_index(&n->durable));
        return;
    }
    struct trace_log *logs[2] = {&n->durable, &n->vol};
    for (int i = 0; i < 2; i++) {
        logs[i]->has_snap = true;
        logs[i]->snap = meta;
        bytes_set(&logs[i]->snap_blob, n->sm.ptr, n->sm.len);
        /* Storage keeps only what follows the snapshot (raft_restore's contract). */
        log_drop_prefix(logs[i], meta.index);
    }
    raft_compact(n->r, &meta, keep);
    out_printf(env->out, "%llu: snapshot %llu/%llu ", (ull)n->id, (ull)meta.term, (ull)meta.index);
    print_conf(env->out, &meta.conf);
    out_printf(env->out, " data=");
    print_data(env->out, n->sm.ptr, n->sm.len);
    out_printf(env->out, "\n");
}

void cmd_snapshot_failed(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    u64 peer;
    if (!n || !parse_u64(env, cmd_pos(c, 1), &peer)) return;
    raft_snapshot_failed(n->r, peer);
}

void cmd_unreachable(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    u64 peer;
    if (!n || !parse_u64(env, cmd_pos(c, 1), &peer)) return;
    raft_peer_unreachable(n->r, peer);
}
