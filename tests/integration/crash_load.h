/*
 * crash_load.h — the write load that test_crash runs against keeld before killing it, the
 * record of what the server acknowledged, and the checker that compares a restarted server
 * with that record.
 *
 * The load (one round): LOAD_CONNS clients (shard-aware, or router port only), each in its own
 * thread with up to LOAD_DEPTH requests in flight. Client k's request number seq (its "op") is:
 *  - a put of "<P>r<round>/c<k>/s<seq>" when seq % LOAD_TXN_EVERY != LOAD_TXN_EVERY - 1,
 *  - else a txn (no compares) putting the three keys "<P>r<round>/c<k>/s<seq>/{a,b,c}",
 * where <P> is LOAD_PREFIX0 (shard 0) or LOAD_PREFIX1 (shard 1), alternating with k + seq,
 * and every value is derived from its key (load_value), so a key alone tells what it must hold.
 * Client 0 also keeps one put of the counter key LOAD_COUNTER_KEY in flight at a time, with
 * values 1, 2, 3 ... across rounds: one in flight at a time, so the order of the acks is the
 * order of execution and "value >= last acknowledged" is a fair check.
 *
 * What an op's reply says: OK = executed and durable (must survive every later crash);
 * GOAWAY or SHUTTING_DOWN = not executed (must never appear); CLOSED = unknown (present or
 * absent, but a txn all or nothing). After the first check of a round, the unknown ops are
 * settled as present or absent, and every later check wants exactly that again (recovery syncs
 * what it found, so it is durable).
 *
 * Threads: load_start spawns the client threads; only they touch the clients and the round's
 * op states until load_finish joins them. Everything else runs on the test's thread.
 */
#ifndef KEEL_TESTS_CRASH_LOAD_H
#define KEEL_TESTS_CRASH_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/keel.h"

#define LOAD_CONNS               16u
#define LOAD_DEPTH               8u
#define LOAD_TXN_EVERY           5u
#define LOAD_ROUNDS_MAX          64u
#define LOAD_PREFIX0             "!crash/" /* sorts before the default 2-shard split (paths) */
#define LOAD_PREFIX1             "~crash/" /* sorts after it */
#define LOAD_COUNTER_KEY         "!crash/counter"
#define LOAD_COUNTER_REFUSED_MAX 64u
#define LOAD_PROBLEMS_LOGGED_MAX 12u

enum load_state {
    LOAD_UNSENT = 0,
    LOAD_SENT,    /* no reply yet, or CLOSED: outcome unknown */
    LOAD_ACKED,   /* OK */
    LOAD_REFUSED, /* GOAWAY / SHUTTING_DOWN: not executed */
    LOAD_PRESENT, /* settled by a check */
    LOAD_ABSENT,  /* settled by a check */
};

struct load_round {
    uint32_t ops_max;                /* per client */
    uint32_t next_seq[LOAD_CONNS];   /* ops sent (or attempted) by client k */
    uint8_t *state[LOAD_CONNS];      /* [ops_max] enum load_state per seq */
    uint64_t acked, refused, closed; /* counts, for the log */
    bool settled;
};

/* Everything acknowledged across rounds on one data dir. */
struct load_history {
    struct load_round rounds[LOAD_ROUNDS_MAX];
    uint32_t round_count;
    uint64_t counter_next;     /* value of the next counter put */
    uint64_t counter_acked;    /* last acknowledged counter value, 0: none */
    uint64_t counter_sent_max; /* largest counter value ever sent */
    uint64_t counter_refused[LOAD_COUNTER_REFUSED_MAX]; /* values GOAWAY'd: never executed */
    uint32_t counter_refused_count;
    int unexpected_status; /* first status outside OK/GOAWAY/SHUTTING_DOWN/CLOSED, or 0 */
    uint64_t unexpected_count;
};

struct load_slot {
    struct load_client *owner;
    uint32_t seq;   /* op number, or UINT32_MAX for the counter put */
    uint64_t value; /* counter value */
    bool used;
};

struct load_client {
    struct load_run *run;
    uint32_t id;
    keel_client *c;
    struct load_slot slots[LOAD_DEPTH + 1];
    uint32_t in_flight;
    bool counter_busy; /* client 0 only */
    bool dead;
    pthread_t thread;
};

struct load_run {
    struct load_history *h;
    struct load_round *r;
    uint32_t round;
    atomic_bool stop;
    atomic_uint_fast64_t acks[2];        /* OK replies so far this round, by shard (prefix) */
    atomic_uint_fast64_t goaways;        /* ops failed by a GOAWAY frame */
    atomic_uint_fast64_t shutting_downs; /* ops answered SHUTTING_DOWN */
    pthread_mutex_t counter_lock; /* guards h->counter_* between client 0 and the test thread */
    struct load_client clients[LOAD_CONNS];
};

void load_history_init(struct load_history *h);
void load_history_free(struct load_history *h);

/* Connects the clients to 127.0.0.1:port and starts a new round (ops_max ops per client):
 * shard-aware clients, or with router_only clients that send everything to the router port
 * (half of it then crosses cores). 0, or the keel status of a failed connect. */
int load_start(struct load_run *run, struct load_history *h, uint16_t port, uint32_t ops_max,
               bool router_only);
/* Waits (at most timeout_ms) until shard has acknowledged at least acks ops this round. */
bool load_wait_acks(struct load_run *run, uint32_t shard, uint64_t acks, int timeout_ms);
/* Stops submitting, joins the threads and closes the clients (pending ops become CLOSED). */
void load_finish(struct load_run *run);

/* Compares the server on 127.0.0.1:port with the history: every round's keys, the txn
 * atomicity and the counter. Logs up to LOAD_PROBLEMS_LOGGED_MAX problems (cr_log_error) and
 * returns how many it found; settles each round the first time. */
uint64_t load_check(struct load_history *h, uint16_t port);

/* The value every key of the load holds: "v-" and 16 hex digits of a hash of the key. */
size_t load_value(const char *key, size_t key_len, char *out, size_t out_size);

#endif
