/* weft — the future forms of stream reads (some, exact, until), of accept
 * and of shutdown, and the read-back buffer they share with read_start.
 *
 * Pending read futures wait, oldest first, on the stream's u.q.rq (a live
 * list while WEFT__S_RQ is set; read_start's callbacks use the same
 * storage, which is one reason the two forms exclude each other). The
 * oldest is served first from the read-back buffer, then straight from the
 * fd into the caller's buffer: one copy, by the kernel.
 *
 * A read that gathers (exact, until) leaves the bytes it copied out of the
 * read-back buffer there ("peeked") until it completes. It reads the fd
 * only once that buffer is exhausted, so its caller's buffer always holds
 * the peeked bytes followed by bytes from the fd, and giving everything
 * back (cancel, EOF, an error, the until limit) is one append of the bytes
 * from the fd, which fits: the read-back buffer was grown to the read's
 * size when the read started. Bytes an until read took past its delimiter
 * go to the read-back buffer the same way.
 *
 * Settling a future runs no user code (continuations are queued), so the
 * pump cannot be re-entered by what it settles. */
#include <assert.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

enum { RD_SOME = 1, RD_EXACT, RD_UNTIL, RD_ACCEPT, RD_SHUTDOWN };

/* The read-back buffer: `len` bytes at data + off. */
typedef struct rbuf {
  size_t cap, off, len;
  char data[];
} rbuf;

#define RQ(s) WEFT__REQQ((s)->u.q.rq)

static inline weft__rd_req *rd_of(weft__req_hdr *r) {
  return weft__req_outer(r);
}
static size_t rb_len(const weft_stream *s) {
  const rbuf *b = weft__stream_rb(s);
  return b ? b->len : 0;
}
static char *rb_data(const weft_stream *s) {
  rbuf *b = s->x.c.rb;
  return b->data + b->off;
}
static void rb_consume(weft_stream *s, size_t k) {
  if (k == 0) return;
  rbuf *b = s->x.c.rb;
  b->off += k;
  b->len -= k;
  if (b->len == 0) b->off = 0;
}

/* Grows the read-back buffer to `cap` bytes, keeping what it holds. */
static int rb_reserve(weft_stream *s, size_t cap) {
  rbuf *b = s->x.c.rb;
  if (b != NULL && b->cap >= cap) return 0;
  if (cap > SIZE_MAX - sizeof *b) return -ENOMEM;
  rbuf *nb = weft__malloc(sizeof *nb + cap);
  if (nb == NULL) return -ENOMEM;
  nb->cap = cap;
  nb->off = 0;
  nb->len = 0;
  if (b != NULL) {
    memcpy(nb->data, b->data + b->off, b->len);
    nb->len = b->len;
    weft__free(b);
  }
  s->x.c.rb = nb;
  return 0;
}

/* Appends bytes given back; the room was reserved when the read started. */
static void rb_append(weft_stream *s, const char *p, size_t k) {
  if (k == 0) return;
  rbuf *b = s->x.c.rb;
  assert(b != NULL && b->len + k <= b->cap);
  if (b->off + b->len + k > b->cap) {
    memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
  }
  memcpy(b->data + b->off + b->len, p, k);
  b->len += k;
}

static bool is_stream(const weft_stream *s) {
  return s != NULL && weft__handle_usable(&s->base) &&
         s->base.ops->deliver == weft__stream_deliver;
}

static void rq_push(weft_stream *s, weft__req_hdr *r) {
  if (!(s->flags & WEFT__S_RQ)) {
    weft__list_init(RQ(s));
    s->flags |= WEFT__S_RQ;
  }
  weft__reqq_push(RQ(s), r);
}

static weft__req_pool *pool_of(weft_stream *s) {
  return &weft__net_get(s->base.loop)->rdreqs; /* exists: a request does */
}

/* A gathering read gives back the bytes it read from the fd. */
static void give_back(weft_stream *s, weft__rd_req *q) {
  if (q->mode != RD_EXACT && q->mode != RD_UNTIL) return;
  rb_append(s, q->buf + q->peeked, q->got - q->peeked);
  q->got = q->peeked = 0;
}

/* `q` (queued) is done: fulfilled with req.bytes (status 0) or rejected. */
static void rd_complete(weft_stream *s, weft__rd_req *q, int status) {
  weft__reqq_cancel(&q->req);
  if (status != 0) give_back(s, q);
  weft__req_settle(pool_of(s), &q->req, status);
}

