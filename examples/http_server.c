/*
 * http_server --port P [--loops N] [--host ADDR] [--shared-listener] [--[no-]multishot]
 *
 * HTTP/1.1 with keep-alive and pipelining.  GET / (and HEAD /) answers
 * 200 "Hello, World!"; other paths 404, other methods 405.  The request
 * parser (http_parse.h) is strict: malformed requests get 400, heads over
 * 8 KiB get 431, unknown versions 505, and the connection is closed after
 * an error.  A request head must arrive within 10 s of its first byte and
 * an idle keep-alive connection is closed after 60 s (slowloris); both are
 * settable: --head-timeout-ms, --idle-timeout-ms.
 * Ctrl-C or SIGTERM shuts it down gracefully.
 *
 * Pipelined requests are answered in order from the one read buffer; their
 * responses queue in the stream and leave in one send.
 */
#include "weft.h"
#include "http_parse.h"
#include "http_body.h"
#include "serve_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HEAD 8192
static uint64_t head_timeout_ns = 10ull * 1000000000ull;

/* "Date: ..." for the current second, cached per thread: formatting it per
 * response would cost more than parsing the request.  Never held across a
 * suspension point (docs/architecture.md rule 2): filled and copied in one
 * call. */
static __attribute__((noinline)) size_t date_line(char *out)
{
	static __thread time_t sec;
	static __thread char line[48];
	static __thread size_t len;
	time_t now = time(NULL);
	if (now != sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		len = strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		sec = now;
	}
	memcpy(out, line, len);
	return len;
}

static void respond(weft_stream *s, int status, const char *reason, const char *body,
		    bool head_only, bool close_conn, const char *extra)
{
	char buf[512];
	size_t blen = strlen(body);
	int n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\nServer: weft\r\n", status, reason);
	n += (int)date_line(buf + n);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n,
		      "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s%s\r\n%s", blen,
		      close_conn ? "Connection: close\r\n" : "", extra ? extra : "",
		      head_only ? "" : body);
	weft_stream_write(s, buf, (size_t)n);
}

static bool is(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* The hot response, GET / on a keep-alive connection: fixed bytes around
 * the cached date line, no formatting. */
static void respond_hello(weft_stream *s)
{
	static const char a[] = "HTTP/1.1 200 OK\r\nServer: weft\r\n";
	static const char b[] = "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
				"Hello, World!";
	char buf[160];
	size_t n = sizeof(a) - 1;
	memcpy(buf, a, n);
	n += date_line(buf + n);
	memcpy(buf + n, b, sizeof(b) - 1);
	weft_stream_write(s, buf, n + sizeof(b) - 1);
}

/* What answering a request needs of its head. */
struct head {
	bool get, head, root, keep_alive, chunked;
	int64_t content_length;
};

/* Parse a head into *h: http_parse_request's result.  Out of line, so its
 * 2 KiB struct http_request lives in a frame of its own that is gone
 * before the connection writes, reads or waits.  A task's stack stays
 * resident as deep as it has ever reached: with the struct in http_conn's
 * frame, the allocator's slow paths under a write reached a second page
 * now and then, and over minutes every long-lived connection came to cost
 * 8 KiB of stack instead of 4 (the soak, bench/soak.sh, saw RSS creep). */
static __attribute__((noinline)) int parse_head(const char *p, size_t n, struct head *h)
{
	struct http_request rq;
	int rc = http_parse_request(p, n, &rq, MAX_HEAD);
	if (rc > 0)
		*h = (struct head){ .get = is(rq.method, rq.method_len, "GET"),
				    .head = is(rq.method, rq.method_len, "HEAD"),
				    .root = is(rq.target, rq.target_len, "/"),
				    .keep_alive = rq.keep_alive,
				    .chunked = rq.chunked,
				    .content_length = rq.content_length };
	return rc;
}

/* Route one parsed request; returns whether the connection stays open. */
static bool handle(weft_stream *s, const struct head *rq)
{
	bool get = rq->get, head = rq->head, keep = rq->keep_alive;
	if (!rq->root)
		respond(s, 404, "Not Found", "Not Found\n", head, !keep, NULL);
	else if (!get && !head)
		respond(s, 405, "Method Not Allowed", "Method Not Allowed\n", false, !keep,
			"Allow: GET, HEAD\r\n");
	else if (get && keep)
		respond_hello(s);
	else
		respond(s, 200, "OK", "Hello, World!", head, !keep, NULL);
	return keep;
}

/* Discard a request body (Content-Length or chunked); false on error. */
static bool skip_body(weft_stream *s, const struct head *rq)
{
	return http_body_read(s, rq->chunked, rq->content_length > 0 ? rq->content_length : 0,
			      NULL, NULL, NULL) == 0;
}

static void http_conn(weft_stream *s, void *arg)
{
	(void)arg;
	bool open = true, in_head = false;
	while (open) {
		const char *p;
		size_t n = weft_stream_buffered(s, &p);
		struct head rq;
		int rc = n ? parse_head(p, n, &rq) : 0;
		if (rc > 0) { /* a whole head: answer it, then look again */
			weft_stream_read_deadline(s, WEFT_FOREVER);
			in_head = false;
			weft_stream_consume(s, (size_t)rc);
			open = skip_body(s, &rq) && handle(s, &rq);
			continue;
		}
		if (rc < 0) {
			int st = http_error_status(rc);
			respond(s, st, st == 431 ? "Request Header Fields Too Large"
				       : st == 505 ? "HTTP Version Not Supported" : "Bad Request",
				"Bad Request\n", false, true, NULL);
			break;
		}
		/* Need more: answer what is queued first, with backpressure. */
		if (weft_stream_drain(s) < 0)
			break;
		/* A head gets head_timeout_ns in all from its first byte, however
		 * slowly the rest trickles in; between requests only the idle
		 * timeout applies. */
		if (n && !in_head) /* pipelined: the next head is under way */
			weft_stream_read_deadline(s, weft_now_ns() + head_timeout_ns);
		in_head = n > 0;
		if (weft_stream_fill(s) <= 0)
			break; /* EOF, reset, timeout, shutdown */
		if (!in_head) { /* its first bytes just came */
			weft_stream_read_deadline(s, weft_now_ns() + head_timeout_ns);
			in_head = true;
		}
	}
}

static int head_option(int argc, char **argv, int i)
{
	if (i + 1 >= argc || strcmp(argv[i], "--head-timeout-ms") != 0)
		return 0;
	head_timeout_ns = strtoull(argv[i + 1], NULL, 10) * 1000000ull;
	return 2;
}

static void tune(weft_server_config *cfg)
{
	cfg->stream_limit = MAX_HEAD; /* a head over 8 KiB is answered 431 */
	cfg->idle_timeout_ns = 60ull * 1000000000ull; /* HTTP's keep-alive */
}

int main(int argc, char **argv)
{
	struct serve_opts o = { .name = "http_server", .handler = http_conn, .port = 8080,
				.extra = head_option, .extra_usage = " [--head-timeout-ms MS]",
				.tune = tune };
	return serve_main(argc, argv, &o);
}
