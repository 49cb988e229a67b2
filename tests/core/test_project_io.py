"""Project-level image import, label import, export and consensus on the committed fixture faces.

Three annotators label the 40 fixture faces: their points are the fixture's real landmarks
plus Gaussian noise, with a few invisible marks, and each annotator's file is in another
format (ALRF, CSV with a column mapping, COCO). The label files are written by the tests
themselves, so the readers are checked against text that no project writer produced.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

from s2ld_core.consensus import ConsensusRule
from s2ld_core.formats import FormatError
from s2ld_core.imageio import read_image
from s2ld_core.project_io import (
    LabelImportError,
    export_annotator_files,
    export_consensus,
    export_labels,
    import_images,
    import_label_file,
    project_consensus,
)
from s2ld_core.schema import LANDMARK_NAMES, PointState
from s2ld_core.store import ImageStatus, Project, StoreError
from tests.core.fixture_faces import FACES_DIR, fixture_points, fixture_xy
from tests.core.label_files import (
    CSV_MAPPING,
    DECIMALS,
    expected_consensus,
    write_alrf_file,
    write_coco_file,
    write_csv_file,
)

VISIBLE, INVISIBLE, UNLABELLED = PointState.VISIBLE, PointState.INVISIBLE, PointState.UNLABELLED
ANNOTATORS = ("alice", "bob", "carol")
NOISE_PX = 0.3
ROUNDING_OUT = 5e-4 + 1e-9  # exports write 3 digits after the decimal point

class Truth:
    """The fixture table, its real points and the image sizes."""

    def __init__(self) -> None:
        self.table = fixture_points()
        self.images = list(self.table["image"])
        self.xy = np.stack([fixture_xy(row) for _, row in self.table.iterrows()])
        self.sizes = np.stack([self.table["width"].to_numpy(), self.table["height"].to_numpy()], axis=1)


@pytest.fixture(scope="module")
def truth() -> Truth:
    return Truth()


@pytest.fixture
def project(tmp_path):
    project = Project.create(tmp_path / "project")
    summary = import_images(project, [FACES_DIR], source_name="fixture")
    assert len(summary.added) == 40
    yield project
    project.close()


def noisy_labels(truth: Truth) -> tuple[np.ndarray, np.ndarray]:
    """Return xy (40, 3, 5, 2) and state (40, 3, 5): real points plus noise, with chosen invisible marks.

    Image 0: alice marks the nose invisible (the consensus keeps it visible).
    Image 1: alice and bob mark the right eye invisible (the consensus makes it invisible).
    Image 2: all three mark the left mouth corner invisible.
    Image 3: carol leaves the nose unlabelled, so only two annotators finish the image.
    """
    rng = np.random.default_rng(11)
    n = len(truth.images)
    xy = truth.xy[:, None] + rng.normal(0.0, NOISE_PX, (n, len(ANNOTATORS), 5, 2))
    upper = (truth.sizes - 0.5)[:, None, None, :]
    xy = np.round(np.clip(xy, -0.5, upper), DECIMALS)
    state = np.full((n, len(ANNOTATORS), 5), VISIBLE, dtype=np.int8)
    state[0, 0, 2] = INVISIBLE
    state[1, 0:2, 1] = INVISIBLE
    state[2, :, 3] = INVISIBLE
    state[3, 2, 2] = UNLABELLED
    xy[state != VISIBLE] = np.nan
    return xy, state


@pytest.fixture
def labelled(project, truth, tmp_path):
    """The project with alice (ALRF), bob (CSV with a column mapping) and carol (COCO) imported."""
    xy, state = noisy_labels(truth)
    files = {
        "alice": write_alrf_file(tmp_path / "alice.txt", truth.images, xy[:, 0], state[:, 0]),
        "bob": write_csv_file(tmp_path / "bob.csv", truth.images, xy[:, 1], state[:, 1]),
        "carol": write_coco_file(tmp_path / "carol.json", truth.images, truth.sizes, xy[:, 2], state[:, 2]),
    }
    import_label_file(project, files["alice"], annotator="alice")
    import_label_file(project, files["bob"], annotator="bob", columns=CSV_MAPPING)
    import_label_file(project, files["carol"], annotator="carol")
    return project, xy, state


def label_count(project: Project) -> int:
    _, _, _, state = project.labels_array()
    return int(np.count_nonzero(state != UNLABELLED))


# ---------------------------------------------------------------- images


def test_import_images_from_folder(project, truth):
    infos = project.list_images()
    by_name = {Path(info.original_path).name: info for info in infos}
    assert sorted(by_name) == sorted(truth.images)

    for row in truth.table.itertuples():
        info = by_name[row.image]
        assert info.identity == row.image.rsplit("_", 1)[0]
        assert (info.width, info.height) == (row.width, row.height)
        assert info.source == "fixture"
        assert (project.root / info.file).is_file()
        assert np.array_equal(project.load_image(info.id), read_image(FACES_DIR / row.image))


def test_import_images_twice_reports_duplicates(project):
    again = import_images(project, [FACES_DIR])
    assert again.added == []
    assert len(again.duplicates) == 40
    assert project.image_count() == 40


# ---------------------------------------------------------------- label import


def test_three_annotators_imported(labelled, truth):
    project, xy, state = labelled
    ids, names, stored_xy, stored_state = project.labels_array(list(ANNOTATORS))
    order = [project.image_info(int(i)).original_path.rsplit("/", 1)[-1] for i in ids]
    rows = [truth.images.index(name) for name in order]

    assert names == list(ANNOTATORS)
    assert np.array_equal(stored_state, state[rows])
    assert np.array_equal(np.isnan(stored_xy), np.isnan(xy[rows]))
    assert np.nanmax(np.abs(stored_xy - xy[rows])) < 1e-9
    counts = project.counts()
    assert counts["alice"] == {"done": 40, "partial": 0, "not_started": 0}
    assert counts["carol"] == {"done": 39, "partial": 1, "not_started": 0}


def test_cnn_facepoint_style_table_imported(project, truth, tmp_path):
    # cnn_facepoint's landmarks.csv layout: image_path, x1, y1, ..., x5, y5 plus other columns.
    table = pd.DataFrame({"image_path": [f"images/{name}" for name in truth.images], "split": "test"})
    for k in range(5):
        table[f"x{k + 1}"] = truth.xy[:, k, 0]
        table[f"y{k + 1}"] = truth.xy[:, k, 1]
    path = tmp_path / "landmarks.csv"
    table.to_csv(path, index=False)

    with pytest.raises(LabelImportError, match="40 image"):
        import_label_file(project, path, annotator="cnn", columns="numbered")
    table["image_path"] = truth.images
    table.to_csv(path, index=False)
    summary = import_label_file(project, path, annotator="cnn", columns="numbered")
    assert summary.images == 40
    label = project.get_label(project.list_images()[5].id, "cnn")
    assert np.allclose(label.xy, truth.xy[truth.images.index(Path(project.list_images()[5].original_path).name)])


# ---------------------------------------------------------------- consensus export


def test_consensus_alrf_export_and_reimport(labelled, tmp_path):
    project, xy, state = labelled
    out = tmp_path / "consensus.txt"
    summary, result = export_consensus(project, out, "alrf")
    ids, _, computed = project_consensus(project)

    included, mean, cons_state = expected_consensus(*project.labels_array(list(ANNOTATORS))[2:])
    assert summary.written == int(included.sum()) == 39
    assert np.array_equal(result.included, included)
    assert np.array_equal(result.state[included], cons_state[included])
    assert np.allclose(result.xy[included], mean[included], equal_nan=True, atol=1e-12)

    lines = [line for line in out.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert len(lines) == 39
    assert "consensus_rule: method=visible_mean quorum=majority min_annotators=3" in out.read_text(encoding="utf-8")
    sidecar = json.loads(out.with_name(out.name + ".json").read_text(encoding="utf-8"))
    assert sidecar["n_included"] == 39
    assert sidecar["annotators"] == list(ANNOTATORS)

    import_label_file(project, out, annotator="reimported")
    _, _, again_xy, again_state = project.labels_array(["reimported"], image_ids=ids)
    assert np.array_equal(again_state[:, 0][included], computed.state[included])
    assert np.all(again_state[:, 0][~included] == UNLABELLED)
    assert np.array_equal(np.isnan(again_xy[included, 0]), np.isnan(computed.xy[included]))
    assert np.nanmax(np.abs(again_xy[included, 0] - computed.xy[included])) <= ROUNDING_OUT


def test_consensus_point_states_by_invisible_marks(labelled):
    project, _, _ = labelled
    ids, _, result = project_consensus(project)
    row = {Path(project.image_info(int(i)).original_path).name: r for r, i in enumerate(ids)}
    nose_one_mark = result.state[row["face00_0.png"], 2]
    eye_two_marks = result.state[row["face01_0.png"], 1]
    mouth_three_marks = result.state[row["face02_0.png"], 3]
    assert nose_one_mark == VISIBLE
    assert result.n_annotators[row["face00_0.png"], 2] == 2
    assert eye_two_marks == INVISIBLE
    assert mouth_three_marks == INVISIBLE
    assert not result.included[row["face03_0.png"]]


def test_consensus_csv_export(labelled, tmp_path):
    project, _, _ = labelled
    out = tmp_path / "consensus.csv"
    export_consensus(project, out, "csv")
    ids, _, result = project_consensus(project)
    name_of = {Path(project.image_info(int(i)).original_path).name: r for r, i in enumerate(ids)}

    table = pd.read_csv(out, comment="#")
    assert len(table) == 39
    assert set(table["annotator"]) == {"consensus"}
    for row in table.itertuples():
        r = name_of[row.image]
        assert row.n_annotators == 3
        for k, name in enumerate(LANDMARK_NAMES):
            word = getattr(row, f"{name}_state")
            assert word == ("visible" if result.state[r, k] == VISIBLE else "invisible"), (row.image, name)
            if word == "visible":
                assert abs(getattr(row, f"{name}_x") - result.xy[r, k, 0]) <= ROUNDING_OUT
                assert abs(getattr(row, f"{name}_y") - result.xy[r, k, 1]) <= ROUNDING_OUT
            else:
                assert np.isnan(getattr(row, f"{name}_x"))


def test_consensus_coco_export_loads_in_pycocotools(labelled, truth, tmp_path):
    project, _, _ = labelled
    out = tmp_path / "consensus.json"
    export_consensus(project, out, "coco")
    ids, _, result = project_consensus(project)
    row_of = {Path(project.image_info(int(i)).original_path).name: r for r, i in enumerate(ids)}

    coco = COCO(str(out))
    category = coco.loadCats(coco.getCatIds())[0]
    assert category["keypoints"] == ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    assert category["swap_pairs"] == [["left_eye", "right_eye"], ["mouth_left", "mouth_right"]]
    assert category["flip_pairs"] == [[0, 1], [3, 4]]
    assert len(coco.getImgIds()) == 39
    assert len(coco.getAnnIds()) == 39

    for annotation in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(annotation["image_id"])[0]
        r = row_of[image["file_name"]]
        width, height = truth.sizes[truth.images.index(image["file_name"])]
        assert (image["width"], image["height"]) == (width, height)
        keypoints = np.array(annotation["keypoints"], dtype=float).reshape(5, 3)
        visible = result.state[r] == VISIBLE
        assert np.array_equal(keypoints[:, 2], np.where(visible, 2, 0)), image["file_name"]
        assert annotation["num_keypoints"] == int(visible.sum())
        assert np.all(np.abs(keypoints[visible, :2] - (result.xy[r][visible] + 0.5)) <= ROUNDING_OUT)
        assert np.all(keypoints[~visible, :2] == 0)
    assert coco.dataset["info"]["rule"]["min_annotators"] == 3


def test_consensus_rule_options_change_export(labelled, tmp_path):
    project, _, _ = labelled
    summary, result = export_consensus(project, tmp_path / "two.txt", "alrf", rule=ConsensusRule(min_annotators=2))
    assert summary.written == 40
    strict, _ = export_consensus(project, tmp_path / "strict.txt", "alrf", rule=ConsensusRule(method="strict_mean"))
    assert strict.written == 39
    ids, _, strict_result = project_consensus(project, ConsensusRule(method="strict_mean"))
    nose = strict_result.state[[Path(project.image_info(int(i)).original_path).name for i in ids].index("face00_0.png"), 2]
    assert nose == INVISIBLE


def test_annotator_files_round_trip(labelled, tmp_path):
    project, _, _ = labelled
    finished_only = export_annotator_files(project, tmp_path / "done", "csv")
    assert [s.skipped_incomplete for s in finished_only] == [0, 0, 1]
    summaries = export_annotator_files(project, tmp_path / "per", "csv", include_incomplete=True)
    assert sorted(s.path.name for s in summaries) == ["labels_alice.csv", "labels_bob.csv", "labels_carol.csv"]
    assert [s.written for s in summaries] == [40, 40, 40]
    _, _, xy, state = project.labels_array(list(ANNOTATORS))

    with Project.create(tmp_path / "second") as second:
        import_images(second, [FACES_DIR])
        for summary in summaries:
            import_label_file(second, summary.path)
        assert second.annotators() == list(ANNOTATORS)
        _, _, again_xy, again_state = second.labels_array(list(ANNOTATORS))
    assert np.array_equal(again_state, state)
    assert np.nanmax(np.abs(again_xy - xy)) <= ROUNDING_OUT


# ---------------------------------------------------------------- bad input


def test_unknown_images_listed(project, truth, tmp_path):
    xy = np.round(truth.xy[:3], DECIMALS)
    state = np.full((3, 5), VISIBLE, dtype=np.int8)
    path = write_alrf_file(tmp_path / "extra.txt", [truth.images[0], "ghost_7.png", "nobody/face9.png"], xy, state)

    with pytest.raises(LabelImportError) as caught:
        import_label_file(project, path, annotator="dora")
    message = str(caught.value)
    assert str(path) in message
    assert "2 image(s) are not in the project" in message
    assert "ghost_7.png" in message
    assert "nobody/face9.png" in message
    assert "--skip-unknown" in message
    assert label_count(project) == 0

    summary = import_label_file(project, path, annotator="dora", skip_unknown=True)
    assert summary.images == 1
    assert summary.skipped_unknown == ["ghost_7.png", "nobody/face9.png"]
    assert label_count(project) == 5


def test_outside_point_rejected_with_value(project, truth, tmp_path):
    xy = np.round(truth.xy[:2], DECIMALS)
    width = int(truth.sizes[1, 0])
    xy[1, 4] = (width + 1.25, 3.0)
    state = np.full((2, 5), VISIBLE, dtype=np.int8)
    path = write_alrf_file(tmp_path / "outside.txt", truth.images[:2], xy, state)

    with pytest.raises(FormatError) as caught:
        import_label_file(project, path, annotator="erin")
    message = str(caught.value)
    assert str(path) in message
    assert "line 3" in message
    assert f"{width + 1.25:g} 3" in message
    assert "outside" in message
    assert caught.value.line == 3
    assert label_count(project) == 0
    assert "erin" not in project.annotators()

    summary = import_label_file(project, path, annotator="erin", allow_outside=True)
    assert summary.flagged_outside == 1
    image_id = next(info.id for info in project.list_images() if info.original_path.endswith(truth.images[1]))
    label = project.get_label(image_id, "erin")
    assert label.outside.tolist() == [False, False, False, False, True]
    assert label.state[4] == VISIBLE
    assert tuple(label.xy[4]) == (width + 1.25, 3.0)


@pytest.mark.parametrize(
    "bad_line,value,reason",
    [
        ("face05_0.png 1 2 3 4 5 6 7 8 9", "face05_0.png 1 2 3 4 5 6 7 8 9", "found 9 number(s) after the path"),
        ("face05_0.png 1 2 3 4 5 six 7 8 9 10", "six", "not a number"),
        ("face05_0.png 4 nan 5 5 6 8 4 11 9 11", "(4, nan)", "not a valid coordinate pair"),
        ("face05_0.png 1 2 3 4 5 6 7 8 9 10 11", "face05_0.png 1 2 3 4 5 6 7 8 9 10 11", "found more"),
    ],
    ids=["nine_numbers", "not_a_number", "single_nan", "eleven_numbers"],
)
def test_malformed_line_imports_nothing(project, truth, tmp_path, bad_line, value, reason):
    xy = np.round(truth.xy[:4], DECIMALS)
    state = np.full((4, 5), VISIBLE, dtype=np.int8)
    path = write_alrf_file(tmp_path / "bad.txt", truth.images[:4], xy, state)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(3, bad_line)  # becomes line 4, between good lines
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log_before = len(project.edit_log())

    with pytest.raises(FormatError) as caught:
        import_label_file(project, path, annotator="frank")
    message = str(caught.value)
    assert str(path) in message
    assert "line 4" in message
    assert f"(value: {value})" in message
    assert reason in message
    assert "nothing was imported" in message
    assert label_count(project) == 0
    assert len(project.edit_log()) == log_before
    assert "frank" not in project.annotators()


def test_bad_coco_annotation_imports_nothing(project, truth, tmp_path):
    xy = np.round(truth.xy.copy(), DECIMALS)
    state = np.full((40, 5), VISIBLE, dtype=np.int8)
    path = write_coco_file(tmp_path / "bad.json", truth.images, truth.sizes, xy, state)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["annotations"][7]["keypoints"] = document["annotations"][7]["keypoints"][:12]
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(FormatError) as caught:
        import_label_file(project, path, annotator="gina")
    assert "annotation id 108" in str(caught.value)
    assert "(value: 12)" in str(caught.value)
    assert label_count(project) == 0


def test_unknown_annotator_rejected(labelled, truth, tmp_path):
    project, _, _ = labelled
    with pytest.raises(StoreError) as caught:
        export_labels(project, tmp_path / "zoe.csv", "csv", annotators=["zoe"])
    assert "zoe" in str(caught.value)
    assert "alice, bob, carol" in str(caught.value)
    assert not (tmp_path / "zoe.csv").exists()

    path = write_alrf_file(tmp_path / "nameless.txt", truth.images[:1], np.round(truth.xy[:1], 3), np.ones((1, 5), np.int8))
    with pytest.raises(LabelImportError, match="names no annotator"):
        import_label_file(project, path)


def test_alrf_export_of_several_annotators_rejected(labelled, tmp_path):
    project, _, state = labelled
    with pytest.raises(StoreError, match="one annotator"):
        export_labels(project, tmp_path / "all.txt", "alrf")
    with pytest.raises(StoreError, match="one annotator"):
        export_labels(project, tmp_path / "two.txt", "alrf", annotators=["alice", "bob"])
    assert not (tmp_path / "all.txt").exists()

    summary = export_labels(project, tmp_path / "alice.txt", "alrf", annotators=["alice"])
    assert summary.written == 40
    many = export_labels(project, tmp_path / "all.csv", "csv")
    assert many.written == 39 * 3 + 2  # carol's unfinished image is left out
    assert many.skipped_incomplete == 1


@pytest.mark.parametrize("how", ["option", "header", "csv"])
def test_one_based_import_gives_zero_based(project, truth, tmp_path, how):
    xy = np.round(truth.xy, DECIMALS)
    state = np.full((40, 5), VISIBLE, dtype=np.int8)
    state[6, 2] = INVISIBLE
    xy[6, 2] = np.nan
    if how == "option":
        path = write_alrf_file(tmp_path / "matlab.txt", truth.images, xy, state, offset=1.0)
        import_label_file(project, path, annotator="hal", one_based=True)
    elif how == "header":
        path = write_alrf_file(tmp_path / "matlab.txt", truth.images, xy, state, offset=1.0, header=["# origin: 1-based"])
        import_label_file(project, path, annotator="hal")
    else:
        path = write_csv_file(tmp_path / "matlab.csv", truth.images, xy, state, offset=1.0)
        import_label_file(project, path, annotator="hal", columns=CSV_MAPPING, one_based=True)

    ids, _, stored_xy, stored_state = project.labels_array(["hal"])
    rows = [truth.images.index(Path(project.image_info(int(i)).original_path).name) for i in ids]
    assert np.array_equal(stored_state[:, 0], state[rows])
    assert np.nanmax(np.abs(stored_xy[:, 0] - xy[rows])) < 1e-9
    assert np.isnan(stored_xy[rows.index(6), 0, 2]).all()


# ---------------------------------------------------------------- store reads behind the exports


def test_labels_array_subsets_match_labels(labelled):
    project, _, _ = labelled
    chosen = [info.id for info in project.list_images()][::-3]  # descending, every third image
    ids, names, xy, state = project.labels_array(["carol", "alice", "nobody"], image_ids=chosen)
    assert ids.tolist() == chosen
    assert names == ["carol", "alice", "nobody"]
    assert np.all(state[:, 2] == UNLABELLED)
    assert np.all(np.isnan(xy[:, 2]))
    for row, image_id in enumerate(chosen):
        for column, name in enumerate(names[:2]):
            label = project.get_label(image_id, name)
            assert np.array_equal(state[row, column], label.state), (image_id, name)
            assert np.array_equal(xy[row, column], label.xy, equal_nan=True), (image_id, name)


def test_migration_adds_status_index(labelled):
    project, _, _ = labelled
    root = project.root
    project._conn.execute("DROP INDEX labels_by_annotator")
    project._conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    project.close()

    with Project.open(root) as reopened:
        assert reopened.schema_version == 4
        indexes = [row[1] for row in reopened._conn.execute("PRAGMA index_list(labels)")]
        assert "labels_by_annotator" in indexes
        status = reopened.status("carol")
        assert sum(row.status == ImageStatus.DONE for row in status.values()) == 39
        assert sum(row.status == ImageStatus.PARTIAL for row in status.values()) == 1


def test_csv_with_annotator_column_imports_as_chosen_name(project, truth, tmp_path):
    from s2ld_core import formats

    state = np.full((len(truth.images), 5), VISIBLE, dtype=np.int8)
    records = formats.records_from_arrays(truth.images, truth.xy, state, annotator="original")
    both = records + formats.records_from_arrays(truth.images, truth.xy, state, annotator="other")
    single = formats.write_labels_csv(tmp_path / "single.csv", records).path
    several = formats.write_labels_csv(tmp_path / "several.csv", both).path

    summary = import_label_file(project, single, annotator="ann")
    assert summary.annotators == ["ann"]
    assert summary.images == 40
    assert project.get_label(1, "ann").is_done

    with pytest.raises(StoreError, match="labels of original, other but none of 'zed'"):
        import_label_file(project, several, annotator="zed")
    assert import_label_file(project, several, annotator="other").annotators == ["other"]
    assert import_label_file(project, several).annotators == ["original", "other"]


def test_missing_label_file_named(project, tmp_path):
    with pytest.raises(StoreError, match=r"Label file .*nothere\.txt not found; check the path"):
        import_label_file(project, tmp_path / "nothere.txt", annotator="ann")
