"""The project and data commands of ``alrf-studio``, run in-process through ``main`` and as a console script.

Most tests call :func:`alrf_studio.cli.main` and read what it printed. One test runs the
installed ``alrf-studio`` script in a subprocess, and the last one walks through the whole
job on downscaled real faces: build a 700-image set, import three annotators, export the
consensus in every format.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools.coco import COCO

from alrf_studio.cli import build_parser, main
from s2ld_core.imageio import read_image
from s2ld_core.lowres import make_lowres_face
from s2ld_core.schema import LANDMARK_NAMES
from s2ld_core.store import Project
from tests.core.fixture_faces import FACES_DIR, fixture_face, fixture_points, fixture_xy
from tests.core.label_files import (
    CSV_MAPPING,
    INVISIBLE,
    UNLABELLED,
    VISIBLE,
    expected_consensus,
    read_alrf_values,
    write_alrf_file,
    write_coco_file,
    write_csv_file,
)

DATA_COMMANDS = ("new", "build-dataset", "import", "export", "consensus", "report", "status")
ANNOTATORS = ("alice", "bob", "carol")
ROUNDING_OUT = 5e-4 + 1e-9  # exports write 3 digits after the decimal point


@pytest.fixture(autouse=True)
def isolated_app(tmp_path, monkeypatch):
    """Keep the log file in tmp_path and remove the log handlers that ``main`` installs."""
    monkeypatch.setenv("ALRF_STUDIO_HOME", str(tmp_path / "app_home"))
    root = logging.getLogger()
    monkeypatch.delattr(root, "_alrf_configured", raising=False)
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run ``alrf-studio argv...`` in-process; return (exit code, stdout, stderr)."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def fixture_labels() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Return the fixture images, sizes (N, 2) and three annotators' xy (N, 3, 5, 2) and state (N, 3, 5).

    Points are the real fixture landmarks plus 0.3 px noise. Image 1: alice and bob mark the
    right eye invisible. Image 3: carol leaves the nose unlabelled, so it has two finished labels.
    """
    table = fixture_points()
    truth = np.stack([fixture_xy(row) for _, row in table.iterrows()])
    sizes = table[["width", "height"]].to_numpy()
    rng = np.random.default_rng(5)
    xy = truth[:, None] + rng.normal(0.0, 0.3, (len(table), 3, 5, 2))
    xy = np.round(np.clip(xy, -0.5, (sizes - 0.5)[:, None, None, :]), 4)
    state = np.full(xy.shape[:3], VISIBLE, dtype=np.int8)
    state[1, 0:2, 1] = INVISIBLE
    state[3, 2, 2] = UNLABELLED
    xy[state != VISIBLE] = np.nan
    return list(table["image"]), sizes, xy, state


@pytest.fixture
def labelled_project(tmp_path, capsys):
    """A project made through the CLI: the 40 fixture faces and three annotators' labels."""
    project = tmp_path / "project"
    images, sizes, xy, state = fixture_labels()
    assert run(capsys, "new", project)[0] == 0
    assert run(capsys, "import", project, "--images", FACES_DIR)[0] == 0

    alrf = write_alrf_file(tmp_path / "alice.txt", images, xy[:, 0], state[:, 0])
    csv = write_csv_file(tmp_path / "bob.csv", images, xy[:, 1], state[:, 1])
    coco = write_coco_file(tmp_path / "carol.json", images, sizes, xy[:, 2], state[:, 2])
    assert run(capsys, "import", project, "--labels", alrf, "--annotator", "alice")[0] == 0
    assert run(capsys, "import", project, "--labels", csv, "--annotator", "bob", "--columns", CSV_MAPPING)[0] == 0
    assert run(capsys, "import", project, "--labels", coco, "--annotator", "carol", "--format", "coco")[0] == 0
    return project, images, xy, state


