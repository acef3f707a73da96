/* weft — stat-polling watches (libuv's uv_fs_poll): a timer, and one
 * weft_fs_stat() at a time on the pool, comparing each stat with the last.
 *
 * A start's state lives in a `run` of its own, not in the handle: a stat
 * still running when the handle stops (or closes, and is freed) completes
 * into its run, which is freed then. The handle only points at its current
 * run, and holds the pending futures (weft_fs_poll_future()). */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "weft/fs.h"
#include "weft/future.h"
#include "weft/watch.h"

struct weft__fs_poll_run {
  weft_fs_poll *owner; /* NULL once stopped (the run frees itself) */
  weft_loop *loop;
  char *path;
  uint64_t interval;
  ev_timer timer;
  weft_fs_req req;
  bool busy;  /* a stat is in flight */
  bool in_cb; /* the user's callback is running */
  bool based; /* the first stat is in */
  int last_err;
  struct stat prev; /* the last good stat, or zeros */
};

typedef struct weft__fs_poll_run run_t;

static void run_free(run_t *r) {
  weft__free(r->path);
  weft__free(r);
}

static bool same(const struct stat *a, const struct stat *b) {
  return a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
         a->st_ctim.tv_nsec == b->st_ctim.tv_nsec && a->st_size == b->st_size &&
         a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
         a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
         a->st_nlink == b->st_nlink && a->st_dev == b->st_dev;
}

/* ---- futures ------------------------------------------------------------ */

typedef struct poll_req {
  weft_future *f;
  weft__list node; /* weft_fs_poll.futures */
  weft_loop *loop;
} poll_req;

static void req_free(poll_req *q) {
  weft__list_unlink(&q->node);
  weft__req_done(q->loop);
  weft_future_unref(q->f);
  weft__free(q);
}

static void req_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  req_free(arg);
}

static void reject_all(weft__list *reqs, int err) {
  weft__list *it;
  while ((it = weft__list_front(reqs)) != NULL) {
    poll_req *q = WEFT__CONTAINER_OF(it, poll_req, node);
    weft_future_reject(q->f, err);
    req_free(q);
  }
}

/* Settles what was pending before a callback with that callback's news. */
static void settle_all(weft__list *reqs, int err, const struct stat *prev,
                       const struct stat *curr) {
  weft__list *it;
  while ((it = weft__list_front(reqs)) != NULL) {
    poll_req *q = WEFT__CONTAINER_OF(it, poll_req, node);
    weft_fs_poll_change *c = err ? NULL : weft__malloc(sizeof *c);
    if (err != 0) {
      weft_future_reject(q->f, err);
    } else if (c == NULL) {
      weft_future_reject(q->f, -ENOMEM);
    } else {
      c->prev = *prev;
      c->curr = *curr;
      weft_future_resolve(q->f, c, weft__free);
    }
    req_free(q);
  }
}

/* One callback, then the futures that were pending before it (not the
 * ones it makes, nor a stop in it rejecting those). */
static void report(run_t *r, weft_fs_poll *p, int err, const struct stat *prev,
                   const struct stat *curr) {
  weft__list reqs;
  weft__list_init(&reqs);
  weft__list_splice_back(&reqs, &p->futures);
  r->in_cb = true;
  p->cb(p, err, prev, curr, p->arg);
  r->in_cb = false;
  settle_all(&reqs, err, prev, curr);
}

static void on_stat(weft_fs_req *req);

static int stat_start(run_t *r) {
  r->req.data = r;
  int err = weft_fs_stat(r->loop, &r->req, r->path, on_stat);
  r->busy = err == 0;
  return err;
}

static void on_timer(struct ev_loop *ev, ev_timer *t, int revents) {
  WEFT__UNUSED(revents);
  weft__ev_fired(ev);
  run_t *r = t->data;
  int err = stat_start(r);
  if (err == 0) return;
  /* could not even submit (-ENOMEM, ...): say so once, try again later */
  weft_fs_poll *p = r->owner;
  if (err != r->last_err) {
    struct stat zero = {0};
    r->last_err = err;
    report(r, p, err, &r->prev, &zero);
  }
  if (r->owner == NULL)
    run_free(r);
  else
    WEFT__EV_START(timer, r->loop, &r->timer);
}

/* What this stat means, as the callback's arguments; false: nothing. */
static bool judge(run_t *r, int err, const struct stat *st, bool first,
                  struct stat *prev) {
  struct stat zero = {0};
  if (err != 0) {
    bool report = err != r->last_err;
    *prev = r->prev;
    r->last_err = err;
    return report;
  }
  bool report = !first && (r->last_err != 0 || !same(&r->prev, st));
  *prev = r->last_err != 0 ? zero : r->prev;
  r->last_err = 0;
  r->prev = *st;
  return report;
}

