/*
 * The io_uring driver and the raw operations of weft/io.h: results,
 * batching (one enter per loop iteration), CQ overflow, feature probe,
 * cancellation and deadlines of in-flight ops, bad input.
 * Recorded in tasks, asserted on the test's stack (docs/architecture.md,
 * rule 7).
 */
#include "weft_test.h"
#include "weft_test_io.h"
#include "runtime/internal.h" /* weft_loop.sqe_fail: fault injection */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static weft_runtime_config cfg_loops(unsigned loops)
{
	weft_runtime_config c;
	weft_runtime_config_init(&c);
	c.loops = loops;
	return c;
}

/* ---- files through the raw ops ---- */

struct files_rec {
	char dir[64];
	long wr, rd, prd, st_size, fs, fa, mk, rn, ul, ul2, rmd, wv, rv, wall;
	char back[16], vec[12];
};

static void *files_body(void *arg)
{
	struct files_rec *x = arg;
	char path[128], path2[128], sub[128];
	snprintf(path, sizeof(path), "%s/a", x->dir);
	snprintf(path2, sizeof(path2), "%s/b", x->dir);
	snprintf(sub, sizeof(sub), "%s/sub", x->dir);
	int fd = weft_openat(AT_FDCWD, path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (fd < 0)
		return P(1);
	x->wr = weft_write(fd, "hello world", 11, 0);
	x->rd = weft_read(fd, x->back, 5, 0);
	x->prd = weft_read(fd, x->back + 5, 5, 6);
	struct statx stx;
	x->st_size = weft_statx(AT_FDCWD, path, 0, STATX_SIZE, &stx) == 0 ? (long)stx.stx_size : -1;
	x->fs = weft_fsync(fd) | weft_fdatasync(fd);
	x->fa = weft_fallocate(fd, 0, 0, 4096);
	struct iovec w[2] = { { "abc", 3 }, { "defgh", 5 } };
	x->wv = weft_writev(fd, w, 2, 100);
	struct iovec r[2] = { { x->vec, 4 }, { x->vec + 4, 4 } };
	x->rv = weft_readv(fd, r, 2, 100);
	x->wall = weft_write_all(fd, "0123456789", 10, 200, NULL);
	weft_close(fd);
	x->mk = weft_mkdirat(AT_FDCWD, sub, 0755);
	x->rn = weft_renameat(AT_FDCWD, path, AT_FDCWD, path2, 0);
	x->ul = weft_unlinkat(AT_FDCWD, path2, 0);
	x->ul2 = weft_unlinkat(AT_FDCWD, path2, 0);
	x->rmd = weft_unlinkat(AT_FDCWD, sub, AT_REMOVEDIR);
	return NULL;
}

static void test_file_ops(void **state)
{
	(void)state;
	struct files_rec x = { 0 };
	strcpy(x.dir, "/tmp/weft-io-XXXXXX");
	assert_non_null(mkdtemp(x.dir));
	assert_null(weft_test_run_loops(2, files_body, &x));
	assert_int_equal(x.wr, 11);
	assert_int_equal(x.rd, 5);
	assert_int_equal(x.prd, 5);
	assert_memory_equal(x.back, "helloworld", 10);
	assert_int_equal(x.st_size, 11);
	assert_int_equal(x.fs, 0);
	assert_int_equal(x.fa, 0);
	assert_int_equal(x.wv, 8);
	assert_int_equal(x.rv, 8);
	assert_memory_equal(x.vec, "abcdefgh", 8);
	assert_int_equal(x.wall, 10);
	assert_int_equal(x.mk, 0);
	assert_int_equal(x.rn, 0);
	assert_int_equal(x.ul, 0);
	assert_int_equal(x.ul2, -ENOENT);
	assert_int_equal(x.rmd, 0);
	assert_int_equal(rmdir(x.dir), 0);
}

/* ---- bad input ---- */

struct bad_rec {
	long r[12];
	long wall, sall;
	size_t wall_done, sall_done; /* set to junk first: must come back 0 */
};

static void *bad_body(void *arg)
{
	struct bad_rec *x = arg;
	char b[4];
	x->r[0] = weft_read(-1, b, 4, 0);
	x->r[1] = weft_recv(12345, b, 4, 0);
	x->r[2] = weft_read(0, NULL, 4, 0);
	x->r[3] = weft_readv(0, NULL, 1, 0);
	struct iovec iov = { b, 4 };
	x->r[4] = weft_writev(1, &iov, 0, 0);
	x->r[5] = weft_shutdown(0, 7);
	x->r[6] = weft_close(-1);
	x->r[7] = weft_openat(AT_FDCWD, NULL, 0, 0);
	x->r[8] = weft_fd_wait(-1, POLLIN);
	x->r[9] = weft_fd_wait(0, 0);
	x->r[10] = weft_connect(0, NULL, 0);
	x->r[11] = weft_fallocate(0, 0, -1, 10);
	x->wall_done = x->sall_done = 77;
	x->wall = weft_write_all(1, NULL, 4, WEFT_OFF_CUR, &x->wall_done);
	x->sall = weft_send_all(1, NULL, 4, 0, &x->sall_done);
	return NULL;
}

static void test_bad_input(void **state)
{
	(void)state;
	struct bad_rec x;
	assert_null(weft_test_run_loops(1, bad_body, &x));
	assert_int_equal(x.r[0], -EBADF);
	assert_int_equal(x.r[1], -EBADF);
	for (int i = 2; i < 6; i++)
		assert_int_equal(x.r[i], -EINVAL);
	assert_int_equal(x.r[6], -EBADF);
	assert_int_equal(x.r[7], -EINVAL);
	assert_int_equal(x.r[8], -EBADF);
	assert_int_equal(x.r[9], -EINVAL);
	assert_int_equal(x.r[10], -EINVAL);
	assert_int_equal(x.r[11], -EINVAL);
	/* the *_all calls report what moved on every error (weft/io.h) */
	assert_int_equal(x.wall, -EINVAL);
	assert_int_equal(x.wall_done, 0);
	assert_int_equal(x.sall, -EINVAL);
	assert_int_equal(x.sall_done, 0);
}

static void test_not_a_task(void **state)
{
	(void)state;
	char b[4];
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(weft_recv(sv[0], b, 4, 0), -EPERM);
	assert_int_equal(weft_send(sv[0], "x", 1, 0), -EPERM);
	assert_int_equal(weft_close(sv[0]), -EPERM);
	close(sv[0]);
	close(sv[1]);
}

/* ---- cancellation and deadlines of in-flight ops ---- */

struct cancel_rec {
	int sv[2];
	long recv_rc, join_rc, after_rc, scoped_rc, scope_fired, entry_rc;
	char after[8];
};

static void *blocked_recv(void *arg)
{
	struct cancel_rec *x = arg;
	char b[8];
	x->recv_rc = weft_recv(x->sv[1], b, sizeof(b), 0);
	return NULL;
}

static void *cancel_body(void *arg)
{
	struct cancel_rec *x = arg;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->sv))
		return P(1);
	weft_task *t;
	if (weft_task_spawn(&t, blocked_recv, x))
		return P(1);
	weft_sleep(5 * MS); /* in flight now */
	weft_task_cancel(t);
	x->join_rc = weft_task_join(t, NULL);
	weft_task_release(t);
	/* The cancelled recv consumed nothing: the next one gets the bytes. */
	weft_send(x->sv[0], "abc", 3, 0);
	x->after_rc = weft_recv(x->sv[1], x->after, sizeof(x->after), 0);
	weft_scope s;
	weft_scope_enter(&s, 20 * MS);
	char b[8];
	x->scoped_rc = weft_recv(x->sv[1], b, sizeof(b), 0);
	x->entry_rc = weft_recv(x->sv[1], b, sizeof(b), 0); /* scope is sticky */
	x->scope_fired = weft_scope_exit(&s);
	close(x->sv[0]);
	close(x->sv[1]);
	return NULL;
}

