#!/usr/bin/env bash
# DSD vs Basic on MSD Task04 Hippocampus (all 260 cases), 5 folds, the same split and seeds for
# both variants, small DynUNet on the CPU (wasm backend). Trains the Basic and the DSD queue in
# two processes side by side (one per core), then predicts every validation fold on the
# original grids and writes per-fold per-class Dice / HD95 and the paired comparison (Wilcoxon)
# under $DSD_WORKSPACE/compare/. See docs/results.md.
#
# Budget knobs (environment): EPOCHS (5), STEPS (60 steps per epoch), STEP_SIZE (2 epochs per
# LR halving), AUGMENT (none), LR (1e-3), NAME (hippo-cpu), FOLDS (all), BACKEND (wasm; auto on a
# GPU host).
set -euo pipefail
cd "$(dirname "$0")/.."
export DSD_WORKSPACE=${DSD_WORKSPACE:-$PWD/test/.tmp/result-ws}
DATA=${1:-../shared/data/msd-task04-hippocampus}
EPOCHS=${EPOCHS:-5}
STEPS=${STEPS:-60}
STEP_SIZE=${STEP_SIZE:-2}
AUGMENT=${AUGMENT:-none}
LR=${LR:-1e-3}
NAME=${NAME:-hippo-cpu}
FOLDS=${FOLDS:-all}
BACKEND=${BACKEND:-wasm}
LOGS="$DSD_WORKSPACE/logs"
mkdir -p "$LOGS"
dsd() { node bin/dsd.mjs "$@"; }

dsd import "$DATA" --quiet
dsd split hippocampus --folds 5 --seed 0 --name k5

queue() { # variant
  dsd train --dataset hippocampus --split k5 --folds "$FOLDS" --variant "$1" \
    --epochs "$EPOCHS" --steps-per-epoch "$STEPS" --step-size "$STEP_SIZE" --lr "$LR" \
    --augment "$AUGMENT" --validate-every 0 --backend "$BACKEND" --seed 100 --name "$NAME"
  for run in $(ls "$DSD_WORKSPACE/runs" | grep "^$NAME-$1-fold"); do
    dsd predict --run "$run" --backend "$BACKEND" --sw-batch 4 --quiet
  done
}
PIDS=()
# Ctrl+C, a failure or the end of this script stops both queues (their checkpoints stay).
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
queue Basic >"$LOGS/basic.log" 2>&1 &
PIDS+=($!)
sleep 30 # let the first queue fill the preprocessing cache
queue DSD >"$LOGS/dsd.log" 2>&1 &
PIDS+=($!)
status=0
for pid in "${PIDS[@]}"; do wait "$pid" || status=$?; done
if [ "$status" -ne 0 ]; then
  echo "a training queue failed (exit $status): see $LOGS/basic.log and $LOGS/dsd.log" >&2
  exit "$status"
fi

runs() { ls "$DSD_WORKSPACE/runs" | grep "^$NAME-$1-fold" | paste -sd, -; }
A=$(runs Basic)
B=$(runs DSD)
dsd evaluate --run ${A//,/ --run } --out "$DSD_WORKSPACE/compare" --name basic
dsd evaluate --run ${B//,/ --run } --out "$DSD_WORKSPACE/compare" --name dsd
dsd evaluate --a "$A" --b "$B" --out "$DSD_WORKSPACE/compare" --name basic-vs-dsd
dsd export --report --a "$A" --b "$B" --out "$DSD_WORKSPACE/compare"
