/* tree_sum DIR — the CRC-32 of every regular file under DIR (symbolic links
 * are not followed), at most 8 files at once: listing and reading through
 * the fs futures, the CRC (zlib's crc32, as Python's zlib.crc32) on the
 * pool's CPU lane, one fiber per file. On a terminal, stderr shows the
 * progress. Prints the file count, the bytes and the sum of the CRCs; exit
 * 1 if a file or directory could not be read. The asyncio twin is
 * examples/python/tree_sum.py. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>
#include <zlib.h>

#include "args.h"

#define IN_FLIGHT 8

static const char usage[] = "usage: tree_sum DIR\n";
static unsigned long long files, bytes, sum;
static int errors;

/* A pool job: the CRC of a file's bytes, returned as the result. */
static void *crc32_job(void *data, int *err) {
  const weft_fs_buf *b = data;
  (void)err;
  return (void *)(uintptr_t)crc32_z(0, (const Bytef *)b->data, b->len);
}

static void fail(const char *path, int err) {
  fprintf(stderr, "tree_sum: %s: %s\n", path, weft_strerror(err));
  errors++;
}

static int sum_file(weft_fiber *self, void *path) {
  weft_future *rd;
  void *crc = NULL;
  (void)self;
  int err = weft_fiber_read_file(path, &rd);
  const weft_fs_buf *data = err == 0 ? weft_future_value(rd) : NULL;
  if (err == 0)
    err = weft_fiber_run_in_pool(WEFT_LANE_CPU, crc32_job, (void *)data, NULL,
                                 &crc);
  if (err == 0) {
    files++, bytes += data->len, sum += (uintptr_t)crc;
    if (isatty(STDERR_FILENO))
      fprintf(stderr, "\r%llu files, %llu bytes", files, bytes);
  } else {
    fail(path, err);
  }
  weft_future_unref(rd);
  free(path);
  return 0;
}

/* A fiber for the file at `path`, once fewer than IN_FLIGHT run. */
static int spawn_file(weft_fiber_group *g, const char *path) {
  char *p = strdup(path);
  int err = p == NULL ? -ENOMEM : weft_fiber_group_spawn(g, sum_file, p);
  if (err != 0) free(p);
  return err;
}

static void walk(weft_fiber_group *g, const char *dir) {
  weft_future *f;
  int err = weft_fiber_scandir(dir, &f);
  const weft_fs_dir *d = err == 0 ? weft_future_value(f) : NULL;
  for (size_t i = 0; err == 0 && i < d->count; i++) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, d->entries[i].name);
    if (d->entries[i].type == WEFT_DT_DIR) walk(g, path);
    if (d->entries[i].type == WEFT_DT_REG) err = spawn_file(g, path);
  }
  weft_future_unref(f);
  if (err != 0) fail(dir, err);
}

static int tree_sum(weft_fiber *self, void *dir) {
  weft_fiber_group *g;
  (void)self;
  int err = weft_fiber_group_new(IN_FLIGHT, &g);
  if (err != 0) return err;
  walk(g, dir);
  return weft_fiber_group_wait(g); /* every file fiber has finished */
}

int main(int argc, char **argv) {
  ex_parse(argc, argv, (ex_opt[]){{NULL}}, 1, 1, usage);
  weft_fiber_options big = {.stack_size = 8u << 20}; /* walk() recurses */
  int err = weft_fiber_main(tree_sum, argv[1], &big, NULL);
  if (err != 0) fail(argv[1], err);
  if (isatty(STDERR_FILENO)) fputc('\n', stderr);
  printf("%llu files, %llu bytes, crc32 sum %llu\n", files, bytes, sum);
  return errors != 0;
}
