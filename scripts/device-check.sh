#!/usr/bin/env bash
# One-shot check of the GPU path on a lent GPU machine (one H200, PyTorch and nvcc, no cargo, no
# network; the working tree copied over, at most 64 MiB). Two halves:
#
#   scripts/device-check.sh prepare   here: builds the `wgpu` and `vulkan` binaries (stripped,
#                                     xz-compressed), fetches Debian's Vulkan loader and copies
#                                     Fashion-MNIST into dist/device-check/ (git-ignored; carry it)
#   scripts/device-check.sh run       on the GPU machine, in at most 10 minutes: lists the
#                                     devices, trains a few Fashion-MNIST runs on wgpu:0 and on
#                                     vulkan:0, times `mixsweep bench` there beside the same
#                                     networks in that machine's PyTorch on CUDA, and writes
#                                     reports/gpu-bench.md (raw outputs in $OUT or dist/out)
#
# With the `device` tool: run `prepare` here, then
#   run(command="bash scripts/device-check.sh run", carry=["dist/device-check"], timeout_s=600)
# `run` also works on any Linux machine with a GPU and a Vulkan driver. QUICK=1 shrinks the
# Fashion-MNIST runs (500 images, 1 epoch) to rehearse the script on a slow device (lavapipe).
set -euo pipefail
cd "$(dirname "$0")/.."
DIST=dist/device-check

prepare() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mixsweep/target}"
  rm -rf "$DIST"
  mkdir -p "$DIST/lib" "$DIST/fashion-mnist"
  # Two binaries: in a build with `vulkan`, wgpu:N on a Vulkan adapter compiles SPIR-V too, so
  # WGSL on the GPU needs a build without it.
  for feature in wgpu vulkan; do
    cargo build --release --locked --features "$feature"
    strip -o "$DIST/mixsweep-$feature" "$CARGO_TARGET_DIR/release/mixsweep"
    xz -T0 -9 "$DIST/mixsweep-$feature"
  done
  # The Vulkan loader (libvulkan.so.1) in case the machine has only the NVIDIA driver.
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download libvulkan1 >/dev/null && dpkg-deb -x libvulkan1_*.deb root)
  cp -L "$tmp"/root/usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$DIST/lib/"
  rm -rf "$tmp"
  src=/usr/share/datasets/fashion-mnist
  [ -d "$src" ] || src=data/fashion-mnist
  # The whole training set does not fit beside two binaries: carry the test set and the first
  # 10,000 training images; `run` repeats them to the 60,000 records the loader expects.
  cp "$src"/t10k-*.gz "$DIST/fashion-mnist/"
  python3 - "$src" "$DIST/fashion-mnist" <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for name, record in (("train-images-idx3-ubyte", 784), ("train-labels-idx1-ubyte", 1)):
    data = gzip.open(f"{src}/{name}.gz").read()
    head = 16 if record == 784 else 8
    body = data[head:head + 10000 * record]
    out = data[:4] + struct.pack(">I", 10000) + data[8:head] + body
    gzip.open(f"{dst}/first10k-{name}.gz", "wb", compresslevel=9).write(out)
PY
  du -sh "$DIST"
  size=$(du -sm "$DIST" | cut -f1)
  if [ "$size" -gt 60 ]; then
    echo "dist/device-check is ${size} MiB: more than the device tool carries (64 MiB with the tree)" >&2
    exit 1
  fi
}

# The NVIDIA Vulkan driver announces itself with an ICD file; containers that expose only the
# compute libraries often lack it while libGLX_nvidia.so.0 (which carries the Vulkan driver)
# is there.
nvidia_icd() {
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d; do
    ls "$d"/nvidia_icd*.json >/dev/null 2>&1 && return 0
  done
  if ldconfig -p 2>/dev/null | grep -q libGLX_nvidia.so.0; then
    icd="$OUT_DIR/nvidia_icd.json"
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.3"}}\n' >"$icd"
    export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"
    echo "no NVIDIA ICD file: using $icd"
  else
    echo "no NVIDIA Vulkan driver found (no ICD file, no libGLX_nvidia.so.0): vulkan:0 and wgpu:0 will fail" >&2
  fi
}

