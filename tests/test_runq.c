/*
 * White-box tests of sched/runq.c: the per-loop stealable ring (Tokio's
 * local queue), its ordered overflow list, steal-half,
 * the MPSC stack and the owner-only FIFO.
 *
 * No runtime is started: a zeroed weft_runtime is enough for the inject
 * queue (its lock and list start zeroed), and the "tasks" are zeroed
 * weft_task records identified by their `id` field.  The concurrent tests
 * run on plain pthreads; per docs/architecture.md rule 7 those threads only
 * record (atomics), and every assertion runs on the test's own thread after
 * they are joined.
 */
#include "weft_test.h"
#include "runtime/internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define CAP WEFT_RUNQ_CAP

static weft_task *tasks_new(size_t n)
{
	weft_task *t = calloc(n, sizeof(*t));
	assert_non_null(t);
	for (size_t i = 0; i < n; i++)
		t[i].id = i;
	return t;
}

static weft__runq *runq_new(void)
{
	weft__runq *q = aligned_alloc(64, (sizeof(*q) + 63) & ~(size_t)63);
	assert_non_null(q);
	weft__runq_init(q);
	return q;
}

static weft_runtime *rt_new(void)
{
	weft_runtime *rt = calloc(1, sizeof(*rt));
	assert_non_null(rt);
	return rt;
}

static uint32_t inject_len(weft_runtime *rt)
{
	return atomic_load(&rt->inject_len);
}

/* ------------------------------------------------------------------------ */
/* single-threaded behaviour                                                 */
/* ------------------------------------------------------------------------ */

static void runq_push_pop_fifo(void **state)
{
	(void)state;
	weft_runtime *rt = rt_new();
	weft__runq *q = runq_new();
	weft_task *t = tasks_new(CAP);

	assert_null(weft__runq_pop(q));
	assert_int_equal(weft__runq_len(q), 0);
	/* Several fill/drain cycles so the indices go round the ring. */
	for (int cycle = 0; cycle < 5; cycle++) {
		unsigned n = cycle == 4 ? CAP : 100 + 37 * (unsigned)cycle;
		for (unsigned i = 0; i < n; i++)
			weft__runq_push(q, &t[i]);
		assert_int_equal(weft__runq_len(q), n);
		for (unsigned i = 0; i < n; i++) {
			weft_task *x = weft__runq_pop(q);
			assert_non_null(x);
			assert_int_equal(x->id, i);
		}
		assert_null(weft__runq_pop(q));
		assert_int_equal(weft__runq_len(q), 0);
	}
	/* Interleaved: push 2, pop 1. */
	uint64_t next_pop = 0;
	for (unsigned i = 0; i < CAP; i += 2) {
		weft__runq_push(q, &t[i]);
		weft__runq_push(q, &t[i + 1]);
		weft_task *x = weft__runq_pop(q);
		assert_non_null(x);
		assert_int_equal(x->id, next_pop++);
	}
	weft_task *x;
	while ((x = weft__runq_pop(q)))
		assert_int_equal(x->id, next_pop++);
	assert_int_equal(next_pop, CAP);
	assert_int_equal(inject_len(rt), 0);
	free(t);
	free(q);
	free(rt);
}

/* The u32 indices wrap: start them just below 2^32. */
static void runq_index_wrap(void **state)
{
	(void)state;
	weft_runtime *rt = rt_new();
	weft__runq *q = runq_new();
	weft_task *t = tasks_new(3 * CAP);
	uint32_t base = UINT32_MAX - 70;
	atomic_store(&q->head, ((uint64_t)base << 32) | base);
	atomic_store(&q->tail, base);

	for (unsigned i = 0; i < CAP; i++)
		weft__runq_push(q, &t[i]);
	assert_int_equal(weft__runq_len(q), CAP);
	assert_int_equal(inject_len(rt), 0);
	for (unsigned i = 0; i < CAP / 2; i++)
		assert_int_equal(weft__runq_pop(q)->id, i);
	/* Steal across the wrap point. */
	weft__runq *dst = runq_new();
	unsigned n = 0;
	weft_task *s = weft__runq_steal(q, dst, &n);
	assert_non_null(s);
	assert_int_equal(n, CAP / 4);
	assert_int_equal(s->id, CAP / 2 + n - 1);
	for (unsigned i = 0; i < n - 1; i++)
		assert_int_equal(weft__runq_pop(dst)->id, CAP / 2 + i);
	assert_null(weft__runq_pop(dst));
	for (unsigned i = CAP / 2 + n; i < CAP; i++)
		assert_int_equal(weft__runq_pop(q)->id, i);
	assert_null(weft__runq_pop(q));
	free(dst);
	free(t);
	free(q);
	free(rt);
}

