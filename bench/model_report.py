"""Accuracy report of a G2 checkpoint for docs/model.md: tables, CED plot and a crowd_lr sheet.

Usage:
    python bench/model_report.py --data PATH/TO/data [--model assets/models/default] [--update-card]

``--data`` is the folder holding ``cnn_facepoint`` and ``crowd_lr``. The cnn_facepoint test
split is cut at 16, 24 and 32 px with JPEG quality 50 (``make_lowres_face``) and run through
G2 (with and without test-time flip, and int8 without flip), the mean-shape predictor fitted on the train split and
MTCNN's O-Net. Markdown tables go to standard output; ``docs/img/model_ced_24px.png`` and
``docs/img/crowd_lr_predictions.png`` are written. ``--update-card`` stores the test results
and the NME on the committed fixture faces in the checkpoint's ``card.json`` (the shipped-model
tests compare against those numbers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2ld_core.augment import save_points_sheet  # noqa: E402
from s2ld_core.baselines import MeanShapePredictor, ONetPredictor  # noqa: E402
from s2ld_core.checkpoint import CARD_NAME  # noqa: E402
from s2ld_core.evaluation import evaluate, format_offsets, format_table, save_ced_plot  # noqa: E402
from s2ld_core.metrics import nme  # noqa: E402
from s2ld_core.predict import DEFAULT_MODEL_DIR, Predictor  # noqa: E402
from s2ld_core.training_data import load_cnn_facepoint_eval, load_points_csv, read_rgb  # noqa: E402

FIXTURE_CSV = REPO / "tests" / "fixtures" / "lowres_faces" / "points.csv"
IMG_DIR = REPO / "docs" / "img"


def crowd_sheet(predictor: Predictor, crowd_dir: Path, n: int, seed: int) -> Path:
    table = pd.read_csv(crowd_dir / "faces.csv")
    rows = table.sample(n=n, random_state=seed).sort_values("face_path")
    images = [read_rgb(crowd_dir / p) for p in rows["face_path"]]
    xy, _, visible = predictor.predict_arrays(images)
    return save_points_sheet(images, xy, IMG_DIR / "crowd_lr_predictions.png", visible=visible, columns=8, zoom=4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding cnn_facepoint/ and crowd_lr/")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--limit", type=int, help="use only the first N test faces (default: all 2,027)")
    parser.add_argument("--update-card", action="store_true", help="write the measured test metrics into the checkpoint's card.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with_flip = Predictor(args.model, device="cpu", flip=True)
    no_flip = Predictor(args.model, device="cpu", flip=False)
    int8 = Predictor(args.model, device="cpu", flip=False, precision="int8")
    cnn = args.data / "cnn_facepoint"
    predictors = {
        "G2 + flip": lambda images: with_flip.predict_arrays(images)[0],
        "G2": lambda images: no_flip.predict_arrays(images)[0],
        "G2 int8": lambda images: int8.predict_arrays(images)[0],
        "mean shape": MeanShapePredictor.from_cnn_facepoint(cnn, "train").predict_arrays,
        "MTCNN O-Net (whole crop)": ONetPredictor(box_fraction=1.0).predict_arrays,
        "MTCNN O-Net (face box)": ONetPredictor(box_fraction=0.8).predict_arrays,
    }

    sets = load_cnn_facepoint_eval(cnn, "test", (16, 24, 32), 50, args.limit)
    results = []
    for size, faces in sets.items():
        results.extend(evaluate(predictors, faces, size))
    print(format_table(results))
    print()
    print(format_offsets([r for r in results if r.name in ("G2 + flip", "MTCNN O-Net (whole crop)")]))
    save_ced_plot([r for r in results if r.size == 24], IMG_DIR / "model_ced_24px.png",
                  title="cnn_facepoint test, 24 px, JPEG 50")
    crowd_sheet(with_flip, args.data / "crowd_lr", 64, seed=7)

    fixture = load_points_csv(FIXTURE_CSV)
    fixture_nme = float(np.nanmean(nme(with_flip.predict_arrays(list(fixture.images))[0], fixture.xy, fixture.state)))
    print(f"\nfixture faces (40, 16-32 px), G2 + flip: mean NME {100 * fixture_nme:.2f}%")

    if args.update_card:
        card_path = args.model / CARD_NAME
        card = json.loads(card_path.read_text(encoding="utf-8"))
        test = {}
        for r in results:
            test.setdefault(r.name, {})[str(r.size)] = r.summary.to_dict()
        card["metrics"]["cnn_facepoint_test_jpeg50"] = {"n_faces": int(len(sets[24].keys)), "results": test}
        card["metrics"]["fixture_lowres_faces_flip_nme"] = fixture_nme
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"updated {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
