/* examples/httpd — the request parser: request line, header fields and
 * body framing (Content-Length or chunked), fed incrementally and line by
 * line, strict wherever RFC 9112 and RFC 9110 say MUST (docs/httpd.md,
 * "Parsing"). It keeps only what a static file server uses; a body is
 * framed and skipped, never stored. */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "httpd.h"

enum {
  P_LINE,
  P_FIELDS,
  P_BODY,
  P_CHUNK_SIZE,
  P_CHUNK_DATA,
  P_CHUNK_END,
  P_TRAILER,
  P_DONE
};

void httpd_req_init(httpd_req *r) {
  memset(r, 0, offsetof(httpd_req, val));
  for (int i = 0; i < HTTPD_F_COUNT; i++)
    r->vlen[i] = -1;
}

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
         (ch >= 'A' && ch <= 'Z') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static size_t token_len(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)s[i]))
    i++;
  return i;
}

static bool eq(const char *s, size_t n, const char *lit) {
  return n == strlen(lit) && strncasecmp(s, lit, n) == 0;
}

static enum httpd_event fail(httpd_req *r, int status) {
  r->status = status;
  return HTTPD_EV_ERROR;
}

static int method_of(const char *s, size_t n) {
  /* RFC 9110 9.3 and 5789 (PATCH), and the WebDAV ones nginx knows:
   * registered methods a static server does not allow (405); any other
   * token is not implemented (501). */
  static const char *const known[] = {
      "PUT",  "DELETE", "OPTIONS",  "TRACE",     "CONNECT", "PATCH", "MKCOL",
      "COPY", "MOVE",   "PROPFIND", "PROPPATCH", "LOCK",    "UNLOCK"};
  if (n == 3 && memcmp(s, "GET", 3) == 0) return HTTPD_GET;
  if (n == 4 && memcmp(s, "HEAD", 4) == 0) return HTTPD_HEAD;
  if (n == 4 && memcmp(s, "POST", 4) == 0) return HTTPD_POST;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (n == strlen(known[i]) && memcmp(s, known[i], n) == 0)
      return HTTPD_OTHER;
  return HTTPD_UNKNOWN;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3),
 * with exactly one SP between the parts. */
static enum httpd_event request_line(httpd_req *r, const char *s, size_t n) {
  size_t m = token_len(s, n);
  if (m == 0 || m == n || s[m] != ' ') return fail(r, 400);
  size_t t = m + 1, e = t;
  while (e < n && (unsigned char)s[e] > ' ' && s[e] != 0x7f)
    e++;
  if (e == t || e == n || s[e] != ' ') return fail(r, 400);
  if (e - t > HTTPD_URL_MAX) return fail(r, 414);
  const char *v = s + e + 1;
  size_t vn = n - e - 1;
  if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
      v[6] != '.' || v[7] < '0' || v[7] > '9')
    return fail(r, 400);
  r->major = v[5] - '0';
  r->minor = v[7] - '0';
  if (r->major != 1) return fail(r, 505);
  r->method = method_of(s, m);
  if (r->method == HTTPD_UNKNOWN) return fail(r, 501);
  memcpy(r->url, s + t, e - t);
  r->url_len = e - t;
  r->url[r->url_len] = '\0';
  r->phase = P_FIELDS;
  return HTTPD_EV_MORE;
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2); not empty, since an
 * "http" URI has a host (RFC 9110 4.2.1). */
static bool valid_host(const char *s, size_t n) {
  size_t i = 0;
  if (n == 0 || s[0] == ':') return false;
  if (n > 0 && s[0] == '[') { /* IP-literal */
    while (i < n && s[i] != ']') {
      if (!strchr("[0123456789abcdefABCDEF:.vV", s[i])) return false;
      i++;
    }
    if (i++ == n) return false;
  } else {
    for (; i < n && s[i] != ':'; i++)
      if (!(is_tchar((unsigned char)s[i]) || strchr("()*,;=", s[i])) ||
          strchr("#^`|\"", s[i]))
        return false;
  }
  if (i == n) return true;
  if (s[i++] != ':') return false;
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/* Transfer-Encoding: only "chunked", once (RFC 9112 6.1, 7). */
static enum httpd_event transfer_coding(httpd_req *r, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
      i++;
    if (i == n) break;
    size_t j = i;
    while (j < n && s[j] != ',')
      j++;
    size_t k = j;
    while (k > i && (s[k - 1] == ' ' || s[k - 1] == '\t'))
      k--;
    if (!eq(s + i, k - i, "chunked"))
      r->te_unknown = true;
    else if (r->chunked)
      return fail(r, 400);
    else
      r->chunked = true;
    i = j;
  }
  r->has_te = true;
  return HTTPD_EV_MORE;
}

