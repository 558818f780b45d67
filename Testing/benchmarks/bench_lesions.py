"""Which true lesions the shipped network finds, and whether mirrored test-time passes find more: issue 5's held-out
phantoms (the seeds of bench_models.py), one deformable alignment per case.

Per case the network runs on its input and on the input flipped along each axis (test-time augmentation as in
nnU-Net, which uses all 8 mirrorings; training flips every axis). Two predictions are scored: the plain pass and the
mean of the 4 (`--plain`: the plain pass alone).
Per true lesion of `case.json` it records the type, diameter, whether each prediction touches it, and its contrast
to noise in every input: |mean(lesion) - mean(liver ring 2-6 mm around it)| / std(that ring), on the input's own
image and label. Prints the case rows and their lesions (a JSON line each), the summary per protocol and prediction,
and detection by size and by contrast.
Not a test. Usage: python Testing/benchmarks/bench_lesions.py [--cases 20] [--seeds 9000 9500] [--model NAME_OR_DIR]
       [--json FILE] [--plain]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from benchlib import SEEDS, aligned_case, generated_cases, json_argument, write_json

from liverfusion.constants import LIVER, TUMOR
from liverfusion.evaluation.held_out import score, summarise
from liverfusion.evaluation.metrics import on_grid_of
from liverfusion.inference import pipeline
from liverfusion.inference.device import pick_device
from liverfusion.inference.postprocess import lesion_components
from liverfusion.inference.sliding_window import predict
from liverfusion.io.images import read_image
from liverfusion.models import grid as grid_model
from liverfusion.models import store as model_store
from liverfusion.models.interface import Prediction

MIRRORS = [axes for n in range(2) for axes in itertools.combinations((1, 2, 3), n)]  # plain, then each axis
VARIANTS = {"plain": 1, "mirror4": 4}  # the mean of the first k of MIRRORS


def mirrored_predictions(network, stacked, present, roi, device, count: int) -> list[Prediction]:
    """The network on the first `count` mirrorings of the input, each output flipped back."""
    out = []
    for axes in MIRRORS[:count]:
        p = predict(network, np.ascontiguousarray(np.flip(stacked, axes)), present, roi, device)
        back = [np.ascontiguousarray(np.flip(a, axes)) for a in (p.probabilities, p.fusion_weights)]
        logits = np.ascontiguousarray(np.flip(p.malignancy_logits, [a - 1 for a in axes]))
        out.append(Prediction(back[0], logits, back[1], p.notes))
    return out


def mean_of(preds: list[Prediction]) -> Prediction:
    fields = ("probabilities", "malignancy_logits", "fusion_weights")
    return Prediction(*(np.mean([getattr(p, k) for p in preds], 0, dtype=np.float32) for k in fields))


def component_at(label: sitk.Image, transform: sitk.Transform, centre_mm: list[float]) -> sitk.Image | None:
    """The tumour component of `label` at the lesion centre `centre_mm` (reference frame, mapped into the label by
    `transform`); None when the centre is outside the image or not tumour there."""
    index = label.TransformPhysicalPointToIndex(transform.TransformPoint(centre_mm))
    if not all(0 <= i < n for i, n in zip(index, label.GetSize())) or label[index] != TUMOR:
        return None
    cc = lesion_components(label == TUMOR)
    return cc == cc[index]


def lesion_contrast(image: sitk.Image, label: sitk.Image, lesion: sitk.Image) -> float | None:
    """Contrast to noise of `lesion` (a mask on `label`'s grid) against the liver 2-6 mm around it in `image`."""
    near = sitk.BinaryDilate(lesion, [max(1, round(2 / s)) for s in label.GetSpacing()])
    far = sitk.BinaryDilate(lesion, [max(1, round(6 / s)) for s in label.GetSpacing()])
    ring = sitk.GetArrayFromImage(far & ~near & (label == LIVER)).astype(bool)
    if ring.sum() < 5:
        return None
    inside = sitk.GetArrayFromImage(lesion).astype(bool)
    values = sitk.GetArrayViewFromImage(image)
    return float(abs(values[inside].mean() - values[ring].mean()) / max(values[ring].std(), 1e-6))


def lesion_rows(case: Path, info: dict, labels: dict[str, sitk.Image], truth: sitk.Image) -> list[dict]:
    """One row per true lesion: type, diameter, found by each prediction, contrast per input (each input's image,
    label and truth transform read once)."""
    inputs = {
        role: (
            sitk.ReadTransform(str(case / meta["truth_transform"])),
            read_image(case / f"label_{role}.nii.gz", label=True),
            read_image(case / f"{role}.nii.gz"),
        )
        for role, meta in info["images"].items()
    }
    found_in = {name: sitk.GetArrayFromImage(on_grid_of(pred, truth)) == TUMOR for name, pred in labels.items()}
    rows = []
    for lesion in info["lesions"]:
        centre = lesion["center_world_mm"]
        component = component_at(truth, inputs[info["reference"]][0], centre)
        if component is None:
            continue
        mask = sitk.GetArrayFromImage(component).astype(bool)
        row = {"case": case.name, "type": lesion["type"], "diameter_mm": lesion["diameter_mm"]}
        row.update({f"found_{name}": bool(found[mask].any()) for name, found in found_in.items()})
        for role, (transform, label, image) in inputs.items():
            own = component_at(label, transform, centre)
            row[f"cnr_{role}"] = None if own is None else lesion_contrast(image, label, own)
        rows.append(row)
    return rows


def run_case(case: Path, model, device, variants: dict[str, int]) -> tuple[dict[str, dict], list[dict]]:
    """Score each prediction of `variants`; the network runs once per mirroring, the rest is the pipeline's own."""
    images, reference, regs, truth, info = aligned_case(case, model, "deformable", device)
    transforms = {role: r.transform for role, r in regs.items()}
    cache: list[Prediction] = []
    rows, labels = {}, {}
    original = grid_model.predict
    count = max(variants.values())
    for name, k in variants.items():

        def averaged(network, stacked, present, roi, device, progress=False, k=k):
            cache.extend([] if cache else mirrored_predictions(network, stacked, present, roi, device, count))
            return mean_of(cache[:k])

        grid_model.predict = averaged
        try:
            grid, pred = model.predict(images, reference, transforms, device)
        finally:
            grid_model.predict = original
        result = pipeline._postprocess(pred, grid, images, reference, regs)
        rows[name] = {"case": case.name, **score(result["labels"], truth, info, result["probability"])}
        labels[name] = result["labels"]
    return rows, lesion_rows(case, info, labels, truth)


def print_detection(lesions: list[dict], variants: dict[str, int]) -> None:
    """Lesion recall of each prediction by diameter and by the best contrast over the inputs."""
    for lesion in lesions:
        cnrs = [v for k, v in lesion.items() if k.startswith("cnr_") and v is not None]
        lesion["best_cnr"] = max(cnrs) if cnrs else None
    bins = {
        "diameter_mm": ((0, 10), (10, 20), (20, 40), (40, 1000)),
        "best_cnr": ((0, 1), (1, 2), (2, 4), (4, 1e9)),
    }
    for key, edges in bins.items():
        for low, high in edges:
            inside = [x for x in lesions if x[key] is not None and low <= x[key] < high]
            found = " ".join(f"{n} {sum(x[f'found_{n}'] for x in inside)}" for n in variants)
            print(f"{key} [{low:g}, {high:g}): {len(inside)} lesions, found: {found}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=20, help="per protocol")
    p.add_argument("--seeds", type=int, nargs=2, default=list(SEEDS), help="as bench_models.py's")
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="auto")
    json_argument(p, __file__)
    p.add_argument("--plain", action="store_true", help="the plain pass only (a quarter of the network time)")
    args = p.parse_args()
    device = pick_device(args.device)
    model = model_store.load_model(args.model, device)
    rows: dict[tuple[str, str], list[dict]] = {}
    lesions: list[dict] = []
    variants = {"plain": 1} if args.plain else VARIANTS
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, case in generated_cases(Path(tmp), args.cases, args.seeds):
            case_rows, case_lesions = run_case(case, model, device, variants)
            lesions += case_lesions
            for lesion in case_lesions:
                print(json.dumps(lesion), flush=True)
            for name, row in case_rows.items():
                for key in (protocol, "both"):
                    rows.setdefault((key, name), []).append(row)
                print(
                    f"{case.name} {name}: tumour {row['tumor_dice']:.3f} lesions "
                    f"{row['lesions_found']}/{row['lesions_true']} p={row['probability']:.2f}",
                    flush=True,
                )
    summaries = {}
    for (protocol, name), done in rows.items():
        s = summaries[f"{protocol}/{name}"] = summarise(done)
        keys = ("liver_dice", "tumor_dice", "tumor_precision", "tumor_sensitivity", "lesion_recall", "auc")
        cells = " ".join(f"{k} {'n/a' if s[k] is None else f'{s[k]:.3f}'}" for k in keys)
        print(f"{protocol:>10} {name}: {cells} ({s['cases']} cases)")
    print_detection(lesions, variants)
    write_json(args.json, {"summary": summaries, "lesions": lesions}, args)


if __name__ == "__main__":
    main()
