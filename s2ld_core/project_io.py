"""Project-level import, export, consensus and report: the operations behind the CLI and the menus.

Each function takes an open :class:`s2ld_core.store.Project` and does the whole job, so the
GUI's menu actions and ``alrf-studio`` commands share one implementation. Label files are
parsed completely before anything is written, and their labels are stored in one
transaction, so a bad file leaves the project as it was.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import formats
from .atomic import write_text_atomic
from .consensus import ConsensusResult, ConsensusRule, compute_consensus
from .formats_common import FormatError, FormatProblem, LabelRecord
from .schema import LANDMARK_NAMES
from .store import ImageInfo, ImportSummary, Project, StoreError

log = logging.getLogger(__name__)

#: Label file formats that :func:`import_label_file` reads and :func:`export_labels` writes.
LABEL_FORMATS = ("alrf", "mtcnn", "csv", "coco")


class LabelImportError(StoreError):
    """A label file that does not fit the project (unknown or ambiguous images)."""


@dataclass
class LabelImportSummary:
    """Outcome of :func:`import_label_file`."""

    path: Path
    images: int = 0
    annotators: list[str] = field(default_factory=list)
    flagged_outside: int = 0
    skipped_unknown: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"imported {self.images} labels for {', '.join(self.annotators)} from {self.path}"
        if self.flagged_outside:
            text += f"; {self.flagged_outside} labels keep points outside the image (flagged)"
        if self.skipped_unknown:
            text += f"; skipped {len(self.skipped_unknown)} images not in the project"
        return text


# ---------------------------------------------------------------------------- images


def import_images(
    project: Project,
    sources: list[str | os.PathLike],
    source_name: str = "",
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ImportSummary:
    """Import image files and folders (searched recursively) into ``project``.

    Identities come from a TinyFace-like layout: the top folder below a given folder, or the
    ``<identity>_<k>`` part of a file name. Files with unsupported suffixes are reported as
    errors in the summary; the import goes on.
    """
    from .dataset import identity_from_path, list_files
    from .imageio import is_supported

    files: list[Path] = []
    ignored: list[str] = []
    identities: dict[Path, str] = {}
    for source in sources:
        source = Path(source)
        if source.is_dir():
            # Inside a folder, files that are not images (notes, CSV lists) are left alone.
            for rel in list_files(source):
                if is_supported(rel):
                    files.append(source / rel)
                    identities[source / rel] = identity_from_path(rel) or ""
                else:
                    ignored.append(str(source / rel))
        else:
            files.append(source)
            identities[source] = identity_from_path(source.name) or ""
    summary_errors = [
        (str(p), f"{p}: unsupported file type {p.suffix or '(none)'}; convert it to PNG or JPEG")
        for p in files
        if not is_supported(p) and p.exists()
    ]
    to_import = [p for p in files if is_supported(p) or not p.exists()]
    summary = project.add_images(to_import, identity=lambda p: identities.get(p, ""), source=source_name, progress=progress, cancel=cancel)
    summary.errors = summary_errors + summary.errors
    summary.ignored = ignored
    if ignored:
        log.info("Ignored %d files that are not images, e.g. %s", len(ignored), ignored[0])
    return summary


# ---------------------------------------------------------------------------- labels


def _read_label_file(path: Path, fmt: str, annotator: str | None, columns: str | None, one_based: bool | None, allow_outside: bool) -> formats.ReadResult:
    if fmt in ("alrf", "mtcnn"):
        return formats.read_alrf(
            path, layout="mtcnn" if fmt == "mtcnn" else None, one_based=one_based, allow_outside=allow_outside, allow_unlabelled=True
        )
    if fmt == "csv":
        mapping = formats.parse_column_mapping(columns) if columns else None
        # Rows are read for every annotator; import_label_file decides which belong to ``annotator``.
        return formats.read_labels_csv(
            path, columns=mapping, one_based=bool(one_based), allow_outside=allow_outside, allow_unlabelled=True
        )
    if fmt == "coco":
        return formats.read_coco(path, allow_outside=allow_outside)
    raise LabelImportError(f"Unknown label format {fmt!r}; use one of {', '.join(LABEL_FORMATS)}")


def guess_format(path: Path) -> str:
    """Label format from the file suffix: .json is COCO, .csv is CSV, anything else ALRF."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix == ".csv":
        return "csv"
    return "alrf"


