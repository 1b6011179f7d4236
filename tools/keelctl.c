/*
 * keelctl.c — keel's command-line client (etcdctl's role): parses the command line
 * (keelctl_args.c), reads what a command needs from stdin (a txn script, a put value),
 * connects with libkeel, runs one request, prints its reply (keelctl_print*.c) and exits
 * with the code keelctl.h lists: 0 OK, 1 server error, 2 usage error, 3 connection error.
 *
 * Everything the command needs from stdin is read before connecting, so a bad txn script
 * fails without touching the server. Errors go to stderr as one line:
 * "Error: <text> (<STATUS>[, detail][, server message])".
 */
#include "tools/keelctl.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

#ifndef KEELCTL_VERSION
#define KEELCTL_VERSION "0.0.0"
#endif

/* Stdin bytes, for a put without VALUE: at most value_size_max is ever sent, so reading
 * stops a byte past the protocol maximum and lets the server's limit report it. */
#define STDIN_VALUE_MAX (1572864 + 1)

struct run {
    struct ctl_invocation inv;
    struct ctl_fmt fmt;
    keel_client *client;
    struct keel_result res;
    char err[CTL_ERR_SIZE];
    char *buf; /* put's value from stdin, or get/del's --prefix range_end */
    struct ctl_txn *txn;
};

static int usage_error(const struct run *r, const char *msg)
{
    fprintf(stderr, "Error: %s\n\n", msg);
    ctl_usage(stderr, r->inv.command);
    return CTL_EXIT_USAGE;
}

/* ---- input ------------------------------------------------------------------------------ */

static int read_stdin_value(struct run *r)
{
    r->buf = malloc(STDIN_VALUE_MAX);
    if (r->buf == NULL) return usage_error(r, "out of memory");
    size_t n = fread(r->buf, 1, STDIN_VALUE_MAX, stdin);
    if (ferror(stdin)) return usage_error(r, "cannot read the value from stdin");
    r->buf[n < STDIN_VALUE_MAX ? n : STDIN_VALUE_MAX - 1] = '\0';
    r->inv.opts.pos[1] = (struct ctl_arg){r->buf, n};
    r->inv.opts.pos_len = 2;
    return 0;
}

static int read_txn(struct run *r)
{
    static const char *const prompts[] = {"compares:\n", "success requests (get, put, del):\n",
                                          "failure requests (get, put, del):\n"};
    r->txn = malloc(sizeof(*r->txn));
    if (r->txn == NULL) return usage_error(r, "out of memory");
    ctl_txn_init(r->txn);
    bool prompt = r->inv.opts.interactive;
    enum ctl_txn_section shown = CTL_TXN_DONE;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    /* Bounded by the input: every line is one entry or a section break (ctl_txn_feed caps
     * the entries at CTL_TXN_OPS_MAX per section). */
    while (r->txn->section != CTL_TXN_DONE || !prompt) {
        if (prompt && shown != r->txn->section) {
            shown = r->txn->section;
            fputs(prompts[shown], stdout);
            fflush(stdout);
        }
        if ((n = getline(&line, &cap, stdin)) < 0) break;
        rc = ctl_txn_feed(r->txn, line, (size_t)n, r->err, sizeof(r->err));
        if (rc != 0) {
            fprintf(stderr, "Error: %s\n", r->err);
            break;
        }
    }
    free(line);
    return rc;
}

static int prepare(struct run *r)
{
    struct ctl_opts *o = &r->inv.opts;
    if (r->inv.command == CTL_CMD_PUT && o->pos_len == 1) return read_stdin_value(r);
    if (r->inv.command == CTL_CMD_TXN) return read_txn(r);
    if (r->inv.command == CTL_CMD_GET || r->inv.command == CTL_CMD_DEL) {
        r->buf = malloc(o->pos[0].len + 1);
        if (r->buf == NULL) return usage_error(r, "out of memory");
    }
    return 0;
}

