/* weft — terminals: a tty as a stream, its mode, its size, and resizes.
 *
 * weft_tty_open() makes a terminal fd a weft_stream: read and write it with
 * the stream calls, exactly as a pipe (docs/streams.md). The handle works
 * on a fd of its own: the terminal reopened by its name (ttyname_r), so
 * that making it non-blocking leaves the caller's fd, and the file
 * description other processes share (a shell's stdin), alone. When the
 * terminal cannot be reopened (a pty master, a name that cannot be
 * opened) the handle dups the fd; that dup shares the caller's file
 * description, so weft sets O_NONBLOCK on it and clears it again at close
 * if it was clear. Either way the caller's fd stays the caller's: close it
 * when you like; weft_close() closes only the handle's fd.
 *
 * Modes, as libuv's UV_TTY_MODE_*: WEFT_TTY_MODE_NORMAL is the terminal as
 * it was; WEFT_TTY_MODE_RAW turns off line editing, echo, signal keys
 * (^C, ^Z), input CR-to-NL and flow control, reads byte by byte, and keeps
 * output processing (NL still goes out as CR NL); WEFT_TTY_MODE_IO is
 * cfmakeraw(3): binary in and out, no output processing either.
 *
 * The mode belongs to the terminal, not to the handle: handles on one
 * terminal (stdin and stdout, say) share it, and the last call wins.
 *
 * What is restored, and when. When a handle leaves WEFT_TTY_MODE_NORMAL
 * and its terminal is not saved yet, weft saves the terminal's termios in
 * a process-wide table (WEFT_TTY_SAVED_MAX terminals at a time), with a
 * fd of its own on the terminal (a dup, closed when the entry goes); the
 * entry stays while any handle on that terminal is out of normal mode, and
 * every mode is made from the saved termios. That saved termios, and
 * nothing else (not the window size, not what was written), is put back
 * with tcsetattr(TCSANOW):
 *  - by weft_tty_set_mode(WEFT_TTY_MODE_NORMAL) (the handle lets go of the
 *    entry);
 *  - by weft_close() of a handle not in normal mode (likewise);
 *  - at exit(3) or a return from main (an atexit handler), for every
 *    terminal still in the table;
 *  - on SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGSEGV, SIGBUS, SIGFPE, SIGILL
 *    and SIGABRT (abort, a failed assert): when the first handle leaves
 *    normal mode, weft installs a handler for each of these whose
 *    disposition is still the default (a handler or an ignore that the
 *    program, a sanitizer or a debugger set is left alone). The handler
 *    restores every terminal in the table (async-signal-safe), puts the
 *    default disposition back and raises the signal again, so the process
 *    still dies by it, with the same status and core dump;
 *  - by weft_tty_reset_mode(), which a program's own signal handler may
 *    call.
 * Nothing is restored after SIGKILL, _exit(2) or a signal whose handler is
 * the program's own and does not call weft_tty_reset_mode(). A forked
 * child inherits the table: its exit restores the terminals too.
 *
 * Resizes: weft_tty_on_resize() and weft_tty_resize_future() tell of a
 * new window size when SIGWINCH arrives and the size differs from the last
 * one the handle saw. The kernel sends SIGWINCH to the foreground process
 * group of the terminal whose size changed, that is, for a controlling
 * terminal. One loop at a time can watch SIGWINCH (as weft_signal_start).
 * Loop thread only, except weft_tty_reset_mode(). */
#ifndef WEFT_TTY_H
#define WEFT_TTY_H

#include <stdint.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Terminal modes (libuv's UV_TTY_MODE_NORMAL, _RAW, _IO). */
typedef enum weft_tty_mode {
  WEFT_TTY_MODE_NORMAL = 0, /**< as the terminal was before weft changed it */
  WEFT_TTY_MODE_RAW = 1,    /**< keys one by one, no echo, output processed */
  WEFT_TTY_MODE_IO = 2      /**< cfmakeraw(3): binary both ways */
} weft_tty_mode;

/** Terminals whose original mode weft holds at once (process-wide). */
#define WEFT_TTY_SAVED_MAX 16

typedef struct weft_tty weft_tty;

/** The window size changed: `cols` columns by `rows` rows. */
typedef void (*weft_tty_resize_cb)(weft_tty *t, int cols, int rows);

