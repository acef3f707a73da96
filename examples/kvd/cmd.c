/* kvd — the commands. Each checks its arguments the way Redis 7 does and
 * replies with Redis's own texts, so clients cannot tell the difference. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kvd.h"

#define WRONGTYPE                                                              \
  "WRONGTYPE Operation against a key holding the wrong kind of value"
#define NOT_INT "value is not an integer or out of range"

typedef void (*cmd_fn)(kvd_conn *c, kvd_str *argv, size_t argc);

typedef struct cmd {
  const char *name;
  int arity; /* > 0 exactly, < 0 at least -arity arguments (name included) */
  cmd_fn fn;
  int first, last, step; /* key positions, for COMMAND */
} cmd;

bool kvd_arg_is(kvd_str a, const char *word) {
  return a.n == strlen(word) && strncasecmp(a.p, word, a.n) == 0;
}

/* Redis's string2ll: strict decimal, no spaces, no '+', no leading zeros. */
bool kvd_parse_ll(kvd_str s, long long *out) {
  const char *p = s.p;
  size_t n = s.n;
  if (n == 0 || n > 20) return false;
  if (n == 1 && p[0] == '0') {
    *out = 0;
    return true;
  }
  bool neg = p[0] == '-';
  size_t i = neg;
  if (i >= n || p[i] < '1' || p[i] > '9') return false;
  unsigned long long v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return false;
    if (v > (ULLONG_MAX - (unsigned)(p[i] - '0')) / 10) return false;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  if (neg ? v > (unsigned long long)LLONG_MAX + 1
          : v > (unsigned long long)LLONG_MAX)
    return false;
  *out = neg ? (long long)(0 - v) : (long long)v;
  return true;
}

static bool arg_ll(kvd_conn *c, kvd_str s, long long *out) {
  if (kvd_parse_ll(s, out)) return true;
  kvd_reply_error(c, "ERR " NOT_INT);
  return false;
}

/* A locked view of one key's shard. */
typedef struct slot {
  kvd_store *st;
  kvd_shard *sh;
  uint64_t h;
  kvd_str key;
  int64_t now;
} slot;

static kvd_entry *slot_open(kvd_conn *c, slot *s, kvd_str key) {
  s->st = kvd_conn_store(c);
  s->h = kvd_hash(key.p, key.n);
  s->sh = kvd_shard_of(s->st, s->h);
  s->key = key;
  s->now = 0;
  kvd_shard_lock(s->st, s->sh);
  return kvd_find(s->sh, s->h, key, &s->now);
}

static void slot_close(slot *s) { kvd_shard_unlock(s->st, s->sh); }

/* Sets an expiry under the lock; the owner of active expiry is told after. */
static int slot_expire(slot *s, kvd_entry *e, int64_t at, int64_t *moved) {
  if (at && kvd_reserve_heap(s->sh) < 0) return -ENOMEM;
  if (kvd_set_expire(s->sh, e, at)) *moved = at;
  return 0;
}

static void slot_close_moved(slot *s, int64_t moved) {
  slot_close(s);
  if (moved) kvd_expiry_moved(s->st, s->sh, moved);
}

static void reply_oom(kvd_conn *c) { kvd_reply_error(c, "ERR out of memory"); }

/* Unix time in ms, which EXAT, PXAT, EXPIREAT and PEXPIREAT count in. */
static long long unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a relative expiry of `ms` overflows where Redis's does: Redis
 * adds it to the Unix time in ms, so the same limit is checked here even
 * though deadlines are kept on the monotonic clock. */
static bool expire_overflows(long long ms) {
  long long wall = unix_ms();
  int64_t mono = kvd_clock_ms();
  long long base = wall > mono ? wall : mono;
  return ms > 0 && ms > LLONG_MAX - base;
}

/* ---- connection and server ---------------------------------------------- */

