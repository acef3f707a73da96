/* weft — streams: reading, writing with backpressure, half-close, accept.
 *
 * State (docs/streams.md): a stream has an fd or not; it is connecting,
 * connected or listening; reading is on or off; writes sit in `wq` until
 * the kernel took every byte, then in `done` until their callback runs.
 * The ev_io watcher asks for EV_READ while reading or listening (and no
 * accepted connection is waiting) and EV_WRITE while writes are queued or a
 * connect is in progress. The handle is active (keeps the loop alive) while
 * it reads, listens with a callback, or has a write, connect, shutdown or
 * read or accept future (io/stream_read.c) outstanding.
 *
 * Completions that happen inside a start call (a write the kernel took at
 * once, an immediate connect, a shutdown with nothing queued) are delivered
 * from the net module's deferred run, never inline; completions found by
 * the I/O callback run right there, after the I/O work of the turn. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

_Static_assert(sizeof(ev_io) <= sizeof(((weft_stream *)0)->io),
               "ev_io storage too small");
_Static_assert(sizeof(weft_buf) == sizeof(struct iovec) &&
                   offsetof(weft_buf, base) ==
                       offsetof(struct iovec, iov_base) &&
                   offsetof(weft_buf, len) == offsetof(struct iovec, iov_len),
               "weft_buf must match struct iovec");
_Static_assert(offsetof(weft_stream, pend) == sizeof(weft_handle) &&
                   sizeof(((weft_stream *)0)->pend) == sizeof(weft__list),
               "pending node must follow the handle base");

#define ACCEPT_CAP 128 /* connections accepted per turn per listener */

static inline ev_io *io_watcher(weft_stream *s) {
  return (ev_io *)(void *)&s->io;
}
#define WQ(s) WEFT__REQQ((s)->wq)
#define DONE(s) WEFT__REQQ((s)->done)

static inline weft_write_req *write_of(weft__req_hdr *r) {
  return weft__req_outer(r);
}

static void on_io(struct ev_loop *ev, ev_io *w, int revents);
static void on_acceptable(weft_stream *s);

void weft__stream_init(weft_loop *loop, weft_stream *s,
                       const weft__handle_ops *ops) {
  weft__handle_init(loop, &s->base, ops);
  weft__list_init(weft__pend_node(&s->base));
  memset(&s->io, 0, sizeof s->io);
  ev_io_init(io_watcher(s), on_io, -1, 0);
  io_watcher(s)->data = s;
  memset(&s->u, 0, sizeof s->u);
  weft__list_init(WQ(s));
  weft__list_init(DONE(s));
  s->wq_size = 0;
  s->x.c.wm = s->x.c.rb = NULL;
  s->connect_req = NULL;
  s->shutdown_req = NULL;
  s->flags = 0;
}

/* Which events the watcher should ask for, given the state. */
static int wanted_events(const weft_stream *s) {
  int ev = 0;
  if (((s->flags & WEFT__S_READING) && (s->flags & WEFT__S_CONNECTED)) ||
      ((s->flags & WEFT__S_LISTENING) &&
       (s->x.l.connection_cb != NULL || weft__stream_rq_busy(s)) &&
       !(s->flags & (WEFT__S_ACCEPT_WAIT | WEFT__S_ACCEPT_PAUSED))) ||
      (!(s->flags & WEFT__S_LISTENING) && (s->flags & WEFT__S_CONNECTED) &&
       weft__stream_rq_busy(s)))
    ev |= EV_READ;
  if ((s->flags & WEFT__S_CONNECTING) ||
      (!weft__list_empty(WQ(s)) && (s->flags & WEFT__S_CONNECTED)))
    ev |= EV_WRITE;
  return ev;
}

/* Brings the watcher and the active state in line with the flags. */
static void update(weft_stream *s) {
  ev_io *w = io_watcher(s);
  weft__io_want(s->base.loop, w, w->fd >= 0 ? wanted_events(s) : 0);
  bool busy =
      (s->flags & (WEFT__S_READING | WEFT__S_CONNECTING)) ||
      ((s->flags & WEFT__S_LISTENING) && s->x.l.connection_cb != NULL) ||
      !weft__list_empty(WQ(s)) || !weft__list_empty(DONE(s)) ||
      s->connect_req || s->shutdown_req || weft__stream_rq_busy(s);
  if (weft__handle_usable(&s->base) && busy)
    weft__handle_start(&s->base);
  else
    weft__handle_stop(&s->base);
}

