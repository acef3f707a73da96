/* weft — what the stream, TCP, pipe and UDP files share. Never installed. */
#ifndef WEFT_IO_INTERNAL_H
#define WEFT_IO_INTERNAL_H

#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"
#include "weft/future.h"
#include "weft/pipe.h"
#include "weft/stream.h"
#include "weft/tcp.h"
#include "weft/udp.h"

/* Stream flags (weft_stream.flags). */
enum {
  WEFT__S_READING = 1u << 0,
  WEFT__S_LISTENING = 1u << 1,
  WEFT__S_CONNECTING = 1u << 2,
  WEFT__S_CONNECTED = 1u << 3,   /* reads and writes allowed */
  WEFT__S_SHUT_REQ = 1u << 4,    /* shutdown requested: no more writes */
  WEFT__S_SHUT_DONE = 1u << 5,   /* shutdown performed, callback pending */
  WEFT__S_SOCKET = 1u << 6,      /* use send/recv with MSG_NOSIGNAL */
  WEFT__S_WM_ABOVE = 1u << 7,    /* told the producer to pause */
  WEFT__S_ACCEPT_WAIT = 1u << 8, /* a connection waits for weft_stream_accept */
  WEFT__S_ACCEPT_PAUSED = 1u << 9, /* accept hit EMFILE: retrying on a timer */
  WEFT__S_CONNECT_DONE = 1u << 10, /* connect settled, callback pending */
  WEFT__S_OWN_SOCKET = 1u << 11,   /* socket created by this call (for undo) */
  WEFT__S_RQ = 1u << 12, /* u.q.rq is a live list (read futures, listener) */
  /* the last recvmsg stopped at a message carrying fds (the kernel returns
   * one such message per call): a short read does not mean drained */
  WEFT__S_FDS_CUT = 1u << 13,
  /* weft_stream.x holds the listener's fields (x.l), from the listen on;
   * never cleared, unlike WEFT__S_LISTENING, which a close clears */
  WEFT__S_X_LISTENER = 1u << 14,
};

/* weft_stream_set_watermarks' state (weft_stream.x.c.wm), made on its first
 * call. */
typedef struct weft__wm {
  uint32_t high, low;
  weft_watermark_cb cb;
} weft__wm;

/* A connection's watermarks and read-back buffer (NULL for a listener,
 * whose weft_stream.x holds its own fields). */
static inline weft__wm *weft__stream_wm(const weft_stream *s) {
  return (s->flags & WEFT__S_X_LISTENER) ? NULL : (weft__wm *)s->x.c.wm;
}
static inline void *weft__stream_rb(const weft_stream *s) {
  return (s->flags & WEFT__S_X_LISTENER) ? NULL : s->x.c.rb;
}

/* Reads a stream goes on with past short reads that stopped at a message
 * carrying fds, per readiness (on top of WEFT_STREAM_READ_CAP's bytes):
 * a batch of fd messages costs one wake-up, not one each, and a flood of
 * them still yields to the rest of the loop. */
#define WEFT__STREAM_FDS_READS 64u

/* How often a listener paused by EMFILE tries again (ms). */
#define WEFT__ACCEPT_RETRY_MS 20u

/* ---- io requests: one FIFO for every io handle type -------------------------
 *
 * Writes, connects and UDP sends start with a weft__req_hdr (right after
 * the user's `data`). A handle keeps a queue of requests waiting for the
 * kernel and a done list of requests whose completion is to run; the
 * handle's `deliver` op runs them (weft__reqq_deliver), its `finish` op
 * fails the queued ones and runs all (weft__reqq_cancel_all, _flush).
 * Future forms draw their requests from a per-loop pool (no allocation in
 * steady state) and settle through weft__req_settle. docs/internals.md,
 * "io requests". */
enum {
  WEFT__REQ_QUEUED = 1u << 0, /* on its handle's queue */
  WEFT__REQ_FILE = 1u << 1,   /* a write that is a weft_sendfile_req's */
  WEFT__REQ_FDS = 1u << 2,    /* a write carrying fds (io/pipe_fds.c) */
};

