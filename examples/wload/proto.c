/* wload — what goes on the wire: request templates (HTTP/1.1, RESP) and
 * the incremental parsers that check every response. A parser never
 * copies: it is fed whatever the stream read, consumes what it can, skips
 * bodies and bulk strings by count, and asks for the unconsumed tail (an
 * incomplete header block or line) to be fed again with more bytes. Any
 * byte that does not fit the grammar is an error, never a success. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wload.h"

#define MAX_HEAD (64u * 1024u) /* longest header block / RESP line */

const char *const wl_err_names[WL_E_COUNT] = {
    "connect", "read", "write", "timeout", "parse", "status", "reply", "type"};

/* ---- requests ------------------------------------------------------------ */

void wl_req_free(wl_req *r) {
  free(r->bytes);
  free(r->rand_off);
  memset(r, 0, sizeof *r);
}

int wl_http_template(wl_req *r, const char *method, const char *host,
                     const char *path, const char *headers, const char *body) {
  memset(r, 0, sizeof *r);
  size_t blen = body ? strlen(body) : 0;
  size_t cap = strlen(method) + strlen(host) + strlen(path) + strlen(headers) +
               blen + 96;
  if (!(r->bytes = malloc(cap))) return -ENOMEM;
  int n = snprintf(r->bytes, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n%s", method,
                   path, host, headers);
  if (body)
    n += snprintf(r->bytes + n, cap - (size_t)n,
                  "Content-Length: %zu\r\n\r\n%s", blen, body);
  else
    n += snprintf(r->bytes + n, cap - (size_t)n, "\r\n");
  r->len = (size_t)n;
  r->head = strcasecmp(method, "HEAD") == 0;
  return 0;
}

static char expect_of(const char *cmd, size_t n) {
  static const struct {
    const char *name;
    char type;
  } t[] = {{"SET", '+'},   {"MSET", '+'},   {"PING", '+'},   {"GET", '$'},
           {"LPOP", '$'},  {"RPOP", '$'},   {"HGET", '$'},   {"INCR", ':'},
           {"DECR", ':'},  {"INCRBY", ':'}, {"DEL", ':'},    {"EXISTS", ':'},
           {"LPUSH", ':'}, {"RPUSH", ':'},  {"SADD", ':'},   {"HSET", ':'},
           {"LLEN", ':'},  {"EXPIRE", ':'}, {"LRANGE", '*'}, {"MGET", '*'}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strlen(t[i].name) == n && strncasecmp(t[i].name, cmd, n) == 0)
      return t[i].type;
  return 0;
}

/* Appends one bulk string ("$len\r\n" word "\r\n", __data__ expanded) and
 * records where its placeholders are. */
static int add_word(wl_req *r, size_t *cap, const char *w, size_t wn,
                    size_t data_size) {
  bool data = wn == 8 && memcmp(w, "__data__", 8) == 0;
  size_t len = data ? data_size : wn;
  if (r->len + len + 32 > *cap) {
    size_t nc = (*cap + len + 32) * 2;
    char *nb = realloc(r->bytes, nc);
    if (!nb) return -ENOMEM;
    r->bytes = nb, *cap = nc;
  }
  r->len += (size_t)sprintf(r->bytes + r->len, "$%zu\r\n", len);
  if (data)
    memset(r->bytes + r->len, 'x', len);
  else
    memcpy(r->bytes + r->len, w, wn);
  for (size_t i = 0; !data && i + WL_RAND_DIGITS <= wn; i++) {
    if (memcmp(w + i, "__rand_int__", WL_RAND_DIGITS) != 0) continue;
    size_t *no = realloc(r->rand_off, (r->nrand + 1) * sizeof *no);
    if (!no) return -ENOMEM;
    r->rand_off = no;
    r->rand_off[r->nrand++] = r->len + i;
    i += WL_RAND_DIGITS - 1;
  }
  r->len += len;
  memcpy(r->bytes + r->len, "\r\n", 2);
  r->len += 2;
  return 0;
}

