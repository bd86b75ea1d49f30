/*
 * The seam between the I/O layer and its backends: every call from above
 * (ops, streams, servers, the scheduler) comes through one of the
 * functions here, which hand it to the backend the runtime chose at start.
 * Nothing else branches on the backend.
 *
 * Also the plain system call of every opcode, written once: the epoll
 * backend tries it non-blocking, and the blocking pool runs it as is.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline bool on_epoll(const weft_loop *l)
{
	return l->backend == WEFT_BACKEND_EPOLL;
}

int weft__io_init(weft_loop *l)
{
	l->backend = (uint8_t)l->rt->backend;
	l->st.backend = l->backend;
	return on_epoll(l) ? weft__ep_init(l) : weft__ring_init(l);
}

void weft__io_exit(weft_loop *l)
{
	if (on_epoll(l))
		weft__ep_exit(l);
	else
		weft__ring_exit(l);
}

void weft__io_poll(weft_loop *l, bool block, uint64_t deadline)
{
	if (on_epoll(l))
		weft__ep_poll(l, block, deadline);
	else
		weft__ring_poll(l, block, deadline);
}

/* io_uring's provided-buffer ring; epoll has no pool (its receives
 * free their buffers at once). */
void weft__io_trim(weft_loop *l)
{
	if (l->bufring)
		weft__bufring_trim(l->bufring);
}

bool weft__io_trim_due(weft_loop *l)
{
	return l->bufring && weft__bufring_trim_due(l->bufring);
}

void weft__io_wake(weft_loop *target)
{
	if (on_epoll(target))
		weft__ep_wake(target);
	else
		weft__ring_wake(target);
}

int weft__op_run(weft__op *op)
{
	weft_loop *l = weft__loop_self();
	weft_task *t = l ? l->current : NULL;
	if (unlikely(!t))
		return weft__misuse(-EPERM, "weft I/O outside a task");
	int r = weft__checkpoint(t);
	if (unlikely(r < 0))
		return r;
	op->cb = NULL;
	op->task = t;
	op->loop = l;
	op->res = 0;
	op->cqe_flags = 0;
	op->done = false;
	WEFT_OBS_ADD(l, subs[op->opcode], 1);
	return on_epoll(l) ? weft__ep_run(op) : weft__uring_run(op);
}

int weft__op_arm(weft_loop *l, weft__op *op)
{
	WEFT_OBS_ADD(l, subs[op->opcode], 1);
	return on_epoll(l) ? weft__ep_arm(l, op) : weft__uring_arm(l, op);
}

void weft__io_cancel(weft_loop *l, weft__op *op)
{
	if (on_epoll(l))
		weft__ep_cancel(l, op);
	else
		weft__uring_cancel(l, op);
}

void weft__io_wait_final(weft__op *op)
{
	weft_task *t = op->task;
	uint64_t saved = weft__uninterruptible_begin(t);
	weft__wait_io(t, op->opcode, op->a.fd, op);
	while (!op->done)
		weft__park_task(t, 0);
	weft__uninterruptible_end(t, saved);
}

/* ------------------------------------------------------------------------ */
/* the plain system calls                                                    */
/* ------------------------------------------------------------------------ */

static inline int ret(long r)
{
	return r < 0 ? -errno : (int)(r > INT_MAX ? INT_MAX : r);
}

static int rw(weft__op *op, bool nowait)
{
	const weft__op_args *a = &op->a;
	struct iovec one = { a->p, a->len > INT_MAX ? INT_MAX : a->len };
	const struct iovec *iov = &one;
	int cnt = 1;
	if (op->opcode == WEFT_OP_READV || op->opcode == WEFT_OP_WRITEV) {
		iov = a->p;
		cnt = (int)a->mode;
	}
	int fl = nowait ? RWF_NOWAIT : 0;
	bool rd = op->opcode == WEFT_OP_READ || op->opcode == WEFT_OP_READV;
	/* An offset of -1 means the file position, as for io_uring. */
	return ret(rd ? preadv2(a->fd, iov, cnt, a->off, fl) : pwritev2(a->fd, iov, cnt, a->off, fl));
}

int weft__op_syscall(weft__op *op, bool nowait)
{
	const weft__op_args *a = &op->a;
	int dw = nowait ? MSG_DONTWAIT : 0;
	switch (op->opcode) {
	case WEFT_OP_READ: case WEFT_OP_WRITE: case WEFT_OP_READV: case WEFT_OP_WRITEV:
		return rw(op, nowait);
	case WEFT_OP_RECV:
		return ret(recv(a->fd, a->p, a->len, (int)a->flags | dw));
	case WEFT_OP_SEND: case WEFT_OP_SEND_ZC: /* epoll: a copy (io.h) */
		return ret(send(a->fd, a->p, a->len, (int)a->flags | dw | MSG_NOSIGNAL));
	case WEFT_OP_RECVMSG:
		return ret(recvmsg(a->fd, a->p, (int)a->flags | dw));
	case WEFT_OP_SENDMSG:
		return ret(sendmsg(a->fd, a->p, (int)a->flags | dw | MSG_NOSIGNAL));
	case WEFT_OP_ACCEPT:
		return ret(accept4(a->fd, a->p, a->p3, (int)a->flags | SOCK_CLOEXEC));
	case WEFT_OP_CONNECT:
		return ret(connect(a->fd, a->p, (socklen_t)a->len));
	case WEFT_OP_SHUTDOWN:
		return ret(shutdown(a->fd, (int)a->flags));
	case WEFT_OP_CLOSE:
		return ret(close(a->fd));
	case WEFT_OP_OPENAT:
		return ret(openat(a->fd, a->p, (int)a->flags | O_CLOEXEC, (mode_t)a->mode));
	case WEFT_OP_STATX:
		return ret(statx(a->fd, a->p, (int)a->flags, a->mode, a->p3));
	case WEFT_OP_FSYNC:
		return ret(a->flags ? fdatasync(a->fd) : fsync(a->fd));
	case WEFT_OP_FALLOCATE:
		return ret(fallocate(a->fd, (int)a->mode, (off_t)a->off, (off_t)a->len));
	case WEFT_OP_UNLINKAT:
		return ret(unlinkat(a->fd, a->p, (int)a->flags));
	case WEFT_OP_RENAMEAT:
		return ret(syscall(SYS_renameat2, a->fd, a->p, a->fd2, a->p2, a->flags));
	case WEFT_OP_MKDIRAT:
		return ret(mkdirat(a->fd, a->p, (mode_t)a->mode));
	case WEFT_OP_SPLICE: {
		loff_t oi = a->off, oo = a->off2;
		return ret(splice(a->fd, a->off < 0 ? NULL : &oi, a->fd2, a->off2 < 0 ? NULL : &oo,
				  a->len, a->flags | (nowait ? SPLICE_F_NONBLOCK : 0)));
	}
	case WEFT_OP_POLL: {
		struct pollfd p = { .fd = a->fd, .events = (short)a->mode };
		int r = poll(&p, 1, nowait ? 0 : -1);
		return r < 0 ? -errno : r ? p.revents : 0;
	}
	default:
		return -EINVAL;
	}
}
