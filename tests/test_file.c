/*
 * Files (weft/fs.h): the weft_file calls, the whole-file helpers, appends
 * from many tasks, shared positions, and the error contract.  Everything
 * happens in a fresh mkdtemp directory; results are recorded in tasks and
 * asserted on the test's stack (docs/architecture.md rule 7).
 */
#include "weft_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/weft-test-file-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

/* Remove the directory and whatever a test left in it. */
static int teardown(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		char p[512];
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
				snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
				unlink(p);
			}
		closedir(d);
	}
	rmdir(dir);
	return 0;
}

static void path_of(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static int dir_entries(void)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* ---- the basic calls ---- */

struct basic {
	int open, close, fsync, fdatasync, stat;
	ssize_t w1, r1, pr, pw, r2, w_after_seek;
	int64_t seek0, tell, seek_end, size;
	char buf1[32], buf2[32], buf3[32];
};

static void *basic_task(void *arg)
{
	struct basic *b = arg;
	char path[128];
	path_of(path, sizeof path, "basic");
	weft_file *f;
	b->open = weft_file_open(&f, path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (b->open < 0)
		return NULL;
	b->w1 = weft_file_write(f, "hello world", 11);
	b->seek0 = weft_file_seek(f, 0, SEEK_SET);
	b->r1 = weft_file_read(f, b->buf1, 5);          /* "hello" */
	b->tell = weft_file_seek(f, 0, SEEK_CUR);       /* 5 */
	b->pr = weft_file_pread(f, b->buf2, 5, 6);      /* "world" */
	b->pw = weft_file_pwrite(f, "HELLO", 5, 0);
	b->r2 = weft_file_read(f, b->buf3, sizeof b->buf3); /* " world" */
	b->seek_end = weft_file_seek(f, 0, SEEK_END);   /* 11 */
	b->w_after_seek = weft_file_write(f, "!", 1);
	b->fsync = weft_file_fsync(f);
	b->fdatasync = weft_file_fdatasync(f);
	struct statx stx;
	b->stat = weft_file_stat(f, &stx);
	b->size = (int64_t)stx.stx_size;
	b->close = weft_file_close(f);
	return NULL;
}

static void test_basic_calls(void **state)
{
	(void)state;
	struct basic b;
	memset(&b, 0, sizeof b);
	weft_test_run_loops(2, basic_task, &b);
	assert_int_equal(b.open, 0);
	assert_int_equal(b.w1, 11);
	assert_int_equal(b.seek0, 0);
	assert_int_equal(b.r1, 5);
	assert_memory_equal(b.buf1, "hello", 5);
	assert_int_equal(b.tell, 5);
	assert_int_equal(b.pr, 5);
	assert_memory_equal(b.buf2, "world", 5);
	assert_int_equal(b.pw, 5);
	assert_int_equal(b.r2, 6); /* the pread/pwrite did not move the position */
	assert_memory_equal(b.buf3, " world", 6);
	assert_int_equal(b.seek_end, 11);
	assert_int_equal(b.w_after_seek, 1);
	assert_int_equal(b.fsync, 0);
	assert_int_equal(b.fdatasync, 0);
	assert_int_equal(b.stat, 0);
	assert_int_equal(b.size, 12);
	assert_int_equal(b.close, 0);

	char path[128];
	path_of(path, sizeof path, "basic");
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	char got[32] = { 0 };
	assert_int_equal(fread(got, 1, sizeof got, fp), 12);
	fclose(fp);
	assert_string_equal(got, "HELLO world!");
}

/* ---- read_all / write_all ---- */

struct whole {
	int w1, r1, w2, r2, big, missing, proc, sync, dir_write;
	size_t len1, len2, biglen, proclen;
	char *buf1, *buf2, *bigbuf, *procbuf;
};

static void *whole_task(void *arg)
{
	struct whole *w = arg;
	char path[128];
	path_of(path, sizeof path, "whole");
	enum { N = 200000 };
	char *data = malloc(N);
	if (!data)
		return NULL;
	for (size_t i = 0; i < N; i++)
		data[i] = (char)('a' + i % 26);
	w->w1 = weft_file_write_all(path, data, N, 0644, 0);
	w->r1 = weft_file_read_all(path, &w->buf1, &w->len1, 0);
	if (w->r1 == 0 && (w->len1 != N || memcmp(w->buf1, data, N) || w->buf1[N] != '\0'))
		w->r1 = 99;
	free(data);
	w->w2 = weft_file_write_all(path, "short", 5, 0644, WEFT_FILE_SYNC);
	w->r2 = weft_file_read_all(path, &w->buf2, &w->len2, 0);
	w->big = weft_file_read_all(path, &w->bigbuf, &w->biglen, 4); /* 5 > 4 */
	char missing[128];
	path_of(missing, sizeof missing, "no-such-file");
	w->missing = weft_file_read_all(missing, &w->bigbuf, &w->biglen, 0);
	w->proc = weft_file_read_all("/proc/self/status", &w->procbuf, &w->proclen, 0);
	w->dir_write = weft_file_write_all(dir, "x", 1, 0644, 0); /* a directory */
	return NULL;
}

static void test_read_all_write_all(void **state)
{
	(void)state;
	struct whole w;
	memset(&w, 0, sizeof w);
	weft_test_run_loops(2, whole_task, &w);
	assert_int_equal(w.w1, 0);
	assert_int_equal(w.r1, 0);
	assert_int_equal(w.w2, 0);
	assert_int_equal(w.r2, 0);
	assert_int_equal(w.len2, 5);
	assert_string_equal(w.buf2, "short");
	assert_int_equal(w.big, -EFBIG);
	assert_null(w.bigbuf);
	assert_int_equal(w.biglen, 0);
	assert_int_equal(w.missing, -ENOENT);
	assert_int_equal(w.proc, 0); /* /proc reports size 0: read to EOF */
	assert_true(w.proclen > 0);
	assert_non_null(strstr(w.procbuf, "Pid:"));
	assert_true(w.dir_write < 0); /* renaming a file over a directory */
	assert_int_equal(dir_entries(), 1); /* no temporary file left */
	free(w.buf1);
	free(w.buf2);
	free(w.procbuf);
}

/* ---- many tasks appending lines to one file ---- */

enum { WRITERS = 40, LINES = 25 };

struct append {
	const char *name;
	int flags;
	weft_file *f;
	_Atomic int bad;
};

struct writer {
	struct append *a;
	int id;
};

static void *append_writer(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; i < LINES; i++) {
		char line[64];
		int n = snprintf(line, sizeof line, "writer-%02d\tline-%03d\t%s\n", w->id, i,
				 "padding-padding-padding");
		if (weft_file_write(w->a->f, line, (size_t)n) != n)
			atomic_fetch_add(&w->a->bad, 1);
		if (i % 5 == 0)
			weft_yield();
	}
	return NULL;
}

/* WRITERS tasks write LINES lines each through one shared weft_file
 * opened with a->flags at a->name. */
static void *append_main(void *arg)
{
	struct append *a = arg;
	char path[128];
	path_of(path, sizeof path, a->name);
	if (weft_file_open(&a->f, path, O_WRONLY | O_CREAT | a->flags, 0600) < 0) {
		a->bad = -1;
		return NULL;
	}
	struct writer w[WRITERS];
	weft_task *t[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ a, i };
		if (weft_task_spawn(&t[i], append_writer, &w[i]) < 0)
			atomic_fetch_add(&a->bad, 1000);
	}
	for (int i = 0; i < WRITERS; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}
	if (weft_file_close(a->f) < 0)
		atomic_fetch_add(&a->bad, 1);
	return NULL;
}

