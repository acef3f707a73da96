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

/* One option of ex_parse()'s table, argparse's add_argument: `flag` (e.g.
 * "-j" or "--port") takes a value, stored into exactly one of: *num, a
 * whole decimal number in [min, max]; *real, a number greater than min and
 * less than max; *str, the string itself. The table ends with {NULL}. */
typedef struct ex_opt {
  const char *flag;
  long *num;
  long min, max;
  double *real;
  const char **str;
} ex_opt;

/* `v`, the value of option `o->flag`, stored as the table says (a usage
 * error naming the option if it does not fit). */
static inline void ex_opt_set(const ex_opt *o, const char *v,
                              const char *usage) {
  char *end;
  if (o->num != NULL) {
    *o->num = ex_number(o->flag, v, o->min, o->max, usage);
  } else if (o->real != NULL) {
    double d = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(d > o->min && d < o->max))
      ex_bad(usage, "%s %s: want a number over %ld and under %ld", o->flag, v,
             o->min, o->max);
    *o->real = d;
  } else {
    *o->str = v;
  }
}

/* argparse's parse_args: -h/--help prints the usage and exits 0; each
 * argument that is a flag of `opts` takes the next one as its value; any
 * other argument starting with '-' (unless it follows "--") is a usage
 * error; the rest are operands, of which there must be at least
 * `min_operands` and at most `max_operands` (-1: any number). Options and
 * operands may come in any order. Moves the operands to argv[1..n] (argv[n
 * + 1] is NULL) and returns n, their count. */
static inline int ex_parse(int argc, char **argv, const ex_opt *opts,
                           int min_operands, int max_operands,
                           const char *usage) {
  int n = 0;
  bool flags = true;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const ex_opt *o = opts;
    if (flags && strcmp(a, "--") == 0) {
      flags = false;
      continue;
    }
    if (!flags || a[0] != '-' || a[1] == '\0') {
      argv[++n] = argv[i];
      continue;
    }
    if (ex_is_help(a)) ex_usage(usage, 0);
    while (o->flag != NULL && strcmp(o->flag, a) != 0)
      o++;
    if (o->flag == NULL) ex_bad(usage, "unknown option '%s'", a);
    if (i + 1 >= argc) ex_bad(usage, "%s needs a value", a);
    ex_opt_set(o, argv[++i], usage);
  }
  if (n < min_operands) ex_bad(usage, "missing operand");
  if (max_operands >= 0 && n > max_operands)
    ex_bad(usage, "unexpected argument '%s'", argv[max_operands + 1]);
  argv[n + 1] = NULL;
  return n;
}

#endif /* WEFT_EXAMPLES_ARGS_H */