def import_label_file(
    project: Project,
    path: str | os.PathLike,
    annotator: str | None = None,
    fmt: str | None = None,
    columns: str | None = None,
    one_based: bool | None = None,
    allow_outside: bool = False,
    skip_unknown: bool = False,
) -> LabelImportSummary:
    """Import a label file as the labels of ``annotator`` (or of the annotators it names).

    Image paths in the file are matched to the images' original paths by their trailing
    parts (``faces/a.png`` matches ``/data/faces/a.png``). Coordinates are checked against
    each matched image's size before anything is written.

    Raises:
        FormatError: a malformed file, or points outside the image without ``allow_outside``.
        LabelImportError: images that are not in the project (unless ``skip_unknown``), images
            that match several project images, or a file without annotator names and no
            ``annotator`` given.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelImportError(f"Label file {path} not found; check the path")
    fmt = fmt or guess_format(path)
    result = _read_label_file(path, fmt, annotator, columns, one_based, allow_outside=True)

    result.records = _records_for(result.records, annotator, path)

    infos = project.list_images()
    known = {info.id: info.original_path for info in infos}
    by_id = {info.id: info for info in infos}
    matches, unmatched, ambiguous = formats.match_image_paths([r.image for r in result.records], known)
    if ambiguous:
        first = next(iter(ambiguous.items()))
        raise LabelImportError(
            f"{path}: {len(ambiguous)} image path(s) match several project images, e.g. {first[0]!r} matches ids {first[1]}; "
            "write longer paths in the file (include the identity folder)"
        )
    if unmatched and not skip_unknown:
        examples = ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
        raise LabelImportError(
            f"{path}: {len(unmatched)} image(s) are not in the project: {examples}. "
            "Import the images first, or pass skip_unknown (--skip-unknown) to import the rest."
        )

    problems: list[FormatProblem] = []
    sets: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    outside: dict[str, dict[int, np.ndarray]] = {}
    summary = LabelImportSummary(path=path, skipped_unknown=list(unmatched))
    for record in result.records:
        if record.image not in matches:
            continue
        image_id = matches[record.image]
        info = by_id[image_id]
        name = annotator or record.annotator
        if not name:
            raise LabelImportError(
                f"{path}: the file names no annotator; choose the annotator these labels belong to (--annotator NAME)"
            )
        mask = _outside_mask(record, info.width, info.height)
        if mask.any() and not allow_outside:
            for k in np.flatnonzero(mask):
                problems.append(
                    FormatProblem(
                        f"line {record.line}" if record.line else record.image,
                        f"{record.xy[k, 0]:g} {record.xy[k, 1]:g}",
                        f"{LANDMARK_NAMES[k]} (point {k + 1}) lies outside the {info.width}x{info.height} image {record.image} "
                        "(valid -0.5 to size - 0.5); pass allow_outside (--allow-outside) to keep it flagged",
                        record.line,
                    )
                )
            continue
        sets.setdefault(name, {})[image_id] = (record.xy, record.state)
        if mask.any():
            outside.setdefault(name, {})[image_id] = mask
            summary.flagged_outside += 1
    if problems:
        raise FormatError(path, problems)
    summary.images = project.import_label_sets(sets, action=f"import:{path.name}", allow_outside=allow_outside, outside=outside)
    summary.annotators = sorted(sets)
    log.info("%s", summary.describe())
    return summary


def _records_for(records: list[LabelRecord], annotator: str | None, path: Path) -> list[LabelRecord]:
    """Select the records that an import as ``annotator`` takes from a file.

    A file without annotator names, or with one name, is taken whole as ``annotator``'s labels.
    A file with several names gives only the rows of ``annotator``, which must be one of them.
    """
    if not records:
        raise LabelImportError(f"{path} contains no labels; check that it is the right file")
    names = sorted({r.annotator for r in records if r.annotator})
    if annotator is None or len(names) <= 1:
        return records
    chosen = [r for r in records if r.annotator == annotator]
    if not chosen:
        raise LabelImportError(
            f"{path} contains labels of {', '.join(names)} but none of {annotator!r}; "
            "choose one of those names, or leave out --annotator to import them all"
        )
    return chosen


def _outside_mask(record: LabelRecord, width: int, height: int) -> np.ndarray:
    x, y = record.xy[:, 0], record.xy[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    return np.isfinite(x) & ~inside


# ---------------------------------------------------------------------------- export


def export_names(project: Project, image_ids: np.ndarray, paths: str = "original") -> list[str]:
    """Image paths to write in exports.

    ``paths="original"`` gives the original paths relative to their deepest common folder,
    such as ``identity/file.jpg`` for a TinyFace-like import. ``"project"`` gives the stored
    files relative to the project folder (``images/0000001.png``), which stay valid when the
    project moves.
    """
    return _export_names(_infos_by_id(project), image_ids, paths)


def _infos_by_id(project: Project) -> dict[int, ImageInfo]:
    return {info.id: info for info in project.list_images()}


def _path_parts(path: str) -> list[str]:
    """Split a path at ``/`` (and ``\\`` on Windows); an absolute path starts with an empty part."""
    if os.sep == "\\":
        path = path.replace("\\", "/")
    parts = path.split("/")
    return parts[:1] + [part for part in parts[1:] if part and part != "."]


def _export_names(infos: dict[int, ImageInfo], image_ids: np.ndarray, paths: str) -> list[str]:
    # Plain string operations: pathlib objects for 10,000 images took about 0.6 s here.
    if paths == "project":
        return [infos[int(i)].file for i in image_ids]
    originals = [_path_parts(infos[int(i)].original_path) for i in image_ids]
    if not originals:
        return []
    common = len(os.path.commonprefix([parts[:-1] for parts in originals]))
    names = ["/".join(parts[common:]) for parts in originals]
    if len(set(names)) != len(names):
        return [infos[int(i)].file for i in image_ids]
    return names


def _sizes(infos: dict[int, ImageInfo], image_ids: np.ndarray, names: list[str]) -> dict[str, tuple[int, int]]:
    return {name: (infos[int(i)].width, infos[int(i)].height) for i, name in zip(image_ids, names)}


def _write(fmt: str, out: Path, records: list[LabelRecord], sizes: dict, header: list[str], info: dict, include_incomplete: bool, one_based: bool) -> formats.WriteSummary:
    if fmt in ("alrf", "mtcnn"):
        return formats.write_alrf(
            out, records, layout="mtcnn" if fmt == "mtcnn" else "pairs", one_based=one_based, header_lines=header, include_incomplete=include_incomplete
        )
    if fmt == "csv":
        return formats.write_labels_csv(out, records, header_lines=header, include_incomplete=include_incomplete)
    if fmt == "coco":
        return formats.write_coco(out, records, sizes, include_incomplete=include_incomplete, info=info)
    raise StoreError(f"Unknown export format {fmt!r}; use one of {', '.join(LABEL_FORMATS)}")


def export_labels(
    project: Project,
    out: str | os.PathLike,
    fmt: str = "alrf",
    annotators: list[str] | None = None,
    paths: str = "original",
    include_incomplete: bool = False,
    one_based: bool = False,
) -> formats.WriteSummary:
    """Write the labels of ``annotators`` (default: all) to one file.

    ALRF files hold one annotator each (pass exactly one); CSV and COCO files name the
    annotator of every row or annotation. Use :func:`export_annotator_files` for one file
    per annotator.
    """
    out = Path(out)
    names_all = project.annotators()
    chosen = annotators or names_all
    unknown = [a for a in chosen if a not in names_all]
    if unknown:
        raise StoreError(f"Unknown annotator(s) {', '.join(unknown)}; the project has: {', '.join(names_all) or 'none'}")
    if fmt in ("alrf", "mtcnn") and len(chosen) != 1:
        raise StoreError(f"An ALRF file contains one annotator's labels; choose one of {', '.join(chosen)} or export the consensus")
    image_ids, chosen, xy, state = project.labels_array(chosen)
    infos = _infos_by_id(project)
    names = _export_names(infos, image_ids, paths)
    records: list[LabelRecord] = []
    for a, annotator in enumerate(chosen):
        touched = np.any(state[:, a] != 0, axis=1)
        sel = np.flatnonzero(touched)
        records += formats.records_from_arrays([names[i] for i in sel], xy[sel, a], state[sel, a], annotator=annotator)
    header = [f"labels of {', '.join(chosen)} from project {project.name}", f"images: {len(image_ids)}"]
    info = {"project": project.name, "annotators": chosen}
    return _write(fmt, out, records, _sizes(infos, image_ids, names), header, info, include_incomplete, one_based)


def export_annotator_files(
    project: Project, folder: str | os.PathLike, fmt: str = "csv", paths: str = "original", include_incomplete: bool = False
) -> list[formats.WriteSummary]:
    """Write one file per annotator into ``folder`` (``labels_<name>.<ext>``).

    ``include_incomplete`` also writes images with points not labelled yet, as in :func:`export_labels`.
    """
    folder = Path(folder)
    suffix = {"alrf": ".txt", "mtcnn": ".txt", "csv": ".csv", "coco": ".json"}[fmt]
    out = []
    for annotator in project.annotators():
        name = formats.annotator_file_name(annotator).rsplit(".", 1)[0] + suffix
        out.append(export_labels(project, folder / name, fmt, [annotator], paths, include_incomplete=include_incomplete))
    return out


def project_consensus(project: Project, rule: ConsensusRule | None = None, annotators: list[str] | None = None) -> tuple[np.ndarray, list[str], ConsensusResult]:
    """Consensus of the project's annotators: (image ids (N,), annotator names, result)."""
    image_ids, names, xy, state = project.labels_array(annotators)
    if not names:
        raise StoreError(f"Project {project.root} has no annotators yet; import or make labels first")
    return image_ids, names, compute_consensus(xy, state, rule or ConsensusRule())


