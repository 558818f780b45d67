"""bfloat16 autocast and channels-last on this CPU: seconds per training step and per inference window of the
shipped fusion network, the variants timed in interleaved rounds in one process (so that a busy machine slows them
alike; the median of the rounds is reported), and the largest difference of its tumour probability from float32's.

bfloat16 pays only where the CPU has AVX-512 BF16 or AMX instructions; elsewhere PyTorch emulates it. The script
prints which the CPU has. Not a test: prints figures and writes JSON.
Usage: python Testing/benchmarks/bench_cpu_precision.py [--patch 48] [--batch 2] [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from liverfusion.models import store as model_store
from liverfusion.training.trainer import Losses

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"float32": (False, False), "bfloat16": (True, False), "channels-last": (False, True)}


def cpu_flags() -> list[str]:
    text = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").is_file() else ""
    flags = next((line.split(":")[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f.startswith(("avx512", "amx")) or f == "avx2")


def inputs(batch: int, patch: int) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    x = torch.randn(batch, 5, patch, patch, patch)
    present = torch.zeros(batch, 5)
    present[:, 2] = 1
    x[:, [0, 1, 3, 4]] = 0
    label = torch.randint(0, 3, (batch, 1, patch, patch, patch)).float()
    return x, present, label, torch.ones(batch)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(net: torch.nn.Module, weights: dict, data, bf16: bool, channels_last: bool) -> dict:
    """Timings of one variant, and its tumour probability with the shipped weights (restored first: a training step
    moves the running statistics of the attention gates' batch norms, which would pass for a precision effect)."""
    net.load_state_dict(weights)
    x, present, label, malignant = data
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    losses = Losses()

    def train_step() -> None:
        net.train()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = losses(net(x, present), label, malignant)
        net.zero_grad(set_to_none=True)
        loss.backward()

    def infer() -> torch.Tensor:
        net.eval()
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return net(x[:1], present[:1])["seg"].float().softmax(1)[:, 2]

    tumor = infer()
    train_step(), infer()  # warm-up: oneDNN picks its kernels on the first call
    return {"train_step_s": timed(train_step), "infer_window_s": timed(infer), "tumor": tumor}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=str(RESULTS / "cpu_precision.json"))
    args = p.parse_args()
    print(f"CPU flags: {' '.join(cpu_flags()) or 'none of avx2/avx512/amx'}; torch threads {torch.get_num_threads()}")
    net, data = model_store.load(None, torch.device("cpu")).network, inputs(args.batch, args.patch)
    weights = copy.deepcopy(net.state_dict())
    rounds = [{n: measure(net, weights, data, *flags) for n, flags in VARIANTS.items()} for _ in range(args.rounds)]
    reference = rounds[0]["float32"]["tumor"]
    rows = {
        name: {
            "train_step_s": statistics.median(r[name]["train_step_s"] for r in rounds),
            "infer_window_s": statistics.median(r[name]["infer_window_s"] for r in rounds),
            "max_tumor_probability_difference": float((rounds[0][name]["tumor"] - reference).abs().max()),
        }
        for name in VARIANTS
    }
    for name, row in rows.items():
        print(f"{name:<14} train step {row['train_step_s']:.2f} s (batch {args.batch}, {args.patch}^3)  "
              f"inference window {row['infer_window_s']:.2f} s  max |dp| {row['max_tumor_probability_difference']:.4f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    setup = {"patch": args.patch, "batch": args.batch, "rounds": args.rounds, "cpu_flags": cpu_flags()}
    out.write_text(json.dumps({"setup": setup, "variants": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"written {out}")


if __name__ == "__main__":
    main()
