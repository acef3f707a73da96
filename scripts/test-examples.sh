#!/usr/bin/env bash
# The examples' command lines (README, "Examples"): every program in
# $O/examples, whatever it is, must
#   - print its usage on stdout, nothing on stderr, and exit 0 for -h and
#     for --help;
#   - print the usage on stderr, nothing on stdout, and exit 2 for an
#     unknown flag;
# each within 10 s (a program that ignores its arguments and starts work
# fails here). Then a few specific promises: `resolve --help` does not
# resolve "--help"; `httpd --port 99999` names the bad port; `echo --port
# 0` prints the port it really listens on (and --loops 2 shares it), and
# that port echoes.
# Usage: O=build scripts/test-examples.sh   (make check-examples)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
O=${O:-build}
case $O in /*) ;; *) O=$root/$O ;; esac
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "examples: FAILED: $*" >&2; }

# run EXE ARGS...: status in $rc, output in $tmp/out and $tmp/err
run() { timeout 10 "$@" </dev/null >"$tmp/out" 2>"$tmp/err"; rc=$?; }

n=0
for exe in "$O"/examples/*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  name=${exe##*/}; n=$((n + 1))
  for h in -h --help; do
    run "$exe" "$h"
    if [ $rc -eq 0 ] && grep -qi usage "$tmp/out" && [ ! -s "$tmp/err" ]; then ok; else
      bad "$name $h: exit $rc (want 0), usage on stdout, nothing on stderr"
      head -5 "$tmp/out" "$tmp/err" >&2
    fi
  done
  run "$exe" --no-such-flag
  if [ $rc -eq 2 ] && grep -qi usage "$tmp/err" && [ ! -s "$tmp/out" ]; then ok; else
    bad "$name --no-such-flag: exit $rc (want 2), usage on stderr, nothing on stdout"
    head -5 "$tmp/out" "$tmp/err" >&2
  fi
done
[ $n -gt 0 ] || bad "no examples in $O/examples (make O=... examples)"

ex=$O/examples
if [ -x "$ex/resolve" ]; then
  run "$ex/resolve" --help
  # a lookup prints a line naming what it looked up
  if [ $rc -eq 0 ] && head -1 "$tmp/out" | grep -q '^usage: resolve' &&
     ! grep -q '^--help' "$tmp/out" "$tmp/err"; then ok; else
    bad "resolve --help looked --help up"
  fi
fi
if [ -x "$ex/httpd" ]; then
  run "$ex/httpd" --port 99999 --root /tmp
  if [ $rc -eq 2 ] && grep -q -- '--port 99999' "$tmp/err"; then ok; else
    bad "httpd --port 99999: exit $rc, want 2 and a message naming --port 99999"
    cat "$tmp/err" >&2
  fi
fi
if [ -x "$ex/wload" ]; then
  run "$ex/wload" -R x http://127.0.0.1:1/
  if [ $rc -eq 2 ] && grep -q -- '-R x' "$tmp/err"; then ok; else
    bad "wload -R x: exit $rc, want 2 and a message naming -R x"
    cat "$tmp/err" >&2
  fi
fi

# echo_port LOOPS: starts echo on port 0, reads the port it reports.
echo_check() {
  local loops=$1 fifo=$tmp/echo$1.err line port=
  mkfifo "$fifo"
  "$ex/echo" --port 0 --host 127.0.0.1 --loops "$loops" </dev/null >/dev/null 2>"$fifo" &
  local pid=$!
  pids+=("$pid")
  exec 7<"$fifo"
  if read -r -t 10 line <&7; then port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' <<<"$line"); fi
  exec 7<&-
  if [ -z "$port" ] || [ "$port" = 0 ]; then
    bad "echo --port 0 --loops $loops: said '${line:-nothing}', want the real port"
  else
    # it echoes on that port (every loop's listener shares it)
    local i got all=1
    for i in 1 2 3 4; do
      got=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port"'; printf "ping%s\n" '"$i"' >&3; read -r l <&3; echo "$l"' 2>/dev/null)
      [ "$got" = "ping$i" ] || all=0
    done
    if [ $all = 1 ]; then ok; else bad "echo --port 0 --loops $loops: port $port does not echo"; fi
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}
if [ -x "$ex/echo" ]; then echo_check 1; echo_check 2; fi

# watch -r -n 2 DIR reports a file made in a new subdirectory: dN/ and
# dN/f are made, one pair every 0.1 s, until it exits (at most 5 s). Its
# two events are 'create dN/' and 'create dN/f' when it started between two
# pairs, or 'create dN/f' first when it started between a mkdir and the
# file; either way one line is a file in a subdirectory.
if [ -x "$ex/watch" ]; then
  mkdir -p "$tmp/w"
  timeout 10 "$ex/watch" -r -n 2 "$tmp/w" >"$tmp/wout" 2>&1 &
  wpid=$!; pids+=("$wpid")
  for i in $(seq 50); do
    kill -0 "$wpid" 2>/dev/null || break
    mkdir -p "$tmp/w/d$i"; : >"$tmp/w/d$i/f"; sleep 0.1
  done
  wait "$wpid"; rc=$?
  if [ $rc -eq 0 ] && grep -q '^create d[0-9]*/f$' "$tmp/wout"; then ok; else
    bad "watch -r -n 2: exit $rc, printed '$(head -3 "$tmp/wout")'"
  fi
fi

echo "examples: $n programs: -h/--help exit 0 (stdout), bad flag exit 2 (stderr); resolve, httpd, wload, echo --port 0, watch"
echo "examples: $pass passed, $fail failed"
[ $fail -eq 0 ]
