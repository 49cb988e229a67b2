"""Model commands of the CLI: ``train``, ``predict`` and ``evaluate``.

Each handler is a thin wrapper over :mod:`s2ld_core`; torch is imported only when a handler runs.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

#: Values of ``--precision``, as :class:`s2ld_core.predict.Predictor` takes them.
PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")
PRECISION_HELP = ("network precision: auto (bfloat16 on CPUs with native support, else float32), fp32, bf16, "
                  "or int8 (CPU only, fastest, needs the model's calibration.safetensors) (default: auto)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``predict`` and ``evaluate`` subcommands."""
    train = subparsers.add_parser(
        "train",
        help="train a G2 landmark model on human labels",
        description="Train G2 on the train split of a cnn_facepoint folder, or on one annotator's labels in a project. "
        "Only human labels are used, never model predictions.",
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--cnn-facepoint", type=Path, metavar="DIR", help="cnn_facepoint folder (landmarks.csv, images/); uses split 'train'")
    source.add_argument("--project", type=Path, metavar="DIR", help="project folder whose human labels to train on")
    train.add_argument("--annotator", help="with --project: the annotator whose finished labels are used")
    train.add_argument("--out", type=Path, required=True, metavar="DIR", help="checkpoint folder to write (model.safetensors and card.json)")
    train.add_argument("--preset", default="default", help="hyper-parameter preset: default (150 epochs) or quick (default: default)")
    train.add_argument("--epochs", type=int, help="number of epochs (default: the preset's)")
    train.add_argument("--init", type=Path, metavar="DIR", help="checkpoint folder to start from (fine-tuning); becomes the card's parent model")
    train.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default: 2)")
    train.add_argument("--max-minutes", type=float, help="stop after this many minutes of training, keeping the best weights (default: no limit)")
    train.add_argument("--model-id", default="g2", help="model id written into the card (default: g2)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.set_defaults(func=cmd_train)

    predict = subparsers.add_parser(
        "predict",
        help="predict landmarks on face crops",
        description="Predict the 5 landmarks on face crops (each image is one face, any size). "
        "Writes one CSV row per image with points in the image's own pixels (0-based, pixel centres at integers).",
    )
    predict.add_argument("inputs", nargs="*", type=Path, help="image files or folders of images")
    predict.add_argument("--project", type=Path, metavar="DIR", help="project folder: predict every image and store the predictions in it")
    predict.add_argument("--model", type=Path, metavar="DIR", help="checkpoint folder (default: the shipped default model)")
    predict.add_argument("--out", type=Path, metavar="CSV", help="CSV file to write (default: standard output)")
    predict.add_argument("--no-flip", action="store_true", help="skip test-time flipping (about twice as fast, slightly less accurate)")
    predict.add_argument("--device", default="auto", help="torch device: auto, cpu or cuda (default: auto, CUDA when available)")
    predict.add_argument("--batch-size", type=int, default=64, help="faces per forward pass (default: 64)")
    predict.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    predict.set_defaults(func=cmd_predict)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="measure a model's landmark error on labelled faces",
        description="Evaluate a model on labelled low-resolution faces and print NME (% of the inter-ocular distance), "
        "failure rate at 10% and AUC up to 10%, optionally beside the mean-shape and MTCNN O-Net baselines.",
    )
    data = evaluate.add_mutually_exclusive_group(required=True)
    data.add_argument("--cnn-facepoint", type=Path, metavar="DIR", help="cnn_facepoint folder; faces are cut with make_lowres_face")
    data.add_argument("--points-csv", type=Path, metavar="CSV", help="CSV of face crops with columns image, <point>_x, <point>_y")
    evaluate.add_argument("--split", default="test", help="cnn_facepoint split to evaluate (default: test)")
    evaluate.add_argument("--size", type=int, nargs="+", default=[24], help="face crop sides in pixels, one table row each (default: 24)")
    evaluate.add_argument("--jpeg", type=int, default=50, help="JPEG quality of the crops, 0 for none (default: 50)")
    evaluate.add_argument("--limit", type=int, help="use only the first N faces of the split (default: all)")
    evaluate.add_argument("--model", type=Path, metavar="DIR", help="checkpoint folder (default: the shipped default model)")
    evaluate.add_argument("--no-flip", action="store_true", help="evaluate without test-time flipping")
    evaluate.add_argument("--baselines", action="store_true", help="also run the mean-shape and MTCNN O-Net baselines (O-Net needs facenet-pytorch)")
    evaluate.add_argument("--normaliser", default="interocular", choices=["interocular", "box_diagonal"], help="NME normaliser (default: interocular)")
    evaluate.add_argument("--ced", type=Path, metavar="PNG", help="save the CED curves to this PNG file")
    evaluate.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default: 2)")
    evaluate.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    evaluate.set_defaults(func=cmd_evaluate)


