/* Poll handles: readiness of a caller's fd (weft/poll.h). */
#include "support/test.h"

#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void nonblock(int fd) {
  cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static void spair(int sv[2]) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

/* ---- the persistent callback ------------------------------------------ */

typedef struct counter {
  int calls, last_status, last_events, stop_at;
  int seen_r, seen_w;
} counter;

static void count_cb(weft_poll *p, int status, int events, void *arg) {
  counter *c = arg;
  c->calls++;
  c->last_status = status;
  c->last_events = events;
  if (events & WEFT_POLL_READABLE) c->seen_r++;
  if (events & WEFT_POLL_WRITABLE) c->seen_w++;
  if (c->calls == c->stop_at) weft_poll_stop(p);
}

Test(poll, writable_then_readable_on_a_socketpair_with_a_mask_change,
     .timeout = 5) {
  weft_loop *loop = th_loop();
  int sv[2];
  spair(sv);
  weft_poll p;
  counter c = {.stop_at = 1};
  cr_assert_eq(weft_poll_init(loop, &p, sv[0]), 0);
  cr_assert_eq(weft_poll_get_fd(&p), sv[0]);
  cr_assert(!weft_is_active(&p.base));
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_WRITABLE, count_cb, &c), 0);
  cr_assert(weft_is_active(&p.base));
  th_run(loop); /* a fresh socket is writable; the callback stops it */
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.last_status, 0, "%s", weft_err_name(c.last_status));
  cr_assert_eq(c.last_events, WEFT_POLL_WRITABLE);
  /* both, with nothing to read: only writable is reported */
  c = (counter){.stop_at = 1};
  weft_poll_start(&p, WEFT_POLL_READABLE | WEFT_POLL_WRITABLE, count_cb, &c);
  th_run(loop);
  cr_assert_eq(c.last_events, WEFT_POLL_WRITABLE);
  /* readable only, changed while started: nothing until the peer writes */
  c = (counter){.stop_at = 1};
  weft_poll_start(&p, WEFT_POLL_WRITABLE, count_cb, &c);
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_READABLE, count_cb, &c), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(c.calls, 0, "the new mask applies to the next poll");
  cr_assert_eq(write(sv[1], "hi", 2), 2);
  th_run(loop);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.last_events, WEFT_POLL_READABLE);
  /* level-triggered: unread data reports again, every turn */
  c = (counter){.stop_at = 3};
  weft_poll_start(&p, WEFT_POLL_READABLE, count_cb, &c);
  th_run(loop);
  cr_assert_eq(c.calls, 3);
  cr_assert_eq(c.seen_r, 3);
  weft_close(&p.base, NULL);
  close(sv[0]);
  close(sv[1]);
  th_loop_finish(loop);
}

/* ---- a libpq-like client and a server, both on raw non-blocking fds --- */

typedef struct proto {
  weft_loop *loop;
  int lfd, srv, cli;
  weft_poll lpoll, spoll, cpoll;
  char sbuf[16], cbuf[16];
  size_t slen, clen;
  int accepts, server_reads, step, disconnect_mask;
  weft_future *f;
} proto;

/* server: accept one connection, read "PING\n", answer "PONG\n", close */
static void server_conn(weft_poll *p, int status, int events, void *arg) {
  proto *x = arg;
  cr_assert_eq(status, 0, "%s", weft_err_name(status));
  cr_assert_eq(events, WEFT_POLL_READABLE);
  ssize_t n = read(x->srv, x->sbuf + x->slen, sizeof x->sbuf - x->slen);
  cr_assert_gt(n, 0);
  x->server_reads++;
  x->slen += (size_t)n;
  if (x->slen < 5) return;
  cr_assert_eq(memcmp(x->sbuf, "PING\n", 5), 0);
  cr_assert_eq(write(x->srv, "PONG\n", 5), 5);
  weft_close(&p->base, NULL); /* before the fd */
  close(x->srv);
}

