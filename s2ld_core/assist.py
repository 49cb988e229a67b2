"""Model assist: pre-labelling, accepting and correcting predictions, and what to label next.

The loop: :func:`prelabel` stores the active model's points as predictions, apart from human
labels. An annotator accepts them with :func:`accept_prediction` and fixes the wrong ones with
:func:`move_point` or :func:`mark_invisible`. :func:`acceptance_stats` counts the points taken
unchanged. :func:`order_by_confidence` and :func:`order_by_disagreement` pick what to label next.
:func:`training_samples` builds training data from human labels only, :func:`validation_split`
keeps a fixed validation part per project, and :func:`compare_models` scores models on it. The
training process itself is :mod:`s2ld_core.train_worker`.

Provenance rules, kept in the label flags of the store:

- A point copied from a prediction has ``from_prediction=True`` and ``moved=False``.
- A person who moves such a point, or changes its visibility, keeps ``from_prediction=True``
  and sets ``moved=True``.
- A point a person places without a prediction has both flags False.

Threads: a :class:`~s2ld_core.store.Project` wraps one SQLite connection. A worker thread
should open its own ``Project.open(root)`` rather than share the GUI thread's object.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol, Sequence

import numpy as np

from .schema import LANDMARK_NAMES, N_POINTS, PointState
from .store import Edit, ImageStatus, PointValue, Project, StoreError

if TYPE_CHECKING:
    from .predict import Predictor

log = logging.getLogger(__name__)


class AssistError(StoreError):
    """A model-assist request that cannot be carried out; the message names what is missing."""


class CancelToken(Protocol):
    """Anything with ``is_set()``, such as ``threading.Event``."""

    def is_set(self) -> bool: ...


# ---------------------------------------------------------------------- selection


def all_images(project: Project) -> list[int]:
    """Return every image id of the project, ascending."""
    return project.image_ids()


def unfinished_images(project: Project, annotator: str) -> list[int]:
    """Return the ids of images that ``annotator`` has not finished (not started or partial), ascending."""
    status = project.status(annotator)
    return [i for i in project.image_ids() if i not in status or status[i].status != ImageStatus.DONE]


def selected_images(project: Project, image_ids: Iterable[int]) -> list[int]:
    """Return the given ids in the given order without repeats; raise :class:`AssistError` for unknown ids."""
    known = set(project.image_ids())
    out: list[int] = []
    for image_id in image_ids:
        image_id = int(image_id)
        if image_id not in known:
            raise AssistError(f"Image id {image_id} is not in project {project.root}; refresh the image list")
        if image_id not in out:
            out.append(image_id)
    return out


# ---------------------------------------------------------------------- pre-labelling


@dataclass(frozen=True)
class PrelabelProgress:
    """Progress of :func:`prelabel` after one stored batch.

    Attributes:
        done: images handled so far (predicted and stored, or skipped).
        total: images requested.
        faces_per_second: ``done`` divided by the seconds since the start, image reading included.
        skipped: ids of images that could not be read, each logged with the reason.
    """

    done: int
    total: int
    faces_per_second: float
    skipped: tuple[int, ...] = field(default_factory=tuple)


def ensure_registered(project: Project, predictor: "Predictor") -> str:
    """Register the predictor's checkpoint in the project registry unless its version is there; return the version.

    The version is the model id of the card. When the project has no active model, this model
    becomes active, so that its predictions are the ones shown and accepted. Raises
    :class:`AssistError` when another model with the same id but a different card is registered.
    """
    version = predictor.model_version
    card = predictor.card.to_json()
    registered = {m["version"]: m for m in project.models()}
    if version in registered:
        stored = registered[version]["card"]
        if (stored.get("created"), stored.get("data_hash")) != (card.get("created"), card.get("data_hash")):
            raise AssistError(
                f"Project {project.root} already has a different model registered as {version!r} "
                f"(created {stored.get('created')}, this one {card.get('created')}); give the new model another id"
            )
    else:
        project.register_model(version, predictor.folder, card, parent=card.get("parent_model"))
        log.info("Registered model %s in %s", version, project.root)
    if project.active_model() is None:
        project.set_active_model(version)
        log.info("Model %s is now the active model of %s", version, project.root)
    return version


def prelabel(
    project: Project,
    image_ids: Sequence[int],
    predictor: "Predictor",
    batch_size: int = 64,
    cancel: CancelToken | None = None,
) -> Iterator[PrelabelProgress]:
    """Predict points for ``image_ids`` with ``predictor`` and store them batch by batch.

    ``predictor`` is a :class:`s2ld_core.predict.Predictor` (or has its ``model_version``,
    ``card``, ``folder`` and ``predict_arrays``). Its checkpoint is registered first (see
    :func:`ensure_registered`), and every stored prediction carries that version. Images are
    read from the store; each batch of ``batch_size`` images is written with
    :meth:`Project.set_predictions` in one transaction before the next one starts, so a
    cancelled run keeps every finished batch. ``cancel`` is checked before each batch. Yields
    one :class:`PrelabelProgress` per batch; the last one has ``done == total`` unless cancelled.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    ids = [int(i) for i in image_ids]
    version = ensure_registered(project, predictor)
    start = time.perf_counter()
    done = 0
    skipped: list[int] = []

    for first in range(0, len(ids), batch_size):
        if cancel is not None and cancel.is_set():
            log.info("Pre-labelling cancelled after %d of %d images", done, len(ids))
            return
        batch_ids, images = [], []
        for image_id in ids[first : first + batch_size]:
            try:
                images.append(project.load_image(image_id))
                batch_ids.append(image_id)
            except StoreError as exc:
                log.warning("Pre-labelling skipped image %d: %s", image_id, exc)
                skipped.append(image_id)
        if batch_ids:
            xy, confidence, visible = predictor.predict_arrays(images)
            project.set_predictions(version, batch_ids, xy, confidence, visible)
        done = min(first + batch_size, len(ids))
        elapsed = max(time.perf_counter() - start, 1e-9)
        yield PrelabelProgress(done, len(ids), done / elapsed, tuple(skipped))
    log.info("Pre-labelled %d images of %s with %s", done - len(skipped), project.root, version)


