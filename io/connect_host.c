/* weft — weft_tcp_connect_host: resolve a name, then connect to each
 * address in turn until one accepts.
 *
 * Built on the future forms of weft_getaddrinfo and weft_tcp_connect, so
 * that cancelling stops whichever step is in progress (the DNS query or
 * the connect). Each step's outcome arrives through weft_future_on_settled,
 * which is always deferred: the user's completion never runs inline.
 * Addresses are tried one after the other (no Happy Eyeballs racing), but
 * an attempt that has not connected within ATTEMPT_MS is abandoned while
 * other addresses remain, so that an address that drops SYNs (a broken
 * IPv6 route, a firewall) does not stall the connect for the kernel's
 * minutes-long timeout. The last address gets the kernel's timeout. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "weft/dns.h"
#include "weft/future.h"

#define ATTEMPT_MS 1000u

typedef struct connect_host {
  weft_tcp *t;
  weft_connect_host_cb cb; /* callback form */
  void *arg;
  weft_future *out;  /* future form: the producer's reference */
  weft_future *dns;  /* the lookup; owns the address list */
  weft_future *conn; /* the connect in progress */
  weft_future *step; /* conn, or its ATTEMPT_MS timeout */
  const weft_addrinfo *cur;
  int last_err;
  bool cancelled; /* `out` was cancelled: just clean up */
} connect_host;

static void drop_attempt(connect_host *c) {
  weft_future_unref(c->step);
  weft_future_unref(c->conn);
  c->step = c->conn = NULL;
}

static void release(connect_host *c) {
  drop_attempt(c);
  weft_future_unref(c->dns);
  weft__free(c);
}

static void finish(connect_host *c, int status) {
  if (c->cb != NULL) {
    c->cb(c->t, status, c->arg);
  } else {
    if (status == 0)
      weft_future_resolve_i64(c->out, 0);
    else
      weft_future_reject(c->out, status);
    weft_future_unref(c->out);
  }
  release(c);
}

static void on_connected(weft_future *f, void *arg);

/* Connects to c->cur, with a timeout when other addresses remain.
 * 0, -ENOMEM, or the connect's immediate error. */
static int start_attempt(connect_host *c) {
  int err = weft_tcp_connect_future(c->t, c->cur->addr, &c->conn);
  if (err != 0) return err;
  weft_future *timed;
  if (c->cur->next != NULL &&
      weft_future_timeout(c->conn, ATTEMPT_MS, &timed) == 0)
    c->step = timed;
  else
    c->step = weft_future_ref(c->conn); /* (no timeout without memory) */
  if (weft_future_on_settled(c->step, on_connected, c) == 0) return 0;
  weft_future_cancel(c->conn); /* aborts the connect */
  drop_attempt(c);
  return -ENOMEM;
}

/* Starts a connect to the next address that takes one. */
static void try_next(connect_host *c) {
  for (; c->cur != NULL; c->cur = c->cur->next) {
    if (weft_is_closing(&c->t->stream.base)) {
      finish(c, -ECANCELED);
      return;
    }
    int err = start_attempt(c);
    if (err == 0) return;
    if (err == -ENOMEM) {
      finish(c, err);
      return;
    }
    c->last_err = err;
  }
  finish(c, c->last_err);
}

static void on_connected(weft_future *f, void *arg) {
  connect_host *c = arg;
  int err = weft_future_error(f);
  if (err == -ETIMEDOUT &&
      weft_future_get_state(c->conn) == WEFT_FUTURE_FULFILLED)
    err = 0; /* connected just as the attempt timed out */
  /* after a timeout the connect may still be pending: abort it, so that
   * the handle is back to its initial state for the next address */
  weft_future_cancel(c->conn);
  drop_attempt(c);
  if (c->cancelled) {
    release(c);
  } else if (err == 0 || err == -ECANCELED) { /* ECANCELED: t was closed */
    finish(c, err);
  } else {
    c->last_err = err;
    c->cur = c->cur->next;
    try_next(c);
  }
}

static void on_resolved(weft_future *f, void *arg) {
  connect_host *c = arg;
  int err = weft_future_error(f);
  if (c->cancelled) {
    release(c);
  } else if (err != 0) {
    finish(c, err);
  } else {
    c->cur = weft_future_value(f);
    c->last_err = -ECONNREFUSED;
    try_next(c);
  }
}

static void on_cancel(weft_future *f, void *arg) {
  connect_host *c = arg;
  c->cancelled = true;
  /* the step's on_settled callback still runs and frees c */
  if (c->step != NULL) {
    weft_future_cancel(c->step);
    weft_future_cancel(c->conn);
  } else {
    weft_future_cancel(c->dns);
  }
  weft_future_unref(f); /* the producer's reference */
}

static int start(weft_tcp *t, const char *host, unsigned port,
                 connect_host **out) {
  if (t == NULL || host == NULL || port > 65535 ||
      !weft__handle_usable(&t->stream.base))
    return -EINVAL;
  char service[8];
  snprintf(service, sizeof service, "%u", port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  connect_host *c = weft__calloc(1, sizeof *c);
  if (c == NULL) return -ENOMEM;
  c->t = t;
  weft_loop *loop = t->stream.base.loop;
  int err = weft_getaddrinfo_future(loop, host, service, &hints, &c->dns);
  if (err == 0 && (err = weft_future_on_settled(c->dns, on_resolved, c)) != 0)
    weft_future_cancel(c->dns); /* nobody would see the answer */
  if (err != 0) {
    release(c);
    return err;
  }
  *out = c;
  return 0;
}

int weft_tcp_connect_host(weft_tcp *t, const char *host, unsigned port,
                          weft_connect_host_cb cb, void *arg) {
  if (cb == NULL) return -EINVAL;
  connect_host *c;
  int err = start(t, host, port, &c);
  if (err != 0) return err;
  c->cb = cb;
  c->arg = arg;
  return 0;
}

int weft_tcp_connect_host_future(weft_tcp *t, const char *host, unsigned port,
                                 weft_future **out) {
  if (out == NULL || t == NULL) return -EINVAL;
  weft_future *f;
  int err = weft_future_new_op(t->stream.base.loop,
                               "weft_tcp_connect_host_future", &f);
  if (err != 0) return err;
  connect_host *c;
  if ((err = start(t, host, port, &c)) != 0) {
    weft_future_unref(f);
    return err;
  }
  if ((err = weft_future_on_cancel(f, on_cancel, c)) != 0) {
    /* on_resolved will still run: make it a quiet cleanup */
    c->cancelled = true;
    weft_future_cancel(c->dns);
    weft_future_unref(f);
    return err;
  }
  c->out = weft_future_ref(f);
  *out = f;
  return 0;
}
