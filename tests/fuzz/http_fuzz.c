/*
 * libFuzzer harness for examples/http_parse.h (see README.md here).
 *
 * The first input byte picks what to parse (a request, a response or a
 * chunked body) and the head limit; the rest is the message, copied to a
 * heap block of exactly its size so ASan sees any read past the end.  Beyond
 * "no crash, no sanitizer report" it checks the parser's contracts and
 * abort()s when one breaks:
 *  - a result is > 0 (at most the length and the limit, ending in CRLFCRLF,
 *    every pointer inside the head), 0, or one of the three errors;
 *  - parsing again gives the same result;
 *  - the prefix property: one byte less gives 0 or the same result, and a
 *    successful head is incomplete one byte short of its end;
 *  - the chunked decoder gives the same result, body and consumed length fed
 *    whole, byte by byte, or through the in-place API.
 */
#include "examples/http_parse.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "http_fuzz: %s:%d: %s\n", __FILE__, __LINE__, \
				#c);                                          \
			abort();                                              \
		}                                                             \
	} while (0)

static void in_head(const char *buf, int rc, const char *p, size_t n)
{
	CHECK(p >= buf && n <= (size_t)rc && (size_t)(p - buf) <= (size_t)rc - n);
}

static void check_headers(const char *buf, int rc, const struct http_header *h, size_t n)
{
	CHECK(n <= HTTP_MAX_HEADERS);
	for (size_t i = 0; i < n; i++) {
		in_head(buf, rc, h[i].name, h[i].name_len);
		in_head(buf, rc, h[i].value, h[i].value_len);
		CHECK(h[i].name_len > 0);
	}
}

/* Parse a request (response 0) or a response and check what it gave. */
static int head(const char *buf, size_t len, size_t max, int response)
{
	union {
		struct http_request q;
		struct http_response s;
	} m;
	int rc = response ? http_parse_response(buf, len, &m.s, max)
			  : http_parse_request(buf, len, &m.q, max);
	CHECK(rc >= 0 || rc == HTTP_E_BAD || rc == HTTP_E_TOO_LARGE || rc == HTTP_E_VERSION);
	if (rc <= 0)
		return rc;
	CHECK((size_t)rc <= len && (size_t)rc <= (max ? max : HTTP_DEFAULT_MAX_HEAD));
	CHECK(rc >= 4 && memcmp(buf + rc - 4, "\r\n\r\n", 4) == 0);
	if (response) {
		in_head(buf, rc, m.s.reason, m.s.reason_len);
		CHECK(m.s.status >= 100 && m.s.status <= 599);
		CHECK(m.s.chunked == (m.s.body == HTTP_BODY_CHUNKED));
		CHECK(!(m.s.body == HTTP_BODY_EOF && m.s.keep_alive));
		check_headers(buf, rc, m.s.headers, m.s.num_headers);
	} else {
		in_head(buf, rc, m.q.method, m.q.method_len);
		in_head(buf, rc, m.q.target, m.q.target_len);
		CHECK(m.q.minor_version == 0 || m.q.minor_version == 1);
		CHECK(m.q.content_length >= -1 && !(m.q.chunked && m.q.content_length >= 0));
		check_headers(buf, rc, m.q.headers, m.q.num_headers);
	}
	return rc;
}

static void heads(const char *buf, size_t len, size_t max, int response)
{
	int rc = head(buf, len, max, response);
	CHECK(head(buf, len, max, response) == rc);
	if (len) {
		int shorter = head(buf, len - 1, max, response);
		CHECK(shorter == 0 || shorter == rc);
		if (rc > 0 && (size_t)rc == len)
			CHECK(shorter == 0);
	}
}

struct dechunk {
	int rc;
	size_t consumed, body_len;
	char *body;
};

/* step 0: in place, all at once; otherwise spans over pieces of `step`. */
static void dechunk(struct dechunk *d, const char *buf, size_t len, size_t step)
{
	struct http_chunked c;
	http_chunked_init(&c);
	d->body = malloc(len ? len : 1);
	d->body_len = 0;
	CHECK(d->body);
	if (!step) {
		memcpy(d->body, buf, len);
		d->rc = http_chunked_decode(&c, d->body, len, &d->consumed, &d->body_len);
		CHECK(d->body_len <= d->consumed && d->consumed <= len);
		return;
	}
	size_t off = 0;
	d->rc = 0;
	while (d->rc == 0 && off < len) {
		size_t n = len - off < step ? len - off : step, used;
		const char *p;
		size_t got;
		d->rc = http_chunked_next(&c, buf + off, n, &used, &p, &got);
		CHECK(used <= n);
		if (got) {
			CHECK(p >= buf + off && p + got <= buf + off + used);
			memcpy(d->body + d->body_len, p, got);
			d->body_len += got;
		} else if (d->rc == 0) {
			CHECK(used == n);
		}
		off += used;
	}
	d->consumed = off;
}

static void chunked(const char *buf, size_t len)
{
	struct dechunk a, b;
	dechunk(&a, buf, len, 0);
	dechunk(&b, buf, len, 1);
	CHECK(a.rc == b.rc && a.body_len == b.body_len);
	CHECK(memcmp(a.body, b.body, a.body_len) == 0);
	if (a.rc >= 0)
		CHECK(a.consumed == b.consumed);
	CHECK(a.rc == 0 ? a.consumed == len : a.rc == 1 ? a.consumed <= len
							: a.rc == HTTP_E_BAD || a.rc == HTTP_E_TOO_LARGE);
	free(a.body);
	free(b.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = { 0, 0, 0, 16, 64, 256, 1024, 65536 };
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	size_t len = size - 1, max = maxes[(sel >> 2) & 7];
	char *buf = malloc(len ? len : 1);
	CHECK(buf);
	memcpy(buf, data + 1, len);
	switch (sel & 3) {
	case 0:
	case 1:
	case 2:
		heads(buf, len, max, (sel & 3) == 2);
		break;
	default:
		chunked(buf, len);
		break;
	}
	free(buf);
	return 0;
}