# ---------------------------------------------------------------------- accepting and correcting


def _landmark_name(landmark: str | int) -> str:
    if isinstance(landmark, (int, np.integer)):
        if not 0 <= int(landmark) < N_POINTS:
            raise AssistError(f"Landmark index {landmark} is out of range 0..{N_POINTS - 1}")
        return LANDMARK_NAMES[int(landmark)]
    if landmark not in LANDMARK_NAMES:
        raise AssistError(f"Unknown landmark {landmark!r}; expected one of {', '.join(LANDMARK_NAMES)}")
    return landmark


def accept_prediction(
    project: Project,
    image_id: int,
    annotator: str,
    points: Iterable[str | int] | None = None,
    overwrite: bool = False,
    model_version: str | None = None,
) -> Edit | None:
    """Copy a model's predicted points into ``annotator``'s label on one image, as one undoable edit.

    ``points`` names the landmarks (names or indices) to accept, all five by default. Points the
    annotator has already placed (visible or invisible) stay as they are unless ``overwrite``.
    A point the model judges invisible becomes INVISIBLE; a visible one takes the predicted
    position, clipped to the image. Every accepted point gets ``from_prediction=True`` and
    ``moved=False``. The prediction is the one of ``model_version``, by default the active model.

    Returns the :class:`Edit` for undo, or None when no requested point was left to accept.
    Raises :class:`AssistError` when the image has no prediction of that model.
    """
    prediction = project.get_prediction(image_id, model_version)
    if prediction is None:
        version = model_version or project.active_model()
        raise AssistError(
            f"Image {image_id} has no prediction of model {version!r} in {project.root}; pre-label it first"
        )
    names = [_landmark_name(p) for p in points] if points is not None else list(LANDMARK_NAMES)
    project.add_annotator(annotator)
    label = project.get_label(image_id, annotator)
    info = project.image_info(image_id)

    values: dict[str, PointValue] = {}
    for name in names:
        k = LANDMARK_NAMES.index(name)
        if label.state[k] != PointState.UNLABELLED and not overwrite:
            continue
        if prediction.visible[k]:
            x = float(np.clip(prediction.xy[k, 0], -0.5, info.width - 0.5))
            y = float(np.clip(prediction.xy[k, 1], -0.5, info.height - 0.5))
            values[name] = PointValue(PointState.VISIBLE, x, y, from_prediction=True)
        else:
            values[name] = PointValue(PointState.INVISIBLE, from_prediction=True)
    if not values:
        return None
    return project.apply_values(image_id, annotator, values, action="accept_prediction")


