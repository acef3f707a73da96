/* The process pool, issue 14: error messages, the initializer, recycling
 * after N jobs, resize, terminate, where workers' output goes, bad input and
 * allocation failures (kill -9 and fds: tests/test_procpool_kill.c; maps:
 * tests/test_procpool_map.c). The workers and helpers:
 * tests/support/procpool_worker.h. */
#include "support/test.h"

#include "support/procpool_worker.h"

Test(procpool_more, job_error_carries_the_message, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 1);
  weft_future *bad = submit(pool, "fail"), *good = submit(pool, "x");
  wait_for(loop, good);
  wait_for(loop, bad);
  const weft_procpool_result *d = (void *)1;
  cr_assert_eq(weft_procpool_job_error(bad, &d), -EIO);
  cr_assert_not_null(d);
  cr_assert_eq(d->status, -EIO);
  cr_assert_str_eq(d->data, "bad fail");
  cr_assert_eq(d->len, 8);
  cr_assert_eq(weft_future_error(bad), -EIO); /* the old reading still works */
  cr_assert_eq(weft_procpool_job_error(good, &d), 0);
  cr_assert_null(d);
  cr_assert_str_eq(reply(good), "X");
  weft_future *plain;
  cr_assert_eq(weft_future_new(loop, &plain), 0);
  cr_assert_eq(weft_future_reject(plain, -EIO), 0);
  cr_assert_eq(weft_procpool_job_error(plain, &d), -EIO);
  cr_assert_null(d);
  cr_assert_eq(weft_procpool_job_error(NULL, &d), -EINVAL);
  cr_assert_eq(weft_procpool_job_error(bad, NULL), -EIO);
  weft_future_unref(plain);
  weft_future_unref(bad);
  weft_future_unref(good);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

/* ---- the initializer ---------------------------------------------------- */

Test(procpool_more, initializer_reaches_every_worker_and_replacements,
     .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 2, .init = "abc", .init_len = 3};
  weft_procpool *pool = pool_with(loop, o, "init");
  weft_future *f[4];
  for (int i = 0; i < 4; i++)
    f[i] = submit(pool, "init");
  for (int i = 0; i < 4; i++) {
    wait_for(loop, f[i]);
    cr_assert_str_eq(reply(f[i]), "abc");
    weft_future_unref(f[i]);
  }
  /* kill a worker that has worked (one killed during its initializer
   * would not be replaced) */
  weft_future *pf = submit(pool, "pid");
  wait_for(loop, pf);
  pid_t old = (pid_t)atoi(reply(pf)), pids[2];
  weft_future_unref(pf);
  kill(old, SIGKILL);
  while (weft_procpool_pids(pool, pids, 2) != 2 || pids[0] == old ||
         pids[1] == old)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_procpool_workers(pool), 2);
  for (int i = 0; i < 4; i++)
    f[i] = submit(pool, "init");
  for (int i = 0; i < 4; i++) {
    wait_for(loop, f[i]);
    cr_assert_str_eq(reply(f[i]), "abc");
    weft_future_unref(f[i]);
  }
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool_more, failed_initializer_fails_the_jobs_with_its_message,
     .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 2, .init = "bad", .init_len = 3};
  weft_procpool *pool = pool_with(loop, o, "init");
  weft_future *f = submit(pool, "x");
  weft_buf in[2] = {weft_buf_init("y", 1), weft_buf_init("z", 1)};
  weft_future *m;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 2, NULL, &m), 0);
  wait_for(loop, f);
  wait_for(loop, m);
  const weft_procpool_result *d;
  cr_assert_eq(weft_procpool_job_error(f, &d), -EPERM);
  cr_assert_not_null(d);
  cr_assert_str_eq(d->data, "init refused");
  const weft_procpool_results *r = weft_future_value(m);
  cr_assert_eq(r->failed, 2);
  cr_assert_eq(r->items[1].status, -EPERM);
  cr_assert_eq(weft_procpool_workers(pool), 0); /* not respawned */
  weft_future *g;
  cr_assert_eq(weft_procpool_submit(pool, "x", 1, &g), WEFT_EWORKER);
  weft_future_unref(f);
  weft_future_unref(m);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool_more, worker_without_initializer_refuses_one, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 1, .init = "", .init_len = 0};
  weft_procpool *pool = pool_with(loop, o, "1");
  weft_future *f = submit(pool, "x");
  wait_for(loop, f);
  const weft_procpool_result *d;
  cr_assert_eq(weft_procpool_job_error(f, &d), -ENOTSUP);
  cr_assert_str_eq(d->data, "the worker has no initializer");
  weft_future_unref(f);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

/* ---- recycling, resize, terminate --------------------------------------- */

