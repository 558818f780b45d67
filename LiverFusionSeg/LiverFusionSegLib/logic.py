"""LiverFusionSeg's logic: MRML in, the core pipeline, MRML out. Free of Qt, so pytest and batch runs use it.

A run has three steps so that the slow middle one can go to a worker thread: `readInputs` copies the
volumes out of the scene, `compute` runs the core on those copies (no MRML), and `publish` adds the results
as new nodes. A run that fails or is cancelled before `publish` therefore leaves the scene as it was, and
no step ever writes to a node the user loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from liverfusion.constants import LABEL_NAMES, LIVER, TUMOR
from liverfusion.errors import LiverFusionError
from liverfusion.inference import postprocess
from liverfusion.io.roles import check_roles

from . import mrmlio
from .detect import detect_roles

Reporter = Callable[[float, str], None]

# Node reference roles from an output segmentation to what Re-classify and the GUI need later.
LOGITS_ROLE = "liverFusionMalignancyLogits"
TABLE_ROLE = "liverFusionLesionTable"
ATTENTION_ROLE = "liverFusionAttention"
TUMOR_PROBABILITY_ROLE = "liverFusionTumorProbability"
ATTENTION_ATTRIBUTE = "LiverFusion.Attention"
PROBABILITY_ATTRIBUTE = "LiverFusion.MalignancyProbability"
DISCLAIMER = "Research use only: the models are not validated for diagnosis (see each model's card)."

# Lesion table columns: name, VTK array class, unit.
LESION_COLUMNS = (("id", vtk.vtkIntArray, ""), ("volume_ml", vtk.vtkDoubleArray, "ml"),
                  ("diameter_mm", vtk.vtkDoubleArray, "mm"), ("probability", vtk.vtkDoubleArray, ""),
                  ("R", vtk.vtkDoubleArray, "mm"), ("A", vtk.vtkDoubleArray, "mm"), ("S", vtk.vtkDoubleArray, "mm"))


def default_scene() -> slicer.vtkMRMLScene:
    """Slicer's scene; slicer-core alone has none, so code outside Slicer must pass one."""
    scene = getattr(slicer, "mrmlScene", None)
    if scene is None:
        raise LiverFusionError("no MRML scene: outside Slicer, pass scene=slicer.vtkMRMLScene()")
    return scene


def lesion_rows(lesions: list[postprocess.Lesion]) -> list[tuple]:
    """One table row per lesion; the centroid goes from LPS (core) to RAS (what Slicer shows)."""
    return [(les.id, les.volume_ml, les.max_diameter_mm, _number(les.malignancy_probability),
             -les.centroid_lps_mm[0], -les.centroid_lps_mm[1], les.centroid_lps_mm[2]) for les in lesions]


def _number(probability: float | None) -> float:
    """NaN (an empty cell) for a model that does not rate malignancy."""
    return float("nan") if probability is None else probability


def write_lesion_table(table: slicer.vtkMRMLTableNode, lesions: list[postprocess.Lesion],
                       probability: float | None) -> None:
    """Replace the table's content by the lesions; the case probability goes into an attribute."""
    rows = lesion_rows(lesions)
    table.RemoveAllColumns()
    for index, (name, array_class, unit) in enumerate(LESION_COLUMNS):
        array = array_class()
        array.SetName(name)
        for row in rows:
            array.InsertNextValue(row[index])
        table.AddColumn(array)
        table.SetColumnUnitLabel(name, unit)
    table.SetAttribute(PROBABILITY_ATTRIBUTE, f"{_number(probability):.4f}")
    table.Modified()


