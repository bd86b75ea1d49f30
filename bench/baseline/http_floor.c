/*
 * Baseline, the floor of an HTTP load client: the least a closed-loop
 * HTTP/1.1 keep-alive client can do per request, no runtime and no
 * measurement beyond a count.
 *
 *   http_floor -p PORT [-c CONNS] [-d SECONDS] [--epoll | --multishot]
 *              [--coalesce US]
 *
 * CONNS connections (default 64) to 127.0.0.1:PORT each send
 * "GET / HTTP/1.1", wait for the whole response (its head and a
 * Content-Length body) and send the next, for SECONDS (default 3, fractions
 * allowed).  No latency is recorded: the clock is read once per batch of
 * completions, to stop.  It exists to measure what bounds a client's CPU
 * per request on this machine: what is left once user code is gone is
 * the kernel's TCP and its wakeups, which every client pays.
 *
 * io_uring (default): one ring, SINGLE_ISSUER|DEFER_TASKRUN where the
 * kernel has them, registered ring fd; per request a send linked to a
 * receive into the connection's own buffer, the receive flagged POLL_FIRST
 * (the answer is never there yet), both queued while handling a batch of
 * completions and submitted by the one io_uring_submit_and_wait that
 * waits for the next batch: two SQEs and a fraction of a system call per
 * request.  --multishot: instead one multishot receive per connection into
 * a ring of provided buffers (a response copied out to the connection's
 * buffer), and per request only the send: one SQE.  --epoll: level-triggered EPOLLIN registered once per
 * connection, one epoll_wait per batch, then per request one recv and one
 * send: two system calls and a fraction.
 *
 * --coalesce US: wake coalescing, as weft's coalesce_us, for a floor of
 * clients that wait for a batch: io_uring waits for 32 completions or US
 * microseconds (min_wait, Linux 6.12); epoll, when nothing is ready,
 * sleeps US before epoll_wait.
 *
 * Prints one line on stdout:
 *
 *   rps=... requests=... errors=... mode=uring|uring_multishot|epoll
 *
 * errors counts connections that failed, broke or got a response it could
 * not frame.  Exit status 0 when some request completed and nothing failed.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include "baseline_uring.h"

#define RING_ENTRIES 1024
#define MAX_CONNS 4096

enum { OP_SEND = 1, OP_RECV = 2 }; /* low bits of user_data */

struct conn {
	int fd;
	bool busy;     /* a request out, its answer not in (io_uring) */
	unsigned have; /* bytes of the current response in buf */
	char buf[BASELINE_BUF];
} __attribute__((aligned(8)));

static char req[128];
static unsigned req_len;
static uint64_t requests, errors;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The length of the whole response at the start of buf[0..n), 0 while
 * incomplete, -1 when it cannot be framed (no Content-Length: the servers
 * measured send one). */
static long response_len(const char *buf, unsigned n)
{
	const char *end = memmem(buf, n, "\r\n\r\n", 4);
	if (!end)
		return n >= BASELINE_BUF ? -1 : 0;
	unsigned head = (unsigned)(end - buf) + 4;
	for (const char *p = buf; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end + 2 - p));
		if (!eol)
			break;
		if (eol - p > 15 && !strncasecmp(p, "Content-Length:", 15)) {
			long body = strtol(p + 15, NULL, 10);
			if (body < 0 || head + (unsigned long)body > BASELINE_BUF)
				return -1;
			return head + body <= n ? (long)head + body : 0;
		}
		p = eol + 1;
	}
	return -1;
}

/* Bytes n more arrived in c->buf: true when a whole response is in
 * (counted, and the buffer emptied: the next one starts at 0), false
 * while not; -1 (errors counted) when it cannot be framed.  Pipelining is
 * 1, so nothing follows a response. */
static int response_in(struct conn *c, unsigned n)
{
	c->have += n;
	long len = response_len(c->buf, c->have);
	if (len < 0 || (len > 0 && (unsigned long)len != c->have)) {
		errors++;
		return -1;
	}
	if (len == 0)
		return 0;
	requests++;
	c->have = 0;
	return 1;
}

