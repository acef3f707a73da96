/* Fiber stream conveniences (io/fiber_stream.c): weft_fiber_read,
 * read_exact, read_until, readline, write, connect, accept. */
#include <string.h>

#include "support/test.h"
#include <weft/fiber.h>

static const char *en(int err) { return weft_err_name(err); }

#define ASSERT_ERR(got, want)                                                  \
  do {                                                                         \
    long long g_ = (long long)(got), w_ = (long long)(want);                   \
    cr_assert_eq(g_, w_, "%s: got %s (%lld), want %s (%lld)", #got,            \
                 en((int)g_), g_, en((int)w_), w_);                            \
  } while (0)

/* ---- TCP on 127.0.0.1: accept, connect, readline, write, EOF ------------ */

typedef struct tcp_case {
  weft_tcp server, conn, client;
  int port;
  int lines;      /* lines the server echoed */
  int server_eof; /* the server's readline/read saw the end */
  int client_ok;
} tcp_case;

static int tcp_server(weft_fiber *self, void *arg) {
  tcp_case *t = arg;
  weft_tcp_init(weft_fiber_loop(self), &t->conn);
  ASSERT_ERR(weft_fiber_accept(&t->server.stream, &t->conn.stream), 0);
  char line[64];
  ssize_t n;
  while ((n = weft_fiber_readline(&t->conn.stream, line, sizeof line)) > 0) {
    cr_assert_eq(strlen(line), (size_t)n);
    ASSERT_ERR(weft_fiber_write(&t->conn.stream, line, (size_t)n), n);
    t->lines++;
  }
  ASSERT_ERR(n, WEFT_EOF);
  cr_assert_eq(line[0], '\0');
  ASSERT_ERR(weft_stream_read_buffered(&t->conn.stream), 4); /* "tail" */
  ASSERT_ERR(weft_fiber_read(&t->conn.stream, line, sizeof line), 4);
  cr_assert(memcmp(line, "tail", 4) == 0);
  ASSERT_ERR(weft_fiber_read(&t->conn.stream, line, sizeof line), 0);
  t->server_eof = 1;
  weft_close(&t->conn.stream.base, NULL);
  weft_close(&t->server.stream.base, NULL);
  return 0;
}

static int tcp_client(weft_fiber *self, void *arg) {
  tcp_case *t = arg;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", (unsigned)t->port, &a);
  weft_tcp_init(weft_fiber_loop(self), &t->client);
  ASSERT_ERR(weft_fiber_connect(&t->client, (struct sockaddr *)&a), 0);
  const char *msg = "hello\nweft fibers\n";
  ASSERT_ERR(weft_fiber_write(&t->client.stream, msg, strlen(msg)),
             strlen(msg));
  char back[32] = {0};
  ASSERT_ERR(weft_fiber_read_exact(&t->client.stream, back, strlen(msg)),
             strlen(msg));
  cr_assert_str_eq(back, msg);
  ASSERT_ERR(weft_fiber_write(&t->client.stream, "tail", 4), 4);
  weft_future *sd;
  ASSERT_ERR(weft_stream_shutdown_future(&t->client.stream, &sd), 0);
  ASSERT_ERR(weft_await_take_i64(sd, NULL), 0);
  ASSERT_ERR(weft_fiber_read(&t->client.stream, back, sizeof back), 0);
  t->client_ok = 1;
  weft_close(&t->client.stream.base, NULL);
  return 0;
}

Test(fiber_io, tcp_accept_connect_readline_write_eof, .timeout = 10) {
  weft_loop *loop = th_loop();
  tcp_case t = {0};
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&a);
  ASSERT_ERR(weft_tcp_init(loop, &t.server), 0);
  ASSERT_ERR(weft_tcp_bind(&t.server, (struct sockaddr *)&a, 0), 0);
  ASSERT_ERR(weft_tcp_listen(&t.server, 16, NULL), 0);
  ASSERT_ERR(weft_tcp_getsockname(&t.server, (struct sockaddr *)&a, &len), 0);
  t.port = weft_sockaddr_port((struct sockaddr *)&a);
  cr_assert_gt(t.port, 0);
  ASSERT_ERR(weft_fiber_spawn(loop, tcp_server, &t, NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, tcp_client, &t, NULL, NULL), 0);
  th_run(loop);
  cr_assert_eq(t.lines, 2);
  cr_assert_eq(t.server_eof, 1);
  cr_assert_eq(t.client_ok, 1);
  th_loop_finish(loop);
}