_Static_assert(sizeof(((weft__req_hdr *)0)->link) == sizeof(weft__list),
               "request link storage");
_Static_assert(offsetof(weft_write_req, req) == sizeof(void *) &&
                   offsetof(weft_connect_req, req) == sizeof(void *) &&
                   offsetof(weft_udp_send_req, req) == sizeof(void *),
               "the request header follows `data` in every io request");

static inline weft__list *weft__req_link(weft__req_hdr *r) {
  return (weft__list *)(void *)&r->link;
}
static inline weft__req_hdr *weft__req_of(weft__list *n) {
  return WEFT__CONTAINER_OF((void *)n, weft__req_hdr, link);
}
/* The request (a weft_write_req, ...) whose header is `r`. */
static inline void *weft__req_outer(weft__req_hdr *r) {
  return (char *)r - sizeof(void *);
}
/* A queue or done list kept in a handle's `struct { void *p_[2]; }`. */
#define WEFT__REQQ(storage) ((weft__list *)(void *)&(storage))

/* Resets a request's header for a new start (user requests hold garbage). */
static inline void weft__req_init(weft__req_hdr *r) {
  weft__list_init(weft__req_link(r));
  r->status = 0;
  r->flags = 0;
}
/* Appends `r` to `q`, the handle's queue of requests waiting for the kernel. */
static inline void weft__reqq_push(weft__list *q, weft__req_hdr *r) {
  weft__list_insert(q, weft__req_link(r));
  r->flags |= WEFT__REQ_QUEUED;
}
/* The oldest queued request, or NULL. */
static inline weft__req_hdr *weft__reqq_front(const weft__list *q) {
  weft__list *n = weft__list_front(q);
  return n ? weft__req_of(n) : NULL;
}
/* `r` (queued or not) completed with `status`: to the back of `done`. */
static inline void weft__reqq_complete(weft__list *done, weft__req_hdr *r,
                                       int status) {
  weft__list *n = weft__req_link(r);
  if (weft__list_linked(n)) weft__list_unlink(n);
  r->flags &= ~(unsigned)WEFT__REQ_QUEUED;
  r->status = status;
  weft__list_insert(done, n);
}
/* Takes a queued request out of its queue (a cancelled future); false if
 * it is not queued (already in `done`). */
static inline bool weft__reqq_cancel(weft__req_hdr *r) {
  if (!(r->flags & WEFT__REQ_QUEUED)) return false;
  weft__list_unlink(weft__req_link(r));
  r->flags &= ~(unsigned)WEFT__REQ_QUEUED;
  return true;
}
/* Runs one completed request's completion: its callback or its future. */
typedef void (*weft__req_run_fn)(weft__req_hdr *r);
/* Every queued request completes with `status`, in order. */
void weft__reqq_cancel_all(weft__list *q, weft__list *done, int status);
/* Runs the done list in order, stopping if a completion closes `h` (its
 * finish op then runs the rest); `update` runs before the completion that
 * empties the list (the handle's watcher and active state follow the
 * lists: until then the handle is busy with the rest). */
void weft__reqq_deliver(weft_handle *h, weft__list *done,
                        void (*update)(weft_handle *h), weft__req_run_fn run);
/* Runs the whole done list (the close phase). */
void weft__reqq_flush(weft__list *done, weft__req_run_fn run);

/* A per-loop pool of one kind of request, for the future forms. */
typedef struct weft__req_pool {
  weft__list free;
  size_t size;    /* sizeof the request */
  const char *op; /* what makes its futures (weft_future_new_op) */
} weft__req_pool;
/* A request's future form: draws a request from `pool` and makes its
 * future, which records pool->op (weft_future_new_op). The header is
 * reset, `future` set. -ENOMEM if out of memory. */
int weft__req_future_new(weft_loop *loop, weft__req_pool *pool,
                         weft__req_hdr **out);
/* The same, with the op given (pools shared by several operations). */
int weft__req_future_new_op(weft_loop *loop, weft__req_pool *pool,
                            const char *op, weft__req_hdr **out);
