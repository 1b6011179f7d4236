/*
 * keelctl_args.c — keelctl's command line: global and per-command flags (etcdctl's names),
 * positional arguments, usage texts, and the libkeel request arguments built from them.
 *
 * Flags may come before or after the command and its arguments (as with etcdctl/cobra);
 * "--" ends the flags, so a key or value that starts with '-' follows it. A flag's value
 * is the next argument or follows '='. Every flag is checked against the command it is
 * given with, and a flag the command does not take is a usage error.
 */
#include "tools/keelctl.h"

#include "core/assert.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- flag table ------------------------------------------------------------------------- */

enum flag_id {
    F_ENDPOINTS,
    F_WRITE_OUT,
    F_TIMEOUT,
    F_SHARD_AWARE,
    F_HEX,
    F_HELP,
    F_VERSION,
    F_PREV_KV,
    F_LEASE,
    F_PREFIX,
    F_FROM_KEY,
    F_LIMIT,
    F_REV,
    F_KEYS_ONLY,
    F_COUNT_ONLY,
    F_SORT_BY,
    F_ORDER,
    F_PRINT_VALUE_ONLY,
    F_INTERACTIVE,
    F_PHYSICAL,
    F_SHARD,
    F_PEER_URLS,
    F_CLIENT_URLS,
    F_LEARNER,
    F_LINEARIZABLE,
    F_CLUSTER,
};

#define ON(cmd)    (1u << (cmd))
#define GLOBAL     (1u << 31) /* any command, never inside a txn script */
#define TXN_OK     (1u << 30) /* also allowed on a txn script's request lines */
#define RANGE_CMDS (ON(CTL_CMD_GET) | ON(CTL_CMD_DEL))

struct flag_spec {
    const char *name;
    char short_name; /* 0: none */
    enum flag_id id;
    bool takes_value;
    uint32_t where;
};

static const struct flag_spec flags[] = {
    {"endpoints", 0, F_ENDPOINTS, true, GLOBAL},
    {"write-out", 'w', F_WRITE_OUT, true, GLOBAL},
    {"timeout", 0, F_TIMEOUT, true, GLOBAL},
    {"shard-aware", 0, F_SHARD_AWARE, false, GLOBAL},
    {"hex", 0, F_HEX, false, GLOBAL},
    {"help", 'h', F_HELP, false, GLOBAL},
    {"version", 0, F_VERSION, false, GLOBAL},
    {"prev-kv", 0, F_PREV_KV, false, ON(CTL_CMD_PUT) | ON(CTL_CMD_DEL) | TXN_OK},
    {"lease", 0, F_LEASE, true, ON(CTL_CMD_PUT) | TXN_OK},
    {"prefix", 0, F_PREFIX, false, RANGE_CMDS | TXN_OK},
    {"from-key", 0, F_FROM_KEY, false, RANGE_CMDS | TXN_OK},
    {"limit", 0, F_LIMIT, true, ON(CTL_CMD_GET) | TXN_OK},
    {"rev", 0, F_REV, true, ON(CTL_CMD_GET) | TXN_OK},
    {"keys-only", 0, F_KEYS_ONLY, false, ON(CTL_CMD_GET) | TXN_OK},
    {"count-only", 0, F_COUNT_ONLY, false, ON(CTL_CMD_GET) | TXN_OK},
    {"sort-by", 0, F_SORT_BY, true, ON(CTL_CMD_GET) | TXN_OK},
    {"order", 0, F_ORDER, true, ON(CTL_CMD_GET) | TXN_OK},
    {"print-value-only", 0, F_PRINT_VALUE_ONLY, false, ON(CTL_CMD_GET)},
    {"interactive", 'i', F_INTERACTIVE, false, ON(CTL_CMD_TXN)},
    {"physical", 0, F_PHYSICAL, false, ON(CTL_CMD_COMPACT)},
    {"shard", 0, F_SHARD, true, ON(CTL_CMD_COMPACT)},
    {"peer-urls", 0, F_PEER_URLS, true, ON(CTL_CMD_MEMBER)},
    {"client-urls", 0, F_CLIENT_URLS, true, ON(CTL_CMD_MEMBER)},
    {"learner", 0, F_LEARNER, false, ON(CTL_CMD_MEMBER)},
    {"linearizable", 0, F_LINEARIZABLE, false, ON(CTL_CMD_MEMBER)},
    {"cluster", 0, F_CLUSTER, false, ON(CTL_CMD_ENDPOINT)},
};

