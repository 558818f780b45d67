"""Each lesion type looks, phase by phase and on T2 MRI, the way radiology textbooks describe it.

Measured on rendered phantom images (means inside the lesion, its rim and its core, against the liver),
so a change to the appearance tables that breaks a rule fails here.
"""

import numpy as np
import pytest

from liverfusion.synthesis import anatomy as A
from liverfusion.synthesis.appearance import render_tissue

KINDS = ["cyst", "hemangioma", "fnh", "hcc", "metastasis", "cholangiocarcinoma"]
CHANNELS = ("nc", "arterial", "portal", "delayed", "mri")


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, dict[str, float]]]:
    """kind -> channel -> {lesion, rim, core, liver} mean values."""
    anat = A.make_anatomy(np.random.default_rng(11), n_lesions=6, lesion_kinds=KINDS)
    assert [les.kind for les in anat.lesions] == KINDS
    out: dict = {}
    for channel in CHANNELS:
        image = render_tissue(anat, channel, np.random.default_rng(5))
        liver = float(image[anat.tissue == A.LIVER].mean())
        for k, kind in enumerate(KINDS):
            mask = anat.tissue == A.LESION_BASE + k
            depth = anat.lesion_depth
            out.setdefault(kind, {})[channel] = {
                "lesion": float(image[mask].mean()),
                "rim": float(image[mask & (depth < 0.15)].mean()),
                "core": float(image[mask & (depth > 0.45)].mean()),
                "liver": liver,
            }
    return out


def test_cyst_is_water_without_enhancement_and_very_bright_on_t2(measured):
    for phase in ("nc", "arterial", "portal", "delayed"):
        m = measured["cyst"][phase]
        assert abs(m["lesion"]) < 20 and m["lesion"] < m["liver"] - 30, (phase, m)
    assert measured["cyst"]["mri"]["lesion"] > 2.5 * measured["cyst"]["mri"]["liver"]


def test_hemangioma_enhances_peripherally_then_fills_in_and_is_bright_on_t2(measured):
    arterial, delayed = measured["hemangioma"]["arterial"], measured["hemangioma"]["delayed"]
    assert arterial["rim"] > arterial["liver"] + 50 and arterial["core"] < arterial["liver"]
    assert delayed["core"] > delayed["liver"]  # centripetal fill-in
    assert measured["hemangioma"]["mri"]["lesion"] > 2 * measured["hemangioma"]["mri"]["liver"]


def test_hcc_washes_in_then_out_with_a_capsule(measured):
    hcc = measured["hcc"]
    assert hcc["arterial"]["core"] > hcc["arterial"]["liver"] + 40
    assert hcc["portal"]["core"] < hcc["portal"]["liver"] - 15
    assert hcc["delayed"]["core"] < hcc["delayed"]["liver"] - 10
    assert hcc["delayed"]["rim"] > hcc["delayed"]["core"] + 30  # enhancing capsule
    assert 1.2 < hcc["mri"]["lesion"] / hcc["mri"]["liver"] < 2.0  # moderately T2-bright


def test_metastasis_has_rim_enhancement_and_is_hypodense_in_the_portal_phase(measured):
    met = measured["metastasis"]
    assert met["arterial"]["rim"] > met["arterial"]["core"] + 30
    assert met["portal"]["lesion"] < met["portal"]["liver"] - 20
    assert met["mri"]["lesion"] > met["mri"]["liver"]


def test_cholangiocarcinoma_enhances_late(measured):
    cca = measured["cholangiocarcinoma"]
    assert cca["delayed"]["core"] > cca["portal"]["core"] + 15
    assert cca["portal"]["lesion"] < cca["portal"]["liver"] - 20


def test_fnh_is_ambiguous_on_portal_ct_but_seen_on_arterial_ct_and_on_mri(measured):
    """A case for fusion: nearly invisible on the CT of a CT+MRI pair (portal phase), visible elsewhere."""
    fnh = measured["fnh"]
    assert abs(fnh["portal"]["lesion"] - fnh["portal"]["liver"]) < 12
    assert fnh["arterial"]["lesion"] > fnh["arterial"]["liver"] + 40
    assert fnh["mri"]["lesion"] > 1.15 * fnh["mri"]["liver"]
