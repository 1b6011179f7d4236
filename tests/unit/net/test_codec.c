/*
 * test_codec.c — the wire codec against its spec.
 *
 *  - vectors: replays every golden vector of proto-spec/vectors/ (every .txt file): the frame
 *    and body decode to exactly the meaning lines (or fail with exactly the
 *    status), and an encoder given the decoded message writes the canonical
 *    bytes again (lists rebuilt element by element, so element encoders are
 *    checked against the golden bytes too). Also checks that every opcode has
 *    valid and invalid vectors in both directions.
 *  - drift: the opcode, status and limit tables of proto-spec/protocol.md equal
 *    the compiled tables of codec_gen.h (tools/gen_codec.py --check, a ctest of
 *    its own, covers every other table and the generated file itself).
 *  - roundtrip: random messages of every kind (KEEL_SEED, KEEL_OPS) encode,
 *    decode to the same meaning and re-encode to the same bytes.
 *  - mutated frames: random damage to valid frames fails with a status, or
 *    decodes to a message that encodes again; never a read past the input.
 *  - frames and API edges: pipelined frames, partial input, rollback on
 *    failure, fixed buffers that run out, builders at their limits.
 */
#include "net/codec.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef KEEL_SPEC_DIR
#error "KEEL_SPEC_DIR must name proto-spec/ (set by tests/unit/net/CMakeLists.txt)"
#endif

/* ---- scratch buffers: one per nesting level, fixed so built lists never move ---------- */

#define SCRATCH_SIZE (1u << 21)
static u8 scratch_mem[CODEC_DEPTH_MAX + 1][SCRATCH_SIZE];
static struct buf scratch[CODEC_DEPTH_MAX + 1];

static void scratch_reset_from(int depth)
{
    for (int i = depth; i <= CODEC_DEPTH_MAX; i++) {
        buf_init_fixed(&scratch[i], scratch_mem[i], SCRATCH_SIZE);
    }
}

static const char *status_str(int rc)
{
    if (rc == CODEC_NEED_MORE) return "need_more";
    if (rc == CODEC_NO_ROOM) return "no_room";
    const char *n = codec_status_name(rc);
    return n ? n : "?";
}

/* ---- deep copy: rebuild every list of a decoded message with the element encoders -------- */

static void deep_copy(const struct codec_msg_desc *d, const void *src, void *dst, int depth);

static void deep_copy_list(const struct codec_field_desc *f, const struct codec_list *src,
                           struct codec_list *dst, int depth)
{
    struct codec_list_builder lb;
    codec_list_begin(&lb, f, dst, &scratch[depth]);
    struct codec_iter it;
    codec_iter_init(&it, f, src);
    union codec_msg_any elem, copy;
    while (codec_iter_next(&it, &elem)) { /* bounded by src->count */
        scratch_reset_from(depth + 1);
        deep_copy(f->msg, &elem, &copy, depth + 1);
        int rc = codec_list_add(&lb, &copy);
        cr_assert_eq(rc, 0, "list %s: add: %s", f->name, status_str(rc));
    }
    codec_list_end(&lb);
    cr_assert_eq(dst->count, src->count);
}

static void deep_copy(const struct codec_msg_desc *d, const void *src, void *dst, int depth)
{
    cr_assert(depth < CODEC_DEPTH_MAX);
    memcpy(dst, src, d->size);
    for (u8 i = 0; i < d->fields_len; i++) {
        const struct codec_field_desc *f = &d->fields[i];
        const u8 *s = (const u8 *)src + f->offset;
        u8 *t = (u8 *)dst + f->offset;
        if (f->type == CODEC_T_LIST16 || f->type == CODEC_T_LIST32) {
            deep_copy_list(f, (const struct codec_list *)s, (struct codec_list *)t, depth);
        } else if (f->type == CODEC_T_MSG || f->type == CODEC_T_SIZED) {
            deep_copy(f->msg, s, t, depth + 1);
        }
    }
}

/* ---- vectors ------------------------------------------------------------------------------ */

enum expect { EXPECT_OK, EXPECT_NEED_MORE, EXPECT_ERROR };

struct vector {
    char where[160]; /* file:line name */
    bool reply;
    struct buf hex;
    struct buf canonical;
    enum expect expect;
    int status;
    struct buf lines;
};

static void hex_append(struct buf *b, const char *text, const char *where)
{
    int hi = -1;
    for (const char *p = text; *p && *p != '#' && *p != '\n'; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r') continue;
        int v = (*p >= '0' && *p <= '9')   ? *p - '0'
                : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
                : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10
                                           : -1;
        cr_assert(v >= 0, "%s: bad hex digit '%c'", where, *p);
        if (hi < 0) {
            hi = v;
        } else {
            buf_put_u8(b, (u8)(hi << 4 | v));
            hi = -1;
        }
    }
    cr_assert(hi < 0, "%s: odd number of hex digits", where);
}

