/*
 * The HTTP/1.1 parser shared by the HTTP examples (examples/http_parse.h):
 * valid and malformed requests and responses with the exact result each
 * gives, keep-alive rules, pipelining, the head-size and field-count limits,
 * the chunked decoder split at every byte, and the prefix property (a
 * prefix gives 0 until the result is certain, then the whole input's
 * result).  Randomized tests mutate valid messages with a fixed seed and
 * check invariants plus agreement with a slow line-based reference written
 * independently below.  Every input is parsed from a malloc of exactly its
 * length, so the ASan build catches any read past the end.
 */
#include "weft_test.h"
#include "examples/http_parse.h"

#include <ctype.h>
#include <strings.h>

/* Plain builds run n iterations; sanitized ones a fifth (each test stays
 * under about 2 s even under TSan). */
#define ITERS(n) (WEFT_TEST_SANITIZED ? (n) / 5 : (n))

/* ------------------------------------------------------------------ */
/* A parse result with pointers turned into offsets, to compare runs.  */

struct snap {
	int rc;
	size_t n;
	int64_t v[16 + 4 * HTTP_MAX_HEADERS];
};

static void put(struct snap *s, int64_t x)
{
	assert_true(s->n < sizeof(s->v) / sizeof(s->v[0]));
	s->v[s->n++] = x;
}

/* ptr[0..len) must lie inside the head buf[0..rc). */
static void put_span(struct snap *s, const char *buf, const char *ptr, size_t len)
{
	assert_true(ptr >= buf && len <= (size_t)s->rc && ptr - buf <= s->rc - (ptrdiff_t)len);
	put(s, ptr - buf);
	put(s, (int64_t)len);
}

static int is_tchar(unsigned char c)
{
	return c && ((c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') ||
		     strchr("!#$%&'*+-.^_`|~", c));
}

static int is_vchar(unsigned char c) /* field value byte */
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static void put_headers(struct snap *s, const char *buf, const struct http_header *h, size_t n)
{
	put(s, (int64_t)n);
	for (size_t i = 0; i < n; i++) {
		put_span(s, buf, h[i].name, h[i].name_len);
		put_span(s, buf, h[i].value, h[i].value_len);
		assert_true(h[i].name_len > 0);
		for (size_t j = 0; j < h[i].name_len; j++)
			assert_true(is_tchar((unsigned char)h[i].name[j]));
		for (size_t j = 0; j < h[i].value_len; j++)
			assert_true(is_vchar((unsigned char)h[i].value[j]));
		if (h[i].value_len) {
			assert_false(h[i].value[0] == ' ' || h[i].value[0] == '\t');
			char last = h[i].value[h[i].value_len - 1];
			assert_false(last == ' ' || last == '\t');
		}
	}
}

/* Record a parse result; 1 when it is a head to take apart. */
static int snap_rc(struct snap *s, int rc, const char *buf, size_t len, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->rc = rc;
	if (rc <= 0)
		return 0;
	assert_true((size_t)rc <= len && (size_t)rc <= (max ? max : HTTP_DEFAULT_MAX_HEAD));
	assert_true(rc >= 4);
	assert_memory_equal(buf + rc - 4, "\r\n\r\n", 4);
	return 1;
}

static void snap_req(struct snap *s, const char *buf, size_t len, size_t max)
{
	struct http_request r;
	memset(&r, 0xa5, sizeof(r));
	if (!snap_rc(s, http_parse_request(buf, len, &r, max), buf, len, max))
		return;
	put_span(s, buf, r.method, r.method_len);
	put_span(s, buf, r.target, r.target_len);
	for (size_t j = 0; j < r.method_len; j++)
		assert_true(is_tchar((unsigned char)r.method[j]));
	for (size_t j = 0; j < r.target_len; j++)
		assert_true(r.target[j] > 0x20 && r.target[j] < 0x7f && r.target[j] != '#');
	assert_true(r.minor_version == 0 || r.minor_version == 1);
	put(s, r.minor_version);
	put(s, r.keep_alive);
	put(s, r.chunked);
	put(s, r.content_length);
	assert_true(r.content_length >= -1 && !(r.chunked && r.content_length >= 0));
	put_headers(s, buf, r.headers, r.num_headers);
}

static void snap_res(struct snap *s, const char *buf, size_t len, size_t max)
{
	struct http_response r;
	memset(&r, 0xa5, sizeof(r));
	if (!snap_rc(s, http_parse_response(buf, len, &r, max), buf, len, max))
		return;
	assert_true(r.status >= 100 && r.status <= 599);
	assert_true(r.minor_version == 0 || r.minor_version == 1);
	assert_true(r.body <= HTTP_BODY_EOF && r.chunked == (r.body == HTTP_BODY_CHUNKED));
	assert_false(r.body == HTTP_BODY_LENGTH && r.content_length < 0);
	assert_false(r.body == HTTP_BODY_EOF && r.keep_alive);
	put(s, r.minor_version);
	put(s, r.status);
	put_span(s, buf, r.reason, r.reason_len);
	put(s, r.keep_alive);
	put(s, r.body);
	put(s, r.content_length);
	put_headers(s, buf, r.headers, r.num_headers);
}

typedef void (*snap_fn)(struct snap *s, const char *buf, size_t len, size_t max);

/* Parse data[0..len) from a malloc of exactly len bytes. */
static void parse_exact(snap_fn fn, struct snap *s, const void *data, size_t len, size_t max)
{
	char *b = malloc(len ? len : 1);
	assert_non_null(b);
	memcpy(b, data, len);
	fn(s, b, len, max);
	free(b);
}

static void assert_snap_equal(const struct snap *a, const struct snap *b)
{
	assert_int_equal(a->rc, b->rc);
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->v, b->v, a->n * sizeof(a->v[0]));
}

/* The prefix of length k gives 0, or exactly the whole input's result. */
static void check_prefix(snap_fn fn, const void *data, size_t k, size_t max,
			 const struct snap *whole)
{
	struct snap s;
	parse_exact(fn, &s, data, k, max);
	if (s.rc != 0)
		assert_snap_equal(&s, whole);
	if (whole->rc > 0)
		assert_int_equal(s.rc, k < (size_t)whole->rc ? 0 : whole->rc);
}

/* Every prefix: 0 up to some length, the whole result from there on. */
static void check_all_prefixes(snap_fn fn, const void *data, size_t len, size_t max)
{
	struct snap whole, s;
	int decided = 0;
	parse_exact(fn, &whole, data, len, max);
	for (size_t k = 0; k <= len; k++) {
		check_prefix(fn, data, k, max, &whole);
		parse_exact(fn, &s, data, k, max);
		if (decided)
			assert_int_equal(s.rc, whole.rc);
		decided = s.rc != 0;
	}
}

static int req(const char *s, struct http_request *r)
{
	return http_parse_request(s, strlen(s), r, 0);
}

static int res(const char *s, struct http_response *r)
{
	return http_parse_response(s, strlen(s), r, 0);
}