static void test_cancel_and_timeout_inflight(void **state)
{
	(void)state;
	/* Each loop count, each ring mode: the fallbacks take this path too. */
	for (unsigned i = 0; i < 6; i++) {
		struct cancel_rec x = { 0 };
		weft_runtime_config c = cfg_loops(1 + i % 2);
		c.ring_mode = i / 2;
		assert_int_equal(weft_run(&c, cancel_body, &x, NULL), 0);
		assert_int_equal(x.recv_rc, -ECANCELED);
		assert_int_equal(x.after_rc, 3);
		assert_memory_equal(x.after, "abc", 3);
		assert_int_equal(x.scoped_rc, -ETIMEDOUT);
		assert_int_equal(x.entry_rc, -ETIMEDOUT);
		assert_int_equal(x.scope_fired, 1);
	}
}

/* A result that races the cancellation is returned, not lost. */
struct race_rec {
	int sv[2];
	_Atomic long got;
	long sent;
};

static void *race_reader(void *arg)
{
	struct race_rec *x = arg;
	char b[64];
	for (;;) {
		ssize_t r = weft_recv(x->sv[1], b, sizeof(b), 0);
		if (r <= 0)
			return NULL;
		atomic_fetch_add(&x->got, r);
	}
}

static void *race_body(void *arg)
{
	struct race_rec *x = arg;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->sv))
		return P(1);
	unsigned rounds = WEFT_TEST_SANITIZED ? 200 : 1000;
	for (unsigned i = 0; i < rounds; i++) {
		weft_task *t;
		if (weft_task_spawn(&t, race_reader, x))
			return P(1);
		if (i & 1)
			weft_yield();
		x->sent += weft_send(x->sv[0], "0123456789", 10, 0);
		weft_task_cancel(t);
		weft_task_join(t, NULL);
		weft_task_release(t);
	}
	/* Whatever no reader took is still in the socket. */
	shutdown(x->sv[0], SHUT_WR);
	race_reader(x);
	close(x->sv[0]);
	close(x->sv[1]);
	return NULL;
}

static void test_cancel_race_loses_no_bytes(void **state)
{
	(void)state;
	struct race_rec x = { 0 };
	assert_null(weft_test_run_loops(2, race_body, &x));
	assert_int_equal(atomic_load(&x.got), x.sent);
}

/* ---- batching, overflow, probe ---- */

struct batch_rec {
	unsigned n;
	_Atomic unsigned ok;
	uint64_t enters, ops, overflows;
	unsigned features, backend;
};

static void *nop_pair(void *arg)
{
	struct batch_rec *x = arg;
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return NULL;
	char c = 'x';
	if (weft_write(p[1], &c, 1, WEFT_OFF_CUR) == 1 && weft_read(p[0], &c, 1, WEFT_OFF_CUR) == 1)
		atomic_fetch_add(&x->ok, 1);
	close(p[0]);
	close(p[1]);
	return NULL;
}

