/* weft — what the promises/ files share. Never installed. */
#ifndef WEFT_PROMISES_INTERNAL_H
#define WEFT_PROMISES_INTERNAL_H

#include <time.h>

#include "core/debug_internal.h"
#include "core/internal.h"
#include "weft/future.h"
#include "weft/sync.h"

/* ---- kinds ------------------------------------------------------------------
 * What a future is decides how it fires, cancels and lets go of what it
 * holds. Each kind is a small table of functions (weft__kind) defined in the
 * file that implements the kind, which registers it under its number with
 * WEFT__KIND(id, table) when the program loads; `kind` is that number, a
 * byte rather than a pointer so that a future stays 64 bytes. future.c never
 * names a kind but its own: it dispatches through weft__kinds[]. A new kind
 * adds an enumerator here and its own file: no switch anywhere. See
 * docs/internals.md, "Future kinds, inside". */
enum {
  WEFT__K_PLAIN = 0, /* future.c: weft_future_new, wait lists, io, the pool */
  WEFT__K_THEN,      /* then.c: derived futures */
  WEFT__K_CATCH,
  WEFT__K_FINALLY,
  WEFT__K_BOTH,
  WEFT__K_ADOPT, /* then.c: waits on src and takes its outcome */
  WEFT__K_CB,    /* then.c: an on_settled node */
  WEFT__K_NODE,  /* combinators.c: one input of an aggregate */
  WEFT__K_ALL,   /* combinators.c: aggregates */
  WEFT__K_ALL_SETTLED,
  WEFT__K_ANY,
  WEFT__K_RACE,
  WEFT__K_TIMEOUT,      /* timed.c: an aggregate of one node, plus a timer */
  WEFT__K_SLEEP,        /* timed.c */
  WEFT__K_GROUP_NODE,   /* group.c: one member of a group or a scope */
  WEFT__K_GROUP,        /* group.c */
  WEFT__K_SCOPE,        /* scope.c */
  WEFT__K_SCOPE_TIMER,  /* scope.c: a scope's deadline, waiting on a sleep */
  WEFT__K_RACE_INDEX,   /* combinators.c: race, telling which input won */
  WEFT__K_AS_COMPLETED, /* combinators.c: hands inputs out in completion order
                         */
  WEFT__K_SLOT,       /* combinators.c: one position of as_completed's drain */
  WEFT__K_SHIELD,     /* shield.c: takes src's outcome, never cancels it */
  WEFT__K_FIBER,      /* fiber.c: a fiber's own future */
  WEFT__K_FIBER_WAKE, /* fiber.c: the node that wakes a fiber */
  WEFT__K_PROCJOB,    /* io/procpool_job.c: a process pool job */
  WEFT__K_COUNT
};

typedef struct weft__kind {
  const char *name; /* "then", "sleep", ...: for a debugger or a log line */
  /* w came off the ready queue: the future it waits on settled. NULL for
   * kinds that are never anyone's continuation. */
  void (*fire)(weft_future *w);
  /* An input of the aggregate f settled (a node of f fired); f is pending. */
  void (*propagate)(weft_future *f, weft_future *in);
  /* f was just cancelled (its state is CANCELLED, its continuations are
   * queued): stop the work behind it. Returns a future to cancel next, with
   * a reference, or NULL (weft_future_cancel walks such chains without
   * recursing). NULL: nothing to stop. */
  weft_future *(*cancel)(weft_future *f);
  /* f's last reference went: hand what f holds to weft__future_drop(.., todo)
   * (freeing is iterative). NULL: f holds only `src`, which is dropped. */
  void (*release)(weft_future *f, weft_future **todo);
  /* Who may settle a pending future of this kind by hand (weft_future_
   * resolve / reject / adopt): WEFT__BY_PRODUCER (anyone holding it, plain
   * futures; adopting needs no cancel hook registered, as a hooked future
   * belongs to its producer), WEFT__BY_CONTINUATION (only while its
   * continuation runs, WEFT__F_RUNNING) or 0, nobody (-EBUSY). Data, not a
   * hook: it is read on every settle. */
  uint8_t by_hand;
} weft__kind;

enum { WEFT__BY_PRODUCER = 1, WEFT__BY_CONTINUATION = 2 };

