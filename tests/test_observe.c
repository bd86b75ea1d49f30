/*
 * Observability (include/weft/observe.h, docs/observability.md): the stall
 * detector's reports, its rate limit, callback and off switch, idle and
 * blocked loops; the metrics text checked by promtool, and the HTTP
 * endpoint scraped by a real Prometheus queried back through its API.
 *
 * The binary is linked with -rdynamic (Makefile) so backtrace_symbols
 * names spin_busy, which is why it is not static.
 */
#include "weft_test_proc.h"

#include <execinfo.h>
#include <pthread.h>

#define THRESHOLD (100 * MS)

/* ---- what the stall callback saw (written on the watchdog thread) ---- */

typedef struct seen {
	pthread_mutex_t mu;
	int reports;
	int with_spin_busy;      /* reports whose backtrace names spin_busy */
	char name[64];
	uint64_t id;
	uint64_t stalled_ns;
	uint64_t suppressed[8];
	long syscall;
	int nframes;
} seen;

static void seen_init(seen *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
}

static void record(const weft_stall_report *r, void *arg)
{
	seen *s = arg;
	char **sym = r->nframes ? backtrace_symbols(r->frames, r->nframes) : NULL;
	bool spin = false;
	for (int i = 0; sym && i < r->nframes; i++)
		spin |= strstr(sym[i], "spin_busy") != NULL;
	free(sym);
	pthread_mutex_lock(&s->mu);
	if (s->reports < 8)
		s->suppressed[s->reports] = r->suppressed;
	s->reports++;
	s->with_spin_busy += spin;
	snprintf(s->name, sizeof(s->name), "%s", r->task_name);
	s->id = r->task_id;
	s->stalled_ns = r->stalled_ns;
	s->syscall = r->blocked_syscall;
	s->nframes = r->nframes;
	pthread_mutex_unlock(&s->mu);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Hold the loop without switching for `ms` milliseconds of CPU time: on
 * a loaded machine the thread may get less than a whole CPU, and the
 * detector only blames a task for the CPU it had. */
__attribute__((noinline)) void spin_busy(uint64_t ms)
{
	uint64_t end = thread_cpu_ns() + ms * MS;
	while (thread_cpu_ns() < end)
		__asm__ volatile("" ::: "memory");
}

static void *spinner(void *arg)
{
	spin_busy(U(arg));
	return NULL;
}

/* Run spinner(ms) as a task named "spinner"; its id into *id. */
static void *spin_task(uint64_t ms, uint64_t *id)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.name = "spinner";
	weft_task *t;
	if (weft_task_spawn_ex(&t, &tc, spinner, P(ms)) < 0)
		return P(1);
	*id = weft_task_id(t);
	weft_task_join(t, NULL);
	weft_task_release(t);
	return NULL;
}

typedef struct job {
	uint64_t spin_ms;
	uint64_t id;
	int rounds;
	uint64_t gap_ms;       /* a sleep between rounds: the stall ends */
	uint64_t wait_ms;      /* sleep after the rounds, before the last */
	uint64_t after_ms;     /* sleep at the end, so the watchdog looks */
	int rc;
} job;

static void *stall_main(void *arg)
{
	job *j = arg;
	for (int i = 0; i < j->rounds; i++) {
		if (spin_task(j->spin_ms, &j->id))
			j->rc = -1;
		weft_sleep_ms(j->gap_ms);
	}
	if (j->wait_ms) {
		weft_sleep_ms(j->wait_ms);
		if (spin_task(j->spin_ms, &j->id))
			j->rc = -1;
	}
	weft_sleep_ms(j->after_ms);
	return NULL;
}

static void run_cfg(weft_runtime_config *cfg, weft_fn fn, void *arg)
{
	assert_int_equal(weft_run(cfg, fn, arg, NULL), 0);
}

/* Every stall test's start: an empty record s, and a runtime of `loops`
 * loops whose stall reports go to it. */
