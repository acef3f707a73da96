/* weft — asynchronous file-system operations: the API, the callback form
 * and the future form. The work itself is in io/fs_ops.c.
 *
 * Every operation is an io-lane pool job embedded in its weft_fs_req. Each
 * one has a `prep_X` that validates and copies its arguments into the
 * request; WEFT__FS_PAIR then generates both public forms from it, so the two
 * cannot drift apart. Future-form requests come from a per-loop free list
 * (WEFT__MOD_FS). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <sys/uio.h>

#include "core/pool_internal.h"
#include "fs_internal.h"
#include "uring_internal.h"

/* A future-form request: the request, then the future it settles. */
typedef struct fs_fut {
  weft_fs_req req;
  weft_future *f;
  struct fs_fut *free_next;
} fs_fut;

typedef struct fs_state {
  fs_fut *free;
  /* the backend (docs/fs.md "Backends") */
  int backend;       /* weft_fs_backend */
  weft__uring *ring; /* NULL: none (yet, or the kernel refused) */
  int ring_error;    /* why there is none, or 0 */
  unsigned retry_in; /* -EMFILE/-ENFILE/-ENOMEM: ops before trying again */
  weft_fs_stats st;
} fs_state;

/* uslot of a request that completed on the ring (weft_fs_cancel: -EALREADY) */
#define USLOT_DONE UINT_MAX

static fs_state *fs_st(weft_loop *loop);

/* ---- request lifecycle -------------------------------------------------- */

static void free_paths(weft_fs_req *req) {
  weft__free(req->path);
  weft__free(req->path2);
  req->path = req->path2 = NULL;
}

void weft_fs_req_cleanup(weft_fs_req *req) {
  if (req == NULL) return;
  free_paths(req);
  if (req->op != WEFT__FS_OPENDIR) /* a stream is closed by closedir only */
    weft__free(req->ptr);
  req->ptr = NULL;
}

/* A readdir or closedir that will not run after all gives its stream back;
 * the stream is claimed (busy) only once prep succeeded, so req->dir is set
 * exactly when this request holds the claim. */
static void unclaim(weft_fs_req *req) {
  if ((req->op == WEFT__FS_READDIR || req->op == WEFT__FS_CLOSEDIR) &&
      req->dir != NULL)
    ((weft_fs_dirstream *)req->dir)->busy = false;
  req->dir = NULL;
}

int weft_fs_cancel(weft_fs_req *req) {
  if (req == NULL) return -EINVAL;
  if (req->uslot == USLOT_DONE) return -EALREADY;
  if (req->uslot != 0) {
    fs_state *st = weft__module_get(req->work.loop, WEFT__MOD_FS);
    return weft__uring_cancel(st->ring, req);
  }
  if (req->step == WEFT__FS_CLOSE_KEEP)
    return -EBUSY; /* only the close is left */
  if (req->chunks == NULL) return weft_work_cancel(&req->work);
  weft__fs_chunk *cs = req->chunks;
  int res = -EBUSY;
  for (unsigned i = 0; i < req->nchunks; i++)
    if (weft_work_cancel(&cs[i].w) == 0) res = 0;
  return res;
}

static void fs_done(weft_work *w, int status);

/* Delivers a finished request to its owner. */
static void fs_complete(weft_fs_req *req) {
  req->step = 0;
  if (req->result < 0 && req->op == WEFT__FS_READ_FILE) {
    weft__free(req->ptr);
    req->ptr = NULL;
  }
  free_paths(req);
  if (req->op == WEFT__FS_READDIR) {
    unclaim(req);
  } else if (req->op == WEFT__FS_CLOSEDIR && req->dir != NULL) {
    /* never ran (cancelled, loop teardown): close the stream all the same;
     * closing a directory fd does not block */
    if (req->result == -ECANCELED) weft__fs_dir_free(req->dir);
    req->dir = NULL;
  }
  req->cb(req);
}

/* A ring request is over (io/uring.c). */
static void ring_done(weft_fs_req *req) {
  req->uslot = USLOT_DONE;
  fs_complete(req);
}

/* A large read_file's next step runs as req's own job again; if it cannot
 * be queued (the loop is being freed) the fd is closed here. */
static void resubmit(weft_fs_req *req, int step) {
  req->step = step;
  if (weft_work_submit(req->work.loop, &req->work, WEFT_LANE_IO, weft__fs_run,
                       fs_done) == 0)
    return;
  close(req->fd2);
  req->result = -ECANCELED;
  fs_complete(req);
}

/* Every chunk job is over: the result, then the close. */
static void chunks_finish(weft_fs_req *req) {
  weft__fs_chunk *cs = req->chunks;
  weft_fs_buf *b = req->ptr;
  int64_t res = (int64_t)b->len;
  for (unsigned i = 0; i < req->nchunks; i++) {
    if (cs[i].err < 0 && res >= 0) res = cs[i].err;
    if (cs[i].short_at >= 0 && cs[i].short_at < (int64_t)b->len)
      b->len = (size_t)cs[i].short_at;
  }
  if (res >= 0) {
    b->data[b->len] = '\0';
    res = (int64_t)b->len;
  }
  weft__free(cs);
  req->chunks = NULL;
  req->result = res;
  resubmit(req, WEFT__FS_CLOSE_KEEP);
}

static void chunk_done(weft_work *w, int status) {
  weft__fs_chunk *c = (weft__fs_chunk *)w;
  if (status != 0) c->err = status;
  if (--c->req->pending == 0) chunks_finish(c->req);
}

/* The file is open and its buffer allocated: read it with up to
 * WEFT__FS_CHUNK_JOBS jobs at once, or with one job if they cannot be set
 * up. */
static void chunks_start(weft_fs_req *req) {
  size_t size = ((weft_fs_buf *)req->ptr)->len;
  size_t regions = (size + WEFT__FS_CHUNK - 1) / WEFT__FS_CHUNK;
  unsigned n =
      regions < WEFT__FS_CHUNK_JOBS ? (unsigned)regions : WEFT__FS_CHUNK_JOBS;
  weft__fs_chunk *cs = weft__calloc(n, sizeof *cs);
  if (cs == NULL) {
    resubmit(req, WEFT__FS_READ_FILE_REST);
    return;
  }
  req->chunks = cs;
  req->nchunks = n;
  req->pending = 0;
  for (unsigned i = 0; i < n; i++) {
    cs[i].req = req;
    cs[i].idx = i;
    cs[i].short_at = -1;
    int err = weft_work_submit(req->work.loop, &cs[i].w, WEFT_LANE_IO,
                               weft__fs_chunk_run, chunk_done);
    if (err != 0)
      cs[i].err = err; /* never queued: the worker cannot race */
    else
      req->pending++;
  }
  if (req->pending == 0) chunks_finish(req);
}

static void fs_done(weft_work *w, int status) {
  weft_fs_req *req = (weft_fs_req *)w;
  if (status != 0) req->result = status; /* cancelled before it ran */
  if (req->step == 0 && req->fd2 >= 0 && req->op == WEFT__FS_READ_FILE &&
      req->result >= 0) {
    if (atomic_load(&w->cancel)) { /* cancelled while it opened the file */
      req->result = -ECANCELED;
      resubmit(req, WEFT__FS_CLOSE_KEEP);
    } else {
      chunks_start(req);
    }
    return;
  }
  if (status != 0 && req->step != 0)
    close(req->fd2); /* loop teardown cancelled the step that would close it */
  fs_complete(req);
}

/* Resets everything but the user's data pointer. */
static void req_reset(weft_fs_req *req, weft_fs_cb cb, int op) {
  void *data = req->data;
  memset(req, 0, sizeof *req);
  req->data = data;
  req->cb = cb;
  req->op = op;
  req->fd = req->fd2 = -1;
}

