/* The cross-process lock, semaphore and event in shared memory: a lock
 * holder killed with SIGKILL while it holds the lock (the next acquirer,
 * blocking, waiting or future, is told once); the semaphore and event
 * across fork and across spawned children; the future forms' fast path,
 * timeout, cancellation (the pool thread's wait really ends) and
 * give-back; threads contending (run under TSan too); bad input to every
 * call. Every test counts /proc/self/fd before and after, and spawned
 * children count theirs. */
#include "support/test.h"

#include "support/shm_test.h"

/* ---- the lock ------------------------------------------------------------ */

Test(shm, lock_acquire_release_and_bad_input, .timeout = 10) {
  weft_shm shm;
  layout *l = region_new(&shm);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), 0);
  cr_assert_eq(weft_shm_lock_acquire(&l->lock, 0), 0);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), getpid());
  cr_assert_eq(weft_shm_lock_acquire(&l->lock, 0), -ETIMEDOUT);
  cr_assert_eq(weft_shm_lock_acquire(&l->lock, 30), -ETIMEDOUT,
               "waiting for itself ends at the timeout");
  pid_t pid = fork_or_die();
  if (pid == 0) /* another process may not release it */
    _exit(weft_shm_lock_release(&l->lock) == -EPERM &&
                  weft_shm_lock_acquire(&l->lock, 0) == -ETIMEDOUT
              ? 0
              : 1);
  expect_exit0(pid);
  cr_assert_eq(weft_shm_lock_release(&l->lock), 0);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), 0);
  cr_assert_eq(weft_shm_lock_release(&l->lock), -EPERM);
  /* bad input */
  weft_shm_lock raw;
  memset(&raw, 0, sizeof raw);
  cr_assert_eq(weft_shm_lock_init(NULL), -EINVAL);
  cr_assert_eq(weft_shm_lock_init((weft_shm_lock *)((char *)shm.base + 4092)),
               -EINVAL);
  cr_assert_eq(weft_shm_lock_acquire(NULL, 0), -EINVAL);
  cr_assert_eq(weft_shm_lock_acquire(&raw, 0), -EINVAL, "not initialised");
  cr_assert_eq(weft_shm_lock_acquire(&l->lock, -2), -EINVAL);
  cr_assert_eq(weft_shm_lock_release(NULL), -EINVAL);
  cr_assert_eq(weft_shm_lock_release(&raw), -EINVAL);
  cr_assert_eq(weft_shm_lock_get_owner(NULL), -EINVAL);
  cr_assert_eq(weft_shm_lock_get_owner(&raw), -EINVAL);
  weft_loop *loop = th_loop();
  weft_future *f;
  cr_assert_eq(weft_shm_lock_acquire_future(NULL, &l->lock, 0, &f), -EINVAL);
  cr_assert_eq(weft_shm_lock_acquire_future(loop, NULL, 0, &f), -EINVAL);
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &raw, 0, &f), -EINVAL);
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, -2, &f), -EINVAL);
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, 0, NULL), -EINVAL);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), 0, "nothing was taken");
  th_loop_finish(loop);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* Four processes increment a plain counter under the lock. */
Test(shm, lock_excludes_across_processes, .timeout = 30) {
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t kids[3];
  for (int k = 0; k < 3; k++)
    if ((kids[k] = fork_or_die()) == 0) {
      for (int i = 0; i < 5000; i++) {
        if (weft_shm_lock_acquire(&l->lock, 10000) != 0) _exit(1);
        int64_t v = l->counter;
        l->counter = v + 1;
        if (weft_shm_lock_release(&l->lock) != 0) _exit(2);
      }
      _exit(0);
    }
  for (int i = 0; i < 5000; i++) {
    cr_assert_eq(weft_shm_lock_acquire(&l->lock, 10000), 0);
    l->counter++;
    cr_assert_eq(weft_shm_lock_release(&l->lock), 0);
  }
  for (int k = 0; k < 3; k++)
    expect_exit0(kids[k]);
  cr_assert_eq(l->counter, 20000);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), 0);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* A child takes the lock, updates half of the state (a = 1, not b) and is
 * killed with SIGKILL. */
