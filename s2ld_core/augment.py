"""Low-resolution synthesis and augmentation of training faces for G2.

:func:`synthesize` turns one :class:`~s2ld_core.training_data.Sample` into a network input
(S x S x 3 uint8) and its points in the input frame. A high-resolution sample is cut around
its face box with jittered scale, shift, aspect ratio and rotation, and resampled to a face
crop 14-40 pixels wide with a randomly chosen filter. The crop is then degraded (blur, noise,
colour, JPEG), optionally mirrored, and resized to S x S exactly as the predictor resizes
real faces. An already low-resolution sample gets the same steps with a scale near 1 and no
extra downscaling.

The framings cover both square crops of 1.05-1.5 x the box side (evaluation sets use 1.25)
and taller-than-wide crops like those cut around MTCNN boxes with a 15% margin.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from s2ld_core import schema
from s2ld_core.heatmaps import resize_to_input, to_input_frame
from s2ld_core.training_data import Sample


@dataclass
class AugmentConfig:
    """Ranges of the random synthesis. Widths are in face-crop pixels before the resize to S."""

    crop_width: tuple[int, int] = (14, 40)
    margin: tuple[float, float] = (1.05, 1.5)
    tall_probability: float = 0.5
    aspect: tuple[float, float] = (1.0, 1.4)
    shift: float = 0.07
    rotation_deg: float = 15.0
    rotation_probability: float = 0.7
    flip_probability: float = 0.5
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 0.9)
    noise_probability: float = 0.4
    noise_std: tuple[float, float] = (1.0, 8.0)
    colour_probability: float = 0.8
    grey_probability: float = 0.08
    jpeg_probability: float = 0.85
    jpeg_quality: tuple[int, int] = (25, 95)


def _warp_matrix(centre: tuple[float, float], scale_x: float, scale_y: float, angle_rad: float, out_w: int, out_h: int) -> np.ndarray:
    """Affine map (2, 3) from source pixel centres to output pixel centres.

    The source point ``centre`` lands on the output's centre, (out_w / 2 - 0.5, out_h / 2 - 0.5).
    """
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    linear = np.array([[scale_x * c, -scale_x * s], [scale_y * s, scale_y * c]], dtype=np.float64)
    offset = np.array([out_w / 2.0 - 0.5, out_h / 2.0 - 0.5]) - linear @ np.asarray(centre, dtype=np.float64)
    return np.hstack([linear, offset[:, None]])


def _resample(image: np.ndarray, matrix: np.ndarray, out_w: int, out_h: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Warp with a random filter: pre-blurred bilinear (area-like), plain bilinear, bicubic or nearest."""
    mode = rng.choice(4, p=[0.5, 0.2, 0.2, 0.1])
    if mode == 0 and scale < 1.0:
        # Gaussian pre-filter with sigma about half the source pixels per output pixel.
        sigma = 0.5 * math.sqrt(max(1.0 / scale**2 - 1.0, 0.0)) * rng.uniform(0.8, 1.3)
        if sigma > 0.2:
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        flags = cv2.INTER_LINEAR
    elif mode == 2:
        flags = cv2.INTER_CUBIC
    elif mode == 3:
        flags = cv2.INTER_NEAREST
    else:
        flags = cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (out_w, out_h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _degrade(face: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Apply random blur, colour change, noise and JPEG to a uint8 RGB face."""
    out = face.astype(np.float32)
    if rng.random() < cfg.blur_probability:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*cfg.blur_sigma))

    if rng.random() < cfg.colour_probability:
        contrast = rng.uniform(0.65, 1.35)
        brightness = rng.uniform(-30.0, 30.0)
        gains = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
        mean = out.mean()
        out = (out - mean) * contrast + mean + brightness
        out = out * gains
        grey = out.mean(axis=2, keepdims=True)
        saturation = rng.uniform(0.5, 1.3)
        out = grey + (out - grey) * saturation
    if rng.random() < cfg.grey_probability:
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)

    if rng.random() < cfg.noise_probability:
        out = out + rng.normal(0.0, rng.uniform(*cfg.noise_std), size=out.shape).astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)

    if rng.random() < cfg.jpeg_probability:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def synthesize(
    sample: Sample,
    rng: np.random.Generator,
    size: int = 32,
    cfg: AugmentConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make one random training input from ``sample``.

    Returns the size x size x 3 uint8 input, its points (5, 2) in the input frame (NaN where
    not visible, after any left/right swap) and the point states (5,), swapped alike.
    """
    cfg = cfg or AugmentConfig()
    img_h, img_w = sample.image.shape[:2]
    if sample.high_res:
        x1, y1, x2, y2 = sample.bbox
    else:
        x1, y1, x2, y2 = -0.5, -0.5, img_w - 0.5, img_h - 0.5

    box_w, box_h = x2 - x1, y2 - y1
    if sample.high_res:
        crop_w = max(box_w, box_h) * rng.uniform(*cfg.margin)
        aspect = rng.uniform(*cfg.aspect) if rng.random() < cfg.tall_probability else 1.0
        out_w = int(rng.integers(cfg.crop_width[0], cfg.crop_width[1] + 1))
    else:
        # The crop already frames the face; jitter its scale mildly and keep its aspect ratio.
        crop_w = box_w * rng.uniform(0.9, 1.12)
        aspect = (box_h / box_w) * rng.uniform(0.95, 1.05)
        out_w = max(8, int(round(img_w * rng.uniform(0.85, 1.1))))
    crop_h = crop_w * aspect
    out_h = max(8, int(round(out_w * aspect)))

    centre = (
        (x1 + x2) / 2.0 + rng.uniform(-cfg.shift, cfg.shift) * crop_w,
        (y1 + y2) / 2.0 + rng.uniform(-cfg.shift, cfg.shift) * crop_h,
    )
    angle = 0.0
    if rng.random() < cfg.rotation_probability:
        angle = math.radians(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))

    scale_x, scale_y = out_w / crop_w, out_h / crop_h
    matrix = _warp_matrix(centre, scale_x, scale_y, angle, out_w, out_h)
    face = _resample(sample.image, matrix, out_w, out_h, min(scale_x, scale_y), rng)
    xy = np.asarray(sample.xy, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    state = np.asarray(sample.state, dtype=np.int8).copy()

    face = _degrade(face, rng, cfg)
    if rng.random() < cfg.flip_probability:
        face = np.ascontiguousarray(face[:, ::-1])
        xy = schema.flip_points(xy, out_w)
        state = state[list(schema.FLIP_PERMUTATION)]

    net_input = resize_to_input(face, size)
    uv = to_input_frame(xy, out_w, out_h, size)
    uv[state != schema.PointState.VISIBLE] = np.nan
    return net_input, uv, state


def save_augmentation_sheet(
    samples: list[Sample],
    path: str | Path,
    n: int = 48,
    columns: int = 8,
    size: int = 32,
    zoom: int = 4,
    seed: int = 0,
) -> Path:
    """Save a PNG grid of ``n`` random training inputs with their points drawn on top.

    See :func:`save_points_sheet` for the drawing. The file is written atomically.
    """
    rng = np.random.default_rng(seed)
    images, points = [], []
    for _ in range(n):
        sample = samples[int(rng.integers(len(samples)))]
        image, uv, _ = synthesize(sample, rng, size)
        images.append(image)
        points.append(uv)
    return save_points_sheet(images, np.stack(points), path, columns=columns, zoom=zoom)


def save_points_sheet(
    images: list[np.ndarray],
    xy: np.ndarray,
    path: str | Path,
    visible: np.ndarray | None = None,
    columns: int = 8,
    zoom: int = 4,
) -> Path:
    """Save a PNG grid of face crops with points (N, 5, 2) in crop pixels drawn on top.

    Crops are magnified ``zoom`` times with nearest-neighbour so the real pixels show, and
    placed top-left in equal cells. Each point is a dot in its :data:`schema.COLOURS` colour,
    placed with the pixel-centre convention; points that are NaN or not ``visible`` are
    drawn as rings. The file is written atomically.
    """
    cell_w = max(im.shape[1] for im in images) * zoom
    cell_h = max(im.shape[0] for im in images) * zoom
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * cell_h, columns * cell_w, 3), 255, dtype=np.uint8)

    for i, image in enumerate(images):
        h, w = image.shape[:2]
        big = cv2.resize(image, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST)
        for k in range(schema.N_POINTS):
            if not np.all(np.isfinite(xy[i, k])):
                continue
            centre = ((xy[i, k] + 0.5) * zoom - 0.5).round().astype(int)
            filled = visible is None or bool(visible[i, k])
            position = (int(centre[0]), int(centre[1]))
            cv2.circle(big, position, 3, (0, 0, 0), -1 if filled else 1, lineType=cv2.LINE_AA)
            cv2.circle(big, position, 2, schema.COLOURS[k], -1 if filled else 1, lineType=cv2.LINE_AA)
        r, c = divmod(i, columns)
        sheet[r * cell_h : r * cell_h + h * zoom, c * cell_w : c * cell_w + w * zoom] = big

    return write_png(sheet, path)


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image as PNG through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)
    return path
