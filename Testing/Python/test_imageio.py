import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.errors import InputError, OutputError
from liverfusion.io.images import dicom_series_files, read_image, staged_output, write_image, write_text


def _image(size=(8, 9, 10)):
    image = sitk.GetImageFromArray(np.arange(np.prod(size[::-1]), dtype=np.int16).reshape(size[::-1]))
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-10.0, 20.0, 5.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_geometry_survives_every_format(tmp_path, suffix):
    original = _image()
    path = write_image(original, tmp_path / f"x{suffix}")
    back = read_image(path)
    assert back.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_allclose(back.GetSpacing(), original.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), original.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), original.GetDirection(), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"x{suffix}"]  # no temporary left


def test_reads_a_real_dicom_series(real_data):
    image = read_image(real_data / "totalsegmentator_examples" / "example_ct_dicom")
    assert image.GetSize() == (512, 512, 20)
    # 3 mm slices reconstructed every 2 mm: the spacing comes from the positions, not SliceThickness
    assert image.GetSpacing()[2] == pytest.approx(2.0, abs=0.01)
    assert float(sitk.GetArrayViewFromImage(image).min()) < -900  # Hounsfield units, rescale applied


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("not an image", encoding="utf-8"), "not a readable image"),
        (lambda p: sitk.WriteImage(sitk.Image(5, 5, sitk.sitkFloat32), str(p)), "3-D"),
        (lambda p: sitk.WriteImage(sitk.Image([4, 4, 4, 3], sitk.sitkFloat32), str(p)), "3-D"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, make, message):
    path = tmp_path / "bad.nii.gz"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_folder_of_several_series_names_them_and_reads_the_one_chosen(two_series_dicom):
    with pytest.raises(InputError, match=r"holds 2 series, name one as FOLDER@NUMBER: .*7 'Arterial' \(20 files\)"):
        read_image(two_series_dicom)
    portal, arterial = (read_image(f"{two_series_dicom}@{n}") for n in (2, 7))
    assert portal.GetSize() == arterial.GetSize() == (512, 512, 20)
    difference = sitk.GetArrayViewFromImage(arterial) - sitk.GetArrayViewFromImage(portal)
    assert np.all(difference == 100)
    with pytest.raises(InputError, match=r"@9: no such series; the folder holds 2 'Portal' \(20 files\); 7 'Arterial'"):
        read_image(f"{two_series_dicom}@9")


def test_a_series_with_missing_slices_is_resampled_to_even_steps_with_a_note(real_data, tmp_path, capfd):
    from liverfusion.io.images import READ_NOTE
    from liverfusion.io.intensity_checks import checked_image

    source = real_data / "totalsegmentator_examples" / "example_ct_dicom"
    whole = read_image(source)
    files = dicom_series_files(source)
    for i, f in enumerate(files):
        if i not in (9, 10):  # two slices lost on export: a 6 mm gap among 2 mm steps
            shutil.copy(f, tmp_path / f"{i:02d}.dcm")
    gapped = read_image(tmp_path)
    assert "Non uniform sampling" not in capfd.readouterr().err  # ITK's multi-line warning is not shown
    assert gapped.GetSize() == whole.GetSize() and gapped.GetSpacing() == pytest.approx(whole.GetSpacing())
    assert gapped.GetOrigin() == pytest.approx(whole.GetOrigin())
    a, b = sitk.GetArrayViewFromImage(whole), sitk.GetArrayViewFromImage(gapped)
    kept = [i for i in range(20) if i not in (9, 10)]
    np.testing.assert_array_equal(b[kept], a[kept])  # read slices where they were taken
    np.testing.assert_allclose(b[9], a[8] + (a[11] - a[8]) / 3, atol=1e-3)  # the gap, interpolated
    note = f"{tmp_path}: slices 2 to 6 mm apart (missing slices?); resampled to even 2 mm steps"
    assert gapped.GetMetaData(READ_NOTE) == note
    assert checked_image(gapped, "ct", str(tmp_path))[1][0] == gapped.GetMetaData(READ_NOTE)
    assert not whole.HasMetaDataKey(READ_NOTE)


