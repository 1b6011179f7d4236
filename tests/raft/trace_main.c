/*
 * trace_main.c — raft_trace: runs golden-trace files (trace.h describes the format), compares
 * each command's output with the file, or rewrites the file (--rewrite, or KEEL_REWRITE=1).
 *
 *   raft_trace [--rewrite] FILE...
 *
 * Exit 0 when every file matched (or was rewritten), 1 on any difference: the differing
 * blocks are printed, and `diff -u` of the file against what the run produced.
 */
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- output ------------------------------------------------------------------------------ */

void out_printf(struct trace_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    if (o->len + (size_t)n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + (size_t)n + 1) cap *= 2;
        o->ptr = realloc(o->ptr, cap);
        if (!o->ptr) abort();
        o->cap = cap;
    }
    vsnprintf(o->ptr + o->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    o->len += (size_t)n;
}

void out_free(struct trace_out *o)
{
    free(o->ptr);
    memset(o, 0, sizeof(*o));
}

/* ---- arguments --------------------------------------------------------------------------- */

const char *cmd_pos(const struct trace_cmd *c, u32 index)
{
    for (u32 i = 0; i < c->argc; i++) {
        if (strchr(c->argv[i], '=')) continue;
        if (index-- == 0) return c->argv[i];
    }
    return NULL;
}

u32 cmd_pos_count(const struct trace_cmd *c)
{
    u32 n = 0;
    while (cmd_pos(c, n)) n++;
    return n;
}

const char *cmd_kv(const struct trace_cmd *c, const char *key)
{
    size_t klen = strlen(key);
    for (u32 i = 0; i < c->argc; i++)
        if (strncmp(c->argv[i], key, klen) == 0 && c->argv[i][klen] == '=')
            return c->argv[i] + klen + 1;
    return NULL;
}

bool cmd_flag(const struct trace_cmd *c, const char *flag)
{
    for (u32 i = 0; i < c->argc; i++)
        if (strcmp(c->argv[i], flag) == 0) return true;
    return false;
}

bool parse_u64(struct trace_env *env, const char *s, u64 *v)
{
    char *end = NULL;
    errno = 0;
    if (!s || !*s || *s == '-') goto bad;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) goto bad;
    *v = x;
    return true;
bad:
    out_printf(env->out, "error: \"%s\" is not a number\n", s ? s : "(missing)");
    return false;
}

int parse_ids(struct trace_env *env, const char *s, u64 *ids, int cap)
{
    int n = 0;
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", s);
    for (char *save = NULL, *t = strtok_r(tmp, ",()", &save); t; t = strtok_r(NULL, ",()", &save)) {
        if (n == cap) {
            out_printf(env->out, "error: more than %d ids in \"%s\"\n", cap, s);
            return -1;
        }
        if (!parse_u64(env, t, &ids[n])) return -1;
        if (ids[n] == 0 || ids[n] >= TRACE_NODES_MAX) {
            out_printf(env->out, "error: id %s out of range 1..%d\n", t, TRACE_NODES_MAX - 1);
            return -1;
        }
        n++;
    }
    return n;
}

/* ---- commands ---------------------------------------------------------------------------- */

static const struct {
    const char *name;
    trace_handler handler;
} trace_cmd_table[] = {
    {"add-nodes", cmd_add_nodes},
    {"crash", cmd_crash},
    {"restart", cmd_restart},
    {"status", cmd_status},
    {"raft-log", cmd_raft_log},
    {"compact", cmd_compact},
    {"campaign", cmd_campaign},
    {"tick", cmd_tick},
    {"tick-heartbeat", cmd_tick_heartbeat},
    {"tick-election", cmd_tick_election},
    {"transfer-leader", cmd_transfer_leader},
    {"propose", cmd_propose},
    {"propose-conf-change", cmd_propose_conf_change},
    {"read-index", cmd_read_index},
    {"process-ready", cmd_process_ready},
    {"persist", cmd_persist},
    {"deliver-msgs", cmd_deliver_msgs},
    {"drop-msgs", cmd_drop_msgs},
    {"stabilize", cmd_stabilize},
    {"partition", cmd_partition},
    {"heal", cmd_heal},
    {"snapshot-failed", cmd_snapshot_failed},
    {"unreachable", cmd_unreachable},
};

/* Runs one command line; its output goes to o (never empty: "ok" when silent). */
static void run_command(struct trace_env *env, const char *line, struct trace_out *o)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", line);
    struct trace_cmd c = {0};
    char *save = NULL;
    c.name = strtok_r(buf, " \t", &save);
    for (char *t = strtok_r(NULL, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (c.argc == TRACE_ARGS_MAX) break;
        c.argv[c.argc++] = t;
    }
    env->out = o;
    trace_handler handler = NULL;
    for (size_t i = 0; i < sizeof(trace_cmd_table) / sizeof(trace_cmd_table[0]); i++)
        if (strcmp(trace_cmd_table[i].name, c.name) == 0) handler = trace_cmd_table[i].handler;
    if (handler) {
        handler(env, &c);
        env_check_safety(env);
        env_report_changes(env);
    } else {
        out_printf(o, "error: unknown command \"%s\"\n", c.name);
    }
    if (o->len == 0) out_printf(o, "ok\n");
    /* A blank line would end the block: show it as a lone "." instead. */
    if (o->ptr[0] == '\n') {
        struct trace_out fixed = {0};
        out_printf(&fixed, ".%s", o->ptr);
        out_free(o);
        *o = fixed;
    }
    for (size_t i = 0; i + 1 < o->len; i++) {
        if (o->ptr[i] != '\n' || o->ptr[i + 1] != '\n') continue;
        struct trace_out fixed = {0};
        out_printf(&fixed, "%.*s", (int)(i + 1), o->ptr);
        for (size_t j = i + 1; j < o->len; j++) {
            if (o->ptr[j] == '\n' && o->ptr[j - 1] == '\n') out_printf(&fixed, ".");
            out_printf(&fixed, "%c", o->ptr[j]);
        }
        out_free(o);
        *o = fixed;
        break;
    }
}

