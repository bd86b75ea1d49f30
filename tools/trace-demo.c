/*
 * trace-demo: a small two-loop program under load, traced for the
 * screenshot in docs/observability.md (tools/trace-screenshot.sh builds and
 * runs it; not part of the build or of make test).
 *
 *     trace-demo OUT.json
 *
 * Producers pinned to loop 0 "parse" (spin ~50 us of CPU) and hand work
 * items to consumers pinned to loop 1 through a bounded queue: every hand
 * off wakes a task on the other loop (a flow arrow), and a full queue
 * parks the producer.  Consumers spin ~80 us per item and write a byte to
 * a pipe that a logger task, stealable, reads (I/O submits and
 * completions); a ticker sleeps 1 ms at a time (timers).  After a 50 ms
 * warm-up the trace records 8 ms, then everything stops and the trace is
 * written to OUT.json.
 */
#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define PRODUCERS 3
#define CONSUMERS 3

static weft_queue *q;
static int pipefd[2];
static volatile int stopping;

static void spin_us(unsigned us)
{
	uint64_t end = weft_now_ns() + us * 1000ull;
	while (weft_now_ns() < end)
		;
}

static void *producer(void *arg)
{
	uintptr_t n = 0;
	while (!stopping) {
		spin_us(40 + 10 * (unsigned)(uintptr_t)arg);
		if (weft_queue_put(q, (void *)++n) < 0)
			break;
		weft_yield(); /* let the other producers have the loop */
	}
	return NULL;
}

static void *consumer(void *arg)
{
	void *item;
	while (weft_queue_get(q, &item) == 0) {
		spin_us(70 + 10 * (unsigned)(uintptr_t)arg);
		char c = 'x';
		if (weft_write(pipefd[1], &c, 1, -1) != 1)
			break;
	}
	return NULL;
}

static void *logger(void *arg)
{
	(void)arg;
	char buf[64];
	while (weft_read(pipefd[0], buf, sizeof(buf), -1) > 0)
		spin_us(5);
	return NULL;
}

static void *ticker(void *arg)
{
	(void)arg;
	while (!stopping && weft_sleep_ms(1) == 0)
		spin_us(20);
	return NULL;
}

static weft_task *spawn(const char *name, int pin, weft_fn fn, void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.name = name;
	tc.pin = pin;
	weft_task *t = NULL;
	if (weft_task_spawn_ex(&t, &tc, fn, arg) < 0) {
		fprintf(stderr, "trace-demo: cannot spawn %s\n", name);
		exit(1);
	}
	return t;
}

static void *demo(void *arg)
{
	(void)arg;
	weft_queue_config qc;
	weft_queue_config_init(&qc);
	qc.capacity = 4;
	if (weft_queue_create(&q, &qc) < 0 || pipe(pipefd) < 0)
		return (void *)1;
	static const char *pn[] = { "producer 0", "producer 1", "producer 2" };
	static const char *cn[] = { "consumer 0", "consumer 1", "consumer 2" };
	weft_task *ts[PRODUCERS + CONSUMERS + 2];
	unsigned n = 0;
	for (uintptr_t i = 0; i < PRODUCERS; i++)
		ts[n++] = spawn(pn[i], 0, producer, (void *)i);
	for (uintptr_t i = 0; i < CONSUMERS; i++)
		ts[n++] = spawn(cn[i], 1, consumer, (void *)i);
	weft_task *log = spawn("logger", WEFT_PIN_NONE, logger, NULL);
	ts[n++] = spawn("ticker", WEFT_PIN_NONE, ticker, NULL);

	weft_runtime *rt = weft_runtime_current();
	weft_sleep_ms(50);
	int r = weft_trace_start(rt, 0);
	weft_sleep_ms(8);
	if (r == 0)
		r = weft_trace_stop(rt);

	stopping = 1;
	weft_queue_shutdown(q, true);
	for (unsigned i = 0; i < n; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	close(pipefd[1]); /* the logger reads its end of file */
	weft_task_join(log, NULL);
	weft_task_release(log);
	close(pipefd[0]);
	weft_queue_destroy(q);
	if (r < 0) {
		fprintf(stderr, "trace-demo: trace: %s\n", weft_strerror(r));
		return (void *)1;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: trace-demo OUT.json\n");
		return 2;
	}
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	weft_runtime *rt;
	if (weft_runtime_start(&rt, &cfg) < 0)
		return 1;
	void *res = NULL;
	int r = weft_runtime_call(rt, demo, NULL, &res);
	weft_runtime_shutdown(rt);
	/* written from this thread, not a loop: writing blocks */
	int64_t w = r == 0 && !res ? weft_trace_write_path(rt, argv[1]) : -1;
	weft_runtime_destroy(rt);
	if (w < 0) {
		fprintf(stderr, "trace-demo: failed (%d, %lld)\n", r, (long long)w);
		return 1;
	}
	return 0;
}
