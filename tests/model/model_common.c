/*
 * model_common.c — the generator, failure reports and key universes shared by
 * the model tests.
 */
#include "tests/model/model.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct model_run model_run;
char model_fail_text[4096];

static struct timespec model_run_started;

/* ---- generator ------------------------------------------------------------------ */

void model_rng_seed(struct model_rng *r, u64 seed)
{
    u64 state = seed;
    for (int i = 0; i < 4; i++) r->s[i] = model_splitmix64(&state);
    /* xoshiro's state must not be all zero; splitmix64 never yields four zeros in a row. */
    cr_assert(r->s[0] | r->s[1] | r->s[2] | r->s[3]);
}

/* ---- failure reports -------------------------------------------------------------- */

static int model_repro_format(char *dst, size_t cap, u64 ops)
{
    return snprintf(dst, cap,
                    "KEEL_SEED=%llu KEEL_OPS=%llu build/tests/test_model --filter %s/seed_a",
                    (unsigned long long)model_run.seed, (unsigned long long)ops, model_run.suite);
}

void model_fail_format(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char detail[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    char repro[512];
    /* Replaying op+1 ops ends the run right after the failing op. */
    u64 ops = model_run.in_loop ? model_run.op + 1 : model_run.ops;
    model_repro_format(repro, sizeof(repro), ops);
    snprintf(model_fail_text, sizeof(model_fail_text),
             "model %s FAILED: seed=%llu op=%llu (%s)\n  check: %s (%s:%d)\n  detail: %s\n"
             "  reproduce: %s",
             model_run.test, (unsigned long long)model_run.seed, (unsigned long long)model_run.op,
             model_run.phase, expr, file, line, detail, repro);
    fprintf(stderr, "%s\n", model_fail_text);
    fflush(stderr);
}

/* Async-signal-safe decimal formatting for the crash report. */
static size_t model_u64_dec(char *dst, u64 v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) dst[i] = tmp[n - 1 - i];
    return n;
}

static void model_put_str(char *dst, size_t *pos, size_t cap, const char *s)
{
    while (*s != '\0' && *pos + 1 < cap) dst[(*pos)++] = *s++;
}