static enum httpd_event content_length(httpd_req *r, const char *s, size_t n) {
  if (r->has_length || n == 0)
    return fail(r, 400); /* nginx too: no duplicates */
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return fail(r, 400);
    if (v > (UINT64_MAX - 9) / 10) return fail(r, 413);
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  r->has_length = true;
  r->length = v;
  return HTTPD_EV_MORE;
}

static void connection_tokens(httpd_req *r, const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
      i++;
    size_t t = token_len(s + i, n - i);
    if (eq(s + i, t, "close")) r->conn_close = true;
    if (eq(s + i, t, "keep-alive")) r->conn_keep = true;
    i += t;
    while (i < n && s[i] != ',')
      i++;
  }
}

/* Keeps a value the server uses. The lists (If-Match, If-None-Match)
 * may come in several lines, joined with ", " (RFC 9110 5.3); a date
 * field or If-Range given twice is invalid, as nginx has it (400); two
 * Ranges are ignored, as RFC 9110 14.2 allows. Too long a value is -2. */
static enum httpd_event keep(httpd_req *r, int f, const char *s, size_t n) {
  int len = r->vlen[f];
  bool list = f == HTTPD_F_INM || f == HTTPD_F_IM;
  if (len != -1 &&
      (f == HTTPD_F_IMS || f == HTTPD_F_IUS || f == HTTPD_F_IF_RANGE))
    return fail(r, 400);
  if (len != -1 && !list) len = -2;
  if (len == -2) {
    r->vlen[f] = -2;
    return HTTPD_EV_MORE;
  }
  size_t need = (len > 0 ? (size_t)len + 2 : 0) + n;
  if (need >= sizeof r->val[f]) {
    r->vlen[f] = -2;
    return HTTPD_EV_MORE;
  }
  if (len > 0) memcpy(r->val[f] + len, ", ", 2);
  memcpy(r->val[f] + need - n, s, n);
  r->val[f][need] = '\0';
  r->vlen[f] = (int)need;
  return HTTPD_EV_MORE;
}

static enum httpd_event field_value(httpd_req *r, const char *name, size_t nn,
                                    const char *v, size_t vn) {
  static const char *const kept[HTTPD_F_COUNT] = {
      [HTTPD_F_RANGE] = "range",
      [HTTPD_F_IF_RANGE] = "if-range",
      [HTTPD_F_IMS] = "if-modified-since",
      [HTTPD_F_IUS] = "if-unmodified-since",
      [HTTPD_F_INM] = "if-none-match",
      [HTTPD_F_IM] = "if-match"};
  if (eq(name, nn, "host")) {
    r->hosts++;
    if (!valid_host(v, vn)) r->bad_host = true;
  } else if (eq(name, nn, "content-length"))
    return content_length(r, v, vn);
  else if (eq(name, nn, "transfer-encoding"))
    return transfer_coding(r, v, vn);
  else if (eq(name, nn, "connection"))
    connection_tokens(r, v, vn);
  else if (eq(name, nn, "expect"))
    r->expect_continue |= eq(v, vn, "100-continue");
  else
    for (int f = 0; f < HTTPD_F_COUNT; f++)
      if (eq(name, nn, kept[f])) return keep(r, f, v, vn);
  return HTTPD_EV_MORE;
}

/* The empty line: the head is complete; checks what needs all of it and
 * picks the body's framing. */
static enum httpd_event end_of_head(httpd_req *r) {
  if ((r->minor >= 1 && r->hosts == 0) || r->hosts > 1 || r->bad_host)
    return fail(r, 400);
  if (r->has_te && (r->has_length || r->minor == 0)) return fail(r, 400);
  if (r->te_unknown) return fail(r, 501);
  if (!r->chunked && !r->has_te && r->has_length && r->length > HTTPD_BODY_MAX)
    return fail(r, 413);
  if (r->has_te && !r->chunked) return fail(r, 400);
  r->keep_alive =
      r->minor >= 1 ? !r->conn_close : r->conn_keep && !r->conn_close;
  r->body_left = r->has_length ? r->length : 0;
  r->phase = r->chunked ? P_CHUNK_SIZE : r->body_left > 0 ? P_BODY : P_DONE;
  r->has_body = r->phase != P_DONE;
  return HTTPD_EV_HEAD;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5): no
 * whitespace before the colon, no obs-fold, no CTL in the value. */
