/*
 * assert.h — keel's assertions, on in every build.
 *
 * Contract:
 *  - ASSERT(x) checks an invariant and aborts with file, line and expression
 *    when it does not hold. It stays on in Release builds: a broken invariant
 *    in a storage engine must stop the process before it writes bad data.
 *    Put cheap checks here; expensive walkers (btree_check) belong in tests.
 *  - ASSERT_IMPLIES(a, b) reads "a implies b".
 *  - DEBUG_ASSERT(x) is compiled only when KEEL_DEBUG_ASSERTS is defined (Debug
 *    and sanitizer builds): for checks that cost more than the work they guard.
 *  - testcase(x) marks a boundary a test should reach; it compiles to nothing
 *    but documents the case (SQLite's habit).
 *  - static_assert comes from <assert.h> of C11.
 *
 * Under Criterion a failed ASSERT aborts the worker process, which Criterion
 * reports as a crashed test with the message printed on stderr.
 */
#ifndef KEEL_CORE_ASSERT_H
#define KEEL_CORE_ASSERT_H

#include <assert.h> /* static_assert */

_Noreturn void keel_assert_fail(const char *expr, const char *file, int line, const char *func);

#define ASSERT(x)                                                                          \
    do {                                                                                   \
        if (__builtin_expect(!(x), 0)) keel_assert_fail(#x, __FILE__, __LINE__, __func__); \
    } while (0)

#define ASSERT_IMPLIES(a, b) ASSERT(!(a) || (b))

#ifdef KEEL_DEBUG_ASSERTS
#define DEBUG_ASSERT(x) ASSERT(x)
#else
#define DEBUG_ASSERT(x) ((void)0)
#endif

#define testcase(x) ((void)0)

#define UNREACHABLE() keel_assert_fail("unreachable", __FILE__, __LINE__, __func__)

#endif
