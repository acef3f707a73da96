#!/usr/bin/env bash
# The fibers benchmark: weft's fibers (bench_fibers, argument 1) and their
# peers in one run, alternating within every repetition:
#   fibers_switch            boost (fcontext, g++ -O2), ucontext (swapcontext)
#   fibers_await_settled_1m  node, asyncio, uvloop
#   fibers_spawn_1m          node, asyncio, uvloop
#   fibers_idle_mem_100k     node, asyncio, uvloop
#   fibers_echo_cC_S         weft (examples/echo_fibers), weft-cb (examples/echo),
#                            uvloop-streams, uvloop-proto, node: C = 100 / 10000
#                            connections, S = 1k / 100k messages, round trips/s
#                            from bench/fibers/echo_client.c (server on CPU 0,
#                            client on CPU 1); fibers_echo_cC_S_srv_us and
#                            _cli_us: the server's and the client's CPU time
#                            per round trip (us), which say which side was the
#                            limit and compare servers whatever the load
#   fibers_*_instr           instructions per op (bench/fibers/icount.sh,
#                            callgrind; FIBERS_ICOUNT=0 skips it)
# The single-thread rows (switch, await, spawn, mem) run pinned to CPU 1
# (taskset), every impl alike, alternating within each repetition.
# Prints the medians as the harness's JSON lines on stdout; a peer that
# cannot run prints {"bench":...,"impl":...,"skipped":REASON,...} instead
# (shown as "skipped: REASON" in the table; the reason also on stderr).
# Normally run by scripts/bench.sh (make bench BENCH=fibers).
# Usage: O=build bench/fibers/run.sh [BUILD/bench/bench_fibers]
# Environment: BENCH_RUNS, BENCH_QUICK (as for every program; quick runs
# the echo rows with 100 connections only), FIBERS_ECHO_CONNS ("100 10000").
set -uo pipefail
# 10,000 connections: the client and each server need more than the usual
# 1024 descriptors
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
prog=${1:-$O/bench/bench_fibers}
runs=${BENCH_RUNS:-5}
case $runs in '' | *[!0-9]* | 0) runs=5 ;; esac
quick=
[ -n "${BENCH_QUICK:-}" ] && [ "$BENCH_QUICK" != 0 ] && quick=1
n_switch=${quick:+100000}; n_switch=${n_switch:-10000000}
n_ops=${quick:+10000}; n_ops=${n_ops:-1000000}
n_mem=${quick:+1000}; n_mem=${n_mem:-100000}
secs=${quick:+0.3}; secs=${secs:-2}
# FIBERS_ECHO_CONNS: the echo rows' connection counts (quick: 100 only)
echo_conns=${FIBERS_ECHO_CONNS:-${quick:+100}}; echo_conns=${echo_conns:-100 10000}
py=/usr/bin/python3 # Debian's, where python3-uvloop is installed
[ -x "$py" ] || py=python3
bin=$O/bench/fibers
mkdir -p "$bin"
raw=$(mktemp)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -f "$raw"
}
trap cleanup EXIT
trap "exit 1" INT TERM

skipped=() # "bench|impl|reason"
skip() {
  echo "bench: fibers: $2 for $1 skipped: $3" >&2
  skipped+=("$1|$2|$3")
}

# ---- the peers that need building ------------------------------------------
have_boost=
if ! command -v g++ >/dev/null; then
  skip fibers_switch boost "g++ not installed"
elif [ "$bin/switch_boost" -nt "$here/switch_boost.cpp" ] ||
  g++ -O2 -o "$bin/switch_boost" "$here/switch_boost.cpp" -lboost_context 2>"$bin/boost.log"; then
  have_boost=1
else
  skip fibers_switch boost "does not build (libboost-context-dev missing? $bin/boost.log)"
fi
${CC:-cc} -O2 -o "$bin/switch_ucontext" "$here/switch_ucontext.c" ||
  skip fibers_switch ucontext "does not build"
