/*
 * weft/net.h — sockets: addresses, TCP over IPv4 and IPv6, UDP, Unix
 * stream and datagram sockets, name lookup off the loops, common options.
 *
 * Every call that can wait (connect, name lookup) is a suspension point and
 * follows weft/io.h's rules: call it from a task, it returns an fd or 0 on
 * success and -errno on failure, honours cancellation and deadline scopes,
 * and borrows its arguments only for the duration of the call.  The set-up
 * calls that never wait (listen, bind, options) may be called from any
 * thread.  Sockets are created SOCK_CLOEXEC; the caller owns every fd
 * returned and closes it (close(2) or weft_close).  Data moves with the
 * weft/io.h calls (weft_recv, weft_send_all, ...) or a weft_stream.
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Any socket address, with its length. */
typedef struct weft_sockaddr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
		struct sockaddr_storage ss;
	};
	socklen_t len;
} weft_sockaddr;

/* Numeric address: an IPv4 or IPv6 literal ("127.0.0.1", "::1", "[::1]")
 * or NULL / "" / "*" for the IPv6 wildcard (dual-stack) — no name lookup.
 * Returns 0 or -EINVAL.  Any thread. */
WEFT_API int weft_addr_ip(weft_sockaddr *out, const char *ip, uint16_t port);
/* A Unix socket path (an abstract name when it starts with '@').  0, or
 * -EINVAL (NULL, empty) / -ENAMETOOLONG.  Any thread. */
WEFT_API int weft_addr_unix(weft_sockaddr *out, const char *path);
/* "1.2.3.4:80", "[::1]:80" or the Unix path, into buf (NUL-terminated).
 * Returns the length or -ENOSPC / -EINVAL.  Any thread. */
WEFT_API int weft_addr_format(const weft_sockaddr *a, char *buf, size_t cap);
/* The port of an IP address (0 for others). */
WEFT_API uint16_t weft_addr_port(const weft_sockaddr *a);
/* The local / peer address of a socket: 0 or -errno.  Any thread. */
WEFT_API int weft_sock_local(int fd, weft_sockaddr *out);
WEFT_API int weft_sock_peer(int fd, weft_sockaddr *out);

/*
 * Resolve host and port with getaddrinfo(3) on the blocking pool, so the
 * loops never block on DNS.  Fills up to `max` addresses (both families,
 * in the resolver's order) and returns how many (>= 1), or -ENOENT (no
 * such host), -EAGAIN (temporary failure), -EINVAL, -ECANCELED, -ETIMEDOUT
 * (scope).  `type` is SOCK_STREAM or SOCK_DGRAM.  Numeric hosts skip the
 * pool.  Task only.
 */
WEFT_API int weft_resolve(const char *host, uint16_t port, int type, weft_sockaddr *out,
			  unsigned max);

/* weft_tcp_listen flags */
enum {
	WEFT_LISTEN_REUSEPORT = 1u << 0, /* SO_REUSEPORT: one listener per loop */
	WEFT_LISTEN_V6ONLY = 1u << 1,    /* IPv6 socket without IPv4 mapping */
};

/* A listening TCP socket on `a` (SO_REUSEADDR set; backlog <= 0 means
 * SOMAXCONN).  Returns the fd or -errno (-EADDRINUSE, ...).  Any thread. */
WEFT_API int weft_tcp_listen(const weft_sockaddr *a, int backlog, unsigned flags);
/* Connect to `a`; the connection has TCP_NODELAY set.  Returns the fd or
 * -errno; timeout_ns bounds it (-ETIMEDOUT) on top of any scope, as
 * weft.h's "Timeouts and deadlines" says (WEFT_FOREVER: no limit of its
 * own; 0: -ETIMEDOUT at once, a connect always has to wait).  Task only. */
WEFT_API int weft_tcp_connect(const weft_sockaddr *a, uint64_t timeout_ns);
/*
 * Connect to the first reachable of addrs[0..n) (IPv4 or IPv6): they are
 * tried one after another, in order, each attempt bounded by
 * attempt_timeout_ns and all of them by timeout_ns (both as weft.h's
 * "Timeouts and deadlines": WEFT_FOREVER, no limit of its own; 0, fail at
 * once).  An attempt that fails (refused, unreachable, or no answer
 * within attempt_timeout_ns: a dead address costs at most that) moves on
 * to the next; the overall timeout, the caller's scope or a cancellation
 * stops at once.  No Happy Eyeballs racing: one attempt at a time, so
 * put the preferred family first and keep attempt_timeout_ns short (a
 * few hundred milliseconds on a LAN, a few seconds across the Internet).
 * Returns the fd (TCP_NODELAY set, as weft_tcp_connect's) with *which
 * (when non-NULL) the index of the address that answered; or the last
 * attempt's error (-ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH, ...);
 * -ETIMEDOUT / -ECANCELED when the overall limit, a scope or a
 * cancellation ended it; -EINVAL (addrs NULL, n 0, an address of another
 * family).  Task only.
 */
WEFT_API int weft_tcp_connect_any(const weft_sockaddr *addrs, size_t n,
				  uint64_t attempt_timeout_ns, uint64_t timeout_ns,
				  size_t *which);
/* Resolve host (weft_resolve, its first 8 addresses) and connect to the
 * first reachable of them as weft_tcp_connect_any does: each attempt
 * within attempt_timeout_ns, the lookup and all attempts within
 * timeout_ns.  Returns the fd, or the lookup's error (-ENOENT, ...), or
 * as weft_tcp_connect_any.  Task only. */
WEFT_API int weft_tcp_connect_host_any(const char *host, uint16_t port,
				       uint64_t attempt_timeout_ns, uint64_t timeout_ns);
/* weft_tcp_connect_host_any with no per-attempt limit: each address in
 * turn until one connects, all within timeout_ns (as weft_tcp_connect's),
 * an address that never answers using up the rest.  Returns the fd, or
 * the last address's error.  Task only. */
WEFT_API int weft_tcp_connect_host(const char *host, uint16_t port, uint64_t timeout_ns);

/* A UDP socket bound to `a` (NULL: unbound, IPv6 dual-stack).  fd or
 * -errno.  Any thread.  Use weft_sendto / weft_recvfrom. */
WEFT_API int weft_udp_socket(const weft_sockaddr *a);
/* Unix sockets: type SOCK_STREAM or SOCK_DGRAM (SOCK_SEQPACKET also
 * works).  listen removes a stale socket file at path first; bind gives a
 * datagram socket an address (path NULL: unbound).  Any thread. */
WEFT_API int weft_unix_listen(const char *path, int type, int backlog);
WEFT_API int weft_unix_bind(const char *path, int type);
/* Connect a Unix socket: fd or -errno.  Task only. */
WEFT_API int weft_unix_connect(const char *path, int type);

/* Options: 0 or -errno.  Any thread. */
WEFT_API int weft_sock_nodelay(int fd, bool on);
/* SO_KEEPALIVE, with TCP_KEEPIDLE/INTVL/CNT when nonzero (seconds). */
WEFT_API int weft_sock_keepalive(int fd, bool on, int idle_s, int interval_s, int count);
/* SO_RCVBUF / SO_SNDBUF; 0 leaves one unchanged. */
WEFT_API int weft_sock_buffers(int fd, int rcvbuf, int sndbuf);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_NET_H */
