"""Sliding-window inference: a GPU that runs out of memory falls back to fewer windows, then to the CPU."""

import numpy as np
import torch

from liverfusion.inference import sliding_window as inference
from liverfusion.models.interface import Prediction, guarded
from liverfusion.networks.fusion import FusionNet


def test_out_of_gpu_memory_takes_fewer_windows_then_the_cpu(monkeypatch):
    calls = []
    real = inference._windows

    def windows(network, stacked, present, roi, device, batch, output, progress, notes):
        calls.append((device.type, batch, output.type))
        if device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(network, stacked, present, roi, device, batch, output, progress, notes)

    monkeypatch.setattr(inference, "_windows", windows)
    net = FusionNet(features=(4, 8, 16, 32)).eval()
    stacked = np.random.default_rng(0).standard_normal((5, 20, 20, 20)).astype(np.float32)
    pred = inference.predict(net, stacked, np.array([0, 0, 1, 0, 1], np.float32), (16, 16, 16), torch.device("cuda"))
    assert calls == [("cuda", 8, "cuda"), ("cuda", 2, "cpu"), ("cuda", 1, "cpu"), ("cpu", 2, "cpu")]
    assert pred.notes[-1] == "inference ran on the CPU" and len(pred.notes) == 4
    assert pred.probabilities.shape == (3, 20, 20, 20)
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, rtol=1e-5)


def test_cpu_inference_has_no_notes():
    net = FusionNet(features=(4, 8, 16, 32)).eval()
    stacked = np.zeros((5, 20, 20, 20), np.float32)
    pred = inference.predict(net, stacked, np.array([1, 0, 0, 0, 0], np.float32), (16, 16, 16), torch.device("cpu"))
    assert pred.notes == [] and pred.fusion_weights[1:].max() == 0  # only the present input has weight


def test_a_fallback_that_succeeds_on_the_gpu_keeps_its_note(monkeypatch):
    real = inference._windows

    def windows(network, stacked, present, roi, device, batch, output, progress, notes):
        if batch == 8:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(network, stacked, present, roi, torch.device("cpu"), batch, output, progress, notes)

    monkeypatch.setattr(inference, "_windows", windows)
    net = FusionNet(features=(4, 8, 16, 32)).eval()
    stacked = np.zeros((5, 20, 20, 20), np.float32)
    pred = inference.predict(net, stacked, np.array([1, 0, 0, 0, 0], np.float32), (16, 16, 16), torch.device("cuda"))
    assert pred.notes == ["GPU out of memory with 8 window(s) per batch"]


def test_a_guarded_fused_prediction_keeps_the_tumour_the_reference_alone_found_in_the_fused_organ():
    shape = (4, 5, 6)
    fused, alone = np.zeros((3, *shape), np.float32), np.zeros((3, *shape), np.float32)
    fused[1], alone[1] = 0.9, 0.7  # both see liver everywhere but at the first slice
    fused[0], alone[0] = 0.1, 0.3
    fused[:, 0] = np.array([1.0, 0.0, 0.0])[:, None, None]  # only the reference alone calls liver here
    alone[:, 1, 2, 3] = (0.0, 0.2, 0.8)  # a tumour voxel only the reference alone calls
    fused[:, 2, 2, 2] = (0.1, 0.2, 0.7)  # and one only the fused prediction calls
    out = guarded(Prediction(fused, None, np.ones((5, *shape))), Prediction(alone, None, np.zeros((5, *shape))))
    labels = out.probabilities.argmax(0)
    assert labels[1, 2, 3] == 2 and labels[2, 2, 2] == 2 and (labels == 2).sum() == 2
    assert (labels[0] == 0).all() and (labels[1:] > 0).all()
    assert np.allclose(out.probabilities.sum(0), 1) and (out.probabilities >= 0).all()
    assert (out.fusion_weights == 1).all()  # the fused network's weights, shown as the attention maps
