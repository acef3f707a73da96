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

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A pipe handle; embed it anywhere. Use `stream` with the stream calls
 * and `stream.base` with weft_close(). */
typedef struct weft_pipe {
  weft_stream stream;
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

#ifdef __cplusplus
}
#endif
#endif /* WEFT_PIPE_H */
