/*
 * keelctl_print_admin.c — the status and shard-map replies (formats as in keelctl_print.c).
 *
 * Both build their rows as table cells first: table prints them with borders, simple as
 * one comma-separated line per shard (as etcdctl's endpoint status), json from the reply.
 */
#include "tools/keelctl.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

#define CELL_SIZE 32

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

static char *cell_bytes(uint64_t v)
{
    char *s = malloc(CELL_SIZE);
    if (s != NULL) ctl_human_bytes(v, s, CELL_SIZE);
    return s;
}

void ctl_print_cells(FILE *out, enum ctl_format format, size_t cols, const char *const *headers,
                     char **cells, size_t rows, uint32_t right_mask)
{
    if (format == CTL_FORMAT_TABLE) {
        ctl_table(out, cols, headers, cells, rows, right_mask);
    } else {
        for (size_t r = 0; r < rows; r++) {
            for (size_t c = 0; c < cols; c++) {
                const char *s = cells[r * cols + c];
                fprintf(out, "%s%s", c > 0 ? ", " : "", s != NULL ? s : "");
            }
            fputc('\n', out);
        }
    }
    for (size_t i = 0; i < rows * cols; i++) free(cells[i]);
    free(cells);
}

/* ---- status ----------------------------------------------------------------------------- */

static void json_status(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    fputc('{', out);
    ctl_json_header(out, &r->header);
    fputs(",\"endpoint\":", out);
    const char *ep = f->endpoint != NULL ? f->endpoint : "";
    ctl_json_string(out, (const uint8_t *)ep, strlen(ep));
    fputs(",\"shards\":[", out);
    for (size_t i = 0; i < r->u.status.shards_len; i++) {
        const struct keel_shard_status *s = &r->u.status.shards[i];
        fprintf(out,
                "%s{\"shard_id\":%u,\"revision\":%lld,\"compact_revision\":%lld,\"keys\":%llu,"
                "\"memory_bytes\":%llu,\"wal_bytes\":%llu,\"connections\":%u,"
                "\"raft_term\":%llu,\"raft_leader_id\":%llu,\"raft_commit_index\":%llu,"
                "\"raft_applied_index\":%llu}",
                i > 0 ? "," : "", (unsigned)s->shard_id, (long long)s->revision,
                (long long)s->compact_revision, (unsigned long long)s->keys,
                (unsigned long long)s->memory_bytes, (unsigned long long)s->wal_bytes,
                (unsigned)s->connections, (unsigned long long)s->raft_term,
                (unsigned long long)s->raft_leader_id, (unsigned long long)s->raft_commit_index,
                (unsigned long long)s->raft_applied_index);
    }
    fputs("]}\n", out);
}

void ctl_print_status(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    static const char *const headers[] = {"SHARD",  "REVISION", "COMPACT REVISION", "KEYS",
                                          "MEMORY", "WAL",      "CONNECTIONS"};
    enum { COLS = 7 };
    if (f->format == CTL_FORMAT_JSON) {
        json_status(out, f, r);
        return;
    }
    size_t rows = r->u.status.shards_len;
    ASSERT(r->u.status.shards != NULL || rows == 0);
    char **cells = calloc(rows * COLS + 1, sizeof(*cells));
    if (cells == NULL) return;
    for (size_t i = 0; i < rows; i++) {
        const struct keel_shard_status *s = &r->u.status.shards[i];
        char **row = &cells[i * COLS];
        row[0] = cell_u64(s->shard_id);
        row[1] = cell_i64(s->revision);
        row[2] = cell_i64(s->compact_revision);
        row[3] = cell_u64(s->keys);
        row[4] = cell_bytes(s->memory_bytes);
        row[5] = cell_bytes(s->wal_bytes);
        row[6] = cell_u64(s->connections);
    }
    ctl_print_cells(out, f->format, COLS, headers, cells, rows, 0x7f);
}

/* ---- shard map -------------------------------------------------------------------------- */

static void json_shard_map(FILE *out, const struct keel_result *r)
{
    fputc('{', out);
    ctl_json_header(out, &r->header);
    fprintf(out, ",\"version\":%llu,\"shards\":[", (unsigned long long)r->u.shard_map.version);
    for (size_t i = 0; i < r->u.shard_map.shards_len; i++) {
        const struct keel_shard_range *s = &r->u.shard_map.shards[i];
        fprintf(out, "%s{\"shard_id\":%u,\"port\":%u,\"leader_id\":%llu,\"start_key\":",
                i > 0 ? "," : "", (unsigned)s->shard_id, (unsigned)s->port,
                (unsigned long long)s->leader_id);
        ctl_json_bytes(out, s->start_key, s->start_key_len);
        fputs(",\"end_key\":", out);
        ctl_json_bytes(out, s->end_key, s->end_key_len);
        fputc('}', out);
    }
    fputs("]}\n", out);
}

void ctl_print_shard_map(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    static const char *const headers[] = {"SHARD", "PORT", "START KEY", "END KEY"};
    enum { COLS = 4 };
    if (f->format == CTL_FORMAT_JSON) {
        json_shard_map(out, r);
        return;
    }
    size_t rows = r->u.shard_map.shards_len;
    ASSERT(r->u.shard_map.shards != NULL || rows == 0);
    char **cells = calloc(rows * COLS + 1, sizeof(*cells));
    if (cells == NULL) return;
    for (size_t i = 0; i < rows; i++) {
        const struct keel_shard_range *s = &r->u.shard_map.shards[i];
        char **row = &cells[i * COLS];
        row[0] = cell_u64(s->shard_id);
        row[1] = cell_u64(s->port);
        row[2] = ctl_text(s->start_key, s->start_key_len, f->hex);
        row[3] = ctl_text(s->end_key, s->end_key_len, f->hex);
    }
    ctl_print_cells(out, f->format, COLS, headers, cells, rows, 0x3);
}
