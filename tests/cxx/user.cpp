// A C++ user of weft: includes every public header through <weft.h>, runs
// a loop with a timer and a future, and prints the layout of the public
// structs that carry private fields, so that scripts/test-headers.sh can
// compare them with what the C compiler sees (same ABI from both sides).
#include <weft.h>

#include <cstddef>
#include <cstdio>
#include <cstring>

static int fired;

extern "C" void on_timer(weft_timer *t) {
  fired++;
  weft_close(&t->base, nullptr);
}

int main(int argc, char **argv) {
  if (argc > 1 && std::strcmp(argv[1], "--layout") == 0) {
    std::printf("weft_work %zu %zu %zu\n", sizeof(weft_work),
                alignof(weft_work), offsetof(weft_work, status));
    std::printf("weft_fs_req %zu\n", sizeof(weft_fs_req));
    std::printf("weft_tcp %zu\nweft_timer %zu\nweft_udp %zu\n",
                sizeof(weft_tcp), sizeof(weft_timer), sizeof(weft_udp));
    std::printf("weft_fs_dir %zu weft_fs_buf %zu\n", sizeof(weft_fs_dir),
                sizeof(weft_fs_buf));
    return 0;
  }
  weft_loop *loop = nullptr;
  if (weft_loop_new(&loop, nullptr) != 0) return 1;
  weft_timer t;
  weft_timer_init(loop, &t);
  if (weft_timer_start(&t, on_timer, 1, 0) != 0) return 2;
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (weft_loop_free(loop) != 0) return 3;
  std::printf("c++ %ld: weft %s (headers %d.%d.%d) fired %d, %s\n",
              (long)__cplusplus, weft_version(), WEFT_VERSION_MAJOR,
              WEFT_VERSION_MINOR, WEFT_VERSION_PATCH, fired,
              weft_err_name(WEFT_ECLOSED));
  return fired == 1 ? 0 : 4;
}
