/* weft — shared memory between processes, and a lock, a semaphore and an
 * event that live in it (multiprocessing's shared_memory, Value, Array,
 * Lock, Semaphore and Event).
 *
 * A region is an anonymous memory file (memfd_create), sized once at
 * creation and sealed against growing and shrinking, mapped shared into
 * the creating process. Other processes map the same pages from its fd:
 * - a spawned child: give it the fd as a stdio slot (weft_process_options,
 *   {WEFT_STDIO_FD, shm.fd} in slot 3 or above makes it the child's fd 3
 *   ...), then the child calls weft_shm_attach(&shm, 3);
 * - any process on a Unix socket: weft_pipe_write_fds() with shm.fd, the
 *   receiver weft_shm_attach()es the fd it takes;
 * - a forked child inherits the mapping itself (no call needed);
 * - a process-pool worker (its only channel is a byte pipe): the job
 *   carries weft_shm_get_path()'s "/proc/PID/fd/N", the worker calls
 *   weft_shm_open_path(). That path opens while the creating process lives
 *   and holds the region open, for processes allowed to look at its fds
 *   (the same user, as for ptrace read access).
 * The region's fd is close-on-exec: a child sees it only where a stdio
 * slot put it.
 *
 * Views: weft_shm_at() hands out a bounds- and alignment-checked pointer
 * into a region (multiprocessing's Array is weft_shm_at() of n elements;
 * Value is one element); weft_shm_load_i64() and friends read and write an
 * int64 in it atomically (sequentially consistent), so processes may share
 * counters without a lock.
 *
 * Locks, semaphores and events (weft_shm_lock, weft_shm_sem,
 * weft_shm_event) are small structs placed anywhere in shared memory (a
 * region, or a MAP_SHARED mapping inherited across fork) and initialised
 * once by one process with *_init() before any other process uses them.
 * They wait on futex(2) words without FUTEX_PRIVATE_FLAG, so a wait in one
 * process is woken by a release in another. Each has a blocking form for
 * plain threads and worker processes, with a timeout in milliseconds
 * (WEFT_SHM_FOREVER, or >= 0: 0 tries once without blocking), and a
 * future form for a loop: the blocking wait then runs on weft's thread
 * pool (io lane; each pending wait holds one pool thread) and the loop
 * gets a future. Cancelling that future ends the wait at once (the pool
 * thread is woken); a lock or permit granted at the moment of a cancel is
 * given back. A future form that can succeed at once settles without the
 * pool (its continuations still run later, never inline). The memory of a
 * primitive must stay mapped until its future has settled and the loop
 * has run (the pool thread reads it until then).
 *
 * A dead holder. A lock is held by a process (any of its threads may
 * release it); its word holds the holder's pid, and the holder's start
 * time (from /proc/PID/stat) sits beside it. A waiter that has waited
 * WEFT_SHM_CHECK_MS without being woken checks the holder: if that pid is
 * gone, a zombie, or now a different process (another start time), the
 * holder died holding the lock: the waiter takes it and is told
 * (WEFT_SHM_OWNER_DIED, like pthread's EOWNERDEAD), and nobody else is.
 * A try (timeout 0) looks at the holder at once. Limits: every process must be
 * in one pid namespace (and see /proc); a holder's thread that exits while its
 * process lives still holds the lock, and so does a holder that execs; a holder
 * killed in the few instructions between taking the lock and recording its
 * start time is noticed only if its pid is not reused by then. Semaphores and
 * events have no owner (as multiprocessing's and POSIX's): a permit taken by a
 * process that dies is not given back, and a waiter that dies leaves nothing
 * behind.
 *
 * The blocking calls must not run on a loop's thread (they would stop
 * it); the future forms are loop-thread calls. */
#ifndef WEFT_SHM_H
#define WEFT_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- regions ------------------------------------------------------------- */

/** A mapped shared memory region. Every field is readable; none may be
 * written. Zero-initialised or closed: base NULL, fd -1. */
typedef struct weft_shm {
  void *base;  /**< the mapping (page-aligned), `size` bytes */
  size_t size; /**< fixed at creation */
  int fd;      /**< the memfd (close-on-exec), owned by the region */
} weft_shm;

/** Largest region: 1 TiB. */
#define WEFT_SHM_MAX_SIZE ((size_t)1 << 40)

/** Creates a region of `size` bytes (1 .. WEFT_SHM_MAX_SIZE), zero-filled,
 * sealed so nobody can grow or shrink it, mapped read-write and shared;
 * `name` (NULL: "weft-shm") shows in /proc/PID/fd as "/memfd:name".
 * Pages are allocated as they are first touched. Returns 0 and fills
 * *shm; -EINVAL (NULL shm, size 0 or too big, a name over 249 bytes);
 * -EMFILE, -ENOMEM and other kernel errors (then *shm is closed: base
 * NULL, fd -1). */
