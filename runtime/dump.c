/*
 * Task dumps (weft/dump.h, docs/observability.md "Task dumps").
 *
 * A loop's registry is owner-only, so a dump never walks it from another
 * thread: weft_dump sends each loop a request (a part, pushed on the
 * loop's `dumps` stack, then a wake), and each loop writes its own part in
 * its scheduler, between tasks (weft__dump_serve, from its maintenance
 * pass).  The caller waits for the parts with a timeout; a loop that does
 * not answer in time is stuck in a task and is reported as such, and its
 * part, when it comes, goes nowhere (the request is reference-counted).
 *
 * A parked task's stack is read while the task is held (weft__task_hold):
 * marked running with no loop running it, so a wake meanwhile only marks
 * it, and weft__task_unhold queues it as a switch-out would have.
 *
 * On a signal (weft_runtime_config.dump_signal) the handler only writes a
 * byte to a pipe; a thread of the runtime's reads it and calls weft_dump.
 */
#include "internal.h"
#include "../io/io.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

#define DUMP_FRAMES 48            /* backtrace frames per task at most */
#define DUMP_SIGNAL_TIMEOUT 1000000000ull /* a signal's dump waits 1 s */

/* ---- a growable text buffer ---- */
typedef struct dbuf {
	char *p;
	size_t len, cap;
	bool oom;
} dbuf;

