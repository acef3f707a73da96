/* kvd — the server's own commands: SELECT and FLUSHDB/FLUSHALL over kvd's
 * single database, FUNCTION FLUSH (kvd has no functions), CONFIG GET/SET
 * of the parameters kvd has, and INFO's server and keyspace sections.
 * Replies and error texts are Redis 7.0's; these are the commands Redis's
 * own test suite needs in its external-server mode (with --singledb). */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kvd.h"

_Atomic size_t kvd_max_bulk = KVD_MAX_BULK_DEFAULT;

/* SELECT: kvd has one database, 0 (CONFIG GET databases says 1). */
void kvd_cmd_select(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  long long db;
  if (!kvd_parse_ll(argv[1], &db))
    kvd_reply_error(c, "ERR value is not an integer or out of range");
  else if (db != 0)
    kvd_reply_error(c, "ERR DB index is out of range");
  else
    kvd_reply_status(c, "OK");
}

static bool sync_or_async(kvd_str a) {
  return kvd_arg_is(a, "sync") || kvd_arg_is(a, "async");
}

/* FLUSHALL and FLUSHDB [SYNC|ASYNC]: the same with one database. */
void kvd_cmd_flush(kvd_conn *c, kvd_str *argv, size_t argc) {
  if (argc > 2 || (argc == 2 && !sync_or_async(argv[1]))) {
    kvd_reply_error(c, "ERR syntax error");
    return;
  }
  kvd_store *st = kvd_conn_store(c);
  for (size_t i = 0; i < KVD_SHARDS; i++) {
    kvd_shard_lock(st, &st->shards[i]);
    kvd_shard_clear(&st->shards[i]);
    kvd_shard_unlock(st, &st->shards[i]);
  }
  kvd_reply_status(c, "OK");
}

