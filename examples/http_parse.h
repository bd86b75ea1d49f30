/*
 * http_parse.h: a strict, allocation-free HTTP/1.1 message-head parser and
 * chunked-body decoder shared by the HTTP examples (http_server, http_get)
 * and the load generator.  Header only: every function is static inline.
 *
 * ---------------------------------------------------------------- heads
 *
 *   int http_parse_request(buf, len, &req, max_head);
 *   int http_parse_response(buf, len, &res, max_head);
 *
 * Parse the message head (start line, header fields, the empty line) at the
 * start of buf[0..len).  Return:
 *
 *   > 0   the head is complete and valid; the value is its length in bytes
 *         (leading empty lines included), so the body or the next pipelined
 *         message starts at buf + rc.  Bytes after the head are never read.
 *   0     incomplete: every byte so far could still begin a valid head;
 *         call again, from the same buf, once more bytes have arrived.
 *   HTTP_E_BAD        malformed (a request: answer 400 and close)
 *   HTTP_E_TOO_LARGE  the head would exceed max_head bytes, or it has more
 *                     than HTTP_MAX_HEADERS fields (answer 431 and close)
 *   HTTP_E_VERSION    a well-formed HTTP-version other than 1.0 and 1.1
 *                     (answer 505 and close)
 *
 * The result is prefix-consistent: if a prefix of the input gives a nonzero
 * result, every longer input gives the same one.  An error is reported as
 * soon as it is certain (the first byte no extension can make valid), so a
 * server can answer a malformed request without waiting for its end.  Only
 * the first max_head bytes are examined: a head that has not ended within
 * them is HTTP_E_TOO_LARGE whatever follows (max_head 0 means
 * HTTP_DEFAULT_MAX_HEAD).  Calling again with more bytes re-parses from
 * the start; with heads of a few hundred bytes that costs less than keeping
 * state.
 *
 * On success the struct points into buf (it owns nothing: keep buf alive and
 * unmoved while you use it).  On any other result its contents are
 * unspecified.
 *
 * Strictness (RFC 9110 / RFC 9112), all HTTP_E_BAD unless said otherwise:
 *  - Lines end in CRLF.  A bare LF or a CR not followed by LF anywhere in
 *    the head is rejected (RFC 9112 2.2 allows either; rejecting removes
 *    a request-smuggling vector).
 *  - Requests: any number of empty lines (CRLF) before the request line are
 *    skipped and counted in the returned length (RFC 9112 2.2).  Responses:
 *    none.
 *  - request-line = method SP request-target SP HTTP-version CRLF, exactly
 *    one SP each.  The method is a non-empty token.  The target is visible
 *    ASCII (0x21-0x7E) except '#', non-empty, and in one of the RFC 9112 3.2
 *    forms: origin ("/..."), absolute ("scheme:..."), authority (CONNECT
 *    only, not starting with '/'), or asterisk ("*", OPTIONS only).
 *  - HTTP-version is "HTTP/" DIGIT "." DIGIT; anything else is HTTP_E_BAD,
 *    well-formed but not 1.0 or 1.1 is HTTP_E_VERSION.
 *  - status-line = HTTP-version SP 3DIGIT SP reason CRLF with the status in
 *    100..599 and the reason HTAB / SP / VCHAR / obs-text.  Leniency: the
 *    SP and reason may be missing ("HTTP/1.1 200\r\n"), as some servers do.
 *  - field-line = field-name ":" OWS field-value OWS CRLF.  The name is a
 *    non-empty token; whitespace before the colon, whitespace at the start
 *    of a line (obs-fold, or before the first field) is rejected.  Value
 *    bytes are HTAB, SP, VCHAR or obs-text (0x80-0xFF): NUL, CR, LF, DEL and
 *    other controls are rejected.  Leading and trailing OWS are trimmed.
 *  - Content-Length is 1*DIGIT (no sign, no list: "5, 5" is rejected), at
 *    most INT64_MAX; repeated fields must carry the same value.
 *  - Transfer-Encoding together with Content-Length is rejected (RFC 9112
 *    6.1 allows it for responses but calls it a smuggling sign).  In
 *    requests, Transfer-Encoding must be exactly "chunked" (any other
 *    coding would be 501; this parser says 400).  It is rejected in any
 *    HTTP/1.0 message (RFC 9112 6.1: faulty framing).  In responses,
 *    "chunked" must be the final coding and appear once.
 *  - Host: an HTTP/1.1 request without one, with two, or with a byte a host
 *    cannot contain is rejected (RFC 9112 3.2: MUST respond 400).
 *  - Connection is a comma-separated, case-insensitive token list; "close"
 *    turns keep_alive off, "keep-alive" turns it on for HTTP/1.0.
 *
 * ---------------------------------------------------------------- chunked
 *
 *   struct http_chunked c; http_chunked_init(&c);
 *   int http_chunked_next(&c, buf, len, &used, &data, &data_len);
 *   int http_chunked_decode(&c, buf, len, &consumed, &body_len);
 *
 * An incremental decoder of a chunked message body (RFC 9112 7.1) that keeps
 * all its state in the struct, so input may be split anywhere: every byte
 * given is consumed until the body ends.  http_chunked_next returns body
 * data as spans inside buf (zero copy); http_chunked_decode moves the body
 * data of buf to its front in place.  Both return 1 when the body has ended
 * (last chunk, trailer section and final CRLF consumed; the bytes after it
 * belong to the next message), 0 when more input is needed, HTTP_E_BAD on a
 * framing error and HTTP_E_TOO_LARGE when the trailer section exceeds
 * HTTP_CHUNK_TRAILER_MAX.  Errors are sticky.  Chunk extensions are
 * skipped (BWS ";" then HTAB / SP / VCHAR / obs-text up to the CRLF, a
 * size line at most HTTP_CHUNK_LINE_MAX bytes); trailer fields are checked
 * like header fields and dropped.  A chunk size is 1*HEXDIG, at most
 * INT64_MAX.
 */
