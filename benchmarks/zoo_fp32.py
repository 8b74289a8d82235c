"""FP32 baselines of the model zoo on MNIST-5k: parameters, CPU seconds per epoch, accuracy.

    python benchmarks/zoo_fp32.py                      # every zoo model, 3 epochs, seed 0
    python benchmarks/zoo_fp32.py --models resnet20 --epochs 5

(from the repository root, with the package installed or ``PYTHONPATH=.``).

Each model trains with Adam (lr 1e-3), batch 128, on the 3,600 training images of
``load_dataset('mnist5k')``, then reads the 400 val images (the only split used for
choosing widths and inits) and the 1,000 test images once. Seconds per epoch are wall-clock
training time only (no evaluation); the median over epochs is printed because other
processes on a small machine inflate single epochs. The header names the machine, torch
version, thread count and load average, so figures from different machines (or a busy
machine) are not mixed up.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch import nn

from mogaqnn.data import LabelledImages, iterate_batches, load_dataset
from mogaqnn.models import create_model, list_models


def _accuracy(model: nn.Module, data: LabelledImages, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in iterate_batches(data, batch_size, shuffle=False):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(data)


def run(name: str, epochs: int, lr: float, batch_size: int, seed: int) -> dict[str, float]:
    splits = load_dataset("mnist5k", seed=seed)
    torch.manual_seed(seed)
    model = create_model(
        name,
        in_channels=splits.in_channels,
        num_classes=splits.num_classes,
        image_size=splits.image_size,
    )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    epoch_s: list[float] = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in iterate_batches(splits.train, batch_size, shuffle=True, generator=gen):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        epoch_s.append(time.perf_counter() - start)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "s_per_epoch": statistics.median(epoch_s),
        "max_s_per_epoch": max(epoch_s),
        "val_acc": _accuracy(model, splits.val),
        "test_acc": _accuracy(model, splits.test),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"# machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load avg {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# mnist5k, {args.epochs} epochs, Adam lr {args.lr}, batch {args.batch_size}, "
        f"seed {args.seed}"
    )
    print("| model | params | s/epoch (median) | s/epoch (max) | val acc | test acc |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        r = run(name, args.epochs, args.lr, args.batch_size, args.seed)
        print(
            f"| {name} | {r['params']:,} | {r['s_per_epoch']:.1f} | {r['max_s_per_epoch']:.1f} "
            f"| {100 * r['val_acc']:.1f}% | {100 * r['test_acc']:.1f}% |",
            flush=True,
        )
    print(f"# load avg at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
