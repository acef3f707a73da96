/* Asynchronous file I/O: every operation, its errors, both forms. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test.h"

static int calls;
static int64_t last;

static void on_done(weft_fs_req *req) {
  calls++;
  last = req->result;
}

static char dir[64];
static char P[256];

static const char *path(const char *name) {
  snprintf(P, sizeof P, "%s/%s", dir, name);
  return P;
}

static void make_dir(void) {
  strcpy(dir, "/tmp/weft-fs-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

/* Runs the loop until the one request started by `start` completes and
 * returns its result. */
#define RUN(loop, start)                                                       \
  ({                                                                           \
    calls = 0;                                                                 \
    cr_assert_eq((start), 0);                                                  \
    cr_assert_eq(calls, 0, "never inline");                                    \
    weft_loop_run((loop), WEFT_RUN_DEFAULT);                                   \
    cr_assert_eq(calls, 1);                                                    \
    last;                                                                      \
  })

static void put_file(const char *p, const char *content) {
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(content, f);
  fclose(f);
}

Test(fs, open_write_read_close, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  weft_fs_req r = {0};
  int fd = (int)RUN(
      loop, weft_fs_open(loop, &r, path("a"), O_CREAT | O_RDWR, 0644, on_done));
  cr_assert_geq(fd, 0);
  struct iovec out[2] = {{"hello ", 6}, {"world", 5}};
  cr_assert_eq(RUN(loop, weft_fs_write(loop, &r, fd, out, 2, 0, on_done)), 11);
  char a[4], b[16] = {0};
  struct iovec in[2] = {{a, 4}, {b, sizeof b}};
  cr_assert_eq(RUN(loop, weft_fs_read(loop, &r, fd, in, 2, 0, on_done)), 11);
  cr_assert_eq(memcmp(a, "hell", 4), 0);
  cr_assert_str_eq(b, "o world");
  cr_assert_eq(RUN(loop, weft_fs_read(loop, &r, fd, in, 2, 11, on_done)), 0,
               "EOF");
  cr_assert_eq(RUN(loop, weft_fs_write(loop, &r, fd, out, 1, -1, on_done)), 6);
  cr_assert_eq(RUN(loop, weft_fs_fsync(loop, &r, fd, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_fdatasync(loop, &r, fd, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_fstat(loop, &r, fd, on_done)), 0);
  cr_assert_eq(r.statbuf.st_size, 11);
  cr_assert_eq(RUN(loop, weft_fs_ftruncate(loop, &r, fd, 3, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_fstat(loop, &r, fd, on_done)), 0);
  cr_assert_eq(r.statbuf.st_size, 3);
  cr_assert_eq(RUN(loop, weft_fs_close(loop, &r, fd, on_done)), 0);
  /* errors */
  cr_assert_eq(RUN(loop, weft_fs_close(loop, &r, fd, on_done)), -EBADF);
  cr_assert_eq(RUN(loop, weft_fs_read(loop, &r, fd, in, 2, 0, on_done)),
               -EBADF);
  cr_assert_eq(RUN(loop, weft_fs_write(loop, &r, fd, out, 2, 0, on_done)),
               -EBADF);
  cr_assert_eq(RUN(loop, weft_fs_fsync(loop, &r, fd, on_done)), -EBADF);
  cr_assert_eq(RUN(loop, weft_fs_fdatasync(loop, &r, -1, on_done)), -EBADF);
  cr_assert_eq(RUN(loop, weft_fs_ftruncate(loop, &r, -1, 0, on_done)), -EBADF);
  cr_assert_eq(RUN(loop, weft_fs_fstat(loop, &r, -1, on_done)), -EBADF);
  cr_assert_eq(
      RUN(loop, weft_fs_open(loop, &r, path("nope/x"), O_RDONLY, 0, on_done)),
      -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_open(loop, &r, dir, O_WRONLY, 0, on_done)),
               -EISDIR);
  cr_assert_eq(
      RUN(loop, weft_fs_open(loop, &r, path("a/x"), O_RDONLY, 0, on_done)),
      -ENOTDIR);
  cr_assert_eq(
      RUN(loop, weft_fs_open(loop, &r, path("a"), O_CREAT | O_EXCL | O_RDWR,
                             0644, on_done)),
      -EEXIST);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

Test(fs, stat_lstat_and_links, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  put_file(path("f"), "12345");
  weft_fs_req r = {0};
  char f[256], l[256], h[256];
  strcpy(f, path("f"));
  strcpy(l, path("l"));
  strcpy(h, path("h"));
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, f, on_done)), 0);
  cr_assert_eq(r.statbuf.st_size, 5);
  cr_assert(S_ISREG(r.statbuf.st_mode));
  cr_assert_eq(RUN(loop, weft_fs_symlink(loop, &r, "f", l, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_lstat(loop, &r, l, on_done)), 0);
  cr_assert(S_ISLNK(r.statbuf.st_mode));
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, l, on_done)), 0);
  cr_assert(S_ISREG(r.statbuf.st_mode));
  cr_assert_eq(RUN(loop, weft_fs_readlink(loop, &r, l, on_done)), 1);
  cr_assert_str_eq(r.ptr, "f");
  weft_fs_req_cleanup(&r);
  cr_assert_eq(RUN(loop, weft_fs_realpath(loop, &r, l, on_done)), 0);
  char *real = realpath(f, NULL);
  cr_assert_str_eq(r.ptr, real);
  free(real);
  weft_fs_req_cleanup(&r);
  weft_fs_req_cleanup(&r); /* twice is fine */
  cr_assert_eq(RUN(loop, weft_fs_link(loop, &r, f, h, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, f, on_done)), 0);
  cr_assert_eq(r.statbuf.st_nlink, 2);
  /* errors */
  cr_assert_eq(RUN(loop, weft_fs_link(loop, &r, f, h, on_done)), -EEXIST);
  cr_assert_eq(RUN(loop, weft_fs_symlink(loop, &r, "f", l, on_done)), -EEXIST);
  cr_assert_eq(RUN(loop, weft_fs_readlink(loop, &r, f, on_done)), -EINVAL);
  cr_assert_null(r.ptr);
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, path("none"), on_done)),
               -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_lstat(loop, &r, path("f/x"), on_done)),
               -ENOTDIR);
  cr_assert_eq(RUN(loop, weft_fs_realpath(loop, &r, path("none"), on_done)),
               -ENOENT);
  cr_assert_eq(
      RUN(loop, weft_fs_link(loop, &r, path("none"), path("n2"), on_done)),
      -ENOENT);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

