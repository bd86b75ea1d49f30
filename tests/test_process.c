/*
 * Signals and subprocesses (weft/process.h): delivery to one and to several
 * waiters, cancellation of a wait, pipes both ways and larger than a pipe
 * buffer, exit codes and deaths by signal, kill, exec failures, no zombie
 * after a destroy before wait, cancellation of a process wait.  Recorded in
 * tasks, asserted on the test's stack (docs/architecture.md rule 7).
 */
#include "weft_test.h"

#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

/* Send sig to the whole process, so that any thread may run the handler
 * (under TSan, weft's helper thread: io/signal.c). */
static void signal_process(int sig)
{
	kill(getpid(), sig);
}

static sigset_t one_set(int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	return s;
}

/* ---- signals ---- */

enum { WAITERS = 4 };

struct sigs {
	_Atomic int ready;
	int got[WAITERS];
	int next1, next2, pending, again;
};

struct sig_arg {
	struct sigs *s;
	int i;
};

static void *sig_waiter(void *arg)
{
	struct sigs *s = ((struct sig_arg *)arg)->s;
	int i = ((struct sig_arg *)arg)->i;
	sigset_t set = one_set(SIGUSR1);
	weft_signal *w;
	if (weft_signal_open(&w, &set) < 0) {
		s->got[i] = -1;
		return NULL;
	}
	atomic_fetch_add(&s->ready, 1);
	s->got[i] = weft_signal_next(w);
	weft_signal_close(w);
	return NULL;
}

static void *sig_main(void *arg)
{
	struct sigs *s = arg;
	weft_task *t[WAITERS];
	struct sig_arg a[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		a[i] = (struct sig_arg){ s, i };
		weft_task_spawn(&t[i], sig_waiter, &a[i]);
	}
	while (atomic_load(&s->ready) < WAITERS)
		weft_sleep_ms(1);
	weft_sleep_ms(10); /* let them park */
	signal_process(SIGUSR1); /* any thread may take it */
	for (int i = 0; i < WAITERS; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}

	/* One watcher: deliveries before the wait are kept; two signals of the
	 * set are returned lowest first, each once. */
	sigset_t set = one_set(SIGUSR1);
	sigaddset(&set, SIGUSR2);
	weft_signal *w;
	if (weft_signal_open(&w, &set) < 0)
		return NULL;
	raise(SIGUSR2);
	raise(SIGUSR1);
	s->next1 = weft_signal_next(w);
	s->next2 = weft_signal_next(w);
	/* nothing pending now: a wait under a short scope times out */
	weft_scope sc;
	weft_scope_enter(&sc, 20 * MS);
	s->pending = weft_signal_next(w);
	weft_scope_exit(&sc);
	raise(SIGUSR2);
	s->again = weft_signal_next(w);
	weft_signal_close(w);
	return NULL;
}

static void test_signal_delivery(void **state)
{
	(void)state;
	struct sigs s;
	memset(&s, 0, sizeof s);
	weft_test_run_loops(2, sig_main, &s);
	for (int i = 0; i < WAITERS; i++)
		assert_int_equal(s.got[i], SIGUSR1);
	assert_int_equal(s.next1, SIGUSR1);
	assert_int_equal(s.next2, SIGUSR2);
	assert_int_equal(s.pending, -ETIMEDOUT);
	assert_int_equal(s.again, SIGUSR2);
	/* the default disposition is back */
	struct sigaction sa;
	sigaction(SIGUSR1, NULL, &sa);
	assert_ptr_equal(sa.sa_handler, SIG_DFL);
}

struct sigcancel {
	int r, after;
};

static void *sigwait_task(void *arg)
{
	sigset_t set = one_set(SIGUSR2);
	return P(weft_signal_wait(&set));
}

static void *sigcancel_main(void *arg)
{
	struct sigcancel *c = arg;
	weft_task *t;
	weft_task_spawn(&t, sigwait_task, NULL);
	weft_sleep_ms(20);
	weft_task_cancel(t);
	void *res;
	weft_task_join(t, &res);
	weft_task_release(t);
	c->r = (int)(intptr_t)res;
	/* a fresh one-shot wait still works after that */
	weft_task_spawn(&t, sigwait_task, NULL);
	weft_sleep_ms(20);
	signal_process(SIGUSR2);
	weft_task_join(t, &res);
	weft_task_release(t);
	c->after = (int)(intptr_t)res;
	return NULL;
}