static const char *const command_names[CTL_CMD_COUNT] = {
    [CTL_CMD_NONE] = "",
    [CTL_CMD_PUT] = "put",
    [CTL_CMD_GET] = "get",
    [CTL_CMD_DEL] = "del",
    [CTL_CMD_TXN] = "txn",
    [CTL_CMD_COMPACT] = "compact",
    [CTL_CMD_STATUS] = "status",
    [CTL_CMD_SHARD_MAP] = "shard-map",
    [CTL_CMD_MEMBER] = "member",
    [CTL_CMD_ENDPOINT] = "endpoint",
    [CTL_CMD_MOVE_LEADER] = "move-leader",
};

const char *ctl_command_name(enum ctl_command cmd)
{
    return (cmd >= 0 && cmd < CTL_CMD_COUNT) ? command_names[cmd] : "";
}

static enum ctl_command command_lookup(const char *name)
{
    for (int c = CTL_CMD_PUT; c < CTL_CMD_COUNT; c++) {
        if (strcmp(name, command_names[c]) == 0) return (enum ctl_command)c;
    }
    return CTL_CMD_NONE;
}

static int fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return CTL_EXIT_USAGE;
}

/* A flag argument: "--name", "--name=value", "-x", "-x=value" or "-xvalue". */
static const struct flag_spec *flag_lookup(const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
            if (strlen(flags[i].name) == n && strncmp(flags[i].name, name, n) == 0) {
                if (eq != NULL) *inline_value = eq + 1;
                return &flags[i];
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (flags[i].short_name != 0 && flags[i].short_name == arg[1]) {
            if (arg[2] != '\0') *inline_value = arg[2] == '=' ? arg + 3 : arg + 2;
            return &flags[i];
        }
    }
    return NULL;
}

static bool is_flag(const struct ctl_arg *a)
{
    return a->len > 1 && a->s[0] == '-';
}

/* ---- values ----------------------------------------------------------------------------- */

static bool parse_i64(const char *s, int base, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s == '\0') return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, base);
    if (errno != 0 || *end != '\0' || v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (s == NULL || strcmp(s, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "false") == 0) {
        *out = false;
        return true;
    }
    return false;
}

static int set_format(struct ctl_global *g, const char *v, char *err, size_t err_size)
{
    if (strcmp(v, "simple") == 0) {
        g->format = CTL_FORMAT_SIMPLE;
    } else if (strcmp(v, "json") == 0) {
        g->format = CTL_FORMAT_JSON;
    } else if (strcmp(v, "table") == 0) {
        g->format = CTL_FORMAT_TABLE;
    } else {
        return fail(err, err_size, "unknown output format \"%s\" (simple, json, table)", v);
    }
    return 0;
}

static int set_sort(struct ctl_opts *o, const char *v, char *err, size_t err_size)
{
    static const char *const names[] = {"key", "version", "create", "modify", "value"};
    static const enum keel_sort_target targets[] = {
        KEEL_SORT_KEY, KEEL_SORT_VERSION, KEEL_SORT_CREATE, KEEL_SORT_MOD, KEEL_SORT_VALUE};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(v, names[i]) == 0) {
            o->sort_target = targets[i];
            if (o->order == KEEL_SORT_NONE) o->order = KEEL_SORT_ASCEND;
            return 0;
        }
    }
    return fail(err, err_size, "bad --sort-by \"%s\" (key, version, create, modify, value)", v);
}

