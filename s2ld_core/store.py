"""Project store: one SQLite database (WAL mode) per project folder, with the images copied in.

Layout of a project folder::

    <project>/project.sqlite   images, annotators, labels, edit log, predictions, models, reviews
    <project>/images/          decoded images as PNG, named <id>.png (orientation already applied)
    <project>/models/          model registry: one folder per version (weights + card)

Every call that changes labels is one committed transaction that also appends to the edit
log, so a process killed at any moment leaves every earlier edit on disk. Landmarks are keyed
by name (:data:`s2ld_core.schema.LANDMARK_NAMES`) and image id, never by list position.
Coordinates follow the package convention (centre of pixel (i, j) is (i, j)).
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .schema import LANDMARK_NAMES, N_POINTS, Label, PointState, Prediction, validate_xy

log = logging.getLogger(__name__)

DB_NAME = "project.sqlite"
IMAGES_DIR = "images"
MODELS_DIR = "models"
SCHEMA_VERSION = 4
_NAME_TO_INDEX = {name: k for k, name in enumerate(LANDMARK_NAMES)}
# SQL expression for a label row's landmark index; small integers reach Python faster than names.
_LANDMARK_INDEX_SQL = "CASE landmark " + " ".join(f"WHEN '{name}' THEN {k}" for k, name in enumerate(LANDMARK_NAMES)) + " END"


class StoreError(Exception):
    """Base class of project store errors."""


class ProjectNotFoundError(StoreError):
    pass


class ProjectReadOnlyError(StoreError):
    """The project cannot be written (read-only disk or file); it is open for viewing only."""


class ProjectLockedError(StoreError):
    """Another process holds the write lock of the project database."""


class InvalidEditError(StoreError):
    """An edit names an unknown image, annotator or landmark, or carries invalid coordinates."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


class ImageStatus(enum.IntEnum):
    """Progress of one annotator on one image."""

    NOT_STARTED = 0
    PARTIAL = 1
    DONE = 2


@dataclass(frozen=True)
class ImageInfo:
    """One image of the project. ``file`` is relative to the project folder."""

    id: int
    file: str
    original_path: str
    sha256: str
    width: int
    height: int
    identity: str
    source: str


@dataclass(frozen=True)
class StatusRow:
    """Per-annotator progress on one image."""

    status: ImageStatus
    n_labelled: int
    n_invisible: int

    @property
    def has_invisible(self) -> bool:
        return self.n_invisible > 0


@dataclass(frozen=True)
class PointValue:
    """The stored value of one point: state, coordinates (NaN unless visible) and provenance."""

    state: PointState
    x: float = float("nan")
    y: float = float("nan")
    from_prediction: bool = False
    moved: bool = False
    outside: bool = False


@dataclass(frozen=True)
class Edit:
    """A change to some points of one (image, annotator) label, with the values before and after.

    Undo applies ``before`` through :meth:`Project.apply_values`; redo applies ``after``.
    """

    image_id: int
    annotator: str
    before: dict[str, PointValue]
    after: dict[str, PointValue]


@dataclass
class ImportSummary:
    """Outcome of :meth:`Project.add_images`."""

    added: list[int] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (path, id of the image already there)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    ignored: list[str] = field(default_factory=list)  # files in imported folders that are not images

    def describe(self) -> str:
        text = f"{len(self.added)} added, {len(self.duplicates)} duplicates skipped, {len(self.errors)} failed"
        if self.ignored:
            text += f", {len(self.ignored)} files in the folders ignored because their type is not an image type"
        return text


_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    original_path TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    identity TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL
);
CREATE TABLE annotators (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE labels (
    image_id INTEGER NOT NULL REFERENCES images(id),
    annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    landmark TEXT NOT NULL,
    state INTEGER NOT NULL,
    x REAL,
    y REAL,
    from_prediction INTEGER NOT NULL DEFAULT 0,
    moved INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (image_id, annotator_id, landmark)
) WITHOUT ROWID;
CREATE TABLE edit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    annotator_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    landmark TEXT NOT NULL,
    action TEXT NOT NULL,
    before_state INTEGER, before_x REAL, before_y REAL,
    after_state INTEGER, after_x REAL, after_y REAL
);
CREATE TRIGGER edit_log_no_update BEFORE UPDATE ON edit_log
    BEGIN SELECT RAISE(ABORT, 'edit_log is append-only'); END;
CREATE TRIGGER edit_log_no_delete BEFORE DELETE ON edit_log
    BEGIN SELECT RAISE(ABORT, 'edit_log is append-only'); END;
