/*
 * Fault injection for the runtime's own calls: the fault build
 * (build/fault, `make VARIANT=fault fault-tests`, docs/testing.md).
 *
 * The runtime's objects are linked into one relocatable object with
 * `ld -r --wrap=SYMBOL` for every call below, together with this file:
 * the runtime's references to malloc, mmap, socket, io_uring_submit, ...
 * become references to the __wrap_ functions here, which call the real
 * one (__real_SYMBOL) unless a fault is drawn.  The tests' own calls are
 * not wrapped: only the runtime's calls fail, and only while injection is
 * enabled.  liburing's io_uring_get_sqe is inlined from its header, so it
 * goes through the one seam in runtime/fault.h instead.
 *
 * Each site fails a call with its own probability, drawn from a per-thread
 * stream seeded from WEFT_FAULT_SEED (printed, so a failure can be
 * replayed; thread interleavings still vary between runs, so a replay
 * repeats each thread's faults in order, not the whole run exactly).
 * Faults are realistic: a failed call does nothing (an accept that fails
 * leaves the connection queued, a failed submit leaves the SQEs queued),
 * except where the kernel would have done part of it (a wait interrupted
 * after its submission), and each error is one the call can really return.
 */
#include "fault.h"

#include <dirent.h>
#include <errno.h>
#include <liburing.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FAULT_API __attribute__((visibility("hidden")))

/* ------------------------------------------------------------------------ */
/* sites                                                                     */
/* ------------------------------------------------------------------------ */

enum site {
	/* transparent: the runtime must hide these from its callers */
	S_ENTER,      /* io_uring_submit*, io_uring_get_events: EINTR, EAGAIN, EBUSY */
	S_EPOLL_WAIT, /* epoll_wait, epoll_pwait2: EINTR */
	S_SQE,        /* io_uring_get_sqe: NULL, the SQ is full (a flush empties it) */
	S_EVENTFD,    /* read/write of an eventfd: EINTR, EAGAIN */
	S_FUTEX,      /* FUTEX_WAIT: EINTR (a spurious wake) */
	/* visible: the caller gets the error, or the runtime copes */
	S_ALLOC,      /* malloc, calloc, realloc, aligned_alloc, posix_memalign, strdup */
	S_MMAP,       /* mmap: ENOMEM */
	S_SOCKET,     /* socket: ENFILE, EMFILE */
	S_ACCEPT,     /* accept4: EMFILE, ENFILE (the connection stays queued) */
	S_FD,         /* eventfd, epoll_create1, pipe2: EMFILE */
	S_THREAD,     /* pthread_create: EAGAIN */
	S_EPOLL_CTL,  /* epoll_ctl ADD: ENOMEM, ENOSPC */
	S_RING,       /* io_uring_queue_init_params, register_buf_ring/ring_fd: ENOMEM */
	S_SQE_STUCK,  /* a full SQ whose flush failed stays full, so get_sqe
			 is NULL again: the submission waits in the loop's
			 backlog (issue 10, defect 6) */
	S_SEND,       /* send(2) (epoll's sends): ENOBUFS, EPIPE, ECONNRESET */
	S_NSITES,
};

static const struct {
	const char *name;
	bool transparent;
	bool parked; /* not in "all": named explicitly to turn it on */
} sites[S_NSITES] = {
	[S_ENTER] = { "enter", true, false },
	[S_EPOLL_WAIT] = { "epoll_wait", true, false },
	[S_SQE] = { "sqe", true, false },
	[S_EVENTFD] = { "eventfd", true, false },
	[S_FUTEX] = { "futex", true, false },
	[S_ALLOC] = { "alloc", false, false },
	[S_MMAP] = { "mmap", false, false },
	[S_SOCKET] = { "socket", false, false },
	[S_ACCEPT] = { "accept", false, false },
	[S_FD] = { "fd", false, false },
	[S_THREAD] = { "thread", false, false },
	[S_EPOLL_CTL] = { "epoll_ctl", false, false },
	[S_RING] = { "ring", false, false },
	[S_SQE_STUCK] = { "sqe_stuck", true, false },
	/* parked: a send error ends the connection's writes for good, which
	 * the suites run under "all" do not expect of a healthy peer */
	[S_SEND] = { "send", false, true },
};

