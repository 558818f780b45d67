"""The KU Leuven port: the conversion, the pieces of their preprocessing, and the port on real scans."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from liverfusion.apps.kuleuven import import_weights
from liverfusion.apps.kuleuven import predict as kuleuven_predict
from liverfusion.cli import main
from liverfusion.errors import ModelError
from liverfusion.models import store as model_store
from liverfusion.networks.fusion import FusionNet
from liverfusion.networks.kuleuven_unet import LESION, LIVER, KULeuvenUNet, keras_state_dict
from liverfusion.training.trainer import TrainConfig, initial_network

BUNDLE = model_store.MODELS_DIR / "pyliverlesionseg"


def test_zoom_keeps_a_constant_and_averages_when_shrinking():
    ones = np.ones((30, 20, 12))
    shrunk = kuleuven_predict.zoom3d(ones, (0.5, 1 / 3, 1))
    assert shrunk.shape == (15, 7, 12)  # ceil(n * zoom), as pymirc
    assert np.allclose(shrunk[:, 1:-1], 1.0)  # inner cells are exact area averages
    ramp = np.arange(10.0)[:, None, None] * np.ones((1, 2, 2))
    grown = kuleuven_predict.zoom3d(ramp, (2, 1, 1))[:, 0, 0]
    assert grown.shape == (20,)
    assert np.allclose(np.diff(grown[1:-1]), 0.5)  # linear between the centres


class _CentreTimesTwo(torch.nn.Module):
    """A stand-in network with the liver model's sizes: twice the centre of its input patch."""

    spec = LIVER

    def forward(self, x):
        cut = [(i - o) // 2 for i, o in zip(LIVER.input_size, LIVER.output_size)]
        return 2 * x[..., cut[0] : cut[0] + 163, cut[1] : cut[1] + 136, cut[2] : cut[2] + 136]


@pytest.mark.parametrize("shape", [(60, 50, 40), (200, 150, 40)])
def test_tiles_cover_every_voxel_in_place(shape):
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = kuleuven_predict.tile_predict(image, _CentreTimesTwo(), torch.device("cpu"))
    np.testing.assert_allclose(out, 2 * image)  # no voxel shifted, none left to the nearest-value fill


def test_networks_give_their_output_sizes():
    lesion = KULeuvenUNet(LESION).eval()
    with torch.no_grad():
        assert lesion(torch.zeros(1, 1, *LESION.input_size)).shape[2:] == LESION.output_size
        assert KULeuvenUNet(LIVER).eval()(torch.zeros(1, 1, 81, 81, 27)).shape[2:] == (55, 55, 1)


def _hdf5(part: str, tmp_path):
    record = import_weights.source_record(BUNDLE)
    wheel = import_weights.CACHE / "pyliverlesionseg-0.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        return archive.extract(record[part]["path"], tmp_path)


def test_converted_weights_are_keras_kernels_transposed(tmp_path):
    """Every conv of the bundle equals its Keras kernel (kX, kY, kZ, in, out) read back from the wheel."""
    import h5py

    bundle = model_store.load("pyliverlesionseg")
    path = _hdf5("liver", tmp_path)
    with h5py.File(path) as handle:
        kernel = np.array(handle["conv3d_2/conv3d_2/kernel:0"])
    assert kernel.shape == (3, 3, 3, 20, 40)
    ported = bundle.network.liver.down[0].convs[1].weight.detach().numpy()
    np.testing.assert_array_equal(ported, kernel.transpose(4, 3, 0, 1, 2))
    assert len(keras_state_dict(path, KULeuvenUNet(LIVER))) == 2 * len(KULeuvenUNet(LIVER).keras_order)


def test_a_wrong_wheel_is_one_line_error(tmp_path, capsys):
    fake = tmp_path / "pyliverlesionseg-0.3-py3-none-any.whl"
    fake.write_bytes(b"not a wheel")
    assert main(["import-weights", "pyliverlesionseg", "--wheel", str(fake), "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(fake) in err and "SHA-256" in err and "\n" not in err


def test_missing_weights_say_how_to_get_them(tmp_path):
    copy = tmp_path / "pyliverlesionseg"
    shutil.copytree(BUNDLE / "configs", copy / "configs")
    with pytest.raises(ModelError, match="import-weights"):
        model_store.load(copy)
    metadata = json.loads((copy / "configs" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["converted_from"]["wheel_sha256"]


@pytest.mark.slow
def test_port_finds_the_liver_on_the_real_ct(real_data):
    """A wrong port (transposed kernels, a missing normalisation) gives a Dice near 0."""
    folder = real_data / "totalsegmentator_examples"
    bundle = model_store.load("pyliverlesionseg")
    ct = sitk.ReadImage(str(folder / "example_ct_sm.nii.gz"), sitk.sitkFloat32)
    found = sitk.GetArrayFromImage(kuleuven_predict.liver_only(ct, "nc", bundle.network, torch.device("cpu"))) > 0
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg_fast_liver.nii.gz"))) > 0
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) >= 0.95


def test_transfer_starts_from_their_encoder_and_differs_from_scratch_only_there():
    transfer = initial_network(TrainConfig(encoder="kuleuven", pretrained="pyliverlesionseg"))
    scratch = initial_network(TrainConfig(encoder="kuleuven"))
    theirs = model_store.load("pyliverlesionseg").network.liver
    assert torch.equal(transfer.stem.convs[1].weight, theirs.down[0].convs[1].weight)
    assert torch.equal(transfer.down[2][1].convs[0].weight, theirs.down[3].convs[0].weight)
    assert not torch.equal(scratch.stem.convs[1].weight, theirs.down[0].convs[1].weight)
    for name, value in scratch.state_dict().items():
        if not name.startswith(("stem.", "down.")):
            assert torch.equal(value, transfer.state_dict()[name]), name


def test_the_kuleuven_encoder_serves_every_subset_of_inputs():
    net = FusionNet(features=(4, 8, 16, 16), encoder="kuleuven").eval()
    with torch.no_grad():
        for present in ([0, 0, 1, 0, 1], [0, 0, 0, 0, 1]):
            out = net(torch.randn(1, 5, 27, 27, 27), torch.tensor([present], dtype=torch.float32))
            assert out["seg"].shape == (1, 3, 27, 27, 27)
            assert torch.allclose(out["fusion"][0].sum(0), torch.ones(27, 27, 27))


@pytest.mark.slow
def test_train_with_their_encoder_gives_a_bundle_that_segments(small_ctmri, small_multiphase, tmp_path):
    bundle = tmp_path / "transfer"
    args = ["train", "--data", str(small_ctmri.parent), str(small_multiphase.parent), "--out", str(bundle),
            "--steps", "2", "--batch-size", "1", "--val-every", "100", "--encoder", "kuleuven",
            "--pretrained", "pyliverlesionseg", "--device", "cpu"]
    assert main(args) == 0
    assert json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))["roi_size"] == [81, 81, 81]
    out = tmp_path / "result"
    inputs = ["--input", f"ct={small_ctmri / 'ct.nii.gz'}", "--input", f"mri={small_ctmri / 'mri.nii.gz'}"]
    assert main(["segment", *inputs, "--out", str(out), "--model", str(bundle), "--align", "none"]) == 0
    assert sitk.ReadImage(str(out / "segmentation.nii.gz")).GetSize() == sitk.ReadImage(
        str(small_ctmri / "ct.nii.gz")).GetSize()


@pytest.mark.slow
def test_segment_with_their_models_on_the_real_mr_keeps_the_contract(real_data, tmp_path, capsys):
    """Liver from their liver model (edge-padded, see kuleuven_predict.liver_mask), lesions from their lesion
    model, and no malignancy rating: null in result.json, `not rated` for the user."""
    folder = real_data / "totalsegmentator_examples"
    out = tmp_path / "result"
    mri = ["--input", f"mri={folder / 'example_mr_sm.nii.gz'}", "--out", str(out), "--device", "cpu"]
    assert main(["segment", *mri, "--model", "pyliverlesionseg"]) == 0
    assert "malignancy probability: not rated" in capsys.readouterr().out
    summary = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert summary["model"]["name"] == "pyliverlesionseg" and summary["malignancy_probability"] is None
    assert all(les["malignancy_probability"] is None for les in summary["lesions"])
    assert "holds a malignant lesion" not in (out / "report.html").read_text(encoding="utf-8")  # nothing to explain
    assert (out / "attention.nii.gz").is_file()
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentation.nii.gz"))) > 0
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg_mr.nii.gz"))) == 5
    assert 2 * (labels & truth).sum() / (labels.sum() + truth.sum()) >= 0.85  # 0.0 with their zero padding


@pytest.mark.slow
def test_synthetic_tumour_goes_into_the_liver_their_network_finds(real_data, tmp_path):
    folder = real_data / "totalsegmentator_examples"
    out = tmp_path / "synth"
    ct = folder / "example_ct_sm.nii.gz"
    assert main(["synth-tumor", "--input", f"nc={ct}", "--out", str(out), "--seed", "3", "--diameter-mm", "20"]) == 0
    info = json.loads((out / "case.json").read_text(encoding="utf-8"))
    assert info["liver"].startswith("pyliverlesionseg")
    liver = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "liver.nii.gz"))) > 0
    lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "label.nii.gz"))) == 2
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg_fast_liver.nii.gz"))) > 0
    assert lesion.sum() > 0 and (lesion & liver).sum() == lesion.sum()
    assert (lesion & truth).sum() >= 0.95 * lesion.sum()  # inside the real liver too, not only the found one