static void buf_reserve(dbuf *b, size_t more)
{
	if (b->oom || b->len + more < b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap <= b->len + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static __attribute__((format(printf, 2, 3))) void buf_printf(dbuf *b, const char *fmt, ...)
{
	for (int i = 0; i < 2 && !b->oom; i++) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = b->cap - b->len;
		int n = vsnprintf(b->cap ? b->p + b->len : NULL, b->cap ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		buf_reserve(b, (size_t)n + 1);
	}
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void buf_str(dbuf *b, const char *s)
{
	buf_reserve(b, strlen(s) * 6 + 3);
	if (b->oom)
		return;
	b->p[b->len++] = '"';
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = (char)*c;
		} else if (*c < 0x20) {
			b->len += (size_t)sprintf(b->p + b->len, "\\u%04x", *c);
		} else {
			b->p[b->len++] = (char)*c;
		}
	}
	b->p[b->len++] = '"';
	b->p[b->len] = 0;
}

/* ---- names ---- */
static const char *const kind_names[WEFT_WAIT__COUNT] = {
	[WEFT_WAIT_NONE] = "unrecorded",     [WEFT_WAIT_SLEEP] = "sleep",
	[WEFT_WAIT_YIELD] = "yield",         [WEFT_WAIT_FUTURE] = "future",
	[WEFT_WAIT_QUEUE_GET] = "queue_get", [WEFT_WAIT_QUEUE_PUT] = "queue_put",
	[WEFT_WAIT_LOCK] = "lock",           [WEFT_WAIT_EVENT] = "event",
	[WEFT_WAIT_SEMAPHORE] = "semaphore", [WEFT_WAIT_CONDITION] = "condition",
	[WEFT_WAIT_JOIN] = "join",           [WEFT_WAIT_GROUP] = "group",
	[WEFT_WAIT_IO] = "io",               [WEFT_WAIT_OFFLOAD] = "offload",
	[WEFT_WAIT_OTHER] = "other",
};

static const char *const op_names[] = {
	[WEFT_OP_READ] = "read",         [WEFT_OP_WRITE] = "write",
	[WEFT_OP_READV] = "readv",       [WEFT_OP_WRITEV] = "writev",
	[WEFT_OP_RECV] = "recv",         [WEFT_OP_SEND] = "send",
	[WEFT_OP_RECVMSG] = "recvmsg",   [WEFT_OP_SENDMSG] = "sendmsg",
	[WEFT_OP_ACCEPT] = "accept",     [WEFT_OP_CONNECT] = "connect",
	[WEFT_OP_SHUTDOWN] = "shutdown", [WEFT_OP_CLOSE] = "close",
	[WEFT_OP_OPENAT] = "openat",     [WEFT_OP_STATX] = "statx",
	[WEFT_OP_FSYNC] = "fsync",       [WEFT_OP_FALLOCATE] = "fallocate",
	[WEFT_OP_UNLINKAT] = "unlinkat", [WEFT_OP_RENAMEAT] = "renameat",
	[WEFT_OP_MKDIRAT] = "mkdirat",   [WEFT_OP_SPLICE] = "splice",
	[WEFT_OP_POLL] = "poll",         [WEFT_OP_RECV_MULTI] = "recv_multishot",
	[WEFT_OP_SEND_ZC] = "send_zc",
};

const char *weft__wait_kind_name(unsigned kind)
{
	return kind < WEFT_WAIT__COUNT && kind_names[kind] ? kind_names[kind] : "unknown";
}

const char *weft__opcode_name(unsigned op)
{
	return op < sizeof(op_names) / sizeof(op_names[0]) && op_names[op] ? op_names[op]
									    : "unknown";
}

/* ---- requests and their parts ---- */

/* What the gatherer needs of each task besides its text: the group tree
 * and the in-flight operations are built across loops. */
typedef struct drec {
	uint64_t id, group_id, group_owner;
	uint64_t waits_group, waits_group_owner; /* a parked group wait */
	int io_loop;           /* >= 0: parked on I/O on that loop */
	uint8_t io_op;
	int32_t io_fd;
} drec;

struct weft__dump_part {
	struct weft__dump_part *next; /* on the loop's `dumps` stack */
	struct weft__dump_req *req;
	bool done;                   /* under req->lock: answered */
	bool taken;                  /* done when the caller looked: the
					parts it reads (never the loop's again) */
	dbuf text;                   /* its tasks' JSON objects, comma-led */
	drec *recs;
	size_t nrecs, cap;
	unsigned ntasks, inflight;
};

typedef struct weft__dump_req {
	weft__lock lock;
	weft__waitlist waiters;
	unsigned pending;            /* parts not answered yet */
	_Atomic unsigned refs;       /* the caller, and each loop not done */
	unsigned nparts;
	struct weft__dump_part parts[];
} weft__dump_req;

static void req_unref(weft__dump_req *r)
{
	if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (unsigned i = 0; i < r->nparts; i++) {
		free(r->parts[i].text.p);
		free(r->parts[i].recs);
	}
	free(r);
}

static drec *rec_add(struct weft__dump_part *p)
{
	if (p->nrecs == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		drec *n = realloc(p->recs, cap * sizeof(*n));
		if (!n)
			return NULL;
		p->recs = n;
		p->cap = cap;
	}
	drec *d = &p->recs[p->nrecs++];
	memset(d, 0, sizeof(*d));
	d->io_loop = -1;
	return d;
}

/* ---- backtraces of held tasks ---- */

static void frame_out(dbuf *b, unsigned i, uintptr_t ip, const char *name, uintptr_t off)
{
	buf_printf(b, "%s{\"ip\":\"0x%lx\",\"fn\":", i ? "," : "", (unsigned long)ip);
	if (name && *name) {
		buf_str(b, name);
		buf_printf(b, ",\"off\":%lu}", (unsigned long)off);
	} else {
		buf_printf(b, "null}");
	}
}

#if defined(__x86_64__)
/* libunwind from the task's saved registers: a context of our own with
 * the callee-saved registers, the stack pointer and the resume address
 * replaced by the task's (runtime/ctx_x86_64.S; the CFI of its switch
 * makes the first step land in its caller).  One unwind at a time in the
 * process: loops answer a dump at the same moment, and libunwind's lazy
 * set-up and caches synchronize in ways ThreadSanitizer cannot see (it is
 * not instrumented); a few microseconds each, on dumps only. */
static pthread_mutex_t unwind_mu = PTHREAD_MUTEX_INITIALIZER;

static void unwind_out(dbuf *b, const weft_task *t);

static void backtrace_out(dbuf *b, const weft_task *t)
{
	pthread_mutex_lock(&unwind_mu);
	unwind_out(b, t);
	pthread_mutex_unlock(&unwind_mu);
}

static void unwind_out(dbuf *b, const weft_task *t)
{
	const weft__ctx *c = &t->fib.ctx;
	unw_context_t uc;
	unw_cursor_t cur;
	if (unw_getcontext(&uc) != 0)
		return;
	greg_t *g = uc.uc_mcontext.gregs;
	g[REG_RIP] = (greg_t)c->rip;
	g[REG_RSP] = (greg_t)c->rsp;
	g[REG_RBP] = (greg_t)c->rbp;
	g[REG_RBX] = (greg_t)c->rbx;
	g[REG_R12] = (greg_t)c->r12;
	g[REG_R13] = (greg_t)c->r13;
	g[REG_R14] = (greg_t)c->r14;
	g[REG_R15] = (greg_t)c->r15;
	if (unw_init_local(&cur, &uc) != 0)
		return;
	unsigned i = 0;
	do {
		unw_word_t ip = 0, off = 0;
		char name[128];
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || ip == 0)
			break;
		if (unw_get_proc_name(&cur, name, sizeof(name), &off) != 0)
			name[0] = 0;
		frame_out(b, i, (uintptr_t)ip, name, (uintptr_t)off);
	} while (++i < DUMP_FRAMES && unw_step(&cur) > 0);
}
#else
/* Elsewhere (aarch64): the switch, its caller (the saved lr), then the
 * frame-pointer chain from the saved fp (frame records {fp, lr}), kept
 * inside the task's stack; named by dladdr (exported symbols only). */
