/*
 * weft/load.h — building blocks for load generators (weft-load is built
 * on them; docs/load.md has a whole custom-protocol generator).
 *
 *  - weft_hist: a latency histogram with bounded relative error (1/128),
 *    fixed size, no allocation, mergeable; percentiles; JSON; HdrHistogram's
 *    V2 compressed encoding and interval log (.hlog) format, both ways.
 *  - weft_pacer: an open-loop schedule of intended send times (constant
 *    rate or Poisson), with the lag behind it accounted (late and dropped
 *    sends), so a client that cannot keep up says so.
 *  - weft_load: the run driver: N connections over the loops, a start
 *    barrier, warm-up, a duration or a request count, closed or open loop,
 *    pipelining, per-loop results merged, an interval callback, a progress
 *    line, and a stop from any thread.
 *  - weft_load_proto: a protocol is two callbacks: queue n requests on a
 *    stream, and parse one response out of the stream's buffered bytes.
 *
 * Times are nanoseconds on the weft_now_ns() clock unless a name says
 * otherwise.  Conventions are weft.h's (-errno returns, -EINVAL for bad
 * arguments, timeouts as in "Timeouts and deadlines").
 */
#ifndef WEFT_LOAD_H
#define WEFT_LOAD_H

#include "../weft.h" /* includes weft/net.h and weft/stream.h */

#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Histogram                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * HdrHistogram's layout with 2 significant digits (256 sub-buckets): values
 * 0..255 are exact; above, 128 slots per power of two, so a slot is at most
 * 1/128 of its smallest value wide.  Slot i here is index i of
 * HdrHistogram's counts array for (lowest 1, 2 digits), which is why the
 * V2 encoding below is a plain walk over `counts`.
 *
 * Values up to WEFT_HIST_TRACK_MAX (2^41 - 1 ns, 36 minutes) have their
 * slot; larger ones are counted in the top slot (and in `clamped`), with
 * min, max and the mean still exact.
 *
 * Percentiles are nearest rank: the value at rank ceil(p/100 * count),
 * reported as the highest value of its slot (as HdrHistogram does) and
 * never above the exact max: >= the true percentile, by less than 1/128.
 *
 * The struct is public so that it can live in arrays and on the heap
 * without a constructor; treat the fields as read-only (the functions keep
 * them consistent).  About 35 KiB: keep it off 64 KiB task stacks.
 * Threading: none; one writer at a time, merge after the writers stop.
 */
#define WEFT_HIST_SUB_BITS 7
#define WEFT_HIST_TRACK_BITS 41
#define WEFT_HIST_TRACK_MAX ((UINT64_C(1) << WEFT_HIST_TRACK_BITS) - 1)
#define WEFT_HIST_SLOTS \
	(((WEFT_HIST_TRACK_BITS - WEFT_HIST_SUB_BITS) << WEFT_HIST_SUB_BITS) + \
	 (1u << WEFT_HIST_SUB_BITS))

typedef struct weft_hist {
	uint64_t counts[WEFT_HIST_SLOTS];
	uint64_t total;   /* values recorded */
	uint64_t min;     /* UINT64_MAX while empty */
	uint64_t max;     /* 0 while empty */
	uint64_t clamped; /* values above WEFT_HIST_TRACK_MAX */
	uint64_t sum_lo;  /* the exact sum of the values, for the mean: */
	uint64_t sum_hi;  /* sum_hi * 2^64 + sum_lo (never wraps: at most
			     UINT64_MAX values of at most UINT64_MAX each) */
} weft_hist;

/* Empty h.  Any thread. */
WEFT_API void weft_hist_init(weft_hist *h);

/* Record v once, or n times.  Returns 0, -EINVAL (h NULL), -EOVERFLOW (the
 * total count would pass UINT64_MAX: nothing recorded).  n == 0 records
 * nothing and returns 0. */