/* ---- files ------------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)size + 1);
    if (!p || fread(p, 1, (size_t)size, f) != (size_t)size) abort();
    p[size] = 0;
    fclose(f);
    *len = (size_t)size;
    return p;
}

static bool write_file(const char *path, const char *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Cuts the next line off *p (without its newline); NULL at the end. */
static char *next_line(char **p)
{
    if (!*p || !**p) return NULL;
    char *line = *p;
    char *nl = strchr(line, '\n');
    if (nl) {
        *nl = 0;
        *p = nl + 1;
    } else {
        *p = line + strlen(line);
    }
    return line;
}

static bool is_comment_or_blank(const char *line)
{
    while (*line == ' ' || *line == '\t') line++;
    return *line == 0 || *line == '#';
}

/* Runs the file at path; returns true when the output matched. The produced text (the file as
 * it should read) goes to produced. */
static bool run_file(const char *path, const char *text, struct trace_out *produced, bool quiet)
{
    char *copy = strdup(text);
    char *p = copy;
    bool same = true;
    struct trace_env env;
    env_init(&env);
    u32 line_no = 0;
    for (char *line = next_line(&p); line; line = next_line(&p)) {
        line_no++;
        if (is_comment_or_blank(line)) {
            out_printf(produced, "%s\n", line);
            continue;
        }
        u32 cmd_line_no = line_no;
        out_printf(produced, "%s\n----\n", line);
        char *sep = next_line(&p);
        line_no++;
        if (!sep || strcmp(sep, "----") != 0) {
            fprintf(stderr, "%s:%u: a command must be followed by a line \"----\"\n", path,
                    cmd_line_no);
            same = false;
            if (!sep) break;
        }
        struct trace_out expected = {0}, actual = {0};
        out_printf(&expected, "%s", "");
        /* Expected output: every line up to a blank line or the end. */
        while (*p && *p != '\n') {
            char *l = next_line(&p);
            line_no++;
            out_printf(&expected, "%s\n", l);
        }
        run_command(&env, line, &actual);
        out_printf(produced, "%s", actual.ptr);
        if (strcmp(expected.ptr, actual.ptr) != 0) {
            if (same && !quiet)
                fprintf(stderr, "%s:%u: output of \"%s\" differs\n", path, cmd_line_no, line);
            same = false;
        }
        out_free(&expected);
        out_free(&actual);
    }
    env_free(&env);
    free(copy);
    return same;
}

static void show_diff(const char *path, const struct trace_out *produced)
{
    char tmp[512];
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    snprintf(tmp, sizeof(tmp), "%s/raft_trace.%s.%ld.out", dir, base, (long)getpid());
    if (!write_file(tmp, produced->ptr, produced->len)) {
        fprintf(stderr, "cannot write %s\n", tmp);
        return;
    }
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "diff -u '%s' '%s' 1>&2", path, tmp);
    fflush(stderr);
    if (system(cmd) == -1) fprintf(stderr, "cannot run diff\n");
    fprintf(stderr, "the run's output is in %s; regenerate with raft_trace --rewrite %s\n", tmp,
            path);
}

int main(int argc, char **argv)
{
    bool rewrite = getenv("KEEL_REWRITE") && strcmp(getenv("KEEL_REWRITE"), "1") == 0;
    int failed = 0, files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rewrite") == 0 || strcmp(argv[i], "-rewrite") == 0) {
            rewrite = true;
            continue;
        }
        size_t len = 0;
        char *text = read_file(argv[i], &len);
        if (!text) {
            fprintf(stderr, "raft_trace: cannot read %s: %s\n", argv[i], strerror(errno));
            failed++;
            continue;
        }
        files++;
        struct trace_out produced = {0};
        out_printf(&produced, "%s", "");
        bool same = run_file(argv[i], text, &produced, rewrite);
        if (rewrite) {
            if (strcmp(produced.ptr, text) != 0) {
                if (!write_file(argv[i], produced.ptr, produced.len)) abort();
                printf("rewrote %s\n", argv[i]);
            }
        } else if (!same || strcmp(produced.ptr, text) != 0) {
            show_diff(argv[i], &produced);
            failed++;
        }
        out_free(&produced);
        free(text);
    }
    if (files == 0 && failed == 0) {
        fprintf(stderr, "usage: raft_trace [--rewrite] FILE...\n");
        return 2;
    }
    printf("raft_trace: %d file(s), %d failed%s\n", files, failed, rewrite ? " (rewrite)" : "");
    return failed ? 1 : 0;
}
