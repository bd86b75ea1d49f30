/*
 * weft/stream.h — buffered streams over a socket or pipe (asyncio's
 * StreamReader and StreamWriter in one object).
 *
 * Reading: the stream keeps a read buffer.  weft_stream_read copies out
 * what is there (waiting for more only when it is empty); read_exact,
 * read_line and read_until wait for a whole unit.  A line or delimited unit
 * longer than the limit (config.limit, 64 KiB) fails with -EMSGSIZE and its
 * bytes stay buffered: nothing is lost, the caller may read them with
 * weft_stream_read or drop the connection.  At end of input a partial unit
 * also stays buffered (-ENODATA), except read_line, which returns the last
 * unterminated line as asyncio's readline does.  One task reads at a time
 * (a second concurrent reader gets -EBUSY).  A unit of known length may
 * exceed the limit for one read: weft_stream_fill_to.  After
 * weft_stream_end_input every read that would wait returns -ESHUTDOWN.
 *
 * Writing: weft_stream_write copies the bytes into the stream and returns
 * at once; the stream sends them in the background, one send in flight at
 * a time (so bytes from different writes never interleave), batched into
 * the loop's next io_uring_enter.  weft_stream_drain is the backpressure:
 * once more than high_water bytes are queued it waits until the queue falls
 * to low_water (asyncio's defaults: 64 KiB and 16 KiB).  A send error
 * (-EPIPE, -ECONNRESET, ...) is sticky: the queued bytes are dropped and
 * every later write or drain returns it.  A sticky error is never
 * -ENOMEM: a write call's -ENOMEM means it queued nothing and the stream
 * is intact (try again), while bytes dropped for want of memory (the
 * runtime's or the kernel's) make the sticky error -EIO.  Any task may write; write order is
 * the order of the write calls (weft_stream_writev, a reservation and
 * weft_stream_write_zc each take one place in it, see each).
 *
 * Write limits: write_timeout_ns bounds a stall, not a wait: a drain,
 * flush, shutdown or close that waits fails once the peer has taken no
 * bytes for write_timeout_ns (counted from the later of the wait's start
 * and the peer's last progress), so a slow but steady reader, which takes
 * something every few milliseconds, is never cut however long the whole
 * transfer takes, while one that stopped reading is found within the
 * limit (nginx's send_timeout: "between two successive write
 * operations").  For weft_stream_write_zc, whose one send waits for the
 * whole buffer, progress is the bytes the peer has acknowledged (TCP's
 * bytes_acked).  Keep the limit well above TCP's retransmission timeout
 * (200 ms at least): a stalled window can stop all progress that long.
 * A per-wait bound would instead cut a large reply to a slow link that is
 * making progress; bound a whole reply with
 * weft_stream_write_deadline (absolute) or a scope.  Reaching either limit
 * is sticky, as a send error is: the wait returns -ETIMEDOUT, the bytes
 * still queued are dropped (weft_stream_pending, read before, tells how
 * many were at stake; the peer has received a prefix of the stream and
 * nothing after it), and every later write, drain, flush, shutdown and
 * close returns -ETIMEDOUT; close then aborts the in-flight send
 * (shutdown(2) on a socket) and releases the fd at once instead of
 * waiting for the peer again.  A peer that took nothing for the whole
 * limit is treated as gone, so nothing is lost silently: the writer is
 * told, the peer sees the connection end short.  A deadline scope or a
 * cancellation around a drain is the caller's own limit and is not
 * sticky (nothing is dropped; drain again or close).  A zero-copy send
 * that passes a write limit disconnects the socket (connect(AF_UNSPEC)):
 * the kernel keeps zero-copy pages until the peer acknowledges them, and
 * one that stopped reading never will, so that is the only way to get the
 * caller's buffer back.
 *
 * Writing without copies: weft_stream_write copies (the stream's buffer,
 * then the kernel's socket buffer).  weft_stream_writev queues many
 * pieces with one copy; weft_stream_reserve/commit let a reply be built
 * inside the stream's write buffer (the kernel's copy only);
 * weft_stream_write_zc sends a large buffer with no copy at all on
 * io_uring (IORING_OP_SEND_ZC) and returns once the kernel has let go of
 * it.  Zero copy is not free: the kernel pins the pages and reports their
 * release in a second completion, after the peer has acknowledged the
 * bytes, so each call waits about a round trip longer than a copy would.
 * bench/send_zc.c (docs/benchmarks.md) measured, over TCP loopback on
 * this machine, the sender's CPU per KiB 2-18x higher than a copy's below
 * 64 KiB, and at parity from 256 KiB (0.93-1.06x of the stream's
 * copying write in the 5-repeat run, up to 2.3x in noisier 3-repeat
 * ones): on loopback the kernel copies the pages when it delivers them
 * locally, so the saving cannot show there; on a real NIC the copy is
 * skipped.  Hence zc_threshold's default,
 * WEFT_STREAM_ZC_DEFAULT (256 KiB): smaller buffers are copied, where
 * zero copy measurably loses; set UINT_MAX to always copy.  A single
 * stream's throughput with 1-4 MiB buffers was lower with zero copy
 * (0.64-0.96x), as each call ends only when its last byte is
 * acknowledged.
 *
 * Memory: an idle stream holds no buffer.  Once every byte received has
 * been consumed, the next read call gives the read buffer back before it
 * waits, and a buffer is taken again only when bytes arrive (io_uring: the
 * kernel picks one of the loop's 4 KiB provided buffers and the stream
 * reads from it in place; epoll: one is taken once the socket is
 * readable, a 4 KiB one from the loop's cache of free ones, so a busy
 * stream does not call the allocator per receive; that cache holds at
 * most 64, 256 KiB per loop, and gives back about once a second what it
 * did not reuse).  Receives are sized by the traffic: 4 KiB at first, doubling
 * while they fill their buffers, up to config.max_read (256 KiB, as
 * asyncio's transports read), halving when they come back less than half
 * full, so request/response traffic keeps 4 KiB receives.  A stream whose
 * receives have grown (a bulk transfer) takes a buffer of that size and
 * receives into it without waiting, since the bytes are usually there
 * already; if the socket turns out empty, the buffer goes and the receive
 * waits holding none, as above.  weft_stream_read with nothing buffered
 * and a buffer at least as large as the next receive's size receives
 * straight into the caller's buffer (no copy; the stream holds nothing).
 * Once every queued byte has been sent, the write buffers (and the send
 * op) are freed.  So
 * a socket stream whose task waits in a read with nothing buffered and
 * nothing queued holds just its structure (about 310 bytes; 200 more with
 * config.multishot; 170 more once it has made a zero-copy send) besides
 * its task; a server connection waiting for its next request costs that,
 * its task (one touched 4 KiB stack page and the task structure) and the
 * kernel's socket.  Streams of pipes and ttys keep
 * their read buffer, as does a stream waiting with part of a unit buffered
 * (half a line), and on kernels without provided-buffer rings (before
 * 5.19) a waiting receive names a buffer of its own (4 KiB, or the
 * current receive size).
 *
 * How much a stream holds while busy, per direction:
 *  - Reading, plain receives (the default; every stream on epoll, where
 *    config.multishot is plain receives too): one read buffer.  A receive
 *    brings at most max_read (256 KiB); a unit being assembled may need
 *    more: read_line and read_until up to a little over limit (the buffer
 *    doubles: at most 128 KiB for the default 64 KiB), read_exact its
 *    length, fill_to its n (up to twice that: the buffer doubles as the
 *    bytes come).  The largest
 *    of these is the bound; nothing else is taken from the socket while
 *    the reader does not read.
 *  - Reading with config.multishot on io_uring: the read buffer (what the
 *    last read took from the receive: at most 64 KiB, or as above for a
 *    unit) plus what the receive has brought since, at most 64 KiB of
 *    bytes, each completion in one of the loop's 4 KiB provided buffers.
 *    From Linux 6.17 the kernel itself stops the receive at that byte
 *    count (a multishot byte limit), so a reader that stops reading holds
 *    at most 128 KiB however many streams share the loop.  (Completions
 *    of a few bytes each, from small segments arriving one by one, are
 *    also stopped at 16 buffers, by cancelling: that count may be passed
 *    by what arrives before the cancel takes effect.)  Before 6.17 the
 *    receive is cancelled once it has brought 64 KiB, and with many busy
 *    streams on one loop the kernel may post many more completions first
 *    (test_stream saw 512 KiB held by one of 32 stalled streams), up to
 *    the loop's whole ring (1024 buffers, 4 MiB) for all of its streams
 *    together; a stream that overran so uses plain receives from then on.
 *  - Writing: what is queued and not yet sent, in up to three buffers
 *    that double as they grow (so up to twice the queued bytes); write
 *    never waits, weft_stream_drain keeps a writer that calls it near
 *    high_water (64 KiB) plus its last write.  weft_stream_write_zc's
 *    buffer is the caller's.
 *
 * Lifetime: weft_stream_open takes the fd (closed by weft_stream_close
 * unless config.keep_fd).  weft_stream_close flushes what is queued, closes
 * and frees (a stream of weft_stream_open_in: all but the freeing); the
 * stream must not be used by any other task after (or during) close.
 *
 * Threads: a stream belongs to its tasks.  Six calls work from any thread:
 * weft_stream_config_init, weft_stream_open (it only wraps the fd: open it
 * anywhere, then hand the stream to a task), weft_stream_fd,
 * weft_stream_pending (a snapshot), weft_stream_end_input (it is how
 * another task or thread tells the reader to stop) and weft_stream_abort.  Every other call is task-only: from
 * any other thread (a foreign thread, a blocking-pool thread) it does
 * nothing and returns -EPERM, except weft_stream_buffered, which returns a
 * count and so returns 0 with *out NULL.  Within that, any
 * task may write (on any loop); one task reads at a time.  Task calls
 * follow weft/io.h's cancellation and deadline rules.
 */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stream weft_stream;

