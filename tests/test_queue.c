/*
 * Queues: order of the three kinds, bounded blocking both ways, try_*,
 * timeouts, join/task_done, both shutdown modes with waiters on several
 * loops and threads, foreign-thread producers and consumers, cancellation
 * outcomes, and a randomized stress that cancels getters and putters while
 * they wait and checks every item put is got exactly once.
 *
 * docs/architecture.md rule 7: tasks and helper threads record; the test
 * asserts on its own stack after weft_run / join / pthread_join.
 */
#include "weft_test.h"
#include "weft/queue.h"

#include <pthread.h>
#include <stdatomic.h>

static weft_queue *mkq_flags(size_t cap, int kind, weft_queue_cmp_fn cmp, unsigned flags)
{
	weft_queue_config c;
	weft_queue_config_init(&c);
	c.flags = flags;
	c.capacity = cap;
	c.kind = kind;
	c.cmp = cmp;
	weft_queue *q = NULL;
	assert_int_equal(weft_queue_create(&q, &c), 0);
	assert_non_null(q);
	return q;
}

/* Flags for mkq(): the SPSC variants of tests set WEFT_QUEUE_SPSC; it
 * applies where SPSC is allowed (a bounded FIFO). */
static unsigned g_flags;

static weft_queue *mkq(size_t cap, int kind, weft_queue_cmp_fn cmp)
{
	return mkq_flags(cap, kind, cmp, cap && kind == WEFT_QUEUE_FIFO ? g_flags : 0);
}

static int cmp_uint(const void *a, const void *b, void *arg)
{
	(void)arg;
	return (U(a) > U(b)) - (U(a) < U(b));
}

static weft_task *spawn_on(int loop, weft_fn fn, void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = loop;
	weft_task *t = NULL;
	if (weft_task_spawn_ex(&t, &tc, fn, arg))
		return NULL;
	return t;
}

static int join_release(weft_task *t)
{
	if (!t)
		return -EINVAL;
	int r = weft_task_join(t, NULL);
	weft_task_release(t);
	return r;
}

/* ------------------------------------------------------------------------ */

static void test_config_checks(void **state)
{
	(void)state;
	weft_queue_config c;
	weft_queue *q = P(1);
	assert_int_equal(weft_queue_create(NULL, NULL), -EINVAL);
	weft_queue_config_init(&c);
	c.kind = WEFT_QUEUE_PRIORITY; /* no cmp */
	assert_int_equal(weft_queue_create(&q, &c), -EINVAL);
	assert_null(q);
	weft_queue_config_init(&c);
	c.cmp = cmp_uint; /* cmp on a FIFO */
	assert_int_equal(weft_queue_create(&q, &c), -EINVAL);
	weft_queue_config_init(&c);
	c.kind = 7;
	assert_int_equal(weft_queue_create(&q, &c), -EINVAL);
	weft_queue_config_init(&c);
	c.flags = WEFT_QUEUE_SPSC; /* SPSC needs a capacity */
	assert_int_equal(weft_queue_create(&q, &c), -EINVAL);
	c.capacity = 4;
	c.kind = WEFT_QUEUE_LIFO; /* and FIFO */
	assert_int_equal(weft_queue_create(&q, &c), -EINVAL);
	weft_queue_config_init(&c);
	c.flags = 0x80;
	assert_int_equal(weft_queue_create(&q, &c), -EINVAL);
	weft_queue_config_init(&c);
	c.reserved[2] = 1;
	assert_int_equal(weft_queue_create(&q, &c), -EINVAL);
	assert_int_equal(weft_queue_create(&q, NULL), 0);
	void *v;
	assert_int_equal(weft_queue_get(q, NULL), -EINVAL);
	assert_int_equal(weft_queue_put(NULL, P(1)), -EINVAL);
	assert_int_equal(weft_queue_get(NULL, &v), -EINVAL);
	assert_int_equal(weft_queue_task_done(NULL), -EINVAL);
	assert_int_equal(weft_queue_shutdown(NULL, true), -EINVAL);
	assert_int_equal(weft_queue_destroy(NULL), -EINVAL);
	assert_int_equal(weft_queue_size(NULL), 0);
	assert_int_equal(weft_queue_destroy(q), 0);
}

