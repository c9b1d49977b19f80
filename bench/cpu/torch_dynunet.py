#!/usr/bin/python3
"""PyTorch reference for `bench/cpu/cpu-vs-pytorch.ts`: the SelfDistilDynUNet of dsd-spec §1
(MONAI 0.9.1 DynUNet blocks, res blocks, instance norm without affine, LeakyReLU 0.01, the five
shared DeepUp modules) with the DSD loss of §3 (5 DiceCE + 6 τ²·KL terms, τ = 3) and AdamW.

Prints one JSON object: median ms of training steps and of inference forwards, and optionally of
a sliding-window prediction of a raw float32 volume (MONAI semantics: overlap 0.25, constant
blending, softmax output) — the same work `dsd bench` and the engine's slidingWindowInference do.

Usage: torch_dynunet.py --filters 4,8,16,32,64 --classes 3 --patch 32 --batch 2 --steps 3 --warmup 1
                        [--threads N] [--no-train] [--no-infer] [--volume FILE.f32 --shape D,H,W --sw-runs N]
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, s, bias=False):
    return nn.Conv3d(cin, cout, k, s, padding=(k - s + 1) // 2, bias=bias)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        self.conv1, self.conv2 = conv(cin, cout, 3, s), conv(cout, cout, 3, 1)
        self.conv3 = conv(cin, cout, 1, s) if (cin != cout or s != 1) else None

    def forward(self, x):
        h = F.leaky_relu(F.instance_norm(self.conv1(x)), 0.01)
        h = F.instance_norm(self.conv2(h))
        r = F.instance_norm(self.conv3(x)) if self.conv3 is not None else x
        return F.leaky_relu(h + r, 0.01)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1, self.conv2 = conv(cin, cout, 3, 1), conv(cout, cout, 3, 1)

    def forward(self, x):
        h = F.leaky_relu(F.instance_norm(self.conv1(x)), 0.01)
        return F.leaky_relu(F.instance_norm(self.conv2(h)), 0.01)


class UpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.transp_conv = nn.ConvTranspose3d(cin, cout, 2, 2, bias=False)
        self.conv_block = BasicBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat([self.transp_conv(x), skip], 1))


class DeepUp(nn.Module):
    def __init__(self, cin, k, s):
        super().__init__()
        self.conv = nn.Conv3d(cin, k, 1, bias=True)
        self.up = nn.ConvTranspose3d(k, k, 2 if s > 1 else 1, 2 if s > 1 else 1, bias=True)
        self.reps = max(1, int(round(math.log2(s))))

    def forward(self, x):
        h = self.conv(x)
        for _ in range(self.reps):
            h = self.up(h)
        return h


class DynUNet(nn.Module):
    def __init__(self, cin, k, f):
        super().__init__()
        self.input_block = ResBlock(cin, f[0], 1)
        self.down = nn.ModuleList([ResBlock(f[i], f[i + 1], 2) for i in range(3)])
        self.bottleneck = ResBlock(f[3], f[4], 2)
        self.up = nn.ModuleList([UpBlock(f[4 - i], f[3 - i]) for i in range(4)])
        self.out = nn.Conv3d(f[0], k, 1, bias=True)
        # deep_1 (x16) ... deep_5 (x1)
        self.deep = nn.ModuleList([DeepUp(f[4 - j], k, 2 ** (4 - j)) for j in range(5)])
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x, train=True):
        e1 = self.input_block(x)
        e2 = self.down[0](e1)
        e3 = self.down[1](e2)
        e4 = self.down[2](e3)
        d4 = self.bottleneck(e4)
        d3 = self.up[0](d4, e4)
        d2 = self.up[1](d3, e3)
        d1 = self.up[2](d2, e2)
        y = self.out(self.up[3](d1, e1))
        if not train:
            return y
        head = lambda level, t: self.deep[4 - level](t)  # noqa: E731
        return dict(Y=y, D4=head(4, d4), D3=head(3, d3), D2=head(2, d2), D1=head(1, d1),
                    E1=head(0, e1), E2=head(1, e2), E3=head(2, e3), E4=head(3, e4))


def dice_ce(logits, onehot, labels):
    p = torch.softmax(logits, 1)
    dims = (2, 3, 4)
    inter = (p * onehot).sum(dims)
    den = p.sum(dims) + onehot.sum(dims)
    dice = (1 - (2 * inter + 1e-5) / (den + 1e-5)).mean()
    return dice + F.cross_entropy(logits, labels)


def kl(student, teacher, t=3.0):
    pt = torch.softmax(teacher / t, 1)
    lq = torch.log_softmax(student / t, 1)
    return (pt * (torch.log_softmax(teacher / t, 1) - lq)).sum(1).mean() * t * t


def dsd_loss(o, onehot, labels):
    loss = sum(dice_ce(o[n], onehot, labels) for n in ('Y', 'D4', 'D3', 'D2', 'D1'))
    loss = loss + sum(kl(o[s], o['D1']) for s in ('D4', 'D3', 'D2'))
    return loss + sum(kl(o[s], o['E4']) for s in ('E1', 'E2', 'E3'))


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def starts(size, roi, overlap):
    """MONAI 0.9.1 dense_patch_slices along one axis (image already padded to >= roi)."""
    interval = roi if roi == size else max(int(roi * (1 - overlap)), 1)
    num = math.ceil(size / interval)
    scan = 1
    for d in range(num):
        if d * interval + roi >= size:
            scan = d + 1
            break
    return [i * interval - max(i * interval + roi - size, 0) for i in range(scan)]


def sliding_window(net, vol, roi, k, overlap=0.25):
    d, h, w = vol.shape
    pads = [max(roi - s, 0) for s in (d, h, w)]
    x = F.pad(vol[None, None], (pads[2] // 2, pads[2] - pads[2] // 2, pads[1] // 2,
                                 pads[1] - pads[1] // 2, pads[0] // 2, pads[0] - pads[0] // 2))
    size = x.shape[2:]
    out = torch.zeros((1, k) + tuple(size))
    cnt = torch.zeros((1, 1) + tuple(size))
    for a in starts(size[0], roi, overlap):
        for b in starts(size[1], roi, overlap):
            for c in starts(size[2], roi, overlap):
                win = x[:, :, a:a + roi, b:b + roi, c:c + roi]
                out[:, :, a:a + roi, b:b + roi, c:c + roi] += torch.softmax(net(win, train=False), 1)
                cnt[:, :, a:a + roi, b:b + roi, c:c + roi] += 1
    out = out / cnt
    return out[:, :, pads[0] // 2:pads[0] // 2 + d, pads[1] // 2:pads[1] // 2 + h,
               pads[2] // 2:pads[2] // 2 + w]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--filters', default='4,8,16,32,64')
    ap.add_argument('--classes', type=int, default=3)
    ap.add_argument('--in-channels', type=int, default=1)
    ap.add_argument('--patch', type=int, default=32)
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--no-train', action='store_true')
    ap.add_argument('--no-infer', action='store_true')
    ap.add_argument('--volume')
    ap.add_argument('--shape')
    ap.add_argument('--sw-runs', type=int, default=3)
    ap.add_argument('--sw-warmup', type=int, default=1)
    ap.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)  # Debian's build defaults to one thread
    torch.manual_seed(0)
    f = [int(v) for v in a.filters.split(',')]
    net = DynUNet(a.in_channels, a.classes, f)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
    p = a.patch
    x = torch.randn(a.batch, a.in_channels, p, p, p)
    labels = torch.randint(0, a.classes, (a.batch, p, p, p))
    onehot = F.one_hot(labels, a.classes).permute(0, 4, 1, 2, 3).float()
    res = dict(torch=torch.__version__, threads=torch.get_num_threads(), filters=f,
               classes=a.classes, patch=p, batch=a.batch)
    if not a.no_train:
        times = []
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = dsd_loss(net(x), onehot, labels)
            loss.backward()
            opt.step()
            ms = (time.perf_counter() - t0) * 1000
            if i >= a.warmup:
                times.append(ms)
        res.update(trainStepMs=median(times), trainStepMsAll=times)
    with torch.no_grad():
        if not a.no_infer:
            times = []
            for i in range(a.warmup + a.steps):
                t0 = time.perf_counter()
                net(x, train=False)
                ms = (time.perf_counter() - t0) * 1000
                if i >= a.warmup:
                    times.append(ms)
            res.update(inferMs=median(times), inferMsAll=times)
        if a.volume:
            shape = [int(v) for v in a.shape.split(',')]
            import numpy as np
            vol = torch.from_numpy(np.fromfile(a.volume, dtype=np.float32).reshape(shape))
            times = []
            for i in range(a.sw_warmup + a.sw_runs):
                t0 = time.perf_counter()
                sliding_window(net, vol, p, a.classes)
                ms = (time.perf_counter() - t0) * 1000
                if i >= a.sw_warmup:
                    times.append(ms)
            res.update(slidingWindowMs=median(times), slidingWindowMsAll=times)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