int wl_resp_template(wl_req *r, const char *line, size_t data_size) {
  memset(r, 0, sizeof *r);
  const char *w[64];
  size_t wn[64];
  unsigned n = 0;
  for (const char *p = line; *p && n < 64;) {
    while (*p == ' ')
      p++;
    if (!*p) break;
    w[n] = p;
    while (*p && *p != ' ')
      p++;
    wn[n] = (size_t)(p - w[n]);
    n++;
  }
  if (n == 0) return -EINVAL;
  size_t cap = 64;
  if (!(r->bytes = malloc(cap))) return -ENOMEM;
  r->len = (size_t)sprintf(r->bytes, "*%u\r\n", n);
  for (unsigned i = 0; i < n; i++) {
    int rc = add_word(r, &cap, w[i], wn[i], data_size);
    if (rc < 0) {
      wl_req_free(r);
      return rc;
    }
  }
  r->expect = expect_of(w[0], wn[0]);
  return 0;
}

/* xorshift64*: one per loop, seeded by the loop's index. */
static uint64_t next_rand(uint64_t *s) {
  *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

/* k's last 12 decimal digits, zero-padded, at d: two halves of six digits,
 * two digits per step, so the divisions are short and independent. */
static void put_digits(char *d, uint64_t k) {
  static const char pairs[] = "00010203040506070809"
                              "10111213141516171819"
                              "20212223242526272829"
                              "30313233343536373839"
                              "40414243444546474849"
                              "50515253545556575859"
                              "60616263646566676869"
                              "70717273747576777879"
                              "80818283848586878889"
                              "90919293949596979899";
  _Static_assert(WL_RAND_DIGITS == 12, "two halves of six digits");
  uint32_t hi = (uint32_t)(k / 1000000 % 1000000), lo = (uint32_t)(k % 1000000);
  for (int j = 4; j >= 0; j -= 2, hi /= 100, lo /= 100) {
    memcpy(d + j, pairs + 2 * (hi % 100), 2);
    memcpy(d + 6 + j, pairs + 2 * (lo % 100), 2);
  }
}

size_t wl_req_build(const wl_req *r, char *out, uint64_t *rng,
                    uint64_t keyspace) {
  memcpy(out, r->bytes, r->len);
  for (unsigned i = 0; i < r->nrand; i++) {
    /* [0, keyspace) by a multiply, not a division (Lemire's reduction) */
    __extension__ typedef unsigned __int128 u128;
    uint64_t k = (uint64_t)(((u128)next_rand(rng) * keyspace) >> 64);
    put_digits(out + r->rand_off[i], k);
  }
  return r->len;
}

/* ---- HTTP/1.1 responses -------------------------------------------------- */

enum {
  H_HEAD,
  H_BODY,
  H_CHUNK_SIZE,
  H_CHUNK_DATA,
  H_CHUNK_CRLF,
  H_TRAILER,
  H_EOF
};

/* Once per response: the fields, not the whole struct (pending[] is only
 * read below depth, which starts at 0). */
void wl_parser_reset(wl_parser *p, bool head) {
  p->state = 0;
  p->left = 0;
  p->status = 0;
  p->close = false;
  p->head = head;
  p->type = 0;
  p->depth = 0;
}

static bool token_has(const char *v, size_t n, const char *word) {
  size_t wn = strlen(word);
  for (size_t i = 0; i + wn <= n; i++)
    if (strncasecmp(v + i, word, wn) == 0) return true;
  return false;
}

/* One header line (no CRLF): "Name: value". */
static int header(wl_parser *ps, const char *l, size_t n, int64_t *clen,
                  bool *chunked) {
  const char *colon = memchr(l, ':', n);
  if (!colon || colon == l) return -1;
  for (const char *c = l; c < colon; c++)
    if (*c == ' ' || *c == '\t') return -1;
  size_t nn = (size_t)(colon - l);
  const char *v = colon + 1, *end = l + n;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t vn = (size_t)(end - v);
  if (nn == 14 && strncasecmp(l, "content-length", 14) == 0) {
    if (vn == 0 || vn > 18) return -1;
    int64_t x = 0;
    for (size_t i = 0; i < vn; i++) {
      if (v[i] < '0' || v[i] > '9') return -1;
      x = x * 10 + (v[i] - '0');
    }
    if (*clen >= 0 && *clen != x) return -1;
    *clen = x;
  } else if (nn == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
    if (token_has(v, vn, "chunked")) *chunked = true;
  } else if (nn == 10 && strncasecmp(l, "connection", 10) == 0) {
    if (token_has(v, vn, "close")) ps->close = true;
    if (token_has(v, vn, "keep-alive")) ps->close = false;
  }
  return 0;
}

/* The header block p[0..n) (ending with its empty line): status and
 * framing. Returns 0 or -1 (malformed). */
static int head_block(wl_parser *ps, const char *p, size_t n) {
  const char *eol = memmem(p, n, "\r\n", 2);
  size_t ln = (size_t)(eol - p);
  if (ln < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
      p[8] != ' ' || (ln > 12 && p[12] != ' '))
    return -1;
  int st = 0;
  for (int i = 9; i < 12; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    st = st * 10 + (p[i] - '0');
  }
  if (st < 100) return -1;
  ps->status = st;
  ps->close = p[7] == '0';
  int64_t clen = -1;
  bool chunked = false;
  for (const char *l = eol + 2; l < p + n - 2;) {
    const char *e = memmem(l, (size_t)(p + n - l), "\r\n", 2);
    if (header(ps, l, (size_t)(e - l), &clen, &chunked) < 0) return -1;
    l = e + 2;
  }
  if (ps->head || st < 200 || st == 204 || st == 304)
    ps->state = -1;
  else if (chunked)
    ps->state = H_CHUNK_SIZE;
  else if (clen >= 0) {
    ps->left = (uint64_t)clen;
    ps->state = clen ? H_BODY : -1;
  } else {
    ps->state = H_EOF;
    ps->close = true;
  }
  return 0;
}

/* A chunk-size line (no CRLF): hex digits, then optional ";ext". */
static int chunk_size(wl_parser *ps, const char *l, size_t n) {
  uint64_t x = 0;
  size_t i = 0;
  for (; i < n; i++) {
    char c = l[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) break;
    if (x >> 56) return -1;
    x = x * 16 + (uint64_t)d;
  }
  if (i == 0 || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
    return -1;
  ps->left = x;
  ps->state = x ? H_CHUNK_DATA : H_TRAILER;
  return 0;
}

size_t wl_http_feed(wl_parser *ps, const char *p, size_t n, int *ev) {
  size_t off = 0;
  *ev = WL_P_MORE;
  while (off < n || ps->state == -1) {
    const char *q = p + off;
    size_t m = n - off;
    if (ps->state == -1) { /* the response is whole */
      *ev = WL_P_DONE;
      return off;
    }
    if (ps->state == H_BODY || ps->state == H_CHUNK_DATA ||
        ps->state == H_EOF) {
      size_t take = ps->state == H_EOF || ps->left > m ? m : (size_t)ps->left;
      if (ps->state != H_EOF) ps->left -= take;
      off += take;
      if (ps->state != H_EOF && ps->left == 0)
        ps->state = ps->state == H_BODY ? -1 : H_CHUNK_CRLF;
      continue;
    }
    if (ps->state == H_CHUNK_CRLF) {
      if (m < 2) return off;
      if (q[0] != '\r' || q[1] != '\n') goto bad;
      off += 2;
      ps->state = H_CHUNK_SIZE;
      continue;
    }
    const char *end = ps->state == H_HEAD ? memmem(q, m, "\r\n\r\n", 4)
                                          : memmem(q, m, "\r\n", 2);
    if (!end) {
      if (m > MAX_HEAD) goto bad;
      return off; /* incomplete: fed again with more */
    }
    size_t len = (size_t)(end - q) + (ps->state == H_HEAD ? 4 : 2);
    int rc = 0;
    if (ps->state == H_HEAD)
      rc = head_block(ps, q, len);
    else if (ps->state == H_CHUNK_SIZE)
      rc = chunk_size(ps, q, len - 2);
    else if (len == 2)
      ps->state = -1; /* the trailer's empty line */
    if (rc < 0) goto bad;
    off += len;
  }
  return off;
bad:
  *ev = WL_P_ERROR;
  return off;
}

bool wl_http_eof_ends(const wl_parser *ps) { return ps->state == H_EOF; }

/* ---- RESP replies -------------------------------------------------------- */

enum { R_LINE, R_BULK };

/* An element ended: close every aggregate it completes. True when the
 * whole reply has. */
static bool elem_done(wl_parser *ps) {
  while (ps->depth > 0) {
    if (--ps->pending[ps->depth - 1] > 0) return false;
    ps->depth--;
  }
  return true;
}

static int resp_int(const char *l, size_t n, int64_t *out) {
  size_t i = 0;
  bool neg = n > 0 && l[0] == '-';
  if (neg) i = 1;
  if (i == n || n - i > 18) return -1;
  int64_t x = 0;
  for (; i < n; i++) {
    if (l[i] < '0' || l[i] > '9') return -1;
    x = x * 10 + (l[i] - '0');
  }
  *out = neg ? -x : x;
  return 0;
}

/* One line (no CRLF). 1: the reply ended; 0: go on; -1: malformed. */
static int resp_line(wl_parser *ps, const char *l, size_t n) {
  if (n == 0) return -1;
  if (ps->depth == 0 && ps->type == 0) ps->type = l[0];
  int64_t x;
  switch (l[0]) {
  case '+':
  case '-':
    return elem_done(ps);
  case ':':
    return resp_int(l + 1, n - 1, &x) < 0 ? -1 : elem_done(ps);
  case '$':
    if (resp_int(l + 1, n - 1, &x) < 0 || x < -1) return -1;
    if (x == -1) return elem_done(ps);
    ps->left = (uint64_t)x + 2;
    ps->state = R_BULK;
    return 0;
  case '*':
    if (resp_int(l + 1, n - 1, &x) < 0 || x < -1) return -1;
    if (x <= 0) return elem_done(ps);
    if (ps->depth == (int)(sizeof ps->pending / sizeof ps->pending[0]))
      return -1;
    ps->pending[ps->depth++] = x;
    return 0;
  default:
    return -1;
  }
}

/* The first "\r\n" in q[0..m), or NULL (memchr, not memmem: lines are
 * short and this runs once per reply). */
static const char *find_crlf(const char *q, size_t m) {
  const char *e = q, *end = q + m;
  while ((e = memchr(e, '\r', (size_t)(end - e))) != NULL) {
    if (e + 1 < end && e[1] == '\n') return e;
    e++;
  }
  return NULL;
}

size_t wl_resp_feed(wl_parser *ps, const char *p, size_t n, int *ev) {
  size_t off = 0;
  *ev = WL_P_MORE;
  while (off < n) {
    const char *q = p + off;
    size_t m = n - off;
    int rc;
    if (ps->state == R_BULK) {
      size_t take = ps->left > m ? m : (size_t)ps->left;
      /* the last two bytes of a bulk string are its CRLF */
      for (size_t k = ps->left > 2 ? (size_t)(ps->left - 2) : 0; k < take; k++)
        if (q[k] != (ps->left - k == 2 ? '\r' : '\n')) goto bad;
      ps->left -= take;
      off += take;
      if (ps->left) continue;
      ps->state = R_LINE;
      rc = elem_done(ps);
    } else {
      const char *end = find_crlf(q, m);
      if (!end) {
        if (m > MAX_HEAD) goto bad;
        return off;
      }
      rc = resp_line(ps, q, (size_t)(end - q));
      if (rc < 0) goto bad;
      off += (size_t)(end - q) + 2;
    }
    if (rc == 1) {
      *ev = WL_P_DONE;
      return off;
    }
  }
  return off;
bad:
  *ev = WL_P_ERROR;
  return off;
}
