/*
 * keelctl.h — the pieces of keelctl (the command-line client, etcdctl's role) that do not
 * touch the network: argument parsing, the txn script parser, and output formatting. They
 * are split from keelctl.c so that tests/unit/tools/test_keelctl_parse.c can compile them.
 *
 * Contract:
 *  - keelctl uses libkeel (client/keel.h) only, plus core/assert.h for its invariants.
 *  - Parsers never print: they return 0 or CTL_EXIT_USAGE and write a one-line message
 *    (no "Error: " prefix, no newline) into the caller's err buffer. txn parse errors start
 *    with "line N: ".
 *  - Byte strings are (pointer, length) pairs: keys and values may hold any byte, a NUL
 *    included (txn scripts write them as "\x00"). Parsed arguments point into the argv or
 *    the script lines they came from; the caller keeps those alive while it uses them.
 *  - Printers write one command's reply to a FILE in one of three formats:
 *      simple  etcdctl's: get prints a key line then a value line per key, put "OK",
 *              del the count, txn SUCCESS/FAILURE then each response after a blank line;
 *      json    one JSON object per reply, on one line: header {shard, revision, raft_term,
 *              member_id} then the reply's fields; keys and values base64 (as etcdctl);
 *      table   aligned columns with +---+ borders (get, status, shard-map); the other
 *              commands print as simple.
 *  - Exit codes: 0 OK, 1 a server status (or client out of memory), 2 usage, 3 the
 *    connection (connect, closed, timeout, GOAWAY, undecodable reply, version).
 */
#ifndef KEEL_TOOLS_KEELCTL_H
#define KEEL_TOOLS_KEELCTL_H

#include "client/keel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- exit codes, formats, commands ------------------------------------------------------ */

enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_SERVER = 1,
    CTL_EXIT_USAGE = 2,
    CTL_EXIT_CONNECT = 3,
};

enum ctl_format { CTL_FORMAT_SIMPLE = 0, CTL_FORMAT_JSON = 1, CTL_FORMAT_TABLE = 2 };

enum ctl_command {
    CTL_CMD_NONE = 0,
    CTL_CMD_PUT,
    CTL_CMD_GET,
    CTL_CMD_DEL,
    CTL_CMD_TXN,
    CTL_CMD_COMPACT,
    CTL_CMD_STATUS,
    CTL_CMD_SHARD_MAP,
    CTL_CMD_MEMBER,      /* member list|add|remove|promote */
    CTL_CMD_ENDPOINT,    /* endpoint status */
    CTL_CMD_MOVE_LEADER, /* move-leader SHARD|all MEMBER_ID */
    CTL_CMD_COUNT,
};

/* The subcommand of member and endpoint (their first positional argument). */
enum ctl_sub {
    CTL_SUB_NONE = 0,
    CTL_SUB_LIST,
    CTL_SUB_ADD,
    CTL_SUB_REMOVE,
    CTL_SUB_PROMOTE,
    CTL_SUB_STATUS,
};

#define CTL_ERR_SIZE          256
#define CTL_POSITIONAL_MAX    3   /* more positional arguments than a command takes: usage error */
#define CTL_TXN_OPS_MAX       128 /* protocol.md txn_ops_max: entries per txn list */
#define CTL_TXN_LINE_ARGS_MAX 32
#define CTL_URLS_MAX          8  /* protocol.md member_urls_max */
#define CTL_ENDPOINTS_MAX     16 /* keel.h KEEL_ENDPOINTS_MAX */

/* One argument: bytes plus length; s[len] is always '\0' (so flags compare with strcmp). */
struct ctl_arg {
    const char *s;
    size_t len;
};

struct ctl_global {
    const char *endpoints; /* "host:port[,host:port]" */
    enum ctl_format format;
    int timeout_ms; /* 0: libkeel's default */
    bool shard_aware, hex, help, version;
};

