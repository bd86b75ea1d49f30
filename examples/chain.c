/*
 * chain — chaining coroutines: weft's twin of the article's
 *
 *	async def part1(n):
 *	    i = random.randint(0, 10)
 *	    print(f"part1({n}) sleeping for {i} seconds.")
 *	    await asyncio.sleep(i)
 *	    result = f"result{n}-1"
 *	    print(f"Returning part1({n}) == {result}.")
 *	    return result
 *
 *	async def part2(n, arg):  ... the same, returns f"result{n}-2 derived from {arg}"
 *
 *	async def chain(n):
 *	    start = time.perf_counter()
 *	    p1 = await part1(n)
 *	    p2 = await part2(n, p1)
 *	    end = time.perf_counter() - start
 *	    print(f"-->Chained result{n} => {p2} (took {end:0.2f} seconds).")
 *
 *	async def main(*args):
 *	    await asyncio.gather(*(chain(n) for n in args))
 *
 * weft tasks are stackful coroutines: part1() and part2() below are plain C
 * functions that happen to suspend (in weft_sleep).  "await part1(n)" is
 * simply a call, part1(n); any function, however deep in the call stack,
 * may suspend the task that runs it.  Only chain() is spawned as a task.
 *
 *	$ chain 9 6 3
 *	part1(9) sleeping for 4 seconds.
 *	part1(6) sleeping for 4 seconds.
 *	part1(3) sleeping for 0 seconds.
 *	Returning part1(3) == result3-1.
 *	part2(3, 'result3-1') sleeping for 4 seconds.
 *	Returning part1(9) == result9-1.
 *	part2(9, 'result9-1') sleeping for 7 seconds.
 *	...
 *	-->Chained result9 => result9-2 derived from result9-1 (took 11.00 seconds).
 *	Program finished in 11.00 seconds.
 *
 * The chains run concurrently, so the program takes as long as the longest
 * chain, not the sum of all of them.
 *
 * Usage: chain [--scale F] [--seed S] [N ...]    (default: chain 1 2 3)
 *   --scale F  multiply every sleep by F ("sleeping for 4 seconds" then
 *              sleeps 4 * F seconds, and the times printed are real ones)
 *   --seed S   seed for the random sleeps (default: from the clock)
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAINS 64

static double scale = 1.0;

struct chain {
	int n;
	unsigned seed;     /* rand_r() state: this chain's own random numbers */
	char p1[64];       /* part1's result */
	char p2[160];      /* part2's result */
};

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "chain: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* random.randint(0, 10).  rand_r() with per-chain state, not rand(): a task
 * can resume on another thread after any suspension, so per-thread or
 * shared hidden state is best avoided. */
static int randint_0_10(struct chain *c)
{
	return rand_r(&c->seed) % 11;
}

static void sleep_s(int seconds)
{
	check(weft_sleep((uint64_t)(seconds * scale * 1e9)), "weft_sleep");
}

static const char *part1(struct chain *c)
{
	int i = randint_0_10(c);

	printf("part1(%d) sleeping for %d seconds.\n", c->n, i);
	sleep_s(i);
	snprintf(c->p1, sizeof(c->p1), "result%d-1", c->n);
	printf("Returning part1(%d) == %s.\n", c->n, c->p1);
	return c->p1;
}

static const char *part2(struct chain *c, const char *arg)
{
	int i = randint_0_10(c);

	printf("part2(%d, '%s') sleeping for %d seconds.\n", c->n, arg, i);
	sleep_s(i);
	snprintf(c->p2, sizeof(c->p2), "result%d-2 derived from %s", c->n, arg);
	printf("Returning part2(%d, '%s') == %s.\n", c->n, arg, c->p2);
	return c->p2;
}

/* The task body: one chain. */
static void *chain(void *arg)
{
	struct chain *c = arg;
	uint64_t start = weft_now_ns();

	const char *p1 = part1(c);
	const char *p2 = part2(c, p1);

	double took = (weft_now_ns() - start) / 1e9;
	printf("-->Chained result%d => %s (took %.2f seconds).\n", c->n, p2, took);
	return NULL;
}

struct args {
	int count;
	struct chain chains[MAX_CHAINS];
};

/* async def main(*args): await asyncio.gather(*(chain(n) for n in args)) */
static void *main_task(void *arg)
{
	struct args *a = arg;
	weft_task *tasks[MAX_CHAINS];

	for (int i = 0; i < a->count; i++)
		check(weft_task_spawn(&tasks[i], chain, &a->chains[i]), "weft_task_spawn");
	for (int i = 0; i < a->count; i++) {
		check(weft_task_join(tasks[i], NULL), "weft_task_join");
		weft_task_release(tasks[i]);
	}
	return NULL;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--scale F] [--seed S] [N ...]\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	static struct args a; /* static: too big to want on main's stack */
	unsigned seed = (unsigned)weft_now_ns();

	for (int i = 1; i < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], &end);
			if (*end || !(scale >= 0))
				usage(argv[0]);
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			seed = (unsigned)strtoul(argv[++i], &end, 0);
			if (*end)
				usage(argv[0]);
		} else if (a.count < MAX_CHAINS) {
			a.chains[a.count].n = (int)strtol(argv[i], &end, 10);
			if (*end || end == argv[i])
				usage(argv[0]);
			a.count++;
		} else {
			usage(argv[0]);
		}
	}
	if (a.count == 0) { /* args = [1, 2, 3] */
		for (a.count = 0; a.count < 3; a.count++)
			a.chains[a.count].n = a.count + 1;
	}
	for (int i = 0; i < a.count; i++)
		a.chains[i].seed = seed + 7919u * (unsigned)i;

	setvbuf(stdout, NULL, _IOLBF, 0); /* each line as it happens */
	uint64_t start = weft_now_ns();
	check(weft_run(NULL, main_task, &a, NULL), "weft_run");
	printf("Program finished in %.2f seconds.\n", (weft_now_ns() - start) / 1e9);
	return 0;
}
