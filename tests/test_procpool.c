/* The process pool: jobs and replies through real worker processes (this
 * test program itself, re-executed in worker mode), map, a worker that
 * crashes mid-job, handler errors, cancellation of queued and running
 * jobs, closing with work queued, allocation failures and bad input. */
#include "support/test.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the worker: this binary with WEFT_TEST_WORKER=1 -----------------------
 */

/* Jobs: "crash" aborts the worker, "fail" returns -EIO, "hang" waits to be
 * killed, "exit" exits cleanly mid-job; anything else is upper-cased. */
static int handler(const void *in, size_t len, weft_buf *out, void *arg) {
  (void)arg;
  if (len == 5 && memcmp(in, "crash", 5) == 0) abort();
  if (len == 4 && memcmp(in, "fail", 4) == 0) return -EIO;
  if (len == 4 && memcmp(in, "exit", 4) == 0) _exit(0);
  if (len == 4 && memcmp(in, "hang", 4) == 0)
    for (;;)
      pause();
  out->base = malloc(len ? len : 1);
  if (out->base == NULL) return -ENOMEM;
  for (size_t i = 0; i < len; i++)
    out->base[i] = (char)toupper((unsigned char)((const char *)in)[i]);
  out->len = len;
  return 0;
}

__attribute__((constructor)) static void worker_mode(void) {
  const char *w = getenv("WEFT_TEST_WORKER");
  if (w == NULL || strcmp(w, "1") != 0) return;
  signal(SIGABRT, SIG_DFL);
  _exit(weft_procpool_worker_main(handler, NULL) == 0 ? 0 : 1);
}

static char *const worker_env[] = {"WEFT_TEST_WORKER=1",
                                   "ASAN_OPTIONS=detect_leaks=0", NULL};
static char *const worker_argv[] = {"/proc/self/exe", NULL};

static weft_procpool *pool_new(weft_loop *loop, unsigned n) {
  /* /proc/self/exe resolves in the child to the program it runs: spawn
   * the binary by its real path instead */
  static char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(len, 0);
  self[len] = '\0';
  char *argv[] = {self, NULL};
  weft_procpool_options o = {.argv = argv, .env = worker_env, .workers = n};
  weft_procpool *pool = NULL;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), 0);
  cr_assert_eq(weft_procpool_workers(pool), n);
  return pool;
}

typedef struct closed {
  int calls;
} closed;

static void on_pool_closed(weft_procpool *pool, void *arg) {
  (void)pool;
  ((closed *)arg)->calls++;
}

static void close_and_wait(weft_loop *loop, weft_procpool *pool) {
  closed c = {0};
  cr_assert_eq(weft_procpool_close(pool, on_pool_closed, &c), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(c.calls, 1);
}

static const char *reply(weft_future *f) {
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "rejected: %s",
               weft_err_name(weft_future_error(f)));
  const weft_procpool_result *r = weft_future_value(f);
  cr_assert_eq(strlen(r->data), r->len);
  return r->data;
}

