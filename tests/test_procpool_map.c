/* The process pool's maps (weft_procpool_map_ex): chunks, results as they
 * complete or in order, an item's error, cancelling, max_queue, and what
 * allocation failures do to a map and its on_result calls (each item
 * delivered once, the map freed). The workers are this binary re-executed
 * with WEFT_TEST_WORKER set. */
#include "support/test.h"

#include <ctype.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the worker ------------------------------------------------------------
 * Jobs: "fail" fails with -EIO and a message; "hang" waits to be killed;
 * anything else is upper-cased. */

static int handler(const void *in, size_t len, weft_buf *out, void *arg) {
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
  for (size_t i = 0; i < len; i++)
    s[i] = (char)toupper((unsigned char)s[i]);
  out->base = malloc(len + 1);
  if (out->base == NULL) return -ENOMEM;
  memcpy(out->base, s, len + 1);
  out->len = len;
  return 0;
}

__attribute__((constructor)) static void worker_mode(void) {
  if (getenv("WEFT_TEST_WORKER") == NULL) return;
  signal(SIGABRT, SIG_DFL);
  _exit(weft_procpool_worker_main(handler, NULL) == 0 ? 0 : 1);
}

/* ---- helpers ---------------------------------------------------------------
 */

static char self[4096];
static char *worker_argv[] = {self, NULL};
static char *worker_env[] = {"WEFT_TEST_WORKER=1",
                             "ASAN_OPTIONS=detect_leaks=0", NULL};

static void find_self(void) {
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(len, 0);
  self[len] = '\0';
}

/* A pool of this binary's workers; returns the error of weft_procpool_new. */
static int pool_try(weft_loop *loop, weft_procpool_options o,
                    weft_procpool **pool) {
  find_self();
  o.argv = worker_argv;
  o.env = worker_env;
  *pool = NULL;
  return weft_procpool_new(loop, &o, pool);
}

static weft_procpool *pool_with(weft_loop *loop, weft_procpool_options o) {
  weft_procpool *pool;
  int err = pool_try(loop, o, &pool);
  cr_assert_eq(err, 0, "new: %s", weft_err_name(err));
  return pool;
}

static weft_procpool *pool_n(weft_loop *loop, unsigned n) {
  return pool_with(loop, (weft_procpool_options){.workers = n});
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

static void wait_for(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

static const char *reply(weft_future *f) {
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "rejected: %s",
               weft_err_name(weft_future_error(f)));
  const weft_procpool_result *r = weft_future_value(f);
  cr_assert_eq(r->status, 0);
  return r->data;
}

/* Open fds: every test ends with as many as it started with (none leaked
 * by the pool's pipes, in the parent; test_procpool_kill checks the
 * workers). */
static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  cr_assert_not_null(d);
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

static weft_future *submit(weft_procpool *pool, const char *s) {
  weft_future *f;
  int err = weft_procpool_submit(pool, s, strlen(s), &f);
  cr_assert_eq(err, 0, "submit: %s", weft_err_name(err));
  return f;
}

/* ---- maps --------------------------------------------------------------- */

typedef struct seen {
  size_t calls, next;
  bool in_order;
  unsigned char hit[1000];
} seen;

static void on_item(size_t i, const weft_procpool_result *r, void *arg) {
  seen *s = arg;
  cr_assert_lt(i, sizeof s->hit);
  s->hit[i]++;
  if (i != s->next) s->in_order = false;
  s->next = i + 1;
  s->calls++;
  cr_assert_eq(r->status, 0);
}

static void map_n(weft_loop *loop, weft_procpool *pool, size_t chunk,
                  bool ordered) {
  enum { N = 1000 };
  static char in[N][24];
  weft_buf bufs[N];
  for (int i = 0; i < N; i++) {
    snprintf(in[i], sizeof in[i], "item-%d", i);
    bufs[i] = weft_buf_init(in[i], strlen(in[i]));
  }
  seen s = {.in_order = true};
  weft_procpool_map_options o = {
      .chunksize = chunk, .on_result = on_item, .arg = &s, .ordered = ordered};
  weft_future *f;
  cr_assert_eq(weft_procpool_map_ex(pool, bufs, N, &o, &f), 0);
  wait_for(loop, f);
  const weft_procpool_results *r = weft_future_value(f);
  cr_assert_not_null(r);
  cr_assert_eq(r->n, N);
  cr_assert_eq(r->failed, 0);
  for (int i = 0; i < N; i++) {
    char want[24];
    snprintf(want, sizeof want, "ITEM-%d", i);
    cr_assert_str_eq(r->items[i].data, want);
    cr_assert_eq(r->items[i].len, strlen(want));
  }
  while (s.calls < N) /* delivered from the deferred queue */
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(s.calls, N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(s.hit[i], 1, "item %d delivered %d times", i, s.hit[i]);
  if (ordered) cr_assert(s.in_order);
  weft_future_unref(f);
}

Test(procpool_map, map_chunks_unordered_and_ordered, .timeout = 60) {
  int fds = count_fds();
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 3);
  map_n(loop, pool, 7, false);
  map_n(loop, pool, 1, true);
  map_n(loop, pool, 250, true);
  weft_future *f; /* an empty map fulfils with no items */
  cr_assert_eq(weft_procpool_map_ex(pool, NULL, 0, NULL, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(((const weft_procpool_results *)weft_future_value(f))->n, 0);
  weft_future_unref(f);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  cr_assert_eq(count_fds(), fds);
}

Test(procpool_map, an_item_error_fails_only_that_item, .timeout = 30) {
  int fds = count_fds();
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 1);
  weft_buf in[4] = {weft_buf_init("a", 1), weft_buf_init("fail", 4),
                    weft_buf_init("b", 1), weft_buf_init("", 0)};
  weft_procpool_map_options o = {.chunksize = 4};
  weft_future *f;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 4, &o, &f), 0);
  wait_for(loop, f);
  const weft_procpool_results *r = weft_future_value(f);
  cr_assert_eq(r->failed, 1);
  cr_assert_str_eq(r->items[0].data, "A");
  cr_assert_eq(r->items[1].status, -EIO, "%s",
               weft_err_name(r->items[1].status));
  cr_assert_str_eq(r->items[1].data, "bad fail");
  cr_assert_str_eq(r->items[2].data, "B");
  cr_assert_eq(r->items[3].status, 0);
  cr_assert_eq(r->items[3].len, 0);
  weft_future_unref(f);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  cr_assert_eq(count_fds(), fds);
}

