"""Batch inference of a G2 network on face crops of any size, shared by training and prediction.

Each crop is resized to the network's S x S input (:func:`s2ld_core.heatmaps.resize_to_input`),
the heatmaps are optionally averaged with those of the mirrored crop (test-time flip), decoded
to sub-pixel points, and mapped back to each crop's own pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from s2ld_core import schema
from s2ld_core.heatmaps import decode_heatmaps, resize_to_input
from s2ld_core.model import G2, normalise_input


def stack_inputs(images: list[np.ndarray], size: int) -> np.ndarray:
    """Resize RGB uint8 crops to size x size and stack them, (N, size, size, 3) uint8."""
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {i} has shape {image.shape} and dtype {image.dtype}; expected H x W x 3 uint8 RGB")
        out[i] = resize_to_input(image, size)
    return out


def flip_heatmaps(heatmaps: np.ndarray, n_landmarks: int) -> np.ndarray:
    """Mirror heatmaps (N, C, S, S) horizontally and swap left/right landmark channels.

    With pixel centres at integers, column i of an S-wide map mirrors to column S - 1 - i.
    Only the five-point MTCNN order has a known swap; other point counts are only mirrored.
    """
    out = heatmaps[..., ::-1]
    if n_landmarks == schema.N_POINTS:
        order = list(schema.FLIP_PERMUTATION) + list(range(n_landmarks, heatmaps.shape[1]))
        out = out[:, order]
    return np.ascontiguousarray(out)


@torch.inference_mode()
def run_heatmaps(
    model: G2,
    inputs: np.ndarray,
    device: torch.device,
    flip: bool = False,
    batch_size: int = 64,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """Run ``model`` on stacked uint8 inputs (N, S, S, 3) and return float32 heatmaps (N, C, S, S).

    ``dtype`` is the dtype of the model's weights; the inputs are cast to it.
    """
    n_landmarks = model.config.n_landmarks
    outputs = []
    for start in range(0, len(inputs), batch_size):
        chunk = torch.from_numpy(inputs[start : start + batch_size]).to(device)
        x = normalise_input(chunk.permute(0, 3, 1, 2)).to(dtype).contiguous(memory_format=torch.channels_last)
        if flip:
            both = model(torch.cat([x, x.flip(-1)])).float().cpu().numpy()
            half = both.shape[0] // 2
            maps = 0.5 * (both[:half] + flip_heatmaps(both[half:], n_landmarks))
        else:
            maps = model(x).float().cpu().numpy()
        outputs.append(maps)
    if not outputs:
        size = model.config.input_size
        return np.zeros((0, model.config.out_channels, size, size), dtype=np.float32)
    return np.concatenate(outputs)


def predict_points(
    model: G2,
    images: list[np.ndarray],
    device: torch.device,
    flip: bool = False,
    batch_size: int = 64,
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict points (N, K, 2) in each crop's own pixels and peak confidences (N, K)."""
    size = model.config.input_size
    inputs = stack_inputs(images, size)
    maps = run_heatmaps(model, inputs, device, flip, batch_size, dtype)
    uv, confidence = decode_heatmaps(maps, model.config.n_landmarks)

    widths = np.array([im.shape[1] for im in images], dtype=np.float64)[:, None]
    heights = np.array([im.shape[0] for im in images], dtype=np.float64)[:, None]
    # Same mapping as heatmaps.from_input_frame, with a width and height per crop.
    xy = np.empty_like(uv)
    xy[..., 0] = (uv[..., 0] + 0.5) * (widths / size) - 0.5
    xy[..., 1] = (uv[..., 1] + 0.5) * (heights / size) - 0.5
    return xy, confidence
