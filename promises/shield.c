/* weft — shield (asyncio.shield): a future that takes src's outcome but
 * whose cancellation leaves src, and the work behind it, running.
 *
 * A shield is a continuation of src (in its list, which holds a reference
 * to it) holding a reference to src. Firing passes src's outcome on (a
 * pointer value is borrowed: src stays held until the shield is freed).
 * Cancelling it takes it out of src's continuations and lets go of src
 * without cancelling it: src no longer counts the shield as a consumer. */
#include "internal.h"
#include "weft/group.h"

static void shield_fire(weft_future *w) {
  if (w->state != WEFT_FUTURE_PENDING || w->src == NULL) return;
  weft__future_pass(w, w->src);
}

static weft_future *shield_cancel(weft_future *w) {
  weft_future *s = w->src;
  if (s == NULL) return NULL;
  w->src = NULL;
  if (s->state == WEFT_FUTURE_PENDING) weft__future_unwait(s, w);
  weft_future_unref(s);
  return NULL;
}

/* settled by its source only */
static const weft__kind shield_kind = {
    .name = "shield", .fire = shield_fire, .cancel = shield_cancel};
WEFT__KIND(WEFT__K_SHIELD, shield_kind)

int weft_future_shield(weft_future *f, weft_future **out) {
  if (f == NULL || out == NULL) return -EINVAL;
  weft_future *w;
  int err = weft__future_alloc(f->loop, WEFT__K_SHIELD, &w);
  if (err != 0) return err;
  w->src = weft_future_ref(f);
  weft__future_wait(f, weft_future_ref(w)); /* f's list, then the caller's */
  *out = w;
  return 0;
}
