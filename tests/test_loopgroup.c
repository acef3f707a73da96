/* Loop groups: create/run/stop/free with connections in flight, the drain's
 * deadline with a slow client, hand-off under 1,000 connections, the
 * SO_REUSEPORT mode, cross-loop calls settled on the caller's thread, a
 * stop from a signal, init failures, bad input and allocation failure. */
#include "support/test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAXL 4

typedef struct fixture {
  weft_lgroup *g;
  pthread_t threads[MAXL];
  int locals[MAXL];
  atomic_int inits, stops, opened, closed, wrong_thread, aborted;
  atomic_uint served[MAXL];
  int fail_init_at; /* index+1 whose init fails */
  uint64_t drain_at, abort_at;
} fixture;

typedef struct tconn {
  weft_lgroup_conn base;
  fixture *fx;
  weft_write_req wr;
  char buf[256];
  int closed;
} tconn;

static fixture *the_fx; /* conn_new has only the group's arg: the fixture */

static bool on_own_thread(fixture *fx, tconn *c) {
  unsigned i = weft_lgroup_conn_index(&c->base);
  return pthread_equal(pthread_self(), fx->threads[i]) &&
         weft_handle_loop(&c->base.tcp.stream.base) ==
             weft_lgroup_loop(fx->g, i);
}

static int fx_init(weft_lgroup *g, unsigned i, weft_loop *loop, void *arg) {
  fixture *fx = arg;
  fx->threads[i] = pthread_self();
  if (weft_lgroup_loop(g, i) != loop) atomic_fetch_add(&fx->wrong_thread, 1);
  weft_lgroup_set_local(g, i, &fx->locals[i]);
  atomic_fetch_add(&fx->inits, 1);
  return fx->fail_init_at == (int)i + 1 ? -EIO : 0;
}

static void fx_stop(weft_lgroup *g, unsigned i, weft_loop *loop, void *arg) {
  fixture *fx = arg;
  if (!pthread_equal(pthread_self(), fx->threads[i]) ||
      weft_lgroup_loop(g, i) != loop)
    atomic_fetch_add(&fx->wrong_thread, 1);
  atomic_fetch_add(&fx->stops, 1);
}

static weft_lgroup_conn *fx_conn_new(weft_lgroup *g, unsigned i, void *arg) {
  (void)g, (void)i;
  tconn *c = calloc(1, sizeof *c);
  if (c) c->fx = arg;
  return c ? &c->base : NULL;
}

static void fx_conn_closed(weft_lgroup_conn *bc, void *arg) {
  fixture *fx = arg;
  tconn *c = (tconn *)bc;
  cr_assert_eq(c->closed, 0, "close callback ran twice");
  c->closed = 1;
  if (!on_own_thread(fx, c)) atomic_fetch_add(&fx->wrong_thread, 1);
  atomic_fetch_add(&fx->closed, 1);
  free(c);
}

static void on_alloc(weft_stream *s, size_t n, weft_buf *buf) {
  (void)n;
  tconn *c = (tconn *)s;
  *buf = weft_buf_init(c->buf, sizeof c->buf);
}

static void on_read(weft_stream *s, ssize_t n, const weft_buf *buf);

static void on_written(weft_write_req *req, int status) {
  tconn *c = req->data;
  if (status < 0 ||
      weft_stream_read_start(&c->base.tcp.stream, on_alloc, on_read) < 0)
    weft_lgroup_conn_close(&c->base);
}

static void on_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  tconn *c = (tconn *)s;
  if (n < 0) {
    weft_lgroup_conn_close(&c->base);
    return;
  }
  if (n == 0) return;
  if (!on_own_thread(c->fx, c)) atomic_fetch_add(&c->fx->wrong_thread, 1);
  atomic_fetch_add(&c->fx->served[weft_lgroup_conn_index(&c->base)], 1);
  weft_stream_read_stop(s);
  c->wr.data = c;
  weft_buf out = weft_buf_init(buf->base, (size_t)n);
  if (weft_stream_write(&c->wr, s, &out, 1, on_written) < 0)
    weft_lgroup_conn_close(&c->base);
}

