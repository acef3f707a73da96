/* weft — passing fds over Unix stream sockets (SCM_RIGHTS), peer
 * credentials (SO_PEERCRED), and detaching a stream's fd from its handle.
 *
 * Sending: when the pipe's write queue is empty and the write has at most
 * WEFT__WRITE_INLINE_BUFS buffers (the common case), weft_pipe_write_fds()
 * sends at once, with the caller's own fds in the SCM_RIGHTS message of
 * its sendmsg: once the kernel took a byte the peer holds its own
 * references, so nothing is dup'd, closed or allocated. The bytes it took
 * count in the turn's write cap (weft__stream_write_sent); a write that
 * went out whole completes from the loop without the write queue and
 * without a copy of its buffers, and the rest of one that did not is an
 * ordinary write in the request's inline buffers. Otherwise (bytes queued
 * before it, the socket full, more buffers) it dups the caller's fds
 * (F_DUPFD_CLOEXEC) into one block allocated with the request: the copy of
 * the buffer array first (req->bufs points at it, so stream.c's
 * write_release frees the block), then the fd count and the dups. That
 * request is an ordinary write with WEFT__REQ_FDS set: req_write sends it
 * through weft__pipe_sendmsg, whose first sendmsg that the kernel takes
 * any byte of carries every dup in one SCM_RIGHTS message (the kernel
 * attaches them to that skb, so the receiver gets them with the first
 * byte); the dups are closed then. A request released with its dups
 * unsent (cancelled, failed, closed) closes them (weft__pipe_fds_release,
 * from write_release). Either way the caller may close its fds as soon as
 * the call returns.
 *
 * The socket's domain (AF_UNIX or not) is asked once per opened pipe and
 * remembered in the pipe's fd queue (p->fdq, allocated for it).
 *
 * Receiving: a pipe on a socket reads with recvmsg (weft__pipe_recv, from
 * the read paths of stream.c and stream_read.c) and a control buffer for
 * WEFT_PIPE_FDS_MAX fds, MSG_CMSG_CLOEXEC. Fds that arrive go from the
 * control message straight to the pipe's queue (p->fdq, allocated on the
 * first fd), which weft_pipe_take_fds() empties oldest first (from its
 * front, by moving `head`: the rest moves down only when the queue's end
 * is reached) and the close op closes. A truncated control message, or a
 * queue that cannot grow, closes the fds that came and fails the read
 * (-ENOBUFS, -ENOMEM). The kernel ends a recvmsg at a message that carries
 * fds, so a read that got fds marks the stream (WEFT__S_FDS_CUT) and the
 * read paths read again instead of taking the short read for an empty
 * socket, up to WEFT__STREAM_FDS_READS times per readiness: a window of fd
 * messages is one wake-up, not one each. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

_Static_assert(WEFT_PIPE_FDS_MAX <= 253, "the kernel's SCM_MAX_FD");

/* What follows the buffer array in a fd write's block. */
typedef struct fds_tail {
  unsigned nfds; /* dups not yet sent (0 once they went out) */
  int fds[];
} fds_tail;

/* The received fds of a pipe, oldest first: fds[head .. head + len). */
typedef struct fdq {
  size_t head, len, cap;
  bool unix_checked; /* the socket was seen to be AF_UNIX */
  int fds[];
} fdq;

static fds_tail *tail_of(weft_write_req *req) {
  return (fds_tail *)(void *)(req->bufs + req->nbufs);
}

static bool is_pipe(const weft_stream *s) {
  return s != NULL && s->base.ops != NULL &&
         s->base.ops->type == WEFT_HANDLE_PIPE;
}

static void close_all(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    close(fds[i]);
}

/* ---- sending ----------------------------------------------------------- */

void weft__pipe_fds_release(weft_write_req *req) {
  fds_tail *t = tail_of(req);
  close_all(t->fds, t->nfds);
  t->nfds = 0;
}

