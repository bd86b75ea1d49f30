/*
 * The I/O layer's internals: one record per operation, and the seam
 * between the layer above (ops, streams, servers, files) and the two
 * backends below it (io/uring.c, io/epoll.c).
 *
 * An operation is described once, as data: an opcode and its arguments in
 * a weft__op, which lives on the waiting task's stack (or, for the
 * callback ops below, in the object that owns it).  The layer above never
 * touches an SQE or an epoll set; it calls one of
 *
 *     weft__op_run(&op)        run op for the calling task and wait for it
 *     weft__op_arm(l, &op)     start a callback op on loop l (its own thread)
 *     weft__io_cancel(l, &op)  stop a callback op (its final call still comes)
 *
 * and the backend chosen at start (runtime->backend) does the rest:
 *
 *  - io_uring: the op becomes one SQE on the ring of the loop the task runs
 *    on, submitted in the loop's one io_uring_enter per iteration.  While
 *    it is in flight the task is bound to that loop; a cancellation
 *    submits an async cancel and still waits for the op's own CQE, so no
 *    buffer it names is touched after the call returns (rules 3 and 4 of
 *    docs/architecture.md, "Threading rules").
 *  - epoll: sockets, pipes and other pollable fds try the system call at
 *    once (non-blocking), and on EAGAIN park the task on the fd's
 *    registration in the loop's epoll set until it is ready, then try
 *    again.  A cancellation just takes the waiter off the fd: nothing is in
 *    flight, so a result is either returned or never happened.  Regular
 *    files and metadata calls, which have no readiness, run on the blocking
 *    pool, and the task waits for them uninterruptibly (rule 4 again: the
 *    pool thread may be writing into the caller's buffer).
 */
#ifndef WEFT_IO_INTERNAL_H
#define WEFT_IO_INTERNAL_H

#include "../runtime/internal.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct weft__op weft__op;

/* Completion flags passed to callbacks (the io_uring CQE's, synthesized
 * the same way by the epoll backend). */
#define WEFT__OP_MORE IORING_CQE_F_MORE     /* more results will follow */
#define WEFT__OP_BUFFER IORING_CQE_F_BUFFER /* a provided buffer was used */

/* Completion callback for ops that are not "one result wakes one task"
 * (a stream's send, multishot accept and recv).  Runs on the owning loop's
 * scheduler, never inside the call that armed or cancelled the op. */
typedef void (*weft__op_cb)(weft_loop *l, weft__op *op, int32_t res, uint32_t flags);

enum weft__opcode {
	WEFT_OP_READ, WEFT_OP_WRITE, WEFT_OP_READV, WEFT_OP_WRITEV,
	WEFT_OP_RECV, WEFT_OP_SEND, WEFT_OP_RECVMSG, WEFT_OP_SENDMSG,
	WEFT_OP_ACCEPT, WEFT_OP_CONNECT, WEFT_OP_SHUTDOWN, WEFT_OP_CLOSE,
	WEFT_OP_OPENAT, WEFT_OP_STATX, WEFT_OP_FSYNC, WEFT_OP_FALLOCATE,
	WEFT_OP_UNLINKAT, WEFT_OP_RENAMEAT, WEFT_OP_MKDIRAT, WEFT_OP_SPLICE,
	WEFT_OP_POLL,
	WEFT_OP_RECV_MULTI, /* multishot receive into the loop's buffer ring
			       (io_uring only: streams ask bufring first) */
	WEFT_OP_SEND_ZC,    /* send without copying (IORING_OP_SEND_ZC): done
			       only once the kernel's notification says it no
			       longer reads the buffer; a plain send where
			       the ring has none and on epoll */
};

enum { /* weft__op.hints */
	WEFT_OPH_MULTISHOT = 1 << 0,  /* accept: keep accepting */
	WEFT_OPH_POLL_FIRST = 1 << 1, /* recv: probably nothing there yet */
	WEFT_OPH_OWNED = 1 << 2,      /* the fd is closed only by weft (a
					 stream's, a server's): epoll may
					 trust its registration */
	WEFT_OPH_BYTESTREAM = 1 << 3, /* recv on a SOCK_STREAM socket: a short
					 read emptied its queue */
	WEFT_OPH_BUFSEL = 1 << 4,     /* recv with no buffer yet (a.p NULL;
					 a.len the most wanted): see below */
	WEFT_OPH_BUFHELD = 1 << 5,    /* io_uring: a BUFSEL callback receive
					 waits in a malloc'd buffer (backend's) */
};

