/* weft — TCP handles: a stream whose socket is made by the first bind or
 * connect, with the address's family. A failed connect closes the socket
 * again, so the handle can try the next address (what a connect-by-name
 * over several resolved addresses needs). */
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static const weft__handle_ops tcp_ops = {WEFT_HANDLE_TCP, weft__stream_close,
                                         weft__stream_finish,
                                         weft__stream_deliver};

static bool is_tcp(const weft_tcp *t) {
  return t != NULL && t->stream.base.ops == &tcp_ops;
}

static bool usable(const weft_tcp *t) {
  return is_tcp(t) && weft__handle_usable(&t->stream.base);
}

int weft_tcp_init(weft_loop *loop, weft_tcp *t) {
  if (loop == NULL || t == NULL) return -EINVAL;
  WEFT__CHECK_INIT(loop, &t->stream.base);
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
  unsigned flags = WEFT__S_SOCKET;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
    flags |= WEFT__S_CONNECTED;
  return weft__stream_set_fd(&t->stream, fd, flags);
}

/* Makes the socket if there is none yet; notes that this call made it. */
static int ensure_socket(weft_tcp *t, int family) {
  if (weft__stream_fd(&t->stream) >= 0) return 0;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  weft__stream_adopt_fd(&t->stream, fd, WEFT__S_SOCKET | WEFT__S_OWN_SOCKET);
  return 0;
}

/* Undoes ensure_socket() after a failed call that made the socket. */
static void undo_socket(weft_tcp *t) {
  if (t->stream.flags & WEFT__S_OWN_SOCKET) weft__stream_reset(&t->stream);
}

static int bind_opts(int fd, int family, unsigned flags) {
  int err = weft__sock_setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (err == 0 && family == AF_INET6)
    err = weft__sock_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                            !!(flags & WEFT_TCP_IPV6ONLY));
  if (err == 0 && (flags & WEFT_TCP_REUSEPORT))
    err = weft__sock_setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  return err;
}

int weft_tcp_bind(weft_tcp *t, const struct sockaddr *addr, unsigned flags) {
  socklen_t len;
  if (!usable(t) || weft__sockaddr_check(addr, &len) != 0 ||
      (flags & ~(unsigned)(WEFT_TCP_IPV6ONLY | WEFT_TCP_REUSEPORT)) ||
      ((flags & WEFT_TCP_IPV6ONLY) && addr->sa_family != AF_INET6) ||
      (t->stream.flags &
       (WEFT__S_CONNECTED | WEFT__S_CONNECTING | WEFT__S_LISTENING)))
    return -EINVAL;
  int err = ensure_socket(t, addr->sa_family);
  if (err != 0) return err;
  int fd = weft__stream_fd(&t->stream);
  err = bind_opts(fd, addr->sa_family, flags);
  if (err == 0 && bind(fd, addr, len) < 0) err = -errno;
  if (err != 0)
    undo_socket(t);
  else
    t->stream.flags &= ~WEFT__S_OWN_SOCKET;
  return err;
}

int weft_tcp_listen(weft_tcp *t, int backlog, weft_connection_cb cb) {
  if (!usable(t)) return -EINVAL;
  return weft__stream_listen(&t->stream, backlog, cb);
}

static int connect_check(weft_tcp *t, const struct sockaddr *addr,
                         socklen_t *len) {
  if (!usable(t) || weft__sockaddr_check(addr, len) != 0 ||
      (t->stream.flags & (WEFT__S_LISTENING | WEFT__S_CONNECTED)))
    return -EINVAL;
  if (t->stream.flags & WEFT__S_CONNECTING) return -EALREADY;
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
  do
    r = connect(weft__stream_fd(&t->stream), addr, len);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS) err = -errno;
  /* a connect that completed at once is delivered by a deferred run:
   * reserve it (TCP connects almost always go on in the background) */
  else if (r == 0)
    err = weft__net_reserve(net);
  if (err != 0) {
    weft__stream_reset(&t->stream); /* closes the socket made or bound */
    return err;
  }
  t->stream.flags &= ~WEFT__S_OWN_SOCKET;
  return weft__stream_connect(&t->stream, req, cb, r < 0);
}

int weft_tcp_connect(weft_connect_req *req, weft_tcp *t,
                     const struct sockaddr *addr, weft_connect_cb cb) {
  socklen_t len;
  if (req == NULL) return -EINVAL;
  int err = connect_check(t, addr, &len);
  if (err != 0) return err;
  req->req.future = NULL;
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
  weft__req_hdr *r;
  err = weft__req_future_new_op(t->stream.base.loop, &net->creqs,
                                "weft_tcp_connect_future", &r);
  if (err != 0) return err;
  weft_connect_req *req = weft__req_outer(r);
  err = tcp_connect(req, t, addr, len, NULL);
  if (err != 0) {
    weft__req_future_undo(&net->creqs, r);
    return err;
  }
  weft_future_on_cancel(r->future, weft__future_cancel_connect, req);
  *out = weft_future_ref(r->future);
  return 0;
}

int weft_tcp_nodelay(weft_tcp *t, bool enable) {
  if (!usable(t) || weft__stream_fd(&t->stream) < 0) return -EINVAL;
  return weft__sock_setopt(weft__stream_fd(&t->stream), IPPROTO_TCP,
                           TCP_NODELAY, enable);
}

int weft_tcp_keepalive(weft_tcp *t, bool enable, unsigned delay_s) {
  if (!usable(t) || weft__stream_fd(&t->stream) < 0 ||
      (enable && (delay_s == 0 || delay_s > INT32_MAX)))
    return -EINVAL;
  int fd = weft__stream_fd(&t->stream);
  int err = weft__sock_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, enable);
  if (err == 0 && enable)
    err = weft__sock_setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)delay_s);
  return err;
}

int weft_tcp_keepalive_ex(weft_tcp *t, bool enable, unsigned idle_s,
                          unsigned interval_s, unsigned count) {
  if (!usable(t) || weft__stream_fd(&t->stream) < 0) return -EINVAL;
  int fd = weft__stream_fd(&t->stream);
  if (!enable) return weft__sock_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
  if (idle_s == 0 || idle_s > WEFT_TCP_KEEPALIVE_TIME_MAX || interval_s == 0 ||
      interval_s > WEFT_TCP_KEEPALIVE_TIME_MAX || count == 0 ||
      count > WEFT_TCP_KEEPALIVE_COUNT_MAX)
    return -EINVAL;
  /* the timings first: a socket is never left keepalive with stale ones */
  int err = weft__sock_setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_s);
  if (err == 0)
    err = weft__sock_setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)interval_s);
  if (err == 0)
    err = weft__sock_setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)count);
  if (err == 0) err = weft__sock_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  return err;
}

static int name_of(const weft_tcp *t, struct sockaddr *addr, socklen_t *len,
                   int (*fn)(int, struct sockaddr *, socklen_t *)) {
  if (!is_tcp(t)) return -EINVAL;
  return weft__sock_name(weft__stream_fd(&t->stream), addr, len, fn);
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
