/*
 * test_keelctl_parse.c — keelctl's parsing and formatting, without a server: the txn script
 * parser (valid and invalid scripts, line numbers in errors), the command-line flags, the
 * request arguments built from them, and every output format (simple, json, table).
 */
#include "tools/keelctl.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

struct capture {
    FILE *f;
    char *text;
    size_t len;
};

static void capture_open(struct capture *c)
{
    c->text = NULL;
    c->len = 0;
    c->f = open_memstream(&c->text, &c->len);
    cr_assert(c->f != NULL);
}

static char *capture_close(struct capture *c)
{
    fclose(c->f);
    return c->text;
}

static bool bytes_eq(struct keel_bytes b, const char *s, size_t len)
{
    return b.len == len && (len == 0 || memcmp(b.ptr, s, len) == 0);
}
#define BYTES_EQ(b, lit) bytes_eq((b), (lit), sizeof(lit) - 1)

static int parse(struct ctl_txn *t, const char *script, char *err)
{
    ctl_txn_init(t);
    return ctl_txn_parse(t, script, strlen(script), err, CTL_ERR_SIZE);
}

static int parse_argv(struct ctl_invocation *inv, char *err, int argc, const char **argv)
{
    return ctl_parse_args(argc, (char **)argv, inv, err, CTL_ERR_SIZE);
}
/* PARSE(inv, err, "get", "k"): argv is {"keelctl", "get", "k"}. */
#define ARGS_OF(...)         ((const char *[]){"keelctl", __VA_ARGS__})
#define ARGS_LEN(...)        ((int)(sizeof(ARGS_OF(__VA_ARGS__)) / sizeof(char *)))
#define PARSE(inv, err, ...) parse_argv((inv), (err), ARGS_LEN(__VA_ARGS__), ARGS_OF(__VA_ARGS__))

/* ---- txn: valid scripts ----------------------------------------------------------------- */

Test(txn, etcdctl_example)
{
    const char *script = "mod(\"key1\") > \"0\"\n"
                         "value(\"key2\") = \"x y\"\n"
                         "version(\"k\") = \"1\"\n"
                         "create(\"k\") != \"0\"\n"
                         "lease(\"k\") = \"0\"\n"
                         "c(k) < 7\n"
                         "\n"
                         "put key1 \"overwrote-key1\"\n"
                         "get key2 --prefix\n"
                         "del k --prev-kv\n"
                         "\n"
                         "put key2 'some extra key'\n"
                         "get key1 key9 --limit 3 --rev 4 --keys-only\n";
    struct ctl_txn t;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(parse(&t, script, err), 0, "%s", err);
    cr_assert_eq(t.compares_len, 6);
    cr_assert_eq(t.success_len, 3);
    cr_assert_eq(t.failure_len, 2);

    const struct keel_compare *c = t.compares;
    cr_assert_eq(c[0].target, KEEL_CMP_MOD);
    cr_assert_eq(c[0].result, KEEL_CMP_GREATER);
    cr_assert(BYTES_EQ(c[0].key, "key1"));
    cr_assert_eq(c[0].operand, 0);
    cr_assert_eq(c[1].target, KEEL_CMP_VALUE);
    cr_assert(BYTES_EQ(c[1].value, "x y"));
    cr_assert_eq(c[2].target, KEEL_CMP_VERSION);
    cr_assert_eq(c[2].operand, 1);
    cr_assert_eq(c[3].target, KEEL_CMP_CREATE);
    cr_assert_eq(c[3].result, KEEL_CMP_NOT_EQUAL);
    cr_assert_eq(c[4].target, KEEL_CMP_LEASE);
    cr_assert_eq(c[5].target, KEEL_CMP_CREATE, "bare key and operand");
    cr_assert_eq(c[5].result, KEEL_CMP_LESS);
    cr_assert(BYTES_EQ(c[5].key, "k"));
    cr_assert_eq(c[5].operand, 7);

    const struct keel_op *s = t.success;
    cr_assert_eq(s[0].kind, KEEL_OP_PUT);
    cr_assert(BYTES_EQ(s[0].u.put.key, "key1"));
    cr_assert(BYTES_EQ(s[0].u.put.value, "overwrote-key1"));
    cr_assert_eq(s[1].kind, KEEL_OP_RANGE);
    cr_assert(BYTES_EQ(s[1].u.range.key, "key2"));
    cr_assert(BYTES_EQ(s[1].u.range.range_end, "key3"), "--prefix end");
    cr_assert_eq(s[2].kind, KEEL_OP_DELETE);
    cr_assert(s[2].u.del.prev_kv);
    cr_assert_eq(s[2].u.del.range_end.len, 0);

    const struct keel_op *f = t.failure;
    cr_assert(BYTES_EQ(f[0].u.put.value, "some extra key"));
    cr_assert(BYTES_EQ(f[1].u.range.range_end, "key9"));
    cr_assert_eq(f[1].u.range.limit, 3);
    cr_assert_eq(f[1].u.range.revision, 4);
    cr_assert(f[1].u.range.keys_only);

    struct keel_txn_args a;
    ctl_txn_args(&t, &a);
    cr_assert_eq(a.compares, t.compares);
    cr_assert_eq(a.success_len, 3);
    cr_assert_eq(a.failure_len, 2);
    ctl_txn_free(&t);
}

Test(txn, escapes_and_binary_bytes)
{
    const char *script = "val(\"a\\x00b\") = \"q\\\"\\\\\\n\\t\"\n"
                         "\n"
                         "put \"k\\x00\\xff\" \"\"\n"
                         "put 'back\\slash' 'its'\n";
    struct ctl_txn t;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(parse(&t, script, err), 0, "%s", err);
    cr_assert(bytes_eq(t.compares[0].key, "a\0b", 3));
    cr_assert(bytes_eq(t.compares[0].value, "q\"\\\n\t", 5));
    cr_assert(bytes_eq(t.success[0].u.put.key, "k\0\xff", 3));
    cr_assert_eq(t.success[0].u.put.value.len, 0, "an empty quoted value");
    cr_assert(BYTES_EQ(t.success[1].u.put.key, "back\\slash"), "single quotes are literal");
    ctl_txn_free(&t);
}

Test(txn, sections_may_be_empty_or_end_early)
{
    struct ctl_txn t;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(parse(&t, "\n\nput a 1\n", err), 0, "%s", err);
    cr_assert_eq(t.compares_len, 0);
    cr_assert_eq(t.success_len, 0);
    cr_assert_eq(t.failure_len, 1, "two blank lines: no compares, no success ops");
    ctl_txn_free(&t);

    cr_assert_eq(parse(&t, "mod(\"a\") = \"1\"", err), 0, "%s", err);
    cr_assert_eq(t.compares_len, 1, "end of input ends the compares");
    cr_assert_eq(t.success_len + t.failure_len, 0);
    ctl_txn_free(&t);

    cr_assert_eq(parse(&t, "  \n get a \r\n\n\n\n", err), 0, "%s", err);
    cr_assert_eq(t.success_len, 1, "spaces and CR trimmed; trailing blank lines allowed");
    cr_assert_eq(t.section, CTL_TXN_DONE);
    ctl_txn_free(&t);
}

