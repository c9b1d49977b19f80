#!/usr/bin/env bash
# Runs on the GPU host (from the repository root, with dist/device carried): unpacks node,
# the loader libraries and Dawn, then records `dsd info` and `dsd bench` on WebGPU and CPU
# into $OUT. Each step is time-boxed so one slow case cannot eat the whole budget.
set -uo pipefail
repo=$(pwd)
k=/tmp/dsdkit
mkdir -p $k/root "$OUT"
xz -dc dist/device/node.xz > $k/node && chmod +x $k/node
for f in dist/device/debs/*.deb; do dpkg -x "$f" $k/root; done
mkdir -p node_modules && tar -C node_modules -xJf dist/device/webgpu.tar.xz
export LD_LIBRARY_PATH=$k/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export XDG_RUNTIME_DIR=/tmp/xdg && mkdir -p $XDG_RUNTIME_DIR
dsd() { timeout "$1" $k/node dist/device/dsd.mjs "${@:2}"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv" 2>&1
dsd 120 info --json > "$OUT/info.json" 2> "$OUT/info.err"; echo "info rc=$?"
b() { name=$1; shift; dsd 150 bench --json "$@" > "$OUT/bench-$name.json" 2> "$OUT/bench-$name.err"; echo "bench $name rc=$?"; tail -c 300 "$OUT/bench-$name.err"; }
b small-webgpu --backend webgpu --backbone dynunet --preset small --steps 5
b small-webgpu-basic --backend webgpu --backbone dynunet --preset small --steps 5 --variant Basic
b mmwhs-webgpu-2x64 --backend webgpu --backbone dynunet --preset mmwhs --patch 64 --batch 2 --steps 3
b mmwhs-webgpu-1x96 --backend webgpu --backbone dynunet --preset mmwhs --patch 96 --batch 1 --steps 2
b mmwhs-webgpu-2x96 --backend webgpu --backbone dynunet --preset mmwhs --patch 96 --batch 2 --steps 2
b unetr-small-webgpu --backend webgpu --backbone unetr --preset small --steps 3
b small-cpu --backend cpu --backbone dynunet --preset small --steps 2
ls -la "$OUT"
