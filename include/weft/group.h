/* weft — structured concurrency: groups and cancellation scopes.
 *
 * A group (asyncio's TaskGroup, libdex's DexTaskGroup) and a scope
 * (asyncio's timeout() with a movable deadline) are futures: each is a
 * weft_future of its own kind, so it can be awaited, chained, put in a
 * combinator, added to another group or attached to another scope. Both
 * own the futures given to them (their "members"):
 *
 *  - members can be added at any time until the group or scope is closed;
 *  - cancelling the group or scope (weft_future_cancel) cancels every
 *    member still pending, and through it the work behind it (a timer, a
 *    pool job's cancel flag, a DNS query, a connect, unsent writes);
 *  - after weft_group_close / weft_scope_close nothing more can be added,
 *    and the group or scope settles once every member has.
 *
 * Neither can be settled by hand: weft_future_resolve / reject / adopt
 * return -EBUSY. Members are held by a reference of the group's own: the
 * caller keeps (and drops) its own. A member's outcome is read from the
 * member itself. Dropping the last reference to a pending group or scope
 * lets go of its members without cancelling them. Loop thread only. */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- groups ----------------------------------------------------------- */

/** weft_group_new() flags. */
enum {
  /** The first member to be rejected cancels every member still pending;
   * the group then takes no more members (weft_group_add cancels them) and
   * settles, rejected, as soon as the cancelled members have, without
   * waiting for weft_group_close (asyncio's TaskGroup). */
  WEFT_GROUP_CANCEL_ON_ERROR = 1u << 0,
};

/** Creates an open group on `loop`: a pending future (the caller holds one
 * reference) that settles after weft_group_close() once every member has:
 * fulfilled (int64: the number of members added) if none was rejected,
 * else rejected with the first member's error (the first to be rejected).
 * A cancelled member is not an error. Every rejected member stays readable
 * with weft_group_errors(). Returns 0, -EINVAL (NULL loop or out, unknown
 * flags), -ENOMEM. */
WEFT_API int weft_group_new(weft_loop *loop, unsigned flags, weft_future **out);

/** Adds f (pending or already settled, any kind, of g's loop) to the group
 * g, which takes its own reference to f. Returns 0; -EINVAL (NULL, g not a
 * group, f == g, another loop); WEFT_ECLOSED if g was closed (f is left
 * alone); -ECANCELED if g was cancelled or is aborting on an error (f is
 * cancelled, as asyncio's TaskGroup closes a late coroutine); -EOVERFLOW
 * past INT32_MAX members; -ENOMEM (nothing added, f left alone). */
WEFT_API int weft_group_add(weft_future *g, weft_future *f);

/** Closes g to new members: g settles once every member has (at once if
 * none is pending). Returns 0; -EINVAL (NULL, not a group); -EALREADY if
 * already closed. Closing a cancelled or aborting group returns 0. */
WEFT_API int weft_group_close(weft_future *g);

/** One rejected member of a group. */
typedef struct weft_group_error {
  size_t index;        /* its position among the members, from 0 */
  int err;             /* its error code */
  weft_future *future; /* the member, borrowed: valid while g is */
} weft_group_error;

/** The group's rejected members so far, in the order they were added:
 * fills out[0 .. min(n, cap)) and returns n, the number of rejected
 * members (cap may be 0 and out NULL to count them). -EINVAL for NULL g,
 * not a group, or out NULL with cap > 0. */
WEFT_API int weft_group_errors(const weft_future *g, weft_group_error *out,
                               size_t cap);

/** Counts of g's members: added in all, still pending. Either pointer may
 * be NULL. Returns 0 or -EINVAL (NULL g, not a group or scope). */
WEFT_API int weft_group_counts(const weft_future *g, size_t *added,
                               size_t *pending);

/* ---- scopes ------------------------------------------------------------ */

/** weft_scope_new() / weft_scope_reschedule(): no deadline. */
#define WEFT_SCOPE_NO_DEADLINE UINT64_MAX

