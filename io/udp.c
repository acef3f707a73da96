/* weft — UDP handles: recvmmsg batching into the loop's buffer, sends tried
 * at once and queued only when the socket buffer is full. */
#include <arpa/inet.h>
#include <net/if.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define BATCH_MAX 64u
#define BATCH_DEFAULT 16u
#define RECV_ROUNDS 8 /* recvmmsg calls per turn per handle (fairness) */

enum { U_RECEIVING = 1u << 0, U_CONNECTED = 1u << 1, U_BOUND = 1u << 2 };

_Static_assert(sizeof(ev_io) <= sizeof(((weft_udp *)0)->io), "ev_io storage");
_Static_assert(offsetof(weft_udp, pend) == sizeof(weft_handle),
               "pending node must follow the handle base");

static void on_io(struct ev_loop *ev, ev_io *w, int revents);
static void udp_close(weft_handle *h);
static void udp_finish(weft_handle *h);
static void udp_deliver(weft_handle *h);

static const weft__handle_ops udp_ops = {WEFT_HANDLE_UDP, udp_close, udp_finish,
                                         udp_deliver};

#define SQ(u) WEFT__REQQ((u)->sq)
#define DONE(u) WEFT__REQQ((u)->done)

static inline weft_udp_send_req *send_of(weft__req_hdr *r) {
  return weft__req_outer(r);
}

static inline ev_io *io_watcher(weft_udp *u) { return (ev_io *)(void *)&u->io; }
static inline int fd_of(const weft_udp *u) {
  const void *storage = &u->io;
  const ev_io *w = storage;
  return w->fd;
}

static bool usable(const weft_udp *u) {
  return u != NULL && u->base.ops == &udp_ops && weft__handle_usable(&u->base);
}

int weft_udp_init(weft_loop *loop, weft_udp *u) {
  if (loop == NULL || u == NULL) return -EINVAL;
  weft__handle_init(loop, &u->base, &udp_ops);
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
  if (fd_of(u) >= 0) return 0;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ev_io_set(io_watcher(u), fd, 0);
  return 0;
}

static void drop_socket(weft_udp *u) {
  close(fd_of(u));
  ev_io_set(io_watcher(u), -1, 0);
  weft__net_fd_freed(u->base.loop);
}

