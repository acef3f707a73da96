/* weft — the future: states, references, the free list, the ready queue.
 *
 * Every future, and every internal continuation node, is one 64-byte struct
 * drawn from a per-loop free list refilled in slabs, so steady state never
 * allocates. A settled future's continuations move, in registration order,
 * onto the loop's ready queue (an intrusive list through `next`), which one
 * weft_call_soon() task drains: settling never allocates and never runs a
 * continuation inline. Continuation lists are kept newest-first (one pointer
 * per future) and reversed when they move.
 *
 * What a future does when it fires, is cancelled, is settled by hand or is
 * freed belongs to its kind (a weft__kind table in the kind's own file, see
 * internal.h): this file only dispatches through weft__kinds[]. It defines
 * one kind itself, the plain future. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define SLAB_N 63u         /* futures per slab (one block of ~4 KiB) */
#define DRAIN_BUDGET 4096u /* continuations per drain task, then requeue */

_Static_assert(sizeof(weft_future) <= 64, "a future must fit in 64 bytes");

typedef struct slab {
  struct slab *next;
  weft_future f[SLAB_N];
} slab;

typedef weft__fmod fmod;

static void names_free(fmod *m);

static void teardown(weft_loop *loop, void *state) {
  WEFT__UNUSED(loop);
  fmod *m = state;
  names_free(m);
  while (m->slabs != NULL) {
    slab *s = m->slabs;
    m->slabs = s->next;
    weft__free(s);
  }
  if (m->waits_teardown != NULL) m->waits_teardown(m); /* wait.c's */
  void (*ts)(weft__fmod *) = atomic_load(&m->ts_teardown);
  if (ts != NULL) ts(m);                                 /* threadsafe.c's */
  if (m->timers_teardown != NULL) m->timers_teardown(m); /* timed.c's */
  weft__free(m);
}

/* weft_loop_debug_dump(): one line per pending future, slab by slab (a
 * future on the free list has no reference). */
static long dump(weft_loop *loop, void *state, int fd) {
  WEFT__UNUSED(loop);
  const fmod *m = state;
  long n = 0;
  for (const slab *s = m->slabs; s != NULL; s = s->next)
    for (unsigned i = 0; i < SLAB_N; i++) {
      const weft_future *f = &s->f[i];
      if (f->refs == 0 || f->state != WEFT_FUTURE_PENDING) continue;
      const char *name = weft_future_get_name(f);
      int w = name != NULL ? dprintf(fd, "future %s %p pending op=%s \"%s\"\n",
                                     weft__kind_of(f)->name, (const void *)f,
                                     weft_future_get_op(f), name)
                           : dprintf(fd, "future %s %p pending op=%s\n",
                                     weft__kind_of(f)->name, (const void *)f,
                                     weft_future_get_op(f));
      if (w < 0) return -errno;
      n++;
    }
  return n;
}

static fmod *mod_get(weft_loop *loop) {
  fmod *m = weft__module_get(loop, WEFT__MOD_FUTURE);
  if (m != NULL) return m;
  m = weft__calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->loop = loop;
  m->owner = pthread_self();
  weft__module_set(loop, WEFT__MOD_FUTURE, m, teardown);
  weft__module_set_dump(loop, WEFT__MOD_FUTURE, dump);
  return m;
}

static int refill(fmod *m) {
  slab *s = weft__malloc(sizeof *s);
  if (s == NULL) return -ENOMEM;
  s->next = m->slabs;
  m->slabs = s;
  for (unsigned i = SLAB_N; i-- > 0;) {
    s->f[i].refs = 0; /* free: what the debug dump skips */
    s->f[i].next = m->free;
    m->free = &s->f[i];
  }
  return 0;
}

/* The slab that holds f, or NULL if f is not one of its futures. */
static const slab *slab_of(const fmod *m, const weft_future *f) {
  for (const slab *s = m->slabs; s != NULL; s = s->next)
    if (f >= s->f && f < s->f + SLAB_N) return s;
  return NULL;
}

