/*
 * weft/io.h — raw I/O operations on the loop's backend.
 *
 * Each call looks like its system call but suspends only the calling task.
 * On io_uring the operation is queued on the ring of the loop the task runs
 * on, the loop submits it in its next io_uring_enter (one per loop
 * iteration, with every other queued operation) and the task resumes when
 * it completes.  On epoll (where io_uring is refused, docs/backends.md) the
 * system call is tried at once without blocking, and on EAGAIN the task
 * waits for the fd's readiness in the loop's epoll set and tries again;
 * regular files and metadata calls run on the blocking pool.  Every call
 * means the same on both.
 *
 * Common rules for every function in this header:
 *  - Call from a task.  From any other thread they return -EPERM.
 *  - Return >= 0 on success (bytes, an fd, 0) or -errno, never setting errno.
 *  - Cancellation and deadline scopes: a pending cancellation or an expired
 *    scope fails the call at entry (-ECANCELED / -ETIMEDOUT) without
 *    submitting anything.  One that arrives while the operation is in flight
 *    submits an async cancel (io_uring) and then still waits for the
 *    operation's own completion, or takes the task off the fd (epoll), or
 *    waits for the pool thread to finish (files on epoll), so when the call
 *    returns neither the kernel nor a pool thread holds any pointer the
 *    call was given.  If the operation completed anyway (a recv
 *    that got bytes just as it was cancelled), its result is returned and the
 *    cancellation is delivered at the task's next suspension point: bytes
 *    moved are never lost.
 *  - Buffers, paths, iovecs and msghdrs are borrowed for the duration of the
 *    call only: they may live on the task's stack and may be freed or reused
 *    as soon as the call returns, whatever it returned.
 *  - Closing an fd does not cancel operations pending on it (Linux); cancel
 *    the tasks that wait on it, or shut the socket down, first.
 *  - Timeouts: wrap a call in a deadline scope (weft_scope_enter, with
 *    weft.h's "Timeouts and deadlines"); an expired scope makes it return
 *    -ETIMEDOUT.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct statx;

/* Offset meaning "the file's current position" (read, write, readv,
 * writev; and splice's "no offset" for pipes and sockets). */
#define WEFT_OFF_CUR ((int64_t)-1)

/* read(2)/pread(2) into buf: bytes read (0 at end of file) or -errno. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, int64_t off);
/* write(2)/pwrite(2): bytes written (may be fewer than len) or -errno. */
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len, int64_t off);
/* readv/preadv, writev/pwritev: iovcnt in 1..IOV_MAX, else -EINVAL. */
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off);
/* Write all of buf, retrying short writes: len or -errno.  *done (when
 * non-NULL) gets the bytes written, on success and on error alike: after
 * -ETIMEDOUT or -ECANCELED it is exact (a write that completed as the
 * scope expired or the cancellation came is counted). */
WEFT_API ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t off,
				size_t *done);

/* recv(2), send(2), recvmsg(2), sendmsg(2).  send may be partial; see
 * weft_send_all.  Sockets may be blocking or not: both backends wait for
 * readiness either way (epoll passes MSG_DONTWAIT); a caller's own
 * MSG_DONTWAIT gets -EAGAIN instead of a wait. */
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags);
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags);
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags);
/* send(2) without copying buf, for large buffers on TCP (and UDP):
 * io_uring's IORING_OP_SEND_ZC (kernel 6.0+).  It returns what send
 * would (bytes sent, maybe fewer than len; -errno), but only once the
 * kernel's notification says it no longer reads buf, which may be after
 * the peer acknowledged the bytes: the common rule (buffers are borrowed
 * for the call only) holds.  A cancellation likewise waits for that
 * notification.  Where the ring has no SEND_ZC, and on the epoll backend,
 * it is weft_send (a copy): MSG_ZEROCOPY's completions come on the
 * socket's error queue, which the epoll backend does not wait on, and on
 * loopback the kernel copies anyway.  Sockets that cannot send without a
 * copy (AF_UNIX) fail with -EOPNOTSUPP on io_uring.  Pass MSG_WAITALL to
 * send all of buf in one operation (one notification at the end) rather
 * than op after op, each waiting for the peer's acknowledgement.  A peer
 * that stops reading keeps the pages, so the call (cancelled or not)
 * returns only when it reads again or the connection is torn down (e.g.
 * connect(fd, AF_UNSPEC) from another task).  Zero-copy costs more than a
 * copy below some 256 KiB (docs/benchmarks.md, bench/send_zc.c). */
WEFT_API ssize_t weft_send_zc(int fd, const void *buf, size_t len, int flags);
/* send until all of buf is gone (MSG_NOSIGNAL added): len or -errno.
 * *done (when non-NULL)
 * gets the bytes sent, on success and on error alike; after -ETIMEDOUT
 * (a scope) or -ECANCELED it is exact: the peer can read exactly
 * buf[0..*done) of this call, so a caller can resume or report.  (Every
 * *_all call that moves bytes reports them so: weft_write_all here,
 * weft_stream_copy_bidirectional in weft/stream.h; weft/fs.h's
 * weft_file_read_all and weft_file_write_all are all or nothing.) */
WEFT_API ssize_t weft_send_all(int fd, const void *buf, size_t len, int flags,
			       size_t *done);
/* recvfrom/sendto for datagram sockets (addr may be NULL). */
WEFT_API ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags,
			       struct sockaddr *addr, socklen_t *addrlen);
WEFT_API ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags,
			     const struct sockaddr *addr, socklen_t addrlen);

/* accept4(2): the new fd (SOCK_CLOEXEC is always added) or -errno.  addr
 * and addrlen may be NULL. */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* connect(2) for a socket: 0 or -errno (-ECONNREFUSED, -ETIMEDOUT under a
 * scope, ...). */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* shutdown(2): 0 or -errno. */
WEFT_API int weft_shutdown(int fd, int how);
/* close(2) through the ring: 0 or -errno.  Not interrupted by a
 * cancellation (the fd is gone either way). */
WEFT_API int weft_close(int fd);

/* openat(2): the new fd (O_CLOEXEC always added) or -errno. */
WEFT_API int weft_openat(int dfd, const char *path, int flags, mode_t mode);
/* statx(2) into *stx: 0 or -errno. */
WEFT_API int weft_statx(int dfd, const char *path, int flags, unsigned mask,
			struct statx *stx);
WEFT_API int weft_fsync(int fd);
WEFT_API int weft_fdatasync(int fd);
WEFT_API int weft_fallocate(int fd, int mode, int64_t off, int64_t len);
/* unlinkat(2) (flags 0 or AT_REMOVEDIR), renameat2(2), mkdirat(2). */
WEFT_API int weft_unlinkat(int dfd, const char *path, int flags);
WEFT_API int weft_renameat(int olddfd, const char *oldpath, int newdfd, const char *newpath,
			   unsigned flags);
WEFT_API int weft_mkdirat(int dfd, const char *path, mode_t mode);
/* splice(2): one of the fds must be a pipe; offsets WEFT_OFF_CUR for none.
 * Bytes moved or -errno. */
WEFT_API ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
			     size_t len, unsigned flags);

/* Wait until fd (any pollable fd, e.g. a third-party library's socket) is
 * ready for `events` (POLLIN, POLLOUT, ...): the poll revents, or -errno.
 * Drive a foreign library by calling it non-blocking and waiting here on
 * EAGAIN. */
WEFT_API int weft_fd_wait(int fd, short events);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_IO_H */
