#!/usr/bin/python3
"""Quick-start recipe study for issue 14: a PyTorch mirror of DSD Studio's training pipeline.

It mirrors, on the bundled hippocampus sample (resources/sample/hippocampus):
  - preprocessing: the 'mri' preset (RAS — the sample already is RAS —, per-case z-score over
    non-zero voxels with the population std; main/data/preprocess.ts);
  - split: fold 0 of `dsd split --folds 5 --seed 0` (main/data/splits.ts, recomputed here with
    Python's random.Random(0).shuffle and a round-robin and checked against the stored list);
  - network: SelfDistilDynUNet (dsd-spec §1–2, main/engine/dynunet.ts): residual encoder,
    UnetUpBlock decoder, instance norm (eps 1e-5, no affine), LeakyReLU 0.01, Kaiming(a=0.01),
    5 DSD modules shared E2/D1, E3/D2, E4/D3, each a 1×1×1 conv + one 2×2×2 stride-2 transposed
    conv applied log2(s) times;
  - loss: dsd-spec §3 (5 Dice-CE + 9·6 KL terms; η = α1 = α2 = 1, τ = 3), or Basic;
  - sampling: SpatialPadd(reflect) + RandCropByPosNegLabel(pos, neg) of `batch` crops of ONE case
    per step, cases shuffled per epoch (main/services/trainer.ts, main/data/sampling.ts);
  - augmentation: flips / rot90 (axes i, j) / intensity shift (main/data/augment.ts);
  - validation: sliding window (ROI = patch, overlap 0.25, constant blending, zero padding,
    logits blended), argmax, per-case per-class Dice on the original grid, mean over cases, then
    mean of the two foreground labels (what `dsd evaluate` reports).

Options beyond what the engine has today (the recipe search) are marked "NEW" in --help.
Arrays are [d, h, w] = [z, y, x] like the engine's tensors.

Run with the Debian python (torch 1.13, nibabel):
  /usr/bin/python3 bench/quickstart/dsd_recipe.py --filters 8,16,32,64,128 --steps 400 --seed 0 --json out.json
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import nibabel as nib
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SAMPLE = os.path.join(ROOT, 'resources', 'sample', 'hippocampus')

# fold 0 of `dsd split hippocampus-sample --folds 5 --seed 0` (copied from the split file)
FOLD0_VAL = ['hippocampus_001', 'hippocampus_007', 'hippocampus_014', 'hippocampus_015',
             'hippocampus_020', 'hippocampus_026', 'hippocampus_051', 'hippocampus_058']


# ----------------------------------------------------------------------------- data

def kfold(ids, folds, seed):
    """main/data/splits.ts kfoldSplit without groups: sorted, random.Random(seed).shuffle, round-robin."""
    units = sorted(ids)
    random.Random(seed).shuffle(units)
    out = [[] for _ in range(folds)]
    for i, u in enumerate(units):
        out[i % folds].append(u)
    return out


def zscore_nonzero(a):
    m = a != 0
    if not m.any():
        return a
    v = a[m].astype(np.float64)
    mu, sd = v.mean(), v.std()
    if sd == 0:
        sd = 1.0
    out = a.astype(np.float32).copy()
    out[m] = ((v - mu) / sd).astype(np.float32)
    return out


def load_cases():
    meta = json.load(open(os.path.join(SAMPLE, 'dataset.json')))
    cases = {}
    for e in meta['training']:
        cid = os.path.basename(e['image']).replace('.nii.gz', '')
        im = nib.load(os.path.join(SAMPLE, e['image']))
        lb = nib.load(os.path.join(SAMPLE, e['label']))
        assert nib.aff2axcodes(im.affine) == ('R', 'A', 'S'), cid  # the 'mri' reorientation is a no-op
        img = np.asarray(im.dataobj, dtype=np.float32)
        lab = np.rint(np.asarray(lb.dataobj, dtype=np.float32)).astype(np.uint8)
        img = zscore_nonzero(img)
        # [x, y, z] -> [z, y, x] = [d, h, w]
        cases[cid] = (np.ascontiguousarray(img.transpose(2, 1, 0)), np.ascontiguousarray(lab.transpose(2, 1, 0)))
    return cases


def fold_split(cases, fold=0):
    folds = kfold(list(cases), 5, 0)
    val = sorted(folds[fold])
    if fold == 0:
        assert val == FOLD0_VAL, (val, FOLD0_VAL)
    train = sorted(c for c in cases if c not in set(val))
    return train, val


# ----------------------------------------------------------------------------- sampling

def pad_reflect(img, lab, patch, mode):
    pads = []
    for n, p in zip(img.shape, patch):
        d = max(0, p - n)
        pads.append((d // 2, d - d // 2))
    if all(a == 0 and b == 0 for a, b in pads):
        return img, lab
    if mode == 'reflect':
        return np.pad(img, pads, mode='reflect'), np.pad(lab, pads, mode='reflect')
    return np.pad(img, pads, mode='constant'), np.pad(lab, pads, mode='constant')


class Sampler:
    """RandCropByPosNegLabel on one case (main/data/sampling.ts)."""

    def __init__(self, img, lab, patch, pad_mode='reflect'):
        self.img, self.lab = pad_reflect(img, lab, patch, pad_mode)
        self.patch = patch
        self.fg = np.flatnonzero(self.lab > 0)
        self.bg = np.flatnonzero((self.lab == 0) & (self.img > 0))

    def clamp(self, c):
        out = []
        for v, p, n in zip(c, self.patch, self.img.shape):
            start = p // 2
            end = int(n + 1 - p / 2)
            if start == end:
                end += 1
            out.append(min(max(v, start), end - 1))
        return out

    def draw(self, rng, n, pos_ratio):
        crops = []
        for _ in range(n):
            use_fg = rng.random() < pos_ratio if len(self.bg) else True
            if not len(self.fg):
                use_fg = False
            lst = self.fg if use_fg else self.bg
            v = lst[rng.integers(len(lst))]
            c = self.clamp(np.unravel_index(v, self.img.shape))
            s = [ci - p // 2 for ci, p in zip(c, self.patch)]
            sl = tuple(slice(a, a + p) for a, p in zip(s, self.patch))
            crops.append((self.img[sl].copy(), self.lab[sl].copy()))
        return crops


AUG = {
    'none': dict(flip=(0, 0, 0), rot=0.0, shift=0.0, shiftp=0.0, scale=0.0),
    'mmwhs': dict(flip=(0.1, 0.1, 0.1), rot=0.1, shift=0.1, shiftp=0.5, scale=0.0),
    'brats': dict(flip=(0.5, 0.5, 0.5), rot=0.1, shift=0.1, shiftp=1.0, scale=0.0),
    # NEW: intensity only (no geometric change that moves anterior/posterior)
    'intensity': dict(flip=(0, 0, 0), rot=0.0, shift=0.1, shiftp=0.5, scale=0.1),
    # NEW: left-right flip only (axis i = x) + intensity
    'lr': dict(flip=(0.5, 0, 0), rot=0.0, shift=0.1, shiftp=0.5, scale=0.1),
}


def augment(img, lab, a, rng):
    """main/data/augment.ts on [z, y, x] arrays: spatial axes i, j, k = array axes 2, 1, 0."""
    for axis_ijk in range(3):
        if rng.random() < a['flip'][axis_ijk]:
            ax = 2 - axis_ijk
            img = np.flip(img, ax)
            lab = np.flip(lab, ax)
    k = int(rng.integers(3)) + 1
    if rng.random() < a['rot']:
        # np.rot90 on spatial (i, j) = array axes (2, 1)
        img = np.rot90(img, k, axes=(2, 1))
        lab = np.rot90(lab, k, axes=(2, 1))
    off = -a['shift'] + 2 * a['shift'] * rng.random()
    if rng.random() < a['shiftp']:
        img = img + off
    if a.get('scale', 0) > 0:  # NEW: RandScaleIntensity-like multiplicative jitter
        img = img * (1 + (2 * rng.random() - 1) * a['scale'])
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


# ----------------------------------------------------------------------------- network

class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.conv3 = nn.Conv3d(cin, cout, 1, stride, 0, bias=False) if (cin != cout or stride != 1) else None
        self.n1 = nn.InstanceNorm3d(cout)
        self.n2 = nn.InstanceNorm3d(cout)
        self.n3 = nn.InstanceNorm3d(cout)

    def forward(self, x):
        h = F.leaky_relu(self.n1(self.conv1(x)), 0.01)
        h = self.n2(self.conv2(h))
        r = self.n3(self.conv3(x)) if self.conv3 is not None else x
        return F.leaky_relu(h + r, 0.01)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.n1 = nn.InstanceNorm3d(cout)
        self.n2 = nn.InstanceNorm3d(cout)

    def forward(self, x):
        h = F.leaky_relu(self.n1(self.conv1(x)), 0.01)
        return F.leaky_relu(self.n2(self.conv2(h)), 0.01)


class UpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.transp = nn.ConvTranspose3d(cin, cout, 2, 2, bias=False)
        self.block = BasicBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.block(torch.cat([self.transp(x), skip], 1))


class DeepUp(nn.Module):
    def __init__(self, cin, k, s):
        super().__init__()
        self.conv = nn.Conv3d(cin, k, 1, bias=True)
        self.reps = 1 if s == 1 else int(round(math.log2(s)))
        self.up = nn.ConvTranspose3d(k, k, 1 if s == 1 else 2, 1 if s == 1 else 2, bias=True)

    def forward(self, x):
        h = self.conv(x)
        for _ in range(self.reps):
            h = self.up(h)
        return h


class SelfDistilDynUNet(nn.Module):
    """dsd-spec §1 for len(filters) = 5. With L levels (NEW, 4 ≤ L): encoder taps E1..E(L-1) at the
    input block and L-2 down blocks (teacher: the deepest), decoder taps D(L-1) = bottleneck and the
    up blocks down to 1/2 (teacher: the 1/2 up block); heads shared per scale as in the spec."""

    def __init__(self, cin, k, filters):
        super().__init__()
        L = len(filters)
        self.L = L
        self.input_block = ResBlock(cin, filters[0], 1)
        self.down = nn.ModuleList([ResBlock(filters[i], filters[i + 1], 2) for i in range(L - 2)])
        self.bottleneck = ResBlock(filters[L - 2], filters[L - 1], 2)
        self.up = nn.ModuleList([UpBlock(filters[L - 1 - i], filters[L - 2 - i]) for i in range(L - 1)])
        self.out = nn.Conv3d(filters[0], k, 1, bias=True)
        # heads[level] for level 0 .. L-1 (scale 2^level)
        self.heads = nn.ModuleList([DeepUp(filters[lv], k, 2 ** lv) for lv in range(L)])
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x, heads=False):
        enc = [self.input_block(x)]
        for d in self.down:
            enc.append(d(enc[-1]))
        b = self.bottleneck(enc[-1])
        dec = [b]  # dec[i]: feature at level L-1-i
        h = b
        for i, u in enumerate(self.up):
            h = u(h, enc[-1 - i])
            dec.append(h)
        y = self.out(h)
        if not heads:
            return y
        L = self.L
        # decoder taps: levels L-1 (bottleneck) .. 1 ; teacher = level 1 (the 1/2 up block)
        D = {lv: self.heads[lv](dec[L - 1 - lv]) for lv in range(1, L)}
        # encoder taps: levels 0 .. L-2 ; teacher = level L-2 (deepest encoder skip)
        E = {lv: self.heads[lv](enc[lv]) for lv in range(0, L - 1)}
        return y, D, E


# ----------------------------------------------------------------------------- loss

def dice_ce(logits, onehot, labels):
    p = torch.softmax(logits, 1)
    dims = tuple(range(2, logits.dim()))
    inter = (p * onehot).sum(dims)
    den = p.sum(dims) + onehot.sum(dims)
    dice = 1 - (2 * inter + 1e-5) / (den + 1e-5)
    return dice.mean() + F.cross_entropy(logits, labels)


def kl_pixel(student, teacher, T):
    lpt = F.log_softmax(teacher / T, 1)
    lq = F.log_softmax(student / T, 1)
    return (lpt.exp() * (lpt - lq)).sum(1).mean() * T * T


def dsd_loss(out, labels, k, variant, T=3.0):
    onehot = F.one_hot(labels, k).permute(0, 4, 1, 2, 3).float()
    if variant == 'basic':
        y = out
        l = dice_ce(y, onehot, labels)
        return l, {'dce_Y': l.item()}
    y, D, E = out
    terms = {'dce_Y': dice_ce(y, onehot, labels)}
    L = max(D) + 1
    for lv in sorted(D, reverse=True):
        terms[f'dce_D{lv}'] = dice_ce(D[lv], onehot, labels)
    if variant in ('dsd', 'sdd'):
        for lv in range(L - 1, 1, -1):
            terms[f'kl_dec_D{lv}'] = kl_pixel(D[lv], D[1], T)
    if variant in ('dsd', 'sde'):
        te = L - 2
        for lv in range(0, te):
            terms[f'kl_enc_E{lv + 1}'] = kl_pixel(E[lv], E[te], T)
    total = sum(terms.values())
    return total, {n: v.item() for n, v in terms.items()}


# ----------------------------------------------------------------------------- inference

def window_starts(size, roi, overlap):
    if roi == size:
        interval = roi
    else:
        interval = max(1, int(roi * (1 - overlap)))
    num = math.ceil(size / interval)
    scan = 1
    for d in range(num):
        if d * interval + roi >= size:
            scan = d + 1
            break
    return [i * interval - max(i * interval + roi - size, 0) for i in range(scan)]


@torch.no_grad()
def sliding_window(model, img, roi, k, overlap=0.25, sw_batch=4, mirror=False):
    pads = []
    for n, r in zip(img.shape, roi):
        d = max(0, r - n)
        pads.append((d // 2, d - d // 2))
    x = np.pad(img, pads, mode='constant')
    shape = x.shape
    starts = [window_starts(s, r, overlap) for s, r in zip(shape, roi)]
    wins = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    acc = torch.zeros((k,) + shape)
    cnt = torch.zeros(shape)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    for i in range(0, len(wins), sw_batch):
        chunk = wins[i:i + sw_batch]
        batch = torch.stack([xt[a:a + roi[0], b:b + roi[1], c:c + roi[2]] for a, b, c in chunk])[:, None]
        out = model(batch)
        if mirror:
            for fl in [(2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]:
                out = out + torch.flip(model(torch.flip(batch, fl)), fl)
            out = out / 8
        for (a, b, c), o in zip(chunk, out):
            acc[:, a:a + roi[0], b:b + roi[1], c:c + roi[2]] += o
            cnt[a:a + roi[0], b:b + roi[1], c:c + roi[2]] += 1
    acc = acc / cnt
    sl = tuple(slice(p[0], p[0] + n) for p, n in zip(pads, img.shape))
    return acc[(slice(None),) + sl].argmax(0).numpy().astype(np.uint8), len(wins)


def dice_by_class(pred, gt, k):
    out = []
    for c in range(1, k):
        g = (gt == c).sum()
        p = (pred == c).sum()
        if g == 0:
            out.append(None)
            continue
        out.append(float(2 * ((pred == c) & (gt == c)).sum() / (p + g)))
    return out


def evaluate(model, cases, val, roi, k, mirror=False):
    model.eval()
    per = {}
    nwin = 0
    for cid in val:
        img, lab = cases[cid]
        pred, n = sliding_window(model, img, roi, k, mirror=mirror)
        nwin += n
        per[cid] = dice_by_class(pred, lab, k)
    model.train()
    mean_c = [float(np.mean([per[c][j] for c in val if per[c][j] is not None])) for j in range(k - 1)]
    return {'perLabel': mean_c, 'mean': float(np.mean(mean_c)), 'perCase': per, 'windows': nwin}


# ----------------------------------------------------------------------------- schedule

def lr_at(step, total, args):
    """lr for step (0-based). NEW: warm-up, poly, cosine; 'step' is the engine's StepLR per epoch."""
    base = args.lr
    if args.warmup and step < args.warmup:
        return base * (step + 1) / args.warmup
    if args.sched == 'const':
        return base
    if args.sched == 'step':
        epoch = step // args.steps_per_epoch
        epochs = math.ceil(total / args.steps_per_epoch)
        size = max(1, epochs // 6)
        return base * (0.5 ** (epoch // size))
    t = (step - args.warmup) / max(1, total - args.warmup)
    if args.sched == 'poly':
        return base * (1 - t) ** 0.9
    if args.sched == 'cosine':
        return args.lr_min + (base - args.lr_min) * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(args.sched)


# ----------------------------------------------------------------------------- main

def parse_triple(s):
    v = [int(x) for x in s.split(',')]
    return v * 3 if len(v) == 1 else v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--filters', default='4,8,16,32,64')
    ap.add_argument('--patch', default='32', help='d,h,w or one size (engine today: multiples of 16)')
    ap.add_argument('--batch', type=int, default=2, help='crops per step')
    ap.add_argument('--cases-per-step', type=int, default=1, help='NEW: crops drawn from this many cases (engine: 1)')
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--steps-per-epoch', type=int, default=32)
    ap.add_argument('--variant', default='dsd', choices=['dsd', 'basic', 'ds', 'sdd', 'sde'])
    ap.add_argument('--opt', default='adamw', choices=['adamw', 'sgd'], help='NEW: sgd = nesterov momentum')
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--lr-min', type=float, default=0.0)
    ap.add_argument('--wd', type=float, default=1e-5)
    ap.add_argument('--momentum', type=float, default=0.99)
    ap.add_argument('--sched', default='step', choices=['step', 'const', 'poly', 'cosine'])
    ap.add_argument('--warmup', type=int, default=0, help='NEW: linear warm-up steps')
    ap.add_argument('--clip', type=float, default=0.0, help='NEW: gradient-norm clip (0 = off)')
    ap.add_argument('--aug', default='none', choices=list(AUG))
    ap.add_argument('--pos', type=float, default=1.0, help='fraction of crops centred on foreground (engine: pos/(pos+neg), fixed 1)')
    ap.add_argument('--pad', default='reflect', choices=['reflect', 'constant'], help='NEW: training pad mode when the patch exceeds the case')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--val-every', type=int, default=0)
    ap.add_argument('--mirror', action='store_true', help='mirror TTA at the final evaluation')
    ap.add_argument('--fold', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--json', default=None)
    ap.add_argument('--time-only', type=int, default=0, help='time N steps (after 2 warm-up) and exit')
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    filters = [int(x) for x in args.filters.split(',')]
    patch = parse_triple(args.patch)
    k = 3
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = SelfDistilDynUNet(1, k, filters)
    heads = args.variant != 'basic'
    if args.opt == 'adamw':
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, nesterov=True, weight_decay=args.wd)

    if args.time_only:
        x = torch.randn(args.batch, 1, *patch)
        y = torch.randint(0, k, (args.batch, *patch))
        ts = []
        for i in range(args.time_only + 2):
            t0 = time.perf_counter()
            opt.zero_grad()
            loss, _ = dsd_loss(model(x, heads=heads), y, k, args.variant)
            loss.backward()
            opt.step()
            ts.append(time.perf_counter() - t0)
        model.eval()
        ti = []
        with torch.no_grad():
            for i in range(4):
                t0 = time.perf_counter()
                model(torch.randn(4, 1, *patch))
                ti.append(time.perf_counter() - t0)
        r = {'filters': filters, 'patch': patch, 'batch': args.batch, 'variant': args.variant,
             'stepS': float(np.median(ts[2:])), 'infer4S': float(np.median(ti[1:])),
             'params': sum(p.numel() for p in model.parameters())}
        print(json.dumps(r))
        return

    t_load = time.perf_counter()
    cases = load_cases()
    train, val = fold_split(cases, args.fold)
    samplers = {c: Sampler(*cases[c], patch, args.pad) for c in train}
    t_load = time.perf_counter() - t_load

    hist = []
    t0 = time.perf_counter()
    order = []
    step_time = 0.0
    for step in range(args.steps):
        if not order:
            order = list(rng.permutation(len(train)))
        lr = lr_at(step, args.steps, args)
        for g in opt.param_groups:
            g['lr'] = lr
        xs, ys = [], []
        per_case = max(1, args.batch // args.cases_per_step)
        while len(xs) < args.batch:
            if not order:
                order = list(rng.permutation(len(train)))
            cid = train[order.pop()]
            for im, lb in samplers[cid].draw(rng, min(per_case, args.batch - len(xs)), args.pos):
                im, lb = augment(im, lb, AUG[args.aug], rng)
                xs.append(im)
                ys.append(lb)
        x = torch.from_numpy(np.stack(xs))[:, None]
        y = torch.from_numpy(np.stack(ys).astype(np.int64))
        ts = time.perf_counter()
        opt.zero_grad()
        loss, terms = dsd_loss(model(x, heads=heads), y, k, args.variant)
        if not math.isfinite(loss.item()):
            print('non-finite loss', terms, file=sys.stderr)
            break
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step_time += time.perf_counter() - ts
        rec = {'step': step + 1, 'lr': lr, 'loss': loss.item(), 'dce_Y': terms['dce_Y']}
        if args.val_every and (step + 1) % args.val_every == 0 and step + 1 < args.steps:
            ev = evaluate(model, cases, val, patch, k)
            rec['val'] = ev['perLabel']
            print(f"step {step + 1} loss {loss.item():.3f} dceY {terms['dce_Y']:.3f} val {ev['perLabel']} mean {ev['mean']:.3f}", file=sys.stderr, flush=True)
        hist.append(rec)
    train_s = time.perf_counter() - t0
    te = time.perf_counter()
    ev = evaluate(model, cases, val, patch, k, mirror=args.mirror)
    eval_s = time.perf_counter() - te
    res = {
        'args': vars(args), 'filters': filters, 'patch': patch,
        'params': sum(p.numel() for p in model.parameters()),
        'dice': ev['perLabel'], 'meanDice': ev['mean'], 'perCase': ev['perCase'],
        'trainSeconds': train_s, 'stepSeconds': step_time / max(1, len(hist)), 'evalSeconds': eval_s,
        'loadSeconds': t_load, 'windows': ev['windows'],
        'lossLast50': float(np.mean([h['loss'] for h in hist[-50:]])),
        'dceYLast50': float(np.mean([h['dce_Y'] for h in hist[-50:]])),
        'history': [h for h in hist if 'val' in h or h['step'] % 25 == 0],
    }
    print(json.dumps({kk: res[kk] for kk in ['dice', 'meanDice', 'trainSeconds', 'stepSeconds', 'evalSeconds', 'dceYLast50']}))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(res, f)


if __name__ == '__main__':
    main()
