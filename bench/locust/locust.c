/*
 * bench/locust/locust.c: the worker side of Locust 2.12.1's protocol
 * (locust.h says what it does; docs/load.md, "Locust", how to use it).
 *
 * One plain thread owns the ZeroMQ socket and every timer (heartbeat 1 s,
 * stats 3 s, client_ready retries, the stop timeout).  The run talks to it
 * through a mutex-protected accumulator and flags, and an eventfd that
 * wakes the thread's zmq_poll; orders go the other way on a weft queue.
 */
#include "locust.h"
#include "weft.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* locust/runners.py */
#define HEARTBEAT_S 1.0
#define REPORT_S 3.0
#define CONNECT_TIMEOUT_S 5.0
#define CONNECT_TRIES 60
#define FINAL_LINGER_MS 2000

#define MAX_CLASSES 16
#define MAX_SECONDS 64
/* response_times keys: 0..99, 100..990 by 10, 1000..9900 by 100, then
 * thousands up to an hour (longer ones share the last key). */
#define RT_KEYS (280 + 3600)

enum err_kind { E_CONNECT, E_READ, E_TIMEOUT, E_PARSE, E_FAILED, E_KINDS };
static const char *const err_key[E_KINDS] = { "weft.connect", "weft.read", "weft.timeout",
					      "weft.parse", "weft.failed" };
static const char *const err_text[E_KINDS] = { "connect error", "read error (reset or closed)",
					       "timeout (no answer in time)", "malformed response",
					       NULL /* cfg.failed_what */ };

/* What the next "stats" message holds (a StatsEntry since the last one). */
struct acc {
	uint64_t requests, none, failures, content;
	double total_ms, min_ms, max_ms; /* min_ms NAN: none yet */
	double start_time, last_ts;      /* last_ts 0: no request yet */
	uint64_t rt[RT_KEYS];
	struct {
		int64_t sec;
		uint64_t reqs, fails;
	} per_sec[MAX_SECONDS];
	unsigned nsec;
	uint64_t errors[E_KINDS];
};

struct locust_worker {
	struct locust_config cfg;
	char id[320];
	char endpoint[300];
	bool ipv6;
	void *zctx, *sock;
	void *mon; /* the socket's disconnections (zmq_socket_monitor), or NULL */
	unsigned mon_gen;
	int wake_fd; /* eventfd: the run has news for the thread */
	weft_queue *cmds;
	pthread_t thread;

	pthread_mutex_t mu; /* protects the fields down to the end */
	struct acc *acc;
	bool news_running, news_stopped, news_finish;
	unsigned users_running;
	bool acked;      /* registered with the master now */
	bool registered; /* ever */

	/* The thread's own. */
	const char *state; /* "ready", "spawning", "running" (runners.py) */
	char classes[MAX_CLASSES][128];
	unsigned class_target[MAX_CLASSES], nclasses;
	double last_spawn_ts, stop_timeout_s;
	double ready_at; /* after a stop: when to say client_ready (0: not due) */
	double next_ready; /* unregistered: when to send client_ready again */
	unsigned tries;    /* client_ready sent since the last registration */
	double cpu_wall, cpu_used;
	struct acc *spare;
};