static void fx_conn(weft_lgroup_conn *bc, void *arg) {
  fixture *fx = arg;
  tconn *c = (tconn *)bc;
  atomic_fetch_add(&fx->opened, 1);
  if (!on_own_thread(fx, c)) atomic_fetch_add(&fx->wrong_thread, 1);
  if (weft_stream_read_start(&bc->tcp.stream, on_alloc, on_read) < 0)
    weft_lgroup_conn_close(bc);
}

static weft_lgroup_options fx_options(fixture *fx, unsigned loops) {
  memset(fx, 0, sizeof *fx);
  the_fx = fx;
  return (weft_lgroup_options){.loops = loops,
                               .on_loop_init = fx_init,
                               .on_loop_stop = fx_stop,
                               .on_conn = fx_conn,
                               .on_conn_closed = fx_conn_closed,
                               .conn_new = fx_conn_new,
                               .arg = fx};
}

/* Makes the group, listens on 127.0.0.1 port 0 and starts it. */
static void fx_start(fixture *fx, const weft_lgroup_options *o,
                     weft_lgroup_dist dist) {
  cr_assert_eq(weft_lgroup_new(&fx->g, o), 0);
  struct sockaddr_in a;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &a), 0);
  int err = weft_lgroup_listen(fx->g, (struct sockaddr *)&a, dist, 0);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  err = weft_lgroup_start(fx->g);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
}

static void fx_finish(fixture *fx) {
  int err = weft_lgroup_wait(fx->g, 20000);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  cr_assert_eq(weft_lgroup_free(fx->g), 0);
  cr_assert_eq(atomic_load(&fx->wrong_thread), 0);
  cr_assert_eq(weft_alloc_live(), 0);
}

/* ---- blocking clients (the test thread is not a loop) -------------------- */

static int client(weft_lgroup *g) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  cr_assert_eq(weft_lgroup_getsockname(g, (struct sockaddr *)&ss, &len), 0);
  cr_assert_gt(weft_sockaddr_port((struct sockaddr *)&ss), 0);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  cr_assert_eq(connect(fd, (struct sockaddr *)&ss, len), 0, "%s",
               strerror(errno));
  return fd;
}

static void ping(int fd) {
  char ch = 'x';
  cr_assert_eq(write(fd, &ch, 1), 1);
  cr_assert_eq(read(fd, &ch, 1), 1, "no echo: %s", strerror(errno));
  cr_assert_eq(ch, 'x');
}

static uint64_t sum_stats(weft_lgroup *g, uint64_t *live) {
  uint64_t acc = 0;
  *live = 0;
  for (unsigned i = 0; i < weft_lgroup_size(g); i++) {
    weft_lgroup_stats st;
    cr_assert_eq(weft_lgroup_get_stats(g, i, &st), 0);
    acc += st.accepted;
    *live += st.live;
  }
  return acc;
}

/* ---- lifecycle ----------------------------------------------------------- */

Test(loopgroup, reuseport_stop_with_connections_in_flight, .timeout = 30) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 2);
  fx_start(&fx, &o, WEFT_LGROUP_REUSEPORT);
  cr_assert_eq(atomic_load(&fx.inits), 2);
  enum { N = 40 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = client(fx.g);
    ping(fds[i]);
  }
  uint64_t live, acc = sum_stats(fx.g, &live);
  cr_assert_eq(acc, N);
  cr_assert_eq(live, N);
  cr_assert_eq(weft_lgroup_stop(fx.g, 10000), 0);
  cr_assert_eq(weft_lgroup_stop(fx.g, 10000), -EALREADY);
  for (int i = 0; i < N; i++) { /* still served while draining */
    ping(fds[i]);
    close(fds[i]);
  }
  cr_assert_eq(weft_lgroup_wait(fx.g, 20000), 0);
  acc = sum_stats(fx.g, &live);
  cr_assert_eq(acc, N);
  cr_assert_eq(live, 0);
  cr_assert_eq(atomic_load(&fx.opened), N);
  cr_assert_eq(atomic_load(&fx.closed), N);
  cr_assert_eq(atomic_load(&fx.stops), 2);
  unsigned served = 0;
  for (int i = 0; i < 2; i++)
    served += atomic_load(&fx.served[i]);
  cr_assert_eq(served, 2 * N);
  fx_finish(&fx);
}