bool weft__future_slabs_validate(weft_loop *loop, size_t *in_use) {
  const fmod *m = weft__module_get(loop, WEFT__MOD_FUTURE);
  *in_use = 0;
  if (m == NULL) return true;
  size_t total = 0, free_n = 0;
  for (const slab *s = m->slabs; s != NULL; s = s->next)
    total += SLAB_N;
  for (const weft_future *f = m->free; f != NULL; f = f->next) {
    const slab *s = slab_of(m, f);
    if (s == NULL ||
        (size_t)((const char *)f - (const char *)s->f) % sizeof *f != 0) {
      fprintf(stderr,
              "weft__future_slabs_validate: free entry %p is not a "
              "future of a slab\n",
              (const void *)f);
      return false;
    }
    if (++free_n > total) { /* a singly linked list repeats only in a cycle */
      fprintf(stderr, "weft__future_slabs_validate: the free list loops\n");
      return false;
    }
  }
  *in_use = total - free_n;
  return true;
}

int weft__future_alloc_slow(weft_loop *loop, uint8_t kind, weft_future **out) {
  fmod *m = mod_get(loop);
  if (m == NULL) return -ENOMEM;
  if (m->free == NULL && refill(m) != 0) return -ENOMEM;
  return weft__future_alloc(loop, kind, out);
}

int weft_future_new(weft_loop *loop, weft_future **out) {
  if (loop == NULL || out == NULL) return -EINVAL;
  return weft__future_alloc(loop, WEFT__K_PLAIN, out);
}

/* ---- operations and names --------------------------------------------------
 * An op is a borrowed static string, interned by address in a lock-free
 * table (slot 0 means none), so a future records it in one byte. A name is
 * a copy in the loop's table (chained hash by future address), looked up
 * only when a flagged future is freed, reported or asked. */

#define OPS_N 256u
static _Atomic(const char *) g_ops[OPS_N];

uint8_t weft__op_intern(const char *op) {
  if (op == NULL) return 0;
  uintptr_t h = ((uintptr_t)op >> 3) * (uintptr_t)0x9E3779B97F4A7C15ull;
  unsigned start = (unsigned)(h >> (sizeof h * 8 - 8));
  for (unsigned k = 0; k < OPS_N; k++) {
    unsigned i = (start + k) % OPS_N;
    if (i == 0) continue;
    const char *cur = atomic_load_explicit(&g_ops[i], memory_order_acquire);
    if (cur == op) return (uint8_t)i;
    if (cur == NULL) {
      if (atomic_compare_exchange_strong(&g_ops[i], &cur, op))
        return (uint8_t)i;
      if (cur == op) return (uint8_t)i; /* another thread interned it */
    }
  }
  return 0; /* full */
}

const char *weft__op_name(uint8_t id) {
  return id == 0 ? NULL
                 : atomic_load_explicit(&g_ops[id], memory_order_acquire);
}

int weft_future_new_op(weft_loop *loop, const char *op, weft_future **out) {
  if (loop == NULL || out == NULL) return -EINVAL;
  int err = weft__future_alloc(loop, WEFT__K_PLAIN, out);
  if (err == 0) (*out)->op = weft__op_intern(op);
  return err;
}

typedef struct weft__fname {
  struct weft__fname *next;
  const weft_future *f;
  char name[WEFT_FUTURE_NAME_MAX + 1];
} fname;

static size_t name_bucket(const fmod *m, const weft_future *f) {
  uintptr_t h = ((uintptr_t)f >> 6) * (uintptr_t)0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 16) & (m->names_cap - 1);
}

static fname **name_slot(const fmod *m, const weft_future *f) {
  if (m->names_cap == 0) return NULL;
  fname **p = &m->names[name_bucket(m, f)];
  while (*p != NULL && (*p)->f != f)
    p = &(*p)->next;
  return p;
}