Test(txn, prefix_of_ff_and_from_key)
{
    struct ctl_txn t;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(
        parse(&t, "\nget \"\\xff\\xff\" --prefix\ndel a --from-key\nget '' --prefix\n", err), 0,
        "%s", err);
    cr_assert(bytes_eq(t.success[0].u.range.range_end, "\0", 1));
    cr_assert(bytes_eq(t.success[1].u.del.range_end, "\0", 1));
    cr_assert(bytes_eq(t.success[2].u.range.key, "\0", 1), "\"\" --prefix: every key");
    cr_assert(bytes_eq(t.success[2].u.range.range_end, "\0", 1));
    ctl_txn_free(&t);
}

/* ---- txn: invalid scripts --------------------------------------------------------------- */

struct bad_script {
    const char *script;
    const char *error; /* expected prefix of the message */
};

Test(txn, invalid_scripts_name_their_line)
{
    static const struct bad_script cases[] = {
        {"mod \"a\" > \"0\"\n", "line 1: malformed comparison"},
        {"size(\"a\") = \"1\"\n", "line 1: unknown compare target \"size\""},
        {"mod(\"a\") >= \"1\"\n", "line 1: unknown operator \">=\""},
        {"mod(\"a\") > \"x\"\n", "line 1: operand \"x\" is not an integer"},
        {"mod(\"a\") > \"-1\"\n", "line 1: operand \"-1\""},
        {"mod(\"a\" > \"1\"\n", "line 1: expected ')' after the key"},
        {"mod(\"a) > \"1\"\n", "line 1: expected ')' after the key"},
        {"mod(\"abc\n", "line 1: unterminated quoted string"},
        {"mod(\"\") = \"1\"\n", "line 1: the compared key is empty"},
        {"mod(\"a\") =\n", "line 1: expected OP VALUE"},
        {"mod(\"a\") = \"1\" extra\n", "line 1: expected OP VALUE"},
        {"ver(\"a\") = \"1\"\n\nset a b\n", "line 3: unknown request \"set\""},
        {"\nput a\n", "line 2: put: missing argument"},
        {"\nput a b c\n", "line 2: put: too many arguments"},
        {"\nget a --bogus\n", "line 2: unknown flag: --bogus"},
        {"\nget a --prev-kv\n", "line 2: unknown flag: --prev-kv"},
        {"\nget a --endpoints x\n", "line 2: unknown flag: --endpoints"},
        {"\nget a --print-value-only\n", "line 2: unknown flag"},
        {"\nget a --limit\n", "line 2: flag needs an argument: --limit"},
        {"\nget a --limit x\n", "line 2: bad --limit \"x\""},
        {"\nget a b --prefix\n", "line 2: get: RANGE_END cannot be used with --prefix"},
        {"\ndel a --prefix --from-key\n", "line 2: del: --prefix and --from-key"},
        {"\nput \"a\\q\" b\n", "line 2: bad escape"},
        {"\nput \"a\"b c\n", "line 2: a closing quote must be followed"},
        {"\nput a 'open\n", "line 2: unterminated quoted string"},
        {"\n\nput a b\n\nput c d\n", "line 5: unexpected text after the failure requests"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_txn t;
        char err[CTL_ERR_SIZE] = "";
        cr_assert_eq(parse(&t, cases[i].script, err), CTL_EXIT_USAGE, "case %zu: %s", i,
                     cases[i].script);
        cr_assert(strncmp(err, cases[i].error, strlen(cases[i].error)) == 0,
                  "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].error);
        ctl_txn_free(&t);
    }
}

Test(txn, too_many_entries)
{
    size_t cap = 64 * (CTL_TXN_OPS_MAX + 2);
    char *script = malloc(cap);
    cr_assert(script != NULL);
    size_t n = 0;
    n += (size_t)snprintf(script + n, cap - n, "\n");
    for (int i = 0; i <= CTL_TXN_OPS_MAX; i++) {
        n += (size_t)snprintf(script + n, cap - n, "put k%d v\n", i);
    }
    struct ctl_txn t;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(parse(&t, script, err), CTL_EXIT_USAGE);
    cr_assert_str_eq(err, "line 130: too many success requests (at most 128)");
    cr_assert_eq(t.success_len, CTL_TXN_OPS_MAX);
    ctl_txn_free(&t);
    free(script);
}

Test(txn, argify)
{
    char line[] = "  put  \"a b\"\t'c\"d'  plain  ";
    struct ctl_arg args[4];
    int n = 0;
    const char *why = NULL;
    cr_assert_eq(ctl_argify(line, strlen(line), args, 4, &n, &why), 0);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(args[0].s, "put");
    cr_assert_str_eq(args[1].s, "a b");
    cr_assert_str_eq(args[2].s, "c\"d");
    cr_assert_str_eq(args[3].s, "plain");
    cr_assert_eq(args[3].len, 5);

    char many[] = "a b c";
    cr_assert_eq(ctl_argify(many, strlen(many), args, 2, &n, &why), -1);
    cr_assert_str_eq(why, "too many words on the line");
}

/* ---- command line ----------------------------------------------------------------------- */

Test(args, defaults_and_globals_anywhere)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "get", "k"), 0, "%s", err);
    cr_assert_eq(inv.command, CTL_CMD_GET);
    cr_assert_str_eq(inv.global.endpoints, "127.0.0.1:2379");
    cr_assert_eq(inv.global.format, CTL_FORMAT_SIMPLE);

    cr_assert_eq(PARSE(&inv, err, "--endpoints", "10.0.0.1:1", "-w", "json", "put", "k", "v",
                       "--prev-kv", "--timeout=250", "--hex", "--shard-aware"),
                 0, "%s", err);
    cr_assert_eq(inv.command, CTL_CMD_PUT);
    cr_assert_str_eq(inv.global.endpoints, "10.0.0.1:1");
    cr_assert_eq(inv.global.format, CTL_FORMAT_JSON);
    cr_assert_eq(inv.global.timeout_ms, 250);
    cr_assert(inv.global.hex && inv.global.shard_aware && inv.opts.prev_kv);
    cr_assert_eq(inv.opts.pos_len, 2);
    cr_assert_str_eq(inv.opts.pos[1].s, "v");

    cr_assert_eq(PARSE(&inv, err, "-w=table", "status"), 0, "%s", err);
    cr_assert_eq(inv.global.format, CTL_FORMAT_TABLE);
    cr_assert_eq(PARSE(&inv, err, "-wjson", "shard-map"), 0, "%s", err);
    cr_assert_eq(inv.global.format, CTL_FORMAT_JSON);
    cr_assert_eq(inv.command, CTL_CMD_SHARD_MAP);
}

