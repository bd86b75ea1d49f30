/*
 * The epoll backend: where io_uring is refused (container seccomp
 * profiles, kernel.io_uring_disabled, gVisor, old kernels).
 *
 * One epoll set per loop, owned by the loop's thread.  An fd is added to
 * the set of a loop the first time a task on that loop has to wait for it,
 * edge-triggered for both directions, and stays there: a wait then costs
 * no epoll_ctl.  Edge triggering is safe because every wait starts with the
 * system call itself (MSG_DONTWAIT, RWF_NOWAIT): a task parks only after
 * the kernel said EAGAIN, on the loop whose set will report the next edge,
 * and nothing else reaps that set in between.
 *
 * Waiters hang off the fd's registration: tasks (woken to try again) and
 * callback ops (a stream's send, a server's accept), which the loop tries
 * itself.  An fd number is reused once its file is closed, and the kernel
 * drops a closed file from every set by itself: weft's own close paths
 * call weft__fd_forget, which bumps a process-wide generation per fd, so a
 * loop re-adds a reused number instead of trusting a stale registration.
 *
 * Wakes from other loops and threads are writes to the loop's eventfd,
 * which sits in the set.  Timers stay above the backend: the loop passes
 * its next deadline, and epoll_pwait2 sleeps until then to the nanosecond
 * (epoll_wait in milliseconds, rounded up, where the kernel lacks it).
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct weft__epreg {
	weft__op *head, *tail; /* waiters, oldest first */
	uint32_t gen;       /* fd generation it was added under */
	bool added;         /* in this loop's set */
	bool rd_ready;      /* an input edge came since the input last ran
			       dry here (for owned fds: see recv_skips) */
	bool rd_end;        /* end of input or an error was seen: final,
			       so a receive never skips again */
};

#define EP_TAG_WAKE UINT64_MAX
#define EP_BATCH 256
#define EP_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET)

/* ------------------------------------------------------------------------ */
/* fd generations: process-wide, any thread                                  */
/* ------------------------------------------------------------------------ */

#define GEN_CHUNK_BITS 12
#define GEN_CHUNKS (1u << 14) /* 64 Mi fds */
static _Atomic(_Atomic uint32_t *) gen_chunks[GEN_CHUNKS];

static _Atomic uint32_t *gen_slot(int fd, bool create)
{
	unsigned c = (unsigned)fd >> GEN_CHUNK_BITS;
	if (c >= GEN_CHUNKS)
		return NULL;
	_Atomic uint32_t *chunk = atomic_load_explicit(&gen_chunks[c], memory_order_acquire);
	if (!chunk && create) {
		_Atomic uint32_t *fresh = calloc(1u << GEN_CHUNK_BITS, sizeof(*fresh));
		if (!fresh)
			return NULL;
		if (atomic_compare_exchange_strong(&gen_chunks[c], &chunk, fresh))
			chunk = fresh;
		else
			free(fresh); /* another thread won: chunk is theirs */
	}
	return chunk ? &chunk[fd & ((1u << GEN_CHUNK_BITS) - 1)] : NULL;
}

static uint32_t fd_gen(int fd)
{
	_Atomic uint32_t *g = gen_slot(fd, false);
	return g ? atomic_load_explicit(g, memory_order_acquire) : 0;
}

void weft__fd_forget(int fd)
{
	if (fd < 0)
		return;
	_Atomic uint32_t *g = gen_slot(fd, true);
	if (g)
		atomic_fetch_add_explicit(g, 1, memory_order_release);
}

void weft__fd_close(int fd)
{
	weft__fd_forget(fd);
	close(fd);
}

/* ------------------------------------------------------------------------ */
/* registrations                                                             */
/* ------------------------------------------------------------------------ */

static weft__epreg *reg_get(weft_loop *l, int fd)
{
	weft__ep *ep = &l->ep;
	if ((unsigned)fd >= ep->nregs) {
		unsigned n = ep->nregs ? ep->nregs : 256;
		while (n <= (unsigned)fd)
			n *= 2;
		weft__epreg *r = realloc(ep->regs, n * sizeof(*r));
		if (!r)
			return NULL;
		memset(r + ep->nregs, 0, (n - ep->nregs) * sizeof(*r));
		ep->regs = r;
		ep->nregs = n;
	}
	return &ep->regs[fd];
}

