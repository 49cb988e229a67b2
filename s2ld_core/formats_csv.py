"""Label CSV files with named columns, read and written through pandas.

Columns written, in this order (see ``docs/formats.md``)::

    image, annotator, left_eye_x, left_eye_y, left_eye_state, ..., mouth_right_state, [extra...]

``x`` and ``y`` are 0-based floats in the package convention and empty unless the point is
visible; ``state`` is ``visible``, ``invisible`` or ``unlabelled``. A consensus file has the
same columns with annotator ``consensus`` plus any extra columns the caller adds. Optional
``#`` lines at the top of a file carry provenance (such as the consensus rule).

The same reader imports landmark tables from other tools through a column mapping: for
example ``{"image": "image_path", "left_eye_x": "x1", "left_eye_y": "y1", ...}``. Without
state columns, ``-1, -1`` marks an invisible point and empty cells a point not labelled yet.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

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
    parse_float,
    read_text,
)
from s2ld_core.schema import LANDMARK_NAMES, N_POINTS, PointState

logger = logging.getLogger(__name__)

#: Canonical column names, in file order.
POINT_COLUMNS: tuple[str, ...] = tuple(f"{name}_{part}" for name in LANDMARK_NAMES for part in ("x", "y", "state"))
COLUMNS: tuple[str, ...] = ("image", "annotator") + POINT_COLUMNS

#: Mapping for tables with columns ``image_path, x1, y1, ..., x5, y5`` in MTCNN order.
NUMBERED_COLUMNS: dict[str, str] = {"image": "image_path"} | {
    f"{name}_{axis}": f"{axis}{k + 1}" for k, name in enumerate(LANDMARK_NAMES) for axis in ("x", "y")
}

CONSENSUS_ANNOTATOR = "consensus"

_SAFE_FILE_NAME = re.compile(r"[^\w.-]+", re.UNICODE)


def parse_column_mapping(text: str) -> dict[str, str]:
    """Parse ``"image=image_path,left_eye_x=x1,..."`` into a mapping (canonical -> file column).

    The word ``numbered`` stands for :data:`NUMBERED_COLUMNS` and may be followed by more
    pairs that override it, as in ``"numbered,image=file"``.

    Raises:
        ValueError: a pair without ``=`` or an unknown canonical name; the message shows it.
    """
    mapping: dict[str, str] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        if part == "numbered":
            mapping.update(NUMBERED_COLUMNS)
            continue
        if "=" not in part:
            raise ValueError(f"invalid column mapping {part!r}; write NAME=COLUMN pairs separated by commas")
        name, column = (piece.strip() for piece in part.split("=", 1))
        if name not in COLUMNS:
            raise ValueError(f"unknown column name {name!r} in the mapping; use one of {', '.join(COLUMNS)}")
        mapping[name] = column
    return mapping


def _comment_lines(text: str) -> list[str]:
    """Return the ``#`` lines at the top of a CSV file (before the column header)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def _check_field_counts(path: Path, text: str, n_comments: int) -> list[int]:
    """Return the line numbers of data rows; raise FormatError for rows with a wrong field count."""
    reader = csv.reader(io.StringIO(text))
    problems = []
    data_lines = []
    n_columns = None
    for row in reader:
        if reader.line_num <= n_comments or not row:
            continue
        if n_columns is None:
            n_columns = len(row)
            continue
        data_lines.append(reader.line_num)
        if len(row) != n_columns:
            problems.append(
                FormatProblem(
                    f"line {reader.line_num}",
                    ",".join(row),
                    f"row has {len(row)} fields but the header has {n_columns}",
                    reader.line_num,
                )
            )
    if problems:
        raise FormatError(path, problems)
    return data_lines


def _parse_state(text: str) -> PointState | None:
    text = text.strip().lower()
    if text in STATE_BY_NAME:
        return STATE_BY_NAME[text]
    if text in ("0", "1", "2"):
        return PointState(int(text))
    return None