/* The default of weft_stream_config.zc_threshold, bytes: below it zero-copy
 * sends cost the sender measurably more than a copy in bench/send_zc.c,
 * from it they were at parity over loopback ("Writing without copies"
 * below, docs/benchmarks.md). */
#define WEFT_STREAM_ZC_DEFAULT (256u * 1024u)

typedef struct weft_stream_config {
	size_t limit;      /* longest line / delimited unit, bytes (64 KiB) */
	size_t high_water; /* drain waits once more is queued (64 KiB) */
	size_t low_water;  /* ... until the queue is down to this (16 KiB) */
	bool keep_fd;      /* close leaves the fd open (false) */
	uint64_t read_timeout_ns; /* idle limit: a receive that waits longer
				     fails with -ETIMEDOUT (WEFT_FOREVER:
				     none, the default; 0: every read
				     returns only what is buffered, see
				     "Timeouts and deadlines" in weft.h) */
	bool multishot;    /* sockets: keep one multishot receive armed into
			      the loop's provided buffers (kernel 5.19+;
			      plain receives otherwise).  It stays armed
			      between reads, buffering up to 64 KiB, then
			      pauses until the reader catches up (a bound
			      the kernel enforces from 6.17: "Memory"
			      above).  Received
			      bytes it finds no memory to hold break the
			      input: what came before them is read, then
			      every read returns -EIO (false) */
	unsigned zc_threshold; /* weft_stream_write_zc sends buffers of at
				  least this many bytes without copying them
				  (io_uring with IORING_OP_SEND_ZC; smaller
				  ones, and every one on epoll, are copied).
				  Default: measured, see "Writing without
				  copies" below; UINT_MAX: never */
	uint64_t write_timeout_ns; /* stall limit: a drain, flush, shutdown
				      or close that waits while the peer
				      takes no bytes for this long fails
				      with -ETIMEDOUT, sticky (WEFT_FOREVER:
				      none, the default; 0: fail any wait
				      at once; see "Write limits" above) */
	unsigned max_read; /* the largest receive, bytes (256 KiB, as
			      asyncio's transports; 0: the default, less
			      than 4 KiB: 4 KiB).  Receives start at 4 KiB
			      and double while they fill their buffer, up
			      to this, and shrink back when they come back
			      small ("Memory" above) */
	unsigned reserved[1]; /* must be zero */
} weft_stream_config;

