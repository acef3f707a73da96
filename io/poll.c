/* weft — poll handles: readiness of a caller's fd, as a persistent
 * callback (the handle's own ev_io) and as one-shot futures (an ev_io of
 * their own each, in a small record the future's settle or cancel frees).
 *
 * weft never does I/O on the fd and never closes it. libev reports only
 * EV_READ/EV_WRITE (a hang-up wakes both); WEFT_POLL_DISCONNECT is told
 * apart with one poll(2) per wake-up, only for watchers that ask for it.
 * EV_ERROR (libev found the fd bad) arrives after libev stopped the watcher
 * itself, without the reference WEFT__EV_START dropped: that is given back
 * here, as a one-shot timer's is (weft__ev_fired). */
#include <fcntl.h>
#include <poll.h>

#include "core/internal.h"
#include "weft/future.h"
#include "weft/poll.h"

_Static_assert(sizeof(ev_io) <= sizeof(((weft_poll *)0)->watcher),
               "ev_io does not fit weft_poll's storage");

#define ALL_EVENTS                                                             \
  (WEFT_POLL_READABLE | WEFT_POLL_WRITABLE | WEFT_POLL_DISCONNECT)

/* A pending future: its watcher, its future, and its place in the
 * handle's list (unlinked for weft_poll_fd_future()). */
typedef struct poll_req {
  ev_io io;
  weft_loop *loop;
  weft_future *f; /* the producer's reference */
  weft__list node;
  int events;
} poll_req;

static ev_io *watcher(weft_poll *p) { return (ev_io *)(void *)&p->watcher; }

static bool events_valid(int events) {
  return (events & ~ALL_EVENTS) == 0 &&
         (events & (WEFT_POLL_READABLE | WEFT_POLL_WRITABLE)) != 0;
}

static bool fd_open(int fd) { return fd >= 0 && fcntl(fd, F_GETFD) != -1; }

static int ev_mask(int events) {
  return (events & WEFT_POLL_READABLE ? EV_READ : 0) |
         (events & WEFT_POLL_WRITABLE ? EV_WRITE : 0);
}

/* The WEFT_POLL_* bits of one wake-up: 0 for EV_ERROR. */
static int ready_mask(int fd, int asked, int revents) {
  if (revents & EV_ERROR) return 0;
  int ready = (revents & EV_READ ? WEFT_POLL_READABLE : 0) |
              (revents & EV_WRITE ? WEFT_POLL_WRITABLE : 0);
  if (asked & WEFT_POLL_DISCONNECT) {
    struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
    if (poll(&pfd, 1, 0) == 1 &&
        (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP)))
      ready |= WEFT_POLL_DISCONNECT;
  }
  return ready & asked;
}

/* libev stopped `w` on EV_ERROR; give back the reference it then kept. */
static void ev_error_stopped(struct ev_loop *ev, ev_io *w, int revents) {
  if ((revents & EV_ERROR) && !ev_is_active(w)) weft__ev_fired(ev);
}

/* ---- the persistent callback ----------------------------------------- */

static void on_poll_io(struct ev_loop *ev, ev_io *w, int revents) {
  weft_poll *p = w->data;
  p->base.loop->m.io_events++; /* metrics (weft_loop_get_metrics) */
  ev_error_stopped(ev, w, revents);
  int ready = ready_mask(p->fd, p->events, revents);
  if (revents & EV_ERROR) {
    weft_poll_stop(p);
    p->cb(p, -EBADF, 0, p->arg);
  } else if (ready != 0) {
    p->cb(p, 0, ready, p->arg);
  }
}

/* ---- futures ----------------------------------------------------------- */

static void req_free(poll_req *r) {
  weft__io_stop(r->loop, &r->io);
  weft__list_unlink(&r->node);
  weft__req_done(r->loop);
  weft_future_unref(r->f);
  weft__free(r);
}

static void on_req_io(struct ev_loop *ev, ev_io *w, int revents) {
  poll_req *r = w->data;
  r->loop->m.io_events++; /* metrics (weft_loop_get_metrics) */
  ev_error_stopped(ev, w, revents);
  int ready = ready_mask(w->fd, r->events, revents);
  if (revents & EV_ERROR)
    weft_future_reject(r->f, -EBADF);
  else if (ready != 0)
    weft_future_resolve_i64(r->f, ready);
  else
    return; /* only a bit it did not ask for */
  req_free(r);
}

