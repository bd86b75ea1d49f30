/*
 * weft-load end to end: the open-loop scheduler holds its rate, and on a
 * server that stalls, its (corrected) percentiles match what wrk2's
 * correction predicts.  The server is a plain-thread HTTP responder in
 * this process whose stall we control.  And each protocol against a real
 * server: redis:// against examples/kv_server and redis-server, memcache://
 * against memcached (skipped loudly where it is not installed), raw:// and
 * tcp:// against examples/echo_server, --hlog's file.  weft-load is built
 * by `make load` in each tree: the suite skips loudly where it is not.
 */
#include "weft_test_proc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *weft_load_path(void)
{
	static char path[512];
	const char *tree = getenv("WEFT_TREE");
	snprintf(path, sizeof(path), "%s/bench/weft-load", tree ? tree : "build");
	return path;
}

/* ---- a responder with an injected stall ---- */

struct srv {
	int lfd;
	uint16_t port;
	uint64_t stall_from, stall_to; /* absolute weft_now_ns times, 0: none */
	_Atomic int live;               /* connection threads still running */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct conn_arg {
	struct srv *s;
	int fd;
};

static void *serve_conn(void *arg)
{
	struct conn_arg *c = arg;
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	char buf[4096];
	size_t have = 0;
	for (;;) {
		ssize_t n = read(c->fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		char *end;
		while ((end = memmem(buf, have, "\r\n\r\n", 4))) {
			uint64_t t = now_ns();
			if (c->s->stall_from && t >= c->s->stall_from && t < c->s->stall_to)
				msleep((unsigned)((c->s->stall_to - t) / 1000000u) + 1);
			if (write(c->fd, resp, sizeof(resp) - 1) < 0)
				goto out;
			size_t used = (size_t)(end - buf) + 4;
			memmove(buf, buf + used, have - used);
			have -= used;
		}
	}
out:
	close(c->fd);
	atomic_fetch_sub(&c->s->live, 1); /* its last touch of s */
	free(c);
	return NULL;
}

static void *accept_loop(void *arg)
{
	struct srv *s = arg;
	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			break;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn_arg *c = malloc(sizeof(*c));
		atomic_fetch_add(&s->live, 1);
		c->s = s;
		c->fd = fd;
		pthread_t t;
		pthread_create(&t, NULL, serve_conn, c);
		pthread_detach(t);
	}
	return NULL;
}

static void srv_start(struct srv *s, pthread_t *t)
{
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 64), 0);
	socklen_t len = sizeof(a);
	getsockname(s->lfd, (struct sockaddr *)&a, &len);
	s->port = ntohs(a.sin_port);
	pthread_create(t, NULL, accept_loop, s);
}

static void srv_stop(struct srv *s, pthread_t t)
{
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	pthread_join(t, NULL);
	/* weft-load has exited, so its connections are closed: wait for the
	 * threads serving them (s lives on the caller's stack). */
	for (int i = 0; i < 5000 && atomic_load(&s->live); i++)
		msleep(1);
}

/* Run weft-load with args, its output into out (stdout, and stderr too
 * with `with_stderr`); exit status. */
