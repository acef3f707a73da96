/* weft — the io layer's per-loop state (`weft__net`, module slot
 * WEFT__MOD_NET) and the request FIFO's non-inline part: deferred delivery
 * of completions that happened inside a start call, the shared read buffer,
 * the pools of future-form requests, and the timer that retries listeners
 * paused by fd exhaustion.
 *
 * That timer is an internal, unreferenced weft timer (as DNS's is), so a
 * host learns its deadline from weft_loop_backend_timeout(). It is open
 * only while a listener is paused: weft_walk() shows it then, and it is
 * closed once no listener is paused, so it never keeps weft_loop_free()
 * waiting.
 *
 * Deferred delivery: a start call that may complete synchronously first
 * reserves a delivery run (one weft_call_soon per batch), so that once the
 * operation is accepted its completion can always be delivered: there is
 * no -ENOMEM after the kernel has taken the bytes. */
#include "internal.h"

/* ---- io requests -------------------------------------------------------- */

void weft__reqq_cancel_all(weft__list *q, weft__list *done, int status) {
  WEFT__LIST_FOREACH(it, q) {
    weft__req_hdr *r = weft__req_of(it);
    r->flags &= ~(unsigned)WEFT__REQ_QUEUED;
    r->status = status;
  }
  weft__list_splice_back(done, q);
}

void weft__reqq_deliver(weft_handle *h, weft__list *done,
                        void (*update)(weft_handle *h), weft__req_run_fn run) {
  weft__list *n;
  while (!weft__handle_closing(h) && (n = weft__list_pop_front(done)) != NULL) {
    /* while more wait the handle stays busy and its watcher unchanged (a
     * completion that changes either calls the handle's update itself) */
    if (weft__list_empty(done)) update(h);
    run(weft__req_of(n));
  }
}

void weft__reqq_flush(weft__list *done, weft__req_run_fn run) {
  for (weft__list *n; (n = weft__list_pop_front(done)) != NULL;)
    run(weft__req_of(n));
}

/* A free list longer than this is taken for a cycle. */
#define POOL_VALIDATE_MAX ((size_t)1 << 24)

static int pool_validate(const weft__req_pool *pool, size_t *count) {
  size_t n = 0;
  for (const weft__list *it = pool->free.next; it != &pool->free;
       it = it->next) {
    const weft__req_hdr *r = weft__req_of((weft__list *)it);
    if (r->future != NULL || (r->flags & WEFT__REQ_QUEUED) ||
        it->next->prev != it || ++n > POOL_VALIDATE_MAX)
      return -EINVAL;
  }
  *count += n;
  return 0;
}

int weft__req_pools_validate(weft_loop *loop, size_t *nfree) {
  size_t n = 0;
  weft__net *net = weft__module_get(loop, WEFT__MOD_NET);
  int err = 0;
  if (net != NULL && ((err = pool_validate(&net->wreqs, &n)) != 0 ||
                      (err = pool_validate(&net->creqs, &n)) != 0 ||
                      (err = pool_validate(&net->sreqs, &n)) != 0 ||
                      (err = pool_validate(&net->rdreqs, &n)) != 0))
    return err;
  if (nfree != NULL) *nfree = n;
  return 0;
}

static void pool_clear(weft__req_pool *pool) {
  for (weft__list *n; (n = weft__list_pop_front(&pool->free)) != NULL;)
    weft__free(weft__req_outer(weft__req_of(n)));
}

int weft__req_future_new(weft_loop *loop, weft__req_pool *pool,
                         weft__req_hdr **out) {
  return weft__req_future_new_op(loop, pool, pool->op, out);
}

int weft__req_future_new_op(weft_loop *loop, weft__req_pool *pool,
                            const char *op, weft__req_hdr **out) {
  weft__list *n = weft__list_pop_front(&pool->free);
  weft__req_hdr *r;
  if (n != NULL) {
    r = weft__req_of(n);
  } else {
    void *req = weft__malloc(pool->size);
    if (req == NULL) return -ENOMEM;
    r = (weft__req_hdr *)(void *)((char *)req + sizeof(void *));
  }
  weft__req_init(r);
  r->bytes = 0;
  int err = weft_future_new_op(loop, op, &r->future);
  if (err != 0) {
    weft__list_push_front(&pool->free, weft__req_link(r));
    return err;
  }
  *out = r;
  return 0;
}

void weft__req_future_undo(weft__req_pool *pool, weft__req_hdr *r) {
  weft_future_unref(r->future);
  r->future = NULL;
  weft__list *n = weft__req_link(r);
  if (weft__list_linked(n)) weft__list_unlink(n);
  weft__list_push_front(&pool->free, n);
}

void weft__req_settle(weft__req_pool *pool, weft__req_hdr *r, int status) {
  weft_future *f = r->future;
  int64_t bytes = (int64_t)r->bytes;
  r->future = NULL;
  weft__list *n = weft__req_link(r);
  if (weft__list_linked(n)) weft__list_unlink(n);
  weft__list_push_front(&pool->free, n);
  if (status == 0)
    weft_future_resolve_i64(f, bytes);
  else
    weft_future_reject(f, status);
  weft_future_unref(f);
}

