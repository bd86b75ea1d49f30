/*
 * kv_server --port P [--loops N] [--max-bulk BYTES] [--max-conns N]
 *           [--shards N] [--sweep-ms MS] [serve_main.h's options]
 *
 * A Redis-compatible key-value server: RESP2 with pipelining (resp.h),
 * and the inline form (`PING\r\n`), so redis-cli and redis-benchmark work
 * against it.  Commands: PING, ECHO, GET, SET (EX, PX, NX, XX, KEEPTTL),
 * DEL, EXISTS, INCR, DECR, INCRBY, DECRBY, EXPIRE, PEXPIRE, TTL, PTTL,
 * DBSIZE, FLUSHALL, SELECT 0, QUIT, and what the clients ask on connect:
 * COMMAND (an empty array: redis-cli then does without its hints),
 * COMMAND COUNT, CONFIG GET (save and appendonly, as redis-benchmark asks).
 * Anything else: -ERR unknown command.  A protocol error is answered
 * -ERR Protocol error: ... and the connection closed, as Redis does.
 * Port 0 picks a free port ("listening on HOST:PORT"); SIGTERM or Ctrl-C
 * shuts it down gracefully.
 *
 * asyncio twin (the shape of it; the parser and the store are the rest of
 * this file):
 *     store = {}                      # key -> (value, expires_at or None)
 *     async def handle(reader, writer):
 *         while True:
 *             cmds = parse_all(reader._buffer)    # every whole command
 *             if not cmds and not await reader._wait_for_data(): break
 *             for cmd in cmds:
 *                 writer.write(execute(store, cmd))
 *             await writer.drain()                # once per batch
 *     async def sweep():                          # active expiry
 *         while True:
 *             await asyncio.sleep(0.1)         # weft: an interval
 *             for key in random.sample(keys_with_ttl, 20): expire_if_due(key)
 *     asyncio.create_task(sweep())
 *     server = await asyncio.start_server(handle, host, port)
 *
 * The store is shared by every loop: a connection's task may be stolen to
 * another loop's thread at any suspension point, so two commands on one
 * key can run on two threads at once.  It is split into --shards (64)
 * shards by the key's hash, each a chained hash table behind a plain
 * pthread mutex.  Not weft_lock: that one is a suspension point (a task
 * that finds it taken waits, and its loop runs other tasks), made for
 * sections that themselves wait.  Here no critical section ever suspends
 * (a lookup, a few pointer changes, a memcpy, weft_stream_write, which
 * only queues), so a mutex held for well under a microsecond is the
 * cheapest right tool, and a thread that finds it taken waits that long
 * (docs/sync.md, "A plain mutex or weft_lock").
 * Values belong to the store: SET copies the value in (before taking the
 * lock), GET copies it out into the reply while holding it.
 *
 * Expiry: lazily, when a command touches an expired key, and actively: a
 * sweep task ticks every --sweep-ms (100, Redis's hz 10; a weft_interval,
 * so the passes keep their rate) and, per shard,
 * samples 20 keys that have a TTL, deletes those due, and samples again
 * while more than a quarter of a sample was due (Redis's algorithm).
 * Times are weft_now_ns(): monotonic, as nothing here outlives the process.
 */
#include "weft.h"
#include "resp.h"
#include "serve_main.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* ---------------------------------------------------------------------- */
/* options                                                                 */
/* ---------------------------------------------------------------------- */

static size_t g_max_bulk = 512u << 20; /* Redis's proto-max-bulk-len */
static size_t g_max_cmd = 1024u << 20;  /* a whole command, 2 x max_bulk:
					   Redis's client-query-buffer-limit */
static unsigned g_max_conns;           /* 0: the server's default */
static unsigned g_shard_bits = 6;      /* 64 shards */
static unsigned g_sweep_ms = 100;

/* Commands are parsed in place in the stream's read buffer (resp.h).  One
 * known to need at most FAST_BYTES waits for its rest with
 * weft_stream_fill, which stops at the stream's limit (the server's
 * stream_limit, 64 KiB: FAST_BYTES stays under it, so it never refuses
 * with -EMSGSIZE); a bigger one with weft_stream_fill_to, up to the bytes
 * it is known to need, past the limit.  So the limit needs no raising,
 * whatever --max-bulk is.  The first FAST_ARGS arguments' array is on
 * the handler's stack. */
enum { FAST_ARGS = 64, FAST_BYTES = 32 * 1024, OUT_FLUSH = 16 * 1024 };

/* ---------------------------------------------------------------------- */
/* the store                                                               */
/* ---------------------------------------------------------------------- */

