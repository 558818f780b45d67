"""MRML nodes <-> SimpleITK images, with geometry kept exact.

Slicer places voxels in RAS (x grows towards the patient's right, y anterior); ITK and every file the
core reads use LPS (x left, y posterior). The two differ by a sign flip of the first two axes, so a
node's IJK->RAS matrix becomes an ITK origin and direction by flipping their first two rows. Getting this
wrong mirrors the patient left-right without any error, which is why it lives in one place and is tested
against Slicer's own file reader.

Only classes that slicer-core provides (MRML, vtkSegmentationCore, vtk) are used, so this runs in Slicer,
in `Slicer --python-script` batches and under pytest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from liverfusion.constants import LABEL_COLORS, LABEL_NAMES
from liverfusion.errors import LiverFusionError
from liverfusion.io.segnrrd import TERMINOLOGY

# diag(-1, -1, 1): LPS <-> RAS (its own inverse).
FLIP = np.diag([-1.0, -1.0, 1.0])
OUTPUT_ATTRIBUTE = "LiverFusion.Output"
BINARY_LABELMAP = "Binary labelmap"


def array_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])


def vtk_matrix_from_array(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for i in range(4):
        for j in range(4):
            matrix.SetElement(i, j, float(array[i, j]))
    return matrix


def ijk_to_ras(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """The node's IJK->RAS matrix in world space: a linear parent transform is included, because that is
    where Slicer shows the volume; a non-linear one cannot be expressed as a grid and is refused."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk = array_from_vtk_matrix(matrix)
    parent = node.GetParentTransformNode()
    if parent is None:
        return ijk
    if not parent.IsTransformToWorldLinear():
        raise LiverFusionError(f"{node.GetName()}: is under a non-linear transform; harden it first "
                               "(Data module, right-click the transform, Harden transform)")
    to_world = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(to_world)
    return array_from_vtk_matrix(to_world) @ ijk


