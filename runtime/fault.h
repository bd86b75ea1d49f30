/*
 * Fault-injection seams: the runtime's calls that link-time wrapping
 * cannot reach, because they are inlined from a header (liburing 2.3's
 * io_uring_get_sqe is a static inline).  In normal builds each macro is
 * the plain call; in the fault build (-DWEFT_FAULT, build/fault) it is a
 * hook in tests/fault.c that may fail it.  Every other faulted call
 * (malloc, mmap, socket, accept4, io_uring_submit*, epoll_wait, ...) is
 * wrapped at link time instead (`ld -r --wrap`, see the Makefile and
 * docs/testing.md), with no change to the sources.  Keep seams here, and
 * few.
 */
#ifndef WEFT_FAULT_SEAM_H
#define WEFT_FAULT_SEAM_H

#include <liburing.h>

#ifdef WEFT_FAULT
/* NULL as if the submission queue were full, else io_uring_get_sqe(). */
struct io_uring_sqe *weft__fault_get_sqe(struct io_uring *ring);
#define weft__get_sqe(ring) weft__fault_get_sqe(ring)
#else
#define weft__get_sqe(ring) io_uring_get_sqe(ring)
#endif

#endif
