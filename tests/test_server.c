/*
 * Servers (weft/server.h): many concurrent echo clients over per-loop
 * SO_REUSEPORT listeners and one shared listener, ephemeral ports,
 * max_conns, idle timeouts, graceful shutdown (a slow response finishes, a
 * stuck one is cancelled after the grace), weft_server_wait, SIGTERM with
 * handle_signals, half-open and slow clients next to a good one, stats.
 *
 * docs/architecture.md rule 7: tasks and handlers record into structs and
 * atomics; the test asserts after weft_run returns.
 */
#include "weft_test.h"
#include "weft_test_io.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */


/* What the handlers saw (reset by each test). */
static _Atomic int h_started, h_finished, h_cancelled, h_timedout, h_aborted;

static void reset_counters(void)
{
	atomic_store(&h_started, 0);
	atomic_store(&h_finished, 0);
	atomic_store(&h_cancelled, 0);
	atomic_store(&h_aborted, 0);
	atomic_store(&h_timedout, 0);
}

static void note_end(ssize_t r)
{
	if (r == -ECANCELED)
		atomic_fetch_add(&h_cancelled, 1);
	else if (r == -ECONNABORTED)
		atomic_fetch_add(&h_aborted, 1);
	else if (r == -ETIMEDOUT)
		atomic_fetch_add(&h_timedout, 1);
	atomic_fetch_add(&h_finished, 1);
}

static void echo(weft_stream *s, void *arg)
{
	(void)arg;
	atomic_fetch_add(&h_started, 1);
	note_end(echo_all(s));
}

static int stats(const weft_server *srv, weft_server_stats *st)
{
	int r = weft_server_stats_get(srv, st);
	return r;
}

/* Start a server on 127.0.0.1, port 0; *a gets its address. */
static int start(weft_server **srv, const weft_server_config *cfg, weft_conn_fn fn, void *arg,
		 weft_sockaddr *a)
{
	weft_addr_ip(a, "127.0.0.1", 0);
	int r = weft_server_start(srv, NULL, a, cfg, fn, arg);
	if (r == 0)
		weft_addr_ip(a, "127.0.0.1", weft_server_port(*srv));
	return r;
}

/* Receive exactly n bytes within timeout_ns: n, 0 at EOF, -errno. */
static ssize_t recv_exact(int fd, void *buf, size_t n, uint64_t timeout_ns)
{
	weft_scope s;
	weft_scope_enter(&s, timeout_ns);
	size_t got = 0;
	ssize_t r = 0;
	while (got < n) {
		r = weft_recv(fd, (char *)buf + got, n - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	weft_scope_exit(&s);
	return got == n ? (ssize_t)n : r;
}

/* One request/response exchange with an echo server: 0 or -errno
 * (-EBADMSG when the echo differs). */
static int roundtrip(int fd, const void *msg, size_t n)
{
	char back[4096];
	if (n > sizeof back)
		return -EINVAL;
	ssize_t r = weft_send_all(fd, msg, n, 0, NULL);
	if (r < 0)
		return (int)r;
	r = recv_exact(fd, back, n, 5000 * MS);
	if (r != (ssize_t)n)
		return r < 0 ? (int)r : -EPIPE;
	return memcmp(back, msg, n) ? -EBADMSG : 0;
}

/* Wait (up to 3 s) until the server has no open connection. */
static uint64_t wait_idle(weft_server *srv)
{
	weft_server_stats st;
	for (int i = 0; i < 300; i++) {
		stats(srv, &st);
		if (!st.active)
			break;
		weft_sleep_ms(10);
	}
	return st.active;
}

/* ---------------------------------------------------------------------- */
/* many clients                                                            */
/* ---------------------------------------------------------------------- */

enum { CLIENTS = 200, ROUNDS = 5 };

struct many {
	bool shared;
	int start_rc;
	uint16_t port;
	weft_sockaddr addr;
	_Atomic int ok, failed, first_err;
	weft_server_stats st;
	uint64_t active_after;
	int shut_rc;
	unsigned loops_used; /* bitmask of loops the handlers ran on */
};

static _Atomic unsigned handler_loops;

static void echo_noting_loop(weft_stream *s, void *arg)
{
	int l = weft_loop_index();
	if (l >= 0 && l < 32)
		atomic_fetch_or(&handler_loops, 1u << l);
	echo(s, arg);
}

static void *many_client(void *arg)
{
	struct many *x = arg;
	uint32_t rng = (uint32_t)(uintptr_t)weft_task_id(weft_task_current()) * 2654435761u;
	int fd = weft_tcp_connect(&x->addr, 5000 * MS);
	int r = fd < 0 ? fd : 0;
	char msg[2048];
	for (int i = 0; i < ROUNDS && r == 0; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		size_t n = 1 + rng % sizeof msg;
		for (size_t k = 0; k < n; k++)
			msg[k] = (char)(rng >> (k % 24));
		r = roundtrip(fd, msg, n);
	}
	if (fd >= 0)
		close(fd);
	if (r == 0) {
		atomic_fetch_add(&x->ok, 1);
	} else {
		atomic_fetch_add(&x->failed, 1);
		int zero = 0;
		atomic_compare_exchange_strong(&x->first_err, &zero, r);
	}
	return NULL;
}

static void *many_main(void *arg)
{
	struct many *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.shared_listener = x->shared;
	/* and the other way to keep the connection's stream: in its frame */
	cfg.stream_in_frame = x->shared;
	weft_server *srv;
	if ((x->start_rc = start(&srv, &cfg, echo_noting_loop, NULL, &x->addr)) < 0)
		return NULL;
	x->port = weft_server_port(srv);
	weft_task *t[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		t[i] = go_pinned(many_client, x, WEFT_PIN_NONE);
	for (int i = 0; i < CLIENTS; i++)
		finish(t[i]);
	x->active_after = wait_idle(srv);
	stats(srv, &x->st);
	x->shut_rc = weft_server_shutdown(srv, cfg.grace_ns);
	weft_server_destroy(srv);
	return NULL;
}

static void many_clients(bool shared)
{
	reset_counters();
	atomic_store(&handler_loops, 0);
	struct many x = { .shared = shared };
	weft_test_run_loops(2, many_main, &x);
	print_message("%s: %d ok, %d failed (first %s); handlers on loops mask %#x\n",
		      shared ? "shared listener" : "SO_REUSEPORT", atomic_load(&x.ok),
		      atomic_load(&x.failed), weft_strerror(atomic_load(&x.first_err)),
		      atomic_load(&handler_loops));
	assert_int_equal(x.start_rc, 0);
	assert_int_not_equal(x.port, 0);
	assert_int_equal(atomic_load(&x.failed), 0);
	assert_int_equal(atomic_load(&x.ok), CLIENTS);
	assert_int_equal(x.st.accepted, CLIENTS);
	assert_int_equal(x.st.rejected, 0);
	assert_int_equal(x.st.accept_errors, 0);
	assert_int_equal(x.active_after, 0);
	assert_int_equal(x.st.active, 0);
	assert_int_equal(x.shut_rc, 0);
	assert_int_equal(atomic_load(&h_started), CLIENTS);
	assert_int_equal(atomic_load(&h_finished), CLIENTS);
}

static void test_many_clients_reuseport(void **state)
{
	(void)state;
	many_clients(false);
}

static void test_many_clients_shared_listener(void **state)
{
	(void)state;
	many_clients(true);
}

/* ---------------------------------------------------------------------- */
/* start arguments                                                         */
/* ---------------------------------------------------------------------- */

struct start_rec {
	int ok_rc, inuse_rc, bad_max, bad_limit, bad_reserved, bad_fn, bad_addr, bad_out;
	uint16_t port;
	int v6_rc;
	uint16_t v6_port;
	int v6_echo;
	int refused_after_destroy;
};

static void *start_main(void *arg)
{
	struct start_rec *x = arg;
	weft_sockaddr a;
	weft_server *srv, *other;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	if ((x->ok_rc = start(&srv, &cfg, echo, NULL, &a)) < 0)
		return NULL;
	x->port = weft_server_port(srv);
	/* The same port again: in use (different socket owner, so
	 * SO_REUSEPORT does not let it share: a plain listener holds it). */
	int plain = weft_tcp_listen(&a, 0, 0);
	x->inuse_rc = plain >= 0 ? 0 : plain;
	if (plain < 0) {
		/* the server's REUSEPORT listeners hold it; a non-REUSEPORT
		 * bind fails, as it should */
	} else {
		close(plain);
	}
	weft_server_config bad = cfg;
	bad.max_conns = 0;
	x->bad_max = weft_server_start(&other, NULL, &a, &bad, echo, NULL);
	bad = cfg;
	bad.stream_limit = 0;
	x->bad_limit = weft_server_start(&other, NULL, &a, &bad, echo, NULL);
	bad = cfg;
	bad.reserved[2] = 1;
	x->bad_reserved = weft_server_start(&other, NULL, &a, &bad, echo, NULL);
	x->bad_fn = weft_server_start(&other, NULL, &a, &cfg, NULL, NULL);
	x->bad_addr = weft_server_start(&other, NULL, NULL, &cfg, echo, NULL);
	x->bad_out = weft_server_start(NULL, NULL, &a, &cfg, echo, NULL);
	weft_server_shutdown(srv, 0);
	weft_server_destroy(srv);
	/* After destroy the port is closed. */
	int fd = weft_tcp_connect(&a, 1000 * MS);
	x->refused_after_destroy = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);
	/* IPv6 (when ::1 exists). */
	weft_sockaddr a6;
	weft_addr_ip(&a6, "::1", 0);
	x->v6_rc = weft_server_start(&srv, NULL, &a6, NULL, echo, NULL);
	if (x->v6_rc == 0) {
		x->v6_port = weft_server_port(srv);
		weft_addr_ip(&a6, "::1", x->v6_port);
		fd = weft_tcp_connect(&a6, 1000 * MS);
		x->v6_echo = fd < 0 ? fd : roundtrip(fd, "six", 3);
		if (fd >= 0)
			close(fd);
		weft_server_destroy(srv);
	}
	return NULL;
}

static void test_port0_and_bad_start_arguments(void **state)
{
	(void)state;
	reset_counters();
	struct start_rec x = { 0 };
	weft_test_run_loops(2, start_main, &x);
	assert_int_equal(x.ok_rc, 0);
	assert_int_not_equal(x.port, 0);
	assert_int_equal(x.inuse_rc, -EADDRINUSE);
	assert_int_equal(x.bad_max, -EINVAL);
	assert_int_equal(x.bad_limit, -EINVAL);
	assert_int_equal(x.bad_reserved, -EINVAL);
	assert_int_equal(x.bad_fn, -EINVAL);
	assert_int_equal(x.bad_addr, -EINVAL);
	assert_int_equal(x.bad_out, -EINVAL);
	assert_int_equal(x.refused_after_destroy, -ECONNREFUSED);
	if (x.v6_rc == -EADDRNOTAVAIL || x.v6_rc == -EAFNOSUPPORT) {
		print_message("::1 unavailable: IPv6 server part skipped\n");
	} else {
		assert_int_equal(x.v6_rc, 0);
		assert_int_not_equal(x.v6_port, 0);
		assert_int_equal(x.v6_echo, 0);
	}
}

/* ---------------------------------------------------------------------- */
/* max_conns                                                               */
/* ---------------------------------------------------------------------- */

struct maxc {
	int start_rc;
	int c1, c2, rt1, rt2;
	int c3;
	ssize_t c3_recv;
	uint64_t rejected;
	int c4, rt4;
	weft_server_stats st;
};

static void *maxc_main(void *arg)
{
	struct maxc *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.max_conns = 2;
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, &cfg, echo, NULL, &a)) < 0)
		return NULL;
	x->c1 = weft_tcp_connect(&a, 1000 * MS);
	x->c2 = weft_tcp_connect(&a, 1000 * MS);
	x->rt1 = x->c1 < 0 ? x->c1 : roundtrip(x->c1, "one", 3);
	x->rt2 = x->c2 < 0 ? x->c2 : roundtrip(x->c2, "two", 3);
	/* Both are being served: a third is accepted and closed at once. */
	x->c3 = weft_tcp_connect(&a, 1000 * MS);
	if (x->c3 >= 0) {
		char b[8];
		weft_send(x->c3, "three", 5, 0);
		x->c3_recv = recv_exact(x->c3, b, sizeof b, 2000 * MS);
		close(x->c3);
	}
	weft_server_stats st;
	stats(srv, &st);
	x->rejected = st.rejected;
	/* One leaves: a new client is served again. */
	if (x->c1 >= 0)
		close(x->c1);
	for (int i = 0; i < 100; i++) {
		stats(srv, &st);
		if (st.active < 2)
			break;
		weft_sleep_ms(10);
	}
	x->c4 = weft_tcp_connect(&a, 1000 * MS);
	x->rt4 = x->c4 < 0 ? x->c4 : roundtrip(x->c4, "four", 4);
	if (x->c4 >= 0)
		close(x->c4);
	if (x->c2 >= 0)
		close(x->c2);
	wait_idle(srv);
	stats(srv, &x->st);
	weft_server_destroy(srv);
	return NULL;
}

