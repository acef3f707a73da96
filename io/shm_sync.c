/* weft — a lock, a semaphore and an event in shared memory, on futex(2)
 * words shared between processes (no FUTEX_PRIVATE_FLAG), with blocking
 * forms and future forms whose wait runs on the thread pool.
 *
 * The lock is Drepper's three-state mutex ("Futexes are tricky", mutex2)
 * with the holder's pid as the "locked" value: 0 is free, PID a held lock,
 * PID | W_WAITERS a held lock someone may wait for (once a waiter saw it,
 * acquirers take it with the bit, so the release knows to wake). A
 * waiter sleeps at most WEFT_SHM_CHECK_MS at a time; each time that passes
 * without a wake, and before it gives up, it looks at the holder in /proc
 * (holder_dead): a holder that died leaves its pid in the word, and the
 * waiter that swaps that exact word for its own pid is the one told.
 *
 * The semaphore counts permits in its futex word and waiters beside it:
 * a waiter announces itself before it looks at the count, a release adds
 * the permit before it looks at the waiters (both sequentially
 * consistent), so one of them always sees the other.
 *
 * A wait that gives up (timeout, cancel) may have taken a wake-up meant
 * for someone else: it passes one on if what it waited for is there.
 *
 * Future forms: a wait that succeeds at once settles the future here; any
 * other is a pool job (io lane). The future's cancel hook raises the job's
 * flag and wakes every waiter on the word (the others find nothing changed
 * and sleep again); a job flag raised just as the thread goes to sleep is
 * seen within POOL_SLICE_MS, which also bounds a wait through loop
 * teardown (weft_work_cancelled()). A job that took the lock or a permit
 * after its future was cancelled gives it back on the loop thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "weft/pool.h"
#include "weft/shm.h"

#define W_WAITERS 0x80000000u
#define PID_MASK 0x3fffffffu
#define LOCK_MAGIC 0x4c6b6d73u /* "smkL" */
#define SEM_MAGIC 0x536d6d73u
#define EVENT_MAGIC 0x456d6d73u
#define EV_SET 1u
#define EV_WAITERS 2u
#define POOL_SLICE_MS 50

#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define CAS(p, e, d)                                                           \
  __atomic_compare_exchange_n((p), (e), (d), false, __ATOMIC_SEQ_CST,          \
                              __ATOMIC_SEQ_CST)

/* ---- this process: pid and start time, cached (reset in a fork child) -- */

static uint32_t self_pid_c;   /* 0: not known yet */
static uint64_t self_start_c; /* start time + 1 */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_self(void) { STORE(&self_pid_c, 0u); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_self); }

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot) + 1,
 * and whether the process is still running (not a zombie); 0 if gone. */
static uint64_t proc_start(pid_t pid, bool *zombie) {
  char path[40], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold anything */
  if (p == NULL || p[1] != ' ') return 0;
  *zombie = p[2] == 'Z' || p[2] == 'X';
  /* fields 3.. follow: state is 3, start time 22 */
  unsigned long long start = 0;
  p += 2;
  for (int field = 3; field < 22 && p != NULL; field++) {
    p = strchr(p, ' ');
    if (p != NULL) p++;
  }
  if (p == NULL || sscanf(p, "%llu", &start) != 1) return 0;
  return (uint64_t)start + 1;
}

static uint32_t self_pid(void) {
  uint32_t pid = LOAD(&self_pid_c);
  if (WEFT__LIKELY(pid != 0)) return pid;
  pthread_once(&atfork_once, register_atfork);
  pid = (uint32_t)getpid();
  bool z;
  STORE(&self_start_c, proc_start((pid_t)pid, &z));
  STORE(&self_pid_c, pid);
  return pid;
}

/* ---- futex and clocks ---------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps while *w == v, up to ms (-1: no limit). 0 when woken (or *w was
 * not v, or a signal came), -ETIMEDOUT. */
