/*
 * keelctl_print.c — one reply per command, in the three output formats of keelctl.h.
 *
 * simple: etcdctl's printer. A key-value pair is a key line then a value line, the bytes
 *         as they are (or "\x61\x62" with --hex); put prints OK (then the previous pair with
 *         --prev-kv); del the number deleted (then the pairs); get --count-only the count;
 *         txn SUCCESS or FAILURE, then each response after a blank line; compact
 *         "compacted revision N"; status and shard-map one comma-separated line per shard,
 *         the cells of their table.
 * json:   {"header":{"shard":S,"revision":R,"raft_term":T,"member_id":M}, ...} on one line;
 *         keys and values base64; every field written, zero or not.
 * table:  get, status and shard-map; the other commands fall back to simple.
 */
#include "tools/keelctl.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

/* ---- simple ----------------------------------------------------------------------------- */

static void simple_bytes(FILE *out, const struct ctl_fmt *f, const uint8_t *s, size_t len)
{
    if (!f->hex) {
        if (len > 0) fwrite(s, 1, len, out);
    } else {
        for (size_t i = 0; i < len; i++) fprintf(out, "\\x%02x", s[i]);
    }
    fputc('\n', out);
}

static void simple_kv(FILE *out, const struct ctl_fmt *f, const struct keel_kv *kv)
{
    if (!f->print_value_only) simple_bytes(out, f, kv->key, kv->key_len);
    simple_bytes(out, f, kv->value, kv->value_len);
}

static void simple_put(FILE *out, const struct ctl_fmt *f, const struct keel_put_result *p)
{
    fputs("OK\n", out);
    if (p->has_prev_kv) simple_kv(out, f, &p->prev_kv);
}

static void simple_range(FILE *out, const struct ctl_fmt *f, const struct keel_range_result *r,
                         bool count_only)
{
    if (count_only) {
        fprintf(out, "%lld\n", (long long)r->count);
        return;
    }
    for (size_t i = 0; i < r->kvs_len; i++) simple_kv(out, f, &r->kvs[i]);
}

static void simple_del(FILE *out, const struct ctl_fmt *f, const struct keel_delete_result *d)
{
    fprintf(out, "%lld\n", (long long)d->deleted);
    for (size_t i = 0; i < d->prev_kvs_len; i++) simple_kv(out, f, &d->prev_kvs[i]);
}

/* ---- json ------------------------------------------------------------------------------- */

static void json_kv(FILE *out, const struct keel_kv *kv)
{
    fputs("{\"key\":", out);
    ctl_json_bytes(out, kv->key, kv->key_len);
    fprintf(out, ",\"create_revision\":%lld,\"mod_revision\":%lld,\"version\":%lld,\"value\":",
            (long long)kv->create_revision, (long long)kv->mod_revision, (long long)kv->version);
    ctl_json_bytes(out, kv->value, kv->value_len);
    fprintf(out, ",\"lease\":%lld}", (long long)kv->lease);
}

static void json_kvs(FILE *out, const char *name, const struct keel_kv *kvs, size_t n)
{
    fprintf(out, "\"%s\":[", name);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) fputc(',', out);
        json_kv(out, &kvs[i]);
    }
    fputc(']', out);
}

static void json_range_body(FILE *out, const struct keel_range_result *r)
{
    json_kvs(out, "kvs", r->kvs, r->kvs_len);
    fprintf(out, ",\"count\":%lld,\"more\":%s", (long long)r->count, r->more ? "true" : "false");
}

static void json_put_body(FILE *out, const struct keel_put_result *p)
{
    if (!p->has_prev_kv) return;
    fputs("\"prev_kv\":", out);
    json_kv(out, &p->prev_kv);
}

static void json_del_body(FILE *out, const struct keel_delete_result *d)
{
    fprintf(out, "\"deleted\":%lld,", (long long)d->deleted);
    json_kvs(out, "prev_kvs", d->prev_kvs, d->prev_kvs_len);
}

static void json_open(FILE *out, const struct keel_result *r)
{
    fputc('{', out);
    ctl_json_header(out, &r->header);
}

/* ---- get, put, del, compact ------------------------------------------------------------- */