/* Undoes weft__req_future_new() after a failed start. */
void weft__req_future_undo(weft__req_pool *pool, weft__req_hdr *r);
/* Settles the request's future (resolved with `bytes` if `status` is 0,
 * rejected otherwise), drops the request's reference and returns the
 * request to `pool`. */
void weft__req_settle(weft__req_pool *pool, weft__req_hdr *r, int status);

/* The loop's net state (module slot WEFT__MOD_NET). */
typedef struct weft__net {
  weft_loop *loop;
  char *slab;           /* the loop-provided read buffer */
  weft__list pending;   /* handles with completions to deliver */
  bool scheduled;       /* a delivery run is queued with call_soon */
  unsigned in_io;       /* inside a stream/UDP I/O callback */
  weft__req_pool wreqs; /* requests of the future forms */
  weft__req_pool creqs;
  weft__req_pool sreqs;
  weft__req_pool rdreqs;   /* weft__rd_req: read, accept, shutdown futures */
  weft__list paused;       /* listeners paused by EMFILE */
  weft_timer accept_timer; /* retries paused listeners (internal, unref'd) */
  /* The per-turn write cap (weft/stream.h) of the stream that wrote last:
   * compared, never dereferenced. */
  const weft_stream *w_stream;
  uint64_t w_turn;
  size_t w_bytes;
} weft__net;

/* The state of `loop`, created on first use; NULL if out of memory. */
weft__net *weft__net_get(weft_loop *loop);

/* Checks the loop's request pools (for tests, like weft__timers_validate):
 * every free request is unqueued and holds no future, and each free list
 * ends. Returns 0 and the number of free requests in *nfree (may be NULL),
 * or -EINVAL naming nothing more: a test asserts 0. A loop that never used
 * io has empty pools. */
int weft__req_pools_validate(weft_loop *loop, size_t *nfree);

/* Ignores SIGPIPE once per process unless the program set a disposition
 * (pipes and sendfile cannot use MSG_NOSIGNAL); io/stream_sendfile.c. */
void weft__sigpipe_ignore_once(void);

/* Makes sure a delivery run is queued: call before accepting an operation
 * that may complete synchronously, so that its completion can always be
 * delivered later (no -ENOMEM after the fact). */
int weft__net_reserve(weft__net *net);

/* Brackets an I/O callback. Completions scheduled inside it are delivered
 * when it ends (the start calls have returned by then), without a
 * deferred run: the ping-pong fast path. */
static inline void weft__net_io_enter(weft__net *net) {
  net->in_io++;
  net->loop->m.io_events++; /* metrics (weft_loop_get_metrics) */
}
void weft__net_io_leave(weft__net *net);

/* Queues `h` (a stream or UDP handle) for delivery of its completions in
 * the run reserved with weft__net_reserve(). */
void weft__net_schedule(weft__net *net, weft_handle *h);

/* The pending-list node sits right after the handle base in every stream
 * and UDP handle. */
static inline weft__list *weft__pend_node(weft_handle *h) {
  return (weft__list *)(void *)((char *)h + sizeof(weft_handle));
}
static inline weft_handle *weft__pend_handle(weft__list *n) {
  return (weft_handle *)(void *)((char *)n - sizeof(weft_handle));
}

/* A stream's fd (-1 if none). */
static inline int weft__stream_fd(const weft_stream *s) {
  const void *storage = &s->io;
  const ev_io *w = storage;
  return w->fd;
}

/* Fd passing (io/pipe_fds.c). A fd write's sendmsg of `n` buffers from
 * req->idx, with its unsent fds attached (closed once sent); req_write's
 * call for WEFT__REQ_FDS writes. */
ssize_t weft__pipe_sendmsg(weft_stream *s, weft_write_req *req, unsigned n);
/* Closes a fd write's unsent fds (write_release, before the free). */
void weft__pipe_fds_release(weft_write_req *req);
/* recvmsg on a pipe's socket: passed fds go to the pipe's queue. -1 with
 * errno ENOBUFS (truncated control message) or ENOMEM (the queue could
 * not grow): the fds that came are closed, the bytes read are lost. */
