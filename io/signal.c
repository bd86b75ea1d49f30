/*
 * Signals (weft/process.h) and the helper thread they share with
 * subprocesses.
 *
 * A watched signal runs on_signal(), on whatever thread the kernel picks:
 * it counts the delivery and writes an eventfd, nothing else (both are
 * async-signal-safe).  The helper thread ("aux") sleeps in poll(2) on that
 * eventfd and on the pidfds of abandoned children: a signal wakes every
 * waiter (each re-checks the counters against what its watcher has seen),
 * a readable pidfd is reaped and closed.
 *
 * Ordering that makes a wait race-free: a waiter compares the counters with
 * its watcher and parks under wait_lk; the handler bumps the counter before
 * writing the eventfd, and aux fires the waiters under wait_lk after reading
 * the eventfd.  A delivery the waiter missed in its check therefore fires
 * after it is on the list.
 *
 * Under ThreadSanitizer a handler that lands in a thread outside TSan's
 * interceptors is deferred until the thread next passes one, and TSan
 * keeps it on the fiber that was running: a task that then parks for good
 * never runs it, and the program ignores its SIGTERM.  So in the TSan build
 * (only) loop threads block the watched signals (weft__signal_route, each
 * scheduler pass) and aux, asleep in poll(2), an interceptor TSan runs
 * handlers in at once, takes them instead; one raised at a loop thread
 * itself waits there, blocked, and the pass counts it for the handler.
 */
#include "io.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define NSIGS _NSIG


/* ---- state shared with the handler: lock-free ---- */
static _Atomic uint64_t sig_count[NSIGS]; /* deliveries per signal */
static _Atomic uint64_t sig_total;        /* all deliveries */
static _Atomic int aux_efd = -1;          /* set once, before any handler */

/* ---- aux_mu: the helper thread, dispositions, the reap list ---- */
static pthread_mutex_t aux_mu = PTHREAD_MUTEX_INITIALIZER;
static bool aux_started;
static unsigned sig_users[NSIGS];         /* watchers covering each signal */
static struct sigaction sig_old[NSIGS];   /* disposition before the first */
static int *reap_fds;                     /* pidfds of abandoned children */
static size_t reap_len, reap_cap, reap_reserved;

/* ---- wait_lk: the waiters and every watcher's `seen` ---- */
static weft__lock wait_lk = WEFT_LOCK_INIT;
static weft__waitlist waiters;

struct weft_signal {
	sigset_t set;
	uint64_t seen[NSIGS]; /* sig_count values already returned */
};

static void on_signal(int sig)
{
	int saved = errno;
	if (sig > 0 && sig < NSIGS)
		atomic_fetch_add(&sig_count[sig], 1);
	atomic_fetch_add(&sig_total, 1);
	weft__efd_post(atomic_load_explicit(&aux_efd, memory_order_relaxed));
	errno = saved;
}

static void aux_wake(void)
{
	weft__efd_post(atomic_load(&aux_efd));
}

#if WEFT_TSAN
/* The watched signals that loop threads block and aux takes (aux_mu), and
 * a generation each thread compares with the one it applied.  Not SIGPIPE
 * (raised in the writing thread, a loop's own) nor a fault's signal. */
static sigset_t route_set;
static _Atomic unsigned route_gen;
static __thread unsigned route_seen;
static __thread sigset_t route_base; /* the thread's mask before routing */
static __thread sigset_t route_held; /* the routed signals it blocks */
static __thread bool route_holds;    /* route_held is not empty */

static bool route_eligible(int sig)
{
	switch (sig) {
	case SIGPIPE: case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGTRAP:
	case SIGSYS: case SIGABRT:
		return false;
	}
	return true;
}

/* sig_users changed for sig (aux_mu held). */
static void route_update_locked(int sig)
{
	if (!route_eligible(sig))
		return;
	if (sig_users[sig])
		sigaddset(&route_set, sig);
	else
		sigdelset(&route_set, sig);
	atomic_fetch_add(&route_gen, 1);
}

/* Apply the current route to the calling thread: aux unblocks the routed
 * signals (it starts with all blocked), any other thread blocks them. */