/* FUNCTION FLUSH [SYNC|ASYNC]: there are no functions to delete. */
void kvd_cmd_function(kvd_conn *c, kvd_str *argv, size_t argc) {
  int n = (int)(argv[1].n < 128 ? argv[1].n : 128);
  if (!kvd_arg_is(argv[1], "flush"))
    kvd_reply_error(c, "ERR unknown subcommand '%.*s'. Try FUNCTION HELP.", n,
                    argv[1].p);
  else if (argc > 3)
    kvd_reply_error(c,
                    "ERR unknown subcommand or wrong number of arguments for "
                    "'%.*s'. Try FUNCTION HELP.",
                    n, argv[1].p);
  else if (argc == 3 && !sync_or_async(argv[2]))
    kvd_reply_error(c, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
  else
    kvd_reply_status(c, "OK");
}

/* ---- CONFIG ------------------------------------------------------------- */

typedef struct param {
  const char *name;
  bool mutable;
} param;

static const param params[] = {{"databases", false},
                               {"proto-max-bulk-len", true}};
#define NPARAMS (sizeof params / sizeof params[0])

static int param_find(kvd_str name) {
  for (size_t i = 0; i < NPARAMS; i++)
    if (kvd_arg_is(name, params[i].name)) return (int)i;
  return -1;
}

static int param_value(size_t i, char *buf, size_t size) {
  if (i == 0) return snprintf(buf, size, "1");
  return snprintf(buf, size, "%zu", (size_t)KVD_MAX_BULK);
}

/* Whether the lowercased CONFIG GET pattern matches a parameter's name:
 * Redis matches names without regard to case. */
static bool param_glob(kvd_str pat, const char *name) {
  char small[256], *lower = pat.n <= sizeof small ? small : malloc(pat.n);
  if (!lower) return false;
  for (size_t i = 0; i < pat.n; i++)
    lower[i] = (char)tolower((unsigned char)pat.p[i]);
  bool hit = kvd_glob(lower, pat.n, name, strlen(name));
  if (lower != small) free(lower);
  return hit;
}

/* CONFIG GET pattern...: name/value pairs, each parameter once. A pattern
 * without glob characters is a name, echoed as it was written. */
static void config_get(kvd_conn *c, kvd_str *pats, size_t n) {
  const char *shown[NPARAMS] = {0};
  size_t shown_n[NPARAMS] = {0}, count = 0;
  for (size_t j = 0; j < n; j++) {
    bool glob = memchr(pats[j].p, '*', pats[j].n) ||
                memchr(pats[j].p, '?', pats[j].n) ||
                memchr(pats[j].p, '[', pats[j].n);
    for (size_t i = 0; i < NPARAMS; i++) {
      if (shown[i]) continue;
      if (glob ? param_glob(pats[j], params[i].name)
               : kvd_arg_is(pats[j], params[i].name)) {
        shown[i] = glob ? params[i].name : pats[j].p;
        shown_n[i] = glob ? strlen(params[i].name) : pats[j].n;
        count++;
      }
    }
  }
  kvd_reply_array(c, 2 * count);
  for (size_t i = 0; i < NPARAMS; i++) {
    if (!shown[i]) continue;
    char v[32];
    int len = param_value(i, v, sizeof v);
    kvd_reply_bulk(c, shown[i], shown_n[i]);
    kvd_reply_bulk(c, v, (size_t)len);
  }
}

/* Redis's memtoull(): digits, then an optional unit b, k, kb, m, mb, g or
 * gb in any case (k = 1000, kb = 1024, and so on). A number too large for
 * 64 bits gives ULLONG_MAX, which is out of range, as in Redis. */
static bool parse_memory(kvd_str s, unsigned long long *out) {
  static const struct {
    const char *unit;
    unsigned long long mul;
  } units[] = {{"", 1},
               {"b", 1},
               {"k", 1000},
               {"kb", 1024},
               {"m", 1000 * 1000},
               {"mb", 1024 * 1024},
               {"g", 1000ull * 1000 * 1000},
               {"gb", 1024ull * 1024 * 1024}};
  size_t d = 0;
  while (d < s.n && s.p[d] >= '0' && s.p[d] <= '9')
    d++;
  if (d == 0) return false;
  unsigned long long v = 0;
  for (size_t i = 0; i < d; i++) {
    unsigned dig = (unsigned)(s.p[i] - '0');
    v = v > (ULLONG_MAX - dig) / 10 ? ULLONG_MAX : v * 10 + dig;
  }
  kvd_str unit = {s.p + d, s.n - d};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (!kvd_arg_is(unit, units[i].unit)) continue;
    *out = v > ULLONG_MAX / units[i].mul ? ULLONG_MAX : v * units[i].mul;
    return true;
  }
  return false;
}

#define SET_FAILED                                                             \
  "ERR CONFIG SET failed (possibly related to argument '%.*s') - "

/* CONFIG SET name value [name value...]: all or nothing, checking the
 * names first (unknown, immutable, repeated), then the values. */
static void config_set(kvd_conn *c, kvd_str *kv, size_t n) {
  bool seen[NPARAMS] = {false};
  for (size_t j = 0; j < n; j += 2) {
    int i = param_find(kv[j]), w = (int)(kv[j].n < 128 ? kv[j].n : 128);
    const char *why = i < 0                ? NULL
                      : !params[i].mutable ? "can't set immutable config"
                      : seen[i]            ? "duplicate parameter"
                                           : "";
    if (!why) {
      kvd_reply_error(
          c,
          "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
          w, kv[j].p);
      return;
    }
    if (*why) {
      kvd_reply_error(c, SET_FAILED "%s", w, kv[j].p, why);
      return;
    }
    seen[i] = true;
  }
  /* Only proto-max-bulk-len is mutable, so at most one value to check. */
  unsigned long long v = 0;
  for (size_t j = 0; j < n; j += 2) {
    int w = (int)(kv[j].n < 128 ? kv[j].n : 128);
    if (!parse_memory(kv[j + 1], &v)) {
      kvd_reply_error(c, SET_FAILED "argument must be a memory value", w,
                      kv[j].p);
      return;
    }
    if (v < KVD_MAX_BULK_MIN || v > LLONG_MAX) {
      kvd_reply_error(c,
                      SET_FAILED "argument must be between %llu and %lld "
                                 "inclusive",
                      w, kv[j].p, KVD_MAX_BULK_MIN, LLONG_MAX);
      return;
    }
  }
  if (n) atomic_store_explicit(&kvd_max_bulk, (size_t)v, memory_order_relaxed);
  kvd_reply_status(c, "OK");
}