static void cmd_ping(kvd_conn *c, kvd_str *argv, size_t argc) {
  if (argc > 2) {
    kvd_reply_error(c, "ERR wrong number of arguments for 'ping' command");
  } else if (argc == 2) {
    kvd_reply_bulk(c, argv[1].p, argv[1].n);
  } else {
    kvd_reply_status(c, "PONG");
  }
}

static void cmd_echo(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  kvd_reply_bulk(c, argv[1].p, argv[1].n);
}

static void cmd_quit(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argv, (void)argc;
  kvd_reply_status(c, "OK");
  kvd_conn_close_after_reply(c);
}

/* ---- strings ------------------------------------------------------------ */

static void cmd_get(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  if (!e) {
    kvd_reply_nil(c);
  } else if (e->type != KVD_STRING) {
    kvd_reply_error(c, WRONGTYPE);
  } else {
    kvd_reply_bulk(c, e->val, e->vlen);
  }
  slot_close(&s);
}

enum {
  SET_NX = 1,
  SET_XX = 2,
  SET_EX = 4,
  SET_PX = 8,
  SET_KEEPTTL = 16,
  SET_GET = 32,
  SET_EXAT = 64,
  SET_PXAT = 128
};
#define SET_TTL (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

static unsigned set_ttl_option(kvd_str a) {
  return kvd_arg_is(a, "ex")     ? SET_EX
         : kvd_arg_is(a, "px")   ? SET_PX
         : kvd_arg_is(a, "exat") ? SET_EXAT
         : kvd_arg_is(a, "pxat") ? SET_PXAT
                                 : 0;
}

/* A deadline on kvd_clock_ms() for the Unix time `ms`; one already past
 * gives 1, which is due at once (0 would mean no expiry). */
static int64_t deadline_of_unix(long long ms, int64_t now) {
  long long wall = unix_ms();
  if (ms <= wall) return 1; /* (ms - wall could overflow for ms < 0) */
  long long d = ms - wall;
  return d > INT64_MAX - now ? INT64_MAX : now + d;
}

/* Parses SET's options as Redis 7 does: an expiry option may repeat (the
 * last one wins) but not mix with another kind, and its value is checked
 * only once every option is read. Sets *ttl to the expiry's argument (NULL:
 * none) and returns false after replying an error. */
static bool set_options(kvd_conn *c, kvd_str *argv, size_t argc, unsigned *fl,
                        kvd_str **ttl) {
  for (size_t j = 3; j < argc; j++) {
    kvd_str a = argv[j];
    unsigned t = set_ttl_option(a);
    if (kvd_arg_is(a, "nx") && !(*fl & SET_XX)) {
      *fl |= SET_NX;
    } else if (kvd_arg_is(a, "xx") && !(*fl & SET_NX)) {
      *fl |= SET_XX;
    } else if (kvd_arg_is(a, "get")) {
      *fl |= SET_GET;
    } else if (kvd_arg_is(a, "keepttl") && !(*fl & SET_TTL)) {
      *fl |= SET_KEEPTTL;
    } else if (t && j + 1 < argc && !(*fl & (SET_KEEPTTL | (SET_TTL & ~t)))) {
      *fl |= t;
      *ttl = &argv[++j];
    } else {
      kvd_reply_error(c, "ERR syntax error");
      return false;
    }
  }
  return true;
}

/* SET's expiry as a deadline on kvd_clock_ms(), 0 for none; false after
 * replying Redis's error for a bad value. */
static bool set_deadline(kvd_conn *c, const kvd_str *ttl, unsigned fl,
                         int64_t now, int64_t *at) {
  long long v;
  bool secs = fl & (SET_EX | SET_EXAT), rel = fl & (SET_EX | SET_PX);
  *at = 0;
  if (!ttl) return true;
  if (!arg_ll(c, *ttl, &v)) return false;
  if (v <= 0 || (secs && v > LLONG_MAX / 1000) ||
      (rel && expire_overflows(secs ? v * 1000 : v))) {
    kvd_reply_error(c, "ERR invalid expire time in 'set' command");
    return false;
  }
  long long ms = secs ? v * 1000 : v;
  *at = rel ? now + ms : deadline_of_unix(ms, now);
  return true;
}

