/* weft — the process pool: multiprocessing.Pool for C.
 *
 * N workers, each a child process whose stdin and stdout are pipes. A job
 * is one frame to the worker's stdin, its reply one frame from its stdout:
 *   job:   u32 length (big-endian), payload
 *   reply: u32 length, i32 status (big-endian), payload
 * A worker runs one job at a time (bounded concurrency: N jobs run); the
 * rest wait in a FIFO queue.
 *
 * Worker lifecycle: spawned -> idle <-> busy -> exited -> its three handles
 * close -> replaced (unless the pool is closing, or it died before doing
 * any work, which would make a broken command respawn in a tight loop).
 * A worker that dies during a job rejects it with WEFT_EWORKER. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "weft/process.h"

#define MAX_WORKERS 1024u
#define MAX_FRAME ((size_t)1 << 30)
#define REPLY_HDR 8u

typedef struct worker worker;

typedef struct job {
  weft__list node; /* the pool's queue */
  weft_procpool *pool;
  weft_future *future; /* the producer's reference */
  worker *w;           /* running on it */
  bool dropped;        /* taken off the queue by the pool itself */
  size_t frame_len;
  char frame[]; /* header + payload */
} job;

struct worker {
  weft_procpool *pool;
  weft_process proc;
  weft_pipe in, out;
  weft_write_req wreq;
  job *job;
  char *rbuf;
  size_t rlen, rcap;
  unsigned open; /* handles whose close callback is to come */
  unsigned done; /* jobs completed */
  bool exited, crashed;
  bool replace; /* to be replaced once its handles closed */
  bool writing; /* wreq is in use */
  int fail;     /* why we killed it mid-job (0: it died by itself) */
};

struct weft_procpool {
  weft_loop *loop;
  char **argv, **env, *cwd; /* copies, for respawns */
  unsigned target, live;    /* wanted and running workers */
  unsigned respawning;      /* exited workers that will be replaced */
  unsigned alive;           /* worker structs not yet freed */
  worker **ws;              /* target slots; NULL when empty */
  weft__list queue;
  size_t queued, max_queue;
  bool closing;
  weft_procpool_close_cb close_cb;
  void *close_arg;
};

static void dispatch(weft_procpool *pool);
static int worker_spawn(weft_procpool *pool, unsigned slot);

/* ---- copies
 * ------------------------------------------------------------------ */

static void strv_free(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p; p++)
    weft__free(*p);
  weft__free(v);
}

static int strv_dup(char *const *v, char ***out) {
  *out = NULL;
  if (v == NULL) return 0;
  size_t n = 0;
  while (v[n])
    n++;
  char **c = weft__calloc(n + 1, sizeof *c);
  if (c == NULL) return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    if ((c[i] = weft__strdup(v[i])) == NULL) {
      strv_free(c);
      return -ENOMEM;
    }
  *out = c;
  return 0;
}

static void pool_free(weft_procpool *pool) {
  strv_free(pool->argv);
  strv_free(pool->env);
  weft__free(pool->cwd);
  weft__free(pool->ws);
  weft__free(pool);
}

/* ---- jobs
 * ---------------------------------------------------------------------- */

static void job_free(job *j) {
  weft_future_unref(j->future);
  weft__free(j);
}

static void on_job_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  job *j = arg;
  if (j->dropped) return; /* reject_queue() frees it */
  if (j->w == NULL) {     /* queued: drop it */
    weft__list_unlink(&j->node);
    j->pool->queued--;
    job_free(j);
    return;
  }
  /* running: stop the work; the worker's exit frees the job unsettled */
  weft_process_kill(&j->w->proc, SIGKILL);
}

static void put_be32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24);
  p[1] = (char)(v >> 16);
  p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

static uint32_t get_be32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
         u[3];
}