/* Runs the loop until f settles (the pool's workers keep the loop alive). */
static void wait_for(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

/* ---- jobs
 * ------------------------------------------------------------------------ */

Test(procpool, hundred_jobs_on_four_workers, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_new(loop, 4);
  enum { N = 100 };
  weft_future *fs[N];
  char in[N][24];
  for (int i = 0; i < N; i++) {
    snprintf(in[i], sizeof in[i], "job-%d-x", i);
    cr_assert_eq(weft_procpool_submit(pool, in[i], strlen(in[i]), &fs[i]), 0);
  }
  for (int i = 0; i < N; i++)
    wait_for(loop, fs[i]);
  for (int i = 0; i < N; i++) {
    char want[24];
    snprintf(want, sizeof want, "JOB-%d-X", i);
    cr_assert_str_eq(reply(fs[i]), want);
    weft_future_unref(fs[i]);
  }
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool, map_and_empty_job, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_new(loop, 2);
  weft_buf in[3] = {weft_buf_init("abc", 3), weft_buf_init("", 0),
                    weft_buf_init("xyZ", 3)};
  weft_future *fs[3], *all;
  cr_assert_eq(weft_procpool_map(pool, in, 3, fs, &all), 0);
  wait_for(loop, all);
  cr_assert_eq(weft_future_get_state(all), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(all), 3);
  cr_assert_str_eq(reply(fs[0]), "ABC");
  cr_assert_str_eq(reply(fs[1]), "");
  cr_assert_str_eq(reply(fs[2]), "XYZ");
  for (int i = 0; i < 3; i++)
    weft_future_unref(fs[i]);
  weft_future_unref(all);
  cr_assert_eq(weft_procpool_map(pool, NULL, 0, NULL, NULL), 0);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool, worker_crash_mid_job_is_replaced, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_new(loop, 2);
  weft_future *crash, *quit, *after[4];
  cr_assert_eq(weft_procpool_submit(pool, "crash", 5, &crash), 0);
  cr_assert_eq(weft_procpool_submit(pool, "exit", 4, &quit), 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(weft_procpool_submit(pool, "ok", 2, &after[i]), 0);
  for (int i = 0; i < 4; i++)
    wait_for(loop, after[i]);
  wait_for(loop, crash);
  wait_for(loop, quit);
  cr_assert_eq(weft_future_error(crash), WEFT_EWORKER);
  cr_assert_eq(weft_future_error(quit), WEFT_EWORKER);
  for (int i = 0; i < 4; i++) {
    cr_assert_str_eq(reply(after[i]), "OK");
    weft_future_unref(after[i]);
  }
  weft_future_unref(crash);
  weft_future_unref(quit);
  /* both replacements work */
  cr_assert_eq(weft_procpool_workers(pool), 2);
  weft_future *more[2];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(weft_procpool_submit(pool, "again", 5, &more[i]), 0);
  for (int i = 0; i < 2; i++) {
    wait_for(loop, more[i]);
    cr_assert_str_eq(reply(more[i]), "AGAIN");
    weft_future_unref(more[i]);
  }
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool, reply_then_exit_is_not_a_crash, .timeout = 30) {
  weft_loop *loop = th_loop();
  /* a worker written in sh: reads one 6-byte job frame, replies "OK" and
   * exits; the reply and the exit reach the loop together, in either
   * order, and the reply must win */
  weft_procpool_options o = {
      .argv =
          (char *const[]){"sh", "-c",
                          "head -c 6 >/dev/null; "
                          "printf '\\000\\000\\000\\002\\000\\000\\000\\000OK'",
                          NULL},
      .workers = 3};
  weft_procpool *pool;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), 0);
  weft_future *f[3];
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_procpool_submit(pool, "ab", 2, &f[i]), 0);
  for (int i = 0; i < 3; i++) {
    wait_for(loop, f[i]);
    cr_assert_str_eq(reply(f[i]), "OK");
    weft_future_unref(f[i]);
  }
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool, handler_error_rejects_the_job, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_new(loop, 1);
  weft_future *f, *g;
  cr_assert_eq(weft_procpool_submit(pool, "fail", 4, &f), 0);
  cr_assert_eq(weft_procpool_submit(pool, "fine", 4, &g), 0);
  wait_for(loop, g);
  cr_assert_eq(weft_future_error(f), -EIO);
  cr_assert_str_eq(reply(g), "FINE");
  weft_future_unref(f);
  weft_future_unref(g);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool, cancel_queued_and_running_jobs, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_new(loop, 1);
  weft_future *hang, *queued, *next;
  cr_assert_eq(weft_procpool_submit(pool, "hang", 4, &hang), 0);
  cr_assert_eq(weft_procpool_submit(pool, "q", 1, &queued), 0);
  cr_assert_eq(weft_procpool_submit(pool, "n", 1, &next), 0);
  cr_assert_eq(weft_future_cancel(queued), 0);
  cr_assert_eq(weft_future_cancel(hang), 0); /* kills its worker */
  wait_for(loop, next);
  cr_assert_str_eq(reply(next), "N");
  cr_assert_eq(weft_future_get_state(hang), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_get_state(queued), WEFT_FUTURE_CANCELLED);
  weft_future_unref(hang);
  weft_future_unref(queued);
  weft_future_unref(next);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool, close_cancels_queued_and_finishes_running, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_new(loop, 1);
  weft_future *running, *queued[3];
  cr_assert_eq(weft_procpool_submit(pool, "run", 3, &running), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_procpool_submit(pool, "q", 1, &queued[i]), 0);
  closed c = {0};
  cr_assert_eq(weft_procpool_close(pool, on_pool_closed, &c), 0);
  cr_assert_eq(weft_procpool_close(pool, NULL, NULL), -EALREADY);
  weft_future *late;
  cr_assert_eq(weft_procpool_submit(pool, "x", 1, &late), WEFT_ECLOSED);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_future_get_state(queued[i]), WEFT_FUTURE_CANCELLED);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(c.calls, 1);
  cr_assert_str_eq(reply(running), "RUN");
  weft_future_unref(running);
  for (int i = 0; i < 3; i++)
    weft_future_unref(queued[i]);
  th_loop_finish(loop);
}

