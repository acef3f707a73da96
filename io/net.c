/* weft — the loop's net state: the shared read buffer, deferred delivery of
 * completions that happened inside a start call, free lists for the future
 * forms, and the timer that retries listeners paused by fd exhaustion.
 *
 * Deferred delivery: a start call that may complete synchronously first
 * reserves a delivery run (one weft_call_soon per batch), so that once the
 * operation is accepted its completion can always be delivered: there is
 * no -ENOMEM after the kernel has taken the bytes. */
#include "internal.h"

static void net_teardown(weft_loop *loop, void *state) {
  weft__net *net = state;
  if (ev_is_active(&net->accept_timer)) {
    ev_ref(loop->ev);
    ev_timer_stop(loop->ev, &net->accept_timer);
  }
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

/* Retries paused listeners: each asks for EV_READ again and accepts what
 * it can; one that still finds no fd pauses again. */
static void on_accept_timer(struct ev_loop *ev, ev_timer *w, int revents) {
  WEFT__UNUSED(revents);
  ev_ref(ev); /* a one-shot timer stopped itself: give back the unref */
  weft__net *net = w->data;
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
}

weft__net *weft__net_get(weft_loop *loop) {
  weft__net *net = weft__module_get(loop, WEFT__MOD_NET);
  if (net != NULL) return net;
  net = weft__calloc(1, sizeof *net);
  if (net == NULL) return NULL;
  net->loop = loop;
  weft__list_init(&net->pending);
  weft__list_init(&net->paused);
  ev_timer_init(&net->accept_timer, on_accept_timer, WEFT__ACCEPT_RETRY_S, 0.);
  net->accept_timer.data = net;
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
  if (net == NULL || weft__list_empty(&net->paused)) return;
  /* fire the retry now: the fd just closed may be the one it waits for */
  if (ev_is_active(&net->accept_timer)) {
    ev_ref(loop->ev);
    ev_timer_stop(loop->ev, &net->accept_timer);
  }
  ev_timer_set(&net->accept_timer, 0., 0.);
  ev_timer_start(loop->ev, &net->accept_timer);
  ev_unref(loop->ev);
}

void weft__net_settle(weft_future *f, int status, void *data) {
  if (status == 0) weft_future_resolve_i64(f, (int64_t)(uintptr_t)data);
  else weft_future_reject(f, status);
  weft_future_unref(f);
}
