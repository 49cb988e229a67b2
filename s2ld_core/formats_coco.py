"""COCO keypoints JSON: one category with the five landmarks, one annotation per label.

Coordinates: COCO boxes and segmentations use a continuous frame in which the image spans
0..width, so the centre of the top-left pixel is (0.5, 0.5). This module writes keypoints in
that frame, ``x_coco = x + 0.5`` and ``y_coco = y + 0.5``, and subtracts 0.5 on import. Some
tools read COCO keypoints as pixel indices instead (centre of the top-left pixel at (0, 0));
for them, pass ``offset=0.0`` to both functions.

Visibility follows COCO: ``v = 2`` visible, ``v = 0`` invisible or not labelled, with x = y = 0
where ``v = 0``. Because ``v = 0`` merges two states, each annotation also carries
``point_states`` (``visible`` / ``invisible`` / ``unlabelled`` per keypoint), which the
importer uses to restore the state. On import, ``v = 1`` (labelled but occluded) becomes
invisible and its coordinates are dropped, because an invisible point has no position here.

The category lists ``keypoints`` (names in MTCNN order), a ``skeleton`` of 1-based index
pairs as COCO uses, ``flip_pairs`` of 0-based index pairs that swap under a horizontal flip,
and ``swap_pairs`` with the same pairs by name. Every annotation's ``bbox`` is the whole image.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from s2ld_core.atomic import write_text_atomic
from s2ld_core.formats_common import (
    STATE_BY_NAME,
    STATE_NAMES,
    FormatError,
    FormatProblem,
    LabelRecord,
    PointChecker,
    ReadResult,
    WriteSummary,
    check_unique_images,
    normalise_image_path,
    read_text,
    stack_records,
)
from s2ld_core.schema import LANDMARK_NAMES, N_POINTS, SWAP_PAIRS, PointState

logger = logging.getLogger(__name__)

#: Offset added to package coordinates to get COCO coordinates (pixel-edge origin).
COCO_OFFSET = 0.5

CATEGORY_ID = 1

#: Lines between landmarks for drawing, as 1-based keypoint indices (COCO's convention).
SKELETON: tuple[tuple[int, int], ...] = ((1, 2), (1, 3), (2, 3), (3, 4), (3, 5), (4, 5))

VISIBLE_FLAG = 2
OCCLUDED_FLAG = 1
NOT_VISIBLE_FLAG = 0


def coco_category(name: str = "face") -> dict:
    """Return the COCO category entry that describes the five landmarks."""
    return {
        "id": CATEGORY_ID,
        "name": name,
        "supercategory": name,
        "keypoints": list(LANDMARK_NAMES),
        "skeleton": [list(pair) for pair in SKELETON],
        "flip_pairs": [list(pair) for pair in SWAP_PAIRS],
        "swap_pairs": [[LANDMARK_NAMES[a], LANDMARK_NAMES[b]] for a, b in SWAP_PAIRS],
    }


def coco_document(
    records: Iterable[LabelRecord],
    sizes: Mapping[str, tuple[int, int]],
    *,
    offset: float = COCO_OFFSET,
    include_incomplete: bool = False,
    info: Mapping[str, object] | None = None,
    category_name: str = "face",
    decimals: int = 3,
    path: str | os.PathLike = "<memory>",
) -> tuple[dict, int, int]:
    """Return the COCO dictionary for ``records`` and the counts (written, skipped as incomplete).

    Images get ids 1, 2, ... in sorted path order; annotations are numbered in the order of
    (image, annotator). See :func:`write_coco` for the arguments.
    """
    path = Path(path)
    records = check_unique_images(records, path)
    kept = [record for record in records if include_incomplete or record.is_done]
    kept.sort(key=lambda record: (record.image, record.annotator or ""))

    image_paths = sorted({record.image for record in kept})
    missing = [image for image in image_paths if image not in sizes]
    if missing:
        raise ValueError(f"cannot write {path}: no width and height given for image(s) {', '.join(missing[:5])}")
    image_ids = {image: number for number, image in enumerate(image_paths, start=1)}
    images = [
        {"id": image_ids[image], "file_name": image, "width": int(sizes[image][0]), "height": int(sizes[image][1])}
        for image in image_paths
    ]

    xy, state = stack_records(kept)
    visible = state == PointState.VISIBLE
    if not np.all(np.isfinite(xy[visible])):
        bad = kept[int(np.argwhere(visible & ~np.isfinite(xy).all(axis=-1))[0, 0])]
        raise ValueError(f"cannot write {path}: image {bad.image!r} has a visible point without finite coordinates")
    # (N, 5, 3) rows of x, y, v with x = y = 0 where v = 0, flattened per annotation.
    triples = np.zeros((len(kept), N_POINTS, 3))
    triples[..., :2] = np.where(visible[..., None], np.round(xy + offset, decimals), 0.0)
    triples[..., 2] = np.where(visible, VISIBLE_FLAG, NOT_VISIBLE_FLAG)
    keypoint_lists = triples.reshape(len(kept), 3 * N_POINTS).tolist()
    state_lists = state.tolist()

    annotations = []
    for number, record in enumerate(kept, start=1):
        width, height = (int(v) for v in sizes[record.image])
        keypoints = [int(v) if k % 3 == 2 or v == 0 else v for k, v in enumerate(keypoint_lists[number - 1])]
        annotation: dict[str, object] = {
            "id": number,
            "image_id": image_ids[record.image],
            "category_id": CATEGORY_ID,
            "keypoints": keypoints,
            "num_keypoints": int(np.count_nonzero(visible[number - 1])),
            "bbox": [0, 0, width, height],
            "area": width * height,
            "iscrowd": 0,
            "point_states": [STATE_NAMES[PointState(s)] for s in state_lists[number - 1]],
        }
        if record.annotator is not None:
            annotation["annotator"] = record.annotator
        for key, value in record.extra.items():
            if key in annotation:
                raise ValueError(f"extra key {key!r} of image {record.image!r} clashes with a COCO annotation key")
            annotation[key] = value
        annotations.append(annotation)

    coordinates = (
        f"keypoint = package coordinate + {offset:g}; "
        + ("the image spans 0..width (pixel-edge origin)" if offset == 0.5 else "custom offset")
    )
    document = {
        "info": {"description": "ALRF Studio landmark export", "coordinates": coordinates, "coordinate_offset": offset}
        | dict(info or {}),
        "images": images,
        "annotations": annotations,
        "categories": [coco_category(category_name)],
    }
    return document, len(kept), len(records) - len(kept)


def write_coco(
    path: str | os.PathLike,
    records: Iterable[LabelRecord],
    sizes: Mapping[str, tuple[int, int]],
    *,
    offset: float = COCO_OFFSET,
    include_incomplete: bool = False,
    info: Mapping[str, object] | None = None,
    category_name: str = "face",
    decimals: int = 3,
) -> WriteSummary:
    """Write records as COCO keypoints JSON, atomically.

    Args:
        sizes: image path -> (width, height) in pixels, for ``images`` and the whole-image bbox.
        offset: added to package coordinates; 0.5 gives COCO's pixel-edge frame (module docstring).
        include_incomplete: also write labels with points not labelled yet (as ``v = 0``).
        info: extra keys for the ``info`` block, such as the consensus rule and annotators.
        decimals: digits after the decimal point of coordinates.

    Raises:
        ValueError: a repeated (image, annotator), an image without a size, or a visible
            point without coordinates. Nothing is written then.
    """
    path = Path(path)
    document, written, skipped = coco_document(
        records,
        sizes,
        offset=offset,
        include_incomplete=include_incomplete,
        info=info,
        category_name=category_name,
        decimals=decimals,
        path=path,
    )
    write_text_atomic(path, json.dumps(document, ensure_ascii=False))
    logger.info("wrote %d annotations to %s (%d incomplete left out)", written, path, skipped)
    return WriteSummary(path=path, written=written, skipped_incomplete=skipped)


def _keypoint_order(category: Mapping, problems: list[FormatProblem]) -> list[int] | None:
    """Return, for each landmark in MTCNN order, its index in the category's keypoint list."""
    names = category.get("keypoints")
    location = f"category id {category.get('id')}"
    if not isinstance(names, list):
        problems.append(FormatProblem(location, repr(names), "category has no keypoints list"))
        return None
    missing = [name for name in LANDMARK_NAMES if name not in names]
    if missing or len(names) != N_POINTS:
        problems.append(
            FormatProblem(location, ", ".join(map(str, names)), f"keypoints must be exactly {', '.join(LANDMARK_NAMES)}")
        )
        return None
    return [names.index(name) for name in LANDMARK_NAMES]


