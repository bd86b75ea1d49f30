/*
 * The io_uring backend: the per-loop ring (creation with feature probing,
 * the one submit-and-reap call per loop iteration, completion dispatch,
 * cross-loop wakeups), and an op turned into one SQE.
 *
 * Ring flags, best first (docs/architecture.md rule 3):
 * SINGLE_ISSUER|DEFER_TASKRUN (completions are processed only when this loop
 * asks, on this thread), then COOP_TASKRUN|TASKRUN_FLAG, then none.  The ring
 * is created by the loop's own thread, the only one that ever submits to or
 * reaps it.
 *
 * user_data: small integers are tags; anything else is a weft__op pointer
 * (the I/O layer's per-operation record; pointers are 8-byte aligned).
 *
 * The backlog: no submission is ever dropped.  An SQE is normally there
 * (the SQ is flushed once when full), but the kernel may refuse the flush
 * (-EAGAIN out of memory; -EBUSY while the CQ overflows, before 5.19).
 * Whatever then finds no SQE waits in the loop's backlog, oldest first:
 * an op to start, an async cancel of an op in flight, the re-arm of the
 * eventfd read (without it no foreign thread, offload completion or signal
 * could wake the loop again).  The loop prepares the backlog at the top of
 * every poll and again after reaping, and does not sleep while any of it is
 * left.  A cancel of an op still in the backlog takes it out and completes
 * it with -ECANCELED there (nothing reached the kernel); a queued cancel
 * leaves the backlog with its op's final CQE, so it never outlives the op
 * and hits another one at the same address.
 */
#include "io.h"
#include "../runtime/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <valgrind/valgrind.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* IORING_FEAT_MIN_TIMEOUT (6.12), newer than Debian 12's headers. */
#define WEFT_FEAT_MIN_TIMEOUT (1U << 15)

enum {
	TAG_NONE = 0,
	TAG_EFD = 1,      /* our eventfd read completed: a foreign wake */
	TAG_WAKE = 2,     /* MSG_RING from another loop */
	TAG_MSG_SENT = 16, /* + target loop index: our MSG_RING to it failed
			      (success CQEs are skipped) */
	TAG_MAX = 4096,   /* below any pointer */
};

static struct io_uring_sqe *ring_sqe(weft_loop *l);

static void wake_by_eventfd(weft_loop *target)
{
	weft__efd_post(target->efd);
}

