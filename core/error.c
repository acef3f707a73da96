/* weft — error names and messages, from one table. */
#include <string.h>

#include "internal.h"

/* X(name, message): the errno values weft returns or passes through. */
#define WEFT__ERRNO_LIST(X)                                                    \
  X(EPERM, "operation not permitted")                                          \
  X(ENOENT, "no such file or directory")                                       \
  X(ESRCH, "no such process")                                                  \
  X(EINTR, "interrupted system call")                                          \
  X(EIO, "i/o error")                                                          \
  X(ENXIO, "no such device or address")                                        \
  X(E2BIG, "argument list too long")                                           \
  X(ENOEXEC, "exec format error")                                              \
  X(EBADF, "bad file descriptor")                                              \
  X(ECHILD, "no child processes")                                              \
  X(EAGAIN, "resource temporarily unavailable")                                \
  X(ENOMEM, "not enough memory")                                               \
  X(EACCES, "permission denied")                                               \
  X(EFAULT, "bad address")                                                     \
  X(EBUSY, "resource busy")                                                    \
  X(EEXIST, "file exists")                                                     \
  X(EXDEV, "cross-device link")                                                \
  X(ENODEV, "no such device")                                                  \
  X(ENOTDIR, "not a directory")                                                \
  X(EISDIR, "is a directory")                                                  \
  X(EINVAL, "invalid argument")                                                \
  X(ENFILE, "too many open files in system")                                   \
  X(EMFILE, "too many open files")                                             \
  X(ENOTTY, "inappropriate ioctl for device")                                  \
  X(ETXTBSY, "text file busy")                                                 \
  X(EFBIG, "file too large")                                                   \
  X(ENOSPC, "no space left on device")                                         \
  X(ESPIPE, "invalid seek")                                                    \
  X(EROFS, "read-only file system")                                            \
  X(EMLINK, "too many links")                                                  \
  X(EPIPE, "broken pipe")                                                      \
  X(ERANGE, "result out of range")                                             \
  X(EDEADLK, "resource deadlock avoided")                                      \
  X(ENAMETOOLONG, "name too long")                                             \
  X(ENOSYS, "function not implemented")                                        \
  X(ENOTEMPTY, "directory not empty")                                          \
  X(ELOOP, "too many symbolic links")                                          \
  X(ENODATA, "no data available")                                              \
  X(EOVERFLOW, "value too large")                                              \
  X(EILSEQ, "illegal byte sequence")                                           \
  X(ENOTSOCK, "socket operation on non-socket")                                \
  X(EDESTADDRREQ, "destination address required")                              \
  X(EMSGSIZE, "message too long")                                              \
  X(EPROTOTYPE, "protocol wrong type for socket")                              \
  X(ENOPROTOOPT, "protocol not available")                                     \
  X(EPROTONOSUPPORT, "protocol not supported")                                 \
  X(EOPNOTSUPP, "operation not supported")                                     \
  X(EAFNOSUPPORT, "address family not supported")                              \
  X(EADDRINUSE, "address already in use")                                      \
  X(EADDRNOTAVAIL, "address not available")                                    \
  X(ENETDOWN, "network is down")                                               \
  X(ENETUNREACH, "network is unreachable")                                     \
  X(ECONNABORTED, "connection aborted")                                        \
  X(ECONNRESET, "connection reset by peer")                                    \
  X(ENOBUFS, "no buffer space available")                                      \
  X(EISCONN, "socket is already connected")                                    \
  X(ENOTCONN, "socket is not connected")                                       \
  X(ESHUTDOWN, "cannot send after shutdown")                                   \
  X(ETIMEDOUT, "timed out")                                                    \
  X(ECONNREFUSED, "connection refused")                                        \
  X(EHOSTDOWN, "host is down")                                                 \
  X(EHOSTUNREACH, "host is unreachable")                                       \
  X(EALREADY, "operation already in progress")                                 \
  X(EINPROGRESS, "operation in progress")                                      \
  X(ECANCELED, "operation canceled")                                           \
  X(EOWNERDEAD, "owner died")

typedef struct {
  int code;
  const char *name;
  const char *msg;
} err_entry;

static const err_entry table[] = {{0, "OK", "success"},
#define WEFT__ERRNO_ENTRY(name, msg) {-(name), #name, msg},
                                  WEFT__ERRNO_LIST(WEFT__ERRNO_ENTRY)
#undef WEFT__ERRNO_ENTRY
#define WEFT__OWN_ENTRY(name, value, msg) {value, #name, msg},
                                      WEFT_OWN_ERRORS(WEFT__OWN_ENTRY)
#undef WEFT__OWN_ENTRY
};

static const err_entry *find(int err) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (table[i].code == err) return &table[i];
  return NULL;
}

const char *weft_strerror(int err) {
  const err_entry *e = find(err);
  return e != NULL ? e->msg : "unknown error";
}

const char *weft_err_name(int err) {
  const err_entry *e = find(err);
  return e != NULL ? e->name : "UNKNOWN";
}

#define WEFT__STR_(x) #x
#define WEFT__STR(x) WEFT__STR_(x)
/* From the header's macros, which `make check-version` holds to the
 * Makefile's VERSION. */
const char *weft_version(void) {
  return WEFT__STR(WEFT_VERSION_MAJOR) "." WEFT__STR(
      WEFT_VERSION_MINOR) "." WEFT__STR(WEFT_VERSION_PATCH);
}
