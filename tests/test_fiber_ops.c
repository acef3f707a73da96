/* The fiber one-call forms (promises/fiber_ops.c, io/fiber_io_ops.c): lock,
 * semaphore and queue waits, create_task and gather, read_file, scandir,
 * run_in_pool and process_wait. Each: normal use, -EPERM outside a fiber,
 * bad inputs, cancellation while waiting (-ECANCELED, the primitive left
 * consistent), and allocation failures. */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/test.h"

static const char *en(int err) { return weft_err_name(err); }

#define ASSERT_ERR(got, want)                                                  \
  do {                                                                         \
    int g_ = (got), w_ = (want);                                               \
    cr_assert_eq(g_, w_, "%s: got %s (%d), want %s (%d)", #got, en(g_), g_,    \
                 en(w_), w_);                                                  \
  } while (0)

/* What a test's fibers share. `waiting` counts fibers about to wait;
 * `rc` and `item` are what the last one got. */
typedef struct ctx {
  weft_lock *lock;
  weft_semaphore *sem;
  weft_queue *q;
  weft_process *proc;
  const char *path;
  int waiting, done, rc, rc2;
  void *item;
  weft_future *out;
  int64_t status;
} ctx;

/* Runs the loop a turn at a time until *flag reaches n. */
static void run_until(weft_loop *loop, const int *flag, int n) {
  for (int i = 0; *flag < n && i < 100000; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_geq(*flag, n, "never got there");
}

static void spawn(weft_loop *loop, weft_fiber_fn fn, ctx *c, weft_future **f) {
  ASSERT_ERR(weft_fiber_spawn(loop, fn, c, NULL, f), 0);
}

/* ---- outside a fiber: -EPERM, nothing done --------------------------- */

Test(fiber_ops, outside_a_fiber_is_eperm_and_does_nothing, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_lock *lock;
  weft_semaphore *sem;
  weft_queue *q;
  ASSERT_ERR(weft_lock_new(loop, &lock), 0);
  ASSERT_ERR(weft_semaphore_new(loop, 1, &sem), 0);
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &q), 0);
  ASSERT_ERR(weft_queue_try_put(q, &q), 0);
  void *item = &item;
  weft_future *f = (weft_future *)&item, *fs[1] = {NULL};
  int64_t st = 7;
  ASSERT_ERR(weft_fiber_lock_acquire(lock), -EPERM);
  cr_assert(!weft_lock_locked(lock));
  ASSERT_ERR(weft_fiber_semaphore_acquire(sem), -EPERM);
  cr_assert_eq(weft_semaphore_value(sem), 1);
  ASSERT_ERR(weft_fiber_queue_put(q, &item), -EPERM);
  ASSERT_ERR(weft_fiber_queue_get(q, &item), -EPERM);
  cr_assert_null(item);
  cr_assert_eq(weft_queue_len(q), 1);
  ASSERT_ERR(weft_fiber_create_task((weft_fiber_fn)1, NULL, &f), -EPERM);
  cr_assert_null(f);
  ASSERT_ERR(weft_fiber_gather(fs, 1), -EPERM);
  f = (weft_future *)&item;
  ASSERT_ERR(weft_fiber_read_file("/dev/null", &f), -EPERM);
  cr_assert_null(f);
  f = (weft_future *)&item;
  ASSERT_ERR(weft_fiber_scandir("/", &f), -EPERM);
  cr_assert_null(f);
  ASSERT_ERR(weft_fiber_run_in_pool(WEFT_LANE_CPU, NULL, NULL, NULL, &item),
             -EPERM);
  cr_assert_null(item);
  ASSERT_ERR(weft_fiber_process_wait(NULL, 0, &st), -EPERM);
  cr_assert_eq(st, 0);
  th_loop_usable(loop);
  ASSERT_ERR(weft_queue_try_get(q, &item), 0);
  ASSERT_ERR(weft_queue_free(q), 0);
  ASSERT_ERR(weft_semaphore_free(sem), 0);
  ASSERT_ERR(weft_lock_free(lock), 0);
  th_loop_finish(loop);
}