# ---------------------------------------------------------------- help


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_help_names_every_default(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith(f"usage: alrf-studio {command}")

    options = [a for a in subcommand_parsers()[command]._actions if a.option_strings and a.help != argparse.SUPPRESS]
    for action in options:
        assert action.option_strings[-1] in text
        takes_value = action.nargs != 0  # flags (store_true, store_false) have no default to name
        if takes_value and action.default not in (None, [], argparse.SUPPRESS):
            assert f"(default: {action.default})" in text, action.option_strings


@pytest.mark.parametrize(
    "command,units",
    [
        ("build-dataset", ["than this, in pixels (default: 15)", "than this, in pixels (default: 32)"]),
        ("import", ["1-based", "0-based"]),
        ("export", ["1-based", "(default: 3)"]),
        ("consensus", ["annotators who must mark a point visible", "(default: a majority of those who finished)"]),
    ],
)
def test_help_names_units(capsys, command, units):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for unit in units:
        assert unit in text


# ---------------------------------------------------------------- new, import, status


def test_new_creates_project_with_annotators(tmp_path, capsys):
    folder = tmp_path / "fresh"
    code, out, _ = run(capsys, "new", folder, "--name", "pilot", "--annotator", "alice", "--annotator", "bob")
    assert code == 0
    assert f"created project pilot at {folder}" in out
    with Project.open(folder) as project:
        assert project.annotators() == ["alice", "bob"]
        assert project.image_count() == 0

    code, _, err = run(capsys, "new", folder)
    assert_clean_error(code, err, "already contains a project")


def write_bad_image_folder(root: Path) -> tuple[list[Path], dict[str, Path]]:
    """Write good, odd and broken images; return the import arguments and the files by kind."""
    root.mkdir()
    face = fixture_face(int(fixture_points()["width"].idxmax()))[:26, :30]
    files = {}
    for k in range(3):
        files[f"good{k}"] = root / f"face{k:02d}_0.png"
        shutil.copy(FACES_DIR / files[f"good{k}"].name, files[f"good{k}"])

    files["corrupt"] = root / "corrupt_1.jpg"
    files["corrupt"].write_bytes(b"this is not a JPEG file")
    data = (FACES_DIR / "face05_0.png").read_bytes()
    files["truncated"] = root / "truncated_1.png"
    files["truncated"].write_bytes(data[: len(data) // 2])

    rgba = np.dstack([face, np.full(face.shape[:2], 128, np.uint8)])
    files["rgba"] = root / "rgba_1.png"
    Image.fromarray(rgba, "RGBA").save(files["rgba"])
    files["gray"] = root / "gray_1.png"
    Image.fromarray(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)).save(files["gray"])
    files["deep"] = root / "deep_1.png"
    cv2.imwrite(str(files["deep"]), cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)

    exif = Image.Exif()
    exif[0x0112] = 6  # displayed after a 90 degree clockwise turn
    files["rotated"] = root / "rotated_1.jpg"
    Image.fromarray(face).save(files["rotated"], quality=95, exif=exif)

    files["unicode"] = root / "Zoë faces" / "visage ü 1.png"
    files["unicode"].parent.mkdir()
    Image.fromarray(face[::-1].copy()).save(files["unicode"])

    files["unsupported"] = root.parent / "face.gif"
    Image.fromarray(face).save(files["unsupported"])
    files["missing"] = root.parent / "no such face_1.png"
    return [root, files["unsupported"], files["missing"]], files


def test_import_images_reports_each_bad_file(tmp_path, capsys):
    project = tmp_path / "project"
    run(capsys, "new", project)
    arguments, files = write_bad_image_folder(tmp_path / "in put")

    code, out, _ = run(capsys, "import", project, "--images", *arguments)
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("  failed: ")]
    assert len(failed) == 4
    for kind, reason in [
        ("corrupt", "not an image that Pillow can decode"),
        ("truncated", "truncated or corrupt"),
        ("unsupported", "unsupported file type .gif"),
        ("missing", "file not found"),
    ]:
        assert any(str(files[kind]) in line and reason in line for line in failed), kind
    assert out.splitlines()[-1] == "images: 8 added, 0 duplicates skipped, 4 failed"

    with Project.open(project) as opened:
        stored = {info.original_path: info for info in opened.list_images()}
        assert len(stored) == 8
        for kind in ("good0", "good1", "good2", "rgba", "gray", "deep", "rotated", "unicode"):
            assert str(files[kind]) in stored, kind
        rotated = stored[str(files["rotated"])]
        assert (rotated.width, rotated.height) == (26, 30)
        assert np.array_equal(opened.load_image(rotated.id), read_image(files["rotated"]))
        gray = opened.load_image(stored[str(files["gray"])].id)
        assert np.array_equal(gray[..., 0], gray[..., 2])
        assert stored[str(files["unicode"])].identity == "Zoë faces"
        assert stored[str(files["good1"])].identity == "face01"


def test_import_same_folder_twice_reports_duplicates(tmp_path, capsys):
    project = tmp_path / "project"
    run(capsys, "new", project)
    run(capsys, "import", project, "--images", FACES_DIR)
    code, out, _ = run(capsys, "import", project, "--images", FACES_DIR)
    assert code == 0
    assert out.splitlines()[-1] == (
        "images: 0 added, 40 duplicates skipped, 0 failed, "
        "2 files in the folders ignored because their type is not an image type"
    )
    assert out.count("  duplicate of image ") == 20
    assert "  ignored (not an image type): " in out
    assert "points.csv" in out


def test_status_counts_per_annotator(labelled_project, capsys):
    project, *_ = labelled_project
    code, out, _ = run(capsys, "status", project)
    assert code == 0
    assert f"project project at {project}: 40 images" in out
    rows = {m[1]: tuple(map(int, m.groups()[1:])) for m in re.finditer(r"^\s+(\w+)\s+done\s+(\d+)\s+partial\s+(\d+)\s+not started\s+(\d+)$", out, re.M)}
    assert rows == {"alice": (40, 0, 0), "bob": (40, 0, 0), "carol": (39, 1, 0)}


# ---------------------------------------------------------------- consensus, export, report


def test_consensus_prints_summary(labelled_project, capsys, tmp_path):
    project, _, xy, state = labelled_project
    included, _, cons_state = expected_consensus(xy, state)
    code, out, _ = run(capsys, "consensus", project, "--out", tmp_path / "c.txt")
    assert code == 0
    assert "annotators: alice, bob, carol" in out
    assert f"images: 40, in the consensus: {included.sum()}, too few finished annotators: {40 - included.sum()}" in out
    assert f"invisible consensus points: {np.count_nonzero(cons_state[included] == INVISIBLE)}" in out
    assert re.search(r"median annotator spread: \d+\.\d\d% of the inter-ocular distance", out)
    assert f"wrote {included.sum()} images to {tmp_path / 'c.txt'}" in out

    code, out, _ = run(capsys, "consensus", project, "--min-annotators", "2")
    assert "in the consensus: 40," in out


def consensus_by_image(images, xy, state) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    included, mean, cons_state = expected_consensus(xy, state)
    return {image: (mean[i], cons_state[i]) for i, image in enumerate(images) if included[i]}


@pytest.mark.parametrize("fmt", ["alrf", "mtcnn", "csv", "coco"])
def test_export_consensus_every_format(labelled_project, capsys, tmp_path, fmt):
    project, images, xy, state = labelled_project
    expected = consensus_by_image(images, xy, state)
    out_file = tmp_path / f"consensus.{ {'csv': 'csv', 'coco': 'json'}.get(fmt, 'txt') }"
    code, out, _ = run(capsys, "export", project, "--consensus", "--format", fmt, "--out", out_file)
    assert code == 0
    assert f"wrote consensus of {len(expected)} images to {out_file}" in out
    assert json.loads((tmp_path / (out_file.name + ".json")).read_text())["n_included"] == len(expected)

    found = read_consensus(out_file, fmt)
    assert sorted(found) == sorted(expected)
    for image, (mean, cons_state) in expected.items():
        points, visible = found[image]
        assert np.array_equal(visible, cons_state == VISIBLE), image
        assert np.all(np.abs(points[visible] - mean[visible]) <= ROUNDING_OUT), image


def read_consensus(path: Path, fmt: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return image -> (xy (5, 2) in package coordinates, visible (5,)) from an export."""
    out = {}
    if fmt in ("alrf", "mtcnn"):
        for image, values in read_alrf_values(path).items():
            if fmt == "mtcnn":
                values = values.reshape(10)
                values = np.stack([values[:5], values[5:]], axis=1)
            out[image] = (values, ~np.all(values == -1, axis=1))
    elif fmt == "csv":
        for row in pd.read_csv(path, comment="#").itertuples():
            points = np.array([[getattr(row, f"{n}_x"), getattr(row, f"{n}_y")] for n in LANDMARK_NAMES])
            out[row.image] = (points, np.array([getattr(row, f"{n}_state") == "visible" for n in LANDMARK_NAMES]))
    else:
        coco = COCO(str(path))
        for annotation in coco.loadAnns(coco.getAnnIds()):
            keypoints = np.array(annotation["keypoints"], dtype=float).reshape(5, 3)
            image = coco.loadImgs(annotation["image_id"])[0]["file_name"]
            assert annotation["num_keypoints"] == int(np.sum(keypoints[:, 2] == 2))
            out[image] = (keypoints[:, :2] - 0.5, keypoints[:, 2] == 2)
    return out


def test_export_annotator_labels(labelled_project, capsys, tmp_path):
    project, images, xy, state = labelled_project
    code, out, _ = run(capsys, "export", project, "--annotator", "alice", "--one-based", "--out", tmp_path / "alice.txt")
    assert code == 0
    assert f"wrote 40 labels to {tmp_path / 'alice.txt'}" in out
    values = read_alrf_values(tmp_path / "alice.txt")
    for i, image in enumerate(images):
        visible = state[i, 0] == VISIBLE
        assert np.all(np.abs(values[image][visible] - (xy[i, 0][visible] + 1.0)) <= ROUNDING_OUT), image
        assert np.all(values[image][~visible] == -1), image

    code, out, _ = run(capsys, "export", project, "--format", "coco", "--out", tmp_path / "all.json")
    assert "wrote 119 labels" in out
    assert "(1 incomplete left out)" in out
    assert len(COCO(str(tmp_path / "all.json")).getAnnIds()) == 119

    code, out, _ = run(capsys, "export", project, "--per-annotator", "--format", "csv", "--include-incomplete", "--out", tmp_path / "per")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "per").iterdir()) == ["labels_alice.csv", "labels_bob.csv", "labels_carol.csv"]
    carol = pd.read_csv(tmp_path / "per" / "labels_carol.csv", comment="#")
    assert len(carol) == 40
    assert (carol["nose_state"] == "unlabelled").sum() == 1


def test_report_writes_html_and_tables(labelled_project, capsys, tmp_path):
    project, *_ = labelled_project
    code, out, _ = run(capsys, "report", project, "--out", tmp_path / "report", "--no-plots")
    assert code == 0
    page = tmp_path / "report" / "report.html"
    assert out.strip() == f"wrote {page}"
    assert "alice" in page.read_text(encoding="utf-8")
    assert list((tmp_path / "report").glob("*.csv"))


# ---------------------------------------------------------------- errors


def test_errors_exit_with_message_only(labelled_project, capsys, tmp_path):
    project, images, xy, state = labelled_project
    bad_labels = tmp_path / "bad.txt"
    bad_labels.write_text(f"{images[0]} 1 2 3\n", encoding="utf-8")
    ghost = write_alrf_file(tmp_path / "ghost.txt", ["ghost_1.png"], xy[:1, 0], state[:1, 0])
    empty = tmp_path / "empty"
    run(capsys, "new", empty)

    cases = [
        (["status", tmp_path / "nowhere"], ["No project found", "alrf-studio new"]),
        (["export", project, "--out", tmp_path / "x.txt"], ["one annotator"]),
        (["export", project, "--annotator", "zoe", "--format", "csv", "--out", tmp_path / "x.csv"], ["zoe", "alice, bob, carol"]),
        (["import", project, "--labels", bad_labels, "--annotator", "dan"], [str(bad_labels), "line 1", "found 3 number(s) after the path"]),
        (["import", project, "--labels", ghost, "--annotator", "dan"], ["ghost_1.png", "--skip-unknown"]),
        (["import", project], ["nothing to import"]),
        (["consensus", empty], ["no annotators yet"]),
        (["report", empty, "--out", tmp_path / "r"], ["at least two annotators"]),
        (["build-dataset", tmp_path / "nowhere", "--out", tmp_path / "d"], ["source folder", "not found"]),
    ]
    for argv, fragments in cases:
        code, _, err = run(capsys, *argv)
        assert_clean_error(code, err, *fragments)

    with Project.open(project) as opened:
        assert "dan" not in opened.annotators()


def test_console_script_runs(labelled_project, tmp_path):
    script = Path(sys.executable).with_name("alrf-studio")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable}; run pip install -e .")
    project, *_ = labelled_project
    env = dict(os.environ, ALRF_STUDIO_HOME=str(tmp_path / "script_home"))

    done = subprocess.run([script, "status", project], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0
    assert "40 images" in done.stdout
    assert re.search(r"carol\s+done\s+39\s+partial\s+1", done.stdout)

    failed = subprocess.run([script, "status", tmp_path / "nowhere"], capture_output=True, text=True, env=env, timeout=60)
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: No project found")
    assert "Traceback" not in failed.stderr


# ---------------------------------------------------------------- the whole job on real faces


def make_tinyface_tree(cnn_facepoint: Path, root: Path, n_identities: int = 820) -> dict[str, tuple[np.ndarray, int]]:
    """Write identity folders (and a few flat ``<identity>_<k>.jpg`` files) of 12-40 px real faces.

    Each identity is one cnn_facepoint photo downscaled to 3-5 different sizes. Returns
    relative path -> (points (5, 2) in the crop, side in pixels).
    """
    table = pd.read_csv(cnn_facepoint / "landmarks.csv")
    small = table[(table["img_w"] == 160) & (table["img_h"] == 216)].sort_values("image_path")
    rng = np.random.default_rng(2024)
    rows = small.iloc[np.sort(rng.choice(len(small), n_identities, replace=False))]
    truth = {}
    for number, row in enumerate(rows.itertuples()):
        photo = cv2.cvtColor(cv2.imread(str(cnn_facepoint / row.image_path)), cv2.COLOR_BGR2RGB)
        points = np.array([[getattr(row, f"x{k}"), getattr(row, f"y{k}")] for k in range(1, 6)], dtype=float)
        bbox = (row.bbox_x1, row.bbox_y1, row.bbox_x2, row.bbox_y2)
        identity = f"person_{number:04d}"
        for k, size in enumerate(rng.choice(np.arange(12, 41), int(rng.integers(3, 6)), replace=False)):
            face, face_points = make_lowres_face(photo, bbox, points, int(size))
            relative = f"{identity}_{k}.jpg" if number % 25 == 0 else f"{identity}/{k}.jpg"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(face, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok
            (root / relative).write_bytes(data.tobytes())
            truth[relative] = (face_points, int(size))
    return truth


@pytest.mark.shared_data
def test_tinyface_tree_to_consensus_files(cnn_facepoint_dir, tmp_path, capsys):
    source = tmp_path / "tinyface"
    truth = make_tinyface_tree(cnn_facepoint_dir, source)
    project = tmp_path / "alrf_project"

    code, out, _ = run(capsys, "build-dataset", source, "--out", tmp_path / "set", "--identities", 700, "--seed", 3, "--project", project)
    assert code == 0
    assert "chose 700 identities, one image each (seed 3)" in out
    assert f"project {project}: 700 added, 0 duplicates skipped, 0 failed" in out

    sides = np.array([size for _, size in truth.values()])
    eligible = {path for path, (_, size) in truth.items() if 15 < size < 32}
    identity = {path: path.split("/")[0] if "/" in path else path.rsplit("_", 1)[0] for path in truth}
    record = json.loads((tmp_path / "set" / "dataset.json").read_text())
    assert record["n_files"] == len(truth)
    assert record["dropped"]["too_small"] == int(np.sum(sides <= 15))
    assert record["dropped"]["too_large"] == int(np.sum(sides >= 32))
    assert record["n_eligible_identities"] == len({identity[path] for path in eligible})
    assert record["dropped"]["identity_not_chosen"] + record["dropped"]["other_image_of_chosen_identity"] == len(eligible) - 700

    manifest = pd.read_csv(tmp_path / "set" / "manifest.csv")
    chosen = list(manifest["relative_path"])
    assert len(set(manifest["identity"])) == 700
    assert set(chosen) <= eligible
    assert all(identity[path] == name for path, name in zip(chosen, manifest["identity"]))

    code, _, _ = run(capsys, "build-dataset", source, "--out", tmp_path / "again", "--identities", 700, "--seed", 3)
    for name in ("manifest.csv", "excluded_identities.txt", "excluded_images.txt"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "set" / name).read_bytes(), name

    with Project.open(project) as opened:
        infos = opened.list_images()
        assert sorted(Path(info.original_path).relative_to(source).as_posix() for info in infos) == sorted(chosen)
        assert all(15 < info.width < 32 and 15 < info.height < 32 for info in infos)

    # Three annotators: ground truth plus noise, 2% invisible marks, in three file formats.
    rng = np.random.default_rng(9)
    sizes = np.array([[truth[path][1]] * 2 for path in chosen])
    exact = np.stack([truth[path][0] for path in chosen])
    xy = exact[:, None] + rng.normal(0.0, 0.4, (700, 3, 5, 2))
    xy = np.round(np.clip(xy, -0.5, (sizes - 0.5)[:, None, None, :]), 4)
    state = np.where(rng.random((700, 3, 5)) < 0.02, INVISIBLE, VISIBLE).astype(np.int8)
    xy[state != VISIBLE] = np.nan
    files = [
        (write_alrf_file(tmp_path / "ann1.txt", chosen, xy[:, 0], state[:, 0]), ["--annotator", "ann1"]),
        (write_csv_file(tmp_path / "ann2.csv", chosen, xy[:, 1], state[:, 1], offset=1.0), ["--annotator", "ann2", "--columns", CSV_MAPPING, "--one-based"]),
        (write_coco_file(tmp_path / "ann3.json", chosen, sizes, xy[:, 2], state[:, 2]), ["--annotator", "ann3"]),
    ]
    for path, options in files:
        code, out, _ = run(capsys, "import", project, "--labels", path, *options)
        assert code == 0
        assert "imported 700 labels" in out
    code, out, _ = run(capsys, "status", project)
    assert len(re.findall(r"done\s+700\s+partial\s+0\s+not started\s+0", out)) == 3

    included, mean, cons_state = expected_consensus(xy, state)
    assert included.all()
    for fmt, name in (("alrf", "consensus.txt"), ("csv", "consensus.csv"), ("coco", "consensus.json")):
        code, out, _ = run(capsys, "export", project, "--consensus", "--format", fmt, "--out", tmp_path / name)
        assert code == 0
        found = read_consensus(tmp_path / name, fmt)
        assert sorted(found) == sorted(chosen)
        for i, path in enumerate(chosen):
            points, visible = found[path]
            assert np.array_equal(visible, cons_state[i] == VISIBLE), (fmt, path)
            assert np.all(np.abs(points[visible] - mean[i][visible]) <= 1e-3), (fmt, path)