/* Make sure fd is in l's set, armed.  An fd that weft alone closes
 * (`owned`) keeps its registration while its generation holds, at no cost
 * per wait.  Any other fd may have been closed with close(2) and its
 * number reused since: MOD re-arms it (and finds it gone, ENOENT, if so),
 * one epoll_ctl per wait that buys correctness whatever the caller does
 * with its fds.  -EPERM for files epoll cannot watch (regular files). */
static int reg_add(weft_loop *l, weft__epreg *r, int fd, bool owned)
{
	uint32_t gen = fd_gen(fd);
	if (owned && r->added && r->gen == gen)
		return 0;
	struct epoll_event ev = { .events = EP_EVENTS,
				  .data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)gen << 32 };
	int op = r->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	int rc = epoll_ctl(l->ep.epfd, op, fd, &ev);
	if (rc < 0 && (errno == EEXIST || errno == ENOENT)) {
		op = errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
		rc = epoll_ctl(l->ep.epfd, op, fd, &ev);
	}
	if (rc < 0) {
		r->added = false;
		return -errno;
	}
	r->added = true;
	r->gen = gen;
	r->rd_ready = true; /* unknown: the next receive tries */
	r->rd_end = false;
	return 0;
}

/*
 * A receive on an owned stream socket whose input ran dry on this loop
 * (EAGAIN, or a short read: TCP and Unix stream receives copy until the
 * queue is empty) and has had no input edge since cannot find anything:
 * any byte that arrived after the dry read raised an edge in this loop's
 * set, and the loop has not reaped it yet.  Such a receive parks at once
 * instead of paying a failed system call, as io_uring's POLL_FIRST does.
 * Not once the peer's end of input (or an error) was seen: that is a state
 * that raises no second edge, and a short read leaves it to be read.
 * Only owned fds: their registration is known to be live.
 * The latch is per loop and holds for a reader that moves between loops:
 * an arrival queues an edge in every set that holds the fd, so bytes
 * that came while the reader ran elsewhere (and that it left behind
 * there) are announced here too; an edge reaped after another loop took
 * the bytes reports no input and leaves the latch down, rightly
 * (test_read_hops_loops_while_input_runs_dry).
 */
static bool recv_skips(weft_loop *l, const weft__op *op)
{
	if (op->opcode != WEFT_OP_RECV || !(op->hints & WEFT_OPH_OWNED) ||
	    (unsigned)op->a.fd >= l->ep.nregs)
		return false;
	const weft__epreg *r = &l->ep.regs[op->a.fd];
	return r->added && !r->rd_ready && !r->rd_end && r->gen == fd_gen(op->a.fd);
}

/* After a receive attempt on an owned fd: did its input run dry? */
static void recv_note(weft_loop *l, const weft__op *op, int res)
{
	if (op->opcode != WEFT_OP_RECV || !(op->hints & WEFT_OPH_OWNED) ||
	    (unsigned)op->a.fd >= l->ep.nregs)
		return;
	if (res == -EAGAIN ||
	    (res > 0 && (uint64_t)res < op->a.len && (op->hints & WEFT_OPH_BYTESTREAM)))
		l->ep.regs[op->a.fd].rd_ready = false;
}

static void waiter_link(weft_loop *l, weft__epreg *r, weft__op *op)
{
	op->enext = NULL;
	op->eprev = r->tail;
	if (r->tail)
		r->tail->enext = op;
	else
		r->head = op;
	r->tail = op;
	op->estate = WEFT_EPS_WAITING;
}

static void waiter_unlink(weft_loop *l, weft__op *op)
{
	weft__epreg *r = &l->ep.regs[op->ewfd];
	if (op->eprev)
		op->eprev->enext = op->enext;
	else
		r->head = op->enext;
	if (op->enext)
		op->enext->eprev = op->eprev;
	else
		r->tail = op->eprev;
	op->enext = op->eprev = NULL;
	op->estate = WEFT_EPS_IDLE;
}

/* ------------------------------------------------------------------------ */
/* task waits                                                                */
/* ------------------------------------------------------------------------ */

/* Park the calling task until fd is ready for `want` (or errs).  0, or
 * -ECANCELED / -ETIMEDOUT (the waiter is gone from the fd: nothing was in
 * flight), or the registration's error. */