/* The SCM_RIGHTS message for `nfds` fds in `ctl` (room for
 * WEFT_PIPE_FDS_MAX); returns its length for msg_controllen. Every byte up
 * to that length is written (the header, the fds, the tail padding), so
 * nothing uninitialised reaches the kernel, without clearing the buffer. */
static inline size_t put_rights(void *ctl, const int *fds, unsigned nfds) {
  size_t len = CMSG_SPACE(sizeof(int) * nfds);
  uint64_t zero = 0; /* the padding (len >= 16, a multiple of 4) */
  memcpy((char *)ctl + len - sizeof zero, &zero, sizeof zero);
  struct cmsghdr *c = ctl;
  c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  unsigned char *data = CMSG_DATA(c);
  if (nfds == 1) /* the common case, without a memcpy call */
    memcpy(data, fds, sizeof(int));
  else
    memcpy(data, fds, sizeof(int) * nfds);
  return len;
}

/* Room for the largest SCM_RIGHTS message, aligned for a cmsghdr. */
typedef union rights_buf {
  char buf[CMSG_SPACE(sizeof(int) * WEFT_PIPE_FDS_MAX)];
  struct cmsghdr align;
} rights_buf;

ssize_t weft__pipe_sendmsg(weft_stream *s, weft_write_req *req, unsigned n) {
  fds_tail *t = tail_of(req);
  if (n > IOV_MAX) n = IOV_MAX;
  struct msghdr msg = {0};
  msg.msg_iov = (struct iovec *)(void *)(req->bufs + req->idx);
  msg.msg_iovlen = n;
  rights_buf ctl;
  if (t->nfds > 0) {
    msg.msg_control = ctl.buf;
    msg.msg_controllen = put_rights(ctl.buf, t->fds, t->nfds);
  }
  ssize_t r = sendmsg(weft__stream_fd(s), &msg, MSG_NOSIGNAL);
  if (r > 0 && t->nfds > 0) { /* the peer holds its own references now */
    close_all(t->fds, t->nfds);
    t->nfds = 0;
  }
  return r;
}

/* The checks of both forms; *total: the write's bytes. */
static inline int fds_check(weft_pipe *p, const weft_buf *bufs, unsigned nbufs,
                            const int *fds, unsigned nfds, size_t *total) {
  if (p == NULL || !is_pipe(&p->stream) || bufs == NULL || nbufs == 0 ||
      fds == NULL || nfds == 0 || nfds > WEFT_PIPE_FDS_MAX)
    return -EINVAL;
  size_t bytes = 0;
  for (unsigned i = 0; i < nbufs; i++)
    bytes += bufs[i].len;
  if (bytes == 0) return -EINVAL; /* fds ride on a byte */
  *total = bytes;
  int err = weft__stream_writable(&p->stream);
  if (err != 0) return err;
  if (!(p->stream.flags & WEFT__S_SOCKET)) return -ENOTSUP;
  fdq *q = p->fdq;
  if (q == NULL || !q->unix_checked) {
    int domain;
    socklen_t len = sizeof domain;
    if (getsockopt(weft__stream_fd(&p->stream), SOL_SOCKET, SO_DOMAIN, &domain,
                   &len) < 0)
      return -errno;
    if (domain != AF_UNIX) return -ENOTSUP;
    if (q == NULL) { /* remembered; without memory, asked again next time */
      q = weft__malloc(sizeof *q);
      if (q != NULL) {
        q->head = q->len = q->cap = 0;
        p->fdq = q;
      }
    }
    if (q != NULL) q->unix_checked = true;
  }
  for (unsigned i = 0; i < nfds; i++) /* a closed fd: dup or sendmsg says */
    if (fds[i] < 0) return -EBADF;
  return 0;
}

/* The fast path: the queue is empty, so this write goes out now. One
 * sendmsg with the caller's fds. > 0: the bytes the kernel took (and the
 * fds with them); -1 with errno: nothing was sent. */
