"""LiverFusionSeg's Logic against real MRML (slicer-core): geometry, role detection, outputs, Re-classify.

The main run uses the shipped default model, so that its lesions are real ones that post-processing keeps (a
random network's "lesions" sit anywhere, and the rule that drops tumour outside the liver rightly drops them). The
cancel and translation tests use a tiny random-weight bundle written to a temporary folder: they check what the
Logic does with the core's results (nodes, geometry, untouched inputs), and a tiny network keeps each to seconds.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import slicerio
import torch
import vtk

from liverfusion.constants import LABEL_COLORS, LIVER, TUMOR
from liverfusion.errors import Cancelled, LiverFusionError
from liverfusion.inference.postprocess import sigmoid
from liverfusion.io.segnrrd import TERMINOLOGY
from liverfusion.models import store as model_store
from liverfusion.networks.fusion import FusionNet

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "LiverFusionSeg"))
from LiverFusionSegLib import detect, logic, mrmlio  # noqa: E402
from LiverFusionSegLib.job import BackgroundJob  # noqa: E402

BATCH = ROOT / "LiverFusionSeg" / "Resources" / "Scripts" / "batch.py"


def tiny_bundle(folder: Path) -> str:
    """A valid bundle (checksummed like the real one) of a 4-level network with random weights."""
    torch.manual_seed(0)
    config = {"network": {"features": [4, 8, 16, 32]}, "spacing_mm": [12.0, 12.0, 12.0], "roi_size": [32, 32, 32]}
    model_store.save(folder, FusionNet(features=(4, 8, 16, 32)), config, {"name": "tiny", "version": "0"}, "test\n")
    return str(folder)


def load_with_slicer_reader(scene, path: Path, name: str):
    """Load a file the way Slicer does (its own ITK-based storage node), independent of our converter."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def matrix(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return mrmlio.array_from_vtk_matrix(m)


def voxels(node) -> np.ndarray:
    return mrmlio.array_from_image_data(node.GetImageData())


def checksum(node) -> str:
    return hashlib.sha256(voxels(node).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def case(small_ctmri) -> Path:
    """The session's small CT+MRI phantom (conftest.py)."""
    return small_ctmri


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return tiny_bundle(tmp_path_factory.mktemp("model") / "tiny")


def new_scene_with_case(case: Path):
    scene = slicer.vtkMRMLScene()
    volumes = {role: load_with_slicer_reader(scene, case / f"{role}.nii.gz", role) for role in ("ct", "mri")}
    return scene, volumes


@pytest.fixture(scope="module")
def run(case):
    """One run, split into the three steps the widget uses, keeping the core's result to compare with.

    Alignment "none" still yields an aligned copy and a transform for the MRI (identity), and keeps this
    fixture independent of registration, which the core's own tests cover."""
    scene, volumes = new_scene_with_case(case)
    before = {"ids": {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())},
              "checksums": {r: checksum(n) for r, n in volumes.items()},
              "matrices": {r: matrix(n) for r, n in volumes.items()}}
    seg = logic.SegLogic(scene)
    reports = []
    images = seg.readInputs(volumes)
    result = seg.compute(images, "none", "cpu", model_store.DEFAULT_MODEL, lambda f, s: reports.append((f, s)))
    outputs = seg.publish(result, volumes)
    return SimpleNamespace(scene=scene, volumes=volumes, logic=seg, result=result, outputs=outputs,
                           before=before, reports=reports)


# Geometry


def oblique_image() -> sitk.Image:
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(0.1, -0.2, 0.3)
    image.SetDirection(rotation.GetMatrix())
    image.SetOrigin((10.0, 20.0, 30.0))
    image.SetSpacing((0.7, 1.1, 2.5))
    return image


def test_geometry_round_trip_keeps_origin_spacing_direction_and_voxels():
    scene = slicer.vtkMRMLScene()
    image = oblique_image()
    node = mrmlio.add_volume(scene, image, "oblique")
    back = mrmlio.image_from_volume(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert back.GetPixelID() == sitk.sitkInt16
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)