static _Atomic int g_on;
static _Atomic uint32_t g_p[S_NSITES];          /* probability * 2^32 */
static _Atomic uint64_t g_calls[S_NSITES], g_hits[S_NSITES];
static uint64_t g_seed;
static double g_rate = 0.02;
static _Atomic bool g_announced; /* the seed is on stderr */
static _Atomic uint32_t g_gen;    /* bumped by every config: threads reseed */
static _Atomic uint32_t g_threads; /* threads seeded under this generation */

/* weft_fault_fail_nth: the site whose nth call from now fails, and how
 * many calls are left until it (0: none armed). */
static _Atomic int g_nth_site = -1;
static _Atomic uint64_t g_nth_left;

static __thread uint64_t tl_state;
static __thread uint32_t tl_gen;
static __thread struct io_uring *tl_full; /* we said its SQ was full */
static __thread bool tl_flushed;           /* and it was flushed since */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(void)
{
	uint32_t gen = atomic_load_explicit(&g_gen, memory_order_acquire);
	if (tl_gen != gen) { /* first draw of this thread under this config */
		uint32_t ord = atomic_fetch_add_explicit(&g_threads, 1, memory_order_relaxed);
		tl_state = g_seed ^ (0xd1b54a32d192ed03ull * (ord + 1));
		tl_gen = gen;
	}
	return splitmix(&tl_state);
}

static void print_config(FILE *f);

static bool site_on(enum site s)
{
	return atomic_load_explicit(&g_on, memory_order_relaxed) &&
	       atomic_load_explicit(&g_p[s], memory_order_relaxed);
}

static void hit(enum site s);

/* The call armed by weft_fault_fail_nth, if this is it. */
static bool nth_due(enum site s)
{
	if (atomic_load_explicit(&g_nth_site, memory_order_relaxed) != (int)s)
		return false;
	uint64_t left = atomic_load(&g_nth_left);
	while (left && !atomic_compare_exchange_weak(&g_nth_left, &left, left - 1))
		;
	if (left != 1)
		return false;
	atomic_fetch_add_explicit(&g_calls[s], 1, memory_order_relaxed);
	hit(s);
	return true;
}

/* Draw for one call at site s: true means fail it. */
static bool roll(enum site s)
{
	if (!atomic_load_explicit(&g_on, memory_order_relaxed))
		return false;
	if (nth_due(s))
		return true;
	if (!site_on(s))
		return false;
	atomic_fetch_add_explicit(&g_calls[s], 1, memory_order_relaxed);
	if ((uint32_t)(rnd() >> 32) >= atomic_load_explicit(&g_p[s], memory_order_relaxed))
		return false;
	hit(s);
	return true;
}

static void hit(enum site s)
{
	atomic_fetch_add_explicit(&g_hits[s], 1, memory_order_relaxed);
	if (!atomic_load_explicit(&g_announced, memory_order_relaxed) &&
	    !atomic_exchange(&g_announced, true))
		print_config(stderr); /* before the first fault can bite */
}

/* One of n errors, at random. */
static int pick(const int *errs, unsigned n)
{
	return errs[rnd() % n];
}

/* ------------------------------------------------------------------------ */
/* configuration                                                             */
/* ------------------------------------------------------------------------ */

static void set_rate(enum site s, double p)
{
	if (p < 0)
		p = 0;
	uint64_t v = p >= 1 ? UINT32_MAX : (uint64_t)(p * 4294967296.0);
	atomic_store(&g_p[s], (uint32_t)v);
}

