/* weft — streams: one mechanism for TCP, Unix sockets, pipes and any fd.
 *
 * A stream reads into buffers the caller chooses (an alloc callback) or
 * into a loop-provided 64 KiB buffer (no allocation per read), writes
 * without copying user data (the caller keeps buffers alive until the write
 * callback), tries every write at once and queues only what the kernel did
 * not take, and half-closes after queued writes drain. End of file is its
 * own code, WEFT_EOF, given to the read callback.
 *
 * Completions never run inline: a write the kernel took at once still
 * completes later, from the loop. Closing a stream fails its queued writes,
 * pending connect and shutdown with -ECANCELED before the close callback.
 *
 * Fairness: per turn, a stream reads at most WEFT_STREAM_READ_CAP bytes and
 * writes at most WEFT_STREAM_WRITE_CAP bytes before yielding to the rest of
 * the loop, so one busy peer cannot starve the others.
 *
 * SIGPIPE: sockets are written with MSG_NOSIGNAL. For other fds (pipes),
 * the first weft_pipe_open() sets SIGPIPE to SIG_IGN if, and only if, its
 * disposition is still the default (which would kill the process); a
 * handler the program installed is left alone. Writes then fail with
 * -EPIPE. Loop thread only. */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_future weft_future;

/** Bytes a stream reads per loop turn before yielding (fairness cap). */
#define WEFT_STREAM_READ_CAP (1u << 20)
/** Bytes a stream writes per loop turn before yielding (fairness cap). */
#define WEFT_STREAM_WRITE_CAP (1u << 20)
/** Size of the loop-provided read buffer. */
#define WEFT_STREAM_SLAB_SIZE (64u * 1024u)

/** A buffer: `base` and `len`, laid out like struct iovec. */
typedef struct weft_buf {
  char *base;
  size_t len;
} weft_buf;

/** Makes a weft_buf. */
static inline weft_buf weft_buf_init(void *base, size_t len) {
  weft_buf b = {(char *)base, len};
  return b;
}

typedef struct weft_stream weft_stream;
typedef struct weft_write_req weft_write_req;
typedef struct weft_connect_req weft_connect_req;
typedef struct weft_shutdown_req weft_shutdown_req;

/** Asked for a buffer before each read: fill `*buf` (suggested size is a
 * hint). A zero-length buffer makes the read callback get -ENOBUFS. */
typedef void (*weft_alloc_cb)(weft_stream *s, size_t suggested, weft_buf *buf);

/** Data arrived: `nread` > 0 bytes are at buf->base. `nread` < 0 is an
 * error: WEFT_EOF at end of file, else a negative errno (-ECONNRESET, ...);
 * reading has then stopped. `nread` == 0 means nothing was read (the
 * kernel had no data): it only hands back a buffer from the alloc
 * callback. `buf` is the buffer the alloc callback gave (yours to free,
 * also on errors), or the loop's buffer (valid during the callback only). */
typedef void (*weft_read_cb)(weft_stream *s, ssize_t nread,
                             const weft_buf *buf);

/** A write finished: `status` 0 (every byte handed to the kernel), a
 * negative errno (-EPIPE, -ECONNRESET, ...), or -ECANCELED (close). */
typedef void (*weft_write_cb)(weft_write_req *req, int status);

/** A connect finished: 0, a negative errno, or -ECANCELED. */
typedef void (*weft_connect_cb)(weft_connect_req *req, int status);

/** A shutdown (half-close) finished: 0, a negative errno, or -ECANCELED. */
typedef void (*weft_shutdown_cb)(weft_shutdown_req *req, int status);

/** A listening stream has a connection to accept (status 0; call
 * weft_stream_accept()) or an accept error (negative status). */
typedef void (*weft_connection_cb)(weft_stream *server, int status);

/** Which watermark was crossed. */
typedef enum weft_watermark {
  WEFT_WATERMARK_HIGH = 1, /**< queue grew above high: pause producing */
  WEFT_WATERMARK_LOW = 2   /**< queue drained to low or below: resume */
} weft_watermark;

/** Told when the write queue crosses a watermark. */
typedef void (*weft_watermark_cb)(weft_stream *s, weft_watermark which);

#define WEFT__WRITE_INLINE_BUFS 4

