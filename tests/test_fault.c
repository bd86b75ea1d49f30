/*
 * The runtime under fault injection (build/fault only: tests/fault.c,
 * docs/testing.md).  While a test body runs, the runtime's own system
 * calls and allocations fail at random from WEFT_FAULT_SEED: the sites of
 * each test are fixed here, the seed comes from the environment, so a
 * failing seed replays with
 *
 *     WEFT_FAULT_SEED=N [WEFT_FAULT_RATE=R] [WEFT_BACKEND=epoll] \
 *         build/fault/tests/test_fault NAME
 *
 * What must hold whatever fails: no hang (every join and every client has a
 * deadline far beyond the work), no crash, every item delivered exactly
 * once or its failure returned to whoever handed it over (conservation
 * counts), only documented errors, and no fd left open after the runtime
 * is gone.  Faults are on only while the body runs; set-up, the final
 * drain and the checks run without them.
 *
 * A stuck full SQ is on everywhere (its submissions wait in the loop's
 * backlog: issue 10, defect 6).  mmap stays off in the server and stream
 * tests: with it on (seeds 2, 3 and 6 at rate 0.1) fault_stream_transfer
 * and the echo tests end with fds open; not yet told apart is whether the
 * runtime or these tests' own tasks (not always_run, so finished without
 * running when their stack cannot be mapped) hold them.
 *
 * docs/architecture.md rule 7: tasks record into structs and atomics; the
 * test asserts after the runtime is gone.
 */
#include "weft_test.h"
#include "weft_test_io.h"
#include "tests/fault.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEC (1000 * MS)
#define HANG_LIMIT (20 * SEC) /* a join or a client taking this long hung */

/* ---------------------------------------------------------------------- */
/* harness                                                                 */
/* ---------------------------------------------------------------------- */

static unsigned fds_before;

/* A test still running after this long hung somewhere a deadline cannot
 * reach (a join from the test thread, a start): say so and stop. */
#define WATCHDOG_S 120

static void watchdog(int sig)
{
	static const char msg[] = "test_fault: hung (watchdog); replay with the seed above\n";
	(void)sig;
	ssize_t w = write(2, msg, sizeof msg - 1);
	(void)w;
	_exit(3);
}

/* Choose the sites (faults off), note the open fds, arm the watchdog. */
static void fault_setup(const char *spec)
{
	weft_fault_enable(false);
	weft_fault_config(spec);
	fds_before = weft_fault_open_fds();
	signal(SIGALRM, watchdog);
	alarm(WATCHDOG_S);
}

/* Faults off, then: every fd the runtime opened is closed again. */
static void fault_teardown(void)
{
	alarm(0);
	weft_fault_enable(false);
	unsigned now = weft_fault_open_fds();
	if (now != fds_before)
		print_message("fds: %u open before the runtime, %u after it is gone (seed %llu)\n",
			      fds_before, now, (unsigned long long)weft_fault_seed());
	assert_int_equal(now, fds_before);
}

/* guarded_max: guarded stacks before slab ones (0: the default), or
 * ALWAYS_GUARDED: every stack its own mapping, which a task cannot start
 * without (AUTO falls back to a slab). */
#define ALWAYS_GUARDED UINT_MAX

static weft_runtime *rt_start(unsigned loops, unsigned stack_pool, unsigned guarded_max)
{
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = loops;
	cfg.stack_pool_max = stack_pool;
	if (guarded_max == ALWAYS_GUARDED)
		cfg.stack_guard = WEFT_GUARD_ALWAYS;
	else
		cfg.guarded_stacks_max = guarded_max;
	cfg.offload_threads = 4;
	cfg.offload_idle_ms = 5; /* threads come and go: pthread_create again */
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	return rt;
}

/* The backend a runtime gets here (WEFT_BACKEND, else what the kernel
 * allows): some tests inject into one backend's calls only. */
static unsigned backend_now(void)
{
	weft_runtime *rt = rt_start(1, 4, 0);
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	weft_runtime_destroy(rt);
	return st.backend;
}

/* Run body(arg) as a task with faults on for its duration, then (faults
 * off) shut the runtime down and free it.  The body's task is spawned
 * before faults are on, so it does run. */
struct body {
	weft_fn fn;
	void *arg;
};

static void *body_main(void *arg)
{
	struct body *b = arg;
	weft_fault_enable(true);
	void *r = b->fn(b->arg);
	weft_fault_enable(false);
	return r;
}

/* As run_body, with the body's task pinned to loop `pin`. */
static void run_body_on(weft_runtime *rt, int pin, weft_fn fn, void *arg)
{
	struct body b = { fn, arg };
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = pin;
	weft_task *t = NULL;
	assert_int_equal(weft_runtime_spawn(rt, &t, &tc, body_main, &b), 0);
	assert_int_equal(weft_task_join(t, NULL), 0);
	weft_task_release(t);
	weft_runtime_destroy(rt);
}

static void run_body(weft_runtime *rt, weft_fn fn, void *arg)
{
	run_body_on(rt, WEFT_PIN_NONE, fn, arg);
}

/* Join t within HANG_LIMIT and release it: its join status, -ETIMEDOUT
 * when it hung, -ESRCH when it was never spawned.  An -ENOMEM while t
 * still runs is the join's own (its timer could not be had), not t's
 * status: again, or the body would end with t running and the runtime's
 * shutdown would cancel it. */
static int join_limit(weft_task *t, void **res)
{
	if (!t)
		return -ESRCH;
	int r;
	while ((r = weft_task_join_timeout(t, res, HANG_LIMIT)) == -ENOMEM && !weft_task_done(t))
		weft_yield();
	if (r == -ETIMEDOUT) /* leave it: the test fails anyway */
		return r;
	weft_task_release(t);
	return r;
}

/* Join and release tasks t[0..n) (NULL entries too: never spawned); the
 * number that hung goes to *hung. */
static void join_all(weft_task **t, int n, _Atomic int *hung)
{
	for (int i = 0; i < n; i++)
		if (join_limit(t[i], NULL) == -ETIMEDOUT)
			atomic_fetch_add(hung, 1);
}

/* Spawn, retrying a spawn that failed for memory (the body must start
 * what it needs; each try draws its faults anew).  NULL only for another
 * error. */
static weft_task *spawn_retry(weft_fn fn, void *arg, int pin)
{
	for (;;) {
		weft_task *t = go_pinned(fn, arg, pin);
		if (t)
			return t;
		if (weft_yield() == -ECANCELED)
			return NULL;
	}
}

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* An error a call may return under faults: out of memory, fds or threads,
 * interrupted by cancellation, a deadline, a peer that went away, a
 * stream whose input broke (-EIO: received bytes it could not hold). */
static bool documented(int r)
{
	switch (-r) {
	case ENOMEM: case EMFILE: case ENFILE: case EAGAIN: case ENOSPC: case ENOBUFS:
	case ECANCELED: case ETIMEDOUT: case EPIPE: case ECONNRESET: case ENODATA: case EIO:
		return true;
	default:
		return false;
	}
}

static void note_bad(_Atomic int *first, int r)
{
	int zero = 0;
	atomic_compare_exchange_strong(first, &zero, r ? r : -999);
}

/* ---------------------------------------------------------------------- */
/* queues: every item put is got exactly once, every failed put is known  */
/* ---------------------------------------------------------------------- */

enum { QP = 6, QC = 4, QK = 1200, QN = QP * QK, QBATCH = 8 };

struct qx {
	weft_queue *q[2]; /* unbounded (puts may fail for memory), bounded */
	_Atomic uint8_t put_ok[QN], got[QN];
	_Atomic int dup, bad_err, hung;
	_Atomic int put_fail, get_fail, cancelled, unstarted;
	_Atomic bool stop;
	weft_task *cons[QC];
};

struct qput {
	struct qx *x;
	int first; /* ids first .. first + QBATCH - 1 */
};

/* Put one batch of items, each recorded as put or not. */
static void *q_putter(void *arg)
{
	struct qput *b = arg;
	struct qx *x = b->x;
	for (int id = b->first; id < b->first + QBATCH; id++) {
		weft_queue *q = x->q[id & 1];
		/* The bounded queue only with a deadline: a cancelled consumer
		 * must not leave a putter blocked forever. */
		int r = (id & 1) || id % 3 == 0 ? weft_queue_put_timeout(q, P(id + 1), 50 * MS)
						: weft_queue_put(q, P(id + 1));
		if (r == 0) {
			atomic_store(&x->put_ok[id], 1);
			continue;
		}
		atomic_fetch_add(&x->put_fail, 1);
		if (!documented(r))
			note_bad(&x->bad_err, r);
		if (r == -ECANCELED) {
			atomic_fetch_add(&x->cancelled, 1);
			return NULL; /* delivered: the rest is never put */
		}
	}
	return NULL;
}

/* A producer puts its items through a short-lived task per batch, a few
 * at a time: spawns, first runs (stacks) and exits all under faults.  A
 * putter that could not start put nothing. */
