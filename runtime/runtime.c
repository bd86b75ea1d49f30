/* Runtime lifecycle: start the loops, run main (asyncio.run), shut down. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_STACK (64u * 1024u)

/* Every started runtime, newest first: where a debugger looking at a core
 * file finds them (tools/weft-gdb.py, weft-tasks), reading memory only. */
WEFT_HIDDEN weft_runtime *weft__runtimes;
static pthread_mutex_t runtimes_mu = PTHREAD_MUTEX_INITIALIZER;

static void runtimes_add(weft_runtime *rt)
{
	pthread_mutex_lock(&runtimes_mu);
	rt->next_rt = weft__runtimes;
	weft__runtimes = rt;
	pthread_mutex_unlock(&runtimes_mu);
}

static void runtimes_remove(weft_runtime *rt)
{
	pthread_mutex_lock(&runtimes_mu);
	for (weft_runtime **p = &weft__runtimes; *p; p = &(*p)->next_rt)
		if (*p == rt) {
			*p = rt->next_rt;
			break;
		}
	pthread_mutex_unlock(&runtimes_mu);
}

void weft_runtime_config_init(weft_runtime_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->stack_size = DEFAULT_STACK;
	cfg->ring_entries = 256;
	cfg->spin_us = 50;
	cfg->stack_guard = WEFT_GUARD_AUTO;
	cfg->stack_pool_max = 256;
	cfg->offload_threads = 64;
	cfg->offload_idle_ms = 10000;
	cfg->coalesce_events = 32;
	cfg->stall_threshold_ns = 100000000ull;        /* 100 ms */
	cfg->stall_report_interval_ns = 15000000000ull; /* 15 s */
}

static int check_config(weft_runtime_config *c)
{
	for (size_t i = 0; i < sizeof(c->reserved) / sizeof(c->reserved[0]); i++)
		if (c->reserved[i])
			return -EINVAL;
	if (c->loops == 0) {
		unsigned n = weft_cpu_count();
		c->loops = n < 1024 ? n : 1024;
	}
	if (c->loops > 1024 || c->stack_guard > WEFT_GUARD_NEVER)
		return -EINVAL;
	if (c->stack_size == 0)
		c->stack_size = DEFAULT_STACK;
	if (c->stack_size < 16384 || c->stack_size > (1ul << 30))
		return -EINVAL;
	long page = sysconf(_SC_PAGESIZE);
	c->stack_size = (c->stack_size + (size_t)page - 1) & ~((size_t)page - 1);
	if (c->ring_entries == 0)
		c->ring_entries = 256;
	if (c->ring_mode > WEFT_RING_MODE_PLAIN || c->backend > WEFT_BACKEND_EPOLL)
		return -EINVAL;
	if (c->ring_entries > 32768)
		return -EINVAL;
	if (c->coalesce_us > 1000000 || (c->coalesce_us && !c->coalesce_events))
		return -EINVAL;
	if (c->ring_cq_entries == 0)
		c->ring_cq_entries = c->ring_entries * 16 < 4096 ? 4096 : c->ring_entries * 16;
	if (c->ring_cq_entries < c->ring_entries || c->ring_cq_entries > 524288)
		return -EINVAL;
	if (c->dump_signal < 0 || c->dump_signal >= NSIG || c->dump_signal == SIGKILL ||
	    c->dump_signal == SIGSTOP)
		return -EINVAL;
	return 0;
}

static void free_loops(weft_runtime *rt)
{
	for (unsigned i = 0; i < rt->nloops && rt->loops; i++) {
		weft_loop *l = rt->loops[i];
		if (!l)
			continue;
		free(l->rq);
		free(l->heap);
		free(l->stacks.base);
		free(l->stacks.kind);
		free(l);
	}
	free(rt->loops);
	rt->loops = NULL;
}

