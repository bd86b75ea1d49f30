/*
 * Baseline: a libuv TCP echo server, written the idiomatic fast way.
 *
 *   uv_echo --port P
 *
 * uv_read_start hands libuv the connection's own buffer (no malloc per
 * read); what arrives is written back with uv_try_write, and only what
 * that leaves unsent goes through a uv_write request, during which the
 * connection stops reading (its buffer holds the pending bytes).
 */
#include <signal.h>
#include <uv.h>

#include "baseline.h"

struct conn {
	uv_tcp_t tcp; /* first: a handle pointer is a conn pointer */
	uv_write_t req;
	char buf[BASELINE_BUF];
};

static uv_loop_t *loop;

static void on_close(uv_handle_t *h)
{
	free(h); /* the conn */
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = (struct conn *)h;
	*buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	if (status < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_close);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = (struct conn *)s;
	if (nread == 0) /* EAGAIN */
		return;
	if (nread < 0) { /* UV_EOF or an error */
		uv_close((uv_handle_t *)s, on_close);
		return;
	}
	uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
	int n = uv_try_write(s, &b, 1);
	if (n == nread)
		return;
	if (n == UV_EAGAIN)
		n = 0;
	if (n < 0) {
		uv_close((uv_handle_t *)s, on_close);
		return;
	}
	/* the rest: stop reading until it is out */
	b = uv_buf_init(buf->base + n, (unsigned)(nread - n));
	uv_read_stop(s);
	c->req.data = c;
	if (uv_write(&c->req, s, &b, 1, on_written) < 0)
		uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *server, int status)
{
	if (status < 0) {
		fprintf(stderr, "uv_echo: connection: %s\n", uv_strerror(status));
		return;
	}
	struct conn *c = malloc(sizeof *c);
	if (!c)
		return;
	uv_tcp_init(loop, &c->tcp);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_close);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv)
{
	int port = baseline_port(argc, argv, "uv_echo");
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	uv_tcp_t server;
	uv_tcp_init(loop, &server);
	struct sockaddr_in a = baseline_addr(port);
	int rc = uv_tcp_bind(&server, (const struct sockaddr *)&a, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&server, BASELINE_BACKLOG, on_connection);
	if (rc < 0)
		BASELINE_DIE("uv_echo: listen on 127.0.0.1:%d: %s", port, uv_strerror(rc));
	return uv_run(loop, UV_RUN_DEFAULT);
}