static void *q_producer(void *arg)
{
	struct qput *p = arg;
	enum { INFLIGHT = 4 };
	struct qput b[QK / QBATCH];
	weft_task *t[QK / QBATCH] = { 0 };
	for (int i = 0; i < QK / QBATCH; i++) {
		if (i >= INFLIGHT) {
			int r = join_limit(t[i - INFLIGHT], NULL);
			if (r == -ETIMEDOUT)
				atomic_fetch_add(&p->x->hung, 1);
			else if (r == -ENOMEM)
				atomic_fetch_add(&p->x->unstarted, 1);
		}
		b[i] = (struct qput){ p->x, p->first + i * QBATCH };
		t[i] = go_pinned(q_putter, &b[i], WEFT_PIN_NONE);
	}
	for (int i = QK / QBATCH - INFLIGHT; i < QK / QBATCH; i++) {
		int r = join_limit(t[i], NULL);
		if (r == -ETIMEDOUT)
			atomic_fetch_add(&p->x->hung, 1);
		else if (r == -ENOMEM)
			atomic_fetch_add(&p->x->unstarted, 1);
	}
	return NULL;
}

static void q_got(struct qx *x, void *item)
{
	uintptr_t v = U(item);
	if (v == 0 || v > QN) {
		note_bad(&x->bad_err, -EBADMSG);
		return;
	}
	if (atomic_fetch_add(&x->got[v - 1], 1))
		atomic_fetch_add(&x->dup, 1);
}

/* Take from both queues until both are shut down and empty. */
static void *q_consumer(void *arg)
{
	struct qx *x = arg;
	bool done[2] = { false, false };
	for (unsigned n = 0; !done[0] || !done[1]; n++) {
		int i = done[0] ? 1 : done[1] ? 0 : (int)(n & 1);
		void *item;
		int r = n % 4 == 0 ? weft_queue_get_timeout(x->q[i], &item, 20 * MS)
				   : weft_queue_get(x->q[i], &item);
		if (r == 0) {
			q_got(x, item);
		} else if (r == -EPIPE) {
			done[i] = true;
		} else if (r == -ECANCELED) {
			atomic_fetch_add(&x->cancelled, 1);
			return NULL;
		} else {
			atomic_fetch_add(&x->get_fail, 1);
			if (!documented(r))
				note_bad(&x->bad_err, r);
		}
	}
	return NULL;
}

/* Cancels the odd consumers, respawning them, while producers run. */
static void *q_chaos(void *arg)
{
	struct qx *x = arg;
	uint32_t rng = 0x2545f491u ^ (uint32_t)weft_fault_seed();
	while (!atomic_load(&x->stop)) {
		if (weft_sleep_ms(1 + xorshift(&rng) % 4) == -ECANCELED)
			break;
		int c = 1 + 2 * (int)(xorshift(&rng) % (QC / 2));
		weft_task *t = x->cons[c];
		weft_task_cancel(t);
		if (join_limit(t, NULL) == -ETIMEDOUT) {
			atomic_fetch_add(&x->hung, 1);
			x->cons[c] = NULL;
			break;
		}
		x->cons[c] = spawn_retry(q_consumer, x, WEFT_PIN_NONE);
	}
	return NULL;
}

static void *q_main(void *arg)
{
	struct qx *x = arg;
	struct qput pa[QP];
	weft_task *prod[QP];
	for (int c = 0; c < QC; c++)
		x->cons[c] = spawn_retry(q_consumer, x, WEFT_PIN_NONE);
	for (int i = 0; i < QP; i++) {
		pa[i] = (struct qput){ x, i * QK };
		prod[i] = spawn_retry(q_producer, &pa[i], WEFT_PIN_NONE);
	}
	weft_task *chaos = spawn_retry(q_chaos, x, WEFT_PIN_NONE);
	/* A producer that could not start (no stack: -ENOMEM) put nothing. */
	for (int i = 0; i < QP; i++) {
		int r = join_limit(prod[i], NULL);
		if (r == -ETIMEDOUT)
			atomic_fetch_add(&x->hung, 1);
		else if (r == -ENOMEM)
			atomic_fetch_add(&x->unstarted, 1);
		else if (r && !documented(r))
			note_bad(&x->bad_err, r);
	}
	atomic_store(&x->stop, true);
	join_all(&chaos, 1, &x->hung);
	weft_queue_shutdown(x->q[0], false);
	weft_queue_shutdown(x->q[1], false);
	join_all(x->cons, QC, &x->hung);
	return NULL;
}