#ifndef WEFT_EXAMPLES_HTTP_PARSE_H
#define WEFT_EXAMPLES_HTTP_PARSE_H

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef HTTP_MAX_HEADERS
#define HTTP_MAX_HEADERS 64
#endif
#define HTTP_DEFAULT_MAX_HEAD 8192
#ifndef HTTP_CHUNK_LINE_MAX
#define HTTP_CHUNK_LINE_MAX 4096
#endif
#ifndef HTTP_CHUNK_TRAILER_MAX
#define HTTP_CHUNK_TRAILER_MAX 8192
#endif

/* Results (negative errno values, as everywhere in weft). */
#define HTTP_E_BAD (-EBADMSG)              /* 400 */
#define HTTP_E_TOO_LARGE (-EMSGSIZE)       /* 431 */
#define HTTP_E_VERSION (-EPROTONOSUPPORT)  /* 505 */

/* How a response's body is delimited (RFC 9112 6.3).  A response to HEAD
 * has no body whatever its fields say: the caller knows its request. */
enum http_body {
	HTTP_BODY_NONE,    /* 1xx, 204, 304 */
	HTTP_BODY_LENGTH,  /* content_length bytes */
	HTTP_BODY_CHUNKED, /* chunked: use http_chunked_* */
	HTTP_BODY_EOF,     /* until the server closes (keep_alive is 0) */
};

struct http_header {
	const char *name; /* a token, as sent (compare case-insensitively) */
	size_t name_len;
	const char *value; /* OWS trimmed; may be empty */
	size_t value_len;
};

struct http_request {
	const char *method; /* a token, case-sensitive ("GET") */
	size_t method_len;
	const char *target; /* as sent, e.g. "/index.html?q=1" */
	size_t target_len;
	int minor_version;      /* 0 or 1 */
	int keep_alive;         /* the connection may carry another request */
	int chunked;            /* body is chunked (Transfer-Encoding) */
	int64_t content_length; /* -1: none (body is empty unless chunked) */
	size_t num_headers;
	struct http_header headers[HTTP_MAX_HEADERS];
};

