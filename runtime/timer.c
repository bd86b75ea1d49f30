/*
 * Per-loop timers: a binary min-heap of parked tasks keyed by deadline.
 * Only the owning loop's thread touches its heap (DESIGN.md rule 3): a task
 * arms its timer on the loop it parks on, and that loop disarms it when the
 * task is woken, before the task becomes runnable (and stealable).
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

int weft__timer_arm(weft_loop *l, weft_task *t, uint64_t deadline)
{
	if (l->heap_len == l->heap_cap) {
		uint32_t cap = l->heap_cap ? l->heap_cap * 2 : 1024;
		weft_task **n = realloc(l->heap, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->heap = n;
		l->heap_cap = cap;
	}
	t->timer.deadline = deadline;
	uint32_t i = l->heap_len++;
	heap_set(l, i, t);
	sift_up(l, i);
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
	if (t->timer.idx != WEFT_TIMER_IDLE)
		heap_remove_at(l, t->timer.idx);
}

uint64_t weft__timer_next(const weft_loop *l)
{
	return l->heap_len ? l->heap[0]->timer.deadline : 0;
}

/* Wake every task whose deadline has passed; returns how many. */
unsigned weft__timer_fire(weft_loop *l, uint64_t now)
{
	unsigned n = 0;
	while (l->heap_len && l->heap[0]->timer.deadline <= now) {
		weft_task *t = l->heap[0];
		heap_remove_at(l, 0);
		t->timed_out = true;
		weft__task_wake(t);
		n++;
	}
	WEFT_STAT_ADD(l, timers_fired, n);
	return n;
}
