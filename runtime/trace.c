/*
 * The event trace (include/weft/trace.h): starting and stopping the loops'
 * recording, and writing what they recorded as Chrome trace-event JSON.
 * The record path itself is inline, in runtime/trace.h.
 *
 * Handing the rings over.  rt->trace_gen counts starts and stops (odd:
 * recording).  A start allocates the rings and publishes them, then the
 * new generation (release); each loop compares the generation with the one
 * it applied at every scheduler pass (runtime/trace.h, weft__trace_poll),
 * and on a change takes its ring and switches `trace_on` itself, then
 * acknowledges with a release store of the generation.  A stop bumps the
 * generation again; each loop stores how far it wrote and acknowledges.
 * The caller waits for every acknowledgement (a loop that has left its
 * scheduler acknowledges for good with TRACE_GONE), so from then on the
 * rings belong to it: no loop writes them, and what they wrote is visible
 * (acquire).  Calls are serialized by rt->trace_busy.
 */
#include "internal.h"
#include "../io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRACE_GONE UINT32_MAX       /* the loop left its scheduler */
#define TRACE_MIN_NS 20000000ull    /* calibration window (weft_trace_stop) */
#define TRACE_MIN_EVENTS 64u

struct weft__trace {
	unsigned nloops;
	uint64_t cap;      /* events per ring: a power of two */
	weft__tev **ring;  /* [nloops] */
	uint64_t *head;    /* [nloops]: events each loop recorded, at its stop */
	uint64_t clk0, clk1; /* weft__trace_clock() at start and at stop */
	uint64_t ns0, ns1;   /* weft_now_ns() at the same instants */
	uint64_t foreign;
	bool stopped;
};

/* ------------------------------------------------------------------------ */
/* the loops' side                                                           */
/* ------------------------------------------------------------------------ */

void weft__trace_sync(weft_loop *l)
{
	weft_runtime *rt = l->rt;
	uint32_t gen = atomic_load_explicit(&rt->trace_gen, memory_order_acquire);
	struct weft__trace *tr = rt->trace;
	if (gen & 1) {
		l->tr_ev = tr->ring[l->index];
		l->tr_mask = tr->cap - 1;
		l->tr_head = 0;
		l->trace_on = true;
	} else if (l->trace_on) {
		weft__trace_put(l, WEFT_TEV_STOP, 0, 0, 0, 0, 0);
		tr->head[l->index] = l->tr_head;
		l->trace_on = false;
		l->tr_ev = NULL;
	}
	l->trace_gen = gen;
	atomic_store_explicit(&l->trace_ack, gen, memory_order_release);
}

void weft__trace_loop_exit(weft_loop *l)
{
	if (l->trace_on) {
		weft__trace_put(l, WEFT_TEV_STOP, 0, 0, 0, 0, 0);
		l->rt->trace->head[l->index] = l->tr_head;
		l->trace_on = false;
		l->tr_ev = NULL;
	}
	atomic_store_explicit(&l->trace_ack, TRACE_GONE, memory_order_release);
}

void weft__trace_name(weft_loop *l, const weft_task *t)
{
	weft_task *m = (weft_task *)t;
	uint64_t w[4];
	weft__lock_acquire(&m->lock);
	memcpy(w, m->name, sizeof(w));
	weft__lock_release(&m->lock);
	for (unsigned part = 0; part < 2; part++) {
		weft__trace_put(l, WEFT_TEV_NAME, 0, 0, t->id, part, w[2 * part + 1]);
		l->tr_ev[(l->tr_head - 1) & l->tr_mask].ts = w[2 * part];
	}
}

/* ------------------------------------------------------------------------ */
/* start and stop                                                            */
/* ------------------------------------------------------------------------ */

static bool busy_enter(weft_runtime *rt)
{
	int idle = 0;
	return atomic_compare_exchange_strong_explicit(&rt->trace_busy, &idle, 1,
						       memory_order_acq_rel,
						       memory_order_relaxed);
}

