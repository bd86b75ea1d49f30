/*
 * resp.h — the RESP2 request parser of kv_server (header-only).
 *
 * A Redis client sends each command as a multibulk: `*<argc>\r\n` then
 * argc bulk strings `$<len>\r\n<len bytes>\r\n`; redis-benchmark's
 * PING_INLINE (and telnet) send the inline form, one line of words,
 * `PING\r\n`.  Two ways to read a command:
 *
 *  - resp_parse: the fast path.  It looks at bytes already received (the
 *    stream's read buffer, weft_stream_buffered) and, when a whole command
 *    is there, points the arguments straight into those bytes: nothing is
 *    copied.  The caller parses every whole command the buffer holds,
 *    answers them all and only then consumes the bytes and waits for
 *    more: pipelined commands cost one receive and one send per batch.
 *    A command not complete yet is left alone (`need more`), and the
 *    caller either receives more or, if it is big, takes the slow path.
 *
 *  - resp_read_big: the slow path, for a command whose bytes should not
 *    wait in the stream's buffer (a bulk of up to --max-bulk, 512 MiB by
 *    default, or more arguments than the fast path's array holds).  It
 *    copies each argument into a buffer of its own, consuming the stream
 *    as it goes, so the stream's buffer never holds more than one
 *    receive's worth.  Memory follows the bytes that arrived, never the
 *    lengths a client claims: the argument buffer at most doubles past
 *    what it holds (and never beyond the bulk's own length), the argument
 *    array doubles as arguments come.  A client claiming `$500000000` and
 *    sending three bytes costs three bytes.
 *
 * Protocol errors are Redis's words ("Protocol error: invalid bulk
 * length"); the server answers them with -ERR and closes, as Redis does.
 *
 * Limits: a multibulk count above RESP_MAX_ARGS (1M, Redis's limit for a
 * client that has not authenticated) or a bulk above the caller's max_bulk
 * is a protocol error at once; a length line is digits only (a leading
 * '-' only where RESP allows it: `*-1` is an empty command, `$-1` an
 * error); an inline line is at most RESP_INLINE_MAX bytes (32 KiB; Redis
 * allows 64) and is split on
 * spaces and tabs (no quoting, unlike redis-server's).
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include "weft.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

enum {
	RESP_MAX_ARGS = 1024 * 1024,
	RESP_INLINE_MAX = 32 * 1024, /* under the stream's limit (64 KiB) */
	RESP_LEN_MAX = 20, /* digits of a length, with its sign */
};

struct resp_arg {
	const char *p;
	size_t n;
};

/* A command: argv[0..argc).  The fast path fills an array of `cap` the
 * caller gives; the slow path one of its own. */
struct resp_cmd {
	struct resp_arg *argv;
	size_t argc, cap;
};

/* resp_parse's results besides a byte count */
enum {
	RESP_NEED = 0,   /* incomplete: receive more (or take the slow path) */
	RESP_BIG = -1,   /* more arguments than cmd->cap: take the slow path */
	RESP_ERROR = -2, /* protocol error, *err says which */
};

/* A length line at p[0..n): prefix byte, then an optional '-', digits and
 * CRLF.  Returns the line's length with *v set, RESP_NEED if the line may
 * still become valid, RESP_ERROR if it cannot. */
static inline ssize_t resp_len_line(const char *p, size_t n, long long *v)
{
	size_t i = 1;
	bool neg = false;
	if (i < n && p[i] == '-') {
		neg = true;
		i++;
	}
	size_t d0 = i;
	unsigned long long x = 0;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		if (i - d0 >= 18) /* 10^18 and up: no length is that big */
			return RESP_ERROR;
		x = x * 10 + (unsigned)(p[i] - '0');
	}
	if (i == n)
		return RESP_NEED; /* digits (or none yet) so far */
	if (i == d0 || p[i] != '\r')
		return RESP_ERROR; /* no digits, or something else than CR */
	if (i + 1 == n)
		return RESP_NEED;
	if (p[i + 1] != '\n')
		return RESP_ERROR;
	*v = neg ? -(long long)x : (long long)x;
	return (ssize_t)(i + 2);
}

