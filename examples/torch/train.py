"""ERM, input mixup and Manifold Mixup in PyTorch, as a mixsweep run (`runner:`, README "Any
training program as a run"), following the official code's algorithm (Verma et al. 2019,
github.com/vikasverma1077/manifold_mixup): per minibatch one λ ~ Beta(α, α), one mix point k
drawn uniformly from the eligible set S, one random permutation as the partner; the hidden
state at k and the one-hot targets are mixed with the same λ; the loss is cross-entropy with
the mixed soft targets (`train.loss: soft_ce`) or BCE on softmax (`bce_softmax`, the official
code's).

Everything comes from the resolved spec in MIXSWEEP_SPEC, so the command is just
`python3 examples/torch/train.py` (add `--device cuda` for a GPU). Supported:
- data `spirals` (the same generator as ours: two arms, `turns`, Gaussian `noise`; its own
  random draws), `fashion_mnist` and `mnist` (IDX files in data/<set>/ or Debian's
  /usr/share/datasets/fashion-mnist; `train_subset` draws its own seeded subset);
- models `spiral_mlp` (width, depth, bottleneck, activation, dropout, batch_norm) and
  `preact_resnet` depth 18 (width, stem_stride), PyTorch's default initialisation;
- optimisers sgd (momentum, nesterov) and adam, weight decay, multistep lr (milestones, gamma).
It appends one JSON line per evaluated epoch to MIXSWEEP_METRICS, checkpoints to
MIXSWEEP_CHECKPOINT_DIR after every epoch and resumes from there, and stops cleanly on SIGTERM.
Needs torch and numpy (see the README: a venv with `pip install torch numpy`).
"""
import argparse
import gzip
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
args = parser.parse_args()
spec = json.loads(os.environ["MIXSWEEP_SPEC"])
threads = int(os.environ.get("MIXSWEEP_THREADS", "1"))
torch.set_num_threads(threads)
device = torch.device(args.device)
torch.manual_seed(spec["seed"])
np_rng = np.random.default_rng(spec["seed"])

# ---- data ---------------------------------------------------------------------------------

def spirals(n, noise, turns, rng):
    cls = np.arange(n) % 2
    t = rng.random(n)
    theta = 2 * math.pi * turns * t + math.pi * cls
    x = np.stack([t * np.cos(theta), t * np.sin(theta)], 1) + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), cls.astype(np.int64)

def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)

def find(folder, name):
    for root in [spec["data"].get("dir"), os.path.join("data", folder), "/usr/share/datasets/" + folder]:
        for suffix in ["", ".gz"]:
            if root and os.path.exists(os.path.join(root, name + suffix)):
                return os.path.join(root, name + suffix)
    sys.exit(f"{name}: not found in data/{folder}/ (run make data)")

def load():
    d = spec["data"]
    if d["name"] == "spirals":
        rng = np.random.default_rng(d.get("seed", 0))
        return spirals(d["n_train"], d["noise"], d["turns"], rng) + spirals(d["n_test"], d["noise"], d["turns"], rng) + ([2],)
    folder = {"fashion_mnist": "fashion-mnist", "mnist": "mnist"}[d["name"]]
    x_tr = idx(find(folder, "train-images-idx3-ubyte"))
    y_tr = idx(find(folder, "train-labels-idx1-ubyte")).astype(np.int64)
    x_te = idx(find(folder, "t10k-images-idx3-ubyte"))
    y_te = idx(find(folder, "t10k-labels-idx1-ubyte")).astype(np.int64)
    if d.get("train_subset"):
        keep = np.sort(np.random.default_rng(d.get("seed", 0)).permutation(len(y_tr))[: d["train_subset"]])
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    mean, std = x_tr.mean() / 255.0, x_tr.std() / 255.0
    norm = lambda x: ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32).reshape(len(x), -1)
    return norm(x_tr), y_tr, norm(x_te), y_te, [1, 28, 28]

x_train, y_train, x_test, y_test, shape = load()
classes = int(max(y_train.max(), y_test.max()) + 1)

# ---- models (mix point 0 = input; see src/models/) ------------------------------------------

class SpiralMlp(nn.Module):
    def __init__(self, m, inputs):
        super().__init__()
        sizes = [inputs] + [m["width"]] * m["depth"] + [m["bottleneck"]] + [m["width"]] * m["depth"] + [classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(n) for n in sizes[1:-1]) if m.get("batch_norm") else None
        self.act = {"relu": F.relu, "tanh": torch.tanh, "leaky_relu": lambda h: F.leaky_relu(h, 0.01)}[m["activation"]]
        self.dropout = m.get("dropout", 0.0)
        self.bottleneck = m["depth"] + 1

    def forward(self, x, mix=None):
        h = mix(0, x) if mix else x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                if self.norms is not None:
                    h = self.norms[i](h)
                h = self.act(h)
                if self.dropout and i + 1 != self.bottleneck:
                    h = F.dropout(h, self.dropout, self.training)
                h = mix(i + 1, h) if mix else h
        return h