static int alloc_loops(weft_runtime *rt)
{
	rt->loops = calloc(rt->nloops, sizeof(*rt->loops));
	rt->sleepers = calloc(rt->nloops, sizeof(*rt->sleepers));
	if (!rt->loops || !rt->sleepers)
		return -ENOMEM;
	for (unsigned i = 0; i < rt->nloops; i++) {
		weft_loop *l = aligned_alloc(64, (sizeof(*l) + 63) & ~(size_t)63);
		if (!l)
			return -ENOMEM;
		memset(l, 0, sizeof(*l));
		rt->loops[i] = l;
		l->rq = aligned_alloc(64, (sizeof(*l->rq) + 63) & ~(size_t)63);
		unsigned cap = rt->cfg.stack_pool_max;
		l->stacks.base = calloc(cap ? cap : 1, sizeof(void *));
		l->stacks.kind = calloc(cap ? cap : 1, 1);
		if (!l->rq || !l->stacks.base || !l->stacks.kind)
			return -ENOMEM;
		l->stacks.cap = cap;
		weft__runq_init(l->rq);
		l->rt = rt;
		l->index = i;
		l->rng = 0x9e3779b9u * (i + 1);
		l->ring_fd = -1;
		l->maint_countdown = WEFT_MAINT_INTERVAL;
		l->efd = -1;
		l->ep.epfd = -1;
	}
	return 0;
}

int weft_runtime_start(weft_runtime **out, const weft_runtime_config *cfg)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	weft_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	if (cfg)
		rt->cfg = *cfg;
	else
		weft_runtime_config_init(&rt->cfg);
	int err = check_config(&rt->cfg);
	if (err == 0)
		err = weft__backend_choose(rt);
	if (err < 0) {
		free(rt);
		return err;
	}
	rt->nloops = rt->cfg.loops;
	weft__cpu_save(rt);
	rt->page = (size_t)sysconf(_SC_PAGESIZE);
	rt->guarded_max = rt->cfg.guarded_stacks_max ? rt->cfg.guarded_stacks_max
						     : weft__stack_guarded_default();
	atomic_init(&rt->num_unparked, rt->nloops);
	pthread_mutex_init(&rt->start_mu, NULL);
	pthread_mutex_init(&rt->shutdown_mu, NULL);
	pthread_cond_init(&rt->start_cv, NULL);
	err = alloc_loops(rt);
	if (!err)
		err = weft__pool_create(rt);
	weft__sigpipe_hold(); /* before any loop can write */

	unsigned created = 0;
	for (; err == 0 && created < rt->nloops; created++) {
		int r = pthread_create(&rt->loops[created]->thread, NULL, weft__loop_main,
				       rt->loops[created]);
		if (r) {
			err = -r; /* `created` counts only threads that exist */
			break;
		}
	}
	/* Wait for every loop to create its ring, then start or abort all. */
	pthread_mutex_lock(&rt->start_mu);
	while (rt->started < created)
		pthread_cond_wait(&rt->start_cv, &rt->start_mu);
	for (unsigned i = 0; err == 0 && i < created; i++)
		err = rt->loops[i]->init_err;
	atomic_store(&rt->state, err ? 3 : 1);
	pthread_cond_broadcast(&rt->start_cv);
	pthread_mutex_unlock(&rt->start_mu);

	if (err) {
		for (unsigned i = 0; i < created; i++)
			pthread_join(rt->loops[i]->thread, NULL);
		for (unsigned i = 0; i < created; i++)
			if (rt->loops[i]->init_err == 0)
				weft__io_exit(rt->loops[i]);
		fprintf(stderr, "weft: cannot start: a loop's %s set-up failed: %s\n",
			weft_backend_name(rt->backend), strerror(-err));
		weft__pool_destroy(rt);
		weft__sigpipe_release();
		free_loops(rt);
		free(rt->sleepers);
		weft__stacks_destroy(rt);
		free(rt);
		return err;
	}
	runtimes_add(rt);
	if ((err = weft__dump_signal_start(rt)) < 0) {
		fprintf(stderr, "weft: cannot start: dump_signal %d: %s\n", rt->cfg.dump_signal,
			strerror(-err));
		weft_runtime_destroy(rt);
		return err;
	}
	/* Without its watchdog the runtime runs on: stalls go unreported. */
	int werr = weft__watchdog_start(rt);
	if (werr < 0)
		fprintf(stderr, "weft: no stall detector: %s\n", strerror(-werr));
	*out = rt;
	weft__trace_env_start(rt);
	return 0;
}

static bool on_own_loop(weft_runtime *rt)
{
	weft_loop *l = weft__loop_self();
	return l && l->rt == rt;
}