static void arm_eventfd(weft_loop *l)
{
	struct io_uring_sqe *sqe = ring_sqe(l);
	l->efd_rearm = !sqe; /* no room: the backlog has it */
	if (unlikely(!sqe))
		return;
	io_uring_prep_read(sqe, l->efd, &l->efd_buf, sizeof(l->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, TAG_EFD);
}

/* ---- the backlog (see the top of this file) ---- */

static void backlog_push(weft_loop *l, weft__op *op, uint8_t state)
{
	op->ustate = state;
	op->unext = NULL;
	if (l->ubl_tail)
		l->ubl_tail->unext = op;
	else
		l->ubl_head = op;
	l->ubl_tail = op;
}

/* Take op (which is in it) out of the backlog. */
static void backlog_remove(weft_loop *l, weft__op *op)
{
	weft__op *prev = NULL, **pp = &l->ubl_head;
	while (*pp != op) {
		prev = *pp;
		pp = &prev->unext;
	}
	*pp = op->unext;
	if (l->ubl_tail == op)
		l->ubl_tail = prev;
	op->ustate = WEFT_UQ_NONE;
	op->unext = NULL;
}

static bool bufsel_cqe(weft_loop *l, weft__op *op, int32_t *res, uint32_t flags);

/* An op's result (a CQE's, or -ECANCELED for one cancelled in the
 * backlog): to its callback, or to the waiting task. */
static void complete(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	WEFT_TRACE(l, WEFT_TEV_COMPLETE, op->opcode, 0, op->cb ? 0 : op->task->id, (uint32_t)res,
		   flags);
	if (!(flags & IORING_CQE_F_MORE)) {
		if (unlikely(op->ustate)) /* its cancel is still queued */
			backlog_remove(l, op);
		l->inflight--;
		WEFT_STAT_ADD(l, ops, 1);
		WEFT_OBS_ADD(l, comps[op->opcode], 1);
	}
	if (op->cb) {
		if (unlikely(op->hints & (WEFT_OPH_BUFSEL | WEFT_OPH_BUFHELD)) &&
		    bufsel_cqe(l, op, &res, flags))
			return; /* submitted again: the callback waits */
		op->cb(l, op, res, flags);
		return;
	}
	/* A task's op has one CQE, but a zero-copy send two: its result
	 * (IORING_CQE_F_MORE), then the notification that the kernel is done
	 * with the buffer, which alone ends it (rule 4). */
	if (unlikely(flags & (IORING_CQE_F_MORE | IORING_CQE_F_NOTIF))) {
		if (flags & IORING_CQE_F_MORE) {
			op->res = res;
			op->cqe_flags = flags;
			return;
		}
	} else {
		op->res = res;
		op->cqe_flags = flags;
	}
	op->done = true;
	/* op lives on the task's stack: after this wake it may be gone. */
	weft__task_wake(op->task);
}

static void prep(weft_loop *l, struct io_uring_sqe *sqe, const weft__op *op);
static void prep_cancel(weft_loop *l, struct io_uring_sqe *sqe, const weft__op *op);

/* Prepare the backlog, oldest first, while SQEs can be had.  Returns
 * whether nothing is left. */
static bool backlog_flush(weft_loop *l)
{
	if (l->efd_rearm)
		arm_eventfd(l);
	weft__op *op;
	while (!l->efd_rearm && (op = l->ubl_head)) {
		struct io_uring_sqe *sqe = NULL;
		if (op->ustate != WEFT_UQ_CANCELLED && !(sqe = ring_sqe(l)))
			break;
		uint8_t st = op->ustate;
		backlog_remove(l, op);
		if (st == WEFT_UQ_CANCELLED)
			complete(l, op, -ECANCELED, 0);
		else if (st == WEFT_UQ_SUBMIT)
			prep(l, sqe, op);
		else
			prep_cancel(l, sqe, op);
	}
	return !l->efd_rearm && !l->ubl_head;
}

static int ring_create(weft_loop *l, unsigned entries, unsigned cq_entries)
{
	struct io_uring_params p;
	/* TASKRUN_FLAG: the kernel sets IORING_SQ_TASKRUN while completions
	 * wait for an enter to run them, so a poll that has nothing to submit
	 * and sees the flag clear needs no system call (ring_must_enter). */
	const unsigned defer = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	const unsigned tries[] = {
		defer | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
		defer | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
		0,
	};
	const unsigned feat[] = { WEFT_RING_DEFER_TASKRUN, WEFT_RING_DEFER_TASKRUN,
				  WEFT_RING_COOP_TASKRUN, 0 };
	const unsigned first[] = { [WEFT_RING_MODE_AUTO] = 0, [WEFT_RING_MODE_COOP] = 2,
				   [WEFT_RING_MODE_PLAIN] = 3 };
	int r = -EINVAL;
	for (unsigned i = first[l->rt->cfg.ring_mode]; i < 4; i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
		r = io_uring_queue_init_params(entries, &l->ring, &p);
		if (r == 0) {
			l->features |= feat[i];
			l->taskrun_flag = (tries[i] & IORING_SETUP_TASKRUN_FLAG) != 0;
			break;
		}
		if (r != -EINVAL)
			return r; /* ENOSYS, EPERM, ENOMEM: no point trying less */
	}
	if (r < 0)
		return r;
	l->features |= WEFT_RING_CQSIZE;
	if (p.features & IORING_FEAT_EXT_ARG)
		l->features |= WEFT_RING_EXT_ARG;
	if (p.features & IORING_FEAT_NODROP)
		l->features |= WEFT_RING_NODROP;
	if (p.features & IORING_FEAT_CQE_SKIP)
		l->features |= WEFT_RING_CQE_SKIP;
	if ((p.features & WEFT_FEAT_MIN_TIMEOUT) && (p.features & IORING_FEAT_EXT_ARG) &&
	    !atomic_load_explicit(&weft__min_wait_off, memory_order_relaxed))
		l->features |= WEFT_RING_MIN_WAIT;
	return 0;
}

/* Provided-buffer rings came with multishot accept and recv (5.19), and
 * no opcode probe reports a flag: register a one-entry buffer ring and
 * take success as the answer for all three. */
static void probe_buf_ring(weft_loop *l)
{
	struct io_uring_buf_reg reg = { 0 };
	void *mem = NULL;
	if (posix_memalign(&mem, 4096, 4096))
		return;
	reg.ring_addr = (uintptr_t)mem;
	reg.ring_entries = 1;
	reg.bgid = 0xffff;
	if (io_uring_register_buf_ring(&l->ring, &reg, 0) == 0) {
		l->features |= WEFT_RING_BUF_RING | WEFT_RING_MULTISHOT;
		io_uring_unregister_buf_ring(&l->ring, 0xffff);
	}
	free(mem);
}

static void probe_features(weft_loop *l)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(&l->ring);
	if (probe) {
		if (io_uring_opcode_supported(probe, IORING_OP_MSG_RING))
			l->features |= WEFT_RING_MSG_RING;
		if (io_uring_opcode_supported(probe, IORING_OP_SEND_ZC))
			l->features |= WEFT_RING_SEND_ZC;
		io_uring_free_probe(probe);
	}
	probe_buf_ring(l);
}