static void test_signal_cancel(void **state)
{
	(void)state;
	struct sigcancel c = { 0, 0 };
	weft_test_run_loops(2, sigcancel_main, &c);
	assert_int_equal(c.r, -ECANCELED);
	assert_int_equal(c.after, SIGUSR2);
}

/* A foreign thread (here the test's) blocks in weft_signal_next. */
static void test_signal_foreign_and_errors(void **state)
{
	(void)state;
	weft_signal *w = NULL;
	sigset_t empty, kill_set = one_set(SIGKILL);
	sigemptyset(&empty);
	assert_int_equal(weft_signal_open(&w, &empty), -EINVAL);
	assert_int_equal(weft_signal_open(&w, &kill_set), -EINVAL);
	assert_int_equal(weft_signal_open(&w, NULL), -EINVAL);
	assert_int_equal(weft_signal_open(NULL, &empty), -EINVAL);
	assert_int_equal(weft_signal_next(NULL), -EINVAL);
	assert_int_equal(weft_signal_close(NULL), -EINVAL);
	sigset_t set = one_set(SIGHUP);
	assert_int_equal(weft_signal_open(&w, &set), 0);
	raise(SIGHUP); /* caught, not fatal */
	assert_int_equal(weft_signal_next(w), SIGHUP);
	assert_int_equal(weft_signal_close(w), 0);
}

/* ---- subprocesses ---- */

static int spawn_argv(weft_process **p, const char *const *argv, int in, int out, int err)
{
	weft_process_config cfg;
	weft_process_config_init(&cfg);
	cfg.argv = argv;
	cfg.stdio[0] = in;
	cfg.stdio[1] = out;
	cfg.stdio[2] = err;
	return weft_process_spawn(p, &cfg);
}

/* Read fd to end of file into buf (at most cap), returning the count. */
static ssize_t read_to_eof(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n < cap) {
		ssize_t r = weft_read(fd, buf + n, cap - n, WEFT_OFF_CUR);
		if (r <= 0)
			return r < 0 ? r : (ssize_t)n;
		n += (size_t)r;
	}
	return (ssize_t)n;
}

struct echo {
	int spawn, wait, close_in;
	ssize_t wrote, got;
	char out[64];
	weft_process_status st;
};

static void *echo_main(void *arg)
{
	struct echo *e = arg;
	const char *argv[] = { "cat", NULL };
	weft_process *p;
	e->spawn = spawn_argv(&p, argv, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_INHERIT);
	if (e->spawn < 0)
		return NULL;
	e->wrote = weft_write_all(weft_process_pipe(p, 0), "through cat\n", 12, WEFT_OFF_CUR,
				  NULL);
	e->close_in = weft_process_pipe_close(p, 0);
	e->got = read_to_eof(weft_process_pipe(p, 1), e->out, sizeof e->out - 1);
	e->wait = weft_process_wait(p, &e->st);
	weft_process_destroy(p);
	return NULL;
}

static void test_echo_through_cat(void **state)
{
	(void)state;
	struct echo e;
	memset(&e, 0, sizeof e);
	weft_test_run_loops(2, echo_main, &e);
	assert_int_equal(e.spawn, 0);
	assert_int_equal(e.wrote, 12);
	assert_int_equal(e.close_in, 0);
	assert_int_equal(e.got, 12);
	assert_string_equal(e.out, "through cat\n");
	assert_int_equal(e.wait, 0);
	assert_int_equal(e.st.exit_code, 0);
	assert_int_equal(e.st.signal, 0);
}

/* 1 MiB through stdout (far over the 64 KiB pipe buffer), and stderr. */
struct big {
	int spawn, wait, pipe_in;
	ssize_t got, err_got;
	char err[64];
	weft_process_status st;
};

static void *big_main(void *arg)
{
	struct big *b = arg;
	const char *argv[] = { "sh", "-c",
			       "head -c 1048576 /dev/zero; echo oops >&2; exit 3", NULL };
	weft_process *p;
	b->spawn = spawn_argv(&p, argv, WEFT_STDIO_DEVNULL, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE);
	if (b->spawn < 0)
		return NULL;
	b->pipe_in = weft_process_pipe(p, 0);
	char *buf = malloc(1 << 21);
	b->got = read_to_eof(weft_process_pipe(p, 1), buf, 1 << 21);
	for (ssize_t i = 0; i < b->got; i++)
		if (buf[i] != 0) {
			b->got = -1;
			break;
		}
	free(buf);
	b->err_got = read_to_eof(weft_process_pipe(p, 2), b->err, sizeof b->err - 1);
	b->wait = weft_process_wait(p, &b->st);
	weft_process_destroy(p);
	return NULL;
}

