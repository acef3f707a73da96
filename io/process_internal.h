/* weft — what io/process.c and io/process_watch.c share. Never installed. */
#ifndef WEFT_IO_PROCESS_INTERNAL_H
#define WEFT_IO_PROCESS_INTERNAL_H

#include <signal.h>

#include "internal.h"
#include "weft/process.h"

/* A watched child (io/process_watch.c): its pidfd watcher, or, where the
 * kernel has no pidfd_open, its pid in the loop's SIGCHLD sweep list. It
 * belongs to the loop's process module, so that it can outlive its handle
 * (an orphan, reaped when it exits). */
typedef struct weft__child weft__child;

/* Before spawning: allocates the record (and, in fallback mode, makes sure
 * SIGCHLD is watched before the child can exit). -ENOMEM; -EBUSY if the
 * fallback needs SIGCHLD and another loop watches it. */
int weft__child_prepare(weft_loop *loop, weft__child **out);

/* After spawning `pid` for `p`: starts watching it, through `pidfd` if it
 * is not -1 (clone's CLONE_PIDFD; the record takes it over, and closes it
 * on error), else through one pidfd_open() makes. On error (no pidfd and
 * no fallback possible) the record is freed and the caller must kill and
 * reap the child itself. */
int weft__child_attach(weft__child *c, weft_process *p, pid_t pid, int pidfd);

/* Frees a record that was never attached (the spawn failed). */
void weft__child_discard(weft__child *c);

/* The handle closed before the exit: keep watching, reap on exit. */
void weft__child_orphan(weft__child *c);

/* Sends a signal to the watched child. 0 or a negative errno. */
int weft__child_kill(weft__child *c, int signum);

/* The loop's spawn stack (io/process_clone.c), kept in its process module
 * (io/process_watch.c) and unmapped with it. */
typedef struct weft__spawn_stack {
  char *base; /* the mapping, a guard page at its bottom; NULL: none yet */
  size_t len;
  bool refused; /* this kernel cannot clone our way: use posix_spawn */
} weft__spawn_stack;

/* The loop's, or NULL before weft__child_prepare() made the module. */
weft__spawn_stack *weft__process_spawn_stack(weft_loop *loop);
void weft__spawn_stack_free(weft__spawn_stack *s);

/* A slot of the stdio plan (io/process.c): the child's fd i becomes a dup
 * of src[i], a parent fd, or one of these. */
#define WEFT__SRC_KEEP (-1)    /* nothing: inherited as is, or closed */
#define WEFT__SRC_DEVNULL (-2) /* /dev/null, read-write */

/* What the clone path returns when it cannot run here (an old kernel,
 * a TSan build): spawn with posix_spawn instead. */
#define WEFT__SPAWN_REFUSED 1

/* Spawns `o` with the stdio plan src[0..n) by clone(CLONE_VM|CLONE_VFORK|
 * CLONE_PIDFD) on the loop's stack (io/process_clone.c). 0 with *pid and
 * *pidfd (-1 where the kernel gave none) set; a negative errno (exec
 * failure included: the child is reaped, nothing is left); or
 * WEFT__SPAWN_REFUSED. */
int weft__spawn_clone(weft_loop *loop, const weft_process_options *o,
                      const int *src, unsigned n, pid_t *pid, int *pidfd);

/* Called by the watcher once the child of `p` is reaped (io/process.c). */
void weft__process_exited(weft_process *p, const siginfo_t *si);

#endif /* WEFT_IO_PROCESS_INTERNAL_H */