WEFT_API int weft_shm_create(weft_shm *shm, const char *name, size_t size);

/** Maps the region whose fd is `fd` (inherited, or received over a
 * socket): its whole size, read-write, shared. On success the region owns
 * `fd` (weft_shm_close() closes it) and marks it close-on-exec. Returns
 * 0; -EINVAL (NULL shm, a negative fd, a file of size 0 or not a regular
 * file or memfd); -EBADF (fd not open); -EACCES (fd not open read-write);
 * -ENOMEM. On failure `fd` stays the caller's and *shm is closed. */
WEFT_API int weft_shm_attach(weft_shm *shm, int fd);

/** The path under which another process of the same user can open the
 * region while this process holds it: "/proc/PID/fd/N", NUL-terminated,
 * into `buf` (`len` bytes; 32 always suffice). Returns the path's length;
 * -EINVAL (NULL, a closed region); -ENOBUFS if `len` is too small. */
WEFT_API int weft_shm_get_path(const weft_shm *shm, char *buf, size_t len);

/** Opens the region at `path` (from weft_shm_get_path() in another
 * process) and maps it as weft_shm_attach() does; the region gets its own
 * close-on-exec fd. Returns 0; -EINVAL (NULL, empty path, not a region
 * file); -ENOENT (the creator is gone or closed it), -EACCES, -EMFILE,
 * -ENOMEM. On failure *shm is closed. */
WEFT_API int weft_shm_open_path(weft_shm *shm, const char *path);

/** Unmaps the region and closes its fd (the pages live on while another
 * process maps them). Pointers into it are invalid afterwards. Returns 0;
 * -EINVAL for NULL or a region already closed. */
WEFT_API int weft_shm_close(weft_shm *shm);

/** A checked view: *out = base + offset, if [offset, offset + size) lies
 * in the region and base + offset is a multiple of `align` (a power of
 * two; 1 for bytes; alignof(T) for a T). Returns 0; -EINVAL (NULL, closed
 * region, size 0, align 0 or not a power of two, misaligned offset);
 * -ERANGE (beyond the region's end). */
WEFT_API int weft_shm_at(const weft_shm *shm, size_t offset, size_t size,
                         size_t align, void **out);

/* Atomic access to an int64 in shared memory (8-byte aligned, as
 * weft_shm_at(.., 8, 8, ..) hands out): sequentially consistent, across
 * processes and threads. */