static int status_by_name(const char *name)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_statuses); i++) {
        if (strcmp(codec_statuses[i].name, name) == 0) return codec_statuses[i].code;
    }
    return -1;
}

static void vector_init(struct vector *v, const char *file, int line, const char *name)
{
    memset(v, 0, sizeof(*v));
    int n = snprintf(v->where, sizeof(v->where), "%s:%d %s", file, line, name);
    cr_assert(n > 0); /* a long name is cut: it is only a label */
    buf_init_dynamic(&v->hex, 256);
    buf_init_dynamic(&v->canonical, 0);
    buf_init_dynamic(&v->lines, 256);
    v->expect = -1;
}

static void vector_free(struct vector *v)
{
    buf_free(&v->hex);
    buf_free(&v->canonical);
    buf_free(&v->lines);
}

static void vector_expect(struct vector *v, const char *arg)
{
    if (strcmp(arg, "ok") == 0) {
        v->expect = EXPECT_OK;
    } else if (strcmp(arg, "need_more") == 0) {
        v->expect = EXPECT_NEED_MORE;
    } else {
        cr_assert(strncmp(arg, "error ", 6) == 0, "%s: bad expect '%s'", v->where, arg);
        v->expect = EXPECT_ERROR;
        v->status = status_by_name(arg + 6);
        cr_assert(v->status > 0, "%s: unknown status '%s'", v->where, arg + 6);
    }
}

/* Tallies per opcode and direction: valid and invalid vectors seen. */
struct coverage {
    int ok[2][65536]; /* by opcode: any u16 */
    int bad[2][65536];
    int total;
};

static void replay_ok(const struct vector *v, const struct codec_frame *f,
                      const union codec_msg_any *body, const struct codec_reply *rep)
{
    struct buf text;
    buf_init_dynamic(&text, 512);
    if (v->reply)
        codec_describe_reply(&text, f, rep);
    else
        codec_describe_request(&text, f, body);
    cr_assert(text.len == v->lines.len && memcmp(text.ptr, v->lines.ptr, text.len) == 0,
              "%s: meaning differs\n--- expected\n%.*s--- decoded\n%.*s", v->where,
              (int)v->lines.len, (const char *)v->lines.ptr, (int)text.len, (const char *)text.ptr);
    buf_free(&text);

    scratch_reset_from(0);
    union codec_msg_any copy;
    struct buf out;
    buf_init_dynamic(&out, v->hex.len + 64);
    int rc;
    if (v->reply) {
        const struct codec_msg_desc *d =
            rep->header.status == CODEC_S_OK ? codec_reply_desc(f->opcode) : &codec_msg_error_body;
        deep_copy(d, &rep->body, &copy, 0);
        rc = codec_reply_encode(&out, f, &rep->header, &copy, CODEC_REPLY_FRAME_SIZE_MAX);
    } else {
        deep_copy(codec_request_desc(f->opcode), body, &copy, 0);
        rc = codec_request_encode(&out, f, &copy, CODEC_FRAME_SIZE_MAX);
    }
    cr_assert_eq(rc, 0, "%s: re-encode failed: %s", v->where, status_str(rc));
    const struct buf *want = v->canonical.len ? &v->canonical : &v->hex;
    cr_assert(out.len == want->len && memcmp(out.ptr, want->ptr, out.len) == 0,
              "%s: re-encoded bytes differ from the %s bytes (%zu vs %zu)", v->where,
              v->canonical.len ? "canonical" : "vector", out.len, want->len);
    buf_free(&out);
}

static void replay(const struct vector *v, struct coverage *cov)
{
    cr_assert(v->expect != (enum expect) - 1, "%s: no expect line", v->where);
    struct codec_frame f;
    size_t used = 0;
    u32 limit = v->reply ? CODEC_REPLY_FRAME_SIZE_MAX : CODEC_FRAME_SIZE_MAX;
    int rc = codec_frame_decode(span_make(v->hex.ptr, v->hex.len), limit, &f, &used);
    static union codec_msg_any body;
    static struct codec_reply rep;
    if (rc == 0) {
        cr_assert_eq(used, v->hex.len, "%s: a vector holds exactly one frame", v->where);
        rc = v->reply ? codec_reply_decode(&f, &rep) : codec_request_decode(&f, &body);
        int *tally = v->expect == EXPECT_OK ? cov->ok[v->reply] : cov->bad[v->reply];
        if (codec_opcode_name(f.opcode) != NULL) tally[f.opcode]++;
    }
    cov->total++;
    if (v->expect == EXPECT_NEED_MORE) {
        cr_assert_eq(rc, CODEC_NEED_MORE, "%s: want need_more, got %s", v->where, status_str(rc));
    } else if (v->expect == EXPECT_ERROR) {
        cr_assert_eq(rc, v->status, "%s: want %s, got %s", v->where, status_str(v->status),
                     status_str(rc));
    } else {
        cr_assert_eq(rc, 0, "%s: want ok, got %s", v->where, status_str(rc));
        replay_ok(v, &f, &body, &rep);
    }
}