static void test_order_fifo_lifo_priority(void **state)
{
	(void)state;
	static const unsigned in[] = { 5, 1, 4, 1, 9, 2, 6, 3, 8, 7 };
	static const unsigned lifo[] = { 7, 8, 3, 6, 2, 9, 1, 4, 1, 5 };
	static const unsigned prio[] = { 1, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	const int kinds[] = { WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY };
	const unsigned *want[] = { in, lifo, prio };
	for (int k = 0; k < 3; k++) {
		/* bounded and unbounded (the latter grows past 16 slots) */
		for (int bounded = 0; bounded < 2; bounded++) {
			weft_queue *q = mkq(bounded ? 40 : 0, kinds[k],
					    kinds[k] == WEFT_QUEUE_PRIORITY ? cmp_uint : NULL);
			for (int rep = 0; rep < 4; rep++)
				for (int i = 0; i < 10; i++)
					assert_int_equal(weft_queue_try_put(q, P(in[i])), 0);
			assert_int_equal(weft_queue_size(q), 40);
			for (int rep = 0; rep < 4; rep++) {
				for (int i = 0; i < 10; i++) {
					void *v = NULL;
					assert_int_equal(weft_queue_try_get(q, &v), 0);
					unsigned w = want[k][i];
					if (kinds[k] == WEFT_QUEUE_PRIORITY)
						w = prio[(rep * 10 + i) / 4];
					/* LIFO of 4 rounds: each round reversed */
					assert_int_equal(U(v), w);
				}
			}
			assert_true(weft_queue_empty(q));
			assert_int_equal(weft_queue_destroy(q), 0);
		}
	}
}

static void test_try_eagain_and_full(void **state)
{
	(void)state;
	weft_queue *q = mkq(2, WEFT_QUEUE_FIFO, NULL);
	void *v = P(77);
	assert_int_equal(weft_queue_try_get(q, &v), -EAGAIN);
	assert_int_equal(U(v), 77);
	assert_false(weft_queue_full(q));
	assert_int_equal(weft_queue_try_put(q, P(1)), 0);
	assert_int_equal(weft_queue_try_put(q, P(2)), 0);
	assert_true(weft_queue_full(q));
	assert_int_equal(weft_queue_try_put(q, P(3)), -EAGAIN);
	assert_int_equal(weft_queue_size(q), 2);
	/* items left and no drop callback: destroy refuses */
	assert_int_equal(weft_queue_destroy(q), -EBUSY);
	assert_int_equal(weft_queue_try_get(q, &v), 0);
	assert_int_equal(U(v), 1);
	assert_int_equal(weft_queue_try_get(q, &v), 0);
	assert_int_equal(U(v), 2);
	assert_int_equal(weft_queue_destroy(q), 0);
	weft_queue *u = mkq(0, WEFT_QUEUE_FIFO, NULL);
	assert_false(weft_queue_full(u));
	assert_int_equal(weft_queue_destroy(u), 0);
}

/* ---- bounded blocking both ways, across two loops ---------------------- */

#define BB_N 2000
struct bb {
	weft_queue *q;
	int put_err, get_err, order_bad, got;
};

static void *bb_producer(void *arg)
{
	struct bb *b = arg;
	for (unsigned i = 1; i <= BB_N; i++) {
		int r = weft_queue_put(b->q, P(i));
		if (r) {
			b->put_err = r;
			break;
		}
	}
	return NULL;
}

static void *bb_consumer(void *arg)
{
	struct bb *b = arg;
	for (unsigned i = 1; i <= BB_N; i++) {
		void *v;
		int r = weft_queue_get(b->q, &v);
		if (r) {
			b->get_err = r;
			break;
		}
		if (U(v) != i)
			b->order_bad++;
		b->got++;
		if (i % 97 == 0)
			weft_sleep(20000); /* let the producer fill it and block */
	}
	return NULL;
}

static void *bb_main(void *arg)
{
	struct bb *b = arg;
	weft_task *c = spawn_on(0, bb_consumer, b), *p = spawn_on(1, bb_producer, b);
	join_release(c);
	join_release(p);
	return NULL;
}

static void run_bounded_blocking(unsigned flags)
{
	struct bb b = { .q = mkq_flags(3, WEFT_QUEUE_FIFO, NULL, flags) };
	weft_test_run_loops(2, bb_main, &b);
	assert_int_equal(b.put_err, 0);
	assert_int_equal(b.get_err, 0);
	assert_int_equal(b.order_bad, 0);
	assert_int_equal(b.got, BB_N);
	assert_int_equal(weft_queue_destroy(b.q), 0);
}

static void test_bounded_blocking_two_loops(void **state)
{
	(void)state;
	run_bounded_blocking(0);
}

static void test_spsc_bounded_blocking_two_loops(void **state)
{
	(void)state;
	run_bounded_blocking(WEFT_QUEUE_SPSC);
}

/* ---- timeouts ---------------------------------------------------------- */

struct tmo {
	weft_queue *q;
	int get_r, put_r, scope_r, scope_fired;
	uint64_t get_ns, put_ns;
	size_t size_after;
};

static void *tmo_task(void *arg)
{
	struct tmo *t = arg;
	void *v;
	uint64_t t0 = weft_now_ns();
	t->get_r = weft_queue_get_timeout(t->q, &v, 5 * MS);
	t->get_ns = weft_now_ns() - t0;
	weft_queue_try_put(t->q, P(1));
	t0 = weft_now_ns();
	t->put_r = weft_queue_put_timeout(t->q, P(2), 5 * MS);
	t->put_ns = weft_now_ns() - t0;
	t->size_after = weft_queue_size(t->q);
	weft_scope s;
	weft_scope_enter(&s, 5 * MS);
	t->scope_r = weft_queue_put(t->q, P(3)); /* a scope bounds a plain put */
	t->scope_fired = weft_scope_exit(&s);
	return NULL;
}

static void test_timeouts(void **state)
{
	(void)state;
	/* foreign thread */
	weft_queue *q = mkq(1, WEFT_QUEUE_FIFO, NULL);
	void *v = P(9);
	uint64_t t0 = weft_now_ns();
	assert_int_equal(weft_queue_get_timeout(q, &v, 5 * MS), -ETIMEDOUT);
	assert_true(weft_now_ns() - t0 >= 5 * MS);
	assert_int_equal(U(v), 9);
	assert_int_equal(weft_queue_put(q, P(1)), 0);
	assert_int_equal(weft_queue_put_timeout(q, P(2), 5 * MS), -ETIMEDOUT);
	assert_int_equal(weft_queue_size(q), 1);
	assert_int_equal(weft_queue_get_timeout(q, &v, 0), 0); /* ready: no wait */
	assert_int_equal(U(v), 1);
	assert_int_equal(weft_queue_destroy(q), 0);
	/* task */
	struct tmo t = { .q = mkq(1, WEFT_QUEUE_FIFO, NULL) };
	weft_test_run_loops(1, tmo_task, &t);
	assert_int_equal(t.get_r, -ETIMEDOUT);
	assert_true(t.get_ns >= 5 * MS);
	assert_int_equal(t.put_r, -ETIMEDOUT);
	assert_true(t.put_ns >= 5 * MS);
	assert_int_equal(t.size_after, 1);
	assert_int_equal(t.scope_r, -ETIMEDOUT);
	assert_int_equal(t.scope_fired, 1);
	assert_int_equal(weft_queue_try_get(t.q, &v), 0);
	assert_int_equal(U(v), 1);
	assert_int_equal(weft_queue_destroy(t.q), 0);
}

/* ---- join / task_done -------------------------------------------------- */

struct jn {
	weft_queue *q;
	_Atomic int done;
	int join_r, done_before_join;
};

static void *jn_worker(void *arg)
{
	struct jn *j = arg;
	void *v;
	while (weft_queue_get(j->q, &v) == 0) {
		weft_sleep(200000);
		atomic_fetch_add(&j->done, 1);
		weft_queue_task_done(j->q);
	}
	return NULL;
}

static void *jn_main(void *arg)
{
	struct jn *j = arg;
	weft_task *w[3];
	for (int i = 0; i < 3; i++)
		w[i] = spawn_on(i % 2, jn_worker, j);
	for (unsigned i = 0; i < 20; i++)
		weft_queue_put(j->q, P(i));
	j->join_r = weft_queue_join(j->q);
	j->done_before_join = atomic_load(&j->done);
	for (int i = 0; i < 3; i++) {
		weft_task_cancel(w[i]);
		join_release(w[i]);
	}
	return NULL;
}

static void test_join_task_done(void **state)
{
	(void)state;
	weft_queue *q = mkq(8, WEFT_QUEUE_FIFO, NULL);
	assert_int_equal(weft_queue_task_done(q), -EINVAL); /* nothing put */
	assert_int_equal(weft_queue_join(q), 0);            /* nothing pending */
	assert_int_equal(weft_queue_put(q, P(1)), 0);
	assert_int_equal(weft_queue_join_timeout(q, 2 * MS), -ETIMEDOUT);
	void *v;
	assert_int_equal(weft_queue_get(q, &v), 0);
	assert_int_equal(weft_queue_task_done(q), 0);
	assert_int_equal(weft_queue_task_done(q), -EINVAL); /* more than items */
	assert_int_equal(weft_queue_join(q), 0);
	assert_int_equal(weft_queue_destroy(q), 0);

	struct jn j = { .q = mkq_flags(4, WEFT_QUEUE_FIFO, NULL, 0) }; /* 3 consumers */
	weft_test_run_loops(2, jn_main, &j);
	assert_int_equal(j.join_r, 0);
	assert_int_equal(j.done_before_join, 20);
	assert_int_equal(weft_queue_destroy(j.q), 0);
}

/* ---- shutdown with waiters on several loops and a thread ---------------- */

#define SD_TASKS 4
struct sd {
	weft_queue *q;
	bool immediate;
	_Atomic int waiting;
	_Atomic int got;       /* items a getter got before -EPIPE */
	int rc[SD_TASKS + 1];  /* last result of each getter */
	int put_after, dropped;
	uint64_t wake_ns[SD_TASKS + 1], shut_at;
};

struct sd_arg {
	struct sd *s;
	int i;
};

static void sd_getter_body(struct sd *s, int i)
{
	void *v;
	int r;
	atomic_fetch_add(&s->waiting, 1);
	while ((r = weft_queue_get(s->q, &v)) == 0)
		atomic_fetch_add(&s->got, 1);
	s->rc[i] = r;
	s->wake_ns[i] = weft_now_ns();
}

static void *sd_getter(void *arg)
{
	struct sd_arg *a = arg;
	sd_getter_body(a->s, a->i);
	return NULL;
}

static void *sd_thread(void *arg)
{
	struct sd_arg *a = arg;
	sd_getter_body(a->s, a->i);
	return NULL;
}

static void *sd_main(void *arg)
{
	struct sd *s = arg;
	struct sd_arg a[SD_TASKS];
	weft_task *t[SD_TASKS];
	for (int i = 0; i < SD_TASKS; i++) {
		a[i] = (struct sd_arg){ s, i };
		t[i] = spawn_on(i % 2, sd_getter, &a[i]);
	}
	while (atomic_load(&s->waiting) < SD_TASKS + 1)
		weft_sleep(100000);
	weft_sleep(2 * MS); /* all parked on the empty queue */
	s->shut_at = weft_now_ns();
	weft_queue_shutdown(s->q, s->immediate);
	s->put_after = weft_queue_put(s->q, P(1));
	for (int i = 0; i < SD_TASKS; i++)
		join_release(t[i]);
	return NULL;
}

static void run_shutdown_waiters(bool immediate)
{
	struct sd s = { .q = mkq(0, WEFT_QUEUE_FIFO, NULL), .immediate = immediate };
	struct sd_arg ta = { &s, SD_TASKS };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, sd_thread, &ta), 0);
	weft_test_run_loops(2, sd_main, &s);
	pthread_join(th, NULL);
	for (int i = 0; i <= SD_TASKS; i++) {
		assert_int_equal(s.rc[i], -EPIPE);
		assert_true(s.wake_ns[i] - s.shut_at < 1000 * MS);
	}
	assert_int_equal(atomic_load(&s.got), 0);
	assert_int_equal(s.put_after, -EPIPE);
	assert_int_equal(weft_queue_destroy(s.q), 0);
}

