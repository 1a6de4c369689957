#!/usr/bin/env bash
# Issue 15, DeepSeek-V3 scale: erc on a synthetic DeepSeek-V3 checkpoint with 2 of the real 58 MoE
# layers (256 experts, d 7168, D 2048, FP8 e4m3 with 128x128 block scales), beside the PyTorch peer
# (scripts/bench_erc.py), and the extrapolation to the 58 layers. Run by bench.sh; runs alone too.
#   BENCH_DIR  where the 28.5 GB checkpoint is written when missing (default ~/.cache/moe-inspect-bench)
#   PYTHON     a Python with torch and safetensors for the peer
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/moe-inspect
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/moe-inspect-bench}
PYTHON=${PYTHON:-python3}
DS=$BENCH_DIR/deepseek-v3-2moe
LAYERS=2 REAL_LAYERS=58
# GFLOP of one layer's products M = X W_g^T over the 256 experts, X the 256 proxies (and S noisy copies)
GFLOP_CLEAN=$(awk 'BEGIN{printf "%.1f", 2*256*256*2048*7168/1e9}')
mkdir -p "$BENCH_DIR"
have_torch=0; "$PYTHON" -c "import torch, safetensors" 2>/dev/null && have_torch=1

# run LABEL CMD...: one run; sets WALL, CPU (user + sys seconds) and RSS (MB), prints a line.
run() {
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o /tmp/moe-bench-ds-time "$@" > /tmp/moe-bench-ds-out 2> /tmp/moe-bench-ds-err
  local rc=$?
  read -r WALL user sys rss < /tmp/moe-bench-ds-time
  CPU=$(awk -v u=$user -v s=$sys 'BEGIN{print u+s}'); RSS=$(awk -v r=$rss 'BEGIN{printf "%.0f", r/1024}')
  printf "%-58s %8.2f s  %6.0f MB peak RSS  (%.1f s CPU)%s\n" "$label" "$WALL" "$RSS" "$CPU" "$([ $rc -ne 0 ] && echo "  (exit $rc)")"
}
# figures GFLOP_PER_LAYER: seconds and GFLOP/s per MoE layer of the last run, and its 58-layer extrapolation.
figures() {
  awk -v w=$WALL -v c=$CPU -v g=$1 -v l=$LAYERS -v L=$REAL_LAYERS 'BEGIN{
    printf "   %.2f s per MoE layer, %.0f GFLOP/s (%.0f GFLOP per layer; by CPU time %.0f GFLOP/s on 2 cores)\n", w/l, g*l/w, g, 2*g*l/c
    printf "   58 MoE layers (the real DeepSeek-V3): %.0f s = %.1f min at this rate\n", w/l*L, w/l*L/60 }'
}
# median3 LABEL CMD...: three runs, the median's figures.
median3() {
  local label=$1; shift
  rm -f /tmp/moe-bench-ds-runs
  for i in 1 2 3; do run "$label (run $i)" "$@" > /dev/null; echo "$WALL $CPU $RSS" >> /tmp/moe-bench-ds-runs; done
  read -r WALL CPU RSS < <(sort -n /tmp/moe-bench-ds-runs | sed -n 2p)
  printf "%-58s %8.2f s  %6.0f MB peak RSS  (median of 3; %.1f s CPU)\n" "$label" "$WALL" "$RSS" "$CPU"
}
# The checkpoint's pages out of the page cache (this folder's files only): the real 673 GB never fit in memory.
evict() { python3 -c "import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)" "$DS"/*.safetensors; }
ratio() { awk -v a=$1 -v b=$2 'BEGIN{printf "%.2f", a/b}'; }

echo "== issue 15: DeepSeek-V3 scale, erc on 2 of the 58 MoE layers (256 experts, d 7168, D 2048, FP8 128x128 blocks)"
if [ ! -f "$DS/model.safetensors.index.json" ]; then
  free_gb=$(df -Pk "$BENCH_DIR" | awk 'NR==2 {printf "%d", $4/1048576}')
  if [ "$free_gb" -lt 30 ]; then
    echo "   (skipped: the synthetic checkpoint needs 28.5 GB and $BENCH_DIR has $free_gb GB free)"; exit 0
  fi
  run "moe-inspect synth --like deepseek-v3 --layers 2" $BIN synth --like deepseek-v3 --layers 2 "$DS" -q
fi
echo "   checkpoint $DS: $(du -sb "$DS" | awk '{printf "%.2f GB", $1/1e9}') on disk ($(ls "$DS"/*.safetensors | wc -l) shards); load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Noise-free at alpha 0.5 (the paper's alpha at 256 experts): the values are compared with the peer's.
evict
run "moe-inspect erc --no-noise, cold (read from disk)" $BIN erc "$DS" --no-noise --alpha 0.5 --csv /tmp/moe-bench-ds-erc.csv -q
figures $GFLOP_CLEAN
ours_cold=$WALL
median3 "moe-inspect erc --no-noise, gate weights in page cache" $BIN erc "$DS" --no-noise --alpha 0.5 --csv /tmp/moe-bench-ds-erc.csv -q
figures $GFLOP_CLEAN
ours_warm=$WALL
run "moe-inspect erc (default: 1 noise sample)" $BIN erc "$DS" --alpha 0.5 --csv /tmp/moe-bench-ds-erc-noise.csv -q
figures $(awk -v g=$GFLOP_CLEAN 'BEGIN{print 2*g}')
ours_noise=$WALL
if [ $have_torch = 1 ]; then
  peer="$PYTHON scripts/bench_erc.py $DS"
  evict
  run "PyTorch peer --samples 0, cold (2 threads)" $peer /tmp/moe-bench-ds-torch.csv --threads 2 --samples 0 --alpha 0.5
  figures $GFLOP_CLEAN
  echo "   ratio PyTorch / moe-inspect, cold: $(ratio $WALL $ours_cold)x"
  run "PyTorch peer --samples 0, in page cache (2 threads)" $peer /tmp/moe-bench-ds-torch.csv --threads 2 --samples 0 --alpha 0.5
  figures $GFLOP_CLEAN
  echo "   ratio PyTorch / moe-inspect, in page cache: $(ratio $WALL $ours_warm)x"
  "$PYTHON" scripts/compare_erc.py /tmp/moe-bench-ds-erc.csv /tmp/moe-bench-ds-torch.csv | sed 's/^/   /'
  run "PyTorch peer --samples 1 (2 threads)" $peer /tmp/moe-bench-ds-torch-noise.csv --threads 2 --samples 1 --alpha 0.5
  figures $(awk -v g=$GFLOP_CLEAN 'BEGIN{print 2*g}')
  echo "   ratio PyTorch / moe-inspect, 1 noise sample: $(ratio $WALL $ours_noise)x (noise drawn differently: times only)"
else
  echo "   (PyTorch not installed for $PYTHON: peer skipped)"
fi
exit 0
