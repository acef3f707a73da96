/* weft — inotify watches: the loop's one inotify fd (opened by the first
 * started watch, closed with the last), its table of watch descriptors,
 * reading the fd and dispatching each event to the nodes (directories of
 * watches) of its descriptor, rename pairing, overflow, and the handle.
 * The directories of recursive watches are io/watch_tree.c's.
 *
 * Dispatch never frees: while a batch is dispatched (depth > 0), a node or
 * descriptor that a callback's stop or close removes is only marked dead
 * (and taken out of the table and the kernel at once); the sweep after the
 * batch frees them. A node made during the batch is born at the current
 * event's sequence number and sees only the events after it. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/watch_internal.h"
#include "weft/future.h"

#define READ_BUF (64 * 1024)
/* What one turn reads before the loop's other handles get theirs: 16 full
 * buffers (16k-64k events). Bytes, not reads, are counted: events that
 * trickle in as fast as they are read make many short reads of little
 * work each, which need no loop turn between them. */
#define BYTES_PER_TURN (16 * READ_BUF)
/* How long a MOVED_FROM left at the end of what was read waits for its
 * MOVED_TO before it is reported as MOVED_OUT. */
#define MOVE_WAIT_S 0.005
#define ROOT_IS_DIR (1u << 31) /* in weft_watch.flags */

/* ---- the state --------------------------------------------------------- */

static void state_teardown(weft_loop *loop, void *arg);

static watch_state *state_get(weft_loop *loop) {
  watch_state *s = weft__module_get(loop, WEFT__MOD_WATCH);
  if (s != NULL) return s;
  s = weft__calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->loop = loop;
  s->fd = -1;
  weft__list_init(&s->started);
  weft__list_init(&s->dead_nodes);
  weft__list_init(&s->dead_ents);
  weft__module_set(loop, WEFT__MOD_WATCH, s, state_teardown);
  return s;
}

static wd_ent *ent_find(const watch_state *s, int wd) {
  if (s->tab_size == 0) return NULL;
  wd_ent *e = s->tab[(unsigned)wd & (s->tab_size - 1)];
  while (e != NULL && e->wd != wd)
    e = e->hnext;
  return e;
}

static int tab_grow(watch_state *s) {
  size_t n = s->tab_size ? s->tab_size * 2 : 64;
  wd_ent **t = weft__calloc(n, sizeof *t);
  if (t == NULL) return -ENOMEM;
  for (size_t i = 0; i < s->tab_size; i++) {
    wd_ent *e = s->tab[i], *next;
    for (; e != NULL; e = next) {
      next = e->hnext;
      e->hnext = t[(unsigned)e->wd & (n - 1)];
      t[(unsigned)e->wd & (n - 1)] = e;
    }
  }
  weft__free(s->tab);
  s->tab = t;
  s->tab_size = n;
  return 0;
}

static wd_ent *ent_new(watch_state *s, int wd) {
  if (s->nents >= s->tab_size && tab_grow(s) != 0) return NULL;
  wd_ent *e = weft__calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->wd = wd;
  weft__list_init(&e->nodes);
  weft__list_init(&e->grave);
  wd_ent **slot = &s->tab[(unsigned)wd & (s->tab_size - 1)];
  e->hnext = *slot;
  *slot = e;
  s->nents++;
  return e;
}

/* Takes `e` out of the table (it is then dead). */
static void ent_unhash(watch_state *s, wd_ent *e) {
  wd_ent **p = &s->tab[(unsigned)e->wd & (s->tab_size - 1)];
  while (*p != e)
    p = &(*p)->hnext;
  *p = e->hnext;
  s->nents--;
  e->dead = true;
}

static void node_free(wnode *n) {
  weft__watch_seen_clear(n);
  weft__free(n->rel);
  weft__free(n);
}

/* Frees what dispatch left dead. */
static void sweep(watch_state *s) {
  weft__list *it;
  while ((it = weft__list_pop_front(&s->dead_nodes)) != NULL) {
    wnode *n = WEFT__CONTAINER_OF(it, wnode, grave);
    weft__list_unlink(&n->wd_link);
    node_free(n);
  }
  while ((it = weft__list_pop_front(&s->dead_ents)) != NULL)
    weft__free(WEFT__CONTAINER_OF(it, wd_ent, grave));
}

