/* weft — asynchronous file-system operations: on an io_uring ring of the
 * loop's own where the kernel has one (open, close, read, write, stat,
 * fsync, rename, unlink, mkdir, rmdir, link, symlink, fallocate), else on
 * the pool's io lane (weft_fs_set_backend(); docs/fs.md "Backends").
 *
 * Every operation has two forms:
 *  - callback: weft_fs_X(loop, req, ..., cb) fills a caller-owned
 *    weft_fs_req (embed it anywhere; keep it alive until cb has run) and
 *    calls cb(req) on the loop's thread, never inline, exactly once, with
 *    req->result >= 0 on success or a negative errno (-ECANCELED if the
 *    request was cancelled with weft_fs_cancel() or by loop teardown);
 *  - future: weft_fs_X_future(loop, ..., &f) gives a future that fulfils
 *    with the result (an int64, or a pointer the future owns, as noted) or
 *    rejects with the negative errno. Cancelling the future cancels a
 *    queued operation (a running one finishes; its result is dropped).
 * Start calls return 0, or an error without calling back: -EINVAL (NULL
 * loop, req, cb, out or path, bad arguments), -ENOMEM, and the errors of
 * weft_work_submit(). Paths are copied; data buffers and iovec arrays must
 * stay valid until completion. Loop thread only. */
#ifndef WEFT_FS_H
#define WEFT_FS_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "future.h"
#include "pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_fs_req weft_fs_req;
/** Runs on the loop's thread when a request completes. */
typedef void (*weft_fs_cb)(weft_fs_req *req);

/** weft_dirent.type values: equal to <dirent.h>'s DT_* on Linux (which
 * declares those only for _DEFAULT_SOURCE / _GNU_SOURCE builds), so either
 * name works. */
#define WEFT_DT_UNKNOWN 0
#define WEFT_DT_FIFO 1
#define WEFT_DT_CHR 2
#define WEFT_DT_DIR 4
#define WEFT_DT_BLK 6
#define WEFT_DT_REG 8
#define WEFT_DT_LNK 10
#define WEFT_DT_SOCK 12

/* C++ has no flexible array members; g++ and clang++ accept them as an
 * extension, which -pedantic would report. */
#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif

/** One directory entry of weft_fs_scandir(). */
typedef struct weft_dirent {
  const char *name;   /**< the entry's name (not "." or "..") */
  unsigned char type; /**< WEFT_DT_REG, WEFT_DT_DIR, ... or WEFT_DT_UNKNOWN */
} weft_dirent;

/** The result of weft_fs_scandir(): entries sorted by name. */
typedef struct weft_fs_dir {
  size_t count;
  weft_dirent entries[]; /**< names point into the same block */
} weft_fs_dir;

/** The result of weft_fs_read_file(): the whole file, NUL-terminated
 * (the NUL is not counted in len). */
typedef struct weft_fs_buf {
  size_t len;
  char data[];
} weft_fs_buf;

#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic pop
#endif

/** Flag for weft_fs_copyfile(): fail with -EEXIST if dst exists. */
#define WEFT_FS_COPY_EXCL 1
/** Flag for weft_fs_copyfile(), "clone or copy": try a copy-on-write clone
 * (the FICLONE ioctl) first and copy the data when the file system cannot
 * clone. */
#define WEFT_FS_COPY_FICLONE 2
/** Flag for weft_fs_copyfile(), "clone or fail": clone (FICLONE) or fail,
 * never copy the data. */
#define WEFT_FS_COPY_FICLONE_FORCE 4

/** A file-system request. Read `data`, `result`, `statbuf` and `ptr`;
 * everything else is private. */
