/* Futures: weft's futures against Node.js promises on the same workloads.
 *
 * chain   a chain of N then() on a resolved future, built, then drained;
 *         reactions per second (N = 1M).
 * create  N x (create + one continuation + resolve), drained every 1000;
 *         also weft's allocations per settled future in steady state (a
 *         counting allocator) and bytes per future.
 * all     all() over N = 100k futures resolved after the call.
 * queue   N = 100k put/get round trips between two futures-driven tasks
 *         through two bounded queues of capacity 1.
 *
 * The Node twins are bench/node/futures.js, spawned once per repetition
 * (`node futures.js WORKLOAD N`, one JSON line back), so both sides run
 * alternately in the same run. Each side runs its workload once untimed
 * first (weft on the same loop: warm free lists; node: a warm JIT). */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#include "support/bench.h"

static void ok(int err, const char *what) {
  if (err != 0) bench_fail("%s: %s", what, weft_strerror(err));
}

static weft_loop *new_loop(void) {
  weft_loop *loop;
  ok(weft_loop_new(&loop, NULL), "weft_loop_new");
  return loop;
}

static void free_loop(weft_loop *loop) {
  ok(weft_loop_free(loop), "weft_loop_free");
}

/* ---- the Node side ------------------------------------------------------ */

static char node_script[PATH_MAX];

static const char *script_path(void) {
  if (node_script[0] != '\0') return node_script;
  char exe[PATH_MAX - 64]; /* leaves room for the suffix below */
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL) *slash = '\0';
    snprintf(node_script, sizeof node_script, "%s/../../bench/node/futures.js",
             exe);
    if (access(node_script, R_OK) == 0) return node_script;
  }
  snprintf(node_script, sizeof node_script, "bench/node/futures.js");
  return node_script;
}

typedef struct node_work {
  const char *name;
  size_t n;
} node_work;

/* Runs one workload in node and returns its "value" (NaN, reported as
 * skipped, if node is not installed: scripts/deps.sh bench installs it). */
static double run_node(const char *work, size_t n) {
  static int have_node = -1;
  if (have_node < 0) have_node = system("command -v node >/dev/null 2>&1") == 0;
  if (!have_node) {
    bench_skip("node not found (Debian nodejs; scripts/deps.sh bench)");
    return NAN;
  }
  char cmd[PATH_MAX + 64];
  snprintf(cmd, sizeof cmd, "node '%s' %s %zu", script_path(), work, n);
  FILE *p = popen(cmd, "r");
  if (p == NULL) return NAN;
  char line[512];
  double v = NAN;
  while (fgets(line, sizeof line, p) != NULL) {
    char *at = strstr(line, "\"value\":");
    if (at != NULL) v = strtod(at + 8, NULL);
  }
  int status = pclose(p);
  if (status != 0 && !isnan(v))
    bench_fail("node %s exited with %d", work, status);
  return v;
}

static void node_impl(double *v, void *arg) {
  node_work *w = arg;
  v[0] = run_node(w->name, w->n);
}

/* ---- (a) then-chain -------------------------------------------------- */

static size_t n_chain;

static int inc(weft_future *in, weft_future *out, void *arg) {
  (void)arg;
  return weft_future_resolve_i64(out, weft_future_value_i64(in) + 1);
}