struct http_response {
	int minor_version; /* 0 or 1 */
	int status;        /* 100..599 */
	const char *reason;
	size_t reason_len;
	int keep_alive;         /* the connection may carry another request */
	int chunked;            /* body == HTTP_BODY_CHUNKED */
	enum http_body body;
	int64_t content_length; /* -1: none */
	size_t num_headers;
	struct http_header headers[HTTP_MAX_HEADERS];
};

struct http_chunked {
	uint64_t remaining; /* chunk size being read, then data bytes left */
	size_t count;       /* bytes of the size line or of the trailers */
	unsigned state;
};

/* The status to answer a parse error with (400, 431, 505), or 0. */
static inline int http_error_status(int rc)
{
	return rc == HTTP_E_BAD ? 400 : rc == HTTP_E_TOO_LARGE ? 431 : rc == HTTP_E_VERSION ? 505 : 0;
}

/* ------------------------------------------------------------------ */

enum {
	HTTP__TCHAR = 1,  /* token: ALPHA DIGIT !#$%&'*+-.^_`|~ */
	HTTP__VALUE = 2,  /* field value: HTAB SP VCHAR obs-text */
	HTTP__TARGET = 4, /* request-target: 0x21-0x7E but '#' */
	HTTP__HOST = 8,   /* Host: ALPHA DIGIT -._~!$&'()*+,;=%:[] */
	HTTP__HEX = 16,
	HTTP__MORE = 1, /* internal: the input ended before the head did */
};

static inline unsigned http__class(unsigned char c)
{
	static const unsigned char t[256] = {
		0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,
		0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
		2,  15, 6,  3,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,
		31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 14, 14, 6,  14, 6,  6,
		6,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
		15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15,
		7,  31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
		15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
		2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,
	};
	return t[c];
}

static inline int http__is(const char *p, unsigned cls)
{
	return (http__class((unsigned char)*p) & cls) != 0;
}

static inline unsigned char http__lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static inline int http__alpha(unsigned char c)
{
	return http__lower(c) >= 'a' && http__lower(c) <= 'z';
}

/* a[0..n) equals the NUL-terminated b, ASCII case-insensitively. */
static inline int http__ieq(const char *a, size_t n, const char *b)
{
	size_t i = 0;
	for (; i < n && b[i]; i++)
		if (http__lower((unsigned char)a[i]) != http__lower((unsigned char)b[i]))
			return 0;
	return i == n && !b[i];
}

/* a[0..n) equals the literal `lit` (lowercase letters, digits and '-'
 * only) ASCII case-insensitively, where a holds no control characters (the
 * parser has checked it).  Setting bit 5 lowercases a letter and leaves
 * '-' and digits as they are; only a control character (0x0D, 0x10-0x19)
 * could turn into one of them, and a holds none.  Eight bytes a step:
 * the names and tokens the parser looks for take two steps at most. */
#define http__ieq_lit(a, n, lit) http__ieq_lit_((a), (n), (lit), sizeof(lit) - 1)
static inline int http__ieq_lit_(const char *a, size_t n, const char *lit, size_t litn)
{
	if (n != litn)
		return 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x, y;
		memcpy(&x, a + i, 8);
		memcpy(&y, lit + i, 8);
		if ((x | 0x2020202020202020ull) != y)
			return 0;
	}
	for (; i < n; i++)
		if (((unsigned char)a[i] | 0x20) != (unsigned char)lit[i])
			return 0;
	return 1;
}

/* The first header named `name` (case-insensitive), or NULL. */
static inline const struct http_header *http_find_header(const struct http_header *h, size_t n,
							 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (http__ieq(h[i].name, h[i].name_len, name))
			return &h[i];
	return NULL;
}

/*
 * Scanning sixteen bytes a step.  Nearly every byte of a head belongs to a
 * run the parser only has to find the end of: a name, a value, a target.
 * With GCC's vector extensions (SSE2 on x86-64, NEON on arm64, plain code
 * elsewhere) each scan tests sixteen bytes against its run's class at once
 * and finds the first byte outside it; the table (http__class) then judges
 * that byte, and takes the last fifteen bytes of the input, which a
 * sixteen-byte load must not cross.  A fast class may stop short of its
 * run's end, never past it: names test [A-Za-z0-9-], the token bytes
 * names are made of; a byte of the run the fast test stopped at is
 * stepped over and the scan goes on.
 */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__BYTE_ORDER__) && \
	__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HTTP__VEC 1