/* Past the ring, pushes queue behind it in order: the owner pops all of
 * them oldest first, nothing goes to the inject queue. */
static void runq_overflow_keeps_order(void **state)
{
	(void)state;
	const unsigned total = 1000;
	weft_runtime *rt = rt_new();
	weft__runq *q = runq_new();
	weft_task *t = tasks_new(total);

	for (unsigned i = 0; i < total; i++)
		weft__runq_push(q, &t[i]);
	assert_int_equal(weft__runq_len_own(q), total);
	/* Staged pushes are published 32 at a time, the rest on a flush. */
	assert_true(q->stage_len < WEFT_RUNQ_STAGE);
	assert_int_equal(atomic_load(&q->ovf_len), total - CAP - q->stage_len);
	weft__runq_flush(q);
	assert_int_equal(atomic_load(&q->ovf_len), total - CAP);
	assert_int_equal(weft__runq_len(q), total);
	assert_int_equal(inject_len(rt), 0);
	/* Interleave pops and pushes: order holds across refills. */
	unsigned next = 0;
	for (unsigned i = 0; i < 300; i++)
		assert_int_equal(weft__runq_pop(q)->id, next++);
	weft_task *more = tasks_new(50);
	for (unsigned i = 0; i < 50; i++) {
		more[i].id = total + i;
		weft__runq_push(q, &more[i]);
	}
	weft_task *x;
	while ((x = weft__runq_pop(q)))
		assert_int_equal(x->id, next++);
	assert_int_equal(next, total + 50);
	assert_int_equal(weft__runq_len(q), 0);
	assert_int_equal(atomic_load(&q->ovf_len), 0);
	free(more);
	free(t);
	free(q);
	free(rt);
}

/* A full ring while a thief is mid-steal (steal != real): the owner's
 * push waits behind the ring in the overflow, and loses nothing. */
static void runq_push_full_during_steal(void **state)
{
	(void)state;
	weft__runq *q = runq_new();
	weft_task *t = tasks_new(CAP + 2);
	for (unsigned i = 0; i < CAP; i++)
		weft__runq_push(q, &t[i]);
	/* Simulate a thief that claimed slots [0, 10) and has not closed. */
	atomic_store(&q->head, ((uint64_t)0 << 32) | 10u);
	weft__runq_push(q, &t[CAP]);
	assert_int_equal(weft__runq_len_own(q) - weft__runq_len(q), 1); /* staged */
	/* A second thief must not start while the first is open. */
	weft__runq *dst = runq_new();
	unsigned n = 99;
	assert_null(weft__runq_steal(q, dst, &n));
	assert_int_equal(n, 0);
	/* The owner can still pop past the claimed slots. */
	assert_int_equal(weft__runq_pop(q)->id, 10);
	/* Close the fake steal: the next push still queues behind. */
	atomic_store(&q->head, ((uint64_t)11 << 32) | 11u);
	weft__runq_push(q, &t[CAP + 1]);
	for (unsigned i = 11; i < CAP + 2; i++)
		assert_int_equal(weft__runq_pop(q)->id, i);
	assert_null(weft__runq_pop(q));
	free(dst);
	free(t);
	free(q);
}

/* A thief finding the ring empty takes the older half of the overflow
 * (the owner busy elsewhere must not strand it). */
