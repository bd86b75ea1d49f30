/*
 * tcp_proxy --port P --upstream HOST:PORT [--upstream HOST:PORT ...]
 *           [--connect-timeout-ms MS] [--idle-timeout-ms MS] [--down-ms MS]
 *           [--grace-ms MS] [--verbose] [serve_main.h's options: --loops N, ...]
 *
 * A TCP reverse proxy: every client connection gets a connection to one
 * of the upstreams, and the bytes are relayed both ways until both sides
 * have finished.
 *
 *  - Round robin with failover: each client starts at the next upstream
 *    in turn and takes the first that answers (weft_tcp_connect_any, each
 *    attempt within --connect-timeout-ms, 1000).  One that refused or did
 *    not answer is marked down for --down-ms (2000): the next clients skip
 *    it instead of paying its timeout again (unless every one is down).
 *  - Half-close both ways: a side that ends its output (shutdown(SHUT_WR))
 *    has that passed on, and the other direction goes on.
 *  - --idle-timeout-ms (none by default) is connection-wide: a connection
 *    is cut only when neither direction moved a byte for that long, so a
 *    long download whose client sends nothing is not.
 *  - Resets are passed on: if one side resets (or the connection fails any
 *    other way), the other side gets a reset too (weft_stream_abort), not
 *    a clean end of data it might take for complete.
 *  - SIGTERM: stop accepting, let transfers in flight finish within the
 *    grace (--grace-ms, 5000), then reset what is left.
 *  - --coalesce-us US (serve_main.h, off by default): wake coalescing, a
 *    sleeping loop waits for 32 completions or US microseconds.  A proxy
 *    on one loop sleeps between most completions; at 50 us it spent
 *    10-15% less CPU per small request in two runs of three here (the
 *    third, on a host in a slow spell, none), and its latency did not grow (no
 *    longer saturated, it answered sooner); it relayed big downloads
 *    10-20% slower (docs/benchmarks.md, "Wake coalescing").
 *
 * Upstream names are resolved once, at start-up.  Port 0 picks a free
 * port, printed as "listening on HOST:PORT".
 *
 * asyncio twin:
 *     async def handle(client_r, client_w):
 *         for up in upstreams[next(rr):] + upstreams[:rr]:  # skipping down ones
 *             try:
 *                 up_r, up_w = await asyncio.wait_for(
 *                     asyncio.open_connection(*up), connect_timeout)
 *                 break
 *             except (OSError, TimeoutError):
 *                 mark_down(up)
 *         else:
 *             return client_w.transport.abort()
 *         async def pipe(r, w):
 *             while data := await r.read(65536):
 *                 w.write(data)
 *                 await w.drain()
 *             w.write_eof()                         # half-close
 *         try:
 *             await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))
 *         except OSError:                           # pass a reset on
 *             client_w.transport.abort(); up_w.transport.abort()
 *         up_w.close()
 *     server = await asyncio.start_server(handle, host, port)
 */
#define _POSIX_C_SOURCE 200809L /* getaddrinfo: POSIX, not C11 */
#include "weft.h"
#include "serve_main.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MS 1000000ull /* ns */
#define MAX_UPSTREAMS 16

static struct upstream {
	const char *name;              /* HOST:PORT, as given */
	weft_sockaddr addr;            /* resolved at start-up */
	_Atomic uint64_t down_until;   /* weft_now_ns(): skipped until then */
} g_up[MAX_UPSTREAMS];
static size_t g_nup;
static _Atomic size_t g_next; /* the round robin's position */

static uint64_t g_connect_ns = 1000 * MS, g_down_ns = 2000 * MS, g_grace_ns = 5000 * MS;
static bool g_verbose;
static struct serve_opts g_opts; /* g_opts.idle_ms: --idle-timeout-ms */
static weft_stream_config g_upcfg; /* the upstream streams' */

