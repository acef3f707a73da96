#!/usr/bin/env bash
# `make bench-publish`: replaces the committed report, bench/results/
# (REPORT.md and its ratios_*.png), with the last `make bench` run's
# ($O/bench-results). Refuses a run of only some programs or impls, or a
# BENCH_QUICK run, unless BENCH_PUBLISH_FORCE=1; refuses a report that links
# a chart it does not have. The only target that writes bench/results/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
src=$O/bench-results dst=$root/bench/results
[ -s "$src/REPORT.md" ] && [ -s "$src/latest.jsonl" ] ||
  { echo "bench-publish: no report in ${src#"$root"/} (run make bench first)" >&2; exit 1; }
if [ "${BENCH_PUBLISH_FORCE:-0}" != 1 ]; then
  grep -q '"subset":true' "$src/latest.jsonl" &&
    { echo "bench-publish: that run covered only some programs (BENCH=/BENCH_IMPL=); BENCH_PUBLISH_FORCE=1 to publish anyway" >&2; exit 1; }
  grep -q '"quick":true' "$src/latest.jsonl" &&
    { echo "bench-publish: that was a BENCH_QUICK run; BENCH_PUBLISH_FORCE=1 to publish anyway" >&2; exit 1; }
fi
for png in $(grep -o 'ratios_[A-Za-z0-9_]*\.png' "$src/REPORT.md" | sort -u); do
  [ -s "$src/$png" ] || { echo "bench-publish: REPORT.md links $png, which the run did not make" >&2; exit 1; }
done
mkdir -p "$dst"
rm -f "$dst"/ratios_*.png
cp "$src/REPORT.md" "$dst/"
cp "$src"/ratios_*.png "$dst/" 2>/dev/null || true
echo "bench-publish: bench/results/ now holds the run of $(sed -n 's/.*"date":"\([^"]*\)".*/\1/p' "$src/latest.jsonl" | head -1); review and commit it"