/* ---- bad inputs inside a fiber ------------------------------------------ */

static int bad_inputs(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  void *item = &item;
  weft_future *f = (weft_future *)&item, *one[1] = {NULL};
  int64_t st = 7;
  ASSERT_ERR(weft_fiber_lock_acquire(NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_semaphore_acquire(NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_queue_put(NULL, &item), -EINVAL);
  ASSERT_ERR(weft_fiber_queue_get(NULL, &item), -EINVAL);
  cr_assert_null(item);
  ASSERT_ERR(weft_fiber_create_task(NULL, NULL, &f), -EINVAL);
  cr_assert_null(f);
  ASSERT_ERR(weft_fiber_gather(NULL, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_gather(NULL, 0), 0);
  ASSERT_ERR(weft_fiber_gather(one, 1), 0); /* NULL entries are skipped */
  ASSERT_ERR(weft_fiber_read_file(NULL, &f), -EINVAL);
  cr_assert_null(f);
  ASSERT_ERR(weft_fiber_read_file("/dev/null", NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_scandir(NULL, &f), -EINVAL);
  ASSERT_ERR(weft_fiber_scandir("/", NULL), -EINVAL);
  item = &item;
  ASSERT_ERR(weft_fiber_run_in_pool(WEFT_LANE_CPU, NULL, NULL, NULL, &item),
             -EINVAL);
  cr_assert_null(item);
  ASSERT_ERR(weft_fiber_process_wait(NULL, 0, &st), -EINVAL);
  cr_assert_eq(st, 0);
  weft_process never = {0};
  ASSERT_ERR(weft_fiber_process_wait(&never, 10, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_process_wait(&never, WEFT_TIMEOUT_MAX + 1, NULL),
             -EINVAL);
  return 0;
}

Test(fiber_ops, bad_inputs_are_einval, .timeout = 10) {
  weft_loop *loop = th_loop();
  int64_t r = -1;
  ASSERT_ERR(weft_fiber_run(loop, bad_inputs, NULL, NULL, &r), 0);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* ---- lock -----------------------------------------------------------------
 */

static int lock_waiter(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  c->waiting++;
  c->rc = weft_fiber_lock_acquire(c->lock);
  c->done++;
  if (c->rc == 0) {
    cr_assert(weft_lock_locked(c->lock));
    ASSERT_ERR(weft_lock_release(c->lock), 0);
  }
  return c->rc;
}

Test(fiber_ops, lock_acquire_waits_for_the_holder, .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *held, *f;
  ASSERT_ERR(weft_lock_new(loop, &c.lock), 0);
  ASSERT_ERR(weft_lock_acquire(c.lock, &held), 0); /* the test holds it */
  weft_future_unref(held);
  spawn(loop, lock_waiter, &c, &f);
  run_until(loop, &c.waiting, 1);
  for (int i = 0; i < 5; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(c.done, 0, "acquired a held lock");
  ASSERT_ERR(weft_lock_release(c.lock), 0);
  th_run(loop);
  cr_assert_eq(c.done, 1);
  ASSERT_ERR(c.rc, 0);
  ASSERT_ERR(weft_future_error(f), 0);
  cr_assert(!weft_lock_locked(c.lock));
  weft_future_unref(f);
  ASSERT_ERR(weft_lock_free(c.lock), 0);
  th_loop_finish(loop);
}

/* Cancelled while waiting, or after the lock was granted but before the
 * fiber resumed: -ECANCELED both times, and the lock is not left held. */
static void lock_cancel(bool granted_first) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *held, *f;
  ASSERT_ERR(weft_lock_new(loop, &c.lock), 0);
  ASSERT_ERR(weft_lock_acquire(c.lock, &held), 0);
  weft_future_unref(held);
  spawn(loop, lock_waiter, &c, &f);
  run_until(loop, &c.waiting, 1);
  if (granted_first) ASSERT_ERR(weft_lock_release(c.lock), 0);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  cr_assert_eq(c.done, 1);
  ASSERT_ERR(c.rc, -ECANCELED);
  if (!granted_first) {
    cr_assert(weft_lock_locked(c.lock), "the test's hold was lost");
    ASSERT_ERR(weft_lock_release(c.lock), 0);
  }
  cr_assert(!weft_lock_locked(c.lock), "the cancelled waiter holds it");
  ASSERT_ERR(weft_lock_acquire(c.lock, &held), 0); /* still usable */
  cr_assert_eq(weft_future_get_state(held), WEFT_FUTURE_FULFILLED);
  weft_future_unref(held);
  ASSERT_ERR(weft_lock_release(c.lock), 0);
  weft_future_unref(f);
  ASSERT_ERR(weft_lock_free(c.lock), 0);
  th_loop_finish(loop);
}

Test(fiber_ops, lock_cancel_while_waiting, .timeout = 10) {
  lock_cancel(false);
}
Test(fiber_ops, lock_cancel_after_grant_gives_it_back, .timeout = 10) {
  lock_cancel(true);
}

/* ---- semaphore ----------------------------------------------------------- */

static int sem_waiter(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  c->waiting++;
  c->rc = weft_fiber_semaphore_acquire(c->sem);
  c->done++;
  if (c->rc == 0) ASSERT_ERR(weft_semaphore_release(c->sem), 0);
  return c->rc;
}

Test(fiber_ops, semaphore_acquire_waits_for_a_permit, .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  ASSERT_ERR(weft_semaphore_new(loop, 0, &c.sem), 0);
  spawn(loop, sem_waiter, &c, &f);
  run_until(loop, &c.waiting, 1);
  for (int i = 0; i < 5; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(c.done, 0);
  ASSERT_ERR(weft_semaphore_release(c.sem), 0);
  th_run(loop);
  cr_assert_eq(c.done, 1);
  ASSERT_ERR(c.rc, 0);
  cr_assert_eq(weft_semaphore_value(c.sem), 1);
  weft_future_unref(f);
  ASSERT_ERR(weft_semaphore_free(c.sem), 0);
  th_loop_finish(loop);
}

static void sem_cancel(bool granted_first) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  ASSERT_ERR(weft_semaphore_new(loop, 0, &c.sem), 0);
  spawn(loop, sem_waiter, &c, &f);
  run_until(loop, &c.waiting, 1);
  if (granted_first) ASSERT_ERR(weft_semaphore_release(c.sem), 0);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.rc, -ECANCELED);
  cr_assert_eq(weft_semaphore_value(c.sem), granted_first ? 1u : 0u);
  ASSERT_ERR(weft_semaphore_release(c.sem), 0); /* no stale waiter takes it */
  cr_assert_eq(weft_semaphore_value(c.sem), granted_first ? 2u : 1u);
  weft_future_unref(f);
  ASSERT_ERR(weft_semaphore_free(c.sem), 0);
  th_loop_finish(loop);
}

Test(fiber_ops, semaphore_cancel_while_waiting, .timeout = 10) {
  sem_cancel(false);
}
Test(fiber_ops, semaphore_cancel_after_grant_gives_it_back, .timeout = 10) {
  sem_cancel(true);
}

/* ---- queue -----------------------------------------------------------------
 */

static int producer(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  for (intptr_t i = 1; i <= 5; i++)
    ASSERT_ERR(weft_fiber_queue_put(c->q, (void *)i), 0);
  return 0;
}

static int consumer(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  for (int i = 0; i < 5; i++) {
    void *item = NULL;
    ASSERT_ERR(weft_fiber_queue_get(c->q, &item), 0);
    cr_assert_eq((intptr_t)item, i + 1);
    c->done++;
  }
  return 0;
}

Test(fiber_ops, queue_put_and_get_through_a_one_slot_queue, .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f[2];
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &c.q), 0);
  spawn(loop, producer, &c, &f[0]);
  spawn(loop, consumer, &c, &f[1]);
  th_run(loop);
  cr_assert_eq(c.done, 5);
  for (int i = 0; i < 2; i++) {
    ASSERT_ERR(weft_future_error(f[i]), 0);
    weft_future_unref(f[i]);
  }
  cr_assert_eq(weft_queue_len(c.q), 0);
  ASSERT_ERR(weft_queue_free(c.q), 0);
  th_loop_finish(loop);
}

static int getter(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  c->waiting++;
  c->item = &c->item;
  c->rc = weft_fiber_queue_get(c->q, &c->item);
  c->done++;
  return 0;
}

static int putter(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  c->waiting++;
  c->rc2 = weft_fiber_queue_put(c->q, &c->rc2);
  c->done++;
  return 0;
}

Test(fiber_ops, queue_get_cancelled_takes_nothing, .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &c.q), 0);
  spawn(loop, getter, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.rc, -ECANCELED);
  cr_assert_null(c.item);
  ASSERT_ERR(weft_queue_try_put(c.q, &c), 0); /* nobody waits for it */
  cr_assert_eq(weft_queue_len(c.q), 1);
  void *item;
  ASSERT_ERR(weft_queue_try_get(c.q, &item), 0);
  cr_assert_eq(item, &c);
  weft_future_unref(f);
  ASSERT_ERR(weft_queue_free(c.q), 0);
  th_loop_finish(loop);
}

Test(fiber_ops, queue_get_completed_before_the_cancel_hands_it_out,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &c.q), 0);
  spawn(loop, getter, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_queue_try_put(c.q, &c), 0); /* handed to the getter */
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.rc, 0);
  cr_assert_eq(c.item, &c, "the item was lost");
  cr_assert_eq(weft_queue_len(c.q), 0);
  weft_future_unref(f);
  ASSERT_ERR(weft_queue_free(c.q), 0);
  th_loop_finish(loop);
}