/* An inline command: p[0..n) starts with something else than '*'. */
static inline ssize_t resp_inline(const char *p, size_t n, struct resp_cmd *c,
				  const char **err)
{
	const char *nl = memchr(p, '\n', n < RESP_INLINE_MAX ? n : RESP_INLINE_MAX);
	if (!nl) {
		if (n < RESP_INLINE_MAX)
			return RESP_NEED;
		*err = "Protocol error: too big inline request";
		return RESP_ERROR;
	}
	size_t len = (size_t)(nl - p), i = 0;
	if (len && p[len - 1] == '\r')
		len--;
	c->argc = 0;
	while (i < len) {
		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == len)
			break;
		size_t j = i;
		while (j < len && p[j] != ' ' && p[j] != '\t')
			j++;
		if (c->argc == c->cap) {
			*err = "Protocol error: too many arguments in inline request";
			return RESP_ERROR;
		}
		c->argv[c->argc++] = (struct resp_arg){ p + i, j - i };
		i = j;
	}
	return (ssize_t)(nl - p) + 1;
}

/*
 * Parse the command at p[0..n) (n >= 1).  Returns the bytes it takes with
 * cmd's arguments pointing into p (argc 0: an empty command, `*0` or a
 * blank line, to skip), RESP_NEED with *known set to how many bytes the
 * command is known to need at least (so the caller can tell a small
 * command, worth receiving more for, from a big one), RESP_BIG, or
 * RESP_ERROR with *err set.
 */
static inline ssize_t resp_parse(const char *p, size_t n, struct resp_cmd *c, size_t max_bulk,
				 size_t *known, const char **err)
{
	*known = 0; /* an inline line is bounded by RESP_INLINE_MAX */
	if (p[0] != '*')
		return resp_inline(p, n, c, err);
	*known = n + 1;
	long long v;
	ssize_t r = resp_len_line(p, n, &v);
	if (r == RESP_NEED)
		return RESP_NEED;
	if (r < 0 || v > RESP_MAX_ARGS) {
		*err = "Protocol error: invalid multibulk length";
		return RESP_ERROR;
	}
	size_t pos = (size_t)r;
	c->argc = 0;
	if (v <= 0)
		return (ssize_t)pos; /* `*0`, `*-1`: nothing to do, as Redis */
	if ((size_t)v > c->cap)
		return RESP_BIG;
	for (long long k = 0; k < v; k++) {
		if (pos == n)
			return RESP_NEED;
		if (p[pos] != '$') {
			*err = "Protocol error: expected '$'";
			return RESP_ERROR;
		}
		long long len = 0;
		r = resp_len_line(p + pos, n - pos, &len);
		if (r == RESP_NEED)
			return RESP_NEED;
		if (r < 0 || len < 0 || (unsigned long long)len > max_bulk) {
			*err = "Protocol error: invalid bulk length";
			return RESP_ERROR;
		}
		pos += (size_t)r;
		*known = pos + (size_t)len + 2;
		if (n - pos < (size_t)len + 2) {
			/* a wrong byte where the CRLF must be is an error now */
			if (n - pos > (size_t)len && p[pos + len] != '\r')
				goto no_crlf;
			return RESP_NEED;
		}
		if (p[pos + len] != '\r' || p[pos + len + 1] != '\n')
			goto no_crlf;
		c->argv[c->argc++] = (struct resp_arg){ p + pos, (size_t)len };
		pos += (size_t)len + 2;
		*known = pos + 1;
	}
	return (ssize_t)pos;
no_crlf:
	*err = "Protocol error: expected CRLF after bulk data";
	return RESP_ERROR;
}

/* ---------------------------------------------------------------------- */
/* the slow path                                                           */
/* ---------------------------------------------------------------------- */

/* A big command's arguments, copied out of the stream: data holds them
 * one after another (offs[i], lens[i]); cmd.argv points into it once the
 * command is whole.  Reused from one big command to the next of a
 * connection; resp_big_free gives it all back. */
struct resp_big {
	char *data;
	size_t used, cap;
	size_t *offs, *lens;
	size_t nargs, acap;
	struct resp_arg *argv;
	struct resp_cmd cmd;
};

static inline void resp_big_free(struct resp_big *b)
{
	free(b->data);
	free(b->offs);
	free(b->lens);
	free(b->argv);
	memset(b, 0, sizeof(*b));
}

/* Read a length line with prefix `pfx` off the stream.  0 with *v, or
 * -errno (end of input: -ENODATA), -EBADMSG when the line starts with
 * another byte, -EPROTO when it is no length. */
