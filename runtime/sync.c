/*
 * Synchronization primitives: Lock, Event, Condition, Semaphore, Barrier,
 * RwLock.
 *
 * Each is a short internal lock guarding a little state and a FIFO wait list,
 * built on weft__wait_locked.  Resources are handed over, never raced for:
 * a release that finds a waiter gives the resource to it (under the
 * spinlock, before firing it) instead of making it free, so a newcomer can
 * never overtake a queued waiter, and a waiter that is fired owns what it
 * waited for even if it was cancelled or timed out at that moment
 * (weft__wait_locked returns 0 then).  A waiter that returns an error was
 * unlinked without being fired, so it took nothing.
 */
#include "internal.h"
#include "weft/sync.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>

/* A waiter with a word of payload (what it was handed, what it asks for). */
typedef struct sync_waiter {
	weft__waiter w;
	int val;
} sync_waiter;

static sync_waiter *sw_of(weft__waiter *w)
{
	return (sync_waiter *)((char *)w - offsetof(sync_waiter, w));
}

/* The check every wait makes first, even when it would not suspend (as
 * futures do): a cancelled task, or one whose deadline scope has expired,
 * learns of it at once. */
static int enter_wait(weft_task **self)
{
	*self = weft__task_self();
	return *self ? weft__checkpoint(*self) : 0;
}

/* ---- Lock ---- */

/* State word: uncontended acquire and release are one CAS each, like a
 * futex mutex; anything involving waiters goes through the spinlock.
 * LK_WAITERS is set (under the spinlock, while LK_LOCKED) before a waiter
 * queues and cleared only under the spinlock, so a release that sees it
 * clear may unlock without looking at the list.  States: 0, LOCKED,
 * LOCKED|WAITERS; never WAITERS alone, hence unlocked implies no waiters
 * (release hands over while any wait), which is what makes it fair. */
enum { LK_LOCKED = 1, LK_WAITERS = 2 };

struct lock_s {
	_Atomic unsigned st;
	weft__lock lk;
	weft__waitlist wl;
};
_Static_assert(sizeof(struct lock_s) <= sizeof(weft_lock), "weft_lock too small");

#define LOCK(p) ((struct lock_s *)(p))

int weft_lock_init(weft_lock *l)
{
	if (!l)
		return -EINVAL;
	struct lock_s *s = LOCK(l);
	atomic_init(&s->st, 0);
	atomic_init(&s->lk.v, 0);
	s->wl.head = s->wl.tail = NULL;
	return 0;
}

int weft_lock_destroy(weft_lock *l)
{
	if (!l)
		return -EINVAL;
	struct lock_s *s = LOCK(l);
	weft__lock_acquire(&s->lk);
	int r = atomic_load(&s->st) || s->wl.head ? -EBUSY : 0;
	weft__lock_release(&s->lk);
	return r;
}

static bool lock_try(struct lock_s *s)
{
	unsigned z = 0;
	return atomic_compare_exchange_strong_explicit(&s->st, &z, LK_LOCKED,
						       memory_order_acquire,
						       memory_order_relaxed);
}

int weft_lock_acquire(weft_lock *l)
{
	if (!l)
		return -EINVAL;
	struct lock_s *s = LOCK(l);
	weft_task *self;
	int r = enter_wait(&self);
	if (r < 0)
		return r;
	if (lock_try(s)) {
		weft__budget_spend(self);
		return 0;
	}
	weft__lock_acquire(&s->lk);
	unsigned st = atomic_load_explicit(&s->st, memory_order_relaxed);
	for (;;) {
		/* A fast release may unlock under us: then take it; else
		 * announce a waiter so that no release can skip the list. */
		unsigned want = st ? st | LK_WAITERS : LK_LOCKED;
		if (atomic_compare_exchange_weak_explicit(&s->st, &st, want,
							  memory_order_acquire,
							  memory_order_relaxed))
			break;
	}
	if (!st) {
		weft__lock_release(&s->lk);
		weft__budget_spend(self);
		return 0;
	}
	weft__waiter w;
	weft__wait_on(self, WEFT_WAIT_LOCK, l);
	return weft__wait_locked(self, &s->lk, &s->wl, &w, 0); /* 0: handed the lock */
}

