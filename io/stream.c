/*
 * Buffered streams (weft/stream.h).
 *
 * The read side belongs to one task at a time and needs no lock: it is a
 * buffer [rstart, rend) filled by a receive.  An idle stream holds no
 * buffer: when every byte has been consumed and the reader waits for more,
 * the buffer goes back first (to the allocator, or to the loop's
 * provided-buffer ring it came from), and the receive takes one only once
 * bytes are there (WEFT_OPH_BUFSEL, io/io.h).  On io_uring that buffer is
 * one of the ring's, adopted as is (no copy) until it is consumed or more
 * room is needed; on epoll a malloc'd one, a 4 KiB one from and back to
 * the loop's cache (weft__rxbuf_get, io/bufring.c).  A receive that waits
 * with part of a unit buffered (a line cut in two) names the stream's own
 * heap buffer, as does every read of a pipe or tty (they keep theirs).
 * The receive size adapts (rsize, rsize_adapt): 4 KiB while receives come
 * back small, doubling while they fill their buffers, up to cfg.max_read.
 * Above 4 KiB (bulk mode) a receive first goes, without waiting, into a
 * malloc'd buffer of that size, and only an empty socket sends it to the
 * no-buffer wait; a read into a caller's buffer of at least that size
 * receives straight into it (sock_recv_direct).
 *
 * The write side is shared: any task appends, and the send completes in the
 * scheduler of whichever loop submitted it.  Two buffers keep the bytes the
 * kernel is reading immutable: `out` is in flight (never reallocated while
 * a send is pending), `next` collects writes meanwhile; when `out` is done
 * they swap.  The send op is owned by the stream, not by a task, so a writer
 * that is cancelled in drain loses nothing and frees nothing.  The spinlock
 * `lk` guards both buffers and the waiters of drain/flush.  Once everything
 * queued is sent, both buffers are freed: an idle writer holds none.
 *
 * Threads: everything but open, config_init, fd and pending is task-only
 * (stream_check): a stream belongs to its tasks.
 */
#include "io.h"
#include "weft/stream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* tcp_info with tcpi_bytes_acked (glibc's has none) */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct wbuf {
	char *p;
	size_t len, off, cap;
} wbuf;

/* The multishot receive (cfg.multishot, sockets): a stream-owned op on
 * one loop posts provided buffers; the reader, on any loop, takes them.
 * All of it under the stream's lk: the op completes in that loop's
 * scheduler.  Allocated only by streams that ask for it. */
struct msrecv {
	weft_stream *s;
	weft__op rop;
	bool rarmed;        /* rop in flight */
	bool rcapped;       /* too much pending: rop is being cancelled */
	bool reof;
	bool rlost;         /* received bytes were dropped: rerr stays */
	bool rlimited;      /* rop was armed with a byte limit */
	bool rplain;        /* over the cap without a kernel limit: plain
			       receives from now on */
	int rerr;           /* the multishot's error, for the reader */
	unsigned rseen;     /* the ring's size when rop was armed */
	struct pend *pend;  /* received, not yet taken */
	unsigned npend, cappend;
	size_t pbytes;
	weft__waitlist rwait;
};

struct weft_stream {
	int fd;
	bool is_sock;
	bool bytestream;    /* a SOCK_STREAM socket */
	_Atomic bool reading; /* a read call is under way (one reader) */
	bool eof;
	_Atomic bool expect_empty; /* written since the last receive: a
				      hint from any writer, so relaxed */
	bool in_storage;    /* weft_stream_open_in: the caller's memory */
	uint16_t rbid;      /* rbuf is provided buffer rbid of rring */
	weft_stream_config cfg;
	uint64_t rdeadline; /* weft_stream_read_deadline, WEFT_FOREVER none */
	char *rbuf;         /* NULL while empty and idle */
	weft__bufring *rring; /* rbuf's ring; NULL: malloc'd */
	size_t rcap, rstart, rend;
	size_t rsize;       /* the next receive's size: RBUF_MIN .. rmax */
	size_t rmax;        /* cfg.max_read */
	/* weft_stream_end_input.  The reader publishes itself in rwaiter
	 * (low bit: nothing buffered) while a receive waits, then reads
	 * rstop; end_input stores rstop, then takes rwaiter under lk to
	 * interrupt the reader.  Both sides store before they load (seq_cst),
	 * so one of them sees the other. */
	_Atomic int rstop;          /* 0, WEFT_END_IDLE, WEFT_END_NOW */
	_Atomic uintptr_t rwaiter;

	weft__lock lk;
	bool sending;       /* `op` is in flight */
	bool paused;        /* over high water, not yet back to low water */
	bool wshut;         /* shut down for writing */
	bool wfin;          /* a shutdown's SHUT_WR is owed: sent when the
			       writer is next idle, whoever waits or not */
	int wfin_rc;        /* the last SHUT_WR's result (0 or -errno) */
	bool aborting;      /* close gave up: drop what is queued */
	_Atomic bool aborted; /* weft_stream_abort: reset, every call fails */
	int werr;           /* sticky send error, or -ETIMEDOUT (write limits) */
	_Atomic bool zc_refused; /* the socket has no zero-copy (AF_UNIX) */
	uint64_t wdeadline; /* weft_stream_write_deadline, WEFT_FOREVER none */
	uint64_t wprog_ns;  /* when the peer last took bytes (kept only with
			       a write_timeout_ns) */
	wbuf out, next;     /* freed whenever all three are empty */
	struct wresv *rv;   /* reservations: from the first reserve, given
			       back with the write buffers */
	struct zcsend *zc;  /* write_zc's send, from its first zero-copy
			       one; NULL before */
	weft__waitlist waiters; /* drain and flush */
	struct wsend *send; /* the send op, while bytes are queued; NULL when
			       idle (an idle stream holds no op either) */
	struct msrecv *ms;  /* cfg.multishot on a socket, else NULL */
};

/* A reservation (weft_stream_reserve), and what is written behind it:
 * only streams that reserve carry it. */
struct wresv {
	wbuf hold;          /* written behind an open reservation, then
			       until `next` has gone out */
	char *buf;          /* the buffer (out's or next's) holding the open
			       reservation; NULL: none */
	size_t at, len;     /* where in it, how long */
	weft_task *task;    /* who holds it */
};

/* The open reservation's buffer, or NULL. */
static inline char *resv_buf(const weft_stream *s)
{
	return unlikely(s->rv != NULL) ? s->rv->buf : NULL;
}

static inline size_t hold_len(const weft_stream *s)
{
	return unlikely(s->rv != NULL) ? s->rv->hold.len : 0;
}

/* The send of what is queued (`out`): a callback op owned by the stream,
 * allocated when bytes are queued and freed once all are sent. */
struct wsend {
	weft_stream *s;
	weft__op op;
};

/* weft_stream_write_zc's send: a callback op (its task waits for the
 * notification itself), under the stream's lk.  Allocated by the first
 * zero-copy send, so streams that never make one do not carry it. */
struct zcsend {
	weft_stream *s;
	weft__op op;
	int32_t res;        /* its result */
	bool done;          /* its last CQE came: the kernel is done with it */
};

struct pend {
	weft__bufring *br;
	uint16_t bid;
	uint32_t len;
};

/* Stop receiving past this much pending per stream (TCP backpressure
 * instead), so one fast peer cannot hold the loop's buffers.  Where the
 * kernel takes a byte limit for a multishot receive (6.17), the receive is
 * armed with PEND_LIMIT and ends by itself: each completion takes at most
 * one 4 KiB buffer, so the last may pass the limit by 4095 bytes and the
 * pending bytes stay within PEND_CAP, however late the loop reaps them.
 * Before 6.17 the callback cancels the receive once the cap is reached,
 * and the kernel may have posted many more completions by the time it
 * takes effect (with many streams on one loop, hundreds of KiB each, up to
 * the loop's whole ring); such a stream receives with plain receives from
 * then on.  PEND_BUFS is enforced by cancelling on every kernel: small
 * segments arriving one by one each hold a whole buffer. */
#define PEND_CAP (64u * 1024u)
#define PEND_LIMIT (PEND_CAP - (WEFT__BUFRING_SIZE - 1))
#define PEND_BUFS 16u /* each completion holds a whole 4 KiB buffer */

#define RBUF_MIN 4096u
#define RBUF_MAX_DEFAULT (256u * 1024u) /* weft_stream_config.max_read */

void weft_stream_config_init(weft_stream_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->limit = 64 * 1024;
	cfg->high_water = 64 * 1024;
	cfg->low_water = 16 * 1024;
	cfg->read_timeout_ns = WEFT_FOREVER;
	cfg->write_timeout_ns = WEFT_FOREVER;
	cfg->zc_threshold = WEFT_STREAM_ZC_DEFAULT;
	cfg->max_read = RBUF_MAX_DEFAULT;
}

_Static_assert(sizeof(weft_stream_config) == 64, "weft_stream_config changed size");

_Static_assert(sizeof(struct weft_stream) <= sizeof(weft_stream_storage),
	       "weft_stream outgrew weft_stream_storage (an ABI change)");
_Static_assert(_Alignof(struct weft_stream) <= _Alignof(weft_stream_storage),
	       "weft_stream_storage is not aligned enough");