static inline ssize_t send_direct(weft_stream *s, const weft_buf *bufs,
                                  unsigned nbufs, const int *fds,
                                  unsigned nfds) {
  rights_buf ctl;
  struct msghdr msg = {0};
  msg.msg_iov = (struct iovec *)(void *)bufs;
  msg.msg_iovlen = nbufs;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = put_rights(ctl.buf, fds, nfds);
  ssize_t r;
  do
    r = sendmsg(weft__stream_fd(s), &msg, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}

/* After send_direct took `sent` of the write's `total` bytes: `req`
 * becomes an ordinary write of what is left, in its inline buffers (nbufs
 * <= WEFT__WRITE_INLINE_BUFS); usually nothing is, and nothing is copied. */
static void direct_setup(weft_write_req *req, weft_stream *s,
                         const weft_buf *bufs, unsigned nbufs, size_t sent,
                         size_t total) {
  req->stream = s;
  req->bufs = req->inline_bufs;
  if (sent == total) {
    req->nbufs = req->idx = 0;
    return;
  }
  memcpy(req->inline_bufs, bufs, sizeof *bufs * nbufs);
  req->nbufs = nbufs;
  req->idx = 0;
  while (req->idx < nbufs && sent > 0) {
    weft_buf *b = &req->bufs[req->idx];
    size_t take = sent < b->len ? sent : b->len;
    b->base += take;
    b->len -= take;
    sent -= take;
    if (b->len == 0) req->idx++;
  }
  while (req->idx < nbufs && req->bufs[req->idx].len == 0)
    req->idx++;
  req->req.status = 1; /* bytes are on the wire: no longer cancellable */
}

/* Sets up `req` (header reset) as a fd write: the block with the buffers
 * and the dups. */
static int fds_setup(weft_write_req *req, weft_stream *s, const weft_buf *bufs,
                     unsigned nbufs, const int *fds, unsigned nfds) {
  size_t size = sizeof *bufs * nbufs + sizeof(fds_tail) + sizeof(int) * nfds;
  weft_buf *block = weft__malloc(size);
  if (block == NULL) return -ENOMEM;
  memcpy(block, bufs, sizeof *bufs * nbufs);
  fds_tail *t = (fds_tail *)(void *)(block + nbufs);
  for (t->nfds = 0; t->nfds < nfds; t->nfds++) {
    int d = fcntl(fds[t->nfds], F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
      int err = -errno;
      close_all(t->fds, t->nfds);
      weft__free(block);
      return err;
    }
    t->fds[t->nfds] = d;
  }
  req->bufs = block;
  req->nbufs = nbufs;
  req->idx = 0;
  req->stream = s;
  while (req->idx < nbufs && req->bufs[req->idx].len == 0)
    req->idx++;
  req->req.flags |= WEFT__REQ_FDS;
  return 0;
}

static inline int fds_write(weft_write_req *req, weft_pipe *p,
                            const weft_buf *bufs, unsigned nbufs,
                            const int *fds, unsigned nfds, size_t total) {
  weft__net *net = weft__net_get(p->stream.base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__net_reserve(net);
  if (err != 0) return err;
  weft_stream *s = &p->stream;
  if (nbufs <= WEFT__WRITE_INLINE_BUFS && (s->flags & WEFT__S_CONNECTED) &&
      weft__list_empty(WEFT__REQQ(s->wq))) {
    ssize_t n = send_direct(s, bufs, nbufs, fds, nfds);
    if (n > 0) {
      direct_setup(req, s, bufs, nbufs, (size_t)n, total);
      weft__stream_write_sent(net, s, req, (size_t)n); /* or queues the rest */
      return 0;
    }
    if (errno == EBADF) return -EBADF; /* a caller's fd: nothing was sent */
    /* full (EAGAIN) or failing: the queued path below retries, and reports
     * a failure through the callback or future as any write does */
  }
  err = fds_setup(req, s, bufs, nbufs, fds, nfds);
  if (err != 0) return err;
  weft__stream_write_queue(net, s, req);
  return 0;
}

int weft_pipe_write_fds(weft_write_req *req, weft_pipe *p, const weft_buf *bufs,
                        unsigned nbufs, const int *fds, unsigned nfds,
                        weft_write_cb cb) {
  if (req == NULL) return -EINVAL;
  size_t total;
  int err = fds_check(p, bufs, nbufs, fds, nfds, &total);
  if (err != 0) return err;
  weft__req_init(&req->req);
  req->req.future = NULL;
  req->cb = cb;
  return fds_write(req, p, bufs, nbufs, fds, nfds, total);
}

int weft_pipe_write_fds_future(weft_pipe *p, const weft_buf *bufs,
                               unsigned nbufs, const int *fds, unsigned nfds,
                               weft_future **out) {
  if (out == NULL) return -EINVAL;
  size_t total;
  int err = fds_check(p, bufs, nbufs, fds, nfds, &total);
  if (err != 0) return err;
  weft__net *net = weft__net_get(p->stream.base.loop);
  if (net == NULL) return -ENOMEM;
  weft__req_hdr *r;
  err = weft__req_future_new_op(p->stream.base.loop, &net->wreqs,
                                "weft_pipe_write_fds_future", &r);
  if (err != 0) return err;
  weft_write_req *req = weft__req_outer(r);
  r->bytes = total;
  req->cb = NULL;
  err = fds_write(req, p, bufs, nbufs, fds, nfds, total);
  if (err != 0) {
    weft__req_future_undo(&net->wreqs, r);
    return err;
  }
  weft_future_on_cancel(r->future, weft__stream_write_cancel, req);
  *out = weft_future_ref(r->future); /* one for the caller, one for req */
  return 0;
}

/* ---- receiving --------------------------------------------------------- */

/* Makes room for `n` more fds at the end of the pipe's queue (moving what
 * waits to the front, or growing it); -ENOMEM if it cannot grow. */
static int fdq_room(weft_pipe *p, size_t n) {
  fdq *q = p->fdq;
  if (q != NULL && q->cap - q->head - q->len >= n) return 0;
  if (q == NULL || q->cap - q->len < n) {
    size_t cap = q && q->cap > 0 ? q->cap * 2 : WEFT_PIPE_FDS_MAX;
    while (cap - (q ? q->len : 0) < n)
      cap *= 2;
    fdq *nq = weft__realloc(q, sizeof *nq + sizeof(int) * cap);
    if (nq == NULL) return -ENOMEM;
    if (q == NULL) {
      nq->head = nq->len = 0;
      nq->unix_checked = false;
    }
    nq->cap = cap;
    p->fdq = q = nq;
  }
  memmove(q->fds, q->fds + q->head, sizeof(int) * q->len);
  q->head = 0;
  return 0;
}

/* Queues the `n` fds of a SCM_RIGHTS message's data; -ENOMEM if the queue
 * cannot grow (they are then the caller's to close). */
static int fdq_push(weft_pipe *p, const unsigned char *data, size_t n) {
  if (fdq_room(p, n) != 0) return -ENOMEM;
  fdq *q = p->fdq;
  int *end = q->fds + q->head + q->len;
  if (n == 1) /* the common case, without a memcpy call */
    memcpy(end, data, sizeof(int));
  else
    memcpy(end, data, sizeof(int) * n);
  q->len += n;
  return 0;
}

static void close_data(const unsigned char *data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int fd;
    memcpy(&fd, data + sizeof(int) * i, sizeof fd);
    close(fd);
  }
}

/* The control messages of a recvmsg that returned `r` > 0 bytes: fds to
 * the queue; -1 with errno (ENOBUFS: truncated, ENOMEM) once every fd that
 * came is closed. */
static ssize_t got_rights(weft_stream *s, struct msghdr *msg, ssize_t r) {
  int err = (msg->msg_flags & MSG_CTRUNC) ? ENOBUFS : 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL;
       c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (err == 0 && fdq_push((weft_pipe *)s, CMSG_DATA(c), n) != 0)
      err = ENOMEM;
    if (err != 0) close_data(CMSG_DATA(c), n);
  }
  if (err != 0) {
    errno = err;
    return -1;
  }
  s->flags |= WEFT__S_FDS_CUT; /* more may be waiting behind this one */
  return r;
}

