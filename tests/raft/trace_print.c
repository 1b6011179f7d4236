/*
 * trace_print.c — the text forms of entries, messages, readies and status in golden traces.
 * A field that is zero (or false) is left out of a message line; entries read term/index.
 */
#include "trace.h"

#include <stdio.h>
#include <string.h>

typedef unsigned long long ull;

void print_data(struct trace_out *o, const u8 *data, u32 len)
{
    out_printf(o, "\"");
    for (u32 i = 0; i < len; i++) {
        u8 ch = data[i];
        if (ch == '"' || ch == '\\')
            out_printf(o, "\\%c", ch);
        else if (ch >= 0x20 && ch < 0x7f)
            out_printf(o, "%c", ch);
        else
            out_printf(o, "\\x%02x", ch);
    }
    out_printf(o, "\"");
}

static const char *cc_type_str(u8 type)
{
    switch (type) {
    case RAFT_CC_ADD_VOTER:
        return "add-voter";
    case RAFT_CC_ADD_LEARNER:
        return "add-learner";
    case RAFT_CC_PROMOTE:
        return "promote";
    case RAFT_CC_REMOVE:
        return "remove";
    default:
        return "unknown";
    }
}

void print_entry(struct trace_out *o, const struct raft_entry *e)
{
    out_printf(o, "%llu/%llu", (ull)e->term, (ull)e->index);
    if (e->type == RAFT_ENTRY_NORMAL) {
        if (e->len == 0) {
            out_printf(o, " (empty)");
            return;
        }
        out_printf(o, " ");
        print_data(o, e->data, e->len);
        return;
    }
    if (e->type != RAFT_ENTRY_CONF) {
        out_printf(o, " type=%u len=%u", e->type, e->len);
        return;
    }
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK) {
        out_printf(o, " conf (does not decode)");
        return;
    }
    out_printf(o, " conf %s %llu", cc_type_str(cc.type), (ull)cc.id);
    if (cc.context_len) {
        out_printf(o, " context=");
        print_data(o, cc.context, cc.context_len);
    }
}

void print_conf(struct trace_out *o, const struct raft_conf *c)
{
    for (u8 role = RAFT_VOTER; role <= RAFT_LEARNER; role++) {
        u32 n = 0;
        for (u32 i = 0; i < c->count; i++) {
            if (c->members[i].role != role) continue;
            if (n++ == 0)
                out_printf(o, "%s%s=(", role == RAFT_LEARNER ? " " : "",
                           role == RAFT_VOTER ? "voters" : "learners");
            else
                out_printf(o, ",");
            out_printf(o, "%llu", (ull)c->members[i].id);
        }
        if (n)
            out_printf(o, ")");
        else if (role == RAFT_VOTER)
            out_printf(o, "voters=()");
    }
}

static void print_u64_field(struct trace_out *o, const char *name, u64 v)
{
    if (v) out_printf(o, " %s=%llu", name, (ull)v);
}

static void print_msg_snap(struct trace_out *o, const struct raft_msg *m)
{
    out_printf(o, " snap=%llu/%llu ", (ull)m->snap.term, (ull)m->snap.index);
    print_conf(o, &m->snap.conf);
    out_printf(o, " offset=%llu", (ull)m->snap_offset);
    if (m->type == RAFT_MSG_SNAP) {
        out_printf(o, " len=%u%s", m->snap_len, m->snap_last ? " last" : "");
        if (m->snap_data) {
            out_printf(o, " data=");
            print_data(o, m->snap_data, m->snap_len);
        }
    } else if (m->snap_len || m->snap_last) {
        out_printf(o, " len=%u%s", m->snap_len, m->snap_last ? " last" : "");
    }
}

void print_msg(struct trace_out *o, const struct raft_msg *m)
{
    out_printf(o, "%llu->%llu %s term=%llu", (ull)m->from, (ull)m->to, raft_msg_type_str(m->type),
               (ull)m->term);
    print_u64_field(o, "logterm", m->log_term);
    print_u64_field(o, "index", m->index);
    print_u64_field(o, "commit", m->commit);
    print_u64_field(o, "context", m->context);
    if (m->reject) out_printf(o, " reject");
    print_u64_field(o, "hint", m->reject_hint);
    if (m->transfer) out_printf(o, " transfer");
    if (m->type == RAFT_MSG_APP || m->entry_count) {
        out_printf(o, " entries=[");
        for (u32 i = 0; i < m->entry_count; i++) {
            if (i) out_printf(o, ", ");
            print_entry(o, &m->entries[i]);
        }
        out_printf(o, "]");
    }
    bool snap_fields = m->snap.index || m->snap.term || m->snap.conf.count || m->snap_offset ||
                       m->snap_len || m->snap_last;
    if (m->type == RAFT_MSG_SNAP || m->type == RAFT_MSG_SNAP_RESP || snap_fields)
        print_msg_snap(o, m);
}