#if defined(__SANITIZE_THREAD__)
/* Debian's libzmq is not built with TSan: its I/O thread and a socket's
 * owner hand messages over through lock-free queues whose atomics TSan
 * cannot see, so every zmq_send looks like a race with the I/O thread.
 * Reports with a libzmq frame are those; the rest of weft-load stays
 * checked. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "race:libzmq.so\n";
}
#endif

/* ---- clocks and small helpers ---- */

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void logf_(struct locust_worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(struct locust_worker *w, const char *fmt, ...)
{
	if (!w->cfg.log)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("weft-load locust: ", w->cfg.log);
	vfprintf(w->cfg.log, fmt, ap);
	fputc('\n', w->cfg.log);
	va_end(ap);
}

/* Python's round(x, ndigits) for the tens, hundreds and thousands:
 * half to even, as rint in the default rounding mode. */
int64_t locust_rounded_ms(double ms)
{
	if (!(ms >= 0))
		return 0;
	if (ms < 100)
		return (int64_t)rint(ms);
	if (ms < 1000)
		return (int64_t)rint(ms / 10) * 10;
	if (ms < 10000)
		return (int64_t)rint(ms / 100) * 100;
	return (int64_t)rint(ms / 1000) * 1000;
}

static unsigned rt_index(int64_t key)
{
	int64_t i;
	if (key < 100)
		i = key;
	else if (key < 1000)
		i = 100 + (key - 100) / 10;
	else if (key < 10000)
		i = 190 + (key - 1000) / 100;
	else
		i = 280 + (key - 10000) / 1000;
	return i < RT_KEYS ? (unsigned)i : RT_KEYS - 1;
}

static int64_t rt_key(unsigned i)
{
	if (i < 100)
		return i;
	if (i < 190)
		return 100 + (int64_t)(i - 100) * 10;
	if (i < 280)
		return 1000 + (int64_t)(i - 190) * 100;
	return 10000 + (int64_t)(i - 280) * 1000;
}

static void acc_reset(struct acc *a, double now)
{
	memset(a, 0, sizeof(*a));
	a->min_ms = NAN;
	a->start_time = now;
}

static void acc_per_sec(struct acc *a, int64_t sec, uint64_t reqs, uint64_t fails)
{
	unsigned i = 0;
	while (i < a->nsec && a->per_sec[i].sec != sec)
		i++;
	if (i == a->nsec) {
		if (a->nsec == MAX_SECONDS)
			i = MAX_SECONDS - 1; /* a report never spans this many */
		else
			a->per_sec[a->nsec++].sec = sec;
	}
	a->per_sec[i].reqs += reqs;
	a->per_sec[i].fails += fails;
}

/* Spread n events over the Unix seconds the window [s, e) covers, in
 * proportion to the overlap; the rounding remainder goes to the last. */
static void acc_spread(struct acc *a, double s, double e, uint64_t reqs, uint64_t fails)
{
	int64_t first = (int64_t)floor(s), last = (int64_t)floor(e);
	if (e == (double)last && last > first)
		last--; /* a window ending on a second boundary */
	if (!(e > s) || last <= first) {
		acc_per_sec(a, !(e > s) ? (int64_t)floor(e) : first, reqs, fails);
		return;
	}
	uint64_t rleft = reqs, fleft = fails;
	for (int64_t sec = first; sec < last; sec++) {
		double lo = (double)sec > s ? (double)sec : s;
		double f = ((double)(sec + 1) - lo) / (e - s);
		uint64_t r = (uint64_t)(reqs * f), fl = (uint64_t)(fails * f);
		r = r > rleft ? rleft : r;
		fl = fl > fleft ? fleft : fl;
		acc_per_sec(a, sec, r, fl);
		rleft -= r;
		fleft -= fl;
	}
	acc_per_sec(a, last, rleft, fleft);
}

static void acc_add(struct acc *a, const struct locust_interval *iv)
{
	uint64_t errs = iv->connect_errors + iv->read_errors + iv->timeouts + iv->parse_errors;
	a->requests += iv->answered + errs;
	a->none += errs;
	a->failures += iv->failed + errs;
	a->content += iv->bytes;
	a->errors[E_CONNECT] += iv->connect_errors;
	a->errors[E_READ] += iv->read_errors;
	a->errors[E_TIMEOUT] += iv->timeouts;
	a->errors[E_PARSE] += iv->parse_errors;
	a->errors[E_FAILED] += iv->failed;
	if (iv->answered) {
		a->total_ms += (double)(iv->sum_ns / 1e6L);
		double mn = iv->min_ns / 1e6, mx = iv->max_ns / 1e6;
		a->min_ms = isnan(a->min_ms) || mn < a->min_ms ? mn : a->min_ms;
		a->max_ms = mx > a->max_ms ? mx : a->max_ms;
		uint64_t v, n;
		while (iv->next && iv->next(iv->next_arg, &v, &n))
			a->rt[rt_index(locust_rounded_ms(v / 1e6))] += n;
	}
	if (iv->answered + errs) {
		acc_spread(a, iv->start_unix_s, iv->end_unix_s, iv->answered + errs,
			   iv->failed + errs);
		if (iv->end_unix_s > a->last_ts)
			a->last_ts = iv->end_unix_s;
	}
}

/* ---- msgpack ---- */

static void pk_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pk_key_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
	pk_str(pk, key);
	msgpack_pack_uint64(pk, v);
}

