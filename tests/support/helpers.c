#include "test.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void th_loop_close(weft_loop *loop) {
  weft_walk(loop, close_any, NULL);
  int err;
  for (int i = 0; (err = weft_loop_free(loop)) == -EBUSY && i < 1000; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(err, 0, "weft_loop_free: %s", weft_err_name(err));
}

void th_loop_finish(weft_loop *loop) {
  th_loop_close(loop);
  cr_assert_eq(weft_alloc_live(), 0, "weft leaked %zu blocks", weft_alloc_live());
}

/* LeakSanitizer reads this hook at exit. Criterion's runner process (not a
 * test, and not weft) sometimes leaks a 48-byte timeout record of its
 * sandbox library when several tests with timeouts end together; weft's own
 * leaks are still reported, and th_loop_finish() checks weft's count. */
const char *__lsan_default_suppressions(void);
__attribute__((used, visibility("default"))) const char *
__lsan_default_suppressions(void) {
  return "leak:libcriterion.so\n";
}

#ifndef WEFT_PLAINRUN
/* A watchdog under every test's own .timeout. Criterion runs each test in a
 * worker process (named "boxfort-worker"); its runner enforces .timeout from
 * a monitor thread that, when several tests end at once, can stop watching,
 * after which a hung test would hang `make check` for good. So each worker
 * also arms an alarm well above the largest .timeout (60 s): a hung test
 * then dies of SIGALRM and is reported as crashed. */
#define TH_WATCHDOG_S 180u
__attribute__((constructor)) static void th_watchdog(void) {
  if (strcmp(program_invocation_short_name, "boxfort-worker") == 0) alarm(TH_WATCHDOG_S);
}
#endif
