/* weft — UDP handles: recvmmsg batching into the loop's buffer, sends tried
 * at once and queued only when the socket buffer is full, sendmmsg batches
 * and the synchronous try forms, and Unix datagram sockets (the same
 * handle with an AF_UNIX socket). Socket options and names are in
 * io/udp_opt.c. */
#include <limits.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "udp_internal.h"

#define BATCH_MAX 64u
#define BATCH_DEFAULT 16u
#define RECV_ROUNDS 8 /* recvmmsg calls per turn per handle (fairness) */

enum {
  U_RECEIVING = 1u << 0,
  U_CONNECTED = 1u << 1,
  U_BOUND = 1u << 2,
  U_UNIX = 1u << 3 /* an AF_UNIX socket */
};

/* A queued request that is a weft_udp_batch_req (weft__req_hdr.flags; the
 * io layer's own flags use the low bits). */
#define REQ_BATCH (1u << 8)
/* sendmmsg headers built per call (on the stack) */
#define MMSG_CHUNK 64u

/* The future form of a batch draws its request from the send pool. */
_Static_assert(sizeof(weft_udp_batch_req) <= sizeof(weft_udp_send_req) &&
                   offsetof(weft_udp_batch_req, req) == sizeof(void *),
               "a batch request fits a pooled send request");

_Static_assert(sizeof(ev_io) <= sizeof(((weft_udp *)0)->io), "ev_io storage");
_Static_assert(offsetof(weft_udp, pend) == sizeof(weft_handle),
               "pending node must follow the handle base");

static void on_io(struct ev_loop *ev, ev_io *w, int revents);
static void udp_close(weft_handle *h);
static void udp_finish(weft_handle *h);
static void udp_deliver(weft_handle *h);

const weft__handle_ops weft__udp_ops = {WEFT_HANDLE_UDP, udp_close, udp_finish,
                                        udp_deliver};

#define SQ(u) WEFT__REQQ((u)->sq)
#define DONE(u) WEFT__REQQ((u)->done)

static inline weft_udp_send_req *send_of(weft__req_hdr *r) {
  return weft__req_outer(r);
}

static inline ev_io *io_watcher(weft_udp *u) { return (ev_io *)(void *)&u->io; }

int weft_udp_init(weft_loop *loop, weft_udp *u) {
  if (loop == NULL || u == NULL) return -EINVAL;
  WEFT__CHECK_INIT(loop, &u->base);
  weft__handle_init(loop, &u->base, &weft__udp_ops);
  weft__list_init(weft__pend_node(&u->base));
  memset(&u->io, 0, sizeof u->io);
  ev_io_init(io_watcher(u), on_io, -1, 0);
  io_watcher(u)->data = u;
  u->recv_cb = NULL;
  weft__list_init(SQ(u));
  weft__list_init(DONE(u));
  u->sq_count = 0;
  u->flags = 0;
  u->batch = u->vlen = BATCH_DEFAULT;
  u->rf = NULL;
  u->rf_base = NULL;
  u->rf_len = 0;
  u->rf_from = NULL;
  return 0;
}

static void update(weft_udp *u) {
  ev_io *w = io_watcher(u);
  int want = 0;
  if (w->fd >= 0) {
    if ((u->flags & U_RECEIVING) || u->rf != NULL) want |= EV_READ;
    if (!weft__list_empty(SQ(u))) want |= EV_WRITE;
  }
  weft__io_want(u->base.loop, w, want);
  bool busy = (u->flags & U_RECEIVING) || u->rf != NULL ||
              !weft__list_empty(SQ(u)) || !weft__list_empty(DONE(u));
  if (weft__handle_usable(&u->base) && busy)
    weft__handle_start(&u->base);
  else
    weft__handle_stop(&u->base);
}

static int ensure_socket(weft_udp *u, int family) {
  if (weft__udp_fd(u) >= 0) return 0;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ev_io_set(io_watcher(u), fd, 0);
  if (family == AF_UNIX) u->flags |= U_UNIX;
  return 0;
}

static void drop_socket(weft_udp *u) {
  close(weft__udp_fd(u));
  ev_io_set(io_watcher(u), -1, 0);
  u->flags &= ~(unsigned)U_UNIX;
  weft__net_fd_freed(u->base.loop);
}

