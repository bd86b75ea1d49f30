/*
 * relay: how a proxy should move bytes between two sockets (issue 14:
 * choose the copy path by measurement).  Three ways, interleaved:
 *
 *   copy    weft_recv into a 256 KiB buffer, weft_send_all out of it: one
 *           task per direction
 *   stream  weft_stream_copy_bidirectional over two streams (what the
 *           proxy building blocks and examples/tcp_proxy use)
 *   splice  weft_splice socket -> pipe -> socket (1 MiB pipes): one task
 *           per direction
 *
 * Two loads, each over TCP loopback through one relay on a one-loop
 * runtime, with plain threads as the client and the server:
 *
 *   bulk    64 MiB one way, then both sides shut down
 *   small   64-byte request, 64-byte response, 20000 round trips
 *
 * Reported per way: the relay's CPU (the process's CPU time less the
 * client's and server's own threads: so it counts the loop thread and any
 * kernel worker threads io_uring started for the relay), per MiB for bulk
 * and per round trip for small, and the most threads the process had
 * (io_uring's io-wq workers show up there).  Medians of BENCH_REPS
 * repeats, ranges on stderr.  BENCH lines relay_<load>_<way> with the copy
 * way as the baseline.
 */
#include "bench.h"

#include "weft/io.h"
#include "weft/net.h"
#include "weft/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>

enum { W_COPY, W_STREAM, W_SPLICE, NWAYS };
static const char *const way_name[NWAYS] = { "copy", "stream", "splice" };
enum { L_BULK, L_SMALL, NLOADS };
static const char *const load_name[NLOADS] = { "bulk", "small" };

#define BULK (64u << 20)
#define MSG 64
static unsigned rounds;

struct peer {
	int fd, load;
	uint64_t cpu_ns;
};