struct weft_fs_req {
  weft_work work;      /* private: the pool job */
  void *data;          /**< yours */
  int64_t result;      /**< >= 0 (fd, bytes, count, 0) or a negative errno */
  struct stat statbuf; /**< stat, fstat, lstat */
  /** readlink, realpath, mkdtemp: char *; scandir: weft_fs_dir *;
   * read_file: weft_fs_buf *; statfs: weft_statfs *; mkstemp:
   * weft_fs_tmpfile *. Owned by the request: free it with
   * weft_fs_req_cleanup(). opendir: the weft_fs_dirstream *, which only
   * weft_fs_closedir() frees. */
  void *ptr;
  /* private */
  weft_fs_cb cb;
  int op;   /* the operation asked for; never changes */
  int step; /* read_file of a large file: its internal step, or 0 */
  char *path, *path2;
  int fd, fd2, flags;
  unsigned mode;
  const struct iovec *iov;
  unsigned nbufs; /* read, write: iov's length */
  int64_t offset;
  uint64_t len;
  const void *buf;
  double atime, mtime;
  void *chunks;     /* read_file of a large file: its chunk jobs */
  unsigned pending; /* chunk jobs not yet completed */
  unsigned nchunks; /* chunk jobs in `chunks` */
  uid_t uid;        /* chown, fchown, lchown */
  gid_t gid;
  weft_dirent *dirents; /* readdir: the caller's array (nbufs long) */
  void *dir;            /* readdir, closedir: the weft_fs_dirstream */
  unsigned uslot;       /* on the io_uring backend: its slot + 1, or 0 */
};

/** Frees what a completed request owns (req->ptr). Safe to call twice;
 * NULL is ignored. */
WEFT_API void weft_fs_req_cleanup(weft_fs_req *req);

/** Cancels a request: 0 if it was queued (cb gets -ECANCELED), -EBUSY if
 * it is running on the pool (it completes normally), -EALREADY if it has
 * finished, -EINVAL for NULL or a request never started. A request on the
 * io_uring backend is cancelled in the kernel: 0 once the kernel has let
 * go of it (cb gets -ECANCELED, or the result of an operation with a side
 * effect, all but open, read and the stats, that had already happened). */
WEFT_API int weft_fs_cancel(weft_fs_req *req);

/** Backends of the fs operations (docs/fs.md "Backends"). */
typedef enum weft_fs_backend {
  /** io_uring where the kernel has it and the operation, else the pool
   * (the default) */
  WEFT_FS_BACKEND_AUTO = 0,
  /** every operation on the pool's io lane */
  WEFT_FS_BACKEND_POOL = 1,
  /** io_uring; operations the ring lacks still run on the pool */
  WEFT_FS_BACKEND_URING = 2
} weft_fs_backend;

/** Chooses the backend of `loop`'s fs operations from now on (requests
 * already started finish where they are). A loop starts with
 * $WEFT_FS_BACKEND ("pool", "uring" or "auto") if set, else AUTO. Returns
 * 0; -EINVAL (NULL loop, bad value); -ENOMEM; for WEFT_FS_BACKEND_URING,
 * the reason the kernel refused a ring (-ENOSYS, -EPERM when
 * /proc/sys/kernel/io_uring_disabled forbids it, -EMFILE, ...): then the
 * loop stays on the pool. Loop thread only. */
WEFT_API int weft_fs_set_backend(weft_loop *loop, weft_fs_backend backend);

/** Operation kinds counted by weft_fs_stats. */
enum {
  WEFT_FS_OPK_OPEN,
  WEFT_FS_OPK_CLOSE,
  WEFT_FS_OPK_READ,
  WEFT_FS_OPK_WRITE,
  WEFT_FS_OPK_STAT,  /**< stat, lstat and fstat */
  WEFT_FS_OPK_FSYNC, /**< fsync and fdatasync */
  WEFT_FS_OPK_RENAME,
  WEFT_FS_OPK_UNLINK,
  WEFT_FS_OPK_MKDIR,
  WEFT_FS_OPK_OTHER, /**< every operation without a kind of its own (the
                        pool's only) */
  WEFT_FS_OPK_RMDIR,
  WEFT_FS_OPK_LINK, /**< link and symlink */
  WEFT_FS_OPK_FALLOCATE,
  WEFT_FS_OPK_COUNT
};

