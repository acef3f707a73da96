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
  weft_fs_req req; /* one operation at a time per task */
  enum kind kind;
  int step;
  char *src, *dst;
  off_t size;
  dev_t dev; /* the source file's identity */
  ino_t ino;
  int64_t err; /* a failure to report once the copy is removed */
  struct task *next;
} task;

/* A failed path, kept for the summary. */
typedef struct failure {
  struct failure *next;
  char path[];
} failure;

static struct {
  weft_loop *loop;
  int max_inflight, inflight;
  task *head, *tail; /* waiting to start */
  size_t seen, done, failed;
  unsigned long long bytes;
  bool tty;
  failure *failures, **failures_tail;
} S;

static void task_step(weft_fs_req *req);

static char *join(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *p = malloc(n);
  if (p == NULL) {
    fprintf(stderr, "pcopy: out of memory\n");
    exit(1);
  }
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

static void add_task(enum kind kind, char *src, char *dst) {
  task *t = calloc(1, sizeof *t);
  if (t == NULL) {
    fprintf(stderr, "pcopy: out of memory\n");
    exit(1);
  }
  t->kind = kind;
  t->src = src;
  t->dst = dst;
  t->req.data = t;
  if (S.tail)
    S.tail->next = t;
  else
    S.head = t;
  S.tail = t;
  if (kind != K_DIR) S.seen++;
}

static void start_more(void);

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
  weft_fs_req_cleanup(&t->req);
  free(t->src);
  free(t->dst);
  free(t);
  S.inflight--;
  start_more();
}