static pid_t holder_killed(layout *l, bool reap_it) {
  pid_t pid = fork_or_die();
  if (pid == 0) {
    if (weft_shm_lock_acquire(&l->lock, 10000) != 0) _exit(1);
    l->a = 1;
    weft_shm_event_set(&l->go);
    for (;;)
      pause();
  }
  cr_assert_eq(weft_shm_event_wait(&l->go, 10000), 0);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), pid);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  if (reap_it) {
    int st = reap(pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  }
  return pid;
}

static void repair_and_check(layout *l) {
  cr_assert_eq(l->a, 1);
  cr_assert_eq(l->b, 0, "the dead holder's update is half done");
  l->b = 1; /* repaired */
  cr_assert_eq(weft_shm_lock_release(&l->lock), 0);
  cr_assert_eq(weft_shm_lock_acquire(&l->lock, 0), 0, "told once only");
  cr_assert_eq(l->a + l->b, 2);
  cr_assert_eq(weft_shm_lock_release(&l->lock), 0);
}

Test(shm, lock_holder_killed_try_is_told, .timeout = 20) {
  weft_shm shm;
  layout *l = region_new(&shm);
  holder_killed(l, true);
  cr_assert_eq(weft_shm_lock_acquire(&l->lock, 0), WEFT_SHM_OWNER_DIED);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), getpid());
  repair_and_check(l);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* Not reaped: the dead holder is a zombie, which still has its pid. */
Test(shm, lock_holder_killed_zombie_is_dead, .timeout = 20) {
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t pid = holder_killed(l, false);
  /* the kill is asynchronous: wait for the zombie, without reaping it */
  siginfo_t si;
  memset(&si, 0, sizeof si);
  cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
  cr_assert_eq(weft_shm_lock_acquire(&l->lock, WEFT_SHM_FOREVER),
               WEFT_SHM_OWNER_DIED);
  repair_and_check(l);
  reap(pid);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* Waiters already blocked when the holder dies: a process and a thread
 * wait; exactly one of them is told, the other gets the lock after. */
typedef struct waiter_arg {
  layout *l;
  int rc;
} waiter_arg;

static void *waiter_thread(void *p) {
  waiter_arg *w = p;
  weft_shm_add_i64(&w->l->counter, 1);
  w->rc = weft_shm_lock_acquire(&w->l->lock, 10000);
  if (w->rc >= 0) weft_shm_lock_release(&w->l->lock);
  return NULL;
}

Test(shm, lock_holder_killed_while_others_wait, .timeout = 30) {
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t holder = fork_or_die();
  if (holder == 0) {
    if (weft_shm_lock_acquire(&l->lock, 10000) != 0) _exit(1);
    weft_shm_event_set(&l->go);
    for (;;)
      pause();
  }
  cr_assert_eq(weft_shm_event_wait(&l->go, 10000), 0);
  pid_t w = fork_or_die();
  if (w == 0) {
    weft_shm_add_i64(&l->counter, 1);
    int rc = weft_shm_lock_acquire(&l->lock, 10000);
    if (rc >= 0) weft_shm_lock_release(&l->lock);
    _exit(rc == 0 ? 0 : rc == WEFT_SHM_OWNER_DIED ? 3 : 1);
  }
  waiter_arg wa = {l, -100};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, waiter_thread, &wa), 0);
  WAIT_FOR(weft_shm_load_i64(&l->counter) == 2);
  cr_assert_eq(kill(holder, SIGKILL), 0);
  reap(holder);
  cr_assert_eq(pthread_join(t, NULL), 0);
  int st = reap(w);
  cr_assert(WIFEXITED(st));
  int told = (WEXITSTATUS(st) == 3) + (wa.rc == WEFT_SHM_OWNER_DIED);
  int plain = (WEXITSTATUS(st) == 0) + (wa.rc == 0);
  cr_assert_eq(told, 1, "child %d, thread %d", WEXITSTATUS(st), wa.rc);
  cr_assert_eq(plain, 1);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), 0);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* The future form of the same: the loop is told through the future. */