void weft__stream_update(weft_stream *s) { update(s); }

int weft__stream_set_fd(weft_stream *s, int fd, unsigned flags) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  weft__stream_adopt_fd(s, fd, flags);
  return 0;
}

void weft__stream_adopt_fd(weft_stream *s, int fd, unsigned flags) {
  ev_io_set(io_watcher(s), fd, 0);
  s->flags |= flags;
}

void weft__stream_reset(weft_stream *s) {
  ev_io *w = io_watcher(s);
  weft__io_stop(s->base.loop, w);
  if (w->fd >= 0) {
    close(w->fd);
    weft__net_fd_freed(s->base.loop);
  }
  ev_io_set(w, -1, 0);
  s->flags &= ~(WEFT__S_CONNECTED | WEFT__S_CONNECTING | WEFT__S_SOCKET |
                WEFT__S_SHUT_REQ | WEFT__S_SHUT_DONE | WEFT__S_OWN_SOCKET |
                WEFT__S_READING);
  update(s);
}

/* ---- completions ----------------------------------------------------------
 */

static size_t req_remaining(const weft_write_req *req) {
  if (req->req.flags & WEFT__REQ_FILE) return weft__sendfile_left(req);
  size_t n = 0;
  for (unsigned i = req->idx; i < req->nbufs; i++)
    n += req->bufs[i].len;
  return n;
}

static void write_release(weft_write_req *req) {
  if (req->req.flags & WEFT__REQ_FDS) weft__pipe_fds_release(req); /* unsent */
  if (req->bufs != req->inline_bufs) weft__free(req->bufs);
  req->bufs = NULL;
}

/* Runs a write's completion: its callback, or its future's settle. */
static void write_run(weft__req_hdr *r) {
  weft_write_req *req = write_of(r);
  write_release(req);
  if (r->future != NULL)
    weft__req_settle(&weft__net_get(req->stream->base.loop)->wreqs, r,
                     r->status);
  else if (req->cb)
    req->cb(req, r->status);
}

/* Settles a connect future and returns its request to the pool. */
static void connect_settle(weft_connect_req *req, int status) {
  weft__req_settle(&weft__net_get(req->stream->base.loop)->creqs, &req->req,
                   status);
}

static void connect_complete(weft_stream *s) {
  weft_connect_req *req = s->connect_req;
  s->connect_req = NULL;
  s->flags &= ~WEFT__S_CONNECT_DONE;
  update(s);
  if (req->req.future != NULL)
    connect_settle(req, req->req.status);
  else if (req->cb)
    req->cb(req, req->req.status);
}

static void shutdown_complete(weft_stream *s) {
  weft_shutdown_req *req = s->shutdown_req;
  s->shutdown_req = NULL;
  if (!(s->flags & WEFT__S_SHUT_REQ))
    s->flags &= ~WEFT__S_SHUT_DONE; /* aborted */
  update(s);
  if (req->cb) req->cb(req, req->status);
}

static void update_handle(weft_handle *h) { update((weft_stream *)h); }

/* Runs the callbacks of finished work, stopping if one closes the stream
 * (the finish hook then delivers the rest). */
static void deliver(weft_stream *s) {
  if (s->connect_req && (s->flags & WEFT__S_CONNECT_DONE)) connect_complete(s);
  weft__reqq_deliver(&s->base, DONE(s), update_handle, write_run);
  if (weft_is_closing(&s->base)) return;
  if (s->shutdown_req && (s->flags & WEFT__S_SHUT_DONE)) shutdown_complete(s);
}

void weft__stream_deliver(weft_handle *h) {
  weft_stream *s = (weft_stream *)h;
  if (s->flags & WEFT__S_ACCEPT_PAUSED) { /* the EMFILE retry: accept again */
    s->flags &= ~WEFT__S_ACCEPT_PAUSED;
    on_acceptable(s);
    return;
  }
  weft__stream_rd_deliver(s);
  if (!weft_is_closing(&s->base)) deliver(s);
}

/* ---- writing --------------------------------------------------------------
 */

