/*
 * chess — the simultaneous chess exhibition, timed for real.
 *
 * From the article: Judit Polgár plays 24 amateurs at once.
 *   - 24 opponents
 *   - Judit makes each move in 5 seconds
 *   - each opponent takes 55 seconds per move
 *   - a game is 30 pair-moves (Judit moves, the opponent replies)
 *
 * Synchronous: Judit plays one game to the end before starting the next.
 * A game takes (5 + 55) * 30 = 1800 s, the exhibition 24 * 1800 s = 12 h.
 *
 * Asynchronous: Judit moves at board 1, walks on to board 2 while opponent
 * 1 thinks, and so on.  One round of 24 boards costs her 24 * 5 = 120 s,
 * during which every opponent (55 s < 115 s) has long since replied, so 30
 * rounds take 30 * 120 = 3600 s: 1 hour.  (To be exact the last opponent
 * still thinks 55 s after Judit's very last move: 3655 s.  The article
 * rounds that to "1 hour"; the ratio is 43200 / 3655 = 11.8.)
 *
 * How this program models it, and why that gives 12 h vs 1 h:
 *
 *   - Judit is ONE task.  Her 5 s per move is time she spends (weft_sleep
 *     stands in for her thinking): because she is a single task, she can
 *     make only one move at a time, exactly like the one real Judit.
 *   - Each opponent is a task.  An opponent waits for Judit's move, thinks
 *     55 s, and replies.  While opponents think, Judit is free: that idle
 *     time is what async reclaims, just as a program reclaims time it would
 *     spend blocked on the network.
 *   - Moves are handed over with futures: per board, judit[k] is completed
 *     when Judit has made her k-th move there and reply[k] when the
 *     opponent has answered it.  A future completes once, so each move has
 *     its own.
 *
 * The tempting model, 24 tasks that each sleep 5 s then 55 s thirty times,
 * finishes in 30 minutes (a 24x speed-up): it gives every board its own
 * Judit.  Concurrency only overlaps waiting; the one resource that does the
 * work (Judit, a CPU) still does it one piece at a time.
 *
 * Time is scaled: one story-second lasts --unit-us microseconds of real
 * time (default 555, so the 12 hours take about 24 s and the 1 hour about
 * 2 s).  Finish times are printed in story time (h:mm:ss), converted back
 * from the real clock.
 *
 * Usage: chess [--sync | --async | --both] [--unit-us N]   (default --both)
 */
#define _POSIX_C_SOURCE 200809L /* clock_nanosleep: POSIX, not C11 */
#include <weft.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BOARDS 24
#define JUDIT_S 5     /* story-seconds per move */
#define OPPONENT_S 55
#define PAIR_MOVES 30

