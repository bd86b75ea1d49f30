/*
 * weft/load.h, the harness API (issue 13):
 *  - the histogram's hardening (NULL, overflow, empty, bad percentiles),
 *    its iteration and JSON;
 *  - HdrHistogram's V2 encoding: a round trip, python's zlib and base64
 *    decoding ours independently (the format, byte for byte), a histogram
 *    of another precision (3 digits, as HdrHistogram's default) encoded by
 *    python and re-bucketed into ours, and corrupt input refused;
 *  - the .hlog writer's header and lines, read back;
 *  - the pacer's schedule, lag, late and dropped accounting, and its
 *    Poisson mode's mean gap;
 *  - the run driver against a real RESP server (examples/kv_server): a
 *    request count, the start barrier, warm-up plus intervals adding up
 *    to the run, open-loop pipelining, a stop from a foreign thread, the
 *    caller cancelled or its scope expiring (measuring, at the barrier),
 *    and bad configurations.
 * The protocols of weft-load against real servers are in test_loadgen.
 */
#include "weft_test_proc.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

/* ------------------------------------------------------------------ */
/* Histogram                                                           */
/* ------------------------------------------------------------------ */

static weft_hist *hist_new(void)
{
	weft_hist *h = malloc(sizeof(*h));
	assert_non_null(h);
	weft_hist_init(h);
	return h;
}

static void test_hist_bad_inputs(void **state)
{
	(void)state;
	weft_hist *h = hist_new();
	assert_int_equal(weft_hist_record(NULL, 1), -EINVAL);
	assert_int_equal(weft_hist_record_n(NULL, 1, 1), -EINVAL);
	assert_int_equal(weft_hist_merge(NULL, h), -EINVAL);
	assert_int_equal(weft_hist_merge(h, NULL), -EINVAL);
	assert_int_equal(weft_hist_record_corrected(NULL, 5, 1), -EINVAL);
	assert_int_equal(weft_hist_count(NULL), 0);
	assert_int_equal(weft_hist_percentile(NULL, 50), 0);
	/* empty: every statistic 0 */
	assert_int_equal(weft_hist_min(h), 0);
	assert_int_equal(weft_hist_max(h), 0);
	assert_true(weft_hist_mean(h) == 0 && weft_hist_stddev(h) == 0);
	assert_int_equal(weft_hist_percentile(h, 99), 0);
	unsigned slot = 0;
	assert_false(weft_hist_next(h, &slot, NULL, NULL));
	/* percentiles out of range clamp; NaN is 0 */
	assert_int_equal(weft_hist_record(h, 1000), 0);
	assert_int_equal(weft_hist_record(h, 5000), 0);
	assert_int_equal(weft_hist_percentile(h, NAN), 1000);
	assert_int_equal(weft_hist_percentile(h, -5), 1000);
	assert_int_equal(weft_hist_percentile(h, 1e9), 5000);
	/* overflow of the total: refused, nothing recorded */
	assert_int_equal(weft_hist_record_n(h, 7, UINT64_MAX), -EOVERFLOW);
	assert_int_equal(weft_hist_count(h), 2);
	assert_int_equal(weft_hist_record_corrected(h, UINT64_MAX, 1), -EOVERFLOW);
	assert_int_equal(weft_hist_count(h), 2);
	weft_hist *big = hist_new();
	assert_int_equal(weft_hist_record_n(big, 3, UINT64_MAX - 1), 0);
	assert_int_equal(weft_hist_merge(big, h), -EOVERFLOW);
	assert_int_equal(weft_hist_count(big), UINT64_MAX - 1);
	/* values past the tracked range: counted, exact max, flagged */
	assert_int_equal(weft_hist_record(h, UINT64_MAX), 0);
	assert_int_equal(h->clamped, 1);
	assert_int_equal(weft_hist_max(h), UINT64_MAX);
	assert_int_equal(weft_hist_percentile(h, 100), UINT64_MAX);
	/* JSON: bad unit refused, snprintf-style length */
	char js[512];
	assert_int_equal(weft_hist_json(h, 0, js, sizeof(js)), -EINVAL);
	assert_int_equal(weft_hist_json(h, NAN, js, sizeof(js)), -EINVAL);
	ssize_t need = weft_hist_json(h, 1000, NULL, 0);
	assert_true(need > 0 && (size_t)need < sizeof(js));
	assert_int_equal(weft_hist_json(h, 1000, js, sizeof(js)), need);
	assert_int_equal(strlen(js), (size_t)need);
	assert_non_null(strstr(js, "\"min\":1.000,"));
	assert_non_null(strstr(js, "\"count\":3}"));
	char small[8];
	assert_int_equal(weft_hist_json(h, 1000, small, sizeof(small)), need);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	free(big);
	free(h);
}

/* Merge is commutative and equals recording everything in one; the
 * iteration visits exactly the non-empty slots. */
static void test_hist_merge_and_iterate(void **state)
{
	(void)state;
	weft_hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *ab = hist_new();
	uint64_t x = 12345;
	for (int i = 0; i < 100000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t v = (x >> 20) % 50000000; /* 0..50 ms */
		weft_hist_record(i & 1 ? a : b, v);
		weft_hist_record(all, v);
	}
	assert_int_equal(weft_hist_merge(ab, a), 0);
	assert_int_equal(weft_hist_merge(ab, b), 0);
	assert_memory_equal(ab->counts, all->counts, sizeof(all->counts));
	assert_int_equal(ab->min, all->min);
	assert_int_equal(ab->max, all->max);
	for (double p = 0; p <= 100; p += 0.5)
		assert_int_equal(weft_hist_percentile(ab, p), weft_hist_percentile(all, p));
	uint64_t seen = 0, last = 0, v, c;
	unsigned slot = 0, n = 0;
	while (weft_hist_next(all, &slot, &v, &c)) {
		assert_true(c > 0 && (n == 0 || v > last) && v <= all->max);
		seen += c;
		last = v;
		n++;
	}
	assert_int_equal(seen, weft_hist_count(all));
	/* merging into itself doubles */
	assert_int_equal(weft_hist_merge(a, a), 0);
	assert_int_equal(weft_hist_count(a), 100000);
	free(a);
	free(b);
	free(all);
	free(ab);
}