Test(args, get_flags)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "get", "a", "--limit", "5", "--rev=9", "--keys-only",
                       "--count-only", "--sort-by", "MODIFY", "--print-value-only", "--prefix"),
                 0, "%s", err);
    const struct ctl_opts *o = &inv.opts;
    cr_assert_eq(o->limit, 5);
    cr_assert_eq(o->rev, 9);
    cr_assert(o->keys_only && o->count_only && o->print_value_only && o->prefix);
    cr_assert_eq(o->sort_target, KEEL_SORT_MOD);
    cr_assert_eq(o->order, KEEL_SORT_ASCEND, "--sort-by alone sorts ascending");
    cr_assert_eq(PARSE(&inv, err, "get", "a", "z", "--order", "descend", "--sort-by=value"), 0);
    cr_assert_eq(inv.opts.order, KEEL_SORT_DESCEND);
    cr_assert_eq(inv.opts.sort_target, KEEL_SORT_VALUE);
    cr_assert_eq(inv.opts.pos_len, 2);
}

Test(args, dash_dash_and_values_starting_with_dash)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "put", "--", "-k", "-v"), 0, "%s", err);
    cr_assert_str_eq(inv.opts.pos[0].s, "-k");
    cr_assert_str_eq(inv.opts.pos[1].s, "-v");
    cr_assert_eq(PARSE(&inv, err, "put", "k", "-"), 0, "a lone '-' is an argument: %s", err);
    cr_assert_str_eq(inv.opts.pos[1].s, "-");
}

Test(args, compact_status_and_txn)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "compact", "12", "--physical", "--shard", "1"), 0, "%s", err);
    cr_assert_eq(inv.opts.rev, 12);
    cr_assert(inv.opts.physical && inv.opts.shard_set);
    cr_assert_eq(inv.opts.shard, 1);
    cr_assert_eq(PARSE(&inv, err, "txn", "-i"), 0, "%s", err);
    cr_assert(inv.opts.interactive);
    cr_assert_eq(PARSE(&inv, err, "txn", "--interactive=false"), 0, "%s", err);
    cr_assert(!inv.opts.interactive);
}

Test(args, help_and_version_skip_argument_checks)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "put", "--help"), 0, "%s", err);
    cr_assert(inv.global.help);
    cr_assert_eq(inv.command, CTL_CMD_PUT);
    cr_assert_eq(PARSE(&inv, err, "--version"), 0, "%s", err);
    cr_assert(inv.global.version);
    cr_assert_eq(PARSE(&inv, err, "-h"), 0, "%s", err);
    cr_assert_eq(inv.command, CTL_CMD_NONE);
}

struct bad_args {
    int argc;
    const char *argv[6];
    enum ctl_command command; /* the command whose usage is printed */
    const char *error;
};

Test(args, usage_errors)
{
    static const struct bad_args cases[] = {
        {1, {"keelctl"}, CTL_CMD_NONE, "no command given"},
        {2, {"keelctl", "frob"}, CTL_CMD_NONE, "unknown command \"frob\""},
        {3, {"keelctl", "get", "--bogus"}, CTL_CMD_GET, "unknown flag: --bogus"},
        {3, {"keelctl", "get", "--physical"}, CTL_CMD_GET, "unknown flag: --physical (for get)"},
        {3, {"keelctl", "put", "k"}, CTL_CMD_PUT, ""}, /* valid: value from stdin */
        {2, {"keelctl", "put"}, CTL_CMD_PUT, "put: missing argument (KEY VALUE)"},
        {5, {"keelctl", "get", "a", "b", "c"}, CTL_CMD_GET, "get: too many arguments"},
        {3, {"keelctl", "status", "x"}, CTL_CMD_STATUS, "status: too many arguments"},
        {3, {"keelctl", "compact", "0"}, CTL_CMD_COMPACT, "compact: bad revision \"0\""},
        {2, {"keelctl", "compact"}, CTL_CMD_COMPACT, "compact: missing argument (REVISION)"},
        {4, {"keelctl", "-w", "yaml", "get"}, CTL_CMD_GET, "unknown output format \"yaml\""},
        {3, {"keelctl", "status", "--timeout"}, CTL_CMD_STATUS, "flag needs an argument"},
        {4, {"keelctl", "status", "--timeout", "0"}, CTL_CMD_STATUS, "bad --timeout \"0\""},
        {4, {"keelctl", "put", "k", "--lease=xyz"}, CTL_CMD_PUT, "bad --lease \"xyz\""},
        {5, {"keelctl", "compact", "3", "--shard", "-1"}, CTL_CMD_COMPACT, "bad --shard"},
        {4, {"keelctl", "get", "a", "--order=up"}, CTL_CMD_GET, "bad --order \"up\""},
        {4, {"keelctl", "del", "a", "--prev-kv=maybe"}, CTL_CMD_DEL, "bad value for --prev-kv"},
        {5, {"keelctl", "del", "a", "--from-key", "--prefix"}, CTL_CMD_DEL, "del: --prefix"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_invocation inv;
        char err[CTL_ERR_SIZE] = "";
        int rc = ctl_parse_args(cases[i].argc, (char **)cases[i].argv, &inv, err, sizeof(err));
        cr_assert_eq(inv.command, cases[i].command, "case %zu", i);
        if (cases[i].error[0] == '\0') {
            cr_assert_eq(rc, 0, "case %zu: %s", i, err);
            continue;
        }
        cr_assert_eq(rc, CTL_EXIT_USAGE, "case %zu", i);
        cr_assert(strncmp(err, cases[i].error, strlen(cases[i].error)) == 0,
                  "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].error);
    }
}

Test(args, lease_is_hex_as_in_etcdctl)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "put", "k", "v", "--lease", "694d77aa9e38260f"), 0, "%s", err);
    cr_assert_eq(inv.opts.lease, 0x694d77aa9e38260fLL);
}

/* ---- request arguments ------------------------------------------------------------------ */

Test(build, prefix_end)
{
    uint8_t end[8];
    cr_assert_eq(ctl_prefix_end((const uint8_t *)"app/", 4, end), 4);
    cr_assert(memcmp(end, "app0", 4) == 0);
    cr_assert_eq(ctl_prefix_end((const uint8_t *)"a\xff\xff", 3, end), 1);
    cr_assert_eq(end[0], 'b');
    cr_assert_eq(ctl_prefix_end((const uint8_t *)"\xff", 1, end), 1);
    cr_assert_eq(end[0], 0, "all 0xff: every key >= prefix");
}

Test(build, range_and_delete_spans)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    char buf[16];
    struct keel_range_args r;
    cr_assert_eq(PARSE(&inv, err, "get", "app/", "--prefix", "--limit", "2"), 0);
    cr_assert_eq(ctl_build_range(&inv.opts, buf, sizeof(buf), &r, err, sizeof(err)), 0);
    cr_assert(BYTES_EQ(r.key, "app/"));
    cr_assert(BYTES_EQ(r.range_end, "app0"));
    cr_assert_eq(r.limit, 2);

    cr_assert_eq(PARSE(&inv, err, "get", "", "--from-key"), 0);
    cr_assert_eq(ctl_build_range(&inv.opts, buf, sizeof(buf), &r, err, sizeof(err)), 0);
    cr_assert(bytes_eq(r.key, "\0", 1));
    cr_assert(bytes_eq(r.range_end, "\0", 1));

    cr_assert_eq(PARSE(&inv, err, "get", "a", "c", "--count-only"), 0);
    cr_assert_eq(ctl_build_range(&inv.opts, buf, sizeof(buf), &r, err, sizeof(err)), 0);
    cr_assert(BYTES_EQ(r.range_end, "c"));
    cr_assert(r.count_only);

    struct keel_delete_args d;
    cr_assert_eq(PARSE(&inv, err, "del", "k"), 0);
    cr_assert_eq(ctl_build_delete(&inv.opts, buf, sizeof(buf), &d, err, sizeof(err)), 0);
    cr_assert(BYTES_EQ(d.key, "k"));
    cr_assert_eq(d.range_end.len, 0, "a single key");
    cr_assert(!d.prev_kv);

    cr_assert_eq(PARSE(&inv, err, "get", "abcdefgh", "--prefix"), 0);
    cr_assert_eq(ctl_build_range(&inv.opts, buf, 4, &r, err, sizeof(err)), CTL_EXIT_USAGE,
                 "a range_end buffer shorter than the key is refused");
}