Test(fiber_ops, queue_put_cancelled_on_a_full_queue_queues_nothing,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &c.q), 0);
  ASSERT_ERR(weft_queue_try_put(c.q, &c), 0);
  spawn(loop, putter, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.rc2, -ECANCELED);
  cr_assert_eq(weft_queue_len(c.q), 1);
  void *item;
  ASSERT_ERR(weft_queue_try_get(c.q, &item), 0);
  cr_assert_eq(item, &c);
  ASSERT_ERR(weft_queue_try_get(c.q, &item), -EAGAIN);
  weft_future_unref(f);
  ASSERT_ERR(weft_queue_free(c.q), 0);
  th_loop_finish(loop);
}

Test(fiber_ops, queue_put_completed_before_the_cancel_counts, .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  void *item;
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &c.q), 0);
  ASSERT_ERR(weft_queue_try_put(c.q, &c), 0);
  spawn(loop, putter, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_queue_try_get(c.q, &item), 0); /* room: the put goes in */
  cr_assert_eq(item, &c);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.rc2, 0);
  cr_assert_eq(weft_queue_len(c.q), 1);
  ASSERT_ERR(weft_queue_try_get(c.q, &item), 0);
  cr_assert_eq(item, &c.rc2, "the put's item is not the one queued");
  weft_future_unref(f);
  ASSERT_ERR(weft_queue_free(c.q), 0);
  th_loop_finish(loop);
}