def export_consensus(
    project: Project,
    out: str | os.PathLike,
    fmt: str = "alrf",
    rule: ConsensusRule | None = None,
    annotators: list[str] | None = None,
    paths: str = "original",
    one_based: bool = False,
) -> tuple[formats.WriteSummary, ConsensusResult]:
    """Write the consensus of included images to ``out`` and its provenance to ``<out>.json``.

    The rule and its parameters are written in the file header (ALRF, CSV), in the COCO
    ``info`` block and in the JSON sidecar.
    """
    out = Path(out)
    image_ids, names, result = project_consensus(project, rule, annotators)
    sel = np.flatnonzero(result.included)
    infos = _infos_by_id(project)
    export = _export_names(infos, image_ids, paths)
    records = formats.records_from_arrays(
        [export[i] for i in sel], result.xy[sel], result.state[sel], annotator=formats.CONSENSUS_ANNOTATOR
    )
    for record, i in zip(records, sel):
        record.extra["n_annotators"] = int(result.n_finished[i])
    if fmt == "coco":
        coordinates = "COCO keypoints: pixel-edge frame, the image spans 0..width (package coordinates + 0.5)"
    elif one_based:
        coordinates = "1-based: the centre of the top-left pixel is (1, 1)"
    else:
        coordinates = "0-based: the centre of pixel (i, j) is (i, j)"
    provenance = result.provenance(names) | {"project": project.name, "coordinates": coordinates}
    header = result.rule.header_lines() + [f"annotators: {', '.join(names)}", f"images: {len(sel)} of {len(image_ids)} included"]
    header = [line.lstrip("# ").rstrip() for line in header]
    summary = _write(fmt, out, records, _sizes(infos, image_ids, export), header, provenance, False, one_based)
    write_text_atomic(out.with_name(out.name + ".json"), json.dumps(provenance, indent=2) + "\n")
    log.info("Wrote consensus of %d images to %s", len(sel), out)
    return summary, result


def write_project_report(project: Project, out_dir: str | os.PathLike, plots: bool = True, annotators: list[str] | None = None) -> Path:
    """Write the agreement report (HTML, PNG plots, CSV tables) of the project's annotators."""
    from .agreement import compute_agreement
    from .report import write_report

    image_ids, names, xy, state = project.labels_array(annotators)
    if len(names) < 2:
        raise StoreError(f"An agreement report needs at least two annotators; project {project.root} has {len(names)}")
    agreement = compute_agreement(xy, state, names)
    consensus = compute_consensus(xy, state, ConsensusRule())
    return write_report(out_dir, agreement, consensus, image_ids=image_ids, plots=plots, title=f"Annotator agreement: {project.name}")

