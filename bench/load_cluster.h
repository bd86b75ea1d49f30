/*
 * load_cluster.h: one load from n weft-load processes without a
 * coordinator (docs/load.md, "Many machines without Locust").
 *
 *   --segment i/n         this process runs part i (1..n) of the load: the
 *                         connections, the rate and the request count are
 *                         split so that the n parts sum exactly to them
 *                         (part i gets floor(X*i/n) - floor(X*(i-1)/n); the
 *                         rate in thousandths of a request/s)
 *   --merge-hlog OUT IN.. merges the parts' .hlog files (--hlog) into one:
 *                         intervals grouped by their tag and by the
 *                         interval (of the first line's length) of the
 *                         earliest BaseTime their middle falls in; prints
 *                         the merged distribution as JSON
 *
 * (--segment's "i/n" itself is parsed with the other options, load_opts.h.)
 * Header-only, for weft-load and its tests.  Threading: none.
 */
#ifndef WEFT_BENCH_LOAD_CLUSTER_H
#define WEFT_BENCH_LOAD_CLUSTER_H

#include "weft.h"
#include "weft/load.h"
#include "load_opts.h"

#include <math.h>
#include <stdlib.h>

/* floor(total*i/n) - floor(total*(i-1)/n): the n shares sum to total. */
static inline uint64_t load_segment_share(uint64_t total, unsigned i, unsigned n)
{
	unsigned __int128 t = total;
	return (uint64_t)(t * i / n - t * (i - 1) / n);
}

/* Cut o down to part i of n: connections, rate, request count. */
static inline int load_segment_apply(struct load_opts *o, unsigned i, unsigned n, char *err,
				     size_t errlen)
{
	uint64_t c = load_segment_share(o->conns, i, n);
	if (c == 0)
		return load__fail(err, errlen,
				  "--segment %u/%u: %u connection%s leave%s none to part %u "
				  "(-c must be at least %u)",
				  i, n, o->conns, o->conns == 1 ? "" : "s", o->conns == 1 ? "s" : "", i, n);
	o->conns = (unsigned)c;
	if (o->rate > 0) {
		uint64_t milli = load_segment_share((uint64_t)llround(o->rate * 1000), i, n);
		if (milli == 0)
			return load__fail(err, errlen,
					  "--segment %u/%u: a rate of %.3f/s leaves none to part %u", i,
					  n, o->rate, i);
		o->rate = (double)milli / 1000;
	}
	if (o->requests) {
		uint64_t r = load_segment_share(o->requests, i, n);
		if (r == 0)
			return load__fail(err, errlen,
					  "--segment %u/%u: %llu requests leave none to part %u", i, n,
					  (unsigned long long)o->requests, i);
		o->requests = r;
	}
	return 0;
}

/* ---- .hlog merging ---- */

struct load__hline {
	char *tag; /* NULL: none */
	long long slot;
	double start, length; /* absolute start, Unix seconds */
	char *b64;
	const char *file;
};

static inline int load__hline_cmp(const void *a, const void *b)
{
	const struct load__hline *x = a, *y = b;
	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	if (!x->tag || !y->tag)
		return (x->tag != NULL) - (y->tag != NULL);
	return strcmp(x->tag, y->tag);
}

/* Read one .hlog: its base time, and its interval lines appended to *v. */
static inline int load__hlog_read(const char *path, struct load__hline **v, size_t *nv,
				  size_t *cap, double *base, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return load__fail(err, errlen, "--merge-hlog: cannot open '%.200s': %s", path,
				  strerror(errno));
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	double start_time = NAN, base_time = NAN;
	size_t first = *nv;
	int rc = 0;
	unsigned lineno = 0;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (sscanf(line, "#[BaseTime: %lf", &base_time) == 1 ||
		    sscanf(line, "#[StartTime: %lf", &start_time) == 1 || line[0] == '#' ||
		    line[0] == '"' || len == 0)
			continue;
		char *p = line, *tag = NULL;
		if (strncmp(p, "Tag=", 4) == 0) {
			tag = p + 4;
			p = strchr(tag, ',');
			if (!p) {
				rc = -1;
				break;
			}
			*p++ = '\0';
		}
		char *e1, *e2, *e3;
		double st = strtod(p, &e1), ln = e1 && *e1 == ',' ? strtod(e1 + 1, &e2) : NAN;
		if (isnan(ln) || *e2 != ',' || (strtod(e2 + 1, &e3), *e3 != ',') || !(st >= 0) ||
		    !(ln >= 0)) {
			rc = -1;
			break;
		}
		if (*nv == *cap) {
			size_t nc = *cap ? *cap * 2 : 256;
			struct load__hline *nvv = realloc(*v, nc * sizeof(**v));
			if (!nvv) {
				rc = -ENOMEM;
				break;
			}
			*v = nvv;
			*cap = nc;
		}
		struct load__hline *h = &(*v)[(*nv)++];
		*h = (struct load__hline){ tag ? strdup(tag) : NULL, 0, st, ln, strdup(e3 + 1),
					   path };
		if (!h->b64 || (tag && !h->tag)) {
			rc = -ENOMEM;
			break;
		}
	}
	free(line);
	fclose(f);
	if (rc == -1)
		return load__fail(err, errlen, "--merge-hlog: '%.200s' line %u is not an interval",
				  path, lineno);
	if (rc < 0)
		return load__fail(err, errlen, "--merge-hlog: out of memory");
	*base = !isnan(base_time) ? base_time : !isnan(start_time) ? start_time : 0;
	for (size_t k = first; k < *nv; k++)
		(*v)[k].start += *base;
	return 0;
}

