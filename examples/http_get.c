/*
 * http_get URL...
 *
 * Fetch several pages concurrently and print, for each URL in order, its
 * status, body length and <title>: the twin of the seeds' aiohttp example
 * (two tasks fetching two news articles and showing their titles).
 *
 *     async def fetch(session, url):
 *         async with session.get(url) as r:
 *             return r.status, await r.text()
 *     results = await asyncio.gather(*(fetch(s, u) for u in urls))
 *
 * Plain http:// only (no TLS).  Host names are resolved off the loops;
 * each fetch has 10 s in all.  Exit status 0 if every fetch got a 2xx.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr: a GNU extension */
#endif
#include "weft.h"
#include "http_parse.h"
#include "http_body.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (16u << 20)
#define FETCH_TIMEOUT_NS (10ull * 1000000000ull)

struct fetch {
	const char *url;
	char host[256], path[1024];
	uint16_t port;
	int status;     /* HTTP status, or -errno */
	const char *err;
	char *body;
	size_t len;
	char title[128];
};

static int parse_url(struct fetch *f)
{
	const char *u = f->url;
	if (strncmp(u, "http://", 7) != 0)
		return -EPROTONOSUPPORT;
	u += 7;
	size_t hl = strcspn(u, "/:");
	if (!hl || hl >= sizeof(f->host))
		return -EINVAL;
	memcpy(f->host, u, hl);
	f->host[hl] = 0;
	u += hl;
	f->port = 80;
	if (*u == ':') {
		char *end;
		long p = strtol(u + 1, &end, 10);
		if (p <= 0 || p > 65535)
			return -EINVAL;
		f->port = (uint16_t)p;
		u = end;
	}
	snprintf(f->path, sizeof(f->path), "%s", *u ? u : "/");
	return f->path[0] == '/' ? 0 : -EINVAL;
}

static int append(struct fetch *f, const char *p, size_t n)
{
	if (f->len + n > MAX_BODY)
		return -EFBIG;
	char *b = realloc(f->body, f->len + n + 1);
	if (!b)
		return -ENOMEM;
	memcpy(b + f->len, p, n);
	f->body = b;
	f->len += n;
	f->body[f->len] = 0;
	return 0;
}

static int append_sink(void *ctx, const char *p, size_t n)
{
	return append(ctx, p, n);
}

/* Read the body as the response says it ends. */
static int read_body(weft_stream *s, struct fetch *f, const struct http_response *rs)
{
	if (rs->body == HTTP_BODY_NONE)
		return 0;
	int64_t len = rs->body == HTTP_BODY_LENGTH ? rs->content_length : -1;
	return http_body_read(s, rs->body == HTTP_BODY_CHUNKED, len, append_sink, f, NULL);
}

static int get(struct fetch *f)
{
	int fd = weft_tcp_connect_host(f->host, f->port, WEFT_FOREVER);
	if (fd < 0)
		return fd;
	weft_stream_config sc;
	weft_stream_config_init(&sc);
	weft_stream *s;
	int r = weft_stream_open(&s, fd, &sc);
	if (r < 0)
		return r;
	char req[1400];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: weft-http_get\r\n"
			 "Accept: */*\r\nConnection: close\r\n\r\n", f->path, f->host);
	weft_stream_write(s, req, (size_t)n);
	struct http_response rs;
	for (;;) {
		const char *p;
		size_t len = weft_stream_buffered(s, &p);
		r = len ? http_parse_response(p, len, &rs, 64 * 1024) : 0;
		if (r > 0 && rs.status >= 200) {
			weft_stream_consume(s, (size_t)r);
			break;
		}
		if (r > 0) { /* 1xx: the real response follows */
			weft_stream_consume(s, (size_t)r);
			continue;
		}
		if (r < 0 || (r = (int)weft_stream_fill(s)) <= 0) {
			r = r == 0 ? -ENODATA : r < 0 && r != -EMSGSIZE ? r : -EBADMSG;
			weft_stream_close(s);
			return r;
		}
	}
	f->status = rs.status;
	r = read_body(s, f, &rs);
	weft_stream_close(s);
	return r < 0 ? r : f->status;
}

/* The first <title>...</title>, whitespace folded. */
static void find_title(struct fetch *f)
{
	snprintf(f->title, sizeof(f->title), "-");
	if (!f->body)
		return;
	const char *b = strcasestr(f->body, "<title");
	b = b ? strchr(b, '>') : NULL;
	const char *e = b ? strcasestr(b, "</title>") : NULL;
	if (!e)
		return;
	size_t n = 0;
	for (const char *p = b + 1; p < e && n + 1 < sizeof(f->title); p++)
		if (!isspace((unsigned char)*p) || (n && f->title[n - 1] != ' '))
			f->title[n++] = isspace((unsigned char)*p) ? ' ' : *p;
	while (n && f->title[n - 1] == ' ')
		n--;
	f->title[n] = 0;
}

static void *fetch_task(void *arg)
{
	struct fetch *f = arg;
	int r = parse_url(f);
	if (r == 0) {
		weft_scope sc;
		weft_scope_enter(&sc, FETCH_TIMEOUT_NS);
		r = get(f);
		weft_scope_exit(&sc);
	}
	if (r < 0)
		f->status = r;
	find_title(f);
	return NULL;
}

struct job {
	int n;
	struct fetch *f;
};

static void *main_task(void *arg)
{
	struct job *j = arg;
	weft_task **ts = calloc((size_t)j->n, sizeof(*ts));
	if (!ts)
		return (void *)1;
	for (int i = 0; i < j->n; i++)
		if (weft_task_spawn(&ts[i], fetch_task, &j->f[i]) < 0)
			j->f[i].status = -ENOMEM;
	intptr_t bad = 0;
	for (int i = 0; i < j->n; i++) { /* results in input order, as gather */
		if (ts[i]) {
			weft_task_join(ts[i], NULL);
			weft_task_release(ts[i]);
		}
		struct fetch *f = &j->f[i];
		if (f->status == -EPROTONOSUPPORT)
			printf("%s error: only http:// URLs are supported\n", f->url);
		else if (f->status < 0)
			printf("%s error %s\n", f->url, weft_strerror(f->status));
		else
			printf("%s %d %zu %s\n", f->url, f->status, f->len, f->title);
		bad |= f->status < 200 || f->status > 299;
		free(f->body);
	}
	free(ts);
	return (void *)bad;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: http_get http://host[:port]/path ...\n");
		return 2;
	}
	struct job j = { argc - 1, calloc((size_t)argc, sizeof(struct fetch)) };
	if (!j.f)
		return 1;
	for (int i = 0; i < j.n; i++)
		j.f[i].url = argv[i + 1];
	void *res = NULL;
	int r = weft_run(NULL, main_task, &j, &res);
	free(j.f);
	if (r < 0) {
		fprintf(stderr, "http_get: %s\n", weft_strerror(r));
		return 1;
	}
	return res ? 1 : 0;
}
