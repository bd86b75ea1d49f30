/*
 * serve_main.h — the command line and main() that echo_server and
 * http_server share:
 *
 *   NAME --port P [--loops N] [--host ADDR] [--shared-listener]
 *        [--[no-]multishot] [--idle-timeout-ms MS] [--stats-ms MS]
 *        [--coalesce-us US] [the server's own]
 *
 * It starts a runtime with N loops (default: one per CPU), starts a
 * weft_server whose SIGINT/SIGTERM start a graceful shutdown, prints
 * "listening on HOST:PORT (N loops)" (port 0 picks a free one), waits for
 * the shutdown and exits 0.
 *
 * --coalesce-us US: weft_runtime_config.coalesce_us, wake coalescing (a
 * loop with nothing to run sleeps until 32 completions are ready or US
 * microseconds have passed): less CPU per request, up to US more latency.
 *
 * --stats-ms MS: every MS milliseconds one line on stderr, for an outside
 * sampler (bench/soak.sh):
 *
 *   stats t_ms=T backend=B tasks_live=N tasks_spawned=N stacks=N conns=N
 *         accepted=N rejected=N accept_errors=N
 *
 * (one line; t_ms since the server started; the backend, live tasks, tasks
 * spawned and live task stacks from weft_runtime_stats_get, the rest from
 * weft_server_stats_get; the sampling task itself is one of the live
 * tasks).  The line is one write(2), so a reader never sees half of one.
 */
#ifndef SERVE_MAIN_H
#define SERVE_MAIN_H

#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct serve_opts {
	const char *name;
	weft_conn_fn handler;
	unsigned port;
	/* the server's own options: how many argv entries option i takes
	 * (0: not one of its own), and their usage text */
	int (*extra)(int argc, char **argv, int i);
	const char *extra_usage;
	void (*tune)(weft_server_config *cfg); /* last say on the config */
	/* a task of the server's own (kv_server's expiry sweep): spawned
	 * once the server listens, cancelled and joined once it has shut
	 * down, before the runtime stops */
	weft_fn background;
	/* --idle-timeout-ms is the example's own (read o->idle_ms), not the
	 * server's per-receive idle_timeout_ns: tcp_proxy bounds a whole
	 * connection with it instead */
	bool own_idle;
	/* filled from the command line */
	const char *host;
	unsigned loops, idle_ms, stats_ms, coalesce_us;
	bool shared;
	int multishot; /* -1: the server's default */
	/* set while serving */
	weft_server *srv;
	uint64_t t0;
};

/* --stats-ms: the stats line every o->stats_ms, on a fixed schedule, until
 * cancelled. */
static void *serve_stats_task(void *arg)
{
	struct serve_opts *o = arg;
	weft_runtime_stats *rs = malloc(sizeof(*rs)); /* 9 KiB: not on the stack */
	if (!rs)
		return NULL;
	uint64_t period = o->stats_ms * 1000000ull, next = weft_now_ns();
	for (;;) {
		next += period;
		uint64_t now = weft_now_ns();
		if (next > now && weft_sleep(next - now) < 0)
			break;
		weft_server_stats ss;
		if (weft_runtime_stats_get(weft_runtime_current(), rs) < 0 ||
		    weft_server_stats_get(o->srv, &ss) < 0)
			break;
		char line[256];
		int n = snprintf(line, sizeof(line),
				 "stats t_ms=%llu backend=%s tasks_live=%llu tasks_spawned=%llu"
				 " stacks=%llu conns=%llu accepted=%llu rejected=%llu"
				 " accept_errors=%llu\n",
				 (unsigned long long)((weft_now_ns() - o->t0) / 1000000),
				 weft_backend_name(rs->backend),
				 (unsigned long long)rs->tasks_live,
				 (unsigned long long)rs->tasks_spawned,
				 (unsigned long long)(rs->stacks_guarded + rs->stacks_slab),
				 (unsigned long long)ss.active, (unsigned long long)ss.accepted,
				 (unsigned long long)ss.rejected,
				 (unsigned long long)ss.accept_errors);
		if (n > 0 && write(2, line, (size_t)n) < 0)
			break;
	}
	free(rs);
	return NULL;
}