/* ---- primitives ------------------------------------------------------------------------- */

Test(fmt, base64_rfc4648_vectors)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char b[16];
        size_t n = ctl_base64((const uint8_t *)in[i], strlen(in[i]), b);
        cr_assert_str_eq(b, out[i]);
        cr_assert_eq(n, strlen(out[i]));
    }
    char b[8];
    ctl_base64((const uint8_t *)"\x00\xff\xfe", 3, b);
    cr_assert_str_eq(b, "AP/+");
}

Test(fmt, json_string_escaping)
{
    struct capture c;
    capture_open(&c);
    ctl_json_string(c.f, (const uint8_t *)"a\"b\\c\n\t\r\x01\x7f\xc3\xa9", 12);
    char *s = capture_close(&c);
    cr_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\t\\r\\u0001\\u007f\xc3\xa9\"");
    free(s);

    capture_open(&c);
    ctl_json_bytes(c.f, (const uint8_t *)"foo", 3);
    s = capture_close(&c);
    cr_assert_str_eq(s, "\"Zm9v\"");
    free(s);
}

Test(fmt, json_bytes_large_value)
{
    size_t len = 3000;
    uint8_t *v = malloc(len);
    cr_assert(v != NULL);
    memset(v, 0, len);
    struct capture c;
    capture_open(&c);
    ctl_json_bytes(c.f, v, len);
    char *s = capture_close(&c);
    cr_assert_eq(strlen(s), 2 + 4000, "quotes + 4 chars per 3 bytes");
    cr_assert_eq(strspn(s + 1, "A"), 4000);
    free(s);
    free(v);
}

Test(fmt, text_and_hex)
{
    char *t = ctl_text((const uint8_t *)"a\\b\x01 ", 5, false);
    cr_assert_str_eq(t, "a\\\\b\\x01 ");
    free(t);
    t = ctl_text((const uint8_t *)"ab", 2, true);
    cr_assert_str_eq(t, "\\x61\\x62");
    free(t);
}

Test(fmt, human_bytes_as_etcdctl)
{
    static const uint64_t in[] = {0, 9, 10, 999, 1000, 25000, 1234567, 20000000, 1500000000000};
    static const char *const out[] = {"0 B",   "9 B",    "10 B",  "999 B", "1.0 kB",
                                      "25 kB", "1.2 MB", "20 MB", "1.5 TB"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char b[32];
        ctl_human_bytes(in[i], b, sizeof(b));
        cr_assert_str_eq(b, out[i], "%llu", (unsigned long long)in[i]);
    }
}

Test(fmt, table_aligns_columns)
{
    const char *headers[] = {"NAME", "N"};
    char *cells[] = {strdup("a"), strdup("12345"), strdup("longer"), strdup("7")};
    struct capture c;
    capture_open(&c);
    ctl_table(c.f, 2, headers, cells, 2, 0x2);
    char *s = capture_close(&c);
    cr_assert_str_eq(s, "+--------+-------+\n"
                        "|  NAME  |   N   |\n"
                        "+--------+-------+\n"
                        "| a      | 12345 |\n"
                        "| longer |     7 |\n"
                        "+--------+-------+\n");
    free(s);
    for (int i = 0; i < 4; i++) free(cells[i]);
}

Test(fmt, error_lines_and_exit_codes)
{
    struct capture c;
    capture_open(&c);
    struct keel_error e = {.detail = 5, .message = "compacted", .message_len = 9};
    ctl_print_error(c.f, KEEL_STATUS_COMPACTED, &e, NULL);
    ctl_print_error(c.f, KEEL_STATUS_CONNECT, NULL, "127.0.0.1:1");
    struct keel_error none = {0};
    ctl_print_error(c.f, 200, &none, NULL);
    char *s = capture_close(&c);
    char want[512];
    snprintf(want, sizeof(want),
             "Error: %s (COMPACTED, compact revision 5, compacted)\n"
             "Error: %s (CONNECT, 127.0.0.1:1)\n",
             keel_strerror(KEEL_STATUS_COMPACTED), keel_strerror(KEEL_STATUS_CONNECT));
    cr_assert(strncmp(s, want, strlen(want)) == 0, "got:\n%s", s);
    cr_assert(strstr(s, "(status 200)\n") != NULL, "unknown status by number: %s", s);
    free(s);

    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_OK), CTL_EXIT_OK);
    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_COMPACTED), CTL_EXIT_SERVER);
    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_NOT_LEADER), CTL_EXIT_SERVER);
    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_CONNECT), CTL_EXIT_CONNECT);
    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_TIMEOUT), CTL_EXIT_CONNECT);
    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_CLOSED), CTL_EXIT_CONNECT);
    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_ARG), CTL_EXIT_USAGE);
    cr_assert_str_eq(ctl_status_name(KEEL_STATUS_CROSS_SHARD), "CROSS_SHARD");
    cr_assert_null(ctl_status_name(199));
}

/* ---- printers --------------------------------------------------------------------------- */

static struct keel_kv kv(const char *k, const char *v, int64_t create, int64_t mod, int64_t ver)
{
    return (struct keel_kv){.key = (const uint8_t *)k,
                            .key_len = strlen(k),
                            .value = (const uint8_t *)v,
                            .value_len = strlen(v),
                            .create_revision = create,
                            .mod_revision = mod,
                            .version = ver};
}

static char *print(void (*fn)(FILE *, const struct ctl_fmt *, const struct keel_result *),
                   const struct ctl_fmt *f, const struct keel_result *r)
{
    struct capture c;
    capture_open(&c);
    fn(c.f, f, r);
    return capture_close(&c);
}

#define EXPECT_PRINT(fn, f, r, want)        \
    do {                                    \
        char *got_ = print((fn), (f), (r)); \
        cr_assert_str_eq(got_, (want));     \
        free(got_);                         \
    } while (0)

static struct keel_result get_result(struct keel_kv *kvs, size_t n)
{
    struct keel_result r = {.header = {.shard = 1, .revision = 7, .raft_term = 2, .member_id = 99}};
    r.u.range = (struct keel_range_result){.count = (int64_t)n, .kvs = kvs, .kvs_len = n};
    return r;
}