def _correct_point(project: Project, image_id: int, annotator: str, landmark: str | int, value: PointValue, action: str) -> Edit:
    name = _landmark_name(landmark)
    k = LANDMARK_NAMES.index(name)
    came_from_prediction = bool(project.get_label(image_id, annotator).from_prediction[k])
    value = PointValue(value.state, value.x, value.y, from_prediction=came_from_prediction, moved=came_from_prediction)
    return project.apply_values(image_id, annotator, {name: value}, action=action)


def move_point(project: Project, image_id: int, annotator: str, landmark: str | int, x: float, y: float) -> Edit:
    """Place one point at (x, y) as a person's correction and return the undoable :class:`Edit`.

    A point that came from a prediction keeps ``from_prediction=True`` and gets ``moved=True``;
    any other point is stored as placed by hand. The point becomes VISIBLE. Call it once at the
    end of a drag, so that the drag is one undo step.
    """
    project.add_annotator(annotator)
    return _correct_point(project, image_id, annotator, landmark, PointValue(PointState.VISIBLE, float(x), float(y)), "move")


def mark_invisible(project: Project, image_id: int, annotator: str, landmark: str | int) -> Edit:
    """Mark one point INVISIBLE as a person's decision; provenance as in :func:`move_point`."""
    project.add_annotator(annotator)
    return _correct_point(project, image_id, annotator, landmark, PointValue(PointState.INVISIBLE), "mark_invisible")


def acceptance_stats(project: Project, annotator: str | None = None) -> dict[str, dict[str, float]]:
    """Count labelled points by origin, per landmark and in total ("all").

    For each landmark name and "all": ``accepted`` (taken from a prediction unchanged),
    ``moved`` (taken from a prediction, then changed by a person), ``by_hand`` (placed without a
    prediction), ``labelled`` (their sum), and ``acceptance_rate`` = accepted / (accepted +
    moved), NaN when no point came from a prediction. Counts cover one annotator, or everyone
    when ``annotator`` is None. Unlabelled points are not counted.
    """
    names = [annotator] if annotator is not None else project.annotators()
    counts = np.zeros((N_POINTS, 3), dtype=np.int64)  # accepted, moved, by hand
    for name in names:
        for image_id in project.status(name):
            label = project.get_label(image_id, name)
            labelled = label.state != PointState.UNLABELLED
            counts[:, 0] += labelled & label.from_prediction & ~label.moved
            counts[:, 1] += labelled & label.from_prediction & label.moved
            counts[:, 2] += labelled & ~label.from_prediction

    def row(c: np.ndarray) -> dict[str, float]:
        accepted, moved, by_hand = (int(v) for v in c)
        from_model = accepted + moved
        return {
            "accepted": accepted,
            "moved": moved,
            "by_hand": by_hand,
            "labelled": from_model + by_hand,
            "acceptance_rate": accepted / from_model if from_model else float("nan"),
        }

    stats = {name: row(counts[k]) for k, name in enumerate(LANDMARK_NAMES)}
    stats["all"] = row(counts.sum(axis=0))
    return stats


# ---------------------------------------------------------------------- what to label next


