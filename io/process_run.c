/* weft — weft_process_run(): Python's subprocess.run in one call.
 *
 * One request owns the child's handle and its three pipes. It finishes
 * when the child has exited and both outputs reached end of file (or, on
 * an error or cancel, when the killed child has been reaped); it then
 * closes its handles and settles the future from the last close callback,
 * so that nothing of it is left on the loop when the future settles. */
#include <signal.h>
#include <string.h>

#include "internal.h"
#include "weft/process.h"

typedef struct outbuf {
  char *buf;
  size_t len, cap;
} outbuf;

typedef struct runreq {
  weft_future *future; /* the producer's reference */
  weft_process proc;
  weft_pipe in, out, err;
  weft_write_req wreq;
  weft_run_result *res; /* allocated up front: finishing cannot fail */
  char *input;
  size_t input_len, limit;
  outbuf o[2];
  unsigned open; /* handles whose close callback is still to come */
  unsigned eofs; /* outputs that stopped */
  int error;     /* first failure: WEFT_ELIMIT, a read error */
  bool exited, cancelled, closing;
} runreq;

static void run_free(runreq *r) {
  weft__free(r->o[0].buf);
  weft__free(r->o[1].buf);
  weft__free(r->res);
  weft__free(r->input);
  weft__free(r);
}

static void result_dtor(void *value) {
  weft_run_result *res = value;
  char *empty = (char *)(res + 1);
  if (res->out != empty) weft__free(res->out);
  if (res->err != empty) weft__free(res->err);
  weft__free(res);
}

/* Moves the outputs into the result (NUL-terminated: buffers keep a spare
 * byte). */
static weft_run_result *take_result(runreq *r) {
  weft_run_result *res = r->res;
  char *empty = (char *)(res + 1);
  *empty = '\0';
  res->status = r->proc.exit_value;
  res->out = r->o[0].buf ? r->o[0].buf : empty;
  res->out_len = r->o[0].len;
  res->err = r->o[1].buf ? r->o[1].buf : empty;
  res->err_len = r->o[1].len;
  res->out[res->out_len] = res->err[res->err_len] = '\0';
  r->res = NULL;
  r->o[0].buf = r->o[1].buf = NULL;
  return res;
}

static void settle(runreq *r) {
  weft_future *f = r->future;
  if (r->cancelled) {
    /* cancel settled it already */
  } else if (r->error != 0) {
    weft_future_reject(f, r->error);
  } else if (!r->exited || r->eofs < 2) {
    weft_future_reject(f, -ECANCELED); /* its handles were closed under it */
  } else {
    weft_future_resolve(f, take_result(r), result_dtor);
  }
  weft_future_unref(f);
  run_free(r);
}

static void on_closed(weft_handle *h) {
  runreq *r = h->data;
  if (--r->open == 0) settle(r);
}

static void close_one(weft_handle *h) {
  if (h->ops != NULL && !weft_is_closing(h)) weft_close(h, on_closed);
}

static void close_all(runreq *r) {
  if (r->closing) return;
  r->closing = true;
  close_one(&r->proc.base);
  close_one(&r->out.stream.base);
  close_one(&r->err.stream.base);
  if (r->in.stream.base.data == r) close_one(&r->in.stream.base);
}

/* Done once the child is reaped and the outputs stopped (or failed). */
static void maybe_done(runreq *r) {
  if (r->exited && (r->eofs == 2 || r->error != 0 || r->cancelled))
    close_all(r);
}

static void fail(runreq *r, int err) {
  if (r->error == 0) r->error = err;
  if (!r->exited) weft_process_kill(&r->proc, SIGKILL);
  weft_stream_read_stop(&r->out.stream);
  weft_stream_read_stop(&r->err.stream);
  maybe_done(r);
}

static int append(outbuf *b, const char *data, size_t n, size_t limit) {
  if (b->len + n > limit) return WEFT_ELIMIT;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *nb = weft__realloc(b->buf, cap);
    if (nb == NULL) return -ENOMEM;
    b->buf = nb;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, data, n);
  b->len += n;
  return 0;
}

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  runreq *r = s->base.data;
  outbuf *b = &r->o[s == &r->out.stream ? 0 : 1];
  if (nread > 0) {
    int err = append(b, buf->base, (size_t)nread, r->limit);
    if (err != 0) fail(r, err);
    return;
  }
  if (nread == 0) return;
  r->eofs++;
  if (nread != WEFT_EOF)
    fail(r, (int)nread);
  else
    maybe_done(r);
}