static void set_reply(kvd_conn *c, unsigned fl, bool done, const char *old,
                      size_t oldn, bool had_old) {
  if (fl & SET_GET) {
    if (had_old)
      kvd_reply_bulk(c, old, oldn);
    else
      kvd_reply_nil(c);
  } else if (done) {
    kvd_reply_status(c, "OK");
  } else {
    kvd_reply_nil(c);
  }
}

/* Makes `e` (NULL: a new entry) a string holding `v`; NULL on -ENOMEM. */
static kvd_entry *store_string(slot *s, kvd_entry *e, kvd_str v) {
  if (e && e->type != KVD_STRING) {
    kvd_delete(s->sh, e);
    e = NULL;
  }
  bool fresh = !e;
  if (fresh && !(e = kvd_insert(s->sh, s->h, s->key, KVD_STRING))) return NULL;
  if (kvd_set_value(e, v.p, v.n) < 0) {
    if (fresh) kvd_delete(s->sh, e);
    return NULL;
  }
  return e;
}

static void cmd_set(kvd_conn *c, kvd_str *argv, size_t argc) {
  unsigned fl = 0;
  int64_t at, moved = 0;
  kvd_str *ttl = NULL;
  if (!set_options(c, argv, argc, &fl, &ttl) ||
      !set_deadline(c, ttl, fl, kvd_clock_ms(), &at))
    return;
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  if ((fl & SET_GET) && e && e->type != KVD_STRING) {
    slot_close(&s);
    kvd_reply_error(c, WRONGTYPE);
    return;
  }
  bool had_old = e != NULL,
       go = !((fl & SET_NX) && e) && !((fl & SET_XX) && !e);
  char *old = NULL;
  size_t oldn = 0;
  bool oom = ((fl & SET_GET) && e && !(old = malloc(e->vlen + 1))) ||
             (go && at && kvd_reserve_heap(s.sh) < 0);
  if (old) memcpy(old, e->val, oldn = e->vlen);
  kvd_entry *n = go && !oom ? store_string(&s, e, argv[2]) : NULL;
  if (n && !(fl & SET_KEEPTTL)) slot_expire(&s, n, at, &moved);
  slot_close_moved(&s, moved);
  if (oom || (go && !n))
    reply_oom(c);
  else
    set_reply(c, fl, go, old, oldn, had_old);
  free(old);
}

static void incr_by(kvd_conn *c, kvd_str key, long long by) {
  slot s;
  kvd_entry *e = slot_open(c, &s, key);
  long long v = 0;
  char buf[32];
  if (e && e->type != KVD_STRING) {
    kvd_reply_error(c, WRONGTYPE);
  } else if (e && !kvd_parse_ll((kvd_str){e->val, e->vlen}, &v)) {
    kvd_reply_error(c, "ERR " NOT_INT);
  } else if ((by < 0 && v < 0 && by < LLONG_MIN - v) ||
             (by > 0 && v > 0 && by > LLONG_MAX - v)) {
    kvd_reply_error(c, "ERR increment or decrement would overflow");
  } else {
    v += by;
    int n = snprintf(buf, sizeof buf, "%lld", v);
    if (store_string(&s, e, (kvd_str){buf, (size_t)n})) /* keeps the TTL */
      kvd_reply_int(c, v);
    else
      reply_oom(c);
  }
  slot_close(&s);
}

static void cmd_incr(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  incr_by(c, argv[1], 1);
}

static void cmd_decr(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  incr_by(c, argv[1], -1);
}

static void cmd_incrby(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  long long by;
  if (arg_ll(c, argv[2], &by)) incr_by(c, argv[1], by);
}

