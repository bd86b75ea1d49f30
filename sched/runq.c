/*
 * Run queues.
 *
 * weft__runq is Tokio's per-worker queue: a 256-slot ring the owner pushes
 * to and pops from, and thieves steal half of.  `head` packs two indices:
 * `real` (the next slot to pop) and `steal` (where an in-progress steal
 * started).  A thief first claims slots by moving `real` forward while
 * leaving `steal` behind, copies them, then closes the steal by moving
 * `steal` up to `real`; while steal != real no other thief starts and the
 * owner treats the claimed slots as still occupied.  Indices are u32 and
 * wrap; only differences are used.  Slots are relaxed atomics so the
 * owner's writes and a thief's reads of different generations stay free of
 * data races; the release/acquire on tail and head order them.
 *
 * When the ring is full the owner moves half of it (plus the new task) to
 * the runtime's inject queue in one locked batch.
 */
#include "../runtime/internal.h"

#define MASK (WEFT_RUNQ_CAP - 1)

void weft__runq_init(weft__runq *q)
{
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	for (unsigned i = 0; i < WEFT_RUNQ_CAP; i++)
		atomic_init(&q->buf[i], NULL);
}

/* Move half the ring plus `t` to the inject queue.  Fails (returns false)
 * if a thief got there first, in which case there is room again. */
static bool push_overflow(weft_runtime *rt, weft__runq *q, weft_task *t, uint32_t head)
{
	const uint32_t n = WEFT_RUNQ_CAP / 2;
	uint64_t prev = weft__rq_pack(head, head);
	if (!atomic_compare_exchange_strong_explicit(&q->head, &prev,
						     weft__rq_pack(head + n, head + n),
						     memory_order_release, memory_order_relaxed))
		return false;
	weft_task *first = atomic_load_explicit(&q->buf[head & MASK], memory_order_relaxed);
	weft_task *last = first;
	for (uint32_t i = 1; i < n; i++) {
		weft_task *x = atomic_load_explicit(&q->buf[(head + i) & MASK],
						    memory_order_relaxed);
		last->next = x;
		last = x;
	}
	last->next = t;
	t->next = NULL;
	weft__inject_push_batch(rt, first, t, n + 1);
	return true;
}

/* The ring is full (weft__runq_push's slow path). */
void weft__runq_push_full(weft_runtime *rt, weft__runq *q, weft_task *t)
{
	for (;;) {
		uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
		uint32_t steal = weft__rq_steal(h), real = weft__rq_real(h);
		uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (tail - steal < WEFT_RUNQ_CAP) {
			atomic_store_explicit(&q->buf[tail & MASK], t, memory_order_relaxed);
			atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
			return;
		}
		if (steal != real) {
			/* A thief is mid-steal: room is coming, but don't wait. */
			t->next = NULL;
			weft__inject_push(rt, t);
			return;
		}
		if (push_overflow(rt, q, t, real))
			return;
	}
}

/*
 * Steal half of src into dst (owned by the caller, who must have room:
 * dst is only stolen into when empty).  Returns one task to run now and
 * publishes the rest in dst; *stolen gets the total taken.
 */