Test(procpool, max_queue_bounds_submissions, .timeout = 30) {
  weft_loop *loop = th_loop();
  static char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  self[len] = '\0';
  char *argv[] = {self, NULL};
  weft_procpool_options o = {
      .argv = argv, .env = worker_env, .workers = 1, .max_queue = 2};
  weft_procpool *pool;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), 0);
  weft_future *f[4];
  cr_assert_eq(weft_procpool_submit(pool, "a", 1, &f[0]), 0); /* runs */
  cr_assert_eq(weft_procpool_submit(pool, "b", 1, &f[1]), 0);
  cr_assert_eq(weft_procpool_submit(pool, "c", 1, &f[2]), 0);
  cr_assert_eq(weft_procpool_submit(pool, "d", 1, &f[3]), -EAGAIN);
  weft_buf two[2] = {weft_buf_init("x", 1), weft_buf_init("y", 1)};
  weft_future *mf[2] = {NULL, NULL};
  cr_assert_eq(weft_procpool_map(pool, two, 2, mf, NULL), -EAGAIN);
  cr_assert_null(mf[0]);
  for (int i = 0; i < 3; i++) {
    wait_for(loop, f[i]);
    weft_future_unref(f[i]);
  }
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

/* ---- the worker side's framing, seen from outside -------------------------
 */

static weft_future *run_worker(weft_loop *loop, const void *in, size_t len) {
  static char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(n, 0);
  self[n] = '\0';
  weft_run_options o = {
      .proc = {.argv = (char *const[]){self, NULL}, .env = worker_env},
      .input = in,
      .input_len = len};
  weft_future *f;
  cr_assert_eq(weft_process_run(loop, &o, &f), 0);
  wait_for(loop, f);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  return f;
}