static int span_is(const char *p, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(p, want, n) == 0;
}

/* ------------------------------------------------------------------ */
/* Requests: directed cases.                                            */

static void test_request_valid(void **state)
{
	(void)state;
	struct http_request r;
	const char *a = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(req(a, &r), (int)strlen(a));
	assert_true(span_is(r.method, r.method_len, "GET"));
	assert_true(span_is(r.target, r.target_len, "/"));
	assert_int_equal(r.minor_version, 1);
	assert_int_equal(r.keep_alive, 1);
	assert_int_equal(r.chunked, 0);
	assert_int_equal(r.content_length, -1);
	assert_int_equal(r.num_headers, 1);
	assert_true(span_is(r.headers[0].name, r.headers[0].name_len, "Host"));
	assert_true(span_is(r.headers[0].value, r.headers[0].value_len, "x"));

	const char *b = "\r\n\r\nPOST /submit?a=1&b=%20 HTTP/1.1\r\n"
			"host:   [::1]:8080\r\n"
			"X-Spaced: \t inner  value \t \r\n"
			"X-Empty:\r\n"
			"X-Blank:   \r\n"
			"X-Utf8: caf\xc3\xa9\r\n"
			"content-LENGTH: 0005\r\n"
			"Content-Length: 5\r\n"
			"\r\nhello";
	assert_int_equal(req(b, &r), (int)strlen(b) - 5);
	assert_true(span_is(r.method, r.method_len, "POST"));
	assert_true(span_is(r.target, r.target_len, "/submit?a=1&b=%20"));
	assert_int_equal(r.num_headers, 7);
	assert_true(span_is(r.headers[0].value, r.headers[0].value_len, "[::1]:8080"));
	assert_true(span_is(r.headers[1].value, r.headers[1].value_len, "inner  value"));
	assert_int_equal(r.headers[2].value_len, 0);
	assert_int_equal(r.headers[3].value_len, 0);
	assert_true(span_is(r.headers[4].value, r.headers[4].value_len, "caf\xc3\xa9"));
	assert_int_equal(r.content_length, 5);

	const char *c = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
	assert_int_equal(req(c, &r), (int)strlen(c));
	const char *d = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
	assert_int_equal(req(d, &r), (int)strlen(d));
	const char *e = "GET http://example.com/x?y HTTP/1.0\r\n\r\n";
	assert_int_equal(req(e, &r), (int)strlen(e));
	assert_int_equal(r.minor_version, 0);
	assert_int_equal(r.num_headers, 0);
	assert_true(span_is(r.target, r.target_len, "http://example.com/x?y"));
	const char *f = "M-SEARCH! /a HTTP/1.1\r\nHost:\r\nTransfer-Encoding: , Chunked ,\r\n\r\n";
	assert_int_equal(req(f, &r), (int)strlen(f));
	assert_int_equal(r.chunked, 1);
	assert_int_equal(r.content_length, -1);
	const char *g = "PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n";
	assert_int_equal(req(g, &r), (int)strlen(g));
	assert_int_equal(r.content_length, INT64_MAX);
}

static void test_request_keep_alive(void **state)
{
	(void)state;
	static const struct {
		const char *req;
		int ka;
	} t[] = {
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: ,close,\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, xclose\r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\n\r\n", 0 },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\nconnection: te ,  keep-alive  \r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct http_request r;
		assert_int_equal(req(t[i].req, &r), (int)strlen(t[i].req));
		if (r.keep_alive != t[i].ka)
			fail_msg("keep_alive %d for %s", r.keep_alive, t[i].req);
		check_all_prefixes(snap_req, t[i].req, strlen(t[i].req), 0);
	}
}

static void test_request_pipelined(void **state)
{
	(void)state;
	const char *parts[] = {
		"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n",
		"abc",
		"\r\nGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
	};
	char all[512] = "";
	for (size_t i = 0; i < 4; i++)
		strcat(all, parts[i]);
	size_t len = strlen(all), off = 0;
	struct http_request r;
	int rc = http_parse_request(all, len, &r, 0);
	assert_int_equal(rc, (int)strlen(parts[0]));
	assert_true(span_is(r.target, r.target_len, "/1"));
	off += (size_t)rc;
	rc = http_parse_request(all + off, len - off, &r, 0);
	assert_int_equal(rc, (int)strlen(parts[1]));
	assert_int_equal(r.content_length, 3);
	off += (size_t)rc + 3;
	rc = http_parse_request(all + off, len - off, &r, 0);
	assert_int_equal(rc, (int)strlen(parts[3]));
	assert_true(span_is(r.target, r.target_len, "/3"));
	assert_int_equal(r.keep_alive, 0);
	assert_int_equal(off + (size_t)rc, len);
	/* A second request that has only begun: the first still parses, and
	 * the second is incomplete at every length. */
	for (size_t k = strlen(parts[0]); k < strlen(parts[0]) * 2; k++) {
		char two[128];
		memcpy(two, parts[0], strlen(parts[0]));
		memcpy(two + strlen(parts[0]), parts[0], strlen(parts[0]));
		assert_int_equal(http_parse_request(two, k, &r, 0), (int)strlen(parts[0]));
		assert_int_equal(http_parse_request(two + strlen(parts[0]), k - strlen(parts[0]), &r, 0), 0);
	}
}

struct bad_case {
	const char *s;
	size_t len; /* 0: strlen */
	int rc;
};

#define H "Host: h\r\n"
static const struct bad_case bad_requests[] = {
	{ "G@T / HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET(/ HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ " GET / HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET  / HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET /  HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET\t/ HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1 \r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET /\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / \r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.x\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/11\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / http/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.10\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/2.0\r\n" H "\r\n", 0, HTTP_E_VERSION },
	{ "GET / HTTP/1.2\r\n" H "\r\n", 0, HTTP_E_VERSION },
	{ "GET / HTTP/0.9\r\n\r\n", 0, HTTP_E_VERSION },
	{ "GET * HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "OPTIONS *x HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET /a#frag HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET /\x7f HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET example.com/ HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET 1http://x/ HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "CONNECT /x HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "\n" "GET / HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "\r\r\nGET / HTTP/1.1\r\n" H "\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\n" H "\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nHost: h\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "\r\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H ": v\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "X\x80Y: v\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n", 34, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "X: a\x01" "b\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: abc\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
	  HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0,
	  HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	  0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;x=1\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nX: y\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\n" H H "\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.0\r\n" H "host: h\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, HTTP_E_BAD },
	{ "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 0, HTTP_E_BAD },
};
#undef H

/* Each case gives its error, and so do its prefixes once certain. */
static void check_bad_cases(snap_fn fn, const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct bad_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->s);
		struct snap s;
		parse_exact(fn, &s, c->s, len, 0);
		if (s.rc != c->rc)
			fail_msg("case %zu: %d, want %d: %s", i, s.rc, c->rc, c->s);
		assert_int_equal(http_error_status(s.rc), s.rc == HTTP_E_VERSION ? 505 : 400);
		check_all_prefixes(fn, c->s, len, 0);
	}
}

