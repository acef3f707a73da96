/* weft — the process pool's maps: weft_procpool_map_ex(), Pool.map, imap
 * and imap_unordered in one request.
 *
 * A map copies its inputs into one buffer and waits in the pool's queue
 * (io/procpool.c) until each of its items has been handed to a worker,
 * `chunksize` per message (one batch frame). Replies are copied into
 * blocks owned by the results, one block per read of a worker's replies,
 * so that a map costs a handful of allocations whatever its size. The map
 * request itself lives until every item has a result, no message is in
 * flight and every on_result call has been made; it holds a reference to
 * its future, which owns the results. */
#include <string.h>

#include "procpool_internal.h"

#define BLOCK_SIZE ((size_t)64 << 10)

/* Items handed back unstarted (their worker died with them queued behind
 * another message): served again before the cursor. */
typedef struct back {
  struct back *next;
  size_t first, count;
} back;

typedef struct block {
  struct block *next;
  char bytes[];
} block;

struct weft__ppmap {
  weft__ppsrc src; /* in the pool's queue while items wait */
  weft_procpool *pool;
  weft_future *future; /* our reference; owns `res` once fulfilled */
  weft_procpool_results *res;
  char *in;        /* the inputs as job frames (u32 length, bytes), back
                      to back: a message is a slice of it */
  size_t *off;     /* item i's frame is in[off[i] .. off[i + 1]) */
  size_t n, next;  /* items; the next one to hand out */
  size_t settled;  /* items with a result */
  size_t chunk;    /* items per message */
  unsigned flying; /* messages handed to workers, not fully answered */
  bool queued, cancelled, fulfilled;
  /* on_result: completion order in `order`, delivered up to `delivered` */
  weft_procpool_item_cb cb;
  void *arg;
  bool ordered, posted, in_deliver;
  size_t *order, delivered;
  back *returned; /* ranges to hand out again, first */
  char *bump;     /* free space in the newest block */
  size_t bump_left;
};

static void res_free(void *v) {
  weft_procpool_results *r = v;
  for (block *b = r->priv_, *nx; b != NULL; b = nx) {
    nx = b->next;
    weft__free(b);
  }
  weft__free(r);
}

static void map_free(weft__ppmap *m) {
  for (back *b = m->returned, *nx; b != NULL; b = nx) {
    nx = b->next;
    weft__free(b);
  }
  if (!m->fulfilled && m->res != NULL) res_free(m->res);
  weft__free(m->in);
  weft__free(m->off);
  weft__free(m->order);
  weft_future_unref(m->future);
  weft__free(m);
}

weft__ppmap *weft__ppmap_of(weft__ppsrc *s) {
  return WEFT__CONTAINER_OF(s, weft__ppmap, src);
}

size_t weft__ppmap_left(const weft__ppmap *m) {
  size_t left = m->n - m->next;
  for (const back *b = m->returned; b != NULL; b = b->next)
    left += b->count;
  return left;
}

bool weft__ppmap_cancelled(const weft__ppmap *m) { return m->cancelled; }

/* ---- settling and delivering --------------------------------------------
 */

static bool delivering(const weft__ppmap *m) {
  return m->cb != NULL && !m->cancelled && m->delivered < m->n;
}

/* Frees the request once nothing can touch it any more. */
static void maybe_free(weft__ppmap *m) {
  if (m->queued || m->flying != 0 || m->posted || m->in_deliver) return;
  if (m->settled < m->n && !m->cancelled) return;
  if (delivering(m)) return;
  map_free(m);
}

/* Runs on_result for what is ready. A callback may cancel the map or stop
 * the pool: nothing frees the map until the loop below is done. */
static void deliver(void *arg) {
  weft__ppmap *m = arg;
  m->posted = false;
  m->in_deliver = true;
  while (delivering(m)) {
    size_t i;
    if (m->ordered) {
      i = m->delivered;
      if (m->res->items[i].data == NULL) break; /* not answered yet */
    } else {
      if (m->delivered == m->settled) break;
      i = m->order[m->delivered];
    }
    m->delivered++;
    m->cb(i, &m->res->items[i], m->arg);
  }
  m->in_deliver = false;
  maybe_free(m);
}

/* A message ended, or the pool dropped the rest: deliver what is ready,
 * from the loop's queue; if the queue cannot grow, now: nothing else may
 * come to try again, and the map would never be freed. */
static void kick(weft__ppmap *m) {
  if (m->cb != NULL && !m->posted && !m->in_deliver && delivering(m)) {
    if (weft_call_soon(weft__procpool_loop(m->pool), deliver, m) == 0)
      m->posted = true;
    else
      deliver(m); /* frees m if it is done */
    return;
  }
  maybe_free(m);
}

