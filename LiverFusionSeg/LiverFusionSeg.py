"""LiverFusion Segmentation: liver and liver tumour segmentation with malignancy rating from CT and/or MRI.

This file holds what needs Slicer's GUI (module metadata, the widget, the self-test); the computation is
in LiverFusionSegLib, which batch scripts and pytest import without Qt.
"""

import functools
from pathlib import Path
from typing import Annotated

import numpy as np
import qt
import slicer
import vtk
from LiverFusionSegLib import dependencies, mrmlio
from LiverFusionSegLib.job import BackgroundJob
from LiverFusionSegLib.logic import DISCLAIMER, SegLogic
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
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

from liverfusion.errors import Cancelled, LiverFusionError

# Parameter node field of each input role (ct is the portal-venous CT: one network channel for both).
ROLE_FIELDS = {"ct": "ctVolume", "mri": "mriVolume", "nc": "ncVolume", "arterial": "arterialVolume",
               "delayed": "delayedVolume"}
POLL_MS = 100


class LiverFusionSeg(ScriptedLoadableModule):
    """Module metadata shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LiverFusion Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["LiverFusion developers"]
        self.parent.helpText = _("""
Segments the liver and liver tumours from a contrast CT, a T2-weighted MRI, or multiphase CT (any subset),
aligning every image to the portal-venous CT first (rigid, or rigid then deformable). Outputs: a Liver/Tumor
segmentation, heat maps (attention overall and per input, and the tumour probability), aligned copies and
transforms of moved inputs, and a lesion table with volume, diameter, position and malignancy probability. Edit
the Tumor segment and press Re-classify to recompute the table without running the network again.
<br><b>Research use only</b>: the models are not validated for diagnosis (see each model's card).
""")
        self.parent.acknowledgementText = _("""
Built on 3D Slicer, SimpleITK, PyTorch and MONAI. The fusion design follows published multimodal liver
tumour work (attention-based modality fusion, DANet attention, attention-gated U-Net decoders).
""")


@parameterNodeWrapper
class LiverFusionSegParameterNode:
    """What the user chose; stored in the scene so a saved scene restores it.

    ctVolume..delayedVolume - inputs by role (any subset; ct is the portal-venous CT).
    alignment - how moved inputs are aligned to the reference.
    fillMissingMri - without an MRI, feed the network the reference CT translated to MRI.
    device - where the network runs.
    model - model bundle name under Resources/Models (empty: the default).
    heatmapOpacity - foreground opacity of the attention map in slice views.
    outputSegmentation - where Liver/Tumor go (none: a new segmentation).
    """

    ctVolume: vtkMRMLScalarVolumeNode
    mriVolume: vtkMRMLScalarVolumeNode
    ncVolume: vtkMRMLScalarVolumeNode
    arterialVolume: vtkMRMLScalarVolumeNode
    delayedVolume: vtkMRMLScalarVolumeNode
    alignment: Annotated[str, Choice(["deformable", "rigid", "none"])] = "deformable"
    fillMissingMri: bool = False
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    model: str = ""
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    outputSegmentation: vtkMRMLSegmentationNode


class LiverFusionSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel. Apply runs the network in a worker thread and turns into Cancel meanwhile."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._jobTargets = None
        self._environmentError = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LiverFusionSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = LiverFusionSegLogic()
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.connect("timeout()", self._pollJob)
        self.ui.disclaimerLabel.text = DISCLAIMER
        self.ui.installButton.hide()  # shown by _setupEnvironment when something is missing
        self._setupEnvironment()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.detectButton.connect("clicked(bool)", self.onDetectButton)
        self.ui.reclassifyButton.connect("clicked(bool)", self.onReclassifyButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.installButton.connect("clicked(bool)", self.onInstallButton)
        self.ui.attentionComboBox.connect("currentTextChanged(QString)", self.onAttentionChanged)
        self.ui.lesionTableView.connect("clicked(QModelIndex)", self.onLesionClicked)
        self.ui.progressBar.hide()
        self.initializeParameterNode()

    def _setupEnvironment(self) -> None:
        """Models and device need PyTorch and MONAI; without them the panel offers to install them."""
        absent = dependencies.missing()
        if absent:
            self._environmentError = _("Missing in Slicer's Python: {names}").format(names=", ".join(absent))
            self.ui.deviceLabel.text = self._environmentError
            self.ui.installButton.visible = True
            return
        self.ui.modelComboBox.addItems(self.logic.availableModels())
        self.ui.deviceLabel.text = self.logic.deviceReport()

    def onInstallButton(self) -> None:
        """Ask, then install: torch with the PyTorch extension's installer, the rest with pip, with progress."""
        steps = dependencies.install_plan(dependencies.missing())
        if not steps or not slicer.util.confirmOkCancelDisplay(dependencies.describe(steps)):
            return
        progress = slicer.util.createProgressDialog(maximum=len(steps), windowTitle=_("Installing"))
        with slicer.util.tryWithErrorDisplay(_("Installation failed"), waitCursor=True):
            for i, step in enumerate(steps):
                progress.labelText, progress.value = step.requirement, i
                slicer.app.processEvents()
                if step.via == "pytorch-extension":
                    self._installTorch()
                else:
                    slicer.util.pip_install(step.requirement)
            progress.value = len(steps)
            slicer.util.infoDisplay(_("Installed. Restart Slicer to use LiverFusion."))
        progress.close()

    @staticmethod
    def _installTorch() -> None:
        try:
            import PyTorchUtils
        except ImportError:
            message = _("Install the PyTorch extension (Extensions Manager), restart, and try again")
            raise RuntimeError(message) from None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            raise RuntimeError(_("PyTorch could not be installed"))

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._job is not None:
            self._job.cancel()
        if self._timer is not None:
            self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        """A run's inputs are about to disappear: stop it (nothing would be published anyway)."""
        if self._job is not None:
            self._job.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not any(getattr(self._parameterNode, field) for field in ROLE_FIELDS.values()):
            self._applyDetectedRoles()

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._checkCanApply()
        self.logic.setHeatmapOpacity(self._parameterNode.heatmapOpacity)
        if self._parameterNode.model:
            self.ui.modelComboBox.setCurrentText(self._parameterNode.model)

    def _checkCanApply(self) -> None:
        if self._job is not None:
            return
        hasInput = any(self._selectedVolumes().values())
        self.ui.applyButton.enabled = hasInput and self._environmentError is None
        self.ui.applyButton.toolTip = ((self._environmentError or _("Segment liver and tumours")) if hasInput
                                       else _("Select at least one input volume"))

    def _selectedVolumes(self) -> dict:
        return {role: getattr(self._parameterNode, field) for role, field in ROLE_FIELDS.items()
                if getattr(self._parameterNode, field) is not None}

    def _applyDetectedRoles(self) -> dict:
        detected = self.logic.detectRoles()
        for role, field in ROLE_FIELDS.items():
            setattr(self._parameterNode, field, detected.get(role))
        return detected

    def onDetectButton(self) -> None:
        detected = self._applyDetectedRoles()
        found = ", ".join(f"{role}: {node.GetName()}" for role, node in detected.items())
        self.ui.statusLabel.text = _("Detected {found}").format(found=found) if found else _("No role recognised")

    def onModelChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.model = self.ui.modelComboBox.currentText

    # Apply / Cancel

    def onApplyButton(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.ui.applyButton.enabled = False
            self.ui.statusLabel.text = _("Cancelling after the current step...")
            return
        with slicer.util.tryWithErrorDisplay(_("LiverFusion could not start."), waitCursor=True):
            volumes = self._selectedVolumes()
            images = self.logic.readInputs(volumes)
            names = {role: node.GetName() for role, node in volumes.items()}
            parameters = self._parameterNode
            work = functools.partial(self.logic.compute, images, parameters.alignment, parameters.device,
                                     parameters.model or None, names=names, fillMri=parameters.fillMissingMri)
            self._jobTargets = (volumes, parameters.outputSegmentation)
            self._job = BackgroundJob(work).start()
            self._setRunning(True)
            self._timer.start()

    def _setRunning(self, running: bool) -> None:
        self.ui.applyButton.text = _("Cancel") if running else _("Apply")
        self.ui.applyButton.enabled = True
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.settingsCollapsibleButton.enabled = not running
        self.ui.reclassifyButton.enabled = not running
        self.ui.progressBar.value = 0
        self.ui.progressBar.setVisible(running)
        if not running:
            self._checkCanApply()

    def _pollJob(self) -> None:
        """Drain progress from the worker (QTimer, GUI thread); publish once it has finished."""
        for progress in self._job.poll():
            self.ui.progressBar.value = int(round(100 * progress.fraction))
            self.ui.statusLabel.text = progress.stage
        if not self._job.done:
            return
        self._timer.stop()
        job, (volumes, output) = self._job, self._jobTargets
        self._job = self._jobTargets = None
        self._setRunning(False)
        self._finish(job, volumes, output)

    def _finish(self, job: BackgroundJob, volumes: dict, output) -> None:
        with slicer.util.tryWithErrorDisplay(_("LiverFusion failed."), waitCursor=True):
            try:
                result = job.result()
            except Cancelled:
                self.ui.statusLabel.text = _("Cancelled: the scene was not changed.")
                return
            outputs = self.logic.publish(result, volumes, output)
            self._parameterNode.outputSegmentation = outputs["segmentation"]
            self.logic.showResults(outputs, self._parameterNode.heatmapOpacity)
            self._showResults(outputs["probability"], outputs["lesionTable"], result.warnings)

    def onAttentionChanged(self, which: str) -> None:
        segmentation = self._parameterNode.outputSegmentation if self._parameterNode else None
        if which and segmentation is not None:
            with slicer.util.tryWithErrorDisplay(_("Could not show that heat map.")):
                self.logic.showAttention(segmentation, which)

    def onLesionClicked(self, index) -> None:
        table = self.ui.lesionTableView.mrmlTableNode()
        if table is not None:
            with slicer.util.tryWithErrorDisplay(_("Could not show that lesion.")):
                self.logic.jumpToLesion(table, index.row())

    def _showResults(self, probability: float | None, table, warnings: list) -> None:
        segmentation = self._parameterNode.outputSegmentation
        self.ui.attentionComboBox.blockSignals(True)
        self.ui.attentionComboBox.clear()
        self.ui.attentionComboBox.addItems(list(self.logic.attentionMaps(segmentation)) if segmentation else [])
        self.ui.attentionComboBox.blockSignals(False)
        lesions = table.GetNumberOfRows()
        self.ui.probabilityLabel.text = _("Malignancy probability {p}; {n} lesion(s)").format(
            p=_("not rated") if probability is None else f"{probability:.2f}", n=lesions)
        self.ui.lesionTableView.setMRMLTableNode(table)
        self.ui.statusLabel.text = "\n".join([_("Done.")] + [_("Warning: ") + w for w in warnings])

    def onReclassifyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Re-classify failed."), waitCursor=True):
            segmentation = self._parameterNode.outputSegmentation
            if segmentation is None:
                raise LiverFusionError(_("choose the LiverFusion output segmentation first"))
            outputs = self.logic.reclassify(segmentation)
            self._showResults(outputs["probability"], outputs["lesionTable"], [])


class LiverFusionSegLogic(SegLogic, ScriptedLoadableModuleLogic):
    """The Slicer module's logic: LiverFusionSegLib's SegLogic plus Slicer's parameter node handling.

    This class can be used without GUI widget; it takes its scene explicitly (default: slicer.mrmlScene).
    """

    def __init__(self, scene=None) -> None:
        SegLogic.__init__(self, scene)

    def getParameterNode(self):
        return LiverFusionSegParameterNode(super().getParameterNode())


class LiverFusionSegTest(ScriptedLoadableModuleTest):
    """Runs the whole workflow on a generated phantom (no download): Apply, checks, edit, Re-classify."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentPhantom()

    def test_SegmentPhantom(self):
        from liverfusion.synthesis.phantom import make_case

        self.delayDisplay("Generating a small CT + MRI phantom")
        folder = Path(slicer.app.temporaryPath) / "LiverFusionSegTest"
        make_case(folder, seed=7, protocol="ct-mri", small=True)
        volumes = {role: slicer.util.loadVolume(str(folder / f"{role}.nii.gz")) for role in ("ct", "mri")}
        before = {role: slicer.util.arrayFromVolume(node).copy() for role, node in volumes.items()}
        logic = LiverFusionSegLogic()
        self.assertEqual(set(logic.detectRoles()), {"ct", "mri"})

        self.delayDisplay("Segmenting (rigid alignment)")
        outputs = logic.process(volumes, align="rigid")
        segmentation = outputs["segmentation"].GetSegmentation()
        self.assertTrue(segmentation.GetSegmentIdBySegmentName("Liver"))
        self.assertEqual(outputs["lesionTable"].GetNumberOfRows(), len(outputs["lesions"]))
        self.assertTrue(0.0 <= outputs["probability"] <= 1.0)
        self.assertEqual(set(outputs["aligned"]), {"mri"})
        for role, node in volumes.items():
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), before[role])

        self.delayDisplay("Erasing every tumour and re-classifying")
        tumorId = segmentation.GetSegmentIdBySegmentName("Tumor")
        reference = mrmlio.image_from_volume(outputs["logits"])
        mask = np.zeros(slicer.util.arrayFromVolume(outputs["logits"]).shape, bool)
        mrmlio.set_segment_mask(outputs["segmentation"], tumorId, mask, reference)
        reclassified = logic.reclassify(outputs["segmentation"])
        self.assertEqual(reclassified["lesionTable"].GetNumberOfRows(), 0)
        self.assertEqual(reclassified["probability"], 0.0)
        self.delayDisplay("Test passed")
