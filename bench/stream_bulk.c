/*
 * stream_bulk: 1 MiB bodies through a stream reader against weft_recv
 * into the caller's own buffer (issue 14: receives sized for
 * throughput), over TCP loopback.
 *
 * A plain thread sends BODIES bodies of 1 MiB, each after the reader's
 * 1-byte acknowledgement of the one before (so every body starts on an
 * idle connection, as a request/response exchange of large messages
 * does).  One task on a one-loop runtime receives each body four ways,
 * interleaved (every repeat runs each way once, so drift hits all alike):
 *
 *   recv      weft_recv into a 256 KiB buffer of the caller's: the floor
 *   read      weft_stream_read into a 256 KiB buffer (a buffer that
 *             large takes the receive itself: no copy out)
 *   read16k   weft_stream_read into a 16 KiB buffer (the stream's
 *             receive, then a copy out)
 *   buffered  weft_stream_fill + weft_stream_buffered + weft_stream_consume
 *             (the stream's receive, parsed in place: no copy out)
 *
 * Reported per way: the receiving loop thread's CPU time per MiB
 * (getrusage RUSAGE_THREAD around the bodies) and the throughput, medians
 * of BENCH_REPS repeats with their ranges on stderr.  BENCH lines:
 * stream_bulk_<way>_cpu (ms/MiB, baseline recv's, target <= 1.2x) and
 * stream_bulk_<way>_throughput (MiB/s, baseline recv's).  The backend is
 * WEFT_BACKEND's (io_uring by default).
 */
#include "bench.h"

#include "weft/io.h"
#include "weft/net.h"
#include "weft/stream.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>

enum { W_RECV, W_READ, W_READ16K, W_BUFFERED, NWAYS };
static const char *const way_name[NWAYS] = { "recv", "read", "read16k", "buffered" };

#define BODY (1u << 20)
#define CHUNK (256u * 1024u)

static unsigned bodies;
static char *sbuf; /* the sender's body */

static void *sender(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char ack;
	for (unsigned i = 0; i < bodies; i++) {
		for (size_t off = 0; off < BODY;) {
			ssize_t n = send(fd, sbuf + off, BODY - off, MSG_NOSIGNAL);
			if (n <= 0)
				return NULL;
			off += (size_t)n;
		}
		if (recv(fd, &ack, 1, MSG_WAITALL) != 1)
			return NULL;
	}
	return NULL;
}

struct result {
	double cpu_ms_per_mib, mib_s;
};

static struct result measure(int w, char *rbuf)
{
	int sv[2];
	bench_tcp_pair(sv);
	int fd = sv[0], peer = sv[1];
	weft_stream *s = NULL;
	if (w != W_RECV) {
		weft_stream_config c;
		weft_stream_config_init(&c);
		c.keep_fd = true;
		BENCH_CHECK(weft_stream_open(&s, fd, &c));
	}
	pthread_t th;
	if (pthread_create(&th, NULL, sender, (void *)(intptr_t)peer) != 0)
		BENCH_FAIL("pthread_create");
	uint64_t c0 = bench_thread_cpu_ns(), t0 = now_ns();
	for (unsigned i = 0; i < bodies; i++) {
		for (size_t got = 0; got < BODY;) {
			size_t chunk = w == W_READ16K ? 16384 : CHUNK;
			size_t want = BODY - got < chunk ? BODY - got : chunk;
			ssize_t n;
			if (w == W_RECV) {
				n = weft_recv(fd, rbuf, want, 0);
			} else if (w == W_READ || w == W_READ16K) {
				n = weft_stream_read(s, rbuf, want);
			} else {
				const char *p;
				size_t have = weft_stream_buffered(s, &p);
				if (!have) {
					BENCH_CHECK((int)weft_stream_fill(s));
					have = weft_stream_buffered(s, &p);
				}
				n = (ssize_t)(have < BODY - got ? have : BODY - got);
				rbuf[0] = p[n - 1]; /* touch it, as a parser would */
				BENCH_CHECK(weft_stream_consume(s, (size_t)n));
			}
			if (n <= 0)
				BENCH_FAIL("receive failed");
			got += (size_t)n;
		}
		if (w == W_RECV)
			BENCH_CHECK((int)weft_send(fd, "k", 1, 0));
		else
			BENCH_CHECK((int)weft_stream_write(s, "k", 1));
	}
	uint64_t c1 = bench_thread_cpu_ns(), t1 = now_ns();
	if (s)
		BENCH_CHECK(weft_stream_close(s));
	pthread_join(th, NULL);
	close(fd);
	close(peer);
	double mib = (double)bodies * BODY / (1 << 20);
	return (struct result){ (double)(c1 - c0) / 1e6 / mib, mib / ((double)(t1 - t0) / 1e9) };
}

static void *bench_main(void *arg)
{
	(void)arg;
	int reps = bench_reps();
	weft_runtime_stats st;
	BENCH_CHECK(weft_runtime_stats_get(weft_runtime_current(), &st));
	fprintf(stderr, "stream_bulk: %s, %d repeats of %u bodies of 1 MiB per way\n",
		st.backend == WEFT_BACKEND_EPOLL ? "epoll" : "io_uring", reps, bodies);
	char *rbuf = malloc(CHUNK);
	if (!rbuf)
		BENCH_FAIL("no memory");
	static double cpu[NWAYS][BENCH_MAX_REPS], thr[NWAYS][BENCH_MAX_REPS];
	for (int r = 0; r < reps; r++)
		for (int k = 0; k < NWAYS; k++) {
			int w = (k + r) % NWAYS; /* rotate the order too */
			struct result x = measure(w, rbuf);
			cpu[w][r] = x.cpu_ms_per_mib;
			thr[w][r] = x.mib_s;
		}
	free(rbuf);
	double mc[NWAYS], mt[NWAYS];
	for (int w = 0; w < NWAYS; w++) {
		double lo, hi, tlo, thi;
		mc[w] = bench_median_range(cpu[w], reps, &lo, &hi);
		mt[w] = bench_median_range(thr[w], reps, &tlo, &thi);
		fprintf(stderr, "%-8s %6.3f ms/MiB [%.3f..%.3f], %6.0f MiB/s [%.0f..%.0f]\n",
			way_name[w], mc[w], lo, hi, mt[w], tlo, thi);
	}
	const char *be = st.backend == WEFT_BACKEND_EPOLL ? "_epoll" : "";
	for (int w = W_READ; w < NWAYS; w++) {
		char name[64];
		double ratio = mc[W_RECV] > 0 ? mc[w] / mc[W_RECV] : 0;
		snprintf(name, sizeof name, "stream_bulk_%s%s_cpu", way_name[w], be);
		bench_line(name, mc[w], "ms/MiB", mc[W_RECV], ratio, "<=1.2x", ratio <= 1.2);
		snprintf(name, sizeof name, "stream_bulk_%s%s_throughput", way_name[w], be);
		bench_line(name, mt[w], "MiB/s", mt[W_RECV], mt[W_RECV] > 0 ? mt[w] / mt[W_RECV] : 0,
			   "-", true);
	}
	return NULL;
}

int main(void)
{
	bodies = (unsigned)bench_scaled(256);
	sbuf = malloc(BODY);
	if (!sbuf)
		BENCH_FAIL("no memory");
	for (size_t i = 0; i < BODY; i++)
		sbuf[i] = (char)(i * 7);
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	BENCH_CHECK(weft_run(&cfg, bench_main, NULL, NULL));
	free(sbuf);
	return 0;
}
