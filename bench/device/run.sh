#!/usr/bin/env bash
# WebGPU speed on a bare NVIDIA Linux host (issue 12), in one run of at most BUDGET_S seconds.
#
# Prepare here (bench/device/prepare.sh builds dist/device: the dsd CLI bundle, the conv
# correctness check bundle, a node binary, Dawn and the Vulkan/GL loader .debs), then on the
# GPU host, from the repository root with dist/device carried and $OUT set:
#
#   export BUDGET_S=480 SKIP_PYTORCH=1; bash bench/device/run.sh
#
# Steps, most important first (each time-boxed; a step is skipped once the budget cannot cover
# its time box). Files in $OUT:
#   gpu.csv, info.json          card, driver, memory; `dsd info` (adapter, features)
#   adapter.json                adapter info, features, limits and subgroupMatrixConfigs, with
#                               and without Dawn's allow_unsafe_apis
#   conv-check.json             every conv tile table (f32, and f16 where shader-f16 is
#                               offered) against the CPU backend: max relative error per case;
#                               a table that fails is not timed
#   sweep-96-<table>-<prec>.json  DSD step of DynUNet mmwhs at 2×96³ per tile table and
#                               precision (ms per step, GPU peak, per-kernel profile)
#   bench-64-<table>-<prec>.json  2×64³ for the default table and the fastest one
#   pytorch-*.json              PyTorch reference (skipped with SKIP_PYTORCH=1)
#   bench-64-stock.json, bench-64-direct.json   comparisons, only if budget is left
#   summary.txt                 one line per step and per result, ratios against base/f32
# Environment: BUDGET_S (default 540), SKIP_PYTORCH=1, TABLES (comma list, default: all),
# CHECK_ARGS (more conv-check arguments, e.g. --no-f16), DSD_KIT (scratch folder, default
# /tmp/dsdkit), SMOKE=1 (a local end-to-end test on any adapter: 2×32³, one step, quick
# correctness cases), e.g. on lavapipe:
#   SMOKE=1 TABLES=base,v4 CHECK_ARGS=--no-f16 DSD_KIT=/tmp/kit OUT=/tmp/smoke bash bench/device/run.sh
set -uo pipefail
repo=$(pwd)
OUT=${OUT:?set OUT to the output folder}
BUDGET_S=${BUDGET_S:-540}
start=$(date +%s)
k=${DSD_KIT:-/tmp/dsdkit}
mkdir -p $k/root "$OUT"
[ -x $k/node ] || { xz -dc dist/device/node.xz > $k/node.tmp && chmod +x $k/node.tmp && mv $k/node.tmp $k/node; }
for f in dist/device/debs/*.deb; do dpkg -x "$f" $k/root; done
[ -f node_modules/webgpu/dist/linux-x64/dawn.node ] || { mkdir -p node_modules && tar -C node_modules -xJf dist/device/webgpu.tar.xz; }
export LD_LIBRARY_PATH=$k/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -z "${VK_DRIVER_FILES:-}" ] && [ -f $nv_icd ] && export VK_DRIVER_FILES=$nv_icd
export XDG_RUNTIME_DIR=/tmp/xdg && mkdir -p $XDG_RUNTIME_DIR

if [ -n "${SMOKE:-}" ]; then
  # DynUNet small at 2×16³ (the software adapter compiles each pipeline with LLVM)
  P96=16; P64=16; STEPS="--steps 1 --warmup 1"; STEPS64="--steps 1 --warmup 1"; CHECK="--quick"; LAST="--preset small"
else
  P96=96; P64=64; STEPS="--steps 3 --warmup 1"; STEPS64="--steps 5 --warmup 2"; CHECK=""; LAST=""
fi

left() { echo $((BUDGET_S - ($(date +%s) - start))); }
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
# run NAME TIMEOUT_S CMD...: stdout to NAME.json, stderr to NAME.err; skipped when the budget
# cannot cover TIMEOUT_S
run() {
  local name=$1 t=$2; shift 2
  if [ "$(left)" -lt "$t" ]; then summary "$name: skipped (budget: $(left) s left)"; return 99; fi
  local t0=$(date +%s)
  timeout "$t" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  local rc=$?
  summary "$name: rc=$rc in $(( $(date +%s) - t0 )) s $(grep -v 'artificially reduced' "$OUT/$name.err" | tail -c 300 | tr '\n' ' ' | cut -c1-200)"
  return $rc
}
# dsd, bench and conv-check are scripts on PATH, not shell functions, so that `timeout` can run them
mkdir -p $k/bin
printf '#!/usr/bin/env bash\nexec %s %s "$@"\n' "$k/node" "$repo/dist/device/dsd.mjs" > $k/bin/dsd
printf '#!/usr/bin/env bash\nexec %s bench --backend webgpu --backbone dynunet --preset mmwhs --batch 2 --no-infer --json "$@" %s\n' "$k/bin/dsd" "$LAST" > $k/bin/bench
printf '#!/usr/bin/env bash\nexec %s %s "$@"\n' "$k/node" "$repo/dist/device/conv-check.mjs" > $k/bin/conv-check
printf '#!/usr/bin/env bash\nexec %s %s "$@"\n' "$k/node" "$repo/bench/device/adapter.mjs" > $k/bin/adapter
chmod +x $k/bin/*
export PATH=$k/bin:$PATH
# one JSON field of a file (node expression over r), or "" when absent
field() { $k/node -e 'try { const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const v = eval(process.argv[2]); console.log(v ?? "") } catch { console.log("") }' "$1" "$2" 2>/dev/null; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv" 2>&1
summary "gpu: $(tail -n +2 "$OUT/gpu.csv" | head -1)"
run info 60 dsd info --json
run adapter 60 adapter
summary "adapter: $(field "$OUT/adapter.json" 'r.default.info.description + " " + r.default.info.device') features: $(field "$OUT/adapter.json" 'r.default.features.join(" ")')"
summary "subgroupMatrixConfigs (allow_unsafe_apis): $(field "$OUT/adapter.json" 'JSON.stringify(r.unsafe.subgroupMatrixConfigs)')"

# (a) correctness of every tile table against the CPU backend, on the GPU, before any timing
run conv-check 200 conv-check $CHECK ${TABLES:+--tables $TABLES} ${CHECK_ARGS:-}
$k/node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)
  for (const l of lines) { try { const r = JSON.parse(l); if (r.check) console.log(`check ${r.check}: ${r.pass ? "ok" : "FAILED"} max rel err ${r.maxRelErr} (bound ${r.bound}) ${r.error ?? ""}`) } catch {} }
' "$OUT/conv-check.json" | tee -a "$OUT/summary.txt"
# tables that passed, per precision ("base v4 ..."); without a check summary only base is timed
okf32=$($k/node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)
  const s = lines.map((l) => { try { return JSON.parse(l) } catch { return {} } }).find((r) => r.summary)
  console.log((s ? s.ok.filter((x) => x.endsWith("/f32")).map((x) => x.slice(0, -4)) : []).join(" "))
' "$OUT/conv-check.json" 2>/dev/null)
okf16=$($k/node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)
  const s = lines.map((l) => { try { return JSON.parse(l) } catch { return {} } }).find((r) => r.summary)
  const ok = new Set(s ? s.ok : [])
  console.log((s ? s.ok.filter((x) => x.endsWith("/f16")).map((x) => x.slice(0, -4)).filter((t) => ok.has(t + "/f16-unrounded")) : []).join(" "))
' "$OUT/conv-check.json" 2>/dev/null)
if ! grep -q '"summary":true' "$OUT/conv-check.json" 2>/dev/null; then
  okf32=base
  summary "conv-check gave no summary (crashed or timed out): timing the default table only"
fi
summary "tables passing: f32 [${okf32}] f16 [${okf16}]"

# (c) 2×96³ sweep: every passing table, fp32 then f16 (base first: the reference)
for t in $okf32; do
  DSD_WEBGPU_CONV=tiled DSD_CONV_TILE=$t run sweep-$P96-$t-f32 90 bench --patch $P96 $STEPS --profile
done
for t in $okf16; do
  DSD_WEBGPU_CONV=tiled DSD_CONV_TILE=$t DSD_PRECISION=f16 run sweep-$P96-$t-f16 90 bench --patch $P96 $STEPS --profile
done
# ratios against base/f32 and the fastest of each precision
best=$($k/node -e '
  const fs = require("fs"), dir = process.argv[1], p = process.argv[2]
  const rows = fs.readdirSync(dir).filter((f) => f.startsWith(`sweep-${p}-`) && f.endsWith(".json"))
    .map((f) => { try { const r = JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8")); return { f, ms: r.trainStepMs, r } } catch { return null } })
    .filter((x) => x && x.ms > 0)
  const ref = rows.find((x) => x.f === `sweep-${p}-base-f32.json`)
  for (const x of rows.sort((a, b) => a.ms - b.ms)) {
    const top = x.r.profile ? x.r.profile.byDispatch.slice(0, 5).map((d) => `${d.name} ${d.ms.toFixed(1)}`).join(", ") : ""
    console.error(`${x.f.slice(0, -5)}: ${x.ms.toFixed(1)} ms/step${ref ? ` (${(x.ms / ref.ms).toFixed(3)}× base/f32)` : ""}, GPU peak ${(x.r.gpuPeakBytes / 2 ** 30).toFixed(2)} GiB; ${top}`)
  }
  const pick = (prec) => { const b = rows.filter((x) => x.f.endsWith(`-${prec}.json`)).sort((a, b) => a.ms - b.ms)[0]; return b ? b.f.slice(`sweep-${p}-`.length, -`-${prec}.json`.length) : "" }
  console.log(`${pick("f32")}:${pick("f16")}`)
' "$OUT" "$P96" 2> "$OUT/sweep-table.txt")
tee -a "$OUT/summary.txt" < "$OUT/sweep-table.txt"
IFS=: read -r best32 best16 <<< "$best"
summary "fastest at 2×${P96}³: f32 ${best32:-none}, f16 ${best16:-none}"

# (d) 2×64³: default table, then the fastest f32 and f16 tables
run bench-$P64-base-f32 120 env DSD_WEBGPU_CONV=tiled DSD_CONV_TILE=base bench --patch $P64 $STEPS64 --profile
if [ -n "${best32:-}" ] && [ "$best32" != base ]; then
  run bench-$P64-$best32-f32 120 env DSD_WEBGPU_CONV=tiled DSD_CONV_TILE=$best32 bench --patch $P64 $STEPS64 --profile
fi
if [ -n "${best16:-}" ]; then
  run bench-$P64-$best16-f16 120 env DSD_WEBGPU_CONV=tiled DSD_CONV_TILE=$best16 DSD_PRECISION=f16 bench --patch $P64 $STEPS64 --profile
fi

# PyTorch reference, same network and loss (optional)
if [ -z "${SKIP_PYTORCH:-}" ] && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  run pytorch-64 90 python3 bench/device/pytorch_dsd_step.py --patch 64 --batch 2 --steps 10
  run pytorch-96 90 python3 bench/device/pytorch_dsd_step.py --patch 96 --batch 2 --steps 10
  run pytorch-96-bf16 90 python3 bench/device/pytorch_dsd_step.py --patch 96 --batch 2 --steps 10 --amp bf16
else
  summary "pytorch: not run (SKIP_PYTORCH set, or no torch with CUDA here)"
fi

# comparisons, only with budget to spare: TF.js stock kernels and the CPU-adapter conv variant
if [ -z "${SMOKE:-}" ]; then
  DSD_KERNELS=stock run bench-64-stock 120 bench --patch 64 --steps 2 --warmup 1
  DSD_WEBGPU_CONV=direct run bench-64-direct 90 bench --patch 64 --steps 2 --warmup 1
fi

# one line per benchmark result
for f in "$OUT"/sweep-*.json "$OUT"/bench-*.json "$OUT"/pytorch-*.json; do
  [ -s "$f" ] || continue
  $k/node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    const mb = (b) => b == null ? "n/a" : (b / 2 ** 30).toFixed(2) + " GiB"
    const name = require("path").basename(process.argv[1], ".json")
    if (r.framework === "pytorch") console.log(`${name}: pytorch ${r.amp} ${r.batch}×${r.patch}³ ${r.stepMs.toFixed(1)} ms, peak ${mb(r.peakBytes)}`)
    else console.log(`${name}: ${r.webgpuKernels} (${r.convVariant ?? "tf"}) ${r.batch}×${r.patch.join("×")} ${r.trainStepMs} ms, GPU peak ${mb(r.gpuPeakBytes)}, pool ${mb(r.gpuPooledBytes)}` +
      (r.profile ? "; top: " + r.profile.byDispatch.slice(0, 6).map((d) => `${d.name} ${d.ms.toFixed(1)}`).join(", ") : ""))
  ' "$f" 2>/dev/null | tee -a "$OUT/summary.txt"
done
summary "total: $(( $(date +%s) - start )) s of $BUDGET_S"
ls -la "$OUT"
