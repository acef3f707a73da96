#include "examples.h"

#include "test.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Next to the tests' directory, or two levels up from $(O)/asan/tests and
 * $(O)/tsan/tests. */
void th_example_path(const char *name, char *out, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(n, 0);
  self[n] = '\0';
  char *dir = dirname(self);
  snprintf(out, size, "%s/../examples/%s", dir, name);
  if (access(out, X_OK) != 0)
    snprintf(out, size, "%s/../../examples/%s", dir, name);
  cr_assert_eq(access(out, X_OK), 0, "%s not built at %s", name, out);
}

pid_t th_example_start(const char *name, const char **argv, int *out_fd) {
  char bin[PATH_MAX];
  th_example_path(name, bin, sizeof bin);
  argv[0] = bin;
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion ends us both */
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

int th_example_run(const char *name, const char **argv, char *out, size_t size,
                   double limit, double *secs) {
  int fd, status;
  double t0 = now_s();
  pid_t pid = th_example_start(name, argv, &fd);
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd, out + len, size - 1 - len)) > 0)
    len += (size_t)r;
  out[len] = '\0';
  close(fd);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_s() - t0 > limit) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      cr_assert_fail("%s did not finish within %g s; said: %s", name, limit,
                     out);
    }
    usleep(10000);
  }
  if (secs != NULL) *secs = now_s() - t0;
  cr_assert(WIFEXITED(status), "%s died of signal %d", name, WTERMSIG(status));
  return WEXITSTATUS(status);
}
