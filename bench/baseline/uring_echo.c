/*
 * Baseline, the floor: a minimal single-purpose liburing TCP echo server,
 * no runtime at all.
 *
 *   uring_echo --port P
 *
 * One ring, one thread.  A multishot accept; per connection a fixed buffer
 * and a recv -> send (-> send the rest) -> recv chain.  Everything queued
 * while handling a batch of completions goes to the kernel in the one
 * io_uring_submit_and_wait() that also waits for the next batch.
 * The ring is SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them (6.1+),
 * else COOP_TASKRUN, else plain; its fd is registered where possible.
 */
#include <signal.h>
#include <stdint.h>

#include "baseline_uring.h"

#define RING_ENTRIES 4096

enum { OP_RECV = 1, OP_SEND = 2, OP_CLOSE = 3 }; /* low bits of user_data */
#define UD_ACCEPT 0ull

struct conn {
	int fd;
	unsigned off, len; /* a send in flight covers buf[off..len) */
	char buf[BASELINE_BUF];
} __attribute__((aligned(8)));

static struct io_uring ring;
static int lfd;

static void post(struct conn *c, int op)
{
	struct io_uring_sqe *sqe = baseline_sqe(&ring);
	if (op == OP_RECV)
		io_uring_prep_recv(sqe, c->fd, c->buf, sizeof c->buf, 0);
	else if (op == OP_SEND)
		io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
	else
		io_uring_prep_close(sqe, c->fd);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | (uint64_t)op);
}

static void on_cqe(struct io_uring_cqe *cqe, void *arg)
{
	(void)arg;
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	int res = cqe->res;

	if (ud == UD_ACCEPT) {
		if (res >= 0) {
			struct conn *c = malloc(sizeof *c);
			if (!c) {
				close(res);
			} else {
				baseline_nodelay(res);
				c->fd = res;
				c->off = c->len = 0;
				post(c, OP_RECV);
			}
		} else if (res != -ECONNABORTED && res != -EINTR) {
			fprintf(stderr, "uring_echo: accept: %s\n", strerror(-res));
		}
		if (!(cqe->flags & IORING_CQE_F_MORE))
			/* the multishot ended (error or overflow) */
			baseline_arm_accept(&ring, lfd, UD_ACCEPT);
		return;
	}

	struct conn *c = (struct conn *)(uintptr_t)(ud & ~7ull);
	switch (ud & 7) {
	case OP_RECV:
		if (res == -EINTR || res == -EAGAIN) {
			post(c, OP_RECV);
		} else if (res <= 0) { /* EOF or error */
			post(c, OP_CLOSE);
		} else {
			c->off = 0;
			c->len = (unsigned)res;
			post(c, OP_SEND);
		}
		break;
	case OP_SEND:
		if (res == -EINTR || res == -EAGAIN) {
			post(c, OP_SEND);
		} else if (res < 0) {
			post(c, OP_CLOSE);
		} else if ((c->off += (unsigned)res) < c->len) {
			post(c, OP_SEND); /* partial send: the rest */
		} else {
			post(c, OP_RECV);
		}
		break;
	case OP_CLOSE:
		free(c);
		break;
	}
}

int main(int argc, char **argv)
{
	int port = baseline_port(argc, argv, "uring_echo");
	signal(SIGPIPE, SIG_IGN);
	lfd = baseline_listen(port, 0);
	baseline_ring_init(&ring, RING_ENTRIES, "uring_echo");
	baseline_arm_accept(&ring, lfd, UD_ACCEPT);
	for (;;)
		baseline_ring_pass(&ring, on_cqe, NULL, NULL, "uring_echo");
}