/* The table of every kind linked into the program, filled before main()
 * runs (a kind's file is linked only if something makes its futures) and
 * read-only afterwards, so any thread may read it. */
extern const weft__kind *weft__kinds[WEFT__K_COUNT];
void weft__kind_register(unsigned id, const weft__kind *k);

/* Registers `table` (a const weft__kind) as kind `id` when the program
 * loads: one line under the table in the kind's own file. */
#define WEFT__KIND(id, table)                                                  \
  __attribute__((constructor)) static void weft__register_##table(void) {      \
    weft__kind_register(id, &table);                                           \
  }

enum {
  WEFT__F_PTR = 1u << 0,      /* the value is a pointer */
  WEFT__F_OBSERVED = 1u << 1, /* someone looked at the outcome */
  WEFT__F_RUNNING = 1u << 2,  /* its continuation is running (may settle it) */
  WEFT__F_REMOVED = 1u << 3,  /* on_settled node removed: do not call */
  WEFT__F_F64 = 1u << 4,      /* the value is a double */
  WEFT__F_NAMED = 1u << 5,    /* has a name in the loop's name table */
  WEFT__F_VALUE = WEFT__F_PTR | WEFT__F_F64,
};

typedef void (*weft__fn)(void);
struct weft__timer_holder; /* timed.c */

struct weft_future {
  weft_loop *loop;
  struct weft_future *next;    /* in a waiter list, ready queue, free list,
                                  or a primitive's wait list */
  struct weft_future *waiters; /* continuations, newest first (pending) */
  struct weft_future *src;     /* what this future waits on, a reference:
                                  derived/cb/node: the input; aggregate: its
                                  first node; plain/sleep: NULL */
  union {
    void *p;
    int64_t i;
    double d;          /* the outcome once settled (a rejection: i) */
    weft_then_fn fn2;  /* WEFT__K_BOTH while pending: the error handler */
    int64_t remaining; /* aggregate while pending: inputs still to come */
  } v;
  union {
    weft_dtor dtor; /* once fulfilled with a pointer, any kind */
    struct {
      weft_future_cancel_cb fn;
      void *arg;
    } hook; /* WEFT__K_PLAIN: the producer's cancel hook */
    struct {
      weft__fn fn; /* derived: a weft_then_fn; WEFT__K_CB: a weft_future_cb */
      void *arg;
    } call;
    struct {
      struct weft_future *agg;   /* a plain pointer; NULL once agg is freed */
      struct weft_future *chain; /* the aggregate's next node */
    } node;                      /* WEFT__K_NODE */
    struct {
      size_t count;                     /* inputs */
      struct weft__timer_holder *timer; /* timeout, while pending */
    } agg;                              /* aggregates */
    struct weft__timer_holder *timer;   /* WEFT__K_SLEEP while pending */
    struct weft__group
        *group; /* WEFT__K_GROUP, WEFT__K_SCOPE: group_internal.h */
  } u;
  uint32_t refs;
  uint8_t state; /* weft_future_state; a rejection's code lives in v.i */
  uint8_t kind;  /* index into weft__kinds[] */
  uint8_t flags;
  uint8_t op; /* the operation that made it: weft__op_name(); 0: none */
};

/* The operations that make futures (weft_future_new_op), interned in a
 * process-wide table of 255 borrowed strings so that a future keeps one
 * byte: weft__op_intern returns the index of `op` (0 for NULL or a full
 * table), weft__op_name the string (NULL for 0). Any thread. */
uint8_t weft__op_intern(const char *op);
const char *weft__op_name(uint8_t id);

static inline const weft__kind *weft__kind_of(const weft_future *f) {
  return weft__kinds[f->kind];
}

/* 0 if weft_future_resolve / reject may settle the pending f now, else
 * -EBUSY (see weft__kind.by_hand). */
static inline int weft__settle_by_hand(const weft_future *f) {
  uint8_t by = weft__kind_of(f)->by_hand;
  if (by == WEFT__BY_PRODUCER) return 0;
  if (by == WEFT__BY_CONTINUATION && (f->flags & WEFT__F_RUNNING)) return 0;
  return -EBUSY;
}

