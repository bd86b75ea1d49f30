/*
 * http_body.h — read an HTTP/1.1 message body off a weft_stream, for the
 * HTTP examples and weft-load: by Content-Length, chunked
 * (http_parse.h's decoder), or until the peer closes.
 */
#ifndef HTTP_BODY_H
#define HTTP_BODY_H

#include "weft.h"
#include "http_parse.h"

/* Receives each piece of body; nonzero stops the read with that error. */
typedef int (*http_body_sink)(void *ctx, const char *p, size_t n);

/*
 * Consume one body from s: chunked, else `length` bytes (length < 0: until
 * end of input).  Each piece goes to sink (NULL: dropped); *consumed (if
 * non-NULL) counts every byte taken from the stream, framing included.
 * Returns 0, -EBADMSG (bad chunking), -ENODATA (input ended first), the
 * sink's error or the stream's.
 */
static inline int http_body_read(weft_stream *s, bool chunked, int64_t length,
				 http_body_sink sink, void *ctx, size_t *consumed)
{
	struct http_chunked ck;
	http_chunked_init(&ck);
	for (;;) {
		const char *p;
		size_t n = weft_stream_buffered(s, &p), used = 0;
		int done = 0, r = 0;
		if (chunked && n) {
			const char *d;
			size_t dl;
			done = http_chunked_next(&ck, p, n, &used, &d, &dl);
			if (done < 0)
				return -EBADMSG;
			if (dl && sink)
				r = sink(ctx, d, dl);
		} else if (!chunked) {
			used = length >= 0 && (uint64_t)length < n ? (size_t)length : n;
			if (used && sink)
				r = sink(ctx, p, used);
			if (length >= 0)
				length -= (int64_t)used;
			done = length == 0;
		}
		if (r)
			return r;
		weft_stream_consume(s, used);
		if (consumed)
			*consumed += used;
		if (done)
			return 0;
		if (used)
			continue;
		ssize_t f = weft_stream_fill(s);
		if (f == 0)
			return length < 0 && !chunked ? 0 : -ENODATA;
		if (f < 0)
			return (int)f;
	}
}

#endif
