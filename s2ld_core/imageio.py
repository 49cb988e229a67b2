"""Read face images from disk as RGB uint8 arrays, with one error type for every failure.

Every image that enters a project goes through :func:`read_image`, so the conversions below
happen in one place:

- EXIF orientation is applied once, here, with Pillow's ``ImageOps.exif_transpose``. The
  returned pixels are upright, so a caller that stores them (for example re-encoded as PNG)
  must not apply the orientation again.
- Grayscale and 1-bit images are repeated into three channels.
- 16-bit images are scaled to 8 bits: ``round(v * 255 / 65535)``. Pillow 13 already reduces
  16-bit RGB PNG and TIFF files to 8-bit RGB when it opens them.
- Transparency (RGBA, LA, palette images with a transparent colour) is composited on black:
  each channel becomes ``round(c * alpha / 255)``, so a fully transparent pixel is black
  whatever colour it stored.
- Palette, CMYK and YCbCr images are converted to RGB by Pillow.

Paths are opened through Python's file API, never through ``cv2.imread``, so non-ASCII and
space-containing paths work on every platform.
"""

from __future__ import annotations

import hashlib
from io import BytesIO
import logging
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from s2ld_core.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

#: File name suffixes (lower case) that :func:`read_image` accepts.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# EXIF orientation values 5-8 rotate by 90 or 270 degrees, which swaps width and height.
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


class ImageReadError(Exception):
    """An image file that cannot be read; the message names the file and what to do.

    Attributes:
        path: the file that failed.
        reason: a short description of the failure, without the path.
    """

    def __init__(self, path: str | os.PathLike, reason: str, action: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}. {action}")


def is_supported(path: str | os.PathLike) -> bool:
    """Return True when the file name ends in one of :data:`SUPPORTED_SUFFIXES` (any case)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def _check_path(path: Path) -> None:
    if not is_supported(path):
        raise ImageReadError(
            path,
            f"unsupported file type '{path.suffix or '(no suffix)'}'",
            f"Convert it to one of {', '.join(SUPPORTED_SUFFIXES)} or leave it out.",
        )
    if not path.exists():
        raise ImageReadError(path, "file not found", "Check the path, or remove the image from the list.")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file", "Pass the path of an image file.")


def _open(path: Path) -> Image.Image:
    """Open ``path`` with Pillow (header only) and translate its errors to ImageReadError."""
    _check_path(path)
    try:
        return Image.open(path)
    except UnidentifiedImageError as err:
        raise ImageReadError(
            path,
            "the file is not an image that Pillow can decode (corrupt, empty or of another type than its suffix says)",
            "Re-export the image as PNG or JPEG, or leave it out.",
        ) from err
    except Image.DecompressionBombError as err:
        raise ImageReadError(path, f"the image is too large to decode safely ({err})", "Downscale it first.") from err
    except PermissionError as err:
        raise ImageReadError(path, f"permission denied ({err.strerror})", "Check the file's permissions.") from err
    except OSError as err:
        # Pillow raises OSError while parsing headers that end early or hold invalid values.
        raise ImageReadError(
            path, f"the image header is truncated or corrupt ({err})", "Copy or download the file again, or leave it out."
        ) from err


def _to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """Convert a decoded, upright Pillow image of any mode to an (H, W, 3) uint8 RGB array."""
    mode = image.mode

    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode

    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[..., 3:4]
        # Integer rounding of c * a / 255 composites the colour on black.
        rgb = (rgba[..., :3] * alpha + 127) // 255
        return rgb.astype(np.uint8)

    if mode.startswith("I;16") or mode == "I":
        # Mode "I" is 32-bit signed; Pillow uses it for some 16-bit files, so the 16-bit
        # range is assumed and larger values are clipped.
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        gray = np.rint(values * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)

    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        finite = values[np.isfinite(values)]
        # NOTE: float images are rare for faces. Values within 0..1 are read as fractions of
        # full scale and anything else as 0..255, which guesses how the writer scaled them.
        if finite.size and finite.max() <= 1.0:
            values = values * 255.0
        gray = np.rint(np.clip(np.nan_to_num(values), 0, 255)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)

    if mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an upright (H, W, 3) uint8 RGB array.

    EXIF orientation is applied; grayscale, 16-bit, palette and transparent images are
    converted as described in the module docstring.

    Raises:
        ImageReadError: the file is missing, of an unsupported type, corrupt or truncated.
    """
    path = Path(path)
    with _open(path) as image:
        try:
            # Pillow warns about a few broken EXIF blocks; such photos still decode.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                image.load()
                upright = ImageOps.exif_transpose(image)
            array = _to_rgb_uint8(upright)
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            # Pillow raises OSError for truncated data, and SyntaxError or ValueError for
            # some broken headers that are noticed only while decoding.
            raise ImageReadError(
                path,
                f"the image data is truncated or corrupt ({err})",
                "Copy or download the file again, or leave it out.",
            ) from err

    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError(path, f"the image has no pixels (shape {array.shape})", "Leave it out.")
    return np.ascontiguousarray(array)


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return the upright (width, height) of an image from its header, without decoding pixels.

    EXIF orientations that rotate by 90 or 270 degrees swap the stored width and height, so
    the result matches the shape of :func:`read_image`. A file whose pixel data is truncated
    may still pass here; only :func:`read_image` detects that.

    Raises:
        ImageReadError: the file is missing, of an unsupported type or has no readable header.
    """
    path = Path(path)
    with _open(path) as image:
        width, height = image.size
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        except (OSError, SyntaxError, ValueError) as err:
            logger.warning("ignoring unreadable EXIF block in %s: %s", path, err)
            orientation = 1
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return int(width), int(height)


def image_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of the file's bytes as stored on disk (before any decoding).

    Raises:
        ImageReadError: the file is missing or cannot be read.
    """
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(chunk_size), b""):
                digest.update(chunk)
    except FileNotFoundError as err:
        raise ImageReadError(path, "file not found", "Check the path, or remove the image from the list.") from err
    except OSError as err:
        raise ImageReadError(path, f"the file cannot be read ({err})", "Check its permissions.") from err
    return digest.hexdigest()


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array as lossless PNG bytes without metadata."""
    array = np.asarray(rgb)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    buffer = BytesIO()
    Image.fromarray(array, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def write_png_atomic(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array as PNG to ``path`` through a temporary file and os.replace."""
    write_bytes_atomic(path, encode_png(rgb))