/* A double, or nil when it is NAN (Python's None). */
static void pk_key_double(msgpack_packer *pk, const char *key, double v)
{
	pk_str(pk, key);
	if (isnan(v))
		msgpack_pack_nil(pk);
	else
		msgpack_pack_double(pk, v);
}

static void pk_entry(msgpack_packer *pk, const struct acc *a, const char *name,
		     const char *method)
{
	msgpack_pack_map(pk, 14);
	pk_str(pk, "name");
	pk_str(pk, name);
	pk_str(pk, "method");
	pk_str(pk, method);
	pk_key_double(pk, "last_request_timestamp", a->last_ts > 0 ? a->last_ts : NAN);
	pk_key_double(pk, "start_time", a->start_time);
	pk_key_u64(pk, "num_requests", a->requests);
	pk_key_u64(pk, "num_none_requests", a->none);
	pk_key_u64(pk, "num_failures", a->failures);
	pk_key_double(pk, "total_response_time", a->total_ms);
	pk_key_double(pk, "max_response_time", a->max_ms);
	pk_key_double(pk, "min_response_time", a->min_ms);
	pk_key_u64(pk, "total_content_length", a->content);
	pk_str(pk, "response_times");
	unsigned keys = 0;
	for (unsigned i = 0; i < RT_KEYS; i++)
		keys += a->rt[i] != 0;
	msgpack_pack_map(pk, keys);
	for (unsigned i = 0; i < RT_KEYS; i++)
		if (a->rt[i]) {
			msgpack_pack_int64(pk, rt_key(i));
			msgpack_pack_uint64(pk, a->rt[i]);
		}
	for (int fails = 0; fails < 2; fails++) {
		pk_str(pk, fails ? "num_fail_per_sec" : "num_reqs_per_sec");
		unsigned n = 0;
		for (unsigned i = 0; i < a->nsec; i++)
			n += (fails ? a->per_sec[i].fails : a->per_sec[i].reqs) != 0;
		msgpack_pack_map(pk, n);
		for (unsigned i = 0; i < a->nsec; i++) {
			uint64_t c = fails ? a->per_sec[i].fails : a->per_sec[i].reqs;
			if (c) {
				msgpack_pack_int64(pk, a->per_sec[i].sec);
				msgpack_pack_uint64(pk, c);
			}
		}
	}
}

/* user_classes_count: the running users laid over the classes the master
 * asked for, in its order (all of them once the users run). */
static void pk_classes(msgpack_packer *pk, const struct locust_worker *w, unsigned running)
{
	msgpack_pack_map(pk, w->nclasses);
	for (unsigned i = 0; i < w->nclasses; i++) {
		unsigned n = running < w->class_target[i] ? running : w->class_target[i];
		running -= n;
		pk_str(pk, w->classes[i]);
		msgpack_pack_uint64(pk, n);
	}
}

/* ---- sending ---- */