${CC:-cc} -O2 -o "$bin/echo_client" "$here/echo_client.c" || {
  echo "bench: fibers: echo_client does not build" >&2
  exit 1
}
have_node=
command -v node >/dev/null && have_node=1
have_uvloop=
"$py" -c 'import uvloop' 2>/dev/null && have_uvloop=1
for b in fibers_await_settled_1m fibers_spawn_1m fibers_idle_mem_100k; do
  [ -n "$have_node" ] || skip $b node "node not installed"
  [ -n "$have_uvloop" ] || skip $b uvloop "python3-uvloop not installed"
done
have_weft=1
[ -x "$prog" ] || { have_weft=; echo "bench: fibers: $prog missing: no weft figures" >&2; }

pin=()
command -v taskset >/dev/null && pin=(taskset -c 1)

# ---- echo servers: started once, each pinned to CPU 0 -----------------------
declare -A port failed spid
start_server() { # impl command...: the command prints its port first
  local impl=$1
  shift
  exec {fd}< <(exec taskset -c 0 "$@" 2>/dev/null)
  local p=$!
  pids+=("$p")
  spid[$impl]=$p # taskset and the command exec: the server itself
  local line=
  read -r -t 10 line <&"$fd"
  line=${line##*:} # "echo_fibers: listening on 127.0.0.1:PORT" or "PORT"
  case $line in '' | *[!0-9]*)
    skipped+=("ECHO|$impl|did not start: $*")
    return 1 ;;
  esac
  port[$impl]=$line
}
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
echo_impls=()
if [ -x "$O/examples/echo_fibers" ]; then
  start_server weft "$O/examples/echo_fibers" --port 0 && echo_impls+=(weft)
else skipped+=("ECHO|weft|examples/echo_fibers not built"); fi
cbport=$(free_port)
if [ -x "$O/examples/echo" ]; then
  exec {cbfd}< <(exec taskset -c 0 "$O/examples/echo" --port "$cbport" --host 127.0.0.1 2>&1)
  pids+=("$!")
  if read -r -t 10 line <&"$cbfd" && [[ $line == *listening* ]]; then
    port[weft-cb]=$cbport
    spid[weft-cb]=${pids[-1]}
    echo_impls+=(weft-cb)
  else skipped+=("ECHO|weft-cb|examples/echo did not start: $line"); fi
else skipped+=("ECHO|weft-cb|examples/echo not built"); fi
if [ -n "$have_uvloop" ]; then
  start_server uvloop-streams "$py" "$here/peers.py" uvloop echo-streams && echo_impls+=(uvloop-streams)
  start_server uvloop-proto "$py" "$here/peers.py" uvloop echo-proto && echo_impls+=(uvloop-proto)
else
  skipped+=("ECHO|uvloop-streams|python3-uvloop not installed" "ECHO|uvloop-proto|python3-uvloop not installed")
fi
if [ -n "$have_node" ]; then
  start_server node node "$here/peers.js" echo && echo_impls+=(node)
else skipped+=("ECHO|node|node not installed"); fi

# ---- the repetitions ----------------------------------------------------------
for ((r = 1; r <= runs; r++)); do
  echo "bench: fibers: repetition $r of $runs" >&2
  [ -n "$have_weft" ] && { BENCH_RUNS=1 "${pin[@]}" "$prog" >>"$raw" || exit 1; }
  [ -n "$have_boost" ] && { "${pin[@]}" "$bin/switch_boost" "$n_switch" >>"$raw" || exit 1; }
  "${pin[@]}" "$bin/switch_ucontext" "$((n_switch / 10))" >>"$raw" || exit 1
  for w in await spawn mem; do
    n=$n_ops
    [ $w = mem ] && n=$n_mem
    [ -n "$have_node" ] && { "${pin[@]}" node --expose-gc "$here/peers.js" $w "$n" >>"$raw" || exit 1; }
    "${pin[@]}" "$py" "$here/peers.py" asyncio $w "$n" >>"$raw" || exit 1
    [ -n "$have_uvloop" ] && { "${pin[@]}" "$py" "$here/peers.py" uvloop $w "$n" >>"$raw" || exit 1; }
  done
  for c in $echo_conns; do
    for s in 1k 100k; do
      size=$((${s%k} * 1024))
      for im in "${echo_impls[@]}"; do
        [ -n "${failed[$im $c $s]:-}" ] && continue
        taskset -c 1 "$bin/echo_client" "${port[$im]}" $c $size "$secs" \
          "fibers_echo_c${c}_$s" "$im" "${spid[$im]:-0}" >>"$raw" && continue
        case $im in weft | weft-cb) exit 1 ;; esac # a peer's failure is reported, not fatal
        failed[$im $c $s]=1
        skipped+=("fibers_echo_c${c}_$s|$im|the server failed under this load (see stderr)")
      done
    done
  done
