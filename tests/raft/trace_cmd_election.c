/*
 * trace_cmd_election.c — time and leadership: campaign, tick, tick-heartbeat, tick-election,
 * transfer-leader. Role and term changes are printed after every command (trace_main.c).
 */
#include "trace.h"

#include <stdio.h>

typedef unsigned long long ull;

void cmd_campaign(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    if (n) raft_campaign(n->r);
}

static void tick_n(struct trace_node *n, u64 count)
{
    for (u64 i = 0; i < count; i++) raft_tick(n->r);
}

void cmd_tick(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    u64 count = 1;
    if (!n || (cmd_pos(c, 1) && !parse_u64(env, cmd_pos(c, 1), &count))) return;
    tick_n(n, count);
}

void cmd_tick_heartbeat(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    if (n) tick_n(n, n->cfg.heartbeat_ticks);
}

/* Ticks until the member's role or term changes, at most 2 * election_ticks ticks, and prints
 * how many ticks it took. A follower's randomized timeout is below 2 * election_ticks, so it
 * fires once; a leader runs its check-quorum (every election_ticks) twice. */
void cmd_tick_election(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    if (!n) return;
    enum raft_role role = raft_role(n->r);
    u64 term = raft_term(n->r), ticks = 0, max = 2 * (u64)n->cfg.election_ticks;
    while (ticks < max && raft_role(n->r) == role && raft_term(n->r) == term) {
        raft_tick(n->r);
        ticks++;
    }
    out_printf(env->out, "%llu: %llu tick(s)\n", (ull)n->id, (ull)ticks);
}

void cmd_transfer_leader(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    u64 target;
    if (!n || !parse_u64(env, cmd_pos(c, 1), &target)) return;
    int rc = raft_transfer_leader(n->r, target);
    if (rc != RAFT_OK) out_printf(env->out, "%llu: error: %s\n", (ull)n->id, raft_err_str(rc));
}
