/*
 * Servers (weft/server.h): acceptors, connection tasks, graceful shutdown.
 *
 * One acceptor task per listener, pinned to its loop, keeps a multishot
 * accept armed on that loop's ring.  Its completion callback runs on the
 * same thread (the loop's scheduler), so the queue of accepted fds between
 * them needs no lock.  Connection tasks are tracked in a list under the
 * server's spinlock so shutdown can cancel the ones that outlive the grace
 * period; the shutdown sequence runs in its own task, so a caller that
 * stops waiting does not stop the shutdown.
 */
#include "io.h"
#include "weft/net.h"
#include "weft/server.h"
#include "weft/stream.h"
#include "weft/process.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SRV_RUNNING, SRV_STOPPING, SRV_STOPPED };

typedef struct acceptor {
	weft_server *srv;
	int lfd;
	unsigned loop;
	weft_task *task;
	weft__op op;
	int *fds;          /* accepted, not yet handed to a task */
	unsigned nfds, cap;
	int err;           /* last failed accept */
	bool armed;        /* the accept op is in flight */
} acceptor;

typedef struct conn {
	struct conn *prev, *next;
	weft_task *task;   /* set by the task itself once it runs (under lk) */
	weft_stream *stream; /* while the handler may read it (under lk) */
	weft_server *srv;
	int fd;
	int end;           /* WEFT_END_* asked for this connection (under lk) */
	bool reset;        /* abort_clients: cancel, close with a reset (lk) */
} conn;

struct weft_server {
	weft_runtime *rt;
	weft_server_config cfg;
	weft_conn_fn fn;
	void *arg;
	uint16_t port;
	acceptor *acc;
	unsigned nacc;
	weft_task *sigwatch;
	uint64_t grace;

	weft__lock lk;     /* guards everything below */
	conn *conns;
	uint64_t active;
	int state;
	bool cancel_conns;     /* shutdown cancels every connection task */
	weft__waitlist idle_w; /* active reached 0 */
	weft__waitlist done_w; /* state reached SRV_STOPPED */
	_Atomic uint64_t accepted, rejected, accept_errors;
};

void weft_server_config_init(weft_server_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_conns = 65536;
	cfg->idle_timeout_ns = WEFT_FOREVER; /* by protocol: server.h */
	cfg->write_timeout_ns = 60ull * 1000000000ull; /* a stall, any protocol */
	cfg->grace_ns = 5ull * 1000000000ull;
	cfg->stream_limit = 64 * 1024;
	cfg->stream_max_read = 256 * 1024;
}

/* ------------------------------------------------------------------------ */
/* connections                                                               */
/* ------------------------------------------------------------------------ */

/* Unlist c and give back its place; the last one out wakes shutdown. */
static void conn_exit(weft_server *s, conn *c)
{
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (--s->active == 0)
		weft__waitlist_fire_all(&s->idle_w, &wk);
	weft__unlock_wake(&s->lk, &wk);
	free(c);
}

/* Listed since the accept; from now on shutdown can reach the handler
 * through its task and its stream (and if it already swept the list, we
 * apply what it did ourselves). */
static void conn_register(weft_server *s, conn *c, weft_stream *st)
{
	weft__lock_acquire(&s->lk);
	c->task = weft__task_self();
	c->stream = st;
	bool cancel = s->cancel_conns || c->reset;
	int end = c->end;
	weft__lock_release(&s->lk);
	if (cancel)
		weft_task_cancel(c->task);
	if (end && st)
		weft_stream_end_input(st, end);
}

/* Unpublish the stream before it goes.  A reset (abort_clients, which
 * aborted the stream if it was published, or the handler's own
 * weft_stream_abort) leaves the close only the freeing to do. */
static void conn_close(weft_server *s, conn *c, weft_stream *st)
{
	weft__lock_acquire(&s->lk);
	c->stream = NULL;
	bool reset = c->reset;
	weft__lock_release(&s->lk);
	if (reset) /* came before the stream was published */
		weft_stream_abort(st);
	weft_stream_close(st);
}

/* The handler's turn, over st; then st is closed. */
static void conn_serve(weft_server *s, conn *c, weft_stream *st)
{
	conn_register(s, c, st);
	s->fn(st, s->arg);
	conn_close(s, c, st);
}