int weft_lock_try_acquire(weft_lock *l)
{
	if (!l)
		return -EINVAL;
	return lock_try(LOCK(l)) ? 0 : -EBUSY;
}

int weft_lock_release(weft_lock *l)
{
	if (!l)
		return -EINVAL;
	struct lock_s *s = LOCK(l);
	unsigned st = LK_LOCKED;
	if (atomic_compare_exchange_strong_explicit(&s->st, &st, 0, memory_order_release,
						    memory_order_relaxed))
		return 0; /* no waiters announced */
	if (!(st & LK_LOCKED))
		return weft__misuse(-EPERM, "weft_lock_release of an unlocked lock");
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	/* WAITERS is set and only we may clear it.  Hand-off: the lock stays
	 * locked, now owned by the longest waiter; with none left (they gave
	 * up), unlock. */
	if (weft__waitlist_fire_one(&s->wl, &wk))
		atomic_store_explicit(&s->st, s->wl.head ? LK_LOCKED | LK_WAITERS : LK_LOCKED,
				      memory_order_release);
	else
		atomic_store_explicit(&s->st, 0, memory_order_release);
	weft__unlock_wake(&s->lk, &wk);
	return 0;
}

bool weft_lock_locked(const weft_lock *l)
{
	return l && (atomic_load_explicit(&LOCK(l)->st, memory_order_relaxed) & LK_LOCKED);
}

/* ---- Event ---- */

struct event_s {
	weft__lock lk;
	_Atomic bool set;
	weft__waitlist wl;
};
_Static_assert(sizeof(struct event_s) <= sizeof(weft_event), "weft_event too small");

#define EVENT(p) ((struct event_s *)(p))

int weft_event_init(weft_event *e)
{
	if (!e)
		return -EINVAL;
	struct event_s *s = EVENT(e);
	atomic_init(&s->lk.v, 0);
	atomic_init(&s->set, false);
	s->wl.head = s->wl.tail = NULL;
	return 0;
}

int weft_event_destroy(weft_event *e)
{
	if (!e)
		return -EINVAL;
	struct event_s *s = EVENT(e);
	weft__lock_acquire(&s->lk);
	int r = s->wl.head ? -EBUSY : 0;
	weft__lock_release(&s->lk);
	return r;
}

int weft_event_set(weft_event *e)
{
	if (!e)
		return -EINVAL;
	struct event_s *s = EVENT(e);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	atomic_store_explicit(&s->set, true, memory_order_release);
	weft__waitlist_fire_all(&s->wl, &wk);
	weft__unlock_wake(&s->lk, &wk);
	return 0;
}

int weft_event_clear(weft_event *e)
{
	if (!e)
		return -EINVAL;
	struct event_s *s = EVENT(e);
	weft__lock_acquire(&s->lk);
	atomic_store_explicit(&s->set, false, memory_order_relaxed);
	weft__lock_release(&s->lk);
	return 0;
}

bool weft_event_is_set(const weft_event *e)
{
	return e && atomic_load_explicit(&EVENT(e)->set, memory_order_acquire);
}

int weft_event_wait(weft_event *e)
{
	if (!e)
		return -EINVAL;
	struct event_s *s = EVENT(e);
	weft_task *self;
	int r = enter_wait(&self);
	if (r < 0)
		return r;
	if (atomic_load_explicit(&s->set, memory_order_acquire)) {
		weft__budget_spend(self);
		return 0;
	}
	weft__lock_acquire(&s->lk);
	if (atomic_load_explicit(&s->set, memory_order_relaxed)) {
		weft__lock_release(&s->lk);
		return 0;
	}
	weft__waiter w;
	weft__wait_on(self, WEFT_WAIT_EVENT, e);
	return weft__wait_locked(self, &s->lk, &s->wl, &w, 0);
}

/* ---- Condition ---- */

