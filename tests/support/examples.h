/* Running the programs in examples/ from a test, as a user runs them:
 * found next to the test binary's build tree, stdout captured, every run
 * bounded by a deadline (killed and failed past it). */
#ifndef WEFT_TEST_EXAMPLES_H
#define WEFT_TEST_EXAMPLES_H

#include <stddef.h>
#include <sys/types.h>

/* $(O)/examples/NAME into out (the test fails if it is not built). */
void th_example_path(const char *name, char *out, size_t size);

/* Starts examples/NAME with argv (NULL-terminated; argv[0] is replaced by
 * the binary's path), stdout into a pipe whose read end goes to *out_fd.
 * The child is killed if the test process dies. */
pid_t th_example_start(const char *name, const char **argv, int *out_fd);

/* Runs examples/NAME to the end within `limit` seconds: its stdout into
 * out (NUL-terminated, cut to size - 1), its exit status returned (the
 * test fails on a signal death or the deadline), the time it took in
 * *secs (may be NULL). */
int th_example_run(const char *name, const char **argv, char *out, size_t size,
                   double limit, double *secs);

#endif