static void runq_steal_from_overflow(void **state)
{
	(void)state;
	weft__runq *q = runq_new();
	weft__runq *dst = runq_new();
	weft_task *t = tasks_new(CAP + 40);
	for (unsigned i = 0; i < CAP + 40; i++)
		weft__runq_push(q, &t[i]);
	weft__runq_flush(q); /* as the owner's next scheduler pass does */
	/* Empty the ring by stealing, as idle loops would. */
	unsigned stolen_total = 0, n;
	weft_task *x;
	while (atomic_load(&q->tail) != (uint32_t)atomic_load(&q->head)) {
		x = weft__runq_steal(q, dst, &n);
		assert_non_null(x);
		stolen_total += n;
		while (weft__runq_pop(dst))
			;
	}
	assert_int_equal(stolen_total, CAP);
	assert_int_equal(atomic_load(&q->ovf_len), 40);
	x = weft__runq_steal(q, dst, &n);
	assert_non_null(x);
	assert_int_equal(n, 20);
	assert_int_equal(x->id, CAP + 19); /* the last of the older half */
	for (unsigned i = 0; i < 19; i++)
		assert_int_equal(weft__runq_pop(dst)->id, CAP + i);
	assert_null(weft__runq_pop(dst));
	for (unsigned i = 20; i < 40; i++)
		assert_int_equal(weft__runq_pop(q)->id, CAP + i);
	assert_null(weft__runq_pop(q));
	free(dst);
	free(t);
	free(q);
}

static void runq_steal_half(void **state)
{
	(void)state;
	weft_runtime *rt = rt_new();
	weft__runq *src = runq_new(), *dst = runq_new();
	weft_task *t = tasks_new(2 * CAP);
	unsigned n = 99;

	/* Empty source. */
	assert_null(weft__runq_steal(src, dst, &n));
	assert_int_equal(n, 0);

	/* One task: the thief takes it and runs it, dst stays empty. */
	weft__runq_push(src, &t[0]);
	weft_task *x = weft__runq_steal(src, dst, &n);
	assert_ptr_equal(x, &t[0]);
	assert_int_equal(n, 1);
	assert_int_equal(weft__runq_len(dst), 0);
	assert_int_equal(weft__runq_len(src), 0);

	/* Ten: takes five (the oldest), returns the fifth, queues four. */
	for (unsigned i = 0; i < 10; i++)
		weft__runq_push(src, &t[i]);
	x = weft__runq_steal(src, dst, &n);
	assert_int_equal(n, 5);
	assert_int_equal(x->id, 4);
	assert_int_equal(weft__runq_len(dst), 4);
	assert_int_equal(weft__runq_len(src), 5);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(weft__runq_pop(dst)->id, i);
	for (unsigned i = 5; i < 10; i++)
		assert_int_equal(weft__runq_pop(src)->id, i);

	/* Odd count rounds up: 7 -> 4. */
	for (unsigned i = 0; i < 7; i++)
		weft__runq_push(src, &t[i]);
	x = weft__runq_steal(src, dst, &n);
	assert_int_equal(n, 4);
	assert_int_equal(x->id, 3);
	assert_int_equal(weft__runq_len(dst), 3);
	assert_int_equal(weft__runq_len(src), 3);
	while (weft__runq_pop(dst))
		;
	while (weft__runq_pop(src))
		;

	/* Full source into a dst holding exactly half: allowed, fills dst
	 * to CAP - 1 (the returned task is not queued). */
	for (unsigned i = 0; i < CAP; i++)
		weft__runq_push(src, &t[i]);
	for (unsigned i = 0; i < CAP / 2; i++)
		weft__runq_push(dst, &t[CAP + i]);
	x = weft__runq_steal(src, dst, &n);
	assert_non_null(x);
	assert_int_equal(n, CAP / 2);
	assert_int_equal(x->id, CAP / 2 - 1);
	assert_int_equal(weft__runq_len(dst), CAP - 1);
	assert_int_equal(weft__runq_len(src), CAP / 2);
	assert_int_equal(inject_len(rt), 0);
	for (unsigned i = 0; i < CAP / 2; i++)
		assert_int_equal(weft__runq_pop(dst)->id, CAP + i);
	for (unsigned i = 0; i < CAP / 2 - 1; i++)
		assert_int_equal(weft__runq_pop(dst)->id, i);
	assert_null(weft__runq_pop(dst));

	/* dst with more than half: no room for a steal, src untouched. */
	for (unsigned i = 0; i < CAP / 2 + 1; i++)
		weft__runq_push(dst, &t[CAP + i]);
	assert_null(weft__runq_steal(src, dst, &n));
	assert_int_equal(n, 0);
	assert_int_equal(weft__runq_len(src), CAP / 2);
	assert_int_equal(weft__runq_len(dst), CAP / 2 + 1);
	free(t);
	free(src);
	free(dst);
	free(rt);
}