/* A positioned read of data that is already in the page cache cannot
 * block, so preadv2(RWF_NOWAIT) does it on the loop's thread and the
 * completion comes from the deferred queue (weft__work_complete), never
 * inline, just as it would from the pool: with a warm cache the hand-off
 * to a worker and back costs more than copying the data. Anything else (data
 * not cached, a short read, a file position read, a pipe, any error) goes to
 * the pool as before. A read done here has finished: weft_fs_cancel() then says
 * -EALREADY. */
static bool cached_read(weft_loop *loop, weft_fs_req *req) {
  if (req->offset < 0 || req->nbufs == 0) return false;
  size_t want = 0;
  for (unsigned i = 0; i < req->nbufs; i++)
    want += req->iov[i].iov_len;
  ssize_t n = preadv2(req->fd, req->iov, (int)req->nbufs, (off_t)req->offset,
                      RWF_NOWAIT);
  if (n < 0 || (n != 0 && (size_t)n != want)) return false;
  if (weft__work_complete(loop, &req->work, fs_done) != 0) return false;
  req->result = n;
  return true;
}

static int opkind(int op) {
  switch (op) {
  case WEFT__FS_OPEN:
    return WEFT_FS_OPK_OPEN;
  case WEFT__FS_CLOSE:
    return WEFT_FS_OPK_CLOSE;
  case WEFT__FS_READ:
    return WEFT_FS_OPK_READ;
  case WEFT__FS_WRITE:
    return WEFT_FS_OPK_WRITE;
  case WEFT__FS_STAT:
  case WEFT__FS_LSTAT:
  case WEFT__FS_FSTAT:
    return WEFT_FS_OPK_STAT;
  case WEFT__FS_FSYNC:
  case WEFT__FS_FDATASYNC:
    return WEFT_FS_OPK_FSYNC;
  case WEFT__FS_RENAME:
    return WEFT_FS_OPK_RENAME;
  case WEFT__FS_UNLINK:
    return WEFT_FS_OPK_UNLINK;
  case WEFT__FS_MKDIR:
    return WEFT_FS_OPK_MKDIR;
  case WEFT__FS_RMDIR:
    return WEFT_FS_OPK_RMDIR;
  case WEFT__FS_LINK:
  case WEFT__FS_SYMLINK:
    return WEFT_FS_OPK_LINK;
  case WEFT__FS_FALLOCATE:
    return WEFT_FS_OPK_FALLOCATE;
  default:
    return WEFT_FS_OPK_OTHER;
  }
}

/* Makes the ring if there is none and the backend wants one. */
static weft__uring *ring_of(weft_loop *loop, fs_state *st) {
  if (st->ring != NULL || st->backend == WEFT_FS_BACKEND_POOL) return st->ring;
  if (st->ring_error != 0) {
    if (st->retry_in == 0 || --st->retry_in != 0) return NULL;
  }
  int err = weft__uring_new(loop, ring_done, &st->ring);
  st->ring_error = err;
  /* out of fds or memory may pass; the kernel's refusal does not */
  st->retry_in = err == -EMFILE || err == -ENFILE || err == -ENOMEM ? 256 : 0;
  return st->ring;
}

/* On the ring if it can take req: true when started there. */
static bool ring_submit(weft_loop *loop, weft_fs_req *req) {
  fs_state *st = fs_st(loop);
  if (st == NULL) return false;
  int k = opkind(req->op);
  if (!weft__uring_knows(req) || st->backend == WEFT_FS_BACKEND_POOL) {
    st->st.pool[k]++;
    return false;
  }
  weft__uring *u = ring_of(loop, st);
  if (u == NULL || !weft__uring_can(u, req)) {
    st->st.fallback_unsupported++;
    st->st.pool[k]++;
    return false;
  }
  req->work.loop = loop;
  if (weft__uring_start(u, req) != 0) {
    st->st.fallback_full++;
    st->st.pool[k]++;
    return false;
  }
  st->st.ring[k]++;
  return true;
}

