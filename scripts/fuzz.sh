#!/usr/bin/env bash
# `make fuzz`: runs every scripts/fuzz-*.sh in turn (each bounded in time by
# FUZZ_SECONDS, default 60) and fails if any of them reports a divergence or
# a crash. Each script prints its own summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
export O=${O:-build} FUZZ_SECONDS=${FUZZ_SECONDS:-60}
rc=0; ran=0
for s in scripts/fuzz-*.sh; do
  [ -e "$s" ] || continue
  ran=$((ran + 1))
  echo "== $s"
  if ! bash "$s"; then echo "FAILED: $s"; rc=1; fi
done
echo "fuzz: $ran targets, $([ $rc -eq 0 ] && echo all clean || echo failures)"
exit $rc