static int futex_wait(uint32_t *w, uint32_t v, int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  long r = syscall(SYS_futex, w, FUTEX_WAIT, v, ms < 0 ? NULL : &ts, NULL, 0);
  return r < 0 && errno == ETIMEDOUT ? -ETIMEDOUT : 0;
}

static void futex_wake(uint32_t *w, int n) {
  syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* One wait: its deadline, and who may cancel it (a pool job). */
typedef struct waitctx {
  int64_t deadline; /* now_ms() based; -1: none */
  const bool *cancel;
} waitctx;

static void ctx_init(waitctx *c, int64_t timeout_ms, const bool *cancel) {
  c->deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  c->cancel = cancel;
}

static bool ctx_cancelled(const waitctx *c) {
  return c->cancel != NULL && (LOAD(c->cancel) || weft_work_cancelled());
}

/* How long the next sleep may be (capped at `cap`, -1: none); 0 when the
 * deadline has passed. */
static int64_t ctx_slice(const waitctx *c, int64_t cap) {
  if (c->cancel != NULL && (cap < 0 || cap > POOL_SLICE_MS))
    cap = POOL_SLICE_MS;
  if (c->deadline < 0) return cap;
  int64_t left = c->deadline - now_ms();
  if (left <= 0) return 0;
  return cap >= 0 && cap < left ? cap : left;
}

/* ---- the lock ------------------------------------------------------------ */

static bool lock_ok(const weft_shm_lock *l) {
  return l != NULL && LOAD(&l->magic_) == LOCK_MAGIC;
}

int weft_shm_lock_init(weft_shm_lock *l) {
  if (l == NULL || ((uintptr_t)l & 7) != 0) return -EINVAL;
  STORE(&l->word_, 0u);
  STORE(&l->start_, (uint64_t)0);
  STORE(&l->magic_, LOCK_MAGIC);
  return 0;
}

/* Is the holder recorded in word `v` dead? *want gets the start time
 * recorded beside it (0: not recorded). */
static bool holder_dead(const weft_shm_lock *l, uint32_t v, uint64_t *want) {
  pid_t pid = (pid_t)(v & PID_MASK);
  *want = LOAD(&l->start_);
  bool zombie = false;
  uint64_t start = proc_start(pid, &zombie);
  if (start == 0 || zombie) return true;
  /* 0: the holder has not recorded its start yet (it just took the lock) */
  return *want != 0 && *want != start;
}

/* The start time may be stored relaxed: a waiter that read our pid from
 * the word synchronised with the compare-and-swap that put it there, so
 * it sees 0 (our predecessor's release cleared it before letting go) or
 * our own start, never an older value. */
static int lock_took(weft_shm_lock *l, int status) {
  __atomic_store_n(&l->start_, LOAD(&self_start_c), __ATOMIC_RELAXED);
  return status;
}

/* Takes the lock over from a dead holder if the word still says `v`. The
 * dead holder's start time is cleared first (by one waiter only: a
 * compare-and-swap), so that no waiter judges the new holder, whose start
 * is not recorded yet, by it; it is put back if the word changed. */
static bool take_from_dead(weft_shm_lock *l, uint32_t v, uint32_t me) {
  uint64_t s;
  if (!holder_dead(l, v, &s)) return false;
  if (s != 0 && !CAS(&l->start_, &s, (uint64_t)0)) return false;
  if (CAS(&l->word_, &v, me | W_WAITERS)) return true;
  uint64_t zero = 0;
  if (s != 0) CAS(&l->start_, &zero, s);
  return false;
}

/* Gives up: a release's wake-up may have been ours; pass it on. */
static int lock_leave(weft_shm_lock *l, int err) {
  if (LOAD(&l->word_) == 0) futex_wake(&l->word_, 1);
  return err;
}

static int lock_wait(weft_shm_lock *l, const waitctx *c, uint32_t me) {
  for (;;) {
    uint32_t v = LOAD(&l->word_);
    if (v == 0) {
      if (CAS(&l->word_, &v, me | W_WAITERS)) return lock_took(l, 0);
      continue;
    }
    if (ctx_cancelled(c)) return lock_leave(l, -ECANCELED);
    int64_t slice = ctx_slice(c, WEFT_SHM_CHECK_MS);
    if (slice == 0) { /* the deadline: one last look at the holder */
      if (take_from_dead(l, v, me)) return lock_took(l, WEFT_SHM_OWNER_DIED);
      return lock_leave(l, -ETIMEDOUT);
    }
    if (!(v & W_WAITERS)) {
      if (!CAS(&l->word_, &v, v | W_WAITERS)) continue;
      v |= W_WAITERS;
    }
    if (futex_wait(&l->word_, v, slice) == -ETIMEDOUT &&
        take_from_dead(l, v, me))
      return lock_took(l, WEFT_SHM_OWNER_DIED);
  }
}

/* The whole acquire; `cancel` is a pool job's flag (NULL: blocking). */
static int lock_acquire(weft_shm_lock *l, int64_t timeout_ms,
                        const bool *cancel) {
  uint32_t me = self_pid(), v = 0;
  if (CAS(&l->word_, &v, me)) return lock_took(l, 0);
  waitctx c;
  ctx_init(&c, timeout_ms, cancel);
  return lock_wait(l, &c, me);
}

int weft_shm_lock_acquire(weft_shm_lock *l, int64_t timeout_ms) {
  if (!lock_ok(l) || timeout_ms < -1) return -EINVAL;
  return lock_acquire(l, timeout_ms, NULL);
}

int weft_shm_lock_release(weft_shm_lock *l) {
  if (!lock_ok(l)) return -EINVAL;
  uint32_t me = self_pid();
  if ((LOAD(&l->word_) & PID_MASK) != me) return -EPERM;
  /* relaxed: the exchange below publishes it to the next holder */
  __atomic_store_n(&l->start_, (uint64_t)0, __ATOMIC_RELAXED);
  uint32_t old = __atomic_exchange_n(&l->word_, 0u, __ATOMIC_SEQ_CST);
  if (old & W_WAITERS) futex_wake(&l->word_, 1);
  return 0;
}

pid_t weft_shm_lock_get_owner(const weft_shm_lock *l) {
  if (!lock_ok(l)) return -EINVAL;
  return (pid_t)(LOAD(&l->word_) & PID_MASK);
}

/* ---- the semaphore ------------------------------------------------------- */

static bool sem_ok(const weft_shm_sem *s) {
  return s != NULL && LOAD(&s->magic_) == SEM_MAGIC;
}

int weft_shm_sem_init(weft_shm_sem *s, unsigned value) {
  if (s == NULL || ((uintptr_t)s & 7) != 0 || value > INT32_MAX) return -EINVAL;
  STORE(&s->value_, (uint32_t)value);
  STORE(&s->waiters_, 0u);
  s->pad_ = 0;
  STORE(&s->magic_, SEM_MAGIC);
  return 0;
}

static bool sem_try(weft_shm_sem *s) {
  uint32_t v = LOAD(&s->value_);
  while (v > 0)
    if (CAS(&s->value_, &v, v - 1)) return true;
  return false;
}

static int sem_wait(weft_shm_sem *s, const waitctx *c) {
  int err = 0;
  __atomic_fetch_add(&s->waiters_, 1u, __ATOMIC_SEQ_CST);
  for (;;) {
    if (sem_try(s)) break;
    if (ctx_cancelled(c)) {
      err = -ECANCELED;
      break;
    }
    int64_t slice = ctx_slice(c, -1);
    if (slice == 0) {
      err = -ETIMEDOUT;
      break;
    }
    futex_wait(&s->value_, 0, slice);
  }
  __atomic_fetch_sub(&s->waiters_, 1u, __ATOMIC_SEQ_CST);
  if (err != 0 && LOAD(&s->value_) > 0 && LOAD(&s->waiters_) > 0)
    futex_wake(&s->value_, 1); /* a wake-up we took and did not use */
  return err;
}

static int sem_acquire(weft_shm_sem *s, int64_t timeout_ms,
                       const bool *cancel) {
  if (sem_try(s)) return 0;
  if (timeout_ms == 0) return -ETIMEDOUT;
  waitctx c;
  ctx_init(&c, timeout_ms, cancel);
  return sem_wait(s, &c);
}

int weft_shm_sem_acquire(weft_shm_sem *s, int64_t timeout_ms) {
  if (!sem_ok(s) || timeout_ms < -1) return -EINVAL;
  return sem_acquire(s, timeout_ms, NULL);
}

int weft_shm_sem_release(weft_shm_sem *s) {
  if (!sem_ok(s)) return -EINVAL;
  uint32_t v = LOAD(&s->value_);
  do
    if (v >= INT32_MAX) return -EOVERFLOW;
  while (!CAS(&s->value_, &v, v + 1));
  if (LOAD(&s->waiters_) > 0) futex_wake(&s->value_, 1);
  return 0;
}

int weft_shm_sem_get_value(const weft_shm_sem *s) {
  if (!sem_ok(s)) return -EINVAL;
  return (int)LOAD(&s->value_);
}

/* ---- the event ----------------------------------------------------------- */

static bool event_ok(const weft_shm_event *e) {
  return e != NULL && LOAD(&e->magic_) == EVENT_MAGIC;
}

int weft_shm_event_init(weft_shm_event *e) {
  if (e == NULL || ((uintptr_t)e & 3) != 0) return -EINVAL;
  STORE(&e->word_, 0u);
  STORE(&e->magic_, EVENT_MAGIC);
  return 0;
}

int weft_shm_event_set(weft_shm_event *e) {
  if (!event_ok(e)) return -EINVAL;
  uint32_t old = __atomic_exchange_n(&e->word_, EV_SET, __ATOMIC_SEQ_CST);
  if (old & EV_WAITERS) futex_wake(&e->word_, INT_MAX);
  return 0;
}

int weft_shm_event_clear(weft_shm_event *e) {
  if (!event_ok(e)) return -EINVAL;
  __atomic_fetch_and(&e->word_, ~EV_SET, __ATOMIC_SEQ_CST);
  return 0;
}

bool weft_shm_event_is_set(const weft_shm_event *e) {
  return event_ok(e) && (LOAD(&e->word_) & EV_SET) != 0;
}

static int event_wait(weft_shm_event *e, int64_t timeout_ms,
                      const bool *cancel) {
  waitctx c;
  ctx_init(&c, timeout_ms, cancel);
  for (;;) {
    uint32_t v = LOAD(&e->word_);
    if (v & EV_SET) return 0;
    if (ctx_cancelled(&c)) return -ECANCELED;
    int64_t slice = ctx_slice(&c, -1);
    if (slice == 0) return -ETIMEDOUT;
    if (!(v & EV_WAITERS)) {
      if (!CAS(&e->word_, &v, v | EV_WAITERS)) continue;
      v |= EV_WAITERS;
    }
    futex_wait(&e->word_, v, slice);
  }
}

int weft_shm_event_wait(weft_shm_event *e, int64_t timeout_ms) {
  if (!event_ok(e) || timeout_ms < -1) return -EINVAL;
  return event_wait(e, timeout_ms, NULL);
}

/* ---- future forms -------------------------------------------------------- */

enum { K_LOCK, K_SEM, K_EVENT };

typedef struct shm_wait {
  weft_work work;
  weft_future *f; /* the job's reference */
  void *obj;
  int64_t timeout_ms;
  int kind, result;
  bool cancel; /* atomic: the future was cancelled */
} shm_wait;

static uint32_t *obj_word(const shm_wait *w) {
  switch (w->kind) {
  case K_LOCK:
    return &((weft_shm_lock *)w->obj)->word_;
  case K_SEM:
    return &((weft_shm_sem *)w->obj)->value_;
  default:
    return &((weft_shm_event *)w->obj)->word_;
  }
}

static int obj_wait(shm_wait *w, int64_t timeout_ms, const bool *cancel) {
  switch (w->kind) {
  case K_LOCK:
    return lock_acquire(w->obj, timeout_ms, cancel);
  case K_SEM:
    return sem_acquire(w->obj, timeout_ms, cancel);
  default:
    return event_wait(w->obj, timeout_ms, cancel);
  }
}

/* Gives back what a wait took for a future that is no longer pending. */
static void obj_give_back(shm_wait *w) {
  if (w->kind == K_LOCK) weft_shm_lock_release(w->obj);
  if (w->kind == K_SEM) weft_shm_sem_release(w->obj);
}

static void wait_work(weft_work *work) {
  shm_wait *w = work->data;
  w->result = obj_wait(w, w->timeout_ms, &w->cancel);
}

static void wait_done(weft_work *work, int status) {
  shm_wait *w = work->data;
  bool pending = weft_future_get_state(w->f) == WEFT_FUTURE_PENDING;
  if (status == 0 && w->result >= 0 && !pending) obj_give_back(w);
  if (pending) {
    if (status != 0)
      weft_future_reject(w->f, status);
    else if (w->result >= 0)
      weft_future_resolve_i64(w->f, w->result);
    else
      weft_future_reject(w->f, w->result);
  }
  weft_future_unref(w->f);
  weft__free(w);
}

static void wait_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  shm_wait *w = arg;
  STORE(&w->cancel, true);
  weft_work_cancel(&w->work);
  futex_wake(obj_word(w), INT_MAX);
}

