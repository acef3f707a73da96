/* weft — the loop's net state: the shared read buffer, deferred delivery of
 * completions that happened inside a start call, free lists for the future
 * forms, and the timer that retries listeners paused by fd exhaustion.
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

static void net_teardown(weft_loop *loop, void *state) {
  WEFT__UNUSED(loop);
  weft__net *net = state; /* the retry timer is closed: no handle is open */
  weft__free(net->slab);
  while (net->free_wreqs) {
    weft_write_req *r = net->free_wreqs;
    net->free_wreqs = r->next;
    weft__free(r);
  }
  while (net->free_creqs) {
    weft_connect_req *r = net->free_creqs;
    net->free_creqs = (weft_connect_req *)r->data;
    weft__free(r);
  }
  while (net->free_sreqs) {
    weft_udp_send_req *r = net->free_sreqs;
    net->free_sreqs = r->next;
    weft__free(r);
  }
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
    weft_stream *s = (weft_stream *)(void *)((char *)n - sizeof(weft_handle));
    weft__stream_accept_resume(s);
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
  if (!weft_is_active(&net->accept_timer.base)) retry_arm(net, WEFT__ACCEPT_RETRY_MS);
}

weft__net *weft__net_get(weft_loop *loop) {
  weft__net *net = weft__module_get(loop, WEFT__MOD_NET);
  if (net != NULL) return net;
  net = weft__calloc(1, sizeof *net);
  if (net == NULL) return NULL;
  net->loop = loop;
  weft__list_init(&net->pending);
  weft__list_init(&net->paused);
  weft__module_set(loop, WEFT__MOD_NET, net, net_teardown);
  return net;
}

static void deliver_pending(weft__net *net) {
  weft__list batch;
  weft__list_init(&batch);
  /* take the batch: what its callbacks schedule goes in a new run */
  if (!weft__list_empty(&net->pending)) {
    batch.next = net->pending.next;
    batch.prev = net->pending.prev;
    batch.next->prev = batch.prev->next = &batch;
    weft__list_init(&net->pending);
  }
  while (!weft__list_empty(&batch)) {
    weft__list *n = weft__list_pop_front(&batch);
    weft_handle *h = (weft_handle *)(void *)((char *)n - sizeof(weft_handle));
    if (h->ops->type == WEFT_HANDLE_UDP) weft__udp_deliver((weft_udp *)h);
    else weft__stream_deliver((weft_stream *)h);
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
  if (!weft__list_empty(&net->paused)) retry_arm(net, 0);
  else retry_idle(net); /* the listener just closed was the last paused */
}

void weft__net_settle(weft_future *f, int status, void *data) {
  if (status == 0) weft_future_resolve_i64(f, (int64_t)(uintptr_t)data);
  else weft_future_reject(f, status);
  weft_future_unref(f);
}
