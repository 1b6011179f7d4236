/*
 * keelctl_fmt.c — keelctl's output primitives: status names and exit codes, the error line,
 * base64 and JSON strings, key/value text (raw, escaped or hex), byte sizes, and bordered
 * tables in the style of etcdctl's -w table.
 */
#include "tools/keelctl.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

/* ---- statuses --------------------------------------------------------------------------- */

struct status_name {
    int status;
    const char *name;
};

static const struct status_name status_names[] = {
    {KEEL_STATUS_OK, "OK"},
    {KEEL_STATUS_NOMEM, "NOMEM"},
    {KEEL_STATUS_KEY_EMPTY, "KEY_EMPTY"},
    {KEEL_STATUS_KEY_TOO_LARGE, "KEY_TOO_LARGE"},
    {KEEL_STATUS_VALUE_TOO_LARGE, "VALUE_TOO_LARGE"},
    {KEEL_STATUS_COMPACTED, "COMPACTED"},
    {KEEL_STATUS_FUTURE_REV, "FUTURE_REV"},
    {KEEL_STATUS_TOO_MANY_OPS, "TOO_MANY_OPS"},
    {KEEL_STATUS_DUPLICATE_KEY, "DUPLICATE_KEY"},
    {KEEL_STATUS_NO_BATCH, "NO_BATCH"},
    {KEEL_STATUS_INVALID, "INVALID"},
    {KEEL_STATUS_CORRUPT, "CORRUPT"},
    {KEEL_STATUS_FRAME_TOO_LARGE, "FRAME_TOO_LARGE"},
    {KEEL_STATUS_FRAME_MALFORMED, "FRAME_MALFORMED"},
    {KEEL_STATUS_UNKNOWN_OPCODE, "UNKNOWN_OPCODE"},
    {KEEL_STATUS_MALFORMED, "MALFORMED"},
    {KEEL_STATUS_BAD_MAGIC, "BAD_MAGIC"},
    {KEEL_STATUS_UNSUPPORTED_VERSION, "UNSUPPORTED_VERSION"},
    {KEEL_STATUS_NOT_HANDSHAKEN, "NOT_HANDSHAKEN"},
    {KEEL_STATUS_ALREADY_HANDSHAKEN, "ALREADY_HANDSHAKEN"},
    {KEEL_STATUS_TOO_MANY_IN_FLIGHT, "TOO_MANY_IN_FLIGHT"},
    {KEEL_STATUS_REPLY_TOO_LARGE, "REPLY_TOO_LARGE"},
    {KEEL_STATUS_UNSUPPORTED, "UNSUPPORTED"},
    {KEEL_STATUS_TOO_MANY_WATCHES, "TOO_MANY_WATCHES"},
    {KEEL_STATUS_TOO_MANY_CONNECTIONS, "TOO_MANY_CONNECTIONS"},
    {KEEL_STATUS_WRONG_SHARD, "WRONG_SHARD"},
    {KEEL_STATUS_CROSS_SHARD, "CROSS_SHARD"},
    {KEEL_STATUS_NOT_LEADER, "NOT_LEADER"},
    {KEEL_STATUS_UNAVAILABLE, "UNAVAILABLE"},
    {KEEL_STATUS_SHUTTING_DOWN, "SHUTTING_DOWN"},
    {KEEL_STATUS_INTERNAL, "INTERNAL"},
    {KEEL_STATUS_MEMBER_NOT_FOUND, "MEMBER_NOT_FOUND"},
    {KEEL_STATUS_MEMBER_EXISTS, "MEMBER_EXISTS"},
    {KEEL_STATUS_CONF_CHANGE_PENDING, "CONF_CHANGE_PENDING"},
    {KEEL_STATUS_TOO_MANY_MEMBERS, "TOO_MANY_MEMBERS"},
    {KEEL_STATUS_MEMBER_IS_LEARNER, "MEMBER_IS_LEARNER"},
    {KEEL_STATUS_MEMBER_NOT_LEARNER, "MEMBER_NOT_LEARNER"},
    {KEEL_STATUS_LEARNER_NOT_READY, "LEARNER_NOT_READY"},
    {KEEL_STATUS_LEADER_TRANSFER_FAILED, "LEADER_TRANSFER_FAILED"},
    {KEEL_STATUS_LEADER_CHANGED, "LEADER_CHANGED"},
    {KEEL_STATUS_CLOSED, "CLOSED"},
    {KEEL_STATUS_TIMEOUT, "TIMEOUT"},
    {KEEL_STATUS_FULL, "FULL"},
    {KEEL_STATUS_BAD_REPLY, "BAD_REPLY"},
    {KEEL_STATUS_ARG, "ARG"},
    {KEEL_STATUS_NO_MEMORY, "NO_MEMORY"},
    {KEEL_STATUS_CONNECT, "CONNECT"},
    {KEEL_STATUS_GOAWAY, "GOAWAY"},
    {KEEL_STATUS_BAD_VERSION, "BAD_VERSION"},
};