class Block(nn.Module):
    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(planes), nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, planes, 1, stride, bias=False) if stride != 1 or c_in != planes else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut

class PreActResNet18(nn.Module):
    def __init__(self, m):
        super().__init__()
        w = m["width"]
        self.shape = shape
        self.stem = nn.Conv2d(shape[0], w, 3, m.get("stem_stride", 1), 1, bias=False)
        c, stages = w, []
        for s in range(4):
            blocks = []
            for b in range(2):
                blocks.append(Block(c, w << s, 2 if s > 0 and b == 0 else 1))
                c = w << s
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c, classes)

    def forward(self, x, mix=None):
        h = x.view(-1, *self.shape)
        h = mix(0, h) if mix else h
        h = self.stem(h)
        for s, stage in enumerate(self.stages):
            h = stage(h)
            h = mix(s + 1, h) if mix else h
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))

m = spec["model"]
if m["name"] == "spiral_mlp":
    model = SpiralMlp(m, x_train.shape[1])
elif m["name"] == "preact_resnet" and m["depth"] == 18:
    model = PreActResNet18(m)
else:
    sys.exit(f"examples/torch/train.py has no model {m['name']} depth {m.get('depth')}")
model.to(device)

# ---- training ------------------------------------------------------------------------------

t = spec["train"]
if t["optimizer"] == "sgd":
    opt = torch.optim.SGD(model.parameters(), lr=t["lr"], momentum=t.get("momentum", 0.9),
                          nesterov=t.get("nesterov", False), weight_decay=t["weight_decay"])
else:
    opt = torch.optim.Adam(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])

def lr_at(epoch):  # 0-based, as the official code: the drop takes effect at the milestone
    return t["lr"] * t["gamma"] ** sum(1 for ms in t.get("milestones", []) if epoch >= ms)

def loss_fn(logits, target):
    if t.get("loss", "soft_ce") == "bce_softmax":
        return F.binary_cross_entropy(F.softmax(logits, 1), target)
    return -(target * F.log_softmax(logits, 1)).sum(1).mean()

ckpt = os.path.join(os.environ["MIXSWEEP_CHECKPOINT_DIR"], "torch.pt")
start = 0
if os.path.exists(ckpt):
    state = torch.load(ckpt, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    torch.set_rng_state(state["torch_rng"])
    np_rng = state["np_rng"]
    start = state["epoch"]
    print(f"resumed from epoch {start}", flush=True)

stop = False
def on_term(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)

def evaluate():
    model.eval()
    wrong, nll = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y_test), 500):
            x = torch.from_numpy(x_test[i:i + 500]).to(device)
            y = torch.from_numpy(y_test[i:i + 500]).to(device)
            logits = model(x)
            wrong += (logits.argmax(1) != y).sum().item()
            nll += F.cross_entropy(logits, y, reduction="sum").item()
    model.train()
    return wrong / len(y_test), nll / len(y_test)

method, alpha = spec["method"], spec.get("alpha")
layers = spec.get("layers") or []
xt, yt = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
began = time.time()
model.train()
for epoch in range(start, t["epochs"]):
    for g in opt.param_groups:
        g["lr"] = lr_at(epoch)
    order = torch.from_numpy(np_rng.permutation(len(y_train))).to(device)
    total, batches = 0.0, 0
    for i in range(0, len(order) - t["batch_size"] + 1, t["batch_size"]):
        idx_b = order[i:i + t["batch_size"]]
        x, target = xt[idx_b], F.one_hot(yt[idx_b], classes).float()
        if method in ("input_mixup", "manifold_mixup"):
            lam = float(np_rng.beta(alpha, alpha))
            k = int(np_rng.choice(layers))
            perm = torch.from_numpy(np_rng.permutation(len(idx_b))).to(device)
            mix = lambda j, h: lam * h + (1 - lam) * h[perm] if j == k else h
            target = lam * target + (1 - lam) * target[perm]
            logits = model(x, mix)
        else:
            logits = model(x)
        loss = loss_fn(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, batches = total + loss.item(), batches + 1
    done = epoch + 1
    if done % spec["eval"]["every"] == 0 or done == t["epochs"] or stop:
        err, nll = evaluate()
        line = {"epoch": done, "test_error": err, "test_nll": nll, "lr": lr_at(epoch),
                "train_loss": total / max(batches, 1), "elapsed": time.time() - began}
        with open(os.environ["MIXSWEEP_METRICS"], "a") as f:
            f.write(json.dumps(line) + "\n")
        print(f"epoch {done}: test error {100 * err:.2f}%, NLL {nll:.4f}", flush=True)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                "np_rng": np_rng, "epoch": done}, ckpt + ".tmp")
    os.replace(ckpt + ".tmp", ckpt)
    if stop:
        print(f"stopped after epoch {done}", flush=True)
        sys.exit(0)
