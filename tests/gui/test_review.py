"""Review mode, the Review and Agreement docks, the report action and the consensus rule dialog.

Three annotators label twelve fixture faces: ann and bob close to the reference points, cat
as close but with the eyes exchanged on two faces and the nose far off on one; bob marks one
mouth corner invisible on another face.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from s2ld_core.agreement import compute_agreement
from s2ld_core.consensus import ConsensusRule
from s2ld_core.schema import N_POINTS, PointState
from s2ld_core.store import ImageStatus

from .conftest import make_project, open_window

ANNOTATORS = ("ann", "bob", "cat")
REVIEWER = "reviewer"
N_FACES = 12
SWAPPED = (2, 7)
OUTLIER = 4
HIDDEN = 9
NOISE_PX = 0.08


@pytest.fixture
def labelled(tmp_path, faces):
    """A project with the three annotators; returns (project, image ids, {name: xy (N, 5, 2)})."""
    project = make_project(tmp_path / "review_project", faces[:N_FACES])
    ids = project.image_ids()
    rng = np.random.default_rng(6)
    marks = {}
    for name in ANNOTATORS:
        xy = np.stack([face.points for face in faces[:N_FACES]]) + rng.normal(0.0, NOISE_PX, (N_FACES, N_POINTS, 2))
        state = np.full((N_FACES, N_POINTS), PointState.VISIBLE, dtype=np.int8)
        if name == "cat":
            for i in SWAPPED:
                xy[i, [0, 1]] = xy[i, [1, 0]]
            face = faces[OUTLIER]
            iod = np.linalg.norm(face.points[1] - face.points[0])
            xy[OUTLIER, 2, 1] = min(xy[OUTLIER, 2, 1] + 0.45 * iod, face.height - 1.0)
        if name == "bob":
            state[HIDDEN, 4] = PointState.INVISIBLE
            xy[HIDDEN, 4] = np.nan
        project.import_labels(name, {image_id: (xy[i], state[i]) for i, image_id in enumerate(ids)})
        marks[name] = xy
    yield project, ids, marks
    project.close()


@pytest.fixture
def review_window(qtbot, labelled):
    project, ids, marks = labelled
    window = open_window(qtbot, project, REVIEWER)
    return window, ids, marks


def _agreement(project):
    _, names, xy, state = project.labels_array(list(ANNOTATORS))
    return compute_agreement(xy, state, names)


def _turn_on(qtbot, window) -> None:
    button = window.toolbar.widgetForAction(window.review.actions.review_mode)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.review.is_active()


def _flag_rows(window) -> list[tuple[str, str, str]]:
    table = window.review.dock_widget.flag_table
    return [tuple(table.item(r, c).text() for c in range(3)) for r in range(table.rowCount())]


def test_review_mode_shows_every_annotator(qtbot, review_window):
    window, ids, marks = review_window
    window.show_image(ids[OUTLIER])
    assert window.actions.view.blind_mode.isChecked()
    _turn_on(qtbot, window)

    assert not window.actions.view.blind_mode.isChecked()
    assert not window.actions.view.blind_mode.isEnabled()
    colours = set()
    for name in ANNOTATORS:
        layer = window.canvas.layer(f"annotator:{name}")
        assert layer is not None, window.canvas.layer_names()
        assert np.allclose(layer.xy, marks[name][OUTLIER], atol=1e-9)
        colours.add(layer.colours[0])
    assert len(colours) == len(ANNOTATORS)
    assert window.canvas.layer(f"annotator:{REVIEWER}") is None

    stack = np.stack([marks[name][OUTLIER] for name in ANNOTATORS])
    mean = stack.mean(axis=0)
    consensus = window.canvas.layer("review:consensus")
    assert np.allclose(consensus.xy, mean, atol=1e-9)
    distance = np.linalg.norm(stack - mean, axis=-1)
    spread = window.review.overlay.data
    assert np.allclose(spread.spread_std_px, np.sqrt((distance**2).mean(axis=0)), atol=1e-9)
    assert np.allclose(spread.spread_max_px, distance.max(axis=0), atol=1e-9)
    assert spread.spread_max_px[2] > 3 * spread.spread_max_px[0]

    window.review.actions.review_mode.trigger()
    assert window.actions.view.blind_mode.isChecked()
    assert window.canvas.layer("review:consensus") is None
    assert not [n for n in window.canvas.layer_names() if n.startswith("annotator:")]


def test_review_mode_keeps_blind_mode_off_state(qtbot, review_window):
    window, ids, _ = review_window
    window.actions.view.blind_mode.setChecked(False)
    _turn_on(qtbot, window)
    window.review.actions.review_mode.trigger()
    assert not window.actions.view.blind_mode.isChecked()
    # Blind mode off again shows the window's own layers of the annotators.
    assert {f"annotator:{name}" for name in ANNOTATORS} <= set(window.canvas.layer_names())
    assert window.canvas.layer("review:consensus") is None


def test_f_steps_through_flagged_images(qtbot, review_window):
    window, ids, _ = review_window
    expected = [int(i) for i in np.asarray(ids)[_agreement(window.project).flagged_images]]
    assert expected == sorted(ids[i] for i in (*SWAPPED, OUTLIER, HIDDEN))
    assert window.current_image_id == ids[0]
    _turn_on(qtbot, window)
    window.canvas.setFocus()

    visited = []
    for _ in expected:
        qtbot.keyClick(window.canvas, Qt.Key.Key_F)
        visited.append(window.current_image_id)
    assert visited == expected
    qtbot.keyClick(window.canvas, Qt.Key.Key_F)
    assert window.current_image_id == expected[0]
    qtbot.keyClick(window.canvas, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_image_id == expected[-1]
    assert "flagged image 4 of 4" in window.review.dock_widget.title.text()


def test_f_fits_outside_review_mode(qtbot, review_window):
    window, ids, _ = review_window
    window.canvas.zoom_by(3.0)
    zoomed = window.canvas.zoom
    qtbot.keyClick(window.canvas, Qt.Key.Key_F)
    assert window.current_image_id == ids[0]
    assert window.canvas.zoom < zoomed


def test_flags_dock_names_swap_and_outlier(qtbot, review_window):
    window, ids, _ = review_window
    _turn_on(qtbot, window)
    window.show_image(ids[SWAPPED[0]])
    assert ("left/right swap", "cat", "eyes") in _flag_rows(window)
    assert window.review.dock_widget.send_to.currentText() == "cat"

    window.show_image(ids[OUTLIER])
    assert _flag_rows(window) == [("outlier point", "cat", "Nose tip")]

    window.show_image(ids[HIDDEN])
    rows = _flag_rows(window)
    assert ("visibility disagreement", "", "Right mouth corner") in rows
    detail = window.review.dock_widget.flag_table.item(rows.index(("visibility disagreement", "", "Right mouth corner")), 4).text()
    assert detail == "invisible for bob; visible for ann, cat"


def test_send_back_returns_image_to_queue(qtbot, review_window):
    window, ids, _ = review_window
    image_id = ids[SWAPPED[1]]
    assert window.project.status("cat")[image_id].status == ImageStatus.DONE
    _turn_on(qtbot, window)
    window.show_image(image_id)
    dock = window.review.dock_widget
    assert dock.send_to.currentText() == "cat"
    qtbot.keyClicks(dock.note, "eyes exchanged")
    qtbot.mouseClick(dock.send_button, Qt.MouseButton.LeftButton)

    review = window.project.reviews(image_id)[-1]
    assert (review["action"], review["annotator"], review["reviewer"], review["note"]) == ("send_back", "cat", REVIEWER, "eyes exchanged")
    assert window.project.status("cat")[image_id].status == ImageStatus.PARTIAL
    assert "Sent back to cat" in dock.history.text()

    # cat opens the project: the image is unfinished in the list and comes first in the queue.
    window.review.actions.review_mode.trigger()
    combo = window.annotator_combo
    combo.lineEdit().selectAll()
    qtbot.keyClicks(combo.lineEdit(), "cat")
    qtbot.keyClick(combo.lineEdit(), Qt.Key.Key_Return)
    assert window.annotator == "cat"
    assert window.image_list.model.status_of(image_id).status == ImageStatus.PARTIAL
    window.show_image(ids[0])
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_U)
    assert window.current_image_id == image_id

    # Correcting a point finishes the image again.
    qtbot.keyClick(window.canvas, Qt.Key.Key_1)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Right)
    assert window.project.status("cat")[image_id].status == ImageStatus.DONE
    assert window.image_list.model.status_of(image_id).status == ImageStatus.DONE


def test_send_back_to_current_annotator_refreshes_list(qtbot, labelled):
    project, ids, _ = labelled
    window = open_window(qtbot, project, "cat")
    image_id = ids[SWAPPED[0]]
    _turn_on(qtbot, window)
    window.show_image(image_id)
    qtbot.mouseClick(window.review.dock_widget.send_button, Qt.MouseButton.LeftButton)
    assert window.image_list.model.status_of(image_id).status == ImageStatus.PARTIAL
    assert "partial 1" in window.counts_label.text()


def test_accept_stores_review_and_is_skipped(qtbot, review_window):
    window, ids, _ = review_window
    _turn_on(qtbot, window)
    window.show_image(ids[OUTLIER])
    qtbot.mouseClick(window.review.dock_widget.accept_button, Qt.MouseButton.LeftButton)

    review = window.project.reviews(ids[OUTLIER])[-1]
    assert (review["action"], review["reviewer"], review["annotator"]) == ("accept", REVIEWER, None)
    assert "Accepted by reviewer" in window.review.dock_widget.history.text()

    window.show_image(ids[0])
    visited = set()
    for _ in range(6):
        qtbot.keyClick(window.canvas, Qt.Key.Key_F)
        visited.add(window.current_image_id)
    assert visited == {ids[i] for i in (*SWAPPED, HIDDEN)}


def test_accept_with_key_in_review_mode_only(qtbot, review_window):
    window, ids, _ = review_window
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.project.reviews() == []
    _turn_on(qtbot, window)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert [r["action"] for r in window.project.reviews(ids[0])] == ["accept"]


def test_agreement_panel_equals_core(qtbot, review_window):
    window, _, _ = review_window
    window.review.agreement_dock.toggleViewAction().trigger()
    panel = window.review.panel
    assert panel is not None
    expected = _agreement(window.project)

    landmarks = expected.per_landmark
    heights = panel.landmark_plot.mean_bars.opts["height"]
    assert np.allclose(heights, 100 * landmarks["mean_nme"].to_numpy(), atol=1e-9)
    assert np.allclose(panel.landmark_plot.median_bars.opts["height"], 100 * landmarks["median_nme"].to_numpy(), atol=1e-9)
    annotators = expected.per_annotator.loc[list(ANNOTATORS)]
    assert np.allclose(panel.annotator_plot.mean_bars.opts["height"], 100 * annotators["mean_nme"].to_numpy(), atol=1e-9)
    assert np.allclose(panel.annotator_plot.median_bars.opts["height"], 100 * annotators["median_nme"].to_numpy(), atol=1e-9)
    # cat's swaps and miss make its mean error the largest.
    assert np.argmax(panel.annotator_plot.mean_bars.opts["height"]) == ANNOTATORS.index("cat")

    table = panel.pairwise_table
    for a, first in enumerate(ANNOTATORS):
        for b, second in enumerate(ANNOTATORS):
            if a != b:
                assert table.item(a, b).text() == f"{100 * expected.pairwise_nme.loc[first, second]:.1f}"
    assert f"{expected.visibility_kappa:.3f}" in panel.summary.text()
    counts = {panel.flag_table.item(r, 0).text(): panel.flag_table.item(r, 1).text() for r in range(panel.flag_table.rowCount())}
    assert counts["left/right swap (eyes)"] == str(int(expected.flag_counts.loc["swap_eyes", "n_flags"])) == "2"
    assert counts["outlier point"] == str(int(expected.flag_counts.loc["outlier_point", "n_flags"]))


def test_agreement_panel_refresh_reads_edits(qtbot, review_window):
    window, ids, marks = review_window
    window.review.agreement_dock.toggleViewAction().trigger()
    panel = window.review.panel
    before = panel.annotator_plot.mean_bars.opts["height"].copy()

    # cat fixes the outlier nose outside the window; Refresh reads it.
    fixed = marks["ann"][OUTLIER].copy()
    window.project.import_labels("cat", {ids[OUTLIER]: (fixed, np.full(N_POINTS, PointState.VISIBLE, dtype=np.int8))})
    qtbot.mouseClick(panel.refresh_button, Qt.MouseButton.LeftButton)
    after = panel.annotator_plot.mean_bars.opts["height"]
    expected = _agreement(window.project).per_annotator.loc[list(ANNOTATORS), "mean_nme"].to_numpy()
    assert np.allclose(after, 100 * expected, atol=1e-9)
    assert after[2] < before[2]


def test_agreement_report_action(qtbot, review_window, tmp_path, monkeypatch, messages):
    from alrf_studio import review

    window, _, _ = review_window
    out = tmp_path / "report"
    out.mkdir()
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    monkeypatch.setattr(review, "ask_open_report", lambda _parent, path: asked.append(path) or False)
    window.review.actions.agreement_report.trigger()

    assert messages == []
    assert asked == [out / "report.html"]
    assert (out / "report.html").is_file()
    import pandas as pd

    table = pd.read_csv(out / "per_annotator.csv")
    assert list(table["annotator"]) == list(ANNOTATORS)
    assert window.review.actions.agreement_report in window.menus["file"].actions()


def test_consensus_rule_dialog(qtbot):
    from alrf_studio.consensus_dialog import ConsensusRuleDialog

    dialog = ConsensusRuleDialog()
    qtbot.addWidget(dialog)
    assert dialog.rule() == ConsensusRule()
    dialog.min_annotators.setValue(2)
    dialog.quorum.setValue(2)
    assert dialog.rule() == ConsensusRule(quorum=2, min_annotators=2)
    dialog.method.setCurrentIndex(dialog.method.findData("strict_mean"))
    assert dialog.rule().method == "strict_mean"
    assert not dialog.quorum.isEnabled()
    assert dialog.description.text() == dialog.rule().describe()


def test_export_consensus_uses_dialog_rule(qtbot, review_window, tmp_path, monkeypatch, messages):
    from alrf_studio import consensus_dialog
    from s2ld_core import formats

    window, ids, _ = review_window
    out = tmp_path / "strict.csv"
    monkeypatch.setattr(consensus_dialog, "ask_consensus_rule", lambda *a, **k: ConsensusRule(method="strict_mean"))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window.actions.file.export_consensus.trigger()
    assert messages[-1][0] == "info", messages
    assert "method=strict_mean" in out.read_text(encoding="utf-8")
    records = {r.image: r for r in formats.read_labels_csv(out).records}
    hidden = [r for r in records.values() if np.any(r.state == PointState.INVISIBLE)]
    assert len(hidden) == 1
    assert list(hidden[0].state) == [PointState.VISIBLE] * 4 + [PointState.INVISIBLE]