struct ent {
	struct ent *next;
	uint64_t hash;
	uint64_t expire; /* weft_now_ns() time it expires at; 0: never */
	size_t ttl_idx;  /* its place in the shard's ttl array, if expire */
	size_t vlen, vcap;
	uint32_t klen;
	char key[];      /* klen bytes of key, then vcap bytes for the value */
};
#define VAL(e) ((e)->key + (e)->klen)

struct shard {
	pthread_mutex_t mu; /* guards all below; never held across a suspension */
	struct ent **tab;   /* buckets, a power of two of them */
	size_t mask, count;
	struct ent **ttl;   /* the entries that expire, for the sweep to sample */
	size_t nttl, ttlcap;
	uint64_t rng;
} __attribute__((aligned(64)));

static struct shard *g_shards;
static uint64_t g_seed;

enum { TAB_MIN = 16 };

/* The key's hash: 8 bytes at a time, each folded in by a multiply and a
 * shift.  Seeded at start, so a set of keys that collide is not the same
 * from one run to the next: a weak defence against aimed collisions, not
 * a keyed hash like the SipHash Redis uses. */
static inline uint64_t hash_key(const char *p, size_t n)
{
	uint64_t h = g_seed ^ (n * 0x9e3779b97f4a7c15ull);
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 29;
		p += 8;
		n -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * 0x94d049bb133111ebull;
	h ^= h >> 32;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 31);
}

static inline struct shard *shard_of(uint64_t h)
{
	return &g_shards[g_shard_bits ? h >> (64 - g_shard_bits) : 0];
}

static struct ent *ent_new(uint64_t h, const char *k, size_t klen, const char *v, size_t vlen,
			   size_t vcap)
{
	struct ent *e = malloc(sizeof(*e) + klen + vcap);
	if (!e)
		return NULL;
	e->next = NULL;
	e->hash = h;
	e->expire = 0;
	e->ttl_idx = 0;
	e->klen = (uint32_t)klen;
	e->vlen = vlen;
	e->vcap = vcap;
	memcpy(e->key, k, klen);
	if (vlen)
		memcpy(VAL(e), v, vlen);
	return e;
}

/* The functions below run with the shard's mutex held. */

