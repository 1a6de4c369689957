#!/usr/bin/env bash
# libFuzzer over the OLMo-core readers (.metadata pickle, torch.save archive) for a bounded time:
# scripts/fuzz-olmo-core.sh SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
swift build --scratch-path .build-fuzz --product olmo-core-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -D -Xswiftc FUZZING -Xswiftc -parse-as-library
mkdir -p .build-fuzz/corpus-olmo-core
for d in fixtures/olmo-core/malformed/*/model_and_optim; do
  n=$(basename "$(dirname "$d")")
  cp "$d/.metadata" ".build-fuzz/corpus-olmo-core/$n.metadata" 2>/dev/null || true
  cp "$d/__0_0.distcp" ".build-fuzz/corpus-olmo-core/$n.distcp" 2>/dev/null || true
done
.build-fuzz/debug/olmo-core-fuzz .build-fuzz/corpus-olmo-core -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=2048
