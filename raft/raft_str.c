/* raft_str.c — names of raft's enums, for logs, test traces and error messages. */
#include "raft/raft.h"

#include "core/assert.h"

const char *raft_err_str(int err)
{
    switch (err) {
    case RAFT_OK:
        return "ok";
    case RAFT_ENOT_LEADER:
        return "not the leader";
    case RAFT_EBUSY:
        return "busy: too many uncommitted proposals or a leadership transfer";
    case RAFT_ECONF_PENDING:
        return "a membership change is pending";
    case RAFT_EINVALID:
        return "invalid argument";
    case RAFT_ENOMEM:
        return "out of memory";
    case RAFT_ECORRUPT:
        return "bytes do not decode";
    default:
        return "unknown raft error";
    }
}

const char *raft_role_str(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    }
    return "unknown";
}

const char *raft_msg_type_str(int type)
{
    static const char *const names[RAFT_MSG_TYPE_COUNT_] = {
        [RAFT_MSG_APP] = "APP",
        [RAFT_MSG_APP_RESP] = "APP_RESP",
        [RAFT_MSG_PREVOTE] = "PREVOTE",
        [RAFT_MSG_PREVOTE_RESP] = "PREVOTE_RESP",
        [RAFT_MSG_VOTE] = "VOTE",
        [RAFT_MSG_VOTE_RESP] = "VOTE_RESP",
        [RAFT_MSG_HEARTBEAT] = "HEARTBEAT",
        [RAFT_MSG_HEARTBEAT_RESP] = "HEARTBEAT_RESP",
        [RAFT_MSG_SNAP] = "SNAP",
        [RAFT_MSG_SNAP_RESP] = "SNAP_RESP",
        [RAFT_MSG_TIMEOUT_NOW] = "TIMEOUT_NOW",
        [RAFT_MSG_READ_INDEX] = "READ_INDEX",
        [RAFT_MSG_READ_INDEX_RESP] = "READ_INDEX_RESP",
    };
    static_assert(RAFT_MSG_READ_INDEX_RESP + 1 == RAFT_MSG_TYPE_COUNT_, "names cover every type");
    if (type <= 0 || type >= RAFT_MSG_TYPE_COUNT_) return "UNKNOWN";
    ASSERT(names[type] != NULL);
    return names[type];
}
