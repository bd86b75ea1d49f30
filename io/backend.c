/*
 * Choosing the I/O backend, once per runtime, before any loop starts.
 *
 * The config asks (AUTO, IO_URING, EPOLL); WEFT_BACKEND overrides it, so a
 * deployed binary can be switched without a rebuild.  Unless epoll is
 * forced, a probe creates a small ring, runs one NOP through it (a policy
 * may allow io_uring_setup and refuse io_uring_enter) and checks that the
 * kernel has every operation weft issues.  Its failures are sorted:
 *
 *  - refusals (ENOSYS, EPERM, an opcode missing): AUTO falls back to epoll
 *    and says why on one line; IO_URING fails the start with the same
 *    words;
 *  - resource errors (ENOMEM from the memlock limit, EMFILE, ENFILE): the
 *    start fails whatever was asked, since epoll would hide a real problem.
 */
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *weft_backend_name(unsigned backend)
{
	switch (backend) {
	case WEFT_BACKEND_AUTO: return "auto";
	case WEFT_BACKEND_IO_URING: return "io_uring";
	case WEFT_BACKEND_EPOLL: return "epoll";
	default: return NULL;
	}
}

/* -1 when the file cannot be read (no such sysctl: kernels before 6.6). */
static int read_int_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* 2 when a seccomp filter is installed on this thread (/proc status). */
static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int mode = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	if (f)
		fclose(f);
	return mode;
}

/* Why io_uring_setup (or enter) said EPERM or ENOSYS. */
static void explain_refusal(int err, const char *call, char *why, size_t n)
{
	const char *e = err == -EPERM ? "EPERM" : "ENOSYS";
	int disabled = read_int_file("/proc/sys/kernel/io_uring_disabled");
	if (err == -EPERM && disabled == 2)
		snprintf(why, n, "disabled by kernel.io_uring_disabled=2 (%s)", e);
	else if (err == -EPERM && disabled == 1)
		snprintf(why, n, "refused by kernel.io_uring_disabled=1: this process is not "
				 "in kernel.io_uring_group (%s)", e);
	else if (seccomp_mode() == 2)
		snprintf(why, n, "refused (seccomp, %s from %s)", e, call);
	else if (err == -ENOSYS)
		snprintf(why, n, "not in this kernel (ENOSYS from %s)", call);
	else
		snprintf(why, n, "refused (an LSM or security policy, EPERM from %s)", call);
}

