/* weft — child processes: spawn, exit callback and future, kill; run a
 * command to completion (Python's subprocess.run); a pool of worker
 * processes fed over pipes (multiprocessing.Pool).
 *
 * A child's stdio slots are inherited, /dev/null, a given fd, or a pipe
 * that is a weft stream (a weft_pipe the caller initialised). Spawning is
 * a clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) on a stack each loop keeps
 * (posix_spawn's way without its per-spawn stack mapping; posix_spawn
 * itself, or fork() for a uid or gid, where the kernel refuses that and
 * in TSan builds), so a failed exec is reported by weft_spawn() itself
 * (-ENOENT, -EACCES, ...), never as a puzzling exit 127.
 *
 * Children are watched through a pidfd (one ev_io each), so any loop can
 * own processes; where the kernel lacks pidfd_open (Linux < 5.3) a loop
 * falls back to a SIGCHLD watcher and a waitid(WNOHANG) sweep (one loop at
 * a time then: see docs/process.md). The handle is active, and keeps the
 * loop alive, until the child's exit has been reaped.
 *
 * Closing a process handle before the child has exited (libuv's
 * behaviour): the child is NOT killed and keeps running; the exit callback
 * never runs and a pending exit future is rejected with -ECANCELED. The
 * loop keeps watching the child without keeping itself alive and reaps it
 * when it exits, so no zombie is left while the loop lives; if the loop is
 * freed first, weft reaps it if it has already exited, else it stops
 * watching and the child is reaped by whoever waits for it (or by init
 * once this program exits). Kill it first if it must not outlive you.
 *
 * Signals in the child: the signal mask is emptied and every signal's
 * disposition (1 to SIGRTMAX, glibc's internal 32 and 33 included) reset
 * to the default before exec. Every fd weft opens is
 * close-on-exec, so children inherit only the stdio slots asked for.
 * Loop thread only. */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "future.h"
#include "loop.h"
#include "pipe.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a child's stdio slot is connected to. */
typedef enum weft_stdio_kind {
  WEFT_STDIO_INHERIT = 0, /**< the parent's fd of the same number */
  WEFT_STDIO_IGNORE,      /**< /dev/null, read-write */
  WEFT_STDIO_PIPE,        /**< a new pipe; the parent end opens in `pipe` */
  WEFT_STDIO_FD /**< the parent's `fd` (dup'ed; the caller keeps it) */
} weft_stdio_kind;

/** One stdio slot. For WEFT_STDIO_PIPE, `pipe` is a weft_pipe initialised
 * with weft_pipe_init() and not yet open: on success it holds the parent's
 * end (slot 0: a write end; slots 1 and 2: a read end; slots 3 and up: one
 * end of a Unix socketpair, both ways). */
typedef struct weft_stdio {
  weft_stdio_kind kind;
  int fd;          /**< for WEFT_STDIO_FD */
  weft_pipe *pipe; /**< for WEFT_STDIO_PIPE */
} weft_stdio;

/** The most stdio slots a child can be given. */
#define WEFT_PROCESS_MAX_STDIO 16

/** Spawn flags. */
enum weft_process_flags {
  WEFT_PROCESS_SETUID = 1u << 0, /**< run as `uid` (needs privilege) */
  WEFT_PROCESS_SETGID = 1u << 1, /**< run as `gid`, no supplementary groups */
  WEFT_PROCESS_NEW_PGROUP = 1u << 2,  /**< child leads a new process group */
  WEFT_PROCESS_NEW_SESSION = 1u << 3, /**< child leads a new session (setsid) */
  /** a new session, and the handle starts unreferenced (weft_unref), so the
   * child does not keep the loop alive */
  WEFT_PROCESS_DETACHED = 1u << 4,
  /** kill_on_close (tokio's kill_on_drop): closing the handle while the
   * child runs sends it SIGKILL (through its pidfd); the loop then reaps it
   * as it reaps any child whose handle closed first */
  WEFT_PROCESS_KILL_ON_CLOSE = 1u << 5,
  WEFT__PROCESS_ALL_FLAGS = (1u << 6) - 1 /* private: every flag above */
};

