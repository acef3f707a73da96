/* weft — loop phase hooks: prepare, check and idle handles.
 *
 * A started hook is linked, in start order, on one of the loop's three
 * lists (loop->hooks[]); the loop core calls weft__hooks_run() from its own
 * prepare watcher (idle, then prepare, before anything else there) and from
 * its check watcher (check, before the deferred queue drains). Nothing is
 * allocated: the handle is the list node. Idle handles also keep
 * loop->idle_active, which keeps the loop's ev_idle started (so the poll
 * does not block) and makes weft_loop_backend_timeout() say 0. */
#include "internal.h"
#include "weft/hooks.h"

/* The three public structs share one layout; the code works on it. */
typedef struct hook {
  weft_handle base;
  void (*cb)(void); /* storage only: each kind sets and calls its own */
  weft__list node;
} hook;

#define SAME_LAYOUT(T)                                                         \
  _Static_assert(offsetof(T, cb) == offsetof(hook, cb) &&                      \
                     offsetof(T, node) == offsetof(hook, node) &&              \
                     sizeof(T) == sizeof(hook),                                \
                 #T " differs from the hook layout")
SAME_LAYOUT(weft_prepare);
SAME_LAYOUT(weft_check);
SAME_LAYOUT(weft_idle);

static void hook_stop(hook *h) {
  if (!weft__list_linked(&h->node)) return;
  weft__list_unlink(&h->node);
  if (h->base.ops->type == WEFT_HANDLE_IDLE) h->base.loop->idle_active--;
  weft__handle_stop(&h->base);
}

static void hook_close(weft_handle *h) { hook_stop((hook *)(void *)h); }

static const weft__handle_ops ops[3] = {
    [WEFT__HOOK_PREPARE] = {WEFT_HANDLE_PREPARE, hook_close, NULL, NULL},
    [WEFT__HOOK_CHECK] = {WEFT_HANDLE_CHECK, hook_close, NULL, NULL},
    [WEFT__HOOK_IDLE] = {WEFT_HANDLE_IDLE, hook_close, NULL, NULL},
};

static int hook_init(weft_loop *loop, hook *h, int kind) {
  if (loop == NULL || h == NULL) return -EINVAL;
  WEFT__CHECK_INIT(loop, &h->base);
  weft__handle_init(loop, &h->base, &ops[kind]);
  h->node = (weft__list){0};
  return 0;
}

static int hook_start(hook *h, int kind) {
  if (h->base.ops != &ops[kind] || !weft__handle_usable(&h->base))
    return -EINVAL;
  if (weft__list_linked(&h->node)) return 0;
  weft_loop *loop = h->base.loop;
  weft__list_insert(&loop->hooks[kind], &h->node);
  if (kind == WEFT__HOOK_IDLE) {
    loop->idle_active++;
    weft__loop_want_turn(loop);
  }
  weft__handle_start(&h->base);
  return 0;
}

static int hook_stop_checked(hook *h, int kind) {
  if (h == NULL || h->base.ops != &ops[kind]) return -EINVAL;
  hook_stop(h);
  return 0;
}

/* Each kind's callback through its own type. */
static void call_hook(hook *h, int kind) {
  void *p = h;
  switch (kind) {
  case WEFT__HOOK_PREPARE:
    ((weft_prepare *)p)->cb(p);
    break;
  case WEFT__HOOK_CHECK:
    ((weft_check *)p)->cb(p);
    break;
  default:
    ((weft_idle *)p)->cb(p);
    break;
  }
}

/* The started hooks are moved to a batch; each goes back on the loop's
 * list before its callback runs. A callback that stops (or closes) a hook
 * still in the batch unlinks it from there, so it does not run; one it
 * starts joins the loop's list, behind this turn's batch: next turn. */
void weft__hooks_run(weft_loop *loop, int kind) {
  weft__list batch;
  weft__list_init(&batch);
  weft__list_splice_back(&batch, &loop->hooks[kind]);
  weft__list *n;
  while ((n = weft__list_pop_front(&batch)) != NULL) {
    weft__list_insert(&loop->hooks[kind], n);
    hook *h = WEFT__CONTAINER_OF(n, hook, node);
    loop->m.hooks++;
    if (WEFT__UNLIKELY(loop->slow_cb != NULL)) {
      weft_any_fn fn = h->cb; /* the callback may close and free h */
      uint64_t t0 = weft__clock_ns();
      call_hook(h, kind);
      weft__slow_check(loop, fn, t0);
    } else {
      call_hook(h, kind);
    }
  }
}

/* The public functions, one set per kind. */
#define HOOK_API(name, KIND)                                                   \
  int weft_##name##_init(weft_loop *loop, weft_##name *h) {                    \
    int err = hook_init(loop, (hook *)(void *)h, KIND);                        \
    if (err == 0) h->cb = NULL;                                                \
    return err;                                                                \
  }                                                                            \
  int weft_##name##_start(weft_##name *h, weft_##name##_cb cb) {               \
    if (h == NULL || cb == NULL) return -EINVAL;                               \
    int err = hook_start((hook *)(void *)h, KIND);                             \
    if (err == 0)                                                              \
      h->cb = cb; /* before it can run: next phase at the soonest */           \
    return err;                                                                \
  }                                                                            \
  int weft_##name##_stop(weft_##name *h) {                                     \
    return hook_stop_checked((hook *)(void *)h, KIND);                         \
  }

HOOK_API(prepare, WEFT__HOOK_PREPARE)
HOOK_API(check, WEFT__HOOK_CHECK)
HOOK_API(idle, WEFT__HOOK_IDLE)
