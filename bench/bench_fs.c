/* File I/O through the thread pool: weft's weft_fs_* against libuv's
 * uv_fs_* (the same number of threads: UV_THREADPOOL_SIZE = THREADS) and
 * plain blocking calls on one thread.
 *
 * stat_D      stat() of one file, D = 1, 4, 32 requests in flight: ops/s.
 * read_512m   a 512 MiB file (page cache warm) read in 64 KiB chunks with
 *             INFLIGHT chunks in flight (pread at distinct offsets): MB/s.
 *             plain: a read() loop on the loop thread.
 * files_10k   10,000 files of 4 KiB, each opened, read and closed, 64 files
 *             in flight: files/s. weft uses weft_fs_read_file() (open, read
 *             and close in one job, as a weft user would); libuv chains
 *             uv_fs_open -> uv_fs_read -> uv_fs_close; plain does the three
 *             calls in a loop.
 * Files live in a temporary directory under /tmp, removed at the end;
 * BENCH_QUICK=1 shrinks them. Every byte and every file is verified. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

#define THREADS 4
#define CHUNK (64 * 1024)
#define INFLIGHT 16
#define FILES_INFLIGHT 64
#define SMALL 4096

static char tmpdir[] = "/tmp/weft-bench-fs-XXXXXX";
static char big_path[128];
static size_t big_size, n_stat, n_files;

/* Shared by the state machines of both impls: what is left to do. */
static size_t issued, finished;
static uint64_t bytes;

/* ---- weft
 * -------------------------------------------------------------------- */

/* "weft" rows run on the default backend (io_uring where the kernel has
 * it), "weft-pool" rows force the pool (docs/fs.md "Backends"). */
static weft_fs_backend backend = WEFT_FS_BACKEND_AUTO;

static weft_loop *weft_new(void) {
  weft_loop_options o = {.pool_size = THREADS};
  weft_loop *loop = NULL;
  if (weft_loop_new(&loop, &o) != 0) bench_fail("weft_loop_new");
  if (weft_fs_set_backend(loop, backend) != 0) bench_fail("set_backend");
  return loop;
}

static void w_stat_cb(weft_fs_req *r) {
  if (r->result != 0 || r->statbuf.st_size != (off_t)big_size)
    bench_fail("weft stat");
  finished++;
  if (issued < n_stat) {
    issued++;
    if (weft_fs_stat(r->data, r, big_path, w_stat_cb) != 0)
      bench_fail("weft stat submit");
  }
}