static void server_accept(weft_poll *p, int status, int events, void *arg) {
  proto *x = arg;
  cr_assert_eq(status, 0, "%s", weft_err_name(status));
  cr_assert_eq(events, WEFT_POLL_READABLE);
  x->srv = accept4(x->lfd, NULL, NULL, SOCK_NONBLOCK);
  cr_assert_geq(x->srv, 0);
  x->accepts++;
  weft_poll_stop(p);
  cr_assert_eq(weft_poll_init(x->loop, &x->spoll, x->srv), 0);
  weft_poll_start(&x->spoll, WEFT_POLL_READABLE, server_conn, x);
}

/* client: connect in progress -> writable -> SO_ERROR -> send -> readable
 * -> read the answer -> readable+disconnect at the server's close */
static void client_step(weft_future *f, void *arg) {
  proto *x = arg;
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  int64_t ready = weft_future_value_i64(f);
  weft_future_unref(x->f);
  x->f = NULL;
  int err = 0;
  socklen_t len = sizeof err;
  switch (x->step++) {
  case 0: /* the connect finished */
    cr_assert_eq(ready, WEFT_POLL_WRITABLE);
    cr_assert_eq(getsockopt(x->cli, SOL_SOCKET, SO_ERROR, &err, &len), 0);
    cr_assert_eq(err, 0, "connect: %s", strerror(err));
    cr_assert_eq(write(x->cli, "PI", 2), 2); /* in two pieces */
    cr_assert_eq(write(x->cli, "NG\n", 3), 3);
    cr_assert_eq(weft_poll_init(x->loop, &x->cpoll, x->cli), 0);
    cr_assert_eq(weft_poll_future(&x->cpoll, WEFT_POLL_READABLE, &x->f), 0);
    break;
  case 1: { /* the answer (maybe in pieces: wait again until whole) */
    cr_assert_eq(ready, WEFT_POLL_READABLE);
    ssize_t n = read(x->cli, x->cbuf + x->clen, 5 - x->clen);
    cr_assert_gt(n, 0);
    x->clen += (size_t)n;
    if (x->clen < 5) x->step--;
    weft_poll_future(&x->cpoll,
                     x->clen < 5 ? WEFT_POLL_READABLE
                                 : WEFT_POLL_READABLE | WEFT_POLL_DISCONNECT,
                     &x->f);
    break;
  }
  default: /* the server closed */
    x->disconnect_mask = (int)ready;
    cr_assert_eq(read(x->cli, x->cbuf, sizeof x->cbuf), 0, "EOF");
    weft_close(&x->cpoll.base, NULL);
    close(x->cli);
    return;
  }
  cr_assert_not_null(x->f);
  cr_assert_eq(weft_future_on_settled(x->f, client_step, x), 0);
}

