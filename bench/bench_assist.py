"""Model assist benchmarks: pre-labelling speed and the correction loop on real faces.

Usage:
    python bench/bench_assist.py [--model DIR] [--data PATH/cnn_facepoint] [--threads 2]
        [--faces 700] [--repeat 3] [--corrections 300] [--held-out 300] [--epochs 10] [--skip-loop]

Faces are photos of the cnn_facepoint test split cut to low-resolution crops with
``s2ld_core.lowres.make_lowres_face`` (sides 16, 20, 24, 28 and 32 px in turn, JPEG quality 50).

1. Pre-labelling: ``--faces`` crops are stored in a new project, and the median of ``--repeat``
   runs of :func:`s2ld_core.assist.prelabel` (batch 64, test-time flip) is reported. Each run
   reads the images from the store, predicts and writes the predictions table. Loading the
   model is timed apart.
2. Correction loop: ``--corrections`` crops with their known points go into a second project as
   one annotator's labels, after pre-labelling them with the model, as a person who corrected
   every face would leave them. :mod:`s2ld_core.train_worker` then fine-tunes the model for
   ``--epochs`` epochs in its own process, and the NME before and after is measured on
   ``--held-out`` other crops of the same split.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2ld_core.assist import prelabel  # noqa: E402
from s2ld_core.metrics import summarise, nme  # noqa: E402
from s2ld_core.predict import DEFAULT_MODEL_DIR, Predictor  # noqa: E402
from s2ld_core.store import Project  # noqa: E402
from s2ld_core.train_worker import TrainingProcess, TrainRequest  # noqa: E402
from s2ld_core.training_data import load_cnn_facepoint_eval  # noqa: E402

SIZES = (16, 20, 24, 28, 32)


def lowres_faces(data: Path, count: int, offset: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Return ``count`` test-split crops starting at row ``offset``, sides cycling through SIZES, with points and states."""
    sets = load_cnn_facepoint_eval(data, "test", sizes=SIZES, jpeg_quality=50, limit=offset + count)
    images, xy, state = [], [], []
    for n in range(offset, offset + count):
        chosen = sets[SIZES[n % len(SIZES)]]
        images.append(chosen.images[n])
        xy.append(chosen.xy[n])
        state.append(chosen.state[n])
    return images, np.stack(xy), np.stack(state)


def new_project(root: Path, images: list[np.ndarray]) -> tuple[Project, list[int]]:
    project = Project.create(root)
    ids = [project.add_image_array(image, f"cnn_facepoint test crop {n}") for n, image in enumerate(images)]
    return project, ids


def bench_prelabel(args, workdir: Path) -> None:
    images, _, _ = lowres_faces(args.data, args.faces)
    project, ids = new_project(workdir / "prelabel", images)
    print(f"{len(set(ids))} faces stored in the project")

    start = time.perf_counter()
    predictor = Predictor(args.model, device="cpu", threads=args.threads)
    print(f"model load and trace: {time.perf_counter() - start:.2f} s")

    times, rates = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        last = list(prelabel(project, ids, predictor, batch_size=64))[-1]
        times.append(time.perf_counter() - start)
        rates.append(last.faces_per_second)
    print(f"pre-label {len(ids)} faces: median {statistics.median(times):.2f} s, best {min(times):.2f} s "
          f"({statistics.median(rates):.0f} faces/s); target under 3 s")
    project.close()


def bench_correction_loop(args, workdir: Path) -> None:
    images, xy, state = lowres_faces(args.data, args.corrections + args.held_out)
    fix_images, fix_xy, fix_state = images[: args.corrections], xy[: args.corrections], state[: args.corrections]
    test_images, test_xy, test_state = images[args.corrections :], xy[args.corrections :], state[args.corrections :]

    root = workdir / "loop"
    project, ids = new_project(root, fix_images)
    before_predictor = Predictor(args.model, device="cpu", threads=args.threads)
    list(prelabel(project, ids, before_predictor))
    project.import_labels("corrections", {i: (fix_xy[n], fix_state[n]) for n, i in enumerate(ids)}, action="bench")
    parent = project.active_model()
    project.close()

    def held_out_nme(predictor: Predictor) -> dict:
        pred, _, _ = predictor.predict_arrays(test_images)
        return summarise(nme(pred, test_xy, test_state)).to_dict()

    before = held_out_nme(before_predictor)
    request = TrainRequest(project=str(root), source="annotator", annotator="corrections", epochs=args.epochs,
                           init="active", device="cpu", threads=args.threads, batch_size=64, version="corrected")
    start = time.perf_counter()
    done = None
    with TrainingProcess(request) as process:
        for event in process.iter_events(timeout=600):
            if event["event"] == "epoch":
                print(f"  epoch {event['epoch']}/{event['epochs']}: loss {event['loss']:.3f}, "
                      f"val NME {event['val_nme']:.4f}, {event['elapsed_s']:.0f} s, about {event['eta_s']:.0f} s left")
            elif event["event"] in ("done", "error", "cancelled"):
                done = event
    seconds = time.perf_counter() - start
    if done is None or done["event"] != "done":
        raise SystemExit(f"training failed: {done}")

    after = held_out_nme(Predictor(done["checkpoint"], device="cpu", threads=args.threads))
    validation = done["comparison"]["models"]
    print(f"retraining in the worker process: {seconds:.0f} s for {args.epochs} epochs on "
          f"{args.corrections} corrections (best epoch {done['best_epoch']})")
    print(f"project validation faces ({done['comparison']['n_faces']}): "
          f"{parent} NME {validation[parent]['nme']:.4f}, corrected NME {validation['corrected']['nme']:.4f}")
    print("held-out faces | model | NME mean | median | failure rate @0.1 | AUC@0.1")
    for name, summary in ((parent, before), ("corrected", after)):
        print(f"{summary['n']} | {name} | {summary['mean']:.4f} | {summary['median']:.4f} | "
              f"{summary['failure_rate']:.3f} | {summary['auc']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cnn_facepoint",
                        help="cnn_facepoint folder with landmarks.csv and images/")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default: 2)")
    parser.add_argument("--faces", type=int, default=700, help="faces to pre-label (default: 700)")
    parser.add_argument("--repeat", type=int, default=3, help="pre-labelling runs to take the median of (default: 3)")
    parser.add_argument("--corrections", type=int, default=300, help="corrected faces to retrain on (default: 300)")
    parser.add_argument("--held-out", type=int, default=300, help="faces for the NME before and after (default: 300)")
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (default: 10)")
    parser.add_argument("--skip-loop", action="store_true", help="measure pre-labelling only")
    args = parser.parse_args()

    if not (args.model / "model.safetensors").is_file():
        raise SystemExit(f"no checkpoint at {args.model}; train the default model first or pass --model")
    if not (args.data / "landmarks.csv").is_file():
        raise SystemExit(f"{args.data}/landmarks.csv not found; pass --data")
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, {args.threads} threads; model {args.model}")

    with tempfile.TemporaryDirectory(prefix="bench-assist-") as tmp:
        bench_prelabel(args, Path(tmp))
        if not args.skip_loop:
            bench_correction_loop(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
