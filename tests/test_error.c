/* Error codes: one table names every code, uniquely, and unknown codes get
 * a fixed fallback. */
#include "support/test.h"

#include <limits.h>
#include <string.h>

/* Scans far beyond both errno values and weft's reserved ranges. */
#define SCAN_LOW (WEFT__DNS_BASE - 200)

static const struct {
  int code;
  const char *name, *msg;
} own[] = {
#define ROW(name, value, msg) {value, #name, msg},
    WEFT_OWN_ERRORS(ROW)
#undef ROW
};
#define N_OWN (sizeof own / sizeof own[0])

Test(error, zero_is_ok, .timeout = 5) {
  cr_assert_str_eq(weft_err_name(0), "OK");
  cr_assert_str_eq(weft_strerror(0), "success");
}

Test(error, errno_values_are_named, .timeout = 5) {
  cr_assert_str_eq(weft_err_name(-EINVAL), "EINVAL");
  cr_assert_str_eq(weft_err_name(-ENOMEM), "ENOMEM");
  cr_assert_str_eq(weft_err_name(-EBUSY), "EBUSY");
  cr_assert_str_eq(weft_err_name(-EALREADY), "EALREADY");
  cr_assert_str_eq(weft_err_name(-ESHUTDOWN), "ESHUTDOWN");
  cr_assert_str_eq(weft_err_name(-ECANCELED), "ECANCELED");
  cr_assert_str_eq(weft_strerror(-EINVAL), "invalid argument");
  cr_assert_str_eq(weft_strerror(-ENOMEM), "not enough memory");
  cr_assert_str_eq(weft_strerror(-ECANCELED), "operation canceled");
  /* ENOTSUP is EOPNOTSUPP on Linux: one code, one name */
  cr_assert_str_eq(weft_err_name(-ENOTSUP), "EOPNOTSUPP");
}

Test(error, own_codes_match_the_table, .timeout = 5) {
  cr_assert_gt(N_OWN, 0);
  for (size_t i = 0; i < N_OWN; i++) {
    cr_assert_lt(own[i].code, -4000, "%s is outside the reserved range",
                 own[i].name);
    cr_assert_str_eq(weft_err_name(own[i].code), own[i].name);
    cr_assert_str_eq(weft_strerror(own[i].code), own[i].msg);
  }
  cr_assert_str_eq(weft_err_name(WEFT_EOF), "WEFT_EOF");
  cr_assert_str_eq(weft_strerror(WEFT_EOF), "end of file");
  cr_assert_str_eq(weft_err_name(WEFT_EDNS_NOTFOUND), "WEFT_EDNS_NOTFOUND");
}

Test(error, unknown_codes_fall_back, .timeout = 5) {
  const int unknown[] = {1,
                         42,
                         INT_MAX,
                         INT_MIN,
                         -3999,
                         WEFT__ERR_BASE,
                         WEFT__ERR_BASE - 99,
                         WEFT__DNS_BASE - 22,
                         -100000};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    cr_assert_str_eq(weft_err_name(unknown[i]), "UNKNOWN", "code %d",
                     unknown[i]);
    cr_assert_str_eq(weft_strerror(unknown[i]), "unknown error", "code %d",
                     unknown[i]);
  }
}

/* Every code the library knows, errno and weft's own alike, has a name and
 * a message that no other code shares. */
Test(error, every_known_code_has_unique_name_and_message, .timeout = 10) {
  static const char *names[-SCAN_LOW + 1], *msgs[-SCAN_LOW + 1];
  int n = 0;
  for (int code = 0; code >= SCAN_LOW; code--) {
    const char *name = weft_err_name(code), *msg = weft_strerror(code);
    cr_assert_not_null(name);
    cr_assert_not_null(msg);
    bool known = strcmp(name, "UNKNOWN") != 0;
    cr_assert_eq(known, strcmp(msg, "unknown error") != 0, "code %d", code);
    if (!known) continue;
    cr_assert_gt(strlen(msg), 0);
    for (int i = 0; i < n; i++) {
      cr_assert_str_neq(names[i], name, "code %d repeats a name", code);
      cr_assert_str_neq(msgs[i], msg, "code %d (%s) repeats a message", code,
                        name);
    }
    names[n] = name;
    msgs[n] = msg;
    n++;
  }
  /* OK, the errno values weft passes through, and the own table */
  cr_assert_geq((size_t)n, 1 + 60 + N_OWN);
}