Test(print, get_simple_hex_value_only_count)
{
    struct keel_kv kvs[] = {kv("foo", "bar", 2, 5, 3), kv("fop", "", 6, 6, 1)};
    struct keel_result r = get_result(kvs, 2);
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE};
    EXPECT_PRINT(ctl_print_get, &f, &r, "foo\nbar\nfop\n\n");
    f.hex = true;
    EXPECT_PRINT(ctl_print_get, &f, &r, "\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n\\x66\\x6f\\x70\n\n");
    f = (struct ctl_fmt){.print_value_only = true};
    EXPECT_PRINT(ctl_print_get, &f, &r, "bar\n\n");
    f = (struct ctl_fmt){.count_only = true};
    r.u.range.kvs_len = 0;
    EXPECT_PRINT(ctl_print_get, &f, &r, "2\n");
    r.u.range.count = 0;
    EXPECT_PRINT(ctl_print_get, &f, &r, "0\n");
    f.count_only = false;
    EXPECT_PRINT(ctl_print_get, &f, &r, "");
}

Test(print, get_json)
{
    struct keel_kv kvs[] = {kv("foo", "bar", 2, 5, 3)};
    kvs[0].lease = 4;
    struct keel_result r = get_result(kvs, 1);
    r.u.range.more = true;
    struct ctl_fmt f = {.format = CTL_FORMAT_JSON};
    EXPECT_PRINT(ctl_print_get, &f, &r,
                 "{\"header\":{\"shard\":1,\"revision\":7,\"raft_term\":2,\"member_id\":99},"
                 "\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":2,\"mod_revision\":5,"
                 "\"version\":3,\"value\":\"YmFy\",\"lease\":4}],\"count\":1,\"more\":true}\n");
}

Test(print, get_table)
{
    struct keel_kv kvs[] = {kv("foo", "bar", 2, 5, 3),
                            kv("k\x01", "a much longer value", 12, 12, 1)};
    struct keel_result r = get_result(kvs, 2);
    struct ctl_fmt f = {.format = CTL_FORMAT_TABLE};
    EXPECT_PRINT(
        ctl_print_get, &f, &r,
        "+-------+---------------------+-----------------+--------------+---------+-------+\n"
        "|  KEY  |        VALUE        | CREATE_REVISION | MOD_REVISION | VERSION | LEASE |\n"
        "+-------+---------------------+-----------------+--------------+---------+-------+\n"
        "| foo   | bar                 |               2 |            5 |       3 |     0 |\n"
        "| k\\x01 | a much longer value |              12 |           12 |       1 |     0 |\n"
        "+-------+---------------------+-----------------+--------------+---------+-------+\n");
}

Test(print, put_and_del)
{
    struct keel_result r = {.header = {.shard = 0, .revision = 3}};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE};
    EXPECT_PRINT(ctl_print_put, &f, &r, "OK\n");
    r.u.put = (struct keel_put_result){.has_prev_kv = true, .prev_kv = kv("k", "old", 1, 2, 2)};
    EXPECT_PRINT(ctl_print_put, &f, &r, "OK\nk\nold\n");
    f.format = CTL_FORMAT_TABLE;
    EXPECT_PRINT(ctl_print_put, &f, &r, "OK\nk\nold\n");
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT(ctl_print_put, &f, &r,
                 "{\"header\":{\"shard\":0,\"revision\":3,\"raft_term\":0,\"member_id\":0},"
                 "\"prev_kv\":{\"key\":\"aw==\",\"create_revision\":1,\"mod_revision\":2,"
                 "\"version\":2,\"value\":\"b2xk\",\"lease\":0}}\n");
    r.u.put.has_prev_kv = false;
    EXPECT_PRINT(ctl_print_put, &f, &r,
                 "{\"header\":{\"shard\":0,\"revision\":3,\"raft_term\":0,\"member_id\":0}}\n");

    struct keel_kv prev[] = {kv("a", "1", 1, 1, 1), kv("b", "2", 2, 2, 1)};
    r.u.del = (struct keel_delete_result){.deleted = 2, .prev_kvs = prev, .prev_kvs_len = 2};
    f.format = CTL_FORMAT_SIMPLE;
    EXPECT_PRINT(ctl_print_del, &f, &r, "2\na\n1\nb\n2\n");
    f.format = CTL_FORMAT_JSON;
    r.u.del.prev_kvs_len = 0;
    EXPECT_PRINT(ctl_print_del, &f, &r,
                 "{\"header\":{\"shard\":0,\"revision\":3,\"raft_term\":0,\"member_id\":0},"
                 "\"deleted\":2,\"prev_kvs\":[]}\n");
}

Test(print, txn_simple_and_json)
{
    struct keel_kv kvs[] = {kv("key2", "v2", 3, 3, 1)};
    struct keel_op_result ops[3] = {
        {.kind = KEEL_OP_PUT},
        {.kind = KEEL_OP_RANGE, .u.range = {.count = 1, .kvs = kvs, .kvs_len = 1}},
        {.kind = KEEL_OP_DELETE, .u.del = {.deleted = 1}},
    };
    struct keel_result r = {.header = {.shard = 1, .revision = 8}};
    r.u.txn = (struct keel_txn_result){.succeeded = true, .replies = ops, .replies_len = 3};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE};
    EXPECT_PRINT(ctl_print_txn, &f, &r, "SUCCESS\n\nOK\n\nkey2\nv2\n\n1\n");
    r.u.txn.succeeded = false;
    r.u.txn.replies_len = 0;
    EXPECT_PRINT(ctl_print_txn, &f, &r, "FAILURE\n");
    r.u.txn = (struct keel_txn_result){.succeeded = true, .replies = ops, .replies_len = 3};
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT(ctl_print_txn, &f, &r,
                 "{\"header\":{\"shard\":1,\"revision\":8,\"raft_term\":0,\"member_id\":0},"
                 "\"succeeded\":true,\"responses\":[{\"response_put\":{}},"
                 "{\"response_range\":{\"kvs\":[{\"key\":\"a2V5Mg==\",\"create_revision\":3,"
                 "\"mod_revision\":3,\"version\":1,\"value\":\"djI=\",\"lease\":0}],"
                 "\"count\":1,\"more\":false}},"
                 "{\"response_delete_range\":{\"deleted\":1,\"prev_kvs\":[]}}]}\n");
}

Test(print, compact)
{
    struct keel_result r = {.header = {.shard = 1, .revision = 9}};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE, .compact_revision = 4};
    EXPECT_PRINT(ctl_print_compact, &f, &r, "compacted revision 4\n");
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT(ctl_print_compact, &f, &r,
                 "{\"header\":{\"shard\":1,\"revision\":9,\"raft_term\":0,\"member_id\":0},"
                 "\"compact_revision\":4}\n");
}