#ifdef __SSE2__
#include <emmintrin.h>
#endif
typedef unsigned char http__v16 __attribute__((vector_size(16)));
typedef signed char http__m16 __attribute__((vector_size(16)));

enum { HTTP__RUN_NAME, HTTP__RUN_VALUE, HTTP__RUN_TARGET };

/* The index (0..15) of the first byte at p outside run `run`, or 16. */
static inline unsigned http__run_stop(const char *p, int run)
{
	http__v16 x;
	memcpy(&x, p, 16);
	http__m16 stop;
	if (run == HTTP__RUN_NAME) {
		http__v16 l = (x | 0x20) - 'a', d = x - '0';
		stop = ~((l < 26) | (d < 10) | (x == '-'));
	} else if (run == HTTP__RUN_VALUE) { /* controls but HTAB, DEL */
		stop = ((x < 0x20) & (x != '\t')) | (x == 0x7f);
	} else { /* visible ASCII but '#' */
		stop = ((x - 0x21) > 0x7e - 0x21) | (x == '#');
	}
#ifdef __SSE2__
	unsigned m = (unsigned)_mm_movemask_epi8((__m128i)stop);
	return m ? (unsigned)__builtin_ctz(m) : 16;
#else
	uint64_t w[2];
	memcpy(w, &stop, 16);
	if (w[0])
		return (unsigned)__builtin_ctzll(w[0]) >> 3;
	return w[1] ? 8 + ((unsigned)__builtin_ctzll(w[1]) >> 3) : 16;
#endif
}
#endif

/* The end of the run of class `cls` (one bit of http__class) from p: the
 * first byte not in it, or `end`. */
static inline const char *http__skip(const char *p, const char *end, unsigned cls)
{
#ifdef HTTP__VEC
	int run = cls == HTTP__TCHAR ? HTTP__RUN_NAME
		: cls == HTTP__VALUE ? HTTP__RUN_VALUE
		: cls == HTTP__TARGET ? HTTP__RUN_TARGET : -1; /* others: the table */
	while (run >= 0 && end - p >= 16) {
		unsigned i = http__run_stop(p, run);
		p += i;
		if (i < 16) {
			if (!http__is(p, cls))
				return p;
			p++; /* in the class, not in the fast test: on */
		}
	}
#endif
	while (p < end && http__is(p, cls))
		p++;
	return p;
}

/* Next element of a comma-separated list in [*p, end), OWS trimmed (empty
 * elements included); 0 when the list is exhausted. */
static inline int http__list_next(const char **p, const char *end, const char **e, size_t *n)
{
	const char *s = *p;
	if (s == NULL)
		return 0;
	const char *c = memchr(s, ',', (size_t)(end - s));
	const char *t = c ? c : end;
	*p = c ? c + 1 : NULL;
	while (s < t && (*s == ' ' || *s == '\t'))
		s++;
	while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
		t--;
	*e = s;
	*n = (size_t)(t - s);
	return 1;
}

/* What the framing and connection fields said, while the head is read. */
struct http__fields {
	int64_t content_length; /* -1: none */
	unsigned te;            /* Transfer-Encoding lines */
	unsigned te_chunked;    /* the last coding so far is "chunked" */
	unsigned te_other;      /* some coding is not "chunked" */
	unsigned hosts;
	unsigned close, keep;
};

/* Act on one field whose meaning the parser needs, in a request (req) or a
 * response of HTTP/1.minor.  Returns 0 or a certain error. */
