/* crash_load.c — the load and the record of acknowledged ops (crash_load.h). */
#include "crash_load.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOAD_KEY_SIZE   96u
#define LOAD_VALUE_SIZE 32u
#define LOAD_DRAIN_MS   10000
#define LOAD_TXN_FAILED 1000 /* a pseudo status: an OK txn reply that says it failed */

/* ---- keys and values ---------------------------------------------------------------------- */

static uint64_t load_hash(const char *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a finalizer */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

size_t load_value(const char *key, size_t key_len, char *out, size_t out_size)
{
    int n = snprintf(out, out_size, "v-%016llx", (unsigned long long)load_hash(key, key_len));
    cr_assert(n > 0 && (size_t)n < out_size);
    return (size_t)n;
}

static const char *load_prefix(uint32_t client, uint32_t seq)
{
    return (client + seq) % 2 == 0 ? LOAD_PREFIX0 : LOAD_PREFIX1;
}

static bool load_is_txn(uint32_t seq)
{
    return seq % LOAD_TXN_EVERY == LOAD_TXN_EVERY - 1;
}

/* suffix 0: the put's key; 'a'..'c': a txn's keys. */
static size_t load_key(char *out, uint32_t round, uint32_t client, uint32_t seq, char suffix)
{
    int n = suffix == 0 ? snprintf(out, LOAD_KEY_SIZE, "%sr%u/c%02u/s%08u",
                                   load_prefix(client, seq), round, client, seq)
                        : snprintf(out, LOAD_KEY_SIZE, "%sr%u/c%02u/s%08u/%c",
                                   load_prefix(client, seq), round, client, seq, suffix);
    cr_assert(n > 0 && n < (int)LOAD_KEY_SIZE);
    return (size_t)n;
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static void load_note_status(struct load_run *run, int status)
{
    struct load_history *h = run->h;
    if (status == KEEL_STATUS_OK || status == KEEL_STATUS_CLOSED) return;
    if (status == KEEL_STATUS_GOAWAY || status == KEEL_STATUS_SHUTTING_DOWN) return;
    pthread_mutex_lock(&run->counter_lock);
    if (h->unexpected_count++ == 0) h->unexpected_status = status;
    pthread_mutex_unlock(&run->counter_lock);
}

static uint8_t load_state_of(int status)
{
    if (status == KEEL_STATUS_OK) return LOAD_ACKED;
    if (status == KEEL_STATUS_GOAWAY || status == KEEL_STATUS_SHUTTING_DOWN) return LOAD_REFUSED;
    return LOAD_SENT;
}

static void load_done(void *ctx, uint64_t request_id, int status, const struct keel_result *res)
{
    (void)request_id;
    struct load_slot *slot = ctx;
    struct load_client *lc = slot->owner;
    struct load_run *run = lc->run;
    load_note_status(run, status);
    bool txn = slot->seq != UINT32_MAX && load_is_txn(slot->seq);
    if (status == KEEL_STATUS_OK && txn && !res->u.txn.succeeded)
        load_note_status(run, LOAD_TXN_FAILED); /* a txn without compares must succeed */
    if (slot->seq == UINT32_MAX) {
        pthread_mutex_lock(&run->counter_lock);
        struct load_history *h = run->h;
        if (status == KEEL_STATUS_OK && slot->value > h->counter_acked)
            h->counter_acked = slot->value;
        if (load_state_of(status) == LOAD_REFUSED &&
            h->counter_refused_count < LOAD_COUNTER_REFUSED_MAX)
            h->counter_refused[h->counter_refused_count++] = slot->value;
        pthread_mutex_unlock(&run->counter_lock);
        lc->counter_busy = false;
    } else {
        run->r->state[lc->id][slot->seq] = load_state_of(status);
    }
    uint32_t shard =
        slot->seq == UINT32_MAX ? 0 : strcmp(load_prefix(lc->id, slot->seq), LOAD_PREFIX0) != 0;
    if (status == KEEL_STATUS_OK) atomic_fetch_add(&run->acks[shard], 1);
    if (status == KEEL_STATUS_GOAWAY) atomic_fetch_add(&run->goaways, 1);
    if (status == KEEL_STATUS_SHUTTING_DOWN) atomic_fetch_add(&run->shutting_downs, 1);
    slot->used = false;
    lc->in_flight--;
}

static struct load_slot *load_slot_take(struct load_client *lc)
{
    for (uint32_t i = 0; i < LOAD_DEPTH + 1; i++) {
        if (!lc->slots[i].used) {
            lc->slots[i].used = true;
            lc->slots[i].owner = lc;
            return &lc->slots[i];
        }
    }
    cr_assert_fail("no free slot: in_flight %u", lc->in_flight);
    return NULL;
}

/* ---- submitting --------------------------------------------------------------------------- */

static int load_submit_op(struct load_client *lc, struct load_slot *slot)
{
    struct load_run *run = lc->run;
    char keys[3][LOAD_KEY_SIZE], values[3][LOAD_VALUE_SIZE];
    size_t key_lens[3], value_lens[3];
    bool txn = load_is_txn(slot->seq);
    uint32_t n = txn ? 3 : 1;
    for (uint32_t i = 0; i < n; i++) {
        key_lens[i] = load_key(keys[i], run->round, lc->id, slot->seq, txn ? (char)('a' + i) : 0);
        value_lens[i] = load_value(keys[i], key_lens[i], values[i], LOAD_VALUE_SIZE);
    }
    uint64_t id = 0;
    if (!txn) {
        struct keel_put_args a = {.key = {keys[0], key_lens[0]},
                                  .value = {values[0], value_lens[0]}};
        return keel_submit_put(lc->c, &a, load_done, slot, &id);
    }
    struct keel_op ops[3];
    memset(ops, 0, sizeof(ops));
    for (uint32_t i = 0; i < 3; i++) {
        ops[i].kind = KEEL_OP_PUT;
        ops[i].u.put.key = (struct keel_bytes){keys[i], key_lens[i]};
        ops[i].u.put.value = (struct keel_bytes){values[i], value_lens[i]};
    }
    struct keel_txn_args t = {.success = ops, .success_len = 3};
    return keel_submit_txn(lc->c, &t, load_done, slot, &id);
}

/* Submits the next op; false when it was not queued (full, closed, or the round's cap). */
static bool load_submit_next(struct load_client *lc)
{
    struct load_round *r = lc->run->r;
    uint32_t seq = r->next_seq[lc->id];
    if (seq >= r->ops_max) return false;
    struct load_slot *slot = load_slot_take(lc);
    slot->seq = seq;
    int rc = load_submit_op(lc, slot);
    if (rc != 0) {
        slot->used = false;
        if (rc != KEEL_STATUS_FULL) lc->dead = true;
        return false;
    }
    r->state[lc->id][seq] = LOAD_SENT;
    r->next_seq[lc->id] = seq + 1;
    lc->in_flight++;
    return true;
}

static void load_submit_counter(struct load_client *lc)
{
    struct load_run *run = lc->run;
    struct load_slot *slot = load_slot_take(lc);
    pthread_mutex_lock(&run->counter_lock);
    uint64_t value = run->h->counter_next;
    pthread_mutex_unlock(&run->counter_lock);
    char text[LOAD_VALUE_SIZE];
    int len = snprintf(text, sizeof(text), "%llu", (unsigned long long)value);
    struct keel_put_args a = {.key = {LOAD_COUNTER_KEY, strlen(LOAD_COUNTER_KEY)},
                              .value = {text, (size_t)len}};
    slot->seq = UINT32_MAX;
    slot->value = value;
    uint64_t id = 0;
    int rc = keel_submit_put(lc->c, &a, load_done, slot, &id);
    if (rc != 0) {
        slot->used = false;
        if (rc != KEEL_STATUS_FULL) lc->dead = true;
        return;
    }
    pthread_mutex_lock(&run->counter_lock);
    run->h->counter_next = value + 1;
    if (value > run->h->counter_sent_max) run->h->counter_sent_max = value;
    pthread_mutex_unlock(&run->counter_lock);
    lc->counter_busy = true;
    lc->in_flight++;
}

static int64_t load_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Submits until the stop flag or a failed submit (lc->dead: a connection is gone), then keeps
 * polling until every op in flight has its outcome (reply, GOAWAY or close), so a connection
 * that closed first does not turn the others' replies into CLOSED; at most LOAD_DRAIN_MS. */
static void *load_thread(void *arg)
{
    struct load_client *lc = arg;
    struct load_run *run = lc->run;
    int64_t drain_end_ms = -1;
    for (;;) { /* bounded: LOAD_DRAIN_MS after the stop flag */
        bool submitting = !atomic_load(&run->stop) && !lc->dead;
        if (submitting) {
            if (lc->id == 0 && !lc->counter_busy) load_submit_counter(lc);
            while (lc->in_flight < LOAD_DEPTH && !lc->dead && load_submit_next(lc)) {}
        } else {
            if (keel_pending(lc->c) == 0) break;
            if (atomic_load(&run->stop) && drain_end_ms < 0)
                drain_end_ms = load_now_ms() + LOAD_DRAIN_MS;
            if (drain_end_ms >= 0 && load_now_ms() > drain_end_ms) break;
        }
        if (keel_poll(lc->c, 20) < 0) break; /* every connection closed */
    }
    return NULL;
}

/* ---- rounds ------------------------------------------------------------------------------- */

void load_history_init(struct load_history *h)
{
    memset(h, 0, sizeof(*h));
    h->counter_next = 1;
}

void load_history_free(struct load_history *h)
{
    for (uint32_t r = 0; r < h->round_count; r++)
        for (uint32_t k = 0; k < LOAD_CONNS; k++) free(h->rounds[r].state[k]);
    memset(h, 0, sizeof(*h));
}

static int load_connect(struct load_client *lc, uint16_t port, bool shard_aware)
{
    char endpoint[32];
    snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", port);
    struct keel_options o;
    keel_options_default(&o);
    o.shard_aware = shard_aware;
    o.timeout_ms = 10000;
    return keel_connect(endpoint, &o, &lc->c);
}

int load_start(struct load_run *run, struct load_history *h, uint16_t port, uint32_t ops_max,
               bool router_only)
{
    cr_assert(h->round_count < LOAD_ROUNDS_MAX, "at most %u rounds", LOAD_ROUNDS_MAX);
    memset(run, 0, sizeof(*run));
    run->h = h;
    run->round = h->round_count;
    run->r = &h->rounds[run->round];
    run->r->ops_max = ops_max;
    for (uint32_t k = 0; k < LOAD_CONNS; k++) {
        run->r->state[k] = calloc(ops_max, 1);
        cr_assert(run->r->state[k] != NULL);
    }
    h->round_count++;
    pthread_mutex_init(&run->counter_lock, NULL);
    for (uint32_t k = 0; k < LOAD_CONNS; k++) {
        struct load_client *lc = &run->clients[k];
        lc->run = run;
        lc->id = k;
        int rc = load_connect(lc, port, !router_only);
        if (rc != 0) {
            for (uint32_t j = 0; j < k; j++) keel_close(run->clients[j].c);
            return rc;
        }
        int want = router_only ? 1 : 3; /* router, plus one per shard when shard-aware */
        cr_assert(keel_connection_count(lc->c) == want, "%d connections, want %d",
                  keel_connection_count(lc->c), want);
    }
    for (uint32_t k = 0; k < LOAD_CONNS; k++)
        cr_assert(pthread_create(&run->clients[k].thread, NULL, load_thread, &run->clients[k]) ==
                  0);
    return 0;
}

bool load_wait_acks(struct load_run *run, uint32_t shard, uint64_t acks, int timeout_ms)
{
    cr_assert(shard < 2);
    int64_t end_ms = load_now_ms() + timeout_ms;
    while (atomic_load(&run->acks[shard]) < acks) { /* bounded: timeout_ms */
        if (load_now_ms() > end_ms) return false;
        struct timespec ts = {.tv_nsec = 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

void load_finish(struct load_run *run)
{
    atomic_store(&run->stop, true);
    for (uint32_t k = 0; k < LOAD_CONNS; k++) pthread_join(run->clients[k].thread, NULL);
    for (uint32_t k = 0; k < LOAD_CONNS; k++) keel_close(run->clients[k].c);
    struct load_round *r = run->r;
    for (uint32_t k = 0; k < LOAD_CONNS; k++) {
        for (uint32_t s = 0; s < r->next_seq[k]; s++) {
            r->acked += r->state[k][s] == LOAD_ACKED;
            r->refused += r->state[k][s] == LOAD_REFUSED;
            r->closed += r->state[k][s] == LOAD_SENT;
        }
    }
    pthread_mutex_destroy(&run->counter_lock);
}

/* ---- the check ---------------------------------------------------------------------------- */

struct load_check {
    struct load_history *h;
    keel_client *c;
    uint8_t *found[LOAD_ROUNDS_MAX][LOAD_CONNS]; /* per op: bit 0 the put, bits 0-2 a txn's keys */
    uint64_t problems;
    uint64_t keys_seen;
};

static void load_problem(struct load_check *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void load_problem(struct load_check *k, const char *fmt, ...)
{
    if (k->problems++ >= LOAD_PROBLEMS_LOGGED_MAX) return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cr_log_error("crash check: %s", text);
}

/* One key of the scan under prefix: parse it, check it was sent and holds its value. */
static void load_check_kv(struct load_check *k, const char *prefix, const struct keel_kv *kv)
{
    char key[LOAD_KEY_SIZE], want[LOAD_VALUE_SIZE];
    if (kv->key_len >= sizeof(key)) return load_problem(k, "a key of %zu bytes", kv->key_len);
    memcpy(key, kv->key, kv->key_len);
    key[kv->key_len] = 0;
    if (strcmp(key, LOAD_COUNTER_KEY) == 0) return;
    unsigned round = 0, client = 0, seq = 0;
    char suffix = 0;
    int used = 0;
    const char *rest = key + strlen(prefix);
    int got = sscanf(rest, "r%u/c%u/s%u%n/%c%n", &round, &client, &seq, &used, &suffix, &used);
    bool shape = got >= 3 && rest[used] == 0 && round < k->h->round_count && client < LOAD_CONNS;
    char again[LOAD_KEY_SIZE];
    if (shape) load_key(again, round, client, seq, got == 4 ? suffix : 0);
    if (!shape || strcmp(again, key) != 0 || load_is_txn(seq) != (got == 4) ||
        (got == 4 && (suffix < 'a' || suffix > 'c')))
        return load_problem(k, "key '%s' was never sent (not the load's shape)", key);
    const struct load_round *r = &k->h->rounds[round];
    bool txn = load_is_txn(seq);
    if (seq >= r->next_seq[client] || r->state[client][seq] == LOAD_UNSENT)
        return load_problem(k, "key '%s' was never sent", key);
    size_t want_len = load_value(key, kv->key_len, want, sizeof(want));
    if (kv->value_len != want_len || memcmp(kv->value, want, want_len) != 0)
        load_problem(k, "key '%s' holds '%.*s', want '%s'", key, (int)kv->value_len,
                     (const char *)kv->value, want);
    k->found[round][client][seq] |= (uint8_t)(txn ? 1u << (suffix - 'a') : 1u);
    k->keys_seen++;
}

/* Scans every key under prefix in pages. */
static void load_check_scan(struct load_check *k, const char *prefix)
{
    char start[LOAD_KEY_SIZE + 1], end[LOAD_KEY_SIZE];
    size_t start_len = strlen(prefix), end_len = strlen(prefix);
    memcpy(start, prefix, start_len);
    memcpy(end, prefix, end_len);
    end[end_len - 1]++; /* the prefix ends in '/': [prefix, prefix with '0') */
    for (;;) {          /* bounded: every page moves start past its last key */
        struct keel_range_args a = {
            .key = {start, start_len}, .range_end = {end, end_len}, .limit = 1000};
        struct keel_result res;
        int rc = keel_get(k->c, &a, &res);
        cr_assert(rc == KEEL_STATUS_OK, "range under %s: %s", prefix, keel_strerror(rc));
        const struct keel_range_result *rr = &res.u.range;
        for (size_t i = 0; i < rr->kvs_len; i++) load_check_kv(k, prefix, &rr->kvs[i]);
        if (!rr->more || rr->kvs_len == 0) break;
        const struct keel_kv *last = &rr->kvs[rr->kvs_len - 1];
        cr_assert(last->key_len < LOAD_KEY_SIZE);
        memcpy(start, last->key, last->key_len);
        start[last->key_len] = 0; /* the next key after last */
        start_len = last->key_len + 1;
    }
}

static const char *load_state_name(uint8_t state)
{
    static const char *const names[] = {"unsent",
                                        "sent without reply",
                                        "acknowledged",
                                        "refused by GOAWAY (protocol.md: not executed)",
                                        "present at an earlier check",
                                        "absent at an earlier check"};
    return state < 6 ? names[state] : "?";
}

/* Every op of round r against what the scan found; settles the unknown ones. */
static void load_check_round(struct load_check *k, uint32_t round)
{
    struct load_round *r = &k->h->rounds[round];
    for (uint32_t c = 0; c < LOAD_CONNS; c++) {
        for (uint32_t seq = 0; seq < r->next_seq[c]; seq++) {
            uint8_t state = r->state[c][seq];
            uint8_t mask = k->found[round][c][seq], full = load_is_txn(seq) ? 7 : 1;
            char key[LOAD_KEY_SIZE];
            load_key(key, round, c, seq, load_is_txn(seq) ? 'a' : 0);
            bool must = state == LOAD_ACKED || state == LOAD_PRESENT;
            bool must_not = state == LOAD_REFUSED || state == LOAD_ABSENT;
            if (mask != 0 && mask != full) {
                load_problem(k, "txn '%s' (%s) is torn: keys a,b,c present as %u%u%u", key,
                             load_state_name(state), mask & 1, (mask >> 1) & 1, mask >> 2);
            } else if (must && mask == 0) {
                load_problem(k, "'%s' is lost: it was %s", key, load_state_name(state));
            } else if (must_not && mask != 0) {
                load_problem(k, "'%s' is present: it was %s", key, load_state_name(state));
            } else if (state != LOAD_UNSENT) {
                r->state[c][seq] = mask == full ? LOAD_PRESENT : LOAD_ABSENT;
            }
        }
    }
    r->settled = true;
}

static void load_check_counter(struct load_check *k)
{
    struct load_history *h = k->h;
    struct keel_range_args a = {.key = {LOAD_COUNTER_KEY, strlen(LOAD_COUNTER_KEY)}};
    struct keel_result res;
    int rc = keel_get(k->c, &a, &res);
    cr_assert(rc == KEEL_STATUS_OK, "get %s: %s", LOAD_COUNTER_KEY, keel_strerror(rc));
    if (res.u.range.kvs_len == 0) {
        if (h->counter_acked > 0)
            load_problem(k, "counter lost: last acknowledged %llu",
                         (unsigned long long)h->counter_acked);
        return;
    }
    const struct keel_kv *kv = &res.u.range.kvs[0];
    char text[LOAD_VALUE_SIZE] = {0};
    memcpy(text, kv->value, kv->value_len < sizeof(text) - 1 ? kv->value_len : sizeof(text) - 1);
    unsigned long long v = strtoull(text, NULL, 10);
    if (v < h->counter_acked || v > h->counter_sent_max || v == 0)
        load_problem(k, "counter holds '%s': last acknowledged %llu, largest sent %llu", text,
                     (unsigned long long)h->counter_acked, (unsigned long long)h->counter_sent_max);
    else
        h->counter_acked = v; /* recovered, so durable: later checks want at least this */
    for (uint32_t i = 0; i < h->counter_refused_count; i++)
        if (h->counter_refused[i] == v)
            load_problem(k, "counter holds %llu, a value whose put was refused (GOAWAY)", v);
}

uint64_t load_check(struct load_history *h, uint16_t port)
{
    struct load_check *k = calloc(1, sizeof(*k));
    cr_assert(k != NULL);
    k->h = h;
    struct load_client lc = {0};
    int rc = load_connect(&lc, port, true);
    cr_assert(rc == KEEL_STATUS_OK, "connect for the check: %s", keel_strerror(rc));
    k->c = lc.c;
    for (uint32_t r = 0; r < h->round_count; r++)
        for (uint32_t c = 0; c < LOAD_CONNS; c++) {
            k->found[r][c] = calloc(h->rounds[r].ops_max, 1);
            cr_assert(k->found[r][c] != NULL);
        }
    load_check_scan(k, LOAD_PREFIX0);
    load_check_scan(k, LOAD_PREFIX1);
    for (uint32_t r = 0; r < h->round_count; r++) load_check_round(k, r);
    load_check_counter(k);
    keel_close(k->c);
    for (uint32_t r = 0; r < h->round_count; r++)
        for (uint32_t c = 0; c < LOAD_CONNS; c++) free(k->found[r][c]);
    uint64_t problems = k->problems;
    cr_log_info("crash check: %llu keys, %llu problems", (unsigned long long)k->keys_seen,
                (unsigned long long)problems);
    free(k);
    return problems;
}
