/* weft — the handle base: registration, active/ref accounting, two-phase
 * close and walking.
 *
 * Lifecycle (docs/handles.md): init -> [active <-> inactive] -> closing ->
 * closed. weft_close() stops the handle at once and queues it; the loop's
 * close phase runs the type's finish hook (failing pending requests with
 * -ECANCELED), unlinks the handle, then calls the close callback. */
#include "internal.h"

void weft__handle_init(weft_loop *loop, weft_handle *h,
                       const weft__handle_ops *ops) {
  void *data = h->data;
  *h = (weft_handle){0};
  h->data = data;
  h->loop = loop;
  h->ops = ops;
  weft__list_insert(&loop->handles, &h->all);
  loop->handle_count++;
}

void weft__handle_start(weft_handle *h) {
  if (h->flags & WEFT__H_ACTIVE) return;
  h->flags |= WEFT__H_ACTIVE;
  if (!(h->flags & WEFT__H_UNREF)) weft__alive_add(h->loop, 1);
}

void weft__handle_stop(weft_handle *h) {
  if (!(h->flags & WEFT__H_ACTIVE)) return;
  h->flags &= ~WEFT__H_ACTIVE;
  if (!(h->flags & WEFT__H_UNREF)) weft__alive_add(h->loop, -1);
}

/* Doubles the close queue's array; -ENOMEM leaves it as it was. */
static int closing_grow(weft_loop *loop) {
  if (loop->closing_cap > UINT32_MAX / 2) return -ENOMEM;
  uint32_t cap =
      loop->closing_cap ? loop->closing_cap * 2 : WEFT__CLOSING_INITIAL;
  weft_handle **vec =
      weft__realloc(loop->closing_vec, (size_t)cap * sizeof *vec);
  if (vec == NULL) return -ENOMEM;
  loop->closing_vec = vec;
  loop->closing_cap = cap;
  return 0;
}

/* Appends `h` to the close queue (core/internal.h): to the array while the
 * list is empty and the array has or gets room, else to the list. */
static void closing_push(weft_loop *loop, weft_handle *h) {
  if (WEFT__LIKELY(loop->closing_head == NULL) &&
      (loop->closing_len < loop->closing_cap || closing_grow(loop) == 0)) {
    loop->closing_vec[loop->closing_len++] = h;
    return;
  }
  h->closing_next = NULL;
  *loop->closing_tail = h;
  loop->closing_tail = &h->closing_next;
}

int weft_close(weft_handle *h, weft_close_cb cb) {
  if (h == NULL || h->ops == NULL || h->loop == NULL) return -EINVAL;
  WEFT__CHECK_THREAD(h->loop);
  if (h->flags & (WEFT__H_CLOSING | WEFT__H_CLOSED)) return -EALREADY;
  weft_loop *loop = h->loop;
  h->flags |= WEFT__H_CLOSING;
  h->close_cb = cb;
  h->ops->close(h);
  weft__handle_stop(h);
  closing_push(loop, h);
  weft__alive_add(loop, 1); /* until the close callback has run */
  weft__loop_want_turn(loop);
  return 0;
}

weft_loop *weft_handle_loop(const weft_handle *h) { return h ? h->loop : NULL; }

weft_handle_type weft_handle_get_type(const weft_handle *h) {
  return h && h->ops ? h->ops->type : WEFT_HANDLE_UNKNOWN;
}

const char *weft_handle_type_name(weft_handle_type type) {
  static const char *const names[WEFT_HANDLE_TYPE_MAX] = {
      [WEFT_HANDLE_UNKNOWN] = "unknown", [WEFT_HANDLE_TIMER] = "timer",
      [WEFT_HANDLE_SIGNAL] = "signal",   [WEFT_HANDLE_TCP] = "tcp",
      [WEFT_HANDLE_PIPE] = "pipe",       [WEFT_HANDLE_UDP] = "udp",
      [WEFT_HANDLE_PROCESS] = "process", [WEFT_HANDLE_POLL] = "poll",
      [WEFT_HANDLE_PREPARE] = "prepare", [WEFT_HANDLE_CHECK] = "check",
      [WEFT_HANDLE_IDLE] = "idle",       [WEFT_HANDLE_WATCH] = "watch",
      [WEFT_HANDLE_FS_POLL] = "fs_poll", [WEFT_HANDLE_TTY] = "tty",
  };
  if ((unsigned)type >= WEFT_HANDLE_TYPE_MAX) return "unknown";
  return names[type];
}

bool weft_is_active(const weft_handle *h) {
  return h != NULL && (h->flags & WEFT__H_ACTIVE) != 0;
}

bool weft_is_closing(const weft_handle *h) {
  return h != NULL && (h->flags & (WEFT__H_CLOSING | WEFT__H_CLOSED)) != 0;
}

void weft_ref(weft_handle *h) {
  if (h == NULL || !(h->flags & WEFT__H_UNREF)) return;
  WEFT__CHECK_THREAD_VOID(h->loop);
  h->flags &= ~WEFT__H_UNREF;
  if (h->flags & WEFT__H_ACTIVE) weft__alive_add(h->loop, 1);
}

void weft_unref(weft_handle *h) {
  if (h == NULL || (h->flags & WEFT__H_UNREF)) return;
  WEFT__CHECK_THREAD_VOID(h->loop);
  h->flags |= WEFT__H_UNREF;
  if (h->flags & WEFT__H_ACTIVE) weft__alive_add(h->loop, -1);
}

bool weft_has_ref(const weft_handle *h) {
  return h != NULL && !(h->flags & WEFT__H_UNREF);
}

void weft_walk(weft_loop *loop, weft_walk_cb cb, void *arg) {
  if (loop == NULL || cb == NULL) return;
  WEFT__CHECK_THREAD_VOID(loop);
  /* the callback may close its handle, which stays linked until the close
   * phase, so taking `next` first is safe */
  WEFT__LIST_FOREACH_SAFE(it, next, &loop->handles)
  cb(WEFT__CONTAINER_OF(it, weft_handle, all), arg);
}