def test_geometry_is_ras_in_slicer_and_lps_in_itk():
    scene = slicer.vtkMRMLScene()
    image = oblique_image()
    node = mrmlio.add_volume(scene, image, "oblique")
    np.testing.assert_allclose(node.GetOrigin(), (-10.0, -20.0, 30.0))
    lps = np.array(image.TransformIndexToPhysicalPoint((3, 2, 1)))
    ras = matrix(node) @ np.array([3, 2, 1, 1.0])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_volume_read_by_slicer_converts_like_itk_reads_the_file(case):
    """Slicer's reader and SimpleITK's must agree through our conversion (the oblique MRI is the hard case)."""
    scene = slicer.vtkMRMLScene()
    node = load_with_slicer_reader(scene, case / "mri.nii.gz", "mri")
    ours, itk = mrmlio.image_from_volume(node), sitk.ReadImage(str(case / "mri.nii.gz"))
    np.testing.assert_allclose(ours.GetOrigin(), itk.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(ours.GetSpacing(), itk.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(ours.GetDirection(), itk.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(itk))


def test_linear_parent_transform_is_included_and_nonlinear_refused():
    scene = slicer.vtkMRMLScene()
    node = mrmlio.add_volume(scene, oblique_image(), "oblique")
    shift = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    move = np.eye(4)
    move[0, 3] = 10.0  # 10 mm towards the patient's right
    shift.SetMatrixTransformToParent(mrmlio.vtk_matrix_from_array(move))
    node.SetAndObserveTransformNodeID(shift.GetID())
    assert mrmlio.image_from_volume(node).GetOrigin()[0] == pytest.approx(0.0)  # L 10 moved 10 mm right
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(LiverFusionError, match="non-linear"):
        mrmlio.image_from_volume(node)


# Role detection


@pytest.mark.parametrize("text, role", [
    ("5: AX T2 HASTE", "mri"), ("MR arterial", "mri"), ("3: Abd Arterial 1.0", "arterial"),
    ("ArterialPhase", "arterial"), ("PV 70s", "ct"), ("Portal venous", "ct"), ("Delayed 3 min", "delayed"),
    ("non-contrast", "nc"), ("NC abdomen", "nc"), ("native", "nc"), ("CT", "ct"), ("phantom 2 portal", "ct"),
    ("partial volume", None), ("Heart", None)])
def test_role_from_text(text, role):
    assert detect.role_from_text(text) == role


def test_detect_roles_skips_labelmaps_hidden_nodes_and_liverfusion_outputs():
    scene = slicer.vtkMRMLScene()
    image = oblique_image()
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "T2 labels")
    mrmlio.update_volume_from_image(label, image)
    mrmlio.add_volume(scene, image, "CT attention")  # a LiverFusion output
    hidden = mrmlio.add_volume(scene, image, "arterial", output=False)
    hidden.SetHideFromEditors(True)
    names = ["Heart", "5: AX T2 HASTE", "3: Abd Arterial", "PV 70s", "CT", "Delayed", "NC"]
    nodes = {name: mrmlio.add_volume(scene, image, name, output=False) for name in names}
    found = logic.SegLogic(scene).detectRoles()
    assert {role: node.GetName() for role, node in found.items()} == {
        "mri": "5: AX T2 HASTE", "arterial": "3: Abd Arterial", "ct": "PV 70s", "delayed": "Delayed", "nc": "NC"}
    assert found["ct"] is nodes["PV 70s"]


# A run's outputs


def test_segmentation_has_liver_and_tumor_with_colors_terminology_and_the_labels(run):
    segmentation = run.outputs["segmentation"].GetSegmentation()
    assert list(segmentation.GetSegmentIDs()) == ["Liver", "Tumor"]
    for value, segment_id in ((LIVER, "Liver"), (TUMOR, "Tumor")):
        segment = segmentation.GetSegment(segment_id)
        np.testing.assert_allclose(segment.GetColor(), LABEL_COLORS[value], atol=1e-6)
        assert segment.GetTerminology() == TERMINOLOGY[value]
    labels = run.logic.labelsFromSegmentation(run.outputs["segmentation"], run.result.labels)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(run.result.labels))
    assert run.outputs["segmentation"].GetNodeReference(
        slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()) is run.volumes["ct"]