Test(shm, lock_holder_killed_future_is_told, .timeout = 20) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  weft_process p;
  spawn_child(loop, &p, &shm, "lock_hold");
  cr_assert_eq(weft_shm_event_wait(&l->go, 10000), 0);
  weft_future *f;
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, 10000, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_process_kill(&p, SIGKILL), 0);
  expect_i64(loop, f, WEFT_SHM_OWNER_DIED);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), getpid());
  repair_and_check(l);
  cr_assert_eq(weft_exit_signal(child_exit(loop, &p)), SIGKILL);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* ---- the lock's future form ---------------------------------------------- */

static pid_t hold_in_child(layout *l) {
  pid_t pid = fork_or_die();
  if (pid == 0) { /* holds the lock until `ev` is set */
    if (weft_shm_lock_acquire(&l->lock, 10000) != 0) _exit(1);
    weft_shm_event_set(&l->go);
    if (weft_shm_event_wait(&l->ev, 10000) != 0) _exit(2);
    _exit(weft_shm_lock_release(&l->lock) == 0 ? 0 : 3);
  }
  cr_assert_eq(weft_shm_event_wait(&l->go, 10000), 0);
  return pid;
}

Test(shm, lock_future_fast_path_wait_and_timeout, .timeout = 20) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  weft_future *f;
  /* free: taken at once, settled before the loop runs */
  cr_assert_eq(
      weft_shm_lock_acquire_future(loop, &l->lock, WEFT_SHM_FOREVER, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), getpid());
  cr_assert_eq(weft_shm_lock_release(&l->lock), 0);
  /* held by another process: try (timeout 0) and a short timeout */
  pid_t pid = hold_in_child(l);
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, 0, &f), 0);
  expect_err(loop, f, -ETIMEDOUT);
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, 30, &f), 0);
  expect_err(loop, f, -ETIMEDOUT);
  /* a wait that the release ends */
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, 10000, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_shm_event_set(&l->ev), 0);
  expect_i64(loop, f, 0);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), getpid());
  cr_assert_eq(weft_shm_lock_release(&l->lock), 0);
  expect_exit0(pid);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

static unsigned pool_running(weft_loop *loop) {
  weft_pool_stats st;
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &st), 0);
  return (unsigned)st.running;
}

/* Cancelling a pending acquire really ends the pool thread's wait: the
 * loop runs dry (no job left) long before the wait's own timeout. */
Test(shm, lock_future_cancel_ends_the_wait, .timeout = 20) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t pid = hold_in_child(l);
  weft_future *f;
  cr_assert_eq(
      weft_shm_lock_acquire_future(loop, &l->lock, WEFT_SHM_FOREVER, &f), 0);
  WAIT_FOR(pool_running(loop) == 1); /* the wait is on a pool thread */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  cr_assert_eq(pool_running(loop), 0);
  double secs =
      (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  cr_assert_lt(secs, 5.0, "the wait ended with the cancel (%.3f s)", secs);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), pid, "not taken");
  cr_assert_eq(weft_shm_event_set(&l->ev), 0);
  expect_exit0(pid);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), 0);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* The pool thread took the lock, the loop has not seen it yet, and the
 * future is cancelled: the lock is given back. */
Test(shm, lock_future_cancel_after_grant_gives_it_back, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t pid = hold_in_child(l);
  weft_future *f;
  cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, 10000, &f), 0);
  cr_assert_eq(weft_shm_event_set(&l->ev), 0);
  WAIT_FOR(weft_shm_lock_get_owner(&l->lock) == getpid());
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), 0, "given back");
  expect_exit0(pid);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
}

/* Allocation failures in the future form (the fast path's future, the
 * pool path's job and the pool's first use): -ENOMEM, nothing held. */
