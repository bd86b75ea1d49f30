/*
 * load_incr — a custom-protocol load generator on weft/load.h, whole:
 * Redis INCR on a few counters, pipelined, closed or open loop, with a
 * per-second line from the interval callback and an HdrHistogram .hlog.
 *
 *   load_incr HOST PORT [CONNS] [SECONDS] [RATE] [FILE.hlog]
 *   load_incr 127.0.0.1 6379 16 5 0 incr.hlog   (RATE 0: closed loop)
 *
 * The protocol is two callbacks: queue n requests, and find the end of one
 * answer (":<n>\r\n", or "-ERR ...\r\n": failed) in the received bytes.
 * The rest (connections on every loop, start barrier, pacing, timeouts,
 * histograms, merging) is the driver's. */
#include <weft.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Per connection: which counter it increments next. */
struct incr_conn {
	unsigned next;
};

static int incr_init(void *arg, unsigned conn, void **state)
{
	struct incr_conn *c = *state = malloc(sizeof(*c));
	return c ? (c->next = conn, 0) : -ENOMEM;
}

static void incr_fini(void *arg, void *state) { free(state); }

static int incr_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	struct incr_conn *c = state;
	for (unsigned i = 0; i < n; i++) {
		char cmd[64];
		int len = snprintf(cmd, sizeof(cmd), "*2\r\n$4\r\nINCR\r\n$9\r\ncounter:%u\r\n",
				   c->next++ % 10);
		if (weft_stream_write(s, cmd, (size_t)len) < 0)
			return -EPIPE;
	}
	return 0;
}

static ssize_t incr_parse(void *arg, void *state, const char *buf, size_t len, size_t *need,
			  unsigned *flags)
{
	const char *nl = memchr(buf, '\n', len);
	if (!nl)
		return len > 256 ? -EBADMSG : 0; /* not all here yet */
	if (buf[0] == '-')
		*flags |= WEFT_LOAD_RESP_FAILED;
	else if (buf[0] != ':')
		return -EBADMSG;
	return nl - buf + 1;
}

static const weft_load_proto incr_proto = {
	.name = "incr", .conn_init = incr_init, .conn_fini = incr_fini,
	.write = incr_write, .parse = incr_parse,
};

struct app {
	const char *host, *hlog_path;
	unsigned port, conns;
	double seconds, rate;
	FILE *hlog;
	uint64_t t0;
	weft_load_result res; /* 35 KiB: not on a task's stack */
};

static void on_interval(void *arg, const weft_load_interval *iv)
{
	struct app *a = arg;
	double secs = (double)(iv->end_ns - iv->start_ns) / 1e9;
	printf("%3u  %8.0f req/s  p50 %6.1f us  p99 %7.1f us  errors %llu\n", iv->index,
	       (double)iv->counts->requests / secs, weft_hist_percentile(iv->hist, 50) / 1e3,
	       weft_hist_percentile(iv->hist, 99) / 1e3,
	       (unsigned long long)weft_load_errors(iv->counts));
	if (!a->hlog)
		return;
	if (iv->index == 0) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		weft_hlog_write_header(a->hlog, tv.tv_sec + tv.tv_usec / 1e6);
		a->t0 = iv->start_ns;
	}
	weft_hlog_write_interval(a->hlog, "incr", (iv->start_ns - a->t0) / 1e9, secs, iv->hist);
}

static void *main_task(void *arg)
{
	struct app *a = arg;
	weft_sockaddr addr;
	if (weft_resolve(a->host, (uint16_t)a->port, SOCK_STREAM, &addr, 1) < 0)
		return "cannot resolve the host";
	weft_load_config cfg;
	weft_load_config_init(&cfg);
	cfg.addr = &addr, cfg.proto = &incr_proto, cfg.conns = a->conns, cfg.pipeline = 4;
	cfg.duration_ns = (uint64_t)(a->seconds * 1e9), cfg.rate = a->rate, cfg.progress = 0;
	cfg.interval_ns = 1000000000ull, cfg.on_interval = on_interval, cfg.interval_arg = a;
	weft_load *l;
	if (weft_load_create(&l, &cfg) < 0)
		return "bad configuration";
	int r = weft_load_run(l, &a->res);
	weft_load_destroy(l);
	if (r < 0)
		return "the run failed";
	if (!a->res.connected) /* nothing was loaded: say why, as wrk does */
		return a->res.connect_error ? strerror(-a->res.connect_error) : "cannot connect";
	const weft_load_counts *c = &a->res.counts;
	printf("%llu requests in %.2f s: %.0f req/s, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, "
	       "errors %llu\n",
	       (unsigned long long)c->requests, a->res.seconds, c->requests / a->res.seconds,
	       weft_hist_percentile(&a->res.hist, 50) / 1e3,
	       weft_hist_percentile(&a->res.hist, 99) / 1e3,
	       weft_hist_percentile(&a->res.hist, 99.9) / 1e3,
	       (unsigned long long)weft_load_errors(c));
	if (a->rate > 0) /* did the client keep up with the schedule? */
		printf("%llu sent, %llu late\n", (unsigned long long)c->sent,
		       (unsigned long long)c->late);
	return weft_load_errors(c) || !c->requests ? "errors, or no answer" : NULL;
}

int main(int argc, char **argv)
{
	static struct app a;
	if (argc < 3) {
		fprintf(stderr, "usage: load_incr HOST PORT [CONNS] [SECONDS] [RATE] [FILE.hlog]\n");
		return 2;
	}
	a.host = argv[1], a.port = (unsigned)atoi(argv[2]);
	a.conns = argc > 3 ? (unsigned)atoi(argv[3]) : 8;
	a.seconds = argc > 4 ? atof(argv[4]) : 3;
	a.rate = argc > 5 ? atof(argv[5]) : 0;
	if (argc > 6 && !(a.hlog = fopen(argv[6], "w")))
		return perror(argv[6]), 2;
	void *err = NULL;
	int r = weft_run(NULL, main_task, &a, &err);
	if (a.hlog)
		fclose(a.hlog);
	if (r < 0 || err) {
		fprintf(stderr, "load_incr: %s\n", r < 0 ? weft_strerror(r) : (char *)err);
		return 1;
	}
	return 0;
}
