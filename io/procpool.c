/* weft — the process pool: multiprocessing.Pool for C.
 *
 * N workers, each a child process whose stdin and stdout are pipes; the
 * wire is in io/procpool_internal.h. A worker runs one message at a time
 * (a single job, or a batch of a map's items: io/procpool_map.c); the rest
 * wait in one FIFO queue. Job futures are their own kind
 * (io/procpool_job.c), so that a failure can carry the worker's message;
 * the worker side is io/procpool_worker.c, and reading the workers'
 * replies io/procpool_reply.c (io/procpool_pool.h has the state they
 * share).
 *
 * Worker lifecycle: spawned -> [starting: initializer sent, its reply
 * awaited] -> idle <-> busy -> exited -> its three handles close ->
 * replaced (unless the pool is closing, it was retired by a resize, or it
 * died before doing any work, which would make a broken command respawn in
 * a tight loop). Retiring (resize) and recycling (max_jobs_per_worker)
 * close the worker's stdin once it is idle; a recycled worker is replaced.
 * A worker that dies with work in hand fails it with WEFT_EWORKER (never
 * re-runs it: the job may have run). `members` counts the workers that
 * make up the pool's size: running ones and exited ones awaiting their
 * replacement, not retiring ones. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procpool_pool.h"

extern char **environ;

#define MAX_WORKERS 1024u

static void dispatch(weft_procpool *pool);
static int worker_spawn(weft_procpool *pool);
static void on_worker_closed(weft_handle *h);

weft_loop *weft__procpool_loop(const weft_procpool *pool) { return pool->loop; }

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
  weft__free(pool->init_frame);
  weft__free(pool->init_msg);
  weft__free(pool);
}

/* ---- jobs
 * ---------------------------------------------------------------------- */

void weft__ppjob_free(job *j) {
  weft_future_unref(j->future);
  weft__free(j);
}

void weft__ppjob_cancelled(void *arg) {
  job *j = arg;
  if (j->dropped) return; /* reject_queue() frees it */
  if (j->w == NULL) {     /* queued: drop it */
    weft__list_unlink(&j->src.node);
    j->pool->queued--;
    weft__ppjob_free(j);
    return;
  }
  /* running: stop the work; the worker's exit frees the job unsettled */
  weft_process_kill(&j->w->proc, SIGKILL);
}

static int job_new(weft_procpool *pool, const void *data, size_t len,
                   job **out) {
  job *j = weft__malloc(sizeof *j + 4 + len);
  if (j == NULL) return -ENOMEM;
  int err = weft__ppjob_new(pool->loop, j, &j->future);
  if (err != 0) {
    weft__free(j);
    return err;
  }
  weft__list_init(&j->src.node);
  j->src.is_map = false;
  j->pool = pool;
  j->w = NULL;
  j->dropped = false;
  j->frame_len = 4 + len;
  weft__put_be32(j->frame, (uint32_t)len);
  if (len) memcpy(j->frame + 4, data, len);
  *out = j;
  return 0;
}

/* A copy of the initializer's failure, for one more job (may be NULL). */
static weft_procpool_result *init_detail(const weft_procpool *pool) {
  const weft_procpool_result *m = pool->init_msg;
  if (m == NULL) return NULL;
  return weft__ppresult_new(m->status, m->data, m->len, NULL, 0, NULL, 0);
}

/* The pool cannot run what waits any more: settle it with `err`. */
static void reject_queue(weft_procpool *pool, int err) {
  weft__list *n;
  while ((n = weft__list_pop_front(&pool->queue)) != NULL) {
    weft__ppsrc *s = WEFT__CONTAINER_OF(n, weft__ppsrc, node);
    if (s->is_map) {
      weft__ppmap *m = weft__ppmap_of(s);
      pool->queued -= weft__ppmap_left(m);
      weft__ppmap_drop_rest(m, err);
      continue;
    }
    job *j = WEFT__CONTAINER_OF(s, job, src);
    pool->queued--;
    j->dropped = true;
    if (err == -ECANCELED)
      weft_future_cancel(j->future);
    else
      weft__ppjob_fail(j->future, err,
                       err == pool->init_err ? init_detail(pool) : NULL);
    weft__ppjob_free(j);
  }
}