static ssize_t sys_writev(weft_stream *s, weft_buf *bufs, unsigned n) {
  int fd = weft__stream_fd(s);
  if (n > IOV_MAX) n = IOV_MAX;
  if (s->flags & WEFT__S_SOCKET) {
    struct msghdr msg = {0};
    msg.msg_iov = (struct iovec *)(void *)bufs;
    msg.msg_iovlen = n;
    return sendmsg(fd, &msg, MSG_NOSIGNAL);
  }
  return writev(fd, (struct iovec *)(void *)bufs, (int)n);
}

/* Consumes `n` written bytes from the front of the request. */
static void req_advance(weft_write_req *req, size_t n) {
  while (n > 0) {
    weft_buf *b = &req->bufs[req->idx];
    size_t take = n < b->len ? n : b->len;
    b->base += take;
    b->len -= take;
    n -= take;
    if (b->len == 0) req->idx++;
  }
  while (req->idx < req->nbufs && req->bufs[req->idx].len == 0)
    req->idx++;
}

/* Writes what the kernel takes, within *budget. 0: done, 1: more to do,
 * < 0: error. `queued` says whether the bytes count in wq_size. */
static int req_write(weft_stream *s, weft_write_req *req, size_t *budget,
                     bool queued) {
  if (req->req.flags & WEFT__REQ_FILE)
    return weft__sendfile_write(s, req, budget, queued);
  while (req->idx < req->nbufs) {
    if (*budget == 0) return 1;
    ssize_t n =
        (req->req.flags & WEFT__REQ_FDS)
            ? weft__pipe_sendmsg(s, req, req->nbufs - req->idx)
            : sys_writev(s, req->bufs + req->idx, req->nbufs - req->idx);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
      return -errno;
    }
    req_advance(req, (size_t)n);
    req->req.status = 1; /* bytes are on the wire: no longer cancellable */
    if (queued) s->wq_size -= (size_t)n;
    *budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
  }
  return 0;
}

static void do_shutdown(weft_stream *s) {
  weft_shutdown_req *req = s->shutdown_req;
  int fd = weft__stream_fd(s);
  if (s->flags & WEFT__S_SOCKET) {
    req->status = shutdown(fd, SHUT_WR) == 0 ? 0 : -errno;
  } else { /* a write-only pipe end: closing it is the half-close */
    weft__io_stop(s->base.loop, io_watcher(s));
    close(fd);
    ev_io_set(io_watcher(s), -1, 0);
    s->flags &= ~WEFT__S_CONNECTED;
    req->status = 0;
  }
  s->flags |= WEFT__S_SHUT_DONE;
}

static void check_low(weft_stream *s) {
  const weft__wm *wm = weft__stream_wm(s);
  if ((s->flags & WEFT__S_WM_ABOVE) && wm != NULL && s->wq_size <= wm->low) {
    s->flags &= ~WEFT__S_WM_ABOVE;
    wm->cb(s, WEFT_WATERMARK_LOW);
  }
}

/* What `s` may still write in this turn: the cap of weft/stream.h spans
 * every write of the turn, the ones its write callbacks make included (a
 * writer that refills from its callbacks would otherwise fill the socket
 * buffer, megabytes, before its reads or any other stream ran). The loop
 * counts for the stream that wrote last; a stream past the cap queues
 * and goes on from EV_WRITE after the next poll. */
static size_t turn_budget(weft__net *net, const weft_stream *s) {
  uint64_t turn = s->base.loop->m.turns;
  if (net->w_stream != s || net->w_turn != turn) {
    net->w_stream = s;
    net->w_turn = turn;
    net->w_bytes = 0;
  }
  return net->w_bytes < WEFT_STREAM_WRITE_CAP
             ? WEFT_STREAM_WRITE_CAP - net->w_bytes
             : 0;
}

