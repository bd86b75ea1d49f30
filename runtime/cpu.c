/*
 * CPUs: how many the process may use (weft_cpu_count: its affinity mask,
 * capped by a cgroup CPU quota, as Go's GOMAXPROCS and Rust's
 * available_parallelism count), which CPU a pinned loop takes (within the
 * mask the runtime was started under), and the mask a thread or process
 * gets when a pinned loop creates it (that same mask, not the loop's one
 * CPU).
 */
#include "internal.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CG_PATH 1024 /* cgroup paths: systemd slices run to ~200 bytes */

/* ------------------------------------------------------------------------ */
/* the cgroup CPU quota                                                      */
/* ------------------------------------------------------------------------ */

static bool read_first_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = fgets(buf, (int)n, f) != NULL;
	fclose(f);
	return ok;
}

/* The CPUs a quota of `quota` per `period` amounts to, rounded up, at
 * least 1; 0 when it sets no limit. */
static unsigned quota_cpus(long long quota, long long period)
{
	if (quota <= 0 || period <= 0)
		return 0;
	long long n = quota / period + (quota % period != 0);
	return n > 65536 ? 65536 : (unsigned)n;
}

static unsigned tighter(unsigned a, unsigned b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* The limit cgroup directory `dir` sets: cgroup v2's cpu.max ("max
 * 100000", "150000 100000"), v1's cpu.cfs_quota_us (-1: none) over
 * cpu.cfs_period_us.  0: no limit, or no such file. */
static unsigned dir_limit(const char *dir, bool v2)
{
	char path[CG_PATH + 32], line[64];
	long long quota, period;
	if (v2) {
		snprintf(path, sizeof path, "%s/cpu.max", dir);
		if (!read_first_line(path, line, sizeof line) ||
		    sscanf(line, "%lld %lld", &quota, &period) != 2)
			return 0; /* "max ...": none */
		return quota_cpus(quota, period);
	}
	snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
	if (!read_first_line(path, line, sizeof line) || sscanf(line, "%lld", &quota) != 1)
		return 0;
	snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
	if (!read_first_line(path, line, sizeof line) || sscanf(line, "%lld", &period) != 1)
		return 0;
	return quota_cpus(quota, period);
}

/* The tightest limit of cgroup `cg` ("/a/b") and of its ancestors, under
 * the hierarchy mounted at `mnt`.  Ancestors, because a parent's quota caps
 * its children; and because a container without a cgroup namespace sees
 * its own cgroup mounted as the root while /proc/self/cgroup names the
 * host's full path: that path is missing, and the walk ends at the root. */
static unsigned walk_limit(const char *mnt, const char *cg, bool v2)
{
	char p[CG_PATH];
	if ((size_t)snprintf(p, sizeof p, "%s%s", mnt, cg) >= sizeof p)
		return 0;
	size_t base = strlen(mnt), len = strlen(p);
	unsigned best = 0;
	for (;;) {
		while (len > base && p[len - 1] == '/')
			p[--len] = '\0';
		best = tighter(best, dir_limit(p, v2));
		char *slash = strrchr(p + base, '/');
		if (!slash)
			return best;
		*slash = '\0';
		len = (size_t)(slash - p);
	}
}

/* Is `name` one of the comma-separated words of `list`? */
static bool has_word(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *w = list; w; w = strchr(w, ',') ? strchr(w, ',') + 1 : NULL)
		if (strncmp(w, name, n) == 0 && (w[n] == ',' || w[n] == '\0'))
			return true;
	return false;
}

unsigned weft__cgroup_cpu_limit(const char *root)
{
	char path[CG_PATH], line[CG_PATH], mnt[CG_PATH];
	snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	unsigned best = 0;
	/* "0::/path" for cgroup v2, "4:cpu,cpuacct:/path" for a v1
	 * controller; both may be there (hybrid hierarchies). */
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/')
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1, *cg = c2 + 1;
		if (!*ctrls) {
			static const char *const v2_mnts[] = { "/sys/fs/cgroup",
							       "/sys/fs/cgroup/unified" };
			for (unsigned i = 0; i < 2; i++) {
				snprintf(mnt, sizeof mnt, "%s%s", root, v2_mnts[i]);
				best = tighter(best, walk_limit(mnt, cg, true));
			}
		} else if (has_word(ctrls, "cpu")) {
			snprintf(mnt, sizeof mnt, "%s/sys/fs/cgroup/%s", root, ctrls);
			best = tighter(best, walk_limit(mnt, cg, false));
			snprintf(mnt, sizeof mnt, "%s/sys/fs/cgroup/cpu", root);
			best = tighter(best, walk_limit(mnt, cg, false));
		}
	}
	fclose(f);
	return best;
}

unsigned weft__cpu_count_at(const char *root)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
							     : sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	unsigned lim = weft__cgroup_cpu_limit(root);
	return lim && lim < (unsigned long)n ? lim : (unsigned)n;
}

unsigned weft_cpu_count(void)
{
	return weft__cpu_count_at("");
}

/* ------------------------------------------------------------------------ */
/* pinning                                                                   */
/* ------------------------------------------------------------------------ */

void weft__cpu_save(weft_runtime *rt)
{
	if (sched_getaffinity(0, sizeof rt->cpus, &rt->cpus) == 0 && CPU_COUNT(&rt->cpus))
		return;
	/* More CPUs than a cpu_set_t holds: the first CPU_SETSIZE. */
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	CPU_ZERO(&rt->cpus);
	for (long i = 0; i < (n > 0 ? n : 1) && i < CPU_SETSIZE; i++)
		CPU_SET((int)i, &rt->cpus);
}

void weft__cpu_pin(weft_loop *l)
{
	const cpu_set_t *all = &l->rt->cpus;
	unsigned k = l->index % (unsigned)CPU_COUNT(all); /* save: never empty */
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (CPU_ISSET(cpu, all) && k-- == 0) {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			pthread_setaffinity_np(pthread_self(), sizeof one, &one);
			return;
		}
	}
}

weft_loop *weft__cpu_unpin_begin(void)
{
	weft_loop *l = weft__loop_self();
	if (!l || !l->rt->cfg.pin_cpus ||
	    pthread_setaffinity_np(pthread_self(), sizeof l->rt->cpus, &l->rt->cpus) != 0)
		return NULL;
	return l;
}

void weft__cpu_unpin_end(weft_loop *l)
{
	if (l)
		weft__cpu_pin(l);
}
