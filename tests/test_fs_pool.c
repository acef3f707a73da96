/* tests/test_fs.c again with every fs operation on the pool
 * (WEFT_FS_BACKEND=pool): the backend a kernel without io_uring gets. */
#include <stdlib.h>

__attribute__((constructor)) static void force_pool(void) {
  setenv("WEFT_FS_BACKEND", "pool", 1);
}

#include "test_fs.c"