def test_attention_maps_are_heat_volumes_on_the_reference_grid(run):
    attention = run.outputs["attention"]
    np.testing.assert_allclose(voxels(attention), sitk.GetArrayFromImage(run.result.attention))
    np.testing.assert_allclose(matrix(attention), matrix(run.volumes["ct"]), atol=1e-6)
    assert set(run.outputs["attentionByRole"]) == {"ct", "mri"}
    assert run.outputs["attentionByRole"]["mri"].GetName() == "ct attention_mri"
    probability = run.outputs["tumorProbability"]
    assert probability.GetName() == "ct tumor_probability"
    np.testing.assert_allclose(voxels(probability), sitk.GetArrayFromImage(run.result.tumor_probability))
    for node in [attention, probability, *run.outputs["attentionByRole"].values()]:
        colors = node.GetDisplayNode().GetColorNode()
        assert colors.GetName() == "LiverFusion heat" and colors.GetNumberOfColors() == 256
        assert node.GetDisplayNode().GetWindowLevelMin() == 0.0 and node.GetDisplayNode().GetWindowLevelMax() == 1.0
    np.testing.assert_allclose(voxels(run.outputs["attentionByRole"]["mri"]),
                               sitk.GetArrayFromImage(run.result.fusion["mri"]))


def test_moved_input_gets_a_copy_under_its_transform_and_the_original_is_untouched(run):
    assert set(run.outputs["aligned"]) == set(run.outputs["transforms"]) == {"mri"}
    aligned, node = run.outputs["aligned"]["mri"], run.outputs["transforms"]["mri"]
    assert node.GetName() == "mri to ct (none)"
    assert aligned.GetParentTransformNode() is node and run.volumes["mri"].GetParentTransformNode() is None
    np.testing.assert_array_equal(voxels(aligned), voxels(run.volumes["mri"]))
    np.testing.assert_allclose(matrix(aligned), matrix(run.volumes["mri"]), atol=1e-6)
    assert_maps_like_itk(node, run.result.registrations["mri"].transform, POINTS)


def assert_maps_like_itk(node, itk: sitk.Transform, points, atol: float = 1e-6) -> None:
    """The node's 'from parent' transform is ITK's (reference -> moving) expressed in RAS."""
    for ras in points:
        expected = itk.TransformPoint((-ras[0], -ras[1], ras[2]))
        got = node.GetTransformFromParent().TransformPoint(ras)
        np.testing.assert_allclose(got, (-expected[0], -expected[1], expected[2]), atol=atol)


POINTS = ([0.0, 0.0, 0.0], [-40.0, 25.0, 60.0], [80.0, -30.0, -20.0])


def test_transform_node_holds_a_rigid_registration_in_ras():
    euler = sitk.Euler3DTransform((5.0, -20.0, 30.0), 0.1, -0.05, 0.2, (3.0, -7.0, 12.0))
    rigid_like_core = sitk.CompositeTransform([euler])  # what ImageRegistrationMethod hands back
    for itk in (euler, rigid_like_core):
        node = mrmlio.add_registration_transform(slicer.vtkMRMLScene(), itk, "rigid")
        assert_maps_like_itk(node, euler, POINTS)


def test_transform_node_holds_the_whole_deformable_registration():
    """Rigid then B-spline (the core's deformable result): the node moves points as ITK does, bending
    included, so the copy under it shows what the network saw."""
    euler = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, 0.0, 0.3, (10.0, 0.0, -5.0))
    grid = sitk.BSplineTransformInitializer(oblique_image(), [2, 2, 2])
    grid.SetParameters(list(np.random.default_rng(0).uniform(-4.0, 4.0, len(grid.GetParameters()))))
    deformable = sitk.CompositeTransform([euler, grid])
    inside = [list(oblique_image().TransformContinuousIndexToPhysicalPoint(i)) for i in ((3, 2, 1), (5, 4, 3))]
    points = [[-p[0], -p[1], p[2]] for p in inside]
    assert max(np.linalg.norm(np.subtract(deformable.TransformPoint(p), euler.TransformPoint(p))) for p in inside) > 1
    node = mrmlio.add_registration_transform(slicer.vtkMRMLScene(), deformable, "deformable")
    assert_maps_like_itk(node, deformable, points, atol=1e-3)


