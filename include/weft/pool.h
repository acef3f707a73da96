/* weft — the shared thread pool: blocking work off the loop.
 *
 * One process-wide pool, created on first use, shared by every loop that
 * submits to it and torn down (threads joined) when the last such loop is
 * freed. It has two lanes, each with its own queue and its own worker
 * threads, so long CPU jobs on the cpu lane cannot starve file I/O on the
 * io lane. A job runs on a worker thread; workers never touch a loop: the
 * completion is queued on the submitting loop and its callback runs on the
 * loop's thread, many completions per wake-up.
 *
 * Size, per lane and process-wide: set when the pool is created by the
 * creating loop's weft_loop_options.pool_size, else $WEFT_POOL_SIZE, else
 * the number of CPUs; a later loop with a larger pool_size grows both
 * lanes; weft_pool_resize() sets either lane at run time. Threads start on
 * the first job of their lane.
 *
 * Cancel: a queued job completes with -ECANCELED without running; a running
 * job sees weft_work_cancelled() turn true and finishes as it chooses.
 * weft_loop_free() on a loop whose only outstanding requests are pool jobs
 * cancels the queued ones, waits for the running ones, runs every done
 * callback (cancelled ones with -ECANCELED) and only then frees the loop. */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The pool's lanes. */
typedef enum weft_pool_lane {
  WEFT_LANE_CPU = 0, /**< computation */
  WEFT_LANE_IO = 1,  /**< blocking I/O (every weft_fs_* operation) */
  WEFT_LANE_COUNT
} weft_pool_lane;

/** Largest number of threads per lane. */
#define WEFT_POOL_MAX 256

typedef struct weft_work weft_work;
/** Runs on a worker thread. Must not touch any loop. */
typedef void (*weft_work_fn)(weft_work *w);
/** Runs on the loop's thread once the job is over: status 0 if work_fn
 * ran, -ECANCELED if the job was cancelled before it started. */
typedef void (*weft_work_done_cb)(weft_work *w, int status);

/** A pool job for the callback form; embed it anywhere and keep it alive
 * until its done callback has run. Only `data` is yours. */
struct weft_work {
  void *data; /**< yours */
  /* private */
  weft_loop *loop;
  weft_work_fn work_fn;
  weft_work_done_cb done_cb;
  struct {
    void *p_[2];
  } qnode; /* lane queue, then completion queue */
  struct {
    void *p_[2];
  } lnode; /* the loop's outstanding jobs */
  WEFT__ATOMIC(int) state;
  WEFT__ATOMIC(bool) cancel;
  int status;
  unsigned char lane;
  unsigned char queued; /* linked in the lane queue (pool lock) */
  uint64_t submit_ns;   /* when it was queued (weft_pool_get_metrics) */
};

/** Submits `w` to `lane`: work_fn(w) runs on a worker, then done_cb(w,
 * status) on the loop's thread (never inline). `w` must not be in flight.
 * Returns 0, -EINVAL (NULL loop, w, work_fn or done_cb, bad lane),
 * -ENOMEM (first use only: the pool or this loop's state), -EAGAIN (no
 * thread could be started), -ESHUTDOWN (the loop is being freed, or the
 * pool was shut down: weft_pool_shutdown()).
 * Loop thread only. Steady-state submits allocate nothing. */
WEFT_API int weft_work_submit(weft_loop *loop, weft_work *w,
                              weft_pool_lane lane, weft_work_fn work_fn,
                              weft_work_done_cb done_cb);

/** Cancels `w`. Returns 0 if it was still queued: it will complete with
 * -ECANCELED without running. -EBUSY if it is running: its cancel flag is
 * set (see weft_work_cancelled()) and it completes with status 0 when it
 * returns. -EALREADY if it has finished or was already cancelled,
 * -EINVAL for NULL or a job never submitted. Loop thread only. */
WEFT_API int weft_work_cancel(weft_work *w);

/** From inside a work function: true once the running job has been asked
 * to stop (weft_work_cancel(), a cancelled future, loop teardown). False
 * outside a work function. */
WEFT_API bool weft_work_cancelled(void);