static void count_pid(const char *s, pid_t *pids, int *uses, int *n) {
  pid_t p = (pid_t)atoi(s);
  for (int k = 0; k < *n; k++)
    if (pids[k] == p) {
      uses[k]++;
      return;
    }
  pids[*n] = p;
  uses[(*n)++] = 1;
}

Test(procpool_more, max_jobs_per_worker_recycles, .timeout = 60) {
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 2, .max_jobs_per_worker = 3};
  weft_procpool *pool = pool_with(loop, o, "1");
  enum { N = 20 };
  weft_future *f[N];
  for (int i = 0; i < N; i++)
    f[i] = submit(pool, "pid");
  pid_t pids[N];
  int uses[N], n = 0;
  for (int i = 0; i < N; i++) {
    wait_for(loop, f[i]);
    count_pid(reply(f[i]), pids, uses, &n);
    weft_future_unref(f[i]);
  }
  cr_assert_geq(n, 7); /* 20 jobs, at most 3 each */
  for (int k = 0; k < n; k++)
    cr_assert_leq(uses[k], 3, "pid %d ran %d jobs", (int)pids[k], uses[k]);
  /* a map's messages are cut at the budget too */
  weft_buf in[N];
  for (int i = 0; i < N; i++)
    in[i] = weft_buf_init("pid", 3);
  weft_procpool_map_options mo = {.chunksize = 10};
  weft_future *m;
  cr_assert_eq(weft_procpool_map_ex(pool, in, N, &mo, &m), 0);
  wait_for(loop, m);
  const weft_procpool_results *r = weft_future_value(m);
  cr_assert_eq(r->failed, 0);
  n = 0;
  for (int i = 0; i < N; i++)
    count_pid(r->items[i].data, pids, uses, &n);
  for (int k = 0; k < n; k++)
    cr_assert_leq(uses[k], 3);
  weft_future_unref(m);
  cr_assert_eq(weft_procpool_workers(pool), 2);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool_more, resize_grows_and_retires_idle_then_busy, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 1);
  cr_assert_eq(weft_procpool_resize(pool, 3), 0);
  cr_assert_eq(weft_procpool_workers(pool), 3);
  cr_assert_eq(weft_procpool_pids(pool, NULL, 0), 3);
  /* all three busy: two naps and a job that waits behind nothing */
  char *logp = getenv("WEFT_TEST_LOG");
  (void)logp;
  weft_future *a = submit(pool, "x"), *b = submit(pool, "y");
  wait_for(loop, a);
  wait_for(loop, b);
  weft_future *busy = submit(pool, "hang");
  cr_assert_eq(weft_procpool_resize(pool, 1), 0);
  cr_assert_eq(weft_procpool_workers(pool), 1);
  wait_pids(loop, pool, 1); /* the two idle ones exit */
  /* the busy one stayed and still serves: jobs queue behind the hang */
  cr_assert_eq(weft_future_get_state(busy), WEFT_FUTURE_PENDING);
  weft_future *c = submit(pool, "z");
  cr_assert_eq(weft_future_cancel(busy), 0); /* kills it: replaced */
  wait_for(loop, c);
  cr_assert_str_eq(reply(c), "Z");
  cr_assert_eq(weft_procpool_workers(pool), 1);
  /* shrink with the only busy worker: it retires after its job */
  cr_assert_eq(weft_procpool_resize(pool, 2), 0);
  weft_future *d = submit(pool, "d");
  weft_future *e = submit(pool, "e");
  cr_assert_eq(weft_procpool_resize(pool, 1), 0);
  wait_for(loop, d);
  wait_for(loop, e);
  cr_assert_str_eq(reply(d), "D");
  cr_assert_str_eq(reply(e), "E");
  wait_pids(loop, pool, 1);
  weft_future_unref(a);
  weft_future_unref(b);
  weft_future_unref(busy);
  weft_future_unref(c);
  weft_future_unref(d);
  weft_future_unref(e);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

Test(procpool_more, terminate_cancels_running_and_queued, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 2);
  weft_future *h1 = submit(pool, "hang"), *h2 = submit(pool, "hang");
  weft_future *q = submit(pool, "q");
  weft_buf in[3] = {weft_buf_init("a", 1), weft_buf_init("b", 1),
                    weft_buf_init("c", 1)};
  weft_future *m;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 3, NULL, &m), 0);
  closed c = {0};
  cr_assert_eq(weft_procpool_terminate(pool, on_pool_closed, &c), 0);
  cr_assert_eq(weft_procpool_terminate(pool, NULL, NULL), -EALREADY);
  cr_assert_eq(weft_procpool_close(pool, NULL, NULL), -EALREADY);
  weft_future *late;
  cr_assert_eq(weft_procpool_submit(pool, "x", 1, &late), WEFT_ECLOSED);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(weft_future_get_state(h1), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_get_state(h2), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_get_state(q), WEFT_FUTURE_CANCELLED);
  const weft_procpool_results *r = weft_future_value(m);
  cr_assert_not_null(r);
  cr_assert_eq(r->failed, 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(r->items[i].status, -ECANCELED);
  weft_future_unref(h1);
  weft_future_unref(h2);
  weft_future_unref(q);
  weft_future_unref(m);
  th_loop_finish(loop);
}

