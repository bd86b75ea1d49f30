/*
 * Task dumps (weft_dump, weft/dump.h): tasks parked on every kind of wait
 * show up with that kind, its object, fd or deadline, their group in the
 * task-group tree, and a backtrace holding the function that parked;
 * ready and running tasks; a loop stuck in a task; each loop's in-flight
 * operations; a dump from a task and one on a signal; and tools/weft-gdb.py
 * listing the same tasks from a core file.
 *
 * The JSON is checked by /usr/bin/python3 (json.load, so it must parse),
 * against expectations this file writes (CHECKER below); skipped loudly
 * where python3 is missing.  Asserted on the test's stack (rule 7).
 */
#include "weft_test.h"
#include "weft_test_proc.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PY "/usr/bin/python3"

/* x86_64 names every frame (libunwind, the symbol table); aarch64 walks
 * frame pointers and names exported symbols only (dladdr). */
#if defined(__x86_64__)
#define NAMED_FRAMES 1
#else
#define NAMED_FRAMES 0
#endif

/* Checks a dump (argv[1]) against expectations (argv[2]), prints what
 * differs, exits 1 on any difference.  Expectations: "tasks", a list of
 * objects whose keys must match the task's fields or, for wait fields,
 * its "wait" object; "fn" a function that must be in its backtrace;
 * "in_group_of" a task waiting on the group this one belongs to; "tree",
 * [owner, [children]] pairs: the group the owner waits on must be in the
 * tree under the owner's node, with those children; "ops", tasks whose
 * operation must be in flight on their loop; "stuck", loops that must be
 * stuck (with "last", the task each last started); "complete": no loop
 * stuck.  A third argument: frames are not named (aarch64 names only
 * exported symbols), "fn" then asks for a backtrace of 4 frames or more. */
static const char CHECKER[] =
	"import json, sys\n"
	"d = json.load(open(sys.argv[1]))\n"
	"x = json.load(open(sys.argv[2]))\n"
	"bad = []\n"
	"tasks = {t['id']: t for t in d['tasks']}\n"
	"for e in x.get('tasks', []):\n"
	"    t = tasks.get(e['id'])\n"
	"    if t is None:\n"
	"        bad.append('task %d missing' % e['id']); continue\n"
	"    w = t.get('wait', {})\n"
	"    for k, v in e.items():\n"
	"        if k == 'fn':\n"
	"            fns = [f['fn'] for f in t.get('backtrace', [])]\n"
	"            if len(sys.argv) > 3 and len(fns) < 4: bad.append('task %d: backtrace %s' % (e['id'], fns))\n"
	"            elif len(sys.argv) <= 3 and v not in fns: bad.append('task %d: %s not in backtrace %s' % (e['id'], v, fns))\n"
	"        elif k == 'since':\n"
	"            if not (0 < w.get('since_ns', 0) <= d['now_ns']): bad.append('task %d: since %s' % (e['id'], w))\n"
	"        elif k == 'in_group_of':\n"
	"            g = tasks[v]['wait']['group']\n"
	"            if t.get('group') != g: bad.append('task %d: group %s, want %s' % (e['id'], t.get('group'), g))\n"
	"        elif k in t:\n"
	"            if t[k] != v: bad.append('task %d: %s=%r, want %r' % (e['id'], k, t[k], v))\n"
	"        elif w.get(k) != v: bad.append('task %d: wait %s=%r, want %r' % (e['id'], k, w.get(k), v))\n"
	"def walk(nodes, parent):\n"
	"    for n in nodes:\n"
	"        if 'task' in n: yield from walk(n['groups'], n['task'])\n"
	"        else:\n"
	"            yield (parent, n)\n"
	"            yield from walk(n['children'], None)\n"
	"groups = list(walk(d['tree'], None))\n"
	"for owner, kids in x.get('tree', []):\n"
	"    gid = tasks[owner]['wait']['group']\n"
	"    m = [(p, n) for p, n in groups if n['group'] == gid]\n"
	"    if not m: bad.append('group %d not in tree' % gid); continue\n"
	"    p, n = m[0]\n"
	"    if p != owner or n['owner'] != owner: bad.append('group %d under %s, owner %s, want %d' % (gid, p, n['owner'], owner))\n"
	"    got = sorted(c['task'] for c in n['children'])\n"
	"    if got != sorted(kids): bad.append('group %d children %s, want %s' % (gid, got, sorted(kids)))\n"
	"loops = d['loops']\n"
	"for tid in x.get('ops', []):\n"
	"    t = tasks[tid]; lp = t['loop']; w = t['wait']\n"
	"    if {'task': tid, 'op': w['op'], 'fd': w['fd']} not in loops[lp].get('ops', []):\n"
	"        bad.append('loop %d: op of task %d missing: %s' % (lp, tid, loops[lp].get('ops')))\n"
	"for lp in x.get('stuck', []):\n"
	"    if not loops[lp]['stuck']: bad.append('loop %d not stuck' % lp)\n"
	"    elif loops[lp]['last_started_task'] != x['last']: bad.append('loop %d last %s' % (lp, loops[lp]))\n"
	"if x.get('complete') and d['stuck_loops']: bad.append('stuck loops: %d' % d['stuck_loops'])\n"
	"for b in bad: print('dump check:', b)\n"
	"sys.exit(1 if bad else 0)\n";