def _progress(event) -> None:
    if event.kind == "epoch":
        print(
            f"epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  val NME {100 * event.val_nme:.2f}%  "
            f"best {100 * event.best_val_nme:.2f}%  {event.elapsed_s:.0f} s",
            flush=True,
        )
    elif event.kind in ("start", "done", "cancelled"):
        print(f"{event.kind}: {event.message}", flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    """Train and write a checkpoint folder; prints one line per epoch."""
    import torch

    from s2ld_core.checkpoint import load_checkpoint, save_checkpoint
    from s2ld_core.train import PRESETS, TrainConfig, result_card, train
    from s2ld_core.training_data import load_cnn_facepoint, samples_from_project

    if args.preset not in PRESETS:
        print(f"error: unknown preset {args.preset!r}; use one of {sorted(PRESETS)}", file=sys.stderr)
        return 2
    config = TrainConfig(**PRESETS[args.preset], threads=args.threads, max_minutes=args.max_minutes, seed=args.seed)
    if args.epochs:
        config.epochs = args.epochs
    torch.set_num_threads(args.threads)

    if args.cnn_facepoint is not None:
        samples = load_cnn_facepoint(args.cnn_facepoint, "train")
        sources = ["cnn_facepoint:train"]
    else:
        if not args.annotator:
            print("error: --project needs --annotator NAME (the annotator whose labels to train on)", file=sys.stderr)
            return 2
        samples = samples_from_project(args.project, args.annotator)
        sources = [f"project:{args.project.name}:annotator:{args.annotator}"]

    initial_state, parent = None, None
    if args.init is not None:
        init_model, init_card = load_checkpoint(args.init)
        config.model = init_model.config
        initial_state, parent = init_model.state_dict(), init_card.model_id

    result = None
    for event in train(samples, config, initial_state=initial_state):
        _progress(event)
        result = event.result or result
    save_checkpoint(result.model, result_card(result, config, args.model_id, sources, parent), args.out)
    print(f"saved {args.out}; validation NME {100 * result.best_val_nme:.2f}% (best epoch {result.best_epoch})")
    return 0


def _image_files(inputs: list[Path]) -> list[Path]:
    files = []
    for path in inputs:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} not found: pass image files or folders")
    return files


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict points for images or a project's images."""
    from s2ld_core import schema
    from s2ld_core.predict import Predictor
    from s2ld_core.training_data import read_rgb

    if args.project is None and not args.inputs:
        print("error: pass image files or folders, or --project DIR", file=sys.stderr)
        return 2
    predictor = Predictor(args.model, device=args.device, flip=not args.no_flip, batch_size=args.batch_size,
                          precision=args.precision)

    if args.project is not None:
        from s2ld_core.store import Project

        with Project.open(args.project) as project:
            ids = project.image_ids()
            images = [project.load_image(i) for i in ids]
            xy, confidence, visible = predictor.predict_arrays(images)
            project.set_predictions(predictor.model_version, ids, xy, confidence, visible)
        print(f"stored predictions of {predictor.model_version} for {len(ids)} images in {args.project}")
        return 0

    files = _image_files(args.inputs)
    images = [read_rgb(p) for p in files]
    xy, confidence, visible = predictor.predict_arrays(images)

    header = ["image", "width", "height"]
    for name in schema.LANDMARK_NAMES:
        header += [f"{name}_x", f"{name}_y", f"{name}_confidence", f"{name}_visible"]
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(header)
        for i, path in enumerate(files):
            row = [str(path), images[i].shape[1], images[i].shape[0]]
            for k in range(schema.N_POINTS):
                row += [f"{xy[i, k, 0]:.3f}", f"{xy[i, k, 1]:.3f}", f"{confidence[i, k]:.3f}", int(visible[i, k])]
            writer.writerow(row)
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"wrote {len(files)} predictions to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print accuracy tables for a model (and baselines) and optionally save CED curves."""
    import torch

    from s2ld_core.evaluation import evaluate, format_offsets, format_table, save_ced_plot
    from s2ld_core.predict import Predictor
    from s2ld_core.training_data import load_cnn_facepoint_eval, load_points_csv

    torch.set_num_threads(args.threads)
    predictor = Predictor(args.model, device="cpu", flip=not args.no_flip, precision=args.precision)
    if args.cnn_facepoint is not None:
        jpeg = args.jpeg or None
        sets = load_cnn_facepoint_eval(args.cnn_facepoint, args.split, tuple(args.size), jpeg, args.limit)
    else:
        faces = load_points_csv(args.points_csv)
        same_size = faces.images.dtype != object
        sets = {faces.images.shape[1] if same_size else 0: faces}

    mode = predictor.precision + ("" if args.no_flip else ", flip")
    predictors = {f"G2 {predictor.model_version} ({mode})": lambda images: predictor.predict_arrays(images)[0]}
    if args.baselines:
        from s2ld_core.baselines import BaselineUnavailableError, MeanShapePredictor, ONetPredictor
        if args.cnn_facepoint is not None:
            predictors["mean shape"] = MeanShapePredictor.from_cnn_facepoint(args.cnn_facepoint, "train").predict_arrays
        else:
            # NOTE: without a training set the shape is fitted on the evaluated faces, which flatters it.
            first = next(iter(sets.values()))
            predictors["mean shape"] = MeanShapePredictor.fit(list(first.images), first.xy).predict_arrays
        try:
            predictors["MTCNN O-Net (whole crop)"] = ONetPredictor(box_fraction=1.0).predict_arrays
        except BaselineUnavailableError as exc:
            print(f"warning: {exc}", file=sys.stderr)

    results = []
    for size, faces in sets.items():
        results.extend(evaluate(predictors, faces, size, args.normaliser))
    print(format_table(results))
    print()
    print("Mean offset of each point (prediction - truth), crop pixels:")
    print(format_offsets(results))
    if args.ced:
        save_ced_plot(results, args.ced)
        print(f"saved CED curves to {args.ced}")
    return 0
