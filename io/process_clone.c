/* weft — spawning by clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) on a stack
 * the loop keeps, in place of glibc's posix_spawn.
 *
 * Why: posix_spawn maps a fresh child stack and unmaps it on every call
 * (the unmap also frees the pages the child faulted in), and the pidfd
 * weft watches takes one more system call after it. Here the stack is
 * mapped once per loop (a guard page below it) and reused: with
 * CLONE_VFORK the parent sleeps until the child has exec'ed or exited, so
 * the next spawn finds it free, and loops in other threads have their
 * own. CLONE_PIDFD hands the pidfd over with the pid. /dev/null for
 * ignored slots is opened by the child, as libuv does.
 *
 * The child shares our memory and runs on our thread's TLS until exec, so
 * it does only what is async-signal-safe and touches no library state:
 * raw system calls (no libc wrapper that keeps state, caches pids or
 * signals other threads, as glibc's setuid() does), no allocation, and,
 * under ASan and UBSan, no instrumentation (CHILD below). The parent
 * blocks every signal, glibc's internal 32 and 33 included, around the
 * clone, so that no handler of ours can run in the child; the child then
 * resets every disposition to SIG_DFL and empties its mask before exec,
 * as posix_spawn did with weft's attributes. A failure's errno comes back
 * through the shared memory; the child exits with 127 and is reaped here.
 *
 * Refused (WEFT__SPAWN_REFUSED: io/process.c then uses posix_spawn or
 * fork): under TSan, whose function-entry hooks write the thread's state
 * even in a no_sanitize function and which intercepts clone(); where clone
 * rejects the flags (EINVAL, ENOSYS); where close_range() is missing
 * (Linux < 5.9). A kernel older than 5.2 ignores CLONE_PIDFD: the pidfd
 * stays -1 and io/process_watch.c opens one, or falls back to SIGCHLD. */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_internal.h"

extern char **environ;

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

#if defined(SYS_setuid32) /* 32-bit x86 and arm: the 16-bit ids are old */
#define SYS_SETUID SYS_setuid32
#define SYS_SETGID SYS_setgid32
#define SYS_SETGROUPS SYS_setgroups32
#else
#define SYS_SETUID SYS_setuid
#define SYS_SETGID SYS_setgid
#define SYS_SETGROUPS SYS_setgroups
#endif

/* Code that runs in the child: never instrumented, never inlined into
 * instrumented code. */
#define CHILD __attribute__((no_sanitize("address", "undefined"), noinline))

enum { STACK_LEN = 64 * 1024, SIGSET_BYTES = (NSIG - 1) / 8 };

void weft__spawn_stack_free(weft__spawn_stack *s) {
  if (s->base != NULL) munmap(s->base, s->len);
  s->base = NULL;
}

#ifdef WEFT_TSAN
int weft__spawn_clone(weft_loop *loop, const weft_process_options *o,
                      const int *src, unsigned n, pid_t *pid, int *pidfd) {
  (void)loop, (void)o, (void)src, (void)n, (void)pid, (void)pidfd;
  return WEFT__SPAWN_REFUSED;
}
#else
/* ---- the stack ----------------------------------------------------------- */

static int stack_map(weft__spawn_stack *s) {
  size_t guard = (size_t)sysconf(_SC_PAGESIZE);
  char *m = mmap(NULL, STACK_LEN + guard, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) return -errno;
  if (mprotect(m, guard, PROT_NONE) < 0) {
    int err = -errno;
    munmap(m, STACK_LEN + guard);
    return err;
  }
  s->base = m;
  s->len = STACK_LEN + guard;
  return 0;
}

/* Once per loop: the stack, and whether close_range() exists (a range
 * beyond every fd closes nothing). */
