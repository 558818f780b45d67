"""A Slicer scene bundle (.mrb) written with MRML alone, so batch runs without the GUI can hand a radiologist one file.

An .mrb is a zip of a folder holding the scene's .mrml and its data files, which Slicer unpacks and loads.
vtkMRMLScene::WriteToMRB needs the application's data I/O manager (it aborts in slicer-core), so this writes each
node with its default storage node, commits the .mrml, and zips the folder itself.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import slicer

SEGMENTATION_EXTENSION = "seg.nrrd"  # the segmentation storage node has no default until it holds a labelmap


def write_mrb(scene: slicer.vtkMRMLScene, path: Path, name: str = "LiverFusion") -> Path:
    """Write every storable node that holds data, and the scene, into the bundle `path` (atomically)."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        folder = Path(tmp) / name
        (folder / "Data").mkdir(parents=True)
        nodes = _storable_nodes(scene)
        own = {node.GetID(): node.GetStorageNodeID() for node in nodes}  # restored after: the scene is not changed
        storages = [_store(scene, node, folder / "Data") for node in nodes]
        previous = scene.GetURL(), scene.GetRootDirectory()
        scene.SetRootDirectory(str(folder))
        scene.SetURL(str(folder / f"{name}.mrml"))
        try:
            if not scene.Commit():
                raise OSError(f"{path}: the scene could not be written")
        finally:
            scene.SetURL(previous[0]), scene.SetRootDirectory(previous[1])
            for node, storage in zip(nodes, storages, strict=True):
                node.SetAndObserveStorageNodeID(own[node.GetID()])
                scene.RemoveNode(storage)
        tmp_zip = Path(tmp) / "scene.mrb"
        with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as bundle:
            for file in sorted(folder.rglob("*")):
                bundle.write(file, file.relative_to(Path(tmp)))
        shutil.move(tmp_zip, path)
    return path


def _storable_nodes(scene: slicer.vtkMRMLScene) -> list:
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    return [n for n in nodes if n.IsA("vtkMRMLStorableNode") and _has_data(n)]  # hidden ones too: Re-classify uses them


def _has_data(node) -> bool:
    if node.IsA("vtkMRMLVolumeNode"):
        return node.GetImageData() is not None
    if node.IsA("vtkMRMLSegmentationNode"):
        return node.GetSegmentation().GetNumberOfSegments() > 0
    return node.IsA("vtkMRMLTableNode") or node.IsA("vtkMRMLTransformNode")


def _store(scene: slicer.vtkMRMLScene, node, data: Path):
    """Write the node's data with its default storage node; returns the storage node (removed after commit)."""
    storage = node.CreateDefaultStorageNode()
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    segmentation = node.IsA("vtkMRMLSegmentationNode")
    extension = SEGMENTATION_EXTENSION if segmentation else storage.GetDefaultWriteFileExtension()
    storage.SetFileName(str(data / f"{node.GetID()}_{_safe(node.GetName())}.{extension}"))
    if not storage.WriteData(node):
        raise OSError(f"{node.GetName()}: could not be written into the scene bundle")
    return storage


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]
