/* weft — TCP handles: a stream whose socket is made by the first bind or
 * connect, with the address's family. A failed connect closes the socket
 * again, so the handle can try the next address (what a connect-by-name
 * over several resolved addresses needs). */
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static const weft__handle_ops tcp_ops = {WEFT_HANDLE_TCP, weft__stream_close,
                                         weft__stream_finish};

static bool is_tcp(const weft_tcp *t) {
  return t != NULL && t->stream.base.ops == &tcp_ops;
}

static bool usable(const weft_tcp *t) {
  return is_tcp(t) && weft__handle_usable(&t->stream.base);
}

int weft_tcp_init(weft_loop *loop, weft_tcp *t) {
  if (loop == NULL || t == NULL) return -EINVAL;
  weft__stream_init(loop, &t->stream, &tcp_ops);
  return 0;
}

size_t weft_tcp_handle_size(void) { return sizeof(weft_tcp); }

static int sock_type(int fd, int *type) {
  socklen_t len = sizeof *type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &len) < 0 ? -errno : 0;
}

int weft_tcp_open(weft_tcp *t, int fd) {
  if (!usable(t) || fd < 0 || weft__stream_fd(&t->stream) >= 0) return -EINVAL;
  int type, err = sock_type(fd, &type);
  if (err != 0) return err;
  if (type != SOCK_STREAM) return -EINVAL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  /* a connected socket can read and write; a fresh or listening one not */
  unsigned flags = S_SOCKET;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) flags |= S_CONNECTED;
  return weft__stream_set_fd(&t->stream, fd, flags);
}

/* Makes the socket if there is none yet; notes that this call made it. */
static int ensure_socket(weft_tcp *t, int family) {
  if (weft__stream_fd(&t->stream) >= 0) return 0;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int err = weft__stream_set_fd(&t->stream, fd, S_SOCKET | S_OWN_SOCKET);
  if (err != 0) close(fd);
  return err;
}

/* Undoes ensure_socket() after a failed call that made the socket. */
static void undo_socket(weft_tcp *t) {
  if (t->stream.flags & S_OWN_SOCKET) weft__stream_reset(&t->stream);
}

static int set_opt(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

static int bind_opts(int fd, int family, unsigned flags) {
  int err = set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (err == 0 && family == AF_INET6)
    err = set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, !!(flags & WEFT_TCP_IPV6ONLY));
  if (err == 0 && (flags & WEFT_TCP_REUSEPORT))
    err = set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  return err;
}

int weft_tcp_bind(weft_tcp *t, const struct sockaddr *addr, unsigned flags) {
  socklen_t len;
  if (!usable(t) || weft__sockaddr_check(addr, &len) != 0 ||
      (flags & ~(unsigned)(WEFT_TCP_IPV6ONLY | WEFT_TCP_REUSEPORT)) ||
      ((flags & WEFT_TCP_IPV6ONLY) && addr->sa_family != AF_INET6) ||
      (t->stream.flags & (S_CONNECTED | S_CONNECTING | S_LISTENING)))
    return -EINVAL;
  int err = ensure_socket(t, addr->sa_family);
  if (err != 0) return err;
  int fd = weft__stream_fd(&t->stream);
  err = bind_opts(fd, addr->sa_family, flags);
  if (err == 0 && bind(fd, addr, len) < 0) err = -errno;
  if (err != 0) undo_socket(t);
  else t->stream.flags &= ~S_OWN_SOCKET;
  return err;
}

int weft_tcp_listen(weft_tcp *t, int backlog, weft_connection_cb cb) {
  if (!usable(t)) return -EINVAL;
  return weft__stream_listen(&t->stream, backlog, cb);
}

static int connect_check(weft_tcp *t, const struct sockaddr *addr,
                         socklen_t *len) {
  if (!usable(t) || weft__sockaddr_check(addr, len) != 0 ||
      (t->stream.flags & (S_LISTENING | S_CONNECTED)))
    return -EINVAL;
  if (t->stream.flags & S_CONNECTING) return -EALREADY;
  return 0;
}

/* Starts the connect; a non-NULL future makes it the future form. */
static int tcp_connect(weft_connect_req *req, weft_tcp *t,
                       const struct sockaddr *addr, socklen_t len,
                       weft_connect_cb cb) {
  weft__net *net = weft__net_get(t->stream.base.loop);
  if (net == NULL) return -ENOMEM;
  int err = ensure_socket(t, addr->sa_family);
  if (err != 0) return err;
  int r;
  do r = connect(weft__stream_fd(&t->stream), addr, len);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS) err = -errno;
  /* a connect that completed at once is delivered by a deferred run:
   * reserve it (TCP connects almost always go on in the background) */
  else if (r == 0) err = weft__net_reserve(net);
  if (err != 0) {
    weft__stream_reset(&t->stream); /* closes the socket made or bound */
    return err;
  }
  t->stream.flags &= ~S_OWN_SOCKET;
  return weft__stream_connect(&t->stream, req, cb, r < 0);
}