static void move_clear(watch_state *s) {
  s->move_pending = false;
  WEFT__EV_STOP(timer, s->loop, &s->move_timer);
}

static void on_io(struct ev_loop *ev, ev_io *io, int revents);
static void on_move_timer(struct ev_loop *ev, ev_timer *t, int revents);

static int fd_open(watch_state *s) {
  if (s->fd >= 0) return 0;
  if (s->buf == NULL && (s->buf = weft__malloc(READ_BUF)) == NULL)
    return -ENOMEM;
  if (s->move_name == NULL &&
      (s->move_name = weft__malloc(NAME_MAX + 1)) == NULL)
    return -ENOMEM;
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return -errno;
  s->fd = fd;
  ev_io_init(&s->io, on_io, fd, EV_READ);
  s->io.data = s;
  ev_timer_init(&s->move_timer, on_move_timer, MOVE_WAIT_S, 0.);
  s->move_timer.data = s;
  weft__io_start(s->loop, &s->io);
  return 0;
}

/* Closes the fd once no watch is started (never during a dispatch). */
static void fd_close_if_idle(watch_state *s) {
  if (s->fd < 0 || s->depth > 0 || !weft__list_empty(&s->started)) return;
  weft__io_stop(s->loop, &s->io);
  move_clear(s);
  close(s->fd);
  s->fd = -1;
}

static void state_teardown(weft_loop *loop, void *arg) {
  WEFT__UNUSED(loop);
  watch_state *s = arg;
  fd_close_if_idle(s);
  sweep(s);
  weft__free(s->tab);
  weft__free(s->buf);
  weft__free(s->name[0]);
  weft__free(s->name[1]);
  weft__free(s->move_name);
  weft__free(s);
}

/* ---- nodes --------------------------------------------------------------- */

static bool ent_has_live(const wd_ent *e) {
  WEFT__LIST_FOREACH(it, &e->nodes) {
    if (!WEFT__CONTAINER_OF(it, wnode, wd_link)->dead) return true;
  }
  return false;
}

static wnode *node_of(wd_ent *e, const weft_watch *owner, const char *rel) {
  WEFT__LIST_FOREACH(it, &e->nodes) {
    wnode *n = WEFT__CONTAINER_OF(it, wnode, wd_link);
    if (!n->dead && n->owner == owner && strcmp(n->rel, rel) == 0) return n;
  }
  return NULL;
}

static void ent_release(watch_state *s, wd_ent *e) {
  if (e->dead || ent_has_live(e)) return;
  inotify_rm_watch(s->fd, e->wd); /* fails harmlessly if the kernel did */
  ent_unhash(s, e);
  if (s->depth > 0)
    weft__list_insert(&s->dead_ents, &e->grave);
  else if (weft__list_empty(&e->nodes))
    weft__free(e);
}

void weft__watch_node_drop(watch_state *s, wnode *n) {
  if (n->dead) return;
  n->dead = true;
  weft__list_unlink(&n->own_link);
  wd_ent *e = n->ent;
  if (s->depth > 0) {
    weft__list_insert(&s->dead_nodes, &n->grave);
  } else {
    weft__list_unlink(&n->wd_link);
    node_free(n);
  }
  ent_release(s, e);
}

int weft__watch_add(watch_state *s, weft_watch *owner, const char *path,
                    const char *rel, uint32_t extra, bool onlydir,
                    wnode **out) {
  *out = NULL;
  uint32_t mask =
      WATCH_KMASK | extra | IN_MASK_ADD | (onlydir ? IN_ONLYDIR : 0);
  int wd = inotify_add_watch(s->fd, path, mask);
  if (wd < 0) return -errno;
  wd_ent *e = ent_find(s, wd);
  bool fresh = e == NULL;
  if (!fresh && node_of(e, owner, rel) != NULL) return 0;
  wnode *n = NULL;
  if (fresh) e = ent_new(s, wd);
  if (e != NULL) n = weft__calloc(1, sizeof *n);
  if (n != NULL && (n->rel = weft__strdup(rel)) == NULL) {
    weft__free(n);
    n = NULL;
  }
  if (n == NULL) {
    if (e != NULL)
      ent_release(s, e);
    else
      inotify_rm_watch(s->fd, wd);
    return -ENOMEM;
  }
  n->owner = owner;
  n->ent = e;
  n->born = s->seq;
  weft__list_init(&n->grave);
  weft__list_push_back(&e->nodes, &n->wd_link);
  weft__list_push_back(&owner->nodes, &n->own_link);
  *out = n;
  return 0;
}