static void fault_queue_conservation(void **state)
{
	(void)state;
	fault_setup("all,alloc=0.05,mmap=0.1");
	static struct qx x;
	memset(&x, 0, sizeof x);
	weft_queue_config qc;
	weft_queue_config_init(&qc);
	assert_int_equal(weft_queue_create(&x.q[0], &qc), 0);
	qc.capacity = 8;
	assert_int_equal(weft_queue_create(&x.q[1], &qc), 0);
	/* Few pooled stacks, each its own mapping: tasks that cannot start. */
	run_body(rt_start(3, 2, ALWAYS_GUARDED), q_main, &x);
	/* Whatever the consumers left (all of them were cancelled or never
	 * started) is still in the queues. */
	for (int i = 0; i < 2; i++) {
		void *item;
		while (weft_queue_try_get(x.q[i], &item) == 0)
			q_got(&x, item);
		assert_int_equal(weft_queue_destroy(x.q[i]), 0);
	}
	unsigned put = 0, got = 0, lost = 0, ghost = 0;
	for (int id = 0; id < QN; id++) {
		put += x.put_ok[id];
		got += x.got[id] != 0;
		lost += x.put_ok[id] && !x.got[id];
		ghost += !x.put_ok[id] && x.got[id];
	}
	print_message("queues: %u of %d items put (%d puts failed, %d tasks never started), "
		      "%u got, %d gets failed, %d cancellations; %llu faults\n",
		      put, QN, atomic_load(&x.put_fail), atomic_load(&x.unstarted), got,
		      atomic_load(&x.get_fail), atomic_load(&x.cancelled),
		      (unsigned long long)weft_fault_injected());
	assert_int_equal(atomic_load(&x.hung), 0);
	assert_int_equal(atomic_load(&x.bad_err), 0);
	assert_int_equal(atomic_load(&x.dup), 0);
	assert_int_equal(lost, 0);
	assert_int_equal(ghost, 0);
	assert_true(put > 0);
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* cancellation storm: waits of every kind, cancelled at random            */
/* ---------------------------------------------------------------------- */

enum { CS_TASKS = 48, CS_FUTURES = 8, CS_PERMITS = 3, CS_BYTES = 2000 };

struct cs {
	weft_future *fut[CS_FUTURES];
	_Atomic int fut_values; /* waiters that got a future's value */
	weft_event ev;
	weft_sem sem;
	_Atomic int sem_held;   /* permits held right now */
	_Atomic int sem_over;   /* more holders than permits */
	int sp[2];              /* socketpair: sp[1] written, sp[0] read */
	_Atomic int bytes_read;
	int bytes_written;
	_Atomic int offload_ok;
	_Atomic bool stop;
	_Atomic int bad_err, hung;
	_Atomic int kinds_run[8];
	weft_task *t[CS_TASKS];
};

static void *cs_job(void *arg)
{
	usleep(200);
	return arg;
}

static void *cs_job_task(void *arg)
{
	weft_sleep(xorshift(&(uint32_t){ (uint32_t)weft_now_ns() | 1 }) % (2 * MS));
	return arg;
}

static void cs_check(struct cs *x, int r)
{
	if (r < 0 && !documented(r))
		note_bad(&x->bad_err, r);
}

static void *cs_waiter(void *arg)
{
	struct cs *x = arg;
	uint32_t rng = (uint32_t)weft_task_id(weft_task_current()) * 2654435761u;
	int kind = (int)(weft_task_id(weft_task_current()) % 7);
	atomic_fetch_add(&x->kinds_run[kind], 1);
	while (!atomic_load(&x->stop)) {
		int r = 0;
		void *v;
		char buf[16];
		switch (kind) {
		case 0:
			r = weft_sleep(xorshift(&rng) % (2 * MS));
			break;
		case 1: {
			weft_future *f = x->fut[xorshift(&rng) % CS_FUTURES];
			r = weft_future_wait_timeout(f, &v, 5 * MS);
			if (r == 0) {
				atomic_fetch_add(&x->fut_values, 1);
				if (v != f)
					note_bad(&x->bad_err, -EBADMSG);
				weft_sleep(MS);
			}
			break;
		}
		case 2:
			r = weft_event_wait(&x->ev);
			break;
		case 3:
			r = weft_sem_acquire(&x->sem);
			if (r == 0) {
				if (atomic_fetch_add(&x->sem_held, 1) >= CS_PERMITS)
					atomic_fetch_add(&x->sem_over, 1);
				int s = weft_yield();
				atomic_fetch_sub(&x->sem_held, 1);
				weft_sem_release(&x->sem);
				r = s;
			}
			break;
		case 4: {
			ssize_t n = weft_recv(x->sp[0], buf, 1 + xorshift(&rng) % sizeof buf, 0);
			if (n > 0)
				atomic_fetch_add(&x->bytes_read, (int)n);
			r = n < 0 ? (int)n : 0;
			break;
		}
		case 5:
			r = weft_offload(cs_job, x, &v);
			if (r == 0 && v == x)
				atomic_fetch_add(&x->offload_ok, 1);
			else if (r == 0)
				note_bad(&x->bad_err, -EBADMSG);
			break;
		default: {
			/* A child to join, cancelled with us or not. */
			weft_task *c = go_pinned(cs_job_task, NULL, WEFT_PIN_NONE);
			r = c ? weft_task_join_timeout(c, NULL, 3 * MS) : -ENOMEM;
			if (r == -ECANCELED || r == -ETIMEDOUT)
				weft_task_cancel(c); /* detached below: it ends alone */
			if (c)
				weft_task_release(c);
			break;
		}
		}
		cs_check(x, r);
		if (r == -ECANCELED)
			return NULL;
	}
	return NULL;
}

static void *cs_storm(void *arg)
{
	struct cs *x = arg;
	uint32_t rng = 0x9e3779b9u ^ (uint32_t)weft_fault_seed();
	for (int round = 0; round < 200 && !atomic_load(&x->stop); round++) {
		weft_task *t = x->t[xorshift(&rng) % CS_TASKS];
		if (t)
			weft_task_cancel(t);
		if (round % 5 == 0) {
			weft_future *f = x->fut[xorshift(&rng) % CS_FUTURES];
			weft_future_set_result(f, f); /* once; later sets fail */
			weft_event_set(&x->ev);
			weft_event_clear(&x->ev);
		}
		if (weft_sleep(200 * 1000) == -ECANCELED)
			break;
	}
	return NULL;
}

static void *cs_writer(void *arg)
{
	struct cs *x = arg;
	char b[16];
	memset(b, 'x', sizeof b);
	int stalled = 0;
	while (x->bytes_written < CS_BYTES && stalled < 500) {
		/* The test's own send (unwrapped), never blocking the loop: the
		 * bytes the readers must account for. */
		ssize_t n = send(x->sp[1], b, 1 + x->bytes_written % sizeof b, MSG_DONTWAIT);
		if (n > 0)
			x->bytes_written += (int)n;
		stalled = n > 0 ? 0 : stalled + 1; /* no reader left: give up */
		if ((n <= 0 || x->bytes_written % 20 == 0) && weft_sleep(100 * 1000) == -ECANCELED)
			break;
	}
	return NULL;
}

static void *cs_main(void *arg)
{
	struct cs *x = arg;
	for (int i = 0; i < CS_TASKS; i++)
		x->t[i] = spawn_retry(cs_waiter, x, WEFT_PIN_NONE);
	weft_task *storm = spawn_retry(cs_storm, x, WEFT_PIN_NONE);
	weft_task *helpers[2] = { spawn_retry(cs_writer, x, WEFT_PIN_NONE), storm };
	join_all(helpers, 2, &x->hung);
	atomic_store(&x->stop, true);
	weft_event_set(&x->ev);
	for (int i = 0; i < CS_TASKS; i++)
		weft_task_cancel(x->t[i]);
	for (int i = 0; i < CS_TASKS; i++) {
		int r = join_limit(x->t[i], NULL);
		if (r == -ETIMEDOUT)
			atomic_fetch_add(&x->hung, 1);
		else if (r < 0 && r != -ECANCELED && r != -ENOMEM)
			note_bad(&x->bad_err, r);
	}
	return NULL;
}

static void fault_cancel_storm(void **state)
{
	(void)state;
	fault_setup("all");
	static struct cs x;
	memset(&x, 0, sizeof x);
	for (int i = 0; i < CS_FUTURES; i++)
		assert_int_equal(weft_future_create(&x.fut[i]), 0);
	assert_int_equal(weft_event_init(&x.ev), 0);
	assert_int_equal(weft_sem_init(&x.sem, CS_PERMITS), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x.sp), 0);
	run_body(rt_start(3, 4, 16), cs_main, &x);
	/* Bytes no reader took are still in the socket. */
	char buf[256];
	ssize_t n;
	int left = 0;
	while ((n = recv(x.sp[0], buf, sizeof buf, MSG_DONTWAIT)) > 0)
		left += (int)n;
	close(x.sp[0]);
	close(x.sp[1]);
	int sem_end = weft_sem_value(&x.sem);
	weft_sem_destroy(&x.sem);
	weft_event_destroy(&x.ev);
	for (int i = 0; i < CS_FUTURES; i++)
		weft_future_release(x.fut[i]);
	print_message("storm: %d bytes written, %d read, %d left; %d future values, %d offloads; "
		      "%llu faults\n",
		      x.bytes_written, atomic_load(&x.bytes_read), left, atomic_load(&x.fut_values),
		      atomic_load(&x.offload_ok), (unsigned long long)weft_fault_injected());
	assert_int_equal(atomic_load(&x.hung), 0);
	assert_int_equal(atomic_load(&x.bad_err), 0);
	assert_int_equal(atomic_load(&x.bytes_read) + left, x.bytes_written);
	assert_int_equal(sem_end, CS_PERMITS); /* every permit came back */
	assert_int_equal(atomic_load(&x.sem_over), 0);
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* TCP echo through the server, many connections                           */
/* ---------------------------------------------------------------------- */

enum { EC_CLIENTS = 128, EC_ROUNDS = 6, EC_MSG = 600 };

struct ec {
	bool shared, multishot, hog;
	int start_rc;
	weft_sockaddr addr;
	_Atomic int ok, failed, hung, bad, first_fail, first_bad;
	_Atomic int h_started, h_finished;
	weft_server_stats st;
	int shut_rc;
	_Atomic bool hog_stop;
	_Atomic int hogged;
	int hog_rc;
};

static void ec_echo(weft_stream *s, void *arg)
{
	struct ec *x = arg;
	atomic_fetch_add(&x->h_started, 1);
	echo_all(s);
	atomic_fetch_add(&x->h_finished, 1);
}

/* One connection: EC_ROUNDS messages echoed back byte for byte, or an
 * error (the server may close a connection it could not serve); never
 * silence until the deadline, never other bytes. */
static void *ec_client(void *arg)
{
	struct ec *x = arg;
	uint32_t rng = (uint32_t)weft_task_id(weft_task_current()) * 2654435761u;
	weft_scope sc;
	weft_scope_enter(&sc, HANG_LIMIT / 2);
	int fd;
	/* Out of fds or memory: a client may try again a few times. */
	for (int tries = 0;; tries++) {
		fd = weft_tcp_connect(&x->addr, WEFT_FOREVER);
		if (fd >= 0 || tries == 5 || (fd != -EMFILE && fd != -ENFILE && fd != -ENOMEM))
			break;
		weft_sleep_ms(2 + xorshift(&rng) % 8);
	}
	int r = fd < 0 ? fd : 0;
	char msg[EC_MSG], back[EC_MSG];
	for (int i = 0; i < EC_ROUNDS && r == 0; i++) {
		size_t n = 1 + xorshift(&rng) % EC_MSG;
		for (size_t k = 0; k < n; k++)
			msg[k] = (char)(xorshift(&rng) >> 7);
		ssize_t w = weft_send_all(fd, msg, n, 0, NULL);
		if (w < 0) {
			r = (int)w;
			break;
		}
		size_t got = 0;
		while (got < n) {
			ssize_t g = weft_recv(fd, back + got, n - got, 0);
			if (g <= 0) {
				r = g < 0 ? (int)g : -ECONNRESET; /* EOF: the server gave up */
				break;
			}
			got += (size_t)g;
		}
		if (r == 0 && memcmp(back, msg, n))
			r = -EBADMSG;
	}
	bool timed_out = sc.fired;
	weft_scope_exit(&sc);
	if (fd >= 0)
		close(fd);
	if (r == 0) {
		atomic_fetch_add(&x->ok, 1);
	} else if (timed_out) {
		atomic_fetch_add(&x->hung, 1);
	} else {
		atomic_fetch_add(&x->failed, 1);
		note_bad(&x->first_fail, r);
		if (!documented(r)) {
			atomic_fetch_add(&x->bad, 1);
			note_bad(&x->first_bad, r);
		}
	}
	return NULL;
}

/* Real EMFILE for everyone (the runtime's accepts, io_uring's multishot
 * accept included, and the clients' sockets): take every free fd for a
 * moment, again and again.  The test's own calls, not faults. */
static void *hog_main(void *arg)
{
	struct ec *x = arg;
	static int held[1024];
	uint32_t rng = 0x68e31da4u ^ (uint32_t)weft_fault_seed();
	while (!atomic_load(&x->hog_stop)) {
		int n = 0, fd;
		while (n < 1024 && (fd = dup(0)) >= 0)
			held[n++] = fd;
		atomic_fetch_add(&x->hogged, 1);
		msleep(1 + xorshift(&rng) % 3);
		while (n)
			close(held[--n]);
		msleep(5 + xorshift(&rng) % 20);
	}
	return NULL;
}

static void *ec_main(void *arg)
{
	struct ec *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.shared_listener = x->shared;
	cfg.multishot_recv = x->multishot;
	cfg.grace_ns = 2 * SEC;
	weft_server *srv = NULL;
	weft_addr_ip(&x->addr, "127.0.0.1", 0);
	/* Start (listen, spawn acceptors) under faults too; a failed start
	 * leaves nothing behind, so try again. */
	for (int tries = 0; tries < 100; tries++) {
		x->start_rc = weft_server_start(&srv, NULL, &x->addr, &cfg, ec_echo, x);
		if (x->start_rc != -ENOMEM && x->start_rc != -EMFILE && x->start_rc != -ENFILE &&
		    x->start_rc != -EAGAIN)
			break;
		weft_sleep_ms(1);
	}
	if (x->start_rc < 0)
		return NULL;
	pthread_t hog;
	if (x->hog)
		x->hog_rc = pthread_create(&hog, NULL, hog_main, x);
	weft_addr_ip(&x->addr, "127.0.0.1", weft_server_port(srv));
	weft_task *t[EC_CLIENTS];
	for (int i = 0; i < EC_CLIENTS; i++)
		t[i] = spawn_retry(ec_client, x, WEFT_PIN_NONE);
	join_all(t, EC_CLIENTS, &x->hung);
	if (x->hog && x->hog_rc == 0) {
		atomic_store(&x->hog_stop, true);
		pthread_join(hog, NULL); /* a few ms: it holds the loop that long */
	}
	x->shut_rc = weft_server_shutdown(srv, 2 * SEC);
	weft_server_stats_get(srv, &x->st);
	weft_server_destroy(srv);
	return NULL;
}

/* No mmap in the specs of these tests: defect 1 (a connection task that
 * cannot get its stack never runs; its fd leaks and shutdown hangs). */
static void tcp_echo(const char *spec, bool shared, bool multishot, bool hog)
{
	fault_setup(spec);
	static struct ec x;
	memset(&x, 0, sizeof x);
	x.shared = shared;
	x.multishot = multishot;
	x.hog = hog;
	struct rlimit old, low;
	if (hog) {
		/* Few enough fds to take them all; before the runtime starts,
		 * since io_uring's accept reads the limit when it is armed. */
		getrlimit(RLIMIT_NOFILE, &old);
		low = old;
		low.rlim_cur = fds_before + 3 * EC_CLIENTS + 64;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	}
	run_body(rt_start(2, 256, 0), ec_main, &x);
	if (hog)
		setrlimit(RLIMIT_NOFILE, &old);
	if (atomic_load(&x.bad))
		print_message("%d clients failed with an undocumented error, first %s\n",
			      atomic_load(&x.bad), weft_strerror(atomic_load(&x.first_bad)));
	print_message("echo (%s%s%s): %d ok, %d failed (first %s), %d hung; server accepted %llu, "
		      "rejected %llu, accept errors %llu, handlers %d/%d; %llu faults\n",
		      shared ? "shared listener" : "reuseport", multishot ? ", multishot" : "",
		      hog ? ", fds hogged" : "", atomic_load(&x.ok), atomic_load(&x.failed),
		      weft_strerror(atomic_load(&x.first_fail)), atomic_load(&x.hung),
		      (unsigned long long)x.st.accepted, (unsigned long long)x.st.rejected,
		      (unsigned long long)x.st.accept_errors, atomic_load(&x.h_finished),
		      atomic_load(&x.h_started), (unsigned long long)weft_fault_injected());
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(atomic_load(&x.hung), 0);
	assert_int_equal(atomic_load(&x.bad), 0);
	assert_int_equal(atomic_load(&x.ok) + atomic_load(&x.failed), EC_CLIENTS);
	assert_true(atomic_load(&x.ok) > 0);
	assert_int_equal(x.shut_rc, 0);
	assert_int_equal(x.st.active, 0);
	/* Every accepted connection was refused at once, or its task ran (a
	 * stream that could not be opened closes the fd without a handler),
	 * and every handler that started ran to its end. */
	assert_true(x.st.accepted - x.st.rejected >= (uint64_t)atomic_load(&x.h_started));
	assert_int_equal(atomic_load(&x.h_started), atomic_load(&x.h_finished));
	if (hog) {
		assert_int_equal(x.hog_rc, 0);
		assert_true(atomic_load(&x.hogged) > 0);
	}
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

static void fault_tcp_echo(void **state)
{
	(void)state;
	tcp_echo("all,-mmap", false, false, false);
}

static void fault_tcp_echo_shared_multishot(void **state)
{
	(void)state;
	tcp_echo("all,-mmap", true, true, false);
}

static void fault_tcp_echo_fds_exhausted(void **state)
{
	(void)state;
	tcp_echo("all,-mmap", false, false, true);
}

/* On epoll: registrations and accepts failing often (see
 * fault_server_listener_unregistrable for the acceptor's part). */
static void fault_tcp_echo_registrations(void **state)
{
	(void)state;
	if (backend_now() != WEFT_BACKEND_EPOLL)
		skip(); /* epoll's registrations */
	tcp_echo("epoll_ctl=0.3,accept=0.3", true, false, false);
}

/* A server whose acceptor meets only failures for a while (the spec of
 * the test) must serve the connection that waited meanwhile once they
 * stop. */
struct bo {
	bool start_under_faults; /* and connect at the end of the failures */
	_Atomic int echoed;
	int start_rc, rc;
};

static void bo_echo(weft_stream *s, void *arg)
{
	struct bo *x = arg;
	char b[4];
	ssize_t r;
	/* A handler that copes: out of memory (or watches) is worth another
	 * try, and read_exact keeps what it got meanwhile in the stream. */
	while ((r = weft_stream_read_exact(s, b, 4)) == -ENOMEM || r == -ENOSPC)
		weft_sleep_ms(1);
	if (r == 4 && weft_stream_write(s, b, 4) == 4 && weft_stream_flush(s) == 0)
		atomic_fetch_add(&x->echoed, 1);
}

static void *bo_main(void *arg)
{
	struct bo *x = arg;
	weft_fault_enable(x->start_under_faults);
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.shared_listener = true; /* its acceptor on loop 0; we run on 1 */
	weft_sockaddr a;
	weft_addr_ip(&a, "127.0.0.1", 0);
	weft_server *srv;
	if ((x->start_rc = weft_server_start(&srv, NULL, &a, &cfg, bo_echo, x)) < 0)
		return NULL;
	weft_addr_ip(&a, "127.0.0.1", weft_server_port(srv));
	weft_yield();
	/* The test's own socket and blocking connect (the backlog takes it). */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	weft_fault_enable(true);
	if (!x->start_under_faults) /* its failures come with the connection */
		x->rc = connect(fd, &a.sa, a.len) < 0 ? -errno : 0;
	for (uint64_t until = weft_now_ns() + 100 * MS; weft_now_ns() < until;)
		weft_yield(); /* no timer on this loop either */
	if (x->start_under_faults) /* after them: the acceptor must be there */
		x->rc = connect(fd, &a.sa, a.len) < 0 ? -errno : 0;
	weft_fault_enable(false);
	if (x->rc == 0) {
		weft_scope sc;
		weft_scope_enter(&sc, 5 * SEC);
		char b[4];
		ssize_t r = weft_send_all(fd, "ping", 4, 0, NULL);
		if (r == 4) {
			size_t got = 0;
			while (got < 4 && (r = weft_recv(fd, b + got, 4 - got, 0)) > 0)
				got += (size_t)r;
			r = got == 4 ? 0 : r < 0 ? r : -ECONNRESET;
		}
		x->rc = (int)(r < 0 ? r : 0);
		weft_scope_exit(&sc);
	}
	close(fd);
	weft_server_destroy(srv);
	return NULL;
}

static void served_after_failures(const char *spec, bool start_under_faults)
{
	if (backend_now() != WEFT_BACKEND_EPOLL)
		skip(); /* accept4 and epoll_ctl are epoll's (io_uring accepts in the kernel) */
	fault_setup(spec);
	static struct bo x;
	memset(&x, 0, sizeof x);
	x.start_under_faults = start_under_faults;
	run_body_on(rt_start(2, 256, 0), 1, bo_main, &x);
	print_message("%s: connection %s, echoed %d; %llu faults\n", spec, weft_strerror(x.rc),
		      atomic_load(&x.echoed), (unsigned long long)weft_fault_injected());
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.rc, 0);
	assert_int_equal(atomic_load(&x.echoed), 1);
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

/* Regression: an acceptor backing off after a failed accept sleeps; a
 * sleep that failed for memory (its timer could not be armed) ended the
 * acceptor and closed the listener for good.  Every accept4 and every
 * allocation fails while a client connects; the acceptor's loop has armed
 * no timer yet, so its first sleep needs memory. */
static void fault_server_backoff_without_memory(void **state)
{
	(void)state;
	served_after_failures("accept=1,alloc=1", false);
}

/* Regression: a listener whose epoll registration failed with ENOSPC
 * (epoll's max_user_watches) ended the acceptor for good: every later
 * client was refused. */
static void fault_server_listener_unregistrable(void **state)
{
	(void)state;
	served_after_failures("epoll_ctl=1", true);
}

/* ---------------------------------------------------------------------- */
/* streams: a byte stream arrives whole and in order, or someone was told  */
/* ---------------------------------------------------------------------- */

enum { ST_PAIRS = 8, ST_BYTES = 256 * 1024 };

struct st_pair {
	struct st *x;
	int fd[2];       /* [0] written, [1] read */
	bool multishot;
	int wr_err, rd_err; /* first error each side was told of, 0 none */
	size_t got;
	bool corrupt, eof;
};

struct st {
	struct st_pair p[ST_PAIRS];
	_Atomic int hung;
};

/* Open a stream over fd, retrying a failure for memory. */
static int st_open(weft_stream **s, int fd, bool multishot)
{
	weft_stream_config c;
	weft_stream_config_init(&c);
	c.multishot = multishot;
	int r;
	while ((r = weft_stream_open(s, fd, &c)) == -ENOMEM)
		weft_yield();
	return r;
}

static void *st_writer(void *arg)
{
	struct st_pair *p = arg;
	weft_stream *s;
	int r = st_open(&s, p->fd[0], false);
	if (r < 0) {
		p->wr_err = r;
		close(p->fd[0]);
		return NULL;
	}
	uint8_t chunk[3000];
	for (size_t off = 0; off < ST_BYTES && r == 0;) {
		size_t n = ST_BYTES - off < sizeof chunk ? ST_BYTES - off : sizeof chunk;
		for (size_t i = 0; i < n; i++)
			chunk[i] = pat(off + i);
		ssize_t w;
		while ((w = weft_stream_write(s, chunk, n)) == -ENOMEM)
			weft_yield(); /* nothing was queued: again */
		if (w < 0)
			r = (int)w;
		else if ((r = weft_stream_drain(s)) == 0)
			off += n;
	}
	int c = weft_stream_close(s); /* flushes; closes the fd */
	p->wr_err = r ? r : c;
	return NULL;
}

static void *st_reader(void *arg)
{
	struct st_pair *p = arg;
	weft_stream *s;
	int r = st_open(&s, p->fd[1], p->multishot);
	if (r < 0) {
		p->rd_err = r;
		close(p->fd[1]);
		return NULL;
	}
	uint8_t buf[4096];
	for (;;) {
		ssize_t n = weft_stream_read(s, buf, sizeof buf);
		if (n == -ENOMEM || n == -ENOSPC || n == -ENOBUFS)
			continue; /* nothing was taken: try again */
		if (n <= 0) {
			p->rd_err = (int)n;
			p->eof = n == 0;
			break;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pat(p->got + (size_t)i))
				p->corrupt = true;
		p->got += (size_t)n;
	}
	weft_stream_close(s);
	return NULL;
}

static void *st_main(void *arg)
{
	struct st *x = arg;
	weft_task *t[2 * ST_PAIRS];
	for (int i = 0; i < ST_PAIRS; i++) {
		t[2 * i] = spawn_retry(st_writer, &x->p[i], WEFT_PIN_NONE);
		t[2 * i + 1] = spawn_retry(st_reader, &x->p[i], WEFT_PIN_NONE);
	}
	join_all(t, 2 * ST_PAIRS, &x->hung);
	return NULL;
}

static void fault_stream_transfer(void **state)
{
	(void)state;
	/* No mmap: defect 1 (a multishot stream's close waits for its
	 * always_run canceller, which a failed stack never starts). */
	fault_setup("all,-mmap,alloc=0.3");
	static struct st x;
	memset(&x, 0, sizeof x);
	for (int i = 0; i < ST_PAIRS; i++) {
		x.p[i].x = &x;
		x.p[i].multishot = i & 1;
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x.p[i].fd), 0);
	}
	run_body(rt_start(2, 256, 0), st_main, &x);
	int whole = 0, bad = 0;
	for (int i = 0; i < ST_PAIRS; i++) {
		struct st_pair *p = &x.p[i];
		bool told = p->wr_err || (p->rd_err && !p->eof);
		if (p->got == ST_BYTES && !p->corrupt)
			whole++;
		/* Short without anyone told, corrupt, or an odd error. */
		if (p->corrupt || p->got > ST_BYTES || (p->got < ST_BYTES && !told) ||
		    (p->wr_err && !documented(p->wr_err)) ||
		    (p->rd_err && !p->eof && !documented(p->rd_err))) {
			print_message("pair %d: %zu of %d bytes%s, writer %s, reader %s\n", i, p->got,
				      ST_BYTES, p->corrupt ? " (corrupt)" : "",
				      weft_strerror(p->wr_err), weft_strerror(p->rd_err));
			bad++;
		}
	}
	print_message("streams: %d of %d transfers whole; %llu faults\n", whole, ST_PAIRS,
		      (unsigned long long)weft_fault_injected());
	assert_int_equal(atomic_load(&x.hung), 0);
	assert_int_equal(bad, 0);
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* scenarios: one failed allocation at each point in turn, or at random    */
/* ---------------------------------------------------------------------- */

/* A scenario is a task body over a state of its own: init prepares the
 * state (rng: the mix of calls, 0 fixed; single: one fault at a chosen
 * allocation, which the body lets bite only once its set-up is done, by
 * calling scen_setup_done), check compares the outcome once the runtime
 * is gone (0, or 1 and a line saying what broke, naming run n). */
struct scen {
	const char *what;
	weft_fn body;
	void (*init)(void *x, uint32_t rng, bool single);
	int (*check)(void *x, unsigned long long n);
	size_t size;      /* of one state */
	void *states;     /* count of them: the random runs' (the first: the
			     single one's) */
	int count;
	const char *spec; /* the random runs' faults */
};

static void scen_setup_done(void)
{
	weft_fault_enable(true);
}

static void *scen_single_main(void *arg)
{
	struct body *b = arg;
	weft_fault_enable(false); /* until the body's scen_setup_done */
	return b->fn(b->arg);
}

/* Fail allocation n = 1, 2, ... of one run, each in a fresh one-loop
 * runtime (its caches empty: every buffer and op comes from malloc),
 * until a run makes fewer than n.  A cmocka test: *state the scenario. */
static void scen_each_alloc(void **state)
{
	const struct scen *sc = *state;
	void *x = sc->states;
	fault_setup("none");
	int bad = 0;
	uint64_t n = 1;
	for (; n < 400; n++) {
		sc->init(x, 0, true);
		uint64_t before = weft_fault_injected();
		weft_fault_fail_nth("alloc", n);
		run_body_on(rt_start(1, 16, 0), 0, scen_single_main, &(struct body){ sc->body, x });
		weft_fault_fail_nth("alloc", 0);
		bool hit = weft_fault_injected() > before;
		bad += sc->check(x, n);
		if (!hit)
			break;
	}
	print_message("%s: %llu allocation points failed in turn, %d bad\n", sc->what,
		      (unsigned long long)n - 1, bad);
	assert_true(n > 5);
	assert_int_equal(bad, 0);
	fault_teardown();
}

enum { SCEN_MAX = 8 };

struct scen_many {
	const struct scen *sc;
	char *xs;
	int count;
	_Atomic int hung;
};

static void *scen_many_main(void *arg)
{
	struct scen_many *m = arg;
	weft_task *t[SCEN_MAX];
	for (int i = 0; i < m->count; i++)
		t[i] = spawn_retry(m->sc->body, m->xs + i * m->sc->size, WEFT_PIN_NONE);
	join_all(t, m->count, &m->hung);
	return NULL;
}

/* The scenario's runs at once, under its faults at random, in a
 * two-loop runtime.  A cmocka test: *state the scenario. */
static void scen_random(void **state)
{
	const struct scen *sc = *state;
	void *xs = sc->states;
	int count = sc->count;
	assert_true(count <= SCEN_MAX);
	fault_setup(sc->spec);
	uint32_t rng = (uint32_t)weft_fault_seed() | 1;
	for (int i = 0; i < count; i++)
		sc->init((char *)xs + i * sc->size, xorshift(&rng) | 1, false);
	struct scen_many m = { .sc = sc, .xs = xs, .count = count };
	run_body(rt_start(2, 64, 0), scen_many_main, &m);
	int bad = 0;
	for (int i = 0; i < count; i++)
		bad += sc->check((char *)xs + i * sc->size, (unsigned long long)i);
	assert_int_equal(atomic_load(&m.hung), 0);
	assert_int_equal(bad, 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* the write path: every accepted byte reaches the peer once, in order,    */
/* with the FIN behind the last of them, or the writer is told             */
/* ---------------------------------------------------------------------- */

/* A writer task drives one stream through write, writev, reserve/commit,
 * write_zc, drain and flush, then shutdown and close (keep_fd: the test
 * closes the fd, so the only end of input the peer can see is the
 * stream's own FIN).  The peer is a plain thread outside the runtime.
 * `acc` counts the bytes of every write call that returned success: the
 * peer must get exactly pat(0..acc) and then end of input, unless a call
 * reported an error; it may get a prefix without end of input then, but
 * never a byte twice, out of order, or an end of input ahead of accepted
 * bytes.  A write call's -ENOMEM means nothing was queued and the stream
 * is intact (weft/stream.h), so the writer tries it again: a stream that
 * keeps answering -ENOMEM to a writer that retries has spun. */
enum { WP_STEPS = 24, WP_RETRY = 200, WP_PAIRS = 4, WP_MAXLEN = 9000 };

struct wp {
	int fd[2];        /* [0] the stream's, [1] the peer's */
	uint32_t rng;     /* the mix of calls and sizes; 0: the fixed script */
	bool single;      /* one fault at most: a retry must succeed at once */
	/* the writer */
	uint64_t acc, shut_at;
	int first_err;    /* the first error other than a transient -ENOMEM */
	int shut_rc, close_rc, odd_err;
	bool spun;
	/* the peer */
	_Atomic bool writer_done; /* set once nothing more can come */
	uint64_t got;
	bool corrupt, eof;
	int rd_err;
	pthread_t peer;
};

/* An error a write-path call may return (weft/stream.h): -ENOMEM with
 * nothing queued; a sticky send error (-EPIPE, -ECONNRESET, -ENOBUFS, the
 * epoll backend's -ENOSPC when it cannot watch the socket, -EIO for bytes
 * the runtime dropped for want of memory). */
static bool wp_documented(int r)
{
	switch (-r) {
	case ENOMEM: case EIO: case ENOBUFS: case EPIPE: case ECONNRESET: case ENOSPC:
		return true;
	default:
		return false;
	}
}

static void wp_note(struct wp *w, int r)
{
	if (!w->first_err)
		w->first_err = r;
	if (!wp_documented(r) && !w->odd_err)
		w->odd_err = r;
}

/* One write call of kind k for the next len bytes: len, or its error. */
static ssize_t wp_call(weft_stream *s, struct wp *w, unsigned k, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(w->acc + i);
	switch (k) {
	case 0:
		return weft_stream_write(s, buf, len);
	case 1: {
		size_t a = len / 3;
		struct iovec v[3] = { { buf, a }, { buf + a, a }, { buf + 2 * a, len - 2 * a } };
		return weft_stream_writev(s, v, 3);
	}
	case 2: {
		void *p;
		int r = weft_stream_reserve(s, len + 64, &p);
		if (r < 0)
			return r;
		memcpy(p, buf, len);
		r = weft_stream_commit(s, len);
		return r < 0 ? r : (ssize_t)len;
	}
	default:
		return weft_stream_write_zc(s, buf, len);
	}
}

/* Retry a transient -ENOMEM: in single mode the one fault is spent, so
 * the first retry must succeed. */
static ssize_t wp_write(weft_stream *s, struct wp *w, unsigned k, uint8_t *buf, size_t len)
{
	ssize_t r = -ENOMEM;
	for (int i = 0; i < WP_RETRY && r == -ENOMEM; i++) {
		if (i == (w->single ? 2 : WP_RETRY - 1))
			w->spun = true;
		if (i && weft_yield() == -ECANCELED)
			return -ECANCELED;
		r = wp_call(s, w, k, buf, len);
	}
	return r;
}

static void *wp_writer(void *arg)
{
	struct wp *w = arg;
	weft_stream_config c;
	weft_stream_config_init(&c);
	c.keep_fd = true;
	c.high_water = 8192; /* drain waits */
	c.low_water = 2048;
	c.zc_threshold = 2048;
	weft_stream *s;
	int r;
	while ((r = weft_stream_open(&s, w->fd[0], &c)) == -ENOMEM)
		weft_yield();
	if (r < 0) {
		w->first_err = w->odd_err = r;
		return NULL;
	}
	if (w->single) /* the fault goes to the write path, not the open */
		scen_setup_done();
	static const size_t sizes[] = { 100, 3000, 5000, 1, 9000, 2500, 700 };
	uint8_t *buf = malloc(WP_MAXLEN);
	for (unsigned i = 0; i < WP_STEPS && buf && !w->first_err && !w->spun; i++) {
		unsigned k = w->rng ? xorshift(&w->rng) % 4 : i % 4;
		size_t len = w->rng ? 1 + xorshift(&w->rng) % WP_MAXLEN : sizes[i % 7];
		ssize_t n = wp_write(s, w, k, buf, len);
		if (n < 0 && !(n == -ENOMEM && w->spun)) {
			wp_note(w, (int)n);
			break;
		}
		if (n > 0)
			w->acc += (uint64_t)n;
		if (i % 3 == 2 && (r = weft_stream_drain(s)) < 0)
			wp_note(w, r);
		else if (i % 5 == 4 && (r = weft_stream_flush(s)) < 0)
			wp_note(w, r);
	}
	free(buf);
	w->shut_at = w->acc;
	if ((w->shut_rc = weft_stream_shutdown(s)) < 0)
		wp_note(w, w->shut_rc);
	if ((w->close_rc = weft_stream_close(s)) < 0)
		wp_note(w, w->close_rc);
	return NULL;
}

/* The peer: reads what comes, checks it against the pattern, until end
 * of input, an error, or (once the writer is gone) an empty socket. */
static void *wp_peer(void *arg)
{
	struct wp *w = arg;
	uint8_t buf[4096];
	for (;;) {
		bool last = atomic_load(&w->writer_done); /* before the look */
		ssize_t n = recv(w->fd[1], buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			for (ssize_t i = 0; i < n; i++)
				w->corrupt |= buf[i] != pat(w->got + (uint64_t)i);
			w->got += (uint64_t)n;
		} else if (n == 0) {
			w->eof = true;
			return NULL;
		} else if (errno == EAGAIN) {
			int out = 0; /* TCP: unacknowledged, the FIN included */
			if (last && (ioctl(w->fd[0], SIOCOUTQ, &out) < 0 || !out))
				return NULL; /* nothing more is on its way */
			poll(&(struct pollfd){ .fd = w->fd[1], .events = POLLIN }, 1, 2);
		} else if (errno != EINTR) {
			w->rd_err = -errno;
			return NULL;
		}
	}
}

/* A connected TCP loopback pair, made outside the runtime. */
static void tcp_pair_plain(int fd[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &n), 0);
	fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd[0], (struct sockaddr *)&a, sizeof a), 0);
	fd[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd[1] >= 0);
	close(l);
}

