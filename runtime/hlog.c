/*
 * HdrHistogram's V2 compressed encoding and its interval log (.hlog), so
 * that weft's histograms go through HdrHistogram's own tools
 * (HistogramLogProcessor, HistogramLogAnalyzer) and back.
 *
 * The compressed form (HdrHistogram's encodeIntoCompressedByteBuffer):
 *   int32 0x1c849314 (V2 compressed cookie), int32 deflated length,
 *   zlib stream of:
 *     int32 0x1c849313 (V2 cookie), int32 payload length,
 *     int32 normalizing index offset (0), int32 significant digits,
 *     int64 lowest discernible value, int64 highest trackable value,
 *     double integer-to-double ratio (1.0),
 *     payload: the counts array up to the max's index, each count a
 *     zig-zag LEB128 long (9 bytes at most, the 9th holding 8 bits), a run
 *     of k > 1 zeros written as -k.
 * All big-endian.  weft_hist's slot i is index i of HdrHistogram's counts
 * for (lowest 1, 2 digits): see weft/load.h.
 */
#include "weft.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define V2_COOKIE 0x1c849313u
#define V2_COMPRESSED_COOKIE 0x1c849314u
#define V2_HEADER 40
#define SIG_DIGITS 2

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* HdrHistogram's ZigZagEncoding.putLong: 7 bits a byte for 8 bytes, then
 * the last 8 bits whole. */
static size_t put_zigzag(unsigned char *p, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	size_t n = 0;
	while (n < 8 && z >= 0x80) {
		p[n++] = (unsigned char)(z | 0x80);
		z >>= 7;
	}
	p[n++] = (unsigned char)z;
	return n;
}

/* The inverse; 0 when the bytes run out. */
static size_t get_zigzag(const unsigned char *p, size_t len, int64_t *out)
{
	uint64_t z = 0;
	size_t n = 0;
	for (;;) {
		if (n >= len)
			return 0;
		unsigned char b = p[n];
		if (n == 8) {
			z |= (uint64_t)b << 56;
			n++;
			break;
		}
		z |= (uint64_t)(b & 0x7f) << (7 * n);
		n++;
		if (!(b & 0x80))
			break;
	}
	*out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
	return n;
}

/* The uncompressed V2 encoding into a malloc'd buffer: its length or -errno. */
static ssize_t encode_v2(const weft_hist *h, unsigned char **out)
{
	unsigned limit = h->total ? weft_hist_slot(h->max) + 1 : 0;
	unsigned char *b = malloc(V2_HEADER + (size_t)limit * 9 + 1);
	if (!b)
		return -ENOMEM;
	size_t n = V2_HEADER;
	for (unsigned i = 0; i < limit;) {
		uint64_t c = h->counts[i++];
		if (c == 0) {
			int64_t zeros = 1;
			while (i < limit && h->counts[i] == 0)
				zeros++, i++;
			n += put_zigzag(b + n, zeros > 1 ? -zeros : 0);
		} else {
			/* a count past INT64_MAX cannot be a Java long: saturate */
			n += put_zigzag(b + n, c > INT64_MAX ? INT64_MAX : (int64_t)c);
		}
	}
	put32(b, V2_COOKIE);
	put32(b + 4, (uint32_t)(n - V2_HEADER));
	put32(b + 8, 0);
	put32(b + 12, SIG_DIGITS);
	put64(b + 16, 1);
	put64(b + 24, WEFT_HIST_TRACK_MAX);
	double one = 1.0;
	uint64_t bits;
	memcpy(&bits, &one, sizeof(bits));
	put64(b + 32, bits);
	*out = b;
	return (ssize_t)n;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of src into buf, snprintf-style: the length needed. */
static size_t base64_out(const unsigned char *src, size_t n, char *buf, size_t cap)
{
	size_t need = (n + 2) / 3 * 4, o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)src[i + 1] << 8;
		if (i + 2 < n)
			v |= src[i + 2];
		char q[4] = { b64[v >> 18 & 63], b64[v >> 12 & 63],
			      i + 1 < n ? b64[v >> 6 & 63] : '=', i + 2 < n ? b64[v & 63] : '=' };
		for (int k = 0; k < 4; k++, o++)
			if (o + 1 < cap)
				buf[o] = q[k];
	}
	if (cap)
		buf[o < cap ? o : cap - 1] = '\0';
	return need;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