/** Reads *p. */
static inline int64_t weft_shm_load_i64(const int64_t *p) {
  return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
/** Writes v to *p. */
static inline void weft_shm_store_i64(int64_t *p, int64_t v) {
  __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}
/** Adds v to *p; returns the value before. */
static inline int64_t weft_shm_add_i64(int64_t *p, int64_t v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
/** If *p equals *expected, writes desired and returns true; else stores
 * *p's value in *expected and returns false. */
static inline bool weft_shm_cas_i64(int64_t *p, int64_t *expected,
                                    int64_t desired) {
  return __atomic_compare_exchange_n(p, expected, desired, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* ---- lock, semaphore, event ---------------------------------------------- */

/** No time limit, for the timeout_ms of every wait below. */
#define WEFT_SHM_FOREVER (-1)

/** How long (ms) a lock waiter sleeps before it checks that the holder
 * still lives. */
#define WEFT_SHM_CHECK_MS 10

/** What an acquire returns (and its future fulfils with) when the holder
 * died holding the lock: the caller now holds it; what the lock protects
 * may be half-updated. */
#define WEFT_SHM_OWNER_DIED 1

/** A cross-process lock (16 bytes, 8-byte aligned). Private fields. */
typedef struct weft_shm_lock {
  uint32_t word_;  /* 0 free, else the holder's pid | waiters bit */
  uint32_t magic_; /* set by weft_shm_lock_init */
  uint64_t start_; /* the holder's start time; 0 while it records it */
} weft_shm_lock;

/** A cross-process counting semaphore (16 bytes, 8-byte aligned). */
typedef struct weft_shm_sem {
  uint32_t value_;   /* the permits */
  uint32_t waiters_; /* processes' threads waiting (a hint for release) */
  uint32_t magic_;
  uint32_t pad_;
} weft_shm_sem;

/** A cross-process event (8 bytes, 4-byte aligned). */
typedef struct weft_shm_event {
  uint32_t word_; /* bit 0: set; bit 1: someone waits */
  uint32_t magic_;
} weft_shm_event;

/** Initialises a lock (free) in place. Call it once, before any process
 * uses it. Returns 0; -EINVAL for NULL or a pointer not 8-byte aligned. */
WEFT_API int weft_shm_lock_init(weft_shm_lock *l);

/** Blocking: takes the lock for this process, waiting up to `timeout_ms`.
 * Returns 0, or WEFT_SHM_OWNER_DIED (taken: the previous holder died
 * holding it); -ETIMEDOUT (not taken); -EINVAL (NULL, not initialised,
 * timeout_ms < -1). Waiting again on a lock this process holds waits for
 * itself (until the timeout). Not on a loop's thread. */
WEFT_API int weft_shm_lock_acquire(weft_shm_lock *l, int64_t timeout_ms);

/** Releases the lock held by this process (any thread of it) and wakes one
 * waiter. Returns 0; -EINVAL (NULL, not initialised); -EPERM if this
 * process does not hold it. */
WEFT_API int weft_shm_lock_release(weft_shm_lock *l);

/** The holder's pid, 0 if the lock is free; -EINVAL for NULL or not
 * initialised. A snapshot: another process may change it at once. */
WEFT_API pid_t weft_shm_lock_get_owner(const weft_shm_lock *l);

/** Future form of weft_shm_lock_acquire(): *out (the caller's reference)
 * fulfils with an int64, 0 or WEFT_SHM_OWNER_DIED, once this process holds
 * the lock (release it with weft_shm_lock_release() from the loop or any
 * thread); rejects with -ETIMEDOUT, or is cancelled (the wait ends; a lock
 * taken at that moment is released). Returns 0; -EINVAL (NULL loop, l or
 * out, not initialised, timeout_ms < -1); -ENOMEM, -EAGAIN, -ESHUTDOWN
 * (the pool's errors, weft_work_submit()). Loop thread only. */
WEFT_API int weft_shm_lock_acquire_future(weft_loop *loop, weft_shm_lock *l,
                                          int64_t timeout_ms,
                                          weft_future **out);

/** Initialises a semaphore with `value` permits (<= INT32_MAX). Returns 0;
 * -EINVAL (NULL, not 8-byte aligned, value too big). */
WEFT_API int weft_shm_sem_init(weft_shm_sem *s, unsigned value);

/** Blocking: takes one permit, waiting up to `timeout_ms`. Returns 0;
 * -ETIMEDOUT; -EINVAL (NULL, not initialised, timeout_ms < -1). */
WEFT_API int weft_shm_sem_acquire(weft_shm_sem *s, int64_t timeout_ms);

/** Gives one permit back (any process may) and wakes one waiter. Returns
 * 0; -EINVAL (NULL, not initialised); -EOVERFLOW at INT32_MAX permits. */
WEFT_API int weft_shm_sem_release(weft_shm_sem *s);

/** The permits now (a snapshot); -EINVAL for NULL or not initialised. */
WEFT_API int weft_shm_sem_get_value(const weft_shm_sem *s);

/** Future form of weft_shm_sem_acquire(): fulfils with int64 0 once a
 * permit is taken; rejects with -ETIMEDOUT; cancelled: the wait ends, a
 * permit taken at that moment is given back. Errors as
 * weft_shm_lock_acquire_future(). Loop thread only. */
WEFT_API int weft_shm_sem_acquire_future(weft_loop *loop, weft_shm_sem *s,
                                         int64_t timeout_ms, weft_future **out);

/** Initialises an event (clear). Returns 0; -EINVAL (NULL, not 4-byte
 * aligned). */
WEFT_API int weft_shm_event_init(weft_shm_event *e);

/** Sets the event and wakes every waiter (in every process). Returns 0;
 * -EINVAL (NULL, not initialised). */
WEFT_API int weft_shm_event_set(weft_shm_event *e);

/** Clears the event. Returns 0; -EINVAL (NULL, not initialised). */
WEFT_API int weft_shm_event_clear(weft_shm_event *e);

/** True if set (false for NULL or not initialised). */
WEFT_API bool weft_shm_event_is_set(const weft_shm_event *e);

/** Blocking: returns 0 once the event is set (at once if it is);
 * -ETIMEDOUT; -EINVAL (NULL, not initialised, timeout_ms < -1). */
WEFT_API int weft_shm_event_wait(weft_shm_event *e, int64_t timeout_ms);

/** Future form of weft_shm_event_wait(): fulfils with int64 0 once set;
 * rejects with -ETIMEDOUT; cancelling ends the wait. Errors as
 * weft_shm_lock_acquire_future(). Loop thread only. */
WEFT_API int weft_shm_event_wait_future(weft_loop *loop, weft_shm_event *e,
                                        int64_t timeout_ms, weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SHM_H */