const char *weft__watch_join(watch_state *s, int i, const char *a,
                             const char *b) {
  /* an entry of the root, or a directory itself: nothing to join (every
   * name given lives until the batch ends: the read buffer, move_name, a
   * node's rel) */
  if (*a == '\0') return b;
  if (*b == '\0') return a;
  size_t la = strlen(a), lb = strlen(b), need = la + lb + 2;
  if (need > s->namecap[i]) {
    size_t cap = need < 256 ? 256 : need * 2;
    char *p = weft__realloc(s->name[i], cap);
    if (p == NULL) return NULL;
    s->name[i] = p;
    s->namecap[i] = cap;
  }
  char *p = s->name[i];
  memcpy(p, a, la);
  if (la > 0 && lb > 0) p[la++] = '/';
  memcpy(p + la, b, lb + 1);
  return p;
}

/* ---- delivery ------------------------------------------------------------ */

typedef struct watch_req {
  weft_future *f;
  weft__list node;
  weft_loop *loop;
} watch_req;

static void req_free(watch_req *r) {
  weft__list_unlink(&r->node);
  weft__req_done(r->loop);
  weft_future_unref(r->f);
  weft__free(r);
}

static void req_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  req_free(arg);
}

/* A copy of `ev` in one block, for a future to own. */
static weft_watch_event *event_copy(const weft_watch_event *ev) {
  size_t l1 = strlen(ev->name) + 1, l2 = ev->name2 ? strlen(ev->name2) + 1 : 0;
  weft_watch_event *c = weft__malloc(sizeof *c + l1 + l2);
  if (c == NULL) return NULL;
  char *p = (char *)(c + 1);
  *c = *ev;
  c->name = memcpy(p, ev->name, l1);
  c->name2 = ev->name2 ? memcpy(p + l1, ev->name2, l2) : NULL;
  return c;
}

static void fulfil(weft__list *reqs, const weft_watch_event *ev) {
  weft__list *it;
  while ((it = weft__list_front(reqs)) != NULL) {
    watch_req *r = WEFT__CONTAINER_OF(it, watch_req, node);
    weft_watch_event *c = event_copy(ev);
    if (c != NULL)
      weft_future_resolve(r->f, c, weft__free);
    else
      weft_future_reject(r->f, -ENOMEM);
    req_free(r);
  }
}

static void reject_all(weft__list *reqs, int err) {
  weft__list *it;
  while ((it = weft__list_front(reqs)) != NULL) {
    watch_req *r = WEFT__CONTAINER_OF(it, watch_req, node);
    weft_future_reject(r->f, err);
    req_free(r);
  }
}

bool weft__watch_live(const weft_watch *w) {
  return weft__list_linked(&w->started) && weft__handle_usable(&w->base);
}

bool weft__watch_deliver(watch_state *s, weft_watch *w, int status, int kind,
                         bool is_dir, const char *name, const char *name2) {
  WEFT__UNUSED(s);
  if (!weft__watch_live(w)) return false;
  if (status == 0 &&
      !(kind & (w->events | WEFT_WATCH_OVERFLOW | WEFT_WATCH_GONE)))
    return true;
  if (name == NULL) { /* a name did not fit in memory */
    status = -ENOMEM;
    kind = 0;
    name = "";
    name2 = NULL;
  }
  weft_watch_event ev = {kind, is_dir, name, name2};
  weft__list reqs;
  weft__list_init(&reqs);
  if (status == 0) weft__list_splice_back(&reqs, &w->futures);
  w->cb(w, status, &ev, w->arg);
  fulfil(&reqs, &ev);
  return weft__watch_live(w);
}

/* ---- stopping ------------------------------------------------------------ */

static void watch_stop(watch_state *s, weft_watch *w, bool reject) {
  if (weft__list_linked(&w->started)) weft__list_unlink(&w->started);
  weft__list *it;
  while ((it = weft__list_front(&w->nodes)) != NULL)
    weft__watch_node_drop(s, WEFT__CONTAINER_OF(it, wnode, own_link));
  if (reject) reject_all(&w->futures, -ECANCELED);
  weft__free(w->path);
  w->path = NULL;
  weft__handle_stop(&w->base);
  fd_close_if_idle(s);
}

