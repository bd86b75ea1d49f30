/*
 * echo_server --port P [--loops N] [--host ADDR] [--shared-listener] [--[no-]multishot]
 *
 * TCP echo: every byte a client sends comes back.  One task per
 * connection, spread over N loops (default: one per CPU); Ctrl-C or
 * SIGTERM shuts it down gracefully.  Port 0 picks a free port; the chosen
 * one is printed as "listening on HOST:PORT".
 *
 * asyncio twin:
 *     async def handle(reader, writer):
 *         while data := await reader.read(16384):
 *             writer.write(data)
 *             await writer.drain()
 *     server = await asyncio.start_server(handle, host, port)
 */
#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
	const char *host;
	unsigned port, loops;
	bool shared; /* one listener instead of one per loop (SO_REUSEPORT) */
	int multishot; /* -1: the server's default */
};

/* Echo without copying: send straight out of the read buffer. */
static void echo(weft_stream *s, void *arg)
{
	(void)arg;
	for (;;) {
		const char *p;
		size_t n = weft_stream_buffered(s, &p);
		if (!n) {
			if (weft_stream_fill(s) <= 0)
				return; /* EOF, reset, idle timeout, shutdown */
			continue;
		}
		if (weft_stream_write(s, p, n) < 0)
			return;
		weft_stream_consume(s, n);
		if (weft_stream_drain(s) < 0)
			return;
	}
}

static void *serve(void *arg)
{
	struct opts *o = arg;
	weft_sockaddr addr;
	if (weft_addr_ip(&addr, o->host, (uint16_t)o->port) < 0) {
		fprintf(stderr, "echo_server: bad address %s\n", o->host);
		return (void *)1;
	}
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.handle_signals = true;
	cfg.shared_listener = o->shared;
	if (o->multishot >= 0)
		cfg.multishot_recv = o->multishot;
	weft_server *srv;
	int r = weft_server_start(&srv, NULL, &addr, &cfg, echo, NULL);
	if (r < 0) {
		fprintf(stderr, "echo_server: %s\n", weft_strerror(r));
		return (void *)1;
	}
	printf("listening on %s:%u (%u loops)\n", o->host ? o->host : "*",
	       weft_server_port(srv), weft_loop_count());
	fflush(stdout);
	weft_server_wait(srv);
	weft_server_stats st;
	weft_server_stats_get(srv, &st);
	printf("shut down after %llu connections\n", (unsigned long long)st.accepted);
	weft_server_destroy(srv);
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = { .port = 8000, .multishot = -1 };
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
			o.port = (unsigned)atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--loops") == 0)
			o.loops = (unsigned)atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
			o.host = argv[++i];
		else if (strcmp(argv[i], "--shared-listener") == 0)
			o.shared = true;
		else if (strcmp(argv[i], "--multishot") == 0)
			o.multishot = 1;
		else if (strcmp(argv[i], "--no-multishot") == 0)
			o.multishot = 0;
		else {
			fprintf(stderr, "usage: echo_server --port P [--loops N] [--host ADDR] [--shared-listener] [--[no-]multishot]\n");
			return 2;
		}
	}
	if (o.port > 65535) {
		fprintf(stderr, "echo_server: port out of range\n");
		return 2;
	}
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = o.loops;
	void *res = NULL;
	int r = weft_run(&cfg, serve, &o, &res);
	if (r < 0) {
		fprintf(stderr, "echo_server: %s\n", weft_strerror(r));
		return 1;
	}
	return res ? 1 : 0;
}
