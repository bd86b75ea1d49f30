/*
 * The hot run-queue operations, inline: every yield and wake-up goes
 * through them.  The algorithm is described in sched/runq.c.
 */
#ifndef WEFT_RUNQ_H
#define WEFT_RUNQ_H

static inline uint64_t weft__rq_pack(uint32_t steal, uint32_t real)
{
	return ((uint64_t)steal << 32) | real;
}
static inline uint32_t weft__rq_steal(uint64_t h) { return (uint32_t)(h >> 32); }
static inline uint32_t weft__rq_real(uint64_t h) { return (uint32_t)h; }

/* Tasks in q's ring and overflow, as seen now (any thread; the owner's
 * staged pushes are not counted: see weft__runq_len_own). */
static inline uint32_t weft__runq_len(const weft__runq *q)
{
	weft__runq *m = (weft__runq *)q;
	uint64_t h = atomic_load_explicit(&m->head, memory_order_acquire);
	uint32_t t = atomic_load_explicit(&m->tail, memory_order_acquire);
	return t - weft__rq_real(h) + atomic_load_explicit(&m->ovf_len, memory_order_relaxed);
}

/* Owner only: every task in q, staged pushes included. */
static inline uint32_t weft__runq_len_own(const weft__runq *q)
{
	return weft__runq_len(q) + q->stage_len;
}

/* Owner only: append t.  Once the ring is full, tasks queue behind it in
 * the overflow list until the ring has room (weft__runq_push_slow), so
 * the owner still takes them in the order they were pushed. */
static inline void weft__runq_push(weft__runq *q, weft_task *t)
{
	uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (likely(tail - weft__rq_steal(h) < WEFT_RUNQ_CAP && !q->spill)) {
		atomic_store_explicit(&q->buf[tail & (WEFT_RUNQ_CAP - 1)], t, memory_order_relaxed);
		atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
		return;
	}
	weft__runq_push_slow(q, t);
}

/* Owner only: take the oldest task, or NULL. */
static inline weft_task *weft__runq_pop(weft__runq *q)
{
	uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
	for (;;) {
		uint32_t steal = weft__rq_steal(h), real = weft__rq_real(h);
		uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (real == tail)
			return unlikely(q->spill) ? weft__runq_pop_slow(q) : NULL;
		uint32_t nr = real + 1;
		uint64_t next = steal == real ? weft__rq_pack(nr, nr) : weft__rq_pack(steal, nr);
		if (atomic_compare_exchange_weak_explicit(&q->head, &h, next, memory_order_acq_rel,
							  memory_order_acquire))
			return atomic_load_explicit(&q->buf[real & (WEFT_RUNQ_CAP - 1)],
						    memory_order_relaxed);
	}
}

/* ---- owner-only FIFO (pinned tasks) ---- */

static inline void weft__fifo_push(weft__fifo *f, weft_task *t)
{
	t->next = NULL;
	if (f->tail)
		f->tail->next = t;
	else
		f->head = t;
	f->tail = t;
	f->len++;
}

static inline weft_task *weft__fifo_pop(weft__fifo *f)
{
	weft_task *t = f->head;
	if (t) {
		f->head = t->next;
		if (!f->head)
			f->tail = NULL;
		f->len--;
		t->next = NULL;
	}
	return t;
}

#endif
