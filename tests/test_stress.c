/*
 * Stress tests through the public API, on 2+ loops (issue 2, section 7):
 *
 *  1. cross-loop wakeups: >= 1,000,000 future hand-offs between tasks
 *     pinned to different loops, none lost (also under TSan);
 *     plus a variant with spin_us = 0 so every idle loop really parks;
 *  2. spawn storms with stealing: 100k short CPU-bound tasks from one task,
 *     all counted and the joined ones' results checked; steals happened;
 *  3. cancellation racing completion: a waiter's outcome is exactly one of
 *     {value, -ECANCELED, -ETIMEDOUT} consistent with what the other
 *     parties saw; and cancellation racing a sleeping task's timer;
 *  4. migration: after every resume, weft_loop_index() agrees with the
 *     loop found through pthread_self(); migrations are counted;
 *  5. shutdown with tasks in flight on every loop: every task observes
 *     cancellation, shielded cleanup completes, late spawns get -ESHUTDOWN;
 *  6. foreign threads hammering weft_runtime_spawn, weft_future_set_result
 *     and blocking waits concurrently with the loops;
 *  plus: the inject queue is not starved by loops kept busy with local
 *  work (the 61-tick global-queue check), and start immediately followed
 *  by shutdown never deadlocks.
 *
 * docs/architecture.md rule 7: no cmocka assertion runs in a task or on a
 * helper thread.  Tasks and helpers record into atomics; the test's own
 * thread joins them (with timeouts, so a lost wakeup fails instead of
 * hanging) and asserts.  Built with -O2 in the plain tree: rule-2 (TLS
 * caching across a suspension) bugs only show with optimisation.
 */
#include "weft_test.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define SEC 1000000000ull
#define MS 1000000ull
#define US 1000ull

/* Generous per-join limit: a lost wakeup fails the test here rather than
 * at run.sh's timeout, and says where. */
#define JOIN_LIMIT (WEFT_TEST_SANITIZED ? 200 * SEC : 60 * SEC)

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static weft_runtime *rt_start(unsigned loops, int spin_us)
{
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = loops;
	if (spin_us >= 0)
		cfg.spin_us = (unsigned)spin_us;
	weft_runtime *rt = NULL;
	int r = weft_runtime_start(&rt, &cfg);
	if (r == -ENOSYS || r == -EPERM)
		skip(); /* io_uring unavailable here */
	assert_int_equal(r, 0);
	assert_non_null(rt);
	return rt;
}

static inline uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static inline void relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

static inline void spin(uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		relax();
}

