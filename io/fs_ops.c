/* weft — the file-system operations themselves, run on io-lane workers.
 *
 * Each returns the request's result: >= 0, or a negative errno. They touch
 * only the request, never a loop. Results that need memory (paths, listings,
 * file contents) are built in one weft__malloc block so that one free (by
 * weft_fs_req_cleanup() or the future's dtor) releases everything. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"

/* A syscall's return value as a result: evaluates `rc` once. */
static inline int64_t rc_or_errno(int64_t rc) { return rc < 0 ? -errno : rc; }

static int64_t do_rw(weft_fs_req *r, bool write) {
  ssize_t n;
  int iovcnt = (int)r->nbufs;
  do {
    if (write)
      n = r->offset < 0 ? writev(r->fd, r->iov, iovcnt)
                        : pwritev(r->fd, r->iov, iovcnt, (off_t)r->offset);
    else
      n = r->offset < 0 ? readv(r->fd, r->iov, iovcnt)
                        : preadv(r->fd, r->iov, iovcnt, (off_t)r->offset);
  } while (n < 0 && errno == EINTR);
  return rc_or_errno(n);
}

static int64_t do_dup_string(weft_fs_req *r, const char *s, size_t len) {
  char *p = weft__malloc(len + 1);
  if (p == NULL) return -ENOMEM;
  memcpy(p, s, len);
  p[len] = '\0';
  r->ptr = p;
  return (int64_t)len;
}

static int64_t do_realpath(weft_fs_req *r) {
  char *p = realpath(r->path, NULL);
  if (p == NULL) return -errno;
  int64_t res = do_dup_string(r, p, strlen(p));
  free(p); /* from libc, not ours */
  return res < 0 ? res : 0;
}

static int64_t do_readlink(weft_fs_req *r) {
  char buf[PATH_MAX];
  ssize_t n = readlink(r->path, buf, sizeof buf);
  if (n < 0) return -errno;
  if ((size_t)n == sizeof buf) return -ENAMETOOLONG;
  return do_dup_string(r, buf, (size_t)n);
}

static int64_t do_mkdtemp(weft_fs_req *r) {
  if (mkdtemp(r->path) == NULL) return -errno;
  int64_t res = do_dup_string(r, r->path, strlen(r->path));
  return res < 0 ? res : 0;
}

static int cmp_dirent(const void *a, const void *b) {
  return strcmp(((const weft_dirent *)a)->name, ((const weft_dirent *)b)->name);
}

/* Two passes over the directory would race with changes; instead names
 * are gathered into a growing buffer and packed into one block at the end. */