/* cfg.stream_in_frame: the stream lives in this frame, in the stack page
 * an idle connection touches anyway, with no allocation of its own.  Out
 * of line, so that connections without it do not carry the room on their
 * stacks.  False if the stream could not be opened. */
static __attribute__((noinline)) bool conn_serve_in_frame(weft_server *s, conn *c,
							  const weft_stream_config *sc)
{
	weft_stream_storage mem;
	weft_stream *st;
	if (weft_stream_open_in(&mem, &st, c->fd, sc) < 0)
		return false;
	conn_serve(s, c, st);
	return true;
}

static void *conn_main(void *arg)
{
	conn *c = arg;
	weft_server *s = c->srv;
	weft_stream_config sc;
	weft_stream_config_init(&sc);
	sc.limit = s->cfg.stream_limit;
	sc.read_timeout_ns = s->cfg.idle_timeout_ns;
	sc.write_timeout_ns = s->cfg.write_timeout_ns;
	sc.multishot = s->cfg.multishot_recv;
	sc.max_read = s->cfg.stream_max_read;
	weft_stream *st;
	bool served;
	if (s->cfg.stream_in_frame)
		served = conn_serve_in_frame(s, c, &sc);
	else if ((served = weft_stream_open(&st, c->fd, &sc) == 0))
		conn_serve(s, c, st);
	if (!served) {
		conn_register(s, c, NULL);
		weft__fd_close(c->fd);
	}
	conn_exit(s, c);
	return NULL;
}

/* Hand an accepted fd to a new connection task, or close it.  The lock
 * only reserves the place (listed, counted); the system calls and the
 * spawn happen outside it. */
