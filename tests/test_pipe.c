/* Pipes: echo over Unix sockets (path and abstract names) and over pipe(2)
 * fds, the connected-pair helper, half-close of a pipe's write end, EPIPE
 * without SIGPIPE, names, and bad input. */
#include "support/test.h"
#include "support/echo.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a client that writes a pattern and checks the echo ------------------ */

typedef struct uclient {
  weft_pipe p;
  weft_connect_req cr;
  weft_write_req wr;
  char out[50000];
  size_t got;
  int connected, eof;
} uclient;

static void c_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  uclient *c = s->base.data;
  if (n == WEFT_EOF) {
    c->eof++;
    return;
  }
  cr_assert_gt(n, 0);
  cr_assert_eq(memcmp(buf->base, c->out + c->got, (size_t)n), 0);
  c->got += (size_t)n;
  if (c->got == sizeof c->out) weft_close(&s->base, NULL);
}

static void c_connected(weft_connect_req *req, int status) {
  uclient *c = req->data;
  cr_assert_eq(status, 0);
  c->connected++;
  weft_buf b = weft_buf_init(c->out, sizeof c->out);
  cr_assert_eq(weft_stream_write(&c->wr, &c->p.stream, &b, 1, NULL), 0);
  cr_assert_eq(weft_stream_read_start(&c->p.stream, NULL, c_read), 0);
}

static void unix_echo(const char *name, size_t len) {
  weft_loop *loop = th_loop();
  weft_pipe srv;
  th_echo echo;
  cr_assert_eq(weft_pipe_init(loop, &srv), 0);
  cr_assert_eq(weft_pipe_bind(&srv, name, len), 0);
  th_echo_listen(&echo, &srv.stream);
  char got[128];
  size_t glen = sizeof got;
  cr_assert_eq(weft_pipe_getsockname(&srv, got, &glen), 0);
  cr_assert_eq(glen, len ? len : strlen(name));
  cr_assert_eq(memcmp(got, name, glen), 0);
  uclient *c = calloc(1, sizeof *c);
  for (size_t i = 0; i < sizeof c->out; i++)
    c->out[i] = (char)(i * 13);
  cr_assert_eq(weft_pipe_init(loop, &c->p), 0);
  c->p.stream.base.data = c;
  c->cr.data = c;
  cr_assert_eq(weft_pipe_connect(&c->cr, &c->p, name, len, c_connected), 0);
  cr_assert_eq(c->connected, 0);
  while (echo.closed == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(c->connected, 1);
  cr_assert_eq(c->got, sizeof c->out);
  cr_assert_eq(echo.accepted, 1);
  cr_assert_eq(echo.write_errors, 0);
  free(c);
  th_loop_finish(loop);
}

Test(pipe, echo_over_unix_path, .timeout = 10) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/weft-test-%d.sock", (int)getpid());
  unlink(path);
  unix_echo(path, 0);
  cr_assert_eq(unlink(path), 0); /* the path stays until removed */
}

Test(pipe, echo_over_abstract_name, .timeout = 10) {
  char name[64];
  int n = snprintf(name, sizeof name, "%cweft-test-%d", '\0', (int)getpid());
  unix_echo(name, (size_t)n);
}

/* ---- pipe(2) fds ----------------------------------------------------------
 */

typedef struct pp {
  size_t got;
  int eof, shut;
  char data[200000];
} pp;

static void pp_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  pp *p = s->base.data;
  if (n == WEFT_EOF) {
    p->eof++;
    return;
  }
  cr_assert_gt(n, 0);
  cr_assert_eq(memcmp(buf->base, p->data + p->got, (size_t)n), 0);
  p->got += (size_t)n;
}

static void pp_shut(weft_shutdown_req *req, int status) {
  cr_assert_eq(status, 0);
  ((pp *)req->data)->shut++;
}

