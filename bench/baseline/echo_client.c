/*
 * The echo load client: closed loop, single-threaded epoll.
 *
 *   echo_client -p PORT [-c CONNS] [-s BYTES] [-d SECONDS]
 *
 * Opens CONNS connections to 127.0.0.1:PORT (default 64); each sends one
 * message of BYTES (default 64), waits for the whole echo, checks it byte
 * for byte and sends the next, for SECONDS (default 5, fractions allowed).
 * The round-trip latencies go into a log-linear histogram (relative error
 * under 0.8%).  Prints exactly one line on stdout:
 *
 *   rps=... p50_us=... p90_us=... p99_us=... p999_us=... max_us=... errors=... requests=...
 *
 * errors counts every connection that failed to connect, broke, got a
 * short or wrong echo, or was still waiting for an echo sent more than a
 * second before the end.  Diagnostics go to stderr.  Exit status 0 when
 * some round trip completed and nothing failed, 1 otherwise.
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

#include "baseline.h"

/* ---- log-linear histogram of nanoseconds ---- */
#define SUB_BITS 7
#define SUB (1u << SUB_BITS)  /* values below SUB are exact */
#define HALF (SUB / 2)
#define MAX_SHIFT 34          /* values are clamped below 2^41 ns (~37 min) */
#define NBUCKETS (SUB + MAX_SHIFT * HALF)

static uint64_t hist[NBUCKETS];
static uint64_t hist_n, hist_max;

static unsigned bucket_of(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	if (v >= (1ull << (SUB_BITS + MAX_SHIFT)))
		v = (1ull << (SUB_BITS + MAX_SHIFT)) - 1;
	unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - (SUB_BITS - 1);
	return SUB + (shift - 1) * HALF + (unsigned)((v >> shift) - HALF);
}

/* the middle of bucket b */
static double bucket_mid(unsigned b)
{
	if (b < SUB)
		return b;
	unsigned shift = (b - SUB) / HALF + 1;
	uint64_t m = (b - SUB) % HALF + HALF;
	return (double)(m << shift) + (double)(1ull << shift) / 2;
}

static void hist_add(uint64_t ns)
{
	hist[bucket_of(ns)]++;
	hist_n++;
	if (ns > hist_max)
		hist_max = ns;
}

static double hist_quantile_us(double q)
{
	if (!hist_n)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)hist_n), seen = 0;
	if (want < 1)
		want = 1;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		seen += hist[b];
		if (seen >= want) {
			double v = bucket_mid(b);
			return (v > (double)hist_max ? (double)hist_max : v) / 1000.0;
		}
	}
	return (double)hist_max / 1000.0;
}

/* ---- connections ---- */
struct conn {
	int fd;
	unsigned id;
	size_t sent, got;
	uint64_t seq, t_send;
	char *tx, *rx;
};

static size_t msg_size = 64;
static int ep;
static uint64_t errors;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void conn_fail(struct conn *c, const char *why)
{
	if (errors < 10)
		fprintf(stderr, "echo_client: connection %u: %s\n", c->id, why);
	errors++;
	close(c->fd);
	c->fd = -1;
}

static void want(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is left of the current message; -1 if the connection failed. */
static int conn_send(struct conn *c)
{
	while (c->sent < msg_size) {
		ssize_t n = write(c->fd, c->tx + c->sent, msg_size - c->sent);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				want(c, EPOLLIN | EPOLLOUT);
				return 0;
			}
			conn_fail(c, strerror(errno));
			return -1;
		}
		c->sent += (size_t)n;
	}
	return 0;
}

static int conn_start_message(struct conn *c)
{
	c->seq++;
	memcpy(c->tx, &c->seq, sizeof c->seq < msg_size ? sizeof c->seq : msg_size);
	c->sent = c->got = 0;
	c->t_send = now_ns();
	return conn_send(c);
}

