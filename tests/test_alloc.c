/* The replaceable allocator: installation rules, counting, and allocation
 * failure injected at every allocation site of the foundation (loop
 * creation, timer heap growth, call_soon and cross-thread queue growth). */
#include "support/test.h"

#include <ev.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* the in-flight test hooks into weft_loop_free() through a module slot */
#include "core/internal.h"

static void *a_malloc(size_t n, void *ctx) {
  ++*(int *)ctx;
  return malloc(n);
}
static void *a_realloc(void *p, size_t n, void *ctx) {
  ++*(int *)ctx;
  return realloc(p, n);
}
static void a_free(void *p, void *ctx) {
  --*(int *)ctx;
  free(p);
}

static void noop(void *arg) { ++*(int *)arg; }
static void on_timer(weft_timer *t) { ++*(int *)t->base.data; }

Test(alloc, missing_functions_are_rejected, .timeout = 5) {
  int ctx = 0;
  weft_allocator a = {a_malloc, a_realloc, a_free, &ctx};
  a.malloc = NULL;
  cr_assert_eq(weft_set_allocator(&a), -EINVAL);
  a.malloc = a_malloc;
  a.realloc = NULL;
  cr_assert_eq(weft_set_allocator(&a), -EINVAL);
  a.realloc = a_realloc;
  a.free = NULL;
  cr_assert_eq(weft_set_allocator(&a), -EINVAL);
  /* nothing changed: loops still come from libc */
  weft_loop *loop = th_loop();
  cr_assert_eq(ctx, 0);
  th_loop_finish(loop);
}

Test(alloc, custom_allocator_gets_every_block_and_its_ctx, .timeout = 5) {
  int ctx = 0;
  weft_allocator a = {a_malloc, a_realloc, a_free, &ctx};
  cr_assert_eq(weft_set_allocator(&a), 0);
  weft_loop *loop = th_loop();
  cr_assert_gt(ctx, 0);
  cr_assert_gt(weft_alloc_live(), 0);
  th_loop_finish(loop);
  cr_assert_eq(weft_alloc_live(), 0);
  /* every block went back to the allocator that handed it out */
  cr_assert_eq(ctx, 0);
  cr_assert_eq(weft_set_allocator(NULL), 0);
}

