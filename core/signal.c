/* weft — signal handles on libev's ev_signal.
 *
 * libev attaches a signal to one loop at a time and aborts if a second loop
 * tries. weft keeps a process-wide table of which loop owns each signal so
 * that a second loop gets -EBUSY instead. */
#include <signal.h>
#include <unistd.h>

#include "internal.h"

_Static_assert(sizeof(ev_signal) <= sizeof(((weft_signal *)0)->watcher),
               "ev_signal does not fit weft_signal's storage");

static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  weft_loop *loop;
  unsigned count;
} owners[NSIG];

/* The wake fd (+1, so that 0 means none) of the loop that owns each signal
 * through a weft_signal handle, for on_os_signal(). */
static atomic_int wake_fds[NSIG];

static ev_signal *watcher(weft_signal *s) {
  return (ev_signal *)(void *)&s->watcher;
}

/* libev's handler records the signal but writes libev's wake-up pipe only
 * while ev_run() is polling, so a host that polls the backend fd itself
 * would sleep through the signal. weft's handler does what libev's does
 * (ev_feed_signal) and also wakes the owning loop. Async-signal-safe. */
static void on_os_signal(int signum) {
  int saved = errno;
  ev_feed_signal(signum);
  int fd = atomic_load_explicit(&wake_fds[signum], memory_order_relaxed) - 1;
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    WEFT__UNUSED(n);
  }
  errno = saved;
}

/* After ev_signal_start(): replaces libev's handler by on_os_signal(),
 * keeping its mask and flags. Not when libev reads a signalfd instead (no
 * handler installed): that fd wakes a host by itself. */
static void wrap_handler(weft_loop *loop, int signum) {
  struct sigaction sa;
  if (sigaction(signum, NULL, &sa) != 0 || (sa.sa_flags & SA_SIGINFO) ||
      sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN ||
      sa.sa_handler == on_os_signal)
    return;
  atomic_store(&wake_fds[signum], loop->wake_fd + 1);
  sa.sa_handler = on_os_signal;
  sigaction(signum, &sa, NULL);
}

static int claim(weft_loop *loop, int signum) {
  int err = 0;
  pthread_mutex_lock(&owners_lock);
  if (owners[signum].loop != NULL && owners[signum].loop != loop)
    err = -EBUSY;
  else {
    owners[signum].loop = loop;
    owners[signum].count++;
  }
  pthread_mutex_unlock(&owners_lock);
  return err;
}

static void release(int signum) {
  pthread_mutex_lock(&owners_lock);
  if (--owners[signum].count == 0) {
    owners[signum].loop = NULL;
    atomic_store(&wake_fds[signum], 0);
  }
  pthread_mutex_unlock(&owners_lock);
}

static void on_signal(struct ev_loop *ev, ev_signal *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  weft_signal *s = w->data;
  int signum = s->signum;
  if (s->oneshot) weft_signal_stop(s);
  s->cb(s, signum);
}

static void signal_close(weft_handle *h) { weft_signal_stop((weft_signal *)h); }

static const weft__handle_ops signal_ops = {WEFT_HANDLE_SIGNAL, signal_close,
                                            NULL};

int weft_signal_init(weft_loop *loop, weft_signal *s) {
  if (loop == NULL || s == NULL) return -EINVAL;
  WEFT__CHECK_INIT(loop, &s->base);
  weft__handle_init(loop, &s->base, &signal_ops);
  s->cb = NULL;
  s->signum = 0;
  s->oneshot = false;
  ev_signal_init(watcher(s), on_signal, SIGINT);
  watcher(s)->data = s;
  return 0;
}

static int start(weft_signal *s, weft_signal_cb cb, int signum, bool oneshot) {
  if (s == NULL || cb == NULL || !weft__handle_usable(&s->base) ||
      s->base.ops != &signal_ops || signum <= 0 || signum >= NSIG ||
      signum == SIGKILL || signum == SIGSTOP)
    return -EINVAL;
  if (weft_is_active(&s->base) && s->signum == signum) {
    s->cb = cb;
    s->oneshot = oneshot;
    return 0;
  }
  /* claim first: a failed start leaves the handle exactly as it was */
  int err = claim(s->base.loop, signum);
  if (err != 0) return err;
  weft_signal_stop(s);
  s->cb = cb;
  s->oneshot = oneshot;
  weft_loop *loop = s->base.loop;
  loop->fd_dirty = true; /* with EVFLAG_SIGNALFD libev adds an fd */
  s->signum = signum;
  ev_signal_set(watcher(s), signum);
  /* needs no fd: libev's wake-up fd was made with the loop (core/loop.c);
   * a signalfd libev fails to make falls back to it */
  WEFT__EV_START(signal, loop, watcher(s));
  wrap_handler(loop, signum);
  weft__handle_start(&s->base);
  return 0;
}

int weft_signal_start(weft_signal *s, weft_signal_cb cb, int signum) {
  return start(s, cb, signum, false);
}

int weft_signal_start_oneshot(weft_signal *s, weft_signal_cb cb, int signum) {
  return start(s, cb, signum, true);
}

int weft_signal_stop(weft_signal *s) {
  if (s == NULL || s->base.ops != &signal_ops) return -EINVAL;
  if (!weft_is_active(&s->base)) return 0;
  weft_loop *loop = s->base.loop;
  WEFT__EV_STOP(signal, loop, watcher(s));
  release(s->signum);
  weft__handle_stop(&s->base);
  return 0;
}

/* For modules that watch a signal with their own ev_signal (the process
 * module's SIGCHLD fallback, the tty's SIGWINCH): the same
 * one-loop-per-signal bookkeeping, and the same handler once the watcher
 * is started. */
int weft__signal_claim(weft_loop *loop, int signum) {
  return claim(loop, signum);
}
void weft__signal_release(int signum) { release(signum); }
void weft__signal_wrap(weft_loop *loop, int signum) {
  wrap_handler(loop, signum);
}