static int names_grow(fmod *m) {
  size_t cap = m->names_cap ? m->names_cap * 2 : 16;
  fname **nb = weft__calloc(cap, sizeof *nb);
  if (nb == NULL) return -ENOMEM;
  fname **old = m->names;
  size_t old_cap = m->names_cap;
  m->names = nb;
  m->names_cap = cap;
  for (size_t i = 0; i < old_cap; i++) {
    for (fname *e = old[i], *nx; e != NULL; e = nx) {
      nx = e->next;
      size_t b = name_bucket(m, e->f);
      e->next = nb[b];
      nb[b] = e;
    }
  }
  weft__free(old);
  return 0;
}

static void names_free(fmod *m) {
  for (size_t i = 0; i < m->names_cap; i++) {
    for (fname *e = m->names[i], *nx; e != NULL; e = nx) {
      nx = e->next;
      weft__free(e);
    }
  }
  weft__free(m->names);
  m->names = NULL;
  m->names_cap = m->names_n = 0;
}

static void name_drop(fmod *m, weft_future *f) {
  fname **p = name_slot(m, f);
  if (p != NULL && *p != NULL) {
    fname *e = *p;
    *p = e->next;
    weft__free(e);
    m->names_n--;
  }
  f->flags &= (uint8_t)~WEFT__F_NAMED;
}

static int name_set(fmod *m, weft_future *f, const char *name) {
  fname *e = NULL;
  if (f->flags & WEFT__F_NAMED) {
    e = *name_slot(m, f);
  } else {
    if (m->names_n >= m->names_cap && names_grow(m) != 0) return -ENOMEM;
    e = weft__malloc(sizeof *e);
    if (e == NULL) return -ENOMEM;
    e->f = f;
    size_t b = name_bucket(m, f);
    e->next = m->names[b];
    m->names[b] = e;
    m->names_n++;
    f->flags |= WEFT__F_NAMED;
  }
  size_t n = strnlen(name, WEFT_FUTURE_NAME_MAX);
  memcpy(e->name, name, n);
  e->name[n] = '\0';
  return 0;
}

int weft_future_set_name(weft_future *f, const char *name) {
  if (f == NULL) return -EINVAL;
  fmod *m = weft__module_get(f->loop, WEFT__MOD_FUTURE);
  if (name == NULL) {
    if (f->flags & WEFT__F_NAMED) name_drop(m, f);
    return 0;
  }
  return name_set(m, f, name);
}

const char *weft_future_get_name(const weft_future *f) {
  if (f == NULL || !(f->flags & WEFT__F_NAMED)) return NULL;
  const fmod *m = weft__module_get(f->loop, WEFT__MOD_FUTURE);
  fname **p = name_slot(m, f);
  return p != NULL && *p != NULL ? (*p)->name : NULL;
}

const char *weft_future_get_op(const weft_future *f) {
  if (f == NULL) return "";
  const char *op = weft__op_name(f->op);
  if (op != NULL) return op;
  if (f->kind == WEFT__K_PLAIN) return "weft_future_new";
  return weft__kind_of(f)->name;
}

/* f takes the op and name of src, whose rejection it takes, unless it has
 * its own. Best effort: a name that cannot be copied is left out. */
static void inherit(weft_future *f, const weft_future *src) {
  if (f->op == 0) f->op = src->op;
  if ((src->flags & WEFT__F_NAMED) && !(f->flags & WEFT__F_NAMED)) {
    const char *n = weft_future_get_name(src);
    if (n != NULL)
      (void)name_set(weft__module_get(f->loop, WEFT__MOD_FUTURE), f, n);
  }
}

size_t weft_future_size(void) { return sizeof(weft_future); }

weft_future *weft_future_ref(weft_future *f) {
  if (f != NULL) f->refs++;
  return f;
}

/* ---- freeing ------------------------------------------------------------- */

