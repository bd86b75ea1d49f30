/*
 * weft/test.h -- testing your own code with weft (pytest-asyncio's twin).
 *
 * weft_test_run() runs a test's body as a task of a fresh runtime, with a
 * time limit, and returns 0 if it passed.  It works with any test
 * framework, or none: a cmocka test asserts on what it returns,
 *
 *	static void *body(void *arg)
 *	{
 *		WEFT_TEST_CHECK_INT(weft_sleep_ms(10), ==, 0);
 *		return NULL;
 *	}
 *
 *	static void test_sleep(void **state)
 *	{
 *		assert_int_equal(WEFT_TEST_RUN(body, NULL, NULL), 0);
 *	}
 *
 * and a plain program with assert() or its exit status does the same.
 * docs/testing.md, "Testing your own code with weft/test.h", has complete
 * examples of both.  Not included by weft.h: include it in tests only.
 *
 * Why checks, not the framework's asserts, inside the body.  The body runs
 * on a task's stack, switched to by the runtime, often on another thread.
 * A failing cmocka assert_* (and Unity's, and Check's) long-jumps back to
 * the test runner's stack, which is not the stack it is on: the runtime is
 * left mid-switch and the process crashes or hangs.  So inside a body, and
 * in anything it spawns or calls, check with WEFT_TEST_CHECK*: a failing
 * check records the failure (the first one: its expression, file, line
 * and, for the _INT/_UINT forms, both values), cancels the body and
 * returns NULL from the function it is written in.  weft_test_run() then
 * waits for the body to end, prints the failure on stderr and returns
 * WEFT_TEST_FAILED, which the test asserts on from its own stack.  Plain
 * assert() is fine anywhere: it aborts the process and never jumps.
 *
 * The time limit.  A body that does not end within its limit is reported
 * (its name and the limit on stderr), cancelled, and given a grace period
 * to unwind: its suspension points return -ECANCELED from then on.  If it
 * ends, weft_test_run() returns -ETIMEDOUT.  If it does not (it never
 * reaches a suspension point, holds a shield, or blocks its loop's thread
 * in a system call), nothing short of killing the thread can stop it, and
 * it may hold data the rest of the process needs: weft_test_run() says so
 * on stderr and calls abort().  Many frameworks run every test of a suite
 * in one process, so the alternative -- hanging until an outer timeout
 * kills the whole suite without saying which test -- is worse.  The
 * runtime's shutdown at the end (cancelling whatever the body left running)
 * gets the same grace period and the same abort.
 *
 * The environment variable WEFT_TEST_TIME_SCALE (a positive number, e.g.
 * 4 under sanitizers or 20 under qemu-user) multiplies every time limit
 * and grace period of weft_test_run(), so one suite serves fast and slow
 * runs without edits.
 */
#ifndef WEFT_TEST_PUBLIC_H
#define WEFT_TEST_PUBLIC_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "../weft.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What weft_test_run() returns when a check failed (the failure has been
 * printed on stderr).  An errno value, so that it is negative like every
 * other failure and strerror() gives a meaning for it: the test's state is
 * not recoverable. */
#define WEFT_TEST_FAILED (-ENOTRECOVERABLE)

typedef struct weft_test_options {
	weft_runtime_config runtime; /* the test's runtime; init sets
					weft_runtime_config_init's defaults
					except loops = 2 (tasks run in
					parallel and move between loops, as in
					production; 1 gives asyncio's one-loop
					order) and backend_quiet (no fallback
					line per test).  runtime.backend picks
					io_uring or epoll (WEFT_BACKEND_*; the
					WEFT_BACKEND environment variable
					still overrides it) */
	uint64_t timeout_ns;     /* the body's time limit (30 s), from its
				    spawn; WEFT_FOREVER: none; 0: no time at
				    all (the body is not run:
				    -ETIMEDOUT).  Scaled by
				    WEFT_TEST_TIME_SCALE */
	uint64_t grace_ns;       /* after the limit, how long the cancelled
				    body may take to end, and how long the
				    runtime's final shutdown may take, before
				    the process is aborted (2 s); WEFT_FOREVER:
				    wait, never abort.  Scaled likewise */
	unsigned reserved[8];    /* must be zero */
} weft_test_options;

/* Fill `o` with the defaults above.  Always call it before setting fields.
 * Any thread. */
WEFT_API void weft_test_options_init(weft_test_options *o);

