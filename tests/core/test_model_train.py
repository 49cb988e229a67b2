"""Training G2: a short run on real faces, progress events, cancellation and augmentation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from s2ld_core import schema
from s2ld_core.augment import save_augmentation_sheet, synthesize
from s2ld_core.model import G2, G2Config
from s2ld_core.train import TrainConfig, autocast_dtype, evaluate_faces, gaussian_targets, heatmap_loss, make_val_faces, train
from s2ld_core.training_data import Sample, load_points_csv
from tests.core.fixture_faces import FACES_DIR


def _fixture_samples() -> list[Sample]:
    faces = load_points_csv(FACES_DIR / "points.csv")
    return [
        Sample(image=faces.images[i], xy=faces.xy[i], state=faces.state[i], high_res=False, key=faces.keys[i])
        for i in range(len(faces.keys))
    ]


def _small_config(**overrides) -> TrainConfig:
    # sigma 1.5: a broad target learns faster from 32 faces than the default of 1.0.
    values = dict(model=G2Config(widths=(16, 16, 24, 32)), sigma=1.5, epochs=40, batch_size=32, lr=5e-3, warmup_epochs=2,
                  patience=40, threads=1, device="cpu", batch_event_every=1)
    values.update(overrides)
    return TrainConfig(**values)


def test_short_training_lowers_val_nme():
    samples = _fixture_samples()
    train_samples, val_samples = samples[:32], samples[32:]
    config = _small_config(epochs=80)

    torch.manual_seed(config.seed)
    untrained = G2(config.model).eval()
    val_faces = make_val_faces(val_samples, config.val_sizes, config.val_jpeg_quality)
    before = float(np.nanmean(evaluate_faces(untrained, val_faces, torch.device("cpu"))[0]))

    events = list(train(train_samples, config, val_samples=val_samples))
    result = events[-1].result
    assert events[0].kind == "start"
    assert events[-1].kind == "done"
    # 80 single-batch epochs take the NME from about 1.7 (untrained) to about 0.3.
    assert result.best_val_nme < 0.4 * before
    assert result.best_val_nme < 0.45
    assert result.val_metrics["nme"]["mean"] == pytest.approx(result.best_val_nme, rel=1e-4)


def test_events_report_progress():
    samples = _fixture_samples()
    events = list(train(samples[:32], _small_config(epochs=2), val_samples=samples[32:]))
    kinds = [e.kind for e in events]
    assert kinds.count("epoch") == 2
    assert "batch" in kinds
    epoch_events = [e for e in events if e.kind == "epoch"]
    assert all(e.val_nme is not None and e.loss > 0 for e in epoch_events)
    assert epoch_events[1].elapsed_s >= epoch_events[0].elapsed_s
    assert set(events[-1].to_dict()) >= {"kind", "epoch", "val_nme", "elapsed_s"}


def test_cancel_token_stops_training():
    samples = _fixture_samples()
    cancel = threading.Event()
    events = []
    for event in train(samples[:32], _small_config(epochs=50), val_samples=samples[32:], cancel=cancel):
        events.append(event)
        if event.kind == "epoch" and event.epoch == 1:
            cancel.set()
    assert events[-1].kind == "cancelled"
    assert events[-1].result is not None
    assert max(e.epoch for e in events if e.kind == "epoch") == 1


def test_synthesized_points_follow_the_face(cnn_facepoint_dir):
    from s2ld_core.training_data import load_cnn_facepoint

    samples = load_cnn_facepoint(cnn_facepoint_dir, "train", limit=20)
    rng = np.random.default_rng(3)
    for sample in samples:
        image, uv, state = synthesize(sample, rng, 32)
        assert image.shape == (32, 32, 3)
        assert np.all(state == schema.PointState.VISIBLE)
        # Left/right stay image-left/image-right after any flip, and the eyes sit above the mouth.
        assert uv[0, 0] < uv[1, 0]
        assert uv[3, 0] < uv[4, 0]
        assert uv[:2, 1].mean() < uv[3:, 1].mean()


def test_synthesis_of_low_res_sample_keeps_points_inside():
    rng = np.random.default_rng(0)
    for sample in _fixture_samples()[:10]:
        image, uv, state = synthesize(sample, rng, 32)
        assert image.dtype == np.uint8
        assert np.all((uv > -2) & (uv < 34))
        assert uv[0, 0] < uv[1, 0]


def test_augmentation_sheet_written(tmp_path):
    import cv2

    path = save_augmentation_sheet(_fixture_samples(), tmp_path / "sheet.png", n=8, columns=4)
    sheet = cv2.imread(str(path))
    assert sheet.shape == (2 * 128, 4 * 128, 3)
    assert sheet.std() > 10


def _one_target(u: float, v: float) -> torch.Tensor:
    uv = torch.tensor([[[u, v]] * 5], dtype=torch.float32)
    return gaussian_targets(uv, torch.ones(1, 5, dtype=torch.bool), 32, 1.5, True)


@pytest.mark.parametrize("kind", ["mse", "awing"])
def test_heatmap_loss_grows_with_distance(kind):
    target = _one_target(15.0, 15.0)
    assert torch.allclose(heatmap_loss(target, target, kind), torch.zeros(1, 6), atol=1e-5)
    near = heatmap_loss(_one_target(15.5, 15.0), target, kind)[0, :5]
    far = heatmap_loss(_one_target(18.0, 15.0), target, kind)[0, :5]
    assert torch.all(near > 0)
    assert torch.all(far > near)


def test_unknown_loss_and_precision_rejected():
    target = _one_target(15.0, 15.0)
    with pytest.raises(ValueError, match="'l1'"):
        heatmap_loss(target, target, "l1")
    with pytest.raises(ValueError, match="'fp8'"):
        autocast_dtype(torch.device("cpu"), "fp8")
    assert autocast_dtype(torch.device("cpu"), "fp32") is None
    assert autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    samples = _fixture_samples()
    with pytest.raises(ValueError, match="'huber'"):
        list(train(samples[:32], _small_config(epochs=1, loss="huber"), val_samples=samples[32:]))
