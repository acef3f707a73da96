#!/usr/bin/env bash
# Runs, in a fresh Debian 12 root, what a new user runs: `make lib` (which
# must install the library's packages and nothing of the tests' or the
# benchmarks'), the README's `make install` and a C program built against
# the installed library with pkg-config (found at run time with no
# LD_LIBRARY_PATH); then `make check` twice: once with no /etc/hosts, once
# with Debian's stock one (localhost on 127.0.0.1 and ::1), with the
# system-prefix install test on (WEFT_TEST_SYSTEM_INSTALL=1); then a C++
# program against the installed library; with --bench also `make bench
# BENCH_QUICK=1 BENCH_RUNS=1`, after which the tree must be unchanged. So
# tests cannot come to depend on what the build machine happens to have
# installed or listed in its /etc/hosts, and a missing install step shows.
#
# Usage (as root): scripts/fresh-root-check.sh [COMMIT] [--keep] [--bench] [--dir DIR]
#   COMMIT  what to test (default HEAD of this repository; committed work
#           only: the root gets a git clone, not the working tree)
#   --keep  leave the root in place afterwards (default: delete it)
#   --bench also run the quick benchmark report (installs the peers)
#   --dir   where to build the root (default: a new directory under /tmp)
# Environment: MIRROR (a Debian mirror URL for mmdebstrap, default its own),
# MAKE_J (the -j for the build step, default 2; the tests run as
# `make -k check`: CI's `make check`, carrying on to the ASan+UBSan run
# when the plain one fails, so that one run shows every failure).
#
# The root is `mmdebstrap --variant=apt --include=ca-certificates,git,make,
# gcc,libc6-dev bookworm`; everything else the build and tests need must be
# installed by the repository itself (scripts/deps.sh, called by make).
# /proc, /sys, /dev and /dev/pts are mounted into it and /etc/resolv.conf
# copied; every exit path unmounts them again (trap) before anything is
# deleted. Prints the time of each step. Exit status: 0 when every step
# passed, 1 otherwise, 2 when the root could not be prepared.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
commit=HEAD keep=0 dir= bench=0
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=1 ;;
    --bench) bench=1 ;;
    --dir) dir=$2; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    -*) echo "fresh-root-check: unknown option $1" >&2; exit 2 ;;
    *) commit=$1 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "fresh-root-check: run as root" >&2; exit 2; }
rev=$(git -C "$repo" rev-parse --verify "$commit^{commit}") || exit 2
[ -n "$dir" ] || dir=$(mktemp -d /tmp/weft-fresh-root.XXXXXX)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ "$dir" != / ] || { echo "fresh-root-check: refusing DIR=/" >&2; exit 2; }

t0=$(date +%s)
step_start=$t0
step() { # step NAME: prints the time the previous step took
  local now; now=$(date +%s)
  printf 'fresh-root-check: %-34s (%4ds, total %4ds)\n' "$1" \
    $((now - step_start)) $((now - t0))
  step_start=$now
}

mounts=(proc sys dev dev/pts)
# Kills what is still running inside the root (servers a failed test left
# behind), found by each process's root directory, then unmounts.
cleanup() {
  local rc=$? p m
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$dir" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m="$dir/${mounts[i]}"
    if mountpoint -q "$m" 2>/dev/null; then
      umount "$m" 2>/dev/null || umount -l "$m" || true
    fi
  done
  local busy=0
  for m in "${mounts[@]}"; do
    mountpoint -q "$dir/$m" 2>/dev/null && busy=1
  done
  if [ $keep -eq 0 ] && [ $busy -eq 0 ]; then
    rm -rf --one-file-system "$dir"
  else
    echo "fresh-root-check: root left in $dir" >&2
  fi
  step "cleanup"
  exit $rc
}
trap cleanup EXIT
trap 'exit 2' INT TERM HUP

if ! command -v mmdebstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; }
fi

echo "fresh-root-check: testing $rev in $dir"
mmdebstrap --quiet --variant=apt --include=ca-certificates,git,make,gcc,libc6-dev \
  bookworm "$dir" ${MIRROR:+"$MIRROR"} || exit 2