/* [type, data, node_id], data packed by fn (NULL: nil). */
static int send_msg(struct locust_worker *w, const char *type,
		    void (*fn)(msgpack_packer *, struct locust_worker *, void *), void *arg)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	pk_str(&pk, type);
	if (fn)
		fn(&pk, w, arg);
	else
		msgpack_pack_nil(&pk);
	pk_str(&pk, w->id);
	int rc = sb.data ? zmq_send(w->sock, sb.data, sb.size, ZMQ_DONTWAIT) : -1;
	int err = rc < 0 ? (sb.data ? zmq_errno() : ENOMEM) : 0;
	msgpack_sbuffer_destroy(&sb);
	if (err)
		logf_(w, "sending %s failed: %s", type, zmq_strerror(err));
	return -err;
}

static void pk_version(msgpack_packer *pk, struct locust_worker *w, void *arg)
{
	/* -1: "any version"; Debian's master has an empty __version__ and
	 * refuses a worker whose version is empty too (runners.py). */
	msgpack_pack_int64(pk, -1);
}

static void pk_heartbeat(msgpack_packer *pk, struct locust_worker *w, void *arg)
{
	double now = mono_now(), cpu = cpu_now();
	double pct = now > w->cpu_wall ? (cpu - w->cpu_used) / (now - w->cpu_wall) * 100 : 0;
	w->cpu_wall = now;
	w->cpu_used = cpu;
	long size_pages = 0, rss_pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &size_pages, &rss_pages) != 2)
			rss_pages = 0;
		fclose(f);
	}
	msgpack_pack_map(pk, 3);
	pk_str(pk, "state");
	pk_str(pk, w->state);
	pk_key_double(pk, "current_cpu_usage", pct);
	pk_key_u64(pk, "current_memory_usage", (uint64_t)rss_pages * (uint64_t)sysconf(_SC_PAGESIZE));
}

static void pk_complete(msgpack_packer *pk, struct locust_worker *w, void *arg)
{
	unsigned users = *(unsigned *)arg;
	msgpack_pack_map(pk, 2);
	pk_str(pk, "user_classes_count");
	pk_classes(pk, w, users);
	pk_key_u64(pk, "user_count", users);
}

struct report {
	const struct acc *a;
	unsigned users;
};

static void pk_stats(msgpack_packer *pk, struct locust_worker *w, void *arg)
{
	const struct report *r = arg;
	const struct acc *a = r->a;
	msgpack_pack_map(pk, 5);
	pk_str(pk, "stats");
	bool any = a->requests || a->failures; /* RequestStats.serialize_stats */
	msgpack_pack_array(pk, any);
	if (any)
		pk_entry(pk, a, w->cfg.name, w->cfg.method);
	pk_str(pk, "stats_total");
	pk_entry(pk, a, "Aggregated", "");
	pk_str(pk, "errors");
	unsigned n = 0;
	for (int k = 0; k < E_KINDS; k++)
		n += a->errors[k] != 0;
	msgpack_pack_map(pk, n);
	for (int k = 0; k < E_KINDS; k++) {
		if (!a->errors[k])
			continue;
		pk_str(pk, err_key[k]);
		msgpack_pack_map(pk, 4);
		pk_str(pk, "name");
		pk_str(pk, w->cfg.name);
		pk_str(pk, "method");
		pk_str(pk, w->cfg.method);
		pk_str(pk, "error");
		pk_str(pk, err_text[k] ? err_text[k] : w->cfg.failed_what);
		pk_key_u64(pk, "occurrences", a->errors[k]);
	}
	pk_str(pk, "user_classes_count");
	pk_classes(pk, w, r->users);
	pk_key_u64(pk, "user_count", r->users);
}

/* Take what accumulated (swapping in the spare) and report it. */
static void send_stats(struct locust_worker *w)
{
	struct report r;
	pthread_mutex_lock(&w->mu);
	struct acc *a = w->acc;
	acc_reset(w->spare, wall_now());
	w->acc = w->spare;
	r.users = w->users_running;
	pthread_mutex_unlock(&w->mu);
	w->spare = a;
	r.a = a;
	send_msg(w, "stats", pk_stats, &r);
}

/* ---- receiving ---- */

static bool obj_is(const msgpack_object *o, const char *s)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++)
		if (obj_is(&m->via.map.ptr[i].key, key))
			return &m->via.map.ptr[i].val;
	return NULL;
}

