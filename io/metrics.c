/*
 * weft_metrics_serve: the Prometheus scrape endpoint (weft/observe.h).
 *
 * One task listens and answers each connection in turn: a scrape is one
 * short request every few seconds, so connections wait in the backlog
 * rather than costing a task each.  Each answer has a deadline scope, so a
 * client that stalls holds the endpoint for at most REQUEST_TIMEOUT_NS.
 */
#include "io.h"

#include <stdlib.h>
#include <string.h>

#define REQUEST_TIMEOUT_NS 5000000000ull
#define REQUEST_MAX 8192

/* "ip:port" or "[ipv6]:port" into *a. */
static int parse_addr(const char *addr, weft_sockaddr *a)
{
	if (!addr)
		return -EINVAL;
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || !colon[1])
		return -EINVAL;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535)
		return -EINVAL;
	char ip[64];
	size_t n = (size_t)(colon - addr);
	if (n >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, addr, n);
	ip[n] = 0;
	return weft_addr_ip(a, ip, (uint16_t)port);
}

/* The metrics text in a malloc'd buffer (its length in *len), or NULL. */
static char *render(weft_runtime *rt, size_t *len)
{
	size_t cap = 64 * 1024;
	for (;;) {
		char *buf = malloc(cap);
		if (!buf)
			return NULL;
		int n = weft_metrics_write(rt, buf, cap);
		if (n >= 0 && (size_t)n < cap) {
			*len = (size_t)n;
			return buf;
		}
		free(buf);
		if (n < 0)
			return NULL;
		cap = (size_t)n + 4096; /* it may grow meanwhile */
	}
}

static void reply(int fd, const char *status, const char *type, const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 status, type, len);
	if (weft_send_all(fd, head, (size_t)n, 0, NULL) == n && len)
		weft_send_all(fd, body, len, 0, NULL);
}

static void answer(weft_runtime *rt, int fd)
{
	char req[REQUEST_MAX];
	size_t got = 0;
	while (got < sizeof(req) - 1) {
		ssize_t r = weft_recv(fd, req + got, sizeof(req) - 1 - got, 0);
		if (r <= 0)
			return;
		got += (size_t)r;
		req[got] = 0;
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[got] = 0;
	bool head = strncmp(req, "HEAD ", 5) == 0;
	if (strncmp(req, "GET ", 4) != 0 && !head) {
		reply(fd, "405 Method Not Allowed", "text/plain", "GET only\n", 9);
		return;
	}
	const char *path = req + (head ? 5 : 4);
	size_t plen = strcspn(path, " ?\r\n");
	if (!((plen == 8 && !strncmp(path, "/metrics", 8)) || (plen == 1 && path[0] == '/'))) {
		reply(fd, "404 Not Found", "text/plain", "try /metrics\n", 13);
		return;
	}
	size_t len;
	char *body = render(rt, &len);
	if (!body) {
		reply(fd, "500 Internal Server Error", "text/plain", "out of memory\n", 14);
		return;
	}
	reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head ? 0 : len);
	free(body);
}

static void *serve(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	weft_runtime *rt = weft_runtime_current();
	for (;;) {
		int fd = weft_accept(lfd, NULL, NULL, 0);
		if (fd == -ECANCELED || fd == -ETIMEDOUT || fd == -EBADF || fd == -EINVAL)
			break;
		if (fd < 0) { /* out of fds or memory: let it pass */
			if (weft_sleep_ms(10) < 0)
				break;
			continue;
		}
		weft_scope sc;
		weft_scope_enter(&sc, REQUEST_TIMEOUT_NS);
		answer(rt, fd);
		weft_scope_exit(&sc);
		close(fd);
		if (weft_task_cancelled())
			break;
	}
	close(lfd);
	return NULL;
}

int weft_metrics_serve(const char *addr, weft_task **out, uint16_t *port)
{
	weft_sockaddr a;
	if (!out || parse_addr(addr, &a) < 0)
		return -EINVAL;
	*out = NULL;
	if (!weft_runtime_current())
		return -EPERM;
	int lfd = weft_tcp_listen(&a, 64, 0);
	if (lfd < 0)
		return lfd;
	if (port) {
		weft_sockaddr got;
		int r = weft_sock_local(lfd, &got);
		if (r < 0) {
			close(lfd);
			return r;
		}
		*port = weft_addr_port(&got);
	}
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.name = "weft-metrics";
	tc.always_run = 1; /* it owns lfd: it must run to close it */
	int r = weft_task_spawn_ex(out, &tc, serve, (void *)(intptr_t)lfd);
	if (r < 0)
		close(lfd);
	return r;
}