static int ttl_add(struct shard *sh, struct ent *e)
{
	if (sh->nttl == sh->ttlcap) {
		size_t cap = sh->ttlcap ? sh->ttlcap * 2 : 16;
		struct ent **t = realloc(sh->ttl, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		sh->ttl = t;
		sh->ttlcap = cap;
	}
	e->ttl_idx = sh->nttl;
	sh->ttl[sh->nttl++] = e;
	return 0;
}

static void ttl_del(struct shard *sh, struct ent *e)
{
	struct ent *last = sh->ttl[--sh->nttl];
	sh->ttl[e->ttl_idx] = last;
	last->ttl_idx = e->ttl_idx;
}

/* Unlink the entry at *link and free it. */
static void ent_drop(struct shard *sh, struct ent **link)
{
	struct ent *e = *link;
	*link = e->next;
	if (e->expire)
		ttl_del(sh, e);
	sh->count--;
	free(e);
}

/* Put `e` (new, or a copy) where `*link`'s entry is, keeping its TTL
 * place; frees the old one. */
static void ent_replace(struct shard *sh, struct ent **link, struct ent *e)
{
	struct ent *old = *link;
	e->next = old->next;
	e->expire = old->expire;
	e->ttl_idx = old->ttl_idx;
	if (e->expire)
		sh->ttl[e->ttl_idx] = e;
	*link = e;
	free(old);
}

/* The link to key's entry, or NULL; an expired entry is dropped
 * (lazy expiry) and not found. */
static struct ent **find(struct shard *sh, uint64_t h, const char *k, size_t klen)
{
	struct ent **link = &sh->tab[h & sh->mask];
	for (struct ent *e; (e = *link); link = &e->next) {
		if (e->hash != h || e->klen != klen || memcmp(e->key, k, klen) != 0)
			continue;
		if (e->expire && e->expire <= weft_now_ns()) {
			ent_drop(sh, link);
			return NULL;
		}
		return link;
	}
	return NULL;
}

/* Link a new entry in, doubling the table when it holds more entries than
 * buckets.  (A growing shard rehashes at once, under its lock: with the
 * keys spread over 64 shards, each rehash moves 1/64 of them.) */
static void insert(struct shard *sh, struct ent *e)
{
	if (sh->count >= sh->mask + 1) {
		size_t n = (sh->mask + 1) * 2;
		struct ent **t = calloc(n, sizeof(*t));
		if (t) {
			for (size_t i = 0; i <= sh->mask; i++)
				for (struct ent *x = sh->tab[i], *nx; x; x = nx) {
					nx = x->next;
					x->next = t[x->hash & (n - 1)];
					t[x->hash & (n - 1)] = x;
				}
			free(sh->tab);
			sh->tab = t;
			sh->mask = n - 1;
		} /* else: longer chains, still correct */
	}
	struct ent **b = &sh->tab[e->hash & sh->mask];
	e->next = *b;
	*b = e;
	sh->count++;
}

static int store_init(void)
{
	size_t n = (size_t)1 << g_shard_bits;
	g_shards = aligned_alloc(64, n * sizeof(*g_shards));
	if (!g_shards)
		return -ENOMEM;
	if (getrandom(&g_seed, sizeof(g_seed), 0) != sizeof(g_seed))
		g_seed = weft_now_ns();
	for (size_t i = 0; i < n; i++) {
		struct shard *sh = &g_shards[i];
		memset(sh, 0, sizeof(*sh));
		pthread_mutex_init(&sh->mu, NULL);
		sh->tab = calloc(TAB_MIN, sizeof(*sh->tab));
		if (!sh->tab)
			return -ENOMEM;
		sh->mask = TAB_MIN - 1;
		sh->rng = g_seed ^ (i + 1) * 0x9e3779b97f4a7c15ull;
	}
	return 0;
}

/* Empty every shard; the entries are freed outside the locks. */
static void store_flush(void)
{
	for (size_t i = 0; i < (size_t)1 << g_shard_bits; i++) {
		struct shard *sh = &g_shards[i];
		struct ent **fresh = calloc(TAB_MIN, sizeof(*fresh));
		pthread_mutex_lock(&sh->mu);
		struct ent **old = sh->tab;
		size_t nb = sh->mask + 1;
		if (fresh) {
			sh->tab = fresh;
			sh->mask = TAB_MIN - 1;
		} else { /* keep the buckets, emptied below */
			old = malloc(nb * sizeof(*old));
			if (!old) { /* nothing to free it with: drop one by one */
				for (size_t b = 0; b < nb; b++)
					while (sh->tab[b])
						ent_drop(sh, &sh->tab[b]);
				pthread_mutex_unlock(&sh->mu);
				continue;
			}
			memcpy(old, sh->tab, nb * sizeof(*old));
			memset(sh->tab, 0, nb * sizeof(*old));
		}
		sh->count = sh->nttl = 0;
		pthread_mutex_unlock(&sh->mu);
		for (size_t b = 0; b < nb; b++)
			for (struct ent *e = old[b], *nx; e; e = nx) {
				nx = e->next;
				free(e);
			}
		free(old);
	}
}

static void store_free(void)
{
	store_flush();
	for (size_t i = 0; i < (size_t)1 << g_shard_bits; i++) {
		free(g_shards[i].tab);
		free(g_shards[i].ttl);
		pthread_mutex_destroy(&g_shards[i].mu);
	}
	free(g_shards);
}

static inline uint64_t rng_next(struct shard *sh)
{
	uint64_t x = sh->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return sh->rng = x;
}

/* One pass of the active expiry over every shard, at most `rounds`
 * samples a shard: returns keys deleted. */
static size_t sweep_once(int rounds)
{
	enum { SAMPLE = 20 };
	size_t gone = 0;
	for (size_t i = 0; i < (size_t)1 << g_shard_bits; i++) {
		struct shard *sh = &g_shards[i];
		for (int round = 0; round < rounds; round++) {
			size_t due = 0, n;
			pthread_mutex_lock(&sh->mu); /* a round at a time: others get in between */
			uint64_t now = weft_now_ns();
			n = sh->nttl < SAMPLE ? sh->nttl : SAMPLE;
			for (size_t k = 0; k < n && sh->nttl; k++) {
				struct ent *e = sh->ttl[rng_next(sh) % sh->nttl];
				if (e->expire > now)
					continue;
				struct ent **link = &sh->tab[e->hash & sh->mask];
				while (*link != e)
					link = &(*link)->next;
				ent_drop(sh, link);
				due++;
			}
			pthread_mutex_unlock(&sh->mu);
			gone += due;
			if (due * 4 <= n) /* a quarter or less was due: enough */
				break;
		}
	}
	return gone;
}

/* The active expiry: a pass every --sweep-ms on a fixed grid
 * (weft_interval).  WEFT_TICK_SKIP: a sweep that falls behind (its loop
 * was busy) does not run the missed passes back to back; the one pass it
 * runs samples more, in proportion to the ticks it stands for (up to 4x). */
static void *sweep_task(void *arg)
{
	(void)arg;
	enum { ROUNDS = 16 };
	weft_interval iv;
	if (weft_interval_init(&iv, g_sweep_ms * 1000000ull, WEFT_TICK_SKIP) < 0)
		return NULL;
	for (;;) {
		int64_t ticks = weft_interval_tick(&iv);
		if (ticks < 1)
			break; /* cancelled: the server has shut down */
		sweep_once(ROUNDS * (int)(ticks < 4 ? ticks : 4));
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* replies                                                                 */
/* ---------------------------------------------------------------------- */

/* A connection: the replies of a batch gather in `out` and go to the
 * stream in one weft_stream_write (the stream sends its first write at
 * once and queues the rest behind it: writing reply by reply would make
 * two sends of a batch). */
struct conn {
	weft_stream *s;
	char *out;
	size_t len, cap;
	bool broken; /* no memory for a reply: the connection ends */
	bool quit;
};

static void out_flush(struct conn *c)
{
	if (c->len && weft_stream_write(c->s, c->out, c->len) < 0)
		c->broken = true;
	c->len = 0;
}

static char *out_room(struct conn *c, size_t n)
{
	if (c->cap - c->len < n) {
		if (c->len >= OUT_FLUSH) {
			out_flush(c);
			if (c->cap >= n)
				return c->out;
		}
		size_t cap = c->cap ? c->cap : 4096;
		while (cap - c->len < n)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p) {
			c->broken = true;
			return NULL;
		}
		c->out = p;
		c->cap = cap;
	}
	return c->out + c->len;
}

static void out_raw(struct conn *c, const void *p, size_t n)
{
	char *d = out_room(c, n);
	if (d) {
		memcpy(d, p, n);
		c->len += n;
	}
}

#define OUT_LIT(c, s) out_raw(c, s, sizeof(s) - 1)

static void out_err(struct conn *c, const char *msg)
{
	size_t n = strlen(msg);
	char *d = out_room(c, n + 3);
	if (d) {
		d[0] = '-';
		memcpy(d + 1, msg, n);
		memcpy(d + 1 + n, "\r\n", 2);
		c->len += n + 3;
	}
}

/* ":n\r\n" or "$n\r\n".  By hand, not snprintf: every GET reply has a
 * length, and snprintf's format parsing was a third of the server's user
 * time under redis-benchmark -P 16. */
static void out_num(struct conn *c, char type, long long v)
{
	char *d = out_room(c, 24);
	if (!d)
		return;
	char tmp[20];
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	int n = 0;
	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	size_t k = 0;
	d[k++] = type;
	if (v < 0)
		d[k++] = '-';
	while (n)
		d[k++] = tmp[--n];
	d[k++] = '\r';
	d[k++] = '\n';
	c->len += k;
}

static void out_int(struct conn *c, long long v)
{
	/* the common small ones without snprintf */
	if (v >= 0 && v < 10) {
		char b[4] = { ':', (char)('0' + v), '\r', '\n' };
		out_raw(c, b, 4);
	} else {
		out_num(c, ':', v);
	}
}

static void out_bulk(struct conn *c, const char *p, size_t n)
{
	out_num(c, '$', (long long)n);
	out_raw(c, p, n);
	OUT_LIT(c, "\r\n");
}

/* ---------------------------------------------------------------------- */
/* commands                                                                */
/* ---------------------------------------------------------------------- */

typedef struct resp_arg arg;

static bool eq(const arg *a, const char *lit)
{
	size_t n = strlen(lit);
	return a->n == n && strncasecmp(a->p, lit, n) == 0;
}

/* An integer as Redis takes one: an optional '-', digits, no leading
 * zero, no spaces, within long long. */
static bool to_ll(const arg *a, long long *out)
{
	const char *p = a->p;
	size_t n = a->n, i = 0;
	if (n == 0 || n > 20)
		return false;
	bool neg = p[0] == '-';
	i = neg;
	if (i == n || p[i] < '0' || p[i] > '9' || (p[i] == '0' && n > i + 1))
		return false;
	unsigned long long v = 0;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
		return false;
	*out = neg ? (long long)(0 - v) : (long long)v;
	return neg && v == 0 ? false : true;
}

static const char *const NOT_INT = "ERR value is not an integer or out of range";

/* An expiry `v` in `unit_ms` milliseconds from now as a weft_now_ns()
 * time; false when it cannot be one. */
static bool deadline(long long v, long long unit_ms, uint64_t *at)
{
	if (v > LLONG_MAX / unit_ms / 1000000)
		return false;
	*at = weft_now_ns() + (uint64_t)(v * unit_ms) * 1000000u;
	return true;
}

static void cmd_get(struct conn *c, const arg *a, size_t n)
{
	uint64_t h = hash_key(a[1].p, a[1].n);
	struct shard *sh = shard_of(h);
	pthread_mutex_lock(&sh->mu);
	struct ent **l = find(sh, h, a[1].p, a[1].n);
	if (!l) {
		OUT_LIT(c, "$-1\r\n");
	} else if ((*l)->vlen <= OUT_FLUSH) {
		out_bulk(c, VAL(*l), (*l)->vlen);
	} else { /* big: straight into the stream's buffer, after the batch so far */
		out_num(c, '$', (long long)(*l)->vlen);
		out_flush(c);
		if (weft_stream_write(c->s, VAL(*l), (*l)->vlen) < 0)
			c->broken = true;
		OUT_LIT(c, "\r\n");
	}
	pthread_mutex_unlock(&sh->mu);
}

static void cmd_set(struct conn *c, const arg *a, size_t n)
{
	bool nx = false, xx = false, keep = false;
	uint64_t at = 0;
	for (size_t i = 3; i < n; i++) {
		bool ex = eq(&a[i], "EX"), px = eq(&a[i], "PX");
		if (eq(&a[i], "NX") && !xx)
			nx = true;
		else if (eq(&a[i], "XX") && !nx)
			xx = true;
		else if (eq(&a[i], "KEEPTTL") && !at)
			keep = true;
		else if ((ex || px) && !at && !keep && i + 1 < n) {
			long long v;
			if (!to_ll(&a[++i], &v))
				return out_err(c, NOT_INT);
			if (v <= 0 || !deadline(v, ex ? 1000 : 1, &at))
				return out_err(c, "ERR invalid expire time in 'set' command");
		} else {
			return out_err(c, "ERR syntax error");
		}
	}
	uint64_t h = hash_key(a[1].p, a[1].n);
	struct ent *e = ent_new(h, a[1].p, a[1].n, a[2].p, a[2].n, a[2].n);
	if (!e)
		return out_err(c, "OOM out of memory");
	struct shard *sh = shard_of(h);
	pthread_mutex_lock(&sh->mu);
	struct ent **l = find(sh, h, a[1].p, a[1].n);
	if ((nx && l) || (xx && !l)) {
		pthread_mutex_unlock(&sh->mu);
		free(e);
		return OUT_LIT(c, "$-1\r\n");
	}
	if (l) {
		struct ent *old = *l;
		if (!keep && old->expire) {
			ttl_del(sh, old);
			old->expire = 0;
		}
		ent_replace(sh, l, e);
	} else {
		insert(sh, e);
	}
	if (at && (e->expire || ttl_add(sh, e) == 0))
		e->expire = at;
	pthread_mutex_unlock(&sh->mu);
	OUT_LIT(c, "+OK\r\n");
}

static void cmd_incr_by(struct conn *c, const arg *key, long long by)
{
	uint64_t h = hash_key(key->p, key->n);
	struct shard *sh = shard_of(h);
	const char *err = NULL;
	long long v = 0;
	pthread_mutex_lock(&sh->mu);
	struct ent **l = find(sh, h, key->p, key->n);
	if (l && !to_ll(&(arg){ VAL(*l), (*l)->vlen }, &v))
		err = NOT_INT;
	else if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by))
		err = "ERR increment or decrement would overflow";
	if (!err) {
		char num[24];
		v += by;
		size_t len = (size_t)snprintf(num, sizeof(num), "%lld", v);
		if (l && (*l)->vcap >= len) {
			memcpy(VAL(*l), num, len);
			(*l)->vlen = len;
		} else {
			struct ent *e = ent_new(h, key->p, key->n, num, len, 24);
			if (!e)
				err = "OOM out of memory";
			else if (l)
				ent_replace(sh, l, e);
			else
				insert(sh, e);
		}
	}
	pthread_mutex_unlock(&sh->mu);
	if (err)
		out_err(c, err);
	else
		out_int(c, v);
}

