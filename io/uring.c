/* weft — the io_uring backend of the fs operations (see uring_internal.h
 * and docs/fs.md "Backends").
 *
 * Raw system calls (io_uring_setup/enter/register through syscall(2)) and
 * our own SQ/CQ ring code: the library gains no package dependency.
 *
 * One ring per loop, made on the first fs operation that can use it. A
 * request takes a slot (its user_data is the slot's index + 1; 0 marks a
 * cancel's own completion) and an SQE; SQEs are written at once but the
 * kernel is entered once per loop turn, in a prepare watcher, for all of
 * them. Completions signal an eventfd registered with the ring
 * (IORING_REGISTER_EVENTFD), watched by the loop like any fd, so they are
 * reaped in the loop's turn without a wake-up of their own.
 *
 * Memory ordering: the SQ tail is published with a release store after the
 * SQEs are written; the CQ tail is read with an acquire load before the
 * CQEs are, and the CQ head released after. The kernel is the only other
 * party and is entered by this thread (no SQPOLL), but the orders are
 * those the kernel documents. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/io_uring.h>
#include <linux/stat.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "uring_internal.h"

#define RING_ENTRIES 256u

typedef struct slot {
  weft_fs_req *req; /* NULL: free */
  unsigned next_free;
  bool submitted; /* the kernel has taken its SQE */
  bool cancelled; /* weft__uring_cancel or teardown asked */
  bool nop;       /* cancelled before submission: its SQE became a NOP */
  unsigned sqe;   /* its SQE's index while not submitted */
  struct statx stx;
} slot;

struct weft__uring {
  weft_loop *loop;
  weft__uring_done_fn done;
  int fd, efd;
  ev_io eio;
  ev_prepare prep;
  ev_idle retry; /* an enter failed: keep the poll from blocking */
  /* submission ring */
  unsigned *sq_khead, *sq_ktail, *sq_array;
  unsigned sq_mask, sq_entries;
  unsigned sq_tail; /* ours: SQEs written */
  unsigned sq_sub;  /* SQEs the kernel has taken */
  struct io_uring_sqe *sqes;
  /* completion ring */
  unsigned *cq_khead, *cq_ktail;
  unsigned cq_mask;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map;
  size_t sq_len, cq_len, sqes_len;
  unsigned char ops[256]; /* IORING_OP_* the kernel has */
  bool no_sync_cancel;
  slot *slots;
  unsigned nslots, free_head, inflight;
};

static int sys_setup(unsigned n, struct io_uring_params *p) {
  long r = syscall(__NR_io_uring_setup, n, p);
  return r < 0 ? -errno : (int)r;
}
static int sys_enter(int fd, unsigned submit, unsigned min, unsigned flags) {
  long r = syscall(__NR_io_uring_enter, fd, submit, min, flags, NULL, 0);
  return r < 0 ? -errno : (int)r;
}
static int sys_register(int fd, unsigned op, void *arg, unsigned n) {
  long r = syscall(__NR_io_uring_register, fd, op, arg, n);
  return r < 0 ? -errno : (int)r;
}

/* /proc/sys/kernel/io_uring_disabled: 0 on, 1 only for a group, 2 off.
 * Setup then fails with -EPERM anyway; reading it spares the attempt. */
static bool disabled_by_sysctl(void) {
  int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char c = '0';
  ssize_t n = read(fd, &c, 1);
  close(fd);
  return n == 1 && c == '2';
}

static void ring_unmap(weft__uring *u) {
  if (u->sqes != NULL && u->sqes != MAP_FAILED) munmap(u->sqes, u->sqes_len);
  if (u->cq_map != NULL && u->cq_map != MAP_FAILED && u->cq_map != u->sq_map)
    munmap(u->cq_map, u->cq_len);
  if (u->sq_map != NULL && u->sq_map != MAP_FAILED)
    munmap(u->sq_map, u->sq_len);
}

static void on_event(struct ev_loop *ev, ev_io *w, int revents);
static void on_prepare(struct ev_loop *ev, ev_prepare *w, int revents);
static void on_retry(struct ev_loop *ev, ev_idle *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(w);
  WEFT__UNUSED(revents);
}

