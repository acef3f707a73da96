#!/usr/bin/env bash
# Instructions per operation of the fibers rows, counted by callgrind
# (valgrind --tool=callgrind --toggle-collect=FUNCTION): unlike wall clock
# they do not depend on the machine's load, so two runs on a busy machine
# compare. User-space instructions only (a system call counts as the few
# instructions around it: swapcontext's sigprocmask is not in its figure).
# Each figure is the instructions executed inside the timed function of the
# workload divided by the operations it ran (BENCH_QUICK sizes; the warm-up
# pass is inside the same function for await and spawn, so both passes
# count and the division is by both):
#   fibers_switch_instr     weft (loop handoff, per switch), weft-raw (the
#                           bare switch), boost (jump_fcontext), swapcontext
#   fibers_await_instr      weft, weft-2 (per await)
#   fibers_spawn_instr      weft (per spawn + finish)
# Prints one JSON line per figure (unit "instr/op", lower is better).
# Usage: O=build bench/fibers/icount.sh [BUILD/bench/bench_fibers [SWITCH_BOOST]]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
prog=${1:-$O/bench/bench_fibers}
boost=${2:-$O/bench/fibers/switch_boost}
command -v valgrind >/dev/null || {
  echo "icount: valgrind not installed" >&2
  exit 1
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# count FUNCTION OPS command...: instructions inside FUNCTION per op
count() {
  local fn=$1 ops=$2
  shift 2
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="$fn" \
    "$@" >/dev/null 2>&1 || return 1
  awk -v ops="$ops" '/^summary:/ { printf "%.1f", $2 / ops; found = 1 }
    END { exit !found }' "$out"
}
emit() { # bench impl value
  [ -n "$3" ] || return 0
  printf '{"bench":"%s","impl":"%s","value":%s,"unit":"instr/op","better":"lower","runs":1}\n' "$1" "$2" "$3"
}

# bench_fibers' quick sizes: switches 100000 (swapcontext 10000), awaits
# and spawns 10000 per pass, two passes
export BENCH_QUICK=1 BENCH_RUNS=1
q=("$prog")
emit fibers_switch_instr weft "$(count switch_once 202000 "${q[@]}" switch)"
emit fibers_switch_instr weft-raw "$(count switch_raw 200000 "${q[@]}" switch)"
emit fibers_switch_instr swapcontext "$(count switch_uc 20000 "${q[@]}" switch)"
if [ -x "$boost" ]; then
  emit fibers_switch_instr boost "$(count main 200000 "$boost" 100000)"
fi
emit fibers_await_instr weft "$(count await_once 20000 "${q[@]}" await)"
emit fibers_await_instr weft-2 "$(count await2_once 20000 "${q[@]}" await)"
emit fibers_spawn_instr weft "$(count spawn_once 20000 "${q[@]}" spawn)"