/* Private: the part of a write, connect or UDP send request that the io
 * layer's request FIFO works on (docs/internals.md, "io requests"). */
typedef struct weft__req_hdr {
  struct {
    void *p_[2];
  } link;              /* on a handle's queue or done list, or in a pool */
  weft_future *future; /* the future form's future, else NULL */
  size_t bytes;        /* what a write/send future resolves with */
  int status;          /* the result once complete (1: bytes on the wire) */
  unsigned flags;
} weft__req_hdr;

/** A write request; embed it anywhere. Keep it and the buffers alive until
 * its callback runs. `data` is yours; the rest is private. */
struct weft_write_req {
  void *data;
  /* private */
  weft__req_hdr req;
  weft_stream *stream;
  weft_write_cb cb;
  weft_buf *bufs;
  unsigned nbufs, idx;
  weft_buf inline_bufs[WEFT__WRITE_INLINE_BUFS];
};

/** A connect request; embed it anywhere. `data` is yours. */
struct weft_connect_req {
  void *data;
  /* private */
  weft__req_hdr req;
  weft_stream *stream;
  weft_connect_cb cb;
};

typedef struct weft_sendfile_req weft_sendfile_req;
/** Called once when a weft_stream_sendfile() has sent all its bytes (0) or
 * failed (a negative errno, WEFT_EOF if the file ended first, -ECANCELED
 * if the stream closed before it was sent). */
typedef void (*weft_sendfile_cb)(weft_sendfile_req *req, int status);

/** A file-to-stream request (weft_stream_sendfile); embed it anywhere and
 * keep it alive until its callback runs. `data` is yours; the rest is
 * private. */
struct weft_sendfile_req {
  void *data;
  /* private */
  weft_write_req write; /* its place in the stream's write queue */
  weft_sendfile_cb cb;
  int fd;
  int64_t offset;
  size_t left;
};

/** A shutdown request; embed it anywhere. `data` is yours. */
struct weft_shutdown_req {
  void *data;
  /* private */
  weft_stream *stream;
  weft_shutdown_cb cb;
  int status;
};

/** The stream part of weft_tcp and weft_pipe (never used alone). All
 * fields after `base` are private. */
struct weft_stream {
  weft_handle base;
  /* private */
  struct {
    void *p_[2];
  } pend; /* the loop's list of streams with completions to deliver */
  union {
    void *p_[6];
    uint64_t u_[6];
  } io; /* struct ev_io */
  union {
    struct {
      weft_alloc_cb alloc_cb;
      weft_read_cb read_cb;
    } r; /* weft_stream_read_start */
    struct {
      struct {
        void *p_[2];
      } rq; /* pending read or accept futures (weft__list) */
    } q;
  } u;
  struct {
    void *p_[2];
  } wq; /* writes not yet fully written (weft__list) */
  struct {
    void *p_[2];
  } done; /* writes written, callback not yet run */
  size_t wq_size;
  union {
    struct {
      void *wm; /* weft_stream_set_watermarks' levels and callback, or NULL */
      void *rb; /* bytes read from the fd, not yet delivered */
    } c;        /* a connection's (or a stream's before it listens) */
    struct {
      weft_connection_cb connection_cb;
      int accepted_fd; /* accepted, not yet taken by weft_stream_accept */
    } l;               /* a listener's, from weft_*_listen on */
  } x;
  weft_connect_req *connect_req;
  weft_shutdown_req *shutdown_req;
  unsigned flags;
};

/** Starts reading: `read_cb` runs for each chunk of data, at EOF and on
 * errors. `alloc_cb` NULL uses the loop's buffer (valid only during
 * `read_cb`). Restarting replaces the callbacks. Returns 0; -EINVAL for
 * NULL, a closing or listening stream; -ENOTCONN if the stream has no
 * connection yet; -ENOMEM if the loop's buffer could not be made. */
WEFT_API int weft_stream_read_start(weft_stream *s, weft_alloc_cb alloc_cb,
                                    weft_read_cb read_cb);

/** Stops reading (no callback). Idempotent. Returns 0 or -EINVAL. */
WEFT_API int weft_stream_read_stop(weft_stream *s);

/** True while the stream reads. */
WEFT_API bool weft_stream_is_reading(const weft_stream *s);