static char g_dir[PATH_MAX];

/* system(3) of a formatted command. */
static __attribute__((format(printf, 1, 2))) int sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd = NULL;
	int n = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	assert_true(n > 0);
	int r = system(cmd);
	free(cmd);
	return r;
}

static void need_python(void)
{
	if (access(PY, X_OK) != 0) {
		print_message("skip: %s is missing: it checks the dump's JSON\n", PY);
		skip();
	}
}

static void make_dir(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/weft-dump-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
}

static void remove_dir(void)
{
	assert_int_equal(sh("rm -rf '%s'", g_dir), 0);
}

static void write_text(const char *name, const char *text)
{
	weft_test_write_file(g_dir, name, text);
}

/* A test's start: python3 to check with, a directory, a runtime. */
static weft_runtime *begin(unsigned loops)
{
	need_python();
	make_dir();
	return start_rt(loops);
}

/* Run the checker on dump file `dump` with expectations `expect`; loud:
 * show what differs, and the dump.  Returns its exit status. */
static int run_check(const char *dump, const char *expect, bool loud)
{
	write_text("check.py", CHECKER);
	write_text("expect.json", expect);
	int r = sh("%s '%s/check.py' '%s/%s' '%s/expect.json' %s %s", PY, g_dir, g_dir, dump, g_dir,
		   NAMED_FRAMES ? "" : "unnamed", loud ? "" : ">/dev/null");
	if (r != 0 && loud)
		(void)!sh("cat '%s/%s' >&2", g_dir, dump);
	return r;
}

static void check_dump(const char *dump, const char *expect)
{
	assert_int_equal(run_check(dump, expect, true), 0);
}

/* Dump rt into g_dir/name from the test thread; returns weft_dump's. */
static int dump_to(weft_runtime *rt, const char *name, uint64_t timeout_ns)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", g_dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	int r = weft_dump(rt, fd, timeout_ns);
	close(fd);
	return r;
}

/* Dump rt into g_dir/name until it meets `expect` (tasks that reported
 * they started may not have parked yet on a loaded machine), 5 s at most;
 * then check it loudly. */
static void dump_until(weft_runtime *rt, const char *name, const char *expect)
{
	for (int i = 0; i < 50; i++) {
		assert_int_equal(dump_to(rt, name, 10000 * MS), 0);
		if (run_check(name, expect, false) == 0)
			return;
		msleep(100);
	}
	check_dump(name, expect);
}

/* A growable string for the expectations. */
typedef struct sbuf {
	char s[16384];
	size_t n;
} sbuf;

static __attribute__((format(printf, 2, 3))) void sb(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(b->s) - b->n);
	b->n += (size_t)n;
}

/* ------------------------------------------------------------------------ */
/* every kind of wait                                                        */
/* ------------------------------------------------------------------------ */

enum { K_SLEEP, K_FUTURE, K_QGET, K_QPUT, K_LOCK, K_EVENT, K_SEM, K_COND, K_JOIN,
       K_GROUP, K_IO, K_OFFLOAD, K_YIELD_A, K_YIELD_B, NK };

struct env {
	weft_future *fut;
	weft_queue *qempty, *qfull;
	weft_lock lock, cond_lock;
	weft_event ev, go;
	weft_sem sem;
	weft_cond cond;
	int sv[2];
	weft_task *join_target;
	weft_group *grp;
	uint64_t grp_kids[2];
	_Atomic int release_offload, stop_yield;
	_Atomic int started;
	uint64_t ids[NK];
	uint64_t sleep_until;
};

/* Each parker waits, then records nothing: what matters is where it parked.
 * noinline and a use of the result keep its frame in the backtrace. */
#define PARKER(name, expr)                                                             \
	static __attribute__((noinline)) void *name(void *arg)                         \
	{                                                                              \
		struct env *e = arg;                                                   \
		atomic_fetch_add(&e->started, 1);                                      \
		intptr_t r = (intptr_t)(expr);                                         \
		__asm__ volatile("" ::"r"(r) : "memory");                             \
		return (void *)r;                                                      \
	}

PARKER(park_sleep, weft_sleep_until(e->sleep_until))
PARKER(park_future, weft_future_wait(e->fut, NULL))
PARKER(park_qget, ({ void *it; weft_queue_get(e->qempty, &it); }))
PARKER(park_qput, weft_queue_put(e->qfull, e))
PARKER(park_lock, ({ int r_ = weft_lock_acquire(&e->lock); if (!r_) weft_lock_release(&e->lock); r_; }))
PARKER(park_event, weft_event_wait(&e->ev))
PARKER(park_sem, weft_sem_acquire(&e->sem))
PARKER(park_cond, ({ weft_lock_acquire(&e->cond_lock); int r_ = weft_cond_wait(&e->cond);
		     weft_lock_release(&e->cond_lock); r_; }))
PARKER(park_join, weft_task_join(e->join_target, NULL))
PARKER(park_io, ({ char c; weft_recv(e->sv[0], &c, 1, 0); }))

static void *blocking(void *arg)
{
	struct env *e = arg;
	while (!atomic_load(&e->release_offload))
		msleep(1);
	return NULL;
}
PARKER(park_offload, weft_offload(blocking, e, NULL))

static void *yielder(void *arg)
{
	struct env *e = arg;
	atomic_fetch_add(&e->started, 1);
	while (!atomic_load(&e->stop_yield))
		weft_yield();
	return NULL;
}

static void *group_kid(void *arg)
{
	struct env *e = arg;
	atomic_fetch_add(&e->started, 1);
	weft_event_wait(&e->ev);
	return NULL;
}

/* Creates the group (so it owns it), fills it, waits for it. */
static __attribute__((noinline)) void *park_group(void *arg)
{
	struct env *e = arg;
	weft_task *k[2];
	for (int i = 0; i < 2; i++) {
		if (weft_group_spawn(e->grp, &k[i], NULL, group_kid, e) < 0)
			return P(1);
		e->grp_kids[i] = weft_task_id(k[i]);
		weft_task_release(k[i]);
	}
	atomic_fetch_add(&e->started, 1);
	intptr_t r = weft_group_wait(e->grp);
	__asm__ volatile("" ::"r"(r) : "memory");
	return (void *)r;
}

static void *group_maker(void *arg)
{
	struct env *e = arg;
	weft_group_create(&e->grp); /* created here: this task owns it */
	return park_group(arg);
}

