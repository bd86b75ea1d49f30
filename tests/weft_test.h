/*
 * Shared harness for weft's cmocka suites.
 *
 * Every suite's main() is WEFT_TEST_MAIN(tests): `suite --list` prints the
 * test names and `suite NAME` runs only that test, so tests/run.sh can run
 * each test in its own process with a timeout (libuv style).
 *
 * docs/architecture.md rule 7: cmocka's failing assertion longjmps to the
 * test's own stack, so never assert inside a task or on a loop thread.
 * Record into a struct, join, then assert on the test's stack.
 */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "weft.h"

/* Scale for stress sizes: sanitizer builds run fewer iterations where the
 * issue allows it, but never fewer than the floor a test documents. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define WEFT_TEST_SANITIZED 1
#endif
#endif
#ifndef WEFT_TEST_SANITIZED
#define WEFT_TEST_SANITIZED 0
#endif
/* TSan alone: it makes some paths (a task's stack, a fiber to TSan) far
 * dearer than ASan does. */
#if defined(__SANITIZE_THREAD__)
#define WEFT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TEST_TSAN 1
#endif
#endif
#ifndef WEFT_TEST_TSAN
#define WEFT_TEST_TSAN 0
#endif

#if defined(__x86_64__)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
/* libunwind, which stall reports and task dumps use on x86_64, opens a
 * pipe for its memory probe the first time it unwinds and keeps it for
 * the life of the process.  Opened here, before any test takes its
 * baseline of open fds, so that a stall report in the middle of a test
 * (a slow sanitizer build) does not count as two leaked fds. */
static inline void weft_test_open_unwinder(void)
{
	unw_context_t uc;
	unw_cursor_t cur;
	if (unw_getcontext(&uc) == 0)
		unw_init_local(&cur, &uc);
}
#else
static inline void weft_test_open_unwinder(void)
{
}
#endif

static inline int weft_test_main(const struct CMUnitTest *tests, size_t n, const char *group,
				 int argc, char **argv)
{
	weft_test_open_unwinder();
	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}

#define WEFT_TEST_MAIN(tests)                                                          \
	int main(int argc, char **argv)                                                \
	{                                                                              \
		return weft_test_main(tests, sizeof(tests) / sizeof(tests[0]), __FILE__, \
				      argc, argv);                                     \
	}

/* Integers through void * results, and milliseconds in ns. */
#define P(x) ((void *)(uintptr_t)(x))
#define U(p) ((uintptr_t)(p))
#define MS 1000000ull

/* Block the calling (test or foreign) thread; never call it in a task. */
static inline void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Write `text` to the file dir/name (created or truncated). */
static inline void weft_test_write_file(const char *dir, const char *name, const char *text)
{
	char p[4096 + 64];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A running runtime with `loops` loops, for tests that drive it from the
 * test thread (weft_runtime_destroy it at the end). */
static inline weft_runtime *start_rt(unsigned loops)
{
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = loops;
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	assert_non_null(rt);
	return rt;
}

/* Run fn(arg) as main of a fresh runtime with `loops` loops; assert success.
 * (The public helper with a time limit and checks is weft/test.h's
 * weft_test_run; suites may use either.) */
static inline void *weft_test_run_loops(unsigned loops, weft_fn fn, void *arg)
{
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = loops;
	void *res = NULL;
	int r = weft_run(&cfg, fn, arg, &res);
	assert_int_equal(r, 0);
	return res;
}

/*
 * Runs in which no new task stack can be had, while everything else still
 * works (the tests of tasks that must run: always_run spawns take their
 * stack at spawn).  A runtime from weft_test_stackless_config() has huge
 * default stacks (MAP_NORESERVE: free until touched), guard pages always
 * (no slab fallback) and no stack pool, so every stack is a fresh mapping
 * of WEFT_TEST_BIG_STACK bytes.  weft_test_cap_as() then lowers RLIMIT_AS
 * to the address space in use plus WEFT_TEST_AS_ROOM: ordinary allocations
 * fit, a stack does not.  Sanitizer runtimes reserve terabytes up front,
 * which the cap counts in, so it works in every tree.
 */
enum { WEFT_TEST_BIG_STACK = 256u << 20, WEFT_TEST_AS_ROOM = 128u << 20 };

static inline void weft_test_stackless_config(weft_runtime_config *c, unsigned loops)
{
	weft_runtime_config_init(c);
	c->loops = loops;
	c->stack_size = WEFT_TEST_BIG_STACK;
	c->stack_guard = WEFT_GUARD_ALWAYS;
	c->stack_pool_max = 0;
}

/* weft_test_run_loops() on a runtime from weft_test_stackless_config(). */
static inline void weft_test_run_stackless(unsigned loops, weft_fn fn, void *arg)
{
	weft_runtime_config cfg;
	weft_test_stackless_config(&cfg, loops);
	assert_int_equal(weft_run(&cfg, fn, arg, NULL), 0);
}

/* Cap the address space as above; returns the soft limit to restore with
 * weft_test_uncap_as() (RLIM_INFINITY usually), or 0 if the cap could not
 * be set or is not enforced (qemu-user ignores RLIMIT_AS): the caller then
 * skips with WEFT_TEST_SKIP_UNCAPPED.  Any thread; the cap is the whole
 * process's. */
static inline rlim_t weft_test_cap_as(size_t room)
{
	struct rlimit old;
	if (getrlimit(RLIMIT_AS, &old) != 0)
		return 0;
	/* Memory unmapped between reading the size and the probe (a task's
	 * stack going back) widens the room: measure again. */
	for (int attempt = 0; attempt < 20; attempt++) {
		FILE *f = fopen("/proc/self/status", "r");
		if (!f)
			return 0;
		char line[256];
		unsigned long long kb = 0;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
				break;
		fclose(f);
		struct rlimit cap = old;
		cap.rlim_cur = (rlim_t)kb * 1024 + room;
		if (!kb || (old.rlim_max != RLIM_INFINITY && cap.rlim_cur > old.rlim_max) ||
		    setrlimit(RLIMIT_AS, &cap) != 0)
			return 0;
		void *p = mmap(NULL, WEFT_TEST_BIG_STACK, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return old.rlim_cur;
		munmap(p, WEFT_TEST_BIG_STACK);
		setrlimit(RLIMIT_AS, &old);
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
	return 0; /* never enforced */
}

#define WEFT_TEST_SKIP_UNCAPPED(capped)                                                  \
	do {                                                                             \
		if (!(capped)) {                                                         \
			print_message("skip: RLIMIT_AS cannot be lowered or is not "     \
				      "enforced here (qemu-user ignores it)\n");        \
			skip();                                                          \
		}                                                                        \
	} while (0)

static inline void weft_test_uncap_as(rlim_t old)
{
	struct rlimit l;
	if (!old || getrlimit(RLIMIT_AS, &l) != 0)
		return;
	l.rlim_cur = old;
	setrlimit(RLIMIT_AS, &l);
}

#endif