/* Fill cfg with the defaults given in brackets above.  Any thread. */
WEFT_API void weft_stream_config_init(weft_stream_config *cfg);

/* Wrap fd (a connected socket, a pipe, a tty) in a stream; cfg NULL for
 * the defaults.  Returns 0 with *out set, -EINVAL (fd < 0, low_water >
 * high_water, limit 0, reserved field set) or -ENOMEM.  On success the
 * stream owns fd.  Any thread (never waits); the stream's other calls
 * are task-only. */
WEFT_API int weft_stream_open(weft_stream **out, int fd, const weft_stream_config *cfg);

/* Room for a stream in the caller's own memory (weft_stream_open_in).
 * Its size is part of the ABI; the stream itself stays opaque. */
typedef union weft_stream_storage {
	max_align_t align;
	unsigned char bytes[320];
} weft_stream_storage;

/* weft_stream_open, into *mem instead of a new allocation: *out is a
 * stream inside mem, and weft_stream_close does everything but free it.
 * mem must stay valid, untouched by the caller, until that close returns.
 * For a stream that lives exactly as long as a task's frame (a
 * connection's): kept in the frame, it costs no allocation, and the idle
 * task's stack page that holds it is touched anyway (a proxy's idle
 * client: docs/io.md, "Proxies").  Same returns as
 * weft_stream_open (-EINVAL also for mem NULL).  Any thread. */
