#!/usr/bin/env bash
# Installs, from Debian's packages, what one step of weft's build needs,
# when missing. As root it runs apt-get; otherwise it prints the exact
# command and exits 1. The Makefile calls each step once (a stamp per step,
# build/.deps-STEP):
#   scripts/deps.sh lib       the library: make, make lib, make install
#   scripts/deps.sh examples  lib + what examples/ link (make examples)
#   scripts/deps.sh test      examples + the tests' servers and tools, the
#                             C++ header test, clang and clang-format
#                             (make check, check-format, fuzz, CI's clang build)
#   scripts/deps.sh bench     examples + every benchmark's peers (make bench)
#   scripts/deps.sh docs      the API reference (make docs, check-docs)
#   scripts/deps.sh cross     the aarch64 cross compiler and qemu-user
#                             (make check-aarch64)
#   scripts/deps.sh --list STEP   prints the packages of STEP, installs nothing
# The compiler (gcc, libc6-dev) and make are taken as given.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

pkgs() {
  case $1 in
    lib) echo libev-dev libc-ares-dev pkg-config ;;
    # examples/httpd parses HTTP with http-parser; examples/tree_sum takes
    # zlib's crc32 (as its asyncio twin's zlib.crc32)
    examples) echo "$(pkgs lib)" libhttp-parser-dev zlib1g-dev ;;
    # criterion: the suites; dnsmasq: the DNS suites' name server; curl:
    # test_httpd; redis-tools/redis-server: test_kvd and make fuzz; nginx:
    # make fuzz's HTTP differential; python3: the HTTP fuzzer; g++/clang:
    # scripts/test-headers.sh and CI's clang build; clang-format:
    # check-format; cmake: scripts/test-install.sh's find_package build
    test) echo "$(pkgs examples)" libcriterion-dev dnsmasq-base curl \
        redis-tools redis-server nginx-light python3 g++ clang clang-format cmake ;;
    # libuv1-dev: the libuv twins; wrk + nginx: bench_httpd; redis:
    # bench_kvd; nodejs: bench_futures' Node twins; python3-uvloop: the
    # asyncio/uvloop twins; g++ + libboost-context-dev: the fiber peers;
    # gnuplot: the report's charts
    bench) echo "$(pkgs examples)" libuv1-dev wrk nginx-light redis-tools \
        redis-server nodejs python3 python3-uvloop g++ libboost-context-dev gnuplot-nox ;;
    # doxygen: make docs; python3 + binutils (nm): scripts/check-docs.sh
    docs) echo doxygen python3 binutils ;;
    # make check-aarch64: the fiber switch test built for aarch64
    # (static) and run under qemu-user
    cross) echo gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user ;;
    *) return 1 ;;
  esac
}

list=0
case ${1:-} in
  -h|--help) usage; exit 0 ;;
  --list) list=1; shift ;;
esac
step=${1:-}
if [ -z "$step" ] || ! read -ra PKGS <<<"$(pkgs "$step" 2>/dev/null)" || [ ${#PKGS[@]} -eq 0 ]; then
  echo "deps: unknown step '${step}'" >&2
  usage >&2
  exit 2
fi
if [ $list -eq 1 ]; then echo "${PKGS[*]}"; exit 0; fi

# `make -j2 check` runs several steps at once (test, docs, ...): one
# installs at a time, the others wait and then find their packages there
# (apt would refuse a second install with "Unable to acquire the dpkg
# frontend lock"). DPkg::Lock::Timeout waits for any other apt as well.
if [ $list -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
  exec 9>"${TMPDIR:-/tmp}/weft-deps.lock"
  flock 9
fi
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "weft: step '$step' needs Debian packages: ${missing[*]}" >&2
  echo "weft: run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "weft: deps $step: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale package list is the usual reason an install fails: update, retry.
apt=(apt-get -o DPkg::Lock::Timeout=600)
if ! "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi
