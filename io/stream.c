/*
 * Buffered streams (weft/stream.h).
 *
 * The read side belongs to one task at a time and needs no lock: it is a
 * buffer [rstart, rend) filled by a plain weft_recv/weft_read.
 *
 * The write side is shared: any task appends, and the send completes in the
 * scheduler of whichever loop submitted it.  Two buffers keep the bytes the
 * kernel is reading immutable: `out` is in flight (never reallocated while
 * a send is pending), `next` collects writes meanwhile; when `out` is done
 * they swap.  The send op is owned by the stream, not by a task, so a writer
 * that is cancelled in drain loses nothing and frees nothing.  The spinlock
 * `lk` guards both buffers and the waiters of drain/flush.
 */
#include "io.h"
#include "weft/stream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct wbuf {
	char *p;
	size_t len, off, cap;
} wbuf;

struct weft_stream {
	int fd;
	bool is_sock;
	bool bytestream;    /* a SOCK_STREAM socket */
	_Atomic bool reading; /* a read call is under way (one reader) */
	bool eof;
	_Atomic bool expect_empty; /* written since the last receive: a
				      hint from any writer, so relaxed */
	weft_stream_config cfg;
	uint64_t rdeadline; /* weft_stream_read_deadline, 0 none */
	char *rbuf;
	size_t rcap, rstart, rend;

	weft__lock lk;
	bool sending;       /* `op` is in flight */
	bool paused;        /* over high water, not yet back to low water */
	bool wshut;         /* shut down for writing */
	bool aborting;      /* close gave up: drop what is queued */
	int werr;           /* sticky send error */
	wbuf out, next;
	weft__waitlist waiters; /* drain and flush */
	weft__op op;

	/* multishot receive (cfg.multishot): a stream-owned op on one loop
	 * posts provided buffers; the reader, on any loop, copies them out.
	 * All of it under lk: the op completes in that loop's scheduler. */
	weft__op rop;
	bool rarmed;        /* rop in flight */
	bool rcapped;       /* too much pending: rop is being cancelled */
	bool reof;
	bool rlost;         /* received bytes were dropped: rerr stays */
	int rerr;           /* the multishot's error, for the reader */
	struct pend *pend;  /* received, not yet copied out */
	unsigned npend, cappend;
	size_t pbytes;
	weft__waitlist rwait;
};

struct pend {
	weft__bufring *br;
	uint16_t bid;
	uint32_t len;
};

/* Stop receiving past this much pending per stream (TCP backpressure
 * instead), so one fast peer cannot hold the loop's buffers. */
#define PEND_CAP (64u * 1024u)
#define PEND_BUFS 16u /* each completion holds a whole 4 KiB buffer */

#define RBUF_MIN 4096u

void weft_stream_config_init(weft_stream_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->limit = 64 * 1024;
	cfg->high_water = 64 * 1024;
	cfg->low_water = 16 * 1024;
}

int weft_stream_open(weft_stream **out, int fd, const weft_stream_config *cfg)
{
	if (!out || fd < 0)
		return -EINVAL;
	weft_stream_config c;
	if (cfg) {
		c = *cfg;
		for (size_t i = 0; i < sizeof(c.reserved) / sizeof(c.reserved[0]); i++)
			if (c.reserved[i])
				return -EINVAL;
		if (!c.limit || c.low_water > c.high_water)
			return -EINVAL;
	} else {
		weft_stream_config_init(&c);
	}
	weft_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	struct stat st;
	weft__fd_forget(fd); /* a new owner: no loop trusts an old registration */
	s->fd = fd;
	s->is_sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	int type = 0;
	socklen_t tl = sizeof(type);
	s->bytestream = s->is_sock && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
			type == SOCK_STREAM;
	s->cfg = c;
	*out = s;
	return 0;
}

int weft_stream_read_deadline(weft_stream *s, uint64_t deadline_ns)
{
	if (!s)
		return -EINVAL;
	s->rdeadline = deadline_ns;
	return 0;
}

int weft_stream_fd(const weft_stream *s)
{
	return s ? s->fd : -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */
/* ------------------------------------------------------------------------ */

static size_t rlen(const weft_stream *s)
{
	return s->rend - s->rstart;
}

/* Room for at least `want` more bytes after rend: compact, then grow. */
static int rbuf_reserve(weft_stream *s, size_t want)
{
	if (s->rcap - s->rend >= want)
		return 0;
	if (s->rstart) {
		memmove(s->rbuf, s->rbuf + s->rstart, rlen(s));
		s->rend -= s->rstart;
		s->rstart = 0;
		if (s->rcap - s->rend >= want)
			return 0;
	}
	if (want > SIZE_MAX / 4 - s->rend)
		return -ENOMEM;
	size_t cap = s->rcap ? s->rcap : RBUF_MIN;
	while (cap - s->rend < want)
		cap *= 2;
	char *p = realloc(s->rbuf, cap);
	if (!p)
		return -ENOMEM;
	s->rbuf = p;
	s->rcap = cap;
	return 0;
}

/* recv into the buffer's free space.  After this stream has sent
 * something and drained its input, the peer's next bytes are usually not
 * there yet (request/response): POLL_FIRST skips the receive attempt that
 * would fail and arms the poll at once. */
static ssize_t sock_recv(weft_stream *s, size_t want)
{
	weft__op op = { .opcode = WEFT_OP_RECV,
			.a = { .fd = s->fd, .p = s->rbuf + s->rend, .len = want } };
	op.hints = (s->cfg.keep_fd ? 0 : WEFT_OPH_OWNED) | (s->bytestream ? WEFT_OPH_BYTESTREAM : 0);
	if (atomic_load_explicit(&s->expect_empty, memory_order_relaxed))
		op.hints |= WEFT_OPH_POLL_FIRST;
	return weft__op_run(&op);
}

static void recv_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	weft_stream *s = (weft_stream *)((char *)op - offsetof(weft_stream, rop));
	weft__bufring *br = l->bufring;
	weft__lock_acquire(&s->lk);
	if (res > 0 && (flags & WEFT__OP_BUFFER)) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		if (s->rlost) { /* nothing after the gap may be read */
			weft__bufring_put(br, bid);
			goto out;
		}
		if (s->npend == s->cappend) {
			unsigned cap = s->cappend ? s->cappend * 2 : 8;
			struct pend *p = realloc(s->pend, cap * sizeof(*p));
			if (!p) {
				/* No room to keep these bytes: the input has a gap
				 * from here, so it ends here, with an error every
				 * later read returns (what came before is still
				 * read first).  Stop receiving. */
				weft__bufring_put(br, bid);
				s->rlost = true;
				s->rerr = -EIO;
				if ((flags & WEFT__OP_MORE) && !s->rcapped) {
					weft__io_cancel(l, op);
					s->rcapped = true;
				}
				goto out;
			}
			s->pend = p;
			s->cappend = cap;
		}
		s->pend[s->npend++] = (struct pend){ br, bid, (uint32_t)res };
		s->pbytes += (size_t)res;
		if ((s->pbytes >= PEND_CAP || s->npend >= PEND_BUFS) && !s->rcapped &&
		    (flags & WEFT__OP_MORE)) {
			weft__io_cancel(l, op);
			s->rcapped = true;
		}
	} else if (res == 0) {
		s->reof = true;
	} else if (res < 0 && res != -ECANCELED && !s->rlost) {
		s->rerr = res; /* -ENOBUFS: the reader falls back once */
	}
out:
	if (!(flags & WEFT__OP_MORE))
		s->rarmed = s->rcapped = false;
	weft__waitlist_fire_all(&s->rwait);
	weft__lock_release(&s->lk);
}

/* With lk held, on loop l: arm the multishot receive. */
static bool recv_arm(weft_stream *s, weft_loop *l)
{
	if (!weft__bufring_get(l))
		return false; /* no buffer ring (or epoll): plain receives */
	s->rop.cb = recv_done;
	s->rop.opcode = WEFT_OP_RECV_MULTI;
	s->rop.a.fd = s->fd;
	if (weft__op_arm(l, &s->rop) < 0)
		return false;
	s->rarmed = true;
	return true;
}

