"""The demo project: 300 real low-resolution faces from ``assets/demo``, pre-labelled by a model.

:func:`build_demo_project` creates the project, registers and activates the model and stores
its prediction for every face. :func:`run_headless_demo` (in :mod:`s2ld_core.demo_run`) then
runs the whole main job on it without a display: three simulated annotators, consensus,
exports, the agreement report and the model's error against the known landmarks.

The faces are described in ``assets/demo/SOURCE.md``: 200 real crowd faces without landmarks
(identities ``crowd_*``) and 100 faces made from photos with known landmarks (``cfp_*``,
points in ``assets/demo/landmarks.csv``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .store import DB_NAME, Project, StoreError

if TYPE_CHECKING:
    from .predict import Predictor

log = logging.getLogger(__name__)

#: Folder of the bundled demo faces.
DEMO_ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"

#: Prefixes of the identity folders of the two face sets in ``assets/demo/faces``.
CROWD_PREFIX = "crowd_"
KNOWN_PREFIX = "cfp_"

#: Project meta key written when a build finished; a project without it is incomplete.
READY_KEY = "demo_ready"

DEMO_PROJECT_NAME = "ALRF Studio demo"

PREDICT_BATCH = 64

#: ``progress(stage, done, total)``; stages are "images" and "predictions".
ProgressCallback = Callable[[str, int, int], None]


class DemoError(StoreError):
    """The demo project cannot be built; the message names the file or folder and the fix."""


class DemoCancelledError(DemoError):
    """The caller's cancel callback returned True; the incomplete project was removed."""


def demo_faces(assets_dir: str | os.PathLike | None = None) -> tuple[list[Path], list[Path]]:
    """Return the (crowd, known-landmark) face files of the demo assets, each sorted.

    Raises:
        DemoError: the faces folder is missing or contains no faces of one of the two sets.
    """
    faces_dir = Path(assets_dir or DEMO_ASSETS_DIR) / "faces"
    if not faces_dir.is_dir():
        raise DemoError(f"Demo faces not found at {faces_dir}; restore assets/demo from the repository")
    crowd = sorted(faces_dir.glob(f"{CROWD_PREFIX}*/*"))
    known = sorted(faces_dir.glob(f"{KNOWN_PREFIX}*/*"))
    if not crowd or not known:
        raise DemoError(
            f"{faces_dir} contains {len(crowd)} crowd faces and {len(known)} faces with known landmarks, "
            "expected both; regenerate them with assets/demo/make_demo_assets.py"
        )
    return crowd, known


def is_demo_ready(target: str | os.PathLike) -> bool:
    """Return True when ``target`` contains a demo project whose build finished."""
    if not (Path(target) / DB_NAME).is_file():
        return False
    try:
        with Project.open(target, read_only=True) as project:
            return project.get_meta(READY_KEY) is not None
    except StoreError:
        return False


def _is_unfinished_demo(target: Path) -> bool:
    """Return True when ``target`` contains a demo project whose build stopped before the end."""
    if not (target / DB_NAME).is_file():
        return False
    try:
        with Project.open(target, read_only=True) as project:
            return project.name == DEMO_PROJECT_NAME and project.get_meta(READY_KEY) is None
    except StoreError:
        return False


