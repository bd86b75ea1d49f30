/*
 * idle_conns: what a server spends per idle connection (issue 5).
 *
 *   idle_conns -p PORT --pid PID [-n COUNT] [--name NAME] [--sources N]
 *              [--no-echo] [--hold SECONDS]
 *
 * Opens COUNT (default 10000) TCP connections to 127.0.0.1:PORT, where a
 * running echo server with process id PID listens, and holds them open.
 * The server's resident memory (VmRSS from /proc/PID/status) is read
 * before, once every connection is established and the server's RSS has
 * stopped moving ("accepted": never used), and again after one 1-byte
 * echo on every connection ("used": each has had a request and is now
 * idle, waiting for the next).  Prints on stdout
 *
 *   BENCH idle_c10000_NAME rss_per_conn_B=... rss_used_per_conn_B=... kernel_per_conn_B=... conns=10000 rss_before_kB=... rss_used_kB=...
 *
 * kernel_per_conn_B is the growth of the kernel's slab memory (Slab: of
 * /proc/meminfo: sockets, files, epoll items... of both ends of every
 * connection, and whatever else the machine did meanwhile) per connection:
 * for scale, not part of the server's RSS.
 *
 * Plain sockets, no runtime.  One source address has about
 * ip_local_port_range ports to one server port (28k by default), so more
 * connections come from several loopback sources, 127.0.0.1..N (bound
 * before connect with IP_BIND_ADDRESS_NO_PORT); --sources picks N (default:
 * as many as COUNT needs).  The open-file limit is raised to COUNT + 64
 * (the hard limit too, which needs root).  Exit status 0 on success, 3 when
 * the machine cannot do it (limits: said on stderr), 1 on other failures.
 *
 * Run by bench/scaling.sh, which starts the servers; with no arguments
 * (as `make bench` runs every bench program) it only says so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define INFLIGHT 256 /* connects in flight at once */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* VmRSS of pid in kB, -1 if unreadable. */