static void route_apply(bool aux)
{
	unsigned g = atomic_load(&route_gen);
	if (g == route_seen)
		return;
	if (!route_seen)
		pthread_sigmask(SIG_BLOCK, NULL, &route_base);
	pthread_mutex_lock(&aux_mu);
	route_seen = atomic_load(&route_gen);
	sigset_t set = route_set;
	pthread_mutex_unlock(&aux_mu);
	sigset_t m = route_base;
	sigemptyset(&route_held);
	route_holds = false;
	for (int sig = 1; sig < NSIGS; sig++)
		if (sigismember(&set, sig) == 1) {
			if (aux) {
				sigdelset(&m, sig);
			} else {
				sigaddset(&m, sig);
				sigaddset(&route_held, sig);
				route_holds = true;
			}
		}
	pthread_sigmask(SIG_SETMASK, &m, NULL);
}

/* A signal raised at this very thread (raise(), pthread_kill) waits,
 * blocked, on it: take it and count it as the handler would. */
static void route_forward(void)
{
	sigset_t pend;
	if (sigpending(&pend) != 0)
		return;
	static const struct timespec zero;
	for (int sig = 1; sig < NSIGS; sig++) {
		if (sigismember(&route_held, sig) != 1 || sigismember(&pend, sig) != 1)
			continue;
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, sig);
		if (sigtimedwait(&one, NULL, &zero) == sig)
			on_signal(sig);
	}
}

void weft__signal_route(void)
{
	if (atomic_load_explicit(&route_gen, memory_order_relaxed) != route_seen)
		route_apply(false);
	if (route_holds)
		route_forward();
}

/* After a watch or an unwatch: aux and the calling loop take the new route
 * now, and the caller's runtime's other loops are woken for a pass (the
 * loops of another runtime take it at their next one); a foreign thread's
 * mask is its own. */
static void route_now(void)
{
	weft_loop *me = weft__loop_self();
	if (me) {
		weft__signal_route();
		for (unsigned i = 0; i < me->rt->nloops; i++)
			if (me->rt->loops[i] != me)
				weft__io_wake(me->rt->loops[i]);
	}
	aux_wake();
}
#else
#define route_update_locked(sig) ((void)(sig))
#define route_apply(aux) ((void)(aux))
#define route_now() ((void)0)
#endif

/* Reap the child behind pidfd if it has ended (or was reaped elsewhere). */
static bool reap_done(int pidfd)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG);
	if (r < 0)
		return errno != EINTR; /* ECHILD: gone already */
	return si.si_pid != 0;
}

static void reap_remove(int fd)
{
	pthread_mutex_lock(&aux_mu);
	for (size_t i = 0; i < reap_len; i++)
		if (reap_fds[i] == fd) {
			reap_fds[i] = reap_fds[--reap_len];
			break;
		}
	pthread_mutex_unlock(&aux_mu);
	close(fd);
}

static void *aux_main(void *arg)
{
	(void)arg;
	struct pollfd *pf = NULL;
	size_t pcap = 0;
	uint64_t last_total = 0;
	for (;;) {
		route_apply(true);
		pthread_mutex_lock(&aux_mu);
		size_t n = reap_len + 1;
		if (n > pcap) {
			struct pollfd *np = realloc(pf, n * sizeof *np);
			if (np) {
				pf = np;
				pcap = n;
			}
		}
		bool partial = n > pcap; /* out of memory: poll what fits */
		if (partial)
			n = pcap;
		if (n)
			pf[0] = (struct pollfd){ atomic_load(&aux_efd), POLLIN, 0 };
		for (size_t i = 1; i < n; i++)
			pf[i] = (struct pollfd){ reap_fds[i - 1], POLLIN, 0 };
		pthread_mutex_unlock(&aux_mu);

		if (n == 0 || poll(pf, n, partial ? 100 : -1) < 0) {
			if (n == 0)
				usleep(100000);
			continue; /* EINTR (every signal is blocked here anyway) */
		}
		if (pf[0].revents) {
			uint64_t v;
			if (read(pf[0].fd, &v, sizeof v) < 0) {
				/* EAGAIN: another read got it */
			}
		}
		uint64_t total = atomic_load(&sig_total);
		if (total != last_total) {
			last_total = total;
			weft__wakes wk = WEFT_WAKES_INIT;
			weft__lock_acquire(&wait_lk);
			weft__waitlist_fire_all(&waiters, &wk);
			weft__unlock_wake(&wait_lk, &wk);
		}
		for (size_t i = 1; i < n; i++)
			if (pf[i].revents && reap_done(pf[i].fd))
				reap_remove(pf[i].fd);
	}
	return NULL;
}

