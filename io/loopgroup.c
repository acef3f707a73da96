/* weft — loop groups: N loops on N threads, one listen, graceful stop
 * (include/weft/loopgroup.h, docs/loopgroup.md).
 *
 * This file owns the group, its threads, the listening sockets (raw
 * accept4 on an ev_io, so a hand-off can pass the fd itself), the
 * per-loop connection lists and counts, and the drain. Cross-loop calls
 * are in io/loopgroup_call.c.
 *
 * The stop never allocates: weft_lgroup_stop sets an atomic flag and
 * breaks every loop out of weft_loop_run (weft_loop_stop, which cannot
 * fail); each thread's outer loop then moves its loop through the drain
 * phases. Callbacks that change what the drain waits for (a connection
 * closes, a handed-off fd arrives, the acceptor stops) break the loop out
 * the same way, so every phase change happens in thread_main, outside any
 * callback, where the loop may be run again. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "loopgroup_internal.h"

#define ACCEPT_CAP 64      /* accepts per readiness callback (fairness) */
#define ACCEPT_RETRY_MS 50 /* after EMFILE/ENFILE */

_Thread_local weft__lg_loop *weft__lg_cur;

unsigned weft_lgroup_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? (unsigned)n : 1;
}

/* ---- creation ------------------------------------------------------------ */

static int check_options(const weft_lgroup_options *o) {
  if (o->loops > WEFT_LGROUP_MAX) return -EINVAL;
  if (o->conn_size != 0 && o->conn_size < sizeof(weft_lgroup_conn))
    return -EINVAL;
  return 0;
}

static void free_loops(weft_lgroup *g, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    weft_loop_free(g->loops[i].loop);
  weft__free(g->loops);
}

static int sync_init(weft_lgroup *g) {
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) return -ENOMEM;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int err = pthread_cond_init(&g->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (err != 0) return -ENOMEM;
  if (pthread_mutex_init(&g->mu, NULL) != 0) {
    pthread_cond_destroy(&g->cv);
    return -ENOMEM;
  }
  return 0;
}

int weft_lgroup_new(weft_lgroup **out, const weft_lgroup_options *o) {
  if (out == NULL || o == NULL) return -EINVAL;
  int err = check_options(o);
  if (err < 0) return err;
  weft_lgroup *g = weft__calloc(1, sizeof *g);
  if (g == NULL) return -ENOMEM;
  g->o = *o;
  g->n = o->loops ? o->loops : weft_lgroup_cpus();
  if (g->o.conn_size == 0) g->o.conn_size = sizeof(weft_lgroup_conn);
  g->loops = weft__calloc(g->n, sizeof *g->loops);
  if (g->loops == NULL || (err = sync_init(g)) < 0) {
    weft__free(g->loops);
    weft__free(g);
    return -ENOMEM;
  }
  unsigned made = 0;
  for (; made < g->n; made++) {
    weft__lg_loop *l = &g->loops[made];
    l->g = g;
    l->index = made;
    l->lfd = -1;
    weft__list_init(&l->conns);
    if ((err = weft_loop_new(&l->loop, o->loop_options)) < 0) break;
  }
  if (err < 0) {
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free_loops(g, made);
    weft__free(g);
    return err;
  }
  *out = g;
  return 0;
}

/* ---- listening ----------------------------------------------------------- */

