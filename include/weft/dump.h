/*
 * weft/dump.h — task dumps: every live task, what it waits on and where
 * it parked, as JSON (docs/observability.md, "Task dumps").
 *
 * Included by "weft.h"; include that.
 */
#ifndef WEFT_DUMP_H
#define WEFT_DUMP_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Write one JSON document describing runtime `rt` to `fd`: every loop
 * (its backend, its in-flight I/O operations, the tasks bound to it),
 * every live task (id, name, state "running", "ready" or "parked", the
 * loop it is on, pinned or stealable, and for a parked task what it
 * waits on, since when, and a native backtrace unwound from its saved
 * registers), and the task-group tree.  The document ends with a newline;
 * its fields are listed in docs/observability.md.
 *
 * Each loop writes its own part on its own thread, between tasks (tasks
 * are owner-only data): the call asks every loop and waits up to
 * `timeout_ns` for the answers (weft.h, "Timeouts and deadlines":
 * WEFT_FOREVER no limit).  A loop that does not answer in time (stuck in
 * a task that never suspends) is reported as "stuck" with the id of the
 * task it last started, and its tasks are missing from the document.
 *
 * Returns the number of loops reported stuck (0: the dump is complete),
 * or -EINVAL (rt NULL, fd < 0), -ENOMEM, -ESHUTDOWN (rt is shutting
 * down), -ECANCELED (the calling task was cancelled while waiting), or a
 * write(2) error (-EPIPE, -ENOSPC, ...).  fd stays the caller's.
 *
 * Any thread may call it: a foreign thread blocks, a task suspends (and
 * shows up in the dump as parked, waiting on "other").  Not from a signal
 * handler: set weft_runtime_config.dump_signal for that.
 */
WEFT_API int weft_dump(weft_runtime *rt, int fd, uint64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif
