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

/* After spawning `pid` for `p`: starts watching it. On error (no pidfd and
 * no fallback possible) the record is freed and the caller must kill and
 * reap the child itself. */
int weft__child_attach(weft__child *c, weft_process *p, pid_t pid);

/* Frees a record that was never attached (the spawn failed). */
void weft__child_discard(weft__child *c);

/* The handle closed before the exit: keep watching, reap on exit. */
void weft__child_orphan(weft__child *c);

/* Sends a signal to the watched child. 0 or a negative errno. */
int weft__child_kill(weft__child *c, int signum);

/* Called by the watcher once the child of `p` is reaped (io/process.c). */
void weft__process_exited(weft_process *p, const siginfo_t *si);

#endif /* WEFT_IO_PROCESS_INTERNAL_H */
