/*
 * Observability: the stall watchdog and the metrics text
 * (include/weft/observe.h, docs/observability.md).
 *
 * The watchdog costs the loops nothing they did not already do: each
 * task switch stores l->tick and l->current (relaxed atomics: plain
 * moves), and a watchdog thread per runtime compares them every
 * threshold / 2.  A loop whose tick has not moved while a task runs has
 * been inside that task since the watchdog first saw the tick.  Only then
 * does anything expensive happen: SIGURG (ignored by default, so a late
 * one is harmless) goes to that loop's thread alone, with the loop in its
 * siginfo, and the handler copies the running task's name, id and
 * backtrace into the loop's weft__stall; the watchdog prints them.
 * A thread blocked in a system call that a signal would cut short with
 * EINTR even under SA_RESTART (nanosleep, poll, ...) is not signalled:
 * that report names the call instead of the task.
 */
#include "internal.h"
#include "../io/io.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define STALL_SIG SIGURG

#ifdef WEFT_NO_OBSERVE
#define OBSERVE_ON 0 /* the overhead benchmark's baseline: no watchdog */
#else
#define OBSERVE_ON 1
#endif

enum { STALL_IDLE, STALL_ASKED, STALL_TAKEN };

struct weft__watchdog {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	uint64_t threshold, period;
};

/* ------------------------------------------------------------------------ */
/* the signal handler, on the stalled loop's thread                          */
/* ------------------------------------------------------------------------ */

static bool sig_ok; /* our handler is installed (written once, under once) */
static pthread_once_t sig_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* x86_64 links libunwind (task dumps), and its weak backtrace() then
 * stands in for glibc's: that one keeps a per-thread cache whose
 * destructor runs at thread exit, which ThreadSanitizer's interceptors do
 * not survive.  So walk with the plain cursor calls, which the libunwind
 * manual gives as safe in a signal handler, starting at the interrupted
 * instruction (the signal frame's context), so no handler frame shows. */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

static int capture_frames(void **frames, int max, void *ucv)
{
	unw_cursor_t cur;
	if (unw_init_local2(&cur, (unw_context_t *)ucv, UNW_INIT_SIGNAL_FRAME) != 0)
		return 0;
	int n = 0;
	do {
		unw_word_t ip = 0;
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || ip == 0)
			break;
		frames[n++] = (void *)(uintptr_t)ip;
	} while (n < max && unw_step(&cur) > 0);
	return n;
}

/* No warm-up: libunwind's set-up opens a pipe for its memory probe that
 * stays open for the life of the process, so it is left to the first
 * report (local unwinding is made to run in a signal handler). */
static void capture_warm(void)
{
}
#else
static uintptr_t interrupted_pc(const void *ucv)
{
	const ucontext_t *uc = ucv;
#if defined(__aarch64__)
	return (uintptr_t)uc->uc_mcontext.pc;
#else
	(void)uc;
	return 0;
#endif
}

/* glibc's backtrace(), warmed up (capture_warm) so that it neither loads
 * nor allocates in the handler; the handler's own frames are dropped by
 * starting at the interrupted instruction when the unwinder saw it. */
static int capture_frames(void **frames, int max, void *uc)
{
	int n = backtrace(frames, max);
	uintptr_t pc = interrupted_pc(uc);
	int skip = 0;
	for (int i = 0; i < n && pc; i++)
		if ((uintptr_t)frames[i] == pc) {
			skip = i;
			break;
		}
	memmove(frames, frames + skip, (size_t)(n - skip) * sizeof(void *));
	return n - skip;
}

/* Its first call loads libgcc's unwinder, which allocates. */
static void capture_warm(void)
{
	void *f[4];
	backtrace(f, 4);
}
#endif

/* The unwinder needs a few kilobytes of stack.  The handler runs on the
 * loop's signal stack, except under ThreadSanitizer, which delivers
 * signals later on whatever stack the thread is on: a task's, maybe nearly
 * full.  Then, with less room than this, the report has no backtrace. */
