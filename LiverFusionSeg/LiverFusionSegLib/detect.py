"""Guess each loaded volume's role (ct, mri, nc, arterial, delayed) from its name.

Volumes loaded from DICOM are named after their series ("5: AX T2 HASTE", "3: Abd Arterial 1.0"), so the name is
where a scanner's protocol words end up; `liverfusion.roles.role_from_text` reads them, as `liverfusion dataset
import` does for SeriesDescriptions. The portal-venous phase is the `ct` role here: the model has one channel for both,
and the module offers one selector for them.
"""

from __future__ import annotations

from collections.abc import Iterable

import slicer

from liverfusion.io import roles

from .mrmlio import OUTPUT_ATTRIBUTE


def role_from_text(text: str) -> str | None:
    """The role a volume's name or description names (portal-venous as `ct`), or None."""
    role = roles.role_from_text(text)
    return "ct" if role == "portal" else role


def is_candidate(node: slicer.vtkMRMLNode) -> bool:
    """A scalar image someone loaded: not a labelmap, not hidden, not a LiverFusion output, one component."""
    if not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
        return False
    if node.GetHideFromEditors() or node.GetAttribute(OUTPUT_ATTRIBUTE):
        return False
    image = node.GetImageData()
    return image is not None and image.GetNumberOfScalarComponents() == 1


def detect_roles(nodes: Iterable[slicer.vtkMRMLNode]) -> dict[str, slicer.vtkMRMLScalarVolumeNode]:
    """Role -> the first candidate volume (scene order) whose name or description names that role."""
    found: dict[str, slicer.vtkMRMLScalarVolumeNode] = {}
    for node in nodes:
        if not is_candidate(node):
            continue
        role = role_from_text(node.GetName() or "") or role_from_text(node.GetDescription() or "")
        if role and role not in found:
            found[role] = node
    return found
