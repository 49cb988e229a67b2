"""Types and checks shared by the ALRF, CSV and COCO readers and writers.

Readers parse a whole file before they return, collect every problem they find and raise one
:class:`FormatError` that lists them, so a caller either gets all records of a file or none.
Records carry coordinates in the package convention: 0-based, with the centre of pixel
(i, j) at (i, j). Each format converts its own convention when it reads or writes.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable, Mapping, Sequence

import numpy as np

from s2ld_core.schema import LANDMARK_NAMES, N_POINTS, Label, PointState

logger = logging.getLogger(__name__)

#: The value that marks an invisible point in ALRF and landmark CSV files (for both x and y).
INVISIBLE_MARKER = -1.0

#: Words used for point states in CSV files and in COCO's ``point_states`` extension.
STATE_NAMES: dict[PointState, str] = {
    PointState.VISIBLE: "visible",
    PointState.INVISIBLE: "invisible",
    PointState.UNLABELLED: "unlabelled",
}
STATE_BY_NAME: dict[str, PointState] = {name: state for state, name in STATE_NAMES.items()}

#: How many problems a FormatError message lists before it only counts the rest.
MAX_LISTED_PROBLEMS = 10


@dataclass
class LabelRecord:
    """One image's five points as read from or written to a label file.

    Attributes:
        image: image path relative to the file's image root, with ``/`` separators.
        xy: float64 (5, 2) in stored-image pixels, package convention; NaN unless visible.
        state: int8 (5,) of :class:`PointState`.
        annotator: annotator name where the file records one (CSV, COCO), else None.
        outside: bool (5,); True for visible points outside the image that an import kept
            because it was called with ``allow_outside=True``.
        line: 1-based line number in the source file (ALRF, CSV), or None.
        extra: further named values written as extra CSV columns or COCO annotation keys.
    """

    image: str
    xy: np.ndarray
    state: np.ndarray
    annotator: str | None = None
    outside: np.ndarray = field(default_factory=lambda: np.zeros(N_POINTS, dtype=bool))
    line: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def is_done(self) -> bool:
        """True when every point is visible or invisible."""
        # A test on a list of five ints is about 50x faster than a numpy reduction, which
        # matters when an export checks 10,000 records.
        return PointState.UNLABELLED not in self.state.tolist()

    @property
    def is_flagged(self) -> bool:
        """True when at least one kept point lies outside the image."""
        return bool(np.any(self.outside))

    def to_label(self) -> Label:
        """Return the points as a :class:`s2ld_core.schema.Label`."""
        return Label(xy=self.xy.copy(), state=self.state.copy())


@dataclass(frozen=True)
class FormatProblem:
    """One invalid value in a label file.

    Attributes:
        location: where it is, such as ``line 12`` or ``annotation id 7``.
        value: the offending text or value as found in the file.
        reason: what is wrong with it and, where useful, how to fix it.
        line: 1-based line number where the format has lines, else None.
    """

    location: str
    value: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.reason} (value: {self.value})"


class FormatError(Exception):
    """A label file with invalid content; nothing from it was returned.

    Attributes:
        path: the file.
        problems: every problem found, in file order.
        line, value: line number and value of the first problem, for short messages.
    """

    def __init__(self, path: str | os.PathLike, problems: Sequence[FormatProblem]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        first = self.problems[0] if self.problems else None
        self.line = first.line if first else None
        self.value = first.value if first else None

        listed = "\n".join(f"  {problem}" for problem in self.problems[:MAX_LISTED_PROBLEMS])
        hidden = len(self.problems) - MAX_LISTED_PROBLEMS
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        super().__init__(
            f"{self.path}: {len(self.problems)} invalid value(s), nothing was imported. "
            f"Fix the file and import it again.\n{listed}{more}"
        )


@dataclass
class ReadResult:
    """Records parsed from one label file.

    Attributes:
        path: the file that was read.
        records: one record per image (per image and annotator in CSV and COCO files).
        unknown_images: images left out because ``sizes`` did not contain them and the
            reader was called with ``skip_unknown=True``.
        header: text of the ``#`` comment lines (ALRF) without the leading ``#``.
    """

    path: Path
    records: list[LabelRecord]
    unknown_images: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[LabelRecord]:
        """Records with at least one kept point outside the image."""
        return [record for record in self.records if record.is_flagged]


@dataclass(frozen=True)
class WriteSummary:
    """Outcome of an export.

    Attributes:
        path: the file written.
        written: records written.
        skipped_incomplete: records left out because some point was still unlabelled.
    """

    path: Path
    written: int
    skipped_incomplete: int = 0


def normalise_image_path(text: str) -> str:
    """Return an image path as written in label files: ``/`` separators, no leading ``./``.

    Backslashes are read as Windows separators, so ``a\\b.png`` becomes ``a/b.png``.
    """
    text = text.strip()
    if "\\" not in text and not text.startswith("./") and "/./" not in text and "//" not in text and not text.endswith("/."):
        return text
    if "\\" in text:
        text = PureWindowsPath(text).as_posix()
    parts = [part for part in PurePosixPath(text).parts if part != "."]
    return str(PurePosixPath(*parts)) if parts else ""


def format_number(value: float) -> str:
    """Return a float as it appears in problem messages, keeping NaN and infinities readable."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:g}"


