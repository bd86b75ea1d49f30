/*
 * weft-load — a load generator on weft's harness API (weft/load.h):
 * HTTP/1.1, TCP echo, Redis, memcached and raw templates.
 *
 *   weft-load -c CONNS -d DURATION [--loops N] [--rate R] [--json] URL
 *   (weft-load --help for every option)
 *
 * The run driver (io/load.c) holds the connections, the pacer and the
 * histograms; this file picks the protocol from the URL (proto_*.h, one
 * small file each), builds its request and prints the results.
 *
 * Closed loop (default): each connection sends, waits for the answer,
 * sends the next; latency is from the send.  Open loop (--rate R): R
 * requests/s in all, each connection on its own schedule; latency is
 * measured from the *intended* send time (wrk2's correction for
 * coordinated omission), and sends that fell behind the schedule are
 * reported (late, dropped with --max-lag), so a saturated client says so.
 */
#include "weft.h"
#include "load_opts.h"
#include "proto_http.h"
#include "proto_kv.h"
#include "proto_raw.h"
#include "load_cluster.h"
#include "locust/run.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct app {
	struct load_opts o;
	const weft_load_proto *proto;
	void *proto_arg;
	struct proto_http http;
	struct proto_kv kv;
	struct proto_raw raw;
	FILE *hlog;
	uint64_t t_base; /* the first interval's start */
	weft_load_result *res;
};

/* ---- the protocol from the URL ---- */

static int build_http(struct app *a)
{
	struct load_opts *o = &a->o;
	char one[8192];
	bool host_given = false;
	for (unsigned i = 0; i < o->nheaders; i++)
		host_given |= strncasecmp(o->headers[i], "host:", 5) == 0;
	int k = snprintf(one, sizeof(one), "GET %s HTTP/1.1\r\n", o->path);
	if (!host_given)
		k += snprintf(one + k, sizeof(one) - (size_t)k, "Host: %s:%u\r\n", o->host, o->port);
	for (unsigned i = 0; i < o->nheaders && k > 0 && (size_t)k < sizeof(one); i++)
		k += snprintf(one + k, sizeof(one) - (size_t)k, "%s\r\n", o->headers[i]);
	if (k < 0 || (size_t)k + 3 > sizeof(one))
		return -E2BIG;
	k += snprintf(one + k, sizeof(one) - (size_t)k, "\r\n");
	if (!(a->http.req = strdup(one)))
		return -ENOMEM;
	a->http.len = (size_t)k;
	a->proto = &proto_http;
	a->proto_arg = &a->http;
	return 0;
}

static int build_proto(struct app *a)
{
	struct load_opts *o = &a->o;
	switch (o->mode) {
	case LOAD_HTTP:
		return build_http(a);
	case LOAD_REDIS:
	case LOAD_MEMCACHE:
		a->kv = (struct proto_kv){ .cmd = o->cmd == LOAD_CMD_PING  ? KV_PING
						  : o->cmd == LOAD_CMD_SET ? KV_SET
									   : KV_GET,
					   .keyspace = o->keyspace, .vmin = o->size,
					   .vmax = o->size_max, .seed = 0x5eed };
		if (!(a->kv.value = malloc(o->size_max)))
			return -ENOMEM;
		memset(a->kv.value, 'x', o->size_max);
		a->proto = o->mode == LOAD_REDIS ? &proto_redis : &proto_memcache;
		a->proto_arg = &a->kv;
		return 0;
	case LOAD_TCP: /* echo: pipeline copies of a --size message, back whole */
		a->raw.len = a->raw.rlen = o->size;
		a->raw.copies = o->pipeline;
		if (!(a->raw.req = malloc(o->size * o->pipeline)))
			return -ENOMEM;
		for (size_t i = 0; i < o->size * o->pipeline; i++)
			a->raw.req[i] = (char)('a' + i % 26);
		break;
	case LOAD_RAW:
		a->raw.copies = o->pipeline;
		if (!(a->raw.req = malloc(o->send_len * o->pipeline)))
			return -ENOMEM;
		for (unsigned i = 0; i < o->pipeline; i++)
			memcpy(a->raw.req + i * o->send_len, o->send, o->send_len);
		a->raw.len = o->send_len;
		a->raw.delim = o->delim;
		a->raw.dlen = o->delim_len;
		a->raw.rlen = o->expect_len;
		break;
	}
	a->proto = &proto_raw;
	a->proto_arg = &a->raw;
	return 0;
}