Test(pipe, pipe_fds_carry_data_and_shutdown_closes_the_write_end,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  weft_pipe r, w;
  cr_assert_eq(weft_pipe_init(loop, &r), 0);
  cr_assert_eq(weft_pipe_init(loop, &w), 0);
  cr_assert_eq(weft_pipe_open(&r, fds[0]), 0);
  cr_assert_eq(weft_pipe_open(&w, fds[1]), 0);
  cr_assert_eq(weft_handle_get_type(&r.stream.base), WEFT_HANDLE_PIPE);
  pp *p = calloc(1, sizeof *p);
  for (size_t i = 0; i < sizeof p->data; i++)
    p->data[i] = (char)(i * 7 + 1);
  r.stream.base.data = p;
  cr_assert_eq(weft_stream_read_start(&r.stream, NULL, pp_read), 0);
  weft_write_req wr;
  weft_buf b = weft_buf_init(p->data, sizeof p->data);
  cr_assert_eq(weft_stream_write(&wr, &w.stream, &b, 1, NULL), 0);
  weft_shutdown_req sr;
  sr.data = p;
  cr_assert_eq(weft_stream_shutdown(&sr, &w.stream, pp_shut), 0);
  /* the read end cannot be shut down: it is not a socket */
  weft_shutdown_req sr2;
  cr_assert_eq(weft_stream_shutdown(&sr2, &r.stream, NULL), -ENOTSOCK);
  while (p->eof == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(p->got, sizeof p->data);
  cr_assert_eq(p->shut, 1);
  cr_assert_eq(weft_stream_fileno(&w.stream), -EBADF); /* closed by shutdown */
  free(p);
  th_loop_finish(loop);
}

static void epipe_write(weft_write_req *req, int status) {
  *(int *)req->data = status;
}

Test(pipe, write_to_a_closed_reader_fails_with_epipe_not_sigpipe,
     .timeout = 10) {
  signal(SIGPIPE, SIG_DFL);
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  weft_pipe w;
  cr_assert_eq(weft_pipe_init(loop, &w), 0);
  cr_assert_eq(weft_pipe_open(&w, fds[1]), 0); /* ignores SIGPIPE (default) */
  close(fds[0]);
  int status = 1;
  weft_write_req wr;
  wr.data = &status;
  weft_buf b = weft_buf_init("x", 1);
  cr_assert_eq(weft_stream_write(&wr, &w.stream, &b, 1, epipe_write), 0);
  while (status == 1)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(status, -EPIPE);
  th_loop_finish(loop);
}

/* ---- the pair helper --------------------------------------------------------
 */

Test(pipe, pair_is_connected_both_ways, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  cr_assert_eq(weft_pipe_init(loop, &a), 0);
  cr_assert_eq(weft_pipe_init(loop, &b), 0);
  cr_assert_eq(weft_pipe_pair(loop, &a, &a), -EINVAL);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), -EINVAL); /* already open */
  pp *pa = calloc(1, sizeof *pa), *pb = calloc(1, sizeof *pb);
  memcpy(pa->data, "from b", 6);
  memcpy(pb->data, "from a", 6);
  a.stream.base.data = pa;
  b.stream.base.data = pb;
  cr_assert_eq(weft_stream_read_start(&a.stream, NULL, pp_read), 0);
  cr_assert_eq(weft_stream_read_start(&b.stream, NULL, pp_read), 0);
  weft_write_req w1, w2;
  weft_buf b1 = weft_buf_init("from a", 6), b2 = weft_buf_init("from b", 6);
  cr_assert_eq(weft_stream_write(&w1, &a.stream, &b1, 1, NULL), 0);
  cr_assert_eq(weft_stream_write(&w2, &b.stream, &b2, 1, NULL), 0);
  while (pa->got < 6 || pb->got < 6)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  char name[16];
  size_t len = sizeof name;
  cr_assert_eq(weft_pipe_getpeername(&a, name, &len), 0);
  cr_assert_eq(len, 0); /* unnamed */
  free(pa);
  free(pb);
  th_loop_finish(loop);
}

/* ---- errors -----------------------------------------------------------------
 */

static void never(weft_connect_req *req, int status) {
  (void)req, (void)status;
  cr_assert_fail("connect callback after a failed start");
}

static void noconn(weft_stream *s, int st) { (void)s, (void)st; }

