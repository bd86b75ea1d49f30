/*
 * One in-flight io_uring operation, seen from the task that waits for it.
 *
 * While an op is in flight its task is bound to the loop whose ring holds
 * the op (t->pin, restored after): any wake, including a cancellation from
 * another thread, queues it on that loop's pinned FIFO, so the cancel SQE
 * it then submits goes to the right ring and no other loop ever reaps or
 * cancels it (DESIGN.md rule 3).
 */
#include "io.h"

#include <errno.h>

struct io_uring_sqe *weft__ring_sqe(weft_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (unlikely(!sqe)) { /* SQ full: flush it, once */
		io_uring_submit(&l->ring);
		WEFT_STAT_ADD(l, enters, 1);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

struct io_uring_sqe *weft__io_begin(weft__op *op, int *err)
{
	weft_task *t = weft__task_self();
	int r = weft__checkpoint(t);
	if (unlikely(r < 0)) {
		*err = r;
		return NULL;
	}
	weft_loop *l = weft__loop_self();
	struct io_uring_sqe *sqe = weft__ring_sqe(l);
	if (unlikely(!sqe)) {
		*err = -EBUSY;
		return NULL;
	}
	op->cb = NULL;
	op->task = t;
	op->loop = l;
	op->res = 0;
	op->cqe_flags = 0;
	op->done = false;
	io_uring_sqe_set_data(sqe, op);
	return sqe;
}

void weft__io_cancel(weft_loop *l, weft__op *op)
{
	struct io_uring_sqe *sqe = weft__ring_sqe(l);
	if (!sqe) /* cannot happen: a flush with SUBMIT_ALL empties the SQ */
		return;
	io_uring_prep_cancel(sqe, op, 0);
	/* Tag 0: a failed cancel (-ENOENT: it had just completed; -EALREADY:
	 * it is running and will complete) posts a CQE the loop ignores. */
	io_uring_sqe_set_data64(sqe, 0);
	if (l->features & WEFT_RING_CQE_SKIP) /* 5.17; else the CQE is ignored */
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void weft__io_wait_final(weft__op *op)
{
	weft_task *t = op->task;
	uint64_t saved = weft__uninterruptible_begin(t);
	while (!op->done)
		weft__park_task(t, 0);
	weft__uninterruptible_end(t, saved);
}

int weft__io_wait(weft__op *op)
{
	weft_task *t = op->task;
	weft_loop *l = op->loop;
	int16_t pin = t->pin;
	int why = 0;
	l->inflight++;
	t->pin = (int16_t)l->index;
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
		weft__io_cancel(l, op);
		weft__io_wait_final(op);
	}
	t->pin = pin;
	if (unlikely(why) && (op->res == -ECANCELED || op->res == -EINTR)) {
		if (why == -ECANCELED)
			t->cancel_seen = true;
		return why;
	}
	return op->res;
}