Test(fiber_ops, queue_closed_is_eclosed, .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f[2];
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &c.q), 0);
  spawn(loop, getter, &c, &f[0]);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_queue_close(c.q), 0);
  th_run(loop);
  ASSERT_ERR(c.rc, WEFT_ECLOSED);
  cr_assert_null(c.item);
  spawn(loop, putter, &c, &f[1]);
  th_run(loop);
  ASSERT_ERR(c.rc2, WEFT_ECLOSED);
  cr_assert_eq(c.done, 2);
  weft_future_unref(f[0]);
  weft_future_unref(f[1]);
  ASSERT_ERR(weft_queue_free(c.q), 0);
  th_loop_finish(loop);
}

/* ---- create_task and gather ------------------------------------------------
 */

static int child(weft_fiber *self, void *arg) {
  intptr_t v = (intptr_t)arg;
  ASSERT_ERR(weft_fiber_sleep((uint64_t)(5 - v)), 0); /* finish out of order */
  weft_fiber_return_i64(self, v);
  return v == 2 ? -EIO : v == 3 ? -ENOENT : 0;
}

static int parent(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_future *fs[5] = {NULL};
  for (intptr_t i = 0; i < 5; i++)
    if (i != 1) ASSERT_ERR(weft_fiber_create_task(child, (void *)i, &fs[i]), 0);
  weft_future *keep = fs[4];
  weft_future_ref(keep);
  ASSERT_ERR(weft_fiber_gather(fs, 5), -EIO); /* first error by index */
  for (int i = 0; i < 5; i++)
    cr_assert_null(fs[i]);
  cr_assert_eq(weft_future_get_state(keep), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(keep), 4);
  weft_future_unref(keep);
  ASSERT_ERR(weft_fiber_create_task(child, (void *)0, NULL), 0);
  return 0;
}