/* EV_WRITE: drain the queue within the fairness cap. */
static void on_writable(weft_stream *s) {
  weft__net *net = weft__net_get(s->base.loop);
  size_t budget = turn_budget(net, s), start = budget;
  weft__req_hdr *h;
  while ((h = weft__reqq_front(WQ(s))) != NULL) {
    weft_write_req *req = write_of(h);
    int r = req_write(s, req, &budget, true);
    if (r == 1) break;
    s->wq_size -= req_remaining(req);
    weft__reqq_complete(DONE(s), h, r);
  }
  net->w_bytes += start - budget;
  if (weft__list_empty(WQ(s)) && s->shutdown_req &&
      !(s->flags & WEFT__S_SHUT_DONE))
    do_shutdown(s);
  update(s);
  deliver(s);
  if (!weft_is_closing(&s->base)) check_low(s);
}

static int req_setup(weft_write_req *req, weft_stream *s, const weft_buf *bufs,
                     unsigned nbufs) {
  req->bufs = req->inline_bufs;
  if (nbufs > WEFT__WRITE_INLINE_BUFS) {
    req->bufs = weft__malloc(sizeof *bufs * nbufs);
    if (req->bufs == NULL) return -ENOMEM;
  }
  memcpy(req->bufs, bufs, sizeof *bufs * nbufs);
  req->nbufs = nbufs;
  req->idx = 0;
  req->stream = s;
  while (req->idx < nbufs && req->bufs[req->idx].len == 0)
    req->idx++;
  return 0;
}

static int write_check(weft_stream *s, const weft_buf *bufs, unsigned nbufs) {
  if (s == NULL || bufs == NULL || nbufs == 0) return -EINVAL;
  if (s->base.ops != NULL) WEFT__CHECK_THREAD(s->base.loop);
  return weft__stream_writable(s);
}

static int stream_write(weft_write_req *req, weft_stream *s,
                        const weft_buf *bufs, unsigned nbufs) {
  weft__net *net = weft__net_get(s->base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__net_reserve(net);
  if (err == 0) err = req_setup(req, s, bufs, nbufs);
  if (err != 0) return err;
  weft__stream_write_queue(net, s, req);
  return 0;
}

void weft__stream_write_queue(weft__net *net, weft_stream *s,
                              weft_write_req *req) {
  size_t budget = 0, start = 0;
  if (weft__list_empty(WQ(s)) && (s->flags & WEFT__S_CONNECTED))
    budget = start = turn_budget(net, s);
  if (budget > 0) { /* try at once; past the turn's cap, queue */
    int r = req_write(s, req, &budget, false);
    net->w_bytes += start - budget;
    if (r <= 0) { /* all written, or failed: complete from the loop */
      weft__reqq_complete(DONE(s), &req->req, r);
      weft__net_schedule(net, &s->base);
      update(s);
      return;
    }
  }
  weft__reqq_push(WQ(s), &req->req);
  s->wq_size += req_remaining(req);
  update(s);
  const weft__wm *wm = weft__stream_wm(s);
  if (wm != NULL && !(s->flags & WEFT__S_WM_ABOVE) && s->wq_size > wm->high) {
    s->flags |= WEFT__S_WM_ABOVE;
    wm->cb(s, WEFT_WATERMARK_HIGH);
  }
}

void weft__stream_write_sent(weft__net *net, weft_stream *s,
                             weft_write_req *req, size_t sent) {
  turn_budget(net, s); /* the turn's count, started if this is a new turn */
  net->w_bytes += sent;
  if (req->idx < req->nbufs) {
    weft__stream_write_queue(net, s, req);
    return;
  }
  weft__reqq_complete(DONE(s), &req->req, 0);
  weft__net_schedule(net, &s->base);
  /* what update() would do: the queue was empty and stays so (the watcher
   * keeps its events); a completion to deliver makes the handle active */
  weft__handle_start(&s->base);
}

int weft_stream_write(weft_write_req *req, weft_stream *s, const weft_buf *bufs,
                      unsigned nbufs, weft_write_cb cb) {
  if (req == NULL) return -EINVAL;
  int err = write_check(s, bufs, nbufs);
  if (err != 0) return err;
  weft__req_init(&req->req);
  req->req.future = NULL;
  req->cb = cb;
  return stream_write(req, s, bufs, nbufs);
}

/* A write future's cancel hook: a request with no byte on the wire leaves
 * the queue; one partly written finishes (to keep the byte stream whole),
 * its settle then failing harmlessly. */
void weft__stream_write_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft_write_req *req = arg;
  weft_stream *s = req->stream;
  if (!weft__stream_write_unqueue(req)) return;
  write_release(req);
  weft__req_settle(&weft__net_get(s->base.loop)->wreqs, &req->req,
                   -ECANCELED); /* only recycles: f is settled */
}