static void cmd_decrby(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  long long by;
  if (!arg_ll(c, argv[2], &by)) return;
  if (by == LLONG_MIN)
    kvd_reply_error(c, "ERR decrement would overflow");
  else
    incr_by(c, argv[1], -by);
}

static void cmd_mget(kvd_conn *c, kvd_str *argv, size_t argc) {
  kvd_reply_array(c, argc - 1);
  for (size_t i = 1; i < argc; i++) {
    slot s;
    kvd_entry *e = slot_open(c, &s, argv[i]);
    if (e && e->type == KVD_STRING)
      kvd_reply_bulk(c, e->val, e->vlen);
    else
      kvd_reply_nil(c);
    slot_close(&s);
  }
}

static void cmd_mset(kvd_conn *c, kvd_str *argv, size_t argc) {
  if (argc % 2 == 0) {
    kvd_reply_error(c, "ERR wrong number of arguments for 'mset' command");
    return;
  }
  bool ok = true;
  for (size_t i = 1; i < argc; i += 2) {
    slot s;
    kvd_entry *e = slot_open(c, &s, argv[i]);
    kvd_entry *n = store_string(&s, e, argv[i + 1]);
    if (n) kvd_set_expire(s.sh, n, 0); /* MSET drops any TTL, like SET */
    ok &= n != NULL;
    slot_close(&s);
  }
  if (ok)
    kvd_reply_status(c, "OK");
  else
    reply_oom(c);
}

/* ---- keys --------------------------------------------------------------- */

static void cmd_del(kvd_conn *c, kvd_str *argv, size_t argc) {
  long long n = 0;
  for (size_t i = 1; i < argc; i++) {
    slot s;
    kvd_entry *e = slot_open(c, &s, argv[i]);
    if (e) {
      kvd_delete(s.sh, e);
      n++;
    }
    slot_close(&s);
  }
  kvd_reply_int(c, n);
}

static void cmd_exists(kvd_conn *c, kvd_str *argv, size_t argc) {
  long long n = 0;
  for (size_t i = 1; i < argc; i++) {
    slot s;
    n += slot_open(c, &s, argv[i]) != NULL;
    slot_close(&s);
  }
  kvd_reply_int(c, n);
}

static void cmd_type(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  kvd_reply_status(c, !e ? "none" : e->type == KVD_STRING ? "string" : "list");
  slot_close(&s);
}

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static bool expire_flags(kvd_conn *c, kvd_str *argv, size_t argc,
                         unsigned *fl) {
  for (size_t j = 3; j < argc; j++) {
    if (kvd_arg_is(argv[j], "nx"))
      *fl |= EXP_NX;
    else if (kvd_arg_is(argv[j], "xx"))
      *fl |= EXP_XX;
    else if (kvd_arg_is(argv[j], "gt"))
      *fl |= EXP_GT;
    else if (kvd_arg_is(argv[j], "lt"))
      *fl |= EXP_LT;
    else {
      kvd_reply_error(c, "ERR Unsupported option %.*s", (int)argv[j].n,
                      argv[j].p);
      return false;
    }
  }
  if ((*fl & EXP_NX) && (*fl & (EXP_XX | EXP_GT | EXP_LT))) {
    kvd_reply_error(
        c,
        "ERR NX and XX, GT or LT options at the same time are not compatible");
    return false;
  }
  if ((*fl & EXP_GT) && (*fl & EXP_LT)) {
    kvd_reply_error(
        c, "ERR GT and LT options at the same time are not compatible");
    return false;
  }
  return true;
}

/* Whether NX/XX/GT/LT let the new expiry `at` replace the entry's. */
static bool expire_allowed(const kvd_entry *e, unsigned fl, int64_t at) {
  if ((fl & EXP_NX) && e->expire_at) return false;
  if ((fl & EXP_XX) && !e->expire_at) return false;
  if ((fl & EXP_GT) && (!e->expire_at || at <= e->expire_at)) return false;
  if ((fl & EXP_LT) && e->expire_at && at >= e->expire_at) return false;
  return true;
}

