/* weft tests: what tests/test_shm.c and tests/test_shm_sync.c share: fd
 * counting, the region layout, the spawned child's modes (this binary with
 * WEFT_TEST_SHM=mode and the region on fd 3), and bounded waits. Include
 * once, after support/test.h. */
#ifndef WEFT_TEST_SHM_H
#define WEFT_TEST_SHM_H

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

/* What the tests put at the start of a region. */
typedef struct layout {
  weft_shm_lock lock;
  weft_shm_sem sem;
  weft_shm_event ev, go;
  int64_t counter, a, b;
  int64_t child_fds, sum, len;
  unsigned char data[];
} layout;

#define REGION ((size_t)1 << 20)

static layout *region_new(weft_shm *shm) {
  cr_assert_eq(weft_shm_create(shm, "test", REGION), 0);
  layout *l = shm->base;
  cr_assert_eq(weft_shm_lock_init(&l->lock), 0);
  cr_assert_eq(weft_shm_sem_init(&l->sem, 0), 0);
  cr_assert_eq(weft_shm_event_init(&l->ev), 0);
  cr_assert_eq(weft_shm_event_init(&l->go), 0);
  return l;
}

static inline int64_t byte_sum(const unsigned char *p, size_t n) {
  int64_t s = 0;
  for (size_t i = 0; i < n; i++)
    s += p[i];
  return s;
}

/* ---- spawned children: this binary with WEFT_TEST_SHM=mode, region fd 3 */

static inline int child_main(const char *mode) {
  weft_shm shm;
  if (weft_shm_attach(&shm, 3) != 0) return 10;
  layout *l = shm.base;
  int rc = 0;
  if (strcmp(mode, "sum") == 0) {
    l->sum = byte_sum(l->data, (size_t)l->len);
  } else if (strcmp(mode, "sem_release") == 0) {
    rc = weft_shm_sem_release(&l->sem) == 0 ? 0 : 11;
  } else if (strcmp(mode, "event_wait") == 0) {
    weft_shm_add_i64(&l->counter, 1);
    rc = weft_shm_event_wait(&l->ev, 10000) == 0 ? 0 : 12;
  } else if (strcmp(mode, "lock_hold") == 0) {
    if (weft_shm_lock_acquire(&l->lock, 10000) != 0) return 13;
    l->a = 1; /* b follows a: the holder dies in between */
    weft_shm_event_set(&l->go);
    for (;;)
      pause();
  } else {
    rc = 14;
  }
  weft_shm_close(&shm);
  /* 0, 1, 2 only: fd 3 went with the region, nothing else leaked in */
  if (rc == 0 && fd_count() != 3) rc = 20 + fd_count();
  return rc;
}

__attribute__((constructor)) static void shm_child_mode(void) {
  const char *m = getenv("WEFT_TEST_SHM");
  if (m != NULL) _exit(child_main(m));
}

/* This binary, as spawn_child() found it. */
static char self_path[4096];

static inline void spawn_child(weft_loop *loop, weft_process *p,
                               const weft_shm *shm, const char *mode) {
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  cr_assert_gt(n, 0);
  self_path[n] = '\0';
  static char env_mode[64];
  snprintf(env_mode, sizeof env_mode, "WEFT_TEST_SHM=%s", mode);
  char *env[] = {env_mode, "ASAN_OPTIONS=detect_leaks=0", NULL};
  char *argv[] = {self_path, NULL};
  weft_stdio st[4] = {{WEFT_STDIO_IGNORE},
                      {WEFT_STDIO_INHERIT},
                      {WEFT_STDIO_INHERIT},
                      {WEFT_STDIO_FD, shm->fd, NULL}};
  weft_process_options o = {
      .argv = argv, .env = env, .stdio = st, .stdio_count = 4};
  cr_assert_eq(weft_spawn(loop, p, &o), 0);
}

/* Runs the loop until the child exits; returns its exit value. */
static inline int64_t child_exit(weft_loop *loop, weft_process *p) {
  weft_future *f;
  cr_assert_eq(weft_process_exit_future(p, &f), 0);
  for (int i = 0; i < 100000 && weft_future_get_state(f) == WEFT_FUTURE_PENDING;
       i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  int64_t v = weft_future_value_i64(f);
  weft_future_unref(f);
  weft_close(&p->base, NULL);
  return v;
}

/* Runs turns until `f` settles (bounded). */
static inline void settle(weft_loop *loop, weft_future *f) {
  for (int i = 0; i < 100000 && weft_future_get_state(f) == WEFT_FUTURE_PENDING;
       i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_neq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
}

static inline void expect_i64(weft_loop *loop, weft_future *f, int64_t v) {
  settle(loop, f);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "rejected: %s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(weft_future_value_i64(f), v);
  weft_future_unref(f);
}

static inline void expect_err(weft_loop *loop, weft_future *f, int err) {
  settle(loop, f);
  cr_assert_eq(weft_future_error(f), err, "got %s, want %s",
               weft_err_name(weft_future_error(f)), weft_err_name(err));
  weft_future_unref(f);
}

static inline pid_t fork_or_die(void) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  return pid;
}

static inline int reap(pid_t pid) {
  int st = -1;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return st;
}

static inline void expect_exit0(pid_t pid) {
  int st = reap(pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}

/* Bounded wait (10 s) for a condition another process makes true. */
#define WAIT_FOR(cond)                                                         \
  do {                                                                         \
    int i_;                                                                    \
    for (i_ = 0; i_ < 10000 && !(cond); i_++)                                  \
      usleep(1000);                                                            \
    cr_assert(cond, "never: %s", #cond);                                       \
  } while (0)

#endif