/* Serves the oldest read from the read-back buffer: 0 done, 1 it wants
 * more, < 0 it failed (the until limit). */
static int from_buffer(weft_stream *s, weft__rd_req *q) {
  size_t have = rb_len(s);
  if (have <= q->peeked) return 1;
  const char *p = rb_data(s);
  if (q->mode == RD_SOME) {
    size_t k = have < q->n ? have : q->n;
    memcpy(q->buf, p, k);
    rb_consume(s, k);
    q->req.bytes = k;
    return 0;
  }
  if (q->mode == RD_EXACT) {
    size_t k = have - q->peeked;
    if (k > q->n - q->got) k = q->n - q->got;
    memcpy(q->buf + q->got, p + q->peeked, k);
    q->got += k;
    q->peeked += k;
    if (q->got < q->n) return 1;
    rb_consume(s, q->peeked);
    q->peeked = 0;
    q->req.bytes = q->n;
    return 0;
  }
  /* until: buf holds the buffer's first `peeked` bytes (got == peeked, as
   * nothing came from the fd yet), so search the buffer itself */
  size_t lim = have < q->n ? have : q->n;
  size_t from = q->peeked >= q->dlen - 1u ? q->peeked - (q->dlen - 1u) : 0;
  const char *m = memmem(p + from, lim - from, q->delim, q->dlen);
  size_t end = m ? (size_t)(m - p) + q->dlen : lim;
  memcpy(q->buf + q->got, p + q->peeked, end - q->peeked);
  q->got = q->peeked = end;
  if (m != NULL) {
    rb_consume(s, end);
    q->peeked = 0;
    q->req.bytes = end;
    return 0;
  }
  return q->got == q->n ? -EMSGSIZE : 1;
}

/* What a short read that stopped at a message carrying fds takes from the
 * per-turn budget (io/internal.h, WEFT__STREAM_FDS_READS). */
#define FDS_READ_COST (WEFT_STREAM_READ_CAP / WEFT__STREAM_FDS_READS)

/* Reads the fd into the oldest read's buffer: 0 done, 1 wait for the fd,
 * < 0 failed. *drained is set once the fd gave less than asked (unless it
 * stopped at a message carrying fds: more may wait behind it). */
static int from_fd(weft_stream *s, weft__rd_req *q, size_t *budget,
                   bool *drained) {
  for (;;) {
    size_t off = q->mode == RD_SOME ? 0 : q->got;
    size_t want = q->n - off;
    ssize_t r = weft__stream_recv(s, q->buf + off, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *drained = true;
        return 1;
      }
      return -errno;
    }
    if (r == 0) {
      if (q->mode != RD_SOME) return WEFT_EOF;
      q->req.bytes = 0; /* read(2)'s end of file */
      return 0;
    }
    size_t got = (size_t)r, cost = got;
    if (got < want && !(s->flags & WEFT__S_FDS_CUT))
      *drained = true;
    else if (got < want && cost < FDS_READ_COST)
      cost = FDS_READ_COST; /* at most WEFT__STREAM_FDS_READS such reads */
    *budget = cost >= *budget ? 0 : *budget - cost;
    if (q->mode == RD_SOME) {
      q->req.bytes = got;
      return 0;
    }
    size_t before = q->got;
    q->got += got;
    if (q->mode == RD_EXACT) {
      if (q->got < q->n) goto more;
      rb_consume(s, q->peeked);
      q->peeked = 0;
      q->req.bytes = q->n;
      return 0;
    }
    size_t from = before >= q->dlen - 1u ? before - (q->dlen - 1u) : 0;
    const char *m = memmem(q->buf + from, q->got - from, q->delim, q->dlen);
    if (m != NULL) {
      size_t end = (size_t)(m - q->buf) + q->dlen;
      rb_consume(s, q->peeked);
      q->peeked = 0;
      rb_append(s, q->buf + end, q->got - end); /* read past the delimiter */
      q->got = end;
      q->req.bytes = end;
      return 0;
    }
    if (q->got == q->n) return -EMSGSIZE;
  more:
    if (*drained || *budget == 0) return 1;
  }
}

/* Serves the pending reads in order, from the read-back buffer and, if
 * `use_fd`, from the fd within the per-turn cap. */
