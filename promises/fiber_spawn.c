/* weft — fibers: where the memory comes from, and spawning (the switching,
 * the awaits and the kinds are in fiber.c).
 *
 * Where the memory comes from (docs/internals.md, "Fibers, inside"): the
 * fiber struct from the loop's list of spare structs, its stack from the
 * loop's idle stacks (an array, the most recently idled last), else a new
 * malloc / mapping; a finished fiber gives both back. Running out of
 * memory is spawn's -ENOMEM, never a failure at start: a fiber of the
 * default size either counts on an idle stack of the pool that no other
 * fiber counts on yet (fmodule's `owed`) and takes the warmest one at its
 * start, or maps its own at spawn; a fiber of another size takes its stack
 * at spawn. Either way the fiber starts on the warmest idle stack of its
 * size if there is one (weft__fiber_bind_stack): a batch of fibers that
 * start and finish one after the other then all run on one stack whose
 * pages and cache lines are warm, instead of touching a cold stack each (a
 * third of a spawn's cost when the struct lived at the top of its own
 * stack).
 */
#include <string.h>

#include "fiber_internal.h"
#include "fiber_mod_internal.h"
#include "internal.h"

#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define CACHE_MAX WEFT__FIBER_CACHE_MAX
/* ---- the per-loop module ------------------------------------------------ */

static void mod_teardown(weft_loop *loop, void *state) {
  WEFT__UNUSED(loop);
  fmodule *m = state;
  while (m->npool > 0)
    weft__fstack_unmap(&m->pool[--m->npool]);
  while (m->nidle > 0)
    weft__fstack_unmap(&m->idle[--m->nidle]);
  weft__free(m->pool);
  weft__free(m->idle);
  while (m->spare != NULL) {
    weft_fiber *fb = m->spare;
    m->spare = fb->next_spare;
    weft_future_unref(fb->node); /* before the futures' module goes */
    weft__free(fb);
  }
  weft__free(m);
}

static fmodule *mod_get(weft_loop *loop) {
  fmodule *m = weft__module_get(loop, WEFT__MOD_FIBER);
  if (m != NULL) return m;
  m = weft__calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  /* room for the first idle stacks now, so that a few fibers finishing
   * never allocate */
  m->cap = m->pcap = 16;
  m->default_size = weft__fstack_round(0);
  m->pool = weft__malloc(m->pcap * sizeof *m->pool);
  m->idle = weft__malloc(m->cap * sizeof *m->idle);
  if (m->pool == NULL || m->idle == NULL) {
    weft__free(m->pool);
    weft__free(m->idle);
    weft__free(m);
    return NULL;
  }
  weft__module_set(loop, WEFT__MOD_FIBER, m, mod_teardown);
  return m;
}

/* A stack of a size other than the default: the most recently idled one
 * of that size (its pages are warm), or a new mapping. Only the array is
 * read: an idle stack's memory stays cold. */
static int stack_get(fmodule *m, size_t size, weft__fstack *out) {
  for (unsigned i = m->nidle; i-- > 0;) {
    if (m->idle[i].size == size) {
      *out = m->idle[i];
      if (i != --m->nidle) /* another size idled since: keep the order */
        memmove(&m->idle[i], &m->idle[i + 1],
                (m->nidle - i) * sizeof m->idle[0]);
      return 0;
    }
  }
  return weft__fstack_map(out, size);
}

/* Doubles the array *a of *cap entries up to CACHE_MAX; false if it may
 * not or cannot. */
static bool grow(weft__fstack **a, unsigned *cap) {
  unsigned c = *cap * 2;
  weft__fstack *b = c <= CACHE_MAX ? weft__realloc(*a, c * sizeof *b) : NULL;
  if (b == NULL) return false;
  *a = b;
  *cap = c;
  return true;
}

/* Keeps s idle, in the pool (default size) or the other array, growing it
 * up to CACHE_MAX; past it, or if the array cannot grow, s is unmapped
 * (nothing fails). The pool never holds fewer than `owed` stacks: owed
 * grows only while the pool holds more. */