static void *serve_task(void *arg)
{
	struct serve_opts *o = arg;
	weft_sockaddr addr;
	if (weft_addr_ip(&addr, o->host, (uint16_t)o->port) < 0) {
		fprintf(stderr, "%s: bad address %s\n", o->name, o->host);
		return (void *)1;
	}
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	cfg.handle_signals = true;
	cfg.shared_listener = o->shared;
	if (o->multishot >= 0)
		cfg.multishot_recv = o->multishot;
	if (o->tune)
		o->tune(&cfg);
	if (o->idle_ms && !o->own_idle) /* the command line wins over the example's default */
		cfg.idle_timeout_ns = o->idle_ms * 1000000ull;
	weft_server *srv;
	int r = weft_server_start(&srv, NULL, &addr, &cfg, o->handler, NULL);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", o->name, weft_strerror(r));
		return (void *)1;
	}
	printf("listening on %s:%u (%u loops)\n", o->host ? o->host : "*",
	       weft_server_port(srv), weft_loop_count());
	fflush(stdout);
	weft_task *stats = NULL, *bg = NULL;
	o->srv = srv;
	if (o->stats_ms && weft_task_spawn(&stats, serve_stats_task, o) < 0) {
		fprintf(stderr, "%s: cannot start the stats task\n", o->name);
		stats = NULL;
	}
	bool failed = false;
	if (o->background && weft_task_spawn(&bg, o->background, o) < 0) {
		fprintf(stderr, "%s: cannot start its background task\n", o->name);
		bg = NULL;
		failed = true;
		weft_server_shutdown(srv, 0);
	}
	weft_server_wait(srv);
	weft_task *mine[] = { stats, bg };
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		if (mine[i]) {
			weft_task_cancel(mine[i]);
			weft_task_join(mine[i], NULL);
			weft_task_release(mine[i]);
		}
	weft_server_stats st;
	weft_server_stats_get(srv, &st);
	printf("shut down after %llu connections\n", (unsigned long long)st.accepted);
	weft_server_destroy(srv);
	return failed ? (void *)1 : NULL;
}

static int serve_usage(const struct serve_opts *o)
{
	fprintf(stderr,
		"usage: %s --port P [--loops N] [--host ADDR] [--shared-listener]"
		" [--[no-]multishot] [--idle-timeout-ms MS] [--stats-ms MS] [--coalesce-us US]%s\n",
		o->name, o->extra_usage ? o->extra_usage : "");
	return 2;
}

static int serve_main(int argc, char **argv, struct serve_opts *o)
{
	o->multishot = -1;
	for (int i = 1; i < argc; i++) {
		bool arg = i + 1 < argc;
		int k;
		if (arg && strcmp(argv[i], "--port") == 0)
			o->port = (unsigned)atoi(argv[++i]);
		else if (arg && strcmp(argv[i], "--loops") == 0)
			o->loops = (unsigned)atoi(argv[++i]);
		else if (arg && strcmp(argv[i], "--host") == 0)
			o->host = argv[++i];
		else if (arg && strcmp(argv[i], "--idle-timeout-ms") == 0)
			o->idle_ms = (unsigned)atoi(argv[++i]);
		else if (arg && strcmp(argv[i], "--stats-ms") == 0)
			o->stats_ms = (unsigned)atoi(argv[++i]);
		else if (arg && strcmp(argv[i], "--coalesce-us") == 0)
			o->coalesce_us = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--shared-listener") == 0)
			o->shared = true;
		else if (strcmp(argv[i], "--multishot") == 0 || strcmp(argv[i], "--no-multishot") == 0)
			o->multishot = argv[i][2] == 'm';
		else if (o->extra && (k = o->extra(argc, argv, i)) > 0)
			i += k - 1;
		else
			return serve_usage(o);
	}
	if (o->port > 65535) {
		fprintf(stderr, "%s: port out of range\n", o->name);
		return 2;
	}
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = o->loops;
	cfg.coalesce_us = o->coalesce_us;
	o->t0 = weft_now_ns();
	void *res = NULL;
	int r = weft_run(&cfg, serve_task, o, &res);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", o->name, weft_strerror(r));
		return 1;
	}
	return res ? 1 : 0;
}

#endif
