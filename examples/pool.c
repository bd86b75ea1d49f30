/*
 * pool — map a function over a thousand inputs on every core, a bounded
 * number at a time on each loop, results in input order.  weft's take on
 * the second article's aside: "it is also possible to run event loops
 * across multiple cores" (John Reese's talk, and his aiomultiprocess):
 *
 *	async def get(x):                 # some I/O, then some work
 *	    ...
 *	async with aiomultiprocess.Pool(processes=P, childconcurrency=K) as pool:
 *	    results = await pool.map(get, inputs)
 *
 * aiomultiprocess needs a process per core, each with its own event loop,
 * and pickles every input and result between them.  weft already has a
 * loop per core in one process, so the pool is just tasks:
 *
 *   P processes         weft_loop_count() loops (one per CPU by default)
 *   childconcurrency=K  K worker tasks pinned to each loop
 *                       (weft_task_config.pin = loop index): at most K
 *                       inputs in flight per loop
 *   the work queue      a shared atomic counter: each worker takes the next
 *                       input index until none is left
 *   results in order    worker writes results[i] for input i
 *   the pool's context  a task group: leaving it waits for every worker,
 *                       and the first worker that fails cancels the rest
 *
 * The mapped function, get(x), stands in for a request: it waits 1-5 ms
 * ("I/O"), then counts the Collatz steps of x (a little CPU).  Part 2 makes
 * one input fail, to show the group cancelling the other workers.
 *
 * Usage: pool [--inputs N] [--per-loop K] [--scale F] [--fail-at I]
 *   (F multiplies every wait; I = -1 skips part 2)
 */
#include <weft.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LOOPS 64

static int ninputs = 1000;
static int per_loop = 4;
static double scale = 1.0;
static int fail_at = 500;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "pool: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* ------------------------------------------------------------------------ */
/* The mapped function                                                       */
/* ------------------------------------------------------------------------ */

static int collatz_steps(long x)
{
	int steps = 0;

	for (; x > 1; steps++)
		x = x % 2 ? 3 * x + 1 : x / 2;
	return steps;
}

/* get(x): wait (x % 5 + 1) ms, then compute.  Returns the result (>= 0),
 * -ECANCELED if the wait was cancelled, or -EIO for the input `fail`. */
static int get(int x, int fail)
{
	int rc = weft_sleep((uint64_t)((x % 5 + 1) * 1e6 * scale));
	if (rc < 0)
		return rc;
	if (x == fail)
		return -EIO; /* raise OSError(EIO) */
	return collatz_steps(x);
}

/* ------------------------------------------------------------------------ */
/* The pool                                                                  */
/* ------------------------------------------------------------------------ */

struct map {
	const int *in;
	int *out;
	int n;
	int fail;          /* the input that fails, or -1 */
	atomic_int next;   /* the next input index to take */
	atomic_int cancelled; /* workers that stopped because of the group */
	/* Per loop.  Each is touched only by the workers pinned to that
	 * loop, which never run at the same time (one loop is one thread):
	 * between suspension points, as in asyncio, nothing else runs there.
	 * main_task reads them after weft_group_wait. */
	int done[MAX_LOOPS];
	int inflight[MAX_LOOPS];
	int peak[MAX_LOOPS];
};

struct worker {
	struct map *m;
	int loop; /* the loop it is pinned to */
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct map *m = w->m;
	int l = weft_loop_index(); /* == w->loop: pinned, it never moves */

	if (l != w->loop) {
		fprintf(stderr, "pool: worker pinned to loop %d runs on %d\n", w->loop, l);
		abort();
	}
	for (;;) {
		int i = atomic_fetch_add_explicit(&m->next, 1, memory_order_relaxed);
		if (i >= m->n)
			return NULL; /* no input left */

		if (++m->inflight[l] > m->peak[l])
			m->peak[l] = m->inflight[l];
		int r = get(m->in[i], m->fail);
		m->inflight[l]--;

		if (r == -ECANCELED) { /* a sibling failed: the group cancels us */
			atomic_fetch_add_explicit(&m->cancelled, 1, memory_order_relaxed);
			return NULL;
		}
		if (r < 0) {
			printf("  loop %d: get(%d) failed with %s; the group cancels the rest\n", l,
			       m->in[i], weft_strerror(r));
			check(weft_task_fail(r), "weft_task_fail");
			return NULL;
		}
		m->out[i] = r; /* in input order, whoever computed it */
		m->done[l]++;
	}
}

/* results = await pool.map(get, in), K workers per loop.  Returns 0 or the
 * first worker's error. */