static void cmd_incr(struct conn *c, const arg *a, size_t n)
{
	cmd_incr_by(c, &a[1], eq(&a[0], "DECR") ? -1 : 1);
}

static void cmd_incrby(struct conn *c, const arg *a, size_t n)
{
	long long by;
	if (!to_ll(&a[2], &by))
		return out_err(c, NOT_INT);
	if (eq(&a[0], "DECRBY")) {
		if (by == LLONG_MIN)
			return out_err(c, "ERR decrement would overflow");
		by = -by;
	}
	cmd_incr_by(c, &a[1], by);
}

/* DEL and EXISTS: how many of the keys there are (DEL: were). */
static void cmd_del(struct conn *c, const arg *a, size_t n)
{
	bool del = eq(&a[0], "DEL");
	long long count = 0;
	for (size_t i = 1; i < n; i++) {
		uint64_t h = hash_key(a[i].p, a[i].n);
		struct shard *sh = shard_of(h);
		pthread_mutex_lock(&sh->mu);
		struct ent **l = find(sh, h, a[i].p, a[i].n);
		if (l) {
			count++;
			if (del)
				ent_drop(sh, l);
		}
		pthread_mutex_unlock(&sh->mu);
	}
	out_int(c, count);
}

static void cmd_expire(struct conn *c, const arg *a, size_t n)
{
	bool sec = eq(&a[0], "EXPIRE");
	long long v;
	if (!to_ll(&a[2], &v))
		return out_err(c, NOT_INT);
	uint64_t at = 0;
	if (v > 0 && !deadline(v, sec ? 1000 : 1, &at))
		return out_err(c, sec ? "ERR invalid expire time in 'expire' command"
				      : "ERR invalid expire time in 'pexpire' command");
	uint64_t h = hash_key(a[1].p, a[1].n);
	struct shard *sh = shard_of(h);
	int r = 0;
	pthread_mutex_lock(&sh->mu);
	struct ent **l = find(sh, h, a[1].p, a[1].n);
	if (l) {
		r = 1;
		if (!at) /* a time not in the future deletes the key, as Redis */
			ent_drop(sh, l);
		else if ((*l)->expire || ttl_add(sh, *l) == 0)
			(*l)->expire = at;
		else
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&sh->mu);
	if (r < 0)
		out_err(c, "OOM out of memory");
	else
		out_int(c, r);
}

