/* weft — the one replaceable allocator every library allocation goes
 * through. A live-block counter lets tests prove that nothing leaks and
 * keeps a new allocator from freeing blocks the old one handed out. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void *libc_malloc(size_t size, void *ctx) {
  WEFT__UNUSED(ctx);
  return malloc(size);
}
static void *libc_realloc(void *ptr, size_t size, void *ctx) {
  WEFT__UNUSED(ctx);
  return realloc(ptr, size);
}
static void libc_free(void *ptr, void *ctx) {
  WEFT__UNUSED(ctx);
  free(ptr);
}

static weft_allocator current = {libc_malloc, libc_realloc, libc_free, NULL};
static atomic_size_t live;

int weft_set_allocator(const weft_allocator *a) {
  if (a != NULL && (a->malloc == NULL || a->realloc == NULL || a->free == NULL))
    return -EINVAL;
  if (atomic_load(&live) != 0) return -EBUSY;
  if (a == NULL)
    current = (weft_allocator){libc_malloc, libc_realloc, libc_free, NULL};
  else
    current = *a;
  return 0;
}

size_t weft_alloc_live(void) { return atomic_load(&live); }

void *weft__malloc(size_t size) {
  void *p = current.malloc(size ? size : 1, current.ctx);
  if (p != NULL) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
  return p;
}

void *weft__calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return NULL;
  void *p = weft__malloc(n * size);
  if (p != NULL) memset(p, 0, n * size);
  return p;
}

void *weft__realloc(void *ptr, size_t size) {
  if (ptr == NULL) return weft__malloc(size);
  return current.realloc(ptr, size ? size : 1, current.ctx);
}

void weft__free(void *ptr) {
  if (ptr == NULL) return;
  atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
  current.free(ptr, current.ctx);
}

char *weft__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = weft__malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}
