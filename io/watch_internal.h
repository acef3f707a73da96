/* weft — inotify watches, inside: what io/watch.c (the loop's inotify fd,
 * its watch descriptors, reading and dispatching events) shares with
 * io/watch_tree.c (the directories of a watch: adding, scanning, moving
 * and dropping them). Never installed. */
#ifndef WEFT_IO_WATCH_INTERNAL_H
#define WEFT_IO_WATCH_INTERNAL_H

#include <stdint.h>

#include "core/internal.h"
#include "weft/watch.h"

/* One kernel watch descriptor of the loop's inotify fd, and the nodes
 * (directories of watches, or a watched file) that it stands for: several
 * when watches share an inode. An entry whose last node goes is removed
 * from the kernel and the table; while events are being dispatched it is
 * only marked dead and freed after the batch (nodes are too), so a
 * callback that stops watches never frees what the dispatch walks. */
typedef struct wd_ent {
  int wd;
  struct wd_ent *hnext; /* the table's chain */
  weft__list nodes;     /* wnode.wd_link */
  weft__list grave;     /* on the state's dead list */
  unsigned markers;     /* scan markers (our closedir) still in the queue */
  bool dead;
} wd_ent;

/* One directory (or the watched file) of one watch. */
typedef struct wnode {
  weft_watch *owner;
  wd_ent *ent;
  weft__list wd_link;  /* ent->nodes */
  weft__list own_link; /* owner->nodes */
  weft__list grave;
  char *rel;     /* relative to the root; "" for the root */
  uint64_t born; /* the state's event sequence number when it was made */
  unsigned skip; /* markers to see before `seen` is dropped */
  char **seen;   /* names the scan reported (dropped at the marker) */
  size_t nseen, capseen;
  bool is_root, dead;
} wnode;

/* The loop's inotify state (module slot WEFT__MOD_WATCH). */
typedef struct watch_state {
  weft_loop *loop;
  int fd; /* -1 when no watch is started */
  ev_io io;
  wd_ent **tab;
  size_t tab_size, nents;
  weft__list started; /* weft_watch.started */
  unsigned depth;     /* > 0 while events are being dispatched */
  uint64_t seq;       /* events dispatched so far */
  weft__list dead_nodes, dead_ents;
  char *buf; /* read buffer */
  char *name[2];
  size_t namecap[2];
  /* a MOVED_FROM waiting for its MOVED_TO */
  bool move_pending;
  bool move_isdir;
  uint32_t move_cookie;
  int move_wd;
  char *move_name;
  ev_timer move_timer;
} watch_state;

/* The mask every kernel watch is added with (one mask per inode, shared). */
#define WATCH_KMASK                                                            \
  (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM |             \
   IN_MOVED_TO | IN_DELETE_SELF)

/* io/watch.c */
/* Adds a kernel watch on `path` (extra: more IN_* bits, e.g. the scan
 * marker's) and a node for `owner` at `rel`; *out is NULL (and 0 returned)
 * when `owner` already has a node at `rel` on that inode. */
int weft__watch_add(watch_state *s, weft_watch *owner, const char *path,
                    const char *rel, uint32_t extra, bool onlydir, wnode **out);
void weft__watch_node_drop(watch_state *s, wnode *n);
/* Delivers one event to `w` (callback, then the futures it had). Returns
 * false if `w` stopped meanwhile (callers stop walking). */
bool weft__watch_deliver(watch_state *s, weft_watch *w, int status, int kind,
                         bool is_dir, const char *name, const char *name2);
bool weft__watch_live(const weft_watch *w);
/* `a` "/" `b` in the state's scratch buffer `i`; when either is "", the
 * other itself (no copy: valid as long as that string). */
const char *weft__watch_join(watch_state *s, int i, const char *a,
                             const char *b);

/* io/watch_tree.c */
/* Watches every directory under n (already watched), reporting nothing. */
int weft__watch_tree_walk(watch_state *s, weft_watch *w, const char *rel);
/* A directory `rel` appeared in w's tree (created or moved in: `kind`):
 * watch it, report it and what is already in it (as CREATE events),
 * recursively. Nothing is reported if w already watches it. */
void weft__watch_tree_new_dir(watch_state *s, weft_watch *w, const char *rel,
                              int kind);
/* Drops w's nodes at `rel` and below (moved out of the tree). */
void weft__watch_tree_drop(watch_state *s, weft_watch *w, const char *rel);
/* w's nodes at `from` and below are now at `to`. Returns 0 or -ENOMEM. */
int weft__watch_tree_rename(watch_state *s, weft_watch *w, const char *from,
                            const char *to);
/* The scan set: true if `name` was reported by n's scan and this real
 * event must be dropped (`take`: CREATE/MOVED_IN, removes it), or just
 * forgets it (DELETE/MOVED_OUT). */
bool weft__watch_seen(wnode *n, const char *name, bool take);
void weft__watch_seen_clear(wnode *n);

#endif /* WEFT_IO_WATCH_INTERNAL_H */
