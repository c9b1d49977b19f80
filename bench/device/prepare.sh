#!/usr/bin/env bash
# Prepare dist/device/: a one-file bundle of the dsd CLI, a stripped xz-compressed node, the
# Dawn WebGPU addon and the Vulkan/GL loader .debs, for a bare NVIDIA Linux host without Node
# (see bench/device/run.sh). Keep the result under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=dist/device
mkdir -p "$out/debs"
cat > "$out/entry.ts" <<'TS'
import { main } from '../../main/cli'
process.exitCode = await main(process.argv.slice(2))
TS
npx esbuild "$out/entry.ts" --bundle --platform=node --format=esm --target=node20 \
  --outfile="$out/dsd.mjs" --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" --log-level=warning
# the conv kernels' correctness check (every tile table against the CPU backend)
npx esbuild bench/device/conv-check.ts --bundle --platform=node --format=esm --target=node20 \
  --outfile="$out/conv-check.mjs" --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);" --log-level=warning
[ -f "$out/node.xz" ] || { cp "$(command -v node)" "$out/node" && strip "$out/node" && xz -T2 -6 "$out/node"; }
tmp=$(mktemp -d)
mkdir -p "$tmp/webgpu/dist/linux-x64"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$tmp/webgpu/"
cp node_modules/webgpu/dist/linux-x64/dawn.node "$tmp/webgpu/dist/linux-x64/"
tar -C "$tmp" -cJf "$out/webgpu.tar.xz" webgpu
rm -rf "$tmp"
(cd "$out/debs" && [ "$(ls *.deb 2>/dev/null | wc -l)" -ge 14 ] || apt-get download libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2 libx11-6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 libxext6 >/dev/null)
du -sh "$out"