/** Writes `nbufs` buffers in order. Tries at once and queues only what the
 * kernel did not take; the buffers are not copied, so keep them (and
 * `req`) alive until `cb` (may be NULL) runs, later, exactly once with 0,
 * a negative errno or -ECANCELED. Writes issued while a connect is pending
 * start once it succeeds. Returns 0 if accepted; -EINVAL for NULL
 * arguments, nbufs 0, a closing or listening stream; -ENOTCONN without a
 * connection; -EPIPE after a shutdown; -ENOMEM (the array of more than
 * 4 buffers could not be copied, or the loop's delivery queue could not
 * grow): then nothing was written. If the queue grows above the high
 * watermark, the watermark callback runs before this returns. */
WEFT_API int weft_stream_write(weft_write_req *req, weft_stream *s,
                               const weft_buf *bufs, unsigned nbufs,
                               weft_write_cb cb);

/** Write, future form: like weft_stream_write() without a request (weft
 * draws one from a per-loop free list). Stores in *out a future (the
 * caller holds one reference) that fulfils with the number of bytes
 * written (an int64) or rejects with the write error or -ECANCELED.
 * Cancelling the future takes a write that has no byte on the wire yet out
 * of the queue; a partly written one finishes, to keep the byte stream
 * whole. Errors as weft_stream_write(), plus -EINVAL for NULL out. */
WEFT_API int weft_stream_write_future(weft_stream *s, const weft_buf *bufs,
                                      unsigned nbufs, weft_future **out);

/** Sends `len` bytes of the file `file_fd`, from `offset`, on the stream
 * with sendfile(2): no copy through user space. The request is queued
 * with the stream's writes and sent in order with them, and follows their
 * rules: tried at once, the rest sent when the stream is writable (within
 * the same per-turn fairness cap), counted in the write queue size and its
 * watermarks; `cb` (may be NULL) runs later, exactly once: 0 once every
 * byte is sent, a negative errno, WEFT_EOF if the file ended before `len`
 * bytes, or -ECANCELED if the stream was closed first (bytes already sent
 * stay sent). `offset` is the request's own (the file's offset is left
 * alone), so one fd may serve several requests. The fd is not closed.
 * The first call ignores SIGPIPE as weft_pipe_open() does (sendfile(2)
 * cannot be told MSG_NOSIGNAL). Returns 0 if accepted; -EINVAL for NULL
 * req or stream, `len` 0, a negative offset, a closing or listening
 * stream; -EBADF if `file_fd` is not open; then the same errors as
 * weft_stream_write() (-ENOTCONN, -EPIPE, -ENOMEM), nothing sent. */
WEFT_API int weft_stream_sendfile(weft_sendfile_req *req, weft_stream *s,
                                  int file_fd, int64_t offset, size_t len,
                                  weft_sendfile_cb cb);

/** Sendfile, future form: like weft_stream_sendfile() without a request.
 * Stores in *out a future (the caller holds one reference) that fulfils
 * with `len` (an int64) or rejects with the request's error. Cancelling
 * the future takes a request with no byte sent yet out of the queue; one
 * partly sent finishes. Errors as weft_stream_sendfile(), plus -EINVAL
 * for NULL out and -ENOMEM. */
WEFT_API int weft_stream_sendfile_future(weft_stream *s, int file_fd,
                                         int64_t offset, size_t len,
                                         weft_future **out);

/** Bytes accepted by weft_stream_write() but not yet handed to the kernel
 * (0 for NULL). */
WEFT_API size_t weft_stream_write_queue_size(const weft_stream *s);

/** Sets watermarks on the write-queue size: `cb` gets WEFT_WATERMARK_HIGH
 * (from inside weft_stream_write()) when the queue grows above `high`,
 * and later WEFT_WATERMARK_LOW (from the loop) once it drains to `low` or
 * below. `cb` NULL removes them. Their state is made by the first call
 * and freed when they are removed or the stream closes; a listen drops
 * them (a listener writes nothing). Returns 0; -EINVAL for a NULL,
 * closing or listening stream, low > high, or a value above UINT32_MAX;
 * -ENOMEM if the state could not be made (nothing changed). */
WEFT_API int weft_stream_set_watermarks(weft_stream *s, size_t high, size_t low,
                                        weft_watermark_cb cb);