Test(poll, a_connect_in_progress_drives_a_ping_pong_protocol, .timeout = 10) {
  static proto x;
  memset(&x, 0, sizeof x);
  weft_loop *loop = x.loop = th_loop();
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t slen = sizeof sa;
  x.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  cr_assert_geq(x.lfd, 0);
  cr_assert_eq(bind(x.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  cr_assert_eq(listen(x.lfd, 4), 0);
  cr_assert_eq(getsockname(x.lfd, (struct sockaddr *)&sa, &slen), 0);
  cr_assert_neq(sa.sin_port, 0);
  cr_assert_eq(weft_poll_init(loop, &x.lpoll, x.lfd), 0);
  weft_poll_start(&x.lpoll, WEFT_POLL_READABLE, server_accept, &x);

  x.cli = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int rc = connect(x.cli, (struct sockaddr *)&sa, sizeof sa);
  cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
  cr_assert_eq(weft_poll_fd_future(loop, x.cli, WEFT_POLL_WRITABLE, &x.f), 0);
  cr_assert_eq(weft_future_on_settled(x.f, client_step, &x), 0);
  th_run(loop);
  cr_assert_eq(x.accepts, 1);
  cr_assert_geq(x.server_reads, 1);
  cr_assert_eq(memcmp(x.cbuf, "PONG\n", 5), 0);
  cr_assert_eq(x.disconnect_mask, WEFT_POLL_READABLE | WEFT_POLL_DISCONNECT);
  cr_assert_null(x.f);
  weft_close(&x.lpoll.base, NULL);
  close(x.lfd);
  th_loop_finish(loop);
}

/* ---- what is reported on hang-up -------------------------------------- */

Test(poll, disconnect_is_told_apart_only_when_asked_for, .timeout = 5) {
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  nonblock(fds[0]);
  weft_poll p, q;
  counter c = {.stop_at = 1}, d = {.stop_at = 1};
  weft_poll_init(loop, &p, fds[0]);
  weft_poll_init(loop, &q, fds[0]);
  weft_poll_start(&p, WEFT_POLL_READABLE | WEFT_POLL_DISCONNECT, count_cb, &c);
  weft_poll_start(&q, WEFT_POLL_READABLE, count_cb, &d);
  /* data, no hang-up: readable alone */
  cr_assert_eq(write(fds[1], "x", 1), 1);
  th_run(loop);
  cr_assert_eq(c.last_events, WEFT_POLL_READABLE);
  cr_assert_eq(d.last_events, WEFT_POLL_READABLE);
  /* the writer closes: a hang-up wakes both as readable; only p asked */
  close(fds[1]);
  c = d = (counter){.stop_at = 1};
  weft_poll_start(&p, WEFT_POLL_READABLE | WEFT_POLL_DISCONNECT, count_cb, &c);
  weft_poll_start(&q, WEFT_POLL_READABLE, count_cb, &d);
  th_run(loop);
  cr_assert_eq(c.last_events, WEFT_POLL_READABLE | WEFT_POLL_DISCONNECT);
  cr_assert_eq(d.last_events, WEFT_POLL_READABLE);
  weft_close(&p.base, NULL);
  weft_close(&q.base, NULL);
  th_run(loop); /* closed, before p is reused */
  close(fds[0]);

  /* a socket whose peer shut its writing side: POLLRDHUP */
  int sv[2];
  spair(sv);
  cr_assert_eq(shutdown(sv[1], SHUT_WR), 0);
  c = (counter){.stop_at = 1};
  weft_poll_init(loop, &p, sv[0]);
  weft_poll_start(&p, WEFT_POLL_WRITABLE | WEFT_POLL_DISCONNECT, count_cb, &c);
  th_run(loop);
  cr_assert_eq(c.last_events, WEFT_POLL_WRITABLE | WEFT_POLL_DISCONNECT);
  weft_close(&p.base, NULL);
  close(sv[0]);
  close(sv[1]);
  th_loop_finish(loop);
}

/* ---- the same fd twice, a callback and a future together --------------- */

static void record_future(weft_future *f, void *arg) {
  int *out = arg;
  *out = weft_future_get_state(f) == WEFT_FUTURE_FULFILLED
             ? (int)weft_future_value_i64(f)
             : weft_future_error(f);
}

Test(poll, the_same_fd_watched_twice_and_by_a_future_all_see_it, .timeout = 5) {
  weft_loop *loop = th_loop();
  int sv[2];
  spair(sv);
  weft_poll a, b;
  counter ca = {.stop_at = 1}, cb = {.stop_at = 1};
  weft_poll_init(loop, &a, sv[0]);
  weft_poll_init(loop, &b, sv[0]);
  weft_poll_start(&a, WEFT_POLL_READABLE, count_cb, &ca);
  weft_poll_start(&b, WEFT_POLL_READABLE, count_cb, &cb);
  weft_future *f1, *f2;
  int r1 = 0, r2 = 0;
  cr_assert_eq(weft_poll_future(&a, WEFT_POLL_READABLE, &f1), 0);
  cr_assert_eq(weft_poll_fd_future(
                   loop, sv[0], WEFT_POLL_READABLE | WEFT_POLL_WRITABLE, &f2),
               0);
  weft_future_on_settled(f1, record_future, &r1);
  weft_future_on_settled(f2, record_future, &r2);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(r1, 0, "pending: nothing to read yet");
  cr_assert_eq(r2, WEFT_POLL_WRITABLE, "writable at once");
  cr_assert_eq(ca.calls + cb.calls, 0);
  cr_assert_eq(write(sv[1], "x", 1), 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 0);
  cr_assert_eq(ca.calls, 1);
  cr_assert_eq(cb.calls, 1);
  cr_assert_eq(r1, WEFT_POLL_READABLE, "the future saw the same readiness");
  cr_assert(!weft_is_active(&a.base));
  weft_future_unref(f1);
  weft_future_unref(f2);
  weft_close(&a.base, NULL);
  weft_close(&b.base, NULL);
  close(sv[0]);
  close(sv[1]);
  th_loop_finish(loop);
}

/* ---- an fd closed while watched --------------------------------------- */

/* Closing an fd that epoll already holds drops it from the poll set without
 * a word: nothing is reported, and stopping afterwards is safe. (Closing it
 * before libev registered it makes libev's own assertion abort the process:
 * not tested, documented in weft/poll.h.) */
Test(poll, an_fd_closed_while_watched_goes_quiet_and_can_be_stopped,
     .timeout = 5) {
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  weft_poll p;
  counter c = {0};
  weft_poll_init(loop, &p, fds[0]);
  weft_poll_start(&p, WEFT_POLL_READABLE, count_cb, &c);
  weft_future *f;
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_READABLE, &f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1); /* registered */
  cr_assert_eq(write(fds[1], "x", 1), 1);
  close(fds[0]); /* wrong, but it happens */
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(c.calls, 0, "epoll forgot the fd");
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  /* restarting on the closed fd is refused, and changes nothing */
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_WRITABLE, count_cb, &c), -EBADF);
  weft_future *g = NULL;
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_READABLE, &g), -EBADF);
  cr_assert_null(g);
  cr_assert(weft_is_active(&p.base));
  cr_assert_eq(weft_poll_stop(&p), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  weft_close(&p.base, NULL);
  close(fds[1]);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* When libev finds a bad fd (a build without assertions, or the select and
 * poll backends) it stops the fd's watchers and feeds them EV_ERROR (its
 * fd_kill); done here by hand on the handle's watcher. */