def test_lesion_table_matches_the_core_lesions_in_ras(run):
    table = run.outputs["lesionTable"]
    assert table.GetNumberOfRows() == len(run.result.lesions)
    assert [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] == [
        "id", "volume_ml", "diameter_mm", "probability", "R", "A", "S"]
    assert table.GetColumnUnitLabel("volume_ml") == "ml"
    columns = {name: table.GetTable().GetColumnByName(name) for name in ("id", "volume_ml", "probability", "R", "S")}
    for row, lesion in enumerate(run.result.lesions):
        assert columns["id"].GetValue(row) == lesion.id
        assert columns["volume_ml"].GetValue(row) == pytest.approx(lesion.volume_ml)
        assert columns["probability"].GetValue(row) == pytest.approx(lesion.malignancy_probability)
        assert columns["R"].GetValue(row) == pytest.approx(-lesion.centroid_lps_mm[0])
        assert columns["S"].GetValue(row) == pytest.approx(lesion.centroid_lps_mm[2])
    assert run.outputs["probability"] == run.result.probability
    assert float(table.GetAttribute(logic.PROBABILITY_ATTRIBUTE)) == pytest.approx(run.result.probability, abs=1e-4)


def test_malignancy_logits_are_stored_hidden_and_referenced(run):
    logits = run.outputs["logits"]
    assert logits.GetHideFromEditors()
    np.testing.assert_allclose(voxels(logits), sitk.GetArrayFromImage(run.result.malignancy_logits))
    segmentation = run.outputs["segmentation"]
    assert segmentation.GetNodeReference(logic.LOGITS_ROLE) is logits
    assert segmentation.GetNodeReference(logic.TABLE_ROLE) is run.outputs["lesionTable"]
    assert run.outputs["summary"]["model"]["name"] == model_store.DEFAULT_MODEL
    assert run.outputs["summary"]["inputs"] == {"ct": "ct", "mri": "mri"}


def test_progress_reports_arrive_in_order(run):
    stages = [stage for _, stage in run.reports]
    assert stages == ["reference alone", "align mri", "infer", "postprocess"]
    fractions = [fraction for fraction, _ in run.reports]
    assert fractions == sorted(fractions)


def test_inputs_are_never_modified(run):
    assert {r: checksum(n) for r, n in run.volumes.items()} == run.before["checksums"]
    for role, node in run.volumes.items():
        np.testing.assert_array_equal(matrix(node), run.before["matrices"][role])
        assert node.GetParentTransformNode() is None and node.GetAttribute(mrmlio.OUTPUT_ATTRIBUTE) is None
        assert node.GetName() == role
    scene = run.scene
    after = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    assert run.before["ids"] <= {node.GetID() for node in after}
    new = [n for n in after if n.GetID() not in run.before["ids"]
           and not n.IsA("vtkMRMLDisplayNode") and not n.IsA("vtkMRMLStorageNode")]
    assert new and all(n.GetAttribute(mrmlio.OUTPUT_ATTRIBUTE) == "1" for n in new)


def test_outputs_are_never_offered_as_inputs(run):
    found = run.logic.detectRoles()
    assert found == {"ct": run.volumes["ct"], "mri": run.volumes["mri"]}


def test_publish_into_a_chosen_segmentation_replaces_its_segments(run):
    chosen = run.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    mrmlio.ensure_segmentation_converters()
    chosen.GetSegmentation().AddEmptySegment("Junk")
    outputs = run.logic.publish(run.result, run.volumes, chosen)
    assert outputs["segmentation"] is chosen
    assert list(chosen.GetSegmentation().GetSegmentIDs()) == ["Liver", "Tumor"]


# Re-classify


