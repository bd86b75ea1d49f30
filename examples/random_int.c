/*
 * randint — tasks that retry until they get lucky, and gather's results.
 * weft's twin of the first article's last example:
 *
 *	async def generate_random_int(indx, threshold=5):
 *	    print(f"Initiated generate_random_int({indx}).")
 *	    i = random.randint(0, 10)
 *	    while i <= threshold:
 *	        print(f"generate_random_int({indx}) == {i} too low; retrying.")
 *	        await asyncio.sleep(indx + 1)
 *	        i = random.randint(0, 10)
 *	    print(f"---> Finished: generate_random_int({indx}) == {i}")
 *	    return i
 *
 *	async def main():
 *	    return await asyncio.gather(*(generate_random_int(i, 10 - i - 1)
 *	                                  for i in range(3)))
 *
 *	r1, r2, r3 = asyncio.run(main())
 *
 * None of the three waits for another to finish: each retries on its own
 * schedule (every 1, 2 and 3 s), so the total is the slowest one's time.
 *
 * Results travel back as task return values: a task returns a void *, which
 * weft_task_join() hands to the joiner (here an int packed into the
 * pointer), and main_task's own return value comes out of weft_run().
 *
 * Usage: randint [--scale F] [--seed S]
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTASKS 3

static double scale = 1.0;
static unsigned base_seed;

struct gen {
	int indx;
	int threshold;
	unsigned seed; /* this task's rand_r() state */
};

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "randint: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

static void *generate_random_int(void *arg)
{
	struct gen *g = arg;

	printf("Initiated generate_random_int(%d).\n", g->indx);
	int i = rand_r(&g->seed) % 11;
	while (i <= g->threshold) {
		printf("generate_random_int(%d) == %d too low; retrying.\n", g->indx, i);
		check(weft_sleep((uint64_t)((g->indx + 1) * scale * 1e9)), "weft_sleep");
		i = rand_r(&g->seed) % 11;
	}
	printf("---> Finished: generate_random_int(%d) == %d\n", g->indx, i);
	return (void *)(intptr_t)i;
}

/* res = await asyncio.gather(...); return res */
static void *main_task(void *arg)
{
	static int res[NTASKS];
	struct gen gens[NTASKS]; /* lives until every task is joined below */
	weft_task *t[NTASKS];

	(void)arg; /* unused */
	for (int i = 0; i < NTASKS; i++) {
		gens[i] = (struct gen){ .indx = i, .threshold = 10 - i - 1,
					.seed = base_seed + 7919u * (unsigned)i };
		check(weft_task_spawn(&t[i], generate_random_int, &gens[i]),
		      "weft_task_spawn");
	}
	for (int i = 0; i < NTASKS; i++) {
		void *r;

		check(weft_task_join(t[i], &r), "weft_task_join");
		weft_task_release(t[i]);
		res[i] = (int)(intptr_t)r;
	}
	return res;
}

int main(int argc, char **argv)
{
	base_seed = (unsigned)weft_now_ns();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			base_seed = (unsigned)strtoul(argv[++i], NULL, 0);
		} else {
			fprintf(stderr, "usage: %s [--scale F] [--seed S]\n", argv[0]);
			return 2;
		}
	}
	if (!(scale >= 0)) {
		fprintf(stderr, "randint: --scale must be >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t start = weft_now_ns();
	void *result;
	check(weft_run(NULL, main_task, NULL, &result), "weft_run");
	const int *r = result;
	printf("\nRandom INT 1: %d, Random INT 2: %d, Random INT 3: %d\n\n", r[0], r[1], r[2]);
	printf("Program Execution Time: %.2f seconds.\n", (weft_now_ns() - start) / 1e9);
	return 0;
}
