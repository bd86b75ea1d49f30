/*
 * subprocess — run a command and stream its output as it arrives.  The
 * twin of asyncio's create_subprocess_exec:
 *
 *	proc = await asyncio.create_subprocess_exec(*argv,
 *	        stdout=PIPE, stderr=PIPE)
 *	async for line in proc.stdout: print("out|", line)
 *	code = await proc.wait()
 *
 * Two tasks read the child's stdout and stderr, each printing every line
 * with a prefix the moment it arrives; a third forwards SIGINT/SIGTERM to
 * the child (loop.add_signal_handler), so Ctrl-C stops the command, not
 * this program.  At the end the exit status is reported, and the program
 * exits with it (128 + N if the child was killed by signal N, like a
 * shell).
 *
 * In weft:
 *   create_subprocess_exec   weft_process_spawn(&p, &cfg) with
 *                            cfg.stdio[1] = cfg.stdio[2] = WEFT_STDIO_PIPE
 *   proc.stdout.readline()   weft_read(weft_process_pipe(p, 1), ...)
 *   proc.wait()              weft_process_wait(p, &status)
 *   proc.send_signal(sig)    weft_process_kill(p, sig)
 *
 * Usage: subprocess [COMMAND [ARG...]]   (default: ls -l /)
 */
#define _POSIX_C_SOURCE 200809L /* strsignal: POSIX, not C11 */
#include <weft.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader {
	weft_process *p;
	int which;          /* 1 stdout, 2 stderr */
	const char *prefix;
	int lines;
};

/* Print every complete line as soon as it is read; the last one even
 * without its newline. */
static void *read_lines(void *arg)
{
	struct reader *r = arg;
	int fd = weft_process_pipe(r->p, r->which);
	char buf[4096];
	size_t have = 0;
	for (;;) {
		ssize_t n = weft_read(fd, buf + have, sizeof buf - have, WEFT_OFF_CUR);
		if (n <= 0) {
			if (have)
				printf("%s %.*s\n", r->prefix, (int)have, buf);
			r->lines += have > 0;
			break;
		}
		have += (size_t)n;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', (size_t)(buf + have - start)))) {
			printf("%s %.*s\n", r->prefix, (int)(nl - start), start);
			r->lines++;
			start = nl + 1;
		}
		have = (size_t)(buf + have - start);
		memmove(buf, start, have);
		if (have == sizeof buf) { /* a line longer than the buffer */
			printf("%s %.*s\n", r->prefix, (int)have, buf);
			have = 0;
		}
		fflush(stdout);
	}
	return NULL;
}

/* Forward SIGINT / SIGTERM to the child until cancelled. */
static void *forward_signals(void *arg)
{
	weft_process *p = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	weft_signal *s;
	if (weft_signal_open(&s, &set) < 0)
		return NULL;
	int sig;
	while ((sig = weft_signal_next(s)) > 0) {
		fprintf(stderr, "subprocess: forwarding signal %d to the child\n", sig);
		weft_process_kill(p, sig);
	}
	weft_signal_close(s); /* cancelled: the child has ended */
	return NULL;
}

static const char *const *cmd;

static void *main_task(void *arg)
{
	(void)arg;
	weft_process_config cfg;
	weft_process_config_init(&cfg);
	cfg.argv = cmd;
	cfg.stdio[1] = WEFT_STDIO_PIPE;
	cfg.stdio[2] = WEFT_STDIO_PIPE;
	weft_process *p;
	int r = weft_process_spawn(&p, &cfg);
	if (r < 0) {
		fprintf(stderr, "subprocess: cannot run %s: %s\n", cmd[0], weft_strerror(r));
		return (void *)(intptr_t)127;
	}
	printf("started %s (pid %d)\n", cmd[0], (int)weft_process_pid(p));

	struct reader out = { p, 1, "out|", 0 }, err = { p, 2, "err|", 0 };
	weft_task *tout, *terr, *tsig;
	weft_task_spawn(&tout, read_lines, &out);
	weft_task_spawn(&terr, read_lines, &err);
	weft_task_spawn(&tsig, forward_signals, p);

	weft_task_join(tout, NULL); /* end of file: the child closed its end */
	weft_task_join(terr, NULL);
	weft_process_status st;
	r = weft_process_wait(p, &st);
	weft_task_cancel(tsig);
	weft_task_join(tsig, NULL);
	weft_task_release(tout);
	weft_task_release(terr);
	weft_task_release(tsig);
	weft_process_destroy(p);

	int code;
	if (r < 0) {
		fprintf(stderr, "subprocess: wait: %s\n", weft_strerror(r));
		code = 1;
	} else if (st.signal) {
		printf("%s was killed by signal %d (%s)%s; %d+%d lines\n", cmd[0], st.signal,
		       strsignal(st.signal), st.core_dumped ? ", core dumped" : "", out.lines,
		       err.lines);
		code = 128 + st.signal;
	} else {
		printf("%s exited with status %d; %d lines on stdout, %d on stderr\n", cmd[0],
		       st.exit_code, out.lines, err.lines);
		code = st.exit_code;
	}
	return (void *)(intptr_t)code;
}

int main(int argc, char **argv)
{
	static const char *const dflt[] = { "ls", "-l", "/", NULL };
	cmd = argc > 1 ? (const char *const *)(argv + 1) : dflt;
	void *code = NULL;
	int r = weft_run(NULL, main_task, NULL, &code);
	if (r < 0) {
		fprintf(stderr, "subprocess: %s\n", weft_strerror(r));
		return 1;
	}
	return (int)(intptr_t)code;
}
