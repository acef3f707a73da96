/* pcopy — copy a directory tree with asynchronous file I/O.
 *
 * usage: pcopy [-j N] SRC DST
 *
 * Every file-system call runs on weft's thread pool; the loop thread only
 * decides what to do next. Up to N operations (default 16) are in flight.
 * Each directory is created, then listed; each regular file is stat'ed,
 * copied (copy_file_range, with a read/write fallback; holes are kept) and
 * its copy stat'ed to verify the size; each symbolic link is recreated. A
 * destination file that already exists is replaced: it is removed first
 * (never when it is the source itself) and the copy made with
 * WEFT_FS_COPY_EXCL, so a copy that fails leaves no partial file behind
 * (weft removes a destination it created), nor does a failed size check.
 * A progress bar is drawn on a terminal, plain progress lines otherwise.
 * Errors name the path and the reason; the copy goes on with the rest, and
 * at the end the failed paths are listed again and pcopy exits 1. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

static const char usage_text[] =
    "usage: pcopy [-j N] SRC DST\n"
    "  Copies the tree SRC to DST on weft's pool, N copies at a time\n"
    "  (1..1024, default 16), with a progress line on a terminal.\n";

enum kind { K_DIR, K_FILE, K_LINK };

typedef struct task {
  weft_future *f, *next; /* the step that settled; the one just started */
  enum kind kind;
  int step;
  char *src, *dst;
  off_t size;
  dev_t dev; /* the source file's identity */
  ino_t ino;
  int64_t err; /* a failure to report once the copy is removed */
} task;

/* A failed path, kept for the summary. */
typedef struct failure {
  struct failure *next;
  char path[];
} failure;

static struct {
  weft_loop *loop;
  weft_semaphore *slots; /* -j: a task holds one from its start to its end */
  size_t seen, done, failed;
  unsigned long long bytes;
  bool tty;
  failure *failures, **failures_tail;
} S;

static void oom(void) {
  fprintf(stderr, "pcopy: out of memory\n");
  exit(1);
}

static char *join(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *p = malloc(n);
  if (p == NULL) oom();
  snprintf(p, n, "%s/%s", a, b);
  return p;
}

static void progress(bool last) {
  if (S.tty) {
    int width = 30, fill = S.seen ? (int)(width * S.done / S.seen) : 0;
    printf("\r[%.*s%*s] %zu/%zu files, %.1f MB%s", fill,
           "##############################", width - fill, "", S.done, S.seen,
           (double)S.bytes / 1e6, last ? "\n" : "");
    fflush(stdout);
  } else if (last || S.done % 1000 == 0) {
    printf("%zu/%zu files, %.1f MB\n", S.done, S.seen, (double)S.bytes / 1e6);
  }
}

static void on_step(weft_future *f, void *arg);

/* Each task is a small state machine: every step starts one fs future into
 * t->next and returns go(t, err); go() makes it the current one, and its
 * settling runs the task's next step. */
static int go(task *t, int err) {
  if (err != 0) return err;
  weft_future_unref(t->f);
  t->f = t->next;
  return weft_future_on_settled(t->f, on_step, t);
}

/* A task waits for a slot (-j) before its first step. */
static void add_task(enum kind kind, char *src, char *dst) {
  task *t = calloc(1, sizeof *t);
  if (t == NULL) oom();
  *t = (task){.kind = kind, .src = src, .dst = dst};
  if (kind != K_DIR) S.seen++;
  if (go(t, weft_semaphore_acquire(S.slots, &t->next)) != 0) oom();
}

/* Ends a task; a negative `err` is reported as "<what> '<path>': <why>". */
static void finish(task *t, const char *what, const char *path, int64_t err) {
  if (err < 0) {
    fprintf(stderr, "%spcopy: %s '%s': %s\n", S.tty ? "\n" : "", what, path,
            weft_strerror((int)err));
    S.failed++;
    failure *f = malloc(sizeof *f + strlen(path) + 1);
    if (f != NULL) {
      strcpy(f->path, path);
      f->next = NULL;
      *S.failures_tail = f;
      S.failures_tail = &f->next;
    }
  }
  if (t->kind != K_DIR) {
    S.done++;
    progress(false);
  }
  weft_future_unref(t->f);
  free(t->src);
  free(t->dst);
  free(t);
  weft_semaphore_release(S.slots);
}

/* A listed directory: queue its entries. */
static void dir_listed(task *t, const weft_fs_dir *d) {
  for (size_t i = 0; i < d->count; i++) {
    const weft_dirent *e = &d->entries[i];
    enum kind k = e->type == DT_DIR   ? K_DIR
                  : e->type == DT_LNK ? K_LINK
                                      : K_FILE;
    if (e->type != DT_DIR && e->type != DT_LNK && e->type != DT_REG) {
      fprintf(stderr, "pcopy: skipping special file '%s/%s'\n", t->src,
              e->name);
      continue;
    }
    add_task(k, join(t->src, e->name), join(t->dst, e->name));
  }
}

static int copy(task *t) {
  t->step = 4;
  return go(t, weft_fs_copyfile_future(S.loop, t->src, t->dst,
                                       WEFT_FS_COPY_EXCL, &t->next));
}

/* `res` is the error of the step that settled (0: it succeeded, and
 * weft_future_value(t->f) holds its result). */