/* Parses one vector file and replays each vector as its "end" line is reached. */
static void replay_file(const char *path, const char *file, struct coverage *cov)
{
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "cannot open %s", path);
    static char line[4 * CODEC_KEY_SIZE_MAX + 1024]; /* a meaning line of a largest key */
    struct vector v;
    bool open = false;
    int n = 0, meaning = 0;
    while (fgets(line, sizeof(line), fp) != NULL) { /* bounded by the file */
        n++;
        cr_assert(strchr(line, '\n') != NULL || feof(fp), "%s:%d: line too long", file, n);
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        if (strncmp(line, "vector ", 7) == 0) {
            cr_assert(!open, "%s:%d: vector inside a vector", file, n);
            vector_init(&v, file, n, line + 7);
            open = true;
            meaning = 0;
            continue;
        }
        cr_assert(open, "%s:%d: '%s' outside a vector", file, n, line);
        if (strcmp(line, "end") == 0) {
            cr_assert(v.expect == EXPECT_OK || meaning == 0, "%s: meaning after an error", v.where);
            replay(&v, cov);
            vector_free(&v);
            open = false;
        } else if (strncmp(line, "dir ", 4) == 0) {
            v.reply = strcmp(line + 4, "reply") == 0;
            cr_assert(v.reply || strcmp(line + 4, "request") == 0, "%s: bad dir", v.where);
        } else if (strncmp(line, "hex ", 4) == 0) {
            hex_append(&v.hex, line + 4, v.where);
        } else if (strncmp(line, "canonical ", 10) == 0) {
            hex_append(&v.canonical, line + 10, v.where);
        } else if (strncmp(line, "expect ", 7) == 0) {
            vector_expect(&v, line + 7);
        } else {
            cr_assert(strchr(line, '=') != NULL, "%s:%d: not NAME=VALUE: %s", file, n, line);
            buf_put_bytes(&v.lines, line, strlen(line));
            buf_put_u8(&v.lines, '\n');
            meaning++;
        }
    }
    cr_assert(!open, "%s: last vector has no end line", file);
    fclose(fp);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(codec, vectors_replay)
{
    static struct coverage cov;
    DIR *dir = opendir(KEEL_SPEC_DIR "/vectors");
    cr_assert_not_null(dir, "no %s", KEEL_SPEC_DIR "/vectors");
    char *names[64];
    int files = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) { /* at most 64 files: asserted */
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0) continue;
        cr_assert(files < 64);
        names[files++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)files, sizeof(names[0]), name_cmp);
    for (int i = 0; i < files; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/vectors/%s", KEEL_SPEC_DIR, names[i]);
        replay_file(path, names[i], &cov);
        free(names[i]);
    }
    cr_log_info("replayed %d vectors from %d files", cov.total, files);
    cr_assert(cov.total >= 100, "only %d vectors", cov.total);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_opcodes); i++) {
        const struct codec_opcode_desc *op = &codec_opcodes[i];
        if (op->request != NULL) {
            cr_assert(cov.ok[0][op->code] > 0, "no valid %s request vector", op->name);
        }
        if (op->request != NULL && op->request->fields_len > 0) {
            cr_assert(cov.bad[0][op->code] > 0, "no invalid %s request vector", op->name);
        }
        cr_assert(cov.ok[1][op->code] > 0, "no valid %s reply vector", op->name);
        cr_assert(cov.bad[1][op->code] > 0, "no invalid %s reply vector", op->name);
    }
}

/* ---- drift: protocol.md's tables against the compiled ones ------------------------------- */

#define MD_CELLS_MAX 8

/* Calls row_fn with the trimmed cells (backticks dropped) of each body row of the table after
 * "<!-- table:NAME -->"; returns the rows seen, -1 if there is no such table. */