static int connect_one(struct sockaddr_in *a, int flags)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)a, sizeof *a) < 0)
		BASELINE_DIE("http_floor: connect: %s", strerror(errno));
	baseline_nodelay(fd);
	if (flags)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | flags);
	return fd;
}

/* ---- io_uring ---- */

static struct io_uring ring;

static void post_recv(struct conn *c, unsigned flags)
{
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	io_uring_prep_recv(sqe, c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
	sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	sqe->flags |= flags;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
}

/* The request and, linked after it, the receive of its answer. */
static void post_request(struct conn *c)
{
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	io_uring_prep_send(sqe, c->fd, req, req_len, MSG_NOSIGNAL);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
	post_recv(c, 0);
}

static void ms_give(unsigned bid);

/* --multishot: one receive per connection for the whole run, into the
 * ring's provided buffers, and per request only the send. */
#define MS_BUFS 256
#define MS_BUF 4096
static bool multishot;
static struct io_uring_buf_ring *ms_ring;
static char *ms_mem;

static void ms_setup(void)
{
	if (posix_memalign((void **)&ms_ring, 4096, MS_BUFS * sizeof(struct io_uring_buf)) ||
	    !(ms_mem = malloc((size_t)MS_BUFS * MS_BUF)))
		BASELINE_DIE("http_floor: out of memory");
	io_uring_buf_ring_init(ms_ring);
	struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)ms_ring, .ring_entries = MS_BUFS,
					.bgid = 1 };
	int rc = io_uring_register_buf_ring(&ring, &reg, 0);
	if (rc < 0)
		BASELINE_DIE("http_floor: io_uring_register_buf_ring: %s", strerror(-rc));
	for (unsigned i = 0; i < MS_BUFS; i++)
		ms_give(i);
}

static void ms_give(unsigned bid)
{
	io_uring_buf_ring_add(ms_ring, ms_mem + (size_t)bid * MS_BUF, MS_BUF, (unsigned short)bid,
			      io_uring_buf_ring_mask(MS_BUFS), 0);
	io_uring_buf_ring_advance(ms_ring, 1);
}

static void ms_arm(struct conn *c)
{
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 1;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
}

static void ms_send(struct conn *c)
{
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	io_uring_prep_send(sqe, c->fd, req, req_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
}

/* Bytes from provided buffer bid into the connection's buffer (a
 * response is framed there: it may come in pieces), the buffer back. */
static int ms_take(struct conn *c, struct io_uring_cqe *cqe)
{
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT, n = (unsigned)cqe->res;
	int r = -1;
	if (n <= sizeof c->buf - c->have) {
		memcpy(c->buf + c->have, ms_mem + (size_t)bid * MS_BUF, n);
		r = response_in(c, n);
	} else {
		errors++;
	}
	ms_give(bid);
	return r;
}

static unsigned inflight; /* connections with a request out */

/* The connection's request is over: answered (r > 0) or failed (the
 * error counted where it was seen, once per request); the next one if
 * going on.  A connection that failed stays idle. */
static void request_done(struct conn *c, int r, bool go_on)
{
	if (!c->busy)
		return;
	c->busy = false;
	inflight--;
	if (r > 0 && go_on) {
		if (multishot)
			ms_send(c);
		else
			post_request(c);
		c->busy = true;
		inflight++;
	}
}

static void uring_cqe(struct io_uring_cqe *cqe, bool go_on)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct conn *c = (struct conn *)(uintptr_t)(ud & ~3ull);
	int res = cqe->res;
	/* A send's result is the receive's business: a short send of 40
	 * bytes does not happen on a fresh socket, and a failed one cancels
	 * the linked receive, which counts the error. */
	if ((ud & 3) == OP_SEND) {
		if (multishot && res < 0) { /* no linked receive to tell */
			errors++;
			request_done(c, -1, false);
		}
		return;
	}
	if (multishot && res > 0 && !(cqe->flags & IORING_CQE_F_MORE))
		ms_arm(c); /* the multishot ended (out of buffers): again */
	int r = res <= 0 ? -1 : multishot ? ms_take(c, cqe) : response_in(c, (unsigned)res);
	if (res <= 0 && !(multishot && res == -ENOBUFS))
		errors++;
	if (multishot && res == -ENOBUFS) {
		ms_arm(c);
		return;
	}
	if (r == 0) {
		if (!multishot)
			post_recv(c, 0);
		return;
	}
	request_done(c, r, go_on);
}