static bool obj_num(const msgpack_object *o, double *out)
{
	if (!o)
		return false;
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return true;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return true;
	default: return false;
	}
}

static void put_cmd(struct locust_worker *w, int kind, unsigned users)
{
	/* An order is (users << 4 | kind): no allocation to lose. */
	uintptr_t c = ((uintptr_t)users << 4) | (uintptr_t)kind;
	if (weft_queue_put(w->cmds, (void *)c) < 0)
		logf_(w, "cannot hand an order to the run");
}

static void on_spawn(struct locust_worker *w, const msgpack_object *data)
{
	send_msg(w, "spawning", NULL, NULL);
	double ts = 0, st = 0;
	obj_num(map_get(data, "timestamp"), &ts);
	if (ts <= w->last_spawn_ts) {
		logf_(w, "spawn message older than the last one: discarded");
		return;
	}
	w->last_spawn_ts = ts;
	w->stop_timeout_s = obj_num(map_get(data, "stop_timeout"), &st) && st > 0 ? st : 0;
	const msgpack_object *uc = map_get(data, "user_classes_count");
	if (!uc || uc->type != MSGPACK_OBJECT_MAP) {
		logf_(w, "spawn message without user_classes_count: ignored");
		return;
	}
	unsigned total = 0;
	w->nclasses = 0;
	for (uint32_t i = 0; i < uc->via.map.size && w->nclasses < MAX_CLASSES; i++) {
		const msgpack_object *k = &uc->via.map.ptr[i].key;
		double n = 0;
		if (k->type != MSGPACK_OBJECT_STR || !obj_num(&uc->via.map.ptr[i].val, &n) || n < 0)
			continue;
		size_t len = k->via.str.size < 127 ? k->via.str.size : 127;
		memcpy(w->classes[w->nclasses], k->via.str.ptr, len);
		w->classes[w->nclasses][len] = '\0';
		w->class_target[w->nclasses++] = (unsigned)n;
		total += (unsigned)n;
	}
	w->state = "spawning";
	logf_(w, "spawn: %u users", total);
	put_cmd(w, LOCUST_CMD_USERS, total);
}

static void close_socket(struct locust_worker *w)
{
	if (w->mon) {
		zmq_socket_monitor(w->sock, NULL, 0);
		zmq_close(w->mon);
		w->mon = NULL;
	}
	if (w->sock)
		zmq_close(w->sock);
	w->sock = NULL;
}

/* One message from the master. */
static void on_message(struct locust_worker *w, const char *buf, size_t len)
{
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, buf, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
	    u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 3 ||
	    u.data.via.array.ptr[0].type != MSGPACK_OBJECT_STR) {
		logf_(w, "malformed message from the master (%zu bytes): ignored", len);
		msgpack_unpacked_destroy(&u);
		return;
	}
	const msgpack_object *type = &u.data.via.array.ptr[0], *data = &u.data.via.array.ptr[1];
	if (obj_is(type, "ack")) {
		pthread_mutex_lock(&w->mu);
		bool first = !w->acked;
		w->acked = w->registered = true;
		pthread_mutex_unlock(&w->mu);
		double idx = -1;
		obj_num(map_get(data, "index"), &idx);
		if (first)
			logf_(w, "registered with %s as worker %.0f (%s)", w->cfg.master, idx, w->id);
	} else if (obj_is(type, "spawn")) {
		on_spawn(w, data);
	} else if (obj_is(type, "stop")) {
		logf_(w, "stop");
		put_cmd(w, LOCUST_CMD_STOP, 0);
	} else if (obj_is(type, "quit")) {
		logf_(w, "quit");
		put_cmd(w, LOCUST_CMD_QUIT, 0);
	} else if (obj_is(type, "reconnect")) {
		logf_(w, "reconnect");
		close_socket(w);
	} else {
		logf_(w, "unknown message '%.*s' from the master: ignored", (int)type->via.str.size,
		      type->via.str.ptr);
	}
	msgpack_unpacked_destroy(&u);
}