weft_task *weft__runq_steal(weft__runq *src, weft__runq *dst, unsigned *stolen)
{
	*stolen = 0;
	uint32_t dst_tail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
	uint64_t dh = atomic_load_explicit(&dst->head, memory_order_acquire);
	if (dst_tail - weft__rq_steal(dh) > WEFT_RUNQ_CAP / 2)
		return NULL; /* not enough room for half of a full queue */

	uint64_t prev = atomic_load_explicit(&src->head, memory_order_acquire);
	uint32_t n, first;
	for (;;) {
		uint32_t steal = weft__rq_steal(prev), real = weft__rq_real(prev);
		if (steal != real)
			return NULL; /* another thief is at work */
		uint32_t tail = atomic_load_explicit(&src->tail, memory_order_acquire);
		n = tail - real;
		n -= n / 2;
		if (n == 0)
			return NULL;
		uint64_t next = weft__rq_pack(steal, real + n);
		if (atomic_compare_exchange_weak_explicit(&src->head, &prev, next,
							  memory_order_acq_rel,
							  memory_order_acquire)) {
			first = real;
			break;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		weft_task *t = atomic_load_explicit(&src->buf[(first + i) & MASK],
						    memory_order_relaxed);
		atomic_store_explicit(&dst->buf[(dst_tail + i) & MASK], t, memory_order_relaxed);
	}
	/* Close the steal: steal index catches up with real. */
	prev = atomic_load_explicit(&src->head, memory_order_acquire);
	for (;;) {
		uint32_t real = weft__rq_real(prev);
		if (atomic_compare_exchange_weak_explicit(&src->head, &prev, weft__rq_pack(real, real),
							  memory_order_acq_rel,
							  memory_order_acquire))
			break;
	}
	*stolen = n;
	n--;
	weft_task *ret = atomic_load_explicit(&dst->buf[(dst_tail + n) & MASK],
					      memory_order_relaxed);
	if (n)
		atomic_store_explicit(&dst->tail, dst_tail + n, memory_order_release);
	return ret;
}

/* ---- inject queue: mutex-protected FIFO shared by all loops ---- */

void weft__inject_push_batch(weft_runtime *rt, weft_task *head, weft_task *tail, uint32_t n)
{
	tail->next = NULL;
	weft__lock_acquire(&rt->inject_lock);
	if (rt->inject_tail)
		rt->inject_tail->next = head;
	else
		rt->inject_head = head;
	rt->inject_tail = tail;
	atomic_fetch_add_explicit(&rt->inject_len, n, memory_order_release);
	weft__lock_release(&rt->inject_lock);
}

void weft__inject_push(weft_runtime *rt, weft_task *t)
{
	weft__inject_push_batch(rt, t, t, 1);
}

weft_task *weft__inject_pop(weft_runtime *rt)
{
	if (atomic_load_explicit(&rt->inject_len, memory_order_acquire) == 0)
		return NULL;
	weft__lock_acquire(&rt->inject_lock);
	weft_task *t = rt->inject_head;
	if (t) {
		rt->inject_head = t->next;
		if (!rt->inject_head)
			rt->inject_tail = NULL;
		atomic_fetch_sub_explicit(&rt->inject_len, 1, memory_order_relaxed);
		t->next = NULL;
	}
	weft__lock_release(&rt->inject_lock);
	return t;
}

/* Move up to half of q's free room from the inject queue into q (owned by
 * the caller) under one lock, returning one more task to run now. */
weft_task *weft__inject_pop_batch(weft_runtime *rt, weft__runq *q)
{
	if (atomic_load_explicit(&rt->inject_len, memory_order_acquire) == 0)
		return NULL;
	uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	uint32_t room = WEFT_RUNQ_CAP - (tail - weft__rq_steal(h));
	uint32_t want = room / 2;
	weft__lock_acquire(&rt->inject_lock);
	weft_task *first = rt->inject_head;
	if (!first) {
		weft__lock_release(&rt->inject_lock);
		return NULL;
	}
	weft_task *t = first->next;
	uint32_t n = 0;
	while (t && n < want) {
		atomic_store_explicit(&q->buf[(tail + n) & MASK], t, memory_order_relaxed);
		t = t->next;
		n++;
	}
	rt->inject_head = t;
	if (!t)
		rt->inject_tail = NULL;
	atomic_fetch_sub_explicit(&rt->inject_len, n + 1, memory_order_relaxed);
	weft__lock_release(&rt->inject_lock);
	if (n)
		atomic_store_explicit(&q->tail, tail + n, memory_order_release);
	first->next = NULL;
	return first;
}

/* ---- MPSC stack: push from anywhere, the owner takes all at once ---- */

void weft__mpsc_push(weft__mpsc *s, weft_task *t)
{
	weft_task *h = atomic_load_explicit(&s->head, memory_order_relaxed);
	do
		t->next = h;
	while (!atomic_compare_exchange_weak_explicit(&s->head, &h, t, memory_order_seq_cst,
						      memory_order_relaxed));
}

/* Take everything, oldest first. */
weft_task *weft__mpsc_take_fifo(weft__mpsc *s)
{
	if (!atomic_load_explicit(&s->head, memory_order_relaxed))
		return NULL;
	weft_task *h = atomic_exchange_explicit(&s->head, NULL, memory_order_acquire);
	weft_task *rev = NULL;
	while (h) {
		weft_task *n = h->next;
		h->next = rev;
		rev = h;
		h = n;
	}
	return rev;
}