static void *batch_body(void *arg)
{
	struct batch_rec *x = arg;
	weft_task **ts = calloc(x->n, sizeof(*ts));
	for (unsigned i = 0; i < x->n; i++)
		weft_task_spawn(&ts[i], nop_pair, x);
	for (unsigned i = 0; i < x->n; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	free(ts);
	weft_runtime_stats st;
	weft_runtime_stats_get(weft_runtime_current(), &st);
	x->enters = st.loop[0].enters;
	x->ops = st.loop[0].ops;
	x->overflows = st.loop[0].cq_overflows;
	x->features = st.ring_features;
	x->backend = st.backend;
	return NULL;
}

static void test_batched_submission(void **state)
{
	(void)state;
	struct batch_rec x = { .n = 2000 };
	weft_runtime_config c = cfg_loops(1);
	assert_int_equal(weft_run(&c, batch_body, &x, NULL), 0);
	assert_int_equal(atomic_load(&x.ok), x.n);
	assert_true(x.ops >= 2 * x.n);
	/* Thousands of ops, a handful per enter (io_uring_enter, or
	 * epoll_wait): not one enter per op. */
	assert_true(x.enters * 4 < x.ops);
	if (x.backend == WEFT_BACKEND_IO_URING)
		assert_true(x.features & WEFT_RING_CQSIZE);
}

struct ovf_rec {
	int sv[2];
	long got;
};

static _Atomic int ovf_started;

static void *ovf_reader(void *arg)
{
	struct ovf_rec *x = arg;
	char c;
	atomic_fetch_add(&ovf_started, 1);
	x->got = weft_recv(x->sv[1], &c, 1, 0);
	return NULL;
}

static void *hog_loop(void *arg)
{
	(void)arg;
	uint64_t end = weft_now_ns() + 200 * MS;
	while (weft_now_ns() < end)
		; /* keeps the loop from reaping */
	return NULL;
}

/* 1000 receives complete at once into a 256-entry CQ: the kernel keeps
 * the overflow and the loop must drain it, waking every task. */
static void test_cq_overflow_loses_nothing(void **state)
{
	(void)state;
	enum { N = 1000 };
	weft_runtime_config c = cfg_loops(1);
	c.ring_cq_entries = 256;
	/* DEFER_TASKRUN kernels (6.10+) post at most ~20 deferred completions
	 * per enter, so they never overflow: a plain ring does. */
	c.ring_mode = WEFT_RING_MODE_PLAIN;
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &c), 0);
	static struct ovf_rec x[N];
	static weft_task *ts[N];
	for (int i = 0; i < N; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x[i].sv), 0);
		x[i].got = 0;
		assert_int_equal(weft_runtime_spawn(rt, &ts[i], NULL, ovf_reader, &x[i]), 0);
	}
	/* Every reader has started (slow under TSan: a fixed sleep was not
	 * always enough); then let the idle loop submit their receives. */
	for (int i = 0; i < 10000 && atomic_load(&ovf_started) < N; i++)
		msleep(1);
	msleep(100); /* all parked in recv, submitted */
	weft_task *hog;
	assert_int_equal(weft_runtime_spawn(rt, &hog, NULL, hog_loop, NULL), 0);
	msleep(20);
	for (int i = 0; i < N; i++)
		assert_int_equal(write(x[i].sv[0], "x", 1), 1);
	weft_task_join(hog, NULL);
	weft_task_release(hog);
	for (int i = 0; i < N; i++) {
		assert_int_equal(weft_task_join(ts[i], NULL), 0);
		weft_task_release(ts[i]);
		assert_int_equal(x[i].got, 1);
		close(x[i].sv[0]);
		close(x[i].sv[1]);
	}
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	weft_runtime_destroy(rt);
	if (!(st.ring_features & WEFT_RING_NODROP))
		skip(); /* pre-5.5 kernel: overflow drops (not on these machines) */
	print_message("cq overflows: %llu\n", (unsigned long long)st.loop[0].cq_overflows);
	assert_true(st.loop[0].cq_overflows > 0);
}

static void test_ring_config_checked(void **state)
{
	(void)state;
	weft_runtime_config c = cfg_loops(1);
	c.ring_cq_entries = 16; /* smaller than the SQ */
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &c), -EINVAL);
	c = cfg_loops(1);
	c.ring_entries = 65536;
	assert_int_equal(weft_runtime_start(&rt, &c), -EINVAL);
}

/* ---- readiness of a foreign fd, splice ---- */

struct ready_rec {
	int p[2];
	long ready, spliced, got;
	char buf[8];
};

static void *writer_later(void *arg)
{
	struct ready_rec *x = arg;
	weft_sleep(5 * MS);
	if (write(x->p[1], "ping", 4) != 4)
		return P(1);
	return NULL;
}

static void *ready_body(void *arg)
{
	struct ready_rec *x = arg;
	if (pipe2(x->p, O_CLOEXEC | O_NONBLOCK))
		return P(1);
	weft_task *t;
	weft_task_spawn(&t, writer_later, x);
	x->ready = weft_fd_wait(x->p[0], POLLIN);
	weft_task_join(t, NULL);
	weft_task_release(t);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return P(1);
	x->spliced = weft_splice(x->p[0], WEFT_OFF_CUR, sv[0], WEFT_OFF_CUR, 4, 0);
	x->got = weft_recv(sv[1], x->buf, sizeof(x->buf), 0);
	close(sv[0]);
	close(sv[1]);
	close(x->p[0]);
	close(x->p[1]);
	return NULL;
}

static void test_fd_wait_and_splice(void **state)
{
	(void)state;
	struct ready_rec x = { 0 };
	assert_null(weft_test_run_loops(2, ready_body, &x));
	assert_true(x.ready & POLLIN);
	assert_int_equal(x.spliced, 4);
	assert_int_equal(x.got, 4);
	assert_memory_equal(x.buf, "ping", 4);
}

/* A splice out of a blocking socket with nothing to read yet waits in the
 * task, not in the loop's thread: the kernel ignores SPLICE_F_NONBLOCK on
 * that side, so epoll's attempt must wait for readiness first.  A ticker
 * on the same (only) loop keeps running meanwhile. */
