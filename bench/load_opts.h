/*
 * load_opts.h: weft-load's command line, header-only.
 *
 *   struct load_opts o;
 *   char err[256];
 *   int r = load_opts_parse(argc, argv, &o, err, sizeof(err));
 *   r == 1: -h/--help, print load_usage();  r < 0: print err, exit 2.
 *
 * The options a wrk (and wrk2) user already knows, plus weft's own:
 *   -c/--connections, -d/--duration, -t/--threads (= --loops), -R/--rate,
 *   -H/--header, -L/--latency, --timeout; -n/--requests, --pipeline,
 *   --size, --warmup, --json, --progress/--no-progress.
 * Short options take their value attached or as the next argument (-c100,
 * -c 100); long ones as the next argument or after '=' (--rate=5k).  "--"
 * ends the options.  The URL may come anywhere; exactly one is required.
 *
 * Strict: every number is checked whole (no trailing text, no sign, no
 * exponent, no inf/nan) and against its range; an unknown option, a missing
 * value, a second URL or an option that does not apply to the URL's scheme
 * (-H with tcp://, --size with http://) is an error with a one-line message
 * naming it.  Numbers:
 *   counts (-c, -n):   123, 10k, 2M, 1.5G (1000-based, must come out whole)
 *   --rate:            a positive decimal, same suffixes: 50000, 50k, 2.5k
 *   durations:         10 (seconds), 1.5s, 500ms, 250us, 2m, 1h
 *   --timeout:         1500 (milliseconds), or a duration with a unit: 2s
 *   --size:            64, 4k, 1M (1024-based: bytes)
 * -n without -d runs until the count is reached, bounded by
 * LOAD_MAX_DURATION_S (duration_given tells the two apart); with both, the
 * run stops at whichever comes first.  --pipeline with --rate is accepted:
 * P bounds the requests in flight per connection, the schedule stays the
 * rate's.  Messages quote at most 80 bytes of a value, control characters
 * shown as '?'.  On an error *o is partly filled: do not use it.
 *
 * Threading: none; the parsed struct points into argv (headers), so argv
 * must outlive it.
 */
#ifndef WEFT_BENCH_LOAD_OPTS_H
#define WEFT_BENCH_LOAD_OPTS_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#define LOAD_MAX_CONNS 1000000u
#define LOAD_MAX_DURATION_S (24.0 * 3600) /* -d and --warmup */
#define LOAD_MAX_LOOPS 1024u
#define LOAD_MAX_PIPELINE 1024u
#define LOAD_MAX_SIZE (16u << 20)
#define LOAD_MAX_RATE 1e9           /* requests/s in total */
#define LOAD_MAX_TIMEOUT_MS 3600000u /* 1 h */
#define LOAD_MAX_HEADERS 32

enum load_mode { LOAD_HTTP, LOAD_TCP, LOAD_REDIS, LOAD_MEMCACHE, LOAD_RAW };
enum load_cmd { LOAD_CMD_DEFAULT, LOAD_CMD_PING, LOAD_CMD_GET, LOAD_CMD_SET };
#define LOAD_MAX_TEMPLATE 65536u /* --send and --expect-delim, after escapes */

struct load_opts {
	unsigned conns;       /* -c N (default 10; 1..1000000) */
	double duration_s;    /* -d DURATION (default 10 s; > 0, <= 24 h) */
	uint64_t requests;    /* -n COUNT: stop after this many (0 = no limit) */
	unsigned loops;       /* --loops N (0 = one per CPU; <= 1024) */
	double rate;          /* --rate R requests/s in total, open loop; 0 = closed loop */
	unsigned pipeline;    /* --pipeline P requests in flight per connection (1..1024) */
	size_t size;          /* --size BYTES message size for tcp:// echo (default 64);
				 redis:// and memcache:// SET values (default 3) */
	size_t size_max;      /* --size MIN-MAX: values of random sizes (else == size) */
	unsigned timeout_ms;  /* --timeout: unanswered this long = timeout error, reconnect */
	double warmup_s;      /* --warmup DURATION not measured (default 0) */
	bool json;            /* --json: one JSON object on stdout */
	int progress;         /* --progress / --no-progress; -1 = auto (stderr is a tty) */
	bool latency;         /* --latency: print the percentile table */
	enum load_mode mode;  /* from the URL */
	char host[256];       /* host name or IP literal, brackets removed for IPv6 */
	uint16_t port;        /* default 80 for http:// */
	char path[2048];      /* http: path+query, default "/" */
	char url[2304];       /* the URL as given */
	const char *headers[LOAD_MAX_HEADERS];
	unsigned nheaders;    /* -H "Name: value", repeatable, pointers into argv */
	bool duration_given;  /* -d was given (else 10 s, or the cap with -n) */
	enum load_cmd cmd;    /* --command: redis PING (default), GET, SET;
				 memcache get (default), set */
	uint64_t keyspace;    /* --keyspace N: random keys key:0..N-1 (100000) */
	bool poisson;         /* --poisson: open-loop gaps exponential */
	double max_lag_s;     /* --max-lag T: drop sends later than this (0: never) */
	const char *hlog;     /* --hlog FILE: HdrHistogram interval log, 1 s intervals */
	const char *locust_master; /* --locust-master HOST:PORT: a Locust worker (argv) */
	unsigned seg_i, seg_n;    /* --segment i/n (0/0: the whole load) */
	unsigned coalesce_us;     /* --coalesce T: weft_runtime_config.coalesce_us (0: off) */
	bool conns_given;         /* -c was given */
	char *send;           /* raw://: --send bytes, escapes decoded (malloc'd) */
	size_t send_len;
	char *delim;          /* raw://: --expect-delim bytes (malloc'd), or */
	size_t delim_len;
	size_t expect_len;    /* raw://: --expect-len bytes */
};