static int pool_map(struct map *m, unsigned loops)
{
	struct worker *w = calloc(loops * (unsigned)per_loop, sizeof(*w));
	weft_group *g;
	int rc = 0;

	if (!w)
		check(-ENOMEM, "calloc");
	check(weft_group_create(&g), "weft_group_create");
	for (unsigned l = 0; l < loops && rc == 0; l++) {
		for (int k = 0; k < per_loop && rc == 0; k++) {
			weft_task_config cfg;
			char name[32];

			weft_task_config_init(&cfg);
			snprintf(name, sizeof(name), "worker-%u.%d", l, k);
			cfg.name = name; /* copied by the spawn */
			cfg.pin = (int)l;
			w[l * per_loop + k] = (struct worker){ .m = m, .loop = (int)l };
			rc = weft_group_spawn(g, NULL, &cfg, worker, &w[l * per_loop + k]);
		}
	}
	if (rc < 0) { /* could not start them all: stop those that did */
		fprintf(stderr, "pool: weft_group_spawn: %s\n", weft_strerror(rc));
		check(weft_group_cancel(g), "weft_group_cancel");
	}
	int wrc = weft_group_wait(g); /* leave `async with Pool()` */
	if (rc == 0)
		rc = wrc;
	if (rc < 0 && wrc < 0) {
		int errs[4];
		int nerr = weft_group_errors(g, errs, 4);
		check(nerr, "weft_group_errors");
		printf("  group: %d worker(s) failed, first %s\n", nerr, weft_strerror(errs[0]));
	}
	weft_group_destroy(g); /* every worker has finished: w can go */
	free(w);
	return rc;
}

/* Run one map and print what happened. */
static int run(const char *title, const int *in, int *out, int fail, unsigned loops,
	       double waits)
{
	struct map *m = calloc(1, sizeof(*m));
	if (!m)
		check(-ENOMEM, "calloc");
	m->in = in;
	m->out = out;
	m->n = ninputs;
	m->fail = fail;
	for (int i = 0; i < ninputs; i++)
		out[i] = -1;

	printf("%s\n", title);
	uint64_t t0 = weft_now_ns();
	int rc = pool_map(m, loops);
	double secs = (weft_now_ns() - t0) / 1e9;

	int total = 0;
	for (unsigned l = 0; l < loops; l++) {
		printf("  loop %u: %4d inputs, at most %d in flight\n", l, m->done[l], m->peak[l]);
		total += m->done[l];
	}
	printf("  %d of %d inputs mapped in %.3f s", total, ninputs, secs);
	if (rc < 0)
		printf("; %d workers cancelled; pool.map: %s\n", atomic_load(&m->cancelled),
		       weft_strerror(rc));
	else if (secs > 0 && waits > 0)
		printf(", %.1fx faster than one by one\n", waits / secs);
	else
		printf("\n");
	free(m);
	return rc;
}

static void *main_task(void *arg)
{
	unsigned loops = weft_loop_count();
	int *in = malloc(sizeof(int) * (size_t)ninputs);
	int *out = malloc(sizeof(int) * (size_t)ninputs);

	(void)arg; /* unused */
	if (!in || !out)
		check(-ENOMEM, "malloc");
	if (loops > MAX_LOOPS)
		loops = MAX_LOOPS;

	double waits = 0; /* what one event loop running get() one by one would wait */
	for (int i = 0; i < ninputs; i++) {
		in[i] = i + 1;
		waits += (in[i] % 5 + 1) * 1e-3 * scale;
	}

	char title[128];
	snprintf(title, sizeof(title),
		 "1. map(get, 1..%d): %u loops x %d workers (the waits add up to %.2f s)",
		 ninputs, loops, per_loop, waits);
	check(run(title, in, out, -1, loops, waits), "pool.map");

	/* results in input order: check every one, show a few */
	for (int i = 0; i < ninputs; i++) {
		if (out[i] != collatz_steps(in[i])) {
			fprintf(stderr, "pool: result %d is %d, not %d\n", i, out[i],
				collatz_steps(in[i]));
			exit(1);
		}
	}
	printf("  results, in input order: [");
	for (int i = 0; i < ninputs && i < 8; i++)
		printf("%s%d", i ? ", " : "", out[i]);
	if (ninputs > 8)
		printf(", ..., %d", out[ninputs - 1]);
	printf("] (all %d checked)\n", ninputs);

	if (fail_at >= 0) {
		snprintf(title, sizeof(title), "\n2. the same map, where get(%d) fails", fail_at);
		int rc = run(title, in, out, fail_at, loops, waits);
		if (rc != -EIO && fail_at >= 1 && fail_at <= ninputs)
			check(rc < 0 ? rc : -EPROTO, "pool.map (expected -EIO)");
	}
	free(in);
	free(out);
	return NULL;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--inputs") == 0 && i + 1 < argc) {
			ninputs = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--per-loop") == 0 && i + 1 < argc) {
			per_loop = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
		} else if (strcmp(argv[i], "--fail-at") == 0 && i + 1 < argc) {
			fail_at = atoi(argv[++i]);
		} else {
			fprintf(stderr,
				"usage: %s [--inputs N] [--per-loop K] [--scale F] [--fail-at I]\n",
				argv[0]);
			return 2;
		}
	}
	if (ninputs < 1 || per_loop < 1 || per_loop > 16 || !(scale >= 0)) {
		fprintf(stderr, "pool: need N >= 1, 1 <= K <= 16, F >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	return 0;
}