static void cmd_ttl(struct conn *c, const arg *a, size_t n)
{
	bool sec = eq(&a[0], "TTL");
	uint64_t h = hash_key(a[1].p, a[1].n);
	struct shard *sh = shard_of(h);
	long long v = -2;
	pthread_mutex_lock(&sh->mu);
	struct ent **l = find(sh, h, a[1].p, a[1].n);
	if (l && !(*l)->expire) {
		v = -1;
	} else if (l) {
		uint64_t now = weft_now_ns(), at = (*l)->expire;
		long long ms = at > now ? (long long)((at - now + 999999) / 1000000) : 0;
		v = sec ? (ms + 500) / 1000 : ms;
	}
	pthread_mutex_unlock(&sh->mu);
	out_int(c, v);
}

static void cmd_dbsize(struct conn *c, const arg *a, size_t n)
{
	long long total = 0;
	for (size_t i = 0; i < (size_t)1 << g_shard_bits; i++) {
		pthread_mutex_lock(&g_shards[i].mu);
		total += (long long)g_shards[i].count;
		pthread_mutex_unlock(&g_shards[i].mu);
	}
	out_int(c, total);
}

static void cmd_flushall(struct conn *c, const arg *a, size_t n)
{
	if (n == 2 && !eq(&a[1], "SYNC") && !eq(&a[1], "ASYNC"))
		return out_err(c, "ERR syntax error");
	store_flush();
	OUT_LIT(c, "+OK\r\n");
}

