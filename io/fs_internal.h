/* weft — between io/fs.c (the API) and io/fs_ops.c (what runs on a
 * worker). Never installed. */
#ifndef WEFT_IO_FS_INTERNAL_H
#define WEFT_IO_FS_INTERNAL_H

#include "core/internal.h"
#include "weft/fs.h"

typedef enum weft__fs_op {
  FS_OPEN = 1, FS_CLOSE, FS_READ, FS_WRITE, FS_STAT, FS_LSTAT, FS_FSTAT,
  FS_UNLINK, FS_RENAME, FS_MKDIR, FS_MKDTEMP, FS_RMDIR, FS_SCANDIR, FS_FSYNC,
  FS_FDATASYNC, FS_FTRUNCATE, FS_SENDFILE, FS_COPYFILE, FS_REALPATH,
  FS_ACCESS, FS_CHMOD, FS_LINK, FS_SYMLINK, FS_READLINK, FS_UTIME,
  FS_READ_FILE, FS_WRITE_FILE
} weft__fs_op;

/* Internal steps of read_file for a large file (weft_fs_req.step; 0 while
 * the operation itself runs): several chunk jobs, or (when they cannot be
 * set up) one job reading the rest, then the close. */
enum { FS_READ_FILE_REST = 1, FS_CLOSE_KEEP };

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
