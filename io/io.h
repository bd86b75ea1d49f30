/*
 * The I/O layer's internals: one record per in-flight io_uring operation
 * and the two calls every operation is built from.
 *
 *     weft__op op;
 *     struct io_uring_sqe *sqe = weft__io_begin(&op, &err);
 *     if (!sqe) return err;
 *     io_uring_prep_recv(sqe, fd, buf, len, flags);
 *     return weft__io_wait(&op);
 *
 * begin checks the task's cancellation and deadline scope, takes an SQE on
 * the loop the task runs on now and points its user_data at `op`.  The SQE
 * is not submitted there: the loop submits every queued SQE in its one
 * io_uring_enter per iteration.  wait keeps the task on that loop until the
 * op's own CQE arrives (DESIGN.md rules 3 and 4): a cancellation or an
 * expired deadline scope submits an async cancel and still waits for the
 * CQE, so no buffer the op names is touched after the call returns.
 */
#ifndef WEFT_IO_INTERNAL_H
#define WEFT_IO_INTERNAL_H

#include "../runtime/internal.h"

typedef struct weft__op weft__op;

/* Completion callback for ops that are not "one CQE wakes one task"
 * (multishot accept and recv).  Runs on the owning loop's scheduler. */
typedef void (*weft__op_cb)(weft_loop *l, weft__op *op, const struct io_uring_cqe *cqe);

struct weft__op {
	weft__op_cb cb;     /* NULL: store the result and wake `task` */
	weft_task *task;
	weft_loop *loop;    /* ring the op was queued on */
	int32_t res;        /* CQE res, valid once done */
	uint32_t cqe_flags;
	bool done;          /* final CQE seen (no IORING_CQE_F_MORE) */
};

/* Start an op from the calling task: checkpoint (cancellation, expired
 * scope), then an SQE on the current loop with user_data = op.  NULL with
 * *err = -EPERM (not a task), -ECANCELED, -ETIMEDOUT, -EBUSY (SQ full even
 * after a flush). */
WEFT_HIDDEN struct io_uring_sqe *weft__io_begin(weft__op *op, int *err);

/* Wait for op's final CQE; returns its res, or -ECANCELED / -ETIMEDOUT
 * when a cancellation or scope deadline cut it short.  A result that
 * raced the cancellation is returned instead (bytes are never lost): the
 * cancellation then surfaces at the next suspension point. */
WEFT_HIDDEN int weft__io_wait(weft__op *op);

/* Cancel op (queued on the caller's current loop) without waiting: for
 * multishot ops whose owner stops listening.  Their final CQE still comes. */
WEFT_HIDDEN void weft__io_cancel(weft_loop *l, weft__op *op);

/* An SQE on loop l's ring, flushing the SQ once if it is full. */
WEFT_HIDDEN struct io_uring_sqe *weft__ring_sqe(weft_loop *l);

/* Park the task until op->done, uninterruptibly (cancellation and scope
 * deadlines stay pending). */
WEFT_HIDDEN void weft__io_wait_final(weft__op *op);

/* ---- io/signal.c: the helper thread (signals, reaping) ---- */
/* Reserve a reaping slot before a spawn, so handing a child over later
 * cannot fail; unreserve if the spawn failed. */
WEFT_HIDDEN int weft__aux_reserve(void);
WEFT_HIDDEN void weft__aux_unreserve(void);
/* Hand pidfd (of a reserved child) to the helper thread to reap. */
WEFT_HIDDEN void weft__aux_reap(int pidfd);

/* ---- io/bufring.c: a loop's provided buffers ---- */
typedef struct weft__bufring weft__bufring;
/* Loop l's buffer ring, created on first use (l's own thread); NULL when
 * the kernel has none or registration failed. */
WEFT_HIDDEN weft__bufring *weft__bufring_get(weft_loop *l);
WEFT_HIDDEN const char *weft__bufring_data(const weft__bufring *b, uint16_t bid);
WEFT_HIDDEN uint16_t weft__bufring_group(void);
/* Give buffer bid back to the kernel; any thread. */
WEFT_HIDDEN void weft__bufring_put(weft__bufring *b, uint16_t bid);
WEFT_HIDDEN void weft__bufring_free(weft_loop *l);

#endif