static inline int http__field(struct http__fields *f, const char *name, size_t nlen, const char *v,
			      size_t vlen, int req, int minor)
{
	const char *e, *end = v + vlen, *p = v;
	size_t n;

	if (nlen == 14 && http__ieq_lit(name, nlen, "content-length")) {
		if (vlen == 0 || f->te)
			return HTTP_E_BAD;
		int64_t x = 0;
		for (size_t i = 0; i < vlen; i++) {
			unsigned d = (unsigned char)v[i] - '0';
			if (d > 9 || x > (INT64_MAX - d) / 10)
				return HTTP_E_BAD;
			x = x * 10 + d;
		}
		if (f->content_length >= 0 && f->content_length != x)
			return HTTP_E_BAD;
		f->content_length = x;
	} else if (nlen == 17 && http__ieq_lit(name, nlen, "transfer-encoding")) {
		if (f->content_length >= 0 || minor == 0)
			return HTTP_E_BAD;
		f->te++;
		while (http__list_next(&p, end, &e, &n)) {
			if (n == 0)
				continue;
			if (f->te_chunked) /* chunked must be last, and once */
				return HTTP_E_BAD;
			if (http__ieq_lit(e, n, "chunked"))
				f->te_chunked = 1;
			else if (req) /* requests: chunked alone */
				return HTTP_E_BAD;
			else
				f->te_other = 1;
		}
	} else if (nlen == 10 && http__ieq_lit(name, nlen, "connection")) {
		while (http__list_next(&p, end, &e, &n)) {
			if (http__ieq_lit(e, n, "close"))
				f->close = 1;
			else if (http__ieq_lit(e, n, "keep-alive"))
				f->keep = 1;
		}
	} else if (req && nlen == 4 && http__ieq_lit(name, nlen, "host")) {
		if (f->hosts++)
			return HTTP_E_BAD;
		for (size_t i = 0; i < vlen; i++)
			if (!http__is(v + i, HTTP__HOST))
				return HTTP_E_BAD;
	}
	return 0;
}

/* The field lines and the empty line ending the head, from *pp. */
static inline int http__fields(const char **pp, const char *end, struct http_header *h, size_t *nh,
			       struct http__fields *f, int req, int minor)
{
	const char *p = *pp;
	size_t n = 0;

	memset(f, 0, sizeof(*f));
	f->content_length = -1;
	for (;;) {
		if (p == end)
			return HTTP__MORE;
		if (*p == '\r') {
			if (++p == end)
				return HTTP__MORE;
			if (*p != '\n')
				return HTTP_E_BAD;
			*pp = p + 1;
			*nh = n;
			return 0;
		}
		if (n == HTTP_MAX_HEADERS)
			return http__is(p, HTTP__TCHAR) ? HTTP_E_TOO_LARGE : HTTP_E_BAD;
		const char *name = p;
		if ((p = http__skip(p, end, HTTP__TCHAR)) == end)
			return HTTP__MORE;
		if (p == name || *p != ':')
			return HTTP_E_BAD;
		size_t nlen = (size_t)(p - name);
		do
			if (++p == end)
				return HTTP__MORE;
		while (*p == ' ' || *p == '\t');
		const char *v = p;
		p = http__skip(p, end, HTTP__VALUE);
		if (p == end)
			return HTTP__MORE;
		if (*p != '\r')
			return HTTP_E_BAD;
		const char *ve = p;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (++p == end)
			return HTTP__MORE;
		if (*p != '\n')
			return HTTP_E_BAD;
		p++;
		h[n] = (struct http_header){ name, nlen, v, (size_t)(ve - v) };
		n++;
		/* Only the few names of the right lengths are compared. */
		if (nlen == 4 || nlen == 10 || nlen == 14 || nlen == 17) {
			int r = http__field(f, name, nlen, v, (size_t)(ve - v), req, minor);
			if (r)
				return r;
		}
	}
}

/* "HTTP/" DIGIT "." DIGIT at *pp: stores the minor version. */
static inline int http__version(const char **pp, const char *end, int *minor)
{
	static const char pat[] = "HTTP/9.9";
	const char *p = *pp;
	if (end - p >= 8 && memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '1' || p[7] == '0')) {
		*minor = p[7] - '0'; /* nearly every message: one compare */
		*pp = p + 8;
		return 0;
	}
	for (int i = 0; i < 8; i++, p++) {
		if (p == end)
			return HTTP__MORE;
		if (pat[i] == '9' ? (unsigned)(*p - '0') > 9 : *p != pat[i])
			return HTTP_E_BAD;
	}
	if (p[-3] != '1' || p[-1] > '1')
		return HTTP_E_VERSION;
	*minor = p[-1] - '0';
	*pp = p;
	return 0;
}

