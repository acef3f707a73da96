/* weft — asynchronous DNS through c-ares: channels per loop.
 *
 * The DNS channel (lookups "b") is created on first use; forward lookups
 * first go through weft's own hosts-file table (io/dns_hosts.c), so that
 * c-ares never re-reads the file for them. A second channel (lookups "fb",
 * c-ares reading the file itself) opens on first need for what the table
 * does not cover: reverse lookups, and forward ones when the file is over
 * the table's caps or HOSTALIASES applies. c-ares tells us which sockets it
 * wants watched through its socket-state callback: each becomes an ev_io.
 * Its retransmission deadlines become one weft timer re-armed from
 * ares_timeout() after every call into c-ares (a weft timer, so that hosts
 * embedding the loop see it in weft_loop_backend_timeout()).
 *
 * A query has up to two owners: c-ares (until its callback, which it
 * always makes exactly once, also on ares_destroy) and a queued deferred
 * delivery. c-ares 1.18 cannot cancel one query, so a cancelled query is
 * completed at once with -ECANCELED and the late c-ares callback is
 * ignored; the query is freed when both owners are done. c-ares may also
 * call back from inside the start call (/etc/hosts, numeric getnameinfo),
 * and weft answers numeric hosts itself (io/weft__dns_query.c) the same way:
 * such an answer is delivered through weft_call_soon(), never inline. */
#include <ares.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/internal.h"
#include "io/dns_internal.h"

#define DEFAULT_TIMEOUT_MS 2000
#define DEFAULT_TRIES 3
#define SPARE_SOCKS 4 /* recycled watchers: a query often opens one socket */