/** Where a loop's fs operations ran (weft_fs_get_stats()). */
typedef struct weft_fs_stats {
  /** the backend chosen (WEFT_FS_BACKEND_*) */
  int backend;
  /** 1 if this loop has an io_uring ring */
  int ring_active;
  /** 0, or the negative errno the kernel gave when a ring was asked for
   * (then everything runs on the pool) */
  int ring_error;
  /** started on the ring, per WEFT_FS_OPK_* */
  uint64_t ring[WEFT_FS_OPK_COUNT];
  /** started on the pool (or done on the loop's thread: a cached read),
   * per WEFT_FS_OPK_* */
  uint64_t pool[WEFT_FS_OPK_COUNT];
  /** of those, ones that would have used the ring but fell back: the ring
   * lacks the operation (IORING_REGISTER_PROBE) or has no ring */
  uint64_t fallback_unsupported;
  /** ... or the ring was full (every slot in flight, SQ full) */
  uint64_t fallback_full;
  /** requests in flight on the ring now */
  unsigned ring_inflight;
} weft_fs_stats;

/** Fills *out with `loop`'s fs counters (since the loop's first fs
 * operation). Returns 0 or -EINVAL (NULL loop or out), -ENOMEM. Loop
 * thread only. */
WEFT_API int weft_fs_get_stats(weft_loop *loop, weft_fs_stats *out);

/** open(2): result is the new fd. */
WEFT_API int weft_fs_open(weft_loop *loop, weft_fs_req *req, const char *path,
                          int flags, unsigned mode, weft_fs_cb cb);
/** Future form of weft_fs_open(): int64 fd. */
WEFT_API int weft_fs_open_future(weft_loop *loop, const char *path, int flags,
                                 unsigned mode, weft_future **out);

/** close(2): result 0. */
WEFT_API int weft_fs_close(weft_loop *loop, weft_fs_req *req, int fd,
                           weft_fs_cb cb);
/** Future form of weft_fs_close(): int64 0. */
WEFT_API int weft_fs_close_future(weft_loop *loop, int fd, weft_future **out);

/** Reads into `nbufs` buffers (at most IOV_MAX) at `offset`, or at the
 * file position if offset < 0 (preadv/readv): result is the byte count,
 * 0 at end of file. */
WEFT_API int weft_fs_read(weft_loop *loop, weft_fs_req *req, int fd,
                          const struct iovec *iov, unsigned nbufs,
                          int64_t offset, weft_fs_cb cb);
/** Future form of weft_fs_read(): int64 bytes read. */
WEFT_API int weft_fs_read_future(weft_loop *loop, int fd,
                                 const struct iovec *iov, unsigned nbufs,
                                 int64_t offset, weft_future **out);

/** Writes `nbufs` buffers at `offset` (pwritev), or at the file position if
 * offset < 0 (writev): result is the byte count. */
WEFT_API int weft_fs_write(weft_loop *loop, weft_fs_req *req, int fd,
                           const struct iovec *iov, unsigned nbufs,
                           int64_t offset, weft_fs_cb cb);
/** Future form of weft_fs_write(): int64 bytes written. */
WEFT_API int weft_fs_write_future(weft_loop *loop, int fd,
                                  const struct iovec *iov, unsigned nbufs,
                                  int64_t offset, weft_future **out);

/** stat(2) into req->statbuf: result 0. */
WEFT_API int weft_fs_stat(weft_loop *loop, weft_fs_req *req, const char *path,
                          weft_fs_cb cb);
/** Future form of weft_fs_stat(): a struct stat * the future owns. */
WEFT_API int weft_fs_stat_future(weft_loop *loop, const char *path,
                                 weft_future **out);
/** lstat(2) into req->statbuf: result 0. */
WEFT_API int weft_fs_lstat(weft_loop *loop, weft_fs_req *req, const char *path,
                           weft_fs_cb cb);
