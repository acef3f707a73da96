/* weft — watching files and directories: inotify watches (libuv's
 * uv_fs_event, plus recursive trees) and stat-polling watches (libuv's
 * uv_fs_poll) for file systems where inotify sees nothing (NFS, SMB, FUSE
 * mounts changed from elsewhere).
 *
 * inotify watches. A loop has one inotify fd, shared by every watch of
 * the loop: made by the first weft_watch_start() and closed when the last
 * started watch stops or closes, so a loop without started watches holds
 * no inotify fd. Two watches of one loop on the same file or directory
 * share one kernel watch descriptor; each gets every event it asked for.
 * The kernel watches inodes, not names: a watched directory that is
 * renamed is still watched, and event names stay relative to it.
 *
 * Each event names what changed relative to the watch root ("" for the
 * root itself, "f" for an entry of a watched directory, "a/b/f" in a
 * recursive watch). A rename inside what one watch sees (IN_MOVED_FROM and
 * IN_MOVED_TO with the same cookie) is one WEFT_WATCH_MOVE event with both
 * names; a half without its partner (moved out of, or into, the watched
 * area) is WEFT_WATCH_MOVED_OUT or WEFT_WATCH_MOVED_IN. When the kernel's
 * queue overflowed (/proc/sys/fs/inotify/max_queued_events), events were
 * lost: every started watch of the loop gets one WEFT_WATCH_OVERFLOW event
 * and should rescan what it cares about. When the watch root is deleted
 * or its file system unmounted, the watch gets WEFT_WATCH_GONE and stops.
 *
 * Recursive watches (WEFT_WATCH_RECURSIVE) watch every directory of the
 * tree; directories that appear later (created or moved in) are added as
 * they are reported, and the race between their creation and the new
 * watch is closed by scanning the new directory: what was already in it
 * is reported as WEFT_WATCH_CREATE events (recursively), each entry once.
 *
 * Every call is loop thread only. Callbacks run in the loop's I/O phase. */
#ifndef WEFT_WATCH_H
#define WEFT_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_future weft_future;

/** Event kinds. Each event has exactly one; as a mask (weft_watch_start()'s
 * `events`) they select what is reported. OVERFLOW and GONE are always
 * reported. */
enum weft_watch_kind {
  WEFT_WATCH_CREATE = 1 << 0,    /**< an entry was created (IN_CREATE) */
  WEFT_WATCH_DELETE = 1 << 1,    /**< an entry was deleted (IN_DELETE) */
  WEFT_WATCH_MODIFY = 1 << 2,    /**< a file was written (IN_MODIFY) */
  WEFT_WATCH_ATTRIB = 1 << 3,    /**< metadata changed (IN_ATTRIB) */
  WEFT_WATCH_MOVE = 1 << 4,      /**< renamed: `name` to `name2` */
  WEFT_WATCH_MOVED_OUT = 1 << 5, /**< `name` was moved out of sight */
  WEFT_WATCH_MOVED_IN = 1 << 6,  /**< `name` was moved in from outside */
  WEFT_WATCH_OVERFLOW = 1 << 7,  /**< the kernel dropped events: rescan */
  WEFT_WATCH_GONE = 1 << 8       /**< the root is gone; the watch stopped */
};

/** Every kind a watch can select (the default when `events` is 0). */
#define WEFT_WATCH_ALL                                                         \
  (WEFT_WATCH_CREATE | WEFT_WATCH_DELETE | WEFT_WATCH_MODIFY |                 \
   WEFT_WATCH_ATTRIB | WEFT_WATCH_MOVE | WEFT_WATCH_MOVED_OUT |                \
   WEFT_WATCH_MOVED_IN)

/** Flag for weft_watch_start(): watch the whole tree under a directory. */
#define WEFT_WATCH_RECURSIVE 1u