/* Operations weft issues on io_uring, with the kernel that brought them. */
static const struct {
	int op;
	const char *name;
} required[] = {
	{ IORING_OP_READV, "READV (5.1)" }, { IORING_OP_WRITEV, "WRITEV (5.1)" },
	{ IORING_OP_FSYNC, "FSYNC (5.1)" }, { IORING_OP_POLL_ADD, "POLL_ADD (5.1)" },
	{ IORING_OP_SENDMSG, "SENDMSG (5.3)" }, { IORING_OP_RECVMSG, "RECVMSG (5.3)" },
	{ IORING_OP_ACCEPT, "ACCEPT (5.5)" }, { IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL (5.5)" },
	{ IORING_OP_CONNECT, "CONNECT (5.5)" }, { IORING_OP_FALLOCATE, "FALLOCATE (5.6)" },
	{ IORING_OP_OPENAT, "OPENAT (5.6)" }, { IORING_OP_CLOSE, "CLOSE (5.6)" },
	{ IORING_OP_STATX, "STATX (5.6)" }, { IORING_OP_READ, "READ (5.6)" },
	{ IORING_OP_WRITE, "WRITE (5.6)" }, { IORING_OP_SEND, "SEND (5.6)" },
	{ IORING_OP_RECV, "RECV (5.6)" }, { IORING_OP_SPLICE, "SPLICE (5.7)" },
	{ IORING_OP_SHUTDOWN, "SHUTDOWN (5.11)" }, { IORING_OP_RENAMEAT, "RENAMEAT (5.11)" },
	{ IORING_OP_UNLINKAT, "UNLINKAT (5.11)" }, { IORING_OP_MKDIRAT, "MKDIRAT (5.15)" },
};

/* 0 when io_uring is usable; else -errno with `why` filled. */
static int probe_uring(char *why, size_t n)
{
	struct io_uring ring;
	int r = io_uring_queue_init(4, &ring, 0);
	if (r == -EPERM || r == -ENOSYS) {
		explain_refusal(r, "io_uring_setup", why, n);
		return r;
	}
	if (r == -EINVAL) {
		snprintf(why, n, "unusable: the kernel is too old (io_uring_setup: EINVAL)");
		return -EOPNOTSUPP;
	}
	if (r < 0) {
		snprintf(why, n, "could not be set up: %s%s", strerror(-r),
			 r == -ENOMEM ? " (RLIMIT_MEMLOCK too low? `ulimit -l`)" : "");
		return r;
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	struct io_uring_cqe *cqe;
	/* A signal, or a ring momentarily short of memory, is no reason to
	 * give io_uring up: try again (the NOP, once submitted, stays). */
	unsigned tries = 0;
	do
		r = io_uring_submit_and_wait(&ring, 1);
	while ((r == -EINTR || r == -EAGAIN || r == -EBUSY) && ++tries < 100);
	if (r >= 0 && io_uring_peek_cqe(&ring, &cqe) == 0) {
		io_uring_cqe_seen(&ring, cqe);
		r = 0;
	} else if (r >= 0) {
		r = -EIO;
	}
	if (r == -EPERM || r == -ENOSYS) {
		explain_refusal(r, "io_uring_enter", why, n);
	} else if (r < 0) {
		snprintf(why, n, "failed a NOP round trip: %s", strerror(-r));
	} else {
		struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
		if (!p) {
			snprintf(why, n, "unusable: the kernel cannot list its operations "
					 "(IORING_REGISTER_PROBE, 5.6)");
			r = -EOPNOTSUPP;
		}
		for (size_t i = 0; p && i < sizeof(required) / sizeof(required[0]); i++) {
			if (!io_uring_opcode_supported(p, required[i].op)) {
				snprintf(why, n, "unusable: the kernel lacks IORING_OP_%s",
					 required[i].name);
				r = -EOPNOTSUPP;
				break;
			}
		}
		if (p)
			io_uring_free_probe(p);
	}
	io_uring_queue_exit(&ring);
	return r;
}

static bool resource_error(int r)
{
	return r == -ENOMEM || r == -EMFILE || r == -ENFILE;
}

/* The backend asked for: WEFT_BACKEND over the config.  -EINVAL for a
 * value that names neither. */
static int asked(const weft_runtime *rt, unsigned *out, const char **env)
{
	const char *e = getenv("WEFT_BACKEND");
	*out = rt->cfg.backend;
	*env = NULL;
	if (!e || !*e)
		return 0;
	if (!strcasecmp(e, "auto"))
		*out = WEFT_BACKEND_AUTO;
	else if (!strcasecmp(e, "io_uring") || !strcasecmp(e, "uring"))
		*out = WEFT_BACKEND_IO_URING;
	else if (!strcasecmp(e, "epoll"))
		*out = WEFT_BACKEND_EPOLL;
	else {
		fprintf(stderr, "weft: WEFT_BACKEND=%s: expected auto, io_uring or epoll\n", e);
		return -EINVAL;
	}
	*env = e;
	return 0;
}

int weft__backend_choose(weft_runtime *rt)
{
	unsigned want;
	const char *env;
	int r = asked(rt, &want, &env);
	if (r < 0)
		return r;
	char *reason = rt->backend_reason;
	size_t rn = sizeof(rt->backend_reason);
	if (want == WEFT_BACKEND_EPOLL) {
		rt->backend = WEFT_BACKEND_EPOLL;
		snprintf(reason, rn, "%s", env ? "WEFT_BACKEND=epoll" : "config: WEFT_BACKEND_EPOLL");
		return 0;
	}
	char why[128];
	r = probe_uring(why, sizeof(why));
	if (r == 0) {
		rt->backend = WEFT_BACKEND_IO_URING;
		snprintf(reason, rn, "%s", want == WEFT_BACKEND_IO_URING
				? (env ? "WEFT_BACKEND=io_uring" : "config: WEFT_BACKEND_IO_URING")
				: "io_uring usable (auto)");
		return 0;
	}
	if (resource_error(r) || want == WEFT_BACKEND_IO_URING) {
		fprintf(stderr, "weft: cannot start: io_uring %s%s\n", why,
			resource_error(r) ? ""
			: env ? " (WEFT_BACKEND=io_uring asks for io_uring only)"
			      : " (the config asks for io_uring only)");
		return r;
	}
	rt->backend = WEFT_BACKEND_EPOLL;
	snprintf(reason, rn, "io_uring %s; using epoll", why);
	if (!rt->cfg.backend_quiet)
		fprintf(stderr, "weft: %s\n", reason);
	return 0;
}
