/* The command-line conventions every example follows (README, "Examples"):
 * -h / --help prints the usage on stdout and exits 0; an unknown argument
 * or a bad value says what is wrong, prints the usage on stderr and exits
 * 2. Header-only, so that each example stays one file. */
#ifndef WEFT_EXAMPLES_ARGS_H
#define WEFT_EXAMPLES_ARGS_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline bool ex_is_help(const char *arg) {
  return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* Exits: usage on stdout and 0 (help), else on stderr and 2. */
static inline void ex_usage(const char *usage, int status) {
  fputs(usage, status == 0 ? stdout : stderr);
  exit(status);
}

/* Says what is wrong (printf-style), then the usage on stderr; exits 2. */
static inline void ex_bad(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static inline void ex_bad(const char *usage, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fputs(usage, stderr);
  exit(2);
}

/* For an example without options: -h/--help, or nothing at all. */
static inline void ex_no_args(int argc, char **argv, const char *usage) {
  if (argc > 1 && ex_is_help(argv[1])) ex_usage(usage, 0);
  if (argc > 1) ex_bad(usage, "unknown argument '%s'", argv[1]);
}

/* `v`, the value of option `opt`, as a whole decimal number in [min, max];
 * anything else (not a number, out of range) is a usage error naming the
 * option. */
static inline long ex_number(const char *opt, const char *v, long min, long max,
                             const char *usage) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || n < min || n > max)
    ex_bad(usage, "%s %s: want a number from %ld to %ld", opt, v, min, max);
  return n;
}

/* ex_number() of argv[i + 1] for the option argv[i] (a usage error when
 * it is missing). Advances *i past the value. */
static inline long ex_long(int argc, char **argv, int *i, long min, long max,
                           const char *usage) {
  const char *opt = argv[*i];
  if (*i + 1 >= argc) ex_bad(usage, "%s needs a value", opt);
  return ex_number(opt, argv[++*i], min, max, usage);
}

/* `opt`'s value, argv[i + 1], as a string (a usage error if missing). */
static inline const char *ex_str(int argc, char **argv, int *i,
                                 const char *usage) {
  if (*i + 1 >= argc) ex_bad(usage, "%s needs a value", argv[*i]);
  return argv[++*i];
}

/* For an example whose arguments are operands only (names, URLs): handles
 * -h/--help, rejects any other argument that starts with '-' (unless it
 * follows "--"), and requires at least `min` operands. Moves the operands
 * to argv[1..] and returns their count plus one (the new argc). */
static inline int ex_operands(int argc, char **argv, int min,
                              const char *usage) {
  int n = 1;
  bool opts = true;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (opts && strcmp(a, "--") == 0) {
      opts = false;
    } else if (opts && a[0] == '-' && a[1] != '\0') {
      if (ex_is_help(a)) ex_usage(usage, 0);
      ex_bad(usage, "unknown option '%s'", a);
    } else {
      argv[n++] = argv[i];
    }
  }
  if (n - 1 < min) ex_bad(usage, "missing operand");
  argv[n] = NULL;
  return n;
}

#endif /* WEFT_EXAMPLES_ARGS_H */