static void test_max_conns_rejects_extra(void **state)
{
	(void)state;
	reset_counters();
	struct maxc x = { 0 };
	weft_test_run_loops(2, maxc_main, &x);
	assert_int_equal(x.start_rc, 0);
	assert_true(x.c1 >= 0 && x.c2 >= 0 && x.c3 >= 0);
	assert_int_equal(x.rt1, 0);
	assert_int_equal(x.rt2, 0);
	assert_true(x.c3_recv == 0 || x.c3_recv == -ECONNRESET);
	assert_int_equal(x.rejected, 1);
	assert_int_equal(x.rt4, 0);
	assert_int_equal(x.st.accepted, 4);
	assert_int_equal(x.st.rejected, 1);
	assert_int_equal(x.st.active, 0);
	assert_int_equal(atomic_load(&h_started), 3);
}

/* ---------------------------------------------------------------------- */
/* idle timeout                                                            */
/* ---------------------------------------------------------------------- */

struct idle_rec {
	weft_sockaddr a;
	int start_rc;
	ssize_t silent_recv;
	uint64_t silent_ns;
	int chatty_err;
	int chatty_rounds;
};

static void *silent_client(void *arg)
{
	struct idle_rec *x = arg;
	int fd = weft_tcp_connect(&x->a, 1000 * MS);
	if (fd < 0) {
		x->silent_recv = fd;
		return NULL;
	}
	uint64_t t0 = weft_now_ns();
	char b[4];
	x->silent_recv = recv_exact(fd, b, 1, 3000 * MS);
	x->silent_ns = weft_now_ns() - t0;
	close(fd);
	return NULL;
}

/* Talks every 40 ms for 400 ms: never idle for the server's 250 ms (six
 * gaps: with 100 ms a loaded machine once woke it late enough to be cut). */
