#!/usr/bin/env bash
# The loop-group scaling curve (make bench BENCH=scale, issue 15 §3): the
# loop-group servers at N = 1, 2, 4, ... loops up to the CPU count (the
# count itself added when it is not a power of two), one fresh server per
# point:
#   scale_echo_N<n>   examples/echo --loops n, driven by K processes of
#                     bench/fibers/echo_client (64-byte messages, 16
#                     connections per CPU in all, the same at every N: on
#                     a busy machine the rate is connections / round-trip
#                     time, so more connections at larger N would show a
#                     gain the loops did not make), round trips/s
#   scale_kvd_get_N<n> examples/kvd --loops n --stats, filled by a SET run,
#                     then wload --resp -t K GETs of random keys in 100000
#                     (16 connections per CPU, at every N), requests/s
# CPU split (from the affinity mask, so it runs unchanged on 16 cores): the
# server is pinned to the first n CPUs and the client to the next
# K = min(n, CPUs left) CPUs; when no CPU is left (n = CPU count) both
# share every CPU and the output says "shared". BENCH_SCALE_PIN=0: no
# pinning at all (every point "unpinned"; on a loaded shared machine a
# process pinned to one busy CPU can get a fraction of it). The goal is >= 0.8 x n
# times the 1-loop figure.
# After each kvd point the per-loop connection counts (kvd --stats, SIGUSR1
# half-way through the GET run: "live" is each loop's share of the
# client's connections then, "accepted" counts the SET run's too) are
# printed on stderr and into the table. Distribution: kvd GET runs once per
# mode, SO_REUSEPORT (the default) and hand-off (kvd --handoff,
# WEFT_LGROUP_HANDOFF: loop 0 accepts, the loop with the fewest live
# connections gets each), when `kvd --help` lists --handoff.
# Writes $O/bench-results/scale.md (table, the load average at each point),
# scale.dat and, with gnuplot, scale.png; one JSON line per point on stdout.
# Usage: O=build bench/scale/run.sh      (normally via scripts/bench.sh)
# Environment: BENCH_QUICK=1 (1 s points instead of 4 s), BENCH_RUNS
# (default 3): repetitions, every N once in each (alternating, so a change
# of the machine's load hits all N alike); each point is the median, its
# load averages (one per repetition) in the table.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
quick=
[ -n "${BENCH_QUICK:-}" ] && [ "$BENCH_QUICK" != 0 ] && quick=1
secs=${quick:+1}; secs=${secs:-4}
runs=${BENCH_RUNS:-3}
case $runs in '' | *[!0-9]* | 0) runs=3 ;; esac
results=$O/bench-results
mkdir -p "$results" "$O/bench/scale"
make -s -C "$root" O="$O" "$O/examples/echo" "$O/examples/kvd" "$O/examples/wload" >&2 || exit 1
client=$O/bench/scale/echo_client
if [ ! "$client" -nt "$root/bench/fibers/echo_client.c" ]; then
  ${CC:-cc} -O2 -o "$client" "$root/bench/fibers/echo_client.c" || exit 1
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap "exit 1" INT TERM
fail() { echo "bench: scale: $*" >&2; exit 1; }

# the CPUs this script may use (the affinity mask), in order
read -r -a cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
ncpu=${#cpus[@]}
[ "$ncpu" -ge 1 ] || fail "no CPU in the affinity mask"
command -v taskset >/dev/null || fail "taskset not installed"
ns=()
for ((n = 1; n < ncpu; n *= 2)); do ns+=("$n"); done
ns+=("$ncpu")
join() { local IFS=,; echo "$*"; }
# split N: sets srv_cpus, cli_cpus, K (client threads/processes), where
split() {
  local n=$1 left=$((ncpu - $1))
  srv_cpus=$(join "${cpus[@]:0:n}")
  if [ "${BENCH_SCALE_PIN:-1}" = 0 ]; then
    K=$n
    [ "$left" -ge 1 ] && K=$((n < left ? n : left))
    srv_cpus=$(join "${cpus[@]}") cli_cpus=$srv_cpus
    where="unpinned (BENCH_SCALE_PIN=0): server and client on CPUs $srv_cpus"
  elif [ "$left" -ge 1 ]; then
    K=$((n < left ? n : left))
    cli_cpus=$(join "${cpus[@]:n:K}")
    where="server CPUs $srv_cpus, client CPUs $cli_cpus"
  else
    K=$n
    srv_cpus=$(join "${cpus[@]}") cli_cpus=$srv_cpus
    where="shared: server and client on CPUs $srv_cpus"
  fi
}
wait_line() { # FILE REGEX: up to 5 s for a line
  local i
  for i in $(seq 500); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  fail "no line /$2/ in $1: $(cat "$1")"
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; pids=(); }
load() { cut -d' ' -f1-3 /proc/loadavg; }
json() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | head -1; }

