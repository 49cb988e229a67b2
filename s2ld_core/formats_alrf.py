"""ALRF landmark text files: one line per image, the image path then its five points.

The format is defined in ``docs/formats.md``. In short:

- ``#`` starts a comment line; blank lines are ignored. Exports start with a header that
  records the layout, the coordinate origin, the point order and any caller lines (such as
  the consensus rule).
- A data line is the image path followed by exactly 10 numbers. The path is everything
  before the last 10 whitespace-separated fields, so it may contain spaces but may not start
  with ``#`` or start or end with whitespace.
- Layout ``pairs`` (default): x1 y1 x2 y2 ... x5 y5. Layout ``mtcnn``: x1 ... x5 y1 ... y5.
- Points are in MTCNN order: left eye, right eye, nose, left mouth corner, right mouth
  corner, where "left" is image-left.
- ``-1 -1`` marks an invisible point. ``nan nan`` marks a point not labelled yet; exports
  write such images only when asked, and imports accept them only when asked.
- Coordinates are 0-based with the centre of the top-left pixel at (0, 0). With
  ``one_based=True`` they are 1-based (MATLAB style): 1 is subtracted on import and added on
  export, never to the ``-1`` marker.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from s2ld_core.atomic import write_text_atomic
from s2ld_core.formats_common import (
    INVISIBLE_MARKER,
    FormatError,
    FormatProblem,
    LabelRecord,
    PointChecker,
    ReadResult,
    WriteSummary,
    check_unique_images,
    normalise_image_path,
    parse_float,
    read_text,
    stack_records,
)
from s2ld_core.schema import LANDMARK_NAMES, N_POINTS, PointState

logger = logging.getLogger(__name__)

LAYOUTS = ("pairs", "mtcnn")
FORMAT_TAG = "alrf-landmarks v1"
N_VALUES = 2 * N_POINTS

# A data line: a path (any text, lazily matched) then exactly 10 whitespace-separated fields.
_DATA_LINE = re.compile(r"^(?P<path>\S.*?)\s+(?P<values>(?:\S+\s+){%d}\S+)\s*$" % (N_VALUES - 1))
_HEADER_KEY = re.compile(r"^#\s*(?P<key>[a-z_]+)\s*:\s*(?P<value>.*?)\s*$")


def _values_to_xy(values: Sequence[float], layout: str) -> np.ndarray:
    """Return 10 numbers in ``layout`` order as a (5, 2) array."""
    flat = np.asarray(values, dtype=np.float64)
    if layout == "pairs":
        return flat.reshape(N_POINTS, 2)
    return np.stack([flat[:N_POINTS], flat[N_POINTS:]], axis=1)


def _xy_to_values(xy: np.ndarray, layout: str) -> np.ndarray:
    """Return points of shape (..., 5, 2) as (..., 10) numbers in ``layout`` order."""
    if layout == "pairs":
        return xy.reshape(*xy.shape[:-2], N_VALUES)
    return np.concatenate([xy[..., 0], xy[..., 1]], axis=-1)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown ALRF layout {layout!r}; use one of {', '.join(LAYOUTS)}")


def _header_settings(lines: list[str]) -> dict[str, tuple[str, int]]:
    """Return ``layout`` and ``origin`` values (with line numbers) from ``#`` header lines."""
    settings = {}
    for number, line in enumerate(lines, start=1):
        match = _HEADER_KEY.match(line.strip())
        if match and match["key"] in ("layout", "origin"):
            settings[match["key"]] = (match["value"].split()[0].lower() if match["value"] else "", number)
    return settings


