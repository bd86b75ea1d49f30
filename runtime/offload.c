/*
 * The blocking pool: plain threads that run calls which would block a loop
 * (asyncio.to_thread).  A task submits a job and waits on a future; the
 * job's state word decides, exactly once, who owns the result when the
 * waiter gives up at the moment the call finishes:
 *
 *   QUEUED --worker starts--> RUNNING --worker ends--> DONE  (result -> future)
 *      \                        \
 *       waiter gives up:         waiter gives up: ABANDONED, the worker
 *       ABANDONED, never runs;   hands the result to cleanup()
 *       cleanup(NULL) frees arg
 *
 * If the waiter's exchange finds DONE, the result is on its way to the
 * future and the waiter takes it (nothing is lost).
 *
 * Threads start on demand up to offload_threads and exit after
 * offload_idle_ms without work.  Threads are joinable and live in slots;
 * a thread that exits marks its slot for joining by the next submitter or
 * by shutdown, so no thread outlives the runtime.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

enum { J_QUEUED, J_RUNNING, J_DONE, J_ABANDONED };
enum { SLOT_FREE, SLOT_LIVE, SLOT_EXITED };

typedef struct weft__job {
	struct weft__job *next;
	weft_fn fn;
	void *arg;
	weft_cleanup_fn cleanup;
	weft_future *f;
	_Atomic int state;
	_Atomic int refs;
} weft__job;

struct weft__pool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* jobs queued, or stopping */
	pthread_cond_t exit_cv; /* a thread exited */
	weft__job *head, *tail;
	unsigned queued, idle, live, max;
	unsigned idle_ms;
	bool stopping;
	pthread_t *threads;
	uint8_t *slot;
	_Atomic uint64_t calls;
};

struct worker_arg {
	weft__pool *p;
	unsigned slot;
};

static void job_unref(weft__job *j)
{
	if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1)
		free(j);
}

static void run_job(weft__pool *p, weft__job *j)
{
	int s = J_QUEUED;
	if (atomic_compare_exchange_strong(&j->state, &s, J_RUNNING)) {
		atomic_fetch_add_explicit(&p->calls, 1, memory_order_relaxed);
		void *r = j->fn(j->arg);
		if (atomic_exchange(&j->state, J_DONE) == J_ABANDONED) {
			if (j->cleanup)
				j->cleanup(r, j->arg);
		} else {
			weft_future_set_result(j->f, r);
		}
	} else if (j->cleanup) {
		/* Abandoned before it started: it never runs, and cleanup,
		 * which owns arg once the waiter gave up, gets NULL. */
		j->cleanup(NULL, j->arg);
	}
	weft_future_release(j->f);
	job_unref(j);
}

static void abs_deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Next job, or NULL when this thread should exit (idle too long, or the
 * pool stops with nothing queued).  Called and returns with p->mu held. */
static weft__job *next_job(weft__pool *p)
{
	struct timespec ts;
	abs_deadline(&ts, p->idle_ms);
	while (!p->head && !p->stopping) {
		p->idle++;
		int r = pthread_cond_timedwait(&p->work_cv, &p->mu, &ts);
		p->idle--;
		if (r == ETIMEDOUT && !p->head)
			return NULL;
	}
	weft__job *j = p->head;
	if (j) {
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
	}
	return j;
}