const char *ctl_status_name(int status)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++) {
        if (status_names[i].status == status) return status_names[i].name;
    }
    return NULL;
}

int ctl_exit_for_status(int status)
{
    switch (status) {
    case KEEL_STATUS_OK:
        return CTL_EXIT_OK;
    case KEEL_STATUS_ARG:
        return CTL_EXIT_USAGE;
    case KEEL_STATUS_CLOSED:
    case KEEL_STATUS_TIMEOUT:
    case KEEL_STATUS_BAD_REPLY:
    case KEEL_STATUS_CONNECT:
    case KEEL_STATUS_GOAWAY:
    case KEEL_STATUS_BAD_VERSION:
        return CTL_EXIT_CONNECT;
    default:
        return CTL_EXIT_SERVER;
    }
}

/* What an error's detail means (protocol.md's status table); NULL: a plain number. */
static const char *detail_label(int status)
{
    switch (status) {
    case KEEL_STATUS_COMPACTED:
        return "compact revision";
    case KEEL_STATUS_FUTURE_REV:
        return "current revision";
    case KEEL_STATUS_WRONG_SHARD:
        return "shard map version";
    case KEEL_STATUS_NOT_LEADER:
    case KEEL_STATUS_LEADER_TRANSFER_FAILED:
    case KEEL_STATUS_LEADER_CHANGED:
        return "leader";
    case KEEL_STATUS_MEMBER_NOT_FOUND:
    case KEEL_STATUS_MEMBER_EXISTS:
    case KEEL_STATUS_MEMBER_IS_LEARNER:
    case KEEL_STATUS_MEMBER_NOT_LEARNER:
        return "member";
    case KEEL_STATUS_LEARNER_NOT_READY:
        return "lag";
    case KEEL_STATUS_UNSUPPORTED_VERSION:
        return "server version";
    case KEEL_STATUS_UNKNOWN_OPCODE:
        return "opcode";
    case KEEL_STATUS_FRAME_TOO_LARGE:
    case KEEL_STATUS_TOO_MANY_IN_FLIGHT:
    case KEEL_STATUS_REPLY_TOO_LARGE:
    case KEEL_STATUS_TOO_MANY_WATCHES:
    case KEEL_STATUS_TOO_MANY_MEMBERS:
        return "limit";
    default:
        return NULL;
    }
}

void ctl_print_error(FILE *out, int status, const struct keel_error *e, const char *context)
{
    const char *name = ctl_status_name(status);
    fprintf(out, "Error: %s (", keel_strerror(status));
    if (name != NULL) {
        fputs(name, out);
    } else {
        fprintf(out, "status %d", status);
    }
    const char *label = detail_label(status);
    if (e != NULL && (label != NULL || e->detail != 0)) {
        bool id = label != NULL && (strcmp(label, "leader") == 0 || strcmp(label, "member") == 0);
        fprintf(out, id ? ", %s %llx" : ", %s %llu", label != NULL ? label : "detail",
                (unsigned long long)e->detail); /* member ids in hex, as keelctl prints them */
    }
    if (e != NULL && e->message_len > 0) {
        fprintf(out, ", %.*s", (int)e->message_len, e->message);
    }
    if (context != NULL && *context != '\0') fprintf(out, ", %s", context);
    fputs(")\n", out);
}

/* ---- base64 and JSON -------------------------------------------------------------------- */