def _annotation_points(
    annotation: Mapping, order: list[int], offset: float, location: str, problems: list[FormatProblem]
) -> tuple[np.ndarray, list[PointState]] | None:
    """Return (raw xy (5, 2) in package coordinates, states) of one annotation, or None after a problem."""
    keypoints = annotation.get("keypoints")
    if not isinstance(keypoints, list) or len(keypoints) != 3 * N_POINTS:
        count = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
        problems.append(
            FormatProblem(location, str(count), f"keypoints must be a list of {3 * N_POINTS} numbers (x, y, v per point)")
        )
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in keypoints):
        bad = next(v for v in keypoints if not isinstance(v, (int, float)) or isinstance(v, bool))
        problems.append(FormatProblem(location, repr(bad), "keypoints must contain only numbers"))
        return None

    point_states = annotation.get("point_states")
    if not (isinstance(point_states, list) and len(point_states) == N_POINTS):
        point_states = None

    raw = np.full((N_POINTS, 2), np.nan)
    states: list[PointState] = []
    for k, source in enumerate(order):
        x, y, flag = keypoints[3 * source : 3 * source + 3]
        if flag == VISIBLE_FLAG:
            raw[k] = (x - offset, y - offset)
            states.append(PointState.VISIBLE)
        elif flag == OCCLUDED_FLAG:
            states.append(PointState.INVISIBLE)
        elif flag == NOT_VISIBLE_FLAG:
            stated = STATE_BY_NAME.get(point_states[source]) if point_states else None
            states.append(stated if stated in (PointState.INVISIBLE, PointState.UNLABELLED) else PointState.UNLABELLED)
        else:
            problems.append(FormatProblem(location, repr(flag), f"{LANDMARK_NAMES[k]} visibility must be 0, 1 or 2"))
            return None
    return raw, states