Test(fs, directories, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  weft_fs_req r = {0};
  cr_assert_eq(RUN(loop, weft_fs_mkdir(loop, &r, path("d"), 0755, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_mkdir(loop, &r, path("d"), 0755, on_done)),
               -EEXIST);
  put_file(path("b"), "x");
  put_file(path("a"), "y");
  cr_assert_eq(RUN(loop, weft_fs_scandir(loop, &r, dir, on_done)), 3);
  weft_fs_dir *d = r.ptr;
  cr_assert_eq(d->count, 3);
  cr_assert_str_eq(d->entries[0].name, "a");
  cr_assert_str_eq(d->entries[1].name, "b");
  cr_assert_str_eq(d->entries[2].name, "d");
  cr_assert_eq(d->entries[2].type, DT_DIR);
  cr_assert_eq(d->entries[0].type, DT_REG);
  weft_fs_req_cleanup(&r);
  cr_assert_eq(RUN(loop, weft_fs_scandir(loop, &r, path("d"), on_done)), 0);
  cr_assert_eq(((weft_fs_dir *)r.ptr)->count, 0);
  weft_fs_req_cleanup(&r);
  cr_assert_eq(RUN(loop, weft_fs_scandir(loop, &r, path("none"), on_done)),
               -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_scandir(loop, &r, path("a"), on_done)),
               -ENOTDIR);
  cr_assert_eq(RUN(loop, weft_fs_rmdir(loop, &r, path("a"), on_done)),
               -ENOTDIR);
  cr_assert_eq(RUN(loop, weft_fs_rmdir(loop, &r, path("none"), on_done)),
               -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_rmdir(loop, &r, dir, on_done)), -ENOTEMPTY);
  cr_assert_eq(RUN(loop, weft_fs_rmdir(loop, &r, path("d"), on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_mkdtemp(loop, &r, path("t-XXXXXX"), on_done)),
               0);
  struct stat st;
  cr_assert_eq(stat(r.ptr, &st), 0);
  cr_assert(S_ISDIR(st.st_mode));
  cr_assert_eq(strncmp(r.ptr, path("t-"), strlen(path("t-"))), 0);
  weft_fs_req_cleanup(&r);
  cr_assert_eq(RUN(loop, weft_fs_mkdtemp(loop, &r, "/nonexistent-dir/t-XXXXXX",
                                         on_done)),
               -ENOENT);
  cr_assert_eq(weft_fs_mkdtemp(loop, &r, path("bad"), on_done), -EINVAL);
  cr_assert_eq(RUN(loop, weft_fs_mkdir(loop, &r, path("x/y"), 0755, on_done)),
               -ENOENT);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

Test(fs, unlink_rename_access_chmod_utime, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  put_file(path("a"), "abc");
  weft_fs_req r = {0};
  char a[256], b[256];
  strcpy(a, path("a"));
  strcpy(b, path("b"));
  cr_assert_eq(RUN(loop, weft_fs_rename(loop, &r, a, b, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_access(loop, &r, a, F_OK, on_done)), -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_access(loop, &r, b, R_OK | W_OK, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_chmod(loop, &r, b, 0600, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, b, on_done)), 0);
  cr_assert_eq(r.statbuf.st_mode & 0777, 0600);
  cr_assert_eq(RUN(loop, weft_fs_utime(loop, &r, b, 1000.5, 2000.25, on_done)),
               0);
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, b, on_done)), 0);
  cr_assert_eq(r.statbuf.st_mtim.tv_sec, 2000);
  cr_assert_eq(r.statbuf.st_mtim.tv_nsec, 250000000);
  cr_assert_eq(r.statbuf.st_atim.tv_sec, 1000);
  cr_assert_eq(RUN(loop, weft_fs_unlink(loop, &r, b, on_done)), 0);
  /* errors */
  cr_assert_eq(RUN(loop, weft_fs_unlink(loop, &r, b, on_done)), -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_unlink(loop, &r, dir, on_done)), -EISDIR);
  cr_assert_eq(RUN(loop, weft_fs_rename(loop, &r, a, b, on_done)), -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_chmod(loop, &r, a, 0600, on_done)), -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_utime(loop, &r, a, 0, 0, on_done)), -ENOENT);
  cr_assert_eq(weft_fs_access(loop, &r, b, 0x100, on_done), -EINVAL);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