static inline int resp_read_len(weft_stream *s, char pfx, long long *v)
{
	for (;;) {
		const char *p;
		size_t n = weft_stream_buffered(s, &p);
		if (n) {
			if (p[0] != pfx)
				return -EBADMSG;
			ssize_t r = resp_len_line(p, n, v);
			if (r > 0)
				return weft_stream_consume(s, (size_t)r);
			if (r < 0)
				return -EPROTO;
		}
		ssize_t f = weft_stream_fill(s);
		if (f <= 0)
			return f == 0 ? -ENODATA : (int)f;
	}
}

/* Room for `more` bytes in b->data, growing by doubling; `bound` caps the
 * growth at what the current argument still needs. */
static inline int resp_big_room(struct resp_big *b, size_t more, size_t bound)
{
	if (b->cap - b->used >= more)
		return 0;
	size_t cap = b->cap ? b->cap * 2 : 4096;
	if (cap < b->used + more)
		cap = b->used + more;
	if (cap > b->used + bound)
		cap = b->used + bound;
	char *d = realloc(b->data, cap);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

/*
 * Read the command at the head of the stream into b (b->cmd).  Returns 0,
 * -ENODATA when the client went away in the middle (or before it), -EPROTO
 * with *err set for a protocol error, -ENOMEM, or a read error.
 */
static inline int resp_read_big(weft_stream *s, struct resp_big *b, size_t max_bulk,
				const char **err)
{
	long long argc = 0;
	b->used = b->nargs = 0;
	b->cmd = (struct resp_cmd){ 0 };
	int r = resp_read_len(s, '*', &argc);
	if (r == -EPROTO || r == -EBADMSG || (r == 0 && argc > RESP_MAX_ARGS)) {
		*err = "Protocol error: invalid multibulk length";
		return -EPROTO;
	}
	if (r < 0)
		return r;
	for (long long k = 0; k < argc; k++) {
		long long len = 0;
		r = resp_read_len(s, '$', &len);
		if (r == -EBADMSG) {
			*err = "Protocol error: expected '$'";
			return -EPROTO;
		}
		if (r == -EPROTO || (r == 0 && (len < 0 || (unsigned long long)len > max_bulk))) {
			*err = "Protocol error: invalid bulk length";
			return -EPROTO;
		}
		if (r < 0)
			return r;
		if (b->nargs == b->acap) {
			size_t cap = b->acap ? b->acap * 2 : 64;
			size_t *o = realloc(b->offs, cap * sizeof(*o));
			if (o)
				b->offs = o;
			size_t *l = realloc(b->lens, cap * sizeof(*l));
			if (l)
				b->lens = l;
			if (!o || !l)
				return -ENOMEM;
			b->acap = cap;
		}
		b->offs[b->nargs] = b->used;
		b->lens[b->nargs] = (size_t)len;
		/* the bytes, as they come, then the CRLF */
		size_t left = (size_t)len;
		while (left) {
			const char *p;
			size_t n = weft_stream_buffered(s, &p);
			if (!n) {
				ssize_t f = weft_stream_fill(s);
				if (f <= 0)
					return f == 0 ? -ENODATA : (int)f;
				continue;
			}
			if (n > left)
				n = left;
			if ((r = resp_big_room(b, n, left)) < 0)
				return r;
			memcpy(b->data + b->used, p, n);
			b->used += n;
			left -= n;
			weft_stream_consume(s, n);
		}
		for (;;) {
			const char *p;
			size_t n = weft_stream_buffered(s, &p);
			if (n >= 2 || (n == 1 && p[0] != '\r')) {
				if (p[0] != '\r' || p[1] != '\n') {
					*err = "Protocol error: expected CRLF after bulk data";
					return -EPROTO;
				}
				weft_stream_consume(s, 2);
				break;
			}
			ssize_t f = weft_stream_fill(s);
			if (f <= 0)
				return f == 0 ? -ENODATA : (int)f;
		}
		b->nargs++;
	}
	if (b->nargs) {
		struct resp_arg *a = realloc(b->argv, b->nargs * sizeof(*a));
		if (!a)
			return -ENOMEM;
		b->argv = a;
		for (size_t i = 0; i < b->nargs; i++)
			a[i] = (struct resp_arg){ b->lens[i] ? b->data + b->offs[i] : "", b->lens[i] };
	}
	b->cmd = (struct resp_cmd){ b->argv, b->nargs, b->nargs };
	return 0;
}

#endif