/* Start the helper thread once, with every signal blocked so that it never
 * runs a handler (the program's or weft's).  aux_mu held. */
static int aux_start_locked(void)
{
	if (aux_started)
		return 0;
	if (atomic_load(&aux_efd) < 0) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return -errno;
		atomic_store(&aux_efd, fd);
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	weft_loop *pinned = weft__cpu_unpin_begin(); /* not the loop's one CPU */
	int r = pthread_create(&th, &attr, aux_main, NULL);
	weft__cpu_unpin_end(pinned);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r)
		return -r;
	aux_started = true;
	return 0;
}

/* ---- for io/process.c ---- */

/* Make sure aux runs and has room to take one more child later. */
int weft__aux_reserve(void)
{
	pthread_mutex_lock(&aux_mu);
	int r = aux_start_locked();
	size_t need = reap_len + reap_reserved + 1;
	if (r == 0 && need > reap_cap) {
		size_t cap = reap_cap ? reap_cap * 2 : 16;
		int *nf = realloc(reap_fds, cap * sizeof *nf);
		if (nf) {
			reap_fds = nf;
			reap_cap = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (r == 0)
		reap_reserved++;
	pthread_mutex_unlock(&aux_mu);
	return r;
}

void weft__aux_unreserve(void)
{
	pthread_mutex_lock(&aux_mu);
	reap_reserved--;
	pthread_mutex_unlock(&aux_mu);
}

/* Hand an unreaped child's pidfd to aux (uses the reservation: cannot
 * fail); aux reaps the child when it ends and closes the pidfd. */
void weft__aux_reap(int pidfd)
{
	pthread_mutex_lock(&aux_mu);
	reap_reserved--;
	reap_fds[reap_len++] = pidfd;
	pthread_mutex_unlock(&aux_mu);
	aux_wake();
}

/* ---- SIGPIPE while a runtime runs ---- */

/*
 * A write to a pipe or socket whose reader is gone raises SIGPIPE in the
 * writing thread, and its default action ends the process.  Sends pass
 * MSG_NOSIGNAL, but write(2), writev, splice and io_uring's WRITE to a pipe
 * (or a socket) have no such flag, and neither does the program's own
 * code on the blocking pool.  So, as Rust's std and Go do, SIGPIPE is
 * ignored process-wide while a runtime runs, if its disposition is the
 * default: every such write then fails with EPIPE on any thread.  A
 * program's own handler, or an ignore it set itself, is left alone.  When
 * the last runtime stops, the default comes back if weft set the ignore
 * and nothing changed it since.  Children spawned by weft_process_spawn get
 * the default back before exec (io/process.c).
 *
 * While a weft_signal watches SIGPIPE its handler is installed and the
 * disposition to give back lives in sig_old[SIGPIPE]: the change is made
 * there instead.  aux_mu serializes both.
 */
static unsigned pipe_runtimes;  /* runtimes started and not stopped */
static bool pipe_ignored;       /* weft set SIG_IGN for them */

/* The disposition in force once no watcher covers SIGPIPE. */
static struct sigaction *pipe_disposition(struct sigaction *cur)
{
	if (sig_users[SIGPIPE])
		return &sig_old[SIGPIPE];
	return sigaction(SIGPIPE, NULL, cur) == 0 ? cur : NULL;
}

static void pipe_set(struct sigaction *d, void (*h)(int))
{
	d->sa_handler = h;
	d->sa_flags = 0;
	sigemptyset(&d->sa_mask);
	if (!sig_users[SIGPIPE])
		sigaction(SIGPIPE, d, NULL);
}

void weft__sigpipe_hold(void)
{
	pthread_mutex_lock(&aux_mu);
	struct sigaction cur, *d;
	if (pipe_runtimes++ == 0 && (d = pipe_disposition(&cur)) &&
	    !(d->sa_flags & SA_SIGINFO) && d->sa_handler == SIG_DFL) {
		pipe_set(d, SIG_IGN);
		pipe_ignored = true;
	}
	pthread_mutex_unlock(&aux_mu);
}

void weft__sigpipe_release(void)
{
	pthread_mutex_lock(&aux_mu);
	struct sigaction cur, *d;
	if (--pipe_runtimes == 0 && pipe_ignored) {
		pipe_ignored = false;
		if ((d = pipe_disposition(&cur)) && !(d->sa_flags & SA_SIGINFO) &&
		    d->sa_handler == SIG_IGN)
			pipe_set(d, SIG_DFL);
	}
	pthread_mutex_unlock(&aux_mu);
}

/* ---- watchers ---- */

static bool sig_catchable(int sig)
{
	return sig != SIGKILL && sig != SIGSTOP;
}

/* Give back the dispositions of the signals of `set` below `upto`. */
static void unwatch_locked(const sigset_t *set, int upto)
{
	for (int sig = 1; sig < upto; sig++)
		if (sigismember(set, sig) == 1 && --sig_users[sig] == 0) {
			sigaction(sig, &sig_old[sig], NULL);
			route_update_locked(sig);
		}
}

int weft_signal_open(weft_signal **out, const sigset_t *set)
{
	if (out)
		*out = NULL;
	if (!out || !set)
		return -EINVAL;
	int count = 0;
	for (int sig = 1; sig < NSIGS; sig++)
		if (sigismember(set, sig) == 1) {
			if (!sig_catchable(sig))
				return -EINVAL;
			count++;
		}
	if (!count)
		return -EINVAL;
	weft_signal *s = malloc(sizeof *s);
	if (!s)
		return -ENOMEM;
	s->set = *set;
	/* Count from before the handler goes in: a delivery once it is in is
	 * one this watcher reports. */
	for (int sig = 1; sig < NSIGS; sig++)
		s->seen[sig] = atomic_load(&sig_count[sig]);

	pthread_mutex_lock(&aux_mu);
	int r = aux_start_locked();
	int sig = 1;
	for (; r == 0 && sig < NSIGS; sig++) {
		if (sigismember(set, sig) != 1 || sig_users[sig]++ > 0)
			continue;
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, &sig_old[sig]) < 0) {
			r = -errno;
			sig_users[sig]--;
			break;
		}
		route_update_locked(sig);
	}
	if (r < 0)
		unwatch_locked(set, sig);
	pthread_mutex_unlock(&aux_mu);
	route_now();
	if (r < 0) {
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

/* The lowest signal of s with an unreported delivery, marked reported; 0
 * if none.  wait_lk held. */
static int take_locked(weft_signal *s)
{
	for (int sig = 1; sig < NSIGS; sig++) {
		if (sigismember(&s->set, sig) != 1)
			continue;
		uint64_t c = atomic_load(&sig_count[sig]);
		if (c != s->seen[sig]) {
			s->seen[sig] = c;
			return sig;
		}
	}
	return 0;
}

int weft_signal_next(weft_signal *s)
{
	if (!s)
		return -EINVAL;
	weft_task *t = weft__task_self();
	if (t) {
		int r = weft__checkpoint(t);
		if (r < 0)
			return r;
	}
	weft__lock_acquire(&wait_lk);
	for (;;) {
		int sig = take_locked(s);
		if (sig) {
			weft__lock_release(&wait_lk);
			return sig;
		}
		weft__waiter w;
		weft__wait_on(t, WEFT_WAIT_OTHER, s); /* a signal */
		int r = weft__wait_locked(t, &wait_lk, &waiters, &w, 0);
		if (r < 0)
			return r;
		weft__lock_acquire(&wait_lk);
	}
}

int weft_signal_close(weft_signal *s)
{
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&aux_mu);
	unwatch_locked(&s->set, NSIGS);
	pthread_mutex_unlock(&aux_mu);
	route_now();
	free(s);
	return 0;
}

int weft_signal_wait(const sigset_t *set)
{
	weft_signal *s;
	int r = weft_signal_open(&s, set);
	if (r < 0)
		return r;
	r = weft_signal_next(s);
	weft_signal_close(s);
	return r;
}
