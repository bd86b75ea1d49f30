/*
 * send_zc: where zero-copy sends start to pay, over TCP loopback.
 *
 * One task sends TOTAL bytes in buffers of S bytes (4 KiB .. 4 MiB) to a
 * plain thread that receives and discards them, four ways, interleaved
 * (each repeat runs every way once per size, so drift hits all alike):
 *
 *   send       weft_send_all: the kernel copies the buffer
 *   send_zc    weft_send_zc(MSG_WAITALL) (IORING_OP_SEND_ZC), repeated
 *              until all of it is gone
 *   stream     weft_stream_write + weft_stream_drain: the stream's copy,
 *              then the kernel's
 *   stream_zc  weft_stream_write_zc (zc_threshold 1: always zero-copy)
 *
 * Reported per way and size: the sending thread's CPU time per KiB
 * (getrusage RUSAGE_THREAD around the sends: what zero-copy saves is the
 * sender's copy) and the throughput.  On loopback the kernel copies a
 * zero-copy skb anyway when it reaches the local receiver
 * (skb_orphan_frags_rx), in the sender's context, so the saving measured
 * here is a floor: on a real NIC that copy does not happen at all.
 *
 * BENCH lines: send_zc_<S> and stream_zc_<S> (sender ns/KiB, baseline the
 * copying way of the same size, ratio = copy / zero-copy: > 1 pays),
 * their throughputs, and send_zc_crossover / stream_zc_crossover: the
 * smallest size from which the zero-copy way costs the sender no more CPU
 * than the copy at every larger size (0: never).  Needs the io_uring
 * backend with SEND_ZC; on epoll both ways copy and it says so.
 */
#include "bench.h"

#include "weft/io.h"
#include "weft/net.h"
#include "weft/stream.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>

enum { W_SEND, W_SEND_ZC, W_STREAM, W_STREAM_ZC, NWAYS };
static const char *const way_name[NWAYS] = { "send", "send_zc", "stream", "stream_zc" };

#define NSIZES 6
static const size_t sizes[NSIZES] = { 4096, 16384, 65536, 262144, 1u << 20, 4u << 20 };

static uint64_t total_bytes;
static char *sbuf; /* the sender's buffer: 4 MiB, written once */

static void *receiver(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(1u << 20);
	if (!buf)
		BENCH_FAIL("no memory");
	while (recv(fd, buf, 1u << 20, 0) > 0)
		;
	free(buf);
	return NULL;
}

struct result {
	double cpu_ns_per_kib, mib_s;
};

/* One measurement: TOTAL bytes in buffers of `size`, way `w`. */
static struct result measure(int w, size_t size)
{
	int sv[2];
	bench_tcp_pair(sv);
	int fd = sv[0], peer = sv[1];
	pthread_t th;
	if (pthread_create(&th, NULL, receiver, (void *)(intptr_t)peer) != 0)
		BENCH_FAIL("pthread_create");
	weft_stream *s = NULL;
	if (w >= W_STREAM) {
		weft_stream_config c;
		weft_stream_config_init(&c);
		c.zc_threshold = 1;
		c.keep_fd = true;
		BENCH_CHECK(weft_stream_open(&s, fd, &c));
	}
	uint64_t n = total_bytes / size;
	uint64_t c0 = bench_thread_cpu_ns(), t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		switch (w) {
		case W_SEND:
			BENCH_CHECK((int)weft_send_all(fd, sbuf, size, 0, NULL));
			break;
		case W_SEND_ZC:
			for (size_t done = 0; done < size;) {
				ssize_t r = weft_send_zc(fd, sbuf + done, size - done, MSG_WAITALL);
				BENCH_CHECK((int)r);
				done += (size_t)r;
			}
			break;
		case W_STREAM:
			BENCH_CHECK((int)weft_stream_write(s, sbuf, size));
			BENCH_CHECK(weft_stream_drain(s));
			break;
		default:
			BENCH_CHECK((int)weft_stream_write_zc(s, sbuf, size));
			break;
		}
	}
	if (s) {
		BENCH_CHECK(weft_stream_flush(s));
		BENCH_CHECK(weft_stream_close(s));
	}
	uint64_t c1 = bench_thread_cpu_ns();
	shutdown(fd, SHUT_WR);
	pthread_join(th, NULL); /* blocks the loop: nothing else runs on it */
	uint64_t t1 = now_ns();
	close(fd);
	close(peer);
	double kib = (double)(n * size) / 1024.0;
	return (struct result){ (double)(c1 - c0) / kib,
				(double)(n * size) / (1 << 20) / ((double)(t1 - t0) / 1e9) };
}