struct bsplice_rec {
	int sv[2];
	long spliced, ticks_during;
	_Atomic bool done;
	char buf[8];
	long got;
};

static void *ticker(void *arg)
{
	struct bsplice_rec *x = arg;
	long n = 0;
	while (!atomic_load(&x->done) && n < 1000) {
		weft_sleep(1 * MS);
		n++;
	}
	return P(n);
}

static void *late_sender(void *arg)
{
	struct bsplice_rec *x = arg;
	weft_sleep(30 * MS);
	return P(send(x->sv[1], "pong", 4, MSG_NOSIGNAL) != 4);
}

static void *bsplice_body(void *arg)
{
	struct bsplice_rec *x = arg;
	if (tcp_loop_pair(x->sv) < 0)
		return P(1);
	int fl = fcntl(x->sv[0], F_GETFL);
	fcntl(x->sv[0], F_SETFL, fl & ~O_NONBLOCK); /* the caller's blocking socket */
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return P(1);
	weft_task *tk, *snd;
	weft_task_spawn(&tk, ticker, x);
	weft_task_spawn(&snd, late_sender, x);
	x->spliced = weft_splice(x->sv[0], WEFT_OFF_CUR, p[1], WEFT_OFF_CUR, 4096, 0);
	atomic_store(&x->done, true);
	void *n = NULL;
	weft_task_join(tk, &n);
	x->ticks_during = (long)U(n);
	weft_task_join(snd, NULL);
	weft_task_release(tk);
	weft_task_release(snd);
	x->got = read(p[0], x->buf, sizeof(x->buf));
	close(p[0]);
	close(p[1]);
	close(x->sv[0]);
	close(x->sv[1]);
	return NULL;
}

static void test_splice_from_blocking_socket_waits_in_task(void **state)
{
	(void)state;
	struct bsplice_rec x = { 0 };
	assert_null(weft_test_run_loops(1, bsplice_body, &x));
	print_message("the ticker ran %ld times during the splice\n", x.ticks_during);
	assert_int_equal(x.spliced, 4);
	assert_int_equal(x.got, 4);
	assert_memory_equal(x.buf, "pong", 4);
	assert_true(x.ticks_during >= 5); /* ~30 ticks; 0 if the loop blocked */
}

/* ---- a reader that went away: -EPIPE, never SIGPIPE ---- */

struct epipe_rec {
	long wr, wv, wall, splice, sock_wr, sock_send, off_rc, pool_errno;
	long st_write, st_flush;
};

/* Runs on the blocking pool: a plain write(2) there. */
static void *pool_write(void *arg)
{
	char c = 'x';
	ssize_t w = write((int)U(arg), &c, 1);
	return P(w < 0 ? errno : 0);
}

static void *epipe_body(void *arg)
{
	struct epipe_rec *x = arg;
	int p[2], q[2], sv[2];
	if (pipe2(p, O_CLOEXEC) || pipe2(q, O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return P(1);
	close(p[0]); /* every write to p[1] now raises SIGPIPE */
	close(sv[1]);
	x->wr = weft_write(p[1], "x", 1, WEFT_OFF_CUR);
	struct iovec v = { "ab", 2 };
	x->wv = weft_writev(p[1], &v, 1, WEFT_OFF_CUR);
	x->wall = weft_write_all(p[1], "abc", 3, WEFT_OFF_CUR, NULL);
	if (write(q[1], "abcd", 4) != 4)
		return P(1);
	x->splice = weft_splice(q[0], WEFT_OFF_CUR, p[1], WEFT_OFF_CUR, 4, 0);
	void *res = NULL;
	x->off_rc = weft_offload(pool_write, P(p[1]), &res);
	x->pool_errno = (long)U(res);
	x->sock_wr = weft_write(sv[0], "x", 1, WEFT_OFF_CUR); /* write(2), not send */
	x->sock_send = weft_send(sv[0], "x", 1, 0);
	close(p[1]);
	/* A fresh pipe: once spliced into, a pipe refuses RWF_NOWAIT
	 * (EOPNOTSUPP), which the epoll backend's stream send does not
	 * handle (another matter). */
	if (pipe2(p, O_CLOEXEC))
		return P(1);
	close(p[0]);
	weft_stream *s = NULL;
	if (weft_stream_open(&s, p[1], NULL) == 0) { /* the stream owns p[1] */
		x->st_write = weft_stream_write(s, "hello", 5);
		x->st_flush = weft_stream_flush(s);
		weft_stream_close(s);
	}
	close(q[0]);
	close(q[1]);
	close(sv[0]);
	return NULL;
}

/* Writes to a pipe or socket whose reader is gone, on the backend's own
 * path (io_uring's WRITE, epoll's non-blocking attempt), through splice,
 * a stream's background send and a plain write on the blocking pool: each
 * returns -EPIPE and the process lives.  SIGPIPE is set to its default
 * first, as a program that never touched it has it. */
static void test_write_to_closed_reader_epipe(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_DFL);
	for (unsigned loops = 1; loops <= 2; loops++) {
		struct epipe_rec x = { 0 };
		weft_runtime_config c = cfg_loops(loops);
		assert_int_equal(weft_run(&c, epipe_body, &x, NULL), 0);
		assert_int_equal(x.wr, -EPIPE);
		assert_int_equal(x.wv, -EPIPE);
		assert_int_equal(x.wall, -EPIPE);
		assert_int_equal(x.splice, -EPIPE);
		assert_int_equal(x.off_rc, 0);
		assert_int_equal(x.pool_errno, EPIPE);
		assert_int_equal(x.sock_wr, -EPIPE);
		assert_int_equal(x.sock_send, -EPIPE);
		assert_int_equal(x.st_write, 5);
		assert_int_equal(x.st_flush, -EPIPE);
	}
	/* The runtime gave SIGPIPE its default back when it stopped. */
	struct sigaction sa;
	assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_DFL);
}

