/*
 * Queue throughput (issue 3, section 10):
 *   queue_1p1c_same_loop    one producer -> one consumer on one loop  (<= 30 ns/item)
 *   queue_1p1c_two_loops    producer on loop 0, consumer on loop 1    (<= 60 ns/item)
 *   queue_1p1c_*_spsc       the same two with WEFT_QUEUE_SPSC (lock-free ring)
 *   queue_4p4c_two_loops    4 producers + 4 consumers over 2 loops, against a
 *                           pthread mutex+condvar queue with 4+4 threads
 *                           measured in the same run                 (>= 3x)
 * Every queue is bounded (capacity QCAP), so both put and get really wait
 * when they must.  Cost per item = wall time / items.
 */
#include "bench/bench.h"
#include "weft/queue.h"

#include <pthread.h>

#define QCAP 1024

struct run {
	weft_queue *q;
	uint64_t per_producer; /* items each producer puts */
	uint64_t per_consumer; /* items each consumer gets */
	int producers, consumers;
	int pin_p, pin_c; /* loop for producer i: pin_p < 0 -> i % 2 */
};

static void *producer(void *arg)
{
	struct run *r = arg;
	for (uint64_t i = 1; i <= r->per_producer; i++)
		BENCH_CHECK(weft_queue_put(r->q, (void *)(uintptr_t)i));
	return NULL;
}

static void *consumer(void *arg)
{
	struct run *r = arg;
	void *v;
	for (uint64_t i = 0; i < r->per_consumer; i++)
		BENCH_CHECK(weft_queue_get(r->q, &v));
	return NULL;
}

static weft_task *spawn_pinned(int loop, weft_fn fn, void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = loop;
	weft_task *t;
	BENCH_CHECK(weft_task_spawn_ex(&t, &tc, fn, arg));
	return t;
}

/* Main task: spawn everyone, time until all finished; returns ns. */
static void *run_main(void *arg)
{
	struct run *r = arg;
	weft_task *t[16];
	int n = 0;
	uint64_t t0 = now_ns();
	for (int i = 0; i < r->consumers; i++)
		t[n++] = spawn_pinned(r->pin_c < 0 ? i % 2 : r->pin_c, consumer, r);
	for (int i = 0; i < r->producers; i++)
		t[n++] = spawn_pinned(r->pin_p < 0 ? (i + 1) % 2 : r->pin_p, producer, r);
	for (int i = 0; i < n; i++) {
		BENCH_CHECK(weft_task_join(t[i], NULL));
		weft_task_release(t[i]);
	}
	return (void *)(uintptr_t)(now_ns() - t0);
}

static double weft_ns_per_item(unsigned loops, int np, int nc, int pin_p, int pin_c,
			       uint64_t items, unsigned flags)
{
	weft_queue_config qc;
	weft_queue_config_init(&qc);
	qc.capacity = QCAP;
	qc.flags = flags;
	struct run r = { .per_producer = items / (uint64_t)np,
			 .per_consumer = items / (uint64_t)nc,
			 .producers = np, .consumers = nc, .pin_p = pin_p, .pin_c = pin_c };
	BENCH_CHECK(weft_queue_create(&r.q, &qc));
	weft_runtime_config cfg;
	bench_config(&cfg, loops);
	void *res = NULL;
	BENCH_CHECK(weft_run(&cfg, run_main, &r, &res));
	BENCH_CHECK(weft_queue_destroy(r.q));
	return (double)(uintptr_t)res / (double)items;
}

/* ---- baseline: the textbook bounded queue on a mutex and two condvars ---- */

struct pq {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	void *buf[QCAP];
	size_t head, len;
	uint64_t per_thread;
};

static void *pq_producer(void *arg)
{
	struct pq *q = arg;
	for (uint64_t i = 1; i <= q->per_thread; i++) {
		pthread_mutex_lock(&q->mu);
		while (q->len == QCAP)
			pthread_cond_wait(&q->not_full, &q->mu);
		q->buf[(q->head + q->len++) % QCAP] = (void *)(uintptr_t)i;
		pthread_cond_signal(&q->not_empty);
		pthread_mutex_unlock(&q->mu);
	}
	return NULL;
}