Test(print, status_all_formats)
{
    struct keel_shard_status s[] = {
        {.shard_id = 0,
         .revision = 12,
         .compact_revision = 4,
         .keys = 5,
         .memory_bytes = 1234567,
         .wal_bytes = 4096,
         .connections = 1},
        {.shard_id = 1, .revision = 3, .keys = 0, .memory_bytes = 9, .wal_bytes = 25000},
    };
    struct keel_result r = {.header = {.shard = 65535}};
    r.u.status = (struct keel_status_result){.shards = s, .shards_len = 2};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE, .endpoint = "127.0.0.1:\"x\""};
    EXPECT_PRINT(ctl_print_status, &f, &r,
                 "0, 12, 4, 5, 1.2 MB, 4.1 kB, 1\n1, 3, 0, 0, 9 B, 25 kB, 0\n");
    f.format = CTL_FORMAT_TABLE;
    EXPECT_PRINT(
        ctl_print_status, &f, &r,
        "+-------+----------+------------------+------+--------+--------+-------------+\n"
        "| SHARD | REVISION | COMPACT REVISION | KEYS | MEMORY |  WAL   | CONNECTIONS |\n"
        "+-------+----------+------------------+------+--------+--------+-------------+\n"
        "|     0 |       12 |                4 |    5 | 1.2 MB | 4.1 kB |           1 |\n"
        "|     1 |        3 |                0 |    0 |    9 B |  25 kB |           0 |\n"
        "+-------+----------+------------------+------+--------+--------+-------------+\n");
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT(ctl_print_status, &f, &r,
                 "{\"header\":{\"shard\":65535,\"revision\":0,\"raft_term\":0,\"member_id\":0},"
                 "\"endpoint\":\"127.0.0.1:\\\"x\\\"\",\"shards\":[{\"shard_id\":0,"
                 "\"revision\":12,\"compact_revision\":4,\"keys\":5,"
                 "\"memory_bytes\":1234567,\"wal_bytes\":4096,\"connections\":1,"
                 "\"raft_term\":0,\"raft_leader_id\":0,\"raft_commit_index\":0,"
                 "\"raft_applied_index\":0},{\"shard_id\":1,\"revision\":3,"
                 "\"compact_revision\":0,\"keys\":0,\"memory_bytes\":9,\"wal_bytes\":25000,"
                 "\"connections\":0,\"raft_term\":0,\"raft_leader_id\":0,"
                 "\"raft_commit_index\":0,\"raft_applied_index\":0}]}\n");
}

Test(print, shard_map_all_formats)
{
    struct keel_shard_range s[] = {
        {.shard_id = 0, .port = 2380, .end_key = (const uint8_t *)"m", .end_key_len = 1},
        {.shard_id = 1, .port = 2381, .start_key = (const uint8_t *)"m", .start_key_len = 1},
    };
    struct keel_result r = {.header = {.shard = 65535}};
    r.u.shard_map = (struct keel_shard_map_result){.version = 3, .shards = s, .shards_len = 2};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE};
    EXPECT_PRINT(ctl_print_shard_map, &f, &r, "0, 2380, , m\n1, 2381, m, \n");
    f.format = CTL_FORMAT_TABLE;
    EXPECT_PRINT(ctl_print_shard_map, &f, &r,
                 "+-------+------+-----------+---------+\n"
                 "| SHARD | PORT | START KEY | END KEY |\n"
                 "+-------+------+-----------+---------+\n"
                 "|     0 | 2380 |           | m       |\n"
                 "|     1 | 2381 | m         |         |\n"
                 "+-------+------+-----------+---------+\n");
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT(ctl_print_shard_map, &f, &r,
                 "{\"header\":{\"shard\":65535,\"revision\":0,\"raft_term\":0,\"member_id\":0},"
                 "\"version\":3,\"shards\":[{\"shard_id\":0,\"port\":2380,\"leader_id\":0,"
                 "\"start_key\":\"\",\"end_key\":\"bQ==\"},{\"shard_id\":1,\"port\":2381,"
                 "\"leader_id\":0,\"start_key\":\"bQ==\",\"end_key\":\"\"}]}\n");
}

Test(usage, every_command_has_a_text)
{
    for (int cmd = CTL_CMD_NONE; cmd < CTL_CMD_COUNT; cmd++) {
        struct capture c;
        capture_open(&c);
        ctl_usage(c.f, (enum ctl_command)cmd);
        char *s = capture_close(&c);
        cr_assert(strstr(s, "Usage: keelctl") != NULL, "command %d", cmd);
        cr_assert(strstr(s, "--endpoints") != NULL, "global flags listed for %d", cmd);
        if (cmd != CTL_CMD_NONE) {
            cr_assert(strstr(s, ctl_command_name((enum ctl_command)cmd)) != NULL);
        }
        free(s);
    }
}

/* ---- member, endpoint status, move-leader ------------------------------------------------- */

#define EXPECT_PRINT_N(fn, fmt, eps, n, want) \
    do {                                      \
        struct capture c_;                    \
        capture_open(&c_);                    \
        fn(c_.f, (fmt), (eps), (n));          \
        char *got_ = capture_close(&c_);      \
        cr_assert_str_eq(got_, (want));       \
        free(got_);                           \
    } while (0)

Test(args, member_commands)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "member", "list"), 0, "%s", err);
    cr_assert_eq(inv.command, CTL_CMD_MEMBER);
    cr_assert_eq(inv.opts.sub, CTL_SUB_LIST);
    cr_assert(!inv.opts.linearizable);
    cr_assert_eq(PARSE(&inv, err, "--endpoints=a:1,b:2", "member", "list", "--linearizable"), 0,
                 "%s", err);
    cr_assert(inv.opts.linearizable);
    cr_assert_str_eq(inv.global.endpoints, "a:1,b:2");
    cr_assert_eq(PARSE(&inv, err, "member", "add", "n4", "--peer-urls",
                       "http://127.0.0.1:2750,http://10.0.0.4:2750", "--learner",
                       "--client-urls=http://127.0.0.1:2700"),
                 0, "%s", err);
    cr_assert_eq(inv.opts.sub, CTL_SUB_ADD);
    cr_assert(inv.opts.learner);
    cr_assert_str_eq(inv.opts.pos[1].s, "n4");
    struct keel_str urls[CTL_URLS_MAX];
    size_t n = 0;
    cr_assert_eq(
        ctl_split_urls(inv.opts.peer_urls, "--peer-urls", urls, CTL_URLS_MAX, &n, err, sizeof(err)),
        0);
    cr_assert_eq(n, 2);
    cr_assert_eq(urls[1].len, strlen("http://10.0.0.4:2750"));
    cr_assert_eq(strncmp(urls[1].ptr, "http://10.0.0.4:2750", urls[1].len), 0);
    cr_assert_eq(ctl_split_urls("a,,b", "--peer-urls", urls, CTL_URLS_MAX, &n, err, sizeof(err)),
                 CTL_EXIT_USAGE);
    cr_assert(strstr(err, "empty URL") != NULL);
    cr_assert_eq(ctl_split_urls("a,b,c", "--peer-urls", urls, 2, &n, err, sizeof(err)),
                 CTL_EXIT_USAGE);
    cr_assert_eq(PARSE(&inv, err, "member", "remove", "8e9e05c52164694d"), 0, "%s", err);
    cr_assert_eq(inv.opts.member_id, 0x8e9e05c52164694dULL);
    cr_assert_eq(PARSE(&inv, err, "member", "promote", "0xA"), 0, "%s", err);
    cr_assert_eq(inv.opts.sub, CTL_SUB_PROMOTE);
    cr_assert_eq(inv.opts.member_id, 10);
}

