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
#include "serve_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
	struct serve_opts o = { .name = "echo_server", .handler = echo, .port = 8000 };
	return serve_main(argc, argv, &o);
}
