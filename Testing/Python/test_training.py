"""The trainer's batches and schedule: reproducible whatever the number of worker processes."""

import json

import numpy as np
import pytest
import torch

from liverfusion.cli import main
from liverfusion.training.trainer import (
    Losses,
    TrainConfig,
    augmentations,
    batches,
    case_shares,
    crop_weights,
    learning_rate_factor,
)


def _cases() -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for present in ([0, 0, 1, 0, 1], [1, 1, 1, 1, 0]):
        label = np.zeros((1, 30, 30, 30), np.uint8)
        label[0, 5:25, 5:25, 5:25] = 1
        label[0, 12:18, 12:18, 12:18] = 2
        image = rng.standard_normal((5, 30, 30, 30)).astype(np.float32) * np.array(present)[:, None, None, None]
        out.append({"image": image, "label": label, "present": np.array(present, np.float32), "malignant": 1.0})
    return out


def test_batches_are_the_same_with_or_without_workers():
    cfg = TrainConfig(patch=(16, 16, 16), batch_size=2, steps=4, seed=3)
    serial = list(batches(_cases(), cfg, 0))
    parallel = list(batches(_cases(), TrainConfig(**{**cfg.__dict__, "workers": 2}), 0))
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel, strict=True):
        # the same draws; resampling sums in another order on one thread (workers) than on several
        assert torch.allclose(a[0], b[0], atol=1e-5)
        for x, y in zip(a[1:], b[1:], strict=True):
            assert torch.equal(x, y)
    image, label, _, present = serial[0]
    assert image.shape == (2, 5, 16, 16, 16) and label.shape == (2, 1, 16, 16, 16)
    assert (image[:, present[0] == 0] == 0).all()  # missing (or dropped) modalities are zeros


def test_resumed_batches_continue_the_same_sequence():
    cfg = TrainConfig(patch=(16, 16, 16), batch_size=2, steps=4, seed=3)
    assert torch.equal(list(batches(_cases(), cfg, 0))[3][0], list(batches(_cases(), cfg, 3))[0][0])


def test_schedule_warms_up_then_anneals_to_zero_by_steps_or_by_time():
    cfg = TrainConfig(steps=1000)
    assert learning_rate_factor(0, 0, cfg) < 0.1 and learning_rate_factor(50, 0, cfg) == 1.0
    assert learning_rate_factor(999, 0, cfg) < 1e-3
    timed = TrainConfig(steps=10**6, minutes=1.0)
    assert learning_rate_factor(10, 59.9, timed) < 1e-3  # the time budget ends the schedule, not the step count


def _two_lesions() -> dict:
    """A liver with a 16 mm-wide lesion (4096 voxels) and a 2-voxel one; the image marks the small one."""
    label = np.zeros((1, 64, 64, 64), np.uint8)
    label[0, 6:58, 6:58, 6:58] = 1
    label[0, 10:26, 10:26, 10:26] = 2
    label[0, 40, 40, 40:42] = 2
    image = np.zeros((1, 64, 64, 64), np.float32)
    image[0, 40, 40, 40:42] = 1.0
    return {"image": image, "label": label}


def test_crop_weights_give_each_lesion_an_equal_share_of_the_tumour_crops():
    case = _two_lesions()
    w = crop_weights(case["label"])
    big, small = w[0, 10:26, 10:26, 10:26].sum(), w[0, 40, 40, 40:42].sum()
    assert np.isclose(big, small) and np.isclose(big + small, 6 * w[case["label"] == 1].sum())
    assert np.isclose(w[case["label"] == 0].sum(), w[case["label"] == 1].sum())


def test_crop_weights_count_a_lesion_joined_at_a_corner_once():
    case = _two_lesions()
    case["label"][0, 41, 41, 42] = 2  # the small lesion steps diagonally: one lesion, as the post-processing says
    w = crop_weights(case["label"])
    assert np.isclose(w[0, 40, 40, 40:42].sum() + w[0, 41, 41, 42], w[0, 10:26, 10:26, 10:26].sum())


def test_lesion_crops_reach_a_small_lesion_that_voxel_crops_almost_never_do():
    def share_with_small_lesion(lesion_crops: bool) -> float:
        case = _two_lesions()
        if lesion_crops:
            case["weight"] = crop_weights(case["label"])
        transform = augmentations((16, 16, 16), lesion_crops, spatial=False)  # a 2-voxel lesion blurs when rotated
        transform.set_random_state(seed=0)
        return float(np.mean([transform(case)[0]["image"].max() > 0.5 for _ in range(200)]))  # 1 +- 0.2

    voxel, lesion = share_with_small_lesion(False), share_with_small_lesion(True)
    assert voxel < 0.05  # 2 of 4098 tumour voxels, plus the odd liver crop nearby
    assert 0.3 < lesion < 0.5  # 6/8 x 1/2 of the crops, plus the odd other crop nearby


def _ball_case() -> dict:
    """A liver with a 5-voxel-radius lesion; the image is the label itself, so that the two can be compared."""
    grid = np.indices((48, 48, 48)) - 24
    label = np.zeros((1, 48, 48, 48), np.uint8)
    label[0, 4:44, 4:44, 4:44] = 1
    label[0][(grid**2).sum(0) <= 25] = 2
    return {"image": label.astype(np.float32), "label": label}