static long rss_kb(int pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Slab: of /proc/meminfo in kB (the whole machine's kernel objects). */
static long slab_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Slab: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Wait until pid's RSS has not changed for `quiet` samples 100 ms apart
 * (at most max_s seconds); returns the last reading. */
static long settled_rss(int pid, int quiet, double max_s)
{
	long last = rss_kb(pid);
	int same = 0;
	double end = now_s() + max_s;
	while (same < quiet && now_s() < end) {
		sleep_ms(100);
		long r = rss_kb(pid);
		same = r == last ? same + 1 : 0;
		last = r;
	}
	return last;
}

static int usage(const char *p)
{
	fprintf(stderr,
		"usage: %s -p PORT --pid PID [-n COUNT] [--name NAME] [--sources N] "
		"[--no-echo] [--hold SECONDS]\n",
		p);
	return 2;
}

int main(int argc, char **argv)
{
	int port = 0, pid = 0, sources = 0, echo = 1;
	long n = 10000;
	double hold = 0;
	const char *name = "server";

	if (argc == 1) {
		fprintf(stderr, "idle_conns: not a stand-alone benchmark: bench/scaling.sh runs it "
				"against the servers it starts (skipped)\n");
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--no-echo")) {
			echo = 0;
			continue;
		}
		if (!v)
			return usage(argv[0]);
		if (!strcmp(a, "-p") || !strcmp(a, "--port"))
			port = atoi(v);
		else if (!strcmp(a, "--pid"))
			pid = atoi(v);
		else if (!strcmp(a, "-n"))
			n = atol(v);
		else if (!strcmp(a, "--name"))
			name = v;
		else if (!strcmp(a, "--sources"))
			sources = atoi(v);
		else if (!strcmp(a, "--hold"))
			hold = atof(v);
		else
			return usage(argv[0]);
		i++;
	}
	if (port <= 0 || port > 65535 || pid <= 0 || n <= 0 || n > 10000000 || sources < 0 ||
	    sources > 250 || hold < 0)
		return usage(argv[0]);
	if (rss_kb(pid) < 0) {
		fprintf(stderr, "idle_conns: cannot read /proc/%d/status\n", pid);
		return 1;
	}

	/* file descriptors */
	struct rlimit rl;
	rlim_t need = (rlim_t)n + 64;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need) {
		struct rlimit want = {need, rl.rlim_max > need ? rl.rlim_max : need};
		if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
			fprintf(stderr,
				"idle_conns: SKIP %ld connections: need %lu open files, limit %lu "
				"(hard %lu; raising it needs root, and fs.nr_open)\n",
				n, (unsigned long)need, (unsigned long)rl.rlim_cur,
				(unsigned long)rl.rlim_max);
			return 3;
		}
	}

	/* source addresses */
	unsigned lo = 32768, hi = 60999;
	FILE *pf = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	if (pf) {
		if (fscanf(pf, "%u %u", &lo, &hi) != 2)
			lo = 32768, hi = 60999;
		fclose(pf);
	}
	long per_source = (long)(hi - lo + 1) * 9 / 10; /* leave some for others */
	if (!sources)
		sources = (int)((n + per_source - 1) / per_source);
	if (sources > 250 || (long)sources * per_source < n) {
		fprintf(stderr,
			"idle_conns: SKIP %ld connections: %d source addresses x %ld ports "
			"(ip_local_port_range %u-%u) are too few\n",
			n, sources, per_source, lo, hi);
		return 3;
	}

	int *fds = malloc((size_t)n * sizeof(*fds));
	struct epoll_event *evs = malloc(INFLIGHT * sizeof(*evs));
	int ep = epoll_create1(0);
	if (!fds || !evs || ep < 0) {
		perror("idle_conns: setup");
		return 1;
	}
	long rss0 = settled_rss(pid, 3, 2), mem0 = slab_kb();
	double t0 = now_s();

	/* connect, at most INFLIGHT at once */
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	long opened = 0, done = 0, inflight = 0;
	int failed = 0;
	while (done < n && !failed) {
		while (opened < n && inflight < INFLIGHT) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0) {
				fprintf(stderr, "idle_conns: socket %ld: %s\n", opened, strerror(errno));
				failed = 1;
				break;
			}
			if (sources > 1) {
				int one = 1;
				struct sockaddr_in src = {.sin_family = AF_INET};
				src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(opened % sources));
				setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
				if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
					fprintf(stderr, "idle_conns: bind %s: %s\n",
						inet_ntoa(src.sin_addr), strerror(errno));
					failed = 1;
					close(fd);
					break;
				}
			}
			if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 &&
			    errno != EINPROGRESS) {
				fprintf(stderr, "idle_conns: connect %ld: %s\n", opened, strerror(errno));
				failed = 1;
				close(fd);
				break;
			}
			struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)opened};
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			fds[opened++] = fd;
			inflight++;
		}
		if (failed)
			break;
		int k = epoll_wait(ep, evs, INFLIGHT, 5000);
		if (k <= 0) {
			fprintf(stderr, "idle_conns: connects stalled at %ld of %ld\n", done, n);
			failed = 1;
			break;
		}
		for (int i = 0; i < k; i++) {
			long idx = (long)evs[i].data.u64;
			int err = 0;
			socklen_t el = sizeof err;
			getsockopt(fds[idx], SOL_SOCKET, SO_ERROR, &err, &el);
			if (err) {
				fprintf(stderr, "idle_conns: connection %ld: %s\n", idx, strerror(err));
				failed = 1;
			}
			struct epoll_event ev = {.events = 0, .data.u64 = (uint64_t)idx};
			epoll_ctl(ep, EPOLL_CTL_MOD, fds[idx], &ev);
			inflight--;
			done++;
		}
	}
	if (failed) {
		fprintf(stderr, "idle_conns: %s: only %ld of %ld connections\n", name, done, n);
		return 1;
	}
	double t1 = now_s();
	long rss1 = settled_rss(pid, 5, 20);
	long mem1 = slab_kb();
	fprintf(stderr, "idle_conns: %s: %ld connections from %d source(s) in %.2f s; RSS %ld -> %ld kB\n",
		name, n, sources, t1 - t0, rss0, rss1);

	/* one echo on each, then idle again */
	long rss2 = -1;
	if (echo) {
		for (long i = 0; i < n; i++) {
			struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
			epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev);
			if (write(fds[i], "x", 1) != 1) {
				fprintf(stderr, "idle_conns: write %ld: %s\n", i, strerror(errno));
				return 1;
			}
		}
		long got = 0;
		while (got < n) {
			int k = epoll_wait(ep, evs, INFLIGHT, 10000);
			if (k <= 0) {
				fprintf(stderr, "idle_conns: %s: only %ld of %ld echoes\n", name, got, n);
				return 1;
			}
			for (int i = 0; i < k; i++) {
				long idx = (long)evs[i].data.u64;
				char c;
				if (read(fds[idx], &c, 1) != 1 || c != 'x') {
					fprintf(stderr, "idle_conns: %s: connection %ld: bad echo\n", name, idx);
					return 1;
				}
				struct epoll_event ev = {.events = 0, .data.u64 = (uint64_t)idx};
				epoll_ctl(ep, EPOLL_CTL_MOD, fds[idx], &ev);
				got++;
			}
		}
		rss2 = settled_rss(pid, 5, 20);
		fprintf(stderr, "idle_conns: %s: one echo on each in %.2f s; RSS %ld kB\n", name,
			now_s() - t1, rss2);
	}
	long mem2 = slab_kb();
	long memd = (echo ? mem2 : mem1) - mem0;
	printf("BENCH idle_c%ld_%s rss_per_conn_B=%.0f", n, name, (double)(rss1 - rss0) * 1024 / (double)n);
	if (echo)
		printf(" rss_used_per_conn_B=%.0f", (double)(rss2 - rss0) * 1024 / (double)n);
	else
		printf(" rss_used_per_conn_B=-");
	if (mem0 >= 0 && mem1 >= 0)
		printf(" kernel_per_conn_B=%.0f", (double)memd * 1024 / (double)n);
	else
		printf(" kernel_per_conn_B=-");
	printf(" conns=%ld rss_before_kB=%ld rss_used_kB=%ld\n", n, rss0, echo ? rss2 : rss1);
	fflush(stdout);
	if (hold > 0)
		sleep_ms((unsigned)(hold * 1000));
	return 0;
}