/* Reports seed and op when core/ aborts (a failed ASSERT), then dies as it would have. */
static void model_on_abort(int sig)
{
    char msg[512];
    size_t pos = 0;
    char num[24];
    model_put_str(msg, &pos, sizeof(msg), "\nmodel ");
    model_put_str(msg, &pos, sizeof(msg), model_run.test);
    model_put_str(msg, &pos, sizeof(msg), " CRASHED: seed=");
    num[model_u64_dec(num, model_run.seed)] = '\0';
    model_put_str(msg, &pos, sizeof(msg), num);
    model_put_str(msg, &pos, sizeof(msg), " op=");
    num[model_u64_dec(num, model_run.op)] = '\0';
    model_put_str(msg, &pos, sizeof(msg), num);
    model_put_str(msg, &pos, sizeof(msg), "\n  reproduce: KEEL_SEED=");
    num[model_u64_dec(num, model_run.seed)] = '\0';
    model_put_str(msg, &pos, sizeof(msg), num);
    model_put_str(msg, &pos, sizeof(msg), " KEEL_OPS=");
    num[model_u64_dec(num, model_run.in_loop ? model_run.op + 1 : model_run.ops)] = '\0';
    model_put_str(msg, &pos, sizeof(msg), num);
    model_put_str(msg, &pos, sizeof(msg), " build/tests/test_model --filter ");
    model_put_str(msg, &pos, sizeof(msg), model_run.suite);
    model_put_str(msg, &pos, sizeof(msg), "/seed_a\n");
    ssize_t w = write(2, msg, pos);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

void model_run_begin(const char *test, const char *suite, u64 seed, u64 ops)
{
    model_run.test = test;
    model_run.suite = suite;
    model_run.seed = seed;
    model_run.ops = ops;
    model_run.op = 0;
    model_run.in_loop = false;
    model_run.phase = "setup";
    printf("model: seed=%llu ops=%llu test=%s\n", (unsigned long long)seed, (unsigned long long)ops,
           test);
    fflush(stdout);
    signal(SIGABRT, model_on_abort);
    clock_gettime(CLOCK_MONOTONIC, &model_run_started);
}

void model_run_end(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double s = (double)(now.tv_sec - model_run_started.tv_sec) +
               (double)(now.tv_nsec - model_run_started.tv_nsec) / 1e9;
    signal(SIGABRT, SIG_DFL);
    printf("model: seed=%llu ops=%llu test=%s passed in %.2f s\n",
           (unsigned long long)model_run.seed, (unsigned long long)model_run.ops, model_run.test,
           s);
    fflush(stdout);
}

/* ---- keys ----------------------------------------------------------------------- */

static const u8 model_alphabet[] = {0x00, '/', '0', '1', 'a', 'b', 0x80, 0xff};

int model_key_cmp(struct span a, struct span b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n == 0 ? 0 : memcmp(a.ptr, b.ptr, n);
    if (c != 0) return c < 0 ? -1 : 1;
    if (a.len == b.len) return 0;
    return a.len < b.len ? -1 : 1;
}

bool model_key_eq(struct span a, struct span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

u32 model_keys_lower_bound(const struct model_keys *k, struct span key)
{
    u32 lo = 0;
    u32 hi = k->count;
    while (lo < hi) {
        u32 mid = lo + (hi - lo) / 2;
        if (model_key_cmp(model_key(k, mid), key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* One candidate key: usually a prefix of an earlier key extended by a few bytes. */
static size_t model_key_candidate(const struct model_keys *k, u32 n, struct model_rng *r, u8 *dst)
{
    size_t plen = 0;
    if (n > 0 && model_rng_chance(r, 800)) {
        u32 base = (u32)model_rng_below(r, n);
        plen = (size_t)model_rng_below(r, (u64)k->len[base] + 1);
        memcpy(dst, k->bytes + k->off[base], plen);
    }
    size_t room = k->len_max - plen;
    size_t add;
    if (room == 0) {
        plen = k->len_max - 1; /* cut one byte so there is room to differ */
        room = 1;
    }
    if (model_rng_chance(r, 800)) {
        add = 1 + (size_t)model_rng_below(r, room < 6 ? room : 6);
    } else {
        add = 1 + (size_t)model_rng_below(r, room);
    }
    for (size_t i = 0; i < add; i++) {
        dst[plen + i] = model_alphabet[model_rng_below(r, sizeof(model_alphabet))];
    }
    return plen + add;
}

static u64 model_key_hash(const u8 *p, size_t n)
{
    u64 h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ n;
}

static const struct model_keys *model_keys_sorting;

static int model_keys_sort_cmp(const void *a, const void *b)
{
    u32 x = *(const u32 *)a;
    u32 y = *(const u32 *)b;
    return model_key_cmp(model_key(model_keys_sorting, x), model_key(model_keys_sorting, y));
}

/* Rewrites k in sorted order so that index order is key order. */
static void model_keys_sort(struct model_keys *k)
{
    u32 *order = malloc(sizeof(u32) * k->count);
    u8 *bytes = malloc((size_t)k->count * MODEL_KEY_LEN_MAX);
    u32 *off = malloc(sizeof(u32) * k->count);
    u8 *len = malloc(k->count);
    cr_assert(order && bytes && off && len);
    for (u32 i = 0; i < k->count; i++) order[i] = i;
    model_keys_sorting = k;
    qsort(order, k->count, sizeof(u32), model_keys_sort_cmp);
    u32 pos = 0;
    for (u32 i = 0; i < k->count; i++) {
        struct span key = model_key(k, order[i]);
        memcpy(bytes + pos, key.ptr, key.len);
        off[i] = pos;
        len[i] = (u8)key.len;
        pos += (u32)key.len;
    }
    free(k->bytes);
    free(k->off);
    free(k->len);
    free(order);
    k->bytes = bytes;
    k->off = off;
    k->len = len;
    for (u32 i = 1; i < k->count; i++) {
        cr_assert(model_key_cmp(model_key(k, i - 1), model_key(k, i)) < 0);
    }
}

void model_keys_generate(struct model_keys *k, struct model_rng *r, u32 count, u32 len_max)
{
    cr_assert(count > 0 && count < (1u << 24));
    cr_assert(len_max >= 2 && len_max <= MODEL_KEY_LEN_MAX);
    k->len_max = len_max;
    k->bytes = malloc((size_t)count * MODEL_KEY_LEN_MAX);
    k->off = malloc(sizeof(u32) * count);
    k->len = malloc(count);
    u32 slots = 1;
    while (slots < 2 * count) slots <<= 1;
    u32 *table = calloc(slots, sizeof(u32)); /* index + 1 of the key in the slot; 0 = free */
    cr_assert(k->bytes && k->off && k->len && table);
    u32 n = 0;
    u32 pos = 0;
    /* Bound: each candidate is new with high probability; the cap catches a broken generator. */
    for (u64 tries = 0; n < count; tries++) {
        cr_assert(tries < (u64)count * 64, "key universe generator is stuck");
        u8 cand[MODEL_KEY_LEN_MAX];
        size_t len = model_key_candidate(k, n, r, cand);
        u32 slot = (u32)model_key_hash(cand, len) & (slots - 1);
        bool dup = false;
        while (table[slot] != 0) {
            u32 other = table[slot] - 1;
            if (k->len[other] == len && memcmp(k->bytes + k->off[other], cand, len) == 0) {
                dup = true;
                break;
            }
            slot = (slot + 1) & (slots - 1);
        }
        if (dup) continue;
        memcpy(k->bytes + pos, cand, len);
        k->off[n] = pos;
        k->len[n] = (u8)len;
        pos += (u32)len;
        table[slot] = ++n;
    }
    free(table);
    k->count = count;
    model_keys_sort(k);
}

void model_keys_free(struct model_keys *k)
{
    free(k->bytes);
    free(k->off);
    free(k->len);
    memset(k, 0, sizeof(*k));
}

struct span model_keys_probe(const struct model_keys *k, struct model_rng *r, u8 *dst)
{
    struct span base = model_key(k, (u32)model_rng_below(r, k->count));
    size_t n = base.len;
    memcpy(dst, base.ptr, n);
    switch (model_rng_below(r, 10)) {
    case 0:
    case 1:
    case 2: /* the key itself */
        break;
    case 3:
    case 4: /* cut: a prefix of the key, so it sorts just before it */
        if (n > 1) n = 1 + (size_t)model_rng_below(r, n - 1);
        break;
    case 5:
    case 6: /* extended: sorts just after the key */
        for (size_t add = 1 + (size_t)model_rng_below(r, 3); add > 0; add--) {
            dst[n++] = model_alphabet[model_rng_below(r, sizeof(model_alphabet))];
        }
        break;
    case 7:
    case 8: /* last byte moved by one: lands between neighbours, off the alphabet */
        if (dst[n - 1] == 0xff || (dst[n - 1] != 0 && model_rng_chance(r, 500))) {
            dst[n - 1]--;
        } else {
            dst[n - 1]++;
        }
        break;
    default: /* a fresh string of any byte values */
        n = 1 + (size_t)model_rng_below(r, k->len_max + 8);
        for (size_t i = 0; i < n; i++) dst[i] = (u8)model_rng_next(r);
        break;
    }
    cr_assert(n >= 1 && n <= k->len_max + 8);
    return span_make(dst, n);
}

struct span model_prefix_end(struct span prefix, u8 *dst)
{
    size_t n = prefix.len;
    while (n > 0 && prefix.ptr[n - 1] == 0xff) n--;
    if (n == 0) {
        dst[0] = 0;
        return span_make(dst, 1);
    }
    memcpy(dst, prefix.ptr, n);
    dst[n - 1]++;
    return span_make(dst, n);
}
