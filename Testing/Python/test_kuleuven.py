"""The KU Leuven port: the conversion, the pieces of their preprocessing, and the port on real scans."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from liverfusion import import_weights, kuleuven_predict, model_store
from liverfusion.cli import main
from liverfusion.errors import ModelError
from liverfusion.kuleuven_unet import LESION, LIVER, KULeuvenUNet, keras_state_dict

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
    np.testing.assert_array_equal(bundle.network.liver.down[0].convs[1].weight.detach().numpy(), kernel.transpose(4, 3, 0, 1, 2))
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
    assert json.loads((copy / "configs" / "metadata.json").read_text())["converted_from"]["wheel_sha256"]


@pytest.mark.slow
def test_port_finds_the_liver_on_the_real_ct(real_data):
    """A wrong port (transposed kernels, a missing normalisation) gives a Dice near 0."""
    folder = real_data / "totalsegmentator_examples"
    bundle = model_store.load("pyliverlesionseg")
    ct = sitk.ReadImage(str(folder / "example_ct_sm.nii.gz"), sitk.sitkFloat32)
    found = sitk.GetArrayFromImage(kuleuven_predict.liver_only(ct, "nc", bundle.network, torch.device("cpu"))) > 0
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "example_seg_fast_liver.nii.gz"))) > 0
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) >= 0.95