/* ---- the map's hooks
 * ------------------------------------------------------------ */

int weft__procpool_enqueue_map(weft_procpool *pool, weft__ppmap *m, size_t n) {
  if (pool->closing) return WEFT_ECLOSED;
  if (pool->max_queue && pool->queued + n > pool->max_queue + pool->members)
    return -EAGAIN;
  if (pool->members == 0) return WEFT_EWORKER;
  weft__ppsrc *s = (weft__ppsrc *)m; /* the first member */
  s->is_map = true;
  weft__list_push_back(&pool->queue, &s->node);
  pool->queued += n;
  dispatch(pool);
  return 0;
}

void weft__procpool_unqueue_map(weft_procpool *pool, weft__ppmap *m) {
  weft__ppsrc *s = (weft__ppsrc *)m;
  weft__list_unlink(&s->node);
  pool->queued -= weft__ppmap_left(m);
}

void weft__procpool_kill_map(weft_procpool *pool, weft__ppmap *m) {
  WEFT__LIST_FOREACH(it, &pool->workers) {
    worker *w = WEFT__CONTAINER_OF(it, worker, node);
    if ((w->map == m || w->map2 == m) && !w->exited)
      weft_process_kill(&w->proc, SIGKILL);
  }
}

/* ---- workers: closing and replacing
 * ------------------------------------------ */

static void stdin_close(worker *w) {
  if (!weft_is_closing(&w->in.stream.base))
    weft_close(&w->in.stream.base, on_worker_closed);
}

static void finish_close(weft_procpool *pool) {
  if (pool->close_cb) pool->close_cb(pool, pool->close_arg);
  pool_free(pool);
}

static void worker_gone(weft_procpool *pool, bool replace) {
  pool->alive--;
  if (replace && !pool->closing) { /* a new worker takes its place */
    if (worker_spawn(pool) == 0) {
      dispatch(pool);
      return;
    }
  }
  /* no worker runs and none is coming: nothing can run the queue */
  if (pool->members == 0 && !pool->closing)
    reject_queue(pool, pool->init_err ? pool->init_err : WEFT_EWORKER);
  if (pool->alive == 0 && pool->closing) finish_close(pool);
}

static void on_worker_closed(weft_handle *h) {
  worker *w = h->data;
  if (--w->open != 0) return;
  weft_procpool *pool = w->pool;
  bool replace = w->replace;
  if (w->member) pool->members--;
  weft__list_unlink(&w->node);
  weft__free(w->rbuf);
  weft__free(w);
  worker_gone(pool, replace);
}

static void worker_close(worker *w) {
  weft_handle *hs[3] = {&w->proc.base, &w->in.stream.base, &w->out.stream.base};
  for (int i = 0; i < 3; i++)
    if (!weft_is_closing(hs[i])) weft_close(hs[i], on_worker_closed);
}

/* The message sent ahead to a worker that died before answering the one
 * in front of it: the worker runs messages in order, so it never started
 * it; its items go back to the map (in front), unless the pool is
 * stopping. */
static void give_back(worker *w) {
  weft_procpool *pool = w->pool;
  weft__ppmap *m = w->map2;
  w->map2 = NULL;
  int rc = pool->closing || weft__ppmap_cancelled(m)
               ? -ECANCELED
               : weft__ppmap_give_back(m, w->first2, w->count2);
  if (rc >= 0) {
    weft__ppsrc *s = (weft__ppsrc *)m;
    if (rc == 0) weft__list_push_front(&pool->queue, &s->node);
    pool->queued += w->count2;
    return;
  }
  int code = pool->closing ? -ECANCELED : WEFT_EWORKER;
  for (size_t i = 0; i < w->count2; i++)
    weft__ppmap_item(m, w->first2 + i, code, "", 0, NULL, 0, NULL, 0);
  weft__ppmap_msg_done(m);
}

/* The worker died with work in hand: settle it. Never re-run: it may have
 * run, and its reply may have been on its way. */