bool weft__stream_write_unqueue(weft_write_req *req) {
  weft_stream *s = req->stream;
  if (req->req.status != 0 || !weft__reqq_cancel(&req->req))
    return false; /* partly written, or already in `done` */
  s->wq_size -= req_remaining(req);
  update(s);
  check_low(s);
  return true;
}

int weft_stream_write_future(weft_stream *s, const weft_buf *bufs,
                             unsigned nbufs, weft_future **out) {
  if (out == NULL) return -EINVAL;
  int err = write_check(s, bufs, nbufs);
  if (err != 0) return err;
  weft__net *net = weft__net_get(s->base.loop);
  if (net == NULL) return -ENOMEM;
  weft__req_hdr *r;
  err = weft__req_future_new(s->base.loop, &net->wreqs, &r);
  if (err != 0) return err;
  weft_write_req *req = write_of(r);
  for (unsigned i = 0; i < nbufs; i++)
    r->bytes += bufs[i].len;
  req->cb = NULL;
  err = stream_write(req, s, bufs, nbufs);
  if (err != 0) {
    weft__req_future_undo(&net->wreqs, r);
    return err;
  }
  weft_future_on_cancel(r->future, weft__stream_write_cancel, req);
  /* one reference for the caller, one for the request */
  *out = weft_future_ref(r->future);
  return 0;
}

size_t weft_stream_write_queue_size(const weft_stream *s) {
  return s ? s->wq_size : 0;
}

int weft_stream_set_watermarks(weft_stream *s, size_t high, size_t low,
                               weft_watermark_cb cb) {
  if (s == NULL || !weft__handle_usable(&s->base) || low > high ||
      high > UINT32_MAX || (s->flags & WEFT__S_X_LISTENER))
    return -EINVAL;
  weft__wm *wm = s->x.c.wm;
  if (cb == NULL) { /* removed: the state goes too */
    weft__free(wm);
    s->x.c.wm = NULL;
    s->flags &= ~WEFT__S_WM_ABOVE;
    return 0;
  }
  if (wm == NULL && (wm = weft__malloc(sizeof *wm)) == NULL) return -ENOMEM;
  *wm = (weft__wm){(uint32_t)high, (uint32_t)low, cb};
  s->x.c.wm = wm;
  return 0;
}

bool weft_stream_is_writable(const weft_stream *s) {
  return s != NULL && weft__handle_usable(&s->base) &&
         (s->flags & (WEFT__S_CONNECTED | WEFT__S_CONNECTING)) &&
         !(s->flags & WEFT__S_SHUT_REQ);
}

int weft_stream_shutdown(weft_shutdown_req *req, weft_stream *s,
                         weft_shutdown_cb cb) {
  if (req == NULL || s == NULL || !weft__handle_usable(&s->base))
    return -EINVAL;
  WEFT__CHECK_THREAD(s->base.loop);
  if (!(s->flags & (WEFT__S_CONNECTED | WEFT__S_CONNECTING))) return -ENOTCONN;
  if (s->flags & WEFT__S_SHUT_REQ) return -EALREADY;
  if (!(s->flags & WEFT__S_SOCKET)) {
    int fl = fcntl(weft__stream_fd(s), F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) != O_WRONLY) return -ENOTSOCK;
  }
  weft__net *net = weft__net_get(s->base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__net_reserve(net);
  if (err != 0) return err;
  req->stream = s;
  req->cb = cb;
  req->status = 0;
  s->shutdown_req = req;
  s->flags |= WEFT__S_SHUT_REQ;
  if (weft__list_empty(WQ(s)) && (s->flags & WEFT__S_CONNECTED)) {
    do_shutdown(s);
    weft__net_schedule(net, &s->base);
  }
  update(s);
  return 0;
}

/* ---- reading --------------------------------------------------------------
 */

static void read_error(weft_stream *s, ssize_t err, const weft_buf *buf) {
  s->flags &= ~WEFT__S_READING;
  update(s);
  s->u.r.read_cb(s, err, buf);
}

/* EV_READ on a connected stream: read until the kernel runs dry, the cap
 * is reached or the user stops. */
