/* weft — child processes: spawn, pidfd exit watching, exit callback and
 * future, kill.
 *
 * Spawning: the stdio plan (which fd becomes the child's fd i) is computed
 * in the parent, then carried out by io/process_clone.c (clone with
 * CLONE_VM|CLONE_VFORK|CLONE_PIDFD on a stack the loop keeps; the child
 * reports exec failure's errno through the shared memory). Where that is
 * refused (TSan builds, kernels without close_range or that reject the
 * flags) glibc's posix_spawn does it, or, when a uid or gid is asked for
 * (posix_spawn cannot), fork() with a close-on-exec pipe that carries exec
 * failure's errno back.
 *
 * Watching (io/process_watch.c): a pidfd per child, polled by one ev_io;
 * the record is allocated before spawning so that nothing can fail once
 * the child runs, and it outlives an early-closed handle (the loop reaps
 * the orphan when it exits). */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

extern char **environ;

static void process_close(weft_handle *h);
static void process_finish(weft_handle *h);
static const weft__handle_ops process_ops = {WEFT_HANDLE_PROCESS, process_close,
                                             process_finish};

/* ---- exit ---------------------------------------------------------------- */

static int64_t encode_exit(const siginfo_t *si) {
  if (si->si_code == CLD_EXITED) return si->si_status;
  return -(int64_t)si->si_status; /* CLD_KILLED, CLD_DUMPED */
}

void weft__process_exited(weft_process *p, const siginfo_t *si) {
  p->child = NULL;
  p->exited = true;
  p->exit_value = encode_exit(si);
  weft__handle_stop(&p->base);
  if (p->exit_future != NULL)
    weft_future_resolve_i64(p->exit_future, p->exit_value);
  if (p->exit_cb != NULL)
    p->exit_cb(p, weft_exit_code(p->exit_value),
               weft_exit_signal(p->exit_value));
}

static void process_close(weft_handle *h) {
  weft_process *p = (weft_process *)h;
  if (p->child == NULL) return;
  if (p->flags & WEFT_PROCESS_KILL_ON_CLOSE)
    weft__child_kill(p->child, SIGKILL);
  /* the child keeps running (or dies); the loop reaps it when it exits */
  weft__child_orphan(p->child);
  p->child = NULL;
}

static void process_finish(weft_handle *h) {
  weft_process *p = (weft_process *)h;
  if (p->exit_future == NULL) return;
  if (!p->exited) weft_future_reject(p->exit_future, -ECANCELED);
  weft_future_unref(p->exit_future);
  p->exit_future = NULL;
}

/* ---- the stdio plan
 * ----------------------------------------------------------- */

typedef struct plan {
  int src[WEFT_PROCESS_MAX_STDIO];    /* child's fd i = dup of src[i], or a
                                         WEFT__SRC_* (process_internal.h) */
  int parent[WEFT_PROCESS_MAX_STDIO]; /* our pipe end (opened into the pipe) */
  /* fds to close after spawning: /dev/null, the child's pipe ends, lifted
   * copies (at most one per slot each) */
  int temp[2 * WEFT_PROCESS_MAX_STDIO + 1];
  unsigned n, ntemp;
  int devnull;
} plan;

static void plan_init(plan *pl, unsigned n) {
  pl->n = n < 3 ? 3 : n;
  pl->ntemp = 0;
  pl->devnull = -1;
  for (unsigned i = 0; i < WEFT_PROCESS_MAX_STDIO; i++)
    pl->src[i] = pl->parent[i] = WEFT__SRC_KEEP;
}

static void plan_close_temps(plan *pl) {
  for (unsigned i = 0; i < pl->ntemp; i++)
    close(pl->temp[i]);
  pl->ntemp = 0;
}

/* Undoes a plan after a failed spawn: our pipe ends were opened into their
 * weft_pipes, which go back to their unopened state. */
static void plan_abort(plan *pl, const weft_process_options *o) {
  plan_close_temps(pl);
  for (unsigned i = 0; i < o->stdio_count; i++)
    if (pl->parent[i] >= 0) weft__stream_reset(&o->stdio[i].pipe->stream);
}

static int plan_temp(plan *pl, int fd) {
  pl->temp[pl->ntemp++] = fd;
  return fd;
}

static bool pipe_unopened(const weft_pipe *p, weft_loop *loop) {
  return p != NULL &&
         weft_handle_get_type(&p->stream.base) == WEFT_HANDLE_PIPE &&
         weft__handle_usable(&p->stream.base) && p->stream.base.loop == loop &&
         weft__stream_fd(&p->stream) < 0;
}