static void test_shutdown_graceful_waiters(void **state)
{
	(void)state;
	run_shutdown_waiters(false);
}

static void test_shutdown_immediate_waiters(void **state)
{
	(void)state;
	run_shutdown_waiters(true);
}

static void test_shutdown_graceful_drains(void **state)
{
	(void)state;
	weft_queue *q = mkq(8, WEFT_QUEUE_FIFO, NULL);
	for (unsigned i = 1; i <= 3; i++)
		assert_int_equal(weft_queue_put(q, P(i)), 0);
	assert_int_equal(weft_queue_shutdown(q, false), 0);
	assert_int_equal(weft_queue_put(q, P(4)), -EPIPE);
	assert_int_equal(weft_queue_try_put(q, P(4)), -EPIPE);
	void *v;
	for (unsigned i = 1; i <= 3; i++) {
		assert_int_equal(weft_queue_get(q, &v), 0);
		assert_int_equal(U(v), i);
	}
	assert_int_equal(weft_queue_get(q, &v), -EPIPE);
	assert_int_equal(weft_queue_try_get(q, &v), -EPIPE);
	assert_int_equal(weft_queue_get_timeout(q, &v, MS), -EPIPE);
	/* a second, immediate shutdown after the drain drops nothing */
	assert_int_equal(weft_queue_shutdown(q, true), 0);
	assert_int_equal(weft_queue_destroy(q), 0);
}