def _ordered(scores: dict[int, float], image_ids: Sequence[int] | None, descending: bool, include_missing: bool) -> list[int]:
    ids = list(image_ids) if image_ids is not None else sorted(scores)
    scored = [i for i in ids if i in scores and np.isfinite(scores[i])]
    sign = -1.0 if descending else 1.0
    scored.sort(key=lambda i: (sign * scores[i], i))
    if include_missing:
        scored += sorted(i for i in ids if i not in scored)
    return scored


def order_by_confidence(
    project: Project, model_version: str | None = None, image_ids: Sequence[int] | None = None, include_missing: bool = False
) -> list[int]:
    """Return image ids, least confident prediction first.

    An image's confidence is the lowest point confidence of the prediction of ``model_version``
    (default: the active model). Ties keep ascending ids. Images without that prediction are
    left out, or appended in id order when ``include_missing``. ``image_ids`` limits and scopes
    the result (default: every image with a prediction, or every image when ``include_missing``).
    """
    scores = project.prediction_confidence(model_version)
    if image_ids is None and include_missing:
        image_ids = project.image_ids()
    return _ordered(scores, image_ids, descending=False, include_missing=include_missing)


def disagreement_scores(project: Project, annotators: Sequence[str] | None = None) -> dict[int, float]:
    """Return per image the mean leave-one-out point error of its annotators, in inter-ocular distances.

    Only images that at least two annotators finished get a score; see
    :func:`s2ld_core.agreement.compute_agreement` for the error and the IOD. Images whose
    error is undefined (for example every point marked invisible) are left out.
    """
    from .agreement import compute_agreement

    names = list(annotators) if annotators is not None else project.annotators()
    if len(names) < 2:
        return {}
    ids, names, xy, state = project.labels_array(names)
    if len(ids) == 0:
        return {}
    result = compute_agreement(xy, state, names)
    out: dict[int, float] = {}
    for n, image_id in enumerate(ids):
        errors = result.errors_iod[n]
        if result.eligible[n] and np.isfinite(errors).any():
            out[int(image_id)] = float(np.nanmean(errors))
    return out


def order_by_disagreement(
    project: Project, annotators: Sequence[str] | None = None, image_ids: Sequence[int] | None = None, include_missing: bool = False
) -> list[int]:
    """Return image ids, largest annotator disagreement first (see :func:`disagreement_scores`).

    Images without a score are left out, or appended in id order when ``include_missing``.
    """
    scores = disagreement_scores(project, annotators)
    if image_ids is None and include_missing:
        image_ids = project.image_ids()
    return _ordered(scores, image_ids, descending=True, include_missing=include_missing)


# ---------------------------------------------------------------------- training data

#: Label sources for training and comparison.
SOURCES: tuple[str, ...] = ("consensus", "annotator", "all")

#: Project meta key of the random salt that fixes the validation split.
VALIDATION_SALT_KEY = "validation_salt"


@dataclass(frozen=True)
class LabelSet:
    """Human labels chosen for training or comparison, one row per face.

    Attributes:
        image_ids: int64 (M,); an image appears once per annotator for the source "all".
        xy: float64 (M, 5, 2) in stored-image pixels; NaN where not visible.
        state: int8 (M, 5), VISIBLE or INVISIBLE only.
        keys: (M,) identifiers "image:<id>" or "image:<id>:<annotator>", used in the data hash.
    """

    image_ids: np.ndarray
    xy: np.ndarray
    state: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return len(self.keys)