static int threads_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/* The client: sends the bulk or the requests. */
static void *client(void *arg)
{
	struct peer *p = arg;
	static char buf[256 * 1024];
	uint64_t c0 = bench_thread_cpu_ns();
	if (p->load == L_BULK) {
		for (size_t off = 0; off < BULK;) {
			ssize_t n = send(p->fd, buf, sizeof buf, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		shutdown(p->fd, SHUT_WR);
		while (recv(p->fd, buf, sizeof buf, 0) > 0)
			;
	} else {
		for (unsigned i = 0; i < rounds; i++)
			if (send(p->fd, buf, MSG, MSG_NOSIGNAL) != MSG ||
			    recv(p->fd, buf, MSG, MSG_WAITALL) != MSG)
				break;
		shutdown(p->fd, SHUT_WR);
		while (recv(p->fd, buf, sizeof buf, 0) > 0)
			;
	}
	p->cpu_ns = bench_thread_cpu_ns() - c0;
	return NULL;
}

/* The server: drains the bulk, or answers each request. */
static void *server(void *arg)
{
	struct peer *p = arg;
	static char buf[256 * 1024];
	uint64_t c0 = bench_thread_cpu_ns();
	if (p->load == L_BULK) {
		while (recv(p->fd, buf, sizeof buf, 0) > 0)
			;
	} else {
		while (recv(p->fd, buf, MSG, MSG_WAITALL) == MSG)
			if (send(p->fd, buf, MSG, MSG_NOSIGNAL) != MSG)
				break;
	}
	shutdown(p->fd, SHUT_WR);
	p->cpu_ns = bench_thread_cpu_ns() - c0;
	return NULL;
}

struct pump {
	int way, from, to;
};

/* One direction of the copy or splice ways, until end of input. */
static void *pump_main(void *arg)
{
	struct pump *d = arg;
	if (d->way == W_COPY) {
		static _Thread_local char *buf;
		if (!buf && !(buf = malloc(256 * 1024)))
			BENCH_FAIL("no memory");
		ssize_t n;
		while ((n = weft_recv(d->from, buf, 256 * 1024, 0)) > 0)
			if (weft_send_all(d->to, buf, (size_t)n, 0, NULL) < 0)
				break;
	} else {
		int pp[2];
		BENCH_CHECK(pipe2(pp, O_CLOEXEC) == 0 ? 0 : -errno);
		fcntl(pp[1], F_SETPIPE_SZ, 1 << 20);
		ssize_t n;
		while ((n = weft_splice(d->from, WEFT_OFF_CUR, pp[1], WEFT_OFF_CUR, 1 << 20, 0)) > 0)
			for (ssize_t left = n; left > 0;) {
				ssize_t m = weft_splice(pp[0], WEFT_OFF_CUR, d->to, WEFT_OFF_CUR,
							(size_t)left, 0);
				if (m <= 0)
					goto out;
				left -= m;
			}
out:
		close(pp[0]);
		close(pp[1]);
	}
	shutdown(d->to, SHUT_WR);
	return NULL;
}

static void relay(int way, int a, int b)
{
	if (way == W_STREAM) {
		weft_stream *sa, *sb;
		weft_stream_config c;
		weft_stream_config_init(&c);
		c.keep_fd = true;
		BENCH_CHECK(weft_stream_open(&sa, a, &c));
		BENCH_CHECK(weft_stream_open(&sb, b, &c));
		weft_stream_copied out;
		BENCH_CHECK(weft_stream_copy_bidirectional(sa, sb, NULL, &out));
		weft_stream_close(sa);
		weft_stream_close(sb);
		return;
	}
	struct pump d[2] = { { way, a, b }, { way, b, a } };
	weft_task *t;
	BENCH_CHECK(weft_task_spawn(&t, pump_main, &d[1]));
	pump_main(&d[0]);
	weft_task_join(t, NULL);
	weft_task_release(t);
}

struct result {
	double cpu, threads;
};

static struct result measure(int way, int load)
{
	int sa[2], sb[2];
	bench_tcp_pair(sa); /* client sa[1] -> relay sa[0] */
	bench_tcp_pair(sb); /* relay sb[0] -> server sb[1] */
	struct peer c = { sa[1], load, 0 }, s = { sb[1], load, 0 };
	pthread_t tc, ts;
	uint64_t p0 = bench_process_cpu_ns();
	if (pthread_create(&ts, NULL, server, &s) || pthread_create(&tc, NULL, client, &c))
		BENCH_FAIL("pthread_create");
	relay(way, sa[0], sb[0]);
	pthread_join(tc, NULL);
	pthread_join(ts, NULL);
	struct result r;
	r.threads = threads_now();
	double relay_ns = (double)(bench_process_cpu_ns() - p0) - (double)c.cpu_ns - (double)s.cpu_ns;
	r.cpu = load == L_BULK ? relay_ns / 1e6 / (BULK >> 20) : relay_ns / 1e3 / rounds;
	for (int i = 0; i < 2; i++) {
		close(sa[i]);
		close(sb[i]);
	}
	return r;
}

static void *bench_main(void *arg)
{
	(void)arg;
	int reps = bench_reps();
	weft_runtime_stats st;
	BENCH_CHECK(weft_runtime_stats_get(weft_runtime_current(), &st));
	const char *be = st.backend == WEFT_BACKEND_EPOLL ? "_epoll" : "";
	fprintf(stderr, "relay: %s, %d repeats per way; bulk 64 MiB, small %u round trips\n",
		be[0] ? "epoll" : "io_uring", reps, rounds);
	for (int load = 0; load < NLOADS; load++) {
		static double cpu[NWAYS][BENCH_MAX_REPS];
		double thr[NWAYS] = { 0 };
		for (int r = 0; r < reps; r++)
			for (int k = 0; k < NWAYS; k++) {
				int w = (k + r) % NWAYS;
				struct result x = measure(w, load);
				cpu[w][r] = x.cpu;
				thr[w] = x.threads > thr[w] ? x.threads : thr[w];
			}
		const char *unit = load == L_BULK ? "ms/MiB" : "us/rt";
		double med[NWAYS];
		for (int w = 0; w < NWAYS; w++) {
			double lo, hi;
			med[w] = bench_median_range(cpu[w], reps, &lo, &hi);
			fprintf(stderr, "%-5s %-6s %8.3f %s [%.3f..%.3f], threads up to %.0f\n",
				load_name[load], way_name[w], med[w], unit, lo, hi, thr[w]);
		}
		for (int w = 0; w < NWAYS; w++) {
			char name[64];
			snprintf(name, sizeof name, "relay_%s_%s%s", load_name[load], way_name[w], be);
			bench_line(name, med[w], unit, med[W_COPY],
				   med[W_COPY] > 0 ? med[w] / med[W_COPY] : 0, "-", true);
		}
	}
	return NULL;
}

int main(void)
{
	rounds = (unsigned)bench_scaled(20000);
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	BENCH_CHECK(weft_run(&cfg, bench_main, NULL, NULL));
	return 0;
}