/* Connect to an upstream for one client: the round robin's next one
 * first, then the others in order; those marked down go only if every one
 * is.  Returns the fd, or the last attempt's error. */
static int connect_upstream(void)
{
	/* The candidates in the order to try them.  Connections run on every
	 * loop's thread: the position and the marks are atomics. */
	weft_sockaddr cand[g_nup]; /* VLA: the stack the idle task keeps
				      touched (one page) holds the streams */
	size_t idx[MAX_UPSTREAMS], n = 0;
	size_t start = atomic_fetch_add_explicit(&g_next, 1, memory_order_relaxed);
	uint64_t now = weft_now_ns();
	for (int all = 0; all < 2 && n == 0; all++)
		for (size_t k = 0; k < g_nup; k++) {
			size_t i = (start + k) % g_nup;
			if (!all && atomic_load_explicit(&g_up[i].down_until,
							 memory_order_relaxed) > now)
				continue; /* down: skip it while others are up */
			cand[n] = g_up[i].addr;
			idx[n++] = i;
		}
	/* One attempt at a time, each within g_connect_ns; all of them
	 * together need no limit of their own. */
	size_t which = 0;
	int fd = weft_tcp_connect_any(cand, n, g_connect_ns, WEFT_FOREVER, &which);
	/* Those tried before the one that answered failed (every one, if
	 * none did; nothing is known if we were cancelled): mark them down. */
	size_t failed = fd >= 0 ? which : fd == -ECANCELED || fd == -ENOMEM ? 0 : n;
	for (size_t k = 0; k < failed; k++) {
		struct upstream *u = &g_up[idx[k]];
		uint64_t was = atomic_exchange(&u->down_until, weft_now_ns() + g_down_ns);
		if (was <= now) /* say it once per outage, not per client */
			fprintf(stderr, "tcp_proxy: upstream %s refused or did not answer:"
				" skipped for %llu ms\n", u->name, (unsigned long long)(g_down_ns / MS));
	}
	return fd;
}

/* One client connection, in its own task (the server closes `client`
 * when this returns). */
static void proxy(weft_stream *client, void *arg)
{
	(void)arg;
	/* The upstream stream in this frame, not on the heap: the idle
	 * client's stack page holds it (docs/io.md, "Memory per
	 * connection"). */
	weft_stream_storage upmem;
	weft_stream *up = NULL;
	int fd = connect_upstream();
	if (fd < 0 || weft_stream_open_in(&upmem, &up, fd, &g_upcfg) < 0) {
		if (fd >= 0)
			close(fd);
		weft_stream_abort(client); /* nobody to talk to: reset the client */
		return;
	}
	weft_stream_copy_config cfg;
	weft_stream_copy_config_init(&cfg);
	if (g_opts.idle_ms)
		cfg.idle_timeout_ns = g_opts.idle_ms * MS;
	weft_stream_copied n;
	/* Both directions at once, in this task (no task per direction: the
	 * receives move the bytes on this loop); half-closes are
	 * passed on; returns once both inputs have ended.  -ESHUTDOWN: the
	 * server is shutting down and stopped reading the client, while what
	 * the upstream still had to send went through. */
	int r = weft_stream_copy_bidirectional(client, up, &cfg, &n);
	if (r < 0 && r != -ESHUTDOWN) {
		/* A reset or another failure on either side, the idle limit,
		 * or the end of the shutdown grace (-ECANCELED): reset both,
		 * so the side still there learns the connection broke. */
		weft_stream_abort(client);
		weft_stream_abort(up);
	}
	if (g_verbose)
		fprintf(stderr, "tcp_proxy: %llu bytes up, %llu down: %s%s\n",
			(unsigned long long)n.a_to_b, (unsigned long long)n.b_to_a,
			r == 0 ? "done" : weft_strerror(r),
			n.failed == up ? " (upstream)" : n.failed ? " (client)" : "");
	weft_stream_close(up);
}

