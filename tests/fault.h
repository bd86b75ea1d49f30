/*
 * The controls of the fault build (build/fault, tests/fault.c): the
 * runtime's own system calls and allocations fail at random, from a seed.
 * Only the fault tree links these; docs/testing.md describes the build,
 * the sites and how to replay a seed.
 */
#ifndef WEFT_TEST_FAULT_H
#define WEFT_TEST_FAULT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Choose which calls fail and how often, and reseed every thread's stream
 * from WEFT_FAULT_SEED (printed on stderr, so a failure can be replayed).
 * `spec` is a comma-separated list: "all" (every site but those parked for
 * a known defect), "transparent" (failures the runtime must hide from its
 * callers), "none", a site name, "site=RATE" (a probability per call), or
 * "-site".  A site named without a rate fails at WEFT_FAULT_RATE (0.02).
 * NULL takes the spec from WEFT_FAULT.  Faults stay as enabled as they were
 * (weft_fault_enable).
 */
void weft_fault_config(const char *spec);

/* Turn injection on or off for every thread (off at start, unless
 * WEFT_FAULT is set: then on from the start of the process, so a suite
 * written for the normal build runs under faults unchanged). */
void weft_fault_enable(bool on);

/*
 * Fail the nth call (1: the next) at `site` from now, whatever its rate:
 * one fault at a chosen point, for tests that fail each call of a path in
 * turn (n = 1, 2, ... until weft_fault_injected shows that none was
 * failed).  Counted over every thread, only while injection is enabled.
 * 0 disarms it, as does weft_fault_config.  -1 for an unknown site.
 */
int weft_fault_fail_nth(const char *site, uint64_t n);

/* The seed in use, and the faults injected so far (every site). */
uint64_t weft_fault_seed(void);
uint64_t weft_fault_injected(void);

/* Open file descriptors of the process (entries of /proc/self/fd). */
unsigned weft_fault_open_fds(void);

#endif