int weft_runtime_shutdown(weft_runtime *rt)
{
	if (!rt)
		return -EINVAL;
	if (on_own_loop(rt))
		return weft__misuse(-EDEADLK, "weft_runtime_shutdown from inside the runtime");
	/* Not start_mu: a loop may still need it to leave the start-up
	 * handshake, and we are about to join it. */
	pthread_mutex_lock(&rt->shutdown_mu);
	if (atomic_load(&rt->state) == 1) {
		weft__dump_signal_stop(rt); /* its dump, if one runs, ends first */
		atomic_store_explicit(&rt->state, 2, memory_order_seq_cst);
		if (atomic_load_explicit(&rt->live, memory_order_seq_cst) == 0)
			atomic_store_explicit(&rt->stop, 1, memory_order_seq_cst);
		weft__wake_all_loops(rt);
		for (unsigned i = 0; i < rt->nloops; i++)
			pthread_join(rt->loops[i]->thread, NULL);
		weft__watchdog_stop(rt); /* it watched the shutdown too */
		/* Running offloaded calls finish first: one finishing wakes its
		 * task's loop through the loop's eventfd, which must still be
		 * open (closed, its number may already be someone else's). */
		weft__pool_stop(rt);
		while (atomic_load_explicit(&rt->foreign_wakes, memory_order_acquire))
			sched_yield(); /* a foreign waker still uses a loop */
		for (unsigned i = 0; i < rt->nloops; i++)
			weft__io_exit(rt->loops[i]);
		weft__sigpipe_release(); /* nothing of this runtime writes now */
		atomic_store(&rt->state, 3);
		weft__trace_env_finish(rt);
	}
	pthread_mutex_unlock(&rt->shutdown_mu);
	return 0;
}

void weft_runtime_destroy(weft_runtime *rt)
{
	if (!rt)
		return;
	if (on_own_loop(rt)) {
		(void)weft__misuse(0, "weft_runtime_destroy from inside the runtime");
		return;
	}
	weft_runtime_shutdown(rt);
	runtimes_remove(rt);
	weft__pool_destroy(rt);
	weft__trace_free(rt);
	free_loops(rt);
	free(rt->sleepers);
	weft__stacks_destroy(rt);
	pthread_mutex_destroy(&rt->start_mu);
	pthread_mutex_destroy(&rt->shutdown_mu);
	pthread_cond_destroy(&rt->start_cv);
	free(rt);
}

int weft_runtime_spawn(weft_runtime *rt, weft_task **out, const weft_task_config *cfg,
		       weft_fn fn, void *arg)
{
	if (out)
		*out = NULL;
	if (!rt)
		return -EINVAL;
	weft_loop *l = weft__loop_self();
	if (l && l->rt != rt)
		l = NULL; /* a task of another runtime is a foreign thread here */
	return weft__task_spawn(rt, l, out, cfg, fn, arg, NULL);
}

int weft_runtime_call(weft_runtime *rt, weft_fn fn, void *arg, void **result)
{
	if (!rt)
		return -EINVAL;
	if (on_own_loop(rt))
		return weft__misuse(-EDEADLK, "weft_runtime_call from inside the runtime "
					      "(spawn and join instead)");
	weft_task *t;
	int r = weft_runtime_spawn(rt, &t, NULL, fn, arg);
	if (r < 0)
		return r;
	r = weft_task_join(t, result);
	weft_task_release(t);
	return r;
}

int weft_run(const weft_runtime_config *cfg, weft_fn main_fn, void *arg, void **result)
{
	if (!main_fn)
		return -EINVAL;
	weft_runtime *rt;
	int r = weft_runtime_start(&rt, cfg);
	if (r < 0)
		return r;
	r = weft_runtime_call(rt, main_fn, arg, result);
	weft_runtime_destroy(rt);
	return r;
}

weft_runtime *weft_runtime_current(void)
{
	weft_loop *l = weft__loop_self();
	return l ? l->rt : NULL;
}

unsigned weft_loop_count(void)
{
	weft_loop *l = weft__loop_self();
	return l ? l->rt->nloops : 0;
}

int weft_loop_index(void)
{
	weft_loop *l = weft__loop_self();
	return l ? (int)l->index : -1;
}

int weft_runtime_stats_get(weft_runtime *rt, weft_runtime_stats *out)
{
	if (!rt || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->loops = rt->nloops;
	out->backend = rt->backend;
	snprintf(out->backend_reason, sizeof(out->backend_reason), "%s", rt->backend_reason);
	out->tasks_spawned = atomic_load_explicit(&rt->spawned, memory_order_relaxed);
	uint64_t live = atomic_load_explicit(&rt->live, memory_order_relaxed);
	out->stacks_guarded = atomic_load_explicit(&rt->guarded_live, memory_order_relaxed);
	out->stacks_slab = atomic_load_explicit(&rt->slab_live, memory_order_relaxed);
	for (unsigned i = 0; i < rt->nloops; i++) {
		weft_loop *l = rt->loops[i];
		if (i == 0)
			out->ring_features = l->features;
		if (i < 64) {
			/* Racy snapshot of owner-written counters, field by field. */
			uint64_t *src = (uint64_t *)&l->st;
			uint64_t *dst = (uint64_t *)&out->loop[i];
			for (size_t k = 0; k < sizeof(l->st) / sizeof(uint64_t); k++)
				dst[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
		}
		out->tasks_spawned += __atomic_load_n(&l->st.tasks_spawned, __ATOMIC_RELAXED);
		uint64_t credits = __atomic_load_n(&l->credits, __ATOMIC_RELAXED);
		live = live > credits ? live - credits : 0;
	}
	out->tasks_live = live;
	weft__pool_stats(rt, &out->offload_threads, &out->offload_calls);
	return 0;
}

const char *weft_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case -EINVAL: return "-EINVAL (invalid argument)";
	case -ENOMEM: return "-ENOMEM (out of memory)";
	case -EPERM: return "-EPERM (operation not permitted)";
	case -EOPNOTSUPP: return "-EOPNOTSUPP (not supported here)";
	case -ECANCELED: return "-ECANCELED (cancelled)";
	case -ETIMEDOUT: return "-ETIMEDOUT (timed out)";
	case -EALREADY: return "-EALREADY (already done)";
	case -EBUSY: return "-EBUSY (busy)";
	case -EDEADLK: return "-EDEADLK (would deadlock)";
	case -ESHUTDOWN: return "-ESHUTDOWN (shut down: the runtime, or the input)";
	case -EAGAIN: return "-EAGAIN (not ready)";
	case -ENOSYS: return "-ENOSYS (not supported by this kernel)";
	case -EPIPE: return "-EPIPE (closed)";
	case -EBADF: return "-EBADF (bad file descriptor)";
	case -EIO: return "-EIO (I/O error)";
	case -ENOENT: return "-ENOENT (no such file or directory)";
	case -EEXIST: return "-EEXIST (already exists)";
	case -EACCES: return "-EACCES (permission denied)";
	case -EMFILE: return "-EMFILE (too many open files)";
	case -ENOSPC: return "-ENOSPC (no space left)";
	case -EINTR: return "-EINTR (interrupted)";
	case -ECONNREFUSED: return "-ECONNREFUSED (connection refused)";
	case -ECONNRESET: return "-ECONNRESET (connection reset by peer)";
	case -ENOTCONN: return "-ENOTCONN (not connected)";
	case -EADDRINUSE: return "-EADDRINUSE (address in use)";
	case -EHOSTUNREACH: return "-EHOSTUNREACH (host unreachable)";
	case -ENOBUFS: return "-ENOBUFS (no buffer space)";
	case -EMSGSIZE: return "-EMSGSIZE (message too long)";
	case -EOVERFLOW: return "-EOVERFLOW (value too large)";
	case -ERANGE: return "-ERANGE (out of range)";
	case -ESPIPE: return "-ESPIPE (not seekable)";
	case -ENODATA: return "-ENODATA (input ended first)";
	case -ECONNABORTED: return "-ECONNABORTED (connection aborted)";
	case -EBADMSG: return "-EBADMSG (malformed message)";
	case -ENAMETOOLONG: return "-ENAMETOOLONG (name too long)";
	case -EFBIG: return "-EFBIG (too big)";
	case -ECHILD: return "-ECHILD (no such child)";
	case -ESRCH: return "-ESRCH (no such process)";
	case -ENOTRECOVERABLE: return "-ENOTRECOVERABLE (a test failed)";
	case -ENOEXEC: return "-ENOEXEC (not executable)";
	case -ENETUNREACH: return "-ENETUNREACH (network unreachable)";
	case -EISDIR: return "-EISDIR (is a directory)";
	default: return err < 0 ? "negative errno (see strerror(-err))" : "not an error code";
	}
}