static void busy_exit(weft_runtime *rt)
{
	atomic_store_explicit(&rt->trace_busy, 0, memory_order_release);
}

static void trace_free(struct weft__trace *tr)
{
	if (!tr)
		return;
	for (unsigned i = 0; i < tr->nloops; i++)
		free(tr->ring[i]);
	free(tr->ring);
	free(tr->head);
	free(tr);
}

void weft__trace_free(weft_runtime *rt)
{
	trace_free(rt->trace);
	rt->trace = NULL;
	free(rt->trace_env);
	rt->trace_env = NULL;
}

static struct weft__trace *trace_alloc(unsigned nloops, uint64_t cap)
{
	struct weft__trace *tr = calloc(1, sizeof(*tr));
	if (!tr)
		return NULL;
	tr->nloops = nloops;
	tr->cap = cap;
	tr->ring = calloc(nloops, sizeof(*tr->ring));
	tr->head = calloc(nloops, sizeof(*tr->head));
	if (!tr->ring || !tr->head) {
		trace_free(tr);
		return NULL;
	}
	for (unsigned i = 0; i < nloops; i++) {
		/* Touched here, so the loops' first lap takes no page faults. */
		tr->ring[i] = calloc(cap, sizeof(weft__tev));
		if (!tr->ring[i]) {
			trace_free(tr);
			return NULL;
		}
		memset(tr->ring[i], 0, cap * sizeof(weft__tev));
	}
	return tr;
}

/* The two clocks read together: the monotonic time is the mean of the
 * readings around the counter's. */
static void anchor(uint64_t *clk, uint64_t *ns)
{
	uint64_t a = weft_now_ns();
	*clk = weft__trace_clock();
	uint64_t b = weft_now_ns();
	*ns = a + (b - a) / 2;
}

/* Let the loops run a little: a task of rt sleeps (shielded, so a
 * cancellation cannot turn the wait into a spin); any other thread sleeps
 * in the kernel. */
static void pause_briefly(bool in_task)
{
	if (in_task) {
		weft_sleep(50000);
		return;
	}
	struct timespec ts = { 0, 50000 };
	nanosleep(&ts, NULL);
}

/* Wait until every loop of rt has applied generation gen. */
static void await_loops(weft_runtime *rt, uint32_t gen)
{
	weft_loop *self = weft__trace_self(rt);
	if (self)
		weft__trace_sync(self); /* the caller's own loop: at once */
	bool in_task = self && self->current;
	if (in_task)
		weft_shield_begin();
	for (unsigned i = 0; i < rt->nloops;) {
		uint32_t a = atomic_load_explicit(&rt->loops[i]->trace_ack, memory_order_acquire);
		if (a == gen || a == TRACE_GONE) {
			i++;
			continue;
		}
		/* A sleeping loop passes its scheduler once woken.  Again at
		 * every round: a loop on its way to sleep (past its last
		 * scheduler pass, not yet marked asleep) is not woken by a
		 * wake before it sleeps, and the new generation is not work
		 * that keeps it awake. */
		weft__wake_all_loops(rt);
		pause_briefly(in_task);
	}
	if (in_task)
		weft_shield_end();
}

static uint64_t ring_cap(size_t n)
{
	uint64_t cap = TRACE_MIN_EVENTS;
	if (n == 0)
		n = WEFT_TRACE_DEFAULT_EVENTS;
	while (cap < n)
		cap <<= 1;
	return cap;
}

int weft_trace_start(weft_runtime *rt, size_t events_per_loop)
{
	if (!rt || events_per_loop > WEFT_TRACE_MAX_EVENTS)
		return -EINVAL;
	if (!busy_enter(rt))
		return -EBUSY;
	int r = 0;
	uint32_t gen = atomic_load_explicit(&rt->trace_gen, memory_order_relaxed);
	struct weft__trace *tr = NULL;
	if (gen & 1)
		r = -EALREADY;
	else if (atomic_load_explicit(&rt->state, memory_order_acquire) != 1)
		r = -ESHUTDOWN;
	else if (!(tr = trace_alloc(rt->nloops, ring_cap(events_per_loop))))
		r = -ENOMEM;
	if (r == 0) {
		trace_free(rt->trace);
		rt->trace = tr;
		atomic_store_explicit(&rt->trace_foreign, 0, memory_order_relaxed);
		anchor(&tr->clk0, &tr->ns0);
		atomic_store_explicit(&rt->trace_gen, gen + 1, memory_order_release);
		await_loops(rt, gen + 1);
	}
	busy_exit(rt);
	return r;
}