/* ---- commands --------------------------------------------------------------------------- */

static int run_compact(struct run *r)
{
    const struct keel_server_info *info = keel_server_info(r->client);
    struct ctl_opts *o = &r->inv.opts;
    if (!o->shard_set && info->shard_count > 1) {
        snprintf(r->err, sizeof(r->err),
                 "compact: the cluster has %u shards and revisions are per shard: "
                 "name one with --shard N (0..%u)",
                 (unsigned)info->shard_count, (unsigned)info->shard_count - 1);
        return -CTL_EXIT_USAGE;
    }
    if (o->shard_set && o->shard >= info->shard_count) {
        snprintf(r->err, sizeof(r->err), "compact: no shard %u (the cluster has %u)",
                 (unsigned)o->shard, (unsigned)info->shard_count);
        return -CTL_EXIT_USAGE;
    }
    struct keel_compact_args a = {.shard = o->shard, .revision = o->rev, .physical = o->physical};
    r->fmt.compact_revision = o->rev;
    return keel_compact(r->client, &a, &r->res);
}

static int run_member(struct run *r)
{
    struct ctl_opts *o = &r->inv.opts;
    switch (o->sub) {
    case CTL_SUB_LIST:
        return keel_member_list(r->client, o->linearizable, &r->res);
    case CTL_SUB_REMOVE:
        return keel_member_remove(r->client, o->member_id, &r->res);
    case CTL_SUB_PROMOTE:
        return keel_member_promote(r->client, o->member_id, &r->res);
    default:
        break;
    }
    ASSERT(o->sub == CTL_SUB_ADD);
    struct keel_str peer[CTL_URLS_MAX], client[CTL_URLS_MAX];
    struct keel_member_add_args a = {.name = {o->pos[1].s, o->pos[1].len},
                                     .peer_urls = peer,
                                     .client_urls = client,
                                     .as_learner = o->learner};
    int rc = ctl_split_urls(o->peer_urls, "--peer-urls", peer, CTL_URLS_MAX, &a.peer_urls_len,
                            r->err, sizeof(r->err));
    if (rc == 0 && o->client_urls != NULL) {
        rc = ctl_split_urls(o->client_urls, "--client-urls", client, CTL_URLS_MAX,
                            &a.client_urls_len, r->err, sizeof(r->err));
    }
    if (rc == 0 && a.peer_urls_len == 0) {
        snprintf(r->err, sizeof(r->err), "member add: --peer-urls is empty");
        rc = CTL_EXIT_USAGE;
    }
    return rc != 0 ? -rc : keel_member_add(r->client, &a, &r->res);
}

/* Returns a keel status, or -CTL_EXIT_USAGE with r->err set. */
static int run_command(struct run *r)
{
    struct ctl_opts *o = &r->inv.opts;
    size_t cap = o->pos[0].len + 1;
    int rc = 0;
    switch (r->inv.command) {
    case CTL_CMD_PUT: {
        struct keel_put_args a;
        rc = ctl_build_put(o, &a, r->err, sizeof(r->err));
        return rc != 0 ? -rc : keel_put(r->client, &a, &r->res);
    }
    case CTL_CMD_GET: {
        struct keel_range_args a;
        rc = ctl_build_range(o, r->buf, cap, &a, r->err, sizeof(r->err));
        return rc != 0 ? -rc : keel_get(r->client, &a, &r->res);
    }
    case CTL_CMD_DEL: {
        struct keel_delete_args a;
        rc = ctl_build_delete(o, r->buf, cap, &a, r->err, sizeof(r->err));
        return rc != 0 ? -rc : keel_delete(r->client, &a, &r->res);
    }
    case CTL_CMD_TXN: {
        struct keel_txn_args a;
        ctl_txn_args(r->txn, &a);
        return keel_txn(r->client, &a, &r->res);
    }
    case CTL_CMD_COMPACT:
        return run_compact(r);
    case CTL_CMD_STATUS:
        return keel_status(r->client, &r->res);
    case CTL_CMD_MEMBER:
        return run_member(r);
    case CTL_CMD_MOVE_LEADER:
        return keel_move_leader(r->client, o->shard, o->member_id, &r->res);
    default:
        return keel_shard_map(r->client, &r->res);
    }
}

