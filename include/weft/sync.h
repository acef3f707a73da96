/* weft — async primitives on futures, after asyncio's set: event, lock,
 * semaphore, condition, bounded queue.
 *
 * Every primitive belongs to one loop and is used from its thread, except
 * weft_queue_put_threadsafe() and weft_queue_get_threadsafe(). A waiting
 * operation returns a future (the caller holds one reference) that settles when
 * the wait is over; waiters are served first come, first served. Cancelling a
 * waiting future (weft_future_cancel) removes it from the wait list without
 * disturbing the others. Freeing or closing a primitive rejects its waiters
 * with WEFT_ECLOSED (closing a queue leaves its weft_queue_join futures
 * waiting; freeing it rejects them). */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- event ----------------------------------------------------------------
 */

/** A flag that futures can wait for (asyncio.Event). */
typedef struct weft_event weft_event;

/** Creates a cleared event. Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_event_new(weft_loop *loop, weft_event **out);
/** Frees the event; waiters are rejected with WEFT_ECLOSED. -EINVAL for
 * NULL. */
WEFT_API int weft_event_free(weft_event *ev);
/** Sets the flag and fulfils (int64 0) every waiter. Returns 0, -EINVAL. */
WEFT_API int weft_event_set(weft_event *ev);
/** Clears the flag. Returns 0, -EINVAL. */
WEFT_API int weft_event_clear(weft_event *ev);
/** True if set (false for NULL). */
WEFT_API bool weft_event_is_set(const weft_event *ev);
/** *out: a future fulfilled (int64 0) once the flag is set (already
 * fulfilled if it is). Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_event_wait(weft_event *ev, weft_future **out);

/* ---- lock --------------------------------------------------------------- */

/** A mutual-exclusion lock for tasks on one loop (asyncio.Lock), FIFO fair:
 * release hands the lock straight to the oldest waiter. */
typedef struct weft_lock weft_lock;

/** Creates an unlocked lock. Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_lock_new(weft_loop *loop, weft_lock **out);
/** Frees the lock (free conditions on it first); waiters are rejected with
 * WEFT_ECLOSED. -EINVAL for NULL. */
WEFT_API int weft_lock_free(weft_lock *lock);
/** *out: a future fulfilled (int64 0) when the caller holds the lock
 * (already fulfilled if it was free and nobody waited). The holder must
 * call weft_lock_release(). A cancelled acquire never holds the lock.
 * Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_lock_acquire(weft_lock *lock, weft_future **out);
/** Releases the lock, handing it to the oldest waiter if any. Returns 0,
 * -EINVAL, -EPERM if it is not locked. */
WEFT_API int weft_lock_release(weft_lock *lock);
/** True while held (false for NULL). */
WEFT_API bool weft_lock_locked(const weft_lock *lock);

/* ---- semaphore ---------------------------------------------------------- */

/** A counting semaphore (asyncio.Semaphore), FIFO fair. */
typedef struct weft_semaphore weft_semaphore;

/** Creates a semaphore with `value` permits. Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_semaphore_new(weft_loop *loop, unsigned value,
                                weft_semaphore **out);
/** Frees it; waiters are rejected with WEFT_ECLOSED. -EINVAL for NULL. */
WEFT_API int weft_semaphore_free(weft_semaphore *sem);
/** *out: a future fulfilled (int64 0) once a permit is taken. Returns 0,
 * -EINVAL, -ENOMEM. */
WEFT_API int weft_semaphore_acquire(weft_semaphore *sem, weft_future **out);
/** Gives a permit back, to the oldest waiter if any. Returns 0, -EINVAL,
 * -EOVERFLOW if the count would exceed UINT_MAX. */
WEFT_API int weft_semaphore_release(weft_semaphore *sem);
/** Permits available now (0 for NULL). */
WEFT_API unsigned weft_semaphore_value(const weft_semaphore *sem);

/** A bounded semaphore (asyncio.BoundedSemaphore): as weft_semaphore_new,
 * but weft_semaphore_release() beyond the initial `value` (with no permit
 * taken to give back) fails with -EOVERFLOW and changes nothing. Free it
 * with weft_semaphore_free. Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_semaphore_new_bounded(weft_loop *loop, unsigned value,
                                        weft_semaphore **out);

/* ---- barrier --------------------------------------------------------------
 */

/** A reusable barrier of n parties (asyncio.Barrier, threading.Barrier). */
typedef struct weft_barrier weft_barrier;

/** Creates a barrier for `parties` (> 0) arrivals per cycle. Returns 0,
 * -EINVAL (NULL, parties 0), -ENOMEM. */
WEFT_API int weft_barrier_new(weft_loop *loop, unsigned parties,
                              weft_barrier **out);
/** Frees it; waiters are rejected with WEFT_ECLOSED. -EINVAL for NULL. */
WEFT_API int weft_barrier_free(weft_barrier *b);
/** Arrives: *out (the caller's reference) fulfils once `parties` arrivals
 * of this cycle have been made, with this arrival's position (int64, 0 ..
 * parties-1, in arrival order; the last arrival's future is fulfilled
 * already, with parties-1). The barrier then starts a new cycle.
 * Cancelling a waiting future takes that arrival back. Returns 0; -EINVAL;
 * WEFT_EBROKEN (no future) while the barrier is broken (aborted and not
 * reset); -ENOMEM. */