WEFT_API int weft_hist_record(weft_hist *h, uint64_t v);
WEFT_API int weft_hist_record_n(weft_hist *h, uint64_t v, uint64_t n);

/*
 * HdrHistogram's recordCorrectedValue, for closed-loop measurements: v,
 * and when v exceeds `interval` (the expected time between requests), the
 * latencies the requests that would have been sent during the stall would
 * have seen: v - interval, v - 2 interval, ... down to interval.  interval
 * 0 records v alone.  Returns as weft_hist_record.  (Open-loop runs
 * measure from the intended send time instead and need no correction.)
 */
WEFT_API int weft_hist_record_corrected(weft_hist *h, uint64_t v, uint64_t interval);

/* Add src's values to dst.  Returns 0, -EINVAL (NULL), -EOVERFLOW (a count
 * would wrap: dst unchanged).  dst == src doubles every count. */
WEFT_API int weft_hist_merge(weft_hist *dst, const weft_hist *src);

/* Count, exact min and max (0 when empty), mean and standard deviation
 * (from the slots' midpoints around the exact mean, as HdrHistogram;
 * 0 when empty). */
WEFT_API uint64_t weft_hist_count(const weft_hist *h);
WEFT_API uint64_t weft_hist_min(const weft_hist *h);
WEFT_API uint64_t weft_hist_max(const weft_hist *h);
WEFT_API double weft_hist_mean(const weft_hist *h);
WEFT_API double weft_hist_stddev(const weft_hist *h);

/* Percentile p in [0, 100]: 0 gives the exact min, 100 the exact max; p
 * below 0 or NaN counts as 0, above 100 as 100.  0 when h is empty or
 * NULL. */
WEFT_API uint64_t weft_hist_percentile(const weft_hist *h, double p);

/* The lowest and highest value counted in slot i (i < WEFT_HIST_SLOTS),
 * and the slot of v. */
WEFT_API uint64_t weft_hist_slot_lowest(unsigned i);
WEFT_API uint64_t weft_hist_slot_highest(unsigned i);
WEFT_API unsigned weft_hist_slot(uint64_t v);

/* Iterate the non-empty slots in increasing order: start with *slot = 0;
 * each call that returns true sets *value (the slot's highest value, capped
 * at the exact max) and *count, and moves *slot past it.  false at the
 * end.  For exporting the distribution (Locust's response_times). */
WEFT_API bool weft_hist_next(const weft_hist *h, unsigned *slot, uint64_t *value,
			     uint64_t *count);

/*
 * One JSON object of the distribution, values divided by `unit` (1 for
 * ns, 1000 for us, 1e6 for ms; > 0) with 3 decimals:
 *   {"min":..,"mean":..,"p50":..,"p90":..,"p99":..,"p999":..,"max":..,
 *    "p9999":..,"stddev":..,"count":N}
 * Written as snprintf does: at most cap bytes (NUL included) to buf (buf
 * may be NULL with cap 0), returns the length the whole object needs
 * (without the NUL), or -EINVAL.
 */
WEFT_API ssize_t weft_hist_json(const weft_hist *h, double unit, char *buf, size_t cap);

/*
 * HdrHistogram's V2 compressed encoding (encodeIntoCompressedByteBuffer:
 * the counts as zig-zag LEB128 with runs of zeros folded, deflated with
 * zlib, behind the two cookies), in base64 as .hlog lines carry it.
 * snprintf-style as weft_hist_json; -ENOMEM if the encoder cannot
 * allocate, -EINVAL.
 */
WEFT_API ssize_t weft_hist_encode(const weft_hist *h, char *buf, size_t cap);

/*
 * Decode a base64 V2 compressed histogram (weft_hist_encode's, or any
 * HdrHistogram's with lowest discernible value >= 1, any significant
 * digits, integer values) and add its counts to h: each source bucket is
 * recorded at its highest equivalent value, so a histogram of another
 * precision is re-bucketed into this one (min, max and the mean then come
 * from those highest equivalent values, the encoding carries no exact
 * ones).  For merging interval logs: decode each into one histogram.
 * Returns the number of values added, -EBADMSG (not base64, a bad cookie,
 * a corrupt stream), -ENOTSUP (a double histogram, a normalizing offset),
 * -EOVERFLOW, -ENOMEM, -EINVAL.  On an error h is unchanged.
 */
