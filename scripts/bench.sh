#!/usr/bin/env bash
# Performance figures of moe-inspect beside the Python peers (when installed).
#   BENCH_DIR  where the synthetic OLMoE-1B-7B checkpoint lives (default ~/.cache/moe-inspect-bench; 14 GB)
#   PYTHON     a Python with torch/safetensors (and scikit-learn/openTSNE) for the peer side
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/moe-inspect
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/moe-inspect-bench}
PYTHON=${PYTHON:-python3}
CKPT=$BENCH_DIR/olmoe-1b-7b
mkdir -p "$BENCH_DIR"
have_torch=0; "$PYTHON" -c "import torch, safetensors" 2>/dev/null && have_torch=1

timed() {  # timed LABEL CMD... : wall seconds and peak RSS of one run
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o /tmp/moe-bench-time "$@" > /tmp/moe-bench-out 2>/tmp/moe-bench-err
  local rc=$?
  read -r wall rss < /tmp/moe-bench-time
  printf "%-44s %8.2f s  %8.0f MB peak RSS%s\n" "$label" "$wall" "$(echo "$rss/1024" | bc -l)" "$([ $rc -ne 0 ] && echo "  (exit $rc)")"
  echo "$wall" > /tmp/moe-bench-last
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [ ! -f "$CKPT/model.safetensors.index.json" ]; then
  echo "== writing the synthetic OLMoE-1B-7B checkpoint (13.8 GB) to $CKPT"
  $BIN synth --like olmoe-1b-7b "$CKPT" -q
fi
echo "== warming the page cache"; cat "$CKPT"/*.safetensors > /dev/null

echo "== issue 2: info and BF16 decoding"
timed "moe-inspect info (OLMoE-1B-7B, bf16, 3 shards)" $BIN info "$CKPT"
MOE_BENCH=1 swift test -c release -Xswiftc -enable-testing --skip-build --filter DecodeBenchmark 2>&1 | grep -E "^BENCH" || true

echo "== issue 3: erc --no-noise --alpha 1 over all 16 layers"
timed "moe-inspect erc" $BIN erc "$CKPT" --no-noise --alpha 1 --csv /tmp/moe-bench-erc.csv -q
ours=$(cat /tmp/moe-bench-last)
echo "   floor: 275 GFLOP of GEMM; at $(awk -v s=$ours 'BEGIN{printf "%.0f", 275/s}') GFLOP/s overall"
if [ $have_torch = 1 ]; then
  timed "PyTorch peer (safe_open, einsum, norm, cdist)" "$PYTHON" scripts/bench_erc.py "$CKPT" /tmp/moe-bench-erc-torch.csv --threads 2
  theirs=$(cat /tmp/moe-bench-last)
  echo "   ratio PyTorch / moe-inspect: $(awk -v a=$theirs -v b=$ours 'BEGIN{printf "%.2f", a/b}')x"
  "$PYTHON" scripts/compare_erc.py /tmp/moe-bench-erc.csv /tmp/moe-bench-erc-torch.csv
else
  echo "   (PyTorch not installed for $PYTHON: peer skipped)"
fi

for extra in scripts/bench_tsne.sh scripts/bench_train.sh; do
  [ -x "$extra" ] && PYTHON=$PYTHON BIN=$BIN "$extra"
done
exit 0
