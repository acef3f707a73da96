/* weft — servers and connections for fibers, asyncio's start_server and
 * open_connection (include/weft/fiber.h, "servers and connections"), and
 * the close that waits for the handle to be closed.
 *
 * A server is a listening weft_tcp and one fiber of its own, the acceptor,
 * which loops on weft_fiber_accept (then takes the connections queued
 * behind the one it awaited) and spawns a handler fiber per connection. The
 * acceptor alone frees the server (after the listener has fully closed), so
 * that nothing touches it afterwards: closing it only closes the listener,
 * whose pending accept then fails with -ECANCELED. */
#include <weft/dns.h>
#include <weft/fiber.h>

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/internal.h"
#include "../promises/fiber_internal.h"

/* asyncio waits this long before accepting again after an accept error */
#define ACCEPT_RETRY_MS 100
/* connections accepted after an await without another (fairness) */
#define ACCEPT_BATCH 64

/* ---- closing ------------------------------------------------------------ */

int weft_fiber_close(weft_handle *h) {
  if (!weft_in_fiber()) return -EPERM;
  int err = weft_close(h, NULL);
  if (err == 0) weft__fiber_wait_closed(h);
  return err;
}

/* ---- a client ----------------------------------------------------------- */

int weft_fiber_open_connection(weft_tcp *t, const char *host, unsigned port) {
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  if (t == NULL) return -EINVAL;
  int err = weft_tcp_init(weft_fiber_loop(self), t);
  if (err != 0) return err;
  weft_future *f;
  if ((err = weft_tcp_connect_host_future(t, host, port, &f)) == 0) {
    err = weft_await(f);
    if (err == -ECANCELED && weft_future_get_state(f) == WEFT_FUTURE_FULFILLED)
      err = 0, weft__fiber_recancel(self); /* connected: keep it */
    else if (err == -ECANCELED)
      weft_future_cancel(f); /* stops the lookup or connect */
    weft_future_unref(f);
  }
  if (err != 0) weft_fiber_close(&t->stream.base); /* host, port: -EINVAL */
  return err;
}

/* ---- a server ----------------------------------------------------------- */

struct weft_fiber_server {
  weft_tcp tcp; /* the listener */
  weft_fiber_conn_fn fn;
  void *arg;
  weft_fiber_options conn_opts;
  weft_future *done; /* fulfilled when the acceptor frees the server */
  int port;
};

typedef struct conn {
  weft_tcp tcp;
  weft_fiber_conn_fn fn;
  void *arg;
} conn;

static void free_conn(weft_handle *h) {
  weft__free(WEFT__CONTAINER_OF(h, conn, tcp.stream.base));
}

static int handle_conn(weft_fiber *self, void *arg) {
  conn *c = arg;
  int err = c->fn(self, &c->tcp.stream, c->arg);
  if (weft_close(&c->tcp.stream.base, free_conn) != 0) { /* fn closed it */
    weft__fiber_wait_closed(&c->tcp.stream.base);
    weft__free(c);
  }
  return err;
}

/* A handler fiber for `c`, which holds an accepted connection; on an
 * error the connection is closed and freed. */
static int start_conn(weft_fiber_server *srv, weft_loop *loop, conn *c) {
  (void)weft_tcp_nodelay(&c->tcp, true); /* asyncio's default */
  int err = weft_fiber_spawn(loop, handle_conn, c, &srv->conn_opts, NULL);
  if (err != 0) weft_close(&c->tcp.stream.base, free_conn);
  return err;
}

static int new_conn(weft_fiber_server *srv, weft_loop *loop, conn **out) {
  conn *c = *out = weft__malloc(sizeof *c);
  if (c == NULL) return -ENOMEM;
  c->fn = srv->fn, c->arg = srv->arg;
  int err = weft_tcp_init(loop, &c->tcp);
  if (err != 0) weft__free(c), *out = NULL;
  return err;
}

/* After an await gave one connection, the others already queued in the
 * kernel (up to ACCEPT_BATCH), without an await each: a burst of
 * connections is accepted in one turn, as a callback listener does. The
 * conn is made first, so no connection is taken that cannot be kept. Stops
 * at the first error (EAGAIN: none left); the next await reports it. */
static void accept_more(weft_fiber_server *srv, weft_loop *loop) {
  int lfd = weft_stream_fileno(&srv->tcp.stream), fd = -1;
  for (int i = 0; i < ACCEPT_BATCH && lfd >= 0; i++) {
    conn *c;
    if (new_conn(srv, loop, &c) != 0) return;
    do
      fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (fd < 0 || weft_tcp_open(&c->tcp, fd) != 0) {
      if (fd >= 0) close(fd);
      weft_close(&c->tcp.stream.base, free_conn);
      return;
    }
    if (start_conn(srv, loop, c) != 0) return;
  }
}