Test(args, endpoint_and_move_leader)
{
    struct ctl_invocation inv;
    char err[CTL_ERR_SIZE] = "";
    cr_assert_eq(PARSE(&inv, err, "endpoint", "status", "-w", "table"), 0, "%s", err);
    cr_assert_eq(inv.command, CTL_CMD_ENDPOINT);
    cr_assert_eq(inv.opts.sub, CTL_SUB_STATUS);
    cr_assert_eq(inv.global.format, CTL_FORMAT_TABLE);
    cr_assert_eq(PARSE(&inv, err, "endpoint", "status", "--cluster"), 0, "%s", err);
    cr_assert(inv.opts.cluster);
    cr_assert_eq(PARSE(&inv, err, "move-leader", "2", "b"), 0, "%s", err);
    cr_assert_eq(inv.command, CTL_CMD_MOVE_LEADER);
    cr_assert_eq(inv.opts.shard, 2);
    cr_assert_eq(inv.opts.member_id, 0xb);
    cr_assert_eq(PARSE(&inv, err, "move-leader", "all", "ff"), 0, "%s", err);
    cr_assert_eq(inv.opts.shard, 65535);
    uint64_t id = 0;
    cr_assert(ctl_parse_member_id("ffffffffffffffff", &id));
    cr_assert_eq(id, UINT64_MAX);
    cr_assert(!ctl_parse_member_id("10000000000000000", &id));
    cr_assert(!ctl_parse_member_id("0", &id));
    cr_assert(!ctl_parse_member_id("-1", &id));
    cr_assert(!ctl_parse_member_id("", &id));
    char buf[64];
    const char *eps[CTL_ENDPOINTS_MAX];
    cr_assert_eq(ctl_split_endpoints("a:1,,b:2", buf, sizeof(buf), eps), 2);
    cr_assert_str_eq(eps[1], "b:2");
    cr_assert_eq(ctl_split_endpoints("a:1,b:2", buf, 4, eps), -1);
}

Test(args, member_usage_errors)
{
    static const struct bad_args cases[] = {
        {2, {"keelctl", "member"}, CTL_CMD_MEMBER, "member: missing subcommand"},
        {3, {"keelctl", "member", "frob"}, CTL_CMD_MEMBER, "member: unknown subcommand \"frob\""},
        {3, {"keelctl", "member", "status"}, CTL_CMD_MEMBER, "member: unknown subcommand"},
        {3, {"keelctl", "member", "add"}, CTL_CMD_MEMBER, "member add: missing NAME"},
        {4, {"keelctl", "member", "add", "n"}, CTL_CMD_MEMBER, "member add: --peer-urls is"},
        {3, {"keelctl", "member", "remove"}, CTL_CMD_MEMBER, "member remove: missing ID"},
        {4, {"keelctl", "member", "remove", "xyz"}, CTL_CMD_MEMBER, "member remove: bad member"},
        {4, {"keelctl", "member", "promote", "0"}, CTL_CMD_MEMBER, "member promote: bad member"},
        {4, {"keelctl", "member", "list", "x"}, CTL_CMD_MEMBER, "member list: too many"},
        {4, {"keelctl", "member", "list", "--learner"}, CTL_CMD_MEMBER, "member list: --peer-urls"},
        {5,
         {"keelctl", "member", "remove", "a", "--linearizable"},
         CTL_CMD_MEMBER,
         "member remove: --linearizable is for list"},
        {4, {"keelctl", "get", "k", "--learner"}, CTL_CMD_GET, "unknown flag: --learner (for get)"},
        {2, {"keelctl", "endpoint"}, CTL_CMD_ENDPOINT, "endpoint: missing subcommand (status)"},
        {3, {"keelctl", "endpoint", "list"}, CTL_CMD_ENDPOINT, "endpoint: unknown subcommand"},
        {4, {"keelctl", "endpoint", "status", "x"}, CTL_CMD_ENDPOINT, "endpoint status: too many"},
        {2, {"keelctl", "move-leader"}, CTL_CMD_MOVE_LEADER, "move-leader: missing argument"},
        {4, {"keelctl", "move-leader", "x", "1"}, CTL_CMD_MOVE_LEADER, "move-leader: bad shard"},
        {4, {"keelctl", "move-leader", "65535", "1"}, CTL_CMD_MOVE_LEADER, "move-leader: bad"},
        {4, {"keelctl", "move-leader", "1", "q"}, CTL_CMD_MOVE_LEADER, "move-leader: bad member"},
        {5, {"keelctl", "move-leader", "1", "2", "3"}, CTL_CMD_MOVE_LEADER, "move-leader: too"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_invocation inv;
        char err[CTL_ERR_SIZE] = "";
        int rc = ctl_parse_args(cases[i].argc, (char **)cases[i].argv, &inv, err, sizeof(err));
        cr_assert_eq(inv.command, cases[i].command, "case %zu", i);
        cr_assert_eq(rc, CTL_EXIT_USAGE, "case %zu", i);
        cr_assert(strncmp(err, cases[i].error, strlen(cases[i].error)) == 0,
                  "case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].error);
    }
}

static struct keel_str S(const char *s) {
    return (struct keel_str){s, strlen(s)};
}

Test(print, members_all_formats)
{
    struct keel_str p1 = S("http://127.0.0.1:2430"), c1 = S("http://127.0.0.1:2379");
    struct keel_str p3 = S("http://127.0.0.1:2630");
    struct keel_member m[] = {
        {.id = 0xa1,
         .name = S("n1"),
         .peer_urls = &p1,
         .peer_urls_len = 1,
         .client_urls = &c1,
         .client_urls_len = 1},
        {.id = 0xb2, .is_learner = true, .peer_urls = &p3, .peer_urls_len = 1},
    };
    struct keel_shard_leader sl = {.shard_id = 0, .leader_id = 0xa1, .raft_term = 3};
    struct keel_result r = {.opcode = KEEL_OPCODE_MEMBER_LIST, .header = {.shard = 65535}};
    r.u.members = (struct keel_members_result){
        .cluster_id = 7, .members = m, .members_len = 2, .shards = &sl, .shards_len = 1};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE};
    EXPECT_PRINT(ctl_print_members, &f, &r,
                 "a1, started, n1, http://127.0.0.1:2430, http://127.0.0.1:2379, false\n"
                 "b2, unstarted, , http://127.0.0.1:2630, , true\n");
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT(ctl_print_members, &f, &r,
                 "{\"header\":{\"shard\":65535,\"revision\":0,\"raft_term\":0,\"member_id\":0},"
                 "\"cluster_id\":7,\"members\":[{\"id\":161,\"name\":\"n1\",\"peer_urls\":"
                 "[\"http://127.0.0.1:2430\"],\"client_urls\":[\"http://127.0.0.1:2379\"],"
                 "\"is_learner\":false},{\"id\":178,\"name\":\"\",\"peer_urls\":"
                 "[\"http://127.0.0.1:2630\"],\"client_urls\":[],\"is_learner\":true}],"
                 "\"shards\":[{\"shard_id\":0,\"leader_id\":161,\"raft_term\":3}]}\n");
    r.opcode = KEEL_OPCODE_MEMBER_ADD;
    r.u.members.member_id = 0xb2;
    m[1].name = S("n3");
    f.format = CTL_FORMAT_SIMPLE;
    EXPECT_PRINT(ctl_print_members, &f, &r,
                 "Member b2 added to the cluster\n\nStart it with:\n"
                 "  --initial-cluster-state existing --initial-cluster "
                 "n1=http://127.0.0.1:2430,n3=http://127.0.0.1:2630\n");
    r.opcode = KEEL_OPCODE_MEMBER_REMOVE;
    EXPECT_PRINT(ctl_print_members, &f, &r, "Member removed from the cluster\n");
}

Test(print, move_leader)
{
    struct keel_shard_move s[] = {{.shard_id = 0, .status = 0, .leader_id = 0xb, .raft_term = 4},
                                  {.shard_id = 2, .status = 141, .leader_id = 0xa, .raft_term = 2}};
    struct keel_result r = {.opcode = KEEL_OPCODE_MOVE_LEADER, .header = {.shard = 65535}};
    r.u.move_leader = (struct keel_move_leader_result){.shards = s, .shards_len = 2};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE};
    EXPECT_PRINT(ctl_print_move_leader, &f, &r,
                 "Leadership of shard 0 transferred to b (term 4)\n"
                 "Shard 2: not transferred: leader transfer failed (leader a)\n");
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT(ctl_print_move_leader, &f, &r,
                 "{\"header\":{\"shard\":65535,\"revision\":0,\"raft_term\":0,\"member_id\":0},"
                 "\"shards\":[{\"shard_id\":0,\"status\":\"OK\",\"leader_id\":11,"
                 "\"raft_term\":4},{\"shard_id\":2,\"status\":\"LEADER_TRANSFER_FAILED\","
                 "\"leader_id\":10,\"raft_term\":2}]}\n");
    r.u.move_leader.shards_len = 0;
    f.format = CTL_FORMAT_SIMPLE;
    EXPECT_PRINT(ctl_print_move_leader, &f, &r, "The endpoint leads no shard: nothing moved\n");
}

