"""Pick an ALRF-style image set from a TinyFace-like tree of low-resolution faces.

The source tree may hold identity folders, ``<root>/<identity>/.../*.jpg``, where the
identity is the top-level folder. It may also hold flat files named ``<identity>_<k>.<ext>``
directly in the root, where the identity is the name before the last underscore. Both may
be mixed.

Selection, in this order, each step counting what it drops:

1. Files that are not images of a supported type, hidden files and flat files without an
   underscore in the name are dropped.
2. Image sizes come from the file headers (Pillow opens lazily), with EXIF rotation taken
   into account. Unreadable headers are dropped.
3. An image is kept only when ``min_size < width < max_size`` and the same for the height
   (defaults 15 and 32, both exclusive). An image with either side ``<= min_size`` counts
   as too small; otherwise one with a side ``>= max_size`` counts as too large.
4. With ``verify=True`` (the default) the images that passed are decoded once, so files with
   truncated pixel data are dropped too. Only small images reach this step, so it is cheap.
5. ``n_identities`` identities are drawn without replacement from those with an image left,
   then one image per chosen identity, with ``numpy.random.default_rng(seed)``. Paths and
   identities are sorted before drawing, so the same seed and the same files give the same
   selection on every platform.

Outputs in ``output_dir``: ``manifest.csv`` (one row per chosen image),
``excluded_identities.txt`` and ``excluded_images.txt`` (one per line, for removing the
chosen faces from verification experiments) and ``dataset.json`` (parameters and counts).
With ``copy_images=True`` the chosen files are also copied, unchanged, to
``output_dir/images/`` under their relative paths.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import pandas as pd

from s2ld_core.atomic import write_text_atomic
from s2ld_core.imageio import ImageReadError, image_sha256, is_supported, read_image, read_image_size

logger = logging.getLogger(__name__)

DEFAULT_N_IDENTITIES = 700
DEFAULT_MIN_SIZE = 15
DEFAULT_MAX_SIZE = 32
DEFAULT_SEED = 0

MANIFEST_NAME = "manifest.csv"
EXCLUDED_IDENTITIES_NAME = "excluded_identities.txt"
EXCLUDED_IMAGES_NAME = "excluded_images.txt"
SUMMARY_NAME = "dataset.json"

#: Keys of :attr:`DatasetSummary.dropped`, in the order the filters run.
DROP_REASONS: tuple[str, ...] = (
    "unsupported_type",
    "no_identity",
    "unreadable",
    "too_small",
    "too_large",
    "corrupt_pixels",
    "identity_not_chosen",
    "other_image_of_chosen_identity",
)


class DatasetError(Exception):
    """The dataset cannot be built as requested; the message names the reason and the fix."""


class DatasetCancelled(DatasetError):
    """The caller's cancel callback returned True; nothing was written."""


@dataclass(frozen=True)
class SourceImage:
    """One image file of the source tree.

    Attributes:
        relative_path: path below the root with ``/`` separators.
        identity: identity label from the folder or file name.
        width, height: upright size in pixels (EXIF rotation applied).
    """

    relative_path: str
    identity: str
    width: int
    height: int


@dataclass
class DatasetSummary:
    """Outcome of :func:`build_dataset`.

    Attributes:
        n_files: files found under the root (hidden files excluded).
        dropped: number of files each filter dropped, keyed by :data:`DROP_REASONS`.
            ``n_files == sum(dropped.values()) + len(chosen)``.
        n_eligible_images: images that passed the type, size and decode filters.
        n_eligible_identities: identities with at least one such image.
        chosen: the selected images, sorted by identity.
        problems: (relative path, message) of every unreadable or corrupt file.
        output_dir: where the manifest and lists were written, or None.
    """

    root: Path
    seed: int
    n_identities: int
    min_size: int
    max_size: int
    n_files: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {reason: 0 for reason in DROP_REASONS})
    n_eligible_images: int = 0
    n_eligible_identities: int = 0
    chosen: list[SourceImage] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    output_dir: Path | None = None

    def describe(self) -> str:
        """Return a few lines of text for a CLI or a log: counts per filter and the selection."""
        lines = [
            f"{self.n_files} files under {self.root}",
            f"kept {self.n_eligible_images} images of {self.n_eligible_identities} identities "
            f"with {self.min_size} < width, height < {self.max_size} px",
            f"chose {len(self.chosen)} identities, one image each (seed {self.seed})",
            "dropped: " + ", ".join(f"{reason} {count}" for reason, count in self.dropped.items()),
        ]
        if self.output_dir is not None:
            lines.append(f"wrote {MANIFEST_NAME}, {EXCLUDED_IDENTITIES_NAME}, {EXCLUDED_IMAGES_NAME} to {self.output_dir}")
        return "\n".join(lines)


