/* Child processes: spawn /bin/true with its stdout on a pipe, read the pipe
 * to end of file and wait for the exit, then the next one: 1,000 sequential
 * spawns, in spawns per second.
 *
 * weft: weft_spawn() (clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) on a stack
 * the loop keeps, a pidfd per child) with a
 * WEFT_STDIO_PIPE stdout read by weft_stream_read_start(). libuv:
 * uv_spawn() with UV_CREATE_PIPE | UV_WRITABLE_PIPE stdout read by
 * uv_read_start(), the way a libuv user writes it. In both, a spawn is done
 * once the exit callback ran, the pipe reached EOF and both handles have
 * closed; the next spawn starts from the last close callback. Verified:
 * every child exited with status 0 and every pipe reached EOF.
 *
 * Two figures: spawns per second (wall clock: the child's own run, mostly
 * exec and the dynamic loader, dominates and is the same for both), and
 * the parent's CPU time per spawn (CLOCK_PROCESS_CPUTIME_ID, which leaves
 * the children out): what starting and watching a child costs the
 * program, where fork()'s page-table copy shows.
 *
 * Groups: "spawn" as above; "spawn_big" the same (200 spawns) with 256 MiB
 * of touched heap in small pages in the parent (a server's size), where
 * fork has 65,536 page-table entries to copy and every later write to the
 * heap faults until the child has exec'ed.
 *
 * Group "map": 100,000 tiny jobs (an 8-byte number in, its square out) on
 * 4 worker processes with a chunksize of 2,500, timed from the submit to
 * the last result (the pool is started and warmed up before the clock
 * starts): weft_procpool_map_ex(), whose workers are this program in
 * worker mode, against Python's multiprocessing.Pool.map and
 * concurrent.futures.ProcessPoolExecutor.map with the same workers and
 * chunksize (python3, stdlib only; the script is below, run with -c).
 * Each run checks every result. Second figure: the parent's CPU time per
 * job during the map (CLOCK_PROCESS_CPUTIME_ID; Python's
 * time.process_time() in its parent), the serial part that bounds the
 * wall clock once the workers run in parallel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

static size_t n_spawns;
static char *const true_argv[] = {"/bin/true", NULL};

/* ---- weft
 * -------------------------------------------------------------------- */

typedef struct wrun {
  weft_loop *loop;
  weft_process proc;
  weft_pipe out;
  size_t started, exits, eofs, closes;
  int bad;
} wrun;

static void w_next(wrun *r);

static void w_closed(weft_handle *h) {
  wrun *r = h->data;
  if (++r->closes % 2 == 0) w_next(r);
}

static void w_maybe_done(wrun *r) {
  if (r->exits == r->started && r->eofs == r->started) {
    weft_close(&r->proc.base, w_closed);
    weft_close(&r->out.stream.base, w_closed);
  }
}

static void w_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  wrun *r = s->base.data;
  if (n >= 0) return;
  r->bad += n != WEFT_EOF;
  r->eofs++;
  w_maybe_done(r);
}

static void w_exit(weft_process *p, int64_t status, int sig) {
  wrun *r = p->base.data;
  r->bad += status != 0 || sig != 0;
  r->exits++;
  w_maybe_done(r);
}

static void w_next(wrun *r) {
  if (r->started == n_spawns) return;
  weft_pipe_init(r->loop, &r->out);
  weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, &r->out}};
  weft_process_options o = {
      .argv = true_argv, .stdio = st, .stdio_count = 2, .exit_cb = w_exit};
  r->proc.base.data = r->out.stream.base.data = r;
  BENCH_CHECK(weft_spawn(r->loop, &r->proc, &o) == 0, "weft_spawn");
  BENCH_CHECK(weft_stream_read_start(&r->out.stream, NULL, w_read) == 0,
              "read");
  r->started++;
}

