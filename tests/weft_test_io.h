/*
 * Helpers shared by the I/O suites (test_net, test_stream, test_server):
 * spawning and joining the tasks on either side of a connection, and the
 * byte pattern their transfers are checked against.  Task side.
 */
#ifndef WEFT_TEST_IO_H
#define WEFT_TEST_IO_H

#include "weft_test.h"

#include <unistd.h>

/* Spawn fn(arg) pinned to `pin` (WEFT_PIN_NONE: stealable); NULL on error. */
static inline weft_task *go_pinned(weft_fn fn, void *arg, int pin)
{
	weft_task_config c;
	weft_task_config_init(&c);
	c.pin = pin;
	weft_task *t = NULL;
	return weft_task_spawn_ex(&t, &c, fn, arg) == 0 ? t : NULL;
}

/* Join and release; the task's result (P(-1) when t is NULL). */
static inline void *finish(weft_task *t)
{
	if (!t)
		return P(-1);
	void *r = NULL;
	weft_task_join(t, &r);
	weft_task_release(t);
	return r;
}

/* on_loop0_main(&(struct on_loop0){ fn, arg }) runs fn(arg) in a task
 * pinned to loop 0 and returns its result. */
struct on_loop0 {
	weft_fn fn;
	void *arg;
};

static inline void *on_loop0_main(void *arg)
{
	struct on_loop0 *o = arg;
	return finish(go_pinned(o->fn, o->arg, 0));
}

/* Run fn(arg) in a task pinned to loop 0 of a fresh 2-loop runtime, so
 * that tasks it pins to loop 1 are on another loop for sure (and state
 * of loop 0's streams is read where nothing races with it).  Test side. */
static inline void run_on_loop0(weft_fn fn, void *arg)
{
	struct on_loop0 o = { fn, arg };
	weft_test_run_loops(2, on_loop0_main, &o);
}

/* Echo everything back until end of input or an error, without copying
 * (examples/echo_server.c); the last result (0 at end of input, -errno). */
static inline ssize_t echo_all(weft_stream *s)
{
	for (;;) {
		const char *p;
		size_t n = weft_stream_buffered(s, &p);
		ssize_t r;
		if (!n) {
			if ((r = weft_stream_fill(s)) <= 0)
				return r;
			continue;
		}
		if ((r = weft_stream_write(s, p, n)) < 0)
			return r;
		weft_stream_consume(s, n);
		if ((r = weft_stream_drain(s)) < 0)
			return r;
	}
}

/* A connected TCP loopback pair (a task): 0, or -1 with errno set. */
static inline int tcp_loop_pair(int sv[2])
{
	weft_sockaddr a;
	weft_addr_ip(&a, "127.0.0.1", 0);
	int lfd = weft_tcp_listen(&a, 4, 0);
	if (lfd < 0 || weft_sock_local(lfd, &a) < 0) {
		errno = lfd < 0 ? -lfd : EINVAL;
		return -1;
	}
	sv[0] = weft_tcp_connect(&a, 2000 * MS);
	sv[1] = sv[0] >= 0 ? weft_accept(lfd, NULL, NULL, 0) : -1;
	close(lfd);
	if (sv[0] < 0 || sv[1] < 0) {
		if (sv[0] >= 0)
			close(sv[0]);
		errno = ECONNREFUSED;
		return -1;
	}
	return 0;
}

/* The byte at offset i of every test stream: not periodic at any power of
 * two below 2^19, so a lost, repeated or shifted chunk changes the hash. */
static inline uint8_t pat(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 11) * 13 + (i >> 19) * 101 + (i >> 27));
}

#endif
