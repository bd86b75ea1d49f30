/*
 * queue_demo — producers and consumers that never talk to each other, only
 * through a queue.  weft's twin of the articles' "Using a Queue" example
 * (asyncq.py):
 *
 *	async def produce(name, q):
 *	    for _ in range(random.randint(0, 10)):
 *	        await randsleep(caller=f"Producer {name}")
 *	        i = await makeitem(); t = time.perf_counter()
 *	        await q.put((i, t))
 *	async def consume(name, q):
 *	    while True:
 *	        await randsleep(caller=f"Consumer {name}")
 *	        i, t = await q.get()
 *	        print(f"Consumer {name} got element <{i}> in {now-t:0.5f} seconds.")
 *	        q.task_done()
 *	main: gather(*producers); await q.join(); cancel every consumer
 *
 * In weft:
 *   asyncio.Queue()   weft_queue_create(&q, NULL)
 *   await q.put(x)    weft_queue_put(q, x)      (x is any pointer: here a
 *   await q.get()     weft_queue_get(q, &x)      malloc'd item the consumer frees)
 *   q.task_done()     weft_queue_task_done(q)
 *   await q.join()    weft_queue_join(q)
 *   c.cancel()        weft_task_cancel(c); the consumer's next (or current)
 *                     sleep or get returns -ECANCELED and it returns.
 * Tasks run on every loop; the queue works across them.
 *
 * Usage: queue_demo [-p NPROD] [-c NCON] [--scale F] [--seed S]
 * Sleeps are 0..10 s times F (default F = 0.05, so a run takes about a
 * second; --scale 1 gives the article's timing).
 */
#include <weft.h>
#include <weft/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 0.05;
static unsigned seed0 = 0;

struct item {
	char hex[11];     /* makeitem(): 5 random bytes as hex */
	uint64_t put_ns;  /* when the producer put it */
};

struct actor {
	weft_queue *q;
	int name;
	unsigned seed;
};

/* randsleep(): 0..10 "seconds", scaled. */
static int randsleep(const char *who, struct actor *a)
{
	int i = rand_r(&a->seed) % 11;
	printf("%s %d sleeping for %d seconds.\n", who, a->name, i);
	return weft_sleep((uint64_t)(i * scale * 1e9));
}

static void *produce(void *arg)
{
	struct actor *a = arg;
	int n = rand_r(&a->seed) % 11;
	for (int k = 0; k < n; k++) {
		if (randsleep("Producer", a) < 0)
			return NULL;
		struct item *it = malloc(sizeof(*it));
		if (!it)
			return NULL;
		for (int b = 0; b < 5; b++)
			snprintf(it->hex + 2 * b, 3, "%02x", rand_r(&a->seed) & 0xff);
		char hex[sizeof(it->hex)];
		memcpy(hex, it->hex, sizeof(hex)); /* once put, it is the consumer's */
		it->put_ns = weft_now_ns();
		if (weft_queue_put(a->q, it) < 0) { /* not enqueued: still ours */
			free(it);
			return NULL;
		}
		printf("Producer %d added <%s> to queue.\n", a->name, hex);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct actor *a = arg;
	for (;;) {
		void *v;
		if (randsleep("Consumer", a) < 0 || weft_queue_get(a->q, &v) < 0)
			return NULL; /* cancelled: the item, if any, stays queued */
		struct item *it = v;
		printf("Consumer %d got element <%s> in %0.5f seconds.\n", a->name, it->hex,
		       (double)(weft_now_ns() - it->put_ns) / 1e9);
		free(it);
		weft_queue_task_done(a->q);
	}
}

struct opts {
	int nprod, ncon;
};

static void *amain(void *arg)
{
	struct opts *o = arg;
	weft_queue *q;
	if (weft_queue_create(&q, NULL) < 0)
		return (void *)1;
	struct actor *acts = calloc((size_t)(o->nprod + o->ncon), sizeof(*acts));
	weft_task **ts = calloc((size_t)(o->nprod + o->ncon), sizeof(*ts));
	if (!acts || !ts)
		return (void *)1;
	for (int i = 0; i < o->nprod + o->ncon; i++) {
		bool prod = i < o->nprod;
		acts[i] = (struct actor){ q, prod ? i : i - o->nprod, seed0 * 7919u + (unsigned)i };
		if (weft_task_spawn(&ts[i], prod ? produce : consume, &acts[i]) < 0)
			return (void *)1;
	}
	for (int i = 0; i < o->nprod; i++) /* gather(*producers) */
		weft_task_join(ts[i], NULL);
	weft_queue_join(q); /* every item got and marked done */
	for (int i = o->nprod; i < o->nprod + o->ncon; i++)
		weft_task_cancel(ts[i]);
	for (int i = 0; i < o->nprod + o->ncon; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	weft_queue_destroy(q);
	free(ts);
	free(acts);
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = { 5, 10 };
	seed0 = (unsigned)weft_now_ns();
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if ((!strcmp(argv[i], "-p") || !strcmp(argv[i], "--nprod")) && v)
			o.nprod = atoi(argv[++i]);
		else if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--ncon")) && v)
			o.ncon = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--scale") && v)
			scale = atof(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && v)
			seed0 = (unsigned)strtoul(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: %s [-p NPROD] [-c NCON] [--scale F] [--seed S]\n",
				argv[0]);
			return 2;
		}
	}
	if (o.nprod < 0 || o.ncon < 1 || o.nprod + o.ncon > 100000 || scale < 0) {
		fprintf(stderr, "queue_demo: need -p >= 0, -c >= 1, --scale >= 0\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t start = weft_now_ns();
	void *res = NULL;
	int r = weft_run(NULL, amain, &o, &res);
	if (r < 0 || res) {
		fprintf(stderr, "queue_demo: %s\n", r < 0 ? weft_strerror(r) : "setup failed");
		return 1;
	}
	printf("Program completed in %0.5f seconds.\n", (double)(weft_now_ns() - start) / 1e9);
	return 0;
}