static void table_get(FILE *out, const struct ctl_fmt *f, const struct keel_range_result *r)
{
    static const char *const headers[] = {"KEY",          "VALUE",   "CREATE_REVISION",
                                          "MOD_REVISION", "VERSION", "LEASE"};
    enum { COLS = 6 };
    char **cells = calloc(r->kvs_len * COLS + 1, sizeof(*cells));
    if (cells == NULL) return;
    for (size_t i = 0; i < r->kvs_len; i++) {
        const struct keel_kv *kv = &r->kvs[i];
        char **row = &cells[i * COLS];
        row[0] = ctl_text(kv->key, kv->key_len, f->hex);
        row[1] = ctl_text(kv->value, kv->value_len, f->hex);
        int64_t nums[] = {kv->create_revision, kv->mod_revision, kv->version, kv->lease};
        for (int c = 0; c < 4; c++) {
            row[2 + c] = malloc(24);
            if (row[2 + c] != NULL) snprintf(row[2 + c], 24, "%lld", (long long)nums[c]);
        }
    }
    ctl_table(out, COLS, headers, cells, r->kvs_len, 0x3c);
    for (size_t i = 0; i < r->kvs_len * COLS; i++) free(cells[i]);
    free(cells);
}

void ctl_print_get(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    const struct keel_range_result *g = &r->u.range;
    ASSERT(g->kvs != NULL || g->kvs_len == 0);
    ASSERT(g->count >= 0);
    if (f->format == CTL_FORMAT_JSON) {
        json_open(out, r);
        fputc(',', out);
        json_range_body(out, g);
        fputs("}\n", out);
    } else if (f->format == CTL_FORMAT_TABLE && !f->count_only) {
        table_get(out, f, g);
    } else {
        simple_range(out, f, g, f->count_only);
    }
}

void ctl_print_put(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    if (f->format != CTL_FORMAT_JSON) {
        simple_put(out, f, &r->u.put);
        return;
    }
    json_open(out, r);
    if (r->u.put.has_prev_kv) fputc(',', out);
    json_put_body(out, &r->u.put);
    fputs("}\n", out);
}

void ctl_print_del(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    if (f->format != CTL_FORMAT_JSON) {
        simple_del(out, f, &r->u.del);
        return;
    }
    json_open(out, r);
    fputc(',', out);
    json_del_body(out, &r->u.del);
    fputs("}\n", out);
}

void ctl_print_compact(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    if (f->format != CTL_FORMAT_JSON) {
        fprintf(out, "compacted revision %lld\n", (long long)f->compact_revision);
        return;
    }
    json_open(out, r);
    fprintf(out, ",\"compact_revision\":%lld}\n", (long long)f->compact_revision);
}

/* ---- txn -------------------------------------------------------------------------------- */

static void json_txn(FILE *out, const struct keel_result *r)
{
    const struct keel_txn_result *t = &r->u.txn;
    json_open(out, r);
    fprintf(out, ",\"succeeded\":%s,\"responses\":[", t->succeeded ? "true" : "false");
    for (size_t i = 0; i < t->replies_len; i++) {
        const struct keel_op_result *op = &t->replies[i];
        if (i > 0) fputc(',', out);
        if (op->kind == KEEL_OP_RANGE) {
            fputs("{\"response_range\":{", out);
            json_range_body(out, &op->u.range);
        } else if (op->kind == KEEL_OP_PUT) {
            fputs("{\"response_put\":{", out);
            json_put_body(out, &op->u.put);
        } else {
            fputs("{\"response_delete_range\":{", out);
            json_del_body(out, &op->u.del);
        }
        fputs("}}", out);
    }
    fputs("]}\n", out);
}

void ctl_print_txn(FILE *out, const struct ctl_fmt *f, const struct keel_result *r)
{
    const struct keel_txn_result *t = &r->u.txn;
    ASSERT(t->replies != NULL || t->replies_len == 0);
    if (f->format == CTL_FORMAT_JSON) {
        json_txn(out, r);
        return;
    }
    fputs(t->succeeded ? "SUCCESS\n" : "FAILURE\n", out);
    for (size_t i = 0; i < t->replies_len; i++) {
        const struct keel_op_result *op = &t->replies[i];
        fputc('\n', out);
        if (op->kind == KEEL_OP_RANGE) {
            const struct keel_range_result *g = &op->u.range;
            /* count_only is not in the reply: an empty kvs with keys counted is one */
            simple_range(out, f, g, g->kvs_len == 0 && g->count > 0);
        } else if (op->kind == KEEL_OP_PUT) {
            simple_put(out, f, &op->u.put);
        } else {
            simple_del(out, f, &op->u.del);
        }
    }
}
