/* Child processes: spawn /bin/true with its stdout on a pipe, read the pipe
 * to end of file and wait for the exit, then the next one: 1,000 sequential
 * spawns, in spawns per second.
 *
 * weft: weft_spawn() (posix_spawn, a pidfd per child) with a
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
 * heap faults until the child has exec'ed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
static const bench_group groups[] = {
    {"spawn", metrics, BENCH_LEN(metrics), impls, BENCH_LEN(impls)},
    {"spawn_big", big_metrics, BENCH_LEN(big_metrics), big_impls,
     BENCH_LEN(big_impls)}};

int main(int argc, char **argv) {
  n_spawns = bench_n(1000, 100);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