static void fail_work(worker *w) {
  weft_procpool *pool = w->pool;
  int code = pool->terminating ? -ECANCELED : w->fail ? w->fail : WEFT_EWORKER;
  if (w->job != NULL) {
    w->crashed = true;
    if (code == -ECANCELED)
      weft_future_cancel(w->job->future);
    else /* -EALREADY if the job was cancelled */
      weft__ppjob_fail(w->job->future, code, NULL);
    weft__ppjob_free(w->job);
    w->job = NULL;
  } else if (w->map != NULL) {
    w->crashed = true;
    for (size_t i = w->replied; i < w->count; i++)
      weft__ppmap_item(w->map, w->first + i, code, "", 0, NULL, 0, NULL, 0);
    weft__ppmap *m = w->map;
    w->map = NULL;
    weft__ppmap_msg_done(m);
  }
  if (w->map2 != NULL) give_back(w);
}

static void on_worker_exit(weft_process *p, int64_t status, int sig) {
  WEFT__UNUSED(status);
  WEFT__UNUSED(sig);
  worker *w = p->base.data;
  weft_procpool *pool = w->pool;
  w->exited = true; /* no more dispatching to it */
  weft__ppw_drain(w);
  fail_work(w);
  /* one that dies before doing any work is not replaced: a broken command
   * would respawn in a tight loop */
  w->replace = w->member && !pool->closing && !w->starting &&
               (w->crashed || w->done > 0 || w->inited);
  if (w->member && !w->replace) {
    w->member = false;
    pool->members--;
  }
  worker_close(w);
  dispatch(pool); /* items given back may go to another worker now */
}

void weft__ppw_kill(worker *w) {
  if (!w->exited) weft_process_kill(&w->proc, SIGKILL);
}

/* The worker's message is fully answered. */
void weft__ppw_done(worker *w, size_t jobs) {
  weft_procpool *pool = w->pool;
  w->done += jobs;
  if (pool->max_jobs && w->done >= pool->max_jobs) w->recycle = true;
  if (pool->closing || w->retiring || w->recycle) {
    if (!w->writing && !weft__ppw_busy(w)) stdin_close(w);
  } else {
    dispatch(pool);
  }
}

/* ---- dispatch
 * ------------------------------------------------------------------------ */

static void on_written(weft_write_req *req, int status) {
  worker *w = req->data;
  w->writing = false;
  if (status == -ECANCELED) return; /* closing */
  /* a failed write means the worker is gone or going: its exit handles it */
  if (status != 0) {
    weft__ppw_kill(w);
  } else if (!weft__ppw_busy(w) && !w->starting) {
    if (w->pool->closing || w->retiring || w->recycle)
      stdin_close(w);
    else
      dispatch(w->pool);
  } else if (weft__ppw_busy(w)) {
    dispatch(w->pool); /* it may take a message ahead */
  }
}

static bool idle(const worker *w) {
  return !w->exited && !weft__ppw_busy(w) && !w->writing && !w->starting &&
         !w->retiring && !w->recycle;
}

static int send_bufs(worker *w, const weft_buf *b, unsigned nb) {
  w->writing = true;
  int err = weft_stream_write(&w->wreq, &w->in.stream, b, nb, on_written);
  if (err != 0) w->writing = false;
  return err;
}

static int send_frame(worker *w, const char *frame, size_t len) {
  weft_buf b = weft_buf_init((char *)frame, len);
  return send_bufs(w, &b, 1);
}

/* A worker running a map's message may be sent the next one ahead, so that
 * it finds it in its pipe when done instead of waiting a round trip. */
static bool can_prefetch(const worker *w) {
  return !w->exited && w->map != NULL && w->map2 == NULL && !w->writing &&
         !w->starting && !w->retiring && !w->recycle;
}

/* Hands w the next message of the map `m` at the queue's head (at most
 * `max` items): into w->map, or with `ahead` into w->map2. */
static void send_map(weft_procpool *pool, worker *w, weft__ppmap *m, size_t max,
                     bool ahead) {
  weft_buf b[2];
  size_t *first = ahead ? &w->first2 : &w->first;
  size_t *count = ahead ? &w->count2 : &w->count;
  unsigned nb = weft__ppmap_take(m, max, w->hdr, b, first, count);
  pool->queued -= *count;
  if (weft__ppmap_left(m) == 0) weft__list_unlink(&((weft__ppsrc *)m)->node);
  if (ahead) {
    w->map2 = m;
  } else {
    w->map = m;
    w->replied = 0;
  }
  if (send_bufs(w, b, nb) != 0) weft__ppw_kill(w);
}

