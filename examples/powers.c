/*
 * powers — an async generator yielding powers of two, consumed with and
 * without a filter, and closed early.  weft's twin of the second article's
 * "async for and list comprehensions":
 *
 *	async def mygen(u: int = 10):
 *	    """Yield powers of 2."""
 *	    i = 0
 *	    while i < u:
 *	        yield 2 ** i
 *	        i += 1
 *	        await asyncio.sleep(0.1)
 *
 *	g = [i async for i in mygen()]
 *	f = [j async for j in mygen() if not (j // 3 % 5)]
 *	# g == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
 *	# f == [1, 2, 16, 32, 256, 512]
 *
 * Part 3 leaves an `async for` early (break), which closes the generator
 * (aclose()): the body's pending suspension point returns -ECANCELED, it
 * frees what it holds and returns, and weft_gen_close() waits for that.
 *
 * In weft:
 *   async def mygen(): yield v   void *mygen(weft_gen *g, void *arg) calling
 *                                weft_gen_yield(g, v) (0, or -ECANCELED once
 *                                the consumer has closed it)
 *   mygen()                      weft_gen_create(&g, mygen, arg): lazy, the
 *                                body starts at the first weft_gen_next
 *   async for v in gen           while (weft_gen_next(g, &v) == 0)
 *                                (-ENOENT when the body has returned)
 *   break / aclose()             weft_gen_close(g): also frees g
 *
 * As the article says, this is not concurrency: the consumer waits for
 * every value.  It shows that the body may suspend (here, sleep) between
 * values while other tasks run.
 *
 * Usage: powers [--scale F]   (F multiplies every sleep; default 1: 2.5 s)
 */
#include <weft.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXV 16

static double scale = 1.0;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "powers: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* ------------------------------------------------------------------------ */
/* The generator                                                             */
/* ------------------------------------------------------------------------ */

struct mygen_args {
	int u;        /* how many powers */
	bool verbose; /* say when it starts and how it ends */
};

/* mygen(u): yield 2 ** i for i in 0..u-1, sleeping 0.1 s after each.
 * Values travel as void *, so each is packed into a uintptr_t. */
static void *mygen(weft_gen *g, void *arg)
{
	const struct mygen_args *a = arg;
	/* Something the body owns while it runs, to show that closing the
	 * generator early still releases it (Python: a `finally:` block). */
	char *resource = malloc(64);
	int rc = 0;

	if (!resource)
		return NULL; /* the consumer's next weft_gen_next sees -ENOENT */
	if (a->verbose)
		printf("  mygen: started (lazily, at the first value asked for)\n");
	for (int i = 0; i < a->u && rc == 0; i++) {
		rc = weft_gen_yield(g, (void *)((uintptr_t)1 << i)); /* yield 2 ** i */
		if (rc == 0)
			rc = weft_sleep((uint64_t)(0.1e9 * scale)); /* await asyncio.sleep(0.1) */
	}
	if (a->verbose)
		printf("  mygen: %s; freeing its resource\n",
		       rc == -ECANCELED ? "closed early (-ECANCELED)" : "ran to the end");
	free(resource);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* The consumers                                                             */
/* ------------------------------------------------------------------------ */

static bool keep_all(uintptr_t j)
{
	(void)j; /* unused */
	return true;
}

/* the article's filter: if not (j // 3 % 5) */
static bool article_filter(uintptr_t j)
{
	return (j / 3) % 5 == 0;
}

/* [v async for v in mygen(u) if keep(v)]: fills out[], returns its length */
static int comprehension(int u, bool (*keep)(uintptr_t), uintptr_t out[MAXV])
{
	struct mygen_args a = { .u = u };
	weft_gen *g;
	void *v;
	int n = 0, rc;

	check(weft_gen_create(&g, mygen, &a), "weft_gen_create");
	while ((rc = weft_gen_next(g, &v)) == 0) {
		if (keep((uintptr_t)v) && n < MAXV)
			out[n++] = (uintptr_t)v;
	}
	weft_gen_close(g); /* the body has returned: this just frees g */
	if (rc != -ENOENT) /* -ECANCELED: we were cancelled */
		check(rc, "weft_gen_next");
	return n;
}

static void print_list(const char *name, const uintptr_t *v, int n)
{
	printf("%s = [", name);
	for (int i = 0; i < n; i++)
		printf("%s%lu", i ? ", " : "", (unsigned long)v[i]);
	printf("]\n");
}

static void *main_task(void *arg)
{
	uintptr_t g[MAXV], f[MAXV];
	int n;

	(void)arg; /* unused */
	printf("1. g = [i async for i in mygen()]\n");
	n = comprehension(10, keep_all, g);
	print_list("g", g, n);

	printf("\n2. f = [j async for j in mygen() if not (j // 3 %% 5)]\n");
	n = comprehension(10, article_filter, f);
	print_list("f", f, n);

	/* 3. async for j in mygen(): if j > 20: break */
	printf("\n3. async for j in mygen(): print(j); if j > 20: break\n");
	struct mygen_args a = { .u = 10, .verbose = true };
	weft_gen *gen;
	void *v;
	int rc;

	check(weft_gen_create(&gen, mygen, &a), "weft_gen_create");
	printf("  created; nothing has run yet\n");
	while ((rc = weft_gen_next(gen, &v)) == 0) {
		printf("  j = %lu\n", (unsigned long)(uintptr_t)v);
		if ((uintptr_t)v > 20)
			break;
	}
	if (rc < 0 && rc != -ENOENT)
		check(rc, "weft_gen_next");
	printf("  break: closing the generator\n");
	weft_gen_close(gen); /* returns once mygen has freed what it held */
	printf("  closed\n");
	return NULL;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
		} else {
			fprintf(stderr, "usage: %s [--scale F]\n", argv[0]);
			return 2;
		}
	}
	if (!(scale >= 0)) {
		fprintf(stderr, "powers: --scale must be >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t start = weft_now_ns();
	check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	printf("\nTotal: %.2f seconds.\n", (weft_now_ns() - start) / 1e9);
	return 0;
}
