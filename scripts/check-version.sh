#!/usr/bin/env bash
# The version in one place: the Makefile's VERSION. Fails unless the
# header's WEFT_VERSION_MAJOR/MINOR/PATCH, weft_version() of $O/libweft.a,
# the generated weft.pc and weftConfigVersion.cmake all say VERSION, and
# the CHANGELOG has no released section newer than it.
# Usage: O=build VERSION=x.y.z scripts/check-version.sh   (make check-version)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}; CC=${CC:-cc}
case $O in /*) ;; *) O=$root/$O ;; esac
: "${VERSION:?set VERSION (make check-version does)}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "check-version: $*" >&2; fail=1; }

h=$root/include/weft/common.h
hv=$(awk '/^#define WEFT_VERSION_MAJOR/ {M=$3} /^#define WEFT_VERSION_MINOR/ {m=$3}
          /^#define WEFT_VERSION_PATCH/ {p=$3} END {print M "." m "." p}' "$h")
[ "$hv" = "$VERSION" ] || bad "include/weft/common.h says $hv, Makefile VERSION is $VERSION"

printf '#include <stdio.h>\n#include <weft.h>\nint main(void) { puts(weft_version()); return 0; }\n' >"$tmp/v.c"
$CC -std=c11 -I"$root/include" -o "$tmp/v" "$tmp/v.c" "$O/libweft.a" -lev -lcares -lpthread -lm
rv=$("$tmp/v")
[ "$rv" = "$VERSION" ] || bad "weft_version() returns $rv, Makefile VERSION is $VERSION"

# What `make install` writes, from the same templates.
MAKEFLAGS= make -s --no-print-directory -C "$root" O="$O" VERSION="$VERSION" install PREFIX="$tmp/p" >/dev/null
pv=$(PKG_CONFIG_PATH="$tmp/p/lib/pkgconfig" pkg-config --modversion weft)
[ "$pv" = "$VERSION" ] || bad "weft.pc says $pv, Makefile VERSION is $VERSION"
cv=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$tmp/p/lib/cmake/weft/weftConfigVersion.cmake")
[ "$cv" = "$VERSION" ] || bad "weftConfigVersion.cmake says $cv, Makefile VERSION is $VERSION"
[ -e "$tmp/p/lib/libweft.so.$VERSION" ] || bad "no libweft.so.$VERSION installed"

[ $fail -eq 0 ] && echo "check-version: $VERSION everywhere (Makefile, common.h, weft_version(), weft.pc, CMake)"
exit $fail