def read_labels_csv(
    path: str | os.PathLike,
    *,
    columns: Mapping[str, str] | None = None,
    annotator: str | None = None,
    one_based: bool = False,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_outside: bool = False,
    allow_unlabelled: bool = False,
    skip_unknown: bool = False,
) -> ReadResult:
    """Read a label CSV, or any landmark table through a column mapping, into records.

    Args:
        columns: canonical name (see :data:`COLUMNS`) -> column in the file. Names that are
            missing map to themselves. ``image`` and every point's x and y must exist in the
            file; ``annotator`` and the state columns are optional.
        annotator: the annotator of every record when the file has no annotator column. When
            it has one, only rows of this annotator are kept.
        one_based: coordinates in the file are 1-based; 1 is subtracted from visible points.
        sizes, allow_outside, allow_unlabelled, skip_unknown: as in
            :func:`s2ld_core.formats_alrf.read_alrf`. A state column of ``unlabelled`` is
            always accepted, because it states the fact explicitly.

    Raises:
        FormatError: missing columns, malformed rows or invalid values; no records are returned.
    """
    path = Path(path)
    mapping = {name: name for name in COLUMNS} | dict(columns or {})
    text = read_text(path)
    n_comments = len(_comment_lines(text))

    data_lines = _check_field_counts(path, text, n_comments)
    try:
        with warnings.catch_warnings():
            # index_col=False stops pandas from turning a first row with one extra field into
            # an index; it then warns and drops that field, and the warning becomes an error here.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(
                io.StringIO(text),
                dtype=str,
                keep_default_na=False,
                skiprows=n_comments,
                skipinitialspace=True,
                index_col=False,
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pd.errors.ParserWarning) as err:
        reason = f"not a valid CSV table ({err}); every row needs as many fields as the header"
        raise FormatError(path, [FormatProblem("file", str(path), reason)]) from err

    # Short rows come back with NaN in the cells they lack; they are checked as empty cells.
    table = table.fillna("")
    required = ["image"] + [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in ("x", "y")]
    missing = [f"{mapping[name]} (for {name})" for name in required if mapping[name] not in table.columns]
    if missing:
        found = ", ".join(map(str, table.columns))
        problem = FormatProblem(
            f"line {n_comments + 1}",
            found,
            f"missing column(s) {', '.join(missing)}; pass a column mapping that names them",
            n_comments + 1,
        )
        raise FormatError(path, [problem])

    has_annotator = mapping["annotator"] in table.columns
    state_columns = [mapping[f"{name}_state"] if mapping[f"{name}_state"] in table.columns else None for name in LANDMARK_NAMES]
    checker = PointChecker(
        sizes=sizes,
        allow_outside=allow_outside,
        allow_unlabelled=allow_unlabelled,
        skip_unknown=skip_unknown,
        one_based=one_based,
    )

    records: list[LabelRecord] = []
    n_other_annotators = 0
    for index, row in enumerate(table.itertuples(index=False, name=None)):
        values = dict(zip(table.columns, row))
        number = data_lines[index] if len(data_lines) == len(table) else n_comments + 2 + index
        location = f"line {number}"

        row_annotator = annotator
        if has_annotator:
            row_annotator = values[mapping["annotator"]].strip() or None
            if annotator is not None and row_annotator != annotator:
                n_other_annotators += 1
                continue

        raw = np.full((N_POINTS, 2), np.nan)
        states: list[PointState | None] = [None] * N_POINTS
        row_ok = True
        for k, name in enumerate(LANDMARK_NAMES):
            for axis_index, axis in enumerate(("x", "y")):
                column = mapping[f"{name}_{axis}"]
                cell = values[column].strip()
                number_value = float("nan") if cell == "" else parse_float(cell)
                if number_value is None:
                    checker.problem(location, cell, f"column {column} is not a number", number)
                    row_ok = False
                else:
                    raw[k, axis_index] = number_value
            if state_columns[k] is not None:
                cell = values[state_columns[k]]
                states[k] = _parse_state(cell)
                if states[k] is None:
                    checker.problem(
                        location, cell, f"column {state_columns[k]} must be visible, invisible or unlabelled", number
                    )
                    row_ok = False
        if not row_ok:
            continue

        image = normalise_image_path(values[mapping["image"]])
        given = states if any(state is not None for state in states) else None
        record = checker.build(image, raw, location, number, annotator=row_annotator, states=given)
        if record is not None:
            records.append(record)

    checker.raise_if_problems(path)
    if n_other_annotators:
        logger.info("%s: left out %d rows of annotators other than %r", path, n_other_annotators, annotator)
    logger.info("read %d labels from %s", len(records), path)
    header = [line[1:].strip() for line in _comment_lines(text)]
    return ReadResult(path=path, records=records, unknown_images=checker.unknown_images, header=header)


def read_landmarks_csv(
    path: str | os.PathLike,
    columns: Mapping[str, str],
    *,
    annotator: str | None = None,
    one_based: bool = False,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    allow_outside: bool = False,
    allow_unlabelled: bool = False,
    skip_unknown: bool = False,
) -> ReadResult:
    """Import a landmark table from another tool as one annotator's labels.

    A thin form of :func:`read_labels_csv` in which the column mapping is required; use
    :data:`NUMBERED_COLUMNS` for tables with ``image_path, x1, y1, ..., x5, y5``.
    """
    return read_labels_csv(
        path,
        columns=columns,
        annotator=annotator,
        one_based=one_based,
        sizes=sizes,
        allow_outside=allow_outside,
        allow_unlabelled=allow_unlabelled,
        skip_unknown=skip_unknown,
    )