static int md_table(const char *doc, const char *name, void (*row_fn)(char **cells, int n))
{
    char marker[96];
    snprintf(marker, sizeof(marker), "<!-- table:%s -->", name);
    const char *p = strstr(doc, marker);
    if (p == NULL) return -1;
    p = strchr(p, '\n');
    int rows = 0, seen = 0;
    while (p != NULL && *++p != '\0') { /* bounded by the document */
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 && seen == 0) continue;
        if (len == 0 || p[0] != '|') break;
        char row[2048];
        cr_assert(len < sizeof(row), "table %s: row too long", name);
        memcpy(row, p, len);
        row[len] = '\0';
        char *cells[MD_CELLS_MAX];
        int n = 0;
        for (char *c = strtok(row + 1, "|"); c && n < MD_CELLS_MAX; c = strtok(NULL, "|")) {
            while (*c == ' ' || *c == '`') c++;
            char *z = c + strlen(c);
            while (z > c && (z[-1] == ' ' || z[-1] == '`')) *--z = '\0';
            cells[n++] = c;
        }
        if (seen++ >= 2) { /* the header row and the --- row come first */
            row_fn(cells, n);
            rows++;
        }
        p = end ? end : p + len - 1;
    }
    return rows;
}

static void opcode_row(char **cells, int n)
{
    cr_assert(n >= 2);
    unsigned long code = strtoul(cells[0], NULL, 16);
    const char *name = codec_opcode_name((u16)code);
    cr_assert_not_null(name, "protocol.md opcode %s %s is not in codec_gen.h", cells[0], cells[1]);
    cr_assert_str_eq(name, cells[1], "opcode %s: protocol.md says %s, codec_gen.h %s", cells[0],
                     cells[1], name);
}

static void status_row(char **cells, int n)
{
    cr_assert(n >= 3);
    int code = atoi(cells[0]);
    const char *name = codec_status_name(code);
    cr_assert_not_null(name, "protocol.md status %d %s is not in codec_gen.h", code, cells[1]);
    cr_assert_str_eq(name, cells[1], "status %d: protocol.md says %s, codec_gen.h %s", code,
                     cells[1], name);
    cr_assert_eq(codec_status_closes(code), strcmp(cells[2], "yes") == 0,
                 "status %s: 'closes' differs", name);
}

static void limit_row(char **cells, int n)
{
    cr_assert(n >= 4);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_limits); i++) {
        if (strcmp(codec_limits[i].name, cells[0]) != 0) continue;
        cr_assert_eq(codec_limits[i].value, strtoull(cells[1], NULL, 10),
                     "limit %s: protocol.md says %s, codec_gen.h %" PRIu64, cells[0], cells[1],
                     codec_limits[i].value);
        cr_assert_str_eq(codec_status_name(codec_limits[i].status), cells[3],
                         "limit %s: status differs", cells[0]);
        return;
    }
    cr_assert_fail("protocol.md limit %s is not in codec_gen.h", cells[0]);
}

Test(codec, drift_protocol_md_matches_generated_tables)
{
    FILE *fp = fopen(KEEL_SPEC_DIR "/protocol.md", "r");
    cr_assert_not_null(fp, "cannot open protocol.md");
    static char doc[1 << 20];
    size_t len = fread(doc, 1, sizeof(doc) - 1, fp);
    fclose(fp);
    cr_assert(len < sizeof(doc) - 1, "protocol.md larger than the test's buffer");
    doc[len] = '\0';
    int ops = md_table(doc, "opcodes", opcode_row);
    int statuses = md_table(doc, "statuses", status_row);
    int limits = md_table(doc, "limits", limit_row);
    cr_assert_eq(ops, (int)KEEL_ARRAY_LEN(codec_opcodes), "opcode rows: %d", ops);
    cr_assert_eq(statuses, (int)KEEL_ARRAY_LEN(codec_statuses), "status rows: %d", statuses);
    cr_assert_eq(limits, (int)KEEL_ARRAY_LEN(codec_limits), "limit rows: %d", limits);
}

/* ---- randomized round trip ------------------------------------------------------------------ */

static u64 rng_state;