typedef struct weft_process weft_process;

/** The child exited: `exit_status` is its exit code (0..255) when it
 * exited, 0 when a signal killed it; `term_signal` is that signal, else 0.
 * The handle is inactive from here on; close it when done. */
typedef void (*weft_exit_cb)(weft_process *p, int64_t exit_status,
                             int term_signal);

/** How to spawn. Zero-initialise, then set what you need. */
typedef struct weft_process_options {
  /** The program: searched in $PATH unless it holds a '/'. NULL: argv[0]. */
  const char *file;
  /** argv, NULL-terminated, at least argv[0]. Only read during
   * weft_spawn(). */
  char *const *argv;
  /** The environment, NULL-terminated; NULL inherits the parent's. */
  char *const *env;
  /** Working directory; NULL keeps the parent's. A relative `file` is
   * resolved from it. */
  const char *cwd;
  /** stdio[i] becomes the child's fd i; slots 0..2 not given are
   * inherited; fds above stdio_count are not inherited. */
  const weft_stdio *stdio;
  unsigned stdio_count; /**< <= WEFT_PROCESS_MAX_STDIO */
  unsigned flags;       /**< enum weft_process_flags */
  uid_t uid;            /**< with WEFT_PROCESS_SETUID */
  gid_t gid;            /**< with WEFT_PROCESS_SETGID */
  weft_exit_cb exit_cb; /**< may be NULL */
} weft_process_options;

/** A child process handle; embed it anywhere. `pid` is readable; fields
 * after it are private. */
struct weft_process {
  weft_handle base;
  pid_t pid; /**< the child's pid, from a successful weft_spawn() on */
  /* private */
  weft_exit_cb exit_cb;
  struct weft__child *child; /* the watcher; NULL once reaped or closed */
  weft_future *exit_future;
  int64_t exit_value; /* encoded as for the exit future */
  bool exited;
  unsigned flags; /* the spawn flags */
};

/* ---- the exit future's value ------------------------------------------ */

/** The exit future fulfils with an int64: the exit code (>= 0) when the
 * child exited, or minus the signal number (< 0) when a signal killed it.
 * It never rejects for a normal exit. */
static inline bool weft_exit_is_signal(int64_t v) { return v < 0; }
/** The exit code held by an exit value (0 for a signal death). */
static inline int weft_exit_code(int64_t v) { return v >= 0 ? (int)v : 0; }
/** The terminating signal held by an exit value (0 for an exit). */
static inline int weft_exit_signal(int64_t v) { return v < 0 ? (int)-v : 0; }

/* ---- spawn ----------------------------------------------------------------
 */

/** Spawns a child described by `opts` into `p` (uninitialised storage).
 * On success returns 0: `p` is an open, active handle, p->pid is set, the
 * pipes of WEFT_STDIO_PIPE slots are open, and the exit callback will run
 * once the child exits. On failure nothing is left behind (`p` is not a
 * handle, no fd is open, the pipes stay unopened) and the error is
 * returned: -EBUSY (SIGCHLD fallback only: another loop owns SIGCHLD);
 * -EINVAL (NULL loop/p/opts, empty argv, bad flags, too many or
 * bad stdio slots, a pipe slot without an unopened weft_pipe), -EBADF (a
 * closed fd in a WEFT_STDIO_FD slot), -ENOENT / -EACCES / -ENOEXEC (exec
 * failed), -EPERM (uid/gid without privilege), -ENOMEM, -EMFILE, -EAGAIN. */
WEFT_API int weft_spawn(weft_loop *loop, weft_process *p,
                        const weft_process_options *opts);

/** Sends `signum` to the child (through its pidfd, so a recycled pid is
 * never hit). Returns 0; -EINVAL (NULL, a closing handle, bad signal);
 * -ESRCH once the child has exited. Signal 0 checks that it runs. */
