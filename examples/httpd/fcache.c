/* examples/httpd — the open-file cache. Like nginx's open_file_cache: a
 * file opened and stat'ed on the pool is reused for `valid_ms`, so a hot
 * file costs no round trip to a worker thread per request. A file changed
 * on disk is seen at the latest `valid_ms` later (default 1 s). Sharing
 * one fd between replies is safe: sendfile() is given its own offset and
 * never moves the file position. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpd.h"

static size_t slot_of(const char *path) {
  size_t h = 5381; /* djb2: short paths, no adversary worth more */
  for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++)
    h = h * 33 + *p;
  return h % FCACHE_SLOTS;
}

fcache_entry *fcache_get(fcache *c, const char *path, uint64_t now) {
  if (c->valid_ms == 0) return NULL;
  fcache_entry *e = &c->slots[slot_of(path)];
  if (e->path == NULL || now >= e->expires || strcmp(e->path, path) != 0)
    return NULL;
  e->refs++;
  return e;
}

static void drop(fcache_entry *e) {
  if (e->path == NULL) return;
  close(e->fd);
  free(e->path);
  e->path = NULL;
}

fcache_entry *fcache_put(fcache *c, const char *path, int fd,
                         const struct stat *st, uint64_t now) {
  if (c->valid_ms == 0) return NULL;
  fcache_entry *e = &c->slots[slot_of(path)];
  if (e->refs > 0) return NULL; /* busy: the caller serves from its own fd */
  char *copy = strdup(path);
  if (copy == NULL) return NULL;
  drop(e);
  *e = (fcache_entry){.path = copy,
                      .fd = fd,
                      .st = *st,
                      .expires = now + c->valid_ms,
                      .refs = 1};
  return e;
}

void fcache_release(fcache_entry *e) { e->refs--; }

void fcache_clear(fcache *c) {
  for (size_t i = 0; i < FCACHE_SLOTS; i++)
    drop(&c->slots[i]);
}