static int set_order(struct ctl_opts *o, const char *v, char *err, size_t err_size)
{
    if (strcasecmp(v, "ascend") == 0) {
        o->order = KEEL_SORT_ASCEND;
    } else if (strcasecmp(v, "descend") == 0) {
        o->order = KEEL_SORT_DESCEND;
    } else {
        return fail(err, err_size, "bad --order \"%s\" (ascend, descend)", v);
    }
    return 0;
}

static int set_global(struct ctl_global *g, enum flag_id id, const char *v, char *err,
                      size_t err_size)
{
    int64_t n = 0;
    switch (id) {
    case F_ENDPOINTS:
        if (*v == '\0') return fail(err, err_size, "--endpoints must not be empty");
        g->endpoints = v;
        return 0;
    case F_WRITE_OUT:
        return set_format(g, v, err, err_size);
    case F_TIMEOUT:
        if (!parse_i64(v, 10, 1, INT_MAX, &n)) {
            return fail(err, err_size, "bad --timeout \"%s\" (milliseconds, >= 1)", v);
        }
        g->timeout_ms = (int)n;
        return 0;
    default:
        return fail(err, err_size, "internal: flag %d is not global", (int)id);
    }
}

/* Value flags of commands; boolean ones are set by set_bool_flag. */
static int set_command_value(struct ctl_opts *o, enum flag_id id, const char *v, char *err,
                             size_t err_size)
{
    int64_t n = 0;
    switch (id) {
    case F_LEASE: /* etcdctl writes lease ids in hex */
        if (!parse_i64(v, 16, 0, INT64_MAX, &n)) {
            return fail(err, err_size, "bad --lease \"%s\" (a lease id in hex)", v);
        }
        o->lease = n;
        return 0;
    case F_LIMIT:
    case F_REV:
        if (!parse_i64(v, 10, 0, INT64_MAX, &n)) {
            return fail(err, err_size, "bad --%s \"%s\" (an integer >= 0)",
                        id == F_LIMIT ? "limit" : "rev", v);
        }
        *(id == F_LIMIT ? &o->limit : &o->rev) = n;
        return 0;
    case F_SORT_BY:
        return set_sort(o, v, err, err_size);
    case F_ORDER:
        return set_order(o, v, err, err_size);
    case F_SHARD:
        if (!parse_i64(v, 10, 0, UINT16_MAX - 1, &n)) {
            return fail(err, err_size, "bad --shard \"%s\" (a shard index)", v);
        }
        o->shard = (uint16_t)n;
        o->shard_set = true;
        return 0;
    case F_PEER_URLS:
    case F_CLIENT_URLS:
        *(id == F_PEER_URLS ? &o->peer_urls : &o->client_urls) = v;
        return 0;
    default:
        return fail(err, err_size, "internal: flag %d takes no value", (int)id);
    }
}

static void set_bool_flag(struct ctl_global *g, struct ctl_opts *o, enum flag_id id, bool on)
{
    bool *target[] = {
        [F_SHARD_AWARE] = g != NULL ? &g->shard_aware : NULL,
        [F_HEX] = g != NULL ? &g->hex : NULL,
        [F_HELP] = g != NULL ? &g->help : NULL,
        [F_VERSION] = g != NULL ? &g->version : NULL,
        [F_PREV_KV] = &o->prev_kv,
        [F_PREFIX] = &o->prefix,
        [F_FROM_KEY] = &o->from_key,
        [F_KEYS_ONLY] = &o->keys_only,
        [F_COUNT_ONLY] = &o->count_only,
        [F_PRINT_VALUE_ONLY] = &o->print_value_only,
        [F_INTERACTIVE] = &o->interactive,
        [F_PHYSICAL] = &o->physical,
        [F_LEARNER] = &o->learner,
        [F_LINEARIZABLE] = &o->linearizable,
        [F_CLUSTER] = &o->cluster,
    };
    if ((size_t)id < sizeof(target) / sizeof(target[0]) && target[id] != NULL) *target[id] = on;
}

/* ---- parsing ---------------------------------------------------------------------------- */

struct parse_ctx {
    enum ctl_command cmd;
    bool in_txn;
    struct ctl_global *global; /* NULL inside a txn script */
    struct ctl_opts *opts;
    char *err;
    size_t err_size;
};