/* Every "writer-WW\tline-LLL\t..." line present once and intact. */
static void check_lines(const char *path, int writers, int lines)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	int *seen = calloc((size_t)(writers * lines), sizeof *seen);
	char line[256];
	int total = 0;
	while (fgets(line, sizeof line, fp)) {
		int w, l;
		char pad[64];
		assert_int_equal(sscanf(line, "writer-%d\tline-%d\t%63s\n", &w, &l, pad), 3);
		assert_string_equal(pad, "padding-padding-padding");
		assert_true(w >= 0 && w < writers && l >= 0 && l < lines);
		seen[w * lines + l]++;
		total++;
	}
	fclose(fp);
	assert_int_equal(total, writers * lines);
	for (int i = 0; i < writers * lines; i++)
		assert_int_equal(seen[i], 1);
	free(seen);
}

static void run_writers(const char *name, int flags)
{
	struct append a;
	memset(&a, 0, sizeof a);
	a.name = name;
	a.flags = flags;
	weft_test_run_loops(2, append_main, &a);
	assert_int_equal(atomic_load(&a.bad), 0);
	char path[128];
	path_of(path, sizeof path, name);
	check_lines(path, WRITERS, LINES);
}

static void test_append_many_tasks(void **state)
{
	(void)state;
	run_writers("append", O_APPEND);
}