/** Future form of weft_fs_lstat(): a struct stat * the future owns. */
WEFT_API int weft_fs_lstat_future(weft_loop *loop, const char *path,
                                  weft_future **out);
/** fstat(2) into req->statbuf: result 0. */
WEFT_API int weft_fs_fstat(weft_loop *loop, weft_fs_req *req, int fd,
                           weft_fs_cb cb);
/** Future form of weft_fs_fstat(): a struct stat * the future owns. */
WEFT_API int weft_fs_fstat_future(weft_loop *loop, int fd, weft_future **out);

/** unlink(2): result 0. */
WEFT_API int weft_fs_unlink(weft_loop *loop, weft_fs_req *req, const char *path,
                            weft_fs_cb cb);
/** Future form of weft_fs_unlink(): int64 0. */
WEFT_API int weft_fs_unlink_future(weft_loop *loop, const char *path,
                                   weft_future **out);

/** rename(2): result 0. */
WEFT_API int weft_fs_rename(weft_loop *loop, weft_fs_req *req, const char *from,
                            const char *to, weft_fs_cb cb);
/** Future form of weft_fs_rename(): int64 0. */
WEFT_API int weft_fs_rename_future(weft_loop *loop, const char *from,
                                   const char *to, weft_future **out);

/** mkdir(2): result 0. */
WEFT_API int weft_fs_mkdir(weft_loop *loop, weft_fs_req *req, const char *path,
                           unsigned mode, weft_fs_cb cb);
/** Future form of weft_fs_mkdir(): int64 0. */
WEFT_API int weft_fs_mkdir_future(weft_loop *loop, const char *path,
                                  unsigned mode, weft_future **out);

/** mkdtemp(3) on a template ending in "XXXXXX": req->ptr is the new
 * directory's path (char *), result 0. */
WEFT_API int weft_fs_mkdtemp(weft_loop *loop, weft_fs_req *req,
                             const char *tmpl, weft_fs_cb cb);
/** Future form of weft_fs_mkdtemp(): the path (char *) the future owns. */
WEFT_API int weft_fs_mkdtemp_future(weft_loop *loop, const char *tmpl,
                                    weft_future **out);

/** rmdir(2): result 0. */
WEFT_API int weft_fs_rmdir(weft_loop *loop, weft_fs_req *req, const char *path,
                           weft_fs_cb cb);
/** Future form of weft_fs_rmdir(): int64 0. */
WEFT_API int weft_fs_rmdir_future(weft_loop *loop, const char *path,
                                  weft_future **out);

/** Lists a directory: req->ptr is a weft_fs_dir * (names and types, sorted,
 * without "." and ".."), result the entry count. */
WEFT_API int weft_fs_scandir(weft_loop *loop, weft_fs_req *req,
                             const char *path, weft_fs_cb cb);
/** Future form of weft_fs_scandir(): a weft_fs_dir * the future owns. */
WEFT_API int weft_fs_scandir_future(weft_loop *loop, const char *path,
                                    weft_future **out);

/** fsync(2): result 0. */
WEFT_API int weft_fs_fsync(weft_loop *loop, weft_fs_req *req, int fd,
                           weft_fs_cb cb);
/** Future form of weft_fs_fsync(): int64 0. */
WEFT_API int weft_fs_fsync_future(weft_loop *loop, int fd, weft_future **out);
/** fdatasync(2): result 0. */
WEFT_API int weft_fs_fdatasync(weft_loop *loop, weft_fs_req *req, int fd,
                               weft_fs_cb cb);
/** Future form of weft_fs_fdatasync(): int64 0. */
WEFT_API int weft_fs_fdatasync_future(weft_loop *loop, int fd,
                                      weft_future **out);

/** ftruncate(2) to `len` bytes (at most INT64_MAX): result 0. */
WEFT_API int weft_fs_ftruncate(weft_loop *loop, weft_fs_req *req, int fd,
                               uint64_t len, weft_fs_cb cb);
