/* Deferred callbacks: N empty callbacks, weft's call_soon against how an
 * expert user of raw libev or libuv gets the same done.
 *
 * repost 1000 callbacks pending at all times, each run N/1000 times: the
 *        same shape for all three.
 *        weft:  1000 weft_call_soon() posts; each callback posts itself
 *               again until it has run N/1000 times.
 *        libev, libuv: neither has a callback queue; their idiom is a set of
 *        idle watchers/handles, each invoked once per loop iteration: 1000
 *        of them, each run N/1000 times, then stopping itself.
 * distinct  weft alone: N distinct weft_call_soon() posts queued up front,
 *        then weft_loop_run() (the peers have nothing that queues N
 *        callbacks; 1000 watchers run N/1000 times is the repost shape).
 *        Each impl runs its workload once untimed on the same loop first,
 *        so that queues and arrays have reached their working size (steady
 *        state: the figure is not the first fill's allocation).
 * chain  each callback posts the next, N links.
 *        weft:  weft_call_soon() from the callback.
 *        libev: ev_feed_event() on the running watcher from its callback
 *               (libev runs fed events in the same invoke pass).
 *        libuv: one uv_idle handle, one callback per loop iteration (how
 *               libuv users defer work to "the next tick").
 * Every callback counts; the total must be exactly N. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

#define WIDTH 1000 /* idle watchers/handles for the peers' batch */

static size_t n_calls;
static size_t ran;

static double throughput(double t0) {
  return (double)n_calls / (bench_wall() - t0);
}

static void check_ran(const char *what) {
  BENCH_CHECK(ran == n_calls, "%s: %zu of %zu callbacks ran", what, ran,
              n_calls);
}

/* ---- weft --------------------------------------------------------------- */

static void on_weft_batch(void *arg) {
  (void)arg;
  ran++;
}

typedef struct weft_worker {
  weft_loop *loop;
  size_t left;
} weft_worker;

static void on_weft_repost(void *arg) {
  weft_worker *k = arg;
  ran++;
  if (--k->left != 0 && weft_call_soon(k->loop, on_weft_repost, k) != 0)
    bench_fail("weft_call_soon repost");
}

