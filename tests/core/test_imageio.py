"""Reading images: conversions, EXIF orientation, odd paths and every kind of broken file."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
from PIL import Image

from s2ld_core.imageio import (
    SUPPORTED_SUFFIXES,
    ImageReadError,
    image_sha256,
    read_image,
    read_image_size,
    write_png_atomic,
)
from tests.core.fixture_faces import fixture_face, fixture_points


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """The largest real fixture face, cut to 30 wide by 26 high so rotations change the shape."""
    widths = fixture_points()["width"]
    pixels = fixture_face(int(widths.idxmax()))
    assert pixels.shape[0] >= 30
    return np.ascontiguousarray(pixels[:26, :30])


def test_read_png_rgb_exact(tmp_path, face):
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    pixels = read_image(path)
    assert pixels.dtype == np.uint8
    assert pixels.shape == face.shape
    assert np.array_equal(pixels, face)


def test_read_jpeg_close_to_source(tmp_path, face):
    path = tmp_path / "face.jpg"
    Image.fromarray(face).save(path, quality=95)
    pixels = read_image(path)
    assert pixels.shape == face.shape
    assert np.abs(pixels.astype(int) - face.astype(int)).mean() < 4.0


def test_grayscale_repeated_to_rgb(tmp_path, face):
    gray = np.asarray(Image.fromarray(face).convert("L"))
    path = tmp_path / "gray.png"
    Image.fromarray(gray, mode="L").save(path)
    pixels = read_image(path)
    assert pixels.shape == gray.shape + (3,)
    for channel in range(3):
        assert np.array_equal(pixels[..., channel], gray)


def test_one_bit_image_to_rgb(tmp_path, face):
    binary = Image.fromarray(face).convert("L").point(lambda v: 255 if v > 100 else 0).convert("1")
    path = tmp_path / "binary.png"
    binary.save(path)
    pixels = read_image(path)
    assert set(np.unique(pixels).tolist()) <= {0, 255}
    assert pixels.shape == face.shape


def test_gray_16bit_scaled_to_8bit(tmp_path, face):
    gray = np.asarray(Image.fromarray(face).convert("L"))
    path = tmp_path / "gray16.png"
    assert cv2.imwrite(str(path), gray.astype(np.uint16) * 257)
    assert Image.open(path).mode.startswith("I")
    pixels = read_image(path)
    assert pixels.dtype == np.uint8
    # v * 257 * 255 / 65535 is exactly v, so the scaling returns the original gray values.
    assert np.array_equal(pixels[..., 0], gray)


def test_gray_16bit_uses_full_range(tmp_path, face):
    gray = np.asarray(Image.fromarray(face).convert("L")).astype(np.uint16)
    path = tmp_path / "gray16_low.tif"
    # A 16-bit image that only uses its lower byte must come out dark, not saturated.
    assert cv2.imwrite(str(path), gray)
    pixels = read_image(path)
    assert pixels.max() <= 1


def test_rgb_16bit_reduced_to_8bit(tmp_path, face):
    path = tmp_path / "rgb16.png"
    bgr16 = cv2.cvtColor(face, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    assert cv2.imwrite(str(path), bgr16)
    pixels = read_image(path)
    assert pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - face.astype(int)).max() <= 1


def test_rgba_composited_on_black(tmp_path, face):
    alpha = np.full(face.shape[:2], 255, dtype=np.uint8)
    alpha[:, :10] = 0
    alpha[:, 10:20] = 128
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([face, alpha]), mode="RGBA").save(path)
    pixels = read_image(path).astype(int)
    assert pixels.shape == face.shape
    assert np.all(pixels[:, :10] == 0)
    expected_half = (face[:, 10:20].astype(int) * 128 + 127) // 255
    assert np.array_equal(pixels[:, 10:20], expected_half)
    assert np.array_equal(pixels[:, 20:], face[:, 20:])


def test_gray_alpha_composited_on_black(tmp_path, face):
    gray = np.asarray(Image.fromarray(face).convert("L"))
    alpha = np.zeros_like(gray)
    alpha[5:, :] = 255
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([gray, alpha]), mode="LA").save(path)
    pixels = read_image(path)
    assert np.all(pixels[:5] == 0)
    assert np.array_equal(pixels[5:, :, 1], gray[5:])


def test_palette_image_to_rgb(tmp_path, face):
    palette_image = Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    path = tmp_path / "palette.png"
    palette_image.save(path)
    pixels = read_image(path)
    assert pixels.shape == face.shape
    assert np.array_equal(pixels, np.asarray(palette_image.convert("RGB")))
    assert np.abs(pixels.astype(int) - face.astype(int)).mean() < 8.0


def test_palette_transparency_composited(tmp_path, face):
    palette_image = Image.fromarray(face).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    transparent_index = int(np.asarray(palette_image)[0, 0])
    path = tmp_path / "palette_alpha.png"
    palette_image.save(path, transparency=transparent_index)
    pixels = read_image(path)
    mask = np.asarray(palette_image) == transparent_index
    assert np.all(pixels[mask] == 0)
    assert np.array_equal(pixels[~mask], np.asarray(palette_image.convert("RGB"))[~mask])


@pytest.mark.parametrize(
    ("orientation", "rotate"),
    [
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),
        (8, lambda a: np.rot90(a, 1)),
        (2, lambda a: a[:, ::-1]),
    ],
)
def test_exif_orientation_applied_once(tmp_path, face, orientation, rotate):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated_{orientation}.png"
    Image.fromarray(face).save(path, exif=exif)
    expected = rotate(face)

    pixels = read_image(path)
    assert pixels.shape == expected.shape
    assert np.array_equal(pixels, expected)
    assert read_image_size(path) == (expected.shape[1], expected.shape[0])
    # A second read starts from the file again, so the rotation is not applied twice.
    assert np.array_equal(read_image(path), expected)


def test_exif_rotated_jpeg_photo(tmp_path, face):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "camera.jpg"
    Image.fromarray(face).save(path, quality=95, exif=exif)
    pixels = read_image(path)
    assert pixels.shape == (face.shape[1], face.shape[0], 3)
    assert np.abs(pixels.astype(int) - np.rot90(face, -1).astype(int)).mean() < 4.0


@pytest.mark.parametrize("name", ["лицо 顔 face.png", "my faces/face one.png", "Ångström é.jpg"])
def test_non_ascii_and_space_paths(tmp_path, face, name):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(face).save(path, quality=95)
    pixels = read_image(path)
    assert pixels.shape == face.shape
    assert read_image_size(path) == (face.shape[1], face.shape[0])
    assert len(image_sha256(path)) == 64


def test_missing_file_named(tmp_path):
    path = tmp_path / "absent face.png"
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    assert "not found" in str(caught.value)
    assert caught.value.path == path


@pytest.mark.parametrize("suffix", [".gif", ".txt", ""])
def test_unsupported_type_rejected(tmp_path, face, suffix):
    path = tmp_path / f"face{suffix}"
    Image.fromarray(face).save(path, format="GIF")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    assert "unsupported file type" in str(caught.value)


def test_supported_suffixes_case_insensitive(tmp_path, face):
    path = tmp_path / "FACE.PNG"
    Image.fromarray(face).save(path, format="PNG")
    assert ".png" in SUPPORTED_SUFFIXES
    assert np.array_equal(read_image(path), face)


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_image_rejected(tmp_path, face, fmt, suffix):
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(face).save(whole, format=fmt)
    data = whole.read_bytes()
    path = tmp_path / f"truncated{suffix}"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    assert "truncated or corrupt" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"not an image at all", bytes(np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8))],
    ids=["empty", "text", "random"],
)
def test_corrupt_file_rejected(tmp_path, content):
    path = tmp_path / "corrupt.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    assert "cannot decode" in str(caught.value) or "corrupt" in str(caught.value)


def test_wrong_suffix_still_decodes(tmp_path, face):
    path = tmp_path / "really_png.jpg"
    Image.fromarray(face).save(path, format="PNG")
    assert np.array_equal(read_image(path), face)


def test_directory_rejected(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert "not a regular file" in str(caught.value)


def test_sha256_matches_hashlib(tmp_path, face):
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    assert image_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ImageReadError):
        image_sha256(tmp_path / "missing.png")


def test_png_write_round_trip(tmp_path, face):
    path = tmp_path / "out" / "face.png"
    write_png_atomic(path, face)
    assert np.array_equal(read_image(path), face)
    assert [p.name for p in path.parent.iterdir()] == ["face.png"]