Test(poll, libev_ev_error_is_reported_as_ebadf_and_stops_the_poll,
     .timeout = 5) {
  weft_loop *loop = th_loop();
  int sv[2];
  spair(sv);
  weft_poll p;
  counter c = {0};
  weft_poll_init(loop, &p, sv[0]);
  weft_poll_start(&p, WEFT_POLL_READABLE, count_cb, &c);
  cr_assert(weft_loop_alive(loop));
  struct ev_loop *ev = weft_loop_ev(loop);
  ev_io *w = (ev_io *)(void *)&p.watcher; /* private: libev's view */
  ev_ref(ev); /* what WEFT__EV_STOP does before stopping: balanced below */
  ev_io_stop(ev, w);
  ev_unref(ev); /* fd_kill stops without it: the count weft must repair */
  ev_feed_event(ev, w, EV_ERROR | EV_READ | EV_WRITE);
  th_run(loop);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.last_status, -EBADF, "%s", weft_err_name(c.last_status));
  cr_assert_eq(c.last_events, 0);
  cr_assert(!weft_is_active(&p.base), "stopped by the error");
  cr_assert(!weft_loop_alive(loop));
  /* the fd is fine, so it can start again */
  c = (counter){.stop_at = 1};
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_WRITABLE, count_cb, &c), 0);
  th_run(loop);
  cr_assert_eq(c.last_events, WEFT_POLL_WRITABLE);
  weft_close(&p.base, NULL);
  th_loop_usable(loop);
  close(sv[0]);
  close(sv[1]);
  th_loop_finish(loop);
}

/* ---- close, cancel, ref ------------------------------------------------ */

