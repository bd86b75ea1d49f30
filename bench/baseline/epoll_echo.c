/*
 * Baseline: a minimal single-threaded epoll TCP echo server.
 *
 *   epoll_echo --port P
 *
 * Level-triggered, non-blocking.  Per readiness event one read() and one
 * write() of what was read: epoll_wait + read + write per message is the
 * fewest syscalls plain epoll allows.  A partial write parks the rest in the
 * connection's buffer, stops reading (backpressure) and waits for EPOLLOUT.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "baseline.h"

struct conn {
	int fd;
	unsigned off, len; /* unsent bytes: buf[off..len) */
	char buf[BASELINE_BUF];
};

static int ep;

static void conn_close(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
	free(c);
}

static void set_interest(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		BASELINE_DIE("epoll_ctl MOD: %s", strerror(errno));
}

/* Write buf[off..len); returns 0 when all is sent or parked, -1 on error. */
static int flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t n = write(c->fd, c->buf + c->off, c->len - c->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		c->off += (unsigned)n;
	}
	c->off = c->len = 0;
	return 0;
}

static void on_readable(struct conn *c)
{
	ssize_t n;
	do
		n = read(c->fd, c->buf, sizeof c->buf);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) { /* EOF or error */
		conn_close(c);
		return;
	}
	c->off = 0;
	c->len = (unsigned)n;
	if (flush(c) < 0) {
		conn_close(c);
		return;
	}
	if (c->len) /* partial write: wait for room, stop reading */
		set_interest(c, EPOLLOUT);
}

static void on_writable(struct conn *c)
{
	if (flush(c) < 0) {
		conn_close(c);
		return;
	}
	if (!c->len)
		set_interest(c, EPOLLIN);
}

static void on_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				fprintf(stderr, "epoll_echo: accept: %s\n", strerror(errno));
			return; /* EAGAIN, or EMFILE & co: retried on the next event */
		}
		baseline_nodelay(fd);
		struct conn *c = malloc(sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->off = c->len = 0;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			fprintf(stderr, "epoll_echo: epoll_ctl ADD: %s\n", strerror(errno));
			conn_close(c);
		}
	}
}

int main(int argc, char **argv)
{
	int port = baseline_port(argc, argv, "epoll_echo");
	signal(SIGPIPE, SIG_IGN);
	int lfd = baseline_listen(port, SOCK_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		BASELINE_DIE("epoll_create1: %s", strerror(errno));
	/* the listener is the one entry whose data.ptr is NULL */
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
		BASELINE_DIE("epoll_ctl: %s", strerror(errno));

	struct epoll_event evs[512];
	for (;;) {
		int n = epoll_wait(ep, evs, 512, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			BASELINE_DIE("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c)
				on_accept(lfd);
			else if (c->len) /* waiting for EPOLLOUT (or an error) */
				on_writable(c);
			else /* EPOLLIN, EPOLLHUP, EPOLLERR: read tells which */
				on_readable(c);
		}
	}
}
