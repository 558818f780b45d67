"""Names, label values, units and intensity windows, kept in one place.

Everything that a later stage or a saved file depends on (a label value, a role name, a window)
is defined here once, so that training, inference and the Slicer modules cannot disagree.
"""

from __future__ import annotations

# Label values of every segmentation we read or write.
BACKGROUND, LIVER, TUMOR = 0, 1, 2
LABEL_NAMES = {LIVER: "Liver", TUMOR: "Tumor"}
# Slicer's default colours for these structures (GenericAnatomyColors: liver, tumor).
LABEL_COLORS = {LIVER: (0.86, 0.51, 0.40), TUMOR: (0.56, 0.93, 0.56)}

# Image roles a user may give. `ct` is the one contrast CT of a CT+MRI pair: the same channel as `portal`.
ROLES = ("ct", "mri", "nc", "arterial", "portal", "delayed")
# Network input channels, in order. Every role maps onto one of them.
CHANNELS = ("nc", "arterial", "portal", "delayed", "mri")
ROLE_TO_CHANNEL = {
    "ct": "portal",
    "mri": "mri",
    "nc": "nc",
    "arterial": "arterial",
    "portal": "portal",
    "delayed": "delayed",
}
CT_ROLES = ("ct", "nc", "arterial", "portal", "delayed")
# Roles that make the reference grid, in order of preference.
REFERENCE_PREFERENCE = ("portal", "ct")

# CT window in HU for the network: Diff4MMLiTS's tumour window.
CT_TUMOR_WINDOW = (-21.0, 189.0)
# CT voxels below this are air (outside the patient, lungs, bowel gas): no liver there, and every body CT has some.
AIR_HU = -500.0
# MRI is z-scored on body voxels; values are clipped to this many standard deviations.
MRI_ZCLIP = 5.0

# Label resampling never interpolates values; images always do (linear).
MM3_PER_ML = 1000.0
