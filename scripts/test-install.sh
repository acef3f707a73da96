#!/usr/bin/env bash
# Installs weft into a temporary prefix and uses it as a user would:
#   - pkg-config: a shared and a static build (static libs listed once);
#   - the prefix moved elsewhere: pkg-config --define-prefix and CMake
#     still find it (weft.pc and weftConfig.cmake are relocatable);
#   - CMake: find_package(weft 0.1) with weft::weft and weft::weft_static,
#     and a version it must refuse (find_package(weft 1.0));
#   - run time: `make install` says how the shared library will be found
#     (here: LD_LIBRARY_PATH), and following it works;
#   - exports: weft_* only;
#   - uninstall leaves nothing behind (the prefix it created is gone).
# With WEFT_TEST_SYSTEM_INSTALL=1 (the fresh-root check sets it; it writes
# to /usr/local, so never on a shared machine) also: `make install` as root
# into /usr/local runs ldconfig and a program runs with no LD_LIBRARY_PATH;
# `make uninstall` removes it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}; CC=${CC:-cc}
case $O in /*) ;; *) O=$root/$O ;; esac
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mk() { MAKEFLAGS= make -s --no-print-directory -C "$root" O="$O" "$@"; }
fail() { echo "install: FAILED: $*" >&2; exit 1; }
P=$tmp/prefix
mk install PREFIX="$P" >"$tmp/install.out"
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
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
# pkg-config, shared: make install said what to do for run time; do it
$CC -o "$tmp/x" "$tmp/x.c" $(pkg-config --cflags --libs weft)
grep -q "LD_LIBRARY_PATH=$P/lib" "$tmp/install.out" ||
  fail "make install did not say how to find $P/lib at run time: $(cat "$tmp/install.out")"
LD_LIBRARY_PATH="$P/lib" "$tmp/x" | grep -q "fired 1" || fail "shared build"
# pkg-config, static: every library once
static=$(pkg-config --libs --static weft)
dups=$(tr ' ' '\n' <<<"$static" | grep '^-l' | sort | uniq -d)
[ -z "$dups" ] || fail "pkg-config --static lists $dups twice: $static"
$CC -o "$tmp/xs" "$tmp/x.c" $(pkg-config --cflags weft) "$P/lib/libweft.a" \
    $(pkg-config --libs-only-l --static weft | sed 's/-lweft//')
"$tmp/xs" | grep -q "fired 1" || fail "static build"
# relocatable weft.pc: every path but prefix is ${prefix}-relative
grep -q '^libdir=${prefix}/lib$' "$P/lib/pkgconfig/weft.pc" &&
  grep -q '^includedir=${prefix}/include$' "$P/lib/pkgconfig/weft.pc" || fail "weft.pc not relocatable"
# exported symbols: weft_* only
bad=$(nm -D --defined-only "$P/lib/libweft.so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^weft_' || true)
[ -z "$bad" ] || fail "non-weft symbols exported: $bad"

# CMake
if command -v cmake >/dev/null; then
  mkdir -p "$tmp/cm"
  cp "$tmp/x.c" "$tmp/cm/x.c"
  cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.13)
project(weft_user C)
find_package(weft 0.1 REQUIRED)
add_executable(x x.c)
target_link_libraries(x PRIVATE weft::weft)
add_executable(xs x.c)
target_link_libraries(xs PRIVATE weft::weft_static)
CM
  cmk() { # cmk SRC BUILD PREFIX_PATH: configure and build
    cmake -S "$1" -B "$2" -DCMAKE_PREFIX_PATH="$3" -DCMAKE_C_COMPILER="$CC" >"$tmp/cmake.log" 2>&1 &&
      cmake --build "$2" >>"$tmp/cmake.log" 2>&1
  }
  cmk "$tmp/cm" "$tmp/cm/b" "$P" || { cat "$tmp/cmake.log" >&2; fail "CMake find_package build"; }
  # CMake gives the imported shared target an rpath in the build tree
  "$tmp/cm/b/x" | grep -q "fired 1" || fail "CMake weft::weft program"
  "$tmp/cm/b/xs" | grep -q "fired 1" || fail "CMake weft::weft_static program"
  mkdir -p "$tmp/cm2"
  cp "$tmp/cm/x.c" "$tmp/cm2/"
  sed 's/find_package(weft 0.1 REQUIRED)/find_package(weft 1.0 QUIET)\nif(weft_FOUND)\n  message(FATAL_ERROR "weft 1.0 accepted")\nendif()/' \
    "$tmp/cm/CMakeLists.txt" | sed '/add_executable\|target_link/d' >"$tmp/cm2/CMakeLists.txt"
  cmk "$tmp/cm2" "$tmp/cm2/b" "$P" || { cat "$tmp/cmake.log" >&2; fail "find_package(weft 1.0) accepted $(cat "$root/Makefile" | sed -n 's/^VERSION := //p')"; }
  cmake_done="CMake find_package (shared, static, version check) ok, "
else
  echo "install: cmake missing (scripts/deps.sh test installs it)" >&2; exit 1
fi

# the whole tree moved: pkg-config --define-prefix and CMake follow it
mv "$P" "$tmp/moved"
M=$tmp/moved
PKG_CONFIG_PATH="$M/lib/pkgconfig" pkg-config --define-prefix --cflags weft | grep -q -- "-I$M/include" ||
  fail "pkg-config --define-prefix does not follow the moved tree"
$CC -o "$tmp/xm" "$tmp/x.c" $(PKG_CONFIG_PATH="$M/lib/pkgconfig" pkg-config --define-prefix --cflags --libs weft)
LD_LIBRARY_PATH="$M/lib" "$tmp/xm" | grep -q "fired 1" || fail "moved tree, pkg-config build"
rm -rf "$tmp/cm/b"
cmk "$tmp/cm" "$tmp/cm/b" "$M" || { cat "$tmp/cmake.log" >&2; fail "moved tree, CMake build"; }
"$tmp/cm/b/x" | grep -q "fired 1" || fail "moved tree, CMake program"
mv "$M" "$P"

# uninstall: nothing left, not even the prefix install created
mk uninstall PREFIX="$P" >/dev/null
[ ! -e "$P" ] || fail "uninstall left: $(cd "$P" && find . | head -20 | tr '\n' ' ')"
# install into an existing prefix with other files: uninstall keeps them
mkdir -p "$tmp/p2/lib/pkgconfig" && touch "$tmp/p2/lib/pkgconfig/other.pc"
mk install PREFIX="$tmp/p2" >/dev/null
mk install PREFIX="$tmp/p2" >/dev/null # a reinstall keeps the manifest's directories
mk uninstall PREFIX="$tmp/p2" >/dev/null
left=$(cd "$tmp/p2" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$left" = "./lib ./lib/pkgconfig ./lib/pkgconfig/other.pc " ] || fail "uninstall in a shared prefix left: $left"
sys=
if [ "${WEFT_TEST_SYSTEM_INSTALL:-0}" = 1 ] && [ "$(id -u)" -eq 0 ]; then
  mk install >"$tmp/sys.out" # PREFIX=/usr/local
  grep -q "run-time linker finds /usr/local/lib/libweft.so" "$tmp/sys.out" ||
    fail "system install: $(cat "$tmp/sys.out")"
  $CC -o "$tmp/xsys" "$tmp/x.c" $(PKG_CONFIG_PATH=/usr/local/lib/pkgconfig pkg-config --cflags --libs weft)
  env -u LD_LIBRARY_PATH "$tmp/xsys" | grep -q "fired 1" || fail "system install: program does not run"
  mk uninstall >/dev/null
  [ ! -e /usr/local/lib/libweft.so ] && [ ! -e /usr/local/include/weft.h ] &&
    [ ! -e /usr/local/lib/cmake/weft ] || fail "system uninstall left files"
  sys="system prefix (ldconfig, no LD_LIBRARY_PATH) ok, "
fi
echo "install: pkg-config (shared, static, no duplicate libs) ok, ${cmake_done}relocated tree ok, ${sys}exports weft_* only, uninstall leaves nothing"
echo "install: 1 passed, 0 failed"