/* Sends the map `m` at the queue's head ahead to w, unless that would
 * exceed max_jobs_per_worker. */
static void send_ahead(weft_procpool *pool, worker *w, weft__ppmap *m) {
  size_t max = SIZE_MAX;
  if (pool->max_jobs) {
    size_t used = w->done + w->count;
    if (used >= pool->max_jobs) return;
    max = pool->max_jobs - used;
  }
  send_map(pool, w, m, max, true);
}

/* Hands the queue's next message to the idle w. */
static void send_next(weft_procpool *pool, worker *w) {
  weft__ppsrc *s =
      WEFT__CONTAINER_OF(weft__list_front(&pool->queue), weft__ppsrc, node);
  if (!s->is_map) {
    job *j = WEFT__CONTAINER_OF(s, job, src);
    weft__list_unlink(&s->node);
    pool->queued--;
    j->w = w;
    w->job = j;
    if (send_frame(w, j->frame, j->frame_len) != 0) weft__ppw_kill(w);
    return;
  }
  size_t max = pool->max_jobs ? pool->max_jobs - w->done : SIZE_MAX;
  send_map(pool, w, weft__ppmap_of(s), max, false);
}

static void dispatch(weft_procpool *pool) {
  if (pool->closing) return;
  WEFT__LIST_FOREACH(it, &pool->workers) {
    if (weft__list_empty(&pool->queue)) return;
    worker *w = WEFT__CONTAINER_OF(it, worker, node);
    if (idle(w)) send_next(pool, w);
  }
  /* every idle worker has work: send maps' messages ahead */
  WEFT__LIST_FOREACH(it, &pool->workers) {
    if (weft__list_empty(&pool->queue)) return;
    worker *w = WEFT__CONTAINER_OF(it, worker, node);
    weft__ppsrc *s =
        WEFT__CONTAINER_OF(weft__list_front(&pool->queue), weft__ppsrc, node);
    if (s->is_map && can_prefetch(w)) send_ahead(pool, w, weft__ppmap_of(s));
  }
}

/* ---- spawning
 * ---------------------------------------------------------------------- */

/* The environment of a new worker: the pool's (or ours) and WEFT__PP_ENV.
 * Pointers only (the spawn copies them). */
static char **worker_env(const weft_procpool *pool) {
  static char *const modes[] = {WEFT__PP_ENV "=inherit",
                                WEFT__PP_ENV "=discard",
                                WEFT__PP_ENV "=capture"};
  char *const *base = pool->env ? pool->env : environ;
  size_t n = 0, k = 0, pre = strlen(WEFT__PP_ENV "=");
  while (base && base[n])
    n++;
  char **e = weft__malloc((n + 2) * sizeof *e);
  if (e == NULL) return NULL;
  for (size_t i = 0; i < n; i++)
    if (strncmp(base[i], WEFT__PP_ENV "=", pre) != 0) e[k++] = base[i];
  e[k++] = modes[pool->output];
  e[k] = NULL;
  return e;
}

static void worker_stdio(const weft_procpool *pool, worker *w,
                         weft_stdio st[4]) {
  st[0] = (weft_stdio){WEFT_STDIO_PIPE, -1, &w->in};
  st[1] = (weft_stdio){WEFT_STDIO_PIPE, -1, &w->out};
  st[2] = (weft_stdio){WEFT_STDIO_INHERIT, -1, NULL};
  st[3] = (weft_stdio){WEFT_STDIO_IGNORE, -1, NULL};
  if (pool->output == WEFT_PROCPOOL_OUTPUT_DISCARD)
    st[2].kind = WEFT_STDIO_IGNORE;
  if (pool->output == WEFT_PROCPOOL_OUTPUT_INHERIT && fcntl(1, F_GETFD) >= 0)
    st[3] = (weft_stdio){WEFT_STDIO_FD, 1, NULL}; /* where stdout goes */
}