static void cmd_ping(struct conn *c, const arg *a, size_t n)
{
	if (n == 1)
		OUT_LIT(c, "+PONG\r\n");
	else
		out_bulk(c, a[1].p, a[1].n);
}

static void cmd_echo(struct conn *c, const arg *a, size_t n)
{
	out_bulk(c, a[1].p, a[1].n);
}

static void cmd_select(struct conn *c, const arg *a, size_t n)
{
	long long db;
	if (!to_ll(&a[1], &db))
		return out_err(c, NOT_INT);
	if (db != 0)
		return out_err(c, "ERR DB index is out of range");
	OUT_LIT(c, "+OK\r\n");
}

static void cmd_quit(struct conn *c, const arg *a, size_t n)
{
	OUT_LIT(c, "+OK\r\n");
	c->quit = true;
}

static size_t n_commands(void);

/* COMMAND: redis-cli asks for COMMAND DOCS on connect, for its hints; an
 * empty array is a valid answer (no docs), and the other subcommands get
 * one too but COUNT. */
static void cmd_command(struct conn *c, const arg *a, size_t n)
{
	if (n == 2 && eq(&a[1], "COUNT"))
		return out_int(c, (long long)n_commands());
	OUT_LIT(c, "*0\r\n");
}

/* CONFIG GET: redis-benchmark asks for save and appendonly on connect (to
 * warn when persistence is on); this store keeps nothing on disk.  Other
 * parameters: an empty array, as Redis answers one it does not know. */