static void stall_setup(weft_runtime_config *cfg, seen *s, unsigned loops)
{
	seen_init(s);
	weft_runtime_config_init(cfg);
	cfg->loops = loops;
	cfg->stall_fn = record;
	cfg->stall_arg = s;
}

/* A task spinning 300 ms: exactly one report, naming it, with a backtrace
 * through spin_busy. */
static void test_stall_one_report(void **state)
{
	(void)state;
	seen s;
	weft_runtime_config cfg;
	stall_setup(&cfg, &s, 2);
	assert_int_equal(cfg.stall_threshold_ns, THRESHOLD); /* the default */
	job j = {.spin_ms = 300, .rounds = 1, .after_ms = 200};
	run_cfg(&cfg, stall_main, &j);
	assert_int_equal(j.rc, 0);
	assert_int_equal(s.reports, 1);
	assert_string_equal(s.name, "spinner");
	assert_int_equal(s.id, j.id);
	assert_true(s.stalled_ns >= THRESHOLD && s.stalled_ns < 10000 * MS);
	assert_int_equal(s.syscall, -1);
	assert_true(s.nframes > 0);
	assert_int_equal(s.with_spin_busy, 1);
	assert_int_equal(s.suppressed[0], 0);
}

/* The default printer: one heading and the frames on stderr. */
static void test_stall_default_printer(void **state)
{
	(void)state;
	char path[] = "/tmp/weft-observe-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	job j = {.spin_ms = 300, .rounds = 1, .after_ms = 200};
	int r = weft_run(&cfg, stall_main, &j, NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char out[16384];
	ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	assert_int_equal(r, 0);
	assert_true(n > 0);
	out[n] = 0;
	char want[128];
	snprintf(want, sizeof(want), "weft: stall: loop 0 has run task \"spinner\" (id %llu) for ",
		 (unsigned long long)j.id);
	if (!strstr(out, want) || !strstr(out, "spin_busy"))
		fail_msg("stderr lacks the report:\n%s", out);
	assert_null(strstr(strstr(out, want) + 1, "weft: stall:")); /* only one */
}

/* Stalls closer together than stall_report_interval_ns: the first is
 * reported, the next two counted, and the report after the interval says
 * so; every stall is in weft_stalls_total. */
static char metrics_buf[1 << 20];

static void *metrics_of_self(void *arg)
{
	job *j = arg;
	stall_main(j);
	int n = weft_metrics_write(weft_runtime_current(), metrics_buf, sizeof(metrics_buf));
	return P(n > 0 && (size_t)n < sizeof(metrics_buf));
}

/* Run job j under cfg, then the runtime's metrics into metrics_buf. */
static void run_metrics_of_self(weft_runtime_config *cfg, job *j)
{
	void *ok = NULL;
	assert_int_equal(weft_run(cfg, metrics_of_self, j, &ok), 0);
	assert_non_null(ok);
}

static uint64_t series(const char *text, const char *name)
{
	const char *p = text;
	size_t n = strlen(name);
	while ((p = strstr(p, name))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
		p += n;
	}
	return UINT64_MAX;
}

static void test_stall_rate_limit(void **state)
{
	(void)state;
	seen s;
	weft_runtime_config cfg;
	stall_setup(&cfg, &s, 1);
	/* Three stalls of 200 ms of CPU take 0.7 s on a quiet machine, and
	 * well under the interval on a loaded one; the fourth comes after it. */
	cfg.stall_report_interval_ns = 3000 * MS;
	job j = {.spin_ms = 200, .rounds = 3, .gap_ms = 30, .wait_ms = 3000, .after_ms = 150};
	run_metrics_of_self(&cfg, &j);
	assert_int_equal(j.rc, 0);
	print_message("reports %d, suppressed %llu then %llu\n", s.reports,
		      (unsigned long long)s.suppressed[0], (unsigned long long)s.suppressed[1]);
	assert_int_equal(s.reports, 2);
	assert_int_equal(s.suppressed[0], 0);
	assert_int_equal(s.suppressed[1], 2);
	assert_int_equal(series(metrics_buf, "weft_stalls_total{loop=\"0\"}"), 4);
	assert_int_equal(series(metrics_buf, "weft_stall_seconds_count{loop=\"0\"}"), 4);
}

/* 0 (and WEFT_FOREVER) turn the detector off. */
static void test_stall_zero_disables(void **state)
{
	(void)state;
	uint64_t off[] = {0, WEFT_FOREVER};
	for (int i = 0; i < 2; i++) {
		seen s;
		weft_runtime_config cfg;
		stall_setup(&cfg, &s, 2);
		cfg.stall_threshold_ns = off[i];
		job j = {.spin_ms = 300, .rounds = 1, .after_ms = 100};
		run_metrics_of_self(&cfg, &j);
		assert_int_equal(s.reports, 0);
		assert_int_equal(series(metrics_buf, "weft_stalls_total{loop=\"0\"}") +
					 series(metrics_buf, "weft_stalls_total{loop=\"1\"}"),
				 0);
	}
}

/* Loops with nothing to do (asleep in the kernel, or spinning) are never
 * reported, however long; a task blocked in nanosleep is, by system call,
 * without a signal that would cut its sleep short. */
static void *idle_then_block(void *arg)
{
	uint64_t *slept_ns = arg;
	weft_sleep_ms(400); /* every loop idle */
	uint64_t t0 = weft_now_ns();
	struct timespec ts = {0, 300 * (long)MS};
	nanosleep(&ts, NULL); /* no EINTR retry: a signal would show */
	*slept_ns = weft_now_ns() - t0;
	weft_sleep_ms(100);
	return NULL;
}

static void test_stall_idle_and_blocked(void **state)
{
	(void)state;
	seen s;
	weft_runtime_config cfg;
	stall_setup(&cfg, &s, 2);
	uint64_t slept = 0;
	run_cfg(&cfg, idle_then_block, &slept);
	assert_true(slept >= 300 * MS);
	assert_int_equal(s.reports, 1);
#ifdef SYS_nanosleep
	assert_true(s.syscall == SYS_nanosleep || s.syscall == SYS_clock_nanosleep);
#else
	assert_int_equal(s.syscall, SYS_clock_nanosleep);
#endif
	assert_int_equal(s.nframes, 0);
}

/* A task on the smallest stack, nearly full when the signal comes: the
 * handler runs on the loop's signal stack, so the report still comes and
 * the task survives. */
__attribute__((noinline)) static void deep_spin(uint64_t ms)
{
	volatile char fill[13 * 1024];
	fill[0] = fill[sizeof(fill) - 1] = 1;
	spin_busy(ms);
	__asm__ volatile("" ::"r"(fill) : "memory");
}

static void *deep_spinner(void *arg)
{
	deep_spin(U(arg));
	return P(1);
}

static void *small_stack_main(void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.stack_size = 16 * 1024;
	tc.name = "small";
	weft_task *t;
	void *r = NULL;
	if (weft_task_spawn_ex(&t, &tc, deep_spinner, P(300)) < 0)
		return NULL;
	weft_task_join(t, &r);
	weft_task_release(t);
	weft_sleep_ms(100);
	*(void **)arg = r;
	return NULL;
}

static void test_stall_small_stack(void **state)
{
	(void)state;
	seen s;
	weft_runtime_config cfg;
	stall_setup(&cfg, &s, 1);
	void *r = NULL;
	run_cfg(&cfg, small_stack_main, &r);
	assert_non_null(r); /* the task finished */
	assert_int_equal(s.reports, 1);
	assert_string_equal(s.name, "small");
#if !defined(__SANITIZE_THREAD__)
	/* (ThreadSanitizer runs the handler on the nearly full task stack,
	 * where the report goes without a backtrace.) */
	assert_true(s.nframes > 0);
	assert_int_equal(s.with_spin_busy, 1);
#endif
}

/* ---- metrics ---- */

static void *busy_work(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++)
		weft_yield();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
		char c = 'x';
		weft_send(sv[0], &c, 1, 0);
		weft_recv(sv[1], &c, 1, 0);
		close(sv[0]);
		close(sv[1]);
	}
	weft_sleep_ms(2);
	return NULL;
}