static void *chatty_client(void *arg)
{
	struct idle_rec *x = arg;
	int fd = weft_tcp_connect(&x->a, 1000 * MS);
	int r = fd < 0 ? fd : 0;
	for (int i = 0; i < 10 && r == 0; i++) {
		weft_sleep_ms(40);
		r = roundtrip(fd, "tick", 4);
		x->chatty_rounds += r == 0;
	}
	x->chatty_err = r;
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *idle_main(void *arg)
{
	struct idle_rec *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.idle_timeout_ns = 250 * MS;
	weft_server *srv;
	if ((x->start_rc = start(&srv, &cfg, echo, NULL, &x->a)) < 0)
		return NULL;
	weft_task *s = go_pinned(silent_client, x, WEFT_PIN_NONE);
	weft_task *c = go_pinned(chatty_client, x, WEFT_PIN_NONE);
	finish(s);
	finish(c);
	wait_idle(srv);
	weft_server_destroy(srv);
	return NULL;
}

static void test_idle_timeout_closes_silent_client(void **state)
{
	(void)state;
	reset_counters();
	struct idle_rec rec = { 0 };
	weft_test_run_loops(2, idle_main, &rec);
	struct idle_rec *x = &rec;
	print_message("silent client closed after %.0f ms\n", x->silent_ns / 1e6);
	assert_int_equal(x->start_rc, 0);
	assert_int_equal(x->silent_recv, 0); /* EOF from the server */
	assert_true(x->silent_ns >= 240 * MS && x->silent_ns < 2000 * MS);
	assert_int_equal(x->chatty_err, 0);
	assert_int_equal(x->chatty_rounds, 10);
	assert_int_equal(atomic_load(&h_timedout), 1);
}

/* A handler stuck writing to a client that never reads: write_timeout_ns
 * frees it (its drain fails), the close after it does not wait again, the
 * connection is closed and its fd released. */
static _Atomic int wto_drain_rc, wto_fd;
static _Atomic uint64_t wto_drain_ns;

static void flood_handler(weft_stream *s, void *arg)
{
	(void)arg;
	atomic_fetch_add(&h_started, 1);
	atomic_store(&wto_fd, weft_stream_fd(s));
	weft_sock_buffers(weft_stream_fd(s), 0, 4096);
	static const char chunk[16384];
	uint64_t t0 = weft_now_ns();
	int r = 0;
	for (int i = 0; i < 4096 && r == 0; i++) { /* 64 MiB at most */
		ssize_t w = weft_stream_write(s, chunk, sizeof chunk);
		r = w < 0 ? (int)w : weft_stream_drain(s);
	}
	atomic_store(&wto_drain_ns, weft_now_ns() - t0);
	atomic_store(&wto_drain_rc, r);
	note_end(r);
}

struct wto_rec {
	int start_rc;
	int connect_fd;
	uint64_t active_after;
	uint64_t freed_ns;
	int fd_after;
	ssize_t client_end; /* what the client reads once it does: EOF/reset */
	weft_sockaddr a;
};

static void *wto_main(void *arg)
{
	struct wto_rec *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.write_timeout_ns = 150 * MS;
	weft_server *srv;
	if ((x->start_rc = start(&srv, &cfg, flood_handler, NULL, &x->a)) < 0)
		return NULL;
	int fd = x->connect_fd = weft_tcp_connect(&x->a, 1000 * MS);
	if (fd >= 0) {
		weft_sock_buffers(fd, 4096, 0); /* and never read, for now */
		uint64_t t0 = weft_now_ns();
		while (!atomic_load(&h_finished) && weft_now_ns() - t0 < 5000 * MS)
			weft_sleep_ms(5);
		x->active_after = wait_idle(srv);
		x->freed_ns = weft_now_ns() - t0;
		int sfd = atomic_load(&wto_fd);
		x->fd_after = fcntl(sfd, F_GETFD) < 0 ? -errno : 0;
		/* Now read: a prefix of the flood, then the end. */
		char *buf = malloc(65536); /* not on a task's stack */
		ssize_t r = -ENOMEM;
		weft_scope sc;
		weft_scope_enter(&sc, 3000 * MS);
		while (buf && (r = weft_recv(fd, buf, 65536, 0)) > 0)
			;
		free(buf);
		weft_scope_exit(&sc);
		x->client_end = r;
		close(fd);
	}
	weft_server_destroy(srv);
	return NULL;
}

static void test_write_timeout_frees_stuck_handler(void **state)
{
	(void)state;
	reset_counters();
	struct wto_rec rec = { 0 };
	weft_test_run_loops(2, wto_main, &rec);
	print_message("handler freed after %.0f ms (drain gave up after %.0f ms)\n",
		      rec.freed_ns / 1e6, atomic_load(&wto_drain_ns) / 1e6);
	assert_int_equal(rec.start_rc, 0);
	assert_true(rec.connect_fd >= 0);
	assert_int_equal(atomic_load(&wto_drain_rc), -ETIMEDOUT);
	assert_int_equal(atomic_load(&h_timedout), 1);
	assert_true(atomic_load(&wto_drain_ns) >= 140 * MS);
	assert_true(atomic_load(&wto_drain_ns) < 2000 * MS);
	assert_int_equal(rec.active_after, 0);
	assert_int_equal(rec.fd_after, -EBADF);
	assert_true(rec.client_end == 0 || rec.client_end == -ECONNRESET);
}

/* ---------------------------------------------------------------------- */
/* graceful shutdown                                                       */
/* ---------------------------------------------------------------------- */

/* Reads one line, then answers after `delay` ms (0: never). */
static void slow_handler(weft_stream *s, void *arg)
{
	unsigned delay = (unsigned)U(arg);
	atomic_fetch_add(&h_started, 1);
	const char *line;
	ssize_t r = weft_stream_read_line(s, &line);
	if (r > 0) {
		r = weft_sleep_ms(delay ? delay : 1000000);
		if (r == 0) {
			/* a response bigger than a socket buffer */
			static char resp[256 * 1024];
			memset(resp, 'r', sizeof resp);
			resp[sizeof resp - 1] = '\n';
			weft_stream_write(s, resp, sizeof resp);
			r = weft_stream_flush(s);
		}
	}
	note_end(r);
}

struct grace_rec {
	int start_rc;
	int shut_rc;
	uint64_t shut_ns;
	ssize_t client_got;
	uint64_t client_ns;
	int connect_fd;
	weft_sockaddr a;
	int wait_rc;
};

static void *grace_client(void *arg)
{
	struct grace_rec *x = arg;
	int fd = weft_tcp_connect(&x->a, 1000 * MS);
	x->connect_fd = fd;
	if (fd < 0)
		return NULL;
	uint64_t t0 = weft_now_ns();
	weft_send_all(fd, "request\n", 8, 0, NULL);
	static char buf[256 * 1024 + 1];
	x->client_got = recv_exact(fd, buf, 256 * 1024, 5000 * MS);
	if (x->client_got > 0 && recv_exact(fd, buf, 1, 5000 * MS) != 0)
		x->client_got = -EPROTO; /* expected EOF after the response */
	x->client_ns = weft_now_ns() - t0;
	close(fd);
	return NULL;
}

static void *grace_main_with(struct grace_rec *x, unsigned delay_ms, uint64_t grace)
{
	weft_server *srv;
	if ((x->start_rc = start(&srv, NULL, slow_handler, P(delay_ms), &x->a)) < 0)
		return NULL;
	weft_task *c = go_pinned(grace_client, x, WEFT_PIN_NONE);
	weft_sleep_ms(50); /* the request is in; the handler sleeps */
	uint64_t t0 = weft_now_ns();
	x->shut_rc = weft_server_shutdown(srv, grace);
	x->shut_ns = weft_now_ns() - t0;
	x->wait_rc = weft_server_wait(srv); /* already down: at once */
	finish(c);
	weft_server_destroy(srv);
	return NULL;
}

static void *grace_finishes_main(void *arg)
{
	return grace_main_with(arg, 250, 3000 * MS);
}

static void test_shutdown_lets_slow_response_finish(void **state)
{
	(void)state;
	reset_counters();
	struct grace_rec x = { 0 };
	weft_test_run_loops(2, grace_finishes_main, &x);
	print_message("shutdown took %.0f ms (response due ~200 ms after it began)\n",
		      x.shut_ns / 1e6);
	assert_int_equal(x.start_rc, 0);
	assert_true(x.connect_fd >= 0);
	assert_int_equal(x.shut_rc, 0);
	assert_true(x.shut_ns >= 150 * MS && x.shut_ns < 2500 * MS);
	assert_int_equal(x.client_got, 256 * 1024); /* the whole response, then EOF */
	assert_int_equal(x.wait_rc, 0);
	assert_int_equal(atomic_load(&h_finished), 1);
	assert_int_equal(atomic_load(&h_cancelled), 0);
}

static void *grace_cancels_main(void *arg)
{
	return grace_main_with(arg, 0, 150 * MS);
}

static void test_shutdown_cancels_after_grace(void **state)
{
	(void)state;
	reset_counters();
	struct grace_rec x = { 0 };
	weft_test_run_loops(2, grace_cancels_main, &x);
	print_message("shutdown took %.0f ms with a 150 ms grace\n", x.shut_ns / 1e6);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.shut_rc, 0);
	assert_true(x.shut_ns >= 140 * MS && x.shut_ns < 2000 * MS);
	assert_int_equal(x.client_got, 0); /* closed without a response */
	assert_int_equal(x.wait_rc, 0);
	assert_int_equal(atomic_load(&h_started), 1);
	assert_int_equal(atomic_load(&h_cancelled), 1);
	assert_int_equal(atomic_load(&h_finished), 1);
}