int weft_udp_bind(weft_udp *u, const struct sockaddr *addr, unsigned flags) {
  socklen_t len;
  if (!usable(u) || weft__sockaddr_check(addr, &len) != 0 ||
      (flags & ~(unsigned)(WEFT_UDP_IPV6ONLY | WEFT_UDP_REUSEADDR)) ||
      ((flags & WEFT_UDP_IPV6ONLY) && addr->sa_family != AF_INET6) ||
      (u->flags & U_BOUND) || fd_of(u) >= 0)
    return -EINVAL;
  int err = ensure_socket(u, addr->sa_family);
  if (err != 0) return err;
  int fd = fd_of(u);
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
  if (!usable(u)) return -EINVAL;
  if (addr == NULL) { /* dissolve the association */
    if (!(u->flags & U_CONNECTED)) return -ENOTCONN;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (connect(fd_of(u), &unspec, sizeof unspec) < 0 && errno != EAFNOSUPPORT)
      return -errno;
    u->flags &= ~U_CONNECTED;
    return 0;
  }
  socklen_t len;
  if (weft__sockaddr_check(addr, &len) != 0) return -EINVAL;
  bool fresh = fd_of(u) < 0;
  int err = ensure_socket(u, addr->sa_family);
  if (err != 0) return err;
  if (connect(fd_of(u), addr, len) < 0) {
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
    if (sendmsg(fd_of(u), &msg, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 1;
    return -errno;
  }
}

static void send_run(weft__req_hdr *r) {
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

static void on_writable(weft_udp *u) {
  weft__req_hdr *r;
  while ((r = weft__reqq_front(SQ(u))) != NULL) {
    int st = try_send(u, send_of(r));
    if (st == 1) break;
    u->sq_count--;
    weft__reqq_complete(DONE(u), r, st);
  }
  update(u);
  udp_deliver(&u->base);
}

static int send_check(weft_udp *u, const weft_buf *bufs, unsigned nbufs,
                      const struct sockaddr *addr) {
  socklen_t len;
  if (!usable(u) || bufs == NULL || nbufs == 0 || nbufs > IOV_MAX)
    return -EINVAL;
  if (addr == NULL) return (u->flags & U_CONNECTED) ? 0 : -EINVAL;
  if ((u->flags & U_CONNECTED) || weft__sockaddr_check(addr, &len) != 0)
    return -EINVAL;
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
  req->addrlen = addr ? weft_sockaddr_len(addr) : 0;
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

/* ---- receiving -------------------------------------------------------------
 */

/* recvmmsg asks for `vlen` datagrams, which adapts: it doubles (up to the
 * batch) while calls come back full and drops to what arrived otherwise.
 * A request-reply peer thus makes one recvmmsg of 1 per datagram, while a
 * flood gets full batches; the watcher is level-triggered, so returning
 * after a call that was not a full batch loses nothing. */
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
    int r = recvmmsg(fd_of(u), msgs, n, MSG_DONTWAIT, NULL);
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
                 (const struct sockaddr *)&addrs[i], fl);
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
    ssize_t n = recvfrom(fd_of(u), u->rf_base, u->rf_len, MSG_DONTWAIT,
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
  if (!usable(u) || out == NULL || (base == NULL && len > 0) || fd_of(u) < 0 ||
      !(u->flags & U_BOUND))
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
  if (!usable(u) || cb == NULL || fd_of(u) < 0 || !(u->flags & U_BOUND))
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
  if (u == NULL || u->base.ops != &udp_ops) return -EINVAL;
  u->flags &= ~U_RECEIVING;
  update(u);
  return 0;
}

int weft_udp_set_batch(weft_udp *u, unsigned batch) {
  if (u == NULL || u->base.ops != &udp_ops || batch == 0 || batch > BATCH_MAX)
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
  if (fd_of(u) >= 0) drop_socket(u);
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

/* ---- options
 * ----------------------------------------------------------------- */

static int sock_family(const weft_udp *u) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd_of(u), (struct sockaddr *)&ss, &len) < 0) return -errno;
  return ss.ss_family;
}

int weft_udp_set_broadcast(weft_udp *u, bool on) {
  if (!usable(u) || fd_of(u) < 0) return -EINVAL;
  return weft__sock_setopt(fd_of(u), SOL_SOCKET, SO_BROADCAST, on);
}

int weft_udp_set_multicast_ttl(weft_udp *u, int ttl) {
  if (!usable(u) || fd_of(u) < 0 || ttl < 0 || ttl > 255) return -EINVAL;
  if (sock_family(u) == AF_INET6)
    return weft__sock_setopt(fd_of(u), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl);
  return weft__sock_setopt(fd_of(u), IPPROTO_IP, IP_MULTICAST_TTL, ttl);
}

int weft_udp_set_multicast_loop(weft_udp *u, bool on) {
  if (!usable(u) || fd_of(u) < 0) return -EINVAL;
  if (sock_family(u) == AF_INET6)
    return weft__sock_setopt(fd_of(u), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on);
  return weft__sock_setopt(fd_of(u), IPPROTO_IP, IP_MULTICAST_LOOP, on);
}

/* An IPv6 interface: a decimal index or a name; 0 for NULL. */
static int if_index(const char *iface, unsigned *out) {
  *out = 0;
  if (iface == NULL) return 0;
  char *end;
  unsigned long v = strtoul(iface, &end, 10);
  if (*iface != '\0' && *end == '\0')
    *out = (unsigned)v;
  else
    *out = if_nametoindex(iface);
  return *out != 0 ? 0 : -EINVAL;
}

int weft_udp_set_multicast_interface(weft_udp *u, const char *iface) {
  if (!usable(u) || fd_of(u) < 0) return -EINVAL;
  if (sock_family(u) == AF_INET6) {
    unsigned idx;
    if (if_index(iface, &idx) != 0) return -EINVAL;
    return weft__sock_setopt(fd_of(u), IPPROTO_IPV6, IPV6_MULTICAST_IF,
                             (int)idx);
  }
  struct in_addr a = {htonl(INADDR_ANY)};
  if (iface != NULL && inet_pton(AF_INET, iface, &a) != 1) return -EINVAL;
  return setsockopt(fd_of(u), IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a) < 0
             ? -errno
             : 0;
}

static int membership6(weft_udp *u, const char *group, const char *iface,
                       bool join) {
  struct ipv6_mreq m;
  memset(&m, 0, sizeof m);
  unsigned idx;
  if (inet_pton(AF_INET6, group, &m.ipv6mr_multiaddr) != 1 ||
      if_index(iface, &idx) != 0)
    return -EINVAL;
  m.ipv6mr_interface = idx;
  int opt = join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP;
  return setsockopt(fd_of(u), IPPROTO_IPV6, opt, &m, sizeof m) < 0 ? -errno : 0;
}

int weft_udp_set_membership(weft_udp *u, const char *group, const char *iface,
                            bool join) {
  if (!usable(u) || fd_of(u) < 0 || group == NULL) return -EINVAL;
  if (sock_family(u) == AF_INET6) return membership6(u, group, iface, join);
  struct ip_mreq m;
  memset(&m, 0, sizeof m);
  m.imr_interface.s_addr = htonl(INADDR_ANY);
  if (inet_pton(AF_INET, group, &m.imr_multiaddr) != 1 ||
      (iface != NULL && inet_pton(AF_INET, iface, &m.imr_interface) != 1))
    return -EINVAL;
  int opt = join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP;
  return setsockopt(fd_of(u), IPPROTO_IP, opt, &m, sizeof m) < 0 ? -errno : 0;
}

static int name_of(const weft_udp *u, struct sockaddr *addr, socklen_t *len,
                   int (*fn)(int, struct sockaddr *, socklen_t *)) {
  if (u == NULL || u->base.ops != &udp_ops) return -EINVAL;
  return weft__sock_name(fd_of(u), addr, len, fn);
}

int weft_udp_getsockname(const weft_udp *u, struct sockaddr *addr,
                         socklen_t *len) {
  return name_of(u, addr, len, getsockname);
}

int weft_udp_getpeername(const weft_udp *u, struct sockaddr *addr,
                         socklen_t *len) {
  return name_of(u, addr, len, getpeername);
}
