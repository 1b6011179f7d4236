/*
 * keelctl_txn.c — etcdctl's txn script: compares, success requests, failure requests, the
 * sections separated by blank lines (the grammar is in keelctl.h).
 *
 * The parser is fed one line at a time, so the interactive mode can prompt between
 * sections. Each non-blank line is copied into a buffer of its own (2 * length + 2 bytes:
 * the line, its NUL, and room for a --prefix range_end, which is never longer than the
 * key); tokens are unquoted in place inside that copy and the parsed compares and ops point
 * into it. A line is at most one compare or op and each list holds at most
 * CTL_TXN_OPS_MAX entries, so at most 3 * CTL_TXN_OPS_MAX copies exist.
 */
#include "tools/keelctl.h"

#include "core/assert.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int line_fail(const struct ctl_txn *t, char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int line_fail(const struct ctl_txn *t, char *err, size_t err_size, const char *fmt, ...)
{
    int n = snprintf(err, err_size, "line %d: ", t->line_no);
    if (n < 0 || (size_t)n >= err_size) return CTL_EXIT_USAGE;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
    va_end(ap);
    return CTL_EXIT_USAGE;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ---- tokens ----------------------------------------------------------------------------- */

static int unescape(const char **src, const char *end, char *out)
{
    static const char from[] = "\\\"'ntr0abfv";
    static const char to[] = "\\\"'\n\t\r\0\a\b\f\v";
    const char *s = *src;
    if (s >= end) return -1;
    const char *hit = memchr(from, *s, sizeof(from) - 1);
    if (hit != NULL) {
        *out = to[hit - from];
        *src = s + 1;
        return 0;
    }
    if (*s == 'x' && end - s >= 3 && hex_digit(s[1]) >= 0 && hex_digit(s[2]) >= 0) {
        *out = (char)(hex_digit(s[1]) * 16 + hex_digit(s[2]));
        *src = s + 3;
        return 0;
    }
    return -1;
}

/* *src points at an opening quote; writes the unquoted bytes at dst (dst <= *src) and
 * leaves *src after the closing quote. */
static int unquote(const char **src, const char *end, char *dst, size_t *dst_len, const char **why)
{
    const char *s = *src;
    ASSERT(*s == '"' || *s == '\'');
    ASSERT(dst <= s);
    char quote = *s++;
    char *w = dst;
    while (s < end && *s != quote) {
        if (quote == '"' && *s == '\\') {
            s++;
            if (unescape(&s, end, w++) != 0) {
                *why = "bad escape in a quoted string (\\\\ \\\" \\n \\t \\r \\0 \\xHH)";
                return -1;
            }
            continue;
        }
        *w++ = *s++;
    }
    if (s >= end) {
        *why = "unterminated quoted string";
        return -1;
    }
    *src = s + 1;
    *dst_len = (size_t)(w - dst);
    return 0;
}

int ctl_argify(char *line, size_t len, struct ctl_arg *args, int args_cap, int *args_len,
               const char **why)
{
    ASSERT(line != NULL && args_cap > 0);
    const char *r = line;
    const char *end = line + len;
    *args_len = 0;
    for (;;) {
        while (r < end && is_space(*r)) r++;
        if (r >= end) return 0;
        if (*args_len == args_cap) {
            *why = "too many words on the line";
            return -1;
        }
        char *w = line + (r - line);
        size_t n = 0;
        if (*r == '"' || *r == '\'') {
            if (unquote(&r, end, w, &n, why) != 0) return -1;
            if (r < end && !is_space(*r)) {
                *why = "a closing quote must be followed by a space or the end of the line";
                return -1;
            }
        } else {
            while (r < end && !is_space(*r)) r++;
            n = (size_t)(r - w);
            if (r < end) r++; /* the separator, overwritten by the NUL below */
        }
        ASSERT(w + n <= r); /* unquoting never grows a token */
        w[n] = '\0';
        args[(*args_len)++] = (struct ctl_arg){w, n};
    }
}

/* ---- compares --------------------------------------------------------------------------- */

static bool target_lookup(const char *s, size_t n, enum keel_compare_target *out)
{
    static const struct {
        const char *name;
        enum keel_compare_target target;
    } names[] = {
        {"ver", KEEL_CMP_VERSION},   {"version", KEEL_CMP_VERSION}, {"c", KEEL_CMP_CREATE},
        {"create", KEEL_CMP_CREATE}, {"m", KEEL_CMP_MOD},           {"mod", KEEL_CMP_MOD},
        {"val", KEEL_CMP_VALUE},     {"value", KEEL_CMP_VALUE},     {"lease", KEEL_CMP_LEASE},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0) {
            *out = names[i].target;
            return true;
        }
    }
    return false;
}

