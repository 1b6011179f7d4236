/*
 * loop_uring.c — net/loop.h on io_uring (liburing 2.3 or later).
 *
 * Divisions: set-up (fallback chain, probe, describe), the turn, operations,
 * doorbell, set-up helpers. The contract is in loop.h.
 */
#include "net/loop.h"

#include "core/assert.h"

#include <liburing.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

static_assert(LOOP_CQE_F_BUFFER == IORING_CQE_F_BUFFER, "CQE flag mirrors the kernel's");
static_assert(LOOP_CQE_F_MORE == IORING_CQE_F_MORE, "CQE flag mirrors the kernel's");
static_assert(LOOP_CQE_F_SOCK_NONEMPTY == IORING_CQE_F_SOCK_NONEMPTY, "CQE flag mirrors");
static_assert(LOOP_CQE_BUFFER_SHIFT == IORING_CQE_BUFFER_SHIFT, "buffer id shift mirrors");
static_assert(sizeof(struct loop_timespec) == sizeof(struct __kernel_timespec), "timespec");
static_assert(offsetof(struct loop_timespec, tv_nsec) ==
                  offsetof(struct __kernel_timespec, tv_nsec),
              "timespec layout");

#define LOOP_CQ_FACTOR     4u
#define LOOP_DESCRIBE_SIZE 128

struct loop {
    struct io_uring ring;
    pthread_t owner;
    enum loop_mode mode;
    u32 setup_flags; /* the IORING_SETUP_* the ring was created with */
    bool msg_ring;
    bool in_turn;
    int eventfd;
    u64 eventfd_value;                    /* the eventfd read's target */
    struct loop_completion eventfd_c;     /* the loop's own completion for that read */
    struct loop_completion *eventfd_user; /* the armer's completion; NULL when not armed */
    struct loop_completion *doorbell;
    u32 overflow_seen;
    u32 inflight;                  /* ops prepared here whose final CQE has not arrived */
    struct io_uring_sqe *sqe_last; /* prepared since the last submission, or NULL */
    bool link_open;                /* sqe_last carries IOSQE_IO_LINK: a chain awaits its next op */
    struct loop_stats stats;
    char describe[LOOP_DESCRIBE_SIZE];
};

static bool loop_is_owner(const struct loop *l)
{
    return pthread_equal(pthread_self(), l->owner) != 0;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

struct loop_tier {
    enum loop_mode mode;
    u32 setup_flags;
};

/* The fallback chain, best first. SUBMIT_ALL (5.18) keeps a batch going past one bad SQE;
 * every kernel that has COOP_TASKRUN (5.19) has it. */
static const struct loop_tier loop_tiers[] = {
    {LOOP_MODE_DEFER_TASKRUN,
     IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL},
    {LOOP_MODE_COOP_TASKRUN,
     IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL},
    {LOOP_MODE_COOP_TASKRUN, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL},
    {LOOP_MODE_PLAIN, 0},
};

static bool loop_tier_allowed(const struct loop_tier *t, u32 config_flags)
{
    if (t->mode == LOOP_MODE_DEFER_TASKRUN) return !(config_flags & LOOP_CONFIG_NO_DEFER_TASKRUN);
    if (t->mode == LOOP_MODE_COOP_TASKRUN) return !(config_flags & LOOP_CONFIG_NO_COOP_TASKRUN);
    return true;
}

/* Walks the chain; an -EINVAL means "this kernel lacks a flag", anything else is fatal. */
static int loop_ring_init(struct loop *l, const struct loop_config *config)
{
    ASSERT(config->sq_entries >= 1 && config->sq_entries <= LOOP_SQ_ENTRIES_MAX);
    int rc = -EINVAL;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(loop_tiers); i++) { /* 4 tiers */
        const struct loop_tier *t = &loop_tiers[i];
        if (!loop_tier_allowed(t, config->flags)) continue;
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = t->setup_flags | IORING_SETUP_CQSIZE;
        p.cq_entries = config->sq_entries * LOOP_CQ_FACTOR;
        rc = io_uring_queue_init_params(config->sq_entries, &l->ring, &p);
        if (rc == -EINVAL) continue;
        if (rc < 0) return rc;
        if (!(p.features & IORING_FEAT_NODROP)) {
            io_uring_queue_exit(&l->ring);
            return -ENOSYS; /* kernels before 5.5: CQEs could be lost */
        }
        l->mode = t->mode;
        l->setup_flags = t->setup_flags;
        return 0;
    }
    return rc;
}

static bool loop_probe_msg_ring(struct loop *l)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&l->ring);
    if (p == NULL) return false;
    bool ok = io_uring_opcode_supported(p, IORING_OP_MSG_RING) != 0;
    io_uring_free_probe(p);
    return ok;
}