static int stack_get(weft_loop *loop, char **top) {
  weft__spawn_stack *s = weft__process_spawn_stack(loop);
  if (s == NULL || s->refused) return WEFT__SPAWN_REFUSED;
  if (s->base == NULL) {
    if (syscall(SYS_close_range, ~0u, ~0u, 0) < 0) {
      s->refused = true;
      return WEFT__SPAWN_REFUSED;
    }
    int err = stack_map(s);
    if (err != 0) return err;
  }
  *top = s->base + s->len;
  return 0;
}

/* ---- the child ----------------------------------------------------------- */

typedef struct child_args {
  const weft_process_options *o;
  const int *src; /* the stdio plan */
  unsigned n;
  const char *file;
  char *const *env;
  const char *path; /* $PATH to search, or NULL: `file` holds a '/' */
  volatile int err; /* the child's errno, 0 if it exec'ed */
} child_args;

/* The raw call's errno, or 0. errno is our thread's: the parent sleeps. */
#define TRY(call)                                                              \
  do {                                                                         \
    if ((call) < 0) return errno;                                              \
  } while (0)

CHILD static int child_ids(const weft_process_options *o) {
  const unsigned session = WEFT_PROCESS_NEW_SESSION | WEFT_PROCESS_DETACHED;
  if (o->flags & WEFT_PROCESS_SETGID) {
    TRY(syscall(SYS_SETGROUPS, 0, NULL));
    TRY(syscall(SYS_SETGID, o->gid));
  }
  if (o->flags & WEFT_PROCESS_SETUID) TRY(syscall(SYS_SETUID, o->uid));
  if (o->flags & session) TRY(syscall(SYS_setsid));
  if (o->flags & WEFT_PROCESS_NEW_PGROUP) TRY(syscall(SYS_setpgid, 0, 0));
  return 0;
}

/* /dev/null above the slots, so that no dup below lands on it first. */
CHILD static int child_devnull(unsigned n, int *fd) {
  int d = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR);
  if (d < 0) return errno;
  if (d < (int)n) { /* a free slot number: move it up */
    int up = (int)syscall(SYS_fcntl, d, F_DUPFD, (int)n);
    int e = errno;
    syscall(SYS_close, d);
    if (up < 0) return e;
    d = up;
  }
  *fd = d;
  return 0;
}

/* The plan's dups (sources below n were lifted above the slots by the
 * parent), then every fd from n up closed (/dev/null's original too). */
CHILD static int child_fds(const child_args *a) {
  int null = -1;
  for (unsigned i = 0; i < a->n && null < 0; i++)
    if (a->src[i] == WEFT__SRC_DEVNULL) {
      int e = child_devnull(a->n, &null);
      if (e != 0) return e;
    }
  for (unsigned i = 0; i < a->n; i++) {
    int fd = a->src[i] == WEFT__SRC_DEVNULL ? null : a->src[i];
    if (fd >= 0 && fd != (int)i) TRY(syscall(SYS_dup3, fd, (int)i, 0));
  }
  TRY(syscall(SYS_close_range, a->n, ~0u, 0));
  return 0;
}

/* SIG_DFL for every signal (an all-zero kernel sigaction: no flags, empty
 * mask; SIGKILL and SIGSTOP just fail), then nothing blocked. */
static const unsigned long zeros[8]; /* static: no init code runs */

CHILD static void child_signals(void) {
  for (int sig = 1; sig < NSIG; sig++)
    syscall(SYS_rt_sigaction, sig, zeros, NULL, SIGSET_BYTES);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, zeros, NULL, SIGSET_BYTES);
}

/* Copies s (n bytes) to d; a plain loop, not memcpy (which ASan
 * intercepts). Returns d + n. */
CHILD static char *child_copy(char *d, const char *s, size_t n) {
  volatile char *v = d;
  for (size_t i = 0; i < n; i++)
    v[i] = s[i];
  return d + n;
}

CHILD static size_t child_strlen(const char *s) {
  size_t n = 0;
  while (s[n] != '\0')
    n++;
  return n;
}

/* posix_spawnp's search (no shell for ENOEXEC): each $PATH entry in turn
 * ("" is the working directory); a missing or unusable entry goes on to
 * the next, EACCES is remembered, anything else stops. */
