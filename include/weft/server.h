/*
 * weft/server.h — serve a listening address: one task per connection,
 * spread across the loops (asyncio.start_server).
 *
 * Each loop accepts with a multishot accept.  By default every loop has its
 * own SO_REUSEPORT listener and the kernel spreads connections over them:
 * 1.4x the requests/s of one shared listener when every request is a new
 * connection; with a few long-lived connections the shared listener (its
 * connection tasks then spread by stealing) measured faster here
 * (docs/benchmarks.md).  config.shared_listener picks it.  Each
 * accepted connection becomes a weft_stream handed to the handler in a new
 * task on the accepting loop (stealable like any task).  When the handler
 * returns, the server closes the stream (flushing what it queued).
 *
 * Limits: at most max_conns connections at once (more are accepted and
 * closed at once, counted as rejected); every receive waits at most
 * idle_timeout_ns if set; sending stalls at most write_timeout_ns (a
 * client that stops reading: the handler's drain fails with -ETIMEDOUT,
 * and the close after the handler drops what is still queued and releases
 * the fd at once, as nginx's send_timeout); the handler can bound a whole
 * request head with weft_stream_read_deadline (the HTTP example does), so
 * slow or silent clients cannot pin connections.
 *
 * Defaults by use.  The defaults are protocol-neutral, as asyncio's
 * start_server, Redis and memcached are: no idle timeout (clients of
 * databases and caches keep pools of idle connections for hours), and a
 * 64 KiB limit on a line or delimited unit (asyncio's; a longer unit of
 * known length is read with weft_stream_fill_to without raising it).  Set
 * them by the protocol:
 *
 *   use                     idle_timeout_ns   stream_limit
 *   HTTP/1.1 keep-alive     60 s (nginx 75 s) the longest head (8-16 KiB),
 *                                             plus a head deadline
 *   Redis/RESP, memcached   WEFT_FOREVER      64 KiB (command lines; bulk
 *                                             values via fill_to)
 *   line protocols (SMTP,   minutes           the longest line
 *   chat)
 *   internal RPC            WEFT_FOREVER      the frame header; frames via
 *                                             fill_to
 *
 * max_conns (65536), write_timeout_ns (60 s: a peer that takes no byte
 * for a minute is gone, whatever the protocol) and grace_ns (5 s) fit every
 * use.
 *
 * An accept that fails for lack of fds
 * or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM, ENOSPC) backs off and
 * retries: the server keeps serving once they are free again.  Any other
 * failed accept but the listener's own (EBADF, EINVAL, ENOTSOCK) is
 * skipped, as Linux reports a new connection's network errors from
 * accept.
 *
 * Shutdown is graceful: stop accepting; tell the handlers, by ending every
 * connection's input at its next message boundary (WEFT_END_IDLE,
 * weft/stream.h: a read waiting for the next request returns -ESHUTDOWN,
 * one in the middle of a request goes on), so idle connections close in
 * milliseconds; let the rest finish within a grace period, then cancel
 * them and wait.  With config.handle_signals, SIGINT or SIGTERM starts it.
 * A handler that waits on something other than its stream (a queue, a
 * timer) can poll weft_server_closing, or is cancelled at the end of the
 * grace period.  weft_server_close_clients and weft_server_abort_clients
 * (asyncio 3.13's Server.close_clients / abort_clients) end the open
 * connections without stopping the server.
 */
#ifndef WEFT_SERVER_H
#define WEFT_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_server weft_server;
struct weft_stream;
struct weft_sockaddr;

/* Serves one connection.  The stream belongs to the server: do not close
 * it (weft_stream_abort is allowed: the client gets a reset, and the
 * server's close after the handler returns only frees the stream).  The
 * return value is ignored. */
typedef void (*weft_conn_fn)(struct weft_stream *conn, void *arg);

typedef struct weft_server_config {
	unsigned max_conns;       /* open connections at most (65536) */
	int backlog;              /* listen backlog (SOMAXCONN) */
	uint64_t idle_timeout_ns; /* a receive waiting longer fails with
				     -ETIMEDOUT (WEFT_FOREVER: none, the
				     default; as weft.h's "Timeouts and
				     deadlines", so 0 fails every receive
				     that would wait) */
	uint64_t grace_ns;        /* shutdown grace for open connections
				     when a signal (handle_signals) or
				     weft_server_destroy shuts down (5 s;
				     WEFT_FOREVER: no limit; 0: none) */
	bool shared_listener;     /* one listener, accepted on loop 0 */
	bool handle_signals;      /* SIGINT/SIGTERM start a graceful shutdown */
	size_t conn_stack_size;   /* stack of connection tasks (runtime's) */
	size_t stream_limit;      /* weft_stream_config.limit (64 KiB) */
	bool multishot_recv;      /* weft_stream_config.multishot */
	bool stream_in_frame;     /* open each connection's stream in its
				     task's frame (weft_stream_open_in), not
				     on the heap (false): 320 bytes less per
				     connection whose handler stays shallow,
				     such as a relay waiting in
				     weft_stream_copy_bidirectional (its idle
				     task touches one stack page, which then
				     holds the stream too); a handler whose
				     deepest calls come within 320 bytes of
				     the end of that page (the allocator's
				     slow paths under a write, for
				     http_server) touches a second one
				     instead, 4 KiB more (docs/io.md,
				     "Proxies") */
	uint64_t write_timeout_ns; /* weft_stream_config.write_timeout_ns of
				      each connection: a handler's drain or
				      flush, and the close after it returns,
				      fail with -ETIMEDOUT once the client
				      has taken no bytes for this long (60 s;
				      WEFT_FOREVER: none) */
	unsigned stream_max_read; /* weft_stream_config.max_read (256 KiB;
				     0: the stream's default) */
	unsigned reserved[3];     /* must be zero */
} weft_server_config;

