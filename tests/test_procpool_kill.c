/* The process pool, issue 14: kill -9 of workers at each stage of a job (no
 * job lost or run twice), fds in the parent and in the workers. The workers
 * and helpers: tests/support/procpool_worker.h (shared with
 * tests/test_procpool_more.c). */
#include <time.h>

#include "support/test.h"

#include "support/procpool_worker.h"

Test(procpool_kill, fds_in_parent_and_workers, .timeout = 30) {
  int before = count_fds();
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 2};
  weft_procpool *pool = pool_with(loop, o, "1");
  weft_future *f = submit(pool, "fds");
  wait_for(loop, f);
  /* 0 (/dev/null), 1 and 2 (output), the two pipes to the pool */
  int n = 0;
  for (const char *p = reply(f); *p; p++)
    n += *p == ' ';
  cr_assert_eq(n, 5, "worker fds: %s", reply(f));
  weft_future_unref(f);
  pid_t pids[2];
  cr_assert_eq(weft_procpool_pids(pool, pids, 2), 2);
  for (int i = 0; i < 2; i++) { /* seen from outside too */
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pids[i]);
    /* A worker that has not served a job may still be starting (a TSan
     * runtime opens and closes files then): what must hold is the count
     * once it settles, so it is read again for up to 10 s. */
    int k = 0;
    for (int tries = 0; tries < 1000; tries++) {
      if ((k = th_fds_in(dir)) <= 5) break;
      nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    cr_assert_leq(k, 5, "%s has %d fds", dir, k);
  }
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  cr_assert_eq(count_fds(), before);
}

static void log_setup(char *path) {
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  snprintf(log_env, sizeof log_env, "WEFT_TEST_LOG=%s", path);
}

/* How often each id is in the log. */
static void log_counts(const char *path, int *count, int n) {
  memset(count, 0, (size_t)n * sizeof *count);
  FILE *fp = fopen(path, "r");
  cr_assert_not_null(fp);
  int id;
  while (fscanf(fp, "%d", &id) == 1) {
    cr_assert(id >= 0 && id < n);
    count[id]++;
  }
  fclose(fp);
}

Test(procpool_kill, kill9_before_during_and_after_a_job, .timeout = 60) {
  char path[] = "/tmp/weft-ppool-log-XXXXXX";
  log_setup(path);
  int fds_before = count_fds();
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 1);
  pid_t pid;
  /* before: an idle worker that has worked is killed, and replaced */
  weft_future *f = submit(pool, "log:0");
  wait_for(loop, f);
  cr_assert_str_eq(reply(f), "0");
  weft_future_unref(f);
  cr_assert_eq(weft_procpool_pids(pool, &pid, 1), 1);
  kill(pid, SIGKILL);
  pid_t now = pid;
  while (weft_procpool_pids(pool, &now, 1) != 1 || now == pid)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  f = submit(pool, "log:1");
  wait_for(loop, f);
  cr_assert_str_eq(reply(f), "1");
  weft_future_unref(f);
  /* during: a job in hand fails with WEFT_EWORKER and is not re-run */
  weft_future *h = submit(pool, "hang"), *next = submit(pool, "log:2");
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_procpool_pids(pool, &pid, 1), 1);
  kill(pid, SIGKILL);
  wait_for(loop, h);
  wait_for(loop, next);
  cr_assert_eq(weft_future_error(h), WEFT_EWORKER);
  cr_assert_str_eq(reply(next), "2");
  weft_future_unref(h);
  weft_future_unref(next);
  /* during a batch: its unanswered items fail, the rest run once */
  weft_buf in[6] = {weft_buf_init("log:3", 5), weft_buf_init("hang", 4),
                    weft_buf_init("log:4", 5), weft_buf_init("log:5", 5),
                    weft_buf_init("log:6", 5), weft_buf_init("log:7", 5)};
  weft_procpool_map_options mo = {.chunksize = 3};
  weft_future *m;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 6, &mo, &m), 0);
  int c[8];
  do { /* item 0 has run once the log has it */
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
    log_counts(path, c, 8);
  } while (c[3] == 0);
  cr_assert_eq(weft_procpool_pids(pool, &pid, 1), 1);
  kill(pid, SIGKILL);
  wait_for(loop, m);
  const weft_procpool_results *r = weft_future_value(m);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(r->items[i].status, WEFT_EWORKER, "%d: %s", i,
                 weft_err_name(r->items[i].status));
  for (int i = 3; i < 6; i++)
    cr_assert_eq(r->items[i].status, 0);
  weft_future_unref(m);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  log_counts(path, c, 8);
  int want[8] = {1, 1, 1, 1, 0, 1, 1, 1};
  for (int i = 0; i < 8; i++)
    cr_assert_eq(c[i], want[i], "job %d ran %d times", i, c[i]);
  unlink(path);
  log_env[0] = '\0';
  cr_assert_eq(count_fds(), fds_before);
}

