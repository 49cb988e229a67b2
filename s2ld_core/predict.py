"""Landmark prediction with a trained G2 checkpoint.

:class:`Predictor` owns the device and the network. It takes face crops of any size (H x W x 3
uint8 RGB, the whole crop being the face) and returns points in each crop's own pixels.
torch is imported when a predictor is built, not when this module is imported, so a GUI
can import it at start-up without paying for torch.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from s2ld_core import schema
from s2ld_core.heatmaps import DEFAULT_VISIBILITY_THRESHOLD

if TYPE_CHECKING:
    import torch

    from s2ld_core.checkpoint import ModelCard
    from s2ld_core.model import G2

log = logging.getLogger(__name__)

#: Folder of the model shipped with the application.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "models" / "default"


#: Values of ``Predictor(precision=...)``.
PRECISIONS = ("auto", "fp32", "bf16", "int8")


def _with_config(graph: "torch.nn.Module", config) -> "G2":
    """Wrap a scripted network so that it keeps the G2 ``config`` that inference reads."""
    import torch

    class ScriptedG2(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.graph = graph

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.graph(x)

    return ScriptedG2().eval()


def _traced(model: "G2", device: "torch.device") -> "G2":
    """Return a module that runs a TorchScript trace of ``model`` and keeps its ``config``."""
    import torch

    size = model.config.input_size
    dtype = next(model.parameters()).dtype
    example = torch.zeros(2, 3, size, size, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), warnings.catch_warnings():
        # torch 2.13 marks TorchScript as deprecated; it still gives the fastest CPU graph here.
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = torch.jit.freeze(torch.jit.trace(model, example))
    return _with_config(graph, model.config)


class Predictor:
    """A G2 network ready for inference: eval mode, no gradients, batched.

    Args:
        checkpoint: checkpoint folder (``model.safetensors`` and ``card.json``); defaults to
            the shipped model.
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
        flip: average heatmaps with those of the mirrored face (test-time flip); about
            halves throughput and lowers the error.
        batch_size: faces per forward pass.
        threads: CPU threads for torch; None leaves torch's setting alone.
        fuse: fold batch norms into convolutions for speed (same outputs up to rounding).
        jit: trace and freeze the network with TorchScript for speed (same outputs up to rounding).
        precision: "auto", "fp32", "bf16" or "int8". "auto" is bfloat16 on a CPU with native
            bfloat16 support (AVX-512 BF16 or AMX), where it about doubles throughput at the
            same accuracy, and float32 everywhere else, CUDA included. "int8" (CPU only) runs a
            statically quantized network calibrated on the checkpoint's
            ``calibration.safetensors`` (:mod:`s2ld_core.quantize`), faster again and a little
            less accurate.
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        flip: bool = True,
        batch_size: int = 64,
        threads: int | None = None,
        fuse: bool = True,
        jit: bool = True,
        precision: str = "auto",
    ) -> None:
        import torch

        from s2ld_core.checkpoint import load_checkpoint
        from s2ld_core.model import fuse_batchnorm
        from s2ld_core.train import cpu_has_bf16, pick_device

        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        if threads is not None:
            torch.set_num_threads(threads)
        self.device: torch.device = pick_device(device)
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError(f"precision int8 runs on the CPU only, not on {self.device}; use fp32 or bf16 there")
        if precision == "auto":
            precision = "bf16" if self.device.type == "cpu" and cpu_has_bf16() else "fp32"
        #: The precision in use: "fp32", "bf16" or "int8" ("auto" resolved).
        self.precision = precision
        # The int8 network takes float32 inputs, like the float32 one.
        self.dtype: torch.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.folder = Path(checkpoint) if checkpoint is not None else DEFAULT_MODEL_DIR
        model, card = load_checkpoint(self.folder, "cpu")
        if precision == "int8":
            from s2ld_core.quantize import load_calibration, quantize_int8

            calibration = load_calibration(self.folder, model.config.input_size)
            self.model = _with_config(quantize_int8(model.eval(), calibration), model.config)
        else:
            if fuse and model.config.norm == "batch":
                fuse_batchnorm(model)
            self.model = model.to(self.device, self.dtype).to(memory_format=torch.channels_last).eval()
            if jit:
                self.model = _traced(self.model, self.device)
        self.card: ModelCard = card
        self.flip = flip
        self.batch_size = batch_size
        self.visibility_threshold = float(card.heatmap.get("visibility_threshold", DEFAULT_VISIBILITY_THRESHOLD))
        log.info("loaded model %s from %s on %s (%s)", card.model_id, self.folder, self.device, self.precision)

    @property
    def model_version(self) -> str:
        return self.card.model_id

    def predict_arrays(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict points for face crops.

        Returns xy (N, K, 2) float64 in each crop's pixels, confidence (N, K) float32 in
        [0, 1] and the visibility decision (N, K) bool.
        """
        from s2ld_core.inference import predict_points

        if len(images) == 0:
            k = self.model.config.n_landmarks
            return np.zeros((0, k, 2)), np.zeros((0, k), np.float32), np.zeros((0, k), bool)
        xy, confidence = predict_points(self.model, list(images), self.device, self.flip, self.batch_size, self.dtype)
        return xy, confidence, confidence >= self.visibility_threshold

    def predict(self, images: list[np.ndarray]) -> list[schema.Prediction]:
        """Predict points for face crops (H x W x 3 uint8 RGB, any size) as :class:`schema.Prediction` objects."""
        xy, confidence, visible = self.predict_arrays(images)
        return [
            schema.Prediction(xy=xy[i], confidence=confidence[i], visible=visible[i], model_version=self.model_version)
            for i in range(len(xy))
        ]
