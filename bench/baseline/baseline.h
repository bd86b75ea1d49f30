/*
 * Shared bits of the in-tree I/O baselines (bench/baseline/): argument
 * parsing and the listening socket.  Nothing here is part of weft.
 *
 * Every baseline server listens on 127.0.0.1:PORT (benchmarks only ever
 * talk over loopback) and takes `--port P`.
 */
#ifndef WEFT_BASELINE_H
#define WEFT_BASELINE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Per-connection buffer of the echo servers (a 64 B message fits many times). */
#define BASELINE_BUF 16384
#define BASELINE_BACKLOG 4096

#define BASELINE_DIE(...)                                 \
	do {                                              \
		fprintf(stderr, __VA_ARGS__);             \
		fputc('\n', stderr);                      \
		exit(1);                                  \
	} while (0)

/* `--port P` (or `-p P`); exits with a usage message otherwise. */
static inline int baseline_port(int argc, char **argv, const char *prog)
{
	int port = -1;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "--port") || !strcmp(argv[i], "-p")) && i + 1 < argc)
			port = atoi(argv[++i]);
		else
			BASELINE_DIE("usage: %s --port P", prog);
	}
	if (port <= 0 || port > 65535)
		BASELINE_DIE("usage: %s --port P", prog);
	return port;
}

static inline struct sockaddr_in baseline_addr(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* A listening TCP socket on 127.0.0.1:port; type_flags e.g. SOCK_NONBLOCK. */
static inline int baseline_listen(int port, int type_flags)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
	if (fd < 0)
		BASELINE_DIE("socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = baseline_addr(port);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		BASELINE_DIE("bind 127.0.0.1:%d: %s", port, strerror(errno));
	if (listen(fd, BASELINE_BACKLOG) < 0)
		BASELINE_DIE("listen: %s", strerror(errno));
	return fd;
}

static inline void baseline_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

#endif
