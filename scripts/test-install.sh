#!/usr/bin/env bash
# Installs weft into a temporary prefix and builds a program against it with
# pkg-config, as a user would; then runs it, and uninstalls.
set -euo pipefail
O=${O:-build}; CC=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
make -s --no-print-directory O="$O" install PREFIX="$tmp/prefix" >/dev/null
cat >"$tmp/x.c" <<'C'
#include <stdio.h>
#include <weft.h>
static int fired;
static void on_timer(weft_timer *t) { fired++; weft_close(&t->base, NULL); }
int main(void) {
  weft_loop *loop;
  weft_timer t;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  weft_timer_init(loop, &t);
  weft_timer_start(&t, on_timer, 1, 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (weft_loop_free(loop) != 0) return 2;
  printf("weft %s fired %d\n", weft_version(), fired);
  return fired == 1 ? 0 : 3;
}
C
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
# shared
$CC -o "$tmp/x" "$tmp/x.c" $(pkg-config --cflags --libs weft)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/x" | grep -q "fired 1"
# static
$CC -o "$tmp/xs" "$tmp/x.c" $(pkg-config --cflags weft) "$tmp/prefix/lib/libweft.a" \
    $(pkg-config --libs-only-l --static weft | sed 's/-lweft//')
"$tmp/xs" | grep -q "fired 1"
# exported symbols: weft_* only
bad=$(nm -D --defined-only "$tmp/prefix/lib/libweft.so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^weft_' || true)
[ -z "$bad" ] || { echo "non-weft symbols exported: $bad" >&2; exit 1; }
make -s --no-print-directory O="$O" uninstall PREFIX="$tmp/prefix" >/dev/null
[ ! -e "$tmp/prefix/include/weft.h" ] && [ ! -e "$tmp/prefix/lib/libweft.so" ]
echo "install: pkg-config build (shared and static) ok, exports weft_* only, uninstall ok"
echo "install: 1 passed, 0 failed"