static void on_readable(weft_stream *s) {
  weft__net *net = weft__net_get(s->base.loop);
  size_t budget = WEFT_STREAM_READ_CAP;
  unsigned cuts = WEFT__STREAM_FDS_READS;
  if (weft__stream_rb(s) != NULL && !weft__stream_rb_to_cb(s))
    return; /* buffered first */
  while ((s->flags & WEFT__S_READING) && budget > 0) {
    weft_buf buf = {net->slab, WEFT_STREAM_SLAB_SIZE};
    if (s->u.r.alloc_cb) {
      buf = (weft_buf){NULL, 0};
      s->u.r.alloc_cb(s, WEFT_STREAM_SLAB_SIZE, &buf);
      if (!(s->flags & WEFT__S_READING)) return; /* stopped in alloc_cb */
      if (buf.base == NULL || buf.len == 0) {
        s->u.r.read_cb(s, -ENOBUFS, &buf);
        return;
      }
    }
    ssize_t n = weft__stream_recv(s, buf.base, buf.len);
    if (n > 0) {
      budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
      s->u.r.read_cb(s, n, &buf);
      if ((size_t)n < buf.len && /* drained: skip the EAGAIN read */
          (!(s->flags & WEFT__S_FDS_CUT) || --cuts == 0))
        return;
    } else if (n == 0) {
      read_error(s, WEFT_EOF, &buf);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (s->u.r.alloc_cb) s->u.r.read_cb(s, 0, &buf); /* buffer back */
      return;
    } else if (errno != EINTR) {
      read_error(s, -errno, &buf);
    }
  }
}

int weft_stream_read_start(weft_stream *s, weft_alloc_cb alloc_cb,
                           weft_read_cb read_cb) {
  if (s != NULL && s->base.ops != NULL) WEFT__CHECK_THREAD(s->base.loop);
  if (s == NULL || read_cb == NULL || !weft__handle_usable(&s->base) ||
      (s->flags & WEFT__S_LISTENING))
    return -EINVAL;
  if (!(s->flags & (WEFT__S_CONNECTED | WEFT__S_CONNECTING)) ||
      weft__stream_fd(s) < 0)
    return -ENOTCONN;
  weft__net *net = weft__net_get(s->base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__stream_rd_read_start(s);
  if (err != 0) return err;
  if (net->slab == NULL && alloc_cb == NULL) {
    net->slab = weft__malloc(WEFT_STREAM_SLAB_SIZE);
    if (net->slab == NULL) return -ENOMEM;
  }
  s->u.r.alloc_cb = alloc_cb;
  s->u.r.read_cb = read_cb;
  s->flags |= WEFT__S_READING;
  update(s);
  return 0;
}

int weft_stream_read_stop(weft_stream *s) {
  if (s == NULL || s->base.ops == NULL) return -EINVAL;
  WEFT__CHECK_THREAD(s->base.loop);
  if (!(s->flags & WEFT__S_READING)) return 0;
  s->flags &= ~WEFT__S_READING;
  update(s);
  return 0;
}

bool weft_stream_is_reading(const weft_stream *s) {
  return s != NULL && (s->flags & WEFT__S_READING) != 0;
}

int weft_stream_fileno(const weft_stream *s) {
  if (s == NULL || s->base.ops == NULL) return -EINVAL;
  int fd = weft__stream_fd(s);
  return fd >= 0 ? fd : -EBADF;
}

/* ---- connecting ------------------------------------------------------------
 */

int weft__stream_connect(weft_stream *s, weft_connect_req *req,
                         weft_connect_cb cb, bool in_progress) {
  req->stream = s;
  req->cb = cb;
  req->req.status = 0;
  s->connect_req = req;
  if (in_progress) {
    s->flags |= WEFT__S_CONNECTING;
  } else {
    s->flags |= WEFT__S_CONNECTED | WEFT__S_CONNECT_DONE;
    weft__net_schedule(weft__net_get(s->base.loop), &s->base);
  }
  update(s);
  return 0;
}

void weft__stream_abort_writes(weft_stream *s, int status) {
  weft__reqq_cancel_all(WQ(s), DONE(s), status);
  s->wq_size = 0;
  if (weft__list_empty(DONE(s))) return;
  weft__net *net = weft__net_get(s->base.loop);
  if (weft__net_reserve(net) == 0) weft__net_schedule(net, &s->base);
  /* else they are delivered by the next run or the close */
}

void weft__stream_abort(weft_stream *s, int status) {
  weft__stream_abort_writes(s, status);
  weft__stream_rd_abort(s, status);
  weft__stream_reset(s);
  if (s->shutdown_req) { /* reset cleared the shutdown flags */
    s->shutdown_req->status = status;
    s->flags |= WEFT__S_SHUT_DONE; /* no WEFT__S_SHUT_REQ: the handle may
                                      connect again */
    weft__net *net = weft__net_get(s->base.loop);
    if (weft__net_reserve(net) == 0) weft__net_schedule(net, &s->base);
  }
  update(s);
}

/* The socket became writable while connecting: the connect is settled. */
static void on_connected(weft_stream *s) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(weft__stream_fd(s), SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err == EINPROGRESS) return;
  s->flags &= ~WEFT__S_CONNECTING;
  s->connect_req->req.status = -err;
  s->flags |= WEFT__S_CONNECT_DONE;
  if (err == 0) {
    s->flags |= WEFT__S_CONNECTED;
    if (s->shutdown_req && weft__list_empty(WQ(s))) do_shutdown(s);
  } else {
    weft__stream_abort(s, -err);
  }
  update(s);
  deliver(s);
}

