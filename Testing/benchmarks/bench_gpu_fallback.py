"""A real out-of-memory on the GPU: does inference fall back (fewer windows, output in host memory, then the CPU)
and give the same segmentation? The unit test only simulates the error; this makes PyTorch's allocator refuse
memory for real by capping what this process may take (`torch.cuda.set_per_process_memory_fraction`).

On a clinical CT+MRI model grid (5 x 100 x 128 x 128, random inputs, as bench_network.py): one pass without a cap
(time, peak GPU memory), then with caps at fractions of that peak. Prints, per cap, the notes that the result
carries, the time, and the share of voxels whose class matches the uncapped pass. Needs CUDA; not a test.
Usage: python Testing/benchmarks/bench_gpu_fallback.py [--model NAME_OR_DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from benchlib import json_argument, write_json

from liverfusion.inference.device import device_report
from liverfusion.inference.sliding_window import predict
from liverfusion.models import store as model_store


def timed_pass(net: torch.nn.Module, x: np.ndarray, present: np.ndarray, roi: tuple, cap_bytes: int | None):
    """One prediction, under a cap on this process's GPU memory when given; the network starts on the GPU."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap_bytes / total if cap_bytes else 1.0)
    net.to("cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    pred = predict(net, x, present, roi, torch.device("cuda"))
    torch.cuda.synchronize()
    return pred, time.perf_counter() - start, torch.cuda.max_memory_allocated()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    json_argument(p, __file__)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit(f"bench_gpu_fallback: needs CUDA ({device_report()})")
    bundle = model_store.load(args.model)
    net = bundle.network.eval()
    x = np.random.default_rng(0).standard_normal((5, 100, 128, 128)).astype(np.float32)
    present = np.array([0, 0, 1, 0, 1], np.float32)  # CT (portal channel) + MRI
    roi = tuple(bundle.config["roi_size"])
    timed_pass(net, x, present, roi, None)  # warm-up: cuDNN picks its kernels
    ref, seconds, peak = timed_pass(net, x, present, roi, None)
    labels = ref.probabilities.argmax(0)
    print(f"{device_report()}; no cap: {seconds:.2f} s, peak {peak / 2**20:.0f} MiB, notes {ref.notes}")
    rows = [{"cap_mib": None, "seconds": seconds, "peak_mib": peak / 2**20, "notes": ref.notes}]
    weights = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    for share in (0.5, 0.2, 0.0):
        cap = weights + int(share * peak) + 2**20
        pred, seconds, _ = timed_pass(net, x, present, roi, cap)
        same = float(np.mean(pred.probabilities.argmax(0) == labels))
        diff = float(np.abs(pred.probabilities - ref.probabilities).max())
        print(
            f"cap {cap / 2**20:.0f} MiB ({share:.0%} of the peak + weights): {seconds:.2f} s, notes {pred.notes}, "
            f"same class {same:.5f}, largest probability difference {diff:.4f}"
        )
        rows.append({"cap_mib": cap / 2**20, "seconds": seconds, "notes": pred.notes, "same_class": same,
                     "largest_probability_difference": diff})
    write_json(args.json, {"device": device_report(), "rows": rows}, args)


if __name__ == "__main__":
    main()