/* ---- the thread ---- */

static int open_socket(struct locust_worker *w)
{
	w->sock = zmq_socket(w->zctx, ZMQ_DEALER);
	if (!w->sock)
		return -zmq_errno();
	int one = 1, idle = 30, linger = FINAL_LINGER_MS;
	/* zmqrpc.py's options: identity, TCP keep-alive after 30 s idle */
	if (zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->id, strlen(w->id)) < 0 ||
	    zmq_setsockopt(w->sock, ZMQ_TCP_KEEPALIVE, &one, sizeof(one)) < 0 ||
	    zmq_setsockopt(w->sock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof(idle)) < 0 ||
	    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
	    (w->ipv6 && zmq_setsockopt(w->sock, ZMQ_IPV6, &one, sizeof(one)) < 0) ||
	    zmq_connect(w->sock, w->endpoint) < 0) {
		int e = zmq_errno();
		close_socket(w);
		return -e;
	}
	/* A master that dies says nothing (2.12.1 sends no heartbeat): its
	 * connection closing is the sign.  Without a monitor, no sign. */
	char addr[64];
	snprintf(addr, sizeof(addr), "inproc://weft-locust-%p-%u", (void *)w, w->mon_gen++);
	if (zmq_socket_monitor(w->sock, addr, ZMQ_EVENT_DISCONNECTED) == 0) {
		w->mon = zmq_socket(w->zctx, ZMQ_PAIR);
		if (w->mon && zmq_connect(w->mon, addr) < 0) {
			zmq_close(w->mon);
			w->mon = NULL;
		}
	}
	return 0;
}

/* The master's connection closed: stop the users (a load with nobody
 * watching it is a runaway) and register again, with the usual tries. */
static void on_monitor(struct locust_worker *w)
{
	zmq_msg_t m;
	zmq_msg_init(&m);
	bool lost = false;
	while (zmq_msg_recv(&m, w->mon, ZMQ_DONTWAIT) >= 0) {
		uint16_t ev = 0;
		if (zmq_msg_size(&m) >= 6 && zmq_msg_more(&m)) /* event, value; then address */
			memcpy(&ev, zmq_msg_data(&m), sizeof(ev));
		lost |= ev == ZMQ_EVENT_DISCONNECTED;
	}
	zmq_msg_close(&m);
	pthread_mutex_lock(&w->mu);
	bool was = w->acked;
	if (lost)
		w->acked = false;
	pthread_mutex_unlock(&w->mu);
	if (!lost || !was)
		return;
	logf_(w, "the master went away: users stopped, registering again");
	w->tries = 0;
	w->next_ready = mono_now();
	w->ready_at = 0;
	if (strcmp(w->state, "ready") != 0)
		put_cmd(w, LOCUST_CMD_STOP, 0);
	w->state = "ready";
}

/* The run's news (eventfd): spawning done, stopped, finished. */
static bool on_news(struct locust_worker *w, double now)
{
	uint64_t v;
	if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		logf_(w, "eventfd: %s", strerror(errno));
	pthread_mutex_lock(&w->mu);
	bool running = w->news_running, stopped = w->news_stopped, finish = w->news_finish;
	unsigned users = w->users_running;
	w->news_running = w->news_stopped = false;
	pthread_mutex_unlock(&w->mu);
	if (running) {
		send_msg(w, "spawning_complete", pk_complete, &users);
		w->state = "running";
	}
	pthread_mutex_lock(&w->mu);
	bool acked = w->acked;
	pthread_mutex_unlock(&w->mu);
	if (stopped && acked) { /* else stopped for a master that went away */
		send_msg(w, "client_stopped", NULL, NULL);
		w->ready_at = now + w->stop_timeout_s;
	}
	if (finish) {
		send_stats(w); /* what the run counted since the last report */
		send_msg(w, "quit", NULL, NULL);
	}
	return !finish;
}