/* weft_stream_open(_in): mem NULL allocates. */
static int stream_open(weft_stream_storage *mem, weft_stream **out, int fd,
		       const weft_stream_config *cfg)
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
	weft_stream *s = mem ? memset(mem, 0, sizeof(*s)) : calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->in_storage = mem != NULL;
	struct stat st;
	s->is_sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	if (c.multishot && s->is_sock) {
		if (!(s->ms = calloc(1, sizeof(*s->ms)))) {
			if (!mem)
				free(s);
			return -ENOMEM;
		}
		s->ms->s = s;
	}
	weft__fd_forget(fd); /* a new owner: no loop trusts an old registration */
	s->fd = fd;
	int type = 0;
	socklen_t tl = sizeof(type);
	s->bytestream = s->is_sock && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
			type == SOCK_STREAM;
	s->cfg = c;
	s->rmax = !c.max_read ? RBUF_MAX_DEFAULT : c.max_read < RBUF_MIN ? RBUF_MIN : c.max_read;
	s->rsize = RBUF_MIN;
	s->rdeadline = WEFT_FOREVER;
	s->wdeadline = WEFT_FOREVER;
	*out = s;
	return 0;
}

int weft_stream_open(weft_stream **out, int fd, const weft_stream_config *cfg)
{
	return stream_open(NULL, out, fd, cfg);
}

int weft_stream_open_in(weft_stream_storage *mem, weft_stream **out, int fd,
			const weft_stream_config *cfg)
{
	return mem ? stream_open(mem, out, fd, cfg) : -EINVAL;
}

/* The check of every call but open, config_init, fd and pending: a stream
 * belongs to its tasks (weft/stream.h, "Threads"). */
static int stream_check(const weft_stream *s)
{
	if (!s)
		return -EINVAL;
	if (unlikely(!weft__task_self()))
		return weft__misuse(-EPERM, "a weft_stream call outside a task");
	return 0;
}

int weft_stream_read_deadline(weft_stream *s, uint64_t deadline_ns)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
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

/* Give the read buffer back (to its ring, or to the loop's cache or the
 * allocator: weft__rxbuf_put). */
static void rbuf_drop(weft_stream *s)
{
	if (s->rring)
		weft__bufring_put(s->rring, s->rbid);
	else
		weft__rxbuf_put(s->rbuf, s->rcap);
	s->rbuf = NULL;
	s->rring = NULL;
	s->rcap = s->rstart = s->rend = 0;
}

/* Room for at least `want` more bytes after rend: compact, then grow.  A
 * provided buffer is never written to: its bytes move to a malloc'd one
 * and it goes back to its ring. */
static int rbuf_reserve(weft_stream *s, size_t want)
{
	if (!s->rring) {
		if (s->rcap - s->rend >= want)
			return 0;
		if (s->rstart) {
			memmove(s->rbuf, s->rbuf + s->rstart, rlen(s));
			s->rend -= s->rstart;
			s->rstart = 0;
			if (s->rcap - s->rend >= want)
				return 0;
		}
	}
	size_t have = rlen(s);
	if (want > SIZE_MAX / 4 - have)
		return -ENOMEM;
	size_t cap = s->rcap && !s->rring ? s->rcap : RBUF_MIN;
	while (cap - have < want)
		cap *= 2;
	if (!s->rring) { /* compacted: rstart is 0 */
		char *p = realloc(s->rbuf, cap);
		if (!p)
			return -ENOMEM;
		s->rbuf = p;
		s->rcap = cap;
		return 0;
	}
	char *p = malloc(cap);
	if (!p)
		return -ENOMEM;
	memcpy(p, s->rbuf + s->rstart, have);
	weft__bufring_put(s->rring, s->rbid);
	s->rring = NULL;
	s->rbuf = p;
	s->rcap = cap;
	s->rstart = 0;
	s->rend = have;
	return 0;
}

/* Free space after rend for a receive into the stream's own buffer: at
 * least a quarter of RBUF_MIN, growing only while the buffer is full (so a
 * stream with small messages keeps a small buffer). */
static int rbuf_room(weft_stream *s)
{
	if (s->rring)
		return rbuf_reserve(s, RBUF_MIN / 4);
	if (s->rbuf && s->rcap - s->rend >= RBUF_MIN / 4)
		return 0;
	return rbuf_reserve(s, s->rbuf && s->rstart == 0 ? s->rcap : RBUF_MIN);
}

/* The receive size follows the traffic: a receive that filled its buffer
 * doubles the next one (up to rmax), one that came back under half of it
 * halves it (down to RBUF_MIN), so request/response traffic keeps 4 KiB
 * receives and a bulk transfer reaches rmax in a few. */
static void rsize_adapt(weft_stream *s, ssize_t n, size_t room)
{
	if (n <= 0)
		return;
	if ((size_t)n >= room) {
		if (s->rsize < s->rmax)
			s->rsize = s->rsize * 2 < s->rmax ? s->rsize * 2 : s->rmax;
	} else if ((size_t)n < s->rsize / 2 && s->rsize > RBUF_MIN) {
		s->rsize = s->rsize / 2 > RBUF_MIN ? s->rsize / 2 : RBUF_MIN;
	}
}

/* sock_recv's bulk mode (rsize over RBUF_MIN): the receive that does not
 * wait, into a buffer of rsize.  -EAGAIN: go on with the usual receive
 * (op's length set for it). */
static __attribute__((noinline)) ssize_t recv_bulk(weft_stream *s, weft__op *op, bool quiet)
{
	if (s->rbuf && !rlen(s) && quiet) /* kept by fill_once; nothing expected */
		rbuf_drop(s);
	if (quiet || rlen(s))
		return -EAGAIN;
	if (!s->rbuf) {
		if (!(s->rbuf = malloc(s->rsize)))
			return -ENOMEM;
		s->rcap = s->rsize;
	}
	s->rstart = s->rend = 0;
	weft__op b = *op;
	b.a.p = s->rbuf;
	b.a.len = s->rcap;
	b.a.flags = MSG_DONTWAIT;
	int n = weft__op_run(&b);
	if (n != -EAGAIN) {
		rsize_adapt(s, n, s->rcap);
		return n;
	}
	rbuf_drop(s); /* nothing there: wait holding none */
	s->rsize = s->rsize / 2 > RBUF_MIN ? s->rsize / 2 : RBUF_MIN;
	op->a.len = s->rsize;
	return -EAGAIN;
}

/* A receive on the socket.  With nothing buffered it names no buffer
 * (WEFT_OPH_BUFSEL): the backend takes one once bytes are there, and the
 * stream adopts it.  With part of a unit buffered, it receives into the
 * stream's own buffer after it.  After this stream has sent something and
 * drained its input, the peer's next bytes are usually not there yet
 * (request/response): POLL_FIRST skips the receive attempt that would fail
 * and arms the poll at once.
 * Bulk mode (rsize over RBUF_MIN: the last receives filled their buffers):
 * the bytes are probably there already, so the stream first receives into
 * a malloc'd buffer of rsize without waiting (recv_bulk: MSG_DONTWAIT; the
 * empty one fill_once kept, or a new one); only if the socket is empty
 * does that buffer go and the no-buffer wait follow.  A large receive
 * never waits holding its buffer. */
static ssize_t sock_recv(weft_stream *s)
{
	weft__op op = { .opcode = WEFT_OP_RECV, .a = { .fd = s->fd, .len = s->rsize } };
	op.hints = (s->cfg.keep_fd ? 0 : WEFT_OPH_OWNED) | (s->bytestream ? WEFT_OPH_BYTESTREAM : 0);
	bool quiet = atomic_load_explicit(&s->expect_empty, memory_order_relaxed);
	if (quiet)
		op.hints |= WEFT_OPH_POLL_FIRST;
	if (unlikely(s->rsize > RBUF_MIN)) {
		ssize_t n = recv_bulk(s, &op, quiet);
		if (n != -EAGAIN)
			return n;
	}
	if (!s->rbuf) {
		op.hints |= WEFT_OPH_BUFSEL;
		int n = weft__op_run(&op);
		if (n > 0) {
			s->rbuf = op.a.p;
			s->rring = op.a.p3;
			s->rbid = (uint16_t)op.a.off;
			s->rcap = s->rring ? WEFT__BUFRING_SIZE : op.a.len;
			rsize_adapt(s, n, s->rcap);
		}
		return n;
	}
	int r = rbuf_room(s);
	if (r < 0)
		return r;
	op.a.p = s->rbuf + s->rend;
	op.a.len = s->rcap - s->rend;
	int n = weft__op_run(&op);
	rsize_adapt(s, n, op.a.len);
	return n;
}

/* A read of a pipe or tty, into the stream's own buffer. */
static ssize_t fd_read(weft_stream *s)
{
	int r = rbuf_room(s);
	if (r < 0)
		return r;
	return weft_read(s->fd, s->rbuf + s->rend, s->rcap - s->rend, WEFT_OFF_CUR);
}

