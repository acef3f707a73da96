/* tree_sum DIR — the CRC-32 of every regular file under DIR (symbolic links
 * are not followed), at most 8 files at once: listing and reading through
 * the fs futures, the CRC on the pool's CPU lane, one fiber per file. On a
 * terminal, stderr shows the progress. Prints the file count, the bytes and
 * the sum of the CRCs; exit 1 if a file or directory could not be read.
 * The asyncio twin is examples/python/tree_sum.py. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

#define IN_FLIGHT 8

static const char usage[] = "usage: tree_sum DIR\n";
static weft_semaphore *slots;
static uint64_t files, bytes, sum;
static int errors;

typedef struct job {
  const weft_fs_buf *data;
  uint32_t crc;
  char path[PATH_MAX];
} job;

static void *crc32_job(void *arg, int *err) {
  job *j = arg;
  uint32_t c = 0xffffffffu;
  (void)err;
  for (size_t i = 0; i < j->data->len; i++) {
    c ^= (unsigned char)j->data->data[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & -(c & 1u));
  }
  j->crc = ~c;
  return NULL;
}

static int sum_file(weft_fiber *self, void *arg) {
  job *j = arg;
  (void)self;
  weft_future *rd;
  int err = weft_fiber_read_file(j->path, &rd);
  if (err == 0) j->data = weft_future_value(rd);
  if (err == 0)
    err = weft_fiber_run_in_pool(WEFT_LANE_CPU, crc32_job, j, NULL, NULL);
  if (err == 0) {
    files++, bytes += j->data->len, sum += j->crc;
    if (isatty(STDERR_FILENO))
      fprintf(stderr, "\r%llu files, %llu bytes", (unsigned long long)files,
              (unsigned long long)bytes);
  } else {
    fprintf(stderr, "tree_sum: %s: %s\n", j->path, weft_strerror(err));
    errors++;
  }
  if (rd != NULL) weft_future_unref(rd);
  free(j);
  weft_semaphore_release(slots);
  return 0;
}

static int walk(const char *dir) {
  weft_future *f;
  int err = weft_fiber_scandir(dir, &f);
  if (err == 0) {
    const weft_fs_dir *d = weft_future_value(f);
    for (size_t i = 0; err == 0 && i < d->count; i++) {
      char path[PATH_MAX];
      snprintf(path, sizeof path, "%s/%s", dir, d->entries[i].name);
      if (d->entries[i].type == WEFT_DT_DIR) walk(path);
      if (d->entries[i].type != WEFT_DT_REG) continue;
      job *j = malloc(sizeof *j);
      if (j == NULL || (err = weft_fiber_semaphore_acquire(slots)) != 0) {
        free(j);
        break;
      }
      snprintf(j->path, sizeof j->path, "%s", path);
      if ((err = weft_fiber_create_task(sum_file, j, NULL)) != 0) free(j);
    }
  }
  if (f != NULL) weft_future_unref(f);
  if (err != 0) fprintf(stderr, "tree_sum: %s: %s\n", dir, weft_strerror(err));
  errors += err != 0;
  return err;
}

static int tree_sum(weft_fiber *self, void *dir) {
  (void)self;
  walk(dir);
  for (int i = 0; i < IN_FLIGHT; i++) /* every file fiber has finished */
    if (weft_fiber_semaphore_acquire(slots) != 0) return -ECANCELED;
  return 0;
}

int main(int argc, char **argv) {
  if (ex_operands(argc, argv, 1, usage) != 2) ex_bad(usage, "one DIR only");
  weft_loop *loop;
  weft_fiber_options big = {.stack_size = 8u << 20}; /* walk() recurses */
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_semaphore_new(loop, IN_FLIGHT, &slots);
  if (err == 0) err = weft_fiber_run(loop, tree_sum, argv[1], &big, NULL);
  if (err != 0) {
    fprintf(stderr, "tree_sum: %s\n", weft_strerror(err));
    return 1;
  }
  if (isatty(STDERR_FILENO)) fputc('\n', stderr);
  printf("%llu files, %llu bytes, crc32 sum %llu\n", (unsigned long long)files,
         (unsigned long long)bytes, (unsigned long long)sum);
  weft_semaphore_free(slots);
  weft_loop_free(loop);
  return errors != 0;
}