done

# ---- instruction counts (load-independent), once --------------------------------
if [ -n "$have_weft" ] && [ "${FIBERS_ICOUNT:-1}" != 0 ] && command -v valgrind >/dev/null; then
  echo "bench: fibers: instruction counts (callgrind)" >&2
  O=$O "$here/icount.sh" "$prog" "$bin/switch_boost" >>"$raw" ||
    echo "bench: fibers: icount.sh failed" >&2
fi

# ---- medians, in first-seen order ----------------------------------------------
awk -f "$root/scripts/bench-lib.awk" -f /dev/stdin "$raw" <<'AWK'
/^\{"bench"/ && !/"skipped"/ {
  k = field($0, "bench") SUBSEP field($0, "impl")
  if (!(k in n)) { order[++nk] = k; unit[k] = field($0, "unit"); better[k] = field($0, "better") }
  v[k, ++n[k]] = field($0, "value") + 0
}
END {
  for (i = 1; i <= nk; i++) {
    k = order[i]; m = n[k]
    for (a = 2; a <= m; a++) { x = v[k, a]; for (b = a - 1; b >= 1 && v[k, b] > x; b--) v[k, b + 1] = v[k, b]; v[k, b + 1] = x }
    med = (m % 2) ? v[k, (m + 1) / 2] : (v[k, m / 2] + v[k, m / 2 + 1]) / 2
    split(k, p, SUBSEP)
    printf "{\"bench\":\"%s\",\"impl\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"better\":\"%s\",\"runs\":%d}\n", p[1], p[2], med, unit[k], better[k], m
  }
}
AWK
# skipped lines: the weft program's own (once), then the peers'
grep '"skipped"' "$raw" | sort -u
unit_of() {
  case $1 in
  fibers_switch) echo '"unit":"ns","better":"lower"' ;;
  fibers_await*) echo '"unit":"awaits/s","better":"higher"' ;;
  fibers_spawn*) echo '"unit":"spawns/s","better":"higher"' ;;
  fibers_idle_mem*) echo '"unit":"B","better":"lower"' ;;
  *) echo '"unit":"rt/s","better":"higher"' ;;
  esac
}
for c in 100 10000; do
  case " $echo_conns " in *" $c "*) continue ;; esac
  for im in weft weft-cb uvloop-streams uvloop-proto node; do
    skipped+=("fibers_echo_c${c}_1k|$im|not run: FIBERS_ECHO_CONNS or BENCH_QUICK" "fibers_echo_c${c}_100k|$im|not run: FIBERS_ECHO_CONNS or BENCH_QUICK")
  done
done
for s in "${skipped[@]}"; do
  IFS='|' read -r b im why <<<"$s"
  why=${why//\"/ }
  if [ "$b" = ECHO ]; then
    echo "bench: fibers: $im for the echo rows skipped: $why" >&2
    for c in 100 10000; do for z in 1k 100k; do
      printf '{"bench":"fibers_echo_c%s_%s","impl":"%s","skipped":"%s",%s}\n' $c $z "$im" "$why" "$(unit_of x)"
    done; done
  else
    printf '{"bench":"%s","impl":"%s","skipped":"%s",%s}\n' "$b" "$im" "$why" "$(unit_of "$b")"
  fi
done