static int job_new(weft_procpool *pool, const void *data, size_t len,
                   job **out) {
  job *j = weft__malloc(sizeof *j + 4 + len);
  if (j == NULL) return -ENOMEM;
  int err = weft_future_new_op(pool->loop, "weft_procpool_submit", &j->future);
  if (err != 0) {
    weft__free(j);
    return err;
  }
  weft__list_init(&j->node);
  j->pool = pool;
  j->w = NULL;
  j->dropped = false;
  j->frame_len = 4 + len;
  put_be32(j->frame, (uint32_t)len);
  if (len) memcpy(j->frame + 4, data, len);
  weft_future_on_cancel(j->future, on_job_cancel, j);
  *out = j;
  return 0;
}

/* The pool cannot run jobs any more: reject what waits. */
static void reject_queue(weft_procpool *pool, int err) {
  weft__list *n;
  while ((n = weft__list_pop_front(&pool->queue)) != NULL) {
    job *j = WEFT__CONTAINER_OF(n, job, node);
    pool->queued--;
    j->dropped = true;
    if (err == -ECANCELED)
      weft_future_cancel(j->future);
    else
      weft_future_reject(j->future, err);
    job_free(j);
  }
}

/* ---- workers: closing and replacing
 * ------------------------------------------ */

static void worker_gone(weft_procpool *pool, unsigned slot, bool replace) {
  pool->ws[slot] = NULL;
  pool->alive--;
  if (replace && !pool->closing && worker_spawn(pool, slot) == 0) {
    dispatch(pool);
    return;
  }
  /* no worker runs and none is coming: nothing can run the queue */
  if (pool->live == 0 && pool->respawning == 0 && !pool->closing)
    reject_queue(pool, WEFT_EWORKER);
  if (pool->alive == 0 && pool->closing) {
    if (pool->close_cb) pool->close_cb(pool, pool->close_arg);
    pool_free(pool);
  }
}

static unsigned slot_of(const worker *w) {
  for (unsigned i = 0; i < w->pool->target; i++)
    if (w->pool->ws[i] == w) return i;
  return 0;
}

static void on_worker_closed(weft_handle *h) {
  worker *w = h->data;
  if (--w->open != 0) return;
  weft_procpool *pool = w->pool;
  unsigned slot = slot_of(w);
  bool replace = w->replace;
  if (replace) pool->respawning--;
  weft__free(w->rbuf);
  weft__free(w);
  worker_gone(pool, slot, replace);
}

static void worker_close(worker *w) {
  weft_handle *hs[3] = {&w->proc.base, &w->in.stream.base, &w->out.stream.base};
  for (int i = 0; i < 3; i++)
    if (!weft_is_closing(hs[i])) weft_close(hs[i], on_worker_closed);
}

static void drain_replies(worker *w);

static void on_worker_exit(weft_process *p, int64_t status, int sig) {
  WEFT__UNUSED(status);
  WEFT__UNUSED(sig);
  worker *w = p->base.data;
  w->exited = true; /* no more dispatching to it */
  w->pool->live--;
  drain_replies(w);
  if (w->job != NULL) {
    w->crashed = true;
    /* -EALREADY if the job was cancelled */
    weft_future_reject(w->job->future, w->fail ? w->fail : WEFT_EWORKER);
    job_free(w->job);
    w->job = NULL;
  }
  /* one that dies before doing any work is not replaced: a broken command
   * would respawn in a tight loop */
  w->replace = w->crashed || w->done > 0;
  if (w->replace) w->pool->respawning++;
  worker_close(w);
}

/* A broken reply or pipe: the worker cannot be trusted any more. */
static void worker_kill(worker *w) {
  if (!w->exited) weft_process_kill(&w->proc, SIGKILL);
}

/* ---- replies
 * ---------------------------------------------------------------------- */

static void result_dtor(void *v) {
  weft_procpool_result *r = v;
  weft__free(r);
}