WEFT_API int64_t weft_hist_decode(weft_hist *h, const char *b64, size_t len);

/*
 * HdrHistogram's interval log (.hlog, log format 1.3), readable by its
 * HistogramLogProcessor and HistogramLogAnalyzer.  The header is
 *   #[Histogram log format version 1.3]
 *   #[StartTime: <start_unix_s> (seconds since epoch), <date>]
 *   #[BaseTime: <start_unix_s> (seconds since epoch)]
 *   "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
 * and each interval one line
 *   [Tag=<tag>,]<start_s>,<length_s>,<max_ms>,<base64 histogram>
 * with start_s relative to BaseTime, the max in milliseconds (values are
 * nanoseconds; HdrHistogram's default max-value ratio of 1e6).  tag NULL
 * or "" writes none; a tag may not hold ',', ' ' or a newline (-EINVAL).
 * Returns 0, -EIO (the stream failed), -EINVAL, -ENOMEM.  The FILE is
 * buffered as stdio buffers it: a failed write (a full disk) shows once
 * stdio writes the buffer out, at a later call or at the caller's fflush
 * or fclose, which the caller checks.  Not thread-safe on one FILE beyond
 * what stdio locks.
 */
WEFT_API int weft_hlog_write_header(FILE *f, double start_unix_s);
WEFT_API int weft_hlog_write_interval(FILE *f, const char *tag, double start_s, double length_s,
				      const weft_hist *h);

/* ------------------------------------------------------------------------ */
/* Pacer: the open loop's schedule                                           */
/* ------------------------------------------------------------------------ */

enum {
	WEFT_PACER_CONSTANT = 0, /* one send every 1/rate s */
	WEFT_PACER_POISSON = 1,  /* exponential gaps of mean 1/rate s */
};

/*
 * A schedule of intended send times from `start_ns` at `rate` sends/s.
 * Latency is measured from the intended time (wrk2's correction for
 * coordinated omission): a send that goes out late has its lag charged to
 * its latency.  The pacer also accounts the lag itself: a send more than
 * late_ns behind its slot is `late`; one more than max_lag_ns behind is not
 * sent at all but `dropped` (k6's dropped iterations), so a client that
 * saturates reports so rather than a quiet tail.  Fields are public for
 * reading; set them only through the functions.  One task at a time.
 */
typedef struct weft_pacer {
	uint64_t next_ns;     /* the next intended send time */
	uint64_t gap_ns;      /* mean gap, 1e9 / rate */
	uint64_t late_ns;     /* lag that counts as late (1 ms by default) */
	uint64_t max_lag_ns;  /* lag past which a slot is dropped
				 (WEFT_FOREVER by default: never) */
	uint64_t rng;         /* Poisson: the generator's state */
	int mode;             /* WEFT_PACER_* */
	uint64_t sent;        /* slots taken (sent) */
	uint64_t late;        /* of them, more than late_ns behind */
	uint64_t dropped;     /* slots skipped, more than max_lag_ns behind */
	uint64_t lag_max_ns;  /* the largest lag of a sent slot */
	uint64_t lag_sum_ns;  /* of the sent slots' lags, for the mean
				 (stays at UINT64_MAX: 584 years) */
} weft_pacer;

/* Start a schedule: the first slot at start_ns.  seed picks the Poisson
 * gaps (any value; the same seed, the same gaps).  Returns 0, -EINVAL
 * (rate not > 0 or above 1e9, or not finite; a bad mode).  Any thread. */
WEFT_API int weft_pacer_init(weft_pacer *p, double rate, uint64_t start_ns, int mode,
			     uint64_t seed);