typedef struct closing {
  weft_future *f;
  int state_at_close;
  int closed;
} closing;

static void on_poll_closed(weft_handle *h) {
  closing *x = h->data;
  x->closed++;
  x->state_at_close = weft_future_error(x->f);
}

Test(poll, close_rejects_pending_futures_before_the_close_callback,
     .timeout = 5) {
  weft_loop *loop = th_loop();
  int sv[2];
  spair(sv);
  weft_poll p;
  closing x = {0};
  p.base.data = &x;
  weft_poll_init(loop, &p, sv[0]);
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_READABLE, &x.f), 0);
  cr_assert(weft_loop_alive(loop), "a pending future keeps the loop alive");
  cr_assert_eq(weft_close(&p.base, on_poll_closed), 0);
  cr_assert_eq(weft_future_get_state(x.f), WEFT_FUTURE_PENDING, "not inline");
  cr_assert_eq(write(sv[1], "x", 1), 1); /* too late: the watcher stopped */
  th_run(loop);
  cr_assert_eq(x.closed, 1);
  cr_assert_eq(x.state_at_close, -ECANCELED, "%s",
               weft_err_name(x.state_at_close));
  cr_assert_eq(weft_future_get_state(x.f), WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_READABLE, &x.f), -EINVAL);
  weft_future_unref(x.f);
  close(sv[0]);
  close(sv[1]);
  th_loop_finish(loop);
}

Test(poll, cancelling_a_future_stops_its_watcher, .timeout = 5) {
  weft_loop *loop = th_loop();
  int sv[2];
  spair(sv);
  weft_poll p;
  weft_poll_init(loop, &p, sv[0]);
  weft_future *f, *g;
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_READABLE, &f), 0);
  cr_assert_eq(weft_poll_fd_future(loop, sv[0], WEFT_POLL_READABLE, &g), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_cancel(g), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  cr_assert(!weft_loop_alive(loop), "nothing pending any more");
  cr_assert_eq(write(sv[1], "x", 1), 1);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_CANCELLED);
  weft_future_unref(f);
  weft_future_unref(g);
  /* a future outliving the handle's close settles there, cancelled or not */
  weft_close(&p.base, NULL);
  close(sv[0]);
  close(sv[1]);
  th_loop_finish(loop);
}

static void walk_count(weft_handle *h, void *arg) {
  if (weft_handle_get_type(h) == WEFT_HANDLE_POLL) ++*(int *)arg;
}

Test(poll, unreferenced_polls_do_not_keep_the_loop_alive, .timeout = 5) {
  weft_loop *loop = th_loop();
  int sv[2];
  spair(sv);
  weft_poll p;
  counter c = {0};
  weft_poll_init(loop, &p, sv[0]);
  cr_assert_eq(weft_handle_get_type(&p.base), WEFT_HANDLE_POLL);
  weft_unref(&p.base);
  weft_poll_start(&p, WEFT_POLL_READABLE, count_cb, &c);
  cr_assert(!weft_loop_alive(loop));
  th_run(loop); /* returns at once */
  weft_ref(&p.base);
  cr_assert(weft_loop_alive(loop));
  int n = 0;
  weft_walk(loop, walk_count, &n);
  cr_assert_eq(n, 1);
  weft_poll_stop(&p);
  cr_assert(!weft_loop_alive(loop));
  cr_assert_eq(c.calls, 0);
  th_loop_finish(loop); /* closes it */
  close(sv[0]);
  close(sv[1]);
}

Test(poll, a_regular_file_is_always_ready, .timeout = 5) {
  weft_loop *loop = th_loop();
  char path[] = "/tmp/weft-poll-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  unlink(path);
  weft_poll p;
  counter c = {.stop_at = 2};
  weft_poll_init(loop, &p, fd);
  weft_poll_start(&p, WEFT_POLL_READABLE | WEFT_POLL_WRITABLE, count_cb, &c);
  th_run(loop);
  cr_assert_eq(c.calls, 2);
  cr_assert_eq(c.last_events, WEFT_POLL_READABLE | WEFT_POLL_WRITABLE);
  weft_close(&p.base, NULL);
  close(fd);
  th_loop_finish(loop);
}