/* ---- no SQE to be had: nothing is dropped ---- */

/* Fault injection on the calling task's loop: its next n SQE requests
 * find none, as if the SQ were full and the kernel refused its flush
 * (io_uring only; the epoll backend has no SQ and ignores it). */
static void *set_sqe_fail(void *arg)
{
	weft__loop_self()->sqe_fail = (unsigned)U(arg);
	return NULL;
}

static void *get_sqe_fail(void *arg)
{
	(void)arg;
	return P(weft__loop_self()->sqe_fail);
}

static _Atomic int sq_ran;

static void *mark_ran(void *arg)
{
	(void)arg;
	atomic_store(&sq_ran, 1);
	return NULL;
}

/* A foreign thread spawns into the (sleeping) loop: does it run within
 * 10 s?  The loop can only learn of it through its eventfd. */
static bool foreign_spawn_runs(weft_runtime *rt)
{
	msleep(50); /* the loop is asleep now */
	atomic_store(&sq_ran, 0);
	weft_task *t = NULL;
	if (weft_runtime_spawn(rt, &t, NULL, mark_ran, NULL) < 0)
		return false;
	for (int i = 0; i < 10000 && !atomic_load(&sq_ran); i++)
		msleep(1);
	bool ran = atomic_load(&sq_ran);
	if (ran)
		weft_task_join(t, NULL);
	weft_task_release(t);
	return ran;
}

struct sqc_rec {
	int sv[2];
	long recv_rc;
	_Atomic int done;
};

static void *sqc_reader(void *arg)
{
	struct sqc_rec *x = arg;
	char b[8];
	x->recv_rc = weft_recv(x->sv[1], b, sizeof b, 0);
	atomic_store(&x->done, 1);
	return NULL;
}

/* With the reader's receive in flight, its cancel finds no SQE. */
static void *sqc_canceller(void *arg)
{
	struct sqc_rec *x = arg;
	weft_task *t;
	if (weft_task_spawn(&t, sqc_reader, x) < 0)
		return NULL;
	weft_sleep(5 * MS); /* the receive is in the kernel */
	weft__loop_self()->sqe_fail = 1;
	weft_task_cancel(t);
	weft_task_release(t); /* not joined: the test watches x->done */
	return NULL;
}

/* The re-arm of the loop's eventfd read and an async cancel find the SQ
 * full and unflushable: both wait in the loop's backlog instead of being
 * dropped, so a foreign thread still wakes the loop, and the cancelled
 * receive still returns.  (Dropped, the loop slept through every later
 * foreign wake, and the cancelled task waited forever.) */
static void test_sq_full_wake_and_cancel_not_dropped(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(1);
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	bool uring = st.backend == WEFT_BACKEND_IO_URING;

	/* The eventfd: the next wake's re-arm finds no SQE. */
	assert_int_equal(weft_runtime_call(rt, set_sqe_fail, P(1), NULL), 0);
	assert_true(foreign_spawn_runs(rt)); /* its wake reads the eventfd */
	assert_true(foreign_spawn_runs(rt)); /* needs the re-armed read */
	assert_true(foreign_spawn_runs(rt));
	void *left = NULL;
	assert_int_equal(weft_runtime_call(rt, get_sqe_fail, NULL, &left), 0);
	if (uring)
		assert_int_equal(U(left), 0); /* the fault did hit */

	/* The cancel. */
	struct sqc_rec x = { .recv_rc = 1 };
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x.sv), 0);
	weft_task *c;
	assert_int_equal(weft_runtime_spawn(rt, &c, NULL, sqc_canceller, &x), 0);
	for (int i = 0; i < 10000 && !atomic_load(&x.done); i++)
		msleep(1);
	assert_true(atomic_load(&x.done));
	assert_int_equal(x.recv_rc, -ECANCELED);
	assert_int_equal(weft_task_join(c, NULL), 0);
	weft_task_release(c);
	assert_int_equal(weft_runtime_call(rt, get_sqe_fail, NULL, &left), 0);
	if (uring)
		assert_int_equal(U(left), 0);
	assert_true(foreign_spawn_runs(rt));
	close(x.sv[0]);
	close(x.sv[1]);
	weft_runtime_destroy(rt);
}

struct backlog_rec {
	int p[2], sv[2];
	long wr, rd, st_write, st_flush, cancel_rc, join_rc, after, peer;
	bool was_queued;
	char got[4];
};

static void *backlog_body(void *arg)
{
	struct backlog_rec *x = arg;
	if (pipe2(x->p, O_CLOEXEC) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->sv))
		return P(1);
	/* A task's op and a stream's send that find no SQE still run. */
	weft__loop_self()->sqe_fail = 1;
	x->wr = weft_write(x->p[1], "a", 1, WEFT_OFF_CUR);
	if (x->wr == 1)
		x->rd = weft_read(x->p[0], x->got, 1, WEFT_OFF_CUR);
	weft_stream *s = NULL;
	if (weft_stream_open(&s, x->sv[0], NULL) < 0)
		return P(1);
	weft__loop_self()->sqe_fail = 1;
	x->st_write = weft_stream_write(s, "bcd", 3);
	x->st_flush = weft_stream_flush(s);
	if (x->st_flush == 0)
		x->peer = weft_recv(x->sv[1], x->got + 1, 3, 0);
	/* Cancelled while still in the backlog: -ECANCELED, nothing read. */
	weft__loop_self()->sqe_fail = 1u << 30;
	weft_task *t;
	struct sqc_rec r = { .recv_rc = 1 };
	r.sv[1] = x->sv[1];
	if (weft_task_spawn(&t, sqc_reader, &r) < 0)
		return P(1);
	weft_yield(); /* it runs, finds no SQE, parks */
	weft_yield();
	x->was_queued = weft__loop_self()->ubl_head != NULL;
	weft_task_cancel(t);
	weft_yield();
	weft__loop_self()->sqe_fail = 0;
	x->join_rc = weft_task_join(t, NULL);
	weft_task_release(t);
	x->cancel_rc = r.recv_rc;
	char c = 0;
	x->after = weft_stream_write(s, "e", 1) == 1 && weft_stream_flush(s) == 0 &&
		   weft_recv(x->sv[1], &c, 1, 0) == 1 && c == 'e';
	weft_stream_close(s); /* closes sv[0] */
	close(x->sv[1]);
	close(x->p[0]);
	close(x->p[1]);
	return NULL;
}