/* n (a root) is gone: report it, and stop its watch unless the callback
 * already stopped it (or stopped and restarted it: n is then dead). */
static void gone(watch_state *s, wnode *n) {
  weft_watch *w = n->owner;
  weft__watch_deliver(s, w, 0, WEFT_WATCH_GONE, (w->flags & ROOT_IS_DIR) != 0,
                      "", NULL);
  if (!n->dead) watch_stop(s, w, true);
}

/* ---- dispatch ------------------------------------------------------------ */

#define NODES_OF(e, n)                                                         \
  WEFT__LIST_FOREACH(it_, &(e)->nodes)                                         \
  for (wnode *n = WEFT__CONTAINER_OF(it_, wnode, wd_link); n != NULL; n = NULL)

static bool visible(const watch_state *s, const wnode *n) {
  return !n->dead && n->born < s->seq;
}

static bool recursive(const weft_watch *w) {
  return (w->flags & WEFT_WATCH_RECURSIVE) != 0;
}

/* An entry moved out of n's directory, unpaired. */
static void moved_out(watch_state *s, wnode *n, const char *name, bool dir) {
  weft__watch_seen(n, name, false);
  const char *rel = weft__watch_join(s, 0, n->rel, name);
  if (dir && rel != NULL && recursive(n->owner))
    weft__watch_tree_drop(s, n->owner, rel);
  weft__watch_deliver(s, n->owner, 0, WEFT_WATCH_MOVED_OUT, dir, rel, NULL);
}

/* An entry created in (CREATE) or moved into (MOVED_IN) n's directory. */
static void arrived(watch_state *s, wnode *n, int kind, const char *name,
                    bool dir) {
  if (n->skip > 0 && weft__watch_seen(n, name, true)) return; /* scanned */
  const char *rel = weft__watch_join(s, 0, n->rel, name);
  if (dir && rel != NULL && recursive(n->owner))
    weft__watch_tree_new_dir(s, n->owner, rel, kind);
  else
    weft__watch_deliver(s, n->owner, 0, kind, dir, rel, NULL);
}

static void flush_move(watch_state *s) {
  if (!s->move_pending) return;
  move_clear(s);
  wd_ent *e = ent_find(s, s->move_wd);
  if (e == NULL) return;
  NODES_OF(e, n) {
    if (visible(s, n)) moved_out(s, n, s->move_name, s->move_isdir);
  }
}

static wnode *node_of_owner(wd_ent *e, const weft_watch *w) {
  if (e == NULL) return NULL;
  WEFT__LIST_FOREACH(it, &e->nodes) {
    wnode *n = WEFT__CONTAINER_OF(it, wnode, wd_link);
    if (!n->dead && n->owner == w) return n;
  }
  return NULL;
}

/* One rename seen from both sides: for each watch that sees both, one MOVE
 * event; for the others, the half they see. */
static void pair(watch_state *s, wd_ent *to, const char *to_name) {
  move_clear(s);
  wd_ent *from = ent_find(s, s->move_wd);
  bool dir = s->move_isdir;
  if (from != NULL) {
    NODES_OF(from, fn) {
      if (!visible(s, fn)) continue;
      wnode *tn = node_of_owner(to, fn->owner);
      if (tn == NULL || !visible(s, tn)) {
        moved_out(s, fn, s->move_name, dir);
        continue;
      }
      weft__watch_seen(fn, s->move_name, false);
      weft__watch_seen(tn, to_name, false);
      const char *a = weft__watch_join(s, 0, fn->rel, s->move_name);
      const char *b = weft__watch_join(s, 1, tn->rel, to_name);
      if (dir && a != NULL && b != NULL && recursive(fn->owner))
        weft__watch_tree_rename(s, fn->owner, a, b);
      weft__watch_deliver(s, fn->owner, 0, WEFT_WATCH_MOVE, dir, b ? a : NULL,
                          b);
    }
  }
  NODES_OF(to, tn) {
    wnode *fn = node_of_owner(from, tn->owner);
    if (visible(s, tn) && (fn == NULL || !visible(s, fn)))
      arrived(s, tn, WEFT_WATCH_MOVED_IN, to_name, dir);
  }
}

static void marker(wd_ent *e) {
  if (e->markers > 0) e->markers--;
  NODES_OF(e, n) {
    if (n->skip > 0 && --n->skip == 0) weft__watch_seen_clear(n);
  }
}

