/*
 * Per-loop timers: a binary min-heap of parked tasks keyed by deadline,
 * and in front of it a coarse wheel for deadlines far away.
 *
 * Only the owning loop's thread touches them (docs/architecture.md rule 3): a
 * task arms its timer on the loop it parks on, and that loop disarms it when
 * the task is woken, before the task becomes runnable (and stealable).
 *
 * Why the wheel: a server's idle timeout (60 s) is armed at every receive
 * and disarmed at every wake, and almost never fires.  In a heap both cost
 * O(log n) sift steps, each a cache miss on another task's struct: with
 * thousands of connections per loop that was the largest item of the
 * runtime's own profile.  A deadline at least two slots (~0.5 s) away goes
 * instead onto the list of its wheel slot (2^28 ns wide, 256 slots): a
 * link or an unlink, touching at most two neighbours.  When the loop's
 * clock reaches a slot, the timers due in it move into the heap, which
 * fires them to the nanosecond as before; the few that sleep that long pay
 * one move.  Deadlines beyond one turn of the wheel (~69 s) wait in their
 * slot for the turn they belong to.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

uint64_t weft_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void heap_set(weft_loop *l, uint32_t i, weft_task *t)
{
	l->heap[i] = t;
	t->timer.idx = i;
}

static void sift_up(weft_loop *l, uint32_t i)
{
	weft_task *t = l->heap[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (l->heap[p]->timer.deadline <= t->timer.deadline)
			break;
		heap_set(l, i, l->heap[p]);
		i = p;
	}
	heap_set(l, i, t);
}

static void sift_down(weft_loop *l, uint32_t i)
{
	weft_task *t = l->heap[i];
	uint32_t n = l->heap_len;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && l->heap[c + 1]->timer.deadline < l->heap[c]->timer.deadline)
			c++;
		if (t->timer.deadline <= l->heap[c]->timer.deadline)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static int heap_reserve(weft_loop *l, uint32_t need)
{
	if (need <= l->heap_cap)
		return 0;
	uint32_t cap = l->heap_cap ? l->heap_cap * 2 : 1024;
	while (cap < need)
		cap *= 2;
	weft_task **n = realloc(l->heap, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	l->heap = n;
	l->heap_cap = cap;
	return 0;
}

static void heap_push(weft_loop *l, weft_task *t)
{
	uint32_t i = l->heap_len++;
	heap_set(l, i, t);
	sift_up(l, i);
}

static inline uint64_t slot_of(uint64_t ns)
{
	return ns >> WEFT_WHEEL_SHIFT;
}

static void wheel_link(weft_loop *l, weft_task *t)
{
	unsigned s = (unsigned)(slot_of(t->timer.deadline) & (WEFT_WHEEL_SLOTS - 1));
	weft_task *head = l->wheel[s];
	t->timer.wprev = NULL;
	t->timer.wnext = head;
	if (head)
		head->timer.wprev = t;
	l->wheel[s] = t;
	l->wheel_bits[s / 64] |= 1ull << (s % 64);
	t->timer.idx = WEFT_TIMER_WHEEL;
	l->wheel_len++;
}

static void wheel_unlink(weft_loop *l, weft_task *t)
{
	unsigned s = (unsigned)(slot_of(t->timer.deadline) & (WEFT_WHEEL_SLOTS - 1));
	if (t->timer.wprev)
		t->timer.wprev->timer.wnext = t->timer.wnext;
	else if (!(l->wheel[s] = t->timer.wnext))
		l->wheel_bits[s / 64] &= ~(1ull << (s % 64));
	if (t->timer.wnext)
		t->timer.wnext->timer.wprev = t->timer.wprev;
	t->timer.idx = WEFT_TIMER_IDLE;
	l->wheel_len--;
}

int weft__timer_arm(weft_loop *l, weft_task *t, uint64_t deadline, uint64_t now)
{
	/* Room for every wheel timer too, so moving them never fails. */
	if (heap_reserve(l, l->heap_len + l->wheel_len + 1) < 0)
		return -ENOMEM;
	t->timer.deadline = deadline;
	uint64_t now_slot = slot_of(now);
	if (!l->wheel_len) /* nothing behind it: start from the clock */
		l->wheel_cursor = now_slot;
	/* Far: its slot is at least two ahead of the clock and not yet
	 * reached by the cursor, so it moves to the heap before it is due. */
	if (slot_of(deadline) >= now_slot + 2 && slot_of(deadline) >= l->wheel_cursor)
		wheel_link(l, t);
	else
		heap_push(l, t);
	return 0;
}

static void heap_remove_at(weft_loop *l, uint32_t i)
{
	weft_task *t = l->heap[i];
	t->timer.idx = WEFT_TIMER_IDLE;
	uint32_t last = --l->heap_len;
	if (i == last)
		return;
	heap_set(l, i, l->heap[last]);
	if (i > 0 && l->heap[(i - 1) / 2]->timer.deadline > l->heap[i]->timer.deadline)
		sift_up(l, i);
	else
		sift_down(l, i);
}

void weft__timer_disarm(weft_loop *l, weft_task *t)
{
	if (t->timer.idx == WEFT_TIMER_WHEEL)
		wheel_unlink(l, t);
	else if (t->timer.idx != WEFT_TIMER_IDLE)
		heap_remove_at(l, t->timer.idx);
}

/* The first absolute slot at or after the cursor whose list is not empty
 * (within one turn); the wheel must not be empty. */
