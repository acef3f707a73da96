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

/** Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). */
bool httpd_parse_date(const char *s, time_t *out);

/** Formats `t` as an IMF-fixdate into dst (at least 30 bytes). */
void httpd_format_date(time_t t, char *dst, size_t size);

/** Maps the request target url[0..len) to a file under `root` (canonical,
 * without a trailing slash) into path[0..size): percent-decoded, index.html
 * appended to a trailing "/". Returns 0, or the status to answer: 400 (not
 * a path, bad escape, %00), 403 (a ".." segment), 414 (too long). */
int httpd_map_path(const char *url, size_t len, const char *root, char *path, size_t size);

/** Parses a decimal integer without sign, at most `max`. */
bool httpd_parse_uint(const char *s, unsigned long long max, unsigned long long *out);

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
fcache_entry *fcache_put(fcache *c, const char *path, int fd, const struct stat *st,
                         uint64_t now);

/** Drops one reference taken by fcache_get() or fcache_put(). */
void fcache_release(fcache_entry *e);

/** Closes every cached file (all references must be released). */
void fcache_clear(fcache *c);

#endif