static enum httpd_event field_line(httpd_req *r, const char *s, size_t n,
                                   bool trailer) {
  if (n == 0) {
    if (trailer) {
      r->phase = P_DONE;
      return HTTPD_EV_DONE;
    }
    return end_of_head(r);
  }
  r->field_bytes += n;
  if (r->field_bytes > HTTPD_FIELDS_MAX) return fail(r, 431);
  size_t nn = token_len(s, n);
  if (nn == 0 || nn == n || s[nn] != ':') return fail(r, 400);
  size_t b = nn + 1, e = n;
  while (b < e && (s[b] == ' ' || s[b] == '\t'))
    b++;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
    e--;
  for (size_t i = b; i < e; i++)
    if (((unsigned char)s[i] < ' ' && s[i] != '\t') || s[i] == 0x7f)
      return fail(r, 400);
  return trailer ? HTTPD_EV_MORE : field_value(r, s, nn, s + b, e - b);
}

/* chunk-size [ chunk-ext ] (RFC 9112 7.1). */
static enum httpd_event chunk_size(httpd_req *r, const char *s, size_t n) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < n; i++) {
    int d = httpd_hexval(s[i]);
    if (d < 0) break;
    if (v > HTTPD_BODY_MAX) return fail(r, 413);
    v = v * 16 + (uint64_t)d;
  }
  if (i == 0) return fail(r, 400);
  while (i < n && (s[i] == ' ' || s[i] == '\t'))
    i++;
  if (i < n && s[i] != ';') return fail(r, 400);
  for (; i < n; i++)
    if (((unsigned char)s[i] < ' ' && s[i] != '\t') || s[i] == 0x7f)
      return fail(r, 400);
  r->body_bytes += v;
  if (r->body_bytes > HTTPD_BODY_MAX) return fail(r, 413);
  r->body_left = v;
  r->phase = v == 0 ? P_TRAILER : P_CHUNK_DATA;
  return HTTPD_EV_MORE;
}

static enum httpd_event line(httpd_req *r, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r') return fail(r, 400); /* a bare CR */
  switch (r->phase) {
  case P_LINE:
    if (n == 0)
      return HTTPD_EV_MORE; /* empty lines before a request: ignored (RFC
                               9112 2.2) */
    return request_line(r, s, n);
  case P_FIELDS:
    return field_line(r, s, n, false);
  case P_CHUNK_SIZE:
    return chunk_size(r, s, n);
  case P_CHUNK_END:
    if (n != 0) return fail(r, 400);
    r->phase = P_CHUNK_SIZE;
    return HTTPD_EV_MORE;
  default:
    return field_line(r, s, n, true);
  }
}

/* The longest line each phase accepts, and the status for a longer one. */
static size_t line_max(const httpd_req *r, int *status) {
  *status = r->phase == P_LINE                              ? 414
            : r->phase == P_FIELDS || r->phase == P_TRAILER ? 431
                                                            : 400;
  return r->phase == P_LINE ? HTTPD_URL_MAX + 32 : HTTPD_LINE_MAX;
}

enum httpd_event httpd_req_feed(httpd_req *r, const char *buf, size_t len,
                                size_t *used) {
  size_t off = 0;
  enum httpd_event ev = r->phase == P_DONE ? HTTPD_EV_DONE : HTTPD_EV_MORE;
  while (ev == HTTPD_EV_MORE && off < len) {
    if (r->phase == P_BODY || r->phase == P_CHUNK_DATA) {
      uint64_t take = len - off < r->body_left ? len - off : r->body_left;
      off += (size_t)take;
      r->body_left -= take;
      if (r->body_left == 0 && r->phase == P_BODY) {
        r->phase = P_DONE;
        ev = HTTPD_EV_DONE;
      } else if (r->body_left == 0)
        r->phase = P_CHUNK_END;
      continue;
    }
    const char *nl = memchr(buf + off, '\n', len - off);
    int status;
    size_t max = line_max(r, &status);
    if (nl == NULL) {
      if (len - off > max) ev = fail(r, status);
      break;
    }
    size_t n = (size_t)(nl - (buf + off));
    if (n > max) {
      ev = fail(r, status);
      break;
    }
    size_t body =
        n > 0 && buf[off + n - 1] == '\r' ? n - 1 : n; /* CRLF, or a bare LF */
    ev = line(r, buf + off, body);
    off += n + 1;
  }
  *used = off;
  return ev;
}