static void weft_stat(double *v, void *arg) {
  size_t depth = (size_t)(uintptr_t)arg;
  weft_loop *loop = weft_new();
  weft_fs_req *r = calloc(depth, sizeof *r);
  issued = finished = 0;
  double t0 = bench_wall();
  for (size_t i = 0; i < depth; i++) {
    r[i].data = loop;
    issued++;
    if (weft_fs_stat(loop, &r[i], big_path, w_stat_cb) != 0)
      bench_fail("submit");
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  v[0] = (double)n_stat / (bench_wall() - t0);
  BENCH_CHECK(finished == n_stat, "weft stat %zu", finished);
  free(r);
  weft_loop_free(loop);
}

typedef struct w_chunk {
  weft_fs_req req;
  struct iovec iov;
  int fd;
  weft_loop *loop;
} w_chunk;

static void w_read_next(w_chunk *c);
static void w_read_cb(weft_fs_req *r) {
  w_chunk *c = (w_chunk *)r;
  if (r->result < 0) bench_fail("weft read %lld", (long long)r->result);
  bytes += (uint64_t)r->result;
  finished++;
  w_read_next(c);
}
static void w_read_next(w_chunk *c) {
  if (issued * CHUNK >= big_size) return;
  int64_t off = (int64_t)(issued++ * CHUNK);
  if (weft_fs_read(c->loop, &c->req, c->fd, &c->iov, 1, off, w_read_cb) != 0)
    bench_fail("weft read submit");
}

static void weft_read(double *v, void *arg) {
  (void)arg;
  weft_loop *loop = weft_new();
  int fd = open(big_path, O_RDONLY);
  w_chunk c[INFLIGHT];
  issued = finished = 0;
  bytes = 0;
  double t0 = bench_wall();
  for (int i = 0; i < INFLIGHT; i++) {
    c[i] = (w_chunk){.fd = fd, .loop = loop};
    c[i].iov = (struct iovec){malloc(CHUNK), CHUNK};
    w_read_next(&c[i]);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  v[0] = (double)bytes / 1e6 / (bench_wall() - t0);
  BENCH_CHECK(bytes == big_size, "weft read %llu", (unsigned long long)bytes);
  for (int i = 0; i < INFLIGHT; i++)
    free(c[i].iov.iov_base);
  close(fd);
  weft_loop_free(loop);
}

static void w_file_next(weft_loop *loop, weft_fs_req *r);
static void w_file_cb(weft_fs_req *r) {
  if (r->result != SMALL)
    bench_fail("weft read_file %lld", (long long)r->result);
  weft_fs_req_cleanup(r);
  finished++;
  w_file_next(r->data, r);
}
static void w_file_next(weft_loop *loop, weft_fs_req *r) {
  if (issued >= n_files) return;
  char p[160];
  snprintf(p, sizeof p, "%s/f%zu", tmpdir, issued++);
  r->data = loop;
  if (weft_fs_read_file(loop, r, p, w_file_cb) != 0)
    bench_fail("weft read_file");
}

static void weft_files(double *v, void *arg) {
  (void)arg;
  weft_loop *loop = weft_new();
  weft_fs_req r[FILES_INFLIGHT];
  issued = finished = 0;
  double t0 = bench_wall();
  for (int i = 0; i < FILES_INFLIGHT; i++)
    w_file_next(loop, &r[i]);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  v[0] = (double)n_files / (bench_wall() - t0);
  BENCH_CHECK(finished == n_files, "weft files %zu", finished);
  weft_loop_free(loop);
}

/* ---- libuv -----------------------------------------------------------------
 */

static void u_stat_cb(uv_fs_t *r) {
  if (r->result != 0 || r->statbuf.st_size != big_size) bench_fail("uv stat");
  uv_loop_t *loop = r->loop;
  uv_fs_req_cleanup(r);
  finished++;
  if (issued < n_stat) {
    issued++;
    uv_fs_stat(loop, r, big_path, u_stat_cb);
  }
}

static void uv_stat_bench(double *v, void *arg) {
  size_t depth = (size_t)(uintptr_t)arg;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_fs_t *r = calloc(depth, sizeof *r);
  issued = finished = 0;
  double t0 = bench_wall();
  for (size_t i = 0; i < depth; i++) {
    issued++;
    uv_fs_stat(&loop, &r[i], big_path, u_stat_cb);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  v[0] = (double)n_stat / (bench_wall() - t0);
  BENCH_CHECK(finished == n_stat, "uv stat %zu", finished);
  free(r);
  uv_loop_close(&loop);
}

typedef struct u_chunk {
  uv_fs_t req;
  uv_buf_t buf;
  int fd;
} u_chunk;

static void u_read_next(uv_loop_t *loop, u_chunk *c);
static void u_read_cb(uv_fs_t *r) {
  u_chunk *c = (u_chunk *)r;
  if (r->result < 0) bench_fail("uv read");
  bytes += (uint64_t)r->result;
  uv_loop_t *loop = r->loop;
  uv_fs_req_cleanup(r);
  u_read_next(loop, c);
}
static void u_read_next(uv_loop_t *loop, u_chunk *c) {
  if (issued * CHUNK >= big_size) return;
  int64_t off = (int64_t)(issued++ * CHUNK);
  uv_fs_read(loop, &c->req, c->fd, &c->buf, 1, off, u_read_cb);
}

static void uv_read_bench(double *v, void *arg) {
  (void)arg;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int fd = open(big_path, O_RDONLY);
  u_chunk c[INFLIGHT];
  issued = 0;
  bytes = 0;
  double t0 = bench_wall();
  for (int i = 0; i < INFLIGHT; i++) {
    c[i].fd = fd;
    c[i].buf = uv_buf_init(malloc(CHUNK), CHUNK);
    u_read_next(&loop, &c[i]);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  v[0] = (double)bytes / 1e6 / (bench_wall() - t0);
  BENCH_CHECK(bytes == big_size, "uv read %llu", (unsigned long long)bytes);
  for (int i = 0; i < INFLIGHT; i++)
    free(c[i].buf.base);
  close(fd);
  uv_loop_close(&loop);
}

typedef struct u_file {
  uv_fs_t req;
  uv_buf_t buf;
  char data[SMALL];
  uv_file fd;
} u_file;

static void u_file_next(uv_loop_t *loop, u_file *f);
static void u_close_cb(uv_fs_t *r) {
  u_file *f = (u_file *)r;
  uv_loop_t *loop = r->loop;
  uv_fs_req_cleanup(r);
  finished++;
  u_file_next(loop, f);
}
static void u_fread_cb(uv_fs_t *r) {
  u_file *f = (u_file *)r;
  if (r->result != SMALL) bench_fail("uv file read");
  uv_loop_t *loop = r->loop;
  uv_fs_req_cleanup(r);
  uv_fs_close(loop, &f->req, f->fd, u_close_cb);
}
static void u_open_cb(uv_fs_t *r) {
  u_file *f = (u_file *)r;
  if (r->result < 0) bench_fail("uv open");
  f->fd = (uv_file)r->result;
  uv_loop_t *loop = r->loop;
  uv_fs_req_cleanup(r);
  f->buf = uv_buf_init(f->data, SMALL);
  uv_fs_read(loop, &f->req, f->fd, &f->buf, 1, 0, u_fread_cb);
}
static void u_file_next(uv_loop_t *loop, u_file *f) {
  if (issued >= n_files) return;
  char p[160];
  snprintf(p, sizeof p, "%s/f%zu", tmpdir, issued++);
  uv_fs_open(loop, &f->req, p, O_RDONLY, 0, u_open_cb);
}

static void uv_files_bench(double *v, void *arg) {
  (void)arg;
  uv_loop_t loop;
  uv_loop_init(&loop);
  u_file *f = calloc(FILES_INFLIGHT, sizeof *f);
  issued = finished = 0;
  double t0 = bench_wall();
  for (int i = 0; i < FILES_INFLIGHT; i++)
    u_file_next(&loop, &f[i]);
  uv_run(&loop, UV_RUN_DEFAULT);
  v[0] = (double)n_files / (bench_wall() - t0);
  BENCH_CHECK(finished == n_files, "uv files %zu", finished);
  free(f);
  uv_loop_close(&loop);
}

/* ---- plain ------------------------------------------------------------------
 */

static void plain_read(double *v, void *arg) {
  (void)arg;
  int fd = open(big_path, O_RDONLY);
  char *buf = malloc(CHUNK);
  uint64_t total = 0;
  double t0 = bench_wall();
  for (ssize_t n; (n = read(fd, buf, CHUNK)) > 0;)
    total += (uint64_t)n;
  v[0] = (double)total / 1e6 / (bench_wall() - t0);
  BENCH_CHECK(total == big_size, "plain read");
  free(buf);
  close(fd);
}

static void plain_files(double *v, void *arg) {
  (void)arg;
  char buf[SMALL], p[160];
  double t0 = bench_wall();
  for (size_t i = 0; i < n_files; i++) {
    snprintf(p, sizeof p, "%s/f%zu", tmpdir, i);
    int fd = open(p, O_RDONLY);
    if (fd < 0 || read(fd, buf, SMALL) != SMALL) bench_fail("plain file");
    close(fd);
  }
  v[0] = (double)n_files / (bench_wall() - t0);
}

/* ---- setup ------------------------------------------------------------------
 */

static void setup(void) {
  if (mkdtemp(tmpdir) == NULL) bench_fail("mkdtemp");
  snprintf(big_path, sizeof big_path, "%s/big", tmpdir);
  int fd = open(big_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  char *chunk = malloc(CHUNK);
  memset(chunk, 'w', CHUNK);
  for (size_t off = 0; off < big_size; off += CHUNK)
    if (write(fd, chunk, CHUNK) != CHUNK) bench_fail("write big file");
  close(fd);
  for (size_t i = 0; i < n_files; i++) {
    char p[160];
    snprintf(p, sizeof p, "%s/f%zu", tmpdir, i);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, chunk, SMALL) != SMALL)
      bench_fail("write small file");
    close(fd);
  }
  free(chunk);
  double ignore;
  plain_read(&ignore, NULL); /* warm the page cache */
}

static void teardown(void) {
  char p[160];
  for (size_t i = 0; i < n_files; i++) {
    snprintf(p, sizeof p, "%s/f%zu", tmpdir, i);
    unlink(p);
  }
  unlink(big_path);
  rmdir(tmpdir);
}

static void weft_stat(double *v, void *arg);
static void weft_read(double *v, void *arg);
static void weft_files(double *v, void *arg);
#define POOL_ROW(fn)                                                           \
  static void fn##_pool(double *v, void *arg) {                                \
    backend = WEFT_FS_BACKEND_POOL;                                            \
    fn(v, arg);                                                                \
    backend = WEFT_FS_BACKEND_AUTO;                                            \
  }
POOL_ROW(weft_stat)
POOL_ROW(weft_read)
POOL_ROW(weft_files)

/* The plain loop: stat(2) n_stat times on one thread. */
static void plain_stat(double *v, void *arg) {
  (void)arg;
  struct stat st;
  double t0 = bench_wall();
  for (size_t i = 0; i < n_stat; i++)
    if (stat(big_path, &st) != 0 || st.st_size != (off_t)big_size)
      bench_fail("plain stat");
  v[0] = (double)n_stat / (bench_wall() - t0);
}

static const bench_metric stat1_m[] = {{"fs_stat_1", "ops/s", true}};
static const bench_metric stat4_m[] = {{"fs_stat_4", "ops/s", true}};
static const bench_metric stat32_m[] = {{"fs_stat_32", "ops/s", true}};
static const bench_metric read_m[] = {{"fs_read_512m", "MB/s", true}};
static const bench_metric files_m[] = {{"fs_files_10k", "files/s", true}};
#define STAT_IMPLS(d)                                                          \
  {                                                                            \
    {"weft", weft_stat, (void *)(d)},                                          \
        {"weft-pool", weft_stat_pool, (void *)(d)},                            \
        {"libuv", uv_stat_bench, (void *)(d)}, {                               \
      "plain", plain_stat, NULL                                                \
    }                                                                          \
  }
static const bench_impl stat1_i[] = STAT_IMPLS(1), stat4_i[] = STAT_IMPLS(4),
                        stat32_i[] = STAT_IMPLS(32);
static const bench_impl read_i[] = {{"weft", weft_read, NULL},
                                    {"weft-pool", weft_read_pool, NULL},
                                    {"libuv", uv_read_bench, NULL},
                                    {"plain", plain_read, NULL}};
static const bench_impl files_i[] = {{"weft", weft_files, NULL},
                                     {"weft-pool", weft_files_pool, NULL},
                                     {"libuv", uv_files_bench, NULL},
                                     {"plain", plain_files, NULL}};
static const bench_group groups[] = {
    {"stat_1", stat1_m, 1, stat1_i, BENCH_LEN(stat1_i)},
    {"stat_4", stat4_m, 1, stat4_i, BENCH_LEN(stat4_i)},
    {"stat_32", stat32_m, 1, stat32_i, BENCH_LEN(stat32_i)},
    {"read_512m", read_m, 1, read_i, BENCH_LEN(read_i)},
    {"files_10k", files_m, 1, files_i, BENCH_LEN(files_i)},
};

int main(int argc, char **argv) {
  setenv("UV_THREADPOOL_SIZE", "4", 1); /* THREADS, before libuv's first use */
  big_size = bench_n(512u << 20, 32u << 20);
  n_stat = bench_n(200000, 20000);
  n_files = bench_n(10000, 2000);
  setup();
  atexit(teardown); /* also when a verification fails */
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