static void recv_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	struct msrecv *m = (struct msrecv *)((char *)op - offsetof(struct msrecv, rop));
	weft_stream *s = m->s;
	weft__bufring *br = l->bufring;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	if (res > 0 && (flags & WEFT__OP_BUFFER)) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		if (m->rlost) { /* nothing after the gap may be read */
			weft__bufring_put(br, bid);
			goto out;
		}
		if (m->npend == m->cappend) {
			unsigned cap = m->cappend ? m->cappend * 2 : 8;
			struct pend *p = realloc(m->pend, cap * sizeof(*p));
			if (!p) {
				/* No room to keep these bytes: the input has a gap
				 * from here, so it ends here, with an error every
				 * later read returns (what came before is still
				 * read first).  Stop receiving. */
				weft__bufring_put(br, bid);
				m->rlost = true;
				m->rerr = -EIO;
				if ((flags & WEFT__OP_MORE) && !m->rcapped) {
					weft__io_cancel(l, op);
					m->rcapped = true;
				}
				goto out;
			}
			m->pend = p;
			m->cappend = cap;
		}
		m->pend[m->npend++] = (struct pend){ br, bid, (uint32_t)res };
		m->pbytes += (size_t)res;
		if (m->pbytes >= PEND_CAP && !m->rlimited)
			m->rplain = true; /* the cap came too late to hold */
		if ((m->pbytes >= PEND_CAP || m->npend >= PEND_BUFS) && !m->rcapped &&
		    (flags & WEFT__OP_MORE)) {
			weft__io_cancel(l, op);
			m->rcapped = true;
		}
	} else if (res == -EINVAL && m->rlimited && !(flags & WEFT__OP_MORE)) {
		l->recv_nolimit = true; /* before 6.17: the reader arms again */
	} else {
		if (flags & WEFT__OP_BUFFER) /* end of input may come in one */
			weft__bufring_put(br, (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT));
		if (res == 0)
			m->reof = true;
		else if (res < 0 && res != -ECANCELED && !m->rlost)
			m->rerr = res; /* -ENOBUFS: the reader falls back once */
		if (res == -ENOBUFS) /* for the next arming */
			weft__bufring_grow(br, m->rseen);
	}
out:
	if (!(flags & WEFT__OP_MORE))
		m->rarmed = m->rcapped = false;
	weft__waitlist_fire_all(&m->rwait, &wk);
	weft__unlock_wake(&s->lk, &wk);
}

/* With lk held, on loop l: arm the multishot receive. */
static bool recv_arm(struct msrecv *m, weft_loop *l)
{
	weft__bufring *br = weft__bufring_get(l);
	if (!br)
		return false; /* no buffer ring (or epoll): plain receives */
	m->rseen = weft__bufring_count(br);
	m->rop.cb = recv_done;
	m->rop.opcode = WEFT_OP_RECV_MULTI;
	m->rop.a.fd = m->s->fd;
	/* Armed only with nothing pending (recv_multishot). */
	m->rlimited = !l->recv_nolimit;
	m->rop.a.len = m->rlimited ? PEND_LIMIT : 0;
	if (weft__op_arm(l, &m->rop) < 0)
		return false;
	m->rarmed = true;
	return true;
}

/* With lk held: take every pending buffer into the read buffer: the one
 * buffer of an empty stream is adopted as is, more are copied and given
 * back.  Bytes added, or -ENOMEM. */
static ssize_t pend_take(weft_stream *s)
{
	struct msrecv *m = s->ms;
	if (!s->rbuf && m->npend == 1) {
		s->rbuf = (char *)weft__bufring_data(m->pend[0].br, m->pend[0].bid);
		s->rring = m->pend[0].br;
		s->rbid = m->pend[0].bid;
		s->rcap = WEFT__BUFRING_SIZE;
	} else {
		int r = rbuf_reserve(s, m->pbytes);
		if (r < 0)
			return r;
		size_t at = s->rend; /* the caller advances rend */
		for (unsigned i = 0; i < m->npend; i++) {
			struct pend *p = &m->pend[i];
			memcpy(s->rbuf + at, weft__bufring_data(p->br, p->bid), p->len);
			at += p->len;
			weft__bufring_put(p->br, p->bid);
		}
	}
	ssize_t n = (ssize_t)m->pbytes;
	m->npend = 0;
	m->pbytes = 0;
	return n;
}

/* The multishot path of a fill: bytes added, 0 at EOF, -errno; 1 (as
 * -EAGAIN) when the caller should fall back to a plain receive. */