/* The same backlog for a task's op, a stream's send (a callback op) and an
 * op cancelled before it reached the kernel. */
static void test_sq_full_ops_wait_in_backlog(void **state)
{
	(void)state;
	struct backlog_rec x = { 0 };
	weft_runtime_config c = cfg_loops(1);
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &c), 0);
	weft_runtime_stats st;
	weft_runtime_stats_get(rt, &st);
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, backlog_body, &x, &res), 0);
	weft_runtime_destroy(rt);
	assert_null(res);
	assert_int_equal(x.wr, 1); /* was -EBUSY */
	assert_int_equal(x.rd, 1);
	assert_int_equal(x.st_write, 3);
	assert_int_equal(x.st_flush, 0); /* was -EBUSY */
	assert_int_equal(x.peer, 3);
	assert_memory_equal(x.got, "abcd", 4);
	if (st.backend == WEFT_BACKEND_IO_URING)
		assert_true(x.was_queued);
	assert_int_equal(x.cancel_rc, -ECANCELED);
	assert_int_equal(x.join_rc, -ECANCELED); /* it saw the cancellation */
	assert_true(x.after); /* the cancelled receive took nothing */
}

/* ---- weft_send_zc ---- */

struct zc_raw_rec {
	int setup;
	ssize_t sent;     /* 1 MiB over TCP, in weft_send_zc calls */
	size_t got, bad;
	ssize_t unix_rc;  /* on a socketpair: -EOPNOTSUPP (io_uring) or 5 */
	unsigned backend, features;
};

struct zc_raw_ctx {
	int peer;
	struct zc_raw_rec rec;
};

static void *zc_raw_reader(void *arg)
{
	struct zc_raw_ctx *c = arg;
	struct zc_raw_rec *x = &c->rec;
	char *buf = malloc(65536);
	ssize_t r;
	while (buf && (r = weft_recv(c->peer, buf, 65536, 0)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			x->bad += (uint8_t)buf[i] != (uint8_t)((x->got + (size_t)i) * 7);
		x->got += (size_t)r;
	}
	free(buf);
	return NULL;
}

static void *zc_raw_main(void *arg)
{
	struct zc_raw_ctx *c = arg;
	struct zc_raw_rec *x = &c->rec;
	weft_runtime_stats st;
	weft_runtime_stats_get(weft_runtime_current(), &st);
	x->backend = st.backend;
	x->features = st.ring_features;
	int sv[2];
	if (tcp_loop_pair(sv) < 0) {
		x->setup = -1;
		return NULL;
	}
	int fd = sv[0];
	c->peer = sv[1];
	weft_task *rd;
	weft_task_spawn(&rd, zc_raw_reader, c);
	size_t n = 1u << 20, done = 0;
	uint8_t *b = malloc(n);
	for (size_t i = 0; b && i < n; i++)
		b[i] = (uint8_t)(i * 7);
	while (b && done < n) {
		ssize_t r = weft_send_zc(fd, b + done, n - done, 0);
		if (r <= 0) {
			x->sent = r;
			break;
		}
		memset(b + done, 0xEE, (size_t)r); /* returned: the kernel is done */
		done += (size_t)r;
		x->sent = (ssize_t)done;
	}
	free(b);
	close(fd);
	weft_task_join(rd, NULL);
	weft_task_release(rd);
	close(c->peer);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		x->unix_rc = weft_send_zc(sv[0], "hello", 5, 0);
		close(sv[0]);
		close(sv[1]);
	}
	return NULL;
}

static void test_send_zc_raw(void **state)
{
	(void)state;
	struct zc_raw_ctx c = { 0 };
	weft_test_run_loops(2, zc_raw_main, &c);
	struct zc_raw_rec *x = &c.rec;
	assert_int_equal(x->setup, 0);
	assert_int_equal(x->sent, 1 << 20);
	assert_int_equal(x->got, 1u << 20);
	assert_int_equal(x->bad, 0);
	print_message("zero-copy sends %s\n",
		      x->features & WEFT_RING_SEND_ZC ? "on (IORING_OP_SEND_ZC)" : "off: copies");
	/* AF_UNIX has no zero-copy: refused where it is really tried */
	assert_int_equal(x->unix_rc, x->features & WEFT_RING_SEND_ZC ? -EOPNOTSUPP : 5);
}

/* ---- wake coalescing (weft_runtime_config.coalesce_us) ---- */

enum { CO_N = 4 };

struct co_rec {
	int sv[CO_N][2];
	weft_task *rd[CO_N];
	uint64_t got_ns[CO_N]; /* when each reader had its byte */
	long got[CO_N];
	uint64_t write_after_ns; /* the writer thread's delay */
	int wfrom, wto;          /* it writes to sockets [wfrom, wto) */
	uint64_t sent_ns;        /* when it wrote */
	uint64_t sleep_ns;       /* a 20 ms sleep with the readers in flight */
	uint64_t first_ns;       /* reader 0's byte: sent to received */
	uint64_t batch_ns;       /* readers 1-3: sent to the last received */
	uint64_t idle_enters;    /* enters while waiting with no timer */
	unsigned features, backend;
	int setup;
};