typedef struct weft__dns_sock {
  weft__list node;
  ev_io io;
  weft__dns_state *st;
  weft__dns_chan *chan; /* the channel that opened the socket */
} weft__dns_sock;

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_global_init(void) {
  ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

int weft__dns_status(int ares_status) {
  switch (ares_status) {
  case ARES_SUCCESS:
    return 0;
  case ARES_ENOMEM:
    return -ENOMEM;
  case ARES_ECANCELLED:
    return -ECANCELED;
  case ARES_ESERVICE:
    return WEFT_EDNS_NONAME; /* unknown service name */
  default:
    return WEFT__DNS_BASE - ares_status;
  }
}

int weft__dns_answer_status(const weft__dns_state *st, int ares_status) {
  if (ares_status == ARES_ECONNREFUSED && st->sock_errno != 0)
    return -st->sock_errno;
  return weft__dns_status(ares_status);
}

/* ---- the deadline timer
 * ------------------------------------------------------ */

/* The timer is a handle, and an open handle keeps weft_loop_free() at
 * -EBUSY: so it is unreferenced, open only while some query waits for its
 * answer, and closed when the last one has been answered (idle_check).
 * Cancelled queries c-ares still holds need no deadline: destroying the
 * channel reaps them. */
static void process(weft__dns_chan *c, int rfd, int wfd);

static void on_timer(weft_timer *t) {
  weft__dns_state *st = t->base.data;
  if (st->files.ch != NULL)
    process(&st->files, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  if (st->dns.ch != NULL) process(&st->dns, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void on_timer_closed(weft_handle *h) {
  weft__dns_rearm(h->data); /* a query may have started meanwhile */
}

/* True once the timer is open (re-opened if it was closed); false while
 * it is still closing (on_timer_closed re-arms it then). */
static bool timer_ready(weft__dns_state *st) {
  weft_handle *h = &st->timer.base;
  if (weft__handle_usable(h)) return true;
  if (h->ops != NULL && !(h->flags & WEFT__H_CLOSED)) return false;
  weft_timer_init(st->loop, &st->timer);
  h->data = st;
  weft_unref(h);
  return true;
}

/* Called after every call into c-ares: its next deadline may have moved.
 * If the timer heap cannot grow (-ENOMEM) the query keeps no deadline of
 * its own until the next call into c-ares. */
void weft__dns_rearm(weft__dns_state *st) {
  if (weft__list_empty(&st->queries) || st->dns.ch == NULL || !timer_ready(st))
    return;
  struct timeval tv, tv2, *next = ares_timeout(st->dns.ch, NULL, &tv);
  if (st->files.ch != NULL) next = ares_timeout(st->files.ch, next, &tv2);
  if (next == NULL) {
    weft_timer_stop(&st->timer);
    return;
  }
  /* c-ares truncates the time left to whole milliseconds, so up to 1 ms
   * before its deadline it already reports 0 without treating the query
   * as due: +1 ms, or the loop would spin through that last millisecond */
  uint64_t ms =
      (uint64_t)next->tv_sec * 1000u + (uint64_t)next->tv_usec / 1000u + 1u;
  weft_timer_start(&st->timer, on_timer, ms, 0);
}

static void idle_check(weft__dns_state *st) {
  if (weft__list_empty(&st->queries) && weft__handle_usable(&st->timer.base))
    weft_close(&st->timer.base, on_timer_closed);
}

/* ---- sockets ------------------------------------------------------------- */

/* Answers are delivered from inside ares_process_fd, where c-ares forbids
 * destroying the channel: `processing` makes the settings calls (which
 * replace the channel) return -EBUSY from DNS callbacks. */
static void process(weft__dns_chan *c, int rfd, int wfd) {
  weft__dns_state *st = c->st;
  st->processing++;
  ares_process_fd(c->ch, rfd, wfd);
  st->processing--;
  weft__dns_rearm(st);
}

static void on_io(struct ev_loop *ev, ev_io *w, int revents) {
  WEFT__UNUSED(ev);
  weft__dns_sock *s = w->data;
  int fd = w->fd;             /* s may be freed inside ares_process_fd */
  s->st->loop->m.io_events++; /* metrics (weft_loop_get_metrics) */
  process(s->chan, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
          (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
}

static weft__dns_sock *sock_find(weft__dns_state *st, int fd) {
  WEFT__LIST_FOREACH(it, &st->socks) {
    weft__dns_sock *s = WEFT__CONTAINER_OF(it, weft__dns_sock, node);
    if (s->io.fd == fd) return s;
  }
  return NULL;
}

static void sock_release(weft__dns_state *st, weft__dns_sock *s) {
  weft__io_stop(st->loop, &s->io);
  weft__list_unlink(&s->node);
  if (st->n_spare < SPARE_SOCKS) {
    weft__list_push_back(&st->spare, &s->node);
    st->n_spare++;
  } else {
    weft__free(s);
  }
}

static weft__dns_sock *sock_take(weft__dns_state *st) {
  weft__list *n = weft__list_pop_front(&st->spare);
  if (n != NULL) {
    st->n_spare--;
    return WEFT__CONTAINER_OF(n, weft__dns_sock, node);
  }
  return weft__malloc(sizeof(weft__dns_sock));
}

/* c-ares' socket-state callback. If no watcher can be allocated the socket
 * goes unwatched and its query ends by c-ares' timeout (WEFT_EDNS_TIMEOUT):
 * degraded, never hung. reserve_sock() keeps a spare so that starting
 * a query never depends on this. */
static void on_sock_state(void *data, ares_socket_t fd, int readable,
                          int writable) {
  weft__dns_chan *c = data;
  weft__dns_state *st = c->st;
  weft__dns_sock *s = sock_find(st, fd);
  if (!readable && !writable) {
    if (s != NULL) sock_release(st, s);
    return;
  }
  int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
  if (s == NULL) {
    if ((s = sock_take(st)) == NULL) return;
    s->st = st;
    s->chan = c;
    ev_io_init(&s->io, on_io, fd, events);
    s->io.data = s;
    weft__list_push_back(&st->socks, &s->node);
  } else if (s->io.events == events) {
    return;
  } else {
    weft__io_stop(st->loop, &s->io);
    ev_io_set(&s->io, fd, events);
  }
  weft__io_start(st->loop, &s->io);
}

static int reserve_sock(weft__dns_state *st) {
  if (st->n_spare != 0) return 0;
  weft__dns_sock *s = weft__malloc(sizeof *s);
  if (s == NULL) return -ENOMEM;
  weft__list_push_back(&st->spare, &s->node);
  st->n_spare++;
  return 0;
}

/* ---- the channel and the per-loop state ---------------------------------- */

/* c-ares' own sockets, made through these so that weft sees why socket()
 * failed: c-ares reports every failure as "no server reachable", but fd
 * exhaustion must reach the caller as -EMFILE (or -ENFILE). */
static ares_socket_t sock_open(int domain, int type, int protocol, void *data) {
  weft__dns_state *st = data;
  int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
  st->sock_errno = fd < 0 ? errno : 0;
  return fd < 0 ? ARES_SOCKET_BAD : fd;
}

static int sock_close(ares_socket_t fd, void *data) {
  WEFT__UNUSED(data);
  return close(fd);
}

static int sock_connect(ares_socket_t fd, const struct sockaddr *sa,
                        ares_socklen_t len, void *data) {
  WEFT__UNUSED(data);
  return connect(fd, sa, len);
}

static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t n,
                                  int flags, struct sockaddr *from,
                                  ares_socklen_t *fromlen, void *data) {
  WEFT__UNUSED(data);
  return recvfrom(fd, buf, n, flags, from, fromlen);
}

static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov, int n,
                               void *data) {
  WEFT__UNUSED(data);
  return writev(fd, iov, n);
}

static const struct ares_socket_functions sock_funcs = {
    sock_open, sock_close, sock_connect, sock_recvfrom, sock_sendv};

/* Opens a channel for c (its sockets' data) into *out: DNS only ("b"), or
 * c-ares' own hosts-file read, then DNS. */
static int channel_open(weft__dns_state *st, weft__dns_chan *c, bool files,
                        ares_channel *out) {
  static char files_then_dns[] = "fb", dns_only[] = "b";
  struct ares_options o;
  memset(&o, 0, sizeof o);
  c->st = st;
  o.sock_state_cb = on_sock_state;
  o.sock_state_cb_data = c;
  o.timeout = st->timeout_ms;
  o.tries = st->tries;
  o.lookups = files ? files_then_dns : dns_only;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
             ARES_OPT_LOOKUPS;
  ares_channel ch;
  int s = ares_init_options(&ch, &o, mask);
  if (s != ARES_SUCCESS) return weft__dns_status(s);
  if (st->servers != NULL &&
      (s = ares_set_servers_ports_csv(ch, st->servers)) != ARES_SUCCESS) {
    ares_destroy(ch);
    return s == ARES_ENOMEM ? -ENOMEM : -EINVAL;
  }
  ares_set_socket_functions(ch, &sock_funcs, st);
  *out = ch;
  return 0;
}

int weft__dns_files_channel(weft__dns_state *st, ares_channel *out) {
  int err = 0;
  if (st->files.ch == NULL)
    err = channel_open(st, &st->files, true, &st->files.ch);
  *out = st->files.ch;
  return err;
}

/* Destroying the channel makes c-ares call back every query it still holds
 * (ARES_EDESTRUCTION, ignored: they were all cancelled) and close its
 * sockets through on_sock_state. */
static void chan_close(weft__dns_state *st, weft__dns_chan *c) {
  if (c->ch == NULL) return;
  ares_destroy(c->ch);
  c->ch = NULL;
  weft__list *it = st->socks.next;
  while (it != &st->socks) {
    weft__dns_sock *s = WEFT__CONTAINER_OF(it, weft__dns_sock, node);
    it = it->next;
    if (s->chan == c) sock_release(st, s);
  }
}

static void channel_close(weft__dns_state *st) {
  chan_close(st, &st->files);
  if (st->dns.ch == NULL) return;
  chan_close(st, &st->dns);
  if (weft__handle_usable(&st->timer.base)) weft_timer_stop(&st->timer);
}

static void dns_teardown(weft_loop *loop, void *state) {
  WEFT__UNUSED(loop);
  weft__dns_state *st = state;
  channel_close(st);
  weft__list *n;
  while ((n = weft__list_pop_front(&st->spare)) != NULL)
    weft__free(WEFT__CONTAINER_OF(n, weft__dns_sock, node));
  weft__free(st->servers);
  weft__dns_hosts_free(&st->hosts);
  weft__free(st);
}

/* The loop's DNS state with an open channel, created on first use. */
int weft__dns_get_state(weft_loop *loop, weft__dns_state **out) {
  pthread_once(&ares_once, ares_global_init);
  if (ares_init_status != ARES_SUCCESS)
    return weft__dns_status(ares_init_status);
  weft__dns_state *st = weft__module_get(loop, WEFT__MOD_DNS);
  if (st == NULL) {
    if ((st = weft__calloc(1, sizeof *st)) == NULL) return -ENOMEM;
    st->loop = loop;
    st->timeout_ms = DEFAULT_TIMEOUT_MS;
    st->tries = DEFAULT_TRIES;
    weft__list_init(&st->socks);
    weft__list_init(&st->spare);
    weft__list_init(&st->queries);
    weft__list_init(&st->cancelled);
    weft__module_set(loop, WEFT__MOD_DNS, st, dns_teardown);
  }
  *out = st;
  return st->dns.ch != NULL ? 0
                            : channel_open(st, &st->dns, false, &st->dns.ch);
}

/* c-ares 1.18 reads options only at init (no ares_reinit) and refuses new
 * servers while it holds queries, so new settings take a fresh channel. It
 * is opened first, so that a failure leaves the old one in place.
 * Destroying the old one reaps the cancelled queries it still held. */
static int channel_reopen(weft__dns_state *st) {
  ares_channel fresh;
  int err = channel_open(st, &st->dns, false, &fresh);
  if (err != 0) return err;
  channel_close(st); /* the "fb" one reopens, with the new settings, on need */
  st->dns.ch = fresh;
  return 0;
}

/* The state, if no query is waiting for its answer and c-ares is not
 * delivering answers (the caller is not a DNS callback). */
static int settings_state(weft_loop *loop, weft__dns_state **out) {
  int err = weft__dns_get_state(loop, out);
  if (err == 0 && ((*out)->processing || !weft__list_empty(&(*out)->queries)))
    err = -EBUSY;
  return err;
}

int weft_dns_set_servers(weft_loop *loop, const char *servers) {
  if (loop == NULL || servers == NULL || servers[0] == '\0') return -EINVAL;
  weft__dns_state *st;
  int err = settings_state(loop, &st);
  if (err != 0) return err;
  char *old = st->servers;
  if ((st->servers = weft__strdup(servers)) == NULL) {
    st->servers = old;
    return -ENOMEM;
  }
  err = channel_reopen(st);
  char *drop = err == 0 ? old : st->servers;
  if (err != 0) st->servers = old;
  weft__free(drop);
  return err;
}

int weft_dns_set_options(weft_loop *loop, uint64_t timeout_ms, unsigned tries) {
  if (loop == NULL || timeout_ms > INT32_MAX || tries > INT32_MAX)
    return -EINVAL;
  weft__dns_state *st;
  int err = settings_state(loop, &st);
  if (err != 0) return err;
  int old_timeout = st->timeout_ms, old_tries = st->tries;
  if (timeout_ms != 0) st->timeout_ms = (int)timeout_ms;
  if (tries != 0) st->tries = (int)tries;
  if ((err = channel_reopen(st)) != 0) {
    st->timeout_ms = old_timeout;
    st->tries = old_tries;
  }
  return err;
}

int weft_dns_use_hosts_file(weft_loop *loop, bool use) {
  if (loop == NULL) return -EINVAL;
  weft__dns_state *st;
  int err = settings_state(loop, &st);
  if (err != 0) return err;
  /* the DNS channel asks DNS only either way: only the "fb" one goes */
  st->no_hosts_file = !use;
  chan_close(st, &st->files);
  return 0;
}

int weft_dns_set_hosts_file(weft_loop *loop, const char *path) {
  if (loop == NULL || path == NULL || path[0] != '/') return -EINVAL;
  if (strnlen(path, PATH_MAX) >= PATH_MAX) return -ENAMETOOLONG;
  weft__dns_state *st;
  int err = weft__dns_get_state(loop, &st);
  return err != 0 ? err : weft__dns_hosts_set_path(&st->hosts, path);
}

/* ---- queries
 * ----------------------------------------------------------------- */

static void query_maybe_free(weft__dns_query *q) {
  if (!q->done || q->in_ares || q->queued || q->in_cancel) return;
  weft_freeaddrinfo(q->res);
  weft__free(q->names);
  weft__free(q);
}

/* Hands the answer to its owner (callback or future) and drops the
 * query's hold on the loop. */
static void query_finish(weft__dns_query *q) {
  weft__dns_state *st = q->st;
  weft__list_unlink(&q->node);
  q->done = true;
  weft_addrinfo *res = q->res;
  weft_nameinfo *names = q->names;
  q->res = NULL;
  q->names = NULL;
  weft__req_done(q->st->loop);
  if (q->fut != NULL)
    weft__dns_settle(q, q->status, res, names);
  else if (q->kind == WEFT__DNS_ADDR)
    q->cb.addr(q->status, res, q->arg);
  else {
    q->cb.name(q->status, names ? names->host : NULL,
               names ? names->service : NULL, q->arg);
    weft__free(names);
  }
  query_maybe_free(q);
  idle_check(st);
}

/* From c-ares, exactly once per started query. */
void weft__dns_answered(weft__dns_query *q, int status) {
  q->in_ares = false;
  q->st->in_ares--;
  q->status = status;
  if (q->done) { /* cancelled meanwhile: nobody wants the answer */
    query_maybe_free(q);
    return;
  }
  if (!q->starting) query_finish(q);
}

static void deferred_finish(void *arg) {
  weft__dns_query *q = arg;
  q->queued = false;
  if (q->done)
    query_maybe_free(q); /* cancelled while queued */
  else
    query_finish(q);
}

weft__dns_query *weft__dns_query_new(weft__dns_state *st, weft__dns_kind kind) {
  if (reserve_sock(st) != 0) return NULL;
  weft__dns_query *q = weft__calloc(1, sizeof *q);
  if (q == NULL) return NULL;
  q->st = st;
  q->kind = kind;
  weft__list_init(&q->node);
  q->in_ares = true;
  q->starting = true;
  st->in_ares++;
  return q;
}

/* Frees a query that was never handed to c-ares. */
void weft__dns_query_discard(weft__dns_query *q) {
  q->st->in_ares--;
  weft__free(q);
}

/* After the ares_* start call has returned: accept the query, deferring an
 * answer c-ares gave inline. Returns 0, or -ENOMEM when that deferral could
 * not be queued (the query is then freed and never completes). */
int weft__dns_query_accept(weft__dns_query *q) {
  weft__dns_state *st = q->st;
  q->starting = false;
  if (!q->in_ares) {
    if (weft_call_soon(st->loop, deferred_finish, q) != 0) {
      q->done = true;
      query_maybe_free(q);
      return -ENOMEM;
    }
    q->queued = true;
  }
  weft__list_push_back(&st->queries, &q->node);
  weft__req_start(st->loop);
  weft__dns_rearm(st);
  return 0;
}

/* ---- cancellation
 * -------------------------------------------------------------- */

static void deliver_cancelled(void *arg) {
  weft__dns_state *st = arg;
  st->cancel_queued = false;
  weft__list *n;
  while ((n = weft__list_pop_front(&st->cancelled)) != NULL) {
    weft__dns_query *q = WEFT__CONTAINER_OF(n, weft__dns_query, node);
    q->in_cancel = false;
    weft__req_done(st->loop);
    if (q->kind == WEFT__DNS_ADDR)
      q->cb.addr(-ECANCELED, NULL, q->arg);
    else
      q->cb.name(-ECANCELED, NULL, NULL, q->arg);
    query_maybe_free(q);
  }
  idle_check(st);
}

/* Future form: the future is already cancelled; stop caring. */
void weft__dns_query_cancel(weft__dns_query *q) {
  if (q->done) return;
  weft__list_unlink(&q->node);
  q->done = true;
  q->fut = NULL;
  weft__dns_state *st = q->st;
  weft__req_done(st->loop);
  query_maybe_free(q);
  idle_check(st);
}

int weft_dns_cancel_all(weft_loop *loop) {
  if (loop == NULL) return -EINVAL;
  weft__dns_state *st = weft__module_get(loop, WEFT__MOD_DNS);
  if (st == NULL || weft__list_empty(&st->queries)) return 0;
  if (!st->cancel_queued) {
    if (weft_call_soon(loop, deliver_cancelled, st) != 0) return -ENOMEM;
    st->cancel_queued = true;
  }
  int count = 0;
  weft__list *n;
  while ((n = weft__list_pop_front(&st->queries)) != NULL) {
    weft__dns_query *q = WEFT__CONTAINER_OF(n, weft__dns_query, node);
    count++;
    if (q->fut != NULL) {
      weft__list_push_back(&st->queries, &q->node); /* the hook unlinks it */
      weft__dns_future_cancel(q);                   /* unlinks q */
      continue;
    }
    /* the query keeps the loop alive until its -ECANCELED is delivered */
    q->done = true;
    q->in_cancel = true;
    weft__list_push_back(&st->cancelled, &q->node);
  }
  idle_check(st);
  return count;
}