static weft_fn const parkers[NK] = {
	[K_SLEEP] = park_sleep, [K_FUTURE] = park_future, [K_QGET] = park_qget,
	[K_QPUT] = park_qput,   [K_LOCK] = park_lock,     [K_EVENT] = park_event,
	[K_SEM] = park_sem,     [K_COND] = park_cond,     [K_JOIN] = park_join,
	[K_GROUP] = group_maker, [K_IO] = park_io,        [K_OFFLOAD] = park_offload,
	[K_YIELD_A] = yielder,  [K_YIELD_B] = yielder,
};

static void env_init(struct env *e)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(weft_future_create(&e->fut), 0);
	assert_int_equal(weft_queue_create(&e->qempty, NULL), 0);
	weft_queue_config qc;
	weft_queue_config_init(&qc);
	qc.capacity = 1;
	assert_int_equal(weft_queue_create(&e->qfull, &qc), 0);
	assert_int_equal(weft_queue_try_put(e->qfull, e), 0);
	assert_int_equal(weft_lock_init(&e->lock), 0);
	assert_int_equal(weft_lock_try_acquire(&e->lock), 0); /* held: waiters park */
	assert_int_equal(weft_lock_init(&e->cond_lock), 0);
	assert_int_equal(weft_event_init(&e->ev), 0);
	assert_int_equal(weft_sem_init(&e->sem, 0), 0);
	assert_int_equal(weft_cond_init(&e->cond, &e->cond_lock), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e->sv), 0);
	e->sleep_until = weft_now_ns() + 60000 * MS;
}

/* What env_init made, once nothing waits on it. */
static void env_free(struct env *e)
{
	void *it;
	while (weft_queue_try_get(e->qfull, &it) == 0)
		;
	assert_int_equal(weft_queue_destroy(e->qempty), 0);
	assert_int_equal(weft_queue_destroy(e->qfull), 0);
	weft_future_release(e->fut);
	close(e->sv[0]);
	close(e->sv[1]);
}

/* Spawn every parker on rt (the yielders pinned to loop 0, the rest
 * spread by the scheduler) and wait until they are all parked or
 * yielding. */
static void park_all(weft_runtime *rt, struct env *e, weft_task **ts)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.name = "joined";
	assert_int_equal(weft_runtime_spawn(rt, &e->join_target, &tc, park_event, e), 0);
	for (int k = 0; k < NK; k++) {
		weft_task_config_init(&tc);
		tc.name = k == K_IO ? "io \"reader\"" : NULL; /* a name to escape */
		if (k == K_YIELD_A || k == K_YIELD_B)
			tc.pin = 0;
		assert_int_equal(weft_runtime_spawn(rt, &ts[k], &tc, parkers[k], e), 0);
		e->ids[k] = weft_task_id(ts[k]);
	}
	/* every parker, the joined task and the two group children */
	for (int i = 0; i < 5000 && atomic_load(&e->started) < NK + 3; i++)
		msleep(1);
	assert_int_equal(atomic_load(&e->started), NK + 3);
	msleep(50); /* from "started" to parked */
}

static void unpark_all(weft_runtime *rt, struct env *e, weft_task **ts)
{
	atomic_store(&e->stop_yield, 1);
	atomic_store(&e->release_offload, 1);
	weft_future_set_result(e->fut, NULL);
	weft_queue_try_put(e->qempty, e);
	void *it;
	weft_queue_try_get(e->qfull, &it);
	weft_lock_release(&e->lock);
	weft_event_set(&e->ev);
	weft_sem_release(&e->sem);
	weft_cond_notify_all(&e->cond);
	assert_int_equal(send(e->sv[1], "x", 1, MSG_NOSIGNAL), 1);
	weft_task_cancel(ts[K_SLEEP]); /* a minute is too long to wait */
	for (int k = 0; k < NK; k++) {
		int r = weft_task_join(ts[k], NULL);
		assert_int_equal(r, k == K_SLEEP ? -ECANCELED : 0);
		weft_task_release(ts[k]);
	}
	weft_task_release(e->join_target); /* park_join joined it */
	weft_group_destroy(e->grp);
	env_free(e);
	(void)rt;
}