/** Work for the future form: runs on a worker thread with `arg` and
 * returns the future's value. To reject instead, store a negative error
 * code in *err (the return value is then ignored). */
typedef void *(*weft_pool_fn)(void *arg, int *err);

/** Future form of weft_work_submit(): runs fn(arg, &err) on `lane` and
 * fulfils *out with its return value, which the future then owns (dtor,
 * may be NULL, frees it), or rejects it with err. Cancelling the future
 * cancels a queued job (it never runs) and raises the cancel flag of a
 * running one (its value is then passed to dtor). *out holds the caller's
 * reference. Returns 0, -EINVAL (NULL loop, fn or out, bad lane), -ENOMEM,
 * -EAGAIN, -ESHUTDOWN (as weft_work_submit()). Loop thread only. */
WEFT_API int weft_pool_submit_future(weft_loop *loop, weft_pool_lane lane,
                                     weft_pool_fn fn, void *arg, weft_dtor dtor,
                                     weft_future **out);

/** Work for weft_pool_map(): runs on a worker thread for index `i` with
 * the map's `arg`. Returns 0, or a negative error code that stops the map.
 * *result starts at 0; what it holds when fn returns 0 is stored in
 * results[i]. */
typedef int (*weft_pool_map_fn)(size_t i, void *arg, int64_t *result);

/** Runs fn(i, arg, &r) for every i in 0..n-1 on `lane`, at most `limit`
 * at once (0: the lane's size, weft_pool_stats.target; a limit above n is
 * n), each index exactly once, lower indices started first. *out is one
 * future, which holds the caller's reference:
 * - fulfilled (weft_future_value_i64) with n once every call returned 0;
 *   with n = 0 it is fulfilled before this returns;
 * - rejected with the first error to reach the loop thread (completion
 *   order, not the lowest failing index): no index is started after it,
 *   queued calls are withdrawn and running ones get their cancel flag
 *   (weft_work_cancelled()); the future settles once they have returned;
 * - cancelled (-ECANCELED) by weft_future_cancel(), which stops the map the
 *   same way but settles at once (the running calls finish afterwards), or
 *   by weft_loop_free() on the loop.
 * `results` (may be NULL, else n entries, the caller's) gets results[i]
 * on the loop thread for each call that returned 0, unless the future was
 * cancelled first; other entries are left as they were. `arg` must stay valid
 * until the running calls have returned (after a cancel: until the loop has run
 * their completions). Steady state allocates nothing per index: one block
 * of `limit` jobs per map. Returns 0, -EINVAL (NULL loop, fn or out, bad
 * lane), -ENOMEM, -EAGAIN, -ESHUTDOWN (as weft_work_submit(); nothing was
 * started). Loop thread only. */
WEFT_API int weft_pool_map(weft_loop *loop, weft_pool_lane lane, size_t n,
                           weft_pool_map_fn fn, void *arg, size_t limit,
                           int64_t *results, weft_future **out);

/** A job for weft_pool_submit_job(): its result (as a weft_thread's). */
typedef struct weft_pool_job weft_pool_job;

/** Work for weft_pool_submit_job(): runs on a worker thread. Return 0 to
 * fulfil the future with what weft_pool_return*() set (int64 0 if
 * nothing), or a negative error code to reject it with that code (a value
 * set is then dropped: its dtor runs). Must not touch any loop. */
typedef int (*weft_pool_job_fn)(weft_pool_job *job, void *arg);

/** The job's own call: its result is the pointer `value`, which the future
 * will own (dtor(value) when freed, or when the result is dropped: the job
 * failed or its future was cancelled). A later call replaces an earlier
 * one, whose value is dropped. */
WEFT_API void weft_pool_return(weft_pool_job *job, void *value, weft_dtor dtor);
/** The job's own call: its result is the int64 `v`. */
WEFT_API void weft_pool_return_i64(weft_pool_job *job, int64_t v);
/** The job's own call: its result is the double `v`. */
WEFT_API void weft_pool_return_f64(weft_pool_job *job, double v);