static void drain_mark(weft_lgroup_conn *c, void *arg) {
  fixture *fx = arg;
  fx->drain_at = weft_now(weft_handle_loop(&c->tcp.stream.base));
}

static void abort_mark(weft_lgroup_conn *c, void *arg) {
  fixture *fx = arg;
  fx->abort_at = weft_now(weft_handle_loop(&c->tcp.stream.base));
  atomic_fetch_add(&fx->aborted, 1);
  weft_lgroup_conn_close(c);
}

Test(loopgroup, slow_client_is_closed_at_the_deadline, .timeout = 30) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 1);
  o.on_conn_drain = drain_mark;
  o.on_conn_abort = abort_mark;
  fx_start(&fx, &o, WEFT_LGROUP_HANDOFF);
  int fd = client(fx.g);
  ping(fd); /* then silent: it never closes */
  cr_assert_eq(weft_lgroup_stop(fx.g, 200), 0);
  cr_assert_eq(weft_lgroup_stop(fx.g, 0), -EALREADY); /* 200 ms stands */
  char ch;
  cr_assert_eq(read(fd, &ch, 1), 0); /* the server closed it */
  cr_assert_eq(weft_lgroup_wait(fx.g, 20000), 0);
  cr_assert_eq(atomic_load(&fx.aborted), 1);
  cr_assert_geq(fx.abort_at - fx.drain_at, 200);
  cr_assert_lt(fx.abort_at - fx.drain_at, 5000);
  cr_assert_eq(atomic_load(&fx.closed), 1);
  close(fd);
  fx_finish(&fx);
}

Test(loopgroup, deadline_zero_closes_at_once, .timeout = 30) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 2);
  fx_start(&fx, &o, WEFT_LGROUP_REUSEPORT);
  int fd = client(fx.g);
  ping(fd);
  cr_assert_eq(weft_lgroup_stop(fx.g, 0), 0);
  char ch;
  cr_assert_eq(read(fd, &ch, 1), 0);
  cr_assert_eq(weft_lgroup_wait(fx.g, 20000), 0);
  cr_assert_eq(atomic_load(&fx.closed), 1);
  close(fd);
  fx_finish(&fx);
}

Test(loopgroup, handoff_spreads_1000_connections, .timeout = 60) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 3);
  fx_start(&fx, &o, WEFT_LGROUP_HANDOFF);
  enum { BATCH = 100, ROUNDS = 10 };
  int fds[BATCH];
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < BATCH; i++)
      fds[i] = client(fx.g);
    for (int i = 0; i < BATCH; i++)
      ping(fds[i]);
    for (int i = 0; i < BATCH; i++)
      close(fds[i]);
  }
  cr_assert_eq(weft_lgroup_stop(fx.g, 10000), 0);
  cr_assert_eq(weft_lgroup_wait(fx.g, 20000), 0);
  uint64_t live, acc = sum_stats(fx.g, &live);
  cr_assert_eq(acc, BATCH * ROUNDS);
  cr_assert_eq(live, 0);
  cr_assert_eq(atomic_load(&fx.opened), BATCH * ROUNDS);
  cr_assert_eq(atomic_load(&fx.closed), BATCH * ROUNDS);
  for (unsigned i = 0; i < 3; i++) {
    weft_lgroup_stats st;
    weft_lgroup_get_stats(fx.g, i, &st);
    /* each connection was pinged once, on the loop that opened it */
    cr_assert_eq(atomic_load(&fx.served[i]), st.accepted);
    cr_assert_geq(st.accepted, 200, "loop %u got %llu", i,
                  (unsigned long long)st.accepted);
  }
  fx_finish(&fx);
}