static void settled_one(weft__ppmap *m, size_t i) {
  if (m->cb != NULL && !m->ordered) m->order[m->settled] = i;
  m->settled++;
  if (m->settled == m->n && !m->cancelled) {
    m->fulfilled = true;
    if (weft_future_resolve(m->future, m->res, res_free) != 0) {
      m->fulfilled = false; /* settled by hand: the results stay ours */
    }
  }
  if (m->cb != NULL && !m->posted && !m->in_deliver && !m->cancelled) {
    /* out of memory: the next settle or the end of the message retries
     * (kick()) */
    if (weft_call_soon(weft__procpool_loop(m->pool), deliver, m) == 0)
      m->posted = true;
  }
}

/* Carves n bytes from the results' storage: blocks of 64 KiB or more. */
static char *block_bytes(weft__ppmap *m, size_t n) {
  if (n > m->bump_left) {
    size_t size = n > BLOCK_SIZE ? n : BLOCK_SIZE;
    block *b = weft__malloc(sizeof *b + size);
    if (b == NULL) return NULL;
    b->next = m->res->priv_;
    m->res->priv_ = b;
    m->bump = b->bytes;
    m->bump_left = size;
  }
  char *p = m->bump;
  m->bump += n;
  m->bump_left -= n;
  return p;
}

void weft__ppmap_item(weft__ppmap *m, size_t i, int status, const char *d,
                      size_t dl, const char *o, size_t ol, const char *e,
                      size_t el) {
  weft_procpool_result *r = &m->res->items[i];
  if (m->cancelled) {
    m->settled++;
    return;
  }
  char *p = block_bytes(m, dl + ol + el + 3);
  if (p == NULL) {
    static char empty[1];
    *r = (weft_procpool_result){.data = empty, .status = -ENOMEM};
  } else {
    *r = (weft_procpool_result){.data = p, .len = dl, .status = status};
    memcpy(p, d, dl);
    p[dl] = '\0';
    if (o != NULL) {
      r->out = p + dl + 1;
      r->out_len = ol;
      memcpy(r->out, o, ol);
      r->out[ol] = '\0';
    }
    if (e != NULL) {
      r->err = p + dl + ol + 2;
      r->err_len = el;
      memcpy(r->err, e, el);
      r->err[el] = '\0';
    }
  }
  if (r->status < 0) m->res->failed++;
  settled_one(m, i);
}

void weft__ppmap_msg_done(weft__ppmap *m) {
  m->flying--;
  kick(m);
}

void weft__ppmap_drop_rest(weft__ppmap *m, int err) {
  m->queued = false;
  back *b;
  while ((b = m->returned) != NULL) {
    m->returned = b->next;
    for (size_t i = b->first; i < b->first + b->count; i++)
      weft__ppmap_item(m, i, err, "", 0, NULL, 0, NULL, 0);
    weft__free(b);
  }
  while (m->next < m->n)
    weft__ppmap_item(m, m->next++, err, "", 0, NULL, 0, NULL, 0);
  kick(m);
}

int weft__ppmap_give_back(weft__ppmap *m, size_t first, size_t count) {
  back *b = weft__malloc(sizeof *b);
  if (b == NULL) return -ENOMEM;
  b->first = first;
  b->count = count;
  b->next = m->returned;
  m->returned = b;
  m->flying--;
  bool was = m->queued;
  m->queued = true;
  return was ? 1 : 0;
}

/* ---- handing out messages -----------------------------------------------
 */

/* Items [from, from + k) as one message no longer than a frame may be;
 * returns k, cut if need be (one item always fits). */
static size_t fit(const weft__ppmap *m, size_t from, size_t k) {
  while (k > 1 && 5 + 4 + m->off[from + k] - m->off[from] > WEFT__PP_MAX_FRAME)
    k /= 2;
  return k;
}

