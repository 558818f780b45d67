"""The trainer's batches and schedule: reproducible whatever the number of worker processes."""

import numpy as np
import torch

from liverfusion.training import TrainConfig, batches, learning_rate_factor


def _cases() -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for present in ([0, 0, 1, 0, 1], [1, 1, 1, 1, 0]):
        label = np.zeros((1, 30, 30, 30), np.uint8)
        label[0, 5:25, 5:25, 5:25] = 1
        label[0, 12:18, 12:18, 12:18] = 2
        image = rng.standard_normal((5, 30, 30, 30)).astype(np.float32) * np.array(present)[:, None, None, None]
        out.append({"image": image, "label": label, "present": np.array(present, np.float32), "malignant": 1.0})
    return out


def test_batches_are_the_same_with_or_without_workers():
    cfg = TrainConfig(patch=(16, 16, 16), batch_size=2, steps=4, seed=3)
    serial = list(batches(_cases(), cfg, 0))
    parallel = list(batches(_cases(), TrainConfig(**{**cfg.__dict__, "workers": 2}), 0))
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    image, label, _, present = serial[0]
    assert image.shape == (2, 5, 16, 16, 16) and label.shape == (2, 1, 16, 16, 16)
    assert (image[:, present[0] == 0] == 0).all()  # missing (or dropped) modalities are zeros


def test_resumed_batches_continue_the_same_sequence():
    cfg = TrainConfig(patch=(16, 16, 16), batch_size=2, steps=4, seed=3)
    assert torch.equal(list(batches(_cases(), cfg, 0))[3][0], list(batches(_cases(), cfg, 3))[0][0])


def test_schedule_warms_up_then_anneals_to_zero_by_steps_or_by_time():
    cfg = TrainConfig(steps=1000)
    assert learning_rate_factor(0, 0, cfg) < 0.1 and learning_rate_factor(50, 0, cfg) == 1.0
    assert learning_rate_factor(999, 0, cfg) < 1e-3
    timed = TrainConfig(steps=10**6, minutes=1.0)
    assert learning_rate_factor(10, 59.9, timed) < 1e-3  # the time budget ends the schedule, not the step count
