#include "test.h"

#include <stdlib.h>

#include "echo.h"

typedef struct echo_conn {
  union {
    weft_tcp tcp;
    weft_pipe pipe;
  } h; /* first: the stream callbacks get &h */
  weft_write_req wr;
  th_echo *e;
  char buf[16384];
} echo_conn;

static weft_stream *conn_stream(echo_conn *c, weft_handle_type type) {
  return type == WEFT_HANDLE_TCP ? &c->h.tcp.stream : &c->h.pipe.stream;
}

static void conn_closed(weft_handle *h) {
  echo_conn *c = (echo_conn *)h;
  c->e->closed++;
  free(c);
}

static void echo_alloc(weft_stream *s, size_t suggested, weft_buf *buf) {
  (void)suggested;
  echo_conn *c = (echo_conn *)s;
  *buf = weft_buf_init(c->buf, sizeof c->buf);
}

static void echo_read(weft_stream *s, ssize_t n, const weft_buf *buf);

static void echo_written(weft_write_req *req, int status) {
  echo_conn *c = req->data;
  weft_stream *s = (weft_stream *)(void *)&c->h;
  if (status != 0) {
    c->e->write_errors++;
    weft_close(&s->base, conn_closed);
    return;
  }
  cr_assert_eq(weft_stream_read_start(s, echo_alloc, echo_read), 0);
}

/* Echo one chunk at a time: stop reading until it is written back. */
static void echo_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  echo_conn *c = (echo_conn *)s;
  if (n == 0) return;
  if (n < 0) {
    weft_close(&s->base, conn_closed);
    return;
  }
  weft_stream_read_stop(s);
  c->wr.data = c;
  weft_buf out = weft_buf_init(buf->base, (size_t)n);
  int err = weft_stream_write(&c->wr, s, &out, 1, echo_written);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
}

static void on_connection(weft_stream *listener, int status) {
  cr_assert_eq(status, 0, "%s", weft_err_name(status));
  th_echo *e = listener->base.data;
  weft_handle_type type = weft_handle_get_type(&listener->base);
  weft_loop *loop = weft_handle_loop(&listener->base);
  echo_conn *c = calloc(1, sizeof *c);
  cr_assert_not_null(c);
  c->e = e;
  weft_stream *s = conn_stream(c, type);
  cr_assert_eq(type == WEFT_HANDLE_TCP ? weft_tcp_init(loop, &c->h.tcp)
                                       : weft_pipe_init(loop, &c->h.pipe),
               0);
  cr_assert_eq(weft_stream_accept(listener, s), 0);
  e->accepted++;
  cr_assert_eq(weft_stream_read_start(s, echo_alloc, echo_read), 0);
}

void th_echo_listen(th_echo *e, weft_stream *listener) {
  weft_handle_type type = weft_handle_get_type(&listener->base);
  cr_assert(type == WEFT_HANDLE_TCP || type == WEFT_HANDLE_PIPE, "%s",
            weft_handle_type_name(type));
  e->accepted = e->closed = e->write_errors = 0;
  listener->base.data = e;
  int err = type == WEFT_HANDLE_TCP
                ? weft_tcp_listen((weft_tcp *)listener, 0, on_connection)
                : weft_pipe_listen((weft_pipe *)listener, 0, on_connection);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
}