#define CAPTURE_ROOM (32 * 1024)

static size_t stack_room(const weft_task *t)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t lo = (uintptr_t)t->stack_base;
	if (sp < lo || sp >= lo + t->stack_size)
		return SIZE_MAX; /* not on the task's stack: the signal stack */
	return sp - lo;
}

/* Copy the running task's identity and backtrace (async-signal-safe, see
 * capture_frames). */
static void stall_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	int saved = errno;
	weft_loop *l = si->si_code == SI_QUEUE && si->si_pid == getpid()
			       ? si->si_value.sival_ptr : NULL;
	if (l && l->tid == gettid() &&
	    atomic_load_explicit(&l->stall.ready, memory_order_acquire) == STALL_ASKED) {
		weft__stall *s = &l->stall;
		weft_task *t = __atomic_load_n(&l->current, __ATOMIC_RELAXED);
		s->nframes = 0;
		s->task_id = t ? t->id : 0;
		for (size_t i = 0; i < sizeof(s->name); i++)
			s->name[i] = t ? __atomic_load_n(&t->name[i], __ATOMIC_RELAXED) : 0;
		s->name[sizeof(s->name) - 1] = 0;
		if (t && stack_room(t) >= CAPTURE_ROOM)
			s->nframes = capture_frames(s->frames, WEFT_STALL_FRAMES, uc);
		atomic_store_explicit(&s->ready, STALL_TAKEN, memory_order_release);
	}
	errno = saved;
}

/* Once per process: warm the unwinder up and install the handler, unless
 * the program has one of its own for SIGURG (then reports carry no
 * backtrace). */
static void sig_setup(void)
{
	capture_warm();
	struct sigaction cur;
	if (sigaction(STALL_SIG, NULL, &cur) != 0)
		return;
	if ((cur.sa_flags & SA_SIGINFO) || (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN))
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = stall_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sig_ok = sigaction(STALL_SIG, &sa, NULL) == 0;
#if WEFT_TSAN
	/* ThreadSanitizer runs the handler on the stalled task's stack, and
	 * its first delivery resolves lazily bound symbols on the way: the
	 * dynamic linker's trampoline saves the whole register file there
	 * (XSAVEC, several KiB with AVX-512), past the end of a task stack
	 * that has little room left.  One delivery now, here, where there is
	 * room, binds them; the handler ignores a signal it did not ask for. */
	if (sig_ok)
		pthread_kill(pthread_self(), STALL_SIG);
#endif
}

#define ALTSTACK_SIZE (64 * 1024)

/* The handler runs on a signal stack, not on the stalled task's, which
 * may be small and nearly full: a kernel signal frame and the unwinder
 * take several KiB.  A thread that has one already (ASan gives each
 * thread its own) keeps it. */
