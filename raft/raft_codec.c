/*
 * raft_codec.c — raft messages <-> bytes (pure; no allocation).
 *
 * Messages travel between peers as opaque frames (the transport adds its own framing and
 * checksum). All integers are little-endian. Every field of struct raft_msg is carried for
 * every type, so a message decodes to exactly what was encoded (entries and snap_data are
 * borrowed from the buffer).
 *
 * Message (RAFT_CODEC_VERSION 1):
 *
 *   OFFSET SIZE DESCRIPTION
 *   0      1    version (1)
 *   1      1    type (enum raft_msg_type, 1..13)
 *   2      1    flags: bit 0 reject, bit 1 transfer, bit 2 snap_last; other bits zero
 *   3      1    reserved, zero
 *   4      8    from (nonzero)
 *   12     8    to (nonzero)
 *   20     8    term
 *   28     8    log_term
 *   36     8    index
 *   44     8    commit
 *   52     8    context
 *   60     8    reject_hint
 *   68     4    entry_count (nonzero only for APP; each entry takes at least 21 bytes)
 *   72     ...  entry_count entries:
 *                 0   8    term   (non-decreasing, >= log_term, <= the message's term)
 *                 8   8    index  (the message's index + 1 + i: contiguous)
 *                 16  1    type   (enum raft_entry_type, 1..2)
 *                 17  4    len    (bytes that follow)
 *                 21  len  data
 *   S      8    snap.index
 *   S+8    8    snap.term
 *   S+16   1    snap.conf.count (<= RAFT_MEMBERS_MAX)
 *   S+17   9*n  members: 8 id (nonzero, unique), 1 role (enum raft_member_role, 1..2)
 *   T      8    snap_offset
 *   T+8    4    snap_len (nonzero only for SNAP)
 *   T+12   len  snap_data
 *   end         nothing may follow
 *
 * A message without entries and members takes RAFT_MSG_SIZE_MIN (101) bytes.
 *
 * Conf changes (the data of RAFT_ENTRY_CONF entries) are encoded by raft_conf.c, whose top
 * comment holds their byte table.
 *
 * Decoding never trusts a length or count: a short buffer, bytes left over, an unknown
 * version, type, role or flag, a count that cannot fit in the bytes left, a zero or duplicate
 * member id, or entries that are not contiguous give RAFT_ECORRUPT and leave nothing borrowed.
 */
#include "raft/raft.h"

#include "core/assert.h"
#include "core/buf.h"

#include <string.h>

#define RAFT_CODEC_VERSION     1
#define RAFT_MSG_HEADER_SIZE   72
#define RAFT_ENTRY_HEADER_SIZE 21
#define RAFT_MEMBER_SIZE       9
#define RAFT_MSG_SNAP_SIZE_MIN (8 + 8 + 1 + 8 + 4)
#define RAFT_MSG_SIZE_MIN      (RAFT_MSG_HEADER_SIZE + RAFT_MSG_SNAP_SIZE_MIN)

#define FLAG_REJECT    0x01u
#define FLAG_TRANSFER  0x02u
#define FLAG_SNAP_LAST 0x04u
#define FLAGS_KNOWN    (FLAG_REJECT | FLAG_TRANSFER | FLAG_SNAP_LAST)

static_assert(RAFT_MSG_SIZE_MIN == 101, "the layout table above states 101 bytes");
static_assert(RAFT_MEMBERS_MAX <= 255, "the member count is one byte");

/* ---- messages: encode ----------------------------------------------------------------- */

static bool msg_type_valid(u32 type)
{
    return type >= RAFT_MSG_APP && type < RAFT_MSG_TYPE_COUNT_;
}

static bool member_role_valid(u32 role)
{
    return role == RAFT_VOTER || role == RAFT_LEARNER;
}

static bool entry_type_valid(u32 type)
{
    return type == RAFT_ENTRY_NORMAL || type == RAFT_ENTRY_CONF;
}

size_t raft_msg_encoded_size(const struct raft_msg *m)
{
    ASSERT(m != NULL);
    ASSERT(m->snap.conf.count <= RAFT_MEMBERS_MAX);
    ASSERT_IMPLIES(m->entry_count > 0, m->entries != NULL);
    size_t size = RAFT_MSG_SIZE_MIN + (size_t)m->snap.conf.count * RAFT_MEMBER_SIZE;
    for (u32 i = 0; i < m->entry_count; i++) size += RAFT_ENTRY_HEADER_SIZE + m->entries[i].len;
    size += m->snap_len;
    ASSERT(size >= RAFT_MSG_SIZE_MIN);
    return size;
}