int weft_trace_stop(weft_runtime *rt)
{
	if (!rt)
		return -EINVAL;
	if (!busy_enter(rt))
		return -EBUSY;
	uint32_t gen = atomic_load_explicit(&rt->trace_gen, memory_order_relaxed);
	if (!(gen & 1)) {
		busy_exit(rt);
		return -EALREADY;
	}
	struct weft__trace *tr = rt->trace;
	atomic_store_explicit(&rt->trace_gen, gen + 1, memory_order_release);
	await_loops(rt, gen + 1);
	tr->foreign = atomic_load_explicit(&rt->trace_foreign, memory_order_relaxed);
	/* The counter's rate is measured over the trace: hold a short one
	 * until the window is wide enough for it. */
	weft_loop *self = weft__trace_self(rt);
	bool in_task = self && self->current;
	while (weft_now_ns() - tr->ns0 < TRACE_MIN_NS)
		pause_briefly(in_task);
	anchor(&tr->clk1, &tr->ns1);
	tr->stopped = true;
	busy_exit(rt);
	return 0;
}

/* Enter for reading the last trace: 0, or -EBUSY / -ENOENT. */
static int read_enter(weft_runtime *rt)
{
	if (!busy_enter(rt))
		return -EBUSY;
	int r = 0;
	if (atomic_load_explicit(&rt->trace_gen, memory_order_relaxed) & 1)
		r = -EBUSY;
	else if (!rt->trace || !rt->trace->stopped)
		r = -ENOENT;
	if (r < 0)
		busy_exit(rt);
	return r;
}

static void stats_of(const struct weft__trace *tr, weft_trace_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < tr->nloops; i++) {
		out->recorded += tr->head[i];
		out->kept += tr->head[i] < tr->cap ? tr->head[i] : tr->cap;
	}
	out->overwritten = out->recorded - out->kept;
	out->foreign = tr->foreign;
	out->duration_ns = tr->ns1 - tr->ns0;
	out->loops = tr->nloops;
}