static void fifo_owner_queue(void **state)
{
	(void)state;
	weft__fifo f;
	memset(&f, 0, sizeof(f));
	weft_task *t = tasks_new(100);
	assert_null(weft__fifo_pop(&f));
	for (unsigned i = 0; i < 100; i++)
		weft__fifo_push(&f, &t[i]);
	assert_int_equal(f.len, 100);
	for (unsigned i = 0; i < 50; i++)
		assert_int_equal(weft__fifo_pop(&f)->id, i);
	weft__fifo_push(&f, &t[0]);
	for (unsigned i = 50; i < 100; i++)
		assert_int_equal(weft__fifo_pop(&f)->id, i);
	assert_int_equal(weft__fifo_pop(&f)->id, 0);
	assert_null(weft__fifo_pop(&f));
	assert_int_equal(f.len, 0);
	assert_null(f.head);
	assert_null(f.tail);
	free(t);
}

/* ------------------------------------------------------------------------ */
/* owner vs thieves                                                          */
/* ------------------------------------------------------------------------ */

#define POOL 1024u

struct steal_ctx {
	weft_runtime *rt;
	weft__runq *src;
	weft_task *pool;
	_Atomic uint32_t taken[POOL];  /* per pool slot, this round */
	_Atomic uint64_t taken_total;   /* over all rounds */
	_Atomic uint32_t round;
	_Atomic int stop;
	_Atomic uint64_t bad_round;     /* a task of another round surfaced */
	_Atomic uint64_t bad_count;     /* *stolen disagreed with dst */
	_Atomic uint64_t steals, stolen, inject_taken;
};

struct thief {
	struct steal_ctx *c;
	weft__runq *dst;
	uint32_t rng;
};

static void take(struct steal_ctx *c, weft_task *x)
{
	uint64_t id = x->id;
	if (id / POOL != atomic_load_explicit(&c->round, memory_order_acquire))
		atomic_fetch_add(&c->bad_round, 1);
	atomic_fetch_add_explicit(&c->taken[id % POOL], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->taken_total, 1, memory_order_release);
}

static void *thief_main(void *arg)
{
	struct thief *th = arg;
	struct steal_ctx *c = th->c;
	while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
		unsigned n = 0;
		weft_task *x = weft__runq_steal(c->src, th->dst, &n);
		if (x) {
			atomic_fetch_add_explicit(&c->steals, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&c->stolen, n, memory_order_relaxed);
			if (weft__runq_len(th->dst) != n - 1)
				atomic_fetch_add(&c->bad_count, 1);
			take(c, x);
			unsigned popped = 0;
			while ((x = weft__runq_pop(th->dst))) {
				take(c, x);
				popped++;
			}
			if (popped != n - 1)
				atomic_fetch_add(&c->bad_count, 1);
			continue;
		}
		/* Like a searching loop: the inject queue too, now and then. */
		th->rng = th->rng * 1103515245u + 12345u;
		if ((th->rng >> 16) % 8 == 0 && (x = weft__inject_pop(c->rt))) {
			atomic_fetch_add_explicit(&c->inject_taken, 1, memory_order_relaxed);
			take(c, x);
		}
		weft__cpu_relax();
	}
	return NULL;
}