static int worker_start(weft_procpool *pool, worker *w) {
  weft_stdio st[4];
  worker_stdio(pool, w, st);
  char **env = worker_env(pool);
  if (env == NULL) return -ENOMEM;
  weft_process_options o = {.argv = pool->argv,
                            .env = env,
                            .cwd = pool->cwd,
                            .stdio = st,
                            .stdio_count = 4,
                            .exit_cb = on_worker_exit};
  int err = weft_spawn(pool->loop, &w->proc, &o);
  weft__free(env);
  if (err == 0)
    err = weft_stream_read_start(&w->out.stream, NULL, weft__ppw_on_read);
  if (err == 0 && pool->init_frame != NULL) {
    w->starting = true;
    err = send_frame(w, pool->init_frame, pool->init_len);
  }
  return err;
}

static int worker_spawn(weft_procpool *pool) {
  worker *w = weft__calloc(1, sizeof *w);
  if (w == NULL) return -ENOMEM;
  w->pool = pool;
  w->wreq.data = w;
  weft_pipe_init(pool->loop, &w->in);
  weft_pipe_init(pool->loop, &w->out);
  w->proc.base.data = w->in.stream.base.data = w->out.stream.base.data = w;
  int err = worker_start(pool, w);
  weft__list_push_back(&pool->workers, &w->node);
  pool->alive++;
  w->open = 2;
  if (err != 0) {
    /* the pipes (and the child, if any) close; nothing is replaced */
    w->exited = true;
    if (w->proc.base.ops != NULL) {
      w->open = 3;
      weft_process_kill(&w->proc, SIGKILL);
    }
    worker_close(w);
    return err;
  }
  w->open = 3;
  w->member = true;
  pool->members++;
  return 0;
}

static int pool_copy(weft_procpool *pool, const weft_procpool_options *o) {
  int err = strv_dup(o->argv, &pool->argv);
  if (err == 0) err = strv_dup(o->env, &pool->env);
  if (err == 0 && o->cwd && (pool->cwd = weft__strdup(o->cwd)) == NULL)
    err = -ENOMEM;
  if (err == 0 && o->init != NULL) {
    pool->init_len = 5 + o->init_len;
    if ((pool->init_frame = weft__malloc(pool->init_len)) == NULL) {
      err = -ENOMEM;
    } else {
      weft__put_be32(pool->init_frame,
                     (uint32_t)(1 + o->init_len) | WEFT__PP_CTRL);
      pool->init_frame[4] = 'I';
      if (o->init_len) memcpy(pool->init_frame + 5, o->init, o->init_len);
    }
  }
  return err;
}

static bool options_ok(const weft_procpool_options *o) {
  return o->argv != NULL && o->argv[0] != NULL && o->workers <= MAX_WORKERS &&
         !(o->init_len && o->init == NULL) &&
         o->init_len < WEFT__PP_MAX_FRAME &&
         (unsigned)o->output <= WEFT_PROCPOOL_OUTPUT_CAPTURE;
}

int weft_procpool_new(weft_loop *loop, const weft_procpool_options *o,
                      weft_procpool **out) {
  if (loop == NULL || o == NULL || out == NULL || !options_ok(o))
    return -EINVAL;
  weft_procpool *pool = weft__calloc(1, sizeof *pool);
  if (pool == NULL) return -ENOMEM;
  pool->loop = loop;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  pool->target = o->workers ? o->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
  if (pool->target > MAX_WORKERS) pool->target = MAX_WORKERS;
  pool->max_queue = o->max_queue;
  pool->max_jobs = o->max_jobs_per_worker;
  pool->output = o->output;
  weft__list_init(&pool->queue);
  weft__list_init(&pool->workers);
  int err = pool_copy(pool, o);
  for (unsigned i = 0; err == 0 && i < pool->target; i++)
    err = worker_spawn(pool);
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
  if (pool == NULL || out == NULL || (len && data == NULL) ||
      len > WEFT__PP_MAX_FRAME)
    return -EINVAL;
  if (pool->closing) return WEFT_ECLOSED;
  if (pool->max_queue && pool->queued >= pool->max_queue) return -EAGAIN;
  if (pool->members == 0) return WEFT_EWORKER;
  job *j;
  int err = job_new(pool, data, len, &j);
  if (err != 0) return err;
  weft__list_push_back(&pool->queue, &j->src.node);
  pool->queued++;
  *out = weft_future_ref(j->future);
  dispatch(pool);
  return 0;
}