typedef struct refused_case {
  weft_tcp t; /* outlives the fiber: its close completes later */
  unsigned port;
} refused_case;

static int refused(weft_fiber *self, void *arg) {
  refused_case *r = arg;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", r->port, &a);
  weft_tcp_init(weft_fiber_loop(self), &r->t);
  int err = weft_fiber_connect(&r->t, (struct sockaddr *)&a);
  weft_close(&r->t.stream.base, NULL);
  return err;
}

Test(fiber_io, connect_refused_is_its_error, .timeout = 10) {
  weft_loop *loop = th_loop();
  /* a port that was just free: bound, read back, closed */
  weft_tcp probe;
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&a);
  weft_tcp_init(loop, &probe);
  ASSERT_ERR(weft_tcp_bind(&probe, (struct sockaddr *)&a, 0), 0);
  ASSERT_ERR(weft_tcp_getsockname(&probe, (struct sockaddr *)&a, &len), 0);
  refused_case r = {.port =
                        (unsigned)weft_sockaddr_port((struct sockaddr *)&a)};
  weft_close(&probe.stream.base, NULL);
  th_run(loop);
  ASSERT_ERR(weft_fiber_run(loop, refused, &r, NULL, NULL), -ECONNREFUSED);
  th_run(loop); /* the close */
  th_loop_finish(loop);
}

/* ---- a pipe pair: read_until, read_exact, partial EOF ------------------- */

typedef struct pipe_case {
  weft_pipe a, b;
  int done;
} pipe_case;

static int pipe_reader(weft_fiber *self, void *arg) {
  (void)self;
  pipe_case *p = arg;
  weft_stream *s = &p->a.stream;
  char buf[64];
  ASSERT_ERR(weft_fiber_read_until(s, buf, sizeof buf, "\r\n", 2), 5);
  cr_assert(memcmp(buf, "GET\r\n", 5) == 0);
  ASSERT_ERR(weft_fiber_read_exact(s, buf, 3), 3);
  cr_assert(memcmp(buf, "abc", 3) == 0);
  /* 2 bytes then EOF: read_exact fails, the 2 bytes stay readable */
  ASSERT_ERR(weft_fiber_read_exact(s, buf, 8), WEFT_EOF);
  ASSERT_ERR(weft_stream_read_buffered(s), 2);
  ASSERT_ERR(weft_fiber_read(s, buf, sizeof buf), 2);
  cr_assert(memcmp(buf, "de", 2) == 0);
  ASSERT_ERR(weft_fiber_read(s, buf, sizeof buf), 0);
  ASSERT_ERR(weft_fiber_readline(s, buf, sizeof buf), WEFT_EOF);
  p->done = 1;
  return 0;
}

static int pipe_writer(weft_fiber *self, void *arg) {
  (void)self;
  pipe_case *p = arg;
  ASSERT_ERR(weft_fiber_write(&p->b.stream, "GET\r\nab", 7), 7);
  ASSERT_ERR(weft_fiber_yield(), 0);
  ASSERT_ERR(weft_fiber_write(&p->b.stream, "cde", 3), 3);
  weft_close(&p->b.stream.base, NULL); /* the reader's EOF */
  return 0;
}

static void pipe_open(weft_loop *loop, pipe_case *p) {
  ASSERT_ERR(weft_pipe_init(loop, &p->a), 0);
  ASSERT_ERR(weft_pipe_init(loop, &p->b), 0);
  ASSERT_ERR(weft_pipe_pair(loop, &p->a, &p->b), 0);
}