def _patches(spatial: bool, n: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    transform = augmentations((24, 24, 24), spatial=spatial)
    transform.set_random_state(seed=1)
    out = []
    for _ in range(n):
        sample = transform(_ball_case())[0]
        out.append((np.asarray(sample["image"])[0], np.asarray(sample["label"])[0]))
    return out


def test_spatial_augmentation_moves_image_and_label_together():
    for image, label in _patches(spatial=True):
        assert image.shape == label.shape == (24, 24, 24)
        assert set(np.unique(label)) <= {0, 1, 2}
        # bilinear image and nearest-neighbour label of one deformation: they differ only at class borders
        assert np.mean(np.rint(image) != label) < 0.02


def test_spatial_augmentation_rotates_scales_and_deforms_where_flips_cannot():
    def ball_sizes(spatial: bool) -> set[int]:
        """Tumour voxels of the patches that hold the whole ball (tumour, but none on a face)."""
        faces = (np.s_[[0, -1]], np.s_[:, [0, -1]], np.s_[:, :, [0, -1]])
        whole = [label for _, label in _patches(spatial) if (label == 2).any()]
        return {int((label == 2).sum()) for label in whole if not any((label[f] == 2).any() for f in faces)}

    assert len(ball_sizes(spatial=False)) == 1  # flips keep a whole ball's voxel count
    sizes = ball_sizes(spatial=True)
    assert len(sizes) > 3 and max(sizes) / min(sizes) > 1.2  # scaled by up to 15% each way: volume x 0.6-1.5


@pytest.mark.slow
def test_train_with_lesion_crops_and_lr_writes_a_bundle_that_says_so(small_ctmri, small_multiphase, tmp_path):
    bundle = tmp_path / "lesion_crops"
    data = ["--data", str(small_ctmri.parent), str(small_multiphase.parent), "--val", str(small_multiphase)]
    args = ["train", *data, "--out", str(bundle)]
    assert main([*args, "--steps", "2", "--batch-size", "2", "--lesion-crops", "--lr", "3e-4", "--device", "cpu"]) == 0
    config = json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    train = config["train"]
    assert train["lesion_crops"] is True and train["lr"] == 3e-4 and train["spatial_augment"] is True
    assert config["architecture"] == "fusion" and config["normalisation"]["ct_window_hu"] == [-21.0, 189.0]
    assert config["network"] == {"features": [12, 24, 48, 96], "encoder": "unet", "n_modalities": 5, "n_classes": 3}
    meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    assert {"monai_version", "optional_packages_version", "description", "authors", "copyright"} <= set(meta)
    card = (bundle / "docs" / "README.md").read_text(encoding="utf-8")
    assert "each lesion gets an equal share" in card and "AdamW lr 0.0003 " in card and "elastic deformation" in card


def test_patches_keep_the_patients_left_on_the_left():
    """No mirroring: on the LPS model grid the liver is always on the patient's right; a patch of an image that
    rises from the patient's right to left must rise the same way, rotated a little at most."""
    ramp = np.broadcast_to(np.arange(48, dtype=np.float32), (1, 48, 48, 48)).copy()
    case = {"image": ramp, "label": np.ones((1, 48, 48, 48), np.uint8)}
    for spatial in (False, True):
        transform = augmentations((24, 24, 24), spatial=spatial)
        transform.set_random_state(seed=2)
        for _ in range(30):
            image = np.asarray(transform(case)[0]["image"])[0]
            assert image[:, :, -1].mean() > image[:, :, 0].mean()


def test_case_shares_weigh_each_data_folder_by_its_mix():
    assert case_shares([["a", "b"], ["c"]], None) == [1.0, 1.0, 1.0]
    assert case_shares([["a", "b"], ["c"]], [0.8, 0.2]) == [0.4, 0.4, 0.2]


def test_batches_draw_cases_in_proportion_to_their_share():
    cases = _cases()
    cases[0]["share"], cases[0]["malignant"] = 0.9, 1.0
    cases[1]["share"], cases[1]["malignant"] = 0.1, 0.0
    cfg = TrainConfig(patch=(16, 16, 16), batch_size=1, steps=200, seed=0, spatial_augment=False)
    first = np.mean([float(b[2][0]) for b in batches(cases, cfg, 0)])
    assert 0.83 < first < 0.97  # 9 in 10, not the even draw of cases without shares


def test_the_malignancy_loss_skips_cases_whose_lesion_type_is_unknown():
    losses = Losses()
    label = torch.zeros(2, 1, 8, 8, 8)
    label[:, :, 2:6, 2:6, 2:6] = 2
    seg = torch.zeros(2, 3, 8, 8, 8)
    out = {"seg": seg, "deep": [seg, seg], "malignancy": torch.full((2, 1, 8, 8, 8), 3.0)}
    known = losses(out, label, torch.tensor([1.0, 1.0]))
    unknown = losses(out, label, torch.tensor([1.0, float("nan")]))
    benign = losses(out, label, torch.tensor([1.0, 0.0]))
    assert torch.isfinite(unknown) and torch.isclose(unknown, known) and benign > known


def test_train_refuses_a_data_folder_without_cases_and_a_mix_of_the_wrong_length(small_ctmri, tmp_path, capsys):
    """A folder of folders of cases holds no case at its top: its share of the mix would vanish without a word."""
    nested = tmp_path / "phantoms"
    (nested / "ctmri").mkdir(parents=True)
    (nested / "ctmri" / "case").symlink_to(small_ctmri)
    args = ["train", "--out", str(tmp_path / "model"), "--steps", "1", "--device", "cpu"]
    assert main([*args, "--data", str(small_ctmri.parent), str(nested)]) == 2
    assert f"error: {nested}: no case folders" in capsys.readouterr().err
    assert main([*args, "--data", str(small_ctmri.parent), "--mix", "0.5", "0.5"]) == 2
    assert "--mix: 2 shares for 1 --data folders" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()