/** Future form of weft_fs_ftruncate(): int64 0. */
WEFT_API int weft_fs_ftruncate_future(weft_loop *loop, int fd, uint64_t len,
                                      weft_future **out);

/** Copies up to `len` bytes from in_fd at `offset` to out_fd (a socket or
 * a file) with sendfile(2), looping until len bytes or end of file:
 * result is the byte count. */
WEFT_API int weft_fs_sendfile(weft_loop *loop, weft_fs_req *req, int out_fd,
                              int in_fd, int64_t offset, uint64_t len,
                              weft_fs_cb cb);
/** Future form of weft_fs_sendfile(): int64 bytes sent. */
WEFT_API int weft_fs_sendfile_future(weft_loop *loop, int out_fd, int in_fd,
                                     int64_t offset, uint64_t len,
                                     weft_future **out);

/** Copies file `src` to `dst`: result 0. flags: 0, or WEFT_FS_COPY_EXCL,
 * WEFT_FS_COPY_FICLONE and WEFT_FS_COPY_FICLONE_FORCE or-ed (FICLONE and
 * FICLONE_FORCE together act as FICLONE_FORCE). dst is created, or without
 * EXCL an existing dst is truncated; either way it gets src's permission
 * bits. With FICLONE a regular src is first cloned (the FICLONE ioctl,
 * shared copy-on-write extents) and only copied as below if the file system
 * cannot; with FICLONE_FORCE it is cloned or the call fails: -EOPNOTSUPP
 * when the file system (or a src that is not a regular file) cannot be
 * cloned (the ioctl's ENOTTY and EINVAL are reported as -EOPNOTSUPP),
 * -EXDEV when src and dst are on different file systems; an existing dst
 * is then left as it was. Holes stay holes: only src's data extents
 * (SEEK_DATA/SEEK_HOLE) are copied, with copy_file_range(2) or, where that
 * is unsupported (EXDEV, ENOSYS, ...), read/write, and dst is then sized
 * with ftruncate. A src with st_size 0 (procfs, a FIFO) is copied until end
 * of file. On failure a dst this call created is removed; an existing one
 * is kept and may hold part of the copy. -EEXIST (EXCL and dst exists),
 * -EISDIR (src is a directory), -EINVAL (dst is src itself, or bad flags),
 * or the errno of the failing call. */
WEFT_API int weft_fs_copyfile(weft_loop *loop, weft_fs_req *req,
                              const char *src, const char *dst, int flags,
                              weft_fs_cb cb);
/** Future form of weft_fs_copyfile(): int64 0. */
WEFT_API int weft_fs_copyfile_future(weft_loop *loop, const char *src,
                                     const char *dst, int flags,
                                     weft_future **out);

/** realpath(3): req->ptr is the canonical path (char *), result 0. */
WEFT_API int weft_fs_realpath(weft_loop *loop, weft_fs_req *req,
                              const char *path, weft_fs_cb cb);
/** Future form of weft_fs_realpath(): the path (char *) the future owns. */
WEFT_API int weft_fs_realpath_future(weft_loop *loop, const char *path,
                                     weft_future **out);

/** access(2) with mode F_OK or R_OK|W_OK|X_OK: result 0. */
WEFT_API int weft_fs_access(weft_loop *loop, weft_fs_req *req, const char *path,
                            int mode, weft_fs_cb cb);
/** Future form of weft_fs_access(): int64 0. */
WEFT_API int weft_fs_access_future(weft_loop *loop, const char *path, int mode,
                                   weft_future **out);

/** chmod(2): result 0. */
WEFT_API int weft_fs_chmod(weft_loop *loop, weft_fs_req *req, const char *path,
                           unsigned mode, weft_fs_cb cb);
/** Future form of weft_fs_chmod(): int64 0. */
WEFT_API int weft_fs_chmod_future(weft_loop *loop, const char *path,
                                  unsigned mode, weft_future **out);