int weft_trace_stats_get(weft_runtime *rt, weft_trace_stats *out)
{
	if (!rt || !out)
		return -EINVAL;
	int r = read_enter(rt);
	if (r < 0)
		return r;
	stats_of(rt->trace, out);
	busy_exit(rt);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* the writer                                                                */
/* ------------------------------------------------------------------------ */

/* The names task dumps use too (runtime/dump.c). */
#define wait_name weft__wait_kind_name
#define op_name weft__opcode_name

/* Buffered output to fd; the first error sticks. */
typedef struct out {
	int fd;
	int err;
	size_t len;
	int64_t total;
	char buf[1 << 16];
} out;

static void out_flush(out *o)
{
	size_t off = 0;
	while (off < o->len && !o->err) {
		ssize_t n = write(o->fd, o->buf + off, o->len - off);
		if (n < 0 && errno != EINTR)
			o->err = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	o->total += (int64_t)off;
	o->len = 0;
}

__attribute__((format(printf, 2, 3))) static void out_printf(out *o, const char *fmt, ...)
{
	if (sizeof(o->buf) - o->len < 1024)
		out_flush(o);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < sizeof(o->buf) - o->len ? (size_t)n : sizeof(o->buf) - o->len - 1;
}

/* A task name as a JSON string body: quotes, backslashes, control bytes
 * and bytes past ASCII escaped (names are bytes, not always UTF-8). */
static void json_escape(char *dst, size_t cap, const char *s)
{
	size_t j = 0;
	for (; *s && j + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[j++] = '\\';
			dst[j++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			j += (size_t)snprintf(dst + j, cap - j, "\\u%04x", c);
		} else {
			dst[j++] = (char)c;
		}
	}
	dst[j] = 0;
}

/* Per task id: its name (from NAME events) and the flow arrow waiting
 * for its next run.  Open addressing, never deleted from. */
typedef struct tinfo {
	uint64_t id; /* 0: free slot */
	uint64_t flow;
	const char *flow_name; /* "wake" or "stolen" */
	char name[32];
} tinfo;

typedef struct tmap {
	tinfo *slot;
	uint64_t mask;
	tinfo none; /* what id 0 gets */
} tmap;

static tinfo *tmap_get(tmap *m, uint64_t id)
{
	if (!id) { /* 0 (no task) marks free slots: never stored */
		memset(&m->none, 0, sizeof(m->none));
		return &m->none;
	}
	for (uint64_t i = (id * 0x9e3779b97f4a7c15ull) >> 17;; i++) {
		tinfo *s = &m->slot[i & m->mask];
		if (s->id == id)
			return s;
		if (!s->id) {
			s->id = id;
			return s;
		}
	}
}

/* One event to write, in time order. */
typedef struct item {
	int64_t ns; /* since the start */
	uint64_t seq;
	const weft__tev *e;
	unsigned loop;
} item;

static int item_cmp(const void *a, const void *b)
{
	const item *x = a, *y = b;
	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Per loop while writing: the task running and the sleep under way. */
typedef struct lstate {
	uint64_t run_id;
	int64_t run_ns; /* -1: none */
	int64_t sleep_ns;
	int64_t first_ns; /* where its kept events begin: the start, or
			     its oldest event kept when its ring wrapped */
	bool ran;       /* a RUN seen: a run without one began before the
			   kept events only while this is false */
} lstate;

typedef struct writer {
	out o;
	tmap m;
	lstate *ls;
	int pid;
	unsigned nloops;
	uint64_t flows;
} writer;

static double us(int64_t ns)
{
	return (double)ns / 1000.0;
}

static const char *task_name(writer *w, uint64_t id, char *buf, size_t cap)
{
	tinfo *ti = tmap_get(&w->m, id);
	char raw[40];
	if (ti->name[0]) {
		memcpy(raw, ti->name, 32);
		raw[31] = 0;
	} else {
		snprintf(raw, sizeof(raw), "task-%llu", (unsigned long long)id);
	}
	json_escape(buf, cap, raw);
	return buf;
}

static void emit_instant(writer *w, unsigned loop, int64_t ns, const char *name, uint64_t id,
			 const char *more)
{
	out_printf(&w->o,
		   ",\n{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"weft\",\"name\":\"%s\",\"pid\":%d,"
		   "\"tid\":%u,\"ts\":%.3f,\"args\":{\"task\":%llu%s}}",
		   name, w->pid, loop, us(ns), (unsigned long long)id, more);
}

static void emit_slice(writer *w, unsigned loop, int64_t from, int64_t to, const char *cat,
		       const char *name, const char *args)
{
	out_printf(&w->o,
		   ",\n{\"ph\":\"X\",\"cat\":\"%s\",\"name\":\"%s\",\"pid\":%d,\"tid\":%u,"
		   "\"ts\":%.3f,\"dur\":%.3f,\"args\":{%s}}",
		   cat, name, w->pid, loop, us(from), us(to - from), args);
}

/* A flow arrow starts at `ns` on `loop`, from a zero-length slice there
 * (flows bind to slices), and ends at task id's next run. */
static void emit_flow_start(writer *w, unsigned loop, int64_t ns, const char *what,
			    uint64_t id)
{
	char nm[96], label[160];
	task_name(w, id, nm, sizeof(nm));
	snprintf(label, sizeof(label), "%s %s", what, nm);
	char args[64];
	snprintf(args, sizeof(args), "\"task\":%llu", (unsigned long long)id);
	emit_slice(w, loop, ns, ns, "flow", label, args);
	uint64_t f = ++w->flows;
	out_printf(&w->o,
		   ",\n{\"ph\":\"s\",\"cat\":\"flow\",\"name\":\"%s\",\"id\":%llu,\"pid\":%d,"
		   "\"tid\":%u,\"ts\":%.3f}",
		   what, (unsigned long long)f, w->pid, loop, us(ns));
	tinfo *ti = tmap_get(&w->m, id);
	ti->flow = f;
	ti->flow_name = what;
}

/* The run of task id on loop ended at ns (how: "park: lock", "exit"...). */
static void end_run(writer *w, unsigned loop, uint64_t id, int64_t ns, const char *how)
{
	lstate *s = &w->ls[loop];
	int64_t from = s->run_ns;
	s->run_ns = -1;
	if (from < 0 || s->run_id != id) {
		if (s->ran)
			return; /* its RUN is not among the events: no slice */
		from = s->first_ns; /* it was running when the kept events begin */
	}
	char nm[96], args[128];
	snprintf(args, sizeof(args), "\"task\":%llu,\"then\":\"%s\"", (unsigned long long)id, how);
	emit_slice(w, loop, from, ns, "run", task_name(w, id, nm, sizeof(nm)), args);
}

/* Loop L records no more from ns on: what is under way ends there. */
static void end_loop(writer *w, unsigned L, int64_t ns)
{
	lstate *s = &w->ls[L];
	if (s->run_ns >= 0)
		end_run(w, L, s->run_id, ns, "trace stop");
	if (s->sleep_ns >= 0)
		emit_slice(w, L, s->sleep_ns, ns, "loop", "sleep", "");
	s->sleep_ns = -1;
}

static void write_event(writer *w, const item *it)
{
	const weft__tev *e = it->e;
	unsigned L = it->loop;
	lstate *s = &w->ls[L];
	char more[160], nm[96];
	switch (e->type) {
	case WEFT_TEV_RUN: {
		if (s->run_ns >= 0)
			end_run(w, L, s->run_id, it->ns, "unrecorded");
		s->run_id = e->id;
		s->run_ns = it->ns;
		s->ran = true;
		tinfo *ti = tmap_get(&w->m, e->id);
		if (ti->flow) {
			out_printf(&w->o,
				   ",\n{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"flow\",\"name\":\"%s\","
				   "\"id\":%llu,\"pid\":%d,\"tid\":%u,\"ts\":%.3f}",
				   ti->flow_name, (unsigned long long)ti->flow, w->pid, L, us(it->ns));
			ti->flow = 0;
		}
		break;
	}
	case WEFT_TEV_PARK: {
		char how[48];
		snprintf(how, sizeof(how), "park: %s", wait_name(e->kind));
		end_run(w, L, e->id, it->ns, how);
		if (e->kind == WEFT_WAIT_IO)
			snprintf(more, sizeof(more), ",\"on\":\"io\",\"op\":\"%s\",\"fd\":%d",
				 op_name((unsigned)e->x), (int32_t)e->arg);
		else
			snprintf(more, sizeof(more), ",\"on\":\"%s\"", wait_name(e->kind));
		emit_instant(w, L, it->ns, how, e->id, more);
		break;
	}
	case WEFT_TEV_YIELD:
		end_run(w, L, e->id, it->ns, "yield");
		break;
	case WEFT_TEV_EXIT:
		end_run(w, L, e->id, it->ns, "exit");
		break;
	case WEFT_TEV_SPAWN:
		snprintf(more, sizeof(more), ",\"name\":\"%s\",\"parent\":%llu",
			 task_name(w, e->id, nm, sizeof(nm)), (unsigned long long)e->x);
		emit_instant(w, L, it->ns, "spawn", e->id, more);
		break;
	case WEFT_TEV_WAKE:
		snprintf(more, sizeof(more), ",\"name\":\"%s\",\"waker\":%llu,\"to_loop\":%u",
			 task_name(w, e->id, nm, sizeof(nm)), (unsigned long long)e->x, e->peer);
		emit_instant(w, L, it->ns, "wake", e->id, more);
		if (e->peer != L)
			emit_flow_start(w, L, it->ns, "wake", e->id);
		break;
	case WEFT_TEV_STEAL:
		snprintf(more, sizeof(more), ",\"from_loop\":%u,\"tasks\":%u", e->peer, e->arg);
		emit_instant(w, L, it->ns, "steal", e->id, more);
		if (e->peer < w->nloops && e->peer != L)
			emit_flow_start(w, e->peer, it->ns, "stolen", e->id);
		break;
	case WEFT_TEV_SUBMIT:
	case WEFT_TEV_COMPLETE: {
		bool sub = e->type == WEFT_TEV_SUBMIT;
		char name[48];
		snprintf(name, sizeof(name), "%s %s", sub ? "submit" : "complete",
			 op_name(e->kind));
		snprintf(more, sizeof(more), sub ? ",\"fd\":%d" : ",\"result\":%d", (int32_t)e->arg);
		emit_instant(w, L, it->ns, name, e->id, more);
		break;
	}
	case WEFT_TEV_TIMER:
		emit_instant(w, L, it->ns, "timer", e->id, "");
		break;
	case WEFT_TEV_SLEEP:
		s->sleep_ns = it->ns;
		break;
	case WEFT_TEV_WAKEUP:
		if (s->sleep_ns >= 0)
			emit_slice(w, L, s->sleep_ns, it->ns, "loop", "sleep", "");
		s->sleep_ns = -1;
		break;
	case WEFT_TEV_STOP:
		end_loop(w, L, it->ns);
		break;
	}
}

static void write_header(writer *w, const struct weft__trace *tr, const weft_trace_stats *st)
{
	out_printf(&w->o,
		   "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"recorded\":%llu,\"kept\":%llu,"
		   "\"overwritten\":%llu,\"foreign\":%llu,\"duration_ns\":%llu},\n"
		   "\"traceEvents\":[\n"
		   "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"tid\":0,"
		   "\"args\":{\"name\":\"weft runtime (pid %d)\"}}",
		   (unsigned long long)st->recorded, (unsigned long long)st->kept,
		   (unsigned long long)st->overwritten, (unsigned long long)st->foreign,
		   (unsigned long long)st->duration_ns, w->pid, w->pid);
	for (unsigned i = 0; i < tr->nloops; i++)
		out_printf(&w->o,
			   ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%u,"
			   "\"args\":{\"name\":\"loop %u\"}},\n"
			   "{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":%d,\"tid\":%u,"
			   "\"args\":{\"sort_index\":%u}}",
			   w->pid, i, i, w->pid, i, i);
}

/* Collect the kept events in time order (names into the map); NULL on
 * ENOMEM. */
static item *collect(writer *w, const struct weft__trace *tr, uint64_t *n_out)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < tr->nloops; i++)
		total += tr->head[i] < tr->cap ? tr->head[i] : tr->cap;
	item *v = malloc((total ? total : 1) * sizeof(*v));
	uint64_t slots = 16;
	while (slots < 2 * total + 16)
		slots <<= 1;
	w->m.slot = calloc(slots, sizeof(tinfo));
	w->m.mask = slots - 1;
	if (!v || !w->m.slot) {
		free(v);
		return NULL;
	}
	double rate = tr->clk1 > tr->clk0 ? (double)(tr->ns1 - tr->ns0) /
						(double)(tr->clk1 - tr->clk0)
					  : 1.0;
	uint64_t n = 0;
	for (unsigned i = 0; i < tr->nloops; i++) {
		uint64_t h = tr->head[i], k = h < tr->cap ? h : tr->cap;
		w->ls[i] = (lstate){ .run_ns = -1, .sleep_ns = -1 };
		uint64_t o = h - k;
		while (o < h && tr->ring[i][o & (tr->cap - 1)].type == WEFT_TEV_NAME)
			o++; /* a name's ts holds no time */
		if (h > k && o < h) { /* wrapped: from its oldest event kept */
			int64_t d = (int64_t)(tr->ring[i][o & (tr->cap - 1)].ts - tr->clk0);
			w->ls[i].first_ns = (int64_t)((double)d * rate);
		}
		for (uint64_t j = h - k; j < h; j++) {
			const weft__tev *e = &tr->ring[i][j & (tr->cap - 1)];
			if (e->type == WEFT_TEV_NAME) {
				char *nm = tmap_get(&w->m, e->id)->name + 16 * (e->arg & 1);
				memcpy(nm, &e->ts, 8);
				memcpy(nm + 8, &e->x, 8);
				continue;
			}
			int64_t d = (int64_t)(e->ts - tr->clk0);
			v[n] = (item){ .ns = (int64_t)((double)d * rate), .seq = n, .e = e,
				       .loop = i };
			n++;
		}
	}
	qsort(v, n, sizeof(*v), item_cmp);
	*n_out = n;
	return v;
}

static int64_t write_trace(const struct weft__trace *tr, int fd)
{
	writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->o.fd = fd;
	w->pid = (int)getpid();
	w->nloops = tr->nloops;
	w->ls = calloc(tr->nloops, sizeof(*w->ls));
	uint64_t n = 0;
	item *v = w->ls ? collect(w, tr, &n) : NULL;
	int64_t r = -ENOMEM;
	if (v) {
		weft_trace_stats st;
		stats_of(tr, &st);
		write_header(w, tr, &st);
		for (uint64_t i = 0; i < n; i++)
			write_event(w, &v[i]);
		for (unsigned i = 0; i < tr->nloops; i++) /* a STOP overwritten */
			end_loop(w, i, (int64_t)(tr->ns1 - tr->ns0));
		out_printf(&w->o, "\n]}\n");
		out_flush(&w->o);
		r = w->o.err ? w->o.err : w->o.total;
	}
	free(v);
	free(w->m.slot);
	free(w->ls);
	free(w);
	return r;
}

int64_t weft_trace_write(weft_runtime *rt, int fd)
{
	if (!rt || fd < 0)
		return -EINVAL;
	int r = read_enter(rt);
	if (r < 0)
		return r;
	int64_t n = write_trace(rt->trace, fd);
	busy_exit(rt);
	return n;
}

int64_t weft_trace_write_path(weft_runtime *rt, const char *path)
{
	if (!rt || !path)
		return -EINVAL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int64_t n = weft_trace_write(rt, fd);
	if (close(fd) < 0 && n >= 0)
		n = -errno;
	return n;
}

/* ------------------------------------------------------------------------ */
/* WEFT_TRACE: a whole run, without changing the program                    */
/* ------------------------------------------------------------------------ */

void weft__trace_env_start(weft_runtime *rt)
{
	const char *path = getenv("WEFT_TRACE");
	if (!path || !*path)
		return;
	const char *ev = getenv("WEFT_TRACE_EVENTS");
	size_t n = ev ? (size_t)strtoull(ev, NULL, 10) : 0;
	int r = -ENOMEM;
	if (!(rt->trace_env = strdup(path)) || (r = weft_trace_start(rt, n)) < 0) {
		fprintf(stderr, "weft: WEFT_TRACE=%s: cannot start the trace: %s\n", path,
			strerror(-r));
		free(rt->trace_env);
		rt->trace_env = NULL;
	}
}

void weft__trace_env_finish(weft_runtime *rt)
{
	if (!rt->trace_env)
		return;
	int64_t r = weft_trace_stop(rt);
	if (r == 0)
		r = weft_trace_write_path(rt, rt->trace_env);
	if (r < 0)
		fprintf(stderr, "weft: WEFT_TRACE=%s: cannot write the trace: %s\n",
			rt->trace_env, strerror((int)-r));
	free(rt->trace_env);
	rt->trace_env = NULL;
}
