/*
 * proto_raw.h: a fixed request and a response that ends at a delimiter or
 * after a length, for weft-load's raw:// (and tcp:// echo: the request is
 * --size bytes and the response the same length).  A new line protocol is
 * a --send and an --expect-delim away.
 */
#ifndef WEFT_BENCH_PROTO_RAW_H
#define WEFT_BENCH_PROTO_RAW_H

#include "weft.h"

#include <string.h>

struct proto_raw {
	char *req; /* the request, pipeline copies back to back */
	size_t len, copies;
	const char *delim; /* a response ends with it, or */
	size_t dlen;
	size_t rlen; /* a response is this long */
};

static int proto_raw_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	const struct proto_raw *r = arg;
	while (n) {
		unsigned k = n < r->copies ? n : (unsigned)r->copies;
		ssize_t w = weft_stream_write(s, r->req, r->len * k);
		if (w < 0)
			return (int)w;
		n -= k;
	}
	return 0;
}

static ssize_t proto_raw_parse(void *arg, void *state, const char *buf, size_t len, size_t *need,
			       unsigned *flags)
{
	const struct proto_raw *r = arg;
	if (!r->dlen) {
		*need = r->rlen;
		return len >= r->rlen ? (ssize_t)r->rlen : 0;
	}
	const char *e = len >= r->dlen ? memmem(buf, len, r->delim, r->dlen) : NULL;
	return e ? (ssize_t)(e - buf + (ptrdiff_t)r->dlen) : 0;
}

static const weft_load_proto proto_raw = {
	.name = "raw",
	.write = proto_raw_write,
	.parse = proto_raw_parse,
};

#endif
