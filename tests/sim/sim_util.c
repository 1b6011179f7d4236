/* sim_util.c — the run's random stream, the trace and its hash, failure reports, allocation. */
#include "tests/sim/sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random ----------------------------------------------------------------------------- */

u64 sim_rand(struct sim *s)
{
    u64 z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

u64 sim_below(struct sim *s, u64 n)
{
    if (n <= 1) return 0;
    return sim_rand(s) % n;
}

bool sim_permille(struct sim *s, u32 permille)
{
    if (permille == 0) return false;
    return sim_below(s, 1000) < permille;
}

u64 sim_range(struct sim *s, u64 lo, u64 hi)
{
    if (hi <= lo) return lo;
    return lo + sim_below(s, hi - lo + 1);
}

/* ---- hashing ---------------------------------------------------------------------------- */

u64 sim_hash_u64(u64 h, u64 v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

u64 sim_hash_bytes(u64 h, const void *bytes, size_t len)
{
    const u8 *p = bytes;
    h = sim_hash_u64(h, len);
    while (len >= 8) {
        u64 v;
        memcpy(&v, p, 8);
        h = sim_hash_u64(h, v);
        p += 8;
        len -= 8;
    }
    u64 tail = 0;
    for (size_t i = 0; i < len; i++) tail |= (u64)p[i] << (8 * i);
    return sim_hash_u64(h, tail);
}

/* ---- trace ------------------------------------------------------------------------------ */

void sim_trace(struct sim *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    s->trace_hash = sim_hash_bytes(s->trace_hash, line, (size_t)n);
    if (s->opt.verbose) {
        printf("%8llu ms step %5u  %s\n", (unsigned long long)s->now_ms, s->step, line);
    }
}

void sim_log(struct sim *s, const char *fmt, ...)
{
    if (!s->opt.verbose) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("%8llu ms step %5u  %s\n", (unsigned long long)s->now_ms, s->step, line);
}

void sim_trace_bytes(struct sim *s, const void *bytes, size_t len)
{
    s->trace_hash = sim_hash_bytes(s->trace_hash, bytes, len);
}

void sim_fail(struct sim *s, const char *checker, const char *fmt, ...)
{
    if (s->failed) return;
    s->failed = true;
    s->fail_checker = checker;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_msg, sizeof s->fail_msg, fmt, ap);
    va_end(ap);
    sim_trace(s, "FAIL %s: %s", checker, s->fail_msg);
}

/* ---- allocation ------------------------------------------------------------------------- */

void *sim_xmalloc(size_t size_bytes)
{
    void *p = malloc(size_bytes ? size_bytes : 1);
    if (!p) {
        fprintf(stderr, "keel_sim: out of memory (%zu bytes)\n", size_bytes);
        abort();
    }
    return p;
}

void *sim_xrealloc(void *ptr, size_t size_bytes)
{
    void *p = realloc(ptr, size_bytes ? size_bytes : 1);
    if (!p) {
        fprintf(stderr, "keel_sim: out of memory (%zu bytes)\n", size_bytes);
        abort();
    }
    return p;
}

void *sim_xmemdup(const void *src, size_t len)
{
    if (len == 0) return NULL;
    void *p = sim_xmalloc(len);
    memcpy(p, src, len);
    return p;
}