static int lock_future_round(weft_loop *loop, void *arg) {
  layout *l = arg;
  weft_future *f;
  int err = weft_shm_lock_acquire_future(loop, &l->lock, 20, &f);
  if (err != 0) return err;
  settle(loop, f);
  err = weft_future_error(f);
  weft_future_unref(f);
  return err == -ETIMEDOUT ? 0 : err;
}

Test(shm, lock_future_allocation_failures, .timeout = 60) {
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t pid = hold_in_child(l); /* every round waits, then times out */
  size_t n = th_alloc_sweep_run(&(th_sweep){
      .op = lock_future_round, .arg = l, .max_rounds = 100, .strict = true});
  cr_assert_gt(n, 0);
  cr_assert_eq(weft_shm_lock_get_owner(&l->lock), pid);
  cr_assert_eq(weft_shm_event_set(&l->ev), 0);
  expect_exit0(pid);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* ---- the semaphore ------------------------------------------------------- */

Test(shm, sem_permits_and_bad_input, .timeout = 10) {
  weft_shm shm;
  layout *l = region_new(&shm);
  cr_assert_eq(weft_shm_sem_init(&l->sem, 2), 0);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 2);
  cr_assert_eq(weft_shm_sem_acquire(&l->sem, 0), 0);
  cr_assert_eq(weft_shm_sem_acquire(&l->sem, WEFT_SHM_FOREVER), 0);
  cr_assert_eq(weft_shm_sem_acquire(&l->sem, 0), -ETIMEDOUT);
  cr_assert_eq(weft_shm_sem_acquire(&l->sem, 20), -ETIMEDOUT);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 0);
  cr_assert_eq(weft_shm_sem_release(&l->sem), 0);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 1);
  cr_assert_eq(weft_shm_sem_init(&l->sem, INT32_MAX), 0);
  cr_assert_eq(weft_shm_sem_release(&l->sem), -EOVERFLOW);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), INT32_MAX);
  weft_shm_sem raw;
  memset(&raw, 0, sizeof raw);
  cr_assert_eq(weft_shm_sem_init(NULL, 0), -EINVAL);
  cr_assert_eq(weft_shm_sem_init(&l->sem, (unsigned)INT32_MAX + 1), -EINVAL);
  cr_assert_eq(weft_shm_sem_init((weft_shm_sem *)((char *)shm.base + 4), 0),
               -EINVAL);
  cr_assert_eq(weft_shm_sem_acquire(NULL, 0), -EINVAL);
  cr_assert_eq(weft_shm_sem_acquire(&raw, 0), -EINVAL);
  cr_assert_eq(weft_shm_sem_acquire(&l->sem, -5), -EINVAL);
  cr_assert_eq(weft_shm_sem_release(NULL), -EINVAL);
  cr_assert_eq(weft_shm_sem_release(&raw), -EINVAL);
  cr_assert_eq(weft_shm_sem_get_value(NULL), -EINVAL);
  cr_assert_eq(weft_shm_sem_get_value(&raw), -EINVAL);
  weft_loop *loop = th_loop();
  weft_future *f;
  cr_assert_eq(weft_shm_sem_acquire_future(NULL, &l->sem, 0, &f), -EINVAL);
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &raw, 0, &f), -EINVAL);
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, -2, &f), -EINVAL);
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, 0, NULL), -EINVAL);
  th_loop_finish(loop);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* A forked child blocks on the semaphore until the parent releases. */
