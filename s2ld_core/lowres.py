"""Make low-resolution face crops from high-resolution photos with known landmarks.

The crop is a square centred on the face box, ``margin`` times its longer side, resampled
so that the crop is ``size`` pixels wide. Points map with the pixel-centre convention: a
point at x in the photo lands at ``(x - x0 + 0.5) * scale - 0.5`` in the crop, where
``x0`` is the crop's left edge in photo pixels (a pixel-edge coordinate) and ``scale`` is
output pixels per photo pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Crop side as a multiple of the face box side; real crowd crops around MTCNN boxes are
#: about 1.35 box widths, and cnn_facepoint boxes are a little wider than MTCNN boxes.
DEFAULT_MARGIN = 1.25


def square_crop_box(bbox: tuple[float, float, float, float], margin: float = DEFAULT_MARGIN) -> tuple[float, float, float]:
    """Return (x0, y0, side) of a square crop around ``bbox`` (x1, y1, x2, y2), in photo pixel edges."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1) * margin
    return cx - side / 2.0, cy - side / 2.0, side


def crop_and_resize(
    image: np.ndarray,
    x0: float,
    y0: float,
    side: float,
    size: int,
    interpolation: int = cv2.INTER_AREA,
) -> tuple[np.ndarray, float]:
    """Cut a square of ``side`` photo pixels at pixel edge (x0, y0) and resample it to size x size.

    Areas outside the photo are filled by edge replication. Returns the crop (uint8, same
    channel count as ``image``) and the scale in output pixels per photo pixel.
    """
    scale = size / side
    # Affine map from photo pixel centres to output pixel centres: u = (x - x0 + 0.5) * s - 0.5.
    matrix = np.array(
        [[scale, 0.0, (0.5 - x0) * scale - 0.5], [0.0, scale, (0.5 - y0) * scale - 0.5]],
        dtype=np.float64,
    )
    if interpolation == cv2.INTER_AREA and scale < 1.0:
        # warpAffine has no area filter: pre-shrink with resize, then apply the small remainder.
        shrink = cv2.resize(image, None, fx=scale * 1.0, fy=scale * 1.0, interpolation=cv2.INTER_AREA)
        sx = shrink.shape[1] / image.shape[1]
        sy = shrink.shape[0] / image.shape[0]
        pre = np.array([[1.0 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1.0 / sy, 0.5 / sy - 0.5]])
        # Compose: output <- photo <- shrunk photo.
        full = np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.vstack([pre, [0.0, 0.0, 1.0]])
        out = cv2.warpAffine(shrink, full[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        out = cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
    return out, scale


def map_points(xy: np.ndarray, x0: float, y0: float, scale: float) -> np.ndarray:
    """Map photo points of shape (..., 2) into a crop made by :func:`crop_and_resize`."""
    xy = np.asarray(xy, dtype=np.float64)
    out = np.empty_like(xy)
    out[..., 0] = (xy[..., 0] - x0 + 0.5) * scale - 0.5
    out[..., 1] = (xy[..., 1] - y0 + 0.5) * scale - 0.5
    return out


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode ``image`` (RGB uint8) as JPEG at ``quality`` 1-100."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed at quality {quality}")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def make_lowres_face(
    image: np.ndarray,
    bbox: tuple[float, float, float, float],
    points: np.ndarray,
    size: int,
    jpeg_quality: int | None = 50,
    margin: float = DEFAULT_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """Return a size x size RGB crop of the face and its (5, 2) points in crop pixels.

    This is the fixed, deterministic degradation used for evaluation sets, fixtures and the
    demo: area downscaling then optional JPEG at ``jpeg_quality``.
    """
    x0, y0, side = square_crop_box(bbox, margin)
    crop, scale = crop_and_resize(image, x0, y0, side, size)
    if jpeg_quality is not None:
        crop = jpeg_roundtrip(crop, jpeg_quality)
    return crop, map_points(points, x0, y0, scale)