Test(procpool_more, terminate_escalates_a_close, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 1);
  weft_future *h = submit(pool, "hang");
  closed c1 = {0}, c2 = {0};
  cr_assert_eq(weft_procpool_close(pool, on_pool_closed, &c1), 0);
  for (int i = 0; i < 5; i++) /* the close waits for the hung job */
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_future_get_state(h), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_procpool_terminate(pool, on_pool_closed, &c2), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(c1.calls, 0);
  cr_assert_eq(c2.calls, 1);
  cr_assert_eq(weft_future_get_state(h), WEFT_FUTURE_CANCELLED);
  weft_future_unref(h);
  th_loop_finish(loop);
}

/* ---- output ------------------------------------------------------------- */

Test(procpool_more, captured_output_comes_with_the_result, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 1,
                             .output = WEFT_PROCPOOL_OUTPUT_CAPTURE};
  weft_procpool *pool = pool_with(loop, o, "1");
  for (int round = 0; round < 2; round++) { /* emptied between jobs */
    weft_future *f = submit(pool, "print");
    wait_for(loop, f);
    const weft_procpool_result *r = weft_future_value(f);
    cr_assert_str_eq(reply(f), "P");
    cr_assert_str_eq(r->out, "out-line\nchild\n");
    cr_assert_eq(r->out_len, 15);
    cr_assert_str_eq(r->err, "err-line\n");
    weft_future_unref(f);
  }
  weft_future *plain = submit(pool, "x");
  wait_for(loop, plain);
  const weft_procpool_result *r = weft_future_value(plain);
  cr_assert_str_eq(r->out, "");
  cr_assert_eq(r->err_len, 0);
  weft_future_unref(plain);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

/* Runs a "print" job with the test's stdout and stderr on a file; returns
 * what reached the file. */
static void print_to_file(weft_procpool_output mode, char *got, size_t cap) {
  char path[] = "/tmp/weft-ppool-out-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  unlink(path);
  fflush(stdout);
  fflush(stderr);
  int o1 = dup(1), o2 = dup(2);
  dup2(fd, 1);
  dup2(fd, 2);
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 1, .output = mode};
  weft_procpool *pool = pool_with(loop, o, "1");
  weft_future *f = submit(pool, "print");
  wait_for(loop, f);
  const weft_procpool_result *r = weft_future_value(f);
  cr_assert_str_eq(reply(f), "P");
  cr_assert_null(r->out);
  weft_future_unref(f);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  dup2(o1, 1);
  dup2(o2, 2);
  close(o1);
  close(o2);
  ssize_t n = pread(fd, got, cap - 1, 0);
  got[n > 0 ? n : 0] = '\0';
  close(fd);
}

Test(procpool_more, output_inherited_or_discarded, .timeout = 30) {
  char got[256];
  print_to_file(WEFT_PROCPOOL_OUTPUT_INHERIT, got, sizeof got);
  cr_assert(strstr(got, "out-line\n") && strstr(got, "err-line\n") &&
                strstr(got, "child\n"),
            "got '%s'", got);
  print_to_file(WEFT_PROCPOOL_OUTPUT_DISCARD, got, sizeof got);
  cr_assert_str_eq(got, "");
}

/* ---- bad input and allocation failures ---------------------------------- */