Test(procpool_map, cancelling_a_map_stops_it, .timeout = 30) {
  int fds = count_fds();
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 2);
  weft_buf in[6];
  for (int i = 0; i < 6; i++)
    in[i] = weft_buf_init(i == 1 ? "hang" : "x", i == 1 ? 4 : 1);
  seen s = {.in_order = true};
  weft_procpool_map_options o = {
      .chunksize = 2, .on_result = on_item, .arg = &s};
  weft_future *m;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 6, &o, &m), 0);
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_future_cancel(m), 0);
  size_t calls = s.calls;
  weft_future *after = submit(pool, "after");
  wait_for(loop, after);
  cr_assert_str_eq(reply(after), "AFTER");
  cr_assert_eq(s.calls, calls); /* no delivery after the cancel */
  cr_assert_eq(weft_procpool_workers(pool), 2);
  weft_future_unref(after);
  weft_future_unref(m);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  cr_assert_eq(count_fds(), fds);
}

Test(procpool_map, map_over_max_queue_is_eagain, .timeout = 30) {
  int fds = count_fds();
  weft_loop *loop = th_loop();
  weft_procpool_options o = {.workers = 1, .max_queue = 2};
  weft_procpool *pool = pool_with(loop, o);
  weft_buf in[4] = {weft_buf_init("a", 1), weft_buf_init("b", 1),
                    weft_buf_init("c", 1), weft_buf_init("d", 1)};
  weft_future *f = NULL;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 4, NULL, &f), -EAGAIN);
  cr_assert_null(f);
  cr_assert_eq(weft_procpool_map_ex(pool, in, 3, NULL, &f), 0); /* 2 + 1 */
  wait_for(loop, f);
  const weft_procpool_results *r = weft_future_value(f);
  cr_assert_eq(r->failed, 0);
  cr_assert_str_eq(r->items[2].data, "C");
  weft_future_unref(f);
  close_and_wait(loop, pool);
  th_loop_finish(loop);
  cr_assert_eq(count_fds(), fds);
}

/* ---- allocation failures ---------------------------------------------- */

typedef struct counted {
  bool ordered;
  size_t calls, enomem;
  unsigned char hit[5];
} counted;

static void on_counted(size_t i, const weft_procpool_result *r, void *arg) {
  counted *c = arg;
  cr_assert_lt(i, sizeof c->hit);
  c->hit[i]++;
  c->calls++;
  c->enomem += r->status == -ENOMEM;
}