/* Immediate shutdown of a full queue: items go to the drop callback, count
 * as task_done (a joiner wakes), blocked putters wake with -EPIPE and keep
 * their items. */
struct sdi {
	weft_queue *q;
	_Atomic int dropped_sum, dropped_n, putters_waiting;
	int put_rc[4], join_rc, shut_rc;
	int nput; /* blocked putters: 1 for SPSC */
};

static void sdi_drop(void *item, void *arg)
{
	struct sdi *s = arg;
	atomic_fetch_add(&s->dropped_sum, (int)U(item));
	atomic_fetch_add(&s->dropped_n, 1);
}

struct sdi_arg {
	struct sdi *s;
	int i;
};

static void *sdi_putter(void *arg)
{
	struct sdi_arg *a = arg;
	atomic_fetch_add(&a->s->putters_waiting, 1);
	a->s->put_rc[a->i] = weft_queue_put(a->s->q, P(100));
	return NULL;
}

static void *sdi_joiner(void *arg)
{
	struct sdi *s = arg;
	s->join_rc = weft_queue_join(s->q);
	return NULL;
}

static void *sdi_main(void *arg)
{
	struct sdi *s = arg;
	struct sdi_arg a[4];
	weft_task *t[4];
	for (unsigned i = 1; i <= 3; i++)
		weft_queue_put(s->q, P(i));
	for (int i = 0; i < s->nput; i++) {
		a[i] = (struct sdi_arg){ s, i };
		t[i] = spawn_on(i % 2, sdi_putter, &a[i]);
	}
	weft_task *j = spawn_on(1, sdi_joiner, s);
	while (atomic_load(&s->putters_waiting) < s->nput)
		weft_sleep(100000);
	weft_sleep(2 * MS);
	s->shut_rc = weft_queue_shutdown(s->q, true);
	for (int i = 0; i < s->nput; i++)
		join_release(t[i]);
	join_release(j);
	return NULL;
}

