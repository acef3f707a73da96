/* examples/httpd — HTTP helpers without I/O: status texts, content types,
 * byte ranges, dates, mapping a request target to a path. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "httpd.h"

const char *httpd_status_text(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 100:
    return "Continue";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 416:
    return "Range Not Satisfiable";
  case 431:
    return "Request Header Fields Too Large";
  case 501:
    return "Not Implemented";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Internal Server Error";
  }
}

const char *httpd_content_type(const char *path) {
  static const char *const map[][2] = {
      {".html", "text/html"},      {".htm", "text/html"},
      {".txt", "text/plain"},      {".css", "text/css"},
      {".js", "text/javascript"},  {".json", "application/json"},
      {".png", "image/png"},       {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},     {".gif", "image/gif"},
      {".svg", "image/svg+xml"},   {".ico", "image/x-icon"},
      {".pdf", "application/pdf"}, {".wasm", "application/wasm"},
  };
  const char *dot = strrchr(path, '.');
  if (dot != NULL && strchr(dot, '/') == NULL)
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
      if (strcasecmp(dot, map[i][0]) == 0) return map[i][1];
  return "application/octet-stream";
}

static bool parse_num(const char **s, off_t *out) {
  if (!isdigit((unsigned char)**s)) return false;
  off_t v = 0;
  while (isdigit((unsigned char)**s)) {
    if (v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (**s - '0');
    (*s)++;
  }
  *out = v;
  return true;
}

int httpd_parse_range(const char *v, off_t size, off_t *from, off_t *to) {
  if (strncasecmp(v, "bytes=", 6) != 0) return -1;
  const char *s = v + 6;
  off_t a = -1, b = -1;
  if (*s != '-' && !parse_num(&s, &a)) return -1;
  if (*s++ != '-') return -1;
  if (*s != '\0' && !parse_num(&s, &b)) return -1;
  if (*s != '\0' || (a < 0 && b < 0)) return -1;
  if (a >= 0 && b >= 0 && b < a) return -1;
  if (a < 0) { /* suffix: the last b bytes */
    if (b == 0 || size == 0) return 416;
    *from = b > size ? 0 : size - b;
    *to = size;
    return 0;
  }
  if (a >= size) return 416;
  *from = a;
  *to = (b < 0 || b >= size) ? size : b + 1;
  return 0;
}

static const char date_fmt[] = "%a, %d %b %Y %H:%M:%S GMT";

/* strptime() through the end of s. */
static bool parse_all(const char *s, const char *fmt, struct tm *tm) {
  memset(tm, 0, sizeof *tm);
  const char *end = strptime(s, fmt, tm);
  return end != NULL && *end == '\0';
}

bool httpd_parse_date(const char *s, time_t *out) {
  struct tm tm;
  if (parse_all(s, date_fmt, &tm) ||
      parse_all(s, "%a %b %e %H:%M:%S %Y", &tm)) {
    *out = timegm(&tm);
    return true;
  }
  if (!parse_all(s, "%A, %d-%b-%y %H:%M:%S GMT", &tm)) return false;
  /* RFC 9110 5.6.7: a two-digit year that looks more than 50 years in
   * the future is the most recent past year with those digits. */
  struct tm now;
  time_t t = time(NULL);
  gmtime_r(&t, &now);
  int year = now.tm_year - now.tm_year % 100 + tm.tm_year % 100;
  if (year > now.tm_year + 50) year -= 100;
  tm.tm_year = year;
  *out = timegm(&tm);
  return true;
}

void httpd_format_date(time_t t, char *dst, size_t size) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(dst, size, date_fmt, &tm);
}

void httpd_format_etag(const struct stat *st, char *dst, size_t size) {
  snprintf(dst, size, "\"%llx-%llx\"", (unsigned long long)st->st_mtime,
           (unsigned long long)st->st_size);
}

/* One entity-tag at s ([W/]"..."): its end, or NULL if malformed. */
static const char *etag_end(const char *s) {
  if (strncmp(s, "W/", 2) == 0) s += 2;
  if (*s++ != '"') return NULL;
  while (*s != '"') {
    unsigned char ch = (unsigned char)*s++;
    if (ch == '\0' || ch < 0x21 || ch == 0x7f) return NULL;
  }
  return s + 1;
}