static void expect_task(sbuf *x, uint64_t id, const char *kind, const char *fn, const char *more)
{
	sb(x, "%s{\"id\":%llu,\"state\":\"parked\",\"kind\":\"%s\",\"since\":1,\"fn\":\"%s\"%s}",
	   x->s[x->n - 1] == '[' ? "" : ",", (unsigned long long)id, kind, fn, more);
}

static void test_every_wait_kind(void **state)
{
	(void)state;
	weft_runtime *rt = begin(2);
	static struct env e;
	env_init(&e);
	weft_task *ts[NK];
	park_all(rt, &e, ts);

	sbuf *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	char more[256];
	sb(x, "{\"complete\":true,\"tasks\":[");
	snprintf(more, sizeof(more), ",\"until_ns\":%llu", (unsigned long long)e.sleep_until);
	expect_task(x, e.ids[K_SLEEP], "sleep", "park_sleep", more);
#define OBJ(p) (snprintf(more, sizeof(more), ",\"object\":\"%p\"", (void *)(p)), more)
	expect_task(x, e.ids[K_FUTURE], "future", "park_future", OBJ(e.fut));
	expect_task(x, e.ids[K_QGET], "queue_get", "park_qget", OBJ(e.qempty));
	expect_task(x, e.ids[K_QPUT], "queue_put", "park_qput", OBJ(e.qfull));
	expect_task(x, e.ids[K_LOCK], "lock", "park_lock", OBJ(&e.lock));
	expect_task(x, e.ids[K_EVENT], "event", "park_event", OBJ(&e.ev));
	expect_task(x, e.ids[K_SEM], "semaphore", "park_sem", OBJ(&e.sem));
	expect_task(x, e.ids[K_COND], "condition", "park_cond", OBJ(&e.cond));
	snprintf(more, sizeof(more), ",\"task\":%llu",
		 (unsigned long long)weft_task_id(e.join_target));
	expect_task(x, e.ids[K_JOIN], "join", "park_join", more);
	expect_task(x, e.ids[K_GROUP], "group", "park_group", "");
	snprintf(more, sizeof(more), ",\"op\":\"recv\",\"fd\":%d,\"name\":\"io \\\"reader\\\"\"",
		 e.sv[0]);
	expect_task(x, e.ids[K_IO], "io", "park_io", more);
	expect_task(x, e.ids[K_OFFLOAD], "offload", "park_offload", "");
	for (int i = 0; i < 2; i++)
		sb(x, ",{\"id\":%llu,\"in_group_of\":%llu,\"kind\":\"event\",\"fn\":\"group_kid\"}",
		   (unsigned long long)e.grp_kids[i], (unsigned long long)e.ids[K_GROUP]);
	/* the yielders are on loop 0, pinned: ready when it writes its part */
	for (int k = K_YIELD_A; k <= K_YIELD_B; k++)
		sb(x, ",{\"id\":%llu,\"state\":\"ready\",\"pinned\":true,\"loop\":0}",
		   (unsigned long long)e.ids[k]);
	sb(x, "],\"tree\":[[%llu,[%llu,%llu]]],\"ops\":[%llu]}",
	   (unsigned long long)e.ids[K_GROUP], (unsigned long long)e.grp_kids[0],
	   (unsigned long long)e.grp_kids[1], (unsigned long long)e.ids[K_IO]);
	dump_until(rt, "dump.json", x->s);
	free(x);

	unpark_all(rt, &e, ts);
	weft_runtime_destroy(rt);
	remove_dir();
}

/* ------------------------------------------------------------------------ */
/* running, and a loop stuck in a task                                       */
/* ------------------------------------------------------------------------ */

struct spin {
	weft_event go;
	_Atomic int first_loop, loop, stop, hog_done;
};

static void *nothing(void *arg)
{
	return arg;
}

/* Spawn fn(arg) pinned to the calling task's loop. */
static int spawn_here(weft_task **t, weft_fn fn, void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = WEFT_PIN_CURRENT;
	return weft_task_spawn_ex(t, &tc, fn, arg);
}