/*
 * WEFT_OPH_BUFSEL: the backend takes a buffer only once bytes are there,
 * so a receive that waits holds no memory (an idle stream, io/stream.c).
 * io_uring: the kernel picks one from the loop's provided-buffer ring
 * (io/bufring.c); where the loop has none, a malloc'd one is named in a
 * plain receive; when the ring is dry (-ENOBUFS) it grows, and at its cap
 * the bytes are taken with one non-blocking recv(2) into a malloc'd one.
 * epoll: a malloc'd one for each non-blocking attempt, given back again
 * on EAGAIN before the task waits for readiness.  Malloc'd ones come from
 * weft__rxbuf_get: a 4 KiB one (the usual receive) from the loop's cache.
 * On a result > 0, a.p is the buffer holding the bytes, owned by the
 * caller: a.p3 is the weft__bufring it came from (give it back with
 * weft__bufring_put(a.p3, (uint16_t)a.off)), or NULL for a malloc'd one of
 * a.len bytes (weft__rxbuf_put(a.p, a.len), or free() it).  On any other
 * result no buffer is held.
 * The same holds for a callback op (weft__op_arm; set a.p NULL and the
 * hint again at each arming): the ring growing, or the malloc'd
 * fallback, happen inside the backend, and the callback sees only the
 * final result.  A callback receive with MSG_DONTWAIT in a.flags gets
 * -EAGAIN instead of waiting, on both backends.
 */


/* The arguments of an op, named for what most opcodes use them for. */
typedef struct weft__op_args {
	int fd, fd2;        /* fd2: splice's out, renameat's new dfd */
	uint32_t flags;     /* msg/open/at/fsync/fallocate/splice flags, how */
	uint32_t mode;      /* openat/mkdirat mode, fallocate mode, statx mask,
			       poll events, iovcnt */
	uint64_t len;
	int64_t off, off2;  /* -1: the current file position */
	void *p;            /* buf, iov, msg, path, addr */
	const void *p2;     /* second path, addrlen/sockaddr */
	void *p3;           /* statx out, accept's addrlen */
} weft__op_args;

struct weft__op {
	weft__op_cb cb;     /* NULL: store the result and wake `task` */
	weft_task *task;
	weft_loop *loop;    /* loop the op was started on */
	int32_t res;        /* result, valid once done */
	uint32_t cqe_flags;
	bool done;          /* final result seen (no WEFT__OP_MORE) */
	bool stop;          /* io_uring: a callback op's cancel was asked */
	uint8_t opcode;     /* enum weft__opcode */
	uint8_t hints;      /* WEFT_OPH_* */
	weft__op_args a;
	/* epoll: the op's place among the waiters of its fd, or in the
	 * loop's list of callback ops to try at its next poll */
	uint8_t estate;     /* WEFT_EPS_* */
	int ewfd;           /* fd it waits on */
	uint32_t ewant;     /* EPOLLIN / EPOLLOUT it waits for */
	weft__op *enext, *eprev;
	/* io_uring: the op's place in the loop's backlog (WEFT_UQ_*) */
	uint8_t ustate;
	weft__op *unext;
};

enum { /* weft__op.estate (epoll backend) */
	WEFT_EPS_IDLE, WEFT_EPS_QUEUED, WEFT_EPS_WAITING,
};

enum { /* weft__op.ustate (io_uring backend) */
	WEFT_UQ_NONE,
	WEFT_UQ_SUBMIT,    /* waits in the backlog for an SQE */
	WEFT_UQ_CANCELLED, /* was cancelled there: completes with -ECANCELED */
	WEFT_UQ_CANCEL,    /* in flight; its async cancel waits for an SQE */
};

/* ---- the seam (io/op.c dispatches to the runtime's backend) ---- */

/* Run op for the calling task and wait for its result: >= 0 or -errno;
 * -EPERM outside a task, -ECANCELED / -ETIMEDOUT when a cancellation or
 * scope deadline cut it short.  A result that raced the cancellation is
 * returned instead (bytes are never lost): the cancellation then surfaces
 * at the next suspension point. */
WEFT_HIDDEN int weft__op_run(weft__op *op);