/* ------------------------------------------------------------------ */
/* HdrHistogram encoding and .hlog                                     */
/* ------------------------------------------------------------------ */

static void fill_sample(weft_hist *h)
{
	uint64_t x = 99;
	for (int i = 0; i < 20000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		weft_hist_record(h, 20000 + (x >> 33) % 3000000);
	}
	weft_hist_record_n(h, 7, 3);                       /* exact small values */
	weft_hist_record(h, (uint64_t)40 * 1000000000ull); /* a 40 s outlier */
}

static char *encode(const weft_hist *h)
{
	ssize_t need = weft_hist_encode(h, NULL, 0);
	assert_true(need > 0);
	char *b = malloc((size_t)need + 1);
	assert_non_null(b);
	assert_int_equal(weft_hist_encode(h, b, (size_t)need + 1), need);
	assert_int_equal(strlen(b), (size_t)need);
	return b;
}

static void test_hdr_roundtrip(void **state)
{
	(void)state;
	weft_hist *h = hist_new(), *d = hist_new();
	fill_sample(h);
	char *b = encode(h);
	assert_int_equal(weft_hist_decode(d, b, strlen(b)), (int64_t)weft_hist_count(h));
	/* every value comes back in its own slot */
	assert_memory_equal(d->counts, h->counts, sizeof(h->counts));
	for (double p = 1; p < 100; p += 7)
		assert_int_equal(weft_hist_percentile(d, p), weft_hist_percentile(h, p));
	/* decoding adds: twice is double */
	assert_int_equal(weft_hist_decode(d, b, strlen(b)), (int64_t)weft_hist_count(h));
	assert_int_equal(weft_hist_count(d), 2 * weft_hist_count(h));
	/* an empty histogram encodes and decodes to nothing */
	weft_hist *e = hist_new();
	char *eb = encode(e);
	assert_int_equal(weft_hist_decode(e, eb, strlen(eb)), 0);
	assert_int_equal(weft_hist_count(e), 0);
	/* corrupt input is refused and leaves the histogram alone */
	uint64_t before = weft_hist_count(d);
	assert_int_equal(weft_hist_decode(d, "not base64!", 11), -EBADMSG);
	assert_int_equal(weft_hist_decode(d, "AAAA", 4), -EBADMSG);
	char *bad = strdup(b);
	bad[strlen(bad) / 2] = bad[strlen(bad) / 2] == 'A' ? 'B' : 'A';
	assert_true(weft_hist_decode(d, bad, strlen(bad)) < 0);
	assert_int_equal(weft_hist_decode(d, b, strlen(b) / 2), -EBADMSG);
	assert_int_equal(weft_hist_count(d), before);
	assert_int_equal(weft_hist_decode(NULL, b, strlen(b)), -EINVAL);
	free(bad);
	free(b);
	free(eb);
	free(e);
	free(h);
	free(d);
}

/* python3 with only its standard library (zlib, base64, struct), no
 * HdrHistogram package: an independent reading of the format. */
static bool have_python(void)
{
	if (have_tool("python3"))
		return true;
	print_message("SKIPPED: no python3 to decode the encoding independently\n");
	return false;
}

/* Decodes each base64 argument per HdrHistogram's V2 compressed layout
 * and prints "total digits lowest highest" (or raises). */
static const char py_decode[] =
	"import sys,base64,zlib,struct\n"
	"for a in sys.argv[1:]:\n"
	"  b=base64.b64decode(a)\n"
	"  c,n=struct.unpack('>Ii',b[:8]); assert c==0x1c849314 and n==len(b)-8\n"
	"  r=zlib.decompress(b[8:])\n"
	"  c,pl,off,dg,lo,hi,ra=struct.unpack('>IiiiqqD'.replace('D','d'),r[:40])\n"
	"  assert c==0x1c849313 and pl==len(r)-40 and off==0 and ra==1.0\n"
	"  p=r[40:];i=0;t=0;idx=0\n"
	"  while i<len(p):\n"
	"    z=0;k=0\n"
	"    while True:\n"
	"      x=p[i];i+=1\n"
	"      if k==8: z|=x<<56;break\n"
	"      z|=(x&127)<<(7*k);k+=1\n"
	"      if not x&128: break\n"
	"    v=(z>>1)^-(z&1)\n"
	"    if v<0: idx+=-v\n"
	"    else: t+=v;idx+=1\n"
	"  print(t,dg,lo,hi)\n";

static void test_hdr_python_decodes(void **state)
{
	(void)state;
	if (!have_python())
		skip();
	weft_hist *h = hist_new();
	fill_sample(h);
	char *b = encode(h);
	const char *argv[] = { "python3", "-c", py_decode, b, NULL };
	char out[256];
	assert_int_equal(run(argv, out, sizeof(out), 10000 * SLOW), 0);
	char want[128];
	snprintf(want, sizeof(want), "%llu 2 1 %llu\n", (unsigned long long)weft_hist_count(h),
		 (unsigned long long)WEFT_HIST_TRACK_MAX);
	assert_string_equal(out, want);
	free(b);
	free(h);
}

/* Encodes, as HdrHistogram's default (3 significant digits, 2048
 * sub-buckets) would, 5 x 1000, 7 x 123456 and 1 x 5000000 (ns). */
static const char py_encode3[] =
	"import base64,zlib,struct\n"
	"vals={1000:5,123456:7,5000000:1}\n"
	"def idx(v):\n"
	"  if v<2048: return v\n"
	"  b=v.bit_length()-11\n"
	"  return (b+1)*1024+((v>>b)-1024)\n"
	"cs={idx(v):c for v,c in vals.items()}\n"
	"def zz(v):\n"
	"  z=(v<<1)^(v>>63); o=b''\n"
	"  while z>=128: o+=bytes([z&127|128]); z>>=7\n"
	"  return o+bytes([z])\n"
	"p=b'';i=0;top=max(cs)+1\n"
	"while i<top:\n"
	"  c=cs.get(i,0);i+=1\n"
	"  if c: p+=zz(c); continue\n"
	"  n=1\n"
	"  while i<top and cs.get(i,0)==0: n+=1;i+=1\n"
	"  p+=zz(-n if n>1 else 0)\n"
	"r=struct.pack('>Iiiiqqd',0x1c849313,len(p),0,3,1,3600000000000,1.0)+p\n"
	"z=zlib.compress(r)\n"
	"print(base64.b64encode(struct.pack('>Ii',0x1c849314,len(z))+z).decode())\n";

