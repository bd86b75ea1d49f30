/*
 * echo_cpu: the CPU an echo server on weft spends per round trip.
 *
 * One loop runs a task echoing 64-byte messages on a TCP loopback
 * connection; a plain thread is the client (blocking send, then receive
 * the echo).  CPU per round trip = (the process's CPU - the client
 * thread's own) / rounds: the loop's share, wherever the kernel charges
 * the loopback's work.  bench/observe.c runs it with and without the
 * observability build (docs/observability.md, "Overhead"); alone it has
 * no target.
 */
#include "bench.h"

#include <pthread.h>
#include <sys/socket.h>

#define MSG 64

static uint64_t rounds;

struct client {
	int fd;
	uint64_t n;
	uint64_t cpu_ns; /* the client thread's own CPU */
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	char buf[MSG];
	memset(buf, 'x', sizeof buf);
	uint64_t c0 = bench_thread_cpu_ns();
	for (uint64_t i = 0; i < c->n; i++) {
		if (send(c->fd, buf, MSG, MSG_NOSIGNAL) != MSG)
			BENCH_FAIL("client send");
		for (size_t got = 0; got < MSG;) {
			ssize_t r = recv(c->fd, buf + got, MSG - got, 0);
			if (r <= 0)
				BENCH_FAIL("client recv");
			got += (size_t)r;
		}
	}
	c->cpu_ns = bench_thread_cpu_ns() - c0;
	shutdown(c->fd, SHUT_WR);
	return NULL;
}

/* One measurement: ns of server CPU per round trip. */
static double one_rep(void *arg)
{
	(void)arg;
	int sv[2];
	bench_tcp_pair(sv);
	struct client c = {.fd = sv[1], .n = rounds};
	pthread_t th;
	uint64_t p0 = bench_process_cpu_ns();
	if (pthread_create(&th, NULL, client_main, &c) != 0)
		BENCH_FAIL("pthread_create");
	char buf[MSG * 4];
	for (;;) {
		ssize_t r = weft_recv(sv[0], buf, sizeof buf, 0);
		BENCH_CHECK((int)r);
		if (r == 0)
			break;
		BENCH_CHECK((int)weft_send_all(sv[0], buf, (size_t)r, 0, NULL));
	}
	pthread_join(th, NULL);
	uint64_t p1 = bench_process_cpu_ns();
	close(sv[0]);
	close(sv[1]);
	return (double)(p1 - p0 - c.cpu_ns) / (double)rounds;
}

static void *bench_main(void *arg)
{
	int reps = bench_reps();
	double v[BENCH_MAX_REPS];
	uint64_t saved = rounds;
	rounds = 2000;
	one_rep(NULL); /* warm-up */
	rounds = saved;
	bench_median_of(reps, one_rep, NULL, v);
	bench_note_reps("echo_cpu", v, reps, "ns");
	*(double *)arg = bench_median(v, reps);
	return NULL;
}

int main(void)
{
	weft_runtime_config cfg;
	bench_config(&cfg, 1);
	rounds = bench_scaled(20000);
	double ns = 0;
	BENCH_CHECK(weft_run(&cfg, bench_main, &ns, NULL));
	bench_line("echo_cpu", ns, "ns", -1, 0, "-", true);
	return 0;
}