static void frame_named(dbuf *b, unsigned i, uintptr_t pc)
{
	Dl_info di;
	bool named = dladdr((void *)pc, &di) && di.dli_sname;
	frame_out(b, i, pc, named ? di.dli_sname : NULL, named ? pc - (uintptr_t)di.dli_saddr : 0);
}

static void backtrace_out(dbuf *b, const weft_task *t)
{
	const weft__ctx *c = &t->fib.ctx;
	uintptr_t lo = (uintptr_t)t->stack_base, hi = lo + t->stack_size;
	uintptr_t fp = (uintptr_t)c->fp;
	unsigned i = 0;
	frame_named(b, i++, (uintptr_t)c->pc);
	frame_named(b, i++, (uintptr_t)c->lr);
	while (i < DUMP_FRAMES && fp >= lo && fp + 16 <= hi && !(fp & 15)) {
		const uintptr_t *rec = (const uintptr_t *)fp;
		if (!rec[1])
			break;
		frame_named(b, i++, rec[1]);
		if (rec[0] <= fp)
			break; /* the chain ends (the trampoline's fp is 0) */
		fp = rec[0];
	}
}
#endif

/* ---- one loop's part ---- */

static const char *state_name(uint32_t s)
{
	return s & WEFT_TS_RUNNING ? "running" : s & WEFT_TS_NOTIFIED ? "ready" : "parked";
}

/* What held task t waits on, as the "wait" object. */
static void wait_out(dbuf *b, const weft_task *t, drec *d, uint64_t now)
{
	unsigned k = t->wait_kind;
	buf_printf(b, ",\"wait\":{\"kind\":\"%s\"", weft__wait_kind_name(k));
	uint64_t since = t->wait_since;
	if (since && since <= now)
		buf_printf(b, ",\"since_ns\":%llu,\"waiting_ms\":%.3f", (unsigned long long)since,
			   (double)(now - since) / 1e6);
	switch (k) {
	case WEFT_WAIT_SLEEP:
		if (t->wait_until)
			buf_printf(b, ",\"until_ns\":%llu", (unsigned long long)t->wait_until);
		break;
	case WEFT_WAIT_IO:
		buf_printf(b, ",\"op\":\"%s\",\"fd\":%d", weft__opcode_name(t->wait_op),
			   (int)t->wait_fd);
		if (d) {
			d->io_loop = (int)t->loop->index; /* bound to it while in flight */
			d->io_op = t->wait_op;
			d->io_fd = t->wait_fd;
		}
		break;
	case WEFT_WAIT_JOIN: /* the joiner holds a handle: t stays */
		if (t->wait_obj)
			buf_printf(b, ",\"task\":%llu",
				   (unsigned long long)((const weft_task *)t->wait_obj)->id);
		break;
	case WEFT_WAIT_GROUP: { /* the waiter holds the group */
		uint64_t owner, gid = weft__group_id(t->wait_obj, &owner);
		buf_printf(b, ",\"group\":%llu", (unsigned long long)gid);
		if (d) {
			d->waits_group = gid;
			d->waits_group_owner = owner;
		}
		break;
	}
	default:
		break;
	}
	if (t->wait_obj && k != WEFT_WAIT_JOIN && k != WEFT_WAIT_GROUP)
		buf_printf(b, ",\"object\":\"%p\"", t->wait_obj);
	buf_printf(b, "}");
}

