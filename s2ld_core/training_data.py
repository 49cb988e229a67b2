"""Training samples for G2 and the loader for the cnn_facepoint landmark set.

A :class:`Sample` is one face with human-labelled points: an RGB image, (5, 2) points in its
pixels, point states, and whether it is a high-resolution photo that needs low-resolution
synthesis (then ``bbox`` is its face box) or an already low-resolution face crop (the whole
image is the face). Training takes only samples built from human labels; model predictions
are never a source.

High-resolution photos are cut down once by :func:`prepare_high_res` to a region around the
face in which the face box is about ``box_px`` pixels wide, so that every epoch resamples
small arrays instead of decoding and shrinking full photos again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from s2ld_core import schema
from s2ld_core.lowres import crop_and_resize, map_points

log = logging.getLogger(__name__)

#: Face box width of cached high-resolution faces, in pixels.
CACHE_BOX_PX = 80

#: Side of the cached region as a multiple of the face box side.
CACHE_REGION = 2.2


class DataError(ValueError):
    """A landmark set is missing, malformed or has no usable faces."""


@dataclass
class Sample:
    """One human-labelled face.

    Attributes:
        image: uint8 RGB (H, W, 3).
        xy: float64 (5, 2) in image pixels; NaN where not visible.
        state: int8 (5,) of :class:`schema.PointState`.
        high_res: True for a photo that needs low-resolution synthesis around ``bbox``.
        bbox: face box (x1, y1, x2, y2) in image pixel edges; required when ``high_res``.
        key: stable identifier used for the data hash (a file path or an image id).
    """

    image: np.ndarray
    xy: np.ndarray
    state: np.ndarray
    high_res: bool
    bbox: tuple[float, float, float, float] | None = None
    key: str = ""

    @property
    def visible(self) -> np.ndarray:
        return self.state == schema.PointState.VISIBLE


def prepare_high_res(sample: Sample, box_px: int = CACHE_BOX_PX, region: float = CACHE_REGION) -> Sample:
    """Return a copy cut to a square ``region`` x the face box, resized so the box is ``box_px`` wide."""
    if not sample.high_res or sample.bbox is None:
        return sample
    x1, y1, x2, y2 = sample.bbox
    side_box = max(x2 - x1, y2 - y1)
    side = side_box * region
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    out_size = int(round(box_px * region))

    image, scale = crop_and_resize(sample.image, x0, y0, side, out_size)
    xy = map_points(sample.xy, x0, y0, scale)
    # Box corners are pixel edges, so they map without the half-pixel terms.
    bbox = ((x1 - x0) * scale, (y1 - y0) * scale, (x2 - x0) * scale, (y2 - y0) * scale)
    return replace(sample, image=image, xy=xy, bbox=bbox)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB; raises :class:`DataError` naming the file when it fails."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"cannot decode image {path}: the file is missing, empty or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_cnn_facepoint(
    root: str | Path,
    split: str = "train",
    limit: int | None = None,
    cache_box_px: int | None = CACHE_BOX_PX,
) -> list[Sample]:
    """Load faces of one ``split`` ("train" or "test") from a cnn_facepoint folder.

    The folder contains ``landmarks.csv`` (0-based points, boxes as pixel corners) and
    ``images/``. With ``cache_box_px`` set, every photo is cut down by :func:`prepare_high_res`
    as it is read; with None the full photos are kept (needed for evaluation sets that are
    cut by :func:`s2ld_core.lowres.make_lowres_face`). ``limit`` keeps the first rows only.
    """
    import pandas as pd

    root = Path(root)
    csv_path = root / "landmarks.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found: pass a cnn_facepoint folder that contains landmarks.csv and images/")
    table = pd.read_csv(csv_path)
    missing = {"image_path", "split", "bbox_x1"} - set(table.columns)
    if missing:
        raise DataError(f"{csv_path} lacks columns {sorted(missing)}")
    if split not in set(table["split"]):
        raise DataError(f"{csv_path} has no rows with split {split!r}; splits present: {sorted(set(table['split']))}")

    rows = table[table["split"] == split]
    if limit is not None:
        rows = rows.iloc[:limit]

    samples = []
    point_columns = [f"{axis}{k}" for k in range(1, 6) for axis in ("x", "y")]
    for row in rows.itertuples(index=False):
        image = read_rgb(root / row.image_path)
        xy = np.array([getattr(row, c) for c in point_columns], dtype=np.float64).reshape(5, 2)
        bbox = (float(row.bbox_x1), float(row.bbox_y1), float(row.bbox_x2), float(row.bbox_y2))
        state = np.full(5, schema.PointState.VISIBLE, dtype=np.int8)
        sample = Sample(image=image, xy=xy, state=state, high_res=True, bbox=bbox, key=str(row.image_path))
        if cache_box_px is not None:
            sample = prepare_high_res(sample, cache_box_px)
        samples.append(sample)
    log.info("loaded %d %s faces from %s", len(samples), split, root)
    return samples


def data_hash(samples: list[Sample]) -> str:
    """Return a SHA-256 over each sample's key, points and states, in order (first 16 hex digits)."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(s.key.encode("utf-8"))
        digest.update(np.nan_to_num(np.asarray(s.xy, dtype=np.float64), nan=-1.0).round(3).tobytes())
        digest.update(np.asarray(s.state, dtype=np.int8).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class LowResSet:
    """Low-resolution faces with human points, all of one size.

    Attributes:
        images: uint8 (N, size, size, 3) RGB, or an object array of crops when sizes differ.
        xy: float64 (N, 5, 2) in face-crop pixels.
        state: int8 (N, 5).
        keys: source identifier of each face.
        head_pose: int (N,) MTCNN/MTFL head-pose code, -1 where unknown.
    """

    images: np.ndarray
    xy: np.ndarray
    state: np.ndarray
    keys: list[str]
    head_pose: np.ndarray


def load_cnn_facepoint_eval(
    root: str | Path,
    split: str = "test",
    sizes: tuple[int, ...] = (16, 24, 32),
    jpeg_quality: int | None = 50,
    limit: int | None = None,
) -> dict[int, LowResSet]:
    """Build fixed evaluation sets from one split with :func:`s2ld_core.lowres.make_lowres_face`.

    Each photo is read once and cut at every size in ``sizes`` (crop side in pixels, margin
    1.25 x the face box side, area downscale, JPEG at ``jpeg_quality``). Returns size -> set.
    """
    import pandas as pd

    from s2ld_core.lowres import make_lowres_face

    root = Path(root)
    csv_path = root / "landmarks.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found: pass a cnn_facepoint folder that contains landmarks.csv and images/")
    table = pd.read_csv(csv_path)
    rows = table[table["split"] == split]
    if limit is not None:
        rows = rows.iloc[:limit]
    if rows.empty:
        raise DataError(f"{csv_path} has no rows with split {split!r}")

    point_columns = [f"{axis}{k}" for k in range(1, 6) for axis in ("x", "y")]
    images: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    points: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    for row in rows.itertuples(index=False):
        photo = read_rgb(root / row.image_path)
        xy = np.array([getattr(row, c) for c in point_columns], dtype=np.float64).reshape(5, 2)
        bbox = (row.bbox_x1, row.bbox_y1, row.bbox_x2, row.bbox_y2)
        for size in sizes:
            face, face_xy = make_lowres_face(photo, bbox, xy, size, jpeg_quality)
            images[size].append(face)
            points[size].append(face_xy)

    state = np.full((len(rows), 5), schema.PointState.VISIBLE, dtype=np.int8)
    pose = rows["head_pose"].to_numpy(dtype=np.int64) if "head_pose" in rows.columns else np.full(len(rows), -1)
    keys = [str(p) for p in rows["image_path"]]
    return {
        s: LowResSet(np.stack(images[s]), np.stack(points[s]), state.copy(), keys, pose.copy()) for s in sizes
    }