/* ---- listening and accepting -----------------------------------------------
 */

int weft__stream_listen(weft_stream *s, int backlog, weft_connection_cb cb) {
  if (s != NULL && s->base.ops != NULL) WEFT__CHECK_THREAD(s->base.loop);
  if (s == NULL || !weft__handle_usable(&s->base) || weft__stream_fd(s) < 0 ||
      (s->flags & (WEFT__S_LISTENING | WEFT__S_READING | WEFT__S_CONNECTED |
                   WEFT__S_CONNECTING)))
    return -EINVAL;
  if (weft__net_get(s->base.loop) == NULL) return -ENOMEM;
  if (listen(weft__stream_fd(s), backlog > 0 ? backlog : SOMAXCONN) < 0)
    return -errno;
  /* a listener writes and reads no bytes: x now holds its own fields */
  weft__free(s->x.c.wm);
  weft__free(s->x.c.rb);
  s->flags &= ~WEFT__S_WM_ABOVE;
  s->x.l.connection_cb = cb;
  s->x.l.accepted_fd = -1;
  weft__list_init(WEFT__REQQ(s->u.q.rq)); /* accept futures */
  s->flags |= WEFT__S_LISTENING | WEFT__S_RQ | WEFT__S_X_LISTENER;
  update(s);
  return 0;
}

static void accept_pause(weft_stream *s) {
  weft__net *net = weft__net_get(s->base.loop);
  s->flags |= WEFT__S_ACCEPT_PAUSED;
  weft__net_accept_pause(net, &s->base);
}

static void on_acceptable(weft_stream *s) {
  int fd = weft__stream_fd(s);
  for (int i = 0; i < ACCEPT_CAP && (s->flags & WEFT__S_LISTENING) &&
                  !(s->flags & WEFT__S_ACCEPT_WAIT) &&
                  (s->x.l.connection_cb || weft__stream_rq_busy(s));
       i++) {
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        accept_pause(s);
        break;
      }
      if (weft__stream_rd_accept_error(s, -errno)) continue;
      if (s->x.l.connection_cb == NULL) break;
      s->x.l.connection_cb(s, -errno);
      continue;
    }
    if (weft__stream_rd_accept(s, c)) continue; /* an accept future took it */
    s->x.l.accepted_fd = c;
    s->flags |= WEFT__S_ACCEPT_WAIT;
    if (s->x.l.connection_cb) s->x.l.connection_cb(s, 0);
  }
  update(s);
}