/* Without O_APPEND the object's position, under its lock, keeps writes
 * from many tasks apart too. */
static void test_shared_position(void **state)
{
	(void)state;
	run_writers("position", O_TRUNC);
}

/* ---- errors ---- */

struct errs {
	int adopt_neg, adopt_closed, open_null, out_null, missing, wa_flags, wa_null, wa_empty,
	    ra_null, read_wronly, write_rdonly, pread_neg, pwrite_neg, seek_whence,
	    seek_neg, stat_null, close_null, pread_pipe, seek_pipe, ra_notdir;
	ssize_t read_null, write_null;
};

static void *errs_task(void *arg)
{
	struct errs *e = arg;
	char path[128];
	path_of(path, sizeof path, "errs");
	weft_file *f;
	char buf[8];
	e->adopt_neg = weft_file_adopt(&f, -1);
	int fds[2];
	if (pipe(fds) == 0) {
		close(fds[1]);
		int closed = fds[1];
		e->adopt_closed = weft_file_adopt(&f, closed);
		if (weft_file_adopt(&f, fds[0]) == 0) {
			e->pread_pipe = (int)weft_file_pread(f, buf, 1, 0);
			e->seek_pipe = (int)weft_file_seek(f, 0, SEEK_SET);
			weft_file_close(f);
		}
	}
	e->open_null = weft_file_open(&f, NULL, O_RDONLY, 0);
	e->out_null = weft_file_open(NULL, path, O_RDONLY, 0);
	e->missing = weft_file_open(&f, path, O_RDONLY, 0);
	e->wa_flags = weft_file_write_all(path, "x", 1, 0600, 0x100);
	e->wa_null = weft_file_write_all(path, NULL, 1, 0600, 0);
	e->wa_empty = weft_file_write_all("", "x", 1, 0600, 0);
	e->ra_null = weft_file_read_all(path, NULL, NULL, 0);
	char *b;
	size_t n;
	e->ra_notdir = weft_file_read_all("/etc/passwd/x", &b, &n, 0);
	e->read_null = weft_file_read(NULL, buf, 1);
	e->write_null = weft_file_write(NULL, buf, 1);
	e->stat_null = weft_file_stat(NULL, NULL);
	e->close_null = weft_file_close(NULL);
	if (weft_file_open(&f, path, O_WRONLY | O_CREAT, 0600) == 0) {
		e->read_wronly = (int)weft_file_read(f, buf, 1);
		e->pread_neg = (int)weft_file_pread(f, buf, 1, -1);
		e->pwrite_neg = (int)weft_file_pwrite(f, buf, 1, -5);
		e->seek_whence = (int)weft_file_seek(f, 0, 42);
		e->seek_neg = (int)weft_file_seek(f, -1, SEEK_SET);
		weft_file_close(f);
	}
	if (weft_file_open(&f, path, O_RDONLY, 0) == 0) {
		e->write_rdonly = (int)weft_file_write(f, "x", 1);
		weft_file_close(f);
	}
	return NULL;
}