/** link(2) (hard link `path` to existing `target`): result 0. */
WEFT_API int weft_fs_link(weft_loop *loop, weft_fs_req *req, const char *target,
                          const char *path, weft_fs_cb cb);
/** Future form of weft_fs_link(): int64 0. */
WEFT_API int weft_fs_link_future(weft_loop *loop, const char *target,
                                 const char *path, weft_future **out);

/** symlink(2) (`path` pointing to `target`): result 0. */
WEFT_API int weft_fs_symlink(weft_loop *loop, weft_fs_req *req,
                             const char *target, const char *path,
                             weft_fs_cb cb);
/** Future form of weft_fs_symlink(): int64 0. */
WEFT_API int weft_fs_symlink_future(weft_loop *loop, const char *target,
                                    const char *path, weft_future **out);

/** readlink(2): req->ptr is the target (char *, NUL-terminated), result
 * its length. */
WEFT_API int weft_fs_readlink(weft_loop *loop, weft_fs_req *req,
                              const char *path, weft_fs_cb cb);
/** Future form of weft_fs_readlink(): the target (char *) the future owns. */
WEFT_API int weft_fs_readlink_future(weft_loop *loop, const char *path,
                                     weft_future **out);

/** Sets access and modification times (seconds since the epoch, with
 * fractions; utimensat(2)): result 0. */
WEFT_API int weft_fs_utime(weft_loop *loop, weft_fs_req *req, const char *path,
                           double atime, double mtime, weft_fs_cb cb);
/** Future form of weft_fs_utime(): int64 0. */
WEFT_API int weft_fs_utime_future(weft_loop *loop, const char *path,
                                  double atime, double mtime,
                                  weft_future **out);

/** Reads a whole regular file: req->ptr is a weft_fs_buf *, result its
 * length. A large file (4 MiB and up) is read by several jobs at once, 1 MiB
 * chunks at distinct offsets. -EISDIR for a directory, -EFBIG above
 * SIZE_MAX / 2. */
WEFT_API int weft_fs_read_file(weft_loop *loop, weft_fs_req *req,
                               const char *path, weft_fs_cb cb);
/** Future form of weft_fs_read_file(): a weft_fs_buf * the future owns. */
WEFT_API int weft_fs_read_file_future(weft_loop *loop, const char *path,
                                      weft_future **out);

/** Replaces `path` atomically with `len` bytes of `data`: writes a
 * temporary file beside it, fsyncs it and renames it over `path`; readers
 * see the old or the new content, never a mix. As with open(2), `mode` is
 * for a new file and the umask applies (mode & ~umask); an existing regular
 * file keeps its mode (and its owner and group where the process may set
 * them). On failure `path` is untouched and the temporary file removed.
 * result 0. */
WEFT_API int weft_fs_write_file(weft_loop *loop, weft_fs_req *req,
                                const char *path, const void *data, size_t len,
                                unsigned mode, weft_fs_cb cb);
/** Future form of weft_fs_write_file(): int64 0. */
WEFT_API int weft_fs_write_file_future(weft_loop *loop, const char *path,
                                       const void *data, size_t len,
                                       unsigned mode, weft_future **out);

/* ---- more operations (libuv's remaining fs surface) ---------------------- */

#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif

/** The result of weft_fs_statfs(): statfs(2)'s figures, the fields of
 * libuv's uv_statfs_t. */
typedef struct weft_statfs {
  uint64_t type;     /**< f_type: the file system's magic number */
  uint64_t bsize;    /**< f_bsize: optimal transfer block size */
  uint64_t blocks;   /**< f_blocks: total data blocks */
  uint64_t bfree;    /**< f_bfree: free blocks */
  uint64_t bavail;   /**< f_bavail: free blocks for unprivileged users */
  uint64_t files;    /**< f_files: total inodes */
  uint64_t ffree;    /**< f_ffree: free inodes */
  uint64_t spare[4]; /**< zero */
} weft_statfs;