/*
 * Run body(arg) as a task (named `name`) of a fresh runtime started with
 * opts->runtime, wait for it within opts->timeout_ns, then shut the
 * runtime down (cancelling and awaiting whatever the body left running)
 * and free it.  `opts` may be NULL for the defaults; `name` (NULL: "test")
 * names the test in every report, and WEFT_TEST_RUN passes the body's
 * function name.  The body's return value is ignored: hand results back
 * through `arg` if the test wants them.
 *
 * Returns 0 (the body returned, no check failed), or, after printing one
 * line on stderr that names the test and says why:
 *   WEFT_TEST_FAILED  a check failed (in the body, a task it spawned, or
 *                     any thread while the test ran); the failure is
 *                     printed with its file and line;
 *   -ETIMEDOUT        the time limit passed; the body was cancelled and
 *                     ended within the grace period;
 *   the body's error  it reported one with weft_task_fail(), or
 *                     -ECANCELED (it was cancelled other than by its time
 *                     limit or a check);
 *   -EINVAL           nonzero reserved fields, a bad runtime config or
 *                     body NULL;
 *   -EBUSY            another weft_test_run() is in progress in this
 *                     process (one at a time: checks find their test
 *                     through it);
 *   -EPERM            called from a task or a loop (call it from the
 *                     test's own thread);
 *   an error of weft_runtime_start(): -ENOMEM, or with
 *                     WEFT_BACKEND_IO_URING where io_uring is unusable
 *                     -ENOSYS, -EPERM or -EOPNOTSUPP (a test may skip).
 * Does not return, but aborts the process, when the body or the runtime's
 * shutdown outlasts its grace period (see the top of this header).
 * Blocks the calling thread, which must not be a loop of any runtime.
 */
WEFT_API int weft_test_run(const char *name, weft_fn body, void *arg,
			   const weft_test_options *opts);

/* weft_test_run() named after the body function. */
#define WEFT_TEST_RUN(body, arg, opts) weft_test_run(#body, (body), (arg), (opts))

/*
 * The check behind the macros below, for code that cannot `return NULL`
 * (a function returning int, say): when `ok` is false, record the failure
 * (the first one of the test is kept, with `fmt`'s text and file:line; the
 * later ones are counted) and cancel the test's body, so that it ends at
 * its next suspension point.  Returns `ok`.  Any thread while a
 * weft_test_run() is in progress: a task of its runtime, a thread of the
 * blocking pool, a thread of the test's own.  Outside one there is no test
 * to fail: it prints the failure and aborts.
 *
 *	if (!weft_test_check(n == 3, __FILE__, __LINE__, "n == 3 (n = %d)", n))
 *		return -1;
 */
WEFT_API bool weft_test_check(bool ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Check `expr`; on failure record it (its text, file, line), cancel the
 * body and `return NULL` from the enclosing function -- a task body or
 * anything returning a pointer.  Other functions use weft_test_check().
 * The return skips the rest of the function: check after weft_scope_exit,
 * an unlock or a join, not between them (take the value, clean up, then
 * check).  Tasks the body spawned outlive it until the runtime's shutdown
 * cancels them; a body that shares its locals with them waits for them,
 * e.g. with a task group (weft_group_wait cancels the children of a
 * cancelled waiter and still waits for them). */
#define WEFT_TEST_CHECK(expr)                                                       \
	do {                                                                        \
		if (!weft_test_check(!!(expr), __FILE__, __LINE__, "%s", #expr))    \
			return NULL;                                                \
	} while (0)

/* Check `a op b` (op: == != < <= > >=) on integers converted to intmax_t
 * (_INT) or uintmax_t (_UINT); the failure shows both values:
 * WEFT_TEST_CHECK_INT(r, ==, 0) fails with "r == 0 (-110 vs 0)".  Each
 * operand is evaluated once. */
#define WEFT_TEST_CHECK_INT(a, op, b)                                               \
	WEFT_TEST_CHECK_CMP_(intmax_t, "%jd", a, op, b, #a " " #op " " #b)
#define WEFT_TEST_CHECK_UINT(a, op, b)                                              \
	WEFT_TEST_CHECK_CMP_(uintmax_t, "%ju", a, op, b, #a " " #op " " #b)

/* (Both, through one; the text is made above, before a's macros expand.) */
#define WEFT_TEST_CHECK_CMP_(type, spec, a, op, b, text)                            \
	do {                                                                        \
		type weft_a_ = (type)(a), weft_b_ = (type)(b);                      \
		if (!weft_test_check(weft_a_ op weft_b_, __FILE__, __LINE__,        \
				     "%s (" spec " vs " spec ")", text, weft_a_,   \
				     weft_b_))                                      \
			return NULL;                                                \
	} while (0)

/* Fail unconditionally with a printf-style message, and `return NULL`. */
#define WEFT_TEST_FAIL(...)                                                         \
	do {                                                                        \
		weft_test_check(false, __FILE__, __LINE__, __VA_ARGS__);            \
		return NULL;                                                        \
	} while (0)

#ifdef __cplusplus
}
#endif

#endif