void weft__observe_loop_init(weft_loop *l)
{
	l->tid = gettid();
	if (pthread_getcpuclockid(pthread_self(), &l->cpu_clock) != 0)
		l->cpu_clock = CLOCK_MONOTONIC; /* then every stall counts */
	stack_t cur;
	if (!OBSERVE_ON || sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
		return;
	void *p = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return; /* the handler runs on the task's stack */
	stack_t ss = {.ss_sp = p, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
	if (sigaltstack(&ss, NULL) != 0) {
		munmap(p, ALTSTACK_SIZE);
		return;
	}
	l->altstack = p;
}

void weft__observe_loop_exit(weft_loop *l)
{
	if (!l->altstack)
		return;
	stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
	sigaltstack(&off, NULL);
	munmap(l->altstack, ALTSTACK_SIZE);
	l->altstack = NULL;
}

/* CPU time of loop l's thread (0 once it has exited). */
static uint64_t loop_cpu_ns(const weft_loop *l)
{
	struct timespec ts;
	if (clock_gettime(l->cpu_clock, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* the watchdog                                                              */
/* ------------------------------------------------------------------------ */

/* The state letter of thread `tid` (R running or runnable, S, D, ...). */
static char thread_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the name may hold anything */
	return p && p[1] == ' ' ? p[2] : '?';
}

/* The system call thread `tid` is blocked in, or -1. */
static long thread_syscall(pid_t tid)
{
	char path[64], buf[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *end;
	long nr = strtol(buf, &end, 10);
	return end == buf || nr < 0 ? -1 : nr;
}

/* Whether SA_RESTART makes system call `nr` carry on after our handler
 * (signal(7), "Interruption of system calls"). */
static bool restartable(long nr)
{
	static const long ok[] = {
		SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64,
		SYS_recvfrom, SYS_sendto, SYS_recvmsg, SYS_sendmsg, SYS_accept, SYS_accept4,
		SYS_connect, SYS_wait4, SYS_waitid, SYS_flock, SYS_fcntl, SYS_futex,
		SYS_openat, SYS_ioctl, SYS_getrandom,
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (ok[i] == nr)
			return true;
	return false;
}

/* Ask loop l's thread for its task and backtrace; true once it answered
 * (within 100 ms: under TSan a signal waits for the next intercepted
 * call). */
static bool capture(weft_loop *l)
{
	weft__stall *s = &l->stall;
	atomic_store_explicit(&s->ready, STALL_ASKED, memory_order_release);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = STALL_SIG;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_ptr = l;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), l->tid, STALL_SIG, &si) != 0) {
		atomic_store_explicit(&s->ready, STALL_IDLE, memory_order_relaxed);
		return false;
	}
	for (int i = 0; i < 100; i++) {
		if (atomic_load_explicit(&s->ready, memory_order_acquire) == STALL_TAKEN)
			break;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	/* A handler that runs late finds IDLE and does nothing. */
	uint32_t want = STALL_ASKED;
	if (atomic_compare_exchange_strong(&s->ready, &want, STALL_IDLE))
		return false;
	atomic_store_explicit(&s->ready, STALL_IDLE, memory_order_relaxed);
	return true;
}

static void report(weft_runtime *rt, weft_loop *l, uint64_t stalled, uint64_t suppressed)
{
	weft__stall *s = &l->stall;
	weft_stall_report r = {
		.loop = l->index, .task_id = 0, .task_name = "?", .stalled_ns = stalled,
		.suppressed = suppressed, .blocked_syscall = -1, .frames = s->frames,
		.nframes = 0,
	};
	char name[40];
	char st = thread_state(l->tid);
	if (st != 'R')
		r.blocked_syscall = thread_syscall(l->tid);
	bool ask = sig_ok && (st == 'R' || r.blocked_syscall < 0 || restartable(r.blocked_syscall));
	if (ask && capture(l)) {
		if (!s->task_id) /* the task switched away meanwhile */
			return;
		r.task_id = s->task_id;
		r.nframes = s->nframes;
		if (s->name[0])
			snprintf(name, sizeof(name), "%s", s->name);
		else
			snprintf(name, sizeof(name), "task-%llu", (unsigned long long)s->task_id);
		r.task_name = name;
	}
	if (rt->cfg.stall_fn)
		rt->cfg.stall_fn(&r, rt->cfg.stall_arg);
	else
		weft_stall_report_print(&r);
}

void weft_stall_report_print(const weft_stall_report *r)
{
	if (!r)
		return;
	char buf[512], sup[80] = "", how[96] = "";
	if (r->suppressed)
		snprintf(sup, sizeof(sup), " (%llu earlier stalls of this loop not reported)",
			 (unsigned long long)r->suppressed);
	if (r->blocked_syscall >= 0)
		snprintf(how, sizeof(how), ", blocked in system call %ld", r->blocked_syscall);
	int n = snprintf(buf, sizeof(buf),
			 "weft: stall: loop %u has run task \"%s\" (id %llu) for %llu ms without "
			 "switching%s%s%s\n",
			 r->loop, r->task_name, (unsigned long long)r->task_id,
			 (unsigned long long)(r->stalled_ns / 1000000), how, sup,
			 r->nframes ? "; its backtrace:" : "; no backtrace");
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
	if (r->nframes > 0)
		backtrace_symbols_fd((void *const *)r->frames, r->nframes, STDERR_FILENO);
}

static const uint64_t stall_bounds[WEFT_STALL_HIST - 1] = {
	100000000ull, 250000000ull, 500000000ull, 1000000000ull,
	2500000000ull, 5000000000ull, 10000000000ull,
};

static void stall_ended(weft__stall *s, uint64_t len)
{
	unsigned b = 0;
	while (b < WEFT_STALL_HIST - 1 && len > stall_bounds[b])
		b++;
	__atomic_store_n(&s->hist[b], s->hist[b] + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->sum_ns, s->sum_ns + len, __ATOMIC_RELAXED);
}

/* One look at loop l. */
static void watch(weft_runtime *rt, weft_loop *l, uint64_t now, uint64_t threshold)
{
	weft__stall *s = &l->stall;
	uint32_t tick = __atomic_load_n(&l->tick, __ATOMIC_RELAXED);
	bool busy = __atomic_load_n(&l->current, __ATOMIC_RELAXED) != NULL;
	if (tick != s->seen_tick || !busy) {
		if (s->episode)
			stall_ended(s, now - s->seen_at);
		s->episode = false;
		s->seen_tick = tick;
		s->seen_at = now;
		s->seen_cpu = busy ? loop_cpu_ns(l) : 0;
		return;
	}
	if (s->episode || now - s->seen_at < threshold)
		return;
	/* A thread that wants to run but is not given a CPU (an overloaded
	 * machine) holds its loop through no fault of the task's: that is a
	 * stall only once the task has had half the threshold of CPU.  A
	 * thread asleep in the kernel is blocked by its task: a stall. */
	if (loop_cpu_ns(l) - s->seen_cpu < threshold / 2 && thread_state(l->tid) == 'R')
		return;
	s->episode = true;
	__atomic_store_n(&s->stalls, s->stalls + 1, __ATOMIC_RELAXED);
	uint64_t every = rt->cfg.stall_report_interval_ns;
	if (s->last_report && now - s->last_report < every) {
		s->suppressed++;
		return;
	}
	s->last_report = now;
	uint64_t suppressed = s->suppressed;
	s->suppressed = 0;
	report(rt, l, now - s->seen_at, suppressed);
}

static void *watchdog_main(void *arg)
{
	weft_runtime *rt = arg;
	struct weft__watchdog *w = rt->watchdog;
	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + w->period;
		ts.tv_sec = (time_t)(at / 1000000000ull);
		ts.tv_nsec = (long)(at % 1000000000ull);
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		if (w->stop)
			break;
		pthread_mutex_unlock(&w->mu);
		uint64_t now = weft_now_ns();
		for (unsigned i = 0; i < rt->nloops; i++)
			watch(rt, rt->loops[i], now, w->threshold);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int weft__watchdog_start(weft_runtime *rt)
{
	rt->started_ns = weft_now_ns();
	uint64_t th = rt->cfg.stall_threshold_ns;
	if (!OBSERVE_ON || th == 0 || th == WEFT_FOREVER)
		return 0;
	pthread_once(&sig_once, sig_setup);
	struct weft__watchdog *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->threshold = th;
	w->period = th / 2 ? th / 2 : 1;
	pthread_mutex_init(&w->mu, NULL);
	weft__cond_init_monotonic(&w->cv);
	rt->watchdog = w;
	/* Its thread blocks every signal: a program's signals go elsewhere. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	weft_loop *pinned = weft__cpu_unpin_begin();
	int r = pthread_create(&w->thread, NULL, watchdog_main, rt);
	weft__cpu_unpin_end(pinned);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		rt->watchdog = NULL;
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return -r;
	}
	return 0;
}

void weft__watchdog_stop(weft_runtime *rt)
{
	struct weft__watchdog *w = rt->watchdog;
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	rt->watchdog = NULL;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

/* ------------------------------------------------------------------------ */
/* wake-to-run delays                                                        */
/* ------------------------------------------------------------------------ */

/* Bucket i holds delays up to 1 us * 4^i; the last, everything above. */
void weft__obs_wake_delay(weft_loop *l, uint64_t ns)
{
	unsigned b = 0;
	for (uint64_t bound = 1000; b < WEFT_OBS_HIST - 1 && ns > bound; bound *= 4)
		b++;
	WEFT_OBS_ADD(l, wake_hist[b], 1);
	WEFT_OBS_ADD(l, wake_sum_ns, ns);
}

/* ------------------------------------------------------------------------ */
/* the Prometheus text                                                       */
/* ------------------------------------------------------------------------ */

static const char *const op_names[WEFT_OBS_NOPS] = {
	[WEFT_OP_READ] = "read", [WEFT_OP_WRITE] = "write", [WEFT_OP_READV] = "readv",
	[WEFT_OP_WRITEV] = "writev", [WEFT_OP_RECV] = "recv", [WEFT_OP_SEND] = "send",
	[WEFT_OP_RECVMSG] = "recvmsg", [WEFT_OP_SENDMSG] = "sendmsg",
	[WEFT_OP_ACCEPT] = "accept", [WEFT_OP_CONNECT] = "connect",
	[WEFT_OP_SHUTDOWN] = "shutdown", [WEFT_OP_CLOSE] = "close",
	[WEFT_OP_OPENAT] = "openat", [WEFT_OP_STATX] = "statx", [WEFT_OP_FSYNC] = "fsync",
	[WEFT_OP_FALLOCATE] = "fallocate", [WEFT_OP_UNLINKAT] = "unlinkat",
	[WEFT_OP_RENAMEAT] = "renameat", [WEFT_OP_MKDIRAT] = "mkdirat",
	[WEFT_OP_SPLICE] = "splice", [WEFT_OP_POLL] = "poll",
	[WEFT_OP_RECV_MULTI] = "recv_multishot", [WEFT_OP_SEND_ZC] = "send_zc",
};
_Static_assert(WEFT_OP_SEND_ZC < WEFT_OBS_NOPS, "WEFT_OBS_NOPS too small");

typedef struct mw {
	char *buf;
	size_t cap, len;
} mw;

static __attribute__((format(printf, 2, 3))) void put(mw *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = w->len < w->cap ? w->cap - w->len : 0;
	int n = vsnprintf(room ? w->buf + w->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		w->len += (size_t)n;
}

static void family(mw *w, const char *name, const char *type, const char *help)
{
	put(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static inline uint64_t rd(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A counter or gauge with one sample per loop: the field at byte offset
 * `off` of the loop. */
static void per_loop(mw *w, weft_runtime *rt, const char *name, const char *type,
		     const char *help, size_t off)
{
	family(w, name, type, help);
	for (unsigned i = 0; i < rt->nloops; i++)
		put(w, "%s{loop=\"%u\"} %llu\n", name, i,
		    (unsigned long long)rd((const uint64_t *)((const char *)rt->loops[i] + off)));
}

#define LOOP_COUNTER(w, rt, name, help, member) \
	per_loop(w, rt, name, "counter", help, offsetof(weft_loop, member))

static void seconds(mw *w, const char *name, const char *labels, uint64_t ns)
{
	put(w, "%s{%s} %llu.%09llu\n", name, labels, (unsigned long long)(ns / 1000000000ull),
	    (unsigned long long)(ns % 1000000000ull));
}

/* A histogram per loop: counts[nb] (the last is +Inf) against bounds in
 * ns, rendered in seconds. */
static void histogram(mw *w, const char *name, unsigned loop, const uint64_t *counts,
		      unsigned nb, const uint64_t *bounds_ns, uint64_t sum_ns)
{
	uint64_t cum = 0;
	for (unsigned b = 0; b < nb; b++) {
		cum += rd(&counts[b]);
		if (b + 1 < nb)
			put(w, "%s_bucket{loop=\"%u\",le=\"%g\"} %llu\n", name, loop,
			    (double)bounds_ns[b] / 1e9, (unsigned long long)cum);
		else
			put(w, "%s_bucket{loop=\"%u\",le=\"+Inf\"} %llu\n", name, loop,
			    (unsigned long long)cum);
	}
	char labels[32];
	snprintf(labels, sizeof(labels), "loop=\"%u\"", loop);
	char sname[96];
	snprintf(sname, sizeof(sname), "%s_sum", name);
	seconds(w, sname, labels, sum_ns);
	put(w, "%s_count{loop=\"%u\"} %llu\n", name, loop, (unsigned long long)cum);
}

/* A wake counter per loop in two kinds: "local" (a loop waking its own
 * task: sent and received at once) and the other, at byte offset `off`. */
static void wake_kinds(mw *w, weft_runtime *rt, const char *name, const char *help,
		       const char *kind, size_t off)
{
	family(w, name, "counter", help);
	for (unsigned i = 0; i < rt->nloops; i++) {
		weft_loop *l = rt->loops[i];
		put(w, "%s{loop=\"%u\",kind=\"local\"} %llu\n", name, i,
		    (unsigned long long)rd(&l->obs.wakes_local));
		put(w, "%s{loop=\"%u\",kind=\"%s\"} %llu\n", name, i, kind,
		    (unsigned long long)rd((const uint64_t *)((const char *)l + off)));
	}
}

/* Idle time so far, the current spell included (a loop asleep for an
 * hour has been idle for that hour before it wakes up). */
static uint64_t idle_ns(weft_loop *l, uint64_t now)
{
	uint64_t since = rd(&l->obs.idle_since), done = rd(&l->obs.idle_ns);
	return done + (since && now > since ? now - since : 0);
}

static void write_loops(mw *w, weft_runtime *rt, uint64_t now)
{
	family(w, "weft_loop_busy_seconds_total", "counter",
	       "Time each loop spent running tasks and its scheduler (not idle).");
	uint64_t up = now > rt->started_ns ? now - rt->started_ns : 0;
	for (unsigned i = 0; i < rt->nloops; i++) {
		char lb[32];
		snprintf(lb, sizeof(lb), "loop=\"%u\"", i);
		uint64_t idle = idle_ns(rt->loops[i], now);
		seconds(w, "weft_loop_busy_seconds_total", lb, up > idle ? up - idle : 0);
	}
	family(w, "weft_loop_idle_seconds_total", "counter",
	       "Time each loop spent with nothing to run (spinning or asleep).");
	for (unsigned i = 0; i < rt->nloops; i++) {
		char lb[32];
		snprintf(lb, sizeof(lb), "loop=\"%u\"", i);
		seconds(w, "weft_loop_idle_seconds_total", lb, idle_ns(rt->loops[i], now));
	}
	LOOP_COUNTER(w, rt, "weft_scheduler_passes_total",
		     "Rounds of the loop's scheduler (maintenance, then the next task).",
		     obs.passes);
	LOOP_COUNTER(w, rt, "weft_task_runs_total", "Task resumptions (switches to a task).",
		     st.tasks_run);
	LOOP_COUNTER(w, rt, "weft_tasks_finished_total", "Tasks that finished on the loop.",
		     obs.tasks_finished);
	LOOP_COUNTER(w, rt, "weft_steals_total", "Successful steals from other loops.",
		     st.steals);
	LOOP_COUNTER(w, rt, "weft_tasks_stolen_total", "Tasks taken by those steals.",
		     st.tasks_stolen);
	wake_kinds(w, rt, "weft_wakes_sent_total",
		   "Tasks made runnable, by where the waker ran: on the task's own loop, on "
		   "another loop, or on a foreign thread.",
		   "cross_loop", offsetof(weft_loop, obs.wakes_cross));
	put(w, "weft_wakes_sent_total{loop=\"foreign\",kind=\"foreign\"} %llu\n",
	    (unsigned long long)atomic_load_explicit(&rt->wakes_foreign, memory_order_relaxed));
	wake_kinds(w, rt, "weft_wakes_received_total",
		   "Tasks made runnable on the loop: by itself, or sent by other loops and "
		   "foreign threads.",
		   "remote", offsetof(weft_loop, obs.wakes_remote));
	LOOP_COUNTER(w, rt, "weft_loop_wakeups_sent_total",
		     "Sleeping loops woken by this one (MSG_RING or eventfd).", st.wakeups_sent);
	LOOP_COUNTER(w, rt, "weft_spins_total",
		     "Times the loop ran out of work and spun before perhaps sleeping.",
		     obs.spins);
	LOOP_COUNTER(w, rt, "weft_parks_total", "Times the loop went to sleep in the kernel.",
		     st.parks);
	family(w, "weft_run_queue_depth", "gauge", "Tasks in the loop's stealable run queue.");
	for (unsigned i = 0; i < rt->nloops; i++)
		put(w, "weft_run_queue_depth{loop=\"%u\"} %u\n", i,
		    (unsigned)weft__runq_len(rt->loops[i]->rq));
	family(w, "weft_io_submissions_total", "counter", "I/O operations started, by operation.");
	for (unsigned i = 0; i < rt->nloops; i++)
		for (unsigned op = 0; op <= WEFT_OP_SEND_ZC; op++)
			put(w, "weft_io_submissions_total{loop=\"%u\",op=\"%s\"} %llu\n", i,
			    op_names[op], (unsigned long long)rd(&rt->loops[i]->obs.subs[op]));
	family(w, "weft_io_completions_total", "counter", "I/O operations ended, by operation.");
	for (unsigned i = 0; i < rt->nloops; i++)
		for (unsigned op = 0; op <= WEFT_OP_SEND_ZC; op++)
			put(w, "weft_io_completions_total{loop=\"%u\",op=\"%s\"} %llu\n", i,
			    op_names[op], (unsigned long long)rd(&rt->loops[i]->obs.comps[op]));
	LOOP_COUNTER(w, rt, "weft_io_enters_total",
		     "io_uring_enter calls (epoll: epoll_wait calls).", st.enters);
	LOOP_COUNTER(w, rt, "weft_io_cqes_total", "Completions reaped (epoll: events).", st.cqes);
	LOOP_COUNTER(w, rt, "weft_io_cq_overflows_total",
		     "Times the completion queue overflowed and was flushed.", st.cq_overflows);
	LOOP_COUNTER(w, rt, "weft_timers_armed_total", "Timers armed (sleeps, timeouts).",
		     obs.timers_armed);
	LOOP_COUNTER(w, rt, "weft_timers_fired_total", "Timers that expired.", st.timers_fired);

	static uint64_t wake_bounds[WEFT_OBS_HIST - 1];
	for (unsigned b = 0; b < WEFT_OBS_HIST - 1; b++)
		wake_bounds[b] = b ? wake_bounds[b - 1] * 4 : 1000;
	family(w, "weft_wake_to_run_seconds", "histogram",
	       "Delay from a task's wake to its run, one wake in 256 sampled.");
	for (unsigned i = 0; i < rt->nloops; i++)
		histogram(w, "weft_wake_to_run_seconds", i, rt->loops[i]->obs.wake_hist,
			  WEFT_OBS_HIST, wake_bounds, rd(&rt->loops[i]->obs.wake_sum_ns));

	LOOP_COUNTER(w, rt, "weft_stalls_total",
		     "Times a task ran longer than stall_threshold_ns without switching.",
		     stall.stalls);
	family(w, "weft_stall_seconds", "histogram",
	       "Length of those stalls (long polls), to within half the threshold.");
	for (unsigned i = 0; i < rt->nloops; i++)
		histogram(w, "weft_stall_seconds", i, rt->loops[i]->stall.hist, WEFT_STALL_HIST,
			  stall_bounds, rd(&rt->loops[i]->stall.sum_ns));
}

int weft_metrics_write(weft_runtime *rt, char *buf, size_t cap)
{
	if (!rt || (!buf && cap))
		return -EINVAL;
	mw w = {.buf = buf, .cap = cap, .len = 0};
	if (cap)
		buf[0] = 0;
	weft_runtime_stats s;
	weft_runtime_stats_get(rt, &s);
	family(&w, "weft_info", "gauge", "The runtime's I/O backend.");
	put(&w, "weft_info{backend=\"%s\"} 1\n", weft_backend_name(rt->backend));
	family(&w, "weft_loops", "gauge", "Event loops (threads) of the runtime.");
	put(&w, "weft_loops %u\n", rt->nloops);
	family(&w, "weft_tasks_spawned_total", "counter",
	       "Tasks spawned, by the loop whose task spawned them (foreign: other threads).");
	uint64_t from_loops = 0;
	for (unsigned i = 0; i < rt->nloops; i++) {
		uint64_t n = rd(&rt->loops[i]->st.tasks_spawned);
		from_loops += n;
		put(&w, "weft_tasks_spawned_total{loop=\"%u\"} %llu\n", i, (unsigned long long)n);
	}
	put(&w, "weft_tasks_spawned_total{loop=\"foreign\"} %llu\n",
	    (unsigned long long)(s.tasks_spawned - from_loops));
	family(&w, "weft_tasks_live", "gauge", "Tasks spawned and not yet finished.");
	put(&w, "weft_tasks_live %llu\n", (unsigned long long)s.tasks_live);
	family(&w, "weft_inject_queue_depth", "gauge",
	       "Tasks in the global inject queue (spawned by foreign threads).");
	put(&w, "weft_inject_queue_depth %u\n",
	    (unsigned)atomic_load_explicit(&rt->inject_len, memory_order_relaxed));
	family(&w, "weft_stacks", "gauge", "Live task stacks, by kind.");
	put(&w, "weft_stacks{kind=\"guarded\"} %llu\nweft_stacks{kind=\"slab\"} %llu\n",
	    (unsigned long long)s.stacks_guarded, (unsigned long long)s.stacks_slab);
	uint64_t threads, idle, queued;
	weft__pool_depth(rt, &threads, &idle, &queued);
	family(&w, "weft_offload_threads", "gauge", "Blocking-pool threads alive.");
	put(&w, "weft_offload_threads %llu\n", (unsigned long long)threads);
	family(&w, "weft_offload_threads_idle", "gauge", "Blocking-pool threads waiting for work.");
	put(&w, "weft_offload_threads_idle %llu\n", (unsigned long long)idle);
	family(&w, "weft_offload_queue_depth", "gauge", "Offloaded calls waiting for a thread.");
	put(&w, "weft_offload_queue_depth %llu\n", (unsigned long long)queued);
	family(&w, "weft_offload_calls_total", "counter", "Offloaded calls started.");
	put(&w, "weft_offload_calls_total %llu\n", (unsigned long long)s.offload_calls);
	write_loops(&w, rt, weft_now_ns());
	return w.len > INT32_MAX ? -EOVERFLOW : (int)w.len;
}