/* A pipe for slot i: fds[0] the child's end, fds[1] ours. */
static int make_pipe(unsigned i, int fds[2]) {
  if (i > 2)
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ? -errno
                                                                       : 0;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  fds[0] = i == 0 ? p[0] : p[1];
  fds[1] = i == 0 ? p[1] : p[0];
  return 0;
}

static int plan_slot(plan *pl, unsigned i, const weft_stdio *s,
                     weft_loop *loop) {
  int fds[2], err;
  switch (s->kind) {
  case WEFT_STDIO_INHERIT:
    if (fcntl((int)i, F_GETFD) < 0) /* a closed stdio fd stays closed */
      return i > 2 ? -EBADF : 0;
    pl->src[i] = (int)i;
    return 0;
  case WEFT_STDIO_IGNORE: /* the clone child opens it: plan_devnull() */
    pl->src[i] = WEFT__SRC_DEVNULL;
    return 0;
  case WEFT_STDIO_FD:
    if (s->fd < 0 || fcntl(s->fd, F_GETFD) < 0) return -EBADF;
    pl->src[i] = s->fd;
    return 0;
  case WEFT_STDIO_PIPE:
    if (!pipe_unopened(s->pipe, loop)) return -EINVAL;
    if ((err = make_pipe(i, fds)) != 0) return err;
    pl->src[i] = plan_temp(pl, fds[0]);
    if ((err = weft_pipe_open(s->pipe, fds[1])) != 0) {
      close(fds[1]);
      return err;
    }
    pl->parent[i] = fds[1];
    return 0;
  }
  return -EINVAL;
}

/* dup2 in slot order would clobber a source that is itself a lower slot
 * number (a swap of 0 and 1, a pipe end that got fd 2): move such sources
 * above the slots first. A source already in its slot but close-on-exec
 * moves too, so that a real dup2 clears the flag in the child. */
static bool must_lift(int fd, unsigned i, unsigned n) {
  if (fd < 0 || fd >= (int)n) return false;
  if (fd != (int)i) return true;
  int fl = fcntl(fd, F_GETFD);
  return fl >= 0 && (fl & FD_CLOEXEC);
}

static int plan_lift(plan *pl) {
  for (unsigned i = 0; i < pl->n; i++) {
    int fd = pl->src[i];
    if (!must_lift(fd, i, pl->n)) continue;
    int up = fcntl(fd, F_DUPFD_CLOEXEC, (int)pl->n);
    if (up < 0) return -errno;
    plan_temp(pl, up);
    for (unsigned j = i; j < pl->n; j++)
      if (pl->src[j] == fd) pl->src[j] = up;
  }
  return 0;
}

/* Inherited slots are looked at first: once weft opens fds (pipes,
 * /dev/null), a stdio number the parent had closed may be reused by one of
 * them, and would then look "inherited". */
static int plan_make(plan *pl, const weft_process_options *o, weft_loop *loop) {
  plan_init(pl, o->stdio_count);
  for (int pass = 0; pass < 2; pass++)
    for (unsigned i = 0; i < o->stdio_count; i++) {
      bool inherit = o->stdio[i].kind == WEFT_STDIO_INHERIT;
      if (inherit != (pass == 0)) continue;
      int err = plan_slot(pl, i, &o->stdio[i], loop);
      if (err != 0) return err;
    }
  return plan_lift(pl);
}

/* For posix_spawn and fork: /dev/null opened here, in the slots that
 * want it, and lifted like any source. */
static int plan_devnull(plan *pl) {
  for (unsigned i = 0; i < pl->n; i++) {
    if (pl->src[i] != WEFT__SRC_DEVNULL) continue;
    if (pl->devnull < 0) {
      pl->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (pl->devnull < 0) return -errno;
      plan_temp(pl, pl->devnull);
    }
    pl->src[i] = pl->devnull;
  }
  return pl->devnull >= 0 ? plan_lift(pl) : 0;
}

/* ---- posix_spawn
 * ---------------------------------------------------------------- */

/* glibc's sigfillset() leaves out its internal signals (32 and 33), and its
 * posix_spawn child sets those to SIG_IGN unless the default set names
 * them, so an exec'd program would start with them ignored. On Linux a
 * sigset_t is a plain bit mask: every bit set names every signal, and the
 * child (all signals blocked until exec) then resets them to SIG_DFL. */
static void every_signal(sigset_t *set) { memset(set, 0xff, sizeof *set); }