/* ---- reporting ---- */

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void report_json(struct app *a, const weft_load_result *r)
{
	const weft_load_counts *c = &r->counts;
	double secs = r->seconds > 0 ? r->seconds : 1e-9;
	char lat[512];
	weft_hist_json(&r->hist, 1000, lat, sizeof(lat));
	printf("{\"url\":\"%s\",\"protocol\":\"%s\",\"connections\":%u,\"loops\":%u,"
	       "\"mode\":\"%s\",\"rate\":%.3f,\"pipeline\":%u,\"duration_s\":%.6f,"
	       "\"requests\":%llu,\"rps\":%.3f,\"bytes\":%llu,\"errors\":%llu,\"timeouts\":%llu,"
	       "\"connect_errors\":%llu,\"read_errors\":%llu,\"parse_errors\":%llu,"
	       "\"non2xx\":%llu,\"failed\":%llu,\"sent\":%llu,\"late\":%llu,\"dropped\":%llu,"
	       "\"lag_max_us\":%.3f,\"lag_mean_us\":%.3f,\"latency_us\":%s}\n",
	       a->o.url, a->proto->name, a->o.conns, r->loops, a->o.rate > 0 ? "open" : "closed",
	       a->o.rate, a->o.pipeline, r->seconds, (unsigned long long)c->requests,
	       c->requests / secs, (unsigned long long)c->bytes_in,
	       (unsigned long long)weft_load_errors(c), (unsigned long long)c->timeouts,
	       (unsigned long long)c->connect_errors, (unsigned long long)c->read_errors,
	       (unsigned long long)c->parse_errors,
	       (unsigned long long)(a->o.mode == LOAD_HTTP ? c->failed : 0),
	       (unsigned long long)c->failed, (unsigned long long)c->sent,
	       (unsigned long long)c->late, (unsigned long long)c->dropped, us(c->lag_max_ns),
	       c->lag_mean_ns / 1000.0, lat);
}

static void report_text(struct app *a, const weft_load_result *r)
{
	const weft_hist *h = &r->hist;
	const weft_load_counts *c = &r->counts;
	double secs = r->seconds > 0 ? r->seconds : 1e-9;
	printf("  %u loops and %u connections, %s loop%s\n", r->loops, a->o.conns,
	       a->o.rate > 0 ? "open" : "closed", a->o.pipeline > 1 ? ", pipelined" : "");
	printf("  Latency  p50 %.1fus  p90 %.1fus  p99 %.1fus  p99.9 %.1fus  max %.1fus\n",
	       us(weft_hist_percentile(h, 50)), us(weft_hist_percentile(h, 90)),
	       us(weft_hist_percentile(h, 99)), us(weft_hist_percentile(h, 99.9)),
	       us(weft_hist_max(h)));
	if (a->o.latency) {
		static const double ps[] = { 50, 75, 90, 99, 99.9, 99.99, 100 };
		printf("  Latency distribution (corrected for coordinated omission: %s)\n",
		       a->o.rate > 0 ? "yes" : "closed loop");
		for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
			printf("  %7.3f%%  %10.1fus\n", ps[i], us(weft_hist_percentile(h, ps[i])));
	}
	if (a->o.rate > 0) {
		printf("  Schedule: %llu sends, %llu late (> 1ms), %llu dropped, lag mean %.1fus "
		       "max %.1fus\n",
		       (unsigned long long)c->sent, (unsigned long long)c->late,
		       (unsigned long long)c->dropped, c->lag_mean_ns / 1000.0, us(c->lag_max_ns));
		if (c->dropped || c->late * 100 > c->sent)
			printf("  WARNING: the client could not keep up with --rate %.0f: the "
			       "latencies include its own delay\n",
			       a->o.rate);
	}
	printf("  %llu requests in %.2fs, %.1f MB read\n", (unsigned long long)c->requests,
	       r->seconds, (double)c->bytes_in / 1e6);
	if (weft_load_errors(c))
		printf("  Errors: connect %llu, read %llu, timeout %llu, parse %llu, %s %llu\n",
		       (unsigned long long)c->connect_errors, (unsigned long long)c->read_errors,
		       (unsigned long long)c->timeouts, (unsigned long long)c->parse_errors,
		       a->o.mode == LOAD_HTTP ? "non-2xx" : "failed", (unsigned long long)c->failed);
	printf("Requests/sec: %.2f\n", c->requests / secs);
}