static void pump(weft_stream *s, bool use_fd) {
  size_t budget = WEFT_STREAM_READ_CAP;
  bool drained = false;
  weft__req_hdr *h;
  while (!weft_is_closing(&s->base) && weft__stream_rq_busy(s) &&
         (h = weft__reqq_front(RQ(s))) != NULL) {
    weft__rd_req *q = rd_of(h);
    int st = from_buffer(s, q);
    if (st == 1) {
      if (!use_fd || drained || budget == 0) break;
      st = from_fd(s, q, &budget, &drained);
      if (st == 1) break;
    }
    rd_complete(s, q, st);
  }
  weft__stream_update(s);
}

void weft__stream_rd_pump(weft_stream *s) { pump(s, true); }

/* Rejects every pending future of the queue with `status`. */
static void reject_all(weft_stream *s, int status) {
  if (!weft__stream_rq_busy(s)) return;
  weft__req_pool *pool = pool_of(s);
  weft__req_hdr *h;
  while ((h = weft__reqq_front(RQ(s))) != NULL) {
    weft__reqq_cancel(h);
    weft__req_settle(pool, h, status);
  }
}

void weft__stream_rd_abort(weft_stream *s, int status) {
  if (s->flags & WEFT__S_LISTENING) return;
  reject_all(s, status);
  rbuf *b = weft__stream_rb(s);
  if (b != NULL) b->len = b->off = 0;
}

void weft__stream_rd_finish(weft_stream *s) {
  reject_all(s, -ECANCELED);
  if (!(s->flags & WEFT__S_X_LISTENER)) {
    weft__free(s->x.c.rb);
    s->x.c.rb = NULL;
  }
}

/* A read or accept future was cancelled: it leaves the queue, consuming
 * nothing; the reads behind it may be served by what it gave back. */
static void rd_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft__rd_req *q = arg;
  weft_stream *s = q->stream;
  bool front = weft__reqq_front(RQ(s)) == &q->req;
  if (!weft__reqq_cancel(&q->req)) return;
  if (front) give_back(s, q);
  weft__req_settle(pool_of(s), &q->req, -ECANCELED); /* only recycles */
  if (!(s->flags & WEFT__S_LISTENING) && front && weft__stream_rq_busy(s))
    pump(s, false);
  weft__stream_update(s);
}

/* ---- reads -------------------------------------------------------------- */

static int rd_check(weft_stream *s, const void *buf, size_t n,
                    weft_future **out) {
  if (s != NULL && s->base.ops != NULL) WEFT__CHECK_THREAD(s->base.loop);
  if (!is_stream(s) || buf == NULL || n == 0 || out == NULL ||
      (s->flags & WEFT__S_LISTENING))
    return -EINVAL;
  if (!(s->flags & (WEFT__S_CONNECTED | WEFT__S_CONNECTING)) ||
      weft__stream_fd(s) < 0)
    return -ENOTCONN;
  if (s->flags & WEFT__S_READING) return -EBUSY;
  return 0;
}

static void rd_init(weft__rd_req *q, weft_stream *s, unsigned mode) {
  q->stream = s;
  q->mode = (unsigned char)mode;
  q->buf = NULL;
  q->n = q->got = q->peeked = 0;
  q->client = NULL;
  q->dlen = 0;
}

static int rd_start(weft_stream *s, unsigned mode, void *buf, size_t n,
                    const void *delim, size_t dlen, weft_future **out) {
  weft__net *net = weft__net_get(s->base.loop);
  if (net == NULL) return -ENOMEM;
  int err = mode == RD_SOME ? 0 : rb_reserve(s, n);
  /* first in line with bytes buffered: served by a delivery run */
  bool now = rb_len(s) > 0 && !weft__stream_rq_busy(s);
  if (err == 0 && now) err = weft__net_reserve(net);
  weft__req_hdr *r = NULL;
  static const char *const ops[] = {
      [RD_SOME] = "weft_stream_read_some_future",
      [RD_EXACT] = "weft_stream_read_exact_future",
      [RD_UNTIL] = "weft_stream_read_until_future"};
  if (err == 0)
    err = weft__req_future_new_op(s->base.loop, &net->rdreqs, ops[mode], &r);
  if (err != 0) return err;
  weft__rd_req *q = rd_of(r);
  rd_init(q, s, mode);
  q->buf = buf;
  q->n = n;
  q->dlen = (unsigned char)dlen;
  if (dlen > 0) memcpy(q->delim, delim, dlen);
  weft_future_on_cancel(r->future, rd_cancel, q);
  rq_push(s, r);
  if (now) weft__net_schedule(net, &s->base);
  weft__stream_update(s);
  /* one reference for the caller, one for the request */
  *out = weft_future_ref(r->future);
  return 0;
}

