/* weft — fiber conveniences over the fs, pool and process futures: one
 * call makes the future and awaits it (include/weft/fiber.h, "one-call
 * forms"). Nothing here allocates beyond the future form it wraps. */
#include <weft/fs.h>
#include <weft/group.h>
#include <weft/pool.h>
#include <weft/process.h>
#include <weft/timer.h>

#include "../promises/fiber_internal.h"
#include "../promises/internal.h"

/* `err` is the error of the call that made *f (which set *f only on 0).
 * Awaits *f; on success *out takes the caller's reference, otherwise *f is
 * dropped and *out stays NULL. */
static int await_keep(int err, weft_future *const *f, weft_future **out) {
  if (err == 0 && (err = weft_await(*f)) != 0) weft_future_unref(*f);
  if (err == 0) *out = *f;
  return err;
}

int weft_fiber_read_file(const char *path, weft_future **out) {
  if (out != NULL) *out = NULL;
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  if (out == NULL) return -EINVAL;
  weft_future *f = NULL;
  int err = weft_fs_read_file_future(weft_fiber_loop(self), path, &f);
  return await_keep(err, &f, out);
}

int weft_fiber_scandir(const char *path, weft_future **out) {
  if (out != NULL) *out = NULL;
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  if (out == NULL) return -EINVAL;
  weft_future *f = NULL;
  int err = weft_fs_scandir_future(weft_fiber_loop(self), path, &f);
  return await_keep(err, &f, out);
}

int weft_fiber_run_in_pool(weft_pool_lane lane, weft_pool_fn fn, void *arg,
                           weft_dtor dtor, void **result) {
  if (result != NULL) *result = NULL;
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  weft_future *f;
  int err =
      weft_pool_submit_future(weft_fiber_loop(self), lane, fn, arg, dtor, &f);
  if (err != 0) return err;
  if ((err = weft_await(f)) == 0 && result != NULL) {
    *result = weft_future_value(f);
    f->u.dtor = NULL; /* the value is the caller's now */
  }
  weft_future_unref(f);
  return err;
}

int weft_fiber_process_wait(weft_process *p, uint64_t timeout_ms,
                            int64_t *status) {
  if (status != NULL) *status = 0;
  if (!weft_in_fiber()) return -EPERM;
  if (timeout_ms > WEFT_TIMEOUT_MAX) return -EINVAL;
  weft_future *exit_f, *shielded, *timed;
  int err = weft_process_exit_future(p, &exit_f);
  if (err != 0) return err;
  if (timeout_ms == 0) return weft_await_take_i64(exit_f, status);
  /* the shield keeps the exit future (shared by every caller) alive and
   * uncancelled when the timeout or a cancel gives up on it */
  if ((err = weft_future_shield(exit_f, &shielded)) == 0) {
    err = weft_future_timeout(shielded, timeout_ms, &timed);
    weft_future_unref(shielded);
    if (err == 0) err = weft_await_take_i64(timed, status);
  }
  weft_future_unref(exit_f);
  return err;
}