static int wait_ready(weft__op *op, int fd, uint32_t want)
{
	weft_task *t = op->task;
	weft_loop *l = weft__loop_self();
	weft__epreg *r = reg_get(l, fd);
	if (!r)
		return -ENOMEM;
	int err = reg_add(l, r, fd, op->hints & WEFT_OPH_OWNED);
	if (err < 0)
		return err;
	op->ewfd = fd;
	op->ewant = want;
	op->done = false;
	op->cqe_flags = 1; /* it parked: see weft__ep_run */
	waiter_link(l, r, op);
	l->inflight++;
	int16_t pin = t->pin;
	/* woken on this loop: the set is here (a relaxed store: dumps read it) */
	__atomic_store_n(&t->pin, (int16_t)l->index, __ATOMIC_RELAXED);
	weft__wait_io(t, op->opcode, fd, op);
	while (!op->done) {
		err = weft__park_task(t, 0);
		if (unlikely(err < 0) && !op->done) {
			waiter_unlink(l, op);
			if (err == -ECANCELED)
				t->cancel_seen = true; /* delivered here */
			break;
		}
		err = 0; /* ready wins: a cancellation waits for the next point */
	}
	l->inflight--;
	__atomic_store_n(&t->pin, pin, __ATOMIC_RELAXED);
	return err;
}

/* Is fd ready for `events` right now?  The revents, 0, or -errno. */
static int poll_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r = poll(&p, 1, 0);
	if (r < 0)
		return -errno;
	if (r && (p.revents & POLLNVAL))
		return -EBADF;
	return r ? p.revents : 0;
}

static uint32_t op_direction(const weft__op *op)
{
	switch (op->opcode) {
	case WEFT_OP_WRITE: case WEFT_OP_WRITEV: case WEFT_OP_SEND: case WEFT_OP_SENDMSG:
	case WEFT_OP_SEND_ZC: case WEFT_OP_CONNECT:
		return EPOLLOUT;
	default:
		return EPOLLIN;
	}
}

static bool is_rw(const weft__op *op)
{
	return op->opcode <= WEFT_OP_WRITEV;
}

static void *pool_body(void *arg)
{
	weft__op *op = arg;
	op->res = weft__op_syscall(op, false);
	return NULL;
}

/* Run op's blocking call on the pool.  The wait is uninterruptible: the
 * pool thread may be writing into the caller's buffer (rule 4).  A
 * cancellation that came meanwhile surfaces at the next suspension point. */
static int run_on_pool(weft__op *op)
{
	weft_task *t = op->task;
	uint64_t saved = weft__uninterruptible_begin(t);
	op->cqe_flags = 1; /* it parks */
	int r = weft_offload(pool_body, op, NULL);
	weft__uninterruptible_end(t, saved);
	return r < 0 ? r : op->res;
}

static bool on_pool(const weft__op *op)
{
	switch (op->opcode) {
	case WEFT_OP_OPENAT: case WEFT_OP_STATX: case WEFT_OP_FSYNC: case WEFT_OP_FALLOCATE:
	case WEFT_OP_UNLINKAT: case WEFT_OP_RENAMEAT: case WEFT_OP_MKDIRAT:
		return true;
	default:
		return false;
	}
}

static bool is_file(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ||
				       S_ISDIR(st.st_mode));
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* connect: start it non-blocking, wait until writable, read the outcome.
 * A socket the caller made blocking is blocking again afterwards. */
static int run_connect(weft__op *op)
{
	int fd = op->a.fd;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	int r = weft__op_syscall(op, true);
	if (r == -EINPROGRESS || r == -EALREADY) {
		r = wait_ready(op, fd, EPOLLOUT);
		if (r == 0) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				soerr = errno;
			r = -soerr;
		}
	}
	if (!(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl);
	return r;
}

/* splice: are both sides ready now?  A splice out of a blocking socket
 * ignores SPLICE_F_NONBLOCK (tcp_splice_read waits by the file's own
 * O_NONBLOCK), so the non-blocking attempt is made only once poll(2)
 * says the input has bytes (and the output room): with bytes there, it
 * takes them and returns without waiting for more. */
static bool splice_ready(weft__op *op)
{
	return poll_now(op->a.fd, POLLIN) > 0 && poll_now(op->a.fd2, POLLOUT) > 0;
}

/* splice: which side made it wait?  The one poll(2) says is not ready. */
static int splice_wait(weft__op *op)
{
	int in = poll_now(op->a.fd, POLLIN);
	if (in == 0)
		return wait_ready(op, op->a.fd, EPOLLIN);
	int out = poll_now(op->a.fd2, POLLOUT);
	if (out == 0)
		return wait_ready(op, op->a.fd2, EPOLLOUT);
	return in < 0 ? in : out < 0 ? out : 0;
}

