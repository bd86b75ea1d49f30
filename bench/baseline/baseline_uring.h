/*
 * The liburing baselines' shared ring (uring_echo, http_floor,
 * proxy_floor): set-up with the best flags the kernel has, and the loop
 * that hands each batch of completions to the program.  Nothing here is
 * part of weft.
 */
#ifndef WEFT_BASELINE_URING_H
#define WEFT_BASELINE_URING_H

#include <liburing.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "baseline.h"

/* The ring SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them (6.1+),
 * else COOP_TASKRUN, else plain; its fd registered where possible.  Says
 * which on stderr; exits on failure. */
static inline void baseline_ring_init(struct io_uring *ring, unsigned entries, const char *prog)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	static const char *const names[] = { "SINGLE_ISSUER|DEFER_TASKRUN", "COOP_TASKRUN",
					     "plain" };
	int rc = -EINVAL;
	for (unsigned i = 0; i < sizeof tries / sizeof *tries; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = tries[i];
		rc = io_uring_queue_init_params(entries, ring, &p);
		if (rc == 0) {
			int reg = io_uring_register_ring_fd(ring);
			fprintf(stderr, "%s: ring %s%s\n", prog, names[i],
				reg == 1 ? ", registered ring fd" : "");
			return;
		}
	}
	BASELINE_DIE("%s: io_uring_queue_init: %s", prog, strerror(-rc));
}

/* Operations in flight: SQEs taken, less final completions (a coalesced
 * wait asks for no more than can come). */
static unsigned baseline_inflight;

/* An SQE, flushing a full submission queue to make room. */
static inline struct io_uring_sqe *baseline_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(ring)))
		io_uring_submit(ring);
	baseline_inflight++;
	return sqe;
}

/* A multishot accept on lfd (again when the last one ended), its
 * completions tagged ud. */
static inline void baseline_arm_accept(struct io_uring *ring, int lfd, uint64_t ud)
{
	struct io_uring_sqe *sqe = baseline_sqe(ring);
	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud);
}

/* Wake coalescing (the baselines' --coalesce US), as weft's
 * weft_runtime_config.coalesce_us: a wait without a timeout asks for
 * BASELINE_COALESCE_NR completions (at most the operations in flight) or
 * US microseconds, whichever comes first, through Linux 6.12's min_wait.
 * 0: wake at the first. */
#define BASELINE_COALESCE_NR 32
static unsigned baseline_coalesce_us;

/* Submit what is queued and wait as above (one system call), with an
 * overall timeout of a second: without one the kernel would end the wait
 * at the min_wait even with nothing ready. */
static inline int baseline_wait_coalesced(struct io_uring *ring, unsigned nr)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
	}
	struct __kernel_timespec far = { .tv_sec = 1 };
	struct io_uring_getevents_arg a = { .sigmask_sz = _NSIG / 8,
					    .pad = baseline_coalesce_us, /* min_wait_usec */
					    .ts = (uint64_t)(uintptr_t)&far };
	long rc = syscall(__NR_io_uring_enter, ring->ring_fd, tail - IO_URING_READ_ONCE(*sq->khead),
			  nr, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &a,
			  sizeof a);
	if (rc < 0 && errno == EINVAL)
		BASELINE_DIE("--coalesce needs io_uring's min_wait (Linux 6.12)");
	return rc < 0 ? -errno : 0;
}

/* Submit what is queued and wait for at least one completion (or the
 * timeout, if not NULL; or a batch, with baseline_coalesce_us), then hand
 * every completion there is to on_cqe.  Returns how many it handed over. */
static inline unsigned baseline_ring_pass(struct io_uring *ring,
					  void (*on_cqe)(struct io_uring_cqe *, void *), void *arg,
					  struct __kernel_timespec *timeout, const char *prog)
{
	struct io_uring_cqe *cqe;
	unsigned nr = baseline_inflight < BASELINE_COALESCE_NR ? baseline_inflight
							       : BASELINE_COALESCE_NR;
	int rc = timeout			  ? io_uring_submit_and_wait_timeout(ring, &cqe, 1, timeout, NULL)
		 : baseline_coalesce_us && nr > 1 ? baseline_wait_coalesced(ring, nr)
						  : io_uring_submit_and_wait(ring, 1);
	if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME)
		BASELINE_DIE("%s: io_uring_submit_and_wait: %s", prog, strerror(-rc));
	unsigned head, seen = 0;
	io_uring_for_each_cqe(ring, head, cqe)
	{
		if (!(cqe->flags & IORING_CQE_F_MORE))
			baseline_inflight--;
		on_cqe(cqe, arg);
		seen++;
	}
	io_uring_cq_advance(ring, seen);
	return seen;
}

#endif