static void stack_put(fmodule *m, weft__fstack *s) {
  if (s->size == m->default_size) {
    if (m->npool < m->pcap || grow(&m->pool, &m->pcap))
      m->pool[m->npool++] = *s;
    else
      weft__fstack_unmap(s);
    return;
  }
  if (m->nidle < m->cap || grow(&m->idle, &m->cap))
    m->idle[m->nidle++] = *s;
  else
    weft__fstack_unmap(s);
}

/* The fiber's stack at spawn: a default-size fiber counts on one of the
 * pool's, taken at start, if the pool has one that no fiber counts on yet;
 * else it gets its own now (0 or -ENOMEM). */
static int stack_take(fmodule *m, size_t size, weft_fiber *fb) {
  if (size != m->default_size) return stack_get(m, size, &fb->stack);
  if (WEFT__LIKELY(m->npool > m->owed)) {
    m->owed++;
    fb->stack.map = NULL; /* weft__fiber_bind_stack takes it */
    return 0;
  }
  return weft__fstack_map(&fb->stack, size);
}

/* Undoes stack_take (for a spawn that fails later). */
static void stack_untake(fmodule *m, weft_fiber *fb) {
  if (fb->stack.map == NULL)
    m->owed--;
  else
    stack_put(m, &fb->stack);
}

/* A fiber struct: a spare one (with its wake node, fb->node), else a new
 * one (node NULL; NULL: no memory). */
static weft_fiber *fiber_get(fmodule *m) {
  weft_fiber *fb = m->spare;
  if (fb == NULL) {
    fb = weft__malloc(sizeof *fb);
    if (fb != NULL) fb->node = NULL;
    return fb;
  }
  m->spare = fb->next_spare;
  m->nspare--;
  return fb;
}

/* A spare struct keeps its wake node (a reference): the next spawn that
 * takes it neither allocates nor zeroes a node. */
static void fiber_put(fmodule *m, weft_fiber *fb) {
  if (m->nspare >= CACHE_MAX) {
    weft_future_unref(fb->node);
    weft__free(fb);
    return;
  }
  fb->next_spare = m->spare;
  m->spare = fb;
  m->nspare++;
}
/* The loop's side, after the body returned: the stack and the struct go
 * back to the module, the references go. */
void weft__fiber_reap_slow(weft_fiber *fb) {
  weft_loop *loop = fb->loop;
  weft_future *f = fb->f;
#ifdef WEFT_TSAN
  __tsan_destroy_fiber(fb->tsan);
#endif
  fmodule *m = fb->mod;
  stack_put(m, &fb->stack);
  fiber_put(m, fb);                /* with its node */
  weft__future_unref_norelease(f); /* the fiber kind has no release hook */
  if (--m->live == 0) weft__req_done(loop); /* the module's one reference */
}

/* ---- spawning ------------------------------------------------------------ */

/* Fills in a fiber struct (its stack: stack_take). */
static void init(weft_fiber *fb) {
  /* field by field: a memset of the whole struct (name included) was a
   * third of a spawn */
  fb->caller = NULL;
  fb->cancelled = fb->cancel_pending = fb->is_ptr = fb->shielded = false;
  fb->p = NULL;
  fb->i = 0;
  fb->dtor = NULL;
#ifdef WEFT_ASAN
  fb->fake = NULL;
  fb->caller_bottom = NULL;
  fb->caller_size = 0;
#endif
#ifdef WEFT_TSAN
  fb->tsan = fb->caller_tsan = NULL;
#endif
}

/* The fiber's struct and stack (mod_get and the stack may fail). */
static int take_memory(weft_loop *loop, size_t size, weft_fiber **out) {
  fmodule *m = mod_get(loop);
  if (m == NULL) return -ENOMEM;
  weft_fiber *fb = fiber_get(m);
  if (fb == NULL) return -ENOMEM;
  if (stack_take(m, size, fb) != 0) {
    fiber_put(m, fb);
    return -ENOMEM;
  }
  init(fb);
  fb->mod = m;
  *out = fb;
  return 0;
}