/* One task of l's registry. */
static void task_out(struct weft__dump_part *p, weft_task *t, uint64_t now)
{
	uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);
	if (s & WEFT_TS_DONE)
		return;
	bool held = !(s & (WEFT_TS_RUNNING | WEFT_TS_NOTIFIED)) && weft__task_hold(t);
	if (!held) {
		s = atomic_load_explicit(&t->state, memory_order_acquire);
		if (s & WEFT_TS_DONE)
			return;
		if (!(s & (WEFT_TS_RUNNING | WEFT_TS_NOTIFIED)))
			s = WEFT_TS_NOTIFIED; /* parked and woken again since: ready */
	}
	dbuf *b = &p->text;
	weft_loop *at = __atomic_load_n(&t->loop, __ATOMIC_RELAXED);
	int16_t pin = __atomic_load_n(&t->pin, __ATOMIC_RELAXED);
	buf_printf(b, "%s{\"id\":%llu,\"name\":", p->ntasks++ ? "," : "",
		   (unsigned long long)t->id);
	if (t->name[0]) {
		char name[sizeof(t->name)];
		memcpy(name, t->name, sizeof(name));
		name[sizeof(name) - 1] = 0;
		buf_str(b, name);
	} else {
		buf_printf(b, "\"task-%llu\"", (unsigned long long)t->id);
	}
	buf_printf(b, ",\"state\":\"%s\",\"loop\":%d,\"registry\":%u,\"pinned\":%s",
		   held ? "parked" : state_name(s), at ? (int)at->index : -1, t->owner->index,
		   pin >= 0 ? "true" : "false");
	if (pin >= 0)
		buf_printf(b, ",\"pin\":%d", pin);
	if (t->group_id)
		buf_printf(b, ",\"group\":%llu", (unsigned long long)t->group_id);
	drec *d = rec_add(p);
	if (d) {
		d->id = t->id;
		d->group_id = t->group_id;
		d->group_owner = t->group_owner;
	}
	if (held) {
		wait_out(b, t, d, now);
		buf_printf(b, ",\"backtrace\":[");
		backtrace_out(b, t);
		buf_printf(b, "]");
		weft__task_unhold(t);
	}
	buf_printf(b, "}");
}

static void part_fill(weft_loop *l, struct weft__dump_part *p)
{
	uint64_t now = weft_now_ns();
	for (weft_task *t = l->reg_head; t; t = t->reg_next)
		task_out(p, t, now);
	p->inflight = l->inflight;
}

/* l->dumps once l has left its scheduler: requests are answered at once,
 * empty. */
#define DUMPS_CLOSED ((struct weft__dump_part *)1)

static void part_answer(struct weft__dump_part *p)
{
	weft__dump_req *r = p->req;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&r->lock);
	p->done = true;
	if (--r->pending == 0)
		weft__waitlist_fire_all(&r->waiters, &wk);
	weft__unlock_wake(&r->lock, &wk);
	req_unref(r);
}

static void serve(weft_loop *l, struct weft__dump_part *p)
{
	while (p && p != DUMPS_CLOSED) {
		struct weft__dump_part *next = p->next;
		part_fill(l, p);
		part_answer(p);
		p = next;
	}
}

void weft__dump_serve(weft_loop *l)
{
	serve(l, atomic_exchange_explicit(&l->dumps, NULL, memory_order_acquire));
}