static int64_t do_scandir(weft_fs_req *r) {
  DIR *d = opendir(r->path);
  if (d == NULL) return -errno;
  size_t count = 0, cap = 0, bytes = 0, bcap = 0;
  unsigned char *types = NULL;
  char *names = NULL;
  int64_t err = 0;
  struct dirent *e;
  while (err == 0 && (errno = 0, e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t n = strlen(e->d_name) + 1;
    if (count == cap) {
      cap = cap ? cap * 2 : 32;
      unsigned char *t = weft__realloc(types, cap);
      if (t == NULL)
        err = -ENOMEM;
      else
        types = t;
    }
    if (err == 0 && bytes + n > bcap) {
      bcap = (bytes + n) * 2;
      char *b = weft__realloc(names, bcap);
      if (b == NULL)
        err = -ENOMEM;
      else
        names = b;
    }
    if (err != 0) break;
    memcpy(names + bytes, e->d_name, n);
    bytes += n;
    types[count++] = e->d_type;
  }
  if (err == 0 && errno != 0) err = -errno;
  closedir(d);
  weft_fs_dir *dir = NULL;
  if (err == 0) {
    dir = weft__malloc(sizeof *dir + count * sizeof(weft_dirent) + bytes);
    if (dir == NULL) err = -ENOMEM;
  }
  if (err == 0) {
    char *store = (char *)&dir->entries[count];
    if (bytes) memcpy(store, names, bytes);
    dir->count = count;
    for (size_t i = 0, off = 0; i < count; i++) {
      dir->entries[i] = (weft_dirent){store + off, types[i]};
      off += strlen(store + off) + 1;
    }
    qsort(dir->entries, count, sizeof(weft_dirent), cmp_dirent);
    r->ptr = dir;
  }
  weft__free(types);
  weft__free(names);
  return err < 0 ? err : (int64_t)count;
}

static int64_t do_sendfile(weft_fs_req *r) {
  off_t off = (off_t)r->offset;
  uint64_t total = 0;
  while (total < r->len) {
    size_t chunk =
        r->len - total > (1u << 30) ? (1u << 30) : (size_t)(r->len - total);
    ssize_t n = sendfile(r->fd, r->fd2, r->offset < 0 ? NULL : &off, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return total ? (int64_t)total : -errno;
    if (n == 0) break;
    total += (uint64_t)n;
  }
  return (int64_t)total;
}

static int64_t write_all(int fd, const char *p, uint64_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : (size_t)len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    p += n;
    len -= (uint64_t)n;
  }
  return 0;
}

/* ---- copyfile
 * ---------------------------------------------------------------- */

/* Copies [*pos, end) with pread/pwrite where copy_file_range cannot;
 * advances *pos. Stops early (leaving *pos short) at end of file. */
static int64_t copy_rw(int in, int out, off_t *pos, off_t end) {
  char buf[64 * 1024];
  while (*pos < end) {
    size_t want =
        end - *pos < (off_t)sizeof buf ? (size_t)(end - *pos) : sizeof buf;
    ssize_t n = pread(in, buf, want, *pos);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : 0;
    for (ssize_t done = 0; done < n;) {
      ssize_t m = pwrite(out, buf + done, (size_t)(n - done), *pos + done);
      if (m < 0 && errno == EINTR) continue;
      if (m < 0) return -errno;
      done += m;
    }
    *pos += n;
  }
  return 0;
}

/* copy_file_range is not available: old kernel, across file systems,
 * special files. */
static bool no_cfr(int e) {
  return e == EXDEV || e == ENOSYS || e == EINVAL || e == EOPNOTSUPP;
}

/* Copies the data extent [*pos, end) to the same offsets in out; *use_cfr
 * drops to false (for the rest of the file) when copy_file_range fails
 * as unsupported. *pos stops short at an early end of file. */
static int64_t copy_extent(int in, int out, off_t *pos, off_t end,
                           bool *use_cfr) {
  while (*use_cfr && *pos < end) {
    loff_t from = *pos, to = *pos;
    size_t want = end - *pos > (1 << 30) ? (1u << 30) : (size_t)(end - *pos);
    ssize_t n = copy_file_range(in, &from, out, &to, want, 0);
    if (n > 0)
      *pos += n;
    else if (n == 0)
      return 0;
    else if (errno == EINTR)
      continue;
    else if (no_cfr(errno))
      *use_cfr = false;
    else
      return -errno;
  }
  return copy_rw(in, out, pos, end);
}

/* The next data extent at or after pos: [*data, *hole). Without
 * SEEK_DATA support the rest of the file is one extent. Returns 1 when
 * only a hole is left. */
static int next_extent(int in, off_t pos, off_t size, off_t *data,
                       off_t *hole) {
  *data = lseek(in, pos, SEEK_DATA);
  if (*data < 0 && errno == ENXIO) return 1;
  if (*data < 0) {
    *data = pos;
    *hole = size;
    return 0;
  }
  *hole = lseek(in, *data, SEEK_HOLE);
  if (*hole < 0 || *hole > size) *hole = size;
  return 0;
}

/* Copies only the data extents of a regular file, then sets the size, so
 * holes stay holes. A file that shrinks meanwhile is copied up to where it
 * ended. */
static int64_t copy_sparse(int in, int out, off_t size) {
  bool use_cfr = true;
  off_t pos = 0, data, hole;
  while (pos < size) {
    if (next_extent(in, pos, size, &data, &hole) != 0) break;
    pos = data;
    int64_t err = copy_extent(in, out, &pos, hole, &use_cfr);
    if (err != 0) return err;
    if (pos < hole) {
      size = pos; /* ended early */
      break;
    }
  }
  return ftruncate(out, size) < 0 ? -errno : 0;
}

/* A file whose size says nothing (procfs, sysfs: st_size 0; a FIFO or a
 * device) is copied sequentially until end of file. */
static int64_t copy_stream(int in, int out) {
  for (;;) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
    if (n > 0) continue;
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (!no_cfr(errno)) return -errno;
    break;
  }
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : 0;
    int64_t err = write_all(out, buf, (uint64_t)n);
    if (err != 0) return err;
  }
}