static void test_large_output_and_stderr(void **state)
{
	(void)state;
	struct big b;
	memset(&b, 0, sizeof b);
	weft_test_run_loops(2, big_main, &b);
	assert_int_equal(b.spawn, 0);
	assert_int_equal(b.pipe_in, -EBADF);
	assert_int_equal(b.got, 1048576);
	assert_int_equal(b.err_got, 5);
	assert_string_equal(b.err, "oops\n");
	assert_int_equal(b.wait, 0);
	assert_int_equal(b.st.exit_code, 3);
}

/* Exit codes, death by signal, kill, stderr to stdout, cwd and envp. */
struct codes {
	int w7, wsig, wkill, kill, kill_after, wait_again, env_got, missing, notexec, bad,
	    bad_fd, bad_mode;
	weft_process_status s7, ssig, skill;
	char env_out[128];
};

static int run_status(const char *const *argv, weft_process_status *st)
{
	weft_process *p;
	int r = spawn_argv(&p, argv, WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL, WEFT_STDIO_DEVNULL);
	if (r < 0)
		return r;
	r = weft_process_wait(p, st);
	weft_process_destroy(p);
	return r;
}

static void *codes_main(void *arg)
{
	struct codes *c = arg;
	const char *exit7[] = { "sh", "-c", "exit 7", NULL };
	const char *segv[] = { "sh", "-c", "kill -TERM $$", NULL };
	c->w7 = run_status(exit7, &c->s7);
	c->wsig = run_status(segv, &c->ssig);

	const char *sleeper[] = { "sleep", "10", NULL };
	weft_process *p;
	if (spawn_argv(&p, sleeper, 0, 0, 0) == 0) {
		c->kill = weft_process_kill(p, SIGKILL);
		c->wkill = weft_process_wait(p, &c->skill);
		c->kill_after = weft_process_kill(p, SIGTERM); /* reaped: -ESRCH */
		weft_process_status again;
		c->wait_again = weft_process_wait(p, &again);
		if (c->wait_again == 0 && again.signal != SIGKILL)
			c->wait_again = 99;
		weft_process_destroy(p);
	}

	weft_process_config cfg;
	weft_process_config_init(&cfg);
	const char *env_argv[] = { "sh", "-c", "echo \"$WEFT_X $(pwd)\"; echo err >&2", NULL };
	const char *envp[] = { "WEFT_X=hello", "PATH=/usr/bin:/bin", NULL };
	cfg.argv = env_argv;
	cfg.envp = envp;
	cfg.cwd = "/";
	cfg.stdio[1] = WEFT_STDIO_PIPE;
	cfg.stdio[2] = WEFT_STDIO_STDOUT;
	c->env_got = weft_process_spawn(&p, &cfg);
	if (c->env_got == 0) {
		read_to_eof(weft_process_pipe(p, 1), c->env_out, sizeof c->env_out - 1);
		weft_process_wait(p, NULL);
		weft_process_destroy(p);
	}

	const char *missing[] = { "weft-no-such-program", NULL };
	c->missing = spawn_argv(&p, missing, 0, 0, 0);
	const char *notexec[] = { "/etc/passwd", NULL };
	c->notexec = spawn_argv(&p, notexec, 0, 0, 0);
	const char *empty[] = { NULL };
	c->bad = spawn_argv(&p, empty, 0, 0, 0);
	c->bad_fd = spawn_argv(&p, sleeper, WEFT_STDIO_FD, 0, 0); /* stdio_fd -1 */
	c->bad_mode = spawn_argv(&p, sleeper, WEFT_STDIO_STDOUT, 0, 0);
	return NULL;
}