/* ---- bad input -------------------------------------------------------- */

Test(poll, bad_input_is_rejected, .timeout = 5) {
  weft_loop *loop = th_loop();
  int sv[2];
  spair(sv);
  weft_poll p;
  counter c = {0};
  weft_future *f = NULL;
  cr_assert_eq(weft_poll_init(NULL, &p, sv[0]), -EINVAL);
  cr_assert_eq(weft_poll_init(loop, NULL, sv[0]), -EINVAL);
  cr_assert_eq(weft_poll_init(loop, &p, -1), -EBADF);
  int dead = dup(sv[0]);
  close(dead);
  cr_assert_eq(weft_poll_init(loop, &p, dead), -EBADF, "a closed fd");
  cr_assert_eq(weft_poll_start(NULL, WEFT_POLL_READABLE, count_cb, &c),
               -EINVAL);
  cr_assert_eq(weft_poll_stop(NULL), -EINVAL);
  cr_assert_eq(weft_poll_get_fd(NULL), -EINVAL);
  cr_assert_eq(weft_poll_future(NULL, WEFT_POLL_READABLE, &f), -EINVAL);
  cr_assert_eq(weft_poll_init(loop, &p, sv[0]), 0);
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_READABLE, NULL, &c), -EINVAL);
  cr_assert_eq(weft_poll_start(&p, 0, count_cb, &c), -EINVAL);
  cr_assert_eq(weft_poll_start(&p, 8, count_cb, &c), -EINVAL, "unknown bit");
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_DISCONNECT, count_cb, &c), -EINVAL,
               "disconnect alone");
  cr_assert(!weft_is_active(&p.base), "failed starts changed nothing");
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_READABLE, NULL), -EINVAL);
  cr_assert_eq(weft_poll_future(&p, 0, &f), -EINVAL);
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_DISCONNECT, &f), -EINVAL);
  cr_assert_eq(weft_poll_fd_future(NULL, sv[0], WEFT_POLL_READABLE, &f),
               -EINVAL);
  cr_assert_eq(weft_poll_fd_future(loop, sv[0], WEFT_POLL_READABLE, NULL),
               -EINVAL);
  cr_assert_eq(weft_poll_fd_future(loop, sv[0], 16, &f), -EINVAL);
  cr_assert_eq(weft_poll_fd_future(loop, -1, WEFT_POLL_READABLE, &f), -EBADF);
  cr_assert_eq(weft_poll_fd_future(loop, dead, WEFT_POLL_READABLE, &f), -EBADF);
  cr_assert_null(f, "untouched on error");
  /* a handle of another type */
  weft_timer t;
  weft_timer_init(loop, &t);
  cr_assert_eq(weft_poll_start((weft_poll *)(void *)&t, WEFT_POLL_READABLE,
                               count_cb, &c),
               -EINVAL);
  cr_assert_eq(weft_poll_stop((weft_poll *)(void *)&t), -EINVAL);
  /* a failed -EBADF start leaves a started handle as it was */
  int fd2 = dup(sv[0]);
  weft_poll q;
  weft_poll_init(loop, &q, fd2);
  weft_poll_start(&q, WEFT_POLL_WRITABLE, count_cb, &c);
  close(fd2);
  cr_assert_eq(weft_poll_start(&q, WEFT_POLL_READABLE, count_cb, &c), -EBADF);
  cr_assert(weft_is_active(&q.base));
  weft_poll_stop(&q);
  weft_close(&q.base, NULL);
  /* closed */
  cr_assert_eq(weft_close(&p.base, NULL), 0);
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_READABLE, count_cb, &c), -EINVAL);
  cr_assert_eq(weft_poll_future(&p, WEFT_POLL_READABLE, &f), -EINVAL);
  cr_assert_eq(weft_poll_stop(&p), 0);
  cr_assert_eq(weft_close(&p.base, NULL), -EALREADY);
  th_run(loop);
  cr_assert_eq(c.calls, 0);
  th_loop_usable(loop);
  close(sv[0]);
  close(sv[1]);
  th_loop_finish(loop);
}

