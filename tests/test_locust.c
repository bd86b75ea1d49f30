/*
 * weft-load across processes (docs/load.md, "Locust" and "Many machines
 * without Locust"):
 *  - a real Locust master (Debian's /usr/bin/locust, 2.12.1) on loopback,
 *    headless, with two weft-load workers (--locust-master) loading
 *    examples/http_server: the master's own CSV counts what the workers
 *    made, within 1%, and it saw both register and run their users;
 *  - --segment i/n splits connections, rate and request counts exactly;
 *  - two --segment runs with --hlog, merged by --merge-hlog, count what
 *    the two runs counted.
 * Needs weft-load in the tree (`make VARIANT=... load`); the Locust test
 * skips loudly without /usr/bin/locust.
 */
#include "weft_test_proc.h"
#include "bench/load_cluster.h"

#include <stdlib.h>

static const char *weft_load_bin(void)
{
	static char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/bench/weft-load", tree());
	if (access(p, X_OK) != 0)
		fail_msg("%s is not built (make VARIANT=... load)", p);
	return p;
}

/* A number after "\"key\":" in a JSON line, or -1. */
static long long json_num(const char *s, const char *key)
{
	char k[64];
	snprintf(k, sizeof k, "\"%s\":", key);
	const char *p = strstr(s, k);
	return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

/* What weft-load counted as requests in Locust's sense: answers and the
 * requests that failed without one. */
static long long json_requests(const char *s)
{
	long long r = json_num(s, "requests"), e = json_num(s, "errors"),
		  f = json_num(s, "non2xx") >= 0 ? json_num(s, "non2xx") : json_num(s, "failed");
	assert_true(r >= 0 && e >= 0);
	return r + e - (f > 0 ? f : 0);
}

/* The Aggregated row's Request Count in Locust's PREFIX_stats.csv. */
static long long csv_aggregated(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("the master wrote no %s", path);
	char line[4096];
	long long n = -1;
	while (fgets(line, sizeof line, f)) {
		const char *a = strstr(line, ",Aggregated,");
		if (a)
			n = strtoll(a + strlen(",Aggregated,"), NULL, 10);
	}
	fclose(f);
	return n;
}

/* Skip loudly without Locust; the locustfile's absolute path into lf. */
static void need_locust(char lf[PATH_MAX])
{
	if (access("/usr/bin/locust", X_OK) != 0) {
		print_message("SKIP: /usr/bin/locust is missing (apt-get install python3-locust)\n");
		skip();
	}
	if (!realpath("bench/locust/locustfile.py", lf))
		fail_msg("bench/locust/locustfile.py not found (run from the repository)");
}

/*
 * A headless master on loopback expecting `n` weft-load workers (n users
 * each, spawned at once, for `runtime`) against examples/http_server; with
 * `leave`, worker 0 gets SIGTERM 2 s into the run and must leave
 * properly.  Checks the master's CSV against what the workers made.
 */
static void locust_session(int n, const char *runtime, bool leave)
{
	char lf[PATH_MAX];
	need_locust(lf);
	const char *wl = weft_load_bin();
	struct server srv;
	server_start(&srv, "http_server", NULL);
	char dir[] = "/tmp/weft-locust-XXXXXX", prefix[64], csv[96], master[32], port[8];
	char workers[8], users[8];
	assert_non_null(mkdtemp(dir));
	snprintf(prefix, sizeof prefix, "%s/run", dir);
	snprintf(csv, sizeof csv, "%s_stats.csv", prefix);
	snprintf(port, sizeof port, "%u", free_port());
	snprintf(master, sizeof master, "127.0.0.1:%s", port);
	snprintf(workers, sizeof workers, "%d", n);
	snprintf(users, sizeof users, "%d", 4 * n);

	const char *margv[] = { "/usr/bin/locust", "-f", lf, "--master", "--headless",
				"--expect-workers", workers, "-u", users, "-r", users, "-t",
				runtime, "--csv", prefix, "--master-bind-host", "127.0.0.1",
				"--master-bind-port", port, "--only-summary", NULL };
	int mout, wout[2];
	pid_t mpid = spawn(margv, &mout, true);
	const char *wargv[] = { wl, "--locust-master", master, "--loops", "1", "--json",
				srv.url, NULL };
	pid_t wpid[2];
	for (int i = 0; i < n; i++)
		wpid[i] = spawn(wargv, &wout[i], false);

	static char mlog[65536], wjson[2][4096];
	size_t mlen = 0, wlen[2] = { 0, 0 };
	mlog[0] = wjson[0][0] = wjson[1][0] = 0;
	double t0 = now_ms(), end = t0 + 30000.0 * SLOW;
	if (leave) {
		read_until(mout, mlog, sizeof mlog, &mlen, end, "All users spawned");
		msleep(2000);
		signal_program(wpid[0], SIGTERM);
	}
	read_until(mout, mlog, sizeof mlog, &mlen, end, NULL);
	int mst = reap(mpid, (int)(end - now_ms()) + 100);
	xclose(mout);
	double took = now_ms() - t0;
	long long made = 0, each[2] = { 0, 0 };
	for (int i = 0; i < n; i++) {
		read_until(wout[i], wjson[i], sizeof wjson[i], &wlen[i], now_ms() + 10000.0 * SLOW,
			   NULL);
		int st = reap(wpid[i], 5000 * SLOW);
		xclose(wout[i]);
		if (st != 0)
			fail_msg("worker %d exit status %d; stdout: %s\nmaster: %s", i, st, wjson[i],
				 mlog);
		each[i] = json_requests(wjson[i]);
		made += each[i];
		print_message("worker %d: %s", i, wjson[i]);
	}
	if (mst != 0)
		fail_msg("locust master exit status %d (-1: hung); its output:\n%s", mst, mlog);
	long long counted = csv_aggregated(csv);
	print_message("master's CSV: %lld requests; the workers made %lld (%lld + %lld); "
		      "the master ran %.1f s\n",
		      counted, made, each[0], each[1], took / 1000);
	server_stop(&srv);
	/* every worker registered and ran its share of the users */
	char spawned[96];
	snprintf(spawned, sizeof spawned, "All users spawned: {\"WeftUser\": %d} (%d total users)",
		 4 * n, 4 * n);
	assert_non_null(strstr(mlog, spawned));
	for (int i = 0; i < n; i++)
		assert_true(each[i] > 0);
	if (leave) /* the master saw it go, and ended with it, long before -t */
		assert_non_null(strstr(mlog, "The last worker quit, stopping test."));
	if (llabs(counted - made) * 100 > made)
		fail_msg("the master counted %lld requests, the workers made %lld: more than 1%% "
			 "apart; master output:\n%s",
			 counted, made, mlog);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_locust_master_counts(void **state)
{
	locust_session(2, "5s", false);
}

/* SIGTERM: the worker sends its last counts and "quit", and exits 0. */
static void test_locust_worker_leaves_on_signal(void **state)
{
	locust_session(1, "60s", true);
}

static void test_segment_split(void **state)
{
	/* the parts sum exactly, and differ by at most one */
	static const uint64_t totals[] = { 0, 1, 7, 10, 64, 1000003, UINT64_MAX / 3 };
	for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++)
		for (unsigned n = 1; n <= 9; n++) {
			unsigned __int128 sum = 0;
			for (unsigned i = 1; i <= n; i++) {
				uint64_t s = load_segment_share(totals[t], i, n);
				assert_true(s == totals[t] / n || s == totals[t] / n + 1);
				sum += s;
			}
			assert_true(sum == totals[t]);
		}
	char err[256];
	struct load_opts po;
	char *good[] = { "weft-load", "--segment", "2/3", "http://h/", NULL };
	assert_int_equal(load_opts_parse(4, good, &po, err, sizeof err), 0);
	assert_int_equal(po.seg_i, 2);
	assert_int_equal(po.seg_n, 3);
	static const char *const bad[] = { "0/3", "4/3", "3", "/3", "1/", "a/b", "1/3x", "-1/3",
					   "1/0", "" };
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		char *argv[] = { "weft-load", "--segment", (char *)bad[k], "http://h/", NULL };
		assert_int_equal(load_opts_parse(4, argv, &po, err, sizeof err), -EINVAL);
		assert_non_null(strstr(err, "--segment"));
	}
	/* the master decides the users and the duration */
	static const char *const clash[] = { "-c", "8", "-d", "5s", "-n", "100", "--segment",
					     "1/2" };
	for (size_t k = 0; k < sizeof clash / sizeof clash[0]; k += 2) {
		char *argv[] = { "weft-load", "--locust-master", "127.0.0.1:5557",
				 (char *)clash[k], (char *)clash[k + 1], "http://h/", NULL };
		assert_int_equal(load_opts_parse(6, argv, &po, err, sizeof err), -EINVAL);
		assert_non_null(strstr(err, "--locust-master"));
	}

	/* 10 connections, 1000.5 requests/s, 1001 requests over 3 parts */
	unsigned conns = 0;
	double rate = 0;
	uint64_t reqs = 0;
	for (unsigned k = 1; k <= 3; k++) {
		struct load_opts o;
		load_opts_defaults(&o);
		o.conns = 10;
		o.rate = 1000.5;
		o.requests = 1001;
		assert_int_equal(load_segment_apply(&o, k, 3, err, sizeof err), 0);
		conns += o.conns;
		rate += o.rate;
		reqs += o.requests;
	}
	assert_int_equal(conns, 10);
	assert_true(fabs(rate - 1000.5) < 1e-9);
	assert_int_equal(reqs, 1001);
	struct load_opts o;
	load_opts_defaults(&o);
	o.conns = 2;
	assert_int_equal(load_segment_apply(&o, 1, 3, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "at least 3"));
}

