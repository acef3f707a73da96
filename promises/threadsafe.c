/* weft — settling a future from another thread.
 *
 * The settle travels to the loop as a small message through
 * weft_call_soon_threadsafe(); the future itself is only touched on the
 * loop thread. The message carries the reference the caller handed over,
 * so the future cannot be freed while the message is in flight. */
#include "internal.h"

typedef struct ts_msg {
  weft_future *f;
  union {
    void *p;
    int64_t i;
  } v;
  weft_dtor dtor;
  int what; /* 0 pointer, 1 int64, 2 rejection */
} ts_msg;

static void ts_apply(void *arg) {
  ts_msg *m = arg;
  int err;
  if (m->what == 0) err = weft_future_resolve(m->f, m->v.p, m->dtor);
  else if (m->what == 1) err = weft_future_resolve_i64(m->f, m->v.i);
  else err = weft_future_reject(m->f, (int)m->v.i);
  if (err != 0 && m->what == 0 && m->dtor != NULL) m->dtor(m->v.p);
  weft_future_unref(m->f);
  weft__free(m);
}

static int ts_post(weft_future *f, int what, void *p, int64_t i,
                   weft_dtor dtor) {
  if (f == NULL) return -EINVAL;
  ts_msg *m = weft__malloc(sizeof *m);
  if (m == NULL) return -ENOMEM;
  m->f = f;
  if (what == 0) m->v.p = p;
  else m->v.i = i;
  m->dtor = dtor;
  m->what = what;
  /* f->loop is written once at creation, before f was handed over */
  int err = weft_call_soon_threadsafe(f->loop, ts_apply, m);
  if (err != 0) weft__free(m);
  return err;
}

int weft_future_resolve_threadsafe(weft_future *f, void *value, weft_dtor dtor) {
  return ts_post(f, 0, value, 0, dtor);
}

int weft_future_resolve_i64_threadsafe(weft_future *f, int64_t v) {
  return ts_post(f, 1, NULL, v, NULL);
}

int weft_future_reject_threadsafe(weft_future *f, int err) {
  if (err >= 0) return -EINVAL;
  return ts_post(f, 2, NULL, err, NULL);
}
