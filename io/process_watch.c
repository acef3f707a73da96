/* weft — watching children: a pidfd per child (one ev_io each), so that any
 * loop can own processes; orphans (handles closed before the exit) stay
 * watched and are reaped on exit.
 *
 * Fallback, only where pidfd_open() fails with ENOSYS (Linux < 5.3): the
 * loop watches SIGCHLD with its own ev_signal and, on each one, sweeps its
 * children with waitid(WNOHANG). A signal belongs to one loop at a time
 * (core/signal.c's table), so in that mode only one loop can own children.
 * Setting WEFT_PROCESS_NO_PIDFD=1 in the environment before a loop spawns
 * its first child forces the fallback (for tests). */
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

struct weft__child {
  ev_io io; /* on the pidfd (fd -1 in fallback mode) */
  weft_loop *loop;
  weft_process *proc; /* NULL once the handle closed (an orphan) */
  pid_t pid;
  weft__list node; /* orphans (pidfd mode) or sweep list (fallback) */
};

typedef struct procmod {
  weft_loop *loop;
  weft__list orphans; /* pidfd mode: handles closed before the exit */
  weft__list swept;   /* fallback: every watched child */
  size_t prepared;    /* fallback: records between prepare and attach */
  bool no_pidfd;
  bool sig_on; /* `sigchld` started and SIGCHLD claimed */
  ev_signal sigchld;
  weft__spawn_stack stack; /* io/process_clone.c's */
} procmod;

/* ---- the SIGCHLD fallback ------------------------------------------------ */

static void on_sigchld(struct ev_loop *ev, ev_signal *w, int revents);

static int sig_start(procmod *m) {
  if (m->sig_on) return 0;
  int err = weft__signal_claim(m->loop, SIGCHLD);
  if (err != 0) return err;
  ev_signal_init(&m->sigchld, on_sigchld, SIGCHLD);
  m->sigchld.data = m;
  m->loop->fd_dirty = true; /* with EVFLAG_SIGNALFD libev adds an fd */
  WEFT__EV_START(signal, m->loop,
                 &m->sigchld); /* the process handles keep the loop alive */
  weft__signal_wrap(m->loop, SIGCHLD);
  m->sig_on = true;
  return 0;
}

/* Stops watching SIGCHLD once no child needs it (other loops may then). */
static void sig_maybe_stop(procmod *m) {
  if (!m->sig_on || !weft__list_empty(&m->swept) || m->prepared != 0) return;
  WEFT__EV_STOP(signal, m->loop, &m->sigchld);
  weft__signal_release(SIGCHLD);
  m->sig_on = false;
}

/* ---- records
 * ------------------------------------------------------------------ */

static void child_free(weft__child *c) {
  if (c->io.fd >= 0) {
    weft__io_stop(c->loop, &c->io);
    close(c->io.fd);
  }
  if (weft__list_linked(&c->node)) weft__list_unlink(&c->node);
  weft__free(c);
}

/* The child is reaped: tell its handle, if it still has one. */
static void child_reaped(weft__child *c, const siginfo_t *si) {
  weft_process *p = c->proc;
  procmod *m = weft__module_get(c->loop, WEFT__MOD_PROCESS);
  child_free(c);
  sig_maybe_stop(m);
  if (p != NULL) weft__process_exited(p, si);
}

/* waitid() without blocking: 1 reaped (si filled), 0 still running. */
static int try_reap(weft__child *c, siginfo_t *si) {
  memset(si, 0, sizeof *si);
  int r = c->io.fd >= 0 ? waitid(P_PIDFD, (id_t)c->io.fd, si, WEXITED | WNOHANG)
                        : waitid(P_PID, (id_t)c->pid, si, WEXITED | WNOHANG);
  if (r < 0) {
    if (errno == EINTR) return 0; /* we come back */
    si->si_code = CLD_KILLED;     /* reaped elsewhere: status unknowable */
    si->si_status = 0;
    return 1;
  }
  return si->si_pid != 0; /* 0: not exited (a stop or a continue) */
}

static void on_pidfd(struct ev_loop *ev, ev_io *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  ((weft__child *)w->data)->loop->m.io_events++; /* metrics */
  siginfo_t si;
  if (try_reap(w->data, &si)) child_reaped(w->data, &si);
}

static void on_sigchld(struct ev_loop *ev, ev_signal *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  procmod *m = w->data;
  /* one signal may stand for several exits: sweep every child; reaping
   * unlinks, so take `next` first */
  for (weft__list *n = m->swept.next, *next; n != &m->swept; n = next) {
    next = n->next;
    weft__child *c = WEFT__CONTAINER_OF(n, weft__child, node);
    siginfo_t si;
    if (try_reap(c, &si)) child_reaped(c, &si);
  }
}