ssize_t weft__pipe_recv(weft_stream *s, void *buf, size_t len);
/* Closes the fds left in a pipe's queue (its close op). */
void weft__pipe_fds_close(weft_pipe *p);
/* Reads a stream's fd: read(2) for non-sockets, recvmsg for a pipe's
 * socket (fd passing), recv otherwise. */
static inline ssize_t weft__stream_recv(weft_stream *s, void *buf, size_t len) {
  if (!(s->flags & WEFT__S_SOCKET)) return read(weft__stream_fd(s), buf, len);
  if (s->base.ops->type == WEFT_HANDLE_PIPE)
    return weft__pipe_recv(s, buf, len);
  return recv(weft__stream_fd(s), buf, len, 0);
}

/* Streams (io/stream.c). */
void weft__stream_init(weft_loop *loop, weft_stream *s,
                       const weft__handle_ops *ops);
/* Takes `fd` (made non-blocking) with extra flags (WEFT__S_SOCKET,
 * WEFT__S_CONNECTED, ...). */
int weft__stream_set_fd(weft_stream *s, int fd, unsigned flags);
/* The same for an fd its maker already made non-blocking (socket() or
 * accept4() with SOCK_NONBLOCK): no fcntl, cannot fail. */
void weft__stream_adopt_fd(weft_stream *s, int fd, unsigned flags);
/* Closes the fd (if any) and resets the stream to its initial state. */
void weft__stream_reset(weft_stream *s);
void weft__stream_close(weft_handle *h);
void weft__stream_finish(weft_handle *h);
/* The stream `deliver` op (weft__handle_ops): runs finished work's
 * callbacks; for a listener paused by EMFILE, retries accepting. */
void weft__stream_deliver(weft_handle *h);
int weft__stream_listen(weft_stream *s, int backlog, weft_connection_cb cb);
/* Registers a connect: `immediate` 0 means connected already (completion
 * is scheduled), 1 means in progress. */
int weft__stream_connect(weft_stream *s, weft_connect_req *req,
                         weft_connect_cb cb, bool in_progress);
/* Fails every queued write with `status` (delivered from the loop). */
void weft__stream_abort_writes(weft_stream *s, int status);
/* Whether `s` takes writes now: 0, -EINVAL, -EPIPE or -ENOTCONN. */
static inline int weft__stream_writable(const weft_stream *s) {
  if (s == NULL || !weft__handle_usable(&s->base) ||
      (s->flags & WEFT__S_LISTENING))
    return -EINVAL;
  if (s->flags & WEFT__S_SHUT_REQ) return -EPIPE;
  if (!(s->flags & (WEFT__S_CONNECTED | WEFT__S_CONNECTING))) return -ENOTCONN;
  return 0;
}
/* Queues a set-up write request (or writes it at once), after
 * weft__net_reserve() succeeded: the second half of weft_stream_write(). */
void weft__stream_write_queue(weft__net *net, weft_stream *s,
                              weft_write_req *req);
/* The kernel took `sent` bytes of the set-up write `req` inside its start
 * call, with the queue empty (fd passing's direct send, after
 * weft__net_reserve()): they count in the turn's write cap; the request
 * completes from the loop, or goes on as weft__stream_write_queue() with
 * the bytes it has left. */
void weft__stream_write_sent(weft__net *net, weft_stream *s,
                             weft_write_req *req, size_t sent);
/* Takes a queued write with no byte on the wire out of the queue (a
 * cancelled future); false if it is partly written or complete. */
bool weft__stream_write_unqueue(weft_write_req *req);
/* A write future's cancel hook (`arg` the request): a request with no byte
 * on the wire leaves the queue and its future is recycled. */
void weft__stream_write_cancel(weft_future *f, void *arg);
/* Sendfile requests in the write queue (io/stream_sendfile.c), for the
 * WEFT__REQ_FILE writes: bytes left, and a write step with req_write()'s
 * contract (0 done, 1 more to do, < 0 error). */
size_t weft__sendfile_left(const weft_write_req *w);
int weft__sendfile_write(weft_stream *s, weft_write_req *w, size_t *budget,
                         bool queued);
/* A connect failed or was cancelled: queued writes and a pending shutdown
 * fail with `status`, the socket closes, the handle is back to INIT. */