static void test_request_bad(void **state)
{
	(void)state;
	check_bad_cases(snap_req, bad_requests, sizeof(bad_requests) / sizeof(bad_requests[0]));
	assert_int_equal(http_error_status(HTTP_E_TOO_LARGE), 431);
	assert_int_equal(http_error_status(27), 0);
	/* Certain errors are reported before the head ends. */
	struct http_request r;
	assert_int_equal(req("G@", &r), HTTP_E_BAD);
	assert_int_equal(req("GET / HTTP/1.1\n", &r), HTTP_E_BAD);
	assert_int_equal(req("GET / HTTP/3.0", &r), HTTP_E_VERSION);
	assert_int_equal(req("GET / HTTP/1.1\r\nHost: h\r\nHost", &r), 0);
	assert_int_equal(req("GET / HTTP/1.1\r\nHost: h\r\nHost:\r\n", &r), HTTP_E_BAD);
	assert_int_equal(req("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n",
			     &r),
			 HTTP_E_BAD);
}

static void test_request_too_large(void **state)
{
	(void)state;
	struct http_request r;
	const char *a = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"; /* 27 bytes */
	assert_int_equal(http_parse_request(a, 27, &r, 27), 27);
	assert_int_equal(http_parse_request(a, 27, &r, 26), HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_request(a, 26, &r, 26), HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_request(a, 25, &r, 26), 0);
	assert_int_equal(http_parse_request(a, 27, &r, 10), HTTP_E_TOO_LARGE);
	/* An error inside the limit is still an error; past it, only size. */
	assert_int_equal(http_parse_request("G@T / HTTP/1.1\r\n", 16, &r, 10), HTTP_E_BAD);
	assert_int_equal(http_parse_request("GET / HTTP/1.1\r\n@", 17, &r, 16), HTTP_E_TOO_LARGE);
	for (size_t max = 1; max <= 30; max++)
		check_all_prefixes(snap_req, a, 27, max);

	/* Exactly HTTP_MAX_HEADERS fields pass; one more is 431. */
	char big[8192], line[32];
	size_t n = 0;
	strcpy(big, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i < HTTP_MAX_HEADERS; i++) {
		snprintf(line, sizeof(line), "X-%d: %d\r\n", i, i);
		strcat(big, line);
	}
	n = strlen(big);
	strcat(big, "\r\n");
	assert_int_equal(http_parse_request(big, n + 2, &r, 0), (int)n + 2);
	assert_int_equal(r.num_headers, HTTP_MAX_HEADERS);
	big[n] = 0;
	strcat(big, "Y: 1\r\n\r\n");
	assert_int_equal(http_parse_request(big, n + 8, &r, 0), HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_request(big, n + 1, &r, 0), HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_request(big, n, &r, 0), 0);
	check_all_prefixes(snap_req, big, n + 8, 0);

	/* The default limit is HTTP_DEFAULT_MAX_HEAD; it counts leading CRLFs. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	assert_int_equal(http_parse_request(big, sizeof(big) - 1, &r, 0), 0);
	assert_int_equal(http_parse_request(big, sizeof(big), &r, 0), HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_request(big, sizeof(big), &r, 100000), 0);
	for (size_t i = 0; i < sizeof(big); i += 2)
		memcpy(big + i, "\r\n", 2);
	assert_int_equal(http_parse_request(big, sizeof(big), &r, 0), HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_request(big, sizeof(big), &r, SIZE_MAX), 0);
}

static void test_find_header(void **state)
{
	(void)state;
	struct http_request r;
	const char *a = "GET / HTTP/1.1\r\nHost: x\r\nX-Thing: 1\r\nx-thing: 2\r\n\r\n";
	assert_true(req(a, &r) > 0);
	const struct http_header *h = http_find_header(r.headers, r.num_headers, "X-THING");
	assert_non_null(h);
	assert_true(span_is(h->value, h->value_len, "1"));
	assert_ptr_equal(http_find_header(r.headers, r.num_headers, "host"), &r.headers[0]);
	assert_null(http_find_header(r.headers, r.num_headers, "X-Thin"));
	assert_null(http_find_header(r.headers, r.num_headers, "X-Things"));
	assert_null(http_find_header(r.headers, 0, "Host"));
}

/* ------------------------------------------------------------------ */
/* Responses.                                                           */

static void test_response_valid(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int status, ka;
		enum http_body body;
		int64_t cl;
		const char *reason;
	} t[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", 200, 1, HTTP_BODY_LENGTH, 13, "OK" },
		{ "HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n", 200, 1, HTTP_BODY_CHUNKED, -1, "" },
		{ "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", 200, 1, HTTP_BODY_LENGTH, 0, "" },
		{ "HTTP/1.0 200 OK\r\n\r\n", 200, 0, HTTP_BODY_EOF, -1, "OK" },
		{ "HTTP/1.1 200 OK\r\n\r\n", 200, 0, HTTP_BODY_EOF, -1, "OK" },
		{ "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", 200, 1,
		  HTTP_BODY_LENGTH, 2, "OK" },
		{ "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 200, 0,
		  HTTP_BODY_LENGTH, 1, "OK" },
		{ "HTTP/1.1 204 No Content\r\n\r\n", 204, 1, HTTP_BODY_NONE, -1, "No Content" },
		{ "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", 304, 1, HTTP_BODY_NONE, 100,
		  "Not Modified" },
		{ "HTTP/1.1 100 Continue\r\n\r\n", 100, 1, HTTP_BODY_NONE, -1, "Continue" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 200, 0, HTTP_BODY_EOF, -1, "OK" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n", 200, 1,
		  HTTP_BODY_CHUNKED, -1, "OK" },
		{ "HTTP/1.1 404 Not \tFound \xff\r\nServer: x\r\nContent-Length: 9\r\n\r\n", 404, 1,
		  HTTP_BODY_LENGTH, 9, "Not \tFound \xff" },
		{ "HTTP/1.1 599 Whatever\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 599, 1,
		  HTTP_BODY_LENGTH, 1, "Whatever" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct http_response r;
		size_t len = strlen(t[i].s);
		int rc = res(t[i].s, &r);
		if (rc != (int)len)
			fail_msg("case %zu: %d: %s", i, rc, t[i].s);
		assert_int_equal(r.status, t[i].status);
		assert_int_equal(r.keep_alive, t[i].ka);
		assert_int_equal(r.body, t[i].body);
		assert_int_equal(r.content_length, t[i].cl);
		assert_true(span_is(r.reason, r.reason_len, t[i].reason));
		check_all_prefixes(snap_res, t[i].s, len, 0);
	}
	/* The head stops where the body starts. */
	struct http_response r;
	assert_int_equal(res("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!", &r), 39);
}

static const struct bad_case bad_responses[] = {
	{ "HTTP/1.1 20 OK\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 2000 OK\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 600 X\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 099 X\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 2x0 X\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1  200 OK\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1\t200 OK\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/2 200 OK\r\n\r\n", 0, HTTP_E_BAD },
	{ "\r\nHTTP/1.1 200 OK\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/2.0 200 OK\r\n\r\n", 0, HTTP_E_VERSION },
	{ "HTTP/1.1 200 OK\nX: y\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 O\x01K\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nX : y\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
	  HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", 0, HTTP_E_BAD },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", 0, HTTP_E_BAD },
};

static void test_response_bad(void **state)
{
	(void)state;
	check_bad_cases(snap_res, bad_responses, sizeof(bad_responses) / sizeof(bad_responses[0]));
	struct http_response r;
	const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
	assert_int_equal(http_parse_response(a, strlen(a), &r, 20), HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_response(a, 19, &r, 20), 0);
}

/* ------------------------------------------------------------------ */
/* Chunked bodies.                                                      */

struct dechunk {
	int rc;
	size_t consumed;
	size_t body_len;
	char body[4096];
};

/* Decode data[0..len) fed in pieces of at most `step` bytes (0: all at
 * once), each from a malloc of exactly its size, alternating the span and
 * the in-place API. */
static void dechunk(struct dechunk *d, const void *data, size_t len, size_t step)
{
	struct http_chunked c;
	http_chunked_init(&c);
	memset(d, 0, offsetof(struct dechunk, body));
	size_t off = 0;
	int piece = 0;
	do {
		size_t n = step && len - off > step ? step : len - off;
		char *b = malloc(n ? n : 1);
		assert_non_null(b);
		memcpy(b, (const char *)data + off, n);
		size_t used;
		if (piece++ % 2) {
			size_t got;
			d->rc = http_chunked_decode(&c, b, n, &used, &got);
			assert_true(got <= used && used <= n);
			assert_true(d->body_len + got <= sizeof(d->body));
			memcpy(d->body + d->body_len, b, got);
			d->body_len += got;
		} else {
			size_t at = 0;
			for (;;) {
				const char *p;
				size_t u, got;
				d->rc = http_chunked_next(&c, b + at, n - at, &u, &p, &got);
				assert_true(u <= n - at);
				if (got) {
					assert_int_equal(d->rc, 0);
					assert_true(p >= b + at && p + got <= b + at + u);
					assert_true(d->body_len + got <= sizeof(d->body));
					memcpy(d->body + d->body_len, p, got);
					d->body_len += got;
				}
				at += u;
				if (d->rc || at == n)
					break;
				assert_true(got > 0); /* a stop short of n returns data */
			}
			used = at;
		}
		free(b);
		off += used;
		if (d->rc == 0)
			assert_int_equal(used, n); /* needs more: all consumed */
	} while (d->rc == 0 && off < len);
	d->consumed = off;
	/* Errors and the end are sticky. */
	if (d->rc) {
		size_t u, got;
		const char *p;
		assert_int_equal(http_chunked_next(&c, "0\r\n\r\n", 5, &u, &p, &got), d->rc);
		assert_int_equal(u, 0);
		assert_int_equal(got, 0);
	}
}

static void assert_dechunk_equal(const struct dechunk *a, const struct dechunk *b)
{
	assert_int_equal(a->rc, b->rc);
	assert_int_equal(a->body_len, b->body_len);
	assert_memory_equal(a->body, b->body, a->body_len);
	if (a->rc == 1)
		assert_int_equal(a->consumed, b->consumed);
	if (a->rc == 0)
		assert_int_equal(a->consumed, b->consumed);
}

/* The same result whether fed whole, byte by byte or in other pieces. */
static void check_splits(const void *data, size_t len, struct dechunk *whole)
{
	struct dechunk d;
	dechunk(whole, data, len, 0);
	for (size_t step = 1; step <= 7; step++) {
		dechunk(&d, data, len, step);
		assert_dechunk_equal(&d, whole);
	}
}

static void test_chunked_valid(void **state)
{
	(void)state;
	static const struct {
		const char *s, *body;
		size_t trailing; /* bytes after the body */
	} t[] = {
		{ "5\r\nhello\r\n0\r\n\r\n", "hello", 0 },
		{ "0\r\n\r\n", "", 0 },
		{ "5;ext=1\r\nhello\r\n6 \t; a=\"b c\";x\r\n world\r\n0\r\nTrailer: x\r\nT2:\r\n\r\nNEXT",
		  "hello world", 4 },
		{ "A\r\n0123456789\r\n0000\r\n\r\nGET", "0123456789", 3 },
		{ "a\r\n0123456789\r\n00000000000000000001\r\n!\r\n0\r\n\r\n", "0123456789!", 0 },
		{ "1\r\n\r\r\n2\r\n\r\n\r\n0;last\r\n\r\n", "\r\r\n", 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct dechunk d;
		size_t len = strlen(t[i].s);
		check_splits(t[i].s, len, &d);
		if (d.rc != 1)
			fail_msg("case %zu: %d", i, d.rc);
		assert_int_equal(d.consumed, len - t[i].trailing);
		assert_int_equal(d.body_len, strlen(t[i].body));
		assert_memory_equal(d.body, t[i].body, d.body_len);
		/* Every strict prefix needs more and yields a prefix of the body. */
		for (size_t k = 0; k < len - t[i].trailing; k++) {
			struct dechunk p;
			dechunk(&p, t[i].s, k, 0);
			assert_int_equal(p.rc, 0);
			assert_true(p.body_len <= d.body_len);
			assert_memory_equal(p.body, d.body, p.body_len);
		}
	}
	/* The largest chunk size is INT64_MAX. */
	struct dechunk d;
	dechunk(&d, "7fffffffffffffff\r\nab", 20, 0);
	assert_int_equal(d.rc, 0);
	assert_int_equal(d.body_len, 2);
}

static void test_chunked_bad(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int rc;
	} t[] = {
		{ "\r\n", HTTP_E_BAD },
		{ "g\r\n", HTTP_E_BAD },
		{ "-5\r\nhello\r\n0\r\n\r\n", HTTP_E_BAD },
		{ " 5\r\nhello\r\n0\r\n\r\n", HTTP_E_BAD },
		{ "5 \r\nhello\r\n0\r\n\r\n", HTTP_E_BAD },
		{ "5\nhello\r\n0\r\n\r\n", HTTP_E_BAD },
		{ "5\r\nhelloX\r\n0\r\n\r\n", HTTP_E_BAD },
		{ "5\r\nhello\n0\r\n\r\n", HTTP_E_BAD },
		{ "5;a\x01\r\nhello\r\n0\r\n\r\n", HTTP_E_BAD },
		{ "5;a\nb\r\nhello\r\n0\r\n\r\n", HTTP_E_BAD },
		{ "0x5\r\nhello\r\n0\r\n\r\n", HTTP_E_BAD },
		{ "0\r\nX : y\r\n\r\n", HTTP_E_BAD },
		{ "0\r\n y\r\n\r\n", HTTP_E_BAD },
		{ "0\r\nX: y\n\r\n", HTTP_E_BAD },
		{ "0\r\nX: \x7f\r\n\r\n", HTTP_E_BAD },
		{ "0\r\n\r\r", HTTP_E_BAD },
		{ "0\r\n\n", HTTP_E_BAD },
		{ "8000000000000000\r\n", HTTP_E_BAD },
		{ "10000000000000000\r\n", HTTP_E_BAD },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct dechunk d;
		check_splits(t[i].s, strlen(t[i].s), &d);
		if (d.rc != t[i].rc)
			fail_msg("case %zu: %d, want %d", i, d.rc, t[i].rc);
	}
	/* Limits: a size line of HTTP_CHUNK_LINE_MAX bytes passes, one more
	 * is bad; trailers past HTTP_CHUNK_TRAILER_MAX are too large. */
	static char big[HTTP_CHUNK_TRAILER_MAX + 64];
	struct dechunk d;
	memset(big, 'e', sizeof(big));
	memcpy(big, "1;", 2);
	memcpy(big + HTTP_CHUNK_LINE_MAX - 2, "\r\nx\r\n0\r\n\r\n", 10);
	dechunk(&d, big, HTTP_CHUNK_LINE_MAX + 8, 0);
	assert_int_equal(d.rc, 1);
	big[HTTP_CHUNK_LINE_MAX - 2] = 'e';
	memcpy(big + HTTP_CHUNK_LINE_MAX - 1, "\r\nx\r\n0\r\n\r\n", 10);
	dechunk(&d, big, HTTP_CHUNK_LINE_MAX + 9, 0);
	assert_int_equal(d.rc, HTTP_E_BAD);
	memset(big, 'e', sizeof(big));
	memcpy(big, "0\r\nX:", 5);
	memcpy(big + 3 + HTTP_CHUNK_TRAILER_MAX - 4, "\r\n\r\n", 4);
	dechunk(&d, big, 3 + HTTP_CHUNK_TRAILER_MAX, 0);
	assert_int_equal(d.rc, 1);
	big[3 + HTTP_CHUNK_TRAILER_MAX - 4] = 'e';
	memcpy(big + 3 + HTTP_CHUNK_TRAILER_MAX - 3, "\r\n\r\n", 4);
	dechunk(&d, big, 3 + HTTP_CHUNK_TRAILER_MAX + 1, 0);
	assert_int_equal(d.rc, HTTP_E_TOO_LARGE);
}

/* ------------------------------------------------------------------ */
/* The reference: slow, line-based, written from the RFC grammar without */
/* looking at the parser.  REF_UNSURE when the head has not ended within  */
/* the limit (the parser's answer is then checked by other means).        */

#define REF_UNSURE 1

struct ref_fields {
	int req, cl_seen, te_lines, te_codings, te_chunked_last, te_chunked_count, te_nonchunked,
		hosts;
	int64_t cl;
};

static int ref_ieq(const unsigned char *a, size_t n, const char *b)
{
	return n == strlen(b) && strncasecmp((const char *)a, b, n) == 0;
}

/* One list element of a framing field. */
static int ref_coding(struct ref_fields *f, const unsigned char *e, size_t n)
{
	while (n && (*e == ' ' || *e == '\t'))
		e++, n--;
	while (n && (e[n - 1] == ' ' || e[n - 1] == '\t'))
		n--;
	if (!n)
		return 0;
	f->te_codings++;
	f->te_chunked_last = ref_ieq(e, n, "chunked");
	f->te_chunked_count += f->te_chunked_last;
	f->te_nonchunked += !f->te_chunked_last;
	return 0;
}

/* Field line l[0..n), no CRLF.  Returns 0 or HTTP_E_BAD. */
static int ref_field(struct ref_fields *f, const unsigned char *l, size_t n)
{
	const unsigned char *colon = memchr(l, ':', n);
	if (!colon || colon == l)
		return HTTP_E_BAD;
	for (const unsigned char *c = l; c < colon; c++)
		if (!is_tchar(*c))
			return HTTP_E_BAD;
	const unsigned char *v = colon + 1, *e = l + n;
	for (const unsigned char *c = v; c < e; c++)
		if (!is_vchar(*c))
			return HTTP_E_BAD;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	size_t nl = (size_t)(colon - l), vl = (size_t)(e - v);
	if (ref_ieq(l, nl, "content-length")) {
		char tmp[1100];
		if (vl == 0 || vl >= sizeof(tmp))
			return HTTP_E_BAD;
		for (size_t i = 0; i < vl; i++)
			if (!isdigit(v[i]))
				return HTTP_E_BAD;
		memcpy(tmp, v, vl);
		tmp[vl] = 0;
		errno = 0;
		long long x = strtoll(tmp, NULL, 10);
		if (errno == ERANGE || (f->cl_seen && f->cl != x))
			return HTTP_E_BAD;
		f->cl_seen = 1;
		f->cl = x;
	} else if (ref_ieq(l, nl, "transfer-encoding")) {
		f->te_lines++;
		const unsigned char *s = v;
		for (const unsigned char *c = v; c <= e; c++)
			if (c == e || *c == ',') {
				ref_coding(f, s, (size_t)(c - s));
				s = c + 1;
			}
	} else if (f->req && ref_ieq(l, nl, "host")) {
		f->hosts++;
		for (const unsigned char *c = v; c < e; c++)
			if (!isalnum(*c) && !strchr("-._~!$&'()*+,;=%:[]", *c))
				return HTTP_E_BAD;
	}
	return 0;
}

/* Lines after the start line, up to the empty line at `end` (b[end-4..end)
 * is CRLFCRLF).  Returns 0 or an error. */
static int ref_all_fields(struct ref_fields *f, int req, const unsigned char *b, size_t p,
			  size_t end)
{
	memset(f, 0, sizeof(*f));
	f->req = req;
	int count = 0;
	while (p < end - 2) {
		const unsigned char *crlf = memmem(b + p, end - p, "\r\n", 2);
		if (++count > HTTP_MAX_HEADERS)
			return HTTP_E_TOO_LARGE;
		int r = ref_field(f, b + p, (size_t)(crlf - (b + p)));
		if (r)
			return r;
		p = (size_t)(crlf - b) + 2;
	}
	if (f->cl_seen && f->te_lines)
		return HTTP_E_BAD;
	return 0;
}

/* The start line [p, line end) and where the head ends, or REF_UNSURE. */
static int ref_head(const unsigned char *b, size_t n, size_t max, size_t p, size_t *le, size_t *end)
{
	size_t lim = n < max ? n : max;
	const unsigned char *e = p < lim ? memmem(b + p, lim - p, "\r\n\r\n", 4) : NULL;
	if (!e)
		return REF_UNSURE;
	*end = (size_t)(e - b) + 4;
	*le = (size_t)((const unsigned char *)memmem(b + p, *end - p, "\r\n", 2) - b);
	return 0;
}

static int ref_version(const unsigned char *v, size_t n, int *minor)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) || !isdigit(v[5]) || v[6] != '.' || !isdigit(v[7]))
		return HTTP_E_BAD;
	*minor = v[7] - '0';
	return v[5] == '1' && v[7] <= '1' ? 0 : HTTP_E_VERSION;
}