static int open_listener(const struct sockaddr *addr, socklen_t len,
                         bool reuseport, int backlog) {
  int fd =
      socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (reuseport &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
      bind(fd, addr, len) < 0 ||
      listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

static void close_listeners(weft_lgroup *g) {
  for (unsigned i = 0; i < g->n; i++) {
    if (g->loops[i].lfd >= 0) close(g->loops[i].lfd);
    g->loops[i].lfd = -1;
  }
}

int weft_lgroup_listen(weft_lgroup *g, const struct sockaddr *addr,
                       weft_lgroup_dist dist, int backlog) {
  if (g == NULL || addr == NULL || g->started || g->o.on_conn == NULL ||
      (dist != WEFT_LGROUP_REUSEPORT && dist != WEFT_LGROUP_HANDOFF))
    return -EINVAL;
  socklen_t len = weft_sockaddr_len(addr);
  if (len == 0) return -EINVAL;
  if (g->listening) return -EALREADY;
  memcpy(&g->addr, addr, len);
  unsigned n = dist == WEFT_LGROUP_REUSEPORT ? g->n : 1;
  for (unsigned i = 0; i < n; i++) {
    int fd = open_listener((struct sockaddr *)&g->addr, len, n > 1, backlog);
    if (fd < 0) {
      close_listeners(g);
      return fd;
    }
    g->loops[i].lfd = fd;
    if (i == 0) { /* the first bind picked the port the others share */
      g->alen = sizeof g->addr;
      if (getsockname(fd, (struct sockaddr *)&g->addr, &g->alen) < 0) {
        int err = -errno;
        close_listeners(g);
        return err;
      }
    }
  }
  g->dist = dist;
  g->listening = true;
  return 0;
}

int weft_lgroup_getsockname(const weft_lgroup *g, struct sockaddr *addr,
                            socklen_t *len) {
  if (g == NULL || addr == NULL || len == NULL) return -EINVAL;
  if (!g->listening) return -ENOTCONN;
  socklen_t n = *len < g->alen ? *len : g->alen;
  memcpy(addr, &g->addr, n);
  *len = g->alen;
  return 0;
}

/* ---- connections -----------------------------------------------------------
 */

static void poke(weft__lg_loop *l) { weft_loop_stop(l->loop); }

static void on_conn_handle_closed(weft_handle *h) {
  weft_lgroup_conn *c = (weft_lgroup_conn *)h;
  weft__lg_loop *l = c->owner_;
  weft_lgroup *g = l->g;
  weft__list_unlink(&c->node);
  atomic_fetch_sub_explicit(&l->live, 1, memory_order_relaxed);
  if (g->o.on_conn_closed) g->o.on_conn_closed(c, g->o.arg);
  if (g->o.conn_new == NULL) weft__free(c);
  if (l->phase != WEFT__LG_RUN) poke(l);
}

int weft_lgroup_conn_close(weft_lgroup_conn *c) {
  if (c == NULL || c->owner_ == NULL) return -EINVAL;
  return weft_close(&c->tcp.stream.base, on_conn_handle_closed);
}

unsigned weft_lgroup_conn_index(const weft_lgroup_conn *c) {
  return c && c->owner_ ? ((const weft__lg_loop *)c->owner_)->index : 0;
}

/* Wraps an accepted fd on its loop and hands it to the user. */
static void conn_open(weft__lg_loop *l, int fd) {
  weft_lgroup *g = l->g;
  if (l->phase >= WEFT__LG_ABORTED) { /* past the deadline: refused */
    close(fd);
    return;
  }
  weft_lgroup_conn *c = g->o.conn_new ? g->o.conn_new(g, l->index, g->o.arg)
                                      : weft__calloc(1, g->o.conn_size);
  if (c == NULL) {
    close(fd);
    return;
  }
  weft_tcp_init(l->loop, &c->tcp);
  c->owner_ = l;
  weft__list_push_back(&l->conns, &c->node);
  atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&l->live, 1, memory_order_relaxed);
  if (weft_tcp_open(&c->tcp, fd) < 0) {
    close(fd);
    weft_lgroup_conn_close(c); /* on_conn_closed still runs, once */
    return;
  }
  g->o.on_conn(c, g->o.arg);
  if (l->phase == WEFT__LG_DRAINING && g->o.on_conn_drain &&
      !weft_is_closing(&c->tcp.stream.base))
    g->o.on_conn_drain(c, g->o.arg);
}

/* A handed-off fd arrives on its loop (posted by the acceptor). Run by a
 * teardown on another thread (weft__lg_cur is not this loop's), it is
 * closed. */
static void on_handoff(void *arg) {
  int fd = (int)(intptr_t)arg;
  weft__lg_loop *l = weft__lg_cur;
  if (l == NULL) {
    close(fd);
    return;
  }
  atomic_fetch_sub(&l->inflight, 1);
  if (l->phase >= WEFT__LG_FINISHING)
    close(fd);
  else
    conn_open(l, fd);
  if (l->phase != WEFT__LG_RUN) poke(l);
}

/* The loop with the fewest live connections, counting fds on their way;
 * ties go round-robin from the loop after the last choice, so an idle
 * group spreads too. Only the acceptor (loop 0) calls it. */
static weft__lg_loop *least_loaded(weft_lgroup *g) {
  weft__lg_loop *best = &g->loops[0];
  uint64_t min = UINT64_MAX;
  for (unsigned k = 0; k < g->n; k++) {
    weft__lg_loop *l = &g->loops[(g->rr + 1 + k) % g->n];
    uint64_t load = atomic_load_explicit(&l->live, memory_order_relaxed) +
                    (uint64_t)atomic_load(&l->inflight);
    if (load < min && !atomic_load(&l->ended)) {
      min = load;
      best = l;
    }
  }
  g->rr = best->index;
  return best;
}

static void dispatch(weft__lg_loop *l, int fd) {
  weft_lgroup *g = l->g;
  weft__lg_loop *t = g->dist == WEFT_LGROUP_HANDOFF ? least_loaded(g) : l;
  if (t == l) {
    conn_open(l, fd);
    return;
  }
  atomic_fetch_add(&t->inflight, 1);
  if (weft_call_soon_threadsafe(t->loop, on_handoff, (void *)(intptr_t)fd) <
      0) {
    atomic_fetch_sub(&t->inflight, 1);
    close(fd); /* no memory to queue it: the client sees a reset */
  }
}

static void on_retry(weft_timer *t) {
  weft__lg_loop *l = t->base.data;
  if (l->lfd >= 0) weft__io_start(l->loop, &l->lio);
}

static void on_accept(struct ev_loop *ev, ev_io *w, int revents) {
  WEFT__UNUSED(ev), WEFT__UNUSED(revents);
  weft__lg_loop *l = w->data;
  for (int i = 0; i < ACCEPT_CAP && l->lfd >= 0; i++) {
    int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      dispatch(l, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE) { /* clients wait in the backlog */
      weft__io_stop(l->loop, &l->lio);
      weft_timer_start(&l->retry, on_retry, ACCEPT_RETRY_MS, 0);
    }
    break;
  }
}

static void stop_listening(weft__lg_loop *l) {
  if (l->lfd < 0) return;
  weft__io_stop(l->loop, &l->lio);
  weft_timer_stop(&l->retry);
  close(l->lfd);
  l->lfd = -1;
}

/* ---- the drain ----------------------------------------------------------- */

static void abort_conns(weft__lg_loop *l) {
  weft_lgroup *g = l->g;
  l->phase = WEFT__LG_ABORTED;
  WEFT__LIST_FOREACH_SAFE(it, next, &l->conns) {
    weft_lgroup_conn *c = WEFT__CONTAINER_OF(it, weft_lgroup_conn, node);
    if (weft_is_closing(&c->tcp.stream.base)) continue;
    if (g->o.on_conn_abort)
      g->o.on_conn_abort(c, g->o.arg);
    else
      weft_lgroup_conn_close(c);
  }
}

static void on_deadline(weft_timer *t) { abort_conns(t->base.data); }

static void drain_begin(weft__lg_loop *l) {
  weft_lgroup *g = l->g;
  l->phase = WEFT__LG_DRAINING;
  stop_listening(l);
  if (g->dist == WEFT_LGROUP_HANDOFF && l->index == 0) {
    atomic_store(&g->accept_closed, true); /* no more hand-offs from here */
    for (unsigned i = 1; i < g->n; i++)
      poke(&g->loops[i]);
  }
  WEFT__LIST_FOREACH_SAFE(it, next, &l->conns) {
    weft_lgroup_conn *c = WEFT__CONTAINER_OF(it, weft_lgroup_conn, node);
    if (g->o.on_conn_drain && !weft_is_closing(&c->tcp.stream.base))
      g->o.on_conn_drain(c, g->o.arg);
  }
  uint64_t ms = atomic_load(&g->deadline_ms);
  if (ms == 0 || weft_timer_start(&l->deadline, on_deadline, ms, 0) < 0)
    abort_conns(l);
}

static bool drained(weft__lg_loop *l) {
  weft_lgroup *g = l->g;
  return weft__list_empty(&l->conns) && atomic_load(&l->inflight) == 0 &&
         (g->dist != WEFT_LGROUP_HANDOFF || atomic_load(&g->accept_closed) ||
          !g->listening);
}

static void close_left(weft_handle *h, void *arg) {
  WEFT__UNUSED(arg);
  if (!weft_is_closing(h)) weft_close(h, NULL);
}

/* Connections are gone: close the group's handles, let the user close
 * theirs, close whatever is left, and run the loop dry. */
static void finish(weft__lg_loop *l) {
  weft_lgroup *g = l->g;
  l->phase = WEFT__LG_FINISHING;
  atomic_store(&l->ended, true);
  weft_close(&l->deadline.base, NULL);
  weft_close(&l->retry.base, NULL);
  if (l->signals) {
    weft_close(&l->sint.base, NULL);
    weft_close(&l->sterm.base, NULL);
  }
  if (g->o.on_loop_stop) g->o.on_loop_stop(g, l->index, l->loop, g->o.arg);
  weft_walk(l->loop, close_left, NULL);
  weft_loop_unref(l->loop);
  while (weft_loop_run(l->loop, WEFT_RUN_DEFAULT) > 0) {
  }
  l->phase = WEFT__LG_DONE;
}

/* ---- threads ------------------------------------------------------------- */

static void on_stop_signal(weft_signal *s, int signum) {
  WEFT__UNUSED(signum);
  weft__lg_loop *l = s->base.data;
  weft_lgroup_stop(l->g, l->g->o.drain_ms);
}

/* SIGINT and SIGTERM, which stop_signals routes to loop 0. */
static void stop_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
}

