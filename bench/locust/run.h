/*
 * bench/locust/run.h: weft-load's load as a Locust worker's users.
 */
#ifndef WEFT_BENCH_LOCUST_RUN_H
#define WEFT_BENCH_LOCUST_RUN_H

#include "weft.h"
#include "weft/load.h"
#include "locust.h"

/*
 * Register with the master lc->master and run what it orders until it says
 * quit: each user is one connection of `base` (its proto, address,
 * pipeline, timeouts; its conns, duration, request count and interval are
 * the master's business and ignored), and with rate_per_user > 0 each user
 * sends that many requests/s (open loop, as Locust's constant_throughput).
 * *total gets the merged results of everything that ran, its seconds the
 * time users ran (not the gaps between tests), *peak_users the most users
 * it ran at once.
 * Returns 0, -ENOTCONN (no master answered, or the socket failed), or
 * locust_worker_start's / weft_load_create's error.  Task context.
 */
int locust_run(const weft_load_config *base, double rate_per_user,
	       const struct locust_config *lc, weft_load_result *total, unsigned *peak_users);

#endif