Test(fs, read_file_and_atomic_write_file, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  weft_fs_req r = {0};
  char f[256];
  strcpy(f, path("f"));
  cr_assert_eq(
      RUN(loop, weft_fs_write_file(loop, &r, f, "first", 5, 0640, on_done)), 0);
  cr_assert_eq(
      RUN(loop, weft_fs_write_file(loop, &r, f, "second!", 7, 0640, on_done)),
      0);
  cr_assert_eq(RUN(loop, weft_fs_read_file(loop, &r, f, on_done)), 7);
  weft_fs_buf *b = r.ptr;
  cr_assert_eq(b->len, 7);
  cr_assert_str_eq(b->data, "second!");
  weft_fs_req_cleanup(&r);
  cr_assert_eq(RUN(loop, weft_fs_scandir(loop, &r, dir, on_done)), 1,
               "no temporary left");
  weft_fs_req_cleanup(&r);
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, f, on_done)), 0);
  cr_assert_eq(r.statbuf.st_mode & 0777, 0640);
  cr_assert_eq(
      RUN(loop, weft_fs_write_file(loop, &r, f, NULL, 0, 0600, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_read_file(loop, &r, f, on_done)), 0);
  weft_fs_req_cleanup(&r);
  /* errors */
  cr_assert_eq(RUN(loop, weft_fs_read_file(loop, &r, dir, on_done)), -EISDIR);
  cr_assert_eq(RUN(loop, weft_fs_read_file(loop, &r, path("none"), on_done)),
               -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_write_file(loop, &r, path("no/f"), "x", 1,
                                            0600, on_done)),
               -ENOENT);
  cr_assert_eq(weft_fs_write_file(loop, &r, f, NULL, 3, 0600, on_done),
               -EINVAL);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

