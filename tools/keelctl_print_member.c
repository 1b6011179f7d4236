/*
 * keelctl_print_member.c — the member, move-leader and endpoint status replies (formats as
 * in keelctl_print.c). Member ids print in hex as etcdctl's do (table and simple); json
 * prints them as decimal numbers, as etcdctl's json does.
 *
 * Rows are built as table cells first (ctl_print_cells): table prints them with borders,
 * simple as one comma-separated line per row.
 */
#include "tools/keelctl.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

#define CELL_SIZE 32

static char *cell_hex(uint64_t v)
{
    char *s = malloc(CELL_SIZE);
    if (s != NULL) snprintf(s, CELL_SIZE, "%llx", (unsigned long long)v);
    return s;
}

static char *cell_u64(uint64_t v)
{
    char *s = malloc(CELL_SIZE);
    if (s != NULL) snprintf(s, CELL_SIZE, "%llu", (unsigned long long)v);
    return s;
}

static char *cell_i64(int64_t v)
{
    char *s = malloc(CELL_SIZE);
    if (s != NULL) snprintf(s, CELL_SIZE, "%lld", (long long)v);
    return s;
}

static char *cell_str(const char *s)
{
    return strdup(s);
}

/* "u1,u2" of a member's URLs (malloc'd). */
static char *cell_urls(const struct keel_str *urls, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += urls[i].len + 1;
    char *s = malloc(len);
    if (s == NULL) return NULL;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) s[at++] = ',';
        memcpy(s + at, urls[i].ptr, urls[i].len);
        at += urls[i].len;
    }
    s[at] = '\0';
    ASSERT(at < len);
    return s;
}

static void json_urls(FILE *out, const char *key, const struct keel_str *urls, size_t n)
{
    fprintf(out, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) fputc(',', out);
        ctl_json_string(out, (const uint8_t *)urls[i].ptr, urls[i].len);
    }
    fputc(']', out);
}

/* ---- members -------------------------------------------------------------------------------- */

static void json_members(FILE *out, const struct keel_result *r)
{
    const struct keel_members_result *m = &r->u.members;
    fputc('{', out);
    ctl_json_header(out, &r->header);
    if (r->opcode == KEEL_OPCODE_MEMBER_ADD)
        fprintf(out, ",\"member_id\":%llu", (unsigned long long)m->member_id);
    if (r->opcode == KEEL_OPCODE_MEMBER_LIST)
        fprintf(out, ",\"cluster_id\":%llu", (unsigned long long)m->cluster_id);
    fputs(",\"members\":[", out);
    for (size_t i = 0; i < m->members_len; i++) {
        const struct keel_member *x = &m->members[i];
        fprintf(out, "%s{\"id\":%llu,\"name\":", i > 0 ? "," : "", (unsigned long long)x->id);
        ctl_json_string(out, (const uint8_t *)x->name.ptr, x->name.len);
        json_urls(out, "peer_urls", x->peer_urls, x->peer_urls_len);
        json_urls(out, "client_urls", x->client_urls, x->client_urls_len);
        fprintf(out, ",\"is_learner\":%s}", x->is_learner ? "true" : "false");
    }
    fputc(']', out);
    if (r->opcode == KEEL_OPCODE_MEMBER_LIST) {
        fputs(",\"shards\":[", out);
        for (size_t i = 0; i < m->shards_len; i++) {
            const struct keel_shard_leader *s = &m->shards[i];
            fprintf(out, "%s{\"shard_id\":%u,\"leader_id\":%llu,\"raft_term\":%llu}",
                    i > 0 ? "," : "", (unsigned)s->shard_id, (unsigned long long)s->leader_id,
                    (unsigned long long)s->raft_term);
        }
        fputc(']', out);
    }
    fputs("}\n", out);
}

/* etcdctl's member list columns: ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER. */
static void table_members(FILE *out, const struct ctl_fmt *f, const struct keel_members_result *m)
{
    static const char *const headers[] = {"ID",         "STATUS",       "NAME",
                                          "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"};
    enum { COLS = 6 };
    size_t rows = m->members_len;
    char **cells = calloc(rows * COLS + 1, sizeof(*cells));
    if (cells == NULL) return;
    for (size_t i = 0; i < rows; i++) {
        const struct keel_member *x = &m->members[i];
        char **row = &cells[i * COLS];
        bool started = x->name.len > 0 || x->client_urls_len > 0;
        row[0] = cell_hex(x->id);
        row[1] = cell_str(started ? "started" : "unstarted");
        row[2] = ctl_text((const uint8_t *)x->name.ptr, x->name.len, false);
        row[3] = cell_urls(x->peer_urls, x->peer_urls_len);
        row[4] = cell_urls(x->client_urls, x->client_urls_len);
        row[5] = cell_str(x->is_learner ? "true" : "false");
    }
    ctl_print_cells(out, f->format, COLS, headers, cells, rows, 0);
}

