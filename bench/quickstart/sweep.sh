#!/bin/bash
# Run recipes × seeds, two at a time (the machine has 2 shared cores).
# usage: bench/quickstart/sweep.sh RESULTS_DIR SEEDS "name|args" ["name|args" ...]
# e.g.   bench/quickstart/sweep.sh bench/quickstart/results "0 1 2 3" "w8-poly|--filters 8,16,32,64,128 --sched poly --lr 3e-3"
# Each run writes RESULTS_DIR/<name>-s<seed>.json (skipped when it exists).
set -u
cd "$(dirname "$0")/../.."
out=$1; seeds=$2; shift 2
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%|*}; args=${spec#*|}
  for s in $seeds; do
    [ -f "$out/$name-s$s.json" ] && continue
    echo "$name|$s|$args"
  done
done | xargs -P "${PARALLEL:-2}" -I{} bash -c '
  IFS="|" read -r name s args <<< "{}"
  /usr/bin/python3 bench/quickstart/dsd_recipe.py $args --seed $s --json "'"$out"'/$name-s$s.json" > "'"$out"'/$name-s$s.log" 2>&1
  echo "$name s$s: $(tail -1 "'"$out"'/$name-s$s.log" | cut -c1-160)"
'