def human_labels(
    project: Project,
    source: str = "consensus",
    annotator: str | None = None,
    min_annotators: int = 2,
    image_ids: Sequence[int] | None = None,
) -> LabelSet:
    """Select finished human labels from the project as targets.

    Sources:
        "consensus": the mean consensus (rule ``visible_mean`` with a majority quorum) of
            images that at least ``min_annotators`` annotators finished.
        "annotator": the finished labels of ``annotator``.
        "all": every finished label of every annotator, one face per (image, annotator).

    Only the labels table is read, never the predictions table, so a model's output enters
    only where a person accepted it. Such points (``from_prediction=True``) count as human
    labels because the person who accepted them vouched for them. A label counts as finished
    when none of its five points is UNLABELLED. ``image_ids`` limits the images.
    """
    from .consensus import ConsensusRule, compute_consensus

    if source not in SOURCES:
        raise AssistError(f"Unknown label source {source!r}; use one of {', '.join(SOURCES)}")
    known = project.annotators()
    if source == "annotator" and annotator not in known:
        raise AssistError(f"Label source 'annotator' needs a known annotator, got {annotator!r} (known: {', '.join(known) or 'none'})")
    names = [annotator] if source == "annotator" else known
    ids, names, xy, state = project.labels_array(names, image_ids)
    if not names or len(ids) == 0:
        return LabelSet(np.zeros(0, np.int64), np.zeros((0, N_POINTS, 2)), np.zeros((0, N_POINTS), np.int8), [])

    if source == "consensus":
        result = compute_consensus(xy, state, ConsensusRule(min_annotators=min_annotators))
        rows = np.flatnonzero(result.included)
        keys = [f"image:{int(ids[r])}" for r in rows]
        return LabelSet(ids[rows], result.xy[rows], result.state[rows], keys)

    finished = np.all(state != PointState.UNLABELLED, axis=-1)  # (N, A)
    rows, cols = np.nonzero(finished)
    if source == "annotator":
        keys = [f"image:{int(ids[r])}" for r in rows]
    else:
        keys = [f"image:{int(ids[r])}:{names[a]}" for r, a in zip(rows, cols)]
    return LabelSet(ids[rows], xy[rows, cols], state[rows, cols], keys)


def training_samples(
    project: Project,
    source: str = "consensus",
    annotator: str | None = None,
    min_annotators: int = 2,
    image_ids: Sequence[int] | None = None,
) -> list:
    """Return :class:`s2ld_core.training_data.Sample` objects for :func:`s2ld_core.train.train`.

    Labels are chosen by :func:`human_labels` (never unaccepted predictions). The whole
    stored image is the face; images whose shorter side exceeds
    :data:`s2ld_core.training_data.HIGH_RES_MIN_SIDE` pixels go through low-resolution synthesis.
    """
    from .training_data import HIGH_RES_MIN_SIDE, Sample

    labels = human_labels(project, source, annotator, min_annotators, image_ids)
    images: dict[int, np.ndarray] = {}
    samples = []
    for n, image_id in enumerate(labels.image_ids.tolist()):
        if image_id not in images:
            images[image_id] = project.load_image(image_id)
        image = images[image_id]
        h, w = image.shape[:2]
        high_res = min(h, w) > HIGH_RES_MIN_SIDE
        bbox = (-0.5, -0.5, w - 0.5, h - 0.5) if high_res else None
        samples.append(Sample(image, labels.xy[n].copy(), labels.state[n].copy(), high_res, bbox, key=labels.keys[n]))
    return samples


@dataclass(frozen=True)
class Split:
    """Image ids on each side of a project's fixed validation split, ascending."""

    train: list[int]
    validation: list[int]