/* On the spinner's first loop F (pinned there): wakes the spinner while a
 * pinned task is queued, so the spinner goes to F's stealable run queue
 * (not to the LIFO slot, which no loop steals from), then hogs F until
 * the other loop has stolen it. */
static void *hog(void *arg)
{
	struct spin *s = arg;
	weft_task *d;
	if (spawn_here(&d, nothing, NULL) < 0)
		return P(1);
	weft_event_set(&s->go);
	uint64_t end = weft_now_ns() + 5000 * MS;
	while (atomic_load(&s->loop) < 0 && weft_now_ns() < end)
		__asm__ volatile("" ::: "memory"); /* hog: nothing else runs here */
	atomic_store(&s->hog_done, 1);
	weft_task_join(d, NULL);
	weft_task_release(d);
	return NULL;
}

/* Registered on the loop it first runs on (F); parks until the hog wakes
 * it, then runs (on the loop that stole it) until told to stop. */
static void *spinner(void *arg)
{
	struct spin *s = arg;
	atomic_store(&s->first_loop, weft_loop_index());
	weft_task *h;
	if (spawn_here(&h, hog, s) < 0)
		return P(1);
	weft_event_wait(&s->go);
	atomic_store(&s->loop, weft_loop_index());
	while (!atomic_load(&s->stop))
		__asm__ volatile("" ::: "memory");
	weft_task_join(h, NULL);
	weft_task_release(h);
	return NULL;
}

static void test_running_and_stuck(void **state)
{
	(void)state;
	weft_runtime *rt = begin(2);
	static struct spin s;
	memset(&s, 0, sizeof(s));
	atomic_store(&s.loop, -1);
	assert_int_equal(weft_event_init(&s.go), 0);
	weft_task *sp;
	assert_int_equal(weft_runtime_spawn(rt, &sp, NULL, spinner, &s), 0);
	for (int i = 0; i < 6000 && !atomic_load(&s.hog_done); i++)
		msleep(1);
	assert_true(atomic_load(&s.hog_done));
	int first = atomic_load(&s.first_loop), other = 1 - first;
	assert_int_equal(atomic_load(&s.loop), other); /* stolen: runs there */
	msleep(20);

	/* the other loop runs the spinner and cannot answer; the first lists
	 * it as running there */
	int r = dump_to(rt, "dump.json", 300 * MS);
	atomic_store(&s.stop, 1);
	assert_int_equal(r, 1);
	char x[512];
	snprintf(x, sizeof(x),
		 "{\"stuck\":[%d],\"last\":%llu,\"tasks\":[{\"id\":%llu,\"state\":\"running\","
		 "\"loop\":%d,\"registry\":%d,\"pinned\":false}]}",
		 other, (unsigned long long)weft_task_id(sp), (unsigned long long)weft_task_id(sp),
		 other, first);
	check_dump("dump.json", x);
	assert_int_equal(weft_task_join(sp, NULL), 0);
	weft_task_release(sp);
	weft_runtime_destroy(rt);
	remove_dir();
}

/* ------------------------------------------------------------------------ */
/* from a task; on a signal; misuse                                          */
/* ------------------------------------------------------------------------ */

struct from_task {
	weft_runtime *rt;
	int fd, rc;
	uint64_t id;
};

static __attribute__((noinline)) void *dumping_task(void *arg)
{
	struct from_task *f = arg;
	f->id = weft_task_id(weft_task_current());
	f->rc = weft_dump(f->rt, f->fd, 10000 * MS);
	__asm__ volatile("" ::: "memory");
	return NULL;
}

