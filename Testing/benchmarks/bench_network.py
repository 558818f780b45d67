"""Seconds for the network's sliding-window pass over a clinical CT+MRI case's model grid, on CPU or GPU.

The grid (5 channels, 100x128x128 at 3 mm) is that of a CT 512x512x120 with an MRI; inputs are random, which
does not change the cost. One warm-up pass first (cuDNN picks its kernels). Not a test: prints a figure.
Usage: python Testing/benchmarks/bench_network.py [--device auto|cpu|cuda] [--model NAME_OR_DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from benchlib import json_argument, write_json

from liverfusion.inference.device import device_report, pick_device
from liverfusion.inference.sliding_window import predict
from liverfusion.models import store as model_store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default=None)
    json_argument(p, __file__)
    args = p.parse_args()
    device = pick_device(args.device)
    bundle = model_store.load(args.model)
    net = bundle.network.to(device).eval()
    x = np.random.default_rng(0).standard_normal((5, 100, 128, 128)).astype(np.float32)
    present = np.array([0, 0, 1, 0, 1], np.float32)  # CT (portal channel) + MRI
    roi = tuple(bundle.config["roi_size"])
    predict(net, x, present, roi, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    predict(net, x, present, roi, device)
    sync()
    seconds, where = time.perf_counter() - start, device_report() if device.type == "cuda" else "CPU"
    print(f"{seconds:.3f} s for one pass ({where}, "
          f"{torch.get_num_threads()} threads, model {bundle.metadata['name']} {bundle.metadata['version']})")
    figures = {"seconds": seconds, "device": where, "threads": torch.get_num_threads()}
    figures["model"] = f"{bundle.metadata['name']} {bundle.metadata['version']}"
    write_json(args.json, figures, args)


if __name__ == "__main__":
    main()