/* The loop's futures state (future.c): the free list, the ready queue. */
typedef struct weft__fmod {
  weft_loop *loop;
  weft_future *free;                 /* free list through `next` */
  void *slabs;                       /* slabs of futures, freed at teardown */
  weft_future *rq_head, *rq_tail;    /* ready continuations */
  bool scheduled;                    /* a drain task is queued */
  struct weft__timer_holder *timers; /* timed.c: every timer holder */
  struct weft__timer_holder *timers_free;        /* timed.c: the idle ones */
  void (*timers_teardown)(struct weft__fmod *m); /* timed.c frees them */
  weft_unhandled_cb unhandled;
  weft_unhandled_info_cb unhandled_info; /* one of the two, or neither */
  void *unhandled_arg;
  /* future.c: names given by weft_future_set_name (WEFT__F_NAMED) */
  struct weft__fname **names;
  size_t names_cap, names_n;
  /* The loop's thread: the one that made the loop's first future (written
   * once, before any future exists, so other threads may read it). */
  pthread_t owner;
  /* wait.c: the waits registered on this loop's futures (loop thread) */
  struct weft__waiter *waiting;
  void (*waits_teardown)(struct weft__fmod *m); /* wakes them: -ESHUTDOWN */
  /* threadsafe.c: settle messages handed back by the loop (any thread
   * takes the whole stack), every message of this loop, and the hook that
   * frees them (stored by the first thread that makes one) */
  _Atomic(struct weft__tsnode *) ts_back;
  _Atomic(struct weft__tsnode *) ts_all;
  _Atomic(void (*)(struct weft__fmod *m)) ts_teardown;
} weft__fmod;

/* Marks f's outcome observed. Writes only when the flag is not yet set, so
 * that once a thread has returned from weft_future_wait() (which sets it
 * on the loop thread first) the loop only reads f's fields and that thread
 * may read them too. */
static inline void weft__observe(weft_future *f) {
  if (!(f->flags & WEFT__F_OBSERVED)) f->flags |= WEFT__F_OBSERVED;
}

/* Checks the loop's future slabs: every free-list entry is a future of one
 * of the slabs, and the list ends (no entry twice). Sets *in_use to the
 * futures drawn and not yet given back (0 before the first); returns true
 * if the checks hold, else prints the first failure to stderr. For tests. */
bool weft__future_slabs_validate(weft_loop *loop, size_t *in_use);

/* Draws a zeroed pending future of `kind` with one reference; the slow
 * path creates the module state or refills the free list. */
int weft__future_alloc_slow(weft_loop *loop, uint8_t kind, weft_future **out);
static inline int weft__future_alloc(weft_loop *loop, uint8_t kind,
                                     weft_future **out) {
  weft__fmod *m = (weft__fmod *)weft__module_get(loop, WEFT__MOD_FUTURE);
  if (WEFT__UNLIKELY(m == NULL || m->free == NULL))
    return weft__future_alloc_slow(loop, kind, out);
  weft_future *f = m->free;
  m->free = f->next;
  *f = (weft_future){.loop = loop, .refs = 1, .kind = kind};
  *out = f;
  return 0;
}
/* Drops a reference; a future reaching 0 joins `todo` (linked by `next`,
 * which no list uses any more: every list holds a reference), for a kind's
 * release hook. */
static inline void weft__future_drop(weft_future *f, weft_future **todo) {
  if (f != NULL && --f->refs == 0) {
    f->next = *todo;
    *todo = f;
  }
}
/* weft_future_unref for a future whose kind has no release hook, with
 * the common last reference inline: a future holding nothing to report or
 * let go of (no source, not rejected, no pointer value, no name) goes
 * straight back to the free list, as weft_future_unref would put it. */
static inline void weft__future_unref_norelease(weft_future *f) {
  if (f->refs == 1 && f->src == NULL && f->state != WEFT_FUTURE_REJECTED &&
      !(f->flags & (WEFT__F_PTR | WEFT__F_NAMED))) {
    weft__fmod *m = (weft__fmod *)weft__module_get(f->loop, WEFT__MOD_FUTURE);
    f->refs = 0;
    f->next = m->free;
    m->free = f;
    return;
  }
  weft_future_unref(f);
}
/* Settles f (pending) with (state, value) and queues its continuations. */
void weft__future_settle(weft_future *f, uint8_t state);
/* Settles f (pending) as rejected with err, or fulfilled with int64 v;
 * inline when nothing waits on f. */