static void test_errors(void **state)
{
	(void)state;
	struct errs e;
	memset(&e, 0, sizeof e);
	weft_test_run_loops(1, errs_task, &e);
	assert_int_equal(e.adopt_neg, -EBADF);
	assert_int_equal(e.adopt_closed, -EBADF);
	assert_int_equal(e.pread_pipe, -ESPIPE);
	assert_int_equal(e.seek_pipe, -ESPIPE);
	assert_int_equal(e.open_null, -EINVAL);
	assert_int_equal(e.out_null, -EINVAL);
	assert_int_equal(e.missing, -ENOENT);
	assert_int_equal(e.wa_flags, -EINVAL);
	assert_int_equal(e.wa_null, -EINVAL);
	assert_int_equal(e.wa_empty, -EINVAL);
	assert_int_equal(e.ra_null, -EINVAL);
	assert_int_equal(e.ra_notdir, -ENOTDIR);
	assert_int_equal(e.read_null, -EINVAL);
	assert_int_equal(e.write_null, -EINVAL);
	assert_int_equal(e.stat_null, -EINVAL);
	assert_int_equal(e.close_null, -EINVAL);
	assert_int_equal(e.read_wronly, -EBADF);
	assert_int_equal(e.write_rdonly, -EBADF);
	assert_int_equal(e.pread_neg, -EINVAL);
	assert_int_equal(e.pwrite_neg, -EINVAL);
	assert_int_equal(e.seek_whence, -EINVAL);
	assert_int_equal(e.seek_neg, -EINVAL);
}

static void test_not_a_task(void **state)
{
	(void)state;
	char path[128];
	path_of(path, sizeof path, "eperm");
	weft_file *f = NULL;
	assert_int_equal(weft_file_open(&f, path, O_RDWR | O_CREAT, 0600), -EPERM);
	assert_null(f);
	assert_int_equal(weft_file_adopt(&f, 0), -EPERM);
	char *b;
	size_t n;
	assert_int_equal(weft_file_read_all("/etc/hostname", &b, &n, 0), -EPERM);
	assert_int_equal(weft_file_write_all(path, "x", 1, 0600, 0), -EPERM);
	assert_int_equal(dir_entries(), 0);
}

/* A read blocked on a pipe, cancelled: -ECANCELED, and the file still
 * works afterwards. */
struct cancel {
	weft_file *f;
	ssize_t r, after;
	char buf[8];
};

static void *cancel_reader(void *arg)
{
	struct cancel *c = arg;
	c->r = weft_file_read(c->f, c->buf, sizeof c->buf);
	return NULL;
}

static void *cancel_main(void *arg)
{
	struct cancel *c = arg;
	int fds[2];
	if (pipe(fds) < 0 || weft_file_adopt(&c->f, fds[0]) < 0)
		return NULL;
	weft_task *t;
	weft_task_spawn(&t, cancel_reader, c);
	weft_sleep_ms(20);
	weft_task_cancel(t);
	weft_task_join(t, NULL);
	weft_task_release(t);
	if (write(fds[1], "ok", 2) == 2)
		c->after = weft_file_read(c->f, c->buf, sizeof c->buf);
	weft_file_close(c->f);
	close(fds[1]);
	return NULL;
}

static void test_cancel_read(void **state)
{
	(void)state;
	struct cancel c;
	memset(&c, 0, sizeof c);
	weft_test_run_loops(2, cancel_main, &c);
	assert_int_equal(c.r, -ECANCELED);
	assert_int_equal(c.after, 2);
	assert_memory_equal(c.buf, "ok", 2);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(test_basic_calls, setup, teardown),
	cmocka_unit_test_setup_teardown(test_read_all_write_all, setup, teardown),
	cmocka_unit_test_setup_teardown(test_append_many_tasks, setup, teardown),
	cmocka_unit_test_setup_teardown(test_shared_position, setup, teardown),
	cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	cmocka_unit_test_setup_teardown(test_not_a_task, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cancel_read, setup, teardown),
};

WEFT_TEST_MAIN(tests)
