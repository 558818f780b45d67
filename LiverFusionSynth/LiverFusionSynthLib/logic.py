"""LiverFusionSynth's logic: phantom cases and synthetic lesions as MRML nodes. Free of Qt.

Phantoms give a user (or a test) a case whose truth is known without any patient data; an inserted
lesion of a chosen type and size shows what the model makes of it. Every result is a new node: the
volume a lesion goes into is copied, never edited.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
from LiverFusionSegLib import mrmlio
from LiverFusionSegLib.detect import detect_roles
from LiverFusionSegLib.logic import default_scene

from liverfusion.constants import ROLE_TO_CHANNEL, TUMOR
from liverfusion.errors import LiverFusionError
from liverfusion.io.images import read_image
from liverfusion.progress import Reporter, silent
from liverfusion.synthesis import tumor as synth_tumor
from liverfusion.synthesis.phantom import PROTOCOLS, make_case

CASE_ATTRIBUTE = "LiverFusion.PhantomCase"


def point_from_markups(markups: slicer.vtkMRMLMarkupsNode) -> tuple[float, float, float]:
    """The first control point in world RAS (where the user clicked, parent transforms included)."""
    if markups is None or markups.GetNumberOfControlPoints() < 1:
        raise LiverFusionError("place a point in the liver first (Markups: point list)")
    position = [0.0, 0.0, 0.0]
    markups.GetNthControlPointPositionWorld(0, position)
    return tuple(position)


class SynthLogic:
    """Generates phantom cases and inserts synthetic lesions into a scene.

    This class can be used without GUI widget (Slicer, batch scripts, pytest with slicer-core).
    It takes its scene explicitly (default: Slicer's).
    """

    def __init__(self, scene: slicer.vtkMRMLScene | None = None):
        super().__init__()
        self.scene = scene if scene is not None else default_scene()

    def generatePhantom(self, seed: int = 0, protocol: str = "ct-mri", small: bool = True) -> dict:
        """A phantom case as volumes named `phantom <seed> <role>` (names LiverFusionSeg recognises)
        and a truth segmentation (Liver, Tumor) on the reference image's grid."""
        if protocol not in PROTOCOLS:
            raise LiverFusionError(f"{protocol}: unknown protocol (expected one of {', '.join(PROTOCOLS)})")
        with tempfile.TemporaryDirectory(prefix="liverfusion-phantom-") as tmp:
            folder = Path(tmp) / "case"
            info = make_case(folder, seed, protocol, small)
            images = {role: read_image(folder / f"{role}.nii.gz") for role in PROTOCOLS[protocol]}
            labels = read_image(folder / f"label_{info['reference']}.nii.gz", label=True)
        volumes = {role: mrmlio.add_volume(self.scene, image, f"phantom {seed} {role}", output=False)
                   for role, image in images.items()}
        truth = mrmlio.add_segmentation(self.scene, labels, f"phantom {seed} truth")
        truth.SetReferenceImageGeometryParameterFromVolumeNode(volumes[info["reference"]])
        truth.SetAttribute(CASE_ATTRIBUTE, json.dumps(info))
        return {"volumes": volumes, "truth": truth, "case": info}

    def insertLesion(self, volumes: slicer.vtkMRMLScalarVolumeNode | Mapping[str, slicer.vtkMRMLScalarVolumeNode],
                     liverSegmentation: slicer.vtkMRMLSegmentationNode, centerRAS: Sequence[float] | None,
                     kind: str, diameterMm: float, role: str = "ct", seed: int = 0,
                     liverSegmentName: str = "Liver") -> dict:
        """Copies of the volume (or of several aligned volumes, by role) with one lesion centred at
        `centerRAS` (None: a random point deep in the liver segment), and a segmentation holding the
        lesion's truth. `role` says which phase or modality a single volume is."""
        byRole = dict(volumes) if isinstance(volumes, Mapping) else {role: volumes}
        images = {r: mrmlio.image_from_volume(node) for r, node in byRole.items()}
        firstRole = next(iter(byRole))
        first = images[firstRole]
        liver = self._liverMask(liverSegmentation, liverSegmentName, first)
        center = None
        if centerRAS is not None:
            center = mrmlio.FLIP @ np.asarray(centerRAS, float)
            self._checkInside(first, liver, center, centerRAS)
        mask = sitk.GetImageFromArray(liver.astype(np.uint8))
        mask.CopyInformation(first)
        done = synth_tumor.insert(images, mask, kind, center, diameterMm, seed)
        painted = {r: mrmlio.add_volume(self.scene, image, f"{byRole[r].GetName()} + {kind} {diameterMm:.0f} mm",
                                        output=False) for r, image in done.images.items()}
        lesion = sitk.GetArrayFromImage(done.label) == TUMOR
        truth = mrmlio.mark_output(self.scene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode",
            self.scene.GenerateUniqueName(f"{byRole[firstRole].GetName()} synthetic {kind}")))
        truth.CreateDefaultDisplayNodes()
        mrmlio.ensure_segmentation_converters()
        segment_id = mrmlio.add_label_segment(truth, TUMOR, f"Synthetic {kind}")
        mrmlio.set_segment_mask(truth, segment_id, lesion, done.label)
        truth.SetReferenceImageGeometryParameterFromVolumeNode(painted[firstRole])
        return {"volume": painted[firstRole], "volumes": painted, "truth": truth, "voxels": int(lesion.sum()),
                "centerRAS": tuple(mrmlio.FLIP @ np.array(done.center_lps))}

    # CT -> MRI preview: read in the GUI thread, compute in a worker (no MRML there), publish in the GUI thread

    @staticmethod
    def translationInput(ctVolume: slicer.vtkMRMLScalarVolumeNode) -> sitk.Image:
        if ctVolume is None:
            raise LiverFusionError("choose a CT volume to translate")
        return sitk.Cast(mrmlio.image_from_volume(ctVolume), sitk.sitkFloat32)

    @staticmethod
    def computeTranslation(ct: sitk.Image, device: str = "auto", report: Reporter | None = None) -> sitk.Image:
        """The CT translated to an MRI-like image on its own grid; imported here so that Slicer can load the
        module before PyTorch is installed."""
        from liverfusion.apps.ct2mri.translate import load_translator, translate
        from liverfusion.inference.device import pick_device
        dev = pick_device(device)
        return translate(ct, load_translator(None, dev), dev, report or silent)

    def publishTranslation(self, mri: sitk.Image, ctVolume: slicer.vtkMRMLScalarVolumeNode):
        """A new volume node, on the CT's grid, named so that nobody takes it for an acquired MRI."""
        return mrmlio.add_volume(self.scene, mri, f"{ctVolume.GetName()} MRI (translated)")

    def translateToMri(self, ctVolume: slicer.vtkMRMLScalarVolumeNode, device: str = "auto",
                       report: Reporter | None = None) -> slicer.vtkMRMLScalarVolumeNode:
        """All three steps in the calling thread (batch use, tests)."""
        mri = self.computeTranslation(self.translationInput(ctVolume), device, report)
        return self.publishTranslation(mri, ctVolume)

    def lesionTargets(self, target: slicer.vtkMRMLScalarVolumeNode, role: str,
                      allPhases: bool = False) -> dict[str, slicer.vtkMRMLScalarVolumeNode]:
        """The volumes a lesion goes into, by role: the target first (as `role`), then, with `allPhases`, every
        other volume whose name says another phase or modality (the detection LiverFusionSeg uses)."""
        targets = {role: target}
        if allPhases:
            count = self.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
            others = [self.scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode") for i in range(count)]
            found = detect_roles(n for n in others if n is not target)
            # one image per network channel: `ct` and `portal` are the same channel (the portal-venous CT)
            targets.update({r: n for r, n in found.items() if ROLE_TO_CHANNEL[r] != ROLE_TO_CHANNEL[role]})
        return targets

    def showSideBySide(self, original: slicer.vtkMRMLScalarVolumeNode,
                       edited: slicer.vtkMRMLScalarVolumeNode) -> None:
        """The preview: the side-by-side layout, the original in the Red view and the edited copy in the Yellow
        one, linked so that both show the same slice."""
        layout = self.scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if layout is not None:  # absent only in a scene without Slicer's views (tests)
            layout.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        views = {"Red": original, "Yellow": edited}
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            composite = self.scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
            if composite.GetLayoutName() in views:
                composite.SetBackgroundVolumeID(views[composite.GetLayoutName()].GetID())
                composite.SetLinkedControl(1)

    @staticmethod
    def _liverMask(segmentation: slicer.vtkMRMLSegmentationNode, segmentName: str, image) -> np.ndarray:
        if segmentation is None:
            raise LiverFusionError("choose a segmentation with a liver segment")
        segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(segmentName)
        if not segment_id:
            raise LiverFusionError(f"{segmentation.GetName()}: has no segment named {segmentName}")
        liver = mrmlio.segment_mask(segmentation, segment_id, image)
        if not liver.any():
            raise LiverFusionError(f"{segmentation.GetName()}: segment {segmentName} does not overlap the volume")
        return liver

    @staticmethod
    def _checkInside(image, liver: np.ndarray, center_lps: np.ndarray, center_ras: Sequence[float]) -> None:
        index = np.round(image.TransformPhysicalPointToContinuousIndex(tuple(map(float, center_lps)))).astype(int)
        where = "R {:.1f} A {:.1f} S {:.1f}".format(*center_ras)
        if np.any(index < 0) or np.any(index >= np.array(image.GetSize())):
            raise LiverFusionError(f"point {where} is outside the volume")
        if not liver[index[2], index[1], index[0]]:
            raise LiverFusionError(f"point {where} is not inside the liver segment")