/* With lk held: copy every pending buffer into the read buffer and give
 * the buffers back.  Bytes added, or -ENOMEM. */
static ssize_t pend_take(weft_stream *s)
{
	int r = rbuf_reserve(s, s->pbytes);
	if (r < 0)
		return r;
	size_t at = s->rend; /* the caller advances rend */
	for (unsigned i = 0; i < s->npend; i++) {
		struct pend *p = &s->pend[i];
		memcpy(s->rbuf + at, weft__bufring_data(p->br, p->bid), p->len);
		at += p->len;
		weft__bufring_put(p->br, p->bid);
	}
	ssize_t n = (ssize_t)s->pbytes;
	s->npend = 0;
	s->pbytes = 0;
	return n;
}

/* The multishot path of a fill: bytes added, 0 at EOF, -errno; 1 (as
 * -EAGAIN) when the caller should fall back to a plain receive. */
static ssize_t recv_multishot(weft_stream *s)
{
	weft_task *t = weft__task_self();
	weft__lock_acquire(&s->lk);
	for (;;) {
		if (s->npend) {
			ssize_t n = pend_take(s);
			weft__lock_release(&s->lk);
			return n;
		}
		if (s->rerr || s->reof) {
			int r = s->rerr;
			if (!s->rlost)
				s->rerr = 0;
			weft__lock_release(&s->lk);
			return r == -ENOBUFS ? -EAGAIN : r; /* EOF and a gap stay */
		}
		if (!t) {
			weft__lock_release(&s->lk);
			return -EPERM;
		}
		if (!s->rarmed && !recv_arm(s, weft__loop_self())) {
			weft__lock_release(&s->lk);
			return -EAGAIN;
		}
		weft__waiter w;
		int r = weft__wait_locked(t, &s->lk, &s->rwait, &w, 0);
		if (r < 0)
			return r; /* the op stays armed: bytes wait in pend */
		weft__lock_acquire(&s->lk);
	}
}

static void *cancel_on_loop(void *arg)
{
	weft__op *op = arg;
	weft__io_cancel(weft__loop_self(), op);
	return NULL;
}

/* Stop the multishot receive before the stream goes: cancel it on its own
 * loop (from another loop, through a task pinned there), wait for its
 * final CQE, give back what is pending. */
static void recv_stop(weft_stream *s)
{
	weft_task *t = weft__task_self();
	uint64_t saved = weft__uninterruptible_begin(t);
	weft__lock_acquire(&s->lk);
	weft_task *canceller = NULL;
	if (s->rarmed) {
		weft_loop *ol = s->rop.loop;
		if (weft__loop_self() == ol) {
			weft__io_cancel(ol, &s->rop);
		} else { /* rule 3: the cancel is submitted by the op's loop */
			weft_task_config tc;
			weft_task_config_init(&tc);
			tc.pin = (int)ol->index;
			tc.always_run = 1;
			if (weft_task_spawn_ex(&canceller, &tc, cancel_on_loop, &s->rop) < 0)
				shutdown(s->fd, SHUT_RD); /* no task: end it the hard way */
		}
	}
	while (s->rarmed) {
		weft__waiter w;
		weft__wait_locked(t, &s->lk, &s->rwait, &w, 0);
		weft__lock_acquire(&s->lk);
	}
	for (unsigned i = 0; i < s->npend; i++)
		weft__bufring_put(s->pend[i].br, s->pend[i].bid);
	s->npend = 0;
	weft__lock_release(&s->lk);
	if (canceller) { /* its SQE names &s->rop: it must be done before s goes */
		weft_task_join(canceller, NULL);
		weft_task_release(canceller);
	}
	weft__uninterruptible_end(t, saved);
	free(s->pend);
}

/* One receive into the buffer, growing it only while it is full (so a
 * stream with small messages keeps a small buffer).  Bytes added, 0 at
 * EOF, -errno. */