static int map_ring(weft__uring *u, const struct io_uring_params *p) {
  u->sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
  u->cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
  bool single = p->features & IORING_FEAT_SINGLE_MMAP;
  if (single && u->cq_len > u->sq_len) u->sq_len = u->cq_len;
  u->sq_map = mmap(NULL, u->sq_len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQ_RING);
  if (u->sq_map == MAP_FAILED) return -errno;
  u->cq_map = single
                  ? u->sq_map
                  : mmap(NULL, u->cq_len, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_CQ_RING);
  if (u->cq_map == MAP_FAILED) return -errno;
  u->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
  u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQES);
  if (u->sqes == MAP_FAILED) return -errno;
  char *sq = u->sq_map, *cq = u->cq_map;
  u->sq_khead = (unsigned *)(sq + p->sq_off.head);
  u->sq_ktail = (unsigned *)(sq + p->sq_off.tail);
  u->sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
  u->sq_entries = p->sq_entries;
  u->sq_array = (unsigned *)(sq + p->sq_off.array);
  for (unsigned i = 0; i < p->sq_entries; i++)
    u->sq_array[i] = i; /* SQE i always sits at ring index i */
  u->sq_tail = u->sq_sub = *u->sq_ktail;
  u->cq_khead = (unsigned *)(cq + p->cq_off.head);
  u->cq_ktail = (unsigned *)(cq + p->cq_off.tail);
  u->cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
  u->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
  return 0;
}

static int probe(weft__uring *u) {
  size_t sz =
      sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  struct io_uring_probe *pr = weft__calloc(1, sz);
  if (pr == NULL) return -ENOMEM;
  int err = sys_register(u->fd, IORING_REGISTER_PROBE, pr, 256);
  if (err >= 0) {
    for (unsigned i = 0; i < pr->ops_len && i < 256; i++)
      if (pr->ops[i].flags & IO_URING_OP_SUPPORTED) u->ops[pr->ops[i].op] = 1;
    err = 0;
  }
  weft__free(pr);
  return err;
}

int weft__uring_new(weft_loop *loop, weft__uring_done_fn done,
                    weft__uring **out) {
  if (disabled_by_sysctl()) return -EPERM;
  weft__uring *u = weft__calloc(1, sizeof *u);
  if (u == NULL) return -ENOMEM;
  u->loop = loop;
  u->done = done;
  u->efd = -1;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SUBMIT_ALL;
  u->fd = sys_setup(RING_ENTRIES, &p);
  if (u->fd == -EINVAL) { /* a kernel older than 5.18 */
    memset(&p, 0, sizeof p);
    u->fd = sys_setup(RING_ENTRIES, &p);
  }
  int err = u->fd < 0 ? u->fd : 0;
  if (err == 0 && !(p.features & IORING_FEAT_NODROP)) err = -ENOSYS;
  if (err == 0) err = map_ring(u, &p);
  if (err == 0) err = probe(u);
  if (err == 0) {
    u->nslots = p.cq_entries; /* in flight <= CQ size: no overflow */
    u->cq_mask = p.cq_entries - 1;
    u->slots = weft__calloc(u->nslots, sizeof *u->slots);
    if (u->slots == NULL) err = -ENOMEM;
  }
  if (err == 0) {
    u->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (u->efd < 0) err = -errno;
  }
  if (err == 0) err = sys_register(u->fd, IORING_REGISTER_EVENTFD, &u->efd, 1);
  if (err < 0) {
    if (u->efd >= 0) close(u->efd);
    ring_unmap(u);
    if (u->fd >= 0) close(u->fd);
    weft__free(u->slots);
    weft__free(u);
    return err;
  }
  for (unsigned i = 0; i < u->nslots; i++)
    u->slots[i].next_free = i + 1;
  u->free_head = 0;
  ev_io_init(&u->eio, on_event, u->efd, EV_READ);
  u->eio.data = u;
  ev_prepare_init(&u->prep, on_prepare);
  u->prep.data = u;
  ev_idle_init(&u->retry, on_retry);
  weft__io_start(loop, &u->eio);
  *out = u;
  return 0;
}

void weft__uring_free(weft__uring *u) {
  if (u == NULL) return;
  weft__io_stop(u->loop, &u->eio);
  WEFT__EV_STOP(prepare, u->loop, &u->prep);
  WEFT__EV_STOP(idle, u->loop, &u->retry);
  close(u->efd);
  ring_unmap(u);
  close(u->fd);
  weft__free(u->slots);
  weft__free(u);
}