def _resolve_options(
    path: Path, lines: list[str], layout: str | None, one_based: bool | None
) -> tuple[str, bool]:
    """Combine the caller's options with the file header; a header that contradicts one raises."""
    settings = _header_settings(lines)
    problems = []

    header_layout = settings.get("layout")
    if header_layout is not None and header_layout[0] not in LAYOUTS:
        value, number = header_layout
        problems.append(FormatProblem(f"line {number}", value, f"unknown layout; use one of {', '.join(LAYOUTS)}", number))
    elif header_layout is not None and layout is not None and header_layout[0] != layout:
        value, number = header_layout
        problems.append(
            FormatProblem(f"line {number}", value, f"header says layout {value} but the import requested {layout}", number)
        )

    header_origin = settings.get("origin")
    if header_origin is not None and header_origin[0] not in ("0-based", "1-based"):
        value, number = header_origin
        problems.append(FormatProblem(f"line {number}", value, "unknown origin; use 0-based or 1-based", number))
    elif header_origin is not None and one_based is not None and (header_origin[0] == "1-based") != one_based:
        value, number = header_origin
        requested = "1-based" if one_based else "0-based"
        problems.append(
            FormatProblem(f"line {number}", value, f"header says origin {value} but the import requested {requested}", number)
        )

    if problems:
        raise FormatError(path, problems)

    if layout is None:
        layout = header_layout[0] if header_layout else "pairs"
    if one_based is None:
        one_based = header_origin is not None and header_origin[0] == "1-based"
    return layout, one_based


def read_alrf(
    path: str | os.PathLike,
    *,
    layout: str | None = None,
    one_based: bool | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_outside: bool = False,
    allow_unlabelled: bool = False,
    skip_unknown: bool = False,
) -> ReadResult:
    """Read an ALRF text file into records in the package convention.

    Args:
        layout: "pairs" or "mtcnn"; None takes the file's ``# layout:`` header, else "pairs".
        one_based: True for 1-based coordinates; None takes the ``# origin:`` header, else False.
        sizes: image path (as in the file) -> (width, height); enables the in-image check.
        allow_outside: keep visible points outside the image, flagged in ``record.outside``.
        allow_unlabelled: accept ``nan nan`` as a point not labelled yet.
        skip_unknown: leave out images missing from ``sizes`` instead of rejecting the file.

    Raises:
        FormatError: listing every malformed line and invalid value; no records are returned.
    """
    path = Path(path)
    if layout is not None:
        _check_layout(layout)
    lines = read_text(path).splitlines()
    layout, one_based = _resolve_options(path, lines, layout, one_based)

    checker = PointChecker(
        sizes=sizes,
        allow_outside=allow_outside,
        allow_unlabelled=allow_unlabelled,
        skip_unknown=skip_unknown,
        one_based=one_based,
        invisible_marker=INVISIBLE_MARKER,
    )
    header: list[str] = []
    records: list[LabelRecord] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            header.append(stripped[1:].strip())
            continue

        location = f"line {number}"
        match = _DATA_LINE.match(stripped)
        if match is None:
            fields = stripped.split()
            n_numbers = 0
            while n_numbers < len(fields) - 1 and parse_float(fields[len(fields) - 1 - n_numbers]) is not None:
                n_numbers += 1
            checker.problem(
                location,
                stripped,
                f"expected an image path and {N_VALUES} numbers, found {n_numbers} number(s) after the path",
                number,
            )
            continue

        fields = match["values"].split()
        values = [parse_float(field) for field in fields]
        bad = [field for field, value in zip(fields, values) if value is None]
        if bad:
            checker.problem(
                location,
                bad[0],
                f"not a number; a line is the image path then {N_VALUES} numbers "
                f"(x y per point in layout {layout})",
                number,
            )
            continue

        path_fields = match["path"].split()
        if parse_float(path_fields[-1]) is not None:
            # An image path ends in a file suffix, so a number here means extra values.
            checker.problem(
                location,
                stripped,
                f"expected {N_VALUES} numbers after the image path, found more ({len(fields) + 1} or more)",
                number,
            )
            continue

        image = normalise_image_path(match["path"])
        record = checker.build(image, _values_to_xy(values, layout), location, number)
        if record is not None:
            records.append(record)

    checker.raise_if_problems(path)
    logger.info("read %d labelled images from %s (layout %s, %s)", len(records), path, layout, "1-based" if one_based else "0-based")
    return ReadResult(path=path, records=records, unknown_images=checker.unknown_images, header=header)


