/*
 * bench/locust/locust.h: weft-load as a Locust worker.
 *
 * Speaks the worker side of Locust 2.12.1's master/worker protocol
 * (locust/runners.py, locust/rpc/): a ZeroMQ DEALER socket whose identity
 * is the worker's id (hostname_<32 hex>), each message one frame holding
 * msgpack's [type, data, node_id].  The worker
 *
 *   sends "client_ready" (version -1: any master) until "ack" comes back,
 *   then a "heartbeat" every second ({state, current_cpu_usage,
 *   current_memory_usage}) and a "stats" report every 3 s;
 *   on "spawn" answers "spawning", hands the new user count to the run
 *   (LOCUST_CMD_USERS) and, once the run says the users run, answers
 *   "spawning_complete";
 *   on "stop" stops the users (LOCUST_CMD_STOP), answers "client_stopped",
 *   and after the master's stop_timeout "client_ready" again;
 *   on "quit" ends the run (LOCUST_CMD_QUIT) and, once it has, sends a last
 *   "stats" with everything not yet reported, then "quit";
 *   on "reconnect" opens a new socket with the same identity;
 *   when the master's connection closes (it died: 2.12.1 masters send no
 *   heartbeat) stops the users (LOCUST_CMD_STOP) and registers again.
 *
 * Statistics go in the form the master merges (locust/stats.py,
 * StatsEntry.serialize and setup_distributed_stats_event_listeners): one
 * entry (the configured name and method) plus "stats_total", each with
 * num_requests, num_none_requests, num_failures, total/min/max response
 * time in ms, total_content_length, response_times keyed by Locust's
 * rounded ms (1..99, then 2, then 3 significant digits... as
 * StatsEntry._log_response_time rounds), num_reqs_per_sec and
 * num_fail_per_sec keyed by Unix second; "errors" by kind, and
 * user_classes_count / user_count.  A request that failed without an
 * answer (connect, read, timeout, parse errors) counts as a request, a
 * failure and a "none" request (no response time), as Locust counts a
 * request whose response time it cannot know.
 *
 * Threading: the socket lives on one plain thread that this module starts
 * (ZeroMQ sockets are bound to one thread); everything else may be called
 * from any task or thread.  locust_worker_next must be called from a weft
 * task (it waits on a weft queue).
 */
#ifndef WEFT_BENCH_LOCUST_H
#define WEFT_BENCH_LOCUST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct locust_worker;

struct locust_config {
	const char *master;      /* "host:port", "[v6addr]:port" */
	const char *name;        /* the stats entry's name: the path, "/" */
	const char *method;      /* its method: "GET", "TCP", "REDIS"... */
	const char *failed_what; /* what an error answer is: "HTTP status not 2xx" */
	unsigned ready_tries;    /* "client_ready" sent at most this often, 5 s
				    apart, before giving up (0: 60, Locust's) */
	FILE *log;               /* a line per protocol event, or NULL */
};

/* What the master asks of the run. */
enum locust_cmd_kind {
	LOCUST_CMD_USERS = 1, /* run `users` connections from now on */
	LOCUST_CMD_STOP,      /* stop every connection, then locust_worker_stopped */
	LOCUST_CMD_QUIT,      /* stop everything, then locust_worker_finish */
	LOCUST_CMD_LOST,      /* no master answered: finish and fail */
};

struct locust_cmd {
	int kind;
	unsigned users;
};

/* The requests of one measured window, as the run counted them. */
struct locust_interval {
	double start_unix_s, end_unix_s; /* the window, wall clock */
	uint64_t answered;               /* responses, measured */
	uint64_t failed;                 /* of them, error answers */
	uint64_t connect_errors, read_errors, timeouts, parse_errors;
	uint64_t bytes;                  /* response bytes */
	uint64_t min_ns, max_ns;         /* exact, of the answered */
	long double sum_ns;              /* exact sum of their latencies */
	/* The distribution: each call gives a latency and how many answers
	 * had it, false at the end. */
	bool (*next)(void *arg, uint64_t *value_ns, uint64_t *count);
	void *next_arg;
};

/*
 * Connect to the master and start the protocol thread.  Returns 0 with *out
 * set, -EINVAL (a bad master address: the message went to cfg->log),
 * -ENOMEM, or a ZeroMQ error as -errno.  Any thread.
 */
int locust_worker_start(struct locust_worker **out, const struct locust_config *cfg);

/* Wait for the master's next order.  Returns 0 with *cmd set, or the
 * queue's -ECANCELED / -ETIMEDOUT.  Task context. */
int locust_worker_next(struct locust_worker *w, struct locust_cmd *cmd);

/* Leave as if the master had said quit (LOCUST_CMD_QUIT comes next), so
 * the master gets the last counts and a "quit" and drops this worker.  For
 * SIGINT/SIGTERM.  Any thread. */
void locust_worker_leave(struct locust_worker *w);

/* The run now has `users` connections running: "spawning_complete". */
void locust_worker_running(struct locust_worker *w, unsigned users);

/* Every connection has stopped after LOCUST_CMD_STOP: "client_stopped". */
void locust_worker_stopped(struct locust_worker *w);

/* Add a window's requests to the next report.  Any thread, any time
 * before locust_worker_finish; takes a mutex briefly. */
void locust_worker_add(struct locust_worker *w, const struct locust_interval *iv);

/*
 * After LOCUST_CMD_QUIT or _LOST (or to leave on one's own): send what is
 * not reported yet and "quit", give the socket up to 2 s to deliver them,
 * stop the thread and free w.  Returns 0, or -ENOTCONN if the master never
 * acknowledged this worker.  Any thread but the protocol's.
 */
int locust_worker_finish(struct locust_worker *w);

/*
 * Locust's key in response_times for a response time in ms
 * (StatsEntry._log_response_time: round() below 100, to tens below 1000,
 * hundreds below 10000, thousands above; Python rounds half to even).
 */
int64_t locust_rounded_ms(double ms);

#endif