static int req_submit(weft_loop *loop, weft_fs_req *req, int err) {
  if (err == 0 && req->op == WEFT__FS_READ && cached_read(loop, req)) {
    fs_state *st = fs_st(loop);
    if (st != NULL) st->st.pool[WEFT_FS_OPK_READ]++;
    return 0;
  }
  if (err == 0 && ring_submit(loop, req)) return 0;
  if (err == 0)
    err =
        weft_work_submit(loop, &req->work, WEFT_LANE_IO, weft__fs_run, fs_done);
  if (err != 0) {
    free_paths(req);
    unclaim(req);
  }
  return err;
}

static int set_path(char **dst, const char *src) {
  if (src == NULL) return -EINVAL;
  *dst = weft__strdup(src);
  return *dst == NULL ? -ENOMEM : 0;
}

/* ---- the future form
 * ----------------------------------------------------------- */

static void fs_state_teardown(weft_loop *loop, void *arg) {
  WEFT__UNUSED(loop);
  fs_state *st = arg;
  weft__uring_free(st->ring);
  while (st->free != NULL) {
    fs_fut *ff = st->free;
    st->free = ff->free_next;
    weft__free(ff);
  }
  weft__free(st);
}

/* Loop teardown with ring requests in flight: they are cancelled, the
 * kernel is waited for and their callbacks run. */
static void fs_state_before_free(weft_loop *loop, void *arg,
                                 unsigned requests) {
  WEFT__UNUSED(requests);
  fs_state *st = arg;
  if (weft__uring_inflight(st->ring) == 0) return;
  weft__uring_drain(st->ring);
  /* The pool's hook ran first (module order) and left its jobs alone while
   * ring requests were outstanding too: give it its turn again now. */
  weft__module *pm = &loop->modules[WEFT__MOD_POOL];
  unsigned left = loop->alive - loop->user_refs;
  if (pm->before_free != NULL && left != 0 && loop->handle_count == 0 &&
      loop->cs_count == 0)
    pm->before_free(loop, pm->state, left);
}

static int backend_from_env(void) {
  const char *e = getenv("WEFT_FS_BACKEND");
  if (e == NULL) return WEFT_FS_BACKEND_AUTO;
  if (strcmp(e, "pool") == 0) return WEFT_FS_BACKEND_POOL;
  if (strcmp(e, "uring") == 0) return WEFT_FS_BACKEND_URING;
  return WEFT_FS_BACKEND_AUTO;
}

/* The loop's fs state, made on first use; NULL if out of memory. */
static fs_state *fs_st(weft_loop *loop) {
  fs_state *st = weft__module_get(loop, WEFT__MOD_FS);
  if (WEFT__LIKELY(st != NULL)) return st;
  st = weft__calloc(1, sizeof *st);
  if (st == NULL) return NULL;
  st->backend = backend_from_env();
  weft__module_set(loop, WEFT__MOD_FS, st, fs_state_teardown);
  weft__module_set_before_free(loop, WEFT__MOD_FS, fs_state_before_free);
  return st;
}

int weft_fs_set_backend(weft_loop *loop, weft_fs_backend backend) {
  if (loop == NULL || (unsigned)backend > WEFT_FS_BACKEND_URING) return -EINVAL;
  fs_state *st = fs_st(loop);
  if (st == NULL) return -ENOMEM;
  st->backend = (int)backend;
  if (backend != WEFT_FS_BACKEND_URING) return 0;
  st->retry_in = st->ring_error != 0 ? 1 : 0; /* ask the kernel again */
  return ring_of(loop, st) != NULL ? 0 : st->ring_error;
}

int weft_fs_get_stats(weft_loop *loop, weft_fs_stats *out) {
  if (loop == NULL || out == NULL) return -EINVAL;
  fs_state *st = fs_st(loop);
  if (st == NULL) return -ENOMEM;
  *out = st->st;
  out->backend = st->backend;
  out->ring_active = st->ring != NULL;
  out->ring_error = st->ring_error;
  out->ring_inflight = weft__uring_inflight(st->ring);
  return 0;
}