static void default_unhandled(const weft_unhandled_info *in) {
  if (in->name != NULL)
    fprintf(stderr,
            "weft: a future was rejected and nobody observed it: %s (%s); "
            "made by %s, named \"%s\"\n",
            weft_strerror(in->err), weft_err_name(in->err), in->op, in->name);
  else
    fprintf(stderr,
            "weft: a future was rejected and nobody observed it: %s (%s); "
            "made by %s\n",
            weft_strerror(in->err), weft_err_name(in->err), in->op);
}

int weft_future_set_unhandled_hook(weft_loop *loop, weft_unhandled_cb cb,
                                   void *arg) {
  if (loop == NULL) return -EINVAL;
  fmod *m = mod_get(loop);
  if (m == NULL) return -ENOMEM;
  m->unhandled = cb;
  m->unhandled_info = NULL;
  m->unhandled_arg = arg;
  return 0;
}

int weft_future_set_unhandled_info_hook(weft_loop *loop,
                                        weft_unhandled_info_cb cb, void *arg) {
  if (loop == NULL) return -EINVAL;
  fmod *m = mod_get(loop);
  if (m == NULL) return -ENOMEM;
  m->unhandled = NULL;
  m->unhandled_info = cb;
  m->unhandled_arg = arg;
  return 0;
}

static void report(fmod *m, weft_future *f) {
  weft_unhandled_info in = {.err = (int)f->v.i,
                            .op = weft_future_get_op(f),
                            .name = weft_future_get_name(f),
                            .future = f};
  if (m->unhandled != NULL)
    m->unhandled(f->loop, in.err, m->unhandled_arg);
  else if (m->unhandled_info != NULL)
    m->unhandled_info(f->loop, &in, m->unhandled_arg);
  else
    default_unhandled(&in);
}

static void release_one(weft_future *f, weft_future **todo) {
  const weft__kind *k = weft__kind_of(f);
  fmod *m = weft__module_get(f->loop, WEFT__MOD_FUTURE);
  if (f->state == WEFT_FUTURE_REJECTED && !(f->flags & WEFT__F_OBSERVED))
    report(m, f);
  if (f->flags & WEFT__F_NAMED) name_drop(m, f);
  if (f->state == WEFT_FUTURE_FULFILLED && (f->flags & WEFT__F_PTR) &&
      f->u.dtor != NULL)
    f->u.dtor(f->v.p);
  if (k->release != NULL)
    k->release(f, todo);
  else
    weft__future_drop(f->src, todo);
  f->next = m->free;
  m->free = f;
}

/* Iterative, so that freeing the end of a long chain cannot overflow the
 * stack. */
static void release(weft_future *f) {
  weft_future *todo = f;
  f->next = NULL;
  while (todo != NULL) {
    weft_future *x = todo;
    todo = x->next;
    release_one(x, &todo);
  }
}

/* The common case, a future with nothing to report, destroy or let go of,
 * goes straight back to the free list. */
static inline void unref(weft_future *f) {
  if (--f->refs != 0) return;
  if (f->src == NULL && f->state != WEFT_FUTURE_REJECTED &&
      !(f->flags & (WEFT__F_PTR | WEFT__F_NAMED)) &&
      weft__kind_of(f)->release == NULL) {
    fmod *m = weft__module_get(f->loop, WEFT__MOD_FUTURE);
    f->next = m->free;
    m->free = f;
    return;
  }
  release(f);
}

void weft_future_unref(weft_future *f) {
  if (f != NULL) unref(f);
}

/* ---- the ready queue ------------------------------------------------------
 */

static void drain(void *arg);

static void schedule(fmod *m) {
  /* weft_call_soon only fails if its ring must grow and cannot; the next
   * enqueue retries */
  if (!m->scheduled && weft_call_soon(m->loop, drain, m) == 0)
    m->scheduled = true;
}

void weft__future_schedule(weft__fmod *m) { schedule(m); }