/* No connection ever connected: nothing was loaded, and the run failed
 * (exit 1, as wrk's "unable to connect"), with a line saying why. */
static bool connected_or_say(struct app *a, const weft_load_result *r)
{
	if (r->connected)
		return true;
	bool v6 = strchr(a->o.host, ':') != NULL;
	fprintf(stderr, "weft-load: cannot connect to %s%s%s:%u: %s (%u connections, none connected)\n",
		v6 ? "[" : "", a->o.host, v6 ? "]" : "", a->o.port,
		r->connect_error ? strerror(-r->connect_error) : "no connection was made",
		a->o.conns);
	return false;
}

/* --hlog: one line per interval, times relative to the first one's start
 * (the header's StartTime and BaseTime). */
static void on_interval(void *arg, const weft_load_interval *iv)
{
	struct app *a = arg;
	if (iv->index == 0) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		double ago = (double)(weft_now_ns() - iv->start_ns) / 1e9;
		weft_hlog_write_header(a->hlog, (double)tv.tv_sec + tv.tv_usec / 1e6 - ago);
		a->t_base = iv->start_ns;
	}
	weft_hlog_write_interval(a->hlog, NULL, (double)(iv->start_ns - a->t_base) / 1e9,
				 (double)(iv->end_ns - iv->start_ns) / 1e9, iv->hist);
}

/* --locust-master: the master's users and duration; the report covers
 * everything the worker ran. */
static void *locust_main(struct app *a, const weft_load_config *cfg)
{
	struct load_opts *o = &a->o;
	char method[16] = "GET";
	if (o->mode != LOAD_HTTP) {
		const char *pn = o->mode == LOAD_TCP ? "echo" : a->proto->name;
		size_t k = 0;
		for (; pn[k] && k < sizeof(method) - 1; k++)
			method[k] = (char)toupper((unsigned char)pn[k]);
		method[k] = '\0';
	}
	struct locust_config lc = {
		.master = o->locust_master,
		.name = o->mode == LOAD_HTTP ? o->path : o->url,
		.method = method,
		.failed_what = o->mode == LOAD_HTTP ? "HTTP status not 2xx" : "error answer",
		.log = stderr,
	};
	unsigned peak = 0;
	int rc = locust_run(cfg, o->rate, &lc, a->res, &peak);
	if (rc < 0) {
		fprintf(stderr, "weft-load: as a Locust worker of %s: %s\n", o->locust_master,
			weft_strerror(rc));
		return (void *)1;
	}
	o->conns = peak;
	if (o->json)
		report_json(a, a->res);
	else
		report_text(a, a->res);
	return NULL;
}