/* CRLF at *pp. */
static inline int http__crlf(const char **pp, const char *end)
{
	const char *p = *pp;
	if (p == end)
		return HTTP__MORE;
	if (*p != '\r')
		return HTTP_E_BAD;
	if (++p == end)
		return HTTP__MORE;
	if (*p != '\n')
		return HTTP_E_BAD;
	*pp = p + 1;
	return 0;
}

/* Is the complete target t[0..n) in a form the method allows? */
static inline int http__target_ok(const struct http_request *r)
{
	const char *t = r->target;
	size_t n = r->target_len;
	int connect = r->method_len == 7 && memcmp(r->method, "CONNECT", 7) == 0;
	if (connect) /* authority-form */
		return t[0] != '/' && t[0] != '*';
	if (t[0] == '/') /* origin-form */
		return 1;
	if (t[0] == '*') /* asterisk-form */
		return n == 1 && r->method_len == 7 && memcmp(r->method, "OPTIONS", 7) == 0;
	/* absolute-form: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
	if (!http__alpha((unsigned char)t[0]))
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == ':')
			return 1;
		if (!http__alpha(c) && (c < '0' || c > '9') && c != '+' && c != '-' && c != '.')
			return 0;
	}
	return 0;
}

static inline int http__request(const char *buf, const char *end, struct http_request *r)
{
	const char *p = buf;
	struct http__fields f;
	int rc;

	for (;;) { /* empty lines before the request line */
		if (p == end)
			return HTTP__MORE;
		if (*p != '\r')
			break;
		if ((rc = http__crlf(&p, end)) != 0)
			return rc;
	}
	r->method = p;
	if ((p = http__skip(p, end, HTTP__TCHAR)) == end)
		return HTTP__MORE;
	if (p == r->method || *p != ' ')
		return HTTP_E_BAD;
	r->method_len = (size_t)(p - r->method);
	r->target = ++p;
	if (p == end)
		return HTTP__MORE;
	if ((p = http__skip(p, end, HTTP__TARGET)) == end)
		return HTTP__MORE;
	r->target_len = (size_t)(p - r->target);
	if (!r->target_len || *p != ' ' || !http__target_ok(r))
		return HTTP_E_BAD;
	p++;
	if ((rc = http__version(&p, end, &r->minor_version)) != 0 || (rc = http__crlf(&p, end)) != 0 ||
	    (rc = http__fields(&p, end, r->headers, &r->num_headers, &f, 1, r->minor_version)) != 0)
		return rc;
	if (r->minor_version == 1 && !f.hosts)
		return HTTP_E_BAD;
	if (f.te && !f.te_chunked)
		return HTTP_E_BAD;
	r->chunked = f.te_chunked;
	r->content_length = f.content_length;
	r->keep_alive = !f.close && (r->minor_version == 1 || f.keep);
	return (int)(p - buf);
}