static void *metrics_main(void *arg)
{
	weft_task *t[16];
	for (int i = 0; i < 16; i++)
		if (weft_task_spawn(&t[i], busy_work, NULL) < 0)
			return P(1);
	for (int i = 0; i < 16; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}
	/* A joiner wakes as its task returns; the loop that ran it counts the
	 * task finished a moment later, after switching away from it. */
	for (int i = 0; i < 1000; i++) {
		weft_metrics_write(weft_runtime_current(), metrics_buf, sizeof(metrics_buf));
		if (series(metrics_buf, "weft_tasks_finished_total{loop=\"0\"}") +
			    series(metrics_buf, "weft_tasks_finished_total{loop=\"1\"}") >= 16)
			break;
		weft_sleep(1000000);
	}
	void *r;
	weft_offload(spinner, P(0), &r);
	char tiny[16];
	int need = weft_metrics_write(weft_runtime_current(), tiny, sizeof(tiny));
	int n = weft_metrics_write(weft_runtime_current(), metrics_buf, sizeof(metrics_buf));
	/* too small: cut and NUL-terminated, the whole length returned (the
	 * text may differ by a digit or two from the next call's) */
	*(int *)arg = need > (int)sizeof(tiny) && strlen(tiny) == sizeof(tiny) - 1 ? n : -1;
	return NULL;
}