static int apply_flag(struct parse_ctx *p, const struct ctl_arg *args, int len, int *i)
{
    const char *arg = args[*i].s;
    const char *value = NULL;
    const struct flag_spec *f = flag_lookup(arg, &value);
    bool allowed = f != NULL && (p->in_txn ? (f->where & TXN_OK) && (f->where & ON(p->cmd))
                                           : (f->where & (GLOBAL | ON(p->cmd))) != 0);
    if (!allowed) {
        if (f != NULL && p->cmd != CTL_CMD_NONE) {
            return fail(p->err, p->err_size, "unknown flag: %s (for %s)", arg,
                        ctl_command_name(p->cmd));
        }
        return fail(p->err, p->err_size, "unknown flag: %s", arg);
    }
    if (!f->takes_value) {
        bool on = true;
        if (!parse_bool(value, &on)) {
            return fail(p->err, p->err_size, "bad value for --%s: \"%s\"", f->name, value);
        }
        set_bool_flag(p->global, p->opts, f->id, on);
        return 0;
    }
    if (value == NULL) {
        if (*i + 1 >= len) return fail(p->err, p->err_size, "flag needs an argument: %s", arg);
        *i += 1;
        value = args[*i].s;
    }
    if (f->where & GLOBAL) return set_global(p->global, f->id, value, p->err, p->err_size);
    return set_command_value(p->opts, f->id, value, p->err, p->err_size);
}

