/*
 * Files (weft/fs.h): a descriptor plus the position its read/write use,
 * every operation an io_uring op through the raw calls of io/ops.c.
 *
 * The position lives in the object, not in the kernel's file offset: an
 * io_uring op at offset -1 reads the kernel offset without the lock that
 * read(2) takes (f_pos_lock), so two in-flight ops could use the same
 * offset.  Calls that use the position hold the object's weft_lock from
 * reading it to advancing it.  O_APPEND writes are the exception: they go
 * at offset -1 and the kernel appends each one under the inode lock.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct weft_file {
	int fd;
	bool append; /* O_APPEND: writes at -1, lock-free */
	bool stream; /* cannot seek: every op at -1 */
	int64_t pos; /* guarded by lock */
	weft_lock lock;
};

static int file_new(weft_file **out, int fd, int64_t pos, bool append, bool stream)
{
	weft_file *f = malloc(sizeof *f);
	if (!f)
		return -ENOMEM;
	f->fd = fd;
	f->append = append;
	f->stream = stream;
	f->pos = pos;
	weft_lock_init(&f->lock);
	*out = f;
	return 0;
}

/* Wrap fd: its status flags say O_APPEND, lseek says whether it seeks. */
static int file_wrap(weft_file **out, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -EBADF;
	off_t pos = lseek(fd, 0, SEEK_CUR);
	bool stream = pos < 0;
	return file_new(out, fd, stream ? 0 : (int64_t)pos, (fl & O_APPEND) != 0, stream);
}

int weft_file_open(weft_file **out, const char *path, int flags, mode_t mode)
{
	if (out)
		*out = NULL;
	if (!out || !path)
		return -EINVAL;
	int fd = weft_openat(AT_FDCWD, path, flags, mode);
	if (fd < 0)
		return fd;
	int r = file_wrap(out, fd);
	if (r < 0)
		weft_close(fd);
	return r;
}

int weft_file_adopt(weft_file **out, int fd)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!weft__task_self())
		return -EPERM;
	if (fd < 0)
		return -EBADF;
	return file_wrap(out, fd);
}

int weft_file_fd(const weft_file *f)
{
	return f ? f->fd : -EINVAL;
}

/* The checks shared by every call that uses the position.  Returns 0 with
 * the lock held, or an error without it. */
static int pos_lock(weft_file *f)
{
	if (!f)
		return -EINVAL;
	if (!weft__task_self())
		return -EPERM; /* never block a foreign thread on the lock */
	return weft_lock_acquire(&f->lock);
}

static int64_t file_off(const weft_file *f)
{
	return f->stream ? WEFT_OFF_CUR : f->pos;
}

/* Write all of buf at off, returning the count if anything went out. */
static ssize_t write_full(int fd, const void *buf, size_t len, int64_t off)
{
	size_t done = 0;
	ssize_t r = weft_write_all(fd, buf, len, off, &done);
	return done > 0 ? (ssize_t)done : r;
}

ssize_t weft_file_read(weft_file *f, void *buf, size_t len)
{
	if (!buf && len)
		return -EINVAL;
	int r = pos_lock(f);
	if (r < 0)
		return r;
	ssize_t n = weft_read(f->fd, buf, len, file_off(f));
	if (n > 0 && !f->stream)
		f->pos += n;
	weft_lock_release(&f->lock);
	return n;
}

ssize_t weft_file_write(weft_file *f, const void *buf, size_t len)
{
	if (!f || (!buf && len))
		return -EINVAL;
	if (f->append) /* one atomic append per write(2); no position */
		return write_full(f->fd, buf, len, WEFT_OFF_CUR);
	int r = pos_lock(f);
	if (r < 0)
		return r;
	ssize_t n = write_full(f->fd, buf, len, file_off(f));
	if (n > 0 && !f->stream)
		f->pos += n;
	weft_lock_release(&f->lock);
	return n;
}

/* Shared checks of pread/pwrite. */
static int at_check(const weft_file *f, const void *buf, size_t len, int64_t off)
{
	if (!f || (!buf && len) || off < 0)
		return -EINVAL;
	if (!weft__task_self())
		return -EPERM;
	return f->stream ? -ESPIPE : 0;
}

ssize_t weft_file_pread(weft_file *f, void *buf, size_t len, int64_t off)
{
	int r = at_check(f, buf, len, off);
	return r < 0 ? r : weft_read(f->fd, buf, len, off);
}

ssize_t weft_file_pwrite(weft_file *f, const void *buf, size_t len, int64_t off)
{
	int r = at_check(f, buf, len, off);
	return r < 0 ? r : write_full(f->fd, buf, len, off);
}

int weft_file_stat(weft_file *f, struct statx *stx)
{
	if (!f || !stx)
		return -EINVAL;
	return weft_statx(f->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, stx);
}

int64_t weft_file_seek(weft_file *f, int64_t off, int whence)
{
	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
		return -EINVAL;
	int r = pos_lock(f);
	if (r < 0)
		return r;
	int64_t base = 0;
	if (f->stream) {
		r = -ESPIPE;
	} else if (whence == SEEK_CUR) {
		base = f->pos;
	} else if (whence == SEEK_END) {
		struct statx stx;
		r = weft_file_stat(f, &stx);
		if (r == 0)
			base = (int64_t)stx.stx_size;
	}
	if (r == 0 && (off < -base || (off > 0 && base > INT64_MAX - off)))
		r = -EINVAL;
	int64_t res = r < 0 ? r : (f->pos = base + off);
	weft_lock_release(&f->lock);
	return res;
}