def in_validation(salt: str, image_id: int, fraction: float) -> bool:
    """Return True when ``image_id`` falls in the validation part for this salt and fraction.

    The image's place is the first 8 bytes of SHA-256("<salt>:<image_id>") read as a fraction of
    2**64, so it depends on nothing but the salt and the id.
    """
    import hashlib

    digest = hashlib.sha256(f"{salt}:{int(image_id)}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


def validation_salt(project: Project) -> str:
    """Return the project's validation salt, creating and storing a random one on first use."""
    import secrets

    salt = project.get_meta(VALIDATION_SALT_KEY)
    if salt is None:
        salt = secrets.token_hex(8)
        project.set_meta(VALIDATION_SALT_KEY, salt)
        log.info("Created the validation split salt of %s", project.root)
    return salt


def validation_split(project: Project, fraction: float = 0.15, image_ids: Sequence[int] | None = None) -> Split:
    """Split image ids into training and validation by a hash of the project's salt and each id.

    An image keeps its side whatever images are added or removed later, because the decision
    for one id does not look at the others. ``image_ids`` defaults to every image.
    """
    if not 0.0 <= fraction < 1.0:
        raise AssistError(f"Validation fraction must be in [0, 1), got {fraction}")
    salt = validation_salt(project)
    ids = sorted(int(i) for i in (image_ids if image_ids is not None else project.image_ids()))
    validation = [i for i in ids if in_validation(salt, i, fraction)]
    held_out = set(validation)
    return Split([i for i in ids if i not in held_out], validation)


# ---------------------------------------------------------------------- comparing models


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def compare_models(
    project: Project,
    versions: Sequence[str],
    image_ids: Sequence[int] | None = None,
    source: str = "consensus",
    annotator: str | None = None,
    min_annotators: int = 2,
    device: str = "cpu",
    flip: bool = True,
    checkpoints: dict[str, str] | None = None,
) -> dict:
    """Score several models on the same faces against the same human labels.

    ``image_ids`` defaults to the validation part of :func:`validation_split`; labels come from
    :func:`human_labels` with ``source``. A version is looked up in the project registry unless
    ``checkpoints`` maps it to a checkpoint folder (a model not registered yet).

    Returns JSON-ready values (lists, None for NaN)::

        {"source": str, "image_ids": [int], "n_faces": int, "failure_threshold": 0.1,
         "ced_thresholds": [float],
         "models": {version: {"nme": mean NME, "median": float, "failure_rate": share of faces
                    above 0.1 IOD, "auc": area under the CED up to 0.1 divided by 0.1,
                    "n": faces with a defined NME, "per_face": [float | None],
                    "ced_fractions": [float]}}}

    NME is the mean point error over visible points divided by the inter-ocular distance of
    the labels. Raises :class:`AssistError` when no face has labels from ``source``.
    """
    from .metrics import ced_curve, nme, summarise
    from .predict import Predictor

    if image_ids is None:
        image_ids = validation_split(project).validation
    labels = human_labels(project, source, annotator, min_annotators, image_ids)
    if len(labels) == 0:
        raise AssistError(
            f"No faces with finished labels from source {source!r} among {len(image_ids)} images of {project.root}; "
            "label more images or choose another source"
        )
    unique_ids = sorted(set(labels.image_ids.tolist()))
    row_of = {image_id: r for r, image_id in enumerate(unique_ids)}
    images = [project.load_image(i) for i in unique_ids]
    rows = np.array([row_of[i] for i in labels.image_ids.tolist()], dtype=np.int64)

    out: dict = {"source": source, "image_ids": unique_ids, "n_faces": len(labels), "failure_threshold": 0.1, "models": {}}
    for version in versions:
        folder = (checkpoints or {}).get(version) or project.model_path(version)
        predictor = Predictor(folder, device=device, flip=flip, jit=False)
        xy, _, _ = predictor.predict_arrays(images)
        per_face = nme(xy[rows], labels.xy, labels.state)
        summary = summarise(per_face, 0.1)
        thresholds, fractions = ced_curve(per_face, 0.1)
        out["ced_thresholds"] = thresholds.tolist()
        out["models"][version] = {
            "nme": _json_number(summary.mean),
            "median": _json_number(summary.median),
            "failure_rate": _json_number(summary.failure_rate),
            "auc": _json_number(summary.auc),
            "n": summary.n,
            "per_face": [_json_number(v) for v in per_face],
            "ced_fractions": fractions.tolist(),
        }
    return out


def activate_model(project: Project, version: str) -> None:
    """Make a registered model the active one: pre-labelling and accepting use it from now on."""
    previous = project.active_model()
    project.set_active_model(version)
    log.info("Active model of %s changed from %s to %s", project.root, previous, version)