/* ---- allocation failure at each site ---------------------------------- */

static int sweep_future(weft_loop *loop, void *arg) {
  bool handle = *(bool *)arg;
  int sv[2];
  spair(sv);
  weft_poll p;
  weft_poll_init(loop, &p, sv[0]);
  weft_future *f = NULL;
  int err = handle ? weft_poll_future(&p, WEFT_POLL_READABLE, &f)
                   : weft_poll_fd_future(loop, sv[0], WEFT_POLL_READABLE, &f);
  if (err == 0) {
    cr_assert_eq(write(sv[1], "x", 1), 1);
    th_run(loop);
    cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
    cr_assert_eq(weft_future_value_i64(f), WEFT_POLL_READABLE);
    weft_future_unref(f);
  } else {
    cr_assert_null(f);
  }
  weft_close(&p.base, NULL);
  th_run(loop);
  close(sv[0]);
  close(sv[1]);
  return err;
}

Test(poll, allocation_failure_at_each_site_is_clean, .timeout = 20) {
  bool handle = true;
  th_sweep s = {.op = sweep_future, .arg = &handle, .strict = true};
  cr_assert_geq(th_alloc_sweep_run(&s), 1);
  handle = false;
  cr_assert_geq(th_alloc_sweep_run(&s), 1);
}

Test(poll, the_handle_itself_never_allocates, .timeout = 5) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  size_t before = th_alloc_calls();
  th_alloc_arm(1);
  int sv[2];
  spair(sv);
  weft_poll p;
  counter c = {.stop_at = 1};
  cr_assert_eq(weft_poll_init(loop, &p, sv[0]), 0);
  cr_assert_eq(weft_poll_start(&p, WEFT_POLL_WRITABLE, count_cb, &c), 0);
  th_run(loop);
  cr_assert_eq(c.calls, 1);
  weft_close(&p.base, NULL);
  th_run(loop);
  cr_assert_eq(th_alloc_calls(), before);
  th_alloc_arm(0);
  th_loop_finish(loop);
  th_alloc_restore();
  close(sv[0]);
  close(sv[1]);
}

/* ---- another thread writes, the loop reads ---------------------------- */

#define MSGS 200

typedef struct xthread {
  int fds[2];
  int got;
} xthread;

static void *writer(void *arg) {
  xthread *x = arg;
  for (int i = 0; i < MSGS; i++) {
    char b = (char)i;
    while (write(x->fds[1], &b, 1) != 1) {
    }
  }
  return NULL;
}

static void drain(weft_poll *p, int status, int events, void *arg) {
  xthread *x = arg;
  cr_assert_eq(status, 0, "%s", weft_err_name(status));
  cr_assert(events & WEFT_POLL_READABLE);
  char buf[64];
  ssize_t n;
  while ((n = read(x->fds[0], buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; i++)
      cr_assert_eq(buf[i], (char)x->got++, "in order");
  if (x->got == MSGS) weft_poll_stop(p);
}

Test(poll, bytes_written_by_another_thread_wake_the_loop, .timeout = 10) {
  weft_loop *loop = th_loop();
  static xthread x;
  memset(&x, 0, sizeof x);
  cr_assert_eq(pipe(x.fds), 0);
  nonblock(x.fds[0]);
  weft_poll p;
  weft_poll_init(loop, &p, x.fds[0]);
  weft_poll_start(&p, WEFT_POLL_READABLE, drain, &x);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, writer, &x), 0);
  th_run(loop);
  pthread_join(th, NULL);
  cr_assert_eq(x.got, MSGS);
  weft_close(&p.base, NULL);
  close(x.fds[0]);
  close(x.fds[1]);
  th_loop_finish(loop);
}