static void wp_init_on(struct wp *w, uint32_t rng, bool single, bool tcp)
{
	memset(w, 0, sizeof *w);
	w->rng = rng;
	w->single = single;
	if (tcp) /* write_zc sends with IORING_OP_SEND_ZC where there is one */
		tcp_pair_plain(w->fd);
	else
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->fd), 0);
	int small = 4096; /* partial sends, a full socket, drains that wait */
	setsockopt(w->fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	assert_int_equal(pthread_create(&w->peer, NULL, wp_peer, w), 0);
}

static void wp_init(void *x, uint32_t rng, bool single)
{
	wp_init_on(x, rng, single, false);
}

static void wp_init_tcp(void *x, uint32_t rng, bool single)
{
	wp_init_on(x, rng, single, true);
}

/* After the runtime is gone: the peer's view against the writer's.  0 or
 * 1 (and a line saying what broke). */
static int wp_check(void *x, unsigned long long n)
{
	struct wp *w = x;
	atomic_store(&w->writer_done, true);
	pthread_join(w->peer, NULL);
	close(w->fd[0]);
	close(w->fd[1]);
	bool told = w->first_err || w->shut_rc || w->close_rc;
	const char *why = w->corrupt ? "a byte repeated, lost or out of order"
		: w->got > w->acc ? "more bytes than accepted"
		: w->eof && w->got != w->shut_at && !w->close_rc ? "end of input ahead of accepted bytes"
		: !told && !(w->eof && w->got == w->acc) ? "short or no FIN, nobody told"
		: w->spun ? "-ENOMEM to every retry (sticky?)"
		: w->odd_err ? "an undocumented error"
		: w->rd_err ? "the peer's read failed"
		: w->first_err && (!w->shut_rc || !w->close_rc) ? "an error that did not stick"
		: NULL;
	if (!why)
		return 0;
	print_message("writer %llu: %s: peer got %llu%s of %llu accepted (%llu at shutdown); "
		      "first error %s, shutdown %s, close %s, odd %s (seed %llu)\n",
		      n, why, (unsigned long long)w->got, w->eof ? "+FIN" : "",
		      (unsigned long long)w->acc, (unsigned long long)w->shut_at,
		      weft_strerror(w->first_err), weft_strerror(w->shut_rc),
		      weft_strerror(w->close_rc), weft_strerror(w->odd_err),
		      (unsigned long long)weft_fault_seed());
	return 1;
}