static int run_load_out(char *out, size_t cap, bool with_stderr, const char *const *args)
{
	const char *argv[32];
	int n = 0;
	argv[n++] = weft_load_path();
	while (*args && n < 30)
		argv[n++] = *args++;
	argv[n] = NULL;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		if (with_stderr)
			dup2(p[1], 2);
		close(p[0]);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(p[1]);
	size_t have = 0;
	ssize_t r;
	while (have + 1 < cap && (r = read(p[0], out + have, cap - 1 - have)) > 0)
		have += (size_t)r;
	out[have] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Run weft-load with args, its JSON into out; exit status. */
static int run_load(char *out, size_t cap, const char *const *args)
{
	return run_load_out(out, cap, false, args);
}

static double json_num(const char *js, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(js, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

static bool have_load(void)
{
	return access(weft_load_path(), X_OK) == 0;
}

static void need_load(void)
{
	if (!have_load()) {
		print_message("SKIPPED: %s not built (bench programs: release tree only)\n",
			      weft_load_path());
		skip();
	}
}

/* An open-loop run of 1 s at `rate` over 4 connections against a fresh
 * responder, stalling `stall_ms` from 450 ms in (0: none): weft-load's
 * JSON into out, its exit status returned. */
static int open_loop_run(const char *rate, unsigned stall_ms, char *out, size_t cap)
{
	struct srv s = { 0 };
	pthread_t t;
	if (stall_ms) { /* before the server threads start: they only read it */
		s.stall_from = now_ns() + 450 * MS; /* weft-load starts within ~50 ms */
		s.stall_to = s.stall_from + stall_ms * MS;
	}
	srv_start(&s, &t);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.port);
	const char *args[] = { "-c", "4", "-d", "1s", "--rate", rate, "--json", "--no-progress",
			       "--loops", "1", url, NULL };
	int rc = run_load(out, cap, args);
	srv_stop(&s, t);
	print_message("%s", out);
	return rc;
}

/* Open loop: 2000 requests/s for 1 s over 4 connections. */
static void test_open_loop_holds_rate(void **state)
{
	(void)state;
	need_load();
	char out[4096];
	assert_int_equal(open_loop_run("2000", 0, out, sizeof(out)), 0);
	double rps = json_num(out, "rps");
	assert_true(json_num(out, "errors") == 0);
	assert_true(rps > 2000 * 0.99 && rps < 2000 * 1.01);
}

/*
 * An injected stall: the server stops answering for 100 ms in the middle
 * of a 1 s open-loop run at 1000 requests/s.  Every request meant to be
 * sent during the stall waits for its end, so (wrk2's correction) ~10% of
 * the samples spread evenly over 0..100 ms: the 99th percentile is ~90 ms
 * and the max ~100 ms.  An uncorrected closed-loop measurement would show
 * only one slow sample per connection.
 */
static void test_stall_percentiles_corrected(void **state)
{
	(void)state;
	need_load();
	char out[4096];
	assert_int_equal(open_loop_run("1000", 100, out, sizeof(out)), 0);
	double p50 = json_num(out, "p50"), p99 = json_num(out, "p99"), mx = json_num(out, "max");
	assert_true(p50 < 5000);                  /* most requests: no stall */
	assert_true(p99 > 75000 && p99 < 105000); /* ~90 ms */
	assert_true(mx > 90000 && mx < 130000);   /* ~100 ms */
}

/* Bad options are refused with a message and exit status 2. */
static void test_bad_options_refused(void **state)
{
	(void)state;
	need_load();
	char out[4096];
	const char *a1[] = { "-c", "0", "http://127.0.0.1:1/", NULL };
	assert_int_equal(run_load(out, sizeof(out), a1), 2);
	const char *a2[] = { "-c", "4", "-d", "1s", NULL };
	assert_int_equal(run_load(out, sizeof(out), a2), 2);
	const char *a3[] = { "https://example.com/", NULL };
	assert_int_equal(run_load(out, sizeof(out), a3), 2);
}

/* Nothing listening: every connection refused is a failed run (exit 1, as
 * wrk and redis-benchmark), with a line that says where and why; in either
 * output format, with a count or a duration. */
static void test_refused_fails(void **state)
{
	(void)state;
	need_load();
	char url[64], out[8192];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", free_port());
	const char *count[] = { "-c", "4", "-n", "100", "--no-progress", url, NULL };
	const char *json[] = { "-c", "2", "-d", "1s", "--json", "--no-progress", url, NULL };
	const char *const *runs[] = { count, json };
	for (size_t i = 0; i < 2; i++) {
		int rc = run_load_out(out, sizeof(out), true, runs[i]);
		print_message("%s", out);
		assert_int_equal(rc, 1);
		assert_non_null(strstr(out, "cannot connect to 127.0.0.1:"));
		assert_non_null(strstr(out, "Connection refused"));
	}
}

/* ---- protocols against real servers ---- */

/* weft-load ARGS... URL against a server: exit 0, no errors, some
 * requests; the JSON into out. */
static void load_ok(char *out, size_t cap, const char *const *args)
{
	int rc = run_load(out, cap, args);
	print_message("%s", out);
	assert_int_equal(rc, 0);
	assert_true(json_num(out, "errors") == 0);
	assert_true(json_num(out, "requests") > 0);
}

#define LOAD_ARGS(url, ...) \
	((const char *const[]){ "-c", "4", "-d", "300ms", "--loops", "1", "--json", \
				"--no-progress", __VA_ARGS__, url, NULL })

/* RESP: PING, SET of random sizes, GET (hits: the SETs filled the small
 * keyspace), pipelined, closed and open loop. */
static void resp_suite(unsigned port)
{
	char url[64], out[4096];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--command", "ping", "--pipeline", "8"));
	load_ok(out, sizeof(out),
		LOAD_ARGS(url, "--command", "set", "--size", "1-3000", "--keyspace", "50"));
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--command", "get", "--keyspace", "50",
					    "--pipeline", "4"));
	/* the values came back: the answers carry more than a nil each */
	assert_true(json_num(out, "bytes") > json_num(out, "requests") * 100);
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--command", "get", "--rate", "2000",
					    "--pipeline", "2"));
	assert_true(json_num(out, "sent") > 0);
	/* -n: exactly that many */
	const char *n[] = { "-c", "3", "-n", "999", "--pipeline", "3", "--json", "--no-progress",
			    "--command", "set", url, NULL };
	load_ok(out, sizeof(out), n);
	assert_true(json_num(out, "requests") == 999);
}