declare -A all rps where_of load_of spread_of
modes=(reuseport)
"$O/examples/kvd" --help 2>&1 | grep -q -- --handoff && modes+=(handoff)

for r in $(seq "$runs"); do
for n in "${ns[@]}"; do
  split "$n"
  # ---- echo ---------------------------------------------------------------
  taskset -c "$srv_cpus" "$O/examples/echo" --port 0 --host 127.0.0.1 --loops "$n" \
    2>"$tmp/echo.err" &
  pids=($!)
  wait_line "$tmp/echo.err" 'listening on'
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$tmp/echo.err")
  conns=$((16 * ncpu / K)); [ "$conns" -ge 1 ] || conns=1
  cps=() i=0
  IFS=, read -r -a cl <<<"$cli_cpus"
  for ((k = 0; k < K; k++)); do
    taskset -c "${cl[k % ${#cl[@]}]}" "$client" "$port" "$conns" 64 "$secs" \
      scale_echo weft >"$tmp/ec$k.json" 2>"$tmp/ec$k.err" &
    cps+=($!)
  done
  for p in "${cps[@]}"; do wait "$p" || fail "echo_client failed: $(cat "$tmp"/ec*.err)"; done
  stop "${pids[0]}"
  v=$(cat "$tmp"/ec*.json | awk -F'"value":' 'NF > 1 { s += $2 + 0 } END { printf "%.0f", s }')
  all[echo,$n]="${all[echo,$n]:-} $v"
  where_of[echo,$n]=$where load_of[echo,$n]="${load_of[echo,$n]:+${load_of[echo,$n]}; }$(load)"
  rm -f "$tmp"/ec*
  echo "bench: scale: run $r/$runs: echo N=$n: $v rt/s ($where; $((K * conns)) connections; load $(load))" >&2

  # ---- kvd GET, per distribution mode ------------------------------------
  for mode in "${modes[@]}"; do
    flag=(); [ "$mode" = handoff ] && flag=(--handoff)
    key=kvd_$mode
    : >"$tmp/kvd.out"
    taskset -c "$srv_cpus" "$O/examples/kvd" --port 0 --loops "$n" --stats "${flag[@]}" \
      >"$tmp/kvd.out" 2>"$tmp/kvd.err" &
    pids=($!)
    wait_line "$tmp/kvd.out" '^listening on'
    port=$(sed -n 's/^listening on \([0-9]*\).*/\1/p' "$tmp/kvd.out")
    c=$((16 * ncpu)); [ "$c" -ge "$K" ] || c=$K
    taskset -c "$cli_cpus" "$O/examples/wload" --resp -t "$K" -c "$c" -d 1s -r 100000 \
      --data-size 3 --cmd 'SET key:__rand_int__ __data__' -q --json "127.0.0.1:$port" \
      >"$tmp/set" || fail "wload SET failed: $(cat "$tmp/set")"
    [ "$(json errors_total "$tmp/set")" = 0 ] || fail "wload SET: errors: $(cat "$tmp/set")"
    taskset -c "$cli_cpus" "$O/examples/wload" --resp -t "$K" -c "$c" -d "${secs}s" -r 100000 \
      --cmd 'GET key:__rand_int__' -q --json "127.0.0.1:$port" >"$tmp/get" &
    wp=$!
    sleep "$(awk -v s="$secs" 'BEGIN { print s / 2 }')" # the stats half-way through
    kill -USR1 "${pids[0]}"
    wait "$wp" || fail "wload GET failed: $(cat "$tmp/get")"
    [ "$(json errors_total "$tmp/get")" = 0 ] || fail "wload GET: errors: $(cat "$tmp/get")"
    wait_line "$tmp/kvd.out" "^stats loop=$((n - 1)) "
    stop "${pids[0]}"
    v=$(json requests_per_s "$tmp/get" | awk '{ printf "%.0f", $1 }')
    all[$key,$n]="${all[$key,$n]:-} $v"
    where_of[$key,$n]=$where load_of[$key,$n]="${load_of[$key,$n]:+${load_of[$key,$n]}; }$(load)"
    spread_of[$key,$n]=$(awk '/^stats loop=/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "=")
          if (kv[1] == "live" || kv[1] == "accepted") v[kv[1]] = v[kv[1]] (v[kv[1]] == "" ? "" : "/") kv[2] } }
      END { printf "live %s, accepted %s", v["live"], v["accepted"] }' "$tmp/kvd.out")
    echo "bench: scale: run $r/$runs: kvd GET ($mode) N=$n: $v req/s ($where; $c connections; per loop: ${spread_of[$key,$n]}; load $(load))" >&2
  done