/* A map alone on a pool (nothing else to wake it), with on_result. */
static int on_result_round(weft_loop *loop, void *arg) {
  counted *c = arg;
  *c = (counted){.ordered = c->ordered};
  weft_procpool *pool;
  int err = pool_try(loop, (weft_procpool_options){.workers = 1}, &pool);
  weft_future *m = NULL;
  weft_buf in[5] = {weft_buf_init("a", 1), weft_buf_init("fail", 4),
                    weft_buf_init("c", 1), weft_buf_init("d", 1),
                    weft_buf_init("e", 1)};
  weft_procpool_map_options mo = {
      .chunksize = 2, .on_result = on_counted, .arg = c, .ordered = c->ordered};
  if (err == 0) err = weft_procpool_map_ex(pool, in, 5, &mo, &m);
  if (m != NULL) {
    wait_for(loop, m);
    cr_assert_eq(weft_future_get_state(m), WEFT_FUTURE_FULFILLED);
    const weft_procpool_results *r = weft_future_value(m);
    for (int i = 0; i < 5; i++)
      if (r->items[i].status == -ENOMEM || r->items[i].status == WEFT_EWORKER)
        err = -ENOMEM; /* a reply that could not be stored or read */
    if (err == 0) cr_assert_str_eq(r->items[4].data, "E");
    weft_future_unref(m);
  }
  if (pool != NULL) weft_procpool_close(pool, NULL, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (m != NULL) { /* every item delivered once, even out of memory */
    cr_assert_eq(c->calls, 5);
    for (int i = 0; i < 5; i++)
      cr_assert_eq(c->hit[i], 1, "item %d delivered %d times", i, c->hit[i]);
  }
  return err == WEFT_EWORKER ? -ENOMEM : err;
}

Test(procpool_map, on_result_allocation_failures_are_clean, .timeout = 120) {
  int fds = count_fds();
  counted c = {.ordered = false};
  th_alloc_sweep_run(
      &(th_sweep){.op = on_result_round, .arg = &c, .max_rounds = 400});
  c.ordered = true;
  th_alloc_sweep_run(
      &(th_sweep){.op = on_result_round, .arg = &c, .max_rounds = 400});
  cr_assert_eq(count_fds(), fds);
}

/* An allocator that fails everything while `starving`. */
static bool starving;
static void *s_malloc(size_t n, void *ctx) {
  (void)ctx;
  return starving ? NULL : malloc(n);
}
static void *s_realloc(void *p, size_t n, void *ctx) {
  (void)ctx;
  return starving ? NULL : realloc(p, n);
}
static void s_free(void *p, void *ctx) {
  (void)ctx;
  free(p);
}
static void noop(void *arg) { ++*(size_t *)arg; }

/* The pool's close drops a queued map's items while no memory is left:
 * not even the loop's call_soon queue can grow. The items are delivered
 * from the close itself (each once), and the map is freed. */
Test(procpool_map, dropped_items_are_delivered_when_call_soon_cannot_grow,
     .timeout = 30) {
  weft_allocator a = {s_malloc, s_realloc, s_free, NULL};
  cr_assert_eq(weft_set_allocator(&a), 0);
  int fds = count_fds();
  weft_loop *loop = th_loop();
  weft_procpool *pool = pool_n(loop, 1);
  weft_future *h = submit(pool, "hang"); /* keeps the map queued */
  counted c = {.ordered = true};
  weft_buf in[2] = {weft_buf_init("a", 1), weft_buf_init("b", 1)};
  weft_procpool_map_options mo = {
      .on_result = on_counted, .arg = &c, .ordered = true};
  weft_future *m;
  cr_assert_eq(weft_procpool_map_ex(pool, in, 2, &mo, &m), 0);
  size_t ran = 0, posted = 0;
  starving = true;
  while (weft_call_soon(loop, noop, &ran) == 0) /* until the queue is full */
    posted++;
  cr_assert_eq(weft_procpool_close(pool, NULL, NULL), 0);
  starving = false;
  cr_assert_eq(c.calls, 2); /* during the close: no queue to defer them */
  cr_assert_eq(c.hit[0], 1);
  cr_assert_eq(c.hit[1], 1);
  cr_assert_eq(weft_future_get_state(m), WEFT_FUTURE_FULFILLED);
  const weft_procpool_results *r = weft_future_value(m);
  cr_assert_eq(r->failed, 2); /* -ECANCELED, or -ENOMEM where not stored */
  weft_future_unref(m);
  cr_assert_eq(weft_procpool_terminate(pool, NULL, NULL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(ran, posted);
  cr_assert_eq(weft_future_get_state(h), WEFT_FUTURE_CANCELLED);
  weft_future_unref(h);
  cr_assert_eq(c.calls, 2);
  th_loop_finish(loop);
  cr_assert_eq(count_fds(), fds);
  cr_assert_eq(weft_set_allocator(NULL), 0);
}