static ssize_t recv_multishot(weft_stream *s)
{
	struct msrecv *m = s->ms;
	weft_task *t = weft__task_self();
	weft__lock_acquire(&s->lk);
	for (;;) {
		if (m->npend) {
			ssize_t n = pend_take(s);
			/* A receive that ended at its byte limit goes on at
			 * once: the next bytes land while the reader works,
			 * and the stream still holds at most what it took
			 * plus PEND_CAP. */
			if (n > 0 && !m->rarmed && m->rlimited && !m->reof && !m->rerr)
				recv_arm(m, weft__loop_self());
			weft__lock_release(&s->lk);
			return n;
		}
		if (m->rerr || m->reof) {
			int r = m->rerr;
			if (!m->rlost)
				m->rerr = 0;
			weft__lock_release(&s->lk);
			return r == -ENOBUFS ? -EAGAIN : r; /* EOF and a gap stay */
		}
		if (!m->rarmed && (m->rplain || !recv_arm(m, weft__loop_self()))) {
			weft__lock_release(&s->lk);
			return -EAGAIN;
		}
		weft__waiter w;
		weft__wait_io(t, WEFT_OP_RECV_MULTI, s->fd, &m->rop);
		int r = weft__wait_locked(t, &s->lk, &m->rwait, &w, 0);
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
static void recv_stop(weft_stream *s, bool keep)
{
	struct msrecv *m = s->ms;
	weft_task *t = weft__task_self();
	uint64_t saved = weft__uninterruptible_begin(t);
	weft__lock_acquire(&s->lk);
	weft_task *canceller = NULL;
	if (m->rarmed) {
		weft_loop *ol = m->rop.loop;
		if (weft__loop_self() == ol) {
			weft__io_cancel(ol, &m->rop);
		} else { /* rule 3: the cancel is submitted by the op's loop */
			weft_task_config tc;
			weft_task_config_init(&tc);
			tc.pin = (int)ol->index;
			tc.always_run = 1;
			if (weft_task_spawn_ex(&canceller, &tc, cancel_on_loop, &m->rop) < 0)
				shutdown(s->fd, SHUT_RD); /* no task: end it the hard way */
		}
	}
	while (m->rarmed) {
		weft__waiter w;
		weft__wait_io(t, WEFT_OP_RECV_MULTI, s->fd, &m->rop);
		weft__wait_locked(t, &s->lk, &m->rwait, &w, 0);
		weft__lock_acquire(&s->lk);
	}
	ssize_t kept = 0;
	if (keep && m->npend && (kept = pend_take(s)) > 0)
		s->rend += (size_t)kept;
	for (unsigned i = 0; i < m->npend; i++) /* closing, or no memory: gone */
		weft__bufring_put(m->pend[i].br, m->pend[i].bid);
	m->npend = 0;
	m->pbytes = 0;
	if (keep && m->reof)
		s->eof = true;
	weft__lock_release(&s->lk);
	if (canceller) { /* its SQE names &m->rop: it must be done before m goes */
		weft_task_join(canceller, NULL);
		weft_task_release(canceller);
	}
	weft__uninterruptible_end(t, saved);
	if (!keep) {
		free(m->pend);
		m->pend = NULL;
		m->cappend = 0;
	}
}

/* Input was ended (rstop set): may this wait go on?  0, or -ESHUTDOWN. */
static __attribute__((noinline)) int input_stopped(weft_stream *s, bool idle)
{
	int stop = atomic_load_explicit(&s->rstop, memory_order_relaxed);
	if (stop == WEFT_END_IDLE && !idle)
		return 0; /* in the middle of a unit: it goes on */
	if (s->ms) { /* received, not yet taken: buffered too */
		weft__lock_acquire(&s->lk);
		bool pending = s->ms->npend || s->ms->reof || s->ms->rerr;
		weft__lock_release(&s->lk);
		if (pending)
			return 0;
	}
	return -ESHUTDOWN;
}

/* A receive is about to wait: publish the reader (the exchange is the
 * full fence the handshake needs), then check whether input was ended. */
static inline int input_wait_begin(weft_stream *s, weft_task *t)
{
	bool idle = !rlen(s);
	atomic_exchange_explicit(&s->rwaiter, (uintptr_t)t | idle, memory_order_seq_cst);
	if (likely(!atomic_load_explicit(&s->rstop, memory_order_seq_cst)))
		return 0;
	return input_stopped(s, idle);
}

/* end_input took rwaiter: it interrupts t (or is about to, under lk).  Let
 * it finish, then clear the interruption so that no later wait sees it.
 * An interrupted receive (-EINTR) returns -ESHUTDOWN. */
static __attribute__((noinline)) ssize_t input_interrupted(weft_stream *s, weft_task *t,
							   ssize_t n)
{
	weft__lock_acquire(&s->lk);
	weft__lock_release(&s->lk);
	weft__task_interrupt_clear(t);
	return n == -EINTR ? -ESHUTDOWN : n;
}

/* The receive is over; one that completed as the interruption came keeps
 * its bytes. */
static inline ssize_t input_wait_end(weft_stream *s, weft_task *t, ssize_t n)
{
	if (likely(atomic_exchange_explicit(&s->rwaiter, 0, memory_order_acq_rel)))
		return n;
	return input_interrupted(s, t, n);
}

int weft_stream_end_input(weft_stream *s, int how)
{
	if (!s || (how != WEFT_END_IDLE && how != WEFT_END_NOW))
		return -EINVAL;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__stream_end_input_to(s, how, &wk);
	weft__wakes_flush(&wk);
	return 0;
}

/* weft_stream_end_input with the reader's wake recorded in wk, for a
 * caller that holds a lock of its own (a server's). */
void weft__stream_end_input_to(weft_stream *s, int how, weft__wakes *wk)
{
	weft__lock_acquire(&s->lk);
	if (how > atomic_load_explicit(&s->rstop, memory_order_relaxed))
		atomic_store_explicit(&s->rstop, how, memory_order_seq_cst);
	uintptr_t w = atomic_load_explicit(&s->rwaiter, memory_order_seq_cst);
	if (w && (how == WEFT_END_NOW || (w & 1)) &&
	    atomic_compare_exchange_strong_explicit(&s->rwaiter, &w, 0, memory_order_acq_rel,
						    memory_order_relaxed))
		weft__task_interrupt_to((weft_task *)(w & ~(uintptr_t)1), wk);
	weft__lock_release(&s->lk);
}

/* A receive straight into the caller's buffer (weft_stream_read with
 * nothing buffered and room for a whole receive): no copy out, and the
 * stream holds no buffer of its own while it waits. */
static ssize_t sock_recv_direct(weft_stream *s, void *dst, size_t len)
{
	weft__op op = { .opcode = WEFT_OP_RECV, .a = { .fd = s->fd, .p = dst, .len = len } };
	op.hints = (s->cfg.keep_fd ? 0 : WEFT_OPH_OWNED) | (s->bytestream ? WEFT_OPH_BYTESTREAM : 0);
	if (atomic_load_explicit(&s->expect_empty, memory_order_relaxed))
		op.hints |= WEFT_OPH_POLL_FIRST;
	int n = weft__op_run(&op);
	rsize_adapt(s, n, s->rsize);
	return n;
}

/* One receive: into the buffer (dst NULL: bytes added), or into dst (a
 * socket stream without multishot, nothing buffered).  0 at EOF, -errno.
 * A socket stream whose bytes were all consumed gives its buffer back
 * first: it waits holding none, and takes one when bytes come (sock_recv,
 * pend_take). */
static ssize_t fill_once_to(weft_stream *s, void *dst, size_t len)
{
	/* In bulk mode an empty malloc'd buffer of the size wanted stays for
	 * the receive attempt that does not wait (recv_bulk). */
	if (s->is_sock && s->rbuf && !rlen(s) &&
	    (dst || s->rring || s->rsize == RBUF_MIN || s->rcap < s->rsize || s->ms))
		rbuf_drop(s);
	if (s->eof)
		return 0;
	weft_task *t = weft__task_self();
	int r = input_wait_begin(s, t);
	if (r < 0)
		return input_wait_end(s, t, r);
	uint64_t dl = s->rdeadline; /* public deadlines: WEFT_FOREVER none */
	if (s->cfg.read_timeout_ns != WEFT_FOREVER) {
		uint64_t idle = weft__deadline_add(weft_now_ns(), s->cfg.read_timeout_ns);
		dl = dl < idle ? dl : idle;
	}
	weft_scope scope;
	if (dl != WEFT_FOREVER && (r = weft_scope_enter_at(&scope, dl)) < 0)
		return input_wait_end(s, t, r);
	ssize_t n = -EAGAIN;
	if (dst)
		n = sock_recv_direct(s, dst, len);
	else if (s->ms)
		n = recv_multishot(s);
	if (n == -EAGAIN && !dst)
		n = s->is_sock ? sock_recv(s) : fd_read(s);
	if (dl != WEFT_FOREVER)
		weft_scope_exit(&scope);
	n = input_wait_end(s, t, n);
	atomic_store_explicit(&s->expect_empty, false, memory_order_relaxed);
	if (n > 0 && !dst)
		s->rend += (size_t)n;
	else if (n == 0)
		s->eof = true;
	return n;
}

static ssize_t fill_once(weft_stream *s)
{
	return fill_once_to(s, NULL, 0);
}

static int read_begin(weft_stream *s)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	if (atomic_exchange_explicit(&s->reading, true, memory_order_acquire))
		return weft__misuse(-EBUSY, "two tasks reading one stream");
	if (unlikely(atomic_load_explicit(&s->aborted, memory_order_acquire))) {
		atomic_store_explicit(&s->reading, false, memory_order_release);
		return -ECONNABORTED;
	}
	return 0;
}

static ssize_t read_end(weft_stream *s, ssize_t r)
{
	atomic_store_explicit(&s->reading, false, memory_order_release);
	if (unlikely(r <= 0) && atomic_load_explicit(&s->aborted, memory_order_acquire))
		return -ECONNABORTED; /* the reset, not what it did to the socket */
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
		/* Room for a whole receive: straight into buf, no copy. */
		if (s->is_sock && !s->ms && len >= s->rsize)
			return read_end(s, fill_once_to(s, buf, len));
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
	 * bytes are still in the stream, not lost in the caller's buffer.
	 * Room for all of it once some is in (the first receive of an empty
	 * stream takes its own buffer). */
	while (rlen(s) < len) {
		if (rlen(s) && (r = rbuf_reserve(s, len - rlen(s))) < 0)
			return read_end(s, r);
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
	bool ok = stream_check(s) == 0;
	if (out)
		*out = ok && s->rbuf ? s->rbuf + s->rstart : NULL;
	return ok ? rlen(s) : 0;
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

ssize_t weft_stream_fill_to(weft_stream *s, size_t n)
{
	int r = read_begin(s);
	if (r < 0)
		return r;
	while (rlen(s) < n) {
		ssize_t got = fill_once(s); /* the buffer doubles as it fills */
		if (got <= 0)
			return read_end(s, got == 0 ? -ENODATA : got);
	}
	return read_end(s, (ssize_t)rlen(s));
}

int weft_stream_consume(weft_stream *s, size_t n)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	if (n > rlen(s))
		return -EINVAL;
	s->rstart += n;
	if (s->rstart == s->rend)
		s->rstart = s->rend = 0;
	return 0;
}

bool weft__stream_reading(weft_stream *s)
{
	return atomic_load_explicit(&s->reading, memory_order_acquire);
}

size_t weft__stream_rsize(weft_stream *s)
{
	return s->rsize;
}

#if WEFT_TSAN
/* ThreadSanitizer's dynamic annotations (its runtime defines them). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#endif

size_t weft__stream_held(weft_stream *s)
{
	weft__lock_acquire(&s->lk);
#if WEFT_TSAN
	/* From another task the reader's fields are a snapshot, on purpose */
	AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
#endif
	size_t n = s->rcap + s->out.cap + s->next.cap + (s->rv ? s->rv->hold.cap : 0);
	if (s->ms)
		n += s->ms->npend * WEFT__BUFRING_SIZE;
#if WEFT_TSAN
	AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
	weft__lock_release(&s->lk);
	return n;
}

/* ------------------------------------------------------------------------ */
/* a relay's receives (io/copy.c): callback ops of the relay's, on its loop  */
/* ------------------------------------------------------------------------ */

/* Become s's reader for a relay (as a read call: -EBUSY, -ECONNABORTED),
 * task t publishing itself for weft_stream_end_input: its interruption
 * comes to t (weft__stream_relay_interrupted tells).  A multishot receive
 * is stopped first, what it brought kept buffered. */
int weft__stream_relay_begin(weft_stream *s, weft_task *t)
{
	int r = read_begin(s);
	if (r < 0)
		return r;
	if (s->ms)
		recv_stop(s, true);
	atomic_exchange_explicit(&s->rwaiter, (uintptr_t)t | 1, memory_order_seq_cst);
	return 0;
}

/* The relay stops reading s: whether end_input interrupted it (its
 * interruption made: the caller then clears t's, io/copy.c). */
bool weft__stream_relay_end(weft_stream *s)
{
	bool intr = !atomic_exchange_explicit(&s->rwaiter, 0, memory_order_acq_rel);
	if (intr) { /* let end_input finish its interruption */
		weft__lock_acquire(&s->lk);
		weft__lock_release(&s->lk);
	}
	read_end(s, 0);
	return intr;
}

/* Whether weft_stream_end_input took s's reader (as relay_end says,
 * without ending): 0 if not; -ECONNABORTED when weft_stream_abort did (a
 * failure of s's reads, as a read call's); else -ESHUTDOWN (stop
 * quietly). */
int weft__stream_relay_interrupted(weft_stream *s)
{
	if (atomic_load_explicit(&s->rwaiter, memory_order_seq_cst))
		return 0;
	weft__lock_acquire(&s->lk);
	weft__lock_release(&s->lk);
	return atomic_load_explicit(&s->aborted, memory_order_acquire) ? -ECONNABORTED
									: -ESHUTDOWN;
}

/* Prepare op (its cb kept) as the relay's next receive of s, as sock_recv
 * would: with no buffer while it waits (WEFT_OPH_BUFSEL); in bulk mode
 * (rsize over RBUF_MIN) first into the stream's own buffer of rsize
 * without waiting (MSG_DONTWAIT: -EAGAIN then, and the next one, `wait`,
 * waits with none); a pipe's into the stream's buffer.  *dl: when it times
 * out (read_timeout_ns, the read deadline).  0; 1 when input has ended
 * already; -ESHUTDOWN once weft_stream_end_input ended it; a multishot
 * receive's error; -ENOMEM. */
int weft__stream_relay_recv(weft_stream *s, weft__op *op, uint64_t *dl, bool wait)
{
	if (unlikely(atomic_load_explicit(&s->aborted, memory_order_acquire)))
		return -ECONNABORTED; /* as read_begin */
	*dl = s->rdeadline; /* as fill_once_to's */
	if (s->cfg.read_timeout_ns != WEFT_FOREVER) {
		uint64_t idle = weft__deadline_add(weft_now_ns(), s->cfg.read_timeout_ns);
		*dl = *dl < idle ? *dl : idle;
	}
	bool bulk = s->rsize > RBUF_MIN && s->is_sock && !wait;
	/* All of it relayed: the wait holds none; a bulk try keeps its own. */
	if (s->rbuf && !rlen(s) && s->is_sock && (!bulk || s->rring || s->rcap < s->rsize))
		rbuf_drop(s);
	if (s->eof)
		return 1;
	if (unlikely(s->ms && s->ms->rerr && s->ms->rerr != -ENOBUFS))
		return s->ms->rerr;
	if (unlikely(atomic_load_explicit(&s->rstop, memory_order_seq_cst)))
		return input_stopped(s, true);
	*op = (weft__op){ .cb = op->cb, .opcode = s->is_sock ? WEFT_OP_RECV : WEFT_OP_READ,
			  .a = { .fd = s->fd, .len = s->rsize, .off = -1 } };
	op->hints = (s->cfg.keep_fd ? 0 : WEFT_OPH_OWNED) | (s->bytestream ? WEFT_OPH_BYTESTREAM : 0);
	if (!bulk && s->is_sock) {
		op->hints |= WEFT_OPH_BUFSEL;
		if (atomic_load_explicit(&s->expect_empty, memory_order_relaxed))
			op->hints |= WEFT_OPH_POLL_FIRST;
		return 0;
	}
	if (!s->rbuf || s->rring) { /* (a pipe's is never a ring's) */
		if (!(s->rbuf = malloc(s->rsize)))
			return -ENOMEM;
		s->rcap = s->rsize;
	}
	s->rstart = s->rend = 0;
	op->a.p = s->rbuf;
	op->a.len = s->rcap;
	if (bulk)
		op->a.flags = MSG_DONTWAIT;
	return 0;
}

/* The relay's receive op of s finished with n: adapt the receive size
 * (a short one also means the socket is empty now: the next one polls
 * first).  -EAGAIN from a bulk try: the buffer goes and the receive size
 * halves.  Returns n, or -ECONNABORTED for an end or error of a receive
 * of an aborted stream (the reset, not what it did to the socket, as
 * read_end says; a relay must not pass it on as an end of input). */
int weft__stream_relay_recvd(weft_stream *s, weft__op *op, int n)
{
	size_t room = op->a.p3 ? WEFT__BUFRING_SIZE : op->a.len;
	if (n == -EAGAIN && op->a.p == s->rbuf) {
		rbuf_drop(s);
		op->a.p = NULL;
		s->rsize = s->rsize / 2 > RBUF_MIN ? s->rsize / 2 : RBUF_MIN;
		return n;
	}
	if (unlikely(n <= 0 && n != -ECANCELED && n != -EAGAIN &&
		     atomic_load_explicit(&s->aborted, memory_order_acquire)))
		return -ECONNABORTED;
	rsize_adapt(s, n, room);
	atomic_store_explicit(&s->expect_empty, n > 0 && (size_t)n < room,
			      memory_order_relaxed);
	if (n == 0)
		s->eof = true;
	return n;
}

/* The relay is done with the bytes of its receive op: its buffer goes
 * back (to its ring, or to the loop's cache), unless it is the stream's
 * own. */
void weft__stream_relay_release(weft_stream *s, weft__op *op)
{
	if (op->a.p3)
		weft__bufring_put(op->a.p3, (uint16_t)op->a.off);
	else if (op->a.p != s->rbuf)
		weft__rxbuf_put(op->a.p, op->a.len);
	op->a.p = op->a.p3 = NULL;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */
/* ------------------------------------------------------------------------ */

static size_t queued(const weft_stream *s)
{
	return s->out.len - s->out.off + s->next.len + hold_len(s);
}

/* An idle stream holds no write buffer, no send op and no reservation
 * record (its idle memory), so a request/response stream takes them anew
 * for every send.  They come from and go back to the loop's caches
 * (runtime/objcache.h): a free list instead of the allocator, trimmed
 * about once a second like the others.  Off a loop's thread, the
 * allocator. */
#define WBUF_MIN 1024

enum wmem { WMEM_BUF, WMEM_SEND, WMEM_RESV };

static weft__objcache *wmem_cache(weft_loop *l, enum wmem kind)
{
	return kind == WMEM_BUF ? &l->wbuf_cache : kind == WMEM_SEND ? &l->wsend_cache
								     : &l->wresv_cache;
}

static void *wmem_get(enum wmem kind)
{
	static const size_t size[] = { WBUF_MIN, sizeof(struct wsend), sizeof(struct wresv) };
	weft_loop *l = weft__loop_self();
	void *p = l ? weft__objcache_get(wmem_cache(l, kind)) : NULL;
	return p ? p : malloc(size[kind]);
}

static void wmem_put(void *p, enum wmem kind)
{
	weft_loop *l = weft__loop_self();
	if (p && (!l || !weft__objcache_put(wmem_cache(l, kind), p)))
		free(p);
}

static void wbuf_free(wbuf *b)
{
	if (b->cap == WBUF_MIN)
		wmem_put(b->p, WMEM_BUF);
	else if (b->p) /* the usual `next`: no call to free(NULL) */
		free(b->p);
	*b = (wbuf){ 0 };
}

/* Room for n more bytes after b->len (b never the in-flight buffer). */
static inline int wbuf_room(wbuf *b, size_t n)
{
	if (b->cap - b->len < n) {
		if (n > SIZE_MAX / 4 - b->len)
			return -ENOMEM;
		if (!b->p && n <= WBUF_MIN) {
			if (!(b->p = wmem_get(WMEM_BUF)))
				return -ENOMEM;
			b->cap = WBUF_MIN;
			return 0;
		}
		size_t cap = b->cap ? b->cap : WBUF_MIN;
		while (cap - b->len < n)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	return 0;
}

static inline int wbuf_append(wbuf *b, const void *p, size_t n)
{
	int r = wbuf_room(b, n);
	if (r < 0)
		return r;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void wbuf_swap(wbuf *a, wbuf *b)
{
	wbuf t = *a;
	*a = *b;
	*b = t;
}

/* With lk held: where written bytes go.  The send order is out, next,
 * hold: `hold` takes them behind an open reservation and keeps taking
 * them until it has moved up (wrotate), so order is kept. */
static inline wbuf *wtail(weft_stream *s)
{
	if (unlikely(s->rv != NULL) && (s->rv->buf || s->rv->hold.len))
		return &s->rv->hold;
	return s->sending ? &s->next : &s->out;
}

/* With lk held, `out` sent and not in flight: the next stage moves up
 * (out <- next <- hold), unless `out` holds the open reservation (nothing
 * is written behind it but into hold, so next is empty then) or what
 * hold has waits behind one. */
static void wrotate(weft_stream *s)
{
	char *rb = resv_buf(s);
	if (unlikely(rb != NULL) && s->out.p == rb)
		return;
	wbuf_swap(&s->out, &s->next);
	s->out.off = 0;
	s->next.len = s->next.off = 0;
	if (unlikely(!s->out.len && hold_len(s)) && !rb) {
		wbuf_swap(&s->out, &s->rv->hold);
		s->rv->hold.len = s->rv->hold.off = 0;
	}
}

/* With lk held: drop every queued byte that is not in flight (a sticky
 * error; close giving up). */
static void wdrop(weft_stream *s)
{
	s->next.len = 0;
	if (s->rv)
		s->rv->hold.len = 0;
	if (!s->sending)
		s->out.len = s->out.off = 0;
}

/* With lk held: the stream takes no more bytes: its sticky error, or
 * -EPIPE after shutdown; else 0. */
static inline int wclosed(const weft_stream *s)
{
	return s->werr ? s->werr : s->wshut ? -EPIPE : 0;
}

static void send_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags);

/* With lk held: the sticky error for a failure that dropped queued bytes.
 * Never -ENOMEM, which a write call returns only when it queued nothing
 * and the stream is intact (a writer may try again): bytes lost for want
 * of memory, the runtime's or the kernel's, are -EIO, as on the read side
 * (struct msrecv's rlost). */
static void wfail(weft_stream *s, int err)
{
	s->werr = err == -ENOMEM ? -EIO : err;
	wdrop(s);
}

/* With lk held, before a call takes bytes into the queue: the send op
 * they will need, so that no send can fail for want of it once they are
 * taken (a failure here is the call's -ENOMEM, nothing queued).  Kept
 * until the writer is idle again (wmem_release). */
static int wsend_ready(weft_stream *s)
{
	if (likely(s->send != NULL))
		return 0;
	if (!(s->send = wmem_get(WMEM_SEND)))
		return -ENOMEM;
	memset(s->send, 0, sizeof(*s->send));
	s->send->s = s;
	return 0;
}

static void wmem_release(weft_stream *s);

/* With lk held: a call that took nothing gives back what wsend_ready and
 * an empty buffer hold, if the writer is idle (its idle memory). */
static void wtake_failed(weft_stream *s)
{
	if (!s->sending && !queued(s) && !resv_buf(s))
		wmem_release(s);
}

/* With lk held, on loop l's thread: send what remains of `out` (the
 * op is there: wsend_ready came first; arming cannot fail). */
static void send_submit(weft_stream *s, weft_loop *l)
{
	weft__op *op = &s->send->op;
	op->cb = send_done;
	op->opcode = s->is_sock ? WEFT_OP_SEND : WEFT_OP_WRITE;
	op->a = (weft__op_args){ .fd = s->fd, .p = s->out.p + s->out.off,
				 .len = s->out.len - s->out.off, .off = -1 };
	weft__op_arm(l, op);
	s->sending = true;
}

/* With lk held, after bytes were added at wtail: send them, unless a send
 * is in flight or they wait behind a reservation. */
static inline void wqueued(weft_stream *s)
{
	if (!s->sending && s->out.len > s->out.off)
		send_submit(s, weft__loop_self());
	atomic_store_explicit(&s->expect_empty, true, memory_order_relaxed);
	if (queued(s) > s->cfg.high_water)
		s->paused = true;
}

/* The writer's buffers, reservation and send op go back (none in flight:
 * the send op's last callback has run). */
static void wmem_release(weft_stream *s)
{
	wbuf_free(&s->out);
	wbuf_free(&s->next);
	if (s->rv) {
		wbuf_free(&s->rv->hold);
		wmem_put(s->rv, WMEM_RESV);
		s->rv = NULL;
	}
	wmem_put(s->send, WMEM_SEND);
	s->send = NULL;
}

/* With lk held, the writer idle: the SHUT_WR a shutdown owes (on other
 * fds nothing: closing signals EOF).  Here rather than in the task that
 * called shutdown, so that a shutdown whose flush was cut short (a
 * cancellation, a scope, a stopped copy) still ends with the FIN behind
 * the last queued byte instead of a stream that refuses writes but
 * never tells its peer. */
static void wfin_send(weft_stream *s)
{
	s->wfin = false;
	s->wfin_rc = s->is_sock && shutdown(s->fd, SHUT_WR) < 0 ? -errno : 0;
}

/* With lk held: nothing in flight, queued or reserved (an idle writer
 * holds no buffers; a zero-copy send's slot is free). */
static bool writer_drained(const weft_stream *s)
{
	return !s->sending && !queued(s) && !resv_buf(s);
}

/* With lk held, the writer idle: send the FIN it owes, unless it failed
 * (its peer is told by the error or the close). */
static inline void wfin_settle(weft_stream *s)
{
	if (unlikely(s->wfin) && !s->werr && !s->aborting)
		wfin_send(s);
}

/* With lk held, after the queue shrank: unpause, free the buffers of an
 * idle writer (and send the FIN it owes), wake drain and flush. */
static inline void send_settle(weft_stream *s, weft__wakes *wk)
{
	if (s->paused && queued(s) <= s->cfg.low_water)
		s->paused = false;
	if (writer_drained(s)) {
		wfin_settle(s);
		wmem_release(s);
	}
	if (!s->sending || !s->paused)
		weft__waitlist_fire_all(&s->waiters, wk);
}

static void send_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	weft_stream *s = ((struct wsend *)((char *)op - offsetof(struct wsend, op)))->s;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	s->sending = false;
	if (s->aborting || s->werr) { /* closing, or a write limit passed */
		wdrop(s);
	} else if (res == -EAGAIN || res == -EINTR) {
		send_submit(s, l);
	} else if (res <= 0) {
		wfail(s, res < 0 ? res : -EIO);
	} else {
		s->out.off += (size_t)res;
		if (s->cfg.write_timeout_ns != WEFT_FOREVER)
			s->wprog_ns = weft_now_ns();
		if (s->out.off == s->out.len)
			wrotate(s); /* in flight no more */
		if (s->out.len > s->out.off)
			send_submit(s, l);
	}
	send_settle(s, &wk);
	weft__unlock_wake(&s->lk, &wk);
}

ssize_t weft_stream_write(weft_stream *s, const void *buf, size_t len)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	if (!buf && len)
		return -EINVAL;
	r = weft__stream_put(s, buf, len, NULL, NULL);
	return r < 0 ? r : (ssize_t)len;
}

/* weft_stream_write's queueing, for the relay's callbacks too (on the
 * loop whose thread calls it, task or not): 0 or the error; *over (if
 * given) whether the queue is over high water now, *pend (if given) what
 * is queued now (weft_stream_pending, without another lock). */
int weft__stream_put(weft_stream *s, const void *buf, size_t len, bool *over, size_t *pend)
{
	weft__lock_acquire(&s->lk);
	int r = wclosed(s);
	if (!r && len) {
		if (!(r = wsend_ready(s)) && !(r = wbuf_append(wtail(s), buf, len)))
			wqueued(s);
		else
			wtake_failed(s);
	}
	if (over)
		*over = s->paused;
	if (pend)
		*pend = queued(s);
	weft__lock_release(&s->lk);
	return r;
}

ssize_t weft_stream_writev(weft_stream *s, const struct iovec *iov, int iovcnt)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	if (iovcnt < 0 || (!iov && iovcnt))
		return -EINVAL;
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++) {
		if ((!iov[i].iov_base && iov[i].iov_len) ||
		    iov[i].iov_len > (size_t)SSIZE_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	weft__lock_acquire(&s->lk);
	r = wclosed(s);
	wbuf *b = wtail(s);
	if (!r && total && !(r = wsend_ready(s)) && !(r = wbuf_room(b, total))) {
		for (int i = 0; i < iovcnt; i++) { /* all or nothing */
			if (iov[i].iov_len)
				memcpy(b->p + b->len, iov[i].iov_base, iov[i].iov_len);
			b->len += iov[i].iov_len;
		}
		wqueued(s);
	} else if (r == -ENOMEM) {
		wtake_failed(s);
	}
	weft__lock_release(&s->lk);
	return r < 0 ? r : (ssize_t)total;
}

int weft_stream_reserve(weft_stream *s, size_t len, void **out)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	if (!out || !len)
		return -EINVAL;
	*out = NULL;
	weft__lock_acquire(&s->lk);
	r = wclosed(s);
	if (!r && resv_buf(s))
		r = -EBUSY;
	if (!r)
		r = wsend_ready(s); /* the commit's send */
	if (!r && !s->rv && (s->rv = wmem_get(WMEM_RESV)))
		memset(s->rv, 0, sizeof(*s->rv));
	if (!r && !s->rv)
		r = -ENOMEM;
	wbuf *b = s->sending ? &s->next : &s->out; /* never the in-flight one */
	wbuf *h = r ? NULL : &s->rv->hold;
	if (!r && h->len) { /* writes wait in hold: the reservation goes after them */
		if (!(r = wbuf_room(b, h->len + len))) {
			memcpy(b->p + b->len, h->p, h->len);
			b->len += h->len;
			h->len = 0;
		}
	}
	if (!r && !(r = wbuf_room(b, len))) {
		s->rv->buf = b->p;
		s->rv->at = b->len;
		s->rv->len = len;
		s->rv->task = weft__task_self();
		*out = b->p + b->len;
	} else if (r == -ENOMEM) {
		wtake_failed(s);
	}
	weft__lock_release(&s->lk);
	return r;
}