static u8 msg_flags(const struct raft_msg *m)
{
    u8 flags = 0;
    if (m->reject) flags |= FLAG_REJECT;
    if (m->transfer) flags |= FLAG_TRANSFER;
    if (m->snap_last) flags |= FLAG_SNAP_LAST;
    ASSERT((flags & ~FLAGS_KNOWN) == 0);
    return flags;
}

static void msg_encode_entries(const struct raft_msg *m, struct buf *b)
{
    ASSERT_IMPLIES(m->entry_count > 0, m->entries != NULL);
    for (u32 i = 0; i < m->entry_count; i++) {
        const struct raft_entry *e = &m->entries[i];
        ASSERT(entry_type_valid(e->type));
        ASSERT_IMPLIES(e->len > 0, e->data != NULL);
        buf_put_u64(b, e->term);
        buf_put_u64(b, e->index);
        buf_put_u8(b, e->type);
        buf_put_u32(b, e->len);
        if (e->len > 0) buf_put_bytes(b, e->data, e->len);
    }
}

static void msg_encode_snap(const struct raft_msg *m, struct buf *b)
{
    ASSERT(m->snap.conf.count <= RAFT_MEMBERS_MAX);
    ASSERT_IMPLIES(m->snap_len > 0, m->snap_data != NULL);
    buf_put_u64(b, m->snap.index);
    buf_put_u64(b, m->snap.term);
    buf_put_u8(b, (u8)m->snap.conf.count);
    for (u32 i = 0; i < m->snap.conf.count; i++) {
        ASSERT(m->snap.conf.members[i].id != 0);
        ASSERT(member_role_valid(m->snap.conf.members[i].role));
        buf_put_u64(b, m->snap.conf.members[i].id);
        buf_put_u8(b, m->snap.conf.members[i].role);
    }
    buf_put_u64(b, m->snap_offset);
    buf_put_u32(b, m->snap_len);
    if (m->snap_len > 0) buf_put_bytes(b, m->snap_data, m->snap_len);
}

size_t raft_msg_encode(const struct raft_msg *m, u8 *buf, size_t cap)
{
    ASSERT(m != NULL);
    ASSERT(buf != NULL || cap == 0);
    ASSERT(msg_type_valid(m->type));
    ASSERT(m->from != 0);
    ASSERT(m->to != 0);
    ASSERT_IMPLIES(m->entry_count > 0, m->type == RAFT_MSG_APP);
    ASSERT_IMPLIES(m->snap_len > 0, m->type == RAFT_MSG_SNAP);
    size_t size = raft_msg_encoded_size(m);
    if (size > cap) return 0;
    struct buf b;
    buf_init_fixed(&b, buf, cap);
    buf_put_u8(&b, RAFT_CODEC_VERSION);
    buf_put_u8(&b, m->type);
    buf_put_u8(&b, msg_flags(m));
    buf_put_u8(&b, 0);
    buf_put_u64(&b, m->from);
    buf_put_u64(&b, m->to);
    buf_put_u64(&b, m->term);
    buf_put_u64(&b, m->log_term);
    buf_put_u64(&b, m->index);
    buf_put_u64(&b, m->commit);
    buf_put_u64(&b, m->context);
    buf_put_u64(&b, m->reject_hint);
    buf_put_u32(&b, m->entry_count);
    ASSERT(b.len == RAFT_MSG_HEADER_SIZE);
    msg_encode_entries(m, &b);
    msg_encode_snap(m, &b);
    ASSERT(buf_ok(&b));
    ASSERT(b.len == size); /* paired with raft_msg_encoded_size */
    return size;
}

/* ---- messages: decode ----------------------------------------------------------------- */

u32 raft_msg_entry_count(const u8 *buf, size_t len)
{
    ASSERT(buf != NULL || len == 0);
    if (len < RAFT_MSG_SIZE_MIN || buf[0] != RAFT_CODEC_VERSION) return 0;
    u32 count = load_u32_le(buf + RAFT_MSG_HEADER_SIZE - 4);
    /* A count the bytes cannot hold is corrupt: report none rather than a huge array. */
    if (count > (len - RAFT_MSG_SIZE_MIN) / RAFT_ENTRY_HEADER_SIZE) return 0;
    return count;
}

