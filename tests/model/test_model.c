/*
 * test_model.c — the randomized model tests: core/btree and core/mvcc against
 * naive reference models over KEEL_OPS (default 1,000,000) random operations
 * per seed.
 *
 * Seeds: by default each model runs three seeds, two fixed and one taken from
 * the clock, one Criterion test per seed slot. KEEL_SEED=<n> runs exactly
 * that seed (in the first slot; the other slots skip). Every run prints
 * "model: seed=<n> ops=<n>" first, and a failure prints the seed, the op and
 * the command that replays it, e.g.
 *
 *   KEEL_SEED=7 KEEL_OPS=123457 build/tests/test_model --filter model_mvcc/seed_a
 *
 * (seed_a is the slot that runs KEEL_SEED; the other slots skip then.)
 */
#include "tests/model/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MODEL_SEED_FIXED_A 0x6b65656c2d6d6f64ull /* "keel-mod" */
#define MODEL_SEED_FIXED_B 20261123ull
#define MODEL_OPS_DEFAULT  1000000ull

static u64 model_env_u64(const char *name, u64 fallback)
{
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') return fallback;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    cr_assert(errno == 0 && end != NULL && *end == '\0', "%s=%s is not a number", name, text);
    return (u64)v;
}

static u64 model_clock_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    u64 state = (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
    state ^= (u64)getpid() << 40;
    return model_splitmix64(&state);
}

/* The seed for a slot, or false when the slot does not run (KEEL_SEED names one seed). */
static bool model_slot_seed(u32 slot, u64 *seed)
{
    const char *env = getenv("KEEL_SEED");
    if (env != NULL && *env != '\0') {
        *seed = model_env_u64("KEEL_SEED", 0);
        return slot == 0;
    }
    switch (slot) {
    case 0:
        *seed = MODEL_SEED_FIXED_A;
        return true;
    case 1:
        *seed = MODEL_SEED_FIXED_B;
        return true;
    default:
        *seed = model_clock_seed();
        return true;
    }
}

static void model_slot_run(u32 slot, void (*run)(u64 seed, u64 ops))
{
    u64 seed = 0;
    if (!model_slot_seed(slot, &seed)) {
        cr_skip_test("KEEL_SEED is set: only the first slot runs");
        return;
    }
    u64 ops = model_env_u64("KEEL_OPS", MODEL_OPS_DEFAULT);
    cr_assert(ops > 0, "KEEL_OPS must be at least 1");
    run(seed, ops);
}

/* The per-test timeout is left to ctest (TIMEOUT in CMakeLists.txt). */
Test(model_btree, seed_a)
{
    model_slot_run(0, model_btree_run);
}

Test(model_btree, seed_b)
{
    model_slot_run(1, model_btree_run);
}

Test(model_btree, seed_clock)
{
    model_slot_run(2, model_btree_run);
}

#ifndef KEEL_MODEL_NO_MVCC
Test(model_mvcc, seed_a)
{
    model_slot_run(0, model_mvcc_run);
}

Test(model_mvcc, seed_b)
{
    model_slot_run(1, model_mvcc_run);
}

Test(model_mvcc, seed_clock)
{
    model_slot_run(2, model_mvcc_run);
}
#endif