/* Set the late threshold and the drop threshold (WEFT_FOREVER: never
 * drop).  Returns 0, -EINVAL. */
WEFT_API int weft_pacer_set_limits(weft_pacer *p, uint64_t late_ns, uint64_t max_lag_ns);

/*
 * Take the next slot as of now_ns, without waiting: true with its intended
 * time in *intended_ns (may be NULL), or false if it is not due yet (or p
 * is NULL).  Slots more than max_lag_ns behind now_ns are skipped and
 * counted as dropped first.  The slot taken is accounted as sent with lag
 * now_ns - intended.  Any thread (one at a time per pacer).
 */
WEFT_API bool weft_pacer_take(weft_pacer *p, uint64_t now_ns, uint64_t *intended_ns);

/*
 * Wait for the next slot (a suspension point: weft_sleep_until) and take
 * it: 0 with *intended_ns set, or -ECANCELED / -ETIMEDOUT from the sleep
 * (no slot taken), -EINVAL.  Task context.
 */
WEFT_API int weft_pacer_wait(weft_pacer *p, uint64_t *intended_ns);

/* Add src's accounting (sent, late, dropped, lag) to dst: for merging the
 * connections' pacers.  The schedule fields of dst are untouched. */
WEFT_API void weft_pacer_merge_stats(weft_pacer *dst, const weft_pacer *src);

/* ------------------------------------------------------------------------ */
/* Protocols                                                                 */
/* ------------------------------------------------------------------------ */

/* What parse says of a whole response (its *flags). */
enum {
	WEFT_LOAD_RESP_FAILED = 1, /* an error answer (non-2xx, Redis -ERR,
				      memcached ERROR...): counted in `failed` */
};

/*
 * A protocol: how to queue requests on a connection and find the end of
 * each response in the received bytes.  The driver owns the connection and
 * its reading; with pipelining it asks for n requests at once, then parses
 * n responses in order.
 *
 *   conn_init  (optional) per-connection state: *state (NULL to start),
 *              the connection's index; called in the connection's task each
 *              time it connects, before any request.  0 or -errno (the
 *              connection is closed and counted as a connect error, unless
 *              the run is stopping: a conn_init that suspends is cancelled
 *              by the stop, and what it returns then counts as nothing).
 *   conn_fini  (optional) frees what conn_init made; called after the
 *              connection closes.
 *   write      queue n >= 1 requests on s (weft_stream_write / writev /
 *              reserve+commit; never waits).  0 or -errno.
 *   parse      look at the buffered bytes buf[0..len): a whole response at
 *              their head returns its length (> 0; the driver consumes it)
 *              and may set *flags; not yet whole returns 0, after setting
 *              *need to the total length the response will have if known
 *              (then the driver receives until that many bytes are buffered,
 *              past the stream's limit if need be), else leaving it 0 (the
 *              driver receives once more); a malformed response returns
 *              -EBADMSG (the connection is dropped and counted as a parse
 *              error).  len may be 0.  Also counted as parse errors: any
 *              other negative return, a length past len, a *need over
 *              256 MiB, and a response that outgrows the stream's 64 KiB
 *              limit without a *need (announce long responses with it).
 *
 * `arg` is weft_load_config.proto_arg, shared by every connection on every
 * loop: the callbacks may read it, and must keep anything they change in
 * the connection's state.
 */
typedef struct weft_load_proto {
	const char *name;
	int (*conn_init)(void *arg, unsigned conn, void **state);
	void (*conn_fini)(void *arg, void *state);
	int (*write)(void *arg, void *state, weft_stream *s, unsigned n);
	ssize_t (*parse)(void *arg, void *state, const char *buf, size_t len, size_t *need,
			 unsigned *flags);
} weft_load_proto;

/* ------------------------------------------------------------------------ */
/* Run driver                                                                */
/* ------------------------------------------------------------------------ */