static void test_dump_from_task(void **state)
{
	(void)state;
	need_python();
	make_dir();
	for (unsigned loops = 1; loops <= 2; loops++) {
		weft_runtime *rt = start_rt(loops);
		char p[PATH_MAX + 32];
		snprintf(p, sizeof(p), "%s/dump.json", g_dir);
		struct from_task f = { .rt = rt, .rc = -1 };
		f.fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_true(f.fd >= 0);
		assert_int_equal(weft_runtime_call(rt, dumping_task, &f, NULL), 0);
		close(f.fd);
		assert_int_equal(f.rc, 0);
		char x[256];
		snprintf(x, sizeof(x),
			 "{\"complete\":true,\"tasks\":[{\"id\":%llu,\"state\":\"parked\","
			 "\"kind\":\"other\",\"fn\":\"dumping_task\"}]}",
			 (unsigned long long)f.id);
		check_dump("dump.json", x);
		weft_runtime_destroy(rt);
	}
	remove_dir();
}

static void test_dump_on_signal(void **state)
{
	(void)state;
	need_python();
	make_dir();
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/signal.json", g_dir);
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	cfg.dump_signal = SIGUSR2;
	cfg.dump_path = path;
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	static struct env e;
	env_init(&e);
	weft_task *t;
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, park_event, &e), 0);
	char x[256];
	snprintf(x, sizeof(x),
		 "{\"complete\":true,\"tasks\":[{\"id\":%llu,\"kind\":\"event\",\"object\":\"%p\","
		 "\"fn\":\"park_event\"}]}",
		 (unsigned long long)weft_task_id(t), (void *)&e.ev);
	dump_until(rt, "api.json", x); /* parked by now */
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	/* the dumper thread appends one document, a line */
	struct stat st = { 0 };
	char last = 0;
	for (int i = 0; i < 10000 && last != '\n'; i++) {
		msleep(1);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0 ||
		    pread(fd, &last, 1, st.st_size - 1) != 1)
			last = 0;
		if (fd >= 0)
			close(fd);
	}
	assert_int_equal(last, '\n');
	check_dump("signal.json", x);
	weft_event_set(&e.ev);
	assert_int_equal(weft_task_join(t, NULL), 0);
	weft_task_release(t);
	weft_runtime_destroy(rt);
	/* the program's own disposition is back once no runtime dumps on it */
	struct sigaction sa;
	assert_int_equal(sigaction(SIGUSR2, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_DFL);
	env_free(&e);
	remove_dir();
}