static void job_reply(worker *w, const char *payload, size_t len,
                      int32_t status) {
  job *j = w->job;
  w->job = NULL;
  w->done++;
  if (status < 0) {
    weft_future_reject(j->future, status);
  } else {
    weft_procpool_result *r = weft__malloc(sizeof *r + len + 1);
    if (r == NULL) {
      weft_future_reject(j->future, -ENOMEM);
    } else {
      r->data = (char *)(r + 1);
      r->len = len;
      memcpy(r->data, payload, len);
      r->data[len] = '\0';
      if (weft_future_resolve(j->future, r, result_dtor) != 0) weft__free(r);
    }
  }
  job_free(j);
  if (!w->pool->closing)
    dispatch(w->pool);
  else if (!weft_is_closing(&w->in.stream.base))
    weft_close(&w->in.stream.base, on_worker_closed);
}

/* Consumes the complete reply frames in rbuf. */
static void parse_replies(worker *w) {
  size_t off = 0;
  while (w->rlen - off >= REPLY_HDR) {
    size_t len = get_be32(w->rbuf + off);
    int32_t status = (int32_t)get_be32(w->rbuf + off + 4);
    if (len > MAX_FRAME || w->job == NULL) {
      worker_kill(w);
      return;
    }
    if (w->rlen - off - REPLY_HDR < len) break;
    job_reply(w, w->rbuf + off + REPLY_HDR, len, status);
    off += REPLY_HDR + len;
  }
  if (off == 0) return;
  memmove(w->rbuf, w->rbuf + off, w->rlen - off);
  w->rlen -= off;
}

static int rbuf_append(worker *w, const char *data, size_t n) {
  if (w->rlen + n > w->rcap) {
    size_t cap = w->rcap ? w->rcap : 4096;
    while (cap < w->rlen + n)
      cap *= 2;
    char *b = weft__realloc(w->rbuf, cap);
    if (b == NULL) return -ENOMEM;
    w->rbuf = b;
    w->rcap = cap;
  }
  memcpy(w->rbuf + w->rlen, data, n);
  w->rlen += n;
  return 0;
}

/* The exit can be seen before the last reply is read (both are ready in
 * the same poll): a worker that replied and then exited did its job. Its
 * stdout has no writer left, so this read ends at once. */
static void drain_replies(worker *w) {
  int fd = weft_stream_fileno(&w->out.stream);
  if (fd < 0 || weft_is_closing(&w->out.stream.base)) return;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0 && rbuf_append(w, buf, (size_t)n) != 0) return;
  parse_replies(w);
}

static void on_worker_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  worker *w = s->base.data;
  if (nread == 0) return;
  int err = nread < 0 ? 0 : rbuf_append(w, buf->base, (size_t)nread);
  if (nread < 0 || err != 0) {
    weft_stream_read_stop(s);
    if (w->fail == 0) w->fail = err;
    worker_kill(w); /* end of replies: its exit cleans up */
    return;
  }
  parse_replies(w);
}

/* ---- dispatch
 * ------------------------------------------------------------------------ */

static void on_job_written(weft_write_req *req, int status) {
  worker *w = req->data;
  w->writing = false;
  if (status == -ECANCELED) return; /* closing */
  /* a failed write means the worker is gone or going: its exit handles it */
  if (status != 0)
    worker_kill(w);
  else if (!w->pool->closing)
    dispatch(w->pool);
}

static void dispatch(weft_procpool *pool) {
  for (unsigned i = 0; i < pool->target && pool->queued > 0; i++) {
    worker *w = pool->ws[i];
    if (w == NULL || w->exited || w->job != NULL || w->writing) continue;
    job *j = WEFT__CONTAINER_OF(weft__list_pop_front(&pool->queue), job, node);
    pool->queued--;
    j->w = w;
    w->job = j;
    weft_buf b = weft_buf_init(j->frame, j->frame_len);
    w->writing = true;
    if (weft_stream_write(&w->wreq, &w->in.stream, &b, 1, on_job_written) !=
        0) {
      w->writing = false;
      worker_kill(w);
    }
  }
}

/* ---- spawning
 * ---------------------------------------------------------------------- */