ssize_t weft__pipe_recv(weft_stream *s, void *buf, size_t len) {
  struct iovec iov = {buf, len};
  rights_buf ctl;
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl.buf;
  msg.msg_controllen = sizeof ctl.buf;
  ssize_t r = recvmsg(weft__stream_fd(s), &msg, MSG_CMSG_CLOEXEC);
  s->flags &= ~WEFT__S_FDS_CUT;
  if (r < 0) return r;
  if (msg.msg_controllen > 0) return got_rights(s, &msg, r);
  if (msg.msg_flags & MSG_CTRUNC) { /* all fds were dropped */
    errno = ENOBUFS;
    return -1;
  }
  return r;
}

size_t weft_pipe_get_pending_fds(const weft_pipe *p) {
  if (p == NULL || !is_pipe(&p->stream) || p->fdq == NULL) return 0;
  return ((const fdq *)p->fdq)->len;
}

int weft_pipe_take_fds(weft_pipe *p, int *fds, size_t cap) {
  if (p == NULL || !is_pipe(&p->stream) || fds == NULL || cap == 0 ||
      cap > INT_MAX)
    return -EINVAL;
  fdq *q = p->fdq;
  if (q == NULL || q->len == 0) return 0;
  size_t n = q->len < cap ? q->len : cap;
  const int *from = q->fds + q->head;
  if (n == 1) /* the common case, without a memcpy call */
    fds[0] = from[0];
  else
    memcpy(fds, from, sizeof(int) * n);
  q->len -= n;
  q->head = q->len > 0 ? q->head + n : 0;
  return (int)n;
}

