/* weft — watching an arbitrary fd for readiness (libuv's uv_poll), for
 * libraries that do their own I/O on their own sockets and only need to
 * be told when to (libcurl-multi, libpq, hiredis, ...).
 *
 * weft never reads, writes, owns or closes the fd: the caller keeps it, and
 * must stop or close the poll handle (and cancel its futures) before
 * closing the fd. What happens otherwise is libev's: an fd closed after
 * the loop registered it (a turn has run since the start) is dropped by
 * the kernel from the poll set without telling anyone, so nothing is
 * reported and stopping is still safe; an fd closed before libev
 * registers it (closed right after a start, or its number reused) makes
 * epoll_ctl fail with EBADF, which the Debian/Ubuntu libev answers with an
 * assertion (the process aborts) and a libev built without assertions
 * with EV_ERROR, reported as status -EBADF (see weft_poll_cb). Start
 * calls check that the fd is open (-EBADF). Make the fd non-blocking:
 * readiness is a hint, and a read or write may still find nothing to do
 * (EAGAIN).
 *
 * Readiness is level-triggered: a callback runs every turn while the fd is
 * ready for what is watched. The same fd may be watched by several poll
 * handles and futures at once, on one loop (libev multiplexes them: each
 * gets every event it asked for). A regular file or another fd epoll
 * refuses is always ready, for both directions.
 *
 * What is reported: libev watches readability (EPOLLIN) and writability
 * (EPOLLOUT) only. A hang-up or error on the fd (EPOLLHUP, EPOLLERR) wakes
 * every watcher of that fd as ready in the directions it asked for;
 * WEFT_POLL_DISCONNECT, when asked for, tells it apart: at each wake-up
 * weft asks poll(2) (one extra system call) and adds the bit if the fd
 * shows POLLHUP, POLLERR or POLLRDHUP (the peer shut its writing side).
 * Priority (out-of-band) data is not watched: libev does not register
 * EPOLLPRI. Loop thread only. */
#ifndef WEFT_POLL_H
#define WEFT_POLL_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_future weft_future;

/** Readiness bits, for the events to watch and the events reported. */
enum weft_poll_event {
  WEFT_POLL_READABLE = 1,  /**< a read (or accept) will not block */
  WEFT_POLL_WRITABLE = 2,  /**< a write (or a connect's result) is ready */
  WEFT_POLL_DISCONNECT = 4 /**< hang-up, error or peer shutdown (see above);
                            * only together with READABLE or WRITABLE */
};

typedef struct weft_poll weft_poll;

/** Runs on the loop's thread. `status` is 0 and `events` the ready subset
 * of the watched events (never 0); or `status` is -EBADF and `events` 0:
 * libev found the fd invalid and fed its watchers EV_ERROR (see above),
 * and the handle has been stopped (it may be started again on a good fd).
 * `arg` is the one given to weft_poll_start(). */
typedef void (*weft_poll_cb)(weft_poll *p, int status, int events, void *arg);

/** A poll handle. Fields after `base` are private. */
struct weft_poll {
  weft_handle base;
  /* private */
  weft_poll_cb cb;
  void *arg;
  int fd;
  int events;
  struct weft__list futures; /* pending weft_poll_future()s */
  WEFT__EV_STORAGE(watcher); /* struct ev_io */
};

/** Initialises `p` on `loop` for `fd` (stopped). weft does not take the
 * fd over: it never closes it. Returns 0; -EINVAL for NULL; -EBADF if
 * `fd` is negative or not open. */
WEFT_API int weft_poll_init(weft_loop *loop, weft_poll *p, int fd);

/** Starts watching for `events` (WEFT_POLL_* bits); `cb(p, status, ready,
 * arg)` runs each turn the fd is ready. On a started handle it changes the
 * mask, callback and arg at once (from the next poll on; a callback that
 * changes them affects what is reported from the next turn). A started,
 * referenced poll keeps the loop alive. Returns 0; -EINVAL for NULL `p`
 * or `cb`, a handle that is not an initialised poll handle, a closing
 * one, `events` 0, unknown bits, or DISCONNECT alone; -EBADF if the fd is
 * no longer open (the handle is then left as it was). */
WEFT_API int weft_poll_start(weft_poll *p, int events, weft_poll_cb cb,
                             void *arg);

/** Stops watching; a no-op when stopped. Pending futures are not
 * affected. Returns 0 or -EINVAL (NULL, not a poll handle). */
WEFT_API int weft_poll_stop(weft_poll *p);

/** The fd given to weft_poll_init(); -EINVAL for NULL or not a poll. */
WEFT_API int weft_poll_get_fd(const weft_poll *p);

/** One-shot readiness of p's fd as a future: *out (one reference for the
 * caller) fulfils with the ready mask (int64, WEFT_POLL_* bits, never 0)
 * at the first turn the fd is ready for `events` after this call; it is
 * rejected with -EBADF if libev feeds it EV_ERROR, and with -ECANCELED
 * when `p` is closed (in its close phase, before the close callback).
 * It does not need `p` to be started and is independent of the persistent
 * callback: each future watches with a watcher of its own, so when both
 * wait for the same readiness, both the callback and the future see it in
 * the same turn; several futures may be pending at once. While pending it
 * keeps the loop alive (an outstanding request). Cancelling it stops its
 * watcher and frees what it held. Returns 0; -EINVAL (NULL, not a poll
 * handle, closing, bad `events` as for weft_poll_start()); -EBADF (the fd
 * is no longer open); -ENOMEM. On error *out is untouched. */
WEFT_API int weft_poll_future(weft_poll *p, int events, weft_future **out);

/** The same without a handle: one-shot readiness of `fd` on `loop`, for
 * code that waits on a library's socket from step to step (libpq's
 * PQconnectPoll, PQsocket). Fulfils, rejects and cancels as
 * weft_poll_future(), except that no close rejects it: cancel it before
 * weft_loop_free() (which returns -EBUSY while it is pending). Returns 0;
 * -EINVAL (NULL loop or out, bad `events`); -EBADF (fd negative or not
 * open); -ENOMEM. */
WEFT_API int weft_poll_fd_future(weft_loop *loop, int fd, int events,
                                 weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_POLL_H */