def ensure_demo_project(
    target: str | os.PathLike,
    model_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Return ``target`` when it contains a finished demo project, else build the demo there.

    An unfinished demo build (interrupted, or from a crash) is replaced; any other project
    in ``target`` is kept and :class:`DemoError` is raised.
    """
    target = Path(target)
    if is_demo_ready(target):
        return target
    return build_demo_project(target, model_dir, overwrite=_is_unfinished_demo(target), progress=progress, cancel=cancel)


def _prepare_target(target: Path, overwrite: bool) -> None:
    """Make ``target`` an empty folder, removing an old project only when ``overwrite`` allows it."""
    if not target.exists():
        return
    if not target.is_dir():
        raise DemoError(f"{target} is a file; choose a folder for the demo project")
    if not any(target.iterdir()):
        return
    if not (target / DB_NAME).is_file():
        raise DemoError(f"{target} is not empty and contains no project; choose an empty or new folder for the demo project")
    if not overwrite:
        raise DemoError(f"{target} already contains a project; open it, or pass overwrite (--overwrite) to rebuild the demo there")
    log.info("Removing the old project at %s to rebuild the demo", target)
    shutil.rmtree(target)


class _CancelCallback:
    """Adapt a ``cancel()`` callable to the ``is_set()`` token that :func:`s2ld_core.assist.prelabel` polls."""

    def __init__(self, cancel: Callable[[], bool] | None) -> None:
        self._cancel = cancel

    def is_set(self) -> bool:
        return self._cancel is not None and bool(self._cancel())


def prelabel_all(
    project: Project,
    predictor: "Predictor",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> str:
    """Register ``predictor``'s model in ``project`` and store its points for every image.

    The model becomes the active one when the project has none. Each batch is stored in one
    transaction. Returns the model version.

    Raises:
        DemoCancelledError: ``cancel`` returned True before the last batch.
        DemoError: some stored images could not be read.
    """
    from .assist import ensure_registered, prelabel

    version = ensure_registered(project, predictor)
    ids = project.image_ids()
    last = None
    for last in prelabel(project, ids, predictor, PREDICT_BATCH, _CancelCallback(cancel)):
        if progress is not None:
            progress("predictions", last.done, last.total)
    if last is None or last.done < len(ids):
        raise DemoCancelledError("Pre-labelling the demo project was cancelled")
    if last.skipped:
        raise DemoError(f"{len(last.skipped)} stored demo images of {project.root} could not be read, e.g. image {last.skipped[0]}; rebuild the demo")
    return version


def build_demo_project(
    target: str | os.PathLike,
    model_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    assets_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> Path:
    """Create the demo project at ``target`` and pre-label every face; returns the project folder.

    Args:
        target: a new or empty folder, or one containing a project when ``overwrite`` is True
            (that project is deleted first).
        model_dir: checkpoint folder (``model.safetensors`` and ``card.json``); default: the
            shipped model in ``assets/models/default``.
        progress: called as ``progress(stage, done, total)`` while images are imported
            (stage "images") and predicted (stage "predictions").
        cancel: polled between steps; when it returns True the incomplete project is removed
            and :class:`DemoCancelledError` is raised.
        assets_dir: folder with ``faces/`` (default: ``assets/demo``).
        device: torch device for the predictor ("auto", "cpu", "cuda", ...).

    Identities come from the face folders. The model is registered under its card's
    ``model_id`` and activated. The project is named :data:`DEMO_PROJECT_NAME`.

    Raises:
        DemoError: missing faces or model, a target that is not empty, or a failed import.
    """
    from .checkpoint import CheckpointError, load_card
    from .predict import DEFAULT_MODEL_DIR, Predictor
    from .project_io import import_images

    target = Path(target)
    model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    crowd, known = demo_faces(assets_dir)
    try:
        card = load_card(model_dir)
    except CheckpointError as exc:
        raise DemoError(
            f"No model to pre-label the demo with: {exc}. Pass another checkpoint folder (--model), or train the "
            "default model with 'python -m s2ld_core.train --preset default'."
        ) from exc
    _prepare_target(target, overwrite)
    existed = target.exists()

    total = len(crowd) + len(known)
    try:
        with Project.create(target, name=DEMO_PROJECT_NAME) as project:
            for files, source in ((crowd, "demo: crowd_lr"), (known, "demo: cnn_facepoint")):
                offset = project.image_count()
                summary = import_images(
                    project,
                    files,
                    source_name=source,
                    progress=None if progress is None else lambda done, _n, o=offset: progress("images", o + done, total),
                    cancel=cancel,
                )
                if cancel is not None and cancel():
                    raise DemoCancelledError("Building the demo project was cancelled")
                if summary.errors:
                    _, message = summary.errors[0]
                    raise DemoError(f"Importing the demo faces failed for {len(summary.errors)} file(s), e.g. {message}")

            # Tracing with TorchScript costs more time than it saves on 300 faces, so the plain network runs.
            predictor = Predictor(model_dir, device=device, jit=False)
            prelabel_all(project, predictor, progress, cancel)
            project.set_meta(READY_KEY, dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat())
    except BaseException:
        log.warning("Demo build at %s did not finish; removing the incomplete project", target)
        shutil.rmtree(target, ignore_errors=True)
        if existed:
            target.mkdir()
        raise
    log.info("Built the demo project at %s: %d faces pre-labelled by %s", target, total, card.model_id)
    return target


def run_headless_demo(target: str | os.PathLike, out_dir: str | os.PathLike | None = None, **options) -> dict:
    """Run the main job on a fresh demo project; see :func:`s2ld_core.demo_run.run_headless_demo`."""
    from .demo_run import run_headless_demo as run

    return run(target, out_dir, **options)