static void weft_repost_once(weft_loop *loop, weft_worker *k) {
  ran = 0;
  for (size_t i = 0; i < WIDTH; i++) {
    k[i] = (weft_worker){loop, n_calls / WIDTH};
    if (weft_call_soon(loop, on_weft_repost, &k[i]) != 0)
      bench_fail("weft_call_soon %zu", i);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  check_ran("weft repost");
}

static void weft_batch_once(weft_loop *loop) {
  ran = 0;
  for (size_t i = 0; i < n_calls; i++)
    if (weft_call_soon(loop, on_weft_batch, NULL) != 0)
      bench_fail("weft_call_soon %zu", i);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  check_ran("weft batch");
}

static void on_weft_chain(void *arg) {
  if (++ran < n_calls && weft_call_soon(arg, on_weft_chain, arg) != 0)
    bench_fail("weft_call_soon in chain");
}

static void weft_free(weft_loop *loop) {
  BENCH_CHECK(weft_loop_free(loop) == 0, "weft_loop_free");
  BENCH_CHECK(weft_alloc_live() == 0, "weft leaked");
}

static void run_weft_batch(double *v, void *arg) {
  (void)arg;
  weft_loop *loop;
  BENCH_CHECK(weft_loop_new(&loop, NULL) == 0, "weft_loop_new");
  weft_batch_once(loop); /* warm-up: the ring grows to N once */
  double t0 = bench_wall();
  weft_batch_once(loop);
  v[0] = throughput(t0);
  weft_free(loop);
}

static void run_weft_repost(double *v, void *arg) {
  (void)arg;
  weft_loop *loop;
  BENCH_CHECK(weft_loop_new(&loop, NULL) == 0, "weft_loop_new");
  weft_worker k[WIDTH];
  weft_repost_once(loop, k); /* warm-up, as the peers' */
  double t0 = bench_wall();
  weft_repost_once(loop, k);
  v[0] = throughput(t0);
  weft_free(loop);
}

static void run_weft_chain(double *v, void *arg) {
  (void)arg;
  weft_loop *loop;
  BENCH_CHECK(weft_loop_new(&loop, NULL) == 0, "weft_loop_new");
  ran = 0;
  double t0 = bench_wall();
  BENCH_CHECK(weft_call_soon(loop, on_weft_chain, loop) == 0, "call_soon");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  v[0] = throughput(t0);
  check_ran("weft chain");
  weft_free(loop);
}

/* ---- raw libev ------------------------------------------------------------
 */

typedef struct ev_worker {
  ev_idle w;
  size_t left;
} ev_worker;

static void on_ev_idle(struct ev_loop *loop, ev_idle *w, int revents) {
  (void)revents;
  ev_worker *k = (ev_worker *)w;
  ran++;
  if (--k->left == 0) ev_idle_stop(loop, w);
}

static void ev_batch_once(struct ev_loop *loop, ev_worker *k) {
  ran = 0;
  for (size_t i = 0; i < WIDTH; i++) {
    k[i].left = n_calls / WIDTH;
    ev_idle_start(loop, &k[i].w);
  }
  ev_run(loop, 0);
  check_ran("libev batch");
}

static void on_ev_feed(struct ev_loop *loop, ev_idle *w, int revents) {
  if (++ran < n_calls) ev_feed_event(loop, w, revents);
}

static void run_ev_batch(double *v, void *arg) {
  (void)arg;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  BENCH_CHECK(loop != NULL, "ev_loop_new");
  ev_worker k[WIDTH];
  for (size_t i = 0; i < WIDTH; i++)
    ev_idle_init(&k[i].w, on_ev_idle);
  ev_batch_once(loop, k);
  double t0 = bench_wall();
  ev_batch_once(loop, k);
  v[0] = throughput(t0);
  ev_loop_destroy(loop);
}

static void run_ev_chain(double *v, void *arg) {
  (void)arg;
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  BENCH_CHECK(loop != NULL, "ev_loop_new");
  ev_idle w; /* never started: it only carries the fed events */
  ev_idle_init(&w, on_ev_feed);
  ran = 0;
  double t0 = bench_wall();
  ev_feed_event(loop, &w, EV_CUSTOM);
  ev_run(loop, 0);
  v[0] = throughput(t0);
  check_ran("libev chain");
  ev_loop_destroy(loop);
}

/* ---- libuv ------------------------------------------------------------------
 */

typedef struct uv_worker {
  uv_idle_t h;
  size_t left;
} uv_worker;

static void on_uv_idle(uv_idle_t *h) {
  uv_worker *k = (uv_worker *)h;
  ran++;
  if (--k->left == 0) uv_idle_stop(h);
}

static void uv_batch_once(uv_loop_t *loop, uv_worker *k, size_t width) {
  ran = 0;
  for (size_t i = 0; i < width; i++) {
    k[i].left = n_calls / width;
    uv_idle_start(&k[i].h, on_uv_idle);
  }
  uv_run(loop, UV_RUN_DEFAULT);
}

static void uv_finish(uv_loop_t *loop, uv_worker *k, size_t width) {
  for (size_t i = 0; i < width; i++)
    uv_close((uv_handle_t *)&k[i].h, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  BENCH_CHECK(uv_loop_close(loop) == 0, "uv_loop_close: handles left");
}

static void run_uv(double *v, size_t width, bool warm) {
  uv_loop_t loop;
  BENCH_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
  uv_worker k[WIDTH];
  for (size_t i = 0; i < width; i++)
    uv_idle_init(&loop, &k[i].h);
  if (warm) uv_batch_once(&loop, k, width);
  double t0 = bench_wall();
  uv_batch_once(&loop, k, width);
  v[0] = throughput(t0);
  check_ran(width == 1 ? "libuv chain" : "libuv batch");
  uv_finish(&loop, k, width);
}

static void run_uv_batch(double *v, void *arg) {
  (void)arg;
  run_uv(v, WIDTH, true);
}

static void run_uv_chain(double *v, void *arg) {
  (void)arg;
  run_uv(v, 1, false);
}

/* ---- groups ---------------------------------------------------------------
 */

int main(int argc, char **argv) {
  n_calls = bench_n(10000000, 1000000);
  const char *size = bench_quick() ? "1m" : "10m";
  static char repost_name[64], distinct_name[64], chain_name[64];
  snprintf(repost_name, sizeof repost_name, "callbacks_%s_repost", size);
  snprintf(distinct_name, sizeof distinct_name, "callbacks_%s_distinct", size);
  snprintf(chain_name, sizeof chain_name, "callbacks_%s_chain", size);
  const bench_metric repost_m[] = {{repost_name, "ops/s", true}};
  const bench_metric distinct_m[] = {{distinct_name, "ops/s", true}};
  const bench_metric chain_m[] = {{chain_name, "ops/s", true}};
  const bench_impl repost_i[] = {{"weft", run_weft_repost, NULL},
                                 {"libuv", run_uv_batch, NULL},
                                 {"libev", run_ev_batch, NULL}};
  const bench_impl distinct_i[] = {{"weft", run_weft_batch, NULL}};
  const bench_impl chain_i[] = {{"weft", run_weft_chain, NULL},
                                {"libuv", run_uv_chain, NULL},
                                {"libev", run_ev_chain, NULL}};
  const bench_group groups[] = {
      {"repost", repost_m, 1, repost_i, BENCH_LEN(repost_i)},
      {"distinct", distinct_m, 1, distinct_i, BENCH_LEN(distinct_i)},
      {"chain", chain_m, 1, chain_i, BENCH_LEN(chain_i)},
  };
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