/* ---- the module -------------------------------------------------------------
 */

static void reap_or_drop(weft__list *list) {
  weft__list *n;
  while ((n = weft__list_pop_front(list)) != NULL) {
    weft__child *c = WEFT__CONTAINER_OF(n, weft__child, node);
    siginfo_t si;
    try_reap(c, &si);
    child_free(c);
  }
}

/* weft_loop_free(): reap the orphans that have exited; stop watching the
 * rest (they keep running). */
static void procmod_teardown(weft_loop *loop, void *state) {
  WEFT__UNUSED(loop);
  procmod *m = state;
  reap_or_drop(&m->orphans);
  reap_or_drop(&m->swept);
  m->prepared = 0;
  sig_maybe_stop(m);
  weft__spawn_stack_free(&m->stack);
  weft__free(m);
}

static procmod *procmod_get(weft_loop *loop) {
  procmod *m = weft__module_get(loop, WEFT__MOD_PROCESS);
  if (m != NULL) return m;
  m = weft__calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->loop = loop;
  weft__list_init(&m->orphans);
  weft__list_init(&m->swept);
  const char *force = getenv("WEFT_PROCESS_NO_PIDFD");
  m->no_pidfd = force != NULL && strcmp(force, "1") == 0;
  weft__module_set(loop, WEFT__MOD_PROCESS, m, procmod_teardown);
  return m;
}

/* ---- the calls process.c makes
 * ------------------------------------------------ */

int weft__child_prepare(weft_loop *loop, weft__child **out) {
  procmod *m = procmod_get(loop);
  if (m == NULL) return -ENOMEM;
  weft__child *c = weft__calloc(1, sizeof *c);
  if (c == NULL) return -ENOMEM;
  if (m->no_pidfd) {
    int err = sig_start(m); /* before the child can exit */
    if (err != 0) {
      weft__free(c);
      return err;
    }
    m->prepared++;
  }
  c->loop = loop;
  c->io.fd = -1;
  weft__list_init(&c->node);
  *out = c;
  return 0;
}

void weft__child_discard(weft__child *c) {
  procmod *m = weft__module_get(c->loop, WEFT__MOD_PROCESS);
  if (m->no_pidfd && m->prepared > 0) m->prepared--;
  child_free(c);
  sig_maybe_stop(m);
}

/* pidfd_open() said ENOSYS: switch this loop to the SIGCHLD sweep. The
 * child may already have exited before SIGCHLD was watched, so a sweep is
 * fed at once. */
static int attach_fallback(procmod *m, weft__child *c, bool was_prepared) {
  if (!was_prepared) {
    int err = sig_start(m);
    if (err != 0) return err;
  } else {
    m->prepared--;
  }
  weft__list_push_back(&m->swept, &c->node);
  ev_feed_signal_event(m->loop->ev, SIGCHLD);
  return 0;
}

weft__spawn_stack *weft__process_spawn_stack(weft_loop *loop) {
  procmod *m = weft__module_get(loop, WEFT__MOD_PROCESS);
  return m != NULL ? &m->stack : NULL;
}

int weft__child_attach(weft__child *c, weft_process *p, pid_t pid, int pidfd) {
  procmod *m = weft__module_get(c->loop, WEFT__MOD_PROCESS);
  c->proc = p;
  c->pid = pid;
  bool was_prepared = m->no_pidfd;
  if (m->no_pidfd && pidfd >= 0) { /* forced fallback: sweep instead */
    close(pidfd);
    pidfd = -1;
  }
  int fd = pidfd >= 0 || m->no_pidfd ? pidfd : pidfd_open(pid, 0);
  if (fd < 0 && !m->no_pidfd && errno != ENOSYS) {
    int err = -errno;
    weft__child_discard(c);
    return err;
  }
  if (fd < 0) {
    m->no_pidfd = true;
    int err = attach_fallback(m, c, was_prepared);
    if (err != 0) weft__child_discard(c);
    return err;
  }
  ev_io_init(&c->io, on_pidfd, fd, EV_READ);
  c->io.data = c;
  weft__io_start(c->loop, &c->io);
  return 0;
}

void weft__child_orphan(weft__child *c) {
  c->proc = NULL;
  if (c->io.fd < 0) return; /* fallback: stays in the sweep list */
  procmod *m = weft__module_get(c->loop, WEFT__MOD_PROCESS);
  weft__list_push_back(&m->orphans, &c->node);
}

int weft__child_kill(weft__child *c, int signum) {
  /* through the pidfd a recycled pid is never hit; without one the pid is
   * still ours: nobody else reaps our children */
  int r = c->io.fd >= 0 ? pidfd_send_signal(c->io.fd, signum, NULL, 0)
                        : kill(c->pid, signum);
  return r < 0 ? -errno : 0;
}
