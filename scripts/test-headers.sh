#!/usr/bin/env bash
# `#include <weft.h>` works for every user: builds and runs tests/cxx/user.cpp
# with g++ -std=c++11/14/17/20/23 and with clang++ (-Wall -Wextra -Werror
# -pedantic), and tests/cxx/user_c11.c as strict ISO C11 with gcc and clang
# (no _GNU_SOURCE / _POSIX_C_SOURCE), each linked against $O/libweft.a; the
# public structs must have the same layout from C and from C++; WEFT_DT_*
# must equal <dirent.h>'s DT_*; every include/weft/*.h compiles on its own
# (C11 and C++11).
# Usage: O=build CC=cc scripts/test-headers.sh   (make check runs it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
lib=$O/libweft.a
[ -f "$lib" ] || { echo "headers: no $lib (make O=... lib)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
libs=(-lev -lcares -lpthread -lm)
strict=(-Wall -Wextra -Werror -pedantic -I"$root/include")
pass=0 fail=0
run() { # run LABEL COMMAND...: one check
  local label=$1; shift
  if "$@" >"$tmp/out" 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "headers: FAILED: $label" >&2; cat "$tmp/out" >&2
  fi
}
# clang 14 calls C++23 c++2b.
clangxx_std() { clang++ -std="$1" -x c++ -fsyntax-only /dev/null 2>/dev/null && echo "$1" || echo "$2"; }

layout_c=
for cc in gcc clang; do
  command -v $cc >/dev/null || { echo "headers: $cc missing (scripts/deps.sh test)" >&2; fail=$((fail + 1)); continue; }
  exe=$tmp/c11-$cc
  run "$cc -std=c11 build" $cc -std=c11 "${strict[@]}" -o "$exe" "$root/tests/cxx/user_c11.c" "$lib" "${libs[@]}"
  [ -x "$exe" ] || continue
  run "$cc -std=c11 run" sh -c "'$exe' | grep -q 'fired 1'"
  layout_c=$("$exe" --layout)
done
run "WEFT_DT_* == DT_*" gcc -std=c11 "${strict[@]}" -c -o "$tmp/dt.o" "$root/tests/cxx/dt_check.c"
[ -n "$layout_c" ] || { echo "headers: no C layout" >&2; fail=$((fail + 1)); }

for cxx in g++ clang++; do
  command -v $cxx >/dev/null || { echo "headers: $cxx missing (scripts/deps.sh test)" >&2; fail=$((fail + 1)); continue; }
  for std in c++11 c++14 c++17 c++20 c++23; do
    s=$std
    [ $cxx = clang++ ] && [ $std = c++23 ] && s=$(clangxx_std c++23 c++2b)
    exe=$tmp/cxx-$cxx-$std
    run "$cxx -std=$s build" $cxx -std="$s" "${strict[@]}" -o "$exe" "$root/tests/cxx/user.cpp" "$lib" "${libs[@]}"
    [ -x "$exe" ] || continue
    run "$cxx -std=$s run" sh -c "'$exe' | grep -q 'fired 1'"
    if [ -n "$layout_c" ]; then
      run "$cxx -std=$s layout equals C's" sh -c "[ \"\$('$exe' --layout)\" = \"\$1\" ]" _ "$layout_c"
    fi
  done
done
# Every header on its own (self-contained), strict C11 and C++11, so that
# one <weft.h> does not include is covered too.
for h in "$root"/include/weft/*.h; do
  hn=${h##*/}
  printf '#include <weft/%s>\nint weft_header_only(void);\nint weft_header_only(void) { return 0; }\n' "$hn" >"$tmp/one.c"
  run "weft/$hn alone, gcc -std=c11" gcc -std=c11 "${strict[@]}" -c -o "$tmp/one.o" "$tmp/one.c"
  if command -v g++ >/dev/null; then
    run "weft/$hn alone, g++ -std=c++11" g++ -std=c++11 -x c++ "${strict[@]}" -c -o "$tmp/one.o" "$tmp/one.c"
  fi
done
echo "headers: C11 (gcc, clang) and C++11..23 (g++, clang++) users build, run, same layout; each header alone"
echo "headers: $pass passed, $fail failed"
[ $fail -eq 0 ]