static bool apply(const char *tok, size_t len)
{
	char name[32];
	double rate = g_rate;
	bool off = tok[0] == '-';
	if (off) {
		tok++;
		len--;
	}
	const char *eq = memchr(tok, '=', len);
	size_t nlen = eq ? (size_t)(eq - tok) : len;
	if (nlen == 0 || nlen >= sizeof name)
		return false;
	memcpy(name, tok, nlen);
	name[nlen] = 0;
	if (eq) {
		char num[32];
		size_t rl = len - nlen - 1;
		if (rl == 0 || rl >= sizeof num)
			return false;
		memcpy(num, eq + 1, rl);
		num[rl] = 0;
		char *end;
		rate = strtod(num, &end);
		if (*end)
			return false;
	}
	if (off)
		rate = 0;
	bool all = !strcmp(name, "all"), transp = !strcmp(name, "transparent");
	if (!strcmp(name, "none")) {
		for (int s = 0; s < S_NSITES; s++)
			set_rate(s, 0);
		return true;
	}
	bool found = false;
	for (int s = 0; s < S_NSITES; s++) {
		if ((all && !sites[s].parked) || (transp && sites[s].transparent) ||
		    !strcmp(name, sites[s].name)) {
			set_rate(s, rate);
			found = true;
		}
	}
	return found;
}

static void print_config(FILE *f)
{
	fprintf(f, "weft-fault: seed=%llu (replay: WEFT_FAULT_SEED=%llu) sites:",
		(unsigned long long)g_seed, (unsigned long long)g_seed);
	for (int s = 0; s < S_NSITES; s++) {
		uint32_t p = atomic_load(&g_p[s]);
		if (p)
			fprintf(f, " %s=%.3g", sites[s].name, p / 4294967296.0);
	}
	fputc('\n', f);
}

FAULT_API void weft_fault_config(const char *spec)
{
	const char *env = getenv("WEFT_FAULT_SEED");
	g_seed = env && *env ? strtoull(env, NULL, 0)
			     : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
	env = getenv("WEFT_FAULT_RATE");
	if (env && *env)
		g_rate = strtod(env, NULL);
	if (!spec)
		spec = getenv("WEFT_FAULT");
	for (int s = 0; s < S_NSITES; s++)
		set_rate(s, 0);
	atomic_store(&g_nth_site, -1);
	for (const char *p = spec ? spec : ""; *p;) {
		size_t n = strcspn(p, ", ");
		if (n && !apply(p, n)) {
			fprintf(stderr, "weft-fault: bad site or rate in \"%.*s\"\n", (int)n, p);
			abort();
		}
		p += n;
		p += strspn(p, ", ");
	}
	atomic_store(&g_threads, 0);
	atomic_fetch_add(&g_gen, 1);
	atomic_store(&g_announced, false);
}

FAULT_API int weft_fault_fail_nth(const char *site, uint64_t n)
{
	for (int s = 0; s < S_NSITES; s++) {
		if (strcmp(site, sites[s].name))
			continue;
		atomic_store(&g_nth_site, -1);
		atomic_store(&g_nth_left, n);
		atomic_store(&g_nth_site, n ? s : -1);
		return 0;
	}
	return -1;
}

FAULT_API void weft_fault_enable(bool on)
{
	atomic_store(&g_on, on);
}

FAULT_API uint64_t weft_fault_seed(void)
{
	return g_seed;
}

FAULT_API uint64_t weft_fault_injected(void)
{
	uint64_t n = 0;
	for (int s = 0; s < S_NSITES; s++)
		n += atomic_load(&g_hits[s]);
	return n;
}

FAULT_API unsigned weft_fault_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* WEFT_FAULT set: the suite is one written for the normal build, run
 * unchanged with faults on from the start (e.g. WEFT_FAULT=transparent,
 * which it must not notice). */