/* The fd cannot say "would block" (a tty, some character devices): wait
 * for readiness first, then make the plain call, which will not block. */
static int run_ready_first(weft__op *op, int fd, uint32_t want)
{
	for (;;) {
		int ready = poll_now(fd, want == EPOLLOUT ? POLLOUT : POLLIN);
		if (ready < 0)
			return ready;
		if (ready)
			return weft__op_syscall(op, false);
		int r = wait_ready(op, fd, want);
		if (r < 0)
			return r;
	}
}

/* The non-blocking attempt.  A WEFT_OPH_BUFSEL receive gets a buffer for
 * it (from the loop's cache: weft__rxbuf_get), kept only if bytes came:
 * the task waits for readiness holding none. */
static int try_now(weft__op *op)
{
	if (!(op->hints & WEFT_OPH_BUFSEL))
		return weft__op_syscall(op, true);
	op->a.p = weft__rxbuf_get(op->a.len);
	op->a.p3 = NULL;
	if (!op->a.p)
		return -ENOMEM;
	int r = weft__op_syscall(op, true);
	if (r <= 0) {
		weft__rxbuf_put(op->a.p, op->a.len);
		op->a.p = NULL;
	}
	return r;
}

static int run_op(weft__op *op)
{
	if (on_pool(op))
		return run_on_pool(op);
	switch (op->opcode) {
	case WEFT_OP_CLOSE:
		weft__fd_forget(op->a.fd);
		return weft__op_syscall(op, false);
	case WEFT_OP_SHUTDOWN:
		return weft__op_syscall(op, false);
	case WEFT_OP_CONNECT:
		return run_connect(op);
	case WEFT_OP_ACCEPT: {
		int r = set_nonblock(op->a.fd);
		if (r < 0)
			return r;
		break;
	}
	default:
		break;
	}
	bool caller_nowait = (op->opcode >= WEFT_OP_RECV && op->opcode <= WEFT_OP_SENDMSG &&
			      (op->a.flags & MSG_DONTWAIT));
	bool try_first = caller_nowait || !recv_skips(weft__loop_self(), op);
	for (;;) {
		int r = -EAGAIN;
		if (op->opcode == WEFT_OP_SPLICE)
			try_first = splice_ready(op);
		if (try_first) {
			r = try_now(op);
			recv_note(weft__loop_self(), op, r);
		}
		try_first = true;
		if (op->opcode == WEFT_OP_POLL && r == 0)
			r = -EAGAIN; /* nothing yet: wait for it */
		if (r != -EAGAIN && r != -EOPNOTSUPP)
			return r;
		if (caller_nowait && r == -EAGAIN)
			return r;
		if (is_rw(op) && is_file(op->a.fd))
			return run_on_pool(op);
		if (r == -EOPNOTSUPP) {
			if (!is_rw(op))
				return r;
			return run_ready_first(op, op->a.fd, op_direction(op));
		}
		if (op->opcode == WEFT_OP_SPLICE)
			r = splice_wait(op);
		else if (op->opcode == WEFT_OP_POLL)
			r = wait_ready(op, op->a.fd, op->a.mode & (EPOLLIN | EPOLLOUT | EPOLLPRI));
		else
			r = wait_ready(op, op->a.fd, op_direction(op));
		if (r == -EPERM) /* epoll cannot watch it: a plain file */
			return run_on_pool(op);
		if (r < 0)
			return r;
	}
}

/* An op that completed at once never suspended the task: it spends
 * budget, so a task whose sockets are always ready still lets the others
 * on its loop run (io_uring suspends at every op instead). */
int weft__ep_run(weft__op *op)
{
	WEFT_TRACE(op->loop, WEFT_TEV_SUBMIT, op->opcode, 0, op->task->id, (uint32_t)op->a.fd, 0);
	int r = run_op(op);
	weft_loop *l = weft__loop_self();
	WEFT_TRACE(l, WEFT_TEV_COMPLETE, op->opcode, 0, op->task->id, (uint32_t)r, 0);
	WEFT_STAT_ADD(l, ops, 1);
	WEFT_OBS_ADD(l, comps[op->opcode], 1);
	if (!op->cqe_flags)
		weft__budget_spend(op->task);
	return r;
}

/* ------------------------------------------------------------------------ */
/* callback ops: tried by the loop, results to op->cb                       */
/* ------------------------------------------------------------------------ */

