/* weft — signal handles.
 *
 * Several handles, on one loop, may watch the same signal; each gets its
 * callback. One signal can be watched by only one loop at a time (libev
 * delivers a signal to one loop): starting it on a second loop returns
 * -EBUSY. In a multi-threaded program, block the signal in the other
 * threads so that the kernel delivers it to the loop. */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_signal weft_signal;
/** Runs on the loop's thread with the signal number. */
typedef void (*weft_signal_cb)(weft_signal *s, int signum);

/** A signal handle. Fields after `base` are private. */
struct weft_signal {
  weft_handle base;
  /* private */
  weft_signal_cb cb;
  int signum;
  bool oneshot;
  WEFT__EV_STORAGE(watcher); /* struct ev_signal */
};

/** Initialises `s` on `loop`. Returns 0 or -EINVAL. */
WEFT_API int weft_signal_init(weft_loop *loop, weft_signal *s);

/** Starts watching `signum`; `cb` runs each time it arrives. Restarting
 * with another signal moves the handle. Returns 0; -EINVAL for NULL, a
 * closing handle, or an invalid signal (0, SIGKILL, SIGSTOP, >= NSIG);
 * -EBUSY if another loop watches that signal. A failed start leaves the
 * handle as it was (still watching its previous signal, if any). */
WEFT_API int weft_signal_start(weft_signal *s, weft_signal_cb cb, int signum);

/** Like weft_signal_start() but stops itself before `cb` runs once. */
WEFT_API int weft_signal_start_oneshot(weft_signal *s, weft_signal_cb cb,
                                       int signum);

/** Stops watching. No-op when inactive. Returns 0 or -EINVAL for NULL. */
WEFT_API int weft_signal_stop(weft_signal *s);

typedef struct weft_future weft_future;

/** The next delivery of `signum` to `loop`, as a future: *out (one
 * reference for the caller) fulfils with the signal number (int64). Each
 * call watches with a signal handle of its own, so several pending futures
 * for one signal all fulfil at its next delivery. While pending it keeps
 * the loop alive like an active handle. Cancelling it stops watching and
 * frees what it held. Its handle shows in weft_walk(); do not close it
 * yourself (that skips its bookkeeping and leaks it): cancel the future
 * before tearing the loop down. Returns 0; -EINVAL (NULL loop or out,
 * signum 0, SIGKILL, SIGSTOP, < 0 or >= NSIG); -EBUSY if another loop
 * watches `signum`; -ENOMEM. On error nothing is held, *out untouched. */
WEFT_API int weft_signal_next_future(weft_loop *loop, int signum,
                                     weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SIGNAL_H */
