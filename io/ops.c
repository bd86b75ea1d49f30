/*
 * The raw operations of weft/io.h: one helper per io_uring opcode, each
 * "validate, prep an SQE, wait for its CQE" (io/op.c does the waiting).
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

/* Declares `op` and `sqe`, returning the begin error from the caller. */
#define IO_BEGIN(sqe)                                                  \
	weft__op op;                                                   \
	int err_;                                                      \
	struct io_uring_sqe *sqe = weft__io_begin(&op, &err_);         \
	if (unlikely(!sqe))                                            \
		return err_

static inline uint64_t off_arg(int64_t off)
{
	return off < 0 ? (uint64_t)-1 : (uint64_t)off;
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t off)
{
	if (!buf && len)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_read(sqe, fd, buf, (unsigned)(len > INT_MAX ? INT_MAX : len), off_arg(off));
	return weft__io_wait(&op);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t off)
{
	if (!buf && len)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_write(sqe, fd, buf, (unsigned)(len > INT_MAX ? INT_MAX : len), off_arg(off));
	return weft__io_wait(&op);
}

static bool iov_ok(const struct iovec *iov, int iovcnt)
{
	return iov && iovcnt > 0 && iovcnt <= IOV_MAX;
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	if (!iov_ok(iov, iovcnt))
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, off_arg(off));
	return weft__io_wait(&op);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	if (!iov_ok(iov, iovcnt))
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, off_arg(off));
	return weft__io_wait(&op);
}

ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t off, size_t *done)
{
	if (!buf && len)
		return -EINVAL;
	size_t n = 0;
	ssize_t r = 0;
	while (n < len) {
		r = weft_write(fd, (const char *)buf + n, len - n, off < 0 ? off : off + (int64_t)n);
		if (r <= 0) {
			if (r == 0)
				r = -EIO; /* no progress: would spin */
			break;
		}
		n += (size_t)r;
	}
	if (done)
		*done = n;
	return n == len ? (ssize_t)len : r;
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags)
{
	if (!buf && len)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_recv(sqe, fd, buf, len > INT_MAX ? INT_MAX : len, flags);
	return weft__io_wait(&op);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
	if (!buf && len)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_send(sqe, fd, buf, len > INT_MAX ? INT_MAX : len, flags | MSG_NOSIGNAL);
	return weft__io_wait(&op);
}

ssize_t weft_send_all(int fd, const void *buf, size_t len, int flags)
{
	if (!buf && len)
		return -EINVAL;
	size_t n = 0;
	while (n < len) {
		ssize_t r = weft_send(fd, (const char *)buf + n, len - n, flags);
		if (r <= 0)
			return r < 0 ? r : -EIO; /* no progress: would spin */
		n += (size_t)r;
	}
	return (ssize_t)len;
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (!msg)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_recvmsg(sqe, fd, msg, (unsigned)flags);
	return weft__io_wait(&op);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (!msg)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags | MSG_NOSIGNAL);
	return weft__io_wait(&op);
}

ssize_t weft_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
		      socklen_t *addrlen)
{
	if ((!buf && len) || (addr && !addrlen))
		return -EINVAL;
	struct iovec iov = { buf, len };
	struct msghdr msg = { .msg_name = addr, .msg_namelen = addr ? *addrlen : 0,
			      .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r = weft_recvmsg(fd, &msg, flags);
	if (r >= 0 && addr)
		*addrlen = msg.msg_namelen;
	return r;
}

ssize_t weft_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
		    socklen_t addrlen)
{
	if (!buf && len)
		return -EINVAL;
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_name = (void *)addr, .msg_namelen = addr ? addrlen : 0,
			      .msg_iov = &iov, .msg_iovlen = 1 };
	return weft_sendmsg(fd, &msg, flags);
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	if (addr && !addrlen)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_accept(sqe, fd, addr, addrlen, flags | SOCK_CLOEXEC);
	return weft__io_wait(&op);
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	if (!addr || !addrlen)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_connect(sqe, fd, addr, addrlen);
	return weft__io_wait(&op);
}

int weft_shutdown(int fd, int how)
{
	if (how < SHUT_RD || how > SHUT_RDWR)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_shutdown(sqe, fd, how);
	return weft__io_wait(&op);
}

int weft_close(int fd)
{
	if (fd < 0)
		return -EBADF;
	/* A close must happen whatever is pending: run it shielded. */
	weft_task *t = weft__task_self();
	if (!t)
		return -EPERM;
	uint64_t saved = weft__uninterruptible_begin(t);
	weft__op op;
	int r;
	struct io_uring_sqe *sqe = weft__io_begin(&op, &r);
	if (sqe) {
		io_uring_prep_close(sqe, fd);
		r = weft__io_wait(&op);
	} else if (r == -EBUSY) { /* no SQE: the fd goes anyway */
		r = close(fd) < 0 ? -errno : 0;
	}
	weft__uninterruptible_end(t, saved);
	return r;
}

int weft_openat(int dfd, const char *path, int flags, mode_t mode)
{
	if (!path)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_openat(sqe, dfd, path, flags | O_CLOEXEC, mode);
	return weft__io_wait(&op);
}

int weft_statx(int dfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
	if (!path || !stx)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_statx(sqe, dfd, path, flags, mask, stx);
	return weft__io_wait(&op);
}

static int fsync_op(int fd, unsigned flags)
{
	IO_BEGIN(sqe);
	io_uring_prep_fsync(sqe, fd, flags);
	return weft__io_wait(&op);
}

int weft_fsync(int fd)
{
	return fsync_op(fd, 0);
}

int weft_fdatasync(int fd)
{
	return fsync_op(fd, IORING_FSYNC_DATASYNC);
}

int weft_fallocate(int fd, int mode, int64_t off, int64_t len)
{
	if (off < 0 || len <= 0)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_fallocate(sqe, fd, mode, (off_t)off, (off_t)len);
	return weft__io_wait(&op);
}

int weft_unlinkat(int dfd, const char *path, int flags)
{
	if (!path || (flags & ~AT_REMOVEDIR))
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_unlinkat(sqe, dfd, path, flags);
	return weft__io_wait(&op);
}

int weft_renameat(int olddfd, const char *oldpath, int newdfd, const char *newpath,
		  unsigned flags)
{
	if (!oldpath || !newpath)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_renameat(sqe, olddfd, oldpath, newdfd, newpath, flags);
	return weft__io_wait(&op);
}

int weft_mkdirat(int dfd, const char *path, mode_t mode)
{
	if (!path)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_mkdirat(sqe, dfd, path, mode);
	return weft__io_wait(&op);
}

ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
		    unsigned flags)
{
	if (len > UINT_MAX)
		len = UINT_MAX;
	IO_BEGIN(sqe);
	io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, (unsigned)len, flags);
	return weft__io_wait(&op);
}

int weft_fd_wait(int fd, short events)
{
	if (fd < 0)
		return -EBADF;
	if (!events)
		return -EINVAL;
	IO_BEGIN(sqe);
	io_uring_prep_poll_add(sqe, fd, (unsigned)(unsigned short)events);
	return weft__io_wait(&op);
}