static u64 rng(void)
{
    u64 z = (rng_state += 0x9E3779B97F4A7C15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static u64 rng_range(u64 lo, u64 hi) /* inclusive; biased to the ends */
{
    if (lo >= hi) return lo;
    u64 span = hi - lo; /* values lo..lo+span; span + 1 may overflow, so it is never formed */
    switch (rng() % 8) {
    case 0:
        return lo;
    case 1:
        return hi;
    case 2:
        return lo + rng() % (KEEL_MIN(span, 15) + 1);
    default:
        return span == UINT64_MAX ? rng() : lo + rng() % (span + 1);
    }
}

static u8 pool[8192];

static void rand_msg(const struct codec_msg_desc *d, void *out, int depth);

static void rand_list(const struct codec_field_desc *f, struct codec_list *list, int depth)
{
    u64 count = rng_range((u64)f->min, KEEL_MAX((u64)f->min, KEEL_MIN(f->max, depth < 2 ? 5 : 2)));
    struct codec_list_builder lb;
    codec_list_begin(&lb, f, list, &scratch[depth]);
    union codec_msg_any elem;
    for (u64 i = 0; i < count; i++) {
        scratch_reset_from(depth + 1);
        rand_msg(f->msg, &elem, depth + 1);
        int rc = codec_list_add(&lb, &elem);
        cr_assert_eq(rc, 0, "random %s element: %s", f->msg->name, status_str(rc));
    }
    codec_list_end(&lb);
}

static void rand_field(const struct codec_field_desc *f, u8 *dst, int depth)
{
    u64 v;
    struct span s;
    switch (f->type) {
    case CODEC_T_BOOL:
        *(bool *)dst = rng() & 1;
        break;
    case CODEC_T_ENUM:
        do v = rng() % f->enm->count;
        while (f->enm->reserved[v]);
        *dst = (u8)v;
        break;
    case CODEC_T_FLAGS:
        *dst = (u8)(rng() & ((1u << f->enm->count) - 1));
        break;
    case CODEC_T_BYTES16:
    case CODEC_T_BYTES32:
        v = rng_range((u64)f->min, KEEL_MIN(f->max, sizeof(pool)));
        s = span_make(pool + rng() % (sizeof(pool) - v + 1), v);
        memcpy(dst, &s, sizeof(s));
        break;
    case CODEC_T_LIST16:
    case CODEC_T_LIST32:
        rand_list(f, (struct codec_list *)dst, depth);
        break;
    case CODEC_T_MSG:
    case CODEC_T_SIZED:
        rand_msg(f->msg, dst, depth + 1);
        break;
    case CODEC_T_I64:
        v = f->min == INT64_MIN ? rng() : rng_range((u64)f->min, INT64_MAX);
        memcpy(dst, &v, sizeof(v));
        break;
    default:
        v = rng_range((u64)f->min, f->max);
        if (f->type == CODEC_T_U64)
            memcpy(dst, &v, sizeof(v));
        else if (f->type == CODEC_T_U32)
            *(u32 *)dst = (u32)v;
        else
            *(u16 *)dst = (u16)v;
    }
}

static void rand_msg(const struct codec_msg_desc *d, void *out, int depth)
{
    cr_assert(depth < CODEC_DEPTH_MAX);
    memset(out, 0, d->size);
    for (u8 i = 0; i < d->fields_len; i++) {
        const struct codec_field_desc *f = &d->fields[i];
        bool present = true;
        if (f->cond_field != CODEC_COND_NONE) {
            const struct codec_field_desc *dep = &d->fields[f->cond_field];
            const u8 *p = (const u8 *)out + dep->offset;
            u8 val = dep->type == CODEC_T_BOOL ? *(const bool *)p : *p;
            present = (val == f->cond_value) != (f->cond_negate != 0);
        }
        if (present) rand_field(f, (u8 *)out + f->offset, depth);
    }
}

static void describe_of(struct buf *out, const struct codec_frame *f, bool reply,
                        const union codec_msg_any *body, const struct codec_reply *rep)
{
    buf_reset(out);
    if (reply)
        codec_describe_reply(out, f, rep);
    else
        codec_describe_request(out, f, body);
    cr_assert(buf_ok(out));
}

/* Encodes one random message of opcode op, decodes it, and checks meaning and bytes. */
static void roundtrip_one(const struct codec_opcode_desc *op, bool reply, struct buf *wire,
                          struct buf *text_a, struct buf *text_b)
{
    static union codec_msg_any body, body2;
    static struct codec_reply rep, rep2;
    struct codec_frame head = {op->code, (u16)(rng() & 1), 1 + rng() % UINT32_MAX, {0}};
    scratch_reset_from(0);
    buf_reset(wire);
    int rc;
    if (reply) {
        if (op->code == CODEC_OP_GOAWAY) head.request_id = 0;
        memset(&rep, 0, sizeof(rep));
        rand_msg(&codec_msg_reply_header, &rep.header, 0);
        bool ok = op->code != CODEC_OP_GOAWAY && (rep.header.status == 0 || rng() % 2);
        if (ok) rep.header.status = CODEC_S_OK;
        if (!ok && rep.header.status == 0) rep.header.status = CODEC_S_INTERNAL;
        rand_msg(ok ? op->reply : &codec_msg_error_body, &rep.body, 0);
        rc = codec_reply_encode(wire, &head, &rep.header, &rep.body, CODEC_REPLY_FRAME_SIZE_MAX);
    } else {
        rand_msg(op->request, &body, 0);
        rc = codec_request_encode(wire, &head, &body, CODEC_FRAME_SIZE_MAX);
    }
    cr_assert_eq(rc, 0, "encode %s: %s", op->name, status_str(rc));
    struct codec_frame f;
    size_t used;
    rc = codec_frame_decode(span_make(wire->ptr, wire->len), UINT32_MAX, &f, &used);
    cr_assert(rc == 0 && used == wire->len);
    rc = reply ? codec_reply_decode(&f, &rep2) : codec_request_decode(&f, &body2);
    cr_assert_eq(rc, 0, "decode %s %s: %s", op->name, reply ? "reply" : "request", status_str(rc));
    describe_of(text_a, &head, reply, &body, &rep);
    describe_of(text_b, &f, reply, &body2, &rep2);
    struct buf again;
    buf_init_dynamic(&again, wire->len);
    if (reply)
        rc = codec_reply_encode(&again, &f, &rep2.header, &rep2.body, UINT32_MAX);
    else
        rc = codec_request_encode(&again, &f, &body2, UINT32_MAX);
    cr_assert(rc == 0 && again.len == wire->len && memcmp(again.ptr, wire->ptr, wire->len) == 0,
              "%s: re-encoding the decoded message changed the bytes", op->name);
    buf_free(&again);
    cr_assert(text_a->len == text_b->len && memcmp(text_a->ptr, text_b->ptr, text_a->len) == 0,
              "%s: meaning changed\n%.*s---\n%.*s", op->name, (int)text_a->len,
              (const char *)text_a->ptr, (int)text_b->len, (const char *)text_b->ptr);
}

Test(codec, roundtrip_random)
{
    const char *seed_env = getenv("KEEL_SEED");
    const char *ops_env = getenv("KEEL_OPS");
    u64 seed = seed_env ? strtoull(seed_env, NULL, 0) : (u64)time(NULL);
    long ops = ops_env ? atol(ops_env) : 300;
    fprintf(stderr, "test_codec roundtrip_random: KEEL_SEED=%" PRIu64 " KEEL_OPS=%ld\n", seed, ops);
    rng_state = seed;
    for (size_t i = 0; i < sizeof(pool); i++) pool[i] = (u8)rng();
    struct buf wire, a, b;
    buf_init_dynamic(&wire, 1 << 16);
    buf_init_dynamic(&a, 1 << 16);
    buf_init_dynamic(&b, 1 << 16);
    for (long n = 0; n < ops; n++) {
        for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_opcodes); i++) {
            if (codec_opcodes[i].request != NULL) {
                roundtrip_one(&codec_opcodes[i], false, &wire, &a, &b);
            }
            roundtrip_one(&codec_opcodes[i], true, &wire, &a, &b);
        }
    }
    buf_free(&wire);
    buf_free(&a);
    buf_free(&b);
}