static void ignored(watch_state *s, wd_ent *e) {
  NODES_OF(e, n) {
    if (n->dead) continue;
    if (n->is_root)
      gone(s, n);
    else
      weft__watch_node_drop(s, n);
  }
}

static void overflow(watch_state *s) {
  flush_move(s);
  /* each started watch once, even if callbacks start and stop watches */
  for (;;) {
    weft_watch *w = NULL;
    WEFT__LIST_FOREACH(it, &s->started) {
      weft_watch *c = WEFT__CONTAINER_OF(it, weft_watch, started);
      if (c->mark != s->seq) {
        w = c;
        break;
      }
    }
    if (w == NULL) return;
    w->mark = s->seq;
    weft__watch_deliver(s, w, 0, WEFT_WATCH_OVERFLOW, false, "", NULL);
  }
}

static int kind_of(uint32_t mask) {
  if (mask & IN_CREATE) return WEFT_WATCH_CREATE;
  if (mask & IN_DELETE) return WEFT_WATCH_DELETE;
  if (mask & IN_MODIFY) return WEFT_WATCH_MODIFY;
  if (mask & IN_ATTRIB) return WEFT_WATCH_ATTRIB;
  return 0;
}

/* A plain event (create, delete, modify, attrib) for every node. */
static void plain(watch_state *s, wd_ent *e, uint32_t mask, const char *name) {
  int kind = kind_of(mask);
  bool dir = (mask & IN_ISDIR) != 0;
  if (kind == 0) return;
  NODES_OF(e, n) {
    if (!visible(s, n)) continue;
    if (kind == WEFT_WATCH_CREATE) {
      arrived(s, n, kind, name, dir);
      continue;
    }
    if (kind == WEFT_WATCH_DELETE) weft__watch_seen(n, name, false);
    const char *rel = weft__watch_join(s, 0, n->rel, name);
    weft__watch_deliver(s, n->owner, 0, kind, dir, rel, NULL);
  }
}

static void self_deleted(watch_state *s, wd_ent *e) {
  NODES_OF(e, n) {
    if (!n->dead && n->is_root) gone(s, n);
  }
}

static void dispatch(watch_state *s, const struct inotify_event *ev) {
  s->seq++;
  uint32_t m = ev->mask;
  const char *name = ev->len > 0 ? ev->name : "";
  if (m & IN_Q_OVERFLOW) {
    overflow(s);
    return;
  }
  wd_ent *e = ent_find(s, ev->wd);
  if (e == NULL) return; /* removed: what was still queued for it */
  if (m & IN_CLOSE_NOWRITE) {
    if (ev->len == 0) marker(e);
    return;
  }
  if (s->move_pending && (m & IN_MOVED_TO) && ev->cookie == s->move_cookie) {
    pair(s, e, name);
    return;
  }
  flush_move(s);
  if (m & IN_MOVED_FROM) {
    s->move_pending = true;
    s->move_isdir = (m & IN_ISDIR) != 0;
    s->move_cookie = ev->cookie;
    s->move_wd = ev->wd;
    memcpy(s->move_name, name, strlen(name) + 1);
  } else if (m & IN_MOVED_TO) {
    NODES_OF(e, n) {
      if (visible(s, n))
        arrived(s, n, WEFT_WATCH_MOVED_IN, name, (m & IN_ISDIR) != 0);
    }
  } else if (m & IN_IGNORED) {
    ignored(s, e);
  } else if (m & IN_DELETE_SELF) {
    self_deleted(s, e);
  } else {
    plain(s, e, m, name);
  }
}

static void parse(watch_state *s, const char *buf, ssize_t n) {
  const char *p = buf;
  while (p < buf + n) {
    const struct inotify_event *ev = (const void *)p;
    dispatch(s, ev);
    p += sizeof *ev + ev->len;
  }
}

static void batch_end(watch_state *s) {
  if (--s->depth > 0) return;
  sweep(s);
  if (s->move_pending && s->fd >= 0)
    WEFT__EV_START(timer, s->loop, &s->move_timer);
  fd_close_if_idle(s);
}

static void on_io(struct ev_loop *ev, ev_io *io, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  watch_state *s = io->data;
  s->depth++;
  for (size_t got = 0; got < BYTES_PER_TURN && s->fd >= 0;) {
    ssize_t n = read(s->fd, s->buf, READ_BUF);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    parse(s, s->buf, n);
  }
  batch_end(s);
}