static void test_hdr_other_precision(void **state)
{
	(void)state;
	if (!have_python())
		skip();
	const char *argv[] = { "python3", "-c", py_encode3, NULL };
	char out[4096];
	assert_int_equal(run(argv, out, sizeof(out), 10000 * SLOW), 0);
	size_t n = strcspn(out, "\n");
	weft_hist *h = hist_new();
	assert_int_equal(weft_hist_decode(h, out, n), 13);
	/* each value lands within the two precisions' error */
	uint64_t p30 = weft_hist_percentile(h, 30);
	assert_true(p30 >= 1000 && p30 <= 1000 + 1000 / 128);
	uint64_t p80 = weft_hist_percentile(h, 80), mx = weft_hist_max(h);
	assert_true(p80 >= 123456 && p80 <= 123456 + 123456 / 128 + 64);
	assert_true(mx >= 5000000 && mx <= 5000000 + 5000000 / 128 + 2048);
	free(h);
}

static void test_hlog_write(void **state)
{
	(void)state;
	weft_hist *h = hist_new(), *back = hist_new();
	fill_sample(h);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(weft_hlog_write_header(f, 1700000000.25), 0);
	assert_int_equal(weft_hlog_write_interval(f, NULL, 0, 1, h), 0);
	assert_int_equal(weft_hlog_write_interval(f, "redis-get", 1.0, 0.5, h), 0);
	assert_int_equal(weft_hlog_write_interval(f, "bad tag", 1.0, 0.5, h), -EINVAL);
	assert_int_equal(weft_hlog_write_interval(f, NULL, -1, 1, h), -EINVAL);
	assert_int_equal(weft_hlog_write_header(f, NAN), -EINVAL);
	fclose(f);
	print_message("%.400s\n", buf);
	assert_non_null(strstr(buf, "#[Histogram log format version 1.3]\n"
				    "#[StartTime: 1700000000.250 (seconds since epoch), Tue Nov 14 "
				    "22:13:20 UTC 2023]\n"
				    "#[BaseTime: 1700000000.250 (seconds since epoch)]\n"
				    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
				    "\"Interval_Compressed_Histogram\"\n0.000,1.000,40000.000,HISTF"));
	const char *tagged = strstr(buf, "\nTag=redis-get,1.000,0.500,40000.000,");
	assert_non_null(tagged);
	const char *enc = strrchr(tagged, ',') + 1;
	size_t n = strcspn(enc, "\n");
	assert_int_equal(weft_hist_decode(back, enc, n), (int64_t)weft_hist_count(h));
	assert_memory_equal(back->counts, h->counts, sizeof(h->counts));
	free(buf);
	free(h);
	free(back);
}

/* ------------------------------------------------------------------ */
/* Pacer                                                               */
/* ------------------------------------------------------------------ */

static void test_pacer_accounting(void **state)
{
	(void)state;
	weft_pacer p;
	assert_int_equal(weft_pacer_init(&p, 0, 0, WEFT_PACER_CONSTANT, 0), -EINVAL);
	assert_int_equal(weft_pacer_init(&p, NAN, 0, WEFT_PACER_CONSTANT, 0), -EINVAL);
	assert_int_equal(weft_pacer_init(&p, INFINITY, 0, WEFT_PACER_CONSTANT, 0), -EINVAL);
	assert_int_equal(weft_pacer_init(&p, 10, 0, 7, 0), -EINVAL);
	/* 1000/s from t = 0: a slot each ms */
	assert_int_equal(weft_pacer_init(&p, 1000, 0, WEFT_PACER_CONSTANT, 0), 0);
	uint64_t t = 99;
	assert_true(weft_pacer_take(&p, 0, &t));
	assert_int_equal(t, 0);
	assert_false(weft_pacer_take(&p, 999999, &t)); /* the next is due at 1 ms */
	assert_true(weft_pacer_take(&p, 1000000, &t));
	assert_int_equal(t, 1000000);
	assert_int_equal(p.late, 0);
	/* 4.5 ms late: sent with its lag, late (> 1 ms) */
	assert_true(weft_pacer_take(&p, 6500000, &t));
	assert_int_equal(t, 2000000);
	assert_int_equal(p.late, 1);
	assert_int_equal(p.lag_max_ns, 4500000);
	/* the slots behind catch up one by one (wrk2: sent late, not skipped) */
	for (uint64_t k = 3; k <= 6; k++) {
		assert_true(weft_pacer_take(&p, 6500000, &t));
		assert_int_equal(t, k * 1000000);
	}
	assert_false(weft_pacer_take(&p, 6500000, &t));
	assert_int_equal(p.sent, 7);
	assert_int_equal(p.late, 4); /* lags 4.5, 3.5, 2.5, 1.5 ms; 0.5 is not late */
	assert_int_equal(p.dropped, 0);
	/* a drop limit of 2 ms: a 10 ms stall drops what is more than 2 ms
	 * behind (7..14 ms), then sends the rest late */
	assert_int_equal(weft_pacer_set_limits(&p, 1000000, 2000000), 0);
	assert_true(weft_pacer_take(&p, 17000000, &t));
	assert_int_equal(t, 15000000);
	assert_int_equal(p.dropped, 8);
	assert_int_equal(p.sent, 8);
	/* merging adds the accounting */
	weft_pacer m;
	weft_pacer_init(&m, 1, 0, WEFT_PACER_CONSTANT, 0);
	weft_pacer_merge_stats(&m, &p);
	weft_pacer_merge_stats(&m, &p);
	assert_int_equal(m.sent, 16);
	assert_int_equal(m.dropped, 16);
	assert_int_equal(m.lag_max_ns, 4500000);
	assert_false(weft_pacer_take(NULL, 0, &t));
}