/** The result of weft_fs_mkstemp(): the new file's descriptor (yours to
 * close) and its path. */
typedef struct weft_fs_tmpfile {
  int fd;
  char path[];
} weft_fs_tmpfile;

#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic pop
#endif

/** statfs(2) on the file system holding `path`: req->ptr is a
 * weft_statfs *, result 0. */
WEFT_API int weft_fs_statfs(weft_loop *loop, weft_fs_req *req, const char *path,
                            weft_fs_cb cb);
/** Future form of weft_fs_statfs(): a weft_statfs * the future owns. */
WEFT_API int weft_fs_statfs_future(weft_loop *loop, const char *path,
                                   weft_future **out);

/** mkstemp(3) on a template ending in "XXXXXX" (else -EINVAL at the start
 * call): creates a new file, mode 0600, opened O_RDWR | O_CLOEXEC.
 * req->ptr is a weft_fs_tmpfile * (fd and path), result the fd. The fd is
 * the caller's to close; nothing is created when the call fails. */
WEFT_API int weft_fs_mkstemp(weft_loop *loop, weft_fs_req *req,
                             const char *tmpl, weft_fs_cb cb);
/** Future form of weft_fs_mkstemp(): a weft_fs_tmpfile * the future owns
 * (the fd inside is the caller's to close). If the future was cancelled
 * while the file was being made, the file is closed and removed. */
WEFT_API int weft_fs_mkstemp_future(weft_loop *loop, const char *tmpl,
                                    weft_future **out);

/** chown(2): uid or gid (uid_t)-1 / (gid_t)-1 leaves that one unchanged;
 * result 0. */
WEFT_API int weft_fs_chown(weft_loop *loop, weft_fs_req *req, const char *path,
                           uid_t uid, gid_t gid, weft_fs_cb cb);
/** Future form of weft_fs_chown(): int64 0. */
WEFT_API int weft_fs_chown_future(weft_loop *loop, const char *path, uid_t uid,
                                  gid_t gid, weft_future **out);
/** fchown(2), as weft_fs_chown() on an open fd: result 0. */
WEFT_API int weft_fs_fchown(weft_loop *loop, weft_fs_req *req, int fd,
                            uid_t uid, gid_t gid, weft_fs_cb cb);
/** Future form of weft_fs_fchown(): int64 0. */
WEFT_API int weft_fs_fchown_future(weft_loop *loop, int fd, uid_t uid,
                                   gid_t gid, weft_future **out);
/** lchown(2), as weft_fs_chown() but a symlink itself, not its target:
 * result 0. */
WEFT_API int weft_fs_lchown(weft_loop *loop, weft_fs_req *req, const char *path,
                            uid_t uid, gid_t gid, weft_fs_cb cb);
/** Future form of weft_fs_lchown(): int64 0. */
WEFT_API int weft_fs_lchown_future(weft_loop *loop, const char *path, uid_t uid,
                                   gid_t gid, weft_future **out);

/** fchmod(2): result 0. */
WEFT_API int weft_fs_fchmod(weft_loop *loop, weft_fs_req *req, int fd,
                            unsigned mode, weft_fs_cb cb);
/** Future form of weft_fs_fchmod(): int64 0. */
WEFT_API int weft_fs_fchmod_future(weft_loop *loop, int fd, unsigned mode,
                                   weft_future **out);

/** As weft_fs_utime() on an open fd (futimens(2)): result 0. Times that
 * are not finite are -EINVAL at the start call (also for weft_fs_utime()
 * and weft_fs_lutime()). */
WEFT_API int weft_fs_futime(weft_loop *loop, weft_fs_req *req, int fd,
                            double atime, double mtime, weft_fs_cb cb);
/** Future form of weft_fs_futime(): int64 0. */
WEFT_API int weft_fs_futime_future(weft_loop *loop, int fd, double atime,
                                   double mtime, weft_future **out);