static void on_move_timer(struct ev_loop *ev, ev_timer *t, int revents) {
  WEFT__UNUSED(revents);
  weft__ev_fired(ev);
  watch_state *s = t->data;
  s->depth++;
  s->seq++;
  flush_move(s);
  batch_end(s);
}

/* ---- the handle ---------------------------------------------------------- */

static void watch_close(weft_handle *h) {
  weft_watch *w = (weft_watch *)(void *)h;
  watch_state *s = weft__module_get(h->loop, WEFT__MOD_WATCH);
  if (s != NULL) watch_stop(s, w, false);
}

static void watch_finish(weft_handle *h) {
  weft_watch *w = (weft_watch *)(void *)h;
  reject_all(&w->futures, -ECANCELED);
}

static const weft__handle_ops watch_ops = {WEFT_HANDLE_WATCH, watch_close,
                                           watch_finish, NULL};

static bool is_watch(const weft_watch *w) {
  return w != NULL && w->base.ops == &watch_ops;
}

int weft_watch_init(weft_loop *loop, weft_watch *w) {
  if (loop == NULL || w == NULL) return -EINVAL;
  weft__handle_init(loop, &w->base, &watch_ops);
  w->cb = NULL;
  w->arg = NULL;
  w->path = NULL;
  w->events = 0;
  w->flags = 0;
  w->mark = 0;
  weft__list_init(&w->nodes);
  weft__list_init(&w->futures);
  weft__list_init(&w->started);
  return 0;
}

static int start_nodes(watch_state *s, weft_watch *w) {
  struct stat st;
  if (stat(w->path, &st) == 0 && S_ISDIR(st.st_mode)) w->flags |= ROOT_IS_DIR;
  wnode *n;
  int err = weft__watch_add(s, w, w->path, "", 0, recursive(w), &n);
  if (err != 0) return err;
  n->is_root = true;
  return recursive(w) ? weft__watch_tree_walk(s, w, "") : 0;
}

int weft_watch_start(weft_watch *w, const char *path, int events,
                     unsigned flags, weft_watch_cb cb, void *arg) {
  if (!is_watch(w) || path == NULL || *path == '\0' || cb == NULL ||
      !weft__handle_usable(&w->base) || (events & ~WEFT_WATCH_ALL) != 0 ||
      (flags & ~WEFT_WATCH_RECURSIVE) != 0)
    return -EINVAL;
  if (weft__list_linked(&w->started)) return -EBUSY;
  watch_state *s = state_get(w->base.loop);
  if (s == NULL) return -ENOMEM;
  if ((w->path = weft__strdup(path)) == NULL) return -ENOMEM;
  w->events = events ? events : WEFT_WATCH_ALL;
  w->flags = flags;
  w->cb = cb;
  w->arg = arg;
  int err = fd_open(s);
  if (err == 0) err = start_nodes(s, w);
  if (err != 0) {
    watch_stop(s, w, false);
    return err;
  }
  weft__list_push_back(&s->started, &w->started);
  weft__handle_start(&w->base);
  return 0;
}

int weft_watch_stop(weft_watch *w) {
  if (!is_watch(w)) return -EINVAL;
  watch_state *s = weft__module_get(w->base.loop, WEFT__MOD_WATCH);
  if (s != NULL && weft__list_linked(&w->started)) watch_stop(s, w, true);
  return 0;
}

const char *weft_watch_get_path(const weft_watch *w) {
  return is_watch(w) ? w->path : NULL;
}

int weft_watch_future(weft_watch *w, weft_future **out) {
  if (!is_watch(w) || out == NULL || !weft__watch_live(w)) return -EINVAL;
  watch_req *r = weft__malloc(sizeof *r);
  if (r == NULL) return -ENOMEM;
  int err = weft_future_new_op(w->base.loop, "weft_watch_future", &r->f);
  if (err != 0) {
    weft__free(r);
    return err;
  }
  r->loop = w->base.loop;
  weft__list_init(&r->node);
  weft__list_insert(&w->futures, &r->node);
  weft__req_start(r->loop);
  weft_future_on_cancel(r->f, req_cancel, r);
  *out = weft_future_ref(r->f);
  return 0;
}
