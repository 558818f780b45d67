import json

import numpy as np
import SimpleITK as sitk

from liverfusion.evaluation.metrics import dice
from liverfusion.io.images import read_image
from liverfusion.registration.align import resample_to
from liverfusion.synthesis import anatomy as A


def test_ctmri_case_layout_and_truth(small_ctmri):
    names = {p.name for p in small_ctmri.iterdir()}
    assert {"ct.nii.gz", "mri.nii.gz", "label_ct.nii.gz", "label_mri.nii.gz", "case.json"} <= names
    info = json.loads((small_ctmri / "case.json").read_text(encoding="utf-8"))
    assert info["reference"] == "ct"
    assert info["malignant"] == any(les["malignant"] for les in info["lesions"])
    ct, mri = read_image(small_ctmri / "ct.nii.gz"), read_image(small_ctmri / "mri.nii.gz")
    assert ct.GetSpacing() != mri.GetSpacing() and ct.GetSize() != mri.GetSize()  # each on its own grid
    hu = sitk.GetArrayViewFromImage(ct)
    assert hu.min() < -900 and 300 < hu.max() < 700  # air and bone in Hounsfield units
    assert sitk.GetArrayViewFromImage(mri).min() >= 0  # magnitude MRI (Rician)


def test_truth_transform_aligns_the_moving_labels(small_ctmri):
    fixed = read_image(small_ctmri / "label_ct.nii.gz", label=True)
    moving = read_image(small_ctmri / "label_mri.nii.gz", label=True)
    truth = sitk.ReadTransform(str(small_ctmri / "truth_transform_mri.h5"))
    f = sitk.GetArrayViewFromImage(fixed) >= 1
    before = sitk.GetArrayFromImage(resample_to(moving, fixed, sitk.Euler3DTransform(), label=True)) >= 1
    after = sitk.GetArrayFromImage(resample_to(moving, fixed, truth, label=True)) >= 1
    assert dice(after, f) > 0.9 > dice(before, f)


def test_multiphase_case_has_four_phases_with_their_enhancement(small_multiphase):
    labels = sitk.GetArrayFromImage(read_image(small_multiphase / "label_portal.nii.gz", label=True))
    liver_hu = {}
    for phase in ("nc", "arterial", "portal", "delayed"):
        image = read_image(small_multiphase / f"{phase}.nii.gz")
        truth = sitk.ReadTransform(str(small_multiphase / f"truth_transform_{phase}.h5"))
        on_ref = resample_to(image, read_image(small_multiphase / "portal.nii.gz"), truth)
        liver_hu[phase] = float(np.median(sitk.GetArrayFromImage(on_ref)[labels == 1]))
    assert liver_hu["nc"] < liver_hu["arterial"] < liver_hu["portal"]  # the liver enhances in the portal phase
    assert liver_hu["delayed"] < liver_hu["portal"]


def test_lesions_stay_inside_the_liver_and_types_match_malignancy():
    rng = np.random.default_rng(3)
    anat = A.make_anatomy(rng, n_lesions=3, lesion_kinds=["hcc", "cyst", "metastasis"])
    assert [les.kind for les in anat.lesions] == ["hcc", "cyst", "metastasis"]
    assert [les.malignant for les in anat.lesions] == [True, False, True]
    for k in range(3):
        lesion = anat.tissue == A.LESION_BASE + k
        assert lesion.sum() > 0
        assert anat.lesion_depth[lesion].max() > 0.3  # a core, not only a margin


def test_same_seed_same_case(tmp_path):
    from liverfusion.synthesis.phantom import make_case

    a = make_case(tmp_path / "a", 5, "ct-mri", small=True)
    b = make_case(tmp_path / "b", 5, "ct-mri", small=True)
    assert a == b
    assert np.array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a" / "mri.nii.gz"))),
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "b" / "mri.nii.gz"))),
    )


def test_each_label_shares_its_image_grid(small_ctmri):
    for role in ("ct", "mri"):
        image, label = read_image(small_ctmri / f"{role}.nii.gz"), read_image(small_ctmri / f"label_{role}.nii.gz")
        assert image.GetSize() == label.GetSize() and image.GetSpacing() == label.GetSpacing()
        assert image.GetOrigin() == label.GetOrigin() and image.GetDirection() == label.GetDirection()


def test_truth_transform_sends_each_lesion_centre_to_the_same_lesion(small_multiphase):
    """A point of the reference mapped through the recorded transform lands on the same anatomy."""
    reference = read_image(small_multiphase / "label_portal.nii.gz", label=True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.ConnectedComponent(reference == 2))
    big = [stats.GetCentroid(i) for i in stats.GetLabels() if stats.GetEquivalentSphericalRadius(i) > 6]
    assert big, "seed 778 has a lesion of more than 12 mm"
    for phase in ("nc", "arterial", "delayed"):
        label = read_image(small_multiphase / f"label_{phase}.nii.gz", label=True)
        truth = sitk.ReadTransform(str(small_multiphase / f"truth_transform_{phase}.h5"))
        for centre in big:
            assert label[label.TransformPhysicalPointToIndex(truth.TransformPoint(centre))] == 2, phase


def test_same_seed_same_bytes(tmp_path):
    import hashlib

    from liverfusion.synthesis.phantom import make_case

    for name in ("a", "b"):
        make_case(tmp_path / name, 6, "multiphase", small=True, roles=("portal", "arterial"))
    for path in sorted((tmp_path / "a").iterdir()):
        if path.suffix != ".h5":  # HDF5 stores a creation time
            assert (
                hashlib.sha256(path.read_bytes()).digest()
                == hashlib.sha256((tmp_path / "b" / path.name).read_bytes()).digest()
            ), path.name


def test_lesion_diameters_cover_5_to_80_mm():
    rng = np.random.default_rng(0)
    d = np.array([A.lesion_diameter(rng) for _ in range(2000)])
    assert d.min() >= 5 and d.max() <= 80
    assert (d < 8).mean() > 0.1 and (d > 50).mean() > 0.1  # both ends are drawn, not only the middle