static int ref_request(const unsigned char *b, size_t n, size_t max)
{
	size_t p = 0, le, end;
	if (max == 0)
		max = HTTP_DEFAULT_MAX_HEAD;
	while (p + 1 < n && p + 2 <= max && b[p] == '\r' && b[p + 1] == '\n')
		p += 2;
	if (ref_head(b, n, max, p, &le, &end))
		return REF_UNSURE;
	/* method SP target SP version */
	const unsigned char *l = b + p, *sp1 = memchr(l, ' ', le - p);
	if (!sp1)
		return HTTP_E_BAD;
	const unsigned char *sp2 = memchr(sp1 + 1, ' ', (size_t)(b + le - sp1 - 1));
	if (!sp2 || sp1 == l || sp2 == sp1 + 1)
		return HTTP_E_BAD;
	for (const unsigned char *c = l; c < sp1; c++)
		if (!is_tchar(*c))
			return HTTP_E_BAD;
	for (const unsigned char *c = sp1 + 1; c < sp2; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '#')
			return HTTP_E_BAD;
	size_t ml = (size_t)(sp1 - l), tl = (size_t)(sp2 - sp1 - 1);
	const unsigned char *t = sp1 + 1;
	int connect = ml == 7 && !memcmp(l, "CONNECT", 7);
	int options = ml == 7 && !memcmp(l, "OPTIONS", 7);
	int form_ok;
	if (connect)
		form_ok = *t != '/' && *t != '*';
	else if (*t == '*')
		form_ok = options && tl == 1;
	else if (*t == '/')
		form_ok = 1;
	else {
		size_t sl = 0;
		while (sl < tl && (isalnum(t[sl]) || strchr("+-.", t[sl])))
			sl++;
		form_ok = isalpha(*t) && sl < tl && t[sl] == ':';
	}
	if (!form_ok)
		return HTTP_E_BAD;
	int minor, r = ref_version(sp2 + 1, (size_t)(b + le - sp2 - 1), &minor);
	if (r)
		return r;
	struct ref_fields f;
	if ((r = ref_all_fields(&f, 1, b, le + 2, end)))
		return r;
	if (f.te_lines && (minor == 0 || f.te_codings != 1 || f.te_chunked_count != 1))
		return HTTP_E_BAD;
	if (f.hosts > 1 || (minor == 1 && f.hosts == 0))
		return HTTP_E_BAD;
	return (int)end;
}

