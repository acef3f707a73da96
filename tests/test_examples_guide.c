/* The guide's programs run as a user runs them (docs/guide/): the first
 * program in its three styles (examples/first_callbacks, first_futures,
 * first_fibers), and the "Choosing" programs (examples/models_map,
 * models_prodcons, models_fetch), each in its three models, with the exact
 * results checked: the prime count of a small map, the sum of a
 * producer/consumer, the bytes of every page from the slow server (started
 * here on a free loopback port, read back). Every run has a deadline. */
#include "support/test.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "support/examples.h"

static const char *const models[] = {"threads", "processes", "async"};

Test(examples_guide, the_first_program_in_three_styles, .timeout = 30) {
  const char *const styles[] = {"first_callbacks", "first_futures",
                                "first_fibers"};
  for (size_t i = 0; i < 3; i++) {
    char out[256];
    const char *argv[] = {NULL, NULL};
    int rc = th_example_run(styles[i], argv, out, sizeof out, 20, NULL);
    cr_expect_eq(rc, 0, "%s: exit %d: %s", styles[i], rc, out);
    cr_expect_str_eq(out, "the server answered: HELLO\n", "%s", styles[i]);
  }
}

Test(examples_guide, map_counts_the_primes_in_every_model, .timeout = 60) {
  for (size_t i = 0; i < 3; i++) {
    char out[256], expect[128];
    const char *argv[] = {NULL, "--model", models[i], "-c", "16",
                          "-w", "5000",    "-j",      "2",  NULL};
    int rc = th_example_run("models_map", argv, out, sizeof out, 50, NULL);
    cr_expect_eq(rc, 0, "%s: exit %d: %s", models[i], rc, out);
    /* 80000: pi(80000) = 7837 */
    snprintf(expect, sizeof expect,
             "%-9s 16 chunks: 7837 primes below 80000 in ", models[i]);
    cr_expect_eq(strncmp(out, expect, strlen(expect)), 0, "%s", out);
  }
}

Test(examples_guide, prodcons_sums_every_item_in_every_model, .timeout = 60) {
  for (size_t i = 0; i < 3; i++) {
    char out[256], expect[128];
    const char *argv[] = {NULL, "--model", models[i], "-n", "20000", NULL};
    int rc = th_example_run("models_prodcons", argv, out, sizeof out, 50, NULL);
    cr_expect_eq(rc, 0, "%s: exit %d: %s", models[i], rc, out);
    snprintf(expect, sizeof expect, "%-9s 20000 items, sum 200010000 in ",
             models[i]);
    cr_expect_eq(strncmp(out, expect, strlen(expect)), 0, "%s", out);
  }
}

Test(examples_guide, fetch_gets_every_page_in_every_model, .timeout = 60) {
  int fd;
  const char *sv[] = {NULL, "--serve", "--delay", "5", "--size", "100", NULL};
  pid_t server = th_example_start("models_fetch", sv, &fd);
  FILE *f = fdopen(fd, "r");
  unsigned port = 0;
  cr_assert_eq(fscanf(f, "models_fetch: serving on 127.0.0.1:%u", &port), 1);
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%u", port);
  /* a reply is "HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n" + 100 */
  const long reply = 17 + 21 + 2 + 100;
  for (size_t i = 0; i < 3; i++) {
    char out[256], expect[128];
    const char *argv[] = {NULL, "--model", models[i], "--port", portstr,
                          "-n", "60",      "-c",      "8",      NULL};
    int rc = th_example_run("models_fetch", argv, out, sizeof out, 50, NULL);
    cr_expect_eq(rc, 0, "%s: exit %d: %s", models[i], rc, out);
    snprintf(expect, sizeof expect, "%-9s 60 pages, 8 at once: %ld bytes in ",
             models[i], 60 * reply);
    cr_expect_eq(strncmp(out, expect, strlen(expect)), 0, "%s", out);
  }
  kill(server, SIGTERM);
  int status;
  cr_assert_eq(waitpid(server, &status, 0), server);
  fclose(f);
}

Test(examples_guide, fetch_without_a_server_fails_cleanly, .timeout = 30) {
  /* port 1 on loopback: nobody listens (connect is refused) */
  for (size_t i = 0; i < 3; i++) {
    char out[256];
    const char *argv[] = {NULL, "--model", models[i], "--port", "1",
                          "-n", "3",       "-c",      "2",      NULL};
    int rc = th_example_run("models_fetch", argv, out, sizeof out, 25, NULL);
    cr_expect_eq(rc, 1, "%s: exit %d: %s", models[i], rc, out);
    cr_expect_str_eq(out, "", "%s", models[i]);
  }
}
