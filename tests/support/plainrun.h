/* A small fork-per-test runner with Criterion's Test()/cr_assert* surface,
 * for builds where Criterion cannot run (ThreadSanitizer: Criterion issue
 * #274). Supported: Test(suite, name, .timeout/.init/.fini/.disabled),
 * TestSuite(), cr_assert, cr_assert_{eq,neq,lt,leq,gt,geq,null,not_null,
 * str_eq,str_neq,float_eq}, cr_expect* (same as assert), cr_assert_fail.
 * Each test runs in its own child process with an alarm for its timeout.
 * Prints "plainrun: N passed, M failed". */
#ifndef WEFT_PLAINRUN_H
#define WEFT_PLAINRUN_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cr_assert(cond) without a message passes "" as the format: fine here. */
#pragma GCC diagnostic ignored "-Wformat-zero-length"

struct pr_extra {
  int pad_;
  double timeout;
  void (*init)(void);
  void (*fini)(void);
  bool disabled;
  int signal;
  int exit_code;
  const char *description;
};

struct pr_test {
  const char *suite, *name;
  void (*fn)(void);
  const struct pr_extra *extra;
  struct pr_test *next;
};

/* Weak, so that every file of a test program that includes this header
 * (the suite and tests/support/helpers.c) shares one list and one main. */
__attribute__((weak)) struct pr_test *pr_head, **pr_tail = &pr_head;

static inline void pr_register(struct pr_test *t) {
  *pr_tail = t;
  pr_tail = &t->next;
}

#define Test(suite, name, ...)                                                 \
  static void suite##_##name##_fn(void);                                       \
  static const struct pr_extra suite##_##name##_extra = {0, __VA_ARGS__};      \
  static struct pr_test suite##_##name##_test = {                              \
      #suite, #name, suite##_##name##_fn, &suite##_##name##_extra, NULL};      \
  __attribute__((constructor)) static void suite##_##name##_reg(void) {        \
    pr_register(&suite##_##name##_test);                                       \
  }                                                                            \
  static void suite##_##name##_fn(void)

#define TestSuite(suite, ...)                                                  \
  static const struct pr_extra suite##_suite_extra_                            \
      __attribute__((unused)) = {0, __VA_ARGS__}

__attribute__((format(printf, 4, 5), noreturn)) static inline void
pr_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
  fprintf(stderr, "%s:%d: assertion failed: %s", file, line, expr);
  if (fmt[0] != '\0') {
    va_list ap;
    va_start(ap, fmt);
    fputs(": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
  }
  fputc('\n', stderr);
  fflush(stderr);
  _exit(1);
}

#define cr_assert(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) pr_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);           \
  } while (0)
#define cr_assert_fail(...) pr_fail(__FILE__, __LINE__, "fail", "" __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                            \
  cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)                                           \
  cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...)                                     \
  cr_assert(((a) - (b)) <= (eps) && ((b) - (a)) <= (eps), __VA_ARGS__)
#define cr_expect cr_assert
#define cr_expect_eq cr_assert_eq
#define cr_expect_neq cr_assert_neq
#define cr_expect_lt cr_assert_lt
#define cr_expect_leq cr_assert_leq
#define cr_expect_gt cr_assert_gt
#define cr_expect_geq cr_assert_geq
#define cr_expect_null cr_assert_null
#define cr_expect_not_null cr_assert_not_null
#define cr_expect_str_eq cr_assert_str_eq
#define cr_log_info(...) ((void)0)
#define cr_log_warn(...) ((void)0)

static int pr_run_one(const struct pr_test *t) {
  const struct pr_extra *x = t->extra;
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    alarm(x->timeout > 0 ? (unsigned)(x->timeout + 0.999) : 60u);
    if (x->init) x->init();
    t->fn();
    if (x->fini) x->fini();
    fflush(NULL);
    _exit(0);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
  }
  bool ok;
  if (x->signal)
    ok = WIFSIGNALED(status) && WTERMSIG(status) == x->signal;
  else
    ok = WIFEXITED(status) && WEXITSTATUS(status) == x->exit_code;
  if (!ok) {
    if (WIFSIGNALED(status))
      fprintf(stderr, "[FAIL] %s::%s: killed by signal %d%s\n", t->suite,
              t->name, WTERMSIG(status),
              WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    else
      fprintf(stderr, "[FAIL] %s::%s: exit %d\n", t->suite, t->name,
              WEXITSTATUS(status));
  }
  return ok;
}

__attribute__((weak)) int main(int argc, char **argv) {
  const char *filter = argc > 1 ? argv[1] : getenv("PLAINRUN_FILTER");
  int passed = 0, failed = 0;
  for (struct pr_test *t = pr_head; t != NULL; t = t->next) {
    if (t->extra->disabled) continue;
    if (filter && !strstr(t->name, filter) && !strstr(t->suite, filter))
      continue;
    if (pr_run_one(t))
      passed++;
    else
      failed++;
  }
  printf("plainrun: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#endif /* WEFT_PLAINRUN_H */
