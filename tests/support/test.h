/* weft tests: every suite includes this. Under WEFT_PLAINRUN (the TSan
 * build) the Criterion surface maps onto plainrun.h. */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#ifdef WEFT_PLAINRUN
#include "plainrun.h"
#else
#include <criterion/criterion.h>
#endif

#include <weft.h>

#include "helpers.h"

#endif