static void run_weft(double *v, void *arg) {
  (void)arg;
  wrun r = {0};
  BENCH_CHECK(weft_loop_new(&r.loop, NULL) == 0, "weft_loop_new");
  double t0 = bench_wall(), c0 = bench_cpu();
  w_next(&r);
  weft_loop_run(r.loop, WEFT_RUN_DEFAULT);
  double secs = bench_wall() - t0, cpu = bench_cpu() - c0;
  BENCH_CHECK(r.exits == n_spawns && r.eofs == n_spawns && r.bad == 0,
              "weft: %zu exits, %zu eofs, %d bad", r.exits, r.eofs, r.bad);
  v[0] = (double)n_spawns / secs;
  v[1] = cpu * 1e6 / (double)n_spawns;
  BENCH_CHECK(weft_loop_free(r.loop) == 0, "weft_loop_free");
  BENCH_CHECK(weft_alloc_live() == 0, "weft leaked");
}

/* ---- libuv
 * -------------------------------------------------------------------- */

typedef struct urun {
  uv_loop_t loop;
  uv_process_t proc;
  uv_pipe_t out;
  size_t started, exits, eofs, closes;
  int bad;
  char buf[65536];
} urun;

static void u_next(urun *r);

static void u_closed(uv_handle_t *h) {
  urun *r = h->data;
  if (++r->closes % 2 == 0) u_next(r);
}

static void u_maybe_done(urun *r) {
  if (r->exits == r->started && r->eofs == r->started) {
    uv_close((uv_handle_t *)&r->proc, u_closed);
    uv_close((uv_handle_t *)&r->out, u_closed);
  }
}

static void u_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  urun *r = h->data;
  *buf = uv_buf_init(r->buf, sizeof r->buf);
}

static void u_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  urun *r = s->data;
  if (n >= 0) return;
  r->bad += n != UV_EOF;
  r->eofs++;
  uv_read_stop(s);
  u_maybe_done(r);
}

static void u_exit(uv_process_t *p, int64_t status, int sig) {
  urun *r = p->data;
  r->bad += status != 0 || sig != 0;
  r->exits++;
  u_maybe_done(r);
}

static void u_next(urun *r) {
  if (r->started == n_spawns) return;
  uv_pipe_init(&r->loop, &r->out, 0);
  uv_stdio_container_t st[2] = {{.flags = UV_IGNORE},
                                {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
                                 .data.stream = (uv_stream_t *)&r->out}};
  uv_process_options_t o = {.file = true_argv[0],
                            .args = (char **)true_argv,
                            .stdio = st,
                            .stdio_count = 2,
                            .exit_cb = u_exit};
  r->proc.data = r->out.data = r;
  BENCH_CHECK(uv_spawn(&r->loop, &r->proc, &o) == 0, "uv_spawn");
  BENCH_CHECK(uv_read_start((uv_stream_t *)&r->out, u_alloc, u_read) == 0,
              "read");
  r->started++;
}

static void run_uv(double *v, void *arg) {
  (void)arg;
  urun *r = calloc(1, sizeof *r);
  BENCH_CHECK(r != NULL && uv_loop_init(&r->loop) == 0, "uv_loop_init");
  double t0 = bench_wall(), c0 = bench_cpu();
  u_next(r);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  double secs = bench_wall() - t0, cpu = bench_cpu() - c0;
  BENCH_CHECK(r->exits == n_spawns && r->eofs == n_spawns && r->bad == 0,
              "libuv: %zu exits, %zu eofs, %d bad", r->exits, r->eofs, r->bad);
  v[0] = (double)n_spawns / secs;
  v[1] = cpu * 1e6 / (double)n_spawns;
  BENCH_CHECK(uv_loop_close(&r->loop) == 0, "uv_loop_close");
  free(r);
}

static const bench_metric metrics[] = {
    {"spawn_true_read_eof", "spawns/s", true},
    {"spawn_true_parent_cpu", "us/spawn", false}};
static const bench_metric big_metrics[] = {
    {"spawn_true_big_parent_read_eof", "spawns/s", true},
    {"spawn_true_big_parent_cpu", "us/spawn", false}};