/* Damages a valid frame (flipped bytes, a cut, bytes appended; the length kept consistent so
 * the body decoder is reached) and decodes it from an exactly sized heap copy, so ASan sees any
 * read past the input. A damaged frame must fail with a status, or decode to a message that
 * encodes again and decodes to the same meaning. */
static void mutate_one(const struct buf *wire, bool reply, struct buf *text_a, struct buf *text_b)
{
    size_t len = wire->len;
    u8 *m = malloc(len + 64);
    cr_assert_not_null(m);
    memcpy(m, wire->ptr, len);
    u64 how = rng() % 4;
    if (how <= 1 && len > CODEC_FRAME_HEADER_SIZE) {
        for (u64 n = 1 + rng() % 4; n > 0; n--) {
            m[CODEC_FRAME_HEADER_SIZE + rng() % (len - CODEC_FRAME_HEADER_SIZE)] ^= (u8)rng();
        }
    } else if (how == 2) {
        len = CODEC_FRAME_HEADER_SIZE + rng() % (len - CODEC_FRAME_HEADER_SIZE + 1);
    } else {
        for (u64 n = 1 + rng() % 63; n > 0; n--) m[len++] = (u8)rng();
    }
    store_u32_le(m, (u32)(len - 4));
    u8 *exact = malloc(len);
    cr_assert_not_null(exact);
    memcpy(exact, m, len);
    free(m);
    struct codec_frame f;
    size_t used;
    static union codec_msg_any body, body2;
    static struct codec_reply rep, rep2;
    int rc = codec_frame_decode(span_make(exact, len), UINT32_MAX, &f, &used);
    cr_assert_eq(rc, 0);
    rc = reply ? codec_reply_decode(&f, &rep) : codec_request_decode(&f, &body);
    if (rc == 0) {
        struct buf again;
        buf_init_dynamic(&again, len + 64);
        if (reply)
            rc = codec_reply_encode(&again, &f, &rep.header, &rep.body, UINT32_MAX);
        else
            rc = codec_request_encode(&again, &f, &body, UINT32_MAX);
        cr_assert_eq(rc, 0, "a damaged frame decoded but does not encode: %s", status_str(rc));
        struct codec_frame f2;
        cr_assert_eq(codec_frame_decode(span_make(again.ptr, again.len), UINT32_MAX, &f2, &used),
                     0);
        rc = reply ? codec_reply_decode(&f2, &rep2) : codec_request_decode(&f2, &body2);
        cr_assert_eq(rc, 0, "re-encoded damaged frame: %s", status_str(rc));
        describe_of(text_a, &f, reply, &body, &rep);
        describe_of(text_b, &f2, reply, &body2, &rep2);
        cr_assert(text_a->len == text_b->len && memcmp(text_a->ptr, text_b->ptr, text_a->len) == 0);
        buf_free(&again);
    } else {
        cr_assert(rc > 0 && codec_status_name(rc) != NULL, "decoder returned %d", rc);
    }
    free(exact);
}