/* EXPIRE and co., checking as Redis 7 does: the options first, then the
 * number, then its range. `absolute`: the number is a Unix time (EXPIREAT). */
static void expire_generic(kvd_conn *c, kvd_str *argv, size_t argc,
                           long long unit, bool absolute, const char *name) {
  long long v;
  unsigned fl = 0;
  if (!expire_flags(c, argv, argc, &fl) || !arg_ll(c, argv[2], &v)) return;
  int64_t now = kvd_clock_ms(), moved = 0;
  if (v > LLONG_MAX / unit || v < LLONG_MIN / unit ||
      (!absolute && expire_overflows(v * unit))) {
    kvd_reply_error(c, "ERR invalid expire time in '%s' command", name);
    return;
  }
  int64_t at = absolute ? deadline_of_unix(v * unit, now) : now + v * unit;
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  int r = 0;
  if (e && expire_allowed(e, fl, at)) {
    r = 1;
    if (at <= now)
      kvd_delete(s.sh, e); /* already expired: Redis deletes the key */
    else if (slot_expire(&s, e, at, &moved) < 0)
      r = -1;
  }
  slot_close_moved(&s, moved);
  if (r < 0)
    reply_oom(c);
  else
    kvd_reply_int(c, r);
}

static void cmd_expire(kvd_conn *c, kvd_str *argv, size_t argc) {
  expire_generic(c, argv, argc, 1000, false, "expire");
}

static void cmd_pexpire(kvd_conn *c, kvd_str *argv, size_t argc) {
  expire_generic(c, argv, argc, 1, false, "pexpire");
}

static void cmd_expireat(kvd_conn *c, kvd_str *argv, size_t argc) {
  expire_generic(c, argv, argc, 1000, true, "expireat");
}

static void cmd_pexpireat(kvd_conn *c, kvd_str *argv, size_t argc) {
  expire_generic(c, argv, argc, 1, true, "pexpireat");
}

static void ttl_generic(kvd_conn *c, kvd_str key, bool ms) {
  slot s;
  kvd_entry *e = slot_open(c, &s, key);
  long long r = -2;
  if (e && !e->expire_at) {
    r = -1;
  } else if (e) {
    r = e->expire_at - (s.now ? s.now : kvd_clock_ms());
    if (r < 0) r = 0;
    if (!ms) r = (r + 500) / 1000;
  }
  slot_close(&s);
  kvd_reply_int(c, r);
}

static void cmd_ttl(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  ttl_generic(c, argv[1], false);
}

static void cmd_pttl(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  ttl_generic(c, argv[1], true);
}

static void cmd_persist(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  int r = e && e->expire_at;
  if (r) kvd_set_expire(s.sh, e, 0);
  slot_close(&s);
  kvd_reply_int(c, r);
}

/* Copies the matching keys of one shard into `buf` as (size_t len, bytes)
 * records; false on -ENOMEM. Lock held. */
static bool keys_collect(kvd_shard *sh, kvd_str pat, char **buf, size_t *len,
                         size_t *cap, size_t *count) {
  bool all = pat.n == 1 && pat.p[0] == '*'; /* Redis: lists "" too */
  for (size_t b = 0; b < sh->nbuckets; b++) {
    for (kvd_entry *e = sh->buckets[b]; e; e = e->next) {
      if (!all && !kvd_glob(pat.p, pat.n, e->key, e->klen)) continue;
      size_t need = *len + sizeof(size_t) + e->klen;
      if (need > *cap) {
        size_t ncap = need * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb) return false;
        *buf = nb;
        *cap = ncap;
      }
      memcpy(*buf + *len, &e->klen, sizeof(size_t));
      memcpy(*buf + *len + sizeof(size_t), e->key, e->klen);
      *len = need;
      (*count)++;
    }
  }
  return true;
}