/* --upstream HOST:PORT ("[::1]:80" for an IPv6 literal): resolved now,
 * blocking (the loops do not run yet); its first address is used. */
static void add_upstream(const char *spec)
{
	const char *name = spec, *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1] || g_nup == MAX_UPSTREAMS) {
		fprintf(stderr, "tcp_proxy: bad --upstream %s (HOST:PORT, at most %d)\n", spec,
			MAX_UPSTREAMS);
		exit(2);
	}
	char host[256];
	size_t hl = (size_t)(colon - spec);
	if (spec[0] == '[' && colon[-1] == ']') /* [v6]:port */
		spec++, hl -= 2;
	snprintf(host, sizeof(host), "%.*s", (int)hl, spec);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai;
	int e = getaddrinfo(host, colon + 1, &hints, &ai);
	if (e) {
		fprintf(stderr, "tcp_proxy: %s: %s\n", host, gai_strerror(e));
		exit(2);
	}
	struct upstream *u = &g_up[g_nup++];
	u->name = name;
	memcpy(&u->addr.ss, ai->ai_addr, ai->ai_addrlen);
	u->addr.len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

/* The proxy's own options: how many argv entries option i takes. */
static int option(int argc, char **argv, int i)
{
	if (strcmp(argv[i], "--verbose") == 0) {
		g_verbose = true;
		return 1;
	}
	if (i + 1 >= argc)
		return 0;
	uint64_t ms = strtoull(argv[i + 1], NULL, 10) * MS;
	if (strcmp(argv[i], "--upstream") == 0)
		add_upstream(argv[i + 1]);
	else if (strcmp(argv[i], "--connect-timeout-ms") == 0)
		g_connect_ns = ms;
	else if (strcmp(argv[i], "--down-ms") == 0)
		g_down_ns = ms;
	else if (strcmp(argv[i], "--grace-ms") == 0)
		g_grace_ns = ms;
	else
		return 0;
	return 2;
}

static void tune(weft_server_config *cfg)
{
	/* No per-receive limit on the client: it would cut a download during
	 * which the client sends nothing.  --idle-timeout-ms bounds the whole
	 * connection in the copy instead (own_idle). */
	cfg->idle_timeout_ns = WEFT_FOREVER;
	cfg->grace_ns = g_grace_ns;
	/* The client's stream in the connection task's frame, as the
	 * upstream's is in proxy's: the parked task's one stack page holds
	 * both, where the heap would take 2 x 320 bytes per client. */
	cfg->stream_in_frame = true;
	/* Plain receives unless --multishot: they grow with the traffic (up
	 * to 256 KiB each), while a multishot receive hands over at most its
	 * 64 KiB cap at a time.  Relaying 1 MiB bodies here, plain receives
	 * took 400 us of CPU per MiB at 2089 MiB/s, multishot 1140 us at
	 * 843 MiB/s (docs/benchmarks.md, the proxy section). */
	g_upcfg.multishot = cfg->multishot_recv;
}

int main(int argc, char **argv)
{
	g_opts = (struct serve_opts){
		.name = "tcp_proxy", .handler = proxy, .port = 8080, .extra = option,
		.extra_usage = " --upstream HOST:PORT [--upstream ...] [--connect-timeout-ms MS]"
			       " [--down-ms MS] [--grace-ms MS] [--verbose]",
		.tune = tune, .own_idle = true,
	};
	/* Upstream connections stall at most as long as the server lets a
	 * client stall (weft_server_config's write_timeout_ns, 60 s). */
	weft_stream_config_init(&g_upcfg);
	g_upcfg.write_timeout_ns = 60000 * MS;
	bool any = false;
	for (int i = 1; i < argc; i++)
		any |= strcmp(argv[i], "--upstream") == 0;
	if (!any) {
		fprintf(stderr, "tcp_proxy: at least one --upstream HOST:PORT is needed\n");
		return serve_usage(&g_opts);
	}
	return serve_main(argc, argv, &g_opts);
}
