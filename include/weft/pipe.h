/* weft — pipes: Unix-domain stream sockets (path or abstract names), pipe
 * fds, and any other fd opened as a stream.
 *
 * A weft_pipe is a stream (weft_stream, see stream.h). Names: a path
 * ("/tmp/x.sock"), or an abstract name, which starts with a NUL byte
 * ("\0name") and therefore needs its length. A bound path is not removed
 * when the handle closes: unlink it yourself.
 *
 * SIGPIPE: the first weft_pipe_open() sets SIGPIPE to SIG_IGN if its
 * disposition is the default (terminate), so that writing to a pipe whose
 * reader is gone fails with -EPIPE instead of killing the process. A
 * handler or an ignore the program set is left alone. Sockets never raise
 * SIGPIPE (weft writes them with MSG_NOSIGNAL). Loop thread only. */
#ifndef WEFT_PIPE_H
#define WEFT_PIPE_H

#include <stddef.h>
#include <sys/types.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A pipe handle; embed it anywhere. Use `stream` with the stream calls
 * and `stream.base` with weft_close(). */
typedef struct weft_pipe {
  weft_stream stream;
  /* private */
  void *fdq; /* fds received, not yet taken (io/pipe_fds.c) */
} weft_pipe;

/** Initialises `p` on `loop`, without an fd. Returns 0 or -EINVAL. */
WEFT_API int weft_pipe_init(weft_loop *loop, weft_pipe *p);

/** Opens `fd` (a pipe end, a connected Unix socket, a tty, ...) as the
 * stream; the handle owns it afterwards (weft_close closes it). The fd is
 * made non-blocking. Returns 0; -EINVAL for NULL, a negative fd or a
 * handle that has an fd; -EBADF for a closed fd. */
WEFT_API int weft_pipe_open(weft_pipe *p, int fd);

/** Binds a Unix stream socket to `name` (`len` bytes; 0 means
 * strlen(name), which a NUL-started abstract name cannot use). Returns 0;
 * -EINVAL (NULL, empty, an fd already there, closing); -ENAMETOOLONG;
 * -EADDRINUSE and other kernel errors. */
WEFT_API int weft_pipe_bind(weft_pipe *p, const char *name, size_t len);

/** Listens on a bound pipe; like weft_tcp_listen(). Accept connections
 * into weft_pipe handles with weft_stream_accept(). */
WEFT_API int weft_pipe_listen(weft_pipe *p, int backlog, weft_connection_cb cb);

/** Connects to the Unix socket `name` (`len` as in weft_pipe_bind()).
 * `cb` (may be NULL) runs later, once, with 0, a negative errno or
 * -ECANCELED. Errors found at once (-ENOENT, -ECONNREFUSED, ...) are
 * returned, the handle is back to its initial state and `cb` never runs.
 * Returns 0; -EINVAL (NULL req or p, bad name, a handle with an fd). */
WEFT_API int weft_pipe_connect(weft_connect_req *req, weft_pipe *p,
                               const char *name, size_t len,
                               weft_connect_cb cb);

/** Connect, future form, shaped like weft_tcp_connect_future(): returns 0
 * and stores in *out a new future (the caller holds one reference) that
 * fulfils with 0 when connected or rejects with the connect error.
 * Cancelling the future while the connect is in progress aborts it: the
 * socket closes and the handle is back to its initial state; a connect
 * that already completed (a Unix connect to a listener with room in its
 * backlog completes at once) stays connected. Errors as weft_pipe_connect()
 * (then no future is made), plus -EINVAL for NULL out and -ENOMEM. */
WEFT_API int weft_pipe_connect_future(weft_pipe *p, const char *name,
                                      size_t len, weft_future **out);

/** The bound name into `buf` (`*len` in: its size; out: the name's
 * length, which for an abstract name counts its leading NUL). Adds a
 * terminating NUL when room is left. Returns 0; -EINVAL (NULL, not a
 * socket); -ENOBUFS if `buf` is too small. */
WEFT_API int weft_pipe_getsockname(const weft_pipe *p, char *buf, size_t *len);

/** The peer's name, like weft_pipe_getsockname(). */
WEFT_API int weft_pipe_getpeername(const weft_pipe *p, char *buf, size_t *len);

/** Makes a connected pair: `a` and `b` (initialised, unused handles of
 * `loop`) become the two ends of a Unix stream socketpair; each reads what
 * the other writes, and each end can half-close. Returns 0; -EINVAL;
 * -EMFILE and other kernel errors (then neither handle changed). */
WEFT_API int weft_pipe_pair(weft_loop *loop, weft_pipe *a, weft_pipe *b);