WEFT_API int weft_stream_open_in(weft_stream_storage *mem, weft_stream **out, int fd,
				 const weft_stream_config *cfg);

/* The stream's fd (still owned by the stream), -EINVAL for NULL.  Any
 * thread. */
WEFT_API int weft_stream_fd(const weft_stream *s);

/* The read calls below return -EINVAL for a NULL stream, -EPERM outside a
 * task, -EBUSY while another task is reading s, -ECANCELED / -ETIMEDOUT
 * (cancellation, scope, read_timeout_ns, read deadline) besides what each
 * says. */

/* Up to len bytes: what is buffered, else waits for one receive.  Returns
 * bytes copied, 0 at end of input, or -errno. */
WEFT_API ssize_t weft_stream_read(weft_stream *s, void *buf, size_t len);
/* Exactly len bytes: len, or -ENODATA if input ended first (the partial
 * bytes stay buffered), or -errno. */
WEFT_API ssize_t weft_stream_read_exact(weft_stream *s, void *buf, size_t len);
/* The next unit ending in `delim` (dlen >= 1 bytes): its length including
 * the delimiter, with *out pointing at it inside the stream's buffer (valid
 * until the next read call on s).  -EMSGSIZE: the unit would exceed the
 * limit; -ENODATA: input ended before a delimiter (bytes stay buffered,
 * none at all: returns 0). */
WEFT_API ssize_t weft_stream_read_until(weft_stream *s, const void *delim, size_t dlen,
					const char **out);
/* read_until("\n"), except that at end of input a final unterminated line
 * is returned as is (0 once nothing is left). */
WEFT_API ssize_t weft_stream_read_line(weft_stream *s, const char **out);

/* A deadline (absolute, weft_now_ns clock; WEFT_FOREVER clears it, the
 * default; one already past, 0 included, has expired: see "Timeouts and
 * deadlines" in weft.h) for every read call until cleared: a receive
 * still waiting then fails with -ETIMEDOUT.  For "the whole request head
 * within N seconds" (slowloris) on top of the per-receive
 * read_timeout_ns.  Returns 0, -EINVAL, or -EPERM outside a task. */
WEFT_API int weft_stream_read_deadline(weft_stream *s, uint64_t deadline_ns);