/* ---------------------------------------------------------------------- */
/* shutdown reaches the handlers; close_clients, abort_clients             */
/* ---------------------------------------------------------------------- */

static _Atomic int h_shutdown; /* handlers whose read returned -ESHUTDOWN */

/* Line echo: read a line, answer it, until the read fails. */
static void line_echo(weft_stream *s, void *arg)
{
	(void)arg;
	atomic_fetch_add(&h_started, 1);
	ssize_t r;
	const char *line;
	while ((r = weft_stream_read_line(s, &line)) > 0) {
		weft_stream_write(s, line, (size_t)r);
		if ((r = weft_stream_drain(s)) < 0)
			break;
	}
	if (r == -ESHUTDOWN)
		atomic_fetch_add(&h_shutdown, 1);
	note_end(r);
}

enum { IDLE_CLIENTS = 20 };

struct idle_shut {
	bool multishot;
	int start_rc, shut_rc, ok, eof;
	uint64_t shut_ns;
	bool closing_before, closing_after;
};

/* 20 clients, each after one exchange, idle: shutdown with a 5 s grace
 * must take milliseconds, every handler seeing -ESHUTDOWN. */
static void *idle_shut_main(void *arg)
{
	struct idle_shut *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.multishot_recv = x->multishot;
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, &cfg, line_echo, NULL, &a)) < 0)
		return NULL;
	int fds[IDLE_CLIENTS];
	for (int i = 0; i < IDLE_CLIENTS; i++) {
		fds[i] = weft_tcp_connect(&a, 1000 * MS);
		x->ok += fds[i] >= 0 && roundtrip(fds[i], "hi\n", 3) == 0;
	}
	x->closing_before = weft_server_closing(srv);
	uint64_t t0 = weft_now_ns();
	x->shut_rc = weft_server_shutdown(srv, 5000 * MS);
	x->shut_ns = weft_now_ns() - t0;
	x->closing_after = weft_server_closing(srv);
	for (int i = 0; i < IDLE_CLIENTS; i++) {
		char c;
		x->eof += fds[i] >= 0 && recv_exact(fds[i], &c, 1, 1000 * MS) == 0;
		if (fds[i] >= 0)
			close(fds[i]);
	}
	weft_server_destroy(srv);
	return NULL;
}

static void test_shutdown_ends_idle_connections_at_once(void **state)
{
	(void)state;
	for (int ms = 0; ms < 2; ms++) {
		reset_counters();
		atomic_store(&h_shutdown, 0);
		struct idle_shut x = { .multishot = ms };
		weft_test_run_loops(2, idle_shut_main, &x);
		print_message("%s: shutdown with %d idle clients took %.1f ms (grace 5 s)\n",
			      ms ? "multishot" : "plain", IDLE_CLIENTS, x.shut_ns / 1e6);
		assert_int_equal(x.start_rc, 0);
		assert_int_equal(x.ok, IDLE_CLIENTS);
		assert_false(x.closing_before);
		assert_true(x.closing_after);
		assert_int_equal(x.shut_rc, 0);
		assert_true(x.shut_ns < 1000 * MS);
		assert_int_equal(x.eof, IDLE_CLIENTS);
		assert_int_equal(atomic_load(&h_shutdown), IDLE_CLIENTS);
		assert_int_equal(atomic_load(&h_cancelled), 0);
	}
}

/* A request in progress when shutdown begins is served; the handler's
 * next read ends it; shutdown takes about as long as the request. */
struct mid_shut {
	int start_rc, shut_rc;
	uint64_t shut_ns;
	ssize_t got, eof;
	char reply[16];
	weft_server *srv;
};

static void *mid_shutter(void *arg)
{
	struct mid_shut *x = arg;
	uint64_t t0 = weft_now_ns();
	x->shut_rc = weft_server_shutdown(x->srv, 5000 * MS);
	x->shut_ns = weft_now_ns() - t0;
	return NULL;
}

static void *mid_shut_main(void *arg)
{
	struct mid_shut *x = arg;
	weft_sockaddr a;
	if ((x->start_rc = start(&x->srv, NULL, line_echo, NULL, &a)) < 0)
		return NULL;
	int fd = weft_tcp_connect(&a, 1000 * MS);
	if (fd < 0)
		goto out;
	weft_send_all(fd, "hal", 3, 0, NULL);
	weft_sleep_ms(50); /* the handler waits for the rest of its line */
	weft_task *t = go_pinned(mid_shutter, x, WEFT_PIN_NONE);
	weft_sleep_ms(150);
	weft_send_all(fd, "f\n", 2, 0, NULL);
	x->got = recv_exact(fd, x->reply, 5, 2000 * MS);
	char c;
	x->eof = recv_exact(fd, &c, 1, 2000 * MS);
	finish(t);
	close(fd);
out:
	weft_server_destroy(x->srv);
	return NULL;
}

static void test_shutdown_serves_request_in_progress(void **state)
{
	(void)state;
	reset_counters();
	atomic_store(&h_shutdown, 0);
	struct mid_shut x = { 0 };
	weft_test_run_loops(2, mid_shut_main, &x);
	print_message("shutdown took %.0f ms (the request completed ~150 ms in)\n",
		      x.shut_ns / 1e6);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.got, 5);
	assert_memory_equal(x.reply, "half\n", 5);
	assert_int_equal(x.eof, 0);
	assert_int_equal(x.shut_rc, 0);
	assert_true(x.shut_ns >= 100 * MS && x.shut_ns < 2500 * MS);
	assert_int_equal(atomic_load(&h_shutdown), 1);
	assert_int_equal(atomic_load(&h_cancelled), 0);
}

/* close_clients: every open connection ends (idle or halfway through a
 * line), the server keeps serving new ones. */
struct close_cl {
	int start_rc, rc, bad_rc, ok_after, eof;
	uint64_t active_after;
	bool closing;
};

static void *close_clients_main(void *arg)
{
	struct close_cl *x = arg;
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, NULL, line_echo, NULL, &a)) < 0)
		return NULL;
	int fds[4];
	for (int i = 0; i < 4; i++) {
		fds[i] = weft_tcp_connect(&a, 1000 * MS);
		if (fds[i] >= 0)
			roundtrip(fds[i], "x\n", 2);
	}
	if (fds[3] >= 0)
		weft_send_all(fds[3], "abc", 3, 0, NULL); /* halfway through a line */
	weft_sleep_ms(30);
	x->bad_rc = weft_server_close_clients(NULL);
	x->rc = weft_server_close_clients(srv);
	x->active_after = wait_idle(srv);
	for (int i = 0; i < 4; i++) {
		char c;
		x->eof += fds[i] >= 0 && recv_exact(fds[i], &c, 1, 1000 * MS) == 0;
		if (fds[i] >= 0)
			close(fds[i]);
	}
	x->closing = weft_server_closing(srv);
	int fd = weft_tcp_connect(&a, 1000 * MS);
	x->ok_after = fd >= 0 && roundtrip(fd, "again\n", 6) == 0;
	if (fd >= 0)
		close(fd);
	weft_server_shutdown(srv, 1000 * MS);
	weft_server_destroy(srv);
	return NULL;
}

