/* weft — the process pool's reply side: what a worker writes on its
 * stdout (io/procpool_internal.h has the wire) is parsed in place when a
 * read holds whole frames, else gathered in the worker's rbuf, and each
 * reply goes to what the worker has in hand: its initializer, its single
 * job, or the next item of its map message. A reply that breaks the
 * framing, or one nobody asked for, gets the worker killed (its exit
 * settles the work, io/procpool.c). */
#include <string.h>
#include <unistd.h>

#include "procpool_pool.h"

typedef struct reply {
  int status;
  const char *d, *o, *e; /* o and e NULL without capture */
  size_t dl, ol, el;
} reply;

static void init_reply(worker *w, const reply *r) {
  weft_procpool *pool = w->pool;
  w->starting = false;
  if (r->status >= 0) {
    w->inited = true;
    if (!w->writing) weft__ppw_done(w, 0);
    return;
  }
  /* not replaced: it exits (killed, to be sure); its error is kept for
   * the jobs that no worker will run */
  w->starting = true;
  pool->init_err = r->status;
  weft__free(pool->init_msg);
  pool->init_msg = weft__ppresult_new(r->status, r->d, r->dl, NULL, 0, NULL, 0);
  weft__ppw_kill(w);
}

static void job_reply(worker *w, const reply *r) {
  job *j = w->job;
  w->job = NULL;
  if (r->status < 0) {
    weft_procpool_result *d = NULL;
    if (r->dl || r->o)
      d = weft__ppresult_new(r->status, r->d, r->dl, r->o, r->ol, r->e, r->el);
    weft__ppjob_fail(j->future, r->status, d);
  } else {
    weft__ppjob_fulfil(j->future, weft__ppresult_new(0, r->d, r->dl, r->o,
                                                     r->ol, r->e, r->el));
  }
  weft__ppjob_free(j);
  weft__ppw_done(w, 1);
}

static void item_reply(worker *w, const reply *r) {
  weft__ppmap *m = w->map;
  weft__ppmap_item(m, w->first + w->replied, r->status < 0 ? r->status : 0,
                   r->d, r->dl, r->o, r->ol, r->e, r->el);
  if (++w->replied < w->count) return;
  size_t count = w->count;
  w->map = w->map2; /* the message sent ahead is next */
  w->first = w->first2;
  w->count = w->count2;
  w->replied = 0;
  w->map2 = NULL;
  weft__ppmap_msg_done(m);
  weft__ppw_done(w, count);
}

/* Splits an extended reply's payload; false if it does not add up. */
static bool split_ext(reply *r, const char *p, size_t len) {
  if (len < WEFT__PP_EXT_HDR) return false;
  r->dl = weft__get_be32(p);
  r->ol = weft__get_be32(p + 4);
  r->el = weft__get_be32(p + 8);
  if (r->dl + r->ol + r->el != len - WEFT__PP_EXT_HDR) return false;
  r->d = p + WEFT__PP_EXT_HDR;
  r->o = r->d + r->dl;
  r->e = r->o + r->ol;
  return true;
}

/* Handles the complete reply frames at p (n bytes); returns how many bytes
 * they took, or SIZE_MAX if the worker broke the framing (it is killed). */
static size_t parse_frames(worker *w, const char *p, size_t n) {
  size_t off = 0;
  while (n - off >= WEFT__PP_REPLY_HDR) {
    uint32_t hdr = weft__get_be32(p + off);
    size_t len = hdr & ~WEFT__PP_EXT;
    reply r = {.status = (int32_t)weft__get_be32(p + off + 4)};
    if (len > WEFT__PP_MAX_FRAME || (!w->starting && !weft__ppw_busy(w))) {
      weft__ppw_kill(w);
      return SIZE_MAX;
    }
    if (n - off - WEFT__PP_REPLY_HDR < len) break;
    const char *q = p + off + WEFT__PP_REPLY_HDR;
    off += WEFT__PP_REPLY_HDR + len;
    if (!(hdr & WEFT__PP_EXT)) {
      r.d = q;
      r.dl = len;
    } else if (!split_ext(&r, q, len)) {
      weft__ppw_kill(w);
      return SIZE_MAX;
    }
    if (w->starting)
      init_reply(w, &r);
    else if (w->job != NULL)
      job_reply(w, &r);
    else
      item_reply(w, &r);
  }
  return off;
}

/* Consumes the complete reply frames in rbuf. */
static void parse_replies(worker *w) {
  size_t off = parse_frames(w, w->rbuf, w->rlen);
  if (off == SIZE_MAX) {
    w->rlen = 0;
    return;
  }
  if (off == 0) return;
  memmove(w->rbuf, w->rbuf + off, w->rlen - off);
  w->rlen -= off;
}

static int rbuf_append(worker *w, const char *data, size_t n) {
  if (n == 0) return 0;
  if (w->rlen + n > w->rcap) {
    size_t cap = w->rcap ? w->rcap : 65536;
    while (cap < w->rlen + n)
      cap *= 2;
    char *b = weft__realloc(w->rbuf, cap);
    if (b == NULL) return -ENOMEM;
    w->rbuf = b;
    w->rcap = cap;
  }
  memcpy(w->rbuf + w->rlen, data, n);
  w->rlen += n;
  return 0;
}

/* The exit can be seen before the last reply is read (both are ready in
 * the same poll): a worker that replied and then exited did its job. Its
 * stdout has no writer left, so this read ends at once. */
void weft__ppw_drain(worker *w) {
  int fd = weft_stream_fileno(&w->out.stream);
  if (fd < 0 || weft_is_closing(&w->out.stream.base)) return;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0 && rbuf_append(w, buf, (size_t)n) != 0) return;
  parse_replies(w);
}

void weft__ppw_on_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  worker *w = s->base.data;
  if (nread == 0) return;
  int err = 0;
  if (nread > 0 && w->rlen == 0) { /* the common case: parse in place */
    size_t used = parse_frames(w, buf->base, (size_t)nread);
    if (used == SIZE_MAX) return;
    err = rbuf_append(w, buf->base + used, (size_t)nread - used);
    if (err == 0) return;
  } else if (nread > 0) {
    err = rbuf_append(w, buf->base, (size_t)nread);
  }
  if (nread < 0 || err != 0) {
    weft_stream_read_stop(s);
    if (w->fail == 0) w->fail = err;
    weft__ppw_kill(w); /* end of replies: its exit cleans up */
    return;
  }
  parse_replies(w);
}