unsigned weft__uring_inflight(const weft__uring *u) {
  return u ? u->inflight : 0;
}

static int opcode_of(const weft_fs_req *req) {
  switch (req->op) {
  case WEFT__FS_OPEN:
    return IORING_OP_OPENAT;
  case WEFT__FS_CLOSE:
    return IORING_OP_CLOSE;
  case WEFT__FS_READ:
    return IORING_OP_READV;
  case WEFT__FS_WRITE:
    return IORING_OP_WRITEV;
  case WEFT__FS_STAT:
  case WEFT__FS_LSTAT:
  case WEFT__FS_FSTAT:
    return IORING_OP_STATX;
  case WEFT__FS_FSYNC:
  case WEFT__FS_FDATASYNC:
    return IORING_OP_FSYNC;
  case WEFT__FS_RENAME:
    return IORING_OP_RENAMEAT;
  case WEFT__FS_UNLINK:
    return IORING_OP_UNLINKAT;
  case WEFT__FS_MKDIR:
    return IORING_OP_MKDIRAT;
  case WEFT__FS_RMDIR:
    return IORING_OP_UNLINKAT;
  case WEFT__FS_LINK:
    return IORING_OP_LINKAT;
  case WEFT__FS_SYMLINK:
    return IORING_OP_SYMLINKAT;
  case WEFT__FS_FALLOCATE:
    return IORING_OP_FALLOCATE;
  default:
    return -1;
  }
}

bool weft__uring_knows(const weft_fs_req *req) { return opcode_of(req) >= 0; }

bool weft__uring_can(const weft__uring *u, const weft_fs_req *req) {
  int op = opcode_of(req);
  return op >= 0 && u->ops[op];
}

/* ---- submission ---------------------------------------------------------- */

/* Hands every written SQE to the kernel. Returns 0 or a negative errno
 * (then the rest stay written and the prepare watcher tries again). */
static int flush(weft__uring *u) {
  while (u->sq_sub != u->sq_tail) {
    __atomic_store_n(u->sq_ktail, u->sq_tail, __ATOMIC_RELEASE);
    int n = sys_enter(u->fd, u->sq_tail - u->sq_sub, 0, 0);
    if (n == -EINTR) continue;
    if (n < 0) {
      WEFT__EV_START(idle, u->loop, &u->retry);
      return n;
    }
    for (unsigned i = 0; i < (unsigned)n; i++) {
      struct io_uring_sqe *sqe = &u->sqes[(u->sq_sub + i) & u->sq_mask];
      if (sqe->user_data != 0) u->slots[sqe->user_data - 1].submitted = true;
    }
    u->sq_sub += (unsigned)n;
    if (n == 0) break;
  }
  if (u->sq_sub == u->sq_tail) {
    WEFT__EV_STOP(prepare, u->loop, &u->prep);
    WEFT__EV_STOP(idle, u->loop, &u->retry);
  }
  return 0;
}

static void on_prepare(struct ev_loop *ev, ev_prepare *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  flush(w->data);
}

/* A free SQE, zeroed, or NULL when the SQ is full even after a flush. */
static struct io_uring_sqe *get_sqe(weft__uring *u) {
  if (u->sq_tail - __atomic_load_n(u->sq_khead, __ATOMIC_ACQUIRE) >=
      u->sq_entries) {
    flush(u);
    if (u->sq_tail - __atomic_load_n(u->sq_khead, __ATOMIC_ACQUIRE) >=
        u->sq_entries)
      return NULL;
  }
  struct io_uring_sqe *sqe = &u->sqes[u->sq_tail & u->sq_mask];
  memset(sqe, 0, sizeof *sqe);
  return sqe;
}