/* One connection: accepted into a new conn, then a handler fiber for it,
 * then those queued behind it. Returns 0, -ECANCELED (the listener closed)
 * or another error (the connection, if any, is closed). */
static int accept_one(weft_fiber_server *srv, weft_loop *loop) {
  conn *c;
  int err = new_conn(srv, loop, &c);
  if (err != 0) return err;
  err = weft_fiber_accept(&srv->tcp.stream, &c->tcp.stream);
  if (err != 0) {
    weft_close(&c->tcp.stream.base, free_conn);
    return err;
  }
  err = start_conn(srv, loop, c);
  if (err == 0) accept_more(srv, loop);
  return err;
}

static int acceptor(weft_fiber *self, void *arg) {
  weft_fiber_server *srv = arg;
  weft_loop *loop = weft_fiber_loop(self);
  while (!weft_is_closing(&srv->tcp.stream.base)) {
    int err = accept_one(srv, loop);
    if (weft_fiber_cancelled(self)) /* not by the server: stop it anyway */
      weft_close(&srv->tcp.stream.base, NULL);
    else if (err != 0 && err != -ECANCELED)
      (void)weft_fiber_sleep(ACCEPT_RETRY_MS);
  }
  weft__fiber_wait_closed(&srv->tcp.stream.base);
  weft_future_resolve_i64(srv->done, 0);
  weft_future_unref(srv->done);
  weft__free(srv);
  return 0;
}

/* Binds and listens srv->tcp (initialised) on host:port; sets srv->port. */
static int listen_on(weft_fiber_server *srv, const char *host, unsigned port,
                     int backlog) {
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  if (host == NULL) host = "0.0.0.0";
  int err = weft_ip4_addr(host, port, (struct sockaddr_in *)&a);
  if (err != 0) err = weft_ip6_addr(host, port, (struct sockaddr_in6 *)&a);
  if (err == 0) err = weft_tcp_bind(&srv->tcp, (struct sockaddr *)&a, 0);
  if (err == 0) err = weft_tcp_listen(&srv->tcp, backlog, NULL);
  if (err == 0)
    err = weft_tcp_getsockname(&srv->tcp, (struct sockaddr *)&a, &len);
  if (err == 0) srv->port = weft_sockaddr_port((struct sockaddr *)&a);
  return err;
}

int weft_fiber_start_server(const char *host, unsigned port,
                            weft_fiber_conn_fn fn, void *arg,
                            const weft_fiber_server_options *opts,
                            weft_fiber_server **out) {
  if (out != NULL) *out = NULL;
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  if (fn == NULL || out == NULL || port > 65535) return -EINVAL;
  if (opts != NULL && opts->stack_size > WEFT_FIBER_STACK_MAX) return -EINVAL;
  weft_loop *loop = weft_fiber_loop(self);
  weft_fiber_server *srv = weft__calloc(1, sizeof *srv);
  if (srv == NULL) return -ENOMEM;
  srv->fn = fn, srv->arg = arg;
  srv->conn_opts.stack_size = opts != NULL ? opts->stack_size : 0;
  int err = weft_future_new(loop, &srv->done);
  if (err == 0 && (err = weft_tcp_init(loop, &srv->tcp)) == 0) {
    err = listen_on(srv, host, port, opts != NULL ? opts->backlog : 0);
    if (err == 0) err = weft_fiber_spawn(loop, acceptor, srv, NULL, NULL);
    if (err != 0) weft_fiber_close(&srv->tcp.stream.base);
  }
  if (err != 0) {
    weft_future_unref(srv->done);
    weft__free(srv);
    return err;
  }
  *out = srv;
  return 0;
}

int weft_fiber_server_port(const weft_fiber_server *srv) {
  return srv != NULL ? srv->port : -EINVAL;
}

int weft_fiber_server_close(weft_fiber_server *srv) {
  if (srv == NULL) return -EINVAL;
  return weft_close(&srv->tcp.stream.base, NULL); /* the acceptor frees it */
}

int weft_fiber_serve_forever(weft_fiber_server *srv) {
  if (!weft_in_fiber()) return -EPERM;
  if (srv == NULL) return -EINVAL;
  weft_future *done = weft_future_ref(srv->done);
  int err = weft__await_shielded(done); /* a cancel must not settle done */
  if (err == -ECANCELED && weft_future_get_state(done) == WEFT_FUTURE_PENDING)
    weft_fiber_server_close(srv); /* still there: done is still pending */
  weft_future_unref(done);
  return err;
}