/* Counts of a run or of an interval: the measured window's.  Requests,
 * sends and drops are counted by their (intended) send times, errors by
 * the send of the request they cost (else by when they happened), so the
 * warm-up's count in none of them; the first connects', made before the
 * warm-up, do (they say whether the server can be reached at all). */
typedef struct weft_load_counts {
	uint64_t requests;       /* answered and measured */
	uint64_t failed;         /* of them, error answers (WEFT_LOAD_RESP_FAILED) */
	uint64_t bytes_in;       /* response bytes parsed */
	uint64_t connect_errors; /* connects that failed (or conn_init) */
	uint64_t read_errors;    /* resets, ends of input, write errors */
	uint64_t timeouts;       /* responses not in within timeout_ns */
	uint64_t parse_errors;   /* parse returned -EBADMSG */
	uint64_t sent;           /* open loop: sends (the pacers' slots) */
	uint64_t late;           /* open loop: sends more than late_ns late */
	uint64_t dropped;        /* open loop: slots dropped (max_lag_ns);
				    as `sent`, of the measured window */
	uint64_t lag_max_ns;     /* open loop: the largest send lag */
	double lag_mean_ns;      /* open loop: the mean send lag */
} weft_load_counts;

/* connect + read + timeouts + parse errors + failed answers. */
WEFT_API uint64_t weft_load_errors(const weft_load_counts *c);

/* Add src's counts to dst, as for two runs side by side: sums, the larger
 * lag_max_ns, lag_mean_ns weighted by the sends.  NULL is a no-op.  Any
 * thread; one writer of dst at a time. */
WEFT_API void weft_load_counts_add(weft_load_counts *dst, const weft_load_counts *src);

/* What the interval callback gets: the window [start_ns, end_ns) (weft_now_ns
 * times; the first starts when measuring starts), the merged histogram and
 * the counts of that window only. */
typedef struct weft_load_interval {
	uint64_t start_ns, end_ns;
	const weft_hist *hist;
	const weft_load_counts *counts;
	unsigned index; /* 0, 1, ... */
} weft_load_interval;

typedef struct weft_load_config {
	const weft_sockaddr *addr;   /* where to connect (TCP; copied) */
	const weft_load_proto *proto;
	void *proto_arg;
	unsigned conns;              /* connections (>= 1), round robin over
					the loops, each a task pinned to its
					loop */
	unsigned pipeline;           /* requests in flight per connection
					(1..1024; default 1) */
	uint64_t duration_ns;        /* measured time, after the warm-up
					(WEFT_FOREVER: until `requests` or a
					stop; default 10 s) */
	uint64_t warmup_ns;          /* run this long first, unmeasured (0) */
	uint64_t requests;           /* stop after this many measured
					requests (0: no count) */
	double rate;                 /* open loop: sends/s in total over the
					connections (0: closed loop) */
	int pacer_mode;              /* WEFT_PACER_* (CONSTANT) */
	uint64_t late_ns, max_lag_ns; /* weft_pacer_set_limits (1 ms, never) */
	uint64_t timeout_ns;         /* a response not in this long: a timeout
					error, the connection is reopened
					(2 s); also how long in-flight
					requests may finish after the end */
	uint64_t connect_timeout_ns; /* each connect (the timeout) */
	uint64_t interval_ns;        /* on_interval's period (0: none) */
	void (*on_interval)(void *arg, const weft_load_interval *iv);
	void *interval_arg;          /* called from the task running
					weft_load_run, between intervals: it
					may block briefly, not for long */
	int progress;                /* a progress line on stderr every
					second: 1 yes, 0 no, -1 (default) if
					stderr is a terminal */
	uint64_t seed;               /* Poisson gaps (connection i: seed + i) */
	unsigned reserved[8];        /* must be zero */
} weft_load_config;

/* Fill cfg with the defaults above (addr and proto NULL, 10 connections).
 * Any thread. */
WEFT_API void weft_load_config_init(weft_load_config *cfg);

