"""LiverFusion Synthetic data: phantom cases and synthetic liver lesions for trying and testing LiverFusion.

This file holds what needs Slicer's GUI; the computation is in LiverFusionSynthLib (Qt-free, tested with
pytest). It uses LiverFusionSeg's Lib for MRML conversion, hence the module dependency.
"""

import functools
from typing import Annotated

import numpy as np
import qt
import slicer
import vtk
from LiverFusionSegLib import mrmlio
from LiverFusionSegLib.job import BackgroundJob
from LiverFusionSynthLib.logic import SynthLogic, point_from_markups
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from liverfusion.constants import CT_ROLES, ROLES
from liverfusion.errors import Cancelled
from liverfusion.synthesis.anatomy import BENIGN_TYPES, MALIGNANT_TYPES


class LiverFusionSynth(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LiverFusion Synthetic Data")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["LiverFusionSeg"]
        self.parent.contributors = ["LiverFusion developers"]
        self.parent.helpText = _("""
Generates phantom abdomens (CT + T2 MRI, or four-phase CT) with a known truth segmentation, and paints a
synthetic lesion of a chosen type (HCC, metastasis, cholangiocarcinoma, cyst, haemangioma, FNH) and diameter
into a copy of a volume, inside its liver segment, with the lesion's truth mask. Appearance follows textbook
enhancement patterns; this is a testing and teaching aid, not a validated lesion simulator.
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer and SimpleITK; phantoms come from the LiverFusion core package.
""")


@parameterNodeWrapper
class LiverFusionSynthParameterNode:
    """What the user chose; stored in the scene.

    seed, protocol, smallPhantom - which phantom to generate.
    targetVolume, modality - the volume a lesion goes into (a copy of it) and what kind of image it is.
    liverSegmentation - holds the Liver segment the lesion must stay in.
    lesionPoint - its first control point is the lesion centre (none: a random point deep in the liver).
    lesionType, lesionDiameter - what to paint.
    """

    seed: Annotated[int, WithinRange(0, 100000)] = 0
    protocol: Annotated[str, Choice(["ct-mri", "multiphase"])] = "ct-mri"
    smallPhantom: bool = True
    targetVolume: vtkMRMLScalarVolumeNode
    modality: Annotated[str, Choice(list(ROLES))] = "ct"
    liverSegmentation: vtkMRMLSegmentationNode
    lesionPoint: vtkMRMLMarkupsFiducialNode
    lesionType: Annotated[str, Choice(list(MALIGNANT_TYPES + BENIGN_TYPES))] = "hcc"
    lesionDiameter: Annotated[float, WithinRange(5.0, 80.0)] = 20.0
    allPhases: bool = False


class LiverFusionSynthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: Generate phantom, Insert lesion, CT to MRI preview."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._jobSource = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LiverFusionSynth.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LiverFusionSynthLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.generateButton.connect("clicked(bool)", self.onGenerateButton)
        self.ui.insertButton.connect("clicked(bool)", self.onInsertButton)
        self.ui.translateButton.connect("clicked(bool)", self.onTranslateButton)
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self._pollTranslation)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanInsert)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanInsert)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanInsert)
            self._checkCanInsert()

    def _checkCanInsert(self, caller=None, event=None) -> None:
        p = self._parameterNode
        ready = bool(p and p.targetVolume and p.liverSegmentation)
        self.ui.insertButton.enabled = ready
        self.ui.insertButton.toolTip = (_("Paint the lesion into a copy of the volume, at the point (or at random "
                                          "in the liver without one), and show both side by side") if ready
                                        else _("Choose a volume and a liver segmentation"))
        canTranslate = bool(p and p.targetVolume and p.modality in CT_ROLES)
        self.ui.translateButton.enabled = canTranslate or self._job is not None
        if self._job is None:
            self.ui.translateButton.toolTip = (_("An MRI-like image of this CT on its grid, shown beside it")
                                               if canTranslate else _("Choose a CT volume (modality ct or a phase)"))

    def onGenerateButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not generate the phantom."), waitCursor=True):
            p = self._parameterNode
            outputs = self.logic.generatePhantom(p.seed, p.protocol, p.smallPhantom)
            reference = outputs["volumes"][outputs["case"]["reference"]]
            p.targetVolume = reference
            p.liverSegmentation = outputs["truth"]
            slicer.util.setSliceViewerLayers(background=reference, fit=True)
            lesions = ", ".join(f"{les['type']} {les['diameter_mm']:.0f} mm" for les in outputs["case"]["lesions"])
            self.ui.statusLabel.text = _("Phantom {seed}: lesions {lesions}").format(
                seed=p.seed, lesions=lesions or _("none"))

    def onInsertButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not insert the lesion."), waitCursor=True):
            p = self._parameterNode
            center = point_from_markups(p.lesionPoint) if p.lesionPoint else None  # none: random, in the liver
            volumes = self.logic.lesionTargets(p.targetVolume, p.modality, p.allPhases)
            outputs = self.logic.insertLesion(volumes, p.liverSegmentation, center,
                                              p.lesionType, p.lesionDiameter, p.modality, seed=p.seed)
            self.logic.showSideBySide(p.targetVolume, outputs["volume"])
            self.ui.statusLabel.text = _("Added {name} ({voxels} lesion voxels)").format(
                name=outputs["volume"].GetName(), voxels=outputs["voxels"])


    def onTranslateButton(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.ui.translateButton.enabled = False
            self.ui.statusLabel.text = _("Cancelling after the current slices...")
            return
        with slicer.util.tryWithErrorDisplay(_("Could not translate the volume."), waitCursor=True):
            ct = self._parameterNode.targetVolume
            work = functools.partial(self.logic.computeTranslation, self.logic.translationInput(ct))
            self._jobSource = ct
            self._job = BackgroundJob(lambda report: work(report=report)).start()
            self._setTranslating(True)
            self._timer.start()

    def _setTranslating(self, running: bool) -> None:
        self.ui.translateButton.text = _("Cancel") if running else _("Translate the volume to MRI")
        self.ui.translateProgressBar.value = 0
        self.ui.translateProgressBar.setVisible(running)
        self.ui.insertButton.enabled = not running
        if not running:
            self._checkCanInsert()

    def _pollTranslation(self) -> None:
        """Drain the worker's progress (GUI thread); add the volume once it has finished."""
        for progress in self._job.poll():
            self.ui.translateProgressBar.value = int(round(100 * progress.fraction))
        if not self._job.done:
            return
        self._timer.stop()
        job, ct = self._job, self._jobSource
        self._job = self._jobSource = None
        self._setTranslating(False)
        with slicer.util.tryWithErrorDisplay(_("Could not translate the volume."), waitCursor=True):
            try:
                mri = job.result()
            except Cancelled:
                self.ui.statusLabel.text = _("Cancelled: the scene was not changed.")
                return
            node = self.logic.publishTranslation(mri, ct)
            self.logic.showSideBySide(ct, node)
            self.ui.statusLabel.text = _("Added {name}: a translation, not an acquired MRI").format(name=node.GetName())


class LiverFusionSynthLogic(SynthLogic, ScriptedLoadableModuleLogic):
    """The Slicer module's logic: LiverFusionSynthLib's SynthLogic plus Slicer's parameter node handling.

    This class can be used without GUI widget; it takes its scene explicitly (default: slicer.mrmlScene).
    """

    def __init__(self, scene=None) -> None:
        SynthLogic.__init__(self, scene)

    def getParameterNode(self):
        return LiverFusionSynthParameterNode(super().getParameterNode())


class LiverFusionSynthTest(ScriptedLoadableModuleTest):
    """Generates a phantom and inserts a cyst at the liver's deepest point; checks the copy, not the original."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PhantomAndLesion()

    def test_PhantomAndLesion(self):
        from scipy import ndimage

        self.delayDisplay("Generating a small phantom")
        logic = LiverFusionSynthLogic()
        outputs = logic.generatePhantom(seed=11, protocol="ct-mri", small=True)
        self.assertEqual(set(outputs["volumes"]), {"ct", "mri"})
        ct = outputs["volumes"]["ct"]
        original = slicer.util.arrayFromVolume(ct).copy()

        self.delayDisplay("Inserting a 20 mm cyst")
        image = mrmlio.image_from_volume(ct)
        liver = mrmlio.segment_mask(outputs["truth"], "Liver", image)
        depth = ndimage.distance_transform_edt(liver, sampling=image.GetSpacing()[::-1])
        k, j, i = np.unravel_index(np.argmax(depth), depth.shape)
        center = mrmlio.FLIP @ np.array(image.TransformIndexToPhysicalPoint([int(i), int(j), int(k)]))
        lesion = logic.insertLesion(ct, outputs["truth"], center, "cyst", 20.0, "ct")
        painted = slicer.util.arrayFromVolume(lesion["volume"])
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(lesion["truth"], "Synthetic cyst", ct) > 0
        self.assertGreater(lesion["voxels"], 0)
        self.assertLess(painted[mask].mean(), original[mask].mean() - 50)  # water among enhanced liver
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(ct), original)
        self.delayDisplay("Test passed")
