#!/usr/bin/env bash
# resp-diff: kvd against a real redis-server 7, byte for byte (see
# tests/fuzz/resp_diff.py and docs/kvd.md, "Differential testing").
# Builds $O/examples/kvd, runs random valid and malformed RESP and inline
# requests at both for FUZZ_SECONDS, and fails on any divergence. The seed
# is printed; FUZZ_SEED=N reruns one.
set -euo pipefail
cd "$(dirname "$0")/.."
O=${O:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if ! command -v redis-server >/dev/null; then
  echo "resp-diff: redis-server not found (scripts/deps.sh installs it)"
  exit 1
fi
make -s O="$O" "$O/examples/kvd"
exec python3 tests/fuzz/resp_diff.py --kvd "$O/examples/kvd" \
  --seconds "$FUZZ_SECONDS" ${FUZZ_SEED:+--seed "$FUZZ_SEED"}
