"""The train, predict and evaluate commands, run through their argparse registration."""

from __future__ import annotations

import argparse
import csv
import re
import shutil

import cv2
import numpy as np
import pytest
import torch

from alrf_studio import cli_model
from s2ld_core.checkpoint import ModelCard, save_checkpoint
from s2ld_core.model import G2, G2Config
from s2ld_core.quantize import save_calibration
from s2ld_core.training_data import load_points_csv
from tests.core.fixture_faces import FACES_DIR


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="alrf-studio")
    cli_model.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    save_checkpoint(G2(G2Config(widths=(8, 8, 16, 16))).eval(), ModelCard(model_id="tiny", config={}), folder)
    return folder


def test_help_names_units_and_defaults(capsys):
    for command in ("train", "predict", "evaluate"):
        with pytest.raises(SystemExit):
            _parse([command, "--help"])
        text = capsys.readouterr().out
        assert "default" in text
    with pytest.raises(SystemExit):
        _parse(["evaluate", "--help"])
    assert "pixels" in capsys.readouterr().out


def test_predict_writes_csv(tmp_path, tiny_checkpoint):
    out = tmp_path / "points.csv"
    args = _parse(["predict", str(FACES_DIR), "--model", str(tiny_checkpoint), "--out", str(out), "--no-flip"])
    assert cli_model.cmd_predict(args) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 40
    assert float(rows[0]["left_eye_x"]) >= -0.5
    assert rows[0]["nose_visible"] in ("0", "1")


def test_evaluate_prints_table(capsys, tmp_path, tiny_checkpoint):
    ced = tmp_path / "ced.png"
    args = _parse(["evaluate", "--points-csv", str(FACES_DIR / "points.csv"), "--model", str(tiny_checkpoint),
                   "--ced", str(ced), "--threads", "1"])
    assert cli_model.cmd_evaluate(args) == 0
    text = capsys.readouterr().out
    # The row names the precision the predictor chose on this CPU, and the flip.
    assert re.search(r"\| G2 tiny \((bf16|fp32), flip\) \| mixed \| 40 \|", text)
    assert ced.stat().st_size > 1000


def test_evaluate_names_int8_without_flip(capsys, tmp_path, tiny_checkpoint):
    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    faces = load_points_csv(FACES_DIR / "points.csv")
    save_calibration(model, np.stack([cv2.resize(image, (32, 32)) for image in faces.images[:8]]))
    args = _parse(["evaluate", "--points-csv", str(FACES_DIR / "points.csv"), "--model", str(model),
                   "--threads", "1", "--precision", "int8", "--no-flip"])
    assert cli_model.cmd_evaluate(args) == 0
    assert "| G2 tiny (int8) | mixed | 40 |" in capsys.readouterr().out


def test_predict_without_inputs_fails(capsys, tiny_checkpoint):
    args = _parse(["predict", "--model", str(tiny_checkpoint)])
    assert cli_model.cmd_predict(args) == 2
    assert "pass image files" in capsys.readouterr().err