static void test_pacer_poisson(void **state)
{
	(void)state;
	weft_pacer p;
	assert_int_equal(weft_pacer_init(&p, 10000, 1000, WEFT_PACER_POISSON, 42), 0);
	uint64_t t, prev = 0, n = 200000, small = 0;
	for (uint64_t i = 0; i < n; i++) {
		assert_true(weft_pacer_take(&p, UINT64_MAX / 2, &t));
		if (i && t - prev < 50000) /* P(gap < mean/2) = 1 - e^-0.5 = 0.393 */
			small++;
		prev = t;
	}
	double mean = (double)(prev - 1000) / (double)(n - 1);
	print_message("poisson: mean gap %.1f us (100), P(gap < 50us) %.3f (0.393)\n", mean / 1e3,
		      (double)small / (double)n);
	assert_true(mean > 98000 && mean < 102000);
	assert_true(fabs((double)small / (double)n - 0.3935) < 0.01);
	/* the same seed, the same schedule */
	weft_pacer q;
	weft_pacer_init(&q, 10000, 1000, WEFT_PACER_POISSON, 42);
	weft_pacer_init(&p, 10000, 1000, WEFT_PACER_POISSON, 42);
	for (int i = 0; i < 100; i++) {
		uint64_t a, b;
		weft_pacer_take(&p, UINT64_MAX / 2, &a);
		weft_pacer_take(&q, UINT64_MAX / 2, &b);
		assert_int_equal(a, b);
	}
}

/* A tiny rate is valid (anything > 0): its gap is longer than the clock
 * can say, so at a constant rate the slot after the first is never due;
 * in neither mode does it wrap into a slot per nanosecond or into the
 * past (a Poisson gap may be short by chance: only its order is checked). */
static void test_pacer_tiny_rate(void **state)
{
	(void)state;
	const double rates[] = { 1e-11, 1e-30 };
	for (int mode = WEFT_PACER_CONSTANT; mode <= WEFT_PACER_POISSON; mode++)
		for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
			weft_pacer p;
			uint64_t t = 99;
			assert_int_equal(weft_pacer_init(&p, rates[i], 1000, mode, 7), 0);
			assert_int_equal(p.gap_ns, UINT64_MAX);
			assert_true(weft_pacer_take(&p, 1000, &t));
			assert_int_equal(t, 1000);
			assert_true(p.next_ns > 1000);
			if (mode == WEFT_PACER_CONSTANT) {
				assert_false(weft_pacer_take(&p, UINT64_MAX - 1, &t));
				assert_int_equal(p.sent, 1);
				/* a first slot dropped: the next is still never */
				weft_pacer_init(&p, rates[i], 1000, mode, 7);
				weft_pacer_set_limits(&p, 10, 10);
				assert_false(weft_pacer_take(&p, 2000, &t));
				assert_int_equal(p.dropped, 1);
				assert_int_equal(p.next_ns, UINT64_MAX);
			}
		}
}

/* ------------------------------------------------------------------ */
/* The run driver against kv_server                                    */
/* ------------------------------------------------------------------ */

/* A PING protocol: "+PONG\r\n" back.  Its per-connection state records
 * when the connection was set up and when it sent first. */
struct ping_conn {
	uint64_t init_ns, first_write_ns;
};

struct ping_arg {
	_Atomic uint64_t last_init, first_write; /* max of inits, min of first writes */
	_Atomic unsigned inits;
};

static int ping_init(void *arg, unsigned conn, void **state)
{
	struct ping_arg *a = arg;
	struct ping_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->init_ns = weft_now_ns();
	uint64_t m = atomic_load(&a->last_init);
	while (c->init_ns > m && !atomic_compare_exchange_weak(&a->last_init, &m, c->init_ns))
		;
	atomic_fetch_add(&a->inits, 1);
	*state = c;
	return 0;
}

static void ping_fini(void *arg, void *state)
{
	free(state);
}

/* Queue n PINGs: 0 or -EPIPE (the protocols' write). */
static int write_pings(weft_stream *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (weft_stream_write(s, "PING\r\n", 6) < 0)
			return -EPIPE;
	return 0;
}

static int ping_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	struct ping_arg *a = arg;
	struct ping_conn *c = state;
	if (!c->first_write_ns) {
		c->first_write_ns = weft_now_ns();
		uint64_t m = atomic_load(&a->first_write);
		while (c->first_write_ns < m &&
		       !atomic_compare_exchange_weak(&a->first_write, &m, c->first_write_ns))
			;
	}
	return write_pings(s, n);
}

static ssize_t ping_parse(void *arg, void *state, const char *buf, size_t len, size_t *need,
			  unsigned *flags)
{
	if (len < 7)
		return 0;
	return memcmp(buf, "+PONG\r\n", 7) == 0 ? 7 : -EBADMSG;
}

static const weft_load_proto ping_proto = {
	.name = "ping", .conn_init = ping_init, .conn_fini = ping_fini,
	.write = ping_write, .parse = ping_parse,
};

struct drive {
	weft_load_config cfg;
	weft_sockaddr addr;
	struct ping_arg pa;
	weft_load_result *res;
	int rc, create_rc;
	/* intervals */
	unsigned nint;
	uint64_t int_requests, int_hist, last_end;
	bool contiguous;
	/* stop from a foreign thread */
	weft_load *l;
	unsigned stop_after_ms;
	/* a cancelled caller: its next wait's return after the run */
	int after_rc;
};

static void count_interval(void *arg, const weft_load_interval *iv)
{
	struct drive *d = arg;
	if (d->nint && iv->start_ns != d->last_end)
		d->contiguous = false;
	if (iv->index != d->nint)
		d->contiguous = false;
	d->last_end = iv->end_ns;
	d->nint++;
	d->int_requests += iv->counts->requests;
	d->int_hist += weft_hist_count(iv->hist);
}

static void *stopper(void *arg)
{
	struct drive *d = arg;
	msleep(d->stop_after_ms);
	weft_load_stop(d->l);
	return NULL;
}

static void *drive_task(void *arg)
{
	struct drive *d = arg;
	d->create_rc = weft_load_create(&d->l, &d->cfg);
	if (d->create_rc < 0)
		return NULL;
	pthread_t th;
	if (d->stop_after_ms)
		pthread_create(&th, NULL, stopper, d);
	d->rc = weft_load_run(d->l, d->res);
	if (d->stop_after_ms)
		pthread_join(th, NULL);
	/* a second run is refused */
	if (weft_load_run(d->l, NULL) != -EALREADY)
		d->rc = -999;
	weft_load_destroy(d->l);
	return NULL;
}