/* Receive until at least n bytes are buffered, whatever config.limit says:
 * for one unit of a known length (a length-prefixed frame, a Redis bulk
 * string) that may exceed the limit, without raising the limit for every
 * read.  n is the caller's own bound for this unit: check a length taken
 * from the wire against it first.  The buffer grows as bytes arrive
 * (doubling), never to n up front, so a peer that claims a huge length and
 * sends nothing costs nothing.  Then weft_stream_buffered gives the bytes
 * in one piece and weft_stream_consume drops them.  Returns the buffered
 * count (>= n), -ENODATA if input ended first (the bytes stay buffered),
 * -ENOMEM, or as the other reads. */
WEFT_API ssize_t weft_stream_fill_to(weft_stream *s, size_t n);

/* Zero-copy parsing: the buffered bytes (*out, valid until the next read
 * call; NULL when none, as an empty stream may hold no buffer) and their
 * count, without waiting.  Outside a task: 0, *out NULL. */
WEFT_API size_t weft_stream_buffered(weft_stream *s, const char **out);
/* Receive once more into the buffer: bytes added, 0 at end of input,
 * -EMSGSIZE when `limit` bytes are already buffered, or -errno. */
WEFT_API ssize_t weft_stream_fill(weft_stream *s);
/* Drop the first n buffered bytes: 0, -EINVAL (n > buffered, s NULL),
 * -EPERM outside a task. */
WEFT_API int weft_stream_consume(weft_stream *s, size_t n);

/*
 * End the stream's input early, for servers and other owners that want
 * its reader to stop without cancelling the reader's task (a task that
 * may be in the middle of a request, or on another loop):
 *
 *   WEFT_END_IDLE  at a message boundary: a read that would wait with
 *                  nothing buffered returns -ESHUTDOWN, and one waiting so
 *                  now is interrupted and returns -ESHUTDOWN.  A read that
 *                  waits for the rest of a unit (part of a line, a
 *                  read_exact, a fill with bytes buffered) goes on.  This
 *                  is how a graceful server shutdown reaches idle
 *                  keep-alive connections at once (weft/server.h).
 *   WEFT_END_NOW   every read that would wait returns -ESHUTDOWN, and one
 *                  waiting now is interrupted, buffered bytes or not
 *                  (asyncio's Server.close_clients()).
 *
 * Bytes already buffered are still read first; a receive that completes
 * as the interruption comes keeps its bytes: nothing received is lost.
 * Writing is not affected.  Sticky: a later call can only move from IDLE
 * to NOW.  Returns 0, or -EINVAL (s NULL, bad `how`).  Any thread; never
 * waits.
 */
enum { WEFT_END_IDLE = 1, WEFT_END_NOW = 2 };
WEFT_API int weft_stream_end_input(weft_stream *s, int how);

/* The write calls below return -EINVAL for a NULL stream and -EPERM
 * outside a task besides what each says. */

/* Queue len bytes for sending: returns len, or the sticky send error, or
 * -EPIPE after weft_stream_shutdown, or -ENOMEM (nothing queued).  Never
 * waits. */
WEFT_API ssize_t weft_stream_write(weft_stream *s, const void *buf, size_t len);
/* Queue the bytes of iov[0..iovcnt) in order, as one weft_stream_write of
 * their concatenation (asyncio's writelines): one lock, one copy, no
 * interleaving with other writers.  iovcnt may exceed IOV_MAX (nothing is
 * handed to the kernel as is).  Returns the total, the sticky error,
 * -EPIPE after shutdown, -EINVAL (iovcnt < 0, iov NULL with iovcnt > 0, a
 * NULL base with a length, a total over SSIZE_MAX), -ENOMEM; on any error
 * nothing was queued.  Never waits. */
WEFT_API ssize_t weft_stream_writev(weft_stream *s, const struct iovec *iov, int iovcnt);