Test(loopgroup, stop_from_a_signal, .timeout = 30) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 2);
  o.stop_signals = true;
  o.drain_ms = 5000;
  fx_start(&fx, &o, WEFT_LGROUP_REUSEPORT);
  int fd = client(fx.g);
  ping(fd);
  cr_assert_eq(kill(getpid(), SIGTERM), 0);
  cr_assert_eq(weft_lgroup_wait(fx.g, 200), -ETIMEDOUT); /* fd still open */
  ping(fd);
  close(fd);
  cr_assert_eq(weft_lgroup_wait(fx.g, 20000), 0);
  cr_assert_eq(atomic_load(&fx.stops), 2);
  cr_assert_eq(weft_lgroup_stop(fx.g, 0), -EALREADY);
  fx_finish(&fx);
}

Test(loopgroup, init_failure_fails_start_and_stops, .timeout = 30) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 3);
  fx.fail_init_at = 2;
  cr_assert_eq(weft_lgroup_new(&fx.g, &o), 0);
  cr_assert_eq(weft_lgroup_free(fx.g), 0); /* never started: frees at once */
  cr_assert_eq(weft_lgroup_new(&fx.g, &o), 0);
  cr_assert_eq(weft_lgroup_start(fx.g), -EIO);
  cr_assert_eq(weft_lgroup_start(fx.g), -EINVAL);
  cr_assert_eq(weft_lgroup_wait(fx.g, 20000), 0);
  cr_assert_eq(atomic_load(&fx.inits), 3);
  cr_assert_eq(atomic_load(&fx.stops), 3);
  fx_finish(&fx);
}

/* ---- cross-loop calls ---------------------------------------------------- */

static pthread_t main_thread;
static atomic_int dtors, settled_right, settled_wrong, nested_ok;

static int fn_index(weft_lgroup *g, unsigned i, void *local, void *arg,
                    weft_lgroup_result *res) {
  fixture *fx = arg;
  (void)g;
  if (!pthread_equal(pthread_self(), fx->threads[i]) || local != &fx->locals[i])
    atomic_fetch_add(&fx->wrong_thread, 1);
  weft_lgroup_return_i64(res, 100 + i);
  return 0;
}

static void count_dtor(void *p) {
  (void)p;
  atomic_fetch_add(&dtors, 1);
}

static int fn_ptr(weft_lgroup *g, unsigned i, void *local, void *arg,
                  weft_lgroup_result *res) {
  (void)g, (void)i, (void)arg;
  weft_lgroup_return(res, local, count_dtor);
  return 0;
}

static int fn_fail_odd(weft_lgroup *g, unsigned i, void *local, void *arg,
                       weft_lgroup_result *res) {
  (void)g, (void)local, (void)arg, (void)res;
  return i % 2 ? -EIO - (int)i : 0;
}

static int fn_wait_here(weft_lgroup *g, unsigned i, void *local, void *arg,
                        weft_lgroup_result *res) {
  (void)i, (void)local, (void)arg;
  weft_lgroup_return_i64(res, weft_lgroup_wait(g, 0));
  return 0;
}

static void on_main_settled(weft_future *f, void *arg) {
  (void)f, (void)arg;
  atomic_fetch_add(pthread_equal(pthread_self(), main_thread) ? &settled_right
                                                              : &settled_wrong,
                   1);
}

/* Runs on loop i: asks loop (i+1)%n, and checks the answer lands here. */
static void on_nested(weft_future *f, void *arg) {
  fixture *fx = the_fx;
  unsigned i = (unsigned)(uintptr_t)arg;
  if (pthread_equal(pthread_self(), fx->threads[i]) &&
      weft_future_value_i64(f) ==
          100 + (int64_t)((i + 1) % weft_lgroup_size(fx->g)))
    atomic_fetch_add(&nested_ok, 1);
}