/* The length of a destination of `u`: an IP address's on an IP handle, on
 * a Unix one an AF_UNIX path up to its NUL or an abstract name up to the
 * next NUL (udp.h); 0 if bad or NULL. The family is checked before
 * anything past it is read (a struct sockaddr is shorter than a
 * sockaddr_un). */
static socklen_t dest_len(const weft_udp *u, const struct sockaddr *addr) {
  if (addr == NULL) return 0;
  if ((addr->sa_family == AF_UNIX) != !!(u->flags & U_UNIX)) return 0;
  if (addr->sa_family != AF_UNIX) return weft_sockaddr_len(addr);
  const struct sockaddr_un *sun = (const void *)addr;
  size_t base = offsetof(struct sockaddr_un, sun_path);
  size_t cap = sizeof sun->sun_path;
  if (sun->sun_path[0] != '\0') {
    size_t n = strnlen(sun->sun_path, cap);
    return (socklen_t)(base + n + (n < cap));
  }
  size_t n = strnlen(sun->sun_path + 1, cap - 1);
  return n == 0 ? 0 : (socklen_t)(base + 1 + n);
}

/* Fills a sockaddr_un from a name as weft_pipe_bind() takes it; returns
 * its length or a negative error. */
static int unix_addr(struct sockaddr_un *sun, const char *name, size_t len) {
  if (name == NULL) return -EINVAL;
  if (len == 0) len = strlen(name);
  if (len == 0) return -EINVAL;
  if (len > sizeof sun->sun_path - (name[0] != '\0')) return -ENAMETOOLONG;
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, name, len);
  return (int)(offsetof(struct sockaddr_un, sun_path) + len +
               (name[0] != '\0'));
}

int weft_udp_bind_unix(weft_udp *u, const char *name, size_t len) {
  if (!weft__udp_usable(u) || weft__udp_fd(u) >= 0) return -EINVAL;
  struct sockaddr_un sun;
  int alen = unix_addr(&sun, name, len);
  if (alen < 0) return alen;
  int err = ensure_socket(u, AF_UNIX);
  if (err != 0) return err;
  if (bind(weft__udp_fd(u), (struct sockaddr *)&sun, (socklen_t)alen) < 0) {
    err = -errno;
    drop_socket(u);
    return err;
  }
  u->flags |= U_BOUND;
  return 0;
}

int weft_udp_connect_unix(weft_udp *u, const char *name, size_t len) {
  if (!weft__udp_usable(u) || (weft__udp_fd(u) >= 0 && !(u->flags & U_UNIX)))
    return -EINVAL;
  struct sockaddr_un sun;
  int alen = unix_addr(&sun, name, len);
  if (alen < 0) return alen;
  bool fresh = weft__udp_fd(u) < 0;
  int err = ensure_socket(u, AF_UNIX);
  if (err != 0) return err;
  if (connect(weft__udp_fd(u), (struct sockaddr *)&sun, (socklen_t)alen) < 0) {
    err = -errno;
    if (fresh) drop_socket(u);
    return err;
  }
  u->flags |= U_CONNECTED | U_BOUND;
  return 0;
}

int weft_udp_bind(weft_udp *u, const struct sockaddr *addr, unsigned flags) {
  socklen_t len;
  if (!weft__udp_usable(u) || weft__sockaddr_check(addr, &len) != 0 ||
      (flags & ~(unsigned)(WEFT_UDP_IPV6ONLY | WEFT_UDP_REUSEADDR)) ||
      ((flags & WEFT_UDP_IPV6ONLY) && addr->sa_family != AF_INET6) ||
      (u->flags & U_BOUND) || weft__udp_fd(u) >= 0)
    return -EINVAL;
  int err = ensure_socket(u, addr->sa_family);
  if (err != 0) return err;
  int fd = weft__udp_fd(u);
  if (addr->sa_family == AF_INET6)
    err = weft__sock_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                            !!(flags & WEFT_UDP_IPV6ONLY));
  if (err == 0 && (flags & WEFT_UDP_REUSEADDR)) {
    err = weft__sock_setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err == 0) err = weft__sock_setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  }
  if (err == 0 && bind(fd, addr, len) < 0) err = -errno;
  if (err != 0)
    drop_socket(u);
  else
    u->flags |= U_BOUND;
  return err;
}