def test_a_series_with_two_slices_at_one_position_is_an_error(real_data, tmp_path):
    import pydicom
    from pydicom.uid import generate_uid

    files = dicom_series_files(real_data / "totalsegmentator_examples" / "example_ct_dicom")
    for i, f in enumerate(files):
        shutil.copy(f, tmp_path / f"{i:02d}.dcm")
    twin = pydicom.dcmread(files[5])
    twin.SOPInstanceUID = twin.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    twin.save_as(tmp_path / "twin.dcm")
    with pytest.raises(InputError, match="two slices at one position"):
        read_image(tmp_path)


def test_a_segmentation_beside_its_ct_is_not_a_second_series(real_data):
    """dcmqi's folder: 3 CT slices and their SEG."""
    assert read_image(real_data / "dcmqi_ct3slice_liver").GetSize() == (512, 512, 3)


def test_empty_folder_is_not_a_dicom_series(tmp_path):
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path)


def test_staged_output_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(out) as stage:
        write_image(_image(), stage / "a.nii.gz")
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_staged_output_moves_everything_on_success(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        write_image(_image(), stage / "a.nii.gz")
    assert [p.name for p in out.iterdir()] == ["a.nii.gz"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_rerun_replaces_the_earlier_runs_outputs_and_leaves_other_files(tmp_path):
    out = tmp_path / "out"
    with staged_output(out, replaces=("aligned_*.nii.gz", "result.json")) as stage:
        for name in ("aligned_mri.nii.gz", "aligned_arterial.nii.gz", "result.json"):
            write_text(name, stage / name)
    (out / "notes.txt").write_text("the user's own", encoding="utf-8")
    with staged_output(out, replaces=("aligned_*.nii.gz", "result.json")) as stage:
        write_text("second run", stage / "aligned_arterial.nii.gz")
        write_text("{}", stage / "result.json")
    assert sorted(p.name for p in out.iterdir()) == ["aligned_arterial.nii.gz", "notes.txt", "result.json"]
    assert (out / "aligned_arterial.nii.gz").read_text(encoding="utf-8") == "second run"


def test_outputs_get_the_permissions_of_any_new_file(tmp_path):
    """Not mkstemp's owner-only ones: a results folder is often shared."""
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    for path in (write_image(_image(), tmp_path / "a.nii.gz"), write_image(_image(), tmp_path / "a.nrrd"),
                 write_text("{}", tmp_path / "r.json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_nifti_is_gzip_with_the_exact_pixels_and_no_temporary_left(tmp_path):
    original = sitk.Cast(_image((40, 30, 20)), sitk.sitkFloat32) * 0.37
    path = write_image(original, tmp_path / "x.nii.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip, as the name says
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), sitk.GetArrayFromImage(original))
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]
    again = write_image(original, tmp_path / "y.nii.gz")
    assert again.read_bytes() == path.read_bytes()  # no file name or time in the header: same image, same bytes


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path, monkeypatch):
    from liverfusion.io import images as imageio

    def disk_full(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(imageio.shutil, "copyfileobj", disk_full)  # fails half-way through the compression
    with pytest.raises(OutputError, match=r"x.nii.gz: could not be written \(No space left on device\)"):
        write_image(_image(), tmp_path / "x.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_the_aligned_copy_keeps_integers_as_the_file_held_them(tmp_path):
    from liverfusion.inference.pipeline import _like_source
    from liverfusion.io.images import STORED_INTEGERS

    integers = read_image(write_image(_image(), tmp_path / "ct.nii.gz"))
    floats = read_image(write_image(sitk.Cast(_image(), sitk.sitkFloat32) + 0.25, tmp_path / "map.nii.gz"))
    assert integers.HasMetaDataKey(STORED_INTEGERS) and not floats.HasMetaDataKey(STORED_INTEGERS)
    shifted = integers + 0.4  # what resampling between voxels gives
    rounded = _like_source(shifted, integers)
    assert rounded.GetPixelID() == sitk.sitkInt16
    np.testing.assert_array_equal(sitk.GetArrayFromImage(rounded), sitk.GetArrayFromImage(_image()))
    assert _like_source(floats + 0.4, floats).GetPixelID() == sitk.sitkFloat32
    in_memory = sitk.Cast(_image(), sitk.sitkFloat32)  # no reader's mark: the values decide
    assert _like_source(in_memory + 0.4, in_memory).GetPixelID() == sitk.sitkInt16
