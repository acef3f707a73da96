/* kvd — shared declarations of the key-value server's parts.
 *
 * kvd.c      the server: loops, listeners, connections, RESP parsing
 * store.c    the store: sharded hash tables, expiry heaps, glob matching
 * cmd.c      the commands: argument checks and RESP replies
 * admin.c    the server's commands: SELECT, FLUSHDB, CONFIG, INFO, ...
 *
 * The store is shared by every loop (--loops N): keys are spread over
 * KVD_SHARDS shards by hash, each with its own mutex, so commands on one
 * key are atomic and all loops see one keyspace, as with Redis. Commands
 * over many keys (MGET, MSET, DEL, KEYS, DBSIZE, FLUSHALL) lock one shard
 * at a time: each key's step is atomic, the whole command is not. */
#ifndef KVD_H
#define KVD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft.h>

#define KVD_SHARDS 64
#define KVD_MAX_INLINE (64u * 1024u) /* longest inline command line */

/* proto-max-bulk-len, the largest argument accepted: Redis's default and
 * lower bound. --proto-max-bulk-len and CONFIG SET change it at any time,
 * from any loop; KVD_MAX_BULK reads it. A whole request may hold one
 * argument that large plus 4 MiB (KVD_MAX_QUERY). */
#define KVD_MAX_BULK_DEFAULT (512ull * 1024 * 1024)
#define KVD_MAX_BULK_MIN (1024ull * 1024)
extern _Atomic size_t kvd_max_bulk;
#define KVD_MAX_BULK atomic_load_explicit(&kvd_max_bulk, memory_order_relaxed)
#define KVD_MAX_QUERY (KVD_MAX_BULK + 4u * 1024u * 1024u)
#define KVD_MAX_OUTPUT (64u * 1024u * 1024u) /* most reply bytes per client */

/* ---- values and entries -------------------------------------------------- */

enum kvd_type { KVD_STRING = 1, KVD_LIST = 2 };

/** A byte string (not NUL-terminated). */
typedef struct kvd_str {
  const char *p;
  size_t n;
} kvd_str;

/** One key. A list is items[first, first + nitems) of an array with room
 * at both ends, so LPUSH and RPUSH take amortised constant time. */
typedef struct kvd_entry {
  struct kvd_entry *next; /* hash chain */
  uint64_t hash;
  int64_t expire_at; /* ms on kvd_clock_ms(); 0: no expiry */
  size_t heap_idx;   /* position in the shard's expiry heap */
  int type;
  char *val; /* string: the value; list: unused */
  size_t vlen;
  kvd_str *items; /* list items (each .p malloc'd) */
  size_t first, nitems, cap_items;
  size_t klen;
  char key[];
} kvd_entry;

/** A shard: a chained hash table and a min-heap of expiry times. */
typedef struct kvd_shard {
  pthread_mutex_t lock;
  kvd_entry **buckets;
  size_t nbuckets, count;
  kvd_entry **heap;
  size_t heap_len, heap_cap;
} kvd_shard;

struct kvd_server;

/** The shared store. */
typedef struct kvd_store {
  kvd_shard shards[KVD_SHARDS];
  bool locking; /* false with one loop: no other thread touches it */
  struct kvd_server *server;
} kvd_store;

/* ---- store.c ------------------------------------------------------------ */

/** Monotonic milliseconds, the same clock in every thread. */
int64_t kvd_clock_ms(void);
uint64_t kvd_hash(const char *p, size_t n);
int kvd_store_init(kvd_store *st, bool locking);
void kvd_store_destroy(kvd_store *st);
kvd_shard *kvd_shard_of(kvd_store *st, uint64_t hash);
size_t kvd_shard_index(const kvd_store *st, const kvd_shard *sh);
void kvd_shard_lock(kvd_store *st, kvd_shard *sh);
void kvd_shard_unlock(kvd_store *st, kvd_shard *sh);
/** Finds a live key (deleting it first if it has expired). Lock held. */
kvd_entry *kvd_find(kvd_shard *sh, uint64_t h, kvd_str key, int64_t *now);
/** Makes a new, empty entry for `key` (type set by the caller) and links
 * it. NULL on allocation failure. Lock held, key known absent. */
kvd_entry *kvd_insert(kvd_shard *sh, uint64_t h, kvd_str key, int type);
void kvd_delete(kvd_shard *sh, kvd_entry *e);
/** Replaces a string entry's value (copied). -ENOMEM leaves it as it was. */
int kvd_set_value(kvd_entry *e, const char *p, size_t n);
/** Sets (at > 0) or clears (at == 0) the expiry. Returns true if the
 * shard's earliest expiry moved earlier. -ENOMEM is impossible: the heap
 * slot is reserved by kvd_reserve_heap(). */
bool kvd_set_expire(kvd_shard *sh, kvd_entry *e, int64_t at);
int kvd_reserve_heap(kvd_shard *sh);
/** Deletes up to `max` keys due at `now`; returns the shard's next expiry
 * (INT64_MAX if none). Lock held. */
int64_t kvd_expire_due(kvd_shard *sh, int64_t now, size_t max);
void kvd_shard_clear(kvd_shard *sh);
/** Redis-style glob match (*, ?, [a-z], [^x], \x). */
bool kvd_glob(const char *pat, size_t plen, const char *s, size_t slen);

/* ---- kvd.c: replies and the expiry timers ------------------------------- */

typedef struct kvd_conn kvd_conn;
void kvd_reply_raw(kvd_conn *c, const char *p, size_t n);
void kvd_reply_status(kvd_conn *c, const char *s);
void kvd_reply_error(kvd_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kvd_reply_int(kvd_conn *c, long long v);
void kvd_reply_bulk(kvd_conn *c, const char *p, size_t n);
void kvd_reply_nil(kvd_conn *c);
void kvd_reply_array(kvd_conn *c, size_t n);
/** Asks to close the connection once the replies so far are written. */
void kvd_conn_close_after_reply(kvd_conn *c);
kvd_store *kvd_conn_store(kvd_conn *c);
/** Tells the loop that owns the shard's active expiry that the shard's
 * earliest deadline moved to `at` (it rearms its weft timer if needed). */
void kvd_expiry_moved(kvd_store *st, kvd_shard *sh, int64_t at);

/* ---- cmd.c -------------------------------------------------------------- */

/** Runs one command (argv[0] is its name) and appends its reply. */
void kvd_dispatch(kvd_conn *c, kvd_str *argv, size_t argc);
bool kvd_arg_is(kvd_str a, const char *word);
/** Redis's string2ll: strict decimal, no spaces, no '+', no leading 0s. */
bool kvd_parse_ll(kvd_str s, long long *out);

/* ---- admin.c: the server's commands (one database, CONFIG, INFO) ------- */

void kvd_cmd_select(kvd_conn *c, kvd_str *argv, size_t argc);
void kvd_cmd_flush(kvd_conn *c, kvd_str *argv, size_t argc);
void kvd_cmd_function(kvd_conn *c, kvd_str *argv, size_t argc);
void kvd_cmd_config(kvd_conn *c, kvd_str *argv, size_t argc);
void kvd_cmd_info(kvd_conn *c, kvd_str *argv, size_t argc);

#endif