Test(alloc, swap_is_busy_while_memory_is_held, .timeout = 5) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  size_t live = weft_alloc_live();
  cr_assert_gt(live, 0);
  cr_assert_eq(weft_set_allocator(NULL), -EBUSY);
  int ctx = 0;
  weft_allocator a = {a_malloc, a_realloc, a_free, &ctx};
  cr_assert_eq(weft_set_allocator(&a), -EBUSY);
  /* the installed allocator is still the counting one */
  size_t calls = th_alloc_calls();
  int ran = 0;
  for (int i = 0; i < 300; i++)
    cr_assert_eq(weft_call_soon(loop, noop, &ran), 0);
  cr_assert_gt(th_alloc_calls(), calls);
  cr_assert_eq(ctx, 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(ran, 300);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* Loop creation itself under th_alloc_sweep_run(): .no_loop, and every
 * injected failure must surface as -ENOMEM (.strict). Returns how many
 * rounds failed. */
static size_t fail_each_allocation(th_sweep_fn op) {
  return th_alloc_sweep_run(
      &(th_sweep){.op = op, .strict = true, .no_loop = true});
}

static int op_loop_new(weft_loop *unused, void *arg) {
  (void)unused, (void)arg;
  weft_loop *loop = NULL;
  int err = weft_loop_new(&loop, NULL);
  if (err != 0) {
    cr_assert_null(loop);
    return err;
  }
  cr_assert_eq(weft_loop_free(loop), 0);
  return 0;
}

Test(alloc, loop_new_fails_cleanly_at_each_allocation, .timeout = 10) {
  cr_assert_geq(fail_each_allocation(op_loop_new), 2);
}

static struct ev_loop *host_ev;

static int op_loop_from_ev(weft_loop *unused, void *arg) {
  (void)unused, (void)arg;
  weft_loop *loop = NULL;
  int err = weft_loop_from_ev(&loop, host_ev, NULL);
  if (err != 0) {
    cr_assert_null(loop);
    return err;
  }
  cr_assert_eq(weft_loop_free(loop), 0);
  return 0;
}

Test(alloc, loop_from_ev_fails_cleanly_at_each_allocation, .timeout = 10) {
  host_ev = ev_loop_new(EVFLAG_AUTO);
  cr_assert_geq(fail_each_allocation(op_loop_from_ev), 2);
  ev_run(host_ev, 0); /* returns at once: nothing of weft's is left */
  ev_loop_destroy(host_ev);
}

#define N_TIMERS 200 /* beyond the heap's initial 64 and its first doubling */

/* Starts N_TIMERS timers; one start may fail with -ENOMEM, which must leave
 * that timer stopped and everything else intact; it is then retried. All
 * timers fire exactly once. */
static int op_timers(weft_loop *loop, void *arg) {
  (void)arg;
  static weft_timer t[N_TIMERS];
  int fired = 0, err = 0;
  for (int i = 0; i < N_TIMERS; i++) {
    cr_assert_eq(weft_timer_init(loop, &t[i]), 0);
    t[i].base.data = &fired;
    int e = weft_timer_start(&t[i], on_timer, 0, 0);
    if (e != 0) {
      cr_assert_eq(e, -ENOMEM);
      cr_assert_eq(err, 0, "a second failure");
      cr_assert(!weft_is_active(&t[i].base));
      err = e;
      cr_assert_eq(weft_timer_start(&t[i], on_timer, 0, 0), 0);
    }
  }
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(fired, N_TIMERS);
  return err;
}

#define CS_POSTS 1100 /* beyond the ring's 256, 512 and 1024 */

/* Posts CS_POSTS callbacks; a failed post returns -ENOMEM, queues nothing,
 * and the retry succeeds. Every queued callback runs exactly once, in
 * order. */
static int op_posts(weft_loop *loop,
                    int (*post)(weft_loop *, weft_cb, void *)) {
  static int order[CS_POSTS];
  int ran = 0, err = 0;
  for (int i = 0; i < CS_POSTS; i++) {
    order[i] = -1;
    int e = post(loop, noop, &order[i]);
    if (e != 0) {
      cr_assert_eq(e, -ENOMEM);
      err = e;
      cr_assert_eq(post(loop, noop, &order[i]), 0);
    }
  }
  weft_loop_ref(loop); /* cross-thread posts alone do not keep it alive */
  while (ran < CS_POSTS) {
    cr_assert_geq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
    ran = 0;
    for (int i = 0; i < CS_POSTS; i++)
      ran += order[i] == 0;
  }
  weft_loop_unref(loop);
  for (int i = 0; i < CS_POSTS; i++)
    cr_assert_eq(order[i], 0, "post %d", i);
  return err;
}

static int op_call_soon(weft_loop *loop, void *arg) {
  (void)arg;
  return op_posts(loop, weft_call_soon);
}
static int op_threadsafe(weft_loop *loop, void *arg) {
  (void)arg;
  return op_posts(loop, weft_call_soon_threadsafe);
}

/* The operation runs on the sweep's loop (made while nothing fails);
 * every injected failure must surface as -ENOMEM. */
static size_t fail_each_after_loop(th_sweep_fn op) {
  return th_alloc_sweep_run(&(th_sweep){.op = op, .strict = true});
}

/* How many allocations each operation makes is the implementation's
 * business; that each one fails cleanly is the contract. */
Test(alloc, timer_heap_growth_fails_cleanly, .timeout = 20) {
  /* the timer structures are created on first start and grow past 64 */
  cr_assert_geq(fail_each_after_loop(op_timers), 2);
}

Test(alloc, call_soon_growth_fails_cleanly, .timeout = 20) {
  /* the ring doubles from 256 to 512, 1024 and 2048 */
  cr_assert_eq(fail_each_after_loop(op_call_soon), 3);
}

Test(alloc, threadsafe_queue_growth_fails_cleanly, .timeout = 20) {
  /* the posting thread's queue is created on first post and grows */
  cr_assert_geq(fail_each_after_loop(op_threadsafe), 2);
}

/* ---- no allocation in steady state ------------------------------------ */

static void repost_n(void *arg) { --*(int *)arg; }

Test(alloc, call_soon_steady_state_allocates_nothing, .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  int left = 1000;
  for (int i = 0; i < 1000; i++)
    weft_call_soon(loop, repost_n, &left);
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* warm-up: the ring reaches 1024 */
  size_t calls = th_alloc_calls();
  for (int round = 0; round < 100; round++) {
    left = 1000;
    for (int i = 0; i < 1000; i++)
      cr_assert_eq(weft_call_soon(loop, repost_n, &left), 0);
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
    cr_assert_eq(left, 0);
  }
  cr_assert_eq(th_alloc_calls(), calls, "steady-state call_soon allocated");
  th_loop_finish(loop);
  th_alloc_restore();
}

Test(alloc, threadsafe_steady_state_allocates_nothing, .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  weft_loop_ref(loop);
  size_t calls = 0;
  for (int round = 0; round < 100; round++) {
    if (round == 10) calls = th_alloc_calls(); /* queue storage recycles */
    int left = 500;
    for (int i = 0; i < 500; i++)
      cr_assert_eq(weft_call_soon_threadsafe(loop, repost_n, &left), 0);
    while (left != 0)
      weft_loop_run(loop, WEFT_RUN_ONCE);
  }
  cr_assert_eq(th_alloc_calls(), calls, "steady-state posts allocated");
  weft_loop_unref(loop);
  th_loop_finish(loop);
  th_alloc_restore();
}

static void rearm(weft_timer *t) {
  int *left = t->base.data;
  if (--*left != 0) weft_timer_start(t, rearm, 0, 0);
}

Test(alloc, timer_rearm_steady_state_allocates_nothing, .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  weft_timer t[100];
  int left[100];
  for (int i = 0; i < 100; i++) {
    left[i] = 50;
    weft_timer_init(loop, &t[i]);
    t[i].base.data = &left[i];
    weft_timer_start(&t[i], rearm, 0, 0); /* the heap is allocated here */
  }
  size_t calls = th_alloc_calls();
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  for (int i = 0; i < 100; i++)
    cr_assert_eq(left[i], 0);
  for (int i = 0; i < 100; i++) {
    weft_timer_start(&t[i], rearm, 1000, 0);
    weft_timer_stop(&t[i]);
  }
  cr_assert_eq(th_alloc_calls(), calls, "timer rearm allocated");
  th_loop_finish(loop);
  th_alloc_restore();
}

/* ---- a post in flight while the loop is freed --------------------------
 * The allocator parks the posting thread inside a post (the queue grows)
 * just when the loop's queues are empty; the loop thread then frees the
 * loop. The free must wait for that post and report -EBUSY, never drop it.
 * The park ends after 20 ms unless the free got as far as the module
 * teardown, which only a free that ignored the post would reach. */

static struct inflight {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  weft_loop *loop;
  pthread_t poster;
  bool armed, released;
  atomic_bool in_window;
  atomic_long ran;
  long accepted;
  int last_err;
} IF = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *park_malloc(size_t n, void *ctx) {
  (void)ctx;
  pthread_mutex_lock(&IF.mu);
  if (IF.armed && pthread_equal(pthread_self(), IF.poster)) {
    IF.armed = false;
    atomic_store(&IF.in_window, true);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 20 * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    while (!IF.released &&
           pthread_cond_timedwait(&IF.cv, &IF.mu, &until) == 0) {
    }
  }
  pthread_mutex_unlock(&IF.mu);
  return malloc(n);
}
static void *plain_realloc(void *p, size_t n, void *ctx) {
  (void)ctx;
  return realloc(p, n);
}
static void plain_free(void *p, void *ctx) {
  (void)ctx;
  free(p);
}

static void inflight_cb(void *arg) {
  (void)arg;
  atomic_fetch_add(&IF.ran, 1);
}

/* Posts one callback at a time, each once the previous has run, until a
 * post was parked. */
static void *inflight_poster(void *arg) {
  (void)arg;
  pthread_mutex_lock(&IF.mu);
  IF.poster = pthread_self();
  pthread_mutex_unlock(&IF.mu);
  for (long i = 0; i < 1000000; i++) {
    int err = weft_call_soon_threadsafe(IF.loop, inflight_cb, NULL);
    if (err != 0) {
      IF.last_err = err;
      break;
    }
    IF.accepted++;
    if (atomic_load(&IF.in_window)) break; /* that post was parked */
    if (i == 0) {                          /* its queue exists: arm */
      pthread_mutex_lock(&IF.mu);
      IF.armed = true;
      pthread_mutex_unlock(&IF.mu);
    }
    while (atomic_load(&IF.ran) != IF.accepted)
      sched_yield();
  }
  return NULL;
}

static void release_poster(void) {
  pthread_mutex_lock(&IF.mu);
  IF.released = true;
  pthread_cond_broadcast(&IF.cv);
  pthread_mutex_unlock(&IF.mu);
}

static void inflight_teardown(weft_loop *loop, void *state) {
  (void)loop;
  (void)state;
  release_poster();
  pthread_join(IF.poster, NULL);
}

Test(alloc, post_in_flight_during_free_is_waited_for, .timeout = 20) {
  weft_allocator a = {park_malloc, plain_realloc, plain_free, NULL};
  cr_assert_eq(weft_set_allocator(&a), 0);
  IF.loop = th_loop();
  weft__module_set(IF.loop, WEFT__MOD_PROCESS, NULL, inflight_teardown);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, inflight_poster, NULL), 0);
  while (!atomic_load(&IF.in_window))
    weft_loop_run(IF.loop, WEFT_RUN_NOWAIT);
  int err = weft_loop_free(IF.loop);
  cr_assert_eq(err, -EBUSY, "the free did not wait for the post in flight");
  release_poster();
  while ((err = weft_loop_free(IF.loop)) == -EBUSY)
    weft_loop_run(IF.loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(err, 0);
  cr_assert_eq(IF.last_err, 0);
  cr_assert_gt(IF.accepted, 1);
  cr_assert_eq(atomic_load(&IF.ran), IF.accepted,
               "an accepted post was dropped");
  cr_assert_eq(weft_alloc_live(), 0);
  cr_assert_eq(weft_set_allocator(NULL), 0);
}