static void print_result(struct run *r)
{
    static void (*const printers[CTL_CMD_COUNT])(FILE *, const struct ctl_fmt *,
                                                 const struct keel_result *) = {
        [CTL_CMD_PUT] = ctl_print_put,
        [CTL_CMD_GET] = ctl_print_get,
        [CTL_CMD_DEL] = ctl_print_del,
        [CTL_CMD_TXN] = ctl_print_txn,
        [CTL_CMD_COMPACT] = ctl_print_compact,
        [CTL_CMD_STATUS] = ctl_print_status,
        [CTL_CMD_SHARD_MAP] = ctl_print_shard_map,
        [CTL_CMD_MEMBER] = ctl_print_members,
        [CTL_CMD_MOVE_LEADER] = ctl_print_move_leader,
    };
    ASSERT(r->inv.command > CTL_CMD_NONE && r->inv.command < CTL_CMD_COUNT);
    ASSERT(printers[r->inv.command] != NULL);
    printers[r->inv.command](stdout, &r->fmt, &r->res);
}

/* ---- endpoint status: one connection per endpoint ---------------------------------------- */

/* Member operations need the MEMBER feature (protocol.md): a single-node keeld lacks it. */
static bool member_granted(keel_client *c, const char *endpoint)
{
    if (keel_server_info(c)->features & KEEL_FEATURE_MEMBER) return true;
    char ep[64] = "";
    if (endpoint == NULL) keel_endpoint_current(c, ep, sizeof(ep));
    fprintf(stderr,
            "Error: %s does not serve member operations (feature MEMBER not granted: "
            "not a replicated keeld)\n",
            endpoint != NULL ? endpoint : ep);
    return false;
}

#define STATUS_ENDPOINTS_MAX 64 /* protocol.md members_max */

struct ep_set {
    const char *names[STATUS_ENDPOINTS_MAX];
    int len;
    char buf[STATUS_ENDPOINTS_MAX * 258];
    size_t used;
};

static void ep_add(struct ep_set *s, const char *p, size_t len)
{
    if (s->len == STATUS_ENDPOINTS_MAX || s->used + len + 1 > sizeof(s->buf)) return;
    memcpy(s->buf + s->used, p, len);
    s->buf[s->used + len] = '\0';
    s->names[s->len++] = s->buf + s->used;
    s->used += len + 1;
}

/* --cluster: every member's first client URL, from a member list of --endpoints. */
static int ep_from_members(struct run *r, const struct keel_options *opt, struct ep_set *s)
{
    int st = keel_connect(r->inv.global.endpoints, opt, &r->client);
    if (st == 0 && !member_granted(r->client, NULL)) return CTL_EXIT_SERVER;
    if (st == 0) st = keel_member_list(r->client, false, &r->res);
    if (st != 0) {
        ctl_print_error(stderr, st, st > 0 ? &r->res.error : NULL, r->inv.global.endpoints);
        return ctl_exit_for_status(st);
    }
    for (size_t i = 0; i < r->res.u.members.members_len; i++) {
        const struct keel_member *m = &r->res.u.members.members[i];
        if (m->client_urls_len > 0) ep_add(s, m->client_urls[0].ptr, m->client_urls[0].len);
    }
    return 0;
}