static int conn_open(struct conn *c, int port)
{
	struct sockaddr_in a = baseline_addr(port);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
		errors++;
		if (errors <= 10)
			fprintf(stderr, "echo_client: connect 127.0.0.1:%d: %s\n", port,
				strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return -1;
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	baseline_nodelay(c->fd);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_fail(c, strerror(errno));
		return -1;
	}
	return 0;
}

/* Readable (or error): take what is there of the echo. */
static void conn_input(struct conn *c)
{
	for (;;) {
		ssize_t n = read(c->fd, c->rx + c->got, msg_size - c->got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_fail(c, strerror(errno));
			return;
		}
		if (n == 0) {
			conn_fail(c, c->got ? "EOF in the middle of an echo (short echo)"
					    : "closed by the server");
			return;
		}
		c->got += (size_t)n;
		if (c->got < msg_size)
			continue; /* the rest may be there already; else EAGAIN */
		if (c->sent < msg_size || memcmp(c->rx, c->tx, msg_size)) {
			conn_fail(c, "echo differs from the message sent");
			return;
		}
		hist_add(now_ns() - c->t_send);
		conn_start_message(c);
		return;
	}
}

static void usage(void)
{
	BASELINE_DIE("usage: echo_client -p PORT [-c CONNS] [-s BYTES] [-d SECONDS]");
}

int main(int argc, char **argv)
{
	int port = -1;
	long conns = 64;
	double seconds = 5;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc || argv[i][0] != '-' || !argv[i][1] || argv[i][2])
			usage();
		const char *v = argv[++i];
		switch (argv[i - 1][1]) {
		case 'p': port = atoi(v); break;
		case 'c': conns = atol(v); break;
		case 's': msg_size = (size_t)atol(v); break;
		case 'd': seconds = atof(v); break;
		default: usage();
		}
	}
	if (port <= 0 || port > 65535 || conns < 1 || msg_size < 1 || !(seconds > 0))
		usage();
	signal(SIGPIPE, SIG_IGN);

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct conn *cs = calloc((size_t)conns, sizeof *cs);
	if (ep < 0 || !cs)
		BASELINE_DIE("echo_client: out of resources");
	for (long i = 0; i < conns; i++) {
		struct conn *c = &cs[i];
		c->id = (unsigned)i;
		c->tx = malloc(msg_size);
		c->rx = malloc(msg_size);
		if (!c->tx || !c->rx)
			BASELINE_DIE("echo_client: out of memory");
		for (size_t j = 0; j < msg_size; j++)
			c->tx[j] = (char)('a' + (i + j) % 26);
		conn_open(c, port);
	}

	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
	for (long i = 0; i < conns; i++)
		if (cs[i].fd >= 0)
			conn_start_message(&cs[i]);

	struct epoll_event evs[1024];
	uint64_t t;
	while ((t = now_ns()) < end) {
		int timeout_ms = (int)((end - t) / 1000000) + 1;
		int n = epoll_wait(ep, evs, 1024, timeout_ms);
		if (n < 0 && errno != EINTR)
			BASELINE_DIE("echo_client: epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue;
			if ((evs[i].events & EPOLLOUT) && c->sent < msg_size) {
				if (conn_send(c) < 0)
					continue;
				if (c->sent == msg_size)
					want(c, EPOLLIN);
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_input(c);
		}
	}
	double elapsed = (double)(now_ns() - t0) / 1e9;
	uint64_t requests = hist_n;

	/* what is still in flight is not counted, unless the server sat on it */
	t = now_ns();
	for (long i = 0; i < conns; i++) {
		if (cs[i].fd < 0)
			continue;
		if (t - cs[i].t_send > 1000000000u)
			conn_fail(&cs[i], "no echo for over a second (stalled)");
		else
			close(cs[i].fd);
	}

	printf("rps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
	       "errors=%llu requests=%llu\n",
	       (double)requests / elapsed, hist_quantile_us(0.50), hist_quantile_us(0.90),
	       hist_quantile_us(0.99), hist_quantile_us(0.999), (double)hist_max / 1000.0,
	       (unsigned long long)errors, (unsigned long long)requests);
	return requests > 0 && errors == 0 ? 0 : 1;
}