/* KEYS: collects shard by shard under each shard's lock, then replies, so
 * the array header is exact even while other loops write. */
static void cmd_keys(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  kvd_store *st = kvd_conn_store(c);
  int64_t now = kvd_clock_ms();
  char *buf = NULL;
  size_t len = 0, cap = 0, count = 0;
  bool ok = true;
  for (size_t i = 0; i < KVD_SHARDS && ok; i++) {
    kvd_shard *sh = &st->shards[i];
    kvd_shard_lock(st, sh);
    kvd_expire_due(sh, now, SIZE_MAX); /* KEYS never lists expired keys */
    ok = keys_collect(sh, argv[1], &buf, &len, &cap, &count);
    kvd_shard_unlock(st, sh);
  }
  if (!ok) {
    reply_oom(c);
  } else {
    kvd_reply_array(c, count);
    for (size_t off = 0; off < len;) {
      size_t n;
      memcpy(&n, buf + off, sizeof n);
      kvd_reply_bulk(c, buf + off + sizeof n, n);
      off += sizeof n + n;
    }
  }
  free(buf);
}

static void cmd_dbsize(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argv, (void)argc;
  kvd_store *st = kvd_conn_store(c);
  size_t n = 0;
  for (size_t i = 0; i < KVD_SHARDS; i++) {
    kvd_shard_lock(st, &st->shards[i]);
    n += st->shards[i].count;
    kvd_shard_unlock(st, &st->shards[i]);
  }
  kvd_reply_int(c, (long long)n);
}

/* ---- lists (enough to own a second type: WRONGTYPE is reachable) -------- */

/* Makes room for n more items at the head or the tail of e's list. */
static bool list_reserve(kvd_entry *e, size_t n, bool head) {
  if (head ? e->first >= n : e->first + e->nitems + n <= e->cap_items)
    return true;
  size_t cap = 2 * (e->nitems + n) + 8, first = (cap - e->nitems) / 2;
  kvd_str *items = malloc(cap * sizeof *items);
  if (!items) return false;
  if (e->nitems)
    memcpy(items + first, e->items + e->first, e->nitems * sizeof *items);
  free(e->items);
  e->items = items;
  e->cap_items = cap;
  e->first = first;
  return true;
}

/* Pushes vals[0..n) one by one (LPUSH a b: b ends first); all or none. */
static bool list_push(kvd_entry *e, const kvd_str *vals, size_t n, bool head) {
  if (!list_reserve(e, n, head)) return false;
  for (size_t i = 0; i < n; i++) {
    char *p = malloc(vals[i].n ? vals[i].n : 1);
    if (!p) { /* undo the pushes of this command */
      for (size_t k = 0; k < i; k++) {
        size_t at = head ? e->first++ : e->first + --e->nitems;
        if (head) e->nitems--;
        free((void *)e->items[at].p);
      }
      return false;
    }
    memcpy(p, vals[i].p, vals[i].n);
    size_t at = head ? --e->first : e->first + e->nitems;
    e->items[at] = (kvd_str){p, vals[i].n};
    e->nitems++;
  }
  return true;
}

static void push_generic(kvd_conn *c, kvd_str *argv, size_t argc, bool head) {
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  bool ok = true;
  if (e && e->type != KVD_LIST) {
    slot_close(&s);
    kvd_reply_error(c, WRONGTYPE);
    return;
  }
  if (!e) e = kvd_insert(s.sh, s.h, argv[1], KVD_LIST);
  if (e) ok = list_push(e, argv + 2, argc - 2, head);
  if (e && e->nitems == 0) kvd_delete(s.sh, e); /* never leave an empty list */
  long long n = e && ok ? (long long)e->nitems : -1;
  slot_close(&s);
  if (n < 0)
    reply_oom(c);
  else
    kvd_reply_int(c, n);
}