static void test_shutdown_immediate_drops(void **state)
{
	(void)state;
	struct sdi s = { .nput = g_flags ? 1 : 4 };
	weft_queue_config c;
	weft_queue_config_init(&c);
	c.flags = g_flags;
	c.capacity = 3;
	c.drop = sdi_drop;
	c.drop_arg = &s;
	assert_int_equal(weft_queue_create(&s.q, &c), 0);
	weft_test_run_loops(2, sdi_main, &s);
	assert_int_equal(s.shut_rc, 3);
	assert_int_equal(atomic_load(&s.dropped_n), 3);
	assert_int_equal(atomic_load(&s.dropped_sum), 6);
	for (int i = 0; i < s.nput; i++)
		assert_int_equal(s.put_rc[i], -EPIPE);
	assert_int_equal(s.join_rc, 0);
	assert_int_equal(weft_queue_size(s.q), 0);
	assert_int_equal(weft_queue_destroy(s.q), 0);

	/* destroy hands leftovers to the drop callback */
	struct sdi d = { 0 };
	c.drop_arg = &d;
	weft_queue *q;
	assert_int_equal(weft_queue_create(&q, &c), 0);
	assert_int_equal(weft_queue_put(q, P(5)), 0);
	assert_int_equal(weft_queue_put(q, P(7)), 0);
	assert_int_equal(weft_queue_destroy(q), 0);
	assert_int_equal(atomic_load(&d.dropped_sum), 12);
}

/* ---- cancellation outcomes --------------------------------------------- */

struct cx {
	weft_queue *q;
	_Atomic int parked;
	int get_r, put_r;
	void *got;
};

static void *cx_getter(void *arg)
{
	struct cx *c = arg;
	atomic_fetch_add(&c->parked, 1);
	c->get_r = weft_queue_get(c->q, &c->got);
	return NULL;
}

static void *cx_putter(void *arg)
{
	struct cx *c = arg;
	atomic_fetch_add(&c->parked, 1);
	c->put_r = weft_queue_put(c->q, P(42));
	return NULL;
}

static void *cx_main(void *arg)
{
	struct cx *c = arg;
	/* a getter that gave up: a later put stays in the queue */
	weft_task *g = spawn_on(1, cx_getter, c);
	while (atomic_load(&c->parked) < 1)
		weft_sleep(100000);
	weft_sleep(MS);
	weft_task_cancel(g);
	join_release(g);
	weft_queue_put(c->q, P(9)); /* fills the capacity-1 queue */
	/* a putter that gave up: its item was not enqueued */
	weft_task *p = spawn_on(1, cx_putter, c);
	while (atomic_load(&c->parked) < 2)
		weft_sleep(100000);
	weft_sleep(MS);
	weft_task_cancel(p);
	join_release(p);
	return NULL;
}

static void test_cancel_outcomes(void **state)
{
	(void)state;
	struct cx c = { .q = mkq(1, WEFT_QUEUE_FIFO, NULL), .got = P(3) };
	weft_test_run_loops(2, cx_main, &c);
	assert_int_equal(c.get_r, -ECANCELED);
	assert_int_equal(U(c.got), 3); /* untouched */
	assert_int_equal(c.put_r, -ECANCELED);
	assert_int_equal(weft_queue_size(c.q), 1);
	void *v;
	assert_int_equal(weft_queue_try_get(c.q, &v), 0);
	assert_int_equal(U(v), 9); /* the cancelled put's 42 is not there */
	assert_int_equal(weft_queue_try_get(c.q, &v), -EAGAIN);
	assert_int_equal(weft_queue_destroy(c.q), 0);
}

/* ---- foreign threads as producers and consumers ------------------------- */

#define FT_N 3000
#define FT_TH 2
struct ft {
	weft_queue *a, *b; /* threads -> tasks on a, tasks -> threads on b */
	_Atomic unsigned char seen_a[FT_TH * FT_N], seen_b[FT_TH * FT_N];
	_Atomic int errs;
};

struct ft_arg {
	struct ft *f;
	int i;
};

static void *ft_thread_prod(void *arg)
{
	struct ft_arg *a = arg;
	for (int k = 0; k < FT_N; k++)
		if (weft_queue_put(a->f->a, P(a->i * FT_N + k + 1)))
			atomic_fetch_add(&a->f->errs, 1);
	return NULL;
}

static void *ft_thread_cons(void *arg)
{
	struct ft_arg *a = arg;
	void *v;
	while (weft_queue_get(a->f->b, &v) == 0)
		atomic_fetch_add(&a->f->seen_b[U(v) - 1], 1);
	return NULL;
}

