"""Dataset builder on TinyFace-like trees made from the real fixture faces."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from s2ld_core.dataset import (
    DROP_REASONS,
    EXCLUDED_IDENTITIES_NAME,
    EXCLUDED_IMAGES_NAME,
    MANIFEST_NAME,
    SUMMARY_NAME,
    DatasetCancelled,
    DatasetError,
    build_dataset,
    identity_from_path,
    read_manifest,
)
from s2ld_core.lowres import make_lowres_face
from tests.core.fixture_faces import FACES_DIR, fixture_points

# (width, height) of the images made for each identity, cycling; the comment is the filter verdict.
SIZES = [
    (16, 16),  # kept: smallest allowed
    (31, 31),  # kept: largest allowed
    (15, 20),  # too small: width equals the minimum
    (20, 24),  # kept
    (32, 20),  # too large: width equals the maximum
    (40, 40),  # too large
    (24, 18),  # kept
    (10, 12),  # too small
]
KEPT_SIZES = {(16, 16), (31, 31), (20, 24), (24, 18)}


@dataclass
class Tree:
    """A source tree and what each filter should drop from it."""

    root: Path
    expected: dict[str, int] = field(default_factory=lambda: {reason: 0 for reason in DROP_REASONS})
    kept_by_identity: dict[str, list[str]] = field(default_factory=dict)
    n_files: int = 0


def fixture_faces() -> list[np.ndarray]:
    table = fixture_points()
    return [np.asarray(Image.open(FACES_DIR / name).convert("RGB")) for name in table["image"]]


def make_tree(root: Path, n_folder_identities: int = 24, n_flat_identities: int = 8, reverse: bool = False) -> Tree:
    """Write identity folders and flat ``<identity>_<k>.jpg`` files made from real faces."""
    faces = fixture_faces()
    tree = Tree(root)
    jobs = []
    for i in range(n_folder_identities):
        identity = f"person_{i:03d}" if i % 5 else f"лицо {i:03d}"
        for k in range(1 + i % 3):
            jobs.append((identity, Path(identity) / f"{identity}_{k}.jpg", SIZES[(i + 3 * k) % len(SIZES)]))
    for i in range(n_flat_identities):
        identity = f"flat{i:02d}"
        for k in range(2):
            jobs.append((identity, Path(f"{identity}_{k}.png"), SIZES[(2 * i + k) % len(SIZES)]))
    if reverse:
        jobs.reverse()

    for number, (identity, relative, size) in enumerate(jobs):
        face = cv2.resize(faces[number % len(faces)], size, interpolation=cv2.INTER_AREA)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(path, quality=90)
        tree.n_files += 1
        if size in KEPT_SIZES:
            tree.kept_by_identity.setdefault(identity, []).append(relative.as_posix())
        elif min(size) <= 15:
            tree.expected["too_small"] += 1
        else:
            tree.expected["too_large"] += 1

    # Broken and foreign files, each dropped by a named filter.
    (root / "notes.txt").write_text("not an image", encoding="utf-8")
    (root / "person_001" / "Thumbs.db").write_bytes(b"\x00" * 16)
    tree.expected["unsupported_type"] += 2
    Image.fromarray(faces[0]).save(root / "loose.png")
    tree.expected["no_identity"] += 1
    (root / "person_002" / "empty.jpg").write_bytes(b"")
    tree.expected["unreadable"] += 1
    whole = root / "person_003" / "whole.png"
    Image.fromarray(cv2.resize(faces[1], (20, 20), interpolation=cv2.INTER_AREA)).save(whole)
    data = whole.read_bytes()
    whole.unlink()
    (root / "person_003" / "cut.png").write_bytes(data[: len(data) // 2])
    tree.expected["corrupt_pixels"] += 1
    (root / ".hidden.jpg").write_bytes(b"ignored")
    tree.n_files += 5
    return tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Tree:
    return make_tree(tmp_path_factory.mktemp("tinyface"))


def test_filter_counts(tree):
    n_identities = 6
    summary = build_dataset(tree.root, n_identities=n_identities, seed=1)
    n_kept = sum(len(paths) for paths in tree.kept_by_identity.values())

    assert summary.n_files == tree.n_files
    assert summary.n_eligible_images == n_kept
    assert summary.n_eligible_identities == len(tree.kept_by_identity)
    for reason in ("unsupported_type", "no_identity", "unreadable", "too_small", "too_large", "corrupt_pixels"):
        assert summary.dropped[reason] == tree.expected[reason], reason

    chosen_identities = {image.identity for image in summary.chosen}
    of_chosen = sum(len(tree.kept_by_identity[identity]) for identity in chosen_identities)
    assert summary.dropped["identity_not_chosen"] == n_kept - of_chosen
    assert summary.dropped["other_image_of_chosen_identity"] == of_chosen - n_identities
    assert summary.n_files == sum(summary.dropped.values()) + len(summary.chosen)
    assert {path for path, _ in summary.problems} == {"person_002/empty.jpg", "person_003/cut.png"}


def test_selection_rules(tree):
    summary = build_dataset(tree.root, n_identities=10, seed=3)
    assert len(summary.chosen) == 10
    assert len({image.identity for image in summary.chosen}) == 10
    for image in summary.chosen:
        assert 15 < image.width < 32
        assert 15 < image.height < 32
        assert image.relative_path in tree.kept_by_identity[image.identity]
        assert identity_from_path(image.relative_path) == image.identity


def test_same_seed_same_selection(tree):
    first = build_dataset(tree.root, n_identities=8, seed=11)
    second = build_dataset(tree.root, n_identities=8, seed=11)
    other = build_dataset(tree.root, n_identities=8, seed=12)
    assert first.chosen == second.chosen
    assert [image.relative_path for image in first.chosen] != [image.relative_path for image in other.chosen]


def test_selection_independent_of_write_order(tmp_path):
    forward = make_tree(tmp_path / "a", n_folder_identities=12, n_flat_identities=4)
    backward = make_tree(tmp_path / "b", n_folder_identities=12, n_flat_identities=4, reverse=True)
    first = build_dataset(forward.root, n_identities=5, seed=7)
    second = build_dataset(backward.root, n_identities=5, seed=7)
    assert [image.relative_path for image in first.chosen] == [image.relative_path for image in second.chosen]


def test_custom_size_limits(tree):
    summary = build_dataset(tree.root, n_identities=3, seed=0, min_size=19, max_size=25)
    for image in summary.chosen:
        assert 19 < image.width < 25
        assert 19 < image.height < 25
    # 16x16 faces are now too small and 31x31 faces too large.
    assert summary.dropped["too_small"] > build_dataset(tree.root, n_identities=3, seed=0).dropped["too_small"]


def test_outputs_written(tree, tmp_path):
    out = tmp_path / "set"
    summary = build_dataset(tree.root, n_identities=7, seed=5, output_dir=out, copy_images=True)

    manifest = read_manifest(out / MANIFEST_NAME)
    assert list(manifest["relative_path"]) == [image.relative_path for image in summary.chosen]
    assert list(manifest["identity"]) == [image.identity for image in summary.chosen]
    for row in manifest.itertuples():
        source = tree.root / row.relative_path
        assert row.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert (out / row.copied_path).read_bytes() == source.read_bytes()

    identities = [line for line in (out / EXCLUDED_IDENTITIES_NAME).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    images = [line for line in (out / EXCLUDED_IMAGES_NAME).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert identities == sorted(image.identity for image in summary.chosen)
    assert images == sorted(image.relative_path for image in summary.chosen)

    record = json.loads((out / SUMMARY_NAME).read_text(encoding="utf-8"))
    assert record["seed"] == 5
    assert record["n_chosen"] == 7
    assert record["dropped"] == summary.dropped


def test_too_few_identities(tree):
    available = len(tree.kept_by_identity)
    with pytest.raises(DatasetError, match=f"only {available} identities"):
        build_dataset(tree.root, n_identities=available + 1)
    summary = build_dataset(tree.root, n_identities=available + 1, allow_fewer=True)
    assert len(summary.chosen) == available


def test_invalid_arguments(tmp_path, tree):
    with pytest.raises(DatasetError, match="not found"):
        build_dataset(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no valid size"):
        build_dataset(tree.root, min_size=20, max_size=21)
    with pytest.raises(DatasetError, match="output folder"):
        build_dataset(tree.root, n_identities=2, copy_images=True)


def test_progress_and_cancel(tree):
    calls = []
    build_dataset(tree.root, n_identities=2, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (tree.n_files, tree.n_files)
    with pytest.raises(DatasetCancelled):
        build_dataset(tree.root, n_identities=2, cancel=lambda: True)


def test_identity_from_path():
    assert identity_from_path("Zhang San/0001.jpg") == "Zhang San"
    assert identity_from_path("a/b/c.jpg") == "a"
    assert identity_from_path("1043_7.jpg") == "1043"
    assert identity_from_path("first_last_2.png") == "first_last"
    assert identity_from_path("noidentity.png") is None
    assert identity_from_path("_3.png") is None


@pytest.mark.shared_data
def test_alrf_sized_set_from_cnn_facepoint(cnn_facepoint_dir, tmp_path):
    """A 700-identity set from downscaled real faces, as a new user builds it."""
    table = pd.read_csv(cnn_facepoint_dir / "landmarks.csv")
    rows = table[table["img_w"] == 160].sort_values("image_path").head(780)
    root = tmp_path / "tinyface"
    n_too_large = 0
    for number, row in enumerate(rows.itertuples()):
        photo = np.asarray(Image.open(cnn_facepoint_dir / row.image_path).convert("RGB"))
        points = np.array([[getattr(row, f"x{k}"), getattr(row, f"y{k}")] for k in range(1, 6)], dtype=float)
        # Every tenth identity only has a face that is too large, so it can never be chosen.
        size = 40 if number % 10 == 0 else 16 + number % 15
        n_too_large += size >= 32
        face, _ = make_lowres_face(photo, (row.bbox_x1, row.bbox_y1, row.bbox_x2, row.bbox_y2), points, size)
        folder = root / f"id{number:04d}"
        folder.mkdir(parents=True)
        Image.fromarray(face).save(folder / "0.jpg", quality=90)

    summary = build_dataset(root, n_identities=700, seed=0, output_dir=tmp_path / "out")
    n_eligible = len(rows) - n_too_large
    assert summary.n_eligible_identities == n_eligible
    assert summary.dropped["too_large"] == n_too_large
    assert summary.dropped["identity_not_chosen"] == n_eligible - 700
    assert len(summary.chosen) == 700
    assert len(read_manifest(tmp_path / "out" / MANIFEST_NAME)) == 700