static int fn_nested(weft_lgroup *g, unsigned i, void *local, void *arg,
                     weft_lgroup_result *res) {
  (void)local, (void)res;
  weft_future *f;
  unsigned to = (i + 1) % weft_lgroup_size(g);
  int err =
      weft_lgroup_submit(g, weft_lgroup_loop(g, i), to, fn_index, arg, &f);
  if (err < 0) return err;
  err = weft_future_on_settled(f, on_nested, (void *)(uintptr_t)i);
  weft_future_unref(f);
  return err;
}

static weft_future *settled_on(weft_loop *loop, weft_future *f) {
  cr_assert_eq(weft_future_on_settled(f, on_main_settled, NULL), 0);
  (void)loop;
  return f;
}

Test(loopgroup, cross_loop_calls_settle_on_the_callers_thread, .timeout = 30) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 3);
  o.on_conn = NULL;
  cr_assert_eq(weft_lgroup_new(&fx.g, &o), 0);
  cr_assert_eq(weft_lgroup_start(fx.g), 0);
  main_thread = pthread_self();
  atomic_store(&dtors, 0);
  atomic_store(&settled_right, 0);
  atomic_store(&settled_wrong, 0);
  atomic_store(&nested_ok, 0);
  weft_loop *loop = th_loop();
  weft_future *fi, *fp, *fe, *fb, *fbe, *fw, *fn;
  int64_t results[3] = {0};
  cr_assert_eq(weft_lgroup_submit(fx.g, loop, 1, fn_index, &fx, &fi), 0);
  cr_assert_eq(weft_lgroup_submit(fx.g, loop, 2, fn_ptr, &fx, &fp), 0);
  cr_assert_eq(weft_lgroup_submit(fx.g, loop, 1, fn_fail_odd, &fx, &fe), 0);
  cr_assert_eq(weft_lgroup_submit(fx.g, loop, 0, fn_wait_here, &fx, &fw), 0);
  cr_assert_eq(weft_lgroup_broadcast(fx.g, loop, fn_index, &fx, results, &fb),
               0);
  cr_assert_eq(weft_lgroup_broadcast(fx.g, loop, fn_fail_odd, &fx, NULL, &fbe),
               0);
  cr_assert_eq(weft_lgroup_broadcast(fx.g, loop, fn_nested, &fx, NULL, &fn), 0);
  weft_future *all[] = {fi, fp, fe, fw, fb, fbe, fn};
  for (int i = 0; i < 7; i++)
    settled_on(loop, all[i]);
  cr_assert_eq(weft_future_get_state(fi), WEFT_FUTURE_PENDING); /* not inline */
  th_run(loop); /* the group's answers keep it alive until the last */
  cr_assert_eq(atomic_load(&settled_right), 7);
  cr_assert_eq(atomic_load(&settled_wrong), 0);
  cr_assert_eq(weft_future_value_i64(fi), 101);
  cr_assert_eq(weft_future_value(fp), &fx.locals[2]);
  cr_assert_eq(weft_future_error(fe), -EIO - 1);
  cr_assert_eq(weft_future_value_i64(fw), -EDEADLK);
  cr_assert_eq(weft_future_value_i64(fb), 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(results[i], 100 + i);
  cr_assert_eq(weft_future_error(fbe), -EIO - 1); /* loop 1: the lowest */
  cr_assert_eq(weft_future_value_i64(fn), 3);
  cr_assert_eq(atomic_load(&dtors), 0);
  for (int i = 0; i < 7; i++)
    weft_future_unref(all[i]);
  cr_assert_eq(atomic_load(&dtors), 1); /* the pointer value, once */
  /* loop i asked loop i+1 and got its answer back on its own thread; the
   * nested answers may land after the broadcast settled: wait for them
   * with a stop (the drain runs what is queued first) */
  cr_assert_eq(weft_lgroup_stop(fx.g, 0), 0);
  cr_assert_eq(weft_lgroup_wait(fx.g, 20000), 0);
  cr_assert_eq(atomic_load(&nested_ok), 3);
  weft_future *late;
  cr_assert_eq(weft_lgroup_submit(fx.g, loop, 0, fn_index, &fx, &late),
               -ESHUTDOWN);
  cr_assert_eq(weft_lgroup_broadcast(fx.g, loop, fn_index, &fx, NULL, &late),
               -ESHUTDOWN);
  cr_assert_eq(weft_lgroup_free(fx.g), 0);
  th_loop_finish(loop);
  cr_assert_eq(atomic_load(&fx.wrong_thread), 0);
}

