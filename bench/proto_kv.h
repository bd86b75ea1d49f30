/*
 * proto_kv.h: Redis (RESP2: PING, GET, SET) and memcached text (get, set)
 * for weft-load, as weft_load_protos.  Keys are redis-benchmark's
 * "key:%012u" (16 bytes) drawn at random from a keyspace, values filled
 * with 'x' and of a fixed or random size, so the two tools put the same
 * bytes on the wire.  Error answers (-ERR, ERROR, CLIENT_ERROR,
 * SERVER_ERROR, NOT_STORED) are failed answers; a GET miss is an answer.
 */
#ifndef WEFT_BENCH_PROTO_KV_H
#define WEFT_BENCH_PROTO_KV_H

#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KV_PING, KV_GET, KV_SET };

struct proto_kv {
	int cmd;                /* KV_* */
	uint64_t keyspace;      /* >= 1 */
	size_t vmin, vmax;      /* value sizes */
	char *value;            /* vmax bytes of 'x' */
	uint64_t seed;
};

struct kv_conn {
	uint64_t rng;
};

static uint64_t kv_rand(struct kv_conn *c) /* splitmix64 */
{
	uint64_t z = (c->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int kv_conn_init(void *arg, unsigned conn, void **state)
{
	const struct proto_kv *kv = arg;
	struct kv_conn *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->rng = kv->seed ^ ((uint64_t)conn << 32) ^ (uint64_t)weft_now_ns();
	*state = c;
	return 0;
}

static void kv_conn_fini(void *arg, void *state)
{
	free(state);
}

/* A random key (16 bytes, "key:000000001234") and value size. */
static void kv_pick(const struct proto_kv *kv, struct kv_conn *c, char key[17], size_t *vlen)
{
	/* the keyspace is at most 10^12 (load_opts): 12 digits */
	unsigned long long k = kv_rand(c) % kv->keyspace % 1000000000000ull;
	snprintf(key, 17, "key:%012llu", k);
	*vlen = kv->vmin + (kv->vmax > kv->vmin ? kv_rand(c) % (kv->vmax - kv->vmin + 1) : 0);
}

/* Queue one command through a reservation: no intermediate copy. */
static int kv_queue(weft_stream *s, size_t cap, const char *fmt_head, const char *key, size_t vlen,
		    const char *value, const char *tail)
{
	char *p;
	int r = weft_stream_reserve(s, cap, (void **)&p);
	if (r < 0)
		return r;
	int h = snprintf(p, cap, fmt_head, key, vlen);
	size_t n = (size_t)h;
	if (value) {
		memcpy(p + n, value, vlen);
		n += vlen;
		memcpy(p + n, tail, strlen(tail));
		n += strlen(tail);
	}
	return weft_stream_commit(s, n);
}

static int redis_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	const struct proto_kv *kv = arg;
	for (unsigned i = 0; i < n; i++) {
		char key[17];
		size_t vlen;
		int r;
		if (kv->cmd == KV_PING) {
			static const char ping[] = "*1\r\n$4\r\nPING\r\n";
			r = weft_stream_write(s, ping, sizeof(ping) - 1) < 0 ? -EPIPE : 0;
		} else {
			kv_pick(kv, state, key, &vlen);
			r = kv->cmd == KV_GET
				    ? kv_queue(s, 64, "*2\r\n$3\r\nGET\r\n$16\r\n%s\r\n", key, 0, NULL, "")
				    : kv_queue(s, 96 + vlen, "*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$%zu\r\n",
					       key, vlen, kv->value, "\r\n");
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* One RESP reply: +simple, -error, :integer, $bulk ($-1 nil), or an array
 * of them (depth-limited).  Its length, 0 (need more, *need when known),
 * -EBADMSG. */
static ssize_t resp_reply(const char *buf, size_t len, size_t *need, unsigned *flags, int depth)
{
	const char *e = len ? memchr(buf, '\n', len) : NULL;
	if (!e)
		return len > 4096 ? -EBADMSG : 0;
	size_t line = (size_t)(e - buf) + 1;
	if (line < 3 || buf[line - 2] != '\r')
		return -EBADMSG;
	char t = buf[0];
	if (t == '+' || t == ':')
		return (ssize_t)line;
	if (t == '-') {
		*flags |= WEFT_LOAD_RESP_FAILED;
		return (ssize_t)line;
	}
	if (t != '$' && t != '*')
		return -EBADMSG;
	char *end;
	long long n = strtoll(buf + 1, &end, 10);
	if (end != buf + line - 2 || n < -1 || n > (512ll << 20))
		return -EBADMSG;
	if (n == -1)
		return (ssize_t)line;
	if (t == '$') {
		size_t total = line + (size_t)n + 2;
		if (total > len) {
			*need = total;
			return 0;
		}
		return buf[total - 2] == '\r' && buf[total - 1] == '\n' ? (ssize_t)total : -EBADMSG;
	}
	if (depth > 8)
		return -EBADMSG;
	size_t off = line;
	for (long long i = 0; i < n; i++) {
		size_t sub = 0;
		ssize_t r = resp_reply(buf + off, len - off, &sub, flags, depth + 1);
		if (r <= 0) {
			if (r == 0 && sub)
				*need = off + sub;
			return r;
		}
		off += (size_t)r;
	}
	return (ssize_t)off;
}

static ssize_t redis_parse(void *arg, void *state, const char *buf, size_t len, size_t *need,
			   unsigned *flags)
{
	return resp_reply(buf, len, need, flags, 0);
}

static const weft_load_proto proto_redis = {
	.name = "redis",
	.conn_init = kv_conn_init,
	.conn_fini = kv_conn_fini,
	.write = redis_write,
	.parse = redis_parse,
};

static int memcache_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	const struct proto_kv *kv = arg;
	for (unsigned i = 0; i < n; i++) {
		char key[17];
		size_t vlen;
		kv_pick(kv, state, key, &vlen);
		int r = kv->cmd == KV_SET
				? kv_queue(s, 64 + vlen, "set %s 0 0 %zu\r\n", key, vlen, kv->value, "\r\n")
				: kv_queue(s, 32, "get %s\r\n", key, 0, NULL, "");
		if (r < 0)
			return r;
	}
	return 0;
}

static bool mc_is(const char *buf, size_t line, const char *word)
{
	size_t n = strlen(word);
	return line >= n + 2 && memcmp(buf, word, n) == 0 && (buf[n] == '\r' || buf[n] == ' ');
}

/* One answer to get (VALUE <key> <flags> <bytes>\r\n<data>\r\n ... END\r\n)
 * or set (STORED\r\n), or an error line. */
static ssize_t memcache_parse(void *arg, void *state, const char *buf, size_t len, size_t *need,
			      unsigned *flags)
{
	size_t off = 0;
	for (;;) {
		const char *e = len > off ? memchr(buf + off, '\n', len - off) : NULL;
		if (!e)
			return len - off > 4096 ? -EBADMSG : 0;
		const char *l = buf + off;
		size_t line = (size_t)(e - l) + 1;
		if (line < 2 || l[line - 2] != '\r')
			return -EBADMSG;
		if (mc_is(l, line, "END") || mc_is(l, line, "STORED"))
			return (ssize_t)(off + line);
		if (mc_is(l, line, "ERROR") || mc_is(l, line, "CLIENT_ERROR") ||
		    mc_is(l, line, "SERVER_ERROR") || mc_is(l, line, "NOT_STORED") ||
		    mc_is(l, line, "EXISTS") || mc_is(l, line, "NOT_FOUND")) {
			*flags |= WEFT_LOAD_RESP_FAILED;
			return (ssize_t)(off + line);
		}
		if (!mc_is(l, line, "VALUE"))
			return -EBADMSG;
		/* VALUE <key> <flags> <bytes>: the data, its CRLF, then more */
		unsigned long long fl, bytes;
		char key[251], tmp[320];
		if (line >= sizeof(tmp))
			return -EBADMSG;
		memcpy(tmp, l, line); /* the buffer has no NUL for sscanf */
		tmp[line] = '\0';
		if (sscanf(tmp, "VALUE %250s %llu %llu", key, &fl, &bytes) != 3 || bytes > (1u << 30))
			return -EBADMSG;
		size_t data_end = off + line + (size_t)bytes + 2;
		if (data_end > len) {
			*need = data_end + 5; /* and at least END\r\n */
			return 0;
		}
		if (buf[data_end - 2] != '\r' || buf[data_end - 1] != '\n')
			return -EBADMSG;
		off = data_end;
	}
}

static const weft_load_proto proto_memcache = {
	.name = "memcache",
	.conn_init = kv_conn_init,
	.conn_fini = kv_conn_fini,
	.write = memcache_write,
	.parse = memcache_parse,
};

#endif
