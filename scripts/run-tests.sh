#!/usr/bin/env bash
# Runs test binaries one after another (each runs its own tests in parallel)
# and prints the totals. Usage: run-tests.sh LABEL BINARY...
set -uo pipefail
label=$1; shift
pass=0; fail=0; failed=(); digest=$(mktemp)
for t in "$@"; do
  name=$(basename "$t")
  out=$(mktemp)
  if "$t" >"$out" 2>&1; then
    status=ok
  else
    status=FAIL
  fi
  # Criterion: "[====] Synthesis: Tested: 12 | Passing: 12 | Failing: 0 | Crashing: 0"
  # plainrun:   "plainrun: 12 passed, 0 failed"
  line=$(grep -aE 'Synthesis: Tested|plainrun: [0-9]+ passed' "$out" | tail -n1)
  p=$(sed -nE 's/.*Passing: ([0-9]+).*/\1/p; s/.*plainrun: ([0-9]+) passed.*/\1/p' <<<"$line")
  f=$(sed -nE 's/.*Failing: ([0-9]+) \| Crashing: ([0-9]+).*/\1 \2/p; s/.*passed, ([0-9]+) failed.*/\1/p' <<<"$line")
  p=${p:-0}; nf=0; for x in $f; do nf=$((nf + x)); done
  if [ "$status" != ok ] && [ "$nf" -eq 0 ]; then nf=1; fi
  pass=$((pass + p)); fail=$((fail + nf))
  printf '[%s] %-28s %s  %s\n' "$label" "$name" "$status" "${line##*] }"
  if [ "$status" != ok ]; then
    failed+=("$name")
    cat "$out"
    # The lines that say what failed, again at the end: a CI log that keeps
    # only its tail still names the test and the assertion.
    { echo "  $name:"
      grep -aE 'assertion failed|FAIL|Crash|crash|timed out|Timeout|ERROR|WARNING: ThreadSanitizer|SUMMARY|\[----\].*:[0-9]+' "$out" |
        head -n 12 | sed 's/^/    /'; } >>"$digest"
  fi
  rm -f "$out"
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "$label: what failed"
  cat "$digest"
fi
rm -f "$digest"
echo "$label: $pass passed, $fail failed"
[ ${#failed[@]} -eq 0 ]
