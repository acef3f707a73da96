/* The rest of libuv's fs surface: statfs, mkstemp, chown/fchown/lchown,
 * fchmod, futime/lutime, fallocate, copyfile's clone flags and streamed
 * directory reading (opendir/readdir/closedir). Both forms, every bad
 * input, allocation failures. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
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
  strcpy(dir, "/tmp/weft-fsm-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static size_t count_entries(const char *d) {
  DIR *h = opendir(d);
  cr_assert_not_null(h);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(h)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(h);
  return n;
}

static int count_fds(void) {
  DIR *h = opendir("/proc/self/fd");
  cr_assert_not_null(h);
  int n = 0;
  while (readdir(h) != NULL)
    n++;
  closedir(h);
  return n;
}

#define RUN(loop, start)                                                       \
  ({                                                                           \
    calls = 0;                                                                 \
    int start_rc_ = (start);                                                   \
    cr_assert_eq(start_rc_, 0, "start: %s", weft_err_name(start_rc_));         \
    cr_assert_eq(calls, 0, "never inline");                                    \
    weft_loop_run((loop), WEFT_RUN_DEFAULT);                                   \
    cr_assert_eq(calls, 1);                                                    \
    last;                                                                      \
  })
#define EXPECT(expr, want)                                                     \
  do {                                                                         \
    int64_t got_ = (expr);                                                     \
    cr_assert_eq(got_, (int64_t)(want), "%s: got %s, want %s", #expr,          \
                 weft_err_name((int)got_), weft_err_name((int)(want)));        \
  } while (0)

static void put_file(const char *p, const char *content) {
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(content, f);
  fclose(f);
}

static void assert_content(const char *p, const char *want) {
  FILE *f = fopen(p, "r");
  cr_assert_not_null(f, "%s", p);
  char buf[256] = {0};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  cr_assert_eq(n, strlen(want));
  cr_assert_str_eq(buf, want);
}

/* Runs the loop until `f` settles; returns its error (0 on success). */
static int await(weft_loop *loop, weft_future *f) {
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert(weft_future_get_state(f) != WEFT_FUTURE_PENDING);
  return weft_future_error(f);
}

/* ---- statfs ---------------------------------------------------------- */