struct cond_s {
	weft__lock lk;
	weft_lock *lock;
	weft__waitlist wl;
};
_Static_assert(sizeof(struct cond_s) <= sizeof(weft_cond), "weft_cond too small");

#define COND(p) ((struct cond_s *)(p))

int weft_cond_init(weft_cond *c, weft_lock *lock)
{
	if (!c || !lock)
		return -EINVAL;
	struct cond_s *s = COND(c);
	atomic_init(&s->lk.v, 0);
	s->lock = lock;
	s->wl.head = s->wl.tail = NULL;
	return 0;
}

int weft_cond_destroy(weft_cond *c)
{
	if (!c)
		return -EINVAL;
	struct cond_s *s = COND(c);
	weft__lock_acquire(&s->lk);
	int r = s->wl.head ? -EBUSY : 0;
	weft__lock_release(&s->lk);
	return r;
}

/* Re-acquire the bound lock whatever happens, as asyncio does: shielded
 * from cancellation (which stays pending for the caller's next suspension
 * point) and with the task's deadline scopes suspended, since an expired
 * scope would fail every wait at once and leave nothing but a busy loop.
 * The lock is normally held briefly, so this wait is bounded in practice. */
static void reacquire(weft_lock *lock, weft_task *self)
{
	if (!self) {
		weft_lock_acquire(lock); /* a thread: nothing can interrupt it */
		return;
	}
	uint64_t saved = weft__uninterruptible_begin(self);
	while (weft_lock_acquire(lock) < 0)
		; /* unreachable: shielded and without deadline, it only succeeds */
	weft__uninterruptible_end(self, saved);
}

int weft_cond_wait(weft_cond *c)
{
	if (!c)
		return -EINVAL;
	struct cond_s *s = COND(c);
	weft_task *self;
	if (!weft_lock_locked(s->lock))
		return weft__misuse(-EPERM, "weft_cond_wait without holding its lock");
	int r = enter_wait(&self);
	if (r < 0)
		return r; /* the caller still holds the lock */
	/* Release the user lock only while holding our spinlock, which
	 * weft__wait_locked keeps until we are on the list: a notify (which
	 * takes the spinlock) cannot slip between release and enqueue.  Lock
	 * order is cond spinlock -> lock spinlock; nothing takes them the
	 * other way round. */
	weft__lock_acquire(&s->lk);
	weft_lock_release(s->lock);
	weft__waiter w;
	weft__wait_on(self, WEFT_WAIT_CONDITION, c);
	r = weft__wait_locked(self, &s->lk, &s->wl, &w, 0);
	reacquire(s->lock, self);
	return r;
}

static int notify(struct cond_s *s, unsigned n)
{
	int woken = 0;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	while (n-- > 0 && weft__waitlist_fire_one(&s->wl, &wk))
		woken++;
	weft__unlock_wake(&s->lk, &wk);
	return woken;
}

int weft_cond_notify(weft_cond *c, unsigned n)
{
	if (!c)
		return -EINVAL;
	return notify(COND(c), n);
}

int weft_cond_notify_all(weft_cond *c)
{
	if (!c)
		return -EINVAL;
	return notify(COND(c), UINT_MAX);
}

/* ---- Semaphore ---- */

struct sem_s {
	weft__lock lk;
	_Atomic int value;
	int bound; /* -1: unbounded; else releasing past it is an error */
	weft__waitlist wl;
};
_Static_assert(sizeof(struct sem_s) <= sizeof(weft_sem), "weft_sem too small");

#define SEM(p) ((struct sem_s *)(p))

static int sem_init(weft_sem *sem, unsigned value, bool bounded)
{
	if (!sem || value > INT32_MAX)
		return -EINVAL;
	struct sem_s *s = SEM(sem);
	atomic_init(&s->lk.v, 0);
	atomic_init(&s->value, (int)value);
	s->bound = bounded ? (int)value : -1;
	s->wl.head = s->wl.tail = NULL;
	return 0;
}

int weft_sem_init(weft_sem *s, unsigned value)
{
	return sem_init(s, value, false);
}

