/* weft — common definitions: export macro, error codes, allocator.
 *
 * Errors are int: 0 for success or a negative errno value (-EINVAL, -ENOMEM,
 * ...). weft's own conditions (end of file, DNS failures, ...) live in a
 * reserved negative range below WEFT__ERR_BASE so they never collide with
 * errno values. weft_strerror() and weft_err_name() name every code. */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define WEFT_API __attribute__((visibility("default")))
/** Marks an old name kept for one release after a rename; `msg` names the
 * new one. */
#define WEFT_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define WEFT_API
#define WEFT_DEPRECATED(msg)
#endif

/* Private: an atomic field of a public struct. C++ (before C++23 there is
 * no <stdatomic.h> for it) sees the plain type, which has the same size and
 * alignment on every platform weft supports; only the library touches these
 * fields, and it is C. */
#ifdef __cplusplus
#define WEFT__ATOMIC(T) T
#else
#define WEFT__ATOMIC(T) _Atomic(T)
#endif

/* The version: the Makefile's VERSION is the one source; `make
 * check-version` fails when these, weft_version() or weft.pc disagree. */
#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/** Returns the library version as "MAJOR.MINOR.PATCH" (the version of the
 * library linked at run time, which may be newer than WEFT_VERSION_* of the
 * headers a program was built with, within one soname). */
WEFT_API const char *weft_version(void);

/* ---- errors ----------------------------------------------------------- */

/* The reserved range: weft's own codes are WEFT__ERR_BASE - n, far from any
 * errno value (Linux errno values stay below 200). DNS statuses map to
 * WEFT__DNS_BASE - ares_status. */
#define WEFT__ERR_BASE (-4000)
#define WEFT__DNS_BASE (-4100)

/* X(NAME, value, message): weft's own error codes. One list feeds the enum,
 * weft_err_name() and weft_strerror(). */
#define WEFT_OWN_ERRORS(X)                                                     \
  X(WEFT_EOF, WEFT__ERR_BASE - 1, "end of file")                               \
  X(WEFT_EAGGREGATE, WEFT__ERR_BASE - 2, "every alternative failed")           \
  X(WEFT_ECLOSED, WEFT__ERR_BASE - 3, "closed")                                \
  X(WEFT_EWORKER, WEFT__ERR_BASE - 4, "worker process died")                   \
  X(WEFT_ELIMIT, WEFT__ERR_BASE - 5, "output limit exceeded")                  \
  X(WEFT_EUNOBSERVED, WEFT__ERR_BASE - 6, "rejection never observed")          \
  X(WEFT_EBROKEN, WEFT__ERR_BASE - 7, "barrier broken")                        \
  X(WEFT_EWRONGTHREAD, WEFT__ERR_BASE - 8,                                     \
    "called off the loop's thread (debug mode)")                               \
  X(WEFT_EDNS_NODATA, WEFT__DNS_BASE - 1,                                      \
    "DNS: no data of the requested type")                                      \
  X(WEFT_EDNS_FORMERR, WEFT__DNS_BASE - 2, "DNS: query format error")          \
  X(WEFT_EDNS_SERVFAIL, WEFT__DNS_BASE - 3, "DNS: server failure")             \
  X(WEFT_EDNS_NOTFOUND, WEFT__DNS_BASE - 4, "DNS: name not found")             \
  X(WEFT_EDNS_NOTIMP, WEFT__DNS_BASE - 5, "DNS: not implemented by server")    \
  X(WEFT_EDNS_REFUSED, WEFT__DNS_BASE - 6, "DNS: query refused")               \
  X(WEFT_EDNS_BADQUERY, WEFT__DNS_BASE - 7, "DNS: malformed query")            \
  X(WEFT_EDNS_BADNAME, WEFT__DNS_BASE - 8, "DNS: malformed name")              \
  X(WEFT_EDNS_BADFAMILY, WEFT__DNS_BASE - 9,                                   \
    "DNS: unsupported address family")                                         \
  X(WEFT_EDNS_BADRESP, WEFT__DNS_BASE - 10, "DNS: malformed reply")            \
  X(WEFT_EDNS_CONNREFUSED, WEFT__DNS_BASE - 11, "DNS: no server reachable")    \
  X(WEFT_EDNS_TIMEOUT, WEFT__DNS_BASE - 12, "DNS: timed out")                  \
  X(WEFT_EDNS_EOF, WEFT__DNS_BASE - 13, "DNS: end of file")                    \
  X(WEFT_EDNS_FILE, WEFT__DNS_BASE - 14, "DNS: error reading file")            \
  X(WEFT_EDNS_NOMEM, WEFT__DNS_BASE - 15, "DNS: out of memory")                \
  X(WEFT_EDNS_DESTRUCTION, WEFT__DNS_BASE - 16, "DNS: resolver shut down")     \
  X(WEFT_EDNS_BADSTR, WEFT__DNS_BASE - 17, "DNS: malformed string")            \
  X(WEFT_EDNS_BADFLAGS, WEFT__DNS_BASE - 18, "DNS: invalid flags")             \
  X(WEFT_EDNS_NONAME, WEFT__DNS_BASE - 19, "DNS: host or service unknown")     \
  X(WEFT_EDNS_BADHINTS, WEFT__DNS_BASE - 20, "DNS: invalid hints")             \
  X(WEFT_EDNS_NOTINITIALIZED, WEFT__DNS_BASE - 21, "DNS: not initialized")     \
  X(WEFT_EDNS_CANCELLED, WEFT__DNS_BASE - 24, "DNS: query cancelled")

/** weft's own error codes (all negative, in the reserved range). */
enum weft_own_error {
#define WEFT__ENUM(name, value, msg) name = (value),
  WEFT_OWN_ERRORS(WEFT__ENUM)
#undef WEFT__ENUM
};

/** A static, human-readable message for any weft error code (0, a negative
 * errno, or a weft code). Unknown codes give "unknown error". Never NULL. */
WEFT_API const char *weft_strerror(int err);

/** The symbolic name of an error code ("EINVAL", "WEFT_EOF", "OK" for 0).
 * Unknown codes give "UNKNOWN". Never NULL. */
WEFT_API const char *weft_err_name(int err);

/* ---- allocator -------------------------------------------------------- */

/** A replaceable allocator. Every allocation weft makes goes through it.
 * `malloc` and `realloc` return NULL on failure; `free` accepts NULL.
 * `ctx` is passed back to each function. */
typedef struct weft_allocator {
  void *(*malloc)(size_t size, void *ctx);
  void *(*realloc)(void *ptr, size_t size, void *ctx);
  void (*free)(void *ptr, void *ctx);
  void *ctx;
} weft_allocator;

/** Installs `a` (copied) as weft's allocator; NULL restores the C library's.
 * Only while weft holds no memory from the current allocator (before first
 * use, or after every loop is freed): otherwise returns -EBUSY and changes
 * nothing. -EINVAL if a function pointer is missing. Not thread-safe. */
WEFT_API int weft_set_allocator(const weft_allocator *a);

/** Number of blocks weft currently holds from its allocator (a leak check
 * for tests: 0 once every loop and handle is gone). Thread-safe. */
WEFT_API size_t weft_alloc_live(void);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_COMMON_H */
