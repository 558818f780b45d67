"""How each tissue and lesion type looks on each CT phase (HU) and on T2-weighted MRI (relative signal).

Values follow textbook radiology (e.g. HCC: arterial hyperenhancement then portal/delayed washout with a
capsule; haemangioma: peripheral nodular enhancement filling in centripetally, very bright on T2; cyst:
water, no enhancement, very bright on T2; metastasis: rim enhancement, hypodense in the portal phase).
"""

from __future__ import annotations

import numpy as np

from . import anatomy as A

# Tissue -> (nc, arterial, portal, delayed, mri)
TISSUE = {
    A.AIR: (-1000, -1000, -1000, -1000, 0.0),
    A.FAT: (-100, -100, -100, -100, 0.75),
    A.MUSCLE: (50, 58, 65, 60, 0.22),
    A.LIVER: (58, 72, 112, 92, 0.33),
    A.VESSEL: (40, 110, 180, 125, 0.10),
    A.SPLEEN: (48, 125, 122, 102, 0.62),
    A.KIDNEY: (32, 180, 170, 140, 0.55),
    A.BONE: (420, 420, 420, 420, 0.30),
    A.AORTA: (42, 300, 160, 115, 0.08),
    A.GAS: (-900, -900, -900, -900, 0.02),
}

# Lesion type -> (margin values, core values), each (nc, arterial, portal, delayed, mri).
# A lesion's voxels blend from margin to core with their radial depth.
LESION = {
    "cyst": ((8, 8, 8, 8, 1.00), (5, 5, 5, 5, 1.00)),
    "hemangioma": ((42, 210, 165, 125, 0.90), (40, 45, 95, 118, 0.95)),
    "fnh": ((52, 135, 115, 95, 0.44), (50, 130, 112, 100, 0.52)),
    "hcc": ((45, 110, 125, 118, 0.45), (42, 145, 82, 68, 0.52)),
    "metastasis": ((38, 105, 92, 78, 0.50), (30, 42, 52, 60, 0.70)),
    "cholangiocarcinoma": ((42, 85, 80, 108, 0.42), (38, 50, 68, 98, 0.48)),
}

CHANNEL_INDEX = {"nc": 0, "arterial": 1, "portal": 2, "delayed": 3, "mri": 4}


def render_tissue(anat: A.Anatomy, channel: str, rng: np.random.Generator) -> np.ndarray:
    """The noiseless world image of one channel, with per-case enhancement and a soft tissue texture."""
    c = CHANNEL_INDEX[channel]
    lut = np.zeros(256, np.float32)
    for code, values in TISSUE.items():
        lut[code] = values[c]
    image = lut[anat.tissue]
    liver = anat.tissue == A.LIVER
    scale = rng.uniform(0.9, 1.1)  # patient-to-patient enhancement, of the liver and its lesions alike
    image[liver] *= scale
    texture = 0.03 if channel == "mri" else 6.0
    image[liver] += (
        texture
        * rng.standard_normal(int(liver.sum())).astype(np.float32)
        * (image[liver].mean() if channel == "mri" else 1.0)
    )
    for k, lesion in enumerate(anat.lesions):
        mask = anat.tissue == A.LESION_BASE + k
        margin, core = (np.array(v, np.float32)[c] for v in LESION[lesion.kind])
        jitter = rng.uniform(0.9, 1.1)
        depth = anat.lesion_depth[mask]
        image[mask] = scale * jitter * (margin + (core - margin) * np.clip(depth * 2.5, 0, 1))
    return image