static void *thread_main(void *arg)
{
	struct locust_worker *w = arg;
	double now = mono_now();
	double next_hb = now, next_stats = now + REPORT_S;
	unsigned max_tries = w->cfg.ready_tries ? w->cfg.ready_tries : CONNECT_TRIES;
	w->next_ready = now;
	bool lost = false;
	for (;;) {
		if (!w->sock && open_socket(w) < 0) {
			logf_(w, "cannot open a socket to %s", w->endpoint);
			put_cmd(w, LOCUST_CMD_LOST, 0);
			break;
		}
		now = mono_now();
		pthread_mutex_lock(&w->mu);
		bool acked = w->acked;
		pthread_mutex_unlock(&w->mu);
		if (!acked && !lost && now >= w->next_ready) {
			if (w->tries++ == max_tries) {
				logf_(w, "no answer from the master at %s after %u tries", w->cfg.master,
				      max_tries);
				lost = true;
				put_cmd(w, LOCUST_CMD_LOST, 0);
			} else {
				send_msg(w, "client_ready", pk_version, NULL);
				w->next_ready = now + CONNECT_TIMEOUT_S;
			}
		}
		if (w->ready_at && now >= w->ready_at) {
			send_msg(w, "client_ready", pk_version, NULL);
			w->state = "ready";
			w->ready_at = 0;
		}
		if (acked && now >= next_hb) {
			send_msg(w, "heartbeat", pk_heartbeat, NULL);
			next_hb += HEARTBEAT_S;
			if (next_hb < now)
				next_hb = now + HEARTBEAT_S;
		}
		if (acked && now >= next_stats) {
			send_stats(w);
			next_stats = now + REPORT_S;
		}
		double until = next_stats < next_hb ? next_stats : next_hb;
		if (!acked && !lost && w->next_ready < until)
			until = w->next_ready;
		if (w->ready_at && w->ready_at < until)
			until = w->ready_at;
		zmq_pollitem_t items[3] = { { w->sock, 0, ZMQ_POLLIN, 0 },
					    { NULL, w->wake_fd, ZMQ_POLLIN, 0 },
					    { w->mon, 0, ZMQ_POLLIN, 0 } };
		long ms = (long)ceil((until - now) * 1000);
		if (zmq_poll(items, w->mon ? 3 : 2, ms < 0 ? 0 : ms) < 0 && zmq_errno() != EINTR) {
			logf_(w, "poll: %s", zmq_strerror(zmq_errno()));
			put_cmd(w, LOCUST_CMD_LOST, 0);
			break;
		}
		if (items[0].revents & ZMQ_POLLIN) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			while (w->sock && zmq_msg_recv(&m, w->sock, ZMQ_DONTWAIT) >= 0)
				on_message(w, zmq_msg_data(&m), zmq_msg_size(&m));
			zmq_msg_close(&m);
		}
		if (w->mon && (items[2].revents & ZMQ_POLLIN))
			on_monitor(w);
		if ((items[1].revents & ZMQ_POLLIN) && !on_news(w, mono_now()))
			break;
	}
	return NULL;
}

/* ---- the run's side ---- */

static void wake(struct locust_worker *w)
{
	uint64_t one = 1;
	if (write(w->wake_fd, &one, sizeof(one)) < 0)
		logf_(w, "eventfd: %s", strerror(errno));
}

void locust_worker_leave(struct locust_worker *w)
{
	logf_(w, "leaving (signal)");
	put_cmd(w, LOCUST_CMD_QUIT, 0);
}

void locust_worker_running(struct locust_worker *w, unsigned users)
{
	pthread_mutex_lock(&w->mu);
	w->users_running = users;
	w->news_running = true;
	pthread_mutex_unlock(&w->mu);
	wake(w);
}

void locust_worker_stopped(struct locust_worker *w)
{
	pthread_mutex_lock(&w->mu);
	w->users_running = 0;
	w->news_stopped = true;
	pthread_mutex_unlock(&w->mu);
	wake(w);
}

