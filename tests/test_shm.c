/* Shared memory regions: a region seen by a spawned child (stdio slot), by
 * fd passing, by a forked child and by a process-pool worker (its /proc
 * path); the seals; checked views and atomics; bad input to every call
 * and running out of fds. The lock, semaphore and event are in
 * tests/test_shm_sync.c. Every test counts /proc/self/fd before and after,
 * and spawned children count theirs. */
#include "support/test.h"

#include "support/shm_test.h"

/* ---- regions ------------------------------------------------------------- */

Test(shm, spawned_child_maps_the_region_from_a_stdio_slot, .timeout = 20) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  cr_assert_eq(shm.size, REGION);
  cr_assert(fcntl(shm.fd, F_GETFD) & FD_CLOEXEC);
  l->len = (int64_t)(REGION - sizeof *l);
  for (int64_t i = 0; i < l->len; i++)
    l->data[i] = (unsigned char)(i * 7);
  weft_process p;
  spawn_child(loop, &p, &shm, "sum");
  cr_assert_eq(child_exit(loop, &p), 0);
  cr_assert_eq(l->sum, byte_sum(l->data, (size_t)l->len));
  cr_assert_eq(weft_shm_close(&shm), 0);
  cr_assert_null(shm.base);
  cr_assert_eq(shm.fd, -1);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