def geometry_from_matrix(matrix: np.ndarray, extent_min: tuple[int, int, int] = (0, 0, 0)
                         ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(origin, spacing, direction) in LPS for an IJK->RAS matrix whose first voxel is `extent_min`."""
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    direction = FLIP @ (matrix[:3, :3] / spacing)
    origin = FLIP @ (matrix[:3, :3] @ np.asarray(extent_min, float) + matrix[:3, 3])
    return tuple(map(float, origin)), tuple(map(float, spacing)), tuple(map(float, direction.ravel()))


def matrix_from_image(image: sitk.Image) -> np.ndarray:
    """The IJK->RAS matrix of an ITK image."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = FLIP @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = FLIP @ np.array(image.GetOrigin())
    return matrix


def array_from_image_data(image_data: vtk.vtkImageData) -> np.ndarray:
    """A copy of the scalars as a (z, y, x) array: VTK stores x fastest, which is numpy's C order reversed."""
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        raise LiverFusionError("volume has no voxels")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise LiverFusionError(f"expected a scalar volume, got {image_data.GetNumberOfScalarComponents()} components")
    x0, x1, y0, y1, z0, z1 = image_data.GetExtent()
    shape = (z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)
    return numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(shape).copy()


def image_from_volume(node: slicer.vtkMRMLScalarVolumeNode) -> sitk.Image:
    """A copy of the node's voxels as an ITK image in LPS, pixel type kept."""
    try:
        array = array_from_image_data(node.GetImageData())
    except LiverFusionError as exc:
        raise LiverFusionError(f"{node.GetName()}: {exc}") from None
    extent = node.GetImageData().GetExtent()
    origin, spacing, direction = geometry_from_matrix(ijk_to_ras(node), extent[0::2])
    image = sitk.GetImageFromArray(array)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def image_data_from_array(array: np.ndarray) -> vtk.vtkImageData:
    """A vtkImageData holding a deep copy of a (z, y, x) array; VTK's x-fastest order is C order reversed."""
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    image_data.GetPointData().SetScalars(scalars)
    return image_data


def update_volume_from_image(node: slicer.vtkMRMLScalarVolumeNode, image: sitk.Image) -> None:
    """Set the node's voxels and geometry from an ITK image (LPS -> RAS)."""
    node.SetIJKToRASMatrix(vtk_matrix_from_array(matrix_from_image(image)))
    node.SetAndObserveImageData(image_data_from_array(sitk.GetArrayFromImage(image)))


def add_volume(scene: slicer.vtkMRMLScene, image: sitk.Image, name: str, hidden: bool = False,
               output: bool = True) -> slicer.vtkMRMLScalarVolumeNode:
    """A new volume node. An `output` is marked so that role detection never offers it as an input;
    synthetic images meant to be segmented (phantoms) are not."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    if output:
        mark_output(node)
    update_volume_from_image(node, image)
    if hidden:
        node.SetHideFromEditors(True)
    else:
        node.CreateDefaultDisplayNodes()
    return node


def mark_output(node: slicer.vtkMRMLNode) -> slicer.vtkMRMLNode:
    node.SetAttribute(OUTPUT_ATTRIBUTE, "1")
    return node


def ensure_segmentation_converters() -> None:
    """Slicer registers the segmentation conversion rules at startup; a bare MRML (slicer-core) does not,
    and without them a segment cannot even hold a binary labelmap."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.GetConverterRules():
        return
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def oriented_image(mask: np.ndarray, geometry: sitk.Image) -> slicer.vtkOrientedImageData:
    """A uint8 oriented image (what a segment stores) of a (z, y, x) mask on `geometry`'s grid."""
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(image_data_from_array(mask.astype(np.uint8)))
    image.SetImageToWorldMatrix(vtk_matrix_from_array(matrix_from_image(geometry)))
    return image


def set_segment_mask(node: slicer.vtkMRMLSegmentationNode, segment_id: str, mask: np.ndarray,
                     geometry: sitk.Image) -> None:
    """Replace a segment's voxels by `mask` (on `geometry`'s grid), as an edit in the Segment Editor would."""
    ok = slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        oriented_image(mask, geometry), node, segment_id)
    if not ok:
        raise LiverFusionError(f"{node.GetName()}: could not write segment {segment_id}")


def segment_mask(node: slicer.vtkMRMLSegmentationNode, segment_id: str, reference: sitk.Image) -> np.ndarray:
    """A segment's voxels resampled (nearest neighbour) onto `reference`'s grid, as a (z, y, x) bool array."""
    labelmap = slicer.vtkOrientedImageData()
    node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    x0, x1, y0, y1, z0, z1 = labelmap.GetExtent()
    if x1 < x0 or y1 < y0 or z1 < z0:
        return np.zeros(sitk.GetArrayViewFromImage(reference).shape, bool)
    matrix = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(matrix)
    origin, spacing, direction = geometry_from_matrix(array_from_vtk_matrix(matrix), (x0, y0, z0))
    image = sitk.GetImageFromArray((array_from_image_data(labelmap) > 0).astype(np.uint8))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled) > 0


def add_label_segment(node: slicer.vtkMRMLSegmentationNode, value: int, name: str | None = None) -> str:
    """An empty segment named, coloured and coded (SNOMED terminology) like the core's .seg.nrrd files."""
    name = name or LABEL_NAMES[value]
    segment_id = node.GetSegmentation().AddEmptySegment(name, name, list(LABEL_COLORS[value]))
    segment = node.GetSegmentation().GetSegment(segment_id)
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), TERMINOLOGY[value])
    segment.SetNameAutoGenerated(False)
    segment.SetColorAutoGenerated(False)
    return segment_id