/* Free what the parse allocated (the raw templates).  Safe twice. */
static inline void load_opts_free(struct load_opts *o)
{
	free(o->send);
	free(o->delim);
	o->send = o->delim = NULL;
}

static inline void load_opts_defaults(struct load_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->keyspace = 100000;
	o->conns = 10;
	o->duration_s = 10;
	o->pipeline = 1;
	o->size = 64;
	o->timeout_ms = 2000;
	o->progress = -1;
	o->mode = LOAD_HTTP;
	o->port = 80;
	strcpy(o->path, "/");
}

static inline const char *load_usage(void)
{
	return "Usage: weft-load <options> <url>\n"
	       "  url: http://host[:port][/path[?query]]  HTTP/1.1 GET, keep-alive\n"
	       "       tcp://host:port                   echo: send --size bytes, await them back\n"
	       "       redis://host:port                 RESP: --command ping|get|set\n"
	       "       memcache://host:port              memcached text: --command get|set\n"
	       "       raw://host:port                   --send bytes, a response ends at\n"
	       "                                         --expect-delim bytes or --expect-len N\n"
	       "  Options:\n"
	       "    -c, --connections <N>  connections to keep open (default 10)\n"
	       "    -d, --duration    <T>  run time: 10s, 500ms, 2m, 1h (default 10s)\n"
	       "    -n, --requests    <N>  stop after N requests: 10k, 2M (default, or 0: no limit);\n"
	       "                           with -d, the run stops at whichever comes first\n"
	       "    -t, --loops       <N>  event loops (threads), 0 = one per CPU (default 0)\n"
	       "        --coalesce    <T>  a loop with nothing to run sleeps until 32 answers\n"
	       "                           are in or T has passed: less CPU per request, up\n"
	       "                           to T more measured latency: 50us (default 0: off)\n"
	       "    -R, --rate        <R>  open loop: R requests/s in total, latency measured\n"
	       "                           from the intended send time (default: closed loop)\n"
	       "        --pipeline    <P>  requests in flight per connection (default 1)\n"
	       "        --size        <B>  tcp:// message size in bytes: 64, 4k, 1M (default 64);\n"
	       "                           redis/memcache SET value size, or MIN-MAX (default 3)\n"
	       "        --command     <C>  redis: ping, get, set (ping); memcache: get, set (get)\n"
	       "        --keyspace    <N>  redis/memcache: random keys of N (default 100k)\n"
	       "        --send        <S>  raw: the request, with \\r \\n \\t \\\\ \\xHH escapes\n"
	       "        --expect-delim <S> raw: a response ends with these bytes (escapes)\n"
	       "        --expect-len  <B>  raw: a response is this many bytes\n"
	       "        --poisson          open loop: exponential gaps (default: constant)\n"
	       "        --max-lag     <T>  open loop: drop sends later than this (default never)\n"
	       "        --hlog     <FILE>  write an HdrHistogram interval log (.hlog, 1 s)\n"
	       "        --segment     <i/n> run part i of n of the connections, rate and -n\n"
	       "                           (the n parts sum exactly)\n"
	       "        --locust-master <HOST:PORT>  run as a Locust worker: the master gives\n"
	       "                           the users (one connection each) and the duration;\n"
	       "                           --rate is then per user\n"
	       "        --merge-hlog <OUT> <IN>...  (alone) merge .hlog files into OUT\n"
	       "    -H, --header      <H>  add a header to each request: \"Name: value\"\n"
	       "        --timeout     <T>  a request unanswered this long is a timeout error and\n"
	       "                           its connection is reopened: 2000 (ms), 2s (default 2s)\n"
	       "        --warmup      <T>  run this long first, not measured (default 0)\n"
	       "    -L, --latency          print the latency percentile table\n"
	       "        --json             one JSON object on stdout instead of the report\n"
	       "        --progress         live progress line on stderr (default: if a tty)\n"
	       "        --no-progress      no progress line\n"
	       "    -h, --help             this text\n"
	       "  Counts take k, M, G (x1000); sizes k, M (x1024); durations us, ms, s, m, h.\n";
}