static const char *loop_mode_name(const struct loop *l)
{
    if (l->mode == LOOP_MODE_DEFER_TASKRUN) return "single_issuer+defer_taskrun";
    if (l->mode == LOOP_MODE_PLAIN) return "plain (no task-running flags)";
    if (l->setup_flags & IORING_SETUP_SINGLE_ISSUER) return "single_issuer+coop_taskrun";
    return "coop_taskrun";
}

static void loop_describe_init(struct loop *l, u32 config_flags)
{
    const char *forced =
        (config_flags & (LOOP_CONFIG_NO_DEFER_TASKRUN | LOOP_CONFIG_NO_COOP_TASKRUN))
            ? " (fallback forced by config)"
            : (l->mode != LOOP_MODE_DEFER_TASKRUN ? " (kernel fallback)" : "");
    const char *bell = l->msg_ring ? "msg_ring doorbell" : "eventfd doorbell (no msg_ring)";
    int n =
        snprintf(l->describe, sizeof(l->describe), "io_uring %s%s, %s, sq %u, cq %u",
                 loop_mode_name(l), forced, bell, l->ring.sq.ring_entries, l->ring.cq.ring_entries);
    ASSERT(n > 0 && (size_t)n < sizeof(l->describe));
}

static void loop_eventfd_done(struct loop_completion *c, int res, u32 flags);

int loop_create(const struct loop_config *config, struct loop **out)
{
    ASSERT(config != NULL && out != NULL);
    ASSERT((config->sq_entries & (config->sq_entries - 1)) == 0);
    struct loop *l = calloc(1, sizeof(*l)); /* start-up allocation, freed by loop_destroy */
    if (l == NULL) return -ENOMEM;
    l->owner = pthread_self();
    int rc = loop_ring_init(l, config);
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->eventfd = eventfd(0, EFD_CLOEXEC); /* blocking: io_uring polls it, never -EAGAIN */
    if (l->eventfd < 0) {
        rc = -errno;
        io_uring_queue_exit(&l->ring);
        free(l);
        return rc;
    }
    l->msg_ring = !(config->flags & LOOP_CONFIG_NO_MSG_RING) && loop_probe_msg_ring(l);
    l->eventfd_c.done = loop_eventfd_done;
    loop_describe_init(l, config->flags);
    *out = l;
    ASSERT(l->ring.cq.ring_entries >= LOOP_CQ_FACTOR * l->ring.sq.ring_entries);
    return 0;
}

static void loop_swallow(struct loop_completion *c, int res, u32 flags)
{
    (void)c;
    (void)res;
    (void)flags;
}

/* Cancels every op in flight and reaps CQEs, without calling done(), until the last final
 * CQE has arrived, so that the kernel writes into no caller memory after loop_destroy().
 * Bounded: at most LOOP_DRAIN_ROUNDS waits of LOOP_DRAIN_WAIT_MS each. */
#define LOOP_DRAIN_ROUNDS  100
#define LOOP_DRAIN_WAIT_MS 10
static void loop_drain(struct loop *l)
{
    static struct loop_completion cancel_c = {.done = loop_swallow};
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (sqe == NULL) {
        (void)io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    if (sqe != NULL) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data(sqe, &cancel_c);
    }
    for (int round = 0; l->inflight > 0 && round < LOOP_DRAIN_ROUNDS; round++) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = LOOP_DRAIN_WAIT_MS * 1000000};
        struct io_uring_cqe *cqe = NULL;
        (void)io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
        unsigned head;
        unsigned n = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            void *c = io_uring_cqe_get_data(cqe);
            bool final = !(cqe->flags & IORING_CQE_F_MORE);
            if (final && c != &cancel_c && c != l->doorbell && l->inflight > 0) l->inflight--;
            n++;
        }
        io_uring_cq_advance(&l->ring, n);
    }
}

void loop_destroy(struct loop *l)
{
    ASSERT(l != NULL);
    ASSERT(loop_is_owner(l));
    ASSERT(!l->in_turn);
    if (l->inflight > 0) loop_drain(l);
    close(l->eventfd);
    io_uring_queue_exit(&l->ring);
    free(l);
}

enum loop_mode loop_mode(const struct loop *l)
{
    return l->mode;
}

const char *loop_describe(const struct loop *l)
{
    return l->describe;
}

bool loop_has_msg_ring(const struct loop *l)
{
    return l->msg_ring;
}

struct loop_stats loop_stats(const struct loop *l)
{
    return l->stats;
}

u32 loop_inflight(const struct loop *l)
{
    return l->inflight;
}

/* ---- the turn -------------------------------------------------------------------------------- */