def fill_segmentation(node: slicer.vtkMRMLSegmentationNode, labels: sitk.Image) -> dict[int, str]:
    """Replace every segment by one per label value (Liver, Tumor); returns label value -> segment ID."""
    ensure_segmentation_converters()
    segmentation = node.GetSegmentation()
    segmentation.RemoveAllSegments()
    segmentation.SetSourceRepresentationName(BINARY_LABELMAP)
    segmentation.SetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                                        _geometry_string(labels))
    array = sitk.GetArrayViewFromImage(labels)
    ids = {}
    for value in sorted(LABEL_NAMES):
        ids[value] = add_label_segment(node, value)
        set_segment_mask(node, ids[value], array == value, labels)
    return ids


def _geometry_string(image: sitk.Image) -> str:
    """Slicer's serialised reference geometry (12 matrix values then the extent), so that the Segment
    Editor paints on the result's grid even without a reference volume node."""
    matrix = vtk_matrix_from_array(matrix_from_image(image))
    extent = [0, image.GetSize()[0] - 1, 0, image.GetSize()[1] - 1, 0, image.GetSize()[2] - 1]
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(matrix, extent)


def add_segmentation(scene: slicer.vtkMRMLScene, labels: sitk.Image, name: str) -> slicer.vtkMRMLSegmentationNode:
    node = mark_output(scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name)))
    node.CreateDefaultDisplayNodes()
    fill_segmentation(node, labels)
    return node


def heat_color_table(scene: slicer.vtkMRMLScene, name: str = "LiverFusion heat") -> slicer.vtkMRMLColorTableNode:
    """A transparent-black -> red -> yellow -> white ramp, created once per scene and reused."""
    existing = scene.GetFirstNodeByName(name)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    node = mark_output(scene.AddNewNodeByClass("vtkMRMLColorTableNode", name))
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    for i in range(256):
        t = i / 255.0
        rgb = (min(1.0, 3 * t), min(1.0, max(0.0, 3 * t - 1)), min(1.0, max(0.0, 3 * t - 2)))
        node.SetColor(i, f"{t:.3f}", *rgb, 0.0 if i == 0 else 1.0)
    return node


def show_as_heat(node: slicer.vtkMRMLScalarVolumeNode, colors: slicer.vtkMRMLColorTableNode,
                 threshold: float = 0.05) -> None:
    """Attention maps live in [0, 1]: fixed window, heat colours, values near zero transparent."""
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(colors.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetLowerThreshold(threshold)
    display.SetUpperThreshold(1.0)
    display.ApplyThresholdOn()


def add_registration_transform(scene: slicer.vtkMRMLScene, transform: sitk.Transform,
                               name: str) -> slicer.vtkMRMLTransformNode:
    """A transform node holding the whole registration, B-spline included, read by Slicer's own ITK
    transform reader, so that the LPS/RAS and resampling conventions are Slicer's and not ours.

    ITK's transform maps reference points to moving points (resampling convention), which Slicer reads
    as 'from parent': placing a copy of the moving volume under this node aligns it to the reference.
    """
    node = mark_output(scene.AddNewNodeByClass("vtkMRMLTransformNode", scene.GenerateUniqueName(name)))
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "transform.h5")
        sitk.WriteTransform(transform, path)
        storage = slicer.vtkMRMLTransformStorageNode()
        storage.SetFileName(path)
        if not storage.ReadData(node):
            raise LiverFusionError(f"{name}: Slicer could not read the registration transform")
    return node


def add_aligned_copy(scene: slicer.vtkMRMLScene, original: slicer.vtkMRMLScalarVolumeNode,
                     transform: slicer.vtkMRMLTransformNode, name: str) -> slicer.vtkMRMLScalarVolumeNode:
    """A copy of `original` under `transform`: the user can toggle, edit or harden the alignment, and
    the original volume is never touched."""
    copy = add_volume(scene, image_from_volume(original), name)
    copy.SetAndObserveTransformNodeID(transform.GetID())
    if original.GetDisplayNode() is not None and copy.GetDisplayNode() is not None:
        copy.GetDisplayNode().Copy(original.GetDisplayNode())
    return copy
