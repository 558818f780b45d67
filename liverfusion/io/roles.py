"""Image roles: parsing `ROLE=PATH`, reading a role from a series' name, choosing the reference, mapping roles onto
network channels."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..constants import CHANNELS, REFERENCE_PREFERENCE, ROLE_TO_CHANNEL, ROLES
from ..errors import RoleError


def parse_inputs(specs: Iterable[str]) -> dict[str, str]:
    """Turn `["ct=a.nii.gz", "mri=b/"]` into `{"ct": "a.nii.gz", "mri": "b/"}`, checking every role."""
    inputs: dict[str, str] = {}
    for spec in specs:
        role, sep, path = spec.partition("=")
        role = role.strip().lower()
        if not sep or not path:
            raise RoleError(f"{spec}: expected ROLE=PATH with ROLE one of {', '.join(ROLES)}")
        if role in inputs:
            raise RoleError(f"{spec}: {role} given twice (also {inputs[role]}); give one")
        inputs[role] = path
    check_roles(inputs)
    return inputs


# Role -> phrases (lower case, whole words), in the order they are tried. Scanner protocols put these words in the
# SeriesDescription ("5: AX T2 HASTE", "3: Abd Arterial 1.0", HCC-TACE-Seg's "AP" and "EQP"). Words are matched whole
# (ART must not match PARTIAL), specific phases before the generic "CT", and MR words first, since an MR series can
# say "arterial" too.
ROLE_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mri", ("t2", "t2w", "mr", "mri", "haste", "ssfse", "tse")),
    ("nc", ("nc", "non contrast", "noncontrast", "native", "unenhanced", "plain", "pre contrast", "precontrast")),
    ("arterial", ("arterial", "art", "hap", "late arterial", "ap")),
    ("delayed", ("delayed", "del", "equilibrium", "late", "eqp")),
    ("portal", ("portal", "pv", "pvp", "venous")),
    ("ct", ("ct",)),
)


def words(text: str) -> str:
    """Lower-case words separated by single spaces (camelCase split), for whole-word matching."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    return " ".join(w for w in re.split(r"[^a-z0-9]+", text.lower()) if w)


def role_from_text(text: str) -> str | None:
    """The first role whose phrase appears as whole words in `text` (a series description or a volume's name), or
    None when it names none."""
    padded = f" {words(text)} "
    for role, phrases in ROLE_PHRASES:
        if any(f" {phrase} " in padded for phrase in phrases):
            return role
    return None


def check_roles(roles: Iterable[str]) -> None:
    """Reject unknown roles and two roles that would feed the same network channel."""
    seen: dict[str, str] = {}
    for role in roles:
        if role not in ROLE_TO_CHANNEL:
            raise RoleError(f"{role}: unknown image role (expected one of {', '.join(ROLES)})")
        channel = ROLE_TO_CHANNEL[role]
        if channel in seen:
            raise RoleError(f"{role}: same channel as '{seen[channel]}' (ct is the portal-venous CT); give one")
        seen[channel] = role
    if not seen:
        raise RoleError("no input image given (use --input ROLE=PATH)")


def choose_reference(roles: Iterable[str]) -> str:
    """The reference grid is portal/ct when present, else the first input."""
    roles = list(roles)
    for preferred in REFERENCE_PREFERENCE:
        if preferred in roles:
            return preferred
    return roles[0]


def channel_presence(roles: Iterable[str]) -> list[bool]:
    """Which network channels the given roles fill, in `CHANNELS` order."""
    filled = {ROLE_TO_CHANNEL[r] for r in roles}
    return [c in filled for c in CHANNELS]