/* With lk held: end the open reservation, its first n bytes queued (none
 * after a sticky error: they are dropped with the rest); what was written
 * behind it follows. */
static void resv_end(weft_stream *s, size_t n, weft__wakes *wk)
{
	wbuf *b = s->out.p == s->rv->buf ? &s->out : &s->next;
	s->rv->buf = NULL;
	if (!s->werr) {
		b->len = s->rv->at + n;
		if (!s->sending && s->out.len == s->out.off) /* nothing ahead */
			wrotate(s);
		wqueued(s);
	}
	send_settle(s, wk);
}

int weft_stream_commit(weft_stream *s, size_t n)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	if (!resv_buf(s) || s->rv->task != weft__task_self() || n > s->rv->len) {
		weft__lock_release(&s->lk); /* the reservation, if any, stays open */
		return -EINVAL;
	}
	resv_end(s, n, &wk);
	r = s->werr;
	weft__unlock_wake(&s->lk, &wk);
	return r;
}

/* With lk held: when a writer waiting since `start` gives up (public
 * deadline, WEFT_FOREVER none): the write deadline, or write_timeout_ns
 * after the later of `start` and the peer's last progress. */
static uint64_t write_limit(const weft_stream *s, uint64_t start)
{
	uint64_t dl = s->wdeadline, tmo = s->cfg.write_timeout_ns;
	if (tmo != WEFT_FOREVER) {
		uint64_t from = s->wprog_ns > start ? s->wprog_ns : start;
		uint64_t stall = weft__deadline_add(from, tmo);
		dl = stall < dl ? stall : dl;
	}
	return dl;
}