static struct drive *drive_new(struct server *s)
{
	struct drive *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->res = calloc(1, sizeof(*d->res));
	assert_non_null(d->res);
	assert_int_equal(weft_addr_ip(&d->addr, "127.0.0.1", (uint16_t)s->port), 0);
	weft_load_config_init(&d->cfg);
	d->cfg.addr = &d->addr;
	d->cfg.proto = &ping_proto;
	d->cfg.proto_arg = &d->pa;
	d->cfg.progress = 0;
	d->contiguous = true;
	atomic_init(&d->pa.first_write, UINT64_MAX);
	return d;
}

static void drive_run(struct drive *d)
{
	weft_test_run_loops(2, drive_task, d);
	assert_int_equal(d->create_rc, 0);
	assert_int_equal(d->rc, 0);
	print_message("requests %llu in %.3fs, errors %llu, p50 %.1fus, intervals %u\n",
		      (unsigned long long)d->res->counts.requests, d->res->seconds,
		      (unsigned long long)weft_load_errors(&d->res->counts),
		      weft_hist_percentile(&d->res->hist, 50) / 1e3, d->nint);
}

static void drive_free(struct drive *d)
{
	free(d->res);
	free(d);
}

/* A count: exactly that many measured requests, all in the histogram;
 * the barrier: no request before every connection was set up. */
static void test_driver_count_and_barrier(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.conns = 8;
	d->cfg.pipeline = 4;
	d->cfg.requests = 3000;
	d->cfg.duration_ns = WEFT_FOREVER;
	drive_run(d);
	assert_int_equal(d->res->counts.requests, 3000);
	assert_int_equal(weft_hist_count(&d->res->hist), 3000);
	assert_int_equal(weft_load_errors(&d->res->counts), 0);
	assert_true(d->res->counts.bytes_in == 3000 * 7);
	assert_false(d->res->stopped);
	assert_int_equal(d->res->loops, 2);
	assert_int_equal(d->res->connected, 8);
	assert_int_equal(d->res->connect_error, 0);
	assert_int_equal(atomic_load(&d->pa.inits), 8);
	assert_true(atomic_load(&d->pa.first_write) >= atomic_load(&d->pa.last_init));
	drive_free(d);
	server_stop(&s);
}

/* The barrier opens when the last connection arrives, not at the driver's
 * next look: a run of one request over loopback sent its first request
 * 20 ms after it began (the driver polled every 20 ms), so every short
 * run (a Locust worker's batches, a -n run) started 20 ms late.  The best
 * of 5 runs from weft_load_run to the first write; one connection is
 * pinned to the driver's loop, so none arrives before the driver waits. */
static void *barrier_runs(void *arg)
{
	struct drive *d = arg;
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 5 && d->rc == 0; i++) {
		atomic_store(&d->pa.first_write, UINT64_MAX);
		weft_load *l;
		if ((d->create_rc = weft_load_create(&l, &d->cfg)) < 0)
			break;
		uint64_t t0 = weft_now_ns();
		d->rc = weft_load_run(l, d->res);
		weft_load_destroy(l);
		uint64_t w = atomic_load(&d->pa.first_write);
		if (d->res->counts.requests != 1)
			d->rc = -999;
		if (w != UINT64_MAX && w - t0 < best)
			best = w - t0;
	}
	d->last_end = best;
	return NULL;
}

static void test_driver_barrier_opens_at_once(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.conns = 2;
	d->cfg.requests = 1;
	d->cfg.duration_ns = WEFT_FOREVER;
	weft_test_run_loops(2, barrier_runs, d);
	print_message("run to first request: %.3f ms at best\n", d->last_end / 1e6);
	assert_int_equal(d->create_rc, 0);
	assert_int_equal(d->rc, 0);
	assert_true(d->last_end < 10 * MS);
	drive_free(d);
	server_stop(&s);
}

/* Warm-up then 3 intervals of 100 ms: the intervals are contiguous and add
 * up to the run; warm-up requests are not counted. */
static void test_driver_warmup_intervals(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.conns = 4;
	d->cfg.warmup_ns = 200 * MS;
	d->cfg.duration_ns = 300 * MS;
	d->cfg.interval_ns = 100 * MS;
	d->cfg.on_interval = count_interval;
	d->cfg.interval_arg = d;
	double t0 = now_ms();
	drive_run(d);
	double took = now_ms() - t0;
	assert_true(took >= 500 && took < 3000 * SLOW);
	assert_true(d->res->counts.requests > 0);
	assert_true(d->res->seconds > 0.29 && d->res->seconds < 0.4);
	assert_true(d->contiguous);
	assert_true(d->nint >= 3 && d->nint <= 4);
	assert_int_equal(d->int_requests, d->res->counts.requests);
	assert_int_equal(d->int_hist, weft_hist_count(&d->res->hist));
	assert_int_equal(weft_load_errors(&d->res->counts), 0);
	drive_free(d);
	server_stop(&s);
}

/* Open loop, pipelined: 4000/s over 4 connections for 0.5 s. */
static void test_driver_open_loop_pipelined(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.conns = 4;
	d->cfg.pipeline = 4;
	d->cfg.rate = 4000;
	d->cfg.pacer_mode = WEFT_PACER_POISSON;
	d->cfg.duration_ns = 500 * MS;
	drive_run(d);
	const weft_load_counts *c = &d->res->counts;
	print_message("sent %llu late %llu dropped %llu lag max %.1fus mean %.1fus\n",
		      (unsigned long long)c->sent, (unsigned long long)c->late,
		      (unsigned long long)c->dropped, c->lag_max_ns / 1e3, c->lag_mean_ns / 1e3);
	assert_true(c->sent > 1700 && c->sent < 2300); /* Poisson: ~2000 +- 2.5 sigma */
	assert_true(c->requests <= c->sent && c->requests + 16 >= c->sent);
	assert_int_equal(c->dropped, 0);
	assert_true(c->lag_mean_ns <= (double)c->lag_max_ns);
	assert_int_equal(weft_load_errors(c), 0);
	drive_free(d);
	server_stop(&s);
}

/* timeout_ns WEFT_FOREVER is no response limit ("Timeouts and
 * deadlines" in weft.h), in a closed loop and in an open one: every
 * request answered, none counted as a timeout. */