static void on_exit_cb(weft_process *p, int64_t status, int sig) {
  WEFT__UNUSED(status);
  WEFT__UNUSED(sig);
  runreq *r = p->base.data;
  r->exited = true;
  maybe_done(r);
}

/* The input is written (or the child stopped reading: EPIPE is fine, as
 * in subprocess.run); closing our end gives the child end of file. */
static void on_written(weft_write_req *req, int status) {
  WEFT__UNUSED(status);
  runreq *r = req->data;
  close_one(&r->in.stream.base);
}

static void on_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  runreq *r = arg;
  r->cancelled = true;
  fail(r, -ECANCELED);
}

static int run_alloc(const weft_run_options *o, runreq **out) {
  runreq *r = weft__calloc(1, sizeof *r);
  if (r == NULL) return -ENOMEM;
  r->limit = o->limit ? o->limit : WEFT_RUN_DEFAULT_LIMIT;
  r->res = weft__calloc(1, sizeof *r->res + 1);
  if (r->res == NULL) goto nomem;
  if (o->input_len > 0) {
    r->input = weft__malloc(o->input_len);
    if (r->input == NULL) goto nomem;
    memcpy(r->input, o->input, o->input_len);
    r->input_len = o->input_len;
  }
  *out = r;
  return 0;
nomem:
  run_free(r);
  return -ENOMEM;
}

static int run_spawn(weft_loop *loop, runreq *r, const weft_run_options *o) {
  weft_process_options po = o->proc;
  weft_stdio st[3] = {{WEFT_STDIO_IGNORE, -1, NULL},
                      {WEFT_STDIO_PIPE, -1, &r->out},
                      {WEFT_STDIO_PIPE, -1, &r->err}};
  if (r->input_len > 0) st[0] = (weft_stdio){WEFT_STDIO_PIPE, -1, &r->in};
  po.stdio = st;
  po.stdio_count = 3;
  po.exit_cb = on_exit_cb;
  if (r->input_len > 0) weft_pipe_init(loop, &r->in);
  weft_pipe_init(loop, &r->out);
  weft_pipe_init(loop, &r->err);
  r->proc.base.data = r;
  int err = weft_spawn(loop, &r->proc, &po);
  if (err != 0) return err;
  r->open = 3;
  r->out.stream.base.data = r->err.stream.base.data = r;
  if (r->input_len > 0) {
    r->open = 4;
    r->in.stream.base.data = r;
  }
  return 0;
}

/* Closes the unused pipe handles of a spawn that failed: they are plain
 * initialised handles, freed with the request once closed. */
static void on_unused_closed(weft_handle *h) {
  runreq *r = h->data;
  if (--r->open == 0) run_free(r);
}

static void drop_unused(runreq *r) {
  r->open = 2;
  r->out.stream.base.data = r->err.stream.base.data = r;
  if (r->input_len > 0) {
    r->open = 3;
    r->in.stream.base.data = r;
    weft_close(&r->in.stream.base, on_unused_closed);
  }
  weft_close(&r->out.stream.base, on_unused_closed);
  weft_close(&r->err.stream.base, on_unused_closed);
}

static int run_start(runreq *r) {
  int err = weft_stream_read_start(&r->out.stream, NULL, on_read);
  if (err == 0) err = weft_stream_read_start(&r->err.stream, NULL, on_read);
  if (err != 0 || r->input_len == 0) return err;
  weft_buf b = weft_buf_init(r->input, r->input_len);
  r->wreq.data = r;
  return weft_stream_write(&r->wreq, &r->in.stream, &b, 1, on_written);
}

int weft_process_run(weft_loop *loop, const weft_run_options *o,
                     weft_future **out) {
  if (loop == NULL || o == NULL || out == NULL || (o->input_len && !o->input))
    return -EINVAL;
  runreq *r;
  int err = run_alloc(o, &r);
  if (err != 0) return err;
  err = weft_future_new_op(loop, "weft_process_run", &r->future);
  if (err != 0) {
    run_free(r);
    return err;
  }
  if ((err = run_spawn(loop, r, o)) != 0) {
    weft_future_unref(r->future);
    r->future = NULL;
    drop_unused(r);
    return err;
  }
  weft_future_on_cancel(r->future, on_cancel, r);
  if ((err = run_start(r)) != 0) fail(r, err); /* settles later, rejected */
  *out = weft_future_ref(r->future);
  return 0;
}