Test(fiber_io, pipe_read_until_exact_and_partial_eof, .timeout = 10) {
  weft_loop *loop = th_loop();
  pipe_case p = {0};
  pipe_open(loop, &p);
  ASSERT_ERR(weft_fiber_spawn(loop, pipe_reader, &p, NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, pipe_writer, &p, NULL, NULL), 0);
  th_run(loop);
  cr_assert_eq(p.done, 1);
  weft_close(&p.a.stream.base, NULL);
  th_loop_finish(loop);
}

/* ---- cancel mid-read: nothing consumed, the stream stays readable ------- */

typedef struct cancel_case {
  pipe_case p;
  ssize_t got;
  char buf[16];
} cancel_case;

static int blocked_exact(weft_fiber *self, void *arg) {
  (void)self;
  cancel_case *c = arg;
  c->got = weft_fiber_read_exact(&c->p.a.stream, c->buf, 8);
  return 0;
}

static int read_rest(weft_fiber *self, void *arg) {
  (void)self;
  cancel_case *c = arg;
  memset(c->buf, 0, sizeof c->buf);
  c->got = weft_fiber_read_exact(&c->p.a.stream, c->buf, 5);
  return 0;
}

Test(fiber_io, cancel_mid_read_leaves_the_stream_readable, .timeout = 10) {
  weft_loop *loop = th_loop();
  cancel_case c = {0};
  pipe_open(loop, &c.p);
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, blocked_exact, &c, NULL, &f), 0);
  weft_buf b = weft_buf_init("ab", 2);
  weft_future *w;
  ASSERT_ERR(weft_stream_write_future(&c.p.b.stream, &b, 1, &w), 0);
  for (int i = 0; i < 100 && weft_stream_read_buffered(&c.p.a.stream) == 0 &&
                  weft_future_get_state(w) == WEFT_FUTURE_PENDING;
       i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  /* the fiber waits for 8 bytes and has 2 */
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  ASSERT_ERR(weft_future_cancel(f), 0);
  th_run(loop);
  ASSERT_ERR(c.got, -ECANCELED);
  ASSERT_ERR(weft_stream_read_buffered(&c.p.a.stream), 2);
  weft_future_unref(f);
  ASSERT_ERR(weft_await_take_i64(w, NULL), -EPERM); /* outside a fiber */
  /* a later read gets the 2 bytes first, then the new ones */
  b = weft_buf_init("cde", 3);
  ASSERT_ERR(weft_stream_write_future(&c.p.b.stream, &b, 1, &w), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, read_rest, &c, NULL, NULL), 0);
  th_run(loop);
  weft_future_unref(w);
  ASSERT_ERR(c.got, 5);
  cr_assert_str_eq(c.buf, "abcde");
  weft_close(&c.p.a.stream.base, NULL);
  weft_close(&c.p.b.stream.base, NULL);
  th_loop_finish(loop);
}

/* ---- bad inputs, -EPERM outside a fiber ---------------------------------- */

