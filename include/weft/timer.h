/* weft — timers. Milliseconds on the surface.
 *
 * Timers whose deadlines are equal fire in the order they were started.
 * Expired timers are collected before any of them runs, so a callback that
 * restarts its own timer with a 0 ms timeout fires again on the next turn,
 * never in a spin within this one. Likewise any timer started during the
 * batch, even on the deadline of a timer in the batch, or made due in it by
 * weft_update_time(), waits for the next turn; one stopped or closed by an
 * earlier callback of the batch does not fire. */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest accepted timeout or repeat, in ms (about 292 million years). */
#define WEFT_TIMEOUT_MAX ((uint64_t)INT64_MAX / 2)

typedef struct weft_timer weft_timer;
/** Runs on the loop's thread when the timer expires. */
typedef void (*weft_timer_cb)(weft_timer *t);

/** A timer handle; embed it anywhere. Fields after `base` are private. */
struct weft_timer {
  weft_handle base;
  /* private */
  weft_timer_cb cb;
  uint64_t repeat;
  struct weft__list node; /* in its deadline's bucket, start order */
  void *bucket; /* NULL while stopped; holds the deadline while active */
};

/** Initialises `t` on `loop` (inactive). Returns 0 or -EINVAL. The handle
 * is open until weft_close(&t->base, ...) finishes. */
WEFT_API int weft_timer_init(weft_loop *loop, weft_timer *t);

/** (Re)starts the timer: `cb` runs after `timeout_ms`, then every
 * `repeat_ms` if that is nonzero. Restarting an active timer moves it.
 * Returns 0; -EINVAL for NULL, a closing handle, or a timeout or repeat
 * above WEFT_TIMEOUT_MAX (negative values cast to uint64_t land there);
 * -ENOMEM if the timer structures had to grow and could not; nothing then
 * changes (a stopped timer stays stopped, an active one keeps its
 * deadline, callback and repeat). */
WEFT_API int weft_timer_start(weft_timer *t, weft_timer_cb cb,
                              uint64_t timeout_ms, uint64_t repeat_ms);

/** Stops the timer; its callback will not run. Stopping an inactive timer
 * is a no-op. Returns 0 or -EINVAL for NULL. */
WEFT_API int weft_timer_stop(weft_timer *t);

/** Restarts a repeating timer with its repeat as timeout (stops it if the
 * repeat is 0). Returns 0, -EINVAL for NULL or a timer never started (no
 * callback), -ENOMEM as weft_timer_start(). */
WEFT_API int weft_timer_again(weft_timer *t);

/** Sets the repeat used from the next expiry on. Returns 0; -EINVAL for
 * NULL or above WEFT_TIMEOUT_MAX; -ENOMEM if an active timer becomes
 * repeating and the room for rescheduling it could not be reserved (the
 * repeat is then unchanged). */
WEFT_API int weft_timer_set_repeat(weft_timer *t, uint64_t repeat_ms);

/** The repeat interval in ms (0 for NULL). */
WEFT_API uint64_t weft_timer_get_repeat(const weft_timer *t);

/** Milliseconds until the timer is due (0 if due or inactive). */
WEFT_API uint64_t weft_timer_due_in(const weft_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TIMER_H */