/* With lk held: a write limit passed.  -ETIMEDOUT becomes the sticky
 * error and what is queued is dropped, as after a send error (an
 * in-flight send drops the rest when it completes: close aborts it). */
static void write_timed_out(weft_stream *s, weft__wakes *wk)
{
	s->werr = -ETIMEDOUT;
	wdrop(s);
	s->paused = false;
	weft__waitlist_fire_all(&s->waiters, wk);
}

/* With lk held, for writer t waiting since `start` (0: not yet known,
 * set now if a limit needs it) until `done(s)`: 1 when it is, 0 when it
 * must wait (*dl its write limit, WEFT_FOREVER none), else the error:
 * the sticky one, -ETIMEDOUT once a limit passed (made sticky; the wakes
 * go to wk), -EBUSY for the holder of an open reservation (it would wait
 * for itself). */
static int writer_check(weft_stream *s, weft_task *t, bool (*done)(const weft_stream *),
			uint64_t *start, uint64_t *dl, weft__wakes *wk)
{
	if (s->werr)
		return s->werr;
	if (done(s))
		return 1;
	if (unlikely(resv_buf(s) != NULL) && s->rv->task == t)
		return -EBUSY;
	if (!*start && s->cfg.write_timeout_ns != WEFT_FOREVER)
		*start = weft_now_ns();
	*dl = write_limit(s, *start);
	if (*dl != WEFT_FOREVER && weft_now_ns() >= *dl) {
		write_timed_out(s, wk);
		return -ETIMEDOUT;
	}
	return 0;
}