static inline int http__response(const char *buf, const char *end, struct http_response *r)
{
	const char *p = buf;
	struct http__fields f;
	int rc;

	if ((rc = http__version(&p, end, &r->minor_version)) != 0)
		return rc;
	if (p == end)
		return HTTP__MORE;
	if (*p++ != ' ')
		return HTTP_E_BAD;
	r->status = 0;
	for (int i = 0; i < 3; i++, p++) {
		if (p == end)
			return HTTP__MORE;
		unsigned d = (unsigned char)*p - '0';
		if (d > 9 || (i == 0 && (d < 1 || d > 5)))
			return HTTP_E_BAD;
		r->status = r->status * 10 + (int)d;
	}
	if (p == end)
		return HTTP__MORE;
	r->reason = p;
	if (*p == ' ') { /* else the lenient "HTTP/1.1 200\r\n" */
		r->reason = ++p;
		p = http__skip(p, end, HTTP__VALUE);
		if (p == end)
			return HTTP__MORE;
	}
	r->reason_len = (size_t)(p - r->reason);
	if ((rc = http__crlf(&p, end)) != 0 ||
	    (rc = http__fields(&p, end, r->headers, &r->num_headers, &f, 0, r->minor_version)) != 0)
		return rc;
	if (f.te && !f.te_chunked && !f.te_other)
		return HTTP_E_BAD; /* Transfer-Encoding with no coding */
	r->content_length = f.content_length;
	r->keep_alive = !f.close && (r->minor_version == 1 || f.keep);
	if (r->status < 200 || r->status == 204 || r->status == 304)
		r->body = HTTP_BODY_NONE;
	else if (f.te_chunked)
		r->body = HTTP_BODY_CHUNKED;
	else if (!f.te && f.content_length >= 0)
		r->body = HTTP_BODY_LENGTH;
	else
		r->body = HTTP_BODY_EOF;
	r->chunked = r->body == HTTP_BODY_CHUNKED;
	if (r->body == HTTP_BODY_EOF)
		r->keep_alive = 0;
	return (int)(p - buf);
}

/* The common frame: bound the input by max_head, map HTTP__MORE. */
static inline int http__parse(const char *buf, size_t len, void *msg, size_t max, int request)
{
	if (max == 0)
		max = HTTP_DEFAULT_MAX_HEAD;
	if (max > INT_MAX)
		max = INT_MAX;
	size_t n = len < max ? len : max;
	if (n == 0)
		return 0;
	int rc = request ? http__request(buf, buf + n, (struct http_request *)msg)
			 : http__response(buf, buf + n, (struct http_response *)msg);
	if (rc != HTTP__MORE)
		return rc;
	return len >= max ? HTTP_E_TOO_LARGE : 0;
}

static inline int http_parse_request(const char *buf, size_t len, struct http_request *req,
				     size_t max_head)
{
	return http__parse(buf, len, req, max_head, 1);
}

static inline int http_parse_response(const char *buf, size_t len, struct http_response *res,
				      size_t max_head)
{
	return http__parse(buf, len, res, max_head, 0);
}

/* ------------------------------------------------------------------ */

enum {
	HTTP__CH_SIZE0,  /* first hex digit of a chunk size */
	HTTP__CH_SIZE,   /* more hex digits */
	HTTP__CH_BWS,    /* whitespace before a chunk extension's ';' */
	HTTP__CH_EXT,    /* chunk extensions, skipped */
	HTTP__CH_LF,     /* the LF ending the size line */
	HTTP__CH_DATA,   /* chunk data */
	HTTP__CH_DCR,    /* the CRLF after chunk data */
	HTTP__CH_DLF,
	HTTP__CH_TSTART, /* start of a trailer line or the final CRLF */
	HTTP__CH_TNAME,
	HTTP__CH_TVALUE,
	HTTP__CH_TLF,
	HTTP__CH_ELF,    /* the final LF */
	HTTP__CH_DONE,
	HTTP__CH_BAD,
	HTTP__CH_LARGE,
};

static inline void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

/*
 * Consume buf[0..len).  Stops after the first span of body data it meets:
 * then *data and *data_len give the span (inside buf) and *used says how much of
 * buf was consumed, so call again with the rest.  Otherwise *data_len is 0
 * and, unless the body ended (1) or an error was found, *used == len.
 * On an error *used is the offset of the offending byte.
 */