int weft_stream_accept(weft_stream *server, weft_stream *client) {
  if (server != NULL && server->base.ops != NULL)
    WEFT__CHECK_THREAD(server->base.loop);
  if (server == NULL || client == NULL || !weft__handle_usable(&server->base) ||
      !weft__handle_usable(&client->base) ||
      server->base.ops != client->base.ops ||
      !(server->flags & WEFT__S_LISTENING) || weft__stream_fd(client) >= 0)
    return -EINVAL;
  if (!(server->flags & WEFT__S_ACCEPT_WAIT)) return -EAGAIN;
  /* accept4 made it non-blocking */
  weft__stream_adopt_fd(client, server->x.l.accepted_fd,
                        WEFT__S_SOCKET | WEFT__S_CONNECTED);
  server->x.l.accepted_fd = -1;
  server->flags &= ~WEFT__S_ACCEPT_WAIT;
  update(server);
  return 0;
}

/* ---- the watcher and closing ------------------------------------------------
 */

static void on_io(struct ev_loop *ev, ev_io *w, int revents) {
  WEFT__UNUSED(ev);
  weft_stream *s = w->data;
  weft__net *net = weft__net_get(s->base.loop); /* exists: a watcher runs */
  weft__net_io_enter(net);
  if (s->flags & WEFT__S_LISTENING) {
    on_acceptable(s);
  } else {
    if ((revents & EV_WRITE) && (s->flags & WEFT__S_CONNECTING)) {
      on_connected(s);
      revents &= ~EV_WRITE;
    }
    /* Read before writing: draining the receive queue first lets the peer
     * (often blocked on a full window) resume while we copy our writes. */
    if ((revents & EV_READ) && (s->flags & WEFT__S_READING))
      on_readable(s);
    else if ((revents & EV_READ) && weft__stream_rq_busy(s))
      weft__stream_rd_pump(s);
    if ((revents & EV_WRITE) && !weft_is_closing(&s->base) &&
        weft__stream_fd(s) >= 0)
      on_writable(s);
  }
  weft__net_io_leave(net);
}

void weft__stream_close(weft_handle *h) {
  weft_stream *s = (weft_stream *)h;
  weft__io_stop(h->loop, io_watcher(s));
  s->flags &= ~(WEFT__S_READING | WEFT__S_LISTENING);
  if ((s->flags & WEFT__S_X_LISTENER) && s->x.l.accepted_fd >= 0) {
    close(s->x.l.accepted_fd);
    s->x.l.accepted_fd = -1;
  }
  if (io_watcher(s)->fd >= 0) close(io_watcher(s)->fd);
  ev_io_set(io_watcher(s), -1, 0);
  weft__list *node = weft__pend_node(h);
  if (s->flags & WEFT__S_ACCEPT_PAUSED) weft__list_unlink(node);
  s->flags &= ~WEFT__S_ACCEPT_PAUSED;
  weft__net_fd_freed(h->loop);
}

/* Close phase: finished work gets its real status, the rest -ECANCELED,
 * all before the close callback. */
void weft__stream_finish(weft_handle *h) {
  weft_stream *s = (weft_stream *)h;
  weft__list *node = weft__pend_node(h);
  if (weft__list_linked(node)) weft__list_unlink(node);
  if (s->connect_req && !(s->flags & WEFT__S_CONNECT_DONE))
    s->connect_req->req.status = -ECANCELED;
  weft__reqq_cancel_all(WQ(s), DONE(s), -ECANCELED);
  s->wq_size = 0;
  if (s->shutdown_req && !(s->flags & WEFT__S_SHUT_DONE))
    s->shutdown_req->status = -ECANCELED;
  s->flags |= WEFT__S_CONNECT_DONE | WEFT__S_SHUT_DONE;
  if (s->connect_req) connect_complete(s);
  weft__reqq_flush(DONE(s), write_run);
  if (s->shutdown_req) shutdown_complete(s);
  weft__stream_rd_finish(s);
  if (!(s->flags & WEFT__S_X_LISTENER)) {
    weft__free(s->x.c.wm);
    s->x.c.wm = NULL;
  }
}

/* A connect future was cancelled: abort the connect (close the socket,
 * back to the initial state); writes queued behind it are cancelled. */
void weft__future_cancel_connect(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft_connect_req *req = arg;
  weft_stream *s = req->stream;
  if (s->connect_req != req || (s->flags & WEFT__S_CONNECT_DONE)) return;
  s->connect_req = NULL;
  weft__stream_abort(s, -ECANCELED);
  connect_settle(req, -ECANCELED); /* only recycles: f is settled */
}