int weft__ring_init(weft_loop *l)
{
	int r = ring_create(l, l->rt->cfg.ring_entries, l->rt->cfg.ring_cq_entries);
	if (r < 0)
		return r;
	l->ring_fd = l->ring.ring_fd;
	probe_features(l);
	if (io_uring_register_ring_fd(&l->ring) == 1)
		l->features |= WEFT_RING_FD_REGISTERED;
	/* Blocking eventfd on purpose: io_uring polls it instead of failing
	 * the read with EAGAIN. */
	l->efd = eventfd(0, EFD_CLOEXEC);
	if (l->efd < 0) {
		r = -errno;
		io_uring_queue_exit(&l->ring);
		return r;
	}
	arm_eventfd(l);
	io_uring_submit(&l->ring);
	return 0;
}

void weft__ring_exit(weft_loop *l)
{
	io_uring_queue_exit(&l->ring);
	weft__bufring_free(l); /* after: the ring's exit drops the kernel's hold */
	close(l->efd);
	l->efd = -1;
}

static void dispatch(weft_loop *l, struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	if (ud == TAG_EFD) {
		if (!atomic_load_explicit(&l->rt->stop, memory_order_relaxed))
			arm_eventfd(l);
		return;
	}
	if (ud >= TAG_MSG_SENT && ud < TAG_MSG_SENT + l->rt->nloops) {
		/* The target's parked flag was already cleared for this wake:
		 * it must not be lost, so take the other road. */
		if (cqe->res < 0)
			wake_by_eventfd(l->rt->loops[ud - TAG_MSG_SENT]);
		return;
	}
	if (ud < TAG_MAX || ud == LIBURING_UDATA_TIMEOUT)
		return; /* wakes carry no data: the loop rechecks its queues */
	complete(l, (weft__op *)(uintptr_t)ud, cqe->res, cqe->flags);
}

static unsigned reap(weft_loop *l)
{
	struct io_uring *ring = &l->ring;
	unsigned head, n = 0;
	struct io_uring_cqe *cqe;
	io_uring_for_each_cqe(ring, head, cqe) {
		dispatch(l, cqe);
		n++;
	}
	if (n)
		io_uring_cq_advance(ring, n);
	return n;
}

/* valgrind (3.19) runs io_uring_enter holding its global lock, so a loop
 * sleeping in it would stop every other thread.  Under valgrind, sleep in
 * poll(2) instead, on the ring and the eventfd, for at most 1 ms (a
 * DEFER_TASKRUN ring does not always report deferred completions to poll),
 * then reap without blocking.  Speed does not matter under valgrind. */
static void valgrind_wait(weft_loop *l, const struct __kernel_timespec *tsp)
{
	io_uring_submit(&l->ring);
	WEFT_STAT_ADD(l, enters, 1);
	int ms = 1;
	if (tsp && tsp->tv_sec == 0 && tsp->tv_nsec < 1000000)
		ms = 0;
	struct pollfd p[2] = { { .fd = l->ring_fd, .events = POLLIN },
			       { .fd = l->efd, .events = POLLIN } };
	poll(p, 2, ms);
	io_uring_get_events(&l->ring);
}

