/*
 * Subprocesses (weft/process.h): posix_spawn, a pidfd per child, waiting by
 * polling the pidfd on the loop's ring, and no zombies: a child destroyed
 * before it was reaped goes to the helper thread of io/signal.c, which
 * reaps it when it ends.  Each spawn reserves room in that thread's list up
 * front, so handing a child over in weft_process_destroy cannot fail.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>


extern char **environ;

struct weft_process {
	pid_t pid;
	int pidfd;
	int pipes[3];        /* parent's ends, -1 when none */
	bool kill_on_destroy;
	weft__lock lk;       /* serializes reaping */
	bool reaped;         /* guarded by lk; then status is final */
	int reap_err;        /* -ECHILD: reaped behind our back */
	weft_process_status st;
};

void weft_process_config_init(weft_process_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof *cfg);
	for (int i = 0; i < 3; i++)
		cfg->stdio_fd[i] = -1;
	cfg->process_group = -1;
}

static int config_check(const weft_process_config *cfg)
{
	if (!cfg || !cfg->argv || !cfg->argv[0])
		return -EINVAL;
	for (size_t i = 0; i < sizeof cfg->reserved / sizeof cfg->reserved[0]; i++)
		if (cfg->reserved[i])
			return -EINVAL;
	for (int i = 0; i < 3; i++) {
		int m = cfg->stdio[i];
		if (m < WEFT_STDIO_INHERIT || m > WEFT_STDIO_STDOUT)
			return -EINVAL;
		if (m == WEFT_STDIO_FD && cfg->stdio_fd[i] < 0)
			return -EINVAL;
		if (m == WEFT_STDIO_STDOUT && i != 2)
			return -EINVAL;
	}
	return cfg->process_group < -1 ? -EINVAL : 0;
}

static long pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

/* The child's ends of its stdio, set up as posix_spawn file actions.
 * child[i] are fds to close in the parent after the spawn. */
typedef struct spawn_fds {
	int child[3];
	int devnull;
} spawn_fds;

static void spawn_fds_close(spawn_fds *s)
{
	for (int i = 0; i < 3; i++)
		if (s->child[i] >= 0)
			close(s->child[i]);
	if (s->devnull >= 0)
		close(s->devnull);
}

static int stdio_setup(weft_process *p, const weft_process_config *cfg, spawn_fds *s,
		       posix_spawn_file_actions_t *fa)
{
	for (int i = 0; i < 3; i++) {
		int src = -1;
		switch (cfg->stdio[i]) {
		case WEFT_STDIO_PIPE: {
			int pfd[2];
			if (pipe2(pfd, O_CLOEXEC) < 0)
				return -errno;
			/* stdin: the child reads pfd[0]; else it writes pfd[1] */
			s->child[i] = src = i == 0 ? pfd[0] : pfd[1];
			p->pipes[i] = i == 0 ? pfd[1] : pfd[0];
			break;
		}
		case WEFT_STDIO_DEVNULL:
			if (s->devnull < 0) {
				s->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
				if (s->devnull < 0)
					return -errno;
			}
			src = s->devnull;
			break;
		case WEFT_STDIO_FD:
			src = cfg->stdio_fd[i];
			break;
		case WEFT_STDIO_STDOUT:
			src = 1; /* the child's stdout, set up just before */
			break;
		default:
			continue; /* inherit */
		}
		/* dup2 onto itself clears O_CLOEXEC too (glibc >= 2.29). */
		int r = posix_spawn_file_actions_adddup2(fa, src, i);
		if (r)
			return -r;
	}
	return 0;
}

static int attr_setup(const weft_process_config *cfg, posix_spawnattr_t *at)
{
	sigset_t none, def;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGXFSZ);
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	int r = posix_spawnattr_setsigmask(at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(at, &def);
	if (!r && cfg->process_group >= 0) {
		flags |= POSIX_SPAWN_SETPGROUP;
		r = posix_spawnattr_setpgroup(at, cfg->process_group);
	}
	if (!r)
		r = posix_spawnattr_setflags(at, flags);
	return -r;
}

static int do_spawn(weft_process *p, const weft_process_config *cfg)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	spawn_fds s = { { -1, -1, -1 }, -1 };
	int r = -posix_spawn_file_actions_init(&fa);
	if (r)
		return r;
	r = -posix_spawnattr_init(&at);
	if (r) {
		posix_spawn_file_actions_destroy(&fa);
		return r;
	}
	r = stdio_setup(p, cfg, &s, &fa);
	if (!r && cfg->cwd)
		r = -posix_spawn_file_actions_addchdir_np(&fa, cfg->cwd);
	if (!r && !cfg->keep_fds)
		r = -posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!r)
		r = attr_setup(cfg, &at);
	if (!r) {
		const char *path = cfg->path ? cfg->path : cfg->argv[0];
		char *const *argv = (char *const *)cfg->argv;
		char *const *envp = cfg->envp ? (char *const *)cfg->envp : environ;
		/* The child inherits this thread's mask: not a pinned loop's
		 * one CPU.  glibc reports exec failure here (and reaps that
		 * child). */
		weft_loop *pinned = weft__cpu_unpin_begin();
		r = strchr(path, '/') ? posix_spawn(&p->pid, path, &fa, &at, argv, envp)
				      : posix_spawnp(&p->pid, path, &fa, &at, argv, envp);
		weft__cpu_unpin_end(pinned);
		r = -r;
	}
	spawn_fds_close(&s);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return r;
}

int weft_process_spawn(weft_process **out, const weft_process_config *cfg)
{
	if (out)
		*out = NULL;
	if (!out)
		return -EINVAL;
	int r = config_check(cfg);
	if (r < 0)
		return r;
	weft_process *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->pidfd = -1;
	for (int i = 0; i < 3; i++)
		p->pipes[i] = -1;
	p->kill_on_destroy = cfg->kill_on_destroy;
	r = weft__aux_reserve();
	if (r < 0) {
		free(p);
		return r;
	}
	r = do_spawn(p, cfg);
	if (r == 0) {
		long fd = pidfd_open(p->pid);
		if (fd < 0) {
			/* It is still our unreaped child: pid is not recycled. */
			r = -errno;
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
		}
		p->pidfd = (int)fd;
	}
	if (r < 0) {
		for (int i = 0; i < 3; i++)
			if (p->pipes[i] >= 0)
				close(p->pipes[i]);
		weft__aux_unreserve();
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

pid_t weft_process_pid(const weft_process *p)
{
	return p ? p->pid : -EINVAL;
}

int weft_process_pipe(const weft_process *p, int i)
{
	if (!p || i < 0 || i > 2)
		return -EINVAL;
	return p->pipes[i] >= 0 ? p->pipes[i] : -EBADF;
}

int weft_process_pipe_take(weft_process *p, int i)
{
	int fd = weft_process_pipe(p, i);
	if (fd >= 0)
		p->pipes[i] = -1;
	return fd;
}

int weft_process_pipe_close(weft_process *p, int i)
{
	int fd = weft_process_pipe_take(p, i);
	if (fd < 0)
		return fd;
	weft__fd_close(fd); /* a pipe: never blocks, and the fd is gone whatever it says */
	return 0;
}

/* Reap the child if it has ended.  Returns whether p is reaped now. */
static bool try_reap(weft_process *p)
{
	weft__lock_acquire(&p->lk);
	if (!p->reaped) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		int r = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG);
		int err = r < 0 ? errno : 0;
		if (r < 0 && err != EINTR) {
			p->reap_err = -err;
			p->reaped = true;
		} else if (r == 0 && si.si_pid != 0) {
			p->st.exit_code = si.si_code == CLD_EXITED ? si.si_status : -1;
			p->st.signal = si.si_code == CLD_EXITED ? 0 : si.si_status;
			p->st.core_dumped = si.si_code == CLD_DUMPED;
			p->reaped = true;
		}
	}
	bool done = p->reaped;
	weft__lock_release(&p->lk);
	return done;
}

/* Wait until the pidfd is readable: on the ring in a task, else poll(2). */
static int pidfd_ready(weft_process *p, bool in_task)
{
	if (in_task) {
		int r = weft_fd_wait(p->pidfd, POLLIN);
		return r < 0 ? r : 0;
	}
	struct pollfd pf = { p->pidfd, POLLIN, 0 };
	int r = poll(&pf, 1, -1);
	return r < 0 && errno != EINTR ? -errno : 0;
}

int weft_process_wait(weft_process *p, weft_process_status *status)
{
	if (!p)
		return -EINVAL;
	bool in_task = weft__task_self() != NULL;
	while (!try_reap(p)) {
		int r = pidfd_ready(p, in_task);
		if (r < 0)
			return r;
	}
	if (p->reap_err)
		return p->reap_err;
	if (status)
		*status = p->st;
	return 0;
}

int weft_process_kill(weft_process *p, int sig)
{
	if (!p || sig < 0 || sig >= _NSIG)
		return -EINVAL;
	return pidfd_signal(p->pidfd, sig);
}

void weft_process_destroy(weft_process *p)
{
	if (!p)
		return;
	for (int i = 0; i < 3; i++)
		weft_process_pipe_close(p, i);
	if (try_reap(p)) {
		weft__fd_close(p->pidfd);
		weft__aux_unreserve();
	} else {
		if (p->kill_on_destroy)
			pidfd_signal(p->pidfd, SIGKILL);
		weft__fd_forget(p->pidfd);
		weft__aux_reap(p->pidfd); /* aux owns the pidfd now */
	}
	free(p);
}