__attribute__((constructor)) static void fault_init(void)
{
	const char *spec = getenv("WEFT_FAULT");
	if (!spec || !*spec)
		return;
	weft_fault_config(spec);
	weft_fault_enable(true);
}

/* The count of faults drawn per site, for the log. */
__attribute__((destructor)) static void fault_fini(void)
{
	if (!atomic_load(&g_announced))
		return; /* nothing injected (e.g. `--list`) */
	weft_fault_enable(false);
	fprintf(stderr, "weft-fault: seed=%llu injected/calls:", (unsigned long long)g_seed);
	for (int s = 0; s < S_NSITES; s++) {
		uint64_t c = atomic_load(&g_calls[s]);
		if (c)
			fprintf(stderr, " %s %llu/%llu", sites[s].name,
				(unsigned long long)atomic_load(&g_hits[s]), (unsigned long long)c);
	}
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* memory                                                                    */
/* ------------------------------------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t sz);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t al, size_t n);
int __real_posix_memalign(void **out, size_t al, size_t n);
char *__real_strdup(const char *s);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

FAULT_API void *__wrap_malloc(size_t n)
{
	if (roll(S_ALLOC)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

FAULT_API void *__wrap_calloc(size_t n, size_t sz)
{
	if (roll(S_ALLOC)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, sz);
}

FAULT_API void *__wrap_realloc(void *p, size_t n)
{
	if (n && roll(S_ALLOC)) { /* p stays valid, as when realloc fails */
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

FAULT_API void *__wrap_aligned_alloc(size_t al, size_t n)
{
	if (roll(S_ALLOC)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_aligned_alloc(al, n);
}

FAULT_API int __wrap_posix_memalign(void **out, size_t al, size_t n)
{
	if (roll(S_ALLOC))
		return ENOMEM;
	return __real_posix_memalign(out, al, n);
}

FAULT_API char *__wrap_strdup(const char *s)
{
	if (roll(S_ALLOC)) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

FAULT_API void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (roll(S_MMAP)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return __real_mmap(addr, len, prot, flags, fd, off);
}

/* ------------------------------------------------------------------------ */
/* threads and fds                                                           */
/* ------------------------------------------------------------------------ */

int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __real_socket(int domain, int type, int proto);
int __real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __real_eventfd(unsigned int init, int flags);
int __real_epoll_create1(int flags);
int __real_pipe2(int fds[2], int flags);

FAULT_API int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *),
				    void *arg)
{
	if (roll(S_THREAD))
		return EAGAIN;
	return __real_pthread_create(t, a, fn, arg);
}

FAULT_API int __wrap_socket(int domain, int type, int proto)
{
	static const int errs[] = { ENFILE, EMFILE };
	if (roll(S_SOCKET)) {
		errno = pick(errs, 2);
		return -1;
	}
	return __real_socket(domain, type, proto);
}

FAULT_API int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	static const int errs[] = { EMFILE, ENFILE };
	if (roll(S_ACCEPT)) {
		errno = pick(errs, 2);
		return -1;
	}
	return __real_accept4(fd, addr, len, flags);
}

/* The eventfds the runtime made: the only fds whose read/write may fail
 * with the eventfd site's errors (the runtime reads and writes no other fd
 * with read(2)/write(2)). */
#define EFD_MAX 65536
static _Atomic uint64_t efd_bits[EFD_MAX / 64];

static bool is_efd(int fd)
{
	return fd >= 0 && fd < EFD_MAX &&
	       (atomic_load_explicit(&efd_bits[fd / 64], memory_order_relaxed) >> (fd % 64) & 1);
}

FAULT_API int __wrap_eventfd(unsigned int init, int flags)
{
	if (roll(S_FD)) {
		errno = EMFILE;
		return -1;
	}
	int fd = __real_eventfd(init, flags);
	if (fd >= 0 && fd < EFD_MAX)
		atomic_fetch_or(&efd_bits[fd / 64], 1ull << (fd % 64));
	return fd;
}

