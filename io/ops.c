/*
 * The raw operations of weft/io.h: one helper per operation, each
 * "validate, describe the op, run it" (io/op.c hands it to the backend).
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

/* Run opcode `code` with the given weft__op_args fields. */
#define RUN_OP(code, ...)                                                      \
	do {                                                                   \
		weft__op op_ = { .opcode = (code), .a = { __VA_ARGS__ } };     \
		return weft__op_run(&op_);                                     \
	} while (0)

static inline int64_t off_arg(int64_t off)
{
	return off < 0 ? -1 : off;
}

static inline uint64_t len_arg(size_t len)
{
	return len > INT_MAX ? INT_MAX : len;
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t off)
{
	if (!buf && len)
		return -EINVAL;
	RUN_OP(WEFT_OP_READ, .fd = fd, .p = buf, .len = len_arg(len), .off = off_arg(off));
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t off)
{
	if (!buf && len)
		return -EINVAL;
	RUN_OP(WEFT_OP_WRITE, .fd = fd, .p = (void *)buf, .len = len_arg(len), .off = off_arg(off));
}

static bool iov_ok(const struct iovec *iov, int iovcnt)
{
	return iov && iovcnt > 0 && iovcnt <= IOV_MAX;
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	if (!iov_ok(iov, iovcnt))
		return -EINVAL;
	RUN_OP(WEFT_OP_READV, .fd = fd, .p = (void *)iov, .mode = (uint32_t)iovcnt,
	       .off = off_arg(off));
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off)
{
	if (!iov_ok(iov, iovcnt))
		return -EINVAL;
	RUN_OP(WEFT_OP_WRITEV, .fd = fd, .p = (void *)iov, .mode = (uint32_t)iovcnt,
	       .off = off_arg(off));
}

ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t off, size_t *done)
{
	if (!buf && len) {
		if (done)
			*done = 0; /* reported on every error (weft/io.h) */
		return -EINVAL;
	}
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
	RUN_OP(WEFT_OP_RECV, .fd = fd, .p = buf, .len = len_arg(len), .flags = (uint32_t)flags);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
	if (!buf && len)
		return -EINVAL;
	RUN_OP(WEFT_OP_SEND, .fd = fd, .p = (void *)buf, .len = len_arg(len),
	       .flags = (uint32_t)flags);
}

ssize_t weft_send_zc(int fd, const void *buf, size_t len, int flags)
{
	if (!buf && len)
		return -EINVAL;
	RUN_OP(WEFT_OP_SEND_ZC, .fd = fd, .p = (void *)buf, .len = len_arg(len),
	       .flags = (uint32_t)flags);
}

ssize_t weft_send_all(int fd, const void *buf, size_t len, int flags, size_t *done)
{
	if (!buf && len) {
		if (done)
			*done = 0;
		return -EINVAL;
	}
	size_t n = 0;
	ssize_t r = 0;
	while (n < len) {
		/* A send that completed as a scope expired keeps its count
		 * (weft/io.h): the next one fails at entry, so n is exact. */
		r = weft_send(fd, (const char *)buf + n, len - n, flags);
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

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (!msg)
		return -EINVAL;
	RUN_OP(WEFT_OP_RECVMSG, .fd = fd, .p = msg, .flags = (uint32_t)flags);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (!msg)
		return -EINVAL;
	RUN_OP(WEFT_OP_SENDMSG, .fd = fd, .p = (void *)msg, .flags = (uint32_t)flags);
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
	RUN_OP(WEFT_OP_ACCEPT, .fd = fd, .p = addr, .p3 = addrlen, .flags = (uint32_t)flags);
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	if (!addr || !addrlen)
		return -EINVAL;
	RUN_OP(WEFT_OP_CONNECT, .fd = fd, .p = (void *)addr, .len = addrlen);
}

int weft_shutdown(int fd, int how)
{
	if (how < SHUT_RD || how > SHUT_RDWR)
		return -EINVAL;
	RUN_OP(WEFT_OP_SHUTDOWN, .fd = fd, .flags = (uint32_t)how);
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
	weft__op op = { .opcode = WEFT_OP_CLOSE, .a = { .fd = fd } };
	int r = weft__op_run(&op);
	weft__uninterruptible_end(t, saved);
	return r;
}

int weft_openat(int dfd, const char *path, int flags, mode_t mode)
{
	if (!path)
		return -EINVAL;
	RUN_OP(WEFT_OP_OPENAT, .fd = dfd, .p = (void *)path, .flags = (uint32_t)flags,
	       .mode = mode);
}

int weft_statx(int dfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
	if (!path || !stx)
		return -EINVAL;
	RUN_OP(WEFT_OP_STATX, .fd = dfd, .p = (void *)path, .flags = (uint32_t)flags,
	       .mode = mask, .p3 = stx);
}

static int fsync_op(int fd, unsigned flags)
{
	RUN_OP(WEFT_OP_FSYNC, .fd = fd, .flags = flags);
}

int weft_fsync(int fd)
{
	return fsync_op(fd, 0);
}

int weft_fdatasync(int fd)
{
	return fsync_op(fd, 1);
}

int weft_fallocate(int fd, int mode, int64_t off, int64_t len)
{
	if (off < 0 || len <= 0)
		return -EINVAL;
	RUN_OP(WEFT_OP_FALLOCATE, .fd = fd, .mode = (uint32_t)mode, .off = off,
	       .len = (uint64_t)len);
}

int weft_unlinkat(int dfd, const char *path, int flags)
{
	if (!path || (flags & ~AT_REMOVEDIR))
		return -EINVAL;
	RUN_OP(WEFT_OP_UNLINKAT, .fd = dfd, .p = (void *)path, .flags = (uint32_t)flags);
}

int weft_renameat(int olddfd, const char *oldpath, int newdfd, const char *newpath,
		  unsigned flags)
{
	if (!oldpath || !newpath)
		return -EINVAL;
	RUN_OP(WEFT_OP_RENAMEAT, .fd = olddfd, .p = (void *)oldpath, .fd2 = newdfd,
	       .p2 = newpath, .flags = flags);
}

int weft_mkdirat(int dfd, const char *path, mode_t mode)
{
	if (!path)
		return -EINVAL;
	RUN_OP(WEFT_OP_MKDIRAT, .fd = dfd, .p = (void *)path, .mode = mode);
}

ssize_t weft_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len,
		    unsigned flags)
{
	if (len > UINT_MAX)
		len = UINT_MAX;
	RUN_OP(WEFT_OP_SPLICE, .fd = fd_in, .off = off_in < 0 ? -1 : off_in, .fd2 = fd_out,
	       .off2 = off_out < 0 ? -1 : off_out, .len = len, .flags = flags);
}

int weft_fd_wait(int fd, short events)
{
	if (fd < 0)
		return -EBADF;
	if (!events)
		return -EINVAL;
	RUN_OP(WEFT_OP_POLL, .fd = fd, .mode = (uint32_t)(unsigned short)events);
}