Test(fs, copyfile_and_sendfile, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  char src[256], dst[256];
  strcpy(src, path("src"));
  strcpy(dst, path("dst"));
  put_file(src, "copy me please");
  chmod(src, 0604);
  weft_fs_req r = {0};
  cr_assert_eq(RUN(loop, weft_fs_copyfile(loop, &r, src, dst, 0, on_done)), 0);
  cr_assert_eq(RUN(loop, weft_fs_read_file(loop, &r, dst, on_done)), 14);
  cr_assert_str_eq(((weft_fs_buf *)r.ptr)->data, "copy me please");
  weft_fs_req_cleanup(&r);
  struct stat st;
  cr_assert_eq(stat(dst, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0604);
  cr_assert_eq(RUN(loop, weft_fs_copyfile(loop, &r, src, dst, WEFT_FS_COPY_EXCL,
                                          on_done)),
               -EEXIST);
  cr_assert_eq(
      RUN(loop, weft_fs_copyfile(loop, &r, path("none"), dst, 0, on_done)),
      -ENOENT);
  cr_assert_eq(RUN(loop, weft_fs_copyfile(loop, &r, dir, dst, 0, on_done)),
               -EISDIR);
  cr_assert_eq(weft_fs_copyfile(loop, &r, src, dst, 0x80, on_done), -EINVAL);
  /* sendfile: file -> socket, then file -> file */
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int in = open(src, O_RDONLY);
  cr_assert_eq(
      RUN(loop, weft_fs_sendfile(loop, &r, sv[0], in, 5, 100, on_done)), 9);
  char buf[32] = {0};
  cr_assert_eq(read(sv[1], buf, sizeof buf), 9);
  cr_assert_str_eq(buf, "me please");
  int out = open(dst, O_WRONLY | O_TRUNC);
  cr_assert_eq(RUN(loop, weft_fs_sendfile(loop, &r, out, in, 0, 4, on_done)),
               4);
  cr_assert_eq(RUN(loop, weft_fs_sendfile(loop, &r, out, -1, 0, 4, on_done)),
               -EBADF);
  close(out);
  close(in);
  close(sv[0]);
  close(sv[1]);
  cr_assert_eq(stat(dst, &st), 0);
  cr_assert_eq(st.st_size, 4);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* open(2)'s rule: `mode` is for a new file, less the umask; an existing
 * file keeps its mode. */
Test(fs, write_file_mode_is_for_a_new_file_less_the_umask, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  mode_t old_mask = umask(027);
  weft_fs_req r = {0};
  char f[256];
  strcpy(f, path("new"));
  cr_assert_eq(
      RUN(loop, weft_fs_write_file(loop, &r, f, "abc", 3, 0666, on_done)), 0);
  struct stat st;
  cr_assert_eq(stat(f, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0640, "got %o",
               (unsigned)(st.st_mode & 07777));
  /* an existing file keeps its mode, whatever `mode` says */
  cr_assert_eq(chmod(f, 0604), 0);
  cr_assert_eq(
      RUN(loop, weft_fs_write_file(loop, &r, f, "defg", 4, 0600, on_done)), 0);
  cr_assert_eq(stat(f, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0604, "got %o",
               (unsigned)(st.st_mode & 07777));
  cr_assert_eq(st.st_size, 4);
  umask(0);
  cr_assert_eq(RUN(loop, weft_fs_write_file(loop, &r, path("open"), "x", 1,
                                            0666, on_done)),
               0);
  cr_assert_eq(stat(path("open"), &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0666, "got %o",
               (unsigned)(st.st_mode & 07777));
  umask(old_mask);
  cr_assert_eq(RUN(loop, weft_fs_scandir(loop, &r, dir, on_done)), 2,
               "no temporary left");
  weft_fs_req_cleanup(&r);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

static void write_at(int fd, char c, off_t off, size_t n) {
  char buf[8192];
  cr_assert_leq(n, sizeof buf);
  memset(buf, c, n);
  cr_assert_eq(pwrite(fd, buf, n, off), (ssize_t)n);
}

static void assert_same_content(const char *a, const char *b) {
  int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
  cr_assert(fa >= 0 && fb >= 0);
  static char ba[1 << 20], bb[1 << 20];
  for (;;) {
    ssize_t na = read(fa, ba, sizeof ba), nb = read(fb, bb, sizeof bb);
    cr_assert_eq(na, nb);
    cr_assert_geq(na, 0);
    if (na == 0) break;
    cr_assert_eq(memcmp(ba, bb, (size_t)na), 0);
  }
  close(fa);
  close(fb);
}

#define MiB (1024 * 1024)

/* A 64 MiB file with three 8 KiB data extents copies as 64 MiB with about
 * 24 KiB allocated, not 64 MiB; once ending in a hole, once in data, and
 * once from tmpfs (/dev/shm) to /tmp, where copy_file_range says EXDEV
 * and the data extents go through read/write. */
Test(fs, copyfile_keeps_holes, .timeout = 30) {
  weft_loop *loop = th_loop();
  make_dir();
  char src[256], dst[256], shm[64] = "/dev/shm/weft-fs-XXXXXX";
  strcpy(dst, path("copy"));
  struct stat sh;
  bool have_shm = stat("/dev/shm", &sh) == 0 && S_ISDIR(sh.st_mode);
  for (int tail_data = 0; tail_data < 2 + have_shm; tail_data++) {
    if (tail_data == 2) {
      cr_assert_not_null(mkdtemp(shm));
      snprintf(src, sizeof src, "%s/sparse", shm);
    } else {
      strcpy(src, path("sparse"));
    }
    unlink(src);
    unlink(dst);
    int fd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    write_at(fd, 'a', 0, 8192);
    write_at(fd, 'b', 20 * MiB, 8192);
    if (tail_data)
      write_at(fd, 'c', 64 * MiB - 8192, 8192);
    else {
      write_at(fd, 'c', 40 * MiB + 100, 8192);
      cr_assert_eq(ftruncate(fd, 64 * MiB), 0);
    }
    close(fd);
    struct stat ss, ds;
    cr_assert_eq(stat(src, &ss), 0);
    cr_assert_eq(ss.st_size, 64 * MiB);
    cr_assert_lt(ss.st_blocks * 512, MiB, "this file system keeps holes");
    weft_fs_req r = {0};
    int64_t res = RUN(loop, weft_fs_copyfile(loop, &r, src, dst, 0, on_done));
    cr_assert_eq(res, 0, "%s", weft_err_name((int)res));
    cr_assert_eq(stat(dst, &ds), 0);
    cr_assert_eq(ds.st_size, ss.st_size);
    cr_assert_leq(ds.st_blocks, ss.st_blocks + 64, "src %lld blocks, copy %lld",
                  (long long)ss.st_blocks, (long long)ds.st_blocks);
    assert_same_content(src, dst);
  }
  if (have_shm) th_rm_tree(shm);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* A copy that fails part-way (a file-size limit: EFBIG from the write, or
 * from the final ftruncate of a sparse file) removes the destination it
 * created; one that existed before is left in place. */
Test(fs, failed_copy_removes_what_it_created, .timeout = 30) {
  weft_loop *loop = th_loop();
  make_dir();
  char src[256], sparse[256], dst[256];
  strcpy(src, path("src"));
  strcpy(sparse, path("sparse"));
  strcpy(dst, path("dst"));
  int fd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
  for (int i = 0; i < 32; i++)
    write_at(fd, 'x', i * 8192, 8192);
  close(fd);
  fd = open(sparse, O_RDWR | O_CREAT | O_TRUNC, 0644);
  write_at(fd, 'y', 0, 4096);
  cr_assert_eq(ftruncate(fd, MiB), 0);
  close(fd);
  struct sigaction ign = {.sa_handler = SIG_IGN}, old_xfsz;
  sigaction(SIGXFSZ, &ign, &old_xfsz);
  struct rlimit old_lim, lim;
  cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
  lim = old_lim;
  lim.rlim_cur = 64 * 1024;
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  weft_fs_req r = {0};
  const char *srcs[2] = {src, sparse};
  for (int i = 0; i < 2; i++)
    for (int flags = 0; flags <= WEFT_FS_COPY_EXCL; flags++) {
      int64_t res =
          RUN(loop, weft_fs_copyfile(loop, &r, srcs[i], dst, flags, on_done));
      cr_assert_eq(res, -EFBIG, "%s", weft_err_name((int)res));
      cr_assert_eq(access(dst, F_OK), -1, "no partial copy of %s", srcs[i]);
      cr_assert_eq(errno, ENOENT);
    }
  /* an existing destination is not removed */
  put_file(dst, "old");
  cr_assert_eq(RUN(loop, weft_fs_copyfile(loop, &r, src, dst, 0, on_done)),
               -EFBIG);
  cr_assert_eq(access(dst, F_OK), 0);
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
  sigaction(SIGXFSZ, &old_xfsz, NULL);
  /* the loop is still usable, and the same copy now succeeds */
  cr_assert_eq(RUN(loop, weft_fs_copyfile(loop, &r, src, dst, 0, on_done)), 0);
  assert_same_content(src, dst);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* A file copied onto itself is refused, not truncated to nothing. */
Test(fs, copyfile_onto_itself_is_refused, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  char src[256];
  strcpy(src, path("self"));
  put_file(src, "keep me");
  cr_assert_eq(symlink(src, path("alias")), 0);
  weft_fs_req r = {0};
  cr_assert_eq(RUN(loop, weft_fs_copyfile(loop, &r, src, src, 0, on_done)),
               -EINVAL);
  cr_assert_eq(
      RUN(loop, weft_fs_copyfile(loop, &r, src, path("alias"), 0, on_done)),
      -EINVAL);
  cr_assert_eq(RUN(loop, weft_fs_read_file(loop, &r, src, on_done)), 7);
  cr_assert_str_eq(((weft_fs_buf *)r.ptr)->data, "keep me");
  weft_fs_req_cleanup(&r);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* Each allocation of a copy, in both forms, may fail: the start call
 * returns -ENOMEM and nothing is created. */
typedef struct copy_round {
  int form; /* 0: callback, 1: future */
  char src[256], dst[256];
} copy_round;

static int copyfile_round(weft_loop *loop, void *arg) {
  copy_round *c = arg;
  weft_fs_req r = {0};
  weft_future *f = NULL;
  calls = 0;
  int err = c->form == 0
                ? weft_fs_copyfile(loop, &r, c->src, c->dst, 0, on_done)
                : weft_fs_copyfile_future(loop, c->src, c->dst, 0, &f);
  if (err != 0) {
    cr_assert_null(f);
    cr_assert_eq(access(c->dst, F_OK), -1, "nothing created");
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0) {
    cr_assert_eq(c->form == 0 ? calls : 1, 1);
    cr_assert_eq(c->form == 0 ? last : weft_future_error(f), 0);
    assert_same_content(c->src, c->dst);
    unlink(c->dst);
  }
  weft_future_unref(f);
  return err;
}

Test(fs, copyfile_allocation_failures_create_nothing, .timeout = 30) {
  make_dir();
  copy_round c;
  strcpy(c.src, path("src"));
  strcpy(c.dst, path("dst"));
  put_file(c.src, "payload");
  for (c.form = 0; c.form < 2; c.form++)
    th_alloc_sweep_run(
        &(th_sweep){.op = copyfile_round, .arg = &c, .max_rounds = 100});
  th_rm_tree(dir);
}

Test(fs, bad_arguments, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_fs_req r = {0};
  weft_future *f = NULL;
  struct iovec v = {NULL, 0};
  cr_assert_eq(weft_fs_open(NULL, &r, "/tmp", O_RDONLY, 0, on_done), -EINVAL);
  cr_assert_eq(weft_fs_open(loop, NULL, "/tmp", O_RDONLY, 0, on_done), -EINVAL);
  cr_assert_eq(weft_fs_open(loop, &r, "/tmp", O_RDONLY, 0, NULL), -EINVAL);
  cr_assert_eq(weft_fs_open(loop, &r, NULL, O_RDONLY, 0, on_done), -EINVAL);
  cr_assert_eq(weft_fs_rename(loop, &r, "/tmp/a", NULL, on_done), -EINVAL);
  cr_assert_eq(weft_fs_read(loop, &r, 0, NULL, 1, 0, on_done), -EINVAL);
  cr_assert_eq(weft_fs_write(loop, &r, 1, &v, IOV_MAX + 1, 0, on_done),
               -EINVAL);
  cr_assert_eq(weft_fs_ftruncate(loop, &r, 0, UINT64_MAX, on_done), -EINVAL);
  cr_assert_eq(weft_fs_stat_future(NULL, "/tmp", &f), -EINVAL);
  cr_assert_eq(weft_fs_stat_future(loop, "/tmp", NULL), -EINVAL);
  cr_assert_eq(weft_fs_stat_future(loop, NULL, &f), -EINVAL);
  cr_assert_null(f);
  cr_assert_eq(weft_fs_cancel(NULL), -EINVAL);
  weft_fs_req never = {0};
  cr_assert_eq(weft_fs_cancel(&never), -EINVAL);
  weft_fs_req_cleanup(NULL);
  cr_assert(!weft_loop_alive(loop));
  calls = 0;
  cr_assert_eq(RUN(loop, weft_fs_stat(loop, &r, "/tmp", on_done)), 0,
               "still usable");
  th_loop_finish(loop);
}

Test(fs, future_forms, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  put_file(path("f"), "future");
  weft_future *open_f, *stat_f, *rf, *bad, *tmp, *ls;
  cr_assert_eq(weft_fs_open_future(loop, path("f"), O_RDONLY, 0, &open_f), 0);
  cr_assert_eq(weft_fs_stat_future(loop, path("f"), &stat_f), 0);
  cr_assert_eq(weft_fs_read_file_future(loop, path("f"), &rf), 0);
  cr_assert_eq(weft_fs_unlink_future(loop, path("none"), &bad), 0);
  cr_assert_eq(weft_fs_mkdtemp_future(loop, path("t-XXXXXX"), &tmp), 0);
  cr_assert_eq(weft_fs_scandir_future(loop, dir, &ls), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  int fd = (int)weft_future_value_i64(open_f);
  cr_assert_geq(fd, 0);
  close(fd);
  cr_assert_eq(((struct stat *)weft_future_value(stat_f))->st_size, 6);
  cr_assert_str_eq(((weft_fs_buf *)weft_future_value(rf))->data, "future");
  cr_assert_eq(weft_future_error(bad), -ENOENT);
  cr_assert_eq(weft_future_get_state(tmp), WEFT_FUTURE_FULFILLED);
  size_t n = ((weft_fs_dir *)weft_future_value(ls))->count;
  cr_assert(n == 1 || n == 2, "f, and the temporary directory if made first");
  weft_future *all[] = {open_f, stat_f, rf, bad, tmp, ls};
  for (int i = 0; i < 6; i++)
    weft_future_unref(all[i]);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

static int ok_count, cancel_count;
static void count_done(weft_fs_req *req) {
  if (req->result == 0)
    ok_count++;
  else if (req->result == -ECANCELED)
    cancel_count++;
  else
    cr_assert_fail("unexpected %lld", (long long)req->result);
}

Test(fs, thousand_concurrent_operations, .timeout = 30) {
  weft_loop *loop = th_loop();
  ok_count = cancel_count = 0;
  weft_fs_req *r = calloc(1000, sizeof *r);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(weft_fs_stat(loop, &r[i], "/tmp", count_done), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(ok_count, 1000);
  free(r);
  th_loop_finish(loop);
}

/* Holds the only io worker until weft_work_cancel() or release. */
static atomic_int gate_started, gate_open;
static void gate_work(weft_work *w) {
  (void)w;
  atomic_store(&gate_started, 1);
  while (!atomic_load(&gate_open) && !weft_work_cancelled())
    sched_yield();
}
static void gate_done(weft_work *w, int status) {
  (void)w;
  cr_assert_eq(status, 0);
  ok_count++;
}

Test(fs, cancel_queued_operations, .timeout = 30) {
  weft_loop *loop = th_loop();
  ok_count = cancel_count = 0;
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  cr_assert_eq(weft_pool_resize(loop, 0, 1), 0);
  weft_work gate;
  cr_assert_eq(
      weft_work_submit(loop, &gate, WEFT_LANE_IO, gate_work, gate_done), 0);
  while (!atomic_load(&gate_started))
    sched_yield();
  weft_fs_req r[20];
  weft_future *f[5];
  for (int i = 0; i < 20; i++)
    cr_assert_eq(weft_fs_stat(loop, &r[i], "/tmp", count_done), 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(weft_fs_stat_future(loop, "/tmp", &f[i]), 0);
  for (int i = 0; i < 20; i += 2)
    cr_assert_eq(weft_fs_cancel(&r[i]), 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(weft_future_cancel(f[i]), 0);
  atomic_store(&gate_open, 1);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(cancel_count, 10);
  cr_assert_eq(ok_count, 10 + 1);
  cr_assert_eq(weft_fs_cancel(&r[0]), -EALREADY);
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(weft_future_error(f[i]), -ECANCELED);
    weft_future_unref(f[i]);
  }
  th_loop_finish(loop);
}

Test(fs, loop_free_cancels_queued_operations, .timeout = 30) {
  weft_loop *loop = th_loop();
  ok_count = cancel_count = 0;
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  cr_assert_eq(weft_pool_resize(loop, 0, 1), 0);
  weft_work gate;
  cr_assert_eq(
      weft_work_submit(loop, &gate, WEFT_LANE_IO, gate_work, gate_done), 0);
  while (!atomic_load(&gate_started))
    sched_yield();
  weft_fs_req r[8];
  for (int i = 0; i < 8; i++)
    cr_assert_eq(weft_fs_stat(loop, &r[i], "/tmp", count_done), 0);
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(cancel_count, 8);
  cr_assert_eq(ok_count, 1);
  cr_assert_eq(weft_alloc_live(), 0);
}

static int stat_realpath_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_fs_req r = {0};
  weft_future *f = NULL;
  calls = 0;
  int err = weft_fs_stat(loop, &r, "/tmp", on_done);
  if (err == 0) err = weft_fs_realpath_future(loop, "/tmp", &f);
  if (err != 0) cr_assert_null(f);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0) {
    cr_assert_eq(calls, 1);
    cr_assert(weft_future_get_state(f) != WEFT_FUTURE_PENDING);
    int ferr = weft_future_error(f); /* a worker's allocation may fail too */
    cr_assert(ferr == 0 || ferr == -ENOMEM);
  }
  weft_future_unref(f);
  weft_fs_req_cleanup(&r);
  return err;
}

Test(fs, allocation_failure, .timeout = 30) {
  th_alloc_sweep_run(&(th_sweep){.op = stat_realpath_round, .max_rounds = 200});
}

/* Every operation refuses a NULL loop, request, callback, path or out, and
 * starts nothing. */
Test(fs, every_operation_checks_its_arguments, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_fs_req r = {0};
  weft_future *f = NULL;
  struct iovec v = {NULL, 0};
  const char *p = "/tmp";
#define BOTH(name, ...)                                                        \
  do {                                                                         \
    cr_assert_eq(weft_fs_##name(NULL, &r, __VA_ARGS__, on_done), -EINVAL);     \
    cr_assert_eq(weft_fs_##name(loop, NULL, __VA_ARGS__, on_done), -EINVAL);   \
    cr_assert_eq(weft_fs_##name(loop, &r, __VA_ARGS__, NULL), -EINVAL);        \
    cr_assert_eq(weft_fs_##name##_future(NULL, __VA_ARGS__, &f), -EINVAL);     \
    cr_assert_eq(weft_fs_##name##_future(loop, __VA_ARGS__, NULL), -EINVAL);   \
  } while (0)
  BOTH(open, p, O_RDONLY, 0);
  BOTH(close, 0);
  BOTH(read, 0, &v, 1, 0);
  BOTH(write, 1, &v, 1, 0);
  BOTH(stat, p);
  BOTH(lstat, p);
  BOTH(fstat, 0);
  BOTH(unlink, p);
  BOTH(rename, p, p);
  BOTH(mkdir, p, 0700);
  BOTH(mkdtemp, "/tmp/x-XXXXXX");
  BOTH(rmdir, p);
  BOTH(scandir, p);
  BOTH(fsync, 0);
  BOTH(fdatasync, 0);
  BOTH(ftruncate, 0, 0);
  BOTH(sendfile, 1, 0, 0, 1);
  BOTH(copyfile, p, p, 0);
  BOTH(realpath, p);
  BOTH(access, p, F_OK);
  BOTH(chmod, p, 0700);
  BOTH(link, p, p);
  BOTH(symlink, p, p);
  BOTH(readlink, p);
  BOTH(utime, p, 0, 0);
  BOTH(read_file, p);
  BOTH(write_file, p, "x", 1, 0600);
#undef BOTH
#define NOPATH(name, ...)                                                      \
  do {                                                                         \
    cr_assert_eq(weft_fs_##name(loop, &r, __VA_ARGS__, on_done), -EINVAL);     \
    cr_assert_eq(weft_fs_##name##_future(loop, __VA_ARGS__, &f), -EINVAL);     \
  } while (0)
  NOPATH(open, NULL, O_RDONLY, 0);
  NOPATH(stat, NULL);
  NOPATH(lstat, NULL);
  NOPATH(unlink, NULL);
  NOPATH(rename, NULL, p);
  NOPATH(rename, p, NULL);
  NOPATH(mkdir, NULL, 0700);
  NOPATH(mkdtemp, NULL);
  NOPATH(mkdtemp, "/tmp/short");
  NOPATH(rmdir, NULL);
  NOPATH(scandir, NULL);
  NOPATH(copyfile, NULL, p, 0);
  NOPATH(copyfile, p, NULL, 0);
  NOPATH(realpath, NULL);
  NOPATH(access, NULL, F_OK);
  NOPATH(chmod, NULL, 0700);
  NOPATH(link, NULL, p);
  NOPATH(symlink, p, NULL);
  NOPATH(readlink, NULL);
  NOPATH(utime, NULL, 0, 0);
  NOPATH(read_file, NULL);
  NOPATH(write_file, NULL, "x", 1, 0600);
#undef NOPATH
  cr_assert_null(f);
  cr_assert(!weft_loop_alive(loop), "nothing was started");
  th_loop_finish(loop);
}

static int settled;
static void on_settled(weft_future *f, void *arg) {
  (void)f;
  (void)arg;
  settled++;
}

Test(fs, future_forms_with_strings_and_writes, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  settled = 0;
  char f1[256], l1[256];
  strcpy(f1, path("f"));
  strcpy(l1, path("l"));
  weft_future *w = NULL;
  cr_assert_eq(weft_fs_write_file_future(loop, f1, "abc", 3, 0600, &w), 0);
  cr_assert_eq(weft_future_on_settled(w, on_settled, NULL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(settled, 1);
  cr_assert_eq(weft_future_value_i64(w), 0);
  weft_future_unref(w);
  weft_future *s = NULL, *rl = NULL, *rp = NULL, *cp = NULL;
  cr_assert_eq(weft_fs_symlink_future(loop, "f", l1, &s), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_error(s), 0);
  cr_assert_eq(weft_fs_readlink_future(loop, l1, &rl), 0);
  cr_assert_eq(weft_fs_realpath_future(loop, l1, &rp), 0);
  cr_assert_eq(
      weft_fs_copyfile_future(loop, f1, path("g"), WEFT_FS_COPY_EXCL, &cp), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_str_eq(weft_future_value(rl), "f");
  char *real = realpath(f1, NULL);
  cr_assert_str_eq(weft_future_value(rp), real);
  free(real);
  cr_assert_eq(weft_future_get_state(cp), WEFT_FUTURE_FULFILLED);
  weft_future *again = NULL;
  cr_assert_eq(
      weft_fs_copyfile_future(loop, f1, path("g"), WEFT_FS_COPY_EXCL, &again),
      0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_error(again), -EEXIST);
  weft_future *all[] = {s, rl, rp, cp, again};
  for (int i = 0; i < 5; i++)
    weft_future_unref(all[i]);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* A file of 9 MiB + 123 bytes: large enough for chunk jobs. */
#define BIG ((9u << 20) + 123u)
static char *make_big(const char *p) {
  char *data = malloc(BIG);
  for (size_t i = 0; i < BIG; i++)
    data[i] = (char)(i * 7 % 251);
  FILE *f = fopen(p, "w");
  cr_assert_eq(fwrite(data, 1, BIG, f), BIG);
  fclose(f);
  return data;
}

Test(fs, large_read_file_uses_chunks_in_flight, .timeout = 30) {
  weft_loop *loop = th_loop();
  make_dir();
  char big[256];
  strcpy(big, path("big"));
  char *data = make_big(big);
  weft_fs_req r = {0};
  cr_assert_eq(RUN(loop, weft_fs_read_file(loop, &r, big, on_done)), BIG);
  weft_fs_buf *b = r.ptr;
  cr_assert_eq(b->len, BIG);
  cr_assert_eq(memcmp(b->data, data, BIG), 0);
  cr_assert_eq(b->data[BIG], '\0');
  weft_fs_req_cleanup(&r);
  weft_future *f = NULL;
  cr_assert_eq(weft_fs_read_file_future(loop, big, &f), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  b = weft_future_value(f);
  cr_assert_eq(b->len, BIG);
  cr_assert_eq(memcmp(b->data, data, BIG), 0);
  weft_future_unref(f);
  free(data);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

static atomic_int gate2_started, gate2_open;
static void gate2_work(weft_work *w) {
  (void)w;
  atomic_store(&gate2_started, 1);
  while (!atomic_load(&gate2_open) && !weft_work_cancelled())
    sched_yield();
}

/* The chunk jobs are queued behind a second gate when the cancel comes. */
Test(fs, cancel_large_read_file_between_chunks, .timeout = 30) {
  weft_loop *loop = th_loop();
  make_dir();
  char big[256];
  strcpy(big, path("big"));
  free(make_big(big));
  ok_count = cancel_count = 0;
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  atomic_store(&gate2_started, 0);
  atomic_store(&gate2_open, 0);
  cr_assert_eq(weft_pool_resize(loop, 0, 1), 0);
  weft_work g1, g2;
  weft_fs_req r = {0};
  cr_assert_eq(weft_work_submit(loop, &g1, WEFT_LANE_IO, gate_work, gate_done),
               0);
  while (!atomic_load(&gate_started))
    sched_yield();
  calls = 0;
  cr_assert_eq(weft_fs_read_file(loop, &r, big, on_done), 0);
  cr_assert_eq(weft_work_submit(loop, &g2, WEFT_LANE_IO, gate2_work, gate_done),
               0);
  atomic_store(&gate_open, 1); /* the open runs, then g2 holds the worker */
  weft_pool_stats s = {0};
  /* g2 runs and the 4 chunk jobs wait: queued, or (when the worker took
   * g2 after the chunks arrived) one of them in the worker's batch behind
   * g2, counted as running and not yet started: 1 + 4 either way */
  while (!atomic_load(&gate2_started) || s.queued + s.running != 5) {
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
    cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &s), 0);
    sched_yield();
  }
  cr_assert_eq(calls, 0);
  cr_assert_eq(weft_fs_cancel(&r), 0);
  atomic_store(&gate2_open, 1);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(calls, 1);
  cr_assert_eq(last, -ECANCELED);
  cr_assert_null(r.ptr);
  cr_assert_eq(ok_count, 2, "both gates");
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* Loop teardown while a large read_file's chunks are queued: they are
 * cancelled, the file is closed, the callback runs once, nothing leaks. */
Test(fs, loop_free_during_large_read_file, .timeout = 30) {
  weft_loop *loop = th_loop();
  make_dir();
  char big[256];
  strcpy(big, path("big"));
  free(make_big(big));
  ok_count = cancel_count = 0;
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  atomic_store(&gate2_started, 0);
  atomic_store(&gate2_open, 0);
  cr_assert_eq(weft_pool_resize(loop, 0, 1), 0);
  weft_work g1, g2;
  weft_fs_req r = {0};
  cr_assert_eq(weft_work_submit(loop, &g1, WEFT_LANE_IO, gate_work, gate_done),
               0);
  while (!atomic_load(&gate_started))
    sched_yield();
  calls = 0;
  cr_assert_eq(weft_fs_read_file(loop, &r, big, on_done), 0);
  cr_assert_eq(weft_work_submit(loop, &g2, WEFT_LANE_IO, gate2_work, gate_done),
               0);
  atomic_store(&gate_open, 1);
  weft_pool_stats s = {0};
  /* g2 runs and the 4 chunk jobs wait: queued, or (when the worker took
   * g2 after the chunks arrived) one of them in the worker's batch behind
   * g2, counted as running and not yet started: 1 + 4 either way */
  while (!atomic_load(&gate2_started) || s.queued + s.running != 5) {
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
    cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &s), 0);
    sched_yield();
  }
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(calls, 1);
  cr_assert_eq(last, -ECANCELED);
  cr_assert_null(r.ptr);
  cr_assert_eq(ok_count, 2);
  cr_assert_eq(weft_alloc_live(), 0);
  th_rm_tree(dir);
}

/* A positioned read of cached data is done on the loop's thread (no pool
 * hop), but still completes later, exactly once; cancelling it then says
 * it already finished. A read of uncached data or at the file position
 * takes the pool path with the same results. */
Test(fs, cached_read_completes_deferred_exactly_once, .timeout = 20) {
  make_dir();
  put_file(path("warm"), "hello, page cache");
  weft_loop *loop = th_loop();
  int fd = open(path("warm"), O_RDONLY);
  cr_assert_geq(fd, 0);
  char buf[64] = {0};
  struct iovec iov = {buf, 5};
  weft_fs_req r;
  calls = 0;
  cr_assert_eq(weft_fs_read(loop, &r, fd, &iov, 1, 7, on_done), 0);
  cr_assert_eq(calls, 0, "never inline");
  int c = weft_fs_cancel(&r);
  cr_assert(c == -EALREADY || c == 0 || c == -EBUSY, "cancel gave %d", c);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(calls, 1);
  if (c == 0) {
    cr_assert_eq(last, -ECANCELED);
  } else {
    cr_assert_eq(last, 5);
    cr_assert_str_eq(buf, "page ");
  }
  /* past the end: 0 bytes, also exactly once */
  cr_assert_eq(RUN(loop, weft_fs_read(loop, &r, fd, &iov, 1, 1000, on_done)),
               0);
  /* the file position form */
  memset(buf, 0, sizeof buf);
  cr_assert_eq(RUN(loop, weft_fs_read(loop, &r, fd, &iov, 1, -1, on_done)), 5);
  cr_assert_str_eq(buf, "hello");
  /* the future form */
  weft_future *f;
  memset(buf, 0, sizeof buf);
  cr_assert_eq(weft_fs_read_future(loop, fd, &iov, 1, 0, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_value_i64(f), 5);
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop);
  th_rm_tree(dir);
}