/* Opens dst: created (and then *created) unless it exists and EXCL was not
 * asked for; an existing one is truncated (if `trunc`) only once it is
 * known not to be src itself. */
static int open_dst(const weft_fs_req *r, const struct stat *st, bool trunc,
                    bool *created) {
  int out = open(r->path2, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                 st->st_mode & 07777);
  if (out >= 0 || errno != EEXIST || (r->flags & WEFT_FS_COPY_EXCL)) {
    *created = out >= 0;
    return out < 0 ? -errno : out;
  }
  out = open(r->path2, O_WRONLY | O_CREAT | O_CLOEXEC, st->st_mode & 07777);
  if (out < 0) return -errno;
  struct stat ds;
  int err = fstat(out, &ds) < 0 ? -errno : 0;
  if (err == 0 && ds.st_dev == st->st_dev && ds.st_ino == st->st_ino)
    err = -EINVAL;
  if (err == 0 && trunc && ftruncate(out, 0) < 0) err = -errno;
  if (err != 0) close(out);
  return err != 0 ? err : out;
}

/* A clone error as the caller sees it: "this file system cannot clone"
 * is one error, -EOPNOTSUPP, whatever the ioctl said. */
static int64_t clone_error(int e) {
  return e == ENOTTY || e == EINVAL || e == ENOSYS ? -EOPNOTSUPP : -e;
}

/* FICLONE asked for: 1 if dst is now a clone of src, 0 to copy instead
 * (try-clone and the file system cannot), or the error (force). */
static int64_t try_clone(const weft_fs_req *r, int in, int out,
                         const struct stat *st) {
  bool force = r->flags & WEFT_FS_COPY_FICLONE_FORCE;
  if (!(r->flags & (WEFT_FS_COPY_FICLONE | WEFT_FS_COPY_FICLONE_FORCE)))
    return 0;
  if (!S_ISREG(st->st_mode)) return force ? -EOPNOTSUPP : 0;
  if (ioctl(out, FICLONE, in) == 0) return 1;
  return force ? clone_error(errno) : 0;
}