int weft_stream_read_some_future(weft_stream *s, void *buf, size_t n,
                                 weft_future **out) {
  int err = rd_check(s, buf, n, out);
  return err != 0 ? err : rd_start(s, RD_SOME, buf, n, NULL, 0, out);
}

int weft_stream_read_exact_future(weft_stream *s, void *buf, size_t n,
                                  weft_future **out) {
  int err = rd_check(s, buf, n, out);
  return err != 0 ? err : rd_start(s, RD_EXACT, buf, n, NULL, 0, out);
}

int weft_stream_read_until_future(weft_stream *s, void *buf, size_t cap,
                                  const void *delim, size_t delim_len,
                                  weft_future **out) {
  if (delim == NULL || delim_len == 0 || delim_len > WEFT_STREAM_DELIM_MAX ||
      cap < delim_len)
    return -EINVAL;
  int err = rd_check(s, buf, cap, out);
  return err != 0 ? err
                  : rd_start(s, RD_UNTIL, buf, cap, delim, delim_len, out);
}

size_t weft_stream_read_buffered(const weft_stream *s) {
  return s != NULL && s->base.ops != NULL ? rb_len(s) : 0;
}

/* ---- read_start's side -------------------------------------------------- */

int weft__stream_rd_read_start(weft_stream *s) {
  if (weft__stream_rq_busy(s)) return -EBUSY;
  if (rb_len(s) > 0) { /* the buffered bytes go to the callback first */
    weft__net *net = weft__net_get(s->base.loop);
    int err = weft__net_reserve(net);
    if (err != 0) return err;
    weft__net_schedule(net, &s->base);
  }
  s->flags &= ~(unsigned)WEFT__S_RQ; /* u.r takes the storage */
  return 0;
}

bool weft__stream_rb_to_cb(weft_stream *s) {
  weft__net *net = weft__net_get(s->base.loop);
  while (rb_len(s) > 0 && (s->flags & WEFT__S_READING) &&
         !weft_is_closing(&s->base)) {
    weft_buf buf = {net->slab, WEFT_STREAM_SLAB_SIZE};
    if (s->u.r.alloc_cb) {
      buf = (weft_buf){NULL, 0};
      s->u.r.alloc_cb(s, rb_len(s), &buf);
      if (!(s->flags & WEFT__S_READING)) return false; /* stopped there */
      if (buf.base == NULL || buf.len == 0) {
        s->u.r.read_cb(s, -ENOBUFS, &buf);
        return false;
      }
    }
    /* a copy, so that the callback may start a read that moves the
     * read-back buffer */
    size_t k = rb_len(s) < buf.len ? rb_len(s) : buf.len;
    memcpy(buf.base, rb_data(s), k);
    rb_consume(s, k);
    s->u.r.read_cb(s, (ssize_t)k, &buf);
  }
  return (s->flags & WEFT__S_READING) && !weft_is_closing(&s->base);
}

/* ---- accept ------------------------------------------------------------- */

bool weft__stream_rd_accept(weft_stream *s, int fd) {
  weft__req_hdr *h;
  while (weft__stream_rq_busy(s) && (h = weft__reqq_front(RQ(s))) != NULL) {
    weft__rd_req *q = rd_of(h);
    weft_stream *c = q->client;
    weft__reqq_cancel(h);
    if (!weft__handle_usable(&c->base) || weft__stream_fd(c) >= 0) {
      weft__req_settle(pool_of(s), h, -EINVAL); /* the next one gets fd */
      continue;
    }
    /* accept4 made it non-blocking */
    weft__stream_adopt_fd(c, fd, WEFT__S_SOCKET | WEFT__S_CONNECTED);
    weft__req_settle(pool_of(s), h, 0);
    return true;
  }
  return false;
}

bool weft__stream_rd_accept_error(weft_stream *s, int err) {
  weft__req_hdr *h;
  if (!weft__stream_rq_busy(s) || (h = weft__reqq_front(RQ(s))) == NULL)
    return false;
  weft__reqq_cancel(h);
  weft__req_settle(pool_of(s), h, err);
  return true;
}