int weft_sem_init_bounded(weft_sem *s, unsigned value)
{
	return sem_init(s, value, true);
}

int weft_sem_destroy(weft_sem *sem)
{
	if (!sem)
		return -EINVAL;
	struct sem_s *s = SEM(sem);
	weft__lock_acquire(&s->lk);
	int r = s->wl.head ? -EBUSY : 0;
	weft__lock_release(&s->lk);
	return r;
}

/* With the spinlock held: take a permit if one is free.  value > 0 implies
 * no waiters, since release hands permits to waiters directly. */
static bool sem_take(struct sem_s *s)
{
	int v = atomic_load_explicit(&s->value, memory_order_relaxed);
	if (v <= 0)
		return false;
	atomic_store_explicit(&s->value, v - 1, memory_order_relaxed);
	return true;
}

int weft_sem_acquire(weft_sem *sem)
{
	if (!sem)
		return -EINVAL;
	struct sem_s *s = SEM(sem);
	weft_task *self;
	int r = enter_wait(&self);
	if (r < 0)
		return r;
	weft__lock_acquire(&s->lk);
	if (sem_take(s)) {
		weft__lock_release(&s->lk);
		weft__budget_spend(self);
		return 0;
	}
	weft__waiter w;
	weft__wait_on(self, WEFT_WAIT_SEMAPHORE, sem);
	return weft__wait_locked(self, &s->lk, &s->wl, &w, 0); /* 0: handed a permit */
}

int weft_sem_try_acquire(weft_sem *sem)
{
	if (!sem)
		return -EINVAL;
	struct sem_s *s = SEM(sem);
	weft__lock_acquire(&s->lk);
	int r = sem_take(s) ? 0 : -EBUSY;
	weft__lock_release(&s->lk);
	return r;
}

int weft_sem_release(weft_sem *sem)
{
	if (!sem)
		return -EINVAL;
	struct sem_s *s = SEM(sem);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	int v = atomic_load_explicit(&s->value, memory_order_relaxed);
	int r = 0;
	/* A waiter exists only while value is 0 (< any bound), so the bound
	 * check never refuses a hand-off. */
	if ((s->bound >= 0 && v >= s->bound) || v == INT32_MAX)
		r = weft__misuse(-EOVERFLOW, "weft_sem_release past the semaphore's bound (or INT32_MAX)");
	else if (!weft__waitlist_fire_one(&s->wl, &wk))
		atomic_store_explicit(&s->value, v + 1, memory_order_relaxed);
	weft__unlock_wake(&s->lk, &wk);
	return r;
}

int weft_sem_value(const weft_sem *s)
{
	if (!s)
		return -EINVAL;
	return atomic_load_explicit(&SEM(s)->value, memory_order_relaxed);
}

/* ---- Barrier ---- */

struct barrier_s {
	weft__lock lk;
	_Atomic bool broken; /* written under lk; read bare by weft_barrier_broken */
	unsigned parties;
	/* Arrivals this cycle, an upper bound: a waiter that leaves (cancel,
	 * timeout) is unlinked at once but decrements only after retaking
	 * the spinlock, so completion is confirmed by counting the list. */
	unsigned count;
	unsigned gen; /* cycles completed or reset */
	weft__waitlist wl;
};
_Static_assert(sizeof(struct barrier_s) <= sizeof(weft_barrier), "weft_barrier too small");

#define BARRIER(p) ((struct barrier_s *)(p))

int weft_barrier_init(weft_barrier *b, unsigned parties)
{
	if (!b || parties == 0 || parties > INT32_MAX)
		return -EINVAL;
	struct barrier_s *s = BARRIER(b);
	atomic_init(&s->lk.v, 0);
	atomic_init(&s->broken, false);
	s->parties = parties;
	s->count = 0;
	s->gen = 0;
	s->wl.head = s->wl.tail = NULL;
	return 0;
}