/* ---- bad input ----------------------------------------------------------- */

static int fn_nop(weft_lgroup *g, unsigned i, void *local, void *arg,
                  weft_lgroup_result *res) {
  (void)g, (void)i, (void)local, (void)arg, (void)res;
  return 0;
}

Test(loopgroup, bad_inputs, .timeout = 30) {
  fixture fx;
  weft_lgroup_options o = fx_options(&fx, 2);
  weft_lgroup *g = NULL;
  cr_assert_eq(weft_lgroup_new(NULL, &o), -EINVAL);
  cr_assert_eq(weft_lgroup_new(&g, NULL), -EINVAL);
  weft_lgroup_options big = o;
  big.loops = WEFT_LGROUP_MAX + 1;
  cr_assert_eq(weft_lgroup_new(&g, &big), -EINVAL);
  big = o;
  big.conn_size = 1;
  cr_assert_eq(weft_lgroup_new(&g, &big), -EINVAL);
  cr_assert_null(g);
  /* 0 loops: one per CPU this process may run on */
  weft_lgroup_options dflt = {0};
  cr_assert_eq(weft_lgroup_new(&g, &dflt), 0);
  cr_assert_eq(weft_lgroup_size(g), weft_lgroup_cpus());
  cr_assert_geq(weft_lgroup_cpus(), 1);
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(
      weft_lgroup_listen(g, (struct sockaddr *)&a, WEFT_LGROUP_HANDOFF, 0),
      -EINVAL); /* no on_conn */
  cr_assert_eq(weft_lgroup_free(g), 0);

  cr_assert_eq(weft_lgroup_new(&g, &o), 0);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  cr_assert_eq(weft_lgroup_getsockname(g, (struct sockaddr *)&ss, &len),
               -ENOTCONN);
  cr_assert_eq(weft_lgroup_getsockname(NULL, (struct sockaddr *)&ss, &len),
               -EINVAL);
  cr_assert_eq(
      weft_lgroup_listen(NULL, (struct sockaddr *)&a, WEFT_LGROUP_HANDOFF, 0),
      -EINVAL);
  cr_assert_eq(weft_lgroup_listen(g, NULL, WEFT_LGROUP_HANDOFF, 0), -EINVAL);
  cr_assert_eq(
      weft_lgroup_listen(g, (struct sockaddr *)&a, (weft_lgroup_dist)7, 0),
      -EINVAL);
  struct sockaddr bad = {.sa_family = AF_UNIX};
  cr_assert_eq(weft_lgroup_listen(g, &bad, WEFT_LGROUP_HANDOFF, 0), -EINVAL);
  cr_assert_eq(
      weft_lgroup_listen(g, (struct sockaddr *)&a, WEFT_LGROUP_REUSEPORT, 0),
      0);
  cr_assert_eq(
      weft_lgroup_listen(g, (struct sockaddr *)&a, WEFT_LGROUP_REUSEPORT, 0),
      -EALREADY);
  cr_assert_eq(weft_lgroup_getsockname(g, (struct sockaddr *)&ss, &len), 0);
  /* the port is taken (by a listener without SO_REUSEPORT elsewhere) */
  weft_lgroup *g2;
  cr_assert_eq(weft_lgroup_new(&g2, &o), 0);
  weft_lgroup_options one = o;
  (void)one;
  cr_assert_eq(
      weft_lgroup_listen(g2, (struct sockaddr *)&ss, WEFT_LGROUP_HANDOFF, 0),
      -EADDRINUSE);
  cr_assert_eq(weft_lgroup_free(g2), 0);
  cr_assert_eq(weft_lgroup_wait(g, 0), -EINVAL); /* never started */
  cr_assert_eq(weft_lgroup_wait(NULL, 0), -EINVAL);
  cr_assert_eq(weft_lgroup_start(NULL), -EINVAL);
  cr_assert_eq(weft_lgroup_stop(NULL, 0), -EINVAL);
  cr_assert_eq(weft_lgroup_free(NULL), -EINVAL);
  weft_lgroup_stats st;
  cr_assert_eq(weft_lgroup_get_stats(g, 2, &st), -EINVAL);
  cr_assert_eq(weft_lgroup_get_stats(g, 0, NULL), -EINVAL);
  cr_assert_eq(weft_lgroup_set_local(g, 2, NULL), -EINVAL);
  cr_assert_null(weft_lgroup_local(g, 2));
  cr_assert_null(weft_lgroup_loop(g, 2));
  cr_assert_null(weft_lgroup_loop(NULL, 0));
  cr_assert_eq(weft_lgroup_size(NULL), 0);
  cr_assert_eq(weft_lgroup_conn_close(NULL), -EINVAL);
  weft_loop *loop = th_loop();
  weft_future *f;
  cr_assert_eq(weft_lgroup_submit(g, loop, 2, fn_nop, NULL, &f), -EINVAL);
  cr_assert_eq(weft_lgroup_submit(NULL, loop, 0, fn_nop, NULL, &f), -EINVAL);
  cr_assert_eq(weft_lgroup_submit(g, NULL, 0, fn_nop, NULL, &f), -EINVAL);
  cr_assert_eq(weft_lgroup_submit(g, loop, 0, NULL, NULL, &f), -EINVAL);
  cr_assert_eq(weft_lgroup_submit(g, loop, 0, fn_nop, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_lgroup_broadcast(g, loop, NULL, NULL, NULL, &f), -EINVAL);
  cr_assert_eq(weft_lgroup_broadcast(NULL, loop, fn_nop, NULL, NULL, &f),
               -EINVAL);
  cr_assert_eq(weft_lgroup_start(g), 0);
  cr_assert_eq(
      weft_lgroup_listen(g, (struct sockaddr *)&a, WEFT_LGROUP_REUSEPORT, 0),
      -EINVAL); /* started */
  cr_assert_eq(weft_lgroup_free(g), -EBUSY);
  cr_assert_eq(weft_lgroup_wait(g, 0), -ETIMEDOUT);
  cr_assert_eq(weft_lgroup_stop(g, 0), 0);
  cr_assert_eq(weft_lgroup_wait(g, 20000), 0);
  cr_assert_eq(weft_lgroup_free(g), 0);
  th_loop_finish(loop);
}

/* ---- allocation failure -------------------------------------------------- */

static int sweep_status(weft_lgroup *g, weft_loop *loop, int err) {
  weft_future *f = NULL;
  int64_t res[2];
  if (err == 0) err = weft_lgroup_broadcast(g, loop, fn_nop, NULL, res, &f);
  if (err == 0) {
    th_run(loop);
    err = weft_future_error(f);
    weft_future_unref(f);
  }
  return err;
}

static int sweep_op(weft_loop *loop, void *arg) {
  (void)arg;
  weft_lgroup_options o = {.loops = 2, .on_conn = fx_conn};
  weft_lgroup *g;
  int err = weft_lgroup_new(&g, &o);
  if (err < 0) return err;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  err = weft_lgroup_listen(g, (struct sockaddr *)&a, WEFT_LGROUP_HANDOFF, 0);
  int serr = err == 0 ? weft_lgroup_start(g) : err;
  err = sweep_status(g, loop, serr);
  if (serr == 0 || serr == -EAGAIN) {
    weft_lgroup_stop(g, 0);
    cr_assert_eq(weft_lgroup_wait(g, 20000), 0);
  }
  cr_assert_eq(weft_lgroup_free(g), 0);
  return err;
}

Test(loopgroup, allocation_failure_at_each_site, .timeout = 120) {
  size_t failed = th_alloc_sweep(sweep_op, NULL);
  cr_assert_gt(failed, 0);
}