static void cmd_config(struct conn *c, const arg *a, size_t n)
{
	static const char *const params[][2] = { { "save", "" }, { "appendonly", "no" } };
	if (!eq(&a[1], "GET"))
		return out_err(c, "ERR CONFIG subcommand not supported by this server (only GET)");
	size_t hits = 0;
	for (size_t i = 2; i < n; i++)
		for (size_t k = 0; k < 2; k++)
			hits += eq(&a[i], params[k][0]);
	out_num(c, '*', (long long)hits * 2);
	for (size_t i = 2; i < n; i++)
		for (size_t k = 0; k < 2; k++)
			if (eq(&a[i], params[k][0])) {
				out_bulk(c, params[k][0], strlen(params[k][0]));
				out_bulk(c, params[k][1], strlen(params[k][1]));
			}
}

/* Looked up by length first: a lookup compares the name's bytes only with
 * the one or two commands of its length (no strlen, no strcasecmp each). */
#define CMD(name, fn, arity) { name, sizeof(name) - 1, fn, arity }

static const struct command {
	const char *name;
	size_t len;
	void (*fn)(struct conn *c, const arg *a, size_t n);
	int arity; /* argc with the name: n exactly, or -n: at least n */
} commands[] = {
	CMD("get", cmd_get, 2),
	CMD("set", cmd_set, -3),
	CMD("incr", cmd_incr, 2),
	CMD("ping", cmd_ping, -1),
	CMD("del", cmd_del, -2),
	CMD("decr", cmd_incr, 2),
	CMD("incrby", cmd_incrby, 3),
	CMD("decrby", cmd_incrby, 3),
	CMD("exists", cmd_del, -2),
	CMD("expire", cmd_expire, 3),
	CMD("pexpire", cmd_expire, 3),
	CMD("ttl", cmd_ttl, 2),
	CMD("pttl", cmd_ttl, 2),
	CMD("echo", cmd_echo, 2),
	CMD("dbsize", cmd_dbsize, 1),
	CMD("flushall", cmd_flushall, -1),
	CMD("select", cmd_select, 2),
	CMD("command", cmd_command, -1),
	CMD("config", cmd_config, -2),
	CMD("quit", cmd_quit, -1),
};

static size_t n_commands(void)
{
	return sizeof(commands) / sizeof(commands[0]);
}

/* Append p[0..n) to an error text with CR and LF made spaces (an error is
 * one line), at most `max` bytes of it. */
static size_t err_quote(char *d, size_t room, const char *p, size_t n, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n && i < max && k + 1 < room; i++)
		d[k++] = p[i] == '\r' || p[i] == '\n' ? ' ' : p[i];
	return k;
}

static void execute(struct conn *c, const arg *a, size_t n)
{
	for (size_t i = 0; i < n_commands(); i++) {
		const struct command *k = &commands[i];
		if (a[0].n != k->len || strncasecmp(a[0].p, k->name, k->len) != 0)
			continue;
		if (k->arity > 0 ? n != (size_t)k->arity : n < (size_t)-k->arity) {
			char msg[96];
			snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command",
				 k->name);
			return out_err(c, msg);
		}
		if (k->fn == cmd_ping && n > 2)
			return out_err(c, "ERR wrong number of arguments for 'ping' command");
		return k->fn(c, a, n);
	}
	/* Redis's words: the name and the first arguments, 128 bytes each */
	char msg[512];
	size_t m = (size_t)snprintf(msg, sizeof(msg), "ERR unknown command '");
	m += err_quote(msg + m, sizeof(msg) - m, a[0].p, a[0].n, 128);
	m += (size_t)snprintf(msg + m, sizeof(msg) - m, "', with args beginning with: ");
	for (size_t i = 1; i < n && m + 134 < sizeof(msg); i++) {
		msg[m++] = '\'';
		m += err_quote(msg + m, sizeof(msg) - m, a[i].p, a[i].n, 128);
		msg[m++] = '\'';
		msg[m++] = ' ';
	}
	msg[m] = 0;
	out_err(c, msg);
}

/* ---------------------------------------------------------------------- */
/* connections                                                             */
/* ---------------------------------------------------------------------- */

/* A bigger argument array for a command with more than FAST_ARGS: double
 * the heap one (the first is the handler's own, on its stack). */