static int ref_response(const unsigned char *b, size_t n, size_t max)
{
	size_t le, end;
	if (max == 0)
		max = HTTP_DEFAULT_MAX_HEAD;
	if (ref_head(b, n, max, 0, &le, &end))
		return REF_UNSURE;
	int minor, r = ref_version(b, le < 8 ? le : 8, &minor);
	if (r)
		return r;
	if (le < 12 || b[8] != ' ' || b[9] < '1' || b[9] > '5' || !isdigit(b[10]) || !isdigit(b[11]))
		return HTTP_E_BAD;
	if (le > 12 && b[12] != ' ')
		return HTTP_E_BAD;
	for (size_t i = 13; i < le; i++)
		if (!is_vchar(b[i]))
			return HTTP_E_BAD;
	struct ref_fields f;
	if ((r = ref_all_fields(&f, 0, b, le + 2, end)))
		return r;
	if (f.te_lines && (minor == 0 || f.te_codings == 0 || f.te_chunked_count > 1 ||
			   (f.te_chunked_count && !f.te_chunked_last)))
		return HTTP_E_BAD;
	return (int)end;
}

/* Chunked: whole input at once, straight from the grammar. */
static void ref_dechunk(struct dechunk *d, const unsigned char *b, size_t n)
{
	size_t i = 0;
	memset(d, 0, offsetof(struct dechunk, body));
	d->consumed = n; /* when it needs more */
#define NEED(k)                  \
	do {                     \
		if (n - i < (k)) \
			return;  \
	} while (0)
#define BAD()                      \
	do {                       \
		d->rc = HTTP_E_BAD; \
		return;            \
	} while (0)
#define CRLF()                                       \
	do {                                         \
		NEED(1);                             \
		if (b[i++] != '\r')                  \
			BAD();                       \
		NEED(1);                             \
		if (b[i++] != '\n')                  \
			BAD();                       \
	} while (0)
	for (;;) {
		uint64_t size = 0;
		size_t digits = 0;
		while (i < n && isxdigit(b[i])) {
			unsigned v = isdigit(b[i]) ? (unsigned)(b[i] - '0') : (unsigned)(tolower(b[i]) - 'a' + 10);
			if (size > ((uint64_t)INT64_MAX - v) / 16)
				BAD();
			size = size * 16 + v;
			digits++, i++;
		}
		NEED(1);
		if (!digits)
			BAD();
		if (b[i] == ' ' || b[i] == '\t' || b[i] == ';') {
			while (i < n && (b[i] == ' ' || b[i] == '\t'))
				i++;
			NEED(1);
			if (b[i++] != ';')
				BAD();
			while (i < n && is_vchar(b[i]))
				i++;
		}
		CRLF();
		if (size == 0)
			break;
		size_t take = n - i < size ? n - i : (size_t)size;
		assert_true(d->body_len + take <= sizeof(d->body));
		memcpy(d->body + d->body_len, b + i, take);
		d->body_len += take;
		i += take;
		CRLF();
	}
	for (;;) { /* trailer section */
		NEED(1);
		if (b[i] == '\r')
			break;
		size_t s = i;
		while (i < n && is_tchar(b[i]))
			i++;
		NEED(1);
		if (i == s || b[i++] != ':')
			BAD();
		while (i < n && is_vchar(b[i]))
			i++;
		CRLF();
	}
	i++;
	NEED(1);
	if (b[i++] != '\n')
		BAD();
	d->rc = 1;
	d->consumed = i;
#undef NEED
#undef BAD
#undef CRLF
}