void ctl_print_members(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    ASSERT(r->opcode >= KEEL_OPCODE_MEMBER_LIST && r->opcode <= KEEL_OPCODE_MEMBER_PROMOTE);
    const struct keel_members_result *m = &r->u.members;
    if (f->format == CTL_FORMAT_JSON) {
        json_members(out, r);
        return;
    }
    if (r->opcode ==
        KEEL_OPCODE_MEMBER_ADD) { /* MEMBER_ADD: etcdctl's message, then the new cluster */
        fprintf(out, "Member %llx added to the cluster\n", (unsigned long long)m->member_id);
    } else if (r->opcode == KEEL_OPCODE_MEMBER_REMOVE) {
        fputs("Member removed from the cluster\n", out);
    } else if (r->opcode == KEEL_OPCODE_MEMBER_PROMOTE) {
        fputs("Member promoted in the cluster\n", out);
    }
    if (r->opcode == KEEL_OPCODE_MEMBER_LIST || f->format == CTL_FORMAT_TABLE)
        table_members(out, f, m);
    if (r->opcode != KEEL_OPCODE_MEMBER_ADD) return;
    fputs("\nStart it with:\n  --initial-cluster-state existing --initial-cluster ", out);
    for (size_t i = 0; i < m->members_len; i++) {
        const struct keel_member *x = &m->members[i];
        if (x->peer_urls_len == 0) continue;
        fprintf(out, "%s%.*s=%.*s", i > 0 ? "," : "", (int)x->name.len, x->name.ptr,
                (int)x->peer_urls[0].len, x->peer_urls[0].ptr);
    }
    fputc('\n', out);
}

/* ---- move-leader ---------------------------------------------------------------------------- */

void ctl_print_move_leader(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    const struct keel_move_leader_result *m = &r->u.move_leader;
    if (f->format == CTL_FORMAT_JSON) {
        fputc('{', out);
        ctl_json_header(out, &r->header);
        fputs(",\"shards\":[", out);
        for (size_t i = 0; i < m->shards_len; i++) {
            const struct keel_shard_move *s = &m->shards[i];
            const char *st = ctl_status_name(s->status);
            fprintf(out,
                    "%s{\"shard_id\":%u,\"status\":\"%s\",\"leader_id\":%llu,\"raft_term\":%llu}",
                    i > 0 ? "," : "", (unsigned)s->shard_id, st != NULL ? st : "UNKNOWN",
                    (unsigned long long)s->leader_id, (unsigned long long)s->raft_term);
        }
        fputs("]}\n", out);
        return;
    }
    if (m->shards_len == 0) fputs("The endpoint leads no shard: nothing moved\n", out);
    for (size_t i = 0; i < m->shards_len; i++) {
        const struct keel_shard_move *s = &m->shards[i];
        if (s->status == 0) {
            fprintf(out, "Leadership of shard %u transferred to %llx (term %llu)\n",
                    (unsigned)s->shard_id, (unsigned long long)s->leader_id,
                    (unsigned long long)s->raft_term);
        } else {
            fprintf(out, "Shard %u: not transferred: %s (leader %llx)\n", (unsigned)s->shard_id,
                    keel_strerror(s->status), (unsigned long long)s->leader_id);
        }
    }
}

/* ---- endpoint status ------------------------------------------------------------------------ */

static const char *role_name(enum keel_raft_role r)
{
    static const char *const names[] = {"follower", "candidate", "leader", "learner"};
    return (unsigned)r < 4 ? names[r] : "unknown";
}

/* "id=lag id=lag" of a leader's peers ("-" when it leads nothing). */
static char *cell_lags(const struct keel_shard_raft *s)
{
    size_t cap = 2 + s->progress_len * 42; /* "-", or per peer "%llx=%llu " <= 42 */
    char *out = malloc(cap);
    if (out == NULL) return NULL;
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s->progress_len; i++) {
        const struct keel_peer_progress *p = &s->progress[i];
        uint64_t lag =
            s->raft_last_index > p->match_index ? s->raft_last_index - p->match_index : 0;
        int n = snprintf(out + at, cap - at, "%s%llx=%llu", i > 0 ? " " : "",
                         (unsigned long long)p->member_id, (unsigned long long)lag);
        if (n > 0) at += (size_t)n < cap - at ? (size_t)n : cap - at - 1;
    }
    if (s->progress_len == 0) snprintf(out, cap, "-");
    return out;
}