void weft__dump_close(weft_loop *l)
{
	serve(l, atomic_exchange_explicit(&l->dumps, DUMPS_CLOSED, memory_order_acq_rel));
}

/* ---- gathering: the group tree ---- */

typedef struct dgroup {
	uint64_t id, owner;
} dgroup;

typedef struct dtree {
	const drec **byg;   /* records by group id */
	size_t n;
	dgroup *groups;     /* by owner */
	size_t ng;
} dtree;

static int cmp_rec_group(const void *a, const void *b)
{
	const drec *x = *(const drec *const *)a, *y = *(const drec *const *)b;
	return x->group_id < y->group_id ? -1 : x->group_id > y->group_id;
}

static int cmp_group_owner(const void *a, const void *b)
{
	const dgroup *x = a, *y = b;
	if (x->owner != y->owner)
		return x->owner < y->owner ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static size_t lower_rec(const dtree *tr, uint64_t gid)
{
	size_t lo = 0, hi = tr->n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (tr->byg[m]->group_id < gid)
			lo = m + 1;
		else
			hi = m;
	}
	return lo;
}

static size_t lower_group(const dtree *tr, uint64_t owner)
{
	size_t lo = 0, hi = tr->ng;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (tr->groups[m].owner < owner)
			lo = m + 1;
		else
			hi = m;
	}
	return lo;
}

static void group_node(dbuf *b, const dtree *tr, const dgroup *g, unsigned depth);

/* A task and the groups it created. */
static void task_node(dbuf *b, const dtree *tr, uint64_t id, unsigned depth)
{
	buf_printf(b, "{\"task\":%llu,\"groups\":[", (unsigned long long)id);
	size_t i = lower_group(tr, id);
	for (bool first = true; id && depth < 64 && i < tr->ng && tr->groups[i].owner == id;
	     i++, first = false) {
		buf_printf(b, first ? "" : ",");
		group_node(b, tr, &tr->groups[i], depth + 1);
	}
	buf_printf(b, "]}");
}

/* A group and its children. */
static void group_node(dbuf *b, const dtree *tr, const dgroup *g, unsigned depth)
{
	buf_printf(b, "{\"group\":%llu,\"owner\":%llu,\"children\":[", (unsigned long long)g->id,
		   (unsigned long long)g->owner);
	size_t i = lower_rec(tr, g->id);
	for (bool first = true; i < tr->n && tr->byg[i]->group_id == g->id; i++, first = false) {
		buf_printf(b, first ? "" : ",");
		task_node(b, tr, tr->byg[i]->id, depth);
	}
	buf_printf(b, "]}");
}

static int cmp_rec_id(const void *a, const void *b)
{
	const drec *x = *(const drec *const *)a, *y = *(const drec *const *)b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Whether task `id` is among the n records sorted by id. */
static bool live_task(const drec **byid, size_t n, uint64_t id)
{
	drec key = { .id = id };
	const drec *k = &key;
	return bsearch(&k, byid, n, sizeof(*byid), cmp_rec_id) != NULL;
}

/* Roots: tasks in no group, and groups whose creator is not a live task
 * (a foreign thread's, or a loop that did not answer). */
static void tree_out(dbuf *b, const drec **recs, size_t n)
{
	dtree tr = { .n = n };
	const drec **byid = malloc((n ? n : 1) * sizeof(*byid));
	tr.byg = malloc((n ? n : 1) * sizeof(*tr.byg));
	tr.groups = malloc((2 * n + 1) * sizeof(*tr.groups));
	if (!byid || !tr.byg || !tr.groups) {
		b->oom = true;
		goto out;
	}
	memcpy(tr.byg, recs, n * sizeof(*recs));
	memcpy(byid, recs, n * sizeof(*recs));
	qsort(tr.byg, n, sizeof(*tr.byg), cmp_rec_group);
	qsort(byid, n, sizeof(*byid), cmp_rec_id);
	for (size_t i = 0; i < n; i++) {
		if (recs[i]->group_id)
			tr.groups[tr.ng++] = (dgroup){ recs[i]->group_id, recs[i]->group_owner };
		if (recs[i]->waits_group)
			tr.groups[tr.ng++] =
				(dgroup){ recs[i]->waits_group, recs[i]->waits_group_owner };
	}
	qsort(tr.groups, tr.ng, sizeof(*tr.groups), cmp_group_owner);
	size_t u = 0; /* unique (owner, id) pairs */
	for (size_t i = 0; i < tr.ng; i++)
		if (!u || tr.groups[u - 1].id != tr.groups[i].id ||
		    tr.groups[u - 1].owner != tr.groups[i].owner)
			tr.groups[u++] = tr.groups[i];
	tr.ng = u;
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (byid[i]->group_id)
			continue;
		buf_printf(b, first ? "" : ",");
		first = false;
		task_node(b, &tr, byid[i]->id, 0);
	}
	for (size_t i = 0; i < tr.ng; i++) {
		const dgroup *g = &tr.groups[i];
		if (g->owner && live_task(byid, n, g->owner))
			continue;
		buf_printf(b, first ? "" : ",");
		first = false;
		group_node(b, &tr, g, 0);
	}
out:
	free(byid);
	free(tr.byg);
	free(tr.groups);
}