int weft_barrier_destroy(weft_barrier *b)
{
	if (!b)
		return -EINVAL;
	struct barrier_s *s = BARRIER(b);
	weft__lock_acquire(&s->lk);
	int r = s->wl.head ? -EBUSY : 0;
	weft__lock_release(&s->lk);
	return r;
}

static unsigned list_len(const weft__waitlist *wl)
{
	unsigned n = 0;
	for (const weft__waiter *w = wl->head; w; w = w->next)
		n++;
	return n;
}

/* With the spinlock held: give every waiter its arrival index (err 0) or
 * err, fire them all, and start a new cycle. */
static void barrier_release_all(struct barrier_s *s, int err, weft__wakes *wk)
{
	int i = 0;
	for (weft__waiter *w = s->wl.head; w; w = w->next)
		sw_of(w)->val = err ? err : i++;
	weft__waitlist_fire_all(&s->wl, wk);
	s->count = 0;
	s->gen++;
}

int weft_barrier_wait(weft_barrier *b)
{
	if (!b)
		return -EINVAL;
	struct barrier_s *s = BARRIER(b);
	weft_task *self;
	int r = enter_wait(&self);
	if (r < 0)
		return r;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	if (s->broken) {
		weft__lock_release(&s->lk);
		return -EPIPE;
	}
	if (++s->count >= s->parties && list_len(&s->wl) + 1 == s->parties) {
		/* Last arrival: the waiters get 0..parties-2 in arrival order. */
		barrier_release_all(s, 0, &wk);
		weft__unlock_wake(&s->lk, &wk);
		weft__budget_spend(self);
		return (int)s->parties - 1;
	}
	unsigned gen = s->gen;
	sync_waiter w;
	weft__wait_on(self, WEFT_WAIT_OTHER, b); /* a barrier */
	r = weft__wait_locked(self, &s->lk, &s->wl, &w.w, 0);
	if (r == 0)
		return w.val;
	/* Left without passing: stop counting as arrived, unless the cycle
	 * has since completed or been reset (count restarted without us). */
	weft__lock_acquire(&s->lk);
	if (s->gen == gen)
		s->count--;
	weft__lock_release(&s->lk);
	return r;
}

int weft_barrier_abort(weft_barrier *b)
{
	if (!b)
		return -EINVAL;
	struct barrier_s *s = BARRIER(b);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	s->broken = true;
	barrier_release_all(s, -EPIPE, &wk);
	weft__unlock_wake(&s->lk, &wk);
	return 0;
}

int weft_barrier_reset(weft_barrier *b)
{
	if (!b)
		return -EINVAL;
	struct barrier_s *s = BARRIER(b);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	s->broken = false;
	barrier_release_all(s, -EPIPE, &wk);
	weft__unlock_wake(&s->lk, &wk);
	return 0;
}

int weft_barrier_n_waiting(const weft_barrier *b)
{
	if (!b)
		return -EINVAL;
	struct barrier_s *s = BARRIER(b);
	weft__lock_acquire(&s->lk);
	int n = (int)list_len(&s->wl);
	weft__lock_release(&s->lk);
	return n;
}

bool weft_barrier_broken(const weft_barrier *b)
{
	return b && atomic_load_explicit(&BARRIER(b)->broken, memory_order_relaxed);
}

/* ---- RwLock ---- */

enum { RW_READ, RW_WRITE };

struct rwlock_s {
	weft__lock lk;
	bool writer;
	unsigned readers;
	weft__waitlist wl; /* sync_waiters; val = RW_READ or RW_WRITE */
};
_Static_assert(sizeof(struct rwlock_s) <= sizeof(weft_rwlock), "weft_rwlock too small");

#define RW(p) ((struct rwlock_s *)(p))

int weft_rwlock_init(weft_rwlock *rw)
{
	if (!rw)
		return -EINVAL;
	struct rwlock_s *s = RW(rw);
	atomic_init(&s->lk.v, 0);
	s->writer = false;
	s->readers = 0;
	s->wl.head = s->wl.tail = NULL;
	return 0;
}