static void ready_push(weft_loop *l, weft__op *op)
{
	op->enext = NULL;
	if (l->ep.ready_tail)
		l->ep.ready_tail->enext = op;
	else
		l->ep.ready_head = op;
	l->ep.ready_tail = op;
	op->estate = WEFT_EPS_QUEUED;
}

int weft__ep_arm(weft_loop *l, weft__op *op)
{
	op->loop = l;
	op->done = false;
	op->res = 0;
	WEFT_TRACE(l, WEFT_TEV_SUBMIT, op->opcode, 0, 0, (uint32_t)op->a.fd, 0);
	if (op->opcode == WEFT_OP_ACCEPT)
		set_nonblock(op->a.fd); /* failing that, accept fails and says so */
	l->inflight++; /* until its final callback */
	ready_push(l, op);
	return 0;
}

void weft__ep_cancel(weft_loop *l, weft__op *op)
{
	if (op->estate == WEFT_EPS_WAITING) {
		waiter_unlink(l, op);
		ready_push(l, op);
	}
	if (op->estate == WEFT_EPS_QUEUED)
		op->res = -ECANCELED; /* delivered at the next poll */
}

static void cb_final(weft_loop *l, weft__op *op, int res)
{
	op->estate = WEFT_EPS_IDLE;
	op->done = true;
	l->inflight--;
	WEFT_STAT_ADD(l, ops, 1);
	WEFT_TRACE(l, WEFT_TEV_COMPLETE, op->opcode, 0, 0, (uint32_t)res, 0);
	WEFT_OBS_ADD(l, comps[op->opcode], 1);
	op->cb(l, op, res, 0);
}

/* Try callback op until it would block; then wait on its fd. */
static void cb_try(weft_loop *l, weft__op *op)
{
	if (op->res == -ECANCELED) {
		cb_final(l, op, -ECANCELED);
		return;
	}
	bool multi = op->hints & WEFT_OPH_MULTISHOT;
	for (;;) {
		/* A receive on an fd whose input ran dry waits for its edge
		 * first (recv_skips); a BUFSEL one gets a buffer only for an
		 * attempt (try_now). */
		int r = -EAGAIN;
		if (multi || !recv_skips(l, op)) {
			r = multi ? weft__op_syscall(op, true) : try_now(op);
			recv_note(l, op, r);
		}
		if (r == -EAGAIN && !multi && op->opcode == WEFT_OP_RECV &&
		    (op->a.flags & MSG_DONTWAIT)) { /* the caller's own try */
			cb_final(l, op, r);
			return;
		}
		if (r == -EAGAIN)
			break;
		if (!multi || r < 0) {
			cb_final(l, op, r);
			return;
		}
		WEFT_TRACE(l, WEFT_TEV_COMPLETE, op->opcode, 0, 0, (uint32_t)r, WEFT__OP_MORE);
		op->cb(l, op, r, WEFT__OP_MORE);
		if (op->res == -ECANCELED) { /* the callback cancelled it */
			cb_final(l, op, -ECANCELED);
			return;
		}
	}
	weft__epreg *r = reg_get(l, op->a.fd);
	int err = r ? reg_add(l, r, op->a.fd, true) : -ENOMEM; /* weft's own */
	if (err < 0) {
		cb_final(l, op, err);
		return;
	}
	op->ewfd = op->a.fd;
	op->ewant = op_direction(op);
	waiter_link(l, r, op);
}

static void run_ready(weft_loop *l)
{
	weft__op *op;
	while ((op = l->ep.ready_head)) {
		l->ep.ready_head = op->enext;
		if (!op->enext)
			l->ep.ready_tail = NULL;
		op->enext = NULL;
		cb_try(l, op);
	}
}

/* Events for fd: wake its tasks, queue its callback ops to be tried. */
static void dispatch(weft_loop *l, uint64_t data, uint32_t events)
{
	int fd = (int)(uint32_t)data;
	uint32_t gen = (uint32_t)(data >> 32);
	if ((unsigned)fd >= l->ep.nregs)
		return;
	weft__epreg *r = &l->ep.regs[fd];
	if (!r->added || r->gen != gen)
		return; /* a closed file's last word */
	uint32_t any = EPOLLERR | EPOLLHUP;
	if (events & (EPOLLIN | EPOLLRDHUP | any))
		r->rd_ready = true;
	if (events & (EPOLLRDHUP | any)) /* a state, not an edge: it stays */
		r->rd_end = true;
	weft__op *op = r->head;
	while (op) {
		weft__op *next = op->enext;
		uint32_t want = op->ewant | (op->ewant & EPOLLIN ? EPOLLRDHUP : 0);
		if (events & (want | any)) {
			waiter_unlink(l, op);
			if (op->cb) {
				ready_push(l, op);
			} else {
				op->done = true;
				weft__task_wake(op->task);
			}
		}
		op = next;
	}
}

