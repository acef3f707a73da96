/* weft tests: what tests/test_procpool_more.c and tests/test_procpool_kill.c
 * share: the worker (this binary re-executed with WEFT_TEST_WORKER set) and
 * the pool helpers. Include once, after support/test.h. */
#ifndef WEFT_TEST_PROCPOOL_WORKER_H
#define WEFT_TEST_PROCPOOL_WORKER_H

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the worker ------------------------------------------------------------
 * Jobs: "fail" fails with -EIO and a message; "hang" waits to be killed;
 * "pid" replies the worker's pid; "init" the initializer's bytes; "print"
 * writes to stdout and stderr and runs a child that writes too; "fds" the
 * worker's open fds; "log:ID" appends "ID\n" to $WEFT_TEST_LOG, then
 * replies ID; "nap:ID" sleeps 2 ms, then as log; anything else is
 * upper-cased. */

static char init_bytes[64] = "none";

static inline int reply_str(weft_buf *out, const char *s) {
  out->len = strlen(s);
  out->base = malloc(out->len + 1);
  if (out->base == NULL) return -ENOMEM;
  memcpy(out->base, s, out->len + 1);
  return 0;
}

static inline int list_fds(weft_buf *out) {
  char list[1024] = "";
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -errno;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
    size_t n = strlen(list);
    snprintf(list + n, sizeof list - n, "%s ", e->d_name);
  }
  closedir(d);
  return reply_str(out, list);
}

static inline int log_job(const char *id, weft_buf *out) {
  int fd = open(getenv("WEFT_TEST_LOG"), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return -errno;
  char line[64];
  int n = snprintf(line, sizeof line, "%s\n", id);
  ssize_t w = write(fd, line, (size_t)n);
  close(fd);
  return w == n ? reply_str(out, id) : -EIO;
}

static inline int handler(const void *in, size_t len, weft_buf *out,
                          void *arg) {
  (void)arg;
  char s[256];
  if (len >= sizeof s) len = sizeof s - 1;
  memcpy(s, in, len);
  s[len] = '\0';
  if (strcmp(s, "fail") == 0)
    return weft_procpool_failf(out, -EIO, "bad %s", s);
  if (strcmp(s, "hang") == 0)
    for (;;)
      pause();
  if (strcmp(s, "init") == 0) return reply_str(out, init_bytes);
  if (strcmp(s, "fds") == 0) return list_fds(out);
  if (strncmp(s, "log:", 4) == 0) return log_job(s + 4, out);
  if (strncmp(s, "nap:", 4) == 0) {
    usleep(2000);
    return log_job(s + 4, out);
  }
  if (strcmp(s, "pid") == 0) {
    snprintf(s, sizeof s, "%d", (int)getpid());
    return reply_str(out, s);
  }
  if (strcmp(s, "print") == 0) {
    printf("out-line\n");
    fprintf(stderr, "err-line\n");
    fflush(stdout);
    if (system("echo child") != 0) return -EIO;
    return reply_str(out, "P");
  }
  for (size_t i = 0; i < len; i++)
    s[i] = (char)toupper((unsigned char)s[i]);
  return reply_str(out, s);
}

static inline int init_fn(const void *in, size_t len, weft_buf *msg,
                          void *arg) {
  (void)arg;
  if (len == 3 && memcmp(in, "bad", 3) == 0)
    return weft_procpool_failf(msg, -EPERM, "init refused");
  if (len >= sizeof init_bytes) return -E2BIG;
  memcpy(init_bytes, in, len);
  init_bytes[len] = '\0';
  return 0;
}

__attribute__((constructor)) static void worker_mode(void) {
  const char *w = getenv("WEFT_TEST_WORKER");
  if (w == NULL) return;
  signal(SIGABRT, SIG_DFL);
  weft_procpool_worker_options o = {.handler = handler};
  if (strcmp(w, "init") == 0) o.init = init_fn;
  _exit(weft_procpool_worker_run(&o) == 0 ? 0 : 1);
}

/* ---- helpers ---------------------------------------------------------------
 */

static char self[4096];
static char log_env[4200];

static inline void find_self(void) {
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(len, 0);
  self[len] = '\0';
}

/* A pool of `n` workers of this binary; `mode` is WEFT_TEST_WORKER. */
static inline weft_procpool *pool_with(weft_loop *loop, weft_procpool_options o,
                                       const char *mode) {
  find_self();
  static char wenv[64];
  snprintf(wenv, sizeof wenv, "WEFT_TEST_WORKER=%s", mode);
  static char *env[4];
  env[0] = wenv;
  env[1] = "ASAN_OPTIONS=detect_leaks=0";
  env[2] = log_env[0] ? log_env : NULL;
  env[3] = NULL;
  static char *argv[2];
  argv[0] = self;
  argv[1] = NULL;
  o.argv = argv;
  o.env = env;
  weft_procpool *pool = NULL;
  int err = weft_procpool_new(loop, &o, &pool);
  cr_assert_eq(err, 0, "new: %s", weft_err_name(err));
  return pool;
}

static inline weft_procpool *pool_n(weft_loop *loop, unsigned n) {
  return pool_with(loop, (weft_procpool_options){.workers = n}, "1");
}

typedef struct closed {
  int calls;
} closed;

static inline void on_pool_closed(weft_procpool *pool, void *arg) {
  (void)pool;
  ((closed *)arg)->calls++;
}

static inline void close_and_wait(weft_loop *loop, weft_procpool *pool) {
  closed c = {0};
  cr_assert_eq(weft_procpool_close(pool, on_pool_closed, &c), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(c.calls, 1);
}

static inline void wait_for(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

static inline const char *reply(weft_future *f) {
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "rejected: %s",
               weft_err_name(weft_future_error(f)));
  const weft_procpool_result *r = weft_future_value(f);
  cr_assert_eq(strlen(r->data), r->len);
  cr_assert_eq(r->status, 0);
  return r->data;
}

static inline weft_future *submit(weft_procpool *pool, const char *s) {
  weft_future *f;
  int err = weft_procpool_submit(pool, s, strlen(s), &f);
  cr_assert_eq(err, 0, "submit: %s", weft_err_name(err));
  return f;
}

static inline int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  cr_assert_not_null(d);
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

/* Runs the loop until the pool has `n` pids (replacements spawned or
 * retired workers gone). */
static inline void wait_pids(weft_loop *loop, weft_procpool *pool, int n) {
  while (weft_procpool_pids(pool, NULL, 0) != n)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

#endif
