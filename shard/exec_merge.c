/*
 * exec_merge.c — the router port's RANGE over several shards: decodes each
 * shard's reply frame, merges their kvs with router_merge and encodes one
 * reply (contract: exec_merge_ranges in exec.h).
 *
 * Memory: the kvs of all parts, then the merged ones, as two mvcc_kv arrays in
 * scratch[2] (grown on demand, reused); the merged kvs list in scratch[0].
 * Spans borrow the parts.
 */
#include "core/assert.h"
#include "shard/exec_int.h"
#include "shard/router.h"

#include <string.h>

/* Decodes part into r; false if it is not a whole RANGE reply frame. */
static bool exec_part_decode(struct span part, struct codec_reply *r)
{
    struct codec_frame f;
    size_t size = 0;
    if (codec_frame_decode(part, CODEC_REPLY_FRAME_SIZE_MAX, &f, &size) != 0) return false;
    if (size != part.len || f.opcode != CODEC_OP_RANGE) return false;
    return codec_reply_decode(&f, r) == 0;
}

/* The first part that is an error (or does not decode) as the answer; 1 when there is none
 * (and *kvs_total gets the number of kvs of all parts). */
static int exec_parts_check(const struct exec *x, u64 request_id, const struct span *parts,
                            u32 part_count, size_t *kvs_total, struct buf *out)
{
    struct codec_reply r;
    *kvs_total = 0;
    for (u32 i = 0; i < part_count; i++) {
        if (!exec_part_decode(parts[i], &r))
            return exec_error_reply(out, CODEC_OP_RANGE, request_id, CODEC_SHARD_NONE, 0,
                                    x->member_id, CODEC_S_INTERNAL, 0,
                                    "a shard's range reply does not decode");
        const struct codec_reply_header *h = &r.header;
        if (h->status != CODEC_S_OK)
            return exec_error_reply_span(out, CODEC_OP_RANGE, request_id, h->shard, h->revision,
                                         x->member_id, h->status, r.body.error_body.detail,
                                         r.body.error_body.message);
        *kvs_total += r.body.range_reply.kvs.count;
    }
    return 1;
}

/* Fills in[i] from part i, its kvs at kvs (room for every part's kvs). */
static void exec_parts_load(const struct span *parts, u32 part_count, struct mvcc_kv *kvs,
                            struct router_merge_input *in)
{
    const struct codec_field_desc *fd = codec_field_find(&codec_msg_range_reply, "kvs");
    size_t n = 0;
    for (u32 i = 0; i < part_count; i++) {
        struct codec_reply r;
        bool ok = exec_part_decode(parts[i], &r);
        ASSERT(ok);
        struct codec_iter it;
        struct codec_kv c;
        in[i] = (struct router_merge_input){.kvs = kvs + n,
                                            .kvs_len = 0,
                                            .count = r.body.range_reply.count,
                                            .more = r.body.range_reply.more};
        codec_iter_init(&it, fd, &r.body.range_reply.kvs);
        while (codec_iter_next(&it, &c)) {
            kvs[n++] = (struct mvcc_kv){.key = c.key,
                                        .value = c.value,
                                        .create_revision = c.create_revision,
                                        .mod_revision = c.mod_revision,
                                        .version = c.version,
                                        .lease = c.lease};
            in[i].kvs_len++;
        }
    }
}

/* One part sorted by other than the key (the router sends those to one shard only): its kvs
 * as they are, cut to limit. */
static void exec_merge_one(const struct router_merge_input *in, i64 limit, struct mvcc_kv *out,
                           struct router_merge_result *res)
{
    size_t want = in->kvs_len;
    if (limit > 0 && (u64)limit < want) want = (size_t)limit;
    if (want > 0) memcpy(out, in->kvs, want * sizeof(*out));
    res->kvs_len = want;
    res->count = in->count;
    res->more = in->more || want < in->kvs_len;
}

static int exec_merge_encode(struct exec *x, u64 request_id, const struct mvcc_kv *kvs,
                             const struct router_merge_result *res, struct buf *out)
{
    struct codec_range_reply body = {.count = res->count, .more = res->more};
    struct codec_list_builder lb;
    buf_reset(&x->scratch[0]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_range_reply, "kvs"), &body.kvs,
                     &x->scratch[0]);
    int rc = 0;
    for (size_t i = 0; i < res->kvs_len && rc == 0; i++) {
        struct codec_kv c = exec_kv_to_codec(&kvs[i]);
        rc = codec_list_add(&lb, &c);
        if (rc == 0 && x->scratch[0].len > x->reply_frame_size_max) rc = CODEC_S_REPLY_TOO_LARGE;
    }
    codec_list_end(&lb);
    struct codec_frame head = {.opcode = CODEC_OP_RANGE, .flags = 0, .request_id = request_id};
    struct codec_reply_header h = {.shard = CODEC_SHARD_NONE, .member_id = x->member_id};
    if (rc == 0) rc = codec_reply_encode(out, &head, &h, &body, x->reply_frame_size_max);
    if (rc == 0) return 0;
    if (rc == CODEC_NO_ROOM) return -1;
    u64 detail = rc == CODEC_S_REPLY_TOO_LARGE ? x->reply_frame_size_max : 0;
    return exec_error_reply(out, CODEC_OP_RANGE, request_id, CODEC_SHARD_NONE, 0, x->member_id,
                            (u16)rc, detail, codec_status_message(rc));
}

int exec_merge_ranges(struct exec *x, u64 request_id, const struct codec_range_request *req,
                      const struct span *parts, u32 part_count, struct buf *out)
{
    ASSERT(x != NULL && req != NULL && out != NULL);
    ASSERT(part_count <= ROUTER_MERGE_INPUTS_MAX);
    ASSERT(request_id != 0);
    size_t total = 0;
    int rc = exec_parts_check(x, request_id, parts, part_count, &total, out);
    if (rc != 1) return rc;
    buf_reset(&x->scratch[2]);
    struct mvcc_kv *kvs = (struct mvcc_kv *)(void *)buf_reserve(
        &x->scratch[2], (2 * total + 1) * sizeof(struct mvcc_kv));
    if (kvs == NULL) return -1;
    struct router_merge_input in[ROUTER_MERGE_INPUTS_MAX];
    exec_parts_load(parts, part_count, kvs, in);
    struct router_merge_result res = {0};
    bool by_key = req->sort_target == CODEC_SORT_TARGET_KEY;
    ASSERT(by_key || part_count <= 1);
    if (!by_key && part_count == 1) {
        exec_merge_one(&in[0], req->limit, kvs + total, &res);
    } else {
        bool descend = by_key && req->sort_order == CODEC_SORT_ORDER_DESCEND;
        rc = router_merge(in, part_count, req->limit,
                          descend ? MVCC_SORT_DESCEND : MVCC_SORT_ASCEND, kvs + total, total, &res);
        ASSERT(rc == KEEL_OK);
    }
    rc = exec_merge_encode(x, request_id, kvs + total, &res, out);
    buf_reset(&x->scratch[2]);
    return rc;
}
