/*
 * Sockets (weft/net.h): addresses, listen/connect for TCP, UDP and Unix,
 * name lookup on the blocking pool, and the common options.
 */
#include "io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- addresses ---- */

int weft_addr_ip(weft_sockaddr *out, const char *ip, uint16_t port)
{
	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!ip || !*ip || strcmp(ip, "*") == 0) {
		out->in6.sin6_family = AF_INET6;
		out->in6.sin6_addr = in6addr_any;
		out->in6.sin6_port = htons(port);
		out->len = sizeof(out->in6);
		return 0;
	}
	if (inet_pton(AF_INET, ip, &out->in.sin_addr) == 1) {
		out->in.sin_family = AF_INET;
		out->in.sin_port = htons(port);
		out->len = sizeof(out->in);
		return 0;
	}
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(ip);
	if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, ip + 1, n - 2); /* "[::1]" */
		buf[n - 2] = 0;
		ip = buf;
	}
	if (inet_pton(AF_INET6, ip, &out->in6.sin6_addr) == 1) {
		out->in6.sin6_family = AF_INET6;
		out->in6.sin6_port = htons(port);
		out->len = sizeof(out->in6);
		return 0;
	}
	return -EINVAL;
}

int weft_addr_unix(weft_sockaddr *out, const char *path)
{
	if (!out || !path || !*path)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	size_t n = strlen(path);
	if (n >= sizeof(out->un.sun_path))
		return -ENAMETOOLONG;
	out->un.sun_family = AF_UNIX;
	memcpy(out->un.sun_path, path, n);
	if (path[0] == '@') { /* abstract: leading NUL, no terminator */
		out->un.sun_path[0] = 0;
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

int weft_addr_format(const weft_sockaddr *a, char *buf, size_t cap)
{
	if (!a || !buf || !cap)
		return -EINVAL;
	char ip[INET6_ADDRSTRLEN];
	int n;
	switch (a->sa.sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &a->in.sin_addr, ip, sizeof(ip));
		n = snprintf(buf, cap, "%s:%u", ip, ntohs(a->in.sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof(ip));
		n = snprintf(buf, cap, "[%s]:%u", ip, ntohs(a->in6.sin6_port));
		break;
	case AF_UNIX:
		n = snprintf(buf, cap, "%s%s", a->un.sun_path[0] ? "" : "@",
			     a->un.sun_path + !a->un.sun_path[0]);
		break;
	default:
		return -EINVAL;
	}
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

uint16_t weft_addr_port(const weft_sockaddr *a)
{
	if (!a)
		return 0;
	if (a->sa.sa_family == AF_INET)
		return ntohs(a->in.sin_port);
	if (a->sa.sa_family == AF_INET6)
		return ntohs(a->in6.sin6_port);
	return 0;
}

static int sock_name(int fd, weft_sockaddr *out, bool peer)
{
	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->len = sizeof(out->ss);
	int r = peer ? getpeername(fd, &out->sa, &out->len) : getsockname(fd, &out->sa, &out->len);
	return r < 0 ? -errno : 0;
}

int weft_sock_local(int fd, weft_sockaddr *out)
{
	return sock_name(fd, out, false);
}

int weft_sock_peer(int fd, weft_sockaddr *out)
{
	return sock_name(fd, out, true);
}

/* ---- name lookup on the blocking pool ---- */

typedef struct lookup {
	char *host;
	char port[8];
	int type;
	struct addrinfo *res;
	int rc;
	int err; /* errno of the pool thread, for EAI_SYSTEM */
} lookup;

static void *lookup_run(void *arg)
{
	lookup *q = arg;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = q->type,
				  .ai_flags = AI_ADDRCONFIG };
	q->rc = getaddrinfo(q->host, q->port, &hints, &q->res);
	q->err = errno; /* rule 2: errno belongs to this thread */
	return q;
}

static void lookup_free(lookup *q)
{
	if (q->res)
		freeaddrinfo(q->res);
	free(q->host);
	free(q);
}

/* The waiter gave up: the pool owns the lookup now (see weft_offload_ex). */
static void lookup_abandoned(void *result, void *arg)
{
	(void)result;
	lookup_free(arg);
}

static int gai_errno(int rc, int err)
{
	switch (rc) {
	case EAI_NONAME:
	case EAI_NODATA:
	case EAI_ADDRFAMILY:
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return err ? -err : -EIO;
	default:
		return -EINVAL;
	}
}

int weft_resolve(const char *host, uint16_t port, int type, weft_sockaddr *out, unsigned max)
{
	if (!host || !*host || !out || !max || (type != SOCK_STREAM && type != SOCK_DGRAM))
		return -EINVAL;
	if (weft_addr_ip(out, host, port) == 0)
		return 1; /* numeric: no lookup */
	lookup *q = calloc(1, sizeof(*q));
	if (!q || !(q->host = strdup(host))) {
		free(q);
		return -ENOMEM;
	}
	snprintf(q->port, sizeof(q->port), "%u", port);
	q->type = type;
	int r = weft_offload_ex(lookup_run, q, lookup_abandoned, NULL);
	if (r < 0)
		return r; /* -ECANCELED etc.: lookup_abandoned frees q */
	if (q->rc) {
		r = gai_errno(q->rc, q->err);
	} else {
		unsigned n = 0;
		for (struct addrinfo *ai = q->res; ai && n < max; ai = ai->ai_next) {
			if (ai->ai_addrlen > sizeof(out[n].ss))
				continue;
			memset(&out[n], 0, sizeof(out[n]));
			memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
			out[n].len = ai->ai_addrlen;
			n++;
		}
		r = n ? (int)n : -ENOENT;
	}
	lookup_free(q);
	return r;
}

/* ---- sockets ---- */

static int sock_open(int family, int type)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

static int setopt(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* Close fd keeping the error r (errno-safe). */
static int fail_close(int fd, int r)
{
	weft__fd_close(fd);
	return r;
}

int weft_tcp_listen(const weft_sockaddr *a, int backlog, unsigned flags)
{
	if (!a || (a->sa.sa_family != AF_INET && a->sa.sa_family != AF_INET6) ||
	    (flags & ~(WEFT_LISTEN_REUSEPORT | WEFT_LISTEN_V6ONLY)))
		return -EINVAL;
	int fd = sock_open(a->sa.sa_family, SOCK_STREAM);
	if (fd < 0)
		return fd;
	int r = setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (!r && (flags & WEFT_LISTEN_REUSEPORT))
		r = setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (!r && a->sa.sa_family == AF_INET6)
		r = setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, !!(flags & WEFT_LISTEN_V6ONLY));
	if (!r && bind(fd, &a->sa, a->len) < 0)
		r = -errno;
	if (!r && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
		r = -errno;
	return r ? fail_close(fd, r) : fd;
}

/* Connect a fresh socket of a's family, within timeout_ns (WEFT_FOREVER:
 * only the caller's scopes bound it). */
static int connect_addr(const weft_sockaddr *a, int type, uint64_t timeout_ns)
{
	int fd = sock_open(a->sa.sa_family, type);
	if (fd < 0)
		return fd;
	if (a->sa.sa_family != AF_UNIX && type == SOCK_STREAM)
		setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	weft_scope s;
	int r = 0;
	if (timeout_ns != WEFT_FOREVER)
		r = weft_scope_enter(&s, timeout_ns);
	if (!r)
		r = weft_connect(fd, &a->sa, a->len);
	if (timeout_ns != WEFT_FOREVER)
		weft_scope_exit(&s);
	return r < 0 ? fail_close(fd, r) : fd;
}

static bool tcp_addr_ok(const weft_sockaddr *a)
{
	return a && (a->sa.sa_family == AF_INET || a->sa.sa_family == AF_INET6);
}

int weft_tcp_connect(const weft_sockaddr *a, uint64_t timeout_ns)
{
	if (!tcp_addr_ok(a))
		return -EINVAL;
	return connect_addr(a, SOCK_STREAM, timeout_ns);
}

/* Whether a deadline scope around the calling task has expired.  An
 * attempt's -ETIMEDOUT that is not its own limit's is the caller's only
 * then; else the kernel gave up on that address (its SYN retries ran out)
 * and the next address is tried. */
static bool outer_expired(void)
{
	return weft__scope_expired(weft__task_self());
}

/* Try addrs in order, each attempt within attempt_ns, under the caller's
 * scopes (the overall limit among them). */
static int connect_each(const weft_sockaddr *addrs, size_t n, uint64_t attempt_ns,
			size_t *which)
{
	int r = -EINVAL;
	for (size_t i = 0; i < n; i++) {
		weft_scope sc;
		if ((r = weft_scope_enter(&sc, attempt_ns)) < 0)
			return r;
		r = connect_addr(&addrs[i], SOCK_STREAM, WEFT_FOREVER);
		bool own = weft_scope_exit(&sc) == 1; /* this attempt's limit */
		if (r >= 0) {
			if (which)
				*which = i;
			return r;
		}
		if ((r == -ETIMEDOUT && !own && outer_expired()) || r == -ECANCELED)
			return r; /* the overall limit, a scope, a cancellation */
	}
	return r;
}

int weft_tcp_connect_any(const weft_sockaddr *addrs, size_t n, uint64_t attempt_timeout_ns,
			 uint64_t timeout_ns, size_t *which)
{
	if (!addrs || !n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!tcp_addr_ok(&addrs[i]))
			return -EINVAL;
	weft_scope s;
	int r = weft_scope_enter(&s, timeout_ns);
	if (r < 0)
		return r;
	r = connect_each(addrs, n, attempt_timeout_ns, which);
	weft_scope_exit(&s);
	return r;
}

int weft_tcp_connect_host_any(const char *host, uint16_t port, uint64_t attempt_timeout_ns,
			      uint64_t timeout_ns)
{
	weft_scope s;
	int r = weft_scope_enter(&s, timeout_ns);
	if (r < 0)
		return r;
	weft_sockaddr addrs[8];
	int n = weft_resolve(host, port, SOCK_STREAM, addrs, 8);
	r = n < 0 ? n : connect_each(addrs, (size_t)n, attempt_timeout_ns, NULL);
	weft_scope_exit(&s);
	return r;
}

int weft_tcp_connect_host(const char *host, uint16_t port, uint64_t timeout_ns)
{
	return weft_tcp_connect_host_any(host, port, WEFT_FOREVER, timeout_ns);
}

int weft_udp_socket(const weft_sockaddr *a)
{
	int family = a ? a->sa.sa_family : AF_INET6;
	if (family != AF_INET && family != AF_INET6)
		return -EINVAL;
	int fd = sock_open(family, SOCK_DGRAM);
	if (fd < 0)
		return fd;
	int r = 0;
	if (family == AF_INET6)
		r = setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
	if (!r && a && bind(fd, &a->sa, a->len) < 0)
		r = -errno;
	return r ? fail_close(fd, r) : fd;
}

static bool unix_type_ok(int type)
{
	return type == SOCK_STREAM || type == SOCK_DGRAM || type == SOCK_SEQPACKET;
}

int weft_unix_bind(const char *path, int type)
{
	if (!unix_type_ok(type))
		return -EINVAL;
	weft_sockaddr a;
	int r = path ? weft_addr_unix(&a, path) : 0;
	if (r < 0)
		return r;
	int fd = sock_open(AF_UNIX, type);
	if (fd < 0)
		return fd;
	if (path && bind(fd, &a.sa, a.len) < 0)
		return fail_close(fd, -errno);
	return fd;
}

int weft_unix_listen(const char *path, int type, int backlog)
{
	if (!path || type == SOCK_DGRAM)
		return -EINVAL;
	struct stat st;
	if (path[0] != '@' && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket from an earlier run; nothing else */
	int fd = weft_unix_bind(path, type);
	if (fd >= 0 && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
		return fail_close(fd, -errno);
	return fd;
}

int weft_unix_connect(const char *path, int type)
{
	if (!unix_type_ok(type))
		return -EINVAL;
	weft_sockaddr a;
	int r = weft_addr_unix(&a, path);
	return r < 0 ? r : connect_addr(&a, type, WEFT_FOREVER);
}

/* ---- options ---- */

int weft_sock_nodelay(int fd, bool on)
{
	return setopt(fd, IPPROTO_TCP, TCP_NODELAY, on);
}

int weft_sock_keepalive(int fd, bool on, int idle_s, int interval_s, int count)
{
	if (idle_s < 0 || interval_s < 0 || count < 0)
		return -EINVAL;
	int r = setopt(fd, SOL_SOCKET, SO_KEEPALIVE, on);
	if (!r && on && idle_s)
		r = setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
	if (!r && on && interval_s)
		r = setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s);
	if (!r && on && count)
		r = setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, count);
	return r;
}

int weft_sock_buffers(int fd, int rcvbuf, int sndbuf)
{
	if (rcvbuf < 0 || sndbuf < 0)
		return -EINVAL;
	int r = 0;
	if (rcvbuf)
		r = setopt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
	if (!r && sndbuf)
		r = setopt(fd, SOL_SOCKET, SO_SNDBUF, sndbuf);
	return r;
}
