/*
 * weft/process.h — signals (loop.add_signal_handler) and subprocesses
 * (asyncio.create_subprocess_exec).
 *
 * Both rest on one helper thread ("weft-aux") that weft starts the first
 * time either is used and that lives until the process exits.  It has every
 * signal blocked, sleeps in poll(2), delivers caught signals to waiters and
 * reaps children whose weft_process was destroyed before it was waited for.
 */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include <signal.h>
#include <stdbool.h>
#include <sys/select.h> /* sigset_t: <signal.h> declares it only under POSIX
			   feature macros (-pthread's _REENTRANT, _GNU_SOURCE),
			   not in strict ISO C (-std=c11); POSIX has
			   <sys/select.h> declare it always */
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Signals                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * How signals are caught, and why not signalfd.  A signalfd only sees a
 * signal that is blocked in every thread of the process; anywhere it is not
 * blocked (a thread started by another library, the main thread sitting in
 * weft_run) the default action runs and, for SIGINT or SIGTERM, kills the
 * process.  So weft does what libuv, Tokio and CPython do: while a signal is
 * watched, weft's own sigaction handler (SA_RESTART) is installed for it.
 * Whatever thread the kernel picks runs the handler, which only counts the
 * delivery and writes an eventfd; the helper thread then wakes the waiters.
 * The program blocks nothing.
 *
 * A signal is "watched" while at least one weft_signal (or a
 * weft_signal_wait call) covers it.  When the last one goes, the
 * disposition that was in place before the first (default, ignore, or a
 * handler of the program's) is restored, so a second Ctrl-C after a
 * graceful shutdown began still kills the process unless it is still
 * watched.  Deliveries are counted per signal from the moment a watcher is
 * opened; several deliveries of the same signal before a waiter looks are
 * reported once (the kernel coalesces standard signals the same way).
 * A signal blocked in every thread is never delivered, so never seen here.
 * SIGKILL and SIGSTOP cannot be caught (-EINVAL), nor can the signals glibc
 * reserves (32, 33: sigaction fails with -EINVAL).  Using sigaction on a
 * watched signal behind weft's back breaks the watch.
 *
 * Under ThreadSanitizer (a program built with -fsanitize=thread) TSan
 * runs a handler late, on the coroutine that was running, which may park
 * for good; so there, and only there, loop threads block the watched
 * signals and the helper thread takes them, a signal raised at a loop
 * thread itself is counted at that loop's next scheduler pass, and a
 * thread waiting outside the runtime (weft_run's) passes one of TSan's
 * interceptors every 50 ms.
 */

typedef struct weft_signal weft_signal;

/*
 * Watch the signals in `set` from now on: install weft's handler for each
 * (where not already installed).  *out is owned by the caller; end it with
 * weft_signal_close().  Any thread (a task or not); never suspends.
 * Returns 0, -EINVAL (out or set NULL, empty set, SIGKILL/SIGSTOP or a
 * reserved signal in it), -ENOMEM, or the error of starting the helper
 * thread.
 */
WEFT_API int weft_signal_open(weft_signal **out, const sigset_t *set);

/*
 * Wait for a signal of the watcher's set delivered since it was opened
 * and not yet returned by this watcher, and return its number (the lowest
 * first when several are pending).  Each delivery is returned once per
 * watcher: several tasks that must all see every signal each open their
 * own watcher; tasks sharing one watcher share its deliveries (each goes to
 * one of them).  Suspension point in a task (-ECANCELED, -ETIMEDOUT under a
 * deadline scope: nothing is consumed then); a foreign thread blocks
 * (use it in main() to wait for SIGINT then shut a runtime down).
 * Returns the signal number (> 0), -EINVAL.
 */
WEFT_API int weft_signal_next(weft_signal *s);

/* Stop watching: restores the previous disposition of every signal no
 * other watcher covers.  Pending deliveries are dropped.  No
 * weft_signal_next on s may be in progress.  Any thread.  Returns 0 or
 * -EINVAL. */
WEFT_API int weft_signal_close(weft_signal *s);

/*
 * One-shot: watch `set`, wait for the first signal of it delivered after
 * the call began, stop watching, and return its number.  Every task waiting
 * in weft_signal_wait for a signal is woken by its delivery.  Between two
 * calls the signal is not watched (its old disposition applies); keep a
 * weft_signal open instead when no delivery may be missed.
 * Typical graceful shutdown, in a task:
 *
 *     sigset_t set;
 *     sigemptyset(&set); sigaddset(&set, SIGINT); sigaddset(&set, SIGTERM);
 *     int sig = weft_signal_wait(&set);    // -ECANCELED if cancelled
 *     if (sig > 0) stop_accepting_and_drain();
 *
 * Returns as weft_signal_open and weft_signal_next.  A task or a foreign
 * thread (which blocks).
 */
WEFT_API int weft_signal_wait(const sigset_t *set);

/* ------------------------------------------------------------------------ */
/* Subprocesses                                                              */
/* ------------------------------------------------------------------------ */

typedef struct weft_process weft_process;

/* What a child's stdin (0), stdout (1) or stderr (2) is. */
enum {
	WEFT_STDIO_INHERIT = 0, /* the parent's own fd 0/1/2 (default) */
	WEFT_STDIO_PIPE = 1,    /* a new pipe; the parent's end is
				   weft_process_pipe(p, i) */
	WEFT_STDIO_DEVNULL = 2, /* /dev/null */
	WEFT_STDIO_FD = 3,      /* cfg.stdio_fd[i], dup'ed into the child (the
				   caller keeps its fd) */
	WEFT_STDIO_STDOUT = 4,  /* stderr only: wherever stdout goes
				   (asyncio.subprocess.STDOUT) */
};

typedef struct weft_process_config {
	const char *const *argv; /* NULL-terminated; argv[0] required */
	const char *path;        /* program; NULL: argv[0].  Without a '/'
				    it is searched in the parent's PATH; a
				    relative path with '/' is taken from cwd */
	const char *const *envp; /* NULL-terminated; NULL: the parent's */
	const char *cwd;         /* working directory; NULL: the parent's */
	int stdio[3];            /* WEFT_STDIO_* for stdin, stdout, stderr */
	int stdio_fd[3];         /* for WEFT_STDIO_FD (-1) */
	int process_group;       /* -1: the parent's (default); 0: a new group
				    led by the child; > 0: join that group */
	bool keep_fds;           /* false (default): the child gets only fds
				    0-2 (close_fds=True); true: it also
				    inherits every fd not marked O_CLOEXEC */
	bool kill_on_destroy;    /* SIGKILL a still-running child in
				    weft_process_destroy (default: it keeps
				    running, and is reaped when it exits) */
	unsigned reserved[8];    /* must be zero */
} weft_process_config;

/* Defaults: everything inherited, stdio_fd -1, process_group -1. */
WEFT_API void weft_process_config_init(weft_process_config *cfg);

/*
 * Start argv as a child process (posix_spawn: no fork of the parent's
 * memory; the calling thread waits only until the child has called exec).
 * The child starts with no signal blocked and SIGPIPE and SIGXFSZ at their
 * default action (as Python's subprocess does), even when the parent ignores
 * them, and, when called on a loop pinned by pin_cpus, the affinity mask
 * the runtime was started with rather than the loop's one CPU.  Exec failures are reported here, not as a child exit status:
 * -ENOENT (no such program), -EACCES, -ENOEXEC, ...  Pipe ends held by the
 * parent are O_CLOEXEC and blocking (io_uring waits for them all the
 * same): use them with weft_read / weft_write, or your own thread.
 * On success *out owns the process (and its pipe ends): end it with
 * weft_process_destroy().  Any thread; never suspends.
 * Returns 0, -EINVAL (bad config, nonzero reserved field), -ENOMEM,
 * -EMFILE, the exec or spawn -errno.
 *
 * Do not reap weft's children behind its back (waitpid(-1, ...), SIGCHLD
 * set to SIG_IGN): the child is tracked through a pidfd, and a child reaped
 * elsewhere is reported by weft_process_wait as -ECHILD.
 */
WEFT_API int weft_process_spawn(weft_process **out, const weft_process_config *cfg);

/* The child's pid (still the child's only until it has been reaped).
 * Any thread; -EINVAL for NULL. */
WEFT_API pid_t weft_process_pid(const weft_process *p);

/*
 * The parent's end of the child's stdin (i = 0, write to it), stdout (1)
 * or stderr (2) pipe, borrowed: valid until weft_process_pipe_close or
 * weft_process_destroy.  Returns the fd, -EBADF (that stream is not a
 * pipe, or was closed or taken), -EINVAL.  Any thread.
 * Writing to stdin after the child has exited fails with -EPIPE: while a
 * runtime runs SIGPIPE is ignored (see weft_runtime_start).
 */
WEFT_API int weft_process_pipe(const weft_process *p, int i);

/* Close the parent's end now, e.g. stdin to send the child end of file.
 * Returns 0, -EBADF (not a pipe / already closed), -EINVAL.  A task's
 * operation still pending on that fd is not cancelled by the close (cancel
 * the task first).  Any thread. */
WEFT_API int weft_process_pipe_close(weft_process *p, int i);

/* Take the parent's end: the caller owns the returned fd (and closes it);
 * the process object forgets it.  Returns the fd, -EBADF, -EINVAL. */
WEFT_API int weft_process_pipe_take(weft_process *p, int i);

/* How a child ended. */
typedef struct weft_process_status {
	int exit_code;    /* 0..255 when it exited (exit/_exit/return from
			     main), else -1 */
	int signal;       /* the signal that killed it, else 0 */
	bool core_dumped; /* killed by a signal and dumped core */
	unsigned reserved[4];
} weft_process_status;

/*
 * Wait for the child to end and reap it (pidfd + POLLIN on the loop's
 * ring, then waitid(P_PIDFD)).  *status (may be NULL) says how it ended.
 * Once reaped the status is kept: later and concurrent calls from any
 * number of tasks all return it.  If it has already ended, returns at once
 * without suspending.  Suspension point in a task: -ECANCELED or
 * -ETIMEDOUT (deadline scope; a timeout is a scope around this call) leave
 * the child running and unreaped, to be waited for again or destroyed.  A
 * foreign thread blocks.
 * Returns 0, -EINVAL (p NULL), -ECHILD (reaped behind weft's back).
 */
WEFT_API int weft_process_wait(weft_process *p, weft_process_status *status);

/*
 * Send signal `sig` (0: only check the child still exists) through the
 * pidfd, so never to a recycled pid.  Returns 0, -ESRCH (it has already
 * been reaped; a child that exited but is not yet reaped takes the signal
 * with no effect), -EINVAL (bad sig or p NULL), -EPERM.  Any thread.
 */
WEFT_API int weft_process_kill(weft_process *p, int sig);

/*
 * Free the process: close the pipe ends it still holds and, if the child
 * has not been reaped, either reap it now (it has exited) or hand it to
 * weft's helper thread, which reaps it when it exits (after a SIGKILL if
 * cfg.kill_on_destroy).  So no zombie is left, whatever the order of
 * destroy and exit, and whether or not a runtime is still running.  When
 * the parent process itself exits first, its still-running children
 * survive it (as with asyncio) and init reaps them.  No other call on p may
 * be in progress.  Any thread; never suspends.
 */
WEFT_API void weft_process_destroy(weft_process *p);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PROCESS_H */