/* Start callback op `op` (cb, opcode, args set) on loop l, from l's own
 * thread.  Its results come to op->cb in l's scheduler.  0 (io_uring: an
 * op that finds the SQ full and unflushable waits in the loop's backlog;
 * both backends deliver any failure to op->cb). */
WEFT_HIDDEN int weft__op_arm(weft_loop *l, weft__op *op);

/* Cancel callback op (armed on l, called on l's thread) without waiting:
 * its final callback (-ECANCELED, or a result that won) still comes. */
WEFT_HIDDEN void weft__io_cancel(weft_loop *l, weft__op *op);

/* The plain system call for op: non-blocking (MSG_DONTWAIT, RWF_NOWAIT)
 * when `nowait`, as the epoll backend tries it; blocking, as a pool thread
 * runs it.  >= 0 or -errno. */
WEFT_HIDDEN int weft__op_syscall(weft__op *op, bool nowait);

/* ---- the backends (io/uring.c, io/epoll.c), behind the seam ---- */
WEFT_HIDDEN int weft__uring_run(weft__op *op);
WEFT_HIDDEN int weft__uring_arm(weft_loop *l, weft__op *op);
WEFT_HIDDEN void weft__uring_cancel(weft_loop *l, weft__op *op);
WEFT_HIDDEN int weft__ep_run(weft__op *op);
WEFT_HIDDEN int weft__ep_arm(weft_loop *l, weft__op *op);
WEFT_HIDDEN void weft__ep_cancel(weft_loop *l, weft__op *op);

/* Park the task until op->done, uninterruptibly (cancellation and scope
 * deadlines stay pending). */
WEFT_HIDDEN void weft__io_wait_final(weft__op *op);

/* The fd is going away (weft_close, a stream or server closing it):
 * forget every loop's registration of it (epoll). */
WEFT_HIDDEN void weft__fd_forget(int fd);
/* weft__fd_forget, then close(2): for fds weft owns and closes itself. */
WEFT_HIDDEN void weft__fd_close(int fd);

/* Post a wake on eventfd `fd` (async-signal-safe).  EAGAIN means the
 * counter is saturated, so a wake is pending already; a write cut short
 * by a signal (EINTR) did not happen, and a wake must never be lost. */
