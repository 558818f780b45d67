"""Sliding-window inference: a GPU that runs out of memory falls back to fewer windows, then to the CPU; a fused
pass reuses the encoding of the reference from the pass on it alone."""

import numpy as np
import torch

from liverfusion.inference import sliding_window as inference
from liverfusion.models.interface import Prediction, guarded
from liverfusion.networks.fusion import FusionNet


def test_out_of_gpu_memory_takes_fewer_windows_then_the_cpu(monkeypatch):
    calls = []
    real = inference._windows

    def windows(network, stacked, present, roi, device, batch, output, progress, notes, reuse=None):
        calls.append((device.type, batch, output.type))
        if device.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(network, stacked, present, roi, device, batch, output, progress, notes)

    monkeypatch.setattr(inference, "_windows", windows)
    net = FusionNet(features=(4, 8, 16, 32)).eval()
    stacked = np.random.default_rng(0).standard_normal((5, 20, 20, 20)).astype(np.float32)
    pred = inference.predict(net, stacked, np.array([0, 0, 1, 0, 1], np.float32), (16, 16, 16), torch.device("cuda"))
    assert calls == [("cuda", 8, "cuda"), ("cuda", 2, "cpu"), ("cuda", 1, "cpu"), ("cpu", 1, "cpu")]
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

    def windows(network, stacked, present, roi, device, batch, output, progress, notes, reuse=None):
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
    out = guarded(
        Prediction(fused, None, np.ones((5, *shape))), Prediction(alone, None, np.zeros((5, *shape))), (1.0, 1.0, 1.0)
    )
    labels = out.probabilities.argmax(0)
    assert labels[1, 2, 3] == 2 and labels[2, 2, 2] == 2 and (labels == 2).sum() == 2
    assert (labels[0] == 0).all() and (labels[1:] > 0).all()
    assert np.allclose(out.probabilities.sum(0), 1) and (out.probabilities >= 0).all()
    assert (out.fusion_weights == 1).all()  # the fused network's weights, shown as the attention maps


def test_a_guarded_fused_prediction_has_no_organ_far_from_the_organ_the_reference_alone_found():
    shape, spacing = (20, 40, 40), (5.0, 4.0, 4.0)  # a voxel of 0.08 ml
    alone = np.zeros((3, *shape), np.float32)
    alone[0] = 1.0
    alone[:, 5:15, 5:25, 5:25] = np.array([0.0, 1.0, 0.0])[:, None, None, None]  # 320 ml of liver
    fused = alone.copy()
    fused[:, 5:15, 25:27, 5:25] = np.array([0.1, 0.9, 0.0])[:, None, None, None]  # 4-8 mm beyond it: kept
    fused[:, 5:15, 33:38, 5:25] = np.array([0.0, 0.3, 0.7])[:, None, None, None]  # 32-52 mm beyond it: dropped
    out = guarded(Prediction(fused, None, np.ones((5, *shape))), Prediction(alone, None, np.ones((5, *shape))), spacing)
    labels = out.probabilities.argmax(0)
    assert (labels[5:15, 5:27, 5:25] == 1).all() and (labels[:, 27:] == 0).all()
    assert np.allclose(out.probabilities.sum(0), 1) and (out.probabilities >= 0).all()
    alone[1:] = 0.0  # a reference alone that found no liver restricts nothing
    out = guarded(Prediction(fused, None, np.ones((5, *shape))), Prediction(alone, None, np.ones((5, *shape))), spacing)
    assert (out.probabilities.argmax(0)[5:15, 33:38, 5:25] == 2).all()


def test_the_fused_pass_encodes_only_the_inputs_the_pass_alone_did_not_and_gives_the_same_prediction(monkeypatch):
    torch.manual_seed(0)
    net = FusionNet(features=(4, 8, 16, 32)).eval()
    encoded = []
    real = net.modality_features
    monkeypatch.setattr(net, "modality_features", lambda x, idx: encoded.append(list(idx)) or real(x, idx))
    stacked = np.random.default_rng(1).standard_normal((5, 24, 20, 30)).astype(np.float32)
    alone_only, both = np.array([0, 0, 0, 1, 0], np.float32), np.array([0, 1, 0, 1, 0], np.float32)
    cpu, roi = torch.device("cpu"), (16, 16, 16)
    reuse = inference.EncoderReuse(3)
    inference.predict(net, stacked * alone_only[:, None, None, None], alone_only, roi, cpu, reuse=reuse)
    assert encoded and all(idx == [3] for idx in encoded) and len(reuse.batches) == len(encoded)
    encoded.clear()
    replayed = inference.predict(net, stacked, both, roi, cpu, reuse=reuse)
    assert encoded and all(idx == [1] for idx in encoded)  # the reference (channel 3) was not encoded again
    assert all(batch is None for batch in reuse.batches)  # each kept batch was let go once replayed
    encoded.clear()
    computed = inference.predict(net, stacked, both, roi, cpu)
    assert all(idx == [1, 3] for idx in encoded)
    np.testing.assert_allclose(replayed.probabilities, computed.probabilities, atol=1e-5)
    np.testing.assert_allclose(replayed.fusion_weights, computed.fusion_weights, atol=1e-5)


def test_kept_encodings_of_other_windows_are_not_replayed():
    reuse = inference.EncoderReuse(3)
    reuse.start()
    reuse.keep({3: [torch.ones(1, 4, 16, 16, 16)]})  # a pass the GPU ran out of memory in
    reuse.start()
    assert reuse.recording and reuse.batches == []  # recorded afresh
    reuse.keep({3: [torch.zeros(2, 4, 16, 16, 16)]})
    reuse.finish()
    reuse.start()
    assert not reuse.recording
    assert reuse.known(torch.zeros(1, 5, 16, 16, 16)) is None  # one window per batch, where two were kept
    reuse.start()
    assert reuse.known(torch.zeros(2, 5, 16, 16, 16)) is None  # already replayed once