/* The flags and positional arguments of one command (fields of other commands stay 0). */
struct ctl_opts {
    struct ctl_arg pos[CTL_POSITIONAL_MAX];
    int pos_len;
    bool prefix, from_key, prev_kv, keys_only, count_only, print_value_only;
    bool interactive, physical, shard_set;
    int64_t limit, rev, lease;
    uint16_t shard; /* compact --shard; move-leader's SHARD (65535: all) */
    /* member, endpoint, move-leader */
    enum ctl_sub sub;
    uint64_t member_id;         /* remove, promote, move-leader */
    bool learner, linearizable; /* member add --learner, member list --linearizable */
    bool cluster;               /* endpoint status --cluster */
    const char *peer_urls;      /* member add --peer-urls U[,U] (required) */
    const char *client_urls;    /* member add --client-urls U[,U] */
    enum keel_sort_order order;
    enum keel_sort_target sort_target;
};

struct ctl_invocation {
    struct ctl_global global;
    enum ctl_command command;
    struct ctl_opts opts;
};

/* ---- keelctl_args.c: flags and positional arguments ------------------------------------- */

const char *ctl_command_name(enum ctl_command cmd); /* "put", ..., "shard-map"; NONE: "" */
/* Fills inv from argv[1..argc); defaults: endpoints 127.0.0.1:2379, simple, timeout 0.
 * --help and --version set global.help/version and skip the positional checks. */
int ctl_parse_args(int argc, char **argv, struct ctl_invocation *inv, char *err, size_t err_size);
/* The flags of one command over args (args[0] is the first argument after the command
 * name); in_txn refuses global flags and output-only flags. Checks positional counts. */
int ctl_parse_command(enum ctl_command cmd, const struct ctl_arg *args, int args_len, bool in_txn,
                      struct ctl_opts *o, char *err, size_t err_size);
/* Usage text of one command, or of keelctl (CTL_CMD_NONE). */
void ctl_usage(FILE *out, enum ctl_command cmd);

/* Request arguments from parsed options. end_buf (end_cap >= key length + 1) receives the
 * computed range_end of --prefix; the args point into opts and end_buf. */
int ctl_build_put(const struct ctl_opts *o, struct keel_put_args *a, char *err, size_t err_size);
int ctl_build_range(const struct ctl_opts *o, char *end_buf, size_t end_cap,
                    struct keel_range_args *a, char *err, size_t err_size);
int ctl_build_delete(const struct ctl_opts *o, char *end_buf, size_t end_cap,
                     struct keel_delete_args *a, char *err, size_t err_size);
/* etcd's prefix end: the prefix with its last non-0xff byte incremented and the rest
 * dropped; all 0xff (or empty) gives "\0". Writes at most len bytes (1 if len is 0). */
size_t ctl_prefix_end(const uint8_t *prefix, size_t len, uint8_t *end);

/* Member ids as etcdctl writes them: hex, optionally 0x-prefixed, nonzero. */
bool ctl_parse_member_id(const char *s, uint64_t *out);
/* Splits "u1,u2" into urls (pointing into list); 0 or CTL_EXIT_USAGE (empty entry, more
 * than cap, one longer than 256 bytes). what names the flag in the message. */
int ctl_split_urls(const char *list, const char *what, struct keel_str *urls, size_t cap,
                   size_t *len, char *err, size_t err_size);
/* Splits an --endpoints list into NUL-terminated copies in buf (cap bytes); their count, or
 * -1 when there are more than CTL_ENDPOINTS_MAX or buf is too small. */
int ctl_split_endpoints(const char *list, char *buf, size_t cap, const char **eps);

/* ---- keelctl_txn.c: etcdctl's txn script ------------------------------------------------ */

/*
 * Script: compares, a blank line, success requests, a blank line, failure requests (a
 * blank line or the end of input ends each section; the end of input may come early).
 *   compare: TARGET("key") OP VALUE   TARGET: ver|version|c|create|m|mod|val|value|lease
 *            OP: = == != < >          VALUE: "quoted" or bare; numeric unless val/value
 *   request: put KEY VALUE [--prev-kv] [--lease HEX]
 *            get KEY [END] [--prefix|--from-key] [--limit N] [--rev N] [--keys-only]
 *                [--count-only] [--sort-by T] [--order O]
 *            del KEY [END] [--prefix|--from-key] [--prev-kv]
 * Strings: "..." with \\ \" \n \t \r \0 \xHH escapes, or '...' taken literally.
 */
enum ctl_txn_section { CTL_TXN_COMPARES = 0, CTL_TXN_SUCCESS, CTL_TXN_FAILURE, CTL_TXN_DONE };

