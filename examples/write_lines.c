/*
 * write_lines — many tasks append lines to one file.  weft's twin of the
 * seed article's "Write on file" (areq.py's write_one):
 *
 *	async with aiofiles.open(file, "a") as f:
 *	    for p in res:
 *	        await f.write(f"{url}\t{p}\n")
 *
 * As in areq.py, the file first gets a header line (here with
 * weft_file_write_all, which replaces the file atomically); then
 * 64 "pages" are crawled at once, each by its own task: it waits a few
 * random milliseconds (standing in for the HTTP fetch), finds 40 links, and
 * appends one "url<TAB>link" line per link to the shared output file,
 * opening it in append mode as the original does.  At the end the program
 * reads the file back and checks that every line is there exactly once and
 * intact (appends from tasks on different loops never interleave), then
 * prints a summary.
 *
 * In weft:
 *   aiofiles.open(file, "a")   weft_file_open(&f, file, O_WRONLY|O_CREAT|O_APPEND, 0644)
 *   await f.write(s)           weft_file_write(f, s, len)
 *   leaving `async with`       weft_file_close(f)
 *
 * Usage: write_lines [PATH]   (default: a temporary file, removed at exit)
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp: POSIX, not C11 */
#include <weft.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGES 64
#define LINKS 40
#define HEADER "source_url\tparsed_url\n"

static const char *path;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "write_lines: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* write_one(file, url): "fetch" the page, append one line per link. */
static void *write_one(void *arg)
{
	int page = (int)(intptr_t)arg;
	weft_sleep_ms(1 + (unsigned)(page * 7919) % 10); /* the fetch */

	weft_file *f;
	check(weft_file_open(&f, path, O_WRONLY | O_CREAT | O_APPEND, 0644), "open");
	for (int i = 0; i < LINKS; i++) {
		char line[160];
		int n = snprintf(line, sizeof line,
				 "https://site-%02d.example/\thttps://site-%02d.example/link/%02d\n",
				 page, page, i);
		ssize_t w = weft_file_write(f, line, (size_t)n);
		check(w < 0 ? (int)w : 0, "write");
	}
	check(weft_file_close(f), "close");
	return NULL;
}

/* Read the file back: every line once, and nothing else. */
static int verify(void)
{
	char *buf;
	size_t len;
	check(weft_file_read_all(path, &buf, &len, 0), "read back");
	static unsigned char seen[PAGES][LINKS];
	int lines = 0, bad = 0, dup = 0;
	size_t hl = strlen(HEADER);
	if (len < hl || memcmp(buf, HEADER, hl))
		bad++;
	for (char *s = buf + hl, *nl; s < buf + len; s = nl + 1) {
		nl = memchr(s, '\n', (size_t)(buf + len - s));
		if (!nl) {
			bad++; /* a torn last line */
			break;
		}
		*nl = '\0';
		int p, q, l, end = 0;
		if (sscanf(s, "https://site-%d.example/\thttps://site-%d.example/link/%d%n", &p, &q,
			   &l, &end) != 3 || s[end] != '\0' || p != q || p < 0 || p >= PAGES ||
		    l < 0 || l >= LINKS) {
			bad++;
			continue;
		}
		dup += seen[p][l]++ > 0;
		lines++;
	}
	int missing = 0;
	for (int p = 0; p < PAGES; p++)
		for (int l = 0; l < LINKS; l++)
			missing += !seen[p][l];
	printf("%zu bytes, %d lines from %d tasks: %d missing, %d duplicated, %d torn\n", len,
	       lines, PAGES, missing, dup, bad);
	free(buf);
	return missing || dup || bad;
}

static void *main_task(void *arg)
{
	(void)arg;
	uint64_t t0 = weft_now_ns();
	check(weft_file_write_all(path, HEADER, strlen(HEADER), 0644, 0), "write header");
	weft_task *t[PAGES];
	for (int i = 0; i < PAGES; i++)
		check(weft_task_spawn(&t[i], write_one, (void *)(intptr_t)i), "spawn");
	for (int i = 0; i < PAGES; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}
	printf("wrote %d lines to %s in %.1f ms on %u loops\n", PAGES * LINKS, path,
	       (double)(weft_now_ns() - t0) / 1e6, weft_loop_count());
	return (void *)(intptr_t)verify();
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/weft-write-lines-XXXXXX";
	if (argc > 1) {
		path = argv[1]; /* replaced by the header, then appended to */
	} else {
		int fd = mkstemp(tmp);
		if (fd < 0) {
			perror("write_lines: mkstemp");
			return 1;
		}
		close(fd);
		path = tmp;
	}
	void *failed = NULL;
	int rc = weft_run(NULL, main_task, NULL, &failed);
	if (argc <= 1)
		unlink(tmp);
	if (rc < 0) {
		fprintf(stderr, "write_lines: %s\n", weft_strerror(rc));
		return 1;
	}
	if (failed)
		printf("FAILED: lines were lost or mixed\n");
	else
		printf("ok: every line present once and intact\n");
	return failed ? 1 : 0;
}