void weft__pipe_fds_close(weft_pipe *p) {
  fdq *q = p->fdq;
  if (q == NULL) return;
  close_all(q->fds + q->head, q->len);
  weft__free(q);
  p->fdq = NULL;
}

/* ---- credentials and detaching ----------------------------------------- */

int weft_pipe_getpeercred(const weft_pipe *p, pid_t *pid, uid_t *uid,
                          gid_t *gid) {
  if (p == NULL || !is_pipe(&p->stream) ||
      !weft__handle_usable(&p->stream.base))
    return -EINVAL;
  int fd = weft__stream_fd(&p->stream);
  if (fd < 0) return -ENOTCONN;
  if (!(p->stream.flags & WEFT__S_SOCKET)) return -ENOTSUP;
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) return -errno;
  if (cr.pid == 0) return -ENOTCONN; /* a listener or unconnected socket */
  if (pid) *pid = cr.pid;
  if (uid) *uid = cr.uid;
  if (gid) *gid = cr.gid;
  return 0;
}

int weft_stream_detach(weft_stream *s, int *fd, weft_close_cb cb) {
  if (s == NULL || fd == NULL || s->base.ops == NULL ||
      s->base.ops->deliver != weft__stream_deliver ||
      !weft__handle_usable(&s->base))
    return -EINVAL;
  int f = weft__stream_fd(s);
  if (f < 0) return -EBADF;
  if (weft_stream_read_buffered(s) > 0) return -EBUSY;
  if (is_pipe(s) && weft_pipe_get_pending_fds((weft_pipe *)s) > 0)
    return -EBUSY;
  ev_io *w = (ev_io *)(void *)&s->io;
  weft__io_stop(s->base.loop, w);
  ev_io_set(w, -1, 0); /* the close op now leaves the fd alone */
  int err = weft_close(&s->base, cb);
  if (err != 0) { /* cannot happen for a usable handle; undo all the same */
    ev_io_set(w, f, 0);
    weft__stream_update(s);
    return err;
  }
  *fd = f;
  return 0;
}
