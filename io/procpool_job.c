/* weft — the process pool's job futures: a future kind (docs/internals.md,
 * "Future kinds, inside") that is a plain producer-settled future whose
 * rejection can carry what the worker said: its message and captured
 * output, read with weft_procpool_job_error().
 *
 * The kind keeps one pointer in u.call.arg, tagged by u.call.fn: while
 * pending the job (JOB_TAG: cancelling tells the pool), once rejected by
 * the pool the detail (DETAIL_TAG: freed with the future). Fulfilling
 * writes u.dtor, which is u.call.fn, so a fulfilled future never looks
 * like one holding a detail; a future settled by hand keeps JOB_TAG and
 * holds nothing. */
#include <string.h>

#include "procpool_internal.h"
#include "promises/internal.h"

/* Never called; their addresses are the tags. Different bodies, so that no
 * identical-code folding can give them one address. */
static int tag_calls[2];
static void job_tag(void) { tag_calls[0]++; }
static void detail_tag(void) { tag_calls[1]++; }

weft_procpool_result *weft__ppresult_new(int status, const char *d, size_t dl,
                                         const char *o, size_t ol,
                                         const char *e, size_t el) {
  weft_procpool_result *r = weft__malloc(sizeof *r + dl + ol + el + 3);
  if (r == NULL) return NULL;
  char *p = (char *)(r + 1);
  *r = (weft_procpool_result){.data = p, .len = dl, .status = status};
  if (dl) memcpy(p, d, dl);
  p[dl] = '\0';
  p += dl + 1;
  if (o != NULL) {
    r->out = p;
    r->out_len = ol;
    if (ol) memcpy(p, o, ol);
    p[ol] = '\0';
    p += ol + 1;
  }
  if (e != NULL) {
    r->err = p;
    r->err_len = el;
    if (el) memcpy(p, e, el);
    p[el] = '\0';
  }
  return r;
}

static weft_future *ppjob_cancel(weft_future *f) {
  if (f->u.call.fn == job_tag && f->u.call.arg != NULL) {
    void *job = f->u.call.arg;
    f->u.call.arg = NULL;
    weft__ppjob_cancelled(job);
  }
  return NULL;
}

static void ppjob_release(weft_future *f, weft_future **todo) {
  WEFT__UNUSED(todo);
  if (f->state == WEFT_FUTURE_REJECTED && f->u.call.fn == detail_tag)
    weft__free(f->u.call.arg);
}

static const weft__kind ppjob_kind = {.name = "procpool_job",
                                      .cancel = ppjob_cancel,
                                      .release = ppjob_release,
                                      .by_hand = WEFT__BY_PRODUCER};
WEFT__KIND(WEFT__K_PROCJOB, ppjob_kind)

int weft__ppjob_new(weft_loop *loop, void *job, weft_future **out) {
  weft_future *f;
  int err = weft__future_alloc(loop, WEFT__K_PROCJOB, &f);
  if (err != 0) return err;
  f->op = weft__op_intern("weft_procpool_submit");
  f->u.call.fn = job_tag;
  f->u.call.arg = job;
  *out = f;
  return 0;
}

static void result_dtor(void *v) { weft__free(v); }

void weft__ppjob_fulfil(weft_future *f, weft_procpool_result *r) {
  if (f->state == WEFT_FUTURE_PENDING) f->u.call.arg = NULL;
  if (r == NULL) {
    weft_future_reject(f, -ENOMEM);
    return;
  }
  if (weft_future_resolve(f, r, result_dtor) != 0) weft__free(r);
}

void weft__ppjob_fail(weft_future *f, int code, weft_procpool_result *detail) {
  if (f->state != WEFT_FUTURE_PENDING) { /* cancelled, or settled by hand */
    weft__free(detail);
    return;
  }
  f->u.call.fn = detail ? detail_tag : NULL;
  f->u.call.arg = detail;
  weft_future_reject(f, code);
}

int weft_procpool_job_error(const weft_future *f,
                            const weft_procpool_result **detail) {
  if (detail != NULL) *detail = NULL;
  if (f == NULL) return -EINVAL;
  int err = weft_future_error(f);
  if (detail != NULL && f->kind == WEFT__K_PROCJOB &&
      f->state == WEFT_FUTURE_REJECTED && f->u.call.fn == detail_tag)
    *detail = f->u.call.arg;
  return err;
}