static void test_driver_no_response_limit(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	for (int open = 0; open < 2; open++) {
		struct drive *d = drive_new(&s);
		d->cfg.conns = 2;
		d->cfg.timeout_ns = WEFT_FOREVER;
		if (open) {
			d->cfg.rate = 2000;
			d->cfg.duration_ns = 100 * MS;
		} else {
			d->cfg.requests = 200;
			d->cfg.duration_ns = WEFT_FOREVER;
		}
		drive_run(d);
		const weft_load_counts *c = &d->res->counts;
		if (open)
			assert_true(c->requests > 100 && c->requests <= c->sent);
		else
			assert_int_equal(c->requests, 200);
		assert_int_equal(c->timeouts, 0);
		assert_int_equal(weft_load_errors(c), 0);
		drive_free(d);
	}
	server_stop(&s);
}

/* The open loop's counts are the measured window's: slots the pacer
 * drops during the warm-up are not counted, as their sends would not
 * be.  The client stalls 80 ms (its first write blocks the loop) early
 * in a 200 ms warm-up with a 20 ms drop limit at 1000/s: some 60 slots
 * dropped there, none (a few at most on a loaded machine) after. */
static int stall_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	_Atomic bool *stalled = arg;
	if (!atomic_exchange(stalled, true))
		msleep(80);
	return write_pings(s, n);
}

static void test_driver_warmup_drops_not_counted(void **state)
{
	(void)state;
	static const weft_load_proto stall_proto = {
		.name = "stall", .write = stall_write, .parse = ping_parse,
	};
	static _Atomic bool stalled;
	atomic_store(&stalled, false);
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.proto = &stall_proto;
	d->cfg.proto_arg = (void *)&stalled;
	d->cfg.conns = 1;
	d->cfg.rate = 1000;
	d->cfg.max_lag_ns = 20 * MS;
	d->cfg.warmup_ns = 200 * MS;
	d->cfg.duration_ns = 100 * MS;
	drive_run(d);
	const weft_load_counts *c = &d->res->counts;
	print_message("sent %llu, dropped %llu\n", (unsigned long long)c->sent,
		      (unsigned long long)c->dropped);
	assert_true(atomic_load(&stalled));
	assert_true(c->sent > 50);
	assert_true(c->dropped < 10);
	drive_free(d);
	server_stop(&s);
}

/* Errors are the measured window's too, as requests and drops are: a
 * write that fails and a malformed answer, both early in a 150 ms
 * warm-up, are not counted (each reopens the connection, which then
 * runs cleanly). */
struct flaky {
	_Atomic unsigned writes, parses;
};

static int flaky_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	struct flaky *f = arg;
	if (atomic_fetch_add(&f->writes, 1) == 0)
		return -EIO;
	return write_pings(s, n);
}

static ssize_t flaky_parse(void *arg, void *state, const char *buf, size_t len, size_t *need,
			   unsigned *flags)
{
	struct flaky *f = arg;
	ssize_t r = ping_parse(arg, state, buf, len, need, flags);
	if (r > 0 && atomic_fetch_add(&f->parses, 1) == 0)
		return -EBADMSG;
	return r;
}

static void test_driver_warmup_errors_not_counted(void **state)
{
	(void)state;
	static const weft_load_proto flaky_proto = {
		.name = "flaky", .write = flaky_write, .parse = flaky_parse,
	};
	static struct flaky f;
	atomic_store(&f.writes, 0);
	atomic_store(&f.parses, 0);
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.proto = &flaky_proto;
	d->cfg.proto_arg = &f;
	d->cfg.conns = 1;
	d->cfg.warmup_ns = 150 * MS;
	d->cfg.duration_ns = 100 * MS;
	drive_run(d);
	const weft_load_counts *c = &d->res->counts;
	print_message("read errors %llu, parse errors %llu, requests %llu\n",
		      (unsigned long long)c->read_errors, (unsigned long long)c->parse_errors,
		      (unsigned long long)c->requests);
	assert_true(atomic_load(&f.parses) > 1); /* both failures happened */
	assert_int_equal(c->read_errors, 0);
	assert_int_equal(c->parse_errors, 0);
	assert_int_equal(weft_load_errors(c), 0);
	assert_true(c->requests > 0);
	drive_free(d);
	server_stop(&s);
}

/* A stop from a foreign thread ends a 30 s run at once. */
static void test_driver_stop_from_thread(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.conns = 2;
	d->cfg.duration_ns = 30000 * MS;
	d->stop_after_ms = 200;
	double t0 = now_ms();
	drive_run(d);
	assert_true(now_ms() - t0 < 2000 * SLOW);
	assert_true(d->res->stopped);
	assert_true(d->res->counts.requests > 0);
	drive_free(d);
	server_stop(&s);
}

/* The calling task cancelled after a stop (a SIGINT handler's stop, then
 * the program cancelling its tasks): the run still returns -ECANCELED, as
 * any cancelled wait does, with *res filled (nothing is dropped). */
struct run_task {
	weft_load *l;
	weft_load_result *res;
	int rc;
	bool shield;  /* the run inside weft_shield_begin/end */
	int after_rc; /* the task's next wait after the run */
};

static void *run_task_main(void *arg)
{
	struct run_task *r = arg;
	if (r->shield)
		weft_shield_begin();
	r->rc = weft_load_run(r->l, r->res);
	if (r->shield)
		weft_shield_end();
	r->after_rc = weft_sleep_ms(1);
	return NULL;
}

/* Run in a task (shielded with `shield`) and cancel it after_ms later
 * (after a weft_load_stop with `stop`); d->last_end: how long the
 * cancelled run then took to return. */
static void *cancel_run(struct drive *d, unsigned after_ms, bool stop, bool shield)
{
	if ((d->create_rc = weft_load_create(&d->l, &d->cfg)) < 0)
		return NULL;
	struct run_task r = { d->l, d->res, 1, shield, 1 };
	weft_task *t;
	if (weft_task_spawn(&t, run_task_main, &r) < 0)
		return NULL;
	weft_sleep_ms(after_ms);
	if (stop)
		weft_load_stop(d->l);
	uint64_t t0 = weft_now_ns();
	weft_task_cancel(t);
	weft_task_join(t, NULL);
	d->last_end = weft_now_ns() - t0;
	weft_task_release(t);
	d->rc = r.rc;
	d->after_rc = r.after_rc;
	weft_load_destroy(d->l);
	return NULL;
}

