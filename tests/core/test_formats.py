"""ALRF, CSV, landmark-table and COCO import and export on the real fixture faces."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

from s2ld_core.formats import (
    NUMBERED_COLUMNS,
    FormatError,
    LabelRecord,
    match_image_paths,
    parse_column_mapping,
    read_alrf,
    read_coco,
    read_labels_csv,
    read_landmarks_csv,
    records_from_arrays,
    write_alrf,
    write_annotator_csvs,
    write_coco,
    write_consensus_csv,
    write_labels_csv,
)
from s2ld_core.schema import LANDMARK_NAMES, PointState
from tests.core.fixture_faces import fixture_points, fixture_xy

VISIBLE, INVISIBLE, UNLABELLED = PointState.VISIBLE, PointState.INVISIBLE, PointState.UNLABELLED


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return fixture_points()


@pytest.fixture(scope="module")
def sizes(table) -> dict[str, tuple[int, int]]:
    return {row.image: (int(row.width), int(row.height)) for row in table.itertuples()}


@pytest.fixture()
def records(table) -> list[LabelRecord]:
    """Fixture faces with real points; every fifth face has one point marked invisible."""
    images = list(table["image"])
    xy = np.stack([fixture_xy(row) for _, row in table.iterrows()])
    state = np.full((len(images), 5), VISIBLE, dtype=np.int8)
    for i in range(0, len(images), 5):
        state[i, i % 5] = INVISIBLE
    return records_from_arrays(images, xy, state)


def assert_same_records(actual: list[LabelRecord], expected: list[LabelRecord], tolerance: float = 5e-4) -> None:
    by_image = {(record.image, record.annotator): record for record in expected}
    assert len(actual) == len(expected)
    for record in actual:
        reference = by_image[(record.image, record.annotator)]
        assert np.array_equal(record.state, reference.state), record.image
        assert np.array_equal(np.isnan(record.xy), np.isnan(reference.xy)), record.image
        assert np.nanmax(np.abs(record.xy - reference.xy), initial=0.0) <= tolerance, record.image


def data_lines(path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


# ---------------------------------------------------------------- ALRF


@pytest.mark.parametrize("layout", ["pairs", "mtcnn"])
@pytest.mark.parametrize("one_based", [False, True])
def test_alrf_round_trip(tmp_path, records, sizes, layout, one_based):
    path = tmp_path / "labels.alrf"
    summary = write_alrf(path, records, layout=layout, one_based=one_based)
    assert summary.written == len(records)

    result = read_alrf(path, layout=layout, one_based=one_based, sizes=sizes)
    assert_same_records(result.records, records)
    assert result.flagged == []


def test_alrf_header_selects_layout(tmp_path, records):
    path = tmp_path / "labels.alrf"
    write_alrf(path, records, layout="mtcnn", one_based=True)
    assert_same_records(read_alrf(path).records, records)


def test_alrf_file_values_by_layout(tmp_path, records):
    record = records[1]
    pairs_path, mtcnn_path = tmp_path / "pairs.alrf", tmp_path / "mtcnn.alrf"
    write_alrf(pairs_path, [record], layout="pairs")
    write_alrf(mtcnn_path, [record], layout="mtcnn", one_based=True)

    pairs_values = np.array(data_lines(pairs_path)[0].split()[1:], dtype=float)
    mtcnn_values = np.array(data_lines(mtcnn_path)[0].split()[1:], dtype=float)
    assert np.allclose(pairs_values, record.xy.reshape(-1), atol=5e-4)
    assert np.allclose(mtcnn_values[:5], record.xy[:, 0] + 1.0, atol=5e-4)
    assert np.allclose(mtcnn_values[5:], record.xy[:, 1] + 1.0, atol=5e-4)


def test_alrf_invisible_written_minus_one(tmp_path, records):
    record = records[0]
    assert record.state[0] == INVISIBLE
    path = tmp_path / "labels.alrf"
    write_alrf(path, [record], one_based=True)
    values = data_lines(path)[0].split()[1:]
    assert values[:2] == ["-1.000", "-1.000"]
    read_back = read_alrf(path).records[0]
    assert read_back.state[0] == INVISIBLE
    assert np.all(np.isnan(read_back.xy[0]))


def test_alrf_paths_with_spaces_and_unicode(tmp_path, records):
    renamed = [records[1], records[2]]
    renamed[0].image = "tiny faces/лицо 1.png"
    renamed[1].image = "tiny faces/face  two spaces.png"
    path = tmp_path / "labels.alrf"
    write_alrf(path, renamed)
    result = read_alrf(path)
    assert sorted(r.image for r in result.records) == sorted(r.image for r in renamed)
    assert_same_records(result.records, renamed)


def test_alrf_comments_and_blank_lines(tmp_path, records, sizes):
    record = records[1]
    numbers = " ".join(f"{v:.3f}" for v in record.xy.reshape(-1))
    path = tmp_path / "hand.alrf"
    path.write_text(f"# written by hand\n\n   \n{record.image}\t{numbers}\n# trailing note\n", encoding="utf-8")
    result = read_alrf(path, sizes=sizes)
    assert result.header == ["written by hand", "trailing note"]
    assert_same_records(result.records, [record])


def test_alrf_incomplete_left_out(tmp_path, records):
    records[3].state[2] = UNLABELLED
    records[3].xy[2] = np.nan
    path = tmp_path / "labels.alrf"
    summary = write_alrf(path, records)
    assert summary.skipped_incomplete == 1
    assert summary.written == len(records) - 1
    assert records[3].image not in path.read_text(encoding="utf-8").split()
    assert "left out because some point is not labelled yet: 1" in path.read_text(encoding="utf-8")


def test_alrf_incomplete_explicit_round_trip(tmp_path, records):
    records[3].state[2] = UNLABELLED
    records[3].xy[2] = np.nan
    path = tmp_path / "labels.alrf"
    write_alrf(path, records, include_incomplete=True)
    with pytest.raises(FormatError) as caught:
        read_alrf(path)
    assert "(nan, nan)" in str(caught.value)
    assert_same_records(read_alrf(path, allow_unlabelled=True).records, records)


def test_alrf_header_lines_written(tmp_path, records):
    path = tmp_path / "consensus.alrf"
    write_alrf(path, records, header_lines=["consensus_rule: method=visible_mean", "# annotators: a b c"])
    text = path.read_text(encoding="utf-8")
    assert "# consensus_rule: method=visible_mean\n" in text
    assert "# annotators: a b c\n" in text
    assert "# origin: 0-based\n" in text


def test_alrf_conflicting_header_rejected(tmp_path, records):
    path = tmp_path / "labels.alrf"
    write_alrf(path, records, layout="mtcnn")
    with pytest.raises(FormatError) as caught:
        read_alrf(path, layout="pairs")
    assert caught.value.line == 2
    assert "layout mtcnn" in str(caught.value)


def test_alrf_malformed_lines_listed(tmp_path, records, sizes):
    good = records[1]
    width, height = sizes[good.image]
    numbers = [f"{v:.3f}" for v in good.xy.reshape(-1)]
    lines = [
        f"{good.image} {' '.join(numbers)}",  # line 1: valid
        f"{records[2].image} {' '.join(numbers[:9])}",  # line 2: 9 numbers
        f"{records[3].image} {' '.join(numbers[:4])} abc {' '.join(numbers[5:])}",  # line 3: not a number
        f"{records[4].image} nan 3 {' '.join(numbers[2:])}",  # line 4: half NaN
        f"{records[5].image} {' '.join(numbers[:8])} {width + 3} 2.0",  # line 5: outside the image
        f"{good.image} {' '.join(numbers)}",  # line 6: repeated image
        f"{records[6].image} {' '.join(numbers)} 7",  # line 7: 11 numbers
        f"{records[7].image} inf {' '.join(numbers[1:])}",  # line 8: infinity
    ]
    path = tmp_path / "bad.alrf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(FormatError) as caught:
        read_alrf(path, sizes=sizes)
    error = caught.value
    assert error.path == path
    assert [problem.line for problem in error.problems] == [2, 3, 4, 5, 6, 7, 8]
    assert error.line == 2
    values = [problem.value for problem in error.problems]
    assert values[1] == "abc"
    assert values[2] == "(nan, 3)"
    assert values[3] == f"({width + 3}, 2)"
    assert values[4] == good.image
    assert values[6] == f"(inf, {float(numbers[1]):g})"
    message = str(error)
    assert str(path) in message
    assert "line 5" in message
    assert "outside" in message
    assert "nothing was imported" in message


def test_alrf_outside_points_kept_flagged(tmp_path, records, sizes):
    record = records[1]
    width, _ = sizes[record.image]
    record.xy[4] = (width - 0.2, record.xy[4, 1])
    path = tmp_path / "tight.alrf"
    write_alrf(path, [record])

    with pytest.raises(FormatError) as caught:
        read_alrf(path, sizes=sizes)
    assert "mouth_right" in str(caught.value)

    result = read_alrf(path, sizes=sizes, allow_outside=True)
    assert len(result.flagged) == 1
    assert result.records[0].outside.tolist() == [False, False, False, False, True]
    assert result.records[0].xy[4, 0] == pytest.approx(width - 0.2, abs=5e-4)


def test_alrf_edge_points_inside(tmp_path, records, sizes):
    record = records[1]
    width, height = sizes[record.image]
    record.xy[0] = (-0.5, -0.5)
    record.xy[1] = (width - 0.5, height - 0.5)
    path = tmp_path / "edges.alrf"
    write_alrf(path, [record])
    result = read_alrf(path, sizes=sizes)
    assert result.records[0].outside.sum() == 0


def test_alrf_unknown_images(tmp_path, records, sizes):
    path = tmp_path / "labels.alrf"
    write_alrf(path, records)
    partial = {image: size for image, size in sizes.items() if image != records[4].image}
    with pytest.raises(FormatError) as caught:
        read_alrf(path, sizes=partial)
    assert caught.value.value == records[4].image
    assert "not in the project" in str(caught.value)

    result = read_alrf(path, sizes=partial, skip_unknown=True)
    assert result.unknown_images == [records[4].image]
    assert len(result.records) == len(records) - 1


def test_alrf_unwritable_path_rejected(tmp_path, records):
    path = tmp_path / "labels.alrf"
    records[0].image = "#hidden.png"
    with pytest.raises(ValueError, match="starts with '#'"):
        write_alrf(path, records)
    assert not path.exists()


def test_export_failure_keeps_old_file(tmp_path, records):
    path = tmp_path / "labels.alrf"
    write_alrf(path, records)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="appears twice"):
        write_alrf(path, records + [records[0]])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.alrf"]


def test_alrf_not_utf8_rejected(tmp_path):
    path = tmp_path / "latin1.alrf"
    path.write_bytes("caf\xe9.png 1 2 3 4 5 6 7 8 9 10\n".encode("latin-1"))
    with pytest.raises(FormatError) as caught:
        read_alrf(path)
    assert caught.value.line == 1
    assert "UTF-8" in str(caught.value)


def test_alrf_missing_file(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        read_alrf(tmp_path / "absent.alrf")


# ---------------------------------------------------------------- CSV


def annotated(records: list[LabelRecord], names=("ann", "bea", "cem")) -> list[LabelRecord]:
    """Copies of ``records`` for three annotators, shifted by up to 0.5 px so they differ."""
    out = []
    for a, name in enumerate(names):
        for record in records:
            xy = record.xy + 0.25 * a - 0.25
            out.append(LabelRecord(image=record.image, xy=xy, state=record.state.copy(), annotator=name))
    out[1].state[3] = UNLABELLED
    out[1].xy[3] = np.nan
    return out


def test_csv_round_trip(tmp_path, records, sizes):
    labels = annotated(records)
    path = tmp_path / "labels.csv"
    summary = write_labels_csv(path, labels)
    assert summary.written == len(labels)

    result = read_labels_csv(path, sizes=sizes)
    assert_same_records(result.records, labels)
    assert {record.annotator for record in result.records} == {"ann", "bea", "cem"}


def test_csv_columns_and_states(tmp_path, records):
    path = tmp_path / "labels.csv"
    write_labels_csv(path, records[:1], default_annotator="ann")
    frame = pd.read_csv(path)
    assert list(frame.columns[:2]) == ["image", "annotator"]
    assert frame.loc[0, "left_eye_state"] == "invisible"
    assert np.isnan(frame.loc[0, "left_eye_x"])
    assert frame.loc[0, "right_eye_state"] == "visible"
    assert frame.loc[0, "right_eye_x"] == pytest.approx(records[0].xy[1, 0], abs=5e-4)


def test_csv_annotator_filter(tmp_path, records):
    path = tmp_path / "all.csv"
    write_labels_csv(path, annotated(records))
    result = read_labels_csv(path, annotator="bea")
    assert len(result.records) == len(records)
    assert {record.annotator for record in result.records} == {"bea"}


def test_csv_per_annotator_files(tmp_path, records):
    labels = annotated(records, names=("ann", "Bea Ö", "cem/x"))
    summaries = write_annotator_csvs(tmp_path / "out", labels)
    names = sorted(summary.path.name for summary in summaries)
    assert names == ["labels_Bea_Ö.csv", "labels_ann.csv", "labels_cem_x.csv"]
    for summary in summaries:
        result = read_labels_csv(summary.path)
        assert summary.written == len(records)
        assert len({record.annotator for record in result.records}) == 1
        expected = [record for record in labels if record.annotator == result.records[0].annotator]
        assert_same_records(result.records, expected)


def test_consensus_csv_with_extras(tmp_path, records):
    for record in records:
        record.extra = {"n_annotators": 3, "spread_max_px": 0.5}
    path = tmp_path / "consensus.csv"
    write_consensus_csv(path, records, header_lines=["consensus_rule: method=visible_mean quorum=majority"])
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# consensus_rule: method=visible_mean quorum=majority\n")

    result = read_labels_csv(path)
    assert result.header == ["consensus_rule: method=visible_mean quorum=majority"]
    assert {record.annotator for record in result.records} == {"consensus"}
    assert_same_records(result.records, [LabelRecord(r.image, r.xy, r.state, "consensus") for r in records])
    frame = pd.read_csv(path, comment=None, skiprows=1)
    assert list(frame.columns[-2:]) == ["n_annotators", "spread_max_px"]


def test_csv_bad_rows_listed(tmp_path, records):
    path = tmp_path / "labels.csv"
    write_labels_csv(path, records[:4], default_annotator="ann")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("visible", "seen", 1)
    lines[3] = lines[3].replace(",visible", ",visible,extra", 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(FormatError) as caught:
        read_labels_csv(path)
    assert [problem.line for problem in caught.value.problems] == [4]
    assert "row has 18 fields but the header has 17" in str(caught.value)

    lines[3] = lines[3].replace(",visible,extra", ",visible", 1)
    lines[4] = lines[4].replace(lines[4].split(",")[5], "12abc", 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(FormatError) as caught:
        read_labels_csv(path)
    assert [problem.line for problem in caught.value.problems] == [3, 5]
    assert caught.value.problems[0].value == "seen"
    assert caught.value.problems[1].value == "12abc"


def test_csv_visible_without_coordinates(tmp_path, records):
    path = tmp_path / "labels.csv"
    write_labels_csv(path, records[1:2], default_annotator="ann")
    frame = pd.read_csv(path)
    frame.loc[0, "nose_x"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(FormatError) as caught:
        read_labels_csv(path)
    assert "nose" in str(caught.value)
    assert caught.value.line == 2


# ---------------------------------------------------------------- landmark tables


def write_numbered_table(path, table: pd.DataFrame, offset: float = 0.0) -> None:
    """Write fixture points as image_path, x1, y1, ..., x5, y5 plus unrelated columns."""
    frame = pd.DataFrame({"image_path": table["image"], "split": "test", "img_w": table["width"]})
    for k, name in enumerate(LANDMARK_NAMES, start=1):
        frame[f"x{k}"] = table[f"{name}_x"] + offset
        frame[f"y{k}"] = table[f"{name}_y"] + offset
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("one_based", [False, True])
def test_landmark_table_with_mapping(tmp_path, table, sizes, one_based):
    path = tmp_path / "landmarks.csv"
    write_numbered_table(path, table, offset=1.0 if one_based else 0.0)
    result = read_landmarks_csv(path, NUMBERED_COLUMNS, annotator="original", one_based=one_based, sizes=sizes)
    assert len(result.records) == len(table)
    for record, (_, row) in zip(result.records, table.iterrows()):
        assert record.image == row["image"]
        assert record.annotator == "original"
        assert np.all(record.state == VISIBLE)
        assert np.allclose(record.xy, fixture_xy(row), atol=1e-9)


def test_landmark_table_minus_one_invisible(tmp_path, table):
    path = tmp_path / "landmarks.csv"
    write_numbered_table(path, table)
    frame = pd.read_csv(path)
    frame.loc[2, ["x3", "y3"]] = -1
    frame.to_csv(path, index=False)
    record = read_landmarks_csv(path, NUMBERED_COLUMNS).records[2]
    assert record.state.tolist() == [VISIBLE, VISIBLE, INVISIBLE, VISIBLE, VISIBLE]


def test_landmark_table_missing_columns(tmp_path, table):
    path = tmp_path / "landmarks.csv"
    write_numbered_table(path, table)
    with pytest.raises(FormatError) as caught:
        read_landmarks_csv(path, {"image": "image_path"})
    assert "left_eye_x" in str(caught.value)
    assert caught.value.line == 1


def test_column_mapping_parsed():
    mapping = parse_column_mapping("numbered, image=file name ,nose_x=nx")
    assert mapping["image"] == "file name"
    assert mapping["nose_x"] == "nx"
    assert mapping["left_eye_y"] == "y1"
    with pytest.raises(ValueError, match="unknown column name 'eye'"):
        parse_column_mapping("eye=x1")
    with pytest.raises(ValueError, match="NAME=COLUMN"):
        parse_column_mapping("image")


@pytest.mark.shared_data
def test_cnn_facepoint_imports_as_annotator(cnn_facepoint_dir):
    source = pd.read_csv(cnn_facepoint_dir / "landmarks.csv")
    sizes = {row.image_path: (int(row.img_w), int(row.img_h)) for row in source.itertuples()}
    result = read_landmarks_csv(cnn_facepoint_dir / "landmarks.csv", NUMBERED_COLUMNS, annotator="cnn", sizes=sizes)
    assert len(result.records) == len(source)
    assert result.flagged == []
    for index in (0, len(source) // 2, len(source) - 1):
        row = source.iloc[index]
        expected = row[[f"{axis}{k}" for k in range(1, 6) for axis in "xy"]].to_numpy(float).reshape(5, 2)
        assert result.records[index].image == row["image_path"]
        assert np.array_equal(result.records[index].xy, expected)


# ---------------------------------------------------------------- COCO


def test_coco_loads_in_pycocotools(tmp_path, records, sizes):
    labels = annotated(records)
    path = tmp_path / "labels.json"
    summary = write_coco(path, labels, sizes, include_incomplete=True)
    assert summary.written == len(labels)

    coco = COCO(str(path))
    category = coco.loadCats(coco.getCatIds())[0]
    assert category["keypoints"] == list(LANDMARK_NAMES)
    assert category["flip_pairs"] == [[0, 1], [3, 4]]
    assert category["swap_pairs"] == [["left_eye", "right_eye"], ["mouth_left", "mouth_right"]]
    assert len(coco.getImgIds()) == len(records)

    by_key = {(record.image, record.annotator): record for record in labels}
    for annotation in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(annotation["image_id"])[0]
        record = by_key[(image["file_name"], annotation["annotator"])]
        width, height = sizes[record.image]
        assert (image["width"], image["height"]) == (width, height)
        assert annotation["bbox"] == [0, 0, width, height]
        keypoints = np.array(annotation["keypoints"], dtype=float).reshape(5, 3)
        visible = record.state == VISIBLE
        assert annotation["num_keypoints"] == int(visible.sum())
        assert np.array_equal(keypoints[:, 2], np.where(visible, 2, 0))
        assert np.allclose(keypoints[visible, :2], record.xy[visible] + 0.5, atol=5e-4)
        assert np.all(keypoints[~visible, :2] == 0)


def test_coco_round_trip_states(tmp_path, records, sizes):
    labels = annotated(records)
    path = tmp_path / "labels.json"
    write_coco(path, labels, sizes, include_incomplete=True)
    result = read_coco(path, sizes=sizes)
    assert_same_records(result.records, labels)


def test_coco_pixel_index_offset(tmp_path, records, sizes):
    path = tmp_path / "labels.json"
    write_coco(path, records, sizes, offset=0.0)
    annotation = json.loads(path.read_text(encoding="utf-8"))["annotations"][1]
    record = next(r for r in records if r.image == records[1].image)
    assert np.allclose(np.array(annotation["keypoints"]).reshape(5, 3)[:, :2], record.xy, atol=5e-4)
    assert_same_records(read_coco(path, offset=0.0).records, records)


def test_coco_incomplete_left_out(tmp_path, records, sizes):
    records[2].state[1] = UNLABELLED
    records[2].xy[1] = np.nan
    summary = write_coco(tmp_path / "labels.json", records, sizes)
    assert summary.skipped_incomplete == 1
    assert summary.written == len(records) - 1


def test_coco_external_visibility_flags(tmp_path, records, sizes):
    path = tmp_path / "labels.json"
    write_coco(path, records[1:2], sizes)
    document = json.loads(path.read_text(encoding="utf-8"))
    annotation = document["annotations"][0]
    del annotation["point_states"]
    annotation["keypoints"][2] = 1  # left eye labelled but occluded
    annotation["keypoints"][3 * 2 : 3 * 2 + 3] = [0, 0, 0]  # nose not labelled
    path.write_text(json.dumps(document), encoding="utf-8")

    record = read_coco(path).records[0]
    assert record.state.tolist() == [INVISIBLE, VISIBLE, UNLABELLED, VISIBLE, VISIBLE]
    assert np.all(np.isnan(record.xy[[0, 2]]))


def test_coco_keypoints_matched_by_name(tmp_path, records, sizes):
    path = tmp_path / "labels.json"
    write_coco(path, records[1:2], sizes)
    document = json.loads(path.read_text(encoding="utf-8"))
    order = [1, 0, 2, 4, 3]
    document["categories"][0]["keypoints"] = [LANDMARK_NAMES[k] for k in order]
    triples = np.array(document["annotations"][0]["keypoints"]).reshape(5, 3)
    document["annotations"][0]["keypoints"] = triples[order].reshape(-1).tolist()
    path.write_text(json.dumps(document), encoding="utf-8")
    assert_same_records(read_coco(path).records, records[1:2])


def test_coco_invalid_annotations_listed(tmp_path, records, sizes):
    path = tmp_path / "labels.json"
    write_coco(path, records[1:4], sizes)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["annotations"][0]["keypoints"] = document["annotations"][0]["keypoints"][:12]
    document["annotations"][1]["keypoints"][0] = 500.0
    document["annotations"][2]["keypoints"][5] = 7
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(FormatError) as caught:
        read_coco(path)
    locations = [problem.location for problem in caught.value.problems]
    assert locations == ["annotation id 1", "annotation id 2", "annotation id 3"]
    assert caught.value.problems[0].value == "12"
    assert caught.value.problems[1].value.startswith("(499.5,")
    assert caught.value.problems[2].value == "7"


def test_coco_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1,,}\n]}', encoding="utf-8")
    with pytest.raises(FormatError) as caught:
        read_coco(path)
    assert caught.value.line == 2


# ---------------------------------------------------------------- helpers


def test_match_image_paths():
    known = {1: "/data/set/images/a.jpg", 2: "/data/set/other/a.jpg", 3: "/data/set/images/b c.jpg", 4: r"C:\faces\d.png"}
    matches, unmatched, ambiguous = match_image_paths(["images/a.jpg", "a.jpg", "b c.jpg", "d.png", "e.png"], known)
    assert matches == {"images/a.jpg": 1, "b c.jpg": 3, "d.png": 4}
    assert unmatched == ["e.png"]
    assert ambiguous == {"a.jpg": [1, 2]}