static void test_redis_kv_server(void **state)
{
	(void)state;
	need_load();
	struct server s;
	server_start(&s, "kv_server", NULL);
	resp_suite(s.port);
	server_stop(&s);
}

/* Start a daemon argv listening on `port`, wait until it accepts; its pid.
 * Its output pipe stays open in *out (closed, it would die of SIGPIPE). */
static pid_t daemon_start(const char *const argv[], unsigned port, int *out)
{
	pid_t pid = spawn(argv, out, true);
	for (int i = 0; i < 500 * SLOW; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
		if (r == 0)
			return pid;
		msleep(10);
	}
	fail_msg("%s did not listen on %u", argv[0], port);
	return -1;
}

static void daemon_stop(pid_t pid, int out)
{
	kill(pid, SIGTERM);
	reap(pid, 5000);
	xclose(out);
}

static void test_redis_server(void **state)
{
	(void)state;
	need_load();
	if (!have_tool("redis-server")) {
		print_message("SKIPPED: redis-server is not installed (apt-get install redis-server)\n");
		skip();
	}
	unsigned port = free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%u", port);
	const char *argv[] = { "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
			       "--appendonly", "no", NULL };
	int out;
	pid_t pid = daemon_start(argv, port, &out);
	resp_suite(port);
	/* redis-benchmark's key names: every key is key: and twelve digits,
	 * and both ends of the keyspace of 50 were written (the SET run makes
	 * thousands) */
	char cmd[256], got[64] = "";
	snprintf(cmd, sizeof(cmd),
		 "redis-cli -p %u --scan | grep -cvE '^key:[0-9]{12}$';"
		 "redis-cli -p %u exists key:000000000000 key:000000000049",
		 port, port);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = 0;
	pclose(f);
	assert_string_equal(got, "0\n2\n");
	daemon_stop(pid, out);
}