static void *pq_consumer(void *arg)
{
	struct pq *q = arg;
	for (uint64_t i = 0; i < q->per_thread; i++) {
		pthread_mutex_lock(&q->mu);
		while (q->len == 0)
			pthread_cond_wait(&q->not_empty, &q->mu);
		q->head = (q->head + 1) % QCAP;
		q->len--;
		pthread_cond_signal(&q->not_full);
		pthread_mutex_unlock(&q->mu);
	}
	return NULL;
}

static double pthread_ns_per_item(int np, int nc, uint64_t items)
{
	static struct pq q;
	memset(&q, 0, sizeof q);
	pthread_mutex_init(&q.mu, NULL);
	pthread_cond_init(&q.not_empty, NULL);
	pthread_cond_init(&q.not_full, NULL);
	q.per_thread = items / (uint64_t)np; /* np == nc */
	pthread_t th[16];
	uint64_t t0 = now_ns();
	for (int i = 0; i < nc; i++)
		pthread_create(&th[i], NULL, pq_consumer, &q);
	for (int i = 0; i < np; i++)
		pthread_create(&th[nc + i], NULL, pq_producer, &q);
	for (int i = 0; i < np + nc; i++)
		pthread_join(th[i], NULL);
	uint64_t dt = now_ns() - t0;
	pthread_mutex_destroy(&q.mu);
	pthread_cond_destroy(&q.not_empty);
	pthread_cond_destroy(&q.not_full);
	return (double)dt / (double)items;
}

/* ---- measurements -------------------------------------------------------- */

static uint64_t items_1p1c, items_4p4c;

static double m_same(void *a)
{
	(void)a;
	return weft_ns_per_item(1, 1, 1, 0, 0, items_1p1c, 0);
}

static double m_two(void *a)
{
	(void)a;
	return weft_ns_per_item(2, 1, 1, 0, 1, items_1p1c, 0);
}

static double m_same_spsc(void *a)
{
	(void)a;
	return weft_ns_per_item(1, 1, 1, 0, 0, items_1p1c, WEFT_QUEUE_SPSC);
}

static double m_two_spsc(void *a)
{
	(void)a;
	return weft_ns_per_item(2, 1, 1, 0, 1, items_1p1c, WEFT_QUEUE_SPSC);
}

static double m_4p4c(void *a)
{
	(void)a;
	return weft_ns_per_item(2, 4, 4, -1, -1, items_4p4c, 0);
}

static double m_pthread(void *a)
{
	(void)a;
	return pthread_ns_per_item(4, 4, items_4p4c);
}

int main(void)
{
	int reps = bench_reps();
	double v[BENCH_MAX_REPS];
	items_1p1c = bench_scaled(2000000);
	items_4p4c = bench_scaled(800000) / 4 * 4;

	double same = bench_median_of(reps, m_same, NULL, v);
	bench_note_reps("queue_1p1c_same_loop", v, reps, "ns/item");
	bench_report_max("queue_1p1c_same_loop", same, "ns", 30);

	double two = bench_median_of(reps, m_two, NULL, v);
	bench_note_reps("queue_1p1c_two_loops", v, reps, "ns/item");
	bench_report_max("queue_1p1c_two_loops", two, "ns", 60);

	/* The same with the lock-free single-producer single-consumer ring. */
	double ss = bench_median_of(reps, m_same_spsc, NULL, v);
	bench_note_reps("queue_1p1c_same_loop_spsc", v, reps, "ns/item");
	bench_report_max("queue_1p1c_same_loop_spsc", ss, "ns", 30);

	double ts = bench_median_of(reps, m_two_spsc, NULL, v);
	bench_note_reps("queue_1p1c_two_loops_spsc", v, reps, "ns/item");
	bench_report_max("queue_1p1c_two_loops_spsc", ts, "ns", 60);

	/* Alternate weft and baseline repeats so both see the same noise. */
	double w[BENCH_MAX_REPS], b[BENCH_MAX_REPS];
	for (int i = 0; i < reps; i++) {
		w[i] = m_4p4c(NULL);
		b[i] = m_pthread(NULL);
	}
	bench_note_reps("queue_4p4c_two_loops", w, reps, "ns/item");
	bench_note_reps("queue_4p4c_pthread_condvar", b, reps, "ns/item");
	bench_report_speedup("queue_4p4c_two_loops", bench_median(w, reps), "ns",
			     bench_median(b, reps), 3);
	return 0;
}