static ssize_t fill_once(weft_stream *s)
{
	if (s->eof)
		return 0;
	size_t want = s->rcap - s->rend;
	int r;
	if (want < RBUF_MIN / 4 || !s->rbuf) {
		r = rbuf_reserve(s, s->rbuf && s->rstart == 0 ? s->rcap : RBUF_MIN);
		if (r < 0)
			return r;
		want = s->rcap - s->rend;
	}
	uint64_t dl = s->rdeadline;
	if (s->cfg.read_timeout_ns) {
		uint64_t idle = weft_now_ns() + s->cfg.read_timeout_ns;
		dl = dl && dl < idle ? dl : idle;
	}
	weft_scope scope;
	if (dl && (r = weft_scope_enter_at(&scope, dl)) < 0)
		return r;
	ssize_t n = -EAGAIN;
	if (s->cfg.multishot && s->is_sock)
		n = recv_multishot(s);
	if (n == -EAGAIN)
		n = s->is_sock ? sock_recv(s, want)
			       : weft_read(s->fd, s->rbuf + s->rend, want, WEFT_OFF_CUR);
	if (dl)
		weft_scope_exit(&scope);
	atomic_store_explicit(&s->expect_empty, false, memory_order_relaxed);
	if (n > 0)
		s->rend += (size_t)n;
	else if (n == 0)
		s->eof = true;
	return n;
}

static int read_begin(weft_stream *s)
{
	if (!s)
		return -EINVAL;
	if (atomic_exchange_explicit(&s->reading, true, memory_order_acquire))
		return weft__misuse(-EBUSY, "two tasks reading one stream");
	return 0;
}

static ssize_t read_end(weft_stream *s, ssize_t r)
{
	atomic_store_explicit(&s->reading, false, memory_order_release);
	return r;
}

static size_t take(weft_stream *s, void *buf, size_t len)
{
	size_t n = rlen(s) < len ? rlen(s) : len;
	memcpy(buf, s->rbuf + s->rstart, n);
	s->rstart += n;
	if (s->rstart == s->rend)
		s->rstart = s->rend = 0;
	return n;
}

ssize_t weft_stream_read(weft_stream *s, void *buf, size_t len)
{
	int r = read_begin(s);
	if (r < 0)
		return r;
	if (!buf && len)
		return read_end(s, -EINVAL);
	if (!len)
		return read_end(s, 0);
	if (!rlen(s)) {
		ssize_t n = fill_once(s);
		if (n <= 0)
			return read_end(s, n);
	}
	return read_end(s, (ssize_t)take(s, buf, len));
}

ssize_t weft_stream_read_exact(weft_stream *s, void *buf, size_t len)
{
	int r = read_begin(s);
	if (r < 0)
		return r;
	if (!buf && len)
		return read_end(s, -EINVAL);
	/* Buffer the whole unit first: if input ends early, the partial
	 * bytes are still in the stream, not lost in the caller's buffer. */
	if ((r = rbuf_reserve(s, len > rlen(s) ? len - rlen(s) : 0)) < 0)
		return read_end(s, r);
	while (rlen(s) < len) {
		ssize_t n = fill_once(s);
		if (n <= 0)
			return read_end(s, n == 0 ? -ENODATA : n);
	}
	return read_end(s, (ssize_t)take(s, buf, len));
}

/* Where delim ends within the buffer (length of the unit), or 0. */
static size_t find_delim(const weft_stream *s, size_t from, const void *delim, size_t dlen)
{
	size_t n = rlen(s);
	if (!s->rbuf || n < dlen)
		return 0;
	const char *base = s->rbuf + s->rstart;
	if (from >= dlen)
		from -= dlen - 1; /* a delimiter may straddle old and new bytes */
	else
		from = 0;
	const char *hit = memmem(base + from, n - from, delim, dlen);
	return hit ? (size_t)(hit - base) + dlen : 0;
}