/** The future form with the future API's result shape: runs fn(job, arg)
 * on `lane`; *out (the caller's reference) is fulfilled with the pointer
 * (owned, with its dtor), int64 or double the job returned through
 * weft_pool_return*(), or rejected with fn's negative return value.
 * Cancelling the future cancels a queued job (fn never runs) and raises a
 * running one's flag (weft_work_cancelled()); its result is then dropped.
 * weft_pool_submit_future() stays for a job that returns one pointer.
 * Returns 0, -EINVAL (NULL loop, fn or out, bad lane), -ENOMEM, -EAGAIN,
 * -ESHUTDOWN (as weft_work_submit(); nothing started). Loop thread only.
 * Steady state allocates nothing (jobs come from a per-loop free list). */
WEFT_API int weft_pool_submit_job(weft_loop *loop, weft_pool_lane lane,
                                  weft_pool_job_fn fn, void *arg,
                                  weft_future **out);

/** Called on a worker thread: `lane` and `index` (0 .. WEFT_POOL_MAX-1,
 * the thread's slot in its lane, unique among its live threads). */
typedef void (*weft_pool_thread_cb)(weft_pool_lane lane, unsigned index,
                                    void *arg);

/** Hooks run on every worker thread (for names, affinity, per-thread
 * state): on_start once when it starts, before its first job (after weft
 * has named it "weft-cpu-N" / "weft-io-N", which the hook may change);
 * on_stop once before it exits (a shrink, a shutdown, the pool being freed
 * with its last loop). Either may be NULL. */
typedef struct weft_pool_thread_hooks {
  weft_pool_thread_cb on_start;
  weft_pool_thread_cb on_stop;
  void *arg;
} weft_pool_thread_hooks;

/** Sets the process-wide pool's thread hooks (copied; NULL: none). They
 * apply to threads started afterwards; a running thread keeps the hooks
 * it started with, so each thread gets exactly one on_start and one
 * on_stop from the same set. Returns 0, -EINVAL (NULL loop), -ENOMEM
 * (first use: the pool could not be created). Any loop's thread. */
WEFT_API int weft_pool_set_thread_hooks(weft_loop *loop,
                                        const weft_pool_thread_hooks *hooks);

/** Shuts the process-wide pool down, as concurrent.futures'
 * Executor.shutdown(wait, cancel_futures), without ever blocking the
 * loop:
 * - from now on every submit, from any loop (weft_work_submit, the future
 *   forms, weft_pool_map's next index, weft_fs_* calls), and
 *   weft_pool_resize() return -ESHUTDOWN;
 * - cancel_queued: every queued job of every loop is withdrawn and
 *   completes with -ECANCELED (its future is cancelled); running jobs run
 *   to their end (they are not flagged). Without it the queued jobs still
 *   run;
 * - each worker exits once its lane's queue is empty (on_stop runs);
 * - wait: *out (required) gets a future fulfilled (int64 0) on the loop's
 *   thread once every worker has run and finished its last job and exited
 *   (joined): the loop keeps running meanwhile (weft_loop_run, never
 *   blocked), and stays alive until the workers are gone. Cancelling the
 *   future stops only the waiting (the shutdown goes on; a later wait gets
 *   a new future). A second call while one is pending on this loop gives
 *   a reference to the same future; once the workers are gone a wait
 *   settles at the next turn. Without wait, `out` must be NULL.
 * The pool stays shut until it is freed with the last loop that uses it; a
 * loop made after that gets a new pool. Returns 0, -EINVAL (NULL loop;
 * wait with NULL out, or out without wait), -ENOMEM. Loop thread only. */
WEFT_API int weft_pool_shutdown(weft_loop *loop, bool wait, bool cancel_queued,
                                weft_future **out);

/** Resizes the pool: `cpu` and `io` threads per lane (0 keeps a lane as
 * it is). Extra threads finish their current job and exit; new ones start
 * at once if the lane is in use. Returns 0, -EINVAL (NULL loop, above
 * WEFT_POOL_MAX), -ENOMEM, -EAGAIN (a thread could not be started; the
 * lane keeps the threads it has), -ESHUTDOWN (weft_pool_shutdown ran).
 * Loop thread only (any loop). */