static int64_t do_copyfile(weft_fs_req *r) {
  int in = open(r->path, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -errno;
  struct stat st;
  int64_t err = fstat(in, &st) < 0 ? -errno : 0;
  if (err == 0 && S_ISDIR(st.st_mode)) err = -EISDIR;
  bool created = false;
  int out = -1;
  /* a clone replaces dst's data from offset 0 and leaves an existing dst
   * untouched when it fails, so dst is cut to size only afterwards */
  bool clone = S_ISREG(st.st_mode) &&
               (r->flags & (WEFT_FS_COPY_FICLONE | WEFT_FS_COPY_FICLONE_FORCE));
  if (err == 0 && (out = open_dst(r, &st, !clone, &created)) < 0) err = out;
  int64_t cloned = err == 0 ? try_clone(r, in, out, &st) : 0;
  if (cloned < 0) err = cloned;
  if (err == 0 && clone && ftruncate(out, cloned == 1 ? st.st_size : 0) < 0)
    err = -errno;
  if (err == 0 && cloned == 0)
    err = S_ISREG(st.st_mode) && st.st_size > 0
              ? copy_sparse(in, out, st.st_size)
              : copy_stream(in, out);
  if (err == 0 && fchmod(out, st.st_mode & 07777) < 0) err = -errno;
  if (out >= 0 && close(out) < 0 && err == 0) err = -errno;
  close(in);
  /* what this call created goes again; an existing dst keeps what it got */
  if (err != 0 && created) unlink(r->path2);
  return err;
}

static int64_t read_all(int fd, weft_fs_buf *b, size_t want) {
  size_t got = 0;
  while (got < want) {
    ssize_t n = read(fd, b->data + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break; /* shrank meanwhile */
    got += (size_t)n;
  }
  b->len = got;
  b->data[got] = '\0';
  return (int64_t)got;
}

/* Reads the region [off, off + want) of a large file into its buffer;
 * records where the file ended if it shrank meanwhile. */
static int64_t read_region(weft_fs_req *r, size_t off, size_t want,
                           int64_t *short_at) {
  weft_fs_buf *b = r->ptr;
  for (size_t got = 0; got < want;) {
    ssize_t n =
        pread(r->fd2, b->data + off + got, want - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) {
      *short_at = (int64_t)(off + got);
      return 0;
    }
    got += (size_t)n;
  }
  return 0;
}

void weft__fs_chunk_run(weft_work *w) {
  weft__fs_chunk *c = (weft__fs_chunk *)w;
  weft_fs_req *r = c->req;
  size_t size = ((weft_fs_buf *)r->ptr)->len,
         stride = (size_t)r->nchunks * WEFT__FS_CHUNK;
  for (size_t off = (size_t)c->idx * WEFT__FS_CHUNK; off < size;
       off += stride) {
    if (weft_work_cancelled()) {
      c->err = -ECANCELED;
      return;
    }
    size_t want = size - off < WEFT__FS_CHUNK ? size - off : WEFT__FS_CHUNK;
    c->err = read_region(r, off, want, &c->short_at);
    if (c->err != 0 || c->short_at >= 0) return;
  }
}

/* The fallback when chunk jobs could not be set up: the whole file in this
 * job, then the close. */
static int64_t do_read_rest(weft_fs_req *r) {
  weft_fs_buf *b = r->ptr;
  int64_t short_at = -1;
  int64_t res = read_region(r, 0, b->len, &short_at);
  close(r->fd2);
  if (res == 0 && short_at >= 0) b->len = (size_t)short_at;
  if (res == 0) b->data[b->len] = '\0';
  return res < 0 ? res : (int64_t)b->len;
}

static int64_t do_read_file(weft_fs_req *r) {
  int fd = open(r->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int64_t res = fstat(fd, &st) < 0 ? -errno : 0;
  if (res == 0 && S_ISDIR(st.st_mode)) res = -EISDIR;
  if (res == 0 && (uint64_t)st.st_size > SIZE_MAX / 2) res = -EFBIG;
  weft_fs_buf *b = NULL;
  if (res == 0) {
    b = weft__malloc(sizeof *b + (size_t)st.st_size + 1);
    if (b == NULL) res = -ENOMEM;
  }
  if (res == 0 && (size_t)st.st_size >= WEFT__FS_CHUNKED_MIN) {
    /* large: the loop starts chunk jobs on the open fd (see io/fs.c) */
    b->len = (size_t)st.st_size;
    r->ptr = b;
    r->fd2 = fd;
    return (int64_t)b->len;
  }
  if (res == 0) res = read_all(fd, b, (size_t)st.st_size);
  close(fd);
  if (res < 0)
    weft__free(b);
  else
    r->ptr = b;
  return res;
}

/* A new file beside `path`, "<path>.weft-XXXXXX", created with `mode` by
 * open(2) itself so that the umask (and a default ACL) applies as it would
 * to `path`; mkostemp() would force 0600. */
static int make_temp(char *tmp, size_t cap, const char *path, unsigned mode) {
  static _Atomic unsigned long seq;
  size_t n = strlen(path);
  if (n + sizeof ".weft-XXXXXXXX" > cap) return -ENAMETOOLONG;
  for (int tries = 0; tries < 100; tries++) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long x = (unsigned long)ts.tv_nsec ^
                      ((unsigned long)getpid() << 20) ^
                      (seq++ * 0x9e3779b97f4a7c15ul);
    snprintf(tmp, cap, "%s.weft-%08lx", path, x & 0xfffffffful);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
    if (fd >= 0 || errno != EEXIST) return fd < 0 ? -errno : fd;
  }
  return -EEXIST;
}

/* As with open(2), an existing file keeps its mode (and, where this
 * process may set them, its owner and group); `mode` is for a new one. */
static int64_t keep_attrs(int fd, const struct stat *st) {
  if ((st->st_uid != geteuid() || st->st_gid != getegid()) &&
      fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EPERM)
    return -errno;
  return fchmod(fd, st->st_mode & 07777) < 0 ? -errno : 0;
}

/* Temporary file beside the target (same file system, so rename is
 * atomic), fsync before rename so a crash never leaves a short file. The
 * temporary copy of an existing file is private (0600) until it has the
 * old file's mode. */
static int64_t do_write_file(weft_fs_req *r) {
  struct stat st;
  bool exists = stat(r->path, &st) == 0 && S_ISREG(st.st_mode);
  char tmp[PATH_MAX];
  int fd = make_temp(tmp, sizeof tmp, r->path, exists ? 0600 : r->mode);
  if (fd < 0) return fd;
  int64_t err = write_all(fd, r->buf, r->len);
  if (err == 0 && exists) err = keep_attrs(fd, &st);
  if (err == 0 && fsync(fd) < 0) err = -errno;
  if (close(fd) < 0 && err == 0) err = -errno;
  if (err == 0 && rename(tmp, r->path) < 0) err = -errno;
  if (err != 0) unlink(tmp);
  return err;
}

static void to_timespecs(const weft_fs_req *r, struct timespec ts[2]) {
  double t[2] = {r->atime, r->mtime};
  for (int i = 0; i < 2; i++) {
    ts[i].tv_sec = (time_t)t[i];
    ts[i].tv_nsec = (long)((t[i] - (double)ts[i].tv_sec) * 1e9);
    if (ts[i].tv_nsec < 0) {
      ts[i].tv_sec--;
      ts[i].tv_nsec += 1000000000L;
    }
  }
}

/* fd >= 0: futimens; else utimensat on the path with `flags`. */
static int64_t do_utime(weft_fs_req *r, int flags) {
  struct timespec ts[2];
  to_timespecs(r, ts);
  if (r->op == WEFT__FS_FUTIME) return rc_or_errno(futimens(r->fd, ts));
  return rc_or_errno(utimensat(AT_FDCWD, r->path, ts, flags));
}

static int64_t do_statfs(weft_fs_req *r) {
  struct statfs sf;
  if (statfs(r->path, &sf) < 0) return -errno;
  weft_statfs *out = weft__calloc(1, sizeof *out);
  if (out == NULL) return -ENOMEM;
  out->type = (uint64_t)sf.f_type;
  out->bsize = (uint64_t)sf.f_bsize;
  out->blocks = (uint64_t)sf.f_blocks;
  out->bfree = (uint64_t)sf.f_bfree;
  out->bavail = (uint64_t)sf.f_bavail;
  out->files = (uint64_t)sf.f_files;
  out->ffree = (uint64_t)sf.f_ffree;
  r->ptr = out;
  return 0;
}

/* The block first, so that nothing is created when memory is short. */
static int64_t do_mkstemp(weft_fs_req *r) {
  size_t n = strlen(r->path);
  weft_fs_tmpfile *t = weft__malloc(sizeof *t + n + 1);
  if (t == NULL) return -ENOMEM;
  memcpy(t->path, r->path, n + 1);
  t->fd = mkostemp(t->path, O_CLOEXEC);
  if (t->fd < 0) {
    int e = errno;
    weft__free(t);
    return -e;
  }
  r->ptr = t;
  return t->fd;
}

static int64_t do_fallocate(weft_fs_req *r) {
  int rc;
  do
    rc = fallocate(r->fd, r->flags, (off_t)r->offset, (off_t)r->len);
  while (rc < 0 && errno == EINTR);
  return rc_or_errno(rc);
}

/* ---- streamed directories
 * ----------------------------------------------------- */

/* The kernel's record (getdents64(2)); glibc declares no type for it. */
struct weft__dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static int64_t do_opendir(weft_fs_req *r) {
  weft_fs_dirstream *d = weft__malloc(sizeof *d);
  if (d == NULL) return -ENOMEM;
  d->fd = open(r->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->fd < 0) {
    int e = errno;
    weft__free(d);
    return -e;
  }
  d->busy = d->eof = false;
  d->pos = d->end = 0;
  r->ptr = d;
  return 0;
}

/* Entries straight from the getdents64 buffer, no copies: a batch ends
 * early where the buffer does, since refilling it would overwrite names
 * this batch returns. */
static int64_t do_readdir(weft_fs_req *r) {
  weft_fs_dirstream *d = r->dir;
  unsigned k = 0;
  while (k < r->nbufs) {
    if (d->pos >= d->end) {
      if (k > 0 || d->eof) break;
      long got = syscall(SYS_getdents64, d->fd, d->buf, sizeof d->buf);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return -errno;
      if (got == 0) {
        d->eof = true;
        break;
      }
      d->pos = 0;
      d->end = (size_t)got;
    }
    struct weft__dirent64 *e = (struct weft__dirent64 *)(d->buf + d->pos);
    d->pos += e->d_reclen;
    if (e->d_name[0] == '.' &&
        (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
      continue;
    r->dirents[k++] = (weft_dirent){e->d_name, e->d_type};
  }
  return k;
}

int weft__fs_dir_free(weft_fs_dirstream *d) {
  int rc = close(d->fd);
  weft__free(d);
  return rc < 0 && errno != EINTR ? -errno : 0;
}

static int64_t do_close(int fd) {
  /* Linux closes the fd even when close() reports EINTR: never retry */
  int rc = close(fd);
  return rc < 0 && errno != EINTR ? -errno : 0;
}

static int64_t run_op(weft_fs_req *r) {
  if (r->step == WEFT__FS_READ_FILE_REST) return do_read_rest(r);
  if (r->step == WEFT__FS_CLOSE_KEEP) {
    close(r->fd2);
    return r->result;
  }
  switch (r->op) {
  case WEFT__FS_OPEN:
    return rc_or_errno(open(r->path, r->flags | O_CLOEXEC, r->mode));
  case WEFT__FS_CLOSE:
    return do_close(r->fd);
  case WEFT__FS_READ:
    return do_rw(r, false);
  case WEFT__FS_WRITE:
    return do_rw(r, true);
  case WEFT__FS_STAT:
    return rc_or_errno(stat(r->path, &r->statbuf));
  case WEFT__FS_LSTAT:
    return rc_or_errno(lstat(r->path, &r->statbuf));
  case WEFT__FS_FSTAT:
    return rc_or_errno(fstat(r->fd, &r->statbuf));
  case WEFT__FS_UNLINK:
    return rc_or_errno(unlink(r->path));
  case WEFT__FS_RENAME:
    return rc_or_errno(rename(r->path, r->path2));
  case WEFT__FS_MKDIR:
    return rc_or_errno(mkdir(r->path, r->mode));
  case WEFT__FS_MKDTEMP:
    return do_mkdtemp(r);
  case WEFT__FS_RMDIR:
    return rc_or_errno(rmdir(r->path));
  case WEFT__FS_SCANDIR:
    return do_scandir(r);
  case WEFT__FS_FSYNC:
    return rc_or_errno(fsync(r->fd));
  case WEFT__FS_FDATASYNC:
    return rc_or_errno(fdatasync(r->fd));
  case WEFT__FS_FTRUNCATE:
    return rc_or_errno(ftruncate(r->fd, (off_t)r->len));
  case WEFT__FS_SENDFILE:
    return do_sendfile(r);
  case WEFT__FS_COPYFILE:
    return do_copyfile(r);
  case WEFT__FS_REALPATH:
    return do_realpath(r);
  case WEFT__FS_ACCESS:
    return rc_or_errno(access(r->path, r->flags));
  case WEFT__FS_CHMOD:
    return rc_or_errno(chmod(r->path, r->mode));
  case WEFT__FS_LINK:
    return rc_or_errno(link(r->path, r->path2));
  case WEFT__FS_SYMLINK:
    return rc_or_errno(symlink(r->path, r->path2));
  case WEFT__FS_READLINK:
    return do_readlink(r);
  case WEFT__FS_UTIME:
  case WEFT__FS_FUTIME:
    return do_utime(r, 0);
  case WEFT__FS_LUTIME:
    return do_utime(r, AT_SYMLINK_NOFOLLOW);
  case WEFT__FS_STATFS:
    return do_statfs(r);
  case WEFT__FS_MKSTEMP:
    return do_mkstemp(r);
  case WEFT__FS_CHOWN:
    return rc_or_errno(chown(r->path, r->uid, r->gid));
  case WEFT__FS_FCHOWN:
    return rc_or_errno(fchown(r->fd, r->uid, r->gid));
  case WEFT__FS_LCHOWN:
    return rc_or_errno(lchown(r->path, r->uid, r->gid));
  case WEFT__FS_FCHMOD:
    return rc_or_errno(fchmod(r->fd, r->mode));
  case WEFT__FS_FALLOCATE:
    return do_fallocate(r);
  case WEFT__FS_OPENDIR:
    return do_opendir(r);
  case WEFT__FS_READDIR:
    return do_readdir(r);
  case WEFT__FS_CLOSEDIR:
    return weft__fs_dir_free(r->dir);
  case WEFT__FS_READ_FILE:
    return do_read_file(r);
  case WEFT__FS_WRITE_FILE:
    return do_write_file(r);
  default:
    return -EINVAL;
  }
}

void weft__fs_run(weft_work *w) {
  weft_fs_req *r = (weft_fs_req *)w;
  r->result = run_op(r);
}
