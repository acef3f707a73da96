/* weft — file to stream with sendfile(2), on the stream's write queue.
 *
 * A weft_sendfile_req holds a weft_write_req flagged WEFT__REQ_FILE: it is
 * queued, written, cancelled and completed by io/stream.c exactly as a
 * write is (order with the writes around it, the per-turn fairness cap,
 * the queue size and watermarks, -ECANCELED on close, the stream's own
 * watcher on EAGAIN). stream.c asks this file only two things about such
 * a write: how many bytes are left, and to send some more. The write's
 * completion is this file's trampoline, which runs the user's callback or
 * settles the future form. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/sendfile.h>

#include "internal.h"

static inline weft_sendfile_req *file_of(weft_write_req *w) {
  return WEFT__CONTAINER_OF(w, weft_sendfile_req, write);
}

size_t weft__sendfile_left(const weft_write_req *w) {
  return file_of((weft_write_req *)w)->left;
}

int weft__sendfile_write(weft_stream *s, weft_write_req *w, size_t *budget,
                         bool queued) {
  weft_sendfile_req *req = file_of(w);
  while (req->left > 0) {
    if (*budget == 0) return 1;
    size_t want = req->left < *budget ? req->left : *budget;
    off_t off = (off_t)req->offset;
    ssize_t n = sendfile(weft__stream_fd(s), req->fd, &off, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
      return -errno;
    }
    if (n == 0) return WEFT_EOF; /* the file is shorter than asked */
    req->offset += n;
    req->left -= (size_t)n;
    w->req.status = 1; /* bytes are on the wire: no longer cancellable */
    if (queued) s->wq_size -= (size_t)n;
    *budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
  }
  return 0;
}

/* sendfile(2) to a socket whose peer is gone, like a write to a pipe whose
 * reader is gone (io/pipe.c), raises SIGPIPE and cannot be told
 * MSG_NOSIGNAL: so SIGPIPE is ignored once, unless the program chose a
 * disposition itself (docs/streams.md, "SIGPIPE"). */
static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void sigpipe_ignore(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
      !(sa.sa_flags & SA_SIGINFO)) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

void weft__sigpipe_ignore_once(void) {
  pthread_once(&sigpipe_once, sigpipe_ignore);
}

static void file_done(weft_write_req *w, int status) {
  weft_sendfile_req *req = file_of(w);
  if (req->cb) req->cb(req, status);
}

static int sendfile_check(weft_stream *s, int fd, int64_t offset, size_t len) {
  if (len == 0 || offset < 0 || (uint64_t)len > (uint64_t)(INT64_MAX - offset))
    return -EINVAL;
  int err = weft__stream_writable(s);
  if (err != 0) return err;
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) return -EBADF;
  return 0;
}

/* Checks, sets up and queues `req` (checked already). */
static int sendfile_start(weft_sendfile_req *req, weft_stream *s, int fd,
                          int64_t offset, size_t len) {
  weft__net *net = weft__net_get(s->base.loop);
  if (net == NULL) return -ENOMEM;
  int err = weft__net_reserve(net);
  if (err != 0) return err;
  weft__sigpipe_ignore_once();
  req->fd = fd;
  req->offset = offset;
  req->left = len;
  weft_write_req *w = &req->write;
  weft__req_init(&w->req);
  w->req.future = NULL;
  w->req.flags |= WEFT__REQ_FILE;
  w->data = NULL;
  w->stream = s;
  w->cb = file_done;
  w->bufs = w->inline_bufs;
  w->nbufs = w->idx = 0;
  weft__stream_write_queue(net, s, w);
  return 0;
}

int weft_stream_sendfile(weft_sendfile_req *req, weft_stream *s, int file_fd,
                         int64_t offset, size_t len, weft_sendfile_cb cb) {
  if (req == NULL) return -EINVAL;
  int err = sendfile_check(s, file_fd, offset, len);
  if (err != 0) return err;
  req->cb = cb;
  return sendfile_start(req, s, file_fd, offset, len);
}

/* ---- future form -----------------------------------------------------------
 */

typedef struct file_future {
  weft_sendfile_req req;
  weft_future *f; /* the request's reference */
  size_t len;
} file_future;

static void future_done(weft_sendfile_req *req, int status) {
  file_future *ff = WEFT__CONTAINER_OF(req, file_future, req);
  if (status == 0)
    weft_future_resolve_i64(ff->f, (int64_t)ff->len);
  else
    weft_future_reject(ff->f, status); /* fails harmlessly if cancelled */
  weft_future_unref(ff->f);
  weft__free(ff);
}

/* Cancelling takes a request with no byte sent out of the queue; one
 * partly sent finishes (the byte stream stays whole). */
static void future_cancel(weft_future *f, void *arg) {
  file_future *ff = arg;
  if (!weft__stream_write_unqueue(&ff->req.write)) return;
  weft_future_unref(f);
  weft__free(ff);
}

int weft_stream_sendfile_future(weft_stream *s, int file_fd, int64_t offset,
                                size_t len, weft_future **out) {
  if (out == NULL) return -EINVAL;
  int err = sendfile_check(s, file_fd, offset, len);
  if (err != 0) return err;
  file_future *ff = weft__malloc(sizeof *ff);
  if (ff == NULL) return -ENOMEM;
  if ((err = weft_future_new_op(s->base.loop, "weft_stream_sendfile_future",
                                &ff->f)) != 0) {
    weft__free(ff);
    return err;
  }
  ff->len = len;
  ff->req.cb = future_done;
  if ((err = sendfile_start(&ff->req, s, file_fd, offset, len)) != 0) {
    weft_future_unref(ff->f);
    weft__free(ff);
    return err;
  }
  weft_future_on_cancel(ff->f, future_cancel, ff);
  *out = weft_future_ref(ff->f); /* one for the caller, one for the request */
  return 0;
}
