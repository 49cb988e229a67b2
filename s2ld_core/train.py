"""Training of G2 on human-labelled faces, as a generator of progress events.

:func:`train` takes :class:`~s2ld_core.training_data.Sample` objects made from human labels
(consensus, one annotator's labels, or an external landmark set), never model
predictions. A caller must not turn stored predictions into samples unless a person has
corrected or accepted them. Every batch is synthesised afresh by :mod:`s2ld_core.augment`.

Each epoch ends with a validation pass on fixed low-resolution faces, and the weights with
the lowest validation NME (of an exponential moving average of the weights) are kept.
Training stops after ``epochs``, after ``patience`` epochs without improvement, when
``max_minutes`` have passed, or when the cancel token is set. The last event has kind
"done" or "cancelled" and carries a :class:`TrainResult`.

Command line (the default model)::

    python -m s2ld_core.train --preset default --data PATH/cnn_facepoint --out assets/models/default
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch

from s2ld_core import schema
from s2ld_core.augment import AugmentConfig, synthesize
from s2ld_core.checkpoint import ModelCard, save_checkpoint
from s2ld_core.heatmaps import DEFAULT_SIGMA, calibrate_visibility_threshold
from s2ld_core.inference import predict_points
from s2ld_core.lowres import crop_and_resize, jpeg_roundtrip, map_points, square_crop_box
from s2ld_core.metrics import nme, summarise
from s2ld_core.model import G2, G2Config, normalise_input
from s2ld_core.training_data import Sample, data_hash, load_cnn_facepoint

log = logging.getLogger(__name__)


class CancelToken(Protocol):
    """Anything with ``is_set()``, such as ``threading.Event`` or ``multiprocessing.Event``."""

    def is_set(self) -> bool: ...


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    model: G2Config = field(default_factory=G2Config)
    sigma: float = DEFAULT_SIGMA
    epochs: int = 100
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 2.0
    ema_decay: float = 0.998
    patience: int = 25
    seed: int = 0
    val_fraction: float = 0.08
    val_sizes: tuple[int, ...] = (16, 20, 24, 28, 32)
    val_jpeg_quality: int = 50
    max_minutes: float | None = None
    threads: int | None = None
    device: str = "auto"
    batch_event_every: int = 10
    precision: str = "auto"
    loss: str = "mse"

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    # The shipped default model: 150 epochs (early stopping aside), about 55 minutes on one
    # thread of a CPU with native bfloat16.
    "default": dict(epochs=150, patience=25),
    # A few minutes: checks that the pipeline learns.
    "quick": dict(epochs=3, patience=3),
}


@dataclass
class TrainResult:
    """Outcome of a run: the best model (eval mode, CPU) and what is known about it."""

    model: G2
    best_epoch: int
    best_val_nme: float
    epochs_run: int
    visibility_threshold: float
    val_metrics: dict
    history: list[dict]
    data_hash: str
    n_train: int
    n_val: int
    seconds: float
    stopped_by: str


@dataclass
class TrainEvent:
    """One progress report.

    ``kind`` is "start", "batch", "epoch", "done" or "cancelled". A loss is the squared
    heatmap error summed over pixels and averaged over channels and faces. ``val_nme`` is a
    fraction of the inter-ocular distance, and ``elapsed_s`` counts from the start of training.
    """

    kind: str
    epoch: int
    epochs: int
    batch: int = 0
    batches: int = 0
    loss: float | None = None
    val_nme: float | None = None
    best_val_nme: float | None = None
    lr: float | None = None
    elapsed_s: float = 0.0
    message: str = ""
    result: TrainResult | None = None

    def to_dict(self) -> dict:
        """Return the event without its result, as plain JSON-compatible values."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "result"}


#: Heatmap losses selectable by name in :class:`TrainConfig`.
LOSSES = ("mse", "awing")

#: Training precisions: "auto" is float16 mixed precision on CUDA, bfloat16 autocast on CPUs
#: with native bfloat16 support, and float32 otherwise.
PRECISIONS = ("auto", "fp32", "bf16")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Return the autocast dtype for ``device`` under ``precision``, or None for float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "bf16" or cpu_has_bf16():
        return torch.bfloat16
    return None