class SegLogic:
    """Segments the liver and its tumours from the volumes of a MRML scene and rates malignancy.

    This class can be used without GUI widget: in Slicer, in `Slicer --python-script` batches, and
    with slicer-core's MRML under pytest. It takes its scene explicitly (default: Slicer's).
    """

    def __init__(self, scene: slicer.vtkMRMLScene | None = None):
        super().__init__()
        self.scene = scene if scene is not None else default_scene()

    # Inputs

    def volumeNodes(self) -> list[slicer.vtkMRMLScalarVolumeNode]:
        count = self.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
        return [self.scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode") for i in range(count)]

    def detectRoles(self) -> dict[str, slicer.vtkMRMLScalarVolumeNode]:
        """Role -> volume guessed from the names of the scene's volumes (never labelmaps or our outputs)."""
        return detect_roles(self.volumeNodes())

    def readInputs(self, volumesByRole: Mapping[str, slicer.vtkMRMLScalarVolumeNode]) -> dict[str, sitk.Image]:
        """Float32 copies (as the command line reads files) of the chosen volumes, with their geometry."""
        chosen = {role: node for role, node in volumesByRole.items() if node is not None}
        check_roles(chosen)
        seen: dict[str, str] = {}
        for role, node in chosen.items():
            if node.IsA("vtkMRMLLabelMapVolumeNode"):
                raise LiverFusionError(f"{node.GetName()}: is a labelmap, not an image")
            if node.GetID() in seen:
                raise LiverFusionError(f"{node.GetName()}: chosen as both {seen[node.GetID()]} and {role}")
            seen[node.GetID()] = role
        return {role: sitk.Cast(mrmlio.image_from_volume(node), sitk.sitkFloat32) for role, node in chosen.items()}

    # The computation (no MRML: safe in a worker thread)

    @staticmethod
    def compute(images: dict[str, sitk.Image], align: str = "deformable", device: str = "auto",
                model: str | None = None, report: Reporter | None = None,
                names: dict[str, str] | None = None, fillMri: bool = False):
        """Run the core pipeline; imported here so that Slicer can load the module before PyTorch is installed.
        `fillMri`: without an MRI, the reference CT translated to MRI fills the MRI channel."""
        from liverfusion.inference.pipeline import run_case
        from liverfusion.progress import silent
        return run_case(images, align, device, model, report or silent, names, fill_mri=fillMri)

    # Outputs

    def publish(self, result, volumesByRole: Mapping[str, slicer.vtkMRMLScalarVolumeNode],
                outputSegmentation: slicer.vtkMRMLSegmentationNode | None = None) -> dict:
        """Add a run's results to the scene as new nodes (or into `outputSegmentation`)."""
        inputs = {role: node for role, node in volumesByRole.items() if node is not None}
        self._checkStillInScene(inputs.values())
        reference = inputs[result.reference]
        base = reference.GetName()
        segmentation = self._segmentation(result.labels, reference, outputSegmentation)
        attention, probability, by_role = self._heatMaps(result, base)
        logits = (None if result.malignancy_logits is None else
                  mrmlio.add_volume(self.scene, result.malignancy_logits, f"{base} malignancy logits", hidden=True))
        table = mrmlio.mark_output(self.scene.AddNewNodeByClass(
            "vtkMRMLTableNode", self.scene.GenerateUniqueName(f"{base} lesions")))
        write_lesion_table(table, result.lesions, result.probability)
        aligned, transforms = self._aligned(inputs, result.registrations, base)
        translated = {role: mrmlio.add_volume(self.scene, image, f"{base} {role.upper()} from CT (translated)")
                      for role, image in result.translated.items()}
        for i in reversed(range(segmentation.GetNumberOfNodeReferenceRoles())):  # a previous run's inputs
            if segmentation.GetNthNodeReferenceRole(i).startswith(ATTENTION_ROLE + "_"):
                segmentation.RemoveNodeReferenceIDs(segmentation.GetNthNodeReferenceRole(i))
        references = [(LOGITS_ROLE, logits), (TABLE_ROLE, table), (ATTENTION_ROLE, attention),
                      (TUMOR_PROBABILITY_ROLE, probability)]
        references += [(f"{ATTENTION_ROLE}_{role}", node) for role, node in by_role.items()]
        for role, node in references:
            segmentation.SetNodeReferenceID(role, node.GetID() if node is not None else None)
        segmentation.SetAttribute(PROBABILITY_ATTRIBUTE, f"{_number(result.probability):.4f}")
        return {"reference": reference, "segmentation": segmentation, "attention": attention,
                "tumorProbability": probability, "attentionByRole": by_role, "logits": logits, "lesionTable": table,
                "aligned": aligned, "transforms": transforms, "translated": translated, "lesions": result.lesions,
                "probability": result.probability,
                "summary": result.summary({role: node.GetName() for role, node in inputs.items()})}

    def _checkStillInScene(self, nodes) -> None:
        for node in nodes:
            if node.GetScene() is not self.scene:
                raise LiverFusionError(f"{node.GetName()}: was removed from the scene during the run")

    def _segmentation(self, labels: sitk.Image, reference, output) -> slicer.vtkMRMLSegmentationNode:
        if output is None:
            output = mrmlio.add_segmentation(self.scene, labels, f"{reference.GetName()} LiverFusion")
        else:
            if output.GetDisplayNode() is None:
                output.CreateDefaultDisplayNodes()
            mrmlio.fill_segmentation(mrmlio.mark_output(output), labels)
        output.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        return output

    def _heatMaps(self, result, base: str) -> tuple[slicer.vtkMRMLScalarVolumeNode,
                                                      slicer.vtkMRMLScalarVolumeNode, dict]:
        """The case attention map, the tumour probability and one fusion-weight map per input, as heat maps."""
        colors = mrmlio.heat_color_table(self.scene)
        attention = self._heatVolume(result.attention, f"{base} attention", colors)
        probability = self._heatVolume(result.tumor_probability, f"{base} tumor_probability", colors)
        by_role = {role: self._heatVolume(image, f"{base} attention_{role}", colors)
                   for role, image in result.fusion.items()}
        return attention, probability, by_role

    def _heatVolume(self, image: sitk.Image, name: str, colors) -> slicer.vtkMRMLScalarVolumeNode:
        node = mrmlio.add_volume(self.scene, image, name)
        node.SetAttribute(ATTENTION_ATTRIBUTE, "1")
        mrmlio.show_as_heat(node, colors)
        return node

    def _aligned(self, inputs: dict, registrations: dict, base: str) -> tuple[dict, dict]:
        """For every moved input, a transform node with its whole registration and a copy of the input
        placed under it (the original is left where it was)."""
        aligned, transforms = {}, {}
        for role, registration in registrations.items():
            name = inputs[role].GetName()
            transforms[role] = mrmlio.add_registration_transform(
                self.scene, registration.transform, f"{name} to {base} ({registration.mode})")
            aligned[role] = mrmlio.add_aligned_copy(self.scene, inputs[role], transforms[role], f"{name} aligned")
        return aligned, transforms

    # The whole run, and what comes after

    def process(self, volumesByRole: Mapping[str, slicer.vtkMRMLScalarVolumeNode], align: str = "deformable",
                device: str = "auto", model: str | None = None,
                outputSegmentation: slicer.vtkMRMLSegmentationNode | None = None,
                report: Reporter | None = None, fillMri: bool = False) -> dict:
        """Read, compute and publish in the calling thread (batch use, tests); see `publish` for the result."""
        images = self.readInputs(volumesByRole)
        names = {role: node.GetName() for role, node in volumesByRole.items() if node is not None}
        result = self.compute(images, align, device, model, report, names, fillMri)
        return self.publish(result, volumesByRole, outputSegmentation)

    def labelsFromSegmentation(self, segmentationNode: slicer.vtkMRMLSegmentationNode,
                               reference: sitk.Image) -> sitk.Image:
        """A 0/1/2 label image on `reference`'s grid from the Liver and Tumor segments (Tumor wins)."""
        segmentation = segmentationNode.GetSegmentation()
        labels = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
        for value in (LIVER, TUMOR):
            segment_id = segmentation.GetSegmentIdBySegmentName(LABEL_NAMES[value])
            if not segment_id:
                if value == TUMOR:
                    raise LiverFusionError(f"{segmentationNode.GetName()}: has no segment named Tumor")
                continue
            labels[mrmlio.segment_mask(segmentationNode, segment_id, reference)] = value
        image = sitk.GetImageFromArray(labels)
        image.CopyInformation(reference)
        return image

    def reclassify(self, segmentationNode: slicer.vtkMRMLSegmentationNode) -> dict:
        """Lesions and probabilities again from an edited Tumor segment and the stored malignancy logits.

        No network runs: the logits map of the original run is pooled over the lesions as they are now,
        so a lesion the user drew, split or erased gets its own probability in a second.
        """
        logits_node = segmentationNode.GetNodeReference(LOGITS_ROLE)
        if logits_node is None:
            raise LiverFusionError(f"{segmentationNode.GetName()}: holds no LiverFusion malignancy map (not made "
                                   "by Apply, or by a model that does not rate malignancy)")
        logits = mrmlio.image_from_volume(logits_node)
        labels = self.labelsFromSegmentation(segmentationNode, logits)
        lesions, lesion_map = postprocess.find_lesions(labels, logits)
        tumor = (sitk.GetArrayViewFromImage(labels) == TUMOR).astype(np.float32)
        probability = postprocess.case_probability(lesions, lesion_map, tumor, sitk.GetArrayViewFromImage(logits))
        table = segmentationNode.GetNodeReference(TABLE_ROLE)
        if table is None:
            table = mrmlio.mark_output(self.scene.AddNewNodeByClass(
                "vtkMRMLTableNode", self.scene.GenerateUniqueName(f"{segmentationNode.GetName()} lesions")))
            segmentationNode.SetNodeReferenceID(TABLE_ROLE, table.GetID())
        write_lesion_table(table, lesions, probability)
        segmentationNode.SetAttribute(PROBABILITY_ATTRIBUTE, f"{probability:.4f}")
        return {"lesions": lesions, "probability": probability, "lesionTable": table}

    # Display

    def sliceCompositeNodes(self) -> list[slicer.vtkMRMLSliceCompositeNode]:
        count = self.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")
        return [self.scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode") for i in range(count)]

    def showResults(self, outputs: dict, opacity: float) -> None:
        """Reference in the background, attention heat map in the foreground of every slice view."""
        for composite in self.sliceCompositeNodes():
            composite.SetBackgroundVolumeID(outputs["reference"].GetID())
            composite.SetForegroundVolumeID(outputs["attention"].GetID())
            composite.SetForegroundOpacity(opacity)

    def showAttention(self, segmentationNode: slicer.vtkMRMLSegmentationNode, which: str = "attention") -> None:
        """Switch the slice views' heat map between the case `attention` and one input's `attention_<role>`
        (the maps the run referenced from its segmentation), keeping each view's opacity."""
        maps = self.attentionMaps(segmentationNode)
        if which not in maps:
            raise LiverFusionError(f"{which}: no such attention map for {segmentationNode.GetName()} "
                                   f"(available: {', '.join(maps) or 'none'})")
        for composite in self.sliceCompositeNodes():
            composite.SetForegroundVolumeID(maps[which].GetID())

    @staticmethod
    def attentionMaps(segmentationNode: slicer.vtkMRMLSegmentationNode) -> dict[str, slicer.vtkMRMLScalarVolumeNode]:
        """`attention`, `tumor_probability`, then `attention_<role>` per input, of the run that made this
        segmentation (the names of the files `liverfusion segment` writes)."""
        maps = {"attention": segmentationNode.GetNodeReference(ATTENTION_ROLE),
                "tumor_probability": segmentationNode.GetNodeReference(TUMOR_PROBABILITY_ROLE)}
        for i in range(segmentationNode.GetNumberOfNodeReferenceRoles()):
            role = segmentationNode.GetNthNodeReferenceRole(i)
            if role.startswith(ATTENTION_ROLE + "_"):
                maps["attention_" + role[len(ATTENTION_ROLE) + 1:]] = segmentationNode.GetNodeReference(role)
        return {name: node for name, node in maps.items() if node is not None}

    def jumpToLesion(self, table: slicer.vtkMRMLTableNode, row: int) -> tuple[float, float, float]:
        """Centre every slice view on the lesion of a table row (its RAS centroid); returns that point."""
        if not 0 <= row < table.GetNumberOfRows():
            raise LiverFusionError(f"{table.GetName()}: no lesion in row {row + 1}")
        ras = tuple(float(table.GetTable().GetColumnByName(axis).GetValue(row)) for axis in "RAS")
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.scene, *ras, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        return ras

    def setHeatmapOpacity(self, opacity: float) -> None:
        """Change the opacity of views whose foreground is a LiverFusion attention map, leaving others alone."""
        for composite in self.sliceCompositeNodes():
            foreground = self.scene.GetNodeByID(composite.GetForegroundVolumeID() or "")
            if foreground is not None and foreground.GetAttribute(ATTENTION_ATTRIBUTE):
                composite.SetForegroundOpacity(opacity)

    # Environment

    @staticmethod
    def availableModels() -> list[str]:
        """Segmentation model bundles shipped under Resources/Models (the first is the default)."""
        from liverfusion.models.store import available
        return available()

    @staticmethod
    def deviceReport() -> str:
        from liverfusion.inference.device import device_report
        return device_report()