static void test_close_clients_keeps_serving(void **state)
{
	(void)state;
	reset_counters();
	atomic_store(&h_shutdown, 0);
	struct close_cl x = { 0 };
	weft_test_run_loops(2, close_clients_main, &x);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.bad_rc, -EINVAL);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.active_after, 0);
	assert_int_equal(x.eof, 4);
	assert_false(x.closing);
	assert_true(x.ok_after);
	/* the 4, and perhaps the later one (unless its client's FIN came
	 * first) */
	assert_true(atomic_load(&h_shutdown) >= 4);
	assert_int_equal(atomic_load(&h_cancelled), 0);
}

/* abort_clients: a handler stuck writing to a client that does not read,
 * and an idle one, are cancelled; their clients see a reset, not an end
 * of input; the server keeps serving. */
static void flood(weft_stream *s, void *arg)
{
	(void)arg;
	atomic_fetch_add(&h_started, 1);
	const char *line;
	ssize_t r = weft_stream_read_line(s, &line);
	if (r > 0 && line[0] == 'f') {
		static char big[1 << 20];
		for (int i = 0; i < 16 && r >= 0; i++) {
			weft_stream_write(s, big, sizeof big);
			r = weft_stream_drain(s);
		}
	} else if (r > 0) {
		r = weft_stream_read_line(s, &line);
	}
	note_end(r);
}

struct abort_cl {
	int start_rc, rc, ok_after;
	ssize_t end[2];
	uint64_t active_after;
};

/* Read until the connection ends: 0 (FIN) or -errno (a reset). */
static ssize_t read_to_end(int fd)
{
	static char buf[64 * 1024];
	weft_scope s;
	weft_scope_enter(&s, 3000 * MS);
	ssize_t r;
	while ((r = weft_recv(fd, buf, sizeof buf, 0)) > 0)
		;
	weft_scope_exit(&s);
	return r;
}

static void *abort_clients_main(void *arg)
{
	struct abort_cl *x = arg;
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, NULL, flood, NULL, &a)) < 0)
		return NULL;
	int fds[2];
	for (int i = 0; i < 2; i++) {
		fds[i] = weft_tcp_connect(&a, 1000 * MS);
		if (fds[i] >= 0)
			weft_send_all(fds[i], i ? "idle\n" : "flood\n", i ? 5 : 6, 0, NULL);
	}
	weft_sleep_ms(100); /* the flood fills the socket buffers and waits */
	x->rc = weft_server_abort_clients(srv);
	x->active_after = wait_idle(srv);
	for (int i = 0; i < 2; i++) {
		x->end[i] = fds[i] >= 0 ? read_to_end(fds[i]) : fds[i];
		if (fds[i] >= 0)
			close(fds[i]);
	}
	int fd = weft_tcp_connect(&a, 1000 * MS);
	if (fd >= 0) {
		weft_send_all(fd, "x\n", 2, 0, NULL);
		shutdown(fd, SHUT_WR); /* flood()'s second read: end of input */
	}
	x->ok_after = fd >= 0 && read_to_end(fd) == 0; /* a FIN, not a reset */
	if (fd >= 0)
		close(fd);
	weft_server_shutdown(srv, 0);
	weft_server_destroy(srv);
	return NULL;
}

static void test_abort_clients_resets(void **state)
{
	(void)state;
	reset_counters();
	struct abort_cl x = { 0 };
	weft_test_run_loops(2, abort_clients_main, &x);
	print_message("clients saw %zd and %zd\n", x.end[0], x.end[1]);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.active_after, 0);
	assert_int_equal(x.end[0], -ECONNRESET);
	assert_int_equal(x.end[1], -ECONNRESET);
	/* Cancelled, or stopped by the reset (weft_stream_abort) first. */
	assert_int_equal(atomic_load(&h_cancelled) + atomic_load(&h_aborted), 2);
	assert_true(x.ok_after);
}

/* A handler aborts its own stream with megabytes queued: the client sees a
 * reset, the handler's later stream calls fail with -ECONNABORTED, the
 * server's close after it only frees (the fd goes, the server serves on). */
struct h_abort {
	ssize_t write_rc, read_rc;
	int abort_rc, drain_rc;
};
static struct h_abort h_ab;

static void abort_handler(weft_stream *s, void *arg)
{
	(void)arg;
	const char *line;
	if (weft_stream_read_line(s, &line) <= 0)
		return;
	static char big[4u << 20];
	weft_stream_write(s, big, sizeof big);
	h_ab.abort_rc = weft_stream_abort(s);
	h_ab.write_rc = weft_stream_write(s, "x", 1);
	h_ab.drain_rc = weft_stream_drain(s);
	h_ab.read_rc = weft_stream_read_line(s, &line);
}

struct abort_h {
	int start_rc;
	ssize_t end;
	size_t got;
	uint64_t active_after;
};

static void *abort_handler_main(void *arg)
{
	struct abort_h *x = arg;
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, NULL, abort_handler, NULL, &a)) < 0)
		return NULL;
	int fd = weft_tcp_connect(&a, 1000 * MS);
	x->end = fd;
	if (fd >= 0) {
		weft_send_all(fd, "go\n", 3, 0, NULL);
		weft_sleep_ms(50); /* the handler queues and aborts meanwhile */
		static char buf[64 * 1024];
		weft_scope sc;
		weft_scope_enter(&sc, 3000 * MS);
		while ((x->end = weft_recv(fd, buf, sizeof buf, 0)) > 0)
			x->got += (size_t)x->end;
		weft_scope_exit(&sc);
		close(fd);
	}
	x->active_after = wait_idle(srv);
	weft_server_shutdown(srv, 0);
	weft_server_destroy(srv);
	return NULL;
}

static void test_handler_abort_resets(void **state)
{
	(void)state;
	struct abort_h x = { 0 };
	memset(&h_ab, 0, sizeof h_ab);
	weft_test_run_loops(2, abort_handler_main, &x);
	print_message("client read %zu bytes, then %s\n", x.got, weft_strerror((int)x.end));
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.end, -ECONNRESET);
	assert_true(x.got < (4u << 20));
	assert_int_equal(h_ab.abort_rc, 0);
	assert_int_equal(h_ab.write_rc, -ECONNABORTED);
	assert_int_equal(h_ab.drain_rc, -ECONNABORTED);
	assert_int_equal(h_ab.read_rc, -ECONNABORTED);
	assert_int_equal(x.active_after, 0);
}

/* A proxy handler: the server's stream copied both ways to an upstream
 * connection; the client's half-close reaches upstream, whose reply and
 * end of input come back. */
struct proxy_h {
	weft_sockaddr up;
	int rc;
	weft_stream_copied out;
	size_t up_got;
	int start_rc, up_fd;
	char reply[64];
	ssize_t reply_len;
};

static void proxy_handler(weft_stream *s, void *arg)
{
	struct proxy_h *x = arg;
	int fd = weft_tcp_connect(&x->up, 1000 * MS);
	weft_stream *up;
	if (fd < 0 || weft_stream_open(&up, fd, NULL) < 0) {
		x->rc = fd < 0 ? fd : -ENOMEM;
		return;
	}
	weft_stream_copy_config cfg;
	weft_stream_copy_config_init(&cfg);
	cfg.idle_timeout_ns = 2000 * MS;
	x->rc = weft_stream_copy_bidirectional(s, up, &cfg, &x->out);
	weft_stream_close(up);
}