def cpu_has_bf16() -> bool:
    """True when this CPU runs bfloat16 convolutions natively (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def heatmap_loss(output: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Compute the per-channel loss (N, C) of ``output`` against ``target`` heatmaps, summed over pixels.

    "mse" is the squared error. "awing" is the adaptive wing loss of Wang, Bo and Fuxin
    (ICCV 2019) with omega 14, theta 0.5, epsilon 1 and alpha 2.1. It penalises small errors
    near a peak more than the squared error does. Foreground pixels (target above 0.2 after a
    3 x 3 dilation) weigh 10 times as much as the rest.
    """
    if kind == "mse":
        return ((output - target) ** 2).sum(dim=(2, 3))
    if kind != "awing":
        raise ValueError(f"unknown loss {kind!r}; use one of {LOSSES}")
    omega, theta, epsilon, alpha = 14.0, 0.5, 1.0, 2.1
    error = (output - target).abs()
    power = alpha - target
    ratio = theta / epsilon
    a = omega / (1.0 + ratio**power) * power * ratio ** (power - 1.0) / epsilon
    c = theta * a - omega * torch.log1p(ratio**power)
    small = omega * torch.log1p((error / epsilon) ** power)
    large = a * error - c
    per_pixel = torch.where(error < theta, small, large)
    foreground = torch.nn.functional.max_pool2d(target, 3, stride=1, padding=1) > 0.2
    weight = 1.0 + 9.0 * foreground.float()
    return (per_pixel * weight).sum(dim=(2, 3))


def pick_device(name: str = "auto") -> torch.device:
    """Return CUDA for "auto" when it is available, else CPU; other names are passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def gaussian_targets(uv: torch.Tensor, visible: torch.Tensor, size: int, sigma: float, background: bool) -> torch.Tensor:
    """Batch version of :func:`s2ld_core.heatmaps.encode_heatmaps`: (N, K, 2) points -> (N, K [+1], S, S)."""
    grid = torch.arange(size, dtype=torch.float32, device=uv.device)
    u = torch.nan_to_num(uv[..., 0:1], nan=-1e4)
    v = torch.nan_to_num(uv[..., 1:2], nan=-1e4)
    gx = torch.exp(-((grid - u) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((grid - v) ** 2) / (2 * sigma**2))
    maps = gy[..., :, None] * gx[..., None, :]
    maps = maps * visible[..., None, None].float()
    if background:
        maps = torch.cat([maps, 1.0 - maps.amax(dim=1, keepdim=True)], dim=1)
    return maps


def make_val_faces(samples: list[Sample], sizes: tuple[int, ...], jpeg_quality: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Cut fixed validation faces: high-resolution samples like the evaluation sets, sizes in turn.

    A high-resolution sample becomes a square crop of 1.25 x its box side, area-downscaled
    to the next size of ``sizes`` and JPEG-compressed. A low-resolution sample is used as is.
    """
    faces = []
    for i, s in enumerate(samples):
        if s.high_res:
            size = sizes[i % len(sizes)]
            x0, y0, side = square_crop_box(s.bbox)
            crop, scale = crop_and_resize(s.image, x0, y0, side, size)
            crop = jpeg_roundtrip(crop, jpeg_quality)
            xy = map_points(s.xy, x0, y0, scale)
            faces.append((crop, xy, s.state))
        else:
            faces.append((s.image, s.xy, s.state))
    return faces


