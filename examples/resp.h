/*
 * resp.h — the RESP2 request parser of kv_server (header-only).
 *
 * A Redis client sends each command as a multibulk: `*<argc>\r\n` then
 * argc bulk strings `$<len>\r\n<len bytes>\r\n`; redis-benchmark's
 * PING_INLINE (and telnet) send the inline form, one line of words,
 * `PING\r\n`.
 *
 * resp_parse looks at bytes already received (the stream's read buffer,
 * weft_stream_buffered) and, when a whole command is there, points the
 * arguments straight into those bytes: nothing is copied, however big
 * the arguments.  The caller parses every whole command the buffer holds,
 * answers them all and only then consumes the bytes and waits for more:
 * pipelined commands cost one receive and one send per batch.  A command
 * not complete yet is left alone (RESP_NEED) with the number of bytes it
 * is known to need so far, so the caller can receive up to there
 * (weft_stream_fill_to) past the stream's limit: a bulk of up to
 * max_bulk (kv_server's --max-bulk, 512 MiB by default, as Redis) is
 * read into the stream's buffer, which grows as its bytes arrive, never
 * to a length a client claims.  A client claiming `$500000000` and
 * sending three bytes costs three bytes.  The argument array is the
 * caller's: RESP_BIG asks for a bigger one once it is full, so it too
 * grows with arguments that arrived, not with a claimed count.
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

#include <stdbool.h>
#include <stddef.h>
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

/* A command: argv[0..argc), in an array of cap the caller gives. */
struct resp_cmd {
	struct resp_arg *argv;
	size_t argc, cap;
};

/* resp_parse's results besides a byte count */
enum {
	RESP_NEED = 0,   /* incomplete: receive more */
	RESP_BIG = -1,   /* cmd->cap arguments parsed and more received: parse
			    again with a bigger array */
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
		if (c->argc == c->cap)
			return RESP_BIG;
		c->argv[c->argc++] = (struct resp_arg){ p + i, j - i };
		i = j;
	}
	return (ssize_t)(nl - p) + 1;
}

/*
 * Parse the command at p[0..n) (n >= 1).  Returns the bytes it takes with
 * cmd's arguments pointing into p (argc 0: an empty command, `*0` or a
 * blank line, to skip), RESP_NEED with *known set to how many bytes the
 * command is known to need at least (0 for an inline line: it is bounded
 * by RESP_INLINE_MAX), RESP_BIG, or RESP_ERROR with *err set.
 */
static inline ssize_t resp_parse(const char *p, size_t n, struct resp_cmd *c, size_t max_bulk,
				 size_t *known, const char **err)
{
	*known = 0; /* an inline line is bounded by RESP_INLINE_MAX */
	if (p[0] != '*')
		return resp_inline(p, n, c, err);
	*known = n + 1;
	long long v = 0;
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
	for (long long k = 0; k < v; k++) {
		/* at least what is known of this argument, then 6 bytes
		 * ("$0\r\n\r\n") for each one after it: a command of many
		 * arguments is received in big steps, not parsed again after
		 * every receive */
		size_t after = 6 * (size_t)(v - k - 1);
		*known = pos + 6 + after;
		if (pos == n)
			return RESP_NEED;
		if (c->argc == c->cap)
			return RESP_BIG; /* only once there is another argument */
		if (p[pos] != '$') {
			*err = "Protocol error: expected '$'";
			return RESP_ERROR;
		}
		long long len = 0;
		r = resp_len_line(p + pos, n - pos, &len);
		if (r == RESP_NEED) {
			if (*known <= n) /* more of the length line is here */
				*known = n + 1 + after;
			return RESP_NEED;
		}
		if (r < 0 || len < 0 || (unsigned long long)len > max_bulk) {
			*err = "Protocol error: invalid bulk length";
			return RESP_ERROR;
		}
		pos += (size_t)r;
		if (n - pos < (size_t)len + 2) {
			*known = pos + (size_t)len + 2 + after;
			/* a wrong byte where the CRLF must be is an error now */
			if (n - pos > (size_t)len && p[pos + len] != '\r')
				goto no_crlf;
			return RESP_NEED;
		}
		if (p[pos + len] != '\r' || p[pos + len + 1] != '\n')
			goto no_crlf;
		c->argv[c->argc++] = (struct resp_arg){ p + pos, (size_t)len };
		pos += (size_t)len + 2;
	}
	return (ssize_t)pos;
no_crlf:
	*err = "Protocol error: expected CRLF after bulk data";
	return RESP_ERROR;
}

#endif
