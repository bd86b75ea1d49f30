/*
 * Baseline, the floor of a TCP proxy: the least a proxy can do per byte
 * and per request, no runtime at all.
 *
 *   proxy_floor --port P --upstream PORT [--upstream PORT ...] [--coalesce US]
 *
 * One ring, one thread, on 127.0.0.1.  A multishot accept; each client is
 * given the next upstream in turn (no failover, no timeouts), connected
 * with an io_uring connect.  Then each direction is a chain of its own: a
 * receive into the direction's buffer, a send of what came (and of the
 * rest after a short send), the next receive.  A receive that did not fill
 * the buffer makes the next one POLL_FIRST (request/response: the peer's
 * next bytes are not there yet).  End of input on one side is a SHUT_WR on
 * the other; an error shuts both sockets down, which ends the other
 * direction's receive; once both directions are over, both sockets close.
 * Everything queued while handling a batch of completions goes to the
 * kernel in the one io_uring_submit_and_wait that waits for the next.
 * The ring is SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them, its
 * fd registered (baseline_uring.h).  --coalesce US: each wait asks for 32
 * completions or US microseconds (min_wait, Linux 6.12), as weft's
 * coalesce_us does.
 *
 * It exists to measure what bounds a proxy's CPU on this machine (bench/
 * compare.sh's proxy section runs it beside tcp_proxy and haproxy): what
 * is left without user code is the kernel's TCP and its wakeups.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

#include "baseline_uring.h"

#define RING_ENTRIES 4096
#define DIR_BUF 65536 /* per direction: a 1 MiB body moves in 16 steps */
#define MAX_UP 8

enum { OP_RECV = 1, OP_SEND = 2, OP_CONNECT = 3 }; /* low bits of user_data */
#define UD_ACCEPT 0ull

struct pair;

/* One direction: bytes from `from` to `to`. */
struct dir {
	struct pair *p;
	int from, to;
	unsigned off, len; /* a send covers buf[off..len) */
	bool quiet;        /* the last receive did not fill buf: POLL_FIRST */
	bool over;
	char *buf;
};

struct pair {
	int cfd, ufd;
	unsigned live; /* directions not over */
	struct dir d[2]; /* [0] client -> upstream, [1] upstream -> client */
} __attribute__((aligned(8)));

static struct io_uring ring;
static int lfd;
static struct sockaddr_in ups[MAX_UP];
static unsigned nups, next_up;

/* user_data: the direction (8-aligned) or the pair, and the op */
static void tag(struct io_uring_sqe *sqe, void *obj, int op)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)obj | (uint64_t)op);
}

static void post_recv(struct dir *d)
{
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	io_uring_prep_recv(sqe, d->from, d->buf, DIR_BUF, 0);
	if (d->quiet)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	tag(sqe, d, OP_RECV);
}

static void post_send(struct dir *d)
{
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	io_uring_prep_send(sqe, d->to, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);
	tag(sqe, d, OP_SEND);
}

static void pair_free(struct pair *p)
{
	close(p->cfd);
	close(p->ufd);
	free(p->d[0].buf);
	free(p->d[1].buf);
	free(p);
}

/* Direction d is over: at end of input (clean) its peer's write side
 * shuts; after an error both sockets do, which ends the other direction. */
static void dir_over(struct dir *d, bool clean)
{
	struct pair *p = d->p;
	if (d->over)
		return;
	d->over = true;
	if (clean) {
		shutdown(d->to, SHUT_WR);
	} else {
		shutdown(p->cfd, SHUT_RDWR);
		shutdown(p->ufd, SHUT_RDWR);
	}
	if (--p->live == 0)
		pair_free(p);
}

static void on_dir(struct dir *d, int op, int res)
{
	if (op == OP_RECV) {
		if (res == -EINTR || res == -EAGAIN) {
			post_recv(d);
		} else if (res <= 0) {
			dir_over(d, res == 0);
		} else {
			d->quiet = (unsigned)res < DIR_BUF;
			d->off = 0;
			d->len = (unsigned)res;
			post_send(d);
		}
		return;
	}
	if (res == -EINTR || res == -EAGAIN)
		post_send(d);
	else if (res < 0)
		dir_over(d, false);
	else if ((d->off += (unsigned)res) < d->len)
		post_send(d);
	else
		post_recv(d);
}

static void on_accept(int cfd)
{
	struct pair *p = calloc(1, sizeof(*p));
	int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!p || ufd < 0) {
		free(p);
		close(cfd);
		if (ufd >= 0)
			close(ufd);
		return;
	}
	baseline_nodelay(cfd);
	baseline_nodelay(ufd);
	p->cfd = cfd;
	p->ufd = ufd;
	p->live = 2;
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	io_uring_prep_connect(sqe, ufd, (struct sockaddr *)&ups[next_up], sizeof(ups[0]));
	next_up = (next_up + 1) % nups;
	tag(sqe, p, OP_CONNECT);
}

/* Connected (or not) to the upstream: both directions start, their
 * buffers taken only now (an idle client costs its pair and nothing
 * touched in them until bytes come). */
static void on_connect(struct pair *p, int res)
{
	if (res < 0) {
		pair_free(p);
		return;
	}
	for (int i = 0; i < 2; i++) {
		struct dir *d = &p->d[i];
		d->p = p;
		d->from = i == 0 ? p->cfd : p->ufd;
		d->to = i == 0 ? p->ufd : p->cfd;
		d->quiet = true;
		if (!(d->buf = malloc(DIR_BUF)))
			BASELINE_DIE("proxy_floor: out of memory");
		post_recv(d);
	}
}

static void on_cqe(struct io_uring_cqe *cqe, void *arg)
{
	(void)arg;
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	int res = cqe->res;
	if (ud == UD_ACCEPT) {
		if (res >= 0)
			on_accept(res);
		if (!(cqe->flags & IORING_CQE_F_MORE))
			baseline_arm_accept(&ring, lfd, UD_ACCEPT);
		return;
	}
	void *obj = (void *)(uintptr_t)(ud & ~7ull);
	int op = (int)(ud & 7);
	if (op == OP_CONNECT)
		on_connect(obj, res);
	else
		on_dir(obj, op, res);
}

int main(int argc, char **argv)
{
	int port = -1;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "--port") || !strcmp(argv[i], "-p")) && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--upstream") && i + 1 < argc && nups < MAX_UP)
			ups[nups++] = baseline_addr(atoi(argv[++i]));
		else if (!strcmp(argv[i], "--coalesce") && i + 1 < argc)
			baseline_coalesce_us = (unsigned)atoi(argv[++i]);
		else
			port = -1, i = argc;
	}
	if (port <= 0 || port > 65535 || !nups)
		BASELINE_DIE("usage: proxy_floor --port P --upstream PORT [--upstream PORT ...] [--coalesce US]");
	for (unsigned i = 0; i < nups; i++)
		if (!ups[i].sin_port)
			BASELINE_DIE("proxy_floor: bad upstream port");
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { /* two fds a client */
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	lfd = baseline_listen(port, 0);
	baseline_ring_init(&ring, RING_ENTRIES, "proxy_floor");
	baseline_arm_accept(&ring, lfd, UD_ACCEPT);
	for (;;)
		baseline_ring_pass(&ring, on_cqe, NULL, NULL, "proxy_floor");
}
