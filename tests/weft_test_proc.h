/*
 * weft_test_proc.h — running programs under test (test_examples, test_kv):
 * example binaries of the tree under test started as child processes,
 * their "listening on HOST:PORT" line read, driven from plain sockets and
 * ordinary tools (curl, wrk, redis-cli), stopped with SIGTERM and checked
 * to exit 0 (in the sanitizer trees a leak, memory error or race makes
 * that status nonzero).
 *
 * WEFT_TREE (set by tests/run.sh) names the build tree; without it the
 * tree is the one holding the test binary (<tree>/tests/test_*), else
 * "build".  NEED_TOOL skips a test loudly when a tool is not installed.
 *
 * Every child and socket is registered; the teardown kills and closes
 * what a failed assertion (a longjmp) left behind.  Use setup and
 * teardown around every test.  No runtime is used, and every assertion
 * runs on the test's own thread.
 */
#ifndef WEFT_TEST_PROC_H
#define WEFT_TEST_PROC_H

#include "weft_test.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* TSan runs these programs about 5-10x slower than the plain build, ASan
 * about 2x: time limits are multiplied by SLOW, loads divided. */
#define TSAN WEFT_TEST_TSAN
#define SLOW (TSAN ? 4 : WEFT_TEST_SANITIZED ? 2 : 1)

static inline double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------------- */
/* children and fds, cleaned up by the teardown                            */
/* ---------------------------------------------------------------------- */

#define MAX_KIDS 16
#define MAX_FD 4096
static pid_t g_kids[MAX_KIDS];
static bool g_fd_open[MAX_FD];

static inline void track_fd(int fd)
{
	assert_true(fd >= 0 && fd < MAX_FD);
	g_fd_open[fd] = true;
}

static inline void xclose(int fd)
{
	if (fd < 0)
		return;
	if (fd < MAX_FD)
		g_fd_open[fd] = false;
	close(fd);
}

static inline void kid_add(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (!g_kids[i]) {
			g_kids[i] = pid;
			return;
		}
	fail_msg("more than %d children", MAX_KIDS);
}

static inline void kid_del(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (g_kids[i] == pid)
			g_kids[i] = 0;
}

static inline int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < MAX_KIDS; i++)
		if (g_kids[i] > 0) {
			kill(g_kids[i], SIGKILL);
			waitpid(g_kids[i], NULL, 0);
			g_kids[i] = 0;
		}
	for (int fd = 0; fd < MAX_FD; fd++)
		if (g_fd_open[fd])
			xclose(fd);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* programs                                                                */
/* ---------------------------------------------------------------------- */

static char g_tree[PATH_MAX];

static inline const char *tree(void)
{
	if (g_tree[0])
		return g_tree;
	const char *env = getenv("WEFT_TREE");
	if (env && *env) {
		snprintf(g_tree, sizeof g_tree, "%s", env);
		return g_tree;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	snprintf(g_tree, sizeof g_tree, "build");
	if (n > 0) {
		exe[n] = 0;
		for (int i = 0; i < 2; i++) { /* <tree>/tests/test_examples */
			char *slash = strrchr(exe, '/');
			if (!slash)
				return g_tree;
			*slash = 0;
		}
		char probe[PATH_MAX + 16];
		snprintf(probe, sizeof probe, "%s/examples", exe);
		if (access(probe, F_OK) == 0)
			snprintf(g_tree, sizeof g_tree, "%s", exe);
	}
	return g_tree;
}

/* $WEFT_TREE/examples/NAME; fails the test if it was not built. */
static inline const char *example(const char *name)
{
	static char path[4][PATH_MAX + 64];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, sizeof path[0], "%s/examples/%s", tree(), name);
	if (access(p, X_OK) != 0)
		fail_msg("%s is not built (make VARIANT=... examples)", p);
	return p;
}