/* fault_stream_write_each_alloc, and fault_stream_write_path: four
 * writers under allocations, a full or stuck SQ, busy enters, epoll
 * registrations and (epoll's) sends failing at random. */
static struct wp wp_states[WP_PAIRS];
static struct scen wp_scen = { "write path", wp_writer, wp_init, wp_check,
				      sizeof(struct wp), wp_states, WP_PAIRS,
				      "transparent,alloc=0.1,epoll_ctl=0.05,send=0.01" };
/* The same over TCP: real zero-copy sends on io_uring. */
static struct scen wp_tcp_scen = { "write path (TCP)", wp_writer, wp_init_tcp, wp_check,
				   sizeof(struct wp), wp_states, WP_PAIRS,
				   "transparent,alloc=0.1,epoll_ctl=0.05,send=0.01" };

/* ---------------------------------------------------------------------- */
/* weft_stream_copy_bidirectional: each direction whole with its half-close */
/* behind it, or the copy fails with its counts and the end stays short    */
/* ---------------------------------------------------------------------- */

/* end1 <-> a ==copy== b <-> end2, AF_UNIX pairs; the ends are plain
 * threads that send CX_BYTES each (non-blocking, so a copy that stopped
 * cannot hold them), then SHUT_WR, and read the other's bytes.  a and b
 * keep their fds (closed by the test), so an end's end of input is the
 * copy's half-close, or a close that gave up on a send (weft/stream.h). */