/* Reads the fixed header; returns the entry count, or -1 when corrupt. */
static i64 msg_decode_header(struct buf_reader *r, struct raft_msg *m)
{
    ASSERT(r->pos == 0);
    u8 version = buf_get_u8(r);
    m->type = buf_get_u8(r);
    u8 flags = buf_get_u8(r);
    u8 reserved = buf_get_u8(r);
    m->from = buf_get_u64(r);
    m->to = buf_get_u64(r);
    m->term = buf_get_u64(r);
    m->log_term = buf_get_u64(r);
    m->index = buf_get_u64(r);
    m->commit = buf_get_u64(r);
    m->context = buf_get_u64(r);
    m->reject_hint = buf_get_u64(r);
    u32 count = buf_get_u32(r);
    if (!buf_reader_ok(r) || version != RAFT_CODEC_VERSION || reserved != 0) return -1;
    if (!msg_type_valid(m->type) || (flags & ~FLAGS_KNOWN) != 0) return -1;
    if (m->from == 0 || m->to == 0) return -1;
    if (count > 0 && m->type != RAFT_MSG_APP) return -1;
    if (count > buf_reader_left(r) / RAFT_ENTRY_HEADER_SIZE) return -1;
    m->reject = (flags & FLAG_REJECT) != 0;
    m->transfer = (flags & FLAG_TRANSFER) != 0;
    m->snap_last = (flags & FLAG_SNAP_LAST) != 0;
    ASSERT(r->pos == RAFT_MSG_HEADER_SIZE);
    return count;
}

static bool msg_decode_entry(struct buf_reader *r, const struct raft_msg *m, u32 i,
                             struct raft_entry *e)
{
    ASSERT(i < m->entry_count);
    e->term = buf_get_u64(r);
    e->index = buf_get_u64(r);
    e->type = buf_get_u8(r);
    e->len = buf_get_u32(r);
    if (!buf_reader_ok(r) || !entry_type_valid(e->type)) return false;
    if (e->len > buf_reader_left(r)) return false;
    struct span data = buf_get_bytes(r, e->len);
    e->data = e->len > 0 ? data.ptr : NULL;
    /* Entries of one AppendEntries are contiguous after (index, log_term), their terms never
     * decrease and never exceed the sender's term. */
    u64 prev_term = i == 0 ? m->log_term : m->entries[i - 1].term;
    if (m->index + 1 + i <= m->index || e->index != m->index + 1 + i) return false;
    if (e->term < prev_term || e->term > m->term) return false;
    ASSERT(buf_reader_ok(r));
    return true;
}

static bool msg_decode_members(struct buf_reader *r, struct raft_conf *conf)
{
    u8 count = buf_get_u8(r);
    if (!buf_reader_ok(r) || count > RAFT_MEMBERS_MAX) return false;
    if (count > buf_reader_left(r) / RAFT_MEMBER_SIZE) return false;
    conf->count = count;
    for (u32 i = 0; i < count; i++) {
        conf->members[i].id = buf_get_u64(r);
        conf->members[i].role = buf_get_u8(r);
        if (conf->members[i].id == 0 || !member_role_valid(conf->members[i].role)) return false;
        for (u32 j = 0; j < i; j++)
            if (conf->members[j].id == conf->members[i].id) return false;
    }
    ASSERT(conf->count <= RAFT_MEMBERS_MAX);
    return buf_reader_ok(r);
}

static bool msg_decode_snap(struct buf_reader *r, struct raft_msg *m)
{
    m->snap.index = buf_get_u64(r);
    m->snap.term = buf_get_u64(r);
    if (!msg_decode_members(r, &m->snap.conf)) return false;
    m->snap_offset = buf_get_u64(r);
    m->snap_len = buf_get_u32(r);
    if (!buf_reader_ok(r)) return false;
    if (m->snap_len > 0 && m->type != RAFT_MSG_SNAP) return false;
    if (m->snap_len != buf_reader_left(r)) return false; /* short, or bytes left over */
    struct span data = buf_get_bytes(r, m->snap_len);
    /* A SNAP chunk is always "filled", even an empty one; other types carry no chunk. */
    m->snap_data = m->type == RAFT_MSG_SNAP ? data.ptr : NULL;
    ASSERT(buf_reader_left(r) == 0);
    return buf_reader_ok(r);
}

int raft_msg_decode(const u8 *buf, size_t len, struct raft_msg *m, struct raft_entry *entries,
                    u32 entries_cap)
{
    ASSERT(buf != NULL || len == 0);
    ASSERT(m != NULL);
    ASSERT(entries != NULL || entries_cap == 0);
    memset(m, 0, sizeof(*m));
    struct buf_reader r;
    buf_reader_init(&r, buf, len);
    i64 count = msg_decode_header(&r, m);
    if (count < 0) goto corrupt;
    if ((u64)count > entries_cap) {
        memset(m, 0, sizeof(*m));
        return RAFT_ENOMEM;
    }
    m->entry_count = (u32)count;
    m->entries = count > 0 ? entries : NULL;
    for (u32 i = 0; i < m->entry_count; i++)
        if (!msg_decode_entry(&r, m, i, &entries[i])) goto corrupt;
    if (!msg_decode_snap(&r, m)) goto corrupt;
    ASSERT(r.pos == len);
    ASSERT(raft_msg_encoded_size(m) == len); /* paired with raft_msg_encode */
    return RAFT_OK;
corrupt:
    memset(m, 0, sizeof(*m));
    return RAFT_ECORRUPT;
}