run() {
  OUT_DIR="${OUT:-dist/out}"
  mkdir -p "$OUT_DIR"
  OUT_DIR=$(cd "$OUT_DIR" && pwd)
  bin="$OUT_DIR/bin"
  mkdir -p "$bin"
  for feature in wgpu vulkan; do
    xz -dc "$DIST/mixsweep-$feature.xz" >"$bin/mixsweep-$feature"
    chmod +x "$bin/mixsweep-$feature"
  done
  export LD_LIBRARY_PATH="$PWD/$DIST/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # Fashion-MNIST: the test set as is; the first 10,000 training images repeated six times.
  mkdir -p "$OUT_DIR/data/fashion-mnist"
  cp "$DIST"/fashion-mnist/t10k-*.gz "$OUT_DIR/data/fashion-mnist/"
  python3 - "$DIST/fashion-mnist" "$OUT_DIR/data/fashion-mnist" <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for name, record in (("train-images-idx3-ubyte", 784), ("train-labels-idx1-ubyte", 1)):
    data = gzip.open(f"{src}/first10k-{name}.gz").read()
    head = 16 if record == 784 else 8
    out = data[:4] + struct.pack(">I", 60000) + data[8:head] + data[head:] * 6
    gzip.open(f"{dst}/{name}.gz", "wb", compresslevel=1).write(out)
PY
  export MIXSWEEP_DATA="$OUT_DIR/data" XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  nvidia_icd
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } >"$OUT_DIR/gpu.txt"
  python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' >"$OUT_DIR/torch.txt" 2>&1 || true

  # A few Fashion-MNIST runs on each backend: PreActResNet18 width 16, 10,000 draws from the
  # first 10,000 training images, 2 epochs, ERM and Manifold Mixup (S = {0, 1, 2}), clean test
  # error and NLL on the whole test set.
  if [ "${QUICK:-0}" = 1 ]; then images=500 epochs=1; else images=10000 epochs=2; fi
  cat >"$OUT_DIR/fm-gpu.yaml" <<YAML
name: fm-gpu
base:
  data: { name: fashion_mnist, train_subset: $images, seed: 0 }
  model: { name: preact_resnet, depth: 18, width: 16 }
  train: { optimizer: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 1.0e-4,
           batch_size: 100, epochs: $epochs, loss: soft_ce }
seeds: [0]
grid:
  - { method: [erm] }
  - { method: [manifold_mixup], alpha: [2.0], layers: [[0, 1, 2]] }
YAML
  for feature in wgpu vulkan; do
    m="$bin/mixsweep-$feature"
    dev="$feature:0"
    "$m" devices >"$OUT_DIR/devices-$feature.txt" 2>&1 || true
    # Each step is time-boxed (2 × (110 + 2 × 55) + 2 × 50 s = 9 minutes at most), so that one
    # hang cannot eat the machine's 10 minutes.
    timeout 110 "$m" --store "$OUT_DIR/runs-$feature" sweep "$OUT_DIR/fm-gpu.yaml" --device "$dev" \
      >"$OUT_DIR/sweep-$feature.txt" 2>&1 || echo "sweep on $dev: exit $?" >>"$OUT_DIR/sweep-$feature.txt"
    for batch in 100 128; do
      timeout 55 "$m" --store "$OUT_DIR/runs-$feature" bench --device "$dev" --only PreActResNet18 \
        --batch "$batch" --quick --out "$OUT_DIR/bench-$feature-$batch.md" \
        >"$OUT_DIR/bench-$feature-$batch.log" 2>&1 || echo "exit $?" >>"$OUT_DIR/bench-$feature-$batch.log"
    done
  done
  for batch in 100 128; do
    timeout 50 python3 scripts/torch_bench.py --device cuda --batch "$batch" --rounds 3 \
      --network "PreActResNet18, width 16, 3×32×32" --network "PreActResNet18, width 64, 3×32×32" \
      >"$OUT_DIR/torch-$batch.jsonl" 2>"$OUT_DIR/torch-$batch.log" || true
  done
  python3 scripts/gpu_report.py "$OUT_DIR" >reports/gpu-bench.md
  cp reports/gpu-bench.md "$OUT_DIR/"
  cat reports/gpu-bench.md
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare | run" >&2; exit 2 ;;
esac