/* Loop 0 takes them: every other thread of the group (and the thread that
 * started it, whose mask the others inherit) blocks them, so the kernel
 * delivers them here (or leaves them pending for libev's signalfd). */
static int start_signals(weft__lg_loop *l) {
  sigset_t set;
  stop_set(&set);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  weft_signal_init(l->loop, &l->sint);
  weft_signal_init(l->loop, &l->sterm);
  l->signals = true;
  l->sint.base.data = l->sterm.base.data = l;
  weft_unref(&l->sint.base);
  weft_unref(&l->sterm.base);
  int err = weft_signal_start(&l->sint, on_stop_signal, SIGINT);
  return err < 0 ? err : weft_signal_start(&l->sterm, on_stop_signal, SIGTERM);
}

static void name_and_pin(weft__lg_loop *l) {
  char name[16];
  snprintf(name, sizeof name, "weft-loop-%u", l->index);
  pthread_setname_np(pthread_self(), name);
  if (!l->g->o.pin) return;
  cpu_set_t set, one;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return;
  int k = (int)(l->index % (unsigned)CPU_COUNT(&set)), seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set) || seen++ != k) continue;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    break;
  }
}

/* The loop's own handles and listener, then the user's init. */
static int loop_setup(weft__lg_loop *l) {
  weft_lgroup *g = l->g;
  weft_timer_init(l->loop, &l->deadline);
  weft_timer_init(l->loop, &l->retry);
  l->deadline.base.data = l->retry.base.data = l;
  weft_unref(&l->retry.base);
  weft_loop_ref(l->loop); /* alive until its drain is over */
  int err = 0;
  if (g->o.stop_signals && l->index == 0) err = start_signals(l);
  if (err == 0 && l->lfd >= 0) {
    ev_io_init(&l->lio, on_accept, l->lfd, EV_READ);
    l->lio.data = l;
    weft__io_start(l->loop, &l->lio);
  }
  if (err == 0 && g->o.on_loop_init)
    err = g->o.on_loop_init(g, l->index, l->loop, g->o.arg);
  return err;
}

