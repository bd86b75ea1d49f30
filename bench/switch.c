/*
 * switch: raw context switch cost.
 *
 * Two coroutines on mmap'd stacks run the same loop, switching to each
 * other n times each, first with weft__ctx_switch (runtime/ctx.h), then with
 * glibc swapcontext in the same run.  Both sides switch from the same call
 * site, as weft tasks do (they all suspend through the scheduler's
 * switch-out path): a switch returns on the resumed stack, and the CPU
 * predicts that return only when the resumed side called the switch from
 * the same place.  Reports ns per switch for weft, with swapcontext as the
 * baseline; target: weft at least 20x faster.
 */
#include "bench.h"
#include "runtime/ctx.h"

#include <sys/mman.h>
#include <ucontext.h>

#define STACK_SIZE (64 * 1024)

static weft__ctx w_main, w_co[2];
static ucontext_t u_main, u_co[2];
static uint64_t rounds;     /* switches per side per measurement */
static uint64_t elapsed_ns; /* written by side 0 */

static void weft_side(void *arg)
{
	int me = (int)(intptr_t)arg, other = !me;
	for (;;) {
		uint64_t n = rounds, t0 = now_ns();
		for (uint64_t i = 0; i < n; i++)
			weft__ctx_switch(&w_co[me], &w_co[other]);
		if (me == 0) {
			elapsed_ns = now_ns() - t0;
			weft__ctx_switch(&w_co[0], &w_main);
		}
	}
}

static void uc_side(int me)
{
	int other = !me;
	for (;;) {
		uint64_t n = rounds, t0 = now_ns();
		for (uint64_t i = 0; i < n; i++)
			if (swapcontext(&u_co[me], &u_co[other]) != 0)
				BENCH_FAIL("swapcontext failed");
		if (me == 0) {
			elapsed_ns = now_ns() - t0;
			if (swapcontext(&u_co[0], &u_main) != 0)
				BENCH_FAIL("swapcontext failed");
		}
	}
}

static void *map_stack(void)
{
	void *p = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		BENCH_FAIL("mmap stack failed");
	return p;
}

/*
 * One measurement: side 0 runs n switches to side 1, side 1 n back to side
 * 0 (2n switches), then side 0 returns to main.  Side 1 is left waiting in
 * its loop, which lines up with side 0 starting the next measurement.
 */
static double run_weft(uint64_t n)
{
	rounds = n;
	weft__ctx_switch(&w_main, &w_co[0]);
	return (double)elapsed_ns / (double)(2 * n);
}

static double run_uc(uint64_t n)
{
	rounds = n;
	if (swapcontext(&u_main, &u_co[0]) != 0)
		BENCH_FAIL("swapcontext failed");
	return (double)elapsed_ns / (double)(2 * n);
}

int main(void)
{
	int reps = bench_reps();
	uint64_t wn = bench_scaled(5000000), un = bench_scaled(200000);

	weft__fpenv fp;
	weft__fpenv_save(&fp);
	for (int i = 0; i < 2; i++) {
		char *s = map_stack();
		weft__ctx_make(&w_co[i], s + STACK_SIZE, weft_side, (void *)(intptr_t)i, &fp);
		s = map_stack();
		if (getcontext(&u_co[i]) != 0)
			BENCH_FAIL("getcontext failed");
		u_co[i].uc_stack.ss_sp = s;
		u_co[i].uc_stack.ss_size = STACK_SIZE;
		u_co[i].uc_link = NULL;
		makecontext(&u_co[i], (void (*)(void))uc_side, 1, i);
	}

	/* warm up both (first touch of the stacks, predictors) */
	run_weft(10000);
	run_uc(1000);

	/* interleave the two so drift on a shared machine hits both alike */
	double w[BENCH_MAX_REPS], u[BENCH_MAX_REPS];
	for (int r = 0; r < reps; r++) {
		w[r] = run_weft(wn);
		u[r] = run_uc(un);
	}
	bench_note_reps("switch weft", w, reps, "ns");
	bench_note_reps("switch swapcontext", u, reps, "ns");
	bench_report_speedup("switch", bench_median(w, reps), "ns", bench_median(u, reps), 20);

	/* the coroutines stay suspended forever; their stacks die with us */
	return 0;
}