void kvd_cmd_config(kvd_conn *c, kvd_str *argv, size_t argc) {
  kvd_str sub = argv[1];
  if (kvd_arg_is(sub, "get") && argc >= 3) {
    config_get(c, argv + 2, argc - 2);
  } else if (kvd_arg_is(sub, "set") && argc >= 4 && argc % 2 == 0) {
    config_set(c, argv + 2, argc - 2);
  } else if (kvd_arg_is(sub, "resetstat") && argc == 2) {
    kvd_reply_status(c, "OK"); /* kvd keeps no statistics */
  } else if (kvd_arg_is(sub, "help") && argc == 2) {
    static const char *const help[] = {
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        ("    Return parameters matching the glob-like <pattern> and their "
         "values."),
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "HELP",
        "    Prints this help."}; /* Redis's text, REWRITE left out */
    kvd_reply_array(c, sizeof help / sizeof help[0]);
    for (size_t i = 0; i < sizeof help / sizeof help[0]; i++)
      kvd_reply_status(c, help[i]);
  } else if (kvd_arg_is(sub, "get") || kvd_arg_is(sub, "set") ||
             kvd_arg_is(sub, "resetstat") || kvd_arg_is(sub, "help")) {
    char name[16];
    for (size_t i = 0; i <= sub.n; i++)
      name[i] = i < sub.n ? (char)tolower((unsigned char)sub.p[i]) : '\0';
    kvd_reply_error(c, "ERR wrong number of arguments for 'config|%s' command",
                    name);
  } else {
    kvd_reply_error(c, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
                    (int)(sub.n < 128 ? sub.n : 128), sub.p);
  }
}

/* ---- INFO --------------------------------------------------------------- */

/* Appends to buf (of `size`); the sections are small and bounded. */
static size_t add(char *buf, size_t size, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t add(char *buf, size_t size, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = len < size ? vsnprintf(buf + len, size - len, fmt, ap) : 0;
  va_end(ap);
  return len + (n > 0 ? (size_t)n : 0);
}

static bool want(kvd_str *argv, size_t argc, const char *section) {
  if (argc == 1) return true;
  for (size_t i = 1; i < argc; i++)
    if (kvd_arg_is(argv[i], section) || kvd_arg_is(argv[i], "default") ||
        kvd_arg_is(argv[i], "all") || kvd_arg_is(argv[i], "everything"))
      return true;
  return false;
}

/* INFO [section...]: "server" and "keyspace"; other sections are empty,
 * as unknown ones are in Redis. */
void kvd_cmd_info(kvd_conn *c, kvd_str *argv, size_t argc) {
  char buf[512];
  size_t len = 0;
  if (want(argv, argc, "server"))
    len = add(buf, sizeof buf, len,
              "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
              "kvd:1\r\nprocess_id:%ld\r\n",
              (long)getpid());
  if (want(argv, argc, "keyspace")) {
    kvd_store *st = kvd_conn_store(c);
    size_t keys = 0, expires = 0;
    for (size_t i = 0; i < KVD_SHARDS; i++) {
      kvd_shard_lock(st, &st->shards[i]);
      keys += st->shards[i].count;
      expires += st->shards[i].heap_len; /* the keys with a TTL */
      kvd_shard_unlock(st, &st->shards[i]);
    }
    len = add(buf, sizeof buf, len, "%s# Keyspace\r\n", len ? "\r\n" : "");
    if (keys)
      len = add(buf, sizeof buf, len, "db0:keys=%zu,expires=%zu,avg_ttl=0\r\n",
                keys, expires);
  }
  kvd_reply_bulk(c, buf, len < sizeof buf ? len : sizeof buf - 1);
}
