/* weft — the directories of recursive watches: the walk at start, a new
 * directory's watch and scan, and the moves and removals of subtrees.
 *
 * The race between a directory's creation and its watch: entries made in
 * it before inotify_add_watch() return have no event. So a new directory is
 * watched first, then read, and what the read finds is reported as CREATE
 * events. Entries made after the watch but before the read would then be
 * reported twice (by the read and by their own event): the read remembers
 * the names it reported (the node's `seen` set) and their own CREATE or
 * MOVED_TO events are dropped. The set is dropped at a marker: the new
 * watch includes IN_CLOSE_NOWRITE, so the read's own closedir() queues a
 * nameless close event on the directory behind every event the read could
 * have seen. (Another process closing the directory meanwhile drops the
 * set early: then an entry can be reported twice, never missed.) Such a
 * directory keeps IN_CLOSE_NOWRITE in its kernel mask (named close events,
 * from files read in it, are dropped when read): taking the bit out again
 * would need the directory's current path, which a rename may have
 * changed under the watch. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "io/watch_internal.h"

/* ---- the scan set -------------------------------------------------------- */

static int seen_add(wnode *n, const char *name) {
  if (n->nseen == n->capseen) {
    size_t cap = n->capseen ? n->capseen * 2 : 16;
    char **p = weft__realloc(n->seen, cap * sizeof *p);
    if (p == NULL) return -ENOMEM;
    n->seen = p;
    n->capseen = cap;
  }
  char *c = weft__strdup(name);
  if (c == NULL) return -ENOMEM;
  n->seen[n->nseen++] = c;
  return 0;
}

bool weft__watch_seen(wnode *n, const char *name, bool take) {
  for (size_t i = 0; i < n->nseen; i++) {
    if (strcmp(n->seen[i], name) != 0) continue;
    weft__free(n->seen[i]);
    n->seen[i] = n->seen[--n->nseen];
    return take;
  }
  return false;
}

void weft__watch_seen_clear(wnode *n) {
  for (size_t i = 0; i < n->nseen; i++)
    weft__free(n->seen[i]);
  weft__free(n->seen);
  n->seen = NULL;
  n->nseen = n->capseen = 0;
  n->skip = 0;
}

/* ---- reading a directory ------------------------------------------------- */

typedef struct entry {
  char *name;
  bool dir;
} entry;

typedef struct listing {
  entry *e;
  size_t n, cap;
} listing;

static void listing_free(listing *l) {
  for (size_t i = 0; i < l->n; i++)
    weft__free(l->e[i].name);
  weft__free(l->e);
}

static bool is_dir(DIR *d, const struct dirent *de) {
  if (de->d_type != DT_UNKNOWN) return de->d_type == DT_DIR;
  struct stat st;
  return fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
         S_ISDIR(st.st_mode);
}

static int listing_add(listing *l, const char *name, bool dir) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    entry *p = weft__realloc(l->e, cap * sizeof *p);
    if (p == NULL) return -ENOMEM;
    l->e = p;
    l->cap = cap;
  }
  if ((l->e[l->n].name = weft__strdup(name)) == NULL) return -ENOMEM;
  l->e[l->n++].dir = dir;
  return 0;
}

/* Reads `path` into *l (the entries, or only the directories), adding
 * each name to n's scan set when `n` is given. */
static int read_dir(const char *path, bool dirs_only, wnode *n, listing *l) {
  *l = (listing){0};
  DIR *d = opendir(path);
  if (d == NULL) return -errno;
  int err = 0;
  struct dirent *de;
  while (err == 0 && (de = readdir(d)) != NULL) {
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
      continue;
    bool dir = is_dir(d, de);
    if (dirs_only && !dir) continue;
    err = listing_add(l, nm, dir);
    if (err == 0 && n != NULL) err = seen_add(n, nm);
  }
  closedir(d); /* with `n`: the marker (see above) */
  if (err != 0) listing_free(l);
  return err;
}

/* root "/" rel, on the heap (the state's scratch names are not kept). */
static char *full_path(const weft_watch *w, const char *rel) {
  size_t a = strlen(w->path), b = strlen(rel);
  char *p = weft__malloc(a + b + 2);
  if (p == NULL) return NULL;
  memcpy(p, w->path, a);
  if (b > 0) p[a++] = '/';
  memcpy(p + a, rel, b + 1);
  return p;
}

static char *join_heap(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *p = weft__malloc(la + lb + 2);
  if (p == NULL) return NULL;
  memcpy(p, a, la);
  if (la > 0) p[la++] = '/';
  memcpy(p + la, b, lb + 1);
  return p;
}

/* A directory that went away before it could be read is no error. */
static bool vanished(int err) {
  return err == -ENOENT || err == -ENOTDIR || err == -ELOOP;
}