static bool etag_eq(const char *a, size_t an, const char *b, bool weak) {
  bool aw = strncmp(a, "W/", 2) == 0, bw = strncmp(b, "W/", 2) == 0;
  if (!weak && (aw || bw)) return false;
  if (aw) a += 2, an -= 2;
  if (bw) b += 2;
  return strlen(b) == an && memcmp(a, b, an) == 0;
}

bool httpd_etag_match(const char *list, const char *etag, bool weak) {
  const char *s = list;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s == '*') {
    for (s++; *s == ' ' || *s == '\t'; s++) {
    }
    return *s == '\0';
  }
  bool hit = false;
  while (*s != '\0') {
    const char *e = etag_end(s);
    if (e == NULL) return false;
    hit |= etag_eq(s, (size_t)(e - s), etag, weak);
    s = e;
    while (*s == ' ' || *s == '\t' || *s == ',')
      s++;
  }
  return hit;
}

static const char *val(const httpd_req *r, int f) {
  return r->vlen[f] >= 0 ? r->val[f] : NULL;
}

int httpd_preconditions(const httpd_req *r, const char *etag, time_t mtime) {
  time_t t;
  const char *im = val(r, HTTPD_F_IM), *ius = val(r, HTTPD_F_IUS);
  const char *inm = val(r, HTTPD_F_INM), *ims = val(r, HTTPD_F_IMS);
  if (im != NULL) {
    if (!httpd_etag_match(im, etag, false)) return 412;
  } else if (ius != NULL && httpd_parse_date(ius, &t) && mtime > t)
    return 412;
  if (inm != NULL) return httpd_etag_match(inm, etag, true) ? 304 : 0;
  if (ims != NULL && httpd_parse_date(ims, &t) && mtime <= t) return 304;
  return 0;
}

bool httpd_if_range_ok(const httpd_req *r, const char *etag, time_t mtime) {
  const char *v = val(r, HTTPD_F_IF_RANGE);
  time_t t;
  if (v == NULL) return r->vlen[HTTPD_F_IF_RANGE] == -1;
  if (v[0] == '"' || strncmp(v, "W/", 2) == 0)
    return etag_eq(v, strlen(v), etag, false);
  return httpd_parse_date(v, &t) && t == mtime;
}

int httpd_hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch = (char)tolower((unsigned char)ch);
  return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decodes src[0..n) after root into path. */
static int decode(const char *src, size_t n, char *path, size_t root,
                  size_t size) {
  size_t len = root;
  for (size_t i = 0; i < n; i++, len++) {
    if (len + sizeof "index.html" >= size) return 414;
    char ch = src[i];
    if (ch == '%') {
      int hi = i + 2 < n ? httpd_hexval(src[i + 1]) : -1;
      int lo = i + 2 < n ? httpd_hexval(src[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi | lo) == 0) return 400;
      ch = (char)(hi * 16 + lo);
      i += 2;
    }
    path[len] = ch;
  }
  path[len] = '\0';
  return 0;
}

int httpd_map_path(const char *url, size_t len, const char *root, char *path,
                   size_t size, bool *index) {
  *index = false;
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(url, len, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_PATH)))
    return 400;
  const char *src = url + u.field_data[UF_PATH].off;
  size_t n = u.field_data[UF_PATH].len, rlen = strlen(root);
  if (src[0] != '/') return 400;
  if (rlen + sizeof "index.html" >= size) return 414;
  memcpy(path, root, rlen);
  int status = decode(src, n, path, rlen, size);
  if (status != 0) return status;
  /* Traversal: no ".." segment may appear once escapes are decoded. */
  for (const char *s = path + rlen; (s = strstr(s, "/..")) != NULL; s += 3)
    if (s[3] == '/' || s[3] == '\0') return 403;
  size_t end = strlen(path);
  if (path[end - 1] == '/') {
    memcpy(path + end, "index.html", sizeof "index.html");
    *index = true;
  }
  return 0;
}

bool httpd_dir_location(const char *url, size_t len, char *dst, size_t size) {
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(url, len, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_PATH)))
    return false;
  bool q = u.field_set & (1 << UF_QUERY);
  int n = snprintf(dst, size, "%.*s/%s%.*s", (int)u.field_data[UF_PATH].len,
                   url + u.field_data[UF_PATH].off, q ? "?" : "",
                   q ? (int)u.field_data[UF_QUERY].len : 0,
                   q ? url + u.field_data[UF_QUERY].off : "");
  return n > 0 && (size_t)n < size;
}

bool httpd_parse_uint(const char *s, unsigned long long max,
                      unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v > max)
    return false;
  *out = v;
  return true;
}