/** One event. Valid during the callback only (copy what you keep). */
typedef struct weft_watch_event {
  int kind;          /**< one WEFT_WATCH_* kind */
  bool is_dir;       /**< the entry is a directory */
  const char *name;  /**< relative to the watch root; "" is the root itself
                      *   (and OVERFLOW's name) */
  const char *name2; /**< WEFT_WATCH_MOVE: the new name; else NULL */
} weft_watch_event;

typedef struct weft_watch weft_watch;

/** Runs on the loop's thread for each event: `status` 0 and `ev` the event.
 * In a recursive watch a directory that could not be watched is reported
 * with `status` < 0 (-ENOSPC: the per-user watch limit,
 * /proc/sys/fs/inotify/max_user_watches; -EACCES; -ENOMEM; ...) and
 * `ev->name` that directory (kind 0); the watch goes on without that
 * subtree. The callback may stop or close any watch, this one included. */
typedef void (*weft_watch_cb)(weft_watch *w, int status,
                              const weft_watch_event *ev, void *arg);

/** An inotify watch. Fields after `base` are private. */
struct weft_watch {
  weft_handle base;
  /* private */
  weft_watch_cb cb;
  void *arg;
  char *path; /* the root, as given */
  int events; /* the WEFT_WATCH_* mask */
  unsigned flags;
  uint64_t mark;             /* the overflow broadcast's */
  struct weft__list nodes;   /* this watch's directories (io/watch.c) */
  struct weft__list futures; /* pending weft_watch_future()s */
  struct weft__list started; /* the loop's started watches */
};

/** Initialises `w` on `loop` (stopped; no allocation, no fd). Returns 0 or
 * -EINVAL (NULL). */
WEFT_API int weft_watch_init(weft_loop *loop, weft_watch *w);

/** Starts watching `path` (a file or a directory; copied): `cb(w, status,
 * ev, arg)` runs for each event of a kind in `events` (WEFT_WATCH_* bits;
 * 0: WEFT_WATCH_ALL), and for OVERFLOW and GONE. `flags`: 0 or
 * WEFT_WATCH_RECURSIVE (`path` must then be a directory; every directory
 * under it is watched now, what is in the tree now is not reported). A
 * started, referenced watch keeps the loop alive. Returns 0; -EINVAL (NULL
 * `w`, `path` or `cb`, a handle that is not an initialised watch, a
 * closing one, an empty path, bits outside WEFT_WATCH_ALL in `events`, unknown
 * `flags`); -EBUSY (already started: stop it first); -ENOENT, -EACCES, -ENOTDIR
 * (recursive on a file), ... from the kernel; -ENOSPC (the per-user watch
 * limit, /proc/sys/fs/inotify/max_user_watches, is reached: raise it or
 * watch less); -EMFILE/-ENFILE (no fd for the loop's inotify instance, or
 * the per-user instance limit, max_user_instances); -ENOMEM. On error
 * nothing is left behind: no kernel watch, and no inotify fd if no other
 * watch of the loop is started. */
WEFT_API int weft_watch_start(weft_watch *w, const char *path, int events,
                              unsigned flags, weft_watch_cb cb, void *arg);

/** Stops watching (its kernel watches are removed unless another watch
 * shares them; the loop's inotify fd is closed with the last). Pending
 * futures are rejected with -ECANCELED (through the deferred queue). A
 * no-op when stopped. Returns 0 or -EINVAL (NULL, not a watch). */
WEFT_API int weft_watch_stop(weft_watch *w);

/** The root path given to weft_watch_start(), or NULL (stopped, NULL,
 * not a watch). */
WEFT_API const char *weft_watch_get_path(const weft_watch *w);

/** The next event of a started watch as a future: *out (one reference for
 * the caller) fulfils with a weft_watch_event * the future owns (its names
 * copied; valid while the future is) for the next event the callback gets
 * after this call, `status` 0 ones only: the callback still runs. Several
 * may be pending; each gets the same event. Rejected with -ECANCELED when
 * the watch is stopped or closed (before the close callback). Cancelling
 * it frees what it held. Returns 0; -EINVAL (NULL, not a watch, not
 * started, closing); -ENOMEM. */