Test(shm, fd_passed_over_a_pipe_maps_the_same_pages, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm, other;
  layout *l = region_new(&shm);
  weft_pipe a, b;
  cr_assert_eq(weft_pipe_init(loop, &a), 0);
  cr_assert_eq(weft_pipe_init(loop, &b), 0);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  weft_buf m = weft_buf_init("R", 1);
  weft_future *f;
  cr_assert_eq(weft_pipe_write_fds_future(&a, &m, 1, &shm.fd, 1, &f), 0);
  expect_i64(loop, f, 1);
  char c;
  cr_assert_eq(weft_stream_read_exact_future(&b.stream, &c, 1, &f), 0);
  expect_i64(loop, f, 1);
  int fd = -1;
  cr_assert_eq(weft_pipe_take_fds(&b, &fd, 1), 1);
  cr_assert_eq(weft_shm_attach(&other, fd), 0);
  cr_assert_eq(other.size, REGION);
  cr_assert_neq(other.base, shm.base);
  l->counter = 42;
  cr_assert_eq(((layout *)other.base)->counter, 42);
  cr_assert_eq(weft_shm_close(&other), 0); /* closes fd */
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

Test(shm, region_is_sealed_and_zero_filled, .timeout = 10) {
  int before = fd_count();
  weft_shm shm;
  cr_assert_eq(weft_shm_create(&shm, NULL, 8192), 0);
  cr_assert_eq(byte_sum(shm.base, shm.size), 0);
  cr_assert_eq(ftruncate(shm.fd, 4096), -1, "shrinking is sealed");
  cr_assert_eq(errno, EPERM);
  cr_assert_eq(ftruncate(shm.fd, 16384), -1, "growing is sealed");
  char link[64], target[128] = {0};
  snprintf(link, sizeof link, "/proc/self/fd/%d", shm.fd);
  cr_assert_gt(readlink(link, target, sizeof target - 1), 0);
  cr_assert_eq(strncmp(target, "/memfd:weft-shm", 15), 0, "%s", target);
  cr_assert_eq(weft_shm_close(&shm), 0);
  cr_assert_eq(fd_count(), before);
}

/* A forked child shares the mapping; counters need no lock with the
 * atomic accessors. */
Test(shm, forked_children_add_atomically, .timeout = 20) {
  int before = fd_count();
  weft_shm shm;
  layout *l = region_new(&shm);
  int64_t *ctr = NULL;
  cr_assert_eq(
      weft_shm_at(&shm, offsetof(layout, counter), 8, 8, (void **)&ctr), 0);
  pid_t kids[3];
  for (int k = 0; k < 3; k++)
    if ((kids[k] = fork_or_die()) == 0) {
      for (int i = 0; i < 20000; i++)
        weft_shm_add_i64(ctr, 1);
      _exit(0);
    }
  for (int i = 0; i < 20000; i++)
    weft_shm_add_i64(ctr, 1);
  for (int k = 0; k < 3; k++)
    expect_exit0(kids[k]);
  cr_assert_eq(weft_shm_load_i64(ctr), 80000);
  int64_t exp = 80000;
  cr_assert(weft_shm_cas_i64(ctr, &exp, 5));
  cr_assert(!weft_shm_cas_i64(ctr, &exp, 6));
  cr_assert_eq(exp, 5);
  weft_shm_store_i64(ctr, -1);
  cr_assert_eq(l->counter, -1);
  cr_assert_eq(weft_shm_close(&shm), 0);
  cr_assert_eq(fd_count(), before);
}

/* ---- a process-pool worker opens the region by its /proc path ------------ */

static int pool_handler(const void *in, size_t len, weft_buf *out, void *arg) {
  (void)arg;
  char path[64];
  if (len == 0 || len >= sizeof path) return -EINVAL;
  memcpy(path, in, len);
  path[len] = '\0';
  weft_shm shm;
  int err = weft_shm_open_path(&shm, path);
  if (err != 0) return err;
  layout *l = shm.base;
  l->sum = byte_sum(l->data, (size_t)l->len);
  weft_shm_close(&shm);
  out->base = malloc(2);
  if (out->base == NULL) return -ENOMEM;
  memcpy(out->base, "ok", 2);
  out->len = 2;
  return 0;
}

__attribute__((constructor)) static void shm_worker_mode(void) {
  const char *w = getenv("WEFT_TEST_SHM_WORKER");
  if (w != NULL) _exit(weft_procpool_worker_main(pool_handler, NULL) ? 1 : 0);
}

Test(shm, pool_worker_opens_the_region_by_path, .timeout = 20) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_shm shm;
  layout *l = region_new(&shm);
  l->len = 100000;
  memset(l->data, 3, (size_t)l->len);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  cr_assert_gt(n, 0);
  self_path[n] = '\0';
  char *argv[] = {self_path, NULL};
  char *env[] = {"WEFT_TEST_SHM_WORKER=1", "ASAN_OPTIONS=detect_leaks=0", NULL};
  weft_procpool_options o = {.argv = argv, .env = env, .workers = 1};
  weft_procpool *pool;
  cr_assert_eq(weft_procpool_new(loop, &o, &pool), 0);
  char path[32];
  int plen = weft_shm_get_path(&shm, path, sizeof path);
  cr_assert_gt(plen, 0);
  cr_assert_eq((size_t)plen, strlen(path));
  weft_future *f;
  cr_assert_eq(weft_procpool_submit(pool, path, (size_t)plen, &f), 0);
  settle(loop, f);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  weft_future_unref(f);
  cr_assert_eq(l->sum, 300000);
  /* a path that names no region: the worker's error comes back */
  cr_assert_eq(weft_procpool_submit(pool, "/proc/1/fd/999999", 17, &f), 0);
  settle(loop, f);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_REJECTED);
  cr_assert_lt(weft_future_error(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_procpool_close(pool, NULL, NULL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_shm_close(&shm), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

Test(shm, region_bad_input, .timeout = 10) {
  int before = fd_count();
  weft_shm shm = {(void *)1, 1, 1}, other;
  cr_assert_eq(weft_shm_create(NULL, NULL, 1), -EINVAL);
  cr_assert_eq(weft_shm_create(&shm, NULL, 0), -EINVAL);
  cr_assert_null(shm.base, "a failed create leaves the region closed");
  cr_assert_eq(shm.fd, -1);
  cr_assert_eq(weft_shm_create(&shm, NULL, WEFT_SHM_MAX_SIZE + 1), -EINVAL);
  char longname[300];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cr_assert_eq(weft_shm_create(&shm, longname, 4096), -EINVAL);
  /* attach */
  cr_assert_eq(weft_shm_attach(NULL, 0), -EINVAL);
  cr_assert_eq(weft_shm_attach(&shm, -1), -EINVAL);
  cr_assert_eq(weft_shm_attach(&shm, 1000000), -EBADF);
  int pf[2];
  cr_assert_eq(pipe(pf), 0);
  cr_assert_eq(weft_shm_attach(&shm, pf[0]), -EINVAL);
  close(pf[0]);
  close(pf[1]);
  char tmpl[] = "/tmp/weft-shm-XXXXXX";
  int file = mkstemp(tmpl);
  cr_assert_geq(file, 0);
  cr_assert_eq(weft_shm_attach(&shm, file), -EINVAL, "an empty file");
  cr_assert_eq(ftruncate(file, 4096), 0);
  int ro = open(tmpl, O_RDONLY | O_CLOEXEC);
  cr_assert_eq(weft_shm_attach(&shm, ro), -EACCES);
  close(ro);
  unlink(tmpl);
  cr_assert_eq(weft_shm_attach(&shm, file), 0, "a plain file maps too");
  cr_assert_eq(shm.size, 4096);
  cr_assert_eq(weft_shm_close(&shm), 0);
  cr_assert_eq(weft_shm_close(&shm), -EINVAL);
  cr_assert_eq(weft_shm_close(NULL), -EINVAL);
  /* paths */
  char buf[64];
  cr_assert_eq(weft_shm_get_path(&shm, buf, sizeof buf), -EINVAL);
  cr_assert_eq(weft_shm_get_path(NULL, buf, sizeof buf), -EINVAL);
  cr_assert_eq(weft_shm_create(&shm, NULL, 4096), 0);
  cr_assert_eq(weft_shm_get_path(&shm, NULL, 8), -EINVAL);
  cr_assert_eq(weft_shm_get_path(&shm, buf, 8), -ENOBUFS);
  cr_assert_eq(weft_shm_get_path(&shm, buf, sizeof buf), (int)strlen(buf));
  cr_assert_eq(weft_shm_open_path(&other, buf), 0, "%s", buf);
  cr_assert_eq(other.size, 4096);
  cr_assert_neq(other.fd, shm.fd);
  cr_assert_eq(weft_shm_close(&other), 0);
  cr_assert_eq(weft_shm_open_path(NULL, buf), -EINVAL);
  cr_assert_eq(weft_shm_open_path(&other, NULL), -EINVAL);
  cr_assert_eq(weft_shm_open_path(&other, ""), -EINVAL);
  cr_assert_eq(weft_shm_open_path(&other, "/proc/self/fd/999999"), -ENOENT);
  cr_assert_eq(weft_shm_open_path(&other, "/dev/null"), -EINVAL);
  cr_assert_eq(weft_shm_open_path(&other, "/tmp"), -EINVAL);
  cr_assert_null(other.base);
  /* views */
  void *v = NULL;
  cr_assert_eq(weft_shm_at(&shm, 0, 4096, 1, &v), 0);
  cr_assert_eq(v, shm.base);
  cr_assert_eq(weft_shm_at(&shm, 4088, 8, 8, &v), 0);
  cr_assert_eq((char *)v, (char *)shm.base + 4088);
  cr_assert_eq(weft_shm_at(&shm, 4089, 8, 1, &v), -ERANGE);
  cr_assert_eq(weft_shm_at(&shm, 4096, 1, 1, &v), -ERANGE);
  cr_assert_eq(weft_shm_at(&shm, SIZE_MAX, 2, 1, &v), -ERANGE);
  cr_assert_eq(weft_shm_at(&shm, 8, SIZE_MAX, 1, &v), -ERANGE);
  cr_assert_eq(weft_shm_at(&shm, 4, 8, 8, &v), -EINVAL, "misaligned");
  cr_assert_eq(weft_shm_at(&shm, 0, 8, 3, &v), -EINVAL);
  cr_assert_eq(weft_shm_at(&shm, 0, 8, 0, &v), -EINVAL);
  cr_assert_eq(weft_shm_at(&shm, 0, 0, 1, &v), -EINVAL);
  cr_assert_eq(weft_shm_at(&shm, 0, 8, 8, NULL), -EINVAL);
  cr_assert_eq(weft_shm_at(NULL, 0, 8, 8, &v), -EINVAL);
  cr_assert_eq(weft_shm_close(&shm), 0);
  cr_assert_eq(weft_shm_at(&shm, 0, 8, 8, &v), -EINVAL, "closed");
  cr_assert_eq(fd_count(), before);
}

/* Out of fds is an error code, and nothing is left open. */
Test(shm, out_of_fds, .timeout = 10) {
  int before = fd_count();
  struct rlimit old, lim;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int probe = dup(0); /* the lowest free fd number: no fd below it is free */
  cr_assert_geq(probe, 0);
  close(probe);
  lim = old;
  lim.rlim_cur = (rlim_t)probe;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
  weft_shm shm;
  cr_assert_eq(weft_shm_create(&shm, NULL, 4096), -EMFILE);
  cr_assert_null(shm.base);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_eq(fd_count(), before);
}