/** A terminal handle; embed it anywhere. Use `stream` with the stream
 * calls and `stream.base` with weft_close(). The rest is private. */
struct weft_tty {
  weft_stream stream;
  /* private */
  WEFT__EV_STORAGE(winch); /* struct ev_signal for SIGWINCH */
  weft_tty_resize_cb resize_cb;
  weft_future *resize_f; /* a pending weft_tty_resize_future() */
  int mode;              /* weft_tty_mode */
  int slot;              /* its entry in the saved table, or -1 */
  int restore_fl;        /* file status flags to put back at close, or -1 */
  int cols, rows;        /* the last size seen */
  unsigned tflags;
};

/** Initialises `t` on `loop`, without a terminal. Returns 0 or -EINVAL. */
WEFT_API int weft_tty_init(weft_loop *loop, weft_tty *t);

/** Opens the terminal `fd` as the handle's stream, on a fd of the handle's
 * own (see the top: reopened by name, else a dup); `fd` stays yours. The
 * handle's fd is non-blocking and close-on-exec. Returns 0; -EINVAL for
 * NULL, a negative fd, a handle that already has a terminal or is
 * closing; -EBADF if `fd` is not open; -ENOTTY if it is not a terminal;
 * -EMFILE and other kernel errors (then nothing changed). */
WEFT_API int weft_tty_open(weft_tty *t, int fd);

/** Sets the terminal's mode (see the top for each mode and for what is
 * saved). Setting the mode the handle is in does nothing. Returns 0;
 * -EINVAL for NULL, a handle without a terminal, closing, or a mode that
 * is not a weft_tty_mode; -ENOSPC if the terminal needs an entry and
 * WEFT_TTY_SAVED_MAX terminals are saved already; -EMFILE; kernel errors
 * of tcgetattr/tcsetattr (-EIO if the terminal hung up). On error the
 * mode is unchanged. */
WEFT_API int weft_tty_set_mode(weft_tty *t, weft_tty_mode mode);

/** The mode last set on the handle (WEFT_TTY_MODE_NORMAL for NULL). */
WEFT_API weft_tty_mode weft_tty_get_mode(const weft_tty *t);

/** Puts back the saved termios of every terminal weft took out of normal
 * mode, like libuv's uv_tty_reset_mode(). Async-signal-safe and callable
 * from any thread: for a program's own signal handler. The handles keep
 * their mode (weft_tty_get_mode) and their entries; set the mode again to
 * leave normal mode again. Returns 0, or the first tcsetattr error. */
WEFT_API int weft_tty_reset_mode(void);

/** The window size (TIOCGWINSZ) into `*cols` and `*rows` (either may be
 * NULL). Returns 0; -EINVAL for NULL t, a handle without a terminal or
 * closing; kernel errors. */
WEFT_API int weft_tty_get_winsize(const weft_tty *t, int *cols, int *rows);

/** Calls `cb` with the new size each time SIGWINCH arrives and the size
 * differs from the last one the handle saw (from the loop, never inline);
 * `cb` NULL stops. While a callback is set the loop stays alive, like a
 * started signal handle. Returns 0; -EINVAL for NULL t, a handle without
 * a terminal or closing; -EBUSY if another loop watches SIGWINCH. */
WEFT_API int weft_tty_on_resize(weft_tty *t, weft_tty_resize_cb cb);

/** The next resize, as a future: *out (one reference for the caller)
 * fulfils with the new size packed in an int64 (weft_tty_size_cols() and
 * weft_tty_size_rows() unpack it) at the next SIGWINCH that changes the
 * size, or rejects with -ECANCELED when the handle closes. Cancelling it
 * stops waiting. While pending it keeps the loop alive. A callback set
 * with weft_tty_on_resize() runs too, first. Returns 0; -EINVAL as
 * weft_tty_on_resize() or for NULL out; -EBUSY if a resize future of the
 * handle is pending or another loop watches SIGWINCH; -ENOMEM. */
WEFT_API int weft_tty_resize_future(weft_tty *t, weft_future **out);

/** Columns of a size packed by weft_tty_resize_future(). */
static inline int weft_tty_size_cols(int64_t v) { return (int)(v >> 16); }
/** Rows of a size packed by weft_tty_resize_future(). */
static inline int weft_tty_size_rows(int64_t v) { return (int)(v & 0xffff); }

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TTY_H */
