"""Heatmap targets for G2 and their decoding back to points, in numpy.

Frames
    The network sees a face resized to S x S (the *input frame*); its heatmaps have the same
    S x S grid, so heatmap pixel (i, j) is input pixel (i, j) and both use the package
    convention (centre of pixel (i, j) is (i, j)). :func:`resize_to_input` makes the input
    from an image of any size and :func:`to_input_frame` / :func:`from_input_frame` map
    points between the image and the input frame. With pixel centres at integers, a resize
    of W pixels to S pixels maps x to ``(x + 0.5) * S / W - 0.5``; this is the mapping that
    OpenCV's resize uses, so the round trip is exact.

Targets
    Channel k holds ``exp(-((u - u_k)^2 + (v - v_k)^2) / (2 sigma^2))`` around the point's
    sub-pixel position (u_k, v_k) when the point is visible, and zeros when it is invisible
    or unlabelled. The optional background channel, last, is ``1 - max_k(channel k)``: 1 far
    from every visible point and 0 on a point.

Decoding
    :func:`decode_heatmaps` takes the arg-max pixel of each landmark channel and refines it
    to sub-pixel precision with one Newton step on the log heatmap (the log of a Gaussian is
    a quadratic, so a clean Gaussian peak is recovered exactly). The confidence is the
    heatmap value at the peak, clipped to [0, 1], and a point counts as visible when its
    confidence reaches a threshold calibrated on validation faces.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Default Gaussian sigma of targets, in input-frame pixels.
DEFAULT_SIGMA = 1.0

#: Default visibility threshold on the peak value when no calibration is available.
DEFAULT_VISIBILITY_THRESHOLD = 0.15


def resize_to_input(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an H x W x 3 uint8 image to size x size (area filter when shrinking, else bilinear)."""
    h, w = image.shape[:2]
    shrink = size < w or size < h
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    if w == size and h == size:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_input_frame(xy: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """Map points (..., 2) from a width x height image to the size x size input frame."""
    xy = np.asarray(xy, dtype=np.float64)
    out = np.empty_like(xy)
    out[..., 0] = (xy[..., 0] + 0.5) * (size / width) - 0.5
    out[..., 1] = (xy[..., 1] + 0.5) * (size / height) - 0.5
    return out


def from_input_frame(uv: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """Map points (..., 2) from the size x size input frame back to a width x height image."""
    uv = np.asarray(uv, dtype=np.float64)
    out = np.empty_like(uv)
    out[..., 0] = (uv[..., 0] + 0.5) * (width / size) - 0.5
    out[..., 1] = (uv[..., 1] + 0.5) * (height / size) - 0.5
    return out


def encode_heatmaps(
    uv: np.ndarray,
    visible: np.ndarray,
    size: int,
    sigma: float = DEFAULT_SIGMA,
    background: bool = True,
) -> np.ndarray:
    """Build float32 targets of shape (K [+1], size, size) for points ``uv`` (K, 2) in the input frame.

    Points where ``visible`` (K,) is False get an all-zero channel. Points outside the grid
    still get the visible tail of their Gaussian.
    """
    uv = np.asarray(uv, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    n_points = uv.shape[0]
    grid = np.arange(size, dtype=np.float64)

    maps = np.zeros((n_points + (1 if background else 0), size, size), dtype=np.float32)
    for k in range(n_points):
        if not visible[k] or not np.all(np.isfinite(uv[k])):
            continue
        gx = np.exp(-((grid - uv[k, 0]) ** 2) / (2.0 * sigma**2))
        gy = np.exp(-((grid - uv[k, 1]) ** 2) / (2.0 * sigma**2))
        maps[k] = np.outer(gy, gx)

    if background:
        maps[-1] = 1.0 - maps[:n_points].max(axis=0)
    return maps


def decode_heatmaps(heatmaps: np.ndarray, n_landmarks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode heatmaps (N, C, S, S) to sub-pixel input-frame points (N, K, 2) and confidences (N, K).

    ``n_landmarks`` (K) defaults to C; channels beyond it (the background) are ignored.
    The Newton step is clamped to one pixel, and skipped where the peak sits on the border
    or its neighbourhood is not strictly concave in the log domain.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, c, h, w = heatmaps.shape
    k = c if n_landmarks is None else n_landmarks
    maps = heatmaps[:, :k].reshape(n * k, h, w)

    flat_index = maps.reshape(n * k, -1).argmax(axis=1)
    iy, ix = np.divmod(flat_index, w)
    rows = np.arange(n * k)
    peak = maps[rows, iy, ix]

    # Log values of the 3x3 neighbourhood only; indices are clipped so border peaks stay in range.
    xm, xp = np.clip(ix - 1, 0, w - 1), np.clip(ix + 1, 0, w - 1)
    ym, yp = np.clip(iy - 1, 0, h - 1), np.clip(iy + 1, 0, h - 1)

    def log_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(maps[rows, y, x], 1e-6))

    centre = log_at(iy, ix)
    left, right, up, down = log_at(iy, xm), log_at(iy, xp), log_at(ym, ix), log_at(yp, ix)
    dx = 0.5 * (right - left)
    dy = 0.5 * (down - up)
    dxx = right - 2.0 * centre + left
    dyy = down - 2.0 * centre + up
    dxy = 0.25 * (log_at(yp, xp) - log_at(yp, xm) - log_at(ym, xp) + log_at(ym, xm))

    det = dxx * dyy - dxy * dxy
    interior = (ix > 0) & (ix < w - 1) & (iy > 0) & (iy < h - 1)
    concave = (dxx < 0) & (det > 1e-12)
    usable = interior & concave
    safe_det = np.where(usable, det, 1.0)
    # offset = -H^-1 g, with H = [[dxx, dxy], [dxy, dyy]] and g = [dx, dy].
    off_x = -(dyy * dx - dxy * dy) / safe_det
    off_y = -(dxx * dy - dxy * dx) / safe_det
    off_x = np.where(usable, np.clip(off_x, -1.0, 1.0), 0.0)
    off_y = np.where(usable, np.clip(off_y, -1.0, 1.0), 0.0)

    uv = np.stack([ix + off_x, iy + off_y], axis=-1).reshape(n, k, 2).astype(np.float64)
    confidence = np.clip(peak, 0.0, 1.0).reshape(n, k).astype(np.float32)
    return uv, confidence


def decide_visible(confidence: np.ndarray, threshold: float = DEFAULT_VISIBILITY_THRESHOLD) -> np.ndarray:
    """Return a bool mask: True where ``confidence`` reaches ``threshold``."""
    return np.asarray(confidence) >= threshold


def calibrate_visibility_threshold(
    confidence: np.ndarray,
    visible: np.ndarray,
    quantile: float = 0.005,
) -> float:
    """Choose the threshold on peak confidence that best separates visible from invisible points.

    ``confidence`` and ``visible`` have the same shape. With both classes present the
    threshold maximises balanced accuracy. With only visible points (a data set without
    invisible labels) it is the ``quantile`` of their confidences, so that about that share
    of visible points would be called invisible.
    """
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    visible = np.asarray(visible, dtype=bool).ravel()
    if visible.all() or not visible.any():
        values = confidence[visible] if visible.any() else confidence
        return float(np.quantile(values, quantile))

    candidates = np.unique(confidence)
    best_threshold, best_score = DEFAULT_VISIBILITY_THRESHOLD, -1.0
    for t in candidates:
        decided = confidence >= t
        score = 0.5 * (decided[visible].mean() + (~decided[~visible]).mean())
        if score > best_score:
            best_threshold, best_score = float(t), score
    return best_threshold