static void json_endpoint(FILE *out, const struct ctl_endpoint_status *e)
{
    const struct keel_endpoint_status_result *r = &e->res->u.endpoint_status;
    fputs("{\"endpoint\":", out);
    ctl_json_string(out, (const uint8_t *)e->endpoint, strlen(e->endpoint));
    fputc(',', out);
    ctl_json_header(out, &e->res->header);
    fputs(",\"name\":", out);
    ctl_json_string(out, (const uint8_t *)r->name.ptr, r->name.len);
    fprintf(out, ",\"is_learner\":%s,\"shards\":[", r->is_learner ? "true" : "false");
    for (size_t i = 0; i < r->shards_len; i++) {
        const struct keel_shard_raft *s = &r->shards[i];
        fprintf(out,
                "%s{\"shard_id\":%u,\"role\":\"%s\",\"leader_id\":%llu,\"raft_term\":%llu,"
                "\"raft_commit_index\":%llu,\"raft_applied_index\":%llu,\"raft_last_index\":%llu,"
                "\"revision\":%lld,\"progress\":[",
                i > 0 ? "," : "", (unsigned)s->shard_id, role_name(s->role),
                (unsigned long long)s->leader_id, (unsigned long long)s->raft_term,
                (unsigned long long)s->raft_commit_index, (unsigned long long)s->raft_applied_index,
                (unsigned long long)s->raft_last_index, (long long)s->revision);
        for (size_t k = 0; k < s->progress_len; k++) {
            const struct keel_peer_progress *p = &s->progress[k];
            uint64_t lag =
                s->raft_last_index > p->match_index ? s->raft_last_index - p->match_index : 0;
            fprintf(out,
                    "%s{\"member_id\":%llu,\"is_learner\":%s,\"match_index\":%llu,"
                    "\"next_index\":%llu,\"lag\":%llu,\"recent_active\":%s}",
                    k > 0 ? "," : "", (unsigned long long)p->member_id,
                    p->is_learner ? "true" : "false", (unsigned long long)p->match_index,
                    (unsigned long long)p->next_index, (unsigned long long)lag,
                    p->recent_active ? "true" : "false");
        }
        fputs("]}", out);
    }
    fputs("]}", out);
}

static void endpoint_row(char **row, const char *endpoint, uint64_t member_id,
                         const struct keel_shard_raft *s)
{
    row[0] = cell_str(endpoint);
    row[1] = cell_hex(member_id);
    row[2] = cell_u64(s->shard_id);
    row[3] = cell_str(role_name(s->role));
    row[4] = s->leader_id ? cell_hex(s->leader_id) : cell_str("none");
    row[5] = cell_u64(s->raft_term);
    row[6] = cell_u64(s->raft_commit_index);
    row[7] = cell_u64(s->raft_applied_index);
    row[8] = cell_u64(s->raft_last_index);
    row[9] = cell_i64(s->revision);
    row[10] = cell_lags(s);
}

void ctl_print_endpoint_status(FILE *out, const struct ctl_fmt *f,
                               const struct ctl_endpoint_status *eps, size_t n)
{
    static const char *const headers[] = {"ENDPOINT", "ID",       "SHARD",  "ROLE",
                                          "LEADER",   "TERM",     "COMMIT", "APPLIED",
                                          "LAST",     "REVISION", "LAG"};
    enum { COLS = 11 };
    if (f->format == CTL_FORMAT_JSON) {
        fputc('[', out);
        for (size_t i = 0; i < n; i++) {
            if (i > 0) fputc(',', out);
            json_endpoint(out, &eps[i]);
        }
        fputs("]\n", out);
        return;
    }
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) rows += eps[i].res->u.endpoint_status.shards_len;
    char **cells = calloc(rows * COLS + 1, sizeof(*cells));
    if (cells == NULL) return;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const struct keel_endpoint_status_result *r = &eps[i].res->u.endpoint_status;
        for (size_t k = 0; k < r->shards_len; k++, at++)
            endpoint_row(&cells[at * COLS], eps[i].endpoint, eps[i].res->header.member_id,
                         &r->shards[k]);
    }
    ASSERT(at == rows);
    ctl_print_cells(out, f->format, COLS, headers, cells, rows, 0x3e4);
}