static void *cancel_after_stop(void *arg)
{
	return cancel_run(arg, 100, true, false);
}

/* Run `fn` (a cancel_run) with 2 connections for duration_ns; checks
 * what every cancelled run gives: its requests in *res. */
static struct drive *cancelled_run(struct server *s, uint64_t duration_ns, weft_fn fn)
{
	struct drive *d = drive_new(s);
	d->cfg.conns = 2;
	d->cfg.duration_ns = duration_ns;
	weft_test_run_loops(2, fn, d);
	print_message("run returned %s (next wait %s), stopped %d, %llu requests in %.3fs\n",
		      weft_strerror(d->rc), weft_strerror(d->after_rc), d->res->stopped,
		      (unsigned long long)d->res->counts.requests, d->res->seconds);
	assert_int_equal(d->create_rc, 0);
	assert_true(d->res->counts.requests > 0);
	return d;
}

static void test_driver_cancel_after_stop(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = cancelled_run(&s, 30000 * MS, cancel_after_stop);
	assert_int_equal(d->rc, -ECANCELED);
	assert_true(d->res->stopped);
	drive_free(d);
	server_stop(&s);
}

/* A caller that shields the run and is cancelled during it: weft.h's
 * shield holds (no suspension point inside returns -ECANCELED), so the run
 * is not cut and returns 0, and the cancellation comes at the caller's
 * first wait after the shield, as after any other shielded wait. */
static void *cancel_shielded(void *arg)
{
	return cancel_run(arg, 50, false, true);
}

static void test_driver_caller_shielded(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = cancelled_run(&s, 300 * MS, cancel_shielded);
	assert_int_equal(d->rc, 0);
	assert_int_equal(d->after_rc, -ECANCELED);
	assert_false(d->res->stopped);
	assert_true(d->res->seconds > 0.25); /* its whole duration */
	drive_free(d);
	server_stop(&s);
}

/* The caller's deadline scope expiring mid-run: every wait of the driver
 * then returns -ETIMEDOUT at once.  The run must stop its connections and
 * return that -ETIMEDOUT promptly, *res filled with what was measured (the
 * intervals handed over add up to it), rather than take the expired scope
 * for its own timer's tick and spin until the duration.  The load is a
 * light open loop, so the process's CPU time over the call is the
 * driver's: a spinning driver shows as CPU time close to the wall time. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct scoped {
	struct drive *d;
	uint64_t scope_ns;
	int exit_rc;
	double wall_s, cpu_s;
};

static void *scoped_run(void *arg)
{
	struct scoped *sc = arg;
	struct drive *d = sc->d;
	if ((d->create_rc = weft_load_create(&d->l, &d->cfg)) < 0)
		return NULL;
	weft_scope scope;
	weft_scope_enter(&scope, sc->scope_ns);
	double c0 = cpu_s();
	uint64_t t0 = weft_now_ns();
	d->rc = weft_load_run(d->l, d->res);
	sc->wall_s = (double)(weft_now_ns() - t0) / 1e9;
	sc->cpu_s = cpu_s() - c0;
	sc->exit_rc = weft_scope_exit(&scope);
	weft_load_destroy(d->l);
	return NULL;
}

static void test_driver_caller_scope_expires(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	struct drive *d = drive_new(&s);
	d->cfg.conns = 2;
	d->cfg.rate = 400;
	d->cfg.duration_ns = 3000 * MS;
	d->cfg.interval_ns = 40 * MS;
	d->cfg.on_interval = count_interval;
	d->cfg.interval_arg = d;
	struct scoped sc = { .d = d, .scope_ns = 150 * MS };
	weft_test_run_loops(2, scoped_run, &sc);
	print_message("run returned %s after %.3fs (cpu %.3fs), %llu requests in %.3fs, "
		      "%u intervals\n",
		      weft_strerror(d->rc), sc.wall_s, sc.cpu_s,
		      (unsigned long long)d->res->counts.requests, d->res->seconds, d->nint);
	assert_int_equal(d->create_rc, 0);
	assert_int_equal(d->rc, -ETIMEDOUT);
	assert_int_equal(sc.exit_rc, 1); /* the scope says it fired */
	/* promptly: well before the 3 s duration, and without spinning */
	assert_true(sc.wall_s < 1.0);
	assert_true(sc.cpu_s < sc.wall_s / 2 + 0.1);
	/* what was measured is there, and the intervals add up to it */
	assert_true(d->res->counts.requests > 0);
	assert_int_equal(d->int_requests, d->res->counts.requests);
	assert_true(d->contiguous);
	assert_true(d->res->seconds > 0 && d->res->seconds < 0.5);
	assert_int_equal(d->res->connected, 2);
	drive_free(d);
	server_stop(&s);
}

/* The start barrier held by connections still being set up (conn_init
 * waits for ever): the caller's cancellation, or its scope expiring, ends
 * the run at once with -ECANCELED / -ETIMEDOUT.  Connections that have no
 * request in flight are cancelled without the timeout_ns grace (2 s
 * here), which is for in-flight requests. */
static int stuck_init(void *arg, unsigned conn, void **state)
{
	return weft_sleep_ms(60000); /* -ECANCELED when the run stops it */
}

/* One that turns the stop's cancellation into an error of its own, as a
 * protocol's handshake may: not a connect error of the run. */
static int eio_init(void *arg, unsigned conn, void **state)
{
	return weft_sleep_ms(60000) < 0 ? -EIO : 0;
}

static void *cancel_in_barrier(void *arg)
{
	return cancel_run(arg, 50, false, false);
}

