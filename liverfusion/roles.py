"""Image roles: parsing `ROLE=PATH`, choosing the reference, mapping roles onto network channels."""

from __future__ import annotations

from collections.abc import Iterable

from .constants import CHANNELS, REFERENCE_PREFERENCE, ROLE_TO_CHANNEL, ROLES
from .errors import RoleError


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