/** Half-closes: once every queued write is written, the write side is shut
 * (the peer reads EOF); reading goes on. `cb` (may be NULL) runs later,
 * once, with 0, a negative errno, or -ECANCELED. Later writes fail with
 * -EPIPE. Returns 0; -EINVAL for NULL or a closing stream; -ENOTCONN;
 * -EALREADY if a shutdown was already requested. For a non-socket fd the
 * shutdown closes a write-only fd (a pipe's write end); any other fd gives
 * -ENOTSOCK. */
WEFT_API int weft_stream_shutdown(weft_shutdown_req *req, weft_stream *s,
                                  weft_shutdown_cb cb);

/** Accepts a pending connection of `server` (call from its connection
 * callback) into `client`, an initialised, unused handle of the same kind
 * (weft_tcp for TCP, weft_pipe for Unix sockets). Returns 0; -EINVAL for
 * NULL, mismatched kinds or a used client; -EAGAIN if none is pending. */
WEFT_API int weft_stream_accept(weft_stream *server, weft_stream *client);

/** The stream's fd, or -EBADF if it has none (-EINVAL for NULL). */
WEFT_API int weft_stream_fileno(const weft_stream *s);

/** True if a write could be queued (connected and not shut down). */
WEFT_API bool weft_stream_is_writable(const weft_stream *s);

/* ---- future forms of reading, accepting and shutting down ----------------
 *
 * The read futures read into the caller's buffer (keep it alive until the
 * future settles), straight from the fd: no copy through a weft buffer.
 * Several may be pending on one stream: they are served in the order they
 * were started (FIFO), each taking bytes after the previous one's. They
 * settle from the loop, never inside the call that starts them.
 *
 * Read-back buffer: bytes weft took from the fd but did not deliver (read
 * past a delimiter, or held by a read that was cancelled, hit EOF, an
 * error or the read_until limit) stay in the stream, in order, and the next
 * read of any kind (a read future or weft_stream_read_start's callback)
 * gets them first; weft_stream_read_buffered() counts them. Its memory is
 * allocated on first need, as large as the largest `n` or `cap` of a
 * read_exact or read_until, and kept until the stream closes, so steady
 * reading allocates nothing.
 *
 * With read_start: the two exclude each other. A read future is refused
 * with -EBUSY while weft_stream_is_reading(); weft_stream_read_start() is
 * refused with -EBUSY while a read future is pending. After
 * weft_stream_read_stop() (or once the futures settled) the other form may
 * start, and it sees every byte the first did not deliver.
 *
 * Cancelling a read future (weft_future_cancel, a timeout combinator)
 * consumes nothing: the bytes it had gathered go back to the read-back
 * buffer and the next read gets them; the stream stays usable. Closing the
 * stream rejects every pending read or accept future with -ECANCELED
 * before the close callback. A failed connect rejects the pending reads
 * with the connect's error. Loop thread only. */

/** Longest delimiter weft_stream_read_until_future() takes (it is copied). */
#define WEFT_STREAM_DELIM_MAX 32u

/** Reads at most `n` bytes into `buf`, as soon as any are there (read(2),
 * asyncio's read(n)). Stores in *out a future (the caller holds one
 * reference) that fulfils with the byte count (an int64, 1..n), with 0 at
 * end of file, or rejects with a read error (-ECONNRESET, ...) or
 * -ECANCELED (close). Returns 0; -EINVAL for NULL s, buf or out, `n` 0, a
 * handle that is not a stream, a closing or listening stream; -ENOTCONN
 * without a connection (connecting is fine: the read waits for it);
 * -EBUSY while read_start is active; -ENOMEM. */
WEFT_API int weft_stream_read_some_future(weft_stream *s, void *buf, size_t n,
                                          weft_future **out);

/** Reads exactly `n` bytes into `buf` (asyncio's readexactly). The future
 * fulfils with `n` once they are all in `buf`; end of file first rejects it
 * with WEFT_EOF, and the bytes it had gathered stay in the read-back
 * buffer (weft_stream_read_buffered() counts them; the next read gets
 * them), as they do on an error or a cancel. Errors as
 * weft_stream_read_some_future(), plus -ENOMEM if the read-back buffer
 * could not grow to `n` bytes. */