CREATE TABLE time_spent (
    image_id INTEGER NOT NULL, annotator_id INTEGER NOT NULL, seconds REAL NOT NULL,
    PRIMARY KEY (image_id, annotator_id)
) WITHOUT ROWID;
CREATE TABLE predictions (
    image_id INTEGER NOT NULL REFERENCES images(id),
    model_version TEXT NOT NULL,
    landmark TEXT NOT NULL,
    x REAL NOT NULL, y REAL NOT NULL,
    confidence REAL NOT NULL,
    visible INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (image_id, model_version, landmark)
) WITHOUT ROWID;
CREATE TABLE models (
    version TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    card TEXT NOT NULL,
    parent TEXT,
    created_at TEXT NOT NULL
);
"""

# Version 2 adds review decisions (accept, or send back to one annotator).
_SCHEMA_V2 = """
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    image_id INTEGER NOT NULL REFERENCES images(id),
    reviewer TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('accept', 'send_back')),
    annotator TEXT,
    note TEXT NOT NULL DEFAULT ''
);
"""

# Version 3 flags visible points outside the image that an import kept on request.
_SCHEMA_V3 = """
ALTER TABLE labels ADD COLUMN outside INTEGER NOT NULL DEFAULT 0;
"""

# Version 4 adds an index that covers the query of Project.status, so it reads only one
# annotator's rows instead of scanning the whole table (about 2x faster at 10,000 images x 3
# annotators in bench/bench_store.py).
_SCHEMA_V4 = """
CREATE INDEX labels_by_annotator ON labels (annotator_id, image_id, state, updated_at);
"""

#: MIGRATIONS[v] upgrades a database at version v to version v + 1.
MIGRATIONS: dict[int, str] = {1: _SCHEMA_V2, 2: _SCHEMA_V3, 3: _SCHEMA_V4}


_LABEL_INSERT = (
    "INSERT OR REPLACE INTO labels (image_id, annotator_id, landmark, state, x, y, from_prediction, moved, updated_at, outside) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)"
)


def _is_readonly_error(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def _is_locked_error(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Project:
    """An open project folder. Use :meth:`create` or :meth:`open`; close with :meth:`close`."""

    def __init__(self, root: Path, conn: sqlite3.Connection, read_only: bool, read_only_reason: str = ""):
        self.root = root
        self._conn = conn
        self.read_only = read_only
        self.read_only_reason = read_only_reason
        self._annotator_ids: dict[str, int] = {}
        self._load_annotators()

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | os.PathLike, name: str | None = None) -> "Project":
        """Create a new, empty project folder at ``path`` (which must not contain a project)."""
        root = Path(path)
        if (root / DB_NAME).exists():
            raise StoreError(f"{root} already contains a project; open it instead of creating one")
        try:
            (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
            (root / MODELS_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise ProjectReadOnlyError(f"Cannot create a project at {root}: {exc.strerror}. Choose a writable folder.") from exc
        conn = cls._connect(root / DB_NAME, read_only=False)
        with conn:
            conn.executescript("BEGIN;" + _SCHEMA_V1 + _SCHEMA_V2 + _SCHEMA_V3 + _SCHEMA_V4 + "COMMIT;")
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT INTO meta VALUES ('name', ?)", (name or root.name,))
        conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (_now(),))
        log.info("Created project %s", root)
        return cls(root, conn, read_only=False)

    @classmethod
    def open(cls, path: str | os.PathLike, read_only: bool = False) -> "Project":
        """Open an existing project. Falls back to read-only when the disk or file is not writable.

        Check :attr:`read_only` and :attr:`read_only_reason` after opening.
        """
        root = Path(path)
        db = root / DB_NAME
        if not db.is_file():
            raise ProjectNotFoundError(f"No project found at {root} (missing {DB_NAME}). Create one with 'alrf-studio new'.")
        if not read_only:
            try:
                conn = cls._connect(db, read_only=False)
                project = cls(root, conn, read_only=False)
                project._migrate()
                return project
            except sqlite3.OperationalError as exc:
                if _is_locked_error(exc):
                    raise ProjectLockedError(
                        f"The project database {db} is locked by another process. Close the other "
                        "ALRF Studio window or command that uses it, then try again."
                    ) from exc
                if not _is_readonly_error(exc):
                    raise
                reason = f"{db} cannot be written ({exc}); the project is open for viewing only"
                log.warning(reason)
        else:
            reason = "opened read-only on request"
        conn = cls._connect(db, read_only=True)
        return cls(root, conn, read_only=True, read_only_reason=reason)

    @staticmethod
    def _connect(db: Path, read_only: bool) -> sqlite3.Connection:
        if read_only:
            # immutable=1 lets SQLite read a WAL database on a disk where it cannot create -shm files.
            uri = db.resolve().as_uri() + "?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute("SELECT count(*) FROM meta").fetchone()
            return conn
        conn = sqlite3.connect(str(db), isolation_level=None, timeout=2.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 2000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"readonly: journal mode is {mode}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Touch the database for writing so a read-only file is detected at open, not at the first edit.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
        return conn

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.root} uses schema version {version}, newer than this ALRF Studio "
                f"(version {SCHEMA_VERSION}); update ALRF Studio to open it."
            )
        while version < SCHEMA_VERSION:
            log.info("Migrating %s from schema version %d to %d", self.root, version, version + 1)
            self._conn.executescript(
                "BEGIN;" + MIGRATIONS[version] + f"UPDATE meta SET value = '{version + 1}' WHERE key = 'schema_version';COMMIT;"
            )
            version += 1

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    @property
    def name(self) -> str:
        return self._conn.execute("SELECT value FROM meta WHERE key = 'name'").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql_fn: Callable[[sqlite3.Connection], object]):
        """Run ``sql_fn`` in one IMMEDIATE transaction, mapping SQLite errors to store errors."""
        if self.read_only:
            raise ProjectReadOnlyError(f"Cannot save: {self.read_only_reason}.")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._map_error(exc) from exc
        try:
            result = sql_fn(self._conn)
            self._conn.execute("COMMIT")
            return result
        except sqlite3.OperationalError as exc:
            self._conn.execute("ROLLBACK")
            raise self._map_error(exc) from exc
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _map_error(self, exc: sqlite3.OperationalError) -> StoreError:
        if _is_locked_error(exc):
            return ProjectLockedError(
                f"Cannot save to {self.root / DB_NAME}: the database is locked by another process ({exc}). "
                "Close the other program that uses this project and try again."
            )
        if _is_readonly_error(exc) or "disk" in str(exc).lower():
            return ProjectReadOnlyError(f"Cannot save to {self.root / DB_NAME}: {exc}. Check that the disk is writable and not full.")
        return StoreError(f"Database error in {self.root / DB_NAME}: {exc}")

    # ------------------------------------------------------------------ images

    def add_images(
        self,
        paths: Iterable[str | os.PathLike],
        identity: Callable[[Path], str] | None = None,
        source: str = "",
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> ImportSummary:
        """Copy images into the project, decoding each once (EXIF orientation applied).

        Unreadable files are reported in the summary and the import goes on. Files whose
        SHA-256 matches an image already in the project are reported as duplicates and skipped.
        ``identity`` maps a path to its identity label (default: ''). Images are committed in
        batches, so a cancelled or interrupted import keeps what was added.
        """
        import cv2

        from .imageio import ImageReadError, image_sha256, read_image

        paths = [Path(p) for p in paths]
        summary = ImportSummary()
        known = dict(self._conn.execute("SELECT sha256, id FROM images"))
        pending: list[tuple] = []

        def flush() -> None:
            if pending:
                self._write(lambda c: c.executemany("INSERT INTO images VALUES (?,?,?,?,?,?,?,?,?)", pending))
                pending.clear()

        next_id = (self._conn.execute("SELECT max(id) FROM images").fetchone()[0] or 0) + 1
        for n, path in enumerate(paths):
            if cancel is not None and cancel():
                break
            try:
                digest = image_sha256(path)
                if digest in known:
                    summary.duplicates.append((str(path), known[digest]))
                    continue
                rgb = read_image(path)
            except ImageReadError as exc:
                summary.errors.append((str(path), str(exc)))
                log.warning("Skipped %s: %s", path, exc)
                continue
            except OSError as exc:
                summary.errors.append((str(path), f"{path}: {exc.strerror or exc}"))
                continue
            rel = f"{IMAGES_DIR}/{next_id:07d}.png"
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            if not ok:
                summary.errors.append((str(path), f"{path}: PNG encoding failed"))
                continue
            if self.read_only:
                raise ProjectReadOnlyError(f"Cannot import into {self.root}: {self.read_only_reason}.")
            (self.root / rel).write_bytes(buf.tobytes())
            ident = identity(path) if identity else ""
            pending.append((next_id, rel, str(path), digest, rgb.shape[1], rgb.shape[0], ident, source, _now()))
            known[digest] = next_id
            summary.added.append(next_id)
            next_id += 1
            if len(pending) >= 500:
                flush()
            if progress is not None:
                progress(n + 1, len(paths))
        flush()
        log.info("Imported images into %s: %s", self.root, summary.describe())
        return summary

    def add_image_array(self, rgb: np.ndarray, original_path: str, identity: str = "", source: str = "") -> int:
        """Store an in-memory RGB uint8 image; returns its id (the existing id when already present)."""
        import hashlib

        import cv2

        ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        if not ok:
            raise StoreError(f"PNG encoding failed for {original_path}")
        data = buf.tobytes()
        digest = hashlib.sha256(data).hexdigest()
        row = self._conn.execute("SELECT id FROM images WHERE sha256 = ?", (digest,)).fetchone()
        if row:
            return int(row[0])
        next_id = (self._conn.execute("SELECT max(id) FROM images").fetchone()[0] or 0) + 1
        rel = f"{IMAGES_DIR}/{next_id:07d}.png"
        (self.root / rel).write_bytes(data)
        row = (next_id, rel, original_path, digest, rgb.shape[1], rgb.shape[0], identity, source, _now())
        self._write(lambda c: c.execute("INSERT INTO images VALUES (?,?,?,?,?,?,?,?,?)", row))
        return next_id

    def list_images(self) -> list[ImageInfo]:
        """Return all images, ordered by id."""
        rows = self._conn.execute(
            "SELECT id, file, original_path, sha256, width, height, identity, source FROM images ORDER BY id"
        ).fetchall()
        return [ImageInfo(*r) for r in rows]

    def image_ids(self) -> list[int]:
        return [r[0] for r in self._conn.execute("SELECT id FROM images ORDER BY id")]

    def image_info(self, image_id: int) -> ImageInfo:
        row = self._conn.execute(
            "SELECT id, file, original_path, sha256, width, height, identity, source FROM images WHERE id = ?", (image_id,)
        ).fetchone()
        if row is None:
            raise InvalidEditError(f"Image id {image_id} is not in project {self.root}")
        return ImageInfo(*row)

    def image_path(self, image_id: int) -> Path:
        return self.root / self.image_info(image_id).file

    def load_image(self, image_id: int) -> np.ndarray:
        """Return the stored image as (H, W, 3) uint8 RGB."""
        import cv2

        path = self.image_path(image_id)
        data = np.fromfile(path, dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise StoreError(f"Stored image {path} is missing or unreadable; re-import it")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def image_count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM images").fetchone()[0])

    # ------------------------------------------------------------------ annotators

    def _load_annotators(self) -> None:
        self._annotator_ids = {name: i for i, name in self._conn.execute("SELECT id, name FROM annotators")}

    def annotators(self) -> list[str]:
        """Annotator names in the order they were added."""
        return [r[0] for r in self._conn.execute("SELECT name FROM annotators ORDER BY id")]

    def add_annotator(self, name: str) -> int:
        """Add an annotator (no-op when present); returns the annotator id."""
        name = name.strip()
        if not name:
            raise InvalidEditError("An annotator name must not be empty")
        if name in self._annotator_ids:
            return self._annotator_ids[name]
        self._write(lambda c: c.execute("INSERT INTO annotators (name, created_at) VALUES (?, ?)", (name, _now())))
        self._load_annotators()
        return self._annotator_ids[name]

    def _annotator_id(self, name: str) -> int:
        try:
            return self._annotator_ids[name]
        except KeyError:
            raise InvalidEditError(f"Unknown annotator {name!r}; add it first (known: {', '.join(self._annotator_ids) or 'none'})") from None

    # ------------------------------------------------------------------ labels

    def get_label(self, image_id: int, annotator: str) -> Label:
        """Return one annotator's label on one image (all points unlabelled when none exists)."""
        label = Label()
        aid = self._annotator_ids.get(annotator)
        if aid is None:
            return label
        rows = self._conn.execute(
            "SELECT landmark, state, x, y, from_prediction, moved, outside FROM labels WHERE image_id = ? AND annotator_id = ?",
            (image_id, aid),
        )
        for name, state, x, y, from_pred, moved, outside in rows:
            k = _NAME_TO_INDEX[name]
            label.state[k] = state
            if state == PointState.VISIBLE:
                label.xy[k] = (x, y)
            label.from_prediction[k] = bool(from_pred)
            label.moved[k] = bool(moved)
            label.outside[k] = bool(outside)
        return label

    def _point_values(self, image_id: int, aid: int, names: Sequence[str]) -> dict[str, PointValue]:
        values = {n: PointValue(PointState.UNLABELLED) for n in names}
        rows = self._conn.execute(
            "SELECT landmark, state, x, y, from_prediction, moved, outside FROM labels WHERE image_id = ? AND annotator_id = ?",
            (image_id, aid),
        )
        for name, state, x, y, fp, mv, out in rows:
            if name in values:
                values[name] = PointValue(
                    PointState(state),
                    x if x is not None else float("nan"),
                    y if y is not None else float("nan"),
                    bool(fp),
                    bool(mv),
                    bool(out),
                )
        return values

    def _check_values(self, image_id: int, values: dict[str, PointValue], allow_outside: bool) -> None:
        info = self.image_info(image_id)
        for name, v in values.items():
            if name not in _NAME_TO_INDEX:
                raise InvalidEditError(f"Unknown landmark {name!r}; expected one of {', '.join(LANDMARK_NAMES)}")
            if v.state == PointState.VISIBLE:
                problems = validate_xy(np.array([[v.x, v.y]]), info.width, info.height, names=(name,))
                if problems and not (allow_outside and np.isfinite(v.x) and np.isfinite(v.y)):
                    raise InvalidEditError(f"Image {image_id} ({info.original_path}): {problems[0]}")

    def apply_values(
        self, image_id: int, annotator: str, values: dict[str, PointValue], action: str = "edit", allow_outside: bool = False
    ) -> Edit:
        """Set points of one (image, annotator) label in one transaction and log the change.

        ``values`` maps landmark names to their new :class:`PointValue`. Returns the
        :class:`Edit` with the values before and after, which undo and redo replay.
        """
        aid = self._annotator_id(annotator)
        self._check_values(image_id, values, allow_outside)
        stamp = _now()

        def run(c: sqlite3.Connection) -> Edit:
            before = self._point_values(image_id, aid, list(values))
            label_rows, log_rows = [], []
            for name, v in values.items():
                visible = v.state == PointState.VISIBLE
                x, y = (float(v.x), float(v.y)) if visible else (None, None)
                b = before[name]
                label_rows.append((image_id, aid, name, int(v.state), x, y, int(v.from_prediction), int(v.moved), stamp, int(v.outside)))
                bx = b.x if b.state == PointState.VISIBLE else None
                by = b.y if b.state == PointState.VISIBLE else None
                log_rows.append((stamp, aid, image_id, name, action, int(b.state), bx, by, int(v.state), x, y))
            c.executemany(_LABEL_INSERT, label_rows)
            c.executemany(
                "INSERT INTO edit_log (at, annotator_id, image_id, landmark, action, before_state, before_x, before_y, "
                "after_state, after_x, after_y) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                log_rows,
            )
            return Edit(image_id, annotator, before, dict(values))

        return self._write(run)

    def set_point(
        self,
        image_id: int,
        annotator: str,
        landmark: str | int,
        state: PointState,
        x: float = float("nan"),
        y: float = float("nan"),
        *,
        from_prediction: bool = False,
        moved: bool = False,
    ) -> Edit:
        """Set one point; see :meth:`apply_values`."""
        name = LANDMARK_NAMES[landmark] if isinstance(landmark, (int, np.integer)) else landmark
        return self.apply_values(image_id, annotator, {name: PointValue(PointState(state), x, y, from_prediction, moved)})

    def undo(self, edit: Edit) -> Edit:
        """Restore the values an edit replaced; logged with action 'undo'."""
        return self.apply_values(edit.image_id, edit.annotator, edit.before, action="undo", allow_outside=True)

    def redo(self, edit: Edit) -> Edit:
        """Apply an undone edit again; logged with action 'redo'."""
        return self.apply_values(edit.image_id, edit.annotator, edit.after, action="redo", allow_outside=True)

    def import_labels(
        self,
        annotator: str,
        labels: dict[int, tuple[np.ndarray, np.ndarray]],
        action: str = "import",
        allow_outside: bool = False,
        outside: dict[int, np.ndarray] | None = None,
    ) -> int:
        """Write many labels for one annotator in ONE transaction (all or nothing).

        ``labels`` maps image id to (xy (5, 2), state (5,)). ``outside`` maps image id to a
        bool (5,) mask of points kept outside the image (stored as a flag; needs
        ``allow_outside=True``). Returns the number of images written.
        """
        return self.import_label_sets({annotator: labels}, action, allow_outside, {annotator: outside or {}})

    def import_label_sets(
        self,
        sets: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]],
        action: str = "import",
        allow_outside: bool = False,
        outside: dict[str, dict[int, np.ndarray]] | None = None,
    ) -> int:
        """Write labels of several annotators in ONE transaction; see :meth:`import_labels`."""
        stamp = _now()
        all_values: dict[tuple[str, int], dict[str, PointValue]] = {}
        for annotator, labels in sets.items():
            flags = (outside or {}).get(annotator, {})
            for image_id, (xy, state) in labels.items():
                values = {}
                for k, name in enumerate(LANDMARK_NAMES):
                    s = PointState(int(state[k]))
                    x, y = (float(xy[k, 0]), float(xy[k, 1])) if s == PointState.VISIBLE else (float("nan"), float("nan"))
                    flagged = bool(flags[image_id][k]) if image_id in flags else False
                    values[name] = PointValue(s, x, y, outside=flagged)
                self._check_values(image_id, values, allow_outside)
                all_values[(annotator, image_id)] = values
        for annotator in sets:
            self.add_annotator(annotator)

        def run(c: sqlite3.Connection) -> int:
            label_rows, log_rows = [], []
            for (annotator, image_id), values in all_values.items():
                aid = self._annotator_ids[annotator]
                for name, v in values.items():
                    vis = v.state == PointState.VISIBLE
                    x, y = (v.x, v.y) if vis else (None, None)
                    label_rows.append((image_id, aid, name, int(v.state), x, y, 0, 0, stamp, int(v.outside)))
                    log_rows.append((stamp, aid, image_id, name, action, None, None, None, int(v.state), x, y))
            c.executemany(_LABEL_INSERT, label_rows)
            c.executemany(
                "INSERT INTO edit_log (at, annotator_id, image_id, landmark, action, before_state, before_x, before_y, "
                "after_state, after_x, after_y) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                log_rows,
            )
            return len(all_values)

        return self._write(run)

    def status(self, annotator: str) -> dict[int, StatusRow]:
        """Return per-image progress of one annotator; images without any of its points are absent (NOT_STARTED).

        An image that a reviewer sent back to this annotator counts as PARTIAL until the
        annotator edits it again, so it reappears among their unfinished images.
        """
        aid = self._annotator_ids.get(annotator)
        if aid is None:
            return {}
        rows = self._conn.execute(
            "SELECT image_id, sum(state != 0), sum(state = 2), max(updated_at) FROM labels WHERE annotator_id = ? GROUP BY image_id",
            (aid,),
        )
        sent_back = self._sent_back_times(annotator)
        out = {}
        for image_id, n_lab, n_inv, updated in rows:
            if n_lab == N_POINTS and not (image_id in sent_back and sent_back[image_id] > updated):
                st = ImageStatus.DONE
            elif n_lab:
                st = ImageStatus.PARTIAL
            else:
                st = ImageStatus.NOT_STARTED
            out[image_id] = StatusRow(st, int(n_lab), int(n_inv))
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Per annotator: number of images done, partial and not started."""
        total = self.image_count()
        out = {}
        for name in self.annotators():
            st = self.status(name)
            done = sum(1 for r in st.values() if r.status == ImageStatus.DONE)
            partial = sum(1 for r in st.values() if r.status == ImageStatus.PARTIAL)
            out[name] = {"done": done, "partial": partial, "not_started": total - done - partial}
        return out

    def labels_array(
        self, annotators: Sequence[str] | None = None, image_ids: Sequence[int] | None = None
    ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """Return (image_ids (N,), annotators (A), xy float64 (N, A, 5, 2), state int8 (N, A, 5)).

        ``xy`` is NaN where a point is not visible; ``state`` is UNLABELLED where an annotator has no point.
        """
        names = list(annotators) if annotators is not None else self.annotators()
        ids = np.asarray(image_ids if image_ids is not None else self.image_ids(), dtype=np.int64)
        xy = np.full((len(ids), len(names), N_POINTS, 2), np.nan)
        state = np.zeros((len(ids), len(names), N_POINTS), dtype=np.int8)
        column_of = {self._annotator_ids[name]: a for a, name in enumerate(names) if name in self._annotator_ids}
        if len(ids) == 0 or not column_of:
            return ids, names, xy, state

        # One scan of the table for all chosen annotators. The unary + keeps SQLite from reading
        # through labels_by_annotator, which would need a table lookup for x and y of every row.
        marks = ",".join("?" * len(column_of))
        rows = self._conn.execute(
            f"SELECT image_id, annotator_id, {_LANDMARK_INDEX_SQL}, state, x, y FROM labels WHERE +annotator_id IN ({marks})",
            tuple(column_of),
        ).fetchall()
        if not rows:
            return ids, names, xy, state
        image_col, annotator_col, landmark_col, state_col, x_col, y_col = zip(*rows)

        # Rows of images outside ``ids`` are dropped; ``ids`` need not be sorted.
        order = np.argsort(ids, kind="stable")
        img = np.asarray(image_col, dtype=np.int64)
        pos = np.minimum(np.searchsorted(ids[order], img), len(ids) - 1)
        keep = ids[order][pos] == img
        row = order[pos][keep]
        column = np.asarray([column_of[a] for a in annotator_col], dtype=np.int64)[keep]
        lm = np.asarray(landmark_col, dtype=np.int64)[keep]
        st = np.asarray(state_col, dtype=np.int8)[keep]
        # sqlite3 returns NULL as None, which numpy turns into NaN in a float array.
        px = np.asarray(x_col, dtype=np.float64)[keep]
        py = np.asarray(y_col, dtype=np.float64)[keep]

        state[row, column, lm] = st
        vis = st == PointState.VISIBLE
        xy[row[vis], column[vis], lm[vis], 0] = px[vis]
        xy[row[vis], column[vis], lm[vis], 1] = py[vis]
        return ids, names, xy, state

    def edit_log(self, image_id: int | None = None, limit: int | None = None) -> list[dict]:
        """Edit log rows, oldest first, as dicts with annotator names."""
        names = {i: n for n, i in self._annotator_ids.items()}
        sql = "SELECT id, at, annotator_id, image_id, landmark, action, before_state, before_x, before_y, after_state, after_x, after_y FROM edit_log"
        args: tuple = ()
        if image_id is not None:
            sql += " WHERE image_id = ?"
            args = (image_id,)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        keys = ("id", "at", "annotator", "image_id", "landmark", "action", "before_state", "before_x", "before_y", "after_state", "after_x", "after_y")
        out = []
        for row in self._conn.execute(sql, args):
            d = dict(zip(keys, row))
            d["annotator"] = names.get(d["annotator"], str(d["annotator"]))
            out.append(d)
        return out

    # ------------------------------------------------------------------ time

    def add_time(self, image_id: int, annotator: str, seconds: float) -> None:
        """Add ``seconds`` of labelling time to (image, annotator)."""
        if seconds <= 0:
            return
        aid = self._annotator_id(annotator)
        self._write(
            lambda c: c.execute(
                "INSERT INTO time_spent VALUES (?,?,?) ON CONFLICT(image_id, annotator_id) DO UPDATE SET seconds = seconds + excluded.seconds",
                (image_id, aid, float(seconds)),
            )
        )

    def time_spent(self, image_id: int, annotator: str) -> float:
        aid = self._annotator_ids.get(annotator)
        row = self._conn.execute("SELECT seconds FROM time_spent WHERE image_id = ? AND annotator_id = ?", (image_id, aid)).fetchone()
        return float(row[0]) if row else 0.0

    # ------------------------------------------------------------------ predictions

    def set_predictions(
        self, model_version: str, image_ids: Sequence[int], xy: np.ndarray, confidence: np.ndarray, visible: np.ndarray
    ) -> None:
        """Store predictions of one model for many images in one transaction (replacing older ones of that model).

        Shapes: xy (N, 5, 2) float, confidence (N, 5) float, visible (N, 5) bool.
        """
        stamp = _now()
        rows = []
        for n, image_id in enumerate(image_ids):
            for k, name in enumerate(LANDMARK_NAMES):
                rows.append(
                    (int(image_id), model_version, name, float(xy[n, k, 0]), float(xy[n, k, 1]), float(confidence[n, k]), int(bool(visible[n, k])), stamp)
                )
        self._write(lambda c: c.executemany("INSERT OR REPLACE INTO predictions VALUES (?,?,?,?,?,?,?,?)", rows))

    def get_prediction(self, image_id: int, model_version: str | None = None) -> Prediction | None:
        """Return the prediction of ``model_version`` (default: the active model) for one image, or None."""
        version = model_version or self.active_model()
        if version is None:
            return None
        rows = self._conn.execute(
            "SELECT landmark, x, y, confidence, visible FROM predictions WHERE image_id = ? AND model_version = ?", (image_id, version)
        ).fetchall()
        if not rows:
            return None
        xy = np.full((N_POINTS, 2), np.nan)
        conf = np.zeros(N_POINTS, dtype=np.float32)
        vis = np.zeros(N_POINTS, dtype=bool)
        for name, x, y, c, v in rows:
            k = _NAME_TO_INDEX[name]
            xy[k] = (x, y)
            conf[k] = c
            vis[k] = bool(v)
        return Prediction(xy=xy, confidence=conf, visible=vis, model_version=version)

    def prediction_confidence(self, model_version: str | None = None) -> dict[int, float]:
        """Per image: the lowest point confidence of the model's prediction."""
        version = model_version or self.active_model()
        if version is None:
            return {}
        rows = self._conn.execute("SELECT image_id, min(confidence) FROM predictions WHERE model_version = ? GROUP BY image_id", (version,))
        return {int(i): float(c) for i, c in rows}

    # ------------------------------------------------------------------ model registry

    def register_model(self, version: str, source_dir: str | os.PathLike, card: dict, parent: str | None = None, activate: bool = False) -> Path:
        """Copy a checkpoint folder into the registry as ``version``; returns its folder in the project."""
        if self._conn.execute("SELECT 1 FROM models WHERE version = ?", (version,)).fetchone():
            raise StoreError(f"Model version {version!r} is already registered; choose another name")
        target = self.root / MODELS_DIR / version
        if Path(source_dir).resolve() != target.resolve():
            shutil.copytree(source_dir, target)
        rel = f"{MODELS_DIR}/{version}"

        def run(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO models VALUES (?,?,?,?,?)", (version, rel, json.dumps(card), parent, _now()))
            if activate:
                c.execute("INSERT OR REPLACE INTO meta VALUES ('active_model', ?)", (version,))

        self._write(run)
        return target

    def models(self) -> list[dict]:
        """Registered models, oldest first: version, path, card, parent, created_at, active."""
        active = self.active_model()
        out = []
        for version, path, card, parent, created in self._conn.execute("SELECT version, path, card, parent, created_at FROM models ORDER BY created_at"):
            out.append({"version": version, "path": self.root / path, "card": json.loads(card), "parent": parent, "created_at": created, "active": version == active})
        return out

    def active_model(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'active_model'").fetchone()
        return row[0] if row else None

    def set_active_model(self, version: str) -> None:
        if not self._conn.execute("SELECT 1 FROM models WHERE version = ?", (version,)).fetchone():
            raise StoreError(f"Model version {version!r} is not registered in {self.root}")
        self._write(lambda c: c.execute("INSERT OR REPLACE INTO meta VALUES ('active_model', ?)", (version,)))

    def model_path(self, version: str) -> Path:
        row = self._conn.execute("SELECT path FROM models WHERE version = ?", (version,)).fetchone()
        if row is None:
            raise StoreError(f"Model version {version!r} is not registered in {self.root}")
        return self.root / row[0]

    # ------------------------------------------------------------------ meta and reviews

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._write(lambda c: c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value)))

    def add_review(self, image_id: int, reviewer: str, action: str, annotator: str | None = None, note: str = "") -> None:
        """Record a review decision: 'accept', or 'send_back' to ``annotator`` (their label becomes unfinished again)."""
        if action not in ("accept", "send_back"):
            raise InvalidEditError(f"Unknown review action {action!r}; use 'accept' or 'send_back'")
        if action == "send_back" and not annotator:
            raise InvalidEditError("Sending an image back needs the annotator's name")
        self._write(
            lambda c: c.execute(
                "INSERT INTO reviews (at, image_id, reviewer, action, annotator, note) VALUES (?,?,?,?,?,?)",
                (_now(), image_id, reviewer, action, annotator, note),
            )
        )

    def reviews(self, image_id: int | None = None) -> list[dict]:
        sql = "SELECT at, image_id, reviewer, action, annotator, note FROM reviews"
        args: tuple = ()
        if image_id is not None:
            sql += " WHERE image_id = ?"
            args = (image_id,)
        keys = ("at", "image_id", "reviewer", "action", "annotator", "note")
        return [dict(zip(keys, r)) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def _sent_back_times(self, annotator: str) -> dict[int, str]:
        rows = self._conn.execute(
            "SELECT image_id, action, annotator, at FROM reviews r WHERE id = (SELECT max(id) FROM reviews WHERE image_id = r.image_id)"
        )
        return {int(i): at for i, action, who, at in rows if action == "send_back" and who == annotator}

    def sent_back(self, annotator: str) -> set[int]:
        """Return the images whose latest review sent them back to ``annotator``."""
        return set(self._sent_back_times(annotator))

    def integrity_check(self) -> str:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]