static void cmd_lpush(kvd_conn *c, kvd_str *argv, size_t argc) {
  push_generic(c, argv, argc, true);
}

static void cmd_rpush(kvd_conn *c, kvd_str *argv, size_t argc) {
  push_generic(c, argv, argc, false);
}

static void cmd_llen(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  if (e && e->type != KVD_LIST)
    kvd_reply_error(c, WRONGTYPE);
  else
    kvd_reply_int(c, e ? (long long)e->nitems : 0);
  slot_close(&s);
}

static void cmd_lrange(kvd_conn *c, kvd_str *argv, size_t argc) {
  (void)argc;
  long long a, b;
  if (!arg_ll(c, argv[2], &a) || !arg_ll(c, argv[3], &b)) return;
  slot s;
  kvd_entry *e = slot_open(c, &s, argv[1]);
  if (e && e->type != KVD_LIST) {
    kvd_reply_error(c, WRONGTYPE);
  } else {
    long long n = e ? (long long)e->nitems : 0;
    if (a < 0) a = n + a < 0 ? 0 : n + a;
    if (b < 0) b = n + b;
    if (b >= n) b = n - 1;
    long long cnt = a > b || a >= n ? 0 : b - a + 1;
    kvd_reply_array(c, (size_t)cnt);
    for (long long i = 0; i < cnt; i++)
      kvd_reply_bulk(c, e->items[e->first + a + i].p,
                     e->items[e->first + a + i].n);
  }
  slot_close(&s);
}

/* ---- the table and COMMAND ---------------------------------------------- */

static void cmd_command(kvd_conn *c, kvd_str *argv, size_t argc);