/* ------------------------------------------------------------------ */
/* Internals.                                                          */

static inline int load__fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline int load__fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		for (char *c = err; *c; c++) /* one line, whatever the input held */
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
	}
	return -EINVAL;
}

static inline bool load__digit(char c)
{
	return c >= '0' && c <= '9';
}

/* n = n * 10 + digit, or -1 on overflow. */
static inline int load__push_digit(uint64_t *n, char c)
{
	uint64_t dg = (uint64_t)(c - '0');
	if (*n > (UINT64_MAX - dg) / 10)
		return -1;
	*n = *n * 10 + dg;
	return 0;
}

/*
 * A plain decimal "123" or "1.25" (no sign, no exponent) as an exact
 * fraction: *num / *den with den a power of ten.  End in *end.  0 or -1.
 */
static inline int load__decimal(const char *s, uint64_t *num, uint64_t *den, const char **end)
{
	uint64_t n = 0, d = 1;
	bool any = false;
	while (load__digit(*s)) {
		if (load__push_digit(&n, *s++) < 0)
			return -1;
		any = true;
	}
	if (*s == '.') {
		s++;
		if (!load__digit(*s))
			return -1;
		while (load__digit(*s)) {
			if (d > UINT64_MAX / 10 || load__push_digit(&n, *s++) < 0)
				return -1;
			d *= 10;
			any = true;
		}
	}
	if (!any)
		return -1;
	*num = n;
	*den = d;
	*end = s;
	return 0;
}

/* A whole count with an optional suffix: k/K, m/M, g/G (x1000, or x1024 when
 * binary).  0 or -1 (not a whole number, overflow, trailing text). */
static inline int load__count(const char *s, bool binary, uint64_t *out)
{
	uint64_t num, den, mult = 1;
	const char *e;
	if (load__decimal(s, &num, &den, &e) < 0)
		return -1;
	uint64_t k = binary ? 1024 : 1000;
	switch (*e) {
	case 'k': case 'K': mult = k; e++; break;
	case 'm': case 'M': mult = k * k; e++; break;
	case 'g': case 'G': mult = k * k * k; e++; break;
	default: break;
	}
	if (*e)
		return -1;
	if (num > UINT64_MAX / mult)
		return -1;
	num *= mult;
	if (num % den)
		return -1;
	*out = num / den;
	return 0;
}

/* A duration in seconds: a decimal with an optional unit us, ms, s, m, h;
 * a bare number is in `bare` seconds.  0 or -1. */
static inline int load__duration(const char *s, double bare, double *out)
{
	uint64_t num, den;
	const char *e;
	if (load__decimal(s, &num, &den, &e) < 0)
		return -1;
	double unit;
	if (*e == '\0')
		unit = bare;
	else if (strcmp(e, "us") == 0)
		unit = 1e-6;
	else if (strcmp(e, "ms") == 0)
		unit = 1e-3;
	else if (strcmp(e, "s") == 0)
		unit = 1;
	else if (strcmp(e, "m") == 0 || strcmp(e, "min") == 0)
		unit = 60;
	else if (strcmp(e, "h") == 0)
		unit = 3600;
	else
		return -1;
	*out = (double)num / (double)den * unit;
	return 0;
}

