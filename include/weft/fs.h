/*
 * weft/fs.h — files (what Python's aiofiles gives), native on io_uring.
 *
 * A weft_file is an open file plus the position its read/write calls use.
 * On io_uring every operation is an io_uring operation on the loop the
 * calling task runs on: no thread pool, and only the calling task waits.
 * On epoll (docs/backends.md) reads and writes that the page cache answers
 * run in place (RWF_NOWAIT) and everything else runs on the blocking pool,
 * as libuv and Tokio do; only the calling task waits either way.
 *
 *     weft_file *f;
 *     int r = weft_file_open(&f, "out.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
 *     if (r < 0) return r;
 *     weft_file_write(f, line, len);       // `await f.write(line)`
 *     weft_file_close(f);                  // leaving `async with`
 *
 * Common rules for every function in this header:
 *  - Call from a task.  From any other thread they return -EPERM and do
 *    nothing (they never block a foreign thread).
 *  - Return >= 0 on success or -errno.  Bad arguments (NULL pointers, a
 *    negative offset, unknown flags) give -EINVAL; an fd that is not open,
 *    or a file not opened for that direction, gives -EBADF.
 *  - Every call that does I/O is a suspension point: a pending
 *    cancellation or an expired deadline scope fails it at entry
 *    (-ECANCELED / -ETIMEDOUT); one arriving mid-operation cancels the
 *    io_uring operation and still waits for it, or waits for the pool
 *    thread on epoll (weft/io.h), so bytes moved are reported, never lost.
 *  - Buffers and paths are borrowed for the duration of the call only.
 *  - A weft_file may be shared by several tasks (on any loops).  Calls that
 *    use the file's position (read, write, seek) are serialized by a lock
 *    inside the object, so each moves the position by exactly what it
 *    transferred; pread/pwrite and O_APPEND writes take no lock and may run
 *    concurrently.  weft_file_close must not race with any other call on
 *    the same file.
 */
#ifndef WEFT_FS_H
#define WEFT_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct statx;

typedef struct weft_file weft_file;

/*
 * open(2) `path` with `flags` (O_RDONLY / O_WRONLY / O_RDWR, O_CREAT,
 * O_TRUNC, O_APPEND, O_EXCL, ...; O_CLOEXEC is always added) and `mode`
 * (for O_CREAT).  The position starts at 0.  Files that cannot seek (FIFOs,
 * terminals, character devices) are read and written as streams: the
 * position is not used and pread/pwrite/seek return -ESPIPE.
 * In O_APPEND mode every weft_file_write is one append at the end of the
 * file, atomic against other appenders (other tasks, other processes):
 * lines written by concurrent tasks never interleave.  Such writes neither
 * use nor move the position (reads still do).
 * On success *out owns the file: end it with weft_file_close().
 * Returns 0, -EINVAL (out or path NULL), -EPERM, or open's -errno
 * (-ENOENT, -EACCES, -EEXIST, -EISDIR, ...).  *out is NULL on failure.
 */
WEFT_API int weft_file_open(weft_file **out, const char *path, int flags, mode_t mode);

/*
 * Wrap an fd the caller already has (e.g. STDOUT_FILENO).  The weft_file
 * takes ownership: weft_file_close() closes fd.  The position starts at
 * the fd's current offset.  Returns 0, -EINVAL (out NULL), -EBADF (fd not
 * open), -ENOMEM, -EPERM; on failure the caller still owns fd.  Never
 * suspends.
 */
WEFT_API int weft_file_adopt(weft_file **out, int fd);

/* The file's descriptor (borrowed: valid until weft_file_close), or
 * -EINVAL for NULL.  Any thread. */
WEFT_API int weft_file_fd(const weft_file *f);

/*
 * Read up to `len` bytes at the file's position into buf and advance the
 * position by what was read.  One read: fewer bytes than asked only at end
 * of file (or from a stream).  Returns the byte count, 0 at end of file, or
 * -errno (-EBADF: not open for reading).
 */
WEFT_API ssize_t weft_file_read(weft_file *f, void *buf, size_t len);