def cube_lesion(shape: tuple[int, int, int], size: int = 4) -> tuple[np.ndarray, tuple[slice, ...]]:
    center = [s // 2 for s in shape]
    box = tuple(slice(c - size // 2, c - size // 2 + size) for c in center)
    mask = np.zeros(shape, bool)
    mask[box] = True
    return mask, box


def test_reclassify_after_erasing_tumors_and_painting_a_cube(run):
    outputs = run.logic.publish(run.result, run.volumes)  # a fresh copy to edit
    segmentation, logits = outputs["segmentation"], run.result.malignancy_logits
    logits_array = sitk.GetArrayFromImage(logits)
    cube, box = cube_lesion(logits_array.shape)
    mrmlio.set_segment_mask(segmentation, "Tumor", cube, logits)

    reclassified = run.logic.reclassify(segmentation)

    table = reclassified["lesionTable"]
    assert table is outputs["lesionTable"] and table.GetNumberOfRows() == 1
    column = table.GetTable().GetColumnByName
    voxel_ml = np.prod(logits.GetSpacing()) / 1000
    assert column("volume_ml").GetValue(0) == pytest.approx(64 * voxel_ml)
    center_index = [(s.start + s.stop - 1) / 2 for s in box][::-1]
    lps = logits.TransformContinuousIndexToPhysicalPoint(center_index)
    assert [column(c).GetValue(0) for c in "RAS"] == pytest.approx([-lps[0], -lps[1], lps[2]], abs=1e-3)
    expected = float(sigmoid(logits_array[cube].mean()))
    assert column("probability").GetValue(0) == pytest.approx(expected, abs=1e-5)
    assert reclassified["probability"] == pytest.approx(expected, abs=1e-5)
    assert float(segmentation.GetAttribute(logic.PROBABILITY_ATTRIBUTE)) == pytest.approx(expected, abs=1e-4)

    mrmlio.set_segment_mask(segmentation, "Tumor", np.zeros_like(cube), logits)
    erased = run.logic.reclassify(segmentation)
    assert erased["lesionTable"].GetNumberOfRows() == 0 and erased["probability"] == 0.0


@pytest.mark.slow
def test_a_model_that_does_not_rate_malignancy_publishes_no_rating(real_data):
    """KU Leuven's networks (`pyliverlesionseg`) segment but do not classify: no logits node, NaN probabilities,
    and Re-classify says why it cannot run."""
    scene = slicer.vtkMRMLScene()
    mr = load_with_slicer_reader(scene, real_data / "totalsegmentator_examples" / "example_mr_sm.nii.gz", "mr")
    seg = logic.SegLogic(scene)
    result = seg.compute(seg.readInputs({"mri": mr}), "none", "cpu", "pyliverlesionseg")
    outputs = seg.publish(result, {"mri": mr})
    segmentation, table = outputs["segmentation"], outputs["lesionTable"]
    assert outputs["logits"] is None and outputs["probability"] is None
    assert segmentation.GetNodeReference(logic.LOGITS_ROLE) is None
    assert segmentation.GetAttribute(logic.PROBABILITY_ATTRIBUTE) == "nan"
    assert table.GetNumberOfRows() == len(result.lesions) > 0
    column = table.GetTable().GetColumnByName("probability")
    assert all(np.isnan(column.GetValue(i)) for i in range(table.GetNumberOfRows()))
    assert mrmlio.segment_mask(segmentation, segmentation.GetSegmentation().GetSegmentIdBySegmentName("Liver"),
                               mrmlio.image_from_volume(mr)).any()
    with pytest.raises(LiverFusionError, match="does not rate malignancy"):
        seg.reclassify(segmentation)


def test_reclassify_needs_a_liverfusion_segmentation():
    scene = slicer.vtkMRMLScene()
    plain = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "manual")
    with pytest.raises(LiverFusionError, match="no LiverFusion malignancy map"):
        logic.SegLogic(scene).reclassify(plain)


# Errors and cancellation


def test_read_inputs_rejects_nothing_labelmaps_and_one_node_twice():
    scene = slicer.vtkMRMLScene()
    seg = logic.SegLogic(scene)
    volume = mrmlio.add_volume(scene, oblique_image(), "ct", output=False)
    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    mrmlio.update_volume_from_image(label, oblique_image())
    with pytest.raises(LiverFusionError, match="no input image"):
        seg.readInputs({"ct": None})
    with pytest.raises(LiverFusionError, match="labelmap"):
        seg.readInputs({"ct": label})
    with pytest.raises(LiverFusionError, match="both ct and mri"):
        seg.readInputs({"ct": volume, "mri": volume})
    assert seg.readInputs({"ct": volume})["ct"].GetPixelID() == sitk.sitkFloat32


def test_logic_without_a_scene_outside_slicer_says_so():
    with pytest.raises(LiverFusionError, match="pass scene="):
        logic.SegLogic()


def test_cancelled_process_leaves_the_scene_unchanged(case, model):
    scene, volumes = new_scene_with_case(case)
    count = scene.GetNumberOfNodes()

    def cancel_at_inference(fraction: float, stage: str) -> None:
        if stage == "infer":
            raise Cancelled("cancelled by the user")

    with pytest.raises(Cancelled):
        logic.SegLogic(scene).process(volumes, "none", "cpu", model, report=cancel_at_inference)
    assert scene.GetNumberOfNodes() == count


def test_cancel_in_the_background_job_publishes_nothing(case, model):
    """The widget's path: inputs read first, compute in a job, Cancel, nothing published."""
    scene, volumes = new_scene_with_case(case)
    count = scene.GetNumberOfNodes()
    seg = logic.SegLogic(scene)
    images = seg.readInputs(volumes)
    job = BackgroundJob(lambda report: seg.compute(images, "none", "cpu", model, report))
    job.cancel()
    job.start()
    assert job.wait(60)
    with pytest.raises(Cancelled):
        job.result()
    assert scene.GetNumberOfNodes() == count


def test_environment_lists_the_shipped_model_first_and_names_the_device():
    assert logic.SegLogic.availableModels()[0] == model_store.DEFAULT_MODEL
    assert logic.SegLogic.deviceReport().startswith(("CUDA:", "no GPU:"))


# Display


def test_show_results_and_heatmap_opacity_touch_only_attention_views(run):
    views = [run.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    run.logic.showResults(run.outputs, 0.3)
    for view in views:
        assert view.GetForegroundVolumeID() == run.outputs["attention"].GetID()
        assert view.GetBackgroundVolumeID() == run.volumes["ct"].GetID()
        assert view.GetForegroundOpacity() == pytest.approx(0.3)
    views[2].SetForegroundVolumeID(run.volumes["mri"].GetID())
    run.logic.setHeatmapOpacity(0.8)
    assert [v.GetForegroundOpacity() for v in views] == pytest.approx([0.8, 0.8, 0.3])


def test_heat_map_switch_offers_the_case_map_and_one_per_input(run):
    views = [run.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(2)]
    segmentation = run.outputs["segmentation"]
    maps = run.logic.attentionMaps(segmentation)
    assert list(maps) == ["attention", "tumor_probability", "attention_ct", "attention_mri"]
    assert maps["tumor_probability"] is run.outputs["tumorProbability"]
    assert maps["attention_mri"] is run.outputs["attentionByRole"]["mri"]
    run.logic.showAttention(segmentation, "attention_mri")
    assert all(v.GetForegroundVolumeID() == maps["attention_mri"].GetID() for v in views)
    with pytest.raises(LiverFusionError, match="attention_delayed: no such attention map"):
        run.logic.showAttention(segmentation, "attention_delayed")


def test_clicking_a_lesion_centres_every_slice_view_on_it(run):
    table = run.outputs["lesionTable"]
    assert table.GetNumberOfRows() > 0, "the fixture case has lesions"
    slices = []
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal")):
        node = run.scene.AddNewNodeByClass("vtkMRMLSliceNode")
        node.SetLayoutName(name)
        node.SetOrientation(orientation)
        slices.append(node)
    ras = run.logic.jumpToLesion(table, 0)
    lesion = run.outputs["lesions"][0]
    assert ras == pytest.approx((-lesion.centroid_lps_mm[0], -lesion.centroid_lps_mm[1], lesion.centroid_lps_mm[2]))
    for node in slices:
        centre = [node.GetSliceToRAS().GetElement(i, 3) for i in range(3)]
        assert centre == pytest.approx(ras, abs=1e-3), node.GetName()
    with pytest.raises(LiverFusionError, match="no lesion in row"):
        run.logic.jumpToLesion(table, table.GetNumberOfRows())


# Batch script


@pytest.mark.slow
def test_fill_missing_mri_adds_the_translated_ct_as_a_volume_and_an_attention_map(case, model):
    scene = slicer.vtkMRMLScene()
    ct = load_with_slicer_reader(scene, case / "ct.nii.gz", "ct")
    outputs = logic.SegLogic(scene).process({"ct": ct}, "none", "cpu", model, fillMri=True)
    translated = outputs["translated"]["mri"]
    assert "MRI from CT" in translated.GetName() and voxels(translated).shape == voxels(ct).shape
    assert set(outputs["attentionByRole"]) == {"ct", "mri"}
    assert outputs["summary"]["filled_by_translation"]["mri"]["from"] == "ct"


def test_batch_script_writes_slicer_readable_outputs(case, model, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(BATCH), "--", "--input", f"ct={case / 'ct.nii.gz'}", "--input",
                           f"mri={case / 'mri.nii.gz'}", "--out", str(out), "--align", "none", "--device", "cpu",
                           "--model", model], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert logic.DISCLAIMER in done.stdout
    expected = {"attention.nii.gz", "attention_ct.nii.gz", "attention_mri.nii.gz", "lesions.schema.tsv", "report.html",
                "lesions.tsv", "result.json", "scene.mrb", "segmentation.nii.gz", "segmentation.seg.nrrd"}
    assert expected <= {p.name for p in out.iterdir()}
    scene = load_mrb(out / "scene.mrb", tmp_path / "unpacked")
    segmentation = scene.GetFirstNodeByClass("vtkMRMLSegmentationNode").GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == [
        "Liver", "Tumor"]
    volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
               for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    assert {"ct", "mri"} <= {v.GetName() for v in volumes}
    assert all(v.GetImageData() is not None for v in volumes)  # every volume's data came back from the bundle
    segments = slicerio.read_segmentation(str(out / "segmentation.seg.nrrd"), skip_voxels=True)["segments"]
    assert [(s["name"], s["terminology"]["type"][1]) for s in segments] == [("Liver", "10200004"),
                                                                            ("Tumor", "108369006")]
    summary = json.loads((out / "result.json").read_text(encoding="utf-8"))
    rows = (out / "lesions.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) - 1 == len(summary["lesions"])  # a header line, then one line per lesion
    assert summary["inputs"]["ct"] == str((case / "ct.nii.gz").resolve())


def load_mrb(path, folder):
    """Unpack a scene bundle and read it with its data, as Slicer's scene reader does."""
    with zipfile.ZipFile(path) as bundle:
        bundle.extractall(folder)
    scene = slicer.vtkMRMLScene()
    scene.SetURL(str(next(folder.rglob("*.mrml"))))
    assert scene.Import() == 1
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLStorableNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLStorableNode")
        if node.GetStorageNode() is not None:
            assert node.GetStorageNode().ReadData(node), node.GetName()
    return scene


@pytest.mark.slow
def test_batch_cohort_skips_finished_cases_and_goes_on_after_a_failure(case, model, tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text(f"case_id,ct,mri\ngood,{case / 'ct.nii.gz'},{case / 'mri.nii.gz'}\nbroken,missing.nii.gz,\n",
                     encoding="utf-8")
    command = [sys.executable, str(BATCH), "--cases", str(cases), "--out", str(tmp_path / "out"), "--align", "none",
               "--device", "cpu", "--model", model]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stderr
    assert "broken: error:" in first.stderr and "missing.nii.gz" in first.stderr
    assert (tmp_path / "out" / "good" / "result.json").is_file() and not (tmp_path / "out" / "broken").exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "good: done before, skipped" in second.stdout and second.returncode == 1


def test_batch_script_user_error_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(BATCH), "--input", "liver=x.nii.gz", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: liver: unknown image role "
                                                "(expected one of ct, mri, nc, arterial, portal, delayed)"]
    assert not out.exists()