/* Upstream: read to the end, then answer with the count. */
static void *upstream_main(void *arg)
{
	struct proxy_h *x = arg;
	int fd = weft_accept(x->up_fd, NULL, NULL, 0);
	if (fd < 0)
		return NULL;
	char buf[16384];
	ssize_t r;
	while ((r = weft_recv(fd, buf, sizeof buf, 0)) > 0)
		x->up_got += (size_t)r;
	int n = snprintf(buf, sizeof buf, "got %zu\n", x->up_got);
	weft_send_all(fd, buf, (size_t)n, 0, NULL);
	close(fd);
	return NULL;
}

static void *proxy_handler_main(void *arg)
{
	struct proxy_h *x = arg;
	weft_addr_ip(&x->up, "127.0.0.1", 0);
	x->up_fd = weft_tcp_listen(&x->up, 4, 0);
	weft_sock_local(x->up_fd, &x->up);
	weft_task *u = go_pinned(upstream_main, x, WEFT_PIN_NONE);
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, NULL, proxy_handler, x, &a)) < 0)
		return NULL;
	int fd = weft_tcp_connect(&a, 1000 * MS);
	if (fd >= 0) {
		static char big[1u << 20];
		weft_send_all(fd, big, sizeof big, 0, NULL);
		shutdown(fd, SHUT_WR);
		x->reply_len = recv_exact(fd, x->reply, sizeof x->reply - 1, 3000 * MS);
		close(fd);
	}
	finish(u);
	close(x->up_fd);
	wait_idle(srv);
	weft_server_shutdown(srv, 0);
	weft_server_destroy(srv);
	return NULL;
}

static void test_handler_proxies_with_copy(void **state)
{
	(void)state;
	struct proxy_h x = { 0 };
	weft_test_run_loops(2, proxy_handler_main, &x);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.up_got, 1u << 20);
	assert_int_equal(x.out.a_to_b, 1u << 20);
	assert_int_equal(x.out.b_to_a, strlen("got 1048576\n"));
	assert_int_equal(x.reply_len, 0); /* the reply, then end of input */
	assert_string_equal(x.reply, "got 1048576\n");
}

/* A graceful shutdown during a download through a proxy handler: the
 * client's direction stops (its input ended), the download finishes
 * within the grace period and the copy returns -ESHUTDOWN. */
enum { DL_CHUNK = 16 * 1024, DL_CHUNKS = 12 };

static void *upstream_download(void *arg)
{
	struct proxy_h *x = arg;
	int fd = weft_accept(x->up_fd, NULL, NULL, 0);
	if (fd < 0)
		return NULL;
	char buf[DL_CHUNK];
	memset(buf, 'd', sizeof buf);
	for (int i = 0; i < DL_CHUNKS; i++) {
		weft_send_all(fd, buf, sizeof buf, 0, NULL);
		weft_sleep_ms(20);
	}
	close(fd);
	return NULL;
}

struct dl_client {
	int fd;
	size_t got;
	ssize_t end;
};

static void *dl_client_main(void *arg)
{
	struct dl_client *c = arg;
	char buf[16384];
	weft_scope sc;
	weft_scope_enter(&sc, 5000 * MS);
	while ((c->end = weft_recv(c->fd, buf, sizeof buf, 0)) > 0)
		c->got += (size_t)c->end;
	weft_scope_exit(&sc);
	return NULL;
}

struct proxy_dl {
	struct proxy_h h;
	struct dl_client c;
	int shutdown_rc;
	uint64_t shutdown_ns;
};

static void *proxy_download_main(void *arg)
{
	struct proxy_dl *x = arg;
	weft_addr_ip(&x->h.up, "127.0.0.1", 0);
	x->h.up_fd = weft_tcp_listen(&x->h.up, 4, 0);
	weft_sock_local(x->h.up_fd, &x->h.up);
	weft_task *u = go_pinned(upstream_download, &x->h, WEFT_PIN_NONE);
	weft_server *srv;
	weft_sockaddr a;
	if ((x->h.start_rc = start(&srv, NULL, proxy_handler, &x->h, &a)) < 0)
		return NULL;
	x->c.fd = weft_tcp_connect(&a, 1000 * MS);
	weft_task *c = go_pinned(dl_client_main, &x->c, WEFT_PIN_NONE);
	weft_sleep_ms(60); /* the download is under way */
	uint64_t t0 = weft_now_ns();
	x->shutdown_rc = weft_server_shutdown(srv, 3000 * MS);
	x->shutdown_ns = weft_now_ns() - t0;
	finish(c);
	finish(u);
	close(x->c.fd);
	close(x->h.up_fd);
	weft_server_destroy(srv);
	return NULL;
}

static void test_handler_proxy_download_survives_shutdown(void **state)
{
	(void)state;
	struct proxy_dl x = { 0 };
	weft_test_run_loops(2, proxy_download_main, &x);
	print_message("shutdown took %.0f ms; the client got %zu bytes, then %zd; copy: %s\n",
		      x.shutdown_ns / 1e6, x.c.got, x.c.end, weft_strerror(x.h.rc));
	assert_int_equal(x.h.start_rc, 0);
	assert_int_equal(x.shutdown_rc, 0);
	assert_int_equal(x.c.got, DL_CHUNK * DL_CHUNKS);
	assert_int_equal(x.c.end, 0);
	assert_int_equal(x.h.rc, -ESHUTDOWN);
	assert_int_equal(x.h.out.b_to_a, DL_CHUNK * DL_CHUNKS);
	assert_int_equal(x.h.out.a_to_b, 0);
	assert_true(x.shutdown_ns < 2000 * MS);
}

/* ---------------------------------------------------------------------- */
/* weft_server_wait                                                        */
/* ---------------------------------------------------------------------- */

struct wait_rec {
	weft_server *srv;
	int start_rc;
	int wait_rc, shut_rc;
	uint64_t waited_ns;
};

static void *waiter(void *arg)
{
	struct wait_rec *x = arg;
	uint64_t t0 = weft_now_ns();
	x->wait_rc = weft_server_wait(x->srv);
	x->waited_ns = weft_now_ns() - t0;
	return NULL;
}

static void *stopper(void *arg)
{
	struct wait_rec *x = arg;
	weft_sleep_ms(60);
	x->shut_rc = weft_server_shutdown(x->srv, 5000 * MS); /* the default grace */
	return NULL;
}

static void *wait_main(void *arg)
{
	struct wait_rec *x = arg;
	weft_sockaddr a;
	if ((x->start_rc = start(&x->srv, NULL, echo, NULL, &a)) < 0)
		return NULL;
	weft_task *w = go_pinned(waiter, x, WEFT_PIN_NONE);
	weft_task *s = go_pinned(stopper, x, WEFT_PIN_NONE);
	finish(w);
	finish(s);
	weft_server_destroy(x->srv);
	return NULL;
}

static void *thread_waiter(void *arg)
{
	waiter(arg);
	return NULL;
}

static void test_wait_returns_after_shutdown(void **state)
{
	(void)state;
	struct wait_rec x = { 0 };
	weft_test_run_loops(2, wait_main, &x);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.wait_rc, 0);
	assert_int_equal(x.shut_rc, 0);
	assert_true(x.waited_ns >= 50 * MS);

	/* The same from foreign threads: start, wait and shut down outside
	 * any task. */
	struct wait_rec y = { 0 };
	weft_runtime *rt = start_rt(2);
	weft_sockaddr a;
	weft_addr_ip(&a, "127.0.0.1", 0);
	assert_int_equal(weft_server_start(&y.srv, rt, &a, NULL, echo, NULL), 0);
	assert_int_not_equal(weft_server_port(y.srv), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, thread_waiter, &y), 0);
	msleep(60);
	assert_int_equal(weft_server_shutdown(y.srv, 5000 * MS), 0);
	pthread_join(th, NULL);
	assert_int_equal(y.wait_rc, 0);
	assert_true(y.waited_ns >= 50 * MS);
	weft_server_destroy(y.srv);
	weft_runtime_destroy(rt);
}