Test(procpool_kill, kill9_after_replying_keeps_the_reply, .timeout = 30) {
  weft_loop *loop = th_loop();
  /* a worker in sh: reads one job frame, replies "OK", then SIGKILLs
   * itself: the reply and the death reach the loop together */
  weft_procpool_options o = {
      .argv = (char *const[]){"sh", "-c",
                              "head -c 6 >/dev/null; "
                              "printf '\\000\\000\\000\\002\\000\\000\\000\\000"
                              "OK'; kill -9 $$",
                              NULL},
      .workers = 4}; /* one job each: a job handed to a worker whose death
                        is not yet seen would fail with WEFT_EWORKER */
  weft_procpool *pool;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), 0);
  weft_future *f[4];
  for (int i = 0; i < 4; i++)
    f[i] = submit(pool, "ab");
  for (int i = 0; i < 4; i++) {
    wait_for(loop, f[i]);
    cr_assert_str_eq(reply(f[i]), "OK");
    weft_future_unref(f[i]);
  }
  close_and_wait(loop, pool);
  th_loop_finish(loop);
}

/* Kills a random worker every few turns while 300 jobs run in batches:
 * every job settles once; a fulfilled job ran exactly once, a failed one
 * at most once. */
Test(procpool_kill, kill9_storm_loses_and_repeats_nothing, .timeout = 90) {
  char path[] = "/tmp/weft-ppool-log-XXXXXX";
  log_setup(path);
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 3);
  enum { N = 300 };
  static char in[N][24];
  weft_buf bufs[N];
  for (int i = 0; i < N; i++) {
    snprintf(in[i], sizeof in[i], "nap:%d", i);
    bufs[i] = weft_buf_init(in[i], strlen(in[i]));
  }
  weft_procpool_map_options mo = {.chunksize = 4};
  weft_future *m;
  cr_assert_eq(weft_procpool_map_ex(pool, bufs, N, &mo, &m), 0);
  unsigned seed = 14, turns = 0, kills = 0;
  while (weft_future_get_state(m) == WEFT_FUTURE_PENDING) {
    weft_loop_run(loop, WEFT_RUN_ONCE);
    if (++turns % 7 != 0) continue;
    pid_t pids[3];
    int n = weft_procpool_pids(pool, pids, 3);
    if (n > 0 && kills < 25) {
      kill(pids[rand_r(&seed) % (unsigned)n], SIGKILL);
      kills++;
    }
  }
  const weft_procpool_results *r = weft_future_value(m);
  int c[N];
  log_counts(path, c, N);
  size_t ok = 0;
  for (int i = 0; i < N; i++) {
    if (r->items[i].status == 0) {
      ok++;
      char want[24];
      snprintf(want, sizeof want, "%d", i);
      cr_assert_str_eq(r->items[i].data, want);
      cr_assert_eq(c[i], 1, "job %d fulfilled, ran %d times", i, c[i]);
    } else {
      cr_assert_eq(r->items[i].status, WEFT_EWORKER);
      cr_assert_leq(c[i], 1, "job %d ran %d times", i, c[i]);
    }
  }
  cr_assert_eq(ok + r->failed, N);
  cr_assert_gt(ok, 0);
  weft_future_unref(m);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  unlink(path);
  log_env[0] = '\0';
}
