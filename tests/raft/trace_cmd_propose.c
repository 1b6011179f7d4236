/*
 * trace_cmd_propose.c — client requests: propose, propose-conf-change, read-index.
 */
#include "trace.h"

#include <stdio.h>
#include <string.h>

typedef unsigned long long ull;

void cmd_propose(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    const char *data = cmd_pos(c, 1);
    if (!n) return;
    if (!data) {
        out_printf(env->out, "error: propose ID DATA\n");
        return;
    }
    u64 index = 0, term = 0;
    int rc = raft_propose(n->r, (const u8 *)data, (u32)strlen(data), &index, &term);
    if (rc != RAFT_OK)
        out_printf(env->out, "%llu: error: %s\n", (ull)n->id, raft_err_str(rc));
    else
        out_printf(env->out, "%llu: proposed %llu/%llu\n", (ull)n->id, (ull)term, (ull)index);
}

static const struct {
    const char *name;
    u8 type;
} cc_types[] = {
    {"add-voter", RAFT_CC_ADD_VOTER},
    {"add-learner", RAFT_CC_ADD_LEARNER},
    {"promote", RAFT_CC_PROMOTE},
    {"remove", RAFT_CC_REMOVE},
};

void cmd_propose_conf_change(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    const char *type = cmd_pos(c, 1), *context = cmd_kv(c, "context");
    if (!n) return;
    struct raft_conf_change cc = {0};
    for (size_t i = 0; type && i < sizeof(cc_types) / sizeof(cc_types[0]); i++)
        if (strcmp(type, cc_types[i].name) == 0) cc.type = cc_types[i].type;
    if (!cc.type) {
        out_printf(env->out, "error: propose-conf-change ID add-voter|add-learner|promote|"
                             "remove TARGET [context=TEXT]\n");
        return;
    }
    if (!parse_u64(env, cmd_pos(c, 2), &cc.id)) return;
    if (context) {
        cc.context_len = (u32)KEEL_MIN(strlen(context), (size_t)RAFT_CONF_CONTEXT_MAX);
        memcpy(cc.context, context, cc.context_len);
    }
    u64 index = 0;
    int rc = raft_propose_conf(n->r, &cc, &index);
    if (rc != RAFT_OK)
        out_printf(env->out, "%llu: error: %s\n", (ull)n->id, raft_err_str(rc));
    else
        out_printf(env->out, "%llu: proposed conf change at %llu\n", (ull)n->id, (ull)index);
}

void cmd_read_index(struct trace_env *env, const struct trace_cmd *c)
{
    struct trace_node *n = env_node(env, cmd_pos(c, 0));
    u64 context;
    if (!n || !parse_u64(env, cmd_pos(c, 1), &context)) return;
    int rc = raft_read_index(n->r, context);
    if (rc != RAFT_OK)
        out_printf(env->out, "%llu: error: %s\n", (ull)n->id, raft_err_str(rc));
    else
        env_read_issued(env, n, context);
}