def load_points_csv(csv_path: str | Path) -> LowResSet:
    """Load face crops listed in a points CSV with columns ``image`` and ``<point>_x``, ``<point>_y``.

    Image paths are relative to the CSV's folder and all crops must have the same size.
    Empty or negative coordinates mark a point invisible.
    """
    import pandas as pd

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found")
    table = pd.read_csv(csv_path)
    columns = [f"{name}_{axis}" for name in schema.LANDMARK_NAMES for axis in ("x", "y")]
    missing = [c for c in ["image", *columns] if c not in table.columns]
    if missing:
        raise DataError(f"{csv_path} lacks columns {missing}")

    images = [read_rgb(csv_path.parent / name) for name in table["image"]]
    shapes = {im.shape for im in images}
    xy = table[columns].to_numpy(dtype=np.float64).reshape(-1, schema.N_POINTS, 2)
    invisible = ~np.all(np.isfinite(xy) & (xy >= -0.5), axis=-1)
    xy[invisible] = np.nan
    state = np.where(invisible, schema.PointState.INVISIBLE, schema.PointState.VISIBLE).astype(np.int8)
    stacked = np.stack(images) if len(shapes) == 1 else np.empty(len(images), dtype=object)
    if len(shapes) != 1:
        stacked[:] = images
    return LowResSet(stacked, xy, state, [str(n) for n in table["image"]], np.full(len(images), -1))


#: Project images wider than this are treated as high-resolution faces needing synthesis.
HIGH_RES_MIN_SIDE = 48


def samples_from_project(project_dir: str | Path, annotator: str) -> list[Sample]:
    """Build samples from one annotator's finished labels in a project.

    Only human labels are read (the store keeps model predictions apart); an image counts when
    every point is visible or invisible. The whole image is the face; images whose shorter
    side exceeds :data:`HIGH_RES_MIN_SIDE` pixels go through low-resolution synthesis.
    """
    from s2ld_core.store import Project

    samples = []
    with Project.open(project_dir, read_only=True) as project:
        if annotator not in project.annotators():
            raise DataError(f"annotator {annotator!r} not found in {project_dir}; annotators: {project.annotators()}")
        ids, _, xy, state = project.labels_array([annotator])
        for n, image_id in enumerate(ids):
            if np.any(state[n, 0] == schema.PointState.UNLABELLED):
                continue
            image = project.load_image(int(image_id))
            h, w = image.shape[:2]
            high_res = min(h, w) > HIGH_RES_MIN_SIDE
            bbox = (-0.5, -0.5, w - 0.5, h - 0.5) if high_res else None
            samples.append(Sample(image, xy[n, 0].copy(), state[n, 0].copy(), high_res, bbox, key=f"image:{int(image_id)}"))
    if not samples:
        raise DataError(f"{project_dir} has no finished labels by {annotator!r} to train on")
    log.info("loaded %d labelled faces of %s from %s", len(samples), annotator, project_dir)
    return samples