/* Wait, under lk, until `done(s)`; returns with lk released: 0, the sticky
 * error (-ETIMEDOUT once a write limit passes), -EBUSY for the holder of
 * an open reservation that would have to wait (for itself), or the wait's
 * -ECANCELED/-ETIMEDOUT (not sticky: the caller's own cancellation or
 * scope). */
static __attribute__((noinline)) int wait_writer_slow(weft_stream *s, weft_task *t,
							bool (*done)(const weft_stream *))
{
	uint64_t start = 0; /* when the wait began: only if it must */
	uint64_t dl;
	int r;
	for (;;) {
		weft__wakes wk = WEFT_WAKES_INIT;
		if ((r = writer_check(s, t, done, &start, &dl, &wk)) != 0) {
			weft__unlock_wake(&s->lk, &wk);
			return r > 0 ? 0 : r;
		}
		weft__waiter w;
		weft__wait_io(t, WEFT_OP_SEND, s->fd, NULL); /* the stream's sends */
		r = weft__wait_locked(t, &s->lk, &s->waiters, &w, weft__deadline_in(dl));
		/* Our own limit ran out: re-check it (the peer may have taken
		 * bytes since it was computed); anything else is the caller's */
		if (r < 0 && (r != -ETIMEDOUT || dl == WEFT_FOREVER || weft_now_ns() < dl))
			return r;
		weft__lock_acquire(&s->lk);
	}
}

static int wait_writer(weft_stream *s, bool (*done)(const weft_stream *))
{
	weft_task *t = weft__task_self();
	int r = weft__checkpoint(t);
	if (r < 0)
		return r;
	weft__lock_acquire(&s->lk);
	if (likely(s->werr || done(s))) { /* nothing to wait for */
		r = s->werr;
		weft__lock_release(&s->lk);
		return r;
	}
	return wait_writer_slow(s, t, done);
}

static bool unpaused(const weft_stream *s)
{
	return !s->paused;
}

static bool idle_writer(const weft_stream *s)
{
	return !s->sending && !resv_buf(s);
}

int weft_stream_write_deadline(weft_stream *s, uint64_t deadline_ns)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	weft__lock_acquire(&s->lk);
	s->wdeadline = deadline_ns;
	weft__lock_release(&s->lk);
	return 0;
}

int weft_stream_drain(weft_stream *s)
{
	int r = stream_check(s);
	return r < 0 ? r : wait_writer(s, unpaused);
}

int weft_stream_flush(weft_stream *s)
{
	int r = stream_check(s);
	return r < 0 ? r : wait_writer(s, idle_writer);
}

/* A relay's wait for s's writer (io/copy.c), without parking: as drain
 * (flush: as flush) for task t, which waits since *start.  1: nothing to
 * wait for; 0: w (task t) now waits on s (*dl: the write limit,
 * WEFT_FOREVER none), its firing wakes t; else the error (wait_writer's).
 * On the relay's loop, task or callback. */
int weft__stream_relay_watch(weft_stream *s, weft__waiter *w, weft_task *t, bool flush,
			     uint64_t *start, uint64_t *dl)
{
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	int r = writer_check(s, t, flush ? idle_writer : unpaused, start, dl, &wk);
	if (r == 0) {
		w->task = t;
		atomic_store_explicit(&w->fired, 0, memory_order_relaxed);
		weft__waitlist_append(&s->waiters, w);
	}
	weft__unlock_wake(&s->lk, &wk);
	return r;
}

/* Take w (of relay_watch's 0) off s's waiters, unless it fired. */
void weft__stream_relay_unwatch(weft_stream *s, weft__waiter *w)
{
	weft__lock_acquire(&s->lk);
	if (!atomic_load_explicit(&w->fired, memory_order_relaxed))
		weft__waitlist_remove(&s->waiters, w);
	weft__lock_release(&s->lk);
}

/* The CQEs of a zero-copy send: its result (with IORING_CQE_F_MORE when
 * a notification follows), then the notification. */
static void zc_cqe(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	struct zcsend *z = (struct zcsend *)((char *)op - offsetof(struct zcsend, op));
	weft_stream *s = z->s;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	if (!(flags & IORING_CQE_F_NOTIF)) {
		z->res = res;
		if (res > 0 && s->cfg.write_timeout_ns != WEFT_FOREVER)
			s->wprog_ns = weft_now_ns();
	}
	if (!(flags & IORING_CQE_F_MORE))
		z->done = true;
	weft__waitlist_fire_all(&s->waiters, &wk);
	weft__unlock_wake(&s->lk, &wk);
}

/* connect(AF_UNSPEC) on TCP socket fd: tcp_disconnect, which resets the
 * connection now (RST, both queues purged, every pending operation on the
 * socket fails) and leaves the fd open.  0 or -1 with errno.  The raw
 * system call: ThreadSanitizer takes a connect for the birth of a new
 * socket on the fd, and would report every receive or send another loop
 * makes on it afterwards as a race with that birth (the kernel orders
 * them; the fd is the same open socket until the stream is closed). */
static int tcp_disconnect(int fd)
{
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	return (int)syscall(SYS_connect, fd, &unspec, sizeof(unspec));
}

/* Bytes the peer has acknowledged on TCP socket fd (0 where unknown): how
 * a zero-copy send that waits for all of its buffer shows progress. */
static uint64_t tcp_acked(int fd)
{
	struct tcp_info ti;
	socklen_t n = sizeof ti;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n) < 0 ||
	    n < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked)
		return 0;
	return ti.tcpi_bytes_acked;
}

uint64_t weft__stream_acked(weft_stream *s)
{
	return s->bytestream ? tcp_acked(s->fd) : 0;
}

/* One send of buf[0..len) from the send slot, on the calling task's loop
 * (the task stays bound to it while the op is in flight: only that loop
 * may cancel it).  Waits for the kernel's last word on it, whatever
 * happens: a cancellation or the caller's scope asks the kernel to stop
 * (*why), then still waits; past a write limit (*mine) the connection is
 * disconnected, as the kernel holds zero-copy pages until the peer
 * acknowledges them and a peer that stopped reading never will.  The
 * send's result. */
static int32_t zc_send_one(weft_stream *s, const char *buf, size_t len, bool zc,
			   uint64_t start, int *why, bool *mine)
{
	weft_task *t = weft__task_self();
	weft_loop *l = weft__loop_self();
	int16_t pin = t->pin;
	__atomic_store_n(&t->pin, (int16_t)l->index, __ATOMIC_RELAXED);
	uint64_t saved = 0, acked = zc ? tcp_acked(s->fd) : 0;
	weft__lock_acquire(&s->lk);
	/* Zero-copy: one op for all of it (MSG_WAITALL: the kernel goes on
	 * as the peer takes bytes), so one notification ends it; ops cut
	 * short would each wait for the peer's ACK before the next starts. */
	struct zcsend *z = s->zc;
	z->op = (weft__op){ .cb = zc_cqe, .opcode = zc ? WEFT_OP_SEND_ZC : WEFT_OP_SEND,
			    .a = { .fd = s->fd, .p = (void *)buf, .len = len,
				   .flags = zc ? MSG_WAITALL : 0 } };
	z->done = false;
	z->res = 0;
	weft__op_arm(l, &z->op);
	bool stopping = false;
	while (!z->done) {
		uint64_t dl = *mine ? WEFT_FOREVER : write_limit(s, start);
		if (dl != WEFT_FOREVER && weft_now_ns() >= dl) {
			weft__lock_release(&s->lk); /* no system call under lk */
			uint64_t now_acked = zc ? tcp_acked(s->fd) : 0;
			if (now_acked != acked) { /* the peer took bytes meanwhile */
				acked = now_acked;
				weft__lock_acquire(&s->lk);
				s->wprog_ns = weft_now_ns();
				continue;
			}
			*mine = true;
			tcp_disconnect(s->fd); /* frees what it holds */
			weft__io_cancel(l, &z->op);
			if (!stopping)
				saved = weft__uninterruptible_begin(t);
			stopping = true;
			weft__lock_acquire(&s->lk);
			continue;
		}
		weft__waiter w;
		weft__wait_io(t, WEFT_OP_SEND_ZC, s->fd, &z->op);
		int r = weft__wait_locked(t, &s->lk, &s->waiters, &w, weft__deadline_in(dl));
		if (r < 0 && !stopping && !(r == -ETIMEDOUT && dl != WEFT_FOREVER &&
					     weft_now_ns() >= dl)) {
			*why = r; /* the caller's: stop, then wait for the end */
			weft__io_cancel(l, &z->op);
			saved = weft__uninterruptible_begin(t);
			stopping = true;
		}
		weft__lock_acquire(&s->lk);
	}
	int32_t res = z->res;
	weft__lock_release(&s->lk);
	if (stopping)
		weft__uninterruptible_end(t, saved);
	__atomic_store_n(&t->pin, pin, __ATOMIC_RELAXED);
	return res;
}

