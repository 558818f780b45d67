"""Seconds a batch worker spends on one training batch, with and without the spatial augmentation.

A batch of 8 five-channel 64^3 patches from a 120x110x90 case at 3 mm (the size of a clinical case's model grid),
on one thread as in a worker; inputs are random, which does not change the cost. Tells whether the GPU's workers
keep up with it. Not a test: prints figures.
Usage: python Testing/benchmarks/bench_augment.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from benchlib import json_argument, write_json

from liverfusion.training.trainer import augmentations, crop_weights, make_batch


def synthetic_case(rng: np.random.Generator) -> dict:
    label = np.zeros((1, 120, 110, 90), np.uint8)
    label[0, 20:100, 20:90, 10:80] = 1
    label[0, 40:55, 40:55, 30:45] = 2
    label[0, 70, 70, 50:52] = 2
    image = rng.standard_normal((5, *label.shape[1:])).astype(np.float32)
    return {"image": image, "label": label, "present": np.array([1, 1, 1, 1, 0], np.float32), "malignant": 1.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    json_argument(p, __file__)
    args = p.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    case = synthetic_case(rng)
    case["weight"] = crop_weights(case["label"])
    rows = []
    for spatial in (False, True):
        for lesion_crops in (False, True):
            transform = augmentations((64, 64, 64), lesion_crops, spatial)
            transform.set_random_state(seed=0)
            start = time.perf_counter()
            for _ in range(args.repeats):
                make_batch([case], transform, rng, 8)
            seconds = (time.perf_counter() - start) / args.repeats
            print(f"spatial {spatial!s:5} lesion crops {lesion_crops!s:5}: {seconds:.2f} s per batch of 8")
            rows.append({"spatial": spatial, "lesion_crops": lesion_crops, "seconds_per_batch_of_8": seconds})
    write_json(args.json, {"rows": rows}, args)


if __name__ == "__main__":
    main()