static int worker_spawn(weft_procpool *pool, unsigned slot) {
  worker *w = weft__calloc(1, sizeof *w);
  if (w == NULL) return -ENOMEM;
  w->pool = pool;
  w->wreq.data = w;
  weft_pipe_init(pool->loop, &w->in);
  weft_pipe_init(pool->loop, &w->out);
  weft_stdio st[3] = {{WEFT_STDIO_PIPE, -1, &w->in},
                      {WEFT_STDIO_PIPE, -1, &w->out},
                      {WEFT_STDIO_INHERIT, -1, NULL}};
  weft_process_options o = {.argv = pool->argv,
                            .env = pool->env,
                            .cwd = pool->cwd,
                            .stdio = st,
                            .stdio_count = 3,
                            .exit_cb = on_worker_exit};
  w->proc.base.data = w->in.stream.base.data = w->out.stream.base.data = w;
  int err = weft_spawn(pool->loop, &w->proc, &o);
  if (err == 0)
    err = weft_stream_read_start(&w->out.stream, NULL, on_worker_read);
  pool->ws[slot] = w;
  pool->alive++;
  w->open = 2;
  if (err != 0) {
    /* the pipes (and the child, if any) close; the slot stays empty */
    w->exited = true;
    if (w->proc.base.ops != NULL) {
      w->open = 3;
      weft_process_kill(&w->proc, SIGKILL);
    }
    worker_close(w);
    return err;
  }
  w->open = 3;
  pool->live++;
  return 0;
}

static int pool_copy(weft_procpool *pool, const weft_procpool_options *o) {
  int err = strv_dup(o->argv, &pool->argv);
  if (err == 0) err = strv_dup(o->env, &pool->env);
  if (err == 0 && o->cwd && (pool->cwd = weft__strdup(o->cwd)) == NULL)
    err = -ENOMEM;
  if (err == 0 &&
      (pool->ws = weft__calloc(pool->target, sizeof *pool->ws)) == NULL)
    err = -ENOMEM;
  return err;
}

int weft_procpool_new(weft_loop *loop, const weft_procpool_options *o,
                      weft_procpool **out) {
  if (loop == NULL || o == NULL || out == NULL || o->argv == NULL ||
      o->argv[0] == NULL || o->workers > MAX_WORKERS)
    return -EINVAL;
  weft_procpool *pool = weft__calloc(1, sizeof *pool);
  if (pool == NULL) return -ENOMEM;
  pool->loop = loop;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  pool->target = o->workers ? o->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
  pool->max_queue = o->max_queue;
  weft__list_init(&pool->queue);
  int err = pool_copy(pool, o);
  for (unsigned i = 0; err == 0 && i < pool->target; i++)
    err = worker_spawn(pool, i);
  if (err == 0) {
    *out = pool;
    return 0;
  }
  /* started workers get their stdin closed and exit; the pool is freed once
   * they are gone (a later turn) */
  if (pool->alive == 0) {
    pool_free(pool);
    return err;
  }
  weft_procpool_close(pool, NULL, NULL);
  return err;
}

/* ---- the public calls
 * --------------------------------------------------------------- */

int weft_procpool_submit(weft_procpool *pool, const void *data, size_t len,
                         weft_future **out) {
  if (pool == NULL || out == NULL || (len && data == NULL) || len > MAX_FRAME)
    return -EINVAL;
  if (pool->closing) return WEFT_ECLOSED;
  if (pool->max_queue && pool->queued >= pool->max_queue) return -EAGAIN;
  if (pool->live == 0 && pool->respawning == 0) return WEFT_EWORKER;
  job *j;
  int err = job_new(pool, data, len, &j);
  if (err != 0) return err;
  weft__list_push_back(&pool->queue, &j->node);
  pool->queued++;
  *out = weft_future_ref(j->future);
  dispatch(pool);
  return 0;
}

