#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
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
  cr_assert_eq(weft_set_allocator(&a), 0,
               "allocator swap while weft holds memory");
}

void th_alloc_restore(void) {
  cr_assert_eq(weft_set_allocator(NULL), 0, "weft still holds memory");
}

void th_alloc_arm(size_t n) {
  atomic_store(&fail_at, n ? atomic_load(&calls) + n : 0);
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

int th_fds_in(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s", dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return strcmp(dir, "/proc/self/fd") == 0 ? n - 1 : n;
}

void th_loop_finish(weft_loop *loop) {
  th_loop_close(loop);
  cr_assert_eq(weft_alloc_live(), 0, "weft leaked %zu blocks",
               weft_alloc_live());
}

void th_run(weft_loop *loop) {
  int rc = weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(rc, 0, "weft_loop_run: %d (%s)", rc,
               rc < 0 ? weft_err_name(rc) : "alive");
}

static void usable_closed(weft_handle *h) { *(int *)h->data += 10; }

static void usable_tick(weft_timer *t) {
  ++*(int *)t->base.data;
  weft_close(&t->base, usable_closed);
}

void th_loop_usable(weft_loop *loop) {
  weft_timer t;
  int seen = 0; /* +1 fired, +10 closed */
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  t.base.data = &seen;
  int rc = weft_timer_start(&t, usable_tick, 0, 0);
  cr_assert_eq(rc, 0, "timer start on the swept loop: %s", weft_err_name(rc));
  for (int i = 0; i < 1000 && seen < 10; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(seen, 11, "the loop no longer runs a timer (%d)", seen);
}

/* One round of th_alloc_sweep_run(); returns the op's status, stores
 * whether an allocation failed. */
static int sweep_round(const th_sweep *s, size_t n, bool *any_failed) {
  th_alloc_install(0);
  weft_loop *loop = s->no_loop ? NULL : th_loop();
  if (s->setup) cr_assert_eq(s->setup(loop, s->arg), 0, "sweep setup");
  th_alloc_arm(n);
  int rc = s->op(loop, s->arg);
  *any_failed = th_alloc_failed() != 0;
  th_alloc_arm(0);
  if (rc != 0)
    cr_assert(rc == -ENOMEM && *any_failed, "allocation %zu: %s", n,
              weft_err_name(rc));
  if (s->strict && *any_failed)
    cr_assert_eq(rc, -ENOMEM, "allocation %zu failed, yet %s", n,
                 weft_err_name(rc));
  if (loop != NULL) {
    th_loop_usable(loop);
    th_loop_close(loop);
  }
  cr_assert_eq(weft_alloc_live(), 0, "allocation %zu: weft leaked %zu blocks",
               n, weft_alloc_live());
  th_alloc_restore();
  return rc;
}

size_t th_alloc_sweep_run(const th_sweep *s) {
  size_t limit = s->max_rounds ? s->max_rounds : 10000, failures = 0;
  for (size_t n = 1;; n++) {
    cr_assert_lt(n, limit, "never succeeded in %zu rounds", limit);
    bool any_failed;
    int rc = sweep_round(s, n, &any_failed);
    if (!any_failed) return failures;
    failures += rc != 0;
  }
}

size_t th_alloc_sweep(th_sweep_fn op, void *arg) {
  th_sweep s = {.op = op, .arg = arg};
  return th_alloc_sweep_run(&s);
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
  if (strcmp(program_invocation_short_name, "boxfort-worker") == 0)
    alarm(TH_WATCHDOG_S);
}
#endif

void th_rm_tree(const char *d) {
  DIR *h = opendir(d);
  if (h == NULL) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(h)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", d, e->d_name);
    if (e->d_type == DT_DIR)
      th_rm_tree(p);
    else
      unlink(p);
  }
  closedir(h);
  rmdir(d);
}
