"""The default path (deformable, liver-focused alignment) through the in-memory API the Slicer Logic uses."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.errors import RoleError
from liverfusion.evaluation.held_out import evaluate_case
from liverfusion.evaluation.metrics import dice
from liverfusion.inference.device import pick_device
from liverfusion.inference.pipeline import align_all, liver_focus, read_inputs, run_case, segment_aligned
from liverfusion.io.images import read_image
from liverfusion.models import store as model_store
from liverfusion.registration.align import resample_to
from liverfusion.training.dataset import case_reference, load_case


def test_liver_focus_covers_the_liver_from_the_reference_alone(small_ctmri):
    ct = read_image(small_ctmri / "ct.nii.gz")
    focus = liver_focus(ct, "ct", model_store.load_model(None), pick_device("cpu"))
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
    from liverfusion.inference.pipeline import _argmax_labels

    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=(20, 30, 40)).transpose(3, 0, 1, 2).astype(np.float32)
    probs[:, 0, 0, :2] = [[0.4, 0.3], [0.4, 0.4], [0.2, 0.3]]  # ties resolve to the lower class, as argmax does
    np.testing.assert_array_equal(_argmax_labels(probs[1], probs[2]), np.argmax(probs, 0))


def test_segment_aligned_runs_the_network_on_the_inputs_it_is_told_to_use(small_ctmri):
    images = read_inputs({r: str(small_ctmri / f"{r}.nii.gz") for r in ("ct", "mri")})
    regs = align_all(images, "ct", "rigid", lambda *_: None)
    model, device = model_store.load_model(None), pick_device("cpu")
    both = segment_aligned(images, "ct", regs, model, device)
    ct_only = segment_aligned(images, "ct", regs, model, device, use={"ct"})
    mri_only = segment_aligned(images, "ct", regs, model, device, use={"mri"})
    for result in (both, ct_only, mri_only):
        assert result["labels"].GetSize() == images["ct"].GetSize()  # always on the reference grid
    assert sitk.GetArrayViewFromImage(ct_only["fusion"]["mri"]).max() == 0 and not ct_only["aligned"]
    assert sitk.GetArrayViewFromImage(mri_only["fusion"]["ct"]).max() == 0 and set(mri_only["aligned"]) == {"mri"}
    assert sitk.GetArrayViewFromImage(both["fusion"]["mri"]).max() > 0
    truth = sitk.GetArrayFromImage(read_image(small_ctmri / "label_ct.nii.gz", label=True)) >= 1
    for result in (ct_only, mri_only):
        assert dice(sitk.GetArrayFromImage(result["labels"]) >= 1, truth) > 0.7  # one input still segments


def test_post_processing_in_the_liver_box_equals_the_whole_grid():
    """Labels, lesions and probability from the box around the foreground equal those of the whole reference grid
    (an oblique, anisotropic reference, so the box's corners really are mapped)."""
    from liverfusion.inference import postprocess
    from liverfusion.inference.pipeline import _argmax_labels, _on_reference, _postprocess
    from liverfusion.models.interface import Prediction

    grid = sitk.Image([40, 40, 30], sitk.sitkUInt8)
    grid.SetSpacing((3.0, 3.0, 3.0))
    reference = sitk.Image([100, 90, 40], sitk.sitkFloat32)
    reference.SetSpacing((1.3, 1.3, 2.5))
    reference.SetOrigin((5.0, 3.0, 2.0))
    reference.SetDirection(sitk.Euler3DTransform((0, 0, 0), 0.05, -0.03, 0.1).GetMatrix())
    zz, yy, xx = np.mgrid[:30, :40, :40]
    liver = ((zz - 15) ** 2 / 64 + (yy - 20) ** 2 / 100 + (xx - 18) ** 2 / 81 < 1).astype(np.float32)
    tumor = liver * ((zz - 15) ** 2 + (yy - 22) ** 2 + (xx - 20) ** 2 < 9)
    probabilities = np.stack([1 - liver, liver - tumor, tumor]).astype(np.float32)
    logits = np.where(tumor > 0, 2.0, -1.0).astype(np.float32)
    pred = Prediction(probabilities, logits, np.ones((5, 30, 40, 40), np.float32))
    out = _postprocess(pred, grid, {"ct": reference}, "ct", {})
    whole = [sitk.GetArrayFromImage(_on_reference(p, grid, reference)) for p in probabilities[1:]]
    expected = sitk.GetImageFromArray(_argmax_labels(*whole))
    expected.CopyInformation(reference)
    expected = postprocess.clean_labels(expected)
    assert (sitk.GetArrayViewFromImage(expected) == 2).sum() > 100
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(out["labels"]), sitk.GetArrayViewFromImage(expected))
    whole_logits = _on_reference(logits, grid, reference)
    lesions, lesion_map = postprocess.find_lesions(expected, whole_logits)
    assert len(out["lesions"]) == len(lesions) == 1
    found, whole_grid = out["lesions"][0].as_dict(), lesions[0].as_dict()
    np.testing.assert_allclose(found.pop("centroid_lps_mm"), whole_grid.pop("centroid_lps_mm"), atol=1e-6)
    assert found == whole_grid
    whole_probability = postprocess.case_probability(
        lesions, lesion_map, whole[1], sitk.GetArrayViewFromImage(whole_logits)
    )
    assert out["probability"] == pytest.approx(whole_probability, abs=1e-6)
    assert 0.5 < out["probability"] < lesions[0].malignancy_probability  # the lesion's edge is not sure tumour
    assert out["malignancy_logits"].GetSize() == reference.GetSize() == out["fusion"]["ct"].GetSize()


def test_outputs_take_the_grid_of_the_reference_asked_for(small_multiphase):
    images = read_inputs({r: str(small_multiphase / f"{r}.nii.gz") for r in ("arterial", "delayed")})
    result = run_case(images, "none", "cpu", reference="delayed")
    assert result.reference == "delayed" and result.labels.GetSize() == images["delayed"].GetSize()
    with pytest.raises(RoleError, match="--reference portal: not among the inputs"):
        run_case(images, "none", "cpu", reference="portal")


def test_a_real_export_is_scored_on_its_labelled_phase(small_multiphase, tmp_path):
    """A case folder whose `case.json` names the labelled phase (real exports label one phase) is read, trained
    and scored on that phase's grid, whatever the default reference would be."""
    case = tmp_path / "real_like"
    case.mkdir()
    for role in ("arterial", "delayed"):
        (case / f"{role}.nii.gz").symlink_to(small_multiphase / f"{role}.nii.gz")
    (case / "label_delayed.nii.gz").symlink_to(small_multiphase / "label_portal.nii.gz")
    (case / "case.json").write_text(json.dumps({"labelled": "delayed", "malignant": None}), encoding="utf-8")
    assert case_reference(case) == "delayed"
    row = evaluate_case(case, None, "none", "cpu")
    assert row["liver_dice"] > 0.8 and row["malignant"] is False
    assert np.isnan(load_case(case, (6.0, 6.0, 6.0))["malignant"])  # lesion type not recorded: no rating taught
