/* Listing a directory of 1M entries: weft's streamed readdir
 * (weft_fs_opendir / weft_fs_readdir in batches of BATCH / weft_fs_closedir,
 * each a pool job) against weft_fs_scandir (one job that lists and sorts
 * the whole directory into one block) and a raw getdents64(2) loop on the
 * calling thread with the buffer size weft's stream uses (32 KiB).
 *
 * readdir_1m        entries/s (the whole listing, open to close).
 * readdir_1m_rss    the peak resident set of the process that listed, MiB:
 *                   each run lists in a forked child, whose peak RSS the
 *                   parent reads from wait4(2), so the impls do not share
 *                   one high-water mark. The parent holds no weft state (a
 *                   loop's pool threads would not survive the fork).
 *
 * The directory (hard links to a few empty files, so 1M entries cost
 * few inodes) lives under /tmp, is made once, listed once untimed (the
 * dentries are then cached for every impl alike) and removed at the end.
 * Every listing must count exactly N entries. BENCH_QUICK=1: 10k. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "support/bench.h"

#define BATCH 1024u
#define DIRBUF (32u << 10)

static char dir[] = "/tmp/weft-bench-readdir-XXXXXX";
static size_t n;
static pid_t parent; /* only the parent removes the directory */

/* ---- the three listings (run in the child) ------------------------------- */

typedef struct w_state {
  weft_loop *loop;
  weft_fs_req req;
  weft_fs_dirstream *ds;
  weft_dirent ents[BATCH];
  size_t count;
  bool done;
} w_state;

static void w_closed(weft_fs_req *r) {
  w_state *s = r->data;
  BENCH_CHECK(r->result == 0, "closedir: %lld", (long long)r->result);
  s->done = true;
}

static void w_read(weft_fs_req *r) {
  w_state *s = r->data;
  BENCH_CHECK(r->result >= 0, "readdir: %lld", (long long)r->result);
  if (r->result > 0) {
    s->count += (size_t)r->result;
    if (weft_fs_readdir(s->loop, r, s->ds, s->ents, BATCH, w_read) != 0)
      bench_fail("readdir submit");
    return;
  }
  if (weft_fs_closedir(s->loop, r, s->ds, w_closed) != 0)
    bench_fail("closedir submit");
}

static void w_opened(weft_fs_req *r) {
  w_state *s = r->data;
  BENCH_CHECK(r->result == 0, "opendir: %lld", (long long)r->result);
  s->ds = r->ptr;
  if (weft_fs_readdir(s->loop, r, s->ds, s->ents, BATCH, w_read) != 0)
    bench_fail("readdir submit");
}

static size_t list_weft_readdir(weft_loop *loop) {
  static w_state s;
  memset(&s, 0, sizeof s);
  s.loop = loop;
  s.req.data = &s;
  if (weft_fs_opendir(loop, &s.req, dir, w_opened) != 0)
    bench_fail("opendir submit");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  BENCH_CHECK(s.done, "readdir did not finish");
  return s.count;
}

static void w_scanned(weft_fs_req *r) {
  size_t *count = r->data;
  BENCH_CHECK(r->result >= 0, "scandir: %lld", (long long)r->result);
  *count = ((weft_fs_dir *)r->ptr)->count;
  weft_fs_req_cleanup(r);
}

static size_t list_weft_scandir(weft_loop *loop) {
  static weft_fs_req req;
  size_t count = 0;
  req.data = &count;
  if (weft_fs_scandir(loop, &req, dir, w_scanned) != 0)
    bench_fail("scandir submit");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return count;
}

struct dirent64_rec {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static size_t list_raw(void) {
  static _Alignas(8) char buf[DIRBUF];
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) bench_fail("open %s", dir);
  size_t count = 0;
  long got;
  while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
    for (long pos = 0; pos < got;) {
      struct dirent64_rec *e = (struct dirent64_rec *)(void *)(buf + pos);
      pos += e->d_reclen;
      if (!(e->d_name[0] == '.' &&
            (e->d_name[1] == '\0' ||
             (e->d_name[1] == '.' && e->d_name[2] == '\0'))))
        count++;
    }
  if (got < 0) bench_fail("getdents64");
  close(fd);
  return count;
}