static void test_exit_codes_signals_errors(void **state)
{
	(void)state;
	struct codes c;
	memset(&c, 0, sizeof c);
	weft_test_run_loops(2, codes_main, &c);
	assert_int_equal(c.w7, 0);
	assert_int_equal(c.s7.exit_code, 7);
	assert_int_equal(c.s7.signal, 0);
	assert_int_equal(c.wsig, 0);
	assert_int_equal(c.ssig.exit_code, -1);
	assert_int_equal(c.ssig.signal, SIGTERM);
	assert_int_equal(c.kill, 0);
	assert_int_equal(c.wkill, 0);
	assert_int_equal(c.skill.signal, SIGKILL);
	assert_int_equal(c.kill_after, -ESRCH);
	assert_int_equal(c.wait_again, 0);
	assert_int_equal(c.env_got, 0);
	assert_string_equal(c.env_out, "hello /\nerr\n");
	assert_int_equal(c.missing, -ENOENT);
	assert_int_equal(c.notexec, -EACCES);
	assert_int_equal(c.bad, -EINVAL);
	assert_int_equal(c.bad_fd, -EINVAL);
	assert_int_equal(c.bad_mode, -EINVAL);
	/* every child of this process has been reaped */
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* Whether pid is a child of ours that still exists (running or zombie). */
static bool child_exists(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d", (int)pid);
	return access(path, F_OK) == 0;
}

struct zombie {
	pid_t quick, slow, killed;
	int spawned;
};

static void *zombie_main(void *arg)
{
	struct zombie *z = arg;
	weft_process *p;
	const char *quick[] = { "true", NULL };
	const char *slow[] = { "sleep", "0.2", NULL };
	const char *forever[] = { "sleep", "30", NULL };
	if (spawn_argv(&p, quick, 0, 0, 0) == 0) {
		z->quick = weft_process_pid(p);
		weft_sleep_ms(50); /* exited: destroy reaps it itself */
		weft_process_destroy(p);
		z->spawned++;
	}
	if (spawn_argv(&p, slow, 0, WEFT_STDIO_PIPE, 0) == 0) {
		z->slow = weft_process_pid(p);
		weft_process_destroy(p); /* still running: the helper reaps it */
		z->spawned++;
	}
	weft_process_config cfg;
	weft_process_config_init(&cfg);
	cfg.argv = forever;
	cfg.kill_on_destroy = true;
	if (weft_process_spawn(&p, &cfg) == 0) {
		z->killed = weft_process_pid(p);
		weft_process_destroy(p);
		z->spawned++;
	}
	return NULL;
}

static void test_destroy_before_wait_no_zombie(void **state)
{
	(void)state;
	struct zombie z;
	memset(&z, 0, sizeof z);
	weft_test_run_loops(2, zombie_main, &z); /* the runtime is gone: aux is not */
	assert_int_equal(z.spawned, 3);
	assert_false(child_exists(z.quick));
	for (int i = 0; i < 300 && (child_exists(z.slow) || child_exists(z.killed)); i++)
		msleep(10);
	assert_false(child_exists(z.slow));
	assert_false(child_exists(z.killed));
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* Cancelling a task in weft_process_wait: -ECANCELED, the child is still
 * there to wait for. */
struct pcancel {
	weft_process *p;
	int r, later, kill;
	weft_process_status st;
};

static void *pwait_task(void *arg)
{
	struct pcancel *c = arg;
	c->r = weft_process_wait(c->p, NULL);
	return NULL;
}

static void *pcancel_main(void *arg)
{
	struct pcancel *c = arg;
	const char *argv[] = { "sleep", "10", NULL };
	if (spawn_argv(&c->p, argv, 0, 0, 0) < 0)
		return NULL;
	weft_task *t;
	weft_task_spawn(&t, pwait_task, c);
	weft_sleep_ms(20);
	weft_task_cancel(t);
	weft_task_join(t, NULL);
	weft_task_release(t);
	c->kill = weft_process_kill(c->p, SIGTERM); /* still there */
	c->later = weft_process_wait(c->p, &c->st);
	weft_process_destroy(c->p);
	return NULL;
}

static void test_cancel_wait(void **state)
{
	(void)state;
	struct pcancel c;
	memset(&c, 0, sizeof c);
	weft_test_run_loops(2, pcancel_main, &c);
	assert_int_equal(c.r, -ECANCELED);
	assert_int_equal(c.kill, 0);
	assert_int_equal(c.later, 0);
	assert_int_equal(c.st.signal, SIGTERM);
}

/* From the test's own (foreign) thread: spawn works and wait blocks. */
static void test_foreign_thread_wait(void **state)
{
	(void)state;
	const char *argv[] = { "sh", "-c", "exit 5", NULL };
	weft_process *p;
	assert_int_equal(spawn_argv(&p, argv, 0, 0, 0), 0);
	weft_process_status st;
	assert_int_equal(weft_process_wait(p, &st), 0);
	assert_int_equal(st.exit_code, 5);
	assert_int_equal(weft_process_pipe(p, 1), -EBADF);
	assert_int_equal(weft_process_pipe(p, 3), -EINVAL);
	assert_int_equal(weft_process_kill(p, -1), -EINVAL);
	weft_process_destroy(p);
	assert_int_equal(weft_process_wait(NULL, NULL), -EINVAL);
	assert_int_equal(weft_process_spawn(&p, NULL), -EINVAL);
}

/* ---- SIGPIPE: ignored by the runtime, default again in children ---- */

struct yes_rec {
	int spawn, wait, ignored, child_ign;
	ssize_t got;
	weft_process_status st;
	char ign[64];
};

/* SIGPIPE is ignored in this process now. */
static int sigpipe_ignored_here(void)
{
	struct sigaction sa;
	return sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

static void *yes_main(void *arg)
{
	struct yes_rec *y = arg;
	y->ignored = sigpipe_ignored_here();
	/* `yes | head -c 4`: yes must die of SIGPIPE once its reader goes. */
	const char *argv[] = { "yes", NULL };
	weft_process *p;
	y->spawn = spawn_argv(&p, argv, WEFT_STDIO_DEVNULL, WEFT_STDIO_PIPE, WEFT_STDIO_INHERIT);
	if (y->spawn < 0)
		return NULL;
	char b[4];
	y->got = weft_read(weft_process_pipe(p, 1), b, sizeof b, WEFT_OFF_CUR);
	weft_process_pipe_close(p, 1);
	y->wait = weft_process_wait(p, &y->st);
	weft_process_destroy(p);
	/* And what a child's /proc/self/status says about it. */
	const char *argv2[] = { "grep", "SigIgn", "/proc/self/status", NULL };
	if (spawn_argv(&p, argv2, WEFT_STDIO_DEVNULL, WEFT_STDIO_PIPE, WEFT_STDIO_INHERIT) < 0)
		return NULL;
	ssize_t n = read_to_eof(weft_process_pipe(p, 1), y->ign, sizeof y->ign - 1);
	weft_process_wait(p, NULL);
	weft_process_destroy(p);
	unsigned long long mask = 0;
	y->child_ign = n > 0 && sscanf(y->ign, "SigIgn: %llx", &mask) == 1
			       ? (int)((mask >> (SIGPIPE - 1)) & 1) : -1;
	return NULL;
}

/* While a runtime runs, SIGPIPE is ignored in the process (a write to a
 * closed pipe is -EPIPE, test_io); children still start with its default
 * action, so a `yes` whose reader went away dies of it as in a shell. */
static void test_child_sigpipe_default(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_DFL);
	struct yes_rec y;
	memset(&y, 0, sizeof y);
	weft_test_run_loops(2, yes_main, &y);
	assert_int_equal(y.ignored, 1);
	assert_int_equal(y.spawn, 0);
	assert_int_equal(y.got, 4);
	assert_int_equal(y.wait, 0);
	assert_int_equal(y.st.signal, SIGPIPE);
	assert_int_equal(y.child_ign, 0);
	assert_int_equal(sigpipe_ignored_here(), 0); /* the default is back */

	/* A program's own choice is left alone: an ignore it set stays. */
	signal(SIGPIPE, SIG_IGN);
	memset(&y, 0, sizeof y);
	weft_test_run_loops(1, yes_main, &y);
	assert_int_equal(y.ignored, 1);
	assert_int_equal(y.st.signal, SIGPIPE);
	assert_int_equal(sigpipe_ignored_here(), 1);
	signal(SIGPIPE, SIG_DFL);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_signal_delivery),
	cmocka_unit_test(test_signal_cancel),
	cmocka_unit_test(test_signal_foreign_and_errors),
	cmocka_unit_test(test_echo_through_cat),
	cmocka_unit_test(test_large_output_and_stderr),
	cmocka_unit_test(test_exit_codes_signals_errors),
	cmocka_unit_test(test_destroy_before_wait_no_zombie),
	cmocka_unit_test(test_cancel_wait),
	cmocka_unit_test(test_foreign_thread_wait),
	cmocka_unit_test(test_child_sigpipe_default),
};

WEFT_TEST_MAIN(tests)