/* Whether `name` is an executable on PATH. */
static inline bool have_tool(const char *name)
{
	const char *path = getenv("PATH");
	char dir[PATH_MAX];
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");
		char probe[PATH_MAX + 64];
		snprintf(dir, sizeof dir, "%.*s", (int)n, p);
		snprintf(probe, sizeof probe, "%s/%s", n ? dir : ".", name);
		if (access(probe, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

#define NEED_TOOL(name)                                                                \
	do {                                                                           \
		if (!have_tool(name)) {                                                \
			print_message("SKIP: %s is not installed (apt-get install %s)\n", \
				      name, name);                                     \
			skip();                                                        \
		}                                                                      \
	} while (0)

/* Start argv[0] (a path, or a name looked up on PATH) with stdout on a
 * pipe whose read end goes to *out; stderr joins stdout if merge_err, else
 * stays this process's.  SIGPIPE is default in the child. */
static inline pid_t spawn(const char *const argv[], int *out, bool merge_err)
{
	int pfd[2];
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	track_fd(pfd[0]);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	if (merge_err)
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	sigset_t def, none;
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	pid_t pid = -1;
	int r = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[1]);
	if (r != 0)
		fail_msg("cannot spawn %s: %s", argv[0], strerror(r));
	kid_add(pid);
	*out = pfd[0];
	return pid;
}

/* Wait for pid at most timeout_ms; the shell-style status (exit code, or
 * 128 + signal), or -1 after killing it on timeout. */
static inline int reap(pid_t pid, int timeout_ms)
{
	double end = now_ms() + timeout_ms;
	int st;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			fail_msg("waitpid: %s", strerror(errno));
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			kid_del(pid);
			return -1;
		}
		msleep(2);
	}
	kid_del(pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Append what fd gives to buf (NUL-terminated, excess dropped) until EOF
 * or the deadline; returns whether EOF came.  stop, if given, ends the
 * read as soon as buf holds it. */
static inline bool read_until(int fd, char *buf, size_t cap, size_t *len, double deadline,
		       const char *stop)
{
	for (;;) {
		if (stop && strstr(buf, stop))
			return false;
		int left = (int)(deadline - now_ms());
		if (left <= 0)
			return false;
		struct pollfd p = { fd, POLLIN, 0 };
		int r = poll(&p, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof tmp);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		size_t k = (size_t)n < cap - 1 - *len ? (size_t)n : cap - 1 - *len;
		memcpy(buf + *len, tmp, k);
		*len += k;
		buf[*len] = 0;
	}
}

/* Run argv to completion (at most timeout_ms), stdout and stderr into out;
 * returns its status as reap() does. */
static inline int run(const char *const argv[], char *out, size_t cap, int timeout_ms)
{
	int fd;
	pid_t pid = spawn(argv, &fd, true);
	size_t len = 0;
	out[0] = 0;
	double end = now_ms() + timeout_ms;
	bool eof = read_until(fd, out, cap, &len, end, NULL);
	xclose(fd);
	int st = reap(pid, eof ? (int)(end - now_ms()) + 100 : 0);
	if (st < 0)
		fail_msg("%s did not finish within %d ms; output:\n%s", argv[0], timeout_ms, out);
	return st;
}

/* SIGTERM (or sig) to a weft program, as kill(1) would send it: to the
 * process, whose main thread weft_run parks.  (The TSan tree used to aim
 * it at a loop thread, because TSan never ran the handler on the parked
 * main thread; weft's futex wait passes an interceptor now, and loop
 * threads block watched signals there: io/signal.c.) */
static inline void signal_program(pid_t pid, int sig)
{
	assert_int_equal(kill(pid, sig), 0);
}

/* ---------------------------------------------------------------------- */
/* servers                                                                 */
/* ---------------------------------------------------------------------- */

struct server {
	pid_t pid;
	int out;           /* its stdout */
	unsigned port;
	char url[64];      /* http://127.0.0.1:PORT/ */
	char log[4096];    /* its stdout so far */
	size_t len;
};

/* Start examples/NAME --port 0 --loops 2 [extra...]; wait for its
 * "listening on HOST:PORT" line. */
static inline void server_start(struct server *s, const char *name, const char *const extra[])
{
	const char *argv[16] = { example(name), "--port", "0", "--loops", "2" };
	int n = 5;
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	memset(s, 0, sizeof *s);
	s->pid = spawn(argv, &s->out, false);
	read_until(s->out, s->log, sizeof s->log, &s->len, now_ms() + 5000.0 * SLOW, "\n");
	const char *l = strstr(s->log, "listening on ");
	const char *colon = l ? strchr(l, ':') : NULL;
	if (!colon || !strchr(l, '\n'))
		fail_msg("%s printed no \"listening on\" line: \"%s\"", name, s->log);
	s->port = (unsigned)atoi(colon + 1);
	assert_true(s->port > 0 && s->port < 65536);
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u/", s->port);
}

/* After its SIGTERM (sent at t0): it must say "shut down after" and exit
 * 0 in time. */
static inline void server_reap(struct server *s, double t0)
{
	read_until(s->out, s->log, sizeof s->log, &s->len, t0 + 2000.0 * SLOW, NULL);
	int st = reap(s->pid, 1000 * SLOW);
	xclose(s->out);
	print_message("server shut down in %.0f ms: %s", now_ms() - t0, s->log);
	if (st != 0)
		fail_msg("server exit status %d after SIGTERM (-1: hung); stdout: %s", st, s->log);
	assert_non_null(strstr(s->log, "shut down after "));
}

/* SIGTERM, then it must say "shut down after" and exit 0 in time. */
static inline void server_stop(struct server *s)
{
	double t0 = now_ms();
	signal_program(s->pid, SIGTERM);
	server_reap(s, t0);
}

/* --stats-ms (examples/serve_main.h, read by bench/soak.sh): the value of
 * `key` in the last whole "stats " line of out[from..len), or -1. */
static inline long stats_value(const char *out, size_t from, const char *key)
{
	const char *last = NULL;
	for (const char *p = out + from; (p = strstr(p, "stats t_ms=")); p++)
		if ((p == out || p[-1] == '\n') && strchr(p, '\n'))
			last = p;
	if (!last)
		return -1;
	char k[40];
	snprintf(k, sizeof k, " %s=", key);
	const char *v = strstr(last, k), *eol = strchr(last, '\n');
	return v && v < eol ? strtol(v + strlen(k), NULL, 10) : -1;
}

/* Read the server's output until its last stats line has conns == conns
 * and, unless tasks < 0, tasks_live == tasks (a task ends just after its
 * connection is counted closed); that line's tasks_live. */
static inline long stats_await(struct server *s, char *out, size_t cap, size_t *len, long conns,
			long tasks)
{
	double end = now_ms() + 5000.0 * SLOW;
	for (;;) {
		size_t from = *len;
		read_until(s->out, out, cap, len, now_ms() + 100, NULL);
		long t = stats_value(out, from, "tasks_live");
		if (stats_value(out, from, "conns") == conns && (tasks < 0 || t == tasks))
			return t;
		if (now_ms() > end)
			fail_msg("no stats line with conns=%ld tasks_live=%ld in 5 s; output:\n%s",
				 conns, tasks, out);
	}
}

/* Start examples/NAME --port 0 --loops 2 --stats-ms 20, its stderr (the
 * stats lines) with its stdout into out[0..*len) (cap bytes); wait for
 * its "listening on" line. */
static inline void stats_server_start(struct server *s, const char *name, char *out, size_t cap,
				      size_t *len)
{
	const char *argv[] = { example(name), "--port", "0", "--loops", "2",
			       "--stats-ms", "20", NULL };
	memset(s, 0, sizeof *s);
	s->pid = spawn(argv, &s->out, true); /* the stats lines are on stderr */
	read_until(s->out, out, cap, len, now_ms() + 5000.0 * SLOW, "(2 loops)\n");
	const char *l = strstr(out, "listening on ");
	const char *colon = l ? strchr(l, ':') : NULL;
	if (!colon)
		fail_msg("no \"listening on\" line: %s", out);
	s->port = (unsigned)atoi(colon + 1);
}

/* SIGTERM to a stats_server_start server: it must exit 0 in time after
 * printing `want` ("shut down after ..."). */
static inline void stats_server_stop(struct server *s, char *out, size_t cap, size_t *len,
				     const char *want)
{
	double t0 = now_ms();
	signal_program(s->pid, SIGTERM);
	read_until(s->out, out, cap, len, t0 + 2000.0 * SLOW, NULL);
	int st = reap(s->pid, 1000 * SLOW);
	xclose(s->out);
	if (st != 0 || !strstr(out, want))
		fail_msg("exit status %d after SIGTERM (-1: hung); output:\n%s", st, out);
}

/* ---------------------------------------------------------------------- */
/* sockets                                                                 */
/* ---------------------------------------------------------------------- */

/* A loopback TCP port with nothing listening on it (bound, then closed):
 * for a server to take, or for a client to be refused. */
static inline unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static inline int tcp_connect(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	track_fd(fd);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		fail_msg("connect to port %u: %s", port, strerror(errno));
	return fd;
}

static inline bool send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

static inline int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
#if TSAN
	/* TSan sleeps 1 s at every exit by default: not in the children */
	const char *o = getenv("TSAN_OPTIONS");
	if (!o || !strstr(o, "atexit_sleep_ms")) {
		char opts[1024];
		snprintf(opts, sizeof opts, "%s%satexit_sleep_ms=0", o ? o : "", o && *o ? " " : "");
		setenv("TSAN_OPTIONS", opts, 1);
	}
#endif
	return 0;
}

#endif