FAULT_API int __wrap_epoll_create1(int flags)
{
	if (roll(S_FD)) {
		errno = EMFILE;
		return -1;
	}
	return __real_epoll_create1(flags);
}

FAULT_API int __wrap_pipe2(int fds[2], int flags)
{
	if (roll(S_FD)) {
		errno = EMFILE;
		return -1;
	}
	return __real_pipe2(fds, flags);
}

ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);

/* Reading an eventfd: nothing read (EAGAIN: another reader took it; EINTR). */
FAULT_API ssize_t __wrap_read(int fd, void *buf, size_t n)
{
	static const int errs[] = { EAGAIN, EINTR };
	if (is_efd(fd) && roll(S_EVENTFD)) {
		errno = pick(errs, 2);
		return -1;
	}
	return __real_read(fd, buf, n);
}

/* Writing an eventfd: EINTR, nothing written; or EAGAIN, which the kernel
 * returns only while the counter is saturated, i.e. a wake is pending: so
 * only when the eventfd is readable now, and then nothing is written. */
FAULT_API ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
	if (is_efd(fd) && roll(S_EVENTFD)) {
		if (rnd() & 1) {
			errno = EINTR;
			return -1;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 0) == 1) {
			errno = EAGAIN;
			return -1;
		}
	}
	return __real_write(fd, buf, n);
}

ssize_t __real_send(int fd, const void *buf, size_t n, int flags);

/* A send that fails with nothing sent: no buffer space (ENOBUFS), or the
 * connection's end as the kernel reports it (EPIPE, ECONNRESET).  Not
 * EAGAIN: the kernel says that only of a full socket, whose drain is the
 * edge epoll waits for; a made-up one on a writable socket would wait for
 * an edge that never comes. */
FAULT_API ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags)
{
	static const int errs[] = { ENOBUFS, EPIPE, ECONNRESET };
	if (roll(S_SEND)) {
		errno = pick(errs, 3);
		return -1;
	}
	return __real_send(fd, buf, n, flags);
}

/* ------------------------------------------------------------------------ */
/* epoll                                                                     */
/* ------------------------------------------------------------------------ */

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __real_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms);
long __real_syscall(long n, ...);

FAULT_API int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	static const int errs[] = { ENOMEM, ENOSPC };
	if (op == EPOLL_CTL_ADD && roll(S_EPOLL_CTL)) {
		errno = pick(errs, 2);
		return -1;
	}
	return __real_epoll_ctl(epfd, op, fd, ev);
}

FAULT_API int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int ms)
{
	if (roll(S_EPOLL_WAIT)) {
		errno = EINTR;
		return -1;
	}
	return __real_epoll_wait(epfd, evs, max, ms);
}

/* syscall(2): epoll_pwait2 (no libc wrapper in Debian 12's glibc) and the
 * futex.  The six argument registers are passed on as they are, as
 * glibc's own syscall() takes them. */
FAULT_API long __wrap_syscall(long n, ...)
{
	va_list ap;
	long a[6];
	va_start(ap, n);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if ((n == SYS_epoll_pwait2 && roll(S_EPOLL_WAIT)) ||
	    (n == SYS_futex && (a[1] & FUTEX_CMD_MASK) == FUTEX_WAIT && roll(S_FUTEX))) {
		errno = EINTR;
		return -1;
	}
	return __real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ------------------------------------------------------------------------ */
/* io_uring                                                                  */
/* ------------------------------------------------------------------------ */

int __real_io_uring_submit(struct io_uring *ring);
int __real_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
int __real_io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe,
					    unsigned wait_nr, struct __kernel_timespec *ts,
					    sigset_t *sigmask);
int __real_io_uring_submit_and_get_events(struct io_uring *ring);
int __real_io_uring_get_events(struct io_uring *ring);
int __real_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
				      struct io_uring_params *p);
