"""DICOM SEG output: opens with pydicom and highdicom, matches the structure of dcmqi's reference SEG of the same
series, references the source series, and carries the source's patient and study identifiers and nothing else."""

import pydicom
import pytest
from pydicom.uid import UID

from liverfusion.evaluation.metrics import dice
from liverfusion.inference.pipeline import segment
from liverfusion.io.images import dicom_series_files


@pytest.fixture(scope="module")
def seg_run(real_data, tmp_path_factory):
    series = real_data / "dcmqi_ct3slice_liver"
    out = tmp_path_factory.mktemp("dicomseg") / "out"
    segment({"ct": str(series)}, out, align="none", device="cpu")
    return series, out


def test_segmentation_dcm_matches_the_reference_seg_in_structure(seg_run):
    series, out = seg_run
    ours, ref = pydicom.dcmread(out / "segmentation.dcm"), pydicom.dcmread(series / "liver.dcm")
    for keyword in (
        "SOPClassUID",
        "Modality",
        "SegmentationType",
        "Rows",
        "Columns",
        "BitsAllocated",
        "StudyInstanceUID",
        "FrameOfReferenceUID",
        "PatientID",
        "PatientName",
    ):
        assert getattr(ours, keyword) == getattr(ref, keyword), keyword
    assert int(ours.NumberOfFrames) == int(ref.NumberOfFrames) * len(ours.SegmentSequence)  # one frame per slice
    # and segment (ours: liver and tumour; dcmqi's: liver)
    pointers = [d.DimensionIndexPointer for d in ours.DimensionIndexSequence]
    assert pointers == [d.DimensionIndexPointer for d in ref.DimensionIndexSequence]
    liver = ours.SegmentSequence[0]
    assert (liver.SegmentLabel, liver.SegmentAlgorithmType) == ("Liver", "AUTOMATIC")
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert ours.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    assert liver.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName.startswith("LiverFusion")


def test_seg_references_the_source_series_and_copies_identifiers_from_it_only(seg_run):
    series, out = seg_run
    ours = pydicom.dcmread(out / "segmentation.dcm")
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in dicom_series_files(series)]
    referenced = ours.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == {
        s.SOPInstanceUID for s in sources
    }
    assert ours.SeriesInstanceUID != sources[0].SeriesInstanceUID and UID(ours.SOPInstanceUID).is_valid
    for keyword in (
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "AccessionNumber",
        "StudyDate",
    ):
        assert getattr(ours, keyword, None) == getattr(sources[0], keyword, None), keyword


def test_seg_liver_agrees_with_the_reference_liver(seg_run):
    import highdicom as hd

    series, out = seg_run
    ours = hd.seg.segread(out / "segmentation.dcm")
    ref = hd.seg.segread(series / "liver.dcm")
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in dicom_series_files(series)]
    mask = ours.get_pixels_by_source_instance(
        uids, segment_numbers=[1], combine_segments=True, ignore_spatial_locations=True
    )
    truth = ref.get_pixels_by_source_instance(
        uids, segment_numbers=[1], combine_segments=True, ignore_spatial_locations=True
    )
    assert mask.shape == truth.shape == (3, 512, 512)
    assert dice(mask > 0, truth > 0) > 0.8  # bench_real_liver.py measured 0.870 on this series


def test_seg_of_a_series_chosen_in_a_study_folder_references_that_series(two_series_dicom, tmp_path):
    out = tmp_path / "out"
    segment({"portal": f"{two_series_dicom}@7"}, out, align="none", device="cpu")
    ours = pydicom.dcmread(out / "segmentation.dcm")
    chosen = [pydicom.dcmread(f, stop_before_pixels=True) for f in dicom_series_files(f"{two_series_dicom}@7")]
    assert chosen[0].SeriesDescription == "Arterial"
    referenced = ours.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == chosen[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == {
        s.SOPInstanceUID for s in chosen
    }


def test_an_anonymised_series_without_uids_gets_every_output_but_the_seg_and_a_warning(real_data, tmp_path):
    out = tmp_path / "out"
    summary = segment({"ct": str(real_data / "totalsegmentator_examples" / "example_ct_dicom")}, out, align="none")
    assert (out / "segmentation.nii.gz").is_file() and (out / "result.json").is_file()
    assert not (out / "segmentation.dcm").exists()
    assert [w for w in summary["warnings"] if w.startswith("segmentation.dcm not written") and "SOPClassUID" in w]
    # TotalSegmentator's liver on these 20 slices also reaches the first and the last
    assert [w for w in summary["warnings"] if w.startswith("the liver reaches the first slice and the last slice")]