_Atomic bool weft__min_wait_off;

/* Hand the kernel every SQE queued since the last submit (liburing's
 * flush, which 2.3 does not export); returns how many it has not taken. */
static unsigned flush_sq(struct io_uring *ring)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
	}
	return tail - IO_URING_READ_ONCE(*sq->khead);
}

/* Nanoseconds from now to `deadline` (0: none, WEFT_FOREVER). */
static uint64_t ns_left(uint64_t deadline)
{
	if (!deadline)
		return WEFT_FOREVER;
	uint64_t now = weft_now_ns();
	return deadline > now ? deadline - now : 0;
}

static struct __kernel_timespec ns_ts(uint64_t ns)
{
	return (struct __kernel_timespec){ .tv_sec = (long long)(ns / 1000000000u),
					   .tv_nsec = (long long)(ns % 1000000000u) };
}

/* A coalesced sleep (weft_runtime_config.coalesce_us) until `deadline`
 * (0: none): submit, then wake when `nr` completions are ready or
 * coalesce_us have passed (then at the first, or at the deadline).  A
 * deadline sooner than coalesce_us bounds the whole wait: 6.12's min_wait
 * timer would fire at coalesce_us however soon the deadline.  min_wait
 * does the rest in one enter, and needs an overall timeout: without one
 * the kernel ends the wait at coalesce_us even with nothing ready, and an
 * idle loop would wake every coalesce_us.  Before 6.12, two waits: the
 * batch or coalesce_us, then, with nothing ready, the first completion. */
static void ring_wait_coalesced(weft_loop *l, unsigned nr, uint64_t deadline)
{
	struct io_uring *ring = &l->ring;
	struct io_uring_cqe *cqe;
	unsigned us = l->rt->cfg.coalesce_us;
	uint64_t left = ns_left(deadline), batch = (uint64_t)us * 1000u;
	struct __kernel_timespec ts = ns_ts(left < batch ? left : batch);
	if (left <= batch) {
		io_uring_submit_and_wait_timeout(ring, &cqe, nr, &ts, NULL);
		return;
	}
	if (l->features & WEFT_RING_MIN_WAIT) {
		struct __kernel_timespec all = ns_ts(deadline ? left : 3600000000000ull);
		struct io_uring_getevents_arg arg = {
			.sigmask_sz = _NSIG / 8,
			.pad = us, /* min_wait_usec in 6.12's headers */
			.ts = (uint64_t)(uintptr_t)&all,
		};
		bool reg = l->features & WEFT_RING_FD_REGISTERED;
		unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG |
				 (reg ? IORING_ENTER_REGISTERED_RING : 0);
		syscall(__NR_io_uring_enter, reg ? ring->enter_ring_fd : ring->ring_fd,
			flush_sq(ring), nr, flags, &arg, sizeof(arg));
		return; /* errors (EINTR, ETIME, EBUSY) as for a plain wait */
	}
	io_uring_submit_and_wait_timeout(ring, &cqe, nr, &ts, NULL);
	WEFT_STAT_ADD(l, enters, 1);
	if (io_uring_cq_ready(ring))
		return;
	ts = ns_ts(ns_left(deadline));
	io_uring_submit_and_wait_timeout(ring, &cqe, 1, deadline ? &ts : NULL, NULL);
}

/* Whether a poll that does not wait needs io_uring_enter: to submit, or
 * to run completions the kernel holds for an enter (DEFER_TASKRUN, or
 * task work under COOP_TASKRUN), or to flush an overflowed CQ.  With
 * TASKRUN_FLAG the last two are flags in the SQ ring; without it any op
 * in flight might have finished.  Most scheduler passes of a busy loop
 * find nothing, and so cost no system call. */