def labels_table(records: Iterable[LabelRecord], default_annotator: str = "") -> pd.DataFrame:
    """Return records as a DataFrame with :data:`COLUMNS` then extra columns in first-seen order."""
    rows = []
    extra_columns: dict[str, None] = {}
    for record in records:
        row: dict[str, object] = {
            "image": record.image,
            "annotator": record.annotator if record.annotator is not None else default_annotator,
        }
        for k, name in enumerate(LANDMARK_NAMES):
            state = PointState(int(record.state[k]))
            visible = state == PointState.VISIBLE
            row[f"{name}_x"] = float(record.xy[k, 0]) if visible else np.nan
            row[f"{name}_y"] = float(record.xy[k, 1]) if visible else np.nan
            row[f"{name}_state"] = STATE_NAMES[state]
        for key, value in record.extra.items():
            if key in row:
                raise ValueError(f"extra column {key!r} of image {record.image!r} clashes with a standard column")
            extra_columns.setdefault(key)
            row[key] = value
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS) + list(extra_columns))


def write_labels_csv(
    path: str | os.PathLike,
    records: Iterable[LabelRecord],
    *,
    header_lines: Sequence[str] = (),
    default_annotator: str = "",
    include_incomplete: bool = True,
    decimals: int = 3,
) -> WriteSummary:
    """Write records as a label CSV, sorted by annotator then image, atomically.

    Args:
        header_lines: ``#`` lines written above the column header (``#`` added where missing).
        default_annotator: the annotator column for records without an annotator.
        include_incomplete: write images with points not labelled yet (state ``unlabelled``).
        decimals: digits after the decimal point of coordinates.

    Raises:
        ValueError: an (image, annotator) pair repeats; nothing is written then.
    """
    path = Path(path)
    records = check_unique_images(records, path)
    kept = [record for record in records if include_incomplete or record.is_done]
    kept.sort(key=lambda record: (record.annotator or default_annotator, record.image))

    lines = []
    for extra in header_lines:
        for part in str(extra).splitlines():
            text = part.lstrip()
            lines.append(text if text.startswith("#") else f"# {text}")
    table = labels_table(kept, default_annotator=default_annotator)
    body = table.to_csv(index=False, float_format=f"%.{decimals}f", lineterminator="\n")
    write_text_atomic(path, "".join(f"{line}\n" for line in lines) + body)

    skipped = len(records) - len(kept)
    logger.info("wrote %d labels to %s (%d incomplete left out)", len(kept), path, skipped)
    return WriteSummary(path=path, written=len(kept), skipped_incomplete=skipped)


def write_consensus_csv(
    path: str | os.PathLike,
    records: Iterable[LabelRecord],
    *,
    header_lines: Sequence[str] = (),
    decimals: int = 3,
) -> WriteSummary:
    """Write consensus records as a label CSV with annotator ``consensus``, atomically.

    Per-point counts or spreads go into ``record.extra`` and become extra columns.
    """
    return write_labels_csv(
        path, records, header_lines=header_lines, default_annotator=CONSENSUS_ANNOTATOR, decimals=decimals
    )


def annotator_file_name(annotator: str, prefix: str = "labels_") -> str:
    """Return a file name for an annotator's CSV that is safe on every platform."""
    safe = _SAFE_FILE_NAME.sub("_", annotator).strip("._") or "annotator"
    return f"{prefix}{safe}.csv"


def write_annotator_csvs(
    folder: str | os.PathLike,
    records: Iterable[LabelRecord],
    *,
    prefix: str = "labels_",
    header_lines: Sequence[str] = (),
    include_incomplete: bool = True,
    decimals: int = 3,
) -> list[WriteSummary]:
    """Write one label CSV per annotator into ``folder``, named by :func:`annotator_file_name`.

    Raises:
        ValueError: a record has no annotator, or two annotator names map to one file name.
    """
    folder = Path(folder)
    by_annotator: dict[str, list[LabelRecord]] = {}
    for record in records:
        if record.annotator is None:
            raise ValueError(f"cannot write per-annotator files: image {record.image!r} has no annotator")
        by_annotator.setdefault(record.annotator, []).append(record)

    names: dict[str, str] = {}
    for annotator in sorted(by_annotator):
        file_name = annotator_file_name(annotator, prefix)
        if file_name in names:
            raise ValueError(
                f"annotators {names[file_name]!r} and {annotator!r} both map to the file name {file_name}; rename one"
            )
        names[file_name] = annotator

    return [
        write_labels_csv(
            folder / file_name,
            by_annotator[annotator],
            header_lines=header_lines,
            include_incomplete=include_incomplete,
            decimals=decimals,
        )
        for file_name, annotator in names.items()
    ]