static int bad_inputs(weft_fiber *self, void *arg) {
  (void)self;
  pipe_case *p = arg;
  weft_stream *s = &p->a.stream;
  char buf[8] = "x";
  ASSERT_ERR(weft_fiber_read(NULL, buf, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_read(s, NULL, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_read(s, buf, 0), -EINVAL);
  ASSERT_ERR(weft_fiber_read_exact(s, buf, 0), -EINVAL);
  ASSERT_ERR(weft_fiber_read_until(s, buf, sizeof buf, NULL, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_read_until(s, buf, sizeof buf, "\n", 0), -EINVAL);
  ASSERT_ERR(weft_fiber_read_until(s, buf, 1, "ab", 2), -EINVAL);
  ASSERT_ERR(weft_fiber_readline(s, buf, 1), -EINVAL);
  cr_assert_eq(buf[0], '\0');
  ASSERT_ERR(weft_fiber_readline(s, NULL, 8), -EINVAL);
  ASSERT_ERR(weft_fiber_write(s, NULL, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_write(s, buf, 0), -EINVAL);
  ASSERT_ERR(weft_fiber_write(NULL, buf, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_connect(NULL, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_accept(NULL, NULL), -EINVAL);
  /* a line longer than the buffer: -EMSGSIZE, and it stays readable */
  ASSERT_ERR(weft_fiber_write(&p->b.stream, "0123456789\n", 11), 11);
  ASSERT_ERR(weft_fiber_readline(s, buf, sizeof buf), -EMSGSIZE);
  cr_assert_eq(buf[0], '\0');
  char big[16] = {0};
  ASSERT_ERR(weft_fiber_readline(s, big, sizeof big), 11);
  cr_assert_str_eq(big, "0123456789\n");
  p->done = 1;
  return 0;
}

Test(fiber_io, bad_inputs_are_errors, .timeout = 10) {
  weft_loop *loop = th_loop();
  pipe_case p = {0};
  pipe_open(loop, &p);
  ASSERT_ERR(weft_fiber_run(loop, bad_inputs, &p, NULL, NULL), 0);
  cr_assert_eq(p.done, 1);
  weft_close(&p.a.stream.base, NULL);
  weft_close(&p.b.stream.base, NULL);
  th_loop_finish(loop);
}

Test(fiber_io, outside_a_fiber_is_eperm, .timeout = 10) {
  weft_loop *loop = th_loop();
  pipe_case p = {0};
  pipe_open(loop, &p);
  weft_tcp t;
  weft_tcp_init(loop, &t);
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 1, &a);
  char buf[8] = "x";
  ASSERT_ERR(weft_fiber_read(&p.a.stream, buf, sizeof buf), -EPERM);
  ASSERT_ERR(weft_fiber_read_exact(&p.a.stream, buf, 2), -EPERM);
  ASSERT_ERR(weft_fiber_read_until(&p.a.stream, buf, 8, "\n", 1), -EPERM);
  ASSERT_ERR(weft_fiber_readline(&p.a.stream, buf, sizeof buf), -EPERM);
  ASSERT_ERR(weft_fiber_write(&p.b.stream, "x", 1), -EPERM);
  ASSERT_ERR(weft_fiber_connect(&t, (struct sockaddr *)&a), -EPERM);
  ASSERT_ERR(weft_fiber_accept(&p.a.stream, &t.stream), -EPERM);
  /* nothing happened: nothing read, nothing written, no connect */
  cr_assert_eq(buf[0], 'x');
  ASSERT_ERR(weft_stream_read_buffered(&p.a.stream), 0);
  cr_assert(!weft_is_active(&t.stream.base));
  weft_close(&t.stream.base, NULL);
  weft_close(&p.a.stream.base, NULL);
  weft_close(&p.b.stream.base, NULL);
  th_loop_finish(loop);
}

/* ---- steady state allocates nothing -------------------------------------- */

static int ping_lines(weft_fiber *self, void *arg) {
  pipe_case *p = arg;
  char line[32];
  size_t before = 0;
  for (int i = 0; i < 400; i++) {
    if (i == 200) before = th_alloc_calls(); /* free lists are warm */
    ASSERT_ERR(weft_fiber_write(&p->b.stream, "a line\n", 7), 7);
    ASSERT_ERR(weft_fiber_readline(&p->a.stream, line, sizeof line), 7);
  }
  weft_fiber_return_i64(self, (int64_t)(th_alloc_calls() - before));
  return 0;
}

Test(fiber_io, steady_reads_and_writes_allocate_nothing, .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  pipe_case p = {0};
  pipe_open(loop, &p);
  int64_t calls = -1;
  ASSERT_ERR(weft_fiber_run(loop, ping_lines, &p, NULL, &calls), 0);
  cr_assert_eq(calls, 0, "200 write+readline rounds allocated %lld",
               (long long)calls);
  weft_close(&p.a.stream.base, NULL);
  weft_close(&p.b.stream.base, NULL);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* ---- cancel mid-write ---------------------------------------------------- */

#define BIG ((size_t)4 << 20)

typedef struct write_case {
  pipe_case p;
  char *out, *in;
  ssize_t wrote, read;
  int next;     /* the writer's await after its write */
  ssize_t late; /* queued_writer's write */
} write_case;

static int big_writer(weft_fiber *self, void *arg) {
  (void)self;
  write_case *w = arg;
  w->wrote = weft_fiber_write(&w->p.b.stream, w->out, BIG);
  w->next = weft_fiber_yield();
  return 0;
}

static int big_reader(weft_fiber *self, void *arg) {
  (void)self;
  write_case *w = arg;
  w->read = weft_fiber_read_exact(&w->p.a.stream, w->in, BIG);
  return 0;
}

/* 4 MiB into a socket nobody reads: part is sent, the rest waits; the
 * cancelled writer waits for it (weft sends from its buffer) and returns
 * the count once it is read; its next await is -ECANCELED. */
Test(fiber_io, cancel_mid_write_finishes_a_partly_sent_write, .timeout = 20) {
  weft_loop *loop = th_loop();
  write_case w = {.out = malloc(BIG), .in = malloc(BIG), .wrote = 1};
  cr_assert(w.out != NULL && w.in != NULL);
  for (size_t i = 0; i < BIG; i++)
    w.out[i] = (char)(i * 7 + i / 4096);
  pipe_open(loop, &w.p);
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, big_writer, &w, NULL, &f), 0);
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  ASSERT_ERR(weft_future_cancel(f), 0);
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(w.wrote, 1); /* still waiting for its write */
  ASSERT_ERR(weft_fiber_spawn(loop, big_reader, &w, NULL, NULL), 0);
  th_run(loop);
  ASSERT_ERR(w.wrote, BIG);
  ASSERT_ERR(w.next, -ECANCELED); /* the cancellation was not lost */
  ASSERT_ERR(w.read, BIG);
  cr_assert(memcmp(w.in, w.out, BIG) == 0);
  weft_future_unref(f);
  free(w.out);
  free(w.in);
  weft_close(&w.p.a.stream.base, NULL);
  weft_close(&w.p.b.stream.base, NULL);
  th_loop_finish(loop);
}

static int queued_writer(weft_fiber *self, void *arg) {
  (void)self;
  write_case *w = arg;
  w->late = weft_fiber_write(&w->p.b.stream, "late", 4);
  w->next = weft_fiber_yield();
  return 0;
}

static int read_late(weft_fiber *self, void *arg) {
  (void)self;
  write_case *w = arg;
  ASSERT_ERR(weft_fiber_read_exact(&w->p.a.stream, w->in, 4), 4);
  return 0;
}

/* The write queued behind
 * another, no byte sent, and its fiber cancelled: it is not withdrawn (the
 * byte stream stays what the fiber wrote), the call returns 4 once it is
 * sent and the cancellation comes at the next await. */
Test(fiber_io, cancelled_writer_still_writes_then_sees_the_cancel,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  write_case w = {.out = malloc(BIG), .in = malloc(BIG + 4), .wrote = 1};
  cr_assert(w.out != NULL && w.in != NULL);
  memset(w.out, 'x', BIG);
  pipe_open(loop, &w.p);
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, big_writer, &w, NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, queued_writer, &w, NULL, &f), 0);
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(weft_future_cancel(f), 0);
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  ASSERT_ERR(w.late, 0); /* still waiting for its write */
  weft_future_unref(f);
  ASSERT_ERR(weft_fiber_spawn(loop, big_reader, &w, NULL, NULL), 0);
  th_run(loop);
  ASSERT_ERR(w.wrote, BIG);
  ASSERT_ERR(w.read, BIG);
  ASSERT_ERR(w.late, 4);
  ASSERT_ERR(w.next, -ECANCELED);
  ASSERT_ERR(weft_fiber_run(loop, read_late, &w, NULL, NULL), 0);
  cr_assert(memcmp(w.in, "late", 4) == 0);
  free(w.out);
  free(w.in);
  weft_close(&w.p.b.stream.base, NULL);
  weft_close(&w.p.a.stream.base, NULL);
  th_loop_finish(loop);
}