/* ---- the io state -------------------------------------------------------- */

static void net_teardown(weft_loop *loop, void *state) {
  WEFT__UNUSED(loop);
  weft__net *net = state; /* the retry timer is closed: no handle is open */
  weft__free(net->slab);
  pool_clear(&net->wreqs);
  pool_clear(&net->creqs);
  pool_clear(&net->sreqs);
  pool_clear(&net->rdreqs);
  weft__free(net);
}

static void retry_arm(weft__net *net, uint64_t ms);

static void on_retry_closed(weft_handle *h) {
  weft__net *net = h->data;
  /* a listener paused while the timer was closing */
  if (!weft__list_empty(&net->paused)) retry_arm(net, WEFT__ACCEPT_RETRY_MS);
}

/* Closes the retry timer once no listener is paused. */
static void retry_idle(weft__net *net) {
  weft_handle *h = &net->accept_timer.base;
  if (weft__list_empty(&net->paused) && weft__handle_usable(h))
    weft_close(h, on_retry_closed);
}

/* Retries paused listeners: each asks for EV_READ again and accepts what
 * it can; one that still finds no fd pauses again. */
static void on_accept_timer(weft_timer *t) {
  weft__net *net = t->base.data;
  weft__list paused;
  weft__list_init(&paused);
  while (!weft__list_empty(&net->paused)) {
    weft__list *n = weft__list_pop_front(&net->paused);
    weft__list_push_back(&paused, n);
  }
  while (!weft__list_empty(&paused)) {
    weft__list *n = weft__list_pop_front(&paused);
    weft_handle *h = weft__pend_handle(n);
    h->ops->deliver(h); /* a paused listener's deliver accepts again */
  }
  retry_idle(net);
}

/* (Re)arms the retry timer, opening it first if it is closed. While it is
 * still closing, its close callback arms it. If the timer heap cannot grow
 * the listeners stay paused until weft frees an fd (weft__net_fd_freed). */
static void retry_arm(weft__net *net, uint64_t ms) {
  weft_handle *h = &net->accept_timer.base;
  if (!weft__handle_usable(h)) {
    if (h->ops != NULL && !(h->flags & WEFT__H_CLOSED)) return;
    weft_timer_init(net->loop, &net->accept_timer);
    h->data = net;
    weft_unref(h);
  }
  weft_timer_start(&net->accept_timer, on_accept_timer, ms, 0);
}

void weft__net_accept_pause(weft__net *net, weft_handle *h) {
  weft__list_push_back(&net->paused, weft__pend_node(h));
  if (!weft_is_active(&net->accept_timer.base))
    retry_arm(net, WEFT__ACCEPT_RETRY_MS);
}

weft__net *weft__net_get(weft_loop *loop) {
  weft__net *net = weft__module_get(loop, WEFT__MOD_NET);
  if (net != NULL) return net;
  net = weft__calloc(1, sizeof *net);
  if (net == NULL) return NULL;
  net->loop = loop;
  weft__list_init(&net->pending);
  weft__list_init(&net->paused);
  weft__list_init(&net->wreqs.free);
  weft__list_init(&net->creqs.free);
  weft__list_init(&net->sreqs.free);
  weft__list_init(&net->rdreqs.free);
  net->wreqs.size = sizeof(weft_write_req);
  net->creqs.size = sizeof(weft_connect_req);
  net->sreqs.size = sizeof(weft_udp_send_req);
  net->wreqs.op = "weft_stream_write_future";
  net->sreqs.op = "weft_udp_send_future";
  net->rdreqs.size = sizeof(weft__rd_req);
  weft__module_set(loop, WEFT__MOD_NET, net, net_teardown);
  return net;
}

static void deliver_pending(weft__net *net) {
  weft__list batch;
  weft__list_init(&batch);
  /* take the batch: what its callbacks schedule goes in a new run */
  weft__list_splice_back(&batch, &net->pending);
  for (weft__list *n; (n = weft__list_pop_front(&batch)) != NULL;) {
    weft_handle *h = weft__pend_handle(n);
    h->ops->deliver(h);
  }
}

static void net_run(void *arg) {
  weft__net *net = arg;
  net->scheduled = false;
  deliver_pending(net);
}

void weft__net_io_leave(weft__net *net) {
  if (--net->in_io == 0 && !weft__list_empty(&net->pending))
    deliver_pending(net);
}

int weft__net_reserve(weft__net *net) {
  if (net->scheduled || net->in_io) return 0;
  int err = weft_call_soon(net->loop, net_run, net);
  if (err == 0) net->scheduled = true;
  return err;
}

void weft__net_schedule(weft__net *net, weft_handle *h) {
  weft__list *n = weft__pend_node(h);
  if (!weft__list_linked(n)) weft__list_push_back(&net->pending, n);
}

void weft__net_fd_freed(weft_loop *loop) {
  weft__net *net = weft__module_get(loop, WEFT__MOD_NET);
  if (net == NULL) return;
  /* fire the retry now: the fd just closed may be the one it waits for */
  if (!weft__list_empty(&net->paused))
    retry_arm(net, 0);
  else
    retry_idle(net); /* the listener just closed was the last paused */
}