Test(codec, mutated_frames_fail_cleanly)
{
    const char *seed_env = getenv("KEEL_SEED");
    const char *ops_env = getenv("KEEL_OPS");
    u64 seed = seed_env ? strtoull(seed_env, NULL, 0) : (u64)time(NULL) ^ 0x5A5A;
    long ops = ops_env ? atol(ops_env) : 300;
    fprintf(stderr, "test_codec mutated_frames: KEEL_SEED=%" PRIu64 " KEEL_OPS=%ld\n", seed, ops);
    rng_state = seed;
    for (size_t i = 0; i < sizeof(pool); i++) pool[i] = (u8)rng();
    struct buf wire, a, b;
    buf_init_dynamic(&wire, 1 << 16);
    buf_init_dynamic(&a, 1 << 16);
    buf_init_dynamic(&b, 1 << 16);
    for (long n = 0; n < ops; n++) {
        for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_opcodes); i++) {
            bool reply = codec_opcodes[i].request == NULL || rng() % 2;
            roundtrip_one(&codec_opcodes[i], reply, &wire, &a, &b);
            for (int k = 0; k < 4; k++) mutate_one(&wire, reply, &a, &b);
        }
    }
    buf_free(&wire);
    buf_free(&a);
    buf_free(&b);
}

/* ---- frames and API edges ------------------------------------------------------------------ */

static size_t put_frame(struct buf *b, u64 id, const char *key, const char *value)
{
    struct codec_put_request put = {0};
    put.key = span_make(key, strlen(key));
    put.value = span_make(value, strlen(value));
    struct codec_frame head = {CODEC_OP_PUT, 0, id, {0}};
    size_t before = b->len;
    cr_assert_eq(codec_request_encode(b, &head, &put, CODEC_FRAME_SIZE_MAX), 0);
    return b->len - before;
}

Test(codec, pipelined_frames_split_anywhere)
{
    struct buf b;
    buf_init_dynamic(&b, 256);
    size_t a_len = put_frame(&b, 1, "a", "x");
    put_frame(&b, 2, "bb", "yy");
    put_frame(&b, 3, "ccc", "");
    for (size_t cut = 0; cut <= b.len; cut++) { /* every split point of the stream */
        struct codec_frame f;
        size_t used = 0;
        int rc = codec_frame_decode(span_make(b.ptr, cut), CODEC_FRAME_SIZE_MAX, &f, &used);
        if (cut < a_len) {
            cr_assert_eq(rc, CODEC_NEED_MORE, "cut %zu", cut);
            continue;
        }
        cr_assert_eq(rc, 0);
        cr_assert_eq(used, a_len);
        cr_assert_eq(f.request_id, 1);
    }
    size_t pos = 0;
    for (u64 id = 1; id <= 3; id++) {
        struct codec_frame f;
        size_t used;
        union codec_msg_any body;
        cr_assert_eq(codec_frame_decode(span_make(b.ptr + pos, b.len - pos), CODEC_FRAME_SIZE_MAX,
                                        &f, &used),
                     0);
        cr_assert_eq(f.request_id, id);
        cr_assert_eq(codec_request_decode(&f, &body), 0);
        cr_assert_eq(body.put_request.key.len, id);
        cr_assert(body.put_request.key.ptr >= b.ptr && body.put_request.key.ptr < b.ptr + b.len,
                  "decoded spans borrow the input");
        pos += used;
    }
    cr_assert_eq(pos, b.len);
    buf_free(&b);
}