void weft__stream_abort(weft_stream *s, int status);
/* Pauses listener `h` (accept hit EMFILE): it is retried on the net
 * state's timer, or at once when weft frees an fd (weft__net_fd_freed). */
void weft__net_accept_pause(weft__net *net, weft_handle *h);
/* Resumes listeners paused on EMFILE (an fd was just freed). */
void weft__net_fd_freed(weft_loop *loop);

/* ---- future forms of reading, accept, shutdown (io/stream_read.c) ---- */

/* One pending read, accept or shutdown future, drawn from net->rdreqs and
 * queued on the stream's u.q.rq (reads, accepts). */
typedef struct weft__rd_req {
  void *data; /* unused: the request FIFO's layout */
  weft__req_hdr req;
  weft_stream *stream;
  char *buf;
  size_t n;      /* at most (some), exactly (exact), the cap (until) */
  size_t got;    /* bytes in buf */
  size_t peeked; /* of those, how many are still in the read-back buffer */
  weft_stream *client;  /* accept */
  weft_shutdown_req sh; /* shutdown */
  unsigned char mode, dlen;
  char delim[WEFT_STREAM_DELIM_MAX];
} weft__rd_req;

/* Brings the watcher and the active state in line with the flags. */
void weft__stream_update(weft_stream *s);
/* Whether read or accept futures are pending. */
static inline bool weft__stream_rq_busy(const weft_stream *s) {
  return (s->flags & WEFT__S_RQ) &&
         !weft__list_empty(WEFT__REQQ(((weft_stream *)s)->u.q.rq));
}
/* EV_READ with read futures pending: serve them (from the read-back buffer,
 * then the fd, within the per-turn cap). */
void weft__stream_rd_pump(weft_stream *s);
/* The deliver op's part: read futures the read-back buffer can serve,
 * accept futures a waiting connection can, read_start's callback the
 * buffered bytes. */
void weft__stream_rd_deliver(weft_stream *s);
/* read_start's check (-EBUSY with read futures pending, -ENOMEM) and the
 * delivery of buffered bytes it then needs. */
int weft__stream_rd_read_start(weft_stream *s);
/* Hands buffered bytes to read_start's callback; false if reading stopped
 * or the stream is closing. */
bool weft__stream_rb_to_cb(weft_stream *s);
/* accept4 gave `fd`: true if an accept future took it. */
bool weft__stream_rd_accept(weft_stream *s, int fd);
/* An accept error for the oldest accept future; false if none is pending. */
bool weft__stream_rd_accept_error(weft_stream *s, int err);
/* A connect failed (`status`) or the stream closes (-ECANCELED): pending
 * futures reject; on close the read-back buffer is freed. */
void weft__stream_rd_abort(weft_stream *s, int status);
void weft__stream_rd_finish(weft_stream *s);

/* A connect future's cancel hook (io/stream.c): aborts the connect. */
void weft__future_cancel_connect(weft_future *f, void *arg);

/* Brings an I/O watcher in line with the events `want` (0: stopped). Same
 * fd: modify, not set, so libev skips epoll_ctl when the mask ends up
 * unchanged (read_stop then read_start in one turn). */
static inline void weft__io_want(weft_loop *loop, ev_io *w, int want) {
  if (want != (ev_is_active(w) ? (w->events & (EV_READ | EV_WRITE)) : 0)) {
    weft__io_stop(loop, w);
    if (want != 0) {
      ev_io_modify(w, want);
      weft__io_start(loop, w);
    }
  }
}

/* Addresses (io/sockaddr.c). */
int weft__sockaddr_check(const struct sockaddr *addr, socklen_t *len);
/* setsockopt of an int option: 0 or -errno. */
int weft__sock_setopt(int fd, int level, int name, int value);
/* getsockname/getpeername (`fn`) of `fd` (-EINVAL if < 0): 0 or -errno. */
int weft__sock_name(int fd, struct sockaddr *addr, socklen_t *len,
                    int (*fn)(int, struct sockaddr *, socklen_t *));

#endif /* WEFT_IO_INTERNAL_H */
