"""Reading and writing images with their geometry (origin, spacing, direction) intact.

Every reader returns a SimpleITK image so that geometry travels with the pixels; every writer is
atomic, because a half-written NIfTI that looks complete is worse than no file.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from isal import igzip

from ..errors import InputError, OutputError, one_line

SERIES_SELECTOR = "@"  # FOLDER@SERIES picks one series of a DICOM folder
NOT_SCANS = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG", "DOC"}  # modalities
MAX_LISTED = 6  # series named in one error line
UNEVEN_SLICES = 0.1  # slice steps that differ by more than this share of their median are resampled evenly
READ_NOTE = "LiverFusion read note"  # metadata key: what reading changed, for the run's warnings
STORED_INTEGERS = "LiverFusion stored integers"  # metadata key, set on images whose file held integers
UNNAMED = "unnamed"  # FOLDER@unnamed: the series with neither a number nor a UID (GDCM groups all such files)
NIFTI1_HEADER = 348  # bytes
INTEGER_PIXELS = {getattr(sitk, f"sitk{sign}Int{bits}") for sign in ("", "U") for bits in (8, 16, 32, 64)}
SHEAR_TOLERANCE = 1e-3  # cosine between two voxel axes (0.06 degrees): float32 round-off passes, a shear does not

# Level 1 of zlib (NRRD, MHA) or of ISA-L's gzip (NIfTI): several times faster than the default for files only a
# little larger; the outputs are mostly empty labels and smooth maps that compress well anyway.
FAST_COMPRESSION = 1


def read_image(path: str | os.PathLike, label: bool = False) -> sitk.Image:
    """Read a 3-D image from a NIfTI/NRRD/MHA file or a DICOM series folder (`FOLDER`, or `FOLDER@SERIES` where
    the folder holds several series).

    Images come back as float32 (so arithmetic never overflows), labels as uint8.
    """
    source = dicom_source(path)
    path = Path(path)
    if source is None and not path.exists():
        raise InputError(f"{path}: no such file or folder")
    image, note = _read_dicom(path) if source else _read_file(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{path}: expected a 3-D scalar image, got {image.GetDimension()}-D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)"
        )
    if min(image.GetSize()) < 2 and not label:
        raise InputError(f"{path}: expected a 3-D image, got size {image.GetSize()} (a single slice)")
    _require_perpendicular(np.array(image.GetDirection()).reshape(3, 3), path)
    integers = image.GetPixelID() in INTEGER_PIXELS
    image = sitk.Cast(image, sitk.sitkUInt8 if label else sitk.sitkFloat32)
    if integers:
        image.SetMetaData(STORED_INTEGERS, "1")
    if note:
        image.SetMetaData(READ_NOTE, note)
    return image


def _read_file(path: Path) -> tuple[sitk.Image, str | None]:
    """The image, and what ITK warned of while reading it (a NIfTI's sform it did not use, say), in one line."""
    if path.name.endswith((".nii", ".nii.gz")):
        _check_nifti(path)
    try:
        with _itk_warnings() as said, _c_stderr() as printed:
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:  # MetaImage's reason is what it printed; its exception's errno is stale
        raise InputError(f"{path}: not a readable image ({one_line(' '.join(printed) or exc)})") from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    return image, "; ".join(f"{path}: ITK: {text}" for text in dict.fromkeys(said)) or None


def _check_nifti(path: Path) -> None:
    """Refuse what ITK reads without a word: a file shorter than its header says (ITK fills the rest with zeros: a
    CT cut to its first third gave an 8.6 l liver instead of 1.9 l), and a sheared voxel grid (the sform; ITK falls
    back to the qform or straightens it, and the image lands elsewhere: 75 mm at a far corner)."""
    header, length = _nifti_bytes(path)
    orders = {o: header[:4] == NIFTI1_HEADER.to_bytes(4, e) for o, e in (("<", "little"), (">", "big"))}
    if len(header) < NIFTI1_HEADER or not any(orders.values()) or header[344:347] != b"n+1":
        return  # NIfTI-2, a .hdr/.img pair, or not NIfTI at all: ITK judges
    order = "<" if orders["<"] else ">"
    dims = np.frombuffer(header, f"{order}i2", 8, 40).astype(np.int64)
    bitpix = int(np.frombuffer(header, f"{order}i2", 1, 72)[0])
    offset = int(np.frombuffer(header, f"{order}f4", 1, 108)[0])
    expected = offset + int(np.prod(dims[1 : 1 + int(np.clip(dims[0], 1, 7))])) * bitpix // 8
    if length < expected:
        raise InputError(f"{path}: truncated: {length} of the {expected} bytes its header announces (a cut copy?)")
    if np.frombuffer(header, f"{order}i2", 1, 254)[0] > 0:  # sform_code: the sform places the image
        _require_perpendicular(np.frombuffer(header, f"{order}f4", 12, 280).reshape(3, 4)[:, :3], path)


def _nifti_bytes(path: Path) -> tuple[bytes, int]:
    """The first 348 bytes of the (decompressed) file, and its (decompressed) length."""
    with open(path, "rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raw.seek(0)
            return raw.read(NIFTI1_HEADER), path.stat().st_size
    try:
        with igzip.open(path, "rb") as stream:
            header = stream.read(NIFTI1_HEADER)
            length = len(header)
            while chunk := stream.read(1 << 24):
                length += len(chunk)
    except (EOFError, OSError) as exc:
        raise InputError(f"{path}: truncated or damaged gzip stream ({one_line(exc)})") from None
    return header, length


def _require_perpendicular(axes: np.ndarray, path: Path) -> None:
    """Voxel axes (columns) must be perpendicular: ITK and every viewer assume it, and a sheared grid is
    straightened without a word, moving the image."""
    norms = np.linalg.norm(axes, axis=0)
    if not np.all(np.isfinite(norms) & (norms > 0)):
        return  # no grid at all (a blank sform): ITK places the image by the qform
    unit = axes / norms
    cosine = float(np.abs(unit.T @ unit - np.eye(3)).max())
    if cosine > SHEAR_TOLERANCE:
        angle = np.degrees(np.arcsin(min(1.0, cosine)))
        raise InputError(
            f"{path}: sheared voxel grid (axes {angle:.1f} degrees from perpendicular); resample it to a grid with "
            "perpendicular axes first"
        )


def _read_dicom(path: Path) -> tuple[sitk.Image, str | None]:
    """The series as one volume, and a note when its slices were not evenly spaced (ITK would have spread them
    evenly, and lengths along the slice normal would be off)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(dicom_series_files(path))
    reader.MetaDataDictionaryArrayUpdateOn()  # every slice's position, without reading the files again
    try:
        with _itk_warnings():  # not shown: ITK's warning on uneven slices, handled below
            image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{path}: DICOM series could not be read ({one_line(exc)})") from None
    positions = _slice_positions(reader, image)
    steps = np.diff(positions)
    if len(steps) < 2 or np.ptp(steps) <= UNEVEN_SLICES * np.median(steps):
        return image, None
    step = float(np.median(steps))
    if steps.min() < 1e-3 * step:
        raise InputError(f"{path}: two slices at one position: the series mixes acquisitions")
    note = (
        f"{path}: slices {steps.min():.3g} to {steps.max():.3g} mm apart (missing slices?); "
        f"resampled to even {step:.3g} mm steps"
    )
    return _even_slices(image, positions, step), note


def _slice_positions(reader: sitk.ImageSeriesReader, image: sitk.Image) -> np.ndarray:
    """Each slice's position (mm) along the volume's slice normal, from its ImagePositionPatient."""
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    try:
        points = [[float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")] for i in range(image.GetDepth())]
    except (RuntimeError, ValueError):
        return np.zeros(0)  # no positions to check: ITK's spacing stands
    return np.array(points) @ normal


def _even_slices(image: sitk.Image, positions: np.ndarray, step: float) -> sitk.Image:
    """Slices at even `step`s from the first, each interpolated linearly between the two read slices around it."""
    array = sitk.GetArrayViewFromImage(image)
    targets = positions[0] + step * np.arange(int((positions[-1] - positions[0]) / step + 1e-6) + 1)
    out = np.empty((len(targets),) + array.shape[1:], np.float32)
    for k, target in enumerate(targets):
        upper = int(np.clip(np.searchsorted(positions, target, side="right"), 1, len(positions) - 1))
        w = (target - positions[upper - 1]) / (positions[upper] - positions[upper - 1])
        out[k] = (1 - w) * array[upper - 1] + w * array[upper]
    even = sitk.GetImageFromArray(out)
    even.SetOrigin(image.GetOrigin())
    even.SetDirection(image.GetDirection())
    even.SetSpacing(image.GetSpacing()[:2] + (step,))
    return even


class _WarningsKept(sitk.LoggerBase):
    """ITK's warnings as one-line texts, not printed."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def DisplayWarningText(self, text: str) -> None:  # noqa: N802 (ITK's name)
        self.texts.append(one_line(text))


_ITK_LOGGER_LOCK = threading.Lock()  # taken while the process's ITK logger is ours


@contextlib.contextmanager
def _itk_warnings() -> Iterator[list[str]]:
    """The texts of ITK's warnings during the block, kept for a read note or dropped where this module reports
    the problem itself: ITK prints them on several lines."""
    with _ITK_LOGGER_LOCK:
        logger = _WarningsKept()
        previous = logger.SetAsGlobalITKLogger()
        try:
            yield logger.texts
        finally:
            previous.SetAsGlobalITKLogger()


def dicom_source(path: str | os.PathLike) -> tuple[Path, str | None] | None:
    """The folder and series selector of a DICOM input, `FOLDER` or `FOLDER@SERIES`; None for a file."""
    path = Path(path)
    if path.is_dir():
        return path, None
    folder, sep, selector = str(path).rpartition(SERIES_SELECTOR)
    return (Path(folder), selector) if sep and selector and Path(folder).is_dir() else None


@dataclass
class Series:
    uid: str
    files: list[str]
    number: str
    description: str
    is_scan: bool  # a scan: not a SEG, structure set, report or localizer
    modality: str = ""
    acquired: str = ""  # "DATE TIME" of its first file's acquisition (else content): orders a study's phases

    @property
    def name(self) -> str:
        """What FOLDER@NAME picks it by: its number, else its UID, else UNNAMED."""
        return self.number or self.uid or UNNAMED

    def __str__(self) -> str:
        return f"{self.name} '{self.description}' ({len(self.files)} files)"


def dicom_series(folder: Path) -> list[Series]:
    """Every series in a folder, with what its first file says about it, in the order of their numbers."""
    with _itk_warnings():  # not shown: GDCM's "No Series were found", said below in one line
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise InputError(f"{folder}: folder holds no DICOM series")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames
    series = [_series(uid, list(files(str(folder), uid))) for uid in ids]
    _require_all_read(folder, series)
    return sorted(series, key=lambda s: (not s.number.isdigit(), int(s.number) if s.number.isdigit() else 0))


def _require_all_read(folder: Path, series: list[Series]) -> None:
    """GDCM leaves out, without a word, a DICOM file it cannot parse (one cut short by a failed copy), and its slice
    then passed for a missing one: name it."""
    listed = {Path(f).resolve() for s in series for f in s.files}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != "DICOMDIR" and path.resolve() not in listed and _dicom_preamble(path):
            raise InputError(f"{path}: DICOM file that cannot be read (truncated or damaged); replace or remove it")


def _dicom_preamble(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _series(uid: str, files: list[str]) -> Series:
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return Series(uid, files, "", "", False)

    def tag(key: str) -> str:
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""

    modality = tag("0008|0060")
    scan = modality not in NOT_SCANS and "LOCALIZER" not in tag("0008|0008").upper()
    date, time = ("0008|0022", "0008|0032") if tag("0008|0032") else ("0008|0023", "0008|0033")  # acquisition, content
    acquired = f"{tag(date)} {tag(time)}" if tag(time) else ""
    return Series(uid, files, tag("0020|0011"), tag("0008|103e"), scan, modality, acquired)


def dicom_series_files(path: str | os.PathLike) -> list[str]:
    """The files of the input's DICOM series, sorted along the slice normal: the series `FOLDER@SERIES` names (its
    number or UID), or the folder's only scan. Several scans and no choice is an error that lists them, because a
    study folder often holds every phase, and reading one of them as another would go unnoticed."""
    folder, selector = dicom_source(path) or (Path(path), None)
    series = dicom_series(folder)
    if selector is not None:
        chosen = [s for s in series if selector in (s.name, s.uid)]
        if len(chosen) != 1:
            problem = f"{len(chosen)} series numbered {selector}; name one by its UID" if chosen else "no such series"
            raise InputError(f"{path}: {problem}; the folder holds {_listed(series)}")
        return chosen[0].files
    scans = [s for s in series if s.is_scan] or series
    if len(scans) > 1:
        raise InputError(f"{folder}: holds {len(scans)} series, name one as FOLDER@NUMBER: {_listed(scans)}")
    return scans[0].files


def _listed(series: list[Series]) -> str:
    return "; ".join(str(s) for s in series[:MAX_LISTED]) + ("; ..." if len(series) > MAX_LISTED else "")


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write atomically: to a temporary name in the same folder, then rename.

    A `.nii.gz` is written uncompressed by SimpleITK and gzipped by ISA-L (igzip): ITK's NIfTI writer ignores the
    compression level, and took 8.4 s for a float32 512x512x120 map that igzip packs in 0.45 s (1.5 s against
    0.3 s for an int16 CT), for files 7% larger."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        return _write_image(image, path, compress)


def _write_image(image: sitk.Image, path: Path, compress: bool) -> Path:
    gzipped = compress and path.name.endswith(".nii.gz")
    suffix = ".nii" if gzipped else path.suffix
    with _temporary(path, suffix) as tmp:
        with _c_stderr():
            sitk.WriteImage(image, str(tmp), compress and not gzipped, FAST_COMPRESSION if compress else -1)
        if tmp.suffix == ".nii":
            _require_whole(tmp, image)
        if not gzipped:
            os.replace(tmp, path)
            return path
        with _temporary(path, ".nii.gz") as packed:
            with open(tmp, "rb") as source, open(packed, "wb") as raw:
                # no name and no time in the gzip header: the same image gives the same bytes
                with igzip.IGzipFile("", "wb", FAST_COMPRESSION, raw, mtime=0) as target:
                    shutil.copyfileobj(source, target, 1 << 22)
            os.replace(packed, path)
    return path


def _require_whole(nii: Path, image: sitk.Image) -> None:
    """ITK's NIfTI writer meets a full disk with a line on stderr ("wrote only 672 of 8192 bytes") and no error,
    leaving the file cut: check its length."""
    pixels = image.GetNumberOfPixels() * image.GetNumberOfComponentsPerPixel() * image.GetSizeOfPixelComponent()
    if nii.stat().st_size < NIFTI1_HEADER + pixels:
        raise OSError(errno.ENOSPC, "short write: disk full?")


def write_transform(transform: sitk.Transform, path: str | os.PathLike) -> Path:
    """Write a transform (into a staging folder: not atomic itself)."""
    with _writing(Path(path)), _c_stderr():
        sitk.WriteTransform(transform, str(path))
    return Path(path)


_STDERR_LOCK = threading.Lock()  # taken while file descriptor 2 points elsewhere


@contextlib.contextmanager
def _c_stderr() -> Iterator[list[str]]:
    """The lines ITK's C libraries print straight to file descriptor 2 during the block (niftilib's "** ERROR:
    NWAD", HDF5's many-line diagnostics, MetaImage's reasons), kept instead of shown: callers report a failure in
    one line. The descriptor is the process's, so threads take turns (two at once could leave it elsewhere)."""
    printed: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as kept:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(kept.fileno(), 2)
        try:
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            kept.seek(0)
            printed += [line.strip() for line in kept.read().decode(errors="replace").splitlines() if line.strip()]


@contextlib.contextmanager
def _writing(path: Path, errors: tuple[type[Exception], ...] = (OSError, RuntimeError)) -> Iterator[None]:
    """A full disk or a refused write as one line naming the file (ITK's writers raise RuntimeError)."""
    try:
        yield
    except errors as exc:
        raise OutputError(f"{path}: could not be written ({one_line(exc)})") from None


def require_writable(out: str | os.PathLike, folder: bool = True) -> Path:
    """Refuse, before any work, an output that cannot be written: an empty path (an unset shell variable: it would
    write into the current folder), a file where a folder goes or the reverse, or a place without write access.
    Outputs are staged beside `out`, so its parent (or the nearest folder that exists above it) is tried."""
    if not str(out).strip():
        raise OutputError("--out '': an empty path (an unset shell variable?); name the output")
    path = Path(out)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise OutputError(f"{path}: is a folder; name an image file")
    place = path.resolve().parent
    while not place.exists():
        place = place.parent
    try:
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {place} ({one_line(exc)})") from None
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: setting it to read it is not thread-safe


def _new_file(path: Path, suffix: str = "") -> tuple[int, str]:
    """A temporary file beside `path` with the permissions a new file gets: mkstemp's are its owner's alone, and
    renaming keeps them, so colleagues sharing a results folder could not open the outputs."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.chmod(tmp, 0o666 & ~UMASK)
    return fd, tmp


@contextlib.contextmanager
def _temporary(path: Path, suffix: str) -> Iterator[Path]:
    """A fresh temporary name beside `path`, removed afterwards unless it was renamed."""
    fd, tmp = _new_file(path, suffix)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_file(path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return path


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike, replaces: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a scratch folder; on success move its files into `out_dir`, on failure leave `out_dir` untouched.

    A run that fails half-way therefore never leaves a partial set of outputs for a user to mistake
    for a finished one. `replaces`: glob patterns of the files a run writes; those of an earlier run into the same
    folder that this one did not write again are removed (an earlier CT+MRI run's `aligned_mri.nii.gz` beside a
    CT-only result would pass for part of it). Other files are left alone, and so is `out_dir` when a write fails
    (a full disk: an OutputError naming it).
    """
    out_dir = Path(out_dir).resolve()
    with _writing(out_dir, (OSError,)):  # not RuntimeError: the caller's computing may raise it, a bug
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_killed_stages(out_dir)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
        try:
            yield stage
            _move_in(stage, out_dir, replaces)
        except OutputError as exc:  # the file named as the user will look for it, not in the staging folder
            raise OutputError(str(exc).replace(str(stage), str(out_dir))) from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _move_in(stage: Path, out_dir: Path, replaces: Sequence[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {item.name for item in stage.iterdir()}
    for item in sorted(stage.iterdir()):
        target = out_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    stale = {p for pattern in replaces for p in out_dir.glob(pattern) if p.name not in written}
    for path in stale:
        if path.is_file():
            path.unlink()


def _remove_killed_stages(out_dir: Path) -> None:
    """Staging folders of `out_dir` that a killed run left (SIGKILL runs no `finally`): only names mkdtemp gave
    them, so a user's own `.results.partial-notes` stays."""
    own = re.compile(rf"\.{re.escape(out_dir.name)}\.partial-[a-z0-9_]{{8}}")
    for stale in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.partial-*"):
        if stale.is_dir() and own.fullmatch(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