static void print_entries(struct trace_out *o, const char *title, const struct raft_entry *e,
                          u32 count, const char *indent)
{
    if (!count) return;
    out_printf(o, "%s%s:\n", indent, title);
    for (u32 i = 0; i < count; i++) {
        out_printf(o, "%s  ", indent);
        print_entry(o, &e[i]);
        out_printf(o, "\n");
    }
}

static void print_msgs(struct trace_out *o, const char *title, const struct raft_msg *m, u32 count,
                       const char *indent)
{
    if (!count) return;
    out_printf(o, "%s%s:\n", indent, title);
    for (u32 i = 0; i < count; i++) {
        out_printf(o, "%s  ", indent);
        print_msg(o, &m[i]);
        out_printf(o, "\n");
    }
}

static void print_snap_meta(struct trace_out *o, const struct raft_snapshot_meta *s)
{
    out_printf(o, "%llu/%llu ", (ull)s->term, (ull)s->index);
    print_conf(o, &s->conf);
}

void print_ready(struct trace_out *o, const struct raft_ready *rd, const char *indent)
{
    if (rd->hard_state_changed)
        out_printf(o, "%sHardState term=%llu vote=%llu commit=%llu\n", indent,
                   (ull)rd->hard_state.term, (ull)rd->hard_state.vote, (ull)rd->hard_state.commit);
    if (rd->truncate_from) out_printf(o, "%sTruncateFrom %llu\n", indent, (ull)rd->truncate_from);
    if (rd->snapshot_install) {
        out_printf(o, "%sSnapshotInstall ", indent);
        print_snap_meta(o, rd->snapshot_install);
        out_printf(o, "\n");
    }
    print_entries(o, "Entries", rd->entries, rd->entry_count, indent);
    if (rd->snap_chunk) {
        const struct raft_snap_chunk *c = rd->snap_chunk;
        out_printf(o, "%sSnapChunk ", indent);
        print_snap_meta(o, &c->meta);
        out_printf(o, " offset=%llu len=%u%s data=", (ull)c->offset, c->len,
                   c->last ? " last" : "");
        print_data(o, c->data, c->len);
        out_printf(o, "\n");
    }
    print_msgs(o, "Messages", rd->msgs, rd->msg_count, indent);
    print_msgs(o, "MessagesAfterPersist", rd->msgs_after_persist, rd->msg_after_persist_count,
               indent);
    print_entries(o, "Committed", rd->committed, rd->committed_count, indent);
    for (u32 i = 0; i < rd->read_count; i++)
        out_printf(o, "%sRead context=%llu index=%llu\n", indent, (ull)rd->reads[i].context,
                   (ull)rd->reads[i].index);
    for (u32 i = 0; i < rd->read_failed_count; i++)
        out_printf(o, "%sReadFailed context=%llu\n", indent, (ull)rd->reads_failed[i]);
}

void print_summary(struct trace_out *o, const struct raft *r)
{
    out_printf(o, "%s term=%llu leader=%llu", raft_role_str(raft_role(r)), (ull)raft_term(r),
               (ull)raft_leader(r));
}

static const char *progress_str(u8 state)
{
    switch (state) {
    case RAFT_PROGRESS_PROBE:
        return "probe";
    case RAFT_PROGRESS_REPLICATE:
        return "replicate";
    case RAFT_PROGRESS_SNAPSHOT:
        return "snapshot";
    default:
        return "unknown";
    }
}

void print_status(struct trace_out *o, const struct raft *r)
{
    struct raft_status st;
    raft_status(r, &st);
    out_printf(o, "%llu: %s term=%llu vote=%llu leader=%llu\n", (ull)st.id,
               raft_role_str((enum raft_role)st.role), (ull)st.term, (ull)st.vote, (ull)st.leader);
    out_printf(o, "  commit=%llu applied=%llu persisted=%llu log=[%llu,%llu] snapshot=%llu",
               (ull)st.commit, (ull)st.applied, (ull)st.persisted, (ull)st.first_index,
               (ull)st.last_index, (ull)st.snapshot_index);
    if (st.transfer_target) out_printf(o, " transfer=%llu", (ull)st.transfer_target);
    if (st.snapshot_wanted) out_printf(o, " snapshot_wanted");
    out_printf(o, "\n  ");
    print_conf(o, &st.conf);
    out_printf(o, "\n");
    for (u32 i = 0; i < st.progress_count; i++) {
        const struct raft_progress_status *p = &st.progress[i];
        out_printf(o, "  %llu %s %s match=%llu next=%llu%s\n", (ull)p->id,
                   p->role == RAFT_VOTER ? "voter" : "learner", progress_str(p->state),
                   (ull)p->match, (ull)p->next, p->recent_active ? " active" : "");
    }
}