static ssize_t read_until(weft_stream *s, const void *delim, size_t dlen, const char **out,
			  bool partial_ok)
{
	int r = read_begin(s);
	if (r < 0)
		return r;
	if (!delim || !dlen || !out)
		return read_end(s, -EINVAL);
	size_t scanned = 0, unit;
	while (!(unit = find_delim(s, scanned, delim, dlen))) {
		if (rlen(s) > s->cfg.limit)
			return read_end(s, -EMSGSIZE);
		scanned = rlen(s);
		ssize_t n = fill_once(s);
		if (n < 0)
			return read_end(s, n);
		if (n == 0) {
			if (!rlen(s))
				return read_end(s, 0);
			if (!partial_ok)
				return read_end(s, -ENODATA);
			unit = rlen(s);
			break;
		}
	}
	if (unit > s->cfg.limit)
		return read_end(s, -EMSGSIZE);
	*out = s->rbuf + s->rstart;
	s->rstart += unit; /* bytes stay in place until the next read call */
	return read_end(s, (ssize_t)unit);
}

ssize_t weft_stream_read_until(weft_stream *s, const void *delim, size_t dlen,
			       const char **out)
{
	return read_until(s, delim, dlen, out, false);
}

ssize_t weft_stream_read_line(weft_stream *s, const char **out)
{
	return read_until(s, "\n", 1, out, true);
}

size_t weft_stream_buffered(weft_stream *s, const char **out)
{
	if (!s)
		return 0;
	if (out)
		*out = s->rbuf ? s->rbuf + s->rstart : NULL;
	return rlen(s);
}

ssize_t weft_stream_fill(weft_stream *s)
{
	int r = read_begin(s);
	if (r < 0)
		return r;
	if (rlen(s) >= s->cfg.limit)
		return read_end(s, -EMSGSIZE);
	return read_end(s, fill_once(s));
}

int weft_stream_consume(weft_stream *s, size_t n)
{
	if (!s || n > rlen(s))
		return -EINVAL;
	s->rstart += n;
	if (s->rstart == s->rend)
		s->rstart = s->rend = 0;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */
/* ------------------------------------------------------------------------ */

static size_t queued(const weft_stream *s)
{
	return s->out.len - s->out.off + s->next.len;
}

static int wbuf_append(wbuf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap - b->len < n)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void send_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags);

/* With lk held, on loop l's thread: send what remains of `out`. */
static void send_submit(weft_stream *s, weft_loop *l)
{
	s->op.cb = send_done;
	s->op.opcode = s->is_sock ? WEFT_OP_SEND : WEFT_OP_WRITE;
	s->op.a = (weft__op_args){ .fd = s->fd, .p = s->out.p + s->out.off,
				   .len = s->out.len - s->out.off, .off = -1 };
	if (unlikely(weft__op_arm(l, &s->op) < 0)) { /* cannot happen after a flush */
		s->werr = -EBUSY;
		s->sending = false;
		weft__waitlist_fire_all(&s->waiters);
		return;
	}
	s->sending = true;
}

static void send_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	weft_stream *s = (weft_stream *)((char *)op - offsetof(weft_stream, op));
	weft__lock_acquire(&s->lk);
	s->sending = false;
	if (s->aborting) {
		s->out.len = s->out.off = s->next.len = 0;
	} else if (res == -EAGAIN || res == -EINTR) {
		send_submit(s, l);
	} else if (res <= 0) {
		s->werr = res < 0 ? res : -EIO;
		s->out.len = s->out.off = s->next.len = 0;
	} else {
		s->out.off += (size_t)res;
		if (s->out.off == s->out.len) {
			wbuf t = s->out; /* in flight no more: swap in `next` */
			s->out = s->next;
			s->out.off = 0;
			s->next = t;
			s->next.len = s->next.off = 0;
		}
		if (s->out.len > s->out.off)
			send_submit(s, l);
	}
	if (s->paused && queued(s) <= s->cfg.low_water)
		s->paused = false;
	if (!s->sending || !s->paused)
		weft__waitlist_fire_all(&s->waiters);
	weft__lock_release(&s->lk);
}