static double chain_once(weft_loop *loop) {
  double t0 = bench_wall();
  weft_future *d;
  ok(weft_future_new(loop, &d), "new");
  ok(weft_future_resolve_i64(d, 0), "resolve");
  for (size_t i = 0; i < n_chain; i++) {
    weft_future *next;
    ok(weft_future_then(d, inc, NULL, &next), "then");
    weft_future_unref(d);
    d = next;
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  double t = bench_wall() - t0;
  BENCH_CHECK(weft_future_value_i64(d) == (int64_t)n_chain,
              "chain ended at %lld", (long long)weft_future_value_i64(d));
  weft_future_unref(d);
  return (double)n_chain / t;
}

static void weft_chain(double *v, void *arg) {
  (void)arg;
  weft_loop *loop = new_loop();
  chain_once(loop);
  v[0] = chain_once(loop);
  free_loop(loop);
}

/* ---- (b) create + resolve + one continuation ---------------------------- */

static size_t n_create;
static size_t ran;
static atomic_size_t allocs;

static void *count_malloc(size_t n, void *ctx) {
  (void)ctx;
  atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
  return malloc(n);
}
static void *count_realloc(void *p, size_t n, void *ctx) {
  (void)ctx;
  atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
  return realloc(p, n);
}
static void count_free(void *p, void *ctx) {
  (void)ctx;
  free(p);
}

static int count_cb(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  (void)arg;
  ran++;
  return 0;
}

static double create_once(weft_loop *loop) {
  ran = 0;
  double t0 = bench_wall();
  for (size_t done = 0; done < n_create; done += 1000) {
    for (size_t i = 0; i < 1000; i++) {
      weft_future *f;
      ok(weft_future_new(loop, &f), "new");
      ok(weft_future_then(f, count_cb, NULL, NULL), "then");
      ok(weft_future_resolve_i64(f, (int64_t)i), "resolve");
      weft_future_unref(f);
    }
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  double t = bench_wall() - t0;
  BENCH_CHECK(ran == n_create, "create: %zu of %zu continuations ran", ran,
              n_create);
  return (double)n_create / t;
}

static void weft_create(double *v, void *arg) {
  (void)arg;
  weft_allocator a = {count_malloc, count_realloc, count_free, NULL};
  ok(weft_set_allocator(&a), "weft_set_allocator");
  weft_loop *loop = new_loop();
  create_once(loop);
  size_t before = atomic_load(&allocs);
  v[0] = create_once(loop);
  v[1] = (double)(atomic_load(&allocs) - before) / (double)n_create;
  v[2] = (double)weft_future_size();
  free_loop(loop);
  ok(weft_set_allocator(NULL), "restore allocator");
}

/* ---- (c) all over 100k ------------------------------------------------- */

static size_t n_all;

static double all_once(weft_loop *loop, weft_future **fs) {
  double t0 = bench_wall();
  for (size_t i = 0; i < n_all; i++)
    ok(weft_future_new(loop, &fs[i]), "new");
  weft_future *all;
  ok(weft_future_all(loop, fs, n_all, &all), "all");
  for (size_t i = 0; i < n_all; i++)
    ok(weft_future_resolve_i64(fs[i], (int64_t)i), "resolve");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  double t = bench_wall() - t0;
  BENCH_CHECK(weft_future_value_i64(all) == (int64_t)n_all, "all: wrong count");
  BENCH_CHECK(weft_future_value_i64(fs[n_all - 1]) == (int64_t)n_all - 1,
              "all: value");
  weft_future_unref(all);
  for (size_t i = 0; i < n_all; i++)
    weft_future_unref(fs[i]);
  return (double)n_all / t;
}

static void weft_all(double *v, void *arg) {
  (void)arg;
  weft_future **fs = malloc(n_all * sizeof *fs);
  if (fs == NULL) bench_fail("out of memory");
  weft_loop *loop = new_loop();
  all_once(loop, fs);
  v[0] = all_once(loop, fs);
  free_loop(loop);
  free(fs);
}

/* ---- (d) queue ping-pong ---------------------------------------------- */

typedef struct pingpong {
  weft_queue *ping, *pong;
  size_t n, sent, echoed;
  int64_t sum;
} pingpong;

static int a_put_done(weft_future *in, weft_future *out, void *arg);
static int b_got(weft_future *in, weft_future *out, void *arg);

static void then_or_fail(weft_future *f, weft_then_fn fn, void *arg) {
  ok(weft_future_then(f, fn, arg, NULL), "then");
  weft_future_unref(f);
}

static void a_send(pingpong *pp) {
  weft_future *f;
  ok(weft_queue_put(pp->ping, (void *)(intptr_t)(pp->sent + 1), &f), "put");
  then_or_fail(f, a_put_done, pp);
}

static int a_got(weft_future *in, weft_future *out, void *arg) {
  (void)out;
  pingpong *pp = arg;
  pp->sum += (intptr_t)weft_future_value(in);
  if (++pp->sent < pp->n) a_send(pp);
  return 0;
}

static int a_put_done(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  pingpong *pp = arg;
  weft_future *g;
  ok(weft_queue_get(pp->pong, &g), "get");
  then_or_fail(g, a_got, pp);
  return 0;
}

static void b_wait(pingpong *pp) {
  weft_future *g;
  ok(weft_queue_get(pp->ping, &g), "get");
  then_or_fail(g, b_got, pp);
}

static int b_put_done(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  pingpong *pp = arg;
  if (++pp->echoed < pp->n) b_wait(pp);
  return 0;
}

static int b_got(weft_future *in, weft_future *out, void *arg) {
  (void)out;
  pingpong *pp = arg;
  weft_future *f;
  ok(weft_queue_put(pp->pong, weft_future_value(in), &f), "put");
  then_or_fail(f, b_put_done, pp);
  return 0;
}

static size_t n_queue;

static double queue_once(weft_loop *loop) {
  pingpong pp = {NULL, NULL, n_queue, 0, 0, 0};
  ok(weft_queue_new(loop, 1, NULL, &pp.ping), "queue");
  ok(weft_queue_new(loop, 1, NULL, &pp.pong), "queue");
  double t0 = bench_wall();
  b_wait(&pp);
  a_send(&pp);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  double t = bench_wall() - t0;
  int64_t n = (int64_t)n_queue;
  BENCH_CHECK(pp.sum == n * (n + 1) / 2, "queue: sum %lld", (long long)pp.sum);
  ok(weft_queue_free(pp.ping), "queue_free");
  ok(weft_queue_free(pp.pong), "queue_free");
  return (double)n_queue / t;
}

static void weft_queue_bench(double *v, void *arg) {
  (void)arg;
  weft_loop *loop = new_loop();
  queue_once(loop);
  v[0] = queue_once(loop);
  free_loop(loop);
}

/* ---- groups ---------------------------------------------------------------
 */

static const bench_metric m_chain[] = {
    {"futures_then_chain_1m", "ops/s", true}};
static const bench_metric m_create[] = {
    {"futures_create_resolve_then_1m", "ops/s", true},
    {"futures_allocs_per_settled", "allocs/op", false},
    {"futures_bytes_per_future", "B", false}};
static const bench_metric m_all[] = {{"futures_all_100k", "ops/s", true}};
static const bench_metric m_queue[] = {
    {"futures_queue_pingpong", "ops/s", true}};

static node_work w_chain = {"chain", 0}, w_create = {"create", 0},
                 w_all = {"all", 0}, w_queue = {"queue", 0};

static const bench_impl i_chain[] = {{"weft", weft_chain, NULL},
                                     {"node", node_impl, &w_chain}};
static const bench_impl i_create[] = {{"weft", weft_create, NULL},
                                      {"node", node_impl, &w_create}};
static const bench_impl i_all[] = {{"weft", weft_all, NULL},
                                   {"node", node_impl, &w_all}};
static const bench_impl i_queue[] = {{"weft", weft_queue_bench, NULL},
                                     {"node", node_impl, &w_queue}};

#define GROUP(name, m, i)                                                      \
  { name, m, BENCH_LEN(m), i, BENCH_LEN(i) }
static const bench_group groups[] = {
    GROUP("chain", m_chain, i_chain), GROUP("create", m_create, i_create),
    GROUP("all", m_all, i_all), GROUP("queue", m_queue, i_queue)};

int main(int argc, char **argv) {
  w_chain.n = n_chain = bench_n(1000000, 10000);
  w_create.n = n_create = bench_n(1000000, 10000);
  w_all.n = n_all = bench_n(100000, 1000);
  w_queue.n = n_queue = bench_n(100000, 1000);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