int weft_procpool_map(weft_procpool *pool, const weft_buf *inputs, size_t n,
                      weft_future **futs, weft_future **all) {
  if (pool == NULL || (n > 0 && (inputs == NULL || futs == NULL)))
    return -EINVAL;
  if (pool->max_queue && pool->queued + n > pool->max_queue + pool->members)
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
static void close_empty(void *arg) { finish_close(arg); }

static int begin_close(weft_procpool *pool, weft_procpool_close_cb cb,
                       void *arg) {
  if (pool->alive == 0) {
    int err = weft_call_soon(pool->loop, close_empty, pool);
    if (err != 0) return err;
  }
  pool->closing = true;
  pool->close_cb = cb;
  pool->close_arg = arg;
  reject_queue(pool, -ECANCELED);
  return 0;
}

int weft_procpool_close(weft_procpool *pool, weft_procpool_close_cb cb,
                        void *arg) {
  if (pool == NULL) return -EINVAL;
  if (pool->closing) return -EALREADY;
  int err = begin_close(pool, cb, arg);
  if (err != 0) return err;
  WEFT__LIST_FOREACH(it, &pool->workers) {
    worker *w = WEFT__CONTAINER_OF(it, worker, node);
    if (!weft__ppw_busy(w) && !w->writing) stdin_close(w);
  }
  return 0;
}

int weft_procpool_terminate(weft_procpool *pool, weft_procpool_close_cb cb,
                            void *arg) {
  if (pool == NULL) return -EINVAL;
  if (pool->terminating) return -EALREADY;
  if (!pool->closing) {
    int err = begin_close(pool, cb, arg);
    if (err != 0) return err;
  } else if (cb != NULL) {
    pool->close_cb = cb;
    pool->close_arg = arg;
  }
  pool->terminating = true;
  WEFT__LIST_FOREACH(it, &pool->workers) {
    worker *w = WEFT__CONTAINER_OF(it, worker, node);
    weft__ppw_kill(w);
  }
  return 0;
}

/* Takes one worker out of the pool's size: one awaiting its replacement
 * first, then an idle one, then one still starting, then a busy one. */
static void retire_one(weft_procpool *pool) {
  worker *pick = NULL;
  int best = 5;
  WEFT__LIST_FOREACH(it, &pool->workers) {
    worker *w = WEFT__CONTAINER_OF(it, worker, node);
    if (!w->member) continue;
    int rank = w->exited ? 0 : idle(w) ? 1 : w->starting ? 2 : 3;
    if (rank < best) {
      best = rank;
      pick = w;
    }
  }
  pick->member = false;
  pool->members--;
  if (pick->exited) {
    pick->replace = false;
    return;
  }
  pick->retiring = true;
  if (!weft__ppw_busy(pick) && !pick->writing) stdin_close(pick);
}

int weft_procpool_resize(weft_procpool *pool, unsigned n) {
  if (pool == NULL || n == 0 || n > MAX_WORKERS) return -EINVAL;
  if (pool->closing) return WEFT_ECLOSED;
  pool->target = n;
  while (pool->members > n)
    retire_one(pool);
  while (pool->members < n) {
    int err = worker_spawn(pool);
    if (err != 0) return err;
  }
  dispatch(pool);
  return 0;
}

unsigned weft_procpool_workers(const weft_procpool *pool) {
  return pool ? pool->members : 0;
}

int weft_procpool_pids(const weft_procpool *pool, pid_t *pids, unsigned cap) {
  if (pool == NULL || (pids == NULL && cap > 0)) return -EINVAL;
  unsigned n = 0;
  WEFT__LIST_FOREACH(it, &pool->workers) {
    const worker *w = WEFT__CONTAINER_OF(it, worker, node);
    if (w->exited || w->proc.base.ops == NULL) continue;
    if (n < cap) pids[n] = w->proc.pid;
    n++;
  }
  return (int)n;
}