/*
 * Write all `len` bytes of buf at the file's position (O_APPEND: at the
 * end, see weft_file_open), retrying short writes, and advance the position.
 * Returns len; a count below len only when an error (-ENOSPC, a
 * cancellation, ...) struck after some bytes were written (the next call
 * reports it); or -errno when nothing was written (-EBADF: not open for
 * writing).
 */
WEFT_API ssize_t weft_file_write(weft_file *f, const void *buf, size_t len);

/* pread(2) at `off` (>= 0): one read, the position is neither used nor
 * moved.  Returns bytes (0 at end of file) or -errno (-ESPIPE: a stream). */
WEFT_API ssize_t weft_file_pread(weft_file *f, void *buf, size_t len, int64_t off);

/* Write all of buf at `off` (>= 0), retrying short writes; the position is
 * neither used nor moved.  Returns as weft_file_write (-ESPIPE: a stream).
 * Linux appends regardless of `off` on an O_APPEND file. */
WEFT_API ssize_t weft_file_pwrite(weft_file *f, const void *buf, size_t len, int64_t off);

/* Move the position (lseek semantics: whence SEEK_SET, SEEK_CUR, SEEK_END;
 * SEEK_END asks the kernel for the size).  Returns the new position,
 * -EINVAL (bad whence, or the result would be negative), -ESPIPE (a
 * stream).  weft_file_seek(f, 0, SEEK_CUR) is tell(). */
WEFT_API int64_t weft_file_seek(weft_file *f, int64_t off, int whence);

/* fsync(2) / fdatasync(2): 0 or -errno. */
WEFT_API int weft_file_fsync(weft_file *f);
WEFT_API int weft_file_fdatasync(weft_file *f);

/* statx(2) of the open file (STATX_BASIC_STATS) into *stx (include
 * <sys/stat.h> with _GNU_SOURCE for struct statx).  0 or -errno. */
WEFT_API int weft_file_stat(weft_file *f, struct statx *stx);

/*
 * Close the fd (through the ring, not interrupted by cancellation) and
 * free f, whatever close returns: f is invalid afterwards.  No other call
 * on f may be in progress.  Returns close's 0 or -errno (-EIO: data lost
 * on a network file system), -EINVAL (f NULL), or -EPERM (not a task: then
 * nothing is closed or freed; close it from a task).
 */
WEFT_API int weft_file_close(weft_file *f);

/* ---- whole-file helpers ---- */

/*
 * Read the whole file at `path` into a new buffer: *buf gets it (the caller
 * frees it with free()), *len its size.  A NUL byte is appended after the
 * data (not counted in *len), so text can be used as a C string.  Files
 * that report no size (/proc) and streams are read until end of file.
 * `max_bytes` caps the size (0: no cap): a longer file gives -EFBIG.
 * Returns 0, -EINVAL, -EFBIG, -ENOMEM, -EPERM, or an open/read -errno;
 * on any error *buf is NULL and *len 0, and nothing is left allocated.
 */
WEFT_API int weft_file_read_all(const char *path, char **buf, size_t *len, size_t max_bytes);

/* weft_file_write_all flags */
#define WEFT_FILE_SYNC 1u /* fsync the data before the rename and the
			     directory after it: the new content survives a
			     crash once the call returns */

/*
 * Replace the file at `path` with buf[0..len) atomically: the data is
 * written to a new temporary file in the same directory (".NAME.tmp-XXXXXX"),
 * which is then renamed over `path`.  Readers see the old content or the
 * new, never a mix or a truncated file; on any failure (including
 * cancellation) the temporary file is removed and `path` is untouched.
 * The new file gets permissions `mode` (& ~umask); like every
 * rename-replace, it is a new inode: the old file's owner, permissions and
 * hard links are not carried over, and a symlink at `path` is replaced by
 * the file.  `flags`: 0 or WEFT_FILE_SYNC.
 * Returns 0, -EINVAL (path NULL or empty, buf NULL with len > 0, unknown
 * flags), -ENAMETOOLONG, -EPERM, or the -errno of the failed step.
 */
WEFT_API int weft_file_write_all(const char *path, const void *buf, size_t len, mode_t mode,
				 unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_FS_H */