static fs_fut *fut_get(weft_loop *loop) {
  fs_state *st = fs_st(loop);
  if (st == NULL) return NULL;
  fs_fut *ff = st->free;
  if (ff != NULL)
    st->free = ff->free_next;
  else
    ff = weft__calloc(1, sizeof *ff);
  return ff;
}

static void fut_put(weft_loop *loop, fs_fut *ff) {
  fs_state *st = weft__module_get(loop, WEFT__MOD_FS);
  weft_fs_req_cleanup(&ff->req);
  ff->f = NULL;
  ff->free_next = st->free;
  st->free = ff;
}

static bool is_stat(int op) {
  return op == WEFT__FS_STAT || op == WEFT__FS_LSTAT || op == WEFT__FS_FSTAT;
}
static bool has_ptr(int op) {
  return op == WEFT__FS_MKDTEMP || op == WEFT__FS_SCANDIR ||
         op == WEFT__FS_REALPATH || op == WEFT__FS_READLINK ||
         op == WEFT__FS_READ_FILE || op == WEFT__FS_STATFS ||
         op == WEFT__FS_MKSTEMP || op == WEFT__FS_OPENDIR;
}

/* A result the future could not take (it was settled meanwhile, by a
 * cancel while the job ran): what the job made is undone. */
static void undo_result(weft_fs_req *req) {
  if (req->op == WEFT__FS_OPENDIR) {
    weft__fs_dir_free(req->ptr);
    req->ptr = NULL;
  } else if (req->op == WEFT__FS_MKSTEMP) {
    weft_fs_tmpfile *t = req->ptr;
    close(t->fd);
    unlink(t->path);
  }
}

/* Settles the future from a finished request; pointer results move to the
 * future (its dtor frees them). */
static void settle(weft_future *f, weft_fs_req *req) {
  if (req->result == -ECANCELED) {
    weft_future_cancel(f); /* loop teardown; -EALREADY if the future did it */
  } else if (req->result < 0) {
    weft_future_reject(f, (int)req->result);
  } else if (is_stat(req->op)) {
    struct stat *s = weft__malloc(sizeof *s);
    if (s == NULL)
      weft_future_reject(f, -ENOMEM);
    else if (*s = req->statbuf, weft_future_resolve(f, s, weft__free) != 0)
      weft__free(s);
  } else if (has_ptr(req->op)) {
    weft_dtor dtor = req->op == WEFT__FS_OPENDIR ? NULL : weft__free;
    if (weft_future_resolve(f, req->ptr, dtor) == 0)
      req->ptr = NULL;
    else
      undo_result(req);
  } else {
    weft_future_resolve_i64(f, req->result);
  }
}

static void fut_done(weft_fs_req *req) {
  fs_fut *ff = (fs_fut *)req;
  weft_future *f = ff->f;
  settle(f, req);
  fut_put(weft_future_loop(f), ff);
  weft_future_unref(f);
}

static void fut_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft_fs_cancel(arg);
}

static int fut_begin(weft_loop *loop, weft_future **out, int op,
                     weft_fs_req **reqp) {
  if (loop == NULL || out == NULL) return -EINVAL;
  fs_fut *ff = fut_get(loop);
  if (ff == NULL) return -ENOMEM;
  req_reset(&ff->req, fut_done, op);
  *reqp = &ff->req;
  return 0;
}

static int fut_submit(weft_loop *loop, weft_fs_req *req, weft_future **out,
                      int err, const char *opname) {
  fs_fut *ff = (fs_fut *)req;
  if (err == 0) err = weft_future_new_op(loop, opname, &ff->f);
  if (err == 0) err = weft_future_on_cancel(ff->f, fut_cancel, req);
  if (err == 0) err = req_submit(loop, req, 0);
  if (err != 0) {
    unclaim(req);
    weft_future_unref(ff->f);
    fut_put(loop, ff);
    return err;
  }
  *out = weft_future_ref(ff->f); /* the caller's; the request keeps one */
  return 0;
}

/* ---- the operations
 * ------------------------------------------------------------- */