/* A connection the callback left waiting goes to the oldest accept
 * future. */
static void accept_waiting(weft_stream *s) {
  if (!(s->flags & WEFT__S_ACCEPT_WAIT) || !weft__stream_rq_busy(s)) return;
  int fd = s->x.l.accepted_fd;
  s->x.l.accepted_fd = -1;
  s->flags &= ~(unsigned)WEFT__S_ACCEPT_WAIT;
  if (!weft__stream_rd_accept(s, fd)) { /* every client was unusable */
    s->x.l.accepted_fd = fd;
    s->flags |= WEFT__S_ACCEPT_WAIT;
  }
  weft__stream_update(s);
}

void weft__stream_rd_deliver(weft_stream *s) {
  if (s->flags & WEFT__S_LISTENING)
    accept_waiting(s);
  else if (weft__stream_rq_busy(s))
    pump(s, false);
  else if ((s->flags & WEFT__S_READING) && rb_len(s) > 0)
    weft__stream_rb_to_cb(s);
}

int weft_stream_accept_future(weft_stream *server, weft_stream *client,
                              weft_future **out) {
  if (server != NULL && server->base.ops != NULL)
    WEFT__CHECK_THREAD(server->base.loop);
  if (!is_stream(server) || !is_stream(client) || out == NULL ||
      server == client || server->base.ops != client->base.ops ||
      !(server->flags & WEFT__S_LISTENING) || weft__stream_fd(client) >= 0)
    return -EINVAL;
  if (weft__stream_rq_busy(server)) {
    weft__list *q = RQ(server);
    WEFT__LIST_FOREACH(it, q) {
      if (rd_of(weft__req_of(it))->client == client) return -EINVAL;
    }
  }
  weft__net *net = weft__net_get(server->base.loop);
  if (net == NULL) return -ENOMEM;
  bool now =
      (server->flags & WEFT__S_ACCEPT_WAIT) && !weft__stream_rq_busy(server);
  int err = now ? weft__net_reserve(net) : 0;
  weft__req_hdr *r = NULL;
  if (err == 0)
    err = weft__req_future_new_op(server->base.loop, &net->rdreqs,
                                  "weft_stream_accept_future", &r);
  if (err != 0) return err;
  weft__rd_req *q = rd_of(r);
  rd_init(q, server, RD_ACCEPT);
  q->client = client;
  weft_future_on_cancel(r->future, rd_cancel, q);
  rq_push(server, r);
  if (now) weft__net_schedule(net, &server->base);
  weft__stream_update(server);
  *out = weft_future_ref(r->future);
  return 0;
}

/* ---- shutdown ----------------------------------------------------------- */

static void shutdown_done(weft_shutdown_req *req, int status) {
  weft__rd_req *q = req->data;
  weft__req_settle(pool_of(q->stream), &q->req, status);
}

/* Cancelled before the half-close was done: withdraw it. */
static void shutdown_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft__rd_req *q = arg;
  weft_stream *s = q->stream;
  if (s->shutdown_req != &q->sh || (s->flags & WEFT__S_SHUT_DONE))
    return; /* done: its completion recycles the request */
  s->shutdown_req = NULL;
  s->flags &= ~(unsigned)WEFT__S_SHUT_REQ;
  weft__stream_update(s);
  weft__req_settle(pool_of(s), &q->req, -ECANCELED); /* only recycles */
}

int weft_stream_shutdown_future(weft_stream *s, weft_future **out) {
  if (out == NULL || !is_stream(s)) return -EINVAL;
  WEFT__CHECK_THREAD(s->base.loop);
  weft__net *net = weft__net_get(s->base.loop);
  if (net == NULL) return -ENOMEM;
  weft__req_hdr *r;
  int err = weft__req_future_new_op(s->base.loop, &net->rdreqs,
                                    "weft_stream_shutdown_future", &r);
  if (err != 0) return err;
  weft__rd_req *q = rd_of(r);
  rd_init(q, s, RD_SHUTDOWN);
  q->sh.data = q;
  err = weft_stream_shutdown(&q->sh, s, shutdown_done);
  if (err != 0) {
    weft__req_future_undo(&net->rdreqs, r);
    return err;
  }
  weft_future_on_cancel(r->future, shutdown_cancel, q);
  *out = weft_future_ref(r->future);
  return 0;
}