/* ---------------------------------------------------------------------- */
/* signals                                                                 */
/* ---------------------------------------------------------------------- */

struct sig_rec {
	int start_rc;
	bool handler_installed;
	int kill_rc;
	int wait_rc;
	uint64_t wait_ns;
	int echo_before;
};

static void *sig_main(void *arg)
{
	struct sig_rec *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.handle_signals = true;
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, &cfg, echo, NULL, &a)) < 0)
		return NULL;
	int fd = weft_tcp_connect(&a, 1000 * MS);
	x->echo_before = fd < 0 ? fd : roundtrip(fd, "sig", 3);
	if (fd >= 0)
		close(fd);
	/* Only signal once weft's handler is in place (the default action
	 * would end the process). */
	for (int i = 0; i < 300 && !x->handler_installed; i++) {
		struct sigaction sa;
		sigaction(SIGTERM, NULL, &sa);
		x->handler_installed = sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
		if (!x->handler_installed)
			weft_sleep_ms(10);
	}
	if (!x->handler_installed)
		goto out;
	uint64_t t0 = weft_now_ns();
#ifdef __SANITIZE_THREAD__
	/* TSan runs a handler only when the receiving thread next enters an
	 * intercepted call; a thread parked in a raw io_uring_enter or futex
	 * may never do so.  Direct it at this loop thread, which is running. */
	x->kill_rc = pthread_kill(pthread_self(), SIGTERM);
#else
	x->kill_rc = kill(getpid(), SIGTERM); /* process-directed */
#endif
	weft_scope s;
	weft_scope_enter(&s, 5000 * MS);
	x->wait_rc = weft_server_wait(srv);
	weft_scope_exit(&s);
	x->wait_ns = weft_now_ns() - t0;
out:
	weft_server_destroy(srv);
	return NULL;
}

static void test_sigterm_starts_shutdown(void **state)
{
	(void)state;
	reset_counters();
	struct sig_rec x = { 0 };
	weft_test_run_loops(2, sig_main, &x);
	print_message("SIGTERM to server down: %.1f ms\n", x.wait_ns / 1e6);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.echo_before, 0);
	assert_true(x.handler_installed);
	assert_int_equal(x.kill_rc, 0);
	assert_int_equal(x.wait_rc, 0);
	assert_true(x.wait_ns < 2000 * MS);
}

/* ---------------------------------------------------------------------- */
/* half-open and slow clients next to a good one                           */
/* ---------------------------------------------------------------------- */

enum { HALF_OPEN = 100, SLOW = 20 };

struct flood {
	int start_rc;
	weft_sockaddr a;
	int half_fd[HALF_OPEN];
	_Atomic int half_closed_by_server;
	_Atomic bool stop;
	_Atomic int slow_ok, slow_err;
	int good_err;
	uint64_t good_worst_ns;
	int good_rounds;
	weft_server_stats st;
};

/* One byte every 50 ms until told to stop. */
static void *slow_client(void *arg)
{
	struct flood *x = arg;
	int fd = weft_tcp_connect(&x->a, 2000 * MS);
	if (fd < 0) {
		atomic_fetch_add(&x->slow_err, 1);
		return NULL;
	}
	int r = 0;
	while (!atomic_load(&x->stop) && r == 0) {
		weft_sleep_ms(50);
		r = roundtrip(fd, "s", 1);
	}
	atomic_fetch_add(r == 0 ? &x->slow_ok : &x->slow_err, 1);
	close(fd);
	return NULL;
}

/* A half-open client's fate: EOF from the idle server side. */
struct half_watch {
	struct flood *x;
	int fd;
};

static void *half_open_watch(void *arg)
{
	struct half_watch *w = arg;
	char b;
	if (recv_exact(w->fd, &b, 1, 3000 * MS) == 0)
		atomic_fetch_add(&w->x->half_closed_by_server, 1);
	return NULL;
}

static void *flood_main(void *arg)
{
	struct flood *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.idle_timeout_ns = 300 * MS;
	weft_server *srv;
	if ((x->start_rc = start(&srv, &cfg, echo, NULL, &x->a)) < 0)
		return NULL;
	for (int i = 0; i < HALF_OPEN; i++)
		x->half_fd[i] = weft_tcp_connect(&x->a, 2000 * MS);
	weft_task *slow[SLOW];
	for (int i = 0; i < SLOW; i++)
		slow[i] = go_pinned(slow_client, x, WEFT_PIN_NONE);
	weft_sleep_ms(100);
	/* The good client: ten round trips, each answered promptly. */
	int fd = weft_tcp_connect(&x->a, 2000 * MS);
	x->good_err = fd < 0 ? fd : 0;
	for (int i = 0; i < 10 && x->good_err == 0; i++) {
		uint64_t t0 = weft_now_ns();
		x->good_err = roundtrip(fd, "good request", 12);
		uint64_t dt = weft_now_ns() - t0;
		if (dt > x->good_worst_ns)
			x->good_worst_ns = dt;
		x->good_rounds += x->good_err == 0;
		weft_sleep_ms(5);
	}
	if (fd >= 0)
		close(fd);
	/* The half-open ones are closed by the server's idle timeout. */
	static struct half_watch w[HALF_OPEN];
	weft_task *wt[HALF_OPEN];
	for (int i = 0; i < HALF_OPEN; i++) {
		w[i].x = x;
		w[i].fd = x->half_fd[i];
		wt[i] = x->half_fd[i] >= 0 ? go_pinned(half_open_watch, &w[i], WEFT_PIN_NONE) : NULL;
	}
	for (int i = 0; i < HALF_OPEN; i++) {
		if (wt[i])
			finish(wt[i]);
		if (x->half_fd[i] >= 0)
			close(x->half_fd[i]);
	}
	atomic_store(&x->stop, true);
	for (int i = 0; i < SLOW; i++)
		finish(slow[i]);
	wait_idle(srv);
	stats(srv, &x->st);
	weft_server_destroy(srv);
	return NULL;
}

static void test_half_open_and_slow_clients_do_not_block_good_one(void **state)
{
	(void)state;
	reset_counters();
	struct flood *x = calloc(1, sizeof *x);
	assert_non_null(x);
	weft_test_run_loops(2, flood_main, x);
	print_message("good client worst round trip %.2f ms; %d half-open closed by the "
		      "server; slow clients %d ok / %d failed\n",
		      x->good_worst_ns / 1e6, atomic_load(&x->half_closed_by_server),
		      atomic_load(&x->slow_ok), atomic_load(&x->slow_err));
	assert_int_equal(x->start_rc, 0);
	for (int i = 0; i < HALF_OPEN; i++)
		assert_true(x->half_fd[i] >= 0);
	assert_int_equal(x->good_err, 0);
	assert_int_equal(x->good_rounds, 10);
	assert_true(x->good_worst_ns < (WEFT_TEST_SANITIZED ? 1000 : 250) * MS);
	assert_int_equal(atomic_load(&x->half_closed_by_server), HALF_OPEN);
	/* Slow but steady clients stay within the idle timeout. */
	assert_int_equal(atomic_load(&x->slow_ok), SLOW);
	assert_int_equal(atomic_load(&x->slow_err), 0);
	assert_int_equal(x->st.accepted, HALF_OPEN + SLOW + 1);
	assert_int_equal(x->st.active, 0);
	assert_int_equal(x->st.rejected, 0);
	assert_int_equal(atomic_load(&h_timedout), HALF_OPEN);
	free(x);
}

/* ---------------------------------------------------------------------- */
/* stats                                                                   */
/* ---------------------------------------------------------------------- */

struct stats_rec {
	int start_rc;
	weft_server_stats zero, open3, closed;
	int null_rc, null_out;
	uint16_t null_port;
};