static void test_driver_caller_ends_barrier(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	static const weft_load_proto stuck_proto = {
		.conn_init = stuck_init, .write = ping_write, .parse = ping_parse,
	};
	static const weft_load_proto eio_proto = {
		.conn_init = eio_init, .write = ping_write, .parse = ping_parse,
	};
	for (int run = 0; run < 3; run++) {
		int scoped = run == 1;
		struct drive *d = drive_new(&s);
		d->cfg.proto = run == 2 ? &eio_proto : &stuck_proto;
		d->cfg.conns = 2;
		d->cfg.duration_ns = 3000 * MS;
		d->cfg.connect_timeout_ns = 3000 * MS;
		struct scoped sc = { .d = d, .scope_ns = 50 * MS };
		if (scoped) {
			weft_test_run_loops(2, scoped_run, &sc);
			uint64_t wall = (uint64_t)(sc.wall_s * 1e9);
			d->last_end = wall > 50 * MS ? wall - 50 * MS : 0;
		} else {
			weft_test_run_loops(2, cancel_in_barrier, d);
		}
		print_message("%s in the barrier: %s, %.3fs after it\n",
			      scoped ? "scope expired" : "cancelled", weft_strerror(d->rc),
			      d->last_end / 1e9);
		assert_int_equal(d->create_rc, 0);
		assert_int_equal(d->rc, scoped ? -ETIMEDOUT : -ECANCELED);
		assert_true(d->last_end < 1000 * MS); /* not timeout_ns's 2 s */
		assert_int_equal(d->res->counts.requests, 0);
		assert_int_equal(d->res->connected, 0);
		/* a set-up the stop ended is not a failed connect */
		assert_int_equal(d->res->counts.connect_errors, 0);
		assert_int_equal(d->res->connect_error, 0);
		drive_free(d);
	}
	server_stop(&s);
}

/* Nothing listening: every connection fails, the barrier still opens, the
 * run ends on time with connect errors counted. */
static void test_driver_refused(void **state)
{
	(void)state;
	struct server s = { .port = free_port() };
	struct drive *d = drive_new(&s);
	d->cfg.conns = 3;
	d->cfg.duration_ns = 200 * MS;
	drive_run(d);
	assert_int_equal(d->res->counts.requests, 0);
	assert_true(d->res->counts.connect_errors >= 3);
	/* what a caller needs to say so: none connected, and why */
	assert_int_equal(d->res->connected, 0);
	assert_int_equal(d->res->connect_error, -ECONNREFUSED);
	drive_free(d);
}

static void test_driver_bad_config(void **state)
{
	(void)state;
	weft_sockaddr addr;
	weft_addr_ip(&addr, "127.0.0.1", 1);
	weft_load_config c;
	weft_load *l = NULL;
#define BAD(stmt)                                                          \
	do {                                                               \
		weft_load_config_init(&c);                                 \
		c.addr = &addr;                                            \
		c.proto = &ping_proto;                                     \
		stmt;                                                      \
		assert_int_equal(weft_load_create(&l, &c), -EINVAL);       \
	} while (0)
	BAD(c.addr = NULL);
	BAD(c.proto = NULL);
	BAD(c.conns = 0);
	BAD(c.pipeline = 0);
	BAD(c.pipeline = 1025);
	BAD(c.rate = -1);
	BAD(c.rate = NAN);
	BAD(c.rate = INFINITY);
	BAD(c.pacer_mode = 5);
	BAD(c.interval_ns = 1000);
	BAD(c.progress = 2);
	BAD(c.reserved[3] = 1);
	static const weft_load_proto noparse = { .write = ping_write };
	BAD(c.proto = &noparse);
	/* TCP only: a Unix address was taken, then every connect failed */
	weft_sockaddr unix_addr;
	assert_int_equal(weft_addr_unix(&unix_addr, "/tmp/weft-load-unix"), 0);
	BAD(c.addr = &unix_addr);
#undef BAD
	weft_load_config_init(&c);
	c.addr = &addr;
	c.proto = &ping_proto;
	assert_int_equal(weft_load_create(&l, &c), 0);
	assert_int_equal(weft_load_run(l, NULL), -EPERM); /* not in a task */
	assert_int_equal(weft_load_stop(NULL), -EINVAL);
	weft_load_destroy(l);
	weft_load_destroy(NULL);
}


/* examples/load_incr, docs/load.md's whole custom-protocol generator:
 * against kv_server, closed and open loop, its .hlog read back. */
static void test_example_load_incr(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "kv_server", NULL);
	char port[16], out[8192], path[] = "/tmp/weft-load-incr-XXXXXX";
	snprintf(port, sizeof(port), "%u", s.port);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	const char *closed[] = { example("load_incr"), "127.0.0.1", port, "4", "1.5", "0", path,
				 NULL };
	assert_int_equal(run(closed, out, sizeof(out), 20000 * SLOW), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "  0 "));
	assert_non_null(strstr(out, " errors 0\n"));
	const char *open_[] = { example("load_incr"), "127.0.0.1", port, "4", "1", "1000", NULL };
	assert_int_equal(run(open_, out, sizeof(out), 20000 * SLOW), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, " sent, "));
	server_stop(&s);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[8192];
	unsigned tagged = 0;
	weft_hist *h = hist_new();
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Tag=incr,", 9) == 0) {
			const char *enc = strrchr(line, ',') + 1;
			assert_true(weft_hist_decode(h, enc, strcspn(enc, "\n")) > 0);
			tagged++;
		}
	fclose(f);
	unlink(path);
	assert_int_equal(tagged, 2); /* 1 s and 0.5 s */
	free(h);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_hist_bad_inputs),
	cmocka_unit_test(test_hist_merge_and_iterate),
	cmocka_unit_test(test_hdr_roundtrip),
	cmocka_unit_test_setup_teardown(test_hdr_python_decodes, setup, teardown),
	cmocka_unit_test_setup_teardown(test_hdr_other_precision, setup, teardown),
	cmocka_unit_test(test_hlog_write),
	cmocka_unit_test(test_pacer_accounting),
	cmocka_unit_test(test_pacer_poisson),
	cmocka_unit_test(test_pacer_tiny_rate),
	cmocka_unit_test_setup_teardown(test_driver_count_and_barrier, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_barrier_opens_at_once, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_warmup_intervals, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_open_loop_pipelined, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_stop_from_thread, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_cancel_after_stop, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_caller_shielded, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_caller_scope_expires, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_caller_ends_barrier, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_no_response_limit, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_warmup_drops_not_counted, setup, teardown),
	cmocka_unit_test_setup_teardown(test_driver_warmup_errors_not_counted, setup, teardown),
	cmocka_unit_test(test_driver_refused),
	cmocka_unit_test(test_driver_bad_config),
	cmocka_unit_test_setup_teardown(test_example_load_incr, setup, teardown),
};

WEFT_TEST_MAIN(tests)
