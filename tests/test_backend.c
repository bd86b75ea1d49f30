/*
 * Choosing the I/O backend: where io_uring is refused the way Docker's
 * default seccomp profile refuses it (io_uring_setup, io_uring_enter and
 * io_uring_register answer EPERM), AUTO falls back to epoll, says why, and
 * everything works; strict IO_URING fails naming the reason; WEFT_BACKEND
 * overrides the config.  Each case runs in a forked child (the filter
 * stays there), which reports through its exit code and a pipe.
 */
#include "weft_test.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_OK 0
#define CHILD_NO_FILTER 100

/* Refuse the three io_uring calls with `err`, allow everything else. */
static int refuse_io_uring(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -1;
	return 0;
}

struct child_out {
	int status;     /* exit code, or -1 if it died */
	char err[2048]; /* its stderr */
};

/* Run fn in a child with stderr to a pipe; filter io_uring with `err`
 * first unless err is 0. */
static void run_child(int err, const char *backend_env, int (*fn)(void), struct child_out *o)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 2);
		if (backend_env)
			setenv("WEFT_BACKEND", backend_env, 1);
		else
			unsetenv("WEFT_BACKEND");
		if (err && refuse_io_uring(err) < 0)
			_exit(CHILD_NO_FILTER);
		_exit(fn());
	}
	close(p[1]);
	memset(o, 0, sizeof(*o));
	ssize_t n = 0, k;
	while (n < (ssize_t)sizeof(o->err) - 1 &&
	       (k = read(p[0], o->err + n, sizeof(o->err) - 1 - (size_t)n)) > 0)
		n += k;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	o->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (o->status == CHILD_NO_FILTER) {
		print_message("skip: cannot install a seccomp filter here\n");
		skip();
	}
	if (o->status != 0 || o->err[0])
		print_message("child exit %d, stderr: %s\n", o->status, o->err);
}

/* ---- what a child does ---- */

static unsigned cfg_backend = WEFT_BACKEND_AUTO;
static bool cfg_quiet;

static weft_runtime_config child_cfg(void)
{
	weft_runtime_config c;
	weft_runtime_config_init(&c);
	c.loops = 2;
	c.backend = cfg_backend;
	c.backend_quiet = cfg_quiet;
	return c;
}

/* Exit codes: 10 + backend on success (so the parent sees which); 2 a
 * wrong result; 3 stats disagree; 64 + -errno of a failed start. */
static int start_code(weft_runtime *rt, int r)
{
	if (r < 0)
		return 64 + (-r & 63);
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	int code = 10 + (int)st.backend;
	for (unsigned i = 0; i < st.loops; i++)
		if (st.loop[i].backend != st.backend)
			code = 3;
	if (!st.backend_reason[0])
		code = 3;
	fprintf(stderr, "reason: %s\n", st.backend_reason);
	return code;
}

static int child_start_only(void)
{
	weft_runtime_config c = child_cfg();
	weft_runtime *rt = NULL;
	int r = weft_runtime_start(&rt, &c);
	int code = start_code(rt, r);
	if (r == 0)
		weft_runtime_destroy(rt);
	else if (rt)
		code = 4; /* a failed start hands out nothing */
	return code;
}

/* Some real I/O: a TCP echo through a server and a stream, a file
 * written and read back, a timer.  Returns 0 when all of it worked. */
static void echo(weft_stream *s, void *arg)
{
	const char *line;
	ssize_t n;
	while ((n = weft_stream_read_line(s, &line)) > 0)
		if (weft_stream_write(s, line, (size_t)n) < 0)
			break;
	weft_stream_flush(s);
}

