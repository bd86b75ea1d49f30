/*
 * weft/trace.h — an opt-in event trace of the scheduler and the I/O layer,
 * written as Chrome trace-event JSON (Perfetto, chrome://tracing).
 *
 * Each loop records into its own ring (a flight recorder: when full, the
 * newest event overwrites the oldest, and the overwritten ones are
 * counted).  Events: a task spawned, run (a slice from the moment it is
 * switched in to the moment it parks, yields or exits), parked (with what
 * it waits on), woken (a flow arrow when the waker runs on another loop),
 * stolen (a flow arrow from the victim loop), an I/O operation submitted
 * and completed, a timer fired, and the loop going to sleep and waking.
 * Recording costs a timestamp and a 32-byte store; a loop not recording
 * pays one predictable branch per would-be event.  docs/observability.md,
 * "Event trace", says how to record and open a trace.
 *
 * Without changing a program: WEFT_TRACE=path in the environment makes
 * every runtime record from weft_runtime_start to weft_runtime_shutdown
 * and write its trace to path at shutdown (WEFT_TRACE_EVENTS=n: the ring
 * size); a failure is reported on stderr and the program runs on.
 *
 * Thread safety: start, stop, stats and write may be called from any
 * thread (a task, a foreign thread), one at a time per runtime (a call
 * that overlaps another returns -EBUSY).  Each loop switches its recording
 * on or off at its next scheduler pass; start and stop wait for every loop
 * to have done so (a task waiting there sleeps, shielded from
 * cancellation; a foreign thread sleeps), so once weft_trace_stop returns
 * no loop records anything more and the rings can be read.
 */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ring size per loop when weft_trace_start is given 0: 65536 events
 * (2 MiB per loop). */
#define WEFT_TRACE_DEFAULT_EVENTS 65536u
/* The largest ring size accepted (2^24 events, 512 MiB per loop). */
#define WEFT_TRACE_MAX_EVENTS (1u << 24)

/*
 * Start recording on every loop of `rt`, each into a fresh ring of
 * `events_per_loop` events (0: WEFT_TRACE_DEFAULT_EVENTS; rounded up to a
 * power of two, at least 64).  The previous trace, if any, is discarded.
 * Returns once every loop records (a loop asleep is woken to notice).
 * Returns 0, -EINVAL (rt NULL, or more than WEFT_TRACE_MAX_EVENTS),
 * -EALREADY (already recording), -EBUSY (another start, stop or write of
 * rt is under way), -ESHUTDOWN (rt is not running: shutting down or
 * stopped), -ENOMEM.
 */
WEFT_API int weft_trace_start(weft_runtime *rt, size_t events_per_loop);

/*
 * Stop recording.  Returns once no loop records any more (loops that have
 * already exited count as stopped): the trace is then complete and may be
 * written, any number of times, until the next start or until rt is
 * destroyed.  A trace shorter than 20 ms is held until 20 ms have passed
 * since the start, so the timestamps' calibration is exact to a few
 * parts per million.  Returns 0, -EINVAL (rt NULL), -EALREADY (not
 * recording), -EBUSY (another call under way).
 */
WEFT_API int weft_trace_stop(weft_runtime *rt);

typedef struct weft_trace_stats {
	uint64_t recorded;    /* events recorded, all loops */
	uint64_t kept;        /* still in the rings: what a write contains */
	uint64_t overwritten; /* the oldest, lost to full rings */
	uint64_t foreign;     /* events of threads that are not loops of rt
				 (a wake from a foreign thread): not recorded */
	uint64_t duration_ns; /* from start to stop */
	unsigned loops;       /* one ring (one track) per loop */
} weft_trace_stats;

/*
 * The counts of the last trace (stopped): *out is filled.  Returns 0,
 * -EINVAL (NULL argument), -ENOENT (no trace recorded yet), -EBUSY
 * (recording, or another call under way).
 */
WEFT_API int weft_trace_stats_get(weft_runtime *rt, weft_trace_stats *out);

/*
 * Write the last trace (stopped) to `fd` as Chrome trace-event JSON: one
 * process (the runtime), one thread track per loop ("loop 0", ...), an
 * "X" slice per task run named by the task's name (or "task-<id>"),
 * instant events for spawn, park, wake, submit, complete, timer and
 * steal, "sleep" slices while the loop sleeps, and flow arrows ("s"/"f")
 * from a cross-loop wake or a steal to the run it led to.  Blocks the
 * calling thread while writing (a task calling it blocks its loop: call it
 * from a foreign thread, through weft_offload, or once the runtime has
 * shut down).  fd is not closed.  Returns the bytes written, -EINVAL,
 * -ENOENT (no trace), -EBUSY (recording, or another call under way),
 * -ENOMEM, or write(2)'s -errno.
 */
WEFT_API int64_t weft_trace_write(weft_runtime *rt, int fd);

/* weft_trace_write to the file at `path`, created or truncated (mode
 * 0644).  Same returns, plus open(2)'s -errno. */
WEFT_API int64_t weft_trace_write_path(weft_runtime *rt, const char *path);

#ifdef __cplusplus
}
#endif

#endif