static void steal_race(unsigned nthieves)
{
	const unsigned rounds = WEFT_TEST_SANITIZED ? 3000 : 4000;
	struct steal_ctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->rt = rt_new();
	c->src = runq_new();
	c->pool = tasks_new(POOL);
	struct thief th[2];
	pthread_t tid[2];
	for (unsigned i = 0; i < nthieves; i++) {
		th[i].c = c;
		th[i].dst = runq_new();
		th[i].rng = 77u * (i + 1);
		assert_int_equal(pthread_create(&tid[i], NULL, thief_main, &th[i]), 0);
	}

	uint64_t bad_slot = 0, owner_pops = 0, hung = 0;
	uint32_t rng = 12345;
	for (uint32_t r = 0; r < rounds && !hung; r++) {
		atomic_store_explicit(&c->round, r, memory_order_release);
		uint32_t i = 0;
		while (i < POOL) {
			/* A burst of pushes (sometimes past CAP: overflow), then
			 * a few pops, like a loop spawning and running. */
			rng = rng * 1103515245u + 12345u;
			uint32_t burst = 1 + (rng >> 16) % ((rng & 1) ? 8 : 300);
			for (uint32_t k = 0; k < burst && i < POOL; k++, i++) {
				c->pool[i].id = (uint64_t)r * POOL + i;
				c->pool[i].next = NULL;
				weft__runq_push(c->src, &c->pool[i]);
			}
			uint32_t pops = (rng >> 8) % 6;
			for (uint32_t k = 0; k < pops; k++) {
				weft_task *x = weft__runq_pop(c->src);
				if (!x)
					x = weft__inject_pop(c->rt);
				if (!x)
					break;
				take(c, x);
				owner_pops++;
			}
		}
		weft_task *x;
		while ((x = weft__runq_pop(c->src)) || (x = weft__inject_pop(c->rt))) {
			take(c, x);
			owner_pops++;
		}
		/* Thieves may still hold what they stole: wait for the round. */
		uint64_t want = (uint64_t)(r + 1) * POOL;
		uint64_t t0 = weft_now_ns();
		while (atomic_load_explicit(&c->taken_total, memory_order_acquire) < want) {
			if (weft_now_ns() - t0 > 10000000000ull) {
				hung = 1;
				break;
			}
			/* Late items may have been requeued nowhere: keep draining. */
			while ((x = weft__runq_pop(c->src)) || (x = weft__inject_pop(c->rt)))
				take(c, x);
			sched_yield();
		}
		for (uint32_t k = 0; k < POOL; k++) {
			if (atomic_load_explicit(&c->taken[k], memory_order_relaxed) != 1)
				bad_slot++;
			atomic_store_explicit(&c->taken[k], 0, memory_order_relaxed);
		}
	}
	atomic_store(&c->stop, 1);
	for (unsigned i = 0; i < nthieves; i++)
		pthread_join(tid[i], NULL);

	uint64_t total = atomic_load(&c->taken_total);
	print_message("steal_race(%u thieves): %u rounds x %u tasks; owner took %llu, "
		      "%llu steals took %llu, %llu from inject by thieves\n",
		      nthieves, rounds, POOL, (unsigned long long)owner_pops,
		      (unsigned long long)atomic_load(&c->steals),
		      (unsigned long long)atomic_load(&c->stolen),
		      (unsigned long long)atomic_load(&c->inject_taken));
	assert_int_equal(hung, 0);
	assert_int_equal(bad_slot, 0);
	assert_int_equal(atomic_load(&c->bad_round), 0);
	assert_int_equal(atomic_load(&c->bad_count), 0);
	assert_int_equal(total, (uint64_t)rounds * POOL);
	assert_int_equal(weft__runq_len(c->src), 0);
	assert_int_equal(inject_len(c->rt), 0);
	for (unsigned i = 0; i < nthieves; i++) {
		assert_int_equal(weft__runq_len(th[i].dst), 0);
		free(th[i].dst);
	}
	/* With a thief spinning on the queue, steals must have happened. */
	assert_true(atomic_load(&c->steals) > 0);
	free(c->pool);
	free(c->src);
	free(c->rt);
	free(c);
}

