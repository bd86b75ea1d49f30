/*
 * sync: synchronization primitives.
 *
 *  - sync_lock_uncontended: weft_lock_acquire + weft_lock_release in one
 *    task, no contention, ns per pair; baseline: pthread_mutex_lock +
 *    unlock on a thread, same run.  ratio = baseline / weft (> 1: weft is
 *    cheaper).
 *  - sync_sem_fanout: 100k tasks spawned at once across the loops, each
 *    takes a weft_sem(10), yields once inside, and releases; ns per task
 *    (spawn, join and the semaphore included).  The run checks that no
 *    more than 10 were ever inside at once.  Baseline (same run): the same
 *    100k tasks all parked on a weft_event, released at once, each
 *    yielding once; ratio = baseline / semaphore.  Nearly all the tasks
 *    are parked at the same time in both, each on its own stack, and that
 *    (fresh stacks cost page faults) is most of either number.
 *
 * The issue names no target for these, so target=- and the line reports ok
 * unless a call failed or the concurrency limit was broken.
 */
#include "bench.h"
#include "weft/sync.h"

#include <pthread.h>
#include <stdatomic.h>

#define FANOUT_LIMIT 10

static uint64_t lock_iters, fanout_tasks;
static weft_lock lock;
static weft_sem sem;
static weft_event gate;
static _Atomic int inside, max_inside, gate_arrived;

static double pthread_rep(void *arg)
{
	(void)arg;
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < lock_iters; i++) {
		pthread_mutex_lock(&m);
		pthread_mutex_unlock(&m);
	}
	return (double)(now_ns() - t0) / (double)lock_iters;
}

static double lock_rep(void *arg)
{
	(void)arg;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < lock_iters; i++) {
		BENCH_CHECK(weft_lock_acquire(&lock));
		BENCH_CHECK(weft_lock_release(&lock));
	}
	return (double)(now_ns() - t0) / (double)lock_iters;
}

static void *fan_task(void *arg)
{
	(void)arg;
	int rc = weft_sem_acquire(&sem);
	if (rc < 0)
		return (void *)(intptr_t)rc;
	int in = atomic_fetch_add_explicit(&inside, 1, memory_order_relaxed) + 1;
	int m = atomic_load_explicit(&max_inside, memory_order_relaxed);
	while (in > m && !atomic_compare_exchange_weak(&max_inside, &m, in))
		;
	weft_yield(); /* let the others pile up on the semaphore */
	atomic_fetch_sub_explicit(&inside, 1, memory_order_relaxed);
	return (void *)(intptr_t)weft_sem_release(&sem);
}

static void *gate_task(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&gate_arrived, 1, memory_order_relaxed);
	int rc = weft_event_wait(&gate);
	if (rc < 0)
		return (void *)(intptr_t)rc;
	weft_yield();
	return NULL;
}

static double fanout_rep(void *arg)
{
	weft_fn fn = arg;
	weft_task **t = malloc(fanout_tasks * sizeof(*t));
	if (!t)
		BENCH_FAIL("out of memory");
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < fanout_tasks; i++)
		BENCH_CHECK(weft_task_spawn(&t[i], fn, NULL));
	if (fn == gate_task) {
		/* every task parked on the gate, then all released */
		while (atomic_load(&gate_arrived) < (int)fanout_tasks)
			weft_sleep_ms(1);
		weft_event_set(&gate);
	}
	for (uint64_t i = 0; i < fanout_tasks; i++) {
		void *res = NULL;
		BENCH_CHECK(weft_task_join(t[i], &res));
		BENCH_CHECK((int)(intptr_t)res);
		weft_task_release(t[i]);
	}
	double ns = (double)(now_ns() - t0) / (double)fanout_tasks;
	free(t);
	atomic_store(&gate_arrived, 0);
	weft_event_clear(&gate);
	return ns;
}

struct results {
	double lock_ns, fanout_ns, gate_ns;
};

static void *bench_main(void *arg)
{
	struct results *r = arg;
	int reps = bench_reps();
	double v[BENCH_MAX_REPS];
	uint64_t saved = lock_iters;
	lock_iters = 10000; /* warm-up */
	lock_rep(NULL);
	lock_iters = saved;
	r->lock_ns = bench_median_of(reps, lock_rep, NULL, v);
	bench_note_reps("sync_lock_uncontended", v, reps, "ns");
	r->gate_ns = bench_median_of(reps, fanout_rep, (void *)gate_task, v);
	bench_note_reps("event_gate_fanout", v, reps, "ns");
	r->fanout_ns = bench_median_of(reps, fanout_rep, (void *)fan_task, v);
	bench_note_reps("sync_sem_fanout", v, reps, "ns");
	return NULL;
}

int main(void)
{
	lock_iters = bench_scaled(5000000);
	fanout_tasks = bench_scaled(100000);
	BENCH_CHECK(weft_lock_init(&lock));
	BENCH_CHECK(weft_sem_init(&sem, FANOUT_LIMIT));
	BENCH_CHECK(weft_event_init(&gate));

	int reps = bench_reps();
	double v[BENCH_MAX_REPS];
	double pthread_ns = bench_median_of(reps, pthread_rep, NULL, v);
	bench_note_reps("pthread_mutex", v, reps, "ns");

	weft_runtime_config cfg;
	bench_config(&cfg, 0);
	struct results r = { 0, 0, 0 };
	void *res;
	BENCH_CHECK(weft_run(&cfg, bench_main, &r, &res));

	bench_line("sync_lock_uncontended", r.lock_ns, "ns", pthread_ns,
		   r.lock_ns > 0 ? pthread_ns / r.lock_ns : 0, "-", true);
	int m = atomic_load(&max_inside);
	fprintf(stderr, "sync_sem_fanout: max inside %d (limit %d)\n", m, FANOUT_LIMIT);
	bench_line("sync_sem_fanout", r.fanout_ns, "ns", r.gate_ns,
		   r.fanout_ns > 0 ? r.gate_ns / r.fanout_ns : 0, "-",
		   m <= FANOUT_LIMIT && weft_sem_value(&sem) == FANOUT_LIMIT);
	return 0;
}
