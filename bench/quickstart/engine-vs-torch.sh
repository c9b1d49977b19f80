#!/bin/bash
# Time one training step of each network in our engine (dsd bench, wasm) and in the PyTorch
# mirror (1 thread), back to back, so the ratios are measured under the same machine load.
# usage: bench/quickstart/engine-vs-torch.sh [backend]   (prints one JSON line per measurement)
set -eu
cd "$(dirname "$0")/../.."
backend=${1:-wasm}
for variant in dsd basic; do
  for filters in 4,8,16,32,64 8,16,32,64,128; do
    e=$(npx dsd bench --backbone dynunet --preset small --filters $filters --patch 32 --batch 2 \
          --steps 3 --warmup 1 --variant $variant --backend $backend --json 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"trainStepS": d["trainStepMs"]/1000, "inferS": d["inferMs"]/1000, "backend": d["backend"]}))')
    t=$(/usr/bin/python3 bench/quickstart/dsd_recipe.py --filters $filters --patch 32 --batch 2 --variant $variant --time-only 5)
    echo "{\"filters\": \"$filters\", \"variant\": \"$variant\", \"engine\": $e, \"torch\": $t}"
  done
done