static uint64_t wheel_next_slot(const weft_loop *l)
{
	uint64_t c = l->wheel_cursor;
	for (unsigned k = 0; k < WEFT_WHEEL_SLOTS; k++) {
		unsigned s = (unsigned)((c + k) & (WEFT_WHEEL_SLOTS - 1));
		uint64_t w = l->wheel_bits[s / 64] >> (s % 64);
		if (w & 1)
			return c + k;
		if (!w) /* nothing more in this word: skip to the next one */
			k += 63 - s % 64;
	}
	return c; /* not reached while wheel_len > 0 */
}

uint64_t weft__timer_next(const weft_loop *l)
{
	uint64_t h = l->heap_len ? l->heap[0]->timer.deadline : 0;
	if (!l->wheel_len)
		return h;
	uint64_t w = wheel_next_slot(l) << WEFT_WHEEL_SHIFT; /* its move is due */
	if (!w)
		w = 1;
	return h && h < w ? h : w;
}

/* Move the timers of every slot the clock has reached into the heap (a
 * slot's list also holds timers of later turns: they stay). */
static void wheel_advance(weft_loop *l, uint64_t now)
{
	uint64_t end = slot_of(now);
	while (l->wheel_len && l->wheel_cursor <= end) {
		uint64_t c = wheel_next_slot(l);
		if (c > end)
			break;
		unsigned s = (unsigned)(c & (WEFT_WHEEL_SLOTS - 1));
		weft_task *t = l->wheel[s];
		while (t) {
			weft_task *next = t->timer.wnext;
			if (slot_of(t->timer.deadline) <= c) {
				wheel_unlink(l, t);
				heap_push(l, t); /* room was reserved at arm */
			}
			t = next;
		}
		l->wheel_cursor = c + 1;
	}
	if (l->wheel_cursor <= end)
		l->wheel_cursor = end + 1;
}

/* Wake every task whose deadline has passed; returns how many. */
unsigned weft__timer_fire(weft_loop *l, uint64_t now)
{
	if (l->wheel_len)
		wheel_advance(l, now);
	unsigned n = 0;
	while (l->heap_len && l->heap[0]->timer.deadline <= now) {
		weft_task *t = l->heap[0];
		heap_remove_at(l, 0);
		t->timed_out = true;
		WEFT_TRACE(l, WEFT_TEV_TIMER, 0, 0, t->id, 0, 0);
		weft__task_wake(t);
		n++;
	}
	WEFT_STAT_ADD(l, timers_fired, n);
	return n;
}

/* ---- periodic timers (weft.h, "Periodic timers") ----
 *
 * An interval is only its grid: the next tick's time and the period.  A
 * tick is a weft_sleep_until of that time on the loop's timers above, so
 * there is nothing to arm or disarm between ticks and nothing to free. */

static int interval_set(weft_interval *iv, uint64_t first_ns, uint64_t period_ns,
			weft_tick_policy policy)
{
	if (!iv || !period_ns || (unsigned)policy > WEFT_TICK_SKIP)
		return -EINVAL;
	*iv = (weft_interval){ .period_ns = period_ns, .next_ns = first_ns,
			       .policy = (unsigned)policy };
	return 0;
}

int weft_interval_init(weft_interval *iv, uint64_t period_ns, weft_tick_policy policy)
{
	return interval_set(iv, weft__deadline_add(weft_now_ns(), period_ns), period_ns, policy);
}

int weft_interval_init_at(weft_interval *iv, uint64_t first_ns, uint64_t period_ns,
			  weft_tick_policy policy)
{
	return interval_set(iv, first_ns, period_ns, policy);
}

void weft_interval_reset(weft_interval *iv)
{
	if (iv && iv->period_ns)
		iv->next_ns = weft__deadline_add(weft_now_ns(), iv->period_ns);
}

uint64_t weft_interval_next(const weft_interval *iv)
{
	return iv && iv->period_ns ? iv->next_ns : 0;
}

int64_t weft_interval_tick(weft_interval *iv)
{
	weft_task *t = weft__task_self();
	if (!t)
		return weft__misuse(-EPERM, "weft_interval_tick outside a task");
	if (!iv || !iv->period_ns || iv->policy > WEFT_TICK_SKIP)
		return -EINVAL;
	uint64_t due = iv->next_ns, period = iv->period_ns;
	uint64_t asked = weft_now_ns();
	int r = weft__sleep_until(t, due);
	if (r < 0)
		return r; /* not consumed: the next call waits for the same tick */
	uint64_t now = weft_now_ns();
	uint64_t behind = now > due ? now - due : 0;
	int64_t ticks = 1;
	switch ((weft_tick_policy)iv->policy) {
	case WEFT_TICK_BURST:
		iv->next_ns = weft__deadline_add(due, period);
		break;
	case WEFT_TICK_DELAY:
		/* late: asked for after its time, or a whole period behind;
		 * a wake-up a little late keeps the grid (no drift) */
		if (asked > due || behind >= period)
			iv->next_ns = weft__deadline_add(now, period);
		else
			iv->next_ns = weft__deadline_add(due, period);
		break;
	case WEFT_TICK_SKIP:
		/* the grid times due..now are all accounted for; the next is
		 * the first one after now (computed without overflow) */
		ticks += (int64_t)(behind / period);
		iv->next_ns = weft__deadline_add(now, period - behind % period);
		break;
	}
	return ticks;
}