static void *worker(void *argp)
{
	struct worker_arg a = *(struct worker_arg *)argp;
	free(argp);
	weft__pool *p = a.p;
	pthread_mutex_lock(&p->mu);
	weft__job *j;
	while ((j = next_job(p))) {
		pthread_mutex_unlock(&p->mu);
		run_job(p, j);
		pthread_mutex_lock(&p->mu);
	}
	p->live--;
	p->slot[a.slot] = SLOT_EXITED;
	pthread_cond_broadcast(&p->exit_cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* With p->mu held: join exited threads and start one in a free slot. */
static int start_thread_locked(weft__pool *p)
{
	int free_slot = -1;
	for (unsigned i = 0; i < p->max; i++) {
		if (p->slot[i] == SLOT_EXITED) {
			pthread_join(p->threads[i], NULL);
			p->slot[i] = SLOT_FREE;
		}
		if (p->slot[i] == SLOT_FREE && free_slot < 0)
			free_slot = (int)i;
	}
	if (free_slot < 0)
		return -EAGAIN;
	struct worker_arg *a = malloc(sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->p = p;
	a->slot = (unsigned)free_slot;
	weft_loop *pinned = weft__cpu_unpin_begin(); /* not the loop's one CPU */
	int r = pthread_create(&p->threads[free_slot], NULL, worker, a);
	weft__cpu_unpin_end(pinned);
	if (r) {
		free(a);
		return -r;
	}
	p->slot[free_slot] = SLOT_LIVE;
	p->live++;
	return 0;
}

static int submit(weft__pool *p, weft__job *j)
{
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return -ESHUTDOWN;
	}
	j->next = NULL;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	int r = 0;
	if (p->queued > p->idle && p->live < p->max)
		r = start_thread_locked(p);
	if (r < 0 && p->live == 0) {
		/* Nobody will ever run it: take it (the tail) back. */
		weft__job **pp = &p->head;
		while (*pp != j)
			pp = &(*pp)->next;
		*pp = NULL;
		p->tail = NULL;
		for (weft__job *x = p->head; x; x = x->next)
			p->tail = x;
		p->queued--;
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	pthread_cond_signal(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void weft__cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

int weft__pool_create(weft_runtime *rt)
{
	weft__pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->max = rt->cfg.offload_threads ? rt->cfg.offload_threads : 64;
	p->idle_ms = rt->cfg.offload_idle_ms ? rt->cfg.offload_idle_ms : 10000;
	p->threads = calloc(p->max, sizeof(*p->threads));
	p->slot = calloc(p->max, 1);
	if (!p->threads || !p->slot) {
		free(p->threads);
		free(p->slot);
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	weft__cond_init_monotonic(&p->work_cv);
	pthread_cond_init(&p->exit_cv, NULL);
	rt->pool = p;
	return 0;
}

/* Stop the pool: running calls finish, abandoned queued ones are skipped,
 * every thread is joined.  Called once every task has finished.  The pool
 * stays readable (stats) until weft__pool_destroy. */
void weft__pool_stop(weft_runtime *rt)
{
	weft__pool *p = rt->pool;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work_cv);
	while (p->live)
		pthread_cond_wait(&p->exit_cv, &p->mu);
	for (unsigned i = 0; i < p->max; i++) {
		if (p->slot[i] == SLOT_EXITED) {
			pthread_join(p->threads[i], NULL);
			p->slot[i] = SLOT_FREE;
		}
	}
	pthread_mutex_unlock(&p->mu);
}

void weft__pool_destroy(weft_runtime *rt)
{
	weft__pool *p = rt->pool;
	if (!p)
		return;
	weft__pool_stop(rt);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->exit_cv);
	free(p->threads);
	free(p->slot);
	free(p);
	rt->pool = NULL;
}

void weft__pool_stats(weft_runtime *rt, uint64_t *threads, uint64_t *calls)
{
	weft__pool *p = rt->pool;
	*threads = *calls = 0;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	*threads = p->live;
	pthread_mutex_unlock(&p->mu);
	*calls = atomic_load_explicit(&p->calls, memory_order_relaxed);
}

/* The waiter gave up but the call had already finished: its result is
 * about to land in the future; wait for it past cancellation and scopes. */
static void *take_finished(weft_task *t, weft_future *f)
{
	void *v = NULL;
	uint64_t saved = weft__uninterruptible_begin(t);
	weft__future_wait_as(f, &v, WEFT_WAIT_OFFLOAD);
	weft__uninterruptible_end(t, saved);
	return v;
}

int weft_offload_ex(weft_fn fn, void *arg, weft_cleanup_fn cleanup, void **result)
{
	weft_loop *l = weft__loop_self();
	weft_task *t = l ? l->current : NULL;
	int r = !t ? weft__misuse(-EPERM, "weft_offload outside a task") : !fn ? -EINVAL
		   : weft__checkpoint(t);
	weft__job *j = NULL;
	if (!r && !(j = malloc(sizeof(*j))))
		r = -ENOMEM;
	if (!r && (r = weft_future_create(&j->f)) < 0)
		free(j);
	if (r < 0) {
		if (cleanup) /* fn never runs: arg goes to cleanup, as documented */
			cleanup(NULL, arg);
		return r;
	}
	weft_future *f = weft_future_ref(j->f); /* one for the job, one here */
	j->fn = fn;
	j->arg = arg;
	j->cleanup = cleanup;
	atomic_init(&j->state, J_QUEUED);
	atomic_init(&j->refs, 2);
	if ((r = submit(l->rt->pool, j)) < 0) {
		weft_future_release(f);
		weft_future_release(f);
		free(j);
		if (cleanup)
			cleanup(NULL, arg);
		return r;
	}
	void *v = NULL;
	bool seen = t->cancel_seen;
	r = weft__future_wait_as(f, &v, WEFT_WAIT_OFFLOAD);
	if (r < 0 && atomic_exchange(&j->state, J_ABANDONED) == J_DONE) {
		v = take_finished(t, f);
		r = 0;
		t->cancel_seen = seen; /* delivered at the next suspension point */
	}
	weft_future_release(f);
	job_unref(j);
	if (r == 0 && result)
		*result = v;
	return r;
}

int weft_offload(weft_fn fn, void *arg, void **result)
{
	return weft_offload_ex(fn, arg, NULL, result);
}

void weft__pool_depth(weft_runtime *rt, uint64_t *threads, uint64_t *idle, uint64_t *queued)
{
	weft__pool *p = rt->pool;
	*threads = *idle = *queued = 0;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	*threads = p->live;
	*idle = p->idle;
	*queued = p->queued;
	pthread_mutex_unlock(&p->mu);
}