Test(procpool_more, bad_input, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = NULL;
  weft_procpool_options o = {.argv = (char *const[]){"true", NULL},
                             .init_len = 3};
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), -EINVAL); /* no init */
  o.init_len = 0;
  o.output = (weft_procpool_output)7;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), -EINVAL);
  cr_assert_null(pool);
  pool = pool_n(loop, 1);
  weft_future *f = NULL;
  weft_buf in[1] = {weft_buf_init("x", 1)};
  cr_assert_eq(weft_procpool_map_ex(NULL, in, 1, NULL, &f), -EINVAL);
  cr_assert_eq(weft_procpool_map_ex(pool, in, 1, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_procpool_map_ex(pool, NULL, 1, NULL, &f), -EINVAL);
  weft_buf huge[1] = {weft_buf_init("x", (size_t)2 << 30)};
  cr_assert_eq(weft_procpool_map_ex(pool, huge, 1, NULL, &f), -EINVAL);
  weft_buf hole[1] = {{NULL, 3}};
  cr_assert_eq(weft_procpool_map_ex(pool, hole, 1, NULL, &f), -EINVAL);
  cr_assert_null(f);
  cr_assert_eq(weft_procpool_resize(NULL, 1), -EINVAL);
  cr_assert_eq(weft_procpool_resize(pool, 0), -EINVAL);
  cr_assert_eq(weft_procpool_resize(pool, 5000), -EINVAL);
  cr_assert_eq(weft_procpool_terminate(NULL, NULL, NULL), -EINVAL);
  pid_t p;
  cr_assert_eq(weft_procpool_pids(NULL, &p, 1), -EINVAL);
  cr_assert_eq(weft_procpool_pids(pool, NULL, 1), -EINVAL);
  cr_assert_eq(weft_procpool_pids(pool, &p, 1), 1);
  cr_assert_gt(p, 0);
  weft_buf b;
  cr_assert_eq(weft_procpool_failf(NULL, -EIO, "x"), -EINVAL);
  cr_assert_eq(weft_procpool_failf(&b, 5, "m%d", 1), -EINVAL);
  cr_assert_str_eq(b.base, "m1");
  free(b.base);
  cr_assert_eq(weft_procpool_failf(&b, -EIO, "%s", "msg"), -EIO);
  cr_assert_eq(b.len, 3);
  free(b.base);
  cr_assert_eq(weft_procpool_worker_run(NULL), -EINVAL);
  weft_procpool_worker_options wo = {0};
  cr_assert_eq(weft_procpool_worker_run(&wo), -EINVAL);
  th_loop_usable(loop);
  close_and_wait(loop, pool);
  cr_assert_eq(weft_procpool_resize(NULL, 2), -EINVAL);
  th_loop_finish(loop);
}

Test(procpool_more, resize_after_close_is_eclosed, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 1);
  weft_future *h = submit(pool, "hang");
  cr_assert_eq(weft_procpool_close(pool, NULL, NULL), 0);
  cr_assert_eq(weft_procpool_resize(pool, 2), WEFT_ECLOSED);
  weft_buf in[1] = {weft_buf_init("x", 1)};
  weft_future *f;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 1, NULL, &f), WEFT_ECLOSED);
  cr_assert_eq(weft_procpool_terminate(pool, NULL, NULL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_get_state(h), WEFT_FUTURE_CANCELLED);
  weft_future_unref(h);
  th_loop_finish(loop);
}

static int more_round(weft_loop *loop, void *arg) {
  (void)arg;
  find_self();
  char *argv[] = {self, NULL};
  char *env[] = {"WEFT_TEST_WORKER=init", "ASAN_OPTIONS=detect_leaks=0", NULL};
  weft_procpool_options o = {
      .argv = argv, .env = env, .workers = 1, .init = "i", .init_len = 1};
  weft_procpool *pool = NULL;
  int err = weft_procpool_new(loop, &o, &pool);
  weft_future *m = NULL, *j = NULL;
  weft_buf in[3] = {weft_buf_init("a", 1), weft_buf_init("fail", 4),
                    weft_buf_init("c", 1)};
  weft_procpool_map_options mo = {.chunksize = 2};
  if (err == 0) err = weft_procpool_map_ex(pool, in, 3, &mo, &m);
  if (err == 0) err = weft_procpool_submit(pool, "fail", 4, &j);
  if (err == 0) err = weft_procpool_resize(pool, 2);
  if (m != NULL) {
    wait_for(loop, m);
    const weft_procpool_results *r = weft_future_value(m);
    if (weft_future_get_state(m) != WEFT_FUTURE_FULFILLED)
      err = weft_future_error(m);
    else if (r->items[0].status == -ENOMEM || r->items[2].status == -ENOMEM)
      err = -ENOMEM;
    else if (err == 0)
      cr_assert_str_eq(r->items[2].data, "C");
    weft_future_unref(m);
  }
  if (j != NULL) {
    wait_for(loop, j);
    int e = weft_procpool_job_error(j, NULL);
    cr_assert(e == -EIO || e == -ENOMEM || e == WEFT_EWORKER, "%s",
              weft_err_name(e));
    if (e != -EIO && err == 0) err = -ENOMEM;
    weft_future_unref(j);
  }
  if (pool != NULL) weft_procpool_terminate(pool, NULL, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return err == WEFT_EWORKER ? -ENOMEM : err;
}

Test(procpool_more, allocation_failures_are_clean, .timeout = 120) {
  th_alloc_sweep_run(&(th_sweep){.op = more_round, .max_rounds = 400});
}