static bool op_lookup(const char *s, enum keel_compare_result *out)
{
    if (strcmp(s, "=") == 0 || strcmp(s, "==") == 0) {
        *out = KEEL_CMP_EQUAL;
    } else if (strcmp(s, "!=") == 0) {
        *out = KEEL_CMP_NOT_EQUAL;
    } else if (strcmp(s, ">") == 0) {
        *out = KEEL_CMP_GREATER;
    } else if (strcmp(s, "<") == 0) {
        *out = KEEL_CMP_LESS;
    } else {
        return false;
    }
    return true;
}

/* The key inside TARGET( ... ): quoted, or bare up to ')'. */
static int compare_key(const struct ctl_txn *t, char **p, const char *end, struct keel_bytes *key,
                       char *err, size_t err_size)
{
    const char *r = *p;
    while (r < end && is_space(*r)) r++;
    char *w = *p;
    size_t n = 0;
    const char *why = NULL;
    if (r < end && (*r == '"' || *r == '\'')) {
        if (unquote(&r, end, w, &n, &why) != 0) return line_fail(t, err, err_size, "%s", why);
        while (r < end && is_space(*r)) r++;
    } else {
        const char *start = r;
        while (r < end && *r != ')') r++;
        while (r > start && is_space(r[-1])) r--;
        n = (size_t)(r - start);
        memmove(w, start, n);
        while (r < end && is_space(*r)) r++;
    }
    if (r >= end || *r != ')') return line_fail(t, err, err_size, "expected ')' after the key");
    if (n == 0) return line_fail(t, err, err_size, "the compared key is empty");
    *key = (struct keel_bytes){w, n};
    *p = *p + (r + 1 - *p);
    return 0;
}

static int compare_operand(const struct ctl_txn *t, const struct ctl_arg *v, struct keel_compare *c,
                           char *err, size_t err_size)
{
    if (c->target == KEEL_CMP_VALUE) {
        c->value = (struct keel_bytes){v->s, v->len};
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v->s, &end, 10);
    if (v->len == 0 || errno != 0 || *end != '\0' || n < 0) {
        return line_fail(t, err, err_size, "operand \"%s\" is not an integer >= 0", v->s);
    }
    c->operand = n;
    return 0;
}

static int parse_compare(struct ctl_txn *t, char *line, size_t len, char *err, size_t err_size)
{
    char *end = line + len;
    char *paren = memchr(line, '(', len);
    if (paren == NULL) {
        return line_fail(t, err, err_size,
                         "malformed comparison: expected TARGET(\"key\") OP \"value\"");
    }
    char *tend = paren;
    while (tend > line && is_space(tend[-1])) tend--;
    struct keel_compare *c = &t->compares[t->compares_len];
    memset(c, 0, sizeof(*c));
    if (!target_lookup(line, (size_t)(tend - line), &c->target)) {
        *tend = '\0';
        return line_fail(t, err, err_size,
                         "unknown compare target \"%s\" (ver, create, mod, value, lease)", line);
    }
    char *p = paren + 1;
    int rc = compare_key(t, &p, end, &c->key, err, err_size);
    if (rc != 0) return rc;
    struct ctl_arg args[3];
    int args_len = 0;
    const char *why = NULL;
    if (ctl_argify(p, (size_t)(end - p), args, 3, &args_len, &why) != 0 || args_len != 2) {
        return line_fail(t, err, err_size, "expected OP VALUE after the key%s%s",
                         why != NULL ? ": " : "", why != NULL ? why : "");
    }
    if (!op_lookup(args[0].s, &c->result)) {
        return line_fail(t, err, err_size, "unknown operator \"%s\" (=, !=, <, >)", args[0].s);
    }
    rc = compare_operand(t, &args[1], c, err, err_size);
    if (rc != 0) return rc;
    t->compares_len++;
    return 0;
}

/* ---- requests --------------------------------------------------------------------------- */

