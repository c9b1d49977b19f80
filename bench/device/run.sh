#!/usr/bin/env bash
# WebGPU speed on a bare NVIDIA Linux host (issue 12), in one run of at most ~9 minutes.
#
# Prepare here (bench/device/prepare.sh builds dist/device: the dsd CLI bundle, a node binary,
# Dawn and the Vulkan/GL loader .debs), then on the GPU host, from the repository root with
# dist/device carried and $OUT set:
#
#   bash bench/device/run.sh
#
# It records into $OUT:
#   gpu.csv, info.json              card, driver, memory; `dsd info` (adapter, features)
#   bench-mmwhs-64.json / -96.json  DSD step of DynUNet mmwhs at 2×64³ and 2×96³, fp32, the
#                                   engine's WGSL kernels: ms per step, peak GPU buffer bytes,
#                                   per-kernel profile (timestamp queries)
#   pytorch-64.json / -96.json      the same step in PyTorch (fp32/TF32), where torch+CUDA exist
#   pytorch-96-bf16.json            PyTorch with bf16 autocast (the tensor-core reference)
#   bench-mmwhs-64-stock.json       TF.js stock WebGPU kernels at 2×64³ (DSD_KERNELS=stock)
#   bench-mmwhs-64-direct.json      the engine's CPU-adapter conv variant on the GPU
#   summary.txt                     one line per measurement
# Each step is time-boxed; steps are skipped once the overall budget (BUDGET_S, default 540 s)
# is spent, most important first. The f16 (shader-f16) path is not implemented yet: fp32 only.
set -uo pipefail
repo=$(pwd)
OUT=${OUT:?set OUT to the output folder}
BUDGET_S=${BUDGET_S:-540}
start=$(date +%s)
k=/tmp/dsdkit
mkdir -p $k/root "$OUT"
xz -dc dist/device/node.xz > $k/node && chmod +x $k/node
for f in dist/device/debs/*.deb; do dpkg -x "$f" $k/root; done
mkdir -p node_modules && tar -C node_modules -xJf dist/device/webgpu.tar.xz
export LD_LIBRARY_PATH=$k/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export XDG_RUNTIME_DIR=/tmp/xdg && mkdir -p $XDG_RUNTIME_DIR

left() { echo $((BUDGET_S - ($(date +%s) - start))); }
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
# run NAME TIMEOUT_S CMD...: skipped when the budget cannot cover TIMEOUT_S
run() {
  local name=$1 t=$2; shift 2
  if [ "$(left)" -lt "$t" ]; then summary "$name: skipped (budget: $(left) s left)"; return; fi
  local t0=$(date +%s)
  timeout "$t" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  local rc=$?
  summary "$name: rc=$rc in $(( $(date +%s) - t0 )) s $(tail -c 300 "$OUT/$name.err" | tr '\n' ' ' | cut -c1-200)"
}
# dsd and bench are scripts on PATH, not shell functions, so that `timeout` can run them
mkdir -p $k/bin
printf '#!/usr/bin/env bash\nexec %s %s "$@"\n' "$k/node" "$repo/dist/device/dsd.mjs" > $k/bin/dsd
printf '#!/usr/bin/env bash\nexec %s bench --backend webgpu --backbone dynunet --preset mmwhs --batch 2 --no-infer --json "$@"\n' "$k/bin/dsd" > $k/bin/bench
chmod +x $k/bin/dsd $k/bin/bench
export PATH=$k/bin:$PATH

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv" 2>&1
summary "gpu: $(tail -n +2 "$OUT/gpu.csv" | head -1)"
run info 60 dsd info --json

# engine kernels (the default on a GPU adapter: workgroup-memory tiled convolutions), fp32
run bench-mmwhs-64 150 bench --patch 64 --steps 5 --warmup 2 --profile
run bench-mmwhs-96 180 bench --patch 96 --steps 3 --warmup 1 --profile

# PyTorch reference, same network and loss
if [ -z "${SKIP_PYTORCH:-}" ] && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  run pytorch-64 90 python3 bench/device/pytorch_dsd_step.py --patch 64 --batch 2 --steps 10
  run pytorch-96 90 python3 bench/device/pytorch_dsd_step.py --patch 96 --batch 2 --steps 10
  run pytorch-96-bf16 90 python3 bench/device/pytorch_dsd_step.py --patch 96 --batch 2 --steps 10 --amp bf16
else
  summary "pytorch: not run (no torch with CUDA here)"
fi

# comparisons: TF.js stock kernels, and the CPU-adapter conv variant on this GPU
DSD_KERNELS=stock run bench-mmwhs-64-stock 120 bench --patch 64 --steps 2 --warmup 1
DSD_WEBGPU_CONV=direct run bench-mmwhs-64-direct 90 bench --patch 64 --steps 2 --warmup 1

# one line per result
for f in "$OUT"/bench-*.json "$OUT"/pytorch-*.json; do
  [ -s "$f" ] || continue
  $k/node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    const mb = (b) => b == null ? "n/a" : (b / 2 ** 30).toFixed(2) + " GiB"
    if (r.framework === "pytorch") console.log(`${process.argv[1]}: pytorch ${r.amp} ${r.batch}×${r.patch}³ ${r.stepMs.toFixed(1)} ms, peak ${mb(r.peakBytes)}`)
    else console.log(`${process.argv[1]}: ${r.webgpuKernels} (${r.convVariant ?? "tf"}) ${r.batch}×${r.patch.join("×")} ${r.trainStepMs} ms, GPU peak ${mb(r.gpuPeakBytes)}, pool ${mb(r.gpuPooledBytes)}` +
      (r.profile ? "; top: " + r.profile.byDispatch.slice(0, 6).map((d) => `${d.name} ${d.ms.toFixed(0)}`).join(", ") : ""))
  ' "$f" | tee -a "$OUT/summary.txt"
done
ls -la "$OUT"