/* ------------------------------------------------------------------------ */
/* the loop's side                                                           */
/* ------------------------------------------------------------------------ */

static int ep_wait(weft_loop *l, struct epoll_event *evs, bool block, uint64_t deadline)
{
	static _Atomic bool no_pwait2;
	struct timespec ts, *tsp = NULL;
	if (!block) {
		ts.tv_sec = ts.tv_nsec = 0;
		tsp = &ts;
	} else if (deadline) {
		uint64_t now = weft_now_ns();
		uint64_t d = deadline > now ? deadline - now : 0;
		ts.tv_sec = (time_t)(d / 1000000000u);
		ts.tv_nsec = (long)(d % 1000000000u);
		tsp = &ts;
	}
	if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
		long n = syscall(SYS_epoll_pwait2, l->ep.epfd, evs, EP_BATCH, tsp, NULL, 0);
		if (n >= 0 || (errno != ENOSYS && errno != EPERM))
			return n < 0 ? -errno : (int)n;
		atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
	}
	int ms = -1;
	if (tsp) /* round up: waking early would spin */
		ms = (int)(tsp->tv_sec * 1000 + (tsp->tv_nsec + 999999) / 1000000);
	int n = epoll_wait(l->ep.epfd, evs, EP_BATCH, ms);
	return n < 0 ? -errno : n;
}

/* A coalesced sleep (weft_runtime_config.coalesce_us).  epoll has no
 * wait for a batch: sleep coalesce_us (less if the deadline is sooner),
 * and let the epoll_wait after it take what came meanwhile.  Unlike
 * io_uring's it does not end early when coalesce_events are ready. */
static void ep_sleep_coalesced(weft_loop *l, uint64_t deadline)
{
	uint64_t now = weft_now_ns();
	uint64_t d = (uint64_t)l->rt->cfg.coalesce_us * 1000u;
	if (deadline && deadline < now + d)
		d = deadline > now ? deadline - now : 0;
	struct timespec ts = { .tv_sec = (time_t)(d / 1000000000u),
			       .tv_nsec = (long)(d % 1000000000u) };
	if (d)
		nanosleep(&ts, NULL); /* EINTR: a signal; wait as usual */
}

void weft__ep_poll(weft_loop *l, bool block, uint64_t deadline)
{
	if (l->ep.ready_head) {
		run_ready(l);
		block = false; /* callbacks may have made work */
	}
	if (!block && !l->inflight)
		return;
	if (block && l->rt->cfg.coalesce_us && l->inflight > 1)
		ep_sleep_coalesced(l, deadline);
	struct epoll_event evs[EP_BATCH];
	int n = ep_wait(l, evs, block, deadline);
	WEFT_STAT_ADD(l, enters, 1);
	for (int i = 0; i < n; i++) {
		if (evs[i].data.u64 == EP_TAG_WAKE) {
			uint64_t v;
			ssize_t rd = read(l->efd, &v, sizeof(v));
			(void)rd; /* EAGAIN: another wake read it */
			continue;
		}
		dispatch(l, evs[i].data.u64, evs[i].events);
	}
	if (n > 0)
		WEFT_STAT_ADD(l, cqes, (unsigned)n);
	if (l->ep.ready_head)
		run_ready(l);
}

void weft__ep_wake(weft_loop *target)
{
	weft__efd_post(target->efd);
	weft_loop *me = weft__loop_self();
	if (me)
		WEFT_STAT_ADD(me, wakeups_sent, 1);
}

int weft__ep_init(weft_loop *l)
{
	l->ep.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep.epfd < 0)
		return -errno;
	l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EP_TAG_WAKE };
	if (l->efd < 0 || epoll_ctl(l->ep.epfd, EPOLL_CTL_ADD, l->efd, &ev) < 0) {
		int r = -errno;
		weft__ep_exit(l);
		return r;
	}
	return 0;
}

void weft__ep_exit(weft_loop *l)
{
	if (l->ep.epfd >= 0)
		close(l->ep.epfd);
	if (l->efd >= 0)
		close(l->efd);
	l->ep.epfd = l->efd = -1;
	free(l->ep.regs);
	l->ep.regs = NULL;
	l->ep.nregs = 0;
}
