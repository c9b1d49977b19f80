#!/usr/bin/env python3
"""PyTorch reference for the WebGPU benchmark: one DSD training step of SelfDistilDynUNet.

The network and loss follow shared/docs/dsd-spec.md (MONAI 0.9.1 DynUNet with residual
encoder blocks, instance norm without affine, LeakyReLU(0.01), 2x2x2 stride-2 transposed
convolutions without bias in the decoder, five DeepUp heads shared between encoder and
decoder taps, Kaiming-normal a=0.01 init; loss = 5 Dice-CE terms + 3 decoder KL terms
(teacher D1) + 3 encoder KL terms (teacher E4) at T=3, weights 1), written in plain PyTorch
so that it runs wherever torch is installed (no MONAI). `--check` verifies the MMWHS
parameter counts from dsd-spec §6 (16,663,688 backbone + 8,592 DSD).

  python3 bench/device/pytorch_dsd_step.py --patch 96 --batch 2 --steps 10 [--device cuda]
                                           [--variant dsd|basic] [--amp bf16] [--filters ...]

Prints one JSON line: device, torch version, ms per step (median), peak memory, losses.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, s, bias=False):
    return nn.Conv3d(cin, cout, k, stride=s, padding=(k - s + 1) // 2, bias=bias)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, s)
        self.conv2 = conv(cout, cout, 3, 1)
        self.conv3 = conv(cin, cout, 1, s) if (cin != cout or s != 1) else None
        self.norm = nn.InstanceNorm3d(cout, affine=False)

    def forward(self, x):
        h = F.leaky_relu(self.norm(self.conv1(x)), 0.01)
        h = self.norm(self.conv2(h))
        r = self.norm(self.conv3(x)) if self.conv3 is not None else x
        return F.leaky_relu(h + r, 0.01)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, 1)
        self.conv2 = conv(cout, cout, 3, 1)
        self.norm = nn.InstanceNorm3d(cout, affine=False)

    def forward(self, x):
        h = F.leaky_relu(self.norm(self.conv1(x)), 0.01)
        return F.leaky_relu(self.norm(self.conv2(h)), 0.01)


class UpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.transp_conv = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.conv_block = BasicBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat([self.transp_conv(x), skip], 1))


class DeepUp(nn.Module):
    def __init__(self, cin, k, s):
        super().__init__()
        self.conv = nn.Conv3d(cin, k, 1, bias=True)
        self.up = nn.ConvTranspose3d(k, k, 1 if s == 1 else 2, stride=1 if s == 1 else 2, bias=True)
        self.repeats = 1 if s == 1 else s.bit_length() - 1

    def forward(self, x):
        h = self.conv(x)
        for _ in range(self.repeats):
            h = self.up(h)
        return h


class SelfDistilDynUNet(nn.Module):
    def __init__(self, cin, k, f):
        super().__init__()
        self.input_block = ResBlock(cin, f[0], 1)
        self.downsamples = nn.ModuleList([ResBlock(f[i], f[i + 1], 2) for i in range(3)])
        self.bottleneck = ResBlock(f[3], f[4], 2)
        self.upsamples = nn.ModuleList([UpBlock(f[4 - i], f[3 - i]) for i in range(4)])
        self.output_block = nn.Conv3d(f[0], k, 1, bias=True)
        scales = [1, 2, 4, 8, 16]
        # deep_1 (x16, bottleneck) ... deep_5 (x1, input block)
        self.heads = nn.ModuleList([DeepUp(f[4 - j], k, scales[4 - j]) for j in range(5)])
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def head(self, level):
        return self.heads[4 - level]

    def forward(self, x, dsd=True):
        e1 = self.input_block(x)
        e2 = self.downsamples[0](e1)
        e3 = self.downsamples[1](e2)
        e4 = self.downsamples[2](e3)
        d4 = self.bottleneck(e4)
        d3 = self.upsamples[0](d4, e4)
        d2 = self.upsamples[1](d3, e3)
        d1 = self.upsamples[2](d2, e2)
        y = self.output_block(self.upsamples[3](d1, e1))
        if not dsd:
            return {"Y": y}
        return {
            "Y": y,
            "D4": self.head(4)(d4), "D3": self.head(3)(d3), "D2": self.head(2)(d2), "D1": self.head(1)(d1),
            "E1": self.head(0)(e1), "E2": self.head(1)(e2), "E3": self.head(2)(e3), "E4": self.head(3)(e4),
        }


def dice_ce(logits, onehot, labels):
    p = torch.softmax(logits, 1)
    dims = tuple(range(2, logits.dim()))
    inter = (p * onehot).sum(dims)
    den = p.sum(dims) + onehot.sum(dims)
    dice = (1 - (2 * inter + 1e-5) / (den + 1e-5)).mean()
    return dice + F.cross_entropy(logits, labels)


def kl(student, teacher, t=3.0):
    lpt = F.log_softmax(teacher / t, 1)
    lq = F.log_softmax(student / t, 1)
    return (lpt.exp() * (lpt - lq)).sum(1).mean() * t * t


def dsd_loss(out, labels, k, variant):
    onehot = F.one_hot(labels, k).permute(0, 4, 1, 2, 3).to(out["Y"].dtype)
    total = dice_ce(out["Y"], onehot, labels)
    if variant == "dsd":
        for n in ("D4", "D3", "D2", "D1"):
            total = total + dice_ce(out[n], onehot, labels)
        for s in ("D4", "D3", "D2"):
            total = total + kl(out[s], out["D1"])
        for s in ("E1", "E2", "E3"):
            total = total + kl(out[s], out["E4"])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--filters", default="32,64,128,256,320")
    ap.add_argument("--variant", default="dsd", choices=["dsd", "basic"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    ap.add_argument("--check", action="store_true", help="verify the MMWHS parameter counts")
    a = ap.parse_args()
    f = [int(v) for v in a.filters.split(",")]
    torch.manual_seed(0)
    model = SelfDistilDynUNet(1, a.classes, f).to(a.device)
    n_all = sum(p.numel() for p in model.parameters())
    n_dsd = sum(p.numel() for p in model.heads.parameters())
    if a.check:
        ok = (f == [32, 64, 128, 256, 320] and a.classes == 8 and n_all - n_dsd == 16663688 and n_dsd == 8592)
        print(json.dumps({"backbone": n_all - n_dsd, "dsd": n_dsd, "ok": ok}))
        sys.exit(0 if ok else 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    x = torch.randn(a.batch, 1, a.patch, a.patch, a.patch, device=a.device)
    labels = torch.randint(0, a.classes, (a.batch, a.patch, a.patch, a.patch), device=a.device)
    cuda = a.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.amp)
    scaler = torch.cuda.amp.GradScaler() if (cuda and a.amp == "fp16") else None
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = dsd_loss(model(x, a.variant == "dsd"), labels, a.classes, a.variant)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        if cuda:
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1000
        losses.append(float(loss))
        if i >= a.warmup:
            times.append(ms)
    print(json.dumps({
        "framework": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "tf32_conv": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
        "amp": a.amp,
        "variant": a.variant,
        "patch": a.patch,
        "batch": a.batch,
        "params": {"backbone": n_all - n_dsd, "dsd": n_dsd},
        "stepMs": statistics.median(times),
        "stepMsAll": [round(t, 2) for t in times],
        "peakBytes": torch.cuda.max_memory_allocated() if cuda else None,
        "losses": losses,
    }))


if __name__ == "__main__":
    main()