WEFT_API int weft_barrier_wait(weft_barrier *b, weft_future **out);
/** Breaks the barrier: the waiters are rejected with WEFT_EBROKEN, and so
 * is every later wait until weft_barrier_reset. Returns 0, -EINVAL. */
WEFT_API int weft_barrier_abort(weft_barrier *b);
/** Rejects the waiters of the cycle under way with WEFT_EBROKEN and starts
 * afresh, unbroken. Returns 0, -EINVAL. */
WEFT_API int weft_barrier_reset(weft_barrier *b);
/** Arrivals waiting in the cycle under way (0 for NULL). */
WEFT_API unsigned weft_barrier_waiting(const weft_barrier *b);
/** The number of parties (0 for NULL). */
WEFT_API unsigned weft_barrier_parties(const weft_barrier *b);
/** True once aborted, until reset (false for NULL). */
WEFT_API bool weft_barrier_broken(const weft_barrier *b);

/* ---- condition ------------------------------------------------------------
 */

/** A condition variable bound to a weft_lock (asyncio.Condition). */
typedef struct weft_condition weft_condition;

/** Creates a condition on `lock`. Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_condition_new(weft_lock *lock, weft_condition **out);
/** Frees it; waiters are rejected with WEFT_ECLOSED. -EINVAL for NULL. */
WEFT_API int weft_condition_free(weft_condition *cond);
/** The caller must hold the lock. Releases it and returns in *out a future
 * fulfilled (int64 0) once notified AND the lock is held again. A wait
 * cancelled before that does not hold the lock. Returns 0, -EINVAL,
 * -EPERM (lock not held), -ENOMEM (the lock is then still held). */
WEFT_API int weft_condition_wait(weft_condition *cond, weft_future **out);
/** Wakes up to n waiters, oldest first (each then queues for the lock).
 * Returns how many were woken, or -EINVAL. */
WEFT_API int weft_condition_notify(weft_condition *cond, unsigned n);
/** Wakes every waiter. Returns how many, or -EINVAL. */
WEFT_API int weft_condition_notify_all(weft_condition *cond);

/* ---- bounded queue ----------------------------------------------------------
 */

/** A bounded FIFO (or LIFO, or priority queue: weft_queue_new_ex) of
 * void * (asyncio.Queue), which other threads can feed
 * with weft_queue_put_threadsafe(). Items are owned by the queue while in
 * it and by whoever gets them. */
typedef struct weft_queue weft_queue;

/** Creates a queue holding up to `capacity` (>= 1) items; `dtor` (may be
 * NULL) frees items still inside when the queue is freed. Returns 0,
 * -EINVAL, -ENOMEM. */
WEFT_API int weft_queue_new(weft_loop *loop, size_t capacity, weft_dtor dtor,
                            weft_queue **out);

/** The order in which a queue hands items out. */
typedef enum weft_queue_kind {
  WEFT_QUEUE_FIFO = 0, /* oldest first (weft_queue_new) */
  WEFT_QUEUE_LIFO,     /* newest first (asyncio.LifoQueue) */
  WEFT_QUEUE_PRIORITY  /* smallest first by a comparator (PriorityQueue) */
} weft_queue_kind;

/** Orders two item pointers for WEFT_QUEUE_PRIORITY: negative when `a`
 * comes out before `b`, 0 when equal, positive after (as qsort's). */
typedef int (*weft_queue_cmp)(const void *a, const void *b);

/** weft_queue_new with an order: `kind` FIFO or LIFO with `cmp` NULL, or
 * PRIORITY with a `cmp` (a binary heap: the smallest item by `cmp` comes
 * out first; equal items come out in the order they entered the queue).
 * Every get (weft_queue_get, try_get, get_threadsafe) takes the next item
 * in that order; a put waiting while the queue is full is ordered from the
 * moment it enters. `cmp` is called on the loop thread and, from
 * put_threadsafe and get_threadsafe, on the calling thread, under the
 * queue's mutex (it must not call the queue). Returns 0, -EINVAL (also: unknown
 * kind, PRIORITY without cmp, cmp with FIFO or LIFO), -ENOMEM. */
WEFT_API int weft_queue_new_ex(weft_loop *loop, size_t capacity, weft_dtor dtor,
                               weft_queue_kind kind, weft_queue_cmp cmp,
                               weft_queue **out);
/** Closes (if not yet), frees the items left (dtor) and the queue. Returns
 * 0, -EINVAL, -EBUSY while a thread is still blocked in put_threadsafe or
 * get_threadsafe (close first: they return) or a hand-off between a thread
 * and a loop-side put or get is on its way (run the loop, then retry). */
