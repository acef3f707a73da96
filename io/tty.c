/* weft — terminal handles: a tty as a stream on a fd of its own, its mode
 * saved in a process-wide table and put back at close, at exit and on
 * fatal signals, its window size, and SIGWINCH as a callback or a future.
 *
 * The saved table is what the atexit and signal handlers read, so it holds
 * copies (never pointers into a handle a user may free): per terminal
 * (device number), the termios it had and a fd of the entry's own (a dup,
 * so no handle's close can pull it away), shared by every handle on that
 * terminal that is out of normal mode (`refs`). Handles change entries
 * under a mutex; the handlers read only entries whose atomic state is
 * ARMED (FREE and BUSY ones are skipped), and an entry's fd is closed only
 * after its state left ARMED. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "internal.h"
#include "weft/tty.h"

_Static_assert(sizeof(ev_signal) <= sizeof(((weft_tty *)0)->winch),
               "ev_signal does not fit weft_tty's storage");

enum { T_WINCH = 1u << 0 }; /* watching SIGWINCH (claimed, alive counted) */

/* ---- the saved table and the handlers that read it ------------------------
 */

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_ARMED };

static struct {
  atomic_int state;
  int fd;        /* the entry's own dup of the terminal */
  dev_t dev;     /* which terminal */
  unsigned refs; /* handles out of normal mode on it (under table_lock) */
  struct termios tio;
} saved[WEFT_TTY_SAVED_MAX];

static const int fatal_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGSEGV,
                                    SIGBUS, SIGFPE,  SIGILL,  SIGABRT};

/* Async-signal-safe: tcsetattr is, and nothing here allocates or locks. */
static int restore_all(void) {
  int saved_errno = errno, err = 0;
  for (int i = 0; i < WEFT_TTY_SAVED_MAX; i++) {
    if (atomic_load(&saved[i].state) != SLOT_ARMED) continue;
    if (tcsetattr(saved[i].fd, TCSANOW, &saved[i].tio) < 0 && err == 0)
      err = -errno;
  }
  errno = saved_errno;
  return err;
}

/* SA_RESETHAND has put the default disposition back and SA_NODEFER leaves
 * the signal unblocked, so raising it again kills the process by it. */
static void on_fatal(int signum) {
  restore_all();
  raise(signum);
}

static void at_exit(void) { restore_all(); }

/* Once per process, when a terminal first leaves normal mode. Only
 * signals still at their default disposition get the handler. */