/* Two halves of one load (--segment), each with its .hlog, merged: the
 * merged log counts what both counted, and merges again to itself. */
static void test_segments_merge_hlog(void **state)
{
	const char *wl = weft_load_bin();
	struct server srv;
	server_start(&srv, "http_server", NULL);
	char dir[] = "/tmp/weft-segment-XXXXXX", h[3][96], out[4096];
	assert_non_null(mkdtemp(dir));
	long long made = 0;
	int fd[2];
	pid_t pid[2];
	char seg[2][16];
	for (int k = 0; k < 2; k++) { /* together, as on two machines */
		snprintf(seg[k], sizeof seg[k], "%d/2", k + 1);
		snprintf(h[k], sizeof h[k], "%s/part%d.hlog", dir, k + 1);
		const char *argv[] = { wl, "--segment", seg[k], "-c", "3", "-d", "1500ms",
				       "--loops", "1", "--hlog", h[k], "--json", srv.url, NULL };
		pid[k] = spawn(argv, &fd[k], true);
	}
	long long lines = 0;
	for (int k = 0; k < 2; k++) {
		size_t len = 0;
		out[0] = 0;
		read_until(fd[k], out, sizeof out, &len, now_ms() + 20000.0 * SLOW, NULL);
		xclose(fd[k]);
		assert_int_equal(reap(pid[k], 5000 * SLOW), 0);
		/* 3 connections in halves: 1 and 2 */
		assert_int_equal(json_num(out, "connections"), k + 1);
		assert_int_equal(json_num(out, "errors"), 0);
		made += json_num(out, "requests");
		FILE *f = fopen(h[k], "r");
		assert_non_null(f);
		char line[4096];
		while (fgets(line, sizeof line, f))
			lines += line[0] != '#' && line[0] != '"';
		fclose(f);
	}
	server_stop(&srv);
	snprintf(h[2], sizeof h[2], "%s/all.hlog", dir);
	const char *margv[] = { wl, "--merge-hlog", h[2], h[0], h[1], NULL };
	assert_int_equal(run(margv, out, sizeof out, 10000 * SLOW), 0);
	print_message("both made %lld requests; merged: %s", made, out);
	assert_true(made > 0);
	assert_int_equal(json_num(out, "count"), made);
	assert_int_equal(json_num(out, "files"), 2);
	long long intervals = json_num(out, "intervals");
	/* 1.5 s of 1 s intervals each: the overlapping ones merged */
	assert_true(intervals >= 2 && intervals < lines);
	char again[128];
	snprintf(again, sizeof again, "%s/again.hlog", dir);
	const char *aargv[] = { wl, "--merge-hlog", again, h[2], NULL };
	assert_int_equal(run(aargv, out, sizeof out, 10000 * SLOW), 0);
	assert_int_equal(json_num(out, "count"), made);
	assert_int_equal(json_num(out, "intervals"), intervals);
	/* nonsense is refused */
	const char *bargv[] = { wl, "--merge-hlog", again, "/nonexistent.hlog", NULL };
	assert_int_equal(run(bargv, out, sizeof out, 10000 * SLOW), 1);
	assert_non_null(strstr(out, "cannot open"));
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* A master killed mid-run: the worker stops its users at once and waits
 * for a master again; SIGTERM then ends it with exit 0.  Its report's
 * duration (the time users ran) ends at the master's death. */
static void test_locust_master_dies(void **state)
{
	char lf[PATH_MAX];
	need_locust(lf);
	const char *wl = weft_load_bin();
	struct server srv;
	server_start(&srv, "http_server", NULL);
	char master[32], port[8];
	snprintf(port, sizeof port, "%u", free_port());
	snprintf(master, sizeof master, "127.0.0.1:%s", port);
	const char *margv[] = { "/usr/bin/locust", "-f", lf, "--master", "--headless",
				"--expect-workers", "1", "-u", "2", "-r", "2", "-t", "60s",
				"--master-bind-host", "127.0.0.1", "--master-bind-port", port,
				"--only-summary", NULL };
	int mout, wout;
	pid_t mpid = spawn(margv, &mout, true);
	const char *wargv[] = { wl, "--locust-master", master, "--loops", "1", "--json",
				srv.url, NULL };
	pid_t wpid = spawn(wargv, &wout, true); /* its log lines and its JSON */
	static char mlog[65536], wlog[8192];
	size_t mlen = 0, wlen = 0;
	mlog[0] = wlog[0] = 0;
	double end = now_ms() + 30000.0 * SLOW;
	read_until(wout, wlog, sizeof wlog, &wlen, end, "spawn: 2 users");
	double spawned = now_ms();
	msleep(1000);
	assert_int_equal(kill(mpid, SIGKILL), 0);
	reap(mpid, 5000);
	read_until(mout, mlog, sizeof mlog, &mlen, now_ms() + 100, NULL);
	xclose(mout);
	read_until(wout, wlog, sizeof wlog, &wlen, now_ms() + 5000.0 * SLOW, "went away");
	if (!strstr(wlog, "the master went away: users stopped"))
		fail_msg("the worker did not notice the master's death: %s", wlog);
	msleep(1500); /* users stopped: the load does not go on */
	double termed = now_ms();
	signal_program(wpid, SIGTERM);
	read_until(wout, wlog, sizeof wlog, &wlen, now_ms() + 10000.0 * SLOW, NULL);
	int st = reap(wpid, 5000 * SLOW);
	xclose(wout);
	server_stop(&srv);
	print_message("worker: %s", wlog);
	assert_int_equal(st, 0);
	const char *json = strstr(wlog, "{\"url\"");
	assert_non_null(json);
	assert_true(json_num(json, "requests") > 0);
	const char *d = strstr(json, "\"duration_s\":");
	assert_non_null(d);
	double ran = strtod(d + strlen("\"duration_s\":"), NULL);
	print_message("users ran %.2f s; SIGTERM came %.2f s after the spawn\n", ran,
		      (termed - spawned) / 1000);
	assert_true(ran < (termed - spawned) / 1000 - 1.0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_segment_split),
	cmocka_unit_test_setup_teardown(test_segments_merge_hlog, setup, teardown),
	cmocka_unit_test_setup_teardown(test_locust_master_counts, setup, teardown),
	cmocka_unit_test_setup_teardown(test_locust_worker_leaves_on_signal, setup, teardown),
	cmocka_unit_test_setup_teardown(test_locust_master_dies, setup, teardown),
};

WEFT_TEST_MAIN(tests)
