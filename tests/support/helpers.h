/* weft tests: shared helpers. */
#ifndef WEFT_TEST_HELPERS_H
#define WEFT_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

#include <weft.h>

/* A counting allocator that can make the Nth allocation (1-based) fail.
 * th_alloc_install(0) counts without failing. th_alloc_restore() puts the
 * C library's allocator back (call it once weft holds nothing). */
void th_alloc_install(size_t fail_at);
void th_alloc_restore(void);
size_t th_alloc_calls(void);   /* malloc+realloc calls since install */
size_t th_alloc_failed(void);  /* how many calls were made to fail */

/* A loop created with default options; asserts success. */
weft_loop *th_loop(void);
/* Closes every handle left on the loop, runs it until the closes finish,
 * and frees it (asserting success). For tests with several loops. */
void th_loop_close(weft_loop *loop);
/* th_loop_close(), then asserts that weft holds no memory afterwards. */
void th_loop_finish(weft_loop *loop);

#endif