static void *io_body(void *arg)
{
	weft_sockaddr a;
	weft_server_config sc;
	weft_server_config_init(&sc);
	weft_server *srv;
	if (weft_addr_ip(&a, "127.0.0.1", 0) < 0 ||
	    weft_server_start(&srv, NULL, &a, &sc, echo, NULL) < 0)
		return P(1);
	if (weft_addr_ip(&a, "127.0.0.1", weft_server_port(srv)) < 0)
		return P(1);
	int fd = weft_tcp_connect(&a, 2000 * MS);
	weft_stream *s;
	if (fd < 0 || weft_stream_open(&s, fd, NULL) < 0)
		return P(2);
	const char *line;
	int bad = 0;
	for (int i = 0; i < 50; i++) {
		char msg[32];
		int len = snprintf(msg, sizeof msg, "line %d\n", i);
		if (weft_stream_write(s, msg, (size_t)len) < 0 ||
		    weft_stream_read_line(s, &line) != len || memcmp(line, msg, (size_t)len))
			bad = 3;
	}
	weft_stream_close(s);
	weft_server_shutdown(srv, 1000 * MS);
	weft_server_destroy(srv);

	char path[] = "/tmp/weft-backend-XXXXXX";
	int tfd = mkstemp(path);
	if (tfd < 0)
		return P(4);
	close(tfd);
	weft_file *f;
	char back[16] = { 0 };
	if (weft_file_open(&f, path, O_RDWR, 0600) < 0 || weft_file_write(f, "file bytes", 10) != 10 ||
	    weft_file_seek(f, 0, SEEK_SET) < 0 || weft_file_read(f, back, 10) != 10 ||
	    memcmp(back, "file bytes", 10))
		bad = 5;
	else
		weft_file_close(f);
	unlink(path);
	uint64_t t0 = weft_now_ns();
	if (weft_sleep_ms(5) < 0 || weft_now_ns() - t0 < 5 * MS)
		bad = 6;
	return P(bad);
}

static int child_io(void)
{
	weft_runtime_config c = child_cfg();
	weft_runtime *rt = NULL;
	int r = weft_runtime_start(&rt, &c);
	int code = start_code(rt, r);
	if (r < 0)
		return code;
	void *res = P(99);
	if (weft_runtime_call(rt, io_body, NULL, &res) < 0 || U(res) != 0) {
		fprintf(stderr, "io_body: %d\n", (int)U(res));
		code = 2;
	}
	weft_runtime_destroy(rt);
	return code;
}

static bool has(const struct child_out *o, const char *s)
{
	return strstr(o->err, s) != NULL;
}

/* ---- the tests ---- */

/* AUTO under Docker's refusal: epoll, one line saying why, I/O works. */
static void test_auto_falls_back_under_seccomp(void **state)
{
	(void)state;
	struct child_out o;
	cfg_backend = WEFT_BACKEND_AUTO;
	cfg_quiet = false;
	run_child(EPERM, NULL, child_io, &o);
	assert_int_equal(o.status, 10 + WEFT_BACKEND_EPOLL);
	assert_true(has(&o, "weft: io_uring refused (seccomp, EPERM"));
	assert_true(has(&o, "; using epoll"));
	assert_true(has(&o, "reason: io_uring refused (seccomp, EPERM"));
}

/* A profile that answers ENOSYS (some do) is told apart from EPERM. */
static void test_auto_falls_back_on_enosys(void **state)
{
	(void)state;
	struct child_out o;
	cfg_backend = WEFT_BACKEND_AUTO;
	cfg_quiet = false;
	run_child(ENOSYS, NULL, child_start_only, &o);
	assert_int_equal(o.status, 10 + WEFT_BACKEND_EPOLL);
	assert_true(has(&o, "(seccomp, ENOSYS"));
}

static void test_quiet_fallback_prints_nothing(void **state)
{
	(void)state;
	struct child_out o;
	cfg_backend = WEFT_BACKEND_AUTO;
	cfg_quiet = true;
	run_child(EPERM, NULL, child_start_only, &o);
	cfg_quiet = false;
	assert_int_equal(o.status, 10 + WEFT_BACKEND_EPOLL);
	assert_false(has(&o, "weft:")); /* only our own "reason:" line */
	assert_true(has(&o, "reason: io_uring refused (seccomp"));
}

/* Strict io_uring where it is refused: the start fails, naming why, and
 * says what failed (not "outside a task"). */
static void test_strict_io_uring_fails_with_reason(void **state)
{
	(void)state;
	struct child_out o;
	cfg_backend = WEFT_BACKEND_IO_URING;
	run_child(EPERM, NULL, child_start_only, &o);
	cfg_backend = WEFT_BACKEND_AUTO;
	assert_int_equal(o.status, 64 + EPERM);
	assert_true(has(&o, "weft: cannot start: io_uring refused (seccomp, EPERM"));
	assert_false(has(&o, "outside a task"));
}

