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
size_t th_alloc_calls(void);  /* malloc+realloc calls since install */
size_t th_alloc_failed(void); /* how many calls were made to fail */
/* Re-arms the installed allocator: the nth call from now fails (0: none). */
void th_alloc_arm(size_t n);

/* ---- allocation-failure sweeps (SQLite's model) ------------------------
 * One round per allocation: round n runs `op` with the nth allocation it
 * makes failing, for n = 1, 2, ... until a round in which nothing failed.
 * Each round gets a fresh loop (made, and `setup` run, while nothing
 * fails). `op` returns 0 when the operation completed, or the error it
 * met; it closes or unrefs what it made that is not a handle. After each
 * round the helper asserts: the status is 0 or -ENOMEM, -ENOMEM only when
 * an allocation failed, 0 when none did (with .strict, every failure
 * surfaces as -ENOMEM); the loop still runs a timer; and once its handles
 * are closed and it is freed, weft holds no memory. */
typedef int (*th_sweep_fn)(weft_loop *loop, void *arg);
typedef struct th_sweep {
  th_sweep_fn op;
  void *arg;
  th_sweep_fn setup; /* optional; must return 0 */
  size_t max_rounds; /* "never succeeded" after this many (0: 10000) */
  bool strict;       /* an injected failure may not be absorbed */
  bool no_loop;      /* `op` gets NULL and makes its own loops */
} th_sweep;
/* Runs the sweep; returns how many rounds `op` returned -ENOMEM. */
size_t th_alloc_sweep_run(const th_sweep *s);
/* The common case: no setup, failures may be absorbed. */
size_t th_alloc_sweep(th_sweep_fn op, void *arg);

/* A loop created with default options; asserts success. */
weft_loop *th_loop(void);
/* Closes every handle left on the loop, runs it until the closes finish,
 * and frees it (asserting success). For tests with several loops. */
void th_loop_close(weft_loop *loop);
/* th_loop_close(), then asserts that weft holds no memory afterwards. */
void th_loop_finish(weft_loop *loop);
/* The entries of a /proc/PID/fd directory (asserts it opens); for this
 * process, pass "/proc/self/fd": the count leaves out the directory's own
 * fd. */
int th_fds_in(const char *dir);
/* weft_loop_run(loop, WEFT_RUN_DEFAULT): runs until nothing is left,
 * asserting that it returns 0 (not stopped with work left, no error). */
void th_run(weft_loop *loop);
/* Asserts that the loop still works: a 0 ms timer fires exactly once. */
void th_loop_usable(weft_loop *loop);
/* Removes the directory tree at `d` (a test's temporary directory);
 * nothing happens if it is not there. */
void th_rm_tree(const char *d);

#endif
