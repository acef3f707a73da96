/* weft — between io/fs.c (the API) and io/fs_ops.c (what runs on a
 * worker). Never installed. */
#ifndef WEFT_IO_FS_INTERNAL_H
#define WEFT_IO_FS_INTERNAL_H

#include "core/internal.h"
#include "weft/fs.h"

typedef enum weft__fs_op {
  WEFT__FS_OPEN = 1,
  WEFT__FS_CLOSE,
  WEFT__FS_READ,
  WEFT__FS_WRITE,
  WEFT__FS_STAT,
  WEFT__FS_LSTAT,
  WEFT__FS_FSTAT,
  WEFT__FS_UNLINK,
  WEFT__FS_RENAME,
  WEFT__FS_MKDIR,
  WEFT__FS_MKDTEMP,
  WEFT__FS_RMDIR,
  WEFT__FS_SCANDIR,
  WEFT__FS_FSYNC,
  WEFT__FS_FDATASYNC,
  WEFT__FS_FTRUNCATE,
  WEFT__FS_SENDFILE,
  WEFT__FS_COPYFILE,
  WEFT__FS_REALPATH,
  WEFT__FS_ACCESS,
  WEFT__FS_CHMOD,
  WEFT__FS_LINK,
  WEFT__FS_SYMLINK,
  WEFT__FS_READLINK,
  WEFT__FS_UTIME,
  WEFT__FS_READ_FILE,
  WEFT__FS_WRITE_FILE,
  WEFT__FS_STATFS,
  WEFT__FS_MKSTEMP,
  WEFT__FS_CHOWN,
  WEFT__FS_FCHOWN,
  WEFT__FS_LCHOWN,
  WEFT__FS_FCHMOD,
  WEFT__FS_FUTIME,
  WEFT__FS_LUTIME,
  WEFT__FS_FALLOCATE,
  WEFT__FS_OPENDIR,
  WEFT__FS_READDIR,
  WEFT__FS_CLOSEDIR
} weft__fs_op;

/* A directory stream: the fd and one getdents64 buffer. `busy` is touched
 * on the loop's thread only (set when a readdir or closedir starts, cleared
 * when a readdir completes); the worker owns everything else while a job
 * runs. */
#define WEFT__FS_DIRBUF (32u << 10)
struct weft_fs_dirstream {
  int fd;
  bool busy;
  bool eof;
  size_t pos, end; /* the unread part of buf */
  _Alignas(8) char buf[WEFT__FS_DIRBUF];
};

/* Closes and frees a directory stream (any thread). */
int weft__fs_dir_free(weft_fs_dirstream *d);

/* Internal steps of read_file for a large file (weft_fs_req.step; 0 while
 * the operation itself runs): several chunk jobs, or (when they cannot be
 * set up) one job reading the rest, then the close. */
enum { WEFT__FS_READ_FILE_REST = 1, WEFT__FS_CLOSE_KEEP };

#define WEFT__FS_CHUNK (1u << 20)
#define WEFT__FS_CHUNKED_MIN (4u << 20)
#define WEFT__FS_CHUNK_JOBS 4

/* One chunk job: reads regions idx, idx + n, idx + 2n, ... of the file. */
typedef struct weft__fs_chunk {
  weft_work w;
  weft_fs_req *req;
  unsigned idx;
  int64_t err;      /* 0 or a negative errno */
  int64_t short_at; /* offset where the file ended early, or -1 */
} weft__fs_chunk;

void weft__fs_chunk_run(weft_work *w);

/* Runs req's operation on a worker thread and stores req->result (and
 * req->statbuf / req->ptr). */
void weft__fs_run(weft_work *w);

#endif