static void *stats_main(void *arg)
{
	struct stats_rec *x = arg;
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, NULL, echo, NULL, &a)) < 0)
		return NULL;
	stats(srv, &x->zero);
	int fd[3];
	for (int i = 0; i < 3; i++) {
		fd[i] = weft_tcp_connect(&a, 1000 * MS);
		if (fd[i] >= 0)
			roundtrip(fd[i], "s", 1); /* accepted and served */
	}
	stats(srv, &x->open3);
	for (int i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	wait_idle(srv);
	stats(srv, &x->closed);
	x->null_rc = weft_server_stats_get(NULL, &x->zero);
	x->null_out = stats(srv, NULL);
	x->null_port = weft_server_port(NULL);
	weft_server_destroy(srv);
	return NULL;
}

static void test_stats_counters(void **state)
{
	(void)state;
	reset_counters();
	struct stats_rec x = { 0 };
	weft_test_run_loops(2, stats_main, &x);
	assert_int_equal(x.start_rc, 0);
	assert_int_equal(x.zero.accepted, 0);
	assert_int_equal(x.zero.active, 0);
	assert_int_equal(x.open3.accepted, 3);
	assert_int_equal(x.open3.active, 3);
	assert_int_equal(x.closed.accepted, 3);
	assert_int_equal(x.closed.active, 0);
	assert_int_equal(x.closed.rejected, 0);
	assert_int_equal(x.closed.accept_errors, 0);
	assert_int_equal(x.null_rc, -EINVAL);
	assert_int_equal(x.null_out, -EINVAL);
	assert_int_equal(x.null_port, 0);
	assert_int_equal(weft_server_shutdown(NULL, 0), -EINVAL);
	assert_int_equal(weft_server_wait(NULL), -EINVAL);
	weft_server_destroy(NULL);
}

/* ---------------------------------------------------------------------- */
/* no stack to be had                                                      */
/* ---------------------------------------------------------------------- */

struct nostack_conn {
	int start_rc, capped;
	int c;
	ssize_t got;
	weft_server_stats st;
};

static void *nostack_conn_main(void *arg)
{
	struct nostack_conn *x = arg;
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.conn_stack_size = 1ul << 30; /* a fresh mapping for every connection */
	weft_server *srv;
	weft_sockaddr a;
	if ((x->start_rc = start(&srv, &cfg, echo, NULL, &a)) < 0)
		return NULL;
	rlim_t old = weft_test_cap_as(WEFT_TEST_AS_ROOM);
	x->capped = old != 0;
	x->c = weft_tcp_connect(&a, 1000 * MS);
	if (x->c >= 0) {
		char b[8];
		weft_send(x->c, "hello", 5, 0);
		x->got = recv_exact(x->c, b, sizeof b, 3000 * MS);
		close(x->c);
	}
	weft_test_uncap_as(old);
	wait_idle(srv);
	stats(srv, &x->st);
	if (x->st.active == 0) /* else the connection can never end: do not wait */
		weft_server_destroy(srv);
	return NULL;
}

/* A connection whose task cannot get a stack is refused (closed, counted as
 * rejected), never left open with no task to serve it: the client sees the
 * close at once and shutdown does not wait for it. */
static void test_connection_without_stack_is_closed(void **state)
{
	(void)state;
	reset_counters();
	struct nostack_conn x = { 0 };
	weft_test_run_loops(2, nostack_conn_main, &x);
	assert_int_equal(x.start_rc, 0);
	WEFT_TEST_SKIP_UNCAPPED(x.capped);
	assert_true(x.c >= 0);
	assert_true(x.got == 0 || x.got == -ECONNRESET);
	assert_int_equal(x.st.accepted, 1);
	assert_int_equal(x.st.rejected, 1);
	assert_int_equal(x.st.active, 0);
	assert_int_equal(atomic_load(&h_started), 0);
}

/* A blocking echo round trip from a foreign thread: 0 or -errno. */
static int plain_roundtrip(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char b[4];
	int r = connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno
		: send(fd, "ping", 4, 0) != 4			   ? -EIO
		: recv(fd, b, 4, MSG_WAITALL) != 4		   ? -EIO
								   : 0;
	close(fd);
	return r;
}

struct shut_call {
	weft_server *srv;
	_Atomic int rc;
};

static void *shut_thread(void *arg)
{
	struct shut_call *x = arg;
	atomic_store(&x->rc, weft_server_shutdown(x->srv, 0));
	return NULL;
}

/* Without stacks: weft_server_start fails with -ENOMEM rather than start a
 * server whose acceptors never run, and the shutdown of a running server
 * still completes (its stopper task cannot start, so the caller runs the
 * sequence itself) instead of waiting for a task that will never run. */
static void test_server_start_and_shutdown_without_stack(void **state)
{
	(void)state;
	reset_counters();
	weft_runtime_config cfg;
	weft_test_stackless_config(&cfg, 2);
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	weft_server_config sc;
	weft_server_config_init(&sc);
	sc.shared_listener = true;
	weft_sockaddr a;
	weft_addr_ip(&a, "127.0.0.1", 0);

	weft_server *srv = NULL;
	rlim_t old = weft_test_cap_as(WEFT_TEST_AS_ROOM);
	if (!old)
		weft_runtime_destroy(rt);
	WEFT_TEST_SKIP_UNCAPPED(old);
	int r = weft_server_start(&srv, rt, &a, &sc, echo, NULL);
	weft_test_uncap_as(old);
	if (r == 0)
		weft_server_destroy(srv);
	assert_int_equal(r, -ENOMEM);

	assert_int_equal(weft_server_start(&srv, rt, &a, &sc, echo, NULL), 0);
	assert_int_equal(plain_roundtrip(weft_server_port(srv)), 0); /* acceptor runs */
	/* Let the connection's task exit and its stack go, so none comes
	 * back under the cap: the acceptor's stack is the only one left. */
	weft_runtime_stats st;
	for (int i = 0; i < 500; i++) {
		weft_runtime_stats_get(rt, &st);
		if (st.stacks_guarded == 1 && st.tasks_live == 1)
			break;
		msleep(2);
	}
	msleep(10);
	old = weft_test_cap_as(WEFT_TEST_AS_ROOM);
	assert_true(old != 0);
	struct shut_call x = { .srv = srv, .rc = 1 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, shut_thread, &x), 0);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	int jr = pthread_timedjoin_np(th, NULL, &dl);
	weft_test_uncap_as(old);
	assert_int_equal(jr, 0); /* else the shutdown hangs */
	assert_int_equal(atomic_load(&x.rc), 0);
	weft_server_destroy(srv);
	weft_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_connection_without_stack_is_closed),
	cmocka_unit_test(test_server_start_and_shutdown_without_stack),
	cmocka_unit_test(test_many_clients_reuseport),
	cmocka_unit_test(test_many_clients_shared_listener),
	cmocka_unit_test(test_port0_and_bad_start_arguments),
	cmocka_unit_test(test_max_conns_rejects_extra),
	cmocka_unit_test(test_idle_timeout_closes_silent_client),
	cmocka_unit_test(test_write_timeout_frees_stuck_handler),
	cmocka_unit_test(test_shutdown_lets_slow_response_finish),
	cmocka_unit_test(test_shutdown_cancels_after_grace),
	cmocka_unit_test(test_shutdown_ends_idle_connections_at_once),
	cmocka_unit_test(test_shutdown_serves_request_in_progress),
	cmocka_unit_test(test_close_clients_keeps_serving),
	cmocka_unit_test(test_abort_clients_resets),
	cmocka_unit_test(test_handler_abort_resets),
	cmocka_unit_test(test_handler_proxies_with_copy),
	cmocka_unit_test(test_handler_proxy_download_survives_shutdown),
	cmocka_unit_test(test_wait_returns_after_shutdown),
	cmocka_unit_test(test_sigterm_starts_shutdown),
	cmocka_unit_test(test_half_open_and_slow_clients_do_not_block_good_one),
	cmocka_unit_test(test_stats_counters),
};

WEFT_TEST_MAIN(tests)