WEFT_API int weft_stream_read_exact_future(weft_stream *s, void *buf, size_t n,
                                           weft_future **out);

/** Reads up to and including the delimiter `delim` (`delim_len` bytes,
 * 1..WEFT_STREAM_DELIM_MAX, copied) into `buf`, at most `cap` bytes
 * (asyncio's readuntil; "\n" makes a readline). The future fulfils with
 * the length through the delimiter's last byte; what follows it stays in
 * the read-back buffer for the next read (bytes of `buf` past that length
 * may have been written: the fd is read straight into `buf`). If `cap`
 * bytes hold no delimiter the future rejects with -EMSGSIZE (asyncio's
 * LimitOverrunError) and end of file before the delimiter rejects it with
 * WEFT_EOF: in both cases every byte stays readable, by the next read of any
 * kind. Errors as weft_stream_read_exact_future() (`cap` for `n`), plus -EINVAL
 * for NULL delim, `delim_len` 0 or above WEFT_STREAM_DELIM_MAX, or `cap` <
 * `delim_len`. */
WEFT_API int weft_stream_read_until_future(weft_stream *s, void *buf,
                                           size_t cap, const void *delim,
                                           size_t delim_len, weft_future **out);

/** Bytes kept in the stream's read-back buffer for the next read (0 for
 * NULL or a stream without any). */
WEFT_API size_t weft_stream_read_buffered(const weft_stream *s);

/** Accept, future form: the future fulfils with 0 once a connection of the
 * listener `server` was accepted into `client` (an initialised, unused
 * handle of the same kind, which must stay open until the future settles),
 * or rejects with an accept error (not EMFILE/ENFILE, which pause the
 * listener as for callbacks), or -ECANCELED when `server` closes. Several
 * may be pending: connections go to them in the order they were started,
 * before the listener's connection callback sees any (a listener made with
 * a NULL callback takes connections only through these futures, and asks
 * the kernel for none while no future is pending: they wait in the
 * backlog). A connection the callback left unaccepted goes to the next
 * accept future. Cancelling the future leaves the connection to the next
 * one. If `client` was closed or given an fd meanwhile, the future rejects
 * with -EINVAL and the connection goes to the next. Returns 0; -EINVAL for
 * NULL, a server that is not listening, a client of another kind, with an
 * fd, closing, or already the client of a pending accept future; -ENOMEM. */
WEFT_API int weft_stream_accept_future(weft_stream *server, weft_stream *client,
                                       weft_future **out);

/** Shutdown, future form: like weft_stream_shutdown() without a request.
 * The future fulfils with 0 once the write side is shut, or rejects with
 * its error or -ECANCELED (close). Cancelling it before the half-close was
 * done (queued writes still draining) withdraws the shutdown: the stream
 * keeps its write side and may be shut down again; once done, the cancel
 * changes nothing. Errors as weft_stream_shutdown(), plus -EINVAL for NULL
 * out and a handle that is not a stream, and -ENOMEM. */
WEFT_API int weft_stream_shutdown_future(weft_stream *s, weft_future **out);

/** Detaches the stream's fd from its handle, to hand the connection to
 * another loop (weft_tcp_open, weft_pipe_open there) or process (fd
 * passing): the handle closes as weft_close(&s->base, cb) closes it (its
 * pending writes, connect, shutdown and futures fail with -ECANCELED, a
 * connection waiting for weft_stream_accept is closed, `cb` may be NULL
 * and runs in the close phase), but the fd is not closed: it is stored in
 * *fd and is the caller's, still non-blocking. Bytes the kernel holds
 * stay in the socket for the fd's next reader; bytes weft already read
 * from the fd but did not deliver cannot follow it, so a stream that holds
 * any (weft_stream_read_buffered() > 0), or a pipe with received fds not
 * taken (weft_pipe_get_pending_fds() > 0), is refused with -EBUSY and stays
 * as it was: read or take them first. Bytes of a write that was partly
 * written when it is cancelled stay on the wire, the rest is not sent.
 * Returns 0; -EINVAL for NULL s or fd, a handle that is not a stream or
 * is closing; -EBADF if it has no fd; -EBUSY. */
WEFT_API int weft_stream_detach(weft_stream *s, int *fd, weft_close_cb cb);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_STREAM_H */
