/*
 * random_int — three tasks retrying random integers against different
 * thresholds, gathered.  weft's twin of the first article's last example:
 *
 *	async def generate_random_int(indx, threshold=5):
 *	    print(colors[indx + 1] + f"Initiated generate_random_int({indx}).")
 *	    i = random.randint(0, 10)
 *	    while i <= threshold:
 *	        print(colors[indx + 1] + f"generate_random_int({indx}) == {i} too low; retrying.")
 *	        await asyncio.sleep(indx + 1)
 *	        i = random.randint(0, 10)
 *	    print(colors[indx + 1] + f"---> Finished: generate_random_int({indx}) == {i}" + colors[0])
 *	    return i
 *
 *	async def main():
 *	    res = await asyncio.gather(*(generate_random_int(i, 10 - i - 1)
 *	                                 for i in range(3)))
 *	    return res
 *
 *	r1, r2, r3 = asyncio.run(main())
 *
 * Task i needs a number above 9 - i (10, then 9 or 10, then 8 to 10) and
 * retries every i + 1 seconds.  None waits for another: each retries on its
 * own schedule, so the total is the unluckiest one's time, not the sum.
 *
 * In weft:
 *   gather(...)        weft_gather(t, 3, res, NULL): results in input
 *                      order, whichever task finished first
 *   return i           a task returns a void * (here the int packed in it)
 *   asyncio.run(main)  weft_run(): main_task's return value comes back
 *   colors             the same ANSI colours, when stdout is a terminal
 *
 * Usage: random_int [--scale F] [--seed S]   (F multiplies every sleep)
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTASKS 3

static double scale = 1.0;
static unsigned base_seed;

/* end of colour, red, green, cyan, magenta, blue (blank off a terminal) */
static const char *colors[6] = {
	"\033[0m", "\033[31m", "\033[32m", "\033[36m", "\033[35m", "\033[34m",
};

struct gen {
	int indx;
	int threshold;
	unsigned seed; /* this task's rand_r() state: random.randint */
};

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "random_int: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* random.randint(0, 10) */
static int randint_0_10(unsigned *seed)
{
	return rand_r(seed) % 11;
}

static void *generate_random_int(void *arg)
{
	struct gen *g = arg;
	const char *c = colors[g->indx + 1];

	printf("%sInitiated generate_random_int(%d).%s\n", c, g->indx, colors[0]);
	int i = randint_0_10(&g->seed);
	while (i <= g->threshold) {
		printf("%sgenerate_random_int(%d) == %d too low; retrying.%s\n", c, g->indx, i,
		       colors[0]);
		if (weft_sleep((uint64_t)((g->indx + 1) * scale * 1e9)) < 0)
			return NULL; /* cancelled: its join reports -ECANCELED */
		i = randint_0_10(&g->seed);
	}
	printf("%s---> Finished: generate_random_int(%d) == %d%s\n", c, g->indx, i, colors[0]);
	return (void *)(intptr_t)i;
}

/* res = await asyncio.gather(...); return res */
static void *main_task(void *arg)
{
	static int res[NTASKS];
	struct gen gens[NTASKS]; /* lives until every task is gathered */
	weft_task *t[NTASKS];
	void *r[NTASKS];

	(void)arg; /* unused */
	for (int i = 0; i < NTASKS; i++) {
		gens[i] = (struct gen){ .indx = i, .threshold = 10 - i - 1,
					.seed = base_seed + 7919u * (unsigned)i };
		check(weft_task_spawn(&t[i], generate_random_int, &gens[i]),
		      "weft_task_spawn");
	}
	check(weft_gather(t, NTASKS, r, NULL), "weft_gather");
	for (int i = 0; i < NTASKS; i++) {
		res[i] = (int)(intptr_t)r[i];
		weft_task_release(t[i]);
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
		fprintf(stderr, "random_int: --scale must be >= 0\n");
		return 2;
	}
	if (!isatty(STDOUT_FILENO))
		for (int i = 0; i < 6; i++)
			colors[i] = "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t start = weft_now_ns();
	void *result;
	check(weft_run(NULL, main_task, NULL, &result), "weft_run");
	const int *r = result;
	printf("%s\nRandom INT 1: %d, Random INT 2: %d, Random INT 3: %d\n%s\n", colors[4], r[0],
	       r[1], r[2], colors[0]);
	printf("%sProgram Execution Time: %.2f seconds.%s\n", colors[5],
	       (weft_now_ns() - start) / 1e9, colors[0]);
	return 0;
}
