#!/usr/bin/env bash
# DSD vs Basic on MSD Task04 Hippocampus (all 260 cases), 5 folds, same split and seeds,
# small DynUNet on the CPU (wasm backend) with a deliberately tiny budget:
# 4 epochs × 12 steps × 2 patches of 32³ per run. Writes per-fold per-class Dice / HD95 and
# the paired comparison (Wilcoxon) under $DSD_WORKSPACE/compare/. See docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export DSD_WORKSPACE=${DSD_WORKSPACE:-$PWD/test/.tmp/result-ws}
DATA=${1:-../shared/data/msd-task04-hippocampus}
dsd() { node bin/dsd.mjs "$@"; }
dsd import "$DATA" --quiet
dsd split hippocampus --folds 5 --seed 0 --name k5
dsd train --dataset hippocampus --split k5 --variant Basic,DSD --epochs 4 --steps-per-epoch 12 \
  --validate-every 0 --backend wasm --seed 100 --name hippo-cpu
for v in Basic DSD; do
  for f in 0 1 2 3 4; do dsd predict --run hippo-cpu-$v-fold$f --backend wasm --sw-batch 4 --quiet; done
done
A=$(echo hippo-cpu-Basic-fold{0..4} | tr ' ' ,)
B=$(echo hippo-cpu-DSD-fold{0..4} | tr ' ' ,)
dsd evaluate --run ${A//,/ --run } --out "$DSD_WORKSPACE/compare" --name basic
dsd evaluate --run ${B//,/ --run } --out "$DSD_WORKSPACE/compare" --name dsd
dsd evaluate --a "$A" --b "$B" --out "$DSD_WORKSPACE/compare" --name basic-vs-dsd
dsd export --report --a "$A" --b "$B" --out "$DSD_WORKSPACE/compare"