/* A listed directory: queue its entries. */
static void dir_listed(task *t) {
  weft_fs_dir *d = t->req.ptr;
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

/* Each task is a small state machine; `step` says which operation just
 * completed. */
static int run_step_copy(task *t) {
  t->step = 4;
  return weft_fs_copyfile(S.loop, &t->req, t->src, t->dst, WEFT_FS_COPY_EXCL,
                          task_step);
}

static int dir_step(task *t, int64_t res) {
  switch (t->step++) {
  case 0:
    return weft_fs_mkdir(S.loop, &t->req, t->dst, 0755, task_step);
  case 1:
    if (res < 0 && res != -EEXIST)
      return finish(t, "cannot create directory", t->dst, res), 0;
    return weft_fs_scandir(S.loop, &t->req, t->src, task_step);
  default:
    if (res >= 0) dir_listed(t);
    return finish(t, "cannot list directory", t->src, res), 0;
  }
}

/* stat src; lstat dst: the source itself is refused, another existing file
 * is unlinked; copy with EXCL; stat the copy, and unlink it if its size is
 * wrong. */
static int file_step(task *t, int64_t res) {
  switch (t->step++) {
  case 0:
    return weft_fs_stat(S.loop, &t->req, t->src, task_step);
  case 1:
    if (res < 0) return finish(t, "cannot read", t->src, res), 0;
    t->size = t->req.statbuf.st_size;
    t->dev = t->req.statbuf.st_dev;
    t->ino = t->req.statbuf.st_ino;
    return weft_fs_lstat(S.loop, &t->req, t->dst, task_step);
  case 2:
    if (res == -ENOENT) return run_step_copy(t);
    if (res < 0) return finish(t, "cannot check", t->dst, res), 0;
    if (t->req.statbuf.st_dev == t->dev && t->req.statbuf.st_ino == t->ino)
      return finish(t, "source and destination are one file:", t->dst, -EINVAL),
             0;
    return weft_fs_unlink(S.loop, &t->req, t->dst, task_step);
  case 3:
    if (res < 0) return finish(t, "cannot replace", t->dst, res), 0;
    return run_step_copy(t);
  case 4:
    if (res < 0) return finish(t, "cannot copy to", t->dst, res), 0;
    return weft_fs_stat(S.loop, &t->req, t->dst, task_step);
  case 5:
    if (res == 0 && t->req.statbuf.st_size == t->size) {
      S.bytes += (unsigned long long)t->size;
      return finish(t, NULL, t->dst, 0), 0;
    }
    t->err = res < 0 ? res : -EIO;
    return weft_fs_unlink(S.loop, &t->req, t->dst, task_step);
  default:
    return finish(t, "size check failed for", t->dst, t->err), 0;
  }
}

static int link_step(task *t, int64_t res) {
  switch (t->step++) {
  case 0:
    return weft_fs_readlink(S.loop, &t->req, t->src, task_step);
  case 1: {
    if (res < 0) return finish(t, "cannot read link", t->src, res), 0;
    /* the next request resets req: keep the target in a request of its own,
     * freed once weft_fs_symlink() has copied it */
    weft_fs_req target = {.ptr = t->req.ptr};
    t->req.ptr = NULL;
    int err = weft_fs_symlink(S.loop, &t->req, target.ptr, t->dst, task_step);
    weft_fs_req_cleanup(&target);
    return err;
  }
  default:
    return finish(t, "cannot create link", t->dst, res), 0;
  }
}

static void run_step(task *t, int64_t res) {
  int err = t->kind == K_DIR    ? dir_step(t, res)
            : t->kind == K_FILE ? file_step(t, res)
                                : link_step(t, res);
  if (err != 0) finish(t, "cannot start an operation on", t->src, err);
}

static void task_step(weft_fs_req *req) { run_step(req->data, req->result); }

static void start_more(void) {
  while (S.inflight < S.max_inflight && S.head != NULL) {
    task *t = S.head;
    S.head = t->next;
    if (S.head == NULL) S.tail = NULL;
    S.inflight++;
    run_step(t, 0);
  }
}

static void probe_done(weft_fs_req *req) { (void)req; }

int main(int argc, char **argv) {
  int opt;
  S.max_inflight = 16;
  S.failures_tail = &S.failures;
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (ex_is_help(argv[i])) ex_usage(usage_text, 0);
  opterr = 0;
  while ((opt = getopt(argc, argv, "+j:")) != -1) {
    if (opt == 'j')
      S.max_inflight = (int)ex_number("-j", optarg, 1, 1024, usage_text);
    else if (optopt == 'j')
      ex_bad(usage_text, "-j needs a value");
    else
      ex_bad(usage_text, "unknown option '-%c'", optopt);
  }
  if (argc - optind != 2) ex_bad(usage_text, "want SRC and DST");
  const char *src = argv[optind], *dst = argv[optind + 1];
  S.tty = isatty(STDOUT_FILENO);
  int err = weft_loop_new(&S.loop, NULL);
  if (err != 0) {
    fprintf(stderr, "pcopy: %s\n", weft_strerror(err));
    return 1;
  }
  /* the source must exist; its type decides the first task */
  weft_fs_req probe = {0};
  err = weft_fs_stat(S.loop, &probe, src, probe_done);
  if (err == 0) err = weft_loop_run(S.loop, WEFT_RUN_DEFAULT);
  if (err < 0 || probe.result < 0) {
    fprintf(stderr, "pcopy: cannot read source '%s': %s\n", src,
            weft_strerror(err < 0 ? err : (int)probe.result));
    weft_loop_free(S.loop);
    return 1;
  }
  add_task(S_ISDIR(probe.statbuf.st_mode) ? K_DIR : K_FILE, strdup(src),
           strdup(dst));
  start_more();
  weft_loop_run(S.loop, WEFT_RUN_DEFAULT);
  progress(true);
  weft_loop_free(S.loop);
  if (S.failed) fprintf(stderr, "pcopy: %zu error(s); not copied:\n", S.failed);
  for (failure *f = S.failures, *next; f != NULL; f = next) {
    next = f->next;
    fprintf(stderr, "  %s\n", f->path);
    free(f);
  }
  return S.failed ? 1 : 0;
}