Test(fiber_ops, gather_awaits_all_and_returns_the_first_error, .timeout = 10) {
  weft_loop *loop = th_loop();
  ASSERT_ERR(weft_fiber_run(loop, parent, NULL, NULL, NULL), 0);
  th_run(loop); /* the fire-and-forget task */
  th_loop_finish(loop);
}

static int sleeper(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  c->rc2 = weft_fiber_sleep(60000);
  c->done++;
  return c->rc2;
}

static int gatherer(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  weft_future *fs[3];
  for (int i = 0; i < 3; i++)
    ASSERT_ERR(weft_fiber_create_task(sleeper, c, &fs[i]), 0);
  c->waiting++;
  c->rc = weft_fiber_gather(fs, 3);
  for (int i = 0; i < 3; i++)
    cr_assert_null(fs[i]);
  return c->rc;
}

Test(fiber_ops, gather_cancelled_cancels_the_rest, .timeout = 10) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  spawn(loop, gatherer, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop); /* returns at once: no 60 s sleep is left */
  ASSERT_ERR(c.rc, -ECANCELED);
  cr_assert_eq(c.done, 3);
  ASSERT_ERR(c.rc2, -ECANCELED);
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* ---- read_file and scandir ------------------------------------------------
 */

static int fs_user(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  char file[256];
  snprintf(file, sizeof file, "%s/a.txt", c->path);
  weft_future *f;
  ASSERT_ERR(weft_fiber_read_file(file, &f), 0);
  const weft_fs_buf *b = weft_future_value(f);
  cr_assert_eq(b->len, 5);
  cr_assert_str_eq(b->data, "hello");
  weft_future_unref(f);
  ASSERT_ERR(weft_fiber_scandir(c->path, &f), 0);
  const weft_fs_dir *d = weft_future_value(f);
  cr_assert_eq(d->count, 2);
  cr_assert_str_eq(d->entries[0].name, "a.txt");
  cr_assert_eq(d->entries[0].type, WEFT_DT_REG);
  cr_assert_str_eq(d->entries[1].name, "sub");
  cr_assert_eq(d->entries[1].type, WEFT_DT_DIR);
  weft_future_unref(f);
  snprintf(file, sizeof file, "%s/missing", c->path);
  f = (weft_future *)c;
  ASSERT_ERR(weft_fiber_read_file(file, &f), -ENOENT);
  cr_assert_null(f);
  f = (weft_future *)c;
  ASSERT_ERR(weft_fiber_scandir(file, &f), -ENOENT);
  cr_assert_null(f);
  c->waiting++;
  f = (weft_future *)c;
  c->rc = weft_fiber_read_file(c->path, &f); /* cancelled by the test */
  cr_assert_null(f);
  return 0;
}