Test(shm, sem_across_fork, .timeout = 20) {
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t pid = fork_or_die();
  if (pid == 0) {
    weft_shm_add_i64(&l->counter, 1);
    if (weft_shm_sem_acquire(&l->sem, 10000) != 0) _exit(1);
    if (weft_shm_sem_acquire(&l->sem, 10000) != 0) _exit(2);
    _exit(weft_shm_sem_get_value(&l->sem) == 0 ? 0 : 3);
  }
  WAIT_FOR(weft_shm_load_i64(&l->counter) == 1);
  cr_assert_eq(weft_shm_sem_release(&l->sem), 0);
  cr_assert_eq(weft_shm_sem_release(&l->sem), 0);
  expect_exit0(pid);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* Three spawned children release one permit each; the loop takes them
 * through the future form. */
Test(shm, sem_across_spawned_children, .timeout = 30) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  weft_future *f[3];
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, 10000, &f[i]), 0);
  weft_process p[3];
  for (int i = 0; i < 3; i++)
    spawn_child(loop, &p[i], &shm, "sem_release");
  for (int i = 0; i < 3; i++)
    cr_assert_eq(child_exit(loop, &p[i]), 0, "child %d", i);
  for (int i = 0; i < 3; i++)
    expect_i64(loop, f[i], 0);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 0);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