WEFT_API int weft_process_kill(weft_process *p, int signum);

/** Sends `signum` to the child's whole process group (killpg), for a
 * child spawned with WEFT_PROCESS_NEW_PGROUP, WEFT_PROCESS_NEW_SESSION or
 * WEFT_PROCESS_DETACHED, which leads its own group: the signal reaches
 * every process still in it (the child's children too), also after the
 * child itself has exited, until the handle closes. Returns 0; -EINVAL
 * (NULL, a closing handle, bad signal, a child that shares the parent's
 * group); -ESRCH once no process is left in the group. */
WEFT_API int weft_process_kill_group(weft_process *p, int signum);

/** Stores in *out a future (the caller holds one reference) that fulfils
 * with the exit value (see weft_exit_is_signal()) when the child exits, at
 * once if it already has. Every call returns the same future. It is
 * rejected with -ECANCELED if the handle is closed before the child exits.
 * Cancelling it does not touch the child. Returns 0; -EINVAL (NULL, a
 * handle never spawned or closing); -ENOMEM. */
WEFT_API int weft_process_exit_future(weft_process *p, weft_future **out);

/** The child's pid (-EINVAL for NULL). */
WEFT_API pid_t weft_process_pid(const weft_process *p);

/* ---- run: spawn, feed stdin, collect stdout and stderr ------------------- */

/** What weft_process_run() fulfils with (owned by the future). */
typedef struct weft_run_result {
  int64_t status; /**< the exit value, as for the exit future */
  char *out;      /**< stdout; NUL-terminated (not counted in out_len) */
  size_t out_len;
  char *err; /**< stderr; NUL-terminated */
  size_t err_len;
} weft_run_result;

/** How to run. Zero-initialise. */
typedef struct weft_run_options {
  /** argv, env, cwd, flags, uid, gid as for weft_spawn(); its stdio and
   * exit_cb are ignored (stdin, stdout, stderr are pipes). */
  weft_process_options proc;
  const void *input; /**< fed to stdin, then stdin is closed; copied */
  size_t input_len;
  /** Cap on stdout and on stderr, each (0: WEFT_RUN_DEFAULT_LIMIT). */
  size_t limit;
} weft_run_options;

/** Default output cap of weft_process_run(): 64 MiB per stream. */
#define WEFT_RUN_DEFAULT_LIMIT ((size_t)64 << 20)

/** Runs a command to completion: spawns it, writes `input` to its stdin and
 * closes it, collects stdout and stderr, waits for the exit. *out gets a
 * future (caller's reference) that fulfils with a weft_run_result * once
 * the child has exited and both outputs reached end of file; it rejects
 * with WEFT_ELIMIT if an output grows beyond the limit (the child is then
 * killed with SIGKILL and reaped first). Cancelling the future kills the
 * child. A child that ignores a closed stdin is fine (EPIPE is not an
 * error). Returns 0; the spawn errors of weft_spawn(); -EINVAL for NULL
 * arguments or input_len without input; -ENOMEM. After a spawn error the
 * request's pipe handles finish closing during the next loop turn. */
WEFT_API int weft_process_run(weft_loop *loop, const weft_run_options *opts,
                              weft_future **out);

/* ---- the process pool ------------------------------------------------------
 */

/** A pool of worker processes (opaque). */
typedef struct weft_procpool weft_procpool;

/** Where the workers' stdout and stderr go (weft_procpool_options.output). */
typedef enum weft_procpool_output {
  /** The parent's stdout and stderr. */
  WEFT_PROCPOOL_OUTPUT_INHERIT = 0,
  /** /dev/null, both. */
  WEFT_PROCPOOL_OUTPUT_DISCARD,
  /** Collected per job by weft_procpool_worker_main() and returned with the
   * job's result (weft_procpool_result.out and .err). */
  WEFT_PROCPOOL_OUTPUT_CAPTURE
} weft_procpool_output;