static void prep_sqe(struct io_uring_sqe *sqe, weft_fs_req *req, slot *s) {
  sqe->opcode = (unsigned char)opcode_of(req);
  sqe->fd = AT_FDCWD;
  switch (req->op) {
  case WEFT__FS_OPEN:
    sqe->addr = (uintptr_t)req->path;
    sqe->len = req->mode;
    sqe->open_flags = (unsigned)(req->flags | O_CLOEXEC);
    break;
  case WEFT__FS_CLOSE:
    sqe->fd = req->fd;
    break;
  case WEFT__FS_READ:
  case WEFT__FS_WRITE:
    sqe->fd = req->fd;
    sqe->addr = (uintptr_t)req->iov;
    sqe->len = req->nbufs;
    sqe->off = req->offset < 0 ? (uint64_t)-1 : (uint64_t)req->offset;
    break;
  case WEFT__FS_STAT:
  case WEFT__FS_LSTAT:
  case WEFT__FS_FSTAT:
    sqe->addr = (uintptr_t)(req->op == WEFT__FS_FSTAT ? "" : req->path);
    if (req->op == WEFT__FS_FSTAT) sqe->fd = req->fd;
    sqe->len = STATX_BASIC_STATS;
    sqe->statx_flags = AT_STATX_SYNC_AS_STAT |
                       (req->op == WEFT__FS_LSTAT ? AT_SYMLINK_NOFOLLOW : 0) |
                       (req->op == WEFT__FS_FSTAT ? AT_EMPTY_PATH : 0);
    sqe->off = (uintptr_t)&s->stx;
    break;
  case WEFT__FS_FSYNC:
  case WEFT__FS_FDATASYNC:
    sqe->fd = req->fd;
    sqe->fsync_flags =
        req->op == WEFT__FS_FDATASYNC ? IORING_FSYNC_DATASYNC : 0;
    break;
  case WEFT__FS_RENAME:
    sqe->addr = (uintptr_t)req->path;
    sqe->len = (unsigned)AT_FDCWD;
    sqe->addr2 = (uintptr_t)req->path2;
    break;
  case WEFT__FS_UNLINK:
    sqe->addr = (uintptr_t)req->path;
    break;
  case WEFT__FS_MKDIR:
    sqe->addr = (uintptr_t)req->path;
    sqe->len = req->mode;
    break;
  case WEFT__FS_RMDIR:
    sqe->addr = (uintptr_t)req->path;
    sqe->unlink_flags = AT_REMOVEDIR;
    break;
  case WEFT__FS_LINK: /* path: the existing file, path2: the new name */
    sqe->addr = (uintptr_t)req->path;
    sqe->len = (unsigned)AT_FDCWD;
    sqe->addr2 = (uintptr_t)req->path2;
    break;
  case WEFT__FS_SYMLINK: /* path: the target, path2: the link */
    sqe->addr = (uintptr_t)req->path;
    sqe->addr2 = (uintptr_t)req->path2;
    break;
  case WEFT__FS_FALLOCATE:
    sqe->fd = req->fd;
    sqe->off = (uint64_t)req->offset;
    sqe->addr = req->len;
    sqe->len = (unsigned)req->flags;
    break;
  default:
    break;
  }
}

int weft__uring_start(weft__uring *u, weft_fs_req *req) {
  if (u->inflight >= u->nslots) return -EAGAIN;
  struct io_uring_sqe *sqe = get_sqe(u);
  if (sqe == NULL) return -EAGAIN;
  unsigned i = u->free_head;
  slot *s = &u->slots[i];
  u->free_head = s->next_free;
  s->req = req;
  s->submitted = s->cancelled = s->nop = false;
  s->sqe = u->sq_tail & u->sq_mask;
  prep_sqe(sqe, req, s);
  sqe->user_data = i + 1;
  u->sq_tail++;
  u->inflight++;
  req->uslot = i + 1;
  weft__req_start(u->loop);
  WEFT__EV_START(prepare, u->loop, &u->prep);
  return 0;
}

/* ---- completion ---------------------------------------------------------- */