Test(fiber_ops, read_file_and_scandir, .timeout = 10) {
  char dir[] = "/tmp/weft-fiber-ops-XXXXXX", path[300];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/a.txt", dir);
  FILE *fp = fopen(path, "w");
  cr_assert_not_null(fp);
  fputs("hello", fp);
  fclose(fp);
  snprintf(path, sizeof path, "%s/sub", dir);
  cr_assert_eq(mkdir(path, 0700), 0);
  weft_loop *loop = th_loop();
  ctx c = {.path = dir};
  weft_future *f;
  spawn(loop, fs_user, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.rc, -ECANCELED);
  weft_future_unref(f);
  th_loop_finish(loop);
  rmdir(path);
  snprintf(path, sizeof path, "%s/a.txt", dir);
  unlink(path);
  rmdir(dir);
}

/* ---- run_in_pool ------------------------------------------------------------
 */

static atomic_int freed;
static void count_free(void *p) {
  free(p);
  atomic_fetch_add(&freed, 1);
}

static void *square(void *arg, int *err) {
  intptr_t v = (intptr_t)arg;
  if (v < 0) {
    *err = -EDOM;
    return NULL;
  }
  int64_t *r = malloc(sizeof *r);
  if (r != NULL) *r = (int64_t)v * v;
  return r;
}

static int pool_user(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  void *r = &r;
  ASSERT_ERR(
      weft_fiber_run_in_pool(WEFT_LANE_CPU, square, (void *)7, count_free, &r),
      0);
  cr_assert_not_null(r);
  cr_assert_eq(*(int64_t *)r, 49);
  free(r); /* the caller's: the dtor is not run for it */
  cr_assert_eq(atomic_load(&freed), 0);
  ASSERT_ERR(
      weft_fiber_run_in_pool(WEFT_LANE_IO, square, (void *)3, count_free, NULL),
      0);
  cr_assert_eq(atomic_load(&freed), 1); /* result NULL: passed to dtor */
  r = &r;
  ASSERT_ERR(
      weft_fiber_run_in_pool(WEFT_LANE_CPU, square, (void *)-1, count_free, &r),
      -EDOM);
  cr_assert_null(r);
  ASSERT_ERR(weft_fiber_run_in_pool(WEFT_LANE_COUNT, square, NULL, NULL, NULL),
             -EINVAL);
  c->waiting++;
  r = &r;
  c->rc = weft_fiber_run_in_pool(WEFT_LANE_CPU, square, (void *)2, count_free,
                                 &r); /* cancelled by the test */
  cr_assert_null(r);
  return 0;
}

Test(fiber_ops, run_in_pool, .timeout = 10) {
  atomic_store(&freed, 0);
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  spawn(loop, pool_user, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.rc, -ECANCELED);
  weft_future_unref(f);
  th_loop_finish(loop); /* the cancelled job's value went to its dtor */
  int n = atomic_load(&freed);
  cr_assert(n == 1 || n == 2, "freed %d", n); /* 2 if the job ran */
}

/* ---- process_wait -------------------------------------------------------- */

static void spawn_sh(weft_loop *loop, weft_process *p, const char *cmd) {
  char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
  weft_process_options o = {.file = "/bin/sh", .argv = argv};
  ASSERT_ERR(weft_spawn(loop, p, &o), 0);
}

static void free_handle(weft_handle *h) { free(h); }