static void *ft_task_cons(void *arg)
{
	struct ft *f = arg;
	void *v;
	while (weft_queue_get(f->a, &v) == 0)
		atomic_fetch_add(&f->seen_a[U(v) - 1], 1);
	return NULL;
}

static void *ft_task_prod(void *arg)
{
	struct ft_arg *a = arg;
	for (int k = 0; k < FT_N; k++)
		if (weft_queue_put(a->f->b, P(a->i * FT_N + k + 1)))
			atomic_fetch_add(&a->f->errs, 1);
	return NULL;
}

static void test_foreign_threads(void **state)
{
	(void)state;
	static struct ft f;
	memset(&f, 0, sizeof f);
	f.a = mkq(8, WEFT_QUEUE_FIFO, NULL);
	f.b = mkq(8, WEFT_QUEUE_FIFO, NULL);
	weft_runtime *rt = start_rt(2);
	pthread_t prod[FT_TH], cons[FT_TH];
	struct ft_arg args[FT_TH];
	weft_task *tc[FT_TH], *tp[FT_TH];
	for (int i = 0; i < FT_TH; i++) {
		args[i] = (struct ft_arg){ &f, i };
		assert_int_equal(pthread_create(&prod[i], NULL, ft_thread_prod, &args[i]), 0);
		assert_int_equal(pthread_create(&cons[i], NULL, ft_thread_cons, &args[i]), 0);
		assert_int_equal(weft_runtime_spawn(rt, &tc[i], NULL, ft_task_cons, &f), 0);
		assert_int_equal(weft_runtime_spawn(rt, &tp[i], NULL, ft_task_prod, &args[i]), 0);
	}
	for (int i = 0; i < FT_TH; i++) {
		pthread_join(prod[i], NULL);
		assert_int_equal(weft_task_join(tp[i], NULL), 0);
	}
	weft_queue_shutdown(f.a, false); /* consumers drain, then -EPIPE */
	weft_queue_shutdown(f.b, false);
	for (int i = 0; i < FT_TH; i++) {
		pthread_join(cons[i], NULL);
		assert_int_equal(weft_task_join(tc[i], NULL), 0);
		weft_task_release(tc[i]);
		weft_task_release(tp[i]);
	}
	weft_runtime_shutdown(rt);
	weft_runtime_destroy(rt);
	assert_int_equal(atomic_load(&f.errs), 0);
	for (int i = 0; i < FT_TH * FT_N; i++) {
		assert_int_equal(atomic_load(&f.seen_a[i]), 1);
		assert_int_equal(atomic_load(&f.seen_b[i]), 1);
	}
	assert_int_equal(weft_queue_destroy(f.a), 0);
	assert_int_equal(weft_queue_destroy(f.b), 0);
}

/* ---- randomized stress: cancel waiters, count every item once ---------- */

#define ST_P 4
#define ST_C 4
#define ST_MAXN 20000
#define ST_BATCH 100
/* Sanitized builds run fewer items; yielding after each one keeps the
 * chaos task's cancellations frequent relative to the items. */
#define ST_YIELD_MASK (WEFT_TEST_SANITIZED ? 0u : 3u)
struct st {
	weft_queue *q;
	unsigned n;
	_Atomic unsigned next;         /* next fresh id (1-based) */
	_Atomic int got[ST_MAXN + 1];  /* times each id was got */
	_Atomic unsigned got_total;
	_Atomic unsigned put_total;
	pthread_mutex_t lk;            /* leftovers: ids a cancelled put kept */
	unsigned left[ST_P * 64 + 64];
	int nleft;
	_Atomic int bad;               /* unexpected return codes */
	_Atomic unsigned cancels, timeouts, won_over_cancel;
	_Atomic int stop_thread;
	int np, nc;       /* live producers and consumers */
	bool thread;      /* plus a foreign-thread consumer */
};

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

#define ST_WAIT UINT32_MAX
/* Fresh ids are released ST_BATCH per cancellation so the chaos keeps pace
 * with the items however fast the machine is (at least n / ST_BATCH
 * cancellations per run).  Returns an id, 0 (all issued) or ST_WAIT. */
static unsigned st_take_id(struct st *s)
{
	unsigned id = 0;
	pthread_mutex_lock(&s->lk);
	if (s->nleft)
		id = s->left[--s->nleft];
	pthread_mutex_unlock(&s->lk);
	if (id)
		return id;
	unsigned cur = atomic_load(&s->next);
	do {
		if (cur > s->n)
			return 0;
		if (cur > (atomic_load(&s->cancels) + 1) * ST_BATCH)
			return ST_WAIT;
	} while (!atomic_compare_exchange_weak(&s->next, &cur, cur + 1));
	return cur;
}

static void st_give_back(struct st *s, unsigned id)
{
	pthread_mutex_lock(&s->lk);
	s->left[s->nleft++] = id;
	pthread_mutex_unlock(&s->lk);
}