/*
 * Merge the .hlog files in[0..nin) into out (written anew), and when
 * `json` is not NULL print the merged distribution there (weft_hist_json,
 * microseconds) with the number of intervals.  0 or -errno with err set.
 */
static inline int load_hlog_merge(const char *out, char *const *in, int nin, FILE *json,
				  char *err, size_t errlen)
{
	struct load__hline *v = NULL;
	size_t nv = 0, cap = 0;
	double base0 = INFINITY;
	int rc = 0;
	weft_hist *h = malloc(sizeof(*h)), *total = malloc(sizeof(*total));
	FILE *f = NULL;
	if (!h || !total)
		rc = load__fail(err, errlen, "--merge-hlog: out of memory");
	for (int k = 0; rc == 0 && k < nin; k++) {
		double base = 0;
		rc = load__hlog_read(in[k], &v, &nv, &cap, &base, err, errlen);
		if (rc == 0 && base < base0)
			base0 = base;
	}
	if (rc == 0 && nv == 0)
		rc = load__fail(err, errlen, "--merge-hlog: no intervals in the input");
	double len = rc == 0 && v[0].length > 0 ? v[0].length : 1;
	for (size_t k = 0; rc == 0 && k < nv; k++)
		v[k].slot = (long long)floor((v[k].start + v[k].length / 2 - base0) / len);
	if (rc == 0) {
		qsort(v, nv, sizeof(*v), load__hline_cmp);
		f = fopen(out, "w");
		if (!f)
			rc = load__fail(err, errlen, "--merge-hlog: cannot write '%.200s': %s", out,
					strerror(errno));
	}
	if (rc == 0 && weft_hlog_write_header(f, base0) < 0)
		rc = load__fail(err, errlen, "--merge-hlog: cannot write '%.200s'", out);
	if (total)
		weft_hist_init(total);
	unsigned groups = 0;
	for (size_t k = 0; rc == 0 && k < nv;) {
		weft_hist_init(h);
		size_t g = k;
		for (; g < nv && load__hline_cmp(&v[k], &v[g]) == 0; g++)
			if (weft_hist_decode(h, v[g].b64, strlen(v[g].b64)) < 0)
				rc = load__fail(err, errlen,
						"--merge-hlog: '%.200s': a histogram that does not "
						"decode (at %.3f s)",
						v[g].file, v[g].start - base0);
		double st = (double)v[k].slot * len;
		if (rc == 0 && weft_hlog_write_interval(f, v[k].tag, st < 0 ? 0 : st, len, h) < 0)
			rc = load__fail(err, errlen, "--merge-hlog: cannot write '%.200s'", out);
		weft_hist_merge(total, h);
		groups++;
		k = g;
	}
	if (f && fclose(f) != 0 && rc == 0)
		rc = load__fail(err, errlen, "--merge-hlog: cannot write '%.200s'", out);
	if (rc == 0 && json) {
		char buf[1024];
		weft_hist_json(total, 1000, buf, sizeof(buf));
		fprintf(json, "{\"files\":%d,\"intervals\":%u,\"latency_us\":%s}\n", nin, groups,
			buf);
	}
	for (size_t k = 0; k < nv; k++) {
		free(v[k].tag);
		free(v[k].b64);
	}
	free(v);
	free(h);
	free(total);
	return rc;
}

#endif
