/* weft — a dedicated named thread whose result settles a future
 * (weft_thread_spawn), Python's Thread plus a future of its result.
 *
 * The loop thread allocates the handle, draws the future, starts the
 * thread and counts it as a request that keeps the loop alive (so
 * weft_loop_free returns -EBUSY while it runs). The thread runs fn, keeps
 * the result in the handle and posts `finish` to the loop; a post that
 * fails (-ENOMEM, or -ESHUTDOWN while a weft_loop_free that will return
 * -EBUSY runs) is retried, since the loop waits for it. On the loop thread
 * `finish` joins the thread (it is past fn, on its way out), settles the
 * future (unless it was cancelled: the value is then dropped) and lets go.
 *
 * Who owns what: the handle belongs to the loop thread except its result
 * fields, written by the thread before its post (which orders them), and
 * the atomic cancel flag. The future's reference held here is the
 * handle's, dropped in finish. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct weft_thread {
  weft_loop *loop;
  weft_future *f; /* the handle's reference */
  pthread_t tid;
  weft_thread_fn fn;
  void *arg;
  atomic_bool cancelled;
  char name[16];
  /* the result: written by the thread */
  int rc;
  bool is_ptr;
  void *p;
  int64_t i;
  weft_dtor dtor;
};

static void drop_value(weft_thread *t) {
  if (t->is_ptr && t->dtor != NULL) t->dtor(t->p);
  t->is_ptr = false;
}

static void finish(void *arg) {
  weft_thread *t = arg;
  pthread_join(t->tid, NULL);
  weft_future *f = t->f;
  int err = -EALREADY;
  if (weft_future_get_state(f) == WEFT_FUTURE_PENDING) {
    if (t->rc < 0)
      err = weft_future_reject(f, t->rc);
    else if (t->is_ptr)
      err = weft_future_resolve(f, t->p, t->dtor);
    else
      err = weft_future_resolve_i64(f, t->i);
  }
  if (err != 0) drop_value(t); /* cancelled: nobody takes it */
  weft_future_unref(f);
  weft__req_done(t->loop);
  weft__free(t);
}

static void *thread_main(void *arg) {
  weft_thread *t = arg;
  pthread_setname_np(pthread_self(), t->name);
  int rc = t->fn(t, t->arg);
  t->rc = rc > 0 ? 0 : rc;
  while (weft_call_soon_threadsafe(t->loop, finish, t) != 0) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  return NULL;
}

static void on_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft_thread *t = arg;
  atomic_store(&t->cancelled, true);
}

int weft_thread_spawn(weft_loop *loop, const char *name, weft_thread_fn fn,
                      void *arg, weft_future **out) {
  if (loop == NULL || fn == NULL || out == NULL) return -EINVAL;
  weft_thread *t = weft__calloc(1, sizeof *t);
  if (t == NULL) return -ENOMEM;
  weft_future *f;
  int err = weft_future_new_op(loop, "weft_thread_spawn", &f);
  if (err != 0) {
    weft__free(t);
    return err;
  }
  t->loop = loop;
  t->f = f;
  t->fn = fn;
  t->arg = arg;
  atomic_init(&t->cancelled, false);
  snprintf(t->name, sizeof t->name, "%s", name != NULL ? name : "weft-thread");
  weft_future_on_cancel(f, on_cancel, t);
  int perr = pthread_create(&t->tid, NULL, thread_main, t);
  if (perr != 0) {
    weft_future_unref(f);
    weft__free(t);
    return perr == EAGAIN ? -EAGAIN : -perr;
  }
  weft__req_start(loop);
  *out = weft_future_ref(f);
  return 0;
}

void weft_thread_return(weft_thread *t, void *value, weft_dtor dtor) {
  if (t == NULL) return;
  drop_value(t);
  t->is_ptr = true;
  t->p = value;
  t->dtor = dtor;
}

void weft_thread_return_i64(weft_thread *t, int64_t v) {
  if (t == NULL) return;
  drop_value(t);
  t->i = v;
}

bool weft_thread_cancelled(const weft_thread *t) {
  return t != NULL && atomic_load(&((weft_thread *)t)->cancelled);
}
