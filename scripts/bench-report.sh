#!/usr/bin/env bash
# Turns RESULTS_DIR/latest.jsonl into RESULTS_DIR/REPORT.md (a table per
# area: weft, each peer, the ratio; an impl that could not run is a row
# "skipped: reason") and one PNG chart of the ratios per area (gnuplot;
# without it the report says so instead of linking a chart).
# Usage: scripts/bench-report.sh [RESULTS_DIR]   (default: build/bench-results)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build/bench-results}
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1
in=$dir/latest.jsonl
[ -s "$in" ] || { echo "bench-report: no $in" >&2; exit 1; }
rm -f "$dir"/ratios_*.png "$dir"/ratios_*.dat

# One pass: REPORT.md, and per area a data file "label ratio" for gnuplot.
awk -v dir="$dir" -v charts=$have_gnuplot -f "$root/scripts/bench-lib.awk" -f /dev/stdin "$in" <<'AWK'
/^\{"meta_run"/ { if (field($0, "subset") == "true") subset = 1; next }
/^\{"meta"/ {
  meta = sprintf("%s, %s CPUs (%s), kernel %s, libuv %s, libev %s, weft %s, runs %s%s",
    field($0, "date"), field($0, "nproc"), field($0, "cpu"), field($0, "kernel"),
    field($0, "libuv"), field($0, "libev"), field($0, "weft_commit"), field($0, "runs"),
    field($0, "quick") == "true" ? " (quick)" : "")
  next
}
/^\{"bench"/ {
  b = field($0, "bench"); im = field($0, "impl")
  area = b; sub(/_.*/, "", area)
  if (!(area in aseen)) { aseen[area] = 1; areas[++na] = area }
  if (!(b in seen)) { seen[b] = 1; border[area] = border[area] " " b }
  key = b SUBSEP im
  if (!(key in val)) impls[b] = impls[b] " " im
  sk = field($0, "skipped"); if (sk != "") skip[key] = sk
  val[key] = field($0, "value") + 0
  unit[b] = field($0, "unit"); better[b] = field($0, "better")
}
END {
  md = dir "/REPORT.md"
  print "# weft benchmark report\n" > md
  print "Machine: " meta "  " > md
  print "Reproduce: `make bench` (`BENCH_RUNS=N`, `BENCH=name` for one program)." > md
  print "Values are medians; **ratio** compares weft with each peer so that" > md
  print "**> 1 means weft is better** (faster, or less time)." > md
  if (subset) print "This run covered only some programs or impls (`BENCH=`, `BENCH_IMPL=`)." > md
  if (!charts) print "No charts: gnuplot was not installed (scripts/deps.sh bench installs it)." > md
  print "" > md
  for (a = 1; a <= na; a++) {
    area = areas[a]
    printf "## %s\n\n", area > md
    nratio = 0
    print "| benchmark | impl | median | ratio vs weft |" > md
    print "|---|---|---:|---:|" > md
    nbs = split(border[area], bl, " ")
    dat = dir "/ratios_" area ".dat"
    for (k = 1; k <= nbs; k++) {
      b = bl[k]
      n = split(impls[b], list, " ")
      w = (b SUBSEP "weft") in val && !((b SUBSEP "weft") in skip) ? val[b SUBSEP "weft"] : ""
      for (j = 1; j <= n; j++) {
        im = list[j]; v = val[b SUBSEP im]; r = "-"
        if ((b SUBSEP im) in skip) {
          printf "| %s | %s | skipped: %s | - |\n", (j == 1 ? b : ""), im, skip[b SUBSEP im] > md
          continue
        }
        if (im == "weft") r = "1.00"
        else if (w != "" && v != 0 && w != 0) {
          r = sprintf("%.2f", better[b] == "lower" ? v / w : w / v)
          lbl = b; sub("^" area "_", "", lbl)
          printf "\"%s\\n%s\" %s\n", lbl, im, r > dat
          nratio++
        }
        printf "| %s | %s | %s | %s |\n", (j == 1 ? b : ""), im, human(v, unit[b]), r > md
      }
    }
    print "" > md
    if (charts && nratio) printf "![%s ratios](ratios_%s.png)\n\n", area, area > md
  }
}
AWK

if command -v gnuplot >/dev/null 2>&1; then
  for dat in "$dir"/ratios_*.dat; do
    [ -s "$dat" ] || continue
    area=$(basename "$dat" .dat); area=${area#ratios_}
    n=$(wc -l <"$dat")
    width=$((300 + n * 70)); [ "$width" -gt 2400 ] && width=2400
    gnuplot <<GP
set terminal pngcairo size $width,480 font ",9" noenhanced
set output "$dir/ratios_$area.png"
set title "weft vs peers: $area (ratio > 1: weft better; log scale)"
set style fill solid 0.8
set boxwidth 0.6
set logscale y 2
set grid ytics
set xtics rotate by -40 scale 0
set ylabel "ratio"
set key off
plot "$dat" using 0:2:xtic(1) with boxes lc rgb "#3a7bd5", 1 with lines lc rgb "#d04040" lw 2
GP
  done
else
  echo "bench-report: gnuplot missing, no charts" >&2
fi
rm -f "$dir"/ratios_*.dat
echo "bench-report: wrote ${dir#"$root"/}/REPORT.md" >&2
