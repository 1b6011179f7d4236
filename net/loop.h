/*
 * loop.h — the per-shard event loop: one io_uring ring, completions by pointer.
 *
 * Every shard thread runs exactly one loop. The loop submits operations that
 * callers prepare with the loop_* functions below and, once per turn, hands
 * each completion to the caller's struct loop_completion.
 *
 * Contract:
 *  - Threads: one loop per thread. The thread that creates a loop is its owner
 *    and the only thread that may call any function on it (ASSERTed), with two
 *    exceptions that any thread may call: loop_eventfd_signal() on a target
 *    loop, and the target argument of loop_msg_ring() (only its ring fd and
 *    doorbell are read, both fixed before other threads learn of the loop).
 *    The ring is created on the owner thread because IORING_SETUP_SINGLE_ISSUER
 *    binds it to the creating task.
 *  - Memory: loop_create() allocates everything the loop needs (the ring,
 *    the SQ and a CQ of 4 x SQ entries); nothing is allocated per operation.
 *  - Completions: the caller owns every struct loop_completion. Its address is
 *    the SQE's user_data; it must stay alive and unmoved until its last CQE
 *    has been delivered: for one-shot ops that is the one CQE; for multishot
 *    ops (accept, recv) it is the first CQE without LOOP_CQE_F_MORE. done()
 *    runs on the owner thread, inside loop_run_turn(), and may prepare new
 *    operations (including re-arming the same completion) but must not call
 *    loop_run_turn() or loop_destroy().
 *  - Errors route per operation: res < 0 is -errno for that op only. The op
 *    preparation functions return 0, or -EBUSY when the ring cannot take an SQE
 *    even after submitting what is queued (the caller retries next turn).
 *  - SQ full: preparing an op when the SQ is full submits the queued SQEs at
 *    once (io_uring_submit) and takes the freed slot; counted in stats.
 *  - CQ overflow: the CQ has 4 x SQ entries (IORING_SETUP_CQSIZE) so that
 *    multishot ops rarely overflow it. If it still overflows, the kernel keeps
 *    the extra CQEs (IORING_FEAT_NODROP, required) and delivers them on a later
 *    turn; the loop counts the event in stats. A multishot op that overflowed
 *    may be ended by the kernel: it then delivers a CQE without F_MORE.
 *  - Multishot re-arm: a multishot op is live while its CQEs carry
 *    LOOP_CQE_F_MORE. A CQE without it is the op's last: the owner decides
 *    whether to re-arm (recv after -ENOBUFS once buffers are recycled, accept
 *    after any error but -EBADF/-EINVAL) or not (recv res 0 is end of stream).
 *  - Sends: a send may write fewer bytes than asked (res < len). The caller
 *    keeps at most one send per socket in flight and re-issues the rest, so
 *    that bytes never reorder. Sends use MSG_NOSIGNAL.
 *  - Links: loop_link_next() makes the next op prepared start only after the
 *    last one prepared has completed (IOSQE_IO_LINK), and only if it
 *    succeeded: when a chain member fails (res < 0, or a read/write shorter
 *    than asked) every later member completes with res -ECANCELED. Every
 *    member still gets its own CQE. A chain must reach the kernel in one
 *    submission: reserve its SQEs with loop_reserve() first (so no early
 *    submit splits it), and end it (prepare the op after the last
 *    loop_link_next) before loop_run_turn(); both are ASSERTed.
 *  - Per turn, loop_run_turn() does: submit queued SQEs and wait (at most
 *    wait_ms) for one CQE; run done() for every CQE present (at most the CQ's
 *    size, since the head is not advanced until the end); one cq_advance.
 *
 * Modes (fallback chain, recorded and described by loop_describe()):
 *    LOOP_MODE_DEFER_TASKRUN  SINGLE_ISSUER | DEFER_TASKRUN (kernel >= 6.1)
 *    LOOP_MODE_COOP_TASKRUN   COOP_TASKRUN (kernel >= 5.19), with SINGLE_ISSUER if allowed
 *    LOOP_MODE_PLAIN          no task-running flags
 *  The doorbell between loops is IORING_OP_MSG_RING when the kernel has it
 *  (probed: loop_has_msg_ring()), else an eventfd read armed on the target.
 */
#ifndef KEEL_NET_LOOP_H
#define KEEL_NET_LOOP_H

#include "core/types.h"

struct loop;

/* CQE flags passed to done(); equal to the kernel's IORING_CQE_F_* (static_assert in
 * loop_uring.c). */
#define LOOP_CQE_F_BUFFER        (1u << 0) /* a provided buffer was used; id in bits 16..31 */
#define LOOP_CQE_F_MORE          (1u << 1) /* the multishot op stays armed */
#define LOOP_CQE_F_SOCK_NONEMPTY (1u << 2)
#define LOOP_CQE_BUFFER_SHIFT    16

static inline u16 loop_cqe_buffer_id(u32 flags)
{
    return (u16)(flags >> LOOP_CQE_BUFFER_SHIFT);
}

/* Op scratch the loop needs to live until submission (a timeout's timespec). */
struct loop_timespec {
    i64 tv_sec;
    long long tv_nsec;
};

struct loop_completion {
    void (*done)(struct loop_completion *c, int res, u32 flags);
    struct loop_timespec ts; /* owned by the loop while a timeout is queued */
};

enum loop_mode {
    LOOP_MODE_DEFER_TASKRUN = 1,
    LOOP_MODE_COOP_TASKRUN = 2,
    LOOP_MODE_PLAIN = 3,
};

/* loop_config.flags: force fallbacks (tests, and operators on odd kernels). */
#define LOOP_CONFIG_NO_DEFER_TASKRUN (1u << 0) /* start the chain at COOP_TASKRUN */
#define LOOP_CONFIG_NO_COOP_TASKRUN  (1u << 1) /* with the above: go straight to PLAIN */
#define LOOP_CONFIG_NO_MSG_RING      (1u << 2) /* behave as if the kernel lacked MSG_RING */

#define LOOP_SQ_ENTRIES_MAX 4096u

struct loop_config {
    u32 sq_entries; /* power of two, 1..LOOP_SQ_ENTRIES_MAX; CQ gets 4 x this */
    u32 flags;      /* LOOP_CONFIG_* */
};

struct loop_stats {
    u64 turns;
    u64 cqes;
    u64 sq_full_submits; /* times a prep found the SQ full and submitted early */
    u64 cq_overflows;    /* turns that saw the kernel's overflow counter move */
};

/* ---- life ----------------------------------------------------------------------------------- */

/* Creates a loop owned by the calling thread: the ring (fallback chain above), the probe
 * and an eventfd for the fallback doorbell. Returns 0 and *out, or -errno (nothing left). */
int loop_create(const struct loop_config *config, struct loop **out);
/* Cancels the ops in flight and reaps their CQEs without calling done() (bounded: about one
 * second at most), so the kernel writes into no caller memory afterwards; then closes the
 * ring and eventfd. Owner thread; not inside loop_run_turn(). */
void loop_destroy(struct loop *l);

enum loop_mode loop_mode(const struct loop *l);
/* "io_uring single_issuer+defer_taskrun, msg_ring, sq 256, cq 1024" and the like; lives as
 * long as the loop. For the server's start-up log. */
const char *loop_describe(const struct loop *l);
bool loop_has_msg_ring(const struct loop *l); /* false when probed absent or disabled */
struct loop_stats loop_stats(const struct loop *l);
/* Ops prepared on this loop whose final CQE (one without F_MORE) has not been delivered. */
u32 loop_inflight(const struct loop *l);

/* ---- the turn ------------------------------------------------------------------------------- */

/* Submits, waits up to wait_ms for a completion (0: no wait, < 0: until one arrives),
 * delivers every completion present, advances the CQ once. Returns the number delivered,
 * or -errno if the ring failed (not for a timeout or a signal). */
int loop_run_turn(struct loop *l, int wait_ms);

/* ---- operations (each returns 0 or -EBUSY; see the contract) ------------------------------ */

/* Multishot accept on listen_fd; each CQE's res is a new socket fd (the owner closes it). */
int loop_accept_multishot(struct loop *l, struct loop_completion *c, int listen_fd);
/* Multishot recv on fd into buffers of group group_id (net/bufring.h). res > 0: bytes, in
 * buffer loop_cqe_buffer_id(flags); 0: end of stream; -ENOBUFS: the group ran dry. */