static int spawn_attrs(posix_spawnattr_t *a, unsigned flags) {
  sigset_t none, all;
  sigemptyset(&none);
  every_signal(&all);
  short f = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (flags & WEFT_PROCESS_NEW_PGROUP) f |= POSIX_SPAWN_SETPGROUP;
  if (flags & (WEFT_PROCESS_NEW_SESSION | WEFT_PROCESS_DETACHED))
    f |= POSIX_SPAWN_SETSID;
  int err = posix_spawnattr_setsigmask(a, &none);
  if (err == 0) err = posix_spawnattr_setsigdefault(a, &all);
  if (err == 0) err = posix_spawnattr_setpgroup(a, 0);
  if (err == 0) err = posix_spawnattr_setflags(a, f);
  return err;
}

static int spawn_actions(posix_spawn_file_actions_t *fa, const plan *pl,
                         const char *cwd) {
  int err = 0;
  /* a source already in its slot (not close-on-exec: see plan_lift) needs
   * no action */
  for (unsigned i = 0; i < pl->n && err == 0; i++)
    if (pl->src[i] >= 0 && pl->src[i] != (int)i)
      err = posix_spawn_file_actions_adddup2(fa, pl->src[i], (int)i);
  if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(fa, (int)pl->n);
  if (err == 0 && cwd != NULL)
    err = posix_spawn_file_actions_addchdir_np(fa, cwd);
  return err;
}

static const char *prog_file(const weft_process_options *o) {
  return o->file != NULL ? o->file : o->argv[0];
}

static int spawn_posix(const weft_process_options *o, const plan *pl,
                       pid_t *pid) {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t fa;
  if (posix_spawnattr_init(&attr) != 0) return -ENOMEM;
  if (posix_spawn_file_actions_init(&fa) != 0) {
    posix_spawnattr_destroy(&attr);
    return -ENOMEM;
  }
  int err = spawn_attrs(&attr, o->flags);
  if (err == 0) err = spawn_actions(&fa, pl, o->cwd);
  const char *file = prog_file(o);
  char *const *env = o->env != NULL ? o->env : environ;
  if (err == 0)
    err = strchr(file, '/') ? posix_spawn(pid, file, &fa, &attr, o->argv, env)
                            : posix_spawnp(pid, file, &fa, &attr, o->argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return -err;
}

/* ---- fork (uid / gid)
 * -------------------------------------------------------------- */

/* glibc's sigaction() refuses its internal signals (32, 33), so the raw
 * system call resets every one. An all-zero kernel sigaction is SIG_DFL
 * with no flags and an empty mask whatever the architecture's field
 * order; SIGKILL and SIGSTOP just fail. Async-signal-safe. */
static void reset_all_signals(void) {
  unsigned long dfl[8] = {0};
  for (int sig = 1; sig < NSIG; sig++)
    syscall(SYS_rt_sigaction, sig, dfl, NULL, (NSIG - 1) / 8);
}

/* In the forked child: only async-signal-safe calls. Returns errno. */
static int child_setup(const weft_process_options *o, const plan *pl) {
  if ((o->flags & WEFT_PROCESS_SETGID) &&
      (setgroups(0, NULL) < 0 || setgid(o->gid) < 0))
    return errno;
  if ((o->flags & WEFT_PROCESS_SETUID) && setuid(o->uid) < 0) return errno;
  if ((o->flags & (WEFT_PROCESS_NEW_SESSION | WEFT_PROCESS_DETACHED)) &&
      setsid() < 0)
    return errno;
  if ((o->flags & WEFT_PROCESS_NEW_PGROUP) && setpgid(0, 0) < 0) return errno;
  for (unsigned i = 0; i < pl->n; i++) {
    int fd = pl->src[i];
    if (fd < 0) continue;
    if (fd == (int)i ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, (int)i) < 0)
      return errno;
  }
  /* close-on-exec, not closed: the error pipe must stay open until exec */
  syscall(SYS_close_range, pl->n, ~0u, CLOSE_RANGE_CLOEXEC);
  if (o->cwd != NULL && chdir(o->cwd) < 0) return errno;
  reset_all_signals();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execvpe(prog_file(o), o->argv, o->env != NULL ? o->env : environ);
  return errno;
}

static int spawn_fork(const weft_process_options *o, const plan *pl,
                      pid_t *pid) {
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) return -errno;
  /* the child must not run a handler of ours before it resets them */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t child = fork();
  if (child == 0) {
    close(ep[0]);
    int e = child_setup(o, pl);
    while (write(ep[1], &e, sizeof e) < 0 && errno == EINTR) {
    }
    _exit(127);
  }
  int ferr = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(ep[1]);
  if (child < 0) {
    close(ep[0]);
    return -ferr;
  }
  int e = 0;
  ssize_t r;
  do
    r = read(ep[0], &e, sizeof e);
  while (r < 0 && errno == EINTR);
  close(ep[0]);
  if (r == (ssize_t)sizeof e) { /* exec failed: the child is exiting */
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    return -e;
  }
  *pid = child;
  return 0;
}