static int dir_step(task *t, int64_t res) {
  switch (t->step++) {
  case 0:
    return go(t, weft_fs_mkdir_future(S.loop, t->dst, 0755, &t->next));
  case 1:
    if (res < 0 && res != -EEXIST)
      return finish(t, "cannot create directory", t->dst, res), 0;
    return go(t, weft_fs_scandir_future(S.loop, t->src, &t->next));
  default:
    if (res == 0) dir_listed(t, weft_future_value(t->f));
    return finish(t, "cannot list directory", t->src, res), 0;
  }
}

/* stat src; lstat dst: the source itself is refused, another existing file
 * is unlinked; copy with EXCL; stat the copy, and unlink it if its size is
 * wrong. */
static int file_step(task *t, int64_t res) {
  const struct stat *st = res == 0 ? weft_future_value(t->f) : NULL;
  switch (t->step++) {
  case 0:
    return go(t, weft_fs_stat_future(S.loop, t->src, &t->next));
  case 1:
    if (res < 0) return finish(t, "cannot read", t->src, res), 0;
    t->size = st->st_size;
    t->dev = st->st_dev;
    t->ino = st->st_ino;
    return go(t, weft_fs_lstat_future(S.loop, t->dst, &t->next));
  case 2:
    if (res == -ENOENT) return copy(t);
    if (res < 0) return finish(t, "cannot check", t->dst, res), 0;
    if (st->st_dev == t->dev && st->st_ino == t->ino)
      return finish(t, "source and destination are one file:", t->dst, -EINVAL),
             0;
    return go(t, weft_fs_unlink_future(S.loop, t->dst, &t->next));
  case 3:
    if (res < 0) return finish(t, "cannot replace", t->dst, res), 0;
    return copy(t);
  case 4:
    if (res < 0) return finish(t, "cannot copy to", t->dst, res), 0;
    return go(t, weft_fs_stat_future(S.loop, t->dst, &t->next));
  case 5:
    if (res == 0 && st->st_size == t->size) {
      S.bytes += (unsigned long long)t->size;
      return finish(t, NULL, t->dst, 0), 0;
    }
    t->err = res < 0 ? res : -EIO;
    return go(t, weft_fs_unlink_future(S.loop, t->dst, &t->next));
  default:
    return finish(t, "size check failed for", t->dst, t->err), 0;
  }
}

static int link_step(task *t, int64_t res) {
  switch (t->step++) {
  case 0:
    return go(t, weft_fs_readlink_future(S.loop, t->src, &t->next));
  case 1: /* the target string is the readlink future's, kept until go() */
    if (res < 0) return finish(t, "cannot read link", t->src, res), 0;
    return go(t, weft_fs_symlink_future(S.loop, weft_future_value(t->f), t->dst,
                                        &t->next));
  default:
    return finish(t, "cannot create link", t->dst, res), 0;
  }
}

static void on_step(weft_future *f, void *arg) {
  task *t = arg;
  int64_t res = weft_future_error(f);
  int err = t->kind == K_DIR    ? dir_step(t, res)
            : t->kind == K_FILE ? file_step(t, res)
                                : link_step(t, res);
  if (err != 0) finish(t, "cannot start an operation on", t->src, err);
}

int main(int argc, char **argv) {
  int opt, jobs = 16;
  S.failures_tail = &S.failures;
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (ex_is_help(argv[i])) ex_usage(usage_text, 0);
  opterr = 0;
  while ((opt = getopt(argc, argv, "+j:")) != -1) {
    if (opt == 'j')
      jobs = (int)ex_number("-j", optarg, 1, 1024, usage_text);
    else if (optopt == 'j')
      ex_bad(usage_text, "-j needs a value");
    else
      ex_bad(usage_text, "unknown option '-%c'", optopt);
  }
  if (argc - optind != 2) ex_bad(usage_text, "want SRC and DST");
  const char *src = argv[optind], *dst = argv[optind + 1];
  S.tty = isatty(STDOUT_FILENO);
  int err = weft_loop_new(&S.loop, NULL);
  if (err == 0) err = weft_semaphore_new(S.loop, (unsigned)jobs, &S.slots);
  if (err != 0) {
    fprintf(stderr, "pcopy: %s\n", weft_strerror(err));
    return 1;
  }
  /* the source must exist; its type decides the first task */
  weft_future *probe = NULL;
  err = weft_fs_stat_future(S.loop, src, &probe);
  if (err == 0) err = weft_loop_run(S.loop, WEFT_RUN_DEFAULT);
  if (err >= 0) err = weft_future_error(probe);
  if (err < 0) {
    fprintf(stderr, "pcopy: cannot read source '%s': %s\n", src,
            weft_strerror(err));
    weft_future_unref(probe);
    weft_loop_free(S.loop);
    return 1;
  }
  const struct stat *st = weft_future_value(probe);
  add_task(S_ISDIR(st->st_mode) ? K_DIR : K_FILE, strdup(src), strdup(dst));
  weft_future_unref(probe);
  weft_loop_run(S.loop, WEFT_RUN_DEFAULT);
  progress(true);
  weft_semaphore_free(S.slots);
  weft_loop_free(S.loop);
  if (S.failed) fprintf(stderr, "pcopy: %zu error(s); not copied:\n", S.failed);
  for (failure *f = S.failures, *next; f != NULL; f = next) {
    next = f->next;
    fprintf(stderr, "  %s\n", f->path);
    free(f);
  }
  return S.failed ? 1 : 0;
}