Test(shm, sem_future_timeout_cancel_and_give_back, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  weft_future *f;
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, 0, &f), 0);
  expect_err(loop, f, -ETIMEDOUT);
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, 20, &f), 0);
  expect_err(loop, f, -ETIMEDOUT);
  /* cancel ends the wait */
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, WEFT_SHM_FOREVER, &f),
               0);
  WAIT_FOR(pool_running(loop) == 1);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(pool_running(loop), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 0);
  /* a permit taken by the pool thread after the cancel is given back */
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, 10000, &f), 0);
  WAIT_FOR(pool_running(loop) == 1);
  cr_assert_eq(weft_shm_sem_release(&l->sem), 0);
  WAIT_FOR(pool_running(loop) == 0); /* it took the permit */
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 1, "given back");
  /* fast path */
  cr_assert_eq(weft_shm_sem_acquire_future(loop, &l->sem, 0, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
}

/* ---- the event ----------------------------------------------------------- */

Test(shm, event_set_clear_and_bad_input, .timeout = 10) {
  weft_shm shm;
  layout *l = region_new(&shm);
  cr_assert(!weft_shm_event_is_set(&l->ev));
  cr_assert_eq(weft_shm_event_wait(&l->ev, 0), -ETIMEDOUT);
  cr_assert_eq(weft_shm_event_wait(&l->ev, 20), -ETIMEDOUT);
  cr_assert_eq(weft_shm_event_set(&l->ev), 0);
  cr_assert(weft_shm_event_is_set(&l->ev));
  cr_assert_eq(weft_shm_event_wait(&l->ev, WEFT_SHM_FOREVER), 0);
  cr_assert_eq(weft_shm_event_set(&l->ev), 0, "setting twice is fine");
  cr_assert_eq(weft_shm_event_clear(&l->ev), 0);
  cr_assert(!weft_shm_event_is_set(&l->ev));
  weft_shm_event raw = {0, 0};
  cr_assert_eq(weft_shm_event_init(NULL), -EINVAL);
  cr_assert_eq(weft_shm_event_init((weft_shm_event *)((char *)shm.base + 2)),
               -EINVAL);
  cr_assert_eq(weft_shm_event_set(NULL), -EINVAL);
  cr_assert_eq(weft_shm_event_set(&raw), -EINVAL);
  cr_assert_eq(weft_shm_event_clear(&raw), -EINVAL);
  cr_assert(!weft_shm_event_is_set(NULL));
  cr_assert(!weft_shm_event_is_set(&raw));
  cr_assert_eq(weft_shm_event_wait(NULL, 0), -EINVAL);
  cr_assert_eq(weft_shm_event_wait(&raw, 0), -EINVAL);
  cr_assert_eq(weft_shm_event_wait(&l->ev, -3), -EINVAL);
  weft_loop *loop = th_loop();
  weft_future *f;
  cr_assert_eq(weft_shm_event_wait_future(NULL, &l->ev, 0, &f), -EINVAL);
  cr_assert_eq(weft_shm_event_wait_future(loop, &raw, 0, &f), -EINVAL);
  cr_assert_eq(weft_shm_event_wait_future(loop, &l->ev, -2, &f), -EINVAL);
  cr_assert_eq(weft_shm_event_wait_future(loop, &l->ev, 0, NULL), -EINVAL);
  th_loop_finish(loop);
  cr_assert_eq(weft_shm_close(&shm), 0);
}

/* One set wakes every waiter: two forked children, two spawned children
 * and a future of the loop. */
Test(shm, event_wakes_every_process, .timeout = 30) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  pid_t kids[2];
  for (int k = 0; k < 2; k++)
    if ((kids[k] = fork_or_die()) == 0) {
      weft_shm_add_i64(&l->counter, 1);
      _exit(weft_shm_event_wait(&l->ev, 10000) == 0 ? 0 : 1);
    }
  weft_process p[2];
  for (int i = 0; i < 2; i++)
    spawn_child(loop, &p[i], &shm, "event_wait");
  weft_future *f;
  cr_assert_eq(weft_shm_event_wait_future(loop, &l->ev, 10000, &f), 0);
  WAIT_FOR(weft_shm_load_i64(&l->counter) == 4);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_shm_event_set(&l->ev), 0);
  expect_i64(loop, f, 0);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(child_exit(loop, &p[i]), 0);
  for (int k = 0; k < 2; k++)
    expect_exit0(kids[k]);
  /* set: settles at once; cleared: timeout and cancel */
  cr_assert_eq(weft_shm_event_wait_future(loop, &l->ev, 0, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_event_clear(&l->ev), 0);
  cr_assert_eq(weft_shm_event_wait_future(loop, &l->ev, 20, &f), 0);
  expect_err(loop, f, -ETIMEDOUT);
  cr_assert_eq(weft_shm_event_wait_future(loop, &l->ev, WEFT_SHM_FOREVER, &f),
               0);
  WAIT_FOR(pool_running(loop) == 1);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(pool_running(loop), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* ---- threads (this suite runs under TSan too) ---------------------------- */

typedef struct contend {
  layout *l;
  int64_t plain; /* guarded by the lock */
  int errors;
} contend;

static void *contend_thread(void *p) {
  contend *c = p;
  for (int i = 0; i < 2000; i++) {
    if (weft_shm_lock_acquire(&c->l->lock, 10000) != 0) {
      __atomic_fetch_add(&c->errors, 1, __ATOMIC_SEQ_CST);
      continue;
    }
    c->plain++;
    weft_shm_lock_release(&c->l->lock);
    if (weft_shm_sem_acquire(&c->l->sem, 10000) != 0)
      __atomic_fetch_add(&c->errors, 1, __ATOMIC_SEQ_CST);
    weft_shm_sem_release(&c->l->sem);
  }
  if (weft_shm_event_wait(&c->l->ev, 10000) != 0)
    __atomic_fetch_add(&c->errors, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

Test(shm, threads_contend_on_lock_sem_and_event, .timeout = 60) {
  weft_shm shm;
  layout *l = region_new(&shm);
  cr_assert_eq(weft_shm_sem_init(&l->sem, 2), 0);
  contend c = {l, 0, 0};
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, contend_thread, &c), 0);
  /* the loop thread meanwhile takes the lock through futures */
  weft_loop *loop = th_loop();
  for (int i = 0; i < 200; i++) {
    weft_future *f;
    cr_assert_eq(weft_shm_lock_acquire_future(loop, &l->lock, 10000, &f), 0);
    settle(loop, f);
    cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
                 weft_err_name(weft_future_error(f)));
    weft_future_unref(f);
    c.plain++;
    cr_assert_eq(weft_shm_lock_release(&l->lock), 0);
  }
  cr_assert_eq(weft_shm_event_set(&l->ev), 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(pthread_join(t[i], NULL), 0);
  cr_assert_eq(c.errors, 0);
  cr_assert_eq(c.plain, 4 * 2000 + 200);
  cr_assert_eq(weft_shm_sem_get_value(&l->sem), 2);
  th_loop_finish(loop);
  cr_assert_eq(weft_shm_close(&shm), 0);
}