enum { CX_BYTES = 48 * 1024 };
#define CX_BASE2 7777777u /* end2's bytes are pat(CX_BASE2 + i) */

struct cx_end {
	int fd;
	uint64_t base, peer_base; /* its bytes' pattern, and the other end's */
	uint64_t sent, got;
	bool corrupt, eof;
	int err;
	_Atomic bool *stop;
	pthread_t th;
};

struct cx {
	int fd[2];               /* a's and b's */
	struct cx_end e[2];      /* end1 (a's peer), end2 (b's peer) */
	_Atomic bool stop;       /* set once the runtime is gone */
	bool single;
	int rc, close_rc[2], open_rc;
	weft_stream_copied out;
	int failed;              /* out.failed: 0 none, 1 a, 2 b */
};

static void *cx_end_run(void *arg)
{
	struct cx_end *e = arg;
	uint8_t buf[4096];
	bool shut = false;
	for (;;) {
		bool last = atomic_load(e->stop), idle = true;
		if (!shut && e->sent < CX_BYTES) {
			size_t k = CX_BYTES - e->sent < sizeof buf ? CX_BYTES - e->sent : sizeof buf;
			for (size_t i = 0; i < k; i++)
				buf[i] = pat(e->base + e->sent + i);
			ssize_t w = send(e->fd, buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0) {
				e->sent += (uint64_t)w;
				idle = false;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				shut = true; /* the other side is gone: reads say how */
			}
		}
		if (!shut && e->sent == CX_BYTES) {
			shutdown(e->fd, SHUT_WR);
			shut = true;
		}
		if (!e->eof && !e->err) {
			ssize_t n = recv(e->fd, buf, sizeof buf, MSG_DONTWAIT);
			if (n > 0) {
				for (ssize_t i = 0; i < n; i++)
					e->corrupt |= buf[i] != pat(e->peer_base + e->got + (uint64_t)i);
				e->got += (uint64_t)n;
				idle = false;
			} else if (n == 0) {
				e->eof = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				e->err = -errno;
			}
		}
		if (shut && (e->eof || e->err))
			return NULL;
		if (idle) {
			if (last)
				return NULL; /* nothing more can come */
			short ev = (short)(POLLIN | (shut ? 0 : POLLOUT));
			poll(&(struct pollfd){ .fd = e->fd, .events = ev }, 1, 2);
		}
	}
}