static inline bool load__tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "Name: value": a token, a colon, a value without CR, LF or NUL. */
static inline bool load__header_ok(const char *h)
{
	const char *p = h;
	while (load__tchar((unsigned char)*p))
		p++;
	if (p == h || *p != ':')
		return false;
	for (p++; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

static inline bool load__host_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') || c == '-' ||
	       c == '.' || c == '_';
}

/* http://host[:port][/path][?query][#frag] or tcp://host:port[/]. */
static inline int load__url(const char *url, struct load_opts *o, char *err, size_t errlen)
{
	size_t ulen = strlen(url);
	if (ulen >= sizeof(o->url))
		return load__fail(err, errlen, "URL too long (%zu bytes, at most %zu)", ulen,
				  sizeof(o->url) - 1);
	memcpy(o->url, url, ulen + 1);
	char url_s[84]; /* the URL as messages show it: at most 80 bytes */
	if (ulen > 80)
		snprintf(url_s, sizeof(url_s), "%.77s...", url);
	else
		memcpy(url_s, url, ulen + 1);

	const char *sep = strstr(url, "://");
	if (!sep)
		return load__fail(err, errlen,
				  "URL '%s' has no scheme (http://host[:port]/path or tcp://host:port)",
				  url_s);
	size_t slen = (size_t)(sep - url);
	if (slen == 4 && strncasecmp(url, "http", 4) == 0) {
		o->mode = LOAD_HTTP;
	} else if (slen == 3 && strncasecmp(url, "tcp", 3) == 0) {
		o->mode = LOAD_TCP;
	} else if (slen == 5 && strncasecmp(url, "redis", 5) == 0) {
		o->mode = LOAD_REDIS;
	} else if ((slen == 8 && strncasecmp(url, "memcache", 8) == 0) ||
		   (slen == 9 && strncasecmp(url, "memcached", 9) == 0)) {
		o->mode = LOAD_MEMCACHE;
	} else if (slen == 3 && strncasecmp(url, "raw", 3) == 0) {
		o->mode = LOAD_RAW;
	} else {
		return load__fail(err, errlen,
				  "unsupported scheme '%.*s' (http, tcp, redis, memcache or raw)",
				  (int)(slen > 32 ? 32 : slen), url);
	}
	static const char *const schemes[] = { "http", "tcp", "redis", "memcache", "raw" };
	const char *scheme = schemes[o->mode];

	const char *a = sep + 3, *ae = a;
	while (*ae && *ae != '/' && *ae != '?' && *ae != '#')
		ae++;
	if (memchr(a, '@', (size_t)(ae - a)))
		return load__fail(err, errlen, "URL '%s': user info (user@host) is not supported",
				  url_s);

	const char *h = a, *he, *pp = NULL; /* host [h, he), port after pp */
	bool v6 = false;
	if (*a == '[') {
		const char *rb = memchr(a, ']', (size_t)(ae - a));
		if (!rb)
			return load__fail(err, errlen, "URL '%s': '[' without ']' around an IPv6 address",
					  url_s);
		h = a + 1;
		he = rb;
		v6 = true;
		if (rb + 1 < ae) {
			if (rb[1] != ':')
				return load__fail(err, errlen,
						  "URL '%s': unexpected text after ']' (expected :port)", url_s);
			pp = rb + 2;
		}
	} else {
		he = a;
		while (he < ae && *he != ':')
			he++;
		if (he < ae)
			pp = he + 1;
	}
	size_t hlen = (size_t)(he - h);
	if (hlen == 0)
		return load__fail(err, errlen, "URL '%s' has no host", url_s);
	if (hlen >= sizeof(o->host))
		return load__fail(err, errlen, "URL '%s': host name too long (at most %zu bytes)", url_s,
				  sizeof(o->host) - 1);
	for (const char *c = h; c < he; c++) {
		unsigned char ch = (unsigned char)*c;
		bool ok = v6 ? (load__digit((char)ch) || ((ch | 32) >= 'a' && (ch | 32) <= 'f') ||
				ch == ':' || ch == '.')
			     : load__host_char(ch);
		if (!ok)
			return load__fail(err, errlen, "URL '%s': bad character '%c' in the host", url_s,
					  ch >= 0x20 && ch < 0x7f ? ch : '?');
	}
	if (v6 && !memchr(h, ':', hlen))
		return load__fail(err, errlen, "URL '%s': '%.*s' in brackets is not an IPv6 address",
				  url_s, (int)hlen, h);
	memcpy(o->host, h, hlen);
	o->host[hlen] = '\0';

	if (pp) {
		size_t plen = (size_t)(ae - pp);
		unsigned long port = 0;
		bool ok = plen > 0 && plen <= 5;
		for (const char *c = pp; ok && c < ae; c++) {
			if (!load__digit(*c))
				ok = false;
			else
				port = port * 10 + (unsigned long)(*c - '0');
		}
		if (!ok || port < 1 || port > 65535)
			return load__fail(err, errlen, "URL '%s': port '%.*s' is not in 1..65535", url_s,
					  (int)(plen > 16 ? 16 : plen), pp);
		o->port = (uint16_t)port;
	} else if (o->mode == LOAD_REDIS) {
		o->port = 6379;
	} else if (o->mode == LOAD_MEMCACHE) {
		o->port = 11211;
	} else if (o->mode != LOAD_HTTP) {
		return load__fail(err, errlen, "URL '%s': %s:// needs a port (%s://host:port)",
				  url_s, scheme, scheme);
	} else {
		o->port = 80;
	}

	const char *rest = ae, *frag = strchr(rest, '#');
	size_t rlen = frag ? (size_t)(frag - rest) : strlen(rest);
	if (o->mode != LOAD_HTTP) {
		if (rlen > 1 || (rlen == 1 && *rest != '/'))
			return load__fail(err, errlen, "URL '%s': %s:// takes no path", url_s, scheme);
		o->path[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i < rlen; i++) {
		unsigned char c = (unsigned char)rest[i];
		if (c <= 0x20 || c == 0x7f)
			return load__fail(err, errlen,
					  "URL '%s': the path has a space or control character "
					  "(percent-encode it)",
					  url_s);
	}
	size_t off = 0;
	if (rlen == 0 || *rest == '?')
		o->path[off++] = '/';
	if (off + rlen >= sizeof(o->path))
		return load__fail(err, errlen, "URL '%s': path too long (at most %zu bytes)", url_s,
				  sizeof(o->path) - 1);
	memcpy(o->path + off, rest, rlen);
	o->path[off + rlen] = '\0';
	return 0;
}

enum {
	LOAD__CONNS = 1, LOAD__DURATION, LOAD__REQUESTS, LOAD__LOOPS, LOAD__RATE,
	LOAD__PIPELINE, LOAD__SIZE, LOAD__TIMEOUT, LOAD__WARMUP, LOAD__JSON, LOAD__PROGRESS,
	LOAD__NO_PROGRESS, LOAD__LATENCY, LOAD__HEADER, LOAD__HELP, LOAD__COMMAND, LOAD__KEYSPACE,
	LOAD__SEND, LOAD__DELIM, LOAD__EXPECT_LEN, LOAD__POISSON, LOAD__MAX_LAG, LOAD__HLOG, LOAD__COALESCE,
	LOAD__LOCUST, LOAD__SEGMENT,
};

/* C escapes (\r \n \t \0 \\ \xHH) of v into a malloc'd *out: 0, -1 (bad
 * escape, empty, too long), -2 (no memory). */
static inline int load__unescape(const char *v, char **out, size_t *len)
{
	size_t n = strlen(v), k = 0;
	if (!n || n > 4 * LOAD_MAX_TEMPLATE)
		return -1;
	char *b = malloc(n);
	if (!b)
		return -2;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (c == '\\') {
			c = v[++i];
			if (c == 'r') c = '\r';
			else if (c == 'n') c = '\n';
			else if (c == 't') c = '\t';
			else if (c == '0') c = '\0';
			else if (c == 'x' && isxdigit((unsigned char)v[i + 1]) &&
				 isxdigit((unsigned char)v[i + 2])) {
				char hx[3] = { v[i + 1], v[i + 2], 0 };
				c = (char)strtol(hx, NULL, 16);
				i += 2;
			} else if (c != '\\') {
				free(b);
				return -1;
			}
		}
		b[k++] = c;
	}
	if (k > LOAD_MAX_TEMPLATE) {
		free(b);
		return -1;
	}
	*out = b;
	*len = k;
	return 0;
}

struct load__opt {
	const char *lng;
	char shrt;
	bool arg;
	int id;
};


/* One option's value (name as the user spelled it, for messages). */
static inline int load__value(struct load_opts *o, int id, const char *name, const char *v,
			      bool *size_given, char *err, size_t errlen)
{
	uint64_t n;
	double d;
	switch (id) {
	case LOAD__CONNS:
		if (load__count(v, false, &n) < 0 || n == 0)
			return load__fail(err, errlen, "%s: expected a positive integer, got '%s'", name,
					  v);
		if (n > LOAD_MAX_CONNS)
			return load__fail(err, errlen, "%s: at most %u connections, got '%s'", name,
					  LOAD_MAX_CONNS, v);
		o->conns = (unsigned)n;
		o->conns_given = true;
		return 0;
	case LOAD__REQUESTS:
		if (load__count(v, false, &n) < 0)
			return load__fail(err, errlen,
					  "%s: expected a request count (100000, 10k, 2M), got '%s'", name,
					  v);
		o->requests = n;
		return 0;
	case LOAD__LOOPS:
		if (load__count(v, false, &n) < 0 || strpbrk(v, "kKmMgG."))
			return load__fail(err, errlen, "%s: expected an integer (0 = one per CPU), got '%s'",
					  name, v);
		if (n > LOAD_MAX_LOOPS)
			return load__fail(err, errlen, "%s: at most %u loops, got '%s'", name,
					  LOAD_MAX_LOOPS, v);
		o->loops = (unsigned)n;
		return 0;
	case LOAD__PIPELINE:
		if (load__count(v, false, &n) < 0 || n == 0 || strpbrk(v, "kKmMgG."))
			return load__fail(err, errlen, "%s: expected a positive integer, got '%s'", name,
					  v);
		if (n > LOAD_MAX_PIPELINE)
			return load__fail(err, errlen, "%s: at most %u requests in flight, got '%s'",
					  name, LOAD_MAX_PIPELINE, v);
		o->pipeline = (unsigned)n;
		return 0;
	case LOAD__SIZE: {
		char lo[32];
		const char *dash = strchr(v, '-');
		uint64_t hi = 0;
		size_t ll = dash ? (size_t)(dash - v) : 0;
		if (dash && (ll >= sizeof(lo) || load__count(dash + 1, true, &hi) < 0))
			ll = sizeof(lo); /* fails below */
		if (dash && ll < sizeof(lo)) {
			memcpy(lo, v, ll);
			lo[ll] = '\0';
		}
		if ((dash ? ll >= sizeof(lo) || load__count(lo, true, &n) < 0 || hi < n
			  : load__count(v, true, &n) < 0) || n == 0)
			return load__fail(err, errlen, "%s: expected a size in bytes (64, 4k, 1M), got '%s'",
					  name, v);
		if (n > LOAD_MAX_SIZE || hi > LOAD_MAX_SIZE)
			return load__fail(err, errlen, "%s: at most 16M bytes, got '%s'", name, v);
		o->size = (size_t)n;
		o->size_max = dash ? (size_t)hi : (size_t)n;
		*size_given = true;
		return 0;
	}
	case LOAD__COMMAND:
		if (strcasecmp(v, "ping") == 0)
			o->cmd = LOAD_CMD_PING;
		else if (strcasecmp(v, "get") == 0)
			o->cmd = LOAD_CMD_GET;
		else if (strcasecmp(v, "set") == 0)
			o->cmd = LOAD_CMD_SET;
		else
			return load__fail(err, errlen, "%s: expected ping, get or set, got '%s'", name, v);
		return 0;
	case LOAD__KEYSPACE:
		if (load__count(v, false, &n) < 0 || n == 0 || n > 1000000000000ull)
			return load__fail(err, errlen, "%s: expected a count in 1..10^12, got '%s'", name,
					  v);
		o->keyspace = n;
		return 0;
	case LOAD__SEND:
	case LOAD__DELIM: {
		char **dst = id == LOAD__SEND ? &o->send : &o->delim;
		size_t *dlen = id == LOAD__SEND ? &o->send_len : &o->delim_len;
		free(*dst);
		*dst = NULL;
		int r = load__unescape(v, dst, dlen);
		if (r == -2)
			return load__fail(err, errlen, "%s: out of memory", name);
		if (r < 0)
			return load__fail(err, errlen,
					  "%s: expected 1..64k bytes with \\r \\n \\t \\0 \\\\ \\xHH "
					  "escapes, got '%.80s'",
					  name, v);
		return 0;
	}
	case LOAD__EXPECT_LEN:
		if (load__count(v, true, &n) < 0 || n == 0 || n > LOAD_MAX_SIZE)
			return load__fail(err, errlen, "%s: expected 1..16M bytes, got '%s'", name, v);
		o->expect_len = (size_t)n;
		return 0;
	case LOAD__MAX_LAG:
		if (load__duration(v, 1, &d) < 0 || !(d > 0) || d > LOAD_MAX_DURATION_S)
			return load__fail(err, errlen, "%s: expected a duration (10ms, 1s), got '%s'",
					  name, v);
		o->max_lag_s = d;
		return 0;
	case LOAD__COALESCE:
		if (load__duration(v, 1e-6, &d) < 0 || d > 1.0000005)
			return load__fail(err, errlen,
					  "%s: expected a duration up to 1s (50us; 0: off), got '%s'",
					  name, v);
		o->coalesce_us = (unsigned)(d * 1e6 + 0.5);
		return 0;
	case LOAD__LOCUST:
		o->locust_master = v;
		return 0;
	case LOAD__SEGMENT: {
		const char *slash = strchr(v, '/');
		uint64_t a = 0, b = 0;
		bool ok = slash && slash > v && slash[1];
		for (const char *c = v; ok && c < slash; c++)
			ok = load__digit(*c) && load__push_digit(&a, *c) == 0;
		for (const char *c = slash ? slash + 1 : v; ok && *c; c++)
			ok = load__digit(*c) && load__push_digit(&b, *c) == 0;
		if (!ok || a < 1 || b < 1 || a > b || b > LOAD_MAX_CONNS)
			return load__fail(err, errlen,
					  "%s: expected i/n with 1 <= i <= n (this process's part "
					  "of n), got '%s'",
					  name, v);
		o->seg_i = (unsigned)a;
		o->seg_n = (unsigned)b;
		return 0;
	}
	case LOAD__HLOG:
		if (!*v)
			return load__fail(err, errlen, "%s: expected a file name", name);
		o->hlog = v;
		return 0;
	case LOAD__RATE: {
		uint64_t num, den, mult = 1;
		const char *e;
		if (load__decimal(v, &num, &den, &e) < 0)
			return load__fail(err, errlen,
					  "%s: expected requests per second (50000, 50k, 2.5k), got '%s'",
					  name, v);
		switch (*e) {
		case 'k': case 'K': mult = 1000; e++; break;
		case 'm': case 'M': mult = 1000000; e++; break;
		case 'g': case 'G': mult = 1000000000; e++; break;
		default: break;
		}
		if (*e)
			return load__fail(err, errlen,
					  "%s: expected requests per second (50000, 50k, 2.5k), got '%s'",
					  name, v);
		d = (double)num / (double)den * (double)mult;
		if (!(d > 0))
			return load__fail(err, errlen,
					  "%s must be > 0 (leave it out for a closed-loop run), got '%s'",
					  name, v);
		if (d > LOAD_MAX_RATE)
			return load__fail(err, errlen, "%s: at most 1G requests/s, got '%s'", name, v);
		o->rate = d;
		return 0;
	}
	case LOAD__DURATION:
	case LOAD__WARMUP:
		if (load__duration(v, 1, &d) < 0)
			return load__fail(err, errlen,
					  "%s: expected a duration (10, 10s, 500ms, 2m, 1h), got '%s'", name,
					  v);
		if (id == LOAD__DURATION && !(d > 0))
			return load__fail(err, errlen, "%s must be > 0, got '%s'", name, v);
		if (d > LOAD_MAX_DURATION_S)
			return load__fail(err, errlen, "%s: at most 24h, got '%s'", name, v);
		if (id == LOAD__DURATION) {
			o->duration_s = d;
			o->duration_given = true;
		} else {
			o->warmup_s = d;
		}
		return 0;
	case LOAD__TIMEOUT:
		if (load__duration(v, 1e-3, &d) < 0)
			return load__fail(err, errlen,
					  "%s: expected milliseconds or a duration (2000, 2s), got '%s'",
					  name, v);
		d = d * 1e3 + 0.5;
		if (d < 1)
			return load__fail(err, errlen, "%s must be at least 1ms, got '%s'", name, v);
		if (d > LOAD_MAX_TIMEOUT_MS + 0.5)
			return load__fail(err, errlen, "%s: at most 1h, got '%s'", name, v);
		o->timeout_ms = (unsigned)d;
		return 0;
	case LOAD__HEADER:
		if (!load__header_ok(v))
			return load__fail(err, errlen, "%s: expected \"Name: value\", got '%s'", name, v);
		if (o->nheaders >= LOAD_MAX_HEADERS)
			return load__fail(err, errlen, "%s: at most %d headers", name, LOAD_MAX_HEADERS);
		o->headers[o->nheaders++] = v;
		return 0;
	}
	return load__fail(err, errlen, "%s: unhandled option", name);
}

static inline int load_opts_parse(int argc, char **argv, struct load_opts *o, char *err,
				  size_t errlen)
{
	load_opts_defaults(o);
	if (err && errlen)
		err[0] = '\0';
	static const struct load__opt load__opts[] = {
		{ "connections", 'c', true, LOAD__CONNS },
		{ "conns", 0, true, LOAD__CONNS },
		{ "duration", 'd', true, LOAD__DURATION },
		{ "requests", 'n', true, LOAD__REQUESTS },
		{ "loops", 't', true, LOAD__LOOPS },
		{ "threads", 0, true, LOAD__LOOPS },
		{ "rate", 'R', true, LOAD__RATE },
		{ "pipeline", 0, true, LOAD__PIPELINE },
		{ "size", 0, true, LOAD__SIZE },
		{ "timeout", 0, true, LOAD__TIMEOUT },
		{ "warmup", 0, true, LOAD__WARMUP },
		{ "json", 0, false, LOAD__JSON },
		{ "progress", 0, false, LOAD__PROGRESS },
		{ "no-progress", 0, false, LOAD__NO_PROGRESS },
		{ "latency", 'L', false, LOAD__LATENCY },
		{ "header", 'H', true, LOAD__HEADER },
		{ "help", 'h', false, LOAD__HELP },
		{ "command", 0, true, LOAD__COMMAND },
		{ "keyspace", 0, true, LOAD__KEYSPACE },
		{ "send", 0, true, LOAD__SEND },
		{ "expect-delim", 0, true, LOAD__DELIM },
		{ "expect-len", 0, true, LOAD__EXPECT_LEN },
		{ "poisson", 0, false, LOAD__POISSON },
		{ "max-lag", 0, true, LOAD__MAX_LAG },
		{ "hlog", 0, true, LOAD__HLOG },
		{ "locust-master", 0, true, LOAD__LOCUST },
		{ "segment", 0, true, LOAD__SEGMENT },
		{ "coalesce", 0, true, LOAD__COALESCE },
	};
	const char *url = NULL;
	bool size_given = false, only_args = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (url)
				return load__fail(err, errlen,
						  "one URL only: unexpected argument '%.80s'", a);
			url = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
			continue;
		}
		const struct load__opt *opt = NULL;
		const char *val = NULL;
		char name[40];
		size_t nopts = sizeof(load__opts) / sizeof(load__opts[0]);
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			for (size_t k = 0; k < nopts; k++)
				if (strlen(load__opts[k].lng) == nlen &&
				    strncmp(load__opts[k].lng, a + 2, nlen) == 0)
					opt = &load__opts[k];
			snprintf(name, sizeof(name), "--%.*s", (int)(nlen > 32 ? 32 : nlen), a + 2);
			if (!opt)
				return load__fail(err, errlen, "unknown option '%s' (see --help)", name);
			if (eq) {
				if (!opt->arg)
					return load__fail(err, errlen, "%s takes no value, got '%s'", name,
							  a);
				val = eq + 1;
			}
		} else {
			for (size_t k = 0; k < nopts; k++)
				if (load__opts[k].shrt && load__opts[k].shrt == a[1])
					opt = &load__opts[k];
			snprintf(name, sizeof(name), "-%c", a[1]);
			if (!opt)
				return load__fail(err, errlen, "unknown option '%s' (see --help)", a);
			if (a[2]) {
				if (!opt->arg)
					return load__fail(err, errlen, "unknown option '%s' (see --help)",
							  a);
				val = a + 2;
			}
		}
		if (!opt->arg) {
			switch (opt->id) {
			case LOAD__JSON: o->json = true; break;
			case LOAD__PROGRESS: o->progress = 1; break;
			case LOAD__NO_PROGRESS: o->progress = 0; break;
			case LOAD__LATENCY: o->latency = true; break;
			case LOAD__POISSON: o->poisson = true; break;
			case LOAD__HELP: return 1;
			}
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				return load__fail(err, errlen, "%s needs a value", name);
			val = argv[++i];
		}
		int r = load__value(o, opt->id, name, val, &size_given, err, errlen);
		if (r < 0)
			return r;
	}
	if (!url)
		return load__fail(err, errlen,
				  "missing URL (http://host[:port]/path or tcp://host:port; see --help)");
	int r = load__url(url, o, err, errlen);
	if (r < 0)
		return r;
	if (o->mode != LOAD_HTTP && o->nheaders)
		return load__fail(err, errlen, "-H: headers apply to http:// URLs only");
	if ((o->mode == LOAD_HTTP || o->mode == LOAD_RAW) && size_given)
		return load__fail(err, errlen,
				  "--size applies to tcp:// echo and redis/memcache values only");
	if (!size_given) {
		if (o->mode == LOAD_REDIS || o->mode == LOAD_MEMCACHE)
			o->size = 3; /* redis-benchmark's -d 3 */
		o->size_max = o->size;
	}
	if (o->mode == LOAD_TCP && o->size_max != o->size)
		return load__fail(err, errlen, "--size MIN-MAX applies to redis/memcache values only");
	if (o->cmd && o->mode != LOAD_REDIS && o->mode != LOAD_MEMCACHE)
		return load__fail(err, errlen, "--command applies to redis:// and memcache:// only");
	if (o->cmd == LOAD_CMD_PING && o->mode == LOAD_MEMCACHE)
		return load__fail(err, errlen, "--command: memcache:// has get and set");
	if (!o->cmd)
		o->cmd = o->mode == LOAD_REDIS ? LOAD_CMD_PING : LOAD_CMD_GET;
	if ((o->send || o->delim || o->expect_len) && o->mode != LOAD_RAW)
		return load__fail(err, errlen, "--send and --expect-* apply to raw:// only");
	if (o->mode == LOAD_RAW && (!o->send || !o->delim == !o->expect_len))
		return load__fail(err, errlen,
				  "raw:// needs --send and one of --expect-delim or --expect-len");
	if (o->locust_master) {
		const char *what = o->conns_given ? "-c" : o->duration_given ? "-d"
			: o->requests ? "-n" : o->warmup_s > 0 ? "--warmup" : o->hlog ? "--hlog"
			: o->seg_n ? "--segment" : NULL;
		if (what)
			return load__fail(err, errlen,
					  "%s does not go with --locust-master: the master gives the "
					  "users and the duration (and has the statistics)",
					  what);
		if (o->rate > 0 && o->rate < 0.001)
			return load__fail(err, errlen, "--rate per user must be at least 0.001");
	}
	if (o->requests && !o->duration_given)
		o->duration_s = LOAD_MAX_DURATION_S;
	return 0;
}

#endif