/* ------------------------------------------------------------------ */
/* Randomized tests.                                                    */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return n ? (uint32_t)(rng_state % n) : 0;
}

/* Bytes that matter to the grammar, so mutations hit the edges. */
static unsigned char interesting(void)
{
	static const char set[] = "\r\n \t:;,0159aAfF/*#@\"HTP.-\x7f\x80\xff";
	switch (rnd(4)) {
	case 0:
		return (unsigned char)rnd(256);
	default:
		return (unsigned char)set[rnd(sizeof(set) - 1)];
	}
}

/* Apply 1-4 random mutations to b[0..*n) (capacity cap). */
static void mutate(unsigned char *b, size_t *n, size_t cap, const char *const *corpus, size_t nc)
{
	int k = 1 + (int)rnd(4);
	while (k--) {
		size_t len = *n, at = rnd((uint32_t)len + 1);
		switch (rnd(7)) {
		case 0: /* replace a byte */
			if (len)
				b[at % len] = interesting();
			break;
		case 1: /* flip a bit */
			if (len)
				b[at % len] ^= (unsigned char)(1u << rnd(8));
			break;
		case 2: /* insert bytes */
			for (int j = (int)rnd(3); j >= 0 && len < cap; j--, len++) {
				memmove(b + at + 1, b + at, len - at);
				b[at] = interesting();
			}
			break;
		case 3: { /* delete a run */
			size_t d = 1 + rnd(4);
			if (at + d > len)
				d = len - at;
			memmove(b + at, b + at + d, len - at - d);
			len -= d;
			break;
		}
		case 4: /* truncate */
			len = at;
			break;
		case 5: { /* duplicate a run (a field line, a chunk) */
			size_t s = len ? rnd((uint32_t)len) : 0, d = 1 + rnd(24);
			if (s + d > len)
				d = len - s;
			if (len + d <= cap) {
				memmove(b + at + d, b + at, len - at);
				memmove(b + at, b + s + (s >= at ? d : 0), d);
				len += d;
			}
			break;
		}
		default: { /* splice in the tail of another corpus entry */
			const char *o = corpus[rnd((uint32_t)nc)];
			size_t ol = strlen(o), from = rnd((uint32_t)ol);
			if (at + ol - from <= cap) {
				memcpy(b + at, o + from, ol - from);
				len = at + ol - from;
			}
			break;
		}
		}
		*n = len;
	}
}