static void *cx_main(void *arg)
{
	struct cx *x = arg;
	weft_stream_config c;
	weft_stream_config_init(&c);
	c.keep_fd = true;
	c.high_water = 8192; /* backpressure: the directions wait on their writers */
	c.low_water = 2048;
	weft_stream *s[2] = { NULL, NULL };
	for (int i = 0; i < 2; i++) {
		while ((x->open_rc = weft_stream_open(&s[i], x->fd[i], &c)) == -ENOMEM)
			weft_yield();
		if (x->open_rc < 0) {
			if (i)
				weft_stream_close(s[0]);
			return NULL;
		}
	}
	if (x->single)
		scen_setup_done();
	x->rc = weft_stream_copy_bidirectional(s[0], s[1], NULL, &x->out);
	x->failed = x->out.failed == s[0] ? 1 : x->out.failed == s[1] ? 2 : 0;
	x->out.failed = NULL;
	for (int i = 0; i < 2; i++)
		x->close_rc[i] = weft_stream_close(s[i]);
	return NULL;
}

static void cx_init(void *arg, uint32_t rng, bool single)
{
	struct cx *x = arg;
	(void)rng;
	memset(x, 0, sizeof *x);
	x->single = single;
	int pa[2], pb[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pa), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pb), 0);
	x->fd[0] = pa[1];
	x->fd[1] = pb[0];
	x->e[0] = (struct cx_end){ .fd = pa[0], .base = 0, .peer_base = CX_BASE2, .stop = &x->stop };
	x->e[1] = (struct cx_end){ .fd = pb[1], .base = CX_BASE2, .peer_base = 0, .stop = &x->stop };
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&x->e[i].th, NULL, cx_end_run, &x->e[i]), 0);
}

/* After the runtime is gone: 0 or 1 (and a line saying what broke). */
static int cx_check(void *arg, unsigned long long n)
{
	struct cx *x = arg;
	atomic_store(&x->stop, true);
	for (int i = 0; i < 2; i++) {
		pthread_join(x->e[i].th, NULL);
		close(x->e[i].fd);
		close(x->fd[i]);
	}
	const char *why = NULL;
	uint64_t moved[2] = { x->out.a_to_b, x->out.b_to_a };
	for (int d = 0; d < 2 && !why && !x->open_rc; d++) {
		struct cx_end *src = &x->e[d], *dst = &x->e[!d];
		/* dst's stream is b for d == 0, a for d == 1 */
		int dst_close = x->close_rc[!d];
		if (dst->corrupt)
			why = "a byte repeated, lost or out of order";
		else if (moved[d] > src->sent || dst->got > moved[d])
			why = "counts: more moved than sent, or more arrived than moved";
		else if (dst->eof && !dst_close && (dst->got != moved[d] || moved[d] != CX_BYTES))
			why = "half-close ahead of the bytes, or before the source's end";
		else if (dst->err)
			why = "an end's read failed";
	}
	if (!why && !x->open_rc) {
		if (x->rc == 0 && (x->failed || moved[0] != CX_BYTES || moved[1] != CX_BYTES ||
				   !x->e[0].eof || !x->e[1].eof || x->e[0].got != CX_BYTES ||
				   x->e[1].got != CX_BYTES || x->close_rc[0] || x->close_rc[1]))
			why = "0, but a direction is short";
		else if (x->rc < 0 && (!wp_documented(x->rc) || !x->failed))
			why = "an undocumented result, or no failed stream";
	}
	if (!why)
		return 0;
	print_message("copy %llu: %s: rc %s (failed %d), a_to_b %llu b_to_a %llu; end1 sent %llu "
		      "got %llu%s, end2 sent %llu got %llu%s; close a %s b %s (seed %llu)\n",
		      n, why, weft_strerror(x->rc), x->failed, (unsigned long long)moved[0],
		      (unsigned long long)moved[1], (unsigned long long)x->e[0].sent,
		      (unsigned long long)x->e[0].got, x->e[0].eof ? "+FIN" : "",
		      (unsigned long long)x->e[1].sent, (unsigned long long)x->e[1].got,
		      x->e[1].eof ? "+FIN" : "", weft_strerror(x->close_rc[0]),
		      weft_strerror(x->close_rc[1]), (unsigned long long)weft_fault_seed());
	return 1;
}

/* fault_copy_each_alloc, and fault_copy_bidirectional: three copies
 * under random faults. */
static struct cx cx_states[3];
static struct scen cx_scen = { "copy", cx_main, cx_init, cx_check, sizeof(struct cx),
				      cx_states, 3,
				      "transparent,alloc=0.05,epoll_ctl=0.02,send=0.005" };

/* ---------------------------------------------------------------------- */
/* the blocking pool when threads cannot be had                             */
/* ---------------------------------------------------------------------- */

enum { OF_CALLERS = 16, OF_CALLS = 40 };

struct of {
	_Atomic int ok, failed, bad, hung, cancelled;
	_Atomic int cleaned; /* cleanup calls: each failed or abandoned call's arg */
	_Atomic int started_calls;
};

static void *of_job(void *arg)
{
	usleep(100);
	return arg;
}

static void of_cleanup(void *result, void *arg)
{
	struct of *x = arg;
	(void)result;
	atomic_fetch_add(&x->cleaned, 1);
}

static void *of_caller(void *arg)
{
	struct of *x = arg;
	for (int i = 0; i < OF_CALLS; i++) {
		void *v = NULL;
		atomic_fetch_add(&x->started_calls, 1);
		int r = weft_offload_ex(of_job, x, of_cleanup, &v);
		if (r == 0) {
			atomic_fetch_add(&x->ok, 1);
			if (v != x)
				atomic_fetch_add(&x->bad, 1);
		} else {
			atomic_fetch_add(&x->failed, 1);
			if (!documented(r))
				atomic_fetch_add(&x->bad, 1);
			if (r == -ECANCELED) {
				atomic_fetch_add(&x->cancelled, 1);
				return NULL;
			}
		}
	}
	return NULL;
}

static void *of_main(void *arg)
{
	struct of *x = arg;
	weft_task *t[OF_CALLERS];
	for (int i = 0; i < OF_CALLERS; i++)
		t[i] = spawn_retry(of_caller, x, WEFT_PIN_NONE);
	weft_sleep_ms(5);
	for (int i = 0; i < OF_CALLERS; i += 4)
		weft_task_cancel(t[i]);
	join_all(t, OF_CALLERS, &x->hung);
	return NULL;
}