/* WEFT_BACKEND beats the config, both ways. */
static void test_env_overrides_config(void **state)
{
	(void)state;
	struct child_out o;
	cfg_backend = WEFT_BACKEND_IO_URING;
	run_child(EPERM, "epoll", child_io, &o);
	assert_int_equal(o.status, 10 + WEFT_BACKEND_EPOLL);
	assert_true(has(&o, "reason: WEFT_BACKEND=epoll"));
	assert_false(has(&o, "weft:")); /* forced, not a fallback: no line */

	cfg_backend = WEFT_BACKEND_AUTO;
	run_child(EPERM, "io_uring", child_start_only, &o);
	assert_int_equal(o.status, 64 + EPERM);
	assert_true(has(&o, "WEFT_BACKEND=io_uring"));

	run_child(0, "bogus", child_start_only, &o);
	assert_int_equal(o.status, 64 + EINVAL);
	assert_true(has(&o, "WEFT_BACKEND=bogus"));
}

/* Where io_uring works: AUTO takes it, EPOLL forces epoll, and both run
 * the same I/O. */
static void test_unfiltered_choices(void **state)
{
	(void)state;
	struct child_out o;
	cfg_backend = WEFT_BACKEND_AUTO;
	run_child(0, NULL, child_start_only, &o);
	if (o.status == 10 + WEFT_BACKEND_EPOLL && has(&o, "weft: io_uring")) {
		print_message("skip: io_uring is not usable on this machine: %s\n", o.err);
		skip();
	}
	assert_int_equal(o.status, 10 + WEFT_BACKEND_IO_URING);
	assert_true(has(&o, "reason: io_uring usable"));
	cfg_backend = WEFT_BACKEND_EPOLL;
	run_child(0, NULL, child_io, &o);
	cfg_backend = WEFT_BACKEND_AUTO;
	assert_int_equal(o.status, 10 + WEFT_BACKEND_EPOLL);
	assert_true(has(&o, "reason: config: WEFT_BACKEND_EPOLL"));
}

static void test_bad_backend_config_einval(void **state)
{
	(void)state;
	weft_runtime_config c;
	weft_runtime_config_init(&c);
	c.backend = 3;
	weft_runtime *rt = (weft_runtime *)1;
	assert_int_equal(weft_runtime_start(&rt, &c), -EINVAL);
	assert_null(rt);
	assert_string_equal(weft_backend_name(WEFT_BACKEND_EPOLL), "epoll");
	assert_string_equal(weft_backend_name(WEFT_BACKEND_IO_URING), "io_uring");
	assert_null(weft_backend_name(7));
}

/* A real example program, as a user would run it in a container. */
static int child_exec_count(void)
{
	const char *tree = getenv("WEFT_TREE");
	char path[512];
	snprintf(path, sizeof path, "%s/examples/count", tree ? tree : "build");
	int null = open("/dev/null", O_WRONLY);
	dup2(null, 1);
	/* its sleeps at a twentieth: the same timers and tasks, 3 s less */
	execl(path, path, "--scale", "0.05", (char *)NULL);
	return 127;
}

static void test_example_runs_under_docker_profile(void **state)
{
	(void)state;
	struct child_out o;
	run_child(EPERM, NULL, child_exec_count, &o);
	if (o.status == 127) {
		print_message("skip: examples/count not built in this tree\n");
		skip();
	}
	assert_int_equal(o.status, 0);
	assert_true(has(&o, "weft: io_uring refused (seccomp, EPERM"));
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_auto_falls_back_under_seccomp),
	cmocka_unit_test(test_auto_falls_back_on_enosys),
	cmocka_unit_test(test_quiet_fallback_prints_nothing),
	cmocka_unit_test(test_strict_io_uring_fails_with_reason),
	cmocka_unit_test(test_env_overrides_config),
	cmocka_unit_test(test_unfiltered_choices),
	cmocka_unit_test(test_bad_backend_config_einval),
	cmocka_unit_test(test_example_runs_under_docker_profile),
};

WEFT_TEST_MAIN(tests)