/** How to start the pool's workers. Zero-initialise. */
typedef struct weft_procpool_options {
  /** The worker command; it runs weft_procpool_worker_main() (or speaks
   * its framing). argv[0] searched in $PATH unless it holds a '/'. */
  char *const *argv;
  char *const *env; /**< NULL inherits */
  const char *cwd;  /**< NULL keeps the parent's */
  unsigned workers; /**< 0: the number of CPUs; at most 1024 */
  /** Jobs waiting for a worker before submit returns -EAGAIN (0: no cap). */
  size_t max_queue;
  /** The initializer (multiprocessing's initializer/initargs): `init_len`
   * bytes (copied) that every new worker, replacements included, receives
   * before its first job; its weft_procpool_worker_options.init runs them.
   * Jobs go to a worker only once its initializer succeeded. NULL: none. */
  const void *init;
  size_t init_len;
  /** Recycle a worker after this many jobs (multiprocessing's
   * maxtasksperchild): its stdin is closed once the last one replied, it
   * exits and a new worker takes its place. 0: never. */
  unsigned max_jobs_per_worker;
  weft_procpool_output output; /**< where workers' stdout/stderr go */
} weft_procpool_options;

/** A job's result (owned by the job's future, or by a map's results). */
typedef struct weft_procpool_result {
  char *data; /**< the reply; for a failed job the worker's message.
                   NUL-terminated (not counted in len) */
  size_t len;
  int status; /**< 0, or the job's error code (< 0) */
  /** WEFT_PROCPOOL_OUTPUT_CAPTURE: what the worker wrote to stdout and
   * stderr during the job (NUL-terminated); else NULL and 0. */
  char *out;
  size_t out_len;
  char *err;
  size_t err_len;
} weft_procpool_result;

/** Runs once after weft_procpool_close() or weft_procpool_terminate() has
 * stopped every worker; the pool is freed right after it returns. */
typedef void (*weft_procpool_close_cb)(weft_procpool *pool, void *arg);

/** Starts `opts->workers` workers. Returns 0 and the pool in *out;
 * -EINVAL (NULL, empty argv, too many workers, init_len without init or
 * over 1 GiB, an unknown output mode); spawn errors (-ENOENT, ...);
 * -ENOMEM. On failure nothing is returned and no callback runs; workers
 * already started are stopped and their handles finish closing during the
 * next turns of the loop (run it before freeing it). */
WEFT_API int weft_procpool_new(weft_loop *loop,
                               const weft_procpool_options *opts,
                               weft_procpool **out);

/** Submits one job: `len` bytes (copied) go to the next free worker as one
 * frame. *out gets a future (caller's reference) that fulfils with a
 * weft_procpool_result * (the reply), or rejects with the worker's error
 * code (negative, from its handler; weft_procpool_job_error() gives its
 * message), WEFT_EWORKER if the worker died before replying (the job is
 * never run again; the worker is replaced), or is cancelled. Cancelling a
 * queued job drops it; cancelling a running one kills its worker
 * (replaced). Returns 0; -EINVAL (NULL pool/out, NULL data with len, len >
 * 1 GiB); -EAGAIN (queue full); WEFT_ECLOSED (pool closing); WEFT_EWORKER
 * (no worker left); -ENOMEM. */
WEFT_API int weft_procpool_submit(weft_procpool *pool, const void *data,
                                  size_t len, weft_future **out);

/** Reads a job future's failure: returns weft_future_error(f) (0 while
 * pending or once fulfilled; -EINVAL for NULL f) and, when the worker
 * failed the job with a message (or captured output), points *detail
 * (may be NULL) at it: status, the message in data/len, out and err. The
 * detail is owned by the future (valid while you hold a reference); NULL
 * when there is none, or f is not a job future. */
WEFT_API int weft_procpool_job_error(const weft_future *f,
                                     const weft_procpool_result **detail);

