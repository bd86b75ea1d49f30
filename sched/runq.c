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
 * When the ring is full, the owner's further pushes queue in order behind
 * it on a locked overflow list (rarely used: more than 256 tasks ready on
 * one loop), moved into the ring as it drains; so one loop runs its own
 * tasks in the order they became ready, however many there are.  The
 * owner stages such pushes privately and publishes them 32 at a time (and
 * at every scheduler pass), one lock per batch.  Thieves take the older
 * half of the overflow once the ring is empty.  (Tokio
 * spills half the ring to the global queue instead, which lets a task
 * ready later run first.)
 */
#include "../runtime/internal.h"

#define MASK (WEFT_RUNQ_CAP - 1)

void weft__runq_init(weft__runq *q)
{
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	for (unsigned i = 0; i < WEFT_RUNQ_CAP; i++)
		atomic_init(&q->buf[i], NULL);
	atomic_init(&q->ovf_lock.v, 0);
	atomic_init(&q->ovf_len, 0);
	q->ovf_head = q->ovf_tail = NULL;
	q->stage_head = q->stage_tail = NULL;
	q->stage_len = 0;
	q->spill = false;
}

/* With ovf_lock held: move overflow tasks, oldest first, into the ring's
 * free slots.  Runs on the owner (slots past tail are its to write). */
/* With src's ovf_lock held: move up to max tasks from the head of src's
 * overflow into dst's slots from index `at` on.  Returns how many. */
static uint32_t take_overflow(weft__runq *src, weft__runq *dst, uint32_t at, uint32_t max)
{
	uint32_t n = 0;
	weft_task *t = src->ovf_head;
	while (t && n < max) {
		atomic_store_explicit(&dst->buf[(at + n) & MASK], t, memory_order_relaxed);
		t = t->next;
		n++;
	}
	src->ovf_head = t;
	if (!t)
		src->ovf_tail = NULL;
	atomic_fetch_sub_explicit(&src->ovf_len, n, memory_order_relaxed);
	return n;
}

static void refill_locked(weft__runq *q)
{
	uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	uint32_t n = take_overflow(q, q, tail, WEFT_RUNQ_CAP - (tail - weft__rq_steal(h)));
	if (n)
		atomic_store_explicit(&q->tail, tail + n, memory_order_release);
}

/* Owner: publish the staged pushes behind the overflow and move what fits
 * into the ring; whether anything still waits behind it is `spill`. */
void weft__runq_flush(weft__runq *q)
{
	weft__lock_acquire(&q->ovf_lock);
	if (q->stage_head) {
		if (q->ovf_tail)
			q->ovf_tail->next = q->stage_head;
		else
			q->ovf_head = q->stage_head;
		q->ovf_tail = q->stage_tail;
		atomic_fetch_add_explicit(&q->ovf_len, q->stage_len, memory_order_relaxed);
		q->stage_head = q->stage_tail = NULL;
		q->stage_len = 0;
	}
	refill_locked(q);
	q->spill = atomic_load_explicit(&q->ovf_len, memory_order_relaxed) != 0;
	weft__lock_release(&q->ovf_lock);
}

/* The ring is full or tasks already wait behind it (weft__runq_push's slow
 * path): t is staged last; while the ring stays full, a batch of stages
 * is published under one lock. */
void weft__runq_push_slow(weft__runq *q, weft_task *t)
{
	t->next = NULL;
	if (q->stage_tail)
		q->stage_tail->next = t;
	else
		q->stage_head = t;
	q->stage_tail = t;
	q->stage_len++;
	q->spill = true;
	uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (q->stage_len < WEFT_RUNQ_STAGE && tail - weft__rq_steal(h) >= WEFT_RUNQ_CAP)
		return;
	weft__runq_flush(q);
}

/* The ring is empty, something may wait behind it (weft__runq_pop's slow
 * path). */
weft_task *weft__runq_pop_slow(weft__runq *q)
{
	weft__runq_flush(q);
	uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
	if (weft__rq_real(h) == atomic_load_explicit(&q->tail, memory_order_relaxed))
		return NULL; /* a thief took the overflow first */
	return weft__runq_pop(q);
}

/* A thief found src's ring empty: take the older half of its overflow
 * (at most half a ring) into dst at dst_tail.  Returns how many. */
static uint32_t steal_overflow(weft__runq *src, weft__runq *dst, uint32_t dst_tail)
{
	if (!atomic_load_explicit(&src->ovf_len, memory_order_relaxed))
		return 0;
	weft__lock_acquire(&src->ovf_lock);
	uint32_t len = atomic_load_explicit(&src->ovf_len, memory_order_relaxed);
	uint32_t want = len - len / 2;
	if (want > WEFT_RUNQ_CAP / 2)
		want = WEFT_RUNQ_CAP / 2;
	uint32_t n = take_overflow(src, dst, dst_tail, want);
	weft__lock_release(&src->ovf_lock);
	return n;
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
		if (n == 0) {
			n = steal_overflow(src, dst, dst_tail);
			if (n == 0)
				return NULL;
			goto publish;
		}
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
publish:
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