ssize_t weft_stream_write(weft_stream *s, const void *buf, size_t len)
{
	if (!s || (!buf && len))
		return -EINVAL;
	weft_loop *l = weft__loop_self();
	if (!l || !l->current)
		return weft__misuse(-EPERM, "weft_stream_write outside a task");
	weft__lock_acquire(&s->lk);
	int r = s->werr ? s->werr : s->wshut ? -EPIPE : 0;
	if (!r && len) {
		r = wbuf_append(s->sending ? &s->next : &s->out, buf, len);
		if (!r && !s->sending)
			send_submit(s, l);
		atomic_store_explicit(&s->expect_empty, true, memory_order_relaxed);
		if (queued(s) > s->cfg.high_water)
			s->paused = true;
	}
	weft__lock_release(&s->lk);
	return r < 0 ? r : (ssize_t)len;
}

/* Wait, under lk, until `done(s)`; returns with lk released: 0, the sticky
 * error, or the wait's -ECANCELED/-ETIMEDOUT. */
static int wait_writer(weft_stream *s, bool (*done)(const weft_stream *))
{
	weft_task *t = weft__task_self();
	if (!t)
		return -EPERM;
	int r = weft__checkpoint(t);
	if (r < 0)
		return r;
	weft__lock_acquire(&s->lk);
	while (!s->werr && !done(s)) {
		weft__waiter w;
		r = weft__wait_locked(t, &s->lk, &s->waiters, &w, 0);
		if (r < 0)
			return r;
		weft__lock_acquire(&s->lk);
	}
	r = s->werr;
	weft__lock_release(&s->lk);
	return r;
}

static bool unpaused(const weft_stream *s)
{
	return !s->paused;
}

static bool idle_writer(const weft_stream *s)
{
	return !s->sending;
}

int weft_stream_drain(weft_stream *s)
{
	return s ? wait_writer(s, unpaused) : -EINVAL;
}

int weft_stream_flush(weft_stream *s)
{
	return s ? wait_writer(s, idle_writer) : -EINVAL;
}

int weft_stream_shutdown(weft_stream *s)
{
	if (!s)
		return -EINVAL;
	weft__lock_acquire(&s->lk); /* first, so no write slips in behind */
	s->wshut = true;
	weft__lock_release(&s->lk);
	int r = weft_stream_flush(s);
	if (r < 0)
		return r;
	if (s->is_sock && shutdown(s->fd, SHUT_WR) < 0)
		return -errno;
	return 0;
}

size_t weft_stream_pending(weft_stream *s)
{
	if (!s)
		return 0;
	weft__lock_acquire(&s->lk);
	size_t n = queued(s);
	weft__lock_release(&s->lk);
	return n;
}

/* The flush was cut short: stop the in-flight send and wait for its CQE
 * (rule 4) without being interrupted again. */
static void abort_send(weft_stream *s)
{
	weft_task *t = weft__task_self();
	weft__lock_acquire(&s->lk);
	s->next.len = 0; /* nothing more is queued; `out` may be in flight */
	if (!s->sending)
		s->out.len = s->out.off = 0;
	s->aborting = s->wshut = true;
	bool sending = s->sending;
	weft__lock_release(&s->lk);
	if (!sending)
		return;
	if (s->is_sock)
		shutdown(s->fd, SHUT_RDWR); /* fails the pending send at once */
	uint64_t saved = weft__uninterruptible_begin(t);
	wait_writer(s, idle_writer);
	weft__uninterruptible_end(t, saved);
}

int weft_stream_close(weft_stream *s)
{
	if (!s)
		return -EINVAL;
	if (!weft__task_self())
		return weft__misuse(-EPERM, "weft_stream_close outside a task");
	int r = weft_stream_flush(s);
	if (r < 0)
		abort_send(s);
	if (s->cfg.multishot)
		recv_stop(s);
	/* The last send_done may still hold lk after waking us. */
	weft__lock_acquire(&s->lk);
	weft__lock_release(&s->lk);
	if (s->cfg.keep_fd)
		weft__fd_forget(s->fd); /* the caller's again: trust nothing */
	else
		weft__fd_close(s->fd);
	free(s->rbuf);
	free(s->out.p);
	free(s->next.p);
	free(s);
	return r;
}