enum impl { WEFT_READDIR, WEFT_SCANDIR, RAW };

/* The child: one listing, timed; the rate goes back through `out`. */
static void child(enum impl which, int out) {
  weft_loop *loop = NULL;
  if (which != RAW) {
    weft_loop_options o = {.pool_size = 1};
    if (weft_loop_new(&loop, &o) != 0) bench_fail("weft_loop_new");
  }
  double t0 = bench_wall();
  size_t count = which == WEFT_READDIR   ? list_weft_readdir(loop)
                 : which == WEFT_SCANDIR ? list_weft_scandir(loop)
                                         : list_raw();
  double rate = (double)count / (bench_wall() - t0);
  BENCH_CHECK(count == n, "listed %zu of %zu entries", count, n);
  if (loop != NULL && weft_loop_free(loop) != 0) bench_fail("weft_loop_free");
  if (write(out, &rate, sizeof rate) != (ssize_t)sizeof rate) _exit(1);
  _exit(0);
}

static void run(double *v, void *arg) {
  enum impl which = (enum impl)(size_t)arg;
  int p[2];
  if (pipe(p) != 0) bench_fail("pipe");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) bench_fail("fork");
  if (pid == 0) {
    close(p[0]);
    child(which, p[1]);
  }
  close(p[1]);
  double rate = 0;
  ssize_t got = read(p[0], &rate, sizeof rate);
  close(p[0]);
  int st;
  struct rusage ru;
  if (wait4(pid, &st, 0, &ru) != pid) bench_fail("wait4");
  BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == sizeof rate,
              "the listing child failed (status %#x)", st);
  v[0] = rate;
  v[1] = (double)ru.ru_maxrss / 1024.0; /* KiB -> MiB */
}

static void remove_dir(void);

/* ---- the directory
 * ------------------------------------------------------------ */

/* Hard links share an inode, but ext4 allows 65000 links per inode: one
 * source file per LINKS_PER entries. */
#define LINKS_PER 60000u

static void source_path(char *buf, size_t len, size_t k) {
  snprintf(buf, len, "%s/.src%zu", dir, k);
}

static void make_dir(void) {
  if (mkdtemp(dir) == NULL) bench_fail("mkdtemp");
  atexit(remove_dir); /* also when a verification fails */
  char src[256], name[256];
  for (size_t i = 0; i < n; i++) {
    source_path(src, sizeof src, i / LINKS_PER);
    if (i % LINKS_PER == 0) {
      int fd = open(src, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) bench_fail("create %s: %s", src, strerror(errno));
      close(fd);
    }
    snprintf(name, sizeof name, "%s/e%07zu", dir, i);
    if (link(src, name) != 0) bench_fail("link %s: %s", name, strerror(errno));
  }
  for (size_t k = 0; k * LINKS_PER < n; k++) {
    source_path(src, sizeof src, k);
    if (unlink(src) != 0) bench_fail("unlink %s", src);
  }
}

static void remove_dir(void) {
  if (getpid() != parent) return; /* a child that failed (bench_fail) */
  char name[256];
  for (size_t i = 0; i < n; i++) {
    snprintf(name, sizeof name, "%s/e%07zu", dir, i);
    unlink(name);
  }
  for (size_t k = 0; k * LINKS_PER < n; k++) {
    source_path(name, sizeof name, k);
    unlink(name);
  }
  rmdir(dir);
}

int main(int argc, char **argv) {
  n = bench_n(1000000, 10000);
  fprintf(stderr, "bench_readdir: making %zu entries in %s\n", n, dir);
  parent = getpid();
  make_dir();
  BENCH_CHECK(list_raw() == n, "the directory is not complete"); /* warm */
  const bench_metric m[] = {{"readdir_1m", "entries/s", true},
                            {"readdir_1m_rss", "MiB", false}};
  const bench_impl i[] = {{"weft", run, (void *)(size_t)WEFT_READDIR},
                          {"weft-scandir", run, (void *)(size_t)WEFT_SCANDIR},
                          {"getdents64", run, (void *)(size_t)RAW}};
  const bench_group g[] = {{"readdir", m, BENCH_LEN(m), i, BENCH_LEN(i)}};
  return bench_main(argc, argv, g, BENCH_LEN(g));
}