done
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
  END { printf "%.0f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for k in "${!all[@]}"; do rps[$k]=$(median ${all[$k]}); done

# ---- results --------------------------------------------------------------
tables=(echo) units=(rt/s)
for mode in "${modes[@]}"; do tables+=("kvd_$mode"); units+=(req/s); done
{
  echo "# Loop-group scaling (bench/scale/run.sh)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(hostname), $ncpu CPUs in the affinity mask" \
    "(${cpus[*]}), weft $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "${secs} s per point${quick:+ (quick)}, median of $runs (BENCH_RUNS). Goal: N loops >= 0.8 x N times the 1-loop figure."
  for t in $(seq 0 $((${#tables[@]} - 1))); do
    key=${tables[t]}
    case $key in
      echo) title="echo (examples/echo --loops N, echo_client, 64-byte round trips)" ;;
      *) title="kvd GET (examples/kvd --loops N, wload --resp, ${key#kvd_} distribution)" ;;
    esac
    echo
    echo "## $title"
    echo
    case $key in
      echo) echo "| N | ${units[t]}: median (runs) | ratio to N=1 | goal 0.8xN | CPUs | load avg |"
            echo "|---|---|---|---|---|---|" ;;
      *) echo "| N | ${units[t]}: median (runs) | ratio to N=1 | goal 0.8xN | CPUs | per-loop live / accepted (last run) | load avg |"
         echo "|---|---|---|---|---|---|---|" ;;
    esac
    base=${rps[$key,1]}
    for n in "${ns[@]}"; do
      r=$(awk -v a="${rps[$key,$n]}" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      g=$(awk -v n="$n" 'BEGIN { printf "%.1f", 0.8 * n }')
      extra=; [ "$key" != echo ] && extra=" ${spread_of[$key,$n]} |"
      echo "| $n | ${rps[$key,$n]} (${all[$key,$n]# }) | $r | $g | ${where_of[$key,$n]} |$extra ${load_of[$key,$n]} |"
    done
  done
  [ "${where_of[echo,$ncpu]}" != "${where_of[echo,$ncpu]#shared}" ] &&
    echo && echo "At N = $ncpu the server and the load generator share the CPUs: that point measures both."
} >"$results/scale.md"
{
  printf '# N'; for k in "${tables[@]}"; do printf ' %s' "$k"; done; printf ' goal\n'
  for n in "${ns[@]}"; do
    printf '%s' "$n"
    for k in "${tables[@]}"; do
      awk -v a="${rps[$k,$n]}" -v b="${rps[$k,1]}" 'BEGIN { printf " %.3f", (b > 0 ? a / b : 0) }'
    done
    awk -v n="$n" 'BEGIN { printf " %.1f\n", 0.8 * n }'
  done
} >"$results/scale.dat"
if command -v gnuplot >/dev/null; then
  plot="'$results/scale.dat' using 1:$((${#tables[@]} + 2)) with lines dashtype 2 title 'goal 0.8 x N'"
  for t in $(seq 0 $((${#tables[@]} - 1))); do
    label=echo; [ "${tables[t]}" != echo ] && label="kvd GET (${tables[t]#kvd_})"
    plot="$plot, '' using 1:$((t + 2)) with linespoints title '$label'"
  done
  gnuplot -e "set terminal png size 800,500 noenhanced; set output '$results/scale.png';
    set title 'weft loop group: throughput vs loops (ratio to 1 loop)';
    set xlabel 'loops (N)'; set ylabel 'ratio to N=1'; set key left top; set grid;
    set logscale x 2; set xtics ($(join "${ns[@]}")); set yrange [0:*]; plot $plot" ||
    echo "bench: scale: gnuplot failed" >&2
fi
for k in "${tables[@]}"; do
  b=scale_${k/echo/echo}; [ "$k" != echo ] && b=scale_${k}_get
  u=rt/s; [ "$k" != echo ] && u=req/s
  for n in "${ns[@]}"; do
    printf '{"bench":"%s_N%s","impl":"weft","value":%s,"unit":"%s","better":"higher","runs":%s}\n' \
      "$b" "$n" "${rps[$k,$n]}" "$u" "$runs"
  done
done
echo "bench: scale: table in ${results#"$root"/}/scale.md$(command -v gnuplot >/dev/null && echo ", chart scale.png")" >&2