class PointChecker:
    """Turns raw coordinates of one file into records and collects problems on the way.

    ``sizes`` maps image paths (as in the file, normalised) to (width, height). When given,
    visible points must lie within -0.5..width - 0.5 and -0.5..height - 0.5. Images that are
    not in ``sizes`` are problems unless ``skip_unknown`` is True, when they are left out
    and listed in :attr:`unknown_images`.
    """

    def __init__(
        self,
        sizes: Mapping[str, tuple[int, int]] | None = None,
        allow_outside: bool = False,
        allow_unlabelled: bool = False,
        skip_unknown: bool = False,
        one_based: bool = False,
        invisible_marker: float | None = INVISIBLE_MARKER,
    ) -> None:
        self.sizes = sizes
        self.allow_outside = allow_outside
        self.allow_unlabelled = allow_unlabelled
        self.skip_unknown = skip_unknown
        self.one_based = one_based
        self.invisible_marker = invisible_marker
        self.problems: list[FormatProblem] = []
        self.unknown_images: list[str] = []
        self._first_location: dict[tuple[str, str | None], str] = {}

    def problem(self, location: str, value: object, reason: str, line: int | None = None) -> None:
        """Record one problem."""
        self.problems.append(FormatProblem(location, str(value), reason, line))

    def size_of(self, image: str, location: str, line: int | None) -> tuple[int, int] | None | bool:
        """Return the image's (width, height), None when no sizes were given, or False to skip it."""
        if self.sizes is None:
            return None
        size = self.sizes.get(image)
        if size is not None:
            return size
        if self.skip_unknown:
            self.unknown_images.append(image)
            return False
        self.problem(
            location,
            image,
            "image is not in the project; import the image first, fix the path, or pass skip_unknown=True",
            line,
        )
        return False

    def build(
        self,
        image: str,
        raw_xy: np.ndarray,
        location: str,
        line: int | None = None,
        annotator: str | None = None,
        states: Sequence[PointState | None] | None = None,
    ) -> LabelRecord | None:
        """Check one image's raw (5, 2) values and return its record, or None after a problem.

        Without ``states``, a point whose x and y both equal the invisible marker is
        invisible, a NaN pair is unlabelled (only with ``allow_unlabelled``) and any other
        pair is a visible point. With ``states``, the given state wins and the coordinates of
        non-visible points are ignored. Visible coordinates are shifted by -1 when the file is
        1-based, then checked against the image size.
        """
        if not image:
            self.problem(location, repr(image), "image path is empty", line)
            return None

        key = (image, annotator)
        if key in self._first_location:
            who = f" for annotator {annotator!r}" if annotator is not None else ""
            self.problem(location, image, f"image listed again{who} (first at {self._first_location[key]})", line)
            return None
        self._first_location[key] = location

        size = self.size_of(image, location, line)
        if size is False:
            return None

        n_before = len(self.problems)
        xy = np.full((N_POINTS, 2), np.nan)
        state = np.zeros(N_POINTS, dtype=np.int8)
        outside = np.zeros(N_POINTS, dtype=bool)
        for k, name in enumerate(LANDMARK_NAMES):
            x, y = float(raw_xy[k, 0]), float(raw_xy[k, 1])
            given = states[k] if states is not None else None
            point_state = self._point_state(x, y, given, name, location, line)
            if point_state is None:
                continue
            state[k] = point_state
            if point_state != PointState.VISIBLE:
                continue

            if self.one_based:
                x, y = x - 1.0, y - 1.0
            xy[k] = (x, y)
            if size is not None and not _inside(x, y, size):
                width, height = size
                text = f"({format_number(x)}, {format_number(y)})"
                if self.allow_outside:
                    outside[k] = True
                    logger.info("%s: kept %s %s outside the %dx%d image %s", location, name, text, width, height, image)
                else:
                    self.problem(
                        location,
                        text,
                        f"{name} lies outside the {width}x{height} image {image} "
                        f"(valid x -0.5..{width - 0.5:g}, y -0.5..{height - 0.5:g} in 0-based pixels); "
                        "fix the point or import with allow_outside=True to keep it flagged",
                        line,
                    )

        if len(self.problems) > n_before:
            return None
        return LabelRecord(image=image, xy=xy, state=state, annotator=annotator, outside=outside, line=line)

    def _point_state(
        self, x: float, y: float, given: PointState | None, name: str, location: str, line: int | None
    ) -> PointState | None:
        if given is not None and given != PointState.VISIBLE:
            return given

        marker = self.invisible_marker
        if given is None and marker is not None and x == marker and y == marker:
            return PointState.INVISIBLE

        both_nan = math.isnan(x) and math.isnan(y)
        if given is None and both_nan and self.allow_unlabelled:
            return PointState.UNLABELLED

        if not (math.isfinite(x) and math.isfinite(y)):
            if both_nan:
                hint = "write -1 -1 for an invisible point, or import with allow_unlabelled=True to keep it unlabelled"
            else:
                hint = "x and y must both be finite numbers"
            self.problem(location, f"({format_number(x)}, {format_number(y)})", f"{name} is not a valid coordinate pair; {hint}", line)
            return None
        return PointState.VISIBLE

    def raise_if_problems(self, path: str | os.PathLike) -> None:
        """Raise :class:`FormatError` for ``path`` when any problem was recorded."""
        if self.problems:
            raise FormatError(path, self.problems)


def _inside(x: float, y: float, size: tuple[int, int]) -> bool:
    width, height = size
    return -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5


def parse_float(text: str) -> float | None:
    """Return ``text`` as a float, or None when it is not a number (``nan`` and ``inf`` parse)."""
    try:
        return float(text)
    except ValueError:
        return None


def read_text(path: str | os.PathLike) -> str:
    """Return a UTF-8 text file's content, without a byte order mark.

    Raises:
        FormatError: the file is missing or not UTF-8 text.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, [FormatProblem("file", str(path), "file not found; check the path")]) from None
    except OSError as err:
        raise FormatError(path, [FormatProblem("file", str(path), f"file cannot be read ({err.strerror or err})")]) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        problem = FormatProblem(
            f"line {line}", repr(data[err.start : err.end]), "invalid UTF-8 byte; save the file as UTF-8", line
        )
        raise FormatError(path, [problem]) from err
    return text.removeprefix("\ufeff")


def check_unique_images(records: Iterable[LabelRecord], path: str | os.PathLike) -> list[LabelRecord]:
    """Return ``records`` as a list after checking that no (image, annotator) pair repeats.

    Raises:
        ValueError: a pair repeats; the message names the image, the annotator and ``path``.
    """
    records = list(records)
    seen: set[tuple[str, str | None]] = set()
    for record in records:
        key = (record.image, record.annotator)
        if key in seen:
            raise ValueError(
                f"cannot write {path}: image {record.image!r} appears twice for annotator {record.annotator!r}"
            )
        seen.add(key)
    return records


def stack_records(records: Sequence[LabelRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Return float64 (N, 5, 2) points and int8 (N, 5) states of N records."""
    if not records:
        return np.empty((0, N_POINTS, 2)), np.empty((0, N_POINTS), dtype=np.int8)
    xy = np.stack([np.asarray(record.xy, dtype=np.float64) for record in records])
    state = np.stack([np.asarray(record.state, dtype=np.int8) for record in records])
    return xy, state


def records_from_arrays(
    images: Sequence[str],
    xy: np.ndarray,
    state: np.ndarray,
    annotator: str | None = None,
) -> list[LabelRecord]:
    """Build records from N image paths, float (N, 5, 2) points and int (N, 5) states.

    Coordinates of points that are not visible are set to NaN in the records.
    """
    xy = np.asarray(xy, dtype=np.float64)
    state = np.asarray(state, dtype=np.int8)
    if xy.shape != (len(images), N_POINTS, 2) or state.shape != (len(images), N_POINTS):
        raise ValueError(
            f"expected xy of shape ({len(images)}, {N_POINTS}, 2) and state ({len(images)}, {N_POINTS}), "
            f"got {xy.shape} and {state.shape}"
        )
    xy = np.where((state == PointState.VISIBLE)[..., None], xy, np.nan)
    return [
        LabelRecord(image=normalise_image_path(image), xy=xy[i], state=state[i], annotator=annotator)
        for i, image in enumerate(images)
    ]


def match_image_paths(
    file_images: Iterable[str], known: Mapping[int, str]
) -> tuple[dict[str, int], list[str], dict[str, list[int]]]:
    """Match image paths from a label file to known images by their trailing path parts.

    ``known`` maps image ids to their original paths. A file path matches a known path when
    the known path ends with all parts of the file path (``images/a.jpg`` matches
    ``/data/set/images/a.jpg`` but not ``/data/set/other/a.jpg``).

    Returns:
        (matches, unmatched, ambiguous): file path -> image id for unique matches, file paths
        with no match, and file path -> candidate ids where more than one image matched.
    """
    by_name: dict[str, list[tuple[tuple[str, ...], int]]] = {}
    for image_id, original in known.items():
        parts = PurePosixPath(normalise_image_path(original)).parts
        if parts:
            by_name.setdefault(parts[-1], []).append((parts, int(image_id)))

    matches: dict[str, int] = {}
    unmatched: list[str] = []
    ambiguous: dict[str, list[int]] = {}
    for image in file_images:
        parts = PurePosixPath(normalise_image_path(image)).parts
        candidates = by_name.get(parts[-1], []) if parts else []
        hits = sorted(image_id for known_parts, image_id in candidates if known_parts[-len(parts) :] == parts)
        if len(hits) == 1:
            matches[image] = hits[0]
        elif hits:
            ambiguous[image] = hits
        else:
            unmatched.append(image)
    return matches, unmatched, ambiguous