static void *st_producer(void *arg)
{
	struct st *s = arg;
	unsigned seed = (unsigned)weft_task_id(weft_task_current()) * 2654435761u;
	unsigned id;
	while ((id = st_take_id(s))) {
		if (id == ST_WAIT) {
			if (weft_sleep(10000) < 0)
				break;
			continue;
		}
		int r = (rnd(&seed) & 1) ? weft_queue_put(s->q, P(id))
					 : weft_queue_put_timeout(s->q, P(id), rnd(&seed) % 50000);
		if (r == 0) {
			atomic_fetch_add(&s->put_total, 1);
			if ((rnd(&seed) & ST_YIELD_MASK) == 0 && weft_yield() == -ECANCELED)
				break;
			continue;
		}
		st_give_back(s, id); /* not enqueued: we still own it */
		if (r == -ETIMEDOUT) {
			atomic_fetch_add(&s->timeouts, 1);
			continue;
		}
		if (r != -ECANCELED) {
			fprintf(stderr, "producer: unexpected %s\n", weft_strerror(r));
			atomic_fetch_add(&s->bad, 1);
		}
		break;
	}
	return NULL;
}

static void st_record(struct st *s, void *v)
{
	unsigned id = (unsigned)U(v);
	if (id == 0 || id > s->n) {
		atomic_fetch_add(&s->bad, 1);
		return;
	}
	atomic_fetch_add(&s->got[id], 1);
	atomic_fetch_add(&s->got_total, 1);
}

static void *st_consumer(void *arg)
{
	struct st *s = arg;
	unsigned seed = (unsigned)weft_task_id(weft_task_current()) * 40503u;
	for (;;) {
		void *v;
		int r = (rnd(&seed) & 1) ? weft_queue_get(s->q, &v)
					 : weft_queue_get_timeout(s->q, &v, rnd(&seed) % 50000);
		if (r == 0) {
			st_record(s, v); /* even if cancelled meanwhile: fired wins */
			if (weft_task_cancelled())
				atomic_fetch_add(&s->won_over_cancel, 1);
			if ((rnd(&seed) & ST_YIELD_MASK) == 0 && weft_yield() == -ECANCELED)
				return NULL;
			continue;
		}
		if (r == -ETIMEDOUT) {
			atomic_fetch_add(&s->timeouts, 1);
			continue;
		}
		if (r != -ECANCELED && r != -EPIPE) {
			fprintf(stderr, "consumer: unexpected %s\n", weft_strerror(r));
			atomic_fetch_add(&s->bad, 1);
		}
		return NULL;
	}
}

static void *st_thread(void *arg)
{
	struct st *s = arg;
	while (!atomic_load(&s->stop_thread)) {
		void *v;
		int r = weft_queue_get_timeout(s->q, &v, 100000);
		if (r == 0)
			st_record(s, v);
		else if (r == -EPIPE)
			break;
		else if (r != -ETIMEDOUT) {
			fprintf(stderr, "thread: unexpected %s\n", weft_strerror(r));
			atomic_fetch_add(&s->bad, 1);
		}
	}
	return NULL;
}

static void *st_main(void *arg)
{
	struct st *s = arg;
	weft_task *p[ST_P], *c[ST_C];
	const int np = s->np, nc = s->nc;
	unsigned seed = 12345;
	for (int i = 0; i < np; i++)
		p[i] = spawn_on(WEFT_PIN_NONE, st_producer, s);
	for (int i = 0; i < nc; i++)
		c[i] = spawn_on(WEFT_PIN_NONE, st_consumer, s);
	/* Ends as soon as every item is got; the limit only guards a hang
	 * (TSan needs ~3 s here on a loaded machine). */
	uint64_t until = weft_now_ns() + (WEFT_TEST_SANITIZED ? 60000 : 20000) * MS;
	while (atomic_load(&s->got_total) < s->n && weft_now_ns() < until) {
		/* cancel one producer or consumer wherever it is, replace it */
		bool prod = rnd(&seed) & 1;
		weft_task **slot = prod ? &p[rnd(&seed) % (unsigned)np] : &c[rnd(&seed) % (unsigned)nc];
		weft_fn fn = prod ? st_producer : st_consumer;
		if (rnd(&seed) % 8)
			weft_yield();
		else
			weft_sleep(rnd(&seed) % 5000);
		if (*slot) {
			weft_task_cancel(*slot);
			join_release(*slot);
			atomic_fetch_add(&s->cancels, 1);
		}
		*slot = spawn_on(WEFT_PIN_NONE, fn, s);
	}
	weft_queue_shutdown(s->q, false);
	for (int i = 0; i < np; i++)
		join_release(p[i]);
	for (int i = 0; i < nc; i++)
		join_release(c[i]);
	return NULL;
}

