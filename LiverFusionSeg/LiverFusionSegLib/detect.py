"""Guess each loaded volume's role (ct, mri, nc, arterial, delayed) from its name.

Volumes loaded from DICOM are named after their series ("5: AX T2 HASTE", "3: Abd Arterial 1.0"), so
the name is where a scanner's protocol words end up. Words are matched whole (ART must not match
PARTIAL), specific phases before the generic "CT", and MR words first, since an MR series can say
"arterial" too. The portal-venous phase is the `ct` role: the model has one channel for both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import slicer

from .mrmlio import OUTPUT_ATTRIBUTE

# Role -> phrases (lower case, whole words), in the order they are tried.
ROLE_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mri", ("t2", "t2w", "mr", "mri", "haste", "ssfse", "tse")),
    ("nc", ("nc", "non contrast", "noncontrast", "native", "unenhanced", "plain")),
    ("arterial", ("arterial", "art", "hap", "late arterial")),
    ("delayed", ("delayed", "del", "equilibrium", "late")),
    ("ct", ("portal", "pv", "pvp", "venous", "ct")),
)


def words(text: str) -> str:
    """Lower-case words separated by single spaces (camelCase split), for whole-word matching."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    return " ".join(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w)


def role_from_text(text: str) -> str | None:
    """The first role whose phrase appears as whole words in `text`, or None."""
    padded = f" {words(text)} "
    for role, phrases in ROLE_PHRASES:
        if any(f" {phrase} " in padded for phrase in phrases):
            return role
    return None


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