static void test_metrics_text(void **state)
{
	(void)state;
	int n = 0;
	weft_test_run_loops(2, metrics_main, &n);
	assert_true(n > 0 && (size_t)n < sizeof(metrics_buf));
	assert_int_equal(strlen(metrics_buf), n);
	assert_int_equal(series(metrics_buf, "weft_loops"), 2);
	uint64_t spawned = series(metrics_buf, "weft_tasks_spawned_total{loop=\"0\"}") +
			   series(metrics_buf, "weft_tasks_spawned_total{loop=\"1\"}") +
			   series(metrics_buf, "weft_tasks_spawned_total{loop=\"foreign\"}");
	assert_int_equal(spawned, 17); /* main and its 16 */
	uint64_t finished = series(metrics_buf, "weft_tasks_finished_total{loop=\"0\"}") +
			    series(metrics_buf, "weft_tasks_finished_total{loop=\"1\"}");
	assert_int_equal(finished, 16);
	uint64_t sends = series(metrics_buf, "weft_io_submissions_total{loop=\"0\",op=\"send\"}") +
			 series(metrics_buf, "weft_io_submissions_total{loop=\"1\",op=\"send\"}");
	assert_int_equal(sends, 16);
	uint64_t armed = series(metrics_buf, "weft_timers_armed_total{loop=\"0\"}") +
			 series(metrics_buf, "weft_timers_armed_total{loop=\"1\"}");
	assert_true(armed >= 16);
	assert_int_equal(series(metrics_buf, "weft_offload_calls_total"), 1);
	assert_non_null(strstr(metrics_buf, "weft_wake_to_run_seconds_bucket{loop=\"0\",le=\"+Inf\"}"));
}

static void test_metrics_promtool(void **state)
{
	(void)state;
	NEED_TOOL("promtool");
	int n = 0;
	weft_test_run_loops(2, metrics_main, &n);
	assert_true(n > 0);
	char path[] = "/tmp/weft-metrics-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, metrics_buf, (size_t)n), n);
	close(fd);
	char cmd[256], out[8192];
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	const char *argv[] = {"sh", "-c", cmd, NULL};
	int st = run(argv, out, sizeof(out), 20000 * SLOW);
	unlink(path);
	if (st != 0)
		fail_msg("promtool check metrics: status %d:\n%s", st, out);
}

/* ---- a real Prometheus scrapes weft_metrics_serve ---- */