WEFT_API int weft_queue_free(weft_queue *q);
/** *out: a future fulfilled (int64 0) once `item` is in the queue (at once
 * if there is room), waiting while the queue is full. If the put is
 * cancelled or the queue closed first, the item stays the caller's.
 * Returns 0, -EINVAL, -ENOMEM, WEFT_ECLOSED. */
WEFT_API int weft_queue_put(weft_queue *q, void *item, weft_future **out);
/** *out: a future fulfilled with the next item (oldest, or per the kind) (a
 * pointer value with no dtor: the getter owns the item), waiting while the
 * queue is empty. Returns 0, -EINVAL, -ENOMEM, WEFT_ECLOSED (closed and empty).
 */
WEFT_API int weft_queue_get(weft_queue *q, weft_future **out);
/** Any thread: puts `item`, blocking the calling thread while the queue is
 * full (threads blocked in it are served oldest first). The item is in the
 * queue when it returns 0 (and counts as an unfinished task): handed to
 * the oldest thread blocked in get_threadsafe, or in the queue for the
 * next get; while a weft_queue_get waits on the loop, it is that get's,
 * handed to it on the loop thread (loop gets are served before blocked
 * threads). Thread to thread, nothing goes through the loop. Returns 0;
 * -EINVAL; WEFT_ECLOSED once closed (also when the close comes while it
 * is blocked); -ENOMEM or -ESHUTDOWN (only while a loop get waits: the
 * hand-off could not be posted; the item stays the caller's). Do not call
 * it from the loop thread while the queue is full (it would wait for the
 * loop forever). */
WEFT_API int weft_queue_put_threadsafe(weft_queue *q, void *item);
/** Any thread but the loop's: takes the next item (per the kind) into *item,
 * blocking the calling thread while the queue is empty, for up to `timeout_ms`
 * milliseconds (WEFT_WAIT_FOREVER: no limit; 0: does not block). The
 * caller then owns the item. The freed slot goes to the oldest waiting
 * weft_queue_put (refilled on the loop thread, which is then the only
 * post), else at once to the oldest thread blocked in put_threadsafe. A
 * weft_queue_get waiting on the loop is served before blocked threads. Returns
 * 0; -ETIMEDOUT (still empty); WEFT_ECLOSED once the queue is closed and empty
 * (closing wakes every blocked thread); -EDEADLK at once on the loop's thread
 * (the one that made the queue); -EINVAL (NULL q or item, timeout_ms < -1);
 * -ENOMEM or -ESHUTDOWN (only while a weft_queue_put waits: the refill could
 * not be posted; the item stays in the queue). Close the queue and let blocked
 * threads return before weft_queue_free (it returns -EBUSY while a thread is
 * blocked or a refill is on its way). */
WEFT_API int weft_queue_get_threadsafe(weft_queue *q, void **item,
                                       int64_t timeout_ms);
/** Loop thread: puts `item` if there is room now (to a waiting get first),
 * without waiting. Returns 0; -EAGAIN when full (the item stays the
 * caller's); WEFT_ECLOSED; -EINVAL. */
WEFT_API int weft_queue_try_put(weft_queue *q, void *item);
/** Loop thread: takes the next item (per the kind) into *item without waiting
 * (the caller owns it). Returns 0; -EAGAIN when empty; WEFT_ECLOSED when closed
 * and empty; -EINVAL (NULL q or item). */
WEFT_API int weft_queue_try_get(weft_queue *q, void **item);
/** Closes the queue: waiting puts and gets are rejected with WEFT_ECLOSED,
 * blocked threads return WEFT_ECLOSED; items inside can still be got.
 * Returns 0, -EINVAL, -EALREADY. */
WEFT_API int weft_queue_close(weft_queue *q);
/** Items in the queue now (0 for NULL). */
WEFT_API size_t weft_queue_len(const weft_queue *q);
/** Loop thread (asyncio.Queue.task_done): marks one item as processed.
 * Every item that enters the queue (by any put, including one handed
 * straight to a waiting get) counts as an unfinished task until a
 * task_done; when the count reaches 0 every pending weft_queue_join future
 * is fulfilled. Returns 0; -EINVAL (NULL); -EOVERFLOW when called more
 * times than items entered (the count stays 0); -EPERM from another thread
 * than the loop's (post it with weft_call_soon_threadsafe instead). */
WEFT_API int weft_queue_task_done(weft_queue *q);
/** Loop thread (asyncio.Queue.join): *out gets a future fulfilled (int64 0)
 * once every item that entered the queue has been marked with
 * weft_queue_task_done (settled before return if none is unfinished; its
 * continuations still run later, from the loop). Several joins may wait;
 * each can be cancelled alone. Closing the queue leaves them waiting (the
 * items inside can still be got and marked done); weft_queue_free rejects
 * those still pending with WEFT_ECLOSED. Returns 0, -EINVAL, -ENOMEM,
 * -EPERM (another thread than the loop's). */
WEFT_API int weft_queue_join(weft_queue *q, weft_future **out);
/** Unfinished tasks now: items that entered minus task_done calls (0 for
 * NULL). */
WEFT_API size_t weft_queue_unfinished(const weft_queue *q);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SYNC_H */