static int grow_args(struct resp_cmd *cmd, struct resp_arg *stack)
{
	size_t cap = cmd->cap * 2;
	struct resp_arg *a = realloc(cmd->argv == stack ? NULL : cmd->argv, cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	cmd->argv = a;
	cmd->cap = cap;
	return 0;
}

static void kv_conn(weft_stream *s, void *arg_)
{
	(void)arg_;
	struct conn c = { .s = s };
	struct resp_arg stack[FAST_ARGS];
	struct resp_cmd cmd = { stack, 0, FAST_ARGS };
	const char *err = NULL;
	for (;;) {
		/* every whole command received so far, answered in one batch */
		const char *p;
		size_t n = weft_stream_buffered(s, &p), off = 0, known = 0;
		ssize_t r = RESP_NEED;
		while (off < n && !c.quit && !c.broken) {
			r = resp_parse(p + off, n - off, &cmd, g_max_bulk, &known, &err);
			if (r == RESP_BIG && grow_args(&cmd, stack) == 0)
				continue; /* the same command again, with room */
			if (r <= 0)
				break;
			off += (size_t)r;
			if (cmd.argc)
				execute(&c, cmd.argv, cmd.argc);
		}
		weft_stream_consume(s, off);
		if (r != RESP_NEED)
			known = 0; /* it was a whole command's: none is pending */
		if (r == RESP_NEED && known > g_max_cmd) {
			r = RESP_ERROR;
			err = "Protocol error: command too big";
		}
		if (r == RESP_BIG) {
			c.broken = true; /* no memory for its arguments */
		} else if (r == RESP_ERROR) {
			char msg[128];
			snprintf(msg, sizeof(msg), "ERR %s", err);
			out_err(&c, msg);
			c.quit = true;
		}
		out_flush(&c);
		if (c.cap > 4 * OUT_FLUSH) { /* keep no big buffer past a big reply */
			free(c.out);
			c.out = NULL;
			c.cap = 0;
		}
		if (cmd.argv != stack && off == n) { /* nor, between commands, a big array */
			free(cmd.argv);
			cmd = (struct resp_cmd){ stack, 0, FAST_ARGS };
		}
		if (c.quit || c.broken || weft_stream_drain(s) < 0)
			break;
		/* Receive: a small command waits for its rest in the stream's
		 * buffer; a big one (a large bulk, many arguments) is received
		 * up to what it is known to need, past the stream's limit, the
		 * buffer growing as the bytes come.  With nothing buffered this
		 * is where a shutdown (or the client leaving) ends the
		 * connection; in the middle of a command it goes on. */
		size_t rest = n - off;
		ssize_t f;
		if (rest >= FAST_BYTES || known > FAST_BYTES)
			f = weft_stream_fill_to(s, known > rest ? known : rest + 1);
		else
			f = weft_stream_fill(s);
		if (f <= 0)
			break; /* end of input, reset, idle timeout, shutdown */
	}
	/* the server flushes what is queued when it closes the stream */
	if (cmd.argv != stack)
		free(cmd.argv);
	free(c.out);
}

/* ---------------------------------------------------------------------- */
/* main                                                                    */
/* ---------------------------------------------------------------------- */

static int kv_option(int argc, char **argv, int i)
{
	static const char *const names[] = { "--max-bulk", "--max-conns", "--shards", "--sweep-ms" };
	static const unsigned long long max[] = { UINT32_MAX, UINT_MAX, 65536, 3600000 };
	size_t k = 0;
	while (k < 4 && strcmp(argv[i], names[k]) != 0)
		k++;
	if (k == 4 || i + 1 >= argc)
		return 0;
	const char *v = argv[i + 1];
	char *end;
	unsigned long long x = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || x < 1 || x > max[k] || (k == 2 && (x & (x - 1)))) {
		fprintf(stderr, "kv_server: bad %s '%s'\n", argv[i], v);
		exit(2);
	}
	if (k == 0) {
		g_max_bulk = (size_t)x;
		g_max_cmd = 2 * g_max_bulk > FAST_BYTES ? 2 * g_max_bulk : FAST_BYTES;
	}
	else if (k == 1)
		g_max_conns = (unsigned)x;
	else if (k == 2)
		g_shard_bits = (unsigned)__builtin_ctzll(x);
	else
		g_sweep_ms = (unsigned)x;
	return 2;
}

static void tune(weft_server_config *cfg)
{
	if (g_max_conns)
		cfg->max_conns = g_max_conns;
}

int main(int argc, char **argv)
{
	struct serve_opts o = {
		.name = "kv_server", .handler = kv_conn, .port = 6379, .extra = kv_option,
		.extra_usage = " [--max-bulk BYTES] [--max-conns N] [--shards N (a power of two)]"
			       " [--sweep-ms MS]",
		.tune = tune, .background = sweep_task,
	};
	/* the store's options first, then the store they size (serve_main
	 * reads them again, harmlessly, with the rest) */
	for (int i = 1; i < argc; i++)
		if (kv_option(argc, argv, i) == 2)
			i++;
	if (store_init() < 0) {
		fprintf(stderr, "kv_server: no memory for the store\n");
		return 1;
	}
	int r = serve_main(argc, argv, &o);
	store_free();
	return r;
}