int weft_tcp_connect(weft_connect_req *req, weft_tcp *t,
                     const struct sockaddr *addr, weft_connect_cb cb) {
  socklen_t len;
  if (req == NULL) return -EINVAL;
  int err = connect_check(t, addr, &len);
  if (err != 0) return err;
  req->future = NULL;
  return tcp_connect(req, t, addr, len, cb);
}

int weft_tcp_connect_future(weft_tcp *t, const struct sockaddr *addr,
                            weft_future **out) {
  socklen_t len;
  if (out == NULL) return -EINVAL;
  int err = connect_check(t, addr, &len);
  if (err != 0) return err;
  weft__net *net = weft__net_get(t->stream.base.loop);
  if (net == NULL) return -ENOMEM;
  weft_connect_req *req = net->free_creqs;
  if (req != NULL) net->free_creqs = req->data;
  else if ((req = weft__malloc(sizeof *req)) == NULL) return -ENOMEM;
  weft_future *f = NULL;
  err = weft_future_new(t->stream.base.loop, &f);
  if (err == 0) {
    req->future = f;
    err = tcp_connect(req, t, addr, len, NULL);
  }
  if (err != 0) {
    weft_future_unref(f);
    req->data = net->free_creqs;
    net->free_creqs = req;
    return err;
  }
  weft_future_on_cancel(f, weft__future_cancel_connect, req);
  *out = weft_future_ref(f);
  return 0;
}

/* Settles a connect future and returns its request to the free list. */
void weft__connect_settle(weft_connect_req *req, int status) {
  weft_future *f = req->future;
  weft__net *net = weft__net_get(weft_future_loop(f));
  if (status == 0) weft_future_resolve_i64(f, 0);
  else weft_future_reject(f, status);
  req->future = NULL;
  req->data = net->free_creqs;
  net->free_creqs = req;
  weft_future_unref(f);
}

/* A connect future was cancelled: abort the connect (close the socket,
 * back to the initial state); writes queued behind it are cancelled. */
void weft__future_cancel_connect(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft_connect_req *req = arg;
  weft_stream *s = req->stream;
  if (s->connect_req != req || (s->flags & S_CONNECT_DONE)) return;
  s->connect_req = NULL;
  weft__stream_abort(s, -ECANCELED);
  weft__connect_settle(req, -ECANCELED); /* only recycles: f is settled */
}

int weft_tcp_nodelay(weft_tcp *t, bool enable) {
  if (!usable(t) || weft__stream_fd(&t->stream) < 0) return -EINVAL;
  return set_opt(weft__stream_fd(&t->stream), IPPROTO_TCP, TCP_NODELAY, enable);
}

int weft_tcp_keepalive(weft_tcp *t, bool enable, unsigned delay_s) {
  if (!usable(t) || weft__stream_fd(&t->stream) < 0 ||
      (enable && (delay_s == 0 || delay_s > INT32_MAX)))
    return -EINVAL;
  int fd = weft__stream_fd(&t->stream);
  int err = set_opt(fd, SOL_SOCKET, SO_KEEPALIVE, enable);
  if (err == 0 && enable) err = set_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)delay_s);
  return err;
}

static int name_of(const weft_tcp *t, struct sockaddr *addr, socklen_t *len,
                   int (*fn)(int, struct sockaddr *, socklen_t *)) {
  if (!is_tcp(t) || addr == NULL || len == NULL ||
      weft__stream_fd(&t->stream) < 0)
    return -EINVAL;
  return fn(weft__stream_fd(&t->stream), addr, len) < 0 ? -errno : 0;
}

int weft_tcp_getsockname(const weft_tcp *t, struct sockaddr *addr,
                         socklen_t *len) {
  return name_of(t, addr, len, getsockname);
}

int weft_tcp_getpeername(const weft_tcp *t, struct sockaddr *addr,
                         socklen_t *len) {
  return name_of(t, addr, len, getpeername);
}

int weft_tcp_close_reset(weft_tcp *t, weft_close_cb cb) {
  if (!usable(t)) return -EINVAL;
  int fd = weft__stream_fd(&t->stream);
  if (fd >= 0) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  return weft_close(&t->stream.base, cb);
}