int weft_file_fsync(weft_file *f)
{
	return f ? weft_fsync(f->fd) : -EINVAL;
}

int weft_file_fdatasync(weft_file *f)
{
	return f ? weft_fdatasync(f->fd) : -EINVAL;
}

int weft_file_close(weft_file *f)
{
	if (!f)
		return -EINVAL;
	if (!weft__task_self())
		return -EPERM;
	int r = weft_close(f->fd);
	weft_lock_destroy(&f->lock);
	free(f);
	return r;
}

/* ---- whole-file helpers ---- */

int weft_file_read_all(const char *path, char **buf, size_t *len, size_t max_bytes)
{
	if (buf)
		*buf = NULL;
	if (len)
		*len = 0;
	if (!path || !buf || !len)
		return -EINVAL;
	if (max_bytes == 0 || max_bytes > SIZE_MAX - 2)
		max_bytes = SIZE_MAX - 2;
	weft_file *f;
	int r = weft_file_open(&f, path, O_RDONLY, 0);
	if (r < 0)
		return r;
	/* The size is a hint: the file may change, /proc reports 0. */
	struct statx stx;
	size_t cap = 4096;
	if (!f->stream && weft_file_stat(f, &stx) == 0 && stx.stx_size + 1 > cap)
		cap = stx.stx_size < max_bytes ? (size_t)stx.stx_size + 1 : max_bytes + 1;
	char *data = NULL;
	size_t n = 0;
	for (;;) {
		if (n == cap || !data) {
			if (data)
				cap = cap > max_bytes / 2 ? max_bytes + 1 : cap * 2;
			char *nd = realloc(data, cap + 1); /* + the NUL */
			if (!nd) {
				r = -ENOMEM;
				break;
			}
			data = nd;
		}
		ssize_t k = weft_file_read(f, data + n, cap - n);
		if (k <= 0) {
			r = (int)k;
			break;
		}
		n += (size_t)k;
		if (n > max_bytes) {
			r = -EFBIG;
			break;
		}
	}
	weft_file_close(f);
	if (r < 0) {
		free(data);
		return r;
	}
	data[n] = '\0';
	*buf = data;
	*len = n;
	return 0;
}

/* A name for the temporary file: "<dir>/.<base>.tmp-XXXXXX". */
static int temp_name(char *out, size_t cap, const char *path, unsigned attempt)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	if (!*base)
		return -EINVAL; /* "dir/": no file name */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned x = (unsigned)ts.tv_nsec * 2654435761u ^ (unsigned)getpid() * 40503u ^ attempt;
	int k = snprintf(out, cap, "%.*s.%s.tmp-%06x", dirlen, path, base, x & 0xffffffu);
	return k < 0 || (size_t)k >= cap ? -ENAMETOOLONG : 0;
}

/* fsync the directory holding `path`, so the rename itself is durable;
 * `dir` is a PATH_MAX scratch buffer. */
static int sync_dir(const char *path, char *dir)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
	weft_file *d;
	int r = weft_file_open(&d, dir, O_RDONLY | O_DIRECTORY, 0);
	if (r < 0)
		return r;
	r = weft_file_fsync(d);
	int c = weft_file_close(d);
	return r < 0 ? r : c;
}

int weft_file_write_all(const char *path, const void *buf, size_t len, mode_t mode,
			unsigned flags)
{
	if (!path || !*path || (!buf && len) || (flags & ~WEFT_FILE_SYNC))
		return -EINVAL;
	weft_task *t = weft__task_self();
	if (!t)
		return -EPERM;
	if (strlen(path) >= PATH_MAX - 32)
		return -ENAMETOOLONG;
	char *tmp = malloc(PATH_MAX); /* off the task's small stack */
	if (!tmp)
		return -ENOMEM;
	weft_file *f = NULL;
	int r = -EEXIST;
	for (unsigned i = 0; i < 64 && r == -EEXIST; i++) {
		r = temp_name(tmp, PATH_MAX, path, i);
		if (r == 0)
			r = weft_file_open(&f, tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
	}
	if (r < 0) {
		free(tmp);
		return r;
	}
	ssize_t w = weft_write_all(f->fd, buf, len, 0, NULL);
	r = w < 0 ? (int)w : 0;
	if (r == 0 && (flags & WEFT_FILE_SYNC))
		r = weft_file_fsync(f);
	int c = weft_file_close(f);
	if (r == 0)
		r = c;
	if (r == 0)
		r = weft_renameat(AT_FDCWD, tmp, AT_FDCWD, path, 0);
	if (r < 0) {
		/* Remove the temporary file even when cancelled or past a
		 * deadline: the cleanup must not be interrupted. */
		uint64_t saved = weft__uninterruptible_begin(t);
		weft_unlinkat(AT_FDCWD, tmp, 0);
		weft__uninterruptible_end(t, saved);
	} else if (flags & WEFT_FILE_SYNC) {
		r = sync_dir(path, tmp);
	}
	free(tmp);
	return r;
}