int weft_rwlock_destroy(weft_rwlock *rw)
{
	if (!rw)
		return -EINVAL;
	struct rwlock_s *s = RW(rw);
	weft__lock_acquire(&s->lk);
	int r = s->writer || s->readers || s->wl.head ? -EBUSY : 0;
	weft__lock_release(&s->lk);
	return r;
}

/* With the spinlock held: hand the lock to waiters from the head while
 * they fit (a run of readers, or one writer once it is free).  Stopping
 * at the first that does not fit is what keeps it FIFO-fair. */
static void rw_grant(struct rwlock_s *s, weft__wakes *wk)
{
	weft__waiter *w;
	while ((w = s->wl.head) && !s->writer) {
		if (sw_of(w)->val == RW_WRITE) {
			if (s->readers)
				return;
			s->writer = true;
		} else {
			s->readers++;
		}
		weft__waitlist_fire_one(&s->wl, wk);
	}
}

/* Can `kind` be granted now without overtaking a waiter? */
static bool rw_fits(const struct rwlock_s *s, int kind)
{
	if (s->writer || s->wl.head)
		return false;
	return kind == RW_READ || s->readers == 0;
}

static void rw_take(struct rwlock_s *s, int kind)
{
	if (kind == RW_READ)
		s->readers++;
	else
		s->writer = true;
}

static int rw_acquire(weft_rwlock *rw, int kind)
{
	if (!rw)
		return -EINVAL;
	struct rwlock_s *s = RW(rw);
	weft_task *self;
	int r = enter_wait(&self);
	if (r < 0)
		return r;
	weft__lock_acquire(&s->lk);
	if (rw_fits(s, kind)) {
		rw_take(s, kind);
		weft__lock_release(&s->lk);
		weft__budget_spend(self);
		return 0;
	}
	sync_waiter w = { .val = kind };
	weft__wait_on(self, WEFT_WAIT_LOCK, rw);
	r = weft__wait_locked(self, &s->lk, &s->wl, &w.w, 0);
	if (r < 0) {
		/* Leaving may unblock those behind us (readers queued behind a
		 * writer that gave up while readers hold the lock). */
		weft__wakes wk = WEFT_WAKES_INIT;
		weft__lock_acquire(&s->lk);
		rw_grant(s, &wk);
		weft__unlock_wake(&s->lk, &wk);
	}
	return r;
}

static int rw_try(weft_rwlock *rw, int kind)
{
	if (!rw)
		return -EINVAL;
	struct rwlock_s *s = RW(rw);
	weft__lock_acquire(&s->lk);
	int r = -EBUSY;
	if (rw_fits(s, kind)) {
		rw_take(s, kind);
		r = 0;
	}
	weft__lock_release(&s->lk);
	return r;
}

int weft_rwlock_read_acquire(weft_rwlock *rw)
{
	return rw_acquire(rw, RW_READ);
}

int weft_rwlock_write_acquire(weft_rwlock *rw)
{
	return rw_acquire(rw, RW_WRITE);
}

int weft_rwlock_try_read_acquire(weft_rwlock *rw)
{
	return rw_try(rw, RW_READ);
}

int weft_rwlock_try_write_acquire(weft_rwlock *rw)
{
	return rw_try(rw, RW_WRITE);
}

int weft_rwlock_read_release(weft_rwlock *rw)
{
	if (!rw)
		return -EINVAL;
	struct rwlock_s *s = RW(rw);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	int r = 0;
	if (s->readers == 0)
		r = weft__misuse(-EPERM, "weft_rwlock_read_release without a reader");
	else if (--s->readers == 0)
		rw_grant(s, &wk);
	weft__unlock_wake(&s->lk, &wk);
	return r;
}

int weft_rwlock_write_release(weft_rwlock *rw)
{
	if (!rw)
		return -EINVAL;
	struct rwlock_s *s = RW(rw);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	int r = 0;
	if (!s->writer) {
		r = weft__misuse(-EPERM, "weft_rwlock_write_release without the writer");
	} else {
		s->writer = false;
		rw_grant(s, &wk);
	}
	weft__unlock_wake(&s->lk, &wk);
	return r;
}
