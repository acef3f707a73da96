/* WEFT_DT_* equal <dirent.h>'s DT_* (fs.h promises that either name works). */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <weft.h>

_Static_assert(WEFT_DT_UNKNOWN == DT_UNKNOWN, "DT_UNKNOWN");
_Static_assert(WEFT_DT_FIFO == DT_FIFO, "DT_FIFO");
_Static_assert(WEFT_DT_CHR == DT_CHR, "DT_CHR");
_Static_assert(WEFT_DT_DIR == DT_DIR, "DT_DIR");
_Static_assert(WEFT_DT_BLK == DT_BLK, "DT_BLK");
_Static_assert(WEFT_DT_REG == DT_REG, "DT_REG");
_Static_assert(WEFT_DT_LNK == DT_LNK, "DT_LNK");
_Static_assert(WEFT_DT_SOCK == DT_SOCK, "DT_SOCK");
int weft_dt_check(void);
int weft_dt_check(void) { return 0; }
