/* The io_uring backend of the fs operations: which ops run on the ring
 * (weft_fs_get_stats), forcing either backend, a real in-kernel cancel of
 * an in-flight read, loop teardown with ring requests in flight, a full
 * ring falling back to the pool, the ops added later (rmdir, link,
 * symlink, fallocate). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "support/test.h"

static int calls;
static int64_t last;
static void on_done(weft_fs_req *req) {
  calls++;
  last = req->result;
}

#define EXPECT(expr, want)                                                     \
  do {                                                                         \
    long long got_ = (long long)(expr);                                        \
    cr_assert_eq(got_, (long long)(want), "%s: %s (%lld), want %lld", #expr,   \
                 weft_err_name((int)got_), got_, (long long)(want));           \
  } while (0)

/* A loop on the ring, or NULL where the kernel refuses one (then only
 * with a refusal's error code; the ring tests end there). */
static weft_loop *ring_loop(void) {
  weft_loop *loop = th_loop();
  int err = weft_fs_set_backend(loop, WEFT_FS_BACKEND_URING);
  if (err != 0) {
    cr_assert(err == -ENOSYS || err == -EPERM, "%s", weft_err_name(err));
    th_loop_finish(loop);
    return NULL;
  }
  return loop;
}

static int64_t run_one(weft_loop *loop, int err) {
  EXPECT(err, 0);
  calls = 0;
  EXPECT(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  EXPECT(calls, 1);
  return last;
}

Test(fs_uring, every_ring_op_runs_on_the_ring, .timeout = 30) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  char dir[] = "/tmp/weft-fsu-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char a[64], b[64], d[64];
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(b, sizeof b, "%s/b", dir);
  snprintf(d, sizeof d, "%s/d", dir);
  weft_fs_req r;
  int64_t fd =
      run_one(loop, weft_fs_open(loop, &r, a, O_CREAT | O_RDWR, 0600, on_done));
  cr_assert_geq(fd, 0, "%s", weft_err_name((int)fd));
  cr_assert(fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
  char msg[] = "hello ring";
  struct iovec w = {msg, 10};
  EXPECT(run_one(loop, weft_fs_write(loop, &r, (int)fd, &w, 1, 0, on_done)),
         10);
  EXPECT(run_one(loop, weft_fs_fsync(loop, &r, (int)fd, on_done)), 0);
  EXPECT(run_one(loop, weft_fs_fdatasync(loop, &r, (int)fd, on_done)), 0);
  EXPECT(run_one(loop, weft_fs_fstat(loop, &r, (int)fd, on_done)), 0);
  EXPECT(r.statbuf.st_size, 10);
  struct stat ref;
  cr_assert_eq(fstat((int)fd, &ref), 0);
  EXPECT(r.statbuf.st_ino, ref.st_ino);
  EXPECT(r.statbuf.st_dev, ref.st_dev);
  EXPECT(r.statbuf.st_mode, ref.st_mode);
  EXPECT(r.statbuf.st_mtim.tv_nsec, ref.st_mtim.tv_nsec);
  /* a read at the file position (not the loop-thread cached path) */
  cr_assert_eq(lseek((int)fd, 6, SEEK_SET), 6);
  char buf[16] = {0};
  struct iovec rv = {buf, sizeof buf};
  EXPECT(run_one(loop, weft_fs_read(loop, &r, (int)fd, &rv, 1, -1, on_done)),
         4);
  cr_assert_str_eq(buf, "ring");
  EXPECT(lseek((int)fd, 0, SEEK_CUR), 10);
  EXPECT(run_one(loop, weft_fs_close(loop, &r, (int)fd, on_done)), 0);
  EXPECT(fcntl((int)fd, F_GETFD), -1);
  EXPECT(run_one(loop, weft_fs_rename(loop, &r, a, b, on_done)), 0);
  EXPECT(run_one(loop, weft_fs_stat(loop, &r, a, on_done)), -ENOENT);
  EXPECT(run_one(loop, weft_fs_stat(loop, &r, b, on_done)), 0);
  EXPECT(r.statbuf.st_size, 10);
  cr_assert_eq(symlink(b, a), 0);
  EXPECT(run_one(loop, weft_fs_lstat(loop, &r, a, on_done)), 0);
  cr_assert(S_ISLNK(r.statbuf.st_mode));
  EXPECT(run_one(loop, weft_fs_mkdir(loop, &r, d, 0700, on_done)), 0);
  EXPECT(run_one(loop, weft_fs_mkdir(loop, &r, d, 0700, on_done)), -EEXIST);
  EXPECT(run_one(loop, weft_fs_fstat(loop, &r, -1, on_done)), -EBADF);
  EXPECT(run_one(loop, weft_fs_unlink(loop, &r, a, on_done)), 0);
  EXPECT(run_one(loop, weft_fs_unlink(loop, &r, b, on_done)), 0);
  EXPECT(run_one(loop, weft_fs_unlink(loop, &r, b, on_done)), -ENOENT);
  cr_assert_eq(rmdir(d), 0);
  cr_assert_eq(rmdir(dir), 0);
  weft_fs_stats st;
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  EXPECT(st.backend, WEFT_FS_BACKEND_URING);
  EXPECT(st.ring_active, 1);
  EXPECT(st.ring_error, 0);
  EXPECT(st.ring[WEFT_FS_OPK_OPEN], 1);
  EXPECT(st.ring[WEFT_FS_OPK_WRITE], 1);
  EXPECT(st.ring[WEFT_FS_OPK_FSYNC], 2);
  EXPECT(st.ring[WEFT_FS_OPK_STAT], 5);
  EXPECT(st.ring[WEFT_FS_OPK_READ], 1);
  EXPECT(st.ring[WEFT_FS_OPK_CLOSE], 1);
  EXPECT(st.ring[WEFT_FS_OPK_RENAME], 1);
  EXPECT(st.ring[WEFT_FS_OPK_MKDIR], 2);
  EXPECT(st.ring[WEFT_FS_OPK_UNLINK], 3);
  for (int k = 0; k < WEFT_FS_OPK_COUNT; k++)
    EXPECT(st.pool[k], 0);
  EXPECT(st.fallback_unsupported + st.fallback_full, 0);
  EXPECT(st.ring_inflight, 0);
  /* an op the ring does not take runs on the pool, and is counted there */
  EXPECT(run_one(loop, weft_fs_access(loop, &r, "/tmp", F_OK, on_done)), 0);
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  EXPECT(st.pool[WEFT_FS_OPK_OTHER], 1);
  th_loop_finish(loop);
}

/* The kernel's release is at least major.minor (uname). */
static bool kernel_at_least(int major, int minor) {
  struct utsname u;
  int ma = 0, mi = 0;
  cr_assert_eq(uname(&u), 0);
  cr_assert_eq(sscanf(u.release, "%d.%d", &ma, &mi), 2);
  return ma > major || (ma == major && mi >= minor);
}

/* rmdir (IORING_OP_UNLINKAT with AT_REMOVEDIR), link, symlink and
 * fallocate: on the ring where the probe lists them (5.15 and later has
 * all four), each with its normal result and its errors from the kernel. */
Test(fs_uring, rmdir_link_symlink_fallocate_run_on_the_ring, .timeout = 30) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  char dir[] = "/tmp/weft-fsu-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char a[64], h[64], s[64], d[64], in[64];
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(h, sizeof h, "%s/h", dir);
  snprintf(s, sizeof s, "%s/s", dir);
  snprintf(d, sizeof d, "%s/d", dir);
  snprintf(in, sizeof in, "%s/d/x", dir);
  int fd = open(a, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  cr_assert_geq(fd, 0);
  weft_fs_req r;
  struct stat st1, st2;
  /* link: h is a second name of a */
  EXPECT(run_one(loop, weft_fs_link(loop, &r, a, h, on_done)), 0);
  cr_assert(stat(a, &st1) == 0 && stat(h, &st2) == 0);
  EXPECT(st2.st_ino, st1.st_ino);
  EXPECT(st1.st_nlink, 2);
  EXPECT(run_one(loop, weft_fs_link(loop, &r, a, h, on_done)), -EEXIST);
  EXPECT(run_one(loop, weft_fs_link(loop, &r, d, h, on_done)), -ENOENT);
  /* symlink: s points to "a" */
  EXPECT(run_one(loop, weft_fs_symlink(loop, &r, "a", s, on_done)), 0);
  char t[16] = {0};
  EXPECT(readlink(s, t, sizeof t - 1), 1);
  cr_assert_str_eq(t, "a");
  EXPECT(run_one(loop, weft_fs_symlink(loop, &r, "a", s, on_done)), -EEXIST);
  /* rmdir: empty only */
  cr_assert_eq(mkdir(d, 0700), 0);
  cr_assert_eq(mkdir(in, 0700), 0);
  EXPECT(run_one(loop, weft_fs_rmdir(loop, &r, d, on_done)), -ENOTEMPTY);
  EXPECT(run_one(loop, weft_fs_rmdir(loop, &r, in, on_done)), 0);
  EXPECT(access(in, F_OK), -1);
  EXPECT(run_one(loop, weft_fs_rmdir(loop, &r, a, on_done)), -ENOTDIR);
  EXPECT(run_one(loop, weft_fs_rmdir(loop, &r, d, on_done)), 0);
  EXPECT(run_one(loop, weft_fs_rmdir(loop, &r, d, on_done)), -ENOENT);
  /* fallocate: size, KEEP_SIZE passed through, a mode nothing takes */
  EXPECT(run_one(loop, weft_fs_fallocate(loop, &r, fd, 0, 0, 8192, on_done)),
         0);
  cr_assert_eq(fstat(fd, &st1), 0);
  EXPECT(st1.st_size, 8192);
  EXPECT(run_one(loop, weft_fs_fallocate(loop, &r, fd, FALLOC_FL_KEEP_SIZE,
                                         8192, 65536, on_done)),
         0);
  cr_assert_eq(fstat(fd, &st1), 0);
  EXPECT(st1.st_size, 8192);
  EXPECT(run_one(loop, weft_fs_fallocate(loop, &r, fd, FALLOC_FL_PUNCH_HOLE, 0,
                                         4096, on_done)),
         -EOPNOTSUPP);
  int ro = open(a, O_RDONLY | O_CLOEXEC);
  EXPECT(run_one(loop, weft_fs_fallocate(loop, &r, ro, 0, 0, 1, on_done)),
         -EBADF);
  close(ro);
  close(fd);
  weft_fs_stats st;
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  uint64_t ring = st.ring[WEFT_FS_OPK_LINK] + st.ring[WEFT_FS_OPK_RMDIR] +
                  st.ring[WEFT_FS_OPK_FALLOCATE];
  EXPECT(ring + st.fallback_unsupported, 14);
  if (kernel_at_least(5, 15)) {
    EXPECT(st.ring[WEFT_FS_OPK_LINK], 5);
    EXPECT(st.ring[WEFT_FS_OPK_RMDIR], 5);
    EXPECT(st.ring[WEFT_FS_OPK_FALLOCATE], 4);
    EXPECT(st.fallback_unsupported, 0);
    for (int k = 0; k < WEFT_FS_OPK_COUNT; k++)
      EXPECT(st.pool[k], 0);
  }
  EXPECT(st.ring_inflight, 0);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* A link cancelled before the kernel took its SQE never happens. */
Test(fs_uring, a_cancelled_unsubmitted_link_makes_nothing, .timeout = 30) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  char dir[] = "/tmp/weft-fsu-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char a[64], h[64];
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(h, sizeof h, "%s/h", dir);
  close(open(a, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  weft_fs_req r;
  calls = 0;
  EXPECT(weft_fs_link(loop, &r, a, h, on_done), 0);
  weft_fs_stats st;
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  if (st.ring[WEFT_FS_OPK_LINK] == 1) { /* on the ring: a NOP now */
    EXPECT(weft_fs_cancel(&r), 0);
    EXPECT(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
    EXPECT(calls, 1);
    EXPECT(r.result, -ECANCELED);
    EXPECT(access(h, F_OK), -1);
  } else {
    EXPECT(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
    EXPECT(calls, 1);
  }
  th_rm_tree(dir);
  th_loop_finish(loop);
}

Test(fs_uring, forced_pool_runs_nothing_on_the_ring, .timeout = 30) {
  weft_loop *loop = th_loop();
  EXPECT(weft_fs_set_backend(loop, WEFT_FS_BACKEND_POOL), 0);
  weft_fs_req r;
  EXPECT(run_one(loop, weft_fs_stat(loop, &r, "/tmp", on_done)), 0);
  cr_assert(S_ISDIR(r.statbuf.st_mode));
  weft_fs_stats st;
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  EXPECT(st.backend, WEFT_FS_BACKEND_POOL);
  EXPECT(st.ring_active, 0);
  EXPECT(st.ring[WEFT_FS_OPK_STAT], 0);
  EXPECT(st.pool[WEFT_FS_OPK_STAT], 1);
  th_loop_finish(loop);
}

Test(fs_uring, environment_variable_picks_the_backend, .timeout = 30) {
  setenv("WEFT_FS_BACKEND", "pool", 1);
  weft_loop *loop = th_loop();
  weft_fs_req r;
  EXPECT(run_one(loop, weft_fs_stat(loop, &r, "/tmp", on_done)), 0);
  weft_fs_stats st;
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  EXPECT(st.backend, WEFT_FS_BACKEND_POOL);
  EXPECT(st.ring_active, 0);
  EXPECT(st.pool[WEFT_FS_OPK_STAT], 1);
  th_loop_finish(loop);
  setenv("WEFT_FS_BACKEND", "uring", 1);
  loop = th_loop();
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  EXPECT(st.backend, WEFT_FS_BACKEND_URING);
  th_loop_finish(loop);
  unsetenv("WEFT_FS_BACKEND");
  loop = th_loop();
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  EXPECT(st.backend, WEFT_FS_BACKEND_AUTO);
  th_loop_finish(loop);
}

Test(fs_uring, bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_fs_stats st;
  EXPECT(weft_fs_set_backend(NULL, WEFT_FS_BACKEND_POOL), -EINVAL);
  EXPECT(weft_fs_set_backend(loop, (weft_fs_backend)3), -EINVAL);
  EXPECT(weft_fs_set_backend(loop, (weft_fs_backend)-1), -EINVAL);
  EXPECT(weft_fs_get_stats(NULL, &st), -EINVAL);
  EXPECT(weft_fs_get_stats(loop, NULL), -EINVAL);
  th_loop_finish(loop);
}

/* A read of an empty pipe waits in the kernel; cancelling it really stops
 * it: the callback gets -ECANCELED and bytes written afterwards are still
 * in the pipe (the cancelled read did not take them). */
Test(fs_uring, cancel_stops_an_in_flight_read_in_the_kernel, .timeout = 30) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  int p[2];
  cr_assert_eq(pipe(p), 0);
  char buf[8];
  struct iovec iov = {buf, sizeof buf};
  weft_fs_req r;
  calls = 0;
  EXPECT(weft_fs_read(loop, &r, p[0], &iov, 1, -1, on_done), 0);
  for (int i = 0; i < 3; i++) /* submitted, still waiting */
    EXPECT(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  EXPECT(calls, 0);
  weft_fs_stats st;
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  EXPECT(st.ring_inflight, 1);
  EXPECT(weft_fs_cancel(&r), 0);
  EXPECT(weft_fs_cancel(&r), -EALREADY);
  cr_assert_eq(write(p[1], "xy", 2), 2);
  EXPECT(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  EXPECT(calls, 1);
  EXPECT(last, -ECANCELED);
  EXPECT(weft_fs_cancel(&r), -EALREADY);
  char got[4] = {0};
  EXPECT(read(p[0], got, sizeof got), 2);
  cr_assert_str_eq(got, "xy");
  close(p[0]);
  close(p[1]);
  th_loop_finish(loop);
}

/* The future form: cancelling the future cancels the kernel's read before
 * weft_future_cancel() returns. */
Test(fs_uring, future_cancel_stops_the_kernel_read, .timeout = 30) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  int p[2];
  cr_assert_eq(pipe(p), 0);
  char *buf = malloc(8);
  struct iovec iov = {buf, 8};
  weft_future *f = NULL;
  EXPECT(weft_fs_read_future(loop, p[0], &iov, 1, -1, &f), 0);
  EXPECT(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  EXPECT(weft_future_cancel(f), 0);
  free(buf); /* the kernel is done with it */
  cr_assert_eq(write(p[1], "z", 1), 1);
  EXPECT(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  EXPECT(weft_future_error(f), -ECANCELED);
  char got = 0;
  EXPECT(read(p[0], &got, 1), 1);
  cr_assert_eq(got, 'z');
  weft_future_unref(f);
  close(p[0]);
  close(p[1]);
  th_loop_finish(loop);
}

/* A cancel before the loop ran (the SQE not yet given to the kernel). */
Test(fs_uring, cancel_before_submission, .timeout = 30) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  weft_fs_req r[4];
  calls = 0;
  for (int i = 0; i < 4; i++)
    EXPECT(weft_fs_stat(loop, &r[i], "/tmp", on_done), 0);
  EXPECT(weft_fs_cancel(&r[1]), 0);
  EXPECT(weft_fs_cancel(&r[3]), 0);
  EXPECT(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  EXPECT(calls, 4);
  EXPECT(r[0].result, 0);
  EXPECT(r[1].result, -ECANCELED);
  EXPECT(r[2].result, 0);
  EXPECT(r[3].result, -ECANCELED);
  th_loop_finish(loop);
}

/* weft_loop_free with a ring read waiting in the kernel and one not yet
 * submitted: both cancelled, callbacks run once, nothing leaked. */
Test(fs_uring, loop_free_cancels_ring_requests, .timeout = 30) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  int p[2];
  cr_assert_eq(pipe(p), 0);
  char buf[8];
  struct iovec iov = {buf, sizeof buf};
  weft_fs_req r1, r2;
  calls = 0;
  EXPECT(weft_fs_read(loop, &r1, p[0], &iov, 1, -1, on_done), 0);
  EXPECT(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  EXPECT(weft_fs_stat(loop, &r2, "/tmp", on_done), 0);
  EXPECT(weft_loop_free(loop), 0);
  EXPECT(calls, 2);
  EXPECT(r1.result, -ECANCELED);
  EXPECT(r2.result, -ECANCELED);
  EXPECT(weft_alloc_live(), 0);
  cr_assert_eq(write(p[1], "q", 1), 1);
  char got = 0;
  EXPECT(read(p[0], &got, 1), 1);
  close(p[0]);
  close(p[1]);
}

/* More requests at once than the ring has slots: the rest go to the pool
 * (fallback_full), all complete. */
Test(fs_uring, a_full_ring_falls_back_to_the_pool, .timeout = 60) {
  weft_loop *loop = ring_loop();
  if (loop == NULL) return; /* no io_uring here */
  enum { N = 2000 };
  weft_fs_req *r = calloc(N, sizeof *r);
  calls = 0;
  for (int i = 0; i < N; i++)
    EXPECT(weft_fs_stat(loop, &r[i], "/tmp", on_done), 0);
  EXPECT(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  EXPECT(calls, N);
  for (int i = 0; i < N; i++)
    EXPECT(r[i].result, 0);
  weft_fs_stats st;
  EXPECT(weft_fs_get_stats(loop, &st), 0);
  cr_assert_gt(st.ring[WEFT_FS_OPK_STAT], 0);
  cr_assert_gt(st.fallback_full, 0);
  EXPECT(st.ring[WEFT_FS_OPK_STAT] + st.pool[WEFT_FS_OPK_STAT], N);
  EXPECT(st.pool[WEFT_FS_OPK_STAT], st.fallback_full);
  free(r);
  th_loop_finish(loop);
}

/* io_uring_disabled (or a kernel without io_uring) as the ring's refusal
 * is reported: AUTO falls back to the pool. Simulated by forcing the pool,
 * the path a refusal takes; a real refusal is checked when the sysctl is
 * set (root, and not 0). */
Test(fs_uring, a_refused_ring_leaves_the_pool, .timeout = 30) {
  FILE *fp = fopen("/proc/sys/kernel/io_uring_disabled", "r");
  int v = 0;
  if (fp != NULL) {
    if (fscanf(fp, "%d", &v) != 1) v = 0;
    fclose(fp);
  }
  weft_loop *loop = th_loop();
  if (v == 2) {
    EXPECT(weft_fs_set_backend(loop, WEFT_FS_BACKEND_URING), -EPERM);
    weft_fs_stats st;
    EXPECT(weft_fs_get_stats(loop, &st), 0);
    EXPECT(st.ring_error, -EPERM);
    EXPECT(st.ring_active, 0);
  }
  EXPECT(weft_fs_set_backend(loop, WEFT_FS_BACKEND_POOL), 0);
  weft_fs_req r;
  EXPECT(run_one(loop, weft_fs_stat(loop, &r, "/tmp", on_done)), 0);
  th_loop_finish(loop);
}
