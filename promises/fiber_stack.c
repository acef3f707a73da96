/* weft — fiber stacks: an anonymous mapping per stack, a guard page below.
 *
 * The mapping is MAP_NORESERVE, so only the pages a fiber touches are ever
 * committed (a fiber that awaits at once touches one or two). The guard
 * page is a guard region (MADV_GUARD_INSTALL, Linux 6.13+), which keeps
 * the mapping one VMA so that stacks mapped next to each other merge and
 * 100k fibers stay far below vm.max_map_count; on older kernels it is a
 * PROT_NONE page (mprotect), two VMAs per stack. Either way a write below
 * the stack is a SIGSEGV whose address is in the guard page. Valgrind is
 * told about each stack (VALGRIND_STACK_REGISTER) when its header exists. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fiber_internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

size_t weft__fstack_page; /* the same for every thread: a benign race */

size_t weft__fstack_guard(void) {
  if (weft__fstack_page == 0) weft__fstack_page = (size_t)sysconf(_SC_PAGESIZE);
  return weft__fstack_page;
}

size_t weft__fstack_round(size_t want) {
  size_t pg = weft__fstack_guard();
  if (want == 0) want = WEFT_FIBER_STACK_DEFAULT;
  if (want > WEFT_FIBER_STACK_MAX) return 0;
  if (want < WEFT_FIBER_STACK_MIN) want = WEFT_FIBER_STACK_MIN;
  return (want + pg - 1) & ~(pg - 1);
}

int weft__fstack_map(weft__fstack *s, size_t size) {
  size_t g = weft__fstack_guard();
  void *p =
      mmap(NULL, size + g, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) return -ENOMEM;
  if (madvise(p, g, MADV_GUARD_INSTALL) != 0 &&
      mprotect(p, g, PROT_NONE) != 0) {
    munmap(p, size + g);
    return -ENOMEM;
  }
  s->map = p;
  s->size = size;
  s->vg = 0;
#ifdef HAVE_VALGRIND
  s->vg = VALGRIND_STACK_REGISTER((char *)p + g, (char *)p + g + size);
#endif
  return 0;
}

void weft__fstack_unmap(weft__fstack *s) {
#ifdef HAVE_VALGRIND
  VALGRIND_STACK_DEREGISTER(s->vg);
#endif
  munmap(s->map, s->size + weft__fstack_guard());
  s->map = NULL;
}
