/*
 * observe: what the stall detector and the metrics cost (issue 12; target
 * <= 1.02x on each benchmark).
 *
 * The same benchmarks are built twice: in build/bench/ against the normal
 * library, and in build/bench/off/ against one compiled with
 * -DWEFT_NO_OBSERVE (no watchdog, no metrics counters, no wake sampling;
 * weft_runtime_stats' older counters stay in both).  This driver runs
 * each pair as child processes, alternating which goes first, `reps`
 * times (BENCH_REPS, at least 3), each child measuring once
 * (BENCH_REPS=1 after its warm-up), and reports the median of each side
 * and the median of the pairs' ratios (each on/off pair ran back to
 * back, under the same load), with the ranges on stderr:
 *
 *   BENCH observe_<name> <on> <unit> vs=<off> ratio=<median on/off> target=<=1.02x ok|MISS
 *
 * yield, spawn and pingpong are ns per operation; pingpong_2loops is the
 * round across two loops as a multiple of the hardware's own cross-core
 * round measured in the same process; echo_cpu is the loop's CPU per
 * round trip of a TCP echo (bench/echo_cpu.c).
 */
#include "bench.h"

#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>

#define TARGET 1.02

struct pair {
	const char *prog;  /* executable in DIR and DIR/off */
	const char *line;  /* its BENCH line's name, or the start of the
			      stderr line holding the value */
	const char *unit;
	double on[BENCH_MAX_REPS], off[BENCH_MAX_REPS];
};

static struct pair pairs[] = {
	{"yield", "yield", "ns", {0}, {0}},
	{"spawn", "spawn", "ns", {0}, {0}},
	{"pingpong", "pingpong", "ns", {0}, {0}},
	/* The cross-loop round as a multiple of the hardware's own round
	 * measured in the same process: that floor moves 10x and more
	 * between processes on these VMs (bench/pingpong.c). */
	{"pingpong", "pingpong_2loops:", "x_hw", {0}, {0}},
	{"echo_cpu", "echo_cpu", "ns", {0}, {0}},
};
#define NPAIRS (sizeof(pairs) / sizeof(pairs[0]))

/* Run `path` (BENCH_REPS=1) and keep its stdout in out. */
static void run_child(const char *path, char *out, size_t cap)
{
	int p[2];
	if (pipe(p) != 0)
		BENCH_FAIL("pipe");
	pid_t pid = fork();
	if (pid < 0)
		BENCH_FAIL("fork");
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2); /* some values are only on stderr */
		close(p[0]);
		close(p[1]);
		setenv("BENCH_REPS", "1", 1);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t len = 0;
	ssize_t n;
	while ((n = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		BENCH_FAIL("%s failed (status %d)", path, st);
}

/* The value of "BENCH <name> <value> ..." in out; for a name ending in
 * ':', the multiple in its diagnostic "<name> <ns> ns per round, <x>x the
 * hardware's ...". */
static double value_of(const char *out, const char *name, const char *path)
{
	char key[96];
	bool diag = name[strlen(name) - 1] == ':';
	snprintf(key, sizeof key, diag ? "%s " : "BENCH %s ", name);
	const char *p = strstr(out, key);
	if (!p)
		BENCH_FAIL("%s printed no line starting %s", path, key);
	if (!diag)
		return atof(p + strlen(key));
	const char *x = strstr(p, "ns per round, ");
	if (!x)
		BENCH_FAIL("%s: no multiple in its %s line", path, name);
	return atof(x + strlen("ns per round, "));
}

/* Run both builds of prog once, in the given order, and record every
 * pair whose BENCH line it prints. */
static void measure(const char *dir, const char *prog, int rep, bool off_first)
{
	char on_path[PATH_MAX], off_path[PATH_MAX];
	static char out_on[1 << 16], out_off[1 << 16];
	snprintf(on_path, sizeof on_path, "%s/%s", dir, prog);
	snprintf(off_path, sizeof off_path, "%s/off/%s", dir, prog);
	if (off_first) {
		run_child(off_path, out_off, sizeof out_off);
		run_child(on_path, out_on, sizeof out_on);
	} else {
		run_child(on_path, out_on, sizeof out_on);
		run_child(off_path, out_off, sizeof out_off);
	}
	for (size_t i = 0; i < NPAIRS; i++) {
		if (strcmp(pairs[i].prog, prog) != 0)
			continue;
		pairs[i].on[rep] = value_of(out_on, pairs[i].line, on_path);
		pairs[i].off[rep] = value_of(out_off, pairs[i].line, off_path);
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	char self[PATH_MAX];
	snprintf(self, sizeof self, "%s", argv[0]);
	const char *dir = dirname(self);
	int reps = bench_reps() < 3 ? 3 : bench_reps();
	const char *progs[] = {"yield", "spawn", "pingpong", "echo_cpu"};
	for (int r = 0; r < reps; r++)
		for (size_t k = 0; k < sizeof progs / sizeof progs[0]; k++)
			measure(dir, progs[k], r, (r + (int)k) & 1);
	for (size_t i = 0; i < NPAIRS; i++) {
		struct pair *p = &pairs[i];
		double on_lo, on_hi, off_lo, off_hi;
		double on = bench_median_range(p->on, reps, &on_lo, &on_hi);
		double off = bench_median_range(p->off, reps, &off_lo, &off_hi);
		/* The ratio of each interleaved pair, then their median: the
		 * load of a shared machine drifts, and a pair shares it. */
		double r[BENCH_MAX_REPS] = {0}, r_lo, r_hi;
		for (int k = 0; k < reps; k++)
			r[k] = p->off[k] > 0 ? p->on[k] / p->off[k] : 0;
		double ratio = bench_median_range(r, reps, &r_lo, &r_hi);
		char name[64], target[32];
		snprintf(name, sizeof name, "observe_%.*s", (int)strcspn(p->line, ":"), p->line);
		fprintf(stderr, "%s: on %.2f %s [%.2f..%.2f], off %.2f %s [%.2f..%.2f], "
				"pair ratios %.3f [%.3f..%.3f], %d runs each, interleaved\n",
			name, on, p->unit, on_lo, on_hi, off, p->unit, off_lo, off_hi, ratio, r_lo,
			r_hi, reps);
		snprintf(target, sizeof target, "<=%.2fx", TARGET);
		bench_line(name, on, p->unit, off, ratio, target, ratio <= TARGET);
	}
	return 0;
}
