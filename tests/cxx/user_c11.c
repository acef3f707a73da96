/* A strict ISO C11 user of weft (no _GNU_SOURCE, no _POSIX_C_SOURCE):
 * the same program and layout print as user.cpp. */
#include <weft.h>

#include <stdalign.h>
#include <stdio.h>
#include <string.h>

static int fired;

static void on_timer(weft_timer *t) {
  fired++;
  weft_close(&t->base, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--layout") == 0) {
    printf("weft_work %zu %zu %zu\n", sizeof(weft_work), alignof(weft_work),
           offsetof(weft_work, status));
    printf("weft_fs_req %zu\n", sizeof(weft_fs_req));
    printf("weft_tcp %zu\nweft_timer %zu\nweft_udp %zu\n", sizeof(weft_tcp),
           sizeof(weft_timer), sizeof(weft_udp));
    printf("weft_fs_dir %zu weft_fs_buf %zu\n", sizeof(weft_fs_dir),
           sizeof(weft_fs_buf));
    return 0;
  }
  weft_loop *loop = NULL;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  weft_timer t;
  weft_timer_init(loop, &t);
  if (weft_timer_start(&t, on_timer, 1, 0) != 0) return 2;
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (weft_loop_free(loop) != 0) return 3;
  printf("c %ld: weft %s (headers %d.%d.%d) fired %d, %s\n",
         (long)__STDC_VERSION__, weft_version(), WEFT_VERSION_MAJOR,
         WEFT_VERSION_MINOR, WEFT_VERSION_PATCH, fired,
         weft_err_name(WEFT_ECLOSED));
  return fired == 1 ? 0 : 4;
}
