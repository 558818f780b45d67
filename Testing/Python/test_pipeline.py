"""The default path (deformable, liver-focused alignment) through the in-memory API the Slicer Logic uses."""

import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion import model_store
from liverfusion.imageio import read_image
from liverfusion.inference import pick_device
from liverfusion.metrics import dice
from liverfusion.pipeline import align_all, liver_focus, read_inputs, run_case, segment_aligned
from liverfusion.registration import resample_to


def test_liver_focus_covers_the_liver_from_the_reference_alone(small_ctmri):
    ct = read_image(small_ctmri / "ct.nii.gz")
    focus = liver_focus(ct, "ct", model_store.load(None), pick_device("cpu"))
    assert focus is not None
    truth = sitk.GetArrayFromImage(read_image(small_ctmri / "label_ct.nii.gz", label=True)) >= 1
    mask = sitk.GetArrayFromImage(sitk.Resample(focus, ct, sitk.Transform(), sitk.sitkNearestNeighbor)) > 0
    assert mask[truth].mean() > 0.95  # the liver is inside the focus
    assert mask.sum() < 4 * truth.sum()  # and the focus is not the whole body


@pytest.mark.slow
def test_default_deformable_run_aligns_at_least_as_well_as_rigid(small_ctmri):
    inputs = {"ct": str(small_ctmri / "ct.nii.gz"), "mri": str(small_ctmri / "mri.nii.gz")}
    images = read_inputs(inputs)
    truth = sitk.GetArrayFromImage(read_image(small_ctmri / "label_ct.nii.gz", label=True)) >= 1
    moving = read_image(small_ctmri / "label_mri.nii.gz", label=True)
    scores = {}
    for mode in ("rigid", "deformable"):
        result = run_case(images, mode, "cpu")
        moved = resample_to(moving, images["ct"], result.registrations["mri"].transform, label=True)
        scores[mode] = dice(sitk.GetArrayFromImage(moved) >= 1, truth)
        assert result.registrations["mri"].jacobian_range[0] > 0
    assert not any("no liver found" in w for w in result.warnings)
    assert scores["deformable"] >= scores["rigid"] - 0.01, scores
    assert scores["deformable"] > 0.9
    assert np.isfinite(result.probability)


def test_labels_from_the_two_foreground_maps_equal_the_argmax_of_all_three():
    from liverfusion.pipeline import _argmax_labels

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=(20, 30, 40)).transpose(3, 0, 1, 2).astype(np.float32)
    probs[:, 0, 0, :2] = [[0.4, 0.3], [0.4, 0.4], [0.2, 0.3]]  # ties resolve to the lower class, as argmax does
    np.testing.assert_array_equal(_argmax_labels(probs[1], probs[2]), np.argmax(probs, 0))


def test_segment_aligned_runs_the_network_on_the_inputs_it_is_told_to_use(small_ctmri):
    images = read_inputs({r: str(small_ctmri / f"{r}.nii.gz") for r in ("ct", "mri")})
    regs = align_all(images, "ct", "rigid", lambda *_: None)
    bundle, device = model_store.load(None), pick_device("cpu")
    both = segment_aligned(images, "ct", regs, bundle, device)
    ct_only = segment_aligned(images, "ct", regs, bundle, device, use={"ct"})
    mri_only = segment_aligned(images, "ct", regs, bundle, device, use={"mri"})
    for result in (both, ct_only, mri_only):
        assert result["labels"].GetSize() == images["ct"].GetSize()  # always on the reference grid
    assert sitk.GetArrayViewFromImage(ct_only["fusion"]["mri"]).max() == 0 and not ct_only["aligned"]
    assert sitk.GetArrayViewFromImage(mri_only["fusion"]["ct"]).max() == 0 and set(mri_only["aligned"]) == {"mri"}
    assert sitk.GetArrayViewFromImage(both["fusion"]["mri"]).max() > 0
    truth = sitk.GetArrayFromImage(read_image(small_ctmri / "label_ct.nii.gz", label=True)) >= 1
    for result in (ct_only, mri_only):
        assert dice(sitk.GetArrayFromImage(result["labels"]) >= 1, truth) > 0.7  # one input still segments