static const bench_impl impls[] = {{"weft", run_weft, NULL},
                                   {"libuv", run_uv, NULL}};

/* "spawn_big": the parent holds touched heap while spawning (allocated
 * and touched before the clock starts, freed after). */
static void with_ballast(bench_fn fn, double *v) {
  size_t size = bench_n((size_t)256 << 20, (size_t)32 << 20);
  char *ballast = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  BENCH_CHECK(ballast != MAP_FAILED, "ballast");
  /* small pages, as a fragmented server heap has: fork copies one entry
   * per 4 KiB page */
  madvise(ballast, size, MADV_NOHUGEPAGE);
  memset(ballast, 1, size);
  size_t saved = n_spawns;
  n_spawns = bench_n(200, 20); /* fork gets slow here: fewer spawns */
  fn(v, NULL);
  n_spawns = saved;
  munmap(ballast, size);
}

static void run_weft_big(double *v, void *arg) {
  (void)arg;
  with_ballast(run_weft, v);
}

static void run_uv_big(double *v, void *arg) {
  (void)arg;
  with_ballast(run_uv, v);
}

static const bench_impl big_impls[] = {{"weft", run_weft_big, NULL},
                                       {"libuv", run_uv_big, NULL}};
/* ---- map: the process pool against Python's
 * ------------------------------------------------------------------ */

enum { MAP_WORKERS = 4, MAP_CHUNK = 2500 };
static size_t n_map;

/* The worker's job: an 8-byte number in, its square out. */
static int square(const void *in, size_t len, weft_buf *out, void *arg) {
  (void)arg;
  uint64_t x;
  if (len != sizeof x) return -EINVAL;
  memcpy(&x, in, sizeof x);
  x *= x;
  out->base = malloc(sizeof x);
  if (out->base == NULL) return -ENOMEM;
  memcpy(out->base, &x, sizeof x);
  out->len = sizeof x;
  return 0;
}

static void map_wait(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  BENCH_CHECK(weft_future_get_state(f) == WEFT_FUTURE_FULFILLED, "map: %s",
              weft_err_name(weft_future_error(f)));
}

static void map_once(weft_procpool *pool, weft_loop *loop, uint64_t *nums,
                     weft_buf *in, size_t n, double *secs, double *cpu) {
  weft_procpool_map_options o = {.chunksize = MAP_CHUNK};
  weft_future *f;
  double t0 = bench_wall(), c0 = bench_cpu();
  BENCH_CHECK(weft_procpool_map_ex(pool, in, n, &o, &f) == 0, "map_ex");
  map_wait(loop, f);
  *secs = bench_wall() - t0;
  *cpu = bench_cpu() - c0;
  const weft_procpool_results *r = weft_future_value(f);
  BENCH_CHECK(r->n == n && r->failed == 0, "map: %zu failed", r->failed);
  for (size_t i = 0; i < n; i++) {
    uint64_t y;
    BENCH_CHECK(r->items[i].len == sizeof y, "item %zu: %zu bytes", i,
                r->items[i].len);
    memcpy(&y, r->items[i].data, sizeof y);
    BENCH_CHECK(y == nums[i] * nums[i], "item %zu: wrong square", i);
  }
  weft_future_unref(f);
}