static void test_memcached(void **state)
{
	(void)state;
	need_load();
	const char *bin = access("/usr/bin/memcached", X_OK) == 0 ? "/usr/bin/memcached" : NULL;
	if (!bin) {
		print_message("SKIPPED: memcached is not installed (apt-get install memcached)\n");
		skip();
	}
	unsigned port = free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%u", port);
	const char *argv[] = { bin, "-p", ps, "-U", "0", "-l", "127.0.0.1", "-u", "nobody", NULL };
	int po;
	pid_t pid = daemon_start(argv, port, &po);
	char url[64], out[4096];
	snprintf(url, sizeof(url), "memcache://127.0.0.1:%u", port);
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--command", "set", "--size", "100-5000",
					    "--keyspace", "40", "--pipeline", "4"));
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--command", "get", "--keyspace", "40"));
	assert_true(json_num(out, "bytes") > json_num(out, "requests") * 100); /* hits */
	daemon_stop(pid, po);
}

/* raw:// against the echo server: a line protocol by its delimiter, and a
 * fixed length; tcp:// echo pipelined. */
static void test_raw_and_echo(void **state)
{
	(void)state;
	need_load();
	struct server s;
	server_start(&s, "echo_server", NULL);
	char url[64], out[4096];
	snprintf(url, sizeof(url), "raw://127.0.0.1:%u", s.port);
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--send", "hello\\x20world\\r\\n",
					    "--expect-delim", "\\r\\n", "--pipeline", "5"));
	assert_true(json_num(out, "bytes") == json_num(out, "requests") * 13);
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--send", "0123456789", "--expect-len", "10"));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", s.port);
	load_ok(out, sizeof(out), LOAD_ARGS(url, "--size", "100k", "--pipeline", "2"));
	/* a response that never ends is a timeout, and counted */
	snprintf(url, sizeof(url), "raw://127.0.0.1:%u", s.port);
	const char *never[] = { "-c", "1", "-d", "300ms", "--timeout", "100ms", "--json",
				"--no-progress", "--send", "x", "--expect-len", "2", url, NULL };
	int rc = run_load(out, sizeof(out), never);
	print_message("%s", out);
	assert_int_equal(rc, 0);
	assert_true(json_num(out, "timeouts") >= 1 && json_num(out, "requests") == 0);
	server_stop(&s);
}

/* --hlog: HdrHistogram's header and one line a second, whose histograms
 * add up to the run's count. */
static void test_hlog_file(void **state)
{
	(void)state;
	need_load();
	struct server s;
	server_start(&s, "kv_server", NULL);
	char url[64], out[4096], path[] = "/tmp/weft-loadgen-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", s.port);
	const char *args[] = { "-c", "2", "-d", "2500ms", "--loops", "1", "--json", "--no-progress",
			       "--hlog", path, url, NULL };
	load_ok(out, sizeof(out), args);
	server_stop(&s);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *line = NULL;
	size_t cap = 0;
	unsigned lines = 0, heads = 0;
	weft_hist *h = malloc(sizeof(*h));
	weft_hist_init(h);
	while (getline(&line, &cap, f) > 0) {
		if (line[0] == '#' || line[0] == '"') {
			heads++;
			continue;
		}
		const char *enc = strrchr(line, ',');
		assert_non_null(enc);
		assert_true(weft_hist_decode(h, enc + 1, strcspn(enc + 1, "\n")) > 0);
		lines++;
	}
	fclose(f);
	free(line);
	unlink(path);
	assert_int_equal(heads, 4);
	assert_int_equal(lines, 3); /* 1 s, 1 s, 0.5 s */
	assert_true((double)weft_hist_count(h) == json_num(out, "requests"));
	free(h);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_open_loop_holds_rate),
	cmocka_unit_test(test_stall_percentiles_corrected),
	cmocka_unit_test(test_bad_options_refused),
	cmocka_unit_test(test_refused_fails),
	cmocka_unit_test_setup_teardown(test_redis_kv_server, setup, teardown),
	cmocka_unit_test_setup_teardown(test_redis_server, setup, teardown),
	cmocka_unit_test_setup_teardown(test_memcached, setup, teardown),
	cmocka_unit_test_setup_teardown(test_raw_and_echo, setup, teardown),
	cmocka_unit_test_setup_teardown(test_hlog_file, setup, teardown),
};

WEFT_TEST_MAIN(tests)