static int loop_submit_wait(struct loop *l, int wait_ms)
{
    if (wait_ms == 0) return io_uring_submit_and_get_events(&l->ring);
    if (wait_ms < 0) return io_uring_submit_and_wait(&l->ring, 1);
    struct __kernel_timespec ts = {.tv_sec = wait_ms / 1000,
                                   .tv_nsec = (long long)(wait_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe = NULL;
    return io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
}

static void loop_note_overflow(struct loop *l)
{
    u32 overflow = IO_URING_READ_ONCE(*l->ring.cq.koverflow);
    bool flagged = (IO_URING_READ_ONCE(*l->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0;
    if (overflow != l->overflow_seen || flagged) l->stats.cq_overflows++;
    l->overflow_seen = overflow;
}

int loop_run_turn(struct loop *l, int wait_ms)
{
    ASSERT(loop_is_owner(l));
    ASSERT(!l->in_turn);
    ASSERT(!l->link_open); /* a chain is submitted whole */
    l->sqe_last = NULL;
    int rc = loop_submit_wait(l, wait_ms);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) return rc;
    l->in_turn = true;
    l->stats.turns++;
    /* Bounded by the CQ's size: the head moves only at the end, so at most ring_entries
     * CQEs can be visible; overflowed ones wait for the next turn. */
    unsigned head;
    unsigned n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&l->ring, head, cqe)
    {
        struct loop_completion *c = io_uring_cqe_get_data(cqe);
        ASSERT(c != NULL);
        ASSERT(c->done != NULL);
        if (!(cqe->flags & IORING_CQE_F_MORE) && c != l->doorbell) {
            ASSERT(l->inflight > 0);
            l->inflight--;
        }
        c->done(c, cqe->res, cqe->flags);
        n++;
    }
    ASSERT(n <= l->ring.cq.ring_entries);
    io_uring_cq_advance(&l->ring, n);
    l->stats.cqes += n;
    loop_note_overflow(l);
    l->in_turn = false;
    return (int)n;
}

/* ---- operations ------------------------------------------------------------------------------ */

/* An SQE for c, submitting the queued ones first when the SQ is full. */
static struct io_uring_sqe *loop_sqe(struct loop *l, struct loop_completion *c)
{
    ASSERT(loop_is_owner(l));
    ASSERT(c != NULL && c->done != NULL);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (sqe == NULL) {
        ASSERT(!l->link_open); /* an early submit would split the chain: loop_reserve first */
        l->stats.sq_full_submits++;
        (void)io_uring_submit(&l->ring); /* errors resurface in the next turn */
        sqe = io_uring_get_sqe(&l->ring);
        if (sqe == NULL) return NULL;
    }
    io_uring_sqe_set_data(sqe, c);
    l->inflight++;
    l->sqe_last = sqe;
    l->link_open = false; /* this op joins the chain, if one was open */
    return sqe;
}

void loop_link_next(struct loop *l)
{
    ASSERT(loop_is_owner(l));
    ASSERT(l->sqe_last != NULL); /* an op prepared since the last submission */
    l->sqe_last->flags |= IOSQE_IO_LINK;
    l->link_open = true;
}

int loop_reserve(struct loop *l, u32 count)
{
    ASSERT(loop_is_owner(l));
    ASSERT(!l->link_open);
    if (count > l->ring.sq.ring_entries) return -EBUSY;
    if (io_uring_sq_space_left(&l->ring) >= count) return 0;
    l->stats.sq_full_submits++;
    (void)io_uring_submit(&l->ring); /* errors resurface in the next turn */
    l->sqe_last = NULL;
    return io_uring_sq_space_left(&l->ring) >= count ? 0 : -EBUSY;
}

int loop_accept_multishot(struct loop *l, struct loop_completion *c, int listen_fd)
{
    ASSERT(listen_fd >= 0);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, c); /* prep clears user_data */
    return 0;
}

int loop_recv_multishot(struct loop *l, struct loop_completion *c, int fd, u16 group_id)
{
    ASSERT(fd >= 0);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group_id;
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

int loop_send(struct loop *l, struct loop_completion *c, int fd, const void *buf, u32 len)
{
    ASSERT(fd >= 0);
    ASSERT(buf != NULL && len > 0);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

int loop_recv(struct loop *l, struct loop_completion *c, int fd, void *buf, u32 len)
{
    ASSERT(fd >= 0);
    ASSERT(buf != NULL && len > 0);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_recv(sqe, fd, buf, len, 0);
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

int loop_connect(struct loop *l, struct loop_completion *c, int fd, const void *sockaddr,
                 u32 sockaddr_len)
{
    ASSERT(fd >= 0);
    ASSERT(sockaddr != NULL && sockaddr_len >= sizeof(struct sockaddr_in));
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)sockaddr, (socklen_t)sockaddr_len);
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

int loop_write(struct loop *l, struct loop_completion *c, int fd, const void *buf, u32 len,
               u64 offset_bytes)
{
    ASSERT(fd >= 0);
    ASSERT(buf != NULL && len > 0);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_write(sqe, fd, buf, len, offset_bytes);
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

int loop_fsync(struct loop *l, struct loop_completion *c, int fd, u32 fsync_flags)
{
    ASSERT(fd >= 0);
    ASSERT((fsync_flags & ~LOOP_FSYNC_DATASYNC) == 0);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    u32 flags = (fsync_flags & LOOP_FSYNC_DATASYNC) ? IORING_FSYNC_DATASYNC : 0;
    io_uring_prep_fsync(sqe, fd, flags);
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

int loop_timeout(struct loop *l, struct loop_completion *c, u32 timeout_ms)
{
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    c->ts.tv_sec = timeout_ms / 1000;
    c->ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&c->ts, 0, 0);
    io_uring_sqe_set_data(sqe, c);
    ASSERT(c->ts.tv_nsec < 1000000000);
    return 0;
}

int loop_cancel(struct loop *l, struct loop_completion *c, struct loop_completion *target)
{
    ASSERT(target != NULL && target != c);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_cancel64(sqe, (u64)(uintptr_t)target, 0);
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

/* ---- doorbell -------------------------------------------------------------------------------- */

void loop_doorbell_set(struct loop *l, struct loop_completion *doorbell)
{
    ASSERT(loop_is_owner(l));
    ASSERT(doorbell != NULL && doorbell->done != NULL);
    l->doorbell = doorbell;
}

int loop_msg_ring(struct loop *l, struct loop_completion *c, const struct loop *target, u32 value)
{
    ASSERT(l->msg_ring);
    ASSERT(target != NULL && target != l);
    ASSERT(target->doorbell != NULL);
    ASSERT(value <= (u32)INT32_MAX);
    struct io_uring_sqe *sqe = loop_sqe(l, c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_msg_ring(sqe, target->ring.ring_fd, value, (u64)(uintptr_t)target->doorbell, 0);
    io_uring_sqe_set_data(sqe, c);
    return 0;
}

static void loop_eventfd_done(struct loop_completion *c, int res, u32 flags)
{
    struct loop *l = (struct loop *)((char *)c - offsetof(struct loop, eventfd_c));
    ASSERT(c == &l->eventfd_c);
    ASSERT(l->eventfd_user != NULL);
    struct loop_completion *user = l->eventfd_user;
    l->eventfd_user = NULL;
    if (res == (int)sizeof(l->eventfd_value)) {
        res = (int)KEEL_MIN(l->eventfd_value, (u64)INT32_MAX);
    } else if (res >= 0) {
        res = -EIO; /* an eventfd read is all 8 bytes or nothing */
    }
    user->done(user, res, flags);
}

int loop_eventfd_arm(struct loop *l, struct loop_completion *c)
{
    ASSERT(c != NULL && c->done != NULL);
    ASSERT(l->eventfd_user == NULL); /* one arm at a time */
    struct io_uring_sqe *sqe = loop_sqe(l, &l->eventfd_c);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_read(sqe, l->eventfd, &l->eventfd_value, sizeof(l->eventfd_value), 0);
    io_uring_sqe_set_data(sqe, &l->eventfd_c);
    l->eventfd_user = c;
    return 0;
}

int loop_eventfd_signal(const struct loop *target, u32 value)
{
    ASSERT(target != NULL);
    ASSERT(value >= 1 && value <= (u32)INT32_MAX);
    if (eventfd_write(target->eventfd, value) < 0) return -errno;
    return 0;
}

/* ---- set-up helpers -------------------------------------------------------------------------- */

int loop_listen_tcp(u32 ipv4, u16 port, int backlog, u16 *port_bound)
{
    ASSERT(backlog > 0);
    ASSERT(port_bound != NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(ipv4);
    socklen_t len = sizeof(a);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *port_bound = ntohs(a.sin_port);
    ASSERT(port == 0 || *port_bound == port);
    return fd;
}

int loop_buf_ring_register(struct loop *l, void *ring_addr, u32 entries, u16 group_id)
{
    ASSERT(loop_is_owner(l));
    ASSERT(ring_addr != NULL && entries > 0 && (entries & (entries - 1)) == 0);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (u64)(uintptr_t)ring_addr;
    reg.ring_entries = entries;
    reg.bgid = group_id;
    return io_uring_register_buf_ring(&l->ring, &reg, 0);
}

int loop_buf_ring_unregister(struct loop *l, u16 group_id)
{
    ASSERT(loop_is_owner(l));
    return io_uring_unregister_buf_ring(&l->ring, group_id);
}
