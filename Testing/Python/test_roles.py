import pytest

from liverfusion.errors import RoleError
from liverfusion.io.roles import channel_presence, choose_reference, parse_inputs, role_from_text


def test_parse_inputs_maps_roles_to_paths():
    assert parse_inputs(["ct=a.nii.gz", "MRI=b/"]) == {"ct": "a.nii.gz", "mri": "b/"}


@pytest.mark.parametrize(
    "specs, message",
    [
        (["pet=a.nii"], "unknown image role"),
        (["ct=a.nii", "portal=b.nii"], "same channel"),
        (["ct"], "expected ROLE=PATH"),
        ([], "no input image"),
    ],
)
def test_bad_roles_are_one_line_errors(specs, message):
    with pytest.raises(RoleError, match=message) as info:
        parse_inputs(specs)
    assert "\n" not in str(info.value)


def test_reference_is_portal_or_ct_else_first():
    assert choose_reference(["mri", "ct"]) == "ct"
    assert choose_reference(["nc", "arterial", "portal"]) == "portal"
    assert choose_reference(["arterial", "nc"]) == "arterial"


def test_ct_and_portal_share_a_channel():
    assert channel_presence(["ct", "mri"]) == channel_presence(["portal", "mri"]) == [False, False, True, False, True]


@pytest.mark.parametrize(
    "description, role",
    [
        ("AP", "arterial"),  # HCC-TACE-Seg's phases
        ("EQP", "delayed"),
        ("PV 70s", "portal"),  # a phase of its own here; the Slicer module calls it ct
        ("Abd CT", "ct"),
        ("Pre contrast", "nc"),
        ("5: AX T2 HASTE", "mri"),
        ("Apex", None),  # whole words only
        ("", None),
    ],
)
def test_series_descriptions_name_roles_in_whole_words(description, role):
    assert role_from_text(description) == role
