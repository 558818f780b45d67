"""Stage 1, inputs and outputs on disk: images with their geometry (NIfTI, NRRD, MHA, DICOM series), the roles
they play, the checks an input must pass, and the segmentation files Slicer and PACS read (.seg.nrrd, DICOM SEG)."""