Test(codec, encoder_refuses_what_decoder_refuses_and_rolls_back)
{
    u8 mem[256];
    struct buf b;
    buf_init_fixed(&b, mem, sizeof(mem));
    put_frame(&b, 1, "k", "v");
    size_t len = b.len;
    struct codec_put_request put = {0};
    struct codec_frame head = {CODEC_OP_PUT, 0, 2, {0}};
    cr_assert_eq(codec_request_encode(&b, &head, &put, CODEC_FRAME_SIZE_MAX), CODEC_S_KEY_EMPTY);
    cr_assert_eq(b.len, len, "a refused message leaves the buffer as it was");
    put.key = span_make("k", 1);
    put.lease = -1;
    cr_assert_eq(codec_request_encode(&b, &head, &put, CODEC_FRAME_SIZE_MAX), CODEC_S_INVALID);
    put.lease = 0;
    put.flags = 0x10;
    cr_assert_eq(codec_request_encode(&b, &head, &put, CODEC_FRAME_SIZE_MAX), CODEC_S_MALFORMED);
    put.flags = CODEC_PUT_REQUEST_PREV_KV;
    cr_assert_eq(codec_request_encode(&b, &head, &put, 20), CODEC_S_FRAME_TOO_LARGE);
    cr_assert_eq(b.len, len);
    static u8 big[300];
    put.value = span_make(big, sizeof(big));
    cr_assert_eq(codec_request_encode(&b, &head, &put, CODEC_FRAME_SIZE_MAX), CODEC_NO_ROOM);
    cr_assert_eq(b.len, len);
    struct codec_range_request range = {0};
    range.key = span_make("a", 1);
    range.sort_order = CODEC_SORT_ORDER_COUNT_;
    buf_reset(&b);
    head.opcode = CODEC_OP_RANGE;
    cr_assert_eq(codec_request_encode(&b, &head, &range, CODEC_FRAME_SIZE_MAX), CODEC_S_MALFORMED);
}

Test(codec, list_builder_stops_at_the_limit)
{
    static u8 mem[1 << 16];
    struct buf b;
    buf_init_fixed(&b, mem, sizeof(mem));
    const struct codec_field_desc *f = codec_field_find(&codec_msg_txn_request, "compares");
    cr_assert_not_null(f);
    struct codec_txn_request txn = {0};
    struct codec_list_builder lb;
    codec_list_begin(&lb, f, &txn.compares, &b);
    struct codec_compare cmp = {0};
    cmp.target = CODEC_COMPARE_TARGET_MOD;
    cmp.key = span_make("k", 1);
    for (u32 i = 0; i < CODEC_TXN_OPS_MAX; i++) cr_assert_eq(codec_list_add(&lb, &cmp), 0);
    cr_assert_eq(codec_list_add(&lb, &cmp), CODEC_S_TOO_MANY_OPS);
    cmp.key = span_make(NULL, 0);
    codec_list_end(&lb);
    cr_assert_eq(txn.compares.count, CODEC_TXN_OPS_MAX);
    u8 out_mem[1 << 16];
    struct buf out;
    buf_init_fixed(&out, out_mem, sizeof(out_mem));
    cr_assert_eq(codec_encode(&out, &codec_msg_txn_request, &txn), 0);
    struct codec_txn_request back;
    cr_assert_eq(codec_decode(&codec_msg_txn_request, span_make(out.ptr, out.len), &back), 0);
    cr_assert_eq(back.compares.count, CODEC_TXN_OPS_MAX);
    struct codec_iter it;
    codec_iter_init(&it, f, &back.compares);
    struct codec_compare c;
    u32 n = 0;
    while (codec_iter_next(&it, &c)) {
        cr_assert_eq(c.target, CODEC_COMPARE_TARGET_MOD);
        n++;
    }
    cr_assert_eq(n, CODEC_TXN_OPS_MAX);
}

Test(codec, names_and_status_semantics)
{
    cr_assert_str_eq(codec_status_name(CODEC_S_KEY_TOO_LARGE), "KEY_TOO_LARGE");
    cr_assert_str_eq(codec_status_message(KEEL_EKEY_TOO_LARGE), keel_err_str(KEEL_EKEY_TOO_LARGE));
    for (int e = 0; e < KEEL_ERR_COUNT_; e++) {
        cr_assert_not_null(codec_status_name(e), "keel_err %d has no status", e);
        cr_assert_str_eq(codec_status_message(e), keel_err_str(e), "status %d message", e);
    }
    cr_assert(codec_status_closes(CODEC_S_FRAME_TOO_LARGE));
    cr_assert_not(codec_status_closes(CODEC_S_MALFORMED));
    cr_assert_null(codec_status_name(999));
    cr_assert_str_eq(codec_opcode_name(CODEC_OP_SHARD_MAP), "SHARD_MAP");
    cr_assert_null(codec_opcode_name(CODEC_OP_RESERVED_WATCH_FIRST));
    cr_assert_null(codec_request_desc(CODEC_OP_GOAWAY));
    cr_assert_eq(codec_reply_desc(CODEC_OP_GOAWAY), &codec_msg_error_body);
}