/* ---- weft_spawn
 * -------------------------------------------------------------------- */

static int check_opts(weft_loop *loop, weft_process *p,
                      const weft_process_options *o) {
  if (loop == NULL || p == NULL || o == NULL || o->argv == NULL ||
      o->argv[0] == NULL || prog_file(o)[0] == '\0')
    return -EINVAL;
  if ((o->flags & ~(unsigned)WEFT__PROCESS_ALL_FLAGS) != 0 ||
      o->stdio_count > WEFT_PROCESS_MAX_STDIO ||
      (o->stdio_count > 0 && o->stdio == NULL))
    return -EINVAL;
  for (unsigned i = 0; i < o->stdio_count; i++)
    if ((unsigned)o->stdio[i].kind > WEFT_STDIO_FD) return -EINVAL;
  return 0;
}

/* Kills and reaps a child we cannot watch. */
static void child_abandon(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

static void process_start(weft_loop *loop, weft_process *p,
                          const weft_process_options *o, pid_t pid) {
  weft__handle_init(loop, &p->base, &process_ops);
  p->pid = pid;
  p->exit_cb = o->exit_cb;
  p->exit_future = NULL;
  p->exit_value = 0;
  p->exited = false;
  p->flags = o->flags;
  weft__handle_start(&p->base);
  if (o->flags & WEFT_PROCESS_DETACHED) weft_unref(&p->base);
}

static int do_spawn(weft_loop *loop, const weft_process_options *o, plan *pl,
                    pid_t *pid, int *pidfd) {
  int err = weft__spawn_clone(loop, o, pl->src, pl->n, pid, pidfd);
  if (err != WEFT__SPAWN_REFUSED) return err;
  *pidfd = -1;
  if ((err = plan_devnull(pl)) != 0) return err;
  if (o->flags & (WEFT_PROCESS_SETUID | WEFT_PROCESS_SETGID))
    return spawn_fork(o, pl, pid);
  return spawn_posix(o, pl, pid);
}

int weft_spawn(weft_loop *loop, weft_process *p,
               const weft_process_options *o) {
  int err = check_opts(loop, p, o);
  if (err != 0) return err;
  weft__child *c;
  if ((err = weft__child_prepare(loop, &c)) != 0) return err;
  plan pl;
  pid_t pid = -1;
  int pidfd = -1;
  err = plan_make(&pl, o, loop);
  if (err == 0) err = do_spawn(loop, o, &pl, &pid, &pidfd);
  if (err != 0) {
    plan_abort(&pl, o);
    weft__child_discard(c);
    return err;
  }
  plan_close_temps(&pl);
  if ((err = weft__child_attach(c, p, pid, pidfd)) != 0) {
    child_abandon(pid);
    plan_abort(&pl, o);
    return err;
  }
  process_start(loop, p, o, pid);
  p->child = c;
  return 0;
}

static bool process_usable(const weft_process *p) {
  return p != NULL && p->base.ops == &process_ops &&
         weft__handle_usable(&p->base);
}

int weft_process_kill(weft_process *p, int signum) {
  if (!process_usable(p) || signum < 0 || signum >= NSIG) return -EINVAL;
  if (p->child == NULL) return -ESRCH;
  return weft__child_kill(p->child, signum);
}

int weft_process_kill_group(weft_process *p, int signum) {
  const unsigned leads = WEFT_PROCESS_NEW_PGROUP | WEFT_PROCESS_NEW_SESSION |
                         WEFT_PROCESS_DETACHED;
  if (!process_usable(p) || signum < 0 || signum >= NSIG || !(p->flags & leads))
    return -EINVAL;
  return killpg(p->pid, signum) < 0 ? -errno : 0;
}

int weft_process_exit_future(weft_process *p, weft_future **out) {
  if (!process_usable(p) || out == NULL) return -EINVAL;
  if (p->exit_future == NULL) {
    int err = weft_future_new_op(p->base.loop, "weft_process_exit_future",
                                 &p->exit_future);
    if (err != 0) return err;
    if (p->exited) weft_future_resolve_i64(p->exit_future, p->exit_value);
  }
  *out = weft_future_ref(p->exit_future);
  return 0;
}

pid_t weft_process_pid(const weft_process *p) {
  return p != NULL ? p->pid : -EINVAL;
}
