#!/usr/bin/python3
"""Print the per-seed, per-label Dice table (markdown) of the runs in a results folder.
usage: /usr/bin/python3 bench/quickstart/table.py bench/quickstart/results/final [more folders]"""
import glob
import json
import os
import re
import sys

import numpy as np

rows = {}
for d in sys.argv[1:]:
    for f in sorted(glob.glob(os.path.join(d, '*.json'))):
        r = json.load(open(f))
        name = re.sub(r'-s\d+\.json$', '', os.path.basename(f))
        a = r['args']
        vals = {h['step']: h['val'] for h in r['history'] if 'val' in h}
        rows.setdefault(name, []).append((a['seed'], r['dice'], r['meanDice'], r['stepSeconds'], vals, a))

print('| recipe | seed | Anterior | Posterior | mean | val mean at steps 100 / 200 | both labels > 0.5 |')
print('|---|---|---|---|---|---|---|')
for name, runs in rows.items():
    means = []
    for seed, dice, mean, sps, vals, a in sorted(runs, key=lambda x: x[0]):
        curve = ' / '.join(f'{np.mean(vals[s]):.3f}' for s in sorted(vals)) or '—'
        ok = 'yes' if min(dice) > 0.5 else '**no**'
        print(f'| {name} | {seed} | {dice[0]:.3f} | {dice[1]:.3f} | {mean:.3f} | {curve} | {ok} |')
        means.append(mean)
    if len(means) > 1:
        print(f'| {name} | **mean ± sd ({len(means)})** | | | **{np.mean(means):.3f} ± {np.std(means, ddof=1):.3f}** | | min {min(means):.3f} |')
