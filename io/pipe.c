/* weft — pipe handles: Unix stream sockets and any fd as a stream. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/* Closing also closes the passed fds nobody took (io/pipe_fds.c). */
static void pipe_close(weft_handle *h) {
  weft__pipe_fds_close((weft_pipe *)(void *)h);
  weft__stream_close(h);
}

static const weft__handle_ops pipe_ops = {
    WEFT_HANDLE_PIPE, pipe_close, weft__stream_finish, weft__stream_deliver};

static bool usable(const weft_pipe *p) {
  return p != NULL && p->stream.base.ops == &pipe_ops &&
         weft__handle_usable(&p->stream.base);
}

int weft_pipe_init(weft_loop *loop, weft_pipe *p) {
  if (loop == NULL || p == NULL) return -EINVAL;
  WEFT__CHECK_INIT(loop, &p->stream.base);
  weft__stream_init(loop, &p->stream, &pipe_ops);
  p->fdq = NULL;
  return 0;
}

int weft_pipe_open(weft_pipe *p, int fd) {
  if (!usable(p) || fd < 0 || weft__stream_fd(&p->stream) >= 0) return -EINVAL;
  int type;
  socklen_t len = sizeof type;
  unsigned flags = WEFT__S_CONNECTED;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
    flags |= WEFT__S_SOCKET;
  else if (errno != ENOTSOCK)
    return -errno;
  weft__sigpipe_ignore_once();
  return weft__stream_set_fd(&p->stream, fd, flags);
}

/* Fills a sockaddr_un; returns its length or a negative error. */
static int make_addr(struct sockaddr_un *sun, const char *name, size_t len) {
  if (name == NULL) return -EINVAL;
  if (len == 0) len = strlen(name);
  if (len == 0) return -EINVAL;
  if (len > sizeof sun->sun_path - (name[0] != '\0')) return -ENAMETOOLONG;
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, name, len);
  /* a path is NUL-terminated; an abstract name is exactly its bytes */
  return (int)(offsetof(struct sockaddr_un, sun_path) + len +
               (name[0] != '\0'));
}

static int new_socket(weft_pipe *p) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int err = weft__stream_set_fd(&p->stream, fd, WEFT__S_SOCKET);
  if (err != 0) close(fd);
  return err;
}

int weft_pipe_bind(weft_pipe *p, const char *name, size_t len) {
  if (!usable(p) || weft__stream_fd(&p->stream) >= 0) return -EINVAL;
  struct sockaddr_un sun;
  int alen = make_addr(&sun, name, len);
  if (alen < 0) return alen;
  int err = new_socket(p);
  if (err != 0) return err;
  if (bind(weft__stream_fd(&p->stream), (struct sockaddr *)&sun,
           (socklen_t)alen) < 0) {
    err = -errno;
    weft__stream_reset(&p->stream);
  }
  return err;
}

int weft_pipe_listen(weft_pipe *p, int backlog, weft_connection_cb cb) {
  if (!usable(p)) return -EINVAL;
  return weft__stream_listen(&p->stream, backlog, cb);
}

static int pipe_connect(weft_connect_req *req, weft_pipe *p, const char *name,
                        size_t len, weft_connect_cb cb) {
  if (!usable(p) || weft__stream_fd(&p->stream) >= 0) return -EINVAL;
  struct sockaddr_un sun;
  int alen = make_addr(&sun, name, len);
  if (alen < 0) return alen;
  weft__net *net = weft__net_get(p->stream.base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__net_reserve(net);
  if (err == 0) err = new_socket(p);
  if (err != 0) return err;
  int r;
  do
    r = connect(weft__stream_fd(&p->stream), (struct sockaddr *)&sun,
                (socklen_t)alen);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS) {
    err = -errno;
    weft__stream_reset(&p->stream);
    return err;
  }
  return weft__stream_connect(&p->stream, req, cb, r < 0);
}

int weft_pipe_connect(weft_connect_req *req, weft_pipe *p, const char *name,
                      size_t len, weft_connect_cb cb) {
  if (req == NULL) return -EINVAL;
  req->req.future = NULL;
  return pipe_connect(req, p, name, len, cb);
}

int weft_pipe_connect_future(weft_pipe *p, const char *name, size_t len,
                             weft_future **out) {
  if (out == NULL || !usable(p)) return -EINVAL;
  weft__net *net = weft__net_get(p->stream.base.loop);
  if (net == NULL) return -ENOMEM;
  weft__req_hdr *r;
  int err = weft__req_future_new_op(p->stream.base.loop, &net->creqs,
                                    "weft_pipe_connect_future", &r);
  if (err != 0) return err;
  weft_connect_req *req = weft__req_outer(r);
  err = pipe_connect(req, p, name, len, NULL);
  if (err != 0) {
    weft__req_future_undo(&net->creqs, r);
    return err;
  }
  weft_future_on_cancel(r->future, weft__future_cancel_connect, req);
  *out = weft_future_ref(r->future);
  return 0;
}

static int name_of(const weft_pipe *p, char *buf, size_t *len,
                   int (*fn)(int, struct sockaddr *, socklen_t *)) {
  if (p == NULL || p->stream.base.ops != &pipe_ops || buf == NULL ||
      len == NULL || !(p->stream.flags & WEFT__S_SOCKET) ||
      weft__stream_fd(&p->stream) < 0)
    return -EINVAL;
  struct sockaddr_un sun;
  socklen_t alen = sizeof sun;
  memset(&sun, 0, sizeof sun);
  if (fn(weft__stream_fd(&p->stream), (struct sockaddr *)&sun, &alen) < 0)
    return -errno;
  size_t n = alen > offsetof(struct sockaddr_un, sun_path)
                 ? alen - offsetof(struct sockaddr_un, sun_path)
                 : 0;
  if (n > 0 && sun.sun_path[0] != '\0') n = strnlen(sun.sun_path, n);
  if (n > *len) return -ENOBUFS;
  memcpy(buf, sun.sun_path, n);
  if (n < *len) buf[n] = '\0';
  *len = n;
  return 0;
}

int weft_pipe_getsockname(const weft_pipe *p, char *buf, size_t *len) {
  return name_of(p, buf, len, getsockname);
}

int weft_pipe_getpeername(const weft_pipe *p, char *buf, size_t *len) {
  return name_of(p, buf, len, getpeername);
}

int weft_pipe_pair(weft_loop *loop, weft_pipe *a, weft_pipe *b) {
  if (loop == NULL || !usable(a) || !usable(b) || a == b ||
      a->stream.base.loop != loop || b->stream.base.loop != loop ||
      weft__stream_fd(&a->stream) >= 0 || weft__stream_fd(&b->stream) >= 0)
    return -EINVAL;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) <
      0)
    return -errno;
  weft__stream_set_fd(&a->stream, fds[0], WEFT__S_SOCKET | WEFT__S_CONNECTED);
  weft__stream_set_fd(&b->stream, fds[1], WEFT__S_SOCKET | WEFT__S_CONNECTED);
  return 0;
}