/** As weft_fs_utime() but on a symlink itself, not its target
 * (utimensat(2) with AT_SYMLINK_NOFOLLOW): result 0. */
WEFT_API int weft_fs_lutime(weft_loop *loop, weft_fs_req *req, const char *path,
                            double atime, double mtime, weft_fs_cb cb);
/** Future form of weft_fs_lutime(): int64 0. */
WEFT_API int weft_fs_lutime_future(weft_loop *loop, const char *path,
                                   double atime, double mtime,
                                   weft_future **out);

/** fallocate(2): `mode` (0, or FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
 * ... from <linux/falloc.h>) is passed through unchanged; result 0.
 * -EINVAL at the start call for offset < 0 or len 0 or above INT64_MAX;
 * -EOPNOTSUPP when the file system does not support the mode. */
WEFT_API int weft_fs_fallocate(weft_loop *loop, weft_fs_req *req, int fd,
                               int mode, int64_t offset, uint64_t len,
                               weft_fs_cb cb);
/** Future form of weft_fs_fallocate(): int64 0. */
WEFT_API int weft_fs_fallocate_future(weft_loop *loop, int fd, int mode,
                                      int64_t offset, uint64_t len,
                                      weft_future **out);

/** A directory opened by weft_fs_opendir() for streamed reading. Opaque. */
typedef struct weft_fs_dirstream weft_fs_dirstream;

/** Opens a directory for streamed reading (no sorting, no whole-directory
 * listing: for directories of any size): req->ptr is the
 * weft_fs_dirstream *, result 0. The stream is the caller's until
 * weft_fs_closedir(); weft_fs_req_cleanup() does not free it. */
WEFT_API int weft_fs_opendir(weft_loop *loop, weft_fs_req *req,
                             const char *path, weft_fs_cb cb);
/** Future form of weft_fs_opendir(): the weft_fs_dirstream * (NOT owned by
 * the future: close it with weft_fs_closedir()). If the future was
 * cancelled while the directory was being opened, it is closed again. */
WEFT_API int weft_fs_opendir_future(weft_loop *loop, const char *path,
                                    weft_future **out);

/** Reads the next entries of `dir` into the caller's `entries` (n of them,
 * n >= 1), skipping "." and "..": result the count filled, between 1 and
 * n, or 0 at the end of the directory. Each entry read once, in the
 * directory's own order; entries added or removed meanwhile may or may not
 * appear (as with readdir(3)). The names point into the stream's buffer:
 * valid until the next weft_fs_readdir() or weft_fs_closedir() of `dir`.
 * -EINVAL at the start call for NULL dir or entries or n 0; -EBUSY if a
 * readdir or closedir of `dir` is pending. */
WEFT_API int weft_fs_readdir(weft_loop *loop, weft_fs_req *req,
                             weft_fs_dirstream *dir, weft_dirent *entries,
                             unsigned n, weft_fs_cb cb);
/** Future form of weft_fs_readdir(): int64 count. */
WEFT_API int weft_fs_readdir_future(weft_loop *loop, weft_fs_dirstream *dir,
                                    weft_dirent *entries, unsigned n,
                                    weft_future **out);

/** Closes `dir` and frees it (`dir` is invalid once the call has
 * started): result 0 (or close(2)'s error; the stream is freed anyway).
 * -EINVAL for NULL; -EBUSY at the start call if a readdir or closedir of
 * `dir` is pending (nothing happens: close it once that has completed). A
 * closedir cancelled before it ran (weft_fs_cancel(), loop teardown)
 * reports -ECANCELED but closes the stream all the same. */
WEFT_API int weft_fs_closedir(weft_loop *loop, weft_fs_req *req,
                              weft_fs_dirstream *dir, weft_fs_cb cb);
/** Future form of weft_fs_closedir(): int64 0. */
WEFT_API int weft_fs_closedir_future(weft_loop *loop, weft_fs_dirstream *dir,
                                     weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_FS_H */
