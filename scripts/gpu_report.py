#!/usr/bin/env python3
"""reports/gpu-bench.md from what scripts/device-check.sh left in its output folder.

Reads: gpu.txt (nvidia-smi), torch.txt, devices-<feature>.txt, bench-<feature>-<batch>.md
(`mixsweep bench` tables), torch-<batch>.jsonl (scripts/torch_bench.py --device cuda) and the
Fashion-MNIST runs in runs-<feature>/fm-gpu/*/result.json. Writes markdown on stdout; a step
that failed shows as "failed" with its log's last line, never as a number. Standard library only.
"""

import json
import pathlib
import re
import sys

FEATURES = ["wgpu", "vulkan"]
BATCHES = [100, 128]


def read(path):
    try:
        return path.read_text()
    except OSError:
        return ""


def last_line(path):
    lines = [l for l in read(path).splitlines() if l.strip()]
    return lines[-1] if lines else "no output"


def ours(out, feature, batch):
    """ERM examples/s per network from a `mixsweep bench` markdown table."""
    rates = {}
    for line in read(out / f"bench-{feature}-{batch}.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("PreActResNet18") and cells[1] == str(batch):
            try:
                rates[cells[0]] = float(cells[3])
            except ValueError:
                pass
    return rates


def torch_rates(out, batch):
    rates = {}
    for line in read(out / f"torch-{batch}.jsonl").splitlines():
        try:
            v = json.loads(line)
        except json.JSONDecodeError:
            continue
        rates[v["network"]] = v["examples_per_sec"]
    return rates


def main():
    out = pathlib.Path(sys.argv[1])
    print("# mixsweep on a GPU\n")
    print("Written by scripts/device-check.sh (`run`), on the GPU machine, in one go.\n")
    print(f"- GPU (nvidia-smi): {read(out / 'gpu.txt').strip() or 'not found'}")
    print(f"- PyTorch: {read(out / 'torch.txt').strip() or 'not found'}")
    for feature in FEATURES:
        adapters = [l for l in read(out / f"devices-{feature}.txt").splitlines() if l.startswith(f"{feature}:")]
        print(f"- `--features {feature}` sees: {'; '.join(adapters) or 'no adapter'}")

    print("\n## Training throughput beside PyTorch\n")
    print("PreActResNet18, random 3×32×32 inputs, soft-target cross-entropy, SGD with Nesterov "
          "momentum (the step of `mixsweep bench`, `--quick`); PyTorch: the same network and step "
          "on CUDA (scripts/torch_bench.py, best of 3 rounds). Ratio = mixsweep / PyTorch.\n")
    print("| network | batch | backend | mixsweep examples/s | PyTorch CUDA examples/s | ratio |")
    print("|---|---|---|---|---|---|")
    for batch in BATCHES:
        torch = torch_rates(out, batch)
        for feature in FEATURES:
            rates = ours(out, feature, batch)
            if not rates:
                log = out / f"bench-{feature}-{batch}.log"
                print(f"| PreActResNet18 | {batch} | {feature} | failed: {last_line(log)} | | |")
                continue
            for network, rate in sorted(rates.items()):
                t = torch.get(network)
                ratio = f"{rate / t:.2f}" if t else ""
                tt = f"{t:.0f}" if t else "not measured"
                print(f"| {network} | {batch} | {feature} | {rate:.0f} | {tt} | {ratio} |")

    print("\n## Fashion-MNIST runs\n")
    spec = read(out / "fm-gpu.yaml")
    images = re.search(r"train_subset: (\d+)", spec)
    epochs = re.search(r"epochs: (\d+)", spec)
    print(f"PreActResNet18 width 16, {images.group(1) if images else '?'} draws from the first 10,000 training images, "
          f"{epochs.group(1) if epochs else '?'} epoch(s), batch 100, seed 0; full 10,000-image test set.\n")
    print("| backend | method | test error | test NLL | training examples/s | wall time |")
    print("|---|---|---|---|---|---|")
    for feature in FEATURES:
        results = sorted((out / f"runs-{feature}" / "fm-gpu").glob("*/result.json"))
        if not results:
            print(f"| {feature} | failed: {last_line(out / f'sweep-{feature}.txt')} | | | | |")
            continue
        for path in results:
            r = json.loads(path.read_text())
            m, p = r["final_metrics"], r["provenance"]
            method = path.parent.name.split("-")[0]
            print(f"| {feature} | {method} | {100 * m['test_error']:.2f}% | {m['test_nll']:.4f} | "
                  f"{p['train_examples_per_sec']:.0f} | {p['wall_time']:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