unsigned weft__ppmap_take(weft__ppmap *m, size_t max, char hdr[9],
                          weft_buf bufs[2], size_t *first, size_t *count) {
  back *r = m->returned;
  size_t from = r ? r->first : m->next;
  size_t k = r ? r->count : m->n - m->next;
  if (k > m->chunk) k = m->chunk;
  if (k > max) k = max;
  k = fit(m, from, k);
  size_t a = m->off[from], b = m->off[from + k];
  unsigned nb = 0;
  /* one item goes as its plain job frame, several as a batch: a header,
   * then the items' frames as they sit in the map */
  if (k > 1) {
    weft__put_be32(hdr, (uint32_t)(1 + 4 + b - a) | WEFT__PP_CTRL);
    hdr[4] = 'B';
    weft__put_be32(hdr + 5, (uint32_t)k);
    bufs[nb++] = weft_buf_init(hdr, 9);
  }
  bufs[nb++] = weft_buf_init(m->in + a, b - a);
  *first = from;
  *count = k;
  if (r == NULL) {
    m->next += k;
  } else if ((r->first += k, r->count -= k) == 0) {
    m->returned = r->next;
    weft__free(r);
  }
  m->flying++;
  if (weft__ppmap_left(m) == 0) m->queued = false;
  return nb;
}

/* ---- the call -------------------------------------------------------------
 */

static void on_map_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  weft__ppmap *m = arg;
  m->cancelled = true;
  if (m->queued) weft__procpool_unqueue_map(m->pool, m);
  m->queued = false;
  weft__procpool_kill_map(m->pool, m); /* their exits end the messages */
  maybe_free(m);
}

/* The inputs, each as the job frame a worker reads (so that a message is
 * written from here, with no copy and no allocation per message). */
static int copy_inputs(weft__ppmap *m, const weft_buf *inputs, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if ((inputs[i].len && inputs[i].base == NULL) ||
        inputs[i].len > WEFT__PP_MAX_FRAME - 16)
      return -EINVAL;
    total += 4 + inputs[i].len;
  }
  if ((m->off = weft__malloc((n + 1) * sizeof *m->off)) == NULL ||
      (m->in = weft__malloc(total ? total : 1)) == NULL)
    return -ENOMEM;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    m->off[i] = at;
    weft__put_be32(m->in + at, (uint32_t)inputs[i].len);
    if (inputs[i].len) memcpy(m->in + at + 4, inputs[i].base, inputs[i].len);
    at += 4 + inputs[i].len;
  }
  m->off[n] = at;
  return 0;
}

static int map_new(weft_procpool *pool, const weft_buf *inputs, size_t n,
                   const weft_procpool_map_options *o, weft__ppmap **out) {
  weft__ppmap *m = weft__calloc(1, sizeof *m);
  if (m == NULL) return -ENOMEM;
  m->pool = pool;
  m->n = n;
  m->chunk = o && o->chunksize > 1 ? o->chunksize : 1;
  if (o != NULL) {
    m->cb = o->on_result;
    m->arg = o->arg;
    m->ordered = o->ordered;
  }
  size_t rsize = sizeof *m->res + n * sizeof *m->res->items;
  int err = copy_inputs(m, inputs, n);
  /* items are written before anything reads them, but in input order
   * delivery tells an answered item by its data pointer */
  if (err == 0 && (m->res = m->cb && m->ordered ? weft__calloc(1, rsize)
                                                : weft__malloc(rsize)) == NULL)
    err = -ENOMEM;
  if (err == 0)
    *m->res = (weft_procpool_results){
        .n = n, .items = (weft_procpool_result *)(m->res + 1)};
  if (err == 0 && m->cb && !m->ordered &&
      (m->order = weft__malloc((n ? n : 1) * sizeof *m->order)) == NULL)
    err = -ENOMEM;
  if (err == 0)
    err = weft_future_new_op(weft__procpool_loop(pool), "weft_procpool_map_ex",
                             &m->future);
  if (err != 0) {
    map_free(m);
    return err;
  }
  *out = m;
  return 0;
}

int weft_procpool_map_ex(weft_procpool *pool, const weft_buf *inputs, size_t n,
                         const weft_procpool_map_options *opts,
                         weft_future **out) {
  if (pool == NULL || out == NULL || (n > 0 && inputs == NULL)) return -EINVAL;
  weft__ppmap *m;
  int err = map_new(pool, inputs, n, opts, &m);
  if (err != 0) return err;
  if (n == 0) { /* nothing to run: fulfilled at once */
    m->fulfilled = weft_future_resolve(m->future, m->res, res_free) == 0;
    *out = weft_future_ref(m->future);
    map_free(m);
    return 0;
  }
  m->queued = true;
  weft_future_on_cancel(m->future, on_map_cancel, m);
  *out = weft_future_ref(m->future); /* before: the enqueue may dispatch */
  err = weft__procpool_enqueue_map(pool, m, n);
  if (err != 0) {
    weft_future_unref(*out);
    *out = NULL;
    m->queued = false;
    m->cancelled = true;
    map_free(m);
  }
  return err;
}
