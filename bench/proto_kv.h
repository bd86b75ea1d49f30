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

static const char kv_pairs[] = "00010203040506070809101112131415161718192021222324"
			       "25262728293031323334353637383940414243444546474849"
			       "50515253545556575859606162636465666768697071727374"
			       "75767778798081828384858687888990919293949596979899";

/* v < 10^6 as six digits at p, two a step: no snprintf, no loop. */
static inline void kv_six_digits(char *p, uint32_t v)
{
	uint32_t hi = v / 10000, lo = v % 10000;
	memcpy(p, kv_pairs + 2 * hi, 2);
	memcpy(p + 2, kv_pairs + 2 * (lo / 100), 2);
	memcpy(p + 4, kv_pairs + 2 * (lo % 100), 2);
}

/* A random key, redis-benchmark's "key:%012u" (16 bytes, no NUL; the
 * keyspace is at most 10^12, load_opts), and a value size. */
static void kv_pick(const struct proto_kv *kv, struct kv_conn *c, char key[16], size_t *vlen)
{
	/* A multiply and a shift map the 64 random bits onto the keyspace
	 * (Lemire's reduction; its bias, below keyspace / 2^64, is nothing
	 * here), not a 64-bit division per request. */
	uint64_t k = (uint64_t)(((unsigned __int128)kv_rand(c) * kv->keyspace) >> 64);
	memcpy(key, "key:", 4);
	if (k < 1000000) { /* the default keyspace (100k): no high digits */
		memcpy(key + 4, "000000", 6);
		kv_six_digits(key + 10, (uint32_t)k);
	} else {
		kv_six_digits(key + 4, (uint32_t)(k / 1000000)); /* k < 10^12 */
		kv_six_digits(key + 10, (uint32_t)(k % 1000000));
	}
	*vlen = kv->vmin + (kv->vmax > kv->vmin ? kv_rand(c) % (kv->vmax - kv->vmin + 1) : 0);
}

static char *kv_put(char *p, const void *b, size_t n)
{
	memcpy(p, b, n);
	return p + n;
}

/* Decimal n at p; the end. */
static char *kv_num(char *p, size_t n)
{
	char d[24];
	int i = 24;
	do
		d[--i] = (char)('0' + n % 10);
	while ((n /= 10));
	return kv_put(p, d + i, (size_t)(24 - i));
}

#define KV_LIT(p, s) kv_put((p), (s), sizeof(s) - 1)

/* The decimal digits of n. */
static size_t kv_digits(size_t n)
{
	size_t d = 1;
	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

/* n requests built by `one`, each at most `each` bytes (exactly what its
 * longest form writes: a reservation sized loosely would outgrow the
 * stream's cached 1 KiB write buffer for a 16-deep pipeline of GETs), in
 * reservations of the write queue of up to 256 KiB (one, whatever its
 * size, at the least): one lock and no intermediate copy for a whole
 * pipeline of small requests. */
static int kv_write_n(const struct proto_kv *kv, struct kv_conn *c, weft_stream *s, unsigned n,
		      size_t each, char *(*one)(const struct proto_kv *, struct kv_conn *, char *))
{
	size_t per = (256u << 10) / each;
	while (n) {
		unsigned m = per == 0 ? 1 : n < per ? n : (unsigned)per;
		char *p, *start;
		int r = weft_stream_reserve(s, (size_t)m * each, (void **)&start);
		if (r < 0)
			return r;
		p = start;
		for (unsigned i = 0; i < m; i++)
			p = one(kv, c, p);
		if ((size_t)(p - start) > (size_t)m * each)
			abort(); /* `each` is wrong: fail loudly, in test_loadgen */
		if ((r = weft_stream_commit(s, (size_t)(p - start))) < 0)
			return r;
		n -= m;
	}
	return 0;
}

static char *redis_one(const struct proto_kv *kv, struct kv_conn *c, char *p)
{
	char key[16];
	size_t vlen;
	if (kv->cmd == KV_PING)
		return KV_LIT(p, "*1\r\n$4\r\nPING\r\n");
	kv_pick(kv, c, key, &vlen);
	if (kv->cmd == KV_GET) {
		p = KV_LIT(p, "*2\r\n$3\r\nGET\r\n$16\r\n");
		return KV_LIT(kv_put(p, key, 16), "\r\n");
	}
	p = KV_LIT(p, "*3\r\n$3\r\nSET\r\n$16\r\n");
	p = KV_LIT(kv_put(p, key, 16), "\r\n$");
	p = KV_LIT(kv_num(p, vlen), "\r\n");
	return KV_LIT(kv_put(p, kv->value, vlen), "\r\n");
}

static int redis_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	const struct proto_kv *kv = arg;
	/* "*1\r\n$4\r\nPING\r\n"; "*2\r\n$3\r\nGET\r\n$16\r\n" key "\r\n";
	 * "*3\r\n$3\r\nSET\r\n$16\r\n" key "\r\n$" len "\r\n" value "\r\n" */
	size_t each = kv->cmd == KV_PING ? 14 : kv->cmd == KV_GET ? 36
		    : 41 + kv_digits(kv->vmax) + kv->vmax;
	return kv_write_n(kv, state, s, n, each, redis_one);
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
	long long n = 0; /* digits only, or -1 */
	const char *d = buf + 1, *de = buf + line - 2;
	if (de - d == 2 && d[0] == '-' && d[1] == '1')
		n = -1;
	else if (d == de)
		return -EBADMSG;
	for (; n >= 0 && d < de; d++) {
		if (*d < '0' || *d > '9' || n > (512ll << 20))
			return -EBADMSG;
		n = n * 10 + (*d - '0');
	}
	if (n > (512ll << 20))
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

static char *memcache_one(const struct proto_kv *kv, struct kv_conn *c, char *p)
{
	char key[16];
	size_t vlen;
	kv_pick(kv, c, key, &vlen);
	if (kv->cmd != KV_SET)
		return KV_LIT(kv_put(KV_LIT(p, "get "), key, 16), "\r\n");
	p = KV_LIT(kv_put(KV_LIT(p, "set "), key, 16), " 0 0 ");
	p = KV_LIT(kv_num(p, vlen), "\r\n");
	return KV_LIT(kv_put(p, kv->value, vlen), "\r\n");
}

static int memcache_write(void *arg, void *state, weft_stream *s, unsigned n)
{
	const struct proto_kv *kv = arg;
	/* "get " key "\r\n"; "set " key " 0 0 " len "\r\n" value "\r\n" */
	size_t each = kv->cmd != KV_SET ? 22 : 29 + kv_digits(kv->vmax) + kv->vmax;
	return kv_write_n(kv, state, s, n, each, memcache_one);
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