Test(procpool, worker_main_frames, .timeout = 30) {
  weft_loop *loop = th_loop();
  /* two jobs, "ab" and "fail", then end of input: exit 0 */
  static const char jobs[] = "\0\0\0\2ab\0\0\0\4fail";
  weft_future *f = run_worker(loop, jobs, sizeof jobs - 1);
  const weft_run_result *r = weft_future_value(f);
  cr_assert_eq(r->status, 0);
  static const char want[] = "\0\0\0\2\0\0\0\0AB"
                             "\0\0\0\0\xff\xff\xff\xfb"; /* -EIO */
  cr_assert_eq(r->out_len, sizeof want - 1);
  cr_assert_eq(memcmp(r->out, want, sizeof want - 1), 0);
  weft_future_unref(f);
  /* a frame cut short, and a frame over the size limit: exit 1 */
  f = run_worker(loop,
                 "\0\0\0\x0a"
                 "abc",
                 7);
  cr_assert_eq(((const weft_run_result *)weft_future_value(f))->status, 1);
  weft_future_unref(f);
  f = run_worker(loop, "\x7f\0\0\0", 4);
  cr_assert_eq(((const weft_run_result *)weft_future_value(f))->status, 1);
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* ---- bad input and failures
 * ------------------------------------------------------- */

Test(procpool, bad_input, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = NULL;
  weft_procpool_options o = {.argv = (char *const *)worker_argv, .workers = 1};
  cr_assert_eq(weft_procpool_new(NULL, &o, &pool), -EINVAL);
  cr_assert_eq(weft_procpool_new(loop, NULL, &pool), -EINVAL);
  cr_assert_eq(weft_procpool_new(loop, &o, NULL), -EINVAL);
  weft_procpool_options bad = {.argv = (char *const[]){NULL}};
  cr_assert_eq(weft_procpool_new(loop, &bad, &pool), -EINVAL);
  bad.argv = NULL;
  cr_assert_eq(weft_procpool_new(loop, &bad, &pool), -EINVAL);
  o.workers = 5000;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), -EINVAL);
  weft_procpool_options missing = {
      .argv = (char *const[]){"no-such-worker-xyz", NULL}, .workers = 3};
  cr_assert_eq(weft_procpool_new(loop, &missing, &pool), -ENOENT);
  cr_assert_null(pool);
  weft_future *f;
  cr_assert_eq(weft_procpool_submit(NULL, "a", 1, &f), -EINVAL);
  pool = pool_new(loop, 1);
  cr_assert_eq(weft_procpool_submit(pool, "a", 1, NULL), -EINVAL);
  cr_assert_eq(weft_procpool_submit(pool, NULL, 1, &f), -EINVAL);
  cr_assert_eq(weft_procpool_submit(pool, "a", (size_t)2 << 30, &f), -EINVAL);
  cr_assert_eq(weft_procpool_map(NULL, NULL, 0, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_procpool_map(pool, NULL, 2, &f, NULL), -EINVAL);
  cr_assert_eq(weft_procpool_close(NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_procpool_workers(NULL), 0);
  cr_assert_eq(weft_procpool_worker_main(NULL, NULL), -EINVAL);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool, worker_that_never_starts_rejects_jobs, .timeout = 30) {
  weft_loop *loop = th_loop();
  /* a "worker" that exits at once, before doing any work: not respawned */
  weft_procpool_options o = {.argv = (char *const[]){"true", NULL},
                             .workers = 1};
  weft_procpool *pool;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), 0);
  weft_future *f;
  cr_assert_eq(weft_procpool_submit(pool, "a", 1, &f), 0);
  wait_for(loop, f);
  cr_assert_eq(weft_future_error(f), WEFT_EWORKER);
  weft_future_unref(f);
  while (weft_procpool_workers(pool) != 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_procpool_submit(pool, "b", 1, &f), WEFT_EWORKER);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

static int procpool_round(weft_loop *loop, void *arg) {
  (void)arg;
  static char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  self[len] = '\0';
  char *argv[] = {self, NULL};
  weft_procpool_options o = {.argv = argv, .env = worker_env, .workers = 2};
  weft_procpool *pool = NULL;
  weft_future *f = NULL;
  int err = weft_procpool_new(loop, &o, &pool);
  if (err == 0) err = weft_procpool_submit(pool, "abc", 3, &f);
  weft_future *mf[2] = {NULL, NULL}, *all = NULL;
  weft_buf in[2] = {weft_buf_init("d", 1), weft_buf_init("e", 1)};
  if (err == 0) {
    int merr = weft_procpool_map(pool, in, 2, mf, &all);
    if (merr != 0) {
      cr_assert_eq(merr, -ENOMEM);
      cr_assert_null(mf[0]); /* taken back */
      cr_assert_null(mf[1]);
      err = merr;
    }
  }
  if (err == 0) {
    wait_for(loop, f);
    wait_for(loop, all);
    if (weft_future_get_state(f) == WEFT_FUTURE_FULFILLED &&
        weft_future_get_state(all) == WEFT_FUTURE_FULFILLED) {
      cr_assert_str_eq(reply(f), "ABC");
      cr_assert_str_eq(reply(mf[1]), "E");
    } else {
      int e1 = weft_future_error(f), e2 = weft_future_error(all);
      cr_assert(e1 == -ENOMEM || e2 == -ENOMEM, "%s %s", weft_err_name(e1),
                weft_err_name(e2));
      err = -ENOMEM;
    }
    weft_future_unref(f);
    weft_future_unref(mf[0]);
    weft_future_unref(mf[1]);
    weft_future_unref(all);
  } else {
    if (f != NULL) {
      wait_for(loop, f);
      weft_future_unref(f);
    }
  }
  if (pool != NULL) weft_procpool_close(pool, NULL, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return err;
}

Test(procpool, allocation_failures_are_clean, .timeout = 60) {
  th_alloc_sweep_run(&(th_sweep){.op = procpool_round, .max_rounds = 300});
}