/* Appends a newest-first list (not empty), in registration order. */
static void enqueue_list(weft_loop *loop, weft_future *list) {
  fmod *m = weft__module_get(loop, WEFT__MOD_FUTURE);
  weft_future *rev = list, *last = list;
  if (list->next != NULL) { /* the common case is one continuation */
    rev = NULL;
    while (list != NULL) {
      weft_future *nx = list->next;
      list->next = rev;
      rev = list;
      list = nx;
    }
  }
  if (m->rq_tail != NULL)
    m->rq_tail->next = rev;
  else
    m->rq_head = rev;
  m->rq_tail = last;
  schedule(m);
}

void weft__future_enqueue(weft_future *f, weft_future *w) {
  w->next = NULL;
  enqueue_list(f->loop, w);
}

bool weft__future_unwait(weft_future *f, weft_future *w) {
  for (weft_future **p = &f->waiters; *p != NULL; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      w->next = NULL;
      weft_future_unref(w);
      return true;
    }
  }
  return false;
}

void weft__future_settle(weft_future *f, uint8_t state) {
  f->state = state;
  weft_future *list = f->waiters;
  if (list == NULL) return;
  f->waiters = NULL;
  enqueue_list(f->loop, list);
}

void weft__future_pass(weft_future *f, weft_future *src) {
  weft__observe(src);
  f->v = src->v;
  f->flags =
      (uint8_t)((f->flags & ~WEFT__F_VALUE) | (src->flags & WEFT__F_VALUE));
  if (src->state == WEFT_FUTURE_FULFILLED)
    f->u.dtor = NULL; /* borrowed */
  else
    inherit(f, src); /* the error's op and name come with it */
  weft__future_settle(f, src->state);
}

static void drain(void *arg) {
  fmod *m = arg;
  m->scheduled = false;
  for (unsigned budget = DRAIN_BUDGET; m->rq_head != NULL && budget-- != 0;) {
    weft_future *w = m->rq_head;
    m->rq_head = w->next;
    if (m->rq_head == NULL) m->rq_tail = NULL;
    w->next = NULL;
    weft__kind_of(w)->fire(w);
    unref(w); /* the queue's reference */
  }
  if (m->rq_head != NULL) schedule(m);
}

/* ---- producer side ----------------------------------------------------- */

/* `fn`: the public caller, named by the debug mode's thread check. */
static int settle_check(const weft_future *f, const char *fn) {
  if (f == NULL) return -EINVAL;
  int err = weft__debug_thread(f->loop, fn);
  if (WEFT__UNLIKELY(err != 0)) return err;
  if (f->state != WEFT_FUTURE_PENDING) return -EALREADY;
  return weft__settle_by_hand(f);
}

int weft_future_resolve(weft_future *f, void *value, weft_dtor dtor) {
  int err = settle_check(f, __func__);
  if (err != 0) return err;
  f->v.p = value;
  f->flags = (uint8_t)((f->flags & ~WEFT__F_VALUE) | WEFT__F_PTR);
  f->u.dtor = dtor;
  weft__future_settle(f, WEFT_FUTURE_FULFILLED);
  return 0;
}

int weft_future_resolve_i64(weft_future *f, int64_t v) {
  int err = settle_check(f, __func__);
  if (err != 0) return err;
  f->v.i = v;
  f->flags &= (uint8_t)~WEFT__F_VALUE;
  f->u.dtor = NULL;
  weft__future_settle(f, WEFT_FUTURE_FULFILLED);
  return 0;
}

int weft_future_resolve_f64(weft_future *f, double v) {
  int err = settle_check(f, __func__);
  if (err != 0) return err;
  f->v.d = v;
  f->flags = (uint8_t)((f->flags & ~WEFT__F_VALUE) | WEFT__F_F64);
  f->u.dtor = NULL;
  weft__future_settle(f, WEFT_FUTURE_FULFILLED);
  return 0;
}