WEFT_API int weft_watch_future(weft_watch *w, weft_future **out);

/* ---- stat polling ------------------------------------------------------ */

typedef struct weft_fs_poll weft_fs_poll;

/** Runs on the loop's thread when the stat of the path changed (mtime,
 * ctime, size, inode, mode, owner, link count or device): `status` 0,
 * `prev` the last stat and `curr` the new one. When a stat fails (the
 * file is missing: -ENOENT; -EACCES, ...) `status` is that error, `prev`
 * the last good stat and `curr` zero-filled, once per error (the same error
 * again is not reported); when it succeeds again, `status` 0 with `prev`
 * zero-filled. The first stat after a start is the baseline and reports
 * nothing, unless it fails. The callback may stop or close the handle. */
typedef void (*weft_fs_poll_cb)(weft_fs_poll *p, int status,
                                const struct stat *prev,
                                const struct stat *curr, void *arg);

/** A stat-polling watch. Fields after `base` are private. */
struct weft_fs_poll {
  weft_handle base;
  /* private */
  weft_fs_poll_cb cb;
  void *arg;
  struct weft__fs_poll_run *run; /* the current start's state (io/fs_poll.c) */
  struct weft__list futures;     /* pending weft_fs_poll_future()s */
};

/** What weft_fs_poll_future() fulfils with: one change's two stats. */
typedef struct weft_fs_poll_change {
  struct stat prev; /**< the stat before (zeros after a failed stat) */
  struct stat curr; /**< the stat now */
} weft_fs_poll_change;

/** Initialises `p` on `loop` (stopped). Returns 0 or -EINVAL (NULL). */
WEFT_API int weft_fs_poll_init(weft_loop *loop, weft_fs_poll *p);

/** Starts polling `path` (copied) every `interval_ms` milliseconds (1 ms
 * at least; 0 is taken as 1). Each stat runs on the thread pool's io lane
 * (weft_fs_stat()), so a hung network mount does not block the loop; a
 * stat still running when the next is due delays it (never two at once).
 * The first stat starts at once. Returns 0; -EINVAL (NULL `p`, `path` or
 * `cb`, not an initialised fs_poll handle, closing, empty path); -EBUSY
 * (started: stop it first); -ENOMEM; the errors of weft_fs_stat(). */
WEFT_API int weft_fs_poll_start(weft_fs_poll *p, const char *path,
                                uint64_t interval_ms, weft_fs_poll_cb cb,
                                void *arg);

/** Stops polling; a stat in flight is cancelled or its result dropped. A
 * no-op when stopped. Returns 0 or -EINVAL (NULL, not an fs_poll). */
WEFT_API int weft_fs_poll_stop(weft_fs_poll *p);

/** The path being polled, or NULL (stopped, NULL, not an fs_poll). */
WEFT_API const char *weft_fs_poll_get_path(const weft_fs_poll *p);

/** The next callback of a started poll as a future: *out (one reference
 * for the caller) fulfils with a weft_fs_poll_change * the future owns
 * (`prev` and `curr` as the callback got them) when the next callback
 * after this call has `status` 0, and rejects with that `status` when it
 * reports a failed stat (-ENOENT, ...); the callback still runs. Several
 * may be pending; each gets the same outcome. A future made inside the
 * callback waits for the next one. Rejected with -ECANCELED when the poll
 * is stopped (at once) or closed (in the close phase, before the close
 * callback); cancelling it frees it. Returns 0; -EINVAL (NULL `p` or
 * `out`, not an fs_poll, not started, closing); -ENOMEM. */
WEFT_API int weft_fs_poll_future(weft_fs_poll *p, weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_WATCH_H */
