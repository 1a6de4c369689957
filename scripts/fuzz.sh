#!/usr/bin/env bash
# libFuzzer over the safetensors header parser for a bounded time: scripts/fuzz.sh SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
swift build --scratch-path .build-fuzz --product safetensors-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -D -Xswiftc FUZZING -Xswiftc -parse-as-library
mkdir -p .build-fuzz/corpus
cp fixtures/malformed/*.safetensors fixtures/dtypes/*.safetensors .build-fuzz/corpus/ 2>/dev/null || true
.build-fuzz/debug/safetensors-fuzz .build-fuzz/corpus -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=2048