/* Build a reply in place: reserve len bytes at the end of the stream's
 * write queue, write them through *out, then weft_stream_commit the
 * first n of them.  No copy: the reserved bytes are sent from where they
 * were written.  Rules:
 *  - The reservation takes its place in the write order when reserve
 *    returns: bytes any task writes while it is open (write, writev,
 *    write_zc's copies) queue behind it and are sent only after the
 *    commit; bytes queued before it go first.  Reserved bytes are never
 *    sent before the commit, and uncommitted ones never.
 *  - One reservation at a time per stream: a second reserve before the
 *    commit, from this task or another, returns -EBUSY (reserve never
 *    waits).  Only the task that reserved may commit.
 *  - While it is open, that task's own drain, flush and write_zc return
 *    -EBUSY where they would have to wait (they would wait for the
 *    commit), and its shutdown always; other tasks' wait for it.  close
 *    cancels it (as commit(s, 0)).
 *  - Returns 0 with *out set (valid until the commit; do not write past
 *    len), -EINVAL (out NULL, len 0), -EBUSY, the sticky error or -EPIPE
 *    after shutdown (no reservation then, *out NULL), -ENOMEM.
 * The memory is the write queue's: reserving more than high_water makes
 * drain wait, as writing it would. */
WEFT_API int weft_stream_reserve(weft_stream *s, size_t len, void **out);
/* Queue the first n bytes of the open reservation (n == 0 cancels it)
 * and end it; what was written behind it follows.  0; -EINVAL (no
 * reservation of this task's, or n over the reserved length: an open one
 * stays open, nothing is lost); the sticky error if one came while it
 * was open (the reservation is dropped with the rest of the queue). */
WEFT_API int weft_stream_commit(weft_stream *s, size_t n);

/* Write len bytes from buf without copying them where that pays
 * ("Writing without copies" below): suspends until the kernel no longer
 * needs buf, so buf may be reused or freed as soon as it returns.  In
 * order with the other writes: waits for what is queued before it to be
 * sent, then sends buf directly (IORING_OP_SEND_ZC, each send waiting for
 * the kernel's notification that the pages are released), while later
 * writes queue behind it.  Below config.zc_threshold, on the epoll
 * backend, on a kernel without IORING_OP_SEND_ZC, and on fds that are not
 * stream sockets, it is weft_stream_write (one copy, returns at once).
 * On sockets without zero-copy (AF_UNIX) the first call finds out and
 * sends with plain sends the same way, and later ones copy.  Returns len;
 * the sticky error or -EPIPE after shutdown, -ENOMEM (nothing queued or
 * sent); a send error (sticky: the peer has a prefix of buf and nothing
 * after);
 * -ETIMEDOUT from write_timeout_ns or the write deadline (sticky, as for
 * drain); -EBUSY while this task holds a reservation.  A cancellation or the caller's scope ends the wait with
 * -ECANCELED / -ETIMEDOUT only once the kernel is done with buf (for a
 * peer that stopped reading: when it reads again, or when a write limit
 * disconnects it; so give streams that use write_zc a write_timeout_ns),
 * and never loses bytes: what it had not sent is queued by copy in its
 * place (ahead of later writes), like a cancelled drain after a write. */
WEFT_API ssize_t weft_stream_write_zc(weft_stream *s, const void *buf, size_t len);

/* Backpressure: wait while the queue is over the high-water mark.  0, the
 * sticky send error, -ECANCELED, -ETIMEDOUT (a scope; or write_timeout_ns
 * or the write deadline, then sticky: "Write limits" above). */
WEFT_API int weft_stream_drain(weft_stream *s);
/* Wait until every queued byte is sent: 0 or as drain (-EBUSY for the
 * task holding a reservation, see weft_stream_reserve). */
WEFT_API int weft_stream_flush(weft_stream *s);
/* Flush, then shut the write side: on a socket, shutdown(SHUT_WR), so the
 * peer reads end of input while this side can still read.  On other fds it
 * only flushes (close the stream to signal EOF on a pipe).  Later writes
 * return -EPIPE.  The shutdown is final from the call on: one cut short
 * by a cancellation or a scope (-ECANCELED / -ETIMEDOUT, not sticky)
 * still completes by itself, the queued bytes going out in the background
 * as after a cancelled drain and the SHUT_WR right behind the last of
 * them, so the peer gets every byte and then end of input with nobody
 * waiting; a sticky error (a send error, a write limit) drops the queue
 * and sends no FIN (close, or abort, ends the connection).  0, the
 * SHUT_WR's error, or as flush. */
