#include "test.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_size_t calls, failed, fail_at;

static void *t_malloc(size_t n, void *ctx) {
  (void)ctx;
  size_t c = atomic_fetch_add(&calls, 1) + 1;
  if (c == atomic_load(&fail_at)) {
    atomic_fetch_add(&failed, 1);
    return NULL;
  }
  return malloc(n);
}

static void *t_realloc(void *p, size_t n, void *ctx) {
  (void)ctx;
  size_t c = atomic_fetch_add(&calls, 1) + 1;
  if (c == atomic_load(&fail_at)) {
    atomic_fetch_add(&failed, 1);
    return NULL;
  }
  return realloc(p, n);
}

static void t_free(void *p, void *ctx) {
  (void)ctx;
  free(p);
}

void th_alloc_install(size_t n) {
  atomic_store(&calls, 0);
  atomic_store(&failed, 0);
  atomic_store(&fail_at, n);
  weft_allocator a = {t_malloc, t_realloc, t_free, NULL};
  cr_assert_eq(weft_set_allocator(&a), 0, "allocator swap while weft holds memory");
}

void th_alloc_restore(void) {
  cr_assert_eq(weft_set_allocator(NULL), 0, "weft still holds memory");
}

size_t th_alloc_calls(void) { return atomic_load(&calls); }
size_t th_alloc_failed(void) { return atomic_load(&failed); }

weft_loop *th_loop(void) {
  weft_loop *loop = NULL;
  cr_assert_eq(weft_loop_new(&loop, NULL), 0);
  cr_assert_not_null(loop);
  return loop;
}

static void close_any(weft_handle *h, void *arg) {
  (void)arg;
  if (!weft_is_closing(h)) weft_close(h, NULL);
}

void th_loop_finish(weft_loop *loop) {
  weft_walk(loop, close_any, NULL);
  for (int i = 0; i < 1000 && weft_loop_free(loop) == -EBUSY; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_alloc_live(), 0, "weft leaked %zu blocks", weft_alloc_live());
}