/** Submits `n` jobs, one per input, in order; futs[i] gets input i's
 * future (caller's reference each). If `all` is not NULL it gets
 * weft_future_all() of them. On error nothing stays submitted and futs is
 * left unset. Returns 0; errors as weft_procpool_submit(); -EINVAL for
 * NULL inputs or futs with n > 0. */
WEFT_API int weft_procpool_map(weft_procpool *pool, const weft_buf *inputs,
                               size_t n, weft_future **futs, weft_future **all);

/** All the results of a weft_procpool_map_ex() (owned by its future). */
typedef struct weft_procpool_results {
  size_t n;                    /**< items, in input order */
  size_t failed;               /**< items whose status is < 0 */
  weft_procpool_result *items; /**< items[i] is input i's result */
  void *priv_;                 /* private: the reply storage */
} weft_procpool_results;

/** One item of a map settled (index: its input's position); `r` is valid
 * during the call only (later: the map future's value, items[index]). */
typedef void (*weft_procpool_item_cb)(size_t index,
                                      const weft_procpool_result *r, void *arg);

/** How to map. Zero-initialise. */
typedef struct weft_procpool_map_options {
  /** Inputs per message to a worker (0 or 1: one each; fewer when that
   * many would make a message over 1 GiB, or exceed max_jobs_per_worker).
   * A worker runs a message's items in order and replies to each; each
   * item still has its own result, and an error in one item fails only
   * that item. */
  size_t chunksize;
  /** Called once per item, from the loop's deferred queue, in completion
   * order (imap_unordered) or, with `ordered`, in input order (imap).
   * Out of memory, when that queue cannot grow at the end of the map's
   * last message or when the pool's close drops its items, the calls
   * still due are made there and then (from the read callback, or from
   * weft_procpool_close() / _terminate()). May be NULL. */
  weft_procpool_item_cb on_result;
  void *arg;
  bool ordered;
} weft_procpool_map_options;

/** Maps the pool's workers over `n` inputs (copied): multiprocessing's
 * Pool.map, imap and imap_unordered in one call. *out gets a future
 * (caller's reference) that fulfils with a weft_procpool_results * once
 * every item has a result; it does not reject for failed items: each
 * item's status tells (a handler's error and message; WEFT_EWORKER for
 * the items of a message whose worker died before replying to them, while
 * a message sent to it ahead, not started, goes to another worker;
 * -ECANCELED for items the pool's close or terminate dropped). Items are
 * dispatched in input order, `chunksize` at a time, interleaved with
 * other jobs in FIFO order. Cancelling the future drops the items not yet
 * sent and kills the workers running its messages (replaced); on_result
 * is not called after that. `opts` may be NULL. Returns 0; -EINVAL (NULL
 * pool/out, NULL inputs with n > 0, an input over 1 GiB); -EAGAIN (over
 * max_queue); WEFT_ECLOSED; WEFT_EWORKER (no worker left); -ENOMEM. */
WEFT_API int weft_procpool_map_ex(weft_procpool *pool, const weft_buf *inputs,
                                  size_t n,
                                  const weft_procpool_map_options *opts,
                                  weft_future **out);

/** Stops the pool: queued jobs are cancelled (-ECANCELED); running jobs
 * finish; every worker's stdin is then closed so it exits; `cb` (may be
 * NULL) runs once all workers have exited and then the pool is freed.
 * Returns 0; -EINVAL (NULL); -EALREADY if already closing; -ENOMEM (the
 * pool has no worker left and its callback could not be queued; nothing
 * changed). */
WEFT_API int weft_procpool_close(weft_procpool *pool, weft_procpool_close_cb cb,
                                 void *arg);

/** Stops the pool now (multiprocessing's terminate): every worker is
 * killed (SIGKILL); queued and running jobs settle with -ECANCELED (map
 * items get that status); `cb` runs once every worker has exited, then the
 * pool is freed. After weft_procpool_close() it escalates that close: a
 * non-NULL `cb` (with `arg`) replaces the close's callback, NULL keeps it.
 * Returns 0; -EINVAL (NULL); -EALREADY if already terminating; -ENOMEM as
 * weft_procpool_close(). */