static void run_stress(int np, int nc, bool thread)
{
	static struct st s;
	memset(&s, 0, sizeof s);
	s.np = np;
	s.nc = nc;
	s.thread = thread;
	s.n = ST_MAXN;
	atomic_store(&s.next, 1);
	pthread_mutex_init(&s.lk, NULL);
	s.q = mkq(4, WEFT_QUEUE_FIFO, NULL);
	pthread_t th;
	if (thread)
		assert_int_equal(pthread_create(&th, NULL, st_thread, &s), 0);
	weft_test_run_loops(2, st_main, &s);
	atomic_store(&s.stop_thread, 1);
	if (thread)
		pthread_join(th, NULL);
	fprintf(stderr, "stress: %u items, %u cancels, %u timeouts, %u items returned to a task being cancelled\n",
		s.n, atomic_load(&s.cancels), atomic_load(&s.timeouts),
		atomic_load(&s.won_over_cancel));
	assert_int_equal(atomic_load(&s.bad), 0);
	assert_int_equal(s.nleft, 0);
	assert_int_equal(atomic_load(&s.put_total), s.n);
	assert_int_equal(atomic_load(&s.got_total), s.n);
	for (unsigned i = 1; i <= s.n; i++)
		assert_int_equal(atomic_load(&s.got[i]), 1);
	assert_true(atomic_load(&s.cancels) >= ST_MAXN / ST_BATCH - 1);
	assert_int_equal(weft_queue_destroy(s.q), 0);
	pthread_mutex_destroy(&s.lk);
}

static void test_stress_cancel_exactly_once(void **state)
{
	(void)state;
	run_stress(ST_P, ST_C, true);
}

/* One producer and one consumer at a time (each cancelled one is joined
 * before its replacement starts), on the lock-free SPSC ring. */
static void test_spsc_stress_cancel_exactly_once(void **state)
{
	(void)state;
	g_flags = WEFT_QUEUE_SPSC;
	run_stress(1, 1, false);
}

/* SPSC variants of the tests whose producers and consumers never overlap. */
#define SPSC_VARIANT(name)                          \
	static void test_spsc_##name(void **state)  \
	{                                           \
		g_flags = WEFT_QUEUE_SPSC;          \
		test_##name(state);                 \
	}
SPSC_VARIANT(try_eagain_and_full)
SPSC_VARIANT(timeouts)
SPSC_VARIANT(join_task_done)
SPSC_VARIANT(shutdown_graceful_drains)
SPSC_VARIANT(shutdown_immediate_drops)
SPSC_VARIANT(cancel_outcomes)

/* A blocking put or get inside an expired deadline scope fails at entry,
 * even with room or an item available, like every suspension point;
 * try_ forms are not suspension points and still work. */
struct scoped_rec {
	weft_queue *q;
	int put_rc, get_rc, try_rc;
};

static void *scoped_entry(void *arg)
{
	struct scoped_rec *x = arg;
	weft_queue_try_put(x->q, P(1));
	weft_scope s;
	weft_scope_enter(&s, 1 * MS);
	weft_sleep_ms(5); /* the scope expires */
	x->put_rc = weft_queue_put(x->q, P(2));
	void *v = NULL;
	x->get_rc = weft_queue_get(x->q, &v);
	x->try_rc = weft_queue_try_get(x->q, &v);
	weft_scope_exit(&s);
	return NULL;
}

static void test_expired_scope_fails_at_entry(void **state)
{
	(void)state;
	struct scoped_rec x = { .q = mkq(4, WEFT_QUEUE_FIFO, NULL) };
	weft_test_run_loops(1, scoped_entry, &x);
	assert_int_equal(x.put_rc, -ETIMEDOUT);
	assert_int_equal(x.get_rc, -ETIMEDOUT);
	assert_int_equal(x.try_rc, 0); /* the item was still there */
	assert_int_equal(weft_queue_destroy(x.q), 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_expired_scope_fails_at_entry),
	cmocka_unit_test(test_config_checks),
	cmocka_unit_test(test_order_fifo_lifo_priority),
	cmocka_unit_test(test_try_eagain_and_full),
	cmocka_unit_test(test_bounded_blocking_two_loops),
	cmocka_unit_test(test_timeouts),
	cmocka_unit_test(test_join_task_done),
	cmocka_unit_test(test_shutdown_graceful_waiters),
	cmocka_unit_test(test_shutdown_immediate_waiters),
	cmocka_unit_test(test_shutdown_graceful_drains),
	cmocka_unit_test(test_shutdown_immediate_drops),
	cmocka_unit_test(test_cancel_outcomes),
	cmocka_unit_test(test_foreign_threads),
	cmocka_unit_test(test_stress_cancel_exactly_once),
	cmocka_unit_test(test_spsc_try_eagain_and_full),
	cmocka_unit_test(test_spsc_bounded_blocking_two_loops),
	cmocka_unit_test(test_spsc_timeouts),
	cmocka_unit_test(test_spsc_join_task_done),
	cmocka_unit_test(test_spsc_shutdown_graceful_drains),
	cmocka_unit_test(test_spsc_shutdown_immediate_drops),
	cmocka_unit_test(test_spsc_cancel_outcomes),
	cmocka_unit_test(test_spsc_stress_cancel_exactly_once),
};

WEFT_TEST_MAIN(tests)