static int parse_request(struct ctl_txn *t, char *line, size_t len, struct keel_op *op, char *err,
                         size_t err_size)
{
    struct ctl_arg args[CTL_TXN_LINE_ARGS_MAX];
    int n = 0;
    const char *why = NULL;
    if (ctl_argify(line, len, args, CTL_TXN_LINE_ARGS_MAX, &n, &why) != 0) {
        return line_fail(t, err, err_size, "%s", why);
    }
    enum ctl_command cmd = CTL_CMD_NONE;
    if (strcmp(args[0].s, "put") == 0) cmd = CTL_CMD_PUT;
    if (strcmp(args[0].s, "get") == 0) cmd = CTL_CMD_GET;
    if (strcmp(args[0].s, "del") == 0) cmd = CTL_CMD_DEL;
    if (cmd == CTL_CMD_NONE) {
        return line_fail(t, err, err_size, "unknown request \"%s\" (put, get, del)", args[0].s);
    }
    struct ctl_opts o;
    char sub[CTL_ERR_SIZE];
    char *end_buf = line + len + 1; /* the line's copy has len + 1 bytes after its NUL */
    int rc = ctl_parse_command(cmd, args + 1, n - 1, true, &o, sub, sizeof(sub));
    memset(op, 0, sizeof(*op));
    if (rc == 0 && cmd == CTL_CMD_PUT) {
        op->kind = KEEL_OP_PUT;
        rc = ctl_build_put(&o, &op->u.put, sub, sizeof(sub));
    } else if (rc == 0 && cmd == CTL_CMD_GET) {
        op->kind = KEEL_OP_RANGE;
        rc = ctl_build_range(&o, end_buf, len + 1, &op->u.range, sub, sizeof(sub));
    } else if (rc == 0) {
        op->kind = KEEL_OP_DELETE;
        rc = ctl_build_delete(&o, end_buf, len + 1, &op->u.del, sub, sizeof(sub));
    }
    if (rc != 0) return line_fail(t, err, err_size, "%s", sub);
    return 0;
}

/* ---- feeding ---------------------------------------------------------------------------- */

void ctl_txn_init(struct ctl_txn *t)
{
    memset(t, 0, sizeof(*t));
}

void ctl_txn_free(struct ctl_txn *t)
{
    for (size_t i = 0; i < t->lines_len; i++) free(t->lines[i]);
    memset(t, 0, sizeof(*t));
}

static int feed_entry(struct ctl_txn *t, char *copy, size_t len, char *err, size_t err_size)
{
    switch (t->section) {
    case CTL_TXN_COMPARES:
        return parse_compare(t, copy, len, err, err_size);
    case CTL_TXN_SUCCESS: {
        int rc = parse_request(t, copy, len, &t->success[t->success_len], err, err_size);
        t->success_len += rc == 0;
        return rc;
    }
    case CTL_TXN_FAILURE: {
        int rc = parse_request(t, copy, len, &t->failure[t->failure_len], err, err_size);
        t->failure_len += rc == 0;
        return rc;
    }
    default:
        return line_fail(t, err, err_size,
                         "unexpected text after the failure requests (a blank line ends them)");
    }
}

int ctl_txn_feed(struct ctl_txn *t, const char *line, size_t len, char *err, size_t err_size)
{
    ASSERT(t->section <= CTL_TXN_DONE);
    ASSERT(t->compares_len <= CTL_TXN_OPS_MAX && t->success_len <= CTL_TXN_OPS_MAX &&
           t->failure_len <= CTL_TXN_OPS_MAX);
    t->line_no++;
    while (len > 0 && is_space(line[len - 1])) len--;
    while (len > 0 && is_space(*line)) line++, len--;
    if (len == 0) {
        if (t->section != CTL_TXN_DONE) t->section++;
        return 0;
    }
    static const char *const names[] = {"compares", "success requests", "failure requests"};
    size_t used[] = {t->compares_len, t->success_len, t->failure_len};
    if (t->section < CTL_TXN_DONE && used[t->section] == CTL_TXN_OPS_MAX) {
        return line_fail(t, err, err_size, "too many %s (at most %d)", names[t->section],
                         CTL_TXN_OPS_MAX);
    }
    if (t->lines_len == sizeof(t->lines) / sizeof(t->lines[0])) {
        return line_fail(t, err, err_size, "too many lines");
    }
    char *copy = malloc(2 * len + 2);
    if (copy == NULL) return line_fail(t, err, err_size, "out of memory");
    memcpy(copy, line, len);
    copy[len] = '\0';
    t->lines[t->lines_len++] = copy;
    return feed_entry(t, copy, len, err, err_size);
}

int ctl_txn_parse(struct ctl_txn *t, const char *text, size_t len, char *err, size_t err_size)
{
    const char *end = text + len;
    while (text < end) {
        const char *nl = memchr(text, '\n', (size_t)(end - text));
        const char *stop = nl != NULL ? nl : end;
        int rc = ctl_txn_feed(t, text, (size_t)(stop - text), err, err_size);
        if (rc != 0) return rc;
        text = nl != NULL ? nl + 1 : end;
    }
    return 0;
}

void ctl_txn_args(const struct ctl_txn *t, struct keel_txn_args *a)
{
    *a = (struct keel_txn_args){
        .compares = t->compares,
        .compares_len = t->compares_len,
        .success = t->success,
        .success_len = t->success_len,
        .failure = t->failure,
        .failure_len = t->failure_len,
    };
}