/* ---- the whole document ---- */

static void loop_out(dbuf *b, weft_runtime *rt, unsigned i, const struct weft__dump_part *p,
		     const drec **recs, size_t n)
{
	weft_loop *l = rt->loops[i];
	buf_printf(b, "%s{\"index\":%u,\"backend\":\"%s\"", i ? "," : "", i,
		   weft_backend_name(rt->backend));
	if (!p->taken) {
		buf_printf(b, ",\"stuck\":true,\"last_started_task\":%llu}",
			   (unsigned long long)__atomic_load_n(&l->started_id, __ATOMIC_RELAXED));
		return;
	}
	buf_printf(b, ",\"stuck\":false,\"registered_tasks\":%u,\"inflight\":%u,\"ops\":[",
		   p->ntasks, p->inflight);
	bool first = true;
	for (size_t k = 0; k < n; k++) {
		if (recs[k]->io_loop != (int)i)
			continue;
		buf_printf(b, "%s{\"task\":%llu,\"op\":\"%s\",\"fd\":%d}", first ? "" : ",",
			   (unsigned long long)recs[k]->id, weft__opcode_name(recs[k]->io_op),
			   (int)recs[k]->io_fd);
		first = false;
	}
	buf_printf(b, "]}");
}

static void doc_out(dbuf *b, weft_runtime *rt, weft__dump_req *r, unsigned stuck)
{
	size_t n = 0;
	for (unsigned i = 0; i < r->nparts; i++)
		if (r->parts[i].taken)
			n += r->parts[i].nrecs;
	const drec **recs = malloc((n ? n : 1) * sizeof(*recs));
	if (!recs) {
		b->oom = true;
		return;
	}
	n = 0;
	for (unsigned i = 0; i < r->nparts; i++)
		for (size_t k = 0; r->parts[i].taken && k < r->parts[i].nrecs; k++)
			recs[n++] = &r->parts[i].recs[k];
	buf_printf(b, "{\"weft_dump\":1,\"now_ns\":%llu,\"pid\":%d,\"stuck_loops\":%u,\"loops\":[",
		   (unsigned long long)weft_now_ns(), (int)getpid(), stuck);
	for (unsigned i = 0; i < r->nparts; i++)
		loop_out(b, rt, i, &r->parts[i], recs, n);
	buf_printf(b, "],\"tasks\":[");
	bool first = true;
	for (unsigned i = 0; i < r->nparts; i++) {
		const struct weft__dump_part *p = &r->parts[i];
		if (!p->taken || !p->ntasks)
			continue;
		buf_printf(b, first ? "" : ",");
		first = false;
		if (p->text.oom)
			b->oom = true;
		else
			buf_printf(b, "%.*s", (int)p->text.len, p->text.p);
	}
	buf_printf(b, "],\"tree\":[");
	tree_out(b, recs, n);
	buf_printf(b, "]}\n");
	free(recs);
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Ask every loop for its part; wait for them until `deadline` (internal:
 * 0 none).  Returns the request (one reference the caller's) or NULL. */
static weft__dump_req *request(weft_runtime *rt, weft_task *self, uint64_t deadline, int *err)
{
	weft__dump_req *r = calloc(1, sizeof(*r) + rt->nloops * sizeof(r->parts[0]));
	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	r->nparts = r->pending = rt->nloops;
	atomic_init(&r->refs, rt->nloops + 1);
	for (unsigned i = 0; i < rt->nloops; i++) {
		struct weft__dump_part *p = &r->parts[i];
		p->req = r;
		weft_loop *l = rt->loops[i];
		/* seq_cst: pairs with a loop going to sleep, which stores
		 * `parked` and then looks here (work_visible): either it sees
		 * the request or we see it parked and wake it. */
		p->next = atomic_load_explicit(&l->dumps, memory_order_relaxed);
		while (p->next != DUMPS_CLOSED &&
		       !atomic_compare_exchange_weak_explicit(&l->dumps, &p->next, p,
							      memory_order_seq_cst,
							      memory_order_relaxed))
			;
		if (p->next == DUMPS_CLOSED) /* the loop has stopped: no tasks */
			part_answer(p);
	}
	weft__wake_all_loops(rt);
	weft__lock_acquire(&r->lock);
	*err = 0;
	while (r->pending && *err == 0) {
		weft__waiter w;
		weft__wait_on(self, WEFT_WAIT_OTHER, r); /* a dump */
		*err = weft__wait_locked(self, &r->lock, &r->waiters, &w, deadline);
		weft__lock_acquire(&r->lock);
	}
	weft__lock_release(&r->lock);
	return r;
}

int weft_dump(weft_runtime *rt, int fd, uint64_t timeout_ns)
{
	if (!rt || fd < 0)
		return -EINVAL;
	if (atomic_load_explicit(&rt->state, memory_order_acquire) != 1)
		return -ESHUTDOWN;
	weft_task *self = weft__task_self();
	int err = self ? weft__checkpoint(self) : 0;
	if (err < 0)
		return err;
	weft__dump_req *r = request(rt, self, weft__deadline_after(timeout_ns), &err);
	if (!r)
		return err;
	if (err == -ETIMEDOUT || err == -ETIME)
		err = 0; /* a loop did not answer: reported as stuck */
	/* The parts answered by now are the loops' no longer: read them under
	 * no lock; the stragglers' are left alone. */
	unsigned stuck = 0;
	weft__lock_acquire(&r->lock);
	for (unsigned i = 0; i < r->nparts; i++) {
		r->parts[i].taken = r->parts[i].done;
		stuck += !r->parts[i].taken;
	}
	weft__lock_release(&r->lock);
	if (err == 0) {
		dbuf b = { 0 };
		doc_out(&b, rt, r, stuck);
		err = b.oom ? -ENOMEM : write_all(fd, b.p, b.len);
		free(b.p);
	}
	req_unref(r);
	return err < 0 ? err : (int)stuck;
}

/* ---- dumps on a signal ---- */

/* The runtimes that dump on a signal: the write ends of their pipes.  The
 * handler reads this table only (async-signal-safe: loads and write(2)). */
#define DUMPSIG_MAX 16
static _Atomic int sig_fds[DUMPSIG_MAX] = { [0 ... DUMPSIG_MAX - 1] = -1 };
static _Atomic int sig_nums[DUMPSIG_MAX];
static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int sig_active;         /* handlers running now */
static struct sigaction sig_old[NSIG]; /* under sig_mu */
static unsigned sig_users[NSIG];       /* under sig_mu */

struct weft__dumpsig {
	int pipe[2];
	int slot;
	pthread_t thread;
};

static void on_signal(int sig)
{
	int saved = errno;
	atomic_fetch_add_explicit(&sig_active, 1, memory_order_seq_cst);
	for (int i = 0; i < DUMPSIG_MAX; i++) {
		int fd = atomic_load_explicit(&sig_fds[i], memory_order_acquire);
		if (fd >= 0 && atomic_load_explicit(&sig_nums[i], memory_order_relaxed) == sig) {
			char c = 'd';
			ssize_t w = write(fd, &c, 1); /* full pipe: a dump is due anyway */
			(void)w;
		}
	}
	atomic_fetch_sub_explicit(&sig_active, 1, memory_order_seq_cst);
	errno = saved;
}

/* Where a signal's dump goes: cfg.dump_path, appended; else stderr. */
static void dump_now(weft_runtime *rt)
{
	const char *path = rt->cfg.dump_path;
	int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : STDERR_FILENO;
	if (fd < 0) {
		fprintf(stderr, "weft: task dump: cannot open %s: %s\n", path, strerror(errno));
		return;
	}
	int r = weft_dump(rt, fd, DUMP_SIGNAL_TIMEOUT);
	if (r < 0)
		fprintf(stderr, "weft: task dump failed: %s\n", strerror(-r));
	if (path)
		close(fd);
}

static void *dumper(void *arg)
{
	weft_runtime *rt = arg;
	for (;;) {
		char c[16];
		ssize_t n = read(rt->dumpsig->pipe[0], c, sizeof(c));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || memchr(c, 'q', (size_t)n))
			return NULL;
		dump_now(rt);
	}
}

int weft__dump_signal_start(weft_runtime *rt)
{
	int sig = rt->cfg.dump_signal;
	if (!sig)
		return 0;
	struct weft__dumpsig *ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	if (pipe2(ds->pipe, O_CLOEXEC) < 0) {
		int err = -errno;
		free(ds);
		return err;
	}
	fcntl(ds->pipe[1], F_SETFL, O_NONBLOCK); /* the handler never blocks */
	rt->dumpsig = ds;
	int err = -pthread_create(&ds->thread, NULL, dumper, rt);
	pthread_mutex_lock(&sig_mu);
	ds->slot = -1;
	for (int i = 0; err == 0 && i < DUMPSIG_MAX && ds->slot < 0; i++)
		if (atomic_load(&sig_fds[i]) < 0)
			ds->slot = i;
	if (err == 0 && ds->slot < 0)
		err = -EBUSY; /* DUMPSIG_MAX runtimes dump on signals already */
	if (err == 0 && sig_users[sig]++ == 0) {
		struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
		sigemptyset(&sa.sa_mask);
		sigaction(sig, &sa, &sig_old[sig]);
	}
	if (err == 0) {
		atomic_store(&sig_nums[ds->slot], sig);
		atomic_store(&sig_fds[ds->slot], ds->pipe[1]);
	}
	pthread_mutex_unlock(&sig_mu);
	if (err < 0 && err != -EBUSY) {
		rt->dumpsig = NULL;
		close(ds->pipe[0]);
		close(ds->pipe[1]);
		free(ds);
	} else if (err < 0) {
		weft__dump_signal_stop(rt);
	}
	return err;
}

/* Before the loops stop: no new dump starts, the one running finishes. */
void weft__dump_signal_stop(weft_runtime *rt)
{
	struct weft__dumpsig *ds = rt->dumpsig;
	if (!ds)
		return;
	int sig = rt->cfg.dump_signal;
	pthread_mutex_lock(&sig_mu);
	if (ds->slot >= 0) {
		atomic_store(&sig_fds[ds->slot], -1);
		if (--sig_users[sig] == 0)
			sigaction(sig, &sig_old[sig], NULL);
	}
	pthread_mutex_unlock(&sig_mu);
	/* A handler that read our fd before it was cleared writes to it yet:
	 * keep it open until none runs. */
	while (atomic_load_explicit(&sig_active, memory_order_seq_cst))
		sched_yield();
	char q = 'q';
	while (write(ds->pipe[1], &q, 1) < 0 && (errno == EINTR || errno == EAGAIN))
		sched_yield();
	pthread_join(ds->thread, NULL);
	close(ds->pipe[0]);
	close(ds->pipe[1]);
	free(ds);
	rt->dumpsig = NULL;
}