static void fault_offload_threads(void **state)
{
	(void)state;
	fault_setup("all,thread=0.2");
	static struct of x;
	memset(&x, 0, sizeof x);
	run_body(rt_start(2, 4, 16), of_main, &x);
	print_message("offload: %d calls returned a result, %d an error (%d cancelled), "
		      "%d cleanups; %llu faults\n",
		      atomic_load(&x.ok), atomic_load(&x.failed), atomic_load(&x.cancelled),
		      atomic_load(&x.cleaned), (unsigned long long)weft_fault_injected());
	assert_int_equal(atomic_load(&x.hung), 0);
	assert_int_equal(atomic_load(&x.bad), 0);
	assert_int_equal(atomic_load(&x.ok) + atomic_load(&x.failed),
			 atomic_load(&x.started_calls));
	/* A call that failed handed its arg to cleanup (the job never ran, or
	 * its result was abandoned); one that succeeded did not. */
	assert_int_equal(atomic_load(&x.cleaned), atomic_load(&x.failed));
	assert_true(atomic_load(&x.ok) > 0);
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* start and stop under faults: a failed start leaves nothing behind       */
/* ---------------------------------------------------------------------- */

static unsigned count_threads(void)
{
	unsigned n = 0;
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %u", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/* The process's thread count once it has come down to `want`, or after a
 * second: a joined thread is still counted for a moment after
 * pthread_join returns (the kernel wakes the joiner at the thread's exit
 * from its memory, before it leaves the thread group), so a count taken
 * at once can see one that is gone; one still there after a second is
 * not. */
static unsigned threads_settled(unsigned want)
{
	unsigned n = count_threads();
	for (int i = 0; i < 1000 && n != want; i++) {
		usleep(1000);
		n = count_threads();
	}
	return n;
}

static void *ss_child(void *arg)
{
	weft_yield();
	return arg;
}

static void *ss_body(void *arg)
{
	(void)arg;
	weft_task *t[8];
	for (int i = 0; i < 8; i++)
		t[i] = go_pinned(ss_child, NULL, WEFT_PIN_NONE);
	weft_sleep_ms(1);
	for (int i = 0; i < 8; i++)
		if (t[i]) {
			weft_task_join(t[i], NULL);
			weft_task_release(t[i]);
		}
	return NULL;
}

static void fault_start_stop(void **state)
{
	(void)state;
	fault_setup("all,ring=0.1,fd=0.1,thread=0.1,alloc=0.05");
	unsigned threads = count_threads();
	int started = 0, failed = 0, bad = 0;
	for (int i = 0; i < 40; i++) {
		weft_runtime_config cfg;
		weft_runtime_config_init(&cfg);
		cfg.loops = 2;
		cfg.backend_quiet = true;
		weft_runtime *rt = NULL;
		weft_fault_enable(true);
		int r = weft_runtime_start(&rt, &cfg);
		if (r == 0) {
			started++;
			weft_runtime_call(rt, ss_body, NULL, NULL);
			weft_runtime_destroy(rt);
		} else {
			failed++;
			if (!documented(r) || rt) {
				print_message("start %d failed with %s (%d), rt %p\n", i,
					      weft_strerror(r), r, (void *)rt);
				bad++;
			}
		}
		weft_fault_enable(false);
		unsigned fds = weft_fault_open_fds(), th = threads_settled(threads);
		if (fds != fds_before || th != threads) {
			print_message("after start %d (%s): %u fds (%u before), %u threads (%u)\n", i,
				      weft_strerror(r), fds, fds_before, th, threads);
			bad++;
		}
	}
	print_message("start/stop: %d started, %d failed to start; %llu faults\n", started,
		      failed, (unsigned long long)weft_fault_injected());
	assert_int_equal(bad, 0);
	assert_true(started > 0);
	assert_true(failed > 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* a wake whose submission fails is not left waiting for the waker         */
/* ---------------------------------------------------------------------- */

/* Regression: a cross-loop wake (MSG_RING) whose io_uring_enter failed
 * stayed in the waker's SQ until that loop next entered its ring; a waker
 * that went on running (here: spinning for the woken task) kept the
 * sleeping loop asleep.  Now such a wake also goes by the eventfd. */
enum { WK_ROUNDS = 20 };

struct wk {
	weft_future *f;
	_Atomic bool woke;
	_Atomic int late;
};

static void *wk_sleeper(void *arg)
{
	struct wk *x = arg;
	weft_future_wait(x->f, NULL);
	atomic_store(&x->woke, true);
	return NULL;
}

static void *wk_main(void *arg)
{
	struct wk *x = arg;
	for (int i = 0; i < WK_ROUNDS; i++) {
		weft_future_create(&x->f);
		atomic_store(&x->woke, false);
		weft_task *s = spawn_retry(wk_sleeper, x, 1);
		weft_sleep_ms(3); /* loop 1 parks, its task waiting */
		weft_future_set_result(x->f, NULL);
		uint64_t until = weft_now_ns() + 2 * SEC;
		while (!atomic_load(&x->woke) && weft_now_ns() < until)
			; /* this loop never enters its ring meanwhile */
		if (!atomic_load(&x->woke))
			atomic_fetch_add(&x->late, 1);
		join_limit(s, NULL);
		weft_future_release(x->f);
	}
	return NULL;
}

static void fault_wake_from_busy_loop(void **state)
{
	(void)state;
	if (backend_now() != WEFT_BACKEND_IO_URING)
		skip(); /* epoll wakes by eventfd only */
	fault_setup("enter=0.5");
	static struct wk x;
	memset(&x, 0, sizeof x);
	run_body_on(rt_start(2, 256, 0), 0, wk_main, &x);
	print_message("busy waker: %d of %d wakes late; %llu faults\n", atomic_load(&x.late),
		      WK_ROUNDS, (unsigned long long)weft_fault_injected());
	assert_int_equal(atomic_load(&x.late), 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* wakes from foreign threads through an eventfd that is interrupted       */
/* ---------------------------------------------------------------------- */

/* Regression: a wake written to a loop's eventfd was not written again
 * when the write failed with EINTR, so the sleeping loop never learnt of
 * its woken task.  A foreign thread completes futures a task waits for on
 * a sleeping loop, one at a time. */
enum { EF_ROUNDS = 100 };

struct ef {
	weft_future *f[EF_ROUNDS];
	_Atomic int done;
	int err;
};

static void *ef_waiter(void *arg)
{
	struct ef *x = arg;
	for (int i = 0; i < EF_ROUNDS; i++) {
		int r = weft_future_wait(x->f[i], NULL);
		if (r < 0) {
			x->err = r;
			break;
		}
		atomic_store(&x->done, i + 1);
	}
	return NULL;
}

static void fault_wake_by_interrupted_eventfd(void **state)
{
	(void)state;
	fault_setup("eventfd=0.5");
	static struct ef x;
	memset(&x, 0, sizeof x);
	for (int i = 0; i < EF_ROUNDS; i++)
		assert_int_equal(weft_future_create(&x.f[i]), 0);
	weft_runtime *rt = rt_start(1, 256, 0);
	weft_task *t = NULL;
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, ef_waiter, &x), 0);
	int late = 0;
	weft_fault_enable(true);
	for (int i = 0; i < EF_ROUNDS && !late; i++) {
		msleep(1); /* the loop goes to sleep */
		weft_future_set_result(x.f[i], NULL); /* wakes it by its eventfd */
		for (int ms = 0; atomic_load(&x.done) <= i; ms++) {
			if (ms == 2000) {
				late = i + 1;
				break;
			}
			msleep(1);
		}
	}
	weft_fault_enable(false);
	if (late) /* the loop sleeps for good: no shutdown, just the report */
		fail_msg("wake %d of %d never arrived (seed %llu)", late, EF_ROUNDS,
			 (unsigned long long)weft_fault_seed());
	for (int i = atomic_load(&x.done); i < EF_ROUNDS; i++)
		weft_future_set_result(x.f[i], NULL);
	assert_int_equal(weft_task_join(t, NULL), 0);
	weft_task_release(t);
	weft_runtime_destroy(rt);
	for (int i = 0; i < EF_ROUNDS; i++)
		weft_future_release(x.f[i]);
	print_message("eventfd wakes: %d of %d seen; %llu faults\n", atomic_load(&x.done),
		      EF_ROUNDS, (unsigned long long)weft_fault_injected());
	assert_int_equal(x.err, 0);
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

/* ---------------------------------------------------------------------- */
/* the io_uring probe                                                      */
/* ---------------------------------------------------------------------- */

/* Regression: the start-up probe's NOP round trip failing with EINTR,
 * EAGAIN or EBUSY (a signal, a busy ring) made the runtime give io_uring up
 * for epoll (or, asked for io_uring, refuse to start). */
static void fault_probe_survives_busy_enter(void **state)
{
	(void)state;
	if (backend_now() != WEFT_BACKEND_IO_URING)
		skip(); /* no io_uring here, or epoll asked for */
	fault_setup("enter=0.5");
	int fell_back = 0;
	for (int i = 0; i < 20; i++) {
		weft_runtime_config cfg;
		weft_runtime_config_init(&cfg);
		cfg.loops = 1;
		cfg.backend_quiet = true;
		weft_runtime *rt = NULL;
		weft_fault_enable(true);
		int r = weft_runtime_start(&rt, &cfg);
		weft_fault_enable(false);
		assert_int_equal(r, 0);
		weft_runtime_stats st;
		weft_runtime_stats_get(rt, &st);
		if (st.backend != WEFT_BACKEND_IO_URING) {
			print_message("start %d: %s\n", i, st.backend_reason);
			fell_back++;
		}
		weft_runtime_destroy(rt);
	}
	assert_int_equal(fell_back, 0);
	assert_true(weft_fault_injected() > 0);
	fault_teardown();
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(fault_queue_conservation),
	cmocka_unit_test(fault_cancel_storm),
	cmocka_unit_test(fault_tcp_echo),
	cmocka_unit_test(fault_tcp_echo_shared_multishot),
	cmocka_unit_test(fault_tcp_echo_fds_exhausted),
	cmocka_unit_test(fault_tcp_echo_registrations),
	cmocka_unit_test(fault_server_backoff_without_memory),
	cmocka_unit_test(fault_server_listener_unregistrable),
	cmocka_unit_test(fault_stream_transfer),
	{ "fault_stream_write_each_alloc", scen_each_alloc, NULL, NULL, &wp_scen },
	{ "fault_stream_write_path", scen_random, NULL, NULL, &wp_scen },
	{ "fault_stream_write_tcp_each_alloc", scen_each_alloc, NULL, NULL, &wp_tcp_scen },
	{ "fault_stream_write_tcp_path", scen_random, NULL, NULL, &wp_tcp_scen },
	{ "fault_copy_each_alloc", scen_each_alloc, NULL, NULL, &cx_scen },
	{ "fault_copy_bidirectional", scen_random, NULL, NULL, &cx_scen },
	cmocka_unit_test(fault_offload_threads),
	cmocka_unit_test(fault_start_stop),
	cmocka_unit_test(fault_wake_from_busy_loop),
	cmocka_unit_test(fault_wake_by_interrupted_eventfd),
	cmocka_unit_test(fault_probe_survives_busy_enter),
};

WEFT_TEST_MAIN(tests)