static int wait_future(weft_loop *loop, const char *op, shm_wait *tmpl,
                       weft_future **out) {
  weft_future *f;
  int err = weft_future_new_op(loop, op, &f);
  if (err != 0) return err;
  /* timeout 0 never blocks (a lock's try looks at its holder in /proc) */
  int r = obj_wait(tmpl, 0, NULL);
  if (r != -ETIMEDOUT || tmpl->timeout_ms == 0) {
    if (r >= 0)
      weft_future_resolve_i64(f, r);
    else
      weft_future_reject(f, r);
    *out = f;
    return 0;
  }
  shm_wait *w = weft__malloc(sizeof *w);
  if (w == NULL) err = -ENOMEM;
  if (err == 0) {
    *w = *tmpl;
    w->work.data = w;
    w->f = f;
    err = weft_work_submit(loop, &w->work, WEFT_LANE_IO, wait_work, wait_done);
  }
  if (err != 0) {
    weft__free(w);
    weft_future_unref(f);
    return err;
  }
  weft_future_on_cancel(f, wait_cancel, w);
  *out = weft_future_ref(f);
  return 0;
}

int weft_shm_lock_acquire_future(weft_loop *loop, weft_shm_lock *l,
                                 int64_t timeout_ms, weft_future **out) {
  if (loop == NULL || !lock_ok(l) || out == NULL || timeout_ms < -1)
    return -EINVAL;
  shm_wait t = {.obj = l, .timeout_ms = timeout_ms, .kind = K_LOCK};
  return wait_future(loop, "weft_shm_lock_acquire_future", &t, out);
}

int weft_shm_sem_acquire_future(weft_loop *loop, weft_shm_sem *s,
                                int64_t timeout_ms, weft_future **out) {
  if (loop == NULL || !sem_ok(s) || out == NULL || timeout_ms < -1)
    return -EINVAL;
  shm_wait t = {.obj = s, .timeout_ms = timeout_ms, .kind = K_SEM};
  return wait_future(loop, "weft_shm_sem_acquire_future", &t, out);
}

int weft_shm_event_wait_future(weft_loop *loop, weft_shm_event *e,
                               int64_t timeout_ms, weft_future **out) {
  if (loop == NULL || !event_ok(e) || out == NULL || timeout_ms < -1)
    return -EINVAL;
  shm_wait t = {.obj = e, .timeout_ms = timeout_ms, .kind = K_EVENT};
  return wait_future(loop, "weft_shm_event_wait_future", &t, out);
}