static void req_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  req_free(arg);
}

/* Starts a future on `fd`; linked on `list` when it belongs to a handle. */
static int req_start(weft_loop *loop, int fd, int events, weft__list *list,
                     weft_future **out) {
  poll_req *r = weft__malloc(sizeof *r);
  if (r == NULL) return -ENOMEM;
  int err = weft_future_new_op(loop, "weft_poll_future", &r->f);
  if (err != 0) {
    weft__free(r);
    return err;
  }
  r->loop = loop;
  r->events = events;
  weft__list_init(&r->node); /* unlinked: unlinking it is a no-op */
  if (list != NULL) weft__list_insert(list, &r->node);
  ev_io_init(&r->io, on_req_io, fd, ev_mask(events));
  r->io.data = r;
  weft__io_start(loop, &r->io);
  weft__req_start(loop);
  weft_future_on_cancel(r->f, req_cancel, r);
  *out = weft_future_ref(r->f);
  return 0;
}

/* ---- the handle -------------------------------------------------------- */

static void poll_close(weft_handle *h) {
  weft_poll *p = (weft_poll *)(void *)h;
  weft_poll_stop(p);
  WEFT__LIST_FOREACH_SAFE(it, next, &p->futures) {
    poll_req *r = WEFT__CONTAINER_OF(it, poll_req, node);
    weft__io_stop(r->loop, &r->io); /* rejected in the close phase */
  }
}

static void poll_finish(weft_handle *h) {
  weft_poll *p = (weft_poll *)(void *)h;
  weft__list *n;
  while ((n = weft__list_front(&p->futures)) != NULL) {
    poll_req *r = WEFT__CONTAINER_OF(n, poll_req, node);
    weft_future_reject(r->f, -ECANCELED);
    req_free(r);
  }
}

static const weft__handle_ops poll_ops = {WEFT_HANDLE_POLL, poll_close,
                                          poll_finish, NULL};

static bool is_poll(const weft_poll *p) {
  return p != NULL && p->base.ops == &poll_ops;
}

int weft_poll_init(weft_loop *loop, weft_poll *p, int fd) {
  if (loop == NULL || p == NULL) return -EINVAL;
  if (!fd_open(fd)) return -EBADF;
  WEFT__CHECK_INIT(loop, &p->base);
  weft__handle_init(loop, &p->base, &poll_ops);
  p->cb = NULL;
  p->arg = NULL;
  p->fd = fd;
  p->events = 0;
  weft__list_init(&p->futures);
  ev_io_init(watcher(p), on_poll_io, fd, EV_READ);
  watcher(p)->data = p;
  return 0;
}

int weft_poll_start(weft_poll *p, int events, weft_poll_cb cb, void *arg) {
  if (!is_poll(p) || cb == NULL || !weft__handle_usable(&p->base) ||
      !events_valid(events))
    return -EINVAL;
  if (!fd_open(p->fd)) return -EBADF;
  weft_loop *loop = p->base.loop;
  p->cb = cb;
  p->arg = arg;
  if (!ev_is_active(watcher(p)) || ev_mask(events) != ev_mask(p->events)) {
    weft__io_stop(loop, watcher(p)); /* ev_io_set wants it stopped */
    ev_io_set(watcher(p), p->fd, ev_mask(events));
    weft__io_start(loop, watcher(p));
  }
  p->events = events;
  weft__handle_start(&p->base);
  return 0;
}

int weft_poll_stop(weft_poll *p) {
  if (!is_poll(p)) return -EINVAL;
  weft__io_stop(p->base.loop, watcher(p));
  weft__handle_stop(&p->base);
  return 0;
}

int weft_poll_get_fd(const weft_poll *p) {
  return is_poll(p) ? p->fd : -EINVAL;
}

int weft_poll_future(weft_poll *p, int events, weft_future **out) {
  if (!is_poll(p) || out == NULL || !weft__handle_usable(&p->base) ||
      !events_valid(events))
    return -EINVAL;
  if (!fd_open(p->fd)) return -EBADF;
  return req_start(p->base.loop, p->fd, events, &p->futures, out);
}

int weft_poll_fd_future(weft_loop *loop, int fd, int events,
                        weft_future **out) {
  if (loop == NULL || out == NULL || !events_valid(events)) return -EINVAL;
  if (!fd_open(fd)) return -EBADF;
  return req_start(loop, fd, events, NULL, out);
}
