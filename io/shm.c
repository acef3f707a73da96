/* weft — shared memory regions: a sealed memfd mapped shared, attached
 * from an fd or opened through /proc/PID/fd/N, and checked views into it.
 *
 * The seals (F_SEAL_GROW | F_SEAL_SHRINK, then F_SEAL_SEAL) matter: a
 * process that could shrink the file would make every other mapper's
 * access beyond the new end fault with SIGBUS. No loop and no allocation
 * here: a region is a plain value the caller owns. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "weft/shm.h"

#define NAME_MAX_LEN 249 /* memfd_create: NAME_MAX minus "memfd:" */

static void shm_reset(weft_shm *shm) {
  shm->base = NULL;
  shm->size = 0;
  shm->fd = -1;
}

static int shm_map(weft_shm *shm, int fd, size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return errno == EACCES ? -EACCES : -ENOMEM;
  shm->base = p;
  shm->size = size;
  shm->fd = fd;
  return 0;
}

int weft_shm_create(weft_shm *shm, const char *name, size_t size) {
  if (shm == NULL) return -EINVAL;
  shm_reset(shm);
  if (size == 0 || size > WEFT_SHM_MAX_SIZE) return -EINVAL;
  if (name == NULL) name = "weft-shm";
  if (strlen(name) > NAME_MAX_LEN) return -EINVAL;
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  int err = 0;
  if (ftruncate(fd, (off_t)size) < 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
    err = errno == EFBIG || errno == ENOSPC ? -ENOMEM : -errno;
  if (err == 0) err = shm_map(shm, fd, size);
  if (err != 0) {
    close(fd);
    shm_reset(shm);
  }
  return err;
}

/* The size of a region file, or a negative error. */
static int region_size(int fd, size_t *size) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
      (uint64_t)st.st_size > WEFT_SHM_MAX_SIZE)
    return -EINVAL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  if ((fl & O_ACCMODE) != O_RDWR) return -EACCES;
  *size = (size_t)st.st_size;
  return 0;
}

int weft_shm_attach(weft_shm *shm, int fd) {
  if (shm == NULL) return -EINVAL;
  shm_reset(shm);
  if (fd < 0) return -EINVAL;
  size_t size = 0;
  int err = region_size(fd, &size);
  if (err == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) err = -errno;
  if (err == 0) err = shm_map(shm, fd, size);
  if (err != 0) shm_reset(shm);
  return err;
}

int weft_shm_get_path(const weft_shm *shm, char *buf, size_t len) {
  if (shm == NULL || buf == NULL || shm->base == NULL || shm->fd < 0)
    return -EINVAL;
  int n = snprintf(buf, len, "/proc/%ld/fd/%d", (long)getpid(), shm->fd);
  if (n < 0) return -EINVAL;
  if ((size_t)n >= len) {
    if (len > 0) buf[0] = '\0';
    return -ENOBUFS;
  }
  return n;
}

int weft_shm_open_path(weft_shm *shm, const char *path) {
  if (shm == NULL) return -EINVAL;
  shm_reset(shm);
  if (path == NULL || path[0] == '\0') return -EINVAL;
  int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return errno == ENXIO || errno == EISDIR ? -EINVAL : -errno;
  int err = weft_shm_attach(shm, fd);
  if (err != 0) close(fd);
  return err;
}

int weft_shm_close(weft_shm *shm) {
  if (shm == NULL || shm->base == NULL) return -EINVAL;
  munmap(shm->base, shm->size);
  close(shm->fd);
  shm_reset(shm);
  return 0;
}

int weft_shm_at(const weft_shm *shm, size_t offset, size_t size, size_t align,
                void **out) {
  if (shm == NULL || out == NULL || shm->base == NULL || size == 0 ||
      align == 0 || (align & (align - 1)) != 0)
    return -EINVAL;
  if (offset >= shm->size || size > shm->size - offset) return -ERANGE;
  uintptr_t p = (uintptr_t)shm->base + offset;
  if ((p & (align - 1)) != 0) return -EINVAL;
  *out = (void *)p;
  return 0;
}