static inline bool ring_must_enter(weft_loop *l)
{
	struct io_uring *ring = &l->ring;
	if (io_uring_sq_ready(ring))
		return true;
	if (!l->taskrun_flag)
		return l->inflight != 0;
	return IO_URING_READ_ONCE(*ring->sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

void weft__ring_poll(weft_loop *l, bool block, uint64_t deadline)
{
	struct io_uring *ring = &l->ring;
	/* What is left must not wait for a wake that might never come. */
	if (unlikely(l->ubl_head || l->efd_rearm) && !backlog_flush(l))
		block = false;
	if (block) {
		struct __kernel_timespec ts = ns_ts(ns_left(deadline));
		struct __kernel_timespec *tsp = deadline ? &ts : NULL;
		struct io_uring_cqe *cqe;
		unsigned nr = l->rt->cfg.coalesce_us ? l->rt->cfg.coalesce_events : 1;
		if (nr > l->inflight)
			nr = l->inflight; /* more can never come */
		if (unlikely(RUNNING_ON_VALGRIND))
			valgrind_wait(l, tsp);
		else if (nr > 1 && (!tsp || ts.tv_sec || ts.tv_nsec))
			ring_wait_coalesced(l, nr, deadline);
		else if (!tsp || ts.tv_sec || ts.tv_nsec)
			io_uring_submit_and_wait_timeout(ring, &cqe, 1, tsp, NULL);
		else
			io_uring_submit_and_get_events(ring);
		WEFT_STAT_ADD(l, enters, 1);
	} else if (ring_must_enter(l)) {
		io_uring_submit_and_get_events(ring);
		WEFT_STAT_ADD(l, enters, 1);
	}
	unsigned n = reap(l);
	/* CQ overflowed: the kernel kept the rest (NODROP); flush and reap
	 * until it is empty. */
	while (unlikely(io_uring_cq_has_overflow(ring))) {
		WEFT_STAT_ADD(l, cq_overflows, 1);
		io_uring_get_events(ring);
		WEFT_STAT_ADD(l, enters, 1);
		n += reap(l);
	}
	if (n)
		WEFT_STAT_ADD(l, cqes, n);
	if (unlikely(l->ubl_head || l->efd_rearm))
		backlog_flush(l); /* the reap made room; the next poll submits */
}

/* Wake a sleeping loop: from a loop, a MSG_RING on the waker's own ring;
 * from anywhere else, the target's eventfd. */
void weft__ring_wake(weft_loop *target)
{
	weft_loop *me = weft__loop_self();
	if (me && me->rt == target->rt && (me->features & WEFT_RING_MSG_RING)) {
		struct io_uring_sqe *sqe = ring_sqe(me);
		if (sqe) {
			io_uring_prep_msg_ring(sqe, target->ring_fd, 0, TAG_WAKE, 0);
			if (me->features & WEFT_RING_CQE_SKIP)
				sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			io_uring_sqe_set_data64(sqe, TAG_MSG_SENT + target->index);
			/* Not submitted now (EINTR, EAGAIN, EBUSY): it would wait
			 * for this loop's next enter, which a busy loop may not
			 * make for long, so take the other road as well (a second
			 * wake is harmless). */
			bool sent = io_uring_submit(&me->ring) >= 0;
			WEFT_STAT_ADD(me, enters, 1);
			WEFT_STAT_ADD(me, wakeups_sent, 1);
			if (!sent)
				wake_by_eventfd(target);
			return;
		}
	}
	wake_by_eventfd(target);
	if (me)
		WEFT_STAT_ADD(me, wakeups_sent, 1);
}

/* ------------------------------------------------------------------------ */
/* ops: one SQE each                                                         */
/* ------------------------------------------------------------------------ */

/* An SQE on loop l's ring, flushing the SQ once if it is full; NULL when
 * the kernel did not take the flush (the caller uses the backlog). */
static struct io_uring_sqe *ring_sqe(weft_loop *l)
{
	if (unlikely(l->sqe_fail)) { /* fault injection (tests) */
		l->sqe_fail--;
		return NULL;
	}
	struct io_uring_sqe *sqe = weft__get_sqe(&l->ring);
	if (unlikely(!sqe)) { /* SQ full: flush it, once */
		io_uring_submit(&l->ring);
		WEFT_STAT_ADD(l, enters, 1);
		sqe = weft__get_sqe(&l->ring);
	}
	return sqe;
}

static void prep(weft_loop *l, struct io_uring_sqe *sqe, const weft__op *op)
{
	const weft__op_args *a = &op->a;
	unsigned len = (unsigned)(a->len > INT_MAX ? INT_MAX : a->len);
	uint64_t off = (uint64_t)a->off; /* -1: the file position */
	switch (op->opcode) {
	case WEFT_OP_READ: io_uring_prep_read(sqe, a->fd, a->p, len, off); break;
	case WEFT_OP_WRITE: io_uring_prep_write(sqe, a->fd, a->p, len, off); break;
	case WEFT_OP_READV: io_uring_prep_readv(sqe, a->fd, a->p, a->mode, off); break;
	case WEFT_OP_WRITEV: io_uring_prep_writev(sqe, a->fd, a->p, a->mode, off); break;
	case WEFT_OP_RECV:
		io_uring_prep_recv(sqe, a->fd, a->p, len, (int)a->flags);
		if ((op->hints & WEFT_OPH_POLL_FIRST) && (l->features & WEFT_RING_MULTISHOT))
			sqe->ioprio |= IORING_RECVSEND_POLL_FIRST; /* 5.19, as multishot */
		if (op->hints & WEFT_OPH_BUFSEL) { /* a.p NULL: the ring's */
			sqe->flags |= IOSQE_BUFFER_SELECT;
			sqe->buf_group = weft__bufring_group();
		}
		break;
	case WEFT_OP_SEND:
		io_uring_prep_send(sqe, a->fd, a->p, len, (int)a->flags | MSG_NOSIGNAL);
		break;
	case WEFT_OP_SEND_ZC:
		if (l->features & WEFT_RING_SEND_ZC)
			io_uring_prep_send_zc(sqe, a->fd, a->p, len, (int)a->flags | MSG_NOSIGNAL, 0);
		else
			io_uring_prep_send(sqe, a->fd, a->p, len, (int)a->flags | MSG_NOSIGNAL);
		break;
	case WEFT_OP_RECVMSG: io_uring_prep_recvmsg(sqe, a->fd, a->p, a->flags); break;
	case WEFT_OP_SENDMSG:
		io_uring_prep_sendmsg(sqe, a->fd, a->p, a->flags | MSG_NOSIGNAL);
		break;
	case WEFT_OP_ACCEPT:
		if ((op->hints & WEFT_OPH_MULTISHOT) && (l->features & WEFT_RING_MULTISHOT))
			io_uring_prep_multishot_accept(sqe, a->fd, a->p, a->p3,
						       (int)a->flags | SOCK_CLOEXEC);
		else
			io_uring_prep_accept(sqe, a->fd, a->p, a->p3, (int)a->flags | SOCK_CLOEXEC);
		break;
	case WEFT_OP_CONNECT: io_uring_prep_connect(sqe, a->fd, a->p, (socklen_t)a->len); break;
	case WEFT_OP_SHUTDOWN: io_uring_prep_shutdown(sqe, a->fd, (int)a->flags); break;
	case WEFT_OP_CLOSE: io_uring_prep_close(sqe, a->fd); break;
	case WEFT_OP_OPENAT:
		io_uring_prep_openat(sqe, a->fd, a->p, (int)a->flags | O_CLOEXEC, a->mode);
		break;
	case WEFT_OP_STATX:
		io_uring_prep_statx(sqe, a->fd, a->p, (int)a->flags, a->mode, a->p3);
		break;
	case WEFT_OP_FSYNC:
		io_uring_prep_fsync(sqe, a->fd, a->flags ? IORING_FSYNC_DATASYNC : 0);
		break;
	case WEFT_OP_FALLOCATE:
		io_uring_prep_fallocate(sqe, a->fd, (int)a->mode, (off_t)a->off, (off_t)a->len);
		break;
	case WEFT_OP_UNLINKAT: io_uring_prep_unlinkat(sqe, a->fd, a->p, (int)a->flags); break;
	case WEFT_OP_RENAMEAT:
		io_uring_prep_renameat(sqe, a->fd, a->p, a->fd2, a->p2, a->flags);
		break;
	case WEFT_OP_MKDIRAT: io_uring_prep_mkdirat(sqe, a->fd, a->p, a->mode); break;
	case WEFT_OP_SPLICE:
		io_uring_prep_splice(sqe, a->fd, a->off, a->fd2, a->off2, len, a->flags);
		break;
	case WEFT_OP_POLL: io_uring_prep_poll_add(sqe, a->fd, a->mode); break;
	case WEFT_OP_RECV_MULTI:
		io_uring_prep_recv_multishot(sqe, a->fd, NULL, 0, 0);
		/* a.len: the most it may receive in all (6.17's optlen, which
		 * shares file_index's place; before, the SQE is refused) */
		sqe->file_index = (uint32_t)a->len;
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = weft__bufring_group();
		break;
	}
	io_uring_sqe_set_data(sqe, (void *)op);
}

/* op's SQE, now or from the backlog. */
static void submit(weft_loop *l, weft__op *op)
{
	struct io_uring_sqe *sqe = ring_sqe(l);
	WEFT_TRACE(l, WEFT_TEV_SUBMIT, op->opcode, 0, op->cb ? 0 : op->task->id,
		   (uint32_t)op->a.fd, 0);
	op->ustate = WEFT_UQ_NONE;
	if (likely(sqe))
		prep(l, sqe, op);
	else
		backlog_push(l, op, WEFT_UQ_SUBMIT);
	l->inflight++;
}

int weft__uring_arm(weft_loop *l, weft__op *op)
{
	op->loop = l;
	op->done = false;
	op->stop = false;
	if (op->hints & WEFT_OPH_BUFSEL) { /* the ring's size now, for a grow */
		weft__bufring *br = weft__bufring_get(l);
		op->a.mode = br ? weft__bufring_count(br) : 0;
		/* no ring: a buffer of its own */
		if (!br && (op->a.p = weft__rxbuf_get(op->a.len))) {
			op->a.p3 = NULL;
			op->hints = (uint8_t)((op->hints & ~WEFT_OPH_BUFSEL) | WEFT_OPH_BUFHELD);
		} /* (no memory: the -ENOBUFS comes back, and -ENOMEM then) */
	}
	submit(l, op);
	return 0;
}

/* A callback WEFT_OPH_BUFSEL receive's CQE (io.h), as recv_select does
 * for a task's: a buffer of the ring is handed over in a.p; a dry ring
 * grows and the receive goes again; at the ring's cap, or without a
 * ring (its -ENOBUFS), a malloc'd buffer takes the bytes now, or waits
 * for them (WEFT_OPH_BUFHELD).  True when submitted again; else *res is
 * the callback's.  A cancelled receive is never submitted again. */
static bool bufsel_cqe(weft_loop *l, weft__op *op, int32_t *res, uint32_t flags)
{
	if (op->hints & WEFT_OPH_BUFHELD) { /* its malloc'd buffer came back */
		op->hints = (uint8_t)((op->hints & ~WEFT_OPH_BUFHELD) | WEFT_OPH_BUFSEL);
		if (*res <= 0) {
			weft__rxbuf_put(op->a.p, op->a.len);
			op->a.p = NULL;
		}
		return false;
	}
	weft__bufring *br = l->bufring;
	if (flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		if (*res > 0) {
			op->a.p = (void *)weft__bufring_data(br, bid);
			op->a.p3 = br;
			op->a.off = bid;
			return false;
		}
		weft__bufring_put(br, bid); /* end of input: nothing to keep */
	}
	if (*res != -ENOBUFS || op->stop)
		return false;
	if (br && weft__bufring_grow(br, op->a.mode)) {
		op->a.mode = weft__bufring_count(br);
		submit(l, op);
		return true;
	}
	if (!(op->a.p = weft__rxbuf_get(op->a.len))) {
		*res = -ENOMEM;
		return false;
	}
	op->a.p3 = NULL;
	op->hints = (uint8_t)((op->hints & ~WEFT_OPH_BUFSEL) | WEFT_OPH_BUFHELD);
	/* The bytes that came with the -ENOBUFS are still in the socket. */
	int r = br ? weft__op_syscall(op, true) : -EAGAIN;
	if (r == -EAGAIN) {
		submit(l, op); /* holds the buffer while it waits */
		return true;
	}
	op->hints = (uint8_t)((op->hints & ~WEFT_OPH_BUFHELD) | WEFT_OPH_BUFSEL);
	if (r <= 0) {
		weft__rxbuf_put(op->a.p, op->a.len);
		op->a.p = NULL;
	}
	*res = r;
	return false;
}

static void prep_cancel(weft_loop *l, struct io_uring_sqe *sqe, const weft__op *op)
{
	io_uring_prep_cancel(sqe, (void *)op, 0);
	/* Tag 0: a failed cancel (-ENOENT: it had just completed; -EALREADY:
	 * it is running and will complete) posts a CQE the loop ignores. */
	io_uring_sqe_set_data64(sqe, 0);
	if (l->features & WEFT_RING_CQE_SKIP) /* 5.17; else the CQE is ignored */
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void weft__uring_cancel(weft_loop *l, weft__op *op)
{
	op->stop = true;
	if (op->ustate == WEFT_UQ_SUBMIT) {
		op->ustate = WEFT_UQ_CANCELLED; /* never reached the kernel */
		return;
	}
	if (op->ustate) /* already asked */
		return;
	struct io_uring_sqe *sqe = ring_sqe(l);
	if (likely(sqe))
		prep_cancel(l, sqe, op);
	else
		backlog_push(l, op, WEFT_UQ_CANCEL);
}

/* While an op is in flight its task is bound to the loop whose ring holds
 * the op (t->pin, restored after): any wake, including a cancellation from
 * another thread, queues it on that loop's pinned FIFO, so the cancel SQE
 * it then submits goes to the right ring and no other loop ever reaps or
 * cancels it (docs/architecture.md rule 3). */
static int run_one(weft__op *op)
{
	weft_task *t = op->task;
	weft_loop *l = op->loop;
	submit(l, op);
	int16_t pin = t->pin;
	int why = 0;
	__atomic_store_n(&t->pin, (int16_t)l->index, __ATOMIC_RELAXED);
	weft__wait_io(t, op->opcode, op->a.fd, op);
	while (!op->done) {
		int r = weft__park_task(t, 0);
		if (unlikely(r < 0) && !op->done) {
			why = r;
			break;
		}
	}
	if (unlikely(why)) {
		/* Rule 4: ask the kernel to stop, then wait for the op's own
		 * CQE, whatever it says, before the caller's buffer goes. */
		weft__uring_cancel(l, op);
		weft__io_wait_final(op);
	}
	__atomic_store_n(&t->pin, pin, __ATOMIC_RELAXED);
	if (unlikely(why) && (op->res == -ECANCELED || op->res == -EINTR)) {
		if (why == -ECANCELED)
			t->cancel_seen = true;
		return why;
	}
	return op->res;
}

/* A WEFT_OPH_BUFSEL receive (io.h): the kernel picks a buffer of the
 * loop's provided-buffer ring once bytes are there, so the waiting task
 * holds none.  A dry ring grows and the receive goes again; at the ring's
 * cap, or on a loop without a ring, a malloc'd buffer takes the bytes. */
static int recv_select(weft__op *op)
{
	weft__bufring *br = weft__bufring_get(op->loop);
	int r = -ENOBUFS;
	while (br) {
		unsigned seen = weft__bufring_count(br);
		r = run_one(op);
		if (op->cqe_flags & IORING_CQE_F_BUFFER) {
			uint16_t bid = (uint16_t)(op->cqe_flags >> IORING_CQE_BUFFER_SHIFT);
			if (r > 0) {
				op->a.p = (void *)weft__bufring_data(br, bid);
				op->a.p3 = br;
				op->a.off = bid;
				return r;
			}
			weft__bufring_put(br, bid); /* end of input: nothing to keep */
		}
		if (r != -ENOBUFS)
			return r;
		if (!weft__bufring_grow(br, seen))
			break;
		op->res = 0;
		op->cqe_flags = 0;
		op->done = false;
	}
	op->a.p = weft__rxbuf_get(op->a.len);
	op->a.p3 = NULL;
	if (!op->a.p)
		return -ENOMEM;
	op->hints &= (uint8_t)~WEFT_OPH_BUFSEL;
	/* Dry ring: the bytes are there, take them now (the bytes that came
	 * with the -ENOBUFS are still in the socket). */
	if (br)
		r = weft__op_syscall(op, true);
	if (!br || r == -EAGAIN) {
		op->res = 0;
		op->cqe_flags = 0;
		op->done = false;
		r = run_one(op); /* holds the buffer while it waits */
	}
	op->hints |= WEFT_OPH_BUFSEL;
	if (r <= 0) {
		weft__rxbuf_put(op->a.p, op->a.len);
		op->a.p = NULL;
	}
	return r;
}

int weft__uring_run(weft__op *op)
{
	return op->hints & WEFT_OPH_BUFSEL ? recv_select(op) : run_one(op);
}