int __real_io_uring_register_buf_ring(struct io_uring *ring, struct io_uring_buf_reg *reg,
				      unsigned flags);
int __real_io_uring_register_ring_fd(struct io_uring *ring);

/* The SQ was flushed for real: a "full" we reported is over. */
static int flushed(struct io_uring *ring, int r)
{
	if (tl_full == ring)
		tl_flushed = true;
	return r;
}

/* An io_uring_enter that fails: 0 (no fault), or -EINTR, -EAGAIN, -EBUSY.
 * Nothing is submitted, except that an interrupted wait (EINTR) comes
 * after its submission.  A really full SQ is not failed unless sqe_stuck
 * is on: get_sqe would then be NULL twice in a row (defect 6). */
static int enter_fault(struct io_uring *ring, bool waits)
{
	static const int errs[] = { -EINTR, -EAGAIN, -EBUSY };
	if (!site_on(S_ENTER) || (!io_uring_sq_space_left(ring) && !site_on(S_SQE_STUCK)) ||
	    !roll(S_ENTER))
		return 0;
	int e = pick(errs, 3);
	if (e == -EINTR && waits)
		flushed(ring, __real_io_uring_submit(ring));
	return e;
}

FAULT_API int __wrap_io_uring_submit(struct io_uring *ring)
{
	int e = enter_fault(ring, false);
	return e ? e : flushed(ring, __real_io_uring_submit(ring));
}

FAULT_API int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	int e = enter_fault(ring, wait_nr > 0);
	return e ? e : flushed(ring, __real_io_uring_submit_and_wait(ring, wait_nr));
}

FAULT_API int __wrap_io_uring_submit_and_wait_timeout(struct io_uring *ring,
						      struct io_uring_cqe **cqe, unsigned wait_nr,
						      struct __kernel_timespec *ts,
						      sigset_t *sigmask)
{
	int e = enter_fault(ring, wait_nr > 0);
	if (e)
		return e;
	return flushed(ring, __real_io_uring_submit_and_wait_timeout(ring, cqe, wait_nr, ts,
								     sigmask));
}

FAULT_API int __wrap_io_uring_submit_and_get_events(struct io_uring *ring)
{
	int e = enter_fault(ring, false);
	return e ? e : flushed(ring, __real_io_uring_submit_and_get_events(ring));
}

FAULT_API int __wrap_io_uring_get_events(struct io_uring *ring)
{
	int e = enter_fault(ring, false);
	return e ? e : __real_io_uring_get_events(ring);
}

/* The seam of runtime/fault.h.  After a "full" SQ the runtime flushes
 * and asks again: an SQE then, since a flush empties the SQ, unless the
 * flush failed and sqe_stuck draws an SQ that is still full. */
FAULT_API struct io_uring_sqe *weft__fault_get_sqe(struct io_uring *ring)
{
	if (tl_full == ring) {
		bool was_flushed = tl_flushed;
		tl_full = NULL;
		if (!was_flushed && roll(S_SQE_STUCK)) {
			tl_full = ring;
			return NULL;
		}
	} else if (roll(S_SQE)) {
		tl_full = ring;
		tl_flushed = false;
		return NULL;
	}
	return io_uring_get_sqe(ring);
}

FAULT_API int __wrap_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
						struct io_uring_params *p)
{
	if (roll(S_RING))
		return -ENOMEM;
	return __real_io_uring_queue_init_params(entries, ring, p);
}

FAULT_API int __wrap_io_uring_register_buf_ring(struct io_uring *ring,
						struct io_uring_buf_reg *reg, unsigned flags)
{
	if (roll(S_RING))
		return -ENOMEM;
	return __real_io_uring_register_buf_ring(ring, reg, flags);
}

FAULT_API int __wrap_io_uring_register_ring_fd(struct io_uring *ring)
{
	if (roll(S_RING))
		return -ENOMEM;
	return __real_io_uring_register_ring_fd(ring);
}