/* Send buf (in the send slot, taken by the caller) until all of it is
 * gone, an error, or the caller's cancellation or scope.  Bytes sent; *err
 * the error that stopped it (0: none), *mine whether a write limit. */
static size_t zc_send(weft_stream *s, const char *buf, size_t len, int *err, bool *mine)
{
	uint64_t start = weft_now_ns();
	bool zc = true;
	size_t done = 0;
	*err = 0;
	*mine = false;
	while (done < len && !*err && !*mine) {
		size_t chunk = len - done > INT_MAX ? INT_MAX : len - done;
		int32_t n = zc_send_one(s, buf + done, chunk, zc, start, err, mine);
		if (n > 0)
			done += (size_t)n;
		else if (n == -EOPNOTSUPP && zc) { /* a socket without zero-copy (AF_UNIX) */
			zc = false;
			atomic_store_explicit(&s->zc_refused, true, memory_order_relaxed);
		}
		else if (n == 0 && !*err && !*mine)
			*err = -EIO;
		else if (n < 0 && n != -EAGAIN && n != -EINTR && n != -ECANCELED && !*err)
			*err = n;
	}
	if (*mine)
		*err = -ETIMEDOUT;
	return done;
}

ssize_t weft_stream_write_zc(weft_stream *s, const void *buf, size_t len)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	if (!buf && len)
		return -EINVAL;
	if (len < s->cfg.zc_threshold || !s->bytestream ||
	    !(weft__loop_self()->features & WEFT_RING_SEND_ZC) ||
	    atomic_load_explicit(&s->zc_refused, memory_order_relaxed))
		return weft_stream_write(s, buf, len); /* a copy pays better */
	weft__lock_acquire(&s->lk);
	if (!s->zc && (s->zc = calloc(1, sizeof(*s->zc))))
		s->zc->s = s;
	bool have = s->zc != NULL;
	weft__lock_release(&s->lk);
	if (!have)
		return weft_stream_write(s, buf, len); /* no memory for the op */
	/* Take the send slot once everything queued before is sent: later
	 * writes queue behind (sending is set: they go to `next`). */
	for (;;) {
		r = wait_writer(s, writer_drained);
		if (r == -ECANCELED || r == -ETIMEDOUT) {
			weft__lock_acquire(&s->lk);
			int e = s->werr;
			weft__lock_release(&s->lk);
			if (!e) { /* the caller's limit: nothing of buf is lost */
				ssize_t w = weft_stream_write(s, buf, len);
				return w < 0 ? w : r;
			}
		}
		if (r < 0)
			return r;
		weft__lock_acquire(&s->lk);
		if ((r = wclosed(s)) < 0 || writer_drained(s))
			break;
		weft__lock_release(&s->lk);
	}
	if (!r && (r = wsend_ready(s)) < 0) /* the send of what is left if cut short */
		wtake_failed(s);
	if (r < 0) {
		weft__lock_release(&s->lk);
		return r;
	}
	s->sending = true;
	weft__lock_release(&s->lk);
	int err;
	bool mine;
	size_t done = zc_send(s, buf, len, &err, &mine);
	/* Give the slot back: a write limit or a send error is sticky; the
	 * caller's cancellation or scope queues the rest (a copy now: the
	 * kernel is done with buf) ahead of what was written meanwhile. */
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	s->sending = false;
	if (mine)
		wfail(s, -ETIMEDOUT);
	else if (err && err != -ECANCELED && err != -ETIMEDOUT && !s->werr)
		wfail(s, err);
	if (!s->werr && done < len) {
		s->out.len = s->out.off = 0; /* out is empty while the slot is held */
		if (wbuf_append(&s->out, (const char *)buf + done, len - done) < 0)
			wfail(s, -ENOMEM); /* a gap: what follows must not go */
	}
	if (s->werr) {
		wdrop(s);
		r = s->werr;
	} else {
		if (s->out.len == s->out.off)
			wrotate(s);
		wqueued(s);
		r = err;
	}
	send_settle(s, &wk);
	weft__unlock_wake(&s->lk, &wk);
	return r < 0 ? r : (ssize_t)len;
}

int weft_stream_shutdown(weft_stream *s)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	if ((r = weft__stream_shut_begin(s, weft__task_self())) < 0)
		return r;
	r = weft_stream_flush(s);
	return r < 0 ? r : weft__stream_shut_end(s);
}

/* weft_stream_shutdown's first step, for task t: no write slips in after
 * it, and the SHUT_WR is owed from now on: the writer sends it once idle
 * (at once if it is), whether or not anyone waits for the flush.  0, or
 * -EBUSY when t holds an open reservation (its flush would wait for
 * itself). */
int weft__stream_shut_begin(weft_stream *s, weft_task *t)
{
	weft__lock_acquire(&s->lk);
	if (unlikely(resv_buf(s) != NULL) && s->rv->task == t && !s->werr) {
		weft__lock_release(&s->lk);
		return -EBUSY;
	}
	s->wshut = s->wfin = true;
	if (writer_drained(s))
		wfin_settle(s);
	weft__lock_release(&s->lk);
	return 0;
}

/* Its last, once flushed: the SHUT_WR's result (sent now if the writer
 * has not yet).  0 or -errno. */
int weft__stream_shut_end(weft_stream *s)
{
	weft__lock_acquire(&s->lk);
	if (s->wfin)
		wfin_send(s);
	int r = s->wfin_rc;
	weft__lock_release(&s->lk);
	return r;
}

/* With lk held: reset the connection now.  On TCP, SO_LINGER 0 and
 * tcp_disconnect (RST, the send queue purged, every pending operation on
 * the socket fails); SO_LINGER stays for the final close.  Other sockets
 * cannot reset: shut both ways. */
static void sock_reset(weft_stream *s)
{
	if (!s->is_sock)
		return;
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &(struct linger){ 1, 0 },
		   sizeof(struct linger));
	if (!s->bytestream || tcp_disconnect(s->fd) < 0)
		shutdown(s->fd, SHUT_RDWR);
}

/* weft_stream_abort with the wakes recorded in wk, for a caller that holds
 * a lock of its own (a server's). */
void weft__stream_abort_to(weft_stream *s, weft__wakes *wk)
{
	weft__lock_acquire(&s->lk);
	if (atomic_load_explicit(&s->aborted, memory_order_relaxed)) {
		weft__lock_release(&s->lk);
		return;
	}
	/* Under lk, so a send completing meanwhile finds werr set and drops
	 * what is queued rather than report the reset as its own error. */
	atomic_store_explicit(&s->aborted, true, memory_order_release);
	s->werr = -ECONNABORTED;
	wdrop(s);
	s->paused = false;
	sock_reset(s);
	weft__waitlist_fire_all(&s->waiters, wk);
	weft__lock_release(&s->lk);
	weft__stream_end_input_to(s, WEFT_END_NOW, wk); /* a reader of a pipe */
}

int weft_stream_abort(weft_stream *s)
{
	if (!s)
		return -EINVAL;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__stream_abort_to(s, &wk);
	weft__wakes_flush(&wk);
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
	wdrop(s); /* nothing more is queued; `out` may be in flight */
	s->aborting = s->wshut = true;
	bool sending = s->sending;
	weft__lock_release(&s->lk);
	if (!sending)
		return;
	if (s->is_sock)
		shutdown(s->fd, SHUT_RDWR); /* fails the pending send at once */
	/* No limit and no sticky error may end this wait: the op names s. */
	uint64_t saved = weft__uninterruptible_begin(t);
	weft__lock_acquire(&s->lk);
	while (s->sending) {
		weft__waiter w;
		weft__wait_io(t, WEFT_OP_SEND, s->fd, NULL);
		weft__wait_locked(t, &s->lk, &s->waiters, &w, 0);
		weft__lock_acquire(&s->lk);
	}
	weft__lock_release(&s->lk);
	weft__uninterruptible_end(t, saved);
}

int weft_stream_close(weft_stream *s)
{
	int r = stream_check(s);
	if (r < 0)
		return r;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	if (resv_buf(s)) /* an open reservation: cancelled, as commit(s, 0) */
		resv_end(s, 0, &wk);
	weft__unlock_wake(&s->lk, &wk);
	r = weft_stream_flush(s);
	if (r < 0)
		abort_send(s);
	if (atomic_load_explicit(&s->aborted, memory_order_acquire))
		r = 0; /* asked for: the close only releases */
	if (s->ms)
		recv_stop(s, false);
	/* The last send_done may still hold lk after waking us. */
	weft__lock_acquire(&s->lk);
	weft__lock_release(&s->lk);
	if (s->cfg.keep_fd)
		weft__fd_forget(s->fd); /* the caller's again: trust nothing */
	else
		weft__fd_close(s->fd);
	rbuf_drop(s);
	wmem_release(s);
	free(s->zc);
	free(s->ms);
	if (!s->in_storage)
		free(s);
	return r;
}