def read_coco(
    path: str | os.PathLike,
    *,
    offset: float = COCO_OFFSET,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_outside: bool = False,
    skip_unknown: bool = False,
) -> ReadResult:
    """Read COCO keypoints JSON with the five landmarks into records (one per annotation).

    Keypoints are matched to landmarks by name through the category's ``keypoints`` list.
    Without ``sizes``, each image's ``width`` and ``height`` from the file bound the points.

    Raises:
        FormatError: invalid JSON, missing fields, wrong keypoint counts or invalid values,
            each located by annotation id; no records are returned.
    """
    path = Path(path)
    text = read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        problem = FormatProblem(f"line {err.lineno}", text.splitlines()[err.lineno - 1][:80] if text else "", f"invalid JSON ({err.msg}, column {err.colno})", err.lineno)
        raise FormatError(path, [problem]) from err

    problems: list[FormatProblem] = []
    if not isinstance(document, dict) or not all(isinstance(document.get(key), list) for key in ("images", "annotations", "categories")):
        problems.append(FormatProblem("file", str(path), "expected a JSON object with images, annotations and categories lists"))
        raise FormatError(path, problems)

    orders = {}
    for category in document["categories"]:
        if isinstance(category, dict) and "keypoints" in category:
            order = _keypoint_order(category, problems)
            if order is not None:
                orders[category.get("id")] = order

    images: dict[object, dict] = {}
    for entry in document["images"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str) or "id" not in entry:
            problems.append(FormatProblem("images", repr(entry)[:80], "image entry needs an id and a file_name"))
            continue
        images[entry["id"]] = entry

    file_sizes = {
        normalise_image_path(entry["file_name"]): (int(entry["width"]), int(entry["height"]))
        for entry in images.values()
        if isinstance(entry.get("width"), int) and isinstance(entry.get("height"), int)
    }
    checker = PointChecker(
        sizes=sizes if sizes is not None else file_sizes,
        allow_outside=allow_outside,
        skip_unknown=skip_unknown,
        invisible_marker=None,
    )
    checker.problems.extend(problems)

    records = []
    for index, annotation in enumerate(document["annotations"]):
        location = f"annotation id {annotation.get('id', f'#{index}')}" if isinstance(annotation, dict) else f"annotation #{index}"
        if not isinstance(annotation, dict):
            checker.problem(location, repr(annotation)[:80], "annotation must be a JSON object")
            continue
        order = orders.get(annotation.get("category_id"))
        if order is None:
            checker.problem(location, repr(annotation.get("category_id")), "category has no valid five-landmark keypoints list")
            continue
        image_entry = images.get(annotation.get("image_id"))
        if image_entry is None:
            checker.problem(location, repr(annotation.get("image_id")), "image_id is not in the images list")
            continue

        points = _annotation_points(annotation, order, offset, location, checker.problems)
        if points is None:
            continue
        raw, states = points
        annotator = annotation.get("annotator")
        image = normalise_image_path(image_entry["file_name"])
        record = checker.build(image, raw, location, annotator=annotator if isinstance(annotator, str) else None, states=states)
        if record is not None:
            records.append(record)

    checker.raise_if_problems(path)
    logger.info("read %d annotations from %s", len(records), path)
    return ReadResult(path=path, records=records, unknown_images=checker.unknown_images)
