/*
 * proto_http.h: HTTP/1.1 keep-alive GET for weft-load, a weft_load_proto.
 * The request is built once; a response is parsed strictly
 * (examples/http_parse.h): the head, then a Content-Length or chunked body
 * found in the buffered bytes.  A close-delimited body cannot carry
 * keep-alive load: a parse error.  Non-2xx statuses are failed answers.
 */
#ifndef WEFT_BENCH_PROTO_HTTP_H
#define WEFT_BENCH_PROTO_HTTP_H

#include "weft.h"
#include "../examples/http_parse.h"

struct proto_http {
	char *req; /* one request */
	size_t len;
};

static int proto_http_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	const struct proto_http *h = arg;
	for (unsigned i = 0; i < n; i++) {
		ssize_t r = weft_stream_write(s, h->req, h->len);
		if (r < 0)
			return (int)r;
	}
	return 0;
}

/* The end of a chunked body that starts at buf[0]: its length, 0 if not all
 * here, -EBADMSG. */
static ssize_t proto_http_chunked_end(const char *buf, size_t len)
{
	struct http_chunked ch;
	http_chunked_init(&ch);
	size_t off = 0;
	while (off < len) {
		size_t used;
		const char *data;
		size_t dlen;
		int r = http_chunked_next(&ch, buf + off, len - off, &used, &data, &dlen);
		if (r < 0)
			return -EBADMSG;
		off += used;
		if (r == 1)
			return (ssize_t)off;
	}
	return 0;
}

static ssize_t proto_http_parse(void *arg, void *state, const char *buf, size_t len,
				size_t *need, unsigned *flags)
{
	struct http_response rs;
	int head = len ? http_parse_response(buf, len, &rs, 64 * 1024) : 0;
	if (head <= 0)
		return head < 0 ? -EBADMSG : 0;
	if (rs.status < 200 || rs.status > 299)
		*flags |= WEFT_LOAD_RESP_FAILED;
	if (rs.body == HTTP_BODY_NONE)
		return head;
	if (rs.body == HTTP_BODY_EOF)
		return -EBADMSG;
	if (rs.body == HTTP_BODY_CHUNKED) {
		ssize_t end = proto_http_chunked_end(buf + head, len - (size_t)head);
		if (end < 0)
			return end;
		if (end == 0)
			*need = len + 1; /* past the stream's limit if the body is */
		return end ? head + end : 0;
	}
	if (rs.content_length < 0 || (uint64_t)rs.content_length > (256u << 20))
		return -EBADMSG;
	size_t total = (size_t)head + (size_t)rs.content_length;
	if (total > len) {
		*need = total;
		return 0;
	}
	return (ssize_t)total;
}

static const weft_load_proto proto_http = {
	.name = "http",
	.write = proto_http_write,
	.parse = proto_http_parse,
};

#endif
