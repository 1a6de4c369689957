#!/usr/bin/env bash
# libFuzzer over every parser of untrusted bytes, for a bounded time in all:
#   scripts/fuzz.sh SECONDS [TARGET...]
# The targets and their seeds are the folders of fixtures/fuzz/; the seeds are copied to a
# corpus under .build-fuzz so that the repository's seeds never change. Stops at the first
# crash, leak or timeout, which libFuzzer writes as crash-*/leak-*/timeout-* files.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=($(ls fixtures/fuzz))
per=$(( SECONDS_TO_RUN / ${#targets[@]} )); [ "$per" -lt 5 ] && per=5
swift build --scratch-path .build-fuzz --product moe-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -D -Xswiftc FUZZING -Xswiftc -parse-as-library
for t in "${targets[@]}"; do
  corpus=.build-fuzz/corpus/$t
  mkdir -p "$corpus"
  cp fixtures/fuzz/"$t"/* "$corpus"/ 2>/dev/null || true
  echo "== $t ($per s)"
  MOE_FUZZ_TARGET=$t .build-fuzz/debug/moe-fuzz "$corpus" -max_total_time="$per" -max_len=65536 -rss_limit_mb=2048 \
    -timeout=10 -artifact_prefix=".build-fuzz/$t-" 2>&1 | grep -E "^#[0-9]+.*DONE|ERROR|crash|Done [0-9]+ runs" || true
  if ls .build-fuzz/"$t"-crash-* .build-fuzz/"$t"-leak-* .build-fuzz/"$t"-timeout-* >/dev/null 2>&1; then
    echo "fuzz: $t found a problem: $(ls .build-fuzz/"$t"-crash-* .build-fuzz/"$t"-leak-* .build-fuzz/"$t"-timeout-* 2>/dev/null)"; exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets, no finding"