/* A run's outcome: the latency of every measured request (from the send in
 * a closed loop, from the intended send time in an open one), the counts,
 * and the measured window in seconds (to the last answer with a request
 * count, or to the stop).  `connected` 0 means nothing was loaded at all
 * (a load generator should fail then, as wrk does on "unable to connect";
 * connect_error says why). */
typedef struct weft_load_result {
	weft_hist hist;
	weft_load_counts counts;
	double seconds;
	unsigned loops;     /* loops the connections ran on */
	bool stopped;       /* weft_load_stop ended it early */
	unsigned connected; /* connections that connected at least once */
	int connect_error;  /* the first failed connect's -errno (or
			       conn_init's), 0 if none failed */
} weft_load_result;

typedef struct weft_load weft_load;

/* A run, not started: validates and copies cfg.  Returns 0 with *out set
 * (free it with weft_load_destroy), -EINVAL (a bad field: no addr or proto,
 * an addr that is not IPv4 or IPv6, no write or parse, conns 0, pipeline 0
 * or > 1024, rate < 0, not finite or above 1e9, a bad pacer_mode, an
 * interval_ns without on_interval, progress not -1, 0 or 1, a reserved
 * field set), -ENOMEM.  Any thread. */
WEFT_API int weft_load_create(weft_load **out, const weft_load_config *cfg);

/*
 * Run it: connect every connection (a start barrier holds them until all
 * have connected or failed once, at most connect_timeout_ns), warm up,
 * measure until duration_ns, the request count or weft_load_stop (or, when
 * every connection's first attempt failed, at once: res->stopped,
 * res->connected 0, res->connect_error says why); then
 * let in-flight requests finish within timeout_ns and cancel the rest.
 * *res receives the merged results (res may be NULL: the interval callback
 * may be all the caller wants).  Once per weft_load.  Task context, the
 * caller waits; the connections' tasks run on every loop of the runtime.
 * Returns 0 (errors of the load are counted, not returned), -EALREADY
 * (run before), -EPERM (not in a task), -ENOMEM, -ECANCELED (the calling
 * task was cancelled: the connections are stopped first, *res is filled),
 * -ETIMEDOUT (a deadline scope of the caller expired: the same).
 * The caller cancelled or its scope expiring, at each phase:
 *  - connecting (the start barrier) or measuring: the run ends there, as
 *    by weft_load_stop (res->stopped stays false: the return says why);
 *    connections still connecting or waiting at the barrier have nothing
 *    in flight and are cancelled at once;
 *  - letting in-flight requests finish: a cancellation does not cut that
 *    (it is a stop's own grace), a scope does: its expiry cancels them;
 *    the run then returns -ETIMEDOUT;
 *  - either way every connection is joined before the return (no task of
 *    the run outlives it) and *res has every answer recorded until then.
 * A cancellation that comes before the run returns is -ECANCELED even if
 * the run had already ended (its duration, its count, weft_load_stop) and
 * was only finishing its in-flight requests: the caller learns it was
 * cancelled, as from any wait, and loses nothing, *res being the whole
 * run's either way (res->stopped says whether a stop ended it).  It wins
 * over an expired scope, as at any suspension point.  Inside the caller's
 * weft_shield_begin the run is a shielded wait like any other: it is not
 * cut and returns as if not cancelled.  A scope gives
 * -ETIMEDOUT only if it cut one of the run's waits: one expiring after
 * the last connection was joined leaves the return 0.
 */
WEFT_API int weft_load_run(weft_load *l, weft_load_result *res);

/* End the run early, as if its duration were up.  Any thread (not a signal
 * handler); before the run it makes the run end at once.  Returns 0,
 * -EINVAL. */
WEFT_API int weft_load_stop(weft_load *l);

/* Free l (after weft_load_run returned, or if it was never run).  Any
 * thread.  NULL is a no-op. */
WEFT_API void weft_load_destroy(weft_load *l);

#ifdef __cplusplus
}
#endif

#endif
