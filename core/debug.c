/* weft — the debug mode (weft_loop_options.debug, $WEFT_DEBUG): the slow
 * paths of the thread and re-init checks (core/internal.h), handle names
 * and weft_loop_debug_dump(). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int weft__debug_wrong_thread(const weft_loop *loop, const char *fn) {
  fprintf(stderr,
          "weft debug: %s called on loop %p from a thread that is not the "
          "one running it\n",
          fn, (const void *)loop);
  return WEFT_EWRONGTHREAD;
}

int weft__debug_init(const weft_loop *loop, const weft_handle *h,
                     const char *fn) {
  int err = weft__debug_thread(loop, fn);
  if (err != 0) return err;
  /* only this loop's list can be searched: a handle never initialised
   * holds garbage, so its own fields prove nothing */
  WEFT__LIST_FOREACH(it, &loop->handles) {
    if (WEFT__CONTAINER_OF(it, weft_handle, all) != h) continue;
    fprintf(stderr,
            "weft debug: %s on %s handle %p, which is still %s on loop %p\n",
            fn, weft_handle_type_name(weft_handle_get_type(h)), (const void *)h,
            (h->flags & WEFT__H_CLOSING) ? "closing" : "open",
            (const void *)loop);
    return -EBUSY;
  }
  return 0;
}

bool weft_loop_is_debug(const weft_loop *loop) {
  return loop != NULL && loop->debug;
}

/* Names live in a per-loop table, so that weft_handle has no field for a
 * feature most handles never use: a named handle keeps its slot number
 * (plus one) in the high bits of its flags. */
#define NAME_SLOTS_MAX (UINT32_MAX >> WEFT__H_NAME_SHIFT)

const char *weft__handle_name(const weft_handle *h) {
  uint32_t slot = h->flags >> WEFT__H_NAME_SHIFT;
  if (slot == 0 || h->loop == NULL || slot > h->loop->names_cap) return NULL;
  return h->loop->names[slot - 1].name;
}

void weft__handle_drop_name(weft_handle *h) {
  uint32_t slot = h->flags >> WEFT__H_NAME_SHIFT;
  if (slot == 0) return;
  weft_loop *loop = h->loop;
  loop->names[slot - 1].next_free = loop->names_free;
  loop->names_free = slot;
  h->flags &= (1u << WEFT__H_NAME_SHIFT) - 1;
}

/* Makes room for at least one free slot: 0 or -ENOMEM. */
static int names_grow(weft_loop *loop) {
  if (loop->names_free != 0) return 0;
  uint32_t cap = loop->names_cap != 0 ? loop->names_cap * 2 : 16;
  if (cap > NAME_SLOTS_MAX) cap = NAME_SLOTS_MAX;
  if (cap <= loop->names_cap) return -ENOMEM;
  weft__name_slot *slots =
      weft__realloc(loop->names, (size_t)cap * sizeof *slots);
  if (slots == NULL) return -ENOMEM;
  for (uint32_t i = cap; i > loop->names_cap; i--) { /* lowest first */
    slots[i - 1].next_free = loop->names_free;
    loop->names_free = i;
  }
  loop->names = slots;
  loop->names_cap = cap;
  return 0;
}

int weft_handle_set_name(weft_handle *h, const char *name) {
  if (h == NULL || h->ops == NULL || h->loop == NULL) return -EINVAL;
  WEFT__CHECK_THREAD(h->loop);
  weft_loop *loop = h->loop;
  uint32_t slot = h->flags >> WEFT__H_NAME_SHIFT;
  if (name == NULL) {
    weft__handle_drop_name(h);
    return 0;
  }
  if (slot == 0) {
    int err = names_grow(loop);
    if (err != 0) return err;
    slot = loop->names_free;
    loop->names_free = loop->names[slot - 1].next_free;
    h->flags |= slot << WEFT__H_NAME_SHIFT;
  }
  loop->names[slot - 1].name = name;
  return 0;
}

const char *weft_handle_get_name(const weft_handle *h) {
  return h != NULL ? weft__handle_name(h) : NULL;
}

/* The whole of buf[0, n) to fd: 0 or -errno. */
static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

static int put_line(int fd, char *line, int len, size_t cap) {
  if (len < 0) return -EINVAL;
  if ((size_t)len >= cap) { /* a long name: cut, keep the newline */
    len = (int)cap - 1;
    line[len - 1] = '\n';
  }
  return write_all(fd, line, (size_t)len);
}

static const char *handle_state(const weft_handle *h) {
  if (h->flags & (WEFT__H_CLOSING | WEFT__H_CLOSED)) return "closing";
  return (h->flags & WEFT__H_ACTIVE) ? "active" : "inactive";
}

int weft_loop_debug_dump(weft_loop *loop, int fd) {
  if (loop == NULL || fd < 0) return -EINVAL;
  WEFT__CHECK_THREAD(loop);
  char line[512];
  int err = put_line(
      fd, line, snprintf(line, sizeof line, "weft loop %p\n", (void *)loop),
      sizeof line);
  size_t handles = 0;
  WEFT__LIST_FOREACH(it, &loop->handles) {
    if (err != 0) break;
    const weft_handle *h = WEFT__CONTAINER_OF(it, weft_handle, all);
    const char *name = weft__handle_name(h);
    int n;
    if (name != NULL)
      n = snprintf(line, sizeof line, "handle %s %p %s%s \"%s\"\n",
                   weft_handle_type_name(weft_handle_get_type(h)),
                   (const void *)h, handle_state(h),
                   (h->flags & WEFT__H_UNREF) ? " unref" : "", name);
    else
      n = snprintf(line, sizeof line, "handle %s %p %s%s\n",
                   weft_handle_type_name(weft_handle_get_type(h)),
                   (const void *)h, handle_state(h),
                   (h->flags & WEFT__H_UNREF) ? " unref" : "");
    err = put_line(fd, line, n, sizeof line);
    handles++;
  }
  long futures = 0;
  for (int id = 0; id < WEFT__MOD_MAX && err == 0; id++) {
    if (loop->modules[id].dump == NULL) continue;
    long n = loop->modules[id].dump(loop, loop->modules[id].state, fd);
    if (n < 0)
      err = (int)n;
    else
      futures += n;
  }
  if (err != 0) return err;
  return put_line(fd, line,
                  snprintf(line, sizeof line,
                           "end: %zu handles, %ld pending futures\n", handles,
                           futures),
                  sizeof line);
}