static int waiter(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  weft_process *p = malloc(sizeof *p), *q = malloc(sizeof *q);
  cr_assert(p != NULL && q != NULL);
  spawn_sh(weft_fiber_loop(self), p, "exit 3");
  ASSERT_ERR(weft_fiber_process_wait(p, 0, &c->status), 0);
  cr_assert(!weft_exit_is_signal(c->status));
  cr_assert_eq(weft_exit_code(c->status), 3);
  ASSERT_ERR(weft_fiber_process_wait(p, 10, &c->status), 0); /* again */
  cr_assert_eq(weft_exit_code(c->status), 3);
  weft_close(&p->base, free_handle);
  spawn_sh(weft_fiber_loop(self), q, "exec sleep 30");
  c->status = 5;
  ASSERT_ERR(weft_fiber_process_wait(q, 20, &c->status), -ETIMEDOUT);
  cr_assert_eq(c->status, 0);
  ASSERT_ERR(weft_process_kill(q, 0), 0); /* still running */
  ASSERT_ERR(weft_process_kill(q, SIGKILL), 0);
  ASSERT_ERR(weft_fiber_process_wait(q, 0, &c->status), 0);
  cr_assert(weft_exit_is_signal(c->status));
  cr_assert_eq(weft_exit_signal(c->status), SIGKILL);
  weft_close(&q->base, free_handle);
  ASSERT_ERR(weft_fiber_process_wait(q, 0, NULL), -EINVAL); /* closing */
  /* cancelled while waiting: the child is not touched */
  c->proc = malloc(sizeof *c->proc);
  cr_assert_not_null(c->proc);
  spawn_sh(weft_fiber_loop(self), c->proc, "exec sleep 30");
  c->waiting++;
  c->rc = weft_fiber_process_wait(c->proc, 60000, NULL);
  return 0;
}

Test(fiber_ops, process_wait_status_timeout_and_cancel, .timeout = 20) {
  weft_loop *loop = th_loop();
  ctx c = {0};
  weft_future *f;
  spawn(loop, waiter, &c, &f);
  run_until(loop, &c.waiting, 1);
  ASSERT_ERR(weft_future_cancel(f), 0);
  for (int i = 0; i < 10 && c.rc == 0; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  ASSERT_ERR(c.rc, -ECANCELED);
  ASSERT_ERR(weft_process_kill(c.proc, 0), 0); /* the child still runs */
  ASSERT_ERR(weft_process_kill(c.proc, SIGKILL), 0);
  weft_future *exit_f;
  ASSERT_ERR(weft_process_exit_future(c.proc, &exit_f), 0);
  while (weft_future_get_state(exit_f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  weft_future_unref(exit_f);
  weft_close(&c.proc->base, free_handle);
  th_run(loop);
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* ---- allocation failures ----------------------------------------------------
 */

static int sweep_child(weft_fiber *self, void *arg) {
  ctx *c = arg;
  int err = weft_fiber_lock_acquire(c->lock);
  if (err == 0) err = weft_fiber_yield();
  weft_lock_release(c->lock);
  if (err == 0) err = weft_fiber_semaphore_acquire(c->sem);
  if (err == 0) err = weft_semaphore_release(c->sem);
  if (err == 0) err = weft_fiber_queue_put(c->q, c);
  weft_fiber_return_i64(self, 1);
  return err;
}

static int sweep_parent(weft_fiber *self, void *arg) {
  (void)self;
  ctx *c = arg;
  weft_future *fs[2] = {NULL, NULL};
  int err = 0;
  for (int i = 0; i < 2 && err == 0; i++)
    err = weft_fiber_create_task(sweep_child, c, &fs[i]);
  int g = weft_fiber_gather(fs, 2);
  while (weft_queue_len(c->q) > 0) { /* what the children put */
    void *item = NULL;
    int e = weft_fiber_queue_get(c->q, &item);
    if (e == 0 && item != c) e = -EPROTO;
    if (e != 0) return e;
  }
  return err != 0 ? err : g;
}

static int sweep_op(weft_loop *loop, void *arg) {
  (void)arg;
  ctx c = {0};
  int err = weft_lock_new(loop, &c.lock);
  if (err == 0) err = weft_semaphore_new(loop, 1, &c.sem);
  if (err == 0) err = weft_queue_new(loop, 2, NULL, &c.q);
  if (err == 0) err = weft_fiber_run(loop, sweep_parent, &c, NULL, NULL);
  weft_queue_free(c.q);
  weft_semaphore_free(c.sem);
  weft_lock_free(c.lock);
  return err;
}

Test(fiber_ops, allocation_failures_are_enomem, .timeout = 60) {
  cr_assert_geq(th_alloc_sweep(sweep_op, NULL), 1);
}
