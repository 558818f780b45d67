"""`liverfusion import-weights pyliverlesionseg`: turn the KU Leuven Keras weights into our model bundle.

Their weights are Apache-2.0 but not ours to redistribute inside this repository, so the bundle folder
`Resources/Models/pyliverlesionseg/` holds only its configs and model card; this step (part of `make` set-up) gets
their wheel from PyPI through pip (a package registry, reachable where pip is), checks it byte for byte against the
SHA-256 we recorded, converts both hdf5 files into one PyTorch state dict and records that file's SHA-256 beside it
for the loader. An offline site can pass the wheel file with `--wheel`. Nothing runs at inference time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from ...errors import ModelError
from ...io.images import write_text
from ...models import store as model_store
from ...networks.kuleuven_unet import KULeuvenPair, keras_state_dict

SOURCES = {"pyliverlesionseg": "pyliverlesionseg==0.3"}
CACHE = Path(os.environ.get("LIVERFUSION_CACHE", Path.home() / ".cache" / "liverfusion"))


def source_record(bundle: Path) -> dict:
    """What the bundle was converted from: the wheel and both hdf5 files with their SHA-256."""
    return json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))["converted_from"]


def fetch_wheel(requirement: str, expected_sha256: str, cache: Path = CACHE) -> Path:
    """The wheel from the cache, else from the package index through pip; verified either way."""
    name = requirement.replace("==", "-") + "-py3-none-any.whl"
    wheel = cache / name
    if not wheel.is_file() or model_store.sha256(wheel) != expected_sha256:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--ignore-requires-python",
                   "--dest", tmp, requirement]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
                raise ModelError(f"{requirement}: pip download failed ({last}); pass the wheel with --wheel")
            os.replace(Path(tmp) / name, wheel)
    return verified(wheel, expected_sha256)


def verified(path: Path, expected_sha256: str) -> Path:
    digest = model_store.sha256(path)
    if digest != expected_sha256:
        raise ModelError(f"{path}: SHA-256 {digest[:12]}... is not the recorded {expected_sha256[:12]}...")
    return path


def convert(wheel: Path, record: dict) -> dict[str, torch.Tensor]:
    """Both Keras models of the wheel as one state dict of `KULeuvenPair`."""
    pair = KULeuvenPair()
    state = {}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as archive:
        for part in ("liver", "lesion"):
            member = record[part]["path"]
            try:
                hdf5 = verified(Path(archive.extract(member, tmp)), record[part]["sha256"])
            except KeyError:
                raise ModelError(f"{wheel}: no {member} inside") from None
            state |= {f"{part}.{k}": v for k, v in keras_state_dict(hdf5, getattr(pair, part)).items()}
    pair.load_state_dict(state)  # every tensor present, every shape right
    return state


def import_weights(name: str, wheel: Path | None = None, cache: Path = CACHE, force: bool = False) -> Path:
    """Convert `name`'s weights into its bundle; a bundle that already verifies is left as it is."""
    if name not in SOURCES:
        raise ModelError(f"{name}: unknown source (known: {', '.join(SOURCES)})")
    bundle = model_store.resolve(name)
    weights = bundle / "models" / "model.pt"
    if not force and weights.is_file() and model_store.expected_sha256(bundle) == model_store.sha256(weights):
        return weights
    record = source_record(bundle)
    expected = record["wheel_sha256"]
    wheel = verified(wheel, expected) if wheel else fetch_wheel(SOURCES[name], expected, cache)
    state = convert(wheel, record)
    weights.parent.mkdir(parents=True, exist_ok=True)
    partial = weights.with_name(f".{weights.name}.partial")
    torch.save(state, partial)
    write_text(model_store.sha256(partial) + "\n", model_store.checksum_file(bundle))
    os.replace(partial, weights)
    return weights