int weft_future_reject(weft_future *f, int err) {
  if (f == NULL || err >= 0) return -EINVAL;
  int rc = settle_check(f, __func__);
  if (rc != 0) return rc;
  f->v.i = err;
  f->flags &= (uint8_t)~WEFT__F_VALUE;
  weft__future_settle(f, WEFT_FUTURE_REJECTED);
  return 0;
}

/* Cancels f; returns what its kind says to cancel next (with a
 * reference), if anything. */
static weft_future *cancel_one(weft_future *f) {
  weft__future_finish(f, WEFT_FUTURE_CANCELLED, -ECANCELED);
  const weft__kind *k = weft__kind_of(f);
  return k->cancel != NULL ? k->cancel(f) : NULL;
}

int weft_future_cancel(weft_future *f) {
  if (f == NULL) return -EINVAL;
  WEFT__CHECK_THREAD(f->loop);
  if (f->state != WEFT_FUTURE_PENDING) return -EALREADY;
  weft_future_ref(f);
  /* iterative along a chain of sole consumers */
  for (weft_future *x = f; x != NULL;) {
    weft_future *next = cancel_one(x);
    weft_future_unref(x);
    x = next;
    if (x != NULL && x->state != WEFT_FUTURE_PENDING) {
      weft_future_unref(x);
      x = NULL;
    }
  }
  return 0;
}

int weft_future_on_cancel(weft_future *f, weft_future_cancel_cb cb, void *arg) {
  if (f == NULL || cb == NULL) return -EINVAL;
  if (f->state != WEFT_FUTURE_PENDING) return -EALREADY;
  if (f->kind != WEFT__K_PLAIN) return -EBUSY;
  f->u.hook.fn = cb;
  f->u.hook.arg = arg;
  return 0;
}

/* ---- inspection ------------------------------------------------------------
 */

weft_future_state weft_future_get_state(const weft_future *f) {
  return f ? (weft_future_state)f->state : WEFT_FUTURE_PENDING;
}

int weft_future_error(const weft_future *f) {
  if (f == NULL) return -EINVAL;
  if (f->state == WEFT_FUTURE_PENDING || f->state == WEFT_FUTURE_FULFILLED)
    return 0;
  weft__observe((weft_future *)f);
  return (int)f->v.i;
}

void *weft_future_value(const weft_future *f) {
  return f && f->state == WEFT_FUTURE_FULFILLED && (f->flags & WEFT__F_PTR)
             ? f->v.p
             : NULL;
}

int64_t weft_future_value_i64(const weft_future *f) {
  return f && f->state == WEFT_FUTURE_FULFILLED && !(f->flags & WEFT__F_VALUE)
             ? f->v.i
             : 0;
}

double weft_future_value_f64(const weft_future *f) {
  return f && f->state == WEFT_FUTURE_FULFILLED && (f->flags & WEFT__F_F64)
             ? f->v.d
             : 0.0;
}

weft_loop *weft_future_loop(const weft_future *f) { return f ? f->loop : NULL; }

/* ---- the plain kind --------------------------------------------------------
 * Settled by its producer through weft_future_resolve / reject; cancelling
 * runs the producer's hook (weft_future_on_cancel), which is how wait lists
 * (sync.c), io requests and pool jobs stop their work: they need no kind of
 * their own. A plain future with a hook belongs to its producer and cannot
 * adopt another future. */
static weft_future *plain_cancel(weft_future *f) {
  if (f->u.hook.fn != NULL) f->u.hook.fn(f, f->u.hook.arg);
  return NULL;
}

static const weft__kind plain_kind = {
    .name = "plain", .cancel = plain_cancel, .by_hand = WEFT__BY_PRODUCER};

const weft__kind *weft__kinds[WEFT__K_COUNT];

void weft__kind_register(unsigned id, const weft__kind *k) {
  WEFT__ASSERT(id < WEFT__K_COUNT && weft__kinds[id] == NULL);
  weft__kinds[id] = k;
}

WEFT__KIND(WEFT__K_PLAIN, plain_kind)