static inline int http_chunked_next(struct http_chunked *c, const char *buf, size_t len,
				    size_t *used, const char **data, size_t *data_len)
{
	size_t i = 0;
	*data = NULL;
	*data_len = 0;
	for (; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];
		unsigned cls = http__class(ch);
		unsigned s = c->state;
		if (s <= HTTP__CH_LF && ++c->count > HTTP_CHUNK_LINE_MAX)
			s = HTTP__CH_BAD;
		else if (s >= HTTP__CH_TSTART && s <= HTTP__CH_ELF &&
			 ++c->count > HTTP_CHUNK_TRAILER_MAX)
			s = HTTP__CH_LARGE;
		switch (s) {
		case HTTP__CH_SIZE0:
		case HTTP__CH_SIZE:
			if (cls & HTTP__HEX) {
				if (c->remaining >> 59) /* 16x would pass INT64_MAX */
					s = HTTP__CH_BAD;
				else
					c->remaining = c->remaining * 16 +
						       (ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10);
				if (s == HTTP__CH_SIZE0)
					s = HTTP__CH_SIZE;
			} else if (s == HTTP__CH_SIZE0) {
				s = HTTP__CH_BAD;
			} else {
				s = ch == ';'			? HTTP__CH_EXT
				    : ch == ' ' || ch == '\t' ? HTTP__CH_BWS
				    : ch == '\r'		? HTTP__CH_LF
								: HTTP__CH_BAD;
			}
			break;
		case HTTP__CH_BWS:
			s = ch == ';' ? HTTP__CH_EXT : ch == ' ' || ch == '\t' ? s : HTTP__CH_BAD;
			break;
		case HTTP__CH_EXT:
			s = (cls & HTTP__VALUE) ? s : ch == '\r' ? HTTP__CH_LF : HTTP__CH_BAD;
			break;
		case HTTP__CH_LF:
			s = ch != '\n' ? HTTP__CH_BAD : c->remaining ? HTTP__CH_DATA : HTTP__CH_TSTART;
			c->count = 0;
			break;
		case HTTP__CH_DATA: {
			size_t n = len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			c->remaining -= n;
			if (!c->remaining)
				c->state = HTTP__CH_DCR;
			*data = buf + i;
			*data_len = n;
			*used = i + n;
			return 0;
		}
		case HTTP__CH_DCR:
			s = ch == '\r' ? HTTP__CH_DLF : HTTP__CH_BAD;
			break;
		case HTTP__CH_DLF:
			s = ch == '\n' ? HTTP__CH_SIZE0 : HTTP__CH_BAD;
			c->count = 0;
			break;
		case HTTP__CH_TSTART:
			s = ch == '\r' ? HTTP__CH_ELF : (cls & HTTP__TCHAR) ? HTTP__CH_TNAME : HTTP__CH_BAD;
			break;
		case HTTP__CH_TNAME:
			s = (cls & HTTP__TCHAR) ? s : ch == ':' ? HTTP__CH_TVALUE : HTTP__CH_BAD;
			break;
		case HTTP__CH_TVALUE:
			s = (cls & HTTP__VALUE) ? s : ch == '\r' ? HTTP__CH_TLF : HTTP__CH_BAD;
			break;
		case HTTP__CH_TLF:
			s = ch == '\n' ? HTTP__CH_TSTART : HTTP__CH_BAD;
			break;
		case HTTP__CH_ELF:
			s = ch == '\n' ? HTTP__CH_DONE : HTTP__CH_BAD;
			break;
		default:
			break;
		}
		if (s >= HTTP__CH_DONE) {
			/* the final LF is consumed; a bad byte (or a sticky
			 * end) is not */
			i += s == HTTP__CH_DONE && c->state == HTTP__CH_ELF;
			c->state = s;
			break;
		}
		c->state = s;
	}
	*used = i;
	return c->state == HTTP__CH_DONE ? 1 : c->state == HTTP__CH_BAD ? HTTP_E_BAD
		: c->state == HTTP__CH_LARGE ? HTTP_E_TOO_LARGE : 0;
}

/*
 * Decode buf[0..len) in place: the body data found is moved to
 * buf[0..*body_len).  *consumed is the input used: all of it when 0 is
 * returned (more needed), up to the end of the body when 1 is returned
 * (buf[*consumed..len) is the next message, untouched).
 */
static inline int http_chunked_decode(struct http_chunked *c, char *buf, size_t len,
				      size_t *consumed, size_t *body_len)
{
	size_t in = 0, out = 0;
	int rc;
	for (;;) {
		size_t used, n;
		const char *d;
		rc = http_chunked_next(c, buf + in, len - in, &used, &d, &n);
		if (n)
			memmove(buf + out, d, n);
		out += n;
		in += used;
		if (rc != 0 || in == len)
			break;
	}
	*consumed = in;
	*body_len = out;
	return rc;
}

#endif