int loop_recv_multishot(struct loop *l, struct loop_completion *c, int fd, u16 group_id);
/* One send of len bytes; res is the bytes sent (may be short) or -errno. buf stays alive. */
int loop_send(struct loop *l, struct loop_completion *c, int fd, const void *buf, u32 len);
/* One recv of at most len bytes into buf; res is the bytes received, 0 at end of stream, or
 * -errno. buf stays alive until the CQE. */
int loop_recv(struct loop *l, struct loop_completion *c, int fd, void *buf, u32 len);
/* Connects socket fd to sockaddr (a struct sockaddr_in or _in6 of sockaddr_len bytes); res 0
 * or -errno (-ECONNREFUSED, -ETIMEDOUT, -ECANCELED, ...). sockaddr stays alive and unchanged
 * until the CQE (a kernel may read it only when the op goes async). */
int loop_connect(struct loop *l, struct loop_completion *c, int fd, const void *sockaddr,
                 u32 sockaddr_len);
/* One write of len bytes at offset_bytes of fd; res bytes written or -errno. */
int loop_write(struct loop *l, struct loop_completion *c, int fd, const void *buf, u32 len,
               u64 offset_bytes);
#define LOOP_FSYNC_DATASYNC (1u << 0) /* fdatasync instead of fsync */
int loop_fsync(struct loop *l, struct loop_completion *c, int fd, u32 fsync_flags);
/* Links the op prepared last to the next op prepared (see "Links" above), e.g. a WAL
 * write and its fdatasync:
 *     loop_reserve(l, 2); loop_write(l, &w, ...); loop_link_next(l); loop_fsync(l, &f, ...);
 * Requires an op prepared since the last submission. */
void loop_link_next(struct loop *l);
/* Makes room for count SQEs (submitting the queued ones early if the SQ lacks it), so the
 * next count preps cannot fail or split a chain. 0, or -EBUSY when the SQ cannot hold
 * count (count > SQ entries, or the submit failed). Not inside an open chain. */
int loop_reserve(struct loop *l, u32 count);
/* Completes after timeout_ms with res -ETIME (or earlier with -ECANCELED). */
int loop_timeout(struct loop *l, struct loop_completion *c, u32 timeout_ms);
/* Asks the kernel to cancel the op of target; c gets 0, -ENOENT or -EALREADY. */
int loop_cancel(struct loop *l, struct loop_completion *c, struct loop_completion *target);

/* ---- doorbell between loops ----------------------------------------------------------------- */

/* Sets the completion that receives MSG_RING values posted to this loop; owner thread,
 * before other threads may post. Its done() gets res = value, flags 0. */
void loop_doorbell_set(struct loop *l, struct loop_completion *doorbell);
/* Posts value (0..INT32_MAX) as a CQE to target's doorbell, through MSG_RING. c completes on
 * l with 0 or -errno. Requires loop_has_msg_ring(l); target may be any other loop. */
int loop_msg_ring(struct loop *l, struct loop_completion *c, const struct loop *target, u32 value);
/* The eventfd fallback. loop_eventfd_arm reads l's eventfd once: c gets res = the counter
 * (the sum of every value signalled since the last read, capped at INT32_MAX) or -errno.
 * One arm at a time; re-arm from done(). */
int loop_eventfd_arm(struct loop *l, struct loop_completion *c);
/* Adds value (1..INT32_MAX) to target's eventfd. Any thread. Returns 0 or -errno. */
int loop_eventfd_signal(const struct loop *target, u32 value);

/* ---- set-up helpers and the buffer ring's registration (net/bufring.c) --------------------- */

/* A TCP listening socket on 127.0.0.1-style IPv4 address ipv4 (host order) and port (0 for
 * any), SO_REUSEPORT and SO_REUSEADDR set, non-blocking off. Returns the fd or -errno, and
 * the bound port in *port_bound. */
int loop_listen_tcp(u32 ipv4, u16 port, int backlog, u16 *port_bound);
/* Registers a provided-buffer ring of entries slots at ring_addr (page aligned) as group_id;
 * 0 or -errno. Unregisters with loop_buf_ring_unregister. Owner thread. */
int loop_buf_ring_register(struct loop *l, void *ring_addr, u32 entries, u16 group_id);
int loop_buf_ring_unregister(struct loop *l, u16 group_id);

#endif
