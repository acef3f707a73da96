/* examples/httpd — the parts shared between its files: HTTP helpers
 * (http_util.c) and the open-file cache (fcache.c). */
#ifndef HTTPD_H
#define HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/** The reason phrase of a status code ("Internal Server Error" for any
 * code it does not know). */
const char *httpd_status_text(int status);

/** A Content-Type for `path` from its extension (octet-stream if none). */
const char *httpd_content_type(const char *path);

/** One "bytes=a-b", "bytes=a-" or "bytes=-n" range against `size`:
 * 0 sets [*from, *to), 416 if unsatisfiable, -1 if the header is to be
 * ignored (malformed, or several ranges: a server may answer those 200). */
int httpd_parse_range(const char *v, off_t size, off_t *from, off_t *to);

/** Parses an HTTP-date (RFC 9110 5.6.7): an IMF-fixdate ("Sun, 06 Nov
 * 1994 08:49:37 GMT"), or the obsolete RFC 850 ("Sunday, 06-Nov-94
 * 08:49:37 GMT", a two-digit year more than 50 years ahead meaning the
 * past century) and asctime ("Sun Nov  6 08:49:37 1994") forms. */
bool httpd_parse_date(const char *s, time_t *out);

/** The value of one hex digit, or -1. */
int httpd_hexval(char ch);

/** Formats the ETag of a file (as nginx does: "mtime-size" in hex, with
 * the quotes) into dst (at least 40 bytes). */
void httpd_format_etag(const struct stat *st, char *dst, size_t size);

/** Whether the If-Match / If-None-Match value `list` ("*" or a list of
 * entity-tags) matches `etag`, with the strong comparison, or the weak one
 * (a W/ prefix on either side ignored). A malformed list matches nothing. */
bool httpd_etag_match(const char *list, const char *etag, bool weak);

/** Formats `t` as an IMF-fixdate into dst (at least 30 bytes). */
void httpd_format_date(time_t t, char *dst, size_t size);

/** Maps the request target url[0..len) to a file under `root` (canonical,
 * without a trailing slash) into path[0..size): percent-decoded, index.html
 * appended to a trailing "/" (then *index is set). Returns 0, or the
 * status to answer: 400 (not a path, bad escape, %00), 403 (a ".."
 * segment), 414 (too long). */
int httpd_map_path(const char *url, size_t len, const char *root, char *path,
                   size_t size, bool *index);

/** The Location of the redirect from a directory named without its
 * trailing slash: the target's path with "/" appended, then its query.
 * False if it does not fit in dst. */
bool httpd_dir_location(const char *url, size_t len, char *dst, size_t size);

/** Parses a decimal integer without sign, at most `max`. */
bool httpd_parse_uint(const char *s, unsigned long long max,
                      unsigned long long *out);

/* ---- the request parser (http_req.c) ------------------------------------ */

#define HTTPD_URL_MAX 8000        /* longer request targets get 414 */
#define HTTPD_LINE_MAX 8192       /* a longer header field line gets 431 */
#define HTTPD_FIELDS_MAX 32768    /* more header bytes in all get 431 */
#define HTTPD_BODY_MAX (1u << 20) /* larger request bodies get 413 */

enum { HTTPD_GET = 1, HTTPD_HEAD, HTTPD_POST, HTTPD_OTHER, HTTPD_UNKNOWN };

/** The header fields the server uses, kept as received. */
enum {
  HTTPD_F_RANGE,
  HTTPD_F_IF_RANGE,
  HTTPD_F_IMS,
  HTTPD_F_IUS,
  HTTPD_F_INM,
  HTTPD_F_IM,
  HTTPD_F_COUNT
};

enum httpd_event {
  HTTPD_EV_MORE,  /* everything given was used; more input is needed */
  HTTPD_EV_HEAD,  /* the head is complete (a body may follow) */
  HTTPD_EV_DONE,  /* the request is complete; the input after it is unused */
  HTTPD_EV_ERROR, /* malformed or over a limit: answer `status` and close */
};

/** One request being parsed. */
typedef struct httpd_req {
  int phase, status, method, major, minor, hosts;
  bool bad_host, has_te, te_unknown, chunked, has_length, has_body;
  bool conn_close, conn_keep, keep_alive, expect_continue;
  uint64_t length, body_left, body_bytes;
  size_t url_len, field_bytes;
  int vlen[HTTPD_F_COUNT]; /* -1: absent, -2: too long to keep */
  char val[HTTPD_F_COUNT][256];
  char url[HTTPD_URL_MAX + 1];
} httpd_req;

/** Resets `r` for the next request. */
void httpd_req_init(httpd_req *r);

/** Parses buf[0..len), sets *used to the bytes consumed and returns what
 * happened. A partial line is not consumed: it must be given again with
 * what follows. After HTTPD_EV_ERROR, r->status is the reply's status (400,
 * 413, 414, 431, 501, 505). */
enum httpd_event httpd_req_feed(httpd_req *r, const char *buf, size_t len,
                                size_t *used);

/** Evaluates the preconditions of RFC 9110 13.2.2 for a GET or HEAD of a
 * file: 412, 304, or 0 to go on. */
int httpd_preconditions(const httpd_req *r, const char *etag, time_t mtime);

/** Whether a Range is to be honoured: no If-Range, or one that matches
 * the file (strong comparison of the ETag, or the exact Last-Modified). */
bool httpd_if_range_ok(const httpd_req *r, const char *etag, time_t mtime);

/* ---- the open-file cache ------------------------------------------------ */

/** An open file shared by the replies that use it. */
typedef struct fcache_entry {
  char *path; /* NULL: empty slot */
  int fd;
  struct stat st;
  uint64_t expires; /* loop time (ms) after which it is opened anew */
  unsigned refs;    /* replies using it; the slot is reused only at 0 */
} fcache_entry;

#define FCACHE_SLOTS 256

/** Per loop: a direct-mapped table of open files, each trusted for
 * `valid_ms` after it was opened and stat'ed (0 disables the cache). */
typedef struct fcache {
  uint64_t valid_ms;
  fcache_entry slots[FCACHE_SLOTS];
} fcache;

/** A fresh entry for `path` (its refs raised), or NULL. */
fcache_entry *fcache_get(fcache *c, const char *path, uint64_t now);

/** Offers a just opened and stat'ed file. Returns its entry (refs 1; the
 * cache owns `fd` from now on), or NULL if it was not taken (the slot is
 * in use, the cache is off, or out of memory; the caller keeps `fd`). */
fcache_entry *fcache_put(fcache *c, const char *path, int fd,
                         const struct stat *st, uint64_t now);

/** Drops one reference taken by fcache_get() or fcache_put(). */
void fcache_release(fcache_entry *e);

/** Closes every cached file (all references must be released). */
void fcache_clear(fcache *c);

#endif