static void conn_start(weft_server *s, int fd)
{
	atomic_fetch_add_explicit(&s->accepted, 1, memory_order_relaxed);
	conn *c = calloc(1, sizeof(*c));
	weft__lock_acquire(&s->lk);
	if (!c || s->active >= s->cfg.max_conns || s->state != SRV_RUNNING) {
		weft__lock_release(&s->lk);
		atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
		free(c);
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->active++;
	weft__lock_release(&s->lk);
	/* Like asyncio's TCP transports: responses queued behind an in-flight
	 * send must not wait for an ACK (Nagle + delayed ACK: 40 ms). */
	weft_sock_nodelay(fd, true); /* fails harmlessly on a Unix socket */
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.stack_size = s->cfg.conn_stack_size;
	tc.always_run = 1; /* it owns fd and a place in the count: must exit */
	if (weft_task_spawn_ex(NULL, &tc, conn_main, c) < 0) {
		atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
		close(fd);
		conn_exit(s, c);
	}
}

/* ------------------------------------------------------------------------ */
/* acceptors                                                                 */
/* ------------------------------------------------------------------------ */

static void accept_cb(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	acceptor *a = (acceptor *)((char *)op - offsetof(acceptor, op));
	if (res >= 0) {
		if (a->nfds == a->cap) {
			unsigned cap = a->cap ? a->cap * 2 : 64;
			int *p = realloc(a->fds, cap * sizeof(int));
			if (!p) {
				close(res); /* the client sees a reset */
				goto out;
			}
			a->fds = p;
			a->cap = cap;
		}
		a->fds[a->nfds++] = res;
	} else {
		a->err = res;
	}
out:
	if (!(flags & WEFT__OP_MORE))
		a->armed = false;
	weft__task_wake(a->task);
}

static int accept_arm(acceptor *a, weft_loop *l)
{
	a->op.cb = accept_cb;
	a->op.opcode = WEFT_OP_ACCEPT;
	a->op.hints = WEFT_OPH_MULTISHOT; /* where the backend has it */
	a->op.a = (weft__op_args){ .fd = a->lfd };
	int r = weft__op_arm(l, &a->op);
	if (r < 0)
		return r;
	a->armed = true;
	a->err = 0;
	return 0;
}

/* The listener itself is unusable.  Every other error passes: out of
 * fds or memory (ENOSPC: epoll's max_user_watches), an interrupted call,
 * or a network error pending on the new connection, which Linux reports
 * from accept (accept(2): ENETDOWN, EPROTO, EHOSTUNREACH, ...). */
static bool accept_err_fatal(int err)
{
	return err == -EBADF || err == -EINVAL || err == -ENOTSOCK || err == -EFAULT;
}

/* Out of fds or memory: the accept stops until some are freed. */
/* Errors that pass once resources come back.  -ENOSPC: on epoll, the
 * user's epoll watch limit (fs.epoll.max_user_watches) was reached;
 * closing connections frees watches. */
static bool accept_err_resource(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM ||
	       err == -ENOSPC;
}

static void *acceptor_main(void *arg)
{
	acceptor *a = arg;
	weft_server *s = a->srv;
	weft_task *t = weft__task_self();
	weft_loop *l = weft__loop_self(); /* pinned: never changes */
	weft__fd_forget(a->lfd); /* ours from now on: re-check registrations */
	for (;;) {
		/* Only cancellation ends the acceptor: a sleep may also fail
		 * for memory (its timer), and then the backoff is just shorter. */
		if (!a->armed && accept_arm(a, l) < 0 && weft_sleep(1000000) == -ECANCELED)
			break;
		weft__wait_io(t, WEFT_OP_ACCEPT, a->lfd, &a->op);
		while (!a->nfds && a->armed)
			if (weft__park_task(t, 0) < 0)
				goto out;
		for (unsigned i = 0; i < a->nfds; i++)
			conn_start(s, a->fds[i]);
		a->nfds = 0;
		if (!a->armed && a->err) {
			atomic_fetch_add_explicit(&s->accept_errors, 1, memory_order_relaxed);
			if (accept_err_fatal(a->err))
				break; /* the listener is broken */
			/* Out of fds: give connections time to close. */
			if (accept_err_resource(a->err) && weft_sleep(10000000) == -ECANCELED)
				break;
		}
	}
out:
	if (a->armed) {
		weft__io_cancel(l, &a->op);
		uint64_t saved = weft__uninterruptible_begin(t);
		weft__wait_io(t, WEFT_OP_ACCEPT, a->lfd, &a->op);
		while (a->armed)
			weft__park_task(t, 0);
		weft__uninterruptible_end(t, saved);
	}
	for (unsigned i = 0; i < a->nfds; i++)
		close(a->fds[i]);
	a->nfds = 0;
	weft__fd_close(a->lfd); /* new clients are refused from now on */
	a->lfd = -1;
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* shutdown                                                                  */
/* ------------------------------------------------------------------------ */

/* Wait (task or thread) on list `wl` until cond(s); lk not held on entry
 * or exit.  0, or the wait's error. */
static int wait_until(weft_server *s, weft__waitlist *wl, bool (*cond)(const weft_server *),
		      uint64_t deadline)
{
	weft_task *t = weft__task_self();
	weft__lock_acquire(&s->lk);
	while (!cond(s)) {
		weft__waiter w;
		weft__wait_on(t, WEFT_WAIT_OTHER, s); /* a server's shutdown */
		int r = weft__wait_locked(t, &s->lk, wl, &w, deadline);
		if (r < 0)
			return r;
		weft__lock_acquire(&s->lk);
	}
	weft__lock_release(&s->lk);
	return 0;
}

static bool no_conns(const weft_server *s)
{
	return s->active == 0;
}

static bool stopped(const weft_server *s)
{
	return s->state == SRV_STOPPED;
}

/* Cancel the acceptors and wait until they are done (their accepts
 * completed, their listeners closed), even ones that never got to run. */
static void stop_acceptors(weft_server *s)
{
	for (unsigned i = 0; i < s->nacc; i++)
		if (s->acc[i].task)
			weft_task_cancel(s->acc[i].task);
	for (unsigned i = 0; i < s->nacc; i++)
		if (s->acc[i].task)
			weft_task_join(s->acc[i].task, NULL);
}

/* The shutdown sequence.  Uninterruptible (a runtime shutdown cancels it
 * too): declaring the server stopped while an acceptor's accept or a
 * connection is still live would let destroy free what they use.  Only
 * the grace period ends early, at its deadline. */
static void *stopper_main(void *arg)
{
	weft_server *s = arg;
	weft_task *self = weft__task_self();
	uint64_t saved = weft__uninterruptible_begin(self);
	stop_acceptors(s);
	if (wait_until(s, &s->idle_w, no_conns, weft__deadline_after(s->grace)) < 0) {
		weft__wakes wk = WEFT_WAKES_INIT;
		weft__lock_acquire(&s->lk);
		s->cancel_conns = true;
		for (conn *c = s->conns; c; c = c->next)
			if (c->task)
				weft__task_cancel_to(c->task, &wk);
		weft__unlock_wake(&s->lk, &wk);
		wait_until(s, &s->idle_w, no_conns, 0);
	}
	weft__uninterruptible_end(self, saved);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	s->state = SRV_STOPPED;
	weft__waitlist_fire_all(&s->done_w, &wk);
	weft__unlock_wake(&s->lk, &wk);
	return NULL;
}

/* With lk held: end the input of every connection open now (`how`,
 * WEFT_END_*), the handlers' wakes recorded in wk.  One not yet registered
 * applies c->end itself. */
static void end_inputs_locked(weft_server *s, int how, weft__wakes *wk)
{
	for (conn *c = s->conns; c; c = c->next) {
		if (how <= c->end)
			continue;
		c->end = how;
		if (c->stream)
			weft__stream_end_input_to(c->stream, how, wk);
	}
}

/* First caller starts the stopper task; returns 0 or a spawn error.  The
 * handlers learn at once: a read waiting for the next request returns
 * -ESHUTDOWN (WEFT_END_IDLE), so idle connections end in milliseconds and
 * the grace period is left to those in the middle of a request. */
static int begin_shutdown(weft_server *s, uint64_t grace)
{
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	bool first = s->state == SRV_RUNNING;
	if (first) {
		s->state = SRV_STOPPING;
		s->grace = grace;
		end_inputs_locked(s, WEFT_END_IDLE, &wk);
	}
	weft__unlock_wake(&s->lk, &wk);
	if (!first)
		return 0;
	/* Spawned outside the lock (an always_run spawn may map a stack), and
	 * detached: whoever waits, waits for SRV_STOPPED, the sequence's last
	 * step. */
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.always_run = 1; /* even if the runtime's shutdown cancels it */
	int r = weft_runtime_spawn(s->rt, NULL, &tc, stopper_main, s);
	if (r < 0) /* no stack, or the runtime is going down: run it here */
		stopper_main(s);
	return r;
}

int weft_server_shutdown(weft_server *s, uint64_t grace_ns)
{
	if (!s)
		return -EINVAL;
	begin_shutdown(s, grace_ns);
	return wait_until(s, &s->done_w, stopped, 0);
}

int weft_server_close_clients(weft_server *s)
{
	if (!s)
		return -EINVAL;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	end_inputs_locked(s, WEFT_END_NOW, &wk);
	weft__unlock_wake(&s->lk, &wk);
	return 0;
}

int weft_server_abort_clients(weft_server *s)
{
	if (!s)
		return -EINVAL;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&s->lk);
	/* No end_inputs_locked: an abort ends the stream's input itself, and
	 * a connection not yet published aborts at conn_close (c->reset). */
	for (conn *c = s->conns; c; c = c->next) {
		c->reset = true;
		if (c->stream) /* published: alive until conn_close takes lk */
			weft__stream_abort_to(c->stream, &wk);
		if (c->task)
			weft__task_cancel_to(c->task, &wk);
	}
	weft__unlock_wake(&s->lk, &wk);
	return 0;
}

bool weft_server_closing(const weft_server *s)
{
	if (!s)
		return false;
	weft_server *m = (weft_server *)s;
	weft__lock_acquire(&m->lk);
	bool r = m->state != SRV_RUNNING;
	weft__lock_release(&m->lk);
	return r;
}

int weft_server_wait(weft_server *s)
{
	return s ? wait_until(s, &s->done_w, stopped, 0) : -EINVAL;
}

static void *sigwatch_main(void *arg)
{
	weft_server *s = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (weft_signal_wait(&set) > 0)
		begin_shutdown(s, s->cfg.grace_ns);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* start and destroy                                                         */
/* ------------------------------------------------------------------------ */

_Static_assert(sizeof(weft_server_config) == 80, "weft_server_config changed size");

static int check_cfg(const weft_server_config *c)
{
	for (size_t i = 0; i < sizeof(c->reserved) / sizeof(c->reserved[0]); i++)
		if (c->reserved[i])
			return -EINVAL;
	return c->max_conns && c->stream_limit ? 0 : -EINVAL;
}

/* Listeners: one per loop with SO_REUSEPORT, else one on loop 0. */
static int open_listeners(weft_server *s, const weft_sockaddr *addr)
{
	weft_sockaddr a = *addr;
	unsigned flags = s->nacc > 1 ? WEFT_LISTEN_REUSEPORT : 0;
	for (unsigned i = 0; i < s->nacc; i++) {
		int fd = weft_tcp_listen(&a, s->cfg.backlog, flags);
		if (fd < 0)
			return fd;
		s->acc[i].lfd = fd;
		if (i == 0) { /* later listeners share the (ephemeral) port */
			weft_sockaddr got;
			if (weft_sock_local(fd, &got) == 0)
				s->port = weft_addr_port(&got);
			if (a.sa.sa_family == AF_INET)
				a.in.sin_port = htons(s->port);
			else
				a.in6.sin6_port = htons(s->port);
		}
	}
	return 0;
}

static int start_acceptors(weft_server *s)
{
	for (unsigned i = 0; i < s->nacc; i++) {
		acceptor *a = &s->acc[i];
		a->srv = s;
		a->loop = i;
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = (int)i;
		/* It must run (it closes the listener; a listener nobody
		 * accepts on strands its clients): no stack, no server. */
		tc.always_run = 1;
		int r = weft_runtime_spawn(s->rt, &a->task, &tc, acceptor_main, a);
		if (r < 0)
			return r;
	}
	return 0;
}

static void server_free(weft_server *s)
{
	for (unsigned i = 0; s->acc && i < s->nacc; i++) {
		if (s->acc[i].task)
			weft_task_release(s->acc[i].task);
		if (s->acc[i].lfd >= 0)
			weft__fd_close(s->acc[i].lfd);
		free(s->acc[i].fds);
	}
	if (s->sigwatch)
		weft_task_release(s->sigwatch);
	free(s->acc);
	free(s);
}

int weft_server_start(weft_server **out, weft_runtime *rt, const weft_sockaddr *addr,
		      const weft_server_config *cfg, weft_conn_fn fn, void *arg)
{
	weft_server_config c;
	if (cfg)
		c = *cfg;
	else
		weft_server_config_init(&c);
	if (!rt)
		rt = weft_runtime_current();
	if (!out || !rt || !addr || !fn || check_cfg(&c) < 0)
		return -EINVAL;
	weft_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->rt = rt;
	s->cfg = c;
	s->fn = fn;
	s->arg = arg;
	s->nacc = c.shared_listener ? 1 : rt->nloops;
	s->acc = calloc(s->nacc, sizeof(acceptor));
	for (unsigned i = 0; s->acc && i < s->nacc; i++)
		s->acc[i].lfd = -1;
	int r = s->acc ? open_listeners(s, addr) : -ENOMEM;
	if (!r)
		r = start_acceptors(s);
	if (!r && c.handle_signals) {
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.always_run = 1; /* a watcher that never runs would drop SIGTERM */
		r = weft_runtime_spawn(rt, &s->sigwatch, &tc, sigwatch_main, s);
	}
	if (r < 0) {
		uint64_t saved = weft__uninterruptible_begin(weft__task_self());
		if (s->acc)
			stop_acceptors(s);
		weft__uninterruptible_end(weft__task_self(), saved);
		server_free(s);
		return r;
	}
	*out = s;
	return 0;
}

uint16_t weft_server_port(const weft_server *s)
{
	return s ? s->port : 0;
}

int weft_server_stats_get(const weft_server *s, weft_server_stats *out)
{
	if (!s || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	weft_server *m = (weft_server *)s;
	out->accepted = atomic_load_explicit(&m->accepted, memory_order_relaxed);
	out->rejected = atomic_load_explicit(&m->rejected, memory_order_relaxed);
	out->accept_errors = atomic_load_explicit(&m->accept_errors, memory_order_relaxed);
	weft__lock_acquire(&m->lk);
	out->active = m->active;
	weft__lock_release(&m->lk);
	return 0;
}

void weft_server_destroy(weft_server *s)
{
	if (!s)
		return;
	/* Uninterruptible: a destroy that gave up early would free what the
	 * acceptors and connections still use. */
	weft_task *self = weft__task_self();
	uint64_t saved = weft__uninterruptible_begin(self);
	begin_shutdown(s, s->cfg.grace_ns);
	wait_until(s, &s->done_w, stopped, 0);
	if (s->sigwatch) {
		weft_task_cancel(s->sigwatch);
		weft_task_join(s->sigwatch, NULL);
	}
	/* The last exit may still hold lk after waking us. */
	weft__lock_acquire(&s->lk);
	weft__lock_release(&s->lk);
	server_free(s);
	weft__uninterruptible_end(self, saved);
}