struct co_reader {
	struct co_rec *x;
	int i;
};

static void *co_read(void *arg)
{
	struct co_reader *r = arg;
	char c;
	r->x->got[r->i] = weft_recv(r->x->sv[r->i][1], &c, 1, 0);
	r->x->got_ns[r->i] = weft_now_ns();
	return NULL;
}

static void *co_writer(void *arg)
{
	struct co_rec *x = arg;
	struct timespec d = { (time_t)(x->write_after_ns / 1000000000u),
			      (long)(x->write_after_ns % 1000000000u) };
	nanosleep(&d, NULL);
	x->sent_ns = weft_now_ns();
	for (int i = x->wfrom; i < x->wto; i++)
		if (write(x->sv[i][0], "x", 1) != 1)
			x->setup = -1;
	return NULL;
}

/* A foreign thread writes to sockets [from, to) after `after_ns`, while the
 * readers of those sockets are joined (nothing else runs). */
static void co_write_and_join(struct co_rec *x, int from, int to, uint64_t after_ns)
{
	x->wfrom = from;
	x->wto = to;
	x->write_after_ns = after_ns;
	pthread_t th;
	if (pthread_create(&th, NULL, co_writer, x) != 0) {
		x->setup = -1;
		return;
	}
	for (int i = from; i < to; i++) {
		weft_task_join(x->rd[i], NULL);
		weft_task_release(x->rd[i]);
	}
	pthread_join(th, NULL);
}

static uint64_t co_enters(void)
{
	weft_runtime_stats st;
	weft_runtime_stats_get(weft_runtime_current(), &st);
	return st.loop[0].enters;
}

static void *co_main(void *arg)
{
	struct co_rec *x = arg;
	struct co_reader rs[CO_N];
	for (int i = 0; i < CO_N; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->sv[i]) != 0) {
			x->setup = -1;
			return NULL;
		}
		rs[i] = (struct co_reader){ x, i };
		weft_task_spawn(&x->rd[i], co_read, &rs[i]);
	}
	for (int i = 0; i < 10; i++)
		weft_yield(); /* every reader's receive in flight */
	weft_runtime_stats st;
	weft_runtime_stats_get(weft_runtime_current(), &st);
	x->features = st.ring_features;
	x->backend = st.backend;
	if (x->write_after_ns == 0) { /* the 300 ms runtime */
		uint64_t t0 = weft_now_ns();
		weft_sleep_ms(20);
		x->sleep_ns = weft_now_ns() - t0;
		co_write_and_join(x, 0, 1, 50 * MS);
		x->first_ns = x->got_ns[0] - x->sent_ns;
		co_write_and_join(x, 1, CO_N, 50 * MS);
		uint64_t last = 0;
		for (int i = 1; i < CO_N; i++)
			last = x->got_ns[i] > last ? x->got_ns[i] : last;
		x->batch_ns = last - x->sent_ns;
	} else { /* the 2 ms runtime: a long wait with no timer */
		uint64_t e0 = co_enters();
		co_write_and_join(x, 0, CO_N, x->write_after_ns);
		x->idle_enters = co_enters() - e0;
	}
	for (int i = 0; i < CO_N; i++) {
		close(x->sv[i][0]);
		close(x->sv[i][1]);
	}
	return NULL;
}

static weft_runtime_config cfg_coalesce(unsigned us, unsigned events)
{
	weft_runtime_config c = cfg_loops(1);
	c.coalesce_us = us;
	c.coalesce_events = events;
	return c;
}

/* With 300 ms of coalescing and four receives in flight: a timer still
 * ends the sleep on time; a lone completion waits for the batch (most of
 * the 300 ms: the loop sleeps from before the write); three at once, the
 * whole batch in flight, end the wait at once on io_uring (epoll, which
 * has no batch wait, sleeps the 300 ms). */
static void coalesce_bounds_and_batches(bool min_wait_off)
{
	struct co_rec x = { 0 };
	weft_runtime_config c = cfg_coalesce(300000, CO_N);
	atomic_store(&weft__min_wait_off, min_wait_off);
	int rc = weft_run(&c, co_main, &x, NULL);
	atomic_store(&weft__min_wait_off, false);
	assert_int_equal(rc, 0);
	assert_int_equal(x.setup, 0);
	for (int i = 0; i < CO_N; i++)
		assert_int_equal(x.got[i], 1);
	bool uring = x.backend == WEFT_BACKEND_IO_URING;
	print_message("coalescing on %s%s: 20 ms sleep %.1f ms, lone byte %.1f ms, batch %.1f ms\n",
		      uring ? "io_uring" : "epoll",
		      uring ? (x.features & WEFT_RING_MIN_WAIT ? " (min_wait)" : " (two waits)") : "",
		      x.sleep_ns / 1e6, x.first_ns / 1e6, x.batch_ns / 1e6);
	assert_true(x.sleep_ns >= 20 * MS && x.sleep_ns < 150 * MS);
	assert_true(x.first_ns >= 100 * MS && x.first_ns < 800 * MS);
	if (uring)
		assert_true(x.batch_ns < 150 * MS);
	else
		assert_true(x.batch_ns >= 100 * MS && x.batch_ns < 800 * MS);
}

static void test_coalesce_bounds_and_batches(void **state)
{
	(void)state;
	coalesce_bounds_and_batches(false);
}