def _check_writable_path(image: str, path: Path) -> None:
    if not image or image != image.strip() or image.startswith("#") or "\n" in image or "\r" in image:
        raise ValueError(
            f"cannot write {path}: image path {image!r} is empty, starts with '#' or whitespace, "
            "or contains a line break, so it cannot be read back; rename the image"
        )


def format_alrf(
    records: Iterable[LabelRecord],
    *,
    layout: str = "pairs",
    one_based: bool = False,
    header_lines: Sequence[str] = (),
    include_incomplete: bool = False,
    decimals: int = 3,
    path: str | os.PathLike = "<memory>",
) -> tuple[str, int, int]:
    """Return ALRF text for ``records`` and the counts (written, skipped as incomplete).

    Records are written sorted by image path. See :func:`write_alrf` for the options.
    """
    _check_layout(layout)
    path = Path(path)
    records = sorted(check_unique_images(records, path), key=lambda record: record.image)

    origin = "1-based" if one_based else "0-based"
    lines = [
        f"# {FORMAT_TAG}",
        f"# layout: {layout}",
        f"# origin: {origin}",
        "# coordinates: pixels of the stored image; the centre of the top-left pixel is "
        + ("(1, 1)" if one_based else "(0, 0)"),
        "# points: " + " ".join(LANDMARK_NAMES) + " (left = image-left)",
        "# invisible point: -1 -1; point not labelled yet: nan nan",
    ]
    for extra in header_lines:
        for part in str(extra).splitlines():
            text = part.lstrip()
            lines.append(text if text.startswith("#") else f"# {text}")

    done = [record for record in records if include_incomplete or record.is_done]
    skipped = len(records) - len(done)
    for record in done:
        _check_writable_path(record.image, path)

    xy, state = stack_records(done)
    visible = state == PointState.VISIBLE
    if not np.all(np.isfinite(xy[visible])):
        bad = done[int(np.argwhere(visible & ~np.isfinite(xy).all(axis=-1))[0, 0])]
        raise ValueError(f"cannot write {path}: image {bad.image!r} has a visible point without finite coordinates")
    if one_based:
        xy = xy + 1.0
    xy = np.where(visible[..., None], xy, np.nan)
    xy[state == PointState.INVISIBLE] = INVISIBLE_MARKER

    # Formatting plain Python floats is much faster than formatting numpy scalars one by one.
    values = _xy_to_values(xy, layout)
    body = [
        record.image + " " + " ".join(f"{value:.{decimals}f}" for value in row)
        for record, row in zip(done, values.tolist())
    ]

    if skipped:
        lines.append(f"# images left out because some point is not labelled yet: {skipped}")
    text = "\n".join(lines + body) + "\n"
    return text, len(body), skipped


def write_alrf(
    path: str | os.PathLike,
    records: Iterable[LabelRecord],
    *,
    layout: str = "pairs",
    one_based: bool = False,
    header_lines: Sequence[str] = (),
    include_incomplete: bool = False,
    decimals: int = 3,
) -> WriteSummary:
    """Write records as an ALRF text file, atomically.

    Args:
        layout: "pairs" (x1 y1 ... x5 y5) or "mtcnn" (x1 ... x5 y1 ... y5).
        one_based: write 1-based coordinates (visible points + 1; the -1 marker unchanged).
        header_lines: extra comment lines, such as the consensus rule; ``#`` is added where missing.
        include_incomplete: also write images with points not labelled yet, as ``nan nan``.
            By default such images are left out and counted in the result and the header.
        decimals: digits after the decimal point.

    Raises:
        ValueError: an image repeats, has a path that cannot be read back, or has a visible
            point without coordinates. Nothing is written then.
    """
    path = Path(path)
    text, written, skipped = format_alrf(
        records,
        layout=layout,
        one_based=one_based,
        header_lines=header_lines,
        include_incomplete=include_incomplete,
        decimals=decimals,
        path=path,
    )
    write_text_atomic(path, text)
    logger.info("wrote %d images to %s (%d incomplete left out)", written, path, skipped)
    return WriteSummary(path=path, written=written, skipped_incomplete=skipped)
