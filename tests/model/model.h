/*
 * model.h — shared pieces of the randomized model tests (tests/model/).
 *
 * The model tests drive core/btree and core/mvcc with a long stream of random
 * operations and compare every answer with a naive reference model that is
 * obviously correct. Everything random comes from one 64-bit seed through the
 * generator below (xoshiro256** seeded by splitmix64), never from rand(), so a
 * seed and an op count reproduce a run exactly: the op stream never depends on
 * the op count, only on the seed.
 *
 * A failed check reports the test, the seed, the op index and a command line
 * that replays the run up to that op. A crash (a failed ASSERT inside core/)
 * prints the same line from a SIGABRT handler before the process dies.
 */
#ifndef KEEL_TESTS_MODEL_MODEL_H
#define KEEL_TESTS_MODEL_MODEL_H

#include "core/types.h"

#include <criterion/criterion.h>

/* ---- the generator ------------------------------------------------------- */

struct model_rng {
    u64 s[4];
};

static inline u64 model_splitmix64(u64 *state)
{
    u64 z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline u64 model_rotl(u64 x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void model_rng_seed(struct model_rng *r, u64 seed);

/* xoshiro256** (Blackman and Vigna). */
static inline u64 model_rng_next(struct model_rng *r)
{
    u64 *s = r->s;
    u64 result = model_rotl(s[1] * 5, 7) * 9;
    u64 t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = model_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply; the bias is below 2^-32 for our n). */
static inline u64 model_rng_below(struct model_rng *r, u64 n)
{
    return (u64)(((unsigned __int128)model_rng_next(r) * n) >> 64);
}

/* True with probability per_mille / 1000. */
static inline bool model_rng_chance(struct model_rng *r, u32 per_mille)
{
    return model_rng_below(r, 1000) < per_mille;
}

/* ---- the run being checked, and failure reports ------------------------------ */

struct model_run {
    const char *test;  /* "btree" or "mvcc" */
    const char *suite; /* the Criterion suite, for --filter */
    u64 seed;
    u64 ops;           /* ops this run performs */
    u64 op;            /* index of the op under way */
    bool in_loop;      /* in the main op loop: KEEL_OPS=op+1 replays up to the failure */
    const char *phase; /* what the run is doing */
};

extern struct model_run model_run;

/* Formats the failure text (test, seed, op, check, detail, reproduction) into model_fail_text. */
void model_fail_format(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
extern char model_fail_text[4096];

/* Checks cond; on failure fails the Criterion test with the seed, op and a reproduction line. */
#define MODEL_CHECK(cond, ...)                                         \
    do {                                                               \
        bool model_ok_ = (cond);                                       \
        if (KEEL_UNLIKELY(!model_ok_)) {                               \
            model_fail_format(__FILE__, __LINE__, #cond, __VA_ARGS__); \
            cr_assert(model_ok_, "%s", model_fail_text);               \
        }                                                              \
    } while (0)

/* Starts a run: prints "model: seed=<n> ops=<n>" and arms the crash report. */
void model_run_begin(const char *test, const char *suite, u64 seed, u64 ops);
/* Ends a run: prints the time it took and disarms the crash report. */
void model_run_end(void);

/* ---- keys ------------------------------------------------------------------- */

/* Longest key a universe may hold; probes may be a few bytes longer. */
#define MODEL_KEY_LEN_MAX   72u
#define MODEL_PROBE_LEN_MAX (MODEL_KEY_LEN_MAX + 8u)

/* A fixed, sorted set of distinct keys (a "universe") that the ops draw from.
 * Keys use a small alphabet (0x00, '/', '0', '1', 'a', 'b', 0x80, 0xff) with
 * lengths 1..len_max (<= MODEL_KEY_LEN_MAX), and most are built by extending a prefix of an
 * earlier key, so long shared prefixes (ties in the tree's 8-byte heads) and
 * keys that are prefixes of other keys are common. */
struct model_keys {
    u8 *bytes;
    u32 *off;
    u8 *len;
    u32 count;
    u32 len_max;
};

void model_keys_generate(struct model_keys *k, struct model_rng *r, u32 count, u32 len_max);
void model_keys_free(struct model_keys *k);

static inline struct span model_key(const struct model_keys *k, u32 i)
{
    return span_make(k->bytes + k->off[i], k->len[i]);
}

/* The tree's order: unsigned bytes, then length. */
int model_key_cmp(struct span a, struct span b);
bool model_key_eq(struct span a, struct span b);
/* First index whose key is >= key (count if none). */
u32 model_keys_lower_bound(const struct model_keys *k, struct span key);
/* A search key: a universe key or a near miss of one (cut, extended, last byte
 * moved) or, rarely, a fresh string. Writes up to len_max + 8 bytes. */
struct span model_keys_probe(const struct model_keys *k, struct model_rng *r, u8 *dst);
/* etcd's prefix end: the last non-0xff byte incremented, the rest dropped; "\0" if none. */
struct span model_prefix_end(struct span prefix, u8 *dst);

/* ---- the two model tests ----------------------------------------------------- */

void model_btree_run(u64 seed, u64 ops);
void model_mvcc_run(u64 seed, u64 ops);

#endif