WEFT_API int weft_stream_shutdown(weft_stream *s);
/* A deadline (absolute, weft_now_ns clock; WEFT_FOREVER clears it, the
 * default; one already past, 0 included, has expired) for every drain,
 * flush, shutdown and close until cleared: one still waiting for the peer
 * then fails with -ETIMEDOUT, sticky as write_timeout_ns ("Write limits"
 * above); a call that need not wait is not affected.  For "the whole
 * reply within N seconds" on top of the per-stall write_timeout_ns.
 * Returns 0, -EINVAL, or -EPERM outside a task. */
WEFT_API int weft_stream_write_deadline(weft_stream *s, uint64_t deadline_ns);

/* Bytes queued and not yet sent (0 for NULL).  Any thread: a snapshot. */
WEFT_API size_t weft_stream_pending(weft_stream *s);

/*
 * Copy between two streams in both directions at once until both inputs
 * have ended (Tokio's copy_bidirectional): a proxy's core.  What a
 * receives is written to b and what b receives to a, with no task per
 * direction: each direction is a receive on the caller's loop whose
 * completion queues the bytes on the other stream and arms the next
 * receive, while the calling task waits (uninterruptibly but for its
 * cancellation and its scope's deadline, which stop both directions;
 * the call still waits for their receives to finish, so no operation or
 * buffer outlives it).  The caller is bound to its loop meanwhile.  A
 * relayed connection therefore costs the caller's task and the two
 * streams, and while idle no buffer (the receives wait naming none, as
 * a stream's read does: "Memory" above).  The caller must not read a or
 * b meanwhile (another reader gets -EBUSY; it may write, as any task
 * may).  A stream with config.multishot has its multishot receive
 * stopped first (what it brought is relayed first) and is read with
 * plain receives during the copy; a later read arms it again.
 *
 *  - Bytes are moved through the streams' buffers: what the source has
 *    buffered (bytes already buffered before the call go first) is
 *    queued on the destination (as weft_stream_write, one copy), and once
 *    its queue is over high_water (weft_stream_config) the direction
 *    receives nothing more until it falls to low_water (as drain), so
 *    each direction holds at most a receive's worth plus the
 *    destination's high_water in its queue: a fast sender to a slow
 *    receiver waits (TCP backpressure), memory stays bounded.
 *  - Half-close: end of input on one side becomes weft_stream_shutdown on
 *    the other (its queue flushed, then SHUT_WR on a socket), and the
 *    other direction goes on; the call returns 0 when both have ended.
 *    A copy that stops (a failure, the idle limit, a cancellation, the
 *    scope) while such a shutdown still waits for its queue leaves it to
 *    finish as a cut-short weft_stream_shutdown does: the destination
 *    refuses writes (-EPIPE) and sends its FIN by itself right after its
 *    last queued byte, unless it failed (a sticky error).
 *  - cfg->idle_timeout_ns (WEFT_FOREVER: none, the default; see
 *    "Timeouts and deadlines" in weft.h) is connection-wide: the copy
 *    fails with -ETIMEDOUT only when neither direction has moved a byte
 *    (received one, or had its destination's peer take one) for that
 *    long, so a long download whose client sends nothing is not cut.
 *    A peer taking bytes the copy already handed to the kernel counts
 *    too on TCP (its acknowledged bytes, TCP_INFO, looked at only when
 *    the limit expires): a reply sitting whole in the socket's send
 *    buffer and drained slowly is not cut either.  Since they are looked
 *    at then, an idle connection whose kernel buffers moved last is cut
 *    between one and two limits after the last byte moved (exactly at
 *    the limit otherwise).
 *    The streams' own limits (read_timeout_ns, such as a server's
 *    idle_timeout_ns, and write_timeout_ns) still apply to each of their
 *    waits: give a proxied server connection idle_timeout_ns WEFT_FOREVER
 *    and bound the connection here.
 *  - Errors: the first failure ends the copy (the other direction is
 *    cancelled) and is returned: a stream call's error (a read's
 *    -ECONNRESET, a write's -EPIPE, a stream limit's -ETIMEDOUT, ...),
 *    with out->failed set to the stream whose call failed, or -ETIMEDOUT
 *    of the idle limit (out->failed NULL).  Precedence: the caller's own
 *    cancellation (-ECANCELED) first, then the first direction's failure,
 *    then the caller's scope (-ETIMEDOUT).  A source whose input is
 *    ended (weft_stream_end_input: a server's graceful shutdown) stops
 *    that direction quietly (nothing is passed on) while the other one
 *    finishes, a download in progress say; the call then returns
 *    -ESHUTDOWN if nothing failed.  weft_stream_abort of a or b from
 *    another task is a failure, not an end of input: the copy returns
 *    -ECONNABORTED at once with that stream as out->failed.  Both
 *    streams stay open and
 *    the caller's: a proxy usually weft_stream_abort's the other one on a
 *    reset (to pass the reset on) and closes both.  -EINVAL (a or b NULL,
 *    a == b, a reserved field set), -EPERM outside a task, -ENOMEM (as a
 *    direction's failure: a receive's buffer could not be had).
 *  - out (NULL: not wanted) always gets the byte counts, on error too:
 *    bytes taken from one stream and queued on the other.  After a
 *    failure of the destination's writes, up to weft_stream_pending of
 *    those may not have reached its peer.
 * Task only.
 */