static void to_stat(const struct statx *x, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
  st->st_ino = x->stx_ino;
  st->st_mode = x->stx_mode;
  st->st_nlink = x->stx_nlink;
  st->st_uid = x->stx_uid;
  st->st_gid = x->stx_gid;
  st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
  st->st_size = (off_t)x->stx_size;
  st->st_blksize = (blksize_t)x->stx_blksize;
  st->st_blocks = (blkcnt_t)x->stx_blocks;
  st->st_atim.tv_sec = x->stx_atime.tv_sec;
  st->st_atim.tv_nsec = x->stx_atime.tv_nsec;
  st->st_mtim.tv_sec = x->stx_mtime.tv_sec;
  st->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
  st->st_ctim.tv_sec = x->stx_ctime.tv_sec;
  st->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

/* Ops without a side effect: a cancelled one reports -ECANCELED even if
 * the kernel finished it meanwhile (an open's fd is closed). The others
 * report what happened. */
static bool undoable(int op) {
  return op == WEFT__FS_READ || op == WEFT__FS_OPEN || op == WEFT__FS_STAT ||
         op == WEFT__FS_LSTAT || op == WEFT__FS_FSTAT;
}

static void finish(weft__uring *u, unsigned i, int res) {
  slot *s = &u->slots[i];
  weft_fs_req *req = s->req;
  if (s->nop) {
    res = -ECANCELED;
  } else if (s->cancelled) {
    if (res == -EINTR || res == -ECANCELED) {
      res = -ECANCELED;
    } else if (undoable(req->op)) {
      if (req->op == WEFT__FS_OPEN && res >= 0) close(res);
      res = -ECANCELED;
    }
  }
  if (res == 0 && opcode_of(req) == IORING_OP_STATX)
    to_stat(&s->stx, &req->statbuf);
  if (req->op == WEFT__FS_CLOSE && res == -EINTR)
    res = 0; /* Linux closed the fd anyway (as do_close) */
  req->result = res;
  req->uslot = 0;
  s->req = NULL;
  s->next_free = u->free_head;
  u->free_head = i;
  u->inflight--;
  weft__req_done(u->loop);
  u->done(req);
}

/* Reaps every completion there is; the callbacks run here. */
static void reap(weft__uring *u) {
  for (;;) {
    unsigned head = *u->cq_khead;
    if (head == __atomic_load_n(u->cq_ktail, __ATOMIC_ACQUIRE)) return;
    const struct io_uring_cqe *c = &u->cqes[head & u->cq_mask];
    uint64_t ud = c->user_data;
    int res = c->res;
    __atomic_store_n(u->cq_khead, head + 1, __ATOMIC_RELEASE);
    if (ud != 0) finish(u, (unsigned)(ud - 1), res);
  }
}

static void on_event(struct ev_loop *ev, ev_io *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  weft__uring *u = w->data;
  uint64_t n;
  ssize_t rc = read(u->efd, &n, sizeof n);
  WEFT__UNUSED(rc); /* EAGAIN: a completion already reaped */
  reap(u);
}

/* ---- cancel -------------------------------------------------------------- */

int weft__uring_cancel(weft__uring *u, weft_fs_req *req) {
  unsigned i = req->uslot - 1;
  slot *s = &u->slots[i];
  if (s->cancelled) return -EALREADY;
  if (!s->submitted) { /* still ours: the SQE becomes a NOP */
    struct io_uring_sqe *sqe = &u->sqes[s->sqe];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = i + 1;
    s->cancelled = s->nop = true;
    return 0;
  }
  if (!u->no_sync_cancel) {
    struct io_uring_sync_cancel_reg r;
    memset(&r, 0, sizeof r);
    r.addr = i + 1;
    r.fd = -1;
    r.timeout.tv_sec = -1;
    r.timeout.tv_nsec = -1;
    int rc;
    do
      rc = sys_register(u->fd, IORING_REGISTER_SYNC_CANCEL, &r, 1);
    while (rc == -EINTR);
    if (rc >= 0) { /* the kernel is done with it */
      s->cancelled = true;
      return 0;
    }
    if (rc == -ENOENT) return -EALREADY; /* its completion is posted */
    if (rc != -EINVAL) return -EBUSY;
    u->no_sync_cancel = true; /* a kernel older than 6.0 */
  }
  struct io_uring_sqe *sqe = get_sqe(u);
  if (sqe == NULL) return -EBUSY;
  sqe->opcode = IORING_OP_ASYNC_CANCEL;
  sqe->addr = i + 1;
  sqe->user_data = 0;
  u->sq_tail++;
  flush(u);
  s->cancelled = true;
  return -EBUSY; /* asked; the kernel's answer is the callback's result */
}

void weft__uring_drain(weft__uring *u) {
  for (unsigned i = 0; i < u->nslots; i++)
    if (u->slots[i].req != NULL && !u->slots[i].cancelled)
      weft__uring_cancel(u, u->slots[i].req);
  flush(u);
  while (u->inflight > 0) {
    reap(u);
    if (u->inflight == 0) break;
    int rc = sys_enter(u->fd, 0, 1, IORING_ENTER_GETEVENTS);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN) break;
  }
}