step "mmdebstrap"

git clone -q --no-local "$repo" "$dir/root/weft"
git -C "$dir/root/weft" -c advice.detachedHead=false checkout -q "$rev"
for m in "${mounts[@]}"; do
  mkdir -p "$dir/$m"
  case $m in
    proc) mount -t proc proc "$dir/proc" ;;
    *) mount --bind "/$m" "$dir/$m" ;;
  esac
done
rm -f "$dir/etc/resolv.conf"
cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
# Packages scripts/deps.sh installs (nginx, redis) must not start services.
printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
chmod +x "$dir/usr/sbin/policy-rc.d"
step "clone, mounts"

# A clean environment, and no file descriptors but 0-2 from the caller
# (a CI runner's or a terminal's), as on a freshly booted machine.
inroot() (
  for fd in $(ls /proc/$BASHPID/fd); do
    if [ "$fd" -gt 2 ] && [ "$fd" != 255 ]; then eval "exec $fd>&-"; fi
  done
  exec chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 /bin/bash -c "cd /root/weft && $1" 255>&-
)

inroot "make -j${MAKE_J:-2} lib" || exit 2
step "deps and build (make lib)"

status=0
# make lib installs the library's packages only
extra=$(inroot "for p in libcriterion-dev nginx-light redis-server dnsmasq-base wrk nodejs gnuplot-nox libuv1-dev; do
  dpkg-query -W -f='\${Status}' \$p 2>/dev/null | grep -q 'install ok installed' && echo \$p; done" || true)
if [ -z "$extra" ]; then rl=passed; else rl="FAILED (also installed: $(echo $extra))"; status=1; fi
step "make lib: library deps only: $rl"

# The README's install, then a user's C program against it (no
# LD_LIBRARY_PATH: make install ran ldconfig).
user_c='#include <stdio.h>
#include <weft.h>
int main(void) { weft_loop *l; if (weft_loop_new(&l, NULL)) return 1;
  printf("weft %s\n", weft_version()); return weft_loop_free(l); }'
if inroot "make install >/tmp/install.log && printf '%s\n' '$user_c' >/tmp/u.c &&
    cc -std=c11 -Wall -Wextra -Werror -pedantic -o /tmp/u /tmp/u.c \$(pkg-config --cflags --libs weft) &&
    /tmp/u | grep -q '^weft ' && make uninstall >/dev/null"; then ri=passed; else ri=FAILED; status=1; fi
step "make install, C user program: $ri"

rm -f "$dir/etc/hosts"
if inroot "WEFT_TEST_SYSTEM_INSTALL=1 make -k check"; then r1=passed; else r1=FAILED; status=1; fi
step "make check, no /etc/hosts: $r1"

cat >"$dir/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	fresh-root

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
EOF
if inroot "WEFT_TEST_SYSTEM_INSTALL=1 make -k check"; then r2=passed; else r2=FAILED; status=1; fi
step "make check, stock /etc/hosts: $r2"

# A C++ user of the installed library (g++ came with the test step).
if inroot "make install >/dev/null && g++ -std=c++17 -Wall -Wextra -Werror -pedantic -o /tmp/ux tests/cxx/user.cpp \$(pkg-config --cflags --libs weft) &&
    /tmp/ux | grep -q 'fired 1' && make uninstall >/dev/null"; then rx=passed; else rx=FAILED; status=1; fi
step "C++ program, installed library: $rx"

rb=skipped
if [ $bench -eq 1 ]; then
  if inroot "make -j${MAKE_J:-2} benches && BENCH_QUICK=1 BENCH_RUNS=1 make bench && test -z \"\$(git status --porcelain)\" &&
      test -s build/bench-results/REPORT.md"; then rb=passed; else rb=FAILED; status=1; fi
  step "make bench BENCH_QUICK=1, tree clean: $rb"
fi

echo "fresh-root-check: make lib deps: $rl; install + C program: $ri; no /etc/hosts: $r1; stock /etc/hosts: $r2; C++ program: $rx; bench: $rb"
exit $status