static void run_weft_map(double *v, void *arg) {
  (void)arg;
  static char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  BENCH_CHECK(len > 0, "readlink");
  self[len] = '\0';
  char *argv[] = {self, NULL};
  char *env[] = {"WEFT_BENCH_WORKER=1", NULL};
  weft_loop *loop;
  BENCH_CHECK(weft_loop_new(&loop, NULL) == 0, "weft_loop_new");
  weft_procpool_options o = {.argv = argv, .env = env, .workers = MAP_WORKERS};
  weft_procpool *pool;
  BENCH_CHECK(weft_procpool_new(loop, &o, &pool) == 0, "procpool_new");
  uint64_t *nums = malloc(n_map * sizeof *nums);
  weft_buf *in = malloc(n_map * sizeof *in);
  BENCH_CHECK(nums != NULL && in != NULL, "malloc");
  for (size_t i = 0; i < n_map; i++) {
    nums[i] = i;
    in[i] = weft_buf_init((char *)&nums[i], sizeof nums[i]);
  }
  double secs, cpu;
  map_once(pool, loop, nums, in, 100, &secs, &cpu); /* warm-up: started */
  map_once(pool, loop, nums, in, n_map, &secs, &cpu);
  v[0] = (double)n_map / secs;
  v[1] = cpu / (double)n_map * 1e9;
  BENCH_CHECK(weft_procpool_close(pool, NULL, NULL) == 0, "close");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  free(nums);
  free(in);
  BENCH_CHECK(weft_loop_free(loop) == 0, "weft_loop_free");
  BENCH_CHECK(weft_alloc_live() == 0, "weft leaked");
}

/* The peers: argv[1] "pool" or "executor", then n, workers, chunksize;
 * prints the map's seconds and the parent's CPU seconds. The pool is made
 * and warmed up first. */
static const char py_map[] =
    "import sys, time\n"
    "import multiprocessing as mp, concurrent.futures as cf\n"
    "def sq(x): return x * x\n"
    "if __name__ == '__main__':\n"
    "    kind, n, w, cs = sys.argv[1], *map(int, sys.argv[2:5])\n"
    "    p = mp.Pool(w) if kind == 'pool' else cf.ProcessPoolExecutor(w)\n"
    "    with p:\n"
    "        list(p.map(sq, range(100), chunksize=10))\n"
    "        t, c = time.perf_counter(), time.process_time()\n"
    "        r = list(p.map(sq, range(n), chunksize=cs))\n"
    "        t, c = time.perf_counter() - t, time.process_time() - c\n"
    "    assert r == [x * x for x in range(n)]\n"
    "    print(t, c)\n";

static void run_py_map(double *v, void *arg) {
  const char *kind = arg;
  char path[] = "/tmp/weft-bench-map-XXXXXX.py";
  int fd = mkstemps(path, 3);
  BENCH_CHECK(fd >= 0, "mkstemps");
  BENCH_CHECK(write(fd, py_map, sizeof py_map - 1) ==
                  (ssize_t)sizeof py_map - 1,
              "write");
  close(fd);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "python3 %s %s %zu %d %d", path, kind, n_map,
           MAP_WORKERS, MAP_CHUNK);
  FILE *p = popen(cmd, "r");
  double secs = 0, cpu = 0;
  int got = p ? fscanf(p, "%lf %lf", &secs, &cpu) : 0;
  int st = p ? pclose(p) : -1;
  unlink(path);
  if (p == NULL || got != 2 || st != 0 || secs <= 0) {
    bench_skip("python3 %s map did not run (status %d)", kind, st);
    return;
  }
  v[0] = (double)n_map / secs;
  v[1] = cpu / (double)n_map * 1e9;
}

static const bench_metric map_metrics[] = {
    {"procpool_map_100k_tiny_4w", "jobs/s", true},
    {"procpool_map_parent_cpu", "ns/job", false}};
static const bench_impl map_impls[] = {
    {"weft", run_weft_map, NULL},
    {"py-mp-pool", run_py_map, "pool"},
    {"py-cf-executor", run_py_map, "executor"}};

static const bench_group groups[] = {
    {"spawn", metrics, BENCH_LEN(metrics), impls, BENCH_LEN(impls)},
    {"spawn_big", big_metrics, BENCH_LEN(big_metrics), big_impls,
     BENCH_LEN(big_impls)},
    {"map", map_metrics, BENCH_LEN(map_metrics), map_impls,
     BENCH_LEN(map_impls)}};

int main(int argc, char **argv) {
  if (getenv("WEFT_BENCH_WORKER") != NULL)
    return weft_procpool_worker_main(square, NULL) == 0 ? 0 : 1;
  n_spawns = bench_n(1000, 100);
  n_map = bench_n(100000, 10000);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