def identity_from_path(relative_path: str) -> str | None:
    """Return the identity of a file from its path below the root, or None when it has none.

    ``<identity>/.../<file>`` gives the top folder; a file directly in the root named
    ``<identity>_<k>.<ext>`` gives the part before the last underscore.
    """
    parts = PurePosixPath(relative_path).parts
    if len(parts) > 1:
        return parts[0]
    stem = PurePosixPath(relative_path).stem
    identity, separator, _ = stem.rpartition("_")
    if not separator or not identity:
        return None
    return identity


def list_files(root: str | os.PathLike) -> list[str]:
    """Return every non-hidden file below ``root`` as sorted ``/``-separated relative paths."""
    root = Path(root)
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        relative_folder = Path(folder).relative_to(root)
        for name in files:
            if not name.startswith("."):
                found.append((relative_folder / name).as_posix())
    return sorted(found)


def _check_arguments(root: Path, n_identities: int, min_size: int, max_size: int) -> None:
    if not root.is_dir():
        raise DatasetError(f"source folder {root} not found; pass the folder that contains the identity folders or files")
    if n_identities < 1:
        raise DatasetError(f"number of identities must be at least 1, got {n_identities}")
    if min_size < 0 or max_size <= min_size + 1:
        raise DatasetError(
            f"size limits {min_size} < side < {max_size} leave no valid size; the maximum must exceed the minimum by 2 or more"
        )


def scan_tree(
    root: str | os.PathLike,
    summary: DatasetSummary,
    verify: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[SourceImage]:
    """Return the images of the tree that pass the type, size and decode filters, sorted by path.

    Counts of dropped files and problem messages are added to ``summary``.
    """
    root = Path(root)
    files = list_files(root)
    summary.n_files = len(files)
    dropped = summary.dropped
    eligible: list[SourceImage] = []

    for index, relative_path in enumerate(files):
        if cancel is not None and cancel():
            raise DatasetCancelled(f"dataset scan of {root} cancelled after {index} of {len(files)} files")
        if progress is not None and index % 256 == 0:
            progress(index, len(files))

        if not is_supported(relative_path):
            dropped["unsupported_type"] += 1
            continue
        identity = identity_from_path(relative_path)
        if identity is None:
            dropped["no_identity"] += 1
            continue

        try:
            width, height = read_image_size(root / relative_path)
        except ImageReadError as err:
            dropped["unreadable"] += 1
            summary.problems.append((relative_path, str(err)))
            continue

        if min(width, height) <= summary.min_size:
            dropped["too_small"] += 1
            continue
        if max(width, height) >= summary.max_size:
            dropped["too_large"] += 1
            continue

        if verify:
            try:
                read_image(root / relative_path)
            except ImageReadError as err:
                dropped["corrupt_pixels"] += 1
                summary.problems.append((relative_path, str(err)))
                continue
        eligible.append(SourceImage(relative_path, identity, width, height))

    if progress is not None:
        progress(len(files), len(files))
    for relative_path, message in summary.problems:
        logger.warning("dataset scan dropped %s: %s", relative_path, message)
    return eligible


def choose_images(
    eligible: list[SourceImage], n_identities: int, seed: int, allow_fewer: bool = False
) -> list[SourceImage]:
    """Draw ``n_identities`` identities and one image of each, reproducibly for ``seed``.

    Raises:
        DatasetError: fewer identities are available than requested and ``allow_fewer`` is False.
    """
    by_identity: dict[str, list[SourceImage]] = {}
    for image in sorted(eligible, key=lambda image: image.relative_path):
        by_identity.setdefault(image.identity, []).append(image)
    identities = sorted(by_identity)

    if len(identities) < n_identities and not allow_fewer:
        raise DatasetError(
            f"only {len(identities)} identities have an image within the size limits, "
            f"but {n_identities} were requested; lower the number or widen the limits"
        )
    count = min(n_identities, len(identities))

    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(identities), size=count, replace=False).tolist())
    chosen = []
    for identity_index in picked:
        images = by_identity[identities[identity_index]]
        chosen.append(images[int(rng.integers(len(images)))])
    return chosen