static void *serve_main(void *arg)
{
	uint16_t *port = arg;
	weft_task *t;
	if (weft_metrics_serve("127.0.0.1:0", &t, port) < 0)
		return NULL;
	return t;
}

static void test_metrics_prometheus_scrape(void **state)
{
	(void)state;
	NEED_TOOL("prometheus");
	NEED_TOOL("curl");
	weft_runtime *rt = start_rt(2);
	uint16_t port = 0;
	weft_task *srv = NULL;
	assert_int_equal(weft_runtime_call(rt, serve_main, &port, (void **)&srv), 0);
	assert_non_null(srv);

	/* our own endpoint first: curl gets the text */
	char url[128], out[1 << 16];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);
	const char *get[] = {"curl", "-sf", url, NULL};
	assert_int_equal(run(get, out, sizeof(out), 10000), 0);
	assert_int_equal(series(out, "weft_loops"), 2);
	if (WEFT_TEST_SANITIZED) {
		/* Prometheus's scrape is a GET like curl's, on a connection of its
		 * own (the endpoint closes each): the sanitizers have checked that
		 * path above; the 6 s of a real Prometheus are spent in the
		 * release tree, on both backends. */
		print_message("the endpoint served curl; a real Prometheus scrapes it in the "
			      "release tree only\n");
		weft_task_cancel(srv);
		weft_task_join(srv, NULL);
		weft_task_release(srv);
		weft_runtime_destroy(rt);
		return;
	}

	char dir[] = "/tmp/weft-prom-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cfgp[256], data[256], listen[64], cmd[1024];
	snprintf(cfgp, sizeof(cfgp), "%s/prometheus.yml", dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	FILE *f = fopen(cfgp, "w");
	assert_non_null(f);
	fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
		   "scrape_configs:\n  - job_name: weft\n    static_configs:\n"
		   "      - targets: ['127.0.0.1:%u']\n", port);
	fclose(f);
	unsigned pport = free_port();
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%u", pport);
	char cfgarg[300], dataarg[300];
	snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfgp);
	snprintf(dataarg, sizeof(dataarg), "--storage.tsdb.path=%s", data);
	const char *prom[] = {"prometheus", cfgarg, dataarg, listen, "--log.level=error", NULL};
	int pfd;
	pid_t pid = spawn(prom, &pfd, true);

	/* ask its API until the scraped series is there (at most 15 s) */
	snprintf(url, sizeof(url),
		 "http://127.0.0.1:%u/api/v1/query?query=weft_loops%%7Bjob%%3D%%22weft%%22%%7D", pport);
	const char *query[] = {"curl", "-s", url, NULL};
	bool found = false;
	double end = now_ms() + 15000;
	while (!found && now_ms() < end) {
		msleep(500);
		if (run(query, out, sizeof(out), 5000) == 0)
			found = strstr(out, "\"__name__\":\"weft_loops\"") && strstr(out, "\"2\"]");
	}
	kill(pid, SIGTERM);
	int st = reap(pid, 10000);
	char log[8192];
	size_t len = 0;
	log[0] = 0;
	read_until(pfd, log, sizeof(log), &len, now_ms() + 100, NULL);
	xclose(pfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		print_message("could not remove %s\n", dir);
	weft_task_cancel(srv);
	weft_task_join(srv, NULL);
	weft_task_release(srv);
	weft_runtime_destroy(rt);
	if (!found)
		fail_msg("Prometheus never returned weft_loops: last answer %s\nits log:\n%s", out,
			 log);
	(void)st;
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(test_stall_one_report, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stall_default_printer, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stall_rate_limit, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stall_zero_disables, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stall_idle_and_blocked, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stall_small_stack, setup, teardown),
	cmocka_unit_test_setup_teardown(test_metrics_text, setup, teardown),
	cmocka_unit_test_setup_teardown(test_metrics_promtool, setup, teardown),
	cmocka_unit_test_setup_teardown(test_metrics_prometheus_scrape, setup, teardown),
};

WEFT_TEST_MAIN(tests)
