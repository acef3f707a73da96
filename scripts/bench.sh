#!/usr/bin/env bash
# Runs weft's benchmark programs and prints a comparison table.
#
# Usage: O=build scripts/bench.sh [NAME]      (normally via `make bench`)
#   NAME   run only $O/bench/bench_NAME (e.g. timers); default: all of them.
# Environment: BENCH_RUNS (repetitions, default 5), BENCH_QUICK=1 (small N).
#
# Every program prints one JSON line per (benchmark, impl) on stdout; they
# all go to $O/bench-results/latest.jsonl (rewritten each run), after one
# {"meta":...} line describing the machine, and scripts/bench-report.sh
# turns them into $O/bench-results/REPORT.md and its charts. Nothing under
# bench/ is written: `make bench-publish` copies a full run's report to
# bench/results/. An impl that cannot run (a peer missing) prints a
# {"skipped":"reason"} line instead of a value (bench_skip()), shown as
# "skipped: reason" in the table and the report. A program that fails its
# own verification exits non-zero: it is reported, the others still run,
# and this script exits 1.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
results=$O/bench-results
out=$results/latest.jsonl

if [ $# -gt 0 ] && [ -n "$1" ]; then
  bins=("$O/bench/bench_$1")
else
  bins=("$O"/bench/bench_*)
  # a bench that is only a script (bench/NAME/run.sh, no bench_NAME.c)
  for r in "$root"/bench/*/run.sh; do
    n=${r%/run.sh}; n=${n##*/}
    [ -e "$root/bench/bench_$n.c" ] || bins+=("$O/bench/bench_$n")
  done
fi
for b in "${bins[@]}"; do
  n=${b##*/bench_}
  [ -x "$root/bench/$n/run.sh" ] && [ ! -e "$root/bench/bench_$n.c" ] && continue
  if [ ! -x "$b" ]; then
    echo "bench: no benchmark program $b (run 'make O=... benches')" >&2
    exit 2
  fi
done

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

ev_version() {
  local h=/usr/include/ev.h
  [ -r "$h" ] || { echo unknown; return; }
  awk '/define EV_VERSION_MAJOR/ {M=$3} /define EV_VERSION_MINOR/ {m=$3}
       END {print M "." m}' "$h"
}

meta() {
  local cpu
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null)
  printf '{"meta":{"date":%s,"host":%s,"nproc":%s,"cpu":%s,"kernel":%s,' \
    "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$(json_str "$(hostname)")" \
    "$(nproc)" "$(json_str "${cpu:-unknown}")" "$(json_str "$(uname -r)")"
  printf '"libuv":%s,"libev":%s,"weft_commit":%s,"runs":%s,"quick":%s}}\n' \
    "$(json_str "$(pkg-config --modversion libuv 2>/dev/null || echo unknown)")" \
    "$(json_str "$(ev_version)")" \
    "$(json_str "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)")" \
    "${BENCH_RUNS:-5}" "$([ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ] && echo true || echo false)"
  # subset: only some programs ran (NAME, BENCH_IMPL); bench-publish refuses it
  printf '{"meta_run":{"subset":%s,"programs":%s}}\n' \
    "$([ ${#bins[@]} -lt "$(ls "$O"/bench/bench_* 2>/dev/null | wc -l)" ] || [ -n "${BENCH_IMPL:-}" ] && echo true || echo false)" \
    "${#bins[@]}"
}

mkdir -p "$results"
meta >"$out"

status=0
i=0
for b in "${bins[@]}"; do
  i=$((i + 1))
  name=${b##*/bench_}
  echo "bench: [$i/${#bins[@]}] $name (runs=${BENCH_RUNS:-5}${BENCH_QUICK:+, quick})" >&2
  start=$(date +%s)
  run=("$b") # bench/NAME/run.sh, if there, runs the program with its peers
  [ -x "$root/bench/$name/run.sh" ] && run=(env O="$O" "$root/bench/$name/run.sh" "$b")
  if "${run[@]}" >>"$out"; then
    echo "bench: [$i/${#bins[@]}] $name done in $(($(date +%s) - start)) s" >&2
  else
    echo "bench: [$i/${#bins[@]}] $name FAILED (exit $?)" >&2
    status=1
  fi
done

# The table: per benchmark, each impl's median and its ratio to weft,
# oriented so that >1 always means weft is better.
awk -f "$root/scripts/bench-lib.awk" -f /dev/stdin "$out" <<'AWK'
/^\{"meta/ { next }
/^\{"bench"/ {
  b = field($0, "bench"); im = field($0, "impl")
  if (!(b in seen)) { seen[b] = 1; order[++nb] = b }
  key = b SUBSEP im
  if (!(key in val)) impls[b] = impls[b] " " im
  sk = field($0, "skipped"); if (sk != "") skip[key] = sk
  val[key] = field($0, "value") + 0
  unit[b] = field($0, "unit"); better[b] = field($0, "better")
  runs[key] = field($0, "runs")
}
END {
  if (nb == 0) { print "bench: no results"; exit }
  printf "\n%-36s %-6s %16s  %s\n", "benchmark", "impl", "median", \
         "vs weft (>1 = weft better)"
  for (k = 1; k <= nb; k++) {
    b = order[k]
    n = split(impls[b], list, " ")
    w = (b SUBSEP "weft") in val && !((b SUBSEP "weft") in skip) ? val[b SUBSEP "weft"] : ""
    for (j = 1; j <= n; j++) {
      im = list[j]; v = val[b SUBSEP im]
      if ((b SUBSEP im) in skip) {
        printf "%-36s %-6s %16s  %s\n", (j == 1 ? b : ""), im, "skipped", skip[b SUBSEP im]
        continue
      }
      if (im == "weft" || w == "" || v == 0 || w == 0) r = (im == "weft") ? "1.00" : "-"
      else if (better[b] == "lower") r = sprintf("%.2f", v / w)
      else r = sprintf("%.2f", w / v)
      printf "%-36s %-6s %16s  %s\n", (j == 1 ? b : ""), im, \
             human(v, unit[b]), r
    }
  }
}
AWK
echo "bench: results in ${out#"$root"/} (make bench-publish copies the report to bench/results/)" >&2
"$root/scripts/bench-report.sh" "$results" || status=1
exit $status
