#!/usr/bin/env bash
# Installs what weft's build, tests, examples and benchmarks need from
# Debian's packages, when missing. As root it runs apt-get; otherwise it
# prints the exact command and exits non-zero. The Makefile calls it once
# (build/.deps-stamp).
set -euo pipefail

# library build and tests
PKGS=(libev-dev libc-ares-dev libcriterion-dev pkg-config)
# make format / check-format, and the clang build CI does
PKGS+=(clang-format clang)
# benchmarks' peers and the servers tests start
PKGS+=(libuv1-dev dnsmasq-base)
# examples/httpd, its tests (curl) and its benchmark (wrk, nginx)
PKGS+=(libhttp-parser-dev curl wrk nginx-light)
# examples/kvd: its tests (redis-cli) and its benchmark (redis-benchmark,
# redis-server)
PKGS+=(redis-tools redis-server)
# the benchmark report's charts
PKGS+=(gnuplot-nox)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "weft: missing Debian packages: ${missing[*]}" >&2
  echo "weft: run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "weft: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale package list is the usual reason an install fails: update, retry.
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