int weft_procpool_map(weft_procpool *pool, const weft_buf *inputs, size_t n,
                      weft_future **futs, weft_future **all) {
  if (pool == NULL || (n > 0 && (inputs == NULL || futs == NULL)))
    return -EINVAL;
  if (pool->max_queue && pool->queued + n > pool->max_queue + pool->live)
    return -EAGAIN;
  size_t i;
  int err = 0;
  for (i = 0; i < n && err == 0; i++)
    err = weft_procpool_submit(pool, inputs[i].base, inputs[i].len, &futs[i]);
  size_t done = err == 0 ? n : i - 1; /* futures submitted */
  if (err == 0 && all != NULL) err = weft_future_all(pool->loop, futs, n, all);
  if (err == 0) return 0;
  for (size_t k = 0; k < done; k++) { /* take them back */
    weft_future_cancel(futs[k]);
    weft_future_unref(futs[k]);
    futs[k] = NULL;
  }
  return err;
}

/* Closing a pool that has no worker left: the callback still runs later. */
static void close_empty(void *arg) {
  weft_procpool *pool = arg;
  if (pool->close_cb) pool->close_cb(pool, pool->close_arg);
  pool_free(pool);
}

int weft_procpool_close(weft_procpool *pool, weft_procpool_close_cb cb,
                        void *arg) {
  if (pool == NULL) return -EINVAL;
  if (pool->closing) return -EALREADY;
  if (pool->alive == 0) {
    int err = weft_call_soon(pool->loop, close_empty, pool);
    if (err != 0) return err;
  }
  pool->closing = true;
  pool->close_cb = cb;
  pool->close_arg = arg;
  reject_queue(pool, -ECANCELED);
  for (unsigned i = 0; i < pool->target; i++) {
    worker *w = pool->ws[i];
    if (w != NULL && w->job == NULL && !weft_is_closing(&w->in.stream.base))
      weft_close(&w->in.stream.base, on_worker_closed);
  }
  return 0;
}

unsigned weft_procpool_workers(const weft_procpool *pool) {
  return pool ? pool->live + pool->respawning : 0;
}

/* ---- the worker side
 * -------------------------------------------------------------- */

/* Reads exactly n bytes: 1 done, 0 at end of input before any byte, < 0
 * on an error or a frame cut short. */
static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return got == 0 ? 0 : -EPROTO;
    got += (size_t)r;
  }
  return 1;
}

static int write_full(int fd, const void *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(fd, (const char *)buf + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    put += (size_t)r;
  }
  return 0;
}

static int worker_one(weft_procpool_handler fn, void *arg, size_t len) {
  char *in = weft__malloc(len ? len : 1);
  if (in == NULL) return -ENOMEM;
  int err = read_full(0, in, len);
  if (len > 0 && err != 1) {
    weft__free(in);
    return err < 0 ? err : -EPROTO;
  }
  weft_buf out = {NULL, 0};
  int status = fn(in, len, &out, arg);
  weft__free(in);
  if (status < 0 || out.len > MAX_FRAME) {
    free(out.base);
    out = (weft_buf){NULL, 0};
    if (status >= 0) status = -EMSGSIZE;
  }
  char hdr[REPLY_HDR];
  put_be32(hdr, (uint32_t)out.len);
  put_be32(hdr + 4, (uint32_t)(status < 0 ? status : 0));
  err = write_full(1, hdr, sizeof hdr);
  if (err == 0 && out.len) err = write_full(1, out.base, out.len);
  free(out.base);
  return err;
}

int weft_procpool_worker_main(weft_procpool_handler fn, void *arg) {
  if (fn == NULL) return -EINVAL;
  signal(SIGPIPE, SIG_IGN); /* a gone parent: fail the write, exit */
  for (;;) {
    char hdr[4];
    int r = read_full(0, hdr, sizeof hdr);
    if (r <= 0) return r;
    size_t len = get_be32(hdr);
    if (len > MAX_FRAME) return -EPROTO;
    int err = worker_one(fn, arg, len);
    if (err != 0) return err;
  }
}