/* ---- passing fds (SCM_RIGHTS) and peer credentials ------------------------
 *
 * Over a Unix stream socket (a pipe made by weft_pipe_pair, connect,
 * accept, or weft_pipe_open of an AF_UNIX stream socket), a write may carry
 * fds. They travel with the first byte of the write's data: the sendmsg
 * that puts that byte on the wire carries every fd of the write, in one
 * control message (never split), and a partial write sends the rest of
 * the bytes without fds.
 *
 * Ownership on the sending side: the caller's fds stay the caller's;
 * close them when you like, even as soon as weft_pipe_write_fds() returns.
 * When the pipe's write queue is empty and the write has at most 4
 * buffers, the call sends at once and its sendmsg carries the caller's
 * fds themselves: if the kernel takes a byte the peer holds its own
 * references before the call returns, and nothing is dup'd (so it works
 * with no fd free). Otherwise (writes queued before it, the socket full,
 * more buffers) the fds are dup'd (close-on-exec) during the call; weft
 * closes its dups once the kernel took them, or when the write ends
 * without sending them (cancelled, failed, the handle closed): none leak.
 *
 * Receiving, shaped like libuv's uv_pipe_pending_count: every read of a
 * pipe's socket (read_start's callback and the read futures alike) takes
 * the fds that came with the bytes it read and queues them on the pipe,
 * in the order they were sent, close-on-exec. They are in the queue by
 * the time a read delivers the first byte sent with them; they may be
 * there earlier, since weft may read ahead of what it delivered (the
 * read-back buffer, a large read buffer), so a protocol should say in its
 * data how many fds a message carries and take that many. Take them with
 * weft_pipe_take_fds() (they are then yours to close); those still queued
 * when the handle closes are closed. A control message truncated by the
 * kernel (the peer sent more than WEFT_PIPE_FDS_MAX fds in one message,
 * or the process ran out of fds, RLIMIT_NOFILE, as the kernel installed
 * them) fails the read with -ENOBUFS, and if the queue cannot grow the read
 * fails with -ENOMEM: the fds of that read are closed and its bytes are
 * lost (the byte stream is then broken: close the connection). The kernel
 * ends each receive at a message that carries fds; weft does not take that
 * short read for an empty socket and reads on, up to 64 such messages per
 * readiness, so a run of fd messages costs one wake-up per 64 (the
 * per-turn byte cap, WEFT_STREAM_READ_CAP, still applies). Reads of a
 * pipe on anything but a socket are unchanged. */

/** Most fds one write carries, and the most one read takes in. */
#define WEFT_PIPE_FDS_MAX 64u

/** Writes `nbufs` buffers like weft_stream_write(), carrying `nfds` fds
 * (1..WEFT_PIPE_FDS_MAX) with their first byte (see above; sent or dup'd
 * before it returns, yours stay yours). Keep the buffers and `req` alive until
 * `cb` (may be NULL) runs, later, exactly once: 0 once every byte (and so
 * every fd) is handed to the kernel, a negative errno, or -ECANCELED (the
 * handle closed; unsent fds are closed). Returns 0 if accepted; -EINVAL
 * for NULL req, p, bufs or fds, nbufs 0, buffers holding no byte at all
 * (fds ride on a byte), nfds 0 or above WEFT_PIPE_FDS_MAX, a handle that is
 * not a pipe, closing or listening; -ENOTCONN, -EPIPE as
 * weft_stream_write(); -ENOTSUP if the pipe is not a Unix-domain socket
 * (a pipe(2) end, a tty); -EBADF if an fd is not open; -EMFILE if one had
 * to be dup'd (see above) and could not be; -ENOMEM. Then nothing was written
 * and no fd is held. */
WEFT_API int weft_pipe_write_fds(weft_write_req *req, weft_pipe *p,
                                 const weft_buf *bufs, unsigned nbufs,
                                 const int *fds, unsigned nfds,
                                 weft_write_cb cb);

/** Fd write, future form: like weft_pipe_write_fds() without a request.
 * Stores in *out a future (the caller holds one reference) that fulfils
 * with the number of bytes written (an int64) or rejects with the write
 * error or -ECANCELED. Cancelling the future takes a write with no byte on
 * the wire out of the queue and closes its dups (no fd is sent); a partly
 * written one (its fds already sent) finishes. Errors as
 * weft_pipe_write_fds(), plus -EINVAL for NULL out. */
WEFT_API int weft_pipe_write_fds_future(weft_pipe *p, const weft_buf *bufs,
                                        unsigned nbufs, const int *fds,
                                        unsigned nfds, weft_future **out);

/** How many received fds wait in the pipe's queue (0 for NULL or a handle
 * that is not a pipe). */
WEFT_API size_t weft_pipe_get_pending_fds(const weft_pipe *p);

/** Takes up to `cap` received fds, oldest first, into `fds`; they are the
 * caller's now (close-on-exec, blocking as sent). Returns how many were
 * taken (0 if none wait); -EINVAL for NULL, a handle that is not a pipe,
 * `cap` 0 or above INT_MAX. */
WEFT_API int weft_pipe_take_fds(weft_pipe *p, int *fds, size_t cap);

/** The credentials of the peer process of a connected Unix socket, as the
 * kernel recorded them at connect or socketpair time (SO_PEERCRED). Each
 * of `pid`, `uid`, `gid` may be NULL. Returns 0; -EINVAL for NULL p, a
 * handle that is not a pipe or is closing; -ENOTCONN without a connected
 * socket (no fd, a listener); -ENOTSUP for a pipe that is not a socket. */
WEFT_API int weft_pipe_getpeercred(const weft_pipe *p, pid_t *pid, uid_t *uid,
                                   gid_t *gid);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_PIPE_H */