static inline void weft__efd_post(int fd)
{
	uint64_t one = 1;
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* ---- io/signal.c: the helper thread (signals, reaping) ---- */
/* Reserve a reaping slot before a spawn, so handing a child over later
 * cannot fail; unreserve if the spawn failed. */
WEFT_HIDDEN int weft__aux_reserve(void);
WEFT_HIDDEN void weft__aux_unreserve(void);
/* Hand pidfd (of a reserved child) to the helper thread to reap. */
WEFT_HIDDEN void weft__aux_reap(int pidfd);

/* ---- io/bufring.c: a loop's provided buffers ---- */
typedef struct weft__bufring weft__bufring;
#define WEFT__BUFRING_SIZE 4096u /* bytes per provided buffer */
#define WEFT__BUFRING_MAX 1024u  /* buffers per loop at most */
#define WEFT__BUFRING_INIT 64u   /* ...at first, and after shrinking back */
/* Loop l's buffer ring, created on first use (l's own thread); NULL when
 * the kernel has none, registration failed, or the backend is epoll. */
WEFT_HIDDEN weft__bufring *weft__bufring_get(weft_loop *l);
WEFT_HIDDEN const char *weft__bufring_data(const weft__bufring *b, uint16_t bid);
WEFT_HIDDEN uint16_t weft__bufring_group(void);
/* Give buffer bid back to the kernel; any thread. */
WEFT_HIDDEN void weft__bufring_put(weft__bufring *b, uint16_t bid);
/* How many buffers the ring has been given (it grows up to a cap). */
WEFT_HIDDEN unsigned weft__bufring_count(weft__bufring *b);
/* The ring ran dry (-ENOBUFS) for a receive submitted when it had `seen`
 * buffers: hand the kernel more, unless another receive already did.
 * True: try again; false: all of them are in use, at the cap.  Any
 * thread. */
WEFT_HIDDEN bool weft__bufring_grow(weft__bufring *b, unsigned seen);
WEFT_HIDDEN void weft__bufring_free(weft_loop *l);
/* About once a second, on the ring's loop (weft__io_trim): give back
 * buffers it did not need since the last trim. */
WEFT_HIDDEN void weft__bufring_trim(weft__bufring *b);
WEFT_HIDDEN bool weft__bufring_trim_due(weft__bufring *b);
/* Bytes of the ring's buffers in memory now (mincore): for tests. */
WEFT_HIDDEN size_t weft__bufring_resident(const weft__bufring *b);
/* A malloc'd receive buffer of len bytes (WEFT_OPH_BUFSEL's where there is
 * no ring: every receive on epoll), or NULL.  One of WEFT__RXBUF_SIZE comes
 * from the calling loop's cache when it has one. */
#define WEFT__RXBUF_SIZE 4096u
#define WEFT__RXBUF_CACHE 64u /* cached per loop at most: 256 KiB */
WEFT_HIDDEN void *weft__rxbuf_get(size_t len);
/* Give back p, a malloc'd buffer of len bytes (NULL: nothing): one of
 * WEFT__RXBUF_SIZE to the calling loop's cache, any other to free(). */
WEFT_HIDDEN void weft__rxbuf_put(void *p, size_t len);

/* ---- io/stream.c ---- */
struct weft_stream;
/* Bytes of buffer memory stream s holds now: its read buffer, its write
 * buffers and the provided buffers its multishot receive has pending (the
 * structure itself not counted).  0 for an idle stream: nothing buffered,
 * nothing queued (weft/stream.h, "Memory").  From the task reading s, or
 * from another task as a snapshot (the tests look while the reader waits:
 * the read side's fields are the reader's, unlocked). */
WEFT_HIDDEN size_t weft__stream_held(struct weft_stream *s);
/* The size of s's next receive (adapts to the traffic: io/stream.c,
 * rsize_adapt).  From the task reading s. */
WEFT_HIDDEN size_t weft__stream_rsize(struct weft_stream *s);
/* Whether a read call on s is under way (tests: a second reader must then
 * get -EBUSY).  Any thread. */
WEFT_HIDDEN bool weft__stream_reading(struct weft_stream *s);
/* weft_stream_end_input (how already checked), the reader's wake recorded
 * in wk: for a caller holding its own lock.  Any thread. */
WEFT_HIDDEN void weft__stream_end_input_to(struct weft_stream *s, int how, weft__wakes *wk);
WEFT_HIDDEN void weft__stream_abort_to(struct weft_stream *s, weft__wakes *wk);
/* weft_stream_write's queueing, from a task or a callback on the loop
 * calling it: 0 or the error; *over: the queue is over high water; *pend:
 * what is queued now (either may be NULL). */
WEFT_HIDDEN int weft__stream_put(struct weft_stream *s, const void *buf, size_t len, bool *over,
				 size_t *pend);
/* weft_stream_shutdown in two steps around the flush (io/copy.c waits
 * for it with relay_watch). */
WEFT_HIDDEN int weft__stream_shut_begin(struct weft_stream *s, weft_task *t);
WEFT_HIDDEN int weft__stream_shut_end(struct weft_stream *s);
/* A relay (io/copy.c) reading s with callback ops on its loop: see each
 * in io/stream.c. */
WEFT_HIDDEN int weft__stream_relay_begin(struct weft_stream *s, weft_task *t);
WEFT_HIDDEN bool weft__stream_relay_end(struct weft_stream *s);
WEFT_HIDDEN int weft__stream_relay_interrupted(struct weft_stream *s);
WEFT_HIDDEN int weft__stream_relay_recv(struct weft_stream *s, weft__op *op, uint64_t *dl,
					bool wait);
WEFT_HIDDEN void weft__stream_relay_release(struct weft_stream *s, weft__op *op);
WEFT_HIDDEN int weft__stream_relay_recvd(struct weft_stream *s, weft__op *op, int n);
WEFT_HIDDEN int weft__stream_relay_watch(struct weft_stream *s, weft__waiter *w, weft_task *t,
					 bool flush, uint64_t *start, uint64_t *dl);
WEFT_HIDDEN void weft__stream_relay_unwatch(struct weft_stream *s, weft__waiter *w);
/* Bytes s's TCP peer has acknowledged so far (0 where unknown: not TCP),
 * one getsockopt: a relay's idle limit sees a reply drain from the
 * kernel's send buffer.  Any thread. */
WEFT_HIDDEN uint64_t weft__stream_acked(struct weft_stream *s);

#endif
