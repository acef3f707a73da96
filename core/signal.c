/* weft — signal handles on libev's ev_signal.
 *
 * libev attaches a signal to one loop at a time and aborts if a second loop
 * tries. weft keeps a process-wide table of which loop owns each signal so
 * that a second loop gets -EBUSY instead. */
#include <signal.h>

#include "internal.h"

_Static_assert(sizeof(ev_signal) <= sizeof(((weft_signal *)0)->watcher),
               "ev_signal does not fit weft_signal's storage");

static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  weft_loop *loop;
  unsigned count;
} owners[NSIG];

static ev_signal *watcher(weft_signal *s) { return (ev_signal *)(void *)&s->watcher; }

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
  if (--owners[signum].count == 0) owners[signum].loop = NULL;
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

static const weft__handle_ops signal_ops = {WEFT_HANDLE_SIGNAL, signal_close, NULL};

int weft_signal_init(weft_loop *loop, weft_signal *s) {
  if (loop == NULL || s == NULL) return -EINVAL;
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
  s->cb = cb;
  s->oneshot = oneshot;
  if (weft_is_active(&s->base) && s->signum == signum) return 0;
  int err = claim(s->base.loop, signum);
  if (err != 0) return err;
  weft_signal_stop(s);
  weft_loop *loop = s->base.loop;
  s->signum = signum;
  ev_signal_set(watcher(s), signum);
  ev_signal_start(loop->ev, watcher(s));
  ev_unref(loop->ev);
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
  ev_ref(loop->ev);
  ev_signal_stop(loop->ev, watcher(s));
  release(s->signum);
  weft__handle_stop(&s->base);
  return 0;
}