static inline void weft__future_finish(weft_future *f, uint8_t state,
                                       int64_t v) {
  f->v.i = v;
  f->flags &= (uint8_t)~WEFT__F_VALUE;
  if (f->waiters == NULL) {
    f->state = state; /* weft__future_settle with no list to queue */
    return;
  }
  weft__future_settle(f, state);
}
/* f takes src's outcome (src settled). */
void weft__future_pass(weft_future *f, weft_future *src);
/* Queues w (one reference given) to run soon: f has settled. */
void weft__future_enqueue(weft_future *f, weft_future *w);
/* Queues a drain task for m's ready queue (future.c), unless one is. */
void weft__future_schedule(weft__fmod *m);
/* weft__future_enqueue of a single w (one reference given) on loop's ready
 * queue, inline: for a node that is queued on its own, such as a fiber's
 * wake at spawn. */
static inline void weft__future_ready(weft_loop *loop, weft_future *w) {
  weft__fmod *m = (weft__fmod *)weft__module_get(loop, WEFT__MOD_FUTURE);
  w->next = NULL;
  if (m->rq_tail != NULL)
    m->rq_tail->next = w;
  else
    m->rq_head = w;
  m->rq_tail = w;
  if (!m->scheduled) weft__future_schedule(m);
}
/* Registers w (one reference given) as a continuation of f. */
static inline void weft__future_wait(weft_future *f, weft_future *w) {
  weft__observe(f);
  if (f->state != WEFT_FUTURE_PENDING) {
    weft__future_enqueue(f, w);
    return;
  }
  w->next = f->waiters;
  f->waiters = w;
}
/* Removes w from f's continuations (drops the list's reference to w). */
bool weft__future_unwait(weft_future *f, weft_future *w);
/* True if w is f's only registered continuation. */
static inline bool weft__future_sole(const weft_future *f,
                                     const weft_future *w) {
  return f->waiters == w && w->next == NULL;
}
/* combinators.c, for timed.c's timeout: the aggregate's nodes leave their
 * inputs' continuations once it settled; cancelling it cancels the inputs
 * it was the sole consumer of; its release cuts the nodes' back pointers. */
void weft__agg_detach(weft_future *agg);
weft_future *weft__agg_cancel(weft_future *agg);
void weft__agg_release(weft_future *agg, weft_future **todo);
/* Builds an aggregate of `kind` over fs (see combinators.c). */
int weft__gather(weft_loop *loop, weft_future *const *fs, size_t n,
                 uint8_t kind, weft_future **out);
/* The loop's state, which must exist (a future was allocated). */
static inline weft__fmod *weft__fmod_get(weft_loop *loop) {
  return (weft__fmod *)weft__module_get(loop, WEFT__MOD_FUTURE);
}

/* ---- wait lists of the async primitives (sync.c) -------------------------
 * A FIFO of pending WEFT__K_PLAIN futures through their `next` field; the list
 * holds a reference to each, and each one's cancel hook takes it out. */
typedef struct weft__waitq {
  weft_future *head, *tail;
} weft__waitq;

/* A new waiter at the tail; *out gets the caller's reference. */
int weft__waitq_add(weft_loop *loop, weft__waitq *q, weft_future **out);
/* Appends an existing pending waiter (taking over the list reference). */
void weft__waitq_push(weft__waitq *q, weft_future *f);
/* The oldest waiter, with the list's reference, or NULL. */
weft_future *weft__waitq_pop(weft__waitq *q);
/* Takes f off q without touching its references; false if f is not on q. */
bool weft__waitq_unlink(weft__waitq *q, weft_future *f);
/* Fulfils (int64 0) the oldest waiter still pending; false if none. */
bool weft__waitq_wake(weft__waitq *q);
/* Rejects every waiter with err and empties the list. */
void weft__waitq_fail_all(weft__waitq *q, int err);
/* A future already fulfilled with int64 0. */
int weft__future_done(weft_loop *loop, weft_future **out);

/* CLOCK_MONOTONIC now + ms, for a thread's timed wait (queue.c, wait.c). */
static inline struct timespec weft__deadline_after(int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

#endif
