/* watch — print what changes in a directory (or a file), as it happens.
 *
 * usage: watch [-r] [--poll MS] [-n N] PATH
 *
 * With inotify (the default) each event is one line: "create a/b",
 * "delete x/", "move old -> new", "moved-out x", "moved-in y", "overflow
 * (rescan)", "gone"; a trailing '/' marks a directory. -r watches the whole
 * tree: new subdirectories are watched as they appear, and what they
 * already hold is printed too. --poll MS stats PATH every MS milliseconds
 * instead (for network file systems, where inotify sees nothing) and
 * prints "changed" with the size and mtime before and after, "missing" and
 * "back". -n N exits after N lines; Ctrl-C (SIGINT) exits at any time. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: watch [-r] [--poll MS] [-n N] PATH\n"
    "  Prints the changes under PATH as they happen (inotify).\n"
    "  -r          the whole tree, new subdirectories included\n"
    "  --poll MS   stat PATH every MS ms (1..3600000) instead of inotify\n"
    "  -n N        exit after N events (1..1000000000)\n";

static struct {
  weft_watch w;
  weft_fs_poll p;
  weft_signal sig;
  long left; /* events still to print, or -1 */
  bool polling;
} S = {.left = -1};

static void quit(void) {
  weft_close(S.polling ? &S.p.base : &S.w.base, NULL);
  weft_close(&S.sig.base, NULL);
}

static void counted(void) {
  fflush(stdout);
  if (S.left > 0 && --S.left == 0) quit();
}

static const char *kind_name(int kind) {
  switch (kind) {
  case WEFT_WATCH_CREATE:
    return "create";
  case WEFT_WATCH_DELETE:
    return "delete";
  case WEFT_WATCH_MODIFY:
    return "modify";
  case WEFT_WATCH_ATTRIB:
    return "attrib";
  case WEFT_WATCH_MOVE:
    return "move";
  case WEFT_WATCH_MOVED_OUT:
    return "moved-out";
  case WEFT_WATCH_MOVED_IN:
    return "moved-in";
  case WEFT_WATCH_OVERFLOW:
    return "overflow (rescan)";
  case WEFT_WATCH_GONE:
    return "gone";
  default:
    return "?";
  }
}

static void on_event(weft_watch *w, int status, const weft_watch_event *ev,
                     void *arg) {
  (void)arg;
  if (status != 0) {
    fprintf(stderr, "watch: cannot watch %s: %s\n", ev->name,
            weft_strerror(status));
    return;
  }
  const char *d = ev->is_dir ? "/" : "";
  if (ev->kind == WEFT_WATCH_MOVE)
    printf("move %s -> %s%s\n", ev->name, ev->name2, d);
  else if (ev->name[0] != '\0')
    printf("%s %s%s\n", kind_name(ev->kind), ev->name, d);
  else
    printf("%s\n", kind_name(ev->kind));
  if (ev->kind == WEFT_WATCH_GONE) { /* the watch has stopped */
    weft_close(&w->base, NULL);
    weft_close(&S.sig.base, NULL);
    return;
  }
  counted();
}

static void on_poll(weft_fs_poll *p, int status, const struct stat *prev,
                    const struct stat *curr, void *arg) {
  (void)p, (void)arg;
  if (status != 0)
    printf("missing (%s)\n", weft_strerror(status));
  else if (prev->st_ino == 0)
    printf("back: size %lld\n", (long long)curr->st_size);
  else
    printf("changed: size %lld -> %lld, mtime %lld.%09ld -> %lld.%09ld\n",
           (long long)prev->st_size, (long long)curr->st_size,
           (long long)prev->st_mtim.tv_sec, prev->st_mtim.tv_nsec,
           (long long)curr->st_mtim.tv_sec, curr->st_mtim.tv_nsec);
  counted();
}

static void on_sigint(weft_signal *s, int signum) {
  (void)s, (void)signum;
  quit();
}

int main(int argc, char **argv) {
  const char *path = NULL;
  bool recursive = false;
  long poll_ms = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (ex_is_help(a))
      ex_usage(usage, 0);
    else if (strcmp(a, "-r") == 0)
      recursive = true;
    else if (strcmp(a, "--poll") == 0)
      poll_ms = ex_long(argc, argv, &i, 1, 3600000, usage);
    else if (strcmp(a, "-n") == 0)
      S.left = ex_long(argc, argv, &i, 1, 1000000000, usage);
    else if (a[0] == '-')
      ex_bad(usage, "unknown option '%s'", a);
    else if (path != NULL)
      ex_bad(usage, "one PATH only");
    else
      path = a;
  }
  if (path == NULL) ex_bad(usage, "missing PATH");
  if (recursive && poll_ms) ex_bad(usage, "-r and --poll do not mix");
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  S.polling = poll_ms > 0;
  int err;
  if (S.polling) {
    weft_fs_poll_init(loop, &S.p);
    err = weft_fs_poll_start(&S.p, path, (uint64_t)poll_ms, on_poll, NULL);
  } else {
    weft_watch_init(loop, &S.w);
    err = weft_watch_start(&S.w, path, 0, recursive ? WEFT_WATCH_RECURSIVE : 0,
                           on_event, NULL);
  }
  if (err != 0) {
    fprintf(stderr, "watch: %s: %s\n", path, weft_strerror(err));
    weft_close(S.polling ? &S.p.base : &S.w.base, NULL);
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    weft_loop_free(loop);
    return 1;
  }
  weft_signal_init(loop, &S.sig);
  weft_signal_start(&S.sig, on_sigint, SIGINT);
  weft_unref(&S.sig.base); /* only the watch keeps the loop going */
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return weft_loop_free(loop) == 0 ? 0 : 1;
}