CHILD static int child_search(const child_args *a) {
  char buf[PATH_MAX + NAME_MAX + 2];
  size_t flen = child_strlen(a->file);
  if (flen > NAME_MAX) return ENAMETOOLONG;
  bool eacces = false;
  for (const char *p = a->path;; p++) {
    const char *end = p;
    while (*end != '\0' && *end != ':')
      end++;
    size_t dlen = (size_t)(end - p);
    if (dlen + flen + 2 <= sizeof buf) {
      char *q = child_copy(buf, p, dlen);
      if (dlen > 0) *q++ = '/';
      *child_copy(q, a->file, flen) = '\0';
      syscall(SYS_execve, buf, a->o->argv, a->env);
      if (errno == EACCES)
        eacces = true;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE &&
               errno != ENODEV && errno != ETIMEDOUT)
        return errno;
    }
    if (*end == '\0') break;
    p = end;
  }
  return eacces ? EACCES : ENOENT;
}

CHILD static int child_run(const child_args *a) {
  int e = child_ids(a->o);
  if (e == 0) e = child_fds(a);
  if (e == 0 && a->o->cwd != NULL && syscall(SYS_chdir, a->o->cwd) < 0)
    e = errno;
  if (e != 0) return e;
  child_signals();
  if (a->path != NULL) return child_search(a);
  syscall(SYS_execve, a->file, a->o->argv, a->env);
  return errno;
}

CHILD static int child_main(void *arg) {
  child_args *a = arg;
  a->err = child_run(a);
  return 127; /* glibc's clone() exits with it */
}

/* ---- the parent ---------------------------------------------------------- */

/* Every signal blocked (raw: pthread_sigmask leaves glibc's 32 and 33
 * out), the old mask in `old`; restored by passing `old` as `set`. */
static void mask_all(unsigned long *old) {
  unsigned long all[8];
  memset(all, 0xff, sizeof all);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, all, old, SIGSET_BYTES);
}

static void mask_restore(const unsigned long *old) {
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, SIGSET_BYTES);
}

/* The child failed before exec and is exiting: reap it. */
static void reap_failed(pid_t pid, int pidfd) {
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) close(pidfd);
}

static void args_init(child_args *a, const weft_process_options *o,
                      const int *src, unsigned n) {
  a->o = o;
  a->src = src;
  a->n = n;
  a->file = o->file != NULL ? o->file : o->argv[0];
  a->env = o->env != NULL ? o->env : environ;
  a->path = NULL;
  if (strchr(a->file, '/') == NULL) {
    a->path = getenv("PATH");
    if (a->path == NULL) a->path = "/bin:/usr/bin"; /* glibc's default */
  }
  a->err = 0;
}

int weft__spawn_clone(weft_loop *loop, const weft_process_options *o,
                      const int *src, unsigned n, pid_t *pid, int *pidfd) {
  char *top;
  int err = stack_get(loop, &top);
  if (err != 0) return err;
  child_args a;
  args_init(&a, o, src, n);
  int fd = -1;
  unsigned long old[8];
  mask_all(old);
  pid_t child = clone(child_main, top,
                      CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &a, &fd);
  int cerr = errno;
  if (child < 0 && (cerr == EMFILE || cerr == ENFILE)) {
    /* no fd for the pidfd now: without it, weft__child_attach() opens one
     * after the temporary child ends are closed (one of their numbers), or
     * watches through SIGCHLD, so a spawn with just enough fds succeeds */
    fd = -1;
    child = clone(child_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    cerr = errno;
  }
  mask_restore(old);
  if (child < 0) {
    if (cerr != EINVAL && cerr != ENOSYS) return -cerr;
    weft__process_spawn_stack(loop)->refused = true;
    return WEFT__SPAWN_REFUSED;
  }
  if (a.err != 0) {
    reap_failed(child, fd);
    return -a.err;
  }
  *pid = child;
  *pidfd = fd;
  return 0;
}
#endif /* WEFT_TSAN */