static const cmd commands[] = {
    {"get", 2, cmd_get, 1, 1, 1},
    {"set", -3, cmd_set, 1, 1, 1},
    {"ping", -1, cmd_ping, 0, 0, 0},
    {"echo", 2, cmd_echo, 0, 0, 0},
    {"del", -2, cmd_del, 1, -1, 1},
    {"exists", -2, cmd_exists, 1, -1, 1},
    {"incr", 2, cmd_incr, 1, 1, 1},
    {"decr", 2, cmd_decr, 1, 1, 1},
    {"incrby", 3, cmd_incrby, 1, 1, 1},
    {"decrby", 3, cmd_decrby, 1, 1, 1},
    {"mget", -2, cmd_mget, 1, -1, 1},
    {"mset", -3, cmd_mset, 1, -1, 2},
    {"expire", -3, cmd_expire, 1, 1, 1},
    {"pexpire", -3, cmd_pexpire, 1, 1, 1},
    {"ttl", 2, cmd_ttl, 1, 1, 1},
    {"pttl", 2, cmd_pttl, 1, 1, 1},
    {"persist", 2, cmd_persist, 1, 1, 1},
    {"keys", 2, cmd_keys, 0, 0, 0},
    {"dbsize", 1, cmd_dbsize, 0, 0, 0},
    {"flushall", -1, kvd_cmd_flush, 0, 0, 0},
    {"flushdb", -1, kvd_cmd_flush, 0, 0, 0},
    {"select", 2, kvd_cmd_select, 0, 0, 0},
    {"function", -2, kvd_cmd_function, 0, 0, 0},
    {"config", -2, kvd_cmd_config, 0, 0, 0},
    {"info", -1, kvd_cmd_info, 0, 0, 0},
    {"expireat", -3, cmd_expireat, 1, 1, 1},
    {"pexpireat", -3, cmd_pexpireat, 1, 1, 1},
    {"quit", -1, cmd_quit, 0, 0, 0},
    {"command", -1, cmd_command, 0, 0, 0},
    {"type", 2, cmd_type, 1, 1, 1},
    {"lpush", -3, cmd_lpush, 1, 1, 1},
    {"rpush", -3, cmd_rpush, 1, 1, 1},
    {"llen", 2, cmd_llen, 1, 1, 1},
    {"lrange", 4, cmd_lrange, 1, 1, 1},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const cmd *lookup(kvd_str name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (kvd_arg_is(name, commands[i].name)) return &commands[i];
  return NULL;
}

/* One entry in Redis 2.8's 6-field form: name, arity, flags, keys. */
static void command_info(kvd_conn *c, const cmd *k) {
  kvd_reply_array(c, 6);
  kvd_reply_bulk(c, k->name, strlen(k->name));
  kvd_reply_int(c, k->arity);
  kvd_reply_array(c, 0);
  kvd_reply_int(c, k->first);
  kvd_reply_int(c, k->last);
  kvd_reply_int(c, k->step);
}

static void cmd_command(kvd_conn *c, kvd_str *argv, size_t argc) {
  if (argc == 1) {
    kvd_reply_array(c, NCOMMANDS);
    for (size_t i = 0; i < NCOMMANDS; i++)
      command_info(c, &commands[i]);
  } else if (kvd_arg_is(argv[1], "count") && argc == 2) {
    kvd_reply_int(c, (long long)NCOMMANDS);
  } else if (kvd_arg_is(argv[1], "help") && argc == 2) {
    static const char *const help[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all commands.",
        "COUNT",
        "    Return the total number of commands.",
        "INFO [<command-name> ...]",
        "    Return details about the named commands.",
        "DOCS [<command-name> ...]",
        "    An empty reply: kvd keeps no documentation.",
        "HELP",
        "    Print this help."};
    kvd_reply_array(c, sizeof help / sizeof help[0]);
    for (size_t i = 0; i < sizeof help / sizeof help[0]; i++)
      kvd_reply_status(c, help[i]);
  } else if (kvd_arg_is(argv[1], "docs")) {
    kvd_reply_array(c, 0); /* no documentation: clients fall back to none */
  } else if (kvd_arg_is(argv[1], "count") || kvd_arg_is(argv[1], "help")) {
    kvd_reply_error(c, "ERR wrong number of arguments for 'command|%s' command",
                    kvd_arg_is(argv[1], "count") ? "count" : "help");
  } else if (kvd_arg_is(argv[1], "info") && argc == 2) {
    cmd_command(c, argv, 1); /* no names: every command, as Redis 7 does */
  } else if (kvd_arg_is(argv[1], "info")) {
    kvd_reply_array(c, argc - 2);
    for (size_t i = 2; i < argc; i++) {
      const cmd *k = lookup(argv[i]);
      if (k)
        command_info(c, k);
      else
        kvd_reply_nil(c);
    }
  } else {
    kvd_reply_error(c, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
                    (int)(argv[1].n < 128 ? argv[1].n : 128), argv[1].p);
  }
}

/* Redis's text: the name, then up to 128 bytes of quoted arguments. */
static void reply_unknown(kvd_conn *c, kvd_str *argv, size_t argc) {
  char args[256];
  size_t len = 0;
  args[0] = '\0';
  for (size_t i = 1; i < argc && len < 128; i++) {
    int w = (int)(argv[i].n < 128 - len ? argv[i].n : 128 - len);
    len += (size_t)snprintf(args + len, sizeof args - len, "'%.*s' ", w,
                            argv[i].p);
  }
  kvd_reply_error(c, "ERR unknown command '%.*s', with args beginning with: %s",
                  (int)(argv[0].n < 128 ? argv[0].n : 128), argv[0].p, args);
}

void kvd_dispatch(kvd_conn *c, kvd_str *argv, size_t argc) {
  const cmd *k = lookup(argv[0]);
  if (!k) {
    reply_unknown(c, argv, argc);
  } else if ((k->arity > 0 && argc != (size_t)k->arity) ||
             (k->arity < 0 && argc < (size_t)-k->arity)) {
    kvd_reply_error(c, "ERR wrong number of arguments for '%s' command",
                    k->name);
  } else {
    k->fn(c, argv, argc);
  }
}