static int parse_loop(struct parse_ctx *p, const struct ctl_arg *args, int len)
{
    bool flags_done = false;
    for (int i = 0; i < len; i++) {
        if (!flags_done && strcmp(args[i].s, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (!flags_done && is_flag(&args[i])) {
            int rc = apply_flag(p, args, len, &i);
            if (rc != 0) return rc;
            continue;
        }
        if (p->opts->pos_len == CTL_POSITIONAL_MAX) {
            return fail(p->err, p->err_size, "too many arguments");
        }
        p->opts->pos[p->opts->pos_len++] = args[i];
    }
    return 0;
}

static int check_range_flags(const struct ctl_opts *o, const char *cmd, char *err, size_t err_size)
{
    if (o->prefix && o->from_key) {
        return fail(err, err_size, "%s: --prefix and --from-key cannot be used together", cmd);
    }
    if ((o->prefix || o->from_key) && o->pos_len > 1) {
        return fail(err, err_size, "%s: RANGE_END cannot be used with --%s", cmd,
                    o->prefix ? "prefix" : "from-key");
    }
    return 0;
}

/* ---- member, endpoint, move-leader -------------------------------------------------------- */

bool ctl_parse_member_id(const char *s, uint64_t *out)
{
    if (s == NULL) return false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
    if (*s == '\0' || *s == '-' || *s == '+' || strlen(s) > 16) return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno != 0 || *end != '\0' || v == 0) return false;
    *out = v;
    return true;
}

int ctl_split_urls(const char *list, const char *what, struct keel_str *urls, size_t cap,
                   size_t *len, char *err, size_t err_size)
{
    *len = 0;
    const char *p = list;
    /* Bounded by the string and by cap entries. */
    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, ",");
        if (n == 0) return fail(err, err_size, "%s: an empty URL in \"%s\"", what, list);
        if (n > 256) return fail(err, err_size, "%s: a URL longer than 256 bytes", what);
        if (*len == cap) return fail(err, err_size, "%s: more than %zu URLs", what, cap);
        urls[(*len)++] = (struct keel_str){p, n};
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

int ctl_split_endpoints(const char *list, char *buf, size_t cap, const char **eps)
{
    size_t used = 0;
    int n = 0;
    const char *p = list;
    while (*p != '\0') { /* bounded by the string and CTL_ENDPOINTS_MAX */
        size_t len = strcspn(p, ",");
        if (n == CTL_ENDPOINTS_MAX || used + len + 1 > cap) return -1;
        memcpy(buf + used, p, len);
        buf[used + len] = '\0';
        if (len > 0) eps[n++] = buf + used;
        used += len + 1;
        p += len;
        if (*p == ',') p++;
    }
    return n;
}

static enum ctl_sub sub_lookup(enum ctl_command cmd, const char *s)
{
    static const char *const names[] = {
        [CTL_SUB_LIST] = "list",       [CTL_SUB_ADD] = "add",       [CTL_SUB_REMOVE] = "remove",
        [CTL_SUB_PROMOTE] = "promote", [CTL_SUB_STATUS] = "status",
    };
    for (int i = CTL_SUB_LIST; i <= CTL_SUB_STATUS; i++)
        if (strcmp(s, names[i]) == 0 && (i == CTL_SUB_STATUS) == (cmd == CTL_CMD_ENDPOINT))
            return (enum ctl_sub)i;
    return CTL_SUB_NONE;
}

static int check_move_leader(struct ctl_opts *o, char *err, size_t err_size)
{
    int64_t n = 0;
    if (o->pos_len != 2) {
        return fail(err, err_size, "move-leader: %s (SHARD|all MEMBER_ID)",
                    o->pos_len < 2 ? "missing argument" : "too many arguments");
    }
    if (strcmp(o->pos[0].s, "all") == 0) {
        o->shard = UINT16_MAX; /* protocol.md shard_none: every shard the member leads */
    } else if (parse_i64(o->pos[0].s, 10, 0, UINT16_MAX - 1, &n)) {
        o->shard = (uint16_t)n;
    } else {
        return fail(err, err_size, "move-leader: bad shard \"%s\" (an index, or all)", o->pos[0].s);
    }
    if (!ctl_parse_member_id(o->pos[1].s, &o->member_id)) {
        return fail(err, err_size, "move-leader: bad member id \"%s\" (hex, nonzero)", o->pos[1].s);
    }
    return 0;
}

/* member list | add NAME | remove ID | promote ID; endpoint status; move-leader SHARD ID. */
static int check_cluster(enum ctl_command cmd, struct ctl_opts *o, char *err, size_t err_size)
{
    const char *name = ctl_command_name(cmd);
    if (cmd == CTL_CMD_MOVE_LEADER) return check_move_leader(o, err, err_size);
    const char *subs = cmd == CTL_CMD_MEMBER ? "list, add, remove, promote" : "status";
    if (o->pos_len == 0) return fail(err, err_size, "%s: missing subcommand (%s)", name, subs);
    o->sub = sub_lookup(cmd, o->pos[0].s);
    if (o->sub == CTL_SUB_NONE) {
        return fail(err, err_size, "%s: unknown subcommand \"%s\" (%s)", name, o->pos[0].s, subs);
    }
    int want = o->sub == CTL_SUB_LIST || o->sub == CTL_SUB_STATUS ? 1 : 2;
    if (o->pos_len != want) {
        return fail(err, err_size, "%s %s: %s", name, o->pos[0].s,
                    o->pos_len < want ? (o->sub == CTL_SUB_ADD ? "missing NAME" : "missing ID")
                                      : "too many arguments");
    }
    if ((o->sub == CTL_SUB_REMOVE || o->sub == CTL_SUB_PROMOTE) &&
        !ctl_parse_member_id(o->pos[1].s, &o->member_id)) {
        return fail(err, err_size, "member %s: bad member id \"%s\" (hex, nonzero)", o->pos[0].s,
                    o->pos[1].s);
    }
    bool add = o->sub == CTL_SUB_ADD;
    if (add && o->peer_urls == NULL)
        return fail(err, err_size, "member add: --peer-urls is required");
    if (!add && (o->peer_urls != NULL || o->client_urls != NULL || o->learner)) {
        return fail(err, err_size,
                    "member %s: --peer-urls, --client-urls and --learner are for add", o->pos[0].s);
    }
    if (o->linearizable && o->sub != CTL_SUB_LIST) {
        return fail(err, err_size, "member %s: --linearizable is for list", o->pos[0].s);
    }
    if (add && o->pos[1].len > 64) return fail(err, err_size, "member add: NAME over 64 bytes");
    return 0;
}

static int check_positional(enum ctl_command cmd, bool in_txn, struct ctl_opts *o, char *err,
                            size_t err_size)
{
    if (cmd >= CTL_CMD_MEMBER) return check_cluster(cmd, o, err, err_size);
    static const int min[CTL_CMD_COUNT] = {
        [CTL_CMD_PUT] = 1, [CTL_CMD_GET] = 1, [CTL_CMD_DEL] = 1, [CTL_CMD_COMPACT] = 1};
    static const int max[CTL_CMD_COUNT] = {
        [CTL_CMD_PUT] = 2, [CTL_CMD_GET] = 2, [CTL_CMD_DEL] = 2, [CTL_CMD_COMPACT] = 1};
    const char *name = ctl_command_name(cmd);
    int need = (cmd == CTL_CMD_PUT && in_txn) ? 2 : min[cmd];
    if (o->pos_len < need) {
        return fail(err, err_size, "%s: missing argument (%s)", name,
                    cmd == CTL_CMD_PUT       ? "KEY VALUE"
                    : cmd == CTL_CMD_COMPACT ? "REVISION"
                                             : "KEY");
    }
    if (o->pos_len > max[cmd]) {
        return fail(err, err_size, "%s: too many arguments (%d given, at most %d)", name,
                    o->pos_len, max[cmd]);
    }
    if (cmd == CTL_CMD_GET || cmd == CTL_CMD_DEL) return check_range_flags(o, name, err, err_size);
    if (cmd == CTL_CMD_COMPACT && !parse_i64(o->pos[0].s, 10, 1, INT64_MAX, &o->rev)) {
        return fail(err, err_size, "compact: bad revision \"%s\" (an integer >= 1)", o->pos[0].s);
    }
    return 0;
}

int ctl_parse_command(enum ctl_command cmd, const struct ctl_arg *args, int args_len, bool in_txn,
                      struct ctl_opts *o, char *err, size_t err_size)
{
    ASSERT(cmd > CTL_CMD_NONE && cmd < CTL_CMD_COUNT);
    ASSERT(args_len >= 0);
    memset(o, 0, sizeof(*o));
    struct parse_ctx p = {
        .cmd = cmd, .in_txn = in_txn, .opts = o, .err = err, .err_size = err_size};
    int rc = parse_loop(&p, args, args_len);
    if (rc != 0) return rc;
    return check_positional(cmd, in_txn, o, err, err_size);
}

/* The command is the first argument that is neither a flag nor a flag's value. */
static int find_command(const struct ctl_arg *args, int len)
{
    for (int i = 0; i < len; i++) {
        if (strcmp(args[i].s, "--") == 0) return i + 1 < len ? i + 1 : -1;
        if (!is_flag(&args[i])) return i;
        const char *value = NULL;
        const struct flag_spec *f = flag_lookup(args[i].s, &value);
        if (f != NULL && f->takes_value && value == NULL) i++;
    }
    return -1;
}

static int parse_args_rest(struct ctl_invocation *inv, struct ctl_arg *args, int len, char *err,
                           size_t err_size)
{
    int at = find_command(args, len);
    if (at >= 0) {
        inv->command = command_lookup(args[at].s);
        if (inv->command == CTL_CMD_NONE) {
            return fail(err, err_size, "unknown command \"%s\"", args[at].s);
        }
        memmove(&args[at], &args[at + 1], (size_t)(len - at - 1) * sizeof(args[0]));
        len--;
    }
    struct parse_ctx p = {.cmd = inv->command,
                          .global = &inv->global,
                          .opts = &inv->opts,
                          .err = err,
                          .err_size = err_size};
    int rc = parse_loop(&p, args, len);
    if (rc != 0) return rc;
    if (inv->global.help || inv->global.version) return 0;
    if (inv->command == CTL_CMD_NONE) return fail(err, err_size, "no command given");
    return check_positional(inv->command, false, &inv->opts, err, err_size);
}

int ctl_parse_args(int argc, char **argv, struct ctl_invocation *inv, char *err, size_t err_size)
{
    memset(inv, 0, sizeof(*inv));
    inv->global.endpoints = "127.0.0.1:2379";
    if (argc <= 1) return fail(err, err_size, "no command given");
    struct ctl_arg *args = calloc((size_t)argc, sizeof(*args));
    if (args == NULL) return fail(err, err_size, "out of memory");
    for (int i = 1; i < argc; i++) args[i - 1] = (struct ctl_arg){argv[i], strlen(argv[i])};
    int rc = parse_args_rest(inv, args, argc - 1, err, err_size);
    free(args);
    return rc;
}

/* ---- request arguments ------------------------------------------------------------------ */

size_t ctl_prefix_end(const uint8_t *prefix, size_t len, uint8_t *end)
{
    ASSERT(prefix != NULL || len == 0);
    ASSERT(end != NULL);
    for (size_t i = len; i > 0; i--) {
        if (prefix[i - 1] != 0xff) {
            memcpy(end, prefix, i - 1);
            end[i - 1] = (uint8_t)(prefix[i - 1] + 1);
            return i;
        }
    }
    end[0] = 0;
    return 1;
}

static const char zero_byte[1] = {0};

/* key/range_end from KEY [END] --prefix --from-key, etcd's conventions ("" + --prefix or
 * --from-key: every key). */
static int build_span(const struct ctl_opts *o, char *end_buf, size_t end_cap,
                      struct keel_bytes *key, struct keel_bytes *end, char *err, size_t err_size)
{
    ASSERT(o->pos_len >= 1 && o->pos_len <= 2);
    *key = (struct keel_bytes){o->pos[0].s, o->pos[0].len};
    *end = (struct keel_bytes){NULL, 0};
    if (o->pos_len > 1) *end = (struct keel_bytes){o->pos[1].s, o->pos[1].len};
    if (!o->prefix && !o->from_key) return 0;
    if (key->len == 0 || o->from_key) {
        if (key->len == 0) *key = (struct keel_bytes){zero_byte, 1};
        *end = (struct keel_bytes){zero_byte, 1};
        return 0;
    }
    if (end_cap < key->len + 1) return fail(err, err_size, "internal: prefix buffer too small");
    end->len = ctl_prefix_end(key->ptr, key->len, (uint8_t *)end_buf);
    end->ptr = end_buf;
    ASSERT(end->len >= 1 && end->len <= key->len);
    return 0;
}

int ctl_build_put(const struct ctl_opts *o, struct keel_put_args *a, char *err, size_t err_size)
{
    memset(a, 0, sizeof(*a));
    if (o->pos_len < 2) return fail(err, err_size, "put: missing VALUE");
    a->key = (struct keel_bytes){o->pos[0].s, o->pos[0].len};
    a->value = (struct keel_bytes){o->pos[1].s, o->pos[1].len};
    a->prev_kv = o->prev_kv;
    a->lease = o->lease;
    return 0;
}

int ctl_build_range(const struct ctl_opts *o, char *end_buf, size_t end_cap,
                    struct keel_range_args *a, char *err, size_t err_size)
{
    memset(a, 0, sizeof(*a));
    int rc = build_span(o, end_buf, end_cap, &a->key, &a->range_end, err, err_size);
    if (rc != 0) return rc;
    a->revision = o->rev;
    a->limit = o->limit;
    a->keys_only = o->keys_only;
    a->count_only = o->count_only;
    a->sort_order = o->order;
    a->sort_target = o->sort_target;
    return 0;
}

int ctl_build_delete(const struct ctl_opts *o, char *end_buf, size_t end_cap,
                     struct keel_delete_args *a, char *err, size_t err_size)
{
    memset(a, 0, sizeof(*a));
    int rc = build_span(o, end_buf, end_cap, &a->key, &a->range_end, err, err_size);
    if (rc != 0) return rc;
    a->prev_kv = o->prev_kv;
    return 0;
}