static void install_handlers(void) {
  atexit(at_exit);
  for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
    struct sigaction old, sa;
    if (sigaction(fatal_signals[i], NULL, &old) != 0 ||
        (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
      continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(fatal_signals[i], &sa, NULL);
  }
}

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* The entry of the terminal `fd` is on, made (its termios read) if there
 * is none; one more handle refers to it. Returns its index or -ENOSPC,
 * -EMFILE, a tcgetattr error. */
static int slot_take(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  pthread_mutex_lock(&table_lock);
  int i, free_i = -1, err = 0;
  for (i = 0; i < WEFT_TTY_SAVED_MAX; i++) {
    int state = atomic_load(&saved[i].state);
    if (state == SLOT_ARMED && saved[i].dev == st.st_rdev) break;
    if (state == SLOT_FREE && free_i < 0) free_i = i;
  }
  if (i == WEFT_TTY_SAVED_MAX) { /* a terminal not saved yet */
    i = free_i;
    if (i < 0) err = -ENOSPC;
    if (err == 0 && (saved[i].fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
      err = -errno;
    if (err == 0 && tcgetattr(saved[i].fd, &saved[i].tio) < 0) {
      err = -errno;
      close(saved[i].fd);
    }
    if (err == 0) {
      saved[i].dev = st.st_rdev;
      saved[i].refs = 0;
      atomic_store(&saved[i].state, SLOT_ARMED);
    }
  }
  if (err == 0) saved[i].refs++;
  pthread_mutex_unlock(&table_lock);
  return err != 0 ? err : i;
}

/* A handle lets go of entry `i`, after putting the terminal back if
 * `restore` (a failed restore keeps the reference unless `force`). The
 * last reference frees the entry. */
static int slot_put(int i, bool restore, bool force) {
  pthread_mutex_lock(&table_lock);
  int err = 0;
  if (restore && tcsetattr(saved[i].fd, TCSANOW, &saved[i].tio) < 0)
    err = -errno;
  if ((err == 0 || force) && --saved[i].refs == 0) {
    atomic_store(&saved[i].state, SLOT_BUSY);
    close(saved[i].fd);
    atomic_store(&saved[i].state, SLOT_FREE);
  }
  pthread_mutex_unlock(&table_lock);
  return force ? 0 : err;
}

int weft_tty_reset_mode(void) { return restore_all(); }

/* ---- the handle ------------------------------------------------------------
 */

static void tty_close(weft_handle *h);

static const weft__handle_ops tty_ops = {
    WEFT_HANDLE_TTY, tty_close, weft__stream_finish, weft__stream_deliver};

static ev_signal *winch(weft_tty *t) { return (ev_signal *)(void *)&t->winch; }
static int fd_of(const weft_tty *t) { return weft__stream_fd(&t->stream); }

static bool usable(const weft_tty *t) {
  return t != NULL && t->stream.base.ops == &tty_ops &&
         weft__handle_usable(&t->stream.base);
}
static bool has_tty(const weft_tty *t) { return usable(t) && fd_of(t) >= 0; }

static void on_winch(struct ev_loop *ev, ev_signal *w, int revents);

int weft_tty_init(weft_loop *loop, weft_tty *t) {
  if (loop == NULL || t == NULL) return -EINVAL;
  weft__stream_init(loop, &t->stream, &tty_ops);
  memset(&t->winch, 0, sizeof t->winch);
  ev_signal_init(winch(t), on_winch, SIGWINCH);
  winch(t)->data = t;
  t->resize_cb = NULL;
  t->resize_f = NULL;
  t->mode = WEFT_TTY_MODE_NORMAL;
  t->slot = -1;
  t->restore_fl = -1;
  t->cols = t->rows = 0;
  t->tflags = 0;
  return 0;
}

static int size_of(int fd, int *cols, int *rows) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return -errno;
  *cols = ws.ws_col;
  *rows = ws.ws_row;
  return 0;
}

/* The terminal opened again by its name, with the access mode of `fd`, if
 * that gives the same device; -1 otherwise, and for a pty master (its
 * name, /dev/ptmx, would make a new pty). */
static int reopen(int fd, int fl) {
  char path[256];
  unsigned ptn;
  if (ioctl(fd, TIOCGPTN, &ptn) == 0) return -1; /* a pty master */
  if (ttyname_r(fd, path, sizeof path) != 0) return -1;
  int nfd = open(path, (fl & O_ACCMODE) | O_NOCTTY | O_CLOEXEC);
  if (nfd < 0) return -1;
  struct stat a, b;
  if (fstat(fd, &a) == 0 && fstat(nfd, &b) == 0 && a.st_rdev == b.st_rdev &&
      S_ISCHR(b.st_mode))
    return nfd;
  close(nfd);
  return -1;
}

int weft_tty_open(weft_tty *t, int fd) {
  if (!usable(t) || fd < 0 || fd_of(t) >= 0) return -EINVAL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  if (!isatty(fd)) return -ENOTTY;
  int own = reopen(fd, fl), restore = -1;
  if (own < 0) { /* shares the caller's description: put O_NONBLOCK back */
    own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return -errno;
    if (!(fl & O_NONBLOCK)) restore = fl;
  }
  int err = weft__stream_set_fd(&t->stream, own, WEFT__S_CONNECTED);
  if (err != 0) {
    close(own);
    return err;
  }
  t->restore_fl = restore;
  if (size_of(own, &t->cols, &t->rows) != 0) t->cols = t->rows = 0;
  return 0;
}

static void make_mode(struct termios *tio, weft_tty_mode mode) {
  if (mode == WEFT_TTY_MODE_IO) {
    cfmakeraw(tio);
    return;
  }
  /* raw as libuv makes it: output processing stays */
  tio->c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
  tio->c_oflag |= ONLCR;
  tio->c_cflag |= CS8;
  tio->c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN | ISIG);
  tio->c_cc[VMIN] = 1;
  tio->c_cc[VTIME] = 0;
}

int weft_tty_set_mode(weft_tty *t, weft_tty_mode mode) {
  if (!has_tty(t) || (unsigned)mode > WEFT_TTY_MODE_IO) return -EINVAL;
  if ((int)mode == t->mode) return 0;
  int fd = fd_of(t);
  if (mode == WEFT_TTY_MODE_NORMAL) {
    int err = slot_put(t->slot, true, false);
    if (err != 0) return err;
    t->slot = -1;
    t->mode = mode;
    return 0;
  }
  bool fresh = t->slot < 0;
  if (fresh) {
    pthread_once(&install_once, install_handlers);
    int slot = slot_take(fd);
    if (slot < 0) return slot;
    t->slot = slot;
  }
  struct termios tio = saved[t->slot].tio; /* modes are made from it */
  make_mode(&tio, mode);
  if (tcsetattr(fd, TCSANOW, &tio) < 0) {
    int err = -errno;
    if (fresh) {
      slot_put(t->slot, false, true);
      t->slot = -1;
    }
    return err;
  }
  t->mode = mode;
  return 0;
}

weft_tty_mode weft_tty_get_mode(const weft_tty *t) {
  return t != NULL && t->stream.base.ops == &tty_ops ? (weft_tty_mode)t->mode
                                                     : WEFT_TTY_MODE_NORMAL;
}

int weft_tty_get_winsize(const weft_tty *t, int *cols, int *rows) {
  if (!has_tty(t)) return -EINVAL;
  int c = 0, r = 0, err = size_of(fd_of(t), &c, &r);
  if (err != 0) return err;
  if (cols) *cols = c;
  if (rows) *rows = r;
  return 0;
}

/* ---- resizes ---------------------------------------------------------------
 */

/* Watches SIGWINCH while a callback is set or a future pends (and the
 * handle is open); the size seen when watching starts is the baseline. */
static int winch_update(weft_tty *t) {
  weft_loop *loop = t->stream.base.loop;
  bool want = (t->resize_cb != NULL || t->resize_f != NULL) &&
              weft__handle_usable(&t->stream.base) && fd_of(t) >= 0;
  if (want && !(t->tflags & T_WINCH)) {
    int err = weft__signal_claim(loop, SIGWINCH);
    if (err != 0) return err;
    if (size_of(fd_of(t), &t->cols, &t->rows) != 0) t->cols = t->rows = 0;
    loop->fd_dirty = true; /* with EVFLAG_SIGNALFD libev adds an fd */
    WEFT__EV_START(signal, loop, winch(t));
    weft__signal_wrap(loop, SIGWINCH);
    weft__alive_add(loop, 1);
    t->tflags |= T_WINCH;
  } else if (!want && (t->tflags & T_WINCH)) {
    WEFT__EV_STOP(signal, loop, winch(t));
    weft__signal_release(SIGWINCH);
    weft__alive_add(loop, -1);
    t->tflags &= ~T_WINCH;
  }
  return 0;
}

static void on_winch(struct ev_loop *ev, ev_signal *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  weft_tty *t = w->data;
  int cols = 0, rows = 0;
  if (size_of(fd_of(t), &cols, &rows) != 0 ||
      (cols == t->cols && rows == t->rows))
    return;
  t->cols = cols;
  t->rows = rows;
  if (t->resize_cb != NULL) t->resize_cb(t, cols, rows);
  weft_future *f = t->resize_f; /* NULL if the callback closed the handle */
  if (f != NULL) {
    t->resize_f = NULL;
    weft_future_resolve_i64(f, ((int64_t)cols << 16) | rows);
    weft_future_unref(f);
  }
  winch_update(t);
}

int weft_tty_on_resize(weft_tty *t, weft_tty_resize_cb cb) {
  if (!has_tty(t)) return -EINVAL;
  weft_tty_resize_cb old = t->resize_cb;
  t->resize_cb = cb;
  int err = winch_update(t);
  if (err != 0) t->resize_cb = old;
  return err;
}

static void resize_cancel(weft_future *f, void *arg) {
  weft_tty *t = arg;
  if (t->resize_f != f) return;
  t->resize_f = NULL;
  winch_update(t);
  weft_future_unref(f);
}

int weft_tty_resize_future(weft_tty *t, weft_future **out) {
  if (!has_tty(t) || out == NULL) return -EINVAL;
  if (t->resize_f != NULL) return -EBUSY;
  weft_future *f;
  int err =
      weft_future_new_op(t->stream.base.loop, "weft_tty_resize_future", &f);
  if (err != 0) return err;
  t->resize_f = f; /* the handle's reference */
  err = winch_update(t);
  if (err != 0) {
    t->resize_f = NULL;
    weft_future_unref(f);
    return err;
  }
  weft_future_on_cancel(f, resize_cancel, t);
  *out = weft_future_ref(f);
  return 0;
}

/* Close: the terminal's mode and the shared description's flags go back
 * before the fd closes; a pending resize future is cancelled. */
static void tty_close(weft_handle *h) {
  weft_tty *t = (weft_tty *)(void *)h;
  int fd = fd_of(t);
  if (t->slot >= 0) slot_put(t->slot, true, true);
  t->slot = -1;
  t->mode = WEFT_TTY_MODE_NORMAL;
  if (fd >= 0 && t->restore_fl >= 0) fcntl(fd, F_SETFL, t->restore_fl);
  t->restore_fl = -1;
  weft_future *f = t->resize_f;
  t->resize_cb = NULL;
  t->resize_f = NULL;
  winch_update(t);
  if (f != NULL) {
    weft_future_reject(f, -ECANCELED);
    weft_future_unref(f);
  }
  weft__stream_close(h);
}
