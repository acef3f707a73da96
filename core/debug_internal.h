/* weft — WEFT__ASSERT: invariant checks for debug and sanitizer builds.
 *
 * Active when WEFT_DEBUG is defined (the Makefile's asan and tsan variants
 * pass -DWEFT_DEBUG), compiled out otherwise, so plain -O2 builds pay
 * nothing: the condition is not even evaluated there, so it must have no
 * side effects. A failed check prints the condition and its place, then
 * aborts. Never installed. */
#ifndef WEFT_CORE_DEBUG_INTERNAL_H
#define WEFT_CORE_DEBUG_INTERNAL_H

#ifdef WEFT_DEBUG
#include <stdio.h>
#include <stdlib.h>

static inline void weft__assert_fail(const char *cond, const char *file,
                                     int line) {
  fprintf(stderr, "weft: assertion failed: %s (%s:%d)\n", cond, file, line);
  abort();
}
#define WEFT__ASSERT(cond)                                                     \
  ((cond) ? (void)0 : weft__assert_fail(#cond, __FILE__, __LINE__))
#else
#define WEFT__ASSERT(cond) ((void)0)
#endif

#endif /* WEFT_CORE_DEBUG_INTERNAL_H */