static void test_misuse(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(1);
	assert_int_equal(weft_dump(NULL, 1, 0), -EINVAL);
	assert_int_equal(weft_dump(rt, -1, 0), -EINVAL);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(devnull >= 0);
	assert_true(weft_dump(rt, devnull, WEFT_FOREVER) == 0);
	weft_runtime_shutdown(rt);
	assert_int_equal(weft_dump(rt, devnull, 0), -ESHUTDOWN);
	weft_runtime_destroy(rt);
	close(devnull);
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	cfg.dump_signal = SIGKILL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), -EINVAL);
	cfg.dump_signal = -1;
	assert_int_equal(weft_runtime_start(&rt, &cfg), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* tools/weft-gdb.py on a core file                                          */
/* ------------------------------------------------------------------------ */

/* The source tree: up from this executable until tools/weft-gdb.py. */
static bool find_root(char *root, size_t n)
{
	ssize_t k = readlink("/proc/self/exe", root, n - 32);
	if (k <= 0)
		return false;
	root[k] = 0;
	for (char *slash; (slash = strrchr(root, '/'));) {
		*slash = 0;
		size_t len = strlen(root);
		strcpy(root + len, "/tools/weft-gdb.py");
		bool found = access(root, R_OK) == 0;
		root[len] = 0;
		if (found)
			return true;
	}
	return false;
}

static void test_gdb_lists_tasks_from_core(void **state)
{
	(void)state;
	if (WEFT_TEST_SANITIZED) {
		print_message("skip: a sanitizer tree (its shadow mappings make a core of "
			      "terabytes) or qemu-user (no ptrace for gcore)\n");
		skip();
	}
	if (access("/usr/bin/gdb", X_OK) != 0 || access("/usr/bin/gcore", X_OK) != 0) {
		print_message("skip: gdb/gcore missing (apt-get install gdb)\n");
		skip();
	}
	char root[PATH_MAX];
	assert_true(find_root(root, sizeof(root)));
	weft_runtime *rt = begin(2);
	static struct env e;
	env_init(&e);
	weft_task *ts[NK];
	park_all(rt, &e, ts);
	/* every parker parked before the core is taken */
	char x[2048];
	int xn = snprintf(x, sizeof(x), "{\"tasks\":[");
	for (int k = 0; k < K_YIELD_A; k++)
		xn += snprintf(x + xn, sizeof(x) - (size_t)xn, "%s{\"id\":%llu,\"state\":\"parked\"}",
			       k ? "," : "", (unsigned long long)e.ids[k]);
	snprintf(x + xn, sizeof(x) - (size_t)xn, "]}");
	dump_until(rt, "parked.json", x);

	int r = sh("gcore -o '%s/core' %d >'%s/gcore.log' 2>&1", g_dir, (int)getpid(), g_dir);
	char core[PATH_MAX + 32];
	snprintf(core, sizeof(core), "%s/core.%d", g_dir, (int)getpid());
	if (r != 0 || access(core, R_OK) != 0) {
		print_message("skip: gcore could not make a core of this process here "
			      "(ptrace refused?): see %s/gcore.log\n", g_dir);
		unpark_all(rt, &e, ts);
		weft_runtime_destroy(rt);
		skip();
	}
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(k > 0);
	exe[k] = 0;
	r = sh("gdb -batch -nx -ex 'source %s/tools/weft-gdb.py' -ex 'weft-tasks' '%s' '%s' "
	       ">'%s/gdb.out' 2>&1",
	       root, exe, core, g_dir);
	unpark_all(rt, &e, ts);
	weft_runtime_destroy(rt);

	char out[PATH_MAX + 32];
	snprintf(out, sizeof(out), "%s/gdb.out", g_dir);
	FILE *f = fopen(out, "r");
	assert_non_null(f);
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	const char *listing = strstr(text, "runtime 0x");
	fputs(r == 0 && listing ? listing : text, stderr); /* the listing, or what went wrong */
	assert_int_equal(r, 0);
	static const char *const kinds[NK] = {
		[K_SLEEP] = "sleep", [K_FUTURE] = "future", [K_QGET] = "queue_get",
		[K_QPUT] = "queue_put", [K_LOCK] = "lock", [K_EVENT] = "event",
		[K_SEM] = "semaphore", [K_COND] = "condition", [K_JOIN] = "join",
		[K_GROUP] = "group", [K_IO] = "io", [K_OFFLOAD] = "offload",
	};
	int missing = 0;
	for (int i = 0; i < NK; i++) {
		char want[128];
		if (kinds[i])
			snprintf(want, sizeof(want), "task %llu ", (unsigned long long)e.ids[i]);
		else
			snprintf(want, sizeof(want), "task %llu ", (unsigned long long)e.ids[i]);
		const char *line = strstr(text, want);
		char kind[64];
		snprintf(kind, sizeof(kind), "wait=%s", kinds[i] ? kinds[i] : "");
		const char *eol = line ? strchr(line, '\n') : NULL;
		bool ok = line && (!kinds[i] || (strstr(line, kind) && strstr(line, kind) < eol));
		if (!ok) {
			fprintf(stderr, "weft-tasks: task %llu (%s) missing or wrong\n",
				(unsigned long long)e.ids[i], kinds[i] ? kinds[i] : "yielder");
			missing++;
		}
	}
	char fdw[64];
	snprintf(fdw, sizeof(fdw), "op=recv fd=%d", e.sv[0]);
	if (!strstr(text, fdw)) {
		fprintf(stderr, "weft-tasks: no \"%s\"\n", fdw);
		missing++;
	}
	assert_int_equal(missing, 0);
	remove_dir();
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_every_wait_kind),
	cmocka_unit_test(test_running_and_stuck),
	cmocka_unit_test(test_dump_from_task),
	cmocka_unit_test(test_dump_on_signal),
	cmocka_unit_test(test_misuse),
	cmocka_unit_test(test_gdb_lists_tasks_from_core),
};

WEFT_TEST_MAIN(tests)