/* The same on io_uring without min_wait, as before Linux 6.12. */
static void test_coalesce_bounds_and_batches_two_waits(void **state)
{
	(void)state;
	const char *be = getenv("WEFT_BACKEND");
	if (be && strcmp(be, "epoll") == 0) {
		print_message("SKIP: epoll has no min_wait to turn off (the test above ran it)\n");
		skip();
	}
	coalesce_bounds_and_batches(true);
}

/* Coalescing must not turn a long sleep into one wake per coalesce_us:
 * with 2 ms of it and no timer, 300 ms of waiting take a few enters, not
 * 150 (io_uring's min_wait needs an overall timeout for that). */
static void test_coalesce_idle_loop_sleeps(void **state)
{
	(void)state;
	struct co_rec x = { .write_after_ns = 300 * MS };
	weft_runtime_config c = cfg_coalesce(2000, 32);
	assert_int_equal(weft_run(&c, co_main, &x, NULL), 0);
	assert_int_equal(x.setup, 0);
	for (int i = 0; i < CO_N; i++)
		assert_int_equal(x.got[i], 1);
	print_message("300 ms asleep with 2 ms coalescing: %llu enters\n",
		      (unsigned long long)x.idle_enters);
	assert_true(x.idle_enters < 40);
}

static void test_coalesce_config_checked(void **state)
{
	(void)state;
	weft_runtime_config c = cfg_coalesce(1000001, 32);
	assert_int_equal(weft_run(&c, co_main, NULL, NULL), -EINVAL);
	c = cfg_coalesce(50, 0);
	assert_int_equal(weft_run(&c, co_main, NULL, NULL), -EINVAL);
	weft_runtime_config d;
	weft_runtime_config_init(&d);
	assert_int_equal(d.coalesce_us, 0);
	assert_int_equal(d.coalesce_events, 32);
}

/* Echo traffic between tasks on two loops, coalesced: every byte comes
 * back, and the loops still wake each other (spawns, steals, joins). */
struct co_echo {
	int fd;
	long ok;
};

static void *co_echo_peer(void *arg)
{
	struct co_echo *e = arg;
	char b[64];
	long n;
	while ((n = weft_recv(e->fd, b, sizeof(b), 0)) > 0)
		if (weft_send_all(e->fd, b, (size_t)n, 0, NULL) < 0)
			break;
	return NULL;
}

static void *co_echo_client(void *arg)
{
	struct co_echo *e = arg;
	for (int i = 0; i < 300; i++) {
		char out[16], in[16];
		int len = snprintf(out, sizeof(out), "m%d", i);
		if (weft_send_all(e->fd, out, (size_t)len, 0, NULL) < 0)
			return NULL;
		for (int got = 0, n; got < len; got += n)
			if ((n = (int)weft_recv(e->fd, in + got, (size_t)(len - got), 0)) <= 0)
				return NULL;
		if (memcmp(in, out, (size_t)len))
			return NULL;
		e->ok++;
	}
	return NULL;
}

enum { CO_PAIRS = 16 };

static void *co_echo_main(void *arg)
{
	long *ok = arg;
	struct co_echo cl[CO_PAIRS], pe[CO_PAIRS];
	weft_task *tc[CO_PAIRS], *tp[CO_PAIRS];
	for (int i = 0; i < CO_PAIRS; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			return P(1);
		cl[i] = (struct co_echo){ sv[0], 0 };
		pe[i] = (struct co_echo){ sv[1], 0 };
		weft_task_spawn(&tp[i], co_echo_peer, &pe[i]);
		weft_task_spawn(&tc[i], co_echo_client, &cl[i]);
	}
	for (int i = 0; i < CO_PAIRS; i++) {
		weft_task_join(tc[i], NULL);
		weft_task_release(tc[i]);
		shutdown(cl[i].fd, SHUT_WR);
		weft_task_join(tp[i], NULL);
		weft_task_release(tp[i]);
		close(cl[i].fd);
		close(pe[i].fd);
		*ok += cl[i].ok;
	}
	return NULL;
}

static void test_coalesce_echo_two_loops(void **state)
{
	(void)state;
	long ok = 0;
	weft_runtime_config c = cfg_coalesce(50, 32);
	c.loops = 2;
	uint64_t t0 = weft_now_ns();
	assert_int_equal(weft_run(&c, co_echo_main, &ok, NULL), 0);
	assert_int_equal(ok, CO_PAIRS * 300);
	print_message("%d echo round trips on two coalescing loops: %.0f ms\n", CO_PAIRS * 300,
		      (weft_now_ns() - t0) / 1e6);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_send_zc_raw),
	cmocka_unit_test(test_file_ops),
	cmocka_unit_test(test_bad_input),
	cmocka_unit_test(test_not_a_task),
	cmocka_unit_test(test_cancel_and_timeout_inflight),
	cmocka_unit_test(test_cancel_race_loses_no_bytes),
	cmocka_unit_test(test_batched_submission),
	cmocka_unit_test(test_cq_overflow_loses_nothing),
	cmocka_unit_test(test_ring_config_checked),
	cmocka_unit_test(test_fd_wait_and_splice),
	cmocka_unit_test(test_splice_from_blocking_socket_waits_in_task),
	cmocka_unit_test(test_write_to_closed_reader_epipe),
	cmocka_unit_test(test_sq_full_wake_and_cancel_not_dropped),
	cmocka_unit_test(test_sq_full_ops_wait_in_backlog),
	cmocka_unit_test(test_coalesce_bounds_and_batches),
	cmocka_unit_test(test_coalesce_bounds_and_batches_two_waits),
	cmocka_unit_test(test_coalesce_idle_loop_sleeps),
	cmocka_unit_test(test_coalesce_config_checked),
	cmocka_unit_test(test_coalesce_echo_two_loops),
};

WEFT_TEST_MAIN(tests)