static void on_stat(weft_fs_req *req) {
  run_t *r = req->data;
  r->busy = false;
  weft_fs_poll *p = r->owner;
  if (p == NULL) { /* stopped meanwhile */
    run_free(r);
    return;
  }
  int err = req->result < 0 ? (int)req->result : 0;
  bool first = !r->based;
  r->based = true;
  struct stat prev, zero = {0};
  if (judge(r, err, &req->statbuf, first && err == 0, &prev))
    report(r, p, err, &prev, err ? &zero : &req->statbuf);
  if (r->owner == NULL) {
    run_free(r);
    return;
  }
  ev_timer_set(&r->timer, weft__ms_to_ev(r->interval), 0.);
  WEFT__EV_START(timer, r->loop, &r->timer);
}

static void poll_stop(weft_fs_poll *p, bool reject) {
  if (reject) reject_all(&p->futures, -ECANCELED);
  run_t *r = p->run;
  if (r == NULL) return;
  p->run = NULL;
  r->owner = NULL;
  WEFT__EV_STOP(timer, r->loop, &r->timer);
  if (r->busy)
    weft_fs_cancel(&r->req); /* on_stat frees it */
  else if (!r->in_cb)
    run_free(r);
  weft__handle_stop(&p->base);
}

static void fs_poll_close(weft_handle *h) {
  poll_stop((weft_fs_poll *)(void *)h, false);
}

/* The close phase: pending futures are rejected before the close callback
 * (as a watch's). */
static void fs_poll_finish(weft_handle *h) {
  reject_all(&((weft_fs_poll *)(void *)h)->futures, -ECANCELED);
}

static const weft__handle_ops fs_poll_ops = {WEFT_HANDLE_FS_POLL, fs_poll_close,
                                             fs_poll_finish, NULL};

static bool is_fs_poll(const weft_fs_poll *p) {
  return p != NULL && p->base.ops == &fs_poll_ops;
}

int weft_fs_poll_init(weft_loop *loop, weft_fs_poll *p) {
  if (loop == NULL || p == NULL) return -EINVAL;
  weft__handle_init(loop, &p->base, &fs_poll_ops);
  p->cb = NULL;
  p->arg = NULL;
  p->run = NULL;
  weft__list_init(&p->futures);
  return 0;
}

int weft_fs_poll_start(weft_fs_poll *p, const char *path, uint64_t interval_ms,
                       weft_fs_poll_cb cb, void *arg) {
  if (!is_fs_poll(p) || path == NULL || *path == '\0' || cb == NULL ||
      !weft__handle_usable(&p->base))
    return -EINVAL;
  if (p->run != NULL) return -EBUSY;
  run_t *r = weft__calloc(1, sizeof *r);
  if (r == NULL) return -ENOMEM;
  if ((r->path = weft__strdup(path)) == NULL) {
    weft__free(r);
    return -ENOMEM;
  }
  r->owner = p;
  r->loop = p->base.loop;
  r->interval = interval_ms ? interval_ms : 1;
  ev_timer_init(&r->timer, on_timer, 0., 0.);
  r->timer.data = r;
  int err = stat_start(r);
  if (err != 0) {
    run_free(r);
    return err;
  }
  p->cb = cb;
  p->arg = arg;
  p->run = r;
  weft__handle_start(&p->base);
  return 0;
}

int weft_fs_poll_stop(weft_fs_poll *p) {
  if (!is_fs_poll(p)) return -EINVAL;
  poll_stop(p, true);
  return 0;
}

const char *weft_fs_poll_get_path(const weft_fs_poll *p) {
  return is_fs_poll(p) && p->run != NULL ? p->run->path : NULL;
}

int weft_fs_poll_future(weft_fs_poll *p, weft_future **out) {
  if (!is_fs_poll(p) || out == NULL || p->run == NULL ||
      !weft__handle_usable(&p->base))
    return -EINVAL;
  poll_req *q = weft__malloc(sizeof *q);
  if (q == NULL) return -ENOMEM;
  int err = weft_future_new_op(p->base.loop, "weft_fs_poll_future", &q->f);
  if (err != 0) {
    weft__free(q);
    return err;
  }
  q->loop = p->base.loop;
  weft__list_init(&q->node);
  weft__list_insert(&p->futures, &q->node);
  weft__req_start(q->loop);
  weft_future_on_cancel(q->f, req_cancel, q);
  *out = weft_future_ref(q->f);
  return 0;
}
