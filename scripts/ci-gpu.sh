#!/usr/bin/env bash
# The GPU path on a machine without a GPU, for CI (`make test-gpu`): installs Debian's
# mesa-vulkan-drivers (lavapipe: a Vulkan 1.3 device that runs on the CPU) and the Vulkan
# loader if missing (needs root), shows the adapters, and runs tests/gpu.rs built with
# burn's wgpu backend. On a machine with a real GPU it only runs the tests there.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s mesa-vulkan-drivers libvulkan1 vulkan-tools >/dev/null 2>&1; then
  apt-get install -y -q mesa-vulkan-drivers libvulkan1 vulkan-tools >/dev/null
fi
# The Vulkan loader and vulkaninfo want a runtime directory; CI shells have none.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
vulkaninfo --summary 2>/dev/null | sed -n '/^Devices:/,$p' | grep -E 'deviceName|deviceType|driverInfo' || true
start=$(date +%s)
make test-gpu
echo "gpu-path tests took $(( $(date +%s) - start )) s"