static const char *const req_corpus[] = {
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	("GET /index.html?q=1&r=%41 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n"
	"Accept: */*\r\nConnection: keep-alive\r\n\r\n"),
	("POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n"
	"Content-Type: text/plain\r\n\r\nhello"),
	("\r\n\r\nPUT /a HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: chunked\r\n"
	"X-Empty:\r\nX-Tab:\tv a l\t \r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
	"GET http://example.com/x HTTP/1.0\r\nConnection: Keep-Alive\r\nCookie: a=b; c=\"d\"\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
};

static const char *const res_corpus[] = {
	"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!",
	("HTTP/1.1 200 OK\r\nServer: nginx\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
	"\r\n5\r\nhello\r\n0\r\n\r\n"),
	"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 204\r\nX: y\r\n\r\n",
	"HTTP/1.1 301 Moved Permanently\r\nLocation: https://x/\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody",
};

struct http_kind {
	snap_fn snap;
	int (*ref)(const unsigned char *b, size_t n, size_t max);
	const char *const *corpus;
	size_t ncorpus;
};

static void fuzz_heads(const struct http_kind *k, int iters, uint64_t seed)
{
	enum { CAP = 1024 };
	unsigned char b[CAP];
	long stats[4] = { 0 }; /* ok, incomplete, bad, too large/version */
	rng_state = seed;
	for (int it = 0; it < iters; it++) {
		const char *base = k->corpus[rnd((uint32_t)k->ncorpus)];
		size_t n = strlen(base);
		memcpy(b, base, n);
		mutate(b, &n, CAP, k->corpus, k->ncorpus);
		static const size_t maxes[] = { 0, 0, 0, 0, 16, 40, 64, 100 };
		size_t max = maxes[rnd(8)];
		struct snap a, a2;
		parse_exact(k->snap, &a, b, n, max);
		parse_exact(k->snap, &a2, b, n, max);
		assert_snap_equal(&a, &a2);
		stats[a.rc > 0 ? 0 : a.rc == 0 ? 1 : a.rc == HTTP_E_BAD ? 2 : 3]++;
		assert_true(a.rc >= 0 || a.rc == HTTP_E_BAD || a.rc == HTTP_E_TOO_LARGE ||
			    a.rc == HTTP_E_VERSION);
		int want = k->ref(b, n, max);
		if (want != REF_UNSURE && (want > 0 ? a.rc != want : a.rc >= 0))
			fail_msg("iteration %d: parser %d, reference %d: \"%.*s\"", it, a.rc, want,
				 (int)n, (const char *)b);
		if (want == REF_UNSURE && a.rc > 0)
			fail_msg("iteration %d: parser %d, reference unsure", it, a.rc);
		/* The prefix property, on a few prefixes (all of them now and then). */
		if (it % 64 == 0) {
			check_all_prefixes(k->snap, b, n, max);
		} else {
			check_prefix(k->snap, b, rnd((uint32_t)n + 1), max, &a);
			if (a.rc > 0)
				check_prefix(k->snap, b, (size_t)a.rc - 1, max, &a);
		}
	}
	print_message("%d inputs: %ld complete, %ld incomplete, %ld bad, %ld too large/version\n",
		      iters, stats[0], stats[1], stats[2], stats[3]);
	/* The mutations must reach every outcome. */
	for (int i = 0; i < 4; i++)
		assert_true(stats[i] > iters / 100);
}

static void test_fuzz_request(void **state)
{
	(void)state;
	static const struct http_kind k = { snap_req, ref_request, req_corpus,
					    sizeof(req_corpus) / sizeof(req_corpus[0]) };
	fuzz_heads(&k, ITERS(1000000), 0x9e3779b97f4a7c15ull);
}

static void test_fuzz_response(void **state)
{
	(void)state;
	static const struct http_kind k = { snap_res, ref_response, res_corpus,
					    sizeof(res_corpus) / sizeof(res_corpus[0]) };
	fuzz_heads(&k, ITERS(1000000), 0x2545f4914f6cdd1dull);
}

/* A random valid chunked encoding of a random body, with extensions,
 * leading zeros, mixed-case hex and trailers. */
static size_t gen_chunked(char *out, size_t cap, char *body, size_t *body_len)
{
	size_t n = 0, bl = 0;
	int chunks = (int)rnd(5);
	for (int i = 0; i <= chunks; i++) {
		size_t sz = i == chunks ? 0 : 1 + rnd(40);
		if (n + sz + 64 > cap)
			sz = 0;
		const char *fmt = rnd(2) ? "%0*zx" : "%0*zX";
		n += (size_t)sprintf(out + n, fmt, (int)rnd(4), sz);
		if (rnd(4) == 0)
			n += (size_t)sprintf(out + n, "%s;n=%s", rnd(2) ? " \t" : "", rnd(2) ? "v" : "\"q s\"");
		n += (size_t)sprintf(out + n, "\r\n");
		for (size_t j = 0; j < sz; j++)
			out[n++] = body[bl++] = (char)rnd(256);
		if (sz)
			n += (size_t)sprintf(out + n, "\r\n");
		if (!sz)
			break;
	}
	for (int t = (int)rnd(3); t > 0; t--)
		n += (size_t)sprintf(out + n, "T-%d:%s\r\n", t, rnd(2) ? " v" : "");
	n += (size_t)sprintf(out + n, "\r\n");
	*body_len = bl;
	return n;
}

static void test_fuzz_chunked(void **state)
{
	(void)state;
	enum { CAP = 1024 };
	static const char *const corpus[] = { "5\r\nhello\r\n0\r\n\r\n", "1;x=y\r\na\r\n0\r\nT: v\r\n\r\n" };
	unsigned char b[CAP];
	char body[CAP];
	long stats[3] = { 0 };
	int iters = ITERS(500000);
	rng_state = 0xd1b54a32d192ed03ull;
	for (int it = 0; it < iters; it++) {
		size_t n, bl;
		n = gen_chunked((char *)b, CAP - 64, body, &bl);
		struct dechunk d, r, s;
		if (it % 2 == 0) { /* valid: decodes to the body, however split */
			memcpy(b + n, "NEXT", 4);
			dechunk(&d, b, n + 4, 1 + rnd(9));
			assert_int_equal(d.rc, 1);
			assert_int_equal(d.consumed, n);
			assert_int_equal(d.body_len, bl);
			assert_memory_equal(d.body, body, bl);
			continue;
		}
		mutate(b, &n, CAP, corpus, 2);
		dechunk(&d, b, n, 0);
		ref_dechunk(&r, b, n);
		if (d.rc != r.rc)
			fail_msg("iteration %d: decoder %d, reference %d: \"%.*s\"", it, d.rc, r.rc,
				 (int)n, (const char *)b);
		assert_dechunk_equal(&d, &r);
		dechunk(&s, b, n, 1 + rnd(9));
		assert_dechunk_equal(&s, &d);
		stats[d.rc == 1 ? 0 : d.rc == 0 ? 1 : 2]++;
	}
	print_message("%d mutated bodies: %ld complete, %ld incomplete, %ld bad\n", iters / 2,
		      stats[0], stats[1], stats[2]);
	for (int i = 0; i < 3; i++)
		assert_true(stats[i] > iters / 100);
}

/* ------------------------------------------------------------------ */

static double parse_ns(const char *s, long n)
{
	struct http_request r;
	size_t len = strlen(s);
	struct timespec a, b;
	long sum = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		const char *volatile p = s; /* no hoisting out of the loop */
		sum += http_parse_request(p, len, &r, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(sum, (long)len * n);
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n;
}

/* Every byte value at every offset of a long field value and reason
 * phrase: the eight-bytes-a-step scan must judge each byte as the byte
 * table does (HTAB, SP, VCHAR and obs-text allowed; other controls and DEL
 * rejected), whichever lane of a word it falls in and next to the tail. */
static void test_value_bytes(void **state)
{
	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		bool ok = b == '\t' || (b >= 0x20 && b != 0x7f);
		for (unsigned at = 0; at < 21; at++) {
			char v[22];
			memset(v, 'a', 21);
			v[21] = 0;
			v[at] = (char)b;
			char msg[160];
			/* the byte in a value (it may be NUL: built by hand) */
			int n = snprintf(msg, sizeof(msg), "HTTP/1.1 200 OK\r\nX-Long: ");
			memcpy(msg + n, v, 21);
			n += 21;
			n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\r\nContent-Length: 0\r\n\r\n");
			struct http_response rs;
			int r = http_parse_response(msg, (size_t)n, &rs, 0);
			if (ok)
				assert_int_equal(r, n);
			else
				assert_int_equal(r, HTTP_E_BAD);
			/* the byte in the reason phrase */
			n = snprintf(msg, sizeof(msg), "HTTP/1.1 200 ");
			memcpy(msg + n, v, 21);
			n += 21;
			n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\r\nContent-Length: 0\r\n\r\n");
			r = http_parse_response(msg, (size_t)n, &rs, 0);
			if (ok)
				assert_int_equal(r, n);
			else
				assert_int_equal(r, HTTP_E_BAD);
		}
	}
}

/* Every byte value in every lane of a header name and of a request
 * target, the heads long enough for the sixteen-byte scans, and their
 * ends at the input's end (where the table takes over): the parser's
 * table is the oracle.  A ':' in a name ends it (empty: bad). */
static void test_name_and_target_bytes(void **state)
{
	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		for (unsigned at = 0; at < 21; at++) {
			char w[21];
			memset(w, 'a', sizeof(w));
			w[at] = (char)b;
			char msg[160];
			int n = snprintf(msg, sizeof(msg), "HTTP/1.1 200 OK\r\n");
			memcpy(msg + n, w, sizeof(w));
			n += (int)sizeof(w);
			n += snprintf(msg + n, sizeof(msg) - (size_t)n, ": v\r\nContent-Length: 0\r\n\r\n");
			bool ok = (http__class((unsigned char)b) & HTTP__TCHAR) || (b == ':' && at > 0);
			struct http_response rs;
			int r = http_parse_response(msg, (size_t)n, &rs, 0);
			assert_int_equal(r, ok ? n : HTTP_E_BAD);
			if (ok && b != ':') {
				assert_int_equal(rs.headers[0].name_len, sizeof(w));
				assert_memory_equal(rs.headers[0].name, w, sizeof(w));
			}

			n = snprintf(msg, sizeof(msg), "GET /");
			memcpy(msg + n, w, sizeof(w));
			n += (int)sizeof(w);
			n += snprintf(msg + n, sizeof(msg) - (size_t)n, " HTTP/1.1\r\nHost: x\r\n\r\n");
			ok = http__class((unsigned char)b) & HTTP__TARGET;
			struct http_request rq;
			r = http_parse_request(msg, (size_t)n, &rq, 0);
			assert_int_equal(r, ok ? n : HTTP_E_BAD);
			if (ok)
				assert_int_equal(rq.target_len, 1 + sizeof(w));
		}
	}
}

