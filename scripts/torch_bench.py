#!/usr/bin/env python3
"""The training step `mixsweep bench` times, in PyTorch, for side-by-side ratios.

Same networks, same step as src/train/bench (and src/train/step.rs): random inputs, batch 100,
forward, soft-target cross-entropy, backward, SGD with momentum 0.9, Nesterov and weight decay
1e-4 at lr 0.01. Networks:

- the spiral MLP, 2-128x3-2-128x3-2 with LeakyReLU(0.01) (src/models/mlp.rs);
- PreActResNet18 at a given width on 3x32x32 inputs, 10 classes, as the official
  Manifold Mixup code's preresnet.py: 3x3 stem, four stages of two pre-activation basic blocks,
  1x1 stride-2 shortcuts, global average pooling, linear head (src/models/preact_resnet.rs).

Prints one JSON object per (network, threads) on stdout:
  {"network": ..., "threads": N, "batch": B, "device": "cpu", "examples_per_sec": X, "torch": version}
`--device cuda` times the step on the GPU (synchronised before each clock reading), as
scripts/device-check.sh does beside `mixsweep bench --device wgpu:0`. Needs only torch. Not
used by CI.
"""

import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != planes:
            self.shortcut = nn.Conv2d(c_in, planes, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, width, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        blocks, c = [], width
        for s in range(4):
            planes = width << s
            for b in range(2):
                blocks.append(Block(c, planes, 2 if s > 0 and b == 0 else 1))
                c = planes
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        out = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))


def spiral_mlp():
    sizes = [2, 128, 128, 128, 2, 128, 128, 128, 2]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.01))
    return nn.Sequential(*layers)


NETWORKS = {
    "spiral MLP (2-128×3-2-128×3-2)": (spiral_mlp, (2,), 2, 200),
    "PreActResNet18, width 16, 3×32×32": (lambda: PreActResNet18(16), (3, 32, 32), 10, 8),
    "PreActResNet18, width 64, 3×32×32": (lambda: PreActResNet18(64), (3, 32, 32), 10, 2),
}


def examples_per_sec(name, threads, batch, rounds, quick, device="cpu"):
    make, shape, classes, steps = NETWORKS[name]
    if quick:
        steps = max(1, steps // 4)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = make().to(device)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x = (torch.rand((batch,) + shape) - 0.5).to(device)
    target = F.one_hot(torch.randint(0, classes, (batch,)), classes).float().to(device)

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = -(target * F.log_softmax(net(x), dim=1)).sum(dim=1).mean()
        loss.backward()
        opt.step()

    step()  # warm-up
    sync()
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        best = max(best, batch * steps / (time.perf_counter() - start))
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--network", action="append", help="a network name (default: all)")
    p.add_argument("--threads", default="1", help="comma-separated thread counts")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    args = p.parse_args()
    names = args.network or list(NETWORKS)
    for name in names:
        if name not in NETWORKS:
            print(f"unknown network {name!r}; known: {list(NETWORKS)}", file=sys.stderr)
            return 2
        for threads in [int(t) for t in args.threads.split(",")]:
            rate = examples_per_sec(
                name, threads, args.batch, args.rounds, args.quick, args.device
            )
            print(
                json.dumps(
                    {
                        "network": name,
                        "threads": threads,
                        "batch": args.batch,
                        "device": args.device,
                        "examples_per_sec": rate,
                        "torch": torch.__version__,
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