typedef struct weft_stream_copy_config {
	uint64_t idle_timeout_ns; /* connection-wide idle limit (WEFT_FOREVER:
				     none, the default) */
	unsigned reserved[4];     /* must be zero */
} weft_stream_copy_config;

/* Fill cfg with the defaults (no idle limit).  Any thread. */
WEFT_API void weft_stream_copy_config_init(weft_stream_copy_config *cfg);

typedef struct weft_stream_copied {
	uint64_t a_to_b;      /* bytes taken from a and queued on b */
	uint64_t b_to_a;      /* bytes taken from b and queued on a */
	weft_stream *failed;  /* the stream whose call failed first (a or
				 b); NULL on success, for the idle limit,
				 a cancellation or the caller's scope */
	uint64_t reserved[2];
} weft_stream_copied;

WEFT_API int weft_stream_copy_bidirectional(weft_stream *a, weft_stream *b,
					    const weft_stream_copy_config *cfg,
					    weft_stream_copied *out);

/*
 * Close the connection at once with a reset, dropping every queued byte
 * (asyncio's transport.abort(), libuv's uv_tcp_close_reset): for a peer
 * that misbehaved, or a proxy passing on a reset.  On a TCP socket the
 * peer gets an RST now, so it reads -ECONNRESET, not end of input, even
 * if megabytes were queued (SO_LINGER 0 and connect(AF_UNSPEC): the
 * kernel's send queue is purged too); other sockets are shut down both
 * ways (their peer reads end of input); other fds are left as they are.
 * Every pending and later call on s then fails with -ECONNABORTED: reads
 * (including one waiting in another task, which is woken), writes,
 * drain, flush, shutdown, write_zc; an open reservation stays writable
 * until its commit, which returns -ECONNABORTED.  weft_stream_buffered
 * still shows what had been received.  It does not free the stream: its
 * owner still calls weft_stream_close, which then only releases (the fd
 * is closed unless keep_fd; returns 0).  A server's handler may abort its
 * stream: the server's close after the handler returns only frees it
 * (weft/server.h).  Idempotent.  Returns 0, -EINVAL (s NULL).  Any
 * thread, never waits, as weft_stream_end_input: the caller makes sure
 * s is not being closed meanwhile.
 */
WEFT_API int weft_stream_abort(weft_stream *s);

/* Flush, close the fd (unless keep_fd) and free the stream (not one of
 * weft_stream_open_in: its memory is the caller's again).  Returns 0 or
 * the flush's error; the stream is freed either way (in a task).  If the flush is cut
 * short (cancellation, scope deadline, send error), queued bytes are
 * dropped: on a socket an in-flight send is aborted with shutdown(2); on
 * other fds close waits for it to complete.  s NULL: -EINVAL; outside a
 * task: -EPERM, and nothing is flushed, closed or freed.  After
 * weft_stream_abort it only releases and returns 0. */
WEFT_API int weft_stream_close(weft_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_STREAM_H */