Test(fs_more, statfs, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  weft_fs_req r = {0};
  EXPECT(RUN(loop, weft_fs_statfs(loop, &r, dir, on_done)), 0);
  struct statfs sf;
  cr_assert_eq(statfs(dir, &sf), 0);
  const weft_statfs *s = r.ptr;
  cr_assert_not_null(s);
  cr_assert_eq(s->type, (uint64_t)sf.f_type);
  cr_assert_eq(s->bsize, (uint64_t)sf.f_bsize);
  cr_assert_eq(s->blocks, (uint64_t)sf.f_blocks);
  cr_assert_eq(s->files, (uint64_t)sf.f_files);
  cr_assert_leq(s->bavail, s->bfree);
  cr_assert_leq(s->bfree, s->blocks);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(s->spare[i], 0);
  weft_fs_req_cleanup(&r);
  EXPECT(RUN(loop, weft_fs_statfs(loop, &r, path("none"), on_done)), -ENOENT);
  cr_assert_null(r.ptr);
  put_file(path("f"), "x");
  EXPECT(RUN(loop, weft_fs_statfs(loop, &r, path("f/x"), on_done)), -ENOTDIR);
  weft_future *f;
  cr_assert_eq(weft_fs_statfs_future(loop, dir, &f), 0);
  EXPECT(await(loop, f), 0);
  cr_assert_eq(((const weft_statfs *)weft_future_value(f))->type,
               (uint64_t)sf.f_type);
  weft_future_unref(f);
  cr_assert_eq(weft_fs_statfs_future(loop, path("none"), &f), 0);
  EXPECT(await(loop, f), -ENOENT);
  weft_future_unref(f);
  EXPECT(weft_fs_statfs(loop, &r, NULL, on_done), -EINVAL);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* ---- mkstemp ---------------------------------------------------------- */

Test(fs_more, mkstemp, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  weft_fs_req r = {0};
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "%s/t-XXXXXX", dir);
  int fd = (int)RUN(loop, weft_fs_mkstemp(loop, &r, tmpl, on_done));
  cr_assert_geq(fd, 0);
  const weft_fs_tmpfile *t = r.ptr;
  cr_assert_eq(t->fd, fd);
  cr_assert_eq(strlen(t->path), strlen(tmpl));
  cr_assert_eq(strncmp(t->path, tmpl, strlen(tmpl) - 6), 0);
  cr_assert_str_neq(t->path + strlen(tmpl) - 6, "XXXXXX");
  struct stat st;
  cr_assert_eq(stat(t->path, &st), 0);
  cr_assert(S_ISREG(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0600);
  cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  cr_assert_eq(write(fd, "ab", 2), 2, "opened read-write");
  close(fd);
  weft_fs_req_cleanup(&r);
  /* bad templates: refused at the start, nothing created */
  snprintf(tmpl, sizeof tmpl, "%s/t-XXXXX", dir);
  EXPECT(weft_fs_mkstemp(loop, &r, tmpl, on_done), -EINVAL);
  snprintf(tmpl, sizeof tmpl, "%s/t-XXXXXXy", dir);
  EXPECT(weft_fs_mkstemp(loop, &r, tmpl, on_done), -EINVAL);
  EXPECT(weft_fs_mkstemp(loop, &r, NULL, on_done), -EINVAL);
  weft_future *f = NULL;
  EXPECT(weft_fs_mkstemp_future(loop, "XXXXX", &f), -EINVAL);
  cr_assert_null(f);
  cr_assert_eq(count_entries(dir), 1);
  snprintf(tmpl, sizeof tmpl, "%s/none/t-XXXXXX", dir);
  EXPECT(RUN(loop, weft_fs_mkstemp(loop, &r, tmpl, on_done)), -ENOENT);
  cr_assert_null(r.ptr);
  /* future form */
  snprintf(tmpl, sizeof tmpl, "%s/u-XXXXXX", dir);
  cr_assert_eq(weft_fs_mkstemp_future(loop, tmpl, &f), 0);
  EXPECT(await(loop, f), 0);
  t = weft_future_value(f);
  cr_assert_geq(t->fd, 0);
  cr_assert_eq(access(t->path, F_OK), 0);
  close(t->fd);
  weft_future_unref(f);
  cr_assert_eq(count_entries(dir), 2);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* A mkstemp future cancelled at once: either the job never ran, or what it
 * made is closed and removed; never a leaked fd or file. */
Test(fs_more, mkstemp_future_cancelled_leaves_nothing, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  int fds = count_fds();
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "%s/c-XXXXXX", dir);
  for (int i = 0; i < 50; i++) {
    weft_future *f;
    cr_assert_eq(weft_fs_mkstemp_future(loop, tmpl, &f), 0);
    weft_future_cancel(f);
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    EXPECT(weft_future_error(f), -ECANCELED);
    weft_future_unref(f);
  }
  cr_assert_eq(count_entries(dir), 0);
  cr_assert_eq(count_fds(), fds);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* ---- chown, fchown, lchown --------------------------------------------- */

Test(fs_more, chown_family, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  char file[256], link[256];
  strcpy(file, path("f"));
  strcpy(link, path("l"));
  put_file(file, "x");
  cr_assert_eq(symlink(file, link), 0);
  uid_t me = getuid();
  gid_t mygid = getgid();
  weft_fs_req r = {0};
  struct stat st;
  /* to ourselves: always allowed */
  EXPECT(RUN(loop, weft_fs_chown(loop, &r, file, me, mygid, on_done)), 0);
  EXPECT(
      RUN(loop, weft_fs_chown(loop, &r, file, (uid_t)-1, (gid_t)-1, on_done)),
      0);
  EXPECT(RUN(loop, weft_fs_lchown(loop, &r, link, me, mygid, on_done)), 0);
  int fd = open(file, O_RDONLY);
  cr_assert_geq(fd, 0);
  EXPECT(RUN(loop, weft_fs_fchown(loop, &r, fd, me, mygid, on_done)), 0);
  cr_assert_eq(stat(file, &st), 0);
  cr_assert_eq(st.st_uid, me);
  cr_assert_eq(st.st_gid, mygid);
  /* to another uid: root may, anyone else gets EPERM */
  uid_t other = me == 0 ? 12345 : me + 1;
  if (me == 0) {
    EXPECT(RUN(loop, weft_fs_chown(loop, &r, file, other, (gid_t)-1, on_done)),
           0);
    cr_assert_eq(stat(file, &st), 0);
    cr_assert_eq(st.st_uid, other);
    cr_assert_eq(st.st_gid, mygid, "-1 leaves the group");
    EXPECT(RUN(loop, weft_fs_fchown(loop, &r, fd, 23456, (gid_t)-1, on_done)),
           0);
    cr_assert_eq(stat(file, &st), 0);
    cr_assert_eq(st.st_uid, 23456);
    EXPECT(RUN(loop, weft_fs_lchown(loop, &r, link, other, 777, on_done)), 0);
    cr_assert_eq(lstat(link, &st), 0);
    cr_assert_eq(st.st_uid, other, "the link itself");
    cr_assert_eq(st.st_gid, 777);
    cr_assert_eq(stat(file, &st), 0);
    cr_assert_eq(st.st_uid, 23456, "not its target");
  } else {
    EXPECT(RUN(loop, weft_fs_chown(loop, &r, file, other, (gid_t)-1, on_done)),
           -EPERM);
    EXPECT(RUN(loop, weft_fs_fchown(loop, &r, fd, other, (gid_t)-1, on_done)),
           -EPERM);
    EXPECT(RUN(loop, weft_fs_lchown(loop, &r, link, other, (gid_t)-1, on_done)),
           -EPERM);
    cr_assert_eq(stat(file, &st), 0);
    cr_assert_eq(st.st_uid, me);
  }
  close(fd);
  /* bad input */
  EXPECT(RUN(loop, weft_fs_chown(loop, &r, path("none"), me, mygid, on_done)),
         -ENOENT);
  EXPECT(RUN(loop, weft_fs_lchown(loop, &r, path("none"), me, mygid, on_done)),
         -ENOENT);
  EXPECT(RUN(loop, weft_fs_fchown(loop, &r, -1, me, mygid, on_done)), -EBADF);
  EXPECT(weft_fs_chown(loop, &r, NULL, me, mygid, on_done), -EINVAL);
  EXPECT(weft_fs_lchown(loop, &r, NULL, me, mygid, on_done), -EINVAL);
  /* future forms */
  weft_future *a, *b, *c;
  cr_assert_eq(weft_fs_chown_future(loop, file, (uid_t)-1, (gid_t)-1, &a), 0);
  cr_assert_eq(weft_fs_lchown_future(loop, link, (uid_t)-1, (gid_t)-1, &b), 0);
  cr_assert_eq(weft_fs_fchown_future(loop, -1, me, mygid, &c), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  EXPECT(weft_future_error(a), 0);
  EXPECT(weft_future_value_i64(a), 0);
  EXPECT(weft_future_error(b), 0);
  EXPECT(weft_future_error(c), -EBADF);
  weft_future_unref(a);
  weft_future_unref(b);
  weft_future_unref(c);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* ---- fchmod -------------------------------------------------------------- */

Test(fs_more, fchmod, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  put_file(path("f"), "x");
  int fd = open(path("f"), O_RDONLY);
  cr_assert_geq(fd, 0);
  weft_fs_req r = {0};
  struct stat st;
  EXPECT(RUN(loop, weft_fs_fchmod(loop, &r, fd, 0640, on_done)), 0);
  cr_assert_eq(fstat(fd, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0640);
  weft_future *f;
  cr_assert_eq(weft_fs_fchmod_future(loop, fd, 0604, &f), 0);
  EXPECT(await(loop, f), 0);
  weft_future_unref(f);
  cr_assert_eq(fstat(fd, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0604);
  close(fd);
  EXPECT(RUN(loop, weft_fs_fchmod(loop, &r, fd, 0600, on_done)), -EBADF);
  cr_assert_eq(weft_fs_fchmod_future(loop, -1, 0600, &f), 0);
  EXPECT(await(loop, f), -EBADF);
  weft_future_unref(f);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* ---- futime, lutime ------------------------------------------------------ */

Test(fs_more, futime_lutime, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  char file[256], link[256];
  strcpy(file, path("f"));
  strcpy(link, path("l"));
  put_file(file, "x");
  cr_assert_eq(symlink(file, link), 0);
  int fd = open(file, O_RDONLY);
  cr_assert_geq(fd, 0);
  weft_fs_req r = {0};
  struct stat st;
  EXPECT(RUN(loop, weft_fs_futime(loop, &r, fd, 1000.5, 2000.25, on_done)), 0);
  cr_assert_eq(fstat(fd, &st), 0);
  cr_assert_eq(st.st_atim.tv_sec, 1000);
  cr_assert_eq(st.st_atim.tv_nsec, 500000000);
  cr_assert_eq(st.st_mtim.tv_sec, 2000);
  cr_assert_eq(st.st_mtim.tv_nsec, 250000000);
  EXPECT(RUN(loop, weft_fs_lutime(loop, &r, link, 3000, 4000.75, on_done)), 0);
  cr_assert_eq(lstat(link, &st), 0);
  cr_assert_eq(st.st_mtim.tv_sec, 4000, "the link itself");
  cr_assert_eq(st.st_mtim.tv_nsec, 750000000);
  cr_assert_eq(stat(file, &st), 0);
  cr_assert_eq(st.st_mtim.tv_sec, 2000, "not its target");
  weft_future *a, *b;
  cr_assert_eq(weft_fs_futime_future(loop, fd, 10, 20, &a), 0);
  cr_assert_eq(weft_fs_lutime_future(loop, link, 30, 40, &b), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  EXPECT(weft_future_error(a), 0);
  EXPECT(weft_future_error(b), 0);
  weft_future_unref(a);
  weft_future_unref(b);
  cr_assert_eq(stat(file, &st), 0);
  cr_assert_eq(st.st_mtim.tv_sec, 20);
  close(fd);
  /* bad input */
  EXPECT(RUN(loop, weft_fs_futime(loop, &r, fd, 1, 2, on_done)), -EBADF);
  EXPECT(RUN(loop, weft_fs_lutime(loop, &r, path("none"), 1, 2, on_done)),
         -ENOENT);
  EXPECT(weft_fs_lutime(loop, &r, NULL, 1, 2, on_done), -EINVAL);
  EXPECT(weft_fs_futime(loop, &r, 0, NAN, 2, on_done), -EINVAL);
  EXPECT(weft_fs_futime(loop, &r, 0, 1, INFINITY, on_done), -EINVAL);
  EXPECT(weft_fs_lutime(loop, &r, link, -INFINITY, 2, on_done), -EINVAL);
  EXPECT(weft_fs_utime(loop, &r, link, NAN, 2, on_done), -EINVAL);
  weft_future *f = NULL;
  EXPECT(weft_fs_futime_future(loop, 0, NAN, NAN, &f), -EINVAL);
  cr_assert_null(f);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* ---- fallocate -------------------------------------------------------- */

Test(fs_more, fallocate, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  int fd = open(path("f"), O_RDWR | O_CREAT, 0600);
  cr_assert_geq(fd, 0);
  weft_fs_req r = {0};
  struct stat st;
  EXPECT(RUN(loop, weft_fs_fallocate(loop, &r, fd, 0, 0, 8192, on_done)), 0);
  cr_assert_eq(fstat(fd, &st), 0);
  cr_assert_eq(st.st_size, 8192);
  EXPECT(RUN(loop, weft_fs_fallocate(loop, &r, fd, FALLOC_FL_KEEP_SIZE, 8192,
                                     65536, on_done)),
         0);
  cr_assert_eq(fstat(fd, &st), 0);
  cr_assert_eq(st.st_size, 8192, "KEEP_SIZE passed through");
  /* PUNCH_HOLE without KEEP_SIZE is a mode no file system takes */
  EXPECT(RUN(loop, weft_fs_fallocate(loop, &r, fd, FALLOC_FL_PUNCH_HOLE, 0,
                                     4096, on_done)),
         -EOPNOTSUPP);
  weft_future *f;
  cr_assert_eq(weft_fs_fallocate_future(loop, fd, 0, 0, 16384, &f), 0);
  EXPECT(await(loop, f), 0);
  weft_future_unref(f);
  cr_assert_eq(fstat(fd, &st), 0);
  cr_assert_eq(st.st_size, 16384);
  close(fd);
  EXPECT(RUN(loop, weft_fs_fallocate(loop, &r, fd, 0, 0, 1, on_done)), -EBADF);
  int ro = open(path("f"), O_RDONLY);
  EXPECT(RUN(loop, weft_fs_fallocate(loop, &r, ro, 0, 0, 1, on_done)), -EBADF);
  close(ro);
  EXPECT(weft_fs_fallocate(loop, &r, 0, 0, -1, 1, on_done), -EINVAL);
  EXPECT(weft_fs_fallocate(loop, &r, 0, 0, 0, 0, on_done), -EINVAL);
  EXPECT(weft_fs_fallocate(loop, &r, 0, 0, 0, UINT64_MAX, on_done), -EINVAL);
  f = NULL;
  EXPECT(weft_fs_fallocate_future(loop, 0, 0, 0, 0, &f), -EINVAL);
  cr_assert_null(f);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* ---- copyfile's clone flags -------------------------------------------- */

/* What the FICLONE ioctl does on this file system: 0 or an errno. */
static int raw_clone_errno(const char *src, const char *dst) {
  int in = open(src, O_RDONLY);
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert(in >= 0 && out >= 0);
  int e = ioctl(out, FICLONE, in) == 0 ? 0 : errno;
  close(in);
  close(out);
  unlink(dst);
  return e == ENOTTY || e == EINVAL || e == ENOSYS ? EOPNOTSUPP : e;
}

Test(fs_more, copyfile_clone_flags, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  char src[256], dst[256];
  strcpy(src, path("src"));
  strcpy(dst, path("dst"));
  put_file(src, "clone me");
  cr_assert_eq(chmod(src, 0640), 0);
  int clone_err = raw_clone_errno(src, dst);
  weft_fs_req r = {0};
  struct stat st;
  /* clone or copy: always a copy */
  EXPECT(RUN(loop, weft_fs_copyfile(loop, &r, src, dst, WEFT_FS_COPY_FICLONE,
                                    on_done)),
         0);
  assert_content(dst, "clone me");
  cr_assert_eq(stat(dst, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0640, "the mode comes from src");
  /* over an existing, longer dst */
  put_file(dst, "a much longer old content");
  EXPECT(RUN(loop, weft_fs_copyfile(loop, &r, src, dst, WEFT_FS_COPY_FICLONE,
                                    on_done)),
         0);
  assert_content(dst, "clone me");
  EXPECT(RUN(loop, weft_fs_copyfile(loop, &r, src, dst,
                                    WEFT_FS_COPY_EXCL | WEFT_FS_COPY_FICLONE,
                                    on_done)),
         -EEXIST);
  unlink(dst);
  /* clone or fail: exactly what the file system can do */
  EXPECT(RUN(loop, weft_fs_copyfile(loop, &r, src, dst,
                                    WEFT_FS_COPY_FICLONE_FORCE, on_done)),
         -clone_err);
  if (clone_err == 0) {
    assert_content(dst, "clone me");
  } else {
    cr_assert_eq(access(dst, F_OK), -1, "a dst it created is removed");
    put_file(dst, "keep");
    EXPECT(RUN(loop, weft_fs_copyfile(loop, &r, src, dst,
                                      WEFT_FS_COPY_FICLONE_FORCE, on_done)),
           -clone_err);
    assert_content(dst, "keep");
    unlink(dst);
  }
  /* not a regular file: clone-or-fail cannot, clone-or-copy copies */
  EXPECT(RUN(loop, weft_fs_copyfile(loop, &r, "/dev/null", dst,
                                    WEFT_FS_COPY_FICLONE_FORCE, on_done)),
         -EOPNOTSUPP);
  cr_assert_eq(access(dst, F_OK), -1);
  EXPECT(weft_fs_copyfile(loop, &r, src, dst, 8, on_done), -EINVAL);
  weft_future *f;
  cr_assert_eq(
      weft_fs_copyfile_future(loop, src, dst, WEFT_FS_COPY_FICLONE, &f), 0);
  EXPECT(await(loop, f), 0);
  weft_future_unref(f);
  assert_content(dst, "clone me");
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* ---- streamed directory reading ------------------------------------------ */

#define NFILES 10000

/* 10,000 files read in batches of 64: every name exactly once, with its
 * type, and then 0 at the end (twice). */
Test(fs_more, readdir_streams_every_entry_once, .timeout = 60) {
  weft_loop *loop = th_loop();
  make_dir();
  for (int i = 0; i < NFILES; i++) {
    char name[32];
    snprintf(name, sizeof name, "f%05d", i);
    int fd = open(path(name), O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
  }
  cr_assert_eq(mkdir(path("sub"), 0700), 0);
  weft_fs_req r = {0};
  EXPECT(RUN(loop, weft_fs_opendir(loop, &r, dir, on_done)), 0);
  weft_fs_dirstream *d = r.ptr;
  cr_assert_not_null(d);
  weft_fs_req_cleanup(&r); /* does not free the stream */
  cr_assert_null(r.ptr);
  unsigned char *seen = calloc(NFILES, 1);
  int subs = 0, total = 0, batches = 0;
  weft_dirent ents[64];
  for (;;) {
    int64_t n = RUN(loop, weft_fs_readdir(loop, &r, d, ents, 64, on_done));
    cr_assert_geq(n, 0, "%s", weft_err_name((int)n));
    cr_assert_leq(n, 64);
    if (n == 0) break;
    batches++;
    for (int i = 0; i < n; i++) {
      const char *nm = ents[i].name;
      cr_assert(strcmp(nm, ".") && strcmp(nm, ".."));
      total++;
      if (strcmp(nm, "sub") == 0) {
        cr_assert_eq(ents[i].type, WEFT_DT_DIR);
        subs++;
        continue;
      }
      cr_assert_eq(nm[0], 'f', "%s", nm);
      int k = atoi(nm + 1);
      cr_assert(k >= 0 && k < NFILES);
      cr_assert_eq(seen[k], 0, "%s twice", nm);
      seen[k] = 1;
      cr_assert(ents[i].type == WEFT_DT_REG || ents[i].type == WEFT_DT_UNKNOWN);
    }
  }
  cr_assert_eq(total, NFILES + 1);
  cr_assert_eq(subs, 1);
  for (int i = 0; i < NFILES; i++)
    cr_assert_eq(seen[i], 1);
  cr_assert_geq(batches, (NFILES + 1 + 63) / 64);
  EXPECT(RUN(loop, weft_fs_readdir(loop, &r, d, ents, 64, on_done)), 0);
  EXPECT(RUN(loop, weft_fs_closedir(loop, &r, d, on_done)), 0);
  free(seen);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

static int busy_calls;
static int64_t busy_results[4];
static void on_busy(weft_fs_req *req) {
  busy_results[busy_calls++] = req->result;
}

Test(fs_more, readdir_pending_makes_closedir_busy, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  put_file(path("a"), "1");
  put_file(path("b"), "2");
  weft_fs_req r = {0}, r2 = {0}, r3 = {0};
  EXPECT(RUN(loop, weft_fs_opendir(loop, &r, dir, on_done)), 0);
  weft_fs_dirstream *d = r.ptr;
  weft_dirent ents[1];
  busy_calls = 0;
  cr_assert_eq(weft_fs_readdir(loop, &r, d, ents, 1, on_busy), 0);
  EXPECT(weft_fs_closedir(loop, &r2, d, on_busy), -EBUSY);
  EXPECT(weft_fs_readdir(loop, &r3, d, ents, 1, on_busy), -EBUSY);
  weft_future *f = NULL;
  EXPECT(weft_fs_closedir_future(loop, d, &f), -EBUSY);
  EXPECT(weft_fs_readdir_future(loop, d, ents, 1, &f), -EBUSY);
  cr_assert_null(f);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(busy_calls, 1, "only the first readdir ran");
  EXPECT(busy_results[0], 1);
  /* once it completed: the next batch, then the close */
  char first[8];
  snprintf(first, sizeof first, "%s", ents[0].name);
  EXPECT(RUN(loop, weft_fs_readdir(loop, &r, d, ents, 1, on_done)), 1);
  cr_assert_str_neq(ents[0].name, first);
  cr_assert_eq(weft_fs_closedir(loop, &r2, d, on_busy), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(busy_calls, 2);
  EXPECT(busy_results[1], 0);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

Test(fs_more, opendir_readdir_closedir_errors_and_futures, .timeout = 20) {
  weft_loop *loop = th_loop();
  make_dir();
  put_file(path("f"), "x");
  weft_fs_req r = {0};
  EXPECT(RUN(loop, weft_fs_opendir(loop, &r, path("none"), on_done)), -ENOENT);
  cr_assert_null(r.ptr);
  EXPECT(RUN(loop, weft_fs_opendir(loop, &r, path("f"), on_done)), -ENOTDIR);
  cr_assert_null(r.ptr);
  EXPECT(weft_fs_opendir(loop, &r, NULL, on_done), -EINVAL);
  weft_dirent ents[4];
  EXPECT(weft_fs_readdir(loop, &r, NULL, ents, 4, on_done), -EINVAL);
  EXPECT(weft_fs_closedir(loop, &r, NULL, on_done), -EINVAL);
  /* the future forms */
  weft_future *f;
  cr_assert_eq(weft_fs_opendir_future(loop, dir, &f), 0);
  EXPECT(await(loop, f), 0);
  weft_fs_dirstream *d = weft_future_value(f);
  weft_future_unref(f); /* the stream is not the future's */
  EXPECT(weft_fs_readdir(loop, &r, d, NULL, 4, on_done), -EINVAL);
  EXPECT(weft_fs_readdir(loop, &r, d, ents, 0, on_done), -EINVAL);
  cr_assert_eq(weft_fs_readdir_future(loop, d, ents, 4, &f), 0);
  EXPECT(await(loop, f), 0);
  EXPECT(weft_future_value_i64(f), 1);
  cr_assert_str_eq(ents[0].name, "f");
  cr_assert_eq(ents[0].type, WEFT_DT_REG);
  weft_future_unref(f);
  cr_assert_eq(weft_fs_readdir_future(loop, d, ents, 4, &f), 0);
  EXPECT(await(loop, f), 0);
  EXPECT(weft_future_value_i64(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_fs_closedir_future(loop, d, &f), 0);
  EXPECT(await(loop, f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_fs_opendir_future(loop, path("none"), &f), 0);
  EXPECT(await(loop, f), -ENOENT);
  weft_future_unref(f);
  th_rm_tree(dir);
  th_loop_finish(loop);
}

/* A cancelled opendir future never leaks a stream; a closedir that loop
 * teardown cancels still closes its stream. */
Test(fs_more, cancelled_opendir_and_closedir_leak_nothing, .timeout = 20) {
  make_dir();
  int fds = count_fds();
  weft_loop *loop = th_loop();
  for (int i = 0; i < 50; i++) {
    weft_future *f;
    cr_assert_eq(weft_fs_opendir_future(loop, dir, &f), 0);
    weft_future_cancel(f);
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    EXPECT(weft_future_error(f), -ECANCELED);
    weft_future_unref(f);
  }
  weft_fs_req r = {0};
  EXPECT(RUN(loop, weft_fs_opendir(loop, &r, dir, on_done)), 0);
  weft_fs_dirstream *d = r.ptr;
  busy_calls = 0;
  cr_assert_eq(weft_fs_closedir(loop, &r, d, on_busy), 0);
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(busy_calls, 1);
  cr_assert(busy_results[0] == 0 || busy_results[0] == -ECANCELED);
  cr_assert_eq(weft_alloc_live(), 0);
  cr_assert_eq(count_fds(), fds);
  th_rm_tree(dir);
}

/* ---- allocation failures ---------------------------------------------- */

typedef struct sweep_arg {
  int form; /* 0: callback, 1: future */
} sweep_arg;

/* statfs, mkstemp and a whole opendir/readdir/closedir: any allocation may
 * fail; the start call then says -ENOMEM, or the result does, and nothing
 * is left behind (no file, no stream). */
static int more_round(weft_loop *loop, void *arg) {
  sweep_arg *a = arg;
  weft_fs_req r = {0};
  weft_future *f = NULL;
  char tmpl[256];
  snprintf(tmpl, sizeof tmpl, "%s/s-XXXXXX", dir);
  int err;
  /* statfs */
  calls = 0;
  err = a->form ? weft_fs_statfs_future(loop, dir, &f)
                : weft_fs_statfs(loop, &r, dir, on_done);
  if (err != 0) return err;
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  int64_t res = a->form ? weft_future_error(f) : last;
  cr_assert(res == 0 || res == -ENOMEM, "%s", weft_err_name((int)res));
  weft_future_unref(f);
  f = NULL;
  weft_fs_req_cleanup(&r);
  /* mkstemp */
  err = a->form ? weft_fs_mkstemp_future(loop, tmpl, &f)
                : weft_fs_mkstemp(loop, &r, tmpl, on_done);
  if (err != 0) {
    cr_assert_eq(count_entries(dir), 0);
    return err;
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  res = a->form ? weft_future_error(f) : (last < 0 ? last : 0);
  cr_assert(res == 0 || res == -ENOMEM, "%s", weft_err_name((int)res));
  if (res == 0) {
    const weft_fs_tmpfile *t = a->form ? weft_future_value(f) : r.ptr;
    close(t->fd);
    unlink(t->path);
  }
  cr_assert_eq(count_entries(dir), 0);
  weft_future_unref(f);
  f = NULL;
  weft_fs_req_cleanup(&r);
  /* a directory stream */
  calls = 0;
  err = a->form ? weft_fs_opendir_future(loop, dir, &f)
                : weft_fs_opendir(loop, &r, dir, on_done);
  if (err != 0) return err;
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  res = a->form ? weft_future_error(f) : last;
  cr_assert(res == 0 || res == -ENOMEM, "%s", weft_err_name((int)res));
  weft_fs_dirstream *d =
      res == 0 ? (a->form ? weft_future_value(f) : r.ptr) : NULL;
  weft_future_unref(f);
  f = NULL;
  if (d == NULL) return 0;
  weft_dirent ents[8];
  err = weft_fs_readdir(loop, &r, d, ents, 8, on_done);
  if (err == 0) {
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    EXPECT(last, 0);
  } else {
    cr_assert_eq(err, -ENOMEM);
  }
  /* the close must get through: retry while memory is short */
  int cerr;
  while ((cerr = a->form ? weft_fs_closedir_future(loop, d, &f)
                         : weft_fs_closedir(loop, &r, d, on_done)) == -ENOMEM)
    th_alloc_arm(0);
  cr_assert_eq(cerr, 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  weft_future_unref(f);
  return err;
}

Test(fs_more, allocation_failures_leave_nothing, .timeout = 60) {
  make_dir();
  sweep_arg a;
  for (a.form = 0; a.form < 2; a.form++)
    th_alloc_sweep_run(
        &(th_sweep){.op = more_round, .arg = &a, .max_rounds = 200});
  th_rm_tree(dir);
}

/* ---- every new operation checks its arguments --------------------------- */

Test(fs_more, every_operation_checks_its_arguments, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_fs_req r = {0};
  weft_future *f = NULL;
  const char *p = "/tmp";
  weft_dirent e[1];
  weft_fs_dirstream *d = (weft_fs_dirstream *)&r; /* never dereferenced */
  (void)d;
#define BOTH(name, ...)                                                        \
  do {                                                                         \
    EXPECT(weft_fs_##name(NULL, &r, __VA_ARGS__, on_done), -EINVAL);           \
    EXPECT(weft_fs_##name(loop, NULL, __VA_ARGS__, on_done), -EINVAL);         \
    EXPECT(weft_fs_##name(loop, &r, __VA_ARGS__, NULL), -EINVAL);              \
    EXPECT(weft_fs_##name##_future(NULL, __VA_ARGS__, &f), -EINVAL);           \
    EXPECT(weft_fs_##name##_future(loop, __VA_ARGS__, NULL), -EINVAL);         \
  } while (0)
  BOTH(statfs, p);
  BOTH(mkstemp, "/tmp/x-XXXXXX");
  BOTH(chown, p, 0, 0);
  BOTH(fchown, 0, 0, 0);
  BOTH(lchown, p, 0, 0);
  BOTH(fchmod, 0, 0600);
  BOTH(futime, 0, 1, 2);
  BOTH(lutime, p, 1, 2);
  BOTH(fallocate, 0, 0, 0, 1);
  BOTH(opendir, p);
  BOTH(readdir, NULL, e, 1);
  BOTH(closedir, NULL);
#undef BOTH
  cr_assert_null(f);
  cr_assert(!weft_loop_alive(loop));
  EXPECT(RUN(loop, weft_fs_statfs(loop, &r, p, on_done)), 0);
  weft_fs_req_cleanup(&r);
  th_loop_finish(loop);
}