def _write_outputs(root: Path, summary: DatasetSummary, output_dir: Path, copy_images: bool) -> None:
    rows = []
    for number, image in enumerate(summary.chosen):
        row = asdict(image) | {"index": number, "sha256": image_sha256(root / image.relative_path)}
        if copy_images:
            target = output_dir / "images" / image.relative_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / image.relative_path, target)
            row["copied_path"] = (PurePosixPath("images") / image.relative_path).as_posix()
        rows.append(row)

    columns = ["index", "identity", "relative_path", "width", "height", "sha256"] + (["copied_path"] if copy_images else [])
    table = pd.DataFrame(rows, columns=columns)
    write_text_atomic(output_dir / MANIFEST_NAME, table.to_csv(index=False, lineterminator="\n"))

    header = (
        f"# chosen by the dataset builder from {root.name}: seed {summary.seed}, "
        f"{summary.min_size} < width, height < {summary.max_size} px\n"
    )
    identities = sorted(image.identity for image in summary.chosen)
    images = sorted(image.relative_path for image in summary.chosen)
    write_text_atomic(output_dir / EXCLUDED_IDENTITIES_NAME, header + "".join(f"{name}\n" for name in identities))
    write_text_atomic(output_dir / EXCLUDED_IMAGES_NAME, header + "".join(f"{path}\n" for path in images))

    record = {
        "source": str(root),
        "seed": summary.seed,
        "n_identities_requested": summary.n_identities,
        "min_size_px_exclusive": summary.min_size,
        "max_size_px_exclusive": summary.max_size,
        "n_files": summary.n_files,
        "n_eligible_images": summary.n_eligible_images,
        "n_eligible_identities": summary.n_eligible_identities,
        "n_chosen": len(summary.chosen),
        "dropped": summary.dropped,
        "problems": [{"path": path, "message": message} for path, message in summary.problems],
    }
    write_text_atomic(output_dir / SUMMARY_NAME, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def build_dataset(
    root: str | os.PathLike,
    *,
    n_identities: int = DEFAULT_N_IDENTITIES,
    seed: int = DEFAULT_SEED,
    min_size: int = DEFAULT_MIN_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
    output_dir: str | os.PathLike | None = None,
    copy_images: bool = False,
    verify: bool = True,
    allow_fewer: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> DatasetSummary:
    """Choose one image for each of ``n_identities`` random identities of a TinyFace-like tree.

    Args:
        root: source folder (identity folders and/or ``<identity>_<k>.<ext>`` files).
        n_identities: identities to draw (ALRF used 700).
        seed: seed of ``numpy.random.default_rng``; the same seed and files give the same set.
        min_size, max_size: exclusive limits in pixels for both width and height.
        output_dir: folder for the manifest, the exclusion lists and ``dataset.json``;
            None writes nothing.
        copy_images: also copy the chosen files to ``output_dir/images/``.
        verify: decode every image within the size limits and drop those that fail.
        allow_fewer: choose all available identities when fewer than ``n_identities`` exist.
        progress: called with (files scanned, total files).
        cancel: polled during the scan; returning True raises :class:`DatasetCancelled`.

    Raises:
        DatasetError: invalid arguments, a missing root or too few identities.
    """
    root = Path(root)
    _check_arguments(root, n_identities, min_size, max_size)
    if copy_images and output_dir is None:
        raise DatasetError("copy_images needs an output folder; pass output_dir")

    summary = DatasetSummary(root=root, seed=seed, n_identities=n_identities, min_size=min_size, max_size=max_size)
    eligible = scan_tree(root, summary, verify=verify, progress=progress, cancel=cancel)
    summary.n_eligible_images = len(eligible)
    summary.n_eligible_identities = len({image.identity for image in eligible})

    summary.chosen = choose_images(eligible, n_identities, seed, allow_fewer=allow_fewer)
    chosen_identities = {image.identity for image in summary.chosen}
    n_of_chosen_identities = sum(1 for image in eligible if image.identity in chosen_identities)
    summary.dropped["identity_not_chosen"] = len(eligible) - n_of_chosen_identities
    summary.dropped["other_image_of_chosen_identity"] = n_of_chosen_identities - len(summary.chosen)

    if output_dir is not None:
        summary.output_dir = Path(output_dir)
        summary.output_dir.mkdir(parents=True, exist_ok=True)
        _write_outputs(root, summary, summary.output_dir, copy_images)
    logger.info("built dataset from %s:\n%s", root, summary.describe())
    return summary


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Return a manifest written by :func:`build_dataset` as a DataFrame (identity and path as text)."""
    return pd.read_csv(path, dtype={"identity": str, "relative_path": str, "sha256": str})
