/*
 * semaphore — limit concurrency with a semaphore.  weft's twin of the
 * seed article's "Limit concurrency" section:
 *
 *	sem = asyncio.Semaphore(10)
 *	async with sem:
 *	    # work with shared resource
 *
 * 1000 tasks all want the guarded section; at most 10 are inside at once.
 * Each task spends a few (random) milliseconds inside, standing in for the
 * shared resource.  The program prints the first entries and exits, then
 * the highest number of tasks it ever saw inside together.
 *
 * In weft:
 *   asyncio.Semaphore(10)   weft_sem_init(&sem, 10)  (weft_sem_init_bounded
 *                           for BoundedSemaphore)
 *   async with sem:         weft_sem_acquire(&sem); ...; weft_sem_release(&sem)
 * Unlike the article's asyncio (not thread-safe), the tasks here run on
 * every loop (every core) at once and the semaphore still holds.
 *
 * Usage: semaphore [--scale F] [--seed S]  (F multiplies every sleep)
 */
#include <weft.h>
#include <weft/sync.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASKS 1000
#define LIMIT 10
#define TRACE 24 /* events printed */

static double scale = 1.0;
static unsigned seed = 1;
static weft_sem sem;
static _Atomic int inside, max_inside, events;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "semaphore: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* Print one of the first TRACE events (entries and exits). */
static void trace(int id, const char *what, int now_inside)
{
	if (atomic_fetch_add(&events, 1) < TRACE)
		printf("  task %4d %-6s inside: %2d  (loop %d)\n", id, what, now_inside,
		       weft_loop_index());
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	unsigned r = seed * 2654435761u ^ (unsigned)id * 40503u;
	uint64_t ms = 1 + (r >> 7) % 5; /* 1..5 ms inside */

	check(weft_sem_acquire(&sem), "acquire"); /* async with sem: */
	int in = atomic_fetch_add(&inside, 1) + 1;
	int m = atomic_load(&max_inside);
	while (in > m && !atomic_compare_exchange_weak(&max_inside, &m, in))
		;
	trace(id, "enters", in);
	check(weft_sleep((uint64_t)((double)ms * scale * 1e6)), "sleep");
	trace(id, "leaves", atomic_fetch_sub(&inside, 1) - 1);
	check(weft_sem_release(&sem), "release");
	return (void *)(intptr_t)ms;
}

static void *main_task(void *arg)
{
	(void)arg;
	static weft_task *t[TASKS];
	uint64_t t0 = weft_now_ns(), total_ms = 0;

	printf("%d tasks, semaphore(%d), %u loops; first %d events:\n", TASKS, LIMIT,
	       weft_loop_count(), TRACE);
	for (int i = 0; i < TASKS; i++)
		check(weft_task_spawn(&t[i], worker, (void *)(intptr_t)i), "spawn");
	for (int i = 0; i < TASKS; i++) {
		void *ms = NULL;
		check(weft_task_join(t[i], &ms), "join");
		total_ms += (uint64_t)(intptr_t)ms;
		weft_task_release(t[i]);
	}
	double took = (double)(weft_now_ns() - t0) / 1e6;
	printf("  ...\n");
	printf("max inside at once: %d (limit %d)\n", atomic_load(&max_inside), LIMIT);
	printf("took %.0f ms; one at a time would take %.0f ms, %d at a time about %.0f ms\n",
	       took, (double)total_ms * scale, LIMIT, (double)total_ms * scale / LIMIT);
	return NULL;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = atof(argv[++i]);
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			seed = (unsigned)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: semaphore [--scale F] [--seed S]\n");
			return 2;
		}
	}
	if (!(scale >= 0))
		scale = 1.0;
	check(weft_sem_init(&sem, LIMIT), "sem_init");
	check(weft_run(NULL, main_task, NULL, NULL), "run");
	int bad = atomic_load(&max_inside) > LIMIT;
	check(weft_sem_destroy(&sem), "sem_destroy");
	return bad;
}