#define UNPACK(...) __VA_ARGS__
/* Both public forms of operation `name`, from prep_##name(req, ARGS). */
#define WEFT__FS_PAIR(name, OP, PARAMS, ARGS)                                  \
  int weft_fs_##name(weft_loop *loop, weft_fs_req *req, UNPACK PARAMS,         \
                     weft_fs_cb cb) {                                          \
    if (loop == NULL || req == NULL || cb == NULL) return -EINVAL;             \
    req_reset(req, cb, OP);                                                    \
    return req_submit(loop, req, prep_##name(req, UNPACK ARGS));               \
  }                                                                            \
  int weft_fs_##name##_future(weft_loop *loop, UNPACK PARAMS,                  \
                              weft_future **out) {                             \
    weft_fs_req *req = NULL;                                                   \
    int err = fut_begin(loop, out, OP, &req);                                  \
    if (err != 0) return err;                                                  \
    return fut_submit(loop, req, out, prep_##name(req, UNPACK ARGS),           \
                      "weft_fs_" #name "_future");                             \
  }

static int prep_path(weft_fs_req *req, const char *path) {
  return set_path(&req->path, path);
}
static int prep_path_mode(weft_fs_req *req, const char *path, unsigned mode) {
  req->mode = mode;
  return set_path(&req->path, path);
}
static int prep_two_paths(weft_fs_req *req, const char *a, const char *b) {
  int err = set_path(&req->path, a);
  return err ? err : set_path(&req->path2, b);
}
static int prep_fd(weft_fs_req *req, int fd) {
  req->fd = fd;
  return 0;
}

static int prep_open(weft_fs_req *req, const char *path, int flags,
                     unsigned mode) {
  req->flags = flags;
  return prep_path_mode(req, path, mode);
}
static int prep_rw(weft_fs_req *req, int fd, const struct iovec *iov,
                   unsigned n, int64_t offset) {
  if ((iov == NULL && n != 0) || n > IOV_MAX) return -EINVAL;
  req->fd = fd;
  req->iov = iov;
  req->nbufs = n;
  req->offset = offset < 0 ? -1 : offset;
  return 0;
}
static int prep_ftruncate(weft_fs_req *req, int fd, uint64_t len) {
  if (len > INT64_MAX) return -EINVAL;
  req->len = len;
  return prep_fd(req, fd);
}
static int prep_sendfile(weft_fs_req *req, int out_fd, int in_fd,
                         int64_t offset, uint64_t len) {
  req->fd = out_fd;
  req->fd2 = in_fd;
  req->offset = offset < 0 ? -1 : offset;
  req->len = len;
  return 0;
}
static int prep_copyfile(weft_fs_req *req, const char *src, const char *dst,
                         int flags) {
  if (flags &
      ~(WEFT_FS_COPY_EXCL | WEFT_FS_COPY_FICLONE | WEFT_FS_COPY_FICLONE_FORCE))
    return -EINVAL;
  req->flags = flags;
  return prep_two_paths(req, src, dst);
}
static int prep_access(weft_fs_req *req, const char *path, int mode) {
  if (mode & ~(F_OK | R_OK | W_OK | X_OK)) return -EINVAL;
  req->flags = mode;
  return prep_path(req, path);
}
static int prep_mkdtemp(weft_fs_req *req, const char *tmpl) {
  size_t n = tmpl ? strlen(tmpl) : 0;
  if (n < 6 || strcmp(tmpl + n - 6, "XXXXXX") != 0) return -EINVAL;
  return prep_path(req, tmpl);
}
static int prep_times(weft_fs_req *req, double atime, double mtime) {
  /* (time_t)NaN or an infinity is undefined behaviour */
  if (!isfinite(atime) || !isfinite(mtime)) return -EINVAL;
  req->atime = atime;
  req->mtime = mtime;
  return 0;
}
static int prep_utime(weft_fs_req *req, const char *path, double atime,
                      double mtime) {
  int err = prep_times(req, atime, mtime);
  return err ? err : prep_path(req, path);
}
static int prep_futime(weft_fs_req *req, int fd, double atime, double mtime) {
  req->fd = fd;
  return prep_times(req, atime, mtime);
}
static int prep_chown(weft_fs_req *req, const char *path, uid_t uid,
                      gid_t gid) {
  req->uid = uid;
  req->gid = gid;
  return prep_path(req, path);
}
static int prep_fchown(weft_fs_req *req, int fd, uid_t uid, gid_t gid) {
  req->uid = uid;
  req->gid = gid;
  return prep_fd(req, fd);
}
static int prep_fchmod(weft_fs_req *req, int fd, unsigned mode) {
  req->mode = mode;
  return prep_fd(req, fd);
}
static int prep_fallocate(weft_fs_req *req, int fd, int mode, int64_t offset,
                          uint64_t len) {
  if (offset < 0 || len == 0 || len > INT64_MAX) return -EINVAL;
  req->fd = fd;
  req->flags = mode;
  req->offset = offset;
  req->len = len;
  return 0;
}
static int prep_readdir(weft_fs_req *req, weft_fs_dirstream *dir,
                        weft_dirent *entries, unsigned n) {
  if (dir == NULL || entries == NULL || n == 0) return -EINVAL;
  if (dir->busy) return -EBUSY;
  dir->busy = true;
  req->dir = dir;
  req->dirents = entries;
  req->nbufs = n;
  return 0;
}
static int prep_closedir(weft_fs_req *req, weft_fs_dirstream *dir) {
  if (dir == NULL) return -EINVAL;
  if (dir->busy) return -EBUSY;
  dir->busy = true;
  req->dir = dir;
  return 0;
}
static int prep_write_file(weft_fs_req *req, const char *path, const void *data,
                           size_t len, unsigned mode) {
  if (data == NULL && len != 0) return -EINVAL;
  req->buf = data;
  req->len = len;
  return prep_path_mode(req, path, mode);
}

#define prep_close prep_fd
#define prep_read prep_rw
#define prep_write prep_rw
#define prep_stat prep_path
#define prep_lstat prep_path
#define prep_fstat prep_fd
#define prep_unlink prep_path
#define prep_rename prep_two_paths
#define prep_mkdir prep_path_mode
#define prep_rmdir prep_path
#define prep_scandir prep_path
#define prep_fsync prep_fd
#define prep_fdatasync prep_fd
#define prep_realpath prep_path
#define prep_chmod prep_path_mode
#define prep_link prep_two_paths
#define prep_symlink prep_two_paths
#define prep_readlink prep_path
#define prep_read_file prep_path
#define prep_statfs prep_path
#define prep_mkstemp prep_mkdtemp
#define prep_lchown prep_chown
#define prep_lutime prep_utime
#define prep_opendir prep_path

WEFT__FS_PAIR(open, WEFT__FS_OPEN, (const char *path, int flags, unsigned mode),
              (path, flags, mode))
WEFT__FS_PAIR(close, WEFT__FS_CLOSE, (int fd), (fd))
WEFT__FS_PAIR(read, WEFT__FS_READ,
              (int fd, const struct iovec *iov, unsigned nbufs, int64_t offset),
              (fd, iov, nbufs, offset))
WEFT__FS_PAIR(write, WEFT__FS_WRITE,
              (int fd, const struct iovec *iov, unsigned nbufs, int64_t offset),
              (fd, iov, nbufs, offset))
WEFT__FS_PAIR(stat, WEFT__FS_STAT, (const char *path), (path))
WEFT__FS_PAIR(lstat, WEFT__FS_LSTAT, (const char *path), (path))
WEFT__FS_PAIR(fstat, WEFT__FS_FSTAT, (int fd), (fd))
WEFT__FS_PAIR(unlink, WEFT__FS_UNLINK, (const char *path), (path))
WEFT__FS_PAIR(rename, WEFT__FS_RENAME, (const char *from, const char *to),
              (from, to))
WEFT__FS_PAIR(mkdir, WEFT__FS_MKDIR, (const char *path, unsigned mode),
              (path, mode))
WEFT__FS_PAIR(mkdtemp, WEFT__FS_MKDTEMP, (const char *tmpl), (tmpl))
WEFT__FS_PAIR(rmdir, WEFT__FS_RMDIR, (const char *path), (path))
WEFT__FS_PAIR(scandir, WEFT__FS_SCANDIR, (const char *path), (path))
WEFT__FS_PAIR(fsync, WEFT__FS_FSYNC, (int fd), (fd))
WEFT__FS_PAIR(fdatasync, WEFT__FS_FDATASYNC, (int fd), (fd))
WEFT__FS_PAIR(ftruncate, WEFT__FS_FTRUNCATE, (int fd, uint64_t len), (fd, len))
WEFT__FS_PAIR(sendfile, WEFT__FS_SENDFILE,
              (int out_fd, int in_fd, int64_t offset, uint64_t len),
              (out_fd, in_fd, offset, len))
WEFT__FS_PAIR(copyfile, WEFT__FS_COPYFILE,
              (const char *src, const char *dst, int flags), (src, dst, flags))
WEFT__FS_PAIR(realpath, WEFT__FS_REALPATH, (const char *path), (path))
WEFT__FS_PAIR(access, WEFT__FS_ACCESS, (const char *path, int mode),
              (path, mode))
WEFT__FS_PAIR(chmod, WEFT__FS_CHMOD, (const char *path, unsigned mode),
              (path, mode))
WEFT__FS_PAIR(link, WEFT__FS_LINK, (const char *target, const char *path),
              (target, path))
WEFT__FS_PAIR(symlink, WEFT__FS_SYMLINK, (const char *target, const char *path),
              (target, path))
WEFT__FS_PAIR(readlink, WEFT__FS_READLINK, (const char *path), (path))
WEFT__FS_PAIR(utime, WEFT__FS_UTIME,
              (const char *path, double atime, double mtime),
              (path, atime, mtime))
WEFT__FS_PAIR(read_file, WEFT__FS_READ_FILE, (const char *path), (path))
WEFT__FS_PAIR(write_file, WEFT__FS_WRITE_FILE,
              (const char *path, const void *data, size_t len, unsigned mode),
              (path, data, len, mode))
WEFT__FS_PAIR(statfs, WEFT__FS_STATFS, (const char *path), (path))
WEFT__FS_PAIR(mkstemp, WEFT__FS_MKSTEMP, (const char *tmpl), (tmpl))
WEFT__FS_PAIR(chown, WEFT__FS_CHOWN, (const char *path, uid_t uid, gid_t gid),
              (path, uid, gid))
WEFT__FS_PAIR(fchown, WEFT__FS_FCHOWN, (int fd, uid_t uid, gid_t gid),
              (fd, uid, gid))
WEFT__FS_PAIR(lchown, WEFT__FS_LCHOWN, (const char *path, uid_t uid, gid_t gid),
              (path, uid, gid))
WEFT__FS_PAIR(fchmod, WEFT__FS_FCHMOD, (int fd, unsigned mode), (fd, mode))
WEFT__FS_PAIR(futime, WEFT__FS_FUTIME, (int fd, double atime, double mtime),
              (fd, atime, mtime))
WEFT__FS_PAIR(lutime, WEFT__FS_LUTIME,
              (const char *path, double atime, double mtime),
              (path, atime, mtime))
WEFT__FS_PAIR(fallocate, WEFT__FS_FALLOCATE,
              (int fd, int mode, int64_t offset, uint64_t len),
              (fd, mode, offset, len))
WEFT__FS_PAIR(opendir, WEFT__FS_OPENDIR, (const char *path), (path))
WEFT__FS_PAIR(readdir, WEFT__FS_READDIR,
              (weft_fs_dirstream * dir, weft_dirent *entries, unsigned n),
              (dir, entries, n))
WEFT__FS_PAIR(closedir, WEFT__FS_CLOSEDIR, (weft_fs_dirstream * dir), (dir))
