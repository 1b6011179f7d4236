/*
 * check_linear.c — linearizability of the client history, per key (a register), by the
 * Wing & Gong search with Lowe's memo (as porcupine does): pick, among the operations not yet
 * linearized, one invoked before every pending response; a put sets the register, a get must
 * read it. Puts of unknown outcome may be linearized anywhere after their invocation or never;
 * failed operations are left out. A key holds at most SIM_KEY_OPS_MAX operations, so the memo
 * (linearized set x register value) stays a few kilobytes.
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lin {
    const struct sim_op *ops[SIM_KEY_OPS_MAX];
    u32 n;
    u32 required; /* mask of the operations that must be linearized (known outcome) */
    u8 *memo;     /* [mask * (n + 1) + state]: visited */
};

/* state: 0 = the initial value (0), j + 1 = the value of put j. */
static u64 lin_value(const struct lin *l, u32 state)
{
    return state == 0 ? 0 : l->ops[state - 1]->value;
}

static bool lin_search(struct lin *l, u32 mask, u32 state)
{
    if ((mask & l->required) == l->required) return true;
    u8 *seen = &l->memo[(size_t)mask * (l->n + 1) + state];
    if (*seen) return false;
    *seen = 1;
    u64 first_respond = UINT64_MAX;
    for (u32 i = 0; i < l->n; i++) {
        if (!(mask & (1u << i))) first_respond = KEEL_MIN(first_respond, l->ops[i]->respond);
    }
    for (u32 i = 0; i < l->n; i++) {
        const struct sim_op *op = l->ops[i];
        if ((mask & (1u << i)) || op->invoke > first_respond) continue;
        if (op->kind == SIM_OP_PUT) {
            if (lin_search(l, mask | (1u << i), i + 1)) return true;
        } else if (op->value == lin_value(l, state)) {
            if (lin_search(l, mask | (1u << i), state)) return true;
        }
    }
    return false;
}

static void lin_report(struct sim *s, const struct lin *l, u32 group, u32 key)
{
    static const char *const names[] = {"pending", "ok", "failed", "unknown"};
    sim_fail(s, "linearizability",
             "group %u key %u: no linearization of %u operations (see "
             "the history above)",
             group, key, l->n);
    fprintf(stderr, "history of group %u key %u (invoke, respond: event clock):\n", group, key);
    for (u32 i = 0; i < l->n; i++) {
        const struct sim_op *op = l->ops[i];
        fprintf(stderr, "  client %u %s value %llu  [%llu, %llu] %s\n", op->client,
                op->kind == SIM_OP_PUT ? "put" : "get", (unsigned long long)op->value,
                (unsigned long long)op->invoke, (unsigned long long)op->respond,
                names[op->outcome]);
    }
}

static void lin_check_key(struct sim *s, u32 group, u32 key)
{
    struct lin l = {.n = 0};
    for (u32 i = 0; i < s->op_count; i++) {
        const struct sim_op *op = &s->ops[i];
        if (op->group != group || op->key != key) continue;
        if (op->outcome == SIM_FAILED || op->outcome == SIM_PENDING) continue;
        ASSERT(l.n < SIM_KEY_OPS_MAX);
        if (op->outcome == SIM_OK) l.required |= 1u << l.n;
        l.ops[l.n++] = op;
    }
    if (l.n == 0) return;
    l.memo = calloc((size_t)(1u << l.n) * (l.n + 1), 1);
    ASSERT(l.memo != NULL);
    if (!lin_search(&l, 0, 0)) lin_report(s, &l, group, key);
    free(l.memo);
}

void check_linearizable(struct sim *s)
{
    for (u32 g = 0; g < s->groups && !s->failed; g++) {
        for (u32 k = 0; k < SIM_KEYS_MAX && !s->failed; k++) {
            if (s->group[g].key_ops[k]) lin_check_key(s, g, k);
        }
    }
}