static void uring_cqe_cb(struct io_uring_cqe *cqe, void *go_on)
{
	uring_cqe(cqe, *(bool *)go_on);
}

/* Requests until `secs` have passed, then the answers still owed (for at
 * most a second: a request unanswered then is an error). */
static void run_uring(struct conn *cs, int n, double secs)
{
	baseline_ring_init(&ring, RING_ENTRIES, "http_floor");
	if (multishot)
		ms_setup();
	for (int i = 0; i < n; i++) {
		if (multishot) {
			ms_arm(&cs[i]);
			ms_send(&cs[i]);
		} else {
			post_request(&cs[i]);
		}
		cs[i].busy = true;
	}
	inflight = (unsigned)n;
	double end = now_s() + secs;
	bool go_on = true;
	while (inflight) {
		go_on = go_on && now_s() < end; /* the one clock read of a pass */
		if (!go_on && now_s() > end + 1) {
			errors += inflight;
			break;
		}
		struct __kernel_timespec ts = { .tv_nsec = 100000000 };
		baseline_ring_pass(&ring, uring_cqe_cb, &go_on, go_on ? NULL : &ts, "http_floor");
	}
}

/* ---- epoll ---- */

static void run_epoll(struct conn *cs, int n, double secs)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		BASELINE_DIE("http_floor: epoll_create1: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
			BASELINE_DIE("http_floor: epoll_ctl: %s", strerror(errno));
		if (send(cs[i].fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len)
			errors++;
	}
	double end = now_s() + secs;
	struct epoll_event evs[256];
	while (now_s() < end) {
		int k = epoll_wait(ep, evs, 256, baseline_coalesce_us ? 0 : 100);
		if (k == 0 && baseline_coalesce_us) {
			struct timespec d = { 0, (long)baseline_coalesce_us * 1000 };
			nanosleep(&d, NULL);
			k = epoll_wait(ep, evs, 256, 100);
		}
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				errors++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			if (response_in(c, (unsigned)r) > 0 &&
			    send(c->fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len)
				errors++;
		}
	}
	close(ep);
}

int main(int argc, char **argv)
{
	int port = -1, conns = 64;
	double secs = 3;
	bool epoll_mode = false;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-p") || !strcmp(argv[i], "--port")) && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-c") && i + 1 < argc)
			conns = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-d") && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--epoll"))
			epoll_mode = true;
		else if (!strcmp(argv[i], "--multishot"))
			multishot = true;
		else if (!strcmp(argv[i], "--coalesce") && i + 1 < argc)
			baseline_coalesce_us = (unsigned)atoi(argv[++i]);
		else
			port = -1, i = argc;
	}
	if (port <= 0 || port > 65535 || conns < 1 || conns > MAX_CONNS || !(secs > 0))
		BASELINE_DIE("usage: http_floor -p PORT [-c CONNS] [-d SECONDS] [--epoll | --multishot] [--coalesce US]");
	signal(SIGPIPE, SIG_IGN);
	req_len = (unsigned)snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
				     port);
	struct conn *cs = calloc((size_t)conns, sizeof *cs);
	if (!cs)
		BASELINE_DIE("http_floor: out of memory");
	struct sockaddr_in a = baseline_addr(port);
	for (int i = 0; i < conns; i++)
		cs[i].fd = connect_one(&a, epoll_mode ? O_NONBLOCK : 0);
	double t0 = now_s();
	if (epoll_mode)
		run_epoll(cs, conns, secs);
	else
		run_uring(cs, conns, secs);
	double t = now_s() - t0;
	printf("rps=%.0f requests=%llu errors=%llu mode=%s\n", (double)requests / t,
	       (unsigned long long)requests, (unsigned long long)errors,
	       epoll_mode ? "epoll" : multishot ? "uring_multishot" : "uring");
	return requests > 0 && errors == 0 ? 0 : 1;
}
