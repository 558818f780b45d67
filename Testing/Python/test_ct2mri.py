"""CT -> MRI translation: the structure term, the scale-free normalisation, the shipped translator's quality and
speed, training end to end, and its use by the command line and the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.metrics import SSIMMetric

from liverfusion.apps.ct2mri.training import (
    UNKNOWN,
    Sampler,
    TranslatorConfig,
    save_translator,
    structure_loss,
    train_translator,
)
from liverfusion.apps.ct2mri.translate import ct_to_unit, load_translator, mri_to_unit, slice_grid, translate
from liverfusion.constants import CHANNELS
from liverfusion.errors import ModelError
from liverfusion.evaluation.metrics import dice
from liverfusion.inference.pipeline import run_case
from liverfusion.io.images import read_image
from liverfusion.models import store as model_store
from liverfusion.synthesis.phantom import aligned_pair
from liverfusion.training.dataset import load_case

HELD_OUT_SEED = 5001  # the translator trained on seeds 1000-1039


@pytest.fixture(scope="module")
def translator():
    return load_translator(None, torch.device("cpu"))


@pytest.fixture(scope="module")
def pair():
    return aligned_pair(HELD_OUT_SEED)


def test_structure_term_ignores_contrast_and_noise_but_sees_movement(pair):
    ct = torch.from_numpy(ct_slices_of(pair["ct"]))
    moved = structure_loss(ct, torch.roll(ct, shifts=(4, 4), dims=(-2, -1)))  # anatomy moved by 8 mm
    assert structure_loss(ct, -ct) < 1e-6  # every edge kept, every contrast reversed
    assert structure_loss(ct, torch.tanh(3 * ct)) < 0.8 * moved  # a non-linear change of contrast
    noisy = ct + 0.03 * torch.randn(ct.shape, generator=torch.Generator().manual_seed(0))
    assert structure_loss(ct, noisy) < 0.3 * moved  # another scanner's noise


def ct_slices_of(ct: sitk.Image) -> np.ndarray:
    return ct_to_unit(sitk.GetArrayFromImage(ct)).astype(np.float32)[::4, None]


def test_mri_normalisation_is_scale_free(pair):
    signal = sitk.GetArrayFromImage(pair["mri"]).astype(np.float32)
    assert np.allclose(mri_to_unit(signal), mri_to_unit(3.7 * signal), atol=1e-5)
    assert mri_to_unit(signal).min() >= -1 and mri_to_unit(signal).max() <= 1


def test_slice_grid_is_1_5_mm_and_divisible_by_16():
    ct = sitk.Image([512, 512, 5], sitk.sitkInt16)
    ct.SetSpacing((0.74, 0.74, 3.0))
    grid = slice_grid(ct)
    assert grid.GetSpacing() == (1.5, 1.5, 3.0)
    assert grid.GetSize()[2] == 5 and all(n % 16 == 0 and n * 1.5 >= 512 * 0.74 for n in grid.GetSize()[:2])


def test_shipped_translator_keeps_the_ct_grid_and_the_liver(translator, pair):
    """On a held-out phantom: the output lies on the CT grid, looks like the true MRI (SSIM), and the fusion
    network finds the same liver on it as the truth (anatomy neither moved nor lost)."""
    mri = translate(pair["ct"], translator, torch.device("cpu"))
    for attribute in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(mri, attribute)() == getattr(pair["ct"], attribute)()
    fake, true = (torch.from_numpy(mri_to_unit(sitk.GetArrayFromImage(m)))[None, None] for m in (mri, pair["mri"]))
    ssim = float(SSIMMetric(spatial_dims=3, data_range=2.0, win_size=7)(fake, true).mean())
    assert ssim > SSIM_BAR
    liver = model_store.load_model().liver(mri, "mri", torch.device("cpu"))
    assert liver is not None
    found = sitk.Resample(liver, pair["label"], sitk.Transform(), sitk.sitkNearestNeighbor)
    assert dice(sitk.GetArrayFromImage(found) > 0, sitk.GetArrayFromImage(pair["label"]) > 0) > LIVER_DICE_BAR


SSIM_BAR = 0.65
LIVER_DICE_BAR = 0.7


@pytest.mark.slow
def test_translates_a_clinical_ct_within_30_seconds(translator):
    noise = np.random.default_rng(0).normal(40, 20, (120, 512, 512)).astype(np.int16)  # cost is content-blind
    ct = sitk.GetImageFromArray(noise)
    ct.SetSpacing((0.74, 0.74, 2.0))
    start = time.perf_counter()
    mri = translate(ct, translator, torch.device("cpu"))
    assert time.perf_counter() - start < 30
    assert mri.GetSize() == (512, 512, 120)


def test_a_few_training_steps_write_a_bundle_of_the_translator_kind(tmp_path):
    cfg = TranslatorConfig(steps=2, phantoms=2, batch_size=2, crop=64, segmenter_steps=2)
    g, log = train_translator(cfg, ([], []), torch.device("cpu"))
    assert log["steps"] == 2 and np.isfinite([log["cycle"], log["structure"], log["shape"]]).all()
    out = save_translator(tmp_path / "t", g, cfg, log, "0.0.1", "two phantoms")
    bundle = load_translator(str(out))
    card = (out / "docs" / "README.md").read_text(encoding="utf-8")
    assert bundle.version == "0.0.1" and "MIND structure term" in card
    with pytest.raises(ModelError, match="translator model, not a segmentation model"):
        model_store.load(out)


def test_only_segmentation_models_are_offered_for_segmentation():
    assert "liverfusion_ct2mri" not in model_store.available()
    assert model_store.available(model_store.TRANSLATOR) == ["liverfusion_ct2mri"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liverfusion.cli", *args], capture_output=True, text=True)


def test_cli_translates_and_reports_bad_input_in_one_line(small_ctmri, tmp_path):
    out = tmp_path / "mri_like.nii.gz"
    done = run_cli("ct2mri", "--input", str(small_ctmri / "ct.nii.gz"), "--out", str(out), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert read_image(out).GetSize() == read_image(small_ctmri / "ct.nii.gz").GetSize()
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image")
    for args in (["--input", str(bad), "--out", str(tmp_path / "x.nii.gz")], ["--input", str(out), "--out", "x.png"]):
        failed = run_cli("ct2mri", *args)
        assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and "error:" in failed.stderr
    assert not (tmp_path / "x.nii.gz").exists()


def test_cli_warns_of_a_ct_off_hounsfield_units_and_refuses_a_label_map(small_ctmri, tmp_path):
    shifted = tmp_path / "stored_values.nrrd"  # the rescale intercept left out: every value 1024 too high
    sitk.WriteImage(read_image(small_ctmri / "ct.nii.gz") + 1024.0, str(shifted))
    done = run_cli("ct2mri", "--input", str(shifted), "--out", str(tmp_path / "a.nii.gz"), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"warning: {shifted}: ct: no voxel below -500")
    label = run_cli("ct2mri", "--input", str(small_ctmri / "label_ct.nii.gz"), "--out", str(tmp_path / "b.nii.gz"))
    assert label.returncode == 2 and "a label map, not a scan" in label.stderr
    assert not (tmp_path / "b.nii.gz").exists()


def test_pipeline_fills_a_missing_mri_from_the_ct(small_ctmri, tmp_path):
    ct = read_image(small_ctmri / "ct.nii.gz")
    result = run_case({"ct": ct}, "none", "cpu", fill_mri=True)
    assert set(result.fusion) == {"ct", "mri"} and "translate" in result.timings
    assert result.translated["mri"].GetSize() == ct.GetSize()
    summary = result.summary()
    assert summary["filled_by_translation"]["mri"]["from"] == "ct"
    plain = run_case({"ct": ct}, "none", "cpu")
    assert set(plain.fusion) == {"ct"} and plain.summary()["filled_by_translation"] == {}
    assert json.dumps(summary)


def test_trainer_option_fills_the_mri_channel_of_a_case_without_mri(small_multiphase):
    mri = CHANNELS.index("mri")
    plain = load_case(small_multiphase, (3.0, 3.0, 3.0))
    filled = load_case(small_multiphase, (3.0, 3.0, 3.0), fill_mri=True)
    assert not plain["present"][mri] and filled["present"][mri]
    assert np.array_equal(filled["image"][:mri], plain["image"][:mri]) and np.array_equal(
        filled["label"], plain["label"]
    )
    assert filled["image"][mri].std() > 0.1  # an image, not an empty channel


def test_sampler_mixes_real_crops_without_labels_into_phantom_batches():
    phantom = [np.stack([np.zeros((100, 90), np.float32), np.ones((100, 90), np.float32)])]
    real = [np.stack([np.full((200, 150), 0.5, np.float32), np.full((200, 150), UNKNOWN, np.float32)])]
    for weight in (0.0, 0.5, 1.0):
        sampler = Sampler(([], phantom), ([], real), TranslatorConfig(batch_size=8, crop=128, real_weight=weight))
        images, labels = sampler.draw(1)
        assert images.shape == (8, 1, 128, 128) and labels.shape == (8, 128, 128)
        from_real = (images[:, 0, 0, 0] == 0.5).numpy()
        assert (labels[from_real] == UNKNOWN).all() and set(labels[~from_real].unique().tolist()) <= {0, 1}
        assert from_real.all() if weight == 1.0 else (not from_real.any() if weight == 0.0 else True)