/* CPU work the compiler cannot drop. */
static uint64_t work(uint32_t n, uint64_t seed)
{
	volatile uint64_t x = seed | 1;
	for (uint32_t i = 0; i < n; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x;
}

static uint64_t loop_stat_sum(const weft_runtime_stats *st, size_t off)
{
	uint64_t s = 0;
	for (unsigned i = 0; i < st->loops && i < 64; i++)
		s += *(const uint64_t *)((const char *)&st->loop[i] + off);
	return s;
}
#define STAT_SUM(st, field) loop_stat_sum(st, offsetof(weft_loop_stats, field))

static weft_task *spawn_pinned(weft_runtime *rt, int pin, weft_fn fn, void *arg)
{
	weft_task_config c;
	weft_task_config_init(&c);
	c.pin = pin;
	weft_task *t = NULL;
	int r = weft_runtime_spawn(rt, &t, &c, fn, arg);
	assert_int_equal(r, 0);
	return t;
}

static void *shutdown_thread(void *arg)
{
	return (void *)(intptr_t)weft_runtime_shutdown(arg);
}

/* weft_runtime_shutdown from a helper thread, waiting at most `secs`
 * (longer under sanitizers): a hang fails the test instead of stalling
 * until run.sh's timeout.  Returns shutdown's result or -ETIMEDOUT. */
static int shutdown_bounded(weft_runtime *rt, int secs)
{
	pthread_t th;
	if (pthread_create(&th, NULL, shutdown_thread, rt) != 0)
		return -EAGAIN;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WEFT_TEST_SANITIZED ? 4 * secs : secs;
	void *r = NULL;
	if (pthread_timedjoin_np(th, &r, &dl) != 0) {
		weft_runtime_stats st;
		weft_runtime_stats_get(rt, &st);
		print_message("weft_runtime_shutdown hung: %llu tasks still live\n",
			      (unsigned long long)st.tasks_live);
		return -ETIMEDOUT;
	}
	return (int)(intptr_t)r;
}

/* Record the first anomaly's description (helpers and tasks may call). */
static pthread_mutex_t note_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_note[256];
static _Atomic uint64_t notes;

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
	if (atomic_fetch_add(&notes, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		pthread_mutex_lock(&note_mu);
		vsnprintf(first_note, sizeof(first_note), fmt, ap);
		pthread_mutex_unlock(&note_mu);
		va_end(ap);
	}
}

static void notes_reset(void)
{
	atomic_store(&notes, 0);
	first_note[0] = 0;
}

/* On the test's thread: print the first anomaly, then fail if any. */
static void assert_no_notes(void)
{
	uint64_t n = atomic_load(&notes);
	if (n) {
		pthread_mutex_lock(&note_mu);
		print_message("%llu anomalies; first: %s\n", (unsigned long long)n, first_note);
		pthread_mutex_unlock(&note_mu);
	}
	assert_int_equal(n, 0);
}

/* ------------------------------------------------------------------------ */
/* 1. cross-loop wakeups                                                     */
/* ------------------------------------------------------------------------ */

/*
 * A and B are pinned to different loops and bounce a message through a
 * fresh future per hop; the message is the future the answer must go to:
 *   A: reply = create(); set(to_b, reply); wait(reply) -> next; to_b = next
 *   B: wait(cur) -> reply; next = create(); set(reply, next); cur = next
 * Every hop wakes a task on the other loop, so a round is two cross-loop
 * wakeups.  Each future is referenced by both sides.
 */
struct pair {
	weft_future *first;
	uint64_t rounds;
	_Atomic uint64_t a_rounds, b_rounds;
	_Atomic uint64_t pending_waits; /* waits that found the future pending */
};

static void *pp_ping(void *arg)
{
	struct pair *p = arg;
	weft_future *to_b = p->first;
	uint64_t pending = 0;
	for (uint64_t i = 0; i < p->rounds; i++) {
		weft_future *reply;
		void *next = NULL;
		int r = weft_future_create(&reply);
		if (r < 0) {
			note("ping: future_create %d", r);
			return NULL;
		}
		weft_future_ref(reply); /* B's reference */
		r = weft_future_set_result(to_b, reply);
		weft_future_release(to_b);
		if (r < 0) {
			note("ping: set_result %d at round %llu", r, (unsigned long long)i);
			weft_future_release(reply);
			weft_future_release(reply);
			return NULL;
		}
		pending += !weft_future_done(reply);
		r = weft_future_wait(reply, &next);
		weft_future_release(reply);
		if (r < 0 || !next) {
			note("ping: wait %d next %p at round %llu", r, next,
			     (unsigned long long)i);
			return NULL;
		}
		to_b = next;
		atomic_store_explicit(&p->a_rounds, i + 1, memory_order_relaxed);
	}
	atomic_fetch_add(&p->pending_waits, pending);
	weft_future_set_result(to_b, NULL); /* stop */
	weft_future_release(to_b);
	return NULL;
}

static void *pp_pong(void *arg)
{
	struct pair *p = arg;
	weft_future *cur = p->first;
	uint64_t n = 0, pending = 0;
	for (;;) {
		void *reply = NULL;
		weft_future *next;
		pending += !weft_future_done(cur);
		int r = weft_future_wait(cur, &reply);
		weft_future_release(cur);
		if (r < 0) {
			note("pong: wait %d at round %llu", r, (unsigned long long)n);
			return NULL;
		}
		if (!reply)
			break;
		r = weft_future_create(&next);
		if (r < 0) {
			note("pong: future_create %d", r);
			weft_future_release(reply);
			return NULL;
		}
		weft_future_ref(next); /* A's reference */
		r = weft_future_set_result(reply, next);
		weft_future_release(reply);
		if (r < 0) {
			note("pong: set_result %d", r);
			return NULL;
		}
		cur = next;
		atomic_store_explicit(&p->b_rounds, ++n, memory_order_relaxed);
	}
	atomic_fetch_add(&p->pending_waits, pending);
	return NULL;
}

/* npairs pairs on `loops` loops, pair i's A on loop i % loops and B on the
 * next loop; returns the number of wakeups done. */
static uint64_t pingpong_run(unsigned loops, int spin_us, unsigned npairs, uint64_t rounds)
{
	notes_reset();
	weft_runtime *rt = rt_start(loops, spin_us);
	struct pair *p = calloc(npairs, sizeof(*p));
	weft_task **ta = calloc(npairs, sizeof(*ta)), **tb = calloc(npairs, sizeof(*tb));
	assert_non_null(p);
	uint64_t t0 = weft_now_ns();
	for (unsigned i = 0; i < npairs; i++) {
		p[i].rounds = rounds;
		assert_int_equal(weft_future_create(&p[i].first), 0);
		weft_future_ref(p[i].first);
		tb[i] = spawn_pinned(rt, (int)((i + 1) % loops), pp_pong, &p[i]);
		ta[i] = spawn_pinned(rt, (int)(i % loops), pp_ping, &p[i]);
	}
	int ja[64], jb[64];
	for (unsigned i = 0; i < npairs; i++) {
		ja[i] = weft_task_join_timeout(ta[i], NULL, JOIN_LIMIT);
		jb[i] = weft_task_join_timeout(tb[i], NULL, JOIN_LIMIT);
	}
	uint64_t dt = weft_now_ns() - t0;
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	assert_int_equal(shutdown_bounded(rt, 30), 0);

	uint64_t done = 0, pending = 0;
	for (unsigned i = 0; i < npairs; i++) {
		if (ja[i] || jb[i])
			print_message("pair %u: join %s / %s after A %llu, B %llu of %llu rounds\n",
				      i, weft_strerror(ja[i]), weft_strerror(jb[i]),
				      (unsigned long long)atomic_load(&p[i].a_rounds),
				      (unsigned long long)atomic_load(&p[i].b_rounds),
				      (unsigned long long)rounds);
		done += 2 * atomic_load(&p[i].a_rounds);
		pending += atomic_load(&p[i].pending_waits);
	}
	print_message("%u loops (spin_us %d), %u pairs: %llu cross-loop wakeups in %.2f s "
		      "(%.0f ns each); %llu waits found their future pending; "
		      "loops parked %llu times, sent %llu wakes\n",
		      loops, spin_us, npairs, (unsigned long long)done, dt / 1e9,
		      done ? (double)dt / (double)done : 0.0, (unsigned long long)pending,
		      (unsigned long long)STAT_SUM(&st, parks),
		      (unsigned long long)STAT_SUM(&st, wakeups_sent));
	assert_no_notes();
	for (unsigned i = 0; i < npairs; i++) {
		assert_int_equal(ja[i], 0);
		assert_int_equal(jb[i], 0);
		assert_int_equal(atomic_load(&p[i].a_rounds), rounds);
		assert_int_equal(atomic_load(&p[i].b_rounds), rounds);
		weft_task_release(ta[i]);
		weft_task_release(tb[i]);
	}
	weft_runtime_destroy(rt);
	free(p);
	free(ta);
	free(tb);
	return done;
}

/* At least a million cross-loop wakeups, in every build. */
static void stress_wakeups_million(void **state)
{
	(void)state;
	const unsigned npairs = 8;
	const uint64_t rounds = 65536; /* 8 pairs x 65536 rounds x 2 = 1,048,576 */
	uint64_t done = pingpong_run(2, -1, npairs, rounds);
	assert_true(done >= 1000000);
}

/* No idle spinning: every loop that runs dry parks in io_uring_enter and
 * must be woken (MSG_RING from a loop); three loops on two cores, so
 * loops are also preempted mid-handshake. */
static void stress_wakeups_parking(void **state)
{
	(void)state;
	const uint64_t rounds = WEFT_TEST_SANITIZED ? 15000 : 50000;
	pingpong_run(3, 0, 3, rounds);
}

/* ------------------------------------------------------------------------ */
/* 2. spawn storm with stealing                                              */
/* ------------------------------------------------------------------------ */

struct storm {
	unsigned n;
	uint32_t work;
	unsigned every_joined; /* every k-th child is spawned with a handle */
	_Atomic uint64_t done, yields_failed;
	_Atomic uint64_t ran_on[8];
	weft_future *all_done;
	weft_task **handles;
	int spawn_err;
	unsigned join_bad;
};

static struct storm *g_storm;

static void *storm_child(void *arg)
{
	struct storm *s = g_storm;
	uintptr_t i = (uintptr_t)arg;
	int li = weft_loop_index();
	if (li >= 0 && li < 8)
		atomic_fetch_add_explicit(&s->ran_on[li], 1, memory_order_relaxed);
	uint64_t x = work(s->work, i);
	if (i % 4 == 0) { /* some children yield mid-work */
		if (weft_yield() != 0)
			atomic_fetch_add(&s->yields_failed, 1);
		x ^= work(s->work, x);
	}
	(void)x;
	if (atomic_fetch_add(&s->done, 1) + 1 == s->n)
		weft_future_set_result(s->all_done, (void *)1);
	return (void *)(i * 2 + 1);
}

static void *storm_main(void *arg)
{
	struct storm *s = arg;
	for (unsigned i = 0; i < s->n; i++) {
		weft_task **out = i % s->every_joined == 0 ? &s->handles[i / s->every_joined] : NULL;
		int r = weft_task_spawn(out, storm_child, (void *)(uintptr_t)i);
		if (r < 0) {
			s->spawn_err = r;
			note("spawn %u: %d", i, r);
			break;
		}
		/* Batches that fit the 256-slot ring: the other loop must steal
		 * (not just drain the inject queue) to help. */
		if (i % 128 == 127 && weft_yield() != 0)
			note("storm_main: yield failed");
	}
	void *v = NULL;
	int r = weft_future_wait_timeout(s->all_done, &v, JOIN_LIMIT);
	if (r != 0 || v != (void *)1)
		note("storm_main: all_done wait %d (done %llu of %u)", r,
		     (unsigned long long)atomic_load(&s->done), s->n);
	for (unsigned k = 0; k * s->every_joined < s->n; k++) {
		void *res = NULL;
		if (!s->handles[k])
			continue;
		r = weft_task_join(s->handles[k], &res);
		if (r != 0 || res != (void *)(uintptr_t)(k * s->every_joined * 2 + 1))
			s->join_bad++;
		weft_task_release(s->handles[k]);
		s->handles[k] = NULL;
	}
	return NULL;
}

static void stress_spawn_storm(void **state)
{
	(void)state;
	notes_reset();
	struct storm s = { 0 };
	/* TSan: a quarter of the sanitizer size.  A task's stack is a fiber
	 * to TSan, whose creation and switches dominate (50000 tasks took 38 s
	 * of make test's 15 minutes); races show on each path run once, and
	 * the full storm runs in every other tree. */
	s.n = WEFT_TEST_TSAN ? 12500 : WEFT_TEST_SANITIZED ? 50000 : 100000;
	s.work = WEFT_TEST_SANITIZED ? 500 : 3000;
	s.every_joined = 8;
	s.handles = calloc(s.n / s.every_joined + 1, sizeof(*s.handles));
	assert_int_equal(weft_future_create(&s.all_done), 0);
	g_storm = &s;

	weft_runtime *rt = rt_start(2, -1);
	uint64_t t0 = weft_now_ns();
	weft_task *m = NULL;
	assert_int_equal(weft_runtime_spawn(rt, &m, NULL, storm_main, &s), 0);
	int jr = weft_task_join_timeout(m, NULL, JOIN_LIMIT);
	uint64_t dt = weft_now_ns() - t0;
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	assert_int_equal(shutdown_bounded(rt, 30), 0);
	weft_runtime_stats st2;
	weft_runtime_stats_get(rt, &st2);

	print_message("%u tasks in %.2f s; ran on loop0 %llu, loop1 %llu; %llu steals took "
		      "%llu tasks; spawned %llu\n",
		      s.n, dt / 1e9, (unsigned long long)atomic_load(&s.ran_on[0]),
		      (unsigned long long)atomic_load(&s.ran_on[1]),
		      (unsigned long long)STAT_SUM(&st, steals),
		      (unsigned long long)STAT_SUM(&st, tasks_stolen),
		      (unsigned long long)st.tasks_spawned);
	assert_int_equal(jr, 0);
	assert_no_notes();
	assert_int_equal(s.spawn_err, 0);
	assert_int_equal(atomic_load(&s.done), s.n);
	assert_int_equal(s.join_bad, 0);
	assert_int_equal(atomic_load(&s.yields_failed), 0);
	assert_int_equal(atomic_load(&s.ran_on[0]) + atomic_load(&s.ran_on[1]), s.n);
	assert_true(st.tasks_spawned >= s.n + 1);
	/* Each child works for microseconds and the spawner queues them in
	 * ring-sized batches: the idle loop must have stolen. */
	assert_true(STAT_SUM(&st, steals) > 0);
	assert_true(STAT_SUM(&st, tasks_stolen) >= STAT_SUM(&st, steals));
	assert_true(atomic_load(&s.ran_on[0]) > 0 && atomic_load(&s.ran_on[1]) > 0);
	assert_int_equal(st2.tasks_live, 0);

	weft_task_release(m);
	weft_runtime_destroy(rt);
	weft_future_release(s.all_done);
	free(s.handles);
}

/* ------------------------------------------------------------------------ */
/* 3. cancellation racing completion                                         */
/* ------------------------------------------------------------------------ */

#define RACE_VAL ((void *)0xfeed)

enum {
	MODE_TASK_CANCEL,   /* setter vs weft_task_cancel(waiter) */
	MODE_FUTURE_CANCEL, /* setter vs weft_future_cancel(f) */
	MODE_BOTH,          /* setter vs both cancels */
	MODE_TIMEOUT,       /* setter vs the waiter's own timeout */
	MODE_COUNT,
};

struct race {
	weft_future *f;
	int mode;
	uint32_t set_delay;      /* pause-loops before setting */
	uint64_t timeout_ns;     /* MODE_TIMEOUT */
	_Atomic uint64_t ready_ns; /* waiter is about to wait (0: not yet) */
	_Atomic int w_rc, set_rc, w_done;
	_Atomic uintptr_t w_val;
	_Atomic uint64_t w_elapsed;
};

static void *race_waiter(void *arg)
{
	struct race *x = arg;
	void *v = NULL;
	uint64_t t0 = weft_now_ns();
	atomic_store(&x->ready_ns, t0);
	int r = x->mode == MODE_TIMEOUT ? weft_future_wait_timeout(x->f, &v, x->timeout_ns)
					: weft_future_wait(x->f, &v);
	atomic_store(&x->w_elapsed, weft_now_ns() - t0);
	atomic_store(&x->w_val, (uintptr_t)v);
	atomic_store(&x->w_rc, r);
	atomic_store(&x->w_done, 1);
	return NULL;
}

static void *race_setter(void *arg)
{
	struct race *x = arg;
	uint64_t ready;
	uint32_t n = 0;
	while (!(ready = atomic_load(&x->ready_ns))) {
		/* Let anything else on this loop run; give up if cancelled
		 * (the test thread does that when the waiter never starts). */
		if (++n % 1024 == 0 && weft_yield() != 0) {
			atomic_store(&x->set_rc, -ESRCH);
			return NULL;
		}
	}
	if (x->mode == MODE_TIMEOUT) {
		/* Aim at the waiter's deadline, a little before or after. */
		uint64_t at = ready + x->timeout_ns - 2 * US + x->set_delay * 4;
		while (weft_now_ns() < at)
			relax();
	} else {
		spin(x->set_delay);
	}
	atomic_store(&x->set_rc, weft_future_set_result(x->f, RACE_VAL));
	return NULL;
}

static uint32_t race_delay(uint32_t *seed)
{
	uint32_t r = rnd(seed);
	/* Mostly within the hand-off window (sub-microsecond), sometimes
	 * well past it. */
	return (r & 7) ? (r >> 8) % 64 : (r >> 8) % 2000;
}

static void stress_cancel_vs_complete(void **state)
{
	(void)state;
	notes_reset();
	const unsigned rounds = WEFT_TEST_SANITIZED ? 12000 : 20000;
	weft_runtime *rt = rt_start(2, -1);
	uint32_t seed = 0x2545f491;
	uint64_t outcome[MODE_COUNT][3] = { { 0 } }; /* value, cancelled, timed out */
	uint64_t hung = 0, bad = 0;
	uint64_t t0 = weft_now_ns();

	for (unsigned round = 0; round < rounds && !hung; round++) {
		struct race x;
		memset(&x, 0, sizeof(x));
		x.mode = (int)(round % MODE_COUNT);
		x.set_delay = race_delay(&seed);
		x.timeout_ns = 20 * US;
		atomic_store(&x.set_rc, 1);
		atomic_store(&x.w_rc, 1);
		assert_int_equal(weft_future_create(&x.f), 0);
		/* The waiter: pinned to loop 0 or stealable; the setter pinned
		 * to loop 1; the canceller is this (foreign) thread. */
		weft_task *w = spawn_pinned(rt, (round / MODE_COUNT) % 2 ? 0 : WEFT_PIN_NONE,
					    race_waiter, &x);
		weft_task *s = spawn_pinned(rt, 1, race_setter, &x);
		uint32_t cancel_delay = race_delay(&seed);
		uint64_t wait0 = weft_now_ns();
		while (!atomic_load(&x.ready_ns) && weft_now_ns() - wait0 < 10 * SEC)
			sched_yield();
		if (!atomic_load(&x.ready_ns)) {
			weft_runtime_stats st;
			weft_runtime_stats_get(rt, &st);
			print_message("round %u mode %d: the waiter (pin %d) did not start in 10 s "
				      "(done %d, setter done %d; live %llu; tasks_run %llu/%llu, "
				      "parks %llu/%llu)\n",
				      round, x.mode, (round / MODE_COUNT) % 2 ? 0 : WEFT_PIN_NONE,
				      weft_task_done(w), weft_task_done(s),
				      (unsigned long long)st.tasks_live,
				      (unsigned long long)st.loop[0].tasks_run,
				      (unsigned long long)st.loop[1].tasks_run,
				      (unsigned long long)st.loop[0].parks,
				      (unsigned long long)st.loop[1].parks);
			hung++;
			weft_task_cancel(w);
			weft_task_cancel(s);
			int jw = weft_task_join_timeout(w, NULL, 10 * SEC);
			int js = weft_task_join_timeout(s, NULL, 10 * SEC);
			print_message("  after cancelling both: waiter join %s, setter join %s\n",
				      weft_strerror(jw), weft_strerror(js));
			break;
		}
		spin(cancel_delay);
		int c_rc = 1, fc_rc = 1;
		if (x.mode == MODE_TASK_CANCEL || x.mode == MODE_BOTH)
			c_rc = weft_task_cancel(w);
		if (x.mode == MODE_FUTURE_CANCEL || x.mode == MODE_BOTH)
			fc_rc = weft_future_cancel(x.f);
		int jw = weft_task_join_timeout(w, NULL, JOIN_LIMIT);
		int js = weft_task_join_timeout(s, NULL, JOIN_LIMIT);
		if (jw == -ETIMEDOUT || js == -ETIMEDOUT) {
			print_message("round %u mode %d: join timed out (waiter %s, setter %s)\n",
				      round, x.mode, weft_strerror(jw), weft_strerror(js));
			hung++;
			break;
		}
		int r = atomic_load(&x.w_rc), set_rc = atomic_load(&x.set_rc);
		void *v = (void *)atomic_load(&x.w_val);
		bool ok = atomic_load(&x.w_done) == 1;
		switch (x.mode) {
		case MODE_TASK_CANCEL:
			ok = ok && set_rc == 0 &&
			     ((r == 0 && v == RACE_VAL && jw == 0 &&
			       (c_rc == 0 || c_rc == -EALREADY)) ||
			      (r == -ECANCELED && c_rc == 0 && jw == -ECANCELED));
			break;
		case MODE_FUTURE_CANCEL:
			/* Exactly one completion wins and the waiter saw it. */
			ok = ok && jw == 0 &&
			     ((set_rc == 0 && fc_rc == -EALREADY && r == 0 && v == RACE_VAL) ||
			      (fc_rc == 0 && set_rc == -EALREADY && r == -ECANCELED));
			break;
		case MODE_BOTH:
			ok = ok && ((set_rc == 0) != (fc_rc == 0)) &&
			     (set_rc == 0 || set_rc == -EALREADY) &&
			     (fc_rc == 0 || fc_rc == -EALREADY) &&
			     (c_rc == 0 || c_rc == -EALREADY) &&
			     ((r == 0 && v == RACE_VAL && set_rc == 0 && jw == 0) ||
			      (r == -ECANCELED && (c_rc == 0 || fc_rc == 0) &&
			       (jw == 0 || (jw == -ECANCELED && c_rc == 0))));
			break;
		case MODE_TIMEOUT:
			ok = ok && set_rc == 0 && jw == 0 &&
			     ((r == 0 && v == RACE_VAL) ||
			      (r == -ETIMEDOUT && atomic_load(&x.w_elapsed) >= x.timeout_ns));
			break;
		}
		if (js != 0)
			ok = false;
		if (!ok) {
			if (!bad)
				print_message("round %u mode %d: waiter rc %s val %p, join %s; "
					      "set %s, task cancel %d, future cancel %d, setter "
					      "join %s\n",
					      round, x.mode, weft_strerror(r), v, weft_strerror(jw),
					      weft_strerror(set_rc), c_rc, fc_rc, weft_strerror(js));
			bad++;
		}
		outcome[x.mode][r == 0 ? 0 : r == -ECANCELED ? 1 : 2]++;
		weft_task_release(w);
		weft_task_release(s);
		weft_future_release(x.f);
	}
	uint64_t dt = weft_now_ns() - t0;
	assert_int_equal(shutdown_bounded(rt, 30), 0);
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	weft_runtime_destroy(rt);

	static const char *names[] = { "task cancel", "future cancel", "both", "timeout" };
	print_message("%u rounds in %.2f s\n", rounds, dt / 1e9);
	for (int m = 0; m < MODE_COUNT; m++)
		print_message("  %-13s value %llu, cancelled %llu, timed out %llu\n", names[m],
			      (unsigned long long)outcome[m][0], (unsigned long long)outcome[m][1],
			      (unsigned long long)outcome[m][2]);
	assert_int_equal(hung, 0);
	assert_int_equal(bad, 0);
	assert_int_equal(st.tasks_live, 0);
	/* Both sides of each race were hit. */
	assert_true(outcome[MODE_TASK_CANCEL][0] > 0 && outcome[MODE_TASK_CANCEL][1] > 0);
	assert_true(outcome[MODE_FUTURE_CANCEL][0] > 0 && outcome[MODE_FUTURE_CANCEL][1] > 0);
	assert_true(outcome[MODE_TIMEOUT][0] > 0 && outcome[MODE_TIMEOUT][2] > 0);
}

/* Cancel racing a sleeping task's timer expiry. */
struct sleeper {
	uint64_t ns;
	_Atomic uint64_t ready_ns;
	_Atomic int rc, done;
	_Atomic uint64_t elapsed;
};

static void *race_sleeper(void *arg)
{
	struct sleeper *x = arg;
	uint64_t t0 = weft_now_ns();
	atomic_store(&x->ready_ns, t0);
	int r = weft_sleep(x->ns);
	atomic_store(&x->elapsed, weft_now_ns() - t0);
	atomic_store(&x->rc, r);
	atomic_store(&x->done, 1);
	return NULL;
}

static void stress_cancel_vs_timer(void **state)
{
	(void)state;
	const unsigned rounds = WEFT_TEST_SANITIZED ? 10000 : 20000;
	weft_runtime *rt = rt_start(2, -1);
	uint32_t seed = 0x9e3779b9;
	uint64_t slept = 0, cancelled = 0, bad = 0, hung = 0;
	uint64_t t0 = weft_now_ns();
	for (unsigned round = 0; round < rounds && !hung; round++) {
		struct sleeper x;
		memset(&x, 0, sizeof(x));
		x.ns = 20 * US + rnd(&seed) % (30 * US);
		atomic_store(&x.rc, 1);
		int pin = round % 3 == 2 ? WEFT_PIN_NONE : (int)(round % 2);
		weft_task *w = spawn_pinned(rt, pin, race_sleeper, &x);
		uint64_t ready, wait0 = weft_now_ns();
		while (!(ready = atomic_load(&x.ready_ns))) {
			if (weft_now_ns() - wait0 > 10 * SEC) {
				hung++;
				break;
			}
			sched_yield();
		}
		/* Cancel around the expiry: from 20 us early to 50 us late
		 * (a parked loop's timer can fire a little late). */
		uint64_t at = ready + x.ns - 20 * US + rnd(&seed) % (70 * US);
		while (weft_now_ns() < at)
			relax();
		int c_rc = weft_task_cancel(w);
		int jw = weft_task_join_timeout(w, NULL, JOIN_LIMIT);
		if (jw == -ETIMEDOUT) {
			print_message("round %u: sleeper never finished\n", round);
			hung++;
			break;
		}
		int r = atomic_load(&x.rc);
		bool ok = atomic_load(&x.done) == 1 &&
			  ((r == 0 && atomic_load(&x.elapsed) >= x.ns && jw == 0 &&
			    (c_rc == 0 || c_rc == -EALREADY)) ||
			   (r == -ECANCELED && c_rc == 0 && jw == -ECANCELED));
		if (!ok) {
			if (!bad)
				print_message("round %u: sleep(%llu ns) rc %s after %llu ns, cancel "
					      "%s, join %s\n",
					      round, (unsigned long long)x.ns, weft_strerror(r),
					      (unsigned long long)atomic_load(&x.elapsed),
					      weft_strerror(c_rc), weft_strerror(jw));
			bad++;
		}
		if (r == 0)
			slept++;
		else if (r == -ECANCELED)
			cancelled++;
		weft_task_release(w);
	}
	uint64_t dt = weft_now_ns() - t0;
	assert_int_equal(shutdown_bounded(rt, 30), 0);
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	weft_runtime_destroy(rt);
	print_message("%u rounds in %.2f s: slept %llu, cancelled %llu; %llu timers fired\n",
		      rounds, dt / 1e9, (unsigned long long)slept, (unsigned long long)cancelled,
		      (unsigned long long)STAT_SUM(&st, timers_fired));
	assert_int_equal(hung, 0);
	assert_int_equal(bad, 0);
	assert_int_equal(st.tasks_live, 0);
	assert_true(slept > 0);
	assert_true(cancelled > 0);
}

/*
 * A cancelled task inside a shielded section still suspends for real: its
 * weft_yield() reports no cancellation but must still let the other ready
 * tasks of its loop run (shielded cleanup often waits for one of them),
 * and its sleeps still sleep.  After weft_shield_end() the pending
 * cancellation is delivered at the next suspension point.
 */
struct shy {
	_Atomic int in_shield, partner_ran, gave_up, yield_bad, sleep_rc, after_rc;
	_Atomic uint64_t slept_ns, yields;
};

static void *shy_cleanup(void *arg)
{
	struct shy *s = arg;
	weft_shield_begin();
	atomic_store(&s->in_shield, 1);
	uint64_t t0 = weft_now_ns();
	while (!weft_task_cancelled() && weft_now_ns() - t0 < 20 * SEC)
		if (weft_yield() != 0)
			atomic_store(&s->yield_bad, 1);
	/* Cancelled and shielded: the partner is queued on this loop. */
	t0 = weft_now_ns();
	while (!atomic_load(&s->partner_ran)) {
		if (weft_yield() != 0)
			atomic_store(&s->yield_bad, 1);
		atomic_fetch_add_explicit(&s->yields, 1, memory_order_relaxed);
		if (weft_now_ns() - t0 > 5 * SEC) {
			atomic_store(&s->gave_up, 1);
			break;
		}
	}
	t0 = weft_now_ns();
	atomic_store(&s->sleep_rc, weft_sleep_ms(1));
	atomic_store(&s->slept_ns, weft_now_ns() - t0);
	weft_shield_end();
	atomic_store(&s->after_rc, weft_yield());
	return NULL;
}

static void *shy_partner(void *arg)
{
	atomic_store(&((struct shy *)arg)->partner_ran, 1);
	return NULL;
}

static void stress_shielded_cleanup_yields(void **state)
{
	(void)state;
	for (int round = 0; round < 2; round++) {
		struct shy s;
		memset(&s, 0, sizeof(s));
		atomic_store(&s.sleep_rc, 1);
		atomic_store(&s.after_rc, 1);
		weft_runtime *rt = rt_start(2, -1);
		/* Round 0: both pinned to loop 0; round 1: partner stealable. */
		weft_task *a = spawn_pinned(rt, 0, shy_cleanup, &s);
		uint64_t t0 = weft_now_ns();
		while (!atomic_load(&s.in_shield) && weft_now_ns() - t0 < 10 * SEC)
			sched_yield();
		assert_int_equal(atomic_load(&s.in_shield), 1);
		assert_int_equal(weft_task_cancel(a), 0);
		weft_task *b = spawn_pinned(rt, round == 0 ? 0 : WEFT_PIN_NONE, shy_partner, &s);
		int ja = weft_task_join_timeout(a, NULL, 30 * SEC);
		int jb = weft_task_join_timeout(b, NULL, 30 * SEC);
		assert_int_equal(shutdown_bounded(rt, 30), 0);
		print_message("round %d: partner ran %d after %llu shielded yields; sleep %s "
			      "(%llu ns); after shield_end: %s; join %s\n",
			      round, atomic_load(&s.partner_ran),
			      (unsigned long long)atomic_load(&s.yields),
			      weft_strerror(atomic_load(&s.sleep_rc)),
			      (unsigned long long)atomic_load(&s.slept_ns),
			      weft_strerror(atomic_load(&s.after_rc)), weft_strerror(ja));
		assert_int_equal(atomic_load(&s.gave_up), 0);
		assert_int_equal(atomic_load(&s.partner_ran), 1);
		assert_int_equal(atomic_load(&s.yield_bad), 0);
		assert_int_equal(atomic_load(&s.sleep_rc), 0);
		assert_true(atomic_load(&s.slept_ns) >= 1 * MS);
		assert_int_equal(atomic_load(&s.after_rc), -ECANCELED);
		assert_int_equal(ja, -ECANCELED);
		assert_int_equal(jb, 0);
		weft_task_release(a);
		weft_task_release(b);
		weft_runtime_destroy(rt);
	}
}

/* ------------------------------------------------------------------------ */
/* 4. migration: "current loop" stays right across every resume              */
/* ------------------------------------------------------------------------ */

#define MIG_MAX_LOOPS 8

struct mig {
	weft_runtime *rt;
	weft_future *never; /* shared by every worker's timed waits */
	unsigned loops, workers, iters;
	pthread_t loop_thread[MIG_MAX_LOOPS]; /* filled by pinned tasks */
	_Atomic int recorded[MIG_MAX_LOOPS];
	_Atomic uint64_t resumes, mismatches, unknown, migrations;
	_Atomic uint64_t self_bad, rt_bad, count_bad, op_errors, finished;
};

static struct mig *g_mig;

static void *mig_record(void *arg)
{
	struct mig *m = g_mig;
	int i = (int)(uintptr_t)arg;
	m->loop_thread[i] = pthread_self();
	atomic_store(&m->recorded[i], 1);
	if (weft_loop_index() != i)
		atomic_fetch_add(&m->mismatches, 1);
	return NULL;
}

/* Which loop is this thread?  -1 if none. */
static int mig_loop_of(struct mig *m, pthread_t th)
{
	for (unsigned i = 0; i < m->loops; i++)
		if (pthread_equal(m->loop_thread[i], th))
			return (int)i;
	return -1;
}

static void *mig_worker(void *arg)
{
	struct mig *m = g_mig;
	uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
	weft_task *me = weft_task_current();
	int prev = weft_loop_index();
	uint64_t mism = 0, unk = 0, migr = 0, selfb = 0, rtb = 0, cntb = 0, errs = 0;
	for (unsigned it = 0; it < m->iters; it++) {
		uint32_t r = rnd(&seed);
		work(r % (WEFT_TEST_SANITIZED ? 2000 : 20000), r);
		int rc;
		switch (r >> 28) {
		case 0 ... 7:
			rc = weft_yield();
			break;
		case 8 ... 11:
			rc = weft_sleep(rnd(&seed) % (1 * MS + 1)); /* 0..1 ms */
			break;
		case 12 ... 13:
			rc = weft_sleep(0);
			break;
		case 14:
			rc = weft_sleep_ms(1);
			break;
		default: /* a timed wait on a future nobody completes */
			rc = weft_future_wait_timeout(m->never, NULL, rnd(&seed) % (200 * US));
			rc = rc == -ETIMEDOUT ? 0 : rc ? rc : -EINVAL;
			break;
		}
		errs += rc != 0;
		/* After the resume: the runtime's idea of the loop versus the
		 * thread we are actually on. */
		int idx = weft_loop_index();
		int real = mig_loop_of(m, pthread_self());
		if (real < 0)
			unk++;
		else if (real != idx)
			mism++;
		selfb += weft_task_current() != me;
		rtb += weft_runtime_current() != m->rt;
		cntb += weft_loop_count() != m->loops;
		if (idx != prev)
			migr++;
		prev = idx;
	}
	atomic_fetch_add(&m->resumes, m->iters);
	atomic_fetch_add(&m->mismatches, mism);
	atomic_fetch_add(&m->unknown, unk);
	atomic_fetch_add(&m->migrations, migr);
	atomic_fetch_add(&m->self_bad, selfb);
	atomic_fetch_add(&m->rt_bad, rtb);
	atomic_fetch_add(&m->count_bad, cntb);
	atomic_fetch_add(&m->op_errors, errs);
	atomic_fetch_add(&m->finished, 1);
	return NULL;
}

static void *mig_main(void *arg)
{
	struct mig *m = arg;
	weft_task **t = calloc(m->workers, sizeof(*t));
	if (!t) {
		note("mig_main: calloc");
		return NULL;
	}
	/* Spawned from this task: they start in this loop's queue and the
	 * other loops get them only by stealing. */
	for (unsigned i = 0; i < m->workers; i++) {
		int r = weft_task_spawn(&t[i], mig_worker, (void *)(uintptr_t)(i + 1));
		if (r < 0)
			note("mig_main: spawn %d", r);
	}
	for (unsigned i = 0; i < m->workers; i++) {
		if (!t[i])
			continue;
		int r = weft_task_join(t[i], NULL);
		if (r != 0)
			note("mig_main: join %d", r);
		weft_task_release(t[i]);
	}
	free(t);
	return NULL;
}

static void migration_run(unsigned loops)
{
	notes_reset();
	struct mig m;
	memset(&m, 0, sizeof(m));
	m.loops = loops;
	m.workers = 32;
	m.iters = WEFT_TEST_SANITIZED ? 1500 : 3000;
	g_mig = &m;
	assert_int_equal(weft_future_create(&m.never), 0);
	m.rt = rt_start(loops, -1);
	for (unsigned i = 0; i < loops; i++) {
		weft_task *t = spawn_pinned(m.rt, (int)i, mig_record, (void *)(uintptr_t)i);
		assert_int_equal(weft_task_join_timeout(t, NULL, JOIN_LIMIT), 0);
		weft_task_release(t);
		assert_int_equal(atomic_load(&m.recorded[i]), 1);
	}
	for (unsigned i = 0; i < loops; i++)
		for (unsigned j = 0; j < i; j++)
			assert_false(pthread_equal(m.loop_thread[i], m.loop_thread[j]));
	uint64_t t0 = weft_now_ns();
	weft_task *mt = NULL;
	assert_int_equal(weft_runtime_spawn(m.rt, &mt, NULL, mig_main, &m), 0);
	int jr = weft_task_join_timeout(mt, NULL, JOIN_LIMIT);
	uint64_t dt = weft_now_ns() - t0;
	weft_runtime_stats st;
	weft_runtime_stats_get(m.rt, &st);
	assert_int_equal(shutdown_bounded(m.rt, 30), 0);
	print_message("%u loops, %u tasks x %u resumes in %.2f s: %llu migrations, %llu "
		      "mismatches, %llu steals\n",
		      loops, m.workers, m.iters, dt / 1e9,
		      (unsigned long long)atomic_load(&m.migrations),
		      (unsigned long long)atomic_load(&m.mismatches),
		      (unsigned long long)STAT_SUM(&st, steals));
	assert_int_equal(jr, 0);
	assert_no_notes();
	assert_int_equal(atomic_load(&m.finished), m.workers);
	assert_int_equal(atomic_load(&m.resumes), (uint64_t)m.workers * m.iters);
	assert_int_equal(atomic_load(&m.op_errors), 0);
	assert_int_equal(atomic_load(&m.unknown), 0);
	assert_int_equal(atomic_load(&m.mismatches), 0);
	assert_int_equal(atomic_load(&m.self_bad), 0);
	assert_int_equal(atomic_load(&m.rt_bad), 0);
	assert_int_equal(atomic_load(&m.count_bad), 0);
	/* 32 stealable tasks that sleep and yield on 2+ loops do move. */
	assert_true(atomic_load(&m.migrations) > 0);
	weft_task_release(mt);
	weft_runtime_destroy(m.rt);
	assert_false(weft_future_done(m.never));
	weft_future_release(m.never);
}

static void stress_migration(void **state)
{
	(void)state;
	migration_run(2);
}

/* Three loops on two cores: loops are preempted while tasks move. */
static void stress_migration_3_loops(void **state)
{
	(void)state;
	migration_run(3);
}

/* ------------------------------------------------------------------------ */
/* 5. shutdown with tasks in flight on every loop                            */
/* ------------------------------------------------------------------------ */

enum {
	K_SLEEP,  /* sleeping a minute */
	K_YIELD,  /* spinning and yielding */
	K_FUTURE, /* waiting on a future nobody sets */
	K_JOIN,   /* joining a sleeper (its own target) */
	K_SHIELD, /* on cancellation: shielded 2 ms cleanup, then a spawn */
	K_SETTER, /* on cancellation: completes a future a foreign thread waits on */
	K_PARENT, /* spawned children; on cancellation joins them, shielded */
	K_TARGET, /* a sleeper joined by a K_JOIN task */
	K_LATE,   /* spawned just before shutdown: may never start */
	K_NKINDS,
};

#define SD_CHILDREN 4

struct sd;
struct sd_task {
	int kind;
	struct sd *sd;
	weft_task *handle;   /* the test's handle */
	weft_task *target;   /* K_JOIN: borrowed (the test holds a handle) */
	weft_future *f;      /* K_SETTER */
	pthread_t helper;    /* K_SETTER: the foreign waiter */
	_Atomic int helper_rc;
	_Atomic uintptr_t helper_val;
	_Atomic int started, rc, rc2, spawn_rc, cleanup, children_bad;
};

struct sd {
	weft_future *never;
	_Atomic unsigned started;
};

static void *sd_noop(void *arg)
{
	(void)arg;
	return NULL;
}

static void *sd_child(void *arg)
{
	(void)arg;
	weft_sleep_ms(60000);
	return NULL;
}

static int yield_until_error(void)
{
	int r;
	uint32_t n = 0;
	do {
		spin(++n % 64);
		r = weft_yield();
	} while (r == 0);
	return r;
}

static void *sd_body(void *arg)
{
	struct sd_task *x = arg;
	int r;
	weft_task *kids[SD_CHILDREN] = { 0 };
	if (x->kind == K_PARENT) {
		for (int i = 0; i < SD_CHILDREN; i++) {
			weft_task_config c;
			weft_task_config_init(&c);
			c.pin = i % 2 ? WEFT_PIN_NONE : WEFT_PIN_CURRENT;
			if (weft_task_spawn_ex(&kids[i], &c, sd_child, NULL) < 0)
				atomic_fetch_add(&x->children_bad, 1);
		}
	}
	atomic_store(&x->started, 1);
	if (x->kind != K_LATE)
		atomic_fetch_add(&x->sd->started, 1);
	switch (x->kind) {
	case K_SLEEP:
	case K_TARGET:
		r = weft_sleep_ms(60000);
		break;
	case K_YIELD:
	case K_LATE:
		r = yield_until_error();
		break;
	case K_FUTURE:
		r = weft_future_wait(x->sd->never, NULL);
		break;
	case K_JOIN:
		atomic_store(&x->rc2, weft_task_join(x->target, NULL));
		r = yield_until_error();
		break;
	case K_SHIELD:
		r = weft_sleep_ms(60000);
		weft_shield_begin();
		atomic_store(&x->rc2, weft_sleep_ms(2)); /* must still sleep */
		atomic_store(&x->spawn_rc, weft_task_spawn(NULL, sd_noop, NULL));
		weft_shield_end();
		atomic_store(&x->cleanup, 1);
		break;
	case K_SETTER:
		r = weft_sleep_ms(60000);
		weft_future_set_result(x->f, (void *)(uintptr_t)42);
		break;
	case K_PARENT:
		r = weft_sleep_ms(60000);
		weft_shield_begin();
		for (int i = 0; i < SD_CHILDREN; i++) {
			if (!kids[i])
				continue;
			if (weft_task_join(kids[i], NULL) != -ECANCELED)
				atomic_fetch_add(&x->children_bad, 1);
			weft_task_release(kids[i]);
		}
		weft_shield_end();
		atomic_store(&x->cleanup, 1);
		break;
	default:
		r = -EINVAL;
	}
	atomic_store(&x->rc, r);
	return NULL;
}

static void *sd_helper(void *arg)
{
	struct sd_task *x = arg;
	void *v = NULL;
	atomic_store(&x->helper_rc, weft_future_wait(x->f, &v));
	atomic_store(&x->helper_val, (uintptr_t)v);
	return NULL;
}

static unsigned shutdown_once(unsigned loops, unsigned per_kind_pin, unsigned late)
{
	struct sd sd;
	memset(&sd, 0, sizeof(sd));
	assert_int_equal(weft_future_create(&sd.never), 0);
	weft_runtime *rt = rt_start(loops, -1);

	/* Each kind, `per_kind_pin` times on every loop and as many stealable. */
	unsigned kinds = K_PARENT + 1, per_kind = per_kind_pin * (loops + 1);
	unsigned ntracked = kinds * per_kind + per_kind /* targets */;
	unsigned n = ntracked + late;
	struct sd_task *x = calloc(n, sizeof(*x));
	assert_non_null(x);
	unsigned k = 0;
	for (int kind = 0; kind <= K_PARENT; kind++) {
		for (unsigned i = 0; i < per_kind; i++, k++) {
			struct sd_task *t = &x[k];
			t->kind = kind;
			t->sd = &sd;
			int pin = i % (loops + 1) == loops ? WEFT_PIN_NONE : (int)(i % (loops + 1));
			if (kind == K_JOIN) {
				struct sd_task *tg = &x[kinds * per_kind + i];
				tg->kind = K_TARGET;
				tg->sd = &sd;
				/* Target on another loop than its joiner. */
				int tpin = pin == WEFT_PIN_NONE ? 0 : (pin + 1) % (int)loops;
				tg->handle = spawn_pinned(rt, tpin, sd_body, tg);
				t->target = tg->handle;
			}
			if (kind == K_SETTER) {
				assert_int_equal(weft_future_create(&t->f), 0);
				assert_int_equal(pthread_create(&t->helper, NULL, sd_helper, t), 0);
			}
			t->handle = spawn_pinned(rt, pin, sd_body, t);
		}
	}
	assert_int_equal(k, kinds * per_kind);

	/* Everyone running (or parked) before the shutdown. */
	uint64_t t0 = weft_now_ns();
	while (atomic_load(&sd.started) < ntracked && weft_now_ns() - t0 < 20 * SEC)
		sched_yield();
	unsigned started = atomic_load(&sd.started);
	if (started != ntracked) {
		weft_runtime_stats st;
		weft_runtime_stats_get(rt, &st);
		print_message("only %u of %u tasks started after %.1f s (live %llu):\n", started,
			      ntracked, (weft_now_ns() - t0) / 1e9,
			      (unsigned long long)st.tasks_live);
		for (unsigned i = 0; i < ntracked; i++)
			if (!atomic_load(&x[i].started))
				print_message("  task %u kind %d not started\n", i, x[i].kind);
	}
	struct timespec ts = { 0, 2000000 };
	nanosleep(&ts, NULL);
	for (unsigned i = ntracked; i < n; i++) {
		x[i].kind = K_LATE;
		x[i].sd = &sd;
		assert_int_equal(weft_runtime_spawn(rt, &x[i].handle, NULL, sd_body, &x[i]), 0);
	}

	/* Shut down with tasks in every state. */
	int shr = shutdown_bounded(rt, 30);
	assert_int_equal(shr, 0);
	assert_int_equal(started, ntracked);

	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	assert_int_equal(st.tasks_live, 0);
	assert_int_equal(weft_runtime_spawn(rt, NULL, NULL, sd_noop, NULL), -ESHUTDOWN);

	unsigned late_started = 0;
	for (unsigned i = 0; i < n; i++) {
		struct sd_task *t = &x[i];
		assert_true(weft_task_done(t->handle));
		int j = weft_task_join(t->handle, NULL);
		if (t->kind == K_TARGET && j == -EALREADY)
			j = -ECANCELED; /* its joiner took the result */
		if (j != -ECANCELED || (t->started && atomic_load(&t->rc) != -ECANCELED))
			print_message("task %u (kind %d): join %s, started %d, rc %s\n", i, t->kind,
				      weft_strerror(j), atomic_load(&t->started),
				      weft_strerror(atomic_load(&t->rc)));
		assert_int_equal(j, -ECANCELED);
		if (t->kind == K_LATE) {
			late_started += atomic_load(&t->started);
			if (!atomic_load(&t->started))
				continue;
		}
		assert_int_equal(atomic_load(&t->started), 1);
		assert_int_equal(atomic_load(&t->rc), -ECANCELED);
		switch (t->kind) {
		case K_JOIN:
			assert_int_equal(atomic_load(&t->rc2), -ECANCELED);
			break;
		case K_SHIELD:
			assert_int_equal(atomic_load(&t->cleanup), 1);
			assert_int_equal(atomic_load(&t->rc2), 0);
			assert_int_equal(atomic_load(&t->spawn_rc), -ESHUTDOWN);
			break;
		case K_SETTER:
			assert_int_equal(pthread_join(t->helper, NULL), 0);
			assert_int_equal(atomic_load(&t->helper_rc), 0);
			assert_int_equal(atomic_load(&t->helper_val), 42);
			weft_future_release(t->f);
			break;
		case K_PARENT:
			assert_int_equal(atomic_load(&t->cleanup), 1);
			assert_int_equal(atomic_load(&t->children_bad), 0);
			break;
		}
		weft_task_release(t->handle);
		t->handle = NULL;
	}
	for (unsigned i = 0; i < n; i++)
		if (x[i].handle)
			weft_task_release(x[i].handle);
	weft_runtime_destroy(rt);
	weft_future_release(sd.never);
	free(x);
	return late_started;
}

static void stress_shutdown_in_flight(void **state)
{
	(void)state;
	const int iters = WEFT_TEST_SANITIZED ? 20 : 40;
	unsigned late_started = 0;
	uint64_t t0 = weft_now_ns();
	for (int i = 0; i < iters; i++)
		late_started += shutdown_once(2 + (unsigned)(i % 2), 3, 300);
	print_message("%d shutdowns (2 and 3 loops) with 72-96 tasks in flight and 300 "
		      "late spawns each (%u late ones started) in %.2f s: all cancelled\n",
		      iters, late_started, (weft_now_ns() - t0) / 1e9);
}

/*
 * The inject queue (foreign spawns, overflow) must not starve behind local
 * work: with every loop kept busy by tasks that only yield, a stealable
 * task spawned from a foreign thread (so it lands in the inject queue)
 * must still start (docs/architecture.md, "The scheduling tick": the
 * inject queue is checked every 61 ticks).
 */
struct busy {
	_Atomic int stop, spinning;
	_Atomic uint64_t yields;
};

static void *busy_yielder(void *arg)
{
	struct busy *b = arg;
	atomic_fetch_add(&b->spinning, 1);
	while (!atomic_load(&b->stop))
		if (weft_yield() == 0)
			atomic_fetch_add_explicit(&b->yields, 1, memory_order_relaxed);
		else
			break;
	return NULL;
}

static void *set_stop(void *arg)
{
	atomic_store(&((struct busy *)arg)->stop, 1);
	return NULL;
}

static void stress_inject_not_starved(void **state)
{
	(void)state;
	for (int pinned = 1; pinned >= 0; pinned--) {
		struct busy b;
		memset(&b, 0, sizeof(b));
		weft_runtime *rt = rt_start(2, -1);
		weft_task *y[2];
		for (int i = 0; i < 2; i++)
			y[i] = spawn_pinned(rt, pinned ? i : WEFT_PIN_NONE, busy_yielder, &b);
		uint64_t t0 = weft_now_ns();
		while (atomic_load(&b.spinning) < 2 && weft_now_ns() - t0 < 5 * SEC)
			sched_yield();
		/* Both loops are busy yielding; now a stealable foreign spawn. */
		weft_task *s = NULL;
		assert_int_equal(weft_runtime_spawn(rt, &s, NULL, set_stop, &b), 0);
		int js = weft_task_join_timeout(s, NULL, 5 * SEC);
		int spinning = atomic_load(&b.spinning);
		uint64_t yields = atomic_load(&b.yields);
		atomic_store(&b.stop, 1); /* in case it never ran */
		int j0 = weft_task_join_timeout(y[0], NULL, 10 * SEC);
		int j1 = weft_task_join_timeout(y[1], NULL, 10 * SEC);
		assert_int_equal(shutdown_bounded(rt, 30), 0);
		print_message("yielders %s: injected task joined %s after %llu yields\n",
			      pinned ? "pinned" : "stealable", weft_strerror(js),
			      (unsigned long long)yields);
		assert_int_equal(spinning, 2);
		assert_int_equal(js, 0);
		assert_int_equal(j0, 0);
		assert_int_equal(j1, 0);
		weft_task_release(s);
		weft_task_release(y[0]);
		weft_task_release(y[1]);
		weft_runtime_destroy(rt);
	}
}

/*
 * Start immediately followed by shutdown, many times, with the CPUs busy:
 * a loop thread may not have left its start-up barrier yet when shutdown
 * begins.  Run from a helper so a deadlock fails here, not at the timeout.
 */
struct startstop {
	unsigned iters, done;
	int err;
	_Atomic int burn_stop;
};

static void *ss_burn(void *arg)
{
	struct startstop *s = arg;
	while (!atomic_load_explicit(&s->burn_stop, memory_order_relaxed))
		relax();
	return NULL;
}

static void *ss_thread(void *arg)
{
	struct startstop *s = arg;
	for (unsigned i = 0; i < s->iters; i++) {
		weft_runtime_config cfg;
		weft_runtime_config_init(&cfg);
		cfg.loops = 2 + i % 3;
		weft_runtime *rt;
		int r = weft_runtime_start(&rt, &cfg);
		if (r < 0) {
			s->err = r;
			return NULL;
		}
		if (i % 2) { /* and sometimes one task in between */
			weft_task *t;
			if (weft_runtime_spawn(rt, &t, NULL, sd_noop, NULL) == 0) {
				weft_task_join(t, NULL);
				weft_task_release(t);
			}
		}
		r = weft_runtime_shutdown(rt);
		if (r < 0)
			s->err = r;
		weft_runtime_destroy(rt);
		__atomic_store_n(&s->done, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void stress_start_shutdown(void **state)
{
	(void)state;
	struct startstop s;
	memset(&s, 0, sizeof(s));
	s.iters = WEFT_TEST_SANITIZED ? 100 : 300;
	pthread_t burn[2], th;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&burn[i], NULL, ss_burn, &s), 0);
	assert_int_equal(pthread_create(&th, NULL, ss_thread, &s), 0);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WEFT_TEST_SANITIZED ? 120 : 30;
	int jr = pthread_timedjoin_np(th, NULL, &dl);
	atomic_store(&s.burn_stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(burn[i], NULL);
	if (jr != 0)
		print_message("start/shutdown hung after %u of %u cycles\n",
			      __atomic_load_n(&s.done, __ATOMIC_ACQUIRE), s.iters);
	assert_int_equal(jr, 0);
	assert_int_equal(s.err, 0);
	assert_int_equal(s.done, s.iters);
}

/* ------------------------------------------------------------------------ */
/* 6. foreign threads hammering spawn and set_result                          */
/* ------------------------------------------------------------------------ */

#define HM_THREADS 4

struct hammer {
	weft_runtime *rt;
	unsigned per_thread, loops;
	_Atomic uint64_t task_done, task_bad, spawn_bad, set_bad, join_bad, back_bad;
	/* race_set phase */
	unsigned nrace;
	weft_future **race_f;
	_Atomic uint32_t *race_winner, *race_wins;
};

struct hm_item {
	struct hammer *h;
	weft_future *f, *g;
	uintptr_t expect;
};

static void *hm_task(void *arg)
{
	struct hm_item *it = arg;
	struct hammer *h = it->h;
	uintptr_t expect = it->expect;
	void *v = NULL;
	int r = weft_future_wait(it->f, &v);
	if (r != 0 || (uintptr_t)v != expect)
		atomic_fetch_add(&h->task_bad, 1);
	if (it->g) { /* answer back to the foreign thread */
		weft_future_set_result(it->g, (void *)(expect + 1));
		weft_future_release(it->g);
	}
	weft_future_release(it->f);
	free(it);
	atomic_fetch_add(&h->task_done, 1);
	return (void *)expect;
}

struct hm_thread {
	struct hammer *h;
	unsigned idx;
};

static void *hm_thread_main(void *arg)
{
	struct hm_thread *ht = arg;
	struct hammer *h = ht->h;
	weft_task **pending = calloc(h->per_thread, sizeof(*pending));
	uintptr_t *pending_val = calloc(h->per_thread, sizeof(*pending_val));
	unsigned npending = 0;
	for (unsigned i = 0; i < h->per_thread; i++) {
		struct hm_item *it = calloc(1, sizeof(*it));
		it->h = h;
		it->expect = ((uintptr_t)(ht->idx + 1) << 32) | (i + 1);
		if (weft_future_create(&it->f) < 0) {
			atomic_fetch_add(&h->spawn_bad, 1);
			free(it);
			continue;
		}
		weft_future *f = weft_future_ref(it->f); /* ours; the item's is the task's */
		weft_future *g = NULL;
		if (i % 8 == 3 && weft_future_create(&it->g) == 0)
			g = weft_future_ref(it->g);
		bool early = i % 5 == 0;
		if (early && weft_future_set_result(f, (void *)it->expect) != 0)
			atomic_fetch_add(&h->set_bad, 1);
		uintptr_t expect = it->expect;
		weft_task_config c;
		weft_task_config_init(&c);
		if (i % 3 == 1)
			c.pin = (int)(i % h->loops);
		weft_task *t = NULL;
		int r = weft_runtime_spawn(h->rt, i % 2 == 0 ? &t : NULL, &c, hm_task, it);
		if (r < 0) {
			atomic_fetch_add(&h->spawn_bad, 1);
			weft_future_release(it->f);
			if (it->g)
				weft_future_release(it->g);
			free(it);
		}
		/* it may be freed from here on. */
		if (!early && weft_future_set_result(f, (void *)expect) != 0 && r == 0)
			atomic_fetch_add(&h->set_bad, 1);
		weft_future_release(f);
		if (g) {
			void *v = NULL;
			if (r == 0 && (weft_future_wait(g, &v) != 0 || (uintptr_t)v != expect + 1))
				atomic_fetch_add(&h->back_bad, 1);
			weft_future_release(g);
		}
		if (t) {
			if (i % 4 == 0) {
				void *res = NULL;
				if (weft_task_join(t, &res) != 0 || (uintptr_t)res != expect)
					atomic_fetch_add(&h->join_bad, 1);
				weft_task_release(t);
			} else {
				pending[npending] = t;
				pending_val[npending++] = expect;
			}
		}
	}
	for (unsigned i = 0; i < npending; i++) {
		void *res = NULL;
		if (weft_task_join(pending[i], &res) != 0 || (uintptr_t)res != pending_val[i])
			atomic_fetch_add(&h->join_bad, 1);
		weft_task_release(pending[i]);
	}
	free(pending);
	free(pending_val);

	/* race_set: every thread completes every race future; one wins each. */
	for (unsigned k = 0; k < h->nrace; k++) {
		unsigned j = (k + ht->idx * 7) % h->nrace; /* different orders */
		if (weft_future_set_result(h->race_f[j], (void *)(uintptr_t)(ht->idx + 1)) == 0) {
			atomic_fetch_add(&h->race_wins[j], 1);
			atomic_store(&h->race_winner[j], ht->idx + 1);
		}
	}
	return NULL;
}

static void *hm_race_waiter(void *arg)
{
	return weft_future_wait(arg, &arg) == 0 ? arg : (void *)(uintptr_t)-1;
}

static void stress_foreign_threads(void **state)
{
	(void)state;
	struct hammer h;
	memset(&h, 0, sizeof(h));
	h.loops = 2;
	h.per_thread = WEFT_TEST_SANITIZED ? 5000 : 40000;
	h.nrace = WEFT_TEST_SANITIZED ? 500 : 2000;
	h.rt = rt_start(h.loops, -1);
	h.race_f = calloc(h.nrace, sizeof(*h.race_f));
	h.race_winner = calloc(h.nrace, sizeof(*h.race_winner));
	h.race_wins = calloc(h.nrace, sizeof(*h.race_wins));
	weft_task **rw = calloc(h.nrace, sizeof(*rw));
	for (unsigned k = 0; k < h.nrace; k++) {
		assert_int_equal(weft_future_create(&h.race_f[k]), 0);
		assert_int_equal(weft_runtime_spawn(h.rt, &rw[k], NULL, hm_race_waiter,
						    h.race_f[k]),
				 0);
	}

	uint64_t t0 = weft_now_ns();
	pthread_t th[HM_THREADS];
	struct hm_thread ht[HM_THREADS];
	for (unsigned i = 0; i < HM_THREADS; i++) {
		ht[i] = (struct hm_thread){ &h, i };
		assert_int_equal(pthread_create(&th[i], NULL, hm_thread_main, &ht[i]), 0);
	}
	for (unsigned i = 0; i < HM_THREADS; i++)
		pthread_join(th[i], NULL);
	/* Detached tasks: wait for the count. */
	uint64_t total = (uint64_t)HM_THREADS * h.per_thread;
	uint64_t w0 = weft_now_ns();
	while (atomic_load(&h.task_done) < total && weft_now_ns() - w0 < JOIN_LIMIT) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	unsigned race_bad = 0;
	for (unsigned k = 0; k < h.nrace; k++) {
		void *res = NULL;
		int r = weft_task_join_timeout(rw[k], &res, JOIN_LIMIT);
		if (r != 0 || atomic_load(&h.race_wins[k]) != 1 ||
		    (uintptr_t)res != atomic_load(&h.race_winner[k]))
			race_bad++;
		weft_task_release(rw[k]);
		weft_future_release(h.race_f[k]);
	}
	uint64_t dt = weft_now_ns() - t0;
	assert_int_equal(shutdown_bounded(h.rt, 30), 0);
	weft_runtime_stats st;
	weft_runtime_stats_get(h.rt, &st);
	weft_runtime_destroy(h.rt);
	print_message("%u foreign threads: %llu tasks done of %llu, %u race futures, %.2f s\n",
		      HM_THREADS, (unsigned long long)atomic_load(&h.task_done),
		      (unsigned long long)total, h.nrace, dt / 1e9);
	assert_int_equal(atomic_load(&h.spawn_bad), 0);
	assert_int_equal(atomic_load(&h.set_bad), 0);
	assert_int_equal(atomic_load(&h.task_bad), 0);
	assert_int_equal(atomic_load(&h.join_bad), 0);
	assert_int_equal(atomic_load(&h.back_bad), 0);
	assert_int_equal(atomic_load(&h.task_done), total);
	assert_int_equal(race_bad, 0);
	assert_int_equal(st.tasks_live, 0);
	free(h.race_f);
	free(h.race_winner);
	free(h.race_wins);
	free(rw);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(stress_wakeups_million),
	cmocka_unit_test(stress_wakeups_parking),
	cmocka_unit_test(stress_spawn_storm),
	cmocka_unit_test(stress_cancel_vs_complete),
	cmocka_unit_test(stress_cancel_vs_timer),
	cmocka_unit_test(stress_shielded_cleanup_yields),
	cmocka_unit_test(stress_migration),
	cmocka_unit_test(stress_migration_3_loops),
	cmocka_unit_test(stress_inject_not_starved),
	cmocka_unit_test(stress_shutdown_in_flight),
	cmocka_unit_test(stress_start_shutdown),
	cmocka_unit_test(stress_foreign_threads),
};

WEFT_TEST_MAIN(tests)