static void report(weft_lgroup *g, int err, bool ended) {
  pthread_mutex_lock(&g->mu);
  if (ended)
    g->ended++;
  else
    g->inited++;
  if (err < 0 && g->init_err == 0) g->init_err = err;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void *thread_main(void *arg) {
  weft__lg_loop *l = arg;
  weft_lgroup *g = l->g;
  weft__lg_cur = l;
  name_and_pin(l);
  int err = loop_setup(l);
  if (err < 0) weft_lgroup_stop(g, 0);
  report(g, err, false);
  while (l->phase != WEFT__LG_DONE) {
    weft_loop_run(l->loop, WEFT_RUN_DEFAULT);
    if (atomic_load(&g->stop_asked) && l->phase == WEFT__LG_RUN) drain_begin(l);
    if (l->phase != WEFT__LG_RUN && drained(l)) finish(l);
  }
  weft__lg_cur = NULL;
  report(g, 0, true);
  return NULL;
}

int weft_lgroup_start(weft_lgroup *g) {
  if (g == NULL || g->started) return -EINVAL;
  g->started = true;
  int err = 0;
  if (g->o.stop_signals) {
    sigset_t set;
    stop_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
  }
  for (; g->made < g->n; g->made++) {
    weft__lg_loop *l = &g->loops[g->made];
    if (pthread_create(&l->thread, NULL, thread_main, l) != 0) {
      err = -EAGAIN;
      weft_lgroup_stop(g, 0);
      break;
    }
  }
  pthread_mutex_lock(&g->mu);
  while (g->inited < g->made)
    pthread_cond_wait(&g->cv, &g->mu);
  if (err == 0) err = g->init_err;
  pthread_mutex_unlock(&g->mu);
  return err;
}

int weft_lgroup_stop(weft_lgroup *g, uint64_t deadline_ms) {
  if (g == NULL) return -EINVAL;
  bool no = false;
  if (!atomic_compare_exchange_strong(&g->stop_claimed, &no, true))
    return -EALREADY; /* the first stop's deadline stands */
  atomic_store(&g->deadline_ms, deadline_ms);
  atomic_store(&g->stop_asked, true); /* loops read the deadline after it */
  for (unsigned i = 0; i < g->n; i++)
    poke(&g->loops[i]);
  return 0;
}

static bool on_group_thread(const weft_lgroup *g) {
  for (unsigned i = 0; i < g->made; i++)
    if (pthread_equal(pthread_self(), g->loops[i].thread)) return true;
  return false;
}

static void join_all(weft_lgroup *g) {
  if (g->joined) return;
  for (unsigned i = 0; i < g->made; i++)
    pthread_join(g->loops[i].thread, NULL);
  g->joined = true;
}

int weft_lgroup_wait(weft_lgroup *g, int64_t timeout_ms) {
  if (g == NULL || !g->started || timeout_ms < -1) return -EINVAL;
  if (on_group_thread(g)) return -EDEADLK;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (timeout_ms > 0) {
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
  }
  int err = 0;
  pthread_mutex_lock(&g->mu);
  while (g->ended < g->made && err == 0)
    if (timeout_ms < 0)
      pthread_cond_wait(&g->cv, &g->mu);
    else
      err = pthread_cond_timedwait(&g->cv, &g->mu, &ts) ? -ETIMEDOUT : 0;
  if (g->ended == g->made) err = 0;
  pthread_mutex_unlock(&g->mu);
  if (err == 0) join_all(g);
  return err;
}

/* Frees every loop, running what is still queued on them (here, with
 * weft__lg_cur NULL: hand-offs close their fd, calls answer -ESHUTDOWN);
 * one loop's callbacks may post to another's, so all are run in turn. */
static void free_all_loops(weft_lgroup *g) {
  for (unsigned i = 0; i < g->n; i++)
    weft_walk(g->loops[i].loop, close_left, NULL);
  unsigned left = g->n;
  while (left > 0) {
    left = 0;
    for (unsigned i = 0; i < g->n; i++) {
      weft__lg_loop *l = &g->loops[i];
      if (l->loop == NULL) continue;
      weft_loop_run(l->loop, WEFT_RUN_NOWAIT);
      if (weft_loop_free(l->loop) == 0)
        l->loop = NULL;
      else
        left++;
    }
  }
}

int weft_lgroup_free(weft_lgroup *g) {
  if (g == NULL) return -EINVAL;
  if (g->started) {
    pthread_mutex_lock(&g->mu);
    bool busy = g->ended < g->made;
    pthread_mutex_unlock(&g->mu);
    if (busy) return -EBUSY;
    join_all(g);
  }
  close_listeners(g);
  free_all_loops(g);
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
  weft__free(g->loops);
  weft__free(g);
  return 0;
}

/* ---- accessors ----------------------------------------------------------- */

unsigned weft_lgroup_size(const weft_lgroup *g) { return g ? g->n : 0; }

weft_loop *weft_lgroup_loop(const weft_lgroup *g, unsigned index) {
  return g && index < g->n ? g->loops[index].loop : NULL;
}

int weft_lgroup_get_stats(const weft_lgroup *g, unsigned index,
                          weft_lgroup_stats *st) {
  if (g == NULL || st == NULL || index >= g->n) return -EINVAL;
  weft__lg_loop *l = &g->loops[index];
  st->accepted = atomic_load_explicit(&l->accepted, memory_order_relaxed);
  st->live = atomic_load_explicit(&l->live, memory_order_relaxed);
  return 0;
}

void *weft_lgroup_local(const weft_lgroup *g, unsigned index) {
  return g && index < g->n ? atomic_load(&g->loops[index].local) : NULL;
}

int weft_lgroup_set_local(weft_lgroup *g, unsigned index, void *p) {
  if (g == NULL || index >= g->n) return -EINVAL;
  atomic_store(&g->loops[index].local, p);
  return 0;
}
