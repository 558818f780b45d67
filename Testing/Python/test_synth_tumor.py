"""Synthetic tumours in real and phantom livers: `liverfusion.synth_tumor` and `liverfusion synth-tumor`."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from liverfusion.constants import TUMOR
from liverfusion.io.images import read_image
from liverfusion.synthesis.tumor import insert, noise_sd
from liverfusion.training.dataset import load_case


def arr(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


@pytest.fixture(scope="module")
def real_ct(real_data):
    folder = real_data / "totalsegmentator_examples"
    return read_image(folder / "example_ct_sm.nii.gz"), read_image(folder / "example_seg_fast_liver.nii.gz") > 0


@pytest.fixture(scope="module")
def real_mr(real_data):
    folder = real_data / "totalsegmentator_examples"
    return read_image(folder / "example_mr_sm.nii.gz"), read_image(folder / "example_seg_mr.nii.gz", label=True) == 5


def test_cyst_in_a_real_native_ct_is_water_with_the_host_texture(real_ct):
    image, liver = real_ct
    done = insert({"nc": image}, liver, "cyst", diameter_mm=30.0, seed=2)
    painted, lesion, host = arr(done.images["nc"]), arr(done.label) == TUMOR, arr(image).astype(np.float32)
    liver_a = arr(liver) > 0
    assert lesion.sum() > 100 and not (lesion & ~liver_a).any()  # inside the given liver only
    assert abs(np.median(painted[lesion])) < 20 and np.median(host[liver_a]) > 30  # water in a ~50 HU liver
    core = ndimage.binary_erosion(lesion, iterations=1)
    ratio = noise_sd(painted[core]) / noise_sd(host[liver_a])
    assert 0.5 < ratio < 2.0, ratio  # the lesion is as noisy as the host liver, not smooth
    near = ndimage.binary_dilation(lesion, iterations=2)
    np.testing.assert_array_equal(painted[~near], host[~near])


def test_hcc_in_a_real_mr_is_brighter_than_its_liver(real_mr):
    image, liver = real_mr
    done = insert({"mri": image}, liver, "hcc", diameter_mm=25.0, seed=4)
    lesion = arr(done.label) == TUMOR
    ratio = np.median(arr(done.images["mri"])[lesion]) / np.median(arr(image)[arr(liver) > 0])
    assert lesion.sum() > 20 and 1.2 < ratio < 2.0, ratio


def test_one_lesion_in_aligned_phases_with_each_phase_its_own_appearance(small_multiphase):
    """HCC into the four phases of a case (on the reference grid): same place, arterial wash-in, portal
    and delayed wash-out."""
    portal = read_image(small_multiphase / "portal.nii.gz")
    truth = read_image(small_multiphase / "label_portal.nii.gz", label=True)
    images = {"portal": portal}
    for phase in ("nc", "arterial", "delayed"):
        transform = sitk.ReadTransform(str(small_multiphase / f"truth_transform_{phase}.h5"))
        images[phase] = sitk.Resample(read_image(small_multiphase / f"{phase}.nii.gz"), portal, transform)
    liver = truth == 1
    done = insert(images, liver, "hcc", diameter_mm=30.0, seed=7)
    lesion, liver_a = arr(done.label) == TUMOR, arr(liver) > 0
    core = ndimage.binary_erosion(lesion)  # without the capsule and the partial-volume rim
    mean = {p: (arr(done.images[p])[core].mean(), arr(images[p])[liver_a].mean()) for p in images}
    assert mean["arterial"][0] > mean["arterial"][1] + 20
    assert mean["portal"][0] < mean["portal"][1] - 10 and mean["delayed"][0] < mean["delayed"][1] - 5
    changed = {p: np.argwhere(arr(done.images[p]) != arr(images[p]).astype(np.float32)).mean(0) for p in images}
    for p in images:
        np.testing.assert_allclose(changed[p], changed["portal"], atol=1.5)


def test_same_seed_same_lesion(real_ct):
    image, liver = real_ct
    a, b = (insert({"nc": image}, liver, seed=9) for _ in range(2))
    assert (a.kind, a.center_lps, a.diameter_mm) == (b.kind, b.center_lps, b.diameter_mm)
    np.testing.assert_array_equal(arr(a.images["nc"]), arr(b.images["nc"]))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liverfusion", *args], capture_output=True, text=True)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_command_writes_a_training_case_and_leaves_the_inputs_alone(real_data, tmp_path):
    folder = real_data / "totalsegmentator_examples"
    ct, mask = folder / "example_ct_sm.nii.gz", folder / "example_seg_fast_liver.nii.gz"
    before = digest(ct)
    done = run("synth-tumor", "--input", f"nc={ct}", "--liver", str(mask), "--out", str(tmp_path / "out"),
               "--type", "metastasis", "--diameter-mm", "25", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert digest(ct) == before
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"nc.nii.gz", "label.nii.gz", "case.json"}
    info = json.loads((tmp_path / "out" / "case.json").read_text(encoding="utf-8"))
    assert info["malignant"] is True and info["synthetic_lesion"]["type"] == "metastasis"
    assert info["warnings"] == [] and "warning" not in done.stdout  # a CT in Hounsfield units
    case = load_case(tmp_path / "out", (3.0, 3.0, 3.0))  # the trainer reads it like a phantom case
    assert (case["label"] == TUMOR).any() and case["present"].sum() == 1 and case["malignant"] == 1.0


def test_command_refuses_a_centre_outside_the_liver_and_writes_nothing(real_data, tmp_path):
    folder = real_data / "totalsegmentator_examples"
    done = run("synth-tumor", "--input", f"nc={folder / 'example_ct_sm.nii.gz'}", "--liver",
               str(folder / "example_seg_fast_liver.nii.gz"), "--out", str(tmp_path / "out"),
               "--center-lps", "0,0,0")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "not inside the liver mask" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_command_refuses_a_label_map_as_the_image(real_data, tmp_path):
    mask = real_data / "totalsegmentator_examples" / "example_seg_fast_liver.nii.gz"
    done = run("synth-tumor", "--input", f"nc={mask}", "--liver", str(mask), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "a label map, not a scan" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_real_tumours_of_a_labelled_scan_stay_tumour_beside_the_synthetic_one(real_ct):
    ct, liver = real_ct
    labels = sitk.Cast(liver, sitk.sitkUInt8)
    array = arr(labels)
    z, y, x = np.argwhere(array > 0)[len(np.argwhere(array > 0)) // 2]
    array[z - 1 : z + 2, y - 2 : y + 3, x - 2 : x + 3] = TUMOR  # a real lesion drawn by a radiologist
    real = sitk.GetImageFromArray(array)
    real.CopyInformation(labels)
    done = insert({"nc": ct}, real == 1, "cyst", None, 15, seed=3, tumors=real == TUMOR)
    out = arr(done.label)
    assert (out[array == TUMOR] == TUMOR).all()
    assert (out == TUMOR).sum() > (array == TUMOR).sum()  # and the synthetic cyst beside it
    without = arr(insert({"nc": ct}, real == 1, "cyst", None, 15, seed=3).label)
    assert (without[array == TUMOR] == 0).all()  # not liver either: outside the parenchyma mask