/** Creates a cancellation scope on `loop`: a pending future (the caller
 * holds one reference). Futures attached to it (weft_scope_attach) are
 * cancelled when it is cancelled (weft_future_cancel) or when its deadline,
 * `timeout_ms` from now (WEFT_SCOPE_NO_DEADLINE: none), passes; the scope
 * itself then settles CANCELLED, or REJECTED with -ETIMEDOUT for its
 * deadline. After weft_scope_close() it fulfils (int64: the number of
 * futures attached) once they have all settled, whatever their outcomes,
 * if neither happened first. Members' errors do not reject a scope (a
 * group collects errors; put a group in a scope, or a scope in a group).
 *
 * With a `parent` scope, the new scope is attached to it: cancelling the
 * parent, or its deadline passing, cancels the child and so what is
 * attached to the child; the child's deadline is the earlier of its own
 * and its parent's (weft_scope_deadline). Returns 0; -EINVAL (NULL loop or
 * out, parent not a scope of this loop, timeout_ms > WEFT_TIMEOUT_MAX and
 * not WEFT_SCOPE_NO_DEADLINE); the parent's weft_scope_attach errors
 * (WEFT_ECLOSED, -ECANCELED, -ETIMEDOUT): then no scope is made; -ENOMEM. */
WEFT_API int weft_scope_new(weft_loop *loop, weft_future *parent,
                            uint64_t timeout_ms, weft_future **out);

/** Attaches f (any future of the scope's loop, pending or settled) to s,
 * which takes its own reference. Returns 0; -EINVAL (NULL, s not a scope,
 * f == s, another loop); WEFT_ECLOSED if s was closed (f left alone);
 * -ECANCELED or -ETIMEDOUT if s was cancelled or its deadline passed (f is
 * then cancelled at once); -EOVERFLOW past INT32_MAX; -ENOMEM (f left
 * alone). */
WEFT_API int weft_scope_attach(weft_future *s, weft_future *f);

/** Moves s's own deadline to `timeout_ms` from now (asyncio's
 * Timeout.reschedule), or removes it (WEFT_SCOPE_NO_DEADLINE); a parent's
 * deadline still applies. Returns 0; -EINVAL (NULL, not a scope, bad
 * timeout); -EALREADY if s has settled; -ENOMEM (the old deadline is
 * kept). */
WEFT_API int weft_scope_reschedule(weft_future *s, uint64_t timeout_ms);

/** Stores in *at the time (on weft_now()'s clock, in ms) at which s will
 * be cancelled: the earliest of its own deadline and its pending
 * ancestors', or WEFT_SCOPE_NO_DEADLINE. Returns 0, -EINVAL (NULL, not a
 * scope), -EALREADY if s has settled. */
WEFT_API int weft_scope_deadline(const weft_future *s, uint64_t *at);

/** Closes s to new attachments: s fulfils once every attached future has
 * settled (at once if none is pending), unless it is cancelled or its
 * deadline passes first. Returns 0; -EINVAL (NULL, not a scope);
 * -EALREADY if already closed. Closing a settled scope returns 0. */
WEFT_API int weft_scope_close(weft_future *s);

/* ---- which input, in what order, and shielding --------------------------- */

/** Like weft_future_race, but *out fulfils with the position (int64, from
 * 0) of the first input to settle, whatever its outcome; read the outcome
 * from fs[i] itself. Cancelling *out cancels the inputs it is the only
 * consumer of. Empty input: stays pending until cancelled (as race).
 * Returns 0, -EINVAL (NULL loop, out, fs with n > 0, a NULL input, an
 * input of another loop), -ENOMEM (nothing registered). */
WEFT_API int weft_future_race_index(weft_loop *loop, weft_future *const *fs,
                                    size_t n, weft_future **out);

/** Hands out the inputs in the order they settle (asyncio's as_completed):
 *  - cb (may be NULL) runs once per input, as each settles, from the
 *    loop's deferred queue: cb(input, arg), input valid during the call;
 *  - outs (may be NULL, an array of n) gets n new futures (the caller holds
 *    one reference to each): outs[k] takes the outcome of the k-th input to
 *    settle, so draining outs[0], outs[1], ... waits for the inputs in
 *    completion order. Cancelling outs[k] gives up position k only: the
 *    inputs are not touched and the k-th outcome goes nowhere. outs cannot
 *    be settled by hand (-EBUSY).
 * The inputs are not cancelled by anything here. n == 0 does nothing.
 * Returns 0, -EINVAL (cb and outs both NULL, as weft_future_race_index),
 * -ENOMEM (nothing registered, outs all NULL). */
WEFT_API int weft_future_as_completed(weft_loop *loop, weft_future *const *fs,
                                      size_t n, weft_future_cb cb, void *arg,
                                      weft_future **outs);

/** asyncio.shield: *out (the caller's reference) takes f's outcome when f
 * settles; cancelling *out settles it CANCELLED and leaves f, and the work
 * behind it, running (f no longer counts *out as a consumer). *out cannot
 * be settled by hand (-EBUSY). Returns 0, -EINVAL (NULL), -ENOMEM. */
WEFT_API int weft_future_shield(weft_future *f, weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_GROUP_H */