/* Not a benchmark: a sanity bound so a quadratic slip shows up. */
static void test_parse_speed(void **state)
{
	(void)state;
	long n = WEFT_TEST_SANITIZED ? 20000 : 1000000;
	double small = parse_ns("GET / HTTP/1.1\r\nHost: x\r\n\r\n", n);
	double wrk = parse_ns("GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
			      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) wrk\r\nAccept: */*\r\n"
			      "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n",
			      n);
	print_message("parse: %.1f ns for the 27-byte request, %.1f ns for a 190-byte one%s\n",
		      small, wrk, WEFT_TEST_SANITIZED ? " (sanitized)" : "");
	if (!WEFT_TEST_SANITIZED)
		assert_true(small < 1000 && wrk < 5000);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_request_valid),
	cmocka_unit_test(test_request_keep_alive),
	cmocka_unit_test(test_request_pipelined),
	cmocka_unit_test(test_request_bad),
	cmocka_unit_test(test_request_too_large),
	cmocka_unit_test(test_find_header),
	cmocka_unit_test(test_response_valid),
	cmocka_unit_test(test_response_bad),
	cmocka_unit_test(test_chunked_valid),
	cmocka_unit_test(test_chunked_bad),
	cmocka_unit_test(test_fuzz_request),
	cmocka_unit_test(test_fuzz_response),
	cmocka_unit_test(test_fuzz_chunked),
	cmocka_unit_test(test_value_bytes),
	cmocka_unit_test(test_name_and_target_bytes),
	cmocka_unit_test(test_parse_speed),
};

WEFT_TEST_MAIN(tests)