static void *main_task(void *arg)
{
	struct app *a = arg;
	struct load_opts *o = &a->o;
	weft_sockaddr addr;
	int n = weft_resolve(o->host, o->port, SOCK_STREAM, &addr, 1);
	if (n < 0) {
		fprintf(stderr, "weft-load: cannot resolve %s: %s\n", o->host, weft_strerror(n));
		return (void *)1;
	}
	weft_load_config cfg;
	weft_load_config_init(&cfg);
	cfg.addr = &addr;
	cfg.proto = a->proto;
	cfg.proto_arg = a->proto_arg;
	cfg.conns = o->conns;
	cfg.pipeline = o->pipeline;
	cfg.duration_ns = (uint64_t)(o->duration_s * 1e9);
	cfg.warmup_ns = (uint64_t)(o->warmup_s * 1e9);
	cfg.requests = o->requests;
	cfg.rate = o->rate;
	cfg.pacer_mode = o->poisson ? WEFT_PACER_POISSON : WEFT_PACER_CONSTANT;
	if (o->max_lag_s > 0)
		cfg.max_lag_ns = (uint64_t)(o->max_lag_s * 1e9);
	cfg.timeout_ns = o->timeout_ms * 1000000ull;
	cfg.connect_timeout_ns = cfg.timeout_ns;
	cfg.progress = o->progress;
	if (o->locust_master)
		return locust_main(a, &cfg);
	if (a->hlog) {
		cfg.interval_ns = 1000000000ull;
		cfg.on_interval = on_interval;
		cfg.interval_arg = a;
	}
	weft_load *l;
	if (weft_load_create(&l, &cfg) < 0) {
		fprintf(stderr, "weft-load: bad configuration\n");
		return (void *)1;
	}
	if (!o->json && o->requests)
		printf("Running %llu requests @ %s\n", (unsigned long long)o->requests, o->url);
	else if (!o->json)
		printf("Running %.1fs test @ %s\n", o->duration_s, o->url);
	fflush(stdout);
	int rc = weft_load_run(l, a->res);
	weft_load_destroy(l);
	if (rc < 0) {
		fprintf(stderr, "weft-load: %s\n", weft_strerror(rc));
		return (void *)1;
	}
	if (o->json)
		report_json(a, a->res);
	else
		report_text(a, a->res);
	return connected_or_say(a, a->res) ? NULL : (void *)1;
}

int main(int argc, char **argv)
{
	struct app *a = calloc(1, sizeof(*a));
	weft_load_result *res = malloc(sizeof(*res)); /* 35 KiB: not on a task stack */
	int status = 1;
	if (!a || !res)
		goto out;
	a->res = res;
	char err[256];
	if (argc > 1 && strcmp(argv[1], "--merge-hlog") == 0) {
		free(a);
		free(res);
		if (argc < 4) {
			fprintf(stderr, "weft-load: --merge-hlog OUT IN...: an output and at least "
					"one input\n");
			return 2;
		}
		if (load_hlog_merge(argv[2], argv + 3, argc - 3, stdout, err, sizeof(err)) < 0) {
			fprintf(stderr, "weft-load: %s\n", err);
			return 1;
		}
		return 0;
	}
	int p = load_opts_parse(argc, argv, &a->o, err, sizeof(err));
	if (p == 0 && a->o.seg_n)
		p = load_segment_apply(&a->o, a->o.seg_i, a->o.seg_n, err, sizeof(err));
	if (p == 1) {
		fputs(load_usage(), stdout);
		status = 0;
		goto out;
	}
	status = 2;
	if (p < 0) {
		fprintf(stderr, "weft-load: %s\n%s", err, load_usage());
		goto out;
	}
	if (build_proto(a) < 0) {
		fprintf(stderr, "weft-load: request too large\n");
		goto out;
	}
	if (a->o.hlog && !(a->hlog = fopen(a->o.hlog, "w"))) {
		fprintf(stderr, "weft-load: cannot write %s: %s\n", a->o.hlog, strerror(errno));
		goto out;
	}
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = a->o.loops;
	cfg.coalesce_us = a->o.coalesce_us;
	void *r = NULL;
	int rc = weft_run(&cfg, main_task, a, &r);
	if (a->hlog && fclose(a->hlog) != 0)
		rc = -EIO;
	a->hlog = NULL;
	if (rc < 0)
		fprintf(stderr, "weft-load: %s\n", weft_strerror(rc));
	status = rc < 0 || r ? 1 : 0;
out:
	if (a) {
		if (a->hlog)
			fclose(a->hlog);
		free(a->http.req);
		free(a->kv.value);
		free(a->raw.req);
		load_opts_free(&a->o);
	}
	free(a);
	free(res);
	return status;
}