int weft_udp_connect(weft_udp *u, const struct sockaddr *addr) {
  if (!weft__udp_usable(u)) return -EINVAL;
  if (addr == NULL) { /* dissolve the association */
    if (!(u->flags & U_CONNECTED)) return -ENOTCONN;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (connect(weft__udp_fd(u), &unspec, sizeof unspec) < 0 &&
        errno != EAFNOSUPPORT)
      return -errno;
    u->flags &= ~U_CONNECTED;
    return 0;
  }
  socklen_t len;
  if (weft__sockaddr_check(addr, &len) != 0) return -EINVAL;
  bool fresh = weft__udp_fd(u) < 0;
  int err = ensure_socket(u, addr->sa_family);
  if (err != 0) return err;
  if (connect(weft__udp_fd(u), addr, len) < 0) {
    err = -errno;
    if (fresh) drop_socket(u);
    return err;
  }
  u->flags |= U_CONNECTED | U_BOUND;
  return 0;
}

/* ---- sending ----------------------------------------------------------------
 */

static int try_send(weft_udp *u, weft_udp_send_req *req) {
  struct msghdr msg = {0};
  msg.msg_name = req->addrlen ? &req->addr : NULL;
  msg.msg_namelen = req->addrlen;
  msg.msg_iov = (struct iovec *)(void *)req->bufs;
  msg.msg_iovlen = req->nbufs;
  for (;;) {
    if (sendmsg(weft__udp_fd(u), &msg, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
      return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 1;
    return -errno;
  }
}

static void batch_run(weft__req_hdr *r);

static void send_run(weft__req_hdr *r) {
  if (r->flags & REQ_BATCH) {
    batch_run(r);
    return;
  }
  weft_udp_send_req *req = send_of(r);
  if (req->bufs != req->inline_bufs) weft__free(req->bufs);
  req->bufs = NULL;
  if (r->future != NULL)
    weft__req_settle(&weft__net_get(req->udp->base.loop)->sreqs, r, r->status);
  else if (req->cb)
    req->cb(req, r->status);
}

static void update_handle(weft_handle *h) { update((weft_udp *)h); }

static void udp_deliver(weft_handle *h) {
  weft__reqq_deliver(h, DONE((weft_udp *)h), update_handle, send_run);
}

static int batch_step(weft_udp *u, weft_udp_batch_req *b);

static void on_writable(weft_udp *u) {
  weft__req_hdr *r;
  while ((r = weft__reqq_front(SQ(u))) != NULL) {
    int st = (r->flags & REQ_BATCH) ? batch_step(u, weft__req_outer(r))
                                    : try_send(u, send_of(r));
    if (st == 1) break;
    u->sq_count--;
    weft__reqq_complete(DONE(u), r, st);
  }
  update(u);
  udp_deliver(&u->base);
}

static int send_check(weft_udp *u, const weft_buf *bufs, unsigned nbufs,
                      const struct sockaddr *addr) {
  if (u != NULL && u->base.ops == &weft__udp_ops)
    WEFT__CHECK_THREAD(u->base.loop);
  if (!weft__udp_usable(u) || bufs == NULL || nbufs == 0 || nbufs > IOV_MAX)
    return -EINVAL;
  if (addr == NULL) return (u->flags & U_CONNECTED) ? 0 : -EINVAL;
  if ((u->flags & U_CONNECTED) || dest_len(u, addr) == 0) return -EINVAL;
  return 0;
}

static int udp_send(weft_udp_send_req *req, weft_udp *u, const weft_buf *bufs,
                    unsigned nbufs, const struct sockaddr *addr) {
  weft__net *net = weft__net_get(u->base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__net_reserve(net);
  if (err == 0 && addr != NULL) err = ensure_socket(u, addr->sa_family);
  if (err != 0) return err;
  req->bufs = req->inline_bufs;
  if (nbufs > WEFT__WRITE_INLINE_BUFS &&
      (req->bufs = weft__malloc(sizeof *bufs * nbufs)) == NULL)
    return -ENOMEM;
  memcpy(req->bufs, bufs, sizeof *bufs * nbufs);
  req->nbufs = nbufs;
  req->udp = u;
  req->addrlen = dest_len(u, addr);
  if (addr) memcpy(&req->addr, addr, req->addrlen);
  u->flags |= U_BOUND; /* the kernel binds an ephemeral port on send */
  int r = weft__list_empty(SQ(u)) ? try_send(u, req) : 1;
  if (r <= 0) {
    weft__reqq_complete(DONE(u), &req->req, r);
    weft__net_schedule(net, &u->base);
  } else {
    weft__reqq_push(SQ(u), &req->req);
    u->sq_count++;
  }
  update(u);
  return 0;
}

int weft_udp_send(weft_udp_send_req *req, weft_udp *u, const weft_buf *bufs,
                  unsigned nbufs, const struct sockaddr *addr,
                  weft_udp_send_cb cb) {
  if (req == NULL) return -EINVAL;
  int err = send_check(u, bufs, nbufs, addr);
  if (err != 0) return err;
  weft__req_init(&req->req);
  req->req.future = NULL;
  req->cb = cb;
  return udp_send(req, u, bufs, nbufs, addr);
}

/* A send future was cancelled: a send still queued leaves the queue. */
static void send_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft_udp_send_req *req = arg;
  weft_udp *u = req->udp;
  if (!weft__reqq_cancel(&req->req)) return; /* already sent */
  u->sq_count--;
  update(u);
  req->req.status = -ECANCELED;
  send_run(&req->req); /* settle fails harmlessly; recycles */
}

int weft_udp_send_future(weft_udp *u, const weft_buf *bufs, unsigned nbufs,
                         const struct sockaddr *addr, weft_future **out) {
  if (out == NULL) return -EINVAL;
  int err = send_check(u, bufs, nbufs, addr);
  if (err != 0) return err;
  weft__net *net = weft__net_get(u->base.loop);
  if (net == NULL) return -ENOMEM;
  weft__req_hdr *r;
  err = weft__req_future_new(u->base.loop, &net->sreqs, &r);
  if (err != 0) return err;
  weft_udp_send_req *req = send_of(r);
  for (unsigned i = 0; i < nbufs; i++)
    r->bytes += bufs[i].len;
  req->cb = NULL;
  err = udp_send(req, u, bufs, nbufs, addr);
  if (err != 0) {
    weft__req_future_undo(&net->sreqs, r);
    return err;
  }
  weft_future_on_cancel(r->future, send_cancel, req);
  *out = weft_future_ref(r->future);
  return 0;
}

size_t weft_udp_send_queue_count(const weft_udp *u) {
  return u ? u->sq_count : 0;
}

/* ---- batches (sendmmsg) and the try forms ------------------------------- */

/* Sends d[0..n) with as few sendmmsg calls as the socket takes. Returns
 * how many went; *why says why it stopped: 0 all sent, 1 the socket
 * buffer is full, else the negative errno of datagram number <returned>. */
static unsigned send_many(weft_udp *u, const weft_udp_dgram *d, unsigned n,
                          int *why) {
  struct mmsghdr m[MMSG_CHUNK];
  unsigned sent = 0;
  *why = 0;
  while (sent < n) {
    unsigned k = n - sent < MMSG_CHUNK ? n - sent : MMSG_CHUNK;
    memset(m, 0, sizeof m[0] * k);
    for (unsigned i = 0; i < k; i++) {
      const weft_udp_dgram *g = &d[sent + i];
      m[i].msg_hdr.msg_name = (void *)(uintptr_t)g->addr;
      m[i].msg_hdr.msg_namelen = dest_len(u, g->addr);
      m[i].msg_hdr.msg_iov = (struct iovec *)(uintptr_t)g->bufs;
      m[i].msg_hdr.msg_iovlen = g->nbufs;
    }
    int r = sendmmsg(weft__udp_fd(u), m, k, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) {
      sent += (unsigned)r;
      continue; /* a short count: the next call says why */
    }
    if (r < 0 && errno == EINTR) continue;
    bool full =
        r == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS;
    *why = full ? 1 : -errno;
    break;
  }
  return sent;
}

/* Checks a batch and makes the socket; 0 or the error to return. */
static int batch_check(weft_udp *u, const weft_udp_dgram *d, unsigned n) {
  if (d == NULL || n == 0 || n > WEFT_UDP_BATCH_MAX) return -EINVAL;
  for (unsigned i = 0; i < n; i++) {
    int err = send_check(u, d[i].bufs, d[i].nbufs, d[i].addr);
    if (err != 0) return err;
  }
  int err = d[0].addr ? ensure_socket(u, d[0].addr->sa_family) : 0;
  if (err == 0) u->flags |= U_BOUND; /* the kernel binds on send */
  return err;
}

int weft_udp_try_send(weft_udp *u, const weft_buf *bufs, unsigned nbufs,
                      const struct sockaddr *addr) {
  weft_udp_dgram d = {bufs, nbufs, addr};
  int err = batch_check(u, &d, 1);
  if (err != 0) return err;
  if (!weft__list_empty(SQ(u))) return -EAGAIN;
  struct msghdr msg = {0};
  msg.msg_name = (void *)(uintptr_t)addr;
  msg.msg_namelen = dest_len(u, addr);
  msg.msg_iov = (struct iovec *)(uintptr_t)bufs;
  msg.msg_iovlen = nbufs;
  for (;;) {
    ssize_t r = sendmsg(weft__udp_fd(u), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0) return r > INT_MAX ? INT_MAX : (int)r;
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK || errno == ENOBUFS ? -EAGAIN : -errno;
  }
}

int weft_udp_try_send_batch(weft_udp *u, const weft_udp_dgram *dgrams,
                            unsigned n) {
  int err = batch_check(u, dgrams, n);
  if (err != 0) return err;
  if (!weft__list_empty(SQ(u))) return -EAGAIN;
  int why;
  unsigned sent = send_many(u, dgrams, n, &why);
  if (sent > 0) return (int)sent;
  return why == 1 ? -EAGAIN : why;
}

/* Sends what the socket takes of a batch's rest: 0 done, 1 blocked, or
 * the error of the datagram it stopped at. */
static int batch_step(weft_udp *u, weft_udp_batch_req *b) {
  int why;
  b->sent += send_many(u, b->dgrams + b->sent, b->n - b->sent, &why);
  return why;
}

static void batch_run(weft__req_hdr *r) {
  weft_udp_batch_req *b = weft__req_outer(r);
  if (r->future != NULL)
    weft__req_settle(&weft__net_get(b->udp->base.loop)->sreqs, r, r->status);
  else if (b->cb)
    b->cb(b, r->status, b->sent);
}

static int batch_start(weft_udp_batch_req *b, weft_udp *u,
                       const weft_udp_dgram *d, unsigned n) {
  weft__net *net = weft__net_get(u->base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__net_reserve(net);
  if (err != 0) return err;
  b->udp = u;
  b->dgrams = d;
  b->n = n;
  b->sent = 0;
  b->req.flags |= REQ_BATCH;
  int st = weft__list_empty(SQ(u)) ? batch_step(u, b) : 1;
  if (st <= 0) {
    weft__reqq_complete(DONE(u), &b->req, st);
    weft__net_schedule(net, &u->base);
  } else {
    weft__reqq_push(SQ(u), &b->req);
    u->sq_count++;
  }
  update(u);
  return 0;
}

int weft_udp_send_batch(weft_udp_batch_req *req, weft_udp *u,
                        const weft_udp_dgram *dgrams, unsigned n,
                        weft_udp_batch_cb cb) {
  if (req == NULL || !weft__udp_usable(u)) return -EINVAL;
  int err = batch_check(u, dgrams, n);
  if (err != 0) return err;
  weft__req_init(&req->req);
  req->req.future = NULL;
  req->cb = cb;
  return batch_start(req, u, dgrams, n);
}

/* A batch future was cancelled: a batch still queued leaves the queue. */
static void batch_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft_udp_batch_req *b = arg;
  if (!weft__reqq_cancel(&b->req)) return; /* already complete */
  b->udp->sq_count--;
  update(b->udp);
  b->req.status = -ECANCELED;
  batch_run(&b->req); /* settle fails harmlessly; recycles */
}

int weft_udp_send_batch_future(weft_udp *u, const weft_udp_dgram *dgrams,
                               unsigned n, weft_future **out) {
  if (out == NULL || !weft__udp_usable(u)) return -EINVAL;
  int err = batch_check(u, dgrams, n);
  if (err != 0) return err;
  weft__net *net = weft__net_get(u->base.loop);
  if (net == NULL) return -ENOMEM;
  weft__req_hdr *r;
  err = weft__req_future_new_op(u->base.loop, &net->sreqs,
                                "weft_udp_send_batch_future", &r);
  if (err != 0) return err;
  weft_udp_batch_req *b = weft__req_outer(r);
  r->bytes = n;
  b->cb = NULL;
  err = batch_start(b, u, dgrams, n);
  if (err != 0) {
    weft__req_future_undo(&net->sreqs, r);
    return err;
  }
  weft_future_on_cancel(r->future, batch_cancel, b);
  *out = weft_future_ref(r->future);
  return 0;
}

/* ---- receiving -------------------------------------------------------------
 */

/* recvmmsg asks for `vlen` datagrams, which adapts: it doubles (up to the
 * batch) while calls come back full and drops to what arrived otherwise.
 * A request-reply peer thus makes one recvmmsg of 1 per datagram, while a
 * flood gets full batches; the watcher is level-triggered, so returning
 * after a call that was not a full batch loses nothing. */
static const struct sockaddr *sender(struct sockaddr_storage *ss,
                                     socklen_t len) {
  if (len == 0) return NULL; /* an unnamed Unix socket */
  if (ss->ss_family == AF_UNIX && len < sizeof *ss)
    memset((char *)ss + len, 0, sizeof *ss - len); /* udp.h: zero-padded */
  return (const struct sockaddr *)ss;
}

static void on_readable(weft_udp *u) {
  weft__net *net = weft__net_get(u->base.loop);
  size_t slot = WEFT_STREAM_SLAB_SIZE / u->batch;
  struct mmsghdr msgs[BATCH_MAX];
  struct iovec iov[BATCH_MAX];
  struct sockaddr_storage addrs[BATCH_MAX];
  for (int round = 0; round < RECV_ROUNDS && (u->flags & U_RECEIVING);
       round++) {
    unsigned n = u->vlen;
    memset(msgs, 0, sizeof msgs[0] * n);
    for (unsigned i = 0; i < n; i++) {
      iov[i] = (struct iovec){net->slab + i * slot, slot};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    }
    int r = recvmmsg(weft__udp_fd(u), msgs, n, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        u->recv_cb(u, -errno, NULL, NULL, 0);
      return;
    }
    for (int i = 0; i < r && (u->flags & U_RECEIVING); i++) {
      weft_buf b = {iov[i].iov_base, msgs[i].msg_len};
      unsigned fl =
          (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? WEFT_UDP_TRUNCATED : 0;
      u->recv_cb(u, (ssize_t)msgs[i].msg_len, &b,
                 sender(&addrs[i], msgs[i].msg_hdr.msg_namelen), fl);
    }
    u->vlen = (unsigned)r < n ? (r > 0 ? (unsigned)r : 1)
                              : (n * 2 < u->batch ? n * 2 : u->batch);
    if ((unsigned)r < n || n < u->batch) return;
  }
}

/* Takes the pending receive future off the handle (the handle's reference
 * goes to the caller) and settles it with `n` bytes or an error n < 0. */
static void recv_future_settle(weft_udp *u, ssize_t n) {
  weft_future *f = u->rf;
  u->rf = NULL;
  u->rf_base = NULL;
  u->rf_from = NULL;
  update(u);
  if (n >= 0)
    weft_future_resolve_i64(f, (int64_t)n);
  else
    weft_future_reject(f, (int)n);
  weft_future_unref(f);
}

static void on_readable_future(weft_udp *u) {
  struct sockaddr_storage ss;
  for (;;) {
    socklen_t alen = sizeof ss;
    ssize_t n = recvfrom(weft__udp_fd(u), u->rf_base, u->rf_len, MSG_DONTWAIT,
                         (struct sockaddr *)&ss, &alen);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) {
      recv_future_settle(u, -errno);
      return;
    }
    if (u->rf_from != NULL) {
      memset(u->rf_from, 0, sizeof *u->rf_from);
      memcpy(u->rf_from, &ss, alen < sizeof ss ? alen : sizeof ss);
    }
    recv_future_settle(u, n);
    return;
  }
}

/* The receive future was cancelled: stop waiting for a datagram. */
static void recv_future_cancel(weft_future *f, void *arg) {
  weft_udp *u = arg;
  if (u->rf != f) return;
  u->rf = NULL;
  u->rf_base = NULL;
  u->rf_from = NULL;
  update(u);
  weft_future_unref(f);
}

int weft_udp_recv_future(weft_udp *u, void *base, size_t len,
                         struct sockaddr_storage *from, weft_future **out) {
  if (!weft__udp_usable(u) || out == NULL || (base == NULL && len > 0) ||
      weft__udp_fd(u) < 0 || !(u->flags & U_BOUND))
    return -EINVAL;
  if ((u->flags & U_RECEIVING) || u->rf != NULL) return -EBUSY;
  weft_future *f;
  int err = weft_future_new_op(u->base.loop, "weft_udp_recv_future", &f);
  if (err != 0) return err;
  weft_future_on_cancel(f, recv_future_cancel, u);
  u->rf = f; /* the handle's reference */
  u->rf_base = base;
  u->rf_len = len;
  u->rf_from = from;
  update(u);
  *out = weft_future_ref(f);
  return 0;
}

int weft_udp_recv_start(weft_udp *u, weft_udp_recv_cb cb) {
  if (u != NULL && u->base.ops == &weft__udp_ops)
    WEFT__CHECK_THREAD(u->base.loop);
  if (!weft__udp_usable(u) || cb == NULL || weft__udp_fd(u) < 0 ||
      !(u->flags & U_BOUND))
    return -EINVAL;
  if (u->rf != NULL) return -EBUSY;
  weft__net *net = weft__net_get(u->base.loop);
  if (net == NULL) return -ENOMEM;
  if (net->slab == NULL &&
      (net->slab = weft__malloc(WEFT_STREAM_SLAB_SIZE)) == NULL)
    return -ENOMEM;
  u->recv_cb = cb;
  u->flags |= U_RECEIVING;
  update(u);
  return 0;
}

int weft_udp_recv_stop(weft_udp *u) {
  if (u == NULL || u->base.ops != &weft__udp_ops) return -EINVAL;
  WEFT__CHECK_THREAD(u->base.loop);
  u->flags &= ~U_RECEIVING;
  update(u);
  return 0;
}

int weft_udp_set_batch(weft_udp *u, unsigned batch) {
  if (u == NULL || u->base.ops != &weft__udp_ops || batch == 0 ||
      batch > BATCH_MAX)
    return -EINVAL;
  u->batch = u->vlen = batch;
  return 0;
}

static void on_io(struct ev_loop *ev, ev_io *w, int revents) {
  WEFT__UNUSED(ev);
  weft_udp *u = w->data;
  weft__net *net = weft__net_get(u->base.loop);
  weft__net_io_enter(net);
  if (revents & EV_WRITE) on_writable(u);
  if ((revents & EV_READ) && (u->flags & U_RECEIVING)) on_readable(u);
  if ((revents & EV_READ) && u->rf != NULL) on_readable_future(u);
  weft__net_io_leave(net);
}

static void udp_close(weft_handle *h) {
  weft_udp *u = (weft_udp *)h;
  weft__io_stop(h->loop, io_watcher(u));
  u->flags &= ~U_RECEIVING;
  if (weft__udp_fd(u) >= 0) drop_socket(u);
  weft_future *f = u->rf; /* no update(): the watcher is stopped */
  if (f != NULL) {
    u->rf = NULL;
    u->rf_base = NULL;
    u->rf_from = NULL;
    weft_future_reject(f, -ECANCELED);
    weft_future_unref(f);
  }
}

static void udp_finish(weft_handle *h) {
  weft_udp *u = (weft_udp *)h;
  weft__list *node = weft__pend_node(h);
  if (weft__list_linked(node)) weft__list_unlink(node);
  weft__reqq_cancel_all(SQ(u), DONE(u), -ECANCELED);
  u->sq_count = 0;
  weft__reqq_flush(DONE(u), send_run);
}
