#!/usr/bin/env bash
# HTTP fuzz target for examples/httpd (run by `make fuzz`, scripts/fuzz.sh):
#  (a) a differential test against nginx serving the same generated root,
#      crafted requests plus seeded structural mutations, comparing status
#      and key headers; fails on a difference not listed as deliberate in
#      docs/httpd.md ("http-diff: N cases, D differences");
#  (b) a fuzzer: byte-level mutations, 1-byte writes, traversal attempts,
#      oversized parts, slow clients against an ASan+UBSan httpd, which must
#      never crash and must end every connection with a reply or a clean
#      close within a bound ("http-fuzz: N cases, 0 crashes").
# Environment: O (build tree, default build), FUZZ_SECONDS (default 60),
# FUZZ_SEED (default: random, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
O=${O:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
make -s O="$O" "$O/asan/examples/httpd" >/dev/null
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
command -v nginx >/dev/null || { echo "fuzz-http: nginx not installed (scripts/deps.sh)"; exit 1; }
exec python3 scripts/fuzz_http.py --httpd "$O/asan/examples/httpd" --seconds "$FUZZ_SECONDS" \
  --doc docs/httpd.md ${FUZZ_SEED:+--seed "$FUZZ_SEED"}