size_t ctl_base64(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[n++] = abc[(v >> 18) & 63];
        out[n++] = abc[(v >> 12) & 63];
        out[n++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[n] = '\0';
    ASSERT(n == 4 * ((len + 2) / 3));
    return n;
}

/* RFC 8259: quote, backslash and control characters escaped; bytes >= 0x80 pass through
 * (the strings keelctl writes are base64, names and the endpoint). */
void ctl_json_string(FILE *out, const uint8_t *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c == '\r') {
            fputs("\\r", out);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
        } else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

void ctl_json_bytes(FILE *out, const uint8_t *s, size_t len)
{
    char small[256];
    size_t need = 4 * ((len + 2) / 3) + 1;
    char *b = need <= sizeof(small) ? small : malloc(need);
    if (b == NULL) {
        fputs("\"\"", out);
        return;
    }
    size_t n = ctl_base64(s, len, b);
    ctl_json_string(out, (const uint8_t *)b, n);
    if (b != small) free(b);
}

void ctl_json_header(FILE *out, const struct keel_header *h)
{
    fprintf(out,
            "\"header\":{\"shard\":%u,\"revision\":%lld,\"raft_term\":%llu,"
            "\"member_id\":%llu}",
            (unsigned)h->shard, (long long)h->revision, (unsigned long long)h->raft_term,
            (unsigned long long)h->member_id);
}

/* ---- text ------------------------------------------------------------------------------- */

char *ctl_text(const uint8_t *s, size_t len, bool hex)
{
    char *t = malloc(4 * len + 1);
    if (t == NULL) return NULL;
    static const char digits[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        bool plain = !hex && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\';
        if (plain) {
            t[n++] = (char)s[i];
        } else if (!hex && s[i] == '\\') {
            t[n++] = '\\';
            t[n++] = '\\';
        } else {
            t[n++] = '\\';
            t[n++] = 'x';
            t[n++] = digits[s[i] >> 4];
            t[n++] = digits[s[i] & 15];
        }
    }
    t[n] = '\0';
    return t;
}

/* SI units as go-humanize's Bytes, which etcdctl uses: "9 B", "25 kB", "1.2 MB". */
void ctl_human_bytes(uint64_t n, char *out, size_t out_size)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    if (n < 10) {
        snprintf(out, out_size, "%llu B", (unsigned long long)n);
        return;
    }
    double v = (double)n;
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    double tenths = (double)(uint64_t)(v * 10.0 + 0.5) / 10.0;
    snprintf(out, out_size, tenths < 10.0 ? "%.1f %s" : "%.0f %s", tenths, units[u]);
}

/* ---- tables ----------------------------------------------------------------------------- */

static void table_rule(FILE *out, size_t cols, const size_t *width)
{
    for (size_t c = 0; c < cols; c++) {
        fputc('+', out);
        for (size_t i = 0; i < width[c] + 2; i++) fputc('-', out);
    }
    fputs("+\n", out);
}

static void table_cell(FILE *out, const char *s, size_t width, int align)
{
    size_t n = strlen(s);
    size_t pad = width - n;
    size_t left = align > 0 ? pad : align == 0 ? pad / 2 : 0;
    fprintf(out, "| %*s%s%*s ", (int)left, "", s, (int)(pad - left), "");
}

void ctl_table(FILE *out, size_t cols, const char *const *headers, char *const *cells, size_t rows,
               uint32_t right_mask)
{
    size_t width[32] = {0};
    ASSERT(cols > 0 && cols <= 32); /* keelctl's tables have at most 7 columns */
    ASSERT(headers != NULL && (cells != NULL || rows == 0));
    for (size_t c = 0; c < cols; c++) width[c] = strlen(headers[c]);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            size_t n = strlen(cells[r * cols + c] != NULL ? cells[r * cols + c] : "");
            if (n > width[c]) width[c] = n;
        }
    }
    table_rule(out, cols, width);
    for (size_t c = 0; c < cols; c++) table_cell(out, headers[c], width[c], 0);
    fputs("|\n", out);
    table_rule(out, cols, width);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            const char *s = cells[r * cols + c] != NULL ? cells[r * cols + c] : "";
            table_cell(out, s, width[c], (right_mask >> c) & 1 ? 1 : -1);
        }
        fputs("|\n", out);
    }
    table_rule(out, cols, width);
}