Test(pipe, bad_input_and_immediate_connect_errors, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe p, q;
  weft_connect_req req;
  cr_assert_eq(weft_pipe_init(NULL, &p), -EINVAL);
  cr_assert_eq(weft_pipe_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_init(loop, &p), 0);
  cr_assert_eq(weft_pipe_init(loop, &q), 0);
  cr_assert_eq(weft_pipe_bind(&p, NULL, 0), -EINVAL);
  cr_assert_eq(weft_pipe_bind(&p, "", 0), -EINVAL);
  char longname[200];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cr_assert_eq(weft_pipe_bind(&p, longname, 0), -ENAMETOOLONG);
  cr_assert_eq(weft_pipe_bind(&p, "/nonexistent-dir/x.sock", 0), -ENOENT);
  cr_assert_eq(weft_stream_fileno(&p.stream), -EBADF); /* nothing left open */
  cr_assert_eq(weft_pipe_listen(&p, 0, noconn), -EINVAL); /* not bound */
  cr_assert_eq(weft_pipe_connect(&req, &p, "/nonexistent-weft.sock", 0, never),
               -ENOENT);
  cr_assert_eq(weft_stream_fileno(&p.stream), -EBADF);
  cr_assert_eq(weft_pipe_connect(NULL, &p, "/x", 0, never), -EINVAL);
  cr_assert_eq(weft_pipe_connect(&req, NULL, "/x", 0, never), -EINVAL);
  cr_assert_eq(weft_pipe_open(&p, -1), -EINVAL);
  cr_assert_eq(weft_pipe_open(&p, 9999), -EBADF);
  char buf[8];
  size_t len = sizeof buf;
  cr_assert_eq(weft_pipe_getsockname(&p, buf, &len), -EINVAL);
  /* a tcp handle is not a pipe */
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_pipe_bind((weft_pipe *)&t, "/tmp/x", 0), -EINVAL);
  /* a short name buffer */
  char name[64];
  int n = snprintf(name, sizeof name, "%cweft-short-%d", '\0', (int)getpid());
  cr_assert_eq(weft_pipe_bind(&q, name, (size_t)n), 0);
  len = 4;
  cr_assert_eq(weft_pipe_getsockname(&q, buf, &len), -ENOBUFS);
  cr_assert_eq(weft_pipe_bind(&q, name, (size_t)n), -EINVAL); /* has an fd */
  cr_assert_eq(weft_close(&p.stream.base, NULL), 0);
  cr_assert_eq(weft_pipe_open(&p, 0), -EINVAL); /* closing */
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  th_loop_finish(loop);
}

/* connect and the loop buffer of read_start under allocation failure */
static void never_accepts(weft_stream *s, int status) {
  (void)s, (void)status;
  cr_assert_fail("the round closes its listener before any connection");
}

typedef struct pipe_round {
  char name[64];
  int nlen;
  weft_pipe srv, c; /* outlive the round's op: closed by the sweep */
  weft_connect_req req;
} pipe_round;

static int pipe_alloc_round(weft_loop *loop, void *arg) {
  pipe_round *r = arg;
  cr_assert_eq(weft_pipe_init(loop, &r->srv), 0);
  cr_assert_eq(weft_pipe_init(loop, &r->c), 0);
  cr_assert_eq(weft_pipe_bind(&r->srv, r->name, (size_t)r->nlen), 0);
  int err = weft_pipe_listen(&r->srv, 0, never_accepts);
  if (err == 0)
    err = weft_pipe_connect(&r->req, &r->c, r->name, (size_t)r->nlen, NULL);
  if (err == 0) err = weft_stream_read_start(&r->c.stream, NULL, c_read);
  /* before any accept: nothing to free; the client too, so that the
   * sweep's turns of the loop see no refused connection */
  weft_close(&r->srv.stream.base, NULL);
  weft_close(&r->c.stream.base, NULL);
  return err;
}

Test(pipe, allocation_failures_are_clean, .timeout = 20) {
  pipe_round r;
  r.nlen =
      snprintf(r.name, sizeof r.name, "%cweft-alloc-%d", '\0', (int)getpid());
  th_alloc_sweep_run(
      &(th_sweep){.op = pipe_alloc_round, .arg = &r, .max_rounds = 200});
}