struct ctl_txn {
    struct keel_compare compares[CTL_TXN_OPS_MAX];
    struct keel_op success[CTL_TXN_OPS_MAX];
    struct keel_op failure[CTL_TXN_OPS_MAX];
    size_t compares_len, success_len, failure_len;
    enum ctl_txn_section section;
    int line_no;                      /* lines fed so far */
    char *lines[3 * CTL_TXN_OPS_MAX]; /* owned copies the parsed bytes point into */
    size_t lines_len;
};

void ctl_txn_init(struct ctl_txn *t);
void ctl_txn_free(struct ctl_txn *t);
/* Feeds one line (without or with its '\n'); returns 0 or CTL_EXIT_USAGE ("line N: ..."). */
int ctl_txn_feed(struct ctl_txn *t, const char *line, size_t len, char *err, size_t err_size);
/* A whole script: lines split on '\n'. */
int ctl_txn_parse(struct ctl_txn *t, const char *text, size_t len, char *err, size_t err_size);
void ctl_txn_args(const struct ctl_txn *t, struct keel_txn_args *a);
/* Splits line (modified in place: unquoted, NUL-terminated tokens) as etcdctl's argify. */
int ctl_argify(char *line, size_t len, struct ctl_arg *args, int args_cap, int *args_len,
               const char **why);

/* ---- keelctl_fmt.c: text, JSON, tables, errors ------------------------------------------ */

/* "COMPACTED", "CONNECT", ...; NULL for a status with no name. */
const char *ctl_status_name(int status);
int ctl_exit_for_status(int status);
/* Error line (with its newline), as keelctl prints it on stderr:
 * "Error: <keel_strerror> (<NAME>[, <detail>][, <server message>])". e may be NULL. */
void ctl_print_error(FILE *out, int status, const struct keel_error *e, const char *context);
size_t ctl_base64(const uint8_t *in, size_t len, char *out); /* out: 4*ceil(len/3)+1 */
void ctl_json_string(FILE *out, const uint8_t *s, size_t len);
void ctl_json_bytes(FILE *out, const uint8_t *s, size_t len); /* base64 in quotes */
/* "header":{"shard":S,"revision":R,"raft_term":T,"member_id":M} (no braces around). */
void ctl_json_header(FILE *out, const struct keel_header *h);
/* Malloc'd text for a key or value: hex ("\x61\x62") or printable (others as \xHH). */
char *ctl_text(const uint8_t *s, size_t len, bool hex);
void ctl_human_bytes(uint64_t n, char *out, size_t out_size); /* "25 kB", as etcdctl */
/* Table of rows x cols cells (row-major), headers centred, right_mask columns right. */
void ctl_table(FILE *out, size_t cols, const char *const *headers, char *const *cells, size_t rows,
               uint32_t right_mask);

/* ---- keelctl_print.c: one reply per command --------------------------------------------- */

struct ctl_fmt {
    enum ctl_format format;
    bool hex, print_value_only, count_only;
    const char *endpoint; /* status */
    int64_t compact_revision;
};

void ctl_print_put(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
void ctl_print_get(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
void ctl_print_del(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
void ctl_print_txn(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
void ctl_print_compact(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
void ctl_print_status(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
void ctl_print_shard_map(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
/* Rows x cols cells (malloc'd strings, freed here with the array): a table, or one
 * comma-separated line per row (simple). */
void ctl_print_cells(FILE *out, enum ctl_format format, size_t cols, const char *const *headers,
                     char **cells, size_t rows, uint32_t right_mask);

/* ---- keelctl_print_member.c: member, move-leader and endpoint status -------------------- */

/* member list/add/remove/promote (r->opcode tells which): ids in hex as etcdctl prints them
 * (json: decimal numbers). */
void ctl_print_members(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);
void ctl_print_move_leader(FILE *out, const struct ctl_fmt *f, const struct keel_result *r);

/* One endpoint's ENDPOINT_STATUS reply. */
struct ctl_endpoint_status {
    const char *endpoint;
    const struct keel_result *res;
};
/* One row per endpoint and shard: endpoint, member id, shard, role, leader, term, commit,
 * applied, last index, revision, and (where the endpoint leads) each peer's lag =
 * last index - match index. json: an array with one object per endpoint. */
void ctl_print_endpoint_status(FILE *out, const struct ctl_fmt *f,
                               const struct ctl_endpoint_status *eps, size_t n);

#endif