def evaluate_faces(model: G2, faces: list, device: torch.device, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return per-face NME (N,) and peak confidences (N, K) of ``model`` on validation faces."""
    images = [f[0] for f in faces]
    xy, confidence = predict_points(model, images, device, flip=flip)
    gt = np.stack([f[1] for f in faces])
    state = np.stack([f[2] for f in faces])
    return nme(xy, gt, state), confidence


class _Ema:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: G2, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: G2) -> None:
        # The decay ramps up over the first updates so that short runs are not dominated by the initial weights.
        self.updates += 1
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        source = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.is_floating_point():
                value.mul_(decay).add_(source[name].detach(), alpha=1.0 - decay)
            else:
                value.copy_(source[name])


def _lr_factor(step: int, warmup: int, progress: float) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay over ``progress`` from 0 to 1."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(
    samples: list[Sample],
    config: TrainConfig | None = None,
    val_samples: list[Sample] | None = None,
    cancel: CancelToken | None = None,
    augment: AugmentConfig | None = None,
    initial_state: dict | None = None,
) -> Iterator[TrainEvent]:
    """Train a G2 on human-labelled ``samples`` and yield :class:`TrainEvent` objects.

    Without ``val_samples`` a seeded ``config.val_fraction`` of ``samples`` is held out.
    ``initial_state`` (a state dict) starts from earlier weights, for fine-tuning.
    """
    config = config or TrainConfig()
    augment = augment or AugmentConfig()
    start_time = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)

    device = pick_device(config.device)
    if device.type == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    amp_dtype = autocast_dtype(device, config.precision)
    use_amp = amp_dtype is not None
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; use one of {LOSSES}")

    if val_samples is None:
        order = rng.permutation(len(samples))
        n_val = max(1, int(round(len(samples) * config.val_fraction)))
        val_samples = [samples[i] for i in order[:n_val]]
        samples = [samples[i] for i in order[n_val:]]
    if not samples:
        raise ValueError("no training samples left after holding out validation faces")
    val_faces = make_val_faces(val_samples, config.val_sizes, config.val_jpeg_quality)
    hash_value = data_hash(samples + val_samples)

    model = G2(config.model)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    model = model.to(device).to(memory_format=torch.channels_last)
    ema = _Ema(model, config.ema_decay)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # Only float16 needs loss scaling; bfloat16 has float32's exponent range.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    size = config.model.input_size
    n_landmarks = config.model.n_landmarks
    batches = max(1, len(samples) // config.batch_size)
    total_steps = batches * config.epochs
    warmup_steps = int(config.warmup_epochs * batches)
    yield TrainEvent("start", 0, config.epochs, batches=batches, elapsed_s=0.0,
                     message=f"{len(samples)} training and {len(val_faces)} validation faces on {device}")

    best_nme, best_epoch, best_state, history = float("inf"), 0, None, []
    stopped_by, step, epoch = "epochs", 0, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(len(samples))
        running = 0.0
        for b in range(batches):
            if cancel is not None and cancel.is_set():
                stopped_by = "cancelled"
                break
            index = order[b * config.batch_size : (b + 1) * config.batch_size]
            images, uv, state = zip(*(synthesize(samples[i], rng, size, augment) for i in index))
            x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2)
            x = normalise_input(x).contiguous(memory_format=torch.channels_last)
            uv_t = torch.from_numpy(np.stack(uv)).float().to(device)
            state_t = torch.from_numpy(np.stack(state)).to(device)
            visible = state_t == schema.PointState.VISIBLE
            labelled = state_t != schema.PointState.UNLABELLED
            target = gaussian_targets(uv_t, visible, size, config.sigma, config.model.background)
            # Unlabelled points have an unknown target, so their channels carry no loss.
            weight = labelled.float()
            if config.model.background:
                weight = torch.cat([weight, torch.ones_like(weight[:, :1])], dim=1)

            # With a time limit the cosine follows whichever runs out first, steps or time, so a
            # run cut by the limit still ends at a low learning rate.
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            if config.max_minutes is not None:
                progress = max(progress, (time.perf_counter() - start_time) / (60.0 * config.max_minutes))
            for group in optimiser.param_groups:
                group["lr"] = config.lr * _lr_factor(step, warmup_steps, progress)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                output = model(x)
            per_channel = heatmap_loss(output.float(), target, config.loss)
            loss = (per_channel * weight).sum() / weight.sum().clamp(min=1.0)

            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            ema.update(model)
            step += 1
            running += float(loss.detach())
            if (b + 1) % config.batch_event_every == 0:
                yield TrainEvent("batch", epoch, config.epochs, b + 1, batches, loss=float(loss.detach()),
                                 lr=optimiser.param_groups[0]["lr"], elapsed_s=time.perf_counter() - start_time)
        if stopped_by == "cancelled":
            break

        per_face, _ = evaluate_faces(ema.model, val_faces, device)
        val_nme = float(np.nanmean(per_face))
        if val_nme < best_nme:
            best_nme, best_epoch = val_nme, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in ema.model.state_dict().items()}
        elapsed = time.perf_counter() - start_time
        history.append({"epoch": epoch, "loss": running / batches, "val_nme": val_nme, "seconds": elapsed})
        yield TrainEvent("epoch", epoch, config.epochs, batches, batches, loss=running / batches, val_nme=val_nme,
                         best_val_nme=best_nme, lr=optimiser.param_groups[0]["lr"], elapsed_s=elapsed)

        if epoch - best_epoch >= config.patience:
            stopped_by = "early_stopping"
            break
        if config.max_minutes is not None and elapsed >= config.max_minutes * 60:
            stopped_by = "time_limit"
            break

    final = G2(config.model)
    final.load_state_dict(best_state if best_state is not None else ema.model.state_dict())
    final.eval()
    cpu = torch.device("cpu")
    per_face, confidence = evaluate_faces(final, val_faces, cpu)
    per_face_flip, _ = evaluate_faces(final, val_faces, cpu, flip=True)
    val_state = np.stack([f[2] for f in val_faces])
    threshold = calibrate_visibility_threshold(confidence, val_state == schema.PointState.VISIBLE)
    val_metrics = {"nme": summarise(per_face).to_dict(), "nme_flip": summarise(per_face_flip).to_dict()}

    result = TrainResult(final, best_epoch, best_nme, epoch, threshold, val_metrics, history, hash_value,
                         len(samples), len(val_faces), time.perf_counter() - start_time, stopped_by)
    kind = "cancelled" if stopped_by == "cancelled" else "done"
    yield TrainEvent(kind, epoch, config.epochs, best_val_nme=best_nme, elapsed_s=result.seconds,
                     message=f"stopped by {stopped_by}; best epoch {best_epoch}", result=result)


def result_card(result: TrainResult, config: TrainConfig, model_id: str, sources: list[str], parent: str | None = None) -> ModelCard:
    """Build the model card of a finished run."""
    training = config.to_dict()
    training.update({
        "sources": sources, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "stopped_by": result.stopped_by, "seconds": round(result.seconds, 1), "n_train": result.n_train,
        "n_val": result.n_val, "history": result.history,
    })
    return ModelCard(
        model_id=model_id,
        config=config.model.to_dict(),
        heatmap={"sigma": config.sigma, "visibility_threshold": result.visibility_threshold, "decoder": "log-newton"},
        training=training,
        data_hash=result.data_hash,
        metrics={"validation": result.val_metrics},
        parent_model=parent,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train G2 on the train split of a cnn_facepoint folder.")
    parser.add_argument("--data", required=True, help="cnn_facepoint folder (landmarks.csv and images/)")
    parser.add_argument("--out", required=True, help="checkpoint folder to write (model.safetensors, card.json)")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="hyper-parameter preset (default: default)")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default: 2)")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes, keeping the best weights")
    parser.add_argument("--limit", type=int, help="use only the first N training faces")
    parser.add_argument("--model-id", default="g2-default", help="id written into the card (default: g2-default)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--init", help="checkpoint folder to start from (fine-tuning); default: random weights")
    parser.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    parser.add_argument("--widths", help="four layer widths, finest first, such as 16,32,48,64 (default: the preset's)")
    parser.add_argument("--loss", choices=LOSSES, help="heatmap loss (default: the preset's)")
    parser.add_argument("--sigma", type=float, help="Gaussian sigma of the targets in input pixels (default: the preset's)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: float16 mixed precision on CUDA, bfloat16 on CPUs that support it, else float32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    config = TrainConfig(**PRESETS[args.preset], threads=args.threads, max_minutes=args.max_minutes, seed=args.seed)
    if args.epochs:
        config.epochs = args.epochs
    if args.lr:
        config.lr = args.lr
    if args.widths:
        try:
            widths = G2Config.parse_widths(args.widths)
        except ValueError as exc:
            parser.error(str(exc))
        config.model = dataclasses.replace(config.model, widths=widths)
    if args.loss:
        config.loss = args.loss
    if args.sigma:
        config.sigma = args.sigma
    config.precision = args.precision
    initial_state, parent = None, None
    if args.init:
        from s2ld_core.checkpoint import load_checkpoint

        start_model, start_card = load_checkpoint(args.init, "cpu")
        config.model = start_model.config
        initial_state, parent = start_model.state_dict(), start_card.model_id
    torch.set_num_threads(args.threads)
    samples = load_cnn_facepoint(args.data, "train", limit=args.limit)

    result = None
    for event in train(samples, config, initial_state=initial_state):
        if event.kind == "epoch":
            log.info("epoch %d/%d loss %.4f val NME %.4f (best %.4f) lr %.2e %.0f s", event.epoch, event.epochs,
                     event.loss, event.val_nme, event.best_val_nme, event.lr, event.elapsed_s)
        elif event.kind in ("start", "done", "cancelled"):
            log.info("%s: %s", event.kind, event.message)
        result = event.result or result

    card = result_card(result, config, args.model_id, sources=["cnn_facepoint:train"], parent=parent)
    save_checkpoint(result.model, card, args.out)
    log.info("validation: %s", result.val_metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