void locust_worker_add(struct locust_worker *w, const struct locust_interval *iv)
{
	pthread_mutex_lock(&w->mu);
	acc_add(w->acc, iv);
	pthread_mutex_unlock(&w->mu);
}

int locust_worker_next(struct locust_worker *w, struct locust_cmd *cmd)
{
	void *item;
	int rc = weft_queue_get(w->cmds, &item);
	if (rc < 0)
		return rc;
	uintptr_t c = (uintptr_t)item;
	cmd->kind = (int)(c & 15);
	cmd->users = (unsigned)(c >> 4);
	return 0;
}

/* "host:port" or "[v6]:port" into tcp://...; the id from the host name. */
static int parse_master(struct locust_worker *w)
{
	const char *m = w->cfg.master, *colon = strrchr(m, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || colon == m || !colon[1] || *end || port < 1 || port > 65535 ||
	    strlen(m) > 256) {
		logf_(w, "--locust-master '%.80s': expected host:port", m);
		return -EINVAL;
	}
	w->ipv6 = m[0] == '[';
	snprintf(w->endpoint, sizeof(w->endpoint), "tcp://%s", m);
	char host[256] = "weft-load";
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	unsigned char rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		for (size_t i = 0; i < sizeof(rnd); i++) /* uuid4's randomness, or near it */
			rnd[i] = (unsigned char)(rand() ^ getpid() ^ (int)i);
	int k = snprintf(w->id, sizeof(w->id), "%s_", host);
	for (size_t i = 0; i < sizeof(rnd); i++)
		k += snprintf(w->id + k, sizeof(w->id) - (size_t)k, "%02x", rnd[i]);
	return 0;
}

static void worker_free(struct locust_worker *w)
{
	close_socket(w);
	if (w->zctx)
		zmq_ctx_term(w->zctx);
	if (w->cmds)
		weft_queue_destroy(w->cmds);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	pthread_mutex_destroy(&w->mu);
	free(w->acc);
	free(w->spare);
	free(w);
}

int locust_worker_start(struct locust_worker **out, const struct locust_config *cfg)
{
	if (!out || !cfg || !cfg->master || !cfg->name || !cfg->method || !cfg->failed_what)
		return -EINVAL;
	struct locust_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cfg = *cfg;
	w->wake_fd = -1;
	w->state = "ready";
	pthread_mutex_init(&w->mu, NULL);
	int rc = parse_master(w);
	if (rc < 0)
		goto fail;
	w->acc = malloc(sizeof(*w->acc));
	w->spare = malloc(sizeof(*w->spare));
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->zctx = zmq_ctx_new();
	rc = -ENOMEM;
	if (!w->acc || !w->spare || !w->zctx)
		goto fail;
	rc = -errno;
	if (w->wake_fd < 0)
		goto fail;
	acc_reset(w->acc, wall_now());
	weft_queue_config qc;
	weft_queue_config_init(&qc);
	rc = weft_queue_create(&w->cmds, &qc);
	if (rc < 0)
		goto fail;
	rc = open_socket(w);
	if (rc < 0) {
		logf_(w, "cannot connect to %s: %s", w->endpoint, zmq_strerror(-rc));
		goto fail;
	}
	w->cpu_wall = mono_now();
	w->cpu_used = cpu_now();
	rc = -pthread_create(&w->thread, NULL, thread_main, w);
	if (rc < 0)
		goto fail;
	*out = w;
	return 0;
fail:
	worker_free(w);
	return rc;
}

int locust_worker_finish(struct locust_worker *w)
{
	pthread_mutex_lock(&w->mu);
	w->news_finish = true;
	bool registered = w->registered;
	pthread_mutex_unlock(&w->mu);
	wake(w);
	pthread_join(w->thread, NULL);
	worker_free(w); /* zmq_ctx_term waits (linger) for the last messages */
	return registered ? 0 : -ENOTCONN;
}
