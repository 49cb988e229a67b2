"""Label files written and read by the tests themselves, independent of s2ld_core's writers and readers.

Points are (N, 5, 2) in the package convention: 0-based, with the centre of pixel (i, j) at
(i, j). States are (N, 5) of PointState. Coordinates of points that are not visible are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from s2ld_core.schema import LANDMARK_NAMES, PointState

VISIBLE, INVISIBLE, UNLABELLED = PointState.VISIBLE, PointState.INVISIBLE, PointState.UNLABELLED

#: Digits after the decimal point that these writers use.
DECIMALS = 4

#: Column names of the test CSV files, which the mapping CSV_MAPPING turns into canonical names.
CSV_COLUMNS = ["file", "lex", "ley", "rex", "rey", "nx", "ny", "mlx", "mly", "mrx", "mry"]
CSV_MAPPING = "image=file," + ",".join(
    f"{name}_{axis}={column}"
    for (name, axis), column in zip(((n, a) for n in LANDMARK_NAMES for a in "xy"), CSV_COLUMNS[1:])
)


def _value(v: float, point_state: int) -> str:
    if point_state == INVISIBLE:
        return "-1"
    if point_state == UNLABELLED:
        return "nan"
    return f"{v:.{DECIMALS}f}"


def _rows(images: Sequence[str], xy: np.ndarray, state: np.ndarray, offset: float) -> list[list[str]]:
    return [
        [image] + [_value(v + offset, s) for (px, py), s in zip(points, states) for v in (px, py)]
        for image, points, states in zip(images, xy, state)
    ]


def write_alrf_file(path: Path, images, xy, state, offset: float = 0.0, header: Sequence[str] = ()) -> Path:
    """Write ALRF lines ``image x1 y1 ... x5 y5`` with -1 for invisible and nan for unlabelled points."""
    lines = ["# labels written by the tests", *header]
    lines += [" ".join(row) for row in _rows(images, xy, state, offset)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv_file(path: Path, images, xy, state, offset: float = 0.0) -> Path:
    """Write a CSV with the columns of CSV_COLUMNS: -1, -1 for invisible and empty cells for unlabelled points."""
    rows = [[cell if cell != "nan" else "" for cell in row] for row in _rows(images, xy, state, offset)]
    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(path, index=False)
    return path


def write_coco_file(path: Path, images, sizes, xy, state) -> Path:
    """Write COCO keypoints as external tools do: v=2 visible, v=1 invisible, v=0 not labelled.

    The keypoints are in COCO's pixel-edge frame (package coordinate + 0.5). The category id
    is 7, so the reader cannot depend on the id that the project's own writer uses.
    """
    image_entries, annotations = [], []
    for number, (image, (width, height)) in enumerate(zip(images, sizes), start=1):
        image_entries.append({"id": number, "file_name": image, "width": int(width), "height": int(height)})
        keypoints: list[float] = []
        for (x, y), point_state in zip(xy[number - 1], state[number - 1]):
            if point_state == VISIBLE:
                keypoints += [round(x + 0.5, DECIMALS), round(y + 0.5, DECIMALS), 2]
            else:
                keypoints += [0, 0, 1 if point_state == INVISIBLE else 0]
        annotations.append(
            {
                "id": 100 + number,
                "image_id": number,
                "category_id": 7,
                "keypoints": keypoints,
                "num_keypoints": int(np.sum(state[number - 1] == VISIBLE)),
            }
        )
    category = {"id": 7, "name": "face", "keypoints": list(LANDMARK_NAMES), "skeleton": []}
    document = {"images": image_entries, "annotations": annotations, "categories": [category]}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def read_alrf_values(path: Path) -> dict[str, np.ndarray]:
    """Return image -> (5, 2) values of an ALRF file in pairs layout, as written (-1 stays -1)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        out[" ".join(fields[:-10])] = np.array(fields[-10:], dtype=float).reshape(5, 2)
    return out


def expected_consensus(xy: np.ndarray, state: np.ndarray, min_annotators: int = 3):
    """Return (included (N,), xy (N, 5, 2), state (N, 5)) for labels (N, A, 5, 2) and (N, A, 5).

    An image is included when ``min_annotators`` finished it. A point is visible when a
    majority of the finished annotators marked it visible, and it lies at the mean of their points.
    """
    finished = np.all(state != UNLABELLED, axis=2)
    n_finished = finished.sum(axis=1)
    included = n_finished >= min_annotators
    marked = (state == VISIBLE) & finished[:, :, None]
    point_visible = included[:, None] & (marked.sum(axis=1) >= n_finished[:, None] // 2 + 1)
    mean = np.where(marked[..., None], xy, 0.0).sum(axis=1) / np.maximum(marked.sum(axis=1), 1)[..., None]
    mean[~point_visible] = np.nan
    cons_state = np.where(point_visible, VISIBLE, INVISIBLE).astype(np.int8)
    return included, mean, cons_state