/* Base64 (padding optional, no whitespace) into a malloc'd buffer. */
static ssize_t base64_in(const char *s, size_t len, unsigned char **out)
{
	while (len && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -EBADMSG;
	unsigned char *b = malloc(len / 4 * 3 + 3);
	if (!b)
		return -ENOMEM;
	size_t n = 0;
	uint32_t acc = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(s[i]);
		if (v < 0) {
			free(b);
			return -EBADMSG;
		}
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			b[n++] = (unsigned char)(acc >> 16);
			b[n++] = (unsigned char)(acc >> 8);
			b[n++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (len % 4 == 2) {
		b[n++] = (unsigned char)(acc >> 4);
	} else if (len % 4 == 3) {
		b[n++] = (unsigned char)(acc >> 10);
		b[n++] = (unsigned char)(acc >> 2);
	}
	*out = b;
	return (ssize_t)n;
}

ssize_t weft_hist_encode(const weft_hist *h, char *buf, size_t cap)
{
	if (!h || (!buf && cap))
		return -EINVAL;
	unsigned char *raw;
	ssize_t rn = encode_v2(h, &raw);
	if (rn < 0)
		return rn;
	uLongf zn = compressBound((uLong)rn);
	unsigned char *z = malloc(8 + zn);
	if (!z) {
		free(raw);
		return -ENOMEM;
	}
	int zr = compress2(z + 8, &zn, raw, (uLong)rn, Z_DEFAULT_COMPRESSION);
	free(raw);
	if (zr != Z_OK) {
		free(z);
		return zr == Z_MEM_ERROR ? -ENOMEM : -EIO;
	}
	put32(z, V2_COMPRESSED_COOKIE);
	put32(z + 4, (uint32_t)zn);
	size_t need = base64_out(z, 8 + zn, buf, cap);
	free(z);
	return (ssize_t)need;
}

/*
 * HdrHistogram's value of counts index i for a histogram with
 * 2^(m+1) sub-buckets and unit magnitude u: the highest value equivalent
 * to it, or UINT64_MAX past 64 bits.
 */
static uint64_t hdr_value_at(uint64_t i, unsigned m, unsigned u)
{
	uint64_t half = UINT64_C(1) << m;
	int64_t bucket = (int64_t)(i >> m) - 1;
	uint64_t sub = (i & (half - 1)) + half;
	if (bucket < 0) {
		sub -= half;
		bucket = 0;
	}
	unsigned shift = (unsigned)bucket + u;
	if (shift >= 64 || (sub + 1) > (UINT64_MAX >> shift))
		return UINT64_MAX;
	return ((sub + 1) << shift) - 1;
}

/* Walk the payload into h (a scratch copy); values added or -errno. */
static int64_t decode_counts(weft_hist *h, const unsigned char *p, size_t len, unsigned m,
			     unsigned u)
{
	uint64_t idx = 0;
	int64_t added = 0;
	while (len) {
		int64_t c;
		size_t k = get_zigzag(p, len, &c);
		if (!k)
			return -EBADMSG;
		p += k;
		len -= k;
		if (c < 0) {
			idx += (uint64_t)(-(c + 1)) + 1; /* a run of zeros, -c of them */
			continue;
		}
		if (c > 0) {
			uint64_t v = hdr_value_at(idx, m, u);
			if (v == UINT64_MAX)
				return -EBADMSG;
			int r = weft_hist_record_n(h, v, (uint64_t)c);
			if (r < 0)
				return r;
			if (added > INT64_MAX - c)
				return -EOVERFLOW;
			added += c;
		}
		idx++;
	}
	return added;
}

static int64_t decode_raw(weft_hist *h, const unsigned char *d, size_t n)
{
	if (n < V2_HEADER || get32(d) != V2_COOKIE)
		return -EBADMSG;
	uint32_t plen = get32(d + 4), digits = get32(d + 12);
	uint64_t lowest = get64(d + 16);
	double ratio;
	uint64_t bits = get64(d + 32);
	memcpy(&ratio, &bits, sizeof(ratio));
	if (plen > n - V2_HEADER || digits > 5 || lowest < 1)
		return -EBADMSG;
	if (get32(d + 8) != 0 || ratio != 1.0)
		return -ENOTSUP;
	/* HdrHistogram's sizing: 2 * 10^digits rounded up to a power of two
	 * sub-buckets, half of them 2^m; unit magnitude floor(log2(lowest)). */
	uint64_t want = 2, sub = 1;
	for (uint32_t i = 0; i < digits; i++)
		want *= 10;
	unsigned m = 0;
	while (sub < want)
		sub <<= 1, m++;
	m = m ? m - 1 : 0;
	unsigned u = 63 - (unsigned)__builtin_clzll(lowest);
	return decode_counts(h, d + V2_HEADER, plen, m, u);
}

int64_t weft_hist_decode(weft_hist *h, const char *b64s, size_t len)
{
	if (!h || !b64s)
		return -EINVAL;
	unsigned char *z;
	ssize_t zn = base64_in(b64s, len, &z);
	if (zn < 0)
		return zn;
	int64_t r = -EBADMSG;
	weft_hist *tmp = malloc(sizeof(*tmp));
	unsigned char *raw = NULL;
	if (!tmp) {
		r = -ENOMEM;
		goto out;
	}
	if (zn < 8 || get32(z) != V2_COMPRESSED_COOKIE || get32(z + 4) > (uint64_t)zn - 8)
		goto out;
	/* The uncompressed size is not sent: grow until inflate fits. */
	for (uLongf cap = 4096;; cap *= 2) {
		free(raw);
		if (cap > (64u << 20) || !(raw = malloc(cap))) {
			raw = NULL;
			r = cap > (64u << 20) ? -EBADMSG : -ENOMEM;
			goto out;
		}
		uLongf rn = cap;
		int zr = uncompress(raw, &rn, z + 8, get32(z + 4));
		if (zr == Z_BUF_ERROR && rn == cap)
			continue; /* the output did not fit */
		if (zr != Z_OK) {
			r = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
			goto out;
		}
		weft_hist_init(tmp);
		r = decode_raw(tmp, raw, rn);
		break;
	}
	if (r >= 0) {
		int mr = weft_hist_merge(h, tmp);
		if (mr < 0)
			r = mr;
	}
out:
	free(raw);
	free(tmp);
	free(z);
	return r;
}

int weft_hlog_write_header(FILE *f, double start_unix_s)
{
	if (!f || !(start_unix_s >= 0) || isinf(start_unix_s))
		return -EINVAL;
	time_t t = (time_t)start_unix_s;
	struct tm tm;
	char date[64];
	if (!gmtime_r(&t, &tm) || !strftime(date, sizeof(date), "%a %b %d %H:%M:%S UTC %Y", &tm))
		return -EINVAL;
	int n = fprintf(f,
			"#[Histogram log format version 1.3]\n"
			"#[StartTime: %.3f (seconds since epoch), %s]\n"
			"#[BaseTime: %.3f (seconds since epoch)]\n"
			"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
			"\"Interval_Compressed_Histogram\"\n",
			start_unix_s, date, start_unix_s);
	return n < 0 || ferror(f) ? -EIO : 0;
}

int weft_hlog_write_interval(FILE *f, const char *tag, double start_s, double length_s,
			     const weft_hist *h)
{
	if (!f || !h || !(start_s >= 0) || !(length_s >= 0) || isinf(start_s) || isinf(length_s))
		return -EINVAL;
	if (tag && strpbrk(tag, ", \r\n"))
		return -EINVAL;
	ssize_t need = weft_hist_encode(h, NULL, 0);
	if (need < 0)
		return (int)need;
	char *enc = malloc((size_t)need + 1);
	if (!enc)
		return -ENOMEM;
	weft_hist_encode(h, enc, (size_t)need + 1);
	int n = fprintf(f, "%s%s%s%.3f,%.3f,%.3f,%s\n", tag && *tag ? "Tag=" : "",
			tag && *tag ? tag : "", tag && *tag ? "," : "", start_s, length_s,
			(double)weft_hist_max(h) / 1e6, enc);
	free(enc);
	return n < 0 || ferror(f) ? -EIO : 0;
}