static uint64_t unit_ns = 555000; /* real ns per story-second */

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "chess: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* Format a real duration as story time, h:mm:ss. */
static const char *story(uint64_t real_ns, char buf[32])
{
	unsigned long s = (unsigned long)((real_ns + unit_ns / 2) / unit_ns);

	snprintf(buf, 32, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	return buf;
}

static void print_boards(const uint64_t finished[BOARDS])
{
	char buf[32];

	for (int b = 0; b < BOARDS; b++)
		printf("  board %2d %8s%s", b + 1, story(finished[b], buf),
		       b % 4 == 3 ? "\n" : " ");
}

static void print_total(uint64_t real_ns, unsigned long expected_s)
{
	char buf[32], ebuf[32];

	printf("  all games over after %s story time (expected %s), %.2f s real.\n",
	       story(real_ns, buf), story(expected_s * unit_ns, ebuf), real_ns / 1e9);
}

/* ------------------------------------------------------------------------ */
/* Synchronous: plain blocking sleeps, no event loop at all.                 */
/* ------------------------------------------------------------------------ */

/*
 * Every player keeps a schedule: *at is the moment (weft_now_ns() clock)
 * their current activity ends.  think() advances it and sleeps until then.
 * Sleeping until a deadline, rather than for a duration, keeps the timer's
 * overshoot (tens of microseconds per sleep on a busy machine) from piling
 * up over hundreds of moves; both versions use the same rule.
 */
static void think_blocking(uint64_t *at, unsigned story_s)
{
	*at += story_s * unit_ns;
	struct timespec ts = { .tv_sec = *at / 1000000000, .tv_nsec = *at % 1000000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t exhibition_sync(void)
{
	uint64_t finished[BOARDS];
	uint64_t start = weft_now_ns(), at = start;

	printf("Synchronous: Judit plays one game at a time.\n");
	for (int b = 0; b < BOARDS; b++) {
		for (int m = 0; m < PAIR_MOVES; m++) {
			think_blocking(&at, JUDIT_S);    /* Judit moves */
			think_blocking(&at, OPPONENT_S); /* she waits at the board */
		}
		finished[b] = weft_now_ns() - start;
	}
	uint64_t total = weft_now_ns() - start;

	print_boards(finished);
	print_total(total, (unsigned long)BOARDS * PAIR_MOVES * (JUDIT_S + OPPONENT_S));
	return total;
}

/* ------------------------------------------------------------------------ */
/* Asynchronous: one Judit task, 24 opponent tasks, futures between them.    */
/* ------------------------------------------------------------------------ */

struct board {
	weft_future *judit[PAIR_MOVES]; /* Judit's k-th move made */
	weft_future *reply[PAIR_MOVES]; /* the opponent's k-th reply made */
	uint64_t start;                 /* exhibition start (weft_now_ns) */
	uint64_t finished;              /* last reply, ns after start */
};

/* think() for a task: suspends only the calling task. */
static void think(uint64_t *at, unsigned story_s)
{
	*at += story_s * unit_ns;
	uint64_t now = weft_now_ns();
	if (*at > now)
		check(weft_sleep(*at - now), "weft_sleep");
}

/* Wait for the other player's move.  If it was already made, the schedule
 * goes on; if we had to wait, it restarts from the moment the move came. */
static void wait_for(weft_future *move, uint64_t *at)
{
	if (weft_future_done(move))
		return;
	check(weft_future_wait(move, NULL), "weft_future_wait");
	uint64_t now = weft_now_ns();
	if (now > *at)
		*at = now;
}

static void *opponent(void *arg)
{
	struct board *bd = arg;
	uint64_t at = bd->start;

	for (int k = 0; k < PAIR_MOVES; k++) {
		/* Wait (suspended: costs nothing) for Judit's move... */
		wait_for(bd->judit[k], &at);
		/* ...think it over... */
		think(&at, OPPONENT_S);
		/* ...and reply. */
		check(weft_future_set_result(bd->reply[k], NULL), "weft_future_set_result");
	}
	bd->finished = weft_now_ns() - bd->start;
	return NULL;
}

static void *judit(void *arg)
{
	struct board *boards = arg;
	uint64_t at = boards[0].start;

	for (int k = 0; k < PAIR_MOVES; k++) {
		for (int b = 0; b < BOARDS; b++) {
			/* Back at board b: has its opponent answered her last
			 * move?  (Yes, unless the machine is overloaded: 115 s
			 * have gone by.) */
			if (k > 0)
				wait_for(boards[b].reply[k - 1], &at);
			think(&at, JUDIT_S); /* her move */
			check(weft_future_set_result(boards[b].judit[k], NULL),
			      "weft_future_set_result");
		}
	}
	return NULL;
}

static void *exhibition_async(void *arg)
{
	static struct board boards[BOARDS];
	weft_task *opponents[BOARDS], *master;
	uint64_t finished[BOARDS];
	uint64_t *total = arg;

	for (int b = 0; b < BOARDS; b++) {
		for (int k = 0; k < PAIR_MOVES; k++) {
			check(weft_future_create(&boards[b].judit[k]), "weft_future_create");
			check(weft_future_create(&boards[b].reply[k]), "weft_future_create");
		}
	}

	uint64_t start = weft_now_ns();
	for (int b = 0; b < BOARDS; b++) {
		boards[b].start = start;
		check(weft_task_spawn(&opponents[b], opponent, &boards[b]), "weft_task_spawn");
	}
	check(weft_task_spawn(&master, judit, boards), "weft_task_spawn");

	check(weft_task_join(master, NULL), "weft_task_join");
	weft_task_release(master);
	for (int b = 0; b < BOARDS; b++) {
		check(weft_task_join(opponents[b], NULL), "weft_task_join");
		weft_task_release(opponents[b]);
	}
	*total = weft_now_ns() - start;

	for (int b = 0; b < BOARDS; b++) {
		finished[b] = boards[b].finished;
		for (int k = 0; k < PAIR_MOVES; k++) {
			weft_future_release(boards[b].judit[k]);
			weft_future_release(boards[b].reply[k]);
		}
	}
	print_boards(finished);
	return NULL;
}

int main(int argc, char **argv)
{
	bool run_sync = true, run_async = true;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sync") == 0) {
			run_sync = true;
			run_async = false;
		} else if (strcmp(argv[i], "--async") == 0) {
			run_sync = false;
			run_async = true;
		} else if (strcmp(argv[i], "--both") == 0) {
			run_sync = run_async = true;
		} else if (strcmp(argv[i], "--unit-us") == 0 && i + 1 < argc) {
			char *end;
			unsigned long us = strtoul(argv[++i], &end, 10);

			if (*end || us == 0 || us > 1000000) {
				fprintf(stderr, "chess: --unit-us takes 1..1000000\n");
				return 2;
			}
			unit_ns = us * 1000;
		} else {
			fprintf(stderr, "usage: %s [--sync | --async | --both] [--unit-us N]\n",
				argv[0]);
			return 2;
		}
	}

	const unsigned long sync_s = (unsigned long)BOARDS * PAIR_MOVES * (JUDIT_S + OPPONENT_S);
	const unsigned long async_s = (unsigned long)PAIR_MOVES * BOARDS * JUDIT_S + OPPONENT_S;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("Simultaneous exhibition: %d opponents, Judit %d s per move, opponents %d s,\n"
	       "%d pair-moves per game.  1 story-second = %.0f us of real time.\n\n",
	       BOARDS, JUDIT_S, OPPONENT_S, PAIR_MOVES, unit_ns / 1e3);

	uint64_t t_sync = 0, t_async = 0;

	if (run_sync) {
		t_sync = exhibition_sync();
		printf("\n");
	}
	if (run_async) {
		printf("Asynchronous: Judit moves from board to board.\n");
		check(weft_run(NULL, exhibition_async, &t_async, NULL), "weft_run");
		print_total(t_async, async_s);
		printf("\n");
	}

	if (run_sync && run_async)
		printf("Asynchronous was %.1fx faster (12 h -> 1 h in the article; "
		       "%lu s / %lu s = %.1fx exactly).\n",
		       (double)t_sync / (double)t_async, sync_s, async_s,
		       (double)sync_s / (double)async_s);
	else
		printf("Expected: synchronous %lu s, asynchronous %lu s story time (%.1fx).\n",
		       sync_s, async_s, (double)sync_s / (double)async_s);
	return 0;
}