static void runq_steal_race_1_thief(void **state)
{
	(void)state;
	steal_race(1);
}

static void runq_steal_race_2_thieves(void **state)
{
	(void)state;
	steal_race(2);
}

/* Many threads push to the inject queue while others pop from it. */
struct inject_ctx {
	weft_runtime *rt;
	weft_task *pool;
	unsigned per_thread;
	_Atomic uint32_t *seen;
	_Atomic uint64_t popped;
	_Atomic int producers_left;
};

struct inject_arg {
	struct inject_ctx *c;
	unsigned idx;
};

static void *inject_producer(void *arg)
{
	struct inject_arg *a = arg;
	struct inject_ctx *c = a->c;
	weft_task *base = c->pool + (size_t)a->idx * c->per_thread;
	unsigned i = 0;
	while (i < c->per_thread) {
		/* Alternate single pushes and batches of up to 5. */
		unsigned n = (i % 3 == 0) ? 1 : 1 + i % 5;
		if (n > c->per_thread - i)
			n = c->per_thread - i;
		for (unsigned k = 0; k + 1 < n; k++)
			base[i + k].next = &base[i + k + 1];
		if (n == 1)
			weft__inject_push(c->rt, &base[i]);
		else
			weft__inject_push_batch(c->rt, &base[i], &base[i + n - 1], n);
		i += n;
	}
	atomic_fetch_sub(&c->producers_left, 1);
	return NULL;
}

static void *inject_consumer(void *arg)
{
	struct inject_ctx *c = arg;
	for (;;) {
		weft_task *x = weft__inject_pop(c->rt);
		if (x) {
			atomic_fetch_add(&c->seen[x->id], 1);
			atomic_fetch_add(&c->popped, 1);
			continue;
		}
		if (atomic_load(&c->producers_left) == 0 && atomic_load(&c->rt->inject_len) == 0)
			return NULL;
		sched_yield();
	}
}

static void inject_concurrent(void **state)
{
	(void)state;
	enum { PRODUCERS = 3, CONSUMERS = 2 };
	struct inject_ctx c;
	memset(&c, 0, sizeof(c));
	c.rt = rt_new();
	c.per_thread = WEFT_TEST_SANITIZED ? 50000 : 100000;
	size_t total = (size_t)PRODUCERS * c.per_thread;
	c.pool = tasks_new(total);
	c.seen = calloc(total, sizeof(*c.seen));
	atomic_store(&c.producers_left, PRODUCERS);
	pthread_t p[PRODUCERS], q[CONSUMERS];
	struct inject_arg a[PRODUCERS];
	for (unsigned i = 0; i < CONSUMERS; i++)
		assert_int_equal(pthread_create(&q[i], NULL, inject_consumer, &c), 0);
	for (unsigned i = 0; i < PRODUCERS; i++) {
		a[i] = (struct inject_arg){ &c, i };
		assert_int_equal(pthread_create(&p[i], NULL, inject_producer, &a[i]), 0);
	}
	for (unsigned i = 0; i < PRODUCERS; i++)
		pthread_join(p[i], NULL);
	for (unsigned i = 0; i < CONSUMERS; i++)
		pthread_join(q[i], NULL);
	uint64_t bad = 0;
	for (size_t i = 0; i < total; i++)
		bad += atomic_load(&c.seen[i]) != 1;
	assert_int_equal(bad, 0);
	assert_int_equal(atomic_load(&c.popped), total);
	assert_null(c.rt->inject_head);
	assert_null(c.rt->inject_tail);
	free(c.seen);
	free(c.pool);
	free(c.rt);
}

/* ------------------------------------------------------------------------ */
/* MPSC stack                                                                */
/* ------------------------------------------------------------------------ */