/* ---- the walk at start --------------------------------------------------- */

int weft__watch_tree_walk(watch_state *s, weft_watch *w, const char *rel) {
  char *path = full_path(w, rel);
  if (path == NULL) return -ENOMEM;
  listing l;
  int err = read_dir(path, true, NULL, &l);
  weft__free(path);
  if (err != 0) return vanished(err) || err == -EACCES ? 0 : err;
  for (size_t i = 0; err == 0 && i < l.n; i++) {
    char *crel = join_heap(rel, l.e[i].name);
    char *cpath = crel ? full_path(w, crel) : NULL;
    wnode *n = NULL;
    err = cpath ? weft__watch_add(s, w, cpath, crel, 0, true, &n) : -ENOMEM;
    if (vanished(err) || err == -EACCES)
      err = 0;
    else if (err == 0 && n != NULL)
      err = weft__watch_tree_walk(s, w, crel);
    weft__free(cpath);
    weft__free(crel);
  }
  listing_free(&l);
  return err;
}

/* ---- a new directory ----------------------------------------------------- */

static void report_error(watch_state *s, weft_watch *w, int err,
                         const char *rel) {
  if (!vanished(err)) weft__watch_deliver(s, w, err, 0, true, rel, NULL);
}

/* Reports what the read of n's directory found, and goes down. */
static void report_listing(watch_state *s, weft_watch *w, const char *rel,
                           const listing *l) {
  for (size_t i = 0; i < l->n && weft__watch_live(w); i++) {
    char *crel = join_heap(rel, l->e[i].name);
    if (crel == NULL) {
      report_error(s, w, -ENOMEM, rel);
    } else if (l->e[i].dir) {
      weft__watch_tree_new_dir(s, w, crel, WEFT_WATCH_CREATE);
    } else {
      weft__watch_deliver(s, w, 0, WEFT_WATCH_CREATE, false, crel, NULL);
    }
    weft__free(crel);
  }
}

static void new_dir(watch_state *s, weft_watch *w, const char *rel, int kind) {
  char *path = full_path(w, rel);
  wnode *n = NULL;
  int err = path ? weft__watch_add(s, w, path, rel, IN_CLOSE_NOWRITE, true, &n)
                 : -ENOMEM;
  if (err == 0 && n == NULL) goto out; /* watched already: reported then */
  if (!weft__watch_deliver(s, w, 0, kind, true, rel, NULL)) goto out;
  if (err != 0) {
    report_error(s, w, err, rel);
    goto out;
  }
  listing l;
  err = read_dir(path, false, n, &l);
  if (err != 0) {
    report_error(s, w, err, rel);
    goto out;
  }
  if (!n->dead) n->skip = ++n->ent->markers;
  report_listing(s, w, rel, &l);
  listing_free(&l);
out:
  weft__free(path);
}

void weft__watch_tree_new_dir(watch_state *s, weft_watch *w, const char *rel,
                              int kind) {
  char *copy = weft__strdup(rel); /* `rel` may be a scratch name */
  if (copy == NULL) {
    weft__watch_deliver(s, w, -ENOMEM, 0, true, "", NULL);
    return;
  }
  new_dir(s, w, copy, kind);
  weft__free(copy);
}

/* ---- moves and removals -------------------------------------------------- */

/* rel is `prefix` or below it */
static bool under(const char *rel, const char *prefix, size_t len) {
  return strncmp(rel, prefix, len) == 0 &&
         (rel[len] == '\0' || rel[len] == '/');
}

void weft__watch_tree_drop(watch_state *s, weft_watch *w, const char *rel) {
  size_t len = strlen(rel);
  WEFT__LIST_FOREACH_SAFE(it, next, &w->nodes) {
    wnode *n = WEFT__CONTAINER_OF(it, wnode, own_link);
    if (!n->is_root && under(n->rel, rel, len)) weft__watch_node_drop(s, n);
  }
}

int weft__watch_tree_rename(watch_state *s, weft_watch *w, const char *from,
                            const char *to) {
  WEFT__UNUSED(s);
  size_t lf = strlen(from), lt = strlen(to);
  WEFT__LIST_FOREACH(it, &w->nodes) {
    wnode *n = WEFT__CONTAINER_OF(it, wnode, own_link);
    if (n->is_root || !under(n->rel, from, lf)) continue;
    size_t rest = strlen(n->rel + lf);
    char *p = weft__malloc(lt + rest + 1);
    if (p == NULL) return -ENOMEM;
    memcpy(p, to, lt);
    memcpy(p + lt, n->rel + lf, rest + 1);
    weft__free(n->rel);
    n->rel = p;
  }
  return 0;
}
