"""LiverFusionSynth's Logic against real MRML (slicer-core): phantoms into the scene, synthetic lesions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from scipy import ndimage

from liverfusion.errors import LiverFusionError
from liverfusion.io.images import read_image

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "LiverFusionSeg"), str(ROOT / "LiverFusionSynth")]
from LiverFusionSegLib import mrmlio  # noqa: E402
from LiverFusionSegLib.logic import SegLogic  # noqa: E402
from LiverFusionSynthLib.logic import SynthLogic, point_from_markups  # noqa: E402

SEED = 777  # conftest.py's small_ctmri is make_case(..., 777, "ct-mri", small=True)


@pytest.fixture(scope="module")
def phantom():
    scene = slicer.vtkMRMLScene()
    logic = SynthLogic(scene)
    return SimpleNamespace(scene=scene, logic=logic, outputs=logic.generatePhantom(SEED, "ct-mri", small=True))


def voxels(node) -> np.ndarray:
    return mrmlio.array_from_image_data(node.GetImageData())


def deepest_liver_point(phantom, role: str) -> tuple[np.ndarray, sitk.Image, np.ndarray]:
    """RAS of the liver voxel farthest from the liver's edge in this role's image, the image, and the liver."""
    image = mrmlio.image_from_volume(phantom.outputs["volumes"][role])
    liver = mrmlio.segment_mask(phantom.outputs["truth"], "Liver", image)
    depth = ndimage.distance_transform_edt(liver, sampling=image.GetSpacing()[::-1])
    k, j, i = np.unravel_index(np.argmax(depth), depth.shape)
    lps = np.array(image.TransformIndexToPhysicalPoint([int(i), int(j), int(k)]))
    return mrmlio.FLIP @ lps, image, liver


def test_phantom_volumes_and_truth_are_the_core_phantom(phantom, small_ctmri):
    volumes, truth = phantom.outputs["volumes"], phantom.outputs["truth"]
    assert {role: node.GetName() for role, node in volumes.items()} == {"ct": f"phantom {SEED} ct",
                                                                         "mri": f"phantom {SEED} mri"}
    for role, node in volumes.items():
        expected = read_image(small_ctmri / f"{role}.nii.gz")
        ours = mrmlio.image_from_volume(node)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(expected))
        np.testing.assert_allclose(ours.GetOrigin(), expected.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(ours.GetDirection(), expected.GetDirection(), atol=1e-6)
    label = read_image(small_ctmri / "label_ct.nii.gz", label=True)
    labels = SegLogic(phantom.scene).labelsFromSegmentation(truth, label)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(label))
    case = json.loads(truth.GetAttribute("LiverFusion.PhantomCase"))
    assert case["seed"] == SEED and case["reference"] == "ct" == phantom.outputs["case"]["reference"]


def test_phantom_volumes_are_offered_to_liverfusion_seg(phantom):
    found = SegLogic(phantom.scene).detectRoles()
    assert found == phantom.outputs["volumes"]


def test_cyst_goes_into_a_copy_inside_the_liver(phantom):
    ct = phantom.outputs["volumes"]["ct"]
    original = voxels(ct).copy()
    count = phantom.scene.GetNumberOfNodes()
    center, image, liver = deepest_liver_point(phantom, "ct")

    out = phantom.logic.insertLesion(ct, phantom.outputs["truth"], center, "cyst", 30.0, "ct", seed=1)

    np.testing.assert_array_equal(voxels(ct), original)
    assert out["volume"] is not ct and out["volume"].GetName() == f"phantom {SEED} ct + cyst 30 mm"
    assert phantom.scene.GetNumberOfNodes() > count
    painted = voxels(out["volume"])
    mask = mrmlio.segment_mask(out["truth"], "Synthetic cyst", image)
    assert mask.sum() == out["voxels"] > 0
    assert not (mask & ~liver).any()
    assert painted[mask].mean() < original[mask].mean() - 50  # water (~8 HU) in an enhanced liver (~110 HU)
    near = ndimage.binary_dilation(mask, iterations=2)
    np.testing.assert_array_equal(painted[~near], original[~near])
    volume_mm3 = mask.sum() * np.prod(image.GetSpacing())
    assert 0.6 * 30 < (6 * volume_mm3 / np.pi) ** (1 / 3) < 1.3 * 30  # equivalent-sphere diameter
    lps = mrmlio.FLIP @ center
    centroid = ndimage.center_of_mass(mask)[::-1]
    np.testing.assert_allclose(image.TransformContinuousIndexToPhysicalPoint(centroid), lps, atol=8.0)


def test_hcc_in_mri_is_scaled_to_the_liver_signal(phantom):
    mri = phantom.outputs["volumes"]["mri"]
    center, image, liver = deepest_liver_point(phantom, "mri")
    out = phantom.logic.insertLesion(mri, phantom.outputs["truth"], center, "hcc", 30.0, "mri")
    painted = voxels(out["volume"])
    mask = mrmlio.segment_mask(out["truth"], "Synthetic hcc", image)
    ratio = np.median(painted[mask]) / np.median(voxels(mri)[liver])
    assert 1.2 < ratio < 2.0  # HCC is moderately T2-bright: about 0.5 against the liver's 0.33


def test_lesion_requests_that_cannot_be_honoured_are_refused(phantom):
    ct, truth = phantom.outputs["volumes"]["ct"], phantom.outputs["truth"]
    center, image, _ = deepest_liver_point(phantom, "ct")
    corner = mrmlio.FLIP @ np.array(image.TransformIndexToPhysicalPoint([0, 0, 0]))
    cases = [((ct, truth, corner, "cyst", 20.0, "ct"), "not inside the liver"),
             ((ct, truth, center + [0, 0, 5000], "cyst", 20.0, "ct"), "outside the volume"),
             ((ct, truth, center, "melanoma", 20.0, "ct"), "unknown lesion type"),
             ((ct, truth, center, "cyst", 20.0, "pet"), "unknown image role"),
             ((ct, truth, center, "cyst", 0.5, "ct"), "between 5 and 80 mm"),
             ((ct, None, center, "cyst", 20.0, "ct"), "choose a segmentation")]
    count = phantom.scene.GetNumberOfNodes()
    for arguments, message in cases:
        with pytest.raises(LiverFusionError, match=message):
            phantom.logic.insertLesion(*arguments)
    assert phantom.scene.GetNumberOfNodes() == count


def test_lesion_needs_a_liver_segment(phantom):
    empty = phantom.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "no liver")
    center, _, _ = deepest_liver_point(phantom, "ct")
    with pytest.raises(LiverFusionError, match="no segment named Liver"):
        phantom.logic.insertLesion(phantom.outputs["volumes"]["ct"], empty, center, "cyst", 20.0)


def test_point_from_markups_uses_the_first_point_in_world_coordinates():
    scene = slicer.vtkMRMLScene()
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    with pytest.raises(LiverFusionError, match="place a point"):
        point_from_markups(points)
    points.AddControlPoint(vtk.vtkVector3d(-12.5, 30.0, 41.0))
    points.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0))
    assert point_from_markups(points) == pytest.approx((-12.5, 30.0, 41.0))
    shift = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    move = np.eye(4)
    move[:3, 3] = (10.0, -5.0, 2.0)
    shift.SetMatrixTransformToParent(mrmlio.vtk_matrix_from_array(move))
    points.SetAndObserveTransformNodeID(shift.GetID())
    assert point_from_markups(points) == pytest.approx((-2.5, 25.0, 43.0))


def test_unknown_protocol_is_refused():
    with pytest.raises(LiverFusionError, match="unknown protocol"):
        SynthLogic(slicer.vtkMRMLScene()).generatePhantom(1, "pet-ct")


def test_without_a_point_the_lesion_goes_at_random_into_copies_of_every_aligned_volume(phantom):
    """Two volumes on one grid (the CT and a copy of it standing in for an aligned arterial phase)."""
    ct = phantom.outputs["volumes"]["ct"]
    arterial = mrmlio.add_volume(phantom.scene, mrmlio.image_from_volume(ct), "arterial copy", output=False)
    original = voxels(ct).copy()
    out = phantom.logic.insertLesion({"portal": ct, "arterial": arterial}, phantom.outputs["truth"], None,
                                     "hcc", 25.0, seed=3)
    assert set(out["volumes"]) == {"portal", "arterial"} and out["voxels"] > 0
    np.testing.assert_array_equal(voxels(ct), original)
    image = mrmlio.image_from_volume(ct)
    mask = mrmlio.segment_mask(out["truth"], "Synthetic hcc", image)
    liver = mrmlio.segment_mask(phantom.outputs["truth"], "Liver", image)
    assert mask.sum() == out["voxels"] and not (mask & ~liver).any()
    portal, arterial_painted = voxels(out["volumes"]["portal"]), voxels(out["volumes"]["arterial"])
    assert arterial_painted[mask].mean() > portal[mask].mean() + 30  # HCC: arterial wash-in, portal wash-out


def test_preview_shows_the_original_and_the_copy_side_by_side_in_linked_views(phantom):
    scene = phantom.scene
    layout = scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    views = {}
    for name in ("Red", "Yellow", "Green"):
        views[name] = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        views[name].SetSingletonTag(name)
    ct = phantom.outputs["volumes"]["ct"]
    out = phantom.logic.insertLesion(ct, phantom.outputs["truth"], None, "cyst", 15.0, seed=1)
    phantom.logic.showSideBySide(ct, out["volume"])
    assert layout.GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView
    assert views["Red"].GetBackgroundVolumeID() == ct.GetID()
    assert views["Yellow"].GetBackgroundVolumeID() == out["volume"].GetID()
    assert views["Red"].GetLinkedControl() and views["Yellow"].GetLinkedControl()
    assert views["Green"].GetBackgroundVolumeID() is None  # a view the layout does not show is left alone


def test_lesion_targets_add_the_other_phases_by_name_only_when_asked(phantom):
    ct, mri = phantom.outputs["volumes"]["ct"], phantom.outputs["volumes"]["mri"]
    assert phantom.logic.lesionTargets(ct, "ct") == {"ct": ct}
    targets = phantom.logic.lesionTargets(ct, "portal", allPhases=True)
    assert targets["portal"] is ct and targets["mri"] is mri
    assert "ct" not in targets  # the portal-venous CT is one channel, whatever its name
    phantom.logic.insertLesion(ct, phantom.outputs["truth"], None, "cyst", 12.0, seed=2)
    assert phantom.logic.lesionTargets(mri, "mri", allPhases=True)["ct"] is ct  # the original, not a later copy


def test_ct_to_mri_preview_is_a_new_volume_on_the_ct_grid_that_is_never_offered_as_an_input(phantom):
    ct = phantom.outputs["volumes"]["ct"]
    before = voxels(ct).copy()
    reports = []
    mri = phantom.logic.translateToMri(ct, "cpu", lambda f, s: reports.append(f))
    assert mri is not ct and "MRI (translated)" in mri.GetName()
    assert voxels(mri).shape == voxels(ct).shape and np.array_equal(voxels(ct), before)
    ras = [vtk.vtkMatrix4x4() for _ in range(2)]
    ct.GetIJKToRASMatrix(ras[0])
    mri.GetIJKToRASMatrix(ras[1])
    assert all(ras[0].GetElement(i, j) == ras[1].GetElement(i, j) for i in range(4) for j in range(4))
    assert reports == sorted(reports) and reports[-1] == 1.0
    assert mri not in SegLogic(phantom.scene).detectRoles().values()
    with pytest.raises(LiverFusionError, match="choose a CT volume"):
        phantom.logic.translateToMri(None)