/* The struct's wake node: a spare struct's own, made pending again (its
 * reference count is left alone: a queue entry still being dropped may
 * hold one), else a new one. */
static int node_get(weft_loop *loop, weft_fiber *fb) {
  weft_future *n = fb->node;
  if (n == NULL) {
    if (weft__future_alloc(loop, WEFT__K_FIBER_WAKE, &n) != 0) return -ENOMEM;
    n->u.call.arg = fb;
    fb->node = n;
    return 0;
  }
  n->state = WEFT_FUTURE_PENDING;
  n->flags = 0;
  n->src = NULL;
  return 0;
}

/* A failure leaves nothing made: the stack and struct go back idle. */
static int alloc_parts(weft_loop *loop, size_t size, weft_future **f,
                       weft_fiber **fb) {
  if (weft__future_alloc(loop, WEFT__K_FIBER, f) != 0) return -ENOMEM;
  if (take_memory(loop, size, fb) != 0) {
    weft_future_unref(*f);
    return -ENOMEM;
  }
  if (node_get(loop, *fb) != 0) {
    stack_untake((*fb)->mod, *fb);
    fiber_put((*fb)->mod, *fb);
    weft_future_unref(*f);
    return -ENOMEM;
  }
  return 0;
}

static void set_name(weft_fiber *fb, const char *name) {
  if (name == NULL) {
    fb->name = "fiber";
    return;
  }
  size_t len = strnlen(name, sizeof fb->name_buf - 1);
  memcpy(fb->name_buf, name, len);
  fb->name_buf[len] = '\0';
  fb->name = fb->name_buf;
}

int weft_fiber_spawn(weft_loop *loop, weft_fiber_fn fn, void *arg,
                     const weft_fiber_options *opts, weft_future **out) {
  if (loop == NULL || fn == NULL) return -EINVAL;
  size_t want = opts != NULL ? opts->stack_size : 0;
  fmodule *m = weft__module_get(loop, WEFT__MOD_FIBER);
  size_t size =
      want == 0 && m != NULL ? m->default_size : weft__fstack_round(want);
  if (size == 0) return -EINVAL;
  weft_future *f;
  weft_fiber *fb;
  int err = alloc_parts(loop, size, &f, &fb);
  if (err != 0) return err;
  weft_future *n = fb->node;
  fb->loop = loop;
  fb->f = f;
  fb->fn = fn;
  fb->arg = arg;
  fb->state = S_NEW;
  set_name(fb, opts != NULL ? opts->name : NULL);
#ifdef WEFT_TSAN
  fb->tsan = __tsan_create_fiber(0);
#endif
  f->u.call.arg = fb;
  weft__future_ready(loop, weft__node_ref(n)); /* it starts from the queue */
  /* one loop reference while any fiber lives (as good as one each for
   * weft_loop_alive and weft_loop_free's -EBUSY, and two calls fewer per
   * spawn and finish) */
  if (fb->mod->live++ == 0) weft__req_start(loop);
  if (out != NULL) *out = weft_future_ref(f);
  return 0;
}

int weft_fiber_run(weft_loop *loop, weft_fiber_fn fn, void *arg,
                   const weft_fiber_options *opts, int64_t *result) {
  if (result != NULL) *result = 0;
  if (loop == NULL || fn == NULL) return -EINVAL;
  if (loop->running) return -EBUSY;
  weft_future *f;
  int err = weft_fiber_spawn(loop, fn, arg, opts, &f);
  if (err != 0) return err;
  while (f->state == WEFT_FUTURE_PENDING) {
    err = weft_loop_run(loop, WEFT_RUN_ONCE);
    if (err < 0) break;
  }
  if (f->state != WEFT_FUTURE_PENDING) {
    err = weft_future_error(f);
    if (err == 0 && result != NULL) *result = weft_future_value_i64(f);
  }
  weft_future_unref(f);
  return err;
}