#define MPSC_PRODUCERS 4

struct mpsc_ctx {
	weft__mpsc s;
	weft_task *pool;
	unsigned per_producer;
	_Atomic int go;
};

struct mpsc_arg {
	struct mpsc_ctx *c;
	unsigned idx;
};

static void *mpsc_producer(void *arg)
{
	struct mpsc_arg *a = arg;
	struct mpsc_ctx *c = a->c;
	while (!atomic_load(&c->go))
		;
	weft_task *base = c->pool + (size_t)a->idx * c->per_producer;
	for (unsigned i = 0; i < c->per_producer; i++) {
		base[i].id = ((uint64_t)a->idx << 32) | i;
		weft__mpsc_push(&c->s, &base[i]);
		if ((i & 63) == 0)
			sched_yield();
	}
	return NULL;
}

static void mpsc_per_producer_order(void **state)
{
	(void)state;
	struct mpsc_ctx c;
	memset(&c, 0, sizeof(c));
	c.per_producer = WEFT_TEST_SANITIZED ? 100000 : 200000;
	uint64_t total = (uint64_t)MPSC_PRODUCERS * c.per_producer;
	c.pool = calloc(total, sizeof(*c.pool));
	assert_non_null(c.pool);
	assert_null(weft__mpsc_take_fifo(&c.s));

	pthread_t p[MPSC_PRODUCERS];
	struct mpsc_arg a[MPSC_PRODUCERS];
	for (unsigned i = 0; i < MPSC_PRODUCERS; i++) {
		a[i] = (struct mpsc_arg){ &c, i };
		assert_int_equal(pthread_create(&p[i], NULL, mpsc_producer, &a[i]), 0);
	}
	atomic_store(&c.go, 1);

	uint64_t next[MPSC_PRODUCERS] = { 0 };
	uint64_t got = 0, takes = 0, out_of_order = 0, bad_id = 0, max_batch = 0;
	uint64_t t0 = weft_now_ns();
	while (got < total && weft_now_ns() - t0 < 30000000000ull) {
		weft_task *x = weft__mpsc_take_fifo(&c.s);
		if (!x) {
			sched_yield();
			continue;
		}
		takes++;
		uint64_t batch = 0;
		for (; x; x = x->next, batch++) {
			uint64_t p_idx = x->id >> 32, seq = x->id & 0xffffffffu;
			if (p_idx >= MPSC_PRODUCERS) {
				bad_id++;
				continue;
			}
			if (seq != next[p_idx])
				out_of_order++;
			next[p_idx] = seq + 1;
			got++;
		}
		if (batch > max_batch)
			max_batch = batch;
	}
	for (unsigned i = 0; i < MPSC_PRODUCERS; i++)
		pthread_join(p[i], NULL);
	print_message("mpsc: %llu tasks in %llu takes (largest batch %llu)\n",
		      (unsigned long long)got, (unsigned long long)takes,
		      (unsigned long long)max_batch);
	assert_int_equal(bad_id, 0);
	assert_int_equal(out_of_order, 0);
	assert_int_equal(got, total);
	for (unsigned i = 0; i < MPSC_PRODUCERS; i++)
		assert_int_equal(next[i], c.per_producer);
	assert_null(weft__mpsc_take_fifo(&c.s));
	free(c.pool);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(runq_push_pop_fifo),
	cmocka_unit_test(runq_index_wrap),
	cmocka_unit_test(runq_overflow_keeps_order),
	cmocka_unit_test(runq_steal_from_overflow),
	cmocka_unit_test(runq_push_full_during_steal),
	cmocka_unit_test(runq_steal_half),
	cmocka_unit_test(fifo_owner_queue),
	cmocka_unit_test(runq_steal_race_1_thief),
	cmocka_unit_test(runq_steal_race_2_thieves),
	cmocka_unit_test(inject_concurrent),
	cmocka_unit_test(mpsc_per_producer_order),
};

WEFT_TEST_MAIN(tests)