WEFT_API void weft_server_config_init(weft_server_config *cfg);

/*
 * Listen on `addr` (port 0: an ephemeral port, see weft_server_port) and
 * start accepting on every loop of rt (NULL: the caller's runtime).  Each
 * connection runs fn(stream, arg) in its own task.  Returns 0 with *out
 * set, -EINVAL, -EADDRINUSE and other listen errors, -ENOMEM (also when
 * an acceptor task cannot get its stack), -ESHUTDOWN.
 * Any thread.  Stop it with weft_server_shutdown, free it with
 * weft_server_destroy.
 */
WEFT_API int weft_server_start(weft_server **out, weft_runtime *rt,
			       const struct weft_sockaddr *addr,
			       const weft_server_config *cfg, weft_conn_fn fn, void *arg);

/* The port the server listens on. */
WEFT_API uint16_t weft_server_port(const weft_server *s);

/*
 * Graceful shutdown: stop accepting, end every connection's input at its
 * next message boundary (idle handlers see -ESHUTDOWN at once), wait up to
 * grace_ns for open connections to finish, cancel the rest and wait for
 * them.  grace_ns
 * follows weft.h's "Timeouts and deadlines": WEFT_FOREVER waits for the
 * connections without limit, 0 cancels them at once (pass cfg.grace_ns for
 * the configured grace).  Only the first call's grace counts.  Idempotent;
 * concurrent callers all wait.  Returns 0, or -ECANCELED / -ETIMEDOUT if
 * the calling task gave up waiting (the shutdown carries on).  From a task
 * or a foreign thread.  The sequence runs in a task of its own; if that
 * task cannot be spawned (no memory for its stack), the caller runs it.
 */
WEFT_API int weft_server_shutdown(weft_server *s, uint64_t grace_ns);

/*
 * End every connection open now, without stopping the server (asyncio's
 * Server.close_clients): each connection's input ends at once
 * (WEFT_END_NOW: a read that would wait returns -ESHUTDOWN, one waiting is
 * interrupted; buffered bytes are still read), so its handler returns and
 * the server closes the stream, flushing what the handler queued.
 * Connections accepted later are not affected.  Returns 0, -EINVAL.  Any
 * thread or task; never waits (weft_server_stats_get's `active` shows them
 * go).
 */
WEFT_API int weft_server_close_clients(weft_server *s);

/*
 * Abort every connection open now (asyncio's Server.abort_clients): each
 * connection is reset at once with weft_stream_abort (RST; queued bytes
 * dropped, an in-flight send cut short; the handler's stream calls return
 * -ECONNABORTED) and each handler is cancelled (its other waits return
 * -ECANCELED).  Connections accepted later are not affected.  Returns 0,
 * -EINVAL.  Any thread or task; never waits.
 */
WEFT_API int weft_server_abort_clients(weft_server *s);

/* Whether shutdown has begun (by weft_server_shutdown, destroy or a
 * signal): for handlers that wait on something other than their stream.
 * false for NULL.  Any thread. */
WEFT_API bool weft_server_closing(const weft_server *s);

/* Wait until the server has shut down (by a signal or another task). 0,
 * -ECANCELED, -ETIMEDOUT.  From a task or a foreign thread. */
WEFT_API int weft_server_wait(weft_server *s);

typedef struct weft_server_stats {
	uint64_t accepted;      /* connections accepted in all */
	uint64_t active;        /* open now */
	uint64_t rejected;      /* closed at once: over max_conns, or no
				   memory (or stack) for its task */
	uint64_t accept_errors; /* failed accepts (EMFILE, ...) */
	uint64_t reserved[4];
} weft_server_stats;

WEFT_API int weft_server_stats_get(const weft_server *s, weft_server_stats *out);

/* Shut down (if not yet) and free.  From a foreign thread or a task that
 * is not one of the server's connections. */
WEFT_API void weft_server_destroy(weft_server *s);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_SERVER_H */