WEFT_API int weft_procpool_terminate(weft_procpool *pool,
                                     weft_procpool_close_cb cb, void *arg);

/** Changes the number of workers at run time. Growing spawns the new
 * workers now; shrinking retires idle workers first (their stdin is
 * closed and they exit), then busy ones once their current job replied.
 * No job is lost: a retiring worker takes no new job. Returns 0; -EINVAL
 * (NULL, n == 0 or over 1024); WEFT_ECLOSED (closing); a spawn error
 * (-ENOENT, -ENOMEM, ...): the workers started before it stay. */
WEFT_API int weft_procpool_resize(weft_procpool *pool, unsigned n);

/** Number of workers running or being replaced after a crash or a
 * recycle, retiring ones excluded (for tests and monitoring); 0 for NULL.
 * Once it is 0, submit returns WEFT_EWORKER. */
WEFT_API unsigned weft_procpool_workers(const weft_procpool *pool);

/** Stores the pids of up to `cap` running workers (retiring ones included)
 * in pids and returns how many there are (which may exceed cap); -EINVAL
 * for NULL pool, or NULL pids with cap > 0. For tests and monitoring. */
WEFT_API int weft_procpool_pids(const weft_procpool *pool, pid_t *pids,
                                unsigned cap);

/** Worker side: handles one job. Read `len` bytes at `in`; put the reply
 * in *out (a malloc'ed buffer the caller frees, or {NULL, 0}); return 0,
 * or a negative code that fails the job: *out is then the error's message
 * (or {NULL, 0}), see weft_procpool_failf(). */
typedef int (*weft_procpool_handler)(const void *in, size_t len, weft_buf *out,
                                     void *arg);

/** Worker side: runs the pool's initializer bytes before the first job.
 * Return 0, or a negative code (with a message in *msg, malloc'ed, or
 * {NULL, 0}): the worker then exits, it is not replaced, and once no
 * worker is left the waiting jobs fail with that code and message. */
typedef int (*weft_procpool_init_fn)(const void *in, size_t len, weft_buf *msg,
                                     void *arg);

/** Worker side: what weft_procpool_worker_run() calls. */
typedef struct weft_procpool_worker_options {
  weft_procpool_handler handler; /**< required */
  /** NULL: a pool with an initializer fails the worker (-ENOTSUP). */
  weft_procpool_init_fn init;
  void *arg; /**< for both */
} weft_procpool_worker_options;

/** Worker side: the main loop of a worker process. Reads job frames from
 * stdin, calls the handler for each, writes reply frames to stdout, and
 * returns 0 at end of input (exit with it), or a negative errno on a
 * broken frame, a failed read/write or a failed initializer. Blocking; no
 * loop needed. Started by a pool, it first moves the pool's pipes off fds
 * 0 and 1 (close-on-exec, so programs it runs do not inherit them) and
 * points stdin at /dev/null and stdout and stderr where the pool's
 * `output` says; with WEFT_PROCPOOL_OUTPUT_CAPTURE each job's output,
 * its children's included, is collected (in memory files) and sent with
 * its reply. */
WEFT_API int weft_procpool_worker_run(const weft_procpool_worker_options *o);

/** weft_procpool_worker_run() with a handler and no initializer. */
WEFT_API int weft_procpool_worker_main(weft_procpool_handler fn, void *arg);

/** Worker side, in a handler: fails the job with `code` (< 0) and a
 * printf-style message stored in *out (malloc'ed). Returns `code`, so a
 * handler ends with `return weft_procpool_failf(out, -EINVAL, "bad %s",
 * s);`; -EINVAL for NULL out or fmt, or code >= 0 (then the job fails with
 * -EINVAL); -ENOMEM if the message could not be made (*out left empty). */
WEFT_API int weft_procpool_failf(weft_buf *out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif /* WEFT_PROCESS_H */