Test(print, endpoint_status_all_formats)
{
    struct keel_peer_progress pp[] = {
        {.member_id = 0xb,
         .state = KEEL_PROGRESS_REPLICATE,
         .match_index = 121,
         .recent_active = true},
        {.member_id = 0xc, .is_learner = true, .state = KEEL_PROGRESS_SNAPSHOT, .match_index = 40}};
    struct keel_shard_raft lead = {.shard_id = 0,
                                   .role = KEEL_ROLE_LEADER,
                                   .leader_id = 0xa,
                                   .raft_term = 3,
                                   .raft_commit_index = 120,
                                   .raft_applied_index = 119,
                                   .raft_last_index = 121,
                                   .revision = 100,
                                   .progress = pp,
                                   .progress_len = 2};
    struct keel_shard_raft follow = {.shard_id = 1,
                                     .role = KEEL_ROLE_FOLLOWER,
                                     .leader_id = 0,
                                     .raft_term = 5,
                                     .raft_last_index = 7,
                                     .revision = 6};
    struct keel_result a = {.opcode = KEEL_OPCODE_ENDPOINT_STATUS,
                            .header = {.shard = 65535, .member_id = 0xa}};
    a.u.endpoint_status =
        (struct keel_endpoint_status_result){.name = S("n1"), .shards = &lead, .shards_len = 1};
    struct keel_result b = a;
    b.header.member_id = 0xb;
    b.u.endpoint_status =
        (struct keel_endpoint_status_result){.name = S("n2"), .shards = &follow, .shards_len = 1};
    struct ctl_endpoint_status eps[] = {{"127.0.0.1:2379", &a}, {"127.0.0.1:2479", &b}};
    struct ctl_fmt f = {.format = CTL_FORMAT_SIMPLE};
    EXPECT_PRINT_N(ctl_print_endpoint_status, &f, eps, 2,
                   "127.0.0.1:2379, a, 0, leader, a, 3, 120, 119, 121, 100, b=0 c=81\n"
                   "127.0.0.1:2479, b, 1, follower, none, 5, 0, 0, 7, 6, -\n");
    f.format = CTL_FORMAT_TABLE;
    EXPECT_PRINT_N(
        ctl_print_endpoint_status, &f, eps, 2,
        "+----------------+----+-------+----------+--------+------+--------+---------+------+"
        "----------+----------+\n"
        "|    ENDPOINT    | ID | SHARD |   ROLE   | LEADER | TERM | COMMIT | APPLIED | LAST |"
        " REVISION |   LAG    |\n"
        "+----------------+----+-------+----------+--------+------+--------+---------+------+"
        "----------+----------+\n"
        "| 127.0.0.1:2379 | a  |     0 | leader   | a      |    3 |    120 |     119 |  121 |"
        "      100 | b=0 c=81 |\n"
        "| 127.0.0.1:2479 | b  |     1 | follower | none   |    5 |      0 |       0 |    7 |"
        "        6 | -        |\n"
        "+----------------+----+-------+----------+--------+------+--------+---------+------+"
        "----------+----------+\n");
    f.format = CTL_FORMAT_JSON;
    EXPECT_PRINT_N(
        ctl_print_endpoint_status, &f, eps, 1,
        "[{\"endpoint\":\"127.0.0.1:2379\",\"header\":{\"shard\":65535,\"revision\":0,"
        "\"raft_term\":0,\"member_id\":10},\"name\":\"n1\",\"is_learner\":false,\"shards\":["
        "{\"shard_id\":0,\"role\":\"leader\",\"leader_id\":10,\"raft_term\":3,"
        "\"raft_commit_index\":120,\"raft_applied_index\":119,\"raft_last_index\":121,"
        "\"revision\":100,\"progress\":[{\"member_id\":11,\"is_learner\":false,"
        "\"match_index\":121,\"next_index\":0,\"lag\":0,\"recent_active\":true},"
        "{\"member_id\":12,\"is_learner\":true,\"match_index\":40,\"next_index\":0,\"lag\":81,"
        "\"recent_active\":false}]}]}]\n");
}

Test(fmt, member_errors_print_ids_in_hex)
{
    struct capture c;
    capture_open(&c);
    struct keel_error e = {.detail = 0xab, .message = "no member", .message_len = 9};
    ctl_print_error(c.f, KEEL_STATUS_MEMBER_NOT_FOUND, &e, NULL);
    e.detail = 64;
    ctl_print_error(c.f, KEEL_STATUS_TOO_MANY_MEMBERS, &e, NULL);
    char *s = capture_close(&c);
    cr_assert_str_eq(s, "Error: no such member (MEMBER_NOT_FOUND, member ab, no member)\n"
                        "Error: too many members (TOO_MANY_MEMBERS, limit 64, no member)\n");
    free(s);
    cr_assert_eq(ctl_exit_for_status(KEEL_STATUS_CONF_CHANGE_PENDING), CTL_EXIT_SERVER);
}