WEFT_API int weft_pool_resize(weft_loop *loop, unsigned cpu, unsigned io);

/** A lane's counters. */
typedef struct weft_pool_stats {
  uint64_t queued; /**< waiting for a worker, now */
  /** Taken by a worker, now: the job it runs and the rest of the batch it
   * took with it (a worker takes about queued / (2 x threads) jobs at
   * once, at least one), so this can exceed `threads`. A job of the batch
   * that has not started yet can still be cancelled (weft_work_cancel()
   * returns 0). */
  uint64_t running;
  uint64_t done; /**< finished or cancelled since the pool started */
  /** Worker threads alive now: 0 until the lane's first job; after a
   * shrink, above `target` until the extra threads finish their current
   * job and exit. */
  unsigned threads;
  /** The lane's size: how many threads it starts, up to, when it has work
   * (set by pool_size, $WEFT_POOL_SIZE, weft_pool_resize()). */
  unsigned target;
} weft_pool_stats;

/** Buckets of the histograms in weft_pool_lane_metrics, as for the loop's
 * lag (weft/loop.h): bucket 0 counts durations under 1 µs; bucket i
 * (1 <= i < 31) those in [2^(i-1), 2^i) µs; bucket 31 those of 2^30 µs
 * (about 18 minutes) or more. */
#define WEFT_POOL_HIST_BUCKETS 32

/** One lane's time histograms (weft_pool_metrics). */
typedef struct weft_pool_lane_metrics {
  /** Jobs whose work function has returned: each histogram's buckets add
   * up to this. A job cancelled before it started is in neither. */
  uint64_t jobs;
  /** Queue wait: from the submit (weft_work_submit() and every form built
   * on it: futures, fs calls, maps, jobs) to a worker starting the job,
   * monotonic clock, in log2 µs buckets. */
  uint64_t queue_wait[WEFT_POOL_HIST_BUCKETS];
  /** Run time: how long the work function ran, in log2 µs buckets. */
  uint64_t run_time[WEFT_POOL_HIST_BUCKETS];
} weft_pool_lane_metrics;

/** What the pool's lanes have done since the pool was created (the pool is
 * process-wide, so these count every loop's jobs). Counters only grow;
 * filled by weft_pool_get_metrics(). */
typedef struct weft_pool_metrics {
  /** Bytes filled: the smaller of the size given and the library's
   * sizeof (a later version only appends fields). */
  size_t size;
  /** Indexed by weft_pool_lane. */
  weft_pool_lane_metrics lanes[WEFT_LANE_COUNT];
} weft_pool_metrics;

/** Fills *m with both lanes' histograms; `size` is sizeof *m as the caller
 * was compiled (the rest of a larger struct is zeroed). A worker counts
 * a job before handing its completion to the loop, so a job whose done
 * callback has run is counted. Each bucket is read on its own (workers
 * keep counting meanwhile): read while jobs run, the histograms and
 * `jobs` may differ by the jobs finishing at that moment. Returns 0,
 * -EINVAL (NULL loop or m, a size smaller than this version's struct),
 * -ENOMEM (first use: the pool could not be created). Loop thread only. */
WEFT_API int weft_pool_get_metrics(weft_loop *loop, weft_pool_metrics *m,
                                   size_t size);

/** Fills *out with `lane`'s counters (process-wide). Returns 0, -EINVAL
 * (NULL, bad lane), -ENOMEM (first use: the pool could not be created). */
WEFT_API int weft_pool_get_stats(weft_loop *loop, weft_pool_lane lane,
                                 weft_pool_stats *out);
/** Deprecated name of weft_pool_get_stats (getters are
 * weft_<noun>_get_<what>); removed in the release after 0.2. */
WEFT_DEPRECATED("use weft_pool_get_stats")
static inline int weft_pool_stats_get(weft_loop *loop, weft_pool_lane lane,
                                      weft_pool_stats *out) {
  return weft_pool_get_stats(loop, lane, out);
}

#ifdef __cplusplus
}
#endif
#endif /* WEFT_POOL_H */