static void *bench_main(void *arg)
{
	(void)arg;
	int reps = bench_reps();
	weft_runtime_stats st;
	BENCH_CHECK(weft_runtime_stats_get(weft_runtime_current(), &st));
	fprintf(stderr, "send_zc: %s, %d repeats of %llu MiB per way and size\n",
		st.ring_features & WEFT_RING_SEND_ZC ? "io_uring with SEND_ZC"
						       : "no SEND_ZC here: both ways copy",
		reps, (unsigned long long)(total_bytes >> 20));
	static double cpu[NWAYS][NSIZES][BENCH_MAX_REPS], thr[NWAYS][NSIZES][BENCH_MAX_REPS];
	for (int r = 0; r < reps; r++)
		for (int k = 0; k < NSIZES; k++)
			for (int w = 0; w < NWAYS; w++) {
				struct result x = measure(w, sizes[k]);
				cpu[w][k][r] = x.cpu_ns_per_kib;
				thr[w][k][r] = x.mib_s;
			}
	double med[NWAYS][NSIZES];
	for (int k = 0; k < NSIZES; k++) {
		for (int w = 0; w < NWAYS; w++) {
			double lo, hi, tlo, thi;
			med[w][k] = bench_median_range(cpu[w][k], reps, &lo, &hi);
			double t = bench_median_range(thr[w][k], reps, &tlo, &thi);
			fprintf(stderr, "%-9s %7zu B: sender %6.1f ns/KiB [%.1f..%.1f], %6.0f MiB/s [%.0f..%.0f]\n",
				way_name[w], sizes[k], med[w][k], lo, hi, t, tlo, thi);
		}
	}
	for (int zw = W_SEND_ZC; zw < NWAYS; zw += 2) {
		int cw = zw - 1;
		size_t crossover = 0;
		for (int k = NSIZES - 1; k >= 0 && med[zw][k] <= med[cw][k]; k--)
			crossover = sizes[k];
		for (int k = 0; k < NSIZES; k++) {
			char name[64];
			snprintf(name, sizeof name, "%s_%zuk_sender_cpu", way_name[zw], sizes[k] >> 10);
			double ratio = med[zw][k] > 0 ? med[cw][k] / med[zw][k] : 0;
			bench_line(name, med[zw][k], "ns/KiB", med[cw][k], ratio, "-", true);
			double lo, hi;
			snprintf(name, sizeof name, "%s_%zuk_throughput", way_name[zw], sizes[k] >> 10);
			double tz = bench_median_range(thr[zw][k], reps, &lo, &hi);
			double tc = bench_median_range(thr[cw][k], reps, &lo, &hi);
			bench_line(name, tz, "MiB/s", tc, tc > 0 ? tz / tc : 0, "-", true);
		}
		char name[64];
		snprintf(name, sizeof name, "%s_crossover", way_name[zw]);
		bench_line(name, (double)crossover, "B", -1, 0, "-", true);
	}
	return NULL;
}

int main(void)
{
	total_bytes = bench_scaled(64u << 20);
	if (total_bytes < (4u << 20))
		total_bytes = 4u << 20;
	sbuf = malloc(4u << 20);
	if (!sbuf)
		BENCH_FAIL("no memory");
	for (size_t i = 0; i < (4u << 20); i++)
		sbuf[i] = (char)(i * 7);
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	BENCH_CHECK(weft_run(&cfg, bench_main, NULL, NULL));
	free(sbuf);
	return 0;
}