static int ep_list(struct run *r, const struct keel_options *opt, struct ep_set *s)
{
    if (r->inv.opts.cluster) return ep_from_members(r, opt, s);
    const char *p = r->inv.global.endpoints;
    while (*p != '\0') { /* bounded by the string and STATUS_ENDPOINTS_MAX */
        size_t len = strcspn(p, ",");
        if (len > 0) ep_add(s, p, len);
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

static int endpoint_status(struct run *r, const struct keel_options *options)
{
    static struct ep_set s;
    static keel_client *clients[STATUS_ENDPOINTS_MAX];
    static struct keel_result res[STATUS_ENDPOINTS_MAX];
    struct ctl_endpoint_status ok[STATUS_ENDPOINTS_MAX];
    struct keel_options opt = *options;
    opt.shard_aware = false;
    int rc = ep_list(r, &opt, &s), n = 0;
    if (rc != 0) return rc;
    for (int i = 0; i < s.len; i++) { /* one endpoint each: no following, no retries */
        int st = keel_connect(s.names[i], &opt, &clients[i]);
        if (st == 0 && !member_granted(clients[i], s.names[i])) {
            if (rc == 0) rc = CTL_EXIT_SERVER;
            continue;
        }
        if (st == 0) st = keel_endpoint_status(clients[i], &res[i]);
        if (st != 0) {
            ctl_print_error(stderr, st, st > 0 ? &res[i].error : NULL, s.names[i]);
            if (rc == 0) rc = ctl_exit_for_status(st);
            continue;
        }
        ok[n++] = (struct ctl_endpoint_status){s.names[i], &res[i]};
    }
    if (n > 0) ctl_print_endpoint_status(stdout, &r->fmt, ok, (size_t)n);
    for (int i = 0; i < s.len; i++) keel_close(clients[i]);
    if (s.len == 0) {
        fprintf(stderr, "Error: no endpoint to ask (no member has a client URL)\n");
        rc = CTL_EXIT_SERVER;
    }
    return fflush(stdout) == 0 ? rc : CTL_EXIT_SERVER;
}

static int connect_and_run(struct run *r)
{
    struct keel_options opt;
    keel_options_default(&opt);
    if (r->inv.global.timeout_ms > 0) opt.timeout_ms = r->inv.global.timeout_ms;
    opt.shard_aware = r->inv.global.shard_aware;
    if (r->inv.command == CTL_CMD_ENDPOINT) return endpoint_status(r, &opt);
    int st = keel_connect(r->inv.global.endpoints, &opt, &r->client);
    if (st != KEEL_STATUS_OK) {
        ctl_print_error(stderr, st, NULL, r->inv.global.endpoints);
        return ctl_exit_for_status(st);
    }
    if (r->inv.command >= CTL_CMD_MEMBER && !member_granted(r->client, NULL))
        return CTL_EXIT_SERVER;
    st = run_command(r);
    if (st == -CTL_EXIT_USAGE) return usage_error(r, r->err);
    if (st != KEEL_STATUS_OK) {
        ctl_print_error(stderr, st, st > 0 ? &r->res.error : NULL, NULL);
        return ctl_exit_for_status(st);
    }
    print_result(r);
    return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_SERVER;
}

int main(int argc, char **argv)
{
    static struct run r; /* static: the result and txn stay off the stack */
    int rc = ctl_parse_args(argc, argv, &r.inv, r.err, sizeof(r.err));
    if (rc != 0) return usage_error(&r, r.err);
    if (r.inv.global.version) {
        printf("keelctl version: %s\nAPI version: 1\n", KEELCTL_VERSION);
        return CTL_EXIT_OK;
    }
    if (r.inv.global.help) {
        ctl_usage(stdout, r.inv.command);
        return CTL_EXIT_OK;
    }
    r.fmt = (struct ctl_fmt){.format = r.inv.global.format,
                             .hex = r.inv.global.hex,
                             .print_value_only = r.inv.opts.print_value_only,
                             .count_only = r.inv.opts.count_only,
                             .endpoint = r.inv.global.endpoints};
    rc = prepare(&r);
    if (rc == 0) rc = connect_and_run(&r);
    if (r.client != NULL) keel_close(r.client);
    if (r.txn != NULL) ctl_txn_free(r.txn);
    free(r.txn);
    free(r.buf);
    return rc;
}
